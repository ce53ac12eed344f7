"""Handlers the integration and chaos tiers call. Each one shows one behaviour."""

import asyncio
import dataclasses
import datetime
import enum
import os
import sys
import time
import uuid

_state = {}


def echo(*args, **kwargs):
    return {"args": list(args), "kwargs": kwargs}


def add(a, b):
    return a + b


def nothing():
    return None


def sleep(ms):
    time.sleep(ms / 1000)
    return {"slept_ms": ms, "pid": os.getpid()}


def pid():
    return os.getpid()


def boom(message="boom"):
    raise ValueError(message)


def talk(text):
    print("stdout says", text)
    print("stderr says", text, file=sys.stderr)
    return "said"


def not_json():
    return {1, 2, 3}


def echo_bytes(data: bytes) -> bytes:
    return data


def length(data: "bytes"):
    return len(data)


def as_bytes(text):
    return text.encode()


def die(code=3):
    sys.stderr.write("about to die with %d\n" % code)
    sys.stderr.flush()
    os._exit(code)


def remember(key, value):
    _state[key] = value
    return len(_state)


def recall(key):
    return _state.get(key)


def blob(size):
    return "x" * size


def crash_once(marker):
    """Dies the first time it is called with `marker`, succeeds afterwards."""
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return "survived"


_tickets = [0]


def ticket():
    """The order in which this worker served its `ticket` calls: 1, 2, 3, …"""
    _tickets[0] += 1
    return _tickets[0]


def hold_gil(seconds):
    """Sleeps in C without releasing the GIL (ctypes.PyDLL keeps it held), as
    a stuck C extension would: no Python thread of this process can run."""
    import ctypes

    ctypes.PyDLL(None).sleep(int(seconds))
    return "woke"


def loaded(name):
    """Whether module `name` is imported in this worker."""
    return name in sys.modules


class Colour(enum.Enum):
    RED = "red"
    DEEP = {"nested": [1, 2]}


def kinds():
    """Answers of every kind the worker's JSON rules name."""
    return {
        "text": "caf\u00e9 \u2603 \U0001f40d",
        "big": 12345678901234567890123,
        "float": 1e16,
        "keys": {1: "int key", None: "none key"},
        "enum": [Colour.RED, Colour.DEEP],
        "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "none": None,
        "deep": nested(300),
    }


def kind(name):
    """One of `kinds()`, alone."""
    return kinds()[name]


def nested(depth):
    value = "deep"
    for _ in range(depth):
        value = [value]
    return value


def a_nan():
    return [None, float("nan")]


def an_infinity():
    return {"x": float("-inf")}


def a_date():
    return datetime.date(2026, 12, 3)


def a_dataclass():
    return Point(1, 2)


class Reply:
    """Like a DSPy Prediction: not JSON itself, but it has toDict()."""

    def __init__(self, **fields):
        self.fields = fields

    def toDict(self):
        return dict(self.fields)


def a_prediction():
    return Reply(answer="42", steps=[Point(1, 2)])


@dataclasses.dataclass
class Point:
    x: int
    y: int


def kinds_without_null():
    """Answers orjson writes by itself (no null, no big integer)."""
    return {
        "text": "caf\u00e9",
        "float": 1e16,
        "enum": Colour.RED,
        "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "list": [1, 2.5, True, "x"],
    }


async def later(ms, value):
    """An async handler: answers `value` after `ms` milliseconds."""
    await asyncio.sleep(ms / 1000)
    return value


async def async_boom(message):
    await asyncio.sleep(0)
    raise ValueError(message)


async def loop_id():
    """Which event loop runs this worker's async handlers."""
    return id(asyncio.get_running_loop())


_napping = [0]


async def nap(seconds):
    """Awaits `seconds`, then says which worker it ran on."""
    _napping[0] += 1
    try:
        await asyncio.sleep(seconds)
    finally:
        _napping[0] -= 1
    return os.getpid()


async def napping():
    """How many `nap` calls this worker is running."""
    return _napping[0]


def doze(seconds):
    """Sleeps `seconds` on a thread (the GIL let go), then says which worker."""
    time.sleep(seconds)
    return os.getpid()


_cleanups = []


async def nap_then_mark(seconds, marker):
    """Awaits `seconds`; if cancelled first, writes `marker` (its finally ran)."""
    try:
        await asyncio.sleep(seconds)
    finally:
        with open(marker, "w") as f:
            f.write(str(os.getpid()))
    return os.getpid()


_produced = [0]


def count(n, fail_after=None, marker=None):
    """Streams 0 .. n-1 (raising after `fail_after` chunks, if given), then
    returns a summary; writes `marker` when the generator is closed."""
    try:
        for i in range(n):
            if fail_after is not None and i == fail_after:
                raise ValueError("failed after %d chunks" % i)
            _produced[0] += 1
            yield i
        return "counted %d" % n
    finally:
        if marker:
            with open(marker, "w") as f:
                f.write("closed")


async def acount(n, pause=0.0, marker=None):
    """Streams 0 .. n-1 from an async generator, `pause` seconds apart."""
    try:
        for i in range(n):
            await asyncio.sleep(pause)
            _produced[0] += 1
            yield i
    finally:
        if marker:
            with open(marker, "w") as f:
                f.write("closed")


def produced():
    """How many chunks this worker's generators have yielded so far."""
    return _produced[0]
