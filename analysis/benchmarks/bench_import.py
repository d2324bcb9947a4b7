"""What does `bidder import-trace` of a long trace cost the machine it runs on? Memory, and how long
another writer (a cron `collect` or `tick`) is shut out of the database meanwhile.

    python3 analysis/benchmarks/bench_import.py                       # 1,000,000 rows: 20,000 snapshots x 50 markets
    python3 analysis/benchmarks/bench_import.py --snapshots 4000      # a quick run (200,000 rows)

Writes a trace (5-minute snapshots of `--markets` RunPod markets) to a temporary folder, then runs
`bidder import-trace` on it in a subprocess into a database that already exists (as a user's does)
while this process tries to take the write lock (BEGIN IMMEDIATE, no wait, then ROLLBACK) every 50 ms, as a
collector would. Prints the import's wall time, the subprocess's peak resident memory (getrusage
of the child), and the longest stretch during which the other writer could not write (every
collect or tick waiting longer than the busy timeout, 30 s, fails). Then the same file again
(every row already stored: the idempotent re-import).
"""

from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bidder.store import Store


def write_trace(path: Path, snapshots: int, markets: int) -> int:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    with path.open("w") as out:
        out.write("ts,gpu_type,minimum_bid_price,uninterruptable_price,cloud,gpu_count,stock_status\n")
        for i in range(snapshots):
            ts = f"{start + timedelta(minutes=5 * i):%Y-%m-%dT%H:%M:%SZ}"
            out.writelines(f"{ts},GPU-{m},{0.1 + 0.001 * ((7 * i + m) % 50):.3f},0.5,COMMUNITY,1,High\n"
                           for m in range(markets))
    return snapshots * markets


def timed_import(db: Path, trace: Path) -> tuple[float, float, float]:
    """(seconds, longest lock-out of another writer in s, child's peak RSS in MB)."""
    other = sqlite3.connect(str(db), timeout=0, isolation_level=None)
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen([sys.executable, "-m", "bidder", "import-trace", "--db", str(db), str(trace)],
                                 stdout=out, stderr=err, text=True)
        longest, status, usage = _watch(other, child.pid)
        seconds = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        if status:
            sys.exit(f"import-trace failed: {err.read().strip()}")
        print(f"  {out.read().strip()}")
    other.close()
    return seconds, longest, usage.ru_maxrss / 1024


def _watch(other: sqlite3.Connection, pid: int) -> tuple[float, int, resource.struct_rusage]:
    """Write through `other` every 50 ms until the child ends: (longest lock-out, exit status, its rusage)."""
    longest = 0.0
    shut_since: float | None = None
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return longest, status, usage
        now = time.perf_counter()
        try:
            other.execute("BEGIN IMMEDIATE")  # the write lock, as a collect's transaction takes it first
            other.execute("ROLLBACK")
            shut_since = None
        except sqlite3.OperationalError:
            shut_since = now if shut_since is None else shut_since
            longest = max(longest, now - shut_since)
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--snapshots", type=int, default=20_000, help="5-minute snapshots (default 20,000: 69 days)")
    parser.add_argument("--markets", type=int, default=50, help="markets per snapshot")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trace, db = Path(tmp) / "trace.csv", Path(tmp) / "bidder.db"
        rows = write_trace(trace, args.snapshots, args.markets)
        print(f"trace: {rows:,} rows ({args.snapshots:,} snapshots x {args.markets} markets), "
              f"{trace.stat().st_size / 1e6:.0f} MB")
        Store.open(db).close()  # the database exists before the import, as a user's does
        for label in ("import", "again"):
            seconds, longest, rss = timed_import(db, trace)
            print(f"{label:<7} {seconds:7.1f} s  {rows / seconds:9,.0f} rows/s  peak memory {rss:6.0f} MB  "
                  f"another writer shut out for {longest:5.1f} s at most ({100 * longest / seconds:.0f}% of it)")


if __name__ == "__main__":
    main()
