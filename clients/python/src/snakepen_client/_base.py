"""What `Client` and `AsyncClient` hold alike: the token, the default
pool, the retry budget, and how httpx's answers and failures become the
API's typed errors."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import httpx

from ._errors import ConnectionFailed, SnakepenError, Timeout, error_from_body
from ._protocol import route

__version__ = "0.1.0"

DEFAULT_BASE_URL = "http://127.0.0.1:8787"

#: A POST's body is JSON; the server refuses any other type (415), which
#: keeps web pages from posting to it.
JSON_HEADERS = {"Content-Type": "application/json"}
STREAM_HEADERS = {**JSON_HEADERS, "Accept": "text/event-stream"}


class BaseClient:
    """The settings both clients share."""

    def __init__(self, *, token: str | None, pool: str | None, retries: int) -> None:
        if retries < 0:
            raise ValueError(f"retries must be 0 or more, not {retries}")
        self._pool = pool
        self._retries = retries
        token = token if token is not None else os.environ.get("SNAKEPEN_TOKEN")
        self._headers = {"User-Agent": f"snakepen-client/{__version__}"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"

    def _route(self, endpoint: str, pool: str | None) -> str:
        """The path of `endpoint`, in the call's pool, else the client's."""
        return route(endpoint, pool if pool is not None else self._pool)

    def _attempts(self, retry: bool) -> range:
        """The retries a request may have: the client's budget when the
        request is safe to send again, else none."""
        return range(self._retries if retry else 0)


def error_of(response: httpx.Response) -> SnakepenError:
    """The typed exception of an answer that is not a success (its body
    must have been read)."""
    return error_from_body(response.status_code, response.content, response.headers.get("retry-after"))


@contextlib.contextmanager
def transport_errors() -> Iterator[None]:
    """Turns httpx's failures into the API's: the client's own timeout
    waiting for an answer is a `Timeout` (with no status), anything else
    that kept the answer from arriving whole a `ConnectionFailed`."""
    try:
        yield
    except httpx.ReadTimeout as exc:
        raise Timeout(
            f"no answer within the client's timeout ({exc}); give the client a timeout longer than the calls' deadlines"
        ) from exc
    except httpx.TransportError as exc:
        raise ConnectionFailed(f"the server could not be reached, or the connection broke: {exc!r}") from exc
