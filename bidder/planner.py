"""The price-state planner: a Markov model of the floor and the job's plan over it (a stochastic DP).

Pure: numpy in, numpy out; no I/O, no clock.

The model (`fit_floor_model`)
-----------------------------
Time is cut into blocks of `step_h` hours ending at the fit time. A block's price is the highest floor
in it (no spot capacity = +inf): a spot pod bidding `b` runs through a block exactly when that maximum
is at most `b`. The bid levels `edges` are quantiles of those maxima below on-demand (the prices
worth bidding), and where a level's blocks fall in two clusters, the top of the lower one
(`_cluster_tops`); a block's state is the lowest level at or above its maximum (state K: above every
level). Over the highest block seen, where the floor has set new highs and under on-demand, up to three
record levels (`RECORD_MULTIPLES` of it): the top state moves into them as often as a block near the
highest so far was followed by a new high in their band, and each leaves as the top does, one level up
(`_record_rates`, `_with_records`). The state moves from block to block as a Markov chain whose transition counts are weighted by
recency (half-life `half_life_h`) and each row smoothed towards the overall mix of states by `PRIOR`
transitions' weight, so a spike, a calm spell or a regime shows up as what it predicts for the next
blocks. Where the floor has a daily cycle, the transitions into a block also depend on its quarter of
the UTC day (`DAILY_PHASES`), each phase's rows pulled towards the all-day rows; the daily model is
kept only when it forecasts the floor hours ahead better out of sample than the all-day chain and than
the same model on days whose hours were shuffled (`_daily_transitions`).

The plan (`solve_plan`)
-----------------------
The job's state at a block boundary: blocks left to the deadline `τ`, work left `w` (blocks of work at
reference speed), the floor's state `k`, and the pod: none, on-demand, or spot at level `j`. Each
block it may wait (no cost, no work), run on-demand (pays on-demand, one block of work), start spot at
level `j` (pays `edges[j]` per hour, pay-as-bid; the block's work if the next state is at most `j`, else
it is interrupted half-way on average: half the block paid, no work; on a market whose machines pause
a pod the floor does not show, Vast's, `FloorModel.machine_pause` gives the chance it is interrupted
anyway, by the bid's premium over the block's floor; such a market's levels also hold the bids at
the pauses' own premiums, `pause_levels`) or keep its pod; a pod it ends
(to switch or wait) and a spot pod the floor interrupts lose `restart_h` of work (the restart
overhead), as in the backtest engine. An interrupted kept pod has in fact done half a block of work
before its restart: the plans followed where the tolerance does not bind count it, the budget's search
does not (`COUNT_INTERRUPTED_WORK`; analysis/results/optimizer-pass12.md). Missing the deadline
costs more than the whole job on-demand (plus `DEADLINE_PENALTY` x on-demand per block of work left), and a block of waiting `WAIT_COST` of
one on-demand block, so a tie goes to acting now. An interruption costs `interruption_cost` dollars on top (the user's interruption
tolerance priced as a penalty, see `bidder.optimizer`). With a daily model, the step τ blocks before
the deadline uses the transitions of its block's phase, counted back from the deadline's time of day.
Backward induction over `τ` (vectorised over `w` and `k`) gives the expected cost of every state and
the best action in each; the table is the plan for every job of that size and deadline until the
model is refitted, so a decision is a lookup. Decisions come between the blocks' boundaries too (every
few minutes): there a running pod is read at the next boundary, kept to it (its work done and its price
paid to it), or ended now, read from the boundary below with its restart (`choose`).

Pools (`pooled_model`, `choose`)
--------------------------------
A job that runs on several markets at the same speed (two zones of one GPU, interchangeable types)
can start each run on whichever is calmest; a plan over each market alone cannot see that. The pool
is one more model: block i's price is the block maximum of the market whose maximum was lowest in
block i - 1, fitted as one market is. `choose` plans it beside each market alone; its state now is
the calmest market's, a spot start goes to the calmest market whose floor is under the bid, and a pod
already running on one of its markets is kept (or ended) in that market's own state, a fresh start
after ending it read in the calmest's. Markets with machine pauses (Vast's) pool only with each other.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise

import numpy as np

__all__ = [
    "BUDGET_PRICES",
    "DEADLINE_PENALTY",
    "INTERRUPTION_PRICES",
    "LEAVE_ON_DEMAND_MARGIN",
    "STATE_WINDOW_H",
    "Choice",
    "FloorModel",
    "MarketNow",
    "Plan",
    "PodNow",
    "block_maxima",
    "choose",
    "fit_floor_model",
    "pause_levels",
    "plan_for",
    "pooled_model",
    "recent_max",
    "solve_plan",
]

#: Missing the deadline costs this many times on-demand per block of work left at the deadline.
DEADLINE_PENALTY = 20.0
#: A block of waiting costs this share of a block of on-demand: time has a little value, so between two
#: plans of the same cost the one that finishes sooner wins (and acting now wins a tie with waiting).
WAIT_COST = 1e-4

# Action codes in a plan's tables: WAIT, ON_DEMAND, then SPOT + j (spot at level j).
WAIT, ON_DEMAND, SPOT = 0, 1, 2


@dataclass(frozen=True, eq=False)
class FloorModel:
    """Bid levels (USD per GPU-hour, ascending, below on-demand) and the block-to-block transition
    matrix of the floor's state (K + 1 states: state j = block maximum at most edges[j]; K = above)."""

    step_h: float
    edges: np.ndarray
    trans: np.ndarray
    on_demand: float
    blocks: int  # how many blocks of history it was fitted on
    mix: np.ndarray | None = None  # the (recency-weighted) share of blocks in each state
    # The transitions into a block by the block's time of day: `phase_trans[p]` for blocks starting in
    # the p-th of len(phase_trans) equal parts of the UTC day (None: the floor has no daily model).
    phase_trans: np.ndarray | None = None
    phase_mix: np.ndarray | None = None  # the share of blocks in each state, by phase (as `mix`)
    maxima: np.ndarray | None = None  # the block maxima it was fitted on (oldest first), for `pooled_model`
    end: float | None = None  # when its last block ends (epoch seconds)
    # Pauses the floor does not show (Vast: outbid or displaced on the pod's own machine), per running
    # hour, at bid premiums over the floor (`bidder.machine_hazard`); None: the floor is the whole story.
    machine_premiums: np.ndarray | None = None
    machine_rates: np.ndarray | None = None
    record_levels: int = 0  # the top levels over the highest block seen (`RECORD_MULTIPLES`)

    def machine_pause(self, levels: int) -> np.ndarray | None:
        """The chance a spot pod at level j is paused in a block whose floor is in state k' <= j for a
        reason the floor does not show, [j, k'] (bid edges[j] over a floor of edges[k']): None without
        machine rates."""
        if self.machine_rates is None or self.machine_premiums is None or levels == 0:
            return None
        premium = self.edges[:levels, None] / np.maximum(self.edges[None, :], 1e-12) - 1.0
        i = np.clip(np.searchsorted(self.machine_premiums, premium + 1e-12, side="right") - 1, 0,
                    len(self.machine_premiums) - 1)
        q = 1.0 - np.exp(-self.machine_rates[i] * self.step_h)
        # state K (no level: above every bid) never runs; its column is the top level's
        return np.concatenate([q, q[:, -1:]], axis=1)

    @property
    def levels(self) -> int:
        return int(self.edges.shape[0])

    def phase_of(self, clock_h: float) -> int:
        """The daily phase of a block starting at `clock_h` hours (UTC, any multiple of 24 added)."""
        return 0 if self.phase_trans is None else int(daily_phase(np.asarray(clock_h), len(self.phase_trans)))

    def state_of(self, block_max: float) -> int:
        """The state of a block whose highest floor is `block_max` (NaN: no capacity)."""
        if self.levels == 0 or not block_max <= self.edges[-1]:  # NaN compares False: no capacity
            return self.levels
        return int(np.searchsorted(self.edges, block_max, side="left"))

    def level_of_bid(self, bid: float) -> int:
        """The highest level a bid covers (-1: under every level)."""
        return int(np.searchsorted(self.edges, bid, side="right")) - 1


def block_maxima(ts: np.ndarray, floor: np.ndarray, end: float, step_h: float, blocks: int) -> np.ndarray:
    """The highest floor in each of the `blocks` blocks of `step_h` hours ending at `end` (oldest
    first): the price in force at the block's start and every sample inside it; NaN floors count as
    +inf (no capacity); a block before the first sample is NaN."""
    step = step_h * 3600.0
    bounds = end - step * np.arange(blocks, -1, -1, dtype=float)
    values = np.where(np.isnan(floor), np.inf, floor)
    # first[i]: the sample in force at bound i; block i spans samples first[i]..first[i+1] (the last
    # one only if it starts inside the block).
    first = np.searchsorted(ts, bounds, side="right") - 1
    out = np.full(blocks, np.nan)
    valid = first[:-1] >= 0
    if not valid.any():
        return out
    lo = int(np.flatnonzero(valid)[0])
    starts = first[lo:]
    inner = np.maximum.reduceat(values, starts[:-1]) if len(starts) > 1 else np.empty(0)
    # reduceat gives max(values[a:b]) for b > a and values[a] when b == a; add the sample in force at
    # the next bound when it started inside this block.
    nxt = starts[1:]
    if len(starts) > 1:  # reduceat's last range runs to the end of the array: cut it at the last bound
        a, b = int(starts[-2]), int(starts[-1])
        inner[-1] = values[a:max(b, a + 1)].max()
    inside = (ts[nxt] < bounds[lo + 1:]) & (nxt > starts[:-1])
    inner = np.where(inside, np.maximum(inner, values[nxt]), inner)
    out[lo:] = inner
    return out


