#!/usr/bin/env bash
# Install what building, running and testing switchyard needs, skipping
# whatever is already there. Safe to run again.
#
#   - C toolchain bits for librdkafka (built from source by the rdkafka crate)
#   - a Rust -> wasm32 toolchain for plugins: rustup's wasm32-unknown-unknown
#     target when rustup can add it, else Debian's rustc with the standard
#     library's source (plugins are then built with -Zbuild-std)
#   - python3 with venv, for building the Python plugins (componentize-py
#     itself is installed from PyPI by scripts/build-python-plugins.sh)
#   - Java and Maven, to fetch and run Apache Kafka for the tests, and
#     Chromium to test the API explorer pages in a real headless browser
#   - for the tests too, Schemathesis (pinned, from PyPI, in a virtualenv at
#     target/schemathesis) to fuzz the APIs against their OpenAPI documents
set -euo pipefail

say() { echo "setup: $*" >&2; }

missing=()
need() { dpkg -s "$1" >/dev/null 2>&1 || missing+=("$1"); }

for pkg in cmake pkg-config zlib1g-dev libssl-dev libcurl4-openssl-dev; do need "$pkg"; done

if ! command -v cargo >/dev/null 2>&1; then
    say "cargo not found: install Rust from your distribution or rustup first"
    exit 1
fi

if rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    say "wasm toolchain: rustup target wasm32-unknown-unknown"
elif rustup target add wasm32-unknown-unknown >/dev/null 2>&1; then
    say "wasm toolchain: added rustup target wasm32-unknown-unknown"
else
    say "wasm toolchain: rustup cannot add wasm32-unknown-unknown; using Debian's rustc with std sources"
    for pkg in rustc-web cargo-web rust-web-src; do need "$pkg"; done
fi

# Python plugins: scripts/build-python-plugins.sh makes a virtualenv for
# componentize-py (Debian's python3 needs python3-venv for that).
if ! command -v python3 >/dev/null 2>&1; then
    need python3; need python3-venv
elif ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    need python3-venv
fi

if [ "${1:-}" = "--with-kafka" ]; then
    command -v java >/dev/null 2>&1 || need openjdk-17-jre-headless
    command -v mvn >/dev/null 2>&1 || need maven
    # A real headless browser for the tests of the API explorer pages.
    command -v chromium >/dev/null 2>&1 || need chromium
fi

if [ ${#missing[@]} -gt 0 ]; then
    say "installing: ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The OpenAPI contract tests' fuzzer: every package pinned, in a virtualenv
# of its own, made again when the pins change.
if [ "${1:-}" = "--with-kafka" ]; then
    root=$(cd "$(dirname "$0")/.." && pwd)
    venv="$root/target/schemathesis"
    pins="$root/scripts/schemathesis-requirements.txt"
    stamp="$venv/pins.sha256"
    want=$(sha256sum "$pins" | cut -d' ' -f1)
    if [ ! -x "$venv/bin/st" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        say "installing schemathesis ($(grep '^schemathesis==' "$pins")) into $venv"
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$pins"
        echo "$want" >"$stamp"
    fi
fi
say "ready"
