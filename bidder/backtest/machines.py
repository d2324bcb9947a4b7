"""Vast's machine pauses in a backtest, from the offers a database holds.

Vast pauses an interruptible instance when its machine is rented on-demand or a higher bid takes it
there; the market's floor shows neither (`bidder.machine_hazard`). Live, a $0.199 bid was paused 14
times in 21 hours while the floor crossed it twice, and `bidder tick` plans with those pauses
(`bidder.advisor.machine_pauses`). A backtest of a database `bidder collect` filled reads each Vast
market's stored offers once (`with_machine_offers`) and then:

- the `bidder` strategy's statistics and plans count the pauses as the tick's do, from the offers up
  to the decision (`MachineOffers.hazard`: refitted once per virtual hour, on offers up to that hour,
  as a backtest refits its floor models once a day; the tick refits at every tick);
- the engine pauses a spot run on a Vast market by its machine (`MachineOffers.pause_after`): random
  events at the rate those offers show for the run's bid premium over the floor, drawn from the
  backtest's seed. The events are one Poisson process per market and history segment, in time and in
  rate: a run is paused by the first event under its own rate, so every strategy replayed meets the same
  pauses, and a higher bid (a lower rate) a subset of a lower one's.

A trace, or a database with no offers stored, holds no machine: nothing here applies, and a backtest
of a Vast market counts only the floor's interruptions (a lower bound; `bidder backtest` says so).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from bidder.advisor import machine_pauses
from bidder.machine_hazard import MachineHazard
from bidder.models import MACHINE_HISTORY_DAYS, MarketKey

__all__ = ["REFIT_S", "MachineOffers", "with_machine_offers"]

#: How often a backtest refits a market's machine pauses (seconds of the trace): a week of offers of
#: 200 machines takes 0.14 s to fit, too slow for every 5-minute sample of a long history.
REFIT_S = 3600.0

Series = tuple[np.ndarray, np.ndarray, np.ndarray]  # snapshot time (epoch s), machine id, min_bid per GPU


class MachineOffers:
    """The stored Vast offers of a backtest's markets, by (GPU name, GPU count, verified), read once,
    with each market's fitted pauses and pause events remembered (shared by every window and strategy)."""

    def __init__(self, series: Mapping[tuple[str, int, bool], Series]) -> None:
        self.series: dict[tuple[str, int, bool], Series] = {}
        for name, (ts, machine, min_bid) in series.items():
            order = np.argsort(ts, kind="stable")
            self.series[name] = (np.asarray(ts, dtype=float)[order], np.asarray(machine)[order],
                                 np.asarray(min_bid, dtype=float)[order])
        self._fits: dict[tuple[MarketKey, float], MachineHazard | None] = {}
        self._events: dict[tuple[MarketKey, float, float, int], list[tuple[float, float]]] = {}

    @property
    def first(self) -> float | None:
        """The first stored offer's time (epoch seconds), over every market; None: none."""
        firsts = [float(s[0][0]) for s in self.series.values() if len(s[0])]
        return min(firsts) if firsts else None

    def machine_series(self, gpu_name: str, num_gpus: int, verified: bool, since: datetime | None = None,
                       until: datetime | None = None) -> Series:
        """As `bidder.store.Store.machine_series` (since inclusive, until exclusive), from memory."""
        ts, machine, min_bid = self.series.get((gpu_name, int(num_gpus), bool(verified)),
                                               (np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros(0)))
        lo = 0 if since is None else int(np.searchsorted(ts, since.timestamp(), side="left"))
        hi = len(ts) if until is None else int(np.searchsorted(ts, until.timestamp(), side="left"))
        return ts[lo:hi], machine[lo:hi], min_bid[lo:hi]

    def hazard(self, key: MarketKey, at: float) -> MachineHazard | None:
        """The market's pauses as the tick would fit them at the last whole REFIT_S at or before `at`
        (epoch seconds): from the offers stored up to then, never later ones. None: too few, or not Vast."""
        fitted = math.floor(at / REFIT_S) * REFIT_S
        memo = (key, fitted)
        if memo not in self._fits:
            self._fits[memo] = machine_pauses(self, key, datetime.fromtimestamp(fitted, UTC))
        return self._fits[memo]

    def pause_after(self, key: MarketKey, t: float, until: float, segment: tuple[float, float], bid: float,
                    floor: float, seed: int) -> float:
        """When a spot run bidding `bid` on a market whose floor is `floor` is first paused by its machine
        after `t` and before `until` (epoch seconds, within `segment`, the history's sample span that holds
        them): the first of the segment's events under the rate for the bid's premium over the floor
        (`MachineHazard.rate_at`, as `MarketStats.with_machine_pauses` reads it); +inf when none."""
        hazard = self.hazard(key, segment[0])
        if hazard is None:
            return math.inf
        rate = float(hazard.rate_at(bid / floor - 1.0 if floor > 0 else 0.0))
        for when, level in self._segment_events(key, segment, float(hazard.rates[0]), seed):
            if when >= until:
                break
            if when > t and level < rate:
                return when
        return math.inf

    def _segment_events(self, key: MarketKey, segment: tuple[float, float], top: float,
                        seed: int) -> list[tuple[float, float]]:
        """The segment's events: (time, level) of a Poisson process of `top` (the highest rate there, a bid
        at the floor's) per hour, each at a level uniform in [0, top). Drawn from the seed, the market and
        the segment's start alone: the same for every window and strategy."""
        memo = (key, segment[0], segment[1], seed)
        events = self._events.get(memo)
        if events is None:
            rng = random.Random(f"{seed}|{'|'.join(map(str, key))}|{segment[0]!r}")
            events, when = [], segment[0]
            while top > 0:
                when += rng.expovariate(top) * 3600.0
                if when >= segment[1]:
                    break
                events.append((when, rng.random() * top))
            self._events[memo] = events
        return events


def with_machine_offers(history: Any, store: Any) -> Any:
    """`history` (a `PriceHistory`) with the offers `store` holds of its Vast markets, from a week before
    its first sample (what its first decisions read) to its end; unchanged when it has no Vast market or
    the store no offer of them (a trace's history, or a database filled before offers were stored)."""
    keys = [m.key for m in history.markets if m.market == "vast"]
    if not keys or getattr(store, "machine_series", None) is None:
        return history
    since = datetime.fromtimestamp(float(history.ts[0]), UTC) - timedelta(days=MACHINE_HISTORY_DAYS)
    until = datetime.fromtimestamp(history.end, UTC) + timedelta(seconds=1)
    series = {}
    for key in keys:
        name = (key[0], int(key[2]), key[1] == "VERIFIED")
        found = store.machine_series(*name, since=since, until=until)
        if len(found[0]):
            series[name] = found
    if not series:
        return history
    return replace(history, machines=MachineOffers(series))
