"""`bidder backtest` on inputs it must refuse or explain: an impossible job, an optimum with no plan,
a --start before the history, times near the year 10000, and how it names the history's times."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner

from bidder.cli import main

SHIPPED = Path(__file__).resolve().parent.parent / "data" / "traces" / "sim-seed1-14d.csv"
START = datetime(2026, 1, 1, tzinfo=UTC)


def invoke(*args: str):
    return CliRunner().invoke(main, ["backtest", *args])


def _write(path: Path, rows: list[tuple[datetime, str, str]]) -> Path:
    """A one-market trace: (time, floor, on-demand) per row, empty = none."""
    lines = ["ts,gpu_type,minimum_bid_price,uninterruptable_price"]
    lines += [f"{ts.isoformat().replace('+00:00', 'Z')},A,{floor},{od}" for ts, floor, od in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _one_line_error(result, code: int) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_more_work_than_the_deadline_holds_is_refused_up_front() -> None:
    result = invoke("--trace", str(SHIPPED), "--gpu", "A6000", "--hours", "100", "--deadline", "1d")
    line = _one_line_error(result, 2)
    assert ("100 h of work cannot finish within a 24 h deadline (even on-demand, at the fastest GPU's speed): "
            "give a later --deadline or fewer --hours") in line
    # Work that just fits is not refused.
    ok = invoke("--trace", str(SHIPPED), "--gpu", "A6000", "--hours", "24", "--deadline", "1d",
                "--strategies", "on-demand")
    assert ok.exit_code == 0, ok.output


def _spot_only(tmp_path: Path) -> Path:
    """4 days of 15-minute samples, no on-demand ever, spot at 0.2 for the first 2.5 days only."""
    rows = []
    for k in range(4 * 24 * 4):
        ts = START + timedelta(minutes=15 * k)
        rows.append((ts, "0.2" if k < 60 * 4 else "", ""))
    return _write(tmp_path / "spot-only.csv", rows)


def test_an_optimum_with_no_plan_is_infeasible_not_zero(tmp_path: Path) -> None:
    trace = str(_spot_only(tmp_path))
    common = ("--trace", trace, "--hours", "5", "--deadline", "12h", "--strategies", "floor,optimum")
    # One window (from day 2.5): no capacity at all, so no plan finishes.
    table = invoke(*common, "--start", "2026-01-03T12:00:00Z")
    assert table.exit_code == 0, table.output
    assert ("optimum: infeasible (no plan does the work by the deadline with these prices) in every window: "
            "its row is blank") in table.stdout
    row = next(line for line in table.stdout.splitlines() if line.startswith("optimum "))
    assert row.split()[1:] == ["-"] * 10
    data = json.loads(invoke(*common, "--start", "2026-01-03T12:00:00Z", "--format", "json").stdout)
    best = next(s for s in data["strategies"] if s["name"] == "optimum")
    assert best["cost"] is None and best["work_hours"] is None and best["worst"]["cost"] is None
    assert data["optimum_infeasible_windows"] == 1
    assert all(v is None for v in data["per_window"][0]["strategies"]["optimum"].values())
    # Four windows (days 2, 2.5, 3, 3.5): the first can run on spot, the other three cannot. The row is
    # the feasible window's, not a mean with three $0 windows.
    many = json.loads(invoke(*common, "--every", "12h", "--format", "json").stdout)
    assert many["windows"] == 4 and many["optimum_infeasible_windows"] == 3
    best = next(s for s in many["strategies"] if s["name"] == "optimum")
    assert best["cost"] == 1.0 and best["work_hours"] == 5 and best["deadline_met_share"] == 1.0
    text = invoke(*common, "--every", "12h").stdout
    assert "in 3 of 4 windows: its row is over the other 1" in text


def test_start_before_the_history_says_where_it_moved() -> None:
    result = invoke("--trace", str(SHIPPED), "--gpu", "A6000", "--hours", "5", "--deadline", "12h",
                    "--strategies", "on-demand", "--start", "2025-12-01T00:00:00Z", "--format", "json")
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == ("note: --start 2025-12-01T00:00:00Z is before the history begins: the first "
                                     "window starts at its first sample, 2026-01-01T00:00:00Z, with no warm-up")
    assert json.loads(result.stdout)["job"]["start"] == "2026-01-01T00:00:00Z"
    # A start the default warm-up of 48 h (or more) into the history gets no note.
    inside = invoke("--trace", str(SHIPPED), "--gpu", "A6000", "--hours", "5", "--deadline", "12h",
                    "--strategies", "on-demand", "--start", "2026-01-03T00:00:00Z")
    assert inside.exit_code == 0 and "note:" not in inside.stderr


def test_start_with_less_than_the_default_warm_up_says_so() -> None:
    """A --start at the first sample ran with no warm-up, and one a few hours in with a few hours of
    it, and neither said so (only a start before the history did)."""
    def note(start: str) -> str:
        result = invoke("--trace", str(SHIPPED), "--gpu", "A6000", "--hours", "5", "--deadline", "12h",
                        "--strategies", "on-demand", "--start", start)
        assert result.exit_code == 0, result.output
        return result.stderr.strip()

    assert note("2026-01-01T00:00:00Z") == ("note: --start 2026-01-01T00:00:00Z is the history's first sample: the "
                                            "first window starts with no warm-up (the default start leaves 48 h)")
    assert note("2026-01-01T06:30:00Z") == (
        "note: --start 2026-01-01T06:30:00Z leaves 6.5 h of warm-up: the first window starts at 2026-01-01T06:30:00Z, "
        "6.5 h after the history begins (2026-01-01T00:00:00Z); the default start leaves 48 h")


def test_times_near_the_year_10000_are_refused_in_one_line(tmp_path: Path) -> None:
    trace = _write(tmp_path / "far.csv", [(datetime(9999, 12, 20, tzinfo=UTC), "0.1", "0.3"),
                                          (datetime(9999, 12, 31, tzinfo=UTC), "0.1", "0.3")])
    line = _one_line_error(invoke("--trace", str(trace), "--hours", "1", "--deadline", "2h"), 1)
    assert line == ("Error: the history's last sample, 9999-12-31T00:00:00Z, is too close to the year 10000 for a "
                    "backtest: its windows (2 h each) would run past 9999-12-31T23:59:59Z, the latest time bidder "
                    "can represent; give --end 9999-12-31T00:00:00Z or earlier")
    # The --end it suggests works.
    ok = invoke("--trace", str(trace), "--hours", "1", "--deadline", "2h", "--start", "9999-12-20T00:00:00Z",
                "--end", "9999-12-31T00:00:00Z", "--strategies", "on-demand,floor,optimum")
    assert ok.exit_code == 0, ok.output
    # A --start whose offset moves it out of the years 1-9999 is a usage error, not a traceback.
    line = _one_line_error(invoke("--trace", str(trace), "--hours", "1", "--deadline", "2h",
                                  "--start", "9999-12-31T23:00:00-05:00"), 2)
    assert "'9999-12-31T23:00:00-05:00' is out of range: in UTC it must fall in the years 1 to 9999" in line
    # So is such a time in the trace itself: the reader names the file, line and column.
    beyond = tmp_path / "beyond.csv"
    beyond.write_text("ts,gpu_type,minimum_bid_price,uninterruptable_price\n"
                      "9999-12-31T23:00:00-05:00,A,0.1,0.3\n", encoding="utf-8")
    line = _one_line_error(invoke("--trace", str(beyond), "--hours", "1", "--deadline", "2h"), 1)
    assert line == (f"Error: {beyond} line 2, column ts: '9999-12-31T23:00:00-05:00' is out of range: in UTC it "
                    "must fall in the years 1 to 9999")


def test_history_times_name_the_last_sample_in_z(tmp_path: Path) -> None:
    rows = [(START + timedelta(minutes=30 * k), "0.2", "0.5") for k in range(7)]  # last sample 03:00
    trace = str(_write(tmp_path / "short.csv", rows))
    line = _one_line_error(invoke("--trace", trace, "--hours", "1", "--deadline", "2h",
                                  "--start", "2026-01-01T03:00:00+01:00"), 1)
    assert line.startswith("Error: the history runs 2026-01-01T00:00:00Z to its last sample at 2026-01-01T03:00:00Z: "
                           "too short for a job spanning 2 hours from 2026-01-01T02:00:00Z;")
    assert "+00:00" not in line and "03:30" not in line
    table = invoke("--trace", trace, "--hours", "1", "--deadline", "2h", "--start", "2026-01-01T00:00:00Z",
                   "--strategies", "on-demand")
    assert table.exit_code == 0, table.output
    assert "; history to 2026-01-01T03:00:00Z (last sample)" in table.stdout
