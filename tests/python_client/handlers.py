"""Handlers that the Python client's tests call through a real
`snakepen serve`: one per behaviour of the API the client must read."""

import time


def echo(x=None):
    """Answers what it was given."""
    return x


def add(a: int, b: int) -> int:
    """Adds two integers."""
    return a + b


def arguments(*args, **kwargs):
    """How the payload reached the handler: positional and keyword arguments."""
    return {"args": list(args), "kwargs": kwargs}


def boom():
    """Raises, so the caller gets a python-exception with its traceback."""
    raise ValueError("boom")


def count(n: int):
    """Streams 0 .. n-1, a little apart, then returns how many it sent."""
    for i in range(n):
        time.sleep(0.01)
        yield i
    return {"sent": n}


def forever(marker: str):
    """Streams until its caller goes away; then its `finally` writes
    `marker`, which shows the server closed the generator."""
    try:
        i = 0
        while True:
            time.sleep(0.01)
            yield i
            i += 1
    finally:
        with open(marker, "w") as f:
            f.write("closed")


def blob() -> bytes:
    """Answers bytes that are not UTF-8, so they cannot be JSON."""
    return b"\xff\xfe\x00snake\x80"


def nothing() -> bytes:
    """Answers no bytes at all: an empty answer."""
    return b""


def slow(ms: int):
    """Sleeps `ms` milliseconds, then answers them."""
    time.sleep(ms / 1000)
    return ms
