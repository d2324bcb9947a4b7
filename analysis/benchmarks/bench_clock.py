"""What does learning the emulator's clock cost a command?

    python3 analysis/benchmarks/bench_clock.py [--calls 300]

Against a fresh emulator on 127.0.0.1 (real HTTP, keep-alive), interleaved call by call so both
see the same machine load:
  1. `RunPodClient.probe_server_now()`: the one `GET /sim/now` a command sends to a server on this
     machine when it needs its time before its first request (never sent to RunPod);
  2. baseline: the cheapest real request, `myself()` (`{ myself { id ... } }`);
and the cost of reading the header from an answer the command gets anyway (`server_time`).
Figures are medians of single calls, in milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import httpx

from bidder.clock import server_time
from bidder.runpod import RunPodClient
from bidder.sim import TEST_API_KEY, Emulator


def _timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    with Emulator(seed=0) as emu, RunPodClient(api_key=TEST_API_KEY, url=emu.url) as client:
        client.myself()  # warm the connection
        probe, baseline = [], []
        for _ in range(args.calls):
            probe.append(_timed(client.probe_server_now))
            baseline.append(_timed(client.myself))
        headers = httpx.Headers({"X-Bidder-Sim-Now": "2026-01-01T00:00:00Z"})
        parse = [_timed(lambda: server_time(headers)) for _ in range(args.calls)]
    p, b = statistics.median(probe), statistics.median(baseline)
    print(f"calls: {args.calls} each, interleaved")
    print(f"probe GET /sim/now   median {p:.3f} ms")
    print(f"myself() (baseline)  median {b:.3f} ms")
    print(f"probe / baseline     {p / b:.2f}x")
    print(f"header read          median {statistics.median(parse) * 1000:.1f} us")


if __name__ == "__main__":
    main()
