"""The plain-Python peer of `just bench`: concurrent.futures.ProcessPoolExecutor
on the same handlers and payloads. Prints one JSON object of figures.

    python3 bench/peer.py --calls 2000
"""

import concurrent.futures as cf
import json
import os
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import handlers  # noqa: E402

HOLD = 0.05


def ready_seconds(n):
    """Executor created until each of n workers answered a warm-up call.
    Every warm-up holds its worker for HOLD s so that each lands on its own
    worker; HOLD is subtracted."""
    started = time.perf_counter()
    with cf.ProcessPoolExecutor(max_workers=n) as ex:
        pids = set(ex.map(handlers.hold, [HOLD] * n))
        elapsed = time.perf_counter() - started - HOLD
        assert len(pids) == n, "warm-up calls shared workers: %r" % pids
    return elapsed


def round_trips(calls, payload, fn=handlers.echo):
    with cf.ProcessPoolExecutor(max_workers=1) as ex:
        ex.submit(handlers.nothing).result()
        times = []
        for _ in range(calls):
            t = time.perf_counter()
            ex.submit(fn, payload).result()
            times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2], times[int(len(times) * 0.99)]


def throughput(calls, concurrency):
    """calls/s with 2 workers and `concurrency` callers in flight."""
    with cf.ProcessPoolExecutor(max_workers=2) as ex:
        list(ex.map(handlers.hold, [0.01, 0.01]))
        remaining = [calls]
        lock = threading.Lock()

        def caller():
            while True:
                with lock:
                    if remaining[0] == 0:
                        return
                    remaining[0] -= 1
                ex.submit(handlers.nothing).result()

        threads = [threading.Thread(target=caller) for _ in range(concurrency)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return calls / (time.perf_counter() - started)


def io_bound(workers, calls=1000, concurrency=200, ms=50):
    """Wall seconds for `calls` calls that each wait `ms` ms, `concurrency`
    at a time, on a pool of `workers` processes; and the workers' memory
    (RSS and PSS summed, in bytes) once they ran."""
    with cf.ProcessPoolExecutor(max_workers=workers) as ex:
        # Every worker started before the clock starts, as snakepen's are.
        list(ex.map(handlers.hold, [0.2] * workers))
        per_caller = calls // concurrency

        def caller():
            for _ in range(per_caller):
                ex.submit(handlers.wait_blocking, ms).result()

        threads = [threading.Thread(target=caller) for _ in range(concurrency)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        rss, pss = handlers.memory_of(list(ex._processes))
    return {"seconds": elapsed, "rss": rss, "pss": pss, "workers": workers}


def main():
    calls = int(sys.argv[sys.argv.index("--calls") + 1]) if "--calls" in sys.argv else 2000
    out = {"python": sys.version.split()[0], "ready_s": {}, "round_trip_s": {}, "throughput": {}}
    for n in (1, 4, 8):
        out["ready_s"][str(n)] = statistics.median(ready_seconds(n) for _ in range(5))
    for name, size in (("100B", 100), ("10KB", 10_000), ("1MB", 1_000_000)):
        n = calls if size < 1_000_000 else max(calls // 20, 50)
        out["round_trip_s"][name] = round_trips(n, "x" * size)
    out["round_trip_s"]["1MB bytes"] = round_trips(max(calls // 20, 50), b"x" * 1_000_000, handlers.echo_bytes)
    for concurrency in (1, 16, 64):
        out["throughput"][str(concurrency)] = throughput(calls * 2, concurrency)
    out["io_bound"] = [io_bound(2), io_bound(200)] if calls > 100 else [io_bound(2, calls=20, concurrency=4)]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
