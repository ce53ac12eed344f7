#!/usr/bin/env bash
# Serves examples/dspy/handlers.py (on target/dspy-venv, which `just dspy-venv`
# makes) and streams one answer with curl, then a second one of the same
# session. Run it through `just demo-dspy`.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
log="$(mktemp)"
"$root/target/release/snakepen" serve --module "$root/examples/dspy/handlers.py" \
    --python "$root/target/dspy-venv/bin/python" --affinity strict \
    --listen 127.0.0.1:0 > "$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -f "$log"' EXIT
url=""
for _ in $(seq 600); do  # up to a minute for DSPy's import
    url="$(grep -o 'http://127.0.0.1:[0-9]*' "$log" | head -1 || true)"
    if [ -n "$url" ] && grep -q "ready" "$log"; then break; fi
    if ! kill -0 $server 2>/dev/null; then cat "$log"; exit 1; fi
    sleep 0.1
done
[ -n "$url" ] || { echo "the server did not start:"; cat "$log"; exit 1; }
for question in "Why do cats sit on mats?" "And dogs?"; do
    echo "\$ curl -N $url/v1/stream  ($question)"
    curl -sS -N "$url/v1/stream" -H 'content-type: application/json' \
        -d "{\"command\": \"ask\", \"payload\": {\"question\": \"$question\", \"session\": \"reader-1\"}, \"session\": \"reader-1\"}"
done
