#!/usr/bin/env bash
# Bring the whole platform up with embedded defaults, nothing else to start:
#
#   - switchyard with the routes in switchyard.toml, on the in-memory
#     development broker (HTTP: admin and health on 8080, event APIs on 5000)
#   - mock-crm, the CRM the `crm-sync` route keeps in sync (port 5050,
#     API explorer at /swagger/)
#   - mobility-producer, the platform's internal events, non-stop
#
# Ctrl-C (or SIGTERM) stops all three; switchyard drains and commits first.
# Extra arguments go to `switchyard run`.
#
# Environment (all optional):
#   SWITCHYARD_BIN_DIR   where the binaries are (default target/release,
#                        built here; with it set nothing is built)
#   MOBILITY_RATE        internal events per second (default 5)
#   SWITCHYARD_STREAMS_PASSWORD, SWITCHYARD_MASTER_KEY, MOBILITY_INGEST_TOKEN,
#   MOBILITY_CRM_URL, MOCK_CRM_CONTROL_TOKEN
#                        development values unless set
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${SWITCHYARD_BIN_DIR:-}" ]; then
    scripts/setup.sh
    cargo build --release -p switchyard -p mock-crm -p mobility-producer
    scripts/build-plugins.sh target/release/switchyard
fi
bin="${SWITCHYARD_BIN_DIR:-target/release}"

# Development secrets (see switchyard.toml); set your own to change them.
export SWITCHYARD_STREAMS_PASSWORD="${SWITCHYARD_STREAMS_PASSWORD:-demo-password}"
export MOBILITY_INGEST_TOKEN="${MOBILITY_INGEST_TOKEN:-development-ingest-token}"
export MOBILITY_CRM_URL="${MOBILITY_CRM_URL:-http://127.0.0.1:5050}"
# Unlocks the mock CRM's fault injection and reset (docs/mobility.md).
export MOCK_CRM_CONTROL_TOKEN="${MOCK_CRM_CONTROL_TOKEN:-development-control-token}"
if [ -z "${SWITCHYARD_MASTER_KEY:-}" ]; then
    # A fixed, public key: what it encrypts is readable by anyone. The
    # development broker forgets everything at exit anyway.
    export SWITCHYARD_MASTER_KEY=00000000000000000000000000000000000000000000000000000000000000d0
    echo "run.sh: DEVELOPMENT MASTER KEY in use (publicly known; set SWITCHYARD_MASTER_KEY for real data)" >&2
fi

pids=()
stop() {
    trap - EXIT INT TERM
    [ ${#pids[@]} -eq 0 ] || kill -TERM "${pids[@]}" 2>/dev/null || true
    wait || true
}
trap stop EXIT
trap 'stop; exit 0' INT TERM

"$bin/mock-crm" --listen 127.0.0.1:5050 &
pids+=($!)
"$bin/switchyard" run --config switchyard.toml "$@" &
pids+=($!)
# Through the ingest API: personal fields reach Kafka only encrypted.
MOBILITY_PRODUCER_INGEST_TOKEN="$MOBILITY_INGEST_TOKEN" "$bin/mobility-producer" \
    --ingest http://127.0.0.1:5000/ingest/mobility-ingest --rate "${MOBILITY_RATE:-5}" &
pids+=($!)

echo "run.sh: platform starting: event APIs http://127.0.0.1:5000/swagger," \
     "CRM explorer http://127.0.0.1:5050/swagger/, health http://127.0.0.1:8080/healthz" >&2
# Whichever stops first (an error, say) stops the others.
status=0
wait -n || status=$?
echo "run.sh: a process exited (status $status); stopping the platform" >&2
exit "$status"
