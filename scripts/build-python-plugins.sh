#!/usr/bin/env bash
# Build the Python plugins in plugins/python/*/ (each an `app.py`) into
# components in target/plugins/<name>.wasm with componentize-py, against the
# world in wit/. componentize-py is installed with pip into a virtualenv at
# target/py-venv the first time (pinned: the generated components must match
# the host's wasmtime/wasmtime-wasi). PY_VENV and PLUGINS_OUT override the
# locations; PYTHON picks the interpreter used to create the virtualenv.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${PLUGINS_OUT:-target/plugins}"
venv="${PY_VENV:-target/py-venv}"
version="0.25.1"

say() { echo "build-python-plugins: $*" >&2; }

shopt -s nullglob
apps=(plugins/python/*/app.py)
if [ ${#apps[@]} -eq 0 ]; then
    say "no Python plugins"
    exit 0
fi

cpy="$venv/bin/componentize-py"
if ! "$cpy" --version 2>/dev/null | grep -qx "componentize-py $version"; then
    python="${PYTHON:-python3}"
    say "installing componentize-py==$version into $venv"
    [ -x "$venv/bin/python" ] || "$python" -m venv "$venv" || {
        say "'$python -m venv' failed (Debian: apt-get install python3-venv)"
        exit 1
    }
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "componentize-py==$version"
fi

mkdir -p "$out"
for app in "${apps[@]}"; do
    dir="$(dirname "$app")"
    name="$(basename "$dir")"
    wasm="$out/$name.wasm"
    if [ -f "$wasm" ] && [ -z "$(find "$dir" wit "$cpy" -newer "$wasm" -print -quit)" ]; then
        say "$wasm is up to date"
        continue
    fi
    start=$(date +%s.%N)
    "$cpy" -d wit -w plugin componentize app -p "$dir" -o "$wasm" >/dev/null
    secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
    size=$(awk -v b="$(stat -c %s "$wasm")" 'BEGIN { printf "%.1f", b / 1048576 }')
    say "built $wasm ($size MiB, ${secs}s, componentize-py $version)"
done
