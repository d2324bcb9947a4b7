"""Market statistics of one spot market (market × GPU type × cloud/tier × GPU count) from its floor history.

For a bid `b` on a fixed price grid, from the spot floor series (a step function: each sample holds
until the next one; NaN = no spot capacity, which no bid can run on):

    A(b)        availability: share of observed time with floor <= b (a pod bidding b could run);
    λ(b)        interruption rate per running hour: upcrossings of b by the floor per hour spent at
                or below b (an upper confidence bound when events are few), plus a reclaim rate no
                bid avoids (a prior, `reclaim_rate_per_hour`);
    W(b)        mean wait to get back under b once outbid (mean excursion above b);
    R(b)        mean uninterrupted run length at b;
    λ(b | a)    the hazard of a run that has already lasted `a` (the floor has stayed <= b for a):
                real bid markets are bursty (a spike comes back several times within minutes, then
                calm lasts hours), so the hazard falls with the age of the calm; this is what tells
                the optimizer to let a spike settle before it restarts.

Run lengths and waits are kept as histograms on doubling age bins (5 min, 10 min, ... 85 h), so
quantiles and conditional hazards come from them. Recent history weighs more: every time and event
carries the weight 2^(-(now - t) / half_life). Small samples are honest: rates are the upper
confidence bound of a Poisson rate with k (weighted) events in X (weighted) hours, the gamma quantile
`Γ⁻¹(c; k + 1) / X` in the Wilson–Hilferty form (within 1% of scipy's for k >= 0, no scipy call on
the hot path), so a market that showed no spike in two hours does not look safe for a week.

`FloorTracker.update` is O(1) per sample for the time and event sums (difference arrays over the
grid, summed once per `stats`) and O(levels crossed) for the run/wait histograms; `stats(now)` is
O(grid × age bins); `stats_of(trackers, now)` gives several markets' at once (the same numbers).
`market_stats` computes the same numbers from a whole `FloorSeries` at once (vectorised) and agrees
with feeding the tracker sample by sample (a test checks it).
"""

from __future__ import annotations

import bisect
import functools
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from bidder.errors import InsufficientHistory
from bidder.models import (  # (SILENCE_MIN_HOURS: the store's too)
    DEFAULT_MARKET,
    SILENCE_MIN_HOURS,
    MarketKey,
    market_key,
)
from bidder.planner import FloorModel, fit_floor_model, recent_max

__all__ = [
    "AGE_EDGES_HOURS",
    "AGE_PRIOR_EVENTS",
    "DEFAULT_CONFIDENCE",
    "DEFAULT_HALF_LIFE_HOURS",
    "DEFAULT_MAX_GAP_HOURS",
    "DEFAULT_MIN_SAMPLES",
    "DEFAULT_MIN_SPAN_HOURS",
    "DEFAULT_RECLAIM_RATE_PER_HOUR",
    "RELATIVE_GRID",
    "SILENCE_LOOKBACK_HOURS",
    "SILENCE_MIN_HOURS",
    "FloorTracker",
    "MarketStats",
    "SilenceLog",
    "bid_grid",
    "longest_silence_hours",
    "market_stats",
    "poisson_rate_upper",
    "stats_of",
]

#: Recency half-life: a week-long storm still counts, last month's calm fades.
DEFAULT_HALF_LIFE_HOURS = 72.0
#: Reclaims no bid avoids (the provider takes the machine back): a small, non-zero prior.
DEFAULT_RECLAIM_RATE_PER_HOUR = 0.01
#: One-sided confidence of the upper bound on rates.
DEFAULT_CONFIDENCE = 0.8
#: An interval between samples longer than this counts only this long (the collector was down).
DEFAULT_MAX_GAP_HOURS = 1.0
#: Silences that ended this long before now are forgotten (a host down once a month is not down now).
SILENCE_LOOKBACK_HOURS = 168.0
#: Less history than this raises InsufficientHistory.
DEFAULT_MIN_SAMPLES = 12
DEFAULT_MIN_SPAN_HOURS = 1.0
#: A history whose last sample is older than this (before `now`) is too stale to describe the market.
DEFAULT_MAX_STALENESS_HOURS = 24.0

#: Bid levels relative to the reference (on-demand) price: fine (1%) through the band where floors
#: live and bids pay off, coarser above on-demand (only spikes live there).
RELATIVE_GRID: np.ndarray = np.unique(np.round(np.concatenate([
    np.arange(0.05, 0.20, 0.01),
    np.arange(0.20, 0.80, 0.01),
    np.arange(0.80, 1.00, 0.02),
    np.arange(1.00, 1.5001, 0.05),
]), 6))

#: Strength, in events, of the prior that ties each age's hazard to the previous age's.
AGE_PRIOR_EVENTS = 1.0

#: Age bins (hours) for run lengths and waits: doubling from 5 minutes; the last bin is open.
AGE_EDGES_HOURS: np.ndarray = np.array([0.0] + [5 / 60 * 2 ** i for i in range(11)])
_AGE_EDGES = AGE_EDGES_HOURS.tolist()  # for bisect on one length

_RESCALE_AT = 40.0  # renormalise decayed sums before exp() gets large


def bid_grid(reference_price: float) -> np.ndarray:
    """The absolute bid grid (USD per GPU-hour) of a market whose on-demand price is `reference_price`."""
    if not (reference_price > 0 and math.isfinite(reference_price)):
        raise ValueError(f"reference price must be a positive number, got {reference_price!r}")
    return np.round(RELATIVE_GRID * reference_price, 6)


@functools.lru_cache(maxsize=8)
def _z_score(confidence: float) -> float:
    from statistics import NormalDist  # stdlib, cheap; scipy stays off the import path of a cron tick

    return NormalDist().inv_cdf(confidence)


def poisson_rate_upper(events: np.ndarray | float, exposure: np.ndarray | float,
                       confidence: float = DEFAULT_CONFIDENCE) -> np.ndarray:
    """Upper confidence bound of a Poisson rate: Γ⁻¹(confidence; events + 1) / exposure.

    Wilson–Hilferty approximation of the gamma quantile; `events` may be fractional (weighted).
    Zero exposure gives +inf (nothing is known).
    """
    k = np.asarray(events, dtype=float) + 1.0
    x = np.asarray(exposure, dtype=float)
    z = _z_score(confidence)
    quantile = k * (1.0 - 1.0 / (9.0 * k) + z / (3.0 * np.sqrt(k))) ** 3
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > 0, quantile / np.where(x > 0, x, 1.0), np.inf)


