"""How often bidder leaves a running pod in a backtest, and for what: a re-bid on the same market, a
move to another market, a switch between spot and on-demand on one market; how long the run it ends
had lasted; and how many moves return within an hour to the pod they left (A -> B -> A, the churn a
keep-or-switch rule should prevent). Every such move is a restart: up to the restart overhead of work lost.

    python3 analysis/study_move_churn.py --gpu g2.2xlarge/us-east-1a --tolerance high
    python3 analysis/study_move_churn.py --tolerance high        # every market of the trace (both zones)

The job is the backtest study's: 100 GPU-hours, 7-day deadline, 15-minute restart overhead, a new start
every 84 hours. Results: analysis/results/move-churn.txt.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bidder.backtest.engine import BacktestJob, load_trace, run_backtest
from bidder.backtest.strategies import BidderFactory
from bidder.errors import BidderError
from bidder.models import Policy, parse_tolerance

ROOT = Path(__file__).resolve().parent.parent
AWS_TRACE = ROOT / "data" / "aws-g2-2016-us-east-1ac.csv"


@dataclass(frozen=True)
class Start:
    """A pod bidder starts: when, what, and the pod it ends (None: the job had none running)."""

    t: float
    kind: str
    market: int
    bid: float | None
    left: tuple[str, int, float | None, float] | None  # (kind, market, bid, hours the run had lasted)


class Recorded:
    """The bidder strategy, recording each pod it starts."""

    def __init__(self, strategy: Any, starts: list[Start]) -> None:
        self.strategy, self.starts = strategy, starts

    def __getattr__(self, name: str) -> Any:
        return getattr(self.strategy, name)

    def decide(self, view: Any, state: Any) -> Any:
        action = self.strategy.decide(view, state)
        pod = state.pod
        if action.kind in ("spot", "on_demand") and not (
                pod is not None and pod.kind == action.kind and pod.market == action.market
                and (action.kind == "on_demand" or pod.bid == action.bid)):  # (the engine keeps that pod)
            left = None if pod is None else (pod.kind, pod.market, pod.bid, (view.now - pod.started) / 3600.0)
            self.starts.append(Start(view.now, action.kind, action.market, action.bid, left))
        return action


def churn(windows: list[list[Start]]) -> dict[str, float]:
    """The counts over every window (see the module's docstring)."""
    rebids = cross = switches = returns = 0
    ages = []
    for starts in windows:
        for i, s in enumerate(starts):
            if s.left is not None:
                kind, market, _bid, age = s.left
                ages.append(age)
                if market != s.market:
                    cross += 1
                elif kind == s.kind == "spot":
                    rebids += 1
                else:
                    switches += 1
            if i >= 2:
                a, b = starts[i - 2], starts[i - 1]
                pod = (s.kind, s.market, s.bid)
                if (a.kind, a.market, a.bid) == pod != (b.kind, b.market, b.bid) and s.t - a.t <= 3600:
                    returns += 1
    n = max(len(windows), 1)
    moves = rebids + cross + switches
    return {"windows": len(windows), "starts": sum(map(len, windows)) / n, "moves": moves / n, "rebids": rebids / n,
            "cross": cross / n, "switches": switches / n, "returns_1h": returns,
            "age_median": float(np.median(ages)) if ages else float("nan"),
            "age_p25": float(np.percentile(ages, 25)) if ages else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trace", type=Path, default=AWS_TRACE)
    parser.add_argument("--gpu", action="append", default=[], help="a market of the trace (repeat; default: all)")
    parser.add_argument("--tolerance", default="high")
    args = parser.parse_args()
    try:
        policy = Policy(tolerance=parse_tolerance(args.tolerance))
        history = load_trace(args.trace)
    except (BidderError, ValueError) as exc:
        parser.exit(2, f"study_move_churn.py: {exc}\n")  # one line, no traceback
    job = BacktestJob(gpu_types=tuple(args.gpu), min_vram_gb=None, gpu_count=1, cloud="ANY", work_hours=100.0,
                      deadline_hours=168.0, keep_running_hours=None, restart_overhead_hours=0.25)
    inner = BidderFactory()
    windows: list[list[Start]] = []

    def recorded(markets: Any, spec: Any, pol: Policy) -> Recorded:
        windows.append([])
        return Recorded(inner(markets, spec, pol), windows[-1])

    try:
        report = run_backtest(history, job, policy, ["bidder"], every_hours=84.0, factories={"bidder": recorded})
    except BidderError as exc:  # e.g. a --gpu the trace does not hold
        parser.exit(2, f"study_move_churn.py: {exc}\n")
    bidder = report.aggregate("bidder")
    c = churn(windows)
    print(f"{args.trace.name}, {' + '.join(args.gpu) or 'every market'}, tolerance {args.tolerance}: "
          f"{c['windows']} windows, ${bidder['cost']:.2f} and {bidder['restart_hours_lost']:.2f} restart h lost a window")
    print(f"  per window: {c['starts']:.1f} pods started, {c['moves']:.1f} of them leaving a running pod: "
          f"{c['rebids']:.1f} re-bids on its market, {c['cross']:.1f} moves to another market, "
          f"{c['switches']:.1f} switches between spot and on-demand on one market")
    print(f"  the run a move ends had lasted {c['age_median']:.2f} h (median; a quarter under {c['age_p25']:.2f} h); "
          f"returns to the pod left within an hour (A -> B -> A): {c['returns_1h']} in all")


if __name__ == "__main__":
    main()
