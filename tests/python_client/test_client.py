"""The client against a real `snakepen serve` of handlers.py (see conftest)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import Server
from snakepen_client import (
    AsyncClient,
    BadRequest,
    Client,
    NoSuchCommand,
    PythonException,
    Timeout,
    Unauthorized,
)

CONVENTIONS = [
    (None, {"args": [], "kwargs": {}}),
    ({"a": 1, "b": [2]}, {"args": [], "kwargs": {"a": 1, "b": [2]}}),
    ([1, "two"], {"args": [1, "two"], "kwargs": {}}),
    ("one", {"args": ["one"], "kwargs": {}}),
    (7, {"args": [7], "kwargs": {}}),
]
BLOB = b"\xff\xfe\x00snake\x80"


def wait_for(path: Path, within_s: float = 10.0) -> bool:
    """Whether `path` appears within `within_s` (a handler's `finally` writes it)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if path.exists():
            return True
        time.sleep(0.05)
    return False


def test_call(client: Client) -> None:
    assert client.call("add", {"a": 2, "b": 3}) == 5


@pytest.mark.parametrize(("payload", "expected"), CONVENTIONS)
def test_payload_conventions(client: Client, payload: Any, expected: Any) -> None:
    """An object is keyword arguments, an array positional ones, another
    value one argument, and no payload no arguments."""
    assert client.call("arguments", payload) == expected


def test_bytes_and_empty_answers(client: Client) -> None:
    assert client.call("blob") == BLOB
    assert client.call("nothing") is None


def test_python_exception(client: Client) -> None:
    with pytest.raises(PythonException) as caught:
        client.call("boom")
    error = caught.value
    assert (error.status, error.type_name, error.remote_message) == (500, "ValueError", "boom")
    assert "boom" in error.traceback
    assert str(error) == "ValueError: boom"


def test_no_such_command(client: Client) -> None:
    with pytest.raises(NoSuchCommand) as caught:
        client.call("no_such_thing")
    assert caught.value.status == 404


def test_timeout_from_the_deadline(client: Client) -> None:
    with pytest.raises(Timeout) as caught:
        client.call("slow", {"ms": 5000}, deadline_ms=200)
    assert caught.value.status == 504


def test_batch_mixes_answers_and_errors(client: Client) -> None:
    results = client.batch(
        [
            ("add", [1, 2]),
            ("boom", None),
            {"command": "echo", "payload": {"x": "hi"}, "session": "s1"},
            ("no_such_thing", {}),
            ("blob", None),
        ]
    )
    assert results[0] == 3
    assert isinstance(results[1], PythonException) and results[1].status == 500
    assert results[2] == "hi"
    assert isinstance(results[3], NoSuchCommand) and results[3].status == 404
    assert results[4] == BLOB


def test_stream(client: Client) -> None:
    with client.stream("count", {"n": 5}) as stream:
        assert list(stream) == [0, 1, 2, 3, 4]
    assert stream.result == {"sent": 5}
    assert isinstance(stream.worker_pid, int)


def test_stream_error_event_raises(client: Client) -> None:
    with pytest.raises(PythonException) as caught:
        list(client.stream("boom"))
    assert caught.value.type_name == "ValueError"


def test_stream_refused_before_it_starts(client: Client) -> None:
    with pytest.raises(BadRequest) as caught:
        list(client.stream("count", [1], deadline_ms=-1))
    assert caught.value.status == 400


def test_stream_left_early_stops_the_handler(client: Client, tmp_path: Path) -> None:
    """Breaking out of the loop drops the stream, which closes the answer:
    the server closes the generator and its `finally` runs."""
    marker = tmp_path / "closed"
    for chunk in client.stream("forever", [str(marker)]):
        if chunk == 3:
            break
    assert wait_for(marker)


def test_stream_closed_by_its_with_block(client: Client, tmp_path: Path) -> None:
    marker = tmp_path / "closed"
    with client.stream("forever", [str(marker)]) as stream:
        assert next(stream) == 0
    assert wait_for(marker)
    assert client.call("add", [1, 1]) == 2


def test_status(client: Client) -> None:
    status = client.status()
    assert status["pool"]["status"]["size"] == 2
    assert status["draining"] is False


def test_health_and_ready(client: Client) -> None:
    assert client.health() is True
    assert client.ready() is True


def test_the_token_is_needed(server: Server) -> None:
    with Client(server.url, token="not-the-token") as client:
        with pytest.raises(Unauthorized) as caught:
            client.status()
        assert caught.value.status == 401
        assert client.health() is True  # the probes are open to all


@pytest.mark.functions
def test_functions(client: Client) -> None:
    functions = {f["name"]: f for f in client.functions()}
    assert {"echo", "add", "count"} <= functions.keys()
    add = functions["add"]
    assert [(p["name"], p.get("annotation")) for p in add["parameters"]] == [("a", "int"), ("b", "int")]
    assert "Adds two integers" in add["doc"]
    assert isinstance(add["schema"], dict)


# The same through AsyncClient.


@pytest.mark.anyio
async def test_async_call(aclient: AsyncClient) -> None:
    assert await aclient.call("add", [2, 3]) == 5


@pytest.mark.anyio
@pytest.mark.parametrize(("payload", "expected"), CONVENTIONS)
async def test_async_payload_conventions(aclient: AsyncClient, payload: Any, expected: Any) -> None:
    assert await aclient.call("arguments", payload) == expected


@pytest.mark.anyio
async def test_async_bytes_answer(aclient: AsyncClient) -> None:
    assert await aclient.call("blob") == BLOB


@pytest.mark.anyio
async def test_async_errors(aclient: AsyncClient) -> None:
    with pytest.raises(PythonException) as caught:
        await aclient.call("boom")
    assert caught.value.type_name == "ValueError" and "boom" in caught.value.traceback
    with pytest.raises(NoSuchCommand):
        await aclient.call("no_such_thing")
    with pytest.raises(Timeout):
        await aclient.call("slow", [5000], deadline_ms=200)


@pytest.mark.anyio
async def test_async_batch(aclient: AsyncClient) -> None:
    results = await aclient.batch([("add", [1, 2]), ("boom", None)])
    assert results[0] == 3 and isinstance(results[1], PythonException)


@pytest.mark.anyio
async def test_async_stream(aclient: AsyncClient) -> None:
    async with aclient.stream("count", [5]) as stream:
        assert [chunk async for chunk in stream] == [0, 1, 2, 3, 4]
    assert stream.result == {"sent": 5}


@pytest.mark.anyio
async def test_async_stream_left_early_stops_the_handler(aclient: AsyncClient, tmp_path: Path) -> None:
    marker = tmp_path / "closed"
    async with aclient.stream("forever", [str(marker)]) as stream:
        async for chunk in stream:
            if chunk == 3:
                break
    assert await anyio.to_thread.run_sync(wait_for, marker)


@pytest.mark.anyio
async def test_async_status_and_probes(aclient: AsyncClient) -> None:
    assert (await aclient.status())["pool"]["status"]["size"] == 2
    assert await aclient.health() and await aclient.ready()


@pytest.mark.anyio
@pytest.mark.functions
async def test_async_functions(aclient: AsyncClient) -> None:
    assert "echo" in {f["name"] for f in await aclient.functions()}
