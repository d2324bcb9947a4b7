"""How much of bidder's gap to the optimum is forecasting? bidder with a floor model fitted on the future.

    python3 analysis/study_model_oracle.py                 # the AWS 2016 trace (if present) and data/traces/*.csv
    python3 analysis/study_model_oracle.py --traces data/traces/sim-seed1-14d.csv --tolerances high

Last output: `analysis/results/model-oracle.txt`.

bidder's plans follow a Markov model of the floor (`bidder.planner.fit_floor_model`), refitted once a
day on the month before. Beside it this study runs a *clairvoyant* bidder: the same strategy and
policy, whose model at every refit is fitted on the month ending `--ahead` hours after the refit
(`--lookback` hours in all, weighted towards its end as always) instead of the month before it. It
knows the coming week's statistics (how often the floor moves between its price states, by time of
day where it has a daily cycle), not when each move comes. Where it beats bidder, the difference is
what better forecasting could win within this model class; what it leaves to the optimum is the
model class and the policy. Where it does not (a market whose statistics do not change), forecasting
is not where the gap is. It is a diagnostic, not a strategy: it reads the trace beyond the present.

The job is issue 11's: 100 GPU-hours, 7-day deadline, 15-minute restart overhead, a window every 3.5
days after 2 days of warm-up; the jobs per trace are those of `analysis/run_backtests.py` (each GPU type,
and the several-type job). Prints cost / the optimum's lower bound (mean over the windows, worst in
brackets) and interruptions per day, for bidder and the clairvoyant bidder, per job and tolerance.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bidder.backtest.engine import BacktestJob, Market, load_trace, run_backtest
from bidder.backtest.history import PriceHistory
from bidder.backtest.strategies import REFIT_HOURS, BidderStrategy, FloorModels, StrategyFactory, WarmTrackers
from bidder.backtest.types import HistoryView
from bidder.errors import BidderError
from bidder.models import JobSpec, Policy, parse_tolerance
from bidder.planner import FloorModel, fit_floor_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_backtests import AWS_TRACE, ROOT, job_groups

CLAIRVOYANT = "bidder (clairvoyant model)"


class FutureModels(FloorModels):
    """Each refit's model fitted on the `lookback_h` hours of the trace ending `ahead_h` hours after
    the refit (the refit times and the model class are FloorModels')."""

    def __init__(self, markets: Sequence[Market], history: PriceHistory, ahead_h: float, lookback_h: float) -> None:
        super().__init__(markets)
        self.history, self.ahead_h, self.lookback_h = history, ahead_h, lookback_h

    def at(self, view: HistoryView, now: float) -> list[FloorModel | None]:
        epoch = math.floor(now / (REFIT_HOURS * 3600.0)) * REFIT_HOURS * 3600.0
        end = epoch + self.ahead_h * 3600.0
        h = self.history
        n = int(np.searchsorted(h.ts, end, side="right"))
        out = []
        for i in range(len(self.markets)):
            key = (i, epoch)
            if key not in self.fits:
                od = h.on_demand[i][:n]
                known = od[~np.isnan(od)]
                self.fits[key] = None if not len(known) else fit_floor_model(
                    h.ts[:n], h.floor[i][:n], float(known[-1]), end, lookback_h=self.lookback_h)
            out.append(self.fits[key])
        return out


def clairvoyant_factory(history: PriceHistory, ahead_h: float, lookback_h: float) -> StrategyFactory:
    """A strategy factory for run_backtest: bidder with FutureModels (shared by the windows, as
    BidderFactory shares its fits)."""
    shared: dict[str, object] = {}

    def make(markets: Sequence[Market], job: JobSpec, policy: Policy) -> BidderStrategy:
        if shared.get("markets") != tuple(markets):
            shared.update(markets=tuple(markets), warm=WarmTrackers(markets),
                          models=FutureModels(markets, history, ahead_h, lookback_h))
        return BidderStrategy(markets, job, policy, warm=shared["warm"], models=shared["models"])  # type: ignore[arg-type]

    return make


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", nargs="*", type=Path, default=None,
                        help="trace CSVs (default: the AWS 2016 trace if present, then data/traces/*.csv)")
    parser.add_argument("--tolerances", default="high,medium", help="comma-separated (default high,medium)")
    parser.add_argument("--ahead", type=float, default=168.0, help="hours after the refit the model sees (default 168)")
    parser.add_argument("--lookback", type=float, default=720.0,
                        help="hours the model is fitted on, ending --ahead hours after the refit (default 720, "
                             "as the shipped model)")
    parser.add_argument("--every", type=float, default=84.0, help="hours between windows (default 84)")
    args = parser.parse_args(argv)
    traces = args.traces
    if traces is None:
        traces = ([AWS_TRACE] if AWS_TRACE.is_file() else []) + sorted((ROOT / "data" / "traces").glob("*.csv"))
    tolerances = [t.strip() for t in args.tolerances.split(",") if t.strip()]
    problem = ("--tolerances names none: give presets or numbers, e.g. high,medium" if not tolerances else
               "--lookback and --every must be above 0 hours, --ahead at least 0"
               if args.lookback <= 0 or args.every <= 0 or args.ahead < 0 else None)
    if problem:
        print(f"study_model_oracle: {problem}", file=sys.stderr)
        return 2
    try:
        policies = {tol: Policy(tolerance=parse_tolerance(tol)) for tol in tolerances}
        histories = [(trace, load_trace(trace)) for trace in traces]
    except (BidderError, ValueError) as exc:
        print(f"study_model_oracle: {exc}", file=sys.stderr)
        return 2
    print(f"cost / the optimum's lower bound, mean (worst) over the windows; interruptions per day. "
          f"Clairvoyant: the model fitted on {args.ahead:g} h after each refit ({args.lookback:g} h in all).")
    print(f"{'trace':30s} {'job':26s} {'tol':6s} {'win':>3s}  {'bidder':>20s}  {'clairvoyant':>20s}")
    for trace, history in histories:
        for label, types in job_groups(history, trace):
            job = BacktestJob(gpu_types=types, work_hours=100, deadline_hours=168, restart_overhead_hours=0.25)
            selected = history.select(job)
            for tol in tolerances:
                t0 = time.perf_counter()
                report = run_backtest(history, job, policies[tol],
                                      ["bidder", CLAIRVOYANT, "optimum"], every_hours=args.every,
                                      factories={CLAIRVOYANT: clairvoyant_factory(selected, args.ahead, args.lookback)})
                cells = []
                solved = [w for w in report.windows if w.results["optimum"].lower_bound]  # no bound: no ratio
                for name in ("bidder", CLAIRVOYANT):
                    ratios = [w.results[name].cost / w.results["optimum"].lower_bound for w in solved] or [math.nan]
                    per_day = np.mean([w.results[name].interruptions / 7.0 for w in report.windows])
                    cells.append(f"{np.mean(ratios):.3f} ({max(ratios):.2f}) {per_day:4.1f}/d")
                print(f"{trace.name:30s} {label:26s} {tol:6s} {len(solved):3d}  {cells[0]:>20s}  {cells[1]:>20s}"
                      f"   [{time.perf_counter() - t0:.0f} s]", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
