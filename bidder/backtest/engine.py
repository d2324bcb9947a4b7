"""Backtests: replay a price history through a strategy, against baselines and a hindsight bound.

    history = load_trace("data/traces/sim-seed1-14d.csv")          # or load_store(store)
    job = BacktestJob(gpu_types=("NVIDIA RTX A6000",), work_hours=100, deadline_hours=168)
    report = run_backtest(history, job, Policy(tolerance=2.0), every_hours=84)
    report.summary()      # the `bidder backtest --format json` object

The simulated world follows RunPod's rules, as the emulator does:
- prices are a step function: each sample holds until the next one (the last one for `step_s`);
- a spot pod pays its bid per second (`bid * gpu_count` per hour), an on-demand pod the current
  on-demand price (held through gaps with no on-demand quote); nothing is paid while no pod runs;
- a spot pod is interrupted at the first sample whose floor is above its bid, or that has no spot
  capacity (NaN floor), and after an Exp(rate) running time when a reclaim rate is set (seeded);
  on a Vast market of a history that holds the collector's stored offers it is also paused by its
  machine (rented on-demand or outbid there), at the rate those offers show for its bid's premium
  over the floor: seeded events every strategy meets alike (`bidder.backtest.machines`);
  it can only start when the floor is at or under its bid; on-demand never interrupts and starts
  whenever the market quotes an on-demand price;
- when a run ends without finishing the job (interrupted, or stopped by the strategy to switch),
  the work done since the run started is lost, up to `restart_overhead_hours` (the job resumes
  from its last checkpoint and spends time restarting);
- a batch job runs until its work is done (past the deadline if need be: a missed deadline is
  reported, not rescued), or until the history ends; a keep-running job runs for its whole span.

Strategies (`bidder.backtest.strategies`) are called at each decision point (every sample by default,
or every `decide_every_s`) and right after each interruption. They see a `HistoryView` whose
buffers the engine fills sample by sample: the future is not in memory the strategy can reach.

`optimum` (`bidder.backtest.optimum`, batch jobs) is the exact offline optimum of this model: the
cheapest plan of run segments, bids and markets that finishes by the deadline, knowing the whole
window (a DP with a lower bound within 1% of the plan it replays). `cost_vs_optimum` divides by
its lower bound, so no strategy that meets its deadline is under 1.0 (the optimum's own row shows
1 + its gap).

`hindsight` is the lower bound: the job's work in the cheapest slots before the deadline, each at
min(floor, on-demand), with no interruption cost (keep-running: every slot at that price). No
strategy that finishes its work by the deadline can cost less (`tests/test_backtest_props.py`).
With different speed factors per GPU type, slots of several markets may be used at the same time
(a relaxation), so the bound stays a bound.

Neither bound foresees Vast's machine pauses (random events: the optimum's plan is replayed without
them, hindsight has no interruption cost), so both stay bounds, looser where the pauses cost.

Both bounds are taken under the backtest's policy, as the strategies are: no spot slot whose floor
is over `max_price`, no on-demand slot whose price is (and neither kind when `allow_spot` /
`allow_on_demand` is off), so no peak rate over the cap. They bound the plans that never pay above
the cap (a baseline that starts on-demand under it and keeps the pod as the price rises above it
is not one). When no such plan can do the work by the deadline, the optimum is infeasible (an
empty run, deadline_met False) and hindsight reports the work it could do, deadline_met False.

Metrics per run: cost (USD), work hours done, deadline met, interruptions, hours of work lost to
restarts, completion time (hours from the job's start), peak hourly rate (USD per pod-hour).
`run_backtest` adds cost / hindsight, cost / optimum and cost / on-demand per window (the first two
None for a batch run that did not do its work by the deadline: less work, or late work, is not a
saving), and `summary()` gives the mean and the worst of each over the rolling windows.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from bidder.backtest.hindsight import RunResult, hindsight
from bidder.backtest.history import PriceHistory, history_from_quotes, load_store, load_trace
from bidder.backtest.optimum import DEFAULT_GRID_RATIO, OptimumPlan, PlanStrategy, solve_optimum
from bidder.backtest.strategies import (
    STRATEGY_NAMES,
    BidderFactory,
    PodInfo,
    RunState,
    Strategy,
    StrategyFactory,
    baseline_factory,
)
from bidder.backtest.types import BacktestJob, HistoryView, Market
from bidder.errors import ConfigError
from bidder.models import SILENCE_MIN_HOURS, Policy

__all__ = [
    "DEFAULT_WARMUP_HOURS",
    "METRIC_KEYS",
    "BacktestJob",
    "BacktestReport",
    "HistoryView",
    "Market",
    "PriceHistory",
    "RunResult",
    "Window",
    "hindsight",
    "history_from_quotes",
    "load_store",
    "load_trace",
    "optimum",
    "replay",
    "run_backtest",
    "strategy_factory",
    "window_starts",
]

#: History a strategy gets before the first window starts, unless a start is given.
DEFAULT_WARMUP_HOURS = 48.0

#: The per-strategy metrics of the summary, in report order.
METRIC_KEYS: tuple[str, ...] = ("cost", "cost_vs_hindsight", "cost_vs_optimum", "cost_vs_on_demand", "work_hours",
                                "deadline_met_share", "interruptions", "restart_hours_lost",
                                "completion_hours", "peak_rate")
# Which way is worse, for the "worst window" of each metric.
_WORST_IS_LOW = {"work_hours", "deadline_met_share"}


class _Feeder:
    """The engine's side of a HistoryView: the only code that holds the full history."""

    def __init__(self, history: PriceHistory) -> None:
        self.history = history
        self.view = HistoryView(history.markets, len(history), machines=history.machines)

    def fill_to(self, n: int) -> None:
        """Reveal samples up to index n - 1 (never moves backwards)."""
        view, h = self.view, self.history
        lo = view._n
        if n <= lo:
            return
        for array, source in ((view._ts, h.ts), (view._floor, h.floor), (view._on_demand, h.on_demand)):
            array.flags.writeable = True
            array[..., lo:n] = source[..., lo:n]
            array.flags.writeable = False
        view._n = n