#: How far back the floor's state now looks (hours; None: one block, as the model's states do).
STATE_WINDOW_H: float | None = None


def state_window_h(step_h: float) -> float:
    """How far back the floor's state now looks, in hours (`STATE_WINDOW_H`, else one block)."""
    return step_h if STATE_WINDOW_H is None else STATE_WINDOW_H


def recent_max(ts: np.ndarray, floor: np.ndarray, now: float, step_h: float) -> float:
    """The highest floor over the state window before `now` (the price in force at its start
    included; +inf when a sample in it had no capacity): what `FloorModel.state_of` reads."""
    window = state_window_h(step_h) * 3600.0
    lo = max(int(np.searchsorted(ts, now - window, side="right")) - 1, 0)
    hi = int(np.searchsorted(ts, now, side="right"))
    recent = floor[lo:max(hi, lo + 1)]
    return math.inf if np.isnan(recent).any() else float(recent.max())


#: The parts of the day the transitions are told apart by (1: no daily model) and the weights (in
#: transitions) tried for pulling each part's row towards the all-day row (`_daily_transitions`
#: keeps what forecasts best): a market without a daily cycle keeps the all-day matrix, one with a
#: cycle (AWS: the floor 0.7x its daily median at 16:00 UTC, 1.7x at 02:00) learns when spikes
#: come and when they pass.
DAILY_PHASES = 4
PHASE_PRIORS = (64.0, 16.0, 4.0)


def daily_phase(hours: np.ndarray, phases: int) -> np.ndarray:
    """Which of `phases` equal parts of the UTC day blocks starting at `hours` (UTC, any multiple of 24
    added) fall in."""
    return np.minimum(((hours % 24.0) * phases / 24.0).astype(int), phases - 1)


#: The model's defaults: recency half-life (hours), bid levels, and the smoothing prior (transitions).
#: Half a transition: a state seen twice is read mostly from what followed it, not from the overall mix
#: (2.0 until pass 14: AWS us-east-1a at tolerance high 1.34x -> 1.31x the optimum, worst window 1.91x
#: -> 1.68x; analysis/results/optimizer-pass14.md).
HALF_LIFE_H, LEVELS, PRIOR = 168.0, 12, 0.5


def fit_floor_model(ts: np.ndarray, floor: np.ndarray, on_demand: float, now: float, *, step_h: float = 0.5,
                    lookback_h: float = 30 * 24.0, half_life_h: float = HALF_LIFE_H, levels: int = LEVELS,
                    prior: float = PRIOR, phases: int | None = None) -> FloorModel | None:
    """The floor's model from its history up to `now` (None when there are fewer than a day of blocks)."""
    phases = DAILY_PHASES if phases is None else phases
    blocks = int(lookback_h / step_h)
    start = float(ts[0]) if len(ts) else now
    blocks = min(blocks, int((now - start) / (step_h * 3600.0)))
    if blocks < int(24 / step_h):
        return None
    maxima = block_maxima(ts, floor, now, step_h, blocks)
    return _fit_maxima(maxima, on_demand, now, step_h=step_h, half_life_h=half_life_h, levels=levels, prior=prior,
                       phases=phases)


def _fit_maxima(maxima: np.ndarray, on_demand: float, now: float, *, step_h: float, half_life_h: float,
                levels: int, prior: float, phases: int, extra_edges: np.ndarray | None = None) -> FloorModel:
    """`fit_floor_model` from the block maxima (oldest first, the last block ending at `now`);
    `extra_edges`: bid levels added to the quantiles (`pause_levels`)."""
    blocks = len(maxima)
    age_h = step_h * np.arange(blocks - 1, -1, -1, dtype=float)
    weight = 0.5 ** (age_h / half_life_h)
    known = ~np.isnan(maxima)
    below = known & (maxima < on_demand)
    if below.sum() < 2:
        edges = np.empty(0)
    else:
        values, w = maxima[below], weight[below]
        order = np.argsort(values)
        values, cum = values[order], np.cumsum(w[order])
        targets = cum[-1] * np.arange(1, levels + 1) / levels  # equal weighted shares of those blocks
        picks = np.searchsorted(cum, targets - 1e-12, side="left").clip(0, len(values) - 1)
        edges = np.unique(values[picks])
        edges = np.union1d(edges, _cluster_tops(values, edges, maxima))
    records = None
    if extra_edges is not None and len(extra_edges):
        edges = np.union1d(edges, extra_edges)
    elif len(edges) >= 2:
        records = _record_rates(maxima, weight, on_demand, float(edges[-2] / edges[-1]), int(24 / step_h), edges[-1])
        if records is not None:
            edges = np.concatenate([edges, records[0]])
    k = len(edges)
    state = np.where(known, np.searchsorted(edges, np.where(known, maxima, 0.0), side="left"), k)
    counts = np.zeros((k + 1, k + 1))
    pair_w = weight[1:] * (known[1:] & known[:-1])
    np.add.at(counts, (state[:-1], state[1:]), pair_w)
    mix = np.bincount(state[known], weights=weight[known], minlength=k + 1)
    mix = mix / mix.sum()
    trans = (counts + prior * mix) / (counts.sum(axis=1, keepdims=True) + prior)
    phase_trans = phase_mix = None
    if phases > 1:
        start_h = (now - step_h * 3600.0 * np.arange(blocks, 0, -1, dtype=float)) / 3600.0  # each block's start
        phase_trans = _daily_transitions(state, pair_w, start_h, mix, prior, phases, step_h)
        if phase_trans is not None:
            phase = daily_phase(start_h, phases)
            phase_mix = np.zeros((phases, k + 1))
            np.add.at(phase_mix, (phase[known], state[known]), weight[known])
            phase_mix = (phase_mix + mix) / (phase_mix.sum(axis=1, keepdims=True) + 1.0)  # a phase never seen: the mix
    if records is not None:
        trans = _with_records(trans, len(records[0]), records[1])
        if phase_trans is not None:
            phase_trans = np.stack([_with_records(t, len(records[0]), records[1]) for t in phase_trans])
    return FloorModel(step_h=step_h, edges=edges, trans=trans, on_demand=float(on_demand), blocks=blocks, mix=mix,
                      phase_trans=phase_trans, phase_mix=phase_mix, maxima=maxima, end=float(now),
                      record_levels=0 if records is None else len(records[0]))


#: A quantile level's state whose blocks fall in two clusters this far apart (the higher's lowest block over
#: the lower's highest) gets a level at the lower cluster's top (`_cluster_tops`), if the floor stays at or
#: under it for more than a block as often as not (`CLUSTER_STAY`: a bid there would hold).
CLUSTER_GAP = 1.25
CLUSTER_STAY = 0.5


def _cluster_tops(values: np.ndarray, edges: np.ndarray, maxima: np.ndarray) -> np.ndarray:
    """Levels at the top of the lower of two clusters inside one state: `values` (sorted ascending) are
    the block maxima under on-demand, `edges` the quantile levels, `maxima` every block maximum in time
    order. Equal-weight quantiles on a floor with two modes (weekdays and weekends, two regimes) put no
    level between them: the state spanning the gap held the cheap mode's highest blocks and the dear
    mode's lowest, so no bid covered the cheap mode without the dear one's price. Each state's widest
    gap between consecutive blocks, where over `CLUSTER_GAP`, gets a level at the block under it, when
    a block at or under that level was followed by another more often than `CLUSTER_STAY` (a mode that
    lasts; a floor whose blocks fall there now and then, one at a time, is no mode to bid on)."""
    state = np.searchsorted(edges, values, side="left")
    ratio = values[1:] / np.maximum(values[:-1], 1e-12)
    inside = state[1:] == state[:-1]
    tops = []
    for j in np.unique(state[1:][inside]):
        at = np.flatnonzero(inside & (state[1:] == j))
        best = at[np.argmax(ratio[at])]
        if ratio[best] > CLUSTER_GAP:
            under = maxima[:-1] <= values[best]  # NaN (unknown) compares False
            if (maxima[1:][under] <= values[best]).mean() > CLUSTER_STAY:
                tops.append(values[best])
    return np.asarray(tops, dtype=float)


#: Bid levels over the highest block maximum seen, as multiples of it (those under on-demand), and the
#: floor's moves into them (`_record_rates`): a floor trending up sets new highs, and with the highest
#: block seen as its top level a plan could neither see the top bid crossed nor bid over it.
RECORD_MULTIPLES = (1.1, 1.25, 1.5)


