"""The collector against the real emulator over HTTP: one request per cycle, every type × cloud ×
count stored, nulls, failed cycles, the aligned loop on the virtual clock, two collectors at once."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from client_helpers import Recorder

from bidder.cli import main
from bidder.collector import LoopStats, collect_once, run_every
from bidder.errors import ApiError, AuthError, StoreBusy, StoreError, TransportError
from bidder.executor import SPOT_FLAG, Executor
from bidder.models import CLOUDS, Policy, PriceQuote
from bidder.runpod import RetryPolicy, RunPodClient
from bidder.sim import TEST_API_KEY
from bidder.store import Store
from bidder.units import to_iso

A6000 = "NVIDIA RTX A6000"
NO_RETRY = RetryPolicy(attempts=1)
MAIN = "from bidder.cli import main; main()"


class Counting:
    """An httpx client that counts the GraphQL requests it sends (the transport seam, no patching)."""

    def __init__(self) -> None:
        self.operations: list[str] = []
        self.http = httpx.Client(timeout=10.0, event_hooks={"request": [self._count]})

    def _count(self, request: httpx.Request) -> None:
        self.operations.append(request.content.decode()[:200])


def make_client(emulator, *, key: str = TEST_API_KEY, http: httpx.Client | None = None,
                retry: RetryPolicy = NO_RETRY) -> RunPodClient:
    return RunPodClient(api_key=key, url=emulator.url, http=http, retry=retry)


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "bidder.db") as s:
        yield s


def test_a_cycle_stores_every_type_cloud_and_count_in_one_request(emulator, store):
    counting = Counting()
    client = make_client(emulator, http=counting.http)
    result = collect_once(client, store, now=emulator.now, gpu_counts=(1, 2, 4, 8))
    types = sorted(emulator.world.gpu_types)
    assert len(counting.operations) == 2  # lowestPrice for everything + the daily catalogue
    stored = store.price_history()
    assert {(q.gpu_type_id, q.cloud, q.gpu_count) for q in stored} == {
        (t, c, n) for t in types for c in CLOUDS for n in (1, 2, 4, 8)}
    assert len(stored) == result.quotes == len(types) * 2 * 4
    assert {q.ts for q in stored} == {emulator.now.replace(microsecond=0)}
    for q in stored:
        if q.gpu_count == 1 and q.minimum_bid_price is not None:
            assert q.minimum_bid_price == pytest.approx(emulator.world.floor(q.gpu_type_id, q.cloud))
    [row] = store.collections()
    assert row["error"] is None and row["quotes"] == len(stored) and row["gpu_types"] == len(types)
    assert {i.id for i in store.gpu_type_infos()} == set(types)
    # Five minutes later: one request only, the catalogue is fresh.
    emulator.advance(300)
    collect_once(client, store, now=emulator.now, gpu_counts=(1, 2, 4, 8))
    assert len(counting.operations) == 3
    assert store.collections()[0]["gpu_types"] is None
    emulator.advance(86400)  # a day later the catalogue is refreshed again
    collect_once(client, store, now=emulator.now)
    assert len(counting.operations) == 5 and store.collections()[0]["gpu_types"] == len(types)


def test_no_spot_and_no_capacity_are_stored_as_nulls(emulator, store):
    emulator.world.set_floor(A6000, "COMMUNITY", None)
    emulator.world.set_capacity(A6000, "SECURE", 0)
    collect_once(make_client(emulator), store, now=emulator.now)
    got = {(q.gpu_type_id, q.cloud): q for q in store.latest_quotes()}
    community, secure = got[A6000, "COMMUNITY"], got[A6000, "SECURE"]
    assert community.minimum_bid_price is None and community.uninterruptable_price is not None
    assert secure.minimum_bid_price is None and secure.uninterruptable_price is None
    assert secure.stock_status == "None"
    b200 = got["NVIDIA B200", "SECURE"]  # listed without a spot price: never any spot
    assert b200.minimum_bid_price is None and b200.uninterruptable_price is not None
    raw = store._conn.execute("SELECT count(*) FROM prices WHERE minimum_bid_price = 0").fetchone()[0]
    assert raw == 0


@pytest.mark.parametrize(("faults", "error"), [("500=1", TransportError), ("429=1", ApiError)])
def test_a_failed_cycle_stores_only_its_error_row(emulator, store, faults, error):
    collect_once(make_client(emulator), store, now=emulator.now)
    before = store.price_history()
    emulator.advance(300)
    emulator.set_faults(faults)
    with pytest.raises(error):
        collect_once(make_client(emulator), store, now=emulator.now)
    assert store.price_history() == before
    failed, ok = store.collections()
    assert failed["quotes"] == 0 and failed["error"].startswith(error.__name__ if faults == "500=1" else "RateLimited")
    assert ok["error"] is None
    assert store.last_collection_ts() == ok["ts"]
    assert store.last_collection_ts(successful=False) == failed["ts"]


def test_a_wrong_key_is_an_auth_error_row(emulator, store):
    with pytest.raises(AuthError):
        collect_once(make_client(emulator, key="wrong-key"), store, now=emulator.now)
    [row] = store.collections()
    assert row["error"].startswith("AuthError") and "wrong-key" not in row["error"]


def test_every_runs_aligned_on_the_virtual_clock_and_retries_with_backoff(emulator, store):
    client = make_client(emulator)
    emulator.advance(100)  # start off the grid: the first cycle waits for 00:05
    attempts = []

    def cycle(now):
        attempts.append(now)
        # The second interval's first attempt meets a broken API; its retry 15 s later does not.
        emulator.set_faults("500=1" if len(attempts) == 2 else None)
        collect_once(client, store, now=now)

    errors = []
    stats = run_every(300, cycle, now=lambda: emulator.now, sleep=emulator.advance, max_cycles=4,
                      on_error=lambda exc, retry_in: errors.append(retry_in))
    assert (stats.slots, stats.ok, stats.failures, stats.skipped_slots) == (4, 4, 1, 0)
    assert errors == [15.0]
    start = emulator.now.replace(hour=0, minute=0, second=0)
    assert [to_iso(t) for t in attempts] == [to_iso(start + timedelta(seconds=s))
                                             for s in (300, 600, 615, 900, 1200)]
    ok = sorted(r["ts"] for r in store.collections() if r["error"] is None)
    assert [to_iso(t) for t in ok] == [to_iso(start + timedelta(seconds=s)) for s in (300, 615, 900, 1200)]


def test_every_honours_retry_after_and_skips_intervals_instead_of_bursting(emulator, store):
    client = make_client(emulator)
    emulator.set_faults("429=1,retry_after=700")
    attempts = []

    def cycle(now):
        attempts.append(now)
        if len(attempts) == 2:
            emulator.set_faults(None)
        collect_once(client, store, now=now)

    stats = run_every(300, cycle, now=lambda: emulator.now, sleep=emulator.advance, max_cycles=2)
    start = attempts[0]
    # Told to wait 700 s at 00:00: the next try is the first interval after that, 00:15.
    assert [(t - start).total_seconds() for t in attempts] == [0, 900]
    assert (stats.ok, stats.failures, stats.skipped_slots) == (1, 1, 2)


def test_every_stops_on_a_wrong_key(emulator, store):
    stats = LoopStats()
    with pytest.raises(AuthError):
        run_every(300, lambda now: collect_once(make_client(emulator, key="nope"), store, now=now),
                  now=lambda: emulator.now, sleep=emulator.advance, stats=stats)
    assert stats.slots == 1 and stats.ok == 0


def _hold_write_lock(path) -> sqlite3.Connection:
    """Another program's write transaction on the database (as a long `import-trace` holds one)."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    return other


