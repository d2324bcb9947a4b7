"""The market-history half of `Store`: collector snapshots, trace imports, and the reads that
statistics, `bidder prices` and `bidder history` need (tables gpu_types, prices, markets,
collections)."""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from bidder.errors import StoreError
from bidder.models import PriceQuote
from bidder.store.base import StoreBase, _flag, _from_row, _iso, _price
from bidder.units import parse_timestamp

__all__ = ["FloorSeries", "GpuTypeInfo", "HistoryStore"]

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


# unixepoch() (SQLite >= 3.38) is faster than strftime('%s') for the epoch seconds of floor_series.
_EPOCH = "unixepoch(ts)" if sqlite3.sqlite_version_info >= (3, 38) else "CAST(strftime('%s', ts) AS INTEGER)"


@functools.lru_cache(maxsize=256)
def _counts_json(counts: tuple[int, ...]) -> str:
    return json.dumps(list(counts))


def _quote_row(ts: str, quote: PriceQuote) -> tuple[Any, ...]:
    counts = _counts_json(tuple(quote.available_gpu_counts)) if quote.available_gpu_counts else None
    return (ts, quote.gpu_type_id, quote.cloud, int(quote.gpu_count), _price(quote.minimum_bid_price),
            _price(quote.uninterruptable_price), quote.stock_status, counts, quote.max_unreserved_gpu_count,
            _price(quote.list_spot_price), _price(quote.list_on_demand_price))



class HistoryStore(StoreBase):
    """Price history: written by the collector and `import-trace`, read by everything else."""

    # -- market history: writing ------------------------------------------------------------------
    def record_collection(self, ts: datetime, quotes: Sequence[PriceQuote], *, duration_s: float,
                          error: str | None = None, gpu_types: Sequence[Any] | None = None) -> int:
        """Store one collector cycle in one transaction; returns the `collections` row id.

        Every quote is stored at `ts` (a cycle's quotes share one timestamp). With `error`, only the
        `collections` row is written (quotes and gpu_types are ignored): never part of a snapshot.
        `gpu_types` (client GpuType objects or GpuTypeInfo) refresh the `gpu_types` table.
        A snapshot at the same `ts` as an earlier one replaces its rows (two collectors at once).
        """
        stamp = _iso(ts) or ""
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
                "INSERT INTO collections (ts, duration_s, quotes, gpu_types, error, clock) VALUES (?, ?, ?, ?, ?, ?)",
                (stamp, float(duration_s), 0 if error is not None else len(quotes),
                 None if error is not None or gpu_types is None else len(gpu_types), error, self.clock))
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
                stamp = _iso(quote.ts) or ""
                row = _quote_row(stamp, quote)
                batch.append(row)
                key = (row[1], row[2], row[3])
                first, last = spans.get(key, (stamp, stamp))
                spans[key] = (min(first, stamp), max(last, stamp))
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
        sql = (f"SELECT {_EPOCH}, coalesce(minimum_bid_price, -1.0), "
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
