"""Optimizer pass 17: where do the interruptions over a window's budget come from, and which rule keeps them in?

    python3 analysis/study_budget_whole.py TRACE GPU[|GPU...] [--tolerance low] [--variant shipped ...]
        [--baselines FILE.json]

Runs the issue's job (100 GPU-hours, 7-day deadline, 15-minute restart, windows every 84 hours after 48
hours of history) with bidder under each `--variant` of the interruption budget
(`VARIANTS`) and prints, per variant: bidder's cost / the optimum's lower bound (mean and
worst window), the mean interruptions a window against those the tolerance allows, whether every
deadline was met, and where each interruption's pod came from: the plan (at which interruption price)
or the rates, and the budget that was left when the pod started (under 1: a start the budget could
not pay a whole interruption for). The baselines (on-demand, floor, floor+0.10, bid-on-demand) and the
optimum do not depend on the variant: they are run once and, with `--baselines`, kept in that file.

Results and the reading: analysis/results/optimizer-pass17.md.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from study_interrupted_work import run_main, tolerance_arg

import bidder.backtest.engine as engine
import bidder.backtest.strategies as strategies
import bidder.optimizer as optimizer
import bidder.planner as planner
from bidder.backtest.engine import BacktestJob, load_trace, run_backtest
from bidder.models import Policy, parse_tolerance

BASELINES = ("on-demand", "floor", "floor+0.10", "bid-on-demand")
#: The rules measured: the shipped budget; "spread1": with under one interruption left, the rest of the
#: window may expect only t where t + sqrt(t) fits what is left (the saved budget's margin, applied to
#: the last fraction too); "whole": with under one left, none (an interruption is a whole event: the
#: next one takes the window over its budget whatever its chance), so on-demand.
VARIANTS = ("shipped", "spread1", "whole")
SHIPPED_BUDGET = optimizer._interruption_budget


def budget_rule(variant: str) -> Any:
    """`optimizer._interruption_budget` under `variant` (the shipped one, changed only with under one left)."""

    def budget(tolerance: float, job: Any, progress: Any, now: Any, time_left: float) -> float:
        rate = SHIPPED_BUDGET(tolerance, job, progress, now, time_left)
        if variant == "shipped" or progress.started is None or job.deadline is None or not time_left > 0:
            return rate
        left = max(tolerance * (job.deadline - progress.started).total_seconds() / 86400.0
                   - progress.interruptions, 0.0)
        if left >= 1.0 - 1e-9:
            return rate
        if variant == "whole":
            return 0.0
        days_left = time_left / 24.0
        saved = ((math.sqrt(1.0 + 4.0 * left) - 1.0) / 2.0) ** 2
        return min(tolerance, left / days_left, saved / days_left)

    return budget


class Origins:
    """Which rule started each spot pod the floor then interrupted (wraps the functions the strategy calls)."""

    def __init__(self) -> None:
        self.last: tuple[str, float] = ("", 0.0)
        self.interrupted: list[tuple[str, float]] = []  # (origin, budget left at the pod's start)
        self.late: list[list[Any]] = []  # starts with under one interruption left: [origin, left, expected now, interrupted]
        planned, decide = strategies.planned_choice, strategies.decide

        def planned_choice(*args: Any, **kwargs: Any) -> Any:
            choice = planned(*args, **kwargs)
            if choice is not None and choice.market is not None:
                self.last = (f"plan@{choice.interruption_price:g}", choice.expected_interruptions)
            return choice

        def decided(*args: Any, **kwargs: Any) -> Any:
            self.last = ("rates", 0.0)
            return decide(*args, **kwargs)

        strategies.planned_choice = planned_choice  # type: ignore[assignment]
        strategies.decide = decided  # type: ignore[assignment]
        act, end_run = engine._Run.act, engine._Run.end_run
        origins = self

        def act_(run: Any, t: float, interrupted: bool) -> None:
            before = (run.kind, run.market, run.bid, run.started)
            act(run, t, interrupted)
            if run.kind == "spot" and (run.kind, run.market, run.bid, run.started) != before:
                allowed = run.strategy.policy.tolerance * run.job.deadline_hours / 24.0
                run.origin = (origins.last[0], allowed - run.result.interruptions)
                if run.origin[1] < 1.0 - 1e-9:
                    run.late = [origins.last[0], run.origin[1], origins.last[1], False]
                    origins.late.append(run.late)

        def end_run_(run: Any, t: float, forced: bool) -> None:
            if forced and run.kind == "spot":
                origins.interrupted.append(getattr(run, "origin", ("?", 0.0)))
                if getattr(run, "late", None) is not None and run.origin[1] < 1.0 - 1e-9:
                    run.late[3] = True
            end_run(run, t, forced)

        engine._Run.act = act_  # type: ignore[method-assign]
        engine._Run.end_run = end_run_  # type: ignore[method-assign]

    def summary(self) -> str:
        by = Counter(o for o, _ in self.interrupted)
        small = Counter(o for o, left in self.interrupted if left < 1.0 - 1e-9)
        late = (f"; {len(self.late)} starts with <1 left: forecast now {sum(x[2] for x in self.late):.2f}, "
                f"interrupted {sum(x[3] for x in self.late)}" if self.late else "")
        return ", ".join(f"{o} {n} ({small[o]} with <1 left)" for o, n in sorted(by.items())) + late


def job_of(gpus: str) -> BacktestJob:
    return BacktestJob(gpu_types=tuple(gpus.split("|")), work_hours=100.0, deadline_hours=168.0,
                       restart_overhead_hours=0.25)


def baselines(trace: str, gpus: str, tolerance: str, cache: Path | None) -> dict[str, Any]:
    """The optimum's lower bound per window and each baseline's cost per window (None: a deadline missed)."""
    key = f"{Path(trace).name}|{gpus}|{tolerance}"
    stored = json.loads(cache.read_text()) if cache and cache.exists() else {}
    if key in stored:
        return stored[key]
    report = run_backtest(load_trace(trace), job_of(gpus), Policy(tolerance=parse_tolerance(tolerance)),
                          [*BASELINES, "optimum"], every_hours=84, record_window=None)
    out: dict[str, Any] = {"lower": [float(w.results["optimum"].lower_bound or np.nan) for w in report.windows]}
    for name in BASELINES:
        runs = [w.results[name] for w in report.windows]
        out[name] = {"cost": [r.cost for r in runs], "met": all(r.deadline_met for r in runs),
                     "interruptions": float(np.mean([r.interruptions for r in runs]))}
    if cache:
        stored = json.loads(cache.read_text()) if cache.exists() else {}
        stored[key] = out
        cache.write_text(json.dumps(stored, indent=1))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trace")
    parser.add_argument("gpus", help="GPU types, |-separated")
    parser.add_argument("--tolerance", default="low", type=tolerance_arg)
    parser.add_argument("--variant", nargs="+", default=["shipped"], choices=VARIANTS)
    parser.add_argument("--baselines", type=Path, help="JSON file the baselines are kept in between runs")
    args = parser.parse_args()
    base = baselines(args.trace, args.gpus, args.tolerance, args.baselines)
    lower = np.array(base["lower"])
    allowed = parse_tolerance(args.tolerance) * 7.0
    met = [f"{n} {np.mean(np.array(base[n]['cost']) / lower):.3f}" for n in BASELINES if base[n]["met"]]
    print(f"{Path(args.trace).name} {args.gpus[:40]} {args.tolerance}: baselines meeting every deadline: "
          f"{', '.join(met) or 'none'}", flush=True)
    origins = Origins()
    for variant in args.variant:
        planner._plans.clear()
        optimizer._interruption_budget = budget_rule(variant)  # type: ignore[assignment]
        origins.interrupted.clear()
        origins.late.clear()
        t = time.perf_counter()
        report = run_backtest(load_trace(args.trace), job_of(args.gpus),
                              Policy(tolerance=parse_tolerance(args.tolerance)), ["bidder"], every_hours=84,
                              record_window=None)
        runs = [w.results["bidder"] for w in report.windows]
        x = np.array([r.cost for r in runs]) / lower
        intr = np.array([r.interruptions for r in runs], dtype=float)
        print(f"  {variant:10s} mean {x.mean():.3f} worst {x.max():.3f} interruptions {intr.mean():.2f} of "
              f"{allowed:g} ({' '.join(f'{n:.0f}' for n in intr)}), deadlines "
              f"{'all met' if all(r.deadline_met for r in runs) else 'MISSED'}, {time.perf_counter() - t:.0f} s; "
              f"interrupted pods from: {origins.summary()}", flush=True)
    optimizer._interruption_budget = SHIPPED_BUDGET  # type: ignore[assignment]


if __name__ == "__main__":
    run_main(main)
