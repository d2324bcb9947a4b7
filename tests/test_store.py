"""The history half of the store on real SQLite files: schema, migrations, snapshots, reads, lock."""

from __future__ import annotations

import math
import sqlite3
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from bidder.errors import LockHeld, SchemaTooNew, StoreError, TraceFormatError
from bidder.models import PriceQuote
from bidder.store import SCHEMA_VERSION, Store

T0 = datetime(2026, 1, 1, tzinfo=UTC)
A6000 = "NVIDIA RTX A6000"


def quote(ts: datetime = T0, gpu: str = A6000, cloud: str = "COMMUNITY", count: int = 1,
          floor: float | None = 0.25, od: float | None = 0.49, **extra: object) -> PriceQuote:
    return PriceQuote(ts=ts, gpu_type_id=gpu, cloud=cloud, gpu_count=count, minimum_bid_price=floor,
                      uninterruptable_price=od, **extra)  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "bidder.db") as s:
        yield s


def test_open_creates_parents_schema_wal_and_busy_timeout(tmp_path):
    path = tmp_path / "deep" / "er" / "bidder.db"
    with Store.open(path) as store:
        assert path.is_file()
        assert store.schema_version() == SCHEMA_VERSION
        conn = sqlite3.connect(path)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"gpu_types", "prices", "markets", "collections", "actions", "pods", "pod_observations",
                "jobs", "settings"} <= tables
        assert store._conn.execute("PRAGMA busy_timeout").fetchone()[0] == 30000
        conn.close()


def test_open_without_create_refuses_a_missing_file(tmp_path):
    with pytest.raises(StoreError, match=r"no bidder database at .*bidder collect"):
        Store.open(tmp_path / "missing.db", create=False)
    assert not (tmp_path / "missing.db").exists()


def test_a_newer_schema_is_refused_with_a_clear_message(tmp_path):
    path = tmp_path / "new.db"
    Store.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaTooNew, match=rf"newer bidder \(schema version {SCHEMA_VERSION + 1}; this bidder reads "
                       rf"versions up to {SCHEMA_VERSION}\): upgrade bidder") as info:
        Store.open(path)
    assert (info.value.found, info.value.supported) == (SCHEMA_VERSION + 1, SCHEMA_VERSION)


def test_foreign_sqlite_and_non_sqlite_files_are_refused(tmp_path):
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE notes (x TEXT)")
    conn.close()
    with pytest.raises(StoreError, match="not a bidder database"):
        Store.open(other)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError, match=r"cannot use .*junk\.db as a bidder database"):
        Store.open(junk)


# Version 1 as released (market history only), written by hand as an old bidder would have left it.
V1_SQL = """
CREATE TABLE gpu_types (id TEXT PRIMARY KEY, display_name TEXT, manufacturer TEXT, memory_in_gb INTEGER,
    secure_cloud INTEGER, community_cloud INTEGER, max_gpu_count INTEGER, secure_price REAL,
    community_price REAL, secure_spot_price REAL, community_spot_price REAL, updated TEXT);
CREATE TABLE prices (ts TEXT NOT NULL, gpu_type_id TEXT NOT NULL, cloud TEXT NOT NULL, gpu_count INTEGER NOT NULL,
    minimum_bid_price REAL, uninterruptable_price REAL, stock_status TEXT, available_gpu_counts TEXT,
    max_unreserved_gpu_count INTEGER, list_spot_price REAL, list_on_demand_price REAL,
    PRIMARY KEY (ts, gpu_type_id, cloud, gpu_count)) WITHOUT ROWID;
CREATE INDEX prices_market_ts ON prices (gpu_type_id, cloud, gpu_count, ts, minimum_bid_price,
    uninterruptable_price);
CREATE TABLE markets (gpu_type_id TEXT NOT NULL, cloud TEXT NOT NULL, gpu_count INTEGER NOT NULL,
    first_ts TEXT NOT NULL, last_ts TEXT NOT NULL, PRIMARY KEY (gpu_type_id, cloud, gpu_count));
CREATE TABLE collections (id INTEGER PRIMARY KEY, ts TEXT NOT NULL, duration_s REAL NOT NULL,
    quotes INTEGER NOT NULL, gpu_types INTEGER, error TEXT);
CREATE INDEX collections_ts ON collections (ts);
INSERT INTO prices VALUES ('2026-01-01T00:00:00Z', 'NVIDIA RTX A6000', 'COMMUNITY', 1, 0.25, 0.49, 'High',
    '[1,2]', 4, 0.25, 0.33);
INSERT INTO markets VALUES ('NVIDIA RTX A6000', 'COMMUNITY', 1, '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z');
INSERT INTO collections VALUES (1, '2026-01-01T00:00:00Z', 0.5, 1, NULL, NULL);
PRAGMA user_version = 1;
"""