# -- one run ---------------------------------------------------------------------------------------------
def strategy_factory(name: str) -> StrategyFactory:
    """The factory of a replayed strategy by its report name ("bidder" or a baseline)."""
    if name == "bidder":
        return BidderFactory()  # one pool of warmed trackers per backtest
    return baseline_factory(name)


def replay(history: PriceHistory, job: BacktestJob, policy: Policy, strategy: Strategy, start_index: int = 0,
           *, seed: int = 0, reclaim_rate_per_hour: float = 0.0, decide_every_s: float | None = None,
           record: bool = False, progress: Callable[[int], None] | None = None,
           machine_pauses: bool = True) -> RunResult:
    """Run `strategy` on `job` from sample `start_index` (see the module docstring for the rules).

    `policy` is the strategy's business (its factory got it); the engine only enforces the market.
    `machine_pauses`: pause Vast spot runs by their machines where `history.machines` holds offers.
    """
    return _Run(history, job, strategy, start_index, seed, reclaim_rate_per_hour, decide_every_s, record,
                progress, machine_pauses).run()


class _Run:
    """The state of one replay. Times are seconds from the window start (small, exact numbers)."""

    def __init__(self, history: PriceHistory, job: BacktestJob, strategy: Strategy, start_index: int, seed: int,
                 reclaim_rate: float, decide_every_s: float | None, record: bool,
                 progress: Callable[[int], None] | None, machine_pauses: bool = True) -> None:
        self.history, self.job, self.strategy = history, job, strategy
        self.floor, self.od_raw, self.od_held = history.floor, history.on_demand, history.on_demand_held()
        self.start_index = start_index
        self.t0 = float(history.ts[start_index])
        self.rel = history.ts - self.t0
        self.data_end = history.end - self.t0
        span = job.keep_running_hours
        self.stop = self.data_end if span is None else min(self.data_end, span * 3600)
        self.needed = None if job.keep_running else float(job.work_hours)  # type: ignore[arg-type]
        self.deadline = None if job.keep_running or job.deadline_hours is None else job.deadline_hours * 3600
        self.speeds = [1.0 if job.keep_running else job.speed_of(m.gpu_type_id) for m in history.markets]
        self.reclaim_rate = reclaim_rate
        self.rng = random.Random(f"{seed}|{start_index}")
        self.seed = seed
        # Vast markets whose machines pause a spot run (stored offers; see bidder.backtest.machines).
        self.machines = history.machines if machine_pauses else None
        self.paused_by_machine = [self.machines is not None and m.market == "vast" for m in history.markets]
        self.keys = [m.key for m in history.markets]
        self.last_pause = -math.inf  # the last machine pause met (epoch s): never met twice
        self.decide_every_s, self.record, self.progress = decide_every_s, record, progress
        self.feeder = _Feeder(history)
        self.result = RunResult(name=getattr(strategy, "name", type(strategy).__name__), start=self.t0)
        self.work = 0.0
        self.i = start_index
        # The pod, if any: kind "spot" | "on_demand" | "" (none), market, bid, run start, work this run.
        self.kind, self.market, self.bid, self.started, self.run_work = "", -1, math.nan, 0.0, 0.0
        self.reclaim_at = math.inf

    def segment(self, i: int) -> tuple[float, float]:
        """Sample i's span in epoch seconds, as the history has it (the same in every window)."""
        ts = self.history.ts
        return float(ts[i]), float(ts[i + 1]) if i + 1 < len(ts) else self.history.end

    def pod_info(self) -> PodInfo | None:
        if not self.kind:
            return None
        return PodInfo(self.kind, self.market, None if self.kind == "on_demand" else self.bid,
                       self.t0 + self.started, self.run_work)

    def end_run(self, t: float, forced: bool) -> None:
        lost = min(self.job.restart_overhead_hours * self.speeds[self.market], self.run_work)
        self.work -= lost
        self.result.restart_hours_lost += lost
        if forced:
            self.result.interruptions += 1
            if self.record:
                self.result.interruption_hours.append(t / 3600)
        else:
            self.result.switches += 1
        self.kind, self.market, self.bid, self.run_work, self.reclaim_at = "", -1, math.nan, 0.0, math.inf

    def act(self, t: float, interrupted: bool) -> None:
        result, view = self.result, self.feeder.view
        now = self.t0 + t
        view._now = now
        state = RunState(now=now, start=self.t0,
                         deadline=None if self.deadline is None else self.t0 + self.deadline,
                         end=None if self.job.keep_running_hours is None else self.t0 + self.stop,
                         work_done_hours=self.work,
                         work_left_hours=None if self.needed is None else self.needed - self.work,
                         spent=result.cost, interruptions=result.interruptions, pod=self.pod_info(),
                         just_interrupted=interrupted)
        action = self.strategy.decide(view, state)
        result.decisions += 1
        if self.record:
            result.log.append((now, action))
        kind = action.kind
        if kind == "keep":
            return
        if self.kind:
            if kind == self.kind and action.market == self.market and (kind == "on_demand" or action.bid == self.bid):
                return
            self.end_run(t, forced=False)
        if kind == "wait":
            return
        m = action.market
        if m is None or not 0 <= m < len(self.history.markets):
            raise ValueError(f"strategy {result.name} chose market {m!r}; "
                             f"markets are 0..{len(self.history.markets) - 1}")
        if kind == "spot":
            if action.bid is None or not self.floor[m, self.i] <= action.bid:  # NaN floor: no spot capacity
                result.failed_starts += 1
                return
            self.bid = float(action.bid)
            if self.reclaim_rate > 0:
                self.reclaim_at = t + self.rng.expovariate(self.reclaim_rate) * 3600
        elif kind == "on_demand":
            if math.isnan(self.od_raw[m, self.i]):
                result.failed_starts += 1
                return
        else:
            raise ValueError(f"strategy {result.name} returned an unknown action {kind!r}")
        self.kind, self.market, self.started, self.run_work = kind, m, t, 0.0

    def run(self) -> RunResult:
        result, rel, n_samples = self.result, self.rel, len(self.history)
        count, needed, stop = self.job.gpu_count, self.needed, self.stop
        next_decision, done = 0.0, False
        while self.i < n_samples and not done:
            i = self.i
            t = float(rel[i])
            if t >= stop:
                break
            self.feeder.fill_to(i + 1)
            seg_end = min(float(rel[i + 1]) if i + 1 < n_samples else self.data_end, stop)
            interrupted = False
            if self.kind == "spot" and not self.floor[self.market, i] <= self.bid:
                self.end_run(t, forced=True)
                interrupted = True
            if interrupted or t >= next_decision:
                self.act(t, interrupted)
                if t >= next_decision:
                    next_decision = t + self.decide_every_s if self.decide_every_s else t
            while self.kind and t < seg_end:
                m = self.market
                rate = (self.bid if self.kind == "spot" else float(self.od_held[m, i])) * count
                speed = self.speeds[m]
                t_next, event = seg_end, ""
                if needed is not None:
                    t_done = t + (needed - self.work) / speed * 3600
                    if t_done <= t_next + 1e-6:  # a microsecond of rounding must not cost a sample
                        t_next, event = t_done, "done"
                if self.reclaim_at < t_next:
                    t_next, event = self.reclaim_at, "reclaimed"
                if self.kind == "spot" and self.paused_by_machine[m]:
                    at = self.machines.pause_after(  # type: ignore[union-attr]
                        self.keys[m], max(self.t0 + t, self.last_pause), self.t0 + t_next,
                        self.segment(i), self.bid, float(self.floor[m, i]), self.seed)
                    if at - self.t0 < t_next:
                        t_next, event, self.last_pause = at - self.t0, "paused", at
                hours = (t_next - t) / 3600
                if hours > 0:
                    result.cost += rate * hours
                    self.work += speed * hours
                    self.run_work += speed * hours
                    if rate > result.peak_rate:
                        result.peak_rate = rate
                t = t_next
                if event == "done":
                    self.work = needed  # type: ignore[assignment]
                    result.completion_hours = t / 3600
                    self.kind, done = "", True
                elif event in ("reclaimed", "paused"):
                    result.machine_pauses += event == "paused"
                    self.end_run(t, forced=True)
                    self.act(t, True)
            if self.record:
                # A chart joins the points with straight lines: one where this segment's spending ended,
                # and one at its end when the pod stood idle from there (a line drawn from an idle
                # segment's start to the next paid point read as spending across it).
                if t > float(rel[i]):
                    result.curve.append((t / 3600, result.cost))
                if not self.kind and not done and t < seg_end:
                    result.curve.append((seg_end / 3600, result.cost))
            self.i += 1
            if self.progress is not None and (self.i - self.start_index) % 4096 == 0:
                self.progress(4096)
        if self.progress is not None:
            self.progress((self.i - self.start_index) % 4096)
        result.work_hours = self.work
        result.steps = self.i - self.start_index
        if needed is not None:
            result.deadline_met = result.completion_hours is not None and (
                self.deadline is None or result.completion_hours * 3600 <= self.deadline + 1e-6)
        return result


