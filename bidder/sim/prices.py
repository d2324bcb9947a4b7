"""Price processes of the emulator's world: a seeded spot-floor model, or the replay of a trace.

The model, per GPU type and cloud (a "market"): the spot floor (`minimumBidPrice`) reverts to a
level of 0.35–0.6 of on-demand (a log-space AR(1) with a mild daily cycle), jumps in spikes above
typical bids (and, in some of them, above on-demand), and has periods with no spot capacity at
all (null). Each market draws a regime: calm (a spike every week or so), medium (about one a
day) or volatile (about four a day), like the pools of the AWS 2016 bid market, whose spikes last
10–15 minutes typically and sometimes most of a day.

Determinism: prices live on a fixed 60 s grid anchored at the Unix epoch and are computed in
day-long blocks; block k of a market is a pure function of (seed, market, k). The AR(1) part of a
block is run from a burn-in over the previous day's noise, whose influence has decayed below
rounding by the block's start, so blocks join without a visible seam. Hence the price at any
instant does not depend on how time was advanced, and any instant can be read directly.
"""

from __future__ import annotations

import math
import zlib
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from bidder.errors import ConfigError
from bidder.models import PriceQuote
from bidder.sim.catalog import GpuTypeInfo, load_catalog
from bidder.sim.clock import GRID_S, to_epoch
from bidder.units import to_iso

__all__ = [
    "DEFAULT_START",
    "MarketParams",
    "ModelMarket",
    "PriceSource",
    "TraceMarket",
    "generate_quotes",
    "generate_trace",
    "load_trace_series",
    "market_params",
]

DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)
_STEPS = 86400 // GRID_S          # grid steps per block (one day)
_MAX_EVENT_STEPS = 2 * _STEPS - 1  # events last < 2 days, so a block looks back 2 blocks at most

# Regime name -> (stationary log-sd, mean-reversion time in s, spikes/day, share of spikes above
# on-demand, no-capacity periods/day)
_REGIMES: dict[str, tuple[float, float, float, float, float]] = {
    "calm": (0.08, 6 * 3600, 0.15, 0.25, 0.05),
    "medium": (0.12, 3 * 3600, 1.0, 0.4, 0.15),
    "volatile": (0.18, 2 * 3600, 4.0, 0.5, 0.3),
}


class PriceSource(Protocol):
    """What the world asks of a market's prices (t in epoch seconds; NaN/None = no spot)."""

    def floor_at(self, t: float) -> float | None: ...

    def floors_on_grid(self, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]: ...

    def on_demand_at(self, t: float) -> float | None: ...


def _market_key(gpu_type_id: str, cloud: str) -> int:
    # A stable per-market stream id (adding types to the catalogue does not move the others).
    return zlib.crc32(f"{gpu_type_id}|{cloud}".encode())


@dataclass(frozen=True)
class MarketParams:
    gpu_type_id: str
    cloud: str
    on_demand: float
    has_spot: bool
    regime: str
    level: float            # typical floor as a share of on-demand
    sigma: float            # stationary sd of log(floor / level)
    tau_s: float            # mean-reversion time
    spike_rate_per_day: float
    p_spike_above_on_demand: float
    outage_rate_per_day: float
    p_long_spike: float = 0.03


def market_params(seed: int, info: GpuTypeInfo, cloud: str) -> MarketParams:
    on_demand = info.on_demand(cloud)
    if on_demand is None:
        raise ConfigError(f"{info.id} is not offered in {cloud}", key="cloud")
    rng = np.random.default_rng([seed, _market_key(info.id, cloud), 0])
    regime = str(rng.choice(list(_REGIMES), p=[0.3, 0.4, 0.3]))
    sigma, tau, spikes, above, outages = _REGIMES[regime]
    return MarketParams(
        gpu_type_id=info.id, cloud=cloud, on_demand=on_demand,
        has_spot=info.list_spot(cloud) is not None, regime=regime,
        level=float(rng.uniform(0.35, 0.6)), sigma=sigma, tau_s=tau,
        spike_rate_per_day=spikes, p_spike_above_on_demand=above, outage_rate_per_day=outages,
    )


