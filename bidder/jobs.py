"""Managed jobs: the `bidder.toml` file that `bidder tick` runs from, and the one table of settings
that drives it, `bidder launch`'s options and the README.

    max_spend_per_hour = 5.0          # global settings first (all jobs together)

    [defaults]                        # applies to every job
    tolerance = "low"
    image = "runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04"

    [jobs.train]                      # one table per job; keys = launch/recommend long options, - as _
    gpu = ["NVIDIA RTX A6000"]
    hours = 20
    budget = 50

Every key is checked when the file is read: a wrong one is one `ConfigError` naming the key, the
table and the file. `SETTINGS` lists every key with its default and help; the README documents
each (a test keeps them in step). Nothing here talks to the API or reads the clock: a relative
`deadline = "3d"` becomes absolute through `JobConfig.job_spec(first_seen)`.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from bidder.errors import ConfigError
from bidder.models import (
    MARKET_CLOUDS,
    MAX_GPU_COUNT,
    MAX_HOURS,
    MAX_PRICE,
    PRICE_HISTORY_DAYS,
    TOLERANCE_PRESETS,
    JobSpec,
    Policy,
    parse_tolerance,
)
from bidder.store.ledger import LAUNCH_JOB
from bidder.units import DurationTooLong, NoUnit, YearTooEarly, is_naive, parse_duration, parse_timestamp

__all__ = [
    "COLLECT_KEYS",
    "DEFAULT_CONFIG",
    "GLOBAL_SETTINGS",
    "JOB_SETTINGS",
    "LEDGER_ID_PATTERN",
    "MAX_DISK_GB",
    "RUNPOD_ONLY",
    "SETTINGS",
    "Config",
    "JobConfig",
    "PodTemplate",
    "Setting",
    "collect_settings",
    "config_job_names",
    "config_pod_prefixes",
    "job_from_values",
    "load_config",
    "option_shown",
    "parse_config",
    "pod_attempt",
    "pod_name",
    "restart_overhead_error",
    "runpod_only",
]

DEFAULT_CONFIG = "bidder.toml"
_JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,47}$")
_PORT = re.compile(r"^\d{1,5}/(http|tcp|udp)$")
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# -- value parsers: each takes what TOML (or the command line) gave and returns the clean value, or
#    raises ValueError with the reason (the caller adds the key, table and file) ---------------------

def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ValueError("must be a number") from None
        else:
            raise ValueError("must be a number")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError("must be a finite number")
    return number


def _positive(value: Any) -> float:
    number = _number(value)
    if number <= 0:
        raise ValueError("must be greater than 0")
    return number


def _at_most(limit: float, what: str) -> Callable[[Any], float]:
    """A positive number no larger than `limit` (past it, a typo), as the command line's options take it."""
    def parse(value: Any) -> float:
        number = _positive(value)
        if number > limit:
            raise ValueError(f"must be at most {limit:,.0f} {what}")
        return number
    return parse


def _fraction(value: Any) -> float:
    number = _number(value)
    if not 0 <= number < 1:
        raise ValueError("must be a share from 0 up to (not including) 1, e.g. 0.15 for 15%")
    return number


def _whole(minimum: int, maximum: int | None = None) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("must be a whole number")
        if value < minimum:
            raise ValueError(f"must be >= {minimum}")
        if maximum is not None and value > maximum:
            raise ValueError(f"must be <= {maximum:,}")
        return value
    return parse


#: The largest disk or volume a job may ask for, in GB (100 TB): past it a figure is a typo, and
#: RunPod's GraphQL Int (32 bits) would refuse it after a create was already on its way.
MAX_DISK_GB = 100_000


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError("must be true or false")


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _no_control(text: str, what: str = "") -> str:
    """`text`, refused when it holds a control character (a line break from a pasted file, a tab): it
    would travel into the create request as it is."""
    bad = _CONTROL.search(text)
    if bad:
        name = "a line break" if bad.group() in "\r\n" else f"a control character ({bad.group()!r})"
        raise ValueError(f"{what}holds {name} at character {bad.start() + 1}: write it on one line, without "
                         "control characters")
    return text


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return _no_control(value).strip()