# -- rolling windows and the report ----------------------------------------------------------------------
#: A cost (USD) below which a bound is no scale to divide by: a billionth of a dollar.
_NO_COST = 1e-9


@dataclass
class Window:
    """Every strategy's run from one start time (`results` includes "hindsight")."""

    start: float
    results: dict[str, RunResult]
    on_demand_cost: float | None

    def metrics(self, name: str) -> dict[str, float | None]:
        """The METRIC_KEYS of one strategy in this window (None = not applicable)."""
        r, bound = self.results[name], self.results.get("hindsight")
        # A bound of (next to) nothing is no scale: a price of 1e-320 made every ratio inf ("Infinity",
        # which is not JSON).
        feasible = bound is not None and bound.cost > _NO_COST and bound.deadline_met is not False
        best = self.results.get("optimum")
        lower = None if best is None or not best.deadline_met or (best.lower_bound or 0) <= _NO_COST else best.lower_bound
        if r.deadline_met is False:
            # A batch run that did not do its work by the deadline is not cheaper than a bound that did:
            # less work, or the work late (a run 20 h late showed 0.06x the optimum), is no saving.
            feasible, lower = False, None
        return {
            "cost": r.cost,
            "cost_vs_hindsight": r.cost / bound.cost if feasible else None,  # type: ignore[union-attr]
            "cost_vs_optimum": r.cost / lower if lower else None,
            "cost_vs_on_demand": r.cost / self.on_demand_cost if (self.on_demand_cost or 0) > _NO_COST
            and r.deadline_met is not False else None,
            "work_hours": r.work_hours,
            "deadline_met_share": None if r.deadline_met is None else float(r.deadline_met),
            "interruptions": float(r.interruptions),
            "restart_hours_lost": r.restart_hours_lost,
            "completion_hours": r.completion_hours,
            "peak_rate": r.peak_rate,
        }


