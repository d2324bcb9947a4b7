"""Does the plan expect the interruptions that come? Its forecast at a window's start against the count.

    python3 analysis/study_plan_interruptions.py TRACE "GPU[|GPU...]" [--tolerance high]

The tolerance is held to the plan's expected interruptions (`bidder.planner.choose`): a plan that
expects fewer than come spends the window's budget early and leaves the rest of the job to dearer bids
or on-demand. This runs the issue's job (100 GPU-hours, 7-day deadline, 15-minute restart, windows
every 84 hours after 48 hours of history) through `run_backtest` and, for each window, prints the
expected interruptions of the plan followed at the window's first decision (and the interruption price
it was planned at), what the window allowed then, and the interruptions that came. It reads
`choose`'s answers by wrapping the function `bidder.optimizer` calls; nothing else changes.

Results and the reading: analysis/results/optimizer-pass13.md.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
from study_interrupted_work import run_main, tolerance_arg

import bidder.optimizer as optimizer
from bidder.backtest.engine import BacktestJob, load_trace, run_backtest
from bidder.models import Policy, parse_tolerance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trace")
    parser.add_argument("gpus", help="GPU types, |-separated")
    parser.add_argument("--tolerance", default="high", type=tolerance_arg)
    args = parser.parse_args()

    calls: list[tuple[float, float, Any]] = []  # (time left h, interruptions allowed, Choice or None)
    choose = optimizer.choose

    def recorded(markets: Any, **kwargs: Any) -> Any:
        choice = choose(markets, **kwargs)
        calls.append((kwargs["time_left_h"], kwargs["interruptions_allowed"], choice))
        return choice

    optimizer.choose = recorded  # type: ignore[assignment]
    job = BacktestJob(gpu_types=tuple(args.gpus.split("|")), work_hours=100.0, deadline_hours=168.0,
                      restart_overhead_hours=0.25)
    report = run_backtest(load_trace(args.trace), job, Policy(tolerance=parse_tolerance(args.tolerance)),
                          ["bidder"], every_hours=84, record_window=None)
    optimizer.choose = choose  # type: ignore[assignment]
    # A window's decisions count the time left down; the next window's first decision starts it again.
    firsts = [c for i, c in enumerate(calls) if i == 0 or c[0] > calls[i - 1][0] + 1.0]
    if len(firsts) != len(report.windows):
        raise SystemExit(f"found {len(firsts)} window starts in the decisions, expected {len(report.windows)}")
    print(f"{'window':>6} {'expected':>9} {'price':>6} {'allowed':>8} {'realised':>9}")
    expected, realised = [], []
    for i, ((_, allowed, choice), window) in enumerate(zip(firsts, report.windows, strict=True)):
        came = window.results["bidder"].interruptions
        if choice is None:
            print(f"{i:>6} {'-':>9} {'-':>6} {allowed:>8.1f} {came:>9}   (the rates decided)")
            continue
        expected.append(choice.expected_interruptions)
        realised.append(came)
        print(f"{i:>6} {choice.expected_interruptions:>9.1f} {choice.interruption_price:>6.2f} {allowed:>8.1f} "
              f"{came:>9}")
    if expected:
        print(f"mean over the {len(expected)} windows the plan decided first: expected "
              f"{np.mean(expected):.1f}, realised {np.mean(realised):.1f}")


if __name__ == "__main__":
    run_main(main)