def _text_list(value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise ValueError('must be a string or a list of strings, e.g. ["NVIDIA RTX A6000"]')
    return tuple(_text(item) for item in items)


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError("must be a duration such as 90s, 10m, 2h or 3d")
    return parse_duration(value)


def _positive_duration(value: Any) -> timedelta:
    span = _duration(value)
    if span.total_seconds() <= 0:
        raise ValueError("must be longer than 0")
    return span


def _cloud(value: Any) -> str:
    text = _text(value).upper()
    text = "ANY" if text == "ALL" else text
    if text not in ("ANY", "SECURE", "COMMUNITY", "VERIFIED", "UNVERIFIED"):
        raise ValueError("must be any, secure or community (RunPod), verified or unverified (Vast)")
    return text


def _reliability(value: Any) -> float:
    number = _number(value)
    if not 0 <= number <= 1:
        raise ValueError("must be a reliability score from 0 to 1, e.g. 0.95")
    return number


def _offers_days(value: Any) -> float:
    from bidder.collector import MIN_OFFERS_DAYS

    number = _number(value)
    if number != 0 and not MIN_OFFERS_DAYS <= number <= 3660:
        raise ValueError(f"must be days from {MIN_OFFERS_DAYS:g} (decisions read a week of offers) to 3660, "
                         "or 0 to keep every offer")
    return number


def _prices_days(value: Any) -> float:
    number = _number(value)
    if number != 0 and not PRICE_HISTORY_DAYS + 1 <= number <= 36600:
        raise ValueError(f"must be days from {PRICE_HISTORY_DAYS + 1:g} (decisions read {PRICE_HISTORY_DAYS:g} days "
                         "of prices) to 36600, or 0 to keep all of it")
    return number


def _tolerance(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"must be a preset ({', '.join(TOLERANCE_PRESETS)}) or interruptions per day")
    return parse_tolerance(value)


_NAIVE_DEADLINE = ("no timezone: write it with one, e.g. {when}Z for UTC or {when}-05:00 "
                   "for US Eastern standard time")


def _deadline(value: Any) -> timedelta | datetime:
    """A duration after the first tick that saw the job ("3d") or an absolute time (ISO 8601 / TOML datetime)
    with its timezone: a time without one is refused, since cron servers and their users rarely share
    a timezone and a deadline read hours off is money (an early one buys on-demand, a late one misses)."""
    if isinstance(value, datetime) and value.tzinfo is None:
        raise ValueError(_NAIVE_DEADLINE.format(when=value.isoformat()))
    if isinstance(value, datetime):
        return value.astimezone(UTC)  # as a quoted time is read: every later line says it in UTC
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str) and re.match(r"^\s*\d{4}-\d{2}-\d{2}", value):
        if is_naive(value):
            when = value.strip()
            if not re.search(r"\d[T ]\d", when):  # a date alone (even "2026-01-03Z"): from its midnight
                when = f"{when[:10]}T00:00:00"
            raise ValueError(_NAIVE_DEADLINE.format(when=when))
        try:
            return parse_timestamp(value)
        except YearTooEarly:
            raise
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO 8601 time such as 2026-03-01T12:00:00Z") from None
    try:
        return _positive_duration(value)
    except (NoUnit, DurationTooLong):  # (a duration, well-formed: "must be a duration or a time" misled)
        raise
    except ValueError:
        raise ValueError("must be a duration from the first tick that sees the job (e.g. 3d) or a time "
                         "(e.g. 2026-03-01T12:00:00Z)") from None


def _ports(value: Any) -> str:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise ValueError('must be a string such as "8888/http,22/tcp"')
    ports = [str(p).strip() for p in items if str(p).strip()]
    if not ports:
        raise ValueError('must name at least one port, e.g. "8888/http,22/tcp"')
    for port in ports:
        if not _PORT.match(port) or not 0 < int(port.split("/")[0]) < 65536:
            raise ValueError(f"{port!r} is not PORT/http, PORT/tcp or PORT/udp (e.g. 8888/http)")
    return ",".join(ports)


def _env(value: Any) -> tuple[tuple[str, str], ...]:
    if isinstance(value, Mapping):
        pairs = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, (list, tuple)):
        pairs = []
        for item in value:
            if not isinstance(item, str) or "=" not in item:
                raise ValueError(f"{item!r} is not KEY=VALUE")
            key, _, val = item.partition("=")
            pairs.append((key.strip(), val))
    else:
        raise ValueError('must be a table {KEY = "value"} or a list of "KEY=VALUE" strings')
    out: dict[str, str] = {}
    for key, val in pairs:
        if not _ENV_KEY.match(key):
            raise ValueError(f"{key!r} is not a valid environment variable name")
        if isinstance(val, bool) or not isinstance(val, (str, int, float)):
            raise ValueError(f"the value of {key} must be a string or a number")
        if key in out:  # every one was sent, and the pod kept one of them
            raise ValueError(f"{key} is given twice ({key}={out[key]!r}, {key}={str(val)!r}): give it once")
        out[key] = _no_control(str(val), f"the value of {key} ")
    return tuple(out.items())


def _speed(value: Any) -> tuple[tuple[str, float], ...]:
    if not isinstance(value, Mapping) or not value:
        raise ValueError('must be a table of GPU type = speed factor, e.g. {"NVIDIA H100 80GB HBM3" = 3.0}')
    out = []
    for gpu, factor in value.items():
        try:
            out.append((str(gpu), _positive(factor)))
        except ValueError as exc:
            raise ValueError(f"speed of {gpu!r} {exc}") from None
    return tuple(out)


