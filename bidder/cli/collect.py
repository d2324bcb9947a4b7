"""Price history commands: `bidder collect`, `prices`, `history`, `import-trace`, `export`."""

from __future__ import annotations

import difflib
import os
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import numpy as np

from bidder.cli import main
from bidder.cli.common import (
    DURATION,
    INT_LIST,
    api_options,
    db_option,
    emit_rows,
    format_option,
    parse_when,
    resolve_api_key,
)
from bidder.errors import ConfigError
from bidder.models import PriceQuote
from bidder.store import Store
from bidder.units import format_duration, to_iso

__all__ = ["collect", "export", "history", "import_trace", "parse_since", "prices", "resolve_gpu_types"]

_CLOUD_CHOICE = click.Choice(["secure", "community", "any"], case_sensitive=False)
_EMPTY_HINT = ("collect a snapshot with `bidder collect` (or every 5 minutes from cron, see the README), "
               "or load history with `bidder import-trace FILE`")


# Each command's --help ends with these examples (click prints the epilog last).
_EXAMPLE_COLLECT = """\b
Example:
  bidder collect --gpu-counts 1,2,4,8
  bidder collect --every 5m
"""
_EXAMPLE_PRICES = """\b
Example:
  bidder prices --min-vram 24 --cloud community
  bidder prices --gpu 4090 --format json
"""
_EXAMPLE_HISTORY = """\b
Example:
  bidder history "RTX A6000" --since 7d
  bidder history "NVIDIA GeForce RTX 4090" --since all --cloud community
"""
_EXAMPLE_IMPORT_TRACE = """\b
Example:
  bidder import-trace data/traces/sim-seed1-14d.csv
"""
_EXAMPLE_EXPORT = """\b
Example:
  bidder export --since 30d --gpu "RTX A6000" > a6000.csv
  bidder export -o all-history.csv
"""


# -- shared helpers ----------------------------------------------------------------------------------
def resolve_gpu_types(queries: Iterable[str], known: Mapping[str, str | None]) -> list[str]:
    """GPU type ids matching what the user typed: an exact id or display name (any case), else
    every id or name containing it. Raises ConfigError listing close matches when nothing fits."""
    out: list[str] = []
    for query in queries:
        text = query.strip().lower()
        exact = [i for i, name in known.items() if text in (i.lower(), (name or "").lower())]
        partial = [i for i, name in known.items() if text in i.lower() or text in (name or "").lower()]
        found = exact or partial
        if not found:
            labels = sorted(set(known) | {n for n in known.values() if n})
            # Compare with whole names and with their words ("4900" is close to "... RTX 4090").
            close = [label for label in labels
                     if difflib.get_close_matches(text, [label.lower(), *label.lower().split()], n=1, cutoff=0.7)]
            close = close[:5] or difflib.get_close_matches(query, labels, n=5, cutoff=0.5)
            hint = (f"close matches: {', '.join(close)}" if close else
                    f"{len(known)} types are known; `bidder prices` lists them" if known else
                    "no GPU types are known yet; " + _EMPTY_HINT)
            raise ConfigError(f"unknown GPU type {query!r}; {hint}", key="gpu")
        out.extend(i for i in sorted(found) if i not in out)
    return out


def parse_since(text: str | None, now: datetime) -> datetime | None:
    """"7d"/"12h" (before `now`), an ISO 8601 time, or "all"/None (no limit): `parse_when`."""
    return parse_when(text, now, "--since", allow_all=True)


def _open(db_path: str, *, create: bool = False) -> Store:
    return Store.open(db_path, create=create)


def _cloud_filter(cloud: str) -> str | None:
    return None if cloud.lower() == "any" else cloud.upper()


def _gpu_filter(store: Store, gpus: Sequence[str]) -> list[str] | None:
    return resolve_gpu_types(gpus, store.gpu_type_names()) if gpus else None


# -- collect -----------------------------------------------------------------------------------------
@main.command("collect", epilog=_EXAMPLE_COLLECT)
@click.option("--every", type=DURATION, default=None, metavar="DURATION",
              help="Loop: collect at every multiple of this interval (e.g. 5m) until Ctrl-C.")
@click.option("--gpu-counts", type=INT_LIST, default="1", show_default=True, metavar="LIST",
              help="GPU counts to quote, e.g. 1,2,4,8 (one request covers them all).")
@click.option("--cycles", type=click.IntRange(min=1), default=None, metavar="N",
              help="With --every: stop after N intervals.")
