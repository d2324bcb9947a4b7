"""Executor commands: `bidder launch`, `tick`, `jobs` (list, stop, start), `pods`, `stop`.

Logic lives in bidder.executor / bidder.tick / bidder.jobs; this module parses options, finds the
command's time (`--now`, else the API's clock: the emulator's virtual one or the wall clock; see
bidder.cli.timing), prints, and maps outcomes to exit codes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

import click
from click.core import ParameterSource

from bidder.cli import main
from bidder.cli.common import (
    CLOUD_CHOICE,
    DURATION,
    HOURS_HELP,
    MAX_GPU_COUNT,
    MAX_HOURS,
    MAX_PRICE,
    TOLERANCE,
    FiniteRange,
    api_options,
    checked_job_name,
    checked_pod_id,
    db_option,
    emit_rows,
    expand_db_path,
    format_option,
    market_option,
    open_existing_store,
    resolve_api_key,
    resolve_vast_api_key,
    vast_options,
)
from bidder.cli.recommend import expected_interruptions
from bidder.cli.timing import allow_past_option, api_now, db_now, now_option, parse_now
from bidder.clock import ServerTimes
from bidder.collector import HeldRunPodSource, HeldVastSource, collect_markets
from bidder.errors import (
    ApiError,
    AuthError,
    BidderError,
    ConfigError,
    KeyRefused,
    LockHeld,
    PodNotFound,
    StoreError,
)
from bidder.executor import CREATE_GRACE, HIDDEN_NOTE, Attempt, Executor, LaunchResult, shown_request
from bidder.jobs import (
    DEFAULT_CONFIG,
    JOB_SETTINGS,
    MAX_DISK_GB,
    RUNPOD_ONLY,
    Config,
    JobConfig,
    config_job_names,
    config_pod_prefixes,
    job_from_values,
    load_config,
    parse_config,
)
from bidder.models import MARKET_NAMES, Decision, JobSpec
from bidder.runpod import Pod, RetryPolicy, RunPodClient
from bidder.runpod.errors_map import mask_known
from bidder.store import LAUNCH_JOB, Store, estimate_spend
from bidder.tick import (
    KEPT_NOTE_EVERY,
    dry_run_copy,
    job_progress,
    kept_billing,
    kept_budget,
    left_billing,
    other_config,
    reopen_stopped_pod,
    run_tick,
    window_start,
)
from bidder.units import format_duration, parse_timestamp, to_iso

__all__ = ["decision_dict", "jobs", "launch", "pods", "stop", "tick"]

_EXAMPLE_LAUNCH = """\b
Example:
  bidder launch --gpu "RTX A6000" --gpu "A40" --max-price 0.6 --hours 10 \\
      --image runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04 --ports 8888/http,22/tcp
  bidder launch --min-vram 24 --tolerance none --image runpod/pytorch:latest --dry-run
"""
_EXAMPLE_TICK = """\b
Example (crontab, every 5 minutes; cron's PATH is /usr/bin:/bin, so bidder's full path: `which bidder`):
  */5 * * * * cd /srv/bidder && /path/to/venv/bin/bidder tick --config bidder.toml --log tick.jsonl
"""
_EXAMPLE_JOBS = """\b
Example:
  bidder jobs --config bidder.toml
  bidder jobs stop train
"""
_EXAMPLE_PODS = """\b
Example:
  bidder pods
  bidder pods --refresh --format json
"""
_EXAMPLE_STOP = """\b
Example:
  bidder stop abc123xyz
  bidder stop --job train --terminate
"""


# -- shared helpers ----------------------------------------------------------------------------------
def _client(api_url: str, retries: int = 4) -> RunPodClient:
    return RunPodClient(api_key=resolve_api_key(), url=api_url, retry=RetryPolicy(attempts=retries))


def _vast_api(vast_url: str, retries: int = 4, *, verified_only: bool = True,
              min_reliability: float = 0.95, required: bool = False) -> Any | None:
    """Vast behind the executor's PodApi when a Vast key is configured (VAST_API_KEY or the config
    file), else None (or, `required`, one line saying how to configure it)."""
    key = resolve_vast_api_key()
    if not key:
        if required:
            raise ConfigError("no Vast API key: set VAST_API_KEY (or vast_api_key in ~/.config/bidder/config.toml)",
                              key="vast_api_key")
        return None
    from bidder.vast.client import VastClient
    from bidder.vast.summary import OfferFilters
    from bidder.vast_pods import VastPodApi

    return VastPodApi(VastClient(api_key=key, url=vast_url, retry=RetryPolicy(attempts=retries)),
                      OfferFilters(verified_only=verified_only, min_reliability=min_reliability))


def _closing(vast: Any | None) -> contextlib.AbstractContextManager[Any]:
    """Vast's client closed after the block, when there is one."""
    return contextlib.closing(vast) if vast is not None else contextlib.nullcontext()


def _server_times(client: RunPodClient, vast: Any | None, markets: set[str]) -> ServerTimes:
    """The command's clock from both markets, as launch and tick read it: the emulator's time is found
    whichever market it answers for (RunPod's URL may be down while Vast's answers). Those of `markets`
    (the pods' markets) are asked first, so a probe never waits on a market the command does not use."""
    servers = [client, vast.client if vast is not None else None]
    return ServerTimes(*(servers[::-1] if markets == {"vast"} else servers))


def _executors(client: RunPodClient, vast: Any | None, store: Store, *, dry_run: bool = False,
               markets: tuple[str, ...] = ("runpod",), max_spend_per_hour: float | None = None) -> dict[str, Executor]:
    """One executor per configured market, sharing the store and the event log."""
    exs = {"runpod": Executor(client, store, dry_run=dry_run, markets=markets, max_spend_per_hour=max_spend_per_hour)}
    if vast is not None:
        exs["vast"] = Executor(vast, store, dry_run=dry_run, markets=markets, max_spend_per_hour=max_spend_per_hour)
        exs["vast"].log = exs["runpod"].log
    return exs


def _executor_for(exs: dict[str, Executor], row: dict[str, Any]) -> Executor:
    market = row.get("market") or "runpod"
    if market not in exs:
        raise ConfigError(f"pod {row['pod_id']} is on {market}: set VAST_API_KEY (or vast_api_key in "
                          "~/.config/bidder/config.toml) and --vast-url / VAST_URL to act on it", key="vast_api_key")
    return exs[market]


def _refuse_pods_without_key(rows: list[dict[str, Any]], vast: Any | None, act: str) -> None:
    """One line before any request when a pod to act on is on a market with no key here: nothing can be
    done there (a RunPod pod with Vast's key alone was read keyless, its clock asked, and a 401 came back)."""
    for row in rows:
        market = row.get("market") or "runpod"
        if market == "runpod" and not resolve_api_key():
            raise ConfigError(f"pod {row['pod_id']} is on runpod, and no RunPod key is set: set RUNPOD_API_KEY (or "
                              f"api_key in ~/.config/bidder/config.toml) to {act} it; nothing was sent", key="api_key")
        if market == "vast" and vast is None:
            raise ConfigError(f"pod {row['pod_id']} is on vast, and no Vast key is set: set VAST_API_KEY (or "
                              f"vast_api_key in ~/.config/bidder/config.toml) to {act} it; nothing was sent",
                              key="vast_api_key")


def _market_column(rows: list[dict[str, Any]]) -> list[str]:
    """RunPod-only tables read as they always did; with a Vast pod in them, each row names its market."""
    return ["market"] if any(r.get("market") not in (None, "runpod") for r in rows) else []


def retries_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--retries", type=click.IntRange(min=1), default=4, show_default=True, metavar="N",
                        help="Sends of a read, stop or terminate before giving up (creates and resumes are "
                             "sent once).")(func)


def decision_dict(d: Decision) -> dict[str, Any]:
    """The decision as `bidder recommend --format json` prints it."""
    return {"action": d.action, "gpu_type": d.gpu_type_id, "cloud": d.cloud, "gpu_count": d.gpu_count,
            "bid_per_gpu": d.bid_per_gpu, "expected_cost_per_hour": d.expected_cost_per_hour,
            "expected_interruptions_per_day": d.expected_interruptions_per_day,
            "expected_total_cost": d.expected_total_cost, "expected_completion_hours": d.expected_completion_hours,
            "act_below": d.act_below, "reasons": list(d.reasons), "market": d.market}


def _plan_line(d: Decision, on_demand_price: float | None = None, window_hours: float | None = None,
               storage_per_hr: float = 0.0) -> str:
    """The plan before "Launch it?": what, where and at what price per hour (`on_demand_price`: the
    on-demand price per GPU-hour of the decision's market, shown for an on-demand plan (on Vast its
    compute alone); `storage_per_hr`: what the market bills for the whole disk, Vast's)."""
    if d.action == "wait":
        if d.act_when and d.reasons and d.act_when in d.reasons[0]:
            return d.reasons[0]  # the plan's "wait: ... starts spot on X when <the condition>"
        below = (f" (acts when {d.act_when})" if d.act_when else
                 f" (acts when the floor is at or below ${d.act_below:.3f})" if d.act_below is not None else "")
        return f"wait{below}: {d.reasons[0] if d.reasons else ''}"
    gpus = "GPU" if d.gpu_count == 1 else "GPUs"
    if d.action == "spot":
        assert d.bid_per_gpu is not None  # a spot decision carries its bid
        # A batch job's rate is per day of its window (to the deadline, or to completion): say the count.
        count = None if d.expected_completion_hours is None else expected_interruptions(d, window_hours)
        expect = (f"{d.expected_interruptions_per_day:.1f} interruptions/day expected" if count is None
                  else f"{count:.1f} interruptions expected over the job")
        storage = f" + ${storage_per_hr:.3f}/h storage" if storage_per_hr > 0 else ""
        price = (f"spot, bid ${_bid(d.bid_per_gpu)}/GPU-h x {d.gpu_count} {gpus} = "
                 f"${_bid(d.bid_per_gpu * d.gpu_count)}/h"
                 f"{storage}, {expect}")
    elif on_demand_price is not None:
        total = on_demand_price * d.gpu_count
        storage = f" + ${storage_per_hr:.3f}/h storage = ${total + storage_per_hr:.3f}/h" if storage_per_hr > 0 else ""
        price = (f"on-demand, ${on_demand_price:.3f}/GPU-h x {d.gpu_count} {gpus} = "
                 f"${total:.3f}/h{storage}, no interruptions")
    else:
        price = "on-demand, no interruptions"
    cost = (f"; about ${d.expected_total_cost:.2f} in all" if d.expected_total_cost is not None
            and d.expected_completion_hours is not None else "")
    where = f"{d.cloud}, vast" if d.market == "vast" else d.cloud
    return f"{d.gpu_type_id} ({where}) {price}{cost}"


def _bid(value: float) -> str:
    """A bid as sent, to the tenth of a cent when it has one: "$0.148" for the 0.1485 the request
    carried left a user checking the dry run's exact request puzzled."""
    return f"{value:.3f}" if abs(value * 1000 - round(value * 1000)) < 1e-6 else f"{value:.4f}"


def _pod_access(pod: Pod) -> list[str]:
    lines = []
    for port in pod.ports:
        if port.type == "http":
            lines.append(f"https://{pod.id}-{port.private_port}.proxy.runpod.net  ({port.private_port}/http)")
        elif port.ip and port.public_port:
            lines.append(f"ssh root@{port.ip} -p {port.public_port}  ({port.private_port}/tcp)"
                         if port.private_port == 22 else f"{port.ip}:{port.public_port}  ({port.private_port}/tcp)")
    return lines


def _pod_dict(pod: Pod) -> dict[str, Any]:
    return {"id": pod.id, "name": pod.name, "desired_status": pod.desired_status, "pod_type": pod.pod_type,
            "cost_per_hr": pod.cost_per_hr, "gpu_count": pod.gpu_count, "gpu": pod.gpu_display_name,
            "machine_id": pod.machine_id, "uptime_seconds": pod.uptime_seconds, "access": _pod_access(pod)}


def _print_requests(requests: Sequence[Any]) -> None:
    """A dry run's requests, exactly as they would be sent but for the key and other secrets, masked."""
    shown = [shown_request(r) for r in requests]
    hidden = f"; {HIDDEN_NOTE}" if shown != list(requests) else ""
    click.echo(f"Dry run: nothing was sent. The request it would send (header Authorization: Bearer ****{hidden}):")
    for request in shown:
        click.echo(f"# {request.operation}")
        click.echo(mask_known(request.to_json()))


