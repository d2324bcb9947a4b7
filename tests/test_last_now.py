"""A command's time near the year 9999 (bidder.clock.LAST_NOW), through the real CLI on real SQLite
files and the emulator over HTTP: --now, the emulator's clock and the database's emulator time after
LAST_NOW are one line each, and `sim serve` refuses a start after it (`history`, `recommend`, `chart
prices`, `launch --dry-run` ended in `OverflowError: date value out of range` adding a deadline or
a window to a time in the year 9999)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import UTC, datetime

import httpx
import pytest
from click.testing import CliRunner

from bidder.cli import main
from bidder.clock import LAST_NOW
from bidder.collector import collect_once
from bidder.runpod import RunPodClient
from bidder.sim import TEST_API_KEY, Emulator
from bidder.store import Store
from bidder.units import to_iso

WHY = ("is after 9800-01-01T00:00:00Z, the latest time bidder runs at (a deadline or a window of up to 115 "
       "years after it must still end by the year 9999)")


def one_line(result, code: int = 1) -> str:
    assert result.exit_code == code, result.output + result.stderr
    assert isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def db(snapshot_db):
    return snapshot_db


@pytest.mark.parametrize("args", [
    ["history", "RTX 4090"],
    ["chart", "prices", "c.png"],
    ["recommend", "--gpu", "RTX 4090", "--hours", "5", "--deadline", "1d"],
])
def test_a_now_in_the_year_9999_is_one_usage_line(db, tmp_path, args):
    result = CliRunner().invoke(main, [*args, "--db", str(db), "--now", "9999-12-31T23:59:59Z"])
    line = one_line(result, 2)
    assert line.startswith(f"Error: Invalid value for --now: '9999-12-31T23:59:59Z' {WHY}: give an earlier time")
    assert not (tmp_path / "c.png").exists()


def test_at_the_last_now_the_longest_durations_still_fit(db):
    now = to_iso(LAST_NOW)
    history = CliRunner().invoke(main, ["history", "RTX 4090", "--db", str(db), "--now", now, "--since", "36525d"])
    assert "Traceback" not in history.output and isinstance(history.exception, SystemExit | None)
    rec = CliRunner().invoke(main, ["recommend", "--db", str(db), "--gpu", "RTX 4090", "--hours", "1000000",
                                    "--deadline", "36525d", "--now", now])
    assert isinstance(rec.exception, SystemExit | None), rec.exception


def serve(*args: str) -> str:
    """`bidder sim serve` in a subprocess (a start it takes would serve until killed): its one line."""
    proc = subprocess.run([sys.executable, "-m", "bidder", "sim", "serve", "--port", "0", *args],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == "", proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_sim_serve_refuses_a_start_or_a_trace_after_the_last_now(tmp_path):
    line = serve("--start", "9999-12-31T23:59:59Z")
    assert line.startswith(f"Error: Invalid value for --start: 9999-12-31T23:59:59Z {WHY}: give an earlier time")
    far = tmp_path / "far.csv"
    far.write_text("ts,gpu_type,minimum_bid_price,uninterruptable_price\n"
                   "9999-12-31T23:59:58Z,NVIDIA GeForce RTX 4090,0.2,0.5\n")
    line = serve("--trace", str(far))
    assert line.startswith(f"Error: Invalid value for --trace: {far} starts at 9999-12-31T23:59:58Z, which {WHY}: "
                           "give --start TIME, an earlier time to replay it from")


def test_an_emulator_clock_past_the_last_now_is_one_line(tmp_path):
    with Emulator(seed=1, start=datetime(9799, 12, 31, 23, 0, tzinfo=UTC)) as emu:
        env = {"RUNPOD_API_URL": emu.url, "RUNPOD_API_KEY": TEST_API_KEY}
        db = tmp_path / "s9.db"
        ok = CliRunner(env=env).invoke(main, ["collect", "--db", str(db), "--market", "runpod"])
        assert ok.exit_code == 0, ok.output + ok.stderr
        httpx.post(emu.base_url + "/sim/advance", json={"seconds": 7200}, timeout=10).raise_for_status()
        expected = (f"Error: the emulator's clock, 9800-01-01T01:00:00Z, {WHY}; restart `bidder sim serve` with an "
                    "earlier --start, or give --now TIME")
        for args in (["collect", "--market", "runpod"],
                     ["launch", "--gpu", "RTX 4090", "--image", "x", "--dry-run"],
                     ["recommend", "--gpu", "RTX 4090", "--hours", "5", "--deadline", "1d", "--refresh",
                      "--market", "runpod"]):
            assert one_line(CliRunner(env=env).invoke(main, [*args, "--db", str(db)])) == expected, args


def test_a_database_stamped_by_an_emulator_past_the_last_now_is_one_line(tmp_path):
    """A snapshot an emulator stamped after LAST_NOW (bidder collected one before it refused them)."""
    with Emulator(seed=1, start=datetime(9799, 12, 31, 23, 0, tzinfo=UTC)) as emu, \
            RunPodClient(api_key=emu.api_key, url=emu.url) as client:
        db = tmp_path / "s9.db"
        with Store.open(db) as store:
            store.clock = "emulator"
            collect_once(client, store, now=emu.now, gpu_counts=(1,))
    with sqlite3.connect(db) as con:
        con.execute("UPDATE collections SET ts = '9999-12-31T23:59:59Z'")
    con.close()
    expected = (f"Error: the emulator's clock that stamped the newest snapshot in {db}, 9999-12-31T23:59:59Z, {WHY}; "
                "give --now TIME")
    for args in (["history", "RTX 4090"], ["chart", "prices", str(tmp_path / "c.png")],
                 ["recommend", "--gpu", "RTX 4090", "--hours", "5", "--deadline", "1d"]):
        assert one_line(CliRunner().invoke(main, [*args, "--db", str(db)])) == expected, args
