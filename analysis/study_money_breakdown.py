"""Where bidder's money goes against the optimum's: hours and dollars by what ran, and when it waited.

    python3 analysis/study_money_breakdown.py --trace T.csv --gpus "g2.2xlarge/us-east-1a"
    python3 analysis/study_money_breakdown.py --trace T.csv --gpus "A|B" --tolerance medium --out F.md

The issue's batch job (100 GPU-hours, 7-day deadline, 15-minute restart overhead, a window every 3.5
days after 2 days of history) on the GPU types of `--gpus` (several: one job that accepts each). For
bidder, every 5-minute step of every window is counted by what the job had during it: a spot pod
(hours, what its bid paid, what the floor under it would have paid), an on-demand pod, or nothing
(waiting). Each step is also put in a band by the cheapest floor of the job's markets then, as a share
of on-demand (under 0.3, 0.3-0.5, 0.5-1, above on-demand or no capacity); on-demand hours are also
split by how much of the window's interruption budget was used when they ran. The optimum
(`bidder.backtest.optimum`, perfect foresight) is split the same way from its plan's segments. Means
per window. A strategy that pays on-demand where the optimum waited, or bids far above the floor it
runs on, shows it here.

Timing or price: each hour run is also valued at the median of the cheapest floor in its 6-hour UTC
span (00-06, 06-12, ...; at most on-demand). That value's difference between bidder and the optimum
is when they ran (the spans their hours fell in); what each paid over it, spot and on-demand apart,
is what they paid for those hours. The three rows add up to the cost.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from typing import Any

import numpy as np
from study_inputs import StudyError, add_window_options, emit, issue_job, read_window_inputs

from bidder.backtest.engine import run_backtest, window_starts
from bidder.backtest.optimum import solve_optimum
from bidder.backtest.strategies import Action, BidderFactory, HistoryView, RunState
from bidder.backtest.types import BacktestJob, Market
from bidder.models import JobSpec, Policy

BANDS = ("floor < 0.3 od", "0.3-0.5 od", "0.5-1 od", "above od / none")
SPAN_S = 6 * 3600  # the spans whose floor median values an hour run (module docstring)
_span_medians: dict[int, np.ndarray] = {}


def band(history: Any, i: int) -> str:
    """The band of sample `i`: the cheapest floor of the job's markets over the cheapest on-demand."""
    floors = history.floor[:, i]
    share = np.nanmin(floors) / np.nanmin(history.on_demand[:, i]) if not np.isnan(floors).all() else np.inf
    return BANDS[int(np.searchsorted([0.3, 0.5, 1.0], share, side="right"))]


