"""`bidder recommend`: what to buy for a job now, from the price history in the database.

The logic is `bidder.advisor.advise` (latest snapshot + history -> market statistics -> optimizer);
this module parses options, finds the time (`--now`, the emulator's, or the wall clock: bidder.cli.timing),
optionally takes a fresh snapshot,
and prints the decision, the alternatives and the reasons as a table or one JSON object.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

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
    check_market_cloud,
    db_option,
    emit_rows,
    format_option,
    market_option,
    resolve_api_key,
    resolve_vast_api_key,
    vast_options,
)
from bidder.cli.timing import allow_past_option, api_now, db_now, parse_now, stale_note
from bidder.errors import ApiError, AuthError, BidderError, InsufficientHistory, KeyRefused
from bidder.executor import SPOT_FLAG, SPOT_GONE_MESSAGE, runpod_spot_gone
from bidder.jobs import MAX_DISK_GB, option_shown, restart_overhead_error
from bidder.models import Decision, JobSpec, Policy
from bidder.store import Store, discard_unused
from bidder.units import format_duration, to_iso

__all__ = ["decision_dict", "expected_interruptions", "recommend"]

_EXAMPLE = """\b
Examples:
  bidder recommend --gpu "RTX A6000" --hours 40 --deadline 3d --tolerance low
  bidder recommend --min-vram 48 --gpus 2 --keep-running --max-price 0.5 --format json
