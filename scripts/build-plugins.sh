#!/usr/bin/env bash
# Build the plugins in plugins/ into components in target/plugins/, with
# the switchyard binary given as $1 (its `plugin build` command).
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:?usage: build-plugins.sh PATH-TO-SWITCHYARD}"
out="${PLUGINS_OUT:-target/plugins}"
for dir in plugins/*/ plugins/test-fixtures/*/; do
    [ -f "$dir/Cargo.toml" ] || continue
    # Plugins are cdylib crates; a library such as the guest helper is not.
    grep -q 'crate-type = \["cdylib"\]' "$dir/Cargo.toml" || continue
    "$bin" plugin build "$dir" --out "$out"
done
# Python plugins (plugins/python/*/app.py), with componentize-py.
PLUGINS_OUT="$out" scripts/build-python-plugins.sh
