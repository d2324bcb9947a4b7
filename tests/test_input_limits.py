"""Input that other commands would have paid for, refused where it comes in, through the real CLI
(click's CliRunner) on real SQLite files:

- A: `import-trace` takes no price a market could not state (above the API clients' MAX_PRICE) and no
  time more than a day after now (a year 9999 row hid every later snapshot from `prices`); the
  backtest's reader refuses the same prices;
- B: `history` takes a name both markets use for one GPU (RunPod's display name, Vast's id) as
  `recommend --gpu` does, and still refuses a name matching different GPUs;
- C: a foreign SQLite file is refused before bidder changes a byte of it (journal mode included).
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from bidder.cli import main
from bidder.models import MAX_PRICE
from bidder.runpod import types as runpod_types
from bidder.sim import TEST_API_KEY, Emulator
from bidder.store import Store
from bidder.units import to_iso

HEADER = "ts,gpu_type,minimum_bid_price,uninterruptable_price\n"


def cli(*args: str, env: dict[str, str] | None = None):
    return CliRunner(env=env).invoke(main, list(args))


def one_error(result) -> str:
    """The one line of a failed command (exit 1, no traceback)."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def rows(db: Path) -> list[tuple]:
    with Store.open(db, create=False) as store:
        return [(q.ts, q.gpu_type_id, q.minimum_bid_price) for q in store.price_history()]


# -- A: impossible prices and times in a trace -----------------------------------------------------------
def test_the_trace_limit_is_the_clients_limit():
    assert runpod_types.MAX_PRICE is MAX_PRICE == 1000.0


@pytest.mark.parametrize("column, row", [
    ("minimum_bid_price", "2026-01-05T00:00:00Z,X GPU,1e300,0.3"),
    ("uninterruptable_price", "2026-01-05T00:00:00Z,X GPU,0.1,1000.01"),
])
def test_import_trace_refuses_a_price_above_the_clients_limit_and_stores_nothing(tmp_path, column, row):
    trace = tmp_path / "t.csv"
    trace.write_text(HEADER + "2026-01-04T00:00:00Z,X GPU,0.1,0.3\n" + row + "\n")
    fresh = tmp_path / "fresh.db"
    line = one_error(cli("import-trace", str(trace), "--db", str(fresh)))
    assert line == (f"Error: {trace} line 3, column {column}: '{row.split(',')[2 + (column != 'minimum_bid_price')]}' "
                    "is above 1000 USD per GPU-hour, more than any GPU costs: correct the price (USD per GPU-hour, "
                    "e.g. 0.35)")
    assert not fresh.exists()  # a failed import into a new file leaves no database behind
    kept = tmp_path / "kept.db"
    ok = tmp_path / "ok.csv"
    ok.write_text(HEADER + "2026-01-01T00:00:00Z,Y GPU,0.2,1000\n")  # the limit itself is a price
    assert cli("import-trace", str(ok), "--db", str(kept)).exit_code == 0
    before = rows(kept)
    one_error(cli("import-trace", str(trace), "--db", str(kept)))
    assert rows(kept) == before  # all or nothing: the good row before the bad one is not stored