@dataclass
class BacktestReport:
    """The windows of a backtest and what they were run with; `summary()` is the JSON object."""

    job: BacktestJob
    policy: Policy
    history: PriceHistory
    strategies: tuple[str, ...]
    windows: list[Window]
    params: dict[str, Any]

    def aggregate(self, name: str) -> dict[str, Any]:
        """Mean and worst of each metric over the windows. A metric that does not apply (None) is
        left out of the mean; the worst completion time is None when some window never finished."""
        per_window = [w.metrics(name) for w in self.windows]
        out: dict[str, Any] = {"name": name}
        worst: dict[str, float | None] = {}
        for key in METRIC_KEYS:
            values = [m[key] for m in per_window]
            present = [v for v in values if v is not None]
            out[key] = _round(float(np.mean(present))) if present else None
            if not present or (key == "completion_hours" and not self.job.keep_running and len(present) < len(values)):
                worst[key] = None
            else:
                worst[key] = _round(float(min(present) if key in _WORST_IS_LOW else max(present)))
        out["worst"] = worst
        return out

    def summary(self) -> dict[str, Any]:
        """`{"job": {...}, "windows": N, "strategies": [{"name", <metric means>, "worst": {...}}, ...]}`
        plus "policy" and "history" (what the numbers were computed on)."""
        h = self.history
        bounds = [w.results["optimum"] for w in self.windows if "optimum" in w.results]
        bounds = [r for r in bounds if r.deadline_met and r.lower_bound is not None]
        extra: dict[str, Any] = {}
        if bounds:
            # The optimum's bounds: `lower` <= the true optimum <= `upper` (its replayed plan).
            extra["optimum_bounds"] = {
                "lower": _round(float(np.mean([r.lower_bound for r in bounds]))),
                "upper": _round(float(np.mean([r.cost for r in bounds]))),
                "worst_gap": _round(max(max(0.0, (r.cost - r.lower_bound) / r.cost) if r.cost else 0.0
                                        for r in bounds)),
                "infeasible_windows": sum(1 for w in self.windows if "optimum" in w.results
                                          and not w.results["optimum"].deadline_met)}
        return {
            "job": {**self.job.as_dict(), **self.params},
            "policy": {"max_price": self.policy.max_price, "budget": self.policy.budget,
                       "tolerance": self.policy.tolerance, "min_savings": self.policy.min_savings},
            "history": {"from": _iso(float(h.ts[0])), "to": _iso(h.end), "samples": len(h),
                        "markets": [m.label for m in h.markets]},
            "windows": len(self.windows),
            "strategies": [self.aggregate(name) for name in self.strategies],
            **extra,
        }


