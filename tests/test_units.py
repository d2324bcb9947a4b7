from datetime import UTC, datetime, timedelta

import pytest

from bidder.models import TOLERANCE_PRESETS, parse_tolerance
from bidder.units import format_duration, parse_duration, parse_int_list, parse_timestamp, to_iso


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("1.5h", 5400), ("3d", 259200), ("2w", 1209600), ("0", 0)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "abc", "5 parsecs", "-3h", "1h30m"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_format_duration():
    assert [format_duration(s) for s in (5, 600, 5400, 3 * 86400)] == ["5s", "10m", "1.5h", "3.0d"]


def test_parse_int_list():
    assert parse_int_list("8, 1,2,2") == (1, 2, 8)
    with pytest.raises(ValueError, match="positive whole number"):
        parse_int_list("1,0")
    for text in ("1,,2", "1,2,", ",1"):
        with pytest.raises(ValueError, match="has an empty item"):
            parse_int_list(text)


def test_timestamps_round_trip_in_utc():
    ts = parse_timestamp("2026-01-02T03:04:05+02:00")
    assert ts == datetime(2026, 1, 2, 1, 4, 5, tzinfo=UTC)
    assert to_iso(ts) == "2026-01-02T01:04:05Z"
    assert parse_timestamp("2026-01-02T01:04:05") == ts


def test_tolerance_presets_and_numbers():
    assert parse_tolerance("LOW") == TOLERANCE_PRESETS["low"] == 0.5
    assert parse_tolerance("3") == 3.0
    with pytest.raises(ValueError, match="preset"):
        parse_tolerance("sometimes")
    for bad in ("-1", "inf", "1e308", float("nan"), 1441):
        with pytest.raises(ValueError, match="tolerance must be from 0 to 1440 interruptions per day"):
            parse_tolerance(bad)
    assert parse_tolerance(1440) == 1440.0


def test_times_before_1970_are_refused_and_every_year_is_written_with_four_digits():
    # A year under 1000 was written unpadded ("999-01-01T00:00:00Z"), which no read accepted again.
    with pytest.raises(ValueError, match=r"'0999-01-01T00:00:00Z' is in the year 999: give a time from 1970 on"):
        parse_timestamp("0999-01-01T00:00:00Z")
    with pytest.raises(ValueError, match="in the year 1969"):
        parse_timestamp("1969-12-31T23:59:59Z")
    assert parse_timestamp("1970-01-01T00:00:00Z") == datetime(1970, 1, 1, tzinfo=UTC)
    assert to_iso(datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC)) == "0999-01-02T03:04:05Z"
    assert to_iso(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05Z"


@pytest.mark.parametrize(("value", "message"), [
    ("90", "'90' has no unit: give one, e.g. 90s, 90m, 90h or 90d"),
    (5, "'5' has no unit"), (2.5, "'2.5' has no unit"),
    ("-5", "'-5' is not a duration"), (float("inf"), "'inf' is not a duration"),
])
def test_a_bare_number_is_not_a_duration(value, message):
    """Read as seconds, `deadline = 2` in bidder.toml was a 2-second deadline and `--every 5` a loop
    every 5 seconds against the real API: a unit is required everywhere (0 needs none)."""
    with pytest.raises(ValueError, match=message):
        parse_duration(value)
    assert parse_duration(0) == parse_duration("0") == timedelta(0)


def test_money_in_messages_keeps_the_decimals_it_was_compared_with():
    # A cap of 0.585 printed "$0.58", and a Vast refusal's parts printed summing to the limit it passed.
    from bidder.units import usd

    assert [usd(x) for x in (0.5, 0.585, 0.1445, 0.33, 2.0, 0.0)] == \
        ["$0.50", "$0.585", "$0.1445", "$0.33", "$2.00", "$0.00"]