#: Seconds `bidder stop` and `bidder jobs stop/start` wait for a running tick to finish (`--wait`).
LOCK_WAIT = 60.0


def wait_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--wait", "lock_wait", type=FiniteRange(min=0, max=86400), default=LOCK_WAIT, show_default=True,
                        metavar="SECONDS",
                        help="How long to wait for a running `bidder tick` to finish (they never act at once: "
                             "a tick could undo this command).")(func)


@contextlib.contextmanager
def _lock_if_free(store: Store) -> Iterator[bool]:
    """The tick's lock if no one holds it now (True), else nothing held (False)."""
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(store.exclusive_lock("tick", wait=0.0))
        except LockHeld:
            yield False
        else:
            yield True


@contextlib.contextmanager
def _tick_lock(store: Store, wait: float, undone: str) -> Iterator[None]:
    """The tick's lock for a command that changes a job or its pod: a tick running at the same time
    could undo it (resume a pod just stopped, save a job as running). `undone` says what did not happen."""
    try:
        with store.exclusive_lock("tick", wait=wait):
            yield
    except LockHeld as exc:
        who = f" ({exc.holder})" if exc.holder else ""
        raise BidderError(f"a bidder tick is running{who} and still held the lock after {wait:g} s: {undone}; "
                          f"run this again when it has finished (or give --wait longer)") from None


# -- launch ------------------------------------------------------------------------------------------
@main.command("launch", epilog=_EXAMPLE_LAUNCH)
@click.option("--gpu", "gpu", multiple=True, metavar="NAME", help="Acceptable GPU type (repeat); id or name, or a part of one. Without --gpu or --min-vram: any GPU type.")
@click.option("--min-vram", type=click.IntRange(min=1), default=None, metavar="GB",
              help="Any GPU type with at least this much VRAM (instead of --gpu).")
@click.option("--gpus", type=click.IntRange(min=1, max=MAX_GPU_COUNT), default=1, show_default=True, help="GPUs in the pod.")
@click.option("--cloud", type=CLOUD_CHOICE, default="any", show_default=True)
@market_option("any", "Which market: runpod, vast, or any (the cheapest plan over the markets with history).")
@click.option("--tolerance", type=TOLERANCE, default="medium", show_default=True,
              help="Interruptions per day accepted: none, low, medium, high or a number.")
@click.option("--max-price", type=FiniteRange(min=0, min_open=True, max=MAX_PRICE), default=None, metavar="USD",
              help="Most per GPU-hour, bid or on-demand.")
@click.option("--hours", type=FiniteRange(min=0, min_open=True, max=MAX_HOURS), default=None,
              help=f"{HOURS_HELP} (default: keep running).")
@click.option("--keep-running", is_flag=True, default=False, help="A service with no end (the default).")
@click.option("--deadline", type=DURATION, default=None,
              help="Finish within this long (needs --hours), e.g. 3d (a unit is required: s, m, h, d, w).")
@click.option("--budget", type=FiniteRange(min=0, min_open=True), default=None, metavar="USD",
              help="Most to spend on the job.")
@click.option("--restart-overhead", type=DURATION, default="10m", show_default=True,
              help="Work lost at each restart, an interruption or a move (resume time plus work since the last checkpoint).")
@click.option("--max-spend-per-hour", type=FiniteRange(min=0, min_open=True), default=None, metavar="USD",
              help="Launch only if the pods in the ledger (your managed jobs' and earlier launches') and this one "
                   "together cost at most this per hour, as bidder.toml's max_spend_per_hour caps `bidder tick`.")
@click.option("--image", default=None, help="Docker image (required unless --template-id).")
@click.option("--name", default=None, help="Pod name prefix and ledger job name (default: bidder-launch); not a "
                                           "job of bidder.toml's (--config).")
@click.option("--config", "config_path", default=DEFAULT_CONFIG, show_default=True, type=click.Path(dir_okay=False),
              callback=lambda ctx, param, value: _checked_config(ctx, param, value),
              help="The managed jobs file, whose job names --name must not take (none when the default is absent).")
@click.option("--disk", type=click.IntRange(min=1, max=MAX_DISK_GB), default=40, show_default=True, help="Container disk, GB.")
@click.option("--volume", type=click.IntRange(min=0, max=MAX_DISK_GB), default=0, show_default=True, help="Volume disk, GB.")
@click.option("--mount", default="/workspace", show_default=True, help="Volume mount path.")
@click.option("--ports", default=None, help="Ports to expose, e.g. 8888/http,22/tcp (RunPod only).")
@click.option("--env", multiple=True, metavar="K=V", help="Environment variable (repeat).")
@click.option("--template-id", default=None, help="RunPod template id (RunPod only).")
@click.option("--network-volume", default=None, help="RunPod network volume id (data that follows the job; RunPod only).")
@click.option("--max-attempts", type=click.IntRange(min=1), default=4, show_default=True,
              help="Alternatives to try when one has no capacity.")
@click.option("--dry-run", is_flag=True, help="Print the exact requests (RunPod: GraphQL; Vast: REST; the key and secret env values masked); "
                   "send nothing and change nothing in the database.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before spending.")
@format_option("table", "json")
@retries_option
@wait_option
@now_option
@allow_past_option
@db_option
@api_options
@vast_options
def launch(dry_run: bool, yes: bool, fmt: str, retries: int, now_text: str | None, allow_past: bool, db_path: str,
           api_url: str, vast_url: str, config_path: str, lock_wait: float, **options: Any) -> None:
    """Rent the cheapest GPU that fits, now: spot at the optimizer's bid, or on-demand.

    Takes a fresh price snapshot (stored once the launch goes ahead), decides from the stored history,
    shows the plan and asks before spending (unless --yes). On "no capacity" it moves to the next alternative; if RunPod no longer
    offers spot it says so and continues on-demand when your max price and budget allow.
    """
    parse_now(now_text)
    name = options.pop("name")
    if name is not None and not name.strip():
        raise click.BadParameter("must not be empty (leave it out for bidder-launch)", param_hint="--name")
    name = name or LAUNCH_JOB
    try:
        _NAME_SETTING.parse(name)
    except ValueError as exc:
        raise click.BadParameter(f"{name!r} {exc}", param_hint="--name") from None
    _refuse_config_job(name, config_path)
    max_spend_per_hour = options.pop("max_spend_per_hour")
    if options.pop("keep_running") and options.get("hours") is not None:
        raise click.UsageError("give --hours or --keep-running, not both")
    if options.get("deadline") is not None and options["deadline"].total_seconds() <= 0:
        raise click.BadParameter("the deadline must be in the future, e.g. 3d", param_hint="--deadline")
    # Options only RunPod honours (the Vast create sends image, env and disk; README, "Vast"): with
    # --market vast they are refused, with any they keep the launch on RunPod (as a tick keeps a job).
    runpod_only = ["--" + key.replace("_", "-") for key in RUNPOD_ONLY if options.get(key) is not None]
    market_given = (options.get("market") or "any").lower()
    if runpod_only and market_given == "vast":
        raise click.UsageError(f"{', '.join(runpod_only)} {'is' if len(runpod_only) == 1 else 'are'} RunPod's: "
                               "a Vast instance cannot honour "
                               f"{'it' if len(runpod_only) == 1 else 'them'}; leave "
                               f"{'it' if len(runpod_only) == 1 else 'them'} out or use --market runpod")
    _refuse_runpod_without_key(market_given, runpod_only, (options.get("cloud") or "any").lower())
    market_note = None
    if runpod_only and market_given == "any":
        options["market"] = "runpod"
        market_note = None if not resolve_vast_api_key() else (f"{', '.join(runpod_only)} {'is' if len(runpod_only) == 1 else 'are'} RunPod's: "
                       "planning on RunPod only")
    if click.get_current_context().get_parameter_source("restart_overhead") is ParameterSource.DEFAULT:
        options.pop("restart_overhead")  # the setting's default: job_from_values holds only a given one to the work
    values = {k: v for k, v in options.items() if v is not None and v != ()}
    try:
        config = job_from_values(name, {**values, "name": name}, where="option")
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    market = (config.job.market or "any").lower()
    vast = None
    if market in ("vast", "any"):
        from bidder.jobs import collect_settings

        saved = collect_settings(config_path)
        vast = _vast_api(vast_url, retries, verified_only=saved["vast_verified_only"],
                         min_reliability=saved["vast_min_reliability"], required=market == "vast")
    # With Vast's key alone, `any` is Vast alone (as for collect and tick): no RunPod request, no RunPod plan.
    runpod_usable = market == "runpod" or vast is None or bool(resolve_api_key())
    markets = tuple(m for m in ("runpod", "vast") if (m == market or market == "any")
                    and (m != "vast" or vast is not None) and (m != "runpod" or runpod_usable))
    with _client(api_url, retries) as client, _closing(vast), contextlib.ExitStack() as stores:
        # A launch that launches nothing changes nothing. It plans on a scratch store (a dry run on a copy
        # of the database, as `tick --dry-run` does; a database not there yet on a new, empty one), or on
        # the database in a transaction rolled back after the plan; the snapshot it took is stored only
        # once the pod is to be made (a refused launch wrote its snapshot, a dry run its actions too).
        store = stores.enter_context(Store.open(db_path, create=False)) if Path(db_path).exists() else None
        timed = store if store is not None else stores.enter_context(_empty_store())
        if store is not None:
            _refuse_managed_job(store, name, config_path)
        # Either market may be the emulator, whose clock the refresh's rows must carry (RunPod's URL
        # may be down while Vast's answers).
        now = api_now(timed, ServerTimes(client if "runpod" in markets else None,
                                         vast.client if vast is not None else None), now_text, allow_past=allow_past)
        plan_store = stores.enter_context(dry_run_copy(timed, now)) if dry_run and store is not None else timed
        plan_store.clock = timed.clock
        counts = sorted({1, config.job.gpu_count})
        sources: list[Any] = [HeldRunPodSource(client, counts)] if "runpod" in markets else []
        if vast is not None:
            sources.append(HeldVastSource(vast.client, vast.filters, float(saved["vast_offers_days"])))
        # The requests, before the plan holds the database's write lock. A refused key is an error, not
        # a market left out or planned on its stored prices: the user's key needs fixing.
        answers = {source.market: source.hold(plan_store, now) for source in sources}
        refused = [KeyRefused(market, a) for market, a in answers.items() if isinstance(a, AuthError)]
        if refused:
            raise BidderError("; ".join(map(str, refused))) if len(refused) > 1 else refused[0]
        with contextlib.ExitStack() as planning:
            if plan_store is store:
                planning.enter_context(_rolled_back(store))
            cycle = collect_markets(sources, plan_store, now=now)  # one cycle over the job's markets
            refresh_note = _refresh_failures(cycle, plan_store)
            quotes = plan_store.latest_quotes("runpod") if "runpod" in markets else []  # the snapshot just taken
            spot_note = None
            if any(q.uninterruptable_price for q in quotes) and not any(q.minimum_bid_price for q in quotes):
                spot_note = ("no GPU type shows a spot price: RunPod no longer offers spot (interruptable) pods "
                             "for this account, it seems; on-demand only")
            several: list[str] = []  # a --gpu that named several types by part, each accepted: said
            if config.job.gpu_types:
                from bidder.cli.collect import market_filter, resolve_in_market, several_note

                ids = tuple(resolve_in_market(plan_store, config.job.gpu_types, market_filter(market)))
                several = several_note(plan_store, config.job.gpu_types, market_filter(market))
                config = _with_gpus(config, ids)
            exs = _executors(client, vast, plan_store, dry_run=dry_run, markets=markets,
                             max_spend_per_hour=max_spend_per_hour)
            ex = exs["runpod"]
            if spot_note is not None:
                ex.mark_spot_unsupported(now, reason="no GPU type shows a spot price")
            job = config.job_spec(now)
            notes = [n for n in (market_note, refresh_note, spot_note) if n is not None] + several
            for note in notes:  # (JSON keeps stdout to the one object; said before a decision that may fail)
                click.echo(f"Note: {note}", err=fmt == "json")
            decision = ex.decide(job, config.policy, now)
            if fmt == "table":
                window = None if job.deadline is None else (job.deadline - now).total_seconds() / 3600.0
                od_price, storage = _plan_prices(plan_store, job, decision)
                plan = _plan_line(decision, od_price, window, storage)
                click.echo(f"Plan: {plan}")
                # Every reason the plan line does not already say, as `recommend` says them: the first is why
                # this one (an on-demand plan chosen for lack of spot history said nothing of it)
                for reason in decision.reasons:
                    if reason not in plan:
                        click.echo(f"  why: {reason}")
            if decision.action == "wait":
                if fmt == "json":
                    click.echo(json.dumps({"decision": decision_dict(decision), "attempts": [], "pod": None,
                                           "notes": ["the optimizer chose to wait: nothing launched"],
                                           "dry_run": dry_run}, indent=2))
                else:
                    click.echo("Nothing launched: the optimizer chose to wait (run it again later, or use `bidder tick`).")
                return
            worst = None if yes or dry_run else _most_it_may_pay(plan_store, decision, config.policy.max_price)
            if dry_run:  # (its dry_run actions go to the scratch copy)
                result = exs.get(decision.market or "runpod", ex).launch(config, job, config.policy, decision, now)
        if not dry_run:
            if not yes:
                if worst is not None:  # what is confirmed is what may be bought, not the plan alone
                    click.echo(f"  if that finds no capacity it tries the next alternatives, at up to ${worst:.3f}/GPU-h",
                               err=True)
                try:
                    confirmed = click.confirm("Launch it?", default=False, err=True)
                except click.Abort:  # (no answer: end of input, as under cron)
                    click.echo(err=True)  # (ends the question's line, so the error is a line of its own)
                    confirmed = False
                if not confirmed:
                    raise BidderError("nothing launched: not confirmed (answer y, or give --yes to launch without "
                                      "asking)")
            if store is None:  # (a first launch makes the database)
                store = stores.enter_context(Store.open(db_path))
                store.clock = plan_store.clock
            # The create under the tick's lock (taken after the question, which may wait on the user): a
            # tick or `pods --refresh` running meanwhile took the launch's create in flight for a lost one,
            # adopted its pod, and the launch then failed ("action 1 is already complete") while it ran.
            with _tick_lock(store, lock_wait, "nothing was launched"):
                collect_markets(sources, store, now=now)  # the snapshot the plan was made on, now kept
                exs = _executors(client, vast, store, markets=markets, max_spend_per_hour=max_spend_per_hour)
                if spot_note is not None:
                    exs["runpod"].mark_spot_unsupported(now, reason="no GPU type shows a spot price")
                store.mark_launch(name)  # its pods are the user's to stop: `bidder stop` says so
                with _said_if_cut_off(store, name):
                    result = _earlier_create(exs, store, config, decision, now) or exs.get(
                        decision.market or "runpod", exs["runpod"]).launch(config, job, config.policy, decision, now)
    unasked = _not_asked(result, job, config)
    if fmt == "json":
        shown = [shown_request(r) for r in result.requests]  # (secrets masked, as the table shows them)
        click.echo(json.dumps({
            "decision": decision_dict(decision),
            "attempts": [vars(a) for a in result.attempts],
            "pod": None if result.pod is None else _pod_dict(result.pod),
            "notes": [*result.notes, *([HIDDEN_NOTE] if shown != list(result.requests) else [])], "dry_run": dry_run,
            "requests": [{"operation": r.operation, **r.payload()} for r in shown],
        }, indent=2))
    else:  # (a pod unlike the request is not shown as launched: the error below says what it is)
        _print_launch(replace(result, pod=None) if unasked else result, decision.market,
                      [f"--{k}" for k in ("budget", "hours", "deadline") if options.get(k) is not None])
    if unasked:  # (its attempt says it was adopted: not this launch's pod, and nothing else was rented)
        pod = result.pod
        raise BidderError(f"nothing new launched for {name}: an earlier launch's create whose answer was lost landed, "
                          f"pod {pod.id}, now watched as {name}'s, and it is not what this launch asks for ("
                          f"{'; '.join(unasked)}): `bidder stop {pod.id} --terminate` ends it, then launch again")
    if result.pod is None and not (dry_run and result.requests):
        where = decision.market or "runpod"
        why = "; ".join([*(f"{a.kind} {a.gpu_type_id}/{a.cloud} on {where}: {a.outcome}"
                           + (f" ({a.message})" if a.message else "") for a in result.attempts),
                         *_new_notes(result)]) or "no alternative could be tried"
        raise BidderError(f"nothing launched for {name}: {why}")


