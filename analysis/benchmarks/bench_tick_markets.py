"""How fast is a `bidder tick` with jobs on both markets, against the bare requests it must send?

    python3 analysis/benchmarks/bench_tick_markets.py [--days 2] [--every 10] [--seed 0]

Two managed jobs against the in-process emulator (RunPod's GraphQL and Vast's REST on one server):
`rp` on RunPod's A6000 community spot market and `va` on Vast's RTX 4090 offers, one tick every
--every virtual minutes for --days (prices collected every tick: both markets, one cycle). Prints:
  1. milliseconds per tick (lock, both listings, both collections, decisions, ledger writes),
  2. the bare requests such a tick sends, timed in the same run: RunPod's `myself` pod listing and
     price snapshot (`lowestPrice`), Vast's instance listing and offer search; the ratio of a tick
     to their sum is bidder's own overhead,
  3. each market's ledger spend against the emulator's billing (Vast: storage included).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import tomllib
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

from bidder.jobs import parse_config
from bidder.runpod import RetryPolicy, RunPodClient
from bidder.sim import Emulator, generate_quotes
from bidder.sim.vast_world import generate_vast_quotes
from bidder.store import Store
from bidder.tick import run_tick
from bidder.vast import VastClient
from bidder.vast.summary import OfferFilters
from bidder.vast_pods import VastPodApi

CONFIG = """collect_interval = "5m"

[jobs.rp]
gpu = ["NVIDIA RTX A6000"]
cloud = "community"
market = "runpod"
hours = 100
tolerance = "high"
max_price = 0.6
image = "runpod/pytorch:latest"

[jobs.va]
gpu = ["RTX 4090"]
market = "vast"
hours = 100
tolerance = "high"
max_price = 0.6
image = "pytorch/pytorch"
disk = 20
"""
HISTORY_DAYS = 3.5


def timed(call, n: int) -> float:
    """Mean milliseconds of `call()` over n calls."""
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return statistics.fmean(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=2.0, help="virtual days of ticks")
    parser.add_argument("--every", type=float, default=10.0, help="virtual minutes between ticks")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, Emulator(seed=args.seed) as emu:
        store = Store.open(Path(folder) / "bidder.db")
        by_ts = defaultdict(list)  # history of both markets: the emulator's own prices
        for quote in generate_quotes(args.seed, HISTORY_DAYS, 300, ("NVIDIA RTX A6000",), start=emu.now):
            by_ts[quote.ts].append(quote)
        for ts in sorted(by_ts):
            store.record_collection(ts, by_ts[ts], duration_s=0.0)
        vast_ts = defaultdict(list)
        for quote in generate_vast_quotes(args.seed, HISTORY_DAYS, 300, ["RTX 4090"], start=emu.now):
            vast_ts[quote.ts].append(replace(quote, market="vast"))
        for ts in sorted(vast_ts):
            store.record_collection(ts, vast_ts[ts], duration_s=0.0, market="vast")
        emu.advance(HISTORY_DAYS * 86400)
        retry = RetryPolicy(attempts=3, base=0.01)
        client = RunPodClient(api_key=emu.api_key, url=emu.url, retry=retry)
        vast_client = VastClient(api_key=emu.api_key, url=emu.vast_url, retry=retry)
        vast = VastPodApi(vast_client, OfferFilters())
        config = parse_config(tomllib.loads(CONFIG), "bench.toml")
        ticks = int(args.days * 24 * 60 / args.every)
        durations = []
        for _ in range(ticks):
            started = time.perf_counter()
            run_tick(client, store, config, emu.now, vast=vast)
            durations.append(time.perf_counter() - started)
            emu.advance(args.every * 60)
        run_tick(client, store, config, emu.now, vast=vast)  # the last stretch observed: compare at one instant
        bare = {
            "RunPod pod listing (myself)": timed(client.myself, 100),
            "RunPod price snapshot (lowestPrice)": timed(lambda: client.lowest_prices((1,), ts=emu.now), 30),
            "Vast instance listing": timed(vast_client.instances, 100),
            "Vast offer search (every offer)": timed(vast_client.search_offers, 30),
        }
        mean_tick = statistics.fmean(durations) * 1000
        print(f"{ticks} ticks every {args.every:g} virtual minutes over {args.days:g} days, seed {args.seed}, "
              f"2 jobs (RunPod A6000 community, Vast RTX 4090)")
        print(f"tick: mean {mean_tick:.1f} ms, median {statistics.median(durations) * 1000:.1f} ms, "
              f"max {max(durations) * 1000:.0f} ms; total {sum(durations):.1f} s")
        for name, ms in bare.items():
            print(f"  bare {name}: mean {ms:.1f} ms")
        total = sum(bare.values())
        print(f"a tick costs {mean_tick / total:.2f}x its four bare requests together ({total:.1f} ms)")
        for job, market in (("rp", "runpod"), ("va", "vast")):
            pods = store.managed_pods(job)
            ledger = sum(store.spend_by_pod(job).values())
            billed = sum(emu.vast.true_spend(int(p["pod_id"])) if market == "vast"
                         else emu.world.true_spend(p["pod_id"]) for p in pods)
            interruptions = sum(p["interruptions"] for p in pods)
            gap = abs(ledger - billed) / billed * 100 if billed else 0.0
            print(f"{market}: ledger ${ledger:.4f} vs billed ${billed:.4f}: {gap:.3f}% apart "
                  f"({len(pods)} pod(s), {interruptions} interruptions)")
        store.close()
        client.close()
        vast_client.close()


if __name__ == "__main__":
    main()