def _record_rates(maxima: np.ndarray, weight: np.ndarray, on_demand: float, band: float, warmup: int,
                  top: float) -> tuple[np.ndarray, np.ndarray] | None:
    """The record levels and how often the floor rose into them: (levels, rates), rates[i] the
    recency-weighted share of blocks, among those following a block in the top band (at least `band`
    times the highest block so far, as the top state is now), whose maximum went over the highest so
    far by the i-th step of `RECORD_MULTIPLES` (the last: over every record level, under on-demand).
    Counted after the first `warmup` blocks (the highest so far means little on the first day).
    None when no record level is under on-demand, no block set a record under on-demand, or the top
    band never came."""
    levels = np.asarray([m * top for m in RECORD_MULTIPLES if m * top < on_demand], dtype=float)
    if not len(levels):  # a top within 10% of on-demand: on-demand is the bid over it
        return None
    finite = np.isfinite(maxima)
    highest = np.fmax.accumulate(np.where(finite, maxima, -np.inf))  # the highest block so far
    before, after = maxima[:-1], maxima[1:]
    ref = highest[:-1]
    w = weight[1:] * (finite[:-1] & (ref > 0) & (before >= band * ref) & ~np.isnan(after))
    w[:warmup] = 0.0
    total = w.sum()
    if not total > 0:
        return None
    ratio = np.where(np.isfinite(after) & (after < on_demand), after / np.where(ref > 0, ref, 1.0), 0.0)
    bounds = np.concatenate([[1.0], np.asarray(RECORD_MULTIPLES[:len(levels)]), [np.inf]])
    rates = np.array([w[(ratio > lo) & (ratio <= hi)].sum() for lo, hi in pairwise(bounds)]) / total
    if not rates.sum() > 0:
        return None
    return levels, rates


def _with_records(trans: np.ndarray, added: int, rates: np.ndarray) -> np.ndarray:
    """`trans` with the top state's records: its row moves `rates` (see `_record_rates`) from its
    states at or under the top to the record levels' states and the state above, and each record
    level's row is the top's one level up (down moves to the same levels, staying stays, each band
    of rise one level higher)."""
    out = trans.copy()
    above = trans.shape[0] - 1
    t = above - added - 1  # the highest quantile level's state
    row = out[t]
    kept = row[:t + 1].sum()
    moved = min(float(rates.sum()), kept * (1 - 1e-9))
    row[:t + 1] *= 1 - moved / kept
    row[t + 1:above] += rates[:added] * (moved / rates.sum())
    row[above] += rates[added] * (moved / rates.sum())
    for j in range(added):
        u = t + 1 + j
        up = np.zeros_like(row)
        up[:t] = row[:t]
        up[u] += row[t]
        for i in range(added + 1):
            up[min(u + 1 + i, above)] += row[t + 1 + i]
        out[u] = up
    return out


#: How far ahead (hours) the daily model must forecast the floor better than the all-day one, and
#: how many days with their hours shuffled it must also beat (see `_daily_transitions`).
PHASE_CHECK_H = 8.0
PHASE_NULLS = 2


def _daily_transitions(state: np.ndarray, weight: np.ndarray, start_h: np.ndarray, mix: np.ndarray, prior: float,
                       phases: int, step_h: float) -> np.ndarray | None:
    """The transition matrix of each daily phase, each row pulled towards the all-day row by one of
    `PHASE_PRIORS` transitions (the pull that forecasts best); None when the time of day does not
    forecast the floor better.

    `state[i]` is block i's state, `start_h[i]` its start (hours since the epoch, UTC), `weight[i]`
    the weight of the transition from block i to i + 1 (0: one of them unknown). Judged out of
    sample, on alternate days: matrices fitted on the odd days' transitions forecast the state
    `PHASE_CHECK_H` ahead of every even-day block (recency-weighted log-likelihood of the state that
    came), and the other way round. Hours ahead, not one step: a daily cycle shows in where the floor
    is by morning, while one step is mostly "stays where it is". The phases must beat the all-day
    matrix and also the same model fitted with each day's hours rotated by a random amount (the
    same number of matrices, no daily alignment): more matrices alone fit a little better, so only
    a real daily cycle passes. A market without one keeps the all-day matrix."""
    n = len(mix)
    src, dst = state[:-1], state[1:]
    ahead = max(1, round(PHASE_CHECK_H / step_h))
    if len(state) <= ahead + round(24.0 / step_h):
        return None
    calendar_day = np.floor(start_h / 24.0).astype(int)
    fold = calendar_day % 2

    def labels(rotation: np.ndarray | None) -> np.ndarray:
        return daily_phase(start_h if rotation is None else start_h + rotation[calendar_day - calendar_day[0]],
                           phases)

    pulls = np.asarray(PHASE_PRIORS, dtype=float)[:, None, None, None]

    def fitted(mask: np.ndarray, phase: np.ndarray | None) -> np.ndarray:
        """The matrices fitted on the transitions in `mask`: (1, 1, n, n) all-day, else (pulls, phases, n, n)."""
        counts = np.zeros((n, n))
        np.add.at(counts, (src[mask], dst[mask]), weight[mask])
        all_day = (counts + prior * mix) / (counts.sum(axis=1, keepdims=True) + prior)
        if phase is None:
            return all_day[None, None]
        by_phase = np.zeros((phases, n, n))
        np.add.at(by_phase, (phase[1:][mask], src[mask], dst[mask]), weight[mask])
        return (by_phase[None] + pulls * all_day[None, None]) / (by_phase.sum(axis=2, keepdims=True)[None] + pulls)

    # Forecasts from block i to i + ahead, weighted by the later transition's weight when both ends
    # are known (a transition's weight is 0 when either of its blocks is unknown).
    first = np.arange(len(state) - ahead)
    w_ahead = weight[first + ahead - 1] * (weight[first] > 0)

    def scores(phase: np.ndarray | None) -> np.ndarray:
        """The out-of-sample score of each pull (all-day: one score)."""
        total = 0.0
        for f in (0, 1):
            trans = fitted(fold[1:] != f, phase)  # a transition's day: the block it leads into
            test = first[(fold[first] == f) & (w_ahead > 0)]
            dist = np.zeros((trans.shape[0], len(test), n))
            dist[:, np.arange(len(test)), state[test]] = 1.0
            for j in range(1, ahead + 1):  # the state's distribution, block by block, by the block's phase
                now_phase = np.zeros(len(test), dtype=int) if phase is None else phase[test + j]
                for p in range(trans.shape[1]):
                    rows = np.flatnonzero(now_phase == p)
                    dist[:, rows] = dist[:, rows] @ trans[:, p]
            came = dist[:, np.arange(len(test)), state[test + ahead]]
            total = total + np.sum(w_ahead[test] * np.log(came), axis=1)
        return np.asarray(total)

    real = scores(labels(None))
    rng = np.random.default_rng(0)  # fixed: the same history always gets the same model
    days = int(calendar_day[-1] - calendar_day[0]) + 1
    nulls = [float(scores(labels(rng.uniform(0.0, 24.0, days))).max()) for _ in range(PHASE_NULLS)]
    if not real.max() > max([float(scores(None)[0]), *nulls]):
        return None
    return fitted(np.ones(len(src), dtype=bool), labels(None))[int(np.argmax(real))]


#: The pooled models kept between decisions (keyed by their members; a backtest reuses them until the
#: next refit).
_pools: OrderedDict[tuple[int, ...], tuple[tuple[FloorModel, ...], FloorModel | None]] = OrderedDict()


def pooled_model(models: Sequence[FloorModel]) -> FloorModel | None:
    """The floor of several interchangeable markets (same job speed) as a job sees it when each start
    goes to the calmest of them: block i's price is the highest floor in block i of the market whose
    highest floor was lowest in block i - 1 (a market with no capacity is never the calmest). Fitted
    as `fit_floor_model` fits one market, on the blocks every member has; on-demand is the cheapest
    member's. A plan over it prices what a plan over each market alone cannot: when one market
    spikes, the next start goes to another. None: fewer than two members, or members not fitted at
    the same time on the same blocks."""
    key = tuple(id(m) for m in models)
    hit = _pools.get(key)
    if hit is not None and all(a is b for a, b in zip(hit[0], models, strict=True)):
        _pools.move_to_end(key)
        return hit[1]
    pooled = None
    ends = {m.end for m in models}
    if len(models) > 1 and all(m.maxima is not None for m in models) and len(ends) == 1 and None not in ends \
            and len({m.step_h for m in models}) == 1:
        n = min(len(m.maxima) for m in models)  # type: ignore[arg-type]
        maxima = np.stack([m.maxima[-n:] for m in models])  # type: ignore[index]
        calm = np.where(np.isnan(maxima), np.inf, maxima)
        pick = np.empty(n, dtype=int)
        pick[0] = np.argmin(calm[:, 0])
        pick[1:] = np.argmin(calm[:, :-1], axis=0)
        step_h = models[0].step_h
        pooled = _fit_maxima(maxima[pick, np.arange(n)], min(m.on_demand for m in models), float(models[0].end),
                             step_h=step_h, half_life_h=HALF_LIFE_H, levels=LEVELS, prior=PRIOR, phases=DAILY_PHASES)
        paused = [m for m in models if m.machine_rates is not None]
        if pooled is not None and paused:  # a start may go to any member: the worst machine's pauses
            pooled = replace(pooled, machine_premiums=paused[0].machine_premiums,
                             machine_rates=np.max([m.machine_rates for m in paused], axis=0))
    _pools[key] = (tuple(models), pooled)
    while len(_pools) > PLAN_CACHE_SIZE:
        _pools.popitem(last=False)
    return pooled


