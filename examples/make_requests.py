"""Writes the workload of `just demo`: one JSON request per line.

Deterministic (seeded), standard library only:
    python3 examples/make_requests.py target/demo/requests.jsonl
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


requests = []
for _ in range(300):
    requests.append({"command": "word_stats", "payload": {"text": text(rng.randint(3, 30)), "top": 3}})
for _ in range(150):
    requests.append({"command": "summarize", "payload": {"text": text(rng.randint(5, 20)), "sentences": 2}})
for _ in range(120):
    requests.append({"command": "primes", "payload": {"limit": rng.randint(10_000, 200_000)}})
for _ in range(120):
    requests.append({"command": "fingerprint", "payload": {"data": sentence(), "rounds": rng.randint(500, 5000)}})
for _ in range(80):
    requests.append({"command": "describe", "payload": {"values": [round(rng.gauss(50, 12), 2) for _ in range(rng.randint(2, 400))]}})
# A few requests a real workload gets wrong: statistics of nothing, and a typo.
requests.append({"command": "describe", "payload": {"values": []}})
requests.append({"command": "word_stat", "payload": {"text": "typo in the command"}})
rng.shuffle(requests)

# Shopping sessions: items added to a cart held in one worker's memory, then totalled.
ITEMS = {"tea": 4.5, "bread": 2.2, "cheese": 7.9, "apples": 3.1, "coffee": 9.4}
for n in range(40):
    cart = "cart-%d" % n
    lines = []
    for item in rng.sample(sorted(ITEMS), k=rng.randint(1, 4)):
        lines.append({"command": "cart_add", "session": cart,
                      "payload": {"cart": cart, "item": item, "price": ITEMS[item], "quantity": rng.randint(1, 3)}})
    lines.append({"command": "cart_total", "session": cart, "payload": {"cart": cart}})
    at = rng.randint(0, len(requests))
    requests[at:at] = lines

if len(sys.argv) != 2:
    sys.exit("usage: make_requests.py OUTPUT.jsonl")
path = sys.argv[1]
os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
with open(path, "w") as f:
    for request in requests:
        f.write(json.dumps(request, sort_keys=True) + "\n")
print("wrote %d requests to %s" % (len(requests), path))
