"""The client against canned answers (`httpx.MockTransport`): error
mapping, retries, routing, headers and stream parsing, with no server."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, Callable, Union

import anyio
import httpx
import pytest
from snakepen_client import (
    AdapterFault,
    AsyncClient,
    BadRequest,
    CassetteMiss,
    Client,
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

Answer = Union[httpx.Response, Exception]
OK = httpx.Response(200, json={"payload": 3, "worker_pid": 11})


class Script:
    """A MockTransport handler that answers from a script and keeps the
    requests it got."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    def client(self, **options: Any) -> Client:
        return Client(transport=httpx.MockTransport(self), **options)

    def async_client(self, **options: Any) -> AsyncClient:
        return AsyncClient(transport=httpx.MockTransport(self), **options)

    def body(self, n: int = -1) -> Any:
        return json.loads(self.requests[n].content)


def error(
    status: int, kind: str, detail: Any = None, headers: dict[str, str] | None = None, **extra: Any
) -> httpx.Response:
    body = {"error": {"kind": kind, "message": f"{kind}: it went wrong", "detail": detail, **extra}}
    return httpx.Response(status, json=body, headers=headers)


def exhausted(retry_after: str | None = None) -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else None
    return error(503, "pool-exhausted", {"busy": 2, "starting": 0, "dead": 0, "waited_ms": 30}, headers)


