"""A command's one clock (bidder.clock) as options: `--now TIME`, `--allow-past`.

Commands that talk to the API take the emulator's virtual time when the API is bidder's emulator
(`api_now`), else the wall clock; commands that only read the database take the emulator's time
when the newest snapshot came from it (`db_now`). `--now` overrides both. Neither lets a command's
time fall before the newest data in the database unless `--allow-past` says it is a replay.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from bidder.cli import NOTES_KEY
from bidder.clock import (
    WALL_SLACK,
    Clock,
    ServerTime,
    check_not_past,
    check_not_too_late,
    too_late,
)
from bidder.errors import ApiError
from bidder.models import MARKET_NAMES, SILENCE_MIN_HOURS
from bidder.store import Store
from bidder.units import YearTooEarly, format_duration, is_naive, parse_timestamp, to_iso

__all__ = ["allow_past_option", "api_now", "check_window_options", "db_now", "now_option", "parse_now", "say_after",
           "stale_note"]

_NOW_HELP = ("Act as if it were TIME (ISO 8601). Default: the API's clock: the virtual clock of `bidder sim "
             "serve` when pointed at it, else the wall clock.")
_DB_NOW_HELP = ("As of TIME (ISO 8601). Default: the emulator's time when the newest snapshot came from "
                "`bidder sim serve`, else the wall clock.")


_told_naive: set[str] = set()  # a --now without a timezone is said once per process, not per parse


def parse_now(text: str | None, *, adds_durations: bool = True) -> datetime | None:
    """--now as a time. `adds_durations`: refuse one after bidder.clock.LAST_NOW (False for
    import-trace, which only looks a day past it, and takes a history near the year 9999)."""
    if text is None:
        return None
    try:
        now = parse_timestamp(text)
    except YearTooEarly as exc:
        raise click.BadParameter(str(exc), param_hint="--now") from None
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO 8601 time such as 2026-01-01T00:00:00Z",
                                 param_hint="--now") from None
    why = too_late(now) if adds_durations else None
    if why is not None:
        raise click.BadParameter(f"{text.strip()!r} {why}: give an earlier time", param_hint="--now")
    if is_naive(text) and text not in _told_naive:
        _told_naive.add(text)
        click.echo(f"note: --now {text} has no timezone: read as UTC", err=True)
    return now


def check_window_options(since_text: str | None, until_text: str | None, now_text: str | None) -> None:
    """Bad --since/--until/--now fail before any file is opened (opening one migrates an older database:
    a usage error must leave it as it was). Whether the period is empty waits for the command: a
    duration counts back from the database's clock, known only once it is open."""
    from bidder.cli.common import parse_when

    now = parse_now(now_text) or datetime.now(UTC)
    parse_when(until_text, now, "--until")
    parse_when(since_text, now, "--since", allow_all=True)


def now_option(func: Callable[..., Any] | None = None, *, reads_only: bool = False) -> Any:
    """--now TIME (as `now_text`). `reads_only`: the help of a command that only reads the database."""
    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        return click.option("--now", "now_text", metavar="TIME", default=None,
                            help=_DB_NOW_HELP if reads_only else _NOW_HELP)(f)
    return decorate(func) if func is not None else decorate


def allow_past_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--allow-past", is_flag=True,
                        help="Run even if TIME is before the newest data in the database (a replay on purpose).")(func)


def api_now(store: Store, server: ServerTime | None, now_text: str | None, *, allow_past: bool = False,
            fresh: bool = False) -> datetime:
    """The time of a command that talks to the API: --now, else the emulator's (asked of the client:
    the header of an earlier answer, or one GET /sim/now to a server on this machine), else the wall
    clock. Marks what the store writes with that clock and refuses a time before the newest data."""
    clock = Clock(parse_now(now_text), server)
    now = clock.now(fresh=fresh)
    if clock.source == "emulator":
        check_not_too_late(now, what="the emulator's clock",
                           fix="restart `bidder sim serve` with an earlier --start, or give --now TIME")
    if clock.source == "given":
        _not_far_ahead(now, store, server)
    store.clock = clock.source
    if not allow_past:
        check_not_past(now, store.newest_time(), where=str(store.path),
                       slack=WALL_SLACK if clock.source == "wall" else timedelta(0))
    return now


def _not_far_ahead(given: datetime, store: Store, server: ServerTime | None) -> None:
    """Refuse a --now after the API's own clock (the emulator's, asked of the server, else the wall
    clock) by more than WALL_SLACK: what the command stores (prices, polls, actions) is the API's as of
    its own time. Stamped later, it prunes what is older than the stamp, and every later command on the
    API's clock is refused as running backwards: a collect at --now five months ahead of the emulator
    (still before the wall clock, which a day of slack on max(wall clock, newest data) let through)
    deleted the whole price history and stopped every later collect and tick."""
    told = None
    if server is not None:
        try:
            told = server.server_now or server.probe_server_now()
        except ApiError:  # an emulator not answering: the command's own first request will say so
            told = None
    api, whose = (told, "the emulator's virtual clock") if told is not None else (datetime.now(UTC), "the wall clock")
    if given - api <= WALL_SLACK:
        return
    raise click.BadParameter(
        f"{to_iso(given)} is after the API's clock ({to_iso(api)}, {whose}): what this command stores would "
        "sit in the future, pruning what is older and making every later command refuse as running "
        f"backwards; give --now at or before {to_iso(api)}, or leave it out", param_hint="--now")


def say_after(line: str) -> None:
    """A line for stderr once the command has succeeded (`bidder.cli.BidderGroup` prints it): a note
    about how the command read its time must not sit above the one line of an error."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        click.echo(line, err=True)
        return
    ctx.meta.setdefault(NOTES_KEY, []).append(line)


def db_now(store: Store, now_text: str | None, *, allow_past: bool = False, say: bool = True,
           notes: list[str] | None = None) -> datetime:
    """The time of a command that only reads the database: --now (an as-of time: never refused),
    else the emulator's when the newest snapshot came from it (said on stderr, or added to `notes`),
    else the wall clock, refused when earlier than the newest data unless `allow_past`."""
    given = parse_now(now_text)
    if given is not None:
        return given
    emulated = store.emulator_time()
    if emulated is not None:
        check_not_too_late(emulated, what=f"the emulator's clock that stamped the newest snapshot in {store.path}",
                           fix="give --now TIME")
        text = (f"time {to_iso(emulated)} is the emulator's clock (the newest snapshot in {store.path} was "
                f"stamped by bidder's emulator); --now TIME to choose another")
        if notes is not None:
            notes.append(text)
        elif say:
            say_after(f"Note: {text}.")
        return emulated
    now = datetime.now(UTC)
    if not allow_past:
        check_not_past(now, store.newest_time(), where=str(store.path), slack=WALL_SLACK)
    return now


def stale_note(market: str, ts: datetime, now: datetime) -> str | None:
    """One line when the snapshot a command shows or decides on is older than a silence of the market's
    statistics (bidder.models.SILENCE_MIN_HOURS: no collector has run since), else None."""

    age = (now - ts).total_seconds()
    if age <= SILENCE_MIN_HOURS * 3600:
        return None
    return (f"{MARKET_NAMES.get(market, market)}'s prices are from {to_iso(ts)}, {format_duration(age)} before now "
            f"({to_iso(now)}): nothing was collected since, so they may be out of date (`bidder collect` takes a "
            "fresh snapshot)")
