"""Parsing and formatting of the small quantities users type: durations, money, GPU counts."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

__all__ = ["FIRST_YEAR", "DurationTooLong", "NoUnit", "PastYear9999", "YearTooEarly", "format_duration", "is_naive", "parse_duration", "parse_int_list", "parse_timestamp", "to_iso", "usd", "usd_limit"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_MAX_DURATION_S = 100 * 365.25 * 86400
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_BARE_NUMBER = re.compile(r"^[-+]?\d+(?:\.\d+)?$")


class DurationTooLong(ValueError):
    """A duration over 100 years: well-formed, but no date that far off fits."""


class NoUnit(ValueError):
    """A bare number given as a duration (seconds? minutes? days? refused rather than guessed)."""


class YearTooEarly(ValueError):
    """A well-formed time before FIRST_YEAR (a typo in the year)."""


class PastYear9999(YearTooEarly):
    """A well-formed time that its offset moves past the year 9999 in UTC. A YearTooEarly, so that every
    caller refusing a year out of range says its message (it was an OverflowError traceback)."""


def parse_duration(text: str | float | int) -> timedelta:
    """Parse "90s", "15m", "1.5h", "3d", "2w". A bare number other than 0 is refused: read as seconds,
    "90" surprised users who meant minutes or days (a --deadline of 90 seconds, a loop every 5)."""
    bare = str(text).strip()
    if isinstance(text, (int, float)) or _BARE_NUMBER.match(bare):
        number = float(text)
        if not number >= 0 or math.isinf(number):
            raise ValueError(f"'{bare}' is not a duration: use a number >= 0 and a unit, e.g. 90s, 15m, 2h, 3d")
        if number:
            raise NoUnit(f"'{bare}' has no unit: give one, e.g. {bare}s, {bare}m, {bare}h or {bare}d "
                             "(s, m, h, d, w)")
        return timedelta(0)
    match = _DURATION.match(text)  # type: ignore[arg-type]
    if not match:
        raise ValueError(f"{text!r} is not a duration: use a number and a unit, e.g. 90s, 15m, 2h, 3d")
    seconds = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if not seconds <= _MAX_DURATION_S:  # past it a date before or after it would not fit
        raise DurationTooLong(f"duration {text!r} is over 100 years: give a shorter one")
    return timedelta(seconds=seconds)


def usd(value: float) -> str:
    """Money in messages: cents ("$0.50"), or up to 4 decimals where the value has them ("$0.585",
    "$0.1445"): a limit and the amounts compared with it print as they were compared (a cap of 0.585
    printed "$0.58" read as if a rate of $0.58 passed it)."""
    whole, _, frac = f"{value:.4f}".partition(".")
    return f"${whole}.{frac.rstrip('0').ljust(2, '0')}"


def usd_limit(value: float) -> str:
    """A limit the user set (a max price): 3 decimals as prices are shown, and more where it has them (a
    --max-price of 0.0001 printed "$0.000", as if no price at all were allowed)."""
    digits = len(f"{value:.10f}".rstrip("0").partition(".")[2])
    return f"${value:.{max(digits, 3)}f}"


def format_duration(seconds: float) -> str:
    """A compact human form: 45s, 12m, 3.5h, 2.1d."""
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f}m"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def parse_int_list(text: str) -> tuple[int, ...]:
    """Parse "1,2,4,8" into (1, 2, 4, 8); every item must be a positive integer."""
    items = [part.strip() for part in text.split(",")]
    if not any(items):
        raise ValueError(f"{text!r} is empty: give comma-separated whole numbers, e.g. 1,2,4")
    values = []
    for item in items:
        if not item:  # "1,,2": a number left out, as a plain '' is refused
            raise ValueError(f"{text!r} has an empty item: give comma-separated whole numbers, e.g. 1,2,4")
        if not item.isdigit() or int(item) < 1:
            raise ValueError(f"{item!r} in {text!r} is not a positive whole number")
        values.append(int(item))
    return tuple(sorted(set(values)))


#: The first year a time may fall in: epoch seconds (the backtest, the emulator) start in 1970, and
#: a year before it is a typo ("0226-01-01" for "2026-01-01").
FIRST_YEAR = 1970


def parse_timestamp(text: str) -> datetime:
    """Parse ISO 8601 ("2026-01-02T03:04:05Z", with or without offset; naive means UTC). A year
    before `FIRST_YEAR` is refused."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        value = value.astimezone(UTC)
    except OverflowError:
        raise PastYear9999(f"{text.strip()!r} is out of range: in UTC it must fall in the years 1 to 9999") from None
    if value.year < FIRST_YEAR:
        raise YearTooEarly(f"{text.strip()!r} is in the year {value.year}: give a time from {FIRST_YEAR} on "
                         "(check the year)")
    return value


def is_naive(text: str) -> bool:
    """True for an ISO 8601 time without a timezone ("2026-01-02T03:04:05"), which bidder reads as UTC."""
    try:
        return datetime.fromisoformat(text.strip().replace("Z", "+00:00")).tzinfo is None
    except ValueError:
        return False


def to_iso(value: datetime) -> str:
    """The one text form bidder writes: UTC, seconds precision, 'Z' suffix (sorts as text)."""
    value = value.astimezone(UTC)
    return f"{value.year:04d}-{value:%m-%dT%H:%M:%S}Z"  # (%Y is not zero-padded under 1000 on glibc)
