#!/usr/bin/env bash
# `just new-adapter NAME`: makes plugins/NAME from plugins/template, adds it
# to the plugins workspace, runs its own tests, builds it to
# target/plugins/NAME.wasm and calls it once through the host.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
name=${1:-}
say() { printf 'new-adapter: %s\n' "$*" >&2; }

if ! [[ "$name" =~ ^[a-z][a-z0-9]*(-[a-z0-9]+)*$ ]]; then
    say "give a name in lowercase words joined by hyphens, such as: just new-adapter rate-limiter"
    exit 2
fi
dest="$root/plugins/$name"
if [ -e "$dest" ]; then
    say "plugins/$name already exists: pick another name, or remove it first"
    exit 2
fi
case "$name" in
    sdk|cassette|template|fixtures|target) say "$name is taken by the plugins workspace itself: pick another name"; exit 2 ;;
esac
# The Rust type: rate-limiter -> RateLimiter.
type=$(python3 -c 'import sys; print("".join(w.capitalize() for w in sys.argv[1].split("-")))' "$name")

mkdir -p "$dest/src"
for file in Cargo.toml src/lib.rs; do
    sed -e "s/__NAME__/$name/g" -e "s/__TYPE__/$type/g" "$root/plugins/template/$file.in" >"$dest/$file"
done
python3 - "$root/plugins/Cargo.toml" "$name" <<'PY'
import re, sys
path, name = sys.argv[1], sys.argv[2]
text = open(path).read()
members = re.search(r'^members = \[(.*)\]$', text, re.M)
entries = [e.strip() for e in members.group(1).split(",") if e.strip()]
if '"%s"' % name not in entries:
    entries.insert(entries.index('"fixtures/*"') if '"fixtures/*"' in entries else len(entries), '"%s"' % name)
    text = text[:members.start(1)] + ", ".join(entries) + text[members.end(1):]
    open(path, "w").write(text)
PY
say "created plugins/$name (type $type); running its tests"
bash "$root/plugins/build.sh" --test "$name"
bash "$root/plugins/build.sh"
say "calling it through the host"
# $SNAKEPEN_BIN: a snakepen already built (the tests pass theirs: cargo is busy running them).
snakepen=${SNAKEPEN_BIN:-}
if [ -z "$snakepen" ]; then
    # The release binary, as `just demo` and `just serve` build it (minutes the first time).
    (cd "$root" && cargo build --release --quiet -p snakepen --bin snakepen)
    snakepen="$root/target/release/snakepen"
fi
"$snakepen" --plugin-dir "$root/target/plugins" call --adapter "$name" hello '"snakepen"'
say "done: edit plugins/$name/src/lib.rs, then \`just plugins\` and \`snakepen call --adapter $name ...\`"
