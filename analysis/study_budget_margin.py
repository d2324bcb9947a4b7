"""Optimizer pass 10: the interruptions a quiet start saved, spent later with a margin.

    python3 analysis/study_budget_margin.py TRACE GPU[|GPU...] [--tolerance medium] [--margin 1]

The budget of a job with a deadline is the tolerance x its window's days. Capped (as shipped before
this pass), the rest of the window may expect at most the tolerance a day, so what quiet days did not
use is lost. Pass 9 lifted the cap and a backtest spent more than the total (4.0 interruptions a
window of 3.5). This pass lets the rest of the window expect t more interruptions when t plus `margin`
standard deviations of a Poisson count (m·√t) fits what is left, and never less than the cap allows.
It runs the issue's job (100 GPU-hours, 7-day deadline, 15-minute restart, windows every 84 hours after
48 hours of history) capped and with the margin, and prints bidder's cost / the optimum's lower bound
(mean and worst window), the mean interruptions a window and how many the window allowed.

Results and the reading: analysis/results/optimizer-pass10.md.
"""

from __future__ import annotations

import argparse
import time

from study_interrupted_work import measure, run_main, tolerance_arg

import bidder.optimizer as optimizer
import bidder.planner as planner
from bidder.models import parse_tolerance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trace")
    parser.add_argument("gpus", help="GPU types, |-separated")
    parser.add_argument("--tolerance", default="medium", type=tolerance_arg)
    parser.add_argument("--margin", type=float, default=1.0, help="standard deviations held (default 1)")
    args = parser.parse_args()
    if not args.margin >= 0:
        parser.error(f"--margin {args.margin:g}: give the standard deviations to hold, 0 or more")
    allowed = parse_tolerance(args.tolerance) * 7.0
    lower: list[float] | None = None
    for label, margin in (("capped", None), (f"margin {args.margin:g}", args.margin)):
        planner._plans.clear()
        optimizer.SAVED_BUDGET_MARGIN = margin
        t = time.perf_counter()
        x, intr, met, lower = measure(args.trace, args.gpus, args.tolerance, lower)
        print(f"{label:10s} {args.gpus[:40]:40s} {args.tolerance:6s} mean {x.mean():.3f} worst {x.max():.3f} "
              f"interruptions {intr.mean():.1f} of {allowed:g} a window (most {intr.max():.0f}), "
              f"deadlines {'all met' if met else 'MISSED'}, {time.perf_counter() - t:.0f} s", flush=True)


if __name__ == "__main__":
    run_main(main)
