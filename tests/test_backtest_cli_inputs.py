"""`bidder backtest` on inputs it must refuse or explain: an impossible job, an optimum with no plan,
a --start before the history, times near the year 10000, how it names the history's times, and a
history with no price (at all, for the GPU asked, or in its windows)."""

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


def _write(path: Path, rows: list[tuple[datetime, str, str]], gpu: str = "A") -> Path:
    """A one-market trace: (time, floor, on-demand) per row, empty = none."""
    lines = ["ts,gpu_type,minimum_bid_price,uninterruptable_price"]
    lines += [f"{ts.isoformat().replace('+00:00', 'Z')},{gpu},{floor},{od}" for ts, floor, od in rows]
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
    # One window (from day 2.5 less an hour): an hour of spot, then no capacity at all, so no plan finishes.
    # (From day 2.5 the window would hold no price at all: refused, see test_a_history_with_no_price_...)
    table = invoke(*common, "--start", "2026-01-03T11:00:00Z")
    assert table.exit_code == 0, table.output
    assert ("optimum: infeasible (no plan does the work by the deadline with these prices) in every window: "
            "its row is blank") in table.stdout
    row = next(line for line in table.stdout.splitlines() if line.startswith("optimum "))
    assert row.split()[1:] == ["-"] * 10
    data = json.loads(invoke(*common, "--start", "2026-01-03T11:00:00Z", "--format", "json").stdout)
    best = next(s for s in data["strategies"] if s["name"] == "optimum")
    assert best["cost"] is None and best["work_hours"] is None and best["worst"]["cost"] is None
    assert data["optimum_infeasible_windows"] == 1
    assert all(v is None for v in data["per_window"][0]["strategies"]["optimum"].values())
    # Four windows (days 2, 2.5, 3, 3.5): the first can run on spot, the other three cannot. The row is
    # the feasible window's, not a mean with three $0 windows.
    result = invoke(*common, "--every", "12h", "--format", "json")
    many = json.loads(result.stdout)
    assert many["windows"] == 4 and many["optimum_infeasible_windows"] == 3
    # Those three hold no price at all: not an error among several windows, but said.
    assert result.stderr.strip() == ("note: 3 of 4 windows hold no price for the job (no floor, no on-demand from "
                                     "their start on): no strategy buys anything there, and their $0 counts in "
                                     "the mean cost")
    assert many["job"]["windows_without_price"] == 3
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


def _no_output_but_the_error(result, chart: Path) -> str:
    line = _one_line_error(result, 1)
    assert not chart.exists()
    return line


def test_a_history_with_no_price_at_all_is_refused_in_one_line(tmp_path: Path) -> None:
    """Every price cell empty (or 0): every strategy bought nothing, and the run reported $0 and no
    deadline met for all of them, exit 0."""
    times = [START + timedelta(minutes=15 * k) for k in range(4 * 24 * 4)]
    chart = tmp_path / "cost.png"
    for cells in (("", ""), ("0", "0"), ("", "0")):
        trace = _write(tmp_path / "none.csv", [(ts, *cells) for ts in times])
        line = _no_output_but_the_error(invoke("--trace", str(trace), "--hours", "10", "--deadline", "1d",
                                               "--chart", str(chart), "--format", "json"), chart)
        assert line == (f"Error: {trace} holds no price: every minimum_bid_price and uninterruptable_price is "
                        "empty (or 0), so a backtest has nothing to buy; fill in the prices (USD per GPU-hour, "
                        "docs/traces.md) or replay another trace")
    # The same rows imported into a database (the import takes them: no capacity is a fact to keep).
    db = tmp_path / "none.db"
    imported = CliRunner().invoke(main, ["import-trace", str(trace), "--db", str(db)])
    assert imported.exit_code == 0, imported.output
    line = _no_output_but_the_error(invoke("--db", str(db), "--hours", "10", "--deadline", "1d"), chart)
    assert line == (f"Error: {db} holds no price: no quote it stored has a spot floor or an on-demand price, so a "
                    "backtest has nothing to buy; collect prices (`bidder collect`) or import a trace that has them")
    # --market keeps rows with no price while the others have some: the market is named.
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("ts,gpu_type,minimum_bid_price,uninterruptable_price,market\n"
                     + "".join(f"{ts.isoformat().replace('+00:00', 'Z')},A,0.2,0.5,runpod\n"
                               f"{ts.isoformat().replace('+00:00', 'Z')},B,,,vast\n" for ts in times), encoding="utf-8")
    line = _no_output_but_the_error(invoke("--trace", str(mixed), "--market", "vast", "--hours", "10",
                                           "--deadline", "1d"), chart)
    assert line == (f"Error: {mixed} holds no vast price: every minimum_bid_price and uninterruptable_price of its "
                    "vast rows is empty (or 0); give another --market, or leave it out")


