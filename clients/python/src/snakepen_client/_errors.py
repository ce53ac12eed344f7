"""The typed errors of the API, and how an error body becomes one.

Every error the server sends is `{"error": {"kind", "message", "detail",
"request_id"?}}`; the `kind` picks the class, so callers can catch the
cases they act on (retry a crashed worker, back off from a full pool) and
let the rest through.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar


class SnakepenError(Exception):
    """A call or a request that failed.

    `kind` is the server's error kind (the contract's case, or the API's own
    such as `unauthorized`), `message` its sentence, `status` the HTTP status
    that carried it (None when none did: a connection failure, the error
    event of a stream), `detail` the case's fields (an object or a string),
    `request_id` the id under which a server with hidden internals logged
    the whole error, and `retry_after` the seconds the server asked to wait.
    """

    default_kind: ClassVar[str] = "error"

    def __init__(
        self,
        message: str,
        *,
        kind: str | None = None,
        status: int | None = None,
        detail: Any = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind if kind is not None else self.default_kind
        self.status = status
        self.detail = detail
        self.request_id = request_id
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kind={self.kind!r}, status={self.status!r}, message={self.message!r})"

    def _field(self, name: str) -> Any:
        """One field of `detail`, or None when the server did not send it
        (an older server, or a detail that is only a sentence)."""
        return self.detail.get(name) if isinstance(self.detail, Mapping) else None


class Timeout(SnakepenError):
    """The call's deadline passed (HTTP 504), or no answer came within the
    client's own `timeout` (then `status` is None)."""

    default_kind = "timeout"


class PoolExhausted(SnakepenError):
    """No worker was free before the call's deadline (HTTP 503): the pool's
    counts at that moment say whether to wait or to grow it."""

    default_kind = "pool-exhausted"

    @property
    def busy(self) -> int | None:
        return _int(self._field("busy"))

    @property
    def starting(self) -> int | None:
        return _int(self._field("starting"))

    @property
    def dead(self) -> int | None:
        return _int(self._field("dead"))

    @property
    def waited_ms(self) -> int | None:
        return _int(self._field("waited_ms"))


class WorkerCrashed(SnakepenError):
    """The worker serving the call died (HTTP 502); it is being replaced, so
    an idempotent call may be sent again."""

    default_kind = "worker-crashed"

    @property
    def pid(self) -> int | None:
        return _int(self._field("pid"))

    @property
    def exit_status(self) -> str:
        return _str(self._field("exit_status"))

    @property
    def stderr_tail(self) -> str:
        return _str(self._field("stderr_tail"))


class PythonException(SnakepenError):
    """The handler raised (HTTP 500). Sending the same call again fails the
    same way, so it is never retried."""

    default_kind = "python-exception"

    @property
    def type_name(self) -> str:
        return _str(self._field("type_name"))

    @property
    def remote_message(self) -> str:
        return _str(self._field("message"))

    @property
    def traceback(self) -> str:
        return _str(self._field("traceback"))

    def __str__(self) -> str:
        if not self.type_name:
            return self.message
        return f"{self.type_name}: {self.remote_message}"


class BadRequest(SnakepenError):
    """The request cannot be served as it stands (HTTP 400; also 405, 408
    and 413)."""

    default_kind = "bad-request"


class NoSuchCommand(SnakepenError):
    """No handler has this name (HTTP 404)."""

    default_kind = "no-such-command"


class SessionWorkerGone(SnakepenError):
    """A strict session's worker died (HTTP 409): its state is lost, so the
    session must be built again."""

    default_kind = "session-worker-gone"


class Unavailable(SnakepenError):
    """The service cannot serve this now (HTTP 503), for instance while it
    drains before stopping."""

    default_kind = "unavailable"


class AdapterFault(SnakepenError):
    """The adapter failed: a bug, a trap, a broken invariant (HTTP 500)."""

    default_kind = "adapter-fault"


class CassetteMiss(SnakepenError):
    """A replaying server has no recording for the call (HTTP 404); `detail`
    holds the closest recording and how it differs."""

    default_kind = "cassette-miss"


class Unauthorized(SnakepenError):
    """The server wants its bearer token (HTTP 401): pass `token=` or set
    SNAKEPEN_TOKEN."""

    default_kind = "unauthorized"


class Forbidden(SnakepenError):
    """The request's Host or Origin is not allowed (HTTP 403)."""

    default_kind = "forbidden"


class UnsupportedMediaType(SnakepenError):
    """The body was not sent as JSON (HTTP 415)."""

    default_kind = "unsupported-media-type"


class NoSuchPool(SnakepenError):
    """The server has no pool of that name (HTTP 404)."""

    default_kind = "no-such-pool"


class ConnectionFailed(SnakepenError):
    """The server could not be reached, or the connection broke before the
    answer was whole. The httpx error is the exception's `__cause__`."""

    default_kind = "connection-failed"


_BY_KIND: dict[str, type[SnakepenError]] = {
    cls.default_kind: cls
    for cls in (
        Timeout,
        PoolExhausted,
        WorkerCrashed,
        PythonException,
        BadRequest,
        NoSuchCommand,
        SessionWorkerGone,
        Unavailable,
        AdapterFault,
        CassetteMiss,
        Unauthorized,
        Forbidden,
        UnsupportedMediaType,
        NoSuchPool,
        ConnectionFailed,
    )
}


def error_from_json(error: Any, *, status: int | None = None, retry_after: float | None = None) -> SnakepenError:
    """The typed exception for the `error` object of a body, a batch result
    or a stream's error event; an unknown kind keeps its name on the base
    class, so a newer server's kinds still reach the caller."""
    if not isinstance(error, Mapping) or not isinstance(error.get("kind"), str):
        return SnakepenError(f"the server answered an error of no known shape: {error!r}", status=status)
    kind: str = error["kind"]
    return _BY_KIND.get(kind, SnakepenError)(
        str(error.get("message") or kind),
        kind=kind,
        status=status,
        detail=error.get("detail"),
        request_id=_str(error.get("request_id")) or None,
        retry_after=retry_after,
    )


def error_from_body(status: int, content: bytes, retry_after: str | None) -> SnakepenError:
    """The typed exception for an HTTP answer of status `status`. A body that
    is not the API's (a proxy's page) still gives an error with its status,
    of kind `http-error`."""
    seconds = _seconds(retry_after)
    try:
        body = json.loads(content)
    except ValueError:
        body = None
    if isinstance(body, Mapping) and "error" in body:
        return error_from_json(body["error"], status=status, retry_after=seconds)
    text = content[:200].decode("utf-8", "replace")
    return SnakepenError(
        f"HTTP {status} with a body that is not the API's: {text!r}",
        kind="http-error",
        status=status,
        retry_after=seconds,
    )


def _seconds(retry_after: str | None) -> float | None:
    """`Retry-After` in seconds (the server sends a number of them; an HTTP
    date is taken as absent)."""
    try:
        return max(0.0, float(retry_after)) if retry_after is not None else None
    except ValueError:
        return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""
