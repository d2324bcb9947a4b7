"""Optimizer pass 8: does counting the work an interrupted pod did make the plans cheaper?

    python3 analysis/study_interrupted_work.py TRACE GPU[|GPU...] [--tolerance high] [--variant counted]

The planner's plans (`bidder.planner.solve_plan`) price a spot block the floor interrupts as half the
block paid and no work; a kept pod's interruption also loses the restart overhead. In the backtest
engine the pod has done about half a block of work by then, so the plan charges a kept pod's
interruption half a block of work too much (a quarter hour with half-hour blocks and a 15-minute
restart). `planner.COUNT_INTERRUPTED_WORK` switches to counting it. This runs the issue's job
(100 GPU-hours, 7-day deadline, 15-minute restart, windows every 84 hours after 48 hours of history)
through `run_backtest` with the shipped accounting and with one variant, and prints bidder's cost /
the optimum's lower bound, mean and worst window, and the mean interruptions a window:

    counted   every plan counts the interrupted block's work (COUNT_INTERRUPTED_WORK = True)
    unpriced  only the plans at interruption price 0 count it; the priced ones keep the old charge

Results and the reading: analysis/results/optimizer-pass8.md.
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


def _unpriced_only() -> None:
    """Patch `choose` so that only the price-0 plans count the work (the variant measured and dropped)."""
    original = planner.plan_for

    def plan_for(*args: object, **kw: object) -> planner.Plan:
        kw["interrupted_work"] = kw.get("interruption_cost") == 0
        return original(*args, **kw)  # type: ignore[arg-type]

    planner.plan_for = plan_for  # type: ignore[assignment]


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
    parser.add_argument("--variant", choices=("counted", "unpriced"), default="counted")
    args = parser.parse_args()
    lower: list[float] | None = None
    for label in ("shipped", args.variant):
        planner._plans.clear()
        if label == "counted":
            planner.COUNT_INTERRUPTED_WORK = True
        elif label == "unpriced":
            _unpriced_only()
        x, intr, met, lower = measure(args.trace, args.gpus, args.tolerance, lower)
        print(f"{label:8s} {args.gpus[:40]:40s} {args.tolerance:6s} mean {x.mean():.3f} worst {x.max():.3f} "
              f"interruptions {intr.mean():.1f} a window, deadlines {'all met' if met else 'MISSED'}", flush=True)


if __name__ == "__main__":
    run_main(main)
