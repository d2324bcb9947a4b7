"""Price history commands: `bidder collect`, `prices`, `history`, `import-trace`, `export`."""

from __future__ import annotations

import contextlib
import itertools
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import numpy as np

from bidder.cli import main
from bidder.cli.common import (
    CLOUD_CHOICE,
    DURATION,
    GPU_COUNT_FILTER,
    INT_LIST,
    FiniteRange,
    UrlOption,
    api_options,
    check_market_cloud,
    checked_gpu_name,
    checked_url_option,
    db_option,
    emit_rows,
    format_option,
    market_option,
    parse_when,
    resolve_api_key,
    resolve_vast_api_key,
    write_file,
)
from bidder.cli.progress import Progress
from bidder.cli.signals import Terminated, sigterm_raises
from bidder.cli.timing import (
    allow_past_option,
    api_now,
    check_window_options,
    db_now,
    now_option,
    parse_now,
    say_after,
    stale_note,
)
from bidder.errors import ConfigError, StoreError
from bidder.gpu_names import EMPTY_HINT, resolve_gpu_types, several_named
from bidder.models import MARKET_NAMES, MAX_GPU_COUNT, SILENCE_MIN_HOURS, PriceQuote
from bidder.store import Store, discard_unused
from bidder.units import format_duration, parse_duration, to_iso
from bidder.vast.offers import SEARCH_DISK_GB

__all__ = ["collect", "export", "gpu_names", "history", "import_trace", "market_filter", "parse_since", "prices",
           "resolve_gpu_types", "resolve_in_market", "several_note"]

_EMPTY_HINT = EMPTY_HINT


# Each command's --help ends with these examples (click prints the epilog last).
_EXAMPLE_COLLECT = """\b
Example:
  bidder collect --gpu-counts 1,2,4,8
  bidder collect --every 5m
  bidder collect --market vast --vast-min-reliability 0.9
"""
DEFAULT_VAST_URL = "https://console.vast.ai"
#: `collect --gpu-counts` asks RunPod to quote at most MAX_GPU_COUNT (bidder.models) GPUs for one pod: its
#: catalogue offers at most 12 (maxGpuCount in the 2025-06-21 catalogue); 16 leaves room for larger pods. A
#: count no pod has stored only empty rows. (Vast is not asked per count: its one search returns every offer.)
_EXAMPLE_PRICES = """\b
Example:
  bidder prices --min-vram 24 --cloud community
  bidder prices --gpu 4090 --format json
"""
_EXAMPLE_HISTORY = """\b
Example:
  bidder history "RTX A6000" --since 7d
  bidder history "NVIDIA GeForce RTX 4090" --since all --cloud community   # RunPod's name
  bidder history "RTX 4090" --market vast --cloud verified                 # Vast's name
"""
_EXAMPLE_IMPORT_TRACE = """\b
Example:
  bidder sim trace a6000.csv --seed 1 --days 14 --gpu "NVIDIA RTX A6000"
  bidder import-trace a6000.csv
"""
_EXAMPLE_EXPORT = """\b
Example:
  bidder export --since 30d --gpu "RTX A6000" > a6000.csv
  bidder export -o all-history.csv
"""


# -- shared helpers ----------------------------------------------------------------------------------
def parse_since(text: str | None, now: datetime) -> datetime | None:
    """"7d"/"12h" (before `now`), an ISO 8601 time, or "all"/None (no limit): `parse_when`."""
    return parse_when(text, now, "--since", allow_all=True)


def _relative(since: str | None) -> bool:
    """A --since that counts back from now (7d), rather than 'all' or an ISO time."""
    if since is None or since.strip().lower() == "all":
        return False
    try:
        parse_duration(since)
    except ValueError:
        return False
    return True


def _open(db_path: str, *, create: bool = False) -> Store:
    return Store.open(db_path, create=create)


def _cloud_filter(cloud: str) -> str | None:
    return None if cloud.lower() == "any" else cloud.upper()


def market_filter(market: str) -> str | None:
    return None if market.lower() == "any" else market.lower()


def gpu_names(store: Store, market: str | None = None) -> dict[str, str | None]:
    """GPU type ids (with display names) known, limited to those with history in `market` if given."""
    names = store.gpu_type_names()
    if market is None:
        return names
    ids = {key[0] for key in store.markets(market)}
    return {i: n for i, n in names.items() if i in ids}


def resolve_in_market(store: Store, queries: Iterable[str], market: str | None) -> list[str]:
    """`resolve_gpu_types` over the GPU types with history in `market` (every market's when None);
    when that market has none while another has, the error says so rather than "none known"."""
    names = gpu_names(store, market)
    held = store.market_names()
    others = [MARKET_NAMES.get(m, m) for m in held if m != market] if market and not names else []
    none_known = None
    if others:
        name = MARKET_NAMES.get(market, market)
        none_known = (f"no {name} GPU types are known yet (the database holds {' and '.join(others)}'s prices only); "
                      f"collect {name}'s with `bidder collect` ({_KEY_OF[market]} set), or use --market any")
    try:
        return resolve_gpu_types(queries, names, none_known=none_known)
    except ConfigError as exc:
        # A new database whose first collections reached one market and failed on the other: a right name
        # of the other's was "unknown", its close match the reached market's name for the card.
        missing = [m for m in _KEY_OF if m not in held and store.last_collection_ts(successful=False, market=m)
                   and store.last_collection_ts(market=m) is None]
        if market is not None or not held or not missing:
            raise
        name = MARKET_NAMES.get(missing[0], missing[0])
        raise ConfigError(f"{exc}; the database holds no {name} prices yet, so {name}'s GPU types are not known: "
                          f"collect them with `bidder collect` ({_KEY_OF[missing[0]]} set, {name} reachable)",
                          key="gpu") from None


