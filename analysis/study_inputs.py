"""What the window studies share (`study_money_breakdown.py`, `study_start_hazard.py`): their common
options (a trace, a tolerance, the hours between window starts, `--out`), read and checked as one, and
the table written to stdout and to `--out`. Bad input is a `StudyError` the script says in one line;
`run_script` says it so for the other analysis scripts too."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from bidder.backtest.engine import PriceHistory, load_trace
from bidder.backtest.types import BacktestJob
from bidder.errors import BidderError
from bidder.models import parse_tolerance

#: Where the README says to save the AWS 2016 trace (not shipped).
AWS_TRACE = Path(__file__).resolve().parent.parent / "data" / "aws-g2-2016-us-east-1ac.csv"


class StudyError(Exception):
    """Bad input to a study: one line for the user."""


def add_window_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trace", type=Path, required=True, help="a trace CSV (the README's trace format)")
    parser.add_argument("--tolerance", default="high", help="interruption tolerance (default high)")
    parser.add_argument("--every", type=float, default=84.0, help="hours between window starts (default 84)")
    parser.add_argument("--out", type=Path, default=None, help="also write the table to this file")


def read_window_inputs(args: argparse.Namespace) -> tuple[float, PriceHistory]:
    """(tolerance, history) of `add_window_options`' options; StudyError on a bad tolerance, a missing
    or malformed trace, window starts not more than 0 hours apart, or an `--out` whose folder is missing
    (said before the study runs, not after)."""
    try:
        tolerance = parse_tolerance(args.tolerance)
        history = load_trace(args.trace)
    except (ValueError, BidderError) as exc:
        raise StudyError(str(exc)) from None
    if not args.every > 0:
        raise StudyError(f"--every {args.every:g}: give the hours between window starts, more than 0")
    if args.out is not None and not args.out.resolve().parent.is_dir():
        raise StudyError(f"--out {args.out}: its folder does not exist")
    return tolerance, history


def issue_job(gpus_option: str, history: PriceHistory) -> BacktestJob:
    """The issue's batch job (100 GPU-hours, 7-day deadline, 15-minute restart overhead) on the GPU types
    of `--gpus` ("A|B": one job that accepts each); StudyError when one is not a GPU type of the trace."""
    gpus = tuple(g for g in gpus_option.split("|") if g)
    known = {m.gpu_type_id for m in history.markets}
    if not gpus or any(g not in known for g in gpus):
        raise StudyError(f"--gpus must name GPU types of the trace, separated by |: {', '.join(sorted(known))}")
    return BacktestJob(gpu_types=gpus, work_hours=100.0, deadline_hours=168.0, restart_overhead_hours=0.25)


def emit(lines: list[str], out: Path | None) -> int:
    """Print the study's table (and write it to `out`); the script's exit status, 0."""
    text = "\n".join(lines) + "\n"
    print(text)
    if out:
        out.write_text(text)
    return 0


def run_script(name: str, main: Callable[[], int | None]) -> int:
    """Run an analysis script's `main`: bad input (a trace it cannot read or that is too short, an
    unknown GPU, a folder it cannot write, a `StudyError`) is one `NAME: error: ...` line and exit 2,
    as argparse says a bad option, never a traceback. Errors of the study itself still show theirs."""
    try:
        return main() or 0
    except (BidderError, StudyError, OSError) as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2


def add_forecast_options(parser: argparse.ArgumentParser) -> None:
    """The forecast studies' options: --traces (read by `forecast_markets`), --hours ahead, --cheap states."""
    parser.add_argument("--traces", nargs="*", type=Path, default=None,
                        help="trace CSVs (default: the AWS 2016 trace, when present, and data/traces/*.csv)")
    parser.add_argument("--hours", type=float, default=24.0, help="how far ahead the share is forecast (default 24)")
    parser.add_argument("--cheap", type=int, default=4, help="the cheap states: the lowest N levels (default 4)")


def forecast_markets(given: list[Path] | None) -> Iterator[tuple[str, str, np.ndarray, np.ndarray, float]]:
    """(trace name, market label, sample times, floors, its highest on-demand price) of each market with an
    on-demand price in the traces `given`, else in the AWS 2016 trace (when saved where the README says)
    and data/traces/*.csv: what the forecast studies (study_chain_calibration.py, study_regime_chain.py)
    read. StudyError on a trace that cannot be read."""
    traces = given
    if traces is None:
        traces = ([AWS_TRACE] if AWS_TRACE.is_file() else []) + sorted((AWS_TRACE.parent / "traces").glob("*.csv"))
    for trace in traces:
        try:
            history = load_trace(trace)
        except BidderError as exc:  # a missing or malformed trace
            raise StudyError(str(exc)) from None
        for m, market in enumerate(history.markets):
            od = history.on_demand[m][~np.isnan(history.on_demand[m])]
            if len(od):
                yield trace.name, market.label, history.ts, history.floor[m], float(od.max())
