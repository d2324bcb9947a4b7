"""Hand-checkable price histories for the backtest tests."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import numpy as np

from bidder.backtest.engine import HistoryView, Market, PriceHistory
from bidder.backtest.history import history_from_series
from bidder.backtest.optimum import Segment
from bidder.backtest.strategies import KEEP, WAIT, Action, RunState

__all__ = ["STEP", "T0", "RandomStrategy", "every_plan", "make_history", "square_wave"]

STEP = 300.0
T0 = 1_767_225_600.0  # 2026-01-01T00:00Z


def make_history(floors: Sequence[Sequence[float]] | np.ndarray, on_demand: float | np.ndarray = 1.0,
                 names: Sequence[str] | None = None, step: float = STEP) -> PriceHistory:
    """Markets on one 5-minute grid from T0; `floors` is (markets, samples); NaN = no spot."""
    floors = np.atleast_2d(np.asarray(floors, dtype=float))
    ods = np.broadcast_to(np.asarray(on_demand, dtype=float), floors.shape)
    ts = T0 + step * np.arange(floors.shape[1])
    names = names or [f"GPU{i}" for i in range(floors.shape[0])]
    return history_from_series([(Market(name, "COMMUNITY"), ts, floors[i].copy(), ods[i].copy())
                                for i, name in enumerate(names)])


def square_wave(hours: float, low: float, high: float, period_h: float = 2.0) -> np.ndarray:
    """`low` for the first half of each period, `high` for the second, sampled every 5 minutes."""
    half = round(period_h * 3600 / STEP / 2)
    return np.where((np.arange(round(hours * 3600 / STEP)) // half) % 2 == 0, low, high)


class RandomStrategy:
    """Does odd things on purpose: random markets, bids, waits and switches. Each decision keeps the pod,
    waits, starts on-demand or bids, by where a uniform draw falls among `odds`; a bid is the floor (0.5
    without one) times a uniform draw from `bids`, never above `cap`."""

    name = "random"

    def __init__(self, seed: int, *, odds: tuple[float, float, float] = (0.7, 0.8, 0.85),
                 bids: tuple[float, float] = (1.0, 2.0), cap: float = math.inf) -> None:
        self.rng, self.odds, self.bids, self.cap = random.Random(seed), odds, bids, cap

    def decide(self, view: HistoryView, state: RunState) -> Action:
        roll = self.rng.random()
        m = self.rng.randrange(len(view.markets))
        keep, wait, on_demand = self.odds
        if roll < keep:
            return KEEP
        if roll < wait:
            return WAIT
        if roll < on_demand:
            return Action("on_demand", m)
        floor = view.floors_now()[m]
        return Action("spot", m, min(self.cap, (0.5 if np.isnan(floor) else float(floor)) * self.rng.uniform(*self.bids)))


def every_plan(floor: np.ndarray, od_raw: np.ndarray, k: int, od_held: np.ndarray | None = None,
               cap: float = math.inf) -> list[list[Segment]]:
    """Every plan of segments over samples 0..k-1 that never pays above `cap`: each sample idle or in a
    run; a spot run bids the highest floor it spans (capacity throughout, bid <= cap), an on-demand run
    needs a quote at its start (and, given `od_held`, the held price <= cap throughout)."""
    plans: list[list[Segment]] = []

    def walk(i: int, done: list[Segment]) -> None:
        plans.append(done)
        for a in range(i, k):
            for m in range(floor.shape[0]):
                for e in range(a + 1, k + 1):
                    if not np.isnan(od_raw[m, a]) and (od_held is None or np.all(od_held[m, a:e] <= cap)):
                        walk(e, [*done, Segment("on_demand", m, a, e)])
                    if not np.any(np.isnan(floor[m, a:e])) and np.max(floor[m, a:e]) <= cap:
                        walk(e, [*done, Segment("spot", m, a, e, bid=float(np.max(floor[m, a:e])))])

    walk(0, [])
    return plans
