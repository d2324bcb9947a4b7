"""Parsing and formatting of the small quantities users type: durations, money, GPU counts."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

__all__ = ["DurationTooLong", "format_duration", "is_naive", "parse_duration", "parse_int_list", "parse_timestamp", "to_iso"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_MAX_DURATION_S = 100 * 365.25 * 86400
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)


class DurationTooLong(ValueError):
    """A duration over 100 years: well-formed, but no date that far off fits."""


def parse_duration(text: str | float | int, *, default_unit: str = "s") -> timedelta:
    """Parse "90s", "15m", "1.5h", "3d", "2w" (a bare number takes `default_unit`)."""
    if isinstance(text, (int, float)):
        seconds = float(text) * _UNITS[default_unit]
    else:
        match = _DURATION.match(text)
        if not match:
            raise ValueError(f"{text!r} is not a duration: use a number and a unit, e.g. 90s, 15m, 2h, 3d")
        unit = (match.group(2) or default_unit).lower()
        seconds = float(match.group(1)) * _UNITS[unit]
    if seconds < 0:
        raise ValueError(f"duration must not be negative, got {text!r}")
    if not seconds <= _MAX_DURATION_S:  # also nan; past it a date before or after it would not fit
        raise DurationTooLong(f"duration {text!r} is over 100 years: give a shorter one")
    return timedelta(seconds=seconds)


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
    items = [part.strip() for part in text.split(",") if part.strip()]
    if not items:
        raise ValueError(f"{text!r} is empty: give comma-separated whole numbers, e.g. 1,2,4")
    values = []
    for item in items:
        if not item.isdigit() or int(item) < 1:
            raise ValueError(f"{item!r} in {text!r} is not a positive whole number")
        values.append(int(item))
    return tuple(sorted(set(values)))


def parse_timestamp(text: str) -> datetime:
    """Parse ISO 8601 ("2026-01-02T03:04:05Z", with or without offset; naive means UTC)."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def is_naive(text: str) -> bool:
    """True for an ISO 8601 time without a timezone ("2026-01-02T03:04:05"), which bidder reads as UTC."""
    try:
        return datetime.fromisoformat(text.strip().replace("Z", "+00:00")).tzinfo is None
    except ValueError:
        return False


def to_iso(value: datetime) -> str:
    """The one text form bidder writes: UTC, seconds precision, 'Z' suffix (sorts as text)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
