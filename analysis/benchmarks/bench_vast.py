"""How long does bidder's Vast client take for one collection-size offer search?

    python3 analysis/benchmarks/bench_vast.py [--seconds 3] [--machines 2400]

Against a fresh emulator on 127.0.0.1 (real HTTP, keep-alive) whose Vast market lists at least
2,000 offers (one per machine; a share is rented on-demand and not listed at any instant):
  1. `VastClient.search_offers()`: every offer in ONE request, parsed into frozen `Offer`s;
  2. baseline, same run and interleaved call by call (so both see the same machine load): the
     identical request sent with plain httpx and `response.json()`; the ratio is the client's own
     cost (headers, error mapping, parsing), also measured alone (parse of an already-decoded body).
  3. one whole collection cycle as `bidder collect --market vast` runs it (`collect_markets` with a
     `VastSource`: the search, the reduction to quotes per GPU, count and tier, and the store of the
     quotes and every offer in one SQLite transaction, a fresh file per run), interleaved with the
     same bare request: its ratio is what a cycle costs beyond the HTTP request itself.
Figures are medians (and 90th percentiles) of single calls, in milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import httpx

from bidder.runpod import RetryPolicy
from bidder.sim import Emulator
from bidder.vast import VastClient
from bidder.vast.client import _offers
from bidder.vast.operations import build_search


def timed(calls: list[Callable[[], object]], seconds: float) -> list[list[float]]:
    for call in calls * 2:
        call()
    out: list[list[float]] = [[] for _ in calls]
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for i, call in enumerate(calls):
            t = time.perf_counter()
            call()
            out[i].append(time.perf_counter() - t)
    return out


def summary(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    return f"median {statistics.median(ms):7.2f} ms  p90 {ms[int(0.9 * (len(ms) - 1))]:7.2f} ms  (n={len(ms)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--machines", type=int, default=2400)
    args = parser.parse_args()
    with Emulator(seed=0, vast_machines=args.machines) as emu:
        client = VastClient(api_key=emu.api_key, url=emu.vast_url, retry=RetryPolicy(attempts=1))
        request = build_search()
        bare = httpx.Client(timeout=30)
        headers = {"Authorization": f"Bearer {emu.api_key}", "Accept": "application/json"}

        def plain() -> object:
            return bare.post(request.url(emu.vast_url), json=request.body, headers=headers).json()

        offers = client.search_offers()
        print(f"offers in one search: {len(offers)} (machines {args.machines})")
        assert len(offers) >= 2000, "raise --machines: the benchmark wants at least 2,000 offers"
        client_t, bare_t = timed([client.search_offers, plain], args.seconds)
        body = plain()
        (parse_t,) = timed([lambda: _offers(body)], min(1.0, args.seconds))  # type: ignore[arg-type]
        print(f"VastClient.search_offers : {summary(client_t)}")
        print(f"bare httpx + .json()     : {summary(bare_t)}")
        print(f"parse into Offers alone  : {summary(parse_t)}")
        ratio = statistics.median(client_t) / statistics.median(bare_t)
        print(f"client / bare request    : {ratio:.3f}x  (parse share of the client call: "
              f"{statistics.median(parse_t) / statistics.median(client_t):.1%})")
        cycle_t, bare2_t = _cycles(emu, client, plain, args.seconds)
        print(f"whole Vast cycle (search, reduce, store): {summary(cycle_t)}")
        print(f"bare httpx + .json(), same run          : {summary(bare2_t)}")
        print(f"cycle / bare request    : {statistics.median(cycle_t) / statistics.median(bare2_t):.3f}x")
        bare.close()
        client.close()


def _cycles(emu: Emulator, client: VastClient, plain: Callable[[], object],
            seconds: float) -> tuple[list[float], list[float]]:
    """Whole collection cycles, each into a fresh database, interleaved with the bare request."""
    import tempfile
    from pathlib import Path

    from bidder.collector import VastSource, collect_markets
    from bidder.store import Store

    source = VastSource(client)
    cycle_t: list[float] = []
    bare_t: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        end = time.perf_counter() + seconds
        k = 0
        while time.perf_counter() < end or k < 3:
            with Store.open(Path(tmp) / f"c{k}.db") as store:
                t = time.perf_counter()
                result = collect_markets([source], store, now=emu.now)
                cycle_t.append(time.perf_counter() - t)
            assert not result.errors and result.by_market[0].offers >= 2000
            t = time.perf_counter()
            plain()
            bare_t.append(time.perf_counter() - t)
            k += 1
    return cycle_t, bare_t


if __name__ == "__main__":
    main()
