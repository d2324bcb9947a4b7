"""The emulator's clock: virtual time that moves only when told, plus an optional pacer that moves
it with the wall clock (`bidder sim serve --speed N`: N market seconds per real second).

Time is kept as float epoch seconds so that billing per second is exact; `datetime`s are made only
at the edges (the HTTP answers and the Python API).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from bidder.errors import ConfigError

__all__ = ["GRID_S", "MAX_ADVANCE_S", "Pacer", "VirtualClock", "check_advance", "from_epoch", "to_epoch"]

#: The market's internal grid: prices step and interruptions are checked every GRID_S seconds
#: of virtual time, whatever chunks time is advanced in (so a seed gives one history).
GRID_S = 60
#: The most one advance may move the clock: a spot pod's floors are checked on the grid over the whole
#: span, so an advance of 1e30 seconds would never return (and no date that far off exists).
MAX_ADVANCE_S = 366 * 86400


#: The last second a datetime can hold (9999-12-31T23:59:59Z): the clock never moves past it.
LAST_EPOCH_S = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()


def check_advance(seconds: float, now_s: float | None = None) -> None:
    """Refuse a move backwards, by a non-number (NaN, inf), by more than MAX_ADVANCE_S, or (from
    `now_s`) past the last time a date can hold."""
    if not 0 <= seconds <= MAX_ADVANCE_S:
        raise ConfigError(f"seconds must be from 0 to {MAX_ADVANCE_S} (366 days) in one advance, got {seconds!r}")
    if now_s is not None and now_s + seconds > LAST_EPOCH_S:
        raise ConfigError(f"an advance of {seconds:g} s would move the clock past 9999-12-31T23:59:59Z")


def to_epoch(value: datetime) -> float:
    if value.tzinfo is None:
        raise ConfigError(f"datetime {value!r} has no time zone: give an aware UTC datetime")
    return value.timestamp()


def from_epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


class VirtualClock:
    """Epoch seconds that only move forward, and only through `advance`."""

    def __init__(self, start: datetime) -> None:
        self._now = to_epoch(start)

    @property
    def now_s(self) -> float:
        return self._now

    @property
    def now(self) -> datetime:
        return from_epoch(self._now)

    def advance(self, seconds: float) -> float:
        check_advance(seconds, self._now)
        self._now += float(seconds)
        return self._now


class Pacer:
    """A daemon thread that calls `advance(seconds)` with `speed` virtual seconds per real second.

    `advance` is the emulator's own (it takes the world lock), so the pacer never touches the
    world directly. `stop()` wakes the thread at once and joins it.
    """

    def __init__(self, speed: float, advance: Callable[[float], object], interval_s: float = 0.1) -> None:
        if not speed > 0:
            raise ConfigError(f"speed must be a positive number of market seconds per real second, got {speed!r}")
        self.speed = float(speed)
        self._advance = advance
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bidder-sim-pacer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(self._interval):
            now = time.monotonic()
            self._advance((now - last) * self.speed)
            last = now

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