def _gamma_upper(shape: np.ndarray, rate: np.ndarray, confidence: float, *, shape_at_least_one: bool = False
                 ) -> np.ndarray:
    """Upper `confidence` quantile of a Gamma(shape, rate) (Wilson–Hilferty); +inf where rate is 0.
    `shape_at_least_one`: every shape is >= 1, so neither clamp below can bind (with confidence >= 0.5,
    the base is >= 8/9): both are skipped, the same numbers in two numpy calls fewer."""
    z = _z_score(confidence)
    if shape_at_least_one:
        base = 1.0 - 1.0 / (9.0 * shape) + z / (3.0 * np.sqrt(shape))
    else:
        shape = np.maximum(shape, 1e-9)
        base = np.maximum(1.0 - 1.0 / (9.0 * shape) + z / (3.0 * np.sqrt(shape)), 0.0)
    quantile = shape * (base * base * base)  # (`** 3` calls pow(): 10x slower on these small arrays)
    upper = np.full_like(quantile, np.inf)  # (a `where=` divide: no errstate to enter, no mask to invert)
    np.divide(quantile, rate, out=upper, where=rate > 0)
    return upper


def _age_hazard_bounds(events: np.ndarray, exposure: np.ndarray, confidence: float) -> np.ndarray:
    """Upper bounds on λ(b | age >= a_j), each age shrunk toward the one before it.

    Age 0 is the plain Poisson bound Γ⁻¹(c; k + 1) / X. Each longer age starts from a Gamma prior
    worth AGE_PRIOR_EVENTS events at the previous age's posterior mean and adds its own events and
    exposure: where long calms are rare (a few runs, little exposure), the bound stays near the
    shorter age's instead of blowing up; where they are common, the data decide, whether the hazard
    falls with age (bursty spikes) or rises (a regular cycle).
    """
    shapes = AGE_PRIOR_EVENTS + events  # (events >= 0: weighted counts)
    if AGE_PRIOR_EVENTS != 1.0:
        shapes[:, 0] = events[:, 0] + 1.0
    # Age by age down the columns, as lists of column views made once (indexing per step costs numpy more).
    rates = exposure.T.copy()
    rate_cols, shape_cols = list(rates), list(shapes.T)
    for j in range(1, len(rate_cols)):
        # prior worth n0 events at the previous age's posterior mean: rate n0 / mean (1 · r is r, exactly)
        prior = rate_cols[j - 1] if AGE_PRIOR_EVENTS == 1.0 else AGE_PRIOR_EVENTS * rate_cols[j - 1]
        rate_cols[j] += prior / shape_cols[j - 1]
    return _gamma_upper(shapes, rates.T, confidence, shape_at_least_one=AGE_PRIOR_EVENTS >= 1.0 and confidence >= 0.5)


def _rate_at(premiums: np.ndarray, rates: np.ndarray, premium: np.ndarray) -> np.ndarray:
    """`rates` at each premium: the grid's at the largest premium at or under it (under the grid: the
    lowest premium's)."""
    i = np.clip(np.searchsorted(premiums, premium + 1e-12, side="right") - 1, 0, len(premiums) - 1)
    return rates[i]