def sse(*events: str) -> httpx.Response:
    return httpx.Response(200, text="".join(events), headers={"Content-Type": "text/event-stream"})


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits between attempts, recorded instead of slept."""
    waits: list[float] = []
    monkeypatch.setattr(time, "sleep", waits.append)
    return waits


# Errors: each kind its class, with its fields.

CASES = [
    (504, "timeout", Timeout, "deadline passed", {}),
    (
        503,
        "pool-exhausted",
        PoolExhausted,
        {"busy": 2, "starting": 1, "dead": 1, "waited_ms": 150},
        {"busy": 2, "starting": 1, "dead": 1, "waited_ms": 150},
    ),
    (
        502,
        "worker-crashed",
        WorkerCrashed,
        {"pid": 42, "exit_status": "signal 9", "stderr_tail": "oops"},
        {"pid": 42, "exit_status": "signal 9", "stderr_tail": "oops"},
    ),
    (
        500,
        "python-exception",
        PythonException,
        {"type_name": "KeyError", "message": "'x'", "traceback": "Traceback"},
        {"type_name": "KeyError", "remote_message": "'x'", "traceback": "Traceback"},
    ),
    (400, "bad-request", BadRequest, "not JSON", {}),
    (408, "bad-request", BadRequest, None, {}),
    (413, "bad-request", BadRequest, None, {}),
    (404, "no-such-command", NoSuchCommand, "no 'x'", {}),
    (409, "session-worker-gone", SessionWorkerGone, "gone", {}),
    (503, "unavailable", Unavailable, "draining", {}),
    (500, "adapter-fault", AdapterFault, "trap", {}),
    (404, "cassette-miss", CassetteMiss, {"mode": "none", "used_up": 0}, {}),
    (401, "unauthorized", Unauthorized, None, {}),
    (403, "forbidden", Forbidden, None, {}),
    (415, "unsupported-media-type", UnsupportedMediaType, None, {}),
    (404, "no-such-pool", NoSuchPool, "no pool 'x'", {}),
]


def raised_by(answer: Answer) -> SnakepenError:
    """The error a call gets when the server gives `answer`."""
    with Script(answer).client() as client, pytest.raises(SnakepenError) as caught:
        client.call("x")
    return caught.value


@pytest.mark.parametrize(("status", "kind", "cls", "detail", "fields"), CASES)
def test_error_kinds_map_to_classes(
    status: int, kind: str, cls: type[SnakepenError], detail: Any, fields: dict[str, Any]
) -> None:
    raised = raised_by(error(status, kind, detail))
    assert type(raised) is cls
    assert (raised.kind, raised.status, raised.detail) == (kind, status, detail)
    assert raised.message == f"{kind}: it went wrong"
    assert {name: getattr(raised, name) for name in fields} == fields


def test_python_exception_reads_as_the_remote_one() -> None:
    raised = raised_by(error(500, "python-exception", {"type_name": "ValueError", "message": "boom", "traceback": ""}))
    assert str(raised) == "ValueError: boom"


def test_unknown_kind_keeps_its_name() -> None:
    raised = raised_by(error(418, "teapot", "short and stout", request_id="abc-1"))
    assert type(raised) is SnakepenError
    assert (raised.kind, raised.status, raised.request_id) == ("teapot", 418, "abc-1")


def test_a_body_that_is_not_the_apis() -> None:
    raised = raised_by(httpx.Response(502, text="<html>Bad Gateway</html>"))
    assert (raised.kind, raised.status) == ("http-error", 502)


def test_retry_after_is_read() -> None:
    assert raised_by(exhausted("1")).retry_after == 1.0


def test_connection_failure() -> None:
    refused = httpx.ConnectError("connection refused")
    with Script(refused).client() as client:
        with pytest.raises(ConnectionFailed) as caught:
            client.call("x")
        assert (caught.value.kind, caught.value.status) == ("connection-failed", None)
        assert caught.value.__cause__ is refused
        assert client.health() is False and client.ready() is False


def test_the_clients_own_timeout_is_a_timeout() -> None:
    raised = raised_by(httpx.ReadTimeout("timed out"))
    assert (type(raised), raised.status) == (Timeout, None)


# Retries: only for idempotent calls and GETs, only on errors worth it.


def test_idempotent_call_is_retried_on_a_full_pool(sleeps: list[float]) -> None:
    script = Script(exhausted(), exhausted(), OK)
    with script.client(retries=3) as client:
        assert client.call("add", [1, 2], idempotent=True) == 3
    assert len(script.requests) == 3
    assert sleeps == [0.1, 0.2]


def test_a_call_not_marked_idempotent_is_never_retried(sleeps: list[float]) -> None:
    script = Script(exhausted(), OK)
    with script.client(retries=3) as client, pytest.raises(PoolExhausted) as caught:
        client.call("add", [1, 2])
    assert len(script.requests) == 1
    assert (caught.value.busy, caught.value.waited_ms) == (2, 30)


def test_retries_run_out(sleeps: list[float]) -> None:
    script = Script(error(502, "worker-crashed", {"pid": 1}))
    with script.client(retries=2) as client, pytest.raises(WorkerCrashed):
        client.call("x", idempotent=True)
    assert len(script.requests) == 3


def test_retry_after_is_honoured_and_capped(sleeps: list[float]) -> None:
    script = Script(exhausted("1"), exhausted("30"), OK)
    with script.client(retries=2) as client:
        client.call("x", idempotent=True)
    assert sleeps == [1.0, 2.0]


@pytest.mark.parametrize(
    "answer",
    [
        error(504, "timeout", "deadline"),
        error(500, "python-exception", {"type_name": "E", "message": "m", "traceback": ""}),
        error(400, "bad-request", "no"),
        httpx.ReadTimeout("timed out"),
    ],
)
def test_errors_that_would_repeat_are_not_retried(sleeps: list[float], answer: Answer) -> None:
    script = Script(answer, OK)
    with script.client(retries=3) as client, pytest.raises(SnakepenError):
        client.call("x", idempotent=True)
    assert len(script.requests) == 1


def test_connection_failures_and_gets_are_retried(sleeps: list[float]) -> None:
    status = httpx.Response(200, json={"in_flight": 0})
    script = Script(httpx.ConnectError("refused"), error(503, "unavailable", "draining"), status)
    with script.client(retries=2) as client:
        assert client.status() == {"in_flight": 0}
    assert len(script.requests) == 3


def test_a_batch_is_not_retried(sleeps: list[float]) -> None:
    script = Script(error(503, "unavailable", "draining"))
    with script.client(retries=3) as client, pytest.raises(Unavailable):
        client.batch([("x", None)])
    assert len(script.requests) == 1


@pytest.mark.anyio
async def test_async_retries() -> None:
    script = Script(exhausted("0"), exhausted("0"), OK)
    async with script.async_client(retries=2) as client:
        assert await client.call("add", [1, 2], idempotent=True) == 3
        assert len(script.requests) == 3
        script.answers = [exhausted("0"), OK]
        with pytest.raises(PoolExhausted):
            await client.call("add", [1, 2])
    assert len(script.requests) == 4


# Requests: routes, bodies, headers.


def test_pool_routes_the_call() -> None:
    script = Script(OK)
    with script.client() as client:
        client.call("add", [1, 2], pool="nlp")
    assert (script.requests[0].method, script.requests[0].url.path) == ("POST", "/v1/pools/nlp/call")
    assert script.body() == {"command": "add", "payload": [1, 2]}


def test_the_clients_pool_applies_to_every_endpoint() -> None:
    script = Script(OK)
    with script.client(pool="gpu") as client:
        client.call("x")
        client.call("x", pool="cpu")
        script.answers = [httpx.Response(200, json={"results": []})]
        client.batch([])
        script.answers = [httpx.Response(200, json={"functions": []})]
        client.functions()
        script.answers = [sse("event: end\ndata: {}\n\n")]
        list(client.stream("x"))
    paths = [request.url.path for request in script.requests]
    assert paths == [
        "/v1/pools/gpu/call",
        "/v1/pools/cpu/call",
        "/v1/pools/gpu/batch",
        "/v1/pools/gpu/functions",
        "/v1/pools/gpu/stream",
    ]


def test_without_a_pool_the_plain_routes() -> None:
    script = Script(OK)
    with script.client() as client:
        client.call("x")
    assert script.requests[0].url.path == "/v1/call"


def test_call_body_leaves_out_what_is_none() -> None:
    script = Script(OK)
    with script.client() as client:
        client.call("x")
        client.call("x", {"a": None}, session="s", deadline_ms=50)
    assert script.body(0) == {"command": "x"}
    assert script.body(1) == {"command": "x", "payload": {"a": None}, "session": "s", "deadline_ms": 50}


def test_batch_body_and_results() -> None:
    results = {
        "results": [
            {"status": 200, "payload": 3, "worker_pid": 1},
            {"status": 200, "payload_base64": "/w=="},
            {"status": 200},
            {"status": 504, "error": {"kind": "timeout", "message": "t", "detail": "late"}},
        ]
    }
    script = Script(httpx.Response(200, json=results))
    with script.client() as client:
        answers = client.batch(
            [("add", [1, 2]), ("blob", None), {"command": "n", "session": "s", "deadline_ms": None}, ("slow", 9)]
        )
    assert script.body() == {
        "requests": [
            {"command": "add", "payload": [1, 2]},
            {"command": "blob"},
            {"command": "n", "session": "s"},
            {"command": "slow", "payload": 9},
        ]
    }
    assert answers[:3] == [3, b"\xff", None]
    assert isinstance(answers[3], Timeout) and answers[3].status == 504


def test_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SNAKEPEN_TOKEN", "from-env")
    script = Script(OK)
    with script.client() as client:
        client.call("x")
    with script.client(token="given") as client:
        client.status()
    with script.client(token="") as client:
        client.call("x")
    first, second, third = script.requests
    assert first.headers["Authorization"] == "Bearer from-env"
    assert first.headers["Content-Type"] == "application/json"
    assert second.headers["Authorization"] == "Bearer given"
    assert "Authorization" not in third.headers


def test_answers_of_every_shape() -> None:
    script = Script(httpx.Response(200, json={"payload_base64": "AAE=", "worker_pid": 1}))
    with script.client() as client:
        assert client.call("x") == b"\x00\x01"
        script.answers = [httpx.Response(200, json={"worker_pid": 1})]
        assert client.call("x") is None
        script.answers = [httpx.Response(200, json={"payload": None, "worker_pid": 1})]
        assert client.call("x") is None


def test_probes_read_the_status() -> None:
    script = Script(error(503, "unavailable", "starting"))
    with script.client(retries=2) as client:
        assert client.ready() is False
    assert len(script.requests) == 1  # a 503 from /readyz is an answer, not a failure


# Streams: Server-Sent Events as the server writes them.

EVENTS = (
    ": keep-alive\n\n",
    'event: chunk\ndata: {"a":\ndata: 1}\n\n',
    "event: chunk-base64\r\ndata: /w==\r\n\r\n",
    "event: something-newer\ndata: 1\n\n",
    'event: chunk\ndata:"x"\n\n',
    'event: end\ndata: {"payload":{"done":true},"worker_pid":7}\n\n',
)


def test_stream_events() -> None:
    script = Script(sse(*EVENTS))
    with script.client() as client:
        stream = client.stream("tokens", ["a b"], session="s")
        assert list(stream) == [{"a": 1}, b"\xff", "x"]
    assert (stream.result, stream.worker_pid) == ({"done": True}, 7)
    assert script.requests[0].headers["Accept"] == "text/event-stream"
    assert script.body() == {"command": "tokens", "payload": ["a b"], "session": "s"}


def test_stream_error_event_raises_after_the_chunks() -> None:
    failing = 'event: error\ndata: {"error":{"kind":"timeout","message":"late","detail":"idle"}}\n\n'
    with Script(sse("event: chunk\ndata: 1\n\n", failing)).client() as client:
        chunks = []
        with pytest.raises(Timeout) as caught:
            for chunk in client.stream("x"):
                chunks.append(chunk)
    assert chunks == [1]
    assert caught.value.status is None


def test_stream_refused_before_it_starts() -> None:
    with Script(error(404, "no-such-pool", "no pool 'p'")).client() as client:
        stream = client.stream("x", pool="p")
        with pytest.raises(NoSuchPool):
            stream.__enter__()


def test_stream_cut_short() -> None:
    with Script(sse("event: chunk\ndata: 1\n\n")).client() as client, pytest.raises(ConnectionFailed):
        list(client.stream("x"))


class Endless(httpx.SyncByteStream, httpx.AsyncByteStream):
    """An answer that streams chunks until it is closed, and says whether it was."""

    EVENT = b"event: chunk\ndata: 0\n\n"

    def __init__(self) -> None:
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        while not self.closed:
            yield self.EVENT

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while not self.closed:
            yield self.EVENT

    def close(self) -> None:
        self.closed = True

    async def aclose(self) -> None:
        self.closed = True


def endless_client(endless: Endless, make: Callable[..., Any]) -> Any:
    return make(transport=httpx.MockTransport(lambda request: httpx.Response(200, stream=endless)))


@pytest.mark.parametrize("leave", ["break", "close", "with"])
def test_leaving_a_stream_closes_its_answer(leave: str) -> None:
    endless = Endless()
    with endless_client(endless, Client) as client:
        if leave == "break":
            for _ in client.stream("x"):
                break
        elif leave == "close":
            stream = client.stream("x")
            next(stream)
            stream.close()
        else:
            with client.stream("x") as stream:
                next(stream)
        assert endless.closed


@pytest.mark.anyio
async def test_async_stream_events_and_closing() -> None:
    script = Script(sse(*EVENTS))
    async with script.async_client() as client:
        stream = client.stream("tokens")
        assert [chunk async for chunk in stream] == [{"a": 1}, b"\xff", "x"]
        assert stream.result == {"done": True}
    endless = Endless()
    async with endless_client(endless, AsyncClient) as client:
        async with client.stream("x") as stream:
            await stream.__anext__()
        assert endless.closed


@pytest.mark.anyio
async def test_async_stream_dropped_is_closed_by_the_loop() -> None:
    endless = Endless()
    async with endless_client(endless, AsyncClient) as client:
        async for _ in client.stream("x"):
            break
        with anyio.fail_after(5):
            while not endless.closed:
                await anyio.sleep(0.01)