def test_no_price_for_the_gpu_asked_names_the_markets_that_have_one(tmp_path: Path) -> None:
    times = [START + timedelta(minutes=15 * k) for k in range(4 * 24 * 4)]
    trace = tmp_path / "two.csv"
    trace.write_text("ts,gpu_type,minimum_bid_price,uninterruptable_price\n"
                     + "".join(f"{ts.isoformat().replace('+00:00', 'Z')},A,,\n"
                               f"{ts.isoformat().replace('+00:00', 'Z')},B,0.2,0.5\n" for ts in times), encoding="utf-8")
    chart = tmp_path / "cost.png"
    line = _no_output_but_the_error(invoke("--trace", str(trace), "--gpu", "A", "--hours", "10", "--deadline", "1d",
                                           "--chart", str(chart)), chart)
    assert line == ("Error: no price for the job's market A COMMUNITY: every minimum_bid_price and "
                    "uninterruptable_price of its rows is empty (or 0); the history has prices for B COMMUNITY: "
                    "choose among them (--gpu, --gpus, --cloud)")
    # The type that has prices runs; so does the whole trace (B's prices are there to buy).
    for args in (("--gpu", "B"), ()):
        ok = invoke("--trace", str(trace), *args, "--hours", "10", "--deadline", "1d", "--strategies",
                    "on-demand,floor", "--format", "json")
        assert ok.exit_code == 0, ok.output
        costs = {s["name"]: s["cost"] for s in json.loads(ok.stdout)["strategies"]}
        assert costs == {"on-demand": 5.0, "floor": 2.0}


def test_no_price_in_any_window_says_where_the_prices_are(tmp_path: Path) -> None:
    """Prices for the first day only, rows with none after: the default start (2 days in) leaves every
    window without a price; a --start within the first day runs."""
    rows = [(START + timedelta(minutes=15 * k), "0.2" if k < 4 * 24 else "", "0.5" if k < 4 * 24 else "")
            for k in range(4 * 24 * 4)]
    trace = str(_write(tmp_path / "day-one.csv", rows))
    chart = tmp_path / "cost.png"
    line = _no_output_but_the_error(invoke("--trace", trace, "--hours", "10", "--deadline", "1d", "--every", "12h",
                                           "--chart", str(chart)), chart)
    assert line == ("Error: no window has a price for the job's market A COMMUNITY: its prices run "
                    "2026-01-01T00:00:00Z to 2026-01-01T23:45:00Z, and the 3 window(s) from 2026-01-03T00:00:00Z "
                    "hold none (every minimum_bid_price and uninterruptable_price there is empty); give a --start at "
                    "or before 2026-01-01T23:45:00Z")
    # A service's windows too (each its own span).
    line = _one_line_error(invoke("--trace", trace, "--keep-running", "--days", "0.5", "--every", "12h"), 1)
    assert line.startswith("Error: no window has a price for the job's market A COMMUNITY: its prices run ")
    # Prices only after the --end given: a later --end.
    late = str(_write(tmp_path / "late.csv", [(ts, "", "") if k < 3 * 24 * 4 else (ts, "0.2", "0.5")
                                              for k, (ts, _, _) in enumerate(rows)]))
    line = _one_line_error(invoke("--trace", late, "--hours", "5", "--deadline", "6h", "--start", "2026-01-02T00:00:00Z",
                                  "--end", "2026-01-03T00:00:00Z"), 1)
    assert line.endswith("its prices run 2026-01-04T00:00:00Z to 2026-01-04T23:45:00Z, and the 1 window(s) from "
                         "2026-01-02T00:00:00Z hold none (every minimum_bid_price and uninterruptable_price there is "
                         "empty); give an --end after 2026-01-04T00:00:00Z")
    # The --start it suggests works: the window buys the first day's prices.
    ok = invoke("--trace", trace, "--hours", "10", "--deadline", "1d", "--start", "2026-01-01T12:00:00Z",
                "--strategies", "on-demand", "--format", "json")
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["strategies"][0]["cost"] == 5.0