def _round(value: float) -> float:
    """Six decimals: a micro-dollar, a few milliseconds; hides float noise such as 100.00000000000131."""
    return round(value, 6)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def window_starts(history: PriceHistory, job: BacktestJob, *, start: float | None = None,
                  every_hours: float | None = None, warmup_hours: float = DEFAULT_WARMUP_HOURS) -> list[int]:
    """Sample indices where windows start: from `start` (default: after `warmup_hours` of history; a
    `start` before the history, from its first sample), then every `every_hours`, as long as the job's
    span (deadline or service span) fits the history. A time between samples starts at the next one
    (`start_times` gives the times asked for)."""
    times = start_times(history, job, start=start, every_hours=every_hours, warmup_hours=warmup_hours)
    last = history.end - (job.span_hours or 0.0) * 3600
    indices = sorted({int(np.searchsorted(history.ts, t, side="left")) for t in times})
    return [i for i in indices if i < len(history) and history.ts[i] <= last + 1e-6] or \
        [int(np.searchsorted(history.ts, times[0], side="left"))]


def start_times(history: PriceHistory, job: BacktestJob, *, start: float | None = None,
                every_hours: float | None = None, warmup_hours: float = DEFAULT_WARMUP_HOURS) -> list[float]:
    """The window start times asked for (epoch seconds), before `window_starts` places them on samples."""
    # (A grid counted from a start before the history put its first window at the first sample and
    # the next one `every` after the old start: the two overlapped.)
    first = float(history.ts[0]) + warmup_hours * 3600 if start is None else max(start, float(history.ts[0]))
    span = (job.span_hours or 0.0) * 3600
    last = history.end - span
    have = f"the history runs {_iso(float(history.ts[0]))} to its last sample at {_iso(float(history.ts[-1]))}"
    if first > last + 1e-6:
        reason = ("after the warm-up of " + f"{warmup_hours:g} hours") if start is None else f"from {_iso(start)}"
        raise ConfigError(f"{have}: too short for a job spanning {span / 3600:g} hours {reason}; "
                          "give an earlier --start, a shorter --deadline/--days, or more history", key="start")
    if every_hours is not None and every_hours <= 0:
        raise ConfigError("--every must be a positive duration, e.g. 3.5d", key="every")
    return [first] if every_hours is None else [float(t) for t in np.arange(first, last + 1e-6, every_hours * 3600)]


