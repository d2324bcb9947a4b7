"""What a dry run's scratch copy costs: `bidder tick --dry-run` and `bidder launch --dry-run` run on a copy
of the database (`bidder.tick.dry_run_copy`), which keeps only the prices and Vast offers decisions read
(the last 31 and 8 days). The baseline is the copy of the whole file it made before.

    python3 analysis/benchmarks/bench_dry_run.py                 # 120 days x 20 types x 2 clouds
    python3 analysis/benchmarks/bench_dry_run.py --days 365      # a year (takes a while to build)

Builds the history with `Store.import_quotes` (the rows of `bench_store.py`'s 5-minute snapshots), then
times each copy (median of `--repeat`) and prints its size: the copy's bytes and seconds, and the whole
copy's over the bounded one's, measured in one run.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bench_store import snapshots

from bidder.store import Store
from bidder.tick import dry_run_copy


def timed_copy(store: Store, now: object, repeat: int) -> tuple[float, int]:
    """(median seconds, bytes) of `repeat` dry-run copies (`now` None: the whole file)."""
    seconds, size = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        with dry_run_copy(store, now) as copy:  # type: ignore[arg-type]
            seconds.append(time.perf_counter() - t0)
            size = Path(copy.path).stat().st_size
    return statistics.median(seconds), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=float, default=120.0, help="days of 5-minute history (default 120)")
    parser.add_argument("--types", type=int, default=20, help="GPU types, each in 2 clouds (default 20)")
    parser.add_argument("--repeat", type=int, default=3, help="copies timed each way (default 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-dry-run-") as folder:
        path = Path(folder) / "history.db"
        t0 = time.perf_counter()
        last = None
        with Store.open(path) as store:
            batch = []
            for ts, quotes in snapshots(args.days, args.types):
                batch.extend(quotes)
                last = ts
                if len(batch) >= 200_000:
                    store.import_quotes(batch)
                    batch = []
            store.import_quotes(batch)
            store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            rows = store._conn.execute("SELECT count(*) FROM prices").fetchone()[0]
            print(f"history: {args.days:g} days x {args.types} types x 2 clouds, {rows:,} price rows, "
                  f"{path.stat().st_size / 1e6:,.0f} MB (built in {time.perf_counter() - t0:.0f} s)")
            whole_s, whole_b = timed_copy(store, None, args.repeat)
            bounded_s, bounded_b = timed_copy(store, last, args.repeat)
    print(f"whole copy (before):   {whole_s:6.2f} s, {whole_b / 1e6:8,.0f} MB")
    print(f"bounded copy (now):    {bounded_s:6.2f} s, {bounded_b / 1e6:8,.0f} MB")
    print(f"whole / bounded:       {whole_s / bounded_s:6.1f}x the time, {whole_b / bounded_b:.1f}x the bytes")


if __name__ == "__main__":
    main()
