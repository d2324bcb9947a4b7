"""How fast are the market statistics and the optimizer? Ratios against naive baselines in the same run.

    python3 analysis/benchmarks/bench_optimizer.py              # 40 GPU types, 30 days of 5-minute history
    python3 analysis/benchmarks/bench_optimizer.py --types 10 --days 7 --no-store

Prints:
  1. `market_stats` (one vectorised pass) per market over `--days` of 5-minute history, and for all
     `--types` markets (what `bidder recommend` computes before deciding);
  2. one `decide` over all `--types` markets with those statistics, and over 2 markets (the size of a
     backtest step), median of repeated calls;
  3. `advise` end to end from a real SQLite file (latest snapshot + `floor_series` per market +
     statistics + decide), unless --no-store;
  4. `FloorTracker.update` per sample and `stats(now)` per call, against the naive way of keeping
     statistics current: recomputing `market_stats` over the whole history at every step (ratio).
Prices: the emulator's seeded market model (`bidder.sim.generate_quotes`), the first `--types`
(GPU type, cloud) markets that have spot. Time is CPU-bound; on a busy machine run it twice.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from bidder.advisor import advise
from bidder.market import FloorTracker, MarketStats, market_stats
from bidder.models import JobSpec, Policy, PriceQuote
from bidder.optimizer import decide
from bidder.store import Store

STEP_S = 300.0
NOW = datetime(2026, 2, 1, tzinfo=UTC)


def make_series(types: int, days: float, seed: int) -> list[SimpleNamespace]:
    """`types` markets of the emulator's market model (`bidder.sim.generate_quotes`: calm bands, spikes,
    capacity gaps), the first ones with spot in (GPU type, cloud) order, ending at NOW."""
    from bidder.sim.prices import generate_quotes

    quotes = generate_quotes(seed, days, start=NOW - timedelta(days=days))
    by_market: dict[tuple[str, str], list[PriceQuote]] = {}
    for q in quotes:
        by_market.setdefault((q.gpu_type_id, q.cloud), []).append(q)
    out = []
    for (gpu, cloud), qs in sorted(by_market.items()):
        if all(q.minimum_bid_price is None for q in qs) or qs[-1].uninterruptable_price is None:
            continue
        qs.sort(key=lambda q: q.ts)
        out.append(SimpleNamespace(
            ts=np.array([q.ts.timestamp() for q in qs]),
            floor=np.array([np.nan if q.minimum_bid_price is None else q.minimum_bid_price for q in qs]),
            on_demand=np.array([q.uninterruptable_price for q in qs], dtype=float),
            gpu_type_id=gpu, cloud=cloud, gpu_count=1, od=float(qs[-1].uninterruptable_price)))
        if len(out) == types:
            break
    if len(out) < types:
        raise SystemExit(f"the market model has only {len(out)} markets with spot; use --types {len(out)}")
    return out


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median seconds of `repeat` calls."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--types", type=int, default=40)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--no-store", action="store_true", help="skip the SQLite end-to-end measurement")
    args = parser.parse_args()
    series = make_series(args.types, args.days, args.seed)
    n = len(series[0].ts)
    print(f"{args.types} markets x {n} samples ({args.days:g} days at 5 min, the emulator's market model)")

    # 1. statistics, one vectorised pass per market
    stats: dict[tuple[str, str, int], MarketStats] = {}
    t_one = timed(lambda: market_stats(series[0], NOW.timestamp()), args.repeat)
    t0 = time.perf_counter()
    for s in series:
        stats[(s.gpu_type_id, s.cloud, 1)] = market_stats(s, NOW.timestamp())
    t_all = time.perf_counter() - t0
    print(f"market_stats: {t_one * 1e3:.1f} ms per market, {t_all * 1e3:.0f} ms for all {args.types}")

    # 2. one decision
    quotes = [PriceQuote(ts=NOW, gpu_type_id=s.gpu_type_id, cloud=s.cloud, gpu_count=1,
                         minimum_bid_price=None if np.isnan(s.floor[-1]) else float(s.floor[-1]),
                         uninterruptable_price=round(s.od, 3)) for s in series]
    job = JobSpec(work_hours=100, deadline=NOW + timedelta(days=7), restart_overhead_hours=0.25)
    policy = Policy(tolerance=2.0)
    t_dec = timed(lambda: decide(job, policy, quotes, stats, NOW), args.repeat)
    two = {k: stats[k] for k in list(stats)[:2]}
    t_two = timed(lambda: decide(job, policy, quotes[:2], two, NOW), args.repeat * 10)
    print(f"decide: {t_dec * 1e3:.2f} ms over {args.types} markets ({t_dec / args.types * 1e6:.0f} us per market); "
          f"{t_two * 1e3:.2f} ms over 2 markets (a backtest step)")
    print(f"  statistics + decision for {args.types} markets: {(t_all + t_dec) * 1e3:.0f} ms")

    # 3. end to end from SQLite
    if not args.no_store:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bench.db"
            with Store.open(path) as store:
                rows = (PriceQuote(ts=datetime.fromtimestamp(float(t), UTC), gpu_type_id=s.gpu_type_id,
                                   cloud=s.cloud, gpu_count=1,
                                   minimum_bid_price=None if np.isnan(f) else float(f),
                                   uninterruptable_price=round(s.od, 3))
                        for s in series for t, f in zip(s.ts, s.floor, strict=True))
                store.import_quotes(rows)
                t_adv = timed(lambda: advise(store, job, policy, NOW), max(3, args.repeat // 4))
            print(f"advise from SQLite ({args.types * n:,} rows): {t_adv * 1e3:.0f} ms "
                  f"(read + statistics + decision)")

    # 4. incremental tracker against a full recompute per step
    s = series[0]
    tracker = FloorTracker(s.gpu_type_id)
    ts, fl, od = s.ts.tolist(), [None if np.isnan(x) else x for x in s.floor.tolist()], s.on_demand.tolist()
    t0 = time.perf_counter()
    for i in range(n):
        tracker.update(ts[i], fl[i], od[i])
    t_update = (time.perf_counter() - t0) / n
    t_stats = timed(lambda: tracker.stats(ts[-1]), args.repeat * 10)
    t_naive = timed(lambda: market_stats(s, ts[-1]), max(3, args.repeat // 2))
    step = t_update + t_stats
    print(f"FloorTracker.update: {t_update * 1e6:.1f} us per sample ({1 / t_update:,.0f} updates/s); "
          f"stats(now): {t_stats * 1e6:.0f} us")
    print(f"per backtest step, update + stats: {step * 1e6:.0f} us vs recomputing market_stats over "
          f"{args.days:g} days: {t_naive * 1e3:.1f} ms -> {t_naive / step:,.0f}x faster")


if __name__ == "__main__":
    main()