def _earlier_create(exs: dict[str, Executor], store: Store, config: JobConfig, decision: Decision,
                    now: datetime) -> LaunchResult | None:
    """An earlier create of this launch (its --name) whose answer was lost on the other market than the
    plan's: looked up there first, as the plan's executor looks one up on its own (only there: a Vast
    instance landed while a RunPod launch rented a second pod, the ledger knowing one). Found: adopted,
    the launch's result; not yet, within its grace, or on a market this launch has no key for: nothing
    else is rented. None: no such create (or its grace passed: it is a lost name, a stray if it lands)."""
    state = store.job_state(config.name) or {}
    other, pending = state.get("pending_market") or "runpod", state.get("pending_name")
    if not pending or other == (decision.market or "runpod"):
        return None
    if other not in exs:  # (--market, or no key for it): within the grace it may still land there
        since = state.get("pending_since")
        since_at = parse_timestamp(since) if isinstance(since, str) else since
        if since_at is None or now - since_at >= CREATE_GRACE:
            return None  # a lost name: `pods --refresh` or a tick finds its pod if it lands
        return LaunchResult(decision, notes=(f"the create of {pending} on {other} got no answer and may still make a pod "
                                             f"there, which this launch does not look at: launch with --market "
                                             f"{other} or any (or `bidder pods --refresh`) to find it; nothing else "
                                             f"is rented until {to_iso(since_at + CREATE_GRACE)}",))
    ex = exs[other]
    found = ex.adopt_pending(config, ex.client.pods(), now)
    if found is not None:
        row = store.pod(found.id) or {}
        attempt = Attempt("spot" if found.is_spot else "on_demand", row.get("gpu_type_id") or "",
                          row.get("cloud") or "", int(found.gpu_count or row.get("gpu_count") or 1),
                          row.get("bid_per_gpu"), found.cost_per_hr, found.name or "", "adopted",
                          f"created earlier on {other}; its answer was lost", found.id)
        return LaunchResult(decision, (attempt,), found, (), (f"adopted pod {found.id} ({found.name}) from an earlier "
                                                              f"create on {other}",), attempt)
    if ex.pending(config) is not None:
        return LaunchResult(decision, notes=(f"the create of {pending} on {other} may still land: nothing else is "
                                             "rented until it is found or its grace ends",))
    return None


def _not_asked(result: LaunchResult, job: JobSpec, config: JobConfig) -> list[str]:
    """How a pod the launch adopted (an earlier create's, found by its name) differs from what this launch
    asks for: its GPU type, count, price, kind and image (an earlier launch for an on-demand RTX 4090 came
    back as the result of one for spot RTX 3070 under $0.10, at exit 0). Empty: it fits, or was rented now."""
    pod, a = result.pod, result.attempt
    if pod is None or a is None or a.outcome != "adopted":
        return []
    policy, why = config.policy, []
    wanted = {name.strip().lower() for name in job.gpu_types}  # (matched as `select_quotes` matches quotes)
    if wanted and not {a.gpu_type_id.lower(), (pod.gpu_display_name or "").lower()} & wanted:
        why.append(f"a {a.gpu_type_id}, not {' or '.join(job.gpu_types)}")
    count = int(pod.gpu_count or a.gpu_count or 1)
    if count != job.gpu_count:
        why.append(f"{count} GPU(s), not {job.gpu_count}")
    rate = pod.cost_per_hr if pod.cost_per_hr is not None else a.cost_per_hour
    if policy.max_price is not None and rate is not None and rate / count > policy.max_price + 1e-9:
        why.append(f"${rate / count:.3f}/GPU-h, over --max-price ${policy.max_price:.3f}")
    if a.kind == "spot" and (not policy.allow_spot or policy.tolerance <= 0):
        why.append("spot, where no interruption is accepted")
    if a.kind == "on_demand" and not policy.allow_on_demand:
        why.append("on-demand, which this launch does not allow")
    image, running = config.template.image, getattr(pod, "image_name", None)
    if image and running and running != image:
        why.append(f"image {running}, not {image}")
    return why


def _refuse_runpod_without_key(market: str, runpod_only: list[str], cloud: str) -> None:
    """With Vast's key alone, a launch only RunPod could serve (--market runpod, a RunPod-only option, a
    RunPod cloud) is refused before any request: it asked RunPod's prices, then planned a RunPod pod (or
    said to collect prices for SECURE on Vast), though nothing may be rented there without a key."""
    if market == "vast" or resolve_api_key() or not resolve_vast_api_key():
        return
    key = "no RunPod key is set (RUNPOD_API_KEY)"
    if market == "runpod":
        raise ConfigError(f"--market runpod, and {key}: set it, or use --market vast",
                          key="market")
    if runpod_only:
        one = len(runpod_only) == 1
        raise ConfigError(f"{', '.join(runpod_only)} {'is' if one else 'are'} RunPod's, and {key}: drop "
                          f"{'it' if one else 'them'} to launch on Vast", key="market")
    if cloud in ("secure", "community"):
        raise ConfigError(f"--cloud {cloud} is a RunPod cloud, and {key}: give --cloud verified, unverified or any "
                          "to launch on Vast", key="cloud")


@contextlib.contextmanager
def _empty_store() -> Iterator[Store]:
    """A new, empty database in the temp folder (deleted afterwards): what a launch plans on when
    --db is not there yet (a dry run creates nothing; a launch makes it once the pod is to be made)."""
    with tempfile.TemporaryDirectory(prefix="bidder-launch-") as folder, Store.open(Path(folder) / "plan.db") as store:
        yield store


class _RolledBack(Exception):
    """Ends `_rolled_back`'s transaction."""


@contextlib.contextmanager
def _rolled_back(store: Store) -> Iterator[None]:
    """The block's writes to `store` in one transaction, always rolled back: a launch plans on the
    snapshot it has just taken as if stored, and keeps nothing of it unless it goes on to launch."""
    with contextlib.suppress(_RolledBack), store.transaction():
        yield
        raise _RolledBack


@contextlib.contextmanager
def _said_if_cut_off(store: Store, name: str) -> Iterator[None]:
    """A launch stopped while its create may have gone out (Ctrl-C, SIGTERM from a timeout or a
    shutdown, a database it cannot write any more) says so: the pod may run, and `bidder pods
    --refresh` finds it by its name. It said only "Aborted!" (or nothing, on SIGTERM) while a pod billed."""
    previous = signal.getsignal(signal.SIGTERM)

    def terminated(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # unwinds like Ctrl-C, so the note below is said

    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        signal.signal(signal.SIGTERM, terminated)
    try:
        yield
    except (KeyboardInterrupt, BidderError) as exc:
        sent = _sent_create(store, name)
        if sent is None:
            raise
        note = (f"the create of {sent} was sent and may have made a pod that runs and bills: `bidder pods "
                "--refresh` finds it by its name and watches it (then `bidder stop ID`)")
        if isinstance(exc, KeyboardInterrupt):
            click.echo(f"Interrupted: {note}", err=True)
            sys.exit(130)
        raise BidderError(f"{exc}; {note}") from None
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)


#: A tick lock held this long (minutes, by the wall clock) with no progress makes the tick that finds it an
#: error, not a quiet exit: a tick retries a slow API for a few minutes at most (122 s behind 65-second answers).
STUCK_TICK_MINUTES = 30.0


def _lock_held_minutes(store: Store) -> float | None:
    """How long the tick lock's holder has shown no progress (None: unknown): it writes its note on taking
    it, and a tick touches the file after each step and each job (`bidder.tick`), so a long tick that
    moves never reads as stuck."""
    try:
        return max(time.time() - os.stat(store.lock_path("tick")).st_mtime, 0.0) / 60.0
    except OSError:
        return None


def _sent_create(store: Store, name: str) -> str | None:
    """The name of the launch's create that went out without an answer (None: none, or unreadable)."""
    try:
        return (store.job_state(name) or {}).get("pending_name")
    except BidderError:
        return None