@click.option("--retries", type=click.IntRange(min=1), default=4, show_default=True, metavar="N",
              help="Attempts per request on a transient error (429, 5xx, timeout); 1 = fail at once.")
@db_option
@api_options
def collect(every: timedelta | None, gpu_counts: tuple[int, ...], cycles: int | None, retries: int,
            db_path: str, api_url: str) -> None:
    """Record one price snapshot of every GPU type, both clouds and the given GPU counts.

    One API request per snapshot; the catalogue (names, VRAM) is refreshed at most daily. For
    cron, run it without --every: exit 0 on success, one line and exit 1 on failure (the failure
    is recorded in the `collections` table).
    """
    from bidder.collector import SPOT_FIELDS_GONE_MESSAGE, LoopStats, collect_once, run_every
    from bidder.runpod import RetryPolicy, RunPodClient

    if every is not None and every.total_seconds() < 1:
        raise click.BadParameter("the interval must be at least 1s (5m is a good choice)", param_hint="--every")
    if cycles is not None and every is None:
        raise click.UsageError("--cycles only makes sense with --every")
    store = _open(db_path, create=True)
    client = RunPodClient(api_key=resolve_api_key(), url=api_url, retry=RetryPolicy(attempts=retries))

    told_no_spot = False

    def cycle(now: datetime) -> None:
        nonlocal told_no_spot
        result = collect_once(client, store, now=now, gpu_counts=gpu_counts)
        catalogue = f", catalogue of {result.gpu_types_refreshed} types refreshed" if result.gpu_types_refreshed else ""
        click.echo(f"{to_iso(result.ts)}  stored {result.quotes} quotes ({result.markets} GPU type × cloud "
                   f"markets, GPU counts {','.join(map(str, gpu_counts))}) in {result.duration_s:.2f}s{catalogue}")
        if not result.spot_prices and not told_no_spot:
            told_no_spot = True  # once per run: the loop would repeat it every interval
            click.echo(f"{SPOT_FIELDS_GONE_MESSAGE}.")

    if every is None:
        cycle(datetime.now(UTC))
        return

    def on_error(exc: BaseException, retry_in: float | None) -> None:
        then = f"retrying in {format_duration(retry_in)}" if retry_in else "next try at the next interval"
        click.echo(f"{to_iso(datetime.now(UTC))}  collection failed: {exc}; {then}", err=True)

    stats = LoopStats()
    click.echo(f"Collecting every {format_duration(every.total_seconds())} into {db_path} (Ctrl-C stops).")
    try:
        run_every(every.total_seconds(), cycle, now=lambda: datetime.now(UTC), sleep=time.sleep,
                  max_cycles=cycles, on_error=on_error, stats=stats)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
    click.echo(f"{stats.ok} snapshots stored, {stats.failures} failed attempts, {stats.skipped_slots} "
               f"intervals skipped.")


# -- prices ------------------------------------------------------------------------------------------
@main.command("prices", epilog=_EXAMPLE_PRICES)
@click.option("--gpu", "gpus", multiple=True, metavar="NAME",
              help="Only this GPU type (id, display name or part of one; repeatable).")
@click.option("--min-vram", type=click.IntRange(min=1), default=None, metavar="GB", help="At least this much VRAM.")
@click.option("--cloud", type=_CLOUD_CHOICE, default="any", show_default=True, help="Only this cloud.")
@click.option("--gpu-count", type=click.IntRange(min=1), default=None, metavar="N",
              help="Only quotes for pods of N GPUs (default: every count collected).")
