"""What deciding a spot pod as the backtest does is worth to a tick: bidder as it is, against two ways
`bidder tick` acted before: a running spot pod kept until the floor interrupts it ("spot kept": ticks
re-decided a stopped pod and an on-demand one, never a running spot pod), and an interrupted spot pod
weighed at its old bid ("stopped pod weighed"): the decision after an interruption had the stopped pod
in it, read as a pod kept at no restart, and a keep bid it back in at the bid just outbid (a bid under
the floor then: decided as a fresh start, as the tick's `_under_floor` did), until the job ran another.

    python3 analysis/study_spot_redecided.py --trace data/aws-g2-2016-us-east-1ac.csv --gpus "g2.2xlarge/us-east-1a"
    python3 analysis/study_spot_redecided.py --trace T.csv --gpus "A|B" --tolerance medium --out F.md

The issue's batch job (100 GPU-hours, 7-day deadline, 15-minute restart overhead, a window every 84
hours after 48 hours of history) on the GPU types of `--gpus` (several: one job that accepts each).
Prints, per strategy, the mean cost, cost / the optimum's lower bound (mean over windows, and the worst
window), interruptions, runs bidder ended itself (re-bids, moves, on-demand, waits), and deadlines met;
then, for bidder as it is, what it did with the running spot pods it ended (per window): re-bid on the
same market, moved to spot on another, moved to on-demand, or stopped to wait.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import replace

from study_inputs import add_window_options, emit, issue_job, read_window_inputs, run_script

from bidder.backtest.engine import run_backtest
from bidder.backtest.strategies import KEEP, Action, BidderFactory, HistoryView, PodInfo, RunState, Strategy
from bidder.backtest.types import Market
from bidder.models import JobSpec, Policy


class Counted:
    """bidder as it is, counting what it does with a running spot pod it ends."""

    name = "bidder"

    def __init__(self, inner: Strategy, ends: Counter[str]) -> None:
        self.inner, self.ends = inner, ends

    def decide(self, view: HistoryView, state: RunState) -> Action:
        action = self.inner.decide(view, state)
        pod = state.pod
        same = action.kind == "keep" or (action.kind == "spot" and action.market == pod.market
                                         and action.bid == pod.bid) if pod is not None else True
        if pod is not None and pod.kind == "spot" and not state.just_interrupted and not same:
            self.ends["re-bid, same market" if action.kind == "spot" and action.market == pod.market else
                      "spot on another market" if action.kind == "spot" else
                      "on-demand" if action.kind == "on_demand" else "wait"] += 1
        return action


class KeptSpot:
    """bidder whose running spot pod is kept until the floor interrupts it."""

    name = "spot kept"

    def __init__(self, inner: Strategy) -> None:
        self.inner = inner

    def decide(self, view: HistoryView, state: RunState) -> Action:
        action = self.inner.decide(view, state)
        pod = state.pod
        if pod is not None and pod.kind == "spot" and not state.just_interrupted:
            return KEEP
        return action


class StoppedWeighed:
    """bidder deciding an interrupted spot pod with that pod in the decision at its old bid, as ticks did."""

    name = "stopped pod weighed"

    def __init__(self, inner: Strategy) -> None:
        self.inner = inner
        self.last: tuple[int, float] | None = None  # the spot pod the job ran last (market, bid)
        self.stopped: tuple[int, float] | None = None  # that pod, interrupted, while the job has no other

    def decide(self, view: HistoryView, state: RunState) -> Action:
        pod = state.pod
        if pod is not None:
            self.last = (pod.market, pod.bid) if pod.kind == "spot" and pod.bid is not None else None
            self.stopped = None
            return self.inner.decide(view, state)
        if state.just_interrupted and self.last is not None:
            self.stopped = self.last
        if self.stopped is None:
            return self.inner.decide(view, state)
        market, bid = self.stopped
        action = self.inner.decide(view, replace(state, pod=PodInfo("spot", market, bid, state.now, 0.0)))
        if action.kind == "keep" or (action.kind == "spot" and action.market == market and action.bid == bid):
            if not float(view.floors_now()[market]) <= bid:
                return self.inner.decide(view, state)  # its bid under the floor: decided as a fresh start
            return Action("spot", market, bid)  # bid back in at its old bid
        return action


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_window_options(parser)
    parser.add_argument("--gpus", required=True, help="GPU types of the trace, separated by | (one job accepts each)")
    args = parser.parse_args(argv)
    tolerance, history = read_window_inputs(args)
    job = issue_job(args.gpus, history)
    policy = Policy(tolerance=tolerance)
    ends: Counter[str] = Counter()
    shipped, kept, weighed = BidderFactory(), BidderFactory(), BidderFactory()

    def counted(markets: list[Market], spec: JobSpec, pol: Policy) -> Counted:
        return Counted(shipped(markets, spec, pol), ends)

    def kept_spot(markets: list[Market], spec: JobSpec, pol: Policy) -> KeptSpot:
        return KeptSpot(kept(markets, spec, pol))

    def stopped_weighed(markets: list[Market], spec: JobSpec, pol: Policy) -> StoppedWeighed:
        return StoppedWeighed(weighed(markets, spec, pol))

    names = ["bidder", "spot kept", "stopped pod weighed", "optimum"]
    report = run_backtest(history, job, policy, names, every_hours=args.every,
                          factories={"bidder": counted, "spot kept": kept_spot, "stopped pod weighed": stopped_weighed})
    windows = report.windows
    n = len(windows)
    lines = [f"{args.trace.name}, {' + '.join(job.gpu_types)}, tolerance {args.tolerance}: {n} windows, means per window", "",
             "| strategy | cost $ | x optimum (worst) | interruptions | runs ended by the strategy | deadlines met |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name in names:
        results = [w.results[name] for w in windows]
        ratios = [r.cost / w.results["optimum"].cost for r, w in zip(results, windows, strict=True)]
        lines.append(f"| {name} | {sum(r.cost for r in results) / n:.2f} | {sum(ratios) / n:.3f} ({max(ratios):.3f}) | "
                     f"{sum(r.interruptions for r in results) / n:.1f} | {sum(r.switches for r in results) / n:.1f} | "
                     f"{sum(bool(r.deadline_met) for r in results)} of {n} |")
    lines += ["", "bidder's running spot pods ended, by what came next (per window): "
              + (", ".join(f"{k} {v / n:.1f}" for k, v in ends.most_common()) or "none")]
    return emit(lines, args.out)


if __name__ == "__main__":
    sys.exit(run_script("study_spot_redecided", main))
