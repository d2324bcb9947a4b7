"""The market-history half of `Store`: collector snapshots, trace imports, and the reads that
statistics, `bidder prices` and `bidder history` need (tables gpu_types, prices, markets,
collections, offers). Every price key carries its market (`runpod` or `vast`); RunPod's market keys
keep their three-part shape (`bidder.models.market_key`)."""

from __future__ import annotations

import contextlib
import functools
import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from bidder.errors import StoreError
from bidder.models import DEFAULT_MARKET, SILENCE_MIN_HOURS, MarketKey, PriceQuote, market_key
from bidder.store.base import StoreBase, _flag, _from_row, _iso, _price
from bidder.units import parse_timestamp

__all__ = ["FloorSeries", "GpuTypeInfo", "HistoryStore"]

_PRICE_KEY = ("ts", "market", "gpu_type_id", "cloud", "gpu_count")
_PRICE_COLUMNS = (*_PRICE_KEY, "minimum_bid_price", "uninterruptable_price", "stock_status",
                  "available_gpu_counts", "max_unreserved_gpu_count", "list_spot_price", "list_on_demand_price",
                  "offer_count")
_PRICE_VALUES = _PRICE_COLUMNS[len(_PRICE_KEY):]
_OFFER_COLUMNS = ("ts", "offer_id", "machine_id", "host_id", "gpu_name", "num_gpus", "gpu_ram_mb", "min_bid",
                  "dph_total", "reliability", "verified", "storage_cost", "geolocation")
_GPU_TYPE_COLUMNS = ("id", "display_name", "manufacturer", "memory_in_gb", "secure_cloud", "community_cloud",
                     "max_gpu_count", "secure_price", "community_price", "secure_spot_price",
                     "community_spot_price")

_INSERT_PRICE = (
    f"INSERT INTO prices ({', '.join(_PRICE_COLUMNS)}) VALUES ({', '.join('?' * len(_PRICE_COLUMNS))}) "
    f"ON CONFLICT ({', '.join(_PRICE_KEY)}) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _PRICE_VALUES)
    # Only count a row as changed when a value differs: re-importing a trace changes nothing.
    + " WHERE " + " OR ".join(f"{c} IS NOT excluded.{c}" for c in _PRICE_VALUES)
)
#: Columns a trace CSV carries (besides the key): an import sets them. The others (available GPU
#: counts, list prices...) are not in a trace: an import keeps what a collection stored there.
_TRACE_VALUES = ("minimum_bid_price", "uninterruptable_price")
#: How an imported row meets one already stored, after `INSERT INTO prices (columns) <rows>`.
_IMPORT_CONFLICT = (
    f"ON CONFLICT ({', '.join(_PRICE_KEY)}) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" if c in _TRACE_VALUES else f"{c} = coalesce(excluded.{c}, {c})"
                for c in _PRICE_VALUES)
    + " WHERE " + " OR ".join(f"{c} IS NOT excluded.{c}" if c in _TRACE_VALUES
                              else f"(excluded.{c} IS NOT NULL AND {c} IS NOT excluded.{c})"
                              for c in _PRICE_VALUES)
)
#: An import is read into this table of the connection's temporary database first: writing it takes
#: no lock on the price history, so a collect or tick runs on while a long trace is read.
_STAGED = "temp.staged_prices"
_STAGE_PRICE = f"INSERT INTO {_STAGED} VALUES ({', '.join('?' * len(_PRICE_COLUMNS))})"
# (`WHERE true`: SQLite's parser needs it between an INSERT's SELECT and its ON CONFLICT)
_IMPORT_PRICES = (f"INSERT INTO prices ({', '.join(_PRICE_COLUMNS)}) SELECT {', '.join(_PRICE_COLUMNS)} "
                  f"FROM {_STAGED} WHERE true {_IMPORT_CONFLICT}")
