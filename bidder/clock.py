"""Which clock a command runs on: a time it was given (`--now`), the API server's (bidder's
emulator), or the wall clock.

bidder's emulator runs on a virtual clock and says so: every answer carries
`X-Bidder-Sim-Now: <ISO UTC>` (`SIM_NOW_HEADER`), a header RunPod never sends. A client remembers
the newest value it saw (`server_now`); `Clock.now()` takes, in order:

1. the time it was given (`--now`): source "given";
2. the server's time, when the server has told it (the header on any earlier answer, or, if no
   request has been made yet, one `GET /sim/now` that the client sends only to a server on this
   machine, where the emulator lives; never to RunPod): source "emulator";
3. the wall clock: source "wall".

The store keeps the source beside every snapshot and observation (`clock` columns), so commands
that only read the database can run on the emulator's time too (`bidder.store`), and a command
whose time is earlier than the newest data refuses (`check_not_past`) unless told it replays on
purpose. Neutral: no client, store or emulator import; the CLI passes a `Clock` around.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Protocol

from bidder.errors import ApiError, ConfigError, TimeRunsBackwards
from bidder.units import parse_timestamp, to_iso

__all__ = [
    "CLOCK_SOURCES",
    "FUTURE_SLACK",
    "LAST_NOW",
    "SIM_NOW_HEADER",
    "WALL_SLACK",
    "Clock",
    "ServerTime",
    "ServerTimes",
    "check_not_past",
    "check_not_too_late",
    "server_time",
    "too_late",
]

#: The response header carrying the emulator's virtual time. RunPod never sends it.
SIM_NOW_HEADER = "X-Bidder-Sim-Now"
#: What the `clock` columns of the store may hold; rows written before they existed read "wall".
CLOCK_SOURCES: tuple[str, ...] = ("wall", "emulator", "given")


def server_time(headers: Mapping[str, str]) -> datetime | None:
    """The emulator's time from an answer's headers; None when absent (RunPod) or unreadable."""
    value = headers.get(SIM_NOW_HEADER)
    if not value:
        return None
    try:
        return parse_timestamp(value)
    except ValueError:
        return None


class ServerTime(Protocol):
    """What a market client offers the clock (RunPodClient does; any client may)."""

    @property
    def server_now(self) -> datetime | None: ...

    def probe_server_now(self) -> datetime | None: ...


class ServerTimes:
    """Several clients as one `ServerTime`, for a command that talks to more than one market (RunPod
    and Vast): the newest time any of them has heard; a probe asks each in turn until one tells. So
    the emulator's clock is found whichever market it answers for."""

    def __init__(self, *servers: ServerTime | None) -> None:
        self.servers = [s for s in servers if s is not None]

    @property
    def server_now(self) -> datetime | None:
        return max((t for t in (s.server_now for s in self.servers) if t is not None), default=None)

    def probe_server_now(self) -> datetime | None:
        failed: ApiError | None = None
        for server in self.servers:
            try:
                told = server.probe_server_now()
            except ApiError as exc:  # an emulator's address that did not answer: another may tell
                failed = failed or exc
                continue
            if told is not None:
                return told
        if failed is not None:
            raise failed
        return self.server_now


class Clock:
    """One command's time. `now()` is cheap after the first call; `now(fresh=True)` asks a server
    known to be the emulator again (a `collect --every` loop, whose cycles are minutes apart)."""

    def __init__(self, given: datetime | None = None, server: ServerTime | None = None,
                 wall: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.given = given
        self.server = server
        self._wall = wall
        self.source = "given" if given is not None else "wall"

    def now(self, *, fresh: bool = False) -> datetime:
        if self.given is not None:
            return self.given
        if self.server is not None:
            seen = self.server.server_now
            if seen is None or fresh:
                # (A server that may be the emulator and does not answer raises: its time is unknown.)
                seen = self.server.probe_server_now() or seen
            if seen is not None:
                self.source = "emulator"
                return seen
        self.source = "wall"
        return self._wall()

    def describe(self) -> str:
        return {"given": "the time given with --now", "emulator": "the emulator's virtual clock",
                "wall": "the wall clock"}[self.source]


#: How far after now a time may lie in what a command stores: clocks differ, and a trace written on
#: one ahead of this machine's is no mistake; a year 9999 is (import-trace's rows, a writing command's --now).
FUTURE_SLACK = timedelta(days=1)

#: On the wall clock, data up to this far ahead is not "the future": two cron jobs started together
#: (collect and tick) may write in either order, and machines' clocks differ by a few seconds.
WALL_SLACK = timedelta(seconds=60)


def check_not_past(now: datetime, newest: tuple[datetime, str] | None, *, where: str,
                   slack: timedelta = timedelta(0)) -> None:
    """Refuse a time earlier than the newest data: (ts, what) from `Store.newest_time()`; `slack`
    tolerates data that far ahead (WALL_SLACK on the wall clock, none on a virtual one)."""
    if newest is None or now + slack >= newest[0]:
        return
    ts, what = newest
    raise TimeRunsBackwards(
        f"time would run backwards: this command's time {to_iso(now)} is before the newest {what} in {where} "
        f"({to_iso(ts)}); give --now at or after it, or --allow-past to replay an earlier time on purpose",
        now=now, newest=ts)


#: The latest time a command runs at. Commands add durations to their time: a --deadline or a --since
#: of up to 100 years (bidder.units.parse_duration), up to 1,000,000 hours of work (MAX_HOURS: 114
#: years). A datetime ends with the year 9999: two centuries before it leave room for any of them.
LAST_NOW = datetime(9800, 1, 1, tzinfo=UTC)


def too_late(now: datetime) -> str | None:
    """Why `now` cannot be a command's time (it is after LAST_NOW), else None."""
    if now <= LAST_NOW:
        return None
    return (f"is after {to_iso(LAST_NOW)}, the latest time bidder runs at (a deadline or a window of up to "
            "115 years after it must still end by the year 9999)")


def check_not_too_late(now: datetime, *, what: str, fix: str) -> None:
    """Refuse a command's time after LAST_NOW: `what` names where it came from, `fix` what to do."""
    why = too_late(now)
    if why is not None:
        raise ConfigError(f"{what}, {to_iso(now)}, {why}; {fix}")