def pause_levels(model: FloorModel) -> FloorModel:
    """`model` with bid levels that buy fewer machine pauses, where it has machine rates (Vast's).

    The levels are quantiles of the floor's block maxima: the bids worth making against the floor
    alone. Against its machine's pauses a bid buys more the higher it is over the floor
    (`bidder.machine_hazard`; on emulator seed 2's RTX A6000, 0.89 pauses an hour at the floor, 0.52 at
    30% over it, 0.30 at twice it), but that floor's maxima spanned 12% over its lowest level: no plan
    could bid where the pauses fall, and where the tolerance binds, at the budget's first interruption
    price every level paused about as often and the plan ran on-demand. Here the bids at the rates' own
    premiums over the lowest level, above every quantile and under on-demand, are levels too (the chain
    refitted on the same maxima). Unchanged without machine rates (RunPod, a trace's Vast)."""
    if model.machine_rates is None or model.machine_premiums is None or model.maxima is None or model.levels == 0 \
            or model.end is None:
        return model
    hit = _leveled.get(id(model))
    if hit is not None and hit[0] is model:
        _leveled.move_to_end(id(model))
        return hit[1]
    extra = float(model.edges[0]) * (1.0 + np.asarray(model.machine_premiums, dtype=float))
    extra = extra[(extra > float(model.edges[-1 - model.record_levels]) * (1 + 1e-9)) & (extra < model.on_demand)]
    leveled = model
    if len(extra):
        leveled = replace(_fit_maxima(model.maxima, model.on_demand, model.end, step_h=model.step_h,
                                      half_life_h=HALF_LIFE_H, levels=LEVELS, prior=PRIOR, phases=DAILY_PHASES,
                                      extra_edges=extra),
                          blocks=model.blocks, machine_premiums=model.machine_premiums,
                          machine_rates=model.machine_rates)
    _leveled[id(model)] = (model, leveled)
    while len(_leveled) > 4 * PLAN_CACHE_SIZE:
        _leveled.popitem(last=False)
    return leveled


#: Models with pause levels (`pause_levels`) by the id of the model they were made from, kept with it (so
#: the id stays its own): a backtest's plans are cached by their model's id, so one model, one leveled.
_leveled: OrderedDict[int, tuple[FloorModel, FloorModel]] = OrderedDict()


@dataclass(frozen=True, eq=False)
class Plan:
    """Best action, expected cost and expected interruptions of every state of one job on one market.

    Arrays are indexed [τ - first_row, w, k, pod]: τ blocks left, w blocks of work left (reference
    speed), k the floor's state, pod 0 none / 1 on-demand / 2 + j spot at level j. `value` is USD per
    GPU, including `interruption_cost` per expected interruption. A plan solved for one decision keeps
    only its rows from `first_row` (τ now) up: the rest are needed while solving, not after; one solved
    for a job part-way to its deadline, only the rows up to its τ then (`last_row`)."""

    model: FloorModel
    action: np.ndarray
    value: np.ndarray
    interruptions: np.ndarray
    restart_h: float
    speed: float
    interruption_cost: float
    first_row: int = 0
    clock_h: float | None = None  # the deadline's time of day when the plan followed the daily phases

    @property
    def last_row(self) -> int:
        """The highest τ the table holds."""
        return self.first_row + self.action.shape[0] - 1

    def _cell(self, blocks_left: int, work_blocks: float) -> tuple[int, int, int, float, int]:
        """Where a state is read (clipped to the table): the row of τ, the work rows below and above
        it with the weight of the upper one, and the row whose action applies (the one with more work)."""
        t = min(max(blocks_left - self.first_row, 0), self.action.shape[0] - 1)
        top = self.action.shape[1] - 1
        w = min(max(work_blocks, 0.0), float(top))
        lo = math.floor(w)
        return t, lo, min(lo + 1, top), w - lo, math.ceil(w)

    def at(self, blocks_left: int, work_blocks: float, state: int, pod: int) -> tuple[int, float, float]:
        """(action, expected cost, expected interruptions) in one state (clipped to the table). Work
        between two rows reads the costs in between, and the action of the row with more work."""
        t, lo, hi, f, act = self._cell(blocks_left, work_blocks)
        value = float(self.value[t, lo, state, pod]) * (1 - f) + float(self.value[t, hi, state, pod]) * f
        count = float(self.interruptions[t, lo, state, pod]) * (1 - f) + float(self.interruptions[t, hi, state, pod]) * f
        return int(self.action[t, act, state, pod]), value, count

    def last_block(self, blocks_left: int, work_blocks: float, state: int, pod: int) -> tuple[float, float]:
        """(expected cost, expected interruptions) of the plan's action with under one block of work
        left, read off the rows of one and two blocks (extrapolated to `work_blocks`): `at` reads it
        between none ($0: done) and one, which scales a start's fixed cost, its restart, down with the
        work (a pod ended to wait with 5 minutes of work left read its restart's 15 minutes as 1)."""
        t = min(max(blocks_left - self.first_row, 0), self.action.shape[0] - 1)
        if self.action.shape[1] < 3:
            return self.at(blocks_left, work_blocks, state, pod)[1:]
        v1, v2 = float(self.value[t, 1, state, pod]), float(self.value[t, 2, state, pod])
        n1, n2 = float(self.interruptions[t, 1, state, pod]), float(self.interruptions[t, 2, state, pod])
        f = 1.0 - min(max(work_blocks, 0.0), 1.0)
        return max(v1 - f * (v2 - v1), 0.0), max(n1 - f * (n2 - n1), 0.0)

    def typical_interruptions(self, blocks_left: int, work_blocks: float, pod: int) -> float:
        """Expected interruptions from here, averaged over the floor's states as often as they occur
        (at this time of day, when the plan follows the daily phases): what the tolerance is held to,
        so the choice of price does not flip with every move of the floor."""
        mix = self.model.mix if self.model.mix is not None else np.full(self.model.levels + 1, 1 / (self.model.levels + 1))
        if self.clock_h is not None and self.model.phase_mix is not None:
            mix = self.model.phase_mix[self.model.phase_of(self.clock_h - blocks_left * self.model.step_h)]
        # `at`'s reading of every state at once: the same float64 products, summed by `sum` in the same
        # order (states that never occur are left out), so the figure is the per-state loop's to the bit.
        t, lo, hi, f, _ = self._cell(blocks_left, work_blocks)
        occur = np.flatnonzero(mix)
        counts = (self.interruptions[t, lo, occur, pod].astype(float) * (1 - f)
                  + self.interruptions[t, hi, occur, pod].astype(float) * f)
        return float(sum(mix[occur] * counts))  # numpy scalars, as the loop summed

    def actions_at(self, blocks_left: int, work_blocks: float, pod: int) -> np.ndarray:
        """The action of every floor state (as `at` reads it) for one pod."""
        t, _, _, _, act = self._cell(blocks_left, work_blocks)
        return self.action[t, act, :, pod]


