#!/usr/bin/env bash
# End-to-end benchmark, in one invocation on one broker and machine:
#   (a) a bare rust-rdkafka consume-then-produce passthrough
#       (bench/src/bin/passthrough.rs),
#   (b) switchyard with a chain of no-op plugins,
#   (c) switchyard with validate -> redact -> project,
# on 512-byte JSON records: throughput, end-to-end latency at half of (a)'s
# throughput, and the ratios b/a and c/a (bench/src/bin/bench_e2e).
#
# usage: scripts/bench-e2e.sh [bench-e2e options] > result.md
#   e.g. scripts/bench-e2e.sh --records 100000 --rounds 3
#        scripts/bench-e2e.sh --profile-dir target/perf   (perf record too)
#   scripts/bench-e2e.sh --help lists the options.
#
# It builds everything in release, builds the plugins, starts a single-node
# Apache Kafka (scripts/kafka.sh) unless KAFKA_BOOTSTRAP_SERVERS names one,
# and prints a Markdown report on stdout (progress on stderr). Logs and the
# generated routes files stay in target/bench-e2e.
#
# Environment (optional):
#   KAFKA_BOOTSTRAP_SERVERS  use this cluster instead of starting one
#   SKIP_BUILD=1             use the binaries and plugins already built
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export LC_ALL=C

log() { printf 'bench: %s\n' "$*" >&2; }

if [[ " $* " == *" --help "* || " $* " == *" -h "* ]]; then
    exec cargo run -q --release -p switchyard-bench --bin bench-e2e -- --help
fi

if [[ "${SKIP_BUILD:-}" == 1 ]]; then
    log "SKIP_BUILD=1: using the binaries and plugins already built"
else
    log "building switchyard and the benchmark (release)"
    cargo build --release -p switchyard --bin switchyard >&2
    cargo build --release -p switchyard-bench --bins >&2
    log "building the plugins into target/plugins"
    scripts/build-plugins.sh "$ROOT/target/release/switchyard" >&2
fi

kafka_owned=0
if [[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
    bootstrap=$KAFKA_BOOTSTRAP_SERVERS
else
    # A broker that already runs is used as it is and left running.
    scripts/kafka.sh status >/dev/null 2>&1 || kafka_owned=1
    bootstrap=$(scripts/kafka.sh start)
fi
cleanup() {
    local rc=$?
    if ((kafka_owned)); then scripts/kafka.sh stop >&2 || true; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
log "Kafka: $bootstrap"

work=target/bench-e2e
mkdir -p "$work"
"$ROOT/target/release/bench-e2e" \
    --brokers "$bootstrap" \
    --switchyard "$ROOT/target/release/switchyard" \
    --passthrough "$ROOT/target/release/passthrough" \
    --plugins-dir "$ROOT/target/plugins" \
    --work-dir "$work" \
    "$@"

cores=$(nproc)
mem=$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
cpu=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
printf '\nMachine: %s cores (%s), %s; %s; Kafka at %s; %s.\n' \
    "$cores" "$cpu" "$mem" "$(uname -sr)" "$bootstrap" "$(date -u +%Y-%m-%d)"