def test_every_waits_out_a_locked_database_until_the_next_interval(emulator, tmp_path):
    """A write lock held past the busy timeout is transient: said, then tried at the next slot, not
    the end of the loop (it ended a `collect --every` for good during a big import)."""
    path = tmp_path / "bidder.db"
    client = make_client(emulator)
    with Store.open(path, busy_timeout_s=0.1) as store:
        other = _hold_write_lock(path)
        attempts, errors = [], []

        def cycle(now):
            attempts.append(now)
            if len(attempts) == 2:
                other.execute("ROLLBACK")  # the import is over
            collect_once(client, store, now=now)

        stats = run_every(300, cycle, now=lambda: emulator.now, sleep=emulator.advance, max_cycles=3,
                          on_error=lambda exc, retry_in: errors.append((exc, retry_in)))
        other.close()
        assert (stats.slots, stats.ok, stats.failures, stats.skipped_slots) == (3, 2, 1, 0)
        [(exc, retry_in)] = errors
        assert isinstance(exc, StoreBusy) and retry_in is None and "database is locked" in str(exc)
        assert [(t - attempts[0]).total_seconds() for t in attempts] == [0, 300, 600]
        assert len(store.collections()) == 2


def test_every_still_ends_on_a_store_error_that_waiting_does_not_cure(emulator, tmp_path):
    path = tmp_path / "bidder.db"
    with Store.open(path) as store:
        store._conn.execute("PRAGMA query_only = ON")  # every write refused, as on a broken disk
        stats = LoopStats()
        with pytest.raises(StoreError) as raised:
            run_every(300, lambda now: collect_once(make_client(emulator), store, now=now),
                      now=lambda: emulator.now, sleep=emulator.advance, stats=stats)
        assert not isinstance(raised.value, StoreBusy) and stats.slots == 1


