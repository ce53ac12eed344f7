"""Handlers both sides of the benchmark call: snakepen's workers and the peer's."""

import os
import time


def nothing():
    return None


def echo(data):
    return data


def echo_bytes(data: bytes) -> bytes:
    """The payload as it came, both ways: no JSON in between."""
    return data


def hold(seconds):
    time.sleep(seconds)
    return os.getpid()