def _choice(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = _text(value).lower()
        if text not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return text
    return parse


def _name_prefix(value: Any) -> str:
    text = _text(value)
    if not _JOB_NAME.match(text):
        raise ValueError("must be letters, digits, - and _ (at most 48), starting with a letter or digit")
    return text


# -- the settings table ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Setting:
    """One key of bidder.toml. `scope` "job" keys go in [defaults] and [jobs.NAME] (and are launch or
    recommend options); "global" keys sit at the top of the file, before any table."""

    name: str
    default: Any
    help: str
    parse: Callable[[Any], Any] = field(repr=False, compare=False)
    scope: str = "job"


JOB_SETTINGS: tuple[Setting, ...] = (
    # What the job needs (JobSpec).
    Setting("gpu", (), "Acceptable GPU types: an id or name as `bidder prices` shows it (RunPod's \"NVIDIA RTX A6000\", "
            "Vast's \"RTX A6000\") or a part of one (\"A6000\"); or use min_vram.",
            _text_list),
    Setting("min_vram", None, "Any GPU type with at least this many GB of VRAM (instead of gpu).",
            _whole(1)),
    Setting("gpus", 1, "GPUs per pod (bids and prices are per GPU; a pod costs bid x gpus per hour).",
            _whole(1, MAX_GPU_COUNT)),
    Setting("cloud", "any", "any, secure or community (RunPod's clouds), verified or unverified (Vast's tiers).",
            _cloud),
    Setting("market", "any", "Where the job runs: any (the cheapest plan over the markets with history), "
            "runpod or vast. A job giving ports, template_id, network_volume or data_center, which only RunPod "
            "honours, is planned on RunPod alone under any; under vast one given in the job's own table is "
            "refused, one from [defaults] left out (the tick says so).", _choice("any", "runpod", "vast")),
    Setting("hours", None, "Work to do, in running hours of one pod at speed 1.0; the job ends when "
            "observed uptime, less what each restart lost (restart_overhead, or the run it ended if shorter), "
            "reaches it.", _at_most(MAX_HOURS, "hours")),
    Setting("keep_running", False, "A service with no end: runs until `bidder jobs stop NAME`.", _bool),
    Setting("deadline", None, "Finish by then: a duration from the first tick that saw the job (3d; waiting "
            "does not move it) or a time with its timezone (2026-03-01T12:00:00Z, or -05:00 for an offset). "
            "Needs hours.", _deadline),
    Setting("restart_overhead", "10m", "Work lost at each restart, an interruption or a stop or move of "
            "bidder's own (time to resume plus work since the last checkpoint). One given longer than hours, or "
            "than a deadline given as a duration, is refused.", _duration),
    Setting("speed", None, "Speed of GPU types relative to the reference, by GPU type id written in full, e.g. "
            "{\"NVIDIA H100 80GB HBM3\" = 3.0}; an id the price history does not know stops the tick.", _speed),
    # How to pay (Policy).
    Setting("max_price", None, "The most per GPU-hour, bid or on-demand (USD). No bid is ever above it.",
            _at_most(MAX_PRICE, "USD per GPU-hour")),
    Setting("budget", None, "The most the job may spend in total (USD): a running pod is stopped before "
            "spend plus its next hour (or the work left, if less) would pass it.", _positive),
    Setting("tolerance", "medium", "Interruptions per day accepted: none (on-demand only), low (0.5), "
            "medium (2), high (6) or a number up to 1,440 (one a minute).", _tolerance),
    Setting("min_savings", 0.15, "Spot must beat on-demand by this share, after restart losses, where the rates "
            "decide (services, jobs without a deadline); a plan (hours and a deadline) weighs spot against on-demand "
            "by its expected cost, interruptions and restarts included.", _fraction),
    Setting("min_wait_savings", 0.05, "Without a deadline, a wait for the spot floor to fall under a bid must save "
            "this share of what can start now, and so must a job with hours waiting for a floor already under its bid "
            "to settle (a service's wait to settle need not). With a deadline the slack prices a wait instead, and "
            "this applies only when no on-demand under the policy can fall back, to a wait for the floor to fall: a "
            "wait for the floor to settle need not save it (it buys fewer interruptions, which the tolerance "
            "counts).", _fraction),
    Setting("allow_spot", True, "false: never rent spot pods.", _bool),
    Setting("allow_on_demand", True, "false: never rent on-demand pods.", _bool),
    # The pod (PodSpec template).
    Setting("image", None, "Docker image of the pod (required unless template_id gives one).", _text),
    Setting("name", None, "Pod name prefix (default: bidder-JOB), the job's own: not another job's, nor bidder-launch "
            "(`bidder launch`'s); pods are named PREFIX-ATTEMPT-LEDGERID (the database's id).", _name_prefix),
    Setting("disk", 40, "Container disk in GB (RunPod: wiped when a pod stops; Vast: the instance's disk with volume, "
            "kept and billed while it is stopped).", _whole(1, MAX_DISK_GB)),
    Setting("volume", 0, "Volume disk in GB at mount (kept while the pod is stopped; stays on its machine; Vast adds it "
            "to the instance's disk).",
            _whole(0, MAX_DISK_GB)),
    Setting("mount", "/workspace", "Where the volume is mounted.", _text),
    Setting("ports", None, "Ports to expose, e.g. \"8888/http,22/tcp\" (RunPod only: see market).", _ports),
    Setting("env", (), "Environment: a table {KEY = \"value\"} or a list of \"KEY=VALUE\" (each KEY once).", _env),
    Setting("template_id", None, "A RunPod template id (RunPod only: see market).", _text),
    Setting("network_volume", None, "A network volume id: data that follows the job to any machine (RunPod only: see market).", _text),
    Setting("data_center", None, "Only this data center (e.g. US-TX-3; RunPod only: see market).", _text),
    Setting("docker_args", None, "Docker arguments (command) of the container.", _text),
    # What the executor does.
    Setting("on_finish", "stop", "When the job is done: stop (keep the pod and its disk: RunPod bills its volume, Vast "
            "the whole disk, while stopped) or terminate (delete the pod and its disk).", _choice("stop", "terminate")),
    Setting("max_attempts", 4, "How many alternatives a launch tries when one has no capacity.", _whole(1)),
)

GLOBAL_SETTINGS: tuple[Setting, ...] = (
    Setting("max_spend_per_hour", None, "USD per hour that all running managed pods together may cost (with "
            "the storage Vast bills for the instances they keep); a launch or resume that would pass it waits.",
            _positive, "global"),
    Setting("collect_interval", "5m", "A tick collects prices when the newest snapshot is older than this.",
            _positive_duration, "global"),
    Setting("spot_recheck", "1d", "After RunPod refused spot (SpotUnsupported), offer spot again only after "
            "this long and when a fresh snapshot shows a spot price.", _positive_duration, "global"),
    Setting("vast_verified_only", True, "Collect Vast prices from verified machines only (false: unverified "
            "offers form the UNVERIFIED tier).", _bool, "global"),
    Setting("vast_min_reliability", 0.95, "Collect Vast prices only from offers with at least this reliability "
            "score (0 to 1).", _reliability, "global"),
    Setting("vast_offers_days", 8, "Days of Vast offers kept in the database (every offer of every collection, "
            "about 120 MB a day at a 5-minute cycle); older ones are deleted as each collection is stored. At "
            "least 7 (decisions read a machine's pauses over the last week); 0 keeps every offer.",
            _offers_days, "global"),
    Setting("prices_days", 0, "Days of price history kept in the database (about 10 MB a day for RunPod and "
            "Vast at a 5-minute cycle); older prices and collector cycles are deleted as each collection is "
            "stored. At least 31 (decisions read the last 30 days); 0 keeps all of it.", _prices_days, "global"),
)

SETTINGS: tuple[Setting, ...] = JOB_SETTINGS + GLOBAL_SETTINGS
_JOB_BY_NAME = {s.name: s for s in JOB_SETTINGS}
_GLOBAL_BY_NAME = {s.name: s for s in GLOBAL_SETTINGS}
# Keys where naming one in a job table overrides the others from [defaults].
_EXCLUSIVE = (("gpu", "min_vram"), ("hours", "keep_running"))


# -- the loaded shapes -------------------------------------------------------------------------------

@dataclass(frozen=True)
class PodTemplate:
    """Everything of a pod but its GPU type, cloud and count (the decision picks those) and its
    name (the executor numbers attempts)."""

    image: str | None = None
    name_prefix: str = "bidder"
    disk: int = 40
    volume: int = 0
    mount: str = "/workspace"
    ports: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    template_id: str | None = None
    network_volume: str | None = None
    data_center: str | None = None
    docker_args: str | None = None


#: The template's settings only RunPod honours: a Vast create sends none of them (README, "Acting on
#: Vast"), so a job giving one and open to any market is planned on RunPod alone (launch and tick).
RUNPOD_ONLY: tuple[str, ...] = ("template_id", "network_volume", "ports", "data_center")


def runpod_only(template: PodTemplate) -> tuple[str, ...]:
    """The RUNPOD_ONLY settings `template` gives, in that order."""
    return tuple(key for key in RUNPOD_ONLY if getattr(template, key) is not None)


@dataclass(frozen=True)
class JobConfig:
    """One managed job. `job.deadline` is None here: use `job_spec(first_seen)` for the absolute one."""

    name: str
    job: JobSpec
    policy: Policy
    template: PodTemplate
    deadline: timedelta | datetime | None = None
    on_finish: str = "stop"
    max_attempts: int = 4
    values: tuple[tuple[str, Any], ...] = field(default=(), compare=False, repr=False)

    def job_spec(self, first_seen: datetime | None) -> JobSpec:
        """The JobSpec with an absolute deadline: `first_seen` (when the job's window opened: the first
        tick that saw it, or a launch's now) + a relative one (None: not seen yet, so it stays open)."""
        if isinstance(self.deadline, datetime):
            return replace(self.job, deadline=self.deadline)
        if isinstance(self.deadline, timedelta) and first_seen is not None:
            return replace(self.job, deadline=first_seen + self.deadline)
        return self.job

    def value(self, key: str) -> Any:
        """The cleaned value of one setting (its default when not given)."""
        return dict(self.values).get(key, _JOB_BY_NAME[key].default)


@dataclass(frozen=True)
class Config:
    """A loaded bidder.toml."""

    path: str | None
    jobs: dict[str, JobConfig]
    max_spend_per_hour: float | None = None
    collect_interval: timedelta = timedelta(minutes=5)
    spot_recheck: timedelta = timedelta(days=1)
    vast_verified_only: bool = True
    vast_min_reliability: float = 0.95
    vast_offers_days: float = 8.0
    prices_days: float = 0.0

    def job(self, name: str) -> JobConfig:
        if name not in self.jobs:
            known = ", ".join(self.jobs) or "none"
            raise ConfigError(f"no job {name!r} in {self.path or 'the config'} (jobs: {known})", key=name,
                              path=self.path)
        return self.jobs[name]


#: A ledger id (`bidder.executor.LEDGER_ID`): a letter, then letters and digits, so a name carrying one
#: never reads as an attempt number.
LEDGER_ID_PATTERN = r"[a-z][a-z0-9]{3,15}"


def pod_name(prefix: str, attempt: int, ledger_id: str | None = None) -> str:
    """The deterministic name of a job's `attempt`-th create: how a lost create is found again.
    With `ledger_id` (the database's own, `Executor.ledger_id`), PREFIX-ATTEMPT-LEDGERID: two bidder
    databases on one account never name two pods alike. Without it, the older PREFIX-ATTEMPT."""
    return f"{prefix}-{attempt}" + (f"-{ledger_id}" if ledger_id else "")


def pod_attempt(prefix: str, name: str | None) -> tuple[int, str | None] | None:
    """(attempt, ledger id or None) when `name` is one of `prefix`'s pod names (`pod_name`, either
    form, any ledger's), else None."""
    match = re.fullmatch(rf"{re.escape(prefix)}-(\d+)(?:-({LEDGER_ID_PATTERN}))?", name or "")
    return (int(match.group(1)), match.group(2)) if match else None


# -- loading -----------------------------------------------------------------------------------------

def _fail(message: str, key: str | None, path: str | None) -> ConfigError:
    return ConfigError(f"{path}: {message}" if path else message, key=key, path=path)


def _named(key: str, where: str) -> str:
    """A key as the user wrote it: bidder.toml's name, or launch's option (`where` "option")."""
    return f"--{key.replace('_', '-')}" if where == "option" else key


def _lead(where: str) -> str:
    """The start of a message about `where` ("[jobs.train] ", or "bidder launch " for its options)."""
    return "bidder launch " if where == "option" else f"{where} "


def _clean(setting: Setting, raw: Any, where: str, path: str | None) -> Any:
    try:
        return setting.parse(raw)
    except ValueError as exc:
        if where == "option":  # launch's command line: name the option as the user typed it
            shown = " ".join(raw) if isinstance(raw, (list, tuple)) else raw
            shown = repr(shown) if isinstance(shown, str) and _CONTROL.search(shown) else shown  # (one line)
            raise _fail(f"--{setting.name.replace('_', '-')} {shown}: {exc}", setting.name, path) from None
        shown = (raw.isoformat() if isinstance(raw, (date, time))  # TOML's dates and booleans as written
                 else str(raw).lower() if isinstance(raw, bool) else repr(raw))
        raise _fail(f"{where} {setting.name} = {shown}: {exc}", setting.name, path) from None


def _check_keys(table: Mapping[str, Any], where: str, path: str | None) -> None:
    for key in table:
        if key in _JOB_BY_NAME:
            continue
        hint = key.replace("-", "_")
        if hint in _JOB_BY_NAME:
            raise _fail(f"{where} unknown key {key!r}: write it {hint!r} (options' - becomes _)", key, path)
        if key in _GLOBAL_BY_NAME:
            raise _fail(f"{where} {key!r} is a global setting: put it at the top of the file, before any table",
                        key, path)
        known = ", ".join(sorted(_JOB_BY_NAME))
        raise _fail(f"{where} unknown key {key!r}; known keys: {known}", key, path)


def job_from_values(name: str, values: Mapping[str, Any], *, defaults: Mapping[str, Any] | None = None,
                    path: str | None = None, where: str | None = None) -> JobConfig:
    """Build a JobConfig from raw values (a [jobs.NAME] table, or launch's options) over `defaults`
    (a [defaults] table). Raises ConfigError naming the key (and the file) on the first bad one."""
    where = where or f"[jobs.{name}]"
    if not _JOB_NAME.match(name):
        raise _fail(f"{where}: job name {name!r} must be letters, digits, - and _ (at most 48), starting with "
                    "a letter or digit", name, path)
    _check_keys(values, where, path)
    merged: dict[str, tuple[Any, str]] = {}
    for key, raw in (defaults or {}).items():
        merged[key] = (raw, "[defaults]")
    for group in _EXCLUSIVE:
        # keep_running = false (its default, written out) is no service beside hours; a value that is no
        # boolean at all is left to its own check ("must be true or false"), not called "both".
        given = [k for k in group if k in values and (k != "keep_running" or values[k] is True)]
        if len(given) > 1:
            raise _fail(f"{_lead(where)}sets both {_named(given[0], where)} and {_named(given[1], where)}: give one "
                        "of them", given[1], path)
        if given:
            for other in group:
                merged.pop(other, None)
    for key, raw in values.items():
        merged[key] = (raw, where)
    clean: dict[str, Any] = {}
    for key, (raw, origin) in merged.items():
        if raw is None:
            continue
        clean[key] = _clean(_JOB_BY_NAME[key], raw, origin, path)
    for group in _EXCLUSIVE:
        given = [k for k in group if k in clean and clean[k] not in (False, ())]
        if len(given) > 1:
            raise _fail(f"{where} gets both {given[0]} and {given[1]} (from [defaults]): give one of them",
                        given[1], path)
    get = lambda key: clean.get(key, _parsed_default(key))  # noqa: E731
    if get("deadline") is not None and get("hours") is None:
        raise _fail(f"{_lead(where)}{_named('deadline', where)} needs {_named('hours', where)} (the work to finish "
                    "by then)", "deadline", path)
    if get("hours") is None and "keep_running" in clean and not clean["keep_running"]:
        raise _fail(f"{where} keep_running = false needs hours (the work to do)", "keep_running", path)
    if get("image") is None and get("template_id") is None:
        raise _fail(f"{_lead(where)}needs {_named('image', where)} (a Docker image, e.g. runpod/pytorch:latest) or "
                    f"{_named('template_id', where)}", "image", path)
    if not get("allow_spot") and not get("allow_on_demand"):
        raise _fail(f"{where} allows neither spot nor on-demand pods: set one of them to true",
                    "allow_on_demand", path)
    if get("tolerance") == 0 and not get("allow_on_demand"):
        raise _fail(f"{where} tolerance none means on-demand only, but allow_on_demand is false",
                    "tolerance", path)

    def shown(key: str) -> str:  # a value as the user gave it, and where from
        if where == "option":
            return option_shown(key, get(key))
        raw, origin = merged[key]
        return f"{key} = {raw!r}" + ("" if origin == where else f" (from {origin})")

    # A cloud of the other market: the job waited at every tick for quotes that never come, exit 0.
    market_clouds = MARKET_CLOUDS.get(str(get("market") or "any").lower())
    if market_clouds is not None and get("cloud") != "ANY" and get("cloud") not in market_clouds:
        raise _fail(f"{where} {shown('cloud')} is not a cloud of {shown('market')}: its clouds are "
                    f"{', '.join(c.lower() for c in market_clouds)} (or any)", "cloud", path)
    # A Vast job cannot honour RunPod's settings: refused where the job gives one itself; one it only
    # inherits from [defaults] (written for its RunPod siblings) is left out, and the tick says so.
    own = [key for key in RUNPOD_ONLY if key in clean and merged[key][1] == where]
    if own and get("market") == "vast":
        it = "it" if len(own) == 1 else "them"
        raise _fail(f"{where} {', '.join(shown(k) for k in own)} {'is' if len(own) == 1 else 'are'} RunPod's, "
                    f"but {shown('market')}: a Vast instance cannot honour {it}; leave {it} out or set "
                    'market = "runpod"', own[0], path)
    # Only a restart_overhead the user gave: the default 10m may well exceed a few minutes' work (a
    # quick job whose pod takes longer to start than to run), and was nobody's mistake.
    overhead = "restart_overhead" in clean and restart_overhead_error(clean["restart_overhead"], get("hours"),
                                                                      get("deadline"), shown)
    if overhead:
        raise _fail(f"{_lead(where)}{overhead}", "restart_overhead", path)
    job = JobSpec(gpu_types=get("gpu"), min_vram_gb=get("min_vram"), gpu_count=get("gpus"), cloud=get("cloud"),
                  work_hours=get("hours"), keep_running=get("hours") is None,
                  restart_overhead_hours=get("restart_overhead").total_seconds() / 3600,
                  speed_factors=get("speed") or (), market=get("market"),
                  disk_gb=float(get("disk") + get("volume")))  # (a Vast instance's disk: both, as it is created)
    policy = Policy(max_price=get("max_price"), budget=get("budget"), tolerance=get("tolerance"),
                    min_savings=get("min_savings"), min_wait_savings=get("min_wait_savings"),
                    allow_spot=get("allow_spot"),
                    allow_on_demand=get("allow_on_demand"))
    template = PodTemplate(image=get("image"), name_prefix=get("name") or f"bidder-{name}", disk=get("disk"),
                           volume=get("volume"), mount=get("mount"), ports=get("ports"), env=get("env"),
                           template_id=get("template_id"), network_volume=get("network_volume"),
                           data_center=get("data_center"), docker_args=get("docker_args"))
    return JobConfig(name=name, job=job, policy=policy, template=template, deadline=get("deadline"),
                     on_finish=get("on_finish"), max_attempts=get("max_attempts"),
                     values=tuple(sorted(clean.items())))


def restart_overhead_error(overhead: timedelta, hours: float | None, deadline: Any,
                           shown: Callable[[str], str]) -> str | None:
    """Why a job's restart overhead cannot be what was meant, naming both values as `shown(key)`
    writes them: longer than its work (a restart would lose more than the whole job) or than its
    deadline's window (one restart would miss the deadline). None when it fits. A deadline given as a
    time has its window from the first tick that sees the job, unknown here: not checked."""
    if hours is not None and overhead.total_seconds() > hours * 3600:
        other, why = "hours", "the work: a restart would lose more than the whole job"
    elif isinstance(deadline, timedelta) and overhead > deadline:
        other, why = "deadline", "the deadline's window: one restart would miss the deadline"
    else:
        return None
    return (f"{shown('restart_overhead')} is longer than {shown(other)}, {why}; give the time a restart "
            "really loses (resume time plus the work since the last checkpoint)")


def option_shown(key: str, value: Any) -> str:
    """A launch or recommend option as typed: `--restart-overhead 10h`, `--hours 2`."""
    if isinstance(value, timedelta):  # in the largest unit that writes it exactly (90m, not 1.5h)
        seconds = int(value.total_seconds())
        unit, size = next((u, n) for u, n in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)) if seconds % n == 0)
        value = f"{seconds // size}{unit}"
    elif isinstance(value, float):
        value = f"{value:g}"
    return f"--{key.replace('_', '-')} {value}"


