"""A module with __all__: exactly the names listed there are commands,
an imported one included (the author exported it on purpose)."""

from os import getpid

__all__ = ["listed", "getpid"]


def listed():
    return "listed"


def unlisted():
    return "unlisted"
