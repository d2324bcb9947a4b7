"""How often bidder's spot starts are interrupted in their first block, against what its model said.

    python3 analysis/study_start_hazard.py --trace T.csv --gpu "g2.2xlarge/us-east-1a"
    python3 analysis/study_start_hazard.py --trace T.csv --gpu SYN-A --tolerance medium --out F.md

The issue's batch job (100 GPU-hours, 7-day deadline, 15-minute restart overhead, a window every 3.5
days after 2 days of history) on one GPU type (in every cloud the trace sells it). Every spot run bidder starts (a fresh start, a restart
after an interruption, or a re-bid) is matched with what the price-state model it decided on
(`bidder.planner`, the backtest's daily fit) said of its first block: the chance that the highest floor
of the next `step_h` hours stays at or under the run's bid, read from the current state (the highest
floor of the last block) and the transition row of that time of day, of the market the run is on (a
job on several markets may have followed their pool's plan: the forecast is still its market's). The run then counts as
interrupted (the floor passed its bid within that block), survived (still running a block later), or
ended by bidder itself before either (left out). Runs are also split by whether the floor had already
been at or under the bid for the whole block before the last one (a start into a calm spell) or not
(a start just after a spike or a fall), and by whether the last block's highest floor was above the
one before's (a rising floor).

A model that forecasts the floor well from every state can still be wrong about the moments bidder
starts in: a job restarts after each interruption, so its starts gather in the spells when the floor
moves most.

`--oracle-minutes N` also prices a perfect forecast: bidder replayed again, but a spot start the floor
would interrupt within N minutes waits instead (it reads the future: an oracle, a bound on what any
forecast of a start's first minutes can save), both against the optimum's lower bound.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np
from study_inputs import StudyError, add_window_options, emit, read_window_inputs

from bidder.backtest.engine import run_backtest
from bidder.backtest.strategies import WAIT, Action, BidderFactory, HistoryView, RunState
from bidder.backtest.types import BacktestJob, Market
from bidder.models import JobSpec, Policy
from bidder.planner import recent_max

BANDS = ((0.0, 0.7), (0.7, 0.85), (0.85, 0.95), (0.95, 1.0 + 1e-9))


class Watched:
    """The bidder strategy, with each spot run it starts matched with its model's forecast of the run's
    first block, and that block's outcome (rows of `runs`: predicted survival, interrupted, calm before)."""

    def __init__(self, inner: Any, history: Any, runs: list[tuple[float, bool, bool, bool]]) -> None:
        self.inner, self.history, self.runs = inner, history, runs
        self.name = inner.name
        self.open: tuple[float, float, float, bool, bool, float] | None = None  # start, bid, survival, calm, rising, block s

    def decide(self, view: HistoryView, state: RunState) -> Action:
        self._settle(state)
        action = self.inner.decide(view, state)
        pod = state.pod
        if action.kind == "spot" and (pod is None or (pod.kind, pod.market, pod.bid) != ("spot", action.market, action.bid)):
            self.open = self._forecast(view, int(action.market), float(action.bid))  # type: ignore[arg-type]
        elif action.kind != "keep":
            self.open = None  # ended by bidder itself, or no spot run: left out
        return action

    def _settle(self, state: RunState) -> None:
        """Count the open run once its first block is decided: interrupted in it, or still running."""
        if self.open is None:
            return
        start, bid, survival, calm, rising, block = self.open
        if state.just_interrupted and state.now - start <= block:
            self.runs.append((survival, True, calm, rising))
            self.open = None
        elif state.now - start > block and (state.just_interrupted or (state.pod is not None and state.pod.bid == bid)):
            self.runs.append((survival, False, calm, rising))
            self.open = None
        elif state.pod is None and not state.just_interrupted:
            self.open = None  # the run never started (the floor was above the bid) or was ended

    def _forecast(self, view: HistoryView, market: int, bid: float) -> tuple[float, float, float, bool, bool, float] | None:
        now = view.now
        model = self.inner.models.at(view, now)[market]
        if model is None or model.levels == 0:
            return None
        block = model.step_h * 3600.0
        last = recent_max(view.ts, view.floor(market), now, model.step_h)
        state = model.state_of(last)
        level = model.level_of_bid(bid)
        trans = model.trans if model.phase_trans is None else model.phase_trans[model.phase_of(now / 3600.0)]
        survival = float(trans[state, :level + 1].sum()) if level >= 0 else 0.0
        before = recent_max(view.ts, view.floor(market), now - block, model.step_h)
        return now, bid, survival, bool(before <= bid), bool(last > before), block


