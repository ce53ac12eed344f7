"""Which names of a module are commands: only the functions defined here.

The imports below would run a shell command or read any file if they were
served; they must not be.
"""

from json import dumps as imported_dumps  # noqa: F401
from os import system  # noqa: F401
from subprocess import check_output  # noqa: F401


def defined(x=1):
    return x


def _private():
    return "hidden"
