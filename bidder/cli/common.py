"""Options, parameter types and output helpers shared by the commands."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import stat
import sys
import tempfile
import tomllib
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any, TypeVar

import click

from bidder.errors import ConfigError
from bidder.models import MARKET_CLOUDS, MAX_GPU_COUNT, MAX_HOURS, MAX_PRICE, parse_tolerance
from bidder.traces import MAX_TRACE_COUNT
from bidder.units import (
    DurationTooLong,
    YearTooEarly,
    is_naive,
    parse_duration,
    parse_int_list,
    parse_timestamp,
)

__all__ = [
    "CLOUD_CHOICE",
    "DEFAULT_API_URL",
    "DEFAULT_DB",
    "DEFAULT_VAST_URL",
    "DURATION",
    "GPU_COUNT_FILTER",
    "HOURS_HELP",
    "INT_LIST",
    "MARKET_CHOICES",
    "MAX_DAYS",
    "MAX_GPU_COUNT",
    "MAX_HOURS",
    "MAX_PRICE",
    "MAX_RECLAIM_RATE",
    "TOLERANCE",
    "FiniteRange",
    "UrlOption",
    "api_options",
    "check_market_cloud",
    "checked_gpu_name",
    "checked_job_name",
    "checked_pod_id",
    "checked_url_option",
    "db_option",
    "emit_rows",
    "expand_db_path",
    "file_mode",
    "format_option",
    "market_option",
    "parse_when",
    "resolve_api_key",
    "resolve_vast_api_key",
    "say_naive",
    "vast_options",
    "write_file",
]

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_API_URL = "https://api.runpod.io/graphql"
DEFAULT_DB = "data/bidder.db"
DEFAULT_VAST_URL = "https://console.vast.ai"


def user_config() -> Path | None:
    """Where the API keys may live: $XDG_CONFIG_HOME/bidder/config.toml, else ~/.config/bidder/config.toml.
    An empty or relative XDG_CONFIG_HOME is ignored, as the XDG spec says (it would read a key from
    whatever folder cron runs in); None without a home (a user with no HOME and no passwd entry):
    the keys then come from the environment only."""
    xdg = os.environ.get("XDG_CONFIG_HOME", "")
    if os.path.isabs(xdg):
        return Path(xdg) / "bidder" / "config.toml"
    try:
        return Path.home() / ".config" / "bidder" / "config.toml"
    except RuntimeError:  # "Could not determine home directory."
        return None


#: The largest values the numeric options take: past them a figure is a typo (and some would not fit a date).
#: MAX_HOURS and MAX_PRICE are bidder.models': bidder.toml's `hours` and `max_price` have the same bounds.
MAX_DAYS = 3660.0
MAX_RECLAIM_RATE = 60.0  # reclaims per hour: once a minute


#: --gpu-count of the commands that read stored prices (prices, history, export, chart prices): any count a
#: stored row may hold (a trace's, up to bidder.traces.MAX_TRACE_COUNT, may pass MAX_GPU_COUNT); unbounded,
#: a count past SQLite's integers ended export in an OverflowError traceback.
GPU_COUNT_FILTER = click.IntRange(min=1, max=MAX_TRACE_COUNT)


class FiniteRange(click.FloatRange):
    """click.FloatRange that also refuses nan and inf: nan passes every range check, and neither is a
    price, a number of hours or a rate."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


