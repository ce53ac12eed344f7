"""The plain-Ray peer of `just bench`: the same handler called as a method
of plain Ray actors from a Python driver (`ray.get(actor.f.remote(x))`), on
the same local cluster as snakepen. Prints one JSON object of figures.

    target/ray-venv/bin/python bench/peer_ray.py --address 127.0.0.1:6379 --calls 1000
"""

import argparse
import asyncio
import json
import os
import resource
import sys
import time

import ray

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import handlers  # noqa: E402


@ray.remote
class Handlers:
    """The bench's handlers as a plain Ray actor."""

    def echo(self, payload):
        return handlers.echo(payload)


def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    options = parser.parse_args()
    ray.init(address=options.address, log_to_driver=False, logging_level="ERROR",
             runtime_env={"working_dir": os.path.dirname(os.path.abspath(__file__))})
    actors = [Handlers.remote() for _ in range(2)]
    ray.get([a.echo.remote({"x": 1}) for a in actors])
    payload = {"text": "x" * 80}

    times = []
    cpu_before = cpu()
    for _ in range(options.calls):
        started = time.perf_counter()
        ray.get(actors[0].echo.remote(payload))
        times.append(time.perf_counter() - started)
    sequential_cpu = (cpu() - cpu_before) / options.calls
    times.sort()

    async def flood():
        remaining = [options.calls]

        async def caller(i):
            actor = actors[i % 2]
            while remaining[0] > 0:
                remaining[0] -= 1
                await actor.echo.remote(payload)

        await asyncio.gather(*(caller(i) for i in range(options.concurrency)))

    cpu_before = cpu()
    started = time.perf_counter()
    asyncio.run(flood())
    elapsed = time.perf_counter() - started
    flood_cpu = (cpu() - cpu_before) / options.calls
    print(json.dumps({
        "p50": times[len(times) // 2],
        "p99": times[int(len(times) * 0.99)],
        "sequential_cpu": sequential_cpu,
        "throughput": options.calls / elapsed,
        "throughput_cpu": flood_cpu,
        "ray": ray.__version__,
    }))


if __name__ == "__main__":
    main()