def test_a_version_1_file_is_upgraded_and_keeps_its_history(tmp_path):
    path = tmp_path / "v1.db"
    conn = sqlite3.connect(path)
    conn.executescript(V1_SQL)
    conn.close()
    with Store.open(path) as store:
        assert store.schema_version() == SCHEMA_VERSION
        [q] = store.latest_quotes()
        assert (q.gpu_type_id, q.minimum_bid_price, q.available_gpu_counts, q.stock_status) == (
            A6000, 0.25, (1, 2), "High")
        assert store.last_collection_ts() == T0
        action = store.begin_action(T0, job="j", kind="stop", pod_id="p1")  # the ledger now exists
        store.finish_action(action, outcome="ok")
        assert store.actions("j")[0]["outcome"] == "ok"
    with Store.open(path) as again:  # opening an up-to-date file changes nothing
        assert again.schema_version() == SCHEMA_VERSION
        assert len(again.price_history()) == 1


def test_a_snapshot_stores_every_quote_at_one_ts_with_nulls(store):
    quotes = [quote(ts=T0 + timedelta(seconds=7), floor=0.25, stock_status="High", available_gpu_counts=(1, 2, 4),
                    max_unreserved_gpu_count=4, list_spot_price=0.25, list_on_demand_price=0.33,
                    display_name="RTX A6000", memory_in_gb=48),
              quote(cloud="SECURE", floor=0.0, od=0.49),                 # 0 floor = no spot
              quote(cloud="SECURE", count=2, floor=None, od=None, stock_status="None")]
    store.record_collection(T0, quotes, duration_s=0.2)
    got = {(q.cloud, q.gpu_count): q for q in store.latest_quotes()}
    assert set(got) == {("COMMUNITY", 1), ("SECURE", 1), ("SECURE", 2)}
    assert all(q.ts == T0 for q in got.values())
    assert got["COMMUNITY", 1] == quotes[0].__class__(**{**quotes[0].__dict__, "ts": T0})
    assert got["SECURE", 1].minimum_bid_price is None and got["SECURE", 1].uninterruptable_price == 0.49
    assert got["SECURE", 2].minimum_bid_price is None and got["SECURE", 2].uninterruptable_price is None
    assert got["SECURE", 2].stock_status == "None"
    raw = store._conn.execute("SELECT minimum_bid_price, available_gpu_counts FROM prices WHERE cloud = 'SECURE' "
                              "AND gpu_count = 1").fetchone()
    assert tuple(raw) == (None, None)  # stored as NULL, never 0
    assert store.collections()[0]["quotes"] == 3
    assert store.gpu_type_names() == {A6000: "RTX A6000"}  # name and VRAM noted from the quote


def test_a_failed_cycle_writes_only_its_collections_row(store):
    store.record_collection(T0, [quote()], duration_s=0.1)
    store.record_collection(T0 + timedelta(minutes=5), [quote(ts=T0 + timedelta(minutes=5))], duration_s=1.5,
                            error="TransportError: connection refused")
    assert [q.ts for q in store.price_history()] == [T0]
    assert store.last_collection_ts() == T0
    assert store.last_collection_ts(successful=False) == T0 + timedelta(minutes=5)
    failed = store.collections()[0]
    assert (failed["quotes"], failed["error"]) == (0, "TransportError: connection refused")


def test_a_bad_quote_rolls_the_whole_cycle_back(store):
    bad = PriceQuote(ts=T0, gpu_type_id=None, cloud="SECURE", gpu_count=1,  # type: ignore[arg-type]
                     minimum_bid_price=0.2, uninterruptable_price=0.4)
    with pytest.raises(StoreError, match="could not be stored"):
        store.record_collection(T0, [quote(), bad], duration_s=0.1)
    assert store.price_history() == [] and store.collections() == [] and store.markets() == []


