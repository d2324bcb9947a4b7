"""Does the spot floor have a weekly cycle that the past forecasts? (A lead for the planner's model.)

    python3 analysis/study_weekly_cycle.py                       # the AWS 2016 trace if present, else data/traces
    python3 analysis/study_weekly_cycle.py --traces my-trace.csv

Last output: `analysis/results/weekly-cycle.txt`.

The planner's chain knows the time of day (quarter-day phases, where a daily cycle forecasts better)
but not the day of the week. A 7-day job could put its hours on the cheap days if it knew them. Per
market, this prints:
- the mean floor (capped at on-demand: above it a job runs on-demand) by weekday (UTC), over the
  trace's mean, and the share of time the floor is above 1.5x its 24-hour median (a spike);
- per ISO week, weekend (Saturday, Sunday) against weekday mean;
- how often the sign of (weekend - weekday) in one week is the sign of the four weeks before it,
  which is what a model fitted on the month before the job could know; and the same test for the
  daily cycle (the cheapest quarter of a day against the cheapest quarter of the 7 days before), the
  cycle the planner already models, for scale.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from bidder.backtest.history import load_trace
from bidder.errors import BidderError

ROOT = Path(__file__).resolve().parents[1]
AWS_TRACE = ROOT / "data" / "aws-g2-2016-us-east-1ac.csv"  # where the README says to save it (not shipped)
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def market_report(name: str, ts: np.ndarray, floor: np.ndarray, on_demand: np.ndarray) -> list[str]:
    index = pd.to_datetime(ts, unit="s", utc=True)
    capped = pd.Series(np.minimum(floor, on_demand), index=index).dropna()
    if len(capped) < 2 or capped.index[-1] - capped.index[0] < pd.Timedelta(days=21):
        return [f"{name}: under three weeks of samples, skipped"]
    spike = capped > 1.5 * capped.rolling("24h").median()
    mean = capped.mean()
    dow = capped.index.day_of_week
    lines = [f"{name}: {len(capped):,} samples, mean capped floor ${mean:.3f}"]
    lines.append("  weekday            " + " ".join(f"{d:>6s}" for d in DAYS))
    lines.append("  mean / all         " + " ".join(f"{capped[dow == k].mean() / mean:6.2f}" for k in range(7)))
    lines.append("  spike share        " + " ".join(f"{spike[dow == k].mean():6.2f}" for k in range(7)))
    weekend = dow >= 5
    iso = capped.index.isocalendar()
    week = (iso.year.to_numpy() * 100 + iso.week.to_numpy())
    diffs: list[float] = []
    for w in np.unique(week):
        m = week == w
        if weekend[m].sum() < 12 * 24 or (~weekend[m]).sum() < 12 * 24 * 3:  # a whole weekend, 3+ weekdays
            continue
        we, wd = capped[m & weekend].mean(), capped[m & ~weekend].mean()
        diffs.append(we - wd)
        lines.append(f"  week {w % 100:2d}: weekday ${wd:.3f}, weekend ${we:.3f} ({(we - wd) / wd:+.0%})")
    hits = [np.sign(diffs[i]) == np.sign(np.mean(diffs[i - 4:i])) for i in range(4, len(diffs))]
    cheaper = sum(d < 0 for d in diffs)
    lines.append(f"  weekend cheaper in {cheaper} of {len(diffs)} weeks; the sign of the 4 weeks before holds in "
                 f"{sum(hits)} of {len(hits)} weeks" if hits else f"  weekend cheaper in {cheaper} of {len(diffs)} weeks")
    # The daily cycle, for scale: the cheapest quarter-day of each day against that of the 7 days before.
    quarter = capped.index.hour // 6
    day = capped.index.normalize()
    by_day = capped.groupby([day, quarter]).mean().unstack()
    by_day = by_day.dropna()
    cheapest = by_day.to_numpy().argmin(axis=1)
    past = [by_day.iloc[i - 7:i].to_numpy().mean(axis=0).argmin() for i in range(7, len(by_day))]
    same = sum(int(c == p) for c, p in zip(cheapest[7:], past, strict=True))
    lines.append(f"  daily cycle: the cheapest quarter of the day is that of the 7 days before on {same} of "
                 f"{len(past)} days (chance: 1 in 4)")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", nargs="*", type=Path, default=None,
                        help="trace CSVs (default: the AWS 2016 trace if present, then data/traces/*.csv)")
    args = parser.parse_args(argv)
    traces = args.traces
    if traces is None:
        traces = ([AWS_TRACE] if AWS_TRACE.is_file() else []) + sorted((ROOT / "data" / "traces").glob("*.csv"))
    for trace in traces:
        try:
            history = load_trace(trace)
        except (BidderError, ValueError, OSError) as exc:
            print(f"study_weekly_cycle: {trace}: {exc}", file=sys.stderr)
            return 2
        print(f"# {trace.name}")
        for j, market in enumerate(history.markets):
            name = f"{market.gpu_type_id} {market.cloud}"
            print("\n".join(market_report(name, history.ts, history.floor[j], history.on_demand[j])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
