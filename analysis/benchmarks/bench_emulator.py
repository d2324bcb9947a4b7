"""How fast is bidder's RunPod emulator? Prints requests per second over real HTTP (plain httpx).

    python3 analysis/benchmarks/bench_emulator.py [--seconds 3] [--threads 4]

Measured, each for about --seconds of wall time on one emulator:
  1. the one-request price snapshot of every GPU type (both clouds, gpuCount 1: two aliases per type),
  2. the same with gpuCount 1, 2, 4, 8 (eight aliases per type),
  3. a trivial query (`{ myself { id } }`): the HTTP + GraphQL floor the snapshot is compared to,
  4. the snapshot from --threads clients at once (the server's threads share one world lock),
  5. the snapshot executed in-process without HTTP (graphql-core alone),
and how many virtual days per real second `advance` runs with 20 spot pods to check and bill.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable

import httpx
from graphql import execute, parse

from bidder.sim import TEST_API_KEY, Emulator
from bidder.sim.resolvers import build_schema, context_for

AUTH = {"Authorization": f"Bearer {TEST_API_KEY}"}
FIELDS = "minimumBidPrice uninterruptablePrice stockStatus availableGpuCounts maxUnreservedGpuCount"


def snapshot_query(counts: tuple[int, ...]) -> str:
    aliases = " ".join(
        f"{cloud.lower()}{n}: lowestPrice(input: {{gpuCount: {n}, secureCloud: {str(cloud == 'SECURE').lower()}}}) "
        f"{{ {FIELDS} }}" for cloud in ("SECURE", "COMMUNITY") for n in counts)
    return f"{{ gpuTypes {{ id displayName memoryInGb securePrice communityPrice maxGpuCount {aliases} }} }}"


def rate(call: Callable[[], object], seconds: float) -> tuple[float, float]:
    """(calls per second, median latency in ms) over about `seconds`."""
    call()  # warm
    latencies = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - t0)
    return len(latencies) / sum(latencies), statistics.median(latencies) * 1000


def http_rate(url: str, query: str, seconds: float) -> tuple[float, float, int]:
    with httpx.Client(headers=AUTH, timeout=30) as http:
        size = len(http.post(url, json={"query": query}).content)

        def call() -> None:
            response = http.post(url, json={"query": query})
            response.raise_for_status()

        per_s, median_ms = rate(call, seconds)
    return per_s, median_ms, size


def threaded_rate(url: str, query: str, seconds: float, threads: int) -> float:
    counts = [0] * threads

    def worker(i: int) -> None:
        with httpx.Client(headers=AUTH, timeout=30) as http:
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                http.post(url, json={"query": query}).raise_for_status()
                counts[i] += 1

    started = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sum(counts) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="wall time per measurement")
    parser.add_argument("--threads", type=int, default=4, help="concurrent clients for the threaded figure")
    args = parser.parse_args()

    small, large = snapshot_query((1,)), snapshot_query((1, 2, 4, 8))
    with Emulator(seed=0) as emu:
        types = len(emu.world.gpu_types)
        trivial_rps, trivial_ms, _ = http_rate(emu.url, "{ myself { id } }", args.seconds)
        snap_rps, snap_ms, snap_bytes = http_rate(emu.url, small, args.seconds)
        big_rps, big_ms, big_bytes = http_rate(emu.url, large, args.seconds)
        par_rps = threaded_rate(emu.url, small, args.seconds, args.threads)
        document = parse(small)
        schema = build_schema(True)
        local_rps, local_ms = rate(lambda: execute(schema, document,
                                                   context_value=context_for(emu.world, True)), args.seconds)

    from bidder.sim import World

    world = World(seed=0)
    world.reclaim_rate_per_hour = 0
    for i in range(20):
        key = list(world.markets)[i % len(world.markets)]
        floor = world.floor(*key)
        if floor is not None:
            world.rent_interruptable({"gpuTypeId": key[0], "cloudType": key[1], "name": f"b{i}"}, floor * 3)
    t0 = time.perf_counter()
    for _ in range(24 * 7):
        world.advance(3600)
    days_per_s = 7 / (time.perf_counter() - t0)

    print(f"emulator benchmark ({types} GPU types, {args.seconds:g} s per figure)")
    print(f"  price snapshot, 2 aliases/type ({2 * types} lowestPrice, {snap_bytes} B): "
          f"{snap_rps:7.1f} req/s, median {snap_ms:6.2f} ms")
    print(f"  price snapshot, 8 aliases/type ({8 * types} lowestPrice, {big_bytes} B): "
          f"{big_rps:7.1f} req/s, median {big_ms:6.2f} ms")
    print(f"  trivial query {{ myself {{ id }} }}:                    {trivial_rps:7.1f} req/s, median {trivial_ms:6.2f} ms")
    print(f"  snapshot with {args.threads} concurrent clients:              {par_rps:7.1f} req/s in total")
    print(f"  snapshot in-process (graphql-core, no HTTP):       {local_rps:7.1f} /s, median {local_ms:6.2f} ms")
    print(f"  ratios: snapshot / trivial = {snap_ms / trivial_ms:.1f}x the latency; "
          f"HTTP adds {snap_ms - local_ms:.2f} ms to the in-process execution")
    print(f"  advance with 20 running spot pods: {days_per_s:.0f} virtual days per real second (hourly steps)")


if __name__ == "__main__":
    main()
