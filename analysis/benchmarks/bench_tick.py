"""How fast is a `bidder tick`, and how close is the ledger's spend to what was billed?

    python3 analysis/benchmarks/bench_tick.py [--days 7] [--every 5] [--seed 0]
    python3 analysis/benchmarks/bench_tick.py --days 1 --tolerance 24,0.5   # the same ticks at each tolerance

Runs a managed job (110 GPU-hours due in a week on the A6000 community spot market) against the
in-process emulator, one tick every --every virtual minutes for --days, and prints:
  1. milliseconds per tick (all of it: lock, polls, collections, decisions, ledger writes),
  2. the same for a bare `myself` request (the poll every tick sends) and a bare price snapshot
     (`lowestPrice`, which a tick sends when prices are older than collect_interval, here every
     tick): the baselines a tick is compared to, measured in the same run,
  3. the ledger's spend against the emulator's own billing, with the interruptions seen.
With several `--tolerance` values (interruptions a day, comma-separated; default 24, where the plan's
first price fits) the whole run is repeated for each, in one process: at a tolerance that binds, a tick
searches the interruption's price (`bidder.planner.BUDGET_PRICES`), solving a plan's row per price tried.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import tomllib
from collections import defaultdict
from pathlib import Path

import bidder.planner as planner
from bidder.jobs import parse_config
from bidder.runpod import RetryPolicy, RunPodClient
from bidder.sim import Emulator, generate_quotes
from bidder.store import Store
from bidder.tick import run_tick

CONFIG = """collect_interval = "5m"

[jobs.train]
gpu = ["NVIDIA RTX A6000"]
cloud = "community"
hours = 110
deadline = "7d"
tolerance = {tolerance}
min_savings = 0
image = "runpod/pytorch:latest"
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=7.0, help="virtual days of ticks")
    parser.add_argument("--every", type=float, default=5.0, help="virtual minutes between ticks")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tolerance", default="24", help="interruptions a day, comma-separated (default 24)")
    args = parser.parse_args()
    try:
        tolerances = [float(t) for t in args.tolerance.split(",")]
    except ValueError:
        parser.error(f"--tolerance {args.tolerance!r}: give numbers of interruptions a day, e.g. 24,0.5")
    solve, solves = planner.solve_plan, [0]

    def counted(*a: object, **kw: object) -> planner.Plan:
        solves[0] += 1
        return solve(*a, **kw)  # type: ignore[arg-type]

    planner.solve_plan = counted  # type: ignore[assignment]  # counts the plans each tolerance's ticks solve
    for tolerance in tolerances:
        solves[0] = 0
        run(args, tolerance)
        print(f"plans solved: {solves[0]}\n")


def run(args: argparse.Namespace, tolerance: float) -> None:
    with tempfile.TemporaryDirectory() as folder, Emulator(seed=args.seed, reclaim_rate_per_hour=0.05) as emu:
        store = Store.open(Path(folder) / "bidder.db")
        by_ts = defaultdict(list)  # three days of the emulator's own prices as history
        for quote in generate_quotes(args.seed, 3.5, 300, ("NVIDIA RTX A6000",), start=emu.now):
            by_ts[quote.ts].append(quote)
        for ts in sorted(by_ts):
            store.record_collection(ts, by_ts[ts], duration_s=0.0)
        emu.advance(3.5 * 86400)
        client = RunPodClient(api_key=emu.api_key, url=emu.url, retry=RetryPolicy(attempts=3, base=0.01))
        config = parse_config(tomllib.loads(CONFIG.format(tolerance=tolerance)), "bench.toml")
        ticks = int(args.days * 24 * 60 / args.every)
        durations = []
        for _ in range(ticks):
            started = time.perf_counter()
            run_tick(client, store, config, emu.now)
            durations.append(time.perf_counter() - started)
            emu.advance(args.every * 60)
        run_tick(client, store, config, emu.now)  # observe the last stretch: compare at the same instant
        baseline, snapshot = [], []
        for _ in range(200):
            started = time.perf_counter()
            client.myself()
            baseline.append(time.perf_counter() - started)
        for _ in range(50):
            started = time.perf_counter()
            client.lowest_prices((1,), ts=emu.now)
            snapshot.append(time.perf_counter() - started)
        pods = store.managed_pods("train")
        ledger = sum(store.spend_by_pod("train").values())
        billed = sum(emu.world.true_spend(p["pod_id"]) for p in pods)
        interruptions = sum(p["interruptions"] for p in pods)
        mean_tick, mean_poll = statistics.fmean(durations) * 1000, statistics.fmean(baseline) * 1000
        print(f"{ticks} ticks every {args.every:g} virtual minutes over {args.days:g} days, seed {args.seed}, "
              f"tolerance {tolerance:g} a day")
        print(f"tick: mean {mean_tick:.1f} ms, median {statistics.median(durations) * 1000:.1f} ms, "
              f"max {max(durations) * 1000:.0f} ms; total {sum(durations):.1f} s")
        mean_snap = statistics.fmean(snapshot) * 1000
        print(f"bare myself request: mean {mean_poll:.1f} ms; bare price snapshot: mean {mean_snap:.1f} ms; "
              f"a tick costs {mean_tick / (mean_poll + mean_snap):.2f}x the two together")
        print(f"ledger ${ledger:.4f} vs billed ${billed:.4f}: {abs(ledger - billed) / billed * 100:.4f}% apart "
              f"({len(pods)} pod(s), {interruptions} interruptions)")
        store.close()


if __name__ == "__main__":
    main()