def solve_plan(model: FloorModel, work_h: float, deadline_h: float, *, restart_h: float, speed: float = 1.0,
               interruption_cost: float = 0.0, cap: float = math.inf, first_row: int = 0,
               last_row: int | None = None, clock_h: float | None = None, interrupted_work: bool = False) -> Plan:
    """Backward induction of the job's plan on `model` (see the module docstring). Levels above `cap`
    are not bid; on-demand above it is not used (the deadline then rests on spot alone). Only the
    rows τ >= `first_row` are kept (a table for every τ of a 7-day plan is about 90 MB), and only the rows
    τ <= `last_row` are solved (None: up to the deadline's τ): backward induction works up from τ = 0,
    so every row solved is the same however far it goes, and a job already τ blocks from its deadline
    never reads a row above τ.

    Written for speed, with every table entry computed by the same floating-point operations in the
    same order as the plain vectorised form (analysis/benchmarks/bench_planner.py keeps that form and
    checks the tables are bit-identical): the working arrays are pod-major, [pod, w, k], so each
    option is one contiguous (W+1, K+1) matrix and all of a step's products with the transition
    matrix are one batched matmul (numpy calls the same gemm on each matrix of the batch as on it
    alone, so the products do not change).

    `clock_h`: the time of day (hours, UTC) of the plan's deadline (τ = 0). Given it and a model with
    daily phases, the step into the block starting at `clock_h - τ·step_h` uses that phase's
    transitions; without it, the all-day matrix (the plan then ignores the time of day)."""
    dt = model.step_h
    k = int(np.searchsorted(model.edges, cap, side="right")) if math.isfinite(cap) else model.levels
    n_states, n_pods = model.levels + 1, model.levels + 2
    od = model.on_demand
    od_ok = od <= cap
    edges = model.edges[:k]
    P_T = np.ascontiguousarray(model.trans.T)
    phased = clock_h is not None and model.phase_trans is not None
    if phased:
        phase_P_T = [np.ascontiguousarray(t.T) for t in model.phase_trans]  # type: ignore[union-attr]
    work_blocks = math.ceil(work_h / dt - 1e-9)
    horizon = max(1, math.ceil(deadline_h / dt - 1e-9))
    loss = restart_h * speed / dt  # blocks of work a restart loses
    W = work_blocks + math.ceil(loss) + 2
    wi = np.arange(W + 1, dtype=float)
    rows = W + 1

    def interpolation(x: np.ndarray, done: bool) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        """arr[..., x, :] at fractional rows x (linear; past the end the last slope continues; x <= 0
        is the finished job when `done`), into `out`. x is the same at every step, so its indices and
        weights are worked out once here."""
        lo = np.floor(x).astype(int)
        frac = (x - lo)[:, None]
        lo_c, hi_c = np.clip(lo, 0, W), np.clip(lo + 1, 0, W)
        omf = 1 - frac
        over = np.flatnonzero(x > W)
        beyond = (x[over] - W)[:, None]
        finished = np.flatnonzero(x <= 0) if done else over[:0]
        # Rows overwritten below (past the end, finished) need no interpolation. Of the others, the run
        # whose rows lo, hi are rows a + d, a + d + 1 (no clipping) reads two slices of arr instead of
        # gathering copies; the rest (if any) are gathered.
        rest = np.setdiff1d(np.arange(rows), np.union1d(over, finished))
        d = int(lo[rest[0]] - rest[0]) if len(rest) else 0
        run = rest[(lo[rest] == rest + d) & (lo[rest] >= 0) & (lo[rest] + 1 <= W)]
        a, b = (int(run[0]), int(run[-1]) + 1) if len(run) else (0, 0)
        if not np.array_equal(run, np.arange(a, b)):  # not one run: gather every row
            a = b = 0
        others = np.setdiff1d(rest, np.arange(a, b))
        # Weights as whole (rows, K+1) blocks, not columns: numpy then runs one long loop per matrix.
        omf_ab, frac_ab = (np.repeat(f[a:b], n_states, axis=1) for f in (omf, frac))
        scratch: dict[tuple[int, ...], np.ndarray] = {}

        def interp(arr: np.ndarray, out: np.ndarray) -> np.ndarray:
            if b > a:
                tmp = scratch.get(out.shape)
                if tmp is None:
                    tmp = scratch[out.shape] = np.empty_like(out)
                np.multiply(arr[..., a + d:b + d, :], omf_ab, out=out[..., a:b, :])
                out[..., a:b, :] += np.multiply(arr[..., a + d + 1:b + d + 1, :], frac_ab, out=tmp[..., a:b, :])
            if len(others):
                out[..., others, :] = arr[..., lo_c[others], :] * omf[others] + arr[..., hi_c[others], :] * frac[others]
            if len(over):
                out[..., over, :] = arr[..., W:, :] + (arr[..., W:, :] - arr[..., W - 1:W, :]) * beyond
            out[..., finished, :] = 0.0
            return out

        return interp

    run_interp = interpolation(wi - speed, True)  # a block of running does `speed` blocks of reference work
    loss_interp = interpolation(wi + loss, False)
    # `interrupted_work`: an interruption comes half-way through a block on average, when the pod has
    # done half a block of work; the restart then loses `loss` (a pod started in the block keeps no
    # less than nothing). Without it, the interrupted block keeps no work and a kept pod's loses `loss`.
    cut = speed / 2 - loss
    if not interrupted_work:
        keep_cut, cut = loss_interp, 0.0
    else:
        keep_cut = interpolation(wi - cut, cut > 0) if cut else None
    share = np.minimum(wi / speed, 1.0)[:, None]  # the share of a block paid when the job ends inside it
    # The tables are filled pod-major, [τ, pod, w, k], as the working arrays are (a transposing copy
    # of every step would cost more than the step), and returned as [τ, w, k, pod] views.
    top = horizon if last_row is None else min(max(last_row, first_row, 1), horizon)
    first_row = min(max(first_row, 0), top)
    kept = top + 1 - first_row
    action = np.zeros((kept, n_pods, W + 1, n_states), dtype=np.int8)
    value = np.zeros((kept, n_pods, W + 1, n_states), dtype=np.float32)
    count = np.zeros((kept, n_pods, W + 1, n_states), dtype=np.float16)
    # τ = 0 with work left: the deadline is missed.
    # Missing it at all costs more than the whole job on-demand, so no saving is worth the risk.
    miss = od * dt * (DEADLINE_PENALTY * wi + W)
    miss[0] = 0.0
    V = np.broadcast_to(miss[None, :, None], (n_pods, rows, n_states)).copy()  # [pod, w, k]
    N = np.zeros_like(V)
    if first_row == 0:
        value[0], action[0] = V, ON_DEMAND
    # (j, w, k'): k' <= j. Masks and weights are spelled out to full (j, w, k') blocks: broadcasting a
    # column makes numpy loop over rows of K+1 elements, several times slower.
    below = np.broadcast_to(np.arange(n_states)[None, None, :] <= np.arange(k)[:, None, None], (k, rows, n_states)).copy()
    no_start = np.where(below, -np.inf, np.inf)  # the floor must be at or under the level now to start there
    paid = np.repeat((edges * dt)[:, None, None] * share[None], n_states, axis=2)  # (j, W+1, k')
    half = (edges * dt / 2)[:, None, None] + interruption_cost
    wait_cost = WAIT_COST * od * dt
    od_paid = np.repeat(od * dt * share, n_states, axis=1)
    codes = (SPOT + np.arange(k, dtype=np.int8))[:, None, None]
    machine = model.machine_pause(k)
    pause = None if machine is None else machine[:, None, :]  # (j, 1, k'): broadcast over work
    # One step's inputs to the transition product, batched: [idle N, od N, start N (k), idle V, od V,
    # start V (k), keep V (k), keep N (k)]; the product's first 2 + k matrices are the fresh job's
    # expected interruptions per option and the next 2 + k (once priced) its expected costs.
    ins = np.empty((4 + 4 * k, rows, n_states))
    prod = np.empty_like(ins)
    s_n, s_v, k_v, k_n = slice(2, 2 + k), slice(4 + k, 4 + 2 * k), slice(4 + 2 * k, 4 + 3 * k), slice(4 + 3 * k, 4 + 4 * k)
    run_v, run_n, ok_v = np.empty((k, rows, n_states)), np.empty((k, rows, n_states)), np.empty((k, rows, n_states))
    lost_v, lost_n = np.empty((rows, n_states)), np.empty((rows, n_states))
    end_v, end_n = np.empty((rows, n_states)), np.empty((rows, n_states))
    all_n, all_v = prod[:2 + k], prod[2 + k:4 + 2 * k]
    newA = np.empty((n_pods, rows, n_states), dtype=np.int8)
    cells = np.arange(rows * n_states)
    spare = np.empty_like(V), np.empty_like(N)
    for tau in range(1, top + 1):
        idle_v, idle_n = V[0], N[0]
        ins[2 + k], ins[0] = idle_v, idle_n
        run_interp(V[1], ins[3 + k])
        run_interp(N[1], ins[1])
        if k:
            run_interp(V[SPOT:SPOT + k], run_v)
            run_interp(N[SPOT:SPOT + k], run_n)
            cut_v, cut_n = (idle_v, idle_n) if keep_cut is None else (keep_cut(idle_v, lost_v), keep_cut(idle_n, lost_n))
            start_v, start_n = (cut_v, cut_n) if cut > 0 else (idle_v, idle_n)
            np.add(paid, run_v, out=ok_v)
            # Start: paid + run where the next state is at or under the level, else interrupted.
            np.add(half, start_v, out=ins[s_v])
            np.add(1.0, start_n, out=ins[s_n])
            # Keep: the same, but an interruption loses the restart's work (counted: after half a block's).
            np.add(half, cut_v, out=ins[k_v])
            np.add(1.0, cut_n, out=ins[k_n])
            if pause is None:
                np.copyto(ins[s_v], ok_v, where=below)
                np.copyto(ins[s_n], run_n, where=below)
                np.copyto(ins[k_v], ok_v, where=below)
                np.copyto(ins[k_n], run_n, where=below)
            else:  # under the level too, the machine may pause it: ran with 1 - q, interrupted with q
                for part, ran in ((s_v, ok_v), (s_n, run_n), (k_v, ok_v), (k_n, run_n)):
                    np.copyto(ins[part], ran + pause * (ins[part] - ran), where=below)
        np.matmul(ins, phase_P_T[model.phase_of(clock_h - tau * dt)] if phased else P_T, out=prod)  # type: ignore[operator]
        all_v[0] += wait_cost
        od_v = all_v[1]
        if od_ok:
            np.add(od_paid, od_v, out=od_v)
        else:
            od_v.fill(np.inf)
        # inf where the floor is above the level, else as is (the tables hold no NaN)
        np.maximum(all_v[2:], no_start, out=all_v[2:])
        best = all_v.argmin(axis=0).astype(np.int8)
        fresh_v = all_v.min(axis=0)  # all_v[best]: the minimum is exact
        fresh_n = all_n.reshape(2 + k, -1)[best.ravel(), cells].reshape(rows, n_states)
        # Ending a pod (to switch or wait) loses the restart's work, then the job acts as a fresh one.
        # Ending a pod by choice is priced as an interruption would be: to the job it is the same restart.
        loss_interp(fresh_v, end_v)
        end_v += interruption_cost
        loss_interp(fresh_n, end_n)
        newV, newN = spare  # last step's tables are still read above: two sets of buffers, swapped
        newV[0], newN[0], newA[0] = fresh_v, fresh_n, best
        # A pod is kept when keeping costs no more than ending it. The tables hold no NaN (and no -0),
        # so the kept-or-ended cost, where(keep <= end, keep, end), is exactly minimum(keep, end).
        keep = od_v <= end_v
        np.minimum(od_v, end_v, out=newV[1])
        np.copyto(newN[1], np.where(keep, all_n[1], end_n))
        newA[1] = np.where(keep, ON_DEMAND, best)
        if k:
            keep_v, keep_n = prod[k_v], prod[k_n]
            keep = keep_v <= end_v
            np.minimum(keep_v, end_v, out=newV[SPOT:SPOT + k])
            newN[SPOT:SPOT + k] = end_n
            np.copyto(newN[SPOT:SPOT + k], keep_n, where=keep)
            # The action: best + keep * (code - best), exact in int8 (codes are under 127).
            acts = newA[SPOT:SPOT + k]
            np.subtract(codes, best, out=acts)
            acts *= keep
            acts += best
        # a pod above the cap is ended
        newV[SPOT + k:], newN[SPOT + k:], newA[SPOT + k:] = end_v, end_n, best
        newV[:, 0], newN[:, 0] = 0.0, 0.0
        spare, (V, N) = (V, N), (newV, newN)
        if tau >= first_row:
            value[tau - first_row] = V
            count[tau - first_row] = N
            action[tau - first_row] = newA
    return Plan(model=model, action=action.transpose(0, 2, 3, 1), value=value.transpose(0, 2, 3, 1),
                interruptions=count.transpose(0, 2, 3, 1), restart_h=restart_h, speed=speed,
                interruption_cost=interruption_cost, first_row=first_row, clock_h=clock_h if phased else None)


