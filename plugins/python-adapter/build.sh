#!/usr/bin/env bash
# Builds the Python adapter (app.py beside this file) into a WebAssembly
# component with componentize-py:
#   target/plugins/fixtures/python-adapter.wasm
#
# componentize-py lives in a venv under target/ (ignored by git), made and
# filled here when missing, so a fresh clone needs only python3 with venv and
# pip. Running it again installs nothing more, and rebuilds the component
# only when its inputs changed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
venv="$root/target/componentize-venv"
out_dir="$root/target/plugins/fixtures"
out="$out_dir/python-adapter.wasm"

# Pinned: the bindings' module names and the component's WASI imports change
# between releases, and the host (wasmtime 48, WASI 0.2) was tested with this one.
componentize_py_version=0.25.1

say() { printf 'python-adapter: %s\n' "$*" >&2; }

if ! command -v python3 >/dev/null; then
    say "python3 is missing. Install it, for example:"
    say "  sudo apt-get install -y python3 python3-venv"
    exit 1
fi

if [ ! -x "$venv/bin/python" ]; then
    say "creating $venv"
    if ! python3 -m venv "$venv"; then
        rm -rf "$venv"
        say "python3 cannot make a venv. Install its venv module, for example:"
        say "  sudo apt-get install -y python3-venv"
        exit 1
    fi
fi

installed=$("$venv/bin/python" -m pip show componentize-py 2>/dev/null | sed -n 's/^Version: //p' || true)
if [ "$installed" != "$componentize_py_version" ]; then
    say "installing componentize-py==$componentize_py_version into $venv"
    if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
            "componentize-py==$componentize_py_version"; then
        say "pip could not install componentize-py. Try it by hand to see why:"
        say "  $venv/bin/python -m pip install componentize-py==$componentize_py_version"
        exit 1
    fi
fi

# What the component is built from; an unchanged one is not rebuilt (a
# build takes about 10 s, and its output is not byte-for-byte stable).
stamp="$out_dir/python-adapter.stamp"
inputs=$( (cat "$here/app.py" "$here/build.sh" "$root/wit/adapter.wit"; echo "$componentize_py_version") | sha256sum | cut -d' ' -f1)
if [ -f "$out" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$inputs" ]; then
    printf '%8d  %s (unchanged)\n' "$(stat -c %s "$out")" "target/plugins/fixtures/python-adapter.wasm"
    exit 0
fi

mkdir -p "$out_dir"
# app.py is copied to a scratch folder first: componentize-py runs the app
# once while building and leaves a __pycache__ beside it, which belongs in
# no source folder.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cp "$here/app.py" "$scratch/"

# -d wit: the contract's current version (the since_v* folders beside it are
# not read; only a `deps` folder would be). VIRTUAL_ENV is unset so that no
# caller's packages are bundled: app.py needs the standard library alone.
(cd "$scratch" && env -u VIRTUAL_ENV "$venv/bin/componentize-py" --quiet \
    -d "$root/wit" -w plugin componentize -p "$scratch" -o "$scratch/app.wasm" app)

# The output differs by a few KiB from one build to the next (the snapshot of
# the interpreter's heap taken while building is not byte-for-byte stable);
# its behaviour is the same. The stamp says what it was built from.
chmod 644 "$scratch/app.wasm"
cmp -s "$scratch/app.wasm" "$out" 2>/dev/null || mv "$scratch/app.wasm" "$out"
printf '%s\n' "$inputs" > "$stamp"
printf '%8d  %s\n' "$(stat -c %s "$out")" "target/plugins/fixtures/python-adapter.wasm"
