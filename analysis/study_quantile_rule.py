"""What a simple bid rule tuned in hindsight reaches: bid a quantile of the recent floor, every window.

    python3 analysis/study_quantile_rule.py --trace T.csv --gpus SYN-A
    python3 analysis/study_quantile_rule.py --trace T.csv --gpus "g2.2xlarge/us-east-1a" --out F.md

The issue's batch job (100 GPU-hours, 7-day deadline, 15-minute restart overhead, a window every 3.5
days after 2 days of history) on one GPU type of the trace. The rule: with no pod, bid the q-quantile
of the floor's samples over the last H hours (no capacity counts as above every bid; never above
on-demand) and start when the floor is at or under that bid; keep the pod until it is interrupted;
once the slack (hours to the deadline less the work left) is under 4 hours, run on-demand to the end.
Every (q, H) of a grid is replayed on the same windows as bidder and the optimum, and the table shows
them cheapest first: the best of them is chosen with the whole trace known, so it is an optimistic
yardstick for what reading the recent floor alone can reach on a market, not a strategy. It ignores
the interruption tolerance (the column shows what it took); bidder's row keeps to `--tolerance`.
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np
from study_inputs import StudyError, add_window_options, emit, issue_job, read_window_inputs, run_script

from bidder.backtest.engine import run_backtest
from bidder.backtest.strategies import KEEP, WAIT, Action, RunState, _Baseline
from bidder.backtest.types import HistoryView
from bidder.models import Policy

QUANTILES = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
SPANS_H = (6.0, 24.0, 72.0)
SLACK_H = 4.0  # on-demand to the end once the slack is under this (room for a restart and an interrupted run)


def quantile_rule(q: float, span_h: float) -> type[_Baseline]:
    """The strategy factory of the rule at quantile `q` of the last `span_h` hours (first market only)."""

    class QuantileRule(_Baseline):
        name = f"q{q:g} of {span_h:g} h"

        def decide(self, view: HistoryView, state: RunState) -> Action:
            slack = (state.deadline - state.now) / 3600.0 - (state.work_left_hours or 0.0)  # type: ignore[operator]
            if state.pod is not None:
                return Action("on_demand", 0) if slack < SLACK_H and state.pod.kind == "spot" else KEEP
            if slack < SLACK_H:
                return Action("on_demand", 0)
            first = int(np.searchsorted(view.ts, view.now - span_h * 3600.0, side="left"))
            recent = view.floor(0)[first:]
            # A sample's own value (no interpolation: between a price and no capacity, inf - inf is NaN)
            bid = float(np.quantile(np.where(np.isnan(recent), np.inf, recent), q, method="inverted_cdf")) \
                if len(recent) else math.inf
            bid = min(bid, float(view.on_demand_now()[0]))
            return Action("spot", 0, bid) if float(view.floors_now()[0]) <= bid else WAIT

    return QuantileRule


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_window_options(parser)
    parser.add_argument("--gpus", required=True, help="the GPU type of the trace the job runs on (one)")
    args = parser.parse_args()
    tolerance, history = read_window_inputs(args)
    job = issue_job(args.gpus, history)
    if len(job.gpu_types) != 1:
        raise StudyError("--gpus: give one GPU type (the rule bids on one market)")
    rules = {quantile_rule(q, h).name: quantile_rule(q, h) for q in QUANTILES for h in SPANS_H}
    report = run_backtest(history, job, Policy(tolerance=tolerance), ["bidder", "optimum", *rules],
                          every_hours=args.every, factories=rules)
    rows = report.summary()["strategies"]
    windows = len(report.windows)
    allowed = tolerance * job.deadline_hours / 24.0
    lines = [f"{args.trace.name}, {job.gpu_types[0]}, {windows} windows: mean cost / the optimum's lower bound "
             f"(worst window), interruptions a window (bidder at tolerance {args.tolerance}: "
             f"{allowed:g} allowed), deadlines met", "",
             "| strategy | cost / optimum | interruptions | within the tolerance | deadlines met |",
             "| --- | ---: | ---: | --- | ---: |"]
    ranked = sorted(rows, key=lambda r: (r["cost_vs_optimum"] is None, r["cost_vs_optimum"] or 0.0))
    for row in ranked:
        ratio = "-" if row["cost_vs_optimum"] is None else \
            f"{row['cost_vs_optimum']:.3f} ({row['worst']['cost_vs_optimum'] or math.nan:.2f})"
        within = "yes" if row["interruptions"] <= allowed + 1e-9 else "no"
        lines.append(f"| {row['name']} | {ratio} | {row['interruptions']:.1f} | {within} | {row['deadline_met_share']:.0%} |")
    best = [r for r in ranked if r["name"] in rules and r["cost_vs_optimum"] is not None]
    kept = [r for r in best if r["interruptions"] <= allowed + 1e-9]
    best_within = f"{kept[0]['name']} ({kept[0]['cost_vs_optimum']:.3f})" if kept else "none"
    lines += ["", f"best rule: {best[0]['name'] if best else '-'}; best within the tolerance: {best_within}"]
    return emit(lines, args.out)


if __name__ == "__main__":
    sys.exit(run_script("study_quantile_rule", main))