class DurationType(click.ParamType):
    """A duration such as 90s, 15m, 2h, 3d. A bare number other than 0 is refused: "90" read as 90
    seconds surprised users (a --deadline of 90 seconds, a collect loop every 5 seconds)."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> timedelta:
        if isinstance(value, timedelta):
            return value
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class IntListType(click.ParamType):
    name = "list"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[int, ...]:
        if isinstance(value, tuple):
            return value
        try:
            return parse_int_list(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class ToleranceType(click.ParamType):
    name = "tolerance"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        try:
            return parse_tolerance(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def checked_gpu_name(name: str, param_hint: str = "--gpu") -> str:
    """A GPU name, refused when empty: "" is part of every name and would match every GPU type."""
    if not name.strip():
        raise click.BadParameter("a GPU name must not be empty (give an id, a display name or a part of one)",
                                 param_hint=param_hint)
    return name


#: A pod id as the markets issue them: RunPod's, 14 lowercase letters and digits (3pzo5nuevq61rq), and
#: Vast's instance ids, digits; widened (capitals, - and _, up to 64) so that no real id is refused.
_POD_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def _control_char(text: str) -> str | None:
    """How to name the first control character of `text` (None: it holds none)."""
    bad = next((c for c in text if ord(c) < 32 or ord(c) == 127), None)
    if bad is None:
        return None
    return f"a line break at character {text.index(bad) + 1}" if bad in "\r\n" else \
        f"a control character ({bad!r}) at character {text.index(bad) + 1}"


def _one_line(value: str, what: str, listing: str, param_hint: str) -> None:
    """Refuse `value` (a pod's id, a job's name) empty or holding a control character: such a value went
    to the API as it was, and every message naming it split over two lines."""
    if not value.strip():
        raise click.BadParameter(f"must not be empty: give {what} ({listing} lists them)", param_hint=param_hint)
    control = _control_char(value)
    if control is not None:
        raise click.BadParameter(f"{value!r} holds {control}: give {what} on one line, without control "
                                 f"characters ({listing} lists them)", param_hint=param_hint)


def checked_pod_id(pod_id: str, param_hint: str = "POD_ID") -> str:
    """A pod id that a market could have issued (one with a line break went to podStop as it was)."""
    _one_line(pod_id, "the pod's id", "`bidder pods --all`", param_hint)
    if not _POD_ID.fullmatch(pod_id):
        raise click.BadParameter(f"{pod_id!r} cannot be a pod id: RunPod's are letters and digits (e.g. "
                                 "3pzo5nuevq61rq), Vast's digits (`bidder pods --all` lists them)",
                                 param_hint=param_hint)
    return pod_id


def checked_job_name(name: str, param_hint: str = "--job") -> str:
    """A job's name as given to a command, refused empty ("job  has no active pod") or holding a control
    character."""
    _one_line(name, "the job's name", "`bidder jobs`", param_hint)
    return name


#: How every command's --hours begins (the same words as bidder.toml's `hours`).
HOURS_HELP = "Work to do, in running hours of one pod at speed 1.0"


def parse_when(text: str | None, now: datetime, option: str, *, allow_all: bool = False) -> datetime | None:
    """The one reading of --since and --until: a duration before `now` ("7d", "12h") or an ISO 8601
    time; with `allow_all`, "all" (or None) is no limit and gives None. Anything else is a usage
    error naming the option."""
    if text is None or (allow_all and text.strip().lower() == "all"):
        return None
    also = ", or 'all'" if allow_all else ""
    if text.strip().replace(".", "", 1).isdigit():  # 20260103: seconds ago? a date? neither is said
        raise click.BadParameter(f"{text!r} has no unit: give a duration before now (e.g. 7d, 12h, 30m)"
                                 f"{',' if allow_all else ' or'} an ISO 8601 time (e.g. 2026-01-03T00:00:00Z){also}",
                                 param_hint=option)
    try:
        return now - parse_duration(text)
    except DurationTooLong as exc:
        raise click.BadParameter(f"{exc}, or 'all'" if allow_all else str(exc), param_hint=option) from None
    except ValueError:
        pass
    try:
        when = parse_timestamp(text)
    except YearTooEarly as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None
    except ValueError:
        also = " nor 'all'" if allow_all else ""
        raise click.BadParameter(f"{text!r} is neither a duration before now (e.g. 7d, 12h) nor an ISO 8601 time "
                                 f"(e.g. 2026-01-01T00:00:00Z){also}", param_hint=option) from None
    if is_naive(text):
        say_naive(option, text)
    return when


_told_naive: set[tuple[str, str]] = set()  # (outside a command: said once per process)


def say_naive(option: str, text: str) -> None:
    """Say once per command that a time without a timezone is read as UTC, as --now does (a window
    read in UTC when the user meant local time was hours off, unsaid)."""
    ctx = click.get_current_context(silent=True)
    told = ctx.meta.setdefault("bidder.told_naive", set()) if ctx is not None else _told_naive
    if (option, text) not in told:
        told.add((option, text))
        click.echo(f"note: {option} {text} has no timezone: read as UTC", err=True)


DURATION = DurationType()
INT_LIST = IntListType()
TOLERANCE = ToleranceType()


def _key(explicit: str | None, env: str, config_key: str) -> str | None:
    """An API key: `explicit`, else the environment variable `env`, else `config_key` in
    ~/.config/bidder/config.toml, else None. Keys are never logged or printed; they only travel in
    the Authorization header."""
    if explicit:
        return explicit
    from_env = os.environ.get(env)
    if from_env:
        return from_env
    path = user_config()
    if path is None:
        return None
    if path.exists() and not path.is_file():  # a folder: the key the user meant is not read
        raise click.ClickException(f"{path} is not a file; put api_key = \"...\" (and vast_api_key) in a "
                                   "file of that name, or set RUNPOD_API_KEY / VAST_API_KEY")
    if path.is_file():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8").removeprefix("\ufeff"))  # (Notepad's BOM)
        except UnicodeDecodeError:
            raise click.ClickException(f"cannot read {path}: it is not UTF-8 text; write it again as "
                                       "plain text (api_key = \"...\")") from None
        except tomllib.TOMLDecodeError as exc:  # (its message gives the place, never the text: no key in it)
            raise click.ClickException(f"cannot read {path}: {exc} (strings need quotes: api_key = \"...\")") from None
        except OSError as exc:
            raise click.ClickException(f"cannot read {path}: {exc}") from None
        # A misspelt name or a number would leave the key unset without a word (and a market unused).
        unknown = sorted(set(data) - set(_CONFIG_KEYS))
        if unknown:
            raise click.ClickException(f"{path}: unknown key {unknown[0]!r}; it holds "
                                       f"{' and '.join(f'{k} ({m})' for k, m in _CONFIG_KEYS.items())} only")
        key = data.get(config_key)
        if key is not None and not isinstance(key, str):
            raise click.ClickException(f"{path}: {config_key} must be text in quotes, e.g. "
                                       f"{config_key} = \"...\"")
        if key:
            _warn_if_others_can_read(path)
            return key
    return None


_warned_readable: set[Path] = set()  # said once per process, not once per key


def _warn_if_others_can_read(path: Path) -> None:
    """A key file other users can read is a key they can spend with (ssh refuses such a file; bidder
    says it, on stderr, so that cron mails it)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & 0o044 and path not in _warned_readable:
        _warned_readable.add(path)
        click.echo(f"warning: {path} holds an API key and other users can read it (mode {mode & 0o777:o}): "
                   f"chmod 600 {path}", err=True)


