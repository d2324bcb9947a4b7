"""Cost report commands: `bidder report` (what was spent and saved, per job and pod) and
`bidder chart prices|spend` (PNG charts).

The numbers come from `bidder.report.data` and the drawings from `bidder.report.charts`, imported
inside the command functions so that other commands (a cron `bidder tick`) never pay for them.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from bidder.cli import main
from bidder.cli.common import (
    CLOUD_CHOICE,
    GPU_COUNT_FILTER,
    NO_PODS_HINT,
    check_market_cloud,
    checked_gpu_name,
    db_option,
    emit_rows,
    file_mode,
    market_option,
    open_existing_store,
    parse_when,
)
from bidder.cli.timing import allow_past_option, check_window_options, db_now, now_option
from bidder.errors import ConfigError
from bidder.store import Store
from bidder.units import to_iso

__all__ = ["chart", "chart_prices", "chart_spend", "report"]

_EXAMPLE_REPORT = """\b
Example:
  bidder report --since 7d
  bidder report --job train --since 2026-01-01T00:00:00Z --format json
  bidder report --since 30d --chart spend.png
"""
_EXAMPLE_CHART = """\b
Example:
  bidder chart prices --gpu "RTX A6000" --gpu 4090 --since 3d prices.png
  bidder chart spend --since 30d spend.png
"""
_EXAMPLE_CHART_PRICES = """\b
Example:
  bidder chart prices --gpu "RTX A6000" --gpu 4090 --cloud community --since 3d prices.png
  bidder chart prices --market vast --gpu "RTX 4090" --since all vast.png
  bidder chart prices --pod abc123xyz --since 2d pod.png
"""
_EXAMPLE_CHART_SPEND = """\b
Example:
  bidder chart spend --since 30d spend.png
  bidder chart spend --job train --since all train.png
