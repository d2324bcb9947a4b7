"""The `bidder` command line. Each area's commands live in their own module of this package;
only this package prints or knows click. Library code raises BidderError, turned here into one
line on stderr and a non-zero exit."""

from __future__ import annotations

import importlib
import logging
import sys

import click

from bidder import __version__
from bidder.errors import BidderError

__all__ = ["main"]

# Modules that each register their commands on `main` when imported.
_COMMAND_MODULES: tuple[str, ...] = (
    "sim",
    "collect",
    "backtest",
    "report",
    "execute",
    "demo",
    "recommend",
)


class BidderGroup(click.Group):
    """Turns any BidderError into `Error: <message>` and exit code 1, never a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except BidderError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(1)


@click.group(cls=BidderGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bidder")
@click.option("-v", "--verbose", count=True, help="Log more (-v info, -vv debug) to stderr.")
def main(verbose: int) -> None:
    """Buy GPU time on RunPod as cheaply as your risk allows.

    \b
    Example:
      bidder demo
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")


for _name in _COMMAND_MODULES:
    importlib.import_module(f"bidder.cli.{_name}")