"""



def expected_interruptions(d: Decision, window_hours: float | None) -> float | None:
    """The expected interruptions over the work left: `expected_interruptions_per_day` is per day of
    the job's window (now to the deadline, `window_hours`; without one, to the expected completion),
    the unit the tolerance is held to, so the count is that rate times the window's days. None for a
    service (its rate is per day)."""
    window = window_hours if window_hours is not None else d.expected_completion_hours
    if window is None:
        return None
    return round(d.expected_interruptions_per_day * window / 24.0, 4)


def decision_dict(d: Decision, window_hours: float | None = None) -> dict[str, Any]:
    """One decision in the JSON shape scripts rely on (`bidder recommend --format json`);
    `window_hours`: the hours to the deadline, if any (`expected_interruptions`)."""
    return {
        "action": d.action,
        "gpu_type": d.gpu_type_id,
        "cloud": d.cloud,
        "gpu_count": d.gpu_count,
        "bid_per_gpu": d.bid_per_gpu if d.action == "spot" else None,
        "expected_cost_per_hour": d.expected_cost_per_hour,
        "expected_interruptions_per_day": d.expected_interruptions_per_day,
        "expected_total_cost": d.expected_total_cost,
        "expected_completion_hours": d.expected_completion_hours,
        "reasons": list(d.reasons),
        "market": d.market,
        "expected_interruptions": expected_interruptions(d, window_hours),  # added: the count, not a rate
        # added: the floor a wait acts at (the table's "until its spot floor ... $X"), else null
        "act_below": d.act_below if d.action == "wait" else None,
    }


_VAST_FAILED = "Vast prices not refreshed"


def _refresh_vast(store: Store, vast_url: str, now: datetime | None, notes: list[str], *, asked: bool,
                  now_text: str | None = None, allow_past: bool = False) -> datetime:
    """Vast's snapshot too, with the collector's offer filters (bidder.toml's), when a Vast key is
    set: a job open to Vast was decided on Vast's stored prices alone. A failure is a note (the
    stored history still serves when recent enough). `now` None: Vast alone is refreshed, and its
    answer tells the time (the emulator's), as RunPod's does; returns the command's time."""
    from bidder.cli.collect import vast_price_source
    from bidder.collector import HeldVastSource, collect_markets, describe
    from bidder.jobs import collect_settings
    from bidder.vast.summary import OfferFilters

    key = resolve_vast_api_key()
    if not key:
        if asked:  # (--market any without a Vast key: a RunPod user, nothing to say)
            notes.append("Vast prices not refreshed: no Vast API key (VAST_API_KEY, or vast_api_key in ~/.config/bidder/config.toml); using its stored history")
        return now if now is not None else db_now(store, now_text, allow_past=allow_past, notes=notes)
    saved = collect_settings()
    filters = OfferFilters(verified_only=saved["vast_verified_only"], min_reliability=saved["vast_min_reliability"])
    found, client = vast_price_source(key, vast_url, 2, filters, saved["vast_offers_days"])
    source = HeldVastSource(found.client, found.filters, found.offers_days)
    error: str | None = None
    try:
        if now is None:
            try:
                now = api_now(store, client, now_text, allow_past=allow_past)
            except ApiError as exc:  # (a Vast URL on this machine that never answers: its time is unknown)
                error = describe(exc)
        if error is None:
            _key_accepted("vast", source.hold(store, now))
            cycle = collect_markets([source], store, now=now, raise_if_all_failed=False)
            error = cycle.by_market[0].error
    finally:
        client.close()
    notes.append(f"{_VAST_FAILED} ({error}); using its stored history" if error
                 else f"refreshed Vast: {cycle.by_market[0].quotes} quotes at {to_iso(cycle.ts)}")
    if error and store.clock == "wall" and now_text is None:
        # No time told: the wall clock is not the history's (it may be the emulator's), as for RunPod.
        now = db_now(store, None, allow_past=allow_past, say=False)
    return now


def _key_accepted(market: str, answer: Any) -> None:
    """A refresh whose key the market refused is the command's error (KeyRefused), not a note: the
    stored prices serve when the API cannot be reached, but a wrong key is the user's to fix."""
    if isinstance(answer, AuthError):
        raise KeyRefused(market, answer)


def _refresh_failed(api_url: str, exc: ApiError) -> str:
    return f"--refresh failed: could not refresh prices from {api_url} ({exc})"


def _refresh(store: Store, api_url: str, gpus: int, now_text: str | None,
             allow_past: bool) -> tuple[datetime, ApiError | None, str]:
    """Take one snapshot through the collector, on the API's clock (or --now); a failure is a
    warning, the stored history still serves when it is recent enough. Returns the command's time,
    the refresh's error (None when it worked) and the note that says what happened."""
    from bidder.collector import HeldRunPodSource, collect_markets
    from bidder.runpod import RetryPolicy, RunPodClient

    with RunPodClient(api_key=resolve_api_key(), url=api_url, retry=RetryPolicy(attempts=2)) as client:
        try:
            # (An emulator's address that does not answer raises here: its time is unknown.)
            now = api_now(store, client, now_text, allow_past=allow_past)
            source = HeldRunPodSource(client, sorted({1, gpus}))
            _key_accepted("runpod", source.hold(store, now))  # (before anything of it is stored)
            result = collect_markets([source], store, now=now)
        except ApiError as exc:
            failed = _refresh_failed(api_url, exc)
            if store.clock != "wall":  # --now, or the emulator told its time
                return now, exc, f"{failed}; using the stored history"
            # The API told no time: the wall clock is not the history's (it may be the emulator's, years
            # away), so decide on the database's own, as `recommend` without --refresh does.
            now = db_now(store, None, allow_past=allow_past, say=False)
            emulated = store.emulator_time() is not None
            return now, exc, f"{failed}; using the stored history" + (
                f", as of {to_iso(now)}: the emulator's time (the newest snapshot in {store.path} was stamped by "
                "bidder's emulator; --now TIME to choose another)" if emulated else "")
    return now, None, f"refreshed: {result.quotes} quotes at {to_iso(result.ts)}"


def _runpod_cloud_has_prices(store: Store, cloud: str, market: str, db_path: str) -> None:
    """--cloud secure|community is RunPod's alone: with no RunPod prices stored (Vast's key alone collects
    Vast alone), nothing can match, and the optimizer said to "collect prices first", which the user had."""
    if cloud.lower() not in ("secure", "community") or "runpod" in store.market_names():
        return
    if resolve_api_key() or not resolve_vast_api_key():
        how = "collect them (`bidder collect`" + ("" if resolve_api_key() else ": RunPod's prices need no key") + ")"
    else:  # (`bidder collect` collects the markets with a key: Vast's alone here)
        how = ("collect them with `bidder collect --market runpod` (RunPod's prices need no key; no RunPod key is "
               "set, RUNPOD_API_KEY, which renting there needs)")
    vast = "" if market.lower() == "runpod" else ", or give --cloud verified, unverified or any to decide on Vast's"
    raise BidderError(f"--cloud {cloud.lower()} is a RunPod cloud, and {db_path} holds no RunPod prices (Vast's "
                      f"instances are VERIFIED or UNVERIFIED): {how}{vast}")


@main.command("recommend", epilog=_EXAMPLE)
@click.option("--gpu", "gpus_named", multiple=True, metavar="NAME",
              help="Acceptable GPU type (id, display name or a part of one; repeatable).")
@click.option("--min-vram", type=click.IntRange(min=1), default=None, metavar="GB",
              help="Any GPU type with at least this much VRAM (instead of --gpu).")
@click.option("--gpus", "gpu_count", type=click.IntRange(min=1, max=MAX_GPU_COUNT), default=1, show_default=True,
              help="GPUs per pod.")
@click.option("--cloud", type=CLOUD_CHOICE, default="any", show_default=True,
              help="Which cloud (RunPod: secure, community) or tier (Vast: verified, unverified).")
@market_option("any", "Which market: runpod, vast, or any (the cheapest plan over the markets with history).")
@click.option("--hours", type=FiniteRange(min=0, min_open=True, max=MAX_HOURS), default=None,
              help=f"{HOURS_HELP} (a batch job).")
@click.option("--keep-running", is_flag=True, help="A service with no end: optimise cost per hour.")
@click.option("--deadline", type=DURATION, default=None, help="Finish within this long from now, e.g. 3d (a unit is required: s, m, h, d, w).")
@click.option("--max-price", type=FiniteRange(min=0, min_open=True, max=MAX_PRICE), default=None,
              help="Most to pay per GPU-hour, bid or on-demand (USD).")
@click.option("--budget", type=FiniteRange(min=0, min_open=True), default=None, help="Most to spend on the whole job (USD).")
@click.option("--tolerance", type=TOLERANCE, default="medium", show_default=True,
              help="Interruptions per day you accept: none, low (0.5), medium (2), high (6) or a number.")
@click.option("--restart-overhead", type=DURATION, default="10m", show_default=True,
              help="Work lost at each restart, an interruption or a move (resume time plus work since the last checkpoint).")
@click.option("--min-savings", type=FiniteRange(min=0, max=1, max_open=True), default=0.15, show_default=True,
              help="Spot must beat on-demand by this share, after overheads, where the rates decide (--keep-running, "
                   "or no --deadline); a plan weighs spot against on-demand by its expected cost.")
@click.option("--min-wait-savings", type=FiniteRange(min=0, max=1), default=0.05, show_default=True,
              help="Without a deadline, a wait for the spot floor to fall under a bid must save this share of "
                   "what can start now; so must a job with --hours waiting for a floor already under the bid "
                   "to settle (a --keep-running service's is not held to it). With a --deadline only a wait for "
                   "the floor to fall is held to it, and only with no on-demand under the policy (--max-price "
                   "under it).")
@click.option("--disk", "disk_gb", type=click.IntRange(1, MAX_DISK_GB), default=40, show_default=True, metavar="GB",
              help="The pod's disk: Vast bills its storage on top of the GPU price, counted in the cost.")
@click.option("--refresh", is_flag=True, help="Take a fresh price snapshot first (an API that cannot be reached leaves the stored prices to "
                   "decide on; a refused key is an error).")
@click.option("--now", "now_text", default=None, metavar="TIME",
              help="Decide as of this ISO 8601 time (e.g. for imported traces). Default: the emulator's "
                   "time when the newest snapshot (or --refresh) came from `bidder sim serve`, else the wall clock.")
@allow_past_option
@format_option("table", "json")
@db_option
@api_options
@vast_options
def recommend(gpus_named: tuple[str, ...], min_vram: int | None, gpu_count: int, cloud: str, market: str,
              hours: float | None,
              keep_running: bool, deadline: Any, max_price: float | None, budget: float | None, tolerance: float,
              restart_overhead: Any, min_savings: float, min_wait_savings: float, disk_gb: int, refresh: bool,
              now_text: str | None,
              allow_past: bool, fmt: str, db_path: str, api_url: str, vast_url: str) -> None:
    """Recommend how to buy GPU time for a job: spot at which bid, on-demand, or wait.

    Reads the price history in the database (see `bidder collect`), estimates each market's
    availability and interruption rate per bid, and prints the best choice within your price cap,
    budget, deadline and interruption tolerance, with the alternatives it weighed and why.
    """
    from bidder.advisor import REFRESH_HINT, advise
    from bidder.cli.collect import market_filter, resolve_in_market, several_note

    if hours is None and not keep_running:
        raise click.UsageError("give the work with --hours N, or --keep-running for a service")
    if hours is not None and keep_running:
        raise click.UsageError("--hours and --keep-running exclude each other")
    if keep_running and deadline is not None:
        raise click.UsageError("--deadline applies to --hours jobs, not to --keep-running services")
    if any(not name.strip() for name in gpus_named):  # "" is in every name: it matched every GPU type
        raise click.BadParameter("must not be empty: give a GPU name such as \"RTX 4090\" (or leave --gpu out)",
                                 param_hint="--gpu")
    if gpus_named and min_vram is not None:
        raise click.UsageError("give either --gpu or --min-vram, not both")
    check_market_cloud(market, cloud)
    if deadline is not None and deadline.total_seconds() <= 0:
        raise click.BadParameter("the deadline must be in the future, e.g. 3d", param_hint="--deadline")
    if click.get_current_context().get_parameter_source("restart_overhead") is not ParameterSource.DEFAULT:
        given = {"restart_overhead": restart_overhead, "hours": hours, "deadline": deadline}
        problem = restart_overhead_error(restart_overhead, hours, deadline, lambda key: option_shown(key, given[key]))
        if problem:  # as `bidder launch` and bidder.toml refuse it
            raise click.UsageError(problem)
    parse_now(now_text)
    created = refresh and not Path(db_path).exists()
    store = Store.open(db_path, create=refresh)
    notes: list[str] = []
    refresh_error: ApiError | None = None
    try:
        # Vast's market, or any with Vast's key alone: RunPod is not asked (nor told of a failure).
        vast_alone = market.lower() == "vast" or (market.lower() == "any" and not resolve_api_key()
                                                  and bool(resolve_vast_api_key()))
        if refresh and vast_alone:
            now = _refresh_vast(store, vast_url, None, notes, asked=True, now_text=now_text, allow_past=allow_past)
        elif refresh:
            now, refresh_error, said = _refresh(store, api_url, gpu_count, now_text, allow_past)
            at = len(notes)
            if market.lower() == "any":
                # RunPod unreached told no time (its `now` is the database's, or the wall clock): Vast's
                # answer tells it, as `collect` does. Stamped with RunPod's stand-in, Vast's fresh prices
                # replaced an older snapshot, or went down at the wall clock into an emulator's database,
                # which then refused every later collection ("time would run backwards").
                told = refresh_error is None or store.clock != "wall" or now_text is not None
                before = now
                now = _refresh_vast(store, vast_url, now if told else None, notes, asked=False, now_text=now_text,
                                    allow_past=allow_past)
                if refresh_error is not None and now != before:  # Vast's answer told the time RunPod's could not
                    said = (f"{_refresh_failed(api_url, refresh_error)}; using RunPod's stored history, as of "
                            f"{to_iso(now)}: the time Vast's answer told")
            notes.insert(at, said)
        else:
            now = db_now(store, now_text, allow_past=allow_past, notes=notes)
        if created and store.last_collection_ts() is None:  # no history to fall back on: the failure is the cause
            failed = [*([_refresh_failed(api_url, refresh_error)] if refresh_error is not None else []),
                      *(n.removesuffix("; using its stored history") for n in notes if n.startswith(_VAST_FAILED))]
            raise BidderError(f"{'; '.join(failed) or '--refresh stored no prices'}, and {db_path} was new: no "
                              "stored prices to use instead")
        _runpod_cloud_has_prices(store, cloud, market, db_path)
        gpu_types: tuple[str, ...] = ()
        if gpus_named:
            gpu_types = tuple(resolve_in_market(store, gpus_named, market_filter(market)))
            notes.extend(several_note(store, gpus_named, market_filter(market)))
        job = JobSpec(gpu_types=gpu_types, min_vram_gb=min_vram, gpu_count=gpu_count, cloud=cloud.upper(),
                      work_hours=hours, keep_running=keep_running,
                      deadline=None if deadline is None else now + deadline,
                      restart_overhead_hours=restart_overhead.total_seconds() / 3600.0, market=market.lower(),
                      disk_gb=float(disk_gb))
        policy = Policy(max_price=max_price, budget=budget, tolerance=tolerance, min_savings=min_savings,
                        min_wait_savings=min_wait_savings)
        spot_off: frozenset[str] = frozenset()
        if market.lower() in ("runpod", "any") and runpod_spot_gone(store):
            # As launch and tick decide: RunPod's spot is marked gone, so it is not advised (Vast's still is).
            since = store.settings_get(SPOT_FLAG)
            if market.lower() == "runpod":
                policy = replace(policy, allow_spot=False)
            spot_off = frozenset({"runpod"})
            notes.append(f"{SPOT_GONE_MESSAGE} (since {since}): RunPod on-demand only until a tick's recheck "
                         "sees spot again")
        try:
            decision, info = advise(store, job, policy, now, spot_off=spot_off)
        except InsufficientHistory as exc:
            if refresh_error is None:
                raise
            # The real cause first, then why the stored history (on its own clock) cannot serve.
            raise BidderError(f"--refresh failed: could not take a price snapshot from {api_url} ({refresh_error}), "
                              f"and the stored prices cannot serve instead: "
                              f"{str(exc).removesuffix(REFRESH_HINT)}") from None
    except BaseException:
        store.close()
        if created:  # a failed refresh leaves no new database behind (`import-trace` does the same)
            kept = discard_unused(db_path)
            if kept:
                click.echo(f"note: {kept}", err=True)
        raise
    finally:
        store.close()
    notes.extend(info.notes)
    # Prices over a day old are not used (advise); younger ones no collector refreshed say their age.
    notes.extend(filter(None, (stale_note(m, ts, now) for m, ts in sorted(info.snapshots.items()))))
    window = None if job.deadline is None else (job.deadline - now).total_seconds() / 3600.0
    if fmt == "json":
        click.echo(json.dumps({
            "decision": decision_dict(decision, window),
            "alternatives": [decision_dict(a, window) for a in decision.alternatives],
            "history": {"from": None if info.from_ts is None else to_iso(info.from_ts),
                        "to": None if info.to_ts is None else to_iso(info.to_ts),
                        "samples": info.samples},
        }, indent=2))
        for note in notes:
            click.echo(note, err=True)
        return
    _print_table(decision, info, notes, keep_running, window)


def _headline(d: Decision) -> str:
    where = f"{d.gpu_type_id} ({d.cloud}) x{d.gpu_count}" + (f" on {d.market}" if d.market not in (None, "runpod")
                                                            else "")
    if d.action == "spot":
        return f"SPOT  {where}, bid ${d.bid_per_gpu:.4f} per GPU-hour"
    if d.action == "on_demand":
        return f"ON-DEMAND  {where}"
    if d.gpu_type_id is None:
        return "NOTHING TO DO"
    below = (f" until {d.act_when}" if d.act_when else
             f" until its spot floor is at or below ${d.act_below:.4f}" if d.act_below is not None else "")
    return f"WAIT  for {where}{below}"


def _row(rank: int | str, d: Decision) -> dict[str, Any]:
    return {"rank": rank, "action": d.action, "gpu": d.gpu_type_id, "cloud": d.cloud,
            "bid": d.bid_per_gpu if d.action == "spot" else d.act_below,
            "cost_h": d.expected_cost_per_hour, "intr_day": d.expected_interruptions_per_day,
            "total": d.expected_total_cost, "done_h": d.expected_completion_hours}


def _print_table(d: Decision, info: Any, notes: list[str], keep_running: bool, window: float | None) -> None:
    click.echo(_headline(d))
    total = "per day" if keep_running else "for the work left"
    parts = []
    if d.expected_cost_per_hour is not None:
        parts.append(f"expected ${d.expected_cost_per_hour:.4f} per useful GPU-hour")
    count = expected_interruptions(d, window)
    if count is None:  # a service: per day of running
        parts.append(f"{d.expected_interruptions_per_day:.2f} interruptions/day")
    else:  # a batch job: the tolerance's unit, per day of the window, and the count it makes
        span = "to the deadline" if window is not None else "to completion"
        parts.append(f"{count:.2f} interruptions expected ({d.expected_interruptions_per_day:.2f} per day {span})")
    if d.expected_total_cost is not None:
        parts.append(f"${d.expected_total_cost:.2f} {total}")
    if d.expected_completion_hours is not None:
        parts.append(f"done in about {format_duration(d.expected_completion_hours * 3600)}")
    click.echo("  " + ", ".join(parts))
    for reason in d.reasons:
        click.echo(f"  why: {reason}")
    if d.alternatives:
        click.echo("")
        per = ("" if keep_running else "; intr/day = per day to the deadline" if window is not None
               else "; intr/day = per day to completion")
        # A plan's choice beside the rates' cheaper-looking totals read as a mistake: say whose figures they are.
        planned = any(r.startswith("plan over ") for r in d.reasons)
        whose = ("; * is the plan's choice, the others the rates' (a simpler model: a lower total among them is not "
                 "one the plan found cheaper)" if planned else "")
        click.echo(f"Alternatives weighed (best first{whose}; bid = spot bid, or for wait the floor it waits for{per}):")
        rows = [_row("*", d)] + [_row(i, a) for i, a in enumerate(d.alternatives, start=1)]
        # RunPod-only tables read as before; with another market in them, each row names its market.
        lead = ("market",) if any(a.market not in (None, "runpod") for a in (d, *d.alternatives)) else ()
        for row, a in zip(rows, (d, *d.alternatives), strict=True):
            row["market"] = a.market
        emit_rows(rows, (*lead, "rank", "action", "gpu", "cloud", "bid", "cost_h", "intr_day", "total", "done_h"),
                  "table", headers=(*lead, "#", "action", "gpu type", "cloud", "bid $", "$/useful h", "intr/day",
                                    "total $", "done h"))
        click.echo("")
        for i, a in enumerate(d.alternatives, start=1):
            click.echo(f"  {i}. {a.reasons[0] if a.reasons else ''}")
    span = (f"{to_iso(info.from_ts)} to {to_iso(info.to_ts)}" if info.from_ts and info.to_ts else "none")
    click.echo("")
    over = (f"over {info.markets} market(s) with statistics" if info.markets else
            "(no market has enough for statistics yet)")  # "over 0 market(s)" read as if none were read
    click.echo(f"History: {info.samples} samples {over}, {span}")
    for note in notes:
        click.echo(f"Note: {note}")