#: The keys of ~/.config/bidder/config.toml, with the market each is for.
_CONFIG_KEYS = {"api_key": "RunPod", "vast_api_key": "Vast"}


def resolve_api_key(explicit: str | None = None) -> str | None:
    """RunPod's API key: RUNPOD_API_KEY, else `api_key` in ~/.config/bidder/config.toml, else None."""
    return _key(explicit, "RUNPOD_API_KEY", "api_key")


def resolve_vast_api_key(explicit: str | None = None) -> str | None:
    """Vast's API key: VAST_API_KEY, else `vast_api_key` in ~/.config/bidder/config.toml, else None."""
    return _key(explicit, "VAST_API_KEY", "vast_api_key")


def checked_url_option(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """--api-url and --vast-url as the clients will take them (bidder.runpod.client.checked_url), refused
    as the command line is read: a command opens (or creates) its database before it makes a client."""
    from bidder.runpod.client import checked_url

    vast = param.name == "vast_url"
    try:  # the key, so that a URL holding it is never quoted; an unreadable config is the command's to say
        secret = resolve_vast_api_key() if vast else resolve_api_key()
    except click.ClickException:
        secret = None
    where = f" ({param.opts[0]} or {getattr(param, 'envvar', None)})"
    url = checked_url(value, what="Vast URL" if vast else "API URL",
                      example=DEFAULT_VAST_URL if vast else DEFAULT_API_URL,
                      env="VAST_API_KEY" if vast else "RUNPOD_API_KEY", key=param.name or "", secret=secret,
                      where=where)
    if vast:
        from bidder.vast.client import checked_vast_base

        checked_vast_base(url, where)
    return url


class UrlOption(click.Option):
    """An option whose environment variable set to "" is refused: click reads an empty variable as
    unset, so the key went to the real service's default URL, where the option given empty is refused.
    (Asked only when the option is not on the command line.)"""

    def resolve_envvar_value(self, ctx: click.Context) -> str | None:
        value = super().resolve_envvar_value(ctx)
        if value is None and isinstance(self.envvar, str) and os.environ.get(self.envvar) == "":
            raise click.BadParameter(f"{self.envvar} is set but empty: set it to a URL such as {self.default}, "
                                     "or unset it", ctx=ctx, param=self)
        return value


def vast_options(func: F) -> F:
    """--vast-url (or VAST_URL, as Vast's own CLI). The key comes from VAST_API_KEY or the config file."""
    return click.option(
        "--vast-url",
        envvar="VAST_URL",
        default=DEFAULT_VAST_URL,
        cls=UrlOption,
        show_default=True,
        callback=checked_url_option,
        help="Vast's API base URL, or an emulator's from `bidder sim serve` (env VAST_URL).",
    )(func)


#: `--cloud` values: RunPod's clouds, Vast's tiers, or any.
CLOUD_CHOICE = click.Choice(["secure", "community", "verified", "unverified", "any"], case_sensitive=False)

#: `--market` values: one market, or every one ("any").
MARKET_CHOICES = ("runpod", "vast", "any")


def check_market_cloud(market: str, cloud: str) -> None:
    """--cloud must be one of --market's (RunPod's clouds, Vast's tiers): else nothing could match, and
    the command said only that no quote matched (or to collect prices first)."""
    chosen, cloud = market.lower(), cloud.lower()
    if chosen != "any" and cloud != "any" and cloud.upper() not in MARKET_CLOUDS[chosen]:
        raise click.BadParameter(f"{cloud} is not a cloud of {chosen}; its clouds are "
                                 f"{', '.join(c.lower() for c in MARKET_CLOUDS[chosen])}", param_hint="--cloud")


def market_option(default: str, help: str) -> Callable[[F], F]:
    return click.option("--market", type=click.Choice(MARKET_CHOICES, case_sensitive=False), default=default,
                        show_default=True, help=help)


def api_options(func: F) -> F:
    """--api-url (or RUNPOD_API_URL). The key comes from RUNPOD_API_KEY or the config file only,
    so it never lands in shell history or a process list."""
    return click.option(
        "--api-url",
        envvar="RUNPOD_API_URL",
        default=DEFAULT_API_URL,
        cls=UrlOption,
        show_default=True,
        callback=checked_url_option,
        help="GraphQL endpoint: RunPod's, or an emulator's from `bidder sim serve` (env RUNPOD_API_URL).",
    )(func)


def db_option(func: F) -> F:
    return click.option(
        "--db",
        "db_path",
        envvar="BIDDER_DB",
        default=DEFAULT_DB,
        show_default=True,
        type=click.Path(dir_okay=False),
        callback=expand_db_path,
        help="SQLite file holding price history and the ledger (env BIDDER_DB).",
    )(func)


def expand_db_path(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """`~` expanded (cron does not expand it in `BIDDER_DB=~/bidder.db`: a folder named `~` was made in
    the current one, and the history split between two databases); an empty path refused."""
    if not value.strip():
        raise click.BadParameter("is empty: give the database file, e.g. data/bidder.db", param_hint="--db")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):  # (BIDDER_DB=$'x.db\n': every message split in two)
        raise click.BadParameter(f"{value!r} holds a control character (a line break?): give the database file's "
                                 "name on one line", param_hint="--db")
    if value.startswith("~"):
        expanded = os.path.expanduser(value)
        if expanded.startswith("~"):  # (no such user, or no home to expand it to)
            raise click.BadParameter(f"{value}: cannot tell whose home ~ is here; give the full path",
                                     param_hint="--db")
        return expanded
    return value


#: What to do when there is no ledger yet (the read-only commands' missing-database line).
NO_PODS_HINT = ("launch one with `bidder launch --gpu NAME --image IMAGE`, or add jobs to bidder.toml and run "
                "`bidder tick` from cron (see the README)")


def open_existing_store(db_path: str, nothing: str) -> Any:
    """The database at `db_path` for a command that only reads it (`report`, `jobs`, `pods`): a missing
    file is a ConfigError ("no bidder database at ...: `nothing`; ..."), never a new empty database
    (a mistyped --db would otherwise be created, with its folders, and shown as empty)."""
    from bidder.store import Store

    if not Path(db_path).exists():
        raise ConfigError(f"no bidder database at {db_path}: {nothing}; {NO_PODS_HINT} (or point --db / "
                          "BIDDER_DB at your database)", key="db")
    return Store.open(db_path, create=False)


def format_option(*choices: str, default: str = "table") -> Callable[[F], F]:
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(choices or ("table", "json", "csv")),
        default=default,
        show_default=True,
        help="Output format.",
    )


