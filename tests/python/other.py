"""A second module, for tests that run two hosts side by side."""


def whoami():
    return "other"
