"""Optimizer passes 8 and 12: which plans should count the work an interrupted pod did?

    python3 analysis/study_interrupted_work.py TRACE GPU[|GPU...] [--tolerance high] [--variant all]

Without it, the planner's plans (`bidder.planner.solve_plan`) price a spot block the floor interrupts
as half the block paid and no work; a kept pod's interruption also loses the restart overhead. In the
backtest engine the pod has done about half a block of work by then, so that plan charges a kept pod's
interruption half a block of work too much (a quarter hour with half-hour blocks and a 15-minute
restart). `planner.COUNT_INTERRUPTED_WORK` says which plans count it:

    unpriced  (shipped since pass 12) the plans at the unpriced interruption prices
              (`planner.INTERRUPTION_PRICES`), followed where the tolerance does not bind; the budget's
              search plans without it
    all       every plan counts it
    none      no plan does (passes 1-11)

This runs the issue's job (100 GPU-hours, 7-day deadline, 15-minute restart, windows every 84 hours
after 48 hours of history) through `run_backtest` with the shipped setting and with `--variant`, and
prints bidder's cost / the optimum's lower bound, mean and worst window, and the mean interruptions a
window.

Results and the reading: analysis/results/optimizer-pass8.md and optimizer-pass12.md.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

import bidder.planner as planner
from bidder.backtest.engine import BacktestJob, load_trace, run_backtest
from bidder.errors import BidderError
from bidder.models import Policy, parse_tolerance


def tolerance_arg(text: str) -> str:
    """An argparse `type` for --tolerance: a bad value is the parser's one-line error, not a traceback."""
    try:
        parse_tolerance(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def run_main(main: Callable[[], None]) -> None:
    """Run a study's `main`: a bad trace or GPU (bidder's own errors) is one line on stderr and exit 2,
    not a traceback."""
    try:
        main()
    except BidderError as exc:
        print(f"{Path(sys.argv[0]).name}: error: {exc}", file=sys.stderr)
        sys.exit(2)


def measure(trace: str, gpus: str, tolerance: str, lower: list[float] | None = None
            ) -> tuple[np.ndarray, np.ndarray, bool, list[float]]:
    """bidder's cost / the optimum's lower bound per window, its interruptions, whether every deadline was
    met, and the lower bounds (solved unless given: they do not depend on bidder)."""
    job = BacktestJob(gpu_types=tuple(gpus.split("|")), work_hours=100.0, deadline_hours=168.0,
                      restart_overhead_hours=0.25)
    report = run_backtest(load_trace(trace), job, Policy(tolerance=parse_tolerance(tolerance)),
                          ["bidder"] if lower else ["bidder", "optimum"], every_hours=84, record_window=None)
    if not lower:
        lower = [float(w.results["optimum"].lower_bound or np.nan) for w in report.windows]
    cost = np.array([w.results["bidder"].cost for w in report.windows])
    intr = np.array([w.results["bidder"].interruptions for w in report.windows], dtype=float)
    met = all(w.results["bidder"].deadline_met for w in report.windows)
    return cost / np.array(lower), intr, met, lower


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trace")
    parser.add_argument("gpus", help="GPU types, |-separated")
    parser.add_argument("--tolerance", default="high", type=tolerance_arg)
    parser.add_argument("--variant", choices=("all", "none"), default="all")
    args = parser.parse_args()
    lower: list[float] | None = None
    for label in (planner.COUNT_INTERRUPTED_WORK, args.variant):
        planner._plans.clear()
        planner.COUNT_INTERRUPTED_WORK = label
        x, intr, met, lower = measure(args.trace, args.gpus, args.tolerance, lower)
        print(f"{label:8s} {args.gpus[:40]:40s} {args.tolerance:6s} mean {x.mean():.3f} worst {x.max():.3f} "
              f"interruptions {intr.mean():.1f} a window, deadlines {'all met' if met else 'MISSED'}", flush=True)


if __name__ == "__main__":
    run_main(main)
