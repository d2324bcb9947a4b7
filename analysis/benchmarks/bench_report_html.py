"""How long does `bidder report --html` take over a year of history? Time and peak memory.

    python3 analysis/benchmarks/bench_report_html.py                   # 1 year, 40 types x 2 clouds, 6 jobs
    python3 analysis/benchmarks/bench_report_html.py --days 30 --types 10
    python3 analysis/benchmarks/bench_report_html.py --db /tmp/year.db  # reuse (or build once) a database

Builds (or reuses) a SQLite file with `--days` of 5-minute price history for `--types` GPU types x 2
clouds (a year of 40 types: 105,120 snapshots, 8,409,600 price rows) and a ledger of `--jobs` managed
jobs that ran all year, one pod at a time, polled every 5 minutes and interrupted about once a day.
Then runs, each in a fresh process (so peak memory is the command's own):
  1. `bidder report --html DIR --since all` (the whole page: spend, every job's chart and pods, each
     market a job ran in drawn over the year, heatmaps, bid charts, the current market),
  2. the baseline `SELECT COUNT(*) FROM prices` through Python's sqlite3 (one pass over the rows),
and prints wall time and peak resident memory of each, and their ratio.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from bidder.models import PriceQuote
from bidder.store import Store

STEP = timedelta(minutes=5)
START = datetime(2025, 1, 1, tzinfo=UTC)


def _quotes(days: float, types: int, seed: int):
    rng = np.random.default_rng(seed)
    steps = int(days * 86400 // STEP.total_seconds())
    names = [f"BENCH GPU {i:02d}" for i in range(types)]
    level = np.full((types, 2), 0.4)
    for k in range(steps):
        ts = START + k * STEP
        level = np.clip(level * np.exp(rng.normal(0, 0.02, level.shape)), 0.15, 1.2)
        for i, name in enumerate(names):
            for j, cloud in enumerate(("SECURE", "COMMUNITY")):
                yield PriceQuote(ts, name, cloud, 1, round(float(level[i, j]), 3), 0.8 + 0.1 * i)


def build(path: Path, days: float, types: int, jobs: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed + 1)
    steps = int(days * 86400 // STEP.total_seconds())
    with Store.open(path) as store:
        store.import_quotes(_quotes(days, types, seed))
        for j in range(jobs):
            gpu = f"BENCH GPU {j % types:02d}"
            pod_no, uptime, down_until = 0, 0.0, -1
            pod_id = f"job{j}-pod{pod_no}"
            store.add_pod(pod_id, job=f"job{j}", name=pod_id, gpu_type_id=gpu, cloud="COMMUNITY", gpu_count=1,
                          kind="spot", bid_per_gpu=0.5, created=START)
            with store._write():  # one transaction per job: the benchmark is about reading
                for k in range(steps):
                    ts = START + k * STEP
                    if k < down_until:
                        store.record_observation(ts, pod_id, desired_status="EXITED", cost_per_hr=0.5,
                                                 uptime_seconds=None)
                        continue
                    if rng.random() < 1 / 288:  # about one interruption a day
                        store.record_observation(ts, pod_id, desired_status="EXITED", cost_per_hr=0.5,
                                                 uptime_seconds=uptime + 150)
                        down_until, uptime = k + 12, -STEP.total_seconds()
                        continue
                    uptime += STEP.total_seconds()
                    store.record_observation(ts, pod_id, desired_status="RUNNING", cost_per_hr=0.5,
                                             uptime_seconds=max(uptime, 0.0))


def run(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the largest child so far: run the bigger command first to read it right
    return wall, max(peak, before) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=float, default=365)
    parser.add_argument("--types", type=int, default=40)
    parser.add_argument("--jobs", type=int, default=6)
    parser.add_argument("--db", default=None, help="Build into (or reuse) this file instead of a temporary one.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.db) if args.db else Path(tmp) / "bench.db"
        if not path.exists():
            t = time.perf_counter()
            build(path, args.days, args.types, args.jobs)
            print(f"built {path} in {time.perf_counter() - t:.0f} s")
        with Store.open(path, create=False) as store:
            prices = store._rows("SELECT count(*) FROM prices")[0][0]
            observations = store._rows("SELECT count(*) FROM pod_observations")[0][0]
        print(f"database: {prices:,} price rows, {observations:,} pod observations, "
              f"{os.path.getsize(path) / 1e9:.2f} GB; cpu count {os.cpu_count()}")
        out = Path(tmp) / "html"
        report = [sys.executable, "-c", "from bidder.cli import main; main()", "report", "--db", str(path),
                  "--since", "all", "--now", (START + timedelta(days=args.days)).isoformat(), "--html", str(out)]
        count = [sys.executable, "-c", f"import sqlite3; print(sqlite3.connect({str(path)!r}).execute("
                 "'SELECT COUNT(*) FROM prices').fetchone()[0])"]
        t_report, mem_report = run(report)
        t_count, mem_count = run(count)
        size = sum(f.stat().st_size for f in out.iterdir())
        print(f"bidder report --html (all history): {t_report:7.1f} s   peak {mem_report:7.0f} MB   "
              f"({len(list(out.iterdir()))} files, {size / 1e6:.1f} MB)")
        print(f"baseline SELECT COUNT(*) FROM prices: {t_count:6.1f} s   peak {mem_count:7.0f} MB (the peak of "
              "both runs: getrusage keeps the largest child)")
        print(f"ratio: report / COUNT(*) = {t_report / t_count:.1f}x")


if __name__ == "__main__":
    main()
