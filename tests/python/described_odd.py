"""Handlers whose signatures are hard to describe, for the test that a
worker's start never fails on describing them."""

import enum
import math
import threading
import time
from typing import Literal


class Speed(enum.Enum):
    FAST = object()  # a value JSON cannot carry


def choose(speed: Literal[Speed.FAST] = Speed.FAST):
    return "chosen"


def bounded(x=math.inf, y: float = math.nan):
    return "bounded"


def split(a, /, *, b):
    return [a, b]


def spread(*values: int):
    return sum(values)


def proxied(x):
    return x


proxied.__wrapped__ = proxied  # a cycle, as some proxies have


# A module that leaves a thread running: `inspect --module` must not wait for it.
threading.Thread(target=time.sleep, args=(3600,), daemon=False).start()
