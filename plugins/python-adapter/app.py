"""A snakepen adapter written in Python (world `plugin` of wit/adapter.wit).

It answers two commands by itself and touches none of the host's imports, so
it is a fixture for "a component from another toolchain loads and runs" and a
subject for measuring what an interpreter-in-a-component costs.

    echo   the payload, byte for byte
    greet  the JSON string "<greeting>, <payload>", the payload a JSON string

Configuration (JSON): {"greeting": "<text>"}, greeting defaulting to "hello".

Built by build.sh beside this file with componentize-py, which generates the
`wit_world` bindings imported below while it builds.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports.types import (
    CallError_BadRequest,
    CallError_NoSuchCommand,
    ConfigError,
    Request,
    Response,
)

# The bindings make a fresh `Adapter` object for every export call, so what
# `configure` decides has to live at module level to be seen by `call`. The
# host configures each instance once before its first call.
_greeting = "hello"

_KNOWN_FIELDS = {"greeting"}


class Adapter(exports.Adapter):
    def configure(self, config: str) -> None:
        global _greeting
        try:
            document = json.loads(config)
        except ValueError as error:
            raise Err(ConfigError(None, f"the configuration is not JSON: {error}"))
        if not isinstance(document, dict):
            raise Err(ConfigError(None, "the configuration must be a JSON object"))
        # Refuse what we do not know, by name, as the Rust SDK's
        # deny_unknown_fields does: a misspelt key must not pass silently.
        for key in sorted(document.keys() - _KNOWN_FIELDS):
            raise Err(ConfigError(key, f"unknown field `{key}`; the only field is `greeting`"))
        greeting = document.get("greeting", "hello")
        if not isinstance(greeting, str):
            raise Err(ConfigError("greeting", "must be a string, such as \"hello\""))
        _greeting = greeting

    def call(self, request: Request) -> Response:
        if request.command == "echo":
            return Response(request.payload, None)
        if request.command == "greet":
            name = _payload_text(request)
            return Response(json.dumps(f"{_greeting}, {name}").encode(), None)
        raise Err(CallError_NoSuchCommand(request.command))


def _payload_text(request: Request) -> str:
    # The payload is JSON by the contract's convention: `greet '"bob"'` means
    # the text bob, not the five characters with their quotes.
    try:
        value = json.loads(request.payload)
    except ValueError as error:
        raise Err(CallError_BadRequest(f"{request.command}: the payload is not JSON: {error}"))
    if not isinstance(value, str):
        raise Err(CallError_BadRequest(f"{request.command}: the payload must be a JSON string"))
    return value