def _parsed_default(key: str) -> Any:
    setting = _JOB_BY_NAME.get(key) or _GLOBAL_BY_NAME[key]
    # None and () are "not given" (no GPU list, no env): everything else is written as a user would.
    return setting.default if setting.default in (None, ()) else setting.parse(setting.default)


def _check_complete(name: str, values: Mapping[str, Any], path: str | None) -> None:
    """A managed job must say when it ends and what it runs on (else it would run forever, or on
    the cheapest GPU of all). `bidder launch` may leave both open: it starts one pod, once."""
    if values.get("hours") is None and not values.get("keep_running"):
        raise _fail(f"[jobs.{name}] has neither hours (the work to do) nor keep_running = true (a service): "
                    "give one of them", "hours", path)
    if not values.get("gpu") and values.get("min_vram") is None:
        raise _fail(f'[jobs.{name}] has neither gpu (GPU types, e.g. ["RTX A6000"]) nor min_vram (GB): '
                    "give one of them", "gpu", path)


def _check_pod_names(jobs: Mapping[str, JobConfig], tables: Mapping[str, Any], defaults: Mapping[str, Any],
                     path: str | None) -> None:
    """Every job names its pods with a prefix of its own: a create whose answer was lost is found again
    by its name (`pod_name`), so a prefix shared with another job, or with `bidder launch`'s, let one
    adopt the other's pod (and a tick stop a launched pod when the job finished). Distinct prefixes
    never share a name, even one a prefix of the other (`a`, `a-1`): a name ends in -ATTEMPT, digits,
    then perhaps -LEDGERID, which starts with a letter."""
    def origin(name: str) -> str:  # where the job's prefix came from, as the user wrote it
        if "name" in tables[name]:
            return f"name = {tables[name]['name']!r}"
        return f"name = {defaults['name']!r} from [defaults]" if "name" in defaults else "by default bidder-JOB"

    owners: dict[str, str] = {}
    for name, jc in jobs.items():
        prefix = jc.template.name_prefix
        if prefix == LAUNCH_JOB:
            raise _fail(f"[jobs.{name}] names its pods {prefix}-ATTEMPT-LEDGERID ({origin(name)}), as `bidder launch` "
                        "names its own: a create whose answer was lost could adopt a launched pod as the job's; give "
                        f'[jobs.{name}] a name of its own, e.g. name = "job-{name}"', "name", path)
        other = owners.setdefault(prefix, name)
        if other != name:
            shared = "name" not in tables[other] and "name" not in tables[name]  # (both from [defaults])
            fix = ("take name out of [defaults]" if shared else "give each job a name = \"...\" of its own") + \
                  " (left out, a job's pods are named bidder-JOB-ATTEMPT-LEDGERID)"
            raise _fail(f"[jobs.{other}] ({origin(other)}) and [jobs.{name}] ({origin(name)}) both name their pods "
                        f"{prefix}-ATTEMPT-LEDGERID: a create whose answer was lost could adopt the other job's "
                        f"pod; {fix}", "name", path)