_KEY_OF = {"runpod": "RUNPOD_API_KEY", "vast": "VAST_API_KEY"}


def several_note(store: Store, queries: Iterable[str], market: str | None) -> list[str]:
    """`several_named` over the GPU types with history in `market` (as `resolve_in_market` reads them)."""
    return several_named(queries, gpu_names(store, market))


def _gpu_filter(store: Store, gpus: Sequence[str], market: str | None = None) -> list[str] | None:
    for name in gpus:
        checked_gpu_name(name, "--gpu")
    return resolve_in_market(store, gpus, market) if gpus else None


_MARKET_HELP = "Only this market (RunPod or Vast); any = every market in the database."


# -- collect -----------------------------------------------------------------------------------------
@main.command("collect", epilog=_EXAMPLE_COLLECT)
@click.option("--every", type=DURATION, default=None, metavar="DURATION",
              help="Loop: collect at every multiple of this interval (e.g. 5m) until Ctrl-C.")
@click.option("--gpu-counts", type=INT_LIST, default="1", show_default=True, metavar="LIST",
              help=f"RunPod: GPU counts to quote, e.g. 1,2,4,8 (one request covers them all; at most "
              f"{MAX_GPU_COUNT}). Vast's search returns every GPU count offered anyway.")
@click.option("--cycles", type=click.IntRange(min=1), default=None, metavar="N",
              help="With --every: stop after N intervals.")
@click.option("--retries", type=click.IntRange(min=1), default=4, show_default=True, metavar="N",
              help="Attempts per request on a transient error (429, 5xx, timeout); 1 = fail at once.")
@market_option("any", "Markets to collect; any = every market with a configured API key (RUNPOD_API_KEY, "
               "VAST_API_KEY; with neither, RunPod's, whose prices need no key). vast needs no key either.")
@click.option("--vast-min-reliability", type=FiniteRange(0, 1), default=None, metavar="SCORE",
              help="Vast: summarise only offers with at least this reliability (every offer is stored; default: "
              "vast_min_reliability in ./bidder.toml, else 0.95).")
# Two flags, not one --x/--y pair: with a pair the last given silently won over the other.
@click.option("--vast-verified-only", is_flag=True, default=False,
              help="Vast: verified machines only (default: vast_verified_only in ./bidder.toml, else verified only).")
@click.option("--vast-unverified", is_flag=True, default=False,
              help="Vast: unverified machines too (tier UNVERIFIED).")
@click.option("--vast-url", envvar="VAST_URL", default=DEFAULT_VAST_URL, show_default=True, cls=UrlOption,
              callback=checked_url_option, help="Vast's API: its console, or an emulator's (env VAST_URL).")