"""

_NO_PRICES = ("collect prices with `bidder collect` (every 5 minutes from cron, see the README) or load "
              "history with `bidder import-trace FILE`")
_MAX_CHART_TYPES = 6

_JOB_COLUMNS = ("job", "gpu_types", "clouds", "kinds", "hours", "gpu_hours", "spend", "avg_per_gpu_hour",
                "interruptions", "on_demand_cost", "saving", "saving_pct")
_JOB_HEADERS = ("job", "GPU type", "cloud", "kind", "pod-h", "GPU-h", "spent $", "$/GPU-h", "interruptions",
                "on-demand $", "saved $", "saved %")
_POD_COLUMNS = ("pod_id", "job", "gpu_type_id", "cloud", "kind", "gpu_count", "bid_per_gpu", "hours", "spend",
                "avg_per_gpu_hour", "interruptions", "on_demand_cost", "saving", "saving_pct", "state")
_POD_HEADERS = ("pod", "job", "GPU type", "cloud", "kind", "GPUs", "bid $/GPU-h", "pod-h", "spent $", "$/GPU-h",
                "interruptions", "on-demand $", "saved $", "saved %", "state")
_MARKET_COLUMNS = ("gpu_type_id", "cloud", "gpu_count", "samples", "median_floor", "min_floor", "max_floor",
                   "median_on_demand", "spot_pct")
_MARKET_HEADERS = ("GPU type", "cloud", "GPUs", "samples", "median floor", "min floor", "max floor",
                   "median on-demand", "spot available %")
_CSV_COLUMNS = ("level", "job", "pod_id", "market", "gpu_type_id", "cloud", "kind", "state", "gpu_count", "hours",
                "gpu_hours", "spend", "avg_per_gpu_hour", "interruptions", "on_demand_cost", "saving", "saving_pct")


# -- shared options and helpers ------------------------------------------------------------------------
def _window_options(func: Any) -> Any:
    func = allow_past_option(func)
    func = now_option(func, reads_only=True)
    func = click.option("--until", "until_text", metavar="WHEN", default=None,
                        help="Period end: an ISO 8601 time or a duration before now (default: now).")(func)
    func = click.option("--since", "since_text", metavar="WHEN", default="7d", show_default=True,
                        help="Period start: a duration before now (7d, 12h), an ISO 8601 time, or 'all'.")(func)
    return func


def _given(option: str) -> bool:
    """Whether the user gave this option (rather than its default)."""
    ctx = click.get_current_context(silent=True)
    return ctx is not None and ctx.get_parameter_source(option) not in (None, ParameterSource.DEFAULT)


def _said(option: str, text: str, when: datetime) -> str:
    """An option as the user typed it, with the time it means when that is not the same text."""
    return f"{option} {text}" + ("" if text.strip() == to_iso(when) else f" ({to_iso(when)})")


def _window(since_text: str, until_text: str | None, now: datetime) -> tuple[datetime | None, datetime]:
    """The report period [since, until) on `now`, the command's one clock (bidder.cli.timing.db_now:
    --now, the emulator's virtual time or the wall clock). An empty period is a usage error naming
    the options the user gave."""
    until = parse_when(until_text, now, "--until") or now
    since = parse_when(since_text, now, "--since", allow_all=True)
    if since is not None and since >= until:
        start = ("" if _given("since_text") else "the default ") + _said("--since", since_text, since)
        end = _said("--until", until_text, until) if until_text is not None else f"now ({to_iso(until)})"
        hint = "/".join(o for o, given in (("--since", _given("since_text")), ("--until", until_text is not None))
                        if given) or "--since"
        raise click.BadParameter(f"the period is empty: {start} is not before {end}", param_hint=hint)
    return since, until


def _open(db_path: str) -> Store:
    store: Store = open_existing_store(db_path, "nothing to report yet")
    return store


def _period(since: datetime | None, until: datetime) -> str:
    return f"from {to_iso(since)} to {to_iso(until)}" if since else f"up to {to_iso(until)}"


def _check_job(store: Store, job: str | None) -> None:
    """An unknown --job is a bad option (listing the known ones), unless no pod exists at all."""
    if job is None or not store.managed_pods():
        return
    known = sorted({p["job"] for p in store.managed_pods() if p["job"]} | {j["name"] for j in store.jobs()})
    if job not in known:
        listed = ", ".join(known[:20]) + (" ..." if len(known) > 20 else "")
        raise click.BadParameter(f"unknown job {job!r}; known jobs: {listed or 'none'}", param_hint="--job")


def _empty_message(report: Any, db_path: str) -> str:
    period = _period(report.since, report.until)
    if report.managed_pods == 0 and report.job is not None:
        return f"Job {report.job!r} has no pods in {db_path} yet: nothing spent. Its first `bidder tick` launches one."
    if report.managed_pods == 0:
        return f"No managed pods in {db_path} yet: nothing spent. To start, {NO_PODS_HINT}."
    what = f"job {report.job!r}'s {report.managed_pods}" if report.job else f"all {report.managed_pods}"
    # From the first record on already (--since all), only --until can widen it.
    widen = "e.g. --since all" if report.since is not None else "with a later --until (or none)"
    return f"No managed pod ran {period}: {what} pod(s) ran outside this period; widen it, {widen}."


def _rounded(value: Any, digits: int = 6) -> Any:
    """Floats rounded for output (3.0, not 2.999999999999999), recursively."""
    if isinstance(value, float):
        return round(value, digits) + 0.0  # + 0.0: never print -0.0
    if isinstance(value, dict):
        return {k: _rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v, digits) for v in value]
    return value


def check_chart_path(out: str, *, param_hint: str = "OUT") -> str:
    """The image format of chart file `out` (its suffix; none: png), checked before any work is done:
    one matplotlib can write, in a folder that exists and takes a new file. A usage error or
    ConfigError otherwise."""
    from matplotlib.backend_bases import FigureCanvasBase

    if not out.strip():
        raise click.BadParameter("the chart's file name is empty; give one, e.g. spend.png", param_hint=param_hint)
    path = Path(out)
    kind = path.suffix.lstrip(".").lower() or "png"
    supported = FigureCanvasBase.get_supported_filetypes()
    if kind not in supported:
        raise click.BadParameter(f"cannot write a .{kind} chart; use one of "
                                 f"{', '.join('.' + k for k in sorted(supported))} (e.g. out.png)",
                                 param_hint=param_hint)
    target = _chart_target(out)
    if target is None:
        return kind  # a FIFO or a device: written as it is (opened when the chart is saved)
    if target.parent.exists() and not target.parent.is_dir():
        raise ConfigError(f"cannot write the chart to {out}: {target.parent} is a file, not a folder; choose a file "
                          "in a folder", key="chart")
    if not target.parent.is_dir():
        raise ConfigError(f"cannot write the chart to {out}: folder {target.parent} does not exist; create it first",
                          key="chart")
    try:  # a file made and removed: a read-only file system stops root too, where os.access says yes to a mode
        fd, probe = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    except OSError as exc:
        raise ConfigError(f"cannot write the chart to {out}: {exc.strerror or exc}; choose a folder you can "
                          "write to", key="chart") from None
    os.close(fd)
    os.unlink(probe)
    return kind


def _chart_target(out: str) -> Path | None:
    """The file a chart written to `out` replaces: `out`, or the file its symlink points to (never the
    link: a published `latest.png -> week.png` went on pointing at the old chart). None: `out` is a FIFO
    or a device such as /dev/stdout, written directly (replaced by a file, it is destroyed: as root, a
    chart to /dev/stdout made it a regular file for every program on the machine)."""
    path = Path(out)
    try:
        mode = path.stat().st_mode  # through symlinks
    except OSError:
        mode = None
    if mode is not None and stat.S_ISDIR(mode):
        raise ConfigError(f"cannot write the chart to {out}: it is a folder; give a file name, e.g. {out}/chart.png",
                          key="chart")
    if mode is not None and not stat.S_ISREG(mode):
        return None
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def save_chart(fig: Any, out: str, *, param_hint: str = "OUT") -> None:
    """Write the figure to `out` all at once (a temporary file renamed into place; a symlink's target
    replaced, a FIFO or a device written directly: `_chart_target`), then close it."""
    import matplotlib.pyplot as plt

    try:
        kind = check_chart_path(out, param_hint=param_hint)
        # No creation date in the file: matplotlib's is the machine's local wall time, neither UTC nor
        # the clock (virtual, or --now) the chart was drawn at.
        undated = {"svg": {"Date": None}, "svgz": {"Date": None}, "pdf": {"CreationDate": None}}.get(kind)
        path = _chart_target(out)
        if path is None:  # a FIFO or a device: written directly, by the name given
            try:
                with open(out, "wb") as handle:
                    fig.savefig(handle, dpi=120, format=kind, metadata=undated)
            except OSError as exc:
                raise ConfigError(f"cannot write the chart to {out}: {exc.strerror or exc}", key="chart") from None
            return
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        except OSError as exc:
            raise ConfigError(f"cannot write the chart to {out}: {exc.strerror or exc}; choose a folder you can "
                              "write to", key="chart") from None
        os.close(fd)
        try:
            fig.savefig(tmp, dpi=120, format=kind, metadata=undated)
            os.chmod(tmp, file_mode())  # mkstemp made it 0600: the chart gets the usual permissions
            os.replace(tmp, path)
        except OSError as exc:
            raise ConfigError(f"cannot write the chart to {out}: {exc.strerror or exc}", key="chart") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    finally:
        plt.close(fig)


def _notice_chart(title: str, text: str) -> Any:
    """A chart with nothing to draw, saying why: a cron job that forwards the chart must not send the
    last one written, which looks current."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 3))
    ax.axis("off")
    ax.set_title(title)
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=12, wrap=True)
    return fig