class Vetoing:
    """The bidder strategy, but a spot start the floor would interrupt within `minutes` waits instead."""

    def __init__(self, inner: Any, history: Any, minutes: float) -> None:
        self.inner, self.history, self.seconds = inner, history, minutes * 60.0
        self.name = inner.name
        self.vetoed = 0

    def decide(self, view: HistoryView, state: RunState) -> Action:
        action = self.inner.decide(view, state)
        pod = state.pod
        if action.kind == "spot" and (pod is None or (pod.kind, pod.market, pod.bid) != ("spot", action.market, action.bid)):
            ts = self.history.ts
            ahead = self.history.floor[action.market, int(np.searchsorted(ts, view.now, side="left")):
                                       int(np.searchsorted(ts, view.now + self.seconds, side="right"))]
            if not np.all(ahead <= action.bid):  # NaN (no capacity) interrupts too
                self.vetoed += 1
                return WAIT
        return action


def table(runs: list[tuple[float, bool, bool, bool]]) -> list[str]:
    p = np.array([r[0] for r in runs])
    hit = np.array([r[1] for r in runs], dtype=bool)
    calm = np.array([r[2] for r in runs], dtype=bool)
    rising = np.array([r[3] for r in runs], dtype=bool)
    lines = ["| runs | n | interrupted in the first block: forecast | realised |", "| --- | ---: | ---: | ---: |"]

    def row(label: str, mask: np.ndarray) -> None:
        if mask.any():
            lines.append(f"| {label} | {int(mask.sum())} | {1 - p[mask].mean():.3f} | {hit[mask].mean():.3f} |")

    for lo, hi in BANDS:
        row(f"forecast survival {lo:.2f}-{min(hi, 1.0):.2f}", (p >= lo) & (p < hi))
    row("floor under the bid the block before the last (calm)", calm)
    row("floor over the bid then (a spike or a fall)", ~calm)
    row("the last block's highest floor above the one before's (rising)", rising)
    row("not above it", ~rising)
    row("all", np.ones(len(p), dtype=bool))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_window_options(parser)
    parser.add_argument("--gpu", required=True, help="one GPU type of the trace")
    parser.add_argument("--oracle-minutes", type=float, default=None, metavar="N",
                        help="also replay bidder with every start the floor would interrupt within N minutes "
                             "waiting instead, against the optimum")
    args = parser.parse_args(argv)

    def fail(message: str) -> int:
        print(f"study_start_hazard: error: {message}", file=sys.stderr)
        return 2

    try:
        tolerance, history = read_window_inputs(args)
    except StudyError as exc:
        return fail(str(exc))
    if args.oracle_minutes is not None and not args.oracle_minutes > 0:
        return fail(f"--oracle-minutes {args.oracle_minutes:g}: give minutes, more than 0")
    known = {m.gpu_type_id for m in history.markets}
    if args.gpu not in known:
        return fail(f"--gpu must name one GPU type of the trace: {', '.join(sorted(known))}")
    job = BacktestJob(gpu_types=(args.gpu,), work_hours=100.0, deadline_hours=168.0, restart_overhead_hours=0.25)
    runs: list[tuple[float, bool, bool, bool]] = []
    factory = BidderFactory()

    def watched(markets: list[Market], spec: JobSpec, pol: Policy) -> Watched:
        return Watched(factory(markets, spec, pol), history, runs)

    oracle = args.oracle_minutes is not None
    names = ["bidder", "optimum"] if oracle else ["bidder"]
    report = run_backtest(history, job, Policy(tolerance=tolerance), names, every_hours=args.every,
                          factories={"bidder": watched})
    if not runs:
        return fail("bidder started no spot run with a model in any window: nothing to compare")
    lines = [f"{args.trace.name}, {args.gpu}, tolerance {args.tolerance}: {len(report.windows)} windows, "
             f"{len(runs)} spot runs with a first block decided", "", *table(runs)]
    if oracle:
        selected = history.select(job)
        vetoing: list[Vetoing] = []

        def vetoes(markets: list[Market], spec: JobSpec, pol: Policy) -> Vetoing:
            vetoing.append(Vetoing(factory(markets, spec, pol), selected, args.oracle_minutes))
            return vetoing[-1]

        seen = run_backtest(history, job, Policy(tolerance=tolerance), ["bidder"], every_hours=args.every,
                            factories={"bidder": vetoes})
        bounds = [w.results["optimum"].lower_bound for w in report.windows]
        if any(b is None for b in bounds):
            return fail("the optimum is infeasible in some window: no ratio to compare")
        plain = [w.results["bidder"] for w in report.windows]
        told = [w.results["bidder"] for w in seen.windows]
        lines += ["", f"bidder x the optimum: {np.mean([r.cost / b for r, b in zip(plain, bounds, strict=True)]):.3f} "
                      f"({np.mean([r.interruptions for r in plain]):.1f} interruptions a window); with every start "
                      f"the floor would interrupt within {args.oracle_minutes:g} minutes waiting instead (an oracle: "
                      f"{sum(v.vetoed for v in vetoing)} starts): "
                      f"{np.mean([r.cost / b for r, b in zip(told, bounds, strict=True)]):.3f} "
                      f"({np.mean([r.interruptions for r in told]):.1f}); deadlines met "
                      f"{sum(bool(r.deadline_met) for r in told)} of {len(told)}"]
    return emit(lines, args.out)


if __name__ == "__main__":
    sys.exit(main())