#: The plans kept between decisions (a backtest reuses a plan for every decision until the next refit,
#: and the next window reuses the days it shares with this one): a 100-hour, 7-day plan holds about
#: 90 MB. Measured on a 28-day synthetic trace at tolerance high: with 16 plans, 45 solves and 1.5 GB
#: for one market, 272 and 1.5 GB for four; with 8, 45 and 0.8 GB, 280 and 0.8 GB (same results).
#: 12 holds four markets' plans and their pool's at both interruption prices: with 8, the pool's plans
#: pushed the markets' out and every decision solved them again (a four-type job over 28 days ran for
#: over 20 minutes instead of 46 s). Where the tolerance binds, a decision also reads the plans of the
#: prices the budget's search tries (up to 8 more per market and pool): the plans the last decision and
#: this one read are kept beyond the 12 (AWS both zones at tolerance medium: a plain cache of 24 solved
#: them again at every decision, unfinished after 13 minutes; of 40, 7.7 minutes, 2,667 solves, 3.6 GB;
#: with this rule, 2,754 solves and 3.4 GB).
PLAN_CACHE_SIZE = 12
#: The keys of the plans `choose` read in its last call and reads in this one (never evicted).
_read_before: set[tuple] = set()
_read_now: set[tuple] = set()
_plans: OrderedDict[tuple, Plan] = OrderedDict()


def plan_for(model: FloorModel, work_h: float, deadline_h: float, *, restart_h: float, speed: float,
             interruption_cost: float, cap: float, clock_h: float | None = None, rows: int | None = None,
             interrupted_work: bool = False) -> Plan:
    """`solve_plan`, remembered for the last few (model, job shape) pairs: the same model and job give
    the same table, so solving it once per refit is enough. `rows`: the table must reach τ = rows (a
    job's τ only falls, so solving up to its τ now covers its later decisions; a remembered table too
    short for another job of the same shape is solved again, further)."""
    key = (id(model), round(work_h, 6), round(deadline_h, 6), restart_h, speed, interruption_cost, cap, clock_h,
           interrupted_work)
    plan = _plans.get(key)
    if plan is None or plan.model is not model or (rows is not None and plan.last_row < rows):
        plan = solve_plan(model, work_h, deadline_h, restart_h=restart_h, speed=speed,
                          interruption_cost=interruption_cost, cap=cap, clock_h=clock_h, last_row=rows,
                          interrupted_work=interrupted_work)
        _plans[key] = plan
        _read_now.add(key)
        # Least recently used first, but not a plan this decision or the last one read.
        spare = [k for k in _plans if k not in _read_now and k not in _read_before]
        for old in spare[:max(len(_plans) - PLAN_CACHE_SIZE, 0)]:
            del _plans[old]
    else:
        _plans.move_to_end(key)
        _read_now.add(key)
    return plan


#: The price of one interruption tried in turn (x the market's on-demand price per GPU-hour): the
#: first whose plan expects no more interruptions than the job may still have is the one followed.
#: With 0 alone, jobs near the tolerance at high flipped between the plan and the rates (synthetic
#: seed 12: 1.58x against 1.49x); (0, 0.5) does not (analysis/results/optimizer-pass4.md).
INTERRUPTION_PRICES: tuple[float, ...] = (0.0, 0.5)
#: Where neither fits, the price is the smallest of this grid whose plan does (when none does, the
#: rates decide): the tolerance as a budget and its price as a Lagrange multiplier, found for the job
#: as it stands. The steps are fine (about 1.2x): a coarse (2, 8) kept plans to 0.6-1.4 interruptions a
#: day of the 2 allowed and cost up to 0.57x the optimum more than the rates on synthetic markets
#: (pass 4), and (0.5, 1, 2, 4, 8) still cost more than the rates on the emulator's L40S and H100 at
#: tolerance medium (analysis/results/optimizer-pass9.md). The grid runs on to a day of on-demand per
#: interruption, where a plan keeps to on-demand and the safest bids: ended at 4 hours, it left 30% of
#: AWS us-east-1a's decisions at tolerance low to the rates, the weaker policy there
#: (analysis/results/optimizer-pass11.md).
BUDGET_PRICES: tuple[float, ...] = (0.6, 0.7, 0.85, 1.0, 1.2, 1.4, 1.7, 2.0, 2.4, 2.8, 3.4, 4.0,
                                    4.8, 5.8, 7.0, 8.4, 10.0, 12.0, 14.5, 17.0, 20.0, 24.0)
#: A running on-demand pod is ended to wait only when the wait's typical interruptions fit within the
#: interruptions allowed divided by this (a wait already begun needs them within the allowance itself): the
#: optimizer's `KEEP_MARGIN` for a running spot pod, the other way round. Without it, on the emulator's
#: RTX 4090 at tolerance medium a job whose wait fitted by a hair ended on-demand to wait, rented it again
#: a tick later when the wait no longer fitted, and so on.
LEAVE_ON_DEMAND_MARGIN = 1.1
#: Which plans count the half block of work an interrupted pod did before its restart (`solve_plan`'s
#: `interrupted_work`; the backtest engine keeps that work, as a job that checkpoints does):
#: "unpriced" the plans of `INTERRUPTION_PRICES`, followed where the tolerance does not bind, and not the
#: budget's search; "all"; "none". Counted everywhere (passes 5, 8, 11 and 12), plans were cheaper at
#: tolerance high on every job measured but dearer at medium on five of eight: where the budget binds,
#: counted plans ran a window of the emulator's RTX 4090 on-demand for 54 hours (5 with "none"),
#: 1.60x -> 1.78x the optimum. "unpriced" keeps high's gain (AWS us-east-1a 1.367 -> 1.337, the
#: emulator's H100 1.330 -> 1.298) and leaves every job measured at medium and low within 0.013 of
#: "none" but one it makes cheaper (synthetic seed 11 at medium, 1.604 -> 1.565; optimizer-pass12.md).
#: Pass 8's unpriced variant counted at price 0 alone and lost 0.10 on synthetic markets at high.
COUNT_INTERRUPTED_WORK = "unpriced"
#: The largest plan table (blocks to the deadline x blocks of work) solved: a 100-hour job with a
#: 7-day deadline is 69,000 cells (about 90 MB and 0.2 s to solve); longer jobs are left to the rates.
MAX_PLAN_CELLS = 100_000
#: Slack kept out of the plan's deadline (a decision interval or two).
PLAN_MARGIN_H = 0.5


@dataclass(frozen=True)
class MarketNow:
    """One market as the planner sees it now: its model, the highest floor of the last block (NaN: no
    capacity), the current floor (None: none), the job's speed on it, and what it bills per running
    GPU-hour besides the price (`storage`: Vast's disk; the plan's money counts it, so a market whose
    storage outweighs its cheaper floor is not chosen)."""

    model: FloorModel
    recent_max: float
    floor_now: float | None
    speed: float = 1.0
    members: tuple[int, ...] = ()  # a pool (see `pooled_model`): the markets it stands for
    storage: float = 0.0
    od_storage: float = 0.0  # what on-demand adds (its price may hold some storage already)
    # `storage` on spot at a bid: the offer that bid rents's (Vast's disks bill at each offer's own
    # price, `bidder.optimizer.storage_per_gpu_hour`). None: `storage` at any bid.
    spot_storage: Callable[[float], float] | None = None

    def storage_at(self, bid: float) -> float:
        """What a running GPU-hour bills besides the price on spot at `bid`."""
        return self.storage if self.spot_storage is None else self.spot_storage(bid)


