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
the slowest speed (the greatest common divisor of the steps and the restart overhead), so a
100-hour job on 5-minute samples has 1,200 units. At each sample boundary, every run may end (its
work minus the overhead goes to idle), runs whose level is under the floor die (interrupted), and
idle may start any run the market allows; then each run pays its level (or the on-demand price)
for the sample and gains its work. A run that reaches the work needed is done (the last segment:
no overhead lost; a partial sample pays its share).

Work the units cannot count exactly: times not on a grid (a trace at irregular intervals has steps
of any whole second, so the divisor is 1 s and a 100-hour job 360,000 units), or more cells than
the backtrack keeps (a 1-minute trace's 100-hour, 7-day job: 10,080 samples x 6,000 units). Two
phased counts (`_Count`) then bound the optimum, each in a unit as fine as its cells allow (on the
steps' grid where there is one): a run's time is kept as whole units plus the fraction (the phase)
and rounded only at its two ends, one way in each count. The lower count never credits a run less
work than it does, so no plan of the model costs less than its cost: the **lower bound** (raised
to hindsight's where that is higher); it keeps no backtrack, so it may be finer (the exact unit of
a 1-minute trace). The upper count never credits more, so its plan finishes when replayed: its
cost is the **upper bound**. They differ by up to about two units per restart of the plan, on top
of the price grid below; `gap` says what it came to (0.6-0.8% on 7-day windows of a 5-minute trace
at exponential gaps and of a 1-minute trace, both 100-hour jobs; it is not held under 1%: coarser
units, for more work or a longer window, give a wider gap, reported as it is). Rounding a sample's
work up instead, as the DP once did on such times, gave a plan that did not finish ("infeasible"
in every window) and a lower bound 30% under it.

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
Speed: about a second per 7-day window and market on 5-minute samples (numpy over levels x work, a
band of the work axis that can still finish), 2-7 s for the two counts of the traces above;
`analysis/benchmarks/bench_backtest.py` prints it.
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
#: Largest samples x work units of the lower bound's count when no exact count fits (it keeps no
#: backtrack: the limit is time).
LOWER_CELLS = 64_000_000
#: Widest run arrays of a phased count, in work units (each market keeps levels x this many floats).
MAX_WIDTH = 24_000
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
    `upper` (the cost of `segments` at their real bids, replayed: they finish by the deadline).
    `feasible` False: no plan can finish (or, in the rare window where the phased counts' lower bound
    finishes and the upper count's rounding left no plan that does, none was found: `lower` is set)."""

    feasible: bool
    lower: float = math.nan
    upper: float = math.nan
    segments: list[Segment] = field(default_factory=list)
    exact: bool = False              # lower is the optimum: real floors as levels and work exact (or
                                     # the bounds met)
    work_exact: bool = True          # work counted in whole units (else two phased counts bound it,
                                     # and the gap includes their rounding; True if they met)
    levels: int = 0                  # price levels of the DP (all markets)
    work_units: int = 0              # the job's work in the (lower count's) units

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
    """Work hours per DP unit of the exact count: the greatest common divisor (whole seconds) of the
    steps and the restart overhead, at the slowest speed, split in q when the speeds need it, so that
    every full sample gains, and every restart loses, a whole number of units. If that makes the job
    more than `_MAX_UNITS` units, or the steps are not whole seconds, the usual step instead (the count
    is then not exact, and `solve_optimum` bounds the optimum with two phased counts instead)."""
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


def _bound_unit(hours: np.ndarray, speeds: np.ndarray, work_hours: float, overhead_hours: float, cells: int,
                max_width: int) -> float:
    """Work hours per unit of a phased count (see `_Count`): about the finest that keeps samples x units
    within `cells` and the run arrays within `max_width` columns, on the steps' whole-second grid where
    it can be: the grid's common divisor with the restart overhead, or the grid, when that is fine
    enough (then every step and restart is whole units; split further only for a faster market's
    phases); else a multiple of the grid, one that divides the overhead if one is within twice the
    finest (a restart then loses whole units, and the two bounds differ by a unit less per restart)."""
    s0 = float(speeds.min())
    full = hours[:-1]
    seconds = np.round(full * 3600)
    whole = full.size > 0 and bool(np.allclose(seconds, full * 3600, rtol=0, atol=1e-6)) and bool(np.all(seconds > 0))
    grid = int(np.gcd.reduce(seconds.astype(np.int64))) if whole else 1
    work_s = work_hours / s0 * 3600
    span_s = float(np.sum(hours)) * 3600 * float(speeds.max()) / s0
    smallest = max(1.0, work_s * hours.size / cells, (work_s + span_s) / max_width)  # seconds at the slowest speed
    overhead_s = overhead_hours / s0 * 3600
    common = math.gcd(grid, round(overhead_s)) if abs(overhead_s - round(overhead_s)) < 1e-6 else 0
    for base in (common, grid):
        if base >= smallest:  # the grid, or a divisor of it: every step whole units (finer only helps the
            # phases of a faster market)
            split = 1 if np.all(speeds == s0) else math.floor(base / smallest + 1e-9)
            return base / split / 3600 * s0
    b_min = math.ceil(smallest / grid - 1e-9)
    for b in range(b_min, 2 * b_min + 1):
        ratio = overhead_s / (b * grid)
        if overhead_s > 0 and abs(ratio - round(ratio)) < 1e-9:
            return b * grid / 3600 * s0
    return b_min * grid / 3600 * s0


@dataclass
class _Count:
    """How one DP pass counts work, in units of `unit` work hours; per market and sample (M, k):
    `gain` the units the sample really does; `shift` the whole units it credits; `phase` what a run at
    credited work w has done beyond w at the sample's start (the finish counts w + phase + the share of
    `gain`); `loss` the units a run ending at the sample's start loses (the restart); `pen` the units a
    run starting there gives up. `needed`: the job's units plus `origin`, the work index of the first
    idle state; `slack` widens the band (a run may finish up to one unit before its credit says).

    The exact count (whole units per sample and restart) has phase 0 and pen 0. A phased count keeps the
    time's fraction of a unit in `phase` and rounds only at a run's two ends, in one direction: the
    lower count's runs never credit less work than they do (the loss is rounded down), so its cost is a
    lower bound; the upper count's never more (a run starting off the unit grid gives up the fraction,
    the loss is rounded up), so its plan finishes when replayed."""

    unit: float
    gain: np.ndarray
    shift: np.ndarray
    phase: np.ndarray
    loss: np.ndarray
    pen: np.ndarray
    loss_true: np.ndarray
    needed: float
    origin: int = 0
    slack: int = 0

    @property
    def units(self) -> int:
        return math.ceil(self.needed - 1e-9)


def _exact_count(hours: np.ndarray, speeds: np.ndarray, unit: float, work_hours: float,
                 overhead_hours: float) -> tuple[_Count, bool]:
    """The count of whole units per sample (a partial sample rounded up) and per restart (rounded down),
    and whether it is exact (every full sample and the restart whole units)."""
    gain = _integral(speeds[:, None] * hours[None, :] / unit)          # true work units per sample
    shift = np.ceil(gain - 1e-9).astype(np.int64)                       # what the DP credits (>= true)
    needed = float(_integral(work_hours / unit))
    loss_true = _integral(overhead_hours * speeds / unit)
    loss = np.floor(loss_true + 1e-9).astype(np.int64)                # what the DP takes (<= true)
    k = hours.size
    exact = (bool(np.all(gain[:, :-1] == shift[:, :-1])) if k > 1 else True) and bool(np.all(loss == loss_true))
    zeros = np.zeros(shift.shape, dtype=np.int64)
    return _Count(unit, gain, shift, np.zeros(shift.shape), np.broadcast_to(loss[:, None], shift.shape), zeros,
                  loss_true, needed), exact


def _phased_count(hours: np.ndarray, speeds: np.ndarray, unit: float, work_hours: float, overhead_hours: float,
                  upper: bool) -> _Count:
    """The lower (`upper` False) or upper phased count of `unit` work hours (see `_Count`).

    Lower: a run's credit is floor(u_j) - floor(u_a) for time u in units (so w + phase >= its work at
    every sample), a restart at b takes floor(overhead - phase_b) (the idle state keeps w >= its work:
    with an overhead under the phase, that adds a unit)
    Upper: a run starting at a gives up ceil(phase_a), a restart at b takes ceil(overhead - phase_b), so
    that w + phase <= the work done at every sample, and w <= it when idle."""
    t = np.concatenate([[0.0], np.cumsum(hours)])
    u = _integral(speeds[:, None] * t[None, :] / unit)
    whole = np.floor(u)
    phase = np.clip(u - whole, 0.0, None)[:, :-1]
    shift = np.diff(whole, axis=1).astype(np.int64)
    gain = _integral(speeds[:, None] * hours[None, :] / unit)
    loss_true = _integral(overhead_hours * speeds / unit)
    after = _integral(loss_true[:, None] - phase)
    if upper:
        loss = np.ceil(after - 1e-9)
        pen = (phase > 0).astype(np.int64)
    else:
        loss = np.floor(after + 1e-9)
        pen = np.zeros(phase.shape, dtype=np.int64)
    origin = int(pen.any())
    needed = float(_integral(work_hours / unit)) + origin
    return _Count(unit, gain, shift, phase, loss.astype(np.int64), pen, loss_true, needed, origin=origin, slack=1)


def _dp(work: _Count, levels: Sequence[np.ndarray], dead: Sequence[np.ndarray], od_ok: np.ndarray,
        od_held: np.ndarray, hours: np.ndarray, gpus: int, track: bool
        ) -> tuple[tuple[float, int, int, int, int], np.ndarray | None, np.ndarray | None, int]:
    """The DP over (sample, state, work) of one count: (best, idle_hist, code_hist, stride), where best
    is (cost, sample, market, level or -1 for on-demand, work before the finishing sample). With
    `track` False the backtrack's history is not kept (cost only: a bound)."""
    shift, gain, phase, loss, pen = work.shift, work.gain, work.phase, work.loss, work.pen
    needed, n_units = work.needed, work.units
    n_markets, k_steps = shift.shape
    inf = math.inf
    idle = np.full(n_units, inf)
    idle[work.origin] = 0.0
    # Runs are stored along diagonals: work w at sample j sits in column w + offset[m, j], and the
    # offset falls by the sample's credit, so a running state keeps its column (no copying).
    cum = np.concatenate([np.zeros((n_markets, 1), dtype=np.int64), np.cumsum(shift, axis=1)], axis=1)
    offset = cum[:, -1:] - cum
    width = n_units + int(cum[:, -1].max(initial=0)) + 1
    spot = [np.full((lv.size, width), inf) for lv in levels]
    ond = [np.full(width, inf) for _ in range(n_markets)]
    # Per sample: the highest work any run can have reached, and what is left to do after it.
    most = shift.max(axis=0) if n_markets else np.zeros(k_steps, dtype=np.int64)
    if n_markets and int(loss.min()) < 0:
        most = most + 1  # (a restart may add a unit: see _phased_count)
    reach = work.origin + np.concatenate([[0], np.cumsum(most)])
    # The band of work that can still finish, counted in credited work (plus the phase's unit): a run
    # below it can never climb back in, so columns that leave the band are never read again.
    rest = np.concatenate([np.cumsum(most[::-1])[::-1], [0]]) + work.slack
    idle_hist = np.full((k_steps, n_units), inf) if track else None
    code_hist = np.full((k_steps, n_units), -1, dtype=np.int32) if track else None
    stride = max((lv.size for lv in levels), default=0) + 1  # code = m * stride + level (stride - 1: on-demand)
    best = (inf, -1, -1, -1, -1)
    low = np.zeros(n_markets, dtype=np.int64)  # per market: rows under it hold only inf

    for j in range(k_steps):
        lo = max(0, math.ceil(needed - rest[j] - 1e-9))
        hi = min(n_units, int(reach[j]) + 1)
        if lo >= hi:
            break
        # (a) any run may end here: its work minus the overhead goes to idle.
        if j > 0:
            for m in range(n_markets):
                o = int(loss[m, j])
                a, b = max(lo, o), hi
                top, off = int(low[m]), int(offset[m, j])  # rows under `top` are inf in the band
                if o < 0 and b > n_units + o:
                    # (The lower count, an overhead under the phase: the idle state counts the phase's
                    # unit. Past the work needed it is done, the lower count's kindest reading.)
                    over = spot[m][top:, max(a, n_units + o) + off:b + off]
                    value = min(float(over.min()) if over.size else inf,
                                float(ond[m][max(a, n_units + o) + off:b + off].min()))
                    if value < best[0]:
                        best = (value, j, m, -2, -1)  # (no backtrack: the lower count keeps none)
                    b = n_units + o
                if a >= b:
                    continue
                s = spot[m][top:, a + off:b + off]
                od_end = ond[m][a + off:b + off]
                ended = np.minimum(s.min(axis=0), od_end) if s.shape[0] else od_end.copy()
                target = idle[a - o:b - o]
                better = ended < target
                if better.any():
                    cols = np.nonzero(better)[0]
                    target[cols] = ended[cols]
                    if code_hist is not None:
                        if s.shape[0]:
                            arg = s[:, cols].argmin(axis=0)
                            from_spot = s[arg, cols] <= od_end[cols]
                            code = np.where(from_spot, m * stride + top + arg, m * stride + stride - 1)
                        else:
                            code = np.full(cols.size, m * stride + stride - 1)
                        code_hist[j, a - o + cols] = code
        if idle_hist is not None:
            idle_hist[j, lo:hi] = idle[lo:hi]
        h = float(hours[j])
        for m in range(n_markets):
            d, off = int(dead[m][j]), int(offset[m, j])
            pl, ph = lo + off, hi + off
            # (b) runs under the floor are interrupted; (c) idle may start any live level (a run
            # starting at w is at w - pen). Only rows d.. are touched from here on: the rows under d
            # are inf in the band and stay so.
            if d > low[m]:
                spot[m][int(low[m]):d, pl:ph] = inf
            low[m] = d
            s = spot[m][d:]
            od = ond[m]
            p = int(pen[m, j])
            if lo + p < hi:
                if s.shape[0]:
                    np.minimum(s[:, pl:ph - p], idle[None, lo + p:hi], out=s[:, pl:ph - p])
                if od_ok[m, j]:
                    np.minimum(od[pl:ph - p], idle[lo + p:hi], out=od[pl:ph - p])
            # (d) the sample: runs pay and work; those that reach the work needed are done.
            c_true = float(gain[m, j])
            price = levels[m][d:] * (gpus * h)
            od_price = float(od_held[m, j]) * gpus * h
            need = needed - float(phase[m, j])
            first = max(lo, math.ceil(need - c_true - 1e-9))
            if first < hi and c_true > 0:
                share = np.maximum((need - np.arange(first, hi)) / c_true, 0.0)
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
            if h > 0:  # (the offset moves the runs to w + shift; those past the work needed are done)
                if s.shape[0]:
                    s[:, pl:ph] += price[:, None]
                if math.isnan(od_price):  # no on-demand quote yet, or over the cap: no on-demand run
                    od[pl:ph] = inf
                else:
                    od[pl:ph] += od_price
    return best, idle_hist, code_hist, stride


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
    gpus = job.gpu_count
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
    work_hours, overhead_hours = float(job.work_hours), job.restart_overhead_hours

    unit = _work_unit(hours, speeds, work_hours, overhead_hours)
    count, work_exact = _exact_count(hours, speeds, unit, work_hours, overhead_hours)
    n_units = count.units
    if n_units <= 0:
        return OptimumPlan(feasible=True, lower=0.0, upper=0.0, exact=True)

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
    od_ok = ~np.isnan(od_raw) & ~od_barred
    n_levels = sum(lv.size for lv in levels)

    def solve(work: _Count, track: bool) -> tuple[tuple[float, int, int, int, int], list[Segment], float]:
        best, idle_hist, code_hist, stride = _dp(work, levels, dead, od_ok, od_held, hours, gpus, track)
        if not track or not math.isfinite(best[0]):
            return best, [], math.inf
        segments = _backtrack(best, start_index, levels, dead, od_ok, od_held, hours, work, gpus,
                              idle_hist, code_hist, stride, floor)  # type: ignore[arg-type]
        return best, segments, _plan_cost(segments, history, job, start_index, hours, work)

    if work_exact and k_steps * n_units <= MAX_CELLS:
        best, segments, upper = solve(count, True)
        plan = OptimumPlan(feasible=math.isfinite(best[0]), exact=levels_exact, work_exact=True, levels=n_levels,
                           work_units=n_units)
        if plan.feasible:
            plan.lower, plan.segments, plan.upper = best[0], segments, upper
        return plan

    # No exact count fits: bound the optimum with two phased counts, each as fine as its cells allow (the
    # lower one keeps no backtrack, so it may use more); the gap is what the rounding at runs' ends costs.
    units = [_bound_unit(hours, speeds, work_hours, overhead_hours, cells, MAX_WIDTH) for cells in (LOWER_CELLS, MAX_CELLS)]
    # A unit longer than both the usual step and the restart overhead would bound little: give up instead.
    coarsest = max(float(np.median(hours[:-1])) if k_steps > 1 else float(hours[0]), overhead_hours) * float(speeds.min())
    if max(units) > coarsest * (1 + 1e-9):
        raise ConfigError(f"the optimum of this job needs {k_steps:,} samples x {n_units:,} work units, more than "
                          f"{MAX_CELLS:,} (memory), and coarser units would be longer than a step and the restart "
                          "overhead: use a shorter --deadline or less work, or leave it out (--strategies without "
                          "optimum)", key="strategies")
    lower_count = _phased_count(hours, speeds, units[0], work_hours, overhead_hours, upper=False)
    best_low, _, _ = solve(lower_count, False)
    plan = OptimumPlan(feasible=math.isfinite(best_low[0]), exact=False, work_exact=False, levels=n_levels,
                       work_units=lower_count.units)
    if not plan.feasible:  # not even the lower count's kinder rounding finishes: no plan does
        return plan
    upper_count = _phased_count(hours, speeds, units[1], work_hours, overhead_hours, upper=True)
    _, segments, upper = solve(upper_count, True)
    from bidder.backtest.hindsight import hindsight

    bound = hindsight(history, job, start_index, policy=policy)
    lower = max(best_low[0], bound.cost if bound.deadline_met else 0.0)
    if not math.isfinite(upper):
        # The upper count's rounding lost the only plans that finish (a deadline with no time to spare):
        # the lower bound stands, but no plan was found.
        plan.feasible, plan.lower = False, lower
        return plan
    plan.lower, plan.segments, plan.upper = min(lower, upper), segments, upper
    if upper - lower <= 1e-12 * max(1.0, upper):  # the bounds met: the rounding cost nothing here
        plan.work_exact, plan.exact = True, True
    return plan


def _backtrack(best: tuple[float, int, int, int, int], start_index: int, levels: Sequence[np.ndarray],
               dead: Sequence[np.ndarray], od_ok: np.ndarray, od_held: np.ndarray, hours: np.ndarray,
               work: _Count, gpus: int, idle_hist: np.ndarray, code_hist: np.ndarray, stride: int,
               floor: np.ndarray) -> list[Segment]:
    """The segments behind the DP's best cost, from the idle values kept per sample."""
    shift, gain, phase, loss, pen = work.shift, work.gain, work.phase, work.loss, work.pen
    n_units = work.units

    def price(m: int, lvl: int, j: int) -> float:
        return (float(levels[m][lvl]) if lvl >= 0 else float(od_held[m, j])) * gpus * float(hours[j])

    def alive(m: int, lvl: int, j: int) -> bool:
        return not math.isnan(od_held[m, j]) if lvl < 0 else lvl >= dead[m][j]

    def can_start(m: int, lvl: int, j: int) -> bool:
        return bool(od_ok[m, j]) if lvl < 0 else lvl >= dead[m][j]

    def started(m: int, lvl: int, a: int, w: int, value: float, tol: float) -> bool:
        """Whether idle at sample a, with the work a run at w there started from, costs `value`."""
        i = w + int(pen[m, a])
        return can_start(m, lvl, a) and i < n_units and abs(idle_hist[a, i] - value) <= tol

    def find_start(m: int, lvl: int, b: int, w: int, value: float, include_b: bool) -> tuple[int, int]:
        """The sample a run started at, and the idle work it started from: the run is at work w at
        boundary b with cost `value` (it was running through b - 1; or starts at b when include_b)."""
        tol = 1e-7 * max(1.0, abs(value))
        acc = 0.0
        if include_b and started(m, lvl, b, w, value, tol):
            return b, w + int(pen[m, b])
        a = b
        while a > 0:
            a -= 1
            if not alive(m, lvl, a):
                break
            acc += price(m, lvl, a)
            w -= int(shift[m, a])
            if w < 0:
                break
            if started(m, lvl, a, w, value - acc, tol):
                return a, w + int(pen[m, a])
        raise RuntimeError(f"optimum backtrack lost the run ending at sample {start_index + b}")

    segments: list[tuple[int, int, int, int]] = []  # (market, level, first sample, end sample)
    value, j, m, lvl, w = best
    final_share = max((work.needed - float(phase[m, j]) - w) / float(gain[m, j]), 0.0)
    a, w = find_start(m, lvl, j, w, value - price(m, lvl, j) * final_share, include_b=True)
    segments.append((m, lvl, a, j + 1))
    while not (w == work.origin and idle_hist[a, work.origin] == 0.0):
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
        a, w = find_start(m, lvl, b, w + int(loss[m, b]), cost, include_b=False)
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
               hours: np.ndarray, work: _Count) -> float:
    """The plan's cost under the engine's rules: spot at its bid, on-demand at the held price; each
    segment but the last loses the overhead (at most its work); the job stops when the work is done,
    paying a share of the sample it finishes in (a plan counted in rounded units may finish before its
    last segment). inf if the plan does not finish."""
    od_held = history.on_demand_held()
    gain, needed, loss_true = work.gain, work.needed - work.origin, work.loss_true
    total, done = 0.0, 0.0
    for n, seg in enumerate(segments):
        a, b = seg.start - start_index, seg.end - start_index
        if seg.kind == "spot":
            rates = np.full(b - a, float(seg.bid) * job.gpu_count)  # type: ignore[arg-type]
        else:
            rates = od_held[seg.market, seg.start:seg.end] * job.gpu_count
        work_done = float(np.sum(gain[seg.market, a:b]))
        if n < len(segments) - 1 and done + work_done < needed - _TOL:
            total += float(np.sum(rates * hours[a:b]))
            done += work_done - min(float(loss_true[seg.market]), work_done)
            continue
        left = needed - done
        for rate, h, g in zip(rates.tolist(), hours[a:b].tolist(), gain[seg.market, a:b].tolist(), strict=True):
            if g >= left - _TOL:
                return total + rate * h * max(left, 0.0) / g
            total += rate * h
            left -= g
        done = needed - left - min(float(loss_true[seg.market]), work_done)
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