def parse_config(data: Mapping[str, Any], path: str | None = None) -> Config:
    """A Config from a parsed TOML document (see the module docstring for its shape)."""
    globals_: dict[str, Any] = {}
    defaults: Mapping[str, Any] = {}
    jobs_table: Mapping[str, Any] = {}
    for key, value in data.items():
        if key == "defaults":
            if not isinstance(value, Mapping):
                raise _fail("defaults must be a table: write [defaults]", key, path)
            defaults = value
        elif key == "jobs":
            if not isinstance(value, Mapping):
                raise _fail("jobs must hold tables: write [jobs.NAME]", key, path)
            jobs_table = value
        elif key in _GLOBAL_BY_NAME:
            globals_[key] = _clean(_GLOBAL_BY_NAME[key], value, "global", path)
        elif key in _JOB_BY_NAME:
            raise _fail(f"{key!r} is a job setting: put it under [defaults] or [jobs.NAME]", key, path)
        else:
            known = ", ".join(["defaults", "jobs", *_GLOBAL_BY_NAME])
            raise _fail(f"unknown top-level key {key!r}; known: {known}", key, path)
    _check_keys(defaults, "[defaults]", path)
    for key, raw in defaults.items():  # on their own: one every job overrides was never read, nor checked
        _clean(_JOB_BY_NAME[key], raw, "[defaults]", path)
    jobs: dict[str, JobConfig] = {}
    for name, table in jobs_table.items():
        if not isinstance(table, Mapping):
            raise _fail(f"jobs.{name} must be a table: write [jobs.{name}]", name, path)
        if name == LAUNCH_JOB:  # the ledger's row of `bidder launch`: a tick would take it for a launch
            raise _fail(f"[jobs.{name}]: {name!r} is the name `bidder launch` gives its pods; give the job "
                        "another name", name, path)
        jobs[name] = job_from_values(name, table, defaults=defaults, path=path)
        _check_complete(name, {**defaults, **table}, path)
    _check_pod_names(jobs, jobs_table, defaults, path)
    get = lambda key: globals_.get(key, _parsed_default(key))  # noqa: E731
    return Config(path=path, jobs=jobs, max_spend_per_hour=get("max_spend_per_hour"),
                  collect_interval=get("collect_interval"), spot_recheck=get("spot_recheck"),
                  vast_verified_only=get("vast_verified_only"), vast_min_reliability=get("vast_min_reliability"),
                  vast_offers_days=float(get("vast_offers_days")), prices_days=float(get("prices_days")))


