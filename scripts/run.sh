#!/usr/bin/env bash
# Bring the platform up with embedded defaults: build switchyard and the
# demo plugins, then run the routes in switchyard.toml on the in-memory
# development broker. Extra arguments go to `switchyard run`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release -p switchyard
scripts/build-plugins.sh target/release/switchyard
exec target/release/switchyard run --config switchyard.toml "$@"