def _moved_into_gaps(history: PriceHistory, times: Sequence[float], starts: Sequence[int]) -> dict[str, Any] | None:
    """Start times that fell in a gap of the history (no sample for SILENCE_MIN_HOURS or more after
    them): {"moved": how many, "of": how many asked, "windows": how many run, "most_hours": the
    longest move}; None when none did. (A window starts at a sample: in a gap, at the gap's end.)"""
    placed = np.searchsorted(history.ts, np.asarray(times), side="left")
    ok = placed < len(history)
    shift = np.full(len(times), np.inf)
    shift[ok] = history.ts[placed[ok]] - np.asarray(times)[ok]
    moved = shift[ok] >= SILENCE_MIN_HOURS * 3600
    if not moved.any():
        return None
    return {"moved": int(moved.sum()), "of": len(times), "windows": len(starts),
            "most_hours": _round(float(shift[ok][moved].max()) / 3600)}


def _windows_without_price(full: PriceHistory, chosen: PriceHistory, history: PriceHistory, job: BacktestJob,
                           starts: Sequence[int]) -> int:
    """How many windows hold no price at all for the job: no floor and no on-demand in any of its
    markets from the window's start to the end of its run (a batch job runs on past its deadline, to
    the history's end; a service for its span), where every strategy buys nothing. ConfigError when
    no window holds one (it reported $0 and no deadline met for every strategy, and exited 0).
    `full` is the whole history, `chosen` the job's markets of it, `history` those up to the end given."""
    priced = history.priced()
    seen = np.concatenate([[0], np.cumsum(priced)])
    span = job.keep_running_hours
    ends = [len(history) if span is None else int(np.searchsorted(history.ts, history.ts[i] + span * 3600, "left"))
            for i in starts]
    empty = sum(1 for i, e in zip(starts, ends, strict=True) if seen[e] == seen[i])
    if empty < len(starts):
        return empty
    labels = [m.label for m in chosen.markets]
    whose = (f"the job's market {labels[0]}" if len(labels) == 1 else
             f"the job's markets ({', '.join(labels[:4])}{' ...' if len(labels) > 4 else ''})")
    when = chosen.ts[chosen.priced()]
    if not when.size:
        others = [m.label for i, m in enumerate(full.markets)
                  if not (np.isnan(full.floor[i]) & np.isnan(full.on_demand[i])).all()]
        where = (f"the history has prices for {', '.join(others[:4])}{' ...' if len(others) > 4 else ''}: choose "
                 "among them (--gpu, --gpus, --cloud)" if others else "the history holds no price at all")
        raise ConfigError(f"no price for {whose}: every minimum_bid_price and uninterruptable_price of "
                          f"{'its' if len(labels) == 1 else 'their'} rows is empty (or 0); {where}", key="gpu")
    first, last = float(when[0]), float(when[-1])
    window = float(history.ts[starts[0]])
    if last < window:
        fix = f"give a --start at or before {_iso(last)}"
    elif first >= history.end:
        fix = f"give an --end after {_iso(first)}"
    else:  # a service's windows fall between its prices
        fix = "give another --start or --every"
    raise ConfigError(f"no window has a price for {whose}: {'its' if len(labels) == 1 else 'their'} prices run "
                      f"{_iso(first)} to {_iso(last)}, and the {len(starts)} window(s) from {_iso(window)} hold none "
                      f"(every minimum_bid_price and uninterruptable_price there is empty); {fix}", key="start")


