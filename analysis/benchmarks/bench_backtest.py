"""How fast is the backtest replay? Each strategy over a span of 5-minute samples, one market and four.

    python3 analysis/benchmarks/bench_backtest.py               # 240 days = 69,120 steps: 1 market, then 4
    python3 analysis/benchmarks/bench_backtest.py --days 365    # the service figure over a year (as before)
    python3 analysis/benchmarks/bench_backtest.py --days 30     # a quick run
    python3 analysis/benchmarks/bench_backtest.py --markets 1   # one market only (RTX 4090 COMMUNITY)
    python3 analysis/benchmarks/bench_backtest.py --gpu "NVIDIA RTX A6000" --clouds SECURE   # your own choice
    python3 analysis/benchmarks/bench_backtest.py --days 0 --planned-days 60   # the planned path only
    python3 analysis/benchmarks/bench_backtest.py --days 0 --reference-solver   # planned path, solve_plan as it was

The one-market run is the RTX 4090 in COMMUNITY; the four-market run the RTX 4090 and the RTX A6000
in SECURE and COMMUNITY (the issue-11 targets: 20,000 and 5,000 bidder decisions per second).
The history is the emulator's market model (`bidder.sim.generate_quotes`, seed 1). Each strategy
runs once as a service kept running over the whole span (so every step is replayed, and decided:
the decision interval is every sample, so steps/s is decisions/s). Prints, per strategy, wall time, steps replayed, steps per
second, and the time per step relative to the engine alone (a strategy that never runs a pod,
measured in the same run). If the optimizer crashes on the service job, the crash is printed and
`bidder` is measured on a batch job over the same span (40% of it as work, deadline at the end).
For `bidder`, also where its time goes: FloorTracker.update per sample, FloorTracker.stats and
bidder.optimizer.decide per call (measured on the same history, outside the replay).

Last, the `optimum` (`bidder.backtest.optimum`): seconds per window for the issue's job (100 GPU-hours,
7-day deadline, 15-minute restart overhead) on the first `--optimum-windows` weekly windows of the
same history (solve = the DP and its backtrack; replay = running the plan through the engine).

The service job above never reaches the planner (a kept-running job is decided by the rates). The
path users get for a batch job is the plan (`bidder.planner`): the last section times the `bidder`
strategy on the issue's batch job (100 GPU-hours, 7-day deadline, 15-minute restart overhead), in
windows every 3.5 days across `--planned-days` of the same market model (after the engine's 48-hour
warm-up), by repeated `replay` as `run_backtest` does (one `BidderFactory`, so the windows share the
daily model fits and the plan cache), for 1 market and 4. It prints decisions per second (the runs'
`decisions` summed over the wall time of the replays) and the share of that time spent in
`bidder.planner.solve_plan` (timed by wrapping the module's function from here: `plan_for` calls
it on every cache miss; nothing else changes). The defaults, 240 days for the service section (it
was 365, 3m12s alone) and 20 days (4 windows, about 35 s) for the planned one, keep the whole
default run near 3 minutes on a 2-core machine; `--reference-solver` swaps in the pre-
optimisation `solve_plan` kept in bench_planner.py, for a before/after in the same code.
With `--workers N` (default 2; 1 skips it) the planned section's windows also go through
`run_backtest` in one process and in N (`workers=N`: each process replays a run of consecutive
windows), timed in the same run, with a check that both give the same report.
The summary's last lines give both paths, the service (rates) and the planned, against the targets.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bidder.backtest.engine import (
    BacktestJob,
    HistoryView,
    hindsight,
    history_from_quotes,
    replay,
    run_backtest,
    strategy_factory,
    window_starts,
)
from bidder.backtest.strategies import KEEP, Action, RunState
from bidder.market import FloorTracker
from bidder.models import JobProgress, Policy, PriceQuote
from bidder.optimizer import decide
from bidder.sim import generate_quotes


class Idle:
    """Never runs a pod: what the engine costs by itself."""

    name = "engine alone"

    def decide(self, view: HistoryView, state: RunState) -> Action:
        return KEEP


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=float, default=240.0,
                        help="days of history for the service section (0: skip)")
    parser.add_argument("--markets", default="1,4",
                        help="comma-separated: 1 (RTX 4090 COMMUNITY), 4 (RTX 4090 + RTX A6000, both clouds)")
    parser.add_argument("--gpu", help="comma-separated GPU types (instead of --markets)")
    parser.add_argument("--clouds", default="COMMUNITY", help="with --gpu; comma-separated: SECURE, COMMUNITY")
    parser.add_argument("--tolerance", type=float, default=2.0)
    parser.add_argument("--optimum-windows", type=int, default=3, help="windows the optimum is timed on (0: skip)")
    parser.add_argument("--planned-days", type=float, default=20.0,
                        help="days of history for the planned (batch job) section (0: skip)")
    parser.add_argument("--reference-solver", action="store_true",
                        help="the planned section with solve_plan as it was before it was optimised")
    parser.add_argument("--workers", type=int, default=2,
                        help="the planned section also through run_backtest in this many processes (1: skip)")
    args = parser.parse_args()
    if args.gpu:
        runs = [(args.gpu, args.clouds)]
    else:
        presets = {"1": ("NVIDIA GeForce RTX 4090", "COMMUNITY"),
                   "4": ("NVIDIA GeForce RTX 4090,NVIDIA RTX A6000", "SECURE,COMMUNITY")}
        runs = [presets[k] for k in args.markets.split(",")]
    speeds: list[tuple[int, float, float]] = []
    if args.days > 0:
        for i, (gpu, clouds) in enumerate(runs):
            speeds.append(_bench(args, gpu, clouds, optimum=i == 0))
            print()
    planned: list[tuple[int, float, float]] = []
    parallel: list[tuple[int, float, float]] = []
    if args.planned_days > 0:
        print(f"planned path: bidder on the batch job (100 GPU-h, 7-day deadline, 15-min restart), windows every "
              f"3.5 days over {args.planned_days:g} days" + (" -- REFERENCE solve_plan" if args.reference_solver else ""))
        for gpu, clouds in runs:
            planned.append(_bench_planned(args, gpu, clouds))
            if args.workers > 1 and not args.reference_solver:
                parallel.append(_bench_workers(args, gpu, clouds))
        print()
    targets = {1: " (target 20,000)", 4: " (target 5,000)"}
    for markets, bidder_rate, baseline_rate in speeds:
        print(f"bidder, service job (rates): {bidder_rate:,.0f} decisions/s with {markets} market(s)"
              f"{targets.get(markets, '')}; the baselines {baseline_rate:,.0f}/s (slowest) in the same run, "
              f"{baseline_rate / bidder_rate:.0f}x faster")
    for markets, rate, share in planned:
        print(f"bidder, batch job (planned): {rate:,.0f} decisions/s with {markets} market(s)"
              f"{targets.get(markets, '')}; {100 * share:.0f}% of the time in solve_plan")
    for markets, rate, serial in parallel:
        print(f"bidder, batch job (planned), windows in {args.workers} processes: {rate:,.0f} decisions/s with "
              f"{markets} market(s){targets.get(markets, '')}; {rate / serial:.1f}x one process in the same run")


def _bench(args: argparse.Namespace, gpu: str, clouds: str, optimum: bool) -> tuple[int, float, float]:
    """One history: every strategy timed. Returns (markets, bidder decisions/s, slowest baseline's)."""
    t = time.perf_counter()
    quotes = generate_quotes(seed=1, days=args.days, step_s=300, gpu_types=gpu.split(","),
                             clouds=tuple(clouds.split(",")))
    history = history_from_quotes(quotes)
    steps = len(history)
    print(f"history: {steps:,} steps x {len(history.markets)} market(s) ({gpu}, {clouds}), "
          f"built in {time.perf_counter() - t:.2f} s")
    span_h = (history.end - history.ts[0]) / 3600
    job = BacktestJob(work_hours=None, keep_running_hours=span_h, restart_overhead_hours=0.25)
    policy = Policy(tolerance=args.tolerance)
    spec = job.spec(datetime.fromtimestamp(float(history.ts[0]), UTC))

    def timed(strategy: object, run_job: BacktestJob = job) -> tuple[float, int, int]:
        t0 = time.perf_counter()
        result = replay(history, run_job, policy, strategy, 0)  # type: ignore[arg-type]
        return time.perf_counter() - t0, result.steps, result.decisions

    rates: dict[str, float] = {}

    def row(name: str, seconds: float, replayed: int, decisions: int) -> None:
        rates[name] = decisions / seconds
        print(f"{name:<14} {seconds:8.2f} {replayed:10,} {replayed / seconds:10,.0f} {decisions:10,} "
              f"{seconds / replayed / (base_s / steps):15.1f}")

    timed(Idle())  # warm-up: first-call costs (imports, caches) stay out of the figures
    base_s, _, _ = timed(Idle())
    print(f"\n{'strategy':<14} {'seconds':>8} {'steps':>10} {'steps/s':>10} {'decisions':>10} {'x engine alone':>15}")
    print(f"{'engine alone':<14} {base_s:8.2f} {steps:10,} {steps / base_s:10,.0f} {'':>10} {1.0:15.1f}")
    for name in ("on-demand", "floor", "floor+0.10", "bid-on-demand", "bidder"):
        try:
            row(name, *timed(strategy_factory(name)(history.markets, spec, policy)))
        except AssertionError as exc:  # the optimizer's own assert: say where, then measure a batch job
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            print(f"{name:<14} crashed in the service job: AssertionError at {Path(frame.filename).name}:"
                  f"{frame.lineno} ({frame.line})")
            batch = BacktestJob(work_hours=0.4 * span_h, deadline_hours=span_h, restart_overhead_hours=0.25)
            batch_spec = batch.spec(datetime.fromtimestamp(float(history.ts[0]), UTC))
            row(f"{name} (batch)", *timed(strategy_factory(name)(history.markets, batch_spec, policy), batch))
    t0 = time.perf_counter()
    hindsight(history, job, 0)
    seconds = time.perf_counter() - t0
    print(f"{'hindsight':<14} {seconds:8.3f} {steps:10,} {steps / seconds:10,.0f} {'(vectorised)':>10}")

    # Where the bidder's time goes, per call, on the same history.
    trackers = [FloorTracker(m.gpu_type_id, m.cloud, m.gpu_count) for m in history.markets]
    t0 = time.perf_counter()
    for m, tracker in enumerate(trackers):
        for ts, floor, od in zip(history.ts.tolist(), history.floor[m].tolist(), history.on_demand[m].tolist(),
                                 strict=True):
            tracker.update(ts, floor, od)
    update_us = (time.perf_counter() - t0) / (steps * len(trackers)) * 1e6
    now = float(history.ts[-1])
    calls = 2000
    t0 = time.perf_counter()
    for _ in range(calls):
        stats = {(m.gpu_type_id, m.cloud, m.gpu_count): tr.stats(now) for m, tr in zip(history.markets, trackers,
                                                                                     strict=True)}
    stats_ms = (time.perf_counter() - t0) / calls * 1e3
    at = datetime.fromtimestamp(now, UTC)
    quotes_now = [PriceQuote(ts=at, gpu_type_id=m.gpu_type_id, cloud=m.cloud, gpu_count=1,
                             minimum_bid_price=None if np.isnan(history.floor[i, -1]) else float(history.floor[i, -1]),
                             uninterruptable_price=float(history.on_demand[i, -1]))
                  for i, m in enumerate(history.markets)]
    service = spec
    # decide with no pod, then with the pod it chooses running (the replay's usual case: more work)
    first = decide(service, policy, quotes_now, stats, at, JobProgress(), alternatives=False)
    running = JobProgress(current_gpu_type_id=first.gpu_type_id, current_cloud=first.cloud,
                          current_action=first.action if first.action != "wait" else None,
                          current_bid_per_gpu=first.bid_per_gpu, current_market=first.market,
                          started=datetime.fromtimestamp(float(history.ts[0]), UTC))
    per_call = []
    for progress in (JobProgress(), running):
        t0 = time.perf_counter()
        for _ in range(calls):
            decide(service, policy, quotes_now, stats, at, progress, alternatives=False)
        per_call.append((time.perf_counter() - t0) / calls * 1e3)
    print(f"\nbidder per step: FloorTracker.update {update_us:.1f} us per market-sample; "
          f"stats of {len(trackers)} market(s) {stats_ms:.3f} ms; decide {per_call[0]:.3f} ms per call without a "
          f"pod" + (f", {per_call[1]:.3f} ms with its {first.action} pod running" if first.action != "wait"
                   else " (it waits: no pod to run)"))
    if optimum and args.optimum_windows > 0:
        _time_optimum(history, args.optimum_windows)
    bidder_rate = rates.get("bidder", rates.get("bidder (batch)", math.nan))
    return len(history.markets), bidder_rate, min(v for k, v in rates.items() if not k.startswith("bidder"))


def _planned_setup(args: argparse.Namespace, gpu: str, clouds: str) -> tuple[object, BacktestJob, Policy]:
    """The planned sections' history (`--planned-days` of the market model), the issue's batch job and
    the policy."""
    quotes = generate_quotes(seed=1, days=args.planned_days, step_s=300, gpu_types=gpu.split(","),
                             clouds=tuple(clouds.split(",")))
    job = BacktestJob(work_hours=100, deadline_hours=168, restart_overhead_hours=0.25)
    return history_from_quotes(quotes), job, Policy(tolerance=args.tolerance)


def _bench_planned(args: argparse.Namespace, gpu: str, clouds: str) -> tuple[int, float, float]:
    """The bidder strategy on the issue's batch job, windows every 3.5 days. Returns (markets,
    decisions/s, share of the time in solve_plan)."""
    import bidder.planner as planner

    history, job, policy = _planned_setup(args, gpu, clouds)
    history = history.select(job)
    starts = window_starts(history, job, every_hours=84)
    solver = planner.solve_plan
    if args.reference_solver:
        sys.path.insert(0, str(Path(__file__).parent))
        from bench_planner import reference_solve_plan
        solver = reference_solve_plan
    solves: list[float] = []

    def timed_solve(*a: object, **kw: object) -> object:
        t0 = time.perf_counter()
        try:
            return solver(*a, **kw)  # type: ignore[arg-type]
        finally:
            solves.append(time.perf_counter() - t0)

    original = planner.solve_plan
    planner.solve_plan = timed_solve  # type: ignore[assignment]
    planner._plans.clear()  # every run solves its own plans
    try:
        factory = strategy_factory("bidder")
        decisions, wall, costs = 0, 0.0, []
        for index in starts:
            spec = job.spec(datetime.fromtimestamp(float(history.ts[index]), UTC))
            t0 = time.perf_counter()
            result = replay(history, job, policy, factory(history.markets, spec, policy), index)
            wall += time.perf_counter() - t0
            decisions += result.decisions
            costs.append((result.cost, result.interruptions))
    finally:
        planner.solve_plan = original
    rate, share = decisions / wall, sum(solves) / wall
    print(f"  {len(history.markets)} market(s) ({gpu}, {clouds}): {len(starts)} windows, {decisions:,} decisions in "
          f"{wall:.1f} s = {rate:,.0f} decisions/s; {len(solves)} solves, {sum(solves):.1f} s "
          f"({1e3 * sum(solves) / max(len(solves), 1):.0f} ms each) = {100 * share:.0f}% of the time; "
          f"{1e6 * (wall - sum(solves)) / decisions:.0f} us per decision besides; cost per window "
          f"{', '.join(f'${c:.2f}/{n}i' for c, n in costs)}")
    return len(history.markets), rate, share


def _bench_workers(args: argparse.Namespace, gpu: str, clouds: str) -> tuple[int, float, float]:
    """The planned section's windows through `run_backtest` (bidder and the on-demand reference it
    always runs), in one process and in `--workers` (same reports, checked). Returns (markets,
    decisions/s with the workers, decisions/s in one process)."""
    import bidder.planner as planner

    history, job, policy = _planned_setup(args, gpu, clouds)
    rates, summaries = {}, {}
    for workers in (1, args.workers):
        planner._plans.clear()  # no plan solved before (a forked worker would inherit it)
        planner._pools.clear()
        t0 = time.perf_counter()
        report = run_backtest(history, job, policy, ["bidder"], every_hours=84, record_window=None, workers=workers)
        wall = time.perf_counter() - t0
        rates[workers] = sum(w.results["bidder"].decisions for w in report.windows) / wall
        summaries[workers] = report.summary()
    same = "same report" if summaries[1] == summaries[args.workers] else "DIFFERENT REPORTS"
    print(f"  through run_backtest: {rates[1]:,.0f} decisions/s in one process, {rates[args.workers]:,.0f}/s in "
          f"{args.workers} ({rates[args.workers] / rates[1]:.1f}x, {same}, {len(report.windows)} windows)")
    return len(history.markets), rates[args.workers], rates[1]


def _time_optimum(history: object, windows: int) -> None:
    """Seconds per window of the optimum (solve, then replay of its plan), the issue's batch job."""
    from bidder.backtest.optimum import PlanStrategy, solve_optimum

    job = BacktestJob(work_hours=100, deadline_hours=168, restart_overhead_hours=0.25)
    starts = window_starts(history, job, every_hours=168, warmup_hours=0)[:windows]  # type: ignore[arg-type]
    solve_s, replay_s, gaps, levels = [], [], [], []
    for index in starts:
        t0 = time.perf_counter()
        plan = solve_optimum(history, job, index)  # type: ignore[arg-type]
        solve_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        replay(history, job, Policy(), PlanStrategy(plan.segments), index)  # type: ignore[arg-type]
        replay_s.append(time.perf_counter() - t0)
        gaps.append(plan.gap)
        levels.append(plan.levels)
    markets = len(history.markets)  # type: ignore[attr-defined]
    print(f"\noptimum, 100 GPU-h job, 7-day deadline, {markets} market(s), {len(starts)} window(s): "
          f"{np.mean(solve_s):.2f} s per window to solve (max {max(solve_s):.2f}) + {np.mean(replay_s):.2f} s "
          f"to replay its plan (solve = {np.mean(solve_s) / np.mean(replay_s):.0f}x one replay of the window); "
          f"{np.mean(levels):.0f} price levels; bound gap <= {100 * max(gaps):.2f}%")


if __name__ == "__main__":
    main()
