"""Hand-checkable price histories for the backtest tests."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bidder.backtest.engine import Market, PriceHistory
from bidder.backtest.history import history_from_series

__all__ = ["STEP", "T0", "make_history", "square_wave"]

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