@now_option
@allow_past_option
@db_option
@api_options
def collect(every: timedelta | None, gpu_counts: tuple[int, ...], cycles: int | None, retries: int, market: str,
            vast_min_reliability: float | None, vast_verified_only: bool, vast_unverified: bool, vast_url: str,
            now_text: str | None, allow_past: bool, db_path: str, api_url: str) -> None:
    """Record one price snapshot of every market: RunPod (every GPU type, both clouds, the given
    GPU counts) and Vast (every offer, summarised per GPU, GPU count and tier).

    One API request per market per snapshot; RunPod's catalogue (names, VRAM) is refreshed at most
    daily. For cron, run it without --every: exit 0 on success; on failure exit 1 with one `Error:`
    line per market that failed (each failure is also recorded in the `collections` table, one row
    per market; a market that fails does not keep the other from being stored).
    """
    from bidder.clock import ServerTimes
    from bidder.collector import SPOT_FIELDS_GONE_MESSAGE, LoopStats, RunPodSource, collect_markets, run_every
    from bidder.runpod import RetryPolicy, RunPodClient
    from bidder.vast.summary import OfferFilters

    if every is not None and every.total_seconds() < 1:
        raise click.BadParameter("the interval must be at least 1s (5m is a good choice)", param_hint="--every")
    if cycles is not None and every is None:
        raise click.UsageError("--cycles only makes sense with --every")
    if vast_verified_only and vast_unverified:
        raise click.UsageError("--vast-verified-only and --vast-unverified contradict each other: give one of them")
    too_many = [n for n in gpu_counts if n > MAX_GPU_COUNT]
    if too_many:
        raise click.BadParameter(f"{too_many[0]} GPUs is more than any pod offers (at most {MAX_GPU_COUNT}); "
                                 f"give counts such as 1,2,4,8", param_hint="--gpu-counts")
    if now_text is not None and every is not None:
        raise click.UsageError("--now stamps one snapshot; it cannot be combined with --every")
    parse_now(now_text)
    runpod_key, vast_key = resolve_api_key(), resolve_vast_api_key()
    market = market.lower()
    # --market vast needs no key either: Vast's offer search is public, as RunPod's `gpuTypes` is.
    wanted = [market] if market != "any" else [m for m, key in (("runpod", runpod_key), ("vast", vast_key)) if key]
    wanted = wanted or ["runpod"]  # no key at all: RunPod's prices (its `gpuTypes` needs none)
    from bidder.jobs import collect_settings

    saved = collect_settings()  # bidder.toml's collector settings (its jobs are not read)
    sources: list[Any] = []
    times: list[Any] = []  # every market's client tells the emulator's time (its answers carry it)
    if "runpod" in wanted:
        client = RunPodClient(api_key=runpod_key, url=api_url, retry=RetryPolicy(attempts=retries))
        sources.append(RunPodSource(client, gpu_counts))
        times.append(client)
    if "vast" in wanted:
        filters = OfferFilters(
            verified_only=(True if vast_verified_only else False if vast_unverified else saved["vast_verified_only"]),
            min_reliability=saved["vast_min_reliability"] if vast_min_reliability is None else vast_min_reliability)
        vast_source, vast_time = vast_price_source(vast_key or "", vast_url, retries, filters,
                                                   saved["vast_offers_days"])
        sources.append(vast_source)
        times.append(vast_time)
    created = not Path(db_path).exists()
    store = _open(db_path, create=True)
    if market == "any" and not vast_key and store.last_collection_ts(market="vast") is not None:
        # A cron whose VAST_API_KEY went missing would else collect RunPod alone, exit 0, without a word.
        click.echo(f"warning: {db_path} holds Vast collections, but no Vast key is set in this run (VAST_API_KEY, or vast_api_key in "
                   "~/.config/bidder/config.toml): "
                   "Vast's prices are not collected; set it, or give --market vast (its offers need no key)",
                   err=True)

    wrote = False  # whether this run wrote a row: a snapshot, or a failure stamped with a known time
    told_no_spot = False
    told_each: set[int] = set()  # errors already said market by market (every market failed)
    cycle_now: datetime | None = None  # the time the last cycle ran at: its failure is stamped with it

    def cycle(slot: datetime | None) -> None:
        nonlocal told_no_spot, cycle_now, store, wrote
        if store.moved_away():  # removed or replaced while the loop ran: write where the path points now
            store.close_moved()
            click.echo(f"{to_iso(cycle_now or datetime.now(UTC))}  note: {db_path} was removed or replaced since "
                       "the last snapshot: opening it again", err=True)
            store = _open(db_path, create=True)
        # The emulator's time when it is the API (asked afresh each cycle), else the loop's slot time.
        cycle_now = slot
        now = api_now(store, ServerTimes(*times), now_text, allow_past=allow_past, fresh=slot is not None)
        if slot is not None and store.clock == "wall":
            now = slot
        cycle_now = now
        result = collect_markets(sources, store, now=now, raise_if_all_failed=False, warn_spot_gone=False,
                                 prices_days=float(saved["prices_days"]))
        failed = [part for part in result.by_market if part.exception is not None]
        wrote = wrote or any(part.collection_id for part in result.by_market)  # (0: no row written)
        if failed and len(failed) == len(result.by_market):
            if len(failed) == 1 or every is not None:
                if len(failed) > 1:  # the loop says each market's error, then retries (or stops on a wrong key)
                    for part in failed:
                        click.echo(f"{to_iso(result.ts)}  {part.market}: collection failed: {part.error}", err=True)
                    told_each.add(id(failed[0].exception))
                raise failed[0].exception  # type: ignore[misc]
            for part in failed[:-1]:  # one line per market, the last one the command's error
                click.echo(f"Error: {part.market}: {part.exception}", err=True)
            raise click.ClickException(f"{failed[-1].market}: {failed[-1].exception}")
        for part in result.by_market:
            if part.error is not None:
                if every is not None:  # (one collect says it in its Error: line, below)
                    click.echo(f"{to_iso(result.ts)}  {part.market}: collection failed: {part.error}", err=True)
            elif part.market == "runpod":
                catalogue = (f", catalogue of {part.gpu_types_refreshed} types refreshed"
                             if part.gpu_types_refreshed else "")
                click.echo(f"{to_iso(result.ts)}  stored {part.quotes} quotes ({part.markets} GPU type × cloud "
                           f"markets, GPU counts {','.join(map(str, gpu_counts))}) in {part.duration_s:.2f}s"
                           f"{catalogue}")
            else:
                click.echo(f"{to_iso(result.ts)}  {part.market}: stored {part.quotes} quotes (GPU × count × tier) "
                           f"from {part.offers} offers in {part.duration_s:.2f}s")
        if not result.spot_prices and not told_no_spot:
            told_no_spot = True  # once per run: the loop would repeat it every interval
            click.echo(f"{SPOT_FIELDS_GONE_MESSAGE}.")  # here only: the collector is told not to log it too
        if result.errors and every is None:
            # One line with its cause: it said "runpod failed (the other market was stored)", the cause on
            # a line of its own above it, and a mail of the Error: line alone did not say what went wrong.
            stored = ", ".join(p.market for p in result.by_market if p.error is None)
            raise click.ClickException("; ".join(f"{p.market}: collection failed: {p.error}" for p in result.by_market
                                                 if p.error is not None) + f" ({stored} stored)")

    try:
        if every is None:
            cycle(None)
            return

        def on_error(exc: BaseException, retry_in: float | None) -> None:
            then = f"retrying in {format_duration(retry_in)}" if retry_in else "next try at the next interval"
            what = ("every market failed" if id(exc) in told_each else
                    f"snapshot not stored: {exc}" if isinstance(exc, StoreError) else f"collection failed: {exc}")
            # Stamped by the clock the cycle ran at (the emulator's, when it is the API), as its other lines are.
            click.echo(f"{to_iso(cycle_now or datetime.now(UTC))}  {what}; {then}", err=True)

        stats = LoopStats()
        click.echo(f"Collecting every {format_duration(every.total_seconds())} into {db_path} (Ctrl-C stops).")
        stopped = 0  # the exit status of a stop by signal: Ctrl-C, or SIGTERM (systemd's stop, `timeout`)
        try:
            with sigterm_raises():
                run_every(every.total_seconds(), cycle, now=lambda: datetime.now(UTC), sleep=time.sleep,
                          max_cycles=cycles, on_error=on_error, stats=stats)
        except KeyboardInterrupt:
            stopped = 130  # the shell's convention for Ctrl-C
            click.echo("Interrupted.", err=True)
        except Terminated:
            stopped = 143  # 128 + SIGTERM; it ended the loop with no word of what it had stored
            click.echo("Terminated.", err=True)
        click.echo(f"{stats.ok} snapshots stored, {stats.failures} failed attempts, {stats.skipped_slots} "
                   f"intervals skipped.")
        if stopped:
            sys.exit(stopped)
        if stats.ok == 0 and stats.failures > 0:
            click.echo("Error: every collection attempt failed", err=True)
            sys.exit(1)
    finally:
        store.close()
        # A run that wrote no row (it failed before it knew what time to stamp) leaves no new database
        # behind, as `import-trace` does; a failure it recorded keeps the file, as does a database that was there.
        kept = discard_unused(db_path) if created and not wrote else None
        if kept:
            click.echo(f"note: {kept}", err=True)