class ModelMarket:
    """The seeded floor process of one market (see the module docstring)."""

    def __init__(self, seed: int, params: MarketParams, cache_blocks: int = 64) -> None:
        self.seed = seed
        self.params = params
        self._key = _market_key(params.gpu_type_id, params.cloud)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_blocks = cache_blocks
        self._phi = math.exp(-GRID_S / params.tau_s)

    # -- reading -------------------------------------------------------------------------------
    def on_demand_at(self, t: float) -> float | None:
        return self.params.on_demand

    def floor_at(self, t: float) -> float | None:
        step = math.floor(t / GRID_S)
        value = self._block(step // _STEPS)[step % _STEPS]
        return None if math.isnan(value) else float(value)

    def floors_on_grid(self, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
        """Grid times in (t0, t1] and the floor at each (NaN = no spot capacity)."""
        first, last = math.floor(t0 / GRID_S) + 1, math.floor(t1 / GRID_S)
        if last < first:
            return np.empty(0), np.empty(0)
        return np.arange(first, last + 1) * float(GRID_S), self._steps(first, last + 1)

    def values_at(self, times: np.ndarray) -> np.ndarray:
        """The floor at arbitrary instants (vectorised; NaN = no spot)."""
        steps = np.floor(np.asarray(times, dtype=float) / GRID_S).astype(np.int64)
        if steps.size == 0:
            return np.empty(0)
        values = self._steps(int(steps.min()), int(steps.max()) + 1)
        return values[steps - steps.min()]

    def _steps(self, first: int, stop: int) -> np.ndarray:
        parts = []
        for block in range(first // _STEPS, (stop - 1) // _STEPS + 1):
            lo = max(first, block * _STEPS) - block * _STEPS
            hi = min(stop, (block + 1) * _STEPS) - block * _STEPS
            parts.append(self._block(block)[lo:hi])
        return np.concatenate(parts)

    # -- the process ---------------------------------------------------------------------------
    def _rng(self, block: int, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self._key, block, stream])

    def _block(self, block: int) -> np.ndarray:
        cached = self._cache.get(block)
        if cached is not None:
            self._cache.move_to_end(block)
            return cached
        values = self._compute(block)
        self._cache[block] = values
        if len(self._cache) > self._cache_blocks:
            self._cache.popitem(last=False)
        return values

    def _compute(self, block: int) -> np.ndarray:
        from scipy.signal import lfilter  # imported here: only the emulator needs scipy

        p = self.params
        if not p.has_spot:
            return np.full(_STEPS, np.nan)
        noise = np.concatenate([self._rng(block - 1, 1).standard_normal(_STEPS),
                                self._rng(block, 1).standard_normal(_STEPS)])
        gain = p.sigma * math.sqrt(1.0 - self._phi**2)
        x = lfilter([gain], [1.0, -self._phi], noise)[_STEPS:]
        t = (block * _STEPS + np.arange(_STEPS)) * float(GRID_S)
        hour = (t % 86400) / 3600.0
        daily = 1.0 + 0.04 * np.sin(2 * np.pi * (hour - 10.0) / 24.0)  # busiest around 16:00 UTC
        floor = p.on_demand * p.level * np.exp(x) * daily
        start = block * _STEPS
        for source in range(block - 2, block + 1):
            for s0, n, level in self._spikes(source):
                lo, hi = max(s0, start), min(s0 + n, start + _STEPS)
                if lo < hi:
                    np.maximum(floor[lo - start:hi - start], level, out=floor[lo - start:hi - start])
        floor = np.maximum(np.round(floor, 3), 0.001)
        for source in range(block - 2, block + 1):
            for s0, n in self._outages(source):
                lo, hi = max(s0, start), min(s0 + n, start + _STEPS)
                if lo < hi:
                    floor[lo - start:hi - start] = np.nan
        return floor

    def _spikes(self, block: int) -> list[tuple[int, int, float]]:
        p = self.params
        rng = self._rng(block, 2)
        n = int(rng.poisson(p.spike_rate_per_day))
        starts = rng.integers(0, _STEPS, n)
        long = rng.random(n) < p.p_long_spike
        typical = np.exp(rng.normal(math.log(12 * 60), 0.8, n))      # median 12 minutes
        lengths = np.where(long, rng.uniform(2 * 3600, 30 * 3600, n), typical)
        above = rng.random(n) < p.p_spike_above_on_demand
        level = np.where(above, p.on_demand * rng.uniform(1.05, 2.5, n),
                         p.on_demand * p.level * rng.uniform(1.5, 2.3, n))
        steps = np.clip(np.round(lengths / GRID_S), 1, _MAX_EVENT_STEPS).astype(int)
        base = block * _STEPS
        return [(base + int(s), int(k), float(v)) for s, k, v in zip(starts, steps, level, strict=True)]

    def _outages(self, block: int) -> list[tuple[int, int]]:
        rng = self._rng(block, 3)
        n = int(rng.poisson(self.params.outage_rate_per_day))
        starts = rng.integers(0, _STEPS, n)
        lengths = np.exp(rng.normal(math.log(40 * 60), 0.9, n))       # median 40 minutes
        steps = np.clip(np.round(lengths / GRID_S), 1, _MAX_EVENT_STEPS).astype(int)
        base = block * _STEPS
        return [(base + int(s), int(k)) for s, k in zip(starts, steps, strict=True)]


class TraceMarket:
    """A market replayed from a trace: the value of the last row at or before the instant
    (held between rows; the first row's value before it). `offset_s` maps virtual time to trace
    time (trace_t = t - offset_s)."""

    def __init__(self, times: np.ndarray, floors: np.ndarray, on_demand: np.ndarray, offset_s: float) -> None:
        self.times = times
        self.floors = floors
        self.on_demand = on_demand
        self.offset_s = offset_s

    def _index(self, t: np.ndarray | float) -> np.ndarray:
        idx = np.searchsorted(self.times, np.asarray(t, dtype=float) - self.offset_s, side="right") - 1
        return np.maximum(idx, 0)

    def floor_at(self, t: float) -> float | None:
        # Read at the grid step, as the model does, so interruptions and quotes agree.
        value = self.floors[self._index(math.floor(t / GRID_S) * GRID_S)]
        return None if math.isnan(value) else float(value)

    def on_demand_at(self, t: float) -> float | None:
        value = self.on_demand[self._index(t)]
        return None if math.isnan(value) else float(value)

    def floors_on_grid(self, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
        first, last = math.floor(t0 / GRID_S) + 1, math.floor(t1 / GRID_S)
        if last < first:
            return np.empty(0), np.empty(0)
        times = np.arange(first, last + 1) * float(GRID_S)
        return times, self.floors[self._index(times)]


# -- trace files -----------------------------------------------------------------------------------

def load_trace_series(path: str | Path) -> tuple[dict[tuple[str, str, int], tuple[np.ndarray, np.ndarray, np.ndarray]],
                                                 int]:
    """Read a trace CSV (parsed by `bidder.traces`, so errors name the line and column) into
    {(gpu_type, cloud, gpu_count): (epoch times, floors with NaN for no spot, on-demand prices with
    NaN for none)}, each sorted by time, of RunPod's rows; and how many rows of other markets (Vast's:
    its API is the emulator's offer model) were left out."""
    from bidder.traces import read_trace

    rows: dict[tuple[str, str, int], list[tuple[float, float, float]]] = {}
    other = 0
    for q in read_trace(path):
        if q.market != "runpod":
            other += 1
            continue
        rows.setdefault((q.gpu_type_id, q.cloud, q.gpu_count), []).append((
            q.ts.timestamp(),
            math.nan if q.minimum_bid_price is None else q.minimum_bid_price,
            math.nan if q.uninterruptable_price is None else q.uninterruptable_price))
    out = {}
    for key, values in rows.items():
        values.sort(key=lambda r: r[0])
        arr = np.array(values, dtype=float)
        out[key] = (arr[:, 0], arr[:, 1], arr[:, 2])
    return out, other


def _sample(seed: int, days: float, step_s: int, gpu_types: Sequence[str] | None, start: datetime,
            clouds: Sequence[str]) -> Iterator[tuple[datetime, GpuTypeInfo, str, float | None]]:
    if not days > 0 or not step_s > 0:
        raise ConfigError(f"days and step_s must be positive, got days={days!r}, step_s={step_s!r}", key="days")
    catalog = {info.id: info for info in load_catalog()}
    wanted = list(gpu_types) if gpu_types is not None else list(catalog)
    unknown = [g for g in wanted if g not in catalog]
    if unknown:
        raise ConfigError(f"unknown GPU type(s) {unknown}; known: {', '.join(catalog)}", key="gpu_types")
    t0 = to_epoch(start)
    # Every step inside the span [start, start + days): a span shorter than a step still has its start
    # (0.1 day at 1 h gave 2 instants, 0.001 day none), a whole number of steps is as it always was.
    times = t0 + np.arange(math.ceil(days * 86400 / step_s - 1e-9)) * float(step_s)
    stamps = [datetime.fromtimestamp(t, tz=UTC) for t in times]
    for gpu_type in wanted:
        info = catalog[gpu_type]
        for cloud in clouds:
            if info.on_demand(cloud) is None:
                continue
            market = ModelMarket(seed, market_params(seed, info, cloud))
            for stamp, value in zip(stamps, market.values_at(times), strict=True):
                yield stamp, info, cloud, None if math.isnan(value) else float(value)


def generate_quotes(seed: int, days: float, step_s: int = 300, gpu_types: Sequence[str] | None = None,
                    *, start: datetime = DEFAULT_START, clouds: Sequence[str] = ("SECURE", "COMMUNITY"),
                    ) -> list[PriceQuote]:
    """`generate_trace` as `PriceQuote`s (gpu_count 1), ready for `bidder.traces.write_trace` or a Store."""
    return [PriceQuote(ts=ts, gpu_type_id=info.id, cloud=cloud, gpu_count=1, minimum_bid_price=floor,
                       uninterruptable_price=info.on_demand(cloud), memory_in_gb=info.memory_in_gb,
                       display_name=info.display_name, list_spot_price=info.list_spot(cloud),
                       list_on_demand_price=info.on_demand(cloud))
            for ts, info, cloud, floor in _sample(seed, days, step_s, gpu_types, start, clouds)]


def generate_trace(seed: int, days: float, step_s: int = 300, gpu_types: Sequence[str] | None = None,
                   *, start: datetime = DEFAULT_START, clouds: Sequence[str] = ("SECURE", "COMMUNITY"),
                   ) -> list[dict[str, Any]]:
    """Sample the emulator's market model on a grid: the same prices `Emulator(seed=seed)` quotes.

    Returns trace rows (docs/traces.md) as dicts: ts (ISO text), gpu_type, minimum_bid_price
    (None = no spot), uninterruptable_price, cloud, gpu_count (1), ordered by market then time.
    `gpu_types` limits the GPU types (default: the whole catalogue); types without spot in a
    cloud give rows whose minimum_bid_price is always None.
    """
    return [{"ts": to_iso(ts), "gpu_type": info.id, "minimum_bid_price": floor,
             "uninterruptable_price": info.on_demand(cloud), "cloud": cloud, "gpu_count": 1}
            for ts, info, cloud, floor in _sample(seed, days, step_s, gpu_types, start, clouds)]
