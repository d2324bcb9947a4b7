"""How fast is bidder's price store? Writes a year of 5-minute history and reads a month back.

    python3 analysis/benchmarks/bench_store.py                  # full size: 365 days x 40 types x 2 clouds
    python3 analysis/benchmarks/bench_store.py --days 7         # a quick run

Prints, for `--types` GPU types × 2 clouds × GPU count 1 at 5-minute steps over `--days` days
(the full size is 105,120 snapshots of 80 quotes = 8,409,600 rows):
  1. rows per second through `Store.record_collection`, one transaction per snapshot as the
     collector writes them (quote objects built outside the timed part),
  2. rows per second through `Store.import_quotes` (the bulk path of `bidder import-trace`), on
     the first `--bulk-days` days,
  3. the baseline of both: plain `sqlite3.executemany` of the same tuples into a bare table with
     no index, one transaction (what SQLite itself does on this machine),
  4. database bytes per row (after a WAL checkpoint),
  5. time to read the last 30 days of one market back: `floor_series` (numpy), `price_history`
     (PriceQuote objects), and `latest_quotes` / `markets` on the full file.
Prices are a seeded random walk (numpy.random.default_rng(0)); content does not change the timing
much, but realistic rows (stock status, available counts, list prices) give a realistic size.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from bidder.models import PriceQuote
from bidder.store import Store

STEP = timedelta(minutes=5)
START = datetime(2025, 1, 1, tzinfo=UTC)
STOCK = ("High", "Medium", "Low")


def market_names(types: int) -> list[tuple[str, float]]:
    return [(f"BENCH GPU {i:02d}", round(0.2 + 0.1 * i, 2)) for i in range(types)]


def snapshots(days: float, types: int, seed: int = 0) -> Iterator[tuple[datetime, list[PriceQuote]]]:
    """Every 5-minute snapshot: (ts, quotes of every type x cloud)."""
    rng = np.random.default_rng(seed)
    markets = [(name, cloud, od * (1.2 if cloud == "SECURE" else 1.0))
               for name, od in market_names(types) for cloud in ("SECURE", "COMMUNITY")]
    level = np.full(len(markets), 0.45)
    for k in range(int(days * 86400 // STEP.total_seconds())):
        ts = START + k * STEP
        level = np.clip(level * np.exp(rng.normal(0, 0.03, len(markets))), 0.2, 1.5)
        gone = rng.random(len(markets)) < 0.01
        quotes = [PriceQuote(ts=ts, gpu_type_id=name, cloud=cloud, gpu_count=1,
                             minimum_bid_price=None if gone[j] else round(float(level[j]) * od, 3),
                             uninterruptable_price=round(od, 3), stock_status=STOCK[(k + j) % 3],
                             available_gpu_counts=(1, 2, 4, 8), max_unreserved_gpu_count=8,
                             list_spot_price=round(od * 0.5, 3), list_on_demand_price=round(od, 3))
                  for j, (name, cloud, od) in enumerate(markets)]
        yield ts, quotes


def bench_collector_writes(path: Path, days: float, types: int) -> tuple[int, float]:
    """(rows, seconds inside record_collection)."""
    rows, spent = 0, 0.0
    with Store.open(path) as store:
        for ts, quotes in snapshots(days, types):
            t0 = time.perf_counter()
            store.record_collection(ts, quotes, duration_s=0.0)
            spent += time.perf_counter() - t0
            rows += len(quotes)
        store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return rows, spent


def bench_bulk_import(path: Path, days: float, types: int) -> tuple[int, float]:
    quotes = [q for _, snap in snapshots(days, types) for q in snap]
    with Store.open(path) as store:
        t0 = time.perf_counter()
        total, _ = store.import_quotes(quotes)
        return total, time.perf_counter() - t0


def bench_baseline(path: Path, days: float, types: int) -> tuple[int, float]:
    """Plain sqlite3: the same tuples into a table without keys or indexes, one transaction."""
    rows = [(q.ts.strftime("%Y-%m-%dT%H:%M:%SZ"), q.gpu_type_id, q.cloud, q.gpu_count, q.minimum_bid_price,
             q.uninterruptable_price, q.stock_status, "[1, 2, 4, 8]", q.max_unreserved_gpu_count,
             q.list_spot_price, q.list_on_demand_price) for _, snap in snapshots(days, types) for q in snap]
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE prices (ts TEXT, gpu_type_id TEXT, cloud TEXT, gpu_count INTEGER, "
                 "minimum_bid_price REAL, uninterruptable_price REAL, stock_status TEXT, available_gpu_counts "
                 "TEXT, max_unreserved_gpu_count INTEGER, list_spot_price REAL, list_on_demand_price REAL)")
    t0 = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO prices VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.execute("COMMIT")
    spent = time.perf_counter() - t0
    conn.close()
    return len(rows), spent


def timed(call, repeats: int = 7) -> tuple[float, object]:
    """(median milliseconds, last result)."""
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = call()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=365.0, help="Days of 5-minute history (default 365).")
    parser.add_argument("--types", type=int, default=40, help="GPU types (x 2 clouds; default 40).")
    parser.add_argument("--bulk-days", type=float, default=30.0, help="Days for the bulk and baseline runs.")
    parser.add_argument("--dir", type=Path, default=None, help="Where to write the files (default: a temp dir).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        bulk_days = min(args.bulk_days, args.days)
        print(f"{args.types} GPU types x 2 clouds, 5-minute steps, {args.days:g} days "
              f"(bulk and baseline: {bulk_days:g} days); SQLite {sqlite3.sqlite_version}")
        base_rows, base_s = bench_baseline(folder / "baseline.db", bulk_days, args.types)
        base_rate = base_rows / base_s
        print(f"baseline  plain executemany, no keys : {base_rate:12,.0f} rows/s  ({base_rows:,} rows)")
        bulk_rows, bulk_s = bench_bulk_import(folder / "bulk.db", bulk_days, args.types)
        print(f"import_quotes (bulk, one transaction): {bulk_rows / bulk_s:12,.0f} rows/s  "
              f"({bulk_rows / bulk_s / base_rate:.2f}x baseline)")
        path = folder / "year.db"
        t0 = time.perf_counter()
        rows, spent = bench_collector_writes(path, args.days, args.types)
        wall = time.perf_counter() - t0
        print(f"record_collection (one per snapshot) : {rows / spent:12,.0f} rows/s  "
              f"({rows / spent / base_rate:.2f}x baseline; {rows:,} rows, {rows // (2 * args.types):,} "
              f"snapshots, {spent:.1f} s in the store, {wall:.1f} s with building the quotes)")
        size = os.path.getsize(path)
        print(f"database size                        : {size / 1e6:12,.1f} MB = {size / rows:.0f} bytes per row")
        with Store.open(path) as store:
            end = START + timedelta(days=args.days)
            since = end - timedelta(days=30)
            market = ("BENCH GPU 07", "COMMUNITY", 1)
            ms, series = timed(lambda: store.floor_series(*market, since=since))
            print(f"floor_series, last 30 days of 1 market: {ms:9.1f} ms  ({len(series):,} samples)")  # type: ignore[arg-type]
            ms, quotes = timed(lambda: store.price_history(*market, since=since))
            print(f"price_history, same window            : {ms:9.1f} ms  ({len(quotes):,} PriceQuotes)")  # type: ignore[arg-type]
            ms, latest = timed(store.latest_quotes)
            print(f"latest_quotes (newest snapshot)       : {ms:9.1f} ms  ({len(latest):,} quotes)")  # type: ignore[arg-type]
            ms, markets = timed(store.markets)
            print(f"markets()                             : {ms:9.1f} ms  ({len(markets):,} markets)")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
