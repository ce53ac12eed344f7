"""Demo handlers for snakepen: plain functions, standard library only.

Each function is a command: `snakepen call --module examples/handlers.py
word_stats '{"text": "..."}'`. A JSON object payload becomes keyword
arguments, an array positional arguments.
"""

import collections
import hashlib
import math
import re
import statistics
import zlib

WORD = re.compile(r"[a-z']+")

# Per-worker state: carts live in the memory of the worker a session is bound to.
_carts = collections.defaultdict(dict)


def word_stats(text, top=5):
    """Word count, distinct words and the most common ones."""
    words = WORD.findall(text.lower())
    common = collections.Counter(words).most_common(top)
    return {"words": len(words), "distinct": len(set(words)), "top": common}


def summarize(text, sentences=2):
    """Extractive summary: the sentences whose words are most frequent in the text."""
    parts = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]
    freq = collections.Counter(WORD.findall(text.lower()))
    scored = sorted(
        range(len(parts)),
        key=lambda i: -sum(freq[w] for w in WORD.findall(parts[i].lower())) / (1 + len(parts[i])),
    )
    keep = sorted(scored[:sentences])
    return {"summary": " ".join(parts[i] for i in keep), "of": len(parts)}


def primes(limit):
    """How many primes are below `limit`, and the largest (sieve of Eratosthenes)."""
    sieve = bytearray([1]) * limit
    sieve[:2] = b"\x00\x00"
    for n in range(2, int(math.isqrt(limit - 1)) + 1):
        if sieve[n]:
            sieve[n * n :: n] = bytearray(len(range(n * n, limit, n)))
    count = sum(sieve)
    largest = max((i for i in range(limit - 1, 1, -1) if sieve[i]), default=None) if count else None
    return {"count": count, "largest": largest}


def fingerprint(data, rounds=1000):
    """An iterated SHA-256 and the CRC32 of `data`."""
    digest = data.encode()
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return {"sha256": digest.hex(), "crc32": zlib.crc32(data.encode())}


def describe(values):
    """Summary statistics of a list of numbers."""
    return {
        "n": len(values),
        "mean": statistics.fmean(values),
        "median": statistics.median(values),
        "stdev": statistics.pstdev(values),
    }


def cart_add(cart, item, price, quantity=1):
    """Adds to a shopping cart kept in this worker's memory (use a session)."""
    entry = _carts[cart].setdefault(item, [price, 0])
    entry[1] += quantity
    return {"cart": cart, "items": sum(q for _, q in _carts[cart].values())}


def cart_total(cart):
    """The total of a cart built by earlier calls in the same session."""
    items = _carts.get(cart, {})
    return {"cart": cart, "total": round(sum(p * q for p, q in items.values()), 2), "lines": len(items)}
