"""Handlers that write a lot of output, for the tests of the host's bounds
on worker output, and that report what their interpreter was started with."""

import os
import resource
import sys


def long_line(mb):
    """Writes `mb` MiB to stdout as one line with no newline at all."""
    chunk = "x" * (1 << 20)
    for _ in range(mb):
        sys.stdout.write(chunk)
    sys.stdout.flush()
    return mb


def progress_then_crash(steps):
    """Draws a tqdm-style progress bar on stderr (`\\r`, never a newline),
    then dies."""
    for step in range(steps + 1):
        sys.stderr.write("\r%3d%%|%-50s| %d/%d" % (100 * step // steps, "#" * (50 * step // steps), step, steps))
    sys.stderr.flush()
    os._exit(3)


def lines_then_crash(count, size):
    """Writes `count` stderr lines of `size` bytes each, then dies."""
    line = "e" * size + "\n"
    for _ in range(count):
        sys.stderr.write(line)
    sys.stderr.flush()
    os._exit(3)


def environment(name):
    """The value of environment variable `name` in this worker (None if unset)."""
    return os.environ.get(name)


def open_files_limit():
    """This worker's soft RLIMIT_NOFILE."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
