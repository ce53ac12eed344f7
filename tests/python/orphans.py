"""Handlers that leave processes behind, for the zero-orphan tests.

Each writes the pid of what it left to the file `marker` (atomically), so
that a test can watch that process after the host is gone.
"""

import ctypes
import os
import subprocess
import time


def _mark(marker, pid):
    with open(marker + ".tmp", "w") as f:
        f.write(str(pid))
    os.rename(marker + ".tmp", marker)


def sleeper(marker, then_ms=0):
    """Starts `sleep 301` in this worker's process group; then waits `then_ms`."""
    child = subprocess.Popen(["sleep", "301"])
    _mark(marker, child.pid)
    time.sleep(then_ms / 1000)
    return child.pid


def unkillable(marker, seconds):
    """Closes the worker's lifeline (fd 4) and sleeps in C holding the GIL,
    so that neither the kernel's lifeline signal nor any Python thread can
    end it: only something outside it can."""
    os.close(4)
    _mark(marker, os.getpid())
    ctypes.PyDLL(None).sleep(int(seconds))
    return "woke"


def daemon(marker, then_ms=0):
    """Double-forks a `setsid` daemon that sleeps for an hour (out of the
    worker's process group and session); then waits `then_ms`."""
    first = os.fork()
    if first == 0:
        os.setsid()
        if os.fork() == 0:
            _mark(marker, os.getpid())
            time.sleep(3600)
        os._exit(0)
    os.waitpid(first, 0)
    while not os.path.exists(marker):
        time.sleep(0.001)
    time.sleep(then_ms / 1000)
    with open(marker) as f:
        return int(f.read())
