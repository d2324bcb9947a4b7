"""Floors that trend or have two modes, against the plan's bid levels (record levels, cluster tops).

    python3 analysis/study_levels.py                      # five markets, about 5 minutes on 2 cores
    python3 analysis/study_levels.py --out analysis/results/levels.md

A second backtest audit (issue 11) found two kinds of market where bidder lost to bidding the floor +
$0.10: a floor trending up, where the plan's top level was the highest block seen and each new high
crossed it, and a floor of two modes, where the twelve equal-weight quantile levels left no bid between
them. These markets are generated here (one GPU type "X", 5-minute samples from 2026-01-01, on-demand
$0.50, log-noise with a few hours' memory; written as trace CSVs in a temporary folder):

- `rising`: $0.10 -> $0.40 over 30 days (32 days); `rising-noisy`: the same with twice the noise and
  longer memory; `falling`: $0.40 -> $0.10;
- `weekly`: $0.30 on weekdays, $0.10 on days 5 and 6 of each week (44 days);
- `regimes`: $0.12 or $0.32, switching at random every three days on average (44 days).

Runs bidder and the baselines (floor, floor+0.10, on-demand) and the optimum over windows of a 10-hour
job due in a day (a window a day) at each tolerance, and of the 100-hour job due in 7 days (every 3.5
days) at low; prints the mean cost a window, bidder's interruptions and the deadlines met.
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from bidder.backtest.engine import run_backtest
from bidder.backtest.history import load_trace
from bidder.backtest.types import BacktestJob
from bidder.models import Policy, parse_tolerance

START = datetime(2026, 1, 1, tzinfo=UTC)
ON_DEMAND = 0.50
STRATEGIES = ("bidder", "floor", "floor+0.10", "on-demand", "optimum")
RUNS = [(10, 24, 24, tol) for tol in ("low", "medium", "high")] + [(100, 168, 84, "low")]


def _noise(rng: np.random.Generator, n: int, memory: float, sd: float, jitter: float) -> np.ndarray:
    x, shock = np.zeros(n), rng.normal(0.0, sd * np.sqrt(1 - memory**2), n)
    for i in range(1, n):
        x[i] = memory * x[i - 1] + shock[i]
    return np.exp(x + rng.normal(0.0, jitter, n))


def market(kind: str, seed: int = 1) -> np.ndarray:
    """The floor of one market (5-minute samples)."""
    rng = np.random.default_rng(seed)
    days = 32 if kind in ("rising", "rising-noisy", "falling") else 44
    n = days * 288
    d = np.arange(n) / 288
    if kind == "rising":
        return (0.10 + 0.30 * d / 30) * _noise(rng, n, 0.98, 0.08, 0.03)
    if kind == "rising-noisy":
        return (0.10 + 0.30 * d / 30) * _noise(rng, n, 0.995, 0.15, 0.06)
    if kind == "falling":
        return (0.40 - 0.30 * d / 30) * _noise(rng, n, 0.98, 0.08, 0.03)
    if kind == "weekly":
        return np.where(d % 7 >= 5, 0.10, 0.30) * _noise(rng, n, 0.98, 0.08, 0.03)
    if kind == "regimes":
        switch = rng.random(n) < 1 / (3 * 288)
        return np.where(np.cumsum(switch) % 2 == 1, 0.32, 0.12) * _noise(rng, n, 0.98, 0.08, 0.03)
    raise ValueError(kind)


KINDS = ("rising", "rising-noisy", "falling", "weekly", "regimes")


def write_trace(path: Path, floor: np.ndarray) -> None:
    lines = ["ts,gpu_type,minimum_bid_price,uninterruptable_price,cloud,gpu_count,stock_status"]
    lines += [f"{(START + timedelta(minutes=5 * i)).strftime('%Y-%m-%dT%H:%M:%SZ')},X,{min(p, 5.0):.4f},{ON_DEMAND},"
              "COMMUNITY,1," for i, p in enumerate(floor)]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the table here (Markdown)")
    args = parser.parse_args()
    if args.out and not args.out.parent.is_dir():  # found before five minutes of backtests, not after
        parser.error(f"--out: no folder {args.out.parent}; create it or write elsewhere")
    rows = ["| market | job | tolerance | windows | bidder | interruptions (allowed) | floor | floor+0.10 | on-demand | "
            "optimum |", "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    with tempfile.TemporaryDirectory() as folder:
        for kind in KINDS:
            path = Path(folder) / f"{kind}.csv"
            write_trace(path, market(kind))
            history = load_trace(path)
            for hours, deadline, every, tolerance in RUNS:
                job = BacktestJob(gpu_types=("X",), work_hours=hours, deadline_hours=deadline,
                                  restart_overhead_hours=0.25)
                per_day = parse_tolerance(tolerance)
                report = run_backtest(history, job, Policy(tolerance=per_day), STRATEGIES, every_hours=every)
                cost = {s: np.mean([w.results[s].cost for w in report.windows]) for s in STRATEGIES}
                ours = [w.results["bidder"] for w in report.windows]
                met = np.mean([bool(r.deadline_met) for r in ours])
                row = (f"| {kind} | {hours} h / {deadline // 24} d | {tolerance} | {len(ours)} | ${cost['bidder']:.3f}"
                       f"{'' if met == 1 else f' ({met:.0%} met)'} | {np.mean([r.interruptions for r in ours]):.2f} "
                       f"({per_day * deadline / 24:g}) | " + " | ".join(f"${cost[s]:.3f}" for s in STRATEGIES[1:]) + " |")
                rows.append(row)
                print(row, flush=True)
    if args.out:
        args.out.write_text("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