def span_median(history: Any, i: int) -> float:
    """The median of the cheapest floor of the job's markets over sample `i`'s 6-hour UTC span, at most
    the cheapest on-demand (no capacity counts as above it)."""
    medians = _span_medians.get(id(history))
    if medians is None:
        with np.errstate(all="ignore"):
            cheapest = np.nanmin(np.where(np.isnan(history.floor), np.inf, history.floor), axis=0)
            od = np.nanmin(history.on_demand, axis=0)
        span = (history.ts // SPAN_S).astype(np.int64)
        medians = np.empty(len(span))
        for s in np.unique(span):
            at = span == s
            medians[at] = min(float(np.median(cheapest[at])), float(np.nanmin(od[at])))
        _span_medians[id(history)] = medians
    return float(medians[i])


class Tally:
    """Hours and dollars by what the job had, and the band of the floor then (sums over windows)."""

    def __init__(self) -> None:
        self.hours: dict[tuple[str, str], float] = defaultdict(float)
        self.paid: dict[str, float] = defaultdict(float)
        self.floor_paid = 0.0
        self.od_by_budget: dict[str, float] = defaultdict(float)
        self.runs = 0  # pods started
        self.at_median = 0.0  # every hour run, at its span's floor median
        self.over_median: dict[str, float] = defaultdict(float)  # paid over it, by kind

    def add(self, history: Any, i: int, hours: float, kind: str, market: int, bid: float | None) -> None:
        self.hours[(kind, band(history, i))] += hours
        if kind == "spot":
            price = float(bid)  # type: ignore[arg-type]
            self.floor_paid += hours * float(history.floor[market, i])
        elif kind == "on-demand":
            price = float(history.on_demand[market, i])
        else:
            return
        self.paid[kind] += hours * price
        median = span_median(history, i)
        self.at_median += hours * median
        self.over_median[kind] += hours * (price - median)


class Counted:
    """The bidder strategy, with each step it decides counted in a Tally by the pod it had since the
    last decision (the engine decides at every sample of a backtest)."""

    def __init__(self, inner: Any, history: Any, tally: Tally, budget: float) -> None:
        self.inner, self.history, self.tally, self.budget = inner, history, tally, budget
        self.name = inner.name
        self.last: tuple[float, str, int, float | None] | None = None  # (epoch, kind, market, bid) after the last action

    def decide(self, view: HistoryView, state: RunState) -> Action:
        if self.last is not None:
            since, kind, market, bid = self.last
            i = int(np.searchsorted(self.history.ts, since, side="right")) - 1
            hours = (state.now - since) / 3600
            self.tally.add(self.history, i, hours, kind, market, bid)
            if kind == "on-demand":
                used = state.interruptions / self.budget if self.budget else 1.0
                self.tally.od_by_budget["under 2/3 of the budget used" if used < 2 / 3 else "2/3 or more used"] += hours
        action = self.inner.decide(view, state)
        pod = state.pod
        if action.kind == "keep":
            kind, market, bid = ("waiting", -1, None) if pod is None else (
                "spot" if pod.kind == "spot" else "on-demand", pod.market, pod.bid)
        elif action.kind == "wait":
            kind, market, bid = "waiting", -1, None
        elif action.kind == "spot":
            kind, market, bid = "spot", int(action.market), action.bid  # type: ignore[arg-type]
        else:
            kind, market, bid = "on-demand", int(action.market), None  # type: ignore[arg-type]
        if kind != "waiting" and action.kind != "keep" and (
                pod is None or (pod.kind, pod.market, pod.bid) != (kind.replace("-", "_"), market, bid)):
            self.tally.runs += 1
        self.last = (state.now, kind, market, bid)
        return action


def optimum_tally(history: Any, job: BacktestJob, starts: list[int]) -> tuple[Tally, float]:
    """The optimum's plans split as bidder's steps are (idle samples up to its last segment's end are
    waiting); and its mean cost (the plans' replayed cost, the upper bound)."""
    tally, cost = Tally(), 0.0
    hours = np.append(np.diff(history.ts), history.step_s) / 3600
    for start in starts:
        plan = solve_optimum(history, job, start)
        cost += plan.upper
        busy = np.zeros(len(history), dtype=bool)
        tally.runs += len(plan.segments)
        for seg in plan.segments:
            busy[seg.start:seg.end] = True
            for i in range(seg.start, seg.end):
                tally.add(history, i, float(hours[i]), "spot" if seg.kind == "spot" else "on-demand", seg.market,
                          seg.bid)
        end = max((seg.end for seg in plan.segments), default=start)
        for i in np.flatnonzero(~busy[start:end]) + start:
            tally.add(history, int(i), float(hours[i]), "waiting", -1, None)
    return tally, cost / max(len(starts), 1)


def table(rows: list[tuple[str, Tally, float, dict[str, float]]], windows: int) -> list[str]:
    lines = ["| | " + " | ".join(name for name, *_ in rows) + " |", "| --- |" + " ---: |" * len(rows)]

    def row(label: str, values: list[str]) -> None:
        lines.append(f"| {label} | " + " | ".join(values) + " |")

    row("cost per window (USD)", [f"{cost:.2f}" for _, _, cost, _ in rows])
    for kind in ("spot", "on-demand"):
        row(f"{kind} hours", [f"{sum(v for (k, _), v in t.hours.items() if k == kind) / windows:.1f}"
                              for _, t, _, _ in rows])
        row(f"{kind} paid (USD)", [f"{t.paid[kind] / windows:.2f}" for _, t, _, _ in rows])
    row("spot paid / the floor run on", [f"{t.paid['spot'] / t.floor_paid:.3f}" if t.floor_paid else "-"
                                        for _, t, _, _ in rows])
    row("hours run, at their 6-h span's floor median (USD)", [f"{t.at_median / windows:.2f}" for _, t, _, _ in rows])
    for kind in ("spot", "on-demand"):
        row(f"{kind} paid over that median (USD)", [f"{t.over_median[kind] / windows:.2f}" for _, t, _, _ in rows])
    row("runs started", [f"{t.runs / windows:.1f}" for _, t, _, _ in rows])
    row("restart hours lost", [f"{extra.get('lost', float('nan')):.1f}" if 'lost' in extra else "-"
                               for _, _, _, extra in rows])
    row("interruptions", [f"{extra['interruptions']:.1f}" if 'interruptions' in extra else "-"
                          for _, _, _, extra in rows])
    for kind in ("on-demand", "waiting"):
        for b in BANDS:
            row(f"{kind} hours, {b}", [f"{t.hours[(kind, b)] / windows:.1f}" for _, t, _, _ in rows])
    for key in ("under 2/3 of the budget used", "2/3 or more used"):
        row(f"on-demand hours, {key}", [f"{t.od_by_budget[key] / windows:.1f}" if t.od_by_budget else "-"
                                        for _, t, _, _ in rows])
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_window_options(parser)
    parser.add_argument("--gpus", required=True, help="GPU types of the trace, separated by | (one job accepts each)")
    args = parser.parse_args(argv)

    def fail(message: str) -> int:
        print(f"study_money_breakdown: error: {message}", file=sys.stderr)
        return 2

    try:
        tolerance, history = read_window_inputs(args)
        job = issue_job(args.gpus, history)
    except StudyError as exc:
        return fail(str(exc))
    gpus = job.gpu_types
    policy = Policy(tolerance=tolerance)
    selected = history.select(job)
    tally, factory = Tally(), BidderFactory()
    budget = tolerance * job.deadline_hours / 24.0  # the window's interruptions allowed

    def counted(markets: list[Market], spec: JobSpec, pol: Policy) -> Counted:
        return Counted(factory(markets, spec, pol), selected, tally, budget)

    report = run_backtest(history, job, policy, ["bidder"], every_hours=args.every, factories={"bidder": counted})
    windows = len(report.windows)
    results = [w.results["bidder"] for w in report.windows]
    mine = {"lost": sum(r.restart_hours_lost for r in results) / windows,
            "interruptions": sum(r.interruptions for r in results) / windows}
    starts = window_starts(selected, job, every_hours=args.every)
    best, best_cost = optimum_tally(selected, job, starts)
    cost = sum(r.cost for r in results) / windows
    met = sum(bool(r.deadline_met) for r in results)
    lines = [f"{args.trace.name}, {' + '.join(gpus)}, tolerance {args.tolerance}: {windows} windows "
             f"(bidder met {met} deadlines), means per window", "",
             *table([("bidder", tally, cost, mine), ("optimum", best, best_cost, {})], windows)]
    return emit(lines, args.out)


if __name__ == "__main__":
    sys.exit(main())
