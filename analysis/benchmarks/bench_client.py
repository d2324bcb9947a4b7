"""How long does bidder's client take for the one-request price snapshot of every GPU type?

    python3 analysis/benchmarks/bench_client.py [--seconds 3]

Against a fresh emulator on 127.0.0.1 (real HTTP, keep-alive), each for about --seconds:
  1. `RunPodClient.lowest_prices((1,))`: every GPU type x both clouds, one request, parsed into
     PriceQuotes; and the same with GPU counts 1, 2, 4, 8 (eight aliases per type);
  2. baseline, same run and interleaved call by call (so both see the same machine load): the
     identical request sent with plain httpx and `response.json()`; the ratio is the client's own
     cost (headers, error mapping, parsing into frozen dataclasses), also measured alone (parse);
  3. the alternative the aliases avoid: one request per GPU type and cloud (what a naive
     collector would send), as a ratio to the single request.
Round-trip figures are medians (and 90th percentiles) of single calls, in milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import httpx

from bidder.models import CLOUDS
from bidder.runpod import RetryPolicy, RunPodClient
from bidder.runpod.client import parse_quotes
from bidder.runpod.errors_map import decode_response
from bidder.runpod.operations import price_markets
from bidder.sim import Emulator

LOWEST = "minimumBidPrice uninterruptablePrice stockStatus availableGpuCounts maxUnreservedGpuCount"
ONE_TYPE = ("query one($id: String, $secure: Boolean!) { gpuTypes(input: {id: $id}) { id "
            f"lowestPrice(input: {{gpuCount: 1, secureCloud: $secure}}) {{ {LOWEST} }} }} }}")


def timed(calls: list[Callable[[], object]], seconds: float) -> list[list[float]]:
    """Latencies (s) of each call, the calls taking turns for about `seconds` (after warm-up)."""
    for call in calls * 2:
        call()
    out: list[list[float]] = [[] for _ in calls]
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(out[0]) < 5:
        for i, call in enumerate(calls):
            t0 = time.perf_counter()
            call()
            out[i].append(time.perf_counter() - t0)
    return out


def summary(latencies: list[float]) -> tuple[float, float, float]:
    """(median ms, p90 ms, calls per second)."""
    ordered = sorted(latencies)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return statistics.median(ordered) * 1000, p90 * 1000, len(ordered) / sum(ordered)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="wall time per measurement")
    args = parser.parse_args()
    with Emulator(seed=0) as emu, RunPodClient(api_key=emu.api_key, url=emu.url,
                                               retry=RetryPolicy(attempts=1)) as client:
        types = len(emu.world.gpu_types)
        headers = {"Authorization": f"Bearer {emu.api_key}"}
        print(f"emulator: {types} GPU types, 2 clouds; {args.seconds:g} s per measurement")
        rows = []
        with httpx.Client(timeout=30) as http:
            for counts in ((1,), (1, 2, 4, 8)):
                payload = client.build_lowest_prices(counts).payload()
                response = http.post(emu.url, json=payload, headers=headers)
                quotes = len(client.lowest_prices(counts, ts=emu.now))

                def parse(r: httpx.Response = response, c: tuple[int, ...] = counts) -> None:
                    data = decode_response(r, "lowestPrice")
                    parse_quotes(data, emu.now, *price_markets(c, CLOUDS))

                ours, raw = timed([lambda c=counts: client.lowest_prices(c, ts=emu.now),
                                   lambda p=payload: http.post(emu.url, json=p, headers=headers).json()],
                                  args.seconds)
                parse_ms = summary(timed([parse], min(1.0, args.seconds))[0])[0]
                rows.append((counts, quotes, len(response.content), summary(ours), summary(raw), parse_ms))
            ids = list(emu.world.gpu_types)

            def naive() -> None:
                for gpu in ids:
                    for secure in (True, False):
                        http.post(emu.url, json={"query": ONE_TYPE, "variables": {"id": gpu, "secure": secure}},
                                  headers=headers).raise_for_status()

            single, many = timed([lambda: client.lowest_prices((1,), ts=emu.now), naive], args.seconds)

    print(f"{'gpu counts':<12} {'quotes':>6} {'bytes':>7}  {'client median':>13} {'p90':>7} {'/s':>5}  "
          f"{'raw httpx':>9} {'client/raw':>10} {'parse':>8}")
    for counts, quotes, size, ours, raw, parse_ms in rows:
        print(f"{','.join(map(str, counts)):<12} {quotes:>6} {size:>7}  {ours[0]:>10.2f} ms {ours[1]:>7.2f} "
              f"{ours[2]:>5.0f}  {raw[0]:>6.2f} ms {ours[0] / raw[0]:>10.2f} {parse_ms:>5.2f} ms")
    one, naive_ms = summary(single)[0], summary(many)[0]
    print(f"one request per GPU type and cloud ({2 * types} requests): {naive_ms:.1f} ms per snapshot, "
          f"{naive_ms / one:.1f}x the single aliased request ({one:.2f} ms)")

if __name__ == "__main__":
    main()