def test_naive_times_are_refused(store):
    with pytest.raises(StoreError, match="naive datetime"):
        store.record_collection(datetime(2026, 1, 1), [quote()], duration_s=0.1)


def test_same_ts_snapshot_replaces_rows(store):
    store.record_collection(T0, [quote(floor=0.25)], duration_s=0.1)
    store.record_collection(T0, [quote(floor=0.3)], duration_s=0.1)
    assert [q.minimum_bid_price for q in store.price_history()] == [0.3]
    assert len(store.collections()) == 2


def test_floor_series_is_sorted_numpy_with_nan_and_window(store):
    times = [T0 + timedelta(minutes=5 * i) for i in range(6)]
    floors = [0.3, None, 0.2, 0.25, None, 0.4]
    for ts, floor in reversed(list(zip(times, floors, strict=True))):  # written newest first
        store.record_collection(ts, [quote(ts=ts, floor=floor, od=0.49 if floor else None),
                                     quote(ts=ts, cloud="SECURE", floor=9.0)], duration_s=0.1)
    series = store.floor_series(A6000, "COMMUNITY", 1)
    assert series.ts.dtype == np.float64 and len(series) == 6
    np.testing.assert_array_equal(series.ts, [t.timestamp() for t in times])
    np.testing.assert_array_equal(series.floor, [0.3, np.nan, 0.2, 0.25, np.nan, 0.4])
    assert math.isnan(series.on_demand[1]) and series.on_demand[0] == 0.49
    window = store.floor_series(A6000, "COMMUNITY", 1, since=times[1], until=times[4])
    np.testing.assert_array_equal(window.ts, [t.timestamp() for t in times[1:4]])
    assert (window.gpu_type_id, window.cloud, window.gpu_count) == (A6000, "COMMUNITY", 1)
    assert len(store.floor_series("nope", "COMMUNITY", 1)) == 0


def test_price_history_filters_and_markets(store):
    for i in range(3):
        ts = T0 + timedelta(hours=i)
        store.record_collection(ts, [quote(ts=ts), quote(ts=ts, cloud="SECURE", count=2),
                                     quote(ts=ts, gpu="NVIDIA GeForce RTX 4090")], duration_s=0.1)
    assert len(store.price_history()) == 9
    assert len(store.price_history(gpu_type_id=A6000)) == 6
    assert len(store.price_history(cloud="SECURE", gpu_count=2)) == 3
    got = store.price_history(since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=2))
    assert {q.ts for q in got} == {T0 + timedelta(hours=1)}
    assert store.markets() == [("NVIDIA GeForce RTX 4090", "COMMUNITY", 1), (A6000, "COMMUNITY", 1),
                               (A6000, "SECURE", 2)]
    span = store.market_spans()[1]
    assert (span["first_ts"], span["last_ts"]) == (T0, T0 + timedelta(hours=2))


def test_catalogue_upsert_from_objects_and_dicts(store):
    class ClientGpuType:  # any object with the client's attribute names will do
        id = A6000
        display_name = "RTX A6000"
        manufacturer = "Nvidia"
        memory_in_gb = 48
        secure_cloud = True
        community_cloud = True
        max_gpu_count = 10
        secure_price = 0.49
        community_price = 0.33
        secure_spot_price = 0.33
        community_spot_price = 0.0

    store.record_collection(T0, [quote()], duration_s=0.1,
                            gpu_types=[ClientGpuType(), {"id": "NVIDIA B200", "memory_in_gb": 180}])
    infos = {i.id: i for i in store.gpu_type_infos()}
    a = infos[A6000]
    assert (a.display_name, a.memory_in_gb, a.secure_cloud, a.community_spot_price, a.updated) == (
        "RTX A6000", 48, True, None, T0)
    assert infos["NVIDIA B200"].memory_in_gb == 180
    assert store.gpu_types_updated() == T0
    assert store.collections()[0]["gpu_types"] == 2


