#!/usr/bin/env bash
# The full test suite: formatting, lints, unit tests and the end-to-end
# tests against a real Apache Kafka broker. The broker is started here
# (and stopped afterwards) unless KAFKA_BOOTSTRAP_SERVERS names one.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --with-kafka

step() { echo "==> $*" >&2; }

step "format"
cargo fmt --all --check
(cd plugins && cargo fmt --all --check)

step "build"
cargo build --workspace --all-targets
scripts/build-plugins.sh target/debug/switchyard

step "lint"
cargo clippy --workspace --all-targets -- -D warnings
(cd plugins && cargo clippy --all-targets -- -D warnings)

step "plugin unit tests (native)"
(cd plugins && cargo test)

step "manifests (docker-compose.yml, deploy/kubernetes)"
scripts/check-manifests.sh

started_kafka=""
if [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
    step "starting Apache Kafka"
    KAFKA_BOOTSTRAP_SERVERS="$(scripts/kafka.sh start)"
    export KAFKA_BOOTSTRAP_SERVERS
    started_kafka=yes
    trap 'scripts/kafka.sh stop' EXIT
fi
step "tests (Kafka at $KAFKA_BOOTSTRAP_SERVERS)"
status=0
cargo test --workspace -- --nocapture 2>&1 | tee target/test-output.log || status=$?

if [ -n "$started_kafka" ]; then
    trap - EXIT
    scripts/kafka.sh stop
fi
# One closing line for the whole run (cargo prints one per test binary).
awk '/^test result:/ { p += $4; f += $6 } END { printf "total: %d passed, %d failed\n", p, f }' \
    target/test-output.log
exit "$status"
