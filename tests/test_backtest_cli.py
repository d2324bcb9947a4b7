"""`bidder backtest` through click's CliRunner on small generated traces in tmp_path."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bidder.cli import main
from bidder.models import PriceQuote
from bidder.store import Store
from bidder.traces import write_trace

START = datetime(2026, 1, 1, tzinfo=UTC)
NAMES = ["bidder", "on-demand", "floor", "floor+0.10", "bid-on-demand", "optimum", "hindsight"]
METRICS = ["cost", "cost_vs_hindsight", "cost_vs_optimum", "cost_vs_on_demand", "work_hours", "deadline_met_share", "interruptions",
           "restart_hours_lost", "completion_hours", "peak_rate"]


def _quotes(days: float = 6, step_min: int = 15, seed: int = 0) -> list[PriceQuote]:
    """Two GPU types: a calm A6000 (floor about 0.25, on-demand 0.49) and a spiky 4090."""
    rng = np.random.default_rng(seed)
    n = int(days * 24 * 60 / step_min)
    out = []
    for gpu, base, od, spike in (("NVIDIA RTX A6000", 0.25, 0.49, 0.0), ("NVIDIA GeForce RTX 4090", 0.2, 0.34, 0.08)):
        floors = base + 0.01 * rng.standard_normal(n)
        spikes = rng.random(n) < spike
        floors[spikes] = od * rng.uniform(1.1, 3.0, spikes.sum())
        for k in range(n):
            out.append(PriceQuote(ts=START + timedelta(minutes=step_min * k), gpu_type_id=gpu, cloud="COMMUNITY",
                                  gpu_count=1, minimum_bid_price=round(float(floors[k]), 4),
                                  uninterruptable_price=od))
    return out


@pytest.fixture
def trace(tmp_path: Path) -> Path:
    path = tmp_path / "small.csv"
    write_trace(_quotes(), path)
    return path


def invoke(*args: str):
    return CliRunner().invoke(main, ["backtest", *args])


def test_json_shape(trace: Path) -> None:
    result = invoke("--trace", str(trace), "--hours", "20", "--deadline", "2d", "--every", "1d", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["windows"] == 3                           # starts at day 2, 3, 4 (a 2-day deadline fits)
    assert data["job"]["work_hours"] == 20 and data["job"]["deadline_hours"] == 48
    assert [s["name"] for s in data["strategies"]] == NAMES
    for s in data["strategies"]:
        assert list(s) == ["name", *METRICS, "worst"]
        assert list(s["worst"]) == METRICS
    by_name = {s["name"]: s for s in data["strategies"]}
    assert by_name["hindsight"]["cost_vs_hindsight"] == 1.0
    assert by_name["on-demand"]["cost_vs_on_demand"] == 1.0
    # 20 hours on the cheapest on-demand (the 4090 at 0.34), never interrupted.
    assert by_name["on-demand"]["cost"] == pytest.approx(20 * 0.34)
    assert by_name["on-demand"]["interruptions"] == 0
    for s in data["strategies"]:
        assert s["cost"] >= by_name["hindsight"]["cost"] - 1e-9
    assert by_name["bidder"]["deadline_met_share"] == 1.0
    # The optimum: a real plan (deadline met) between hindsight and every strategy that finishes.
    best = by_name["optimum"]
    assert best["deadline_met_share"] == 1.0 and best["cost"] >= by_name["hindsight"]["cost"] - 1e-9
    for s in data["strategies"]:
        if s["name"] != "hindsight" and s["deadline_met_share"] == 1.0:
            assert s["cost_vs_optimum"] >= 1.0
    assert 1.0 <= best["cost_vs_optimum"] < 1.01
    assert data["optimum_bounds"]["lower"] <= data["optimum_bounds"]["upper"] == pytest.approx(best["cost"])
    assert data["optimum_bounds"]["worst_gap"] < 0.01
    for window in data["per_window"]:
        lower, upper = window["optimum_bounds"]["lower"], window["optimum_bounds"]["upper"]
        assert lower <= upper < lower * 1.01 and window["strategies"]["optimum"]["cost"] == upper
    assert len(data["per_window"]) == 3 and set(data["per_window"][0]["strategies"]) == set(NAMES)


def test_workers_give_the_same_report(trace: Path) -> None:
    args = ["--trace", str(trace), "--hours", "20", "--deadline", "2d", "--every", "1d", "--format", "json",
            "--tolerance", "high"]
    one, two = invoke(*args), invoke(*args, "--workers", "2")
    assert one.exit_code == 0 and two.exit_code == 0, two.output
    assert json.loads(one.stdout) == json.loads(two.stdout) and json.loads(two.stdout)["windows"] == 3


def test_json_flag_table_and_csv(trace: Path) -> None:
    args = ("--trace", str(trace), "--gpu", "A6000", "--hours", "10", "--deadline", "1d",
            "--strategies", "on-demand,floor,hindsight")
    as_json = invoke(*args, "--json")
    assert as_json.exit_code == 0 and [s["name"] for s in json.loads(as_json.stdout)["strategies"]] == [
        "on-demand", "floor", "hindsight"]
    table = invoke(*args)
    assert table.exit_code == 0
    lines = table.stdout.splitlines()
    assert lines[0].startswith("10 GPU-hour job, deadline 24 h, restart overhead 10 min")  # the default, as in launch
    assert "1 market(s): NVIDIA RTX A6000 COMMUNITY" in lines[0]
    header = next(line for line in lines if line.startswith("strategy"))
    assert header.split()[:3] == ["strategy", "cost", "$"]
    assert any(line.startswith("on-demand") and "4.900" in line for line in lines)   # 10 h x 0.49
    csv_out = invoke(*args, "--format", "csv")
    rows = csv_out.stdout.splitlines()
    assert rows[0].startswith("name,cost,cost_vs_hindsight") and "worst_peak_rate" in rows[0]
    assert [r.split(",")[0] for r in rows[1:]] == ["on-demand", "floor", "hindsight"]


def test_strategies_are_reported_in_the_order_given(trace: Path) -> None:
    """`--strategies hindsight,floor,optimum,on-demand` was reported in the fixed order (on-demand,
    floor, optimum, hindsight). The order given holds in the table, CSV and JSON (per window too), with
    the same numbers, the bounds' ratios included, as `all`."""
    given = ["hindsight", "floor", "optimum", "on-demand"]
    args = ("--trace", str(trace), "--gpu", "A6000", "--hours", "10", "--deadline", "1d", "--every", "1d")
    data = json.loads(invoke(*args, "--strategies", ",".join(given), "--json").stdout)
    assert [s["name"] for s in data["strategies"]] == given
    assert all(list(w["strategies"]) == given for w in data["per_window"])
    every = {s["name"]: s for s in json.loads(invoke(*args, "--json").stdout)["strategies"]}
    assert list(every) == NAMES  # all: the usual order
    for row in data["strategies"]:
        assert row == every[row["name"]]
        assert None not in (row["cost_vs_hindsight"], row["cost_vs_optimum"], row["cost_vs_on_demand"])
    table = invoke(*args, "--strategies", ",".join(given)).stdout.splitlines()
    head = table.index(next(line for line in table if line.startswith("strategy")))
    assert [line.split()[0] for line in table[head + 2:head + 2 + len(given)]] == given
    rows = invoke(*args, "--strategies", ",".join(given), "--format", "csv").stdout.splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == given


