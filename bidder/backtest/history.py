"""Price history for backtests: markets on one time grid, loaded from a trace file or the Store.

    history = load_trace("data/traces/sim-seed1-14d.csv")     # TraceFormatError names line + column
    history = load_store(Store.open("data/bidder.db"))         # every market, through floor_series
    history.select(job).between(start, end)

Each market's price holds from its sample until its next one (a step function), so markets sampled
at different instants share the union of their timestamps. Before a market's first sample its
prices are NaN (not available).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from bidder.backtest.types import BacktestJob, Market
from bidder.errors import ConfigError
from bidder.models import MarketKey, PriceQuote, market_of

__all__ = ["Market", "PriceHistory", "ffill", "history_from_quotes", "history_from_series", "load_store",
           "load_trace"]


@dataclass(frozen=True, eq=False)
class PriceHistory:
    """Markets on one time grid: `ts` (N,) epoch seconds ascending; `floor`, `on_demand` (M, N) USD
    per GPU-hour (NaN = none). A market's price holds from its sample to its next one; before its
    first sample it is NaN. The last sample holds for `step_s` seconds."""

    ts: np.ndarray
    floor: np.ndarray
    on_demand: np.ndarray
    markets: tuple[Market, ...]
    step_s: float
    #: The stored Vast offers of its markets (`bidder.backtest.machines.MachineOffers`): the engine pauses
    #: Vast spot runs by their machines, and bidder plans with those pauses. None: a trace's history.
    machines: Any = None

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    @property
    def end(self) -> float:
        return float(self.ts[-1]) + self.step_s

    def priced(self) -> np.ndarray:
        """(N,) bool: the samples at which some market quotes a price (a floor or an on-demand)."""
        return ~(np.isnan(self.floor) & np.isnan(self.on_demand)).all(axis=0)

    def on_demand_held(self) -> np.ndarray:
        """On-demand prices carried forward through NaN gaps (what a running on-demand pod pays)."""
        return ffill(self.on_demand)

    def subset(self, indices: Sequence[int]) -> PriceHistory:
        idx = list(indices)
        return replace(self, floor=self.floor[idx], on_demand=self.on_demand[idx],
                       markets=tuple(self.markets[i] for i in idx))

    def between(self, start: float | None = None, end: float | None = None) -> PriceHistory:
        """The samples in [start, end) (epoch seconds; None = open)."""
        lo = 0 if start is None else int(np.searchsorted(self.ts, start, side="left"))
        hi = len(self) if end is None else int(np.searchsorted(self.ts, end, side="left"))
        if hi <= lo:
            raise ConfigError("no price samples between the start and the end given", key="start")
        step = self.step_s if hi == len(self) else min(self.step_s, float(end - self.ts[hi - 1]))  # type: ignore[operator]
        return replace(self, ts=self.ts[lo:hi], floor=self.floor[:, lo:hi], on_demand=self.on_demand[:, lo:hi],
                       step_s=step)

    def select(self, job: BacktestJob) -> PriceHistory:
        """The markets the job may use (GPU types or minimum VRAM, GPU count, cloud). ConfigError if none."""
        keep = []
        for i, m in enumerate(self.markets):
            if m.gpu_count != job.gpu_count:
                continue
            if job.cloud != "ANY" and m.cloud != job.cloud:
                continue
            if getattr(job, "market", "any") not in ("any", m.market):
                continue
            if job.gpu_types and m.gpu_type_id not in job.gpu_types:
                continue
            if job.min_vram_gb is not None and (m.memory_in_gb is None or m.memory_in_gb < job.min_vram_gb):
                continue
            keep.append(i)
        if not keep:
            wanted = (", ".join(job.gpu_types) if job.gpu_types else
                      f">= {job.min_vram_gb} GB VRAM" if job.min_vram_gb is not None else "any GPU type")
            # The job's own GPU types first, at the counts and clouds the history has them (a --gpus 3 the
            # history lacks listed the first 8 markets of every type, alphabetically).
            own = sorted({m.label for m in self.markets if m.gpu_type_id in job.gpu_types})
            have = own or sorted({m.label for m in self.markets})
            shown = ", ".join(have[:8]) + (f" and {len(have) - 8} more" if len(have) > 8 else "")
            raise ConfigError(f"no market in the history matches the job ({wanted}, {job.gpu_count} GPU(s), "
                              f"cloud {job.cloud}); the history has{' these GPU types as' if own else ''}: {shown}",
                              key="gpu")
        return self.subset(keep)


def ffill(values: np.ndarray) -> np.ndarray:
    """Carry the last non-NaN value forward along the last axis (leading NaNs stay)."""
    n = values.shape[-1]
    idx = np.where(np.isnan(values), 0, np.arange(n))
    np.maximum.accumulate(idx, axis=-1, out=idx)
    out = np.take_along_axis(values, idx, axis=-1)
    return out


#: Timestamps all within this share of their usual step (and at most SNAP_MAX_S seconds) of a regular
#: grid of that step are put on it. A collector's 5-minute samples come a few seconds late; steps of
#: 299-303 s left the optimum no whole work unit, and it found no plan (or a bound 30-50% too low). It
#: now bounds such times (two phased counts, a gap of up to about 1%), but on the grid it is exact.
SNAP_SHARE, SNAP_MAX_S = 0.05, 30.0


def on_grid(ts: np.ndarray) -> np.ndarray:
    """`ts` (ascending epoch seconds) moved onto the regular grid of its median step (whole seconds) when
    every sample is within SNAP_SHARE of a step and SNAP_MAX_S of it and their order holds; else `ts`
    itself, as is a trace already on such a grid (unchanged to the bit)."""
    if ts.size < 3:
        return ts
    step = float(np.round(np.median(np.diff(ts))))
    if not step > 0:
        return ts
    rel = ts - ts[0]
    offset = float(np.round(np.median(rel - np.round(rel / step) * step)))  # the grid's phase
    snapped = ts[0] + offset + np.round((rel - offset) / step) * step
    moved = np.abs(snapped - ts)
    if not moved.max() > 0 or moved.max() > min(SNAP_SHARE * step, SNAP_MAX_S) or np.any(np.diff(snapped) <= 0):
        return ts
    return snapped


def history_from_series(series: Sequence[tuple[Market, np.ndarray, np.ndarray, np.ndarray]],
                       step_s: float | None = None) -> PriceHistory:
    """Put per-market series (ts, floor, on_demand) on the union of their timestamps, each price held
    (the union moved onto a regular grid when it is within seconds of one: `on_grid`)."""
    series = [s for s in series if len(s[1])]
    if not series:
        raise ConfigError("the price history is empty: import a trace or collect prices first", key="history")
    grid = np.unique(np.concatenate([s[1] for s in series]))
    snapped = on_grid(grid)
    floor = np.full((len(series), grid.size), np.nan)
    on_demand = np.full((len(series), grid.size), np.nan)
    steps = []
    for row, (_, ts, fl, od) in enumerate(series):
        order = np.argsort(ts, kind="stable")
        ts, fl, od = ts[order], fl[order], od[order]
        pos = np.searchsorted(ts, grid, side="right") - 1
        seen = pos >= 0
        floor[row, seen] = fl[pos[seen]]
        on_demand[row, seen] = od[pos[seen]]
        if ts.size > 1:
            own = snapped[np.searchsorted(grid, ts)]  # (the grid holds every ts; moved as the grid is)
            steps.append(float(np.median(np.diff(own))))
    grid = snapped
    if step_s is None:
        step_s = min(steps) if steps else 300.0
    return PriceHistory(ts=grid.astype(float), floor=floor, on_demand=on_demand,
                        markets=tuple(s[0] for s in series), step_s=float(step_s))


def history_from_quotes(quotes: Iterable[PriceQuote], vram: Mapping[str, int | None] | None = None,
                        names: Mapping[str, str | None] | None = None) -> PriceHistory:
    """A PriceHistory from quotes (any order). `vram` / `names` map GPU type ids to VRAM and display
    names (for `--min-vram` and labels); quotes that carry them win."""
    groups: dict[MarketKey, list[PriceQuote]] = {}
    for q in quotes:
        groups.setdefault(q.key, []).append(q)
    series = []
    for key in sorted(groups, key=lambda k: (len(k) > 3, k)):  # RunPod's first, as the store lists them
        rows = groups[key]
        memory = next((q.memory_in_gb for q in rows if q.memory_in_gb), None) or (vram or {}).get(key[0])
        display = next((q.display_name for q in rows if q.display_name), None) or (names or {}).get(key[0])
        ts = np.array([q.ts.timestamp() for q in rows])
        fl = np.array([np.nan if q.minimum_bid_price is None else q.minimum_bid_price for q in rows])
        od = np.array([np.nan if q.uninterruptable_price is None else q.uninterruptable_price for q in rows])
        series.append((Market(key[0], key[1], key[2], memory_in_gb=memory, display_name=display,
                              market=market_of(key)), ts, fl, od))
    return history_from_series(series)


def load_trace(path: str | Path, *, market: str | None = None) -> PriceHistory:
    """A trace CSV (docs/traces.md, read by `bidder.traces`); raises TraceFormatError naming the
    line and column of a bad row. VRAM comes from RunPod's catalogue for the types it knows.
    `market` (runpod, vast) keeps that market's rows only (a row with no market is RunPod's)."""
    from bidder.sim.catalog import load_catalog
    from bidder.traces import read_trace

    catalog = load_catalog()
    quotes = everything = read_trace(path)
    if market is not None:
        held = sorted({q.market for q in quotes})
        quotes = [q for q in quotes if q.market == market]
        if not quotes:
            raise ConfigError(f"{path} holds no {market} rows (its markets: {', '.join(held)}): "
                              "give another --market, or leave it out", key="market")
    if not any(_priced(q) for q in quotes):  # (every strategy bought nothing: $0, no deadline met, exit 0)
        if any(_priced(q) for q in everything):
            raise ConfigError(f"{path} holds no {market} price: every minimum_bid_price and uninterruptable_price "
                              f"of its {market} rows is empty (or 0); give another --market, or leave it out",
                              key="market")
        raise ConfigError(f"{path} holds no price: every minimum_bid_price and uninterruptable_price is empty (or "
                          "0), so a backtest has nothing to buy; fill in the prices (USD per GPU-hour, "
                          "docs/traces.md) or replay another trace", key="trace")
    return history_from_quotes(quotes, vram={g.id: g.memory_in_gb for g in catalog},
                               names={g.id: g.display_name for g in catalog})


def _priced(quote: PriceQuote) -> bool:
    return quote.minimum_bid_price is not None or quote.uninterruptable_price is not None


def load_store(store: Any, since: datetime | None = None, until: datetime | None = None, *,
               market: str | None = None) -> PriceHistory:
    """Every market's history from a `bidder.store.Store` (through `floor_series`); `market`
    (runpod, vast) keeps that market's only."""
    infos = {g.id: g for g in store.gpu_type_infos()}
    series = []
    keys = store.markets(market)
    if market is not None and not keys and store.market_names():
        raise ConfigError(f"{store.path} holds no {market} history (its markets: {', '.join(store.market_names())}): "
                          "give another --market, or leave it out", key="market")
    for key in keys:
        gpu_type_id, cloud, count = key[0], key[1], key[2]
        fs = store.floor_series(gpu_type_id, cloud, count, since=since, until=until, market=market_of(key))
        info = infos.get(gpu_type_id)
        series.append((Market(gpu_type_id, cloud, count, memory_in_gb=info.memory_in_gb if info else None,
                              display_name=info.display_name if info else None, market=market_of(key)),
                       fs.ts, fs.floor, fs.on_demand))
    history = history_from_series(series)
    if not history.priced().any():
        raise ConfigError(f"{store.path} holds no price: no {market + ' ' if market else ''}quote it stored has a "
                          "spot floor or an on-demand price, so a backtest has nothing to buy; collect prices "
                          "(`bidder collect`) or import a trace that has them", key="history")
    return history