@dataclass(frozen=True)
class PodNow:
    """The job's pod: index into the markets, "spot" or "on_demand", and its bid (spot)."""

    market: int
    kind: str
    bid: float | None = None


@dataclass(frozen=True)
class Choice:
    """What the plan does now. `action`: keep | wait | spot | on_demand; `expected_cost` USD per GPU for
    the rest of the work; `expected_interruptions` for the rest of the window; `start_below` (wait):
    the floor under which the plan would start spot soonest; `start_after_h` (wait): how long the floor
    must have stayed at or below it first (the state window `recent_max` reads; 0: the floor now)."""

    action: str
    market: int | None
    bid: float | None
    expected_cost: float
    expected_interruptions: float
    interruption_price: float
    start_below: float | None = None
    pool: tuple[int, ...] = ()  # followed the plan of the pool of these markets (empty: of `market` alone)
    start_after_h: float = 0.0


def choose(markets: Sequence[MarketNow], *, work_h: float, window_h: float, work_left_h: float,
           time_left_h: float, restart_h: float, pod: PodNow | None, interruptions_allowed: float,
           cap: float = math.inf, whole_table: bool = True, clock_h: float | None = None,
           reserve_h: float = 0.0) -> Choice | None:
    """The planned action now over every market. The job's plans are solved for its whole size
    (`work_h` by `window_h`) and looked up at its current state, once per interruption price, cheapest
    first (`INTERRUPTION_PRICES`, then a search of `BUDGET_PRICES`), until one keeps the expected
    interruptions within `interruptions_allowed`. None: no market
    has a model, or no price keeps them within it (the rates then decide). `whole_table`: keep each
    plan's whole table in `plan_for`'s cache for later decisions (a backtest); else solve it for this
    decision alone and keep only the row of now (tick, recommend, launch: a process per decision).
    `clock_h`: the time of day now (hours, UTC), for models with daily phases (None: plans ignore it).

    Markets are planned cheapest bound first, and a market whose bound (all the work left at its
    cheapest price, no restarts) is above the best plan found is not planned at all: with many
    markets, most are skipped without changing the choice. Markets of the same speed are also planned
    as a pool (see the module docstring); the choice then names the market it acts on and `pool`.

    `reserve_h`: a running spot pod is not stopped to wait or moved to spot on another market, nor an
    on-demand pod moved to on-demand no cheaper, when the restart would leave less slack than this
    (the rates' on-demand reserve); the pod is kept. Near the deadline the plan's values are all
    penalty edge (its blocks are half an hour, the decisions five minutes apart, and it counts a pod
    a few minutes old as losing a whole restart): on the AWS trace at tolerance low two zones' plans
    each found the other zone's fresh start cheaper than keeping, and the job moved every five
    minutes, losing each run's work, until it missed its deadline. A spot pod may still be re-bid in
    place or replaced by on-demand, and on-demand by spot: a job of 2 hours in 3 has no more slack
    than the reserve, and its re-bid when the cheap hours come is most of what it saves; but not
    on-demand by spot when the restart would leave less slack than one more restart (`restart_h`).
    A running on-demand pod is ended to wait only for a plan whose typical interruptions fit within
    `interruptions_allowed / LEAVE_ON_DEMAND_MARGIN`; the search then goes on to dearer prices, whose
    plans keep it or wait with fewer interruptions."""
    if whole_table:  # a new decision: the plans the last one read are kept through this one
        _read_before.clear()
        _read_before.update(_read_now)
        _read_now.clear()
    usable = [i for i, m in enumerate(markets) if m.model is not None]
    if not usable:
        return None
    step = markets[usable[0]].model.step_h
    if (window_h / step + 1) * (work_h / step + 4) > MAX_PLAN_CELLS:
        return None  # too long a job for one table: the rates decide
    options = [*markets, *_pools_of(markets, usable)]
    # Vast's markets (machine pauses known): bid levels that buy fewer pauses too.
    options = [o if o.model is None or o.model.machine_rates is None else replace(o, model=pause_levels(o.model))
               for o in options]
    usable += range(len(markets), len(options))
    members = {i: options[i].members or (i,) for i in usable}
    work = {}
    for i in usable:
        work[i] = work_left_h / options[i].model.step_h
        if pod is not None and pod.market not in members[i]:  # moving here ends the pod elsewhere: its restart's work is lost
            work[i] += restart_h * markets[pod.market].speed / options[i].model.step_h
    # The time of day of the plans' deadline (τ = 0 is PLAN_MARGIN_H before the job's): fixed for a
    # job, so a backtest's plan is reused until the next refit (to the minute, against float drift).
    deadline_clock = None if clock_h is None else round((clock_h + time_left_h - PLAN_MARGIN_H) * 60) % 1440 / 60
    bounds = {i: _cost_bound(options[i], work[i], cap) for i in usable}
    order = sorted(usable, key=lambda i: (bounds[i], i))

    def planned_at(price: float) -> Choice | None:
        """The best plan over every market with interruptions at `price`, if its typical interruptions
        fit what is allowed (None: no plan, or it expects more)."""
        best, best_rank, best_i, held = None, math.inf, -1, None
        counted = COUNT_INTERRUPTED_WORK == "all" or (COUNT_INTERRUPTED_WORK == "unpriced"
                                                      and price in INTERRUPTION_PRICES)
        for i in order:
            if best is not None and bounds[i] > best_rank * (1 + 1e-6):
                break  # this market (and every later one) cannot beat the best plan
            m = options[i]
            here = pod is not None and pod.market in members[i]
            model = m.model
            dt = model.step_h
            icost = price * model.on_demand  # per interruption: `price` hours of on-demand
            blocks = (time_left_h - PLAN_MARGIN_H) / dt
            tau = math.floor(blocks)
            w = work[i]
            ahead = (blocks - tau) * m.speed if here else 0.0
            if ahead:
                # Between two block boundaries the plan's row is the boundary's below, as if the rest of
                # this block were lost; a running pod works through it, so it is read at the next
                # boundary, kept to it (and ending it now is read from the row below as it stands, with
                # its restart). Read as lost, the rest took up to a block of the job's slack five minutes
                # after each boundary and gave it back at the next: a 2-hour job due in 3 started spot at a
                # boundary, found its kept pod near its deadline's penalty 5 minutes later and moved to
                # on-demand, a restart lost (the emulator's RTX 4090 and L40S: 1.04x on-demand).
                w = max(w - ahead, 0.0)
            if w > tau * m.speed + 1e-9:
                # Not even every block to the plan's deadline (PLAN_MARGIN_H early) does the work: every
                # value here holds the miss penalty (10 h in 10 h on-demand read as $10.23, not $3.30).
                continue
            if whole_table:
                plan = plan_for(model, work_h, window_h, restart_h=restart_h, speed=m.speed,
                                interruption_cost=icost, cap=cap, clock_h=deadline_clock, rows=tau,
                                interrupted_work=counted)
            else:
                plan = solve_plan(model, work_h, window_h, restart_h=restart_h, speed=m.speed,
                                  interruption_cost=icost, cap=cap, first_row=tau, clock_h=deadline_clock,
                                  interrupted_work=counted)
            loss = restart_h * m.speed / dt  # blocks of work a restart of a pod here loses
            state = model.state_of(m.recent_max)  # a pool's: its calmest market's
            mode = 0
            if here:
                mode = 1 if pod.kind == "on_demand" else SPOT + max(model.level_of_bid(pod.bid or 0.0), 0)
            restart = False  # a pool's pod ended for a fresh start, read in the calmest market's state
            if here and w <= 1e-9:  # the pod finishes before the block ends (the table's rows hold no keep there)
                code, cost, expected = mode, work[i] * dt / m.speed * (markets[pod.market].model.on_demand
                                                                        if mode == ON_DEMAND else pod.bid or 0.0), 0.0
            elif here:
                # Kept, or ended now for a fresh start. A pod of a pool runs on one of its markets: kept (or
                # ended), it lives in that market's state; a fresh start after ending it goes to the
                # calmest. Read in the calmest state alone, a pod on a spiking market looked safe to keep,
                # and a job on synthetic seed 12 ran its last two days on-demand (2.30x the optimum,
                # against 1.94x without pools).
                code, cost, expected = plan.at(tau, w, model.state_of(markets[pod.market].recent_max)
                                               if m.members else state, mode)
                if m.members or ahead:  # kept (to the boundary, then as the plan says there), or ended now
                    rest_h = ahead / m.speed * dt  # kept, the pod is paid to the boundary
                    cost += rest_h * (markets[pod.market].model.on_demand if mode == ON_DEMAND else pod.bid or 0.0)
                    fresh = plan.at(tau, work[i] + loss, state, 0)
                    if (fresh[0] != WAIT or not m.members) and fresh[1] + icost < cost:  # ending is priced as an interruption
                        (code, cost, expected), restart = fresh, True
                        cost += icost
                    elif ahead:
                        code = mode
            else:
                code, cost, expected = plan.at(tau, w, state, mode)
            if here and mode == ON_DEMAND and code != mode and work[i] < 1.0 - 1e-9:
                # The last block of work on on-demand: ended (to wait, or for spot), the rest costs the
                # restart's work too, which the table's whole-block rows cannot show for a fraction of
                # one; kept, it costs that fraction on-demand. A 10-hour job with 5 minutes left ended
                # its on-demand pod to wait for spot and paid a 15-minute restart to finish (tolerance
                # low on three synthetic seeds: 1.004-1.008x on-demand).
                ended, _ = plan.last_block(tau, work[i], model.state_of(markets[pod.market].recent_max) if m.members
                                           else state, mode)
                kept = model.on_demand * dt * work[i] / m.speed
                if kept <= ended + 1e-12:
                    code, cost, expected, restart = mode, kept, 0.0, False
            cost -= icost * expected  # the plan's money, without the interruption price
            target = _target(code, 0 if restart else mode, members[i], markets, pod, model)
            # Each running hour of the work left bills it too. A pool's is its dearest member's: its plan
            # may act on any of them later (read where it acts now, a wait on a RunPod market of a pool
            # with Vast counted none and waited for floors only Vast's storage made cheap).
            # (Spot and on-demand on one market differ in storage by what on-demand's price holds, a few
            # GB: the plan's choice between them leaves that out; its money counts the one it chose.)
            # A spot run's is that of the offer its bid rents (a pool's: its dearest member's, as above).
            storage = (m.od_storage if code == ON_DEMAND else m.storage_at(float(model.edges[code - SPOT]))
                       if code >= SPOT else m.storage)
            if storage:
                cost += storage * w * dt / m.speed
            keeps = code == mode and mode and target == pod.market
            reserved = pod is not None and not keeps and _held_in_reserve(code, target, pod, markets)
            # On-demand, which finishes in time, is not left for spot when the restart would leave less
            # slack than one more restart: the first interruption would then miss the deadline, and
            # the next decision hands the job back to on-demand, losing another restart (AWS both
            # zones at tolerance low once finished 5 minutes late that way; optimizer-pass5.md).
            bare = pod is not None and not keeps and pod.kind == "on_demand" and code >= SPOT
            if reserved or bare:
                # Not when its restart eats the reserve (or, leaving on-demand for spot, the slack).
                lost = loss if mode else 0.0  # moving here: the loss is already in w
                if time_left_h - (work[i] + lost) * dt / m.speed < (reserve_h if reserved else restart_h):
                    if not mode:
                        continue  # the pod is elsewhere: this market is not an option now
                    code, target, keeps = mode, pod.market, True  # the pod is here: keep it (ranked by the state's value, the plan's best)
            if keeps:
                choice = Choice("keep", target, pod.bid if pod else None, cost, expected, price)
            elif code == WAIT:
                # The highest floor state under which the plan would start now: it waits for that.
                starts = np.flatnonzero(plan.actions_at(tau, w, 0)[:state] >= SPOT)
                # (It starts once the state, the highest floor of the state window, is that low.)
                choice = Choice("wait", target, None, cost, expected, price,
                                start_below=float(model.edges[starts[-1]]) if len(starts) else None,
                                start_after_h=state_window_h(model.step_h))
            elif code == ON_DEMAND:
                choice = Choice("on_demand", target, None, cost, expected, price)
            else:
                bid = float(model.edges[code - SPOT])
                floor_now = markets[target].floor_now
                if floor_now is None or not floor_now <= bid:
                    choice = Choice("wait", target, None, cost, expected, price, start_below=bid)
                else:
                    choice = Choice("spot", target, bid, cost, expected, price)
            if m.members:
                choice = replace(choice, pool=m.members)
            rank = cost + icost * expected
            if pod is not None and not here:
                rank += icost  # moving ends the pod: priced as the plan prices ending it
            if best is None or rank < best_rank or (rank == best_rank and i < best_i):  # ties: first market
                ended = mode and choice.action != "keep"  # ending the pod now: the work it would do to the boundary is not done
                best, best_rank, best_i, held = choice, rank, i, (plan, tau, *_after(choice, model, work[i] if ended else w,
                                                                                     mode, loss))
        # The tolerance is held to the best market's typical interruptions (read once, for it alone). A
        # running on-demand pod is ended to wait only when the wait fits with `LEAVE_ON_DEMAND_MARGIN`
        # to spare (a Schmitt trigger): a wait that fits by a hair stops fitting a tick later, and the
        # job rents on-demand again, a restart lost each time.
        allowed = interruptions_allowed
        if best is not None and pod is not None and pod.kind == "on_demand" and best.action == "wait":
            allowed /= LEAVE_ON_DEMAND_MARGIN
        if best is not None and held is not None and held[0].typical_interruptions(*held[1:]) <= allowed + 1e-9:
            return best
        return None

    for price in INTERRUPTION_PRICES:
        choice = planned_at(price)
        if choice is not None:
            return choice
    # The tolerance binds: the smallest price of the grid whose plan fits (a dearer price expects fewer
    # interruptions), found by galloping up the grid (1, 2, 4... rungs at a time: a price at the cheap
    # end costs one or two plans) and halving the last gap. None fits: the rates decide.
    grid, lo, hi, found, step = BUDGET_PRICES, -1, -1, None, 1
    while found is None and lo < len(grid) - 1:
        hi = min(lo + step, len(grid) - 1)
        found = planned_at(grid[hi])
        if found is None:
            lo, step = hi, step * 2
    if found is None:
        return None  # no plan keeps the interruptions within what is left: the rates decide
    while hi - lo > 1:
        mid = (lo + hi) // 2
        choice = planned_at(grid[mid])
        if choice is None:
            lo = mid
        else:
            hi, found = mid, choice
    return found