def test_keep_running(trace: Path) -> None:
    result = invoke("--trace", str(trace), "--gpu", "A6000", "--keep-running", "--days", "2", "--tolerance", "low",
                    "--strategies", "on-demand,hindsight", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["job"]["keep_running"] is True and data["job"]["keep_running_days"] == 2
    od = data["strategies"][0]
    assert od["cost"] == pytest.approx(48 * 0.49) and od["work_hours"] == pytest.approx(48)
    assert od["deadline_met_share"] is None and od["completion_hours"] is None


def test_db_gives_the_same_numbers_as_the_trace(tmp_path: Path, trace: Path) -> None:
    db = tmp_path / "bidder.db"
    with Store.open(db) as store:
        store.import_quotes(_quotes())
    args = ("--hours", "10", "--deadline", "1d", "--every", "1d", "--strategies", "on-demand,floor,hindsight",
            "--format", "json")
    from_db = json.loads(invoke("--db", str(db), *args).stdout)
    from_trace = json.loads(invoke("--trace", str(trace), *args).stdout)
    assert from_db["strategies"] == from_trace["strategies"]
    assert from_db["windows"] == from_trace["windows"] == 4     # starts at day 2, 3, 4, 5


def test_bidder_db_is_the_database_when_no_trace_or_db_is_given(tmp_path: Path, trace: Path) -> None:
    """The README says `bidder backtest` replays your own history: BIDDER_DB, the database every other
    command reads, is it when neither --trace nor --db is given (a --trace still replaces it)."""
    db = tmp_path / "bidder.db"
    with Store.open(db) as store:
        store.import_quotes(_quotes())
    args = ("--hours", "10", "--deadline", "1d", "--strategies", "on-demand,floor", "--format", "json")
    runner = CliRunner()
    by_env = runner.invoke(main, ["backtest", *args], env={"BIDDER_DB": str(db)})
    assert by_env.exit_code == 0, by_env.output
    assert json.loads(by_env.stdout)["strategies"] == json.loads(invoke("--db", str(db), *args).stdout)["strategies"]
    by_trace = runner.invoke(main, ["backtest", "--trace", str(trace), *args], env={"BIDDER_DB": str(tmp_path / "x.db")})
    assert by_trace.exit_code == 0, by_trace.output
    neither = runner.invoke(main, ["backtest", *args], env={"BIDDER_DB": ""})
    _one_line_error(neither, "give exactly one of --trace FILE or --db FILE", "BIDDER_DB")


def test_chart(tmp_path: Path, trace: Path) -> None:
    out = tmp_path / "cost.png"
    result = invoke("--trace", str(trace), "--hours", "10", "--deadline", "1d", "--strategies",
                    "on-demand,floor,hindsight", "--chart", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _one_line_error(result, *fragments: str) -> None:
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in result.output


def test_bad_inputs_give_one_line(tmp_path: Path, trace: Path) -> None:
    _one_line_error(invoke("--trace", str(tmp_path / "missing.csv")), "no trace file at", "missing.csv")
    # The trace's types, not "`bidder prices` lists them" (which reads the database, not the trace).
    _one_line_error(invoke("--trace", str(trace), "--gpu", "H200"), "unknown GPU type 'H200'; 2 types are known; the "
                    "trace holds NVIDIA GeForce RTX 4090, NVIDIA RTX A6000")
    _one_line_error(invoke("--trace", str(trace), "--min-vram", "4000"), "no market in the history matches")
    # A GPU count the history lacks names the job's own type at the counts and clouds it has (it listed
    # the first markets of every type, alphabetically).
    _one_line_error(invoke("--trace", str(trace), "--gpu", "4090", "--gpus", "3"),
                    "no market in the history matches the job (NVIDIA GeForce RTX 4090, 3 GPU(s), cloud ANY); the "
                    "history has these GPU types as: NVIDIA GeForce RTX 4090 COMMUNITY")
    bad = tmp_path / "bad.csv"
    bad.write_text("ts,gpu_type,minimum_bid_price,uninterruptable_price\n"
                   "2026-01-01T00:00:00Z,A,0.2,0.5\n2026-01-01T00:05:00Z,A,cheap,0.5\n")
    _one_line_error(invoke("--trace", str(bad)), "line 3, column minimum_bid_price", "'cheap' is not a number")
    _one_line_error(invoke("--trace", str(trace), "--hours", "10", "--deadline", "30d"), "too short")
    missing_db = tmp_path / "nothing.db"
    _one_line_error(invoke("--db", str(missing_db)), "no bidder database at")
    assert not missing_db.exists()
    for args in (["--trace", str(trace), "--db", str(missing_db)], [], ["--trace", str(trace), "--keep-running",
                 "--hours", "3"], ["--trace", str(trace), "--strategies", "cheapest"],
                 ["--trace", str(trace), "--every", "0d"], ["--trace", str(trace), "--workers", "0"]):
        result = invoke(*args)
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert result.stderr.strip().splitlines()[-1].startswith("Error:")


def test_help_ends_with_an_example() -> None:
    result = CliRunner().invoke(main, ["backtest", "--help"])
    assert result.exit_code == 0
    assert result.output.rstrip().splitlines()[-1].strip().startswith("bidder backtest")


def test_optimum_alone_for_a_service_is_a_usage_error(trace: Path) -> None:
    result = invoke("--trace", str(trace), "--keep-running", "--days", "2", "--strategies", "optimum")
    assert result.exit_code == 2 and "batch job" in result.output and "Traceback" not in result.output


def test_a_job_of_several_gpus_is_titled_by_its_pod_hours_and_gpu_hours(tmp_path: Path) -> None:
    # "10 GPU-hour job" on a 2-GPU pod, whose on-demand row cost 10 h x 2 GPUs: the work is pod-hours.
    two = [PriceQuote(**{**q.__dict__, "gpu_count": 2}) for q in _quotes() if q.gpu_type_id == "NVIDIA RTX A6000"]
    path = tmp_path / "two.csv"
    write_trace(two, path)
    result = invoke("--trace", str(path), "--gpu", "A6000", "--gpus", "2", "--hours", "10", "--deadline", "1d",
                    "--strategies", "on-demand", "--chart", str(tmp_path / "c.png"))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("10 h on a 2-GPU pod (20 GPU-hours), deadline 24 h,"), result.stdout
    on_demand = next(line for line in result.stdout.splitlines() if line.startswith("on-demand"))
    assert float(on_demand.split()[1]) == pytest.approx(10 * 2 * 0.49, abs=0.01), on_demand


def test_a_window_spacing_under_an_hour_reads_as_minutes(trace: Path) -> None:
    result = invoke("--trace", str(trace), "--gpu", "A6000", "--hours", "2", "--deadline", "4h", "--every", "30m",
                    "--strategies", "on-demand", "--start", "2026-01-05T00:00:00Z", "--end", "2026-01-05T06:00:00Z")
    assert result.exit_code == 0, result.output
    assert " every 30m; history to " in result.stdout.splitlines()[1], result.stdout  # not "every 0.5 h"


def test_a_max_price_under_on_demand_still_meets_every_deadline_once_the_budget_is_spent(tmp_path: Path) -> None:
    """Spot only (on-demand over the max price) at tolerance low: one interruption spends a 1-day window's
    budget of 0.5. bidder used to wait from then on, past the deadline, with the work undone (5 of 9
    deadlines met), where a bid at the max price met all 9; now spot goes on at the highest bid the cap
    allows, and the tolerance still holds in the mean over the windows."""
    trace = tmp_path / "sim.csv"
    made = CliRunner().invoke(main, ["sim", "trace", str(trace), "--seed", "5", "--days", "7",
                                     "--gpu", "NVIDIA GeForce RTX 4090", "--gpu", "NVIDIA L40S"])
    assert made.exit_code == 0, made.output
    result = invoke("--trace", str(trace), "--hours", "8", "--deadline", "24h", "--every", "12h", "--tolerance", "low",
                    "--max-price", "0.2", "--strategies", "bidder,floor+0.10", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    bidder, fixed = data["strategies"][0], data["strategies"][1]
    assert data["windows"] == 9 and bidder["name"] == "bidder"
    assert bidder["deadline_met_share"] == 1.0 and bidder["worst"]["deadline_met_share"] == 1.0
    assert bidder["interruptions"] <= 0.5  # per 1-day window: the tolerance, in the mean
    assert bidder["peak_rate"] <= 0.2 and bidder["cost"] < fixed["cost"]


def test_a_strategy_that_misses_deadlines_is_named_under_the_table_and_saves_nothing(trace: Path) -> None:
    """No slack (20 hours due in 20): a spot strategy interrupted misses. Its cost is of less work, so
    the table says so under it, and no x column (on-demand's included) reads its cost as a saving."""
    args = ("--trace", str(trace), "--hours", "20", "--deadline", "20h", "--every", "1d", "--gpu", "4090",
            "--strategies", "floor,on-demand")
    data = json.loads(invoke(*args, "--format", "json").stdout)
    floor = next(s for s in data["strategies"] if s["name"] == "floor")
    assert floor["deadline_met_share"] < 1
    windows = [w["strategies"]["floor"] for w in data["per_window"]]
    missed = [w for w in windows if w["deadline_met_share"] == 0]
    assert missed and all(w["cost_vs_on_demand"] is None and w["cost_vs_optimum"] is None for w in missed)
    assert all(w["cost_vs_on_demand"] is not None for w in windows if w["deadline_met_share"] == 1)
    table = invoke(*args)
    assert table.exit_code == 0, table.output
    assert (f"floor: missed {len(missed)} of {data['windows']} deadlines; its cost is of the work it did, late or "
            "short of the job "
            f"({round(floor['work_hours'], 2):g} of 20 h a window in the mean)") in table.output
    assert "on-demand: missed" not in table.output


def test_window_starts_in_a_gap_of_the_history_are_said_to_move(tmp_path: Path) -> None:
    """Samples for days 0-1 and 3-4 only: a --start on day 2 ran from day 3 without a word, and --every
    windows in the gap ran once, at its end, the rest dropped silently."""
    quotes = [q for q in _quotes(days=4, step_min=5) if not 24 <= (q.ts - START).total_seconds() / 3600 < 72]
    trace = tmp_path / "gap.csv"
    write_trace(quotes, trace)
    one = invoke("--trace", str(trace), "--hours", "2", "--deadline", "6h", "--start", "2026-01-02T12:00:00Z",
                 "--gpu", "A6000")
    assert one.exit_code == 0, one.output
    assert one.stderr == ("note: 1 of 1 window start(s) fell in gaps of the history, each moved to the next sample "
                          "(by up to 36 h)\n")
    assert "1 window(s) from 2026-01-04T00:00:00Z" in one.stdout
    grid = invoke("--trace", str(trace), "--hours", "2", "--deadline", "6h", "--start", "2026-01-01T00:00:00Z",
                  "--every", "6h", "--gpu", "A6000", "--format", "json")
    assert grid.exit_code == 0, grid.output
    assert json.loads(grid.stdout)["job"]["starts_in_gaps"] == {"moved": 8, "of": 16, "windows": 8, "most_hours": 48.0}
    assert "8 of 16 window start(s) fell in gaps" in grid.stderr and "run once: 8 window(s)" in grid.stderr
    whole = invoke("--trace", str(trace), "--hours", "2", "--deadline", "6h", "--start", "2026-01-01T00:00:00Z",
                   "--gpu", "A6000")
    assert whole.exit_code == 0 and "fell in gaps" not in whole.stderr  # a start on a sample: none moved
    # (this one the history's first: a note says it has no warm-up, tests/test_backtest_cli_inputs.py)
