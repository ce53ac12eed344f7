"""Workers that break the rules, for the pool's hostile-worker tests.

Each function misbehaves towards the host in one way; `ok` is a normal call.
"""

import os
import signal
import struct
import time

REPLIES_FD = 5  # where a worker writes its replies


def ok():
    return os.getpid()


def garbage():
    """Writes bytes that are not a frame where the protocol expects one."""
    os.write(REPLIES_FD, b"\xde\xad\xbe\xefHELLO, this is not a frame at all" * 8)
    time.sleep(60)


def oversized(size):
    """Announces a frame of `size` bytes, over the host's limit."""
    os.write(REPLIES_FD, struct.pack(">II", 16, size))
    time.sleep(60)


def hang_up():
    """Hangs up its end of the protocol (closes its reply pipe) and keeps
    running; it even disarms os._exit, should anything try to end it."""
    os._exit = lambda code: time.sleep(3600)
    os.close(REPLIES_FD)
    time.sleep(60)


def fork_and_exit(marker):
    """Forks a child that sleeps for an hour (its pid goes to `marker`), then exits."""
    child = os.fork()
    if child == 0:
        time.sleep(3600)
        os._exit(0)
    with open(marker + ".tmp", "w") as f:
        f.write(str(child))
    os.rename(marker + ".tmp", marker)
    os._exit(7)


def deaf_to_sigterm():
    """Ignores SIGTERM from now on; answers its pid."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return os.getpid()