@format_option("table", "json", "csv")
@db_option
def prices(gpus: tuple[str, ...], min_vram: int | None, cloud: str, gpu_count: int | None, fmt: str,
           db_path: str) -> None:
    """Show the newest price snapshot, cheapest first (prices in USD per GPU-hour).

    `spot floor` is the lowest accepted bid (minimumBidPrice; `-` = no spot capacity now),
    `spot discount %` what bidding the floor saves against on-demand.
    """
    with _open(db_path) as store:
        quotes = store.latest_quotes()
        if not quotes:
            raise click.ClickException(f"no price snapshot in {db_path} yet; {_EMPTY_HINT}")
        wanted = _gpu_filter(store, gpus)
    chosen = [q for q in quotes
              if (wanted is None or q.gpu_type_id in wanted)
              and (min_vram is None or (q.memory_in_gb is not None and q.memory_in_gb >= min_vram))
              and (_cloud_filter(cloud) in (None, q.cloud))
              and (gpu_count is None or q.gpu_count == gpu_count)]
    if not chosen:
        raise click.ClickException(f"no quote in the snapshot of {to_iso(quotes[0].ts)} matches these filters")
    chosen.sort(key=lambda q: (_cheapest(q) is None, _cheapest(q) or 0.0, q.gpu_type_id, q.cloud, q.gpu_count))
    rows = [{"gpu_type_id": q.gpu_type_id, "display_name": q.display_name, "memory_in_gb": q.memory_in_gb,
             "cloud": q.cloud, "gpu_count": q.gpu_count, "spot_floor": q.minimum_bid_price,
             "on_demand": q.uninterruptable_price,
             "spot_discount_pct": None if q.spot_discount is None else round(100 * q.spot_discount),
             "stock_status": q.stock_status, "ts": to_iso(q.ts)} for q in chosen]
    if fmt == "table":
        click.echo(f"Snapshot of {to_iso(quotes[0].ts)} from {db_path}: {len(rows)} of {len(quotes)} quotes.")
        emit_rows(rows, ["gpu_type_id", "memory_in_gb", "cloud", "gpu_count", "spot_floor", "on_demand",
                         "spot_discount_pct", "stock_status"], fmt,
                  headers=["GPU type", "VRAM GB", "cloud", "GPUs", "spot floor", "on-demand", "spot discount %",
                           "stock"])
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
@click.option("--cloud", type=_CLOUD_CHOICE, default="any", show_default=True, help="Only this cloud.")
@click.option("--gpu-count", type=click.IntRange(min=1), default=None, metavar="N", help="Only pods of N GPUs.")
@format_option("table", "json", "csv")
@db_option
def history(gpu: str, since: str, until: str | None, cloud: str, gpu_count: int | None, fmt: str,
            db_path: str) -> None:
    """Summarise one GPU type's spot floor over a window: min, median, p90, max (USD per GPU-hour)
    and the share of time spot capacity was available, per cloud and GPU count.
    """
    now = datetime.now(UTC)
    start = parse_since(since, now)
    end = parse_when(until, now, "--until")
    with _open(db_path) as store:
        names = store.gpu_type_names()
        if not names:
            raise click.ClickException(f"no price history in {db_path} yet; {_EMPTY_HINT}")
        ids = resolve_gpu_types([gpu], names)
        if len(ids) > 1:
            raise ConfigError(f"{gpu!r} matches {len(ids)} GPU types ({', '.join(ids[:6])}"
                              f"{', ...' if len(ids) > 6 else ''}); give one exactly", key="gpu")
        gpu_id = ids[0]
        spans = [s for s in store.market_spans() if s["gpu_type_id"] == gpu_id
                 and _cloud_filter(cloud) in (None, s["cloud"]) and gpu_count in (None, s["gpu_count"])]
        if not spans:
            raise click.ClickException(f"no price history of {gpu_id} in {db_path} (for these filters); "
                                       f"{_EMPTY_HINT}")
        rows = []
        for span in spans:
            series = store.floor_series(gpu_id, span["cloud"], span["gpu_count"], since=start, until=end)
            if len(series):
                rows.append(_summary(series))
    if not rows:
        first, last = min(s["first_ts"] for s in spans), max(s["last_ts"] for s in spans)
        raise click.ClickException(f"no samples of {gpu_id} since {to_iso(start) if start else 'the start'}; its "
                                   f"history runs from {to_iso(first)} to {to_iso(last)} (try --since all)")
    if fmt == "table":
        window = f"since {to_iso(start)}" if start else "all history"
        click.echo(f"{gpu_id}: spot floor, USD per GPU-hour, {window}.")
        emit_rows(rows, ["cloud", "gpu_count", "samples", "from", "to", "min", "median", "p90", "max",
                         "spot_available_pct", "on_demand"], fmt,
                  headers=["cloud", "GPUs", "samples", "from", "to", "min", "median", "p90", "max",
                           "spot available %", "on-demand"])
    else:
        emit_rows(rows, list(rows[0]), fmt)


