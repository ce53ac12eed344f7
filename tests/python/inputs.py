"""Handlers for the tests of bad input: payloads and answers the worker
cannot decode or encode, answers over the frame limit, crashes."""

import importlib
import os
import sys


def pid():
    return os.getpid()


def echo(value=None):
    return value


def deep(n):
    """An answer nested `n` lists deep."""
    value = []
    for _ in range(n):
        value = [value]
    return value


def big(n):
    """An answer of about `n` bytes."""
    return "x" * n


def crash():
    os._exit(3)


def sys_path():
    return sys.path


def origin(name):
    """Where module `name` is imported from."""
    return importlib.import_module(name).__file__