_UPSERT_MARKET = (
    "INSERT INTO markets (market, gpu_type_id, cloud, gpu_count, first_ts, last_ts) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (market, gpu_type_id, cloud, gpu_count) DO UPDATE SET "
    "first_ts = min(first_ts, excluded.first_ts), last_ts = max(last_ts, excluded.last_ts)"
)
_INSERT_OFFER = (
    f"INSERT OR REPLACE INTO offers ({', '.join(_OFFER_COLUMNS)}) VALUES ({', '.join('?' * len(_OFFER_COLUMNS))})"
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
    market: str = DEFAULT_MARKET

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
    return (ts, quote.market, quote.gpu_type_id, quote.cloud, int(quote.gpu_count),
            _price(quote.minimum_bid_price), _price(quote.uninterruptable_price), quote.stock_status, counts,
            quote.max_unreserved_gpu_count, _price(quote.list_spot_price), _price(quote.list_on_demand_price),
            quote.offer_count)


def _offer_row(ts: str, offer: Any) -> tuple[Any, ...]:
    """A `bidder.vast.Offer` as an `offers` row: prices per instance, as Vast states them."""
    return (ts, int(offer.id), int(offer.machine_id), offer.host_id, offer.gpu_name, int(offer.num_gpus),
            offer.gpu_ram_mb, offer.min_bid, offer.dph_total, offer.reliability, _flag(offer.verified),
            offer.storage_cost, offer.geolocation)



class HistoryStore(StoreBase):
    """Price history: written by the collector and `import-trace`, read by everything else."""

    # -- market history: writing ------------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction around several writes (a cycle over several markets): all or nothing."""
        with self._write():
            yield

    def record_collection(self, ts: datetime, quotes: Sequence[PriceQuote], *, duration_s: float,
                          error: str | None = None, gpu_types: Sequence[Any] | None = None,
                          market: str = DEFAULT_MARKET, offers: Sequence[Any] | None = None,
                          offers_since: datetime | None = None) -> int:
        """Store one market's collector cycle in one transaction; returns the `collections` row id.

        Every quote is stored at `ts` (a cycle's quotes share one timestamp). With `error`, only the
        `collections` row is written (quotes, offers and gpu_types are ignored): never part of a
        snapshot. `gpu_types` (client GpuType objects or GpuTypeInfo) refresh the `gpu_types` table;
        `offers` (`bidder.vast.Offer`) go to the `offers` table, and with `offers_since` the offers
        stored before it are deleted (every offer of every cycle: about 120 MB a day at a 5-minute
        cycle, of which decisions read the last week). `market` names the collections row.
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
                conn.executemany(_UPSERT_MARKET, {(r[1], r[2], r[3], r[4], stamp, stamp) for r in rows})
                self._note_types(conn, quotes)
                if gpu_types is not None:
                    self._upsert_gpu_types(conn, gpu_types, stamp)
                if offers:
                    conn.executemany(_INSERT_OFFER, [_offer_row(stamp, o) for o in offers])
                    if offers_since is not None:  # (the primary key leads with ts: a range, not a scan)
                        conn.execute("DELETE FROM offers WHERE ts < ?", (_iso(offers_since),))
            cursor = conn.execute(
                "INSERT INTO collections (ts, duration_s, quotes, gpu_types, error, market, clock) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (stamp, float(duration_s), 0 if error is not None else len(quotes),
                 None if error is not None or gpu_types is None else len(gpu_types), error, market, self.clock))
            return int(cursor.lastrowid or 0)

    def prune_prices(self, market: str, before: datetime) -> int:
        """Delete `market`'s price rows and collector cycles stamped before `before` (the collector's
        `prices_days`); a series with no row left leaves `markets`, the others' first_ts moves up.
        Returns the price rows deleted. (The primary key leads with ts: a range, not a scan.)"""
        stamp = _iso(before)
        with self._write() as conn:
            gone = conn.execute("DELETE FROM prices WHERE ts < ? AND market = ?", (stamp, market)).rowcount
            conn.execute("DELETE FROM collections WHERE ts < ? AND market = ?", (stamp, market))
            conn.execute("DELETE FROM markets WHERE market = ? AND last_ts < ?", (market, stamp))
            conn.execute(
                "UPDATE markets SET first_ts = (SELECT min(p.ts) FROM prices p WHERE p.market = markets.market AND "
                "p.gpu_type_id = markets.gpu_type_id AND p.cloud = markets.cloud AND p.gpu_count = markets.gpu_count) "
                "WHERE market = ? AND first_ts < ?", (market, stamp))
        return int(gone)

    def import_quotes(self, quotes: Iterable[PriceQuote],
                      catalogue: Mapping[str, tuple[str | None, int | None]] | None = None) -> tuple[int, int]:
        """Bulk-write quotes, each at its own `ts` (trace import), in one transaction: read first into a
        temporary table, which holds no lock on the history (a year's trace reads for minutes, and a
        collect or tick waiting for the write lock gives up after the busy timeout), then written at once.

        Returns (rows read, rows new or changed): importing the same rows again changes nothing, and
        a row already collected keeps the columns a trace does not carry (GPU counts, list prices).
        `catalogue` (RunPod id -> display name, VRAM in GB) names the RunPod types imported, which a
        trace does not: filled where the `gpu_types` row lacks them, `updated` left NULL (not from
        RunPod's API), so the next catalogue refresh of `collect` replaces them.
        """
        total = changed = 0
        spans: dict[tuple[str, str, str, int], tuple[str, str]] = {}
        conn = self._conn
        try:
            conn.execute(f"DROP TABLE IF EXISTS {_STAGED}")
            conn.execute(f"CREATE TABLE {_STAGED} ({', '.join(_PRICE_COLUMNS)})")
            batch: list[tuple[Any, ...]] = []
            for quote in quotes:
                stamp = _iso(quote.ts) or ""
                row = _quote_row(stamp, quote)
                batch.append(row)
                key = (row[1], row[2], row[3], row[4])
                first, last = spans.get(key, (stamp, stamp))
                spans[key] = (min(first, stamp), max(last, stamp))
                if len(batch) >= 10_000:
                    conn.executemany(_STAGE_PRICE, batch)
                    total += len(batch)
                    batch.clear()
            conn.executemany(_STAGE_PRICE, batch)
            total += len(batch)
        except sqlite3.Error as exc:
            self._drop_staged()
            raise StoreError(f"cannot stage the import in SQLite's temporary files: {exc} (free space in "
                             "the temporary directory, or set SQLITE_TMPDIR to a larger one)") from None
        except BaseException:
            self._drop_staged()
            raise
        try:
            with self._write() as conn:
                before = conn.total_changes
                conn.execute(_IMPORT_PRICES)
                changed = conn.total_changes - before
                conn.executemany(_UPSERT_MARKET, [(*key, first, last) for key, (first, last) in spans.items()])
                ids = {key[1] for key in spans if key[0] == "runpod"}  # (Vast's ids are its own names)
                self._note_names(conn, [(i, *(catalogue or {})[i]) for i in sorted(ids) if i in (catalogue or {})])
        finally:
            self._drop_staged()
        return total, changed

    def _drop_staged(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._conn.execute(f"DROP TABLE IF EXISTS {_STAGED}")

    def _note_types(self, conn: sqlite3.Connection, quotes: Sequence[PriceQuote]) -> None:
        """Fill name and VRAM of types seen in quotes but never catalogued (no full refresh yet)."""
        seen = {(q.gpu_type_id, q.display_name, q.memory_in_gb) for q in quotes
                if q.display_name is not None or q.memory_in_gb is not None}
        self._note_names(conn, sorted(seen, key=str))

    @staticmethod
    def _note_names(conn: sqlite3.Connection, rows: Sequence[tuple[str, str | None, int | None]]) -> None:
        """(id, display name, VRAM) where the catalogue lacks them; a refresh's values are never replaced."""
        conn.executemany(
            "INSERT INTO gpu_types (id, display_name, memory_in_gb) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE "
            "SET display_name = coalesce(display_name, excluded.display_name), "
            "memory_in_gb = coalesce(memory_in_gb, excluded.memory_in_gb)", rows)

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
    def last_collection_ts(self, successful: bool = True, market: str | None = None) -> datetime | None:
        """Time of the newest collector cycle (only those without error, by default; of one market)."""
        clauses = (["error IS NULL"] if successful else []) + (["market = ?"] if market is not None else [])
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        row = self._rows(f"SELECT max(ts) FROM collections {where}", [market] if market is not None else [])[0]
        return parse_timestamp(row[0]) if row[0] else None

    def collections(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest collector rows (one per market per cycle), newest first (ts, duration_s, quotes,
        gpu_types, error, market)."""
        rows = self._rows("SELECT * FROM collections ORDER BY ts DESC, id DESC LIMIT ?", (limit,))
        return [_from_row(r) for r in rows]

    def offers_at(self, ts: datetime | None = None) -> list[dict[str, Any]]:
        """The Vast offers stored by the cycle at `ts` (default: the newest), by offer id; prices per
        instance, as Vast states them."""
        stamp = _iso(ts) if ts is not None else self._rows("SELECT max(ts) FROM offers")[0][0]
        if stamp is None:
            return []
        out = []
        for r in self._rows("SELECT * FROM offers WHERE ts = ? ORDER BY offer_id", (stamp,)):
            row = _from_row(r)
            row["verified"] = None if row["verified"] is None else bool(row["verified"])
            out.append(row)
        return out

    def machine_series(self, gpu_name: str, num_gpus: int, verified: bool, since: datetime | None = None,
                       until: datetime | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every stored Vast offer of one GPU name, count and tier (since inclusive, until exclusive), as
        numpy arrays: snapshot time (epoch seconds), machine id, `min_bid` per GPU (NaN: none). What
        `bidder.machine_hazard` reads a machine's pauses from."""
        sql = (f"SELECT {_EPOCH}, machine_id, coalesce(min_bid / num_gpus, -1.0) FROM offers WHERE ts >= ? "
               "AND ts < ? AND gpu_name = ? AND num_gpus = ? AND verified = ?")
        params = (_iso(since) if since else "", _iso(until) if until else "~", gpu_name, int(num_gpus),
                  1 if verified else 0)
        cursor = self._conn.cursor()
        cursor.row_factory = None
        try:
            data = np.fromiter(cursor.execute(sql, params), dtype=[("t", "f8"), ("m", "i8"), ("b", "f8")])
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read {self.path}: {exc}") from None
        bid = data["b"].copy()
        bid[bid < 0] = np.nan
        return data["t"].copy(), data["m"].copy(), bid

    def gpu_types_updated(self) -> datetime | None:
        """When the catalogue was last refreshed from `gpuTypes` (None: never)."""
        row = self._rows("SELECT max(updated) FROM gpu_types")[0]
        return parse_timestamp(row[0]) if row[0] else None

    def latest_quotes(self, market: str | None = None, at: datetime | None = None) -> list[PriceQuote]:
        """The newest snapshot of each market (of `market` alone, if given): every row at that
        market's newest `ts` in `prices` (failed cycles write no rows), or its newest at or before `at`
        when given (an imported trace may run ahead of now). Where that newest `ts` is not a collector's
        snapshot but imported, each series' newest row within SILENCE_MIN_HOURS of it (a trace's series
        need not share times). RunPod's rows come first."""
        names = [market] if market is not None else [r[0] for r in self._rows(
            "SELECT DISTINCT market FROM markets ORDER BY market")]
        until = _iso(at)
        out: list[PriceQuote] = []
        for name in names:
            # `markets.last_ts` is each market's newest prices.ts (kept by every write), read without a scan.
            stamp = self._rows("SELECT max(last_ts) FROM markets WHERE market = ?", (name,))[0][0]
            if stamp is not None and until is not None and stamp > until:
                # Later prices are stored: each series' newest at or before `at` is one seek in the market
                # index (a walk back along ts could cross millions of other markets' rows).
                stamp = self._rows(
                    "SELECT max((SELECT max(p.ts) FROM prices p WHERE p.market = m.market AND p.gpu_type_id = "
                    "m.gpu_type_id AND p.cloud = m.cloud AND p.gpu_count = m.gpu_count AND p.ts <= ?)) "
                    "FROM markets m WHERE m.market = ?", (until, name))[0][0]
            if stamp is None:
                continue
            if self._rows("SELECT 1 FROM collections WHERE market = ? AND ts = ? LIMIT 1", (name, stamp)):
                out.extend(self._iter_prices("p.market = ? AND p.ts = ?", [name, stamp],
                                             "p.gpu_type_id, p.cloud, p.gpu_count"))
                continue
            # Imported rows, not a collector's snapshot: a trace may sample its series at their own
            # times (one at :00, another at :02), and a price holds until its series' next row. Each
            # series' newest within a silence of the market's newest is current (only the :02 series
            # was shown, and `recommend` left the cheaper :00 one out).
            since = _iso(parse_timestamp(stamp) - timedelta(hours=SILENCE_MIN_HOURS))
            out.extend(self._iter_prices(
                "p.market = ? AND p.ts >= ? AND p.ts = (SELECT max(q.ts) FROM prices q WHERE q.market = p.market "
                "AND q.gpu_type_id = p.gpu_type_id AND q.cloud = p.cloud AND q.gpu_count = p.gpu_count "
                "AND q.ts <= ?)", [name, since, stamp], "p.gpu_type_id, p.cloud, p.gpu_count"))
        return out

    def price_history(self, gpu_type_id: str | None = None, cloud: str | None = None,
                      gpu_count: int | None = None, since: datetime | None = None,
                      until: datetime | None = None, *, market: str | None = None) -> list[PriceQuote]:
        """Stored quotes matching the filters (since inclusive, until exclusive), ordered by time;
        `market` None = every market."""
        return list(self.iter_prices(gpu_type_id, cloud, gpu_count, since, until, market=market))

    def iter_prices(self, gpu_type_id: str | Sequence[str] | None = None, cloud: str | None = None,
                    gpu_count: int | None = None, since: datetime | None = None,
                    until: datetime | None = None, *, market: str | None = None) -> Iterator[PriceQuote]:
        """Like price_history, streamed (for exports); `gpu_type_id` may be a list of ids."""
        clauses: list[str] = []
        params: list[Any] = []
        if market is not None:
            clauses.append("p.market = ?")
            params.append(market)
        elif gpu_type_id is not None:
            # The market index leads with `market`: naming every market lets SQLite probe it per market
            # instead of scanning the table.
            names = self.market_names() or [DEFAULT_MARKET]
            clauses.append(f"p.market IN ({', '.join('?' * len(names))})")
            params.extend(names)
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
        return self._iter_prices(" AND ".join(clauses) or "1", params,
                                 "p.ts, p.market, p.gpu_type_id, p.cloud, p.gpu_count")

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
                list_on_demand_price=r["list_on_demand_price"], market=r["market"], offer_count=r["offer_count"])

    def floor_series(self, gpu_type_id: str, cloud: str, gpu_count: int = 1, since: datetime | None = None,
                     until: datetime | None = None, *, market: str = DEFAULT_MARKET) -> FloorSeries:
        """One market's floor and on-demand price as numpy arrays (since inclusive, until exclusive).

        Read straight from the cursor into a structured array; NULL prices become NaN.
        """
        sql = (f"SELECT {_EPOCH}, coalesce(minimum_bid_price, -1.0), "
               "coalesce(uninterruptable_price, -1.0) FROM prices WHERE market = ? AND "
               "gpu_type_id = ? AND cloud = ? AND gpu_count = ? AND ts >= ? AND ts < ? ORDER BY ts")
        params = (market, gpu_type_id, cloud, int(gpu_count), _iso(since) if since else "",
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
                           gpu_type_id=gpu_type_id, cloud=cloud, gpu_count=int(gpu_count), market=market)

    def series_of(self, key: MarketKey, since: datetime | None = None,
                  until: datetime | None = None) -> FloorSeries:
        """`floor_series` of a key from `markets()` / `PriceQuote.key` (any market)."""
        market = str(key[3]) if len(key) > 3 else DEFAULT_MARKET
        return self.floor_series(key[0], key[1], int(key[2]), since=since, until=until, market=market)

    def markets(self, market: str | None = None) -> list[MarketKey]:
        """The key of every market with stored history (`bidder.models.market_key`: RunPod's are
        (gpu_type_id, cloud, gpu_count), others add their market name), RunPod's first."""
        where, params = ("WHERE market = ?", [market]) if market is not None else ("", [])
        rows = self._rows(f"SELECT market, gpu_type_id, cloud, gpu_count FROM markets {where} "
                          "ORDER BY 1, 2, 3, 4", params)
        return [market_key(r[1], r[2], int(r[3]), r[0]) for r in rows]

    def market_names(self) -> list[str]:
        """The markets (runpod, vast) with stored history."""
        return [r[0] for r in self._rows("SELECT DISTINCT market FROM markets ORDER BY 1")]

    def market_spans(self, market: str | None = None) -> list[dict[str, Any]]:
        """Every market with the first and last time it was seen (first_ts, last_ts as datetimes)."""
        where, params = ("WHERE market = ?", [market]) if market is not None else ("", [])
        return [_from_row(r) for r in self._rows(
            f"SELECT * FROM markets {where} ORDER BY market, gpu_type_id, cloud, gpu_count", params)]

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
