"""`bidder demo`: the emulator, history, a recommendation and a managed job with ticks, in one command."""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import click

from bidder.cli import main
from bidder.cli.common import FiniteRange
from bidder.cli.progress import Progress
from bidder.cli.signals import Terminated, sigterm_raises

__all__ = ["demo"]

_EXAMPLE = """\b
Example:
  bidder demo
  bidder demo --days 2 --seed 7 --keep ./demo-run
"""


@main.command("demo", epilog=_EXAMPLE)
@click.option("--days", type=FiniteRange(min=0.25, max=14), default=3.0, show_default=True,
              help="Simulated days of `bidder tick` for the managed job: its deadline, and its size (half of "
                   "those hours of work, at most 24).")
@click.option("--history-days", type=FiniteRange(min=0.5, max=14), default=2.0, show_default=True,
              help="Simulated days of price history collected first.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="The emulator's market seed.")
@click.option("--keep", "keep", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Keep the database, bidder.toml and the HTML report (DIR/report) in DIR, a new or empty "
                   "folder (default: a temporary folder, removed; the report goes to a folder of its own, "
                   "printed at the end).")
def demo(days: float, history_days: float, seed: int, keep: str | None) -> None:
    """Run all of bidder against its embedded emulator (RunPod and Vast): no account, no money, 25-60 s
    on a 2-core machine with the default days (longer when it is busy, or with more days).

    Starts the emulator on a free port, collects both markets' price history on its virtual clock,
    shows prices and a recommendation, then runs a managed job open to both markets with `bidder
    tick` every 10 simulated minutes (launch, interruptions, podBidResume or Vast's pause and
    resume, waits, moves) and reports its spend against on-demand. Ends by
    writing the HTML cost report and printing its path.
    """
    from bidder.demo import run_demo  # here, not at the top: it loads the emulator

    started = time.perf_counter()
    progress = Progress("demo")

    def say(line: str) -> None:
        progress.close()
        click.echo(line)

    # SIGTERM (`timeout`, a killed session) ends it as Ctrl-C does: its temporary folders removed (the
    # default action killed it at once and left a 30 MB database in /tmp).
    with sigterm_raises():
        try:
            if keep is not None:
                workdir = _keep_folder(keep)
                result = run_demo(seed=seed, days=days, history_days=history_days, workdir=workdir, say=say,
                                  report_dir=workdir / "report", progress=progress)
            else:
                report_dir = Path(tempfile.mkdtemp(prefix="bidder-demo-report-"))
                try:
                    with tempfile.TemporaryDirectory(prefix="bidder-demo-") as folder:
                        result = run_demo(seed=seed, days=days, history_days=history_days, workdir=Path(folder),
                                          say=say, report_dir=report_dir, progress=progress,
                                          db_label="the demo's temporary database (removed; --keep DIR keeps it)")
                except BaseException:  # Ctrl-C or a failure: no empty report folder left behind
                    shutil.rmtree(report_dir, ignore_errors=True)
                    raise
        except KeyboardInterrupt:
            progress.close()
            click.echo("Interrupted: the demo stopped" + (f"; its files so far are in {keep}" if keep is not None
                                                          else " and removed its temporary files"), err=True)
            sys.exit(130)  # the shell's convention for Ctrl-C (and 128 + 15 for SIGTERM, below)
        except Terminated:
            progress.close()
            sys.exit(143)
    progress.close()
    click.echo(f"Cost report: {result.report} (open it in a browser; charts and tables beside it)")
    click.echo(f"Done in {time.perf_counter() - started:.1f} s of real time. Try it on your own jobs: "
               "`bidder sim serve`, then point --api-url at it.")


def _keep_folder(keep: str) -> Path:
    """The --keep folder, made if missing. A folder that already holds files is refused: a second demo
    would collect into the first one's database and report a mix of both runs."""
    if not keep.strip():  # Path("") is the current folder: never taken as the demo's
        raise click.BadParameter("give the folder to keep the demo's files in (an empty name is none)",
                                 param_hint="'--keep'")
    folder = Path(keep)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        taken = next(folder.iterdir(), None) is not None
    except OSError as exc:
        raise click.BadParameter(f"cannot use {keep} as the demo's folder: {exc.strerror or exc}; give a new "
                                 "folder in a place you can write", param_hint="'--keep'") from None
    if taken:
        raise click.BadParameter(f"{keep} is not empty (a previous demo run?); give a new or empty folder, "
                                 "or remove it first", param_hint="'--keep'")
    return folder
