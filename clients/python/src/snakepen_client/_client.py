"""The synchronous client."""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Generator, Iterator, Sequence
from types import TracebackType
from typing import Any, Callable, TypeVar

import httpx

from ._base import DEFAULT_BASE_URL, JSON_HEADERS, STREAM_HEADERS, BaseClient, error_of, transport_errors
from ._errors import ConnectionFailed
from ._protocol import (
    OPENED,
    RETRYABLE,
    BatchCall,
    EventReader,
    backoff,
    batch_body,
    batch_results,
    call_body,
    cut_short,
    decode,
    encode,
    payload_of,
)

T = TypeVar("T")


class Client(BaseClient):
    """A client of `snakepen serve`, over one pool of HTTP connections.

    `token` defaults to the SNAKEPEN_TOKEN variable; `pool` is the pool
    every call goes to unless it names its own; `retries` is how many times
    an idempotent call (and any GET) is sent again after a crashed worker,
    a full pool, an unavailable server or a failed connection (never after
    a timeout, an exception or a bad request). `transport` replaces
    httpx's (an `httpx.MockTransport` in tests, or one with proxies or
    certificates of its own).
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        token: str | None = None,
        timeout: float | httpx.Timeout | None = 60.0,
        pool: str | None = None,
        retries: int = 0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(token=token, pool=pool, retries=retries)
        self._http = httpx.Client(base_url=base_url, timeout=timeout, headers=self._headers, transport=transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Closes the connections (a stream still open is cut)."""
        self._http.close()

    def call(
        self,
        command: str,
        payload: Any = None,
        *,
        session: str | None = None,
        deadline_ms: int | None = None,
        pool: str | None = None,
        idempotent: bool = False,
    ) -> Any:
        """Runs one call; returns its answer: JSON as Python values, `bytes`
        for an answer that is not JSON, None for no answer. A JSON object
        payload is the handler's keyword arguments, an array its positional
        ones, another value its one argument, None no arguments.

        `idempotent=True` says the call may run twice, which lets the
        client's `retries` apply to it."""
        body = call_body(command, payload, session, deadline_ms)
        return payload_of(self._request("POST", self._route("call", pool), body, retry=idempotent))

    def batch(self, calls: Sequence[BatchCall], *, pool: str | None = None) -> list[Any]:
        """Runs many calls in one request (a session's calls in order, the
        rest at once); returns, in order, each call's answer, or its typed
        exception as a value (not raised: the other calls succeeded)."""
        return batch_results(self._request("POST", self._route("batch", pool), batch_body(calls), retry=False))

    def stream(
        self,
        command: str,
        payload: Any = None,
        *,
        session: str | None = None,
        deadline_ms: int | None = None,
        pool: str | None = None,
    ) -> Stream:
        """Runs a streaming handler (a generator); the returned `Stream`
        yields its chunks as they come. The request is sent when iteration
        starts (or the `with` block is entered)."""
        body = call_body(command, payload, session, deadline_ms)
        return Stream(functools.partial(self._open_stream, self._route("stream", pool), body))

    def status(self) -> dict[str, Any]:
        """The server's adapter, pool and counters (GET /v1/status)."""
        status: dict[str, Any] = self._request("GET", "/v1/status", retry=True)
        return status

    def functions(self, pool: str | None = None) -> list[dict[str, Any]]:
        """The commands the workers serve: each with its name, docstring,
        kind, parameters and the JSON Schema of its payloads."""
        functions: list[dict[str, Any]] = self._request("GET", self._route("functions", pool), retry=True)["functions"]
        return functions

    def health(self) -> bool:
        """Whether the server is up (GET /healthz); False when it cannot be
        reached, so a probe needs no exception handling."""
        return self._probe("/healthz")

    def ready(self) -> bool:
        """Whether every worker is ready and the server is not draining
        (GET /readyz); False when it cannot be reached."""
        return self._probe("/readyz")

    def _probe(self, path: str) -> bool:
        try:
            response = self._retrying(functools.partial(self._send, "GET", path, accept=(503,)), retry=True)
        except ConnectionFailed:
            return False
        return response.status_code == 200

    def _request(self, method: str, path: str, body: Any = None, *, retry: bool) -> Any:
        """The JSON answer of one request, sent again on retryable errors
        when `retry`."""
        response = self._retrying(functools.partial(self._send, method, path, body), retry=retry)
        return decode(response.content, response.status_code)

    def _retrying(self, attempt: Callable[[], T], *, retry: bool) -> T:
        for n in self._attempts(retry):
            try:
                return attempt()
            except RETRYABLE as error:
                time.sleep(backoff(n, error))
        return attempt()

    def _send(self, method: str, path: str, body: Any = None, accept: tuple[int, ...] = ()) -> httpx.Response:
        """One request; an answer that is not a success (and not in
        `accept`) raises its typed error."""
        content, headers = (None, None) if body is None else (encode(body), JSON_HEADERS)
        with transport_errors():
            response = self._http.request(method, path, content=content, headers=headers)
        if not response.is_success and response.status_code not in accept:
            raise error_of(response)
        return response

    @contextlib.contextmanager
    def _open_stream(self, path: str, body: Any) -> Iterator[httpx.Response]:
        """The streamed answer, open until the block ends; failures while
        it is read are the API's too."""
        with (
            transport_errors(),
            self._http.stream("POST", path, content=encode(body), headers=STREAM_HEADERS) as response,
        ):
            if not response.is_success:
                response.read()
                raise error_of(response)
            yield response


class Stream:
    """The chunks of one streamed call, as they arrive; then `result` is
    what the handler returned and `worker_pid` the worker that ran it.

    The answer's connection is closed when the iteration ends, when the
    `with` block ends, on `close()`, or when the stream is garbage
    collected: the server then stops the handler's generator, whose
    `finally` blocks run. An `error` event raises its typed exception from
    the iteration."""

    def __init__(self, opener: Callable[[], contextlib.AbstractContextManager[httpx.Response]]) -> None:
        self._reader = EventReader()
        self._chunks = _chunks(opener, self._reader)
        self._started = False

    @property
    def result(self) -> Any:
        """The handler's return value (None until the stream has ended)."""
        return self._reader.result

    @property
    def worker_pid(self) -> int | None:
        """The worker that ran the call (None until the stream has ended)."""
        return self._reader.worker_pid

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> Any:
        self._start()
        return next(self._chunks)

    def __enter__(self) -> Stream:
        self._start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stops reading and closes the answer's connection."""
        self._chunks.close()

    def _start(self) -> None:
        """Sends the request, once: an error answer raises here."""
        if not self._started:
            self._started = True
            next(self._chunks)


def _chunks(
    opener: Callable[[], contextlib.AbstractContextManager[httpx.Response]], reader: EventReader
) -> Generator[Any, None, None]:
    """The stream's chunks. A generator of its own, holding no reference
    to its `Stream`, so that dropping the stream closes the answer at once
    (the generator's `with` exits), not at the next cycle collection.
    It first yields a marker once the answer is open."""
    with opener() as response:
        yield OPENED
        for line in response.iter_lines():
            has_chunk, chunk = reader.feed(line)
            if has_chunk:
                yield chunk
            elif reader.ended:
                return
    raise cut_short()