#: The global keys `bidder collect` reads from bidder.toml.
COLLECT_KEYS = ("vast_verified_only", "vast_min_reliability", "vast_offers_days", "prices_days")


def _read_toml(path: str | Path) -> dict[str, Any] | None:
    """bidder.toml parsed, unchecked; None when the file does not exist."""
    text_path = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {text_path}: {exc.strerror}", path=text_path) from None
    try:
        return tomllib.loads(raw.decode("utf-8-sig"))  # (a BOM: Notepad writes one)
    except UnicodeDecodeError:  # (the codec's "can't decode byte 0xda in position 31" said nothing useful)
        raise ConfigError(f"{text_path}: not UTF-8 text: is it bidder.toml?", path=text_path) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{text_path}: not valid TOML: {exc}", path=text_path) from None


def collect_settings(path: str | Path = DEFAULT_CONFIG) -> dict[str, Any]:
    """`vast_verified_only`, `vast_min_reliability`, `vast_offers_days` and `prices_days` from bidder.toml (defaults when the file does
    not exist), validated; the rest of the file is not read, so a job's typo never stops a collector."""
    text_path = str(path)
    values = {key: _parsed_default(key) for key in COLLECT_KEYS}
    data = _read_toml(path)
    if data is None:
        return values
    for key in COLLECT_KEYS:
        if key in data:
            values[key] = _clean(_GLOBAL_BY_NAME[key], data[key], "global", text_path)
    return values


