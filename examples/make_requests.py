"""Writes the workload of `just demo`: one JSON request per line.

Deterministic (seeded), standard library only:
    python3 examples/make_requests.py target/demo/requests.jsonl
    python3 examples/make_requests.py --small target/demo/small.jsonl   # the cassette's workload
"""

import json
import os
import random
import sys

rng = random.Random(20261122)
WORDS = (
    "the pool keeps long lived python workers warm and every call goes through a "
    "sandboxed adapter so tests can swap the bridge for a mock or a recording while "
    "sessions stay on the worker that holds their state"
).split()


def sentence():
    words = rng.choices(WORDS, k=rng.randint(6, 16))
    return " ".join(words).capitalize() + rng.choice([".", ".", "!", "?"])


def text(sentences):
    return " ".join(sentence() for _ in range(sentences))


args = sys.argv[1:]
small = "--small" in args
args = [a for a in args if a != "--small"]
if len(args) != 1:
    sys.exit("usage: make_requests.py [--small] OUTPUT.jsonl")
# --small: a few of each, for the committed cassette (tests/cassettes/demo.jsonl).
scale = 0.02 if small else 1.0


def n(count):
    return max(2, int(count * scale))


requests = []
if small:
    requests.append({"command": "word_stats", "payload": {"text": "the cat and the hat", "top": 2}})
for _ in range(n(300)):
    requests.append({"command": "word_stats", "payload": {"text": text(rng.randint(3, 30)), "top": 3}})
for _ in range(n(150)):
    requests.append({"command": "summarize", "payload": {"text": text(rng.randint(5, 20)), "sentences": 2}})
for _ in range(n(120)):
    requests.append({"command": "primes", "payload": {"limit": rng.randint(10_000, 200_000)}})
for _ in range(n(120)):
    requests.append({"command": "fingerprint", "payload": {"data": sentence(), "rounds": rng.randint(500, 5000)}})
for _ in range(n(80)):
    requests.append({"command": "describe", "payload": {"values": [round(rng.gauss(50, 12), 2) for _ in range(rng.randint(2, 400))]}})
# A few requests a real workload gets wrong: statistics of nothing, and a typo.
requests.append({"command": "describe", "payload": {"values": []}})
requests.append({"command": "word_stat", "payload": {"text": "typo in the command"}})
rng.shuffle(requests)

# Shopping sessions: items added to a cart held in one worker's memory, then totalled.
ITEMS = {"tea": 4.5, "bread": 2.2, "cheese": 7.9, "apples": 3.1, "coffee": 9.4}
for c in range(3 if small else 40):
    cart = "cart-%d" % c
    lines = []
    for item in rng.sample(sorted(ITEMS), k=rng.randint(1, 4)):
        lines.append({"command": "cart_add", "session": cart,
                      "payload": {"cart": cart, "item": item, "price": ITEMS[item], "quantity": rng.randint(1, 3)}})
    lines.append({"command": "cart_total", "session": cart, "payload": {"cart": cart}})
    at = rng.randint(0, len(requests))
    requests[at:at] = lines

path = args[0]
os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
with open(path, "w") as f:
    for request in requests:
        f.write(json.dumps(request, sort_keys=True) + "\n")
print("wrote %d requests to %s" % (len(requests), path))