def emit_rows(rows: Sequence[dict[str, Any]], columns: Sequence[str], fmt: str,
              headers: Sequence[str] | None = None, decimals: Mapping[str, int] | None = None) -> None:
    """Print rows as an aligned table, a JSON list, or CSV with a header. A table shows floats with 3
    decimals (prices), or a column's own `decimals` where its values are rounded coarser (the table
    would else show digits the JSON does not have: 5.800 for 5.8)."""
    if fmt == "json":
        click.echo(json.dumps([{c: r.get(c) for c in columns} for r in rows], indent=2, default=str))
        return
    if fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        for r in rows:
            writer.writerow(["" if r.get(c) is None else r.get(c) for c in columns])
        return
    heads = list(headers or columns)
    cells = [[_cell(r.get(c), (decimals or {}).get(c, 3)) for c in columns] for r in rows]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(heads)]
    numeric = [all(_is_number(r.get(c)) for r in rows if r.get(c) is not None) for c in columns]
    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()
    click.echo(line(heads))
    click.echo("  ".join("-" * w for w in widths))
    for row in cells:
        click.echo(line(row))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _cell(value: Any, places: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{places}f}"
    return str(value)


def file_mode() -> int:
    """The mode a new file gets under the current umask (0644 under umask 022): what a file written
    through a temporary file (0600 from mkstemp) is given before it replaces its target."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_file(output: str, write: Callable[[IO[str]], int]) -> int:
    """Write `output` through `write(handle)`, returning what it returns. A regular file (or a new
    one) is written whole or not at all: a temporary file beside it, then renamed over it; a symlink's
    target is the file replaced, never the link. Anything else that is not a folder (a FIFO, a
    character device such as /dev/stdout) is written directly: replacing it would destroy it. A place
    that cannot be written is one ConfigError ("cannot write ...: reason"), never a traceback."""
    given = Path(output)
    try:
        mode = given.stat().st_mode  # through symlinks
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise ConfigError(f"cannot write {output}: {exc.strerror or exc}", key="output") from None
    if mode is not None and stat.S_ISDIR(mode):
        raise ConfigError(f"cannot write {output}: it is a folder", key="output")
    if mode is not None and not stat.S_ISREG(mode):
        try:  # opened by the name given: /dev/stdout's links end in a pipe no path names
            with given.open("w", newline="", encoding="utf-8") as handle:
                return write(handle)
        except OSError as exc:
            raise ConfigError(f"cannot write {output}: {exc.strerror or exc}", key="output") from None
    target = Path(os.path.realpath(given)) if given.is_symlink() else given
    folder = target.parent
    if not folder.is_dir():
        why = "is not a folder" if folder.exists() else "does not exist (create it first)"
        raise ConfigError(f"cannot write {output}: folder {folder} {why}", key="output")
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".part")
    except OSError as exc:
        raise ConfigError(f"cannot write {output}: {exc.strerror or exc} (in folder {folder})", key="output") from None
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
            count = write(handle)
        os.chmod(tmp, file_mode())
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ConfigError(f"cannot write {output}: {exc.strerror or exc}", key="output") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count