def test_import_quotes_is_idempotent(store):
    quotes = [quote(ts=T0 + timedelta(minutes=5 * i), floor=0.2 + i / 100) for i in range(10)]
    assert store.import_quotes(quotes) == (10, 10)
    assert store.import_quotes(quotes) == (10, 0)
    changed = [*quotes[:9], quote(ts=quotes[9].ts, floor=0.5)]
    assert store.import_quotes(changed) == (10, 1)
    assert store.price_history()[-1].minimum_bid_price == 0.5
    assert store.collections() == []  # imports are not collector cycles


def test_latest_quotes_of_imported_series_sampled_at_their_own_times(store):
    """A collector's snapshot is the rows at its time (a series missing from it is not current); an
    imported trace's series may each keep their own times (:00 and :02), and each one's newest within
    an hour of the market's newest is current: `prices` and `recommend` showed the :02 series alone."""
    a6000 = [quote(ts=T0 + timedelta(minutes=5 * i), floor=0.2) for i in range(24)]
    r4090 = [quote(ts=T0 + timedelta(minutes=5 * i + 2), gpu="NVIDIA GeForce RTX 4090", floor=0.3) for i in range(24)]
    gone = [quote(ts=T0 - timedelta(hours=3), gpu="NVIDIA H100 80GB HBM3", floor=1.5)]  # stopped hours before
    store.import_quotes([*a6000, *r4090, *gone])
    latest = {q.gpu_type_id: q.ts for q in store.latest_quotes()}
    assert latest == {A6000: a6000[-1].ts, "NVIDIA GeForce RTX 4090": r4090[-1].ts}
    at = T0 + timedelta(minutes=61)  # at or before a time: the same per series
    assert {q.gpu_type_id: q.ts for q in store.latest_quotes(at=at)} == {
        A6000: T0 + timedelta(minutes=60), "NVIDIA GeForce RTX 4090": T0 + timedelta(minutes=57)}
    # A collector's snapshot after them: its rows alone, as before.
    later = T0 + timedelta(hours=3)
    store.record_collection(later, [quote(ts=later, floor=0.25)], duration_s=0.1)
    assert [(q.gpu_type_id, q.ts) for q in store.latest_quotes()] == [(A6000, later)]


def test_import_reads_without_holding_the_write_lock(tmp_path):
    """A long trace is read into a temporary table first: meanwhile a collector writes at once (busy
    timeout 0); the import then writes, and a failed one leaves no row and no staging behind."""
    path = tmp_path / "b.db"
    importer = Store.open(path)
    collector = Store.open(path, busy_timeout_s=0)
    written: list[int] = []

    def quotes(fail_at: int | None = None):
        for i in range(30):
            if i == 15:  # half-way through the file: a collection lands
                ts = T0 + timedelta(days=1, minutes=5 * len(written))
                collector.record_collection(ts, [quote(ts=ts, cloud="SECURE")], duration_s=0.01)
                written.append(i)
            if i == fail_at:
                raise TraceFormatError(f"t.csv line {i + 2}, column ts: bad")
            yield quote(ts=T0 + timedelta(minutes=5 * i))

    assert importer.import_quotes(quotes()) == (30, 30)
    assert written == [15]
    with pytest.raises(TraceFormatError):
        importer.import_quotes(quotes(fail_at=20))
    assert len(written) == 2
    assert len(importer.price_history(cloud="COMMUNITY")) == 30  # the failed import added nothing
    assert importer.import_quotes(quotes()) == (30, 0)  # the staging table was dropped: the next import runs
    assert importer._conn.execute("SELECT name FROM temp.sqlite_master").fetchall() == []
    importer.close()
    collector.close()


