"""Handlers the integration and chaos tiers call. Each one shows one behaviour."""

import os
import sys
import time

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