def _pools_of(markets: Sequence[MarketNow], usable: Sequence[int]) -> list[MarketNow]:
    """A pool (`pooled_model`) of every set of two or more markets the job runs on at the same speed:
    one more option beside each market alone. Its state now is its calmest market's. Markets whose
    machines pause a pod the floor does not show (Vast's) pool only with each other: a pool prices
    every start at its worst member's pauses, and a RunPod start has none."""
    groups: dict[tuple[float, bool], list[int]] = {}
    for i in usable:
        groups.setdefault((markets[i].speed, markets[i].model.machine_rates is not None), []).append(i)
    pools = []
    for (speed, _), group in groups.items():
        model = pooled_model([markets[i].model for i in group]) if len(group) > 1 else None
        if model is not None:
            pools.append(MarketNow(model, min(markets[i].recent_max for i in group), None, speed, tuple(group),
                                   storage=max(markets[i].storage for i in group),
                                   od_storage=max(markets[i].od_storage for i in group)))
    return pools


def _target(code: int, mode: int, members: tuple[int, ...], markets: Sequence[MarketNow], pod: PodNow | None,
            model: FloorModel) -> int:
    """The market action `code` is carried out on, of a pool's `members` (one market: that one): the
    pod's own when it is kept; on-demand on the cheapest; spot on the calmest whose floor is under the
    bid (none: the calmest, which the job waits for); a wait on the calmest."""
    if len(members) == 1:
        return members[0]
    if code == mode and mode and pod is not None:
        return pod.market
    if code == ON_DEMAND:
        return min(members, key=lambda i: (markets[i].model.on_demand, i))
    calmest = sorted(members, key=lambda i: (markets[i].recent_max, i))
    if code >= SPOT:
        bid = float(model.edges[code - SPOT])
        under = [i for i in calmest if markets[i].floor_now is not None and markets[i].floor_now <= bid]
        if under:
            return under[0]
    return calmest[0]


def _after(choice: Choice, model: FloorModel, work_blocks: float, mode: int, loss: float) -> tuple[float, int]:
    """The job's (work left, pod) once `choice` ends its running pod (for another, or to wait): the
    state the next decision will check the tolerance in. Checked in the pod it had, a job on on-demand
    near its end passed a switch to spot whose restart then put it over the budget: the next decision
    handed it back to on-demand, losing a restart each time, until the deadline forced on-demand (a
    10-hour job on a market whose floor spikes above on-demand paid 1.3x on-demand)."""
    if choice.action == "keep" or not mode:  # no pod here to end
        return work_blocks, mode
    after = {"wait": 0, "on_demand": ON_DEMAND}.get(choice.action)
    if after is None:  # spot at the choice's bid
        after = SPOT + max(model.level_of_bid(choice.bid or 0.0), 0)
    return work_blocks + loss, after  # ending the running pod loses its restart's work


def _held_in_reserve(code: int, market: int, pod: PodNow, markets: Sequence[MarketNow]) -> bool:
    """Whether action `code` on `market` is one the reserve holds back (see `choose`): it stops the
    running spot pod to wait or moves it to spot on another market, or moves the on-demand pod to
    on-demand no cheaper per unit of work."""
    if pod.kind == "spot":
        return code == WAIT or (code >= SPOT and pod.market != market)
    here, there = markets[market], markets[pod.market]
    return code == ON_DEMAND and not here.model.on_demand / here.speed < there.model.on_demand / there.speed * (1 - 1e-9)


def _cost_bound(market: MarketNow, work_blocks: float, cap: float) -> float:
    """A lower bound on any plan's cost on `market` (USD per GPU): every block of work is paid at least
    the cheapest price the plan may pay; restarts, interruptions and waiting only add (0: no price
    under the cap, no bound)."""
    model = market.model
    prices = [float(p) for p in model.edges if p <= cap]
    if model.on_demand <= cap:
        prices.append(model.on_demand)
    return min(prices) * model.step_h * work_blocks / market.speed if prices else 0.0