def run_backtest(history: PriceHistory, job: BacktestJob, policy: Policy,
                 strategies: Sequence[str] = STRATEGY_NAMES, *, start: float | None = None, end: float | None = None,
                 every_hours: float | None = None, warmup_hours: float = DEFAULT_WARMUP_HOURS, seed: int = 0,
                 reclaim_rate_per_hour: float = 0.0, decide_every_s: float | None = None,
                 record_window: int | None = 0, factories: Mapping[str, StrategyFactory] | None = None,
                 progress: Callable[[int, int], None] | None = None, workers: int = 1) -> BacktestReport:
    """Run each named strategy (and the hindsight bound) over rolling windows of `history`; the
    report lists them in the order named.

    "optimum" (batch jobs; dropped for a kept-running service, and with the reason in
    `params["optimum_skipped"]` when a window is too large to solve) is solved by
    `bidder.backtest.optimum`, not replayed decision by decision. `start`/`end` are epoch seconds
    (history before `start` is the strategies' warm-up); the on-demand strategy always runs, as
    the reference of cost / on-demand. `factories` adds or overrides strategies by name.
    `record_window` (an index) keeps curves and logs for charts.
    `progress(done, total)` is called as replay steps complete.
    `workers` > 1 replays the windows in that many processes, each a run of consecutive windows (so
    they share model fits and plans as one process does); the report is the same as with one, since
    every window's replay depends only on the history (not with `factories`, which stay in-process).
    """
    unknown = [s for s in strategies if s not in STRATEGY_NAMES and s not in (factories or {})]
    if unknown:
        raise ConfigError(f"unknown strategy {unknown[0]!r}; choose from {', '.join(STRATEGY_NAMES)} or all",
                          key="strategies")
    full, chosen = history, history.select(job)
    history = chosen if end is None else chosen.between(None, end)
    starts = window_starts(history, job, start=start, every_hours=every_hours, warmup_hours=warmup_hours)
    unpriced = _windows_without_price(full, chosen, history, job, starts)
    gaps = _moved_into_gaps(history, start_times(history, job, start=start, every_hours=every_hours,
                                                 warmup_hours=warmup_hours), starts)
    if job.keep_running:  # the optimum is for a batch job (work by a deadline)
        strategies = [s for s in strategies if s != "optimum" or s in (factories or {})]
    solve = "optimum" in strategies and "optimum" not in (factories or {})
    replayed = [name for name in dict.fromkeys([*strategies, "on-demand"]) if name != "hindsight"
                and not (solve and name == "optimum")]
    span = (job.span_hours or 0.0) * 3600
    step = float(np.median(np.diff(history.ts))) if len(history) > 1 else history.step_s
    total = int(len(starts) * len(replayed) * max(1.0, span / max(step, 1.0)))
    done = 0

    def tick(steps: int) -> None:
        nonlocal done, total
        done += steps
        total = max(total, done)
        if progress is not None:
            progress(done, total)

    runs = _Runs(history, job, policy, replayed, solve, solve and len(strategies) <= 1, record_window, seed,
                 reclaim_rate_per_hour, decide_every_s)
    workers = max(1, min(workers, len(starts)))
    if workers > 1 and not factories:
        found = _replay_in_processes(runs, starts, workers, tick)
    else:
        runs.makers = {name: (factories or {}).get(name) or strategy_factory(name) for name in replayed}
        found = runs.windows(list(enumerate(starts)), tick)
    windows = [window for window, _ in found]
    skipped = next((why for _, why in found if why), "")
    if skipped:  # a window too large to solve: report the rest, and say why (alone, it raised)
        strategies = [s for s in strategies if s != "optimum"]
        for window in windows:
            window.results.pop("optimum", None)
    names = tuple(dict.fromkeys(strategies))  # the report lists them as asked (all: STRATEGY_NAMES' order)
    params = {"start": _iso(windows[0].start), "end": _iso(history.end), "every_hours": every_hours,
              "seed": seed, "reclaim_rate_per_hour": reclaim_rate_per_hour, "decide_every_s": decide_every_s}
    if skipped:
        params["optimum_skipped"] = skipped
    if any(m.market == "vast" for m in history.markets):
        first = None if history.machines is None else history.machines.first
        params["machine_pauses"] = {"simulated": first is not None, "offers_from": None if first is None else _iso(first)}
    if gaps:
        params["starts_in_gaps"] = gaps
    if unpriced:
        params["windows_without_price"] = unpriced
    return BacktestReport(job=job, policy=policy, history=history, strategies=names, windows=windows, params=params)


