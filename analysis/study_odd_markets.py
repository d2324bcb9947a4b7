"""Odd markets through bidder: does it meet its deadlines, hold its tolerance and beat on-demand?

    python3 analysis/study_odd_markets.py            # 11 markets x 3 tolerances x 3 jobs, about a minute

Last output: `analysis/results/odd-markets.txt`.

Eleven one-type markets of 16 days of 5-minute samples, on-demand $1.00 (unless said), written as
trace CSVs in a temporary folder: no spot capacity ever; spot always above on-demand; a constant
floor; a floor that steps down (0.6 -> 0.1) or up (0.1 -> 0.9) half-way; a random walk whose
on-demand price halves half-way; the walk with 8-hour holes in the samples (a collector that was
down); the walk with half its samples without capacity; a floor of 0.2 with 5% of samples spiking to
5.0 (spot useless); a floor alternating 0.2 / 0.7 every 3 hours; a daily cycle, 0.2 from 12:00 to
18:00 UTC and 0.8 the rest of the day (the planner's daily model). Each runs the `bidder` strategy and
on-demand over windows every 3.5 days for a 100 h / 7-day, a 10 h / 1-day and a 2 h / 3 h job at
tolerance low, medium and high. Prints, per run, the share of deadlines met, bidder's cost against
on-demand's and the interruptions per day of the window, flagging a missed deadline, a tolerance
exceeded, or a cost above on-demand's.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from bidder.backtest.engine import run_backtest
from bidder.backtest.history import load_trace
from bidder.backtest.types import BacktestJob
from bidder.models import Policy, parse_tolerance

SAMPLES = 12 * 24 * 16
START = datetime(2026, 3, 1, tzinfo=UTC)
JOBS = ((100, 168), (10, 24), (2, 3))


def _write(path: Path, floor: np.ndarray, on_demand: np.ndarray, holes: np.ndarray | None) -> None:
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["ts", "gpu_type", "minimum_bid_price", "uninterruptable_price", "cloud", "gpu_count",
                      "stock_status"])
        for i in range(SAMPLES):
            if holes is not None and holes[i]:
                continue
            price = "" if np.isnan(floor[i]) else f"{floor[i]:.4f}"
            out.writerow([(START + timedelta(minutes=5 * i)).strftime("%Y-%m-%dT%H:%M:%SZ"), "X", price,
                          f"{on_demand[i]:.4f}", "COMMUNITY", 1, ""])


def markets() -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    rng = np.random.default_rng(5)
    i = np.arange(SAMPLES)
    od = np.full(SAMPLES, 1.0)
    walk = np.clip(0.3 * np.exp(np.cumsum(rng.normal(0, 0.02, SAMPLES))), 0.05, 3.0)
    return {
        "no capacity": (np.full(SAMPLES, np.nan), od, None),
        "above on-demand": (np.full(SAMPLES, 1.5), od, None),
        "constant": (np.full(SAMPLES, 0.3), od, None),
        "steps down": (np.where(i < SAMPLES // 2, 0.6, 0.1), od, None),
        "steps up": (np.where(i < SAMPLES // 2, 0.1, 0.9), od, None),
        "on-demand halves": (walk, np.where(i < SAMPLES // 2, 1.0, 0.4), None),
        "8-hour holes": (walk, od, (i // 100) % 7 == 3),
        "half no capacity": (np.where(rng.random(SAMPLES) < 0.5, np.nan, walk), od, None),
        "5% spikes": (np.where(rng.random(SAMPLES) < 0.05, 5.0, 0.2), od, None),
        "two prices": (np.where((i // 36) % 2 == 0, 0.2, 0.7), od, None),
        "cheap afternoons": (np.where((i // 12) % 24 >= 12, np.where((i // 12) % 24 < 18, 0.2, 0.8), 0.8), od, None),
    }


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    print(f"{'market':18s} {'tolerance':9s} {'job':>9s}  met   x on-demand  interruptions/day")
    with tempfile.TemporaryDirectory(prefix="bidder-odd-") as tmp:
        for name, (floor, od, holes) in markets().items():
            path = Path(tmp) / f"{name.replace(' ', '-')}.csv"
            _write(path, floor, od, holes)
            history = load_trace(path)
            for tolerance in ("low", "medium", "high"):
                allowed = parse_tolerance(tolerance)
                for work, deadline in JOBS:
                    job = BacktestJob(gpu_types=("X",), work_hours=work, deadline_hours=deadline,
                                      restart_overhead_hours=0.25)
                    report = run_backtest(history, job, Policy(tolerance=allowed), ("bidder", "on-demand"),
                                          every_hours=84)
                    runs = [(w.results["bidder"], w.results["on-demand"]) for w in report.windows]
                    met = float(np.mean([bool(b.deadline_met) for b, _ in runs]))
                    ratio = float(np.mean([b.cost / o.cost for b, o in runs if o.cost > 0]))
                    per_day = float(np.mean([b.interruptions / (deadline / 24) for b, _ in runs]))
                    flags = [text for bad, text in ((met < 1, "deadline missed"),
                                                    (per_day > allowed + 1e-9, "over the tolerance"),
                                                    (ratio > 1.0 + 1e-9, "dearer than on-demand")) if bad]
                    print(f"{name:18s} {tolerance:9s} {work:3d}h/{deadline:3d}h {met:5.0%} {ratio:8.2f} "
                          f"{per_day:14.2f}   {', '.join(flags)}", flush=True)


if __name__ == "__main__":
    main()