def test_two_writers_at_once_on_one_file(tmp_path):
    """Two collectors (threads, each with its own connection) write interleaved snapshots: none fails."""
    path = tmp_path / "shared.db"
    Store.open(path).close()
    errors: list[BaseException] = []

    def writer(offset: int) -> None:
        try:
            with Store.open(path) as s:
                for i in range(40):
                    ts = T0 + timedelta(minutes=10 * i + offset)
                    s.record_collection(ts, [quote(ts=ts, cloud=c, count=n) for c in ("SECURE", "COMMUNITY")
                                             for n in (1, 2, 4)], duration_s=0.01)
                    s.floor_series(A6000, "SECURE", 1)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in (0, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Store.open(path) as s:
        assert len(s.price_history()) == 2 * 40 * 6
        assert len(s.collections(limit=1000)) == 80



def test_many_connections_opening_a_fresh_file_at_once(tmp_path):
    """Creating the file, switching it to WAL and migrating race safely (SQLite refuses a
    concurrent WAL switch at once, without waiting: the store retries)."""
    for trial in range(5):
        path = tmp_path / f"fresh{trial}.db"
        errors: list[BaseException] = []

        def opener(k: int, path=path, errors=errors) -> None:
            try:
                with Store.open(path) as s:
                    s.settings_set(f"k{k}", "v")
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=opener, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        with Store.open(path) as s:
            assert s.schema_version() == SCHEMA_VERSION and s.settings_get("k7") == "v"


LOCK_HOLDER = textwrap.dedent("""
    import sys
    from bidder.store import Store
    with Store.open(sys.argv[1]) as store, store.exclusive_lock("tick"):
        print("locked", flush=True)
        sys.stdin.read()
""")


def test_exclusive_lock_is_refused_at_once_to_a_second_holder(tmp_path):
    path = tmp_path / "bidder.db"
    with Store.open(path) as a, Store.open(path) as b:
        with a.exclusive_lock("tick"):
            with pytest.raises(LockHeld, match=r"another bidder \(pid \d+\) holds the 'tick' lock"), \
                    b.exclusive_lock("tick"):
                pass
            with b.exclusive_lock("other"):  # locks are per name
                pass
            a.record_collection(T0, [quote()], duration_s=0.1)  # the holder still writes freely
        with b.exclusive_lock("tick"):  # released
            pass


FULL_DISK_LOCK = textwrap.dedent("""
    import resource, signal, sys
    from bidder.errors import LockHeld
    from bidder.store import Store
    with Store.open(sys.argv[1]) as a, Store.open(sys.argv[1]) as b:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG), as on a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))
        with a.exclusive_lock("tick"):
            try:
                with b.exclusive_lock("tick"):
                    sys.exit("a second holder got the lock")
            except LockHeld:
                pass
        with b.exclusive_lock("tick"):  # released
            print("ok")
""")


def test_a_lock_whose_holder_note_cannot_be_written_still_locks(tmp_path):
    # A full disk: writing "pid N" into the lock file failed, and closing it failed again (a traceback from
    # every command that takes the tick's lock). The note is a courtesy; the flock is the lock.
    path = tmp_path / "bidder.db"
    Store.open(path).close()
    result = subprocess.run([sys.executable, "-c", FULL_DISK_LOCK, str(path)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_a_lock_file_that_is_a_symbolic_link_is_refused_and_its_target_untouched(tmp_path):
    """The holder note truncates the lock file: through a link planted in a shared folder a tick emptied
    the file it pointed at."""
    path = tmp_path / "bidder.db"
    victim = tmp_path / "victim.txt"
    victim.write_text("IMPORTANT USER DATA\n")
    with Store.open(path) as store:
        store.lock_path("tick").symlink_to(victim)
        with pytest.raises(StoreError, match="is a symbolic link: bidder does not follow one there; remove it"), \
                store.exclusive_lock("tick"):
            pass
    assert victim.read_text() == "IMPORTANT USER DATA\n"


def test_exclusive_lock_across_processes_and_released_when_the_holder_exits(tmp_path):
    path = tmp_path / "bidder.db"
    Store.open(path).close()
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with Store.open(path) as store, pytest.raises(LockHeld), store.exclusive_lock("tick"):
            pass
    finally:
        holder.communicate("", timeout=30)
    with Store.open(path) as store, store.exclusive_lock("tick"):
        pass


def test_every_table_and_column_is_documented_in_data_readme(store):
    readme = (Path(__file__).resolve().parent.parent / "data" / "README.md").read_text()
    tables = [r[0] for r in store._conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    assert len(tables) == 10
    for table in tables:
        section = readme.split(f"### `{table}`\n", 1)
        assert len(section) == 2, f"data/README.md has no section for table {table}"
        body = section[1].split("\n### ", 1)[0]
        for column in (r[1] for r in store._conn.execute(f"PRAGMA table_info({table})")):
            assert f"| `{column}` |" in body, f"data/README.md does not document {table}.{column}"
