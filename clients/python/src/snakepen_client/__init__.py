"""A typed client, sync and async, for the HTTP API of `snakepen serve`:
`Client(url).call("add", {"a": 1, "b": 2})`. README.md has the whole API."""

from ._async_client import AsyncClient, AsyncStream
from ._base import __version__
from ._client import Client, Stream
from ._errors import (
    AdapterFault,
    BadRequest,
    CassetteMiss,
    ConnectionFailed,
    Forbidden,
    NoSuchCommand,
    NoSuchPool,
    PoolExhausted,
    PythonException,
    SessionWorkerGone,
    SnakepenError,
    Timeout,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
    WorkerCrashed,
)
from ._protocol import BatchCall

__all__ = [
    "AdapterFault",
    "AsyncClient",
    "AsyncStream",
    "BadRequest",
    "BatchCall",
    "CassetteMiss",
    "Client",
    "ConnectionFailed",
    "Forbidden",
    "NoSuchCommand",
    "NoSuchPool",
    "PoolExhausted",
    "PythonException",
    "SessionWorkerGone",
    "SnakepenError",
    "Stream",
    "Timeout",
    "Unauthorized",
    "Unavailable",
    "UnsupportedMediaType",
    "WorkerCrashed",
    "__version__",
]
