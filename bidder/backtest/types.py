"""The types the backtest's modules share: a market, a job placed at any start, and the view of the
market a strategy sees. `engine`, `history` and `strategies` all import these; this module imports
none of them, so the three form no circle.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from bidder.errors import ConfigError
from bidder.models import DEFAULT_MARKET, JobSpec, MarketKey, market_key

__all__ = ["BacktestJob", "HistoryView", "Market", "work_words"]


# -- a market --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Market:
    gpu_type_id: str
    cloud: str
    gpu_count: int = 1
    memory_in_gb: int | None = None
    display_name: str | None = None
    market: str = DEFAULT_MARKET

    @property
    def key(self) -> MarketKey:
        return market_key(self.gpu_type_id, self.cloud, self.gpu_count, self.market)

    @property
    def label(self) -> str:
        count = f" x{self.gpu_count}" if self.gpu_count != 1 else ""
        where = "" if self.market == DEFAULT_MARKET else f" ({self.market})"
        return f"{self.gpu_type_id} {self.cloud}{count}{where}"


# -- the job ---------------------------------------------------------------------------------------------
def work_words(work_hours: float, gpu_count: int) -> str:
    """A batch job's size for titles: "100 GPU-hour job" on one GPU; "10 h on a 2-GPU pod (20
    GPU-hours)" on more (the work is the pod's hours: "10 GPU-hour job" priced 20)."""
    if gpu_count == 1:
        return f"{work_hours:g} GPU-hour job"
    return f"{work_hours:g} h on a {gpu_count}-GPU pod ({work_hours * gpu_count:g} GPU-hours)"


@dataclass(frozen=True)
class BacktestJob:
    """A job placed at any start time: a batch of `work_hours` with a deadline `deadline_hours`
    after its start (None = none), or a service kept running `keep_running_hours`."""

    gpu_types: tuple[str, ...] = ()
    min_vram_gb: int | None = None
    gpu_count: int = 1
    cloud: str = "ANY"
    work_hours: float | None = 100.0
    deadline_hours: float | None = 168.0
    keep_running_hours: float | None = None
    restart_overhead_hours: float = 0.25
    speed_factors: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        if self.keep_running_hours is None and (self.work_hours is None or self.work_hours <= 0):
            raise ConfigError("a batch job needs work_hours > 0 (or keep it running)", key="hours")
        if self.keep_running_hours is not None and self.keep_running_hours <= 0:
            raise ConfigError("a kept-running job needs a span > 0", key="days")
        if self.deadline_hours is not None and self.deadline_hours <= 0:
            raise ConfigError("the deadline must be after the start", key="deadline")

    @property
    def keep_running(self) -> bool:
        return self.keep_running_hours is not None

    def speed_of(self, gpu_type_id: str) -> float:
        return dict(self.speed_factors).get(gpu_type_id, 1.0)

    @property
    def span_hours(self) -> float | None:
        """How long after its start a window must have data: the deadline, the service span, or
        (no deadline) the work itself."""
        if self.keep_running_hours is not None:
            return self.keep_running_hours
        return self.deadline_hours if self.deadline_hours is not None else self.work_hours

    def spec(self, start: datetime) -> JobSpec:
        """The production JobSpec for a start time (absolute deadline)."""
        deadline = None
        if not self.keep_running and self.deadline_hours is not None:
            deadline = start + timedelta(hours=self.deadline_hours)
        return JobSpec(gpu_types=self.gpu_types, min_vram_gb=self.min_vram_gb, gpu_count=self.gpu_count,
                       cloud=self.cloud, work_hours=None if self.keep_running else self.work_hours,
                       keep_running=self.keep_running, deadline=deadline,
                       restart_overhead_hours=self.restart_overhead_hours, speed_factors=self.speed_factors)

    def as_dict(self) -> dict[str, Any]:
        return {"gpu_types": list(self.gpu_types), "min_vram_gb": self.min_vram_gb, "gpu_count": self.gpu_count,
                "cloud": self.cloud, "work_hours": None if self.keep_running else self.work_hours,
                "keep_running": self.keep_running,
                "keep_running_days": None if self.keep_running_hours is None else self.keep_running_hours / 24,
                "deadline_hours": None if self.keep_running else self.deadline_hours,
                "restart_overhead_hours": self.restart_overhead_hours,
                **({"speed_factors": dict(self.speed_factors)} if self.speed_factors else {})}


# -- what a strategy sees --------------------------------------------------------------------------------
class HistoryView:
    """The market as it has been shown so far: samples 0..n-1 of every market, and `now`.

    The engine writes each sample into these buffers only when its time comes, so nothing here
    (not even `.base` of a returned array) holds a future price. Arrays are read-only views. Vast's
    stored offers (a database's) are read through `machine_hazard` alone, which takes none after now.
    """

    __slots__ = ("_floor", "_machines", "_n", "_now", "_on_demand", "_ts", "markets")

    def __init__(self, markets: Sequence[Market], capacity: int, machines: Any = None) -> None:
        self.markets: tuple[Market, ...] = tuple(markets)
        self._machines = machines  # `bidder.backtest.machines.MachineOffers`, or None
        self._ts = np.full(capacity, np.nan)
        self._floor = np.full((len(self.markets), capacity), np.nan)
        self._on_demand = np.full((len(self.markets), capacity), np.nan)
        self._n = 0
        self._now = math.nan
        for array in (self._ts, self._floor, self._on_demand):
            array.flags.writeable = False

    @property
    def n(self) -> int:
        """Samples seen so far (the latest is index n - 1)."""
        return self._n

    @property
    def now(self) -> float:
        """The decision time, epoch seconds (at or after the latest sample)."""
        return self._now

    @property
    def ts(self) -> np.ndarray:
        return self._ts[: self._n]

    def floor(self, market: int) -> np.ndarray:
        return self._floor[market, : self._n]

    def on_demand(self, market: int) -> np.ndarray:
        return self._on_demand[market, : self._n]

    def floors_now(self) -> np.ndarray:
        """The latest floor of every market (a copy; NaN = no spot now)."""
        return self._floor[:, self._n - 1].copy()

    def on_demand_now(self) -> np.ndarray:
        return self._on_demand[:, self._n - 1].copy()

    def machine_hazard(self, market: int, at: float | None = None) -> Any:
        """How often a Vast market's machines pause a spot instance (`bidder.machine_hazard.MachineHazard`),
        fitted on the offers stored up to `at` (default: now; never later than now). None: no stored
        offers (a trace), too few, or not a Vast market."""
        m = self.markets[market]
        if self._machines is None or m.market != "vast":
            return None
        return self._machines.hazard(m.key, self._now if at is None else min(at, self._now))
