"""How long does `bidder report` take on a busy ledger? Fills a store and times the report.

    python3 analysis/benchmarks/bench_report.py                 # 30 days, 20 pods, 10 types x 2 clouds
    python3 analysis/benchmarks/bench_report.py --days 7 --pods 5

Builds, in a temporary SQLite file: `--days` days of 5-minute snapshots for `--types` GPU types x
2 clouds, and `--pods` spot pods polled every 5 minutes for the whole period (interrupted about
once a day, resumed an hour later; seeded). Then prints, median of `--repeat` runs (report and
baseline alternate, so load on the machine slows both alike):
  1. `bidder.report.data.spend_report` over all history (per-pod stretches, on-demand prices,
     interruptions, jobs, totals, market summary),
  2. the baseline: `Store.spend_by_pod()`, the bare spend estimate over the same polls (what the
     report must at least do), and the ratio of the two,
  3. drawing and saving the two charts (`price_chart` for 3 types, `spend_chart`) as PNG.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from bidder.models import PriceQuote
from bidder.store import Store

STEP = timedelta(minutes=5)
START = datetime(2025, 1, 1, tzinfo=UTC)


def fill(store: Store, days: float, types: int, pods: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    steps = int(days * 86400 // STEP.total_seconds())
    names = [f"BENCH GPU {i:02d}" for i in range(types)]
    level = np.full((types, 2), 0.4)
    for k in range(steps):
        ts = START + k * STEP
        level = np.clip(level * np.exp(rng.normal(0, 0.02, level.shape)), 0.15, 1.2)
        quotes = [PriceQuote(ts, name, cloud, 1, round(float(level[i, j]), 3), 0.8 + 0.1 * i)
                  for i, name in enumerate(names) for j, cloud in enumerate(("SECURE", "COMMUNITY"))]
        store.record_collection(ts, quotes, duration_s=0.0)
    for p in range(pods):
        pod_id = f"pod{p:03d}"
        store.add_pod(pod_id, job=f"job{p % 4}", name=pod_id, gpu_type_id=names[p % types], cloud="COMMUNITY",
                      gpu_count=1, kind="spot", bid_per_gpu=0.5, created=START)
        uptime, down_until = 0.0, -1
        with store._write():  # one transaction per pod: the benchmark is about reading
            for k in range(steps):
                ts = START + k * STEP
                if k < down_until:
                    store.record_observation(ts, pod_id, desired_status="EXITED", cost_per_hr=0.5, uptime_seconds=None)
                    continue
                if rng.random() < 1 / 288:  # about one interruption a day
                    store.record_observation(ts, pod_id, desired_status="EXITED", cost_per_hr=0.5,
                                             uptime_seconds=uptime + 150)
                    down_until, uptime = k + 12, -STEP.total_seconds()
                    continue
                uptime += STEP.total_seconds()
                store.record_observation(ts, pod_id, desired_status="RUNNING", cost_per_hr=0.5,
                                         uptime_seconds=max(uptime, 0.0))


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=float, default=30)
    parser.add_argument("--types", type=int, default=10)
    parser.add_argument("--pods", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from bidder.report.charts import price_chart, spend_chart
    from bidder.report.data import price_chart_data, spend_report

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        with Store.open(path) as store:
            t = time.perf_counter()
            fill(store, args.days, args.types, args.pods)
            build = time.perf_counter() - t
            observations = store._rows("SELECT count(*) FROM pod_observations")[0][0]
            print(f"ledger: {args.pods} pods x {args.days:g} days of 5-minute polls = {observations:,} observations; "
                  f"{args.types} types x 2 clouds of prices ({os.path.getsize(path) / 1e6:.0f} MB, built in "
                  f"{build:.1f} s)")
            # Alternate the two, so that a busy machine slows both alike; medians of each.
            runs = [(timed(lambda: spend_report(store), 1), timed(store.spend_by_pod, 1)) for _ in range(args.repeat)]
            t_report, report = statistics.median(r[0][0] for r in runs), runs[-1][0][1]
            t_base, base = statistics.median(r[1][0] for r in runs), runs[-1][1][1]
            assert abs(sum(base.values()) - report.totals.spend) < 1e-6 * max(1.0, report.totals.spend)
            print(f"spend_report (all history):    {t_report * 1000:8.0f} ms   "
                  f"({report.totals.spend:,.2f} USD, {report.totals.interruptions} interruptions)")
            print(f"baseline Store.spend_by_pod(): {t_base * 1000:8.0f} ms   ratio {t_report / t_base:.2f}x")
            print(f"per observation: report {t_report / observations * 1e6:.1f} us, "
                  f"baseline {t_base / observations * 1e6:.1f} us")

            def charts() -> None:
                import matplotlib.pyplot as plt

                series = price_chart_data(store, [f"BENCH GPU {i:02d}" for i in range(3)], ["COMMUNITY"])
                for fig, name in ((price_chart(series), "prices.png"), (spend_chart(report), "spend.png")):
                    fig.savefig(Path(tmp) / name, dpi=120)
                    plt.close(fig)

            t_charts, _ = timed(charts, args.repeat)
            print(f"both charts drawn and saved:   {t_charts * 1000:8.0f} ms")


if __name__ == "__main__":
    main()
