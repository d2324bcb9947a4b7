"""What the window studies share (`study_money_breakdown.py`, `study_start_hazard.py`): their common
options (a trace, a tolerance, the hours between window starts, `--out`), read and checked as one, and
the table written to stdout and to `--out`. Bad input is a `StudyError` the script says in one line;
`run_script` says it so for the other analysis scripts too."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from bidder.backtest.engine import PriceHistory, load_trace
from bidder.backtest.types import BacktestJob
from bidder.errors import BidderError
from bidder.models import parse_tolerance


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