def _nothing_ran_chart(period: str) -> Any:
    """The spend chart of a period in which nothing ran, saying so."""
    return _notice_chart("Cumulative spend per job against on-demand (USD)", f"Nothing ran {period}: nothing spent.")


# -- bidder report -------------------------------------------------------------------------------------
@main.command("report", epilog=_EXAMPLE_REPORT)
@_window_options
@click.option("--job", default=None, metavar="NAME", help="Only this job's pods.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True,
              help="Output format (printed; not with --html, which writes a page).")
@click.option("--chart", type=click.Path(dir_okay=False), default=None, metavar="PNG",
              help="Also draw cumulative spend per job against on-demand into this file.")
@click.option("--html", "html_dir", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Write the report as one self-contained page, DIR/report.html (charts embedded; each chart "
                   "as a PNG and each table as a CSV beside it; the files of an earlier report in DIR that this "
                   "one does not write are removed), and print its path. Instead of --format, not with it.")
@click.option("--config", "config_path", default="bidder.toml", show_default=True, type=click.Path(dir_okay=False),
              help="The managed jobs file, read for each job's restart overhead in --html (the default "
                   "only if present).")
@db_option
def report(since_text: str, until_text: str | None, now_text: str | None, allow_past: bool, job: str | None,
           fmt: str, chart: str | None, html_dir: str | None, config_path: str, db_path: str) -> None:
    """What bidder's pods cost over a period, and what they saved against on-demand.

    Per job and per pod: GPU type, cloud, spot or on-demand, running hours, USD spent (estimated
    from each poll of the pod, pay-as-bid), interruptions, the average paid per GPU-hour, what the
    same running hours would have cost on-demand at the prices recorded then, and the saving. Then
    the markets the pods ran in: median spot floor, on-demand, and the share of time with spot.
    An empty period is not an error (exit 0). With --html DIR, the same numbers as a page to open and
    forward, with the markets the jobs ran in drawn (prices, bids, interruptions, when spot is cheapest).
    """
    check_window_options(since_text, until_text, now_text)  # bad options fail before any file is opened
    if chart is not None:
        check_chart_path(chart, param_hint="--chart")
    if html_dir is not None:
        _check_html_dir(html_dir)
        if chart is not None:
            raise click.UsageError("--chart draws the printed report's spend chart; --html draws it on the page "
                                   "and beside it as DIR/spend-JOB.png: give one of them")
        if click.get_current_context().get_parameter_source("fmt") is not ParameterSource.DEFAULT:
            raise click.UsageError(f"--format {fmt} prints the report and --html writes it as a page; give one of "
                                   "them (the page's tables are CSV files beside it)")
        given = click.get_current_context().get_parameter_source("config_path") is not ParameterSource.DEFAULT
        _html_report(db_path, Path(html_dir), since_text, until_text, now_text, allow_past, job,
                     config_path if given else None)
        return
    from bidder.report.data import spend_report  # lazily: `bidder tick` must not pay for analysis

    with _open(db_path) as store:
        now = db_now(store, now_text, allow_past=allow_past, say=fmt == "table")
        since, until = _window(since_text, until_text, now)
        _check_job(store, job)
        result = spend_report(store, since, until, job=job, now=now)
    if result.is_empty:
        message = _empty_message(result, db_path)
        if fmt == "json":
            payload = result.to_dict()
            payload["notes"] = [message, *payload["notes"]]
            click.echo(json.dumps({"db": db_path, **_rounded(payload)}, indent=2))
        elif fmt == "csv":
            emit_rows([], _CSV_COLUMNS, "csv")
            click.echo(message, err=True)
        else:
            click.echo(message)
        if chart:
            save_chart(_nothing_ran_chart(_period(result.since, result.until)), chart, param_hint="--chart")
            click.echo(f"Wrote {chart}: nothing ran in the period, and the chart says so.", err=True)
        return
    if chart:
        from bidder.report.charts import spend_chart

        save_chart(spend_chart(result), chart, param_hint="--chart")
    if fmt == "json":
        click.echo(json.dumps({"db": db_path, **_rounded(result.to_dict())}, indent=2))
    elif fmt == "csv":
        emit_rows(_csv_rows(result), _CSV_COLUMNS, "csv")
    else:
        _print_table(result, db_path)
    if chart:
        click.echo(f"Wrote {chart}.", err=fmt != "table")


def _restart_overheads(config_path: str | None) -> dict[str, float]:
    """Each job's restart overhead (hours) from the --config file, or from bidder.toml if it is there.
    A file named with --config must exist: a mistyped path would silently report the default overhead."""
    from bidder.jobs import DEFAULT_CONFIG, load_config

    if config_path is None:
        if not Path(DEFAULT_CONFIG).is_file():
            return {}
        config_path = DEFAULT_CONFIG
    elif not Path(config_path).is_file():
        raise ConfigError(f"no jobs file at {config_path}; give --config the bidder.toml your jobs run from, "
                          "or leave it out to use the default restart overhead", key="config")

    config = load_config(config_path)
    return {name: job.job.restart_overhead_hours for name, job in config.jobs.items()}


def _check_html_dir(html_dir: str) -> None:
    """--html DIR names the folder to write into: not empty (that would write into the current folder)
    and not a page's name (that would make a folder called report.html)."""
    if not html_dir.strip():
        raise click.BadParameter("the folder's name is empty; give one, e.g. --html report", param_hint="--html")
    if html_dir.rstrip("/\\").lower().endswith((".html", ".htm")):
        name = html_dir.rstrip("/\\")
        folder = name[:name.lower().rfind(".htm")]
        folder = folder if folder and folder[-1] not in "/\\" else folder + "report"
        raise click.BadParameter(f"{html_dir!r} names a page, but --html takes a folder; the page is "
                                 f"DIR/report.html (e.g. --html {folder})", param_hint="--html")


def _html_report(db_path: str, out: Path, since_text: str, until_text: str | None, now_text: str | None,
                 allow_past: bool, job: str | None, config_path: str | None) -> None:
    from bidder.cli.progress import Progress
    from bidder.report.page import write_html_report

    overheads = _restart_overheads(config_path)
    progress = Progress("report")
    with _open(db_path) as store:
        now = db_now(store, now_text, allow_past=allow_past)
        since, until = _window(since_text, until_text, now)
        _check_job(store, job)
        page = write_html_report(store, out, since=since, until=until, now=now, job=job,
                                 restart_overhead_hours=overheads, db_label=db_path, progress=progress)
    progress.close()
    click.echo(f"Wrote {page}")


def _job_row(job: Any) -> dict[str, Any]:
    row = _rounded(job.to_dict())  # (the table shows 3 decimals: rounded to 4 first, 0.152542 read 0.152)
    for key in ("gpu_types", "clouds", "kinds"):
        row[key] = ", ".join(row[key]) or None
    if row["saving_pct"] is not None:
        row["saving_pct"] = round(row["saving_pct"]) + 0
    return row


def _pod_row(pod: Any) -> dict[str, Any]:
    row = _rounded(pod.to_dict())
    row["state"] = pod.shown_state
    if row["saving_pct"] is not None:
        row["saving_pct"] = round(row["saving_pct"]) + 0
    return row


def _print_table(result: Any, db_path: str) -> None:
    jobs, pods = len(result.jobs), len(result.pods)
    click.echo(f"Spend {_period(result.since, result.until)} ({db_path}): {jobs} job{'s' * (jobs != 1)}, "
               f"{pods} pod{'s' * (pods != 1)}. Money in USD; pod-h = running hours.")
    click.echo("")
    rows = [_job_row(j) for j in result.jobs] + [_job_row(result.totals)]
    rows[-1].update(gpu_types=None, clouds=None, kinds=None)
    emit_rows(rows, _JOB_COLUMNS, "table", headers=_JOB_HEADERS)
    click.echo("")
    if any(p.market != "runpod" for p in result.pods):  # with a Vast pod in it, each row names its market
        emit_rows([_pod_row(p) for p in result.pods], ("pod_id", "market", *_POD_COLUMNS[1:]), "table",
                  headers=("pod", "market", *_POD_HEADERS[1:]))
    else:
        emit_rows([_pod_row(p) for p in result.pods], _POD_COLUMNS, "table", headers=_POD_HEADERS)
    if result.markets:
        click.echo("")
        click.echo("Markets over the period (USD per GPU-hour):")
        markets = []
        for m in result.markets:
            row = _rounded(m.to_dict(), 4)
            row["spot_pct"] = None if m.spot_share is None else round(100 * m.spot_share)
            markets.append(row)
        emit_rows(markets, _MARKET_COLUMNS, "table", headers=_MARKET_HEADERS)
    for note in result.notes:
        click.echo(f"Note: {note}")


def _csv_rows(result: Any) -> list[dict[str, Any]]:
    rows = [{"level": "pod", **_rounded(p.to_dict()), "state": p.shown_state} for p in result.pods]
    for j in (*result.jobs, result.totals):
        row = _rounded(j.to_dict())
        rows.append({**row, "level": "total" if j is result.totals else "job",
                     "job": None if j is result.totals else j.job,
                     "gpu_type_id": "; ".join(row["gpu_types"]), "cloud": "; ".join(row["clouds"]),
                     "kind": "; ".join(row["kinds"])})
    return rows


# -- bidder chart --------------------------------------------------------------------------------------
@main.group("chart", epilog=_EXAMPLE_CHART)
def chart() -> None:
    """Draw cost-report charts as PNG files: market prices, or spend against on-demand."""


def _default_gpus(store: Store, pod_row: dict[str, Any] | None, gpu_count: int, market: str | None) -> list[str]:
    """With no --gpu: the pod's type, else the types bidder's pods ran on (in `market`, if given),
    else the 3 cheapest spot floors of the newest snapshot (for pods of `gpu_count` GPUs if any)."""
    if pod_row is not None and pod_row.get("gpu_type_id"):
        return [pod_row["gpu_type_id"]]
    used = list(dict.fromkeys(p["gpu_type_id"] for p in store.managed_pods() if p["gpu_type_id"]
                              and market in (None, p.get("market") or "runpod")))
    if used:
        return used[:_MAX_CHART_TYPES]
    quotes = [q for q in store.latest_quotes(market) if q.minimum_bid_price is not None]
    quotes = [q for q in quotes if q.gpu_count == gpu_count] or quotes  # none of N GPUs: the hint says so
    quotes.sort(key=lambda q: q.minimum_bid_price or 0.0)
    return list(dict.fromkeys(q.gpu_type_id for q in quotes))[:3]


def _resolve(store: Store, gpus: Sequence[str]) -> list[str]:
    from bidder.cli.collect import resolve_gpu_types

    ids = resolve_gpu_types(gpus, store.gpu_type_names())
    if len(ids) > _MAX_CHART_TYPES:
        raise click.BadParameter(f"{', '.join(repr(g) for g in gpus)} match {len(ids)} GPU types "
                                 f"({', '.join(ids[:8])}{' ...' if len(ids) > 8 else ''}); a chart shows at most "
                                 f"{_MAX_CHART_TYPES}: name them more exactly", param_hint="--gpu")
    return ids


@chart.command("prices", epilog=_EXAMPLE_CHART_PRICES)
@click.argument("out", metavar="OUT.png", type=click.Path(dir_okay=False))
@click.option("--gpu", "gpus", multiple=True, metavar="NAME",
              help="GPU type (id, display name or a part of one; repeatable). Default: the types bidder's pods "
                   "ran on, else the 3 cheapest spot floors now.")
@click.option("--cloud", type=CLOUD_CHOICE, default="any", show_default=True, help="Only this cloud.")
@click.option("--gpu-count", type=GPU_COUNT_FILTER, default=1, show_default=True, metavar="N",
              help="Prices quoted for pods of N GPUs.")
@click.option("--pod", "pod_id", default=None, metavar="POD_ID",
              help="Mark this managed pod's bid and its interruptions (adds its GPU type).")
@market_option("any", "Only this market (RunPod's clouds or Vast's tiers); any = every market in the database.")
@_window_options
@db_option
def chart_prices(out: str, gpus: tuple[str, ...], cloud: str, gpu_count: int, pod_id: str | None, market: str,
                 since_text: str, until_text: str | None, now_text: str | None, allow_past: bool,
                 db_path: str) -> None:
    """Spot floor and on-demand price over time for chosen GPU types (USD per GPU-hour), in RunPod's
    clouds and Vast's tiers, with a managed pod's bid and interruptions when --pod is given (a
    paused Vast instance's standing bid dotted). Writes OUT.png.
    """
    check_window_options(since_text, until_text, now_text)
    check_chart_path(out)
    for name in gpus:
        checked_gpu_name(name)
    chosen = None if market.lower() == "any" else market.lower()
    check_market_cloud(market, cloud)
    from bidder.report.charts import price_chart
    from bidder.report.data import pod_track, price_chart_data

    with _open(db_path) as store:
        now = db_now(store, now_text, allow_past=allow_past)
        since, until = _window(since_text, until_text, now)
        pod_row = None
        if pod_id is not None:
            pod_row = store.pod(pod_id)
            if pod_row is None:
                known = [p["pod_id"] for p in store.managed_pods()][-10:]
                raise click.BadParameter(f"bidder manages no pod {pod_id!r}; "
                                         + (f"recent pods: {', '.join(known)}" if known else
                                            f"it manages none yet ({NO_PODS_HINT})"), param_hint="--pod")
        if pod_row is not None:  # the pod's own prices unless told otherwise: a 4-GPU pod's bid over 1-GPU floors misled
            ctx = click.get_current_context()
            if ctx.get_parameter_source("gpu_count") is ParameterSource.DEFAULT:
                gpu_count = int(pod_row.get("gpu_count") or 1)
            if ctx.get_parameter_source("market") is ParameterSource.DEFAULT:
                chosen = pod_row.get("market") or "runpod"
        if not store.markets():
            save_chart(_notice_chart(_PRICES_TITLE, f"No price history in {db_path} yet."), out)
            click.echo(f"No price history in {db_path} yet: wrote {out}, which says so. First {_NO_PRICES}.")
            return
        ids = _resolve(store, gpus) if gpus else _default_gpus(store, pod_row, gpu_count, chosen)
        if pod_row is not None and pod_row.get("gpu_type_id") and pod_row["gpu_type_id"] not in ids:
            ids.append(pod_row["gpu_type_id"])
        clouds = None if cloud.lower() == "any" else [cloud.upper()]
        # A period that ends now holds the snapshot taken now, as `bidder history` does (--until is exclusive):
        # without it, one snapshot charted nothing and two drew no line.
        end = until + timedelta(seconds=1) if until_text is None else until
        series = price_chart_data(store, ids, clouds, gpu_count, since, end, market=chosen)
        track = pod_track(store, pod_id, until, since, ends_now=until == now) if pod_id is not None else None
        names = store.gpu_type_names()
        if not series:
            what = (f"No prices of {', '.join(ids) or 'any GPU type'} ({'any market' if chosen is None else chosen}, "
                    f"{cloud.lower()} cloud, {gpu_count} GPU{'s' * (gpu_count != 1)}) {_period(since, until)}")
            hint = _no_prices_hint(store, ids, chosen, clouds, gpu_count, since, until)
            save_chart(_notice_chart(_PRICES_TITLE, f"{what}."), out)
            click.echo(f"{what}: {hint}. Wrote {out}, which says so.")
            return
    save_chart(price_chart(series, track, names), out)
    markets = ", ".join(f"{s.gpu_type_id} {'' if s.market == 'runpod' else s.market + ' '}{s.cloud.lower()}"
                        for s in series)
    click.echo(f"Wrote {out}: {markets}, {_period(since, until)}"
               + (f"; pod {pod_id} bid and {len(track.interruptions)} interruption(s) marked" if track else "")
               + ".")


_PRICES_TITLE = "Spot floor and on-demand, USD per GPU-hour"


def _no_prices_hint(store: Store, ids: Sequence[str], market: str | None, clouds: Sequence[str] | None,
                    gpu_count: int, since: datetime | None, until: datetime) -> str:
    """Why `chart prices` found nothing, and what would help. Options no recorded market matches
    (--market, --cloud, --gpu-count) are a usage error naming what was recorded; history outside the
    period is not an error, and the hint names the option that would reach it."""
    from bidder.models import market_of
    from bidder.report.data import chart_markets

    every = chart_markets(store, ids, gpu_count=None)
    if not every:
        others = [m for m in store.market_names() if m != market]
        if market is not None and others:
            raise click.BadParameter(f"no price{' of ' + ', '.join(ids) if ids else ''} was ever recorded in market "
                                     f"{market}; this database has {' and '.join(others)}'s", param_hint="--market")
        return f"none is recorded; {_NO_PRICES}"

    def listed(keys: Sequence[Any]) -> str:
        by: dict[str, list[int]] = {}
        for k in keys:
            by.setdefault(f"{market_of(k)} {str(k[1]).lower()}", []).append(int(k[2]))
        return "; ".join(f"{name} ({', '.join(map(str, sorted(set(n))))} GPUs)" for name, n in by.items())

    types = ", ".join(ids)
    for option, keys, where in (
            ("--market", chart_markets(store, ids, None, None, market), f"in market {market}"),
            ("--cloud", chart_markets(store, ids, clouds, None, market), f"in cloud {(clouds or ['any'])[0].lower()}"),
            ("--gpu-count", chart_markets(store, ids, clouds, gpu_count, market), f"for pods of {gpu_count} GPUs")):
        if not keys:
            raise click.BadParameter(f"no price of {types} was ever recorded {where}; recorded: {listed(every)}",
                                     param_hint=option)
    spans = [s for s in store.market_spans(market) if s["gpu_type_id"] in ids and int(s["gpu_count"]) == gpu_count
             and (clouds is None or s["cloud"] in clouds)]
    first, last = min(s["first_ts"] for s in spans), max(s["last_ts"] for s in spans)
    runs = f"their history runs from {to_iso(first)} to {to_iso(last)}"
    if since is not None and last < since:
        return f"{runs}; start the period earlier, e.g. --since all"
    if first >= until:
        return f"{runs}; end the period after it begins (--until, --now)"
    return f"{runs} with no sample in this period; choose a period inside it (--since, --until)"


@chart.command("spend", epilog=_EXAMPLE_CHART_SPEND)
@click.argument("out", metavar="OUT.png", type=click.Path(dir_okay=False))
@click.option("--job", default=None, metavar="NAME", help="Only this job.")
@_window_options
@db_option
def chart_spend(out: str, job: str | None, since_text: str, until_text: str | None, now_text: str | None,
                allow_past: bool, db_path: str) -> None:
    """Cumulative spend per job over the period against what the same running hours would have cost
    on-demand, interruptions marked. Writes OUT.png (the chart of `bidder report --chart`).
    """
    check_window_options(since_text, until_text, now_text)
    check_chart_path(out)
    from bidder.report.charts import spend_chart
    from bidder.report.data import spend_report

    with _open(db_path) as store:
        now = db_now(store, now_text, allow_past=allow_past)
        since, until = _window(since_text, until_text, now)
        _check_job(store, job)
        result = spend_report(store, since, until, job=job, now=now)
    if result.is_empty:
        save_chart(_nothing_ran_chart(_period(since, until)), out)
        click.echo(f"{_empty_message(result, db_path)} Wrote {out}: nothing ran in the period, and the chart says so.")
        return
    save_chart(spend_chart(result), out)
    click.echo(f"Wrote {out}: {len(result.jobs)} job(s), ${result.totals.spend:,.2f} spent "
               f"{_period(since, until)}.")
