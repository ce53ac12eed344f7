"""A real `snakepen serve` for the client's tests, started once per session.

It needs SNAKEPEN_BIN (the `snakepen` binary), SNAKEPEN_PLUGINS (a
directory with python-bridge.wasm) and SNAKEPEN_PYTHON (the workers'
interpreter); without them the tests that need the server fail, saying
so. The integration tier sets them (tests/integration/python_client.rs).
"""

from __future__ import annotations

import os
import queue
import re
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest
from snakepen_client import AsyncClient, Client

HERE = Path(__file__).resolve().parent
LISTENING = re.compile(r"listening on (http://\S+)")
START_WITHIN_S = 120  # the first start compiles the adapter (cached after)
READY_WITHIN_S = 30


@dataclass
class Server:
    url: str
    token: str


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "functions: needs GET /v1/functions (handler descriptions)")


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The server, with a token of its own, on a port it picked."""
    missing = [name for name in ("SNAKEPEN_BIN", "SNAKEPEN_PLUGINS", "SNAKEPEN_PYTHON") if not os.environ.get(name)]
    if missing:
        pytest.fail(
            f"these tests need a snakepen server: set {', '.join(missing)} "
            "(the integration tier sets them: cargo test --test integration python_client)"
        )
    token = secrets.token_hex(16)
    log = tmp_path_factory.mktemp("server") / "stderr.log"
    with open(log, "wb") as stderr:
        process = subprocess.Popen(
            server_command(),
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, "SNAKEPEN_TOKEN": token},
        )
    try:
        url = listening_url(process, log)
        wait_ready(url, process, log)
        yield Server(url, token)
    finally:
        stop(process)


def server_command() -> list[str]:
    return [
        os.environ["SNAKEPEN_BIN"],
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--adapter",
        str(Path(os.environ["SNAKEPEN_PLUGINS"]) / "python-bridge.wasm"),
        "--module",
        str(HERE / "handlers.py"),
        "--pool-size",
        "2",
        "--python",
        os.environ["SNAKEPEN_PYTHON"],
    ]


def listening_url(process: subprocess.Popen[str], log: Path) -> str:
    """The address from the line the server prints once it listens (given
    port 0, it picks one). Stdout is read on a thread so the wait is bounded."""
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=forward_lines, args=(process.stdout, lines), daemon=True).start()
    deadline = time.monotonic() + START_WITHIN_S
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            pytest.fail(f"the server printed no address within {START_WITHIN_S} s:\n{log.read_text()}")
        if line is None:
            pytest.fail(f"the server exited ({process.wait()}) before listening:\n{log.read_text()}")
        match = LISTENING.search(line)
        if match:
            return match.group(1)


def forward_lines(stream: IO[str] | None, lines: queue.Queue[str | None]) -> None:
    """Every line of `stream`, then None at its end; reading to the end also
    keeps the server from blocking on a full pipe."""
    assert stream is not None
    for line in stream:
        lines.put(line)
    lines.put(None)


def wait_ready(url: str, process: subprocess.Popen[str], log: Path) -> None:
    with Client(url, timeout=2.0) as client:
        deadline = time.monotonic() + READY_WITHIN_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"the server exited ({process.returncode}):\n{log.read_text()}")
            if client.ready():
                return
            time.sleep(0.1)
    pytest.fail(f"the server was not ready within {READY_WITHIN_S} s:\n{log.read_text()}")


def stop(process: subprocess.Popen[str]) -> None:
    """SIGTERM (the server drains, then stops its workers), SIGKILL if it
    has not exited within 10 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def client(server: Server) -> Iterator[Client]:
    with Client(server.url, token=server.token) as client:
        yield client


@pytest.fixture
async def aclient(server: Server) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(server.url, token=server.token) as client:
        yield client