def config_job_names(path: str | Path = DEFAULT_CONFIG) -> tuple[str, ...]:
    """The names of bidder.toml's [jobs.NAME] tables (none when the file does not exist). The jobs
    themselves are not checked: a typo in one stops the tick, never a `bidder launch` beside it."""
    jobs = (_read_toml(path) or {}).get("jobs")
    return tuple(jobs) if isinstance(jobs, Mapping) else ()


def config_pod_prefixes(path: str | Path = DEFAULT_CONFIG) -> dict[str, str]:
    """Each pod-name prefix of bidder.toml's jobs (their `name`, else [defaults]', else bidder-JOB) with
    its job, read as `config_job_names` reads the names: unchecked (a value that is no text is left out,
    for the tick to refuse)."""
    data = _read_toml(path) or {}
    jobs, defaults = data.get("jobs"), data.get("defaults")
    defaults = defaults if isinstance(defaults, Mapping) else {}
    prefixes: dict[str, str] = {}
    for job, table in (jobs.items() if isinstance(jobs, Mapping) else ()):
        table = table if isinstance(table, Mapping) else {}
        prefix = table["name"] if "name" in table else defaults.get("name", f"bidder-{job}")
        if isinstance(prefix, str):
            prefixes.setdefault(prefix.strip(), job)
    return prefixes


def _cwd() -> str:
    try:
        return os.getcwd()
    except OSError:  # (a folder removed under the process)
        return "the current folder"


def load_config(path: str | Path = DEFAULT_CONFIG) -> Config:
    """Read and validate bidder.toml. Raises ConfigError (naming the key and the file) on any problem."""
    text_path = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        where = "" if Path(path).is_absolute() else f" in {_cwd()}"  # (cron runs in $HOME, or /)
        raise ConfigError(f"config file {text_path} not found{where}: create it (see the README's bidder.toml "
                          "example) or pass --config PATH", path=text_path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {text_path}: {exc.strerror}", path=text_path) from None
    try:
        data = tomllib.loads(raw.decode("utf-8-sig"))  # (a BOM: Notepad writes one)
    except UnicodeDecodeError:  # (the codec's "can't decode byte 0xda in position 31" said nothing useful)
        raise ConfigError(f"{text_path}: not UTF-8 text: is it bidder.toml?", path=text_path) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{text_path}: not valid TOML: {exc}", path=text_path) from None
    return parse_config(data, text_path)