def _plan_prices(store: Store, job: Any, d: Decision) -> tuple[float | None, float]:
    """The plan line's on-demand price per GPU-hour (`_on_demand_price`) and what the market bills per
    hour for the job's whole disk (Vast's; 0 elsewhere), as the plan counted them. On Vast on-demand
    the price is the compute alone: the search's price holds the storage of a 10 GB disk, which the
    line said beside "more storage" for the rest, at another price ($0.343 + $0.006 for a $0.351 bill).
    On spot the storage is that of the offer the bid rents, as the launch picks it."""
    from bidder.advisor import with_storage
    from bidder.optimizer import disk_storage_per_hour, storage_per_gpu_hour

    price = _on_demand_price(store, d)
    if d.market != "vast" or d.gpu_type_id is None or job.disk_gb is None:
        return price, 0.0
    on_demand = d.action == "on_demand"
    for q in with_storage(store, store.latest_quotes("vast"), job.disk_gb, job=job):
        if (q.gpu_type_id, q.cloud, q.gpu_count) == (d.gpu_type_id, d.cloud, d.gpu_count):
            storage = disk_storage_per_hour(job, q, on_demand=on_demand, bid=d.bid_per_gpu)
            if on_demand and price is not None:  # (the price with the disk's storage, less the whole disk's)
                price = price + storage_per_gpu_hour(job, q, on_demand=True) - storage / d.gpu_count
            return price, storage
    return price, 0.0


#: bidder.toml's `name` setting: how launch checks --name (a ledger job name and pod name prefix).
_NAME_SETTING = next(s for s in JOB_SETTINGS if s.name == "name")


# A launch's name is its job's row in the ledger: a managed job's name would make the launched pod
# that job's (the tick adopts, moves or stops it), and a second pod for a job that has one.
def _refuse_config_job(name: str, config_path: str) -> None:
    """--name must not be a job of the jobs file (a missing default bidder.toml has none)."""
    given = click.get_current_context().get_parameter_source("config_path") is not ParameterSource.DEFAULT
    if given and not Path(config_path).is_file():
        raise click.BadParameter(f"{_not_a_jobs_file(config_path)}: give the bidder.toml your jobs run from, or "
                                 "leave --config out", param_hint="--config")
    if name in config_job_names(config_path):
        raise click.BadParameter(f"{name!r} is a job of {config_path} ([jobs.{name}]): a launch under its name "
                                 "would share that job's ledger row, and the next `bidder tick` would take the "
                                 "launched pod for the job's own; give another --name", param_hint="--name")
    job = config_pod_prefixes(config_path).get(name)
    if job is not None:  # (the launch's pods are named NAME-ATTEMPT-LEDGERID, as the job's: a lost create is found by it)
        raise click.BadParameter(f"{name!r} is the pod-name prefix of [jobs.{job}] in {config_path}: the launch's pods "
                                 "would be named as that job's, and a create whose answer was lost could adopt the "
                                 "other's pod; give another --name", param_hint="--name")


def _refuse_managed_job(store: Store, name: str, config_path: str) -> None:
    """--name must not be a managed job's that the ledger holds, even one removed from the jobs file:
    its row (state, spend, pods) would be the launch's too, and a pod it still has would get a second."""
    state = store.job_state(name)
    if store.is_launch(name, state) or (state is None and not store.managed_pods(name)):
        return
    active = store.managed_pods(name, states=["active"])
    has = (f" whose pod {active[-1]['pod_id']} is still there" if active else "")
    worse = " and give it a second pod" if active else ""
    stop = f" (`bidder jobs stop {name}` stops its pod)" if active else ""
    raise click.BadParameter(f"{name!r} is a managed job in the ledger {store.path} (no longer in {config_path})"
                             f"{has}: a launch under its name would share that job's ledger row{worse}; give "
                             f"another --name{stop}", param_hint="--name")


def _refresh_failures(cycle: Any, store: Store) -> str | None:
    """One line when a market's prices could not be refreshed (the others were): what failed, why,
    and what the plan rests on instead."""
    failed = [r for r in cycle.by_market if r.error]
    if not failed:
        return None
    from bidder.market import DEFAULT_MAX_STALENESS_HOURS

    parts = []
    for r in failed:
        last = max((q.ts for q in store.latest_quotes(r.market)), default=None)
        age = None if last is None else (cycle.ts - last).total_seconds()
        if age is not None and age <= DEFAULT_MAX_STALENESS_HOURS * 3600:  # advise() still reads them
            kept = f"the plan uses its stored prices of {to_iso(last)} ({format_duration(age)} old)"
        else:
            kept = ("it has no stored prices" if last is None else
                    f"its stored prices ({to_iso(last)}) are too old to use") + ", so it is left out"
        parts.append(f"{MARKET_NAMES.get(r.market, r.market)}'s prices could not be refreshed ({r.error}): {kept}")
    fresh = [MARKET_NAMES.get(r.market, r.market) for r in cycle.by_market if not r.error]
    return "; ".join(parts) + f"; {' and '.join(fresh)}'s prices were refreshed"


def _on_demand_price(store: Store, d: Decision, *, spot_too: bool = False) -> float | None:
    """The on-demand price per GPU-hour of the decision's market in the newest snapshot (None if absent;
    of a spot decision's market too with `spot_too`)."""
    if d.action != "on_demand" and not (spot_too and d.action == "spot"):
        return None
    for q in store.latest_quotes(d.market or "runpod"):
        if (q.gpu_type_id, q.cloud, q.gpu_count) == (d.gpu_type_id, d.cloud, d.gpu_count):
            return q.uninterruptable_price
    return d.expected_cost_per_hour if d.action == "on_demand" else None


def _most_it_may_pay(store: Store, d: Decision, max_price: float | None) -> float | None:
    """The highest price per GPU-hour a launch of `d` may end up paying: an alternative it moves to when
    the plan finds no capacity, or, RunPod's spot refused, on-demand (at most the plan's own GPU's: the
    fallback takes the cheapest, and only under `max_price`, the user's cap, as it decides again under
    it). None when that is no more than the plan's own price."""
    def price(x: Decision) -> float | None:
        return x.bid_per_gpu if x.action == "spot" else _on_demand_price(store, x)

    prices = [p for x in (d, *d.alternatives) if x.action in ("spot", "on_demand") and (p := price(x)) is not None]
    if any(x.action == "spot" and (x.market or "runpod") == "runpod" for x in (d, *d.alternatives)):
        fallback = _on_demand_price(store, d, spot_too=True)
        if fallback is not None and (max_price is None or fallback <= max_price + 1e-9):
            prices.append(fallback)
    own = price(d)
    worst = max(prices, default=None)
    return worst if worst is not None and own is not None and worst > own + 1e-9 else None


def _with_gpus(config: JobConfig, ids: tuple[str, ...]) -> JobConfig:
    return replace(config, job=replace(config.job, gpu_types=ids))


def _new_notes(result: LaunchResult) -> list[str]:
    """The launch's notes less those that repeat an attempt's message (a stopped launch's reason is both)."""
    said = {a.message for a in result.attempts}
    return [n for n in result.notes if n not in said]


def _print_launch(result: LaunchResult, market: str | None = None, bounded: Sequence[str] = ()) -> None:
    """The attempts, notes and the pod a launch made (`bounded`: the limits given, --budget, --hours,
    which only chose the plan)."""
    for i, a in enumerate(result.attempts, 1):
        price = f"bid ${_bid(a.bid_per_gpu)}/GPU-h" if a.kind == "spot" and a.bid_per_gpu else "on-demand"
        tail = f": {a.message}" if a.message and a.outcome not in ("ok",) else ""
        click.echo(f"Attempt {i}: {a.kind} {a.gpu_type_id} ({a.cloud}) {price} -> {a.outcome}{tail}")
    for note in _new_notes(result):
        click.echo(f"Note: {note}")
    if result.requests:
        _print_requests(result.requests)
        return
    if result.pod is not None and result.attempt is not None:
        pod, a = result.pod, result.attempt
        rate = pod.cost_per_hr if pod.cost_per_hr is not None else a.cost_per_hour
        kind = f"spot at ${_bid(a.bid_per_gpu or 0.0)}/GPU-h" if a.kind == "spot" else "on-demand"
        where = f"{a.cloud}, vast" if market == "vast" else a.cloud
        hourly = f"${rate or 0:.3f}/h"
        if market == "vast":  # Vast's compute rate (pay-as-bid) and the storage it bills even when paused, as
            # the plan line says them (their sum alone read as a rate above the bid: "$0.1350/GPU-h, $0.146/h")
            storage = float(getattr(pod, "storage_per_hr", 0) or 0)
            hourly += f" + ${storage:.3f}/h storage = ${(rate or 0) + storage:.3f}/h"
        click.echo(f"Launched pod {pod.id} ({a.name}): {a.gpu_type_id} x{a.gpu_count} ({where}) {kind}, {hourly}")
        access = _pod_access(pod)
        for line in access:
            click.echo(f"  {line}")
        if not access and market == "vast":  # (bidder reads no connection details from Vast)
            click.echo("  connect from Vast's console: cloud.vast.ai/instances, the instance's SSH button")
        elif not access:
            click.echo("  ports appear once the container is up: `bidder pods --refresh` lists them")
        click.echo(f"  stop it: bidder stop {pod.id}")
        if bounded:  # a launch is not watched: its limits chose the plan, nothing holds the pod to them
            click.echo(f"  it runs until then: {' and '.join(bounded)} chose the plan, and nothing stops it there "
                       "(a job in bidder.toml, run by `bidder tick`, is stopped at its budget and its hours)")


# -- tick --------------------------------------------------------------------------------------------
def _checked_config(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """--config: refused when empty, or when it names something other than a file (/dev/null read as
    a file of no jobs, and the tick did nothing, exit 0, where launch refused it). A missing file is
    left to the command (tick says "not found"; launch refuses a --config given)."""
    if value is None:
        return None
    if not value.strip():
        raise click.BadParameter("is empty: give the bidder.toml your jobs run from, or leave --config out",
                                 param_hint="--config")
    if Path(value).exists() and not Path(value).is_file():
        raise click.BadParameter(f"{_not_a_jobs_file(value)}: give the bidder.toml your jobs run from, or leave "
                                 "--config out", param_hint="--config")
    return value


def _not_a_jobs_file(path: str) -> str:
    """Why `path` (no regular file) is no jobs file: missing, or something else (a folder, /dev/null)."""
    what = "a folder" if Path(path).is_dir() else "not a regular file" if Path(path).exists() else None
    return f"no jobs file at {path}" if what is None else f"{path} is {what}, not a jobs file"


def _config_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--config", "config_path", default=DEFAULT_CONFIG, show_default=True,
                        type=click.Path(dir_okay=False), callback=_checked_config, help="The managed jobs file.")(func)


def _log_path(value: str | None) -> str | None:
    if value is not None and not value.strip():  # ("cannot append to : Is a directory")
        raise click.BadParameter("is empty: give a file name, e.g. tick.jsonl", param_hint="--log")
    return value


