"""How much does a Vast collection cycle cost bidder, beyond the request? Reduce and store.

    python3 analysis/benchmarks/bench_vast_store.py                 # 2,000 offers, 50 cycles
    python3 analysis/benchmarks/bench_vast_store.py --offers 10000

For `--offers` seeded random offers (8 GPU names, 1/2/4/8 GPUs, 70% verified, reliability 0.8-1.0):
  1. `summarize_offers` (the pure reduction to one quote per GPU name × count × tier),
  2. `Store.record_collection` of those quotes and every offer (the `offers` table), one
     transaction per cycle as the collector writes it,
  3. the baseline: plain `sqlite3.executemany` of the same offer tuples into a bare table with no
     key, one transaction per cycle (what SQLite itself costs on this machine),
  4. bytes per stored offer (after a WAL checkpoint).
The HTTP request and JSON parsing are the client's part and are measured with the emulator's Vast API.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bidder.store import Store
from bidder.vast.offers import Offer
from bidder.vast.summary import summarize_offers

NAMES = ("RTX 4090", "RTX 3090", "RTX A6000", "A100 SXM4", "H100 SXM", "L40S", "RTX 5090", "A40")
START = datetime(2026, 1, 1, tzinfo=UTC)


def offers_at(rng: random.Random, n: int, cycle: int) -> list[Offer]:
    out = []
    for i in range(n):
        gpus = rng.choice((1, 1, 2, 4, 8))
        price = rng.uniform(0.1, 3.0) * gpus
        out.append(Offer(id=cycle * 1_000_000 + i, machine_id=10_000 + i, host_id=500 + i % 300,
                         gpu_name=NAMES[i % len(NAMES)], num_gpus=gpus, gpu_ram_mb=24_564,
                         min_bid=round(price * rng.uniform(0.3, 0.7), 4), dph_total=round(price, 4),
                         reliability=rng.uniform(0.8, 1.0), verified=rng.random() < 0.7,
                         storage_cost=0.15, geolocation="Sweden, SE"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--offers", type=int, default=2000, help="Offers per cycle (default 2,000).")
    parser.add_argument("--cycles", type=int, default=50, help="Cycles (default 50).")
    args = parser.parse_args()
    rng = random.Random(0)
    cycles = [offers_at(rng, args.offers, c) for c in range(args.cycles)]
    times = [START + timedelta(minutes=5 * c) for c in range(args.cycles)]
    reduce_s, store_s, base_s = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        with Store.open(Path(tmp) / "bidder.db") as store:
            for ts, offers in zip(times, cycles, strict=True):
                t0 = time.perf_counter()
                quotes = summarize_offers(offers, ts)
                t1 = time.perf_counter()
                store.record_collection(ts, quotes, duration_s=0.0, market="vast", offers=offers)
                t2 = time.perf_counter()
                reduce_s.append(t1 - t0)
                store_s.append(t2 - t1)
            store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = os.path.getsize(Path(tmp) / "bidder.db")
        bare = sqlite3.connect(Path(tmp) / "bare.db", isolation_level=None)
        bare.execute("PRAGMA journal_mode = WAL")
        bare.execute("PRAGMA synchronous = NORMAL")
        bare.execute("CREATE TABLE o (ts, a, b, c, d, e, f, g, h, i, j, k, l)")
        for ts, offers in zip(times, cycles, strict=True):
            rows = [(ts.isoformat(), o.id, o.machine_id, o.host_id, o.gpu_name, o.num_gpus, o.gpu_ram_mb, o.min_bid,
                     o.dph_total, o.reliability, int(o.verified), o.storage_cost, o.geolocation) for o in offers]
            t0 = time.perf_counter()
            bare.execute("BEGIN")
            bare.executemany("INSERT INTO o VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            bare.execute("COMMIT")
            base_s.append(time.perf_counter() - t0)
        bare.close()
    med = statistics.median
    total = args.offers * args.cycles
    print(f"{args.offers:,} Vast offers per cycle, {args.cycles} cycles; SQLite {sqlite3.sqlite_version}")
    print(f"summarize_offers (reduce)          : {med(reduce_s) * 1e3:7.2f} ms per cycle "
          f"({len(quotes)} quotes from {args.offers:,} offers)")
    print(f"record_collection (quotes + offers): {med(store_s) * 1e3:7.2f} ms per cycle")
    print(f"baseline: bare executemany, no key : {med(base_s) * 1e3:7.2f} ms per cycle "
          f"(store / baseline = {med(store_s) / med(base_s):.2f}x)")
    print(f"reduce + store                     : {(med(reduce_s) + med(store_s)) * 1e3:7.2f} ms per cycle")
    print(f"database size                      : {size / 1e6:.1f} MB = {size / total:.0f} bytes per offer "
          f"({size / args.cycles / 1e6 * 288:.0f} MB per day at one cycle every 5 minutes)")


if __name__ == "__main__":
    main()
