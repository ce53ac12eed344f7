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


async def wait_async(ms):
    """An I/O-bound call as an LLM client makes it: it awaits the network
    (here, a timer) for `ms` milliseconds."""
    import asyncio

    await asyncio.sleep(ms / 1000)


def wait_blocking(ms):
    """The same wait for a process pool, which runs plain functions."""
    time.sleep(ms / 1000)


def memory_of(pids):
    """Resident and proportional set sizes of `pids`, summed, in bytes."""
    rss = pss = 0
    for pid in pids:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss += int(line.split()[1]) * 1024
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1]) * 1024
    return rss, pss


def count_up(n):
    """Streams 0 .. n-1: small chunks, as fast as a generator yields them."""
    for i in range(n):
        yield i