class _EventLog:
    """The --log file: one JSON line per event. A line it cannot write (a full disk) is counted, never
    raised: the tick's actions (a budget stop among them) matter more than their log, and the ledger
    in the database has every action anyway."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lost = 0
        self.error: str | None = None
        try:
            self.handle: IO[str] = Path(path).open("a", encoding="utf-8")  # noqa: SIM115 (closed by close())
        except OSError as exc:
            raise click.BadParameter(f"cannot append to {path}: {exc.strerror}", param_hint="--log") from None

    def write(self, event: dict[str, Any]) -> None:
        try:
            self.handle.write(json.dumps(event, sort_keys=True, default=str) + "\n")
            self.handle.flush()
        except OSError as exc:
            self.lost += 1
            self.error = self.error or exc.strerror or str(exc)

    def close(self) -> None:
        try:
            self.handle.close()
        except OSError as exc:  # the last buffered line could not be written either
            self.error = self.error or exc.strerror or str(exc)

    def problem(self) -> str | None:
        """What the tick says when the log fell short (None: every event was written)."""
        if self.error is None:
            return None
        lost = f"{self.lost} event(s) not written" if self.lost else "its last lines may be missing"
        return (f"could not write the --log file {self.path}: {self.error} ({lost}; the ledger in the database "
                "has every action: `bidder report`)")


@main.command("tick", epilog=_EXAMPLE_TICK)
@_config_option
@click.option("--log", "log_path", default=None, metavar="FILE", callback=lambda ctx, param, value: _log_path(value),
              help="Append one JSON line per action to FILE.")
@click.option("--dry-run", is_flag=True, help="Decide and print what it would send; send no mutation and change "
              "nothing in the database (it runs on a scratch copy).")
@retries_option
@now_option
@allow_past_option
@db_option
@api_options
@vast_options
def tick(config_path: str, log_path: str | None, dry_run: bool, retries: int, now_text: str | None,
         allow_past: bool, db_path: str, api_url: str, vast_url: str) -> None:
    """One cron cycle of the managed jobs in bidder.toml.

    Collects prices when the last snapshot is older than collect_interval, polls every managed
    pod, then per job launches, resumes after an interruption (a new bid), waits, moves to
    on-demand, stops at the budget, or stops/terminates a finished job. Exit 0 when the cycle ran
    (even if it waited; also when another tick holds the lock), 1 with one line on stderr when it
    could not (bad config, API down) or, after every job was handled, when a call sent for a job
    failed (a create, resume or stop the API refused or left unanswered), a job could not run (its
    market has no key in this tick, its name is a `bidder launch`'s), a market refused its key, a
    job's pod is on a market whose pod list could not be read, or a waiting job's deadline can only be
    met by on-demand over its max_price or budget (the line says what to raise). 130 on Ctrl-C. With a Vast key
    (VAST_API_KEY), Vast is collected in the same cycle and jobs with market vast or any act there too.
    """
    parse_now(now_text)
    config = load_config(config_path)
    vast = _vast_api(vast_url, retries, verified_only=config.vast_verified_only,
                     min_reliability=config.vast_min_reliability)
    log = _EventLog(log_path) if log_path is not None else None
    try:
        # A dry run changes nothing: no database is created for it, and it runs on a scratch copy.
        with Store.open(db_path, create=not dry_run) as store, _client(api_url, retries) as client, \
                contextlib.ExitStack() as scratch:
            # Without a RunPod key, RunPod is not asked: with Vast's the tick runs on Vast alone; with no key at
            # all nothing is sent, and each job's line says which key to set.
            runpod = client if resolve_api_key() else None
            now = api_now(store, ServerTimes(runpod, vast.client if vast is not None else None), now_text,
                          allow_past=allow_past)
            try:
                ticked = scratch.enter_context(dry_run_copy(store, now)) if dry_run else store
                report = run_tick(runpod, ticked, config, now, dry_run=dry_run,
                                  events=log.write if log is not None else None, vast=vast)
                warn_unmanaged = _unmanaged_news(ticked, report.events, now)
            except KeyboardInterrupt:
                # As `bidder launch` says it: a create may have gone out (it said only "Aborted!", exit 1).
                sent = [n for n in (_sent_create(store, job) for job in config.jobs) if n]
                note = ("; ".join(f"the create of {n} was sent and may have made a pod" for n in sent)
                        + ": the next tick finds it by its name and watches it") if sent else "the next tick carries on from the ledger"
                click.echo(f"Interrupted: {note}", err=True)
                sys.exit(130)
            except LockHeld as exc:
                held = _lock_held_minutes(store)
                if held is not None and held >= STUCK_TICK_MINUTES:
                    # Cron gives way quietly to a slow tick; a lock held this long with no progress is a tick
                    # that stopped moving (a hung call), and every job waits on it: an error, for cron's mail.
                    # (`launch`, `stop` and `pods --refresh` take the same lock: the holder is a bidder, not
                    # always a tick.)
                    raise BidderError(f"another bidder ({exc.holder or 'another process'}) has held the tick lock "
                                      f"with no progress for {held:.0f} min: it may be stuck; this tick did not act. Stop that "
                                      "process if it is not moving (the next tick carries on from the ledger)") from None
                click.echo("another bidder tick is running (its lock is held): this one exits without acting")
                return
            except StoreError as exc:
                # A database it can no longer write (a full disk): a create may be out, as on Ctrl-C.
                sent = [n for n in (_sent_create(store, job) for job in config.jobs) if n]
                if not sent:
                    raise
                raise BidderError(f"{exc}; " + "; ".join(f"the create of {n} was sent and may have made a pod that "
                                                         "runs and bills" for n in sent)
                                  + ": the next tick finds it by its name and watches it") from None
    finally:
        if log is not None:
            log.close()
        if vast is not None:
            vast.close()
    prefix = "[dry run] " if dry_run else ""
    if report.collected:
        only = f" ({', '.join(report.collected_markets)} only)" if report.price_failures else ""
        click.echo(f"{prefix}collected a price snapshot at {to_iso(now)}{only}")
    for line in report.price_failures.values():  # the tick goes on, but the user must see it
        click.echo(f"{prefix}warning: {line}", err=True)
    for event in report.events:  # what happened before what each job does now
        if event["event"] == "interrupted":
            click.echo(f"{prefix}{event.get('job')}: {event.get('summary') or 'interrupted'}")
    for job in report.jobs:
        message = job.message.removeprefix(f"{job.state}: ")  # "held: held: ..." said the state twice
        click.echo(f"{prefix}{job.name}: {job.state}: {message} (spent ${job.spent:.2f}, "
                   f"{job.work_done_hours:.2f} h done)")
    for event in report.events:
        if event["event"] == "unmanaged" and event.get("job") in warn_unmanaged:  # (for cron's mail)
            click.echo(f"{prefix}warning: unmanaged: {event.get('message', '')}", err=True)
        elif event["event"] in ("unmanaged", "spot_unsupported", "spot_recheck", "adopted"):
            # (An adoption names its job: with several jobs, "found pod X by its name" said not whose.)
            job = f"{event['job']}: " if event["event"] == "adopted" and event.get("job") else ""
            click.echo(f"{prefix}{event['event']}: {job}{event.get('message', '')}")
        elif event["event"] == "stray":  # a late create's pod no job wanted, ended at once (it billed till now)
            click.echo(f"{prefix}retired: {event.get('job')}: {event.get('message', '')}")
        elif event["event"] in ("rejected_observation", "foreign_pod", "price_changed", "restarted_outside"):
            click.echo(f"{prefix}warning: {event.get('message', '')}", err=True)
    if not report.jobs:
        click.echo(f"{prefix}no jobs in {config_path}")
    # Non-zero, so cron mails it; every job was handled first.
    problems = [why.removeprefix("AuthError: ") for why in report.refused_keys.values()]  # (each says which key)
    problems += [f"job {job.name} cannot run: {job.blocked}" for job in report.jobs if job.blocked]
    problems += [job.over_budget for job in report.jobs if job.over_budget]
    unknown = [job.name for job in report.jobs if job.unknown]  # (one cause often holds them all: said once)
    if len(unknown) == 1:
        problems.append(f"the state of {unknown[0]}'s pod is unknown (its line says why); the next tick asks again")
    elif unknown:
        names = ", ".join(unknown[:-1]) + " and " + unknown[-1]
        problems.append(f"the state of the pods of {names} is unknown (their lines say why); the next tick asks again")
    problems += [f"job {job.name}: {job.late}" for job in report.jobs if job.late]
    problems += [f"job {job.name}: {job.at_risk}" for job in report.jobs if job.at_risk]
    failed = [f"{job.name} ({'; '.join(job.failed)})" for job in report.jobs if job.failed]
    if failed:
        problems.append(f"the tick could not finish acting for {' and for '.join(failed)}; the next tick tries again")
    problems += [f"{MARKET_NAMES.get(market, market)}'s API could not be reached ({why}): its jobs were decided on "
                 "its last snapshot; the next tick tries again" for market, why in report.unreachable.items()]
    if log is not None and (short := log.problem()):
        problems.append(short)
    if problems:
        raise BidderError("; ".join(problems))


def _unmanaged_news(store: Store, events: Sequence[Mapping[str, Any]], now: datetime) -> set[str]:
    """The jobs whose `unmanaged` pods (a job taken out of bidder.toml, its pod billing with no budget
    watched) are news, for stderr: the first time, when what is said changes, and once a day (job state
    `unmanaged_said`), as a finished job's kept pods are said; the other ticks say them in the log alone."""
    said_now: dict[str, list[str]] = {}
    for event in events:
        if event["event"] == "unmanaged":
            said_now.setdefault(str(event.get("job")), []).append(str(event.get("message")))
    news = set()
    for state in store.jobs():
        name, said = state["name"], state.get("unmanaged_said") or {}
        messages = sorted(said_now.pop(name, []))
        if not messages:
            if said:  # (back in bidder.toml, or its pod ended: said afresh if it is left again)
                store.save_job_state(name, unmanaged_said=None)
            continue
        at = said.get("at")
        if said.get("messages") != messages or not at or now - parse_timestamp(at) >= KEPT_NOTE_EVERY:
            store.save_job_state(name, unmanaged_said={"messages": messages, "at": to_iso(now)})
            news.add(name)
    return news | set(said_now)  # (a pod whose job has no row to remember it by: said every time)


# -- jobs --------------------------------------------------------------------------------------------
@main.group("jobs", invoke_without_command=True, epilog=_EXAMPLE_JOBS)
@_config_option
@format_option("table", "json", "csv")
@db_option
@click.pass_context
def jobs(ctx: click.Context, config_path: str, fmt: str, db_path: str) -> None:
    """The managed jobs of bidder.toml with their state (`bidder jobs stop NAME` to end one)."""
    ctx.obj = {"config_path": config_path, "db_path": db_path}
    if ctx.invoked_subcommand is not None:
        return
    rows = []
    elsewhere: list[str] = []
    with open_existing_store(db_path, "no job has run yet") as store:  # (a missing database said first)
        config = load_config(config_path)
        refused = _refused_gpus(store, config)
        for jc in config.jobs.values():
            state = store.job_state(jc.name) or {}
            work, spent, interruptions = job_progress(store, jc, save=False)
            active = store.managed_pods(jc.name, states=["active"])
            # Else the pod it keeps stopped (a budget stop, `bidder stop`): it holds the job's disk, and
            # on Vast bills storage; "-" hid it.
            kept = [r for r in store.managed_pods(jc.name, states=["stopped"]) if r.get("desired_status") != "TERMINATED"]
            pod = active[-1] if active else kept[-1] if kept else None
            # Another bidder.toml runs it on this database: its settings are that file's, not these.
            owner = other_config(state, config_path)
            if owner is not None:
                elsewhere.append(f"{jc.name}: run by {owner}, whose settings apply (budget, hours and deadline "
                                 f"not shown); the [jobs.{jc.name}] of {config_path} does not run")
            cannot = f"cannot run: {refused[jc.name]}" if jc.name in refused else None
            if cannot is not None:  # listed as it stands, and said: no tick runs this file until it is fixed
                elsewhere.append(f"{jc.name}: {cannot}")
            # A pod kept stopped bills its disk (a finished job's, by on_finish = "stop"): the table said "finished".
            billing = kept_billing(store, jc.name) if owner is None and not active else None
            if billing is not None:
                # With when that storage passes the budget, or that it has: `jobs` showed "spent 14.053
                # budget 12.000" and said nothing of it.
                over = kept_budget(store, jc.name, spent, jc.policy.budget)
                billing = (billing[0], f"{billing[1]}; {over[0]}") if over is not None else billing
                elsewhere.append(f"{jc.name}: {billing[1]}")
            rows.append({
                "job": jc.name, "state": state.get("state") or "new", "pod": pod["pod_id"] if pod else None,
                "market": (pod.get("market") or "runpod") if pod else None,
                "gpu": pod["gpu_type_id"] if pod else None, "kind": pod["kind"] if pod else None,
                "bid": pod.get("bid_per_gpu") if pod else None, "spent": round(spent, 6),  # as `report`: one rounding
                "budget": None if owner else jc.policy.budget, "work_h": round(work, 3),
                "hours": None if owner else jc.job.work_hours,
                # The one the tick decides by (a relative one counts from the first tick that saw the job).
                "deadline": to_iso(deadline) if not owner and (deadline := jc.job_spec(window_start(state)).deadline)
                else None,
                "interruptions": interruptions,
                "note": elsewhere[-1] if owner else "; ".join(
                    n for n in (f"{jc.name}: {cannot}" if cannot else state.get("note"), billing and billing[1])
                    if n) or None,
            })
        # A job taken out of bidder.toml whose pod still bills (the tick says so each time; `jobs` left it
        # out, so the list of jobs showed nothing running while a pod billed for days).
        for pod in store.managed_pods(states=["active"]):
            name = pod.get("job") or ""
            what = left_billing(pod)  # (as the tick names such a pod)
            if name in config.jobs or store.is_launch(name) or what is None \
                    or other_config(store.job_state(name) or {}, config_path) is not None:
                continue
            stop = f"bidder jobs stop {name}"
            rows.append({"job": name, "state": "unmanaged", "pod": pod["pod_id"], "market": pod.get("market") or "runpod",
                         "gpu": pod["gpu_type_id"], "kind": pod["kind"], "bid": pod.get("bid_per_gpu"),
                         "spent": None, "budget": None, "work_h": None, "hours": None, "deadline": None,
                         "interruptions": None, "note": f"not in {config_path}: its pod {what}; stop it with `{stop}`"})
            elsewhere.append(f"{name}: not in {config_path}, but its pod {pod['pod_id']} {what}: stop it with `{stop}`")
    columns = ["job", "state", "pod", *_market_column(rows), "gpu", "kind", "bid", "spent", "budget", "work_h",
               "hours", *(["deadline"] if any(r["deadline"] for r in rows) else []), "interruptions"]
    if fmt in ("json", "csv"):  # (a script's columns never come and go: market and deadline always)
        columns = ["job", "state", "pod", "market", "gpu", "kind", "bid", "spent", "budget", "work_h", "hours",
                   "deadline", "interruptions"]
        emit_rows(rows, [*columns, "note"], fmt)
        for name, why in refused.items():  # (in the note column too; a script's reader may not look there)
            click.echo(f"warning: {name}: cannot run: {why}", err=True)
    elif rows:
        emit_rows(rows, columns, "table")
        for line in elsewhere:
            click.echo(line)
    else:
        click.echo(f"no jobs in {config_path}")


def _refused_gpus(store: Store, config: Config) -> dict[str, str]:
    """Job -> why `bidder tick` refuses its GPU names on this database (`gpu` matching no GPU type of its
    market, a `speed` key that is no GPU type id), checked as the tick checks them: `bidder jobs` listed
    such a job as new, exit 0, while every tick of the file failed. Names it cannot check yet (a market
    never collected here, whose catalogue the tick fetches first) are left to the tick."""
    from bidder.gpu_names import check_gpu_ids, resolve_gpu_types

    known = store.gpu_type_names()
    if not known:
        return {}
    held = {m: {key[0] for key in store.markets(m)} for m in ("runpod", "vast")}
    refused = {}
    fix = f"`bidder tick` refuses {config.path} until it is fixed (no job of it runs)"
    for name, jc in config.jobs.items():
        try:
            check_gpu_ids([gpu for gpu, _ in jc.job.speed_factors], known)
        except ConfigError as exc:
            refused[name] = f"[jobs.{name}] speed: {exc}; {fix}"
            continue
        market = (jc.job.market or "any").lower()
        if not jc.job.gpu_types:
            continue
        names = known if market not in held else {i: n for i, n in known.items() if i in held[market]}
        try:
            resolve_gpu_types(jc.job.gpu_types, names)
        except ConfigError as exc:
            markets = _tick_markets() if market == "any" else [market]
            if all(store.last_collection_ts(market=m) is not None for m in markets):
                refused[name] = f"[jobs.{name}] gpu: {exc}; {fix}"
    return refused


def _tick_markets() -> list[str]:
    """The markets a tick runs a job of market `any` on: those with a key (RunPod's when neither has one)."""
    try:
        vast_key = bool(resolve_vast_api_key())
        return [*(["runpod"] if resolve_api_key() or not vast_key else []), *(["vast"] if vast_key else [])]
    except click.ClickException:  # (an unreadable config.toml: said by the commands that use the keys)
        return ["runpod", "vast"]


def _after_subcommand(func: Callable[..., Any]) -> Callable[..., Any]:
    """`bidder jobs`'s --config and --db, accepted after the subcommand too (`bidder jobs stop x --db f`)."""
    func = click.option("--config", "sub_config_path", default=None, type=click.Path(dir_okay=False),
                        callback=_checked_config, metavar="FILE", help=f"The managed jobs file (as `bidder jobs --config`; default "
                        f"{DEFAULT_CONFIG}).")(func)
    return click.option("--db", "sub_db_path", default=None, type=click.Path(dir_okay=False), metavar="FILE",
                        callback=lambda ctx, param, value: None if value is None else expand_db_path(ctx, param, value),
                        help="SQLite file holding price history and the ledger (as `bidder jobs --db`; "
                             "env BIDDER_DB).")(func)


def _refuse_if_run_elsewhere(db_path: str, name: str, config_path: str) -> None:
    """`jobs stop`/`start` act on a job only from the bidder.toml that runs it: from another file on
    the same database, `jobs stop` ended the first file's pod by its own on_finish (terminate, where the
    owner said stop)."""
    if not Path(db_path).exists():
        return
    with Store.open(db_path, create=False) as store:
        owner = other_config(store.job_state(name) or {}, config_path)
    if owner is not None:
        raise BidderError(f"job {name} is run by {owner} on this database, not by {config_path}: give "
                          f"--config {owner} to act on it")


def _job_names(ctx: click.Context, name: str, config_path: str | None = None,
               db_path: str | None = None) -> tuple[JobConfig, str, str]:
    config_path = config_path or ctx.obj["config_path"]
    config = load_config(config_path)
    return config.job(name), db_path or ctx.obj["db_path"], config_path


@jobs.command("stop", epilog="\b\nExample:\n  bidder jobs stop train")
@click.argument("name")
@click.option("--dry-run", is_flag=True, help="Show what it would send; change nothing.")
@wait_option
@now_option
@allow_past_option
@api_options
@vast_options
@_after_subcommand
@click.pass_context
def jobs_stop(ctx: click.Context, name: str, dry_run: bool, lock_wait: float, now_text: str | None,
              allow_past: bool, api_url: str, vast_url: str, sub_config_path: str | None, sub_db_path: str | None
              ) -> None:
    """End a job: stop or terminate its pod (per on_finish) and mark it finished. A job no longer in
    bidder.toml (or a `bidder launch`'s) whose pod the ledger has: its pod is stopped, as is a job's
    while bidder.toml cannot be read. Waits for a running tick to finish first (--wait)."""
    config_path = sub_config_path or ctx.obj["config_path"]
    db_path = sub_db_path or ctx.obj["db_path"]
    # A user of `bidder launch` alone has no bidder.toml: a launch's pod is still ended by its name.
    unread = None
    try:
        config = load_config(config_path) if Path(config_path).exists() else parse_config({}, config_path)
    except ConfigError as exc:
        # A broken file (a typo mid-edit) stops every tick: the job's pod is still ended, from the ledger,
        # as a removed job's is (stopped: its on_finish is in the file).
        config, unread = parse_config({}, config_path), str(exc)
    parse_now(now_text)
    # A job the tick no longer runs is still the user's to end: its pod would run (and bill) unwatched.
    _refuse_if_run_elsewhere(db_path, name, config_path)
    unlisted = None if name in config.jobs else _unlisted_job(config, name, db_path, unread)
    if unread is not None:
        click.echo(f"warning: {unread}; acting on {name} from the ledger: its pod is stopped, not terminated "
                   "(its on_finish cannot be read)", err=True)
    on_finish = config.jobs[name].on_finish if unlisted is None else "stop"  # its on_finish went with it
    # A mistyped --db was created (with its lock file) and the job "finished; it had no pod" while its
    # real pod ran on: refused, as `stop` and `jobs` refuse it.
    with open_existing_store(db_path, "no job has run yet") as store, _client(api_url) as client, \
            _closing(_vast_api(vast_url)) as vast:
        active = store.managed_pods(name, states=["active"])
        markets = {row.get("market") or "runpod" for row in active}
        _refuse_pods_without_key(active or ([r for r in store.managed_pods(name, states=["stopped"])
                                             if r.get("desired_status") != "TERMINATED"] if on_finish == "terminate"
                                            else []), vast, "terminate" if on_finish == "terminate" else "stop")
        now = api_now(store, _server_times(client, vast, markets), now_text, allow_past=allow_past)
        if not dry_run and unlisted is None:
            # Recorded first: the tick re-reads it before it acts, so even a tick that outlasts --wait ends the job.
            store.save_job_state(name, stop_requested=True, updated=now)
        undone = ("nothing was sent" if dry_run else "nothing was stopped" if unlisted is not None else
                  f"the stop is recorded and the next tick stops the job's pod ({on_finish})")
        # A dry run polls and records its `dry_run` actions in a scratch copy (the ledger is left as it was).
        with (contextlib.nullcontext() if dry_run else _tick_lock(store, lock_wait, undone)), \
                (dry_run_copy(store, now) if dry_run else contextlib.nullcontext(store)) as acting:
            exs = _executors(client, vast, acting, dry_run=dry_run)
            done = _finish_job(exs, acting, name, on_finish, now)
    click.echo(f"{name}: {unlisted + ': ' if unlisted else ''}{done}")


def _unlisted_job(config: Config, name: str, db_path: str, unread: str | None = None) -> str:
    """What a job that is not in bidder.toml is, when the ledger holds a pod of it to stop ("no longer
    in bidder.toml", or a launch's); else one line saying there is no such job, or nothing to stop.
    `unread`: why bidder.toml could not be read (its jobs unknown: every job is looked up in the ledger)."""
    known = ", ".join(config.jobs) or "none"
    missing = ConfigError(f"no job {name!r} in {config.path} (jobs: {known}) nor in the ledger {db_path}: "
                          "`bidder jobs` lists the jobs, `bidder pods --all` the pods", key=name, path=config.path)
    if unread is not None:
        missing = ConfigError(f"{unread}; no job {name!r} in the ledger {db_path} either: fix the file, or "
                              "`bidder pods --all` lists the pods (`bidder stop ID` stops one)", path=config.path)
    if not Path(db_path).exists():
        raise missing
    with Store.open(db_path, create=False) as store:
        state = store.job_state(name)
        pods = store.managed_pods(name)
        if state is None and not pods:
            raise missing
        launched = store.is_launch(name, state)
        if not store.managed_pods(name, states=["active"]):
            if unread is not None and not launched:  # (the job may still run once the file is fixed: say how to end it)
                raise BidderError(f"{unread}; job {name!r} has no pod running in the ledger, so nothing was stopped: "
                                  f"fix the file, then `bidder jobs stop {name}` ends the job")
            what = "(a `bidder launch`)" if launched else f"is no longer in {config.path} (jobs: {known}) and"
            raise BidderError(f"job {name!r} {what} has no pod running in the ledger: nothing to stop (`bidder pods "
                              "--all` shows its pods; `bidder stop ID --terminate` deletes one)")
    if launched:
        return "launched by `bidder launch`"
    return f"from the ledger ({config.path} could not be read)" if unread is not None else f"no longer in {config.path}"


def _finish_job(exs: dict[str, Executor], store: Store, name: str, on_finish: str, now: datetime) -> str:
    """Stop (or terminate) a job's pods and mark it finished; a pod stopped says what it bills on."""
    rows = store.managed_pods(name, states=["active"])
    parts = []
    ex = exs["runpod"]
    for row in rows:
        ex = _executor_for(exs, row)
        try:
            pod = ex.client.pod(row["pod_id"])
        except PodNotFound:
            pod = None
        ex.observe(row, pod, now)
        row = store.pod(row["pod_id"]) or row
        if pod is None:
            continue
        terminate = on_finish == "terminate"
        # A paused Vast instance resumes by itself: stopped even when it is not running now.
        if terminate or pod.desired_status == "RUNNING" or row.get("market") == "vast":
            request = ex.stop_pod(row, now, reason="stopped by `bidder jobs stop`", terminate=terminate)
            # Stopped, what it bills on is said, as `bidder stop` says it (a 40 GB volume billed on unsaid).
            parts.append(f"{'would ' if request else ''}{'terminate' if terminate else 'stop'} pod {row['pod_id']}"
                         + (f": {request.to_json(indent=None)}" if request else "")
                         + (f"; {_kept_bill(store.pod(row['pod_id']) or row)}" if not terminate and not request else ""))
        else:
            if not ex.dry_run:
                store.set_pod_state(row["pod_id"], state="stopped", ended=now, note="stopped by `bidder jobs stop`")
            parts.append(f"pod {row['pod_id']} {'is' if ex.dry_run else 'was'} already stopped")
    if not rows:
        # A pod kept stopped (a budget stop, `bidder stop`) still bills its disk: ended as on_finish says, or named.
        for row in [r for r in store.managed_pods(name, states=["stopped"]) if r.get("desired_status") != "TERMINATED"]:
            kept = _executor_for(exs, row)
            if on_finish == "terminate":
                request = kept.stop_pod(row, now, reason="stopped by `bidder jobs stop`", terminate=True)
                parts.append(f"{'would ' if request else ''}terminate its stopped pod {row['pod_id']}"
                             + (f": {request.to_json(indent=None)}" if request else ""))
            else:
                parts.append(f"its pod {row['pod_id']} is kept stopped, its disk billed (`bidder stop "
                             f"{row['pod_id']} --terminate` deletes it)")
    lost = (store.job_state(name) or {}).get("pending_name")
    if lost:  # "it had no pod" while a create may still land read as nothing left to watch
        parts.append(f"its create of a pod named {lost} got no answer: if that pod lands, the next tick retires it")
    if not ex.dry_run:
        store.save_job_state(name, state="finished", finished=now, stop_requested=None,
                             note="stopped by `bidder jobs stop`", updated=now)
    return ("finished; " if not ex.dry_run else "[dry run] ") + ("; ".join(parts) or "it had no pod")


@jobs.command("start", epilog="\b\nExample:\n  bidder jobs start train")
@click.argument("name")
@wait_option
@_after_subcommand
@click.pass_context
def jobs_start(ctx: click.Context, name: str, lock_wait: float, sub_config_path: str | None,
               sub_db_path: str | None) -> None:
    """Let the tick run a held job again (held after a stop outside bidder, or at its budget)."""
    _, db_path, config_path = _job_names(ctx, name, sub_config_path, sub_db_path)  # the job must exist in the config
    _refuse_if_run_elsewhere(db_path, name, config_path)
    with open_existing_store(db_path, "no job has run yet") as store, \
            _tick_lock(store, lock_wait, f"job {name} was not changed"):  # (a typo'd --db is not created)
        state = store.job_state(name) or {}
        if state.get("state") == "finished":
            pods = store.managed_pods(name)
            kept = pods[-1]["pod_id"] if pods and pods[-1].get("state") == "stopped" else None
            raise BidderError(f"job {name} is finished; to run it again give it a new name in {config_path}"
                              + (f" (its pod {kept} is kept stopped, its volume billed: `bidder stop {kept} "
                                 "--terminate` ends it); to pause a job and resume it on its own pod later, stop "
                                 f"the pod instead (`bidder stop POD`, then `bidder jobs start {name}`)"
                                 if kept else ""))
        store.save_job_state(name, state="new", note=None, stop_requested=None, budget_at_stop=None,
                             resume_failures=None, stop_intent=None,  # (a leftover intent would hold it again)
                             outside_end=None)  # (nor may an outside stop seen since)
        pod_id = reopen_stopped_pod(store, name)
    click.echo(f"{name}: the next tick runs it" + (f" (it resumes pod {pod_id}, where its volume is)" if pod_id else ""))


# -- pods and stop -----------------------------------------------------------------------------------
@main.command("pods", epilog=_EXAMPLE_PODS)
@click.option("--all", "show_all", is_flag=True, help="Also pods that bill nothing any more: stopped (a Vast "
              "instance kept stopped bills its disk, a RunPod pod its volume if it has one: those are always "
              "listed), retired or lost.")
@click.option("--refresh", is_flag=True, help="Poll the API first (records an observation of each pod).")
@format_option("table", "json", "csv")
@now_option
@allow_past_option
@db_option
@api_options
@vast_options
def pods(show_all: bool, refresh: bool, fmt: str, now_text: str | None, allow_past: bool, db_path: str,
         api_url: str, vast_url: str) -> None:
    """Managed pods of every market with status, price, uptime and spend (from the ledger). --refresh polls on the
    API's clock (the emulator's when pointed at `bidder sim serve`) or --now."""
    parse_now(now_text)
    access: dict[str, str] = {}  # (--refresh) pod id -> how to reach it, from the pod list just read
    with open_existing_store(db_path, "no pods yet") as store:
        if refresh:
            active = store.managed_pods(states=["active"])
            # As the tick does: a pod to retire and a stopped Vast instance (its disk) still bill. A stopped
            # RunPod pod too (its volume, if any): one deleted in RunPod's console is no longer listed.
            kept = [r for r in store.managed_pods(states=["retiring", "stopped"])
                    if r.get("state") == "retiring" or r.get("market") == "vast"
                    or r.get("desired_status") != "TERMINATED"]
            access = _poll_pods(store, active, kept, api_url, vast_url, now_text, allow_past)
        rows = []
        polled: list[datetime] = []  # the last poll of each listed pod whose figures move on (a tick polls it)
        unknown = False  # a stopped RunPod pod left out whose volume the ledger does not know: it may bill
        for row in store.managed_pods(states=None if show_all else ["active", "retiring", "stopped"]):
            if not show_all and not _bills(row, store.comes_back(row)):
                unknown = unknown or (row.get("market") != "vast" and row.get("desired_status") != "TERMINATED"
                                      and _kept_volume(row) is None)
                continue
            observations = store.observations(row["pod_id"])
            last = observations[-1] if observations else None
            if row.get("market") == "vast":  # its total running time: as true of an instance that ended
                uptime = next((o["uptime_seconds"] for o in reversed(observations)
                               if o.get("uptime_seconds") is not None), None)
            else:  # RunPod's counts the current run: none once the pod stopped (the row's status, not the last poll's)
                running = (row.get("desired_status") or (last or {}).get("desired_status")) == "RUNNING"
                uptime = last.get("uptime_seconds") if last and running else None
            storage = None if last is None or last.get("storage_per_hr") is None else float(last["storage_per_hr"])
            if last is not None and (row.get("desired_status") or last["desired_status"]) != "TERMINATED" and (
                    row.get("state") in ("active", "retiring") or row.get("market") == "vast"):
                polled.append(last["ts"])  # (a stopped RunPod pod's figures stay as they are: no tick polls it)
            # (the pod's own status: a stop bidder sent is known before any poll after it)
            if (row.get("desired_status") or (last or {}).get("desired_status")) == "TERMINATED":
                rate: float | None = None  # deleted: it bills nothing now (Vast's storage showed on)
            elif last is not None and (row.get("desired_status") or last["desired_status"]) != "RUNNING":
                # A stopped or paused Vast instance bills its disk alone; a stopped RunPod pod, its volume
                # (`volume_gb`: RunPod's answers do not price it): not the GPU's price it showed while it ran.
                rate = storage
            else:
                rate = None if last is None or last.get("cost_per_hr") is None else (
                    float(last["cost_per_hr"]) + (storage or 0.0))  # Vast: + storage
            rows.append({"pod": row["pod_id"], "market": row.get("market") or "runpod", "job": row.get("job"),
                         "name": row.get("name"),
                         "gpu": row.get("gpu_type_id"), "cloud": row.get("cloud"), "gpus": row.get("gpu_count"),
                         "kind": row.get("kind"), "bid": _money(row.get("bid_per_gpu")),
                         "status": _shown_status(row, fmt, store),
                         "state": row.get("state"),
                         "cost_per_hr": _money(rate),
                         # A table shows "20m"; json and csv give numbers: the uptime in hours.
                         **({"uptime": format_duration(uptime) if uptime is not None else None} if fmt == "table"
                            else {"uptime_h": round(float(uptime) / 3600, 4) if uptime is not None else None}),
                         "spent": round(estimate_spend(observations), 6),  # as `report` and `jobs`: one rounding
                         "interruptions": row.get("interruptions"),
                         "last_seen": to_iso(row["last_seen"]) if row.get("last_seen") else None,
                         # A RunPod pod's volume disk, billed while it is stopped (None: unknown, or Vast's).
                         "volume_gb": row.get("volume_in_gb") if row.get("market") != "vast" else None,
                         "access": access.get(row["pod_id"])})
        # The ledger's figures are as of each pod's last poll: an hour after a launch they read "RUNNING 0s 0.000".
        stale = None if refresh or not polled or fmt != "table" else _stale_polls(store, max(polled), now_text)
    columns = ["pod", *_market_column(rows), "job", "gpu", "kind", "bid", "status", "cost_per_hr", "uptime", "spent",
               "interruptions"]
    if fmt != "table":
        columns = list(rows[0]) if rows else columns
    if not rows and fmt == "table":
        click.echo("no managed pods" + ("" if show_all else " billing") + (
            " (use --all for stopped ones: a stopped RunPod pod's volume, if it has one, bills)" if unknown else ""))
        return
    emit_rows(rows, columns, fmt)
    if stale:
        click.echo(stale)
    if fmt == "table":  # how to reach each running pod (its ports, once the container is up)
        for row in rows:
            if row["access"]:
                click.echo(f"{row['pod']}: {row['access']}")
        # Kept stopped, a pod bills its disk until it is deleted (RunPod's answers do not price the volume);
        # so does a RunPod pod outbid (or reclaimed) that nothing bids for again (shown EXITED, not PAUSED).
        kept = [r for r in rows if (r["state"] == "stopped" or (r["state"] == "active" and r["status"] == "EXITED"))
                and r["status"] != "TERMINATED"]
        for r in kept:
            if r["market"] == "runpod" and r["volume_gb"]:
                how = "stopped" if r["state"] == "stopped" else "stopped by RunPod and not bid for again"
                click.echo(f"{r['pod']}: {how}, it keeps its {r['volume_gb']} GB volume, which RunPod bills while "
                           f"it is stopped: `bidder stop {r['pod']} --terminate` deletes it")
        for market, said in (("runpod", "stopped RunPod pods keep their volume disk, which RunPod bills while they "
                                        "are stopped"),
                             ("vast", "stopped Vast instances keep their disk, whose storage Vast bills until "
                                      "they are destroyed")):
            # (a RunPod pod known to have no volume bills nothing stopped; one known to have one is named above)
            ids = [r["pod"] for r in kept if r["market"] == market and (market == "vast" or r["volume_gb"] is None)]
            if ids:
                click.echo(f"{said}: `bidder stop {ids[0]} --terminate` deletes one")


def _poll_pods(store: Store, active: list[dict[str, Any]], kept: list[dict[str, Any]], api_url: str, vast_url: str,
               now_text: str | None, allow_past: bool) -> dict[str, str]:
    """`pods --refresh`'s poll of each market of the ledger's pods (and of a launch's lost create): pod id ->
    how to reach it, from the pod lists read. A market with no key here is not asked (RunPod's pod list
    needs one: with Vast's key alone the whole refresh failed at it); its pods are listed as last seen,
    and stderr says so."""
    held = {row.get("market") or "runpod" for row in (*active, *kept)}
    wanted = set(held)
    lost = Executor.lost_launch_creates(store)  # a launch's create may have landed since it said "nothing launched"
    vast = _vast_api(vast_url) if "vast" in wanted or lost else None
    if lost:
        wanted |= {"runpod"} | ({"vast"} if vast is not None else set())
    keyless = {m for m in wanted if not (resolve_api_key() if m == "runpod" else vast is not None)}
    for market in sorted(keyless & held):
        # (Both places a key may live, as the other key messages say: a config.toml user read only the variable.)
        key = ("RUNPOD_API_KEY, or api_key" if market == "runpod" else "VAST_API_KEY, or vast_api_key")
        click.echo(f"warning: the pods on {market} were not polled: no {MARKET_NAMES[market]} key is set ({key} in "
                   "~/.config/bidder/config.toml); they are listed as last seen", err=True)
    wanted -= keyless
    if not wanted:
        if vast is not None:
            vast.close()
        return {}
    with _client(api_url) as client, _closing(vast):
        exs = _executors(client, vast, store)
        # Each market's list first: its answer tells the emulator's time, whichever market it is.
        listings = {m: {p.id: p for p in ex.client.pods()} for m, ex in exs.items() if m in wanted}
        reach = {p.id: _pod_access(p) for listing in listings.values() for p in listing.values()
                 if p.desired_status == "RUNNING"}
        times = ServerTimes(client if "runpod" in wanted else None,
                            vast.client if vast is not None and "vast" in wanted else None)
        now = api_now(store, times, now_text, allow_past=allow_past)
        # A launch's create in flight is not a lost one: adopted only while no launch (or tick)
        # holds the tick's lock (else a tick adopts it, or the next refresh).
        with _lock_if_free(store) as adopting:
            for market, listing in listings.items():
                for pod in exs[market].adopt_launched(list(listing.values()), now) if adopting else []:
                    click.echo(f"note: pod {pod.id} named {pod.name}, from a launch that said nothing was "
                               f"launched, is running: watched from now on (`bidder stop {pod.id}` stops it)",
                               err=True)
        for market, listing in listings.items():
            ex = exs[market]
            for row in (r for r in active if (r.get("market") or "runpod") == market):
                # A pod missing from the list is asked for by id: a list is no proof that it ended.
                pod = listing.get(row["pod_id"]) or ex.confirm(row["pod_id"])
                ex.observe(row, pod, now)
                _note_volume(store, row, pod)
            for row in (r for r in kept if (r.get("market") or "runpod") == market):
                _poll_kept(store, ex, row, listing.get(row["pod_id"]), now)
        for event in (e for ex in exs.values() for e in ex.log if e["event"] in ("rejected_observation",
                                                                                   "price_changed",
                                                                                   "restarted_outside")):
            click.echo(f"warning: {event.get('message', '')}", err=True)  # as the tick says it
    return {pod_id: "; ".join(lines) for pod_id, lines in reach.items() if lines}


#: `bidder pods` says its figures are old when the newest poll is older than this (a tick polls every few minutes).
STALE_POLL = timedelta(minutes=15)


def _stale_polls(store: Store, newest: datetime, now_text: str | None) -> str | None:
    """The note under `pods`' table when its figures are old: as of the newest poll of the pods it lists,
    over STALE_POLL before now (--now, the emulator's time that stamped the newest data, or the wall clock)."""
    now = db_now(store, now_text, allow_past=True, say=False)
    age = now - newest
    if age <= STALE_POLL:
        return None
    when = f"{newest:%H:%M}" if age < timedelta(days=1) else f"{newest:%Y-%m-%d %H:%M}"
    return f"as of the last poll at {when} UTC ({format_duration(age.total_seconds())} ago): --refresh polls now"


def _poll_kept(store: Store, ex: Executor, row: dict[str, Any], pod: Pod | None, now: datetime) -> None:
    """`pods --refresh`'s poll of a pod kept to retire or kept stopped, as the tick's: one the listing
    left out is asked for by id, and only the API's "not found" marks it gone (a listing, empty or not,
    proves nothing); an answer that cannot be read leaves it as it was, and listed."""
    if pod is None:
        try:
            pod = ex.confirm(row["pod_id"])
        except ApiError as exc:
            click.echo(f"warning: pod {row['pod_id']} could not be read ({exc}): listed as last seen", err=True)
            return
        if pod is None:  # gone: booked and marked as `stop` marks a pod deleted outside bidder
            ex.observe(row, None, now)
            return
    ex.bill_kept(row, pod, now)
    _note_volume(store, row, pod)


def _note_volume(store: Store, row: Mapping[str, Any], pod: Pod | None) -> None:
    """A RunPod pod's volume as RunPod's answer gives it (`volumeInGb`), into the ledger when it is news:
    it tells whether the pod bills while stopped."""
    if pod is None or pod.invalid is not None or pod.volume_in_gb is None:
        return
    if (row.get("market") or "runpod") == "runpod" and row.get("volume_in_gb") != pod.volume_in_gb:
        store.set_pod_state(row["pod_id"], volume_in_gb=pod.volume_in_gb)


def _shown_status(row: Mapping[str, Any], fmt: str, store: Store) -> str | None:
    """The status a table shows: the market's, except that a pod bidder still manages that exited is
    PAUSED (outbid or reclaimed: a Vast instance resumes by itself and bills its disk meanwhile, a
    RunPod pod waits for a tick's new bid; or stopped by a tick to be resumed), as `report` shows it;
    EXITED read as stopped for good. A RunPod pod nothing bids for again (`Store.comes_back`: a `bidder
    launch`'s, or one of a job taken out of bidder.toml) is EXITED: it showed PAUSED, said to wait for a
    tick's new bid that never comes. JSON and CSV keep the market's status beside the ledger's `state`."""
    status = row.get("desired_status")
    paused = fmt == "table" and status == "EXITED" and row.get("state") == "active"
    return "PAUSED" if paused and store.comes_back(row) else status


def _bills(row: Mapping[str, Any], comes_back: bool = True) -> bool:
    """Whether a managed pod bills, as far as the ledger can tell: active, still to retire, a Vast
    instance kept stopped (its disk bills storage until it is destroyed), a RunPod pod kept stopped
    with a volume disk, or one restarted outside bidder. One known to have none bills nothing stopped (`--volume` defaults to 0); one
    whose volume the ledger does not know (recorded before it held them) is listed by --all, with a
    line on how to delete it. An active RunPod pod exited that nothing bids for again (`comes_back`
    False: a `bidder launch`'s outbid) is as one kept stopped: it was listed with no volume, billing nothing."""
    runpod = (row.get("market") or "runpod") == "runpod"
    if row.get("state") == "active" and row.get("desired_status") == "EXITED" and runpod and not comes_back:
        return _kept_volume(row) != 0
    if row.get("state") in ("active", "retiring") or row.get("desired_status") == "RUNNING":
        return True  # (a pod kept stopped that was restarted outside bidder runs and bills)
    if row.get("desired_status") == "TERMINATED":
        return False
    return row.get("market") == "vast" or (row.get("state") == "stopped" and bool(_kept_volume(row)))


def _kept_volume(row: Mapping[str, Any]) -> int | None:
    """A RunPod pod's volume in GB as the ledger holds it (0: none; None: unknown)."""
    value = row.get("volume_in_gb")
    return None if value is None else int(value)


def _money(value: Any) -> float | None:
    """A price or rate for output: USD to 1/100 of a cent (0.20650000000000002 -> 0.2065)."""
    return None if value is None else round(float(value), 4)


@main.command("stop", epilog=_EXAMPLE_STOP)
@click.argument("pod_id", required=False)
@click.option("--job", "job_name", default=None, help="Stop the pod of this managed job instead.")
@click.option("--terminate", is_flag=True, help="Delete the pod (and its volume) instead of stopping it.")
@click.option("--dry-run", is_flag=True, help="Show the request; send nothing.")
@wait_option
@now_option
@allow_past_option
@db_option
@api_options
@vast_options
def stop(pod_id: str | None, job_name: str | None, terminate: bool, dry_run: bool, lock_wait: float,
         now_text: str | None, allow_past: bool, db_path: str, api_url: str, vast_url: str) -> None:
    """Stop (or --terminate) a pod by id, or the pod of a managed job (--job). A managed job whose
    pod you stop is held: the tick does not restart it until `bidder jobs start NAME`. Waits for a
    running tick to finish first (--wait), so the tick cannot undo the stop."""
    if (pod_id is None) == (job_name is None):
        raise click.UsageError("give a POD id or --job NAME (one of them)")
    if pod_id is not None:
        checked_pod_id(pod_id)
    if job_name is not None:
        checked_job_name(job_name)
    parse_now(now_text)
    with contextlib.ExitStack() as stack:
        # As `pods` does: a mistyped --db was created (and a pod of the real ledger stopped as unmanaged).
        store = stack.enter_context(open_existing_store(db_path, "no pods yet"))
        client = stack.enter_context(_client(api_url))
        if not dry_run:
            stack.enter_context(_tick_lock(store, lock_wait, "nothing was stopped"))
        if job_name is not None:
            rows = store.managed_pods(job_name, states=["active"])
            # A finished (or budget-stopped) job's kept pod is stopped, its disk billed on: --terminate ends it.
            kept = store.managed_pods(job_name, states=["stopped"])
            if not rows and terminate:
                rows = kept
            if not rows:
                hint = (f"; its pod {kept[-1]['pod_id']} is kept stopped: add --terminate to delete it" if kept
                        else "")
                raise BidderError(f"job {job_name} has no active pod in the ledger{hint} (see `bidder pods --all`)")
        else:
            row = store.pod(pod_id or "")
            rows = [row] if row is not None else []
            if not rows and not dry_run and not resolve_api_key():  # (nothing is sent to RunPod without its key)
                raise BidderError(f"no pod {pod_id} in bidder's ledger (`bidder pods --all` lists the pods it knows, "
                                  "on every market); one it does not manage is stopped on RunPod only, and no "
                                  "RunPod key is set (RUNPOD_API_KEY); a Vast instance of your own: Vast's console")
        markets = {r.get("market") or "runpod" for r in rows} or {"runpod"}  # a pod bidder does not know: RunPod's
        vast = stack.enter_context(_closing(_vast_api(vast_url) if "vast" in markets else None))
        _refuse_pods_without_key([r for r in rows if r.get("state") not in ("terminated", "gone")], vast,
                                 "terminate" if terminate else "stop")
        now = api_now(store, _server_times(client, vast, markets), now_text, allow_past=allow_past)
        if dry_run:  # its poll and `dry_run` action go to a scratch copy: the ledger is left as it was
            store = stack.enter_context(dry_run_copy(store, now))
        exs = _executors(client, vast, store, dry_run=dry_run)
        if not rows:  # a pod bidder does not manage: still the user's to stop (RunPod's)
            request = client.build_terminate(pod_id or "") if terminate else client.build_stop(pod_id or "")
            try:
                if dry_run:
                    if resolve_api_key():  # looked up (a read): a dry run of a wrong id printed a request, exit 0
                        client.pod(pod_id or "")
                    _print_requests([request])
                    return
                if terminate:
                    client.terminate(pod_id or "")
                else:
                    client.stop(pod_id or "")
            except PodNotFound as exc:
                raise BidderError(f"no pod {pod_id}: not in bidder's ledger, and RunPod has none by that id ({exc}); "
                                  "`bidder pods --all` lists the pods bidder knows, on every market") from None
            click.echo(f"{'terminated' if terminate else 'stopped'} pod {pod_id} (not managed by bidder)")
            return
        for row in rows:
            if row.get("state") in ("terminated", "gone"):
                # Its end is in the ledger already: polled again, "not found" read as a pod gone outside
                # bidder, and a terminate of its own was rewritten as `gone`.
                click.echo(f"pod {row['pod_id']} is already {row['state']} (ended {_ended_at(row)}): nothing to stop")
                continue
            ex = _executor_for(exs, row)
            try:
                pod = ex.client.pod(row["pod_id"])
                ex.observe(row, pod, now)
                if not dry_run:
                    _note_volume(store, row, pod)
            except PodNotFound:
                ex.observe(row, None, now)
                click.echo(f"pod {row['pod_id']} no longer exists (marked gone in the ledger)")
                continue
            row = store.pod(row["pod_id"]) or row
            launched = bool(row.get("job")) and store.is_launch(row["job"])
            # A job already ended (finished, or at its budget) stays so when its kept pod is stopped or
            # deleted: held, `bidder jobs` showed a finished job as waiting for `jobs start`.
            ended = (store.job_state(row["job"]) or {}).get("state") if row.get("job") and not launched else None
            ended = ended if ended in ("finished", "budget_stopped") else None
            # A launch's job is held too (nothing may restart it), but no `jobs start` brings it back.
            held = (f"pod {row['pod_id']} stopped by `bidder stop`" if launched else
                    f"held: pod stopped by `bidder stop`; `bidder jobs start {row['job']}` to continue"
                    if row.get("job") and ended is None else None)
            if held is not None and not dry_run:
                # Written before the stop is sent: a stop whose answer never comes still ends the job held.
                store.save_job_state(row["job"], stop_intent={"pod_id": row["pod_id"], "at": to_iso(now),
                                                              "job": {"state": "held", "note": held}})
            would_send = ex.stop_pod(row, now, reason="stopped by `bidder stop`", terminate=terminate)
            if would_send is not None:
                _print_requests([would_send])
                continue
            if held is not None and not dry_run:
                store.save_job_state(row["job"], state="held", updated=now, note=held, stop_intent=None)
            click.echo(_stopped_line(row, terminate, launched, ended))


def _ended_at(row: dict[str, Any]) -> str:
    ended = row.get("ended")
    return to_iso(ended) if isinstance(ended, datetime) else str(ended or "at an unknown time")


def _stopped_line(row: dict[str, Any], terminate: bool, launched: bool, ended: str | None = None) -> str:
    """What `bidder stop` did to the pod, and what becomes of it and of its job (`ended`: the state of a
    job already finished or stopped at its budget, which it keeps)."""
    market = row.get("market") or "runpod"
    done = (f"{'terminated' if terminate else 'stopped'} pod {row['pod_id']}"
            + (f" on {market}" if market != "runpod" else ""))
    if ended is not None:
        return done + f" (job {row['job']} stays {ended.replace('_', ' ')})"
    if not launched:
        return done + (f" (job {row['job']} is held)" if row.get("job") else "")
    disk = "disk" if market == "vast" else "volume"
    if terminate:
        return f"{done} (launched by `bidder launch`): deleted, with its {disk}"
    return f"{done} (launched by `bidder launch`): it no longer runs and nothing restarts it; {_kept_bill(row)}"


def _kept_bill(row: dict[str, Any]) -> str:
    """What a pod kept stopped bills on, and how to delete it."""
    delete = f"`bidder stop {row['pod_id']} --terminate`"
    volume = _kept_volume(row)
    if (row.get("market") or "runpod") == "vast":
        return f"Vast bills its disk's storage until {delete}"
    if volume is None:  # (a pod recorded before the ledger held volumes)
        return f"RunPod bills its volume disk, if it has one, while it is stopped: {delete} deletes it with its volume"
    if volume:
        return f"RunPod bills its {volume} GB volume while it is stopped: {delete} deletes it with its volume"
    return f"it has no volume, so it bills nothing while stopped ({delete} deletes it)"
