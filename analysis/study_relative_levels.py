"""A price-state chain fitted on the floor relative to its recent level, against the shipped one: each
30-minute block's maximum rescaled to today's level (times the trailing median of the block maxima now
over the trailing median then) before the chain is fitted, so a calmer or dearer month than the fit's
reads as today's. The lead: in calm weeks fitted on a dearer month (AWS us-east-1a, late August 2016)
bidder bid $0.32-0.44 where the optimum bid $0.10-0.21 and used the whole week.

    python3 analysis/study_relative_levels.py --trace data/aws-g2-2016-us-east-1ac.csv --gpus "g2.2xlarge/us-east-1a"
    python3 analysis/study_relative_levels.py --trace T.csv --gpus "A|B" --windows 72 168 --out F.md

The issue's batch job (100 GPU-hours, 7-day deadline, 15-minute restart overhead, a window every 84
hours after 48 hours of history) on the GPU types of `--gpus`. Prints, per variant (shipped, then the
rescaled chain for each trailing window in hours), the mean cost / the optimum's lower bound, the worst
window, interruptions and deadlines met. The variant is the shipped `fit_floor_model` with its block
maxima rescaled; it replaces that function in `bidder.planner` and `bidder.backtest.strategies` for its
own runs only (a study, not a setting).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from study_inputs import add_window_options, emit, issue_job, read_window_inputs, run_script

import bidder.backtest.strategies as strategies
import bidder.planner as planner
from bidder.backtest.engine import run_backtest
from bidder.models import Policy

SHIPPED = planner.fit_floor_model


def trailing_median(maxima: np.ndarray, blocks: int) -> np.ndarray:
    """Each block's median of the finite block maxima over the `blocks` blocks up to it (NaN: none)."""
    values = np.where(np.isfinite(maxima), maxima, np.nan)
    windows = sliding_window_view(np.concatenate([np.full(blocks - 1, np.nan), values]), blocks)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # (a window of no finite maximum: NaN)
        return np.nanmedian(windows, axis=1)


def relative_fit(window_h: float) -> Callable[..., Any]:
    """`fit_floor_model` on block maxima rescaled to the level of the last `window_h` hours."""

    def fit(ts: np.ndarray, floor: np.ndarray, on_demand: float, now: float, *, step_h: float = 0.5,
            lookback_h: float = 30 * 24.0, half_life_h: float = planner.HALF_LIFE_H, levels: int = planner.LEVELS,
            prior: float = planner.PRIOR, phases: int | None = None) -> planner.FloorModel | None:
        blocks = min(int(lookback_h / step_h), int((now - (float(ts[0]) if len(ts) else now)) / (step_h * 3600.0)))
        if blocks < int(24 / step_h):
            return None
        maxima = planner.block_maxima(ts, floor, now, step_h, blocks)
        level = trailing_median(maxima, max(int(window_h / step_h), 1))
        if np.isfinite(level[-1]) and level[-1] > 0:
            scale = np.where(np.isfinite(level) & (level > 0), level[-1] / level, 1.0)
            maxima = np.where(np.isfinite(maxima), maxima * scale, maxima)
        return planner._fit_maxima(maxima, on_demand, now, step_h=step_h, half_life_h=half_life_h, levels=levels,
                                   prior=prior, phases=planner.DAILY_PHASES if phases is None else phases)

    return fit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_window_options(parser)
    parser.add_argument("--gpus", required=True, help="GPU types of the trace, separated by | (one job accepts each)")
    parser.add_argument("--windows", type=float, nargs="+", default=[72.0, 168.0],
                        help="trailing windows (hours) of the level the maxima are rescaled to (default 72 168)")
    args = parser.parse_args(argv)
    tolerance, history = read_window_inputs(args)
    job = issue_job(args.gpus, history)
    lines = [f"{args.trace.name}, {' + '.join(job.gpu_types)}, tolerance {args.tolerance}: means per window", "",
             "| chain | x optimum (worst) | interruptions | deadlines met |", "| --- | ---: | ---: | ---: |"]
    variants: list[tuple[str, Callable[..., Any]]] = [("shipped", SHIPPED)]
    variants += [(f"rescaled to the last {w:g} h", relative_fit(w)) for w in args.windows]
    try:
        for name, fit in variants:
            planner.fit_floor_model = strategies.fit_floor_model = fit  # type: ignore[assignment]
            report = run_backtest(history, job, Policy(tolerance=tolerance), ["bidder", "optimum"], every_hours=args.every)
            windows = report.windows
            ratios = [w.results["bidder"].cost / w.results["optimum"].cost for w in windows]
            lines.append(f"| {name} | {sum(ratios) / len(ratios):.3f} ({max(ratios):.3f}) | "
                         f"{sum(w.results['bidder'].interruptions for w in windows) / len(windows):.1f} | "
                         f"{sum(bool(w.results['bidder'].deadline_met) for w in windows)} of {len(windows)} |")
    finally:
        planner.fit_floor_model = strategies.fit_floor_model = SHIPPED  # type: ignore[assignment]
    return emit(lines, args.out)


if __name__ == "__main__":
    sys.exit(run_script("study_relative_levels", main))
