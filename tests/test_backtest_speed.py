"""`bidder backtest --gpu-speed GPU=FACTOR`: GPU types of different speeds, as bidder.toml's `speed`, through
the CLI on a small trace. Without it every type ran at 1.0, so a job on a fast type and a slow one could
not be backtested as it runs (a backtest audit had to use the Python API)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from bidder.cli import main

START = datetime(2026, 1, 1, tzinfo=UTC)


def _trace(path: Path) -> Path:
    """Four days of 15-minute samples: SLOW on-demand $1.00, FAST $2.40 (floors over both: no spot)."""
    lines = ["ts,gpu_type,minimum_bid_price,uninterruptable_price"]
    for k in range(4 * 24 * 4):
        ts = (START + timedelta(minutes=15 * k)).isoformat().replace("+00:00", "Z")
        lines += [f"{ts},SLOW,5.0,1.0", f"{ts},FAST,5.0,2.4"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _run(trace: Path, *args: str):
    return CliRunner().invoke(main, ["backtest", "--trace", str(trace), "--hours", "12", "--deadline", "1d",
                                     "--strategies", "on-demand,hindsight", "--format", "json", *args])


def test_a_faster_gpu_does_the_work_in_fewer_hours_and_on_demand_takes_it_when_cheaper_per_unit(tmp_path: Path) -> None:
    trace = _trace(tmp_path / "two.csv")
    plain = _run(trace)
    assert plain.exit_code == 0, plain.output
    by = {s["name"]: s for s in json.loads(plain.stdout)["strategies"]}
    assert by["on-demand"]["cost"] == pytest.approx(12.0)  # SLOW, 12 h at $1.00
    fast = _run(trace, "--gpu-speed", "FAST=3")
    assert fast.exit_code == 0, fast.output
    report = json.loads(fast.stdout)
    assert report["job"]["speed_factors"] == {"FAST": 3.0}
    by = {s["name"]: s for s in report["strategies"]}
    assert by["on-demand"]["cost"] == pytest.approx(9.6)  # FAST: 4 h at $2.40 ($0.80 a unit of work)
    assert by["on-demand"]["completion_hours"] == pytest.approx(4.0)
    assert by["hindsight"]["cost"] == pytest.approx(9.6)
    # A job the deadline rules out at speed 1.0 fits at the fast type's speed.
    assert _run(trace, "--hours", "40").exit_code != 0
    assert _run(trace, "--hours", "40", "--gpu-speed", "FAST=3").exit_code == 0


@pytest.mark.parametrize(("value", "says"), [
    ("FAST", "is not GPU=FACTOR"), ("=3", "is not GPU=FACTOR"), ("FAST=x", "is not a number"),
    ("FAST=0", "above 0 and at most 100"), ("FAST=nan", "above 0 and at most 100"),
    ("FAST=1e9", "above 0 and at most 100"), ("NOPE=2", "unknown GPU type 'NOPE'"),
])
def test_a_bad_speed_is_one_line_and_a_non_zero_exit(tmp_path: Path, value: str, says: str) -> None:
    result = _run(_trace(tmp_path / "two.csv"), "--gpu-speed", value)
    assert result.exit_code != 0 and says in result.output, result.output
    assert "Traceback" not in result.output and not result.stdout.strip().startswith("{")


def test_two_speeds_for_one_type_are_refused(tmp_path: Path) -> None:
    result = _run(_trace(tmp_path / "two.csv"), "--gpu-speed", "FAST=2", "--gpu-speed", "fast=3")
    assert result.exit_code == 2 and "FAST is given two speeds (2 and 3)" in result.output, result.output