@dataclass
class _Runs:
    """What every window of one backtest replays (picklable, for worker processes)."""

    history: PriceHistory
    job: BacktestJob
    policy: Policy
    names: list[str]
    solve: bool
    optimum_only: bool  # a window too large to solve is then an error, raised at once
    record_window: int | None
    seed: int
    reclaim_rate_per_hour: float
    decide_every_s: float | None
    makers: dict[str, StrategyFactory] | None = None

    def windows(self, starts: Sequence[tuple[int, int]], tick: Callable[[int], None]) -> list[tuple[Window, str]]:
        """Each (window number, start index) replayed by every strategy, in order, with why the optimum
        was not solved ("" when it was, or was not asked for). The first window too large to solve
        stops the solving: the optimum is then left out of the whole report."""
        if self.makers is None:
            self.makers = {name: strategy_factory(name) for name in self.names}
        history, out, skipped = self.history, [], ""
        for w, index in starts:
            record = self.record_window is not None and w == self.record_window
            spec = self.job.spec(datetime.fromtimestamp(float(history.ts[index]), UTC))
            results: dict[str, RunResult] = {}
            for name, make in self.makers.items():
                results[name] = replay(history, self.job, self.policy, make(history.markets, spec, self.policy), index,
                                       seed=self.seed, reclaim_rate_per_hour=self.reclaim_rate_per_hour,
                                       decide_every_s=self.decide_every_s, record=record, progress=tick)
                results[name].name = name
            results["hindsight"] = hindsight(history, self.job, index, policy=self.policy, record=record)
            if self.solve and not skipped:
                try:
                    results["optimum"] = optimum(history, self.job, index, policy=self.policy, record=record)[0]
                except ConfigError as exc:
                    if self.optimum_only:
                        raise
                    skipped = exc.args[0] if exc.args else str(exc)
            on_demand = results["on-demand"]
            out.append((Window(start=float(history.ts[index]), results=results,
                               on_demand_cost=on_demand.cost if on_demand.cost > 0 else None), skipped))
        return out


#: How worker processes start (None: fork where the platform has it, as on Linux, so they share the
#: parent's history without copying it; else spawn, as on macOS and Windows, which pickles it over).
WORKER_START: str | None = None
_worker_steps: Any = None  # a worker process's shared count of replay steps done


def _start_worker(steps: Any) -> None:
    global _worker_steps
    _worker_steps = steps


def _worker_tick(steps: int) -> None:
    with _worker_steps.get_lock():
        _worker_steps.value += steps


def _worker_windows(runs: _Runs, starts: Sequence[tuple[int, int]]) -> list[tuple[Window, str]]:
    return runs.windows(starts, _worker_tick)


def _replay_in_processes(runs: _Runs, starts: Sequence[int], workers: int,
                         tick: Callable[[int], None]) -> list[tuple[Window, str]]:
    """`_Runs.windows` over `workers` processes, each given consecutive windows (consecutive windows
    share most of their history: one process refits and re-solves what they share once), its steps
    counted in shared memory for `tick`."""
    import multiprocessing
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
    from itertools import pairwise

    numbered = list(enumerate(starts))
    bounds = np.linspace(0, len(numbered), workers + 1).round().astype(int)
    method = WORKER_START or ("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    context = multiprocessing.get_context(method)
    steps = context.Value("q", 0)
    reported = 0
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=(steps,))
    try:
        futures = [pool.submit(_worker_windows, runs, numbered[a:b]) for a, b in pairwise(bounds)]
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, timeout=0.2, return_when=FIRST_EXCEPTION)
            for future in finished:
                future.result()  # a worker's error is raised here, as it would have been in one process
            now = steps.value
            if now > reported:
                tick(now - reported)
                reported = now
        return [found for future in futures for found in future.result()]
    except BaseException:
        # Ctrl-C or a worker's error: stop the other workers now (shutdown alone waits for them to finish
        # their windows). The executor has no public way to; its processes are in `_processes`.
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.terminate()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def optimum(history: PriceHistory, job: BacktestJob, start_index: int = 0, *, policy: Policy | None = None,
            ratio: float = DEFAULT_GRID_RATIO, record: bool = False) -> tuple[RunResult, OptimumPlan]:
    """The optimum's plan replayed by the engine (its cost is the plan's, the upper bound), with
    `lower_bound` set to the DP's lower bound, within `policy`'s max_price, allow_spot and
    allow_on_demand (None: no limits). An infeasible window gives an empty run with deadline_met False."""
    plan = solve_optimum(history, job, start_index, policy=policy, ratio=ratio)
    if not plan.feasible:
        result = RunResult(name="optimum", start=float(history.ts[start_index]), deadline_met=False)
        return result, plan
    # Its plan knows the window's floor, not Vast's machine pauses (random: no plan foresees them), and is
    # replayed as planned: a bound on what the floor allows, not a run that met the pauses.
    result = replay(history, job, Policy(), PlanStrategy(plan.segments), start_index, record=record,
                    machine_pauses=False)
    result.name = "optimum"
    result.lower_bound = plan.lower
    return result, plan
