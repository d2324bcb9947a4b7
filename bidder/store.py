"""bidder's one SQLite file: price history (what the collector saw) and the ledger (what the
executor did). Nothing else in bidder writes SQL against these tables.

    store = Store.open("data/bidder.db")          # creates parents + schema, upgrades older files
    store.record_collection(ts, quotes, duration_s=0.4)
    series = store.floor_series("NVIDIA RTX A6000", "COMMUNITY", 1)   # numpy arrays for statistics
    action_id = store.begin_action(now, job="train", kind="rent_spot", bid_per_gpu=0.31)
    store.finish_action(action_id, outcome="ok", pod_id="abc123")
    with store.exclusive_lock("tick"): ...        # LockHeld at once if another process holds it

Times are stored as ISO text 'YYYY-MM-DDTHH:MM:SSZ' (`bidder.units.to_iso`), so the file reads well
in `sqlite3` or Datasette and sorts as text; `data/README.md` documents every table and column.
Money is USD per GPU-hour unless a column name says otherwise.

The schema is versioned with `PRAGMA user_version`; `_MIGRATIONS[v]` turns a version v-1 file into
version v. Migrations are frozen SQL text (never generated), so an old file always upgrades the
same way; a file from a newer bidder raises SchemaTooNew.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import logging
import math
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import sqlite_utils

from bidder.errors import LockHeld, SchemaTooNew, StoreError
from bidder.models import PriceQuote
from bidder.units import parse_timestamp, to_iso

__all__ = [
    "ACTION_KINDS",
    "ACTION_OUTCOMES",
    "DEFAULT_DB_PATH",
    "SCHEMA_VERSION",
    "FloorSeries",
    "GpuTypeInfo",
    "Store",
    "epoch_to_datetime",
    "estimate_spend",
]

log = logging.getLogger(__name__)

DEFAULT_DB_PATH = "data/bidder.db"
SCHEMA_VERSION = 2
BUSY_TIMEOUT_S = 30.0

#: Mutations the ledger records (issue 5), and the outcomes an action row can have.
ACTION_KINDS: tuple[str, ...] = ("rent_spot", "bid_resume", "deploy_on_demand", "resume", "stop", "terminate")
ACTION_OUTCOMES: tuple[str, ...] = ("pending", "ok", "error", "dry_run")

# -- schema ------------------------------------------------------------------------------------------
# Version 1: market history. Version 2: the executor's ledger. Never edit a released migration;
# add a new one.
_MIGRATIONS: dict[int, str] = {
    1: """
CREATE TABLE gpu_types (
    id TEXT PRIMARY KEY,
    display_name TEXT,
    manufacturer TEXT,
    memory_in_gb INTEGER,
    secure_cloud INTEGER,
    community_cloud INTEGER,
    max_gpu_count INTEGER,
    secure_price REAL,
    community_price REAL,
    secure_spot_price REAL,
    community_spot_price REAL,
    updated TEXT
);
CREATE TABLE prices (
    ts TEXT NOT NULL,
    gpu_type_id TEXT NOT NULL,
    cloud TEXT NOT NULL,
    gpu_count INTEGER NOT NULL,
    minimum_bid_price REAL,
    uninterruptable_price REAL,
    stock_status TEXT,
    available_gpu_counts TEXT,
    max_unreserved_gpu_count INTEGER,
    list_spot_price REAL,
    list_on_demand_price REAL,
    PRIMARY KEY (ts, gpu_type_id, cloud, gpu_count)
) WITHOUT ROWID;
CREATE INDEX prices_market_ts ON prices (gpu_type_id, cloud, gpu_count, ts);
CREATE TABLE markets (
    gpu_type_id TEXT NOT NULL,
    cloud TEXT NOT NULL,
    gpu_count INTEGER NOT NULL,
    first_ts TEXT NOT NULL,
    last_ts TEXT NOT NULL,
    PRIMARY KEY (gpu_type_id, cloud, gpu_count)
);
CREATE TABLE collections (
    id INTEGER PRIMARY KEY,
    ts TEXT NOT NULL,
    duration_s REAL NOT NULL,
    quotes INTEGER NOT NULL,
    gpu_types INTEGER,
    error TEXT
);
CREATE INDEX collections_ts ON collections (ts);
""",
    2: """
