"""The asynchronous client: `Client`'s methods as coroutines, and streams
as async iterators."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Sequence
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


class AsyncClient(BaseClient):
    """An asyncio client of `snakepen serve`, over one pool of HTTP
    connections: `Client`'s options and methods, the methods as coroutines
    (but `stream`, whose `AsyncStream` is iterated with `async for`).
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        token: str | None = None,
        timeout: float | httpx.Timeout | None = 60.0,
        pool: str | None = None,
        retries: int = 0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(token=token, pool=pool, retries=retries)
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout, headers=self._headers, transport=transport)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Closes the connections (a stream still open is cut)."""
        await self._http.aclose()

    async def call(
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
        return payload_of(await self._request("POST", self._route("call", pool), body, retry=idempotent))

    async def batch(self, calls: Sequence[BatchCall], *, pool: str | None = None) -> list[Any]:
        """Runs many calls in one request (a session's calls in order, the
        rest at once); returns, in order, each call's answer, or its typed
        exception as a value (not raised: the other calls succeeded)."""
        return batch_results(await self._request("POST", self._route("batch", pool), batch_body(calls), retry=False))

    def stream(
        self,
        command: str,
        payload: Any = None,
        *,
        session: str | None = None,
        deadline_ms: int | None = None,
        pool: str | None = None,
    ) -> AsyncStream:
        """Runs a streaming handler; the returned `AsyncStream` yields its
        chunks as they come. Not a coroutine: the request is sent when
        iteration starts (or the `async with` block is entered)."""
        body = call_body(command, payload, session, deadline_ms)
        return AsyncStream(functools.partial(self._open_stream, self._route("stream", pool), body))

    async def status(self) -> dict[str, Any]:
        """The server's adapter, pool and counters (GET /v1/status)."""
        status: dict[str, Any] = await self._request("GET", "/v1/status", retry=True)
        return status

    async def functions(self, pool: str | None = None) -> list[dict[str, Any]]:
        """The commands the workers serve: each with its name, docstring,
        kind, parameters and the JSON Schema of its payloads."""
        answer = await self._request("GET", self._route("functions", pool), retry=True)
        functions: list[dict[str, Any]] = answer["functions"]
        return functions

    async def health(self) -> bool:
        """Whether the server is up (GET /healthz); False when it cannot be
        reached, so a probe needs no exception handling."""
        return await self._probe("/healthz")

    async def ready(self) -> bool:
        """Whether every worker is ready and the server is not draining
        (GET /readyz); False when it cannot be reached."""
        return await self._probe("/readyz")

    async def _probe(self, path: str) -> bool:
        try:
            response = await self._retrying(functools.partial(self._send, "GET", path, accept=(503,)), retry=True)
        except ConnectionFailed:
            return False
        return response.status_code == 200

    async def _request(self, method: str, path: str, body: Any = None, *, retry: bool) -> Any:
        """The JSON answer of one request, sent again on retryable errors
        when `retry`."""
        response = await self._retrying(functools.partial(self._send, method, path, body), retry=retry)
        return decode(response.content, response.status_code)

    async def _retrying(self, attempt: Callable[[], Awaitable[T]], *, retry: bool) -> T:
        for n in self._attempts(retry):
            try:
                return await attempt()
            except RETRYABLE as error:
                await asyncio.sleep(backoff(n, error))
        return await attempt()

    async def _send(self, method: str, path: str, body: Any = None, accept: tuple[int, ...] = ()) -> httpx.Response:
        """One request; an answer that is not a success (and not in
        `accept`) raises its typed error."""
        content, headers = (None, None) if body is None else (encode(body), JSON_HEADERS)
        with transport_errors():
            response = await self._http.request(method, path, content=content, headers=headers)
        if not response.is_success and response.status_code not in accept:
            raise error_of(response)
        return response

    @contextlib.asynccontextmanager
    async def _open_stream(self, path: str, body: Any) -> AsyncIterator[httpx.Response]:
        """The streamed answer, open until the block ends; failures while
        it is read are the API's too."""
        with transport_errors():
            async with self._http.stream("POST", path, content=encode(body), headers=STREAM_HEADERS) as response:
                if not response.is_success:
                    await response.aread()
                    raise error_of(response)
                yield response


class AsyncStream:
    """The chunks of one streamed call, as they arrive (`async for`); then
    `result` is what the handler returned and `worker_pid` the worker that
    ran it.

    The answer's connection is closed when the iteration ends, when the
    `async with` block ends, on `aclose()`, or when the stream is garbage
    collected (by the event loop, which closes abandoned async
    generators): the server then stops the handler's generator, whose
    `finally` blocks run. An `error` event raises its typed exception from
    the iteration."""

    def __init__(self, opener: Callable[[], contextlib.AbstractAsyncContextManager[httpx.Response]]) -> None:
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

    def __aiter__(self) -> AsyncStream:
        return self

    async def __anext__(self) -> Any:
        await self._start()
        return await self._chunks.__anext__()

    async def __aenter__(self) -> AsyncStream:
        await self._start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stops reading and closes the answer's connection."""
        await self._chunks.aclose()

    async def _start(self) -> None:
        """Sends the request, once: an error answer raises here."""
        if not self._started:
            self._started = True
            await self._chunks.__anext__()


async def _chunks(
    opener: Callable[[], contextlib.AbstractAsyncContextManager[httpx.Response]], reader: EventReader
) -> AsyncGenerator[Any, None]:
    """The stream's chunks. An async generator of its own, holding no
    reference to its `AsyncStream`, so that a dropped stream's generator is
    closed by the event loop's finalizer. It first yields a marker once
    the answer is open."""
    async with opener() as response:
        yield OPENED
        async for line in response.aiter_lines():
            has_chunk, chunk = reader.feed(line)
            if has_chunk:
                yield chunk
            elif reader.ended:
                return
    raise cut_short()
