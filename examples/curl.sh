#!/usr/bin/env bash
# Calls a running `snakepen serve` with curl (started by `just serve`):
#     bash examples/curl.sh [URL]
set -euo pipefail
url="${1:-http://127.0.0.1:8787}"
# A server with a token (see "Running it safely" in the README) wants it on every call.
auth=()
if [ -n "${SNAKEPEN_TOKEN:-}" ]; then auth=(-H "authorization: Bearer $SNAKEPEN_TOKEN"); fi

# One call: the answer's payload, and the worker that ran it.
curl -sS --fail-with-body "${auth[@]}" "$url/v1/call" \
    -H 'content-type: application/json' \
    -d '{"command": "word_stats", "payload": {"text": "the cat and the hat"}, "session": "user-7"}'
echo

# An error comes back as JSON with the contract's kind, and a fitting status (404 here).
curl -sS -o /dev/stderr -w '%{http_code}\n' "${auth[@]}" "$url/v1/call" \
    -H 'content-type: application/json' \
    -d '{"command": "no_such_thing"}'