def _summary(series: Any) -> dict[str, Any]:
    ts, floor = series.ts, series.floor
    have = ~np.isnan(floor)
    # Share of time, not of samples: each sample stands for the time until the next one, capped
    # at twice the usual step so that a gap in collection does not count as spot (or its absence).
    step = float(np.median(np.diff(ts))) if len(ts) > 1 else 300.0
    weights = np.minimum(np.diff(ts, append=ts[-1] + step), 2 * step)
    available = float(weights[have].sum() / weights.sum()) if weights.sum() > 0 else float(have.mean())
    spot = floor[have]

    def stat(fn: Any) -> float | None:
        return round(float(fn(spot)), 4) if spot.size else None

    on_demand = series.on_demand[~np.isnan(series.on_demand)]
    return {"gpu_type_id": series.gpu_type_id, "cloud": series.cloud, "gpu_count": series.gpu_count,
            "samples": len(ts), "from": to_iso(datetime.fromtimestamp(ts[0], UTC)),
            "to": to_iso(datetime.fromtimestamp(ts[-1], UTC)),
            "min": stat(np.min), "median": stat(np.median), "p90": stat(lambda a: np.percentile(a, 90)),
            "max": stat(np.max), "spot_available_pct": round(100 * available, 1),
            "on_demand": round(float(np.median(on_demand)), 4) if on_demand.size else None}


# -- import-trace and export -------------------------------------------------------------------------
@main.command("import-trace", epilog=_EXAMPLE_IMPORT_TRACE)
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@db_option
def import_trace(file: str, db_path: str) -> None:
    """Load a trace CSV (format: docs/traces.md; '-' reads stdin) into the price history.

    All or nothing: a malformed row (named by line and column) stores nothing. Idempotent:
    importing the same file again changes no row.
    """
    from bidder.traces import iter_trace

    source: Any = sys.stdin if file == "-" else file
    if file != "-" and not Path(file).is_file():
        raise click.BadParameter(f"{file!r} is not a file", param_hint="FILE")
    seen = _Tally()
    with _open(db_path, create=True) as store:
        total, changed = store.import_quotes(seen.count(iter_trace(source, name="<stdin>" if file == "-" else None)))
    if not total:
        raise click.ClickException(f"{file} has a header but no data rows; nothing imported")
    click.echo(f"Imported {total} rows from {file} into {db_path}: {changed} new or changed; "
               f"{len(seen.markets)} markets ({len(seen.types)} GPU types), "
               f"{to_iso(seen.first)} to {to_iso(seen.last)}.")


class _Tally:
    """Counts what streams past on its way into the store."""

    def __init__(self) -> None:
        self.markets: set[tuple[str, str, int]] = set()
        self.types: set[str] = set()
        self.first = datetime.max.replace(tzinfo=UTC)
        self.last = datetime.min.replace(tzinfo=UTC)

    def count(self, quotes: Iterable[PriceQuote]) -> Iterator[PriceQuote]:
        for q in quotes:
            self.markets.add((q.gpu_type_id, q.cloud, q.gpu_count))
            self.types.add(q.gpu_type_id)
            self.first, self.last = min(self.first, q.ts), max(self.last, q.ts)
            yield q


@main.command("export", epilog=_EXAMPLE_EXPORT)
@click.option("--since", default=None, metavar="WHEN",
              help="Only from this time: a duration before now (7d), an ISO 8601 time, or 'all' (default).")
@click.option("--until", default=None, metavar="WHEN",
              help="Only before this: an ISO 8601 time or a duration before now (default: no end).")
@click.option("--gpu", "gpus", multiple=True, metavar="NAME", help="Only this GPU type (repeatable).")
@click.option("--cloud", type=_CLOUD_CHOICE, default="any", show_default=True, help="Only this cloud.")
@click.option("--gpu-count", type=click.IntRange(min=1), default=None, metavar="N", help="Only pods of N GPUs.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write to this file (written whole or not at all) instead of stdout.")
@db_option
def export(since: str | None, until: str | None, gpus: tuple[str, ...], cloud: str, gpu_count: int | None,
           output: str | None, db_path: str) -> None:
    """Write price history as a trace CSV (format: docs/traces.md), for another machine or a backtest.
    """
    from bidder.traces import write_trace

    now = datetime.now(UTC)
    start = parse_since(since, now)
    end = parse_when(until, now, "--until")
    with _open(db_path) as store:
        wanted = _gpu_filter(store, gpus)
        quotes = store.iter_prices(wanted, _cloud_filter(cloud), gpu_count, start, end)
        if output is None:
            count = write_trace(quotes, sys.stdout)
        else:
            target = Path(output)
            fd, tmp = tempfile.mkstemp(dir=target.parent if str(target.parent) else ".", suffix=".part")
            try:
                with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
                    count = write_trace(quotes, handle)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
    click.echo(f"Exported {count} rows{f' to {output}' if output else ''}.", err=True)
