"""The offline optimum of the backtest's own model: what a job could pay knowing the whole window.

    plan = solve_optimum(history, job, start_index)   # OptimumPlan: lower, upper, segments
    result = optimum(history, job, start_index)       # the plan replayed by the engine (a RunResult)

`hindsight` (the cheapest slots, no restart cost) cannot be bought; this can. The model is the
replay engine's (`bidder.backtest.engine`): the job runs segments on the sample grid before its
deadline; a spot segment at bid b on market m needs floor <= b at every sample it spans and pays
b per hour (pay-as-bid), so its cheapest bid is the highest floor it spans; an on-demand segment
starts where the market quotes on-demand and pays the (held) on-demand price; every segment but
the last loses the restart overhead of work (`restart_overhead_hours` x the market's speed); the
job must finish its work by the deadline. The optimum chooses segments and markets at least cost.

Dynamic programming, one sample at a time, over (state, work done): state is idle, on-demand on
market m, or spot on market m at price level l. Work is counted in units of one sample's work at
the slowest speed, so a 100-hour job on 5-minute samples has 1,200 units. At each sample
boundary, every run may end (its work minus the overhead goes to idle), runs whose level is
under the floor die (interrupted), and idle may start any run the market allows; then each run
pays its level (or the on-demand price) for the sample and gains its work. A run that reaches the
work needed is done (the last segment: no overhead lost; a partial sample pays its share).

Levels: a window's floors as they are when there are few distinct ones (then the DP is exact),
else the floors rounded DOWN to a geometric grid (ratio `DEFAULT_GRID_RATIO`). Rounding down lets
every real plan through at a price no higher, so the DP's cost is a valid **lower bound**; the
plan it finds, run at its real cheapest bids (each spot segment's highest floor, at most one grid
step above its level), is a real plan: its cost is an **upper bound** (`upper`), and the gap is
under `ratio - 1` of the spot money. Spot levels above a market's highest on-demand price in the
window are left out when that market always quotes on-demand (on-demand over the same span is
never dearer). The optimum ignores reclaims and Vast's machine pauses (random events no plan can
foresee: its plan is replayed without them, so it bounds what the floor allows), and honours the
policy given to it as the strategies do: with `max_price` a spot run needs floor <= the cap at every sample it spans (so its bid, the
highest of those floors, is at most the cap, and so are the levels, rounded down from floors), an
on-demand run needs the on-demand price <= the cap at every sample it spans (it ends before one
above it), and `allow_spot` / `allow_on_demand` False leave that kind out. It then bounds the
plans that never pay above the cap; when none finishes by the deadline the plan is infeasible.
Speed: a few seconds per window and market (numpy over levels x work, a band of the work
axis that can still finish); `analysis/benchmarks/bench_backtest.py` prints it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from bidder.errors import ConfigError

if TYPE_CHECKING:
    from bidder.backtest.history import PriceHistory
    from bidder.backtest.strategies import Action, RunState
    from bidder.backtest.types import BacktestJob, HistoryView
    from bidder.models import Policy

__all__ = ["DEFAULT_GRID_RATIO", "EXACT_LEVELS", "MAX_CELLS", "OptimumPlan", "PlanStrategy", "Segment",
           "solve_optimum"]

#: Price grid of the lower bound: floors rounded down to powers of this ratio (gap < ratio - 1).
DEFAULT_GRID_RATIO = 1.005
#: A market with at most this many distinct floors in a window keeps them exact (no rounding).
EXACT_LEVELS = 160

#: Largest samples x work units of one window (the backtrack keeps 12 bytes per cell: 240 MB).
MAX_CELLS = 20_000_000
_TOL = 1e-9
_MAX_UNITS = 6000


@dataclass(frozen=True)
class Segment:
    """One run of the plan: samples `start`..`end - 1` (history indices; the last segment may stop
    inside its last sample). `bid` is the cheapest bid that holds (spot), `level` what the lower
    bound charged for it."""

    kind: str            # "spot" | "on_demand"
    market: int
    start: int
    end: int
    bid: float | None = None
    level: float | None = None


@dataclass
class OptimumPlan:
    """The optimum of one window. `lower` <= the cost of any plan that finishes by the deadline <=
    `upper` (the cost of `segments` at their real bids). `feasible` False: no plan can finish."""

    feasible: bool
    lower: float = math.nan
    upper: float = math.nan
    segments: list[Segment] = field(default_factory=list)
    exact: bool = False              # every market's levels were its real floors, work exact
    work_exact: bool = True          # work in whole units (else rounded in the bound's favour: the
                                     # plan may not finish when replayed; upper is then inf)
    levels: int = 0                  # price levels of the DP (all markets)
    work_units: int = 0

    @property
    def gap(self) -> float:
        """(upper - lower) / upper: how far the bound may be from the true optimum."""
        return (self.upper - self.lower) / self.upper if self.feasible and self.upper > 0 else 0.0

    def breakdown(self, history: PriceHistory) -> dict[str, Any]:
        """Where the plan's time goes, to compare a strategy's with: hours on on-demand and on spot
        (whole samples, the last segment's last sample counted whole), restarts, the spot hours'
        mean bid over the mean floor they ran on, and runs started per market label."""
        hours = np.append(np.diff(history.ts), history.step_s) / 3600
        od_h = spot_h = paid = floor_paid = 0.0
        starts: dict[str, int] = {}
        for seg in self.segments:
            h = hours[seg.start:seg.end]
            label = history.markets[seg.market].label
            starts[label] = starts.get(label, 0) + 1
            if seg.kind == "on_demand":
                od_h += float(h.sum())
            else:
                spot_h += float(h.sum())
                paid += float(seg.bid) * float(h.sum())  # type: ignore[arg-type]
                floor_paid += float(np.sum(history.floor[seg.market, seg.start:seg.end] * h))
        return {"on_demand_hours": od_h, "spot_hours": spot_h, "restarts": max(0, len(self.segments) - 1),
                "bid_over_floor": paid / floor_paid if floor_paid > 0 else None, "starts": starts}


def _window(history: PriceHistory, job: BacktestJob, start_index: int) -> tuple[int, np.ndarray, float]:
    """(samples before the deadline, their durations in hours, deadline in seconds from the start)."""
    ts = history.ts
    t0 = float(ts[start_index])
    data_end = history.end - t0
    horizon = data_end if job.deadline_hours is None else min(job.deadline_hours * 3600, data_end)
    rel = ts[start_index:] - t0
    k = int(np.searchsorted(rel, horizon, side="left"))
    ends = np.minimum(np.append(rel[1:k + 1], data_end)[:k], horizon)
    return k, (ends - rel[:k]) / 3600, horizon


def _integral(x: np.ndarray | float) -> np.ndarray:
    """Snap values within a hair of an integer to it (100 / (1/12) is 1200.0000000000002)."""
    x = np.asarray(x, dtype=float)
    r = np.round(x)
    return np.where(np.abs(x - r) < 1e-6, r, x)


def _levels(floor: np.ndarray, cap: float, ratio: float, exact_levels: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """Price levels of one market and, per sample, how many levels the floor kills (all of them
    when there is no spot capacity or the floor is above `cap`). Returns (levels, dead, exact)."""
    ok = ~np.isnan(floor)
    with np.errstate(invalid="ignore"):
        ok &= floor <= cap
    values = floor[ok]
    exact = True
    distinct = np.unique(values)
    if distinct.size > exact_levels:
        exact = False
        positive = values > 0
        k = np.floor(np.log(np.where(positive, values, 1.0)) / math.log(ratio))
        g = np.power(ratio, k)
        g = np.where(g > values, np.power(ratio, k - 1), g)           # never above the floor
        g = np.where(g * ratio <= values, np.power(ratio, k + 1), g)  # the largest grid price under it
        values = np.where(positive, np.minimum(g, values), values)
        distinct = np.unique(values)
    rounded = np.full(floor.shape, np.inf)
    rounded[ok] = values
    dead = np.searchsorted(distinct, rounded, side="left")  # levels below the floor die; inf kills all
    return distinct, dead.astype(np.int64), exact


def _work_unit(hours: np.ndarray, speeds: np.ndarray, work_hours: float, overhead_hours: float) -> float:
    """Work hours per DP unit: the greatest common divisor (whole seconds) of the steps and the
    restart overhead, at the slowest speed, split in q when the speeds need it, so that every full
    sample gains, and every restart loses, a whole number of units (exact).
    If that makes the job more than `_MAX_UNITS` units, the usual step instead (then a sample's
    gain is rounded up: still a lower bound, but looser)."""
    s0 = float(speeds.min()) if speeds.size else 1.0
    ratios = speeds / s0
    q = next((q for q in (1, 2, 3, 4, 5, 6, 8, 10, 12) if np.all(_integral(ratios * q) == np.round(ratios * q))), 1)
    full = hours[:-1] if hours.size > 1 else hours
    seconds = np.round(full * 3600).astype(np.int64)
    overhead_s = round(overhead_hours * 3600)
    step_s = int(np.gcd.reduce(np.append(seconds[seconds > 0], overhead_s))) if np.any(seconds > 0) else 3600
    unit = step_s / 3600 * s0 / q
    if work_hours / unit > _MAX_UNITS or not np.allclose(seconds, full * 3600, rtol=0, atol=1e-6):
        unit = float(np.median(full)) * s0 / q if full.size else 1.0
    return unit


def solve_optimum(history: PriceHistory, job: BacktestJob, start_index: int = 0, *, policy: Policy | None = None,
                  ratio: float = DEFAULT_GRID_RATIO, exact_levels: int = EXACT_LEVELS) -> OptimumPlan:
    """The cheapest way to do `job.work_hours` by the deadline from sample `start_index` (batch
    jobs only; see the module docstring for the model and the bounds), within `policy`'s max_price,
    allow_spot and allow_on_demand (None: no limits)."""
    if job.keep_running or job.work_hours is None:
        raise ValueError("the optimum is defined for batch jobs (work by a deadline), not kept-running services")
    if ratio <= 1:
        raise ValueError("the price grid ratio must be above 1")
    k_steps, hours, _ = _window(history, job, start_index)
    sl = slice(start_index, start_index + k_steps)
    count = job.gpu_count
    n_markets = len(history.markets)
    speeds = np.array([job.speed_of(m.gpu_type_id) for m in history.markets], dtype=float)
    price_cap = math.inf if policy is None or policy.max_price is None else float(policy.max_price)
    spot_allowed = policy is None or policy.allow_spot
    od_allowed = policy is None or policy.allow_on_demand
    floor = history.floor[:, sl] if spot_allowed else np.full((n_markets, k_steps), np.nan)
    od_raw = history.on_demand[:, sl]
    od_uncapped = history.on_demand_held()[:, sl]
    # A NaN on-demand price kills on-demand runs and bars starts: so is one over the cap (or all).
    with np.errstate(invalid="ignore"):
        od_barred = ~(od_uncapped <= price_cap) | (not od_allowed)
    od_held = np.where(od_barred, np.nan, od_uncapped)

    unit = _work_unit(hours, speeds, float(job.work_hours), job.restart_overhead_hours)  # type: ignore[arg-type]
    gain = _integral(speeds[:, None] * hours[None, :] / unit)          # true work units per sample
    shift = np.ceil(gain - 1e-9).astype(np.int64)                       # what the DP credits (>= true)
    needed = float(_integral(job.work_hours / unit))                    # type: ignore[operator]
    n_units = math.ceil(needed - 1e-9)
    loss_true = _integral(job.restart_overhead_hours * speeds / unit)
    loss = np.floor(loss_true + 1e-9).astype(np.int64)                # what the DP takes (<= true)
    work_exact = (bool(np.all(gain[:, :-1] == shift[:, :-1])) if k_steps > 1 else True) and bool(
        np.all(loss == loss_true))
    if n_units <= 0:
        return OptimumPlan(feasible=True, lower=0.0, upper=0.0, exact=True)
    if k_steps * n_units > MAX_CELLS:
        raise ConfigError(f"the optimum of this job needs {k_steps:,} samples x {n_units:,} work units, more than "
                          f"{MAX_CELLS:,} (memory): use a shorter --deadline or less work, or leave it out "
                          "(--strategies without optimum)", key="strategies")

    levels, dead, levels_exact = [], [], True
    for m in range(n_markets):
        always_od = od_allowed and bool(np.all(~np.isnan(od_raw[m]))) and k_steps > 0
        # Above the window's highest on-demand price, on-demand is never dearer; when that is over
        # the user's cap, the cap is the lower of the two anyway.
        cap = min(float(np.max(od_uncapped[m])) if always_od else math.inf, price_cap)
        lv, dd, ex = _levels(floor[m], cap, ratio, exact_levels)
        levels.append(lv)
        dead.append(dd)
        levels_exact = levels_exact and ex
    exact = work_exact and levels_exact
    inf = math.inf
    idle = np.full(n_units, inf)
    idle[0] = 0.0
    # Runs are stored along diagonals: work w at sample j sits in column w + offset[m, j], and the
    # offset falls by the sample's work, so a running state keeps its column (no copying).
    cum = np.concatenate([np.zeros((n_markets, 1), dtype=np.int64), np.cumsum(shift, axis=1)], axis=1)
    offset = cum[:, -1:] - cum
    width = n_units + int(cum[:, -1].max(initial=0)) + 1
    spot = [np.full((lv.size, width), inf) for lv in levels]
    ond = [np.full(width, inf) for _ in range(n_markets)]
    od_ok = ~np.isnan(od_raw) & ~od_barred
    # Per sample: the highest work any run can have reached, and what is left to do after it.
    most = shift.max(axis=0) if n_markets else np.zeros(k_steps, dtype=np.int64)
    reach = np.concatenate([[0], np.cumsum(most)])
    # The band of work that can still finish, counted in credited (rounded-up) work: a run below it
    # can never climb back in, so columns that leave the band are never read again.
    rest = np.concatenate([np.cumsum(most[::-1])[::-1], [0]])
    idle_hist = np.full((k_steps, n_units), inf)
    code_hist = np.full((k_steps, n_units), -1, dtype=np.int32)
    stride = max((lv.size for lv in levels), default=0) + 1  # code = m * stride + level (stride - 1: on-demand)
    best = (inf, -1, -1, -1, -1)  # (cost, sample, market, level or -1 for on-demand, work before it)
    low = np.zeros(n_markets, dtype=np.int64)  # per market: rows under it hold only inf

    for j in range(k_steps):
        lo = max(0, math.ceil(needed - rest[j] - 1e-9))
        hi = min(n_units, int(reach[j]) + 1)
        if lo >= hi:
            break
        # (a) any run may end here: its work minus the overhead goes to idle.
        if j > 0:
            for m in range(n_markets):
                o = int(loss[m])
                a, b = max(lo, o), hi
                if a >= b:
                    continue
                top, off = int(low[m]), int(offset[m, j])  # rows under `top` are inf in the band
                s = spot[m][top:, a + off:b + off]
                od_end = ond[m][a + off:b + off]
                ended = np.minimum(s.min(axis=0), od_end) if s.shape[0] else od_end.copy()
                target = idle[a - o:b - o]
                better = ended < target
                if better.any():
                    cols = np.nonzero(better)[0]
                    target[cols] = ended[cols]
                    if s.shape[0]:
                        arg = s[:, cols].argmin(axis=0)
                        from_spot = s[arg, cols] <= od_end[cols]
                        code = np.where(from_spot, m * stride + top + arg, m * stride + stride - 1)
                    else:
                        code = np.full(cols.size, m * stride + stride - 1)
                    code_hist[j, a - o + cols] = code
        idle_hist[j, lo:hi] = idle[lo:hi]
        h = float(hours[j])
        for m in range(n_markets):
            d, off = int(dead[m][j]), int(offset[m, j])
            pl, ph = lo + off, hi + off
            # (b) runs under the floor are interrupted; (c) idle may start any live level. Only
            # rows d.. are touched from here on: the rows under d are inf in the band and stay so.
            if d > low[m]:
                spot[m][int(low[m]):d, pl:ph] = inf
            low[m] = d
            s = spot[m][d:]
            if s.shape[0]:
                np.minimum(s[:, pl:ph], idle[None, lo:hi], out=s[:, pl:ph])
            od = ond[m]
            if od_ok[m, j]:
                np.minimum(od[pl:ph], idle[lo:hi], out=od[pl:ph])
            # (d) the sample: runs pay and work; those that reach the work needed are done.
            c_true, c = float(gain[m, j]), int(shift[m, j])
            price = levels[m][d:] * (count * h)
            od_price = float(od_held[m, j]) * count * h
            first = max(lo, math.ceil(needed - c_true - 1e-9))
            if first < hi and c_true > 0:
                share = (needed - np.arange(first, hi)) / c_true
                if s.shape[0]:
                    fin = s[:, first + off:ph] + price[:, None] * share[None, :]
                    flat = int(np.argmin(fin))
                    value = float(fin.flat[flat])
                    if value < best[0]:
                        lvl, col = divmod(flat, hi - first)
                        best = (value, j, m, d + lvl, first + col)
                if not math.isnan(od_price):
                    fin_od = od[first + off:ph] + od_price * share
                    col = int(np.argmin(fin_od))
                    if fin_od[col] < best[0]:
                        best = (float(fin_od[col]), j, m, -1, first + col)
            if c > 0:  # (the offset moves the runs to w + c; those past the work needed are done)
                if s.shape[0]:
                    s[:, pl:ph] += price[:, None]
                if math.isnan(od_price):  # no on-demand quote yet, or over the cap: no on-demand run
                    od[pl:ph] = inf
                else:
                    od[pl:ph] += od_price

    plan = OptimumPlan(feasible=math.isfinite(best[0]), exact=exact, work_exact=work_exact,
                       levels=sum(lv.size for lv in levels), work_units=n_units)
    if not plan.feasible:
        return plan
    plan.lower = best[0]
    plan.segments = _backtrack(best, start_index, levels, dead, od_ok, od_held, hours, gain, shift, loss,
                               needed, count, idle_hist, code_hist, stride, floor)
    plan.upper = _plan_cost(plan.segments, history, job, start_index, hours, gain, needed, loss_true)
    gain_exact = k_steps == 1 or bool(np.all(gain[:, :-1] == shift[:, :-1]))
    if not work_exact and gain_exact and len(plan.segments) == 1:
        # Only the restart's loss was rounded (down), and a plan of one run never restarts: it replays
        # exactly, and as the best plan under the kinder rounded loss it is the optimum under the real one.
        plan.work_exact, plan.exact = True, levels_exact
    return plan


def _backtrack(best: tuple[float, int, int, int, int], start_index: int, levels: Sequence[np.ndarray],
               dead: Sequence[np.ndarray], od_ok: np.ndarray, od_held: np.ndarray, hours: np.ndarray,
               gain: np.ndarray, shift: np.ndarray, loss: np.ndarray, needed: float, count: int,
               idle_hist: np.ndarray, code_hist: np.ndarray, stride: int, floor: np.ndarray) -> list[Segment]:
    """The segments behind the DP's best cost, from the idle values kept per sample."""

    def price(m: int, lvl: int, j: int) -> float:
        return (float(levels[m][lvl]) if lvl >= 0 else float(od_held[m, j])) * count * float(hours[j])

    def alive(m: int, lvl: int, j: int) -> bool:
        return not math.isnan(od_held[m, j]) if lvl < 0 else lvl >= dead[m][j]

    def can_start(m: int, lvl: int, j: int) -> bool:
        return bool(od_ok[m, j]) if lvl < 0 else lvl >= dead[m][j]

    def find_start(m: int, lvl: int, b: int, w: int, value: float, include_b: bool) -> tuple[int, int]:
        """The sample a run started at, and its work then: the run is at work w at boundary b
        with cost `value` (it was running through b - 1; or starts at b when include_b)."""
        tol = 1e-7 * max(1.0, abs(value))
        acc = 0.0
        if include_b and can_start(m, lvl, b) and abs(idle_hist[b, w] - value) <= tol:
            return b, w
        a = b
        while a > 0:
            a -= 1
            if not alive(m, lvl, a):
                break
            acc += price(m, lvl, a)
            w -= int(shift[m, a])
            if w < 0:
                break
            if can_start(m, lvl, a) and abs(idle_hist[a, w] + acc - value) <= tol:
                return a, w
        raise RuntimeError(f"optimum backtrack lost the run ending at sample {start_index + b}")

    segments: list[tuple[int, int, int, int]] = []  # (market, level, first sample, end sample)
    value, j, m, lvl, w = best
    final_share = (needed - w) / float(gain[m, j])
    a, w = find_start(m, lvl, j, w, value - price(m, lvl, j) * final_share, include_b=True)
    segments.append((m, lvl, a, j + 1))
    while not (w == 0 and idle_hist[a, 0] == 0.0):
        cost = float(idle_hist[a, w])
        b = a
        while b > 0 and code_hist[b, w] < 0:
            b -= 1
        code = int(code_hist[b, w])
        if code < 0:
            raise RuntimeError("optimum backtrack found no run behind an idle state")
        m, lvl = divmod(code, stride)
        if lvl == stride - 1:
            lvl = -1
        a, w = find_start(m, lvl, b, w + int(loss[m]), cost, include_b=False)
        segments.append((m, lvl, a, b))
    out = []
    for m, lvl, a, b in reversed(segments):
        if lvl < 0:
            out.append(Segment("on_demand", m, start_index + a, start_index + b))
        else:
            out.append(Segment("spot", m, start_index + a, start_index + b, bid=float(np.max(floor[m, a:b])),
                               level=float(levels[m][lvl])))
    return out


def _plan_cost(segments: Sequence[Segment], history: PriceHistory, job: BacktestJob, start_index: int,
               hours: np.ndarray, gain: np.ndarray, needed: float, loss_true: np.ndarray) -> float:
    """The plan's cost under the engine's rules: spot at its bid, on-demand at the held price; each
    segment but the last loses the overhead (at most its work); the last stops when the work is
    done, paying a share of the sample it finishes in. inf if the plan does not finish."""
    od_held = history.on_demand_held()
    total, done = 0.0, 0.0
    for n, seg in enumerate(segments):
        a, b = seg.start - start_index, seg.end - start_index
        if seg.kind == "spot":
            rates = np.full(b - a, float(seg.bid) * job.gpu_count)  # type: ignore[arg-type]
        else:
            rates = od_held[seg.market, seg.start:seg.end] * job.gpu_count
        if n < len(segments) - 1:
            total += float(np.sum(rates * hours[a:b]))
            work = float(np.sum(gain[seg.market, a:b]))
            done += work - min(float(loss_true[seg.market]), work)
            continue
        left = needed - done
        for rate, h, g in zip(rates.tolist(), hours[a:b].tolist(), gain[seg.market, a:b].tolist(), strict=True):
            if g >= left - _TOL:
                return total + rate * h * max(left, 0.0) / g
            total += rate * h
            left -= g
    return math.inf


class PlanStrategy:
    """Carries out an OptimumPlan in the replay engine: starts each segment at its first sample,
    waits between segments, keeps the pod inside one."""

    name = "optimum"

    def __init__(self, segments: Sequence[Segment]) -> None:
        self.segments = sorted(segments, key=lambda s: s.start)
        self.starts = [s.start for s in self.segments]

    def decide(self, view: HistoryView, state: RunState) -> Action:
        from bidder.backtest.strategies import KEEP, WAIT, Action

        i = view.n - 1
        k = int(np.searchsorted(self.starts, i, side="right")) - 1
        seg = self.segments[k] if k >= 0 and self.segments[k].end > i else None
        if seg is None:
            return WAIT if state.pod is not None else KEEP
        if state.pod is not None and seg.start < i:
            return KEEP
        return Action("spot", seg.market, seg.bid) if seg.kind == "spot" else Action("on_demand", seg.market)