def test_the_repro_year_9999_row_is_refused_naming_its_line_and_the_fix(tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text(HEADER + "2026-01-05T00:00:00Z,X GPU,0.2,0.3\n9999-12-31T23:59:59Z,X GPU,0.1,0.3\n")
    db = tmp_path / "x.db"
    line = one_error(cli("import-trace", str(trace), "--db", str(db)))
    assert line.startswith(f"Error: {trace} line 3, column ts: '9999-12-31T23:59:59Z' is more than a day after now (")
    assert line.endswith(", the wall clock): a trace holds prices already quoted; correct the time (a typo in the "
                         "year?), or give --now TIME to import history up to TIME")
    assert not db.exists()
    # --now moves "now" (as elsewhere in the CLI); near the year 10000 nothing overflows
    ok = cli("import-trace", str(trace), "--db", str(db), "--now", "9999-12-31T00:00:00Z")
    assert ok.exit_code == 0, ok.output
    assert len(rows(db)) == 2


def test_a_time_up_to_a_day_ahead_of_the_wall_clock_is_taken_and_later_is_not(tmp_path):
    wall = datetime.now(UTC).replace(microsecond=0)
    near, far = wall + timedelta(hours=23), wall + timedelta(hours=25)
    db = tmp_path / "x.db"
    trace = tmp_path / "t.csv"
    trace.write_text(HEADER + f"{to_iso(wall)},X GPU,0.2,0.3\n{to_iso(near)},X GPU,0.2,0.3\n")
    assert cli("import-trace", str(trace), "--db", str(db)).exit_code == 0
    trace.write_text(HEADER + f"{to_iso(wall - timedelta(days=1))},X GPU,0.2,0.3\n{to_iso(far)},X GPU,0.2,0.3\n")
    line = one_error(cli("import-trace", str(trace), "--db", str(db)))
    assert f"line 3, column ts: '{to_iso(far)}' is more than a day after now" in line
    assert [r[0] for r in rows(db)] == [wall, near]  # the day-old first row of the refused file is not stored


def test_a_database_on_an_emulator_clock_ahead_of_the_wall_takes_its_own_export_back(tmp_path):
    """The emulator's virtual clock may run ahead of the wall clock: history it stamped is not "the
    future" of that database, so its export imports back; a row a day past its newest snapshot is."""
    ahead = (datetime.now(UTC) + timedelta(days=400)).replace(microsecond=0)
    db, out = tmp_path / "sim.db", tmp_path / "sim.csv"
    with Emulator(seed=0, start=ahead) as emu:
        env = {"RUNPOD_API_KEY": TEST_API_KEY}
        for _ in range(3):
            assert cli("collect", "--db", str(db), "--api-url", emu.url, env=env).exit_code == 0
            emu.advance(1800)
    assert cli("export", "--db", str(db), "-o", str(out)).exit_code == 0
    again = tmp_path / "again.db"
    done = cli("import-trace", str(out), "--db", str(db))
    assert done.exit_code == 0 and "0 new or changed" in done.output, done.output
    newest = ahead + timedelta(hours=1)
    late = tmp_path / "late.csv"
    late.write_text(HEADER + f"{to_iso(newest + timedelta(days=2))},NVIDIA RTX A6000,0.2,0.3\n")
    line = one_error(cli("import-trace", str(late), "--db", str(db)))
    assert f"more than a day after now ({to_iso(newest)}, the newest snapshot in {db})" in line
    # A fresh database has only the wall clock: the emulator's history is the future there.
    line = one_error(cli("import-trace", str(out), "--db", str(again)))
    assert "line 2, column ts:" in line and "the wall clock" in line and not again.exists()


def test_backtest_reads_traces_with_the_same_price_limit(tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text(HEADER + "2026-01-01T00:00:00Z,A,0.1,0.3\n2026-01-01T01:00:00Z,A,0.1,5e3\n")
    line = one_error(cli("backtest", "--trace", str(trace), "--hours", "1", "--deadline", "2h"))
    assert line.startswith(f"Error: {trace} line 3, column uninterruptable_price: '5e3' is above 1000 USD per GPU-hour")


# -- B: a name both markets use ---------------------------------------------------------------------------
def test_history_takes_a_gpu_both_markets_list_as_recommend_does(emulator, tmp_path):
    """README's `bidder history "RTX A6000" --since 1d` once Vast is collected too: RunPod's NVIDIA RTX
    A6000 (shown as RTX A6000) and Vast's RTX A6000 are one GPU; both markets' floors are summarised."""
    db = str(tmp_path / "both.db")
    env = {"RUNPOD_API_KEY": TEST_API_KEY, "VAST_API_KEY": TEST_API_KEY, "VAST_URL": emulator.vast_url}
    for _ in range(4):
        done = cli("collect", "--db", db, "--api-url", emulator.url, env=env)
        assert done.exit_code == 0, done.output
        emulator.advance(1800)
    with Store.open(db, create=False) as store:
        assert {"NVIDIA RTX A6000", "RTX A6000"} <= {key[0] for key in store.markets()}
    table = cli("history", "RTX A6000", "--db", db, "--since", "1d")
    assert table.exit_code == 0, table.output
    assert table.stdout.splitlines()[0].startswith(
        "RTX A6000 (runpod: NVIDIA RTX A6000; vast: RTX A6000): spot floor, USD per GPU-hour, since ")
    data = json.loads(cli("history", "RTX A6000", "--db", db, "--since", "1d", "--format", "json").stdout)
    assert {(r["market"], r["gpu_type_id"]) for r in data} == {("runpod", "NVIDIA RTX A6000"), ("vast", "RTX A6000")}
    assert all(r["samples"] == 4 for r in data)
    # recommend took the name all along, for both markets
    assert cli("recommend", "--db", db, "--gpu", "RTX A6000", "--hours", "1", "--format", "json").exit_code == 0
    # --market narrows it; an exact RunPod id is RunPod's alone
    vast = json.loads(cli("history", "RTX A6000", "--db", db, "--since", "1d", "--market", "vast",
                          "--format", "json").stdout)
    assert [(r["market"], r["gpu_type_id"]) for r in vast] == [("vast", "RTX A6000")] * len(vast)
    exact = json.loads(cli("history", "NVIDIA RTX A6000", "--db", db, "--since", "1d", "--format", "json").stdout)
    assert {r["gpu_type_id"] for r in exact} == {"NVIDIA RTX A6000"}
    # a part of several GPUs' names stays ambiguous: one line naming them
    line = one_error(cli("history", "A100", "--db", db, "--since", "1d"))
    assert line.startswith("Error: 'A100' matches ") and "give one exactly or choose a market with --market" in line


# -- C: a foreign SQLite file is left as it was -----------------------------------------------------------
def _foreign(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE u (i)")
    conn.execute("INSERT INTO u VALUES (1)")
    conn.commit()
    conn.close()


def _journal_mode(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        conn.close()


@pytest.mark.parametrize("command", [
    ("pods",), ("jobs",), ("report",), ("prices",), ("history", "A6000"), ("export",),
    ("collect", "--market", "runpod"), ("import-trace", "TRACE"),
], ids=lambda c: c[0])
def test_a_foreign_sqlite_file_is_refused_and_left_byte_for_byte(tmp_path, monkeypatch, command, emulator):
    monkeypatch.chdir(tmp_path)  # `jobs` reads ./bidder.toml
    (tmp_path / "bidder.toml").write_text('[jobs.train]\ngpu = ["NVIDIA RTX A6000"]\nhours = 12\n'
                                          'image = "runpod/pytorch:latest"\n')
    (tmp_path / "t.csv").write_text(HEADER + "2026-01-01T00:00:00Z,X GPU,0.2,0.3\n")
    other = tmp_path / "o.db"
    _foreign(other)
    before = other.read_bytes()
    assert _journal_mode(other) == "delete"
    args = [str(tmp_path / "t.csv") if a == "TRACE" else a for a in command]
    if command[0] == "collect":
        args += ["--api-url", emulator.url]
    line = one_error(cli(*args, "--db", str(other), env={"RUNPOD_API_KEY": TEST_API_KEY}))
    assert line == (f"Error: {other} is an SQLite file but not a bidder database (it has tables and no bidder schema "
                    "version); point --db / BIDDER_DB at another file")
    assert other.read_bytes() == before and _journal_mode(other) == "delete"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bidder.toml", "o.db", "t.csv"]  # no -wal, -shm


@pytest.mark.parametrize("tables", ["CREATE TABLE prices(x);", ""], ids=["tables", "empty"])
def test_a_file_with_a_negative_schema_version_is_refused_untouched(tmp_path, tables):
    """`pragma user_version=-5` (no bidder writes one) ended in `KeyError: -4` looking up a migration."""
    other = tmp_path / "neg.db"
    conn = sqlite3.connect(other)
    conn.executescript(tables + "PRAGMA user_version = -5;")
    conn.close()
    before = other.read_bytes()
    for command in (("prices",), ("collect", "--market", "runpod", "--api-url", "http://127.0.0.1:1/graphql")):
        line = one_error(cli(*command, "--db", str(other), env={"RUNPOD_API_KEY": TEST_API_KEY}))
        assert line == (f"Error: {other} is an SQLite file but not a bidder database (it has schema version -5, "
                        "which no bidder writes); point --db / BIDDER_DB at another file")
        assert other.read_bytes() == before and _journal_mode(other) == "delete"


def test_a_file_with_a_schema_version_but_not_bidders_tables_is_refused_untouched(tmp_path):
    other = tmp_path / "versioned.db"
    _foreign(other)
    conn = sqlite3.connect(other)
    conn.execute("PRAGMA user_version = 2")
    conn.close()
    before = other.read_bytes()
    line = one_error(cli("prices", "--db", str(other)))
    assert line == (f"Error: {other} is an SQLite file but not a bidder database (it has schema version 2 but not "
                    "bidder's tables); point --db / BIDDER_DB at another file")
    assert other.read_bytes() == before and _journal_mode(other) == "delete"
