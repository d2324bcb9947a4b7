"""The `bidder` command line: `main` (the `bidder` console script) and one module per area, each
registering its commands on `main` (`collect`: collect/prices/history/import-trace/export,
`recommend`, `execute`: launch/tick/jobs/pods/stop, `backtest`, `report`: report/chart, `sim`,
`demo`; `common`: shared option types and row output). Only this package prints or knows click;
library code raises BidderError, turned here into one line on stderr and a non-zero exit.

A command's module is imported only when that command runs (or `bidder --help` lists them all), so
`bidder tick` from cron never loads the emulator, the backtest or the report code.

Exports: `main`.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import io
import logging
import os
import sys
from collections.abc import Mapping
from typing import Any

import click

from bidder import __version__
from bidder.errors import BidderError, TransportError

__all__ = ["COMMAND_MODULES", "NOTES_KEY", "main"]

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

#: Which module registers each command, so running one imports only its module. A command missing
#: here still works (every module is then imported to find it); tests/test_cli_house.py keeps the
#: map complete.
COMMAND_MODULES: dict[str, str] = {
    "sim": "sim",
    "collect": "collect", "prices": "collect", "history": "collect", "import-trace": "collect",
    "export": "collect",
    "backtest": "backtest",
    "report": "report", "chart": "report",
    "launch": "execute", "tick": "execute", "jobs": "execute", "pods": "execute", "stop": "execute",
    "demo": "demo",
    "recommend": "recommend",
}


def _load(module: str) -> None:
    importlib.import_module(f"bidder.cli.{module}")


#: Where lines for after a command's success wait (`bidder.cli.timing.say_after`), in the click
#: context's meta (shared by the group and its command).
NOTES_KEY = "bidder.notes"


class BidderGroup(click.Group):
    """The `bidder` group: loads a command's module on first use, and turns any BidderError into
    `Error: <message>` and exit code 1, never a traceback.

    `commands` (what click and tests read) is the full table, loading every module; lookups by
    name through `get_command` load only the module that registers that name.
    """

    def __init__(self, *args: Any, lazy: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        self._lazy = dict(lazy or {})
        self._registered: dict[str, click.Command] = {}
        super().__init__(*args, **kwargs)

    @property  # type: ignore[override]
    def commands(self) -> dict[str, click.Command]:
        self._load_all()
        return self._registered

    @commands.setter
    def commands(self, value: Mapping[str, click.Command]) -> None:
        self._registered = dict(value)

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        name = name or cmd.name
        if name is None:
            raise TypeError("Command has no name.")
        self._registered[name] = cmd

    def _load_all(self) -> None:
        for module in _COMMAND_MODULES:
            _load(module)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self._registered and cmd_name in self._lazy:
            _load(self._lazy[cmd_name])
        if cmd_name not in self._registered:
            self._load_all()
        return self._registered.get(cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.commands)

    def main(self, *args: Any, **kwargs: Any) -> Any:
        if sys.stdout is None:  # started with stdout closed (`>&-`): click.echo skips None unsaid, csv fails
            sys.stdout = _ClosedOutput()
        try:
            return super().main(*args, **kwargs)
        except OSError as exc:  # (click itself ends quietly on a closed pipe: `bidder prices | head`)
            if exc.filename is not None or exc.errno not in _OUTPUT_ERRNOS:
                raise
            _silence_stdout()
            click.echo(f"Error: cannot write the output: {exc.strerror or exc}", err=True)
            sys.exit(1)

    def invoke(self, ctx: click.Context) -> object:
        try:
            result = super().invoke(ctx)
        except BidderError as exc:
            hint = ""
            if isinstance(exc, TransportError) and "cannot connect" in str(exc):  # what to check, not only what failed
                where = {"runpod": "--api-url or RUNPOD_API_URL", "vast": "--vast-url or VAST_URL"}.get(
                    exc.market or "", "--api-url or RUNPOD_API_URL; --vast-url or VAST_URL")
                hint = f"; check the URL ({where}) and that the service is up"
            click.echo(f"Error: {exc}{hint}", err=True)
            sys.exit(1)
        except click.UsageError as exc:  # one line, as every error (click's own prints the usage first)
            if isinstance(exc, _NO_ARGS_IS_HELP):  # `bidder chart` alone: its help as `bidder` alone gives it,
                exc.show()                         # not "Error: Usage: ..." with the help inside
                sys.exit(exc.exit_code)
            where = exc.ctx.command_path if exc.ctx is not None else ctx.command_path
            click.echo(f"Error: {exc.format_message()} (see `{where} --help`)", err=True)
            sys.exit(exc.exit_code)
        for line in ctx.meta.get(NOTES_KEY, ()):  # bidder.cli.timing.say_after: after success only
            click.echo(line, err=True)
        return result


#: A group given no command (click >= 8.2; before it, the group printed its help and exited 0 itself).
_NO_ARGS_IS_HELP: Any = getattr(click.exceptions, "NoArgsIsHelpError", ())


#: What a write to stdout fails with when it cannot be written (a full disk, a closed pipe, a quota,
#: no stdout at all): an OSError without a file name that reaches the group is the output's (files
#: name themselves).
_OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EPIPE, errno.EIO, errno.EDQUOT, errno.EFBIG, errno.EBADF})


class _ClosedOutput(io.TextIOBase):
    """stdout when the process started without one: a write fails as a closed descriptor does, so a
    command with output to give says it cannot, in one line, rather than losing it unsaid."""

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, "standard output is closed")


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that Python's own flush at exit does not fail a second time."""
    with contextlib.suppress(OSError, ValueError, AttributeError):  # (a stdout with no file descriptor)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


class _MaskKeys(logging.Filter):
    """Masks every API key this process was given (or a long piece of one) in a log line: httpcore's
    debug lines (`-vv`) carry response headers as the server sent them, which may echo the key."""

    def filter(self, record: logging.LogRecord) -> bool:
        from bidder.runpod.errors_map import mask_known

        message = record.getMessage()
        masked = mask_known(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


@click.group(cls=BidderGroup, lazy=COMMAND_MODULES, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bidder")
@click.option("-v", "--verbose", count=True, help="Log more (-v info, -vv debug) to stderr.")
def main(verbose: int) -> None:
    """Buy GPU time on bid markets (RunPod spot, Vast.ai interruptible) as cheaply as your risk allows.

    \b
    Example:
      bidder demo
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:  # httpx/httpcore log URLs and headers as servers send them
        if not any(isinstance(f, _MaskKeys) for f in handler.filters):
            handler.addFilter(_MaskKeys())
