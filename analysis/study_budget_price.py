"""Optimizer passes 9 and 11: the interruption price found from the tolerance's budget.

    python3 analysis/study_budget_price.py TRACE GPU[|GPU...] [--tolerance medium] [--top HOURS]

A plan is followed when its typical interruptions fit what is left of the job's budget (the
tolerance x the window's days, less what it has suffered). Before this pass the planner tried two
prices of an interruption (0 and half an hour of on-demand) and left the job to the rates when
neither fitted; now it searches `planner.BUDGET_PRICES` (0.6 to 4 hours, about 1.2x apart) for the
smallest price whose plan fits. This runs the issue's job (100 GPU-hours, 7-day deadline, 15-minute
restart, windows every 84 hours after 48 hours of history) through `run_backtest` without the grid
(as before) and with it, and prints bidder's cost / the optimum's lower bound, mean and worst window,
the mean interruptions a window, and the plans each run solved (the first run's wall time holds the
optimum's too).

`--top HOURS` (pass 11) runs the grid cut at HOURS first instead of no grid: `--top 4` is the grid
as passes 9 and 10 shipped it, to compare with the grid that runs on to a day of on-demand. Each run
also prints how many decisions no price fitted, which the rates then made.

Results and the reading: analysis/results/optimizer-pass9.md, optimizer-pass11.md.
"""

from __future__ import annotations

import argparse
import time

from study_interrupted_work import measure, run_main, tolerance_arg

import bidder.optimizer as optimizer
import bidder.planner as planner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trace")
    parser.add_argument("gpus", help="GPU types, |-separated")
    parser.add_argument("--tolerance", default="medium", type=tolerance_arg)
    parser.add_argument("--top", type=float, default=None,
                        help="first run the grid cut at this many hours of on-demand (default: no grid)")
    args = parser.parse_args()
    if args.top is not None and not args.top > 0:
        parser.error("--top must be a positive number of hours")
    grid = planner.BUDGET_PRICES
    solve, solves = planner.solve_plan, [0]
    choose, to_rates = optimizer.choose, [0]

    def counted(*a: object, **kw: object) -> planner.Plan:
        solves[0] += 1
        return solve(*a, **kw)  # type: ignore[arg-type]

    def planned(*a: object, **kw: object) -> planner.Choice | None:
        choice = choose(*a, **kw)  # type: ignore[arg-type]
        to_rates[0] += choice is None
        return choice

    planner.solve_plan = counted  # type: ignore[assignment]
    optimizer.choose = planned  # type: ignore[assignment]
    first = ("before", ()) if args.top is None else (f"top {args.top:g}", tuple(p for p in grid if p <= args.top))
    lower: list[float] | None = None
    for label, prices in (first, ("budget", grid)):
        planner._plans.clear()
        planner.BUDGET_PRICES = prices
        solves[0], to_rates[0], t = 0, 0, time.perf_counter()
        x, intr, met, lower = measure(args.trace, args.gpus, args.tolerance, lower)
        print(f"{label:7s} {args.gpus[:40]:40s} {args.tolerance:6s} mean {x.mean():.3f} worst {x.max():.3f} "
              f"interruptions {intr.mean():.1f} a window, deadlines {'all met' if met else 'MISSED'}, "
              f"{solves[0]} solves, {to_rates[0]} decisions to the rates, {time.perf_counter() - t:.0f} s", flush=True)


if __name__ == "__main__":
    run_main(main)
