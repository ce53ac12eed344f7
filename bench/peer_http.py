"""The HTTP peer of `snakepen serve`: the same handler module (bench/handlers.py)
behind Starlette on uvicorn, the stack a Python user would pick, answering the
same request body (`{"command": ..., "payload": ...}`) with the same answer
shape (`{"ok": true, "value": ...}`). The handler runs in the server's own
process, as a Starlette app would call it.

Run by host/benches/serve.rs: `uvicorn peer_http:app --workers 2 --loop uvloop --http httptools`.
"""

import json
import os
import sys

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import handlers  # noqa: E402

COMMANDS = {name: getattr(handlers, name) for name in ("nothing", "echo", "hold")}


async def call(request: Request) -> Response:
    body = json.loads(await request.body())
    fn = COMMANDS.get(body.get("command"))
    if fn is None:
        return Response(b'{"ok":false,"error":{"kind":"no-such-command"}}', 404, media_type="application/json")
    payload = body.get("payload")
    value = fn(*payload) if isinstance(payload, list) else fn(**(payload or {}))
    return Response(json.dumps({"ok": True, "value": value}, separators=(",", ":")), media_type="application/json")


app = Starlette(routes=[Route("/v1/call", call, methods=["POST"])])