CREATE TABLE actions (
    id INTEGER PRIMARY KEY,
    ts TEXT NOT NULL,
    job TEXT,
    kind TEXT NOT NULL,
    pod_id TEXT,
    gpu_type_id TEXT,
    cloud TEXT,
    gpu_count INTEGER,
    bid_per_gpu REAL,
    expected_cost_per_hour REAL,
    reason TEXT,
    outcome TEXT NOT NULL,
    error TEXT,
    finished_ts TEXT
);
CREATE INDEX actions_job ON actions (job, id);
CREATE TABLE pods (
    pod_id TEXT PRIMARY KEY,
    job TEXT,
    name TEXT,
    gpu_type_id TEXT,
    cloud TEXT,
    gpu_count INTEGER,
    kind TEXT,
    bid_per_gpu REAL,
    created TEXT,
    state TEXT NOT NULL DEFAULT 'active',
    desired_status TEXT,
    last_seen TEXT,
    ended TEXT,
    interruptions INTEGER NOT NULL DEFAULT 0,
    note TEXT
);
CREATE INDEX pods_job ON pods (job);
CREATE TABLE pod_observations (
    pod_id TEXT NOT NULL,
    ts TEXT NOT NULL,
    desired_status TEXT,
    cost_per_hr REAL,
    uptime_seconds REAL,
    PRIMARY KEY (pod_id, ts)
) WITHOUT ROWID;
CREATE TABLE jobs (
    name TEXT PRIMARY KEY,
    state TEXT,
    pod_id TEXT,
    work_done_hours REAL,
    spent REAL,
    interruptions INTEGER,
    started TEXT,
    finished TEXT,
    updated TEXT,
    extra TEXT
);
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT,
    updated TEXT
);
""",
}

# Columns holding timestamps, returned to callers as datetimes.
_TIME_COLUMNS = frozenset({"ts", "finished_ts", "created", "last_seen", "ended", "started", "finished",
                           "updated", "first_ts", "last_ts"})
_JOB_COLUMNS = ("state", "pod_id", "work_done_hours", "spent", "interruptions", "started", "finished", "updated")
_POD_COLUMNS = ("job", "name", "gpu_type_id", "cloud", "gpu_count", "kind", "bid_per_gpu", "created", "state",
                "desired_status", "last_seen", "ended", "interruptions", "note")
_PRICE_COLUMNS = ("ts", "gpu_type_id", "cloud", "gpu_count", "minimum_bid_price", "uninterruptable_price",
                  "stock_status", "available_gpu_counts", "max_unreserved_gpu_count", "list_spot_price",
                  "list_on_demand_price")
_GPU_TYPE_COLUMNS = ("id", "display_name", "manufacturer", "memory_in_gb", "secure_cloud", "community_cloud",
                     "max_gpu_count", "secure_price", "community_price", "secure_spot_price",
                     "community_spot_price")

_INSERT_PRICE = (
    f"INSERT INTO prices ({', '.join(_PRICE_COLUMNS)}) VALUES ({', '.join('?' * len(_PRICE_COLUMNS))}) "
    "ON CONFLICT (ts, gpu_type_id, cloud, gpu_count) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _PRICE_COLUMNS[4:])
    # Only count a row as changed when a value differs: re-importing a trace changes nothing.
    + " WHERE " + " OR ".join(f"{c} IS NOT excluded.{c}" for c in _PRICE_COLUMNS[4:])
)
_UPSERT_MARKET = (
    "INSERT INTO markets (gpu_type_id, cloud, gpu_count, first_ts, last_ts) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (gpu_type_id, cloud, gpu_count) DO UPDATE SET "
    "first_ts = min(first_ts, excluded.first_ts), last_ts = max(last_ts, excluded.last_ts)"
)


@dataclass(frozen=True, eq=False)
class FloorSeries:
    """One market's history as arrays, the fast path for statistics.

    `ts`: float64 epoch seconds, ascending; `floor`: spot floor, USD per GPU-hour (NaN = no spot);
    `on_demand`: USD per GPU-hour (NaN = none).
    """

    ts: np.ndarray
    floor: np.ndarray
    on_demand: np.ndarray
    gpu_type_id: str = ""
    cloud: str = ""
    gpu_count: int = 1

    def __len__(self) -> int:
        return int(self.ts.shape[0])


@dataclass(frozen=True)
class GpuTypeInfo:
    """A row of `gpu_types`: the catalogue as RunPod lists it. List prices are USD per GPU-hour."""

    id: str
    display_name: str | None = None
    manufacturer: str | None = None
    memory_in_gb: int | None = None
    secure_cloud: bool | None = None
    community_cloud: bool | None = None
    max_gpu_count: int | None = None
    secure_price: float | None = None
    community_price: float | None = None
    secure_spot_price: float | None = None
    community_spot_price: float | None = None
    updated: datetime | None = field(default=None, compare=False)


def _iso(value: datetime | str | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return to_iso(parse_timestamp(value))
    if value.tzinfo is None:
        raise StoreError(f"naive datetime {value!r}: bidder stores only timezone-aware UTC times")
    return to_iso(value)


def _price(value: float | None) -> float | None:
    """NULL for missing, NaN or 0 (RunPod's 0 floor means no capacity, never a price of 0)."""
    if value is None:
        return None
    number = float(value)
    if math.isnan(number) or number <= 0:
        return None
    return number


def _flag(value: Any) -> int | None:
    return None if value is None else int(bool(value))


def _db_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso(value)
    return value


def _from_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A ledger row as a dict, with time columns as aware datetimes."""
    out = dict(row)
    for key, value in out.items():
        if key in _TIME_COLUMNS and isinstance(value, str):
            out[key] = parse_timestamp(value)
    return out


def _quote_row(ts: str, quote: PriceQuote) -> tuple[Any, ...]:
    counts = json.dumps(list(quote.available_gpu_counts)) if quote.available_gpu_counts else None
    return (ts, quote.gpu_type_id, quote.cloud, int(quote.gpu_count), _price(quote.minimum_bid_price),
            _price(quote.uninterruptable_price), quote.stock_status, counts, quote.max_unreserved_gpu_count,
            _price(quote.list_spot_price), _price(quote.list_on_demand_price))


class Store:
    """bidder's SQLite file: price history and the ledger. One Store per thread (one connection).

    Use `Store.open(path)`; close with `close()` or a `with` block.
    """

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn
        self.db = sqlite_utils.Database(conn, execute_plugins=False)

    # -- opening, schema, transactions ------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path = DEFAULT_DB_PATH, *, create: bool = True,
             busy_timeout_s: float = BUSY_TIMEOUT_S) -> Store:
        """Open (and create, unless `create=False`) the database, upgrading an older schema.

        WAL journal (readers never block the writer) and a busy timeout (a second process waits
        for a write lock instead of failing). Raises SchemaTooNew for a file from a newer bidder,
        StoreError when the file is missing (create=False), not SQLite, or not writable.
        """
        file = Path(path)
        if not file.exists():
            if not create:
                raise StoreError(f"no bidder database at {file}: collect prices first with `bidder collect` "
                                 f"(or point --db / BIDDER_DB at an existing file)")
            try:
                file.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the folder for {file}: {exc.strerror or exc}") from None
        try:
            # isolation_level=None: bidder opens every transaction itself (BEGIN IMMEDIATE for writes).
            conn = sqlite3.connect(str(file), timeout=busy_timeout_s, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {file}: {exc}") from None
        conn.row_factory = sqlite3.Row
        store = cls(file, conn)
        try:
            store._setup(busy_timeout_s)
        except BaseException:
            conn.close()
            raise
        return store

    def _setup(self, busy_timeout_s: float) -> None:
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                log.warning("%s: journal mode %s, not WAL (readers may block the writer)", self.path, mode)
            # WAL + NORMAL: a commit survives a process crash; only a power cut may lose the last one.
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute("PRAGMA foreign_keys = ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot use {self.path} as a bidder database: {exc}") from None

    def _migrate(self) -> None:
        version = self.schema_version()
        if version == SCHEMA_VERSION:
            return
        self._check_version(version)
        with self._write():
            version = self.schema_version()  # re-read under the write lock: another process may have won
            self._check_version(version)
            if version == 0 and self._conn.execute(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]:
                raise StoreError(f"{self.path} is an SQLite file but not a bidder database (it has tables "
                                 f"and no bidder schema version); point --db / BIDDER_DB at another file")
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[target].split(";"):
                    if statement.strip():
                        self._conn.execute(statement)
                self._conn.execute(f"PRAGMA user_version = {target}")
                log.info("%s: schema upgraded to version %d", self.path, target)

    def _check_version(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"{self.path} was written by a newer bidder (schema version {version}; this bidder reads "
                f"versions up to {SCHEMA_VERSION}): upgrade bidder, or point --db / BIDDER_DB at another file",
                found=version, supported=SCHEMA_VERSION)

    def schema_version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction. BEGIN IMMEDIATE takes the write lock up front (waiting up to the
        busy timeout), so a read-then-write never fails on a snapshot upgrade under concurrency."""
        if self._conn.in_transaction:
            yield self._conn  # nested: part of the enclosing transaction
            return
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreError(f"cannot write to {self.path}: {exc}") from None
        try:
            yield self._conn
        except sqlite3.Error as exc:
            self._rollback()
            raise StoreError(f"cannot write to {self.path}: {exc}") from None
        except BaseException:
            self._rollback()
            raise
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
            raise StoreError(f"cannot write to {self.path}: {exc}") from None

    def _rollback(self) -> None:
        if self._conn.in_transaction:  # an error may already have ended it
            self._conn.execute("ROLLBACK")

    def _rows(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[sqlite3.Row]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read {self.path}: {exc}") from None

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    # -- market history: writing ------------------------------------------------------------------
    def record_collection(self, ts: datetime, quotes: Sequence[PriceQuote], *, duration_s: float,
                          error: str | None = None, gpu_types: Sequence[Any] | None = None) -> int:
        """Store one collector cycle in one transaction; returns the `collections` row id.

        Every quote is stored at `ts` (a cycle's quotes share one timestamp). With `error`, only the
        `collections` row is written (quotes and gpu_types are ignored): never part of a snapshot.
        `gpu_types` (client GpuType objects or GpuTypeInfo) refresh the `gpu_types` table.
        A snapshot at the same `ts` as an earlier one replaces its rows (two collectors at once).
        """
        stamp = to_iso(ts)
        with self._write() as conn:
            if error is None:
                rows = [_quote_row(stamp, q) for q in quotes]
                try:
                    conn.executemany(_INSERT_PRICE, rows)
                except sqlite3.IntegrityError as exc:
                    raise StoreError(f"a quote could not be stored: {exc}") from None
                conn.executemany(_UPSERT_MARKET, {(r[1], r[2], r[3], stamp, stamp) for r in rows})
                self._note_types(conn, quotes)
                if gpu_types is not None:
                    self._upsert_gpu_types(conn, gpu_types, stamp)
            cursor = conn.execute(
                "INSERT INTO collections (ts, duration_s, quotes, gpu_types, error) VALUES (?, ?, ?, ?, ?)",
                (stamp, float(duration_s), 0 if error is not None else len(quotes),
                 None if error is not None or gpu_types is None else len(gpu_types), error))
            return int(cursor.lastrowid or 0)

    def import_quotes(self, quotes: Iterable[PriceQuote]) -> tuple[int, int]:
        """Bulk-write quotes, each at its own `ts` (trace import), in one transaction.

        Returns (rows read, rows new or changed): importing the same rows again changes nothing.
        """
        total = changed = 0
        spans: dict[tuple[str, str, int], tuple[str, str]] = {}
        with self._write() as conn:
            before = conn.total_changes
            batch: list[tuple[Any, ...]] = []
            for quote in quotes:
                stamp = _iso(quote.ts)
                row = _quote_row(stamp, quote)  # type: ignore[arg-type]
                batch.append(row)
                key = (row[1], row[2], row[3])
                first, last = spans.get(key, (stamp, stamp))
                spans[key] = (min(first, stamp), max(last, stamp))  # type: ignore[type-var]
                if len(batch) >= 10_000:
                    conn.executemany(_INSERT_PRICE, batch)
                    total += len(batch)
                    batch.clear()
            conn.executemany(_INSERT_PRICE, batch)
            total += len(batch)
            changed = conn.total_changes - before
            conn.executemany(_UPSERT_MARKET, [(*key, first, last) for key, (first, last) in spans.items()])
        return total, changed

    def _note_types(self, conn: sqlite3.Connection, quotes: Sequence[PriceQuote]) -> None:
        """Fill name and VRAM of types seen in quotes but never catalogued (no full refresh yet)."""
        seen = {(q.gpu_type_id, q.display_name, q.memory_in_gb) for q in quotes
                if q.display_name is not None or q.memory_in_gb is not None}
        conn.executemany(
            "INSERT INTO gpu_types (id, display_name, memory_in_gb) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE "
            "SET display_name = coalesce(display_name, excluded.display_name), "
            "memory_in_gb = coalesce(memory_in_gb, excluded.memory_in_gb)", sorted(seen, key=str))

    def _upsert_gpu_types(self, conn: sqlite3.Connection, gpu_types: Sequence[Any], stamp: str) -> None:
        rows = []
        for item in gpu_types:
            get = item.get if isinstance(item, Mapping) else (lambda name, _i=item: getattr(_i, name, None))
            rows.append((get("id"), get("display_name"), get("manufacturer"), get("memory_in_gb"),
                         _flag(get("secure_cloud")), _flag(get("community_cloud")), get("max_gpu_count"),
                         _price(get("secure_price")), _price(get("community_price")),
                         _price(get("secure_spot_price")), _price(get("community_spot_price")), stamp))
        columns = (*_GPU_TYPE_COLUMNS, "updated")
        conn.executemany(
            f"INSERT INTO gpu_types ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
            "ON CONFLICT (id) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in columns[1:]), rows)

    # -- market history: reading ------------------------------------------------------------------
    def last_collection_ts(self, successful: bool = True) -> datetime | None:
        """Time of the newest collector cycle (only those without error, by default)."""
        where = "WHERE error IS NULL" if successful else ""
        row = self._rows(f"SELECT max(ts) FROM collections {where}")[0]
        return parse_timestamp(row[0]) if row[0] else None

    def collections(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest collector cycles, newest first (ts, duration_s, quotes, gpu_types, error)."""
        rows = self._rows("SELECT * FROM collections ORDER BY ts DESC, id DESC LIMIT ?", (limit,))
        return [_from_row(r) for r in rows]

    def gpu_types_updated(self) -> datetime | None:
        """When the catalogue was last refreshed from `gpuTypes` (None: never)."""
        row = self._rows("SELECT max(updated) FROM gpu_types")[0]
        return parse_timestamp(row[0]) if row[0] else None

    def latest_quotes(self) -> list[PriceQuote]:
        """The newest snapshot: every row at the newest `ts` in `prices` (failed cycles write no rows)."""
        row = self._rows("SELECT max(ts) FROM prices")[0]
        if row[0] is None:
            return []
        return list(self._iter_prices("p.ts = ?", [row[0]], "p.gpu_type_id, p.cloud, p.gpu_count"))

    def price_history(self, gpu_type_id: str | None = None, cloud: str | None = None,
                      gpu_count: int | None = None, since: datetime | None = None,
                      until: datetime | None = None) -> list[PriceQuote]:
        """Stored quotes matching the filters (since inclusive, until exclusive), ordered by time."""
        return list(self.iter_prices(gpu_type_id, cloud, gpu_count, since, until))

    def iter_prices(self, gpu_type_id: str | Sequence[str] | None = None, cloud: str | None = None,
                    gpu_count: int | None = None, since: datetime | None = None,
                    until: datetime | None = None) -> Iterator[PriceQuote]:
        """Like price_history, streamed (for exports); `gpu_type_id` may be a list of ids."""
        clauses: list[str] = []
        params: list[Any] = []
        if gpu_type_id is not None:
            ids = [gpu_type_id] if isinstance(gpu_type_id, str) else list(gpu_type_id)
            clauses.append(f"p.gpu_type_id IN ({', '.join('?' * len(ids))})")
            params.extend(ids)
        for column, value in (("p.cloud", cloud), ("p.gpu_count", gpu_count)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            clauses.append("p.ts >= ?")
            params.append(_iso(since))
        if until is not None:
            clauses.append("p.ts < ?")
            params.append(_iso(until))
        return self._iter_prices(" AND ".join(clauses) or "1", params, "p.ts, p.gpu_type_id, p.cloud, p.gpu_count")

    def _iter_prices(self, where: str, params: Sequence[Any], order: str) -> Iterator[PriceQuote]:
        sql = (f"SELECT p.*, g.display_name, g.memory_in_gb FROM prices p "
               f"LEFT JOIN gpu_types g ON g.id = p.gpu_type_id WHERE {where} ORDER BY {order}")
        try:
            cursor = self._conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read {self.path}: {exc}") from None
        for r in cursor:
            yield PriceQuote(
                ts=parse_timestamp(r["ts"]), gpu_type_id=r["gpu_type_id"], cloud=r["cloud"],
                gpu_count=r["gpu_count"], minimum_bid_price=r["minimum_bid_price"],
                uninterruptable_price=r["uninterruptable_price"], stock_status=r["stock_status"],
                available_gpu_counts=tuple(json.loads(r["available_gpu_counts"])) if r["available_gpu_counts"]
                else (),
                max_unreserved_gpu_count=r["max_unreserved_gpu_count"], memory_in_gb=r["memory_in_gb"],
                display_name=r["display_name"], list_spot_price=r["list_spot_price"],
                list_on_demand_price=r["list_on_demand_price"])

    def floor_series(self, gpu_type_id: str, cloud: str, gpu_count: int = 1, since: datetime | None = None,
                     until: datetime | None = None) -> FloorSeries:
        """One market's floor and on-demand price as numpy arrays (since inclusive, until exclusive).

        Read straight from the cursor into a structured array; NULL prices become NaN.
        """
        sql = ("SELECT CAST(strftime('%s', ts) AS REAL), coalesce(minimum_bid_price, -1.0), "
               "coalesce(uninterruptable_price, -1.0) FROM prices "
               "WHERE gpu_type_id = ? AND cloud = ? AND gpu_count = ? AND ts >= ? AND ts < ? ORDER BY ts")
        params = (gpu_type_id, cloud, int(gpu_count), _iso(since) if since else "",
                  _iso(until) if until else "~")  # "~" sorts after every ISO time
        cursor = self._conn.cursor()
        cursor.row_factory = None  # plain tuples: numpy reads them without a Python-level loop of ours
        try:
            data = np.fromiter(cursor.execute(sql, params), dtype=[("t", "f8"), ("f", "f8"), ("o", "f8")])
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read {self.path}: {exc}") from None
        floor = data["f"].copy()
        on_demand = data["o"].copy()
        floor[floor < 0] = np.nan
        on_demand[on_demand < 0] = np.nan
        return FloorSeries(ts=data["t"].copy(), floor=floor, on_demand=on_demand,
                           gpu_type_id=gpu_type_id, cloud=cloud, gpu_count=int(gpu_count))

    def markets(self) -> list[tuple[str, str, int]]:
        """(gpu_type_id, cloud, gpu_count) of every market with stored history."""
        rows = self._rows("SELECT gpu_type_id, cloud, gpu_count FROM markets ORDER BY 1, 2, 3")
        return [(r[0], r[1], int(r[2])) for r in rows]

    def market_spans(self) -> list[dict[str, Any]]:
        """Every market with the first and last time it was seen (first_ts, last_ts as datetimes)."""
        return [_from_row(r) for r in self._rows("SELECT * FROM markets ORDER BY 1, 2, 3")]

    def gpu_type_infos(self) -> list[GpuTypeInfo]:
        """The `gpu_types` table (the catalogue), ordered by id."""
        out = []
        for r in self._rows("SELECT * FROM gpu_types ORDER BY id"):
            values = dict(r)
            for flag in ("secure_cloud", "community_cloud"):
                if values[flag] is not None:
                    values[flag] = bool(values[flag])
            values["updated"] = parse_timestamp(values["updated"]) if values["updated"] else None
            out.append(GpuTypeInfo(**values))
        return out

    def gpu_type_names(self) -> dict[str, str | None]:
        """Every GPU type id known (catalogue or history) -> its display name (None if unknown)."""
        rows = self._rows("SELECT id, display_name FROM gpu_types UNION "
                          "SELECT DISTINCT gpu_type_id, NULL FROM markets WHERE gpu_type_id NOT IN "
                          "(SELECT id FROM gpu_types)")
        return {r[0]: r[1] for r in rows}

    # -- ledger: actions ----------------------------------------------------------------------------
    def begin_action(self, ts: datetime, *, job: str | None, kind: str, pod_id: str | None = None,
                     gpu_type_id: str | None = None, cloud: str | None = None, gpu_count: int | None = None,
                     bid_per_gpu: float | None = None, expected_cost_per_hour: float | None = None,
                     reason: str | None = None, dry_run: bool = False) -> int:
        """Write the intent row BEFORE sending a mutation; returns its id.

        Outcome "pending" (completed by finish_action after the call, so a crash in between stays
        visible) or "dry_run" (complete as written: nothing is sent). `bid_per_gpu` is per GPU.
        """
        if kind not in ACTION_KINDS:
            raise StoreError(f"unknown action kind {kind!r}; use one of {', '.join(ACTION_KINDS)}")
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT INTO actions (ts, job, kind, pod_id, gpu_type_id, cloud, gpu_count, bid_per_gpu, "
                "expected_cost_per_hour, reason, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (_iso(ts), job, kind, pod_id, gpu_type_id, cloud, gpu_count, bid_per_gpu, expected_cost_per_hour,
                 reason, "dry_run" if dry_run else "pending"))
            return int(cursor.lastrowid or 0)

    def finish_action(self, action_id: int, *, outcome: str, pod_id: str | None = None,
                      error: str | None = None, ts: datetime | None = None) -> None:
        """Complete a pending action: outcome "ok" or "error" (with the error text); `pod_id` fills in
        the id a create returned. `ts` is when the call returned (optional)."""
        if outcome not in ("ok", "error"):
            raise StoreError(f"finish_action outcome must be 'ok' or 'error', got {outcome!r}")
        with self._write() as conn:
            row = conn.execute("SELECT outcome FROM actions WHERE id = ?", (action_id,)).fetchone()
            if row is None:
                raise StoreError(f"no action with id {action_id} in {self.path}")
            if row["outcome"] != "pending":
                raise StoreError(f"action {action_id} is already complete (outcome {row['outcome']!r})")
            conn.execute(
                "UPDATE actions SET outcome = ?, pod_id = coalesce(?, pod_id), error = ?, finished_ts = ? "
                "WHERE id = ?", (outcome, pod_id, error, _iso(ts), action_id))

    def actions(self, job: str | None = None, *, outcome: str | None = None,
                pod_id: str | None = None) -> list[dict[str, Any]]:
        """Ledger rows, oldest first, optionally for one job / outcome / pod (times as datetimes)."""
        clauses, params = [], []
        for column, value in (("job", job), ("outcome", outcome), ("pod_id", pod_id)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = " AND ".join(clauses) or "1"
        return [_from_row(r) for r in self._rows(f"SELECT * FROM actions WHERE {where} ORDER BY id", params)]

    # -- ledger: pods and observations --------------------------------------------------------------
    def add_pod(self, pod_id: str, *, job: str | None, name: str | None, gpu_type_id: str | None,
                cloud: str | None, gpu_count: int | None, kind: str, bid_per_gpu: float | None,
                created: datetime) -> None:
        """Start managing a pod (kind "spot" or "on_demand"). Adding a known id updates its fields."""
        if kind not in ("spot", "on_demand"):
            raise StoreError(f"pod kind must be 'spot' or 'on_demand', got {kind!r}")
        values = (pod_id, job, name, gpu_type_id, cloud, gpu_count, kind, bid_per_gpu, _iso(created))
        with self._write() as conn:
            conn.execute(
                "INSERT INTO pods (pod_id, job, name, gpu_type_id, cloud, gpu_count, kind, bid_per_gpu, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (pod_id) DO UPDATE SET job = excluded.job, "
                "name = excluded.name, gpu_type_id = excluded.gpu_type_id, cloud = excluded.cloud, "
                "gpu_count = excluded.gpu_count, kind = excluded.kind, bid_per_gpu = excluded.bid_per_gpu, "
                "created = excluded.created", values)

    def managed_pods(self, job: str | None = None, *, states: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Pods bidder manages, oldest first; optionally one job's, or only those in `states`."""
        clauses, params = [], []
        if job is not None:
            clauses.append("job = ?")
            params.append(job)
        if states is not None:
            wanted = list(states)
            clauses.append(f"state IN ({', '.join('?' * len(wanted))})")
            params.extend(wanted)
        where = " AND ".join(clauses) or "1"
        sql = f"SELECT * FROM pods WHERE {where} ORDER BY created, pod_id"
        return [_from_row(r) for r in self._rows(sql, params)]

    def pod(self, pod_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM pods WHERE pod_id = ?", (pod_id,))
        return _from_row(rows[0]) if rows else None

    def set_pod_state(self, pod_id: str, **fields: Any) -> None:
        """Update columns of a managed pod, e.g. set_pod_state(id, state="ended", ended=now)."""
        unknown = sorted(set(fields) - set(_POD_COLUMNS))
        if unknown:
            raise StoreError(f"pods has no column(s) {', '.join(unknown)}; columns: {', '.join(_POD_COLUMNS)}")
        if not fields:
            return
        names = sorted(fields)
        with self._write() as conn:
            cursor = conn.execute(f"UPDATE pods SET {', '.join(f'{n} = ?' for n in names)} WHERE pod_id = ?",
                                  [_db_value(fields[n]) for n in names] + [pod_id])
            if cursor.rowcount == 0:
                raise StoreError(f"pod {pod_id!r} is not managed by bidder (not in the pods table)")

    def record_observation(self, ts: datetime, pod_id: str, *, desired_status: str | None,
                           cost_per_hr: float | None, uptime_seconds: float | None) -> None:
        """One poll of a pod. `cost_per_hr` is per pod (USD/hour). A second poll at the same ts replaces it."""
        with self._write() as conn:
            conn.execute("INSERT OR REPLACE INTO pod_observations (pod_id, ts, desired_status, cost_per_hr, "
                         "uptime_seconds) VALUES (?, ?, ?, ?, ?)",
                         (pod_id, _iso(ts), desired_status, cost_per_hr, uptime_seconds))

    def observations(self, pod_id: str) -> list[dict[str, Any]]:
        rows = self._rows("SELECT * FROM pod_observations WHERE pod_id = ? ORDER BY ts", (pod_id,))
        return [_from_row(r) for r in rows]

    def last_observation(self, pod_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM pod_observations WHERE pod_id = ? ORDER BY ts DESC LIMIT 1", (pod_id,))
        return _from_row(rows[0]) if rows else None

    def spend_by_pod(self, job: str | None = None) -> dict[str, float]:
        """USD spent per managed pod, estimated from its observations (see `estimate_spend`)."""
        return {p["pod_id"]: estimate_spend(self.observations(p["pod_id"])) for p in self.managed_pods(job)}

    # -- ledger: jobs and settings ------------------------------------------------------------------
    def job_state(self, name: str) -> dict[str, Any] | None:
        """A job's saved state: its columns plus the extra fields saved with it (None if never saved)."""
        rows = self._rows("SELECT * FROM jobs WHERE name = ?", (name,))
        return self._job_dict(rows[0]) if rows else None

    def jobs(self) -> list[dict[str, Any]]:
        return [self._job_dict(r) for r in self._rows("SELECT * FROM jobs ORDER BY name")]

    @staticmethod
    def _job_dict(row: sqlite3.Row) -> dict[str, Any]:
        out = _from_row(row)
        extra = out.pop("extra")
        if extra:
            out.update({k: v for k, v in json.loads(extra).items() if k not in out})
        return out

    def save_job_state(self, name: str, **fields: Any) -> None:
        """Merge fields into a job's state. Known columns (state, pod_id, work_done_hours, spent,
        interruptions, started, finished, updated) are columns; any other key is kept as JSON in
        `extra` (datetimes as ISO text). A value of None clears a field."""
        with self._write() as conn:
            row = conn.execute("SELECT extra FROM jobs WHERE name = ?", (name,)).fetchone()
            extra = json.loads(row["extra"]) if row is not None and row["extra"] else {}
            columns = {k: _db_value(v) for k, v in fields.items() if k in _JOB_COLUMNS}
            for key, value in fields.items():
                if key not in _JOB_COLUMNS:
                    if key == "name":
                        raise StoreError("save_job_state: the job name is the first argument, not a field")
                    extra[key] = _db_value(value)
            extra = {k: v for k, v in extra.items() if v is not None}
            columns["extra"] = json.dumps(extra, sort_keys=True) if extra else None
            if row is None:
                names = ["name", *columns]
                conn.execute(f"INSERT INTO jobs ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                             [name, *columns.values()])
            else:
                conn.execute(f"UPDATE jobs SET {', '.join(f'{k} = ?' for k in columns)} WHERE name = ?",
                             [*columns.values(), name])

    def settings_get(self, key: str, default: str | None = None) -> str | None:
        rows = self._rows("SELECT value FROM settings WHERE key = ?", (key,))
        return rows[0][0] if rows and rows[0][0] is not None else default

    def settings_set(self, key: str, value: str | None, *, ts: datetime | None = None) -> None:
        """Set (or, with None, delete) a small piece of state, e.g. "spot_unsupported_since"."""
        with self._write() as conn:
            if value is None:
                conn.execute("DELETE FROM settings WHERE key = ?", (key,))
            else:
                conn.execute("INSERT OR REPLACE INTO settings (key, value, updated) VALUES (?, ?, ?)",
                             (key, str(value), _iso(ts)))

    # -- the exclusive lock ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def exclusive_lock(self, name: str = "tick") -> Iterator[None]:
        """Hold an OS lock (fcntl.flock on `<db>.<name>.lock`) for the block; LockHeld at once if
        another holder has it. Not a database lock, so the holder's own writes never wait on it,
        and the OS drops it when a crashed process exits."""
        lock_path = self.path.with_name(f"{self.path.name}.{name}.lock")
        try:
            handle = open(lock_path, "a+")  # noqa: SIM115 (closed in finally)
        except OSError as exc:
            raise StoreError(f"cannot create lock file {lock_path}: {exc.strerror or exc}") from None
        try:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise LockHeld(f"another bidder ({holder}) holds the {name!r} lock on {self.path}; "
                               f"it releases it when it finishes") from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}")
            handle.flush()
            try:
                yield
            finally:
                handle.seek(0)
                handle.truncate()
                handle.flush()
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        finally:
            handle.close()


def estimate_spend(observations: Sequence[Mapping[str, Any]]) -> float:
    """USD a pod cost, from its polls (ts, desired_status, cost_per_hr per pod, uptime_seconds).

    Between two polls a and b, if a was RUNNING: when b is RUNNING with a larger uptime, the pod
    ran for the uptime difference; when b's uptime is smaller, it restarted in between (the uptime
    since the restart, plus half of the rest before the stop); when b is not RUNNING, it stopped
    at an unknown moment in between (half the interval: unbiased for a uniform stop time). If a
    was not RUNNING and b is, it ran for b's uptime (at most the interval). The first poll adds
    the uptime before it. Each stretch is priced at the cost of the poll that saw it running.
    """
    if not observations:
        return 0.0
    total = 0.0
    first = observations[0]
    if first.get("desired_status") == "RUNNING" and first.get("uptime_seconds"):
        total += float(first["cost_per_hr"] or 0) * float(first["uptime_seconds"]) / 3600
    for a, b in itertools.pairwise(observations):
        dt = (b["ts"] - a["ts"]).total_seconds() if isinstance(a["ts"], datetime) else float(b["ts"] - a["ts"])
        a_run, b_run = a.get("desired_status") == "RUNNING", b.get("desired_status") == "RUNNING"
        a_up, b_up = a.get("uptime_seconds"), b.get("uptime_seconds")
        a_cost, b_cost = float(a.get("cost_per_hr") or 0), float(b.get("cost_per_hr") or 0)
        if a_run and b_run and a_up is not None and b_up is not None and b_up >= a_up:
            total += a_cost * min(b_up - a_up, dt) / 3600
        elif b_run and b_up is not None:
            after = min(float(b_up), dt)
            total += b_cost * after / 3600
            if a_run:
                total += a_cost * (dt - after) / 2 / 3600
        elif a_run:
            total += a_cost * dt / 2 / 3600
    return total


def epoch_to_datetime(seconds: float) -> datetime:
    """Epoch seconds (as in FloorSeries.ts) back to an aware UTC datetime."""
    return datetime.fromtimestamp(seconds, tz=UTC)