def vast_price_source(key: str, url: str, retries: int, filters: Any, offers_days: float) -> tuple[Any, Any]:
    """The collector's Vast source over Vast's REST client (`bidder/vast/client.py`), and that client,
    which tells the emulator's time as its answers carry it (bidder's emulator answers for Vast too)."""
    from bidder.collector import VastSource
    from bidder.runpod import RetryPolicy
    from bidder.vast.client import VastClient

    client = VastClient(api_key=key or None, url=url, retry=RetryPolicy(attempts=retries))
    return VastSource(client, filters, float(offers_days)), client


# -- prices ------------------------------------------------------------------------------------------
@main.command("prices", epilog=_EXAMPLE_PRICES)
@click.option("--gpu", "gpus", multiple=True, metavar="NAME",
              help="Only this GPU type (id, display name or a part of one; repeatable).")
@click.option("--min-vram", type=click.IntRange(min=1), default=None, metavar="GB", help="At least this much VRAM.")
@click.option("--cloud", type=CLOUD_CHOICE, default="any", show_default=True, help="Only this cloud.")
@click.option("--gpu-count", type=GPU_COUNT_FILTER, default=None, metavar="N",
              help="Only quotes for pods of N GPUs (default: every count collected).")
@market_option("any", _MARKET_HELP)
@format_option("table", "json", "csv")
@now_option(reads_only=True)
@db_option
def prices(gpus: tuple[str, ...], min_vram: int | None, cloud: str, gpu_count: int | None, market: str, fmt: str,
           now_text: str | None, db_path: str) -> None:
    """Show the newest price snapshot of each market at or before now, cheapest first (prices in USD
    per GPU-hour).

    `spot floor` is the lowest accepted bid (minimumBidPrice; for Vast the cheapest offer's
    min_bid per GPU; `-` = no spot capacity now), `spot discount %` what bidding the floor saves
    against on-demand. A `market` column appears when Vast quotes are shown. Snapshots dated after
    now (a trace imported ahead of the clock) are not shown; a note says they exist.
    """
    for name in gpus:
        checked_gpu_name(name, "--gpu")
    check_market_cloud(market, cloud)
    parse_now(now_text)
    with _open(db_path) as store:
        # As recommend and history take it: --now, else the emulator's time, else the wall clock (never
        # refused: later snapshots are a note here, not an error).
        now = db_now(store, now_text, allow_past=True, say=False)
        when = ("--now" if now_text is not None else
                "the emulator's time" if store.emulator_time() is not None else "the wall clock")
        chosen_market = market_filter(market)
        quotes = store.latest_quotes(chosen_market, at=now)
        spans = store.market_spans(chosen_market)
        later = max((s["last_ts"] for s in spans), default=None)
        later = later if later is not None and later > now else None
        where = "" if chosen_market is None else f" of market {market.lower()}"
        if not quotes and later is not None:  # (--now too early, or given none: the clock is before the history)
            first = min(s["first_ts"] for s in spans)
            raise click.ClickException(f"no price snapshot{where} at or before {to_iso(now)} ({when}) in {db_path}: "
                                       f"every one is later, from {to_iso(first)} to {to_iso(later)}; give --now "
                                       f"{to_iso(later)} (or any time from {to_iso(first)} on) to see them")
        if not quotes:
            raise click.ClickException(f"no price snapshot{where} in {db_path} yet; {_EMPTY_HINT}")
        if later is not None:
            say_after(f"Note: {db_path} holds snapshots dated after now ({to_iso(now)}, {when}), up to "
                      f"{to_iso(later)}; shown is the newest at or before now (--now {to_iso(later)} shows the latest).")
        wanted = _gpu_filter(store, gpus, chosen_market)
    for name in sorted({q.market for q in quotes}):
        stale = stale_note(name, max(q.ts for q in quotes if q.market == name), now)
        if stale:
            say_after(f"Note: {stale}.")
    chosen = [q for q in quotes
              if (wanted is None or q.gpu_type_id in wanted)
              and (min_vram is None or (q.memory_in_gb is not None and q.memory_in_gb >= min_vram))
              and (_cloud_filter(cloud) in (None, q.cloud))
              and (gpu_count is None or q.gpu_count == gpu_count)]
    if not chosen:
        raise click.ClickException(f"no quote in the snapshot of {to_iso(quotes[0].ts)} matches these filters")
    chosen.sort(key=lambda q: (_cheapest(q) is None, _cheapest(q) or 0.0, q.gpu_type_id, q.cloud, q.gpu_count,
                               q.market))
    # RunPod-only output stays as it always was; any other market adds the market (and offer count).
    several = any(q.market != "runpod" for q in chosen)
    rows = [{"gpu_type_id": q.gpu_type_id, "display_name": q.display_name, "memory_in_gb": q.memory_in_gb,
             "cloud": q.cloud, "gpu_count": q.gpu_count, "spot_floor": q.minimum_bid_price,
             "on_demand": q.uninterruptable_price,
             "spot_discount_pct": None if q.spot_discount is None else round(100 * q.spot_discount),
             "stock_status": q.stock_status, "ts": to_iso(q.ts)}
            | ({"market": q.market, "offers": q.offer_count} if several else {}) for q in chosen]
    if fmt == "table":
        stamps = sorted({to_iso(q.ts) for q in quotes})
        click.echo(f"Snapshot of {' and '.join(stamps)} from {db_path}: {len(rows)} of {len(quotes)} quotes.")
        columns = ["gpu_type_id", "memory_in_gb", "cloud", "gpu_count", "spot_floor", "on_demand",
                   "spot_discount_pct", "stock_status"]
        headers = ["GPU type", "VRAM GB", "cloud", "GPUs", "spot floor", "on-demand", "spot discount %", "stock"]
        if several:
            columns, headers = ["market", *columns, "offers"], ["market", *headers, "offers"]
        emit_rows(rows, columns, fmt, headers=headers)
        # Three on-demand figures for one card (here, in max_price's errors, in recommend) read as a bug.
        if any(q.market == "vast" and q.uninterruptable_price is not None for q in chosen):
            say_after(f"Note: Vast's on-demand is its offer's whole price, with the storage of the "
                      f"{SEARCH_DISK_GB:g} GB disk its search prices; max_price caps it without that "
                      "storage, and recommend, launch and tick add your job's own disk (--disk) at the offer's "
                      "storage price.")
    else:
        emit_rows(rows, list(rows[0]), fmt)


