"""What one strategy did over one window (`RunResult`), and the hindsight bound (`hindsight`): the
engine replays strategies into the first, and the optimum (`bidder.backtest.optimum`) raises its lower
bound to the second; a module of their own so that neither imports the engine."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from bidder.backtest.history import PriceHistory
    from bidder.backtest.strategies import Action
    from bidder.backtest.types import BacktestJob
    from bidder.models import Policy

__all__ = ["RunResult", "hindsight"]


@dataclass
class RunResult:
    """One strategy over one window. Times in hours from the window start; money in USD."""

    name: str
    start: float                      # epoch seconds
    cost: float = 0.0
    work_hours: float = 0.0
    deadline_met: bool | None = None  # None for keep-running jobs
    interruptions: int = 0
    restart_hours_lost: float = 0.0
    completion_hours: float | None = None
    peak_rate: float = 0.0            # USD per hour of the pod (bid or on-demand x GPU count)
    failed_starts: int = 0            # starts refused (bid under the floor, no capacity)
    machine_pauses: int = 0           # of the interruptions, Vast's pauses by the run's machine
    decisions: int = 0
    switches: int = 0                 # runs the strategy ended itself (to wait, re-bid or move)
    steps: int = 0                    # samples replayed
    lower_bound: float | None = None  # the optimum only: its DP lower bound (USD)
    # Filled when the run is recorded (charts, tests):
    curve: list[tuple[float, float]] = field(default_factory=list)         # (hours, cumulative cost)
    interruption_hours: list[float] = field(default_factory=list)
    log: list[tuple[float, Action]] = field(default_factory=list)          # (epoch, action) per decision


def hindsight(history: PriceHistory, job: BacktestJob, start_index: int = 0, *, work_hours: float | None = None,
              horizon_hours: float | None = None, policy: Policy | None = None, record: bool = False) -> RunResult:
    """The lower bound from `start_index`: `work_hours` (default: the job's) in the cheapest slots
    before `horizon_hours` (default: the deadline, else the end of the history), each slot at
    min(floor, on-demand) per unit of work, no interruption cost. Keep-running: every slot of the
    span at that price (slots with no price at all count as down time). When not enough slots
    exist, the result has the work it could do, cost of all of it, and deadline_met False.
    `policy` (None: no limits): a price over its max_price, or of a kind it does not allow, is no price."""
    ts = history.ts
    t0 = float(ts[start_index])
    result = RunResult(name="hindsight", start=t0)
    data_end = history.end - t0
    if job.keep_running_hours is not None:
        horizon = min(job.keep_running_hours * 3600, data_end)
    elif horizon_hours is not None:
        horizon = min(horizon_hours * 3600, data_end)
    else:
        horizon = min(job.deadline_hours * 3600, data_end) if job.deadline_hours is not None else data_end
    rel = ts[start_index:] - t0
    k = int(np.searchsorted(rel, horizon, side="left"))
    starts = rel[:k]
    ends = np.minimum(np.append(rel[1:k + 1], data_end)[:k], horizon)
    hours = (ends - starts) / 3600
    floor = history.floor[:, start_index:start_index + k]
    od = history.on_demand_held()[:, start_index:start_index + k]
    if policy is not None:
        cap = math.inf if policy.max_price is None else float(policy.max_price)
        with np.errstate(invalid="ignore"):
            floor = np.where((floor <= cap) & policy.allow_spot, floor, np.nan)
            od = np.where((od <= cap) & policy.allow_on_demand, od, np.nan)
    price = np.fmin(floor, od) * job.gpu_count  # USD per pod-hour
    if job.keep_running:
        cheapest = np.fmin.reduce(price, axis=0)
        up = ~np.isnan(cheapest)
        result.cost = float(np.sum(cheapest[up] * hours[up]))
        result.work_hours = float(np.sum(hours[up]))
        result.peak_rate = float(np.max(cheapest[up])) if up.any() else 0.0
        if record:
            spent = np.cumsum(np.where(up, cheapest * hours, 0.0))
            result.curve = [(0.0, 0.0), *zip((ends / 3600).tolist(), spent.tolist(), strict=True)]
        return result
    needed = float(job.work_hours if work_hours is None else work_hours)  # type: ignore[arg-type]
    speeds = np.array([job.speed_of(m.gpu_type_id) for m in history.markets])
    if np.all(speeds == speeds[0]):
        # One pod at a time: per slot, the cheapest market.
        rate = np.fmin.reduce(price, axis=0)
        per_work = rate / speeds[0]
        capacity = hours * speeds[0]
        slot_start, slot_speed = starts, np.full(k, speeds[0])
    else:
        rate = price.ravel()
        per_work = (price / speeds[:, None]).ravel()
        capacity = (hours[None, :] * speeds[:, None]).ravel()
        slot_start = np.tile(starts, len(speeds))
        slot_speed = np.repeat(speeds, k)
    usable = ~np.isnan(per_work) & (capacity > 0)
    order = np.argsort(np.where(usable, per_work, np.inf), kind="stable")[: int(usable.sum())]
    if order.size == 0:
        result.deadline_met = needed <= 0
        return result
    cumulative = np.cumsum(capacity[order])
    if needed <= 0:
        result.deadline_met, result.completion_hours = True, 0.0
        return result
    if cumulative[-1] < needed * (1 - 1e-12):
        result.cost = float(np.sum(per_work[order] * capacity[order]))
        result.work_hours = float(cumulative[-1])
        result.peak_rate = float(np.max(rate[order]))
        result.deadline_met = False
        return result
    j = int(np.searchsorted(cumulative, needed * (1 - 1e-12)))
    used = order[: j + 1]
    amount = capacity[used].copy()
    amount[-1] = needed - (float(cumulative[j - 1]) if j > 0 else 0.0)
    result.cost = float(np.sum(per_work[used] * amount))
    result.work_hours = needed
    result.peak_rate = float(np.max(rate[used]))
    result.completion_hours = float(np.max(slot_start[used] + amount / slot_speed[used] * 3600)) / 3600
    result.deadline_met = True
    if record:
        # Cumulative cost for charts, in time order of the slots used: it rises from a slot's start to
        # the end of its work and is flat between slots (the unused hours cost nothing). Markets used
        # in the same slot (speeds differ) share one rise.
        begun, slot = np.unique(slot_start[used], return_inverse=True)
        finished = np.zeros(len(begun))
        np.maximum.at(finished, slot, slot_start[used] + amount / slot_speed[used] * 3600)
        paid = np.bincount(slot, weights=per_work[used] * amount, minlength=len(begun))
        spent = np.cumsum(paid)
        x = np.column_stack([begun, finished]).ravel() / 3600  # each slot's start, then the end of its work
        y = np.column_stack([spent - paid, spent]).ravel()
        result.curve = [(0.0, 0.0), *zip(x.tolist(), y.tolist(), strict=True)]
    return result
