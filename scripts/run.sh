#!/usr/bin/env bash
# Bring the platform up with embedded defaults: build switchyard and the
# demo plugins, then run the routes in switchyard.toml on the in-memory
# development broker. Extra arguments go to `switchyard run`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release -p switchyard
scripts/build-plugins.sh target/release/switchyard
# The streams API's demo user (see switchyard.toml); set your own to change it.
export SWITCHYARD_STREAMS_PASSWORD="${SWITCHYARD_STREAMS_PASSWORD:-demo-password}"
exec target/release/switchyard run --config switchyard.toml "$@"