def _cheapest(quote: PriceQuote) -> float | None:
    values = [v for v in (quote.minimum_bid_price, quote.uninterruptable_price) if v is not None]
    return min(values) if values else None


# -- history -----------------------------------------------------------------------------------------
@main.command("history", epilog=_EXAMPLE_HISTORY)
@click.argument("gpu")
@click.option("--since", default="7d", show_default=True, metavar="WHEN",
              help="Window start: a duration before now (7d, 12h), an ISO 8601 time, or 'all'.")
@click.option("--until", default=None, metavar="WHEN",
              help="Window end: an ISO 8601 time or a duration before now (default: now).")
@click.option("--cloud", type=CLOUD_CHOICE, default="any", show_default=True, help="Only this cloud.")
@click.option("--gpu-count", type=GPU_COUNT_FILTER, default=None, metavar="N", help="Only pods of N GPUs.")
@market_option("any", _MARKET_HELP)
@format_option("table", "json", "csv")
@click.option("--now", "now_text", metavar="TIME", default=None,
              help="As of TIME (ISO 8601): durations count back from it and the window ends at it (samples at "
              "TIME included; any time, before the newest data too). Default: the emulator's time when the "
              "newest snapshot came from `bidder sim serve`, else the wall clock.")
@click.option("--allow-past", is_flag=True,
              help="Count durations back from the wall clock even though the database holds later data (written "
              "on a clock ahead of this machine's). Not needed with --now.")
