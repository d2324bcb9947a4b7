"""Every command of the `bidder` CLI, walked recursively through its groups (for tests that check
all commands alike, so that a new command is checked without anyone listing it)."""

from __future__ import annotations

from collections.abc import Iterator

import click
from click.testing import CliRunner

from bidder.cli import main


def iter_commands(group: click.Group = main, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...],
                                                                                           click.Command]]:
    """(("jobs", "stop"), command), ... for every command and group under `group` (not `group` itself)."""
    ctx = click.Context(group, info_name="bidder")
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from iter_commands(command, (*path, name))


def help_text(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(main, [*path, "--help"], prog_name="bidder")
    assert result.exit_code == 0, result.output
    return result.output
