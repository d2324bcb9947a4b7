"""A dry run's scratch copy of the database (`bidder.tick.dry_run_copy`): every table whole but the two
that grow without end, of which it keeps the days decisions read, and the dry run decides on it as on
the whole database. It copied the whole file: a year of prices is 3-4 GB in the temp folder (often RAM)."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import timedelta

from executor_helpers import A6000, GPUS

from bidder.sim import generate_quotes
from bidder.tick import DRY_RUN_OFFER_DAYS, DRY_RUN_PRICE_DAYS, dry_run_copy, run_tick
from bidder.units import to_iso

SPOT_JOB = f"""
[jobs.train]
gpu = ["{A6000}"]
cloud = "community"
hours = 10
deadline = "2d"
tolerance = "high"
image = "runpod/pytorch:latest"
"""


def _old_spikes(env, days_ago: float) -> None:
    """Two days of hourly snapshots `days_ago` days back, every floor at $9.99: a decision that read them
    would bid and plan otherwise."""
    start = env.emu.now - timedelta(days=days_ago)
    quotes = generate_quotes(env.emu.seed, 2, 3600, GPUS, start=start)
    for ts in sorted({q.ts for q in quotes}):
        env.store.record_collection(ts, [replace(q, minimum_bid_price=9.99, gpu_count=n)
                                         for q in quotes if q.ts == ts for n in (1, 2)], duration_s=0.0)


def _offers(path, stamps) -> None:
    """Vast offer rows at `stamps` (a collector's rows, as a Vast collection stores them)."""
    conn = sqlite3.connect(path)
    with conn:
        conn.executemany("INSERT INTO offers (ts, offer_id, machine_id, gpu_name, num_gpus, min_bid, dph_total) "
                         "VALUES (?, ?, 7, 'RTX 4090', 1, 0.2, 0.4)", [(to_iso(ts), k) for k, ts in enumerate(stamps)])
    conn.close()


def _rows(conn: sqlite3.Connection) -> dict[str, int]:
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    return {name: conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] for name in names}


def _schema(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    return conn.execute("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_autoindex%' "
                        "ORDER BY type, name").fetchall()


def test_the_copy_keeps_the_recent_prices_and_offers_and_every_other_row(env):
    now = env.emu.now
    _old_spikes(env, 45)
    env.store.save_job_state("train", note="kept")  # (a ledger table: copied whole)
    _offers(env.tmp / "bidder.db", [now - timedelta(days=d) for d in (20, DRY_RUN_OFFER_DAYS + 0.5, 3, 0)])
    source = sqlite3.connect(env.tmp / "bidder.db")
    whole, schema, version = _rows(source), _schema(source), source.execute("PRAGMA user_version").fetchone()[0]
    recent = source.execute("SELECT count(*) FROM prices WHERE ts >= ?",
                            (to_iso(now - timedelta(days=DRY_RUN_PRICE_DAYS)),)).fetchone()[0]
    source.close()
    assert whole["prices"] > recent > 0 and whole["offers"] == 4
    with dry_run_copy(env.store, now) as copy:
        conn = sqlite3.connect(copy.path)
        rows = _rows(conn)
        assert rows == {**whole, "prices": recent, "offers": 2}
        assert _schema(conn) == schema and conn.execute("PRAGMA user_version").fetchone()[0] == version
        oldest = conn.execute("SELECT min(ts) FROM prices").fetchone()[0]
        assert oldest >= to_iso(now - timedelta(days=DRY_RUN_PRICE_DAYS))
        conn.close()
        assert copy.job_state("train")["note"] == "kept"
    with dry_run_copy(env.store) as copy:  # (no time: all of it)
        conn = sqlite3.connect(copy.path)
        assert _rows(conn) == whole
        conn.close()


def _dry_tick(env, config, store) -> tuple[list[str], list[dict]]:
    events: list[dict] = []
    report = run_tick(env.client, store, config, env.emu.now, dry_run=True, events=events.append)
    return [f"{j.name}: {j.state}: {j.message}" for j in report.jobs], [
        {k: v for k, v in e.items() if k not in ("ts", "duration_s")} for e in events]


def test_a_dry_run_on_the_copy_decides_as_on_the_whole_database(env):
    """Floors of $9.99 45 days back, left out of the copy: the dry run plans and bids (or waits for its bid)
    and prints what it would send as it does on a copy of everything (decisions read 30 days)."""
    _old_spikes(env, 45)
    config = env.config(SPOT_JOB)
    with dry_run_copy(env.store) as whole:
        expected = _dry_tick(env, config, whole)
    with dry_run_copy(env.store, env.emu.now) as copy:
        seen = _dry_tick(env, config, copy)
    assert seen == expected
    assert "spot" in seen[0][0] and "$" in seen[0][0], seen  # (a bid level of the plan: launched or waited for)
    assert env.emu.world.pods == {}


def test_spikes_inside_the_days_decisions_read_change_the_decision(env):
    """The check above can fail: the same spikes 20 days back (inside the 30 days decisions read) move
    the plan's bid, so a copy that left them out would dry-run another request."""
    config = env.config(SPOT_JOB)
    with dry_run_copy(env.store) as calm:
        before = _dry_tick(env, config, calm)
    _old_spikes(env, 20)
    with dry_run_copy(env.store, env.emu.now) as copy:
        after = _dry_tick(env, config, copy)
    assert after != before