@db_option
def history(gpu: str, since: str, until: str | None, cloud: str, gpu_count: int | None, market: str, fmt: str,
            now_text: str | None, allow_past: bool, db_path: str) -> None:
    """Summarise one GPU type's spot floor over a window: min, median, p90, max (USD per GPU-hour)
    and the share of time spot capacity was available, per cloud and GPU count.
    """
    checked_gpu_name(gpu, "GPU")
    check_market_cloud(market, cloud)
    check_window_options(since, until, now_text)  # before the file is opened (which migrates an older one)
    with _open(db_path) as store:
        counted = now_text is not None or _relative(since) or _relative(until)
        # The command's one clock, as report and chart take it (db_now): --now, else the emulator's time
        # when it stamped the newest snapshot, else the wall clock. An ISO --since was checked against the
        # wall clock (an emulator's database: a --since after its time read as "no samples", exit 1).
        # Only a window counted from now refuses a wall clock behind the newest data (and says the clock).
        now = db_now(store, now_text, allow_past=allow_past or not counted, say=counted)
        start = parse_since(since, now)
        if until is None and not allow_past and start is not None and start >= now:
            # As report and chart say it; --until, not given, was blamed for a --since after now.
            said = since.strip() + ("" if since.strip() == to_iso(start) else f" ({to_iso(start)})")
            raise click.BadParameter(f"the period is empty: --since {said} is not before now ({to_iso(now)})",
                                     param_hint="--since")
        # --until is exclusive; the window as of --now, or counted back from now (--since 1d: the last
        # day), ends at now, its samples at that second included (imported rows dated later are not in it);
        # with --allow-past the database's clock runs ahead of this machine's: its newest data stays in.
        as_of = until is None and (now_text is not None or (counted and not allow_past))
        end = _not_before(now + timedelta(seconds=1) if as_of else parse_when(until, now, "--until"), start)
        names = gpu_names(store, market_filter(market))
        if not names:
            where = "" if market_filter(market) is None else f" of market {market.lower()}"
            raise click.ClickException(f"no price history{where} in {db_path} yet; {_EMPTY_HINT}")
        every_span = store.market_spans(market_filter(market))
        ids = _one_gpu(gpu, resolve_gpu_types([gpu], names), names, every_span, market_filter(market) is None)
        held = [s for s in every_span if s["gpu_type_id"] in ids]
        gpu_id = _gpu_title(ids, names, held)
        spans = [s for s in held if _cloud_filter(cloud) in (None, s["cloud"]) and gpu_count in (None, s["gpu_count"])]
        if not spans and held:  # the history is there: the filters match none of it
            kinds = ", ".join(sorted({f"{s['cloud'].lower()} x{s['gpu_count']}" for s in held}))
            given = " ".join([*([f"--cloud {cloud.lower()}"] if _cloud_filter(cloud) is not None else []),
                              *([f"--gpu-count {gpu_count}"] if gpu_count is not None else [])])
            raise click.ClickException(f"no price history of {gpu_id} for {given} in {db_path}; it has {kinds} "
                                       "(cloud x GPUs): choose one of those")
        if not spans:
            raise click.ClickException(f"no price history of {gpu_id} in {db_path}; {_EMPTY_HINT}")
        rows = []
        several = any(s["market"] != "runpod" for s in spans)
        for span in spans:
            series = store.floor_series(span["gpu_type_id"], span["cloud"], span["gpu_count"], since=start, until=end,
                                        market=span["market"])
            if len(series):
                rows.append(({"market": span["market"]} if several else {}) | _summary(series))
    if not rows:
        first, last = min(s["first_ts"] for s in spans), max(s["last_ts"] for s in spans)
        window = f"since {to_iso(start) if start else 'the start'}" + (
            f" as of {to_iso(now)}" if as_of else f" until {to_iso(end)}" if end is not None else "")
        hint = "try --since all" if start is not None else "give a later --until, or leave it out"
        raise click.ClickException(f"no samples of {gpu_id} {window}; its history runs from {to_iso(first)} to "
                                   f"{to_iso(last)} ({hint})")
    if fmt == "table":
        window = f"since {to_iso(start)}" if start else "all history"
        window += f" as of {to_iso(now)}" if as_of else f" until {to_iso(end)}" if end is not None else ""
        click.echo(f"{gpu_id}: spot floor, USD per GPU-hour, {window}.")
        lead = ["market"] if "market" in rows[0] else []
        emit_rows(rows, [*lead, "cloud", "gpu_count", "samples", "from", "to", "min", "median", "p90", "max",
                         "spot_available_pct", "on_demand", "longest_gap_h"], fmt,
                  headers=[*lead, "cloud", "GPUs", "samples", "from", "to", "min", "median", "p90", "max",
                           "spot available %", "on-demand", "longest gap h"],
                  decimals={"spot_available_pct": 1, "longest_gap_h": 1})  # as _summary rounds them
    else:
        emit_rows(rows, list(rows[0]), fmt)


def _one_gpu(gpu: str, ids: list[str], names: dict[str, str | None], spans: list[dict[str, Any]],
             any_market: bool) -> list[str]:
    """The GPU types `history` summarises for a name: the one it matches, or, as `recommend --gpu`
    takes them, the one GPU under each market's spelling of it (RunPod's NVIDIA RTX A6000, shown as
    RTX A6000, and Vast's RTX A6000): every match shows as the same name and no market holds two. A
    name matching different GPUs (A100: A100 PCIe, A100 SXM) is refused, naming them."""
    if len(ids) > 1:
        shown = {(names.get(i) or i).strip().lower() for i in ids}
        markets = [m for i in ids for m in {s["market"] for s in spans if s["gpu_type_id"] == i}]
        if len(shown) > 1 or len(markets) != len(set(markets)):
            raise ConfigError(f"{gpu!r} matches {len(ids)} GPU types ({', '.join(ids[:6])}"
                              f"{', ...' if len(ids) > 6 else ''}); give one exactly"
                              + (" or choose a market with --market" if any_market else ""), key="gpu")
    return ids


def _gpu_title(ids: list[str], names: dict[str, str | None], held: list[dict[str, Any]]) -> str:
    """What `history` calls the GPU: its id, or one GPU on several markets as "RTX A6000 (runpod:
    NVIDIA RTX A6000; vast: RTX A6000)"."""
    where = sorted({(s["market"], s["gpu_type_id"]) for s in held})
    if len(ids) == 1 or not where:
        return " and ".join(ids)
    return f"{names.get(ids[0]) or ids[0]} ({'; '.join(f'{m}: {i}' for m, i in where)})"


def _summary(series: Any) -> dict[str, Any]:
    ts, floor = series.ts, series.floor
    have = ~np.isnan(floor)
    # Shares of time, not of samples: each sample stands for the time until the next one (a price
    # holds until its series' next row), capped at an hour or twice the usual step, whichever is
    # longer, so that a gap in collection counts as neither spot nor its absence. (Counted by rows,
    # a floor of 0.2 for six days sampled hourly and 0.6 for one sampled every 5 minutes had a median
    # of 0.6.)
    step = float(np.median(np.diff(ts))) if len(ts) > 1 else 300.0
    spans = np.diff(ts, append=ts[-1] + step)
    weights = np.minimum(spans, max(2 * step, SILENCE_MIN_HOURS * 3600))
    available = float(weights[have].sum() / weights.sum()) if weights.sum() > 0 else float(have.mean())
    spot, held = floor[have], weights[have]

    def stat(q: float) -> float | None:
        return round(_time_quantile(spot, held, q), 4) if spot.size else None

    on_demand = series.on_demand[~np.isnan(series.on_demand)]
    gaps = spans[:-1][spans[:-1] >= SILENCE_MIN_HOURS * 3600]
    return {"gpu_type_id": series.gpu_type_id, "cloud": series.cloud, "gpu_count": series.gpu_count,
            "samples": len(ts), "from": to_iso(datetime.fromtimestamp(ts[0], UTC)),
            "to": to_iso(datetime.fromtimestamp(ts[-1], UTC)),
            "min": stat(0.0), "median": stat(0.5), "p90": stat(0.9), "max": stat(1.0),
            "spot_available_pct": round(100 * available, 1),
            "longest_gap_h": round(float(gaps.max()) / 3600, 1) if gaps.size else None,
            "on_demand": round(float(np.median(on_demand)), 4) if on_demand.size else None}