def test_two_collectors_at_once_on_one_file(emulator, tmp_path):
    """Two threads, each with its own client and connection, collect the same instants: no lock
    error, both cycles recorded, the snapshot stored once."""
    path = tmp_path / "shared.db"
    Store.open(path).close()
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def collector() -> None:
        try:
            with Store.open(path) as mine:
                client = make_client(emulator)
                for _ in range(5):
                    barrier.wait()
                    collect_once(client, mine, now=emulator.now, gpu_counts=(1, 2))
                    if barrier.wait() == 0:
                        emulator.advance(300)
        except BaseException as exc:  # reported below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=collector) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Store.open(path) as s:
        assert len(s.collections()) == 10 and all(r["error"] is None for r in s.collections())
        assert len(s.price_history()) == 5 * len(emulator.world.gpu_types) * 2 * 2


def _cli(emulator, db, *args: str, key: str = TEST_API_KEY) -> subprocess.Popen:
    env = {**os.environ, "RUNPOD_API_KEY": key, "RUNPOD_API_URL": emulator.url, "BIDDER_DB": str(db)}
    return subprocess.Popen([sys.executable, "-c", MAIN, "collect", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_collect_processes_at_once(emulator, tmp_path):
    db = tmp_path / "bidder.db"
    procs = [_cli(emulator, db, "--gpu-counts", "1,2") for _ in range(2)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    for out, err in outs:
        assert " stored " in out and err == ""
    with Store.open(db) as s:
        assert [r["error"] for r in s.collections()] == [None, None]


def test_cli_collect_errors_are_one_line(emulator, tmp_path):
    db = tmp_path / "bidder.db"
    out, err = _cli(emulator, db, key="wrong").communicate(timeout=60)
    assert out == "" and err.count("\n") == 1 and err.startswith("Error: ") and "wrong" not in err
    assert "HTTP 401" in err
    emulator.set_faults("429=1,retry_after=0.05")
    proc = _cli(emulator, db, "--retries", "1")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and err.count("\n") == 1 and err.startswith("Error: ") and "HTTP 429" in err
    emulator.set_faults(None)
    env = {**os.environ, "RUNPOD_API_KEY": TEST_API_KEY, "BIDDER_DB": str(db)}
    closed = subprocess.run([sys.executable, "-c", MAIN, "collect", "--api-url",
                             "http://127.0.0.1:9/graphql", "--retries", "1"], env=env, capture_output=True, text=True, timeout=60)
    assert closed.returncode == 1 and closed.stderr.count("\n") == 1 and closed.stderr.startswith("Error: ")
    assert "cannot connect" in closed.stderr
    with Store.open(db) as s:
        # The two refusals were stamped with the emulator's time; the closed port never said one, so its
        # failure is not written (the wall clock's time would sit far off that clock: test_clock.py).
        assert [(r["quotes"], r["clock"]) for r in s.collections()] == [(0, "emulator")] * 2
        assert s.price_history() == []


def test_cli_collect_every_loops_for_n_intervals(emulator, tmp_path):
    """The CLI loop, kept short: two 1-second intervals of the wall clock; against the emulator each
    snapshot is stamped with its virtual time (here standing still), not the wall clock (issue 9)."""
    db = str(tmp_path / "bidder.db")
    result = CliRunner(env={"RUNPOD_API_KEY": TEST_API_KEY}).invoke(
        main, ["collect", "--every", "1s", "--cycles", "2", "--db", db, "--api-url", emulator.url])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"Collecting every 1s into {db} (Ctrl-C stops)."
    assert len(lines) == 4 and all(" stored " in line for line in lines[1:3])
    assert lines[3] == "2 snapshots stored, 0 failed attempts, 0 intervals skipped."
    with Store.open(db) as s:
        stamps = sorted(r["ts"] for r in s.collections())
        assert stamps == [emulator.now, emulator.now]


@pytest.mark.parametrize("how", ["replaced", "removed"])
def test_cli_collect_every_follows_its_database_path_when_the_file_is_replaced_or_removed(emulator, tmp_path, how):
    """A backup restored over the database (or the file removed) while the loop runs: it kept writing to
    the file it had open, so its snapshots went into a deleted file, or its write-ahead log over the
    new file's pages (a 4.8 MB database left with the loop's 400 rows). It opens the path again."""
    db = tmp_path / "bidder.db"
    backup = tmp_path / "backup.db"
    with Store.open(backup) as s:
        s.import_quotes([PriceQuote(ts=datetime(2025, 12, 1, tzinfo=UTC), gpu_type_id="NVIDIA RTX A6000",
                                    cloud="SECURE", gpu_count=1, minimum_bid_price=0.2, uninterruptable_price=0.5)])
    proc = _cli(emulator, db, "--every", "1s", "--cycles", "3")
    assert proc.stdout is not None
    lines = [proc.stdout.readline(), proc.stdout.readline()]  # the loop's first line, then its first snapshot
    assert " stored " in lines[1], lines
    if how == "replaced":
        os.replace(backup, db)
    else:
        for part in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
            part.unlink(missing_ok=True)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert f"note: {db} was removed or replaced since the last snapshot: opening it again" in err
    assert "2 snapshots stored" not in out and "3 snapshots stored" in out
    with Store.open(db) as s:
        assert s.schema_version() > 0 and len(s.collections()) == 2  # the two after the swap, here
        imported = [q for q in s.price_history() if q.ts.year == 2025]
        assert len(imported) == (1 if how == "replaced" else 0)
        assert s._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_cli_collect_every_goes_on_when_its_clock_is_behind_the_data(emulator, tmp_path):
    """An emulator restarted with an earlier clock (or a wall clock stepped back) is behind the newest
    snapshot: each cycle is refused as running backwards, and the loop tries again at the next interval
    (it ended at the first, exit 1, though the clock may catch up)."""
    db = tmp_path / "bidder.db"
    ahead = emulator.now + timedelta(hours=1)
    with Store.open(db) as s:
        s.record_collection(ahead, [PriceQuote(ts=ahead, gpu_type_id="NVIDIA RTX A6000", cloud="SECURE", gpu_count=1,
                                               minimum_bid_price=0.2, uninterruptable_price=0.5)], duration_s=0.1)
    result = CliRunner(env={"RUNPOD_API_KEY": TEST_API_KEY}).invoke(
        main, ["collect", "--every", "1s", "--cycles", "2", "--db", str(db), "--api-url", emulator.url])
    assert result.exit_code == 1
    refused = [line for line in result.output.splitlines() if "collection failed: time would run backwards" in line]
    assert len(refused) == 2 and all(line.endswith("; next try at the next interval") for line in refused)
    assert "0 snapshots stored, 2 failed attempts" in result.output


def test_cli_collect_every_stopped_by_sigterm_says_what_it_stored(emulator, tmp_path):
    """systemd's stop (SIGTERM) ended the loop at once, exit 143 with no word of what it had stored; it
    ends it as Ctrl-C does, with the summary line, and the database whole."""
    db = tmp_path / "bidder.db"
    proc = _cli(emulator, db, "--every", "1s")
    assert proc.stdout is not None
    proc.stdout.readline()
    assert " stored " in proc.stdout.readline()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "Terminated." in err, err
    [summary] = [line for line in out.splitlines() if "snapshots stored" in line]
    counted = int(summary.split()[0])
    with Store.open(db) as s:
        # (A cycle stopped between its commit and its count is stored but not counted.)
        stored = len([r for r in s.collections() if r["error"] is None])
        assert stored >= 1 and counted in (stored, stored - 1)
        assert s._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_prices_older_than_prices_days_are_deleted_as_a_collection_is_stored(emulator, tmp_path, monkeypatch):
    """RunPod's prices and the collector's cycles were never pruned (about 10 MB a day, 3.9 GB a year):
    with `prices_days` each stored snapshot deletes its market's rows older than that; a series left
    with none leaves `markets`. The default keeps all of it; under 31 days (what decisions read) is refused."""
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "bidder.db"
    env = {"RUNPOD_API_KEY": TEST_API_KEY}

    def collect():
        result = CliRunner(env=env).invoke(main, ["collect", "--db", str(db), "--api-url", emulator.url])
        assert result.exit_code == 0, result.output

    collect()
    first = emulator.now
    emulator.advance(20 * 86400)
    collect()
    with Store.open(db) as s:  # (a series seen once, in the first cycle alone, to leave `markets` later)
        s.import_quotes([PriceQuote(ts=first, gpu_type_id="NVIDIA GONE", cloud="SECURE", gpu_count=1,
                                    minimum_bid_price=0.2, uninterruptable_price=0.5)])
    emulator.advance(12 * 86400)
    collect()  # no setting: everything kept
    with Store.open(db) as s:
        assert len({r["ts"] for r in s.collections()}) == 3
    (tmp_path / "bidder.toml").write_text("prices_days = 31\n")
    emulator.advance(86400)
    collect()
    with Store.open(db) as s:
        stamps = sorted({q.ts for q in s.price_history()})
        assert first not in stamps and len(stamps) == 3 and stamps[-1] == emulator.now
        assert len(s.collections()) == 3
        spans = s.market_spans()
        assert "NVIDIA GONE" not in {m["gpu_type_id"] for m in spans}
        assert min(m["first_ts"] for m in spans) == stamps[0]
    (tmp_path / "bidder.toml").write_text("prices_days = 10\n")
    refused = CliRunner(env=env).invoke(main, ["collect", "--db", str(db), "--api-url", emulator.url])
    assert refused.exit_code == 1 and "prices_days" in refused.output and "from 31" in refused.output


def test_cli_collect_refuses_a_now_after_the_apis_clock(emulator, tmp_path):
    """`collect --now 2030-...` stored a snapshot in 2030, deleted every Vast offer older than 8 days
    before it, and every later collection was refused as running backwards; a --now five months after
    the emulator's clock (but before the wall clock, which a day of slack let through) deleted the whole
    price history the same way. A --now after the API's own clock is refused and stores nothing; the
    emulator's own time is taken, and a plain collect goes on after a refusal."""
    db = tmp_path / "bidder.db"
    env = {"RUNPOD_API_KEY": TEST_API_KEY}

    def collect(*now):
        return CliRunner(env=env).invoke(main, ["collect", "--db", str(db), "--api-url", emulator.url,
                                                *(("--now", now[0]) if now else ())])

    far = collect("2030-01-01T00:00:00Z")
    assert far.exit_code == 2 and ("Invalid value for --now: 2030-01-01T00:00:00Z is after the API's clock "
                                   f"({to_iso(emulator.now)}, the emulator's virtual clock)") in far.output, far.output
    assert not db.exists() or Store.open(db).collections() == []
    assert collect(to_iso(emulator.now)).exit_code == 0
    with Store.open(db) as store:
        first = store.collections()
    emulator.advance(1800)
    for ahead in (timedelta(hours=12), timedelta(days=150)):
        refused = collect(to_iso(emulator.now + ahead))
        assert refused.exit_code == 2 and "is after the API's clock" in refused.output, refused.output
        with Store.open(db) as store:
            assert store.collections() == first  # nothing stored, nothing pruned
    assert collect().exit_code == 0
    with Store.open(db) as store:
        assert len(store.collections()) == 2


def test_cli_collect_rejects_bad_options(tmp_path):
    db = str(tmp_path / "bidder.db")
    runner = CliRunner()
    result = runner.invoke(main, ["collect", "--gpu-counts", "1,x", "--db", db])
    assert result.exit_code == 2 and "'x' in '1,x' is not a positive whole number" in result.stderr
    result = runner.invoke(main, ["collect", "--cycles", "2", "--db", db])
    assert result.exit_code == 2 and "--cycles only makes sense with --every" in result.stderr
    result = runner.invoke(main, ["collect", "--every", "soon", "--db", db])
    assert result.exit_code == 2 and "is not a duration" in result.stderr


# -- RunPod without the spot price fields (the emulator's second stage of the spot switch) ----------

def test_collector_keeps_storing_on_demand_prices_when_the_spot_fields_are_gone(emulator, store, caplog):
    emulator.set_spot_enabled(False, fields=False)
    recorder = Recorder()
    client = make_client(emulator, http=recorder.http)
    with caplog.at_level(logging.DEBUG, logger="bidder"):
        first = collect_once(client, store, now=emulator.now, gpu_counts=(1, 2))
        emulator.advance(300)
        second = collect_once(client, store, now=emulator.now, gpu_counts=(1, 2))
    # The refused lowestPrice and its reduced twin (one extra request, once), the catalogue asked
    # without the fields, then the next cycle's single reduced request.
    sent = [(b["query"].split()[1].split("(")[0], "minimumBidPrice" in b["query"], "SpotPrice" in b["query"])
            for b in recorder.bodies]
    assert sent == [("lowestPrices", True, True), ("lowestPrices", False, False), ("gpuTypes", False, False),
                    ("lowestPrices", False, False)]
    recorder.close()
    assert (first.spot_prices, first.spot_flag_set) == (False, True)
    assert (second.spot_prices, second.spot_flag_set) == (False, False)
    stored = store.price_history()
    assert len(stored) == 2 * len(emulator.world.gpu_types) * 2 * 2
    assert all(q.minimum_bid_price is None for q in stored)
    quote = next(q for q in store.latest_quotes() if (q.gpu_type_id, q.cloud, q.gpu_count) == (A6000, "COMMUNITY", 1))
    assert quote.uninterruptable_price == pytest.approx(
        emulator.world.lowest_price(A6000, 1, False)["uninterruptablePrice"])
    raw = store._conn.execute("SELECT count(*) FROM prices WHERE minimum_bid_price IS NOT NULL").fetchone()[0]
    assert raw == 0
    assert [r["error"] for r in store.collections()] == [None, None]
    # The executor's own setting, dated by the first cycle, and the executor now offers no spot.
    assert store.settings_get(SPOT_FLAG) == to_iso(first.ts)
    policy = Executor(client, store).effective_policy(Policy(max_price=5.0))
    assert policy.allow_spot is False
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "no longer reports spot prices" in warnings[0].getMessage()
    assert TEST_API_KEY not in caplog.text


def test_collector_keeps_an_earlier_spot_flag_and_leaves_it_alone_while_the_fields_exist(emulator, store):
    emulator.set_spot_enabled(False)  # stage one: mutations gone, floors null but the fields answer
    collect_once(make_client(emulator), store, now=emulator.now)
    assert store.settings_get(SPOT_FLAG) is None  # the executor decides on a refused mutation
    store.settings_set(SPOT_FLAG, "2025-12-31T00:00:00Z")
    emulator.set_spot_enabled(False, fields=False)
    emulator.advance(300)
    result = collect_once(make_client(emulator), store, now=emulator.now)
    assert not result.spot_prices and not result.spot_flag_set
    assert store.settings_get(SPOT_FLAG) == "2025-12-31T00:00:00Z"


def test_cli_collect_says_once_that_spot_prices_are_gone(emulator, tmp_path):
    emulator.set_spot_enabled(False, fields=False)
    db = str(tmp_path / "bidder.db")
    runner = CliRunner(env={"RUNPOD_API_KEY": TEST_API_KEY})
    line = ("RunPod no longer reports spot prices (its API refuses the spot price fields); on-demand prices "
            "are still being recorded.")
    once = runner.invoke(main, ["collect", "--db", db, "--api-url", emulator.url])
    assert once.exit_code == 0, once.output
    assert once.stdout.splitlines()[1:] == [line]
    looped = runner.invoke(main, ["collect", "--every", "1s", "--cycles", "2", "--db", db, "--api-url", emulator.url])
    assert looped.exit_code == 0, looped.output
    assert looped.stdout.splitlines().count(line) == 1
    assert TEST_API_KEY not in once.output + looped.output
    with Store.open(db) as s:
        assert s.settings_get(SPOT_FLAG) is not None and len(s.collections()) == 3
