"""State built per session: a session's calls only work in request order.

`start` builds a session's state (slowly, so that a call sent at the same
time would overtake it); `step` appends to it and fails with KeyError if
`start` has not run yet.
"""

import time

_state = {}


def start(name):
    time.sleep(0.02)
    _state[name] = []
    return name


def step(name, n):
    steps = _state[name]
    steps.append(n)
    return list(steps)