def _time_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The q-quantile of `values`, each held for its weight of time: numpy's linear percentile where
    the weights are equal (samples evenly spaced), else the same interpolation over the time held
    before each value, sorted."""
    if np.all(weights == weights[0]):
        return float(np.percentile(values, 100 * q))
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[order]
    before = np.cumsum(w) - w  # the time held by smaller values: 0 for the smallest
    if before[-1] <= 0:
        return float(v[-1])
    return float(np.interp(q, before / before[-1], v))


# -- import-trace and export -------------------------------------------------------------------------
@main.command("import-trace", epilog=_EXAMPLE_IMPORT_TRACE)
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--now", "now_text", metavar="TIME", default=None,
              help="Accept rows up to a day after TIME (ISO 8601). Default: the wall clock, or the newest "
              "time in the database when that is later (a database of an emulator running ahead).")
@db_option
def import_trace(file: str, now_text: str | None, db_path: str) -> None:
    """Load a trace CSV (format: docs/traces.md; '-' reads stdin) into the price history.

    Columns, by name in a header row: ts (ISO 8601, UTC), gpu_type, minimum_bid_price (the spot
    floor; empty: no spot then) and uninterruptable_price (on-demand), USD per GPU-hour; optionally
    cloud (default COMMUNITY), gpu_count (default 1), stock_status, market (runpod or vast), offers.

    All or nothing: a malformed row (named by line and column) stores nothing, nor does a price
    above 1000 USD per GPU-hour or a time more than a day after now. Idempotent: importing the
    same file again changes no row.
    """
    from bidder.sim.catalog import load_catalog  # RunPod's gpuTypes as recorded: names and VRAM a trace lacks
    from bidder.traces import iter_trace

    catalogue = {t.id: (t.display_name, t.memory_in_gb) for t in load_catalog()}
    given = parse_now(now_text, adds_durations=False)
    source: Any = sys.stdin if file == "-" else file
    if file != "-" and not Path(file).is_file():
        raise click.BadParameter(f"{file!r} is not a file", param_hint="FILE")
    seen = _Tally(None if file == "-" else Path(file), Progress("import-trace"))
    notes: list[str] = []
    created = not Path(db_path).exists()
    total = 0
    terminated = False
    # SIGTERM (`timeout`, systemd's stop) unwinds as a failure does: the default action killed the process
    # at once and left the new database, -wal and -shm behind with no price in them. Once every row is
    # read, SIGTERM waits for the write to end: stopped just after its commit, the import said "nothing
    # imported" of rows it had stored, and kept the new file as "another bidder wrote into it".
    try:
        with sigterm_raises() as sigterm:
            try:
                with _open(db_path, create=True) as store:
                    now, now_is = _import_now(store, given)
                    total, changed = store.import_quotes(_then(seen.count(iter_trace(
                        source, name="<stdin>" if file == "-" else None, notes=notes, now=now, now_is=now_is,
                        future_hint=", or give --now TIME to import history up to TIME")), sigterm.hold),
                        catalogue=catalogue)
            finally:
                seen.progress.close()
                # A failed import into a new file leaves no empty database behind, unless another bidder took it up.
                kept = discard_unused(db_path) if created and not total else None
                if kept:
                    click.echo(f"note: {kept}", err=True)
    except Terminated:
        if not total:
            click.echo("Terminated: nothing imported", err=True)
            sys.exit(143)  # 128 + SIGTERM
        terminated = True
    for note in notes:
        click.echo(f"note: {note}", err=True)
    if not total:
        raise click.ClickException(f"{'standard input' if file == '-' else file} has a header but no data rows; "
                                   "nothing imported")
    click.echo(f"Imported {total} rows from {'standard input' if file == '-' else file} into {db_path}: "
               f"{changed} new or changed; "
               f"{len(seen.markets)} markets ({len(seen.types)} GPU types), "
               f"{to_iso(seen.first)} to {to_iso(seen.last)}.")
    if terminated:
        click.echo("Terminated (after the import was written whole).", err=True)
        sys.exit(143)


def _then(items: Iterable[Any], done: Callable[[], object]) -> Iterator[Any]:
    """`items`, then `done()` once the last is read."""
    yield from items
    done()


def _import_now(store: Store, given: datetime | None) -> tuple[datetime, str]:
    """The now no imported row may lie more than a day after, and whose time it is: --now, else the
    wall clock, or the newest time the database holds when later (written on the emulator's clock
    running ahead, or with --now): a trace exported from that database imports back."""
    if given is not None:
        return given, ", given with --now"
    wall = datetime.now(UTC)
    newest = store.newest_time()
    if newest is not None and newest[0] > wall:
        return newest[0], f", the newest {newest[1]} in {store.path}"
    return wall, ", the wall clock"


def _not_before(end: datetime | None, start: datetime | None) -> datetime | None:
    """--until, refused when it is not after --since (the window would be empty)."""
    if start is not None and end is not None and end <= start:
        raise click.BadParameter(f"the window is empty: {to_iso(end)} is not after --since {to_iso(start)}",
                                 param_hint="--until")
    return end


class _Tally:
    """Counts what streams past on its way into the store, and shows how far along a file it is (rows
    read against the rows its size holds at the length of its first lines: a terminal's estimate)."""

    def __init__(self, path: Path | None = None, progress: Any = None) -> None:
        self.markets: set[tuple[Any, ...]] = set()
        self.types: set[str] = set()
        self.first = datetime.max.replace(tzinfo=UTC)
        self.last = datetime.min.replace(tzinfo=UTC)
        self.progress = progress if progress is not None else (lambda *_: None)
        self.expected = 0
        if path is not None and getattr(progress, "enabled", False):
            with path.open("rb") as handle:
                head = handle.read(1 << 16)
            lines = max(head.count(b"\n"), 1)
            self.expected = int(path.stat().st_size / (len(head) / lines))

    def count(self, quotes: Iterable[PriceQuote]) -> Iterator[PriceQuote]:
        for rows, q in enumerate(quotes, start=1):
            self.markets.add(q.key)
            self.types.add(q.gpu_type_id)
            self.first, self.last = min(self.first, q.ts), max(self.last, q.ts)
            if self.expected and rows % 10_000 == 0:
                self.progress(min(rows, self.expected), self.expected, "rows")
            yield q


@main.command("export", epilog=_EXAMPLE_EXPORT)
@click.option("--since", default=None, metavar="WHEN",
              help="Only from this time: a duration before now (7d), an ISO 8601 time, or 'all' (default).")
@click.option("--until", default=None, metavar="WHEN",
              help="Only before this: an ISO 8601 time or a duration before now (default: no end).")
@click.option("--gpu", "gpus", multiple=True, metavar="NAME", help="Only this GPU type (repeatable).")
@click.option("--cloud", type=CLOUD_CHOICE, default="any", show_default=True, help="Only this cloud.")
@click.option("--gpu-count", type=GPU_COUNT_FILTER, default=None, metavar="N", help="Only pods of N GPUs.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True, allow_dash=True), default=None,
              callback=lambda ctx, param, value: _output(value),
              help="Write to this file (written whole or not at all) instead of stdout ('-': stdout).")
@market_option("any", _MARKET_HELP)
@db_option
def export(since: str | None, until: str | None, gpus: tuple[str, ...], cloud: str, gpu_count: int | None,
           output: str | None, market: str, db_path: str) -> None:
    """Write price history as a trace CSV (format: docs/traces.md), for another machine or a backtest.

    The trace has a `market` column only when it holds rows of a market other than RunPod.
    """
    from bidder.traces import write_trace

    for name in gpus:
        checked_gpu_name(name, "--gpu")
    check_market_cloud(market, cloud)
    check_window_options(since, until, None)  # before the file is opened (which migrates an older one)
    with _open(db_path) as store:
        counted = _relative(since) or _relative(until)
        now = db_now(store, None, allow_past=True, say=False) if counted else datetime.now(UTC)
        start = parse_since(since, now)
        end = _not_before(parse_when(until, now, "--until"), start)
        chosen = market_filter(market)
        wanted = _gpu_filter(store, gpus, chosen)
        # Streamed, so ask first whether any non-RunPod row is in the selection (then the column is needed).
        with_market = any(
            next(iter(store.iter_prices(wanted, _cloud_filter(cloud), gpu_count, start, end, market=other)), None)
            is not None for other in store.market_names() if other != "runpod" and chosen in (None, other))
        rows = store.iter_prices(wanted, _cloud_filter(cloud), gpu_count, start, end, market=chosen)
        with contextlib.closing(rows):  # a failed write must not leave the read open (and the WAL behind)
            first = next(rows, None)
            if first is None:  # a header-only file is no trace: import-trace refuses it
                given = [*(f"--gpu {g!r}" for g in gpus),
                         *([f"--cloud {cloud.lower()}"] if _cloud_filter(cloud) else []),
                         *([f"--gpu-count {gpu_count}"] if gpu_count is not None else [])]
                raise click.ClickException(_nothing_to_export(store, db_path, chosen, start, end, given))
            quotes = itertools.chain([first], rows)
            if output is None:
                count = write_trace(quotes, sys.stdout, market=with_market)
            else:
                count = write_file(output, lambda handle: write_trace(quotes, handle, market=with_market))
    click.echo(f"Exported {count} rows{f' to {output}' if output else ''}.", err=True)


def _output(value: str | None) -> str | None:
    """-o's file; None for stdout: no -o, or '-' (as `sim trace -` writes and `import-trace -` reads)."""
    if value is not None and not value.strip():  # ("cannot write : it is a folder")
        raise click.BadParameter("is empty: give a file name, or - for stdout", param_hint="--output")
    return None if value == "-" else value


def _nothing_to_export(store: Store, db_path: str, market: str | None, start: datetime | None,
                       end: datetime | None, given: list[str]) -> str:
    """Why an export selects no row: the period and filters given against what the database holds."""
    spans = store.market_spans(market)
    where = "" if market is None else f" of market {market}"
    if not spans:
        return f"no price history{where} in {db_path} yet: nothing written; {_EMPTY_HINT}"
    period = (f"{to_iso(start) if start else 'the start'} to {to_iso(end) if end else 'the end'}"
              if start or end else "the whole history")
    held = f"{to_iso(min(s['first_ts'] for s in spans))} to {to_iso(max(s['last_ts'] for s in spans))}"
    return (f"no price rows{where} match (period: {period}{', ' + ' '.join(given) if given else ''}): "
            f"nothing written; {db_path} holds {held}")