@dataclass(frozen=True, eq=False)
class MarketStats:
    """Statistics of one market at time `now` (epoch seconds), vectorised over the bid grid `bids`.

    Rates are per running hour; times in hours; prices USD per GPU-hour. Sums are recency-weighted,
    so `outbid_events` and `running_hours` are effective (weighted) sample sizes; `samples` is the raw
    number of samples seen and `span_hours` the time they cover.

    `hazard_by_age[i, j]`: interruption rate at bid `bids[i]` for a run that has already lasted at
    least `age_edges_hours[j]` (upper-bounded, each age shrunk toward the shorter one where its data
    is thin, reclaim included), from `events_by_age` (weighted runs
    that outlived that age) over `exposure_by_age` (weighted hours of calm beyond it, so
    `exposure_by_age / observed_hours` is the share of time a pod that waits for that much calm before
    starting could run); `calm_hours[i]`: how long the floor
    has stayed at or below `bids[i]` up to now (0 when it is above); `excursion_hours[i]` how long it has
    been above `bids[i]` (0 when it is at or below). `run_counts`/`run_hours` and
    `wait_counts`/`wait_hours` are the weighted histograms (count, summed length) of completed runs
    and completed waits on the age bins: bin j holds lengths in (edges[j], edges[j+1]].
    `availability`, `interruption_rate`, `outbid_rate`, `mean_wait_hours` and `mean_run_hours` are
    computed from `running_hours`, `outbid_events` and `observed_hours` when first read.
    """

    gpu_type_id: str
    cloud: str
    gpu_count: int
    bids: np.ndarray
    samples: int
    span_hours: float
    floor_now: float | None
    on_demand_now: float | None
    now: float
    outbid_events: np.ndarray
    running_hours: np.ndarray
    observed_hours: float
    calm_hours: np.ndarray
    excursion_hours: np.ndarray
    age_edges_hours: np.ndarray
    hazard_by_age: np.ndarray
    events_by_age: np.ndarray
    exposure_by_age: np.ndarray
    run_counts: np.ndarray
    run_hours: np.ndarray
    wait_counts: np.ndarray
    wait_hours: np.ndarray
    reclaim_rate: float
    half_life_hours: float | None
    confidence: float
    market: str = DEFAULT_MARKET
    #: The floor's price-state model for plans (`bidder.planner`), when the market quotes on-demand.
    floor_model: FloorModel | None = None
    #: The highest floor of the model's last block (NaN: no capacity in it): the floor's state now.
    recent_max: float = math.nan
    #: The longest silence (no priced sample for at least SILENCE_MIN_HOURS: none taken, or none with a
    #: floor or an on-demand price) that ended in the last SILENCE_LOOKBACK_HOURS, or the time since the
    #: last priced sample if longer; 0 when there was none.
    longest_silence_hours: float = 0.0
    #: Pauses per running hour at each bid that the floor does not show (Vast: outbid or displaced on
    #: the pod's own machine, `bidder.machine_hazard`), already in `hazard_by_age`; None: none known.
    machine_rate: np.ndarray | None = None
    #: The pause rate per running hour by bid premium over a machine's own floor that `machine_rate` was
    #: read from (`bidder.machine_hazard`): for a running pod whose machine's minimum bid is known.
    pause_premiums: np.ndarray | None = None
    pause_rates: np.ndarray | None = None

    @property
    def key(self) -> MarketKey:
        """This market's key in stats dicts (`bidder.models.market_key`)."""
        return market_key(self.gpu_type_id, self.cloud, self.gpu_count, self.market)

    # The per-bid rates below derive from the weighted sums on first use (the optimizer reads only the
    # hazards; a backtest asks for statistics at every step).

    @functools.cached_property
    def availability(self) -> np.ndarray:
        """A(b): share of observed time with the floor at or below each bid."""
        below, observed = self.running_hours, self.observed_hours
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(observed > 0, below / observed, 0.0) if observed > 0 else np.zeros_like(below)

    @functools.cached_property
    def interruption_rate(self) -> np.ndarray:
        """λ(b) per running hour: the upper bound on the outbid rate, plus the reclaim rate (and the
        pauses on the pod's own machine, where known)."""
        rate = poisson_rate_upper(self.outbid_events, self.running_hours, self.confidence) + self.reclaim_rate
        return rate if self.machine_rate is None else rate + self.machine_rate

    def with_machine_pauses(self, premiums: np.ndarray, rates: np.ndarray) -> MarketStats:
        """These statistics with the pauses the floor does not show (`rates` per running hour at bid
        `premiums` over the floor now: `bidder.machine_hazard`) added to every hazard, and to the floor
        model's plans."""
        floor = self.floor_now if self.floor_now is not None and self.floor_now > 0 else None
        premium = np.zeros_like(self.bids) if floor is None else self.bids / floor - 1.0
        extra = _rate_at(premiums, rates, premium)
        model = None if self.floor_model is None else replace(self.floor_model, machine_premiums=premiums,
                                                              machine_rates=rates)
        return replace(self, hazard_by_age=self.hazard_by_age + extra[:, None], machine_rate=extra, floor_model=model,
                       pause_premiums=premiums, pause_rates=rates)

    def pause_rate_over(self, bid: float, machine_min_bid: float) -> float | None:
        """The pauses per running hour of a pod bidding `bid` on a machine whose own minimum bid is
        `machine_min_bid` (per GPU), where `machine_rate` reads every bid over the market's floor now
        (the cheapest offer listed, the machine a new pod rents). None: no machine pauses known."""
        if self.pause_premiums is None or self.pause_rates is None or not machine_min_bid > 0:
            return None
        return float(_rate_at(self.pause_premiums, self.pause_rates, np.asarray([bid / machine_min_bid - 1.0]))[0])

    @functools.cached_property
    def outbid_rate(self) -> np.ndarray:
        """Upcrossings per running hour (the point estimate; +inf where the floor was never under the bid)."""
        below, up = self.running_hours, self.outbid_events
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(below > 0, up / np.where(below > 0, below, 1.0), np.inf)

    @functools.cached_property
    def mean_wait_hours(self) -> np.ndarray:
        """W(b): mean excursion above each bid (0 if the floor never went above it, +inf if it never came back)."""
        up = self.outbid_events
        above = np.maximum(self.observed_hours - self.running_hours, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(up > 0, above / np.where(up > 0, up, 1.0), np.where(above > 0, np.inf, 0.0))

    @functools.cached_property
    def mean_run_hours(self) -> np.ndarray:
        """R(b): mean uninterrupted run at each bid (+inf without an outbid)."""
        below, up = self.running_hours, self.outbid_events
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(up > 0, below / np.where(up > 0, up, 1.0), np.inf)

    def index_of(self, bid: float) -> int:
        """Index of the highest grid level at or below `bid` (-1 if `bid` is under the grid)."""
        return int(np.searchsorted(self.bids, bid + 1e-12, side="right")) - 1

    def age_index(self, age_hours: np.ndarray | float) -> np.ndarray:
        """Age bin whose lower edge is the largest at or below `age_hours`."""
        found = np.searchsorted(self.age_edges_hours, np.asarray(age_hours) + 1e-9, side="right") - 1
        return np.minimum(np.maximum(found, 0), len(self.age_edges_hours) - 1)

    def hazard_now(self) -> np.ndarray:
        """λ(b | the calm the floor has shown at b so far): the rate a pod bidding b now would face."""
        return self.hazard_by_age[np.arange(len(self.bids)), self.age_index(self.calm_hours)]

    def interruptions_per_day(self) -> np.ndarray:
        return 24.0 * self.interruption_rate

    def wait_quantile(self, q: float) -> np.ndarray:
        """Hours to get back under each bid that a share `q` of completed waits did not exceed
        (upper bin edge; +inf where the quantile lies in the open last bin or nothing is known)."""
        return _hist_quantile(self.wait_counts, self.age_edges_hours, q)

    def residual_wait_hours(self) -> np.ndarray:
        """Expected hours until the floor is back at or under each bid, given how long it has been above
        (0 where it is under now): the mean excess over the elapsed time of the completed waits that
        lasted at least as long. A wait longer than any seen is expected to last as long again."""
        e = self.excursion_hours
        j = self.age_index(e)
        counts = np.cumsum(self.wait_counts[:, ::-1], axis=1)[:, ::-1]
        hours = np.cumsum(self.wait_hours[:, ::-1], axis=1)[:, ::-1]
        rows = np.arange(len(e))
        c, h = counts[rows, j], hours[rows, j]
        with np.errstate(divide="ignore", invalid="ignore"):
            beyond = np.where(c > 0, h / np.where(c > 0, c, 1.0) - e, e)
        return np.where(e > 0, np.maximum(beyond, 0.0), 0.0)

    def settle_wait_hours(self) -> np.ndarray:
        """Expected hours until the floor has stayed at or under `bids[i]` for `age_edges_hours[j]`
        (0 where its calm already has), as a renewal from the completed runs and waits: a calm run that
        ends early is followed by an excursion above the bid (its mean, `mean_wait_hours`) and a new run
        from age 0, so reaching age a from age 0 takes `(E[min(X, a)] + (1 − P(X > a))·W) / P(X > a)`
        hours. From the calm c shown so far the run goes on with the runs that outlived c's bin; with the
        floor above the bid, the rest of the excursion (`residual_wait_hours`) comes first. A bid with no
        completed run (the floor never crossed it upward in the history) takes the calm still missing.

        Without the renewal, a wait for a calm the floor rarely keeps was priced at the calm still
        missing: on a Vast floor wobbling around the bid a job waited three days for 5.3 quiet hours."""
        edges = self.age_edges_hours
        counts, hours = self.run_counts, self.run_hours
        tail = np.cumsum(counts[:, ::-1], axis=1)[:, ::-1]  # [i, j]: runs longer than edges[j]
        shorter = np.cumsum(hours, axis=1) - hours  # [i, j]: hours of the runs in bins before j
        total = tail[:, 0]
        wait = self.mean_wait_hours  # (+inf where the floor never came back under the bid)
        rows = np.arange(len(self.bids))
        calm = self.calm_hours
        m = self.age_index(calm)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            reach = tail / total[:, None]  # P(X > a)
            mean_run = (shorter + edges[None, :] * tail) / total[:, None]  # E[min(X, a)]
            from_zero = (mean_run + np.where(reach < 1.0, (1.0 - reach) * wait[:, None], 0.0)) / reach
            from_zero = np.where(reach > 0, from_zero, np.inf)
            # From the calm c (floor under the bid now): the runs that outlived c's bin go on.
            alive = tail[rows, m][:, None]
            go_on = tail / alive
            rest = (shorter - shorter[rows, m][:, None] + edges[None, :] * tail) / alive - calm[:, None]
            rest = np.clip(rest, 0.0, np.maximum(edges[None, :] - calm[:, None], 0.0))
            from_calm = rest + np.where(go_on < 1.0, (1.0 - go_on) * (wait[:, None] + from_zero), 0.0)
            from_calm = np.where(alive > 0, from_calm, edges[None, :] - calm[:, None])
        under = self.excursion_hours <= 0
        residual = self.residual_wait_hours()[:, None]
        renewal = np.where(under[:, None], from_calm, residual + from_zero)
        missing = residual + np.maximum(edges[None, :] - calm[:, None], 0.0)
        delay = np.where(total[:, None] > 0, renewal, missing)
        settled = under[:, None] & (edges[None, :] <= calm[:, None] + 1e-9)
        return np.where(settled, 0.0, np.maximum(delay, missing))

    def run_quantile(self, q: float) -> np.ndarray:
        """Run length (hours) at each bid that a share `q` of completed runs did not exceed."""
        return _hist_quantile(self.run_counts, self.age_edges_hours, q)

    def summary(self, bid: float) -> dict[str, Any]:
        """The numbers at one bid (the grid level at or below it), for reports and reasons."""
        i = max(self.index_of(bid), 0)
        return {
            "bid": float(self.bids[i]),
            "availability": float(self.availability[i]),
            "interruptions_per_day": float(24.0 * self.interruption_rate[i]),
            "outbid_events": float(self.outbid_events[i]),
            "mean_wait_hours": float(self.mean_wait_hours[i]),
            "mean_run_hours": float(self.mean_run_hours[i]),
            "samples": self.samples,
        }


def _hist_quantile(counts: np.ndarray, edges: np.ndarray, q: float) -> np.ndarray:
    total = counts.sum(axis=1)
    cum = np.cumsum(counts, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        j = np.argmax(cum >= q * total[:, None] - 1e-12, axis=1)
    upper = np.append(edges[1:], np.inf)
    return np.where(total > 0, upper[j], np.inf)


class _Params:
    """Validated parameters shared by the tracker and the batch function."""

    def __init__(self, half_life_hours: float | None, reclaim_rate_per_hour: float, confidence: float,
                 max_gap_hours: float, min_samples: int, min_span_hours: float,
                 max_staleness_hours: float | None) -> None:
        if half_life_hours is not None and not half_life_hours > 0:
            raise ValueError(f"half_life_hours must be > 0 or None (no decay), got {half_life_hours!r}")
        if not reclaim_rate_per_hour >= 0:
            raise ValueError(f"reclaim_rate_per_hour must be >= 0, got {reclaim_rate_per_hour!r}")
        if not 0.5 <= confidence < 1:
            raise ValueError(f"confidence must be in [0.5, 1), got {confidence!r}")
        if not max_gap_hours > 0:
            raise ValueError(f"max_gap_hours must be > 0, got {max_gap_hours!r}")
        self.half_life_hours = half_life_hours
        self.decay = 0.0 if half_life_hours is None else math.log(2) / (half_life_hours * 3600.0)
        self.reclaim = float(reclaim_rate_per_hour)
        self.confidence = float(confidence)
        self.max_gap_s = max_gap_hours * 3600.0
        self.min_samples = int(min_samples)
        self.min_span_s = min_span_hours * 3600.0
        self.max_stale_s = None if max_staleness_hours is None else max_staleness_hours * 3600.0


class SilenceLog:
    """The silences of a stream of sample times (gaps of at least SILENCE_MIN_HOURS), kept for
    SILENCE_LOOKBACK_HOURS: O(1) per sample. `longest(now)` is `longest_silence_hours` of the times fed
    (the tracker feeds it the samples that quote a price: one without any is no time to act in)."""

    def __init__(self) -> None:
        self.last_ts: float | None = None
        self._gaps: deque[tuple[float, float]] = deque()  # (end, length in seconds), oldest first

    def add(self, ts: float) -> None:
        """One sample at `ts` (epoch seconds, after the last one)."""
        if self.last_ts is not None and ts - self.last_ts >= SILENCE_MIN_HOURS * 3600.0:
            self._gaps.append((ts, ts - self.last_ts))
            while self._gaps and self._gaps[0][0] <= ts - SILENCE_LOOKBACK_HOURS * 3600.0:
                self._gaps.popleft()
        self.last_ts = ts

    def longest(self, now: float) -> float:
        """Hours: the longest silence that ended in the lookback before `now`, or the one going on."""
        if self.last_ts is None:
            return 0.0
        since = SILENCE_LOOKBACK_HOURS * 3600.0
        longest = max((length for end, length in self._gaps if end > now - since), default=0.0)
        longest = max(longest, now - self.last_ts)
        return longest / 3600.0 if longest >= SILENCE_MIN_HOURS * 3600.0 else 0.0


def longest_silence_hours(ts: np.ndarray, now: float) -> float:
    """`SilenceLog.longest(now)` of the sample times `ts` (ascending, none after `now`), vectorised."""
    if len(ts) == 0:
        return 0.0
    gaps = np.diff(ts)
    recent = gaps[ts[1:] > now - SILENCE_LOOKBACK_HOURS * 3600.0]
    longest = max(float(recent.max()) if len(recent) else 0.0, now - float(ts[-1]))
    return longest / 3600.0 if longest >= SILENCE_MIN_HOURS * 3600.0 else 0.0


class FloorTracker:
    """Incremental statistics of one market: feed samples in time order, ask `stats(now)` at any time.

    The grid is fixed at the first sample (relative to its on-demand price, or to three times its
    floor when it has none) unless `grid` or `reference_price` is given. Samples at or before the last
    one are ignored (a replay may repeat a timestamp).
    """

    def __init__(self, gpu_type_id: str, cloud: str = "COMMUNITY", gpu_count: int = 1, *,
                 half_life_hours: float | None = DEFAULT_HALF_LIFE_HOURS,
                 reclaim_rate_per_hour: float = DEFAULT_RECLAIM_RATE_PER_HOUR,
                 confidence: float = DEFAULT_CONFIDENCE,
                 max_gap_hours: float = DEFAULT_MAX_GAP_HOURS,
                 min_samples: int = DEFAULT_MIN_SAMPLES,
                 min_span_hours: float = DEFAULT_MIN_SPAN_HOURS,
                 max_staleness_hours: float | None = DEFAULT_MAX_STALENESS_HOURS,
                 reference_price: float | None = None,
                 grid: Sequence[float] | np.ndarray | None = None,
                 market: str = DEFAULT_MARKET) -> None:
        self.gpu_type_id = gpu_type_id
        self.cloud = cloud
        self.gpu_count = int(gpu_count)
        self.market = market
        self._p = _Params(half_life_hours, reclaim_rate_per_hour, confidence, max_gap_hours,
                          min_samples, min_span_hours, max_staleness_hours)
        self.grid: np.ndarray | None = None
        if grid is not None:
            self._init_grid(np.asarray(grid, dtype=float))
        elif reference_price is not None:
            self._init_grid(bid_grid(reference_price))
        self.samples = 0
        self.first_ts: float | None = None
        self.last_ts: float | None = None
        self.last_floor: float | None = None
        self.last_on_demand: float | None = None
        self._last_idx = 0  # levels >= this index were running after the last sample
        self._silences = SilenceLog()

    def _init_grid(self, grid: np.ndarray) -> None:
        if grid.ndim != 1 or len(grid) < 2 or np.any(np.diff(grid) <= 0):
            raise ValueError("grid must be a strictly ascending 1-D array of at least two bids")
        self.grid = grid
        self._levels = grid.tolist()  # for bisect: np.searchsorted costs more on one value
        n, m = len(grid), len(AGE_EDGES_HOURS)
        self._t0 = 0.0
        self._observed = 0.0
        self._d_below = np.zeros(n + 1)  # difference array: running time at levels >= index
        self._d_up = np.zeros(n + 1)  # difference array: upcrossings at levels in [i_prev, i_new)
        self._run_start = np.full(n, np.nan)  # when the current run at each level began
        self._wait_start = np.full(n, np.nan)  # when the current wait at each level began
        self._run_n = np.zeros((n, m))
        self._run_h = np.zeros((n, m))
        self._run_d = np.zeros((n, m))  # Σ w·exp(-k·length) of completed runs (decayed exposure)
        self._wait_n = np.zeros((n, m))
        self._wait_h = np.zeros((n, m))

    def _index(self, floor: float | None) -> int:
        assert self.grid is not None
        if floor is None or not math.isfinite(floor):
            return len(self.grid)
        return bisect.bisect_left(self._levels, floor - 1e-12)  # = np.searchsorted(grid, ..., side="left")

    def _weight(self, ts: float) -> float:
        return math.exp(self._p.decay * (ts - self._t0))

    def _rescale(self, ts: float) -> None:
        factor = math.exp(-self._p.decay * (ts - self._t0))
        for arr in (self._d_below, self._d_up, self._run_n, self._run_h, self._run_d, self._wait_n, self._wait_h):
            arr *= factor
        self._observed *= factor
        self._t0 = ts

    def update(self, ts_epoch: float, floor: float | None, on_demand: float | None) -> None:
        """Add one sample: the floor (None/NaN = no spot) and on-demand price at `ts_epoch` seconds."""
        ts = float(ts_epoch)
        if self.last_ts is not None and ts <= self.last_ts:
            return
        if floor is not None and not math.isfinite(floor):
            floor = None
        if on_demand is not None and not math.isfinite(on_demand):
            on_demand = None
        if self.grid is None:
            ref = on_demand if on_demand else (3.0 * floor if floor else None)
            if ref is None:
                return  # nothing to anchor a grid on yet
            self._init_grid(bid_grid(ref))
        if self.first_ts is None:
            self.first_ts = ts
            self._t0 = ts
        if (floor is not None and floor > 0) or (on_demand is not None and on_demand > 0):
            self._silences.add(ts)  # a sample with no price at all (no capacity) is no more use than none
        if self._p.decay and self._p.decay * (ts - self._t0) > _RESCALE_AT:
            self._rescale(ts)
        w = self._weight(ts)
        idx = self._index(floor)
        n = len(self.grid)  # type: ignore[arg-type]
        if self.last_ts is None:
            self._run_start[idx:] = ts
            self._wait_start[:idx] = ts
        else:
            prev_w = self._weight(self.last_ts)
            dur = min(ts - self.last_ts, self._p.max_gap_s) / 3600.0
            self._observed += prev_w * dur
            if self._last_idx < n:
                self._d_below[self._last_idx] += prev_w * dur
            prev = self._last_idx
            if idx > prev:  # floor rose: runs at levels [prev, idx) end, waits begin
                self._d_up[prev] += w
                self._d_up[idx] -= w
                lengths, levels, bins = self._close(self._run_start, self._run_n, self._run_h, prev, idx, ts, w)
                self._run_d[levels, bins] += w * np.exp(-self._p.decay * 3600.0 * lengths)
                self._wait_start[prev:idx] = ts
            elif idx < prev:  # floor fell: waits at [idx, prev) end, runs begin
                self._close(self._wait_start, self._wait_n, self._wait_h, idx, prev, ts, w)
                self._run_start[idx:prev] = ts
        self._last_idx = idx
        self.samples += 1
        self.last_ts = ts
        self.last_floor = floor
        if on_demand is not None:
            self.last_on_demand = on_demand

    @staticmethod
    def _close(start: np.ndarray, counts: np.ndarray, hours: np.ndarray, lo: int, hi: int, ts: float,
               w: float) -> tuple[Any, Any, Any]:
        """Add the runs (or waits) at levels [lo, hi) ending at `ts` to the histograms. Returns their
        lengths, levels and age bins: numpy scalars and ints when one level closes (the usual sample,
        where fancy indexing costs more than the arithmetic; the same numbers), else arrays."""
        if hi == lo + 1:
            lengths = (ts - start[lo]) / 3600.0
            levels, bins = lo, min(max(bisect.bisect_left(_AGE_EDGES, lengths - 1e-9) - 1, 0), len(_AGE_EDGES) - 1)
        else:
            lengths = (ts - start[lo:hi]) / 3600.0
            levels, bins = np.arange(lo, hi), _age_bin(lengths)
        counts[levels, bins] += w
        hours[levels, bins] += w * lengths
        return lengths, levels, bins

    def stats(self, now_epoch: float | None = None) -> MarketStats:
        """The statistics at `now_epoch` (default: the last sample). Raises InsufficientHistory."""
        return _assemble(**self._sums(now_epoch))

    def _sums(self, now_epoch: float | None) -> dict[str, Any]:
        """`_assemble`'s arguments at `now_epoch`: the weighted sums decayed to then, the calm and excursion
        ages. Raises InsufficientHistory."""
        p = self._p
        if self.grid is None or self.last_ts is None or self.first_ts is None:
            raise InsufficientHistory(f"no price history for {self.gpu_type_id} ({self.cloud})",
                                      gpu_type_id=self.gpu_type_id, samples=0)
        now = self.last_ts if now_epoch is None else float(now_epoch)
        _check_history(self.gpu_type_id, self.cloud, self.samples, self.last_ts - self.first_ts,
                       now - self.last_ts, p)
        factor = math.exp(-p.decay * (now - self._t0))
        below = self._d_below[:-1].cumsum() * factor
        up = self._d_up[:-1].cumsum() * factor
        age_end = self.last_ts + min(max(now - self.last_ts, 0.0), p.max_gap_s)
        calm = np.zeros(len(self.grid))
        calm[self._last_idx:] = (age_end - self._run_start[self._last_idx:]) / 3600.0
        excursion = np.zeros(len(self.grid))
        excursion[:self._last_idx] = (age_end - self._wait_start[:self._last_idx]) / 3600.0
        return dict(gpu_type_id=self.gpu_type_id, cloud=self.cloud, gpu_count=self.gpu_count, grid=self.grid,
                    below=below, up=up, observed=self._observed * factor, run_n=self._run_n * factor,
                    run_h=self._run_h * factor, run_d=self._run_d * factor, wait_n=self._wait_n * factor,
                    wait_h=self._wait_h * factor, calm=calm, excursion=excursion, samples=self.samples,
                    span_hours=(self.last_ts - self.first_ts) / 3600.0, floor_now=self.last_floor,
                    on_demand_now=self.last_on_demand, now=now, p=p, market=self.market,
                    longest_silence_hours=self._silences.longest(now))


def stats_of(trackers: Sequence[FloorTracker], now_epoch: float | None = None) -> list[MarketStats | None]:
    """Each tracker's `stats(now_epoch)` (None where it raises InsufficientHistory), the same numbers.

    The hazards of trackers whose grids have one length and whose parameters agree are computed as one
    stack of rows (each row's numbers are its own): numpy's cost per call, which dominates on arrays
    this small, is paid once for all the markets of a backtest step instead of once per market.
    """
    sums: list[dict[str, Any] | None] = []
    for tracker in trackers:
        try:
            sums.append(tracker._sums(now_epoch))
        except InsufficientHistory:
            sums.append(None)
    groups: dict[tuple[int, float, float, float], list[dict[str, Any]]] = {}
    for part in sums:
        if part is not None:
            p = part["p"]
            groups.setdefault((len(part["grid"]), p.decay, p.confidence, p.reclaim), []).append(part)
    for group in groups.values():
        if len(group) < 2:
            continue
        stacked = _hazards(*(np.concatenate([part[name] for part in group]) for name in ("run_n", "run_h", "run_d",
                                                                                          "calm")), group[0]["p"])
        n = len(group[0]["grid"])
        for k, part in enumerate(group):
            part["hazards"] = tuple(a[k * n:(k + 1) * n] for a in stacked)
    return [None if part is None else _assemble(**part) for part in sums]


def _decayed_hours(hours: np.ndarray, decay_per_s: float) -> np.ndarray:
    """∫ of the recency weight over the last `hours` before a moment of weight 1 (= hours without decay)."""
    hours = np.maximum(hours, 0.0)
    if decay_per_s == 0.0:
        return hours
    k = decay_per_s * 3600.0
    return -np.expm1(-k * hours) / k


def _beyond_ages(counts: np.ndarray, hours: np.ndarray, decayed: np.ndarray, decay_per_s: float
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Per level and age edge a_j: the weight of completed runs that outlived a_j, and their
    recency-weighted hours beyond it, from the run histogram (bin j holds lengths in (a_j, a_j+1], so
    the runs longer than a_j are bins j and up). A run of length L ending with weight w has
    ∫ weight over its part beyond a_j = w·(1 - e^(-k(L - a_j)))/k = (w - e^(k·a_j)·w·e^(-kL))/k."""
    def from_top(a: np.ndarray) -> np.ndarray:
        return a[:, ::-1].cumsum(axis=1)[:, ::-1]

    events = from_top(counts)
    if decay_per_s == 0.0:
        exposure = from_top(hours) - events * AGE_EDGES_HOURS[None, :]
    else:
        exposure = (events - _edge_growth(decay_per_s) * from_top(decayed)) / (decay_per_s * 3600.0)
    return events, np.maximum(exposure, 0.0)


@functools.lru_cache(maxsize=8)
def _edge_growth(decay_per_s: float) -> np.ndarray:
    """e^(k·a_j) of every age edge a_j (k = the decay per hour): the same for every stats call."""
    return np.exp(decay_per_s * 3600.0 * AGE_EDGES_HOURS)


def _age_bin(lengths: np.ndarray) -> np.ndarray:
    """Bin j holds lengths in (edges[j], edges[j+1]]; the last bin is open above."""
    found = np.searchsorted(AGE_EDGES_HOURS, lengths - 1e-9, side="left") - 1
    return np.minimum(np.maximum(found, 0), len(AGE_EDGES_HOURS) - 1)  # (np.clip costs more on small arrays)


def _check_history(gpu_type_id: str, cloud: str, samples: int, span_s: float, stale_s: float,
                   p: _Params) -> None:
    if samples < p.min_samples or span_s < p.min_span_s:
        raise InsufficientHistory(
            f"too little price history for {gpu_type_id} ({cloud}): {samples} samples over "
            f"{span_s / 3600:.1f} h; need at least {p.min_samples} samples over {p.min_span_s / 3600:.1f} h "
            f"(collect more with `bidder collect`)", gpu_type_id=gpu_type_id, samples=samples)
    if p.max_stale_s is not None and stale_s > p.max_stale_s:
        raise InsufficientHistory(
            f"price history for {gpu_type_id} ({cloud}) is stale: the last sample is {stale_s / 3600:.1f} h old "
            f"(run `bidder collect`)", gpu_type_id=gpu_type_id, samples=samples)


def _assemble(gpu_type_id: str, cloud: str, gpu_count: int, grid: np.ndarray, below: np.ndarray,
              up: np.ndarray, observed: float, run_n: np.ndarray, run_h: np.ndarray, run_d: np.ndarray,
              wait_n: np.ndarray, wait_h: np.ndarray, calm: np.ndarray, excursion: np.ndarray, samples: int,
              span_hours: float,
              floor_now: float | None, on_demand_now: float | None, now: float, p: _Params,
              market: str = DEFAULT_MARKET,
              hazards: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
              longest_silence_hours: float = 0.0) -> MarketStats:
    """Rates, bounds and conditional hazards from the weighted sums (shared by tracker and batch);
    `hazards`: `_hazards` of these sums, when already computed (`stats_of`)."""
    below = np.maximum(below, 0.0)
    up = np.maximum(up, 0.0)
    events, exposure, hazard = hazards or _hazards(run_n, run_h, run_d, calm, p)
    edges = AGE_EDGES_HOURS
    return MarketStats(
        gpu_type_id=gpu_type_id, cloud=cloud, gpu_count=gpu_count, bids=grid, samples=samples,
        span_hours=span_hours, floor_now=floor_now, on_demand_now=on_demand_now, now=now,
        outbid_events=up, running_hours=below, observed_hours=observed,
        calm_hours=calm, excursion_hours=excursion, age_edges_hours=edges, hazard_by_age=hazard, events_by_age=events,
        exposure_by_age=exposure, run_counts=run_n, run_hours=run_h,
        wait_counts=wait_n, wait_hours=wait_h, reclaim_rate=p.reclaim, half_life_hours=p.half_life_hours,
        confidence=p.confidence, market=market, longest_silence_hours=longest_silence_hours)


def _hazards(run_n: np.ndarray, run_h: np.ndarray, run_d: np.ndarray, calm: np.ndarray, p: _Params
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """λ(b | run age >= a_j), row by row: completed runs longer than a_j are the events; their
    (recency-weighted) time beyond a_j, plus the current censored run's, is the exposure.
    Returns (events, exposure, hazard)."""
    events, completed = _beyond_ages(run_n, run_h, run_d, p.decay)
    exposure = completed + _decayed_hours(calm[:, None] - AGE_EDGES_HOURS[None, :], p.decay)
    return events, exposure, _age_hazard_bounds(events, exposure, p.confidence) + p.reclaim


def market_stats(series: Any, now_epoch: float | None = None, *,
                 half_life_hours: float | None = DEFAULT_HALF_LIFE_HOURS,
                 reclaim_rate_per_hour: float = DEFAULT_RECLAIM_RATE_PER_HOUR,
                 confidence: float = DEFAULT_CONFIDENCE,
                 max_gap_hours: float = DEFAULT_MAX_GAP_HOURS,
                 min_samples: int = DEFAULT_MIN_SAMPLES,
                 min_span_hours: float = DEFAULT_MIN_SPAN_HOURS,
                 max_staleness_hours: float | None = DEFAULT_MAX_STALENESS_HOURS,
                 reference_price: float | None = None,
                 grid: Sequence[float] | np.ndarray | None = None,
                 gpu_type_id: str | None = None, cloud: str | None = None,
                 gpu_count: int | None = None, market: str | None = None,
                 floor_model: bool = True) -> MarketStats:
    """The statistics of a whole `FloorSeries` (ts, floor, on_demand arrays) at once, vectorised.

    Same numbers as feeding a FloorTracker sample by sample (samples after `now_epoch` are ignored).
    The market is `market`, else the series' `market` attribute, else RunPod. `floor_model`: also fit
    the planner's price-state model (`bidder.planner`; about 13 ms a market with its daily check),
    which only batch jobs with a deadline use.
    """
    market_name = market if market is not None else getattr(series, "market", None) or DEFAULT_MARKET
    p = _Params(half_life_hours, reclaim_rate_per_hour, confidence, max_gap_hours, min_samples,
                min_span_hours, max_staleness_hours)
    name = gpu_type_id if gpu_type_id is not None else getattr(series, "gpu_type_id", "") or ""
    cloud_name = cloud if cloud is not None else getattr(series, "cloud", "") or "COMMUNITY"
    count = int(gpu_count if gpu_count is not None else getattr(series, "gpu_count", 1) or 1)
    ts = np.asarray(series.ts, dtype=float)
    floor = np.asarray(series.floor, dtype=float)
    od = np.asarray(series.on_demand, dtype=float)
    if len(ts) > 1 and np.any(np.diff(ts) <= 0):  # keep the first of repeated times, in order
        keep = np.concatenate([[True], ts[1:] > np.maximum.accumulate(ts)[:-1]])
        ts, floor, od = ts[keep], floor[keep], od[keep]
    if now_epoch is not None:
        cut = int(np.searchsorted(ts, float(now_epoch), side="right"))
        ts, floor, od = ts[:cut], floor[:cut], od[:cut]
    # The grid anchors on the first sample that has a price (as the tracker does).
    has_price = np.isfinite(od) & (od > 0) | np.isfinite(floor) & (floor > 0)
    if grid is not None:
        g = np.asarray(grid, dtype=float)
    elif reference_price is not None:
        g = bid_grid(reference_price)
    else:
        first = np.flatnonzero(has_price)
        if len(first) == 0 and len(ts):  # quoted, never priced: not offered there, more history will not help
            raise InsufficientHistory(f"not offered in {cloud_name.lower()}: none of its {len(ts)} samples has a price",
                                      gpu_type_id=name, samples=len(ts), not_offered=True)
        if len(first) == 0:
            raise InsufficientHistory(f"no price history for {name} ({cloud_name})", gpu_type_id=name, samples=0)
        i0 = first[0]
        g = bid_grid(od[i0] if np.isfinite(od[i0]) and od[i0] > 0 else 3.0 * floor[i0])
        ts, floor, od = ts[i0:], floor[i0:], od[i0:]
    n_samples = len(ts)
    if n_samples == 0:
        raise InsufficientHistory(f"no price history for {name} ({cloud_name})", gpu_type_id=name, samples=0)
    now = float(ts[-1]) if now_epoch is None else float(now_epoch)
    _check_history(name, cloud_name, n_samples, float(ts[-1] - ts[0]), now - float(ts[-1]), p)
    n = len(g)
    finite = np.isfinite(floor)
    idx = np.where(finite, np.searchsorted(g, np.where(finite, floor, 0.0) - 1e-12, side="left"), n)
    # The tracker renormalises its weights now and then; weights relative to `now` are the same numbers.
    logw = p.decay * (ts - now)
    w = np.exp(logw)
    dur = np.minimum(np.diff(ts), p.max_gap_s) / 3600.0
    wd = w[:-1] * dur
    observed = float(wd.sum())
    below = np.cumsum(np.bincount(idx[:-1], wd, minlength=n + 1)[:n])
    rises = np.flatnonzero(idx[1:] > idx[:-1]) + 1
    d_up = (np.bincount(idx[rises - 1], w[rises], minlength=n + 1)
            - np.bincount(idx[rises], w[rises], minlength=n + 1))
    up = np.cumsum(d_up[:n])
    # Run and wait lengths per level, vectorised over the level crossings: a move of the floor from
    # index i to j crosses the levels between them; at each crossed level the segment that began at its
    # previous crossing (or at the first sample) ends here: a run if the floor rose, a wait if it fell.
    m = len(AGE_EDGES_HOURS)
    run_n, run_h, run_d = np.zeros((n, m)), np.zeros((n, m)), np.zeros((n, m))
    wait_n, wait_h = np.zeros((n, m)), np.zeros((n, m))
    prev_i, new_i = idx[:-1], idx[1:]
    moves = np.abs(new_i - prev_i)
    total = int(moves.sum())
    sample = np.repeat(np.arange(1, len(idx)), moves)
    first = np.repeat(np.cumsum(moves) - moves, moves)
    level = np.repeat(np.minimum(prev_i, new_i), moves) + (np.arange(total) - first)
    rose = np.repeat(new_i > prev_i, moves)
    order = np.argsort(level, kind="stable")  # by level, in time order within a level
    level, sample, rose = level[order], sample[order], rose[order]
    t_event = ts[sample]
    new_level = np.ones(total, dtype=bool)
    new_level[1:] = level[1:] != level[:-1]
    began = np.where(new_level, ts[0], np.roll(t_event, 1))
    lengths = (t_event - began) / 3600.0
    weights = w[sample]
    bins = _age_bin(lengths)
    flat = level * m + bins
    size = n * m
    run_n += np.bincount(flat[rose], weights[rose], size).reshape(n, m)
    run_h += np.bincount(flat[rose], (weights * lengths)[rose], size).reshape(n, m)
    run_d += np.bincount(flat[rose], (weights * np.exp(-p.decay * 3600.0 * lengths))[rose], size).reshape(n, m)
    wait_n += np.bincount(flat[~rose], weights[~rose], size).reshape(n, m)
    wait_h += np.bincount(flat[~rose], (weights * lengths)[~rose], size).reshape(n, m)
    # The current run (or wait) at each level began at its last crossing (or at the first sample).
    age_end = float(ts[-1]) + min(max(now - float(ts[-1]), 0.0), p.max_gap_s)
    segment_start = np.full(n, float(ts[0]))
    if total:
        last = np.ones(total, dtype=bool)
        last[:-1] = level[:-1] != level[1:]
        segment_start[level[last]] = t_event[last]
    running_now = np.arange(n) >= idx[-1]
    calm = np.where(running_now, (age_end - segment_start) / 3600.0, 0.0)
    excursion = np.where(running_now, 0.0, (age_end - segment_start) / 3600.0)
    last_floor = float(floor[-1]) if finite[-1] else None
    known_od = od[np.isfinite(od)]
    stats = _assemble(name, cloud_name, count, g, below, up, observed, run_n, run_h, run_d, wait_n, wait_h, calm,
                      excursion,
                      n_samples, float(ts[-1] - ts[0]) / 3600.0, last_floor,
                      float(known_od[-1]) if len(known_od) else None, now, p,
                      longest_silence_hours=longest_silence_hours(ts[np.isfinite(od) & (od > 0) | finite & (floor > 0)],
                                                                  now))
    if len(known_od) and floor_model:
        model = fit_floor_model(ts, floor, float(known_od[-1]), now)
        if model is not None:
            stats = replace(stats, floor_model=model, recent_max=recent_max(ts, floor, now, model.step_h))
    return stats if market_name == DEFAULT_MARKET else replace(stats, market=market_name)
