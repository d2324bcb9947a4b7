"""The cost report as one self-contained HTML page (`bidder report --html DIR`).

    path = write_html_report(store, Path("report"), since=..., until=..., now=...)

Writes `DIR/report.html` with every chart embedded as a PNG data URI and the style inline (no script,
style sheet, font or image fetched from anywhere: it opens from disk, offline), and beside it each
chart as a PNG and each table as a CSV. Top to bottom: the headline (spend, what on-demand would have
cost, the saving, hours, interruptions, hours lost to restarts, how much of the pods' lives the polls
cover), each job (state, spend against on-demand, its pods), each market a job ran in (floor,
on-demand and bids over time with the interruptions; the spot discount by hour of week; what a bid
buys), the current market and the jobs' states.

The numbers are `spend_report`'s (the ones `bidder report` prints); the aggregation over long
periods runs in SQLite (`Store.price_buckets`, `Store.discount_by_hour_of_week`).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import io
import itertools
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from bidder.errors import ConfigError, InsufficientHistory
from bidder.models import MARKET_NAMES, market_key
from bidder.report.data import (
    JobSpend,
    PodSpend,
    SpendReport,
    observation_coverage,
    pod_track,
    spend_report,
)
from bidder.store import Store, run_starts
from bidder.store.ledger import run_lengths
from bidder.units import to_iso

__all__ = ["Progress", "write_html_report"]

#: progress(done, total, what): called as each part of the page is made.
Progress = Callable[[int, int, str], None]

_DEFAULT_OVERHEAD_HOURS = 10 / 60
_NICE_BUCKETS_S = (300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400)
_MAX_POINTS = 500
_CURRENT_ROWS = 30
#: The names of the files a report writes into DIR (the chart and table names of `_Page`): the only
#: files an earlier report left there that a new one removes.
_REPORT_FILE = re.compile(r"report\.html|(?:spend|market|discount|bids)-.+\.png|(?:pods-.+|current-market|job-states)\.csv")

_STYLE = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:0 auto;max-width:1100px;
padding:16px;color:#1b1b1b;line-height:1.4}
h1{font-size:1.6em;margin:.2em 0}h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:1.6em}
h3{margin-bottom:.3em}.muted{color:#555}.cards{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}
.card{border:1px solid #ccc;border-radius:6px;padding:8px 12px;min-width:140px;flex:1}
.card b{display:block;font-size:1.35em}.card span{color:#555;font-size:.85em}
table{border-collapse:collapse;margin:8px 0;font-size:.85em;width:100%;display:block;overflow-x:auto}
th,td{border:1px solid #ddd;padding:3px 6px;text-align:right;white-space:nowrap}
th{background:#f3f3f3}td.l,th.l{text-align:left}img{max-width:100%;height:auto;border:1px solid #eee}
.note{background:#fff8e0;border-left:4px solid #e0b000;padding:6px 10px;margin:8px 0}
.empty{background:#f3f3f3;padding:20px;border-radius:6px;font-size:1.1em}
"""


@dataclass(frozen=True)
class _Chart:
    name: str       # file name stem
    alt: str
    png: bytes


def _money(value: float | None) -> str:
    """USD with the sign before the dollar: -$0.01, not $-0.01 (and $0.00, not -$0.00)."""
    if value is None:
        return "-"
    cents = round(value, 2) + 0.0  # + 0.0: no -0.00
    return f"-${-cents:,.2f}" if cents < 0 else f"${cents:,.2f}"


def _num(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return html.escape(str(value))


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], left: int = 1) -> str:
    head = "".join(f'<th class="{"l" if i < left else ""}">{html.escape(h)}</th>' for i, h in enumerate(headers))
    body = []
    for row in rows:
        cells = "".join(f'<td class="{"l" if i < left else ""}">{_num(v, 3 if isinstance(v, float) else 0)}</td>'
                        for i, v in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _bucket_seconds(first: float, last: float) -> int:
    """The smallest nice bucket that keeps a chart under _MAX_POINTS points."""
    span = max(last - first, 1.0)
    return next((b for b in _NICE_BUCKETS_S if span / b <= _MAX_POINTS), _NICE_BUCKETS_S[-1])


class _ReadOnce:
    """The store, with each pod's observations read once per report (the spend, the pod tracks and the
    coverage all read them: a year of 5-minute polls is 105,120 rows per pod)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._observations: dict[str, list[dict[str, Any]]] = {}

    def observations(self, pod_id: str, *, since: datetime | None = None) -> list[dict[str, Any]]:
        if since is not None:
            return self._store.observations(pod_id, since=since)
        if pod_id not in self._observations:
            self._observations[pod_id] = self._store.observations(pod_id)
        return self._observations[pod_id]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


class _Page:
    """Collects the charts and tables of one report while its HTML is written."""

    def __init__(self) -> None:
        self.charts: list[_Chart] = []
        self.tables: dict[str, tuple[Sequence[str], list[Sequence[Any]]]] = {}
        self.parts: list[str] = []

    def chart(self, name: str, alt: str, fig: Any) -> None:
        from bidder.report.charts import png_bytes

        png = png_bytes(fig)
        self.charts.append(_Chart(name, alt, png))
        data = base64.b64encode(png).decode("ascii")
        self.parts.append(f'<p><img src="data:image/png;base64,{data}" alt="{html.escape(alt)}"></p>')

    def table(self, name: str, headers: Sequence[str], rows: list[Sequence[Any]], left: int = 1,
              shown: int | None = None) -> None:
        """A table on the page (its first `shown` rows) and all of it in DIR/name.csv."""
        self.tables[name] = (headers, rows)
        self.parts.append(_table(headers, rows[:shown], left))
        more = f"{len(rows) - shown} more rows in " if shown is not None and shown < len(rows) else "Table as CSV: "
        self.parts.append(f'<p class="muted">{more}{html.escape(name)}.csv</p>')

    def add(self, text: str) -> None:
        self.parts.append(text)


def _hours_lost(store: Store, report: SpendReport, job: JobSpend, overhead: float) -> float:
    """Running hours a job's restarts in the report's period lost, as the tick counts its work done
    (`bidder.tick.job_progress`): each run but the job's first ended the one before, which lost its
    work up to `overhead`; interruptions in the period beyond those restarts (a job waiting to run
    again) lose the newest run's work (up to `overhead`) if no poll sees it running, then `overhead`
    each (runs no poll saw). It was restarts x overhead: a pod outbid minutes after each start lost
    those minutes, not the overhead, in the job's work but not in this card."""
    # The job's first run is its oldest pod's that ran. Each pod of `bidder launch` (under its default
    # name or a --name) is a job of its own, as is a pod of no job (the report's "-"): a second launch
    # under one name restarts nothing (three launches read as two restarts of one job).
    launched = job.job == "-" or store.is_launch(job.job)
    owned = [] if launched else [p["pod_id"] for p in store.managed_pods(job.job)]  # oldest first
    groups = [(owned, job.pods)] if owned else [((pod,), (pod,)) for pod in job.pods]
    lost, inside = 0.0, 0
    newest: tuple[float, bool] | None = None  # the newest run's running hours, and whether a poll sees it run
    for pods, in_period in groups:
        runs: list[tuple[float, bool]] = []  # (running hours, started in the period) of each run, oldest first
        for pod in pods:
            observations = store.observations(pod)
            _, lengths = run_lengths(observations)  # (a pod's whole polls: no run before them)
            runs += [(seconds / 3600, pod in in_period and (report.since is None or ts >= report.since)
                      and (report.until is None or ts < report.until))
                     for ts, seconds in zip(run_starts(observations), lengths, strict=True)]
            if lengths:
                newest = (lengths[-1] / 3600, observations[-1].get("desired_status") == "RUNNING")
        for (ended, _), (_, counted) in itertools.pairwise(runs):
            if counted:  # this run's start ended the one before: it lost its work, up to the overhead
                lost += min(overhead, ended)
                inside += 1
    extra = job.interruptions - inside
    if extra > 0 and newest is not None and not newest[1]:
        lost += min(overhead, newest[0])
        extra -= 1
    lost += max(extra, 0) * overhead
    return lost


def _headline(page: _Page, report: SpendReport, overhead: Mapping[str, float], store: Store,
              now: datetime) -> None:
    t = report.totals
    lost = sum(_hours_lost(store, report, j, overhead.get(j.job, _DEFAULT_OVERHEAD_HOURS)) for j in report.jobs)
    saving = "-" if t.saving is None else _money(t.saving)
    # No percentage without an on-demand cost to take it of (a pod that ran 0 hours, or polled once).
    saving += "" if t.saving_pct is None else f" ({t.saving_pct:.0f}%)"
    coverage = observation_coverage(store, [p.pod_id for p in report.pods], report.since, report.until, now=now)
    share = coverage.share
    cards = [("Spent", _money(t.spend), "pay-as-bid, from each poll of each pod"),
             ("On-demand would have cost", _money(t.on_demand_cost), "the same GPU hours at on-demand prices"),
             ("Saved", saving, "against on-demand"),
             ("Hours run", f"{t.hours:,.1f} h", f"{t.gpu_hours:,.1f} GPU-hours"),
             ("Interruptions", f"{t.interruptions:,}", "stops bidder did not ask for"),
             ("Hours lost to restarts", f"{lost:,.1f} h", "each restart: the run it ended, up to the restart overhead"),
             ("Poll coverage", "-" if share is None else f"{100 * share:.0f}%",
              f"of {coverage.span_hours:,.1f} pod-hours between polls"
              + (", and after the last poll of a pod still active" if coverage.unpolled else ""))]
    page.add('<h2 id="headline">Headline</h2><div class="cards">' + "".join(
        f'<div class="card"><span>{html.escape(k)}</span><b>{html.escape(v)}</b><span>{html.escape(h)}</span></div>'
        for k, v, h in cards) + "</div>")
    if coverage.gaps:
        launched = {p.pod_id for p in report.pods if not p.job or store.is_launch(p.job)}
        more = f" and {len(coverage.gaps) - 5} more" if len(coverage.gaps) > 5 else ""
        page.add(f'<p class="note">{len(coverage.gaps)} gap(s) longer than {coverage.max_gap_hours * 60:.0f} min '
                 f"between polls: {html.escape(_gap_causes(coverage.gaps[:5], launched))}{more}. "
                 "Spend over a gap is estimated from the polls on either side"
                 + ("; after the last poll of a pod still active it is not counted (see the note below)"
                    if coverage.unpolled else "") + ".</p>")
    else:
        page.add('<p class="muted">No gap longer than 30 minutes between polls of any pod in the period.</p>')
    for note in report.notes:
        page.add(f'<p class="note">{html.escape(note)}</p>')


def _gap_causes(gaps: Sequence[tuple[str, datetime, datetime]], launched: set[str]) -> str:
    """The gaps listed with what leaves each kind: a managed job's pod is polled by every `bidder tick`,
    a pod of `bidder launch` (no job's) by no cron of its own: blaming the tick sent its user to a tick
    they never set up."""
    parts = []
    for kind, why in (("of managed jobs", "bidder tick did not run, or could not reach the API"),
                      ("of `bidder launch`", "polled only when `bidder pods --refresh`, `bidder stop` or a "
                                             "`bidder tick` runs: none ran, or none could reach the API")):
        listed = "; ".join(f"pod {p} from {to_iso(a)} to {to_iso(b)}" for p, a, b in gaps
                           if (p in launched) == (kind != "of managed jobs"))
        if listed:
            parts.append(f"pods {kind} ({why}): {listed}")
    return "; and ".join(parts)


def _pod_rows(pods: Sequence[PodSpend]) -> list[Sequence[Any]]:
    return [(p.pod_id, p.gpu_type_id, p.cloud, p.kind, p.gpu_count, p.bid_per_gpu, p.hours, p.spend,
             p.interruptions, p.on_demand_cost, p.saving, None if p.saving_pct is None else round(p.saving_pct),
             p.shown_state) for p in pods]


_POD_HEADERS = ("pod", "GPU type", "cloud", "kind", "GPUs", "bid $/GPU-h", "hours", "spent $", "interruptions",
                "on-demand $", "saved $", "saved %", "state")


def _jobs(page: _Page, report: SpendReport, states: Mapping[str, Mapping[str, Any]]) -> None:
    from bidder.report.charts import spend_chart

    page.add('<h2 id="jobs">Jobs</h2>')
    for job in report.jobs:
        state = states.get(job.job, {})
        page.add(f"<h3>Job {html.escape(job.job)}</h3><p>State <b>{html.escape(str(state.get('state') or '-'))}</b>; "
                 f"GPU {html.escape(', '.join(job.gpu_types) or '-')}; cloud {html.escape(', '.join(job.clouds) or '-')}; "
                 f"{html.escape(', '.join(job.kinds))}. Spent {_money(job.spend)} for {job.hours:,.1f} h "
                 f"(on-demand {_money(job.on_demand_cost)}), {job.interruptions} interruption(s).</p>")
        if job.curve:
            page.chart(f"spend-{_job_slug(job.job)}", f"Cumulative spend of job {job.job} against on-demand",
                       spend_chart(replace(report, jobs=(job,))))
        pods = [p for p in report.pods if (p.job or "-") == job.job]
        page.table(f"pods-{_job_slug(job.job)}", _POD_HEADERS, _pod_rows(pods))


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text.lower()).strip("-") or "x"


def _job_slug(name: str) -> str:
    """A job's file name part, one per job: names that differ in case (or in characters a slug
    replaces) shared one CSV and one chart, and a job's rows were lost."""
    slug = _slug(name)
    return slug if slug == name else f"{slug}-{hashlib.sha1(name.encode()).hexdigest()[:6]}"


def _market_key(pod: PodSpend) -> tuple[str, str, int, str] | None:
    if pod.gpu_type_id is None or pod.cloud in (None, "ALL", "ANY"):
        return None
    return pod.gpu_type_id, pod.cloud, pod.gpu_count, pod.market


def _markets(page: _Page, store: Store, report: SpendReport, until: datetime, now: datetime,
             progress: Callable[[str], None]) -> None:
    from bidder.market import market_stats
    from bidder.report.charts import bid_tradeoff_chart, discount_heatmap, market_chart

    by_market: dict[tuple[str, str, int, str], list[PodSpend]] = {}
    for pod in report.pods:
        key = _market_key(pod)
        if key is not None:
            by_market.setdefault(key, []).append(pod)
    known = set(store.markets())
    page.add('<h2 id="markets">Markets the jobs ran in</h2>')
    if not by_market:
        page.add('<p class="muted">No pod ran in a known market in the period.</p>')
    names = store.gpu_type_names()
    for (gpu, cloud, count, market), pods in sorted(by_market.items()):
        progress(f"market {gpu} {cloud}")
        where = "" if market == "runpod" else f"{market.capitalize()}, "
        label = f"{names.get(gpu) or gpu} ({where}{cloud.lower()}, {count} GPU{'s' * (count != 1)})"
        page.add(f"<h3>{html.escape(label)}</h3>")
        if market_key(gpu, cloud, count, market) not in known:
            page.add('<p class="muted">No price history recorded for this market.</p>')
            continue
        tracks = [t for t in (pod_track(store, p.pod_id, until, report.since, ends_now=until == now)
                              for p in pods) if t is not None]
        first = report.since.timestamp() if report.since else min(
            [s["first_ts"].timestamp() for s in store.market_spans()
             if s["gpu_type_id"] == gpu and s.get("market", "runpod") == market] or [0.0])
        buckets = store.price_buckets(gpu, cloud, count, since=report.since, until=until,
                                      bucket_s=_bucket_seconds(first, until.timestamp()), market=market)
        if len(buckets) or any(t.bids for t in tracks):
            page.chart(f"market-{_slug(gpu)}-{cloud.lower()}-{count}", f"Prices and bids of {label}",
                       market_chart(buckets, tracks, f"{label}: spot floor, on-demand and bidder's bids"))
        mean, samples = store.discount_by_hour_of_week(gpu, cloud, count, since=report.since, until=until,
                                                       market=market)
        if samples.sum() > 0:
            page.chart(f"discount-{_slug(gpu)}-{cloud.lower()}-{count}", f"Spot discount by hour of week, {label}",
                       discount_heatmap(mean, samples, label))
        series = store.floor_series(gpu, cloud, count, since=report.since, until=until, market=market)
        last_bid = next((t.bids[-1] for t in sorted(tracks, key=lambda t: t.bid_ts[-1] if t.bids else 0)[::-1]
                         if t.bids), None)
        try:
            stats = market_stats(series, max_staleness_hours=None, floor_model=False)  # the chart needs no plan
        except InsufficientHistory as exc:
            page.add(f'<p class="muted">Not enough history for the bid chart: {html.escape(str(exc))}.</p>')
            continue
        page.chart(f"bids-{_slug(gpu)}-{cloud.lower()}-{count}", f"What a bid buys in {label}",
                   bid_tradeoff_chart(stats, last_bid, label))




def _current(page: _Page, store: Store, states: Sequence[Mapping[str, Any]]) -> None:
    quotes = store.latest_quotes()
    quotes.sort(key=lambda q: (q.minimum_bid_price is None, q.minimum_bid_price or 0.0,
                               q.uninterruptable_price or math.inf))
    # Each market's newest snapshot has its own time: one stamp for the table (the cheapest row's) passed
    # off a market's days-old prices as current.
    newest: dict[str, datetime] = {}
    for q in quotes:
        newest[q.market] = max(q.ts, newest.get(q.market, q.ts))
    when = "; ".join(f"{MARKET_NAMES.get(m, m)} {to_iso(t)}" for m, t in sorted(newest.items()))
    page.add(f'<h2 id="current">Current market</h2><p class="muted">The newest snapshot of each market'
             f"{' (' + html.escape(when) + ')' if when else ''}, cheapest spot floor first; USD per GPU-hour.</p>")
    if quotes:
        shown = _CURRENT_ROWS if len(quotes) > _CURRENT_ROWS + 5 else len(quotes)
        page.table("current-market", ("GPU type", "market", "cloud", "GPUs", "spot floor", "on-demand",
                                      "spot discount %", "stock", "snapshot"),
                   [(q.display_name or q.gpu_type_id, MARKET_NAMES.get(q.market, q.market), q.cloud, q.gpu_count,
                     q.minimum_bid_price, q.uninterruptable_price,
                     None if not (q.minimum_bid_price and q.uninterruptable_price)
                     else round(100 * (1 - q.minimum_bid_price / q.uninterruptable_price)), q.stock_status,
                     to_iso(q.ts))
                    for q in quotes], left=3, shown=shown)
    else:
        page.add('<p class="empty">No prices collected yet: run <code>bidder collect</code>.</p>')
    page.add('<h2 id="states">Job states</h2>')
    if states:
        page.table("job-states", ("job", "state", "pod", "work done h", "spent $", "interruptions", "updated"),
                   [(s["name"], s.get("state"), s.get("pod_id"), s.get("work_done_hours"), s.get("spent"),
                     s.get("interruptions"), to_iso(s["updated"]) if isinstance(s.get("updated"), datetime)
                     else s.get("updated")) for s in states], left=3)
    else:
        page.add('<p class="muted">No managed job has run yet.</p>')


def _write_files(out: Path, text: str, page: _Page, written: list[Path]) -> Path:
    """Every file through a temporary file renamed into place: a reader never sees half a report.
    Each file's path is appended to `written` as it lands."""
    files: dict[str, bytes] = {f"{c.name}.png": c.png for c in page.charts}
    for name, (headers, rows) in page.tables.items():
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(headers)
        # Floats to 6 places, as `bidder report --format csv` gives them (not 0.44999999999999996).
        writer.writerows(["" if v is None else round(v, 6) if isinstance(v, float) else v for v in row]
                         for row in rows)
        files[f"{name}.csv"] = buffer.getvalue().encode()
    files["report.html"] = text.encode()
    mask = os.umask(0)
    os.umask(mask)
    for name, data in files.items():
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=out)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(tmp, 0o666 & ~mask)
            os.replace(tmp, out / name)
            written.append(out / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return out / "report.html"


def _remove_stale(out: Path, written: Sequence[Path]) -> None:
    """Remove the files an earlier report wrote into `out` that this one did not (a market or job not
    in this period): named as a report names its files, nothing else (the user's own files stay)."""
    keep = {p.name for p in written}
    for entry in os.scandir(out):
        if entry.name not in keep and _REPORT_FILE.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
            Path(entry.path).unlink(missing_ok=True)


def _created_folders(out: Path) -> list[Path]:
    """`out` and those of its parents that do not exist yet, deepest first (what mkdir(parents=True) makes)."""
    missing = []
    for folder in (out, *out.parents):
        if folder.exists() or folder.is_symlink():
            break
        missing.append(folder)
    return missing


def _undo(created: Sequence[Path], written: Sequence[Path]) -> None:
    """After a failed report in folders it made: its files and those folders go again, each folder only
    if nothing else is in it (a folder that was there before is never touched)."""
    if not created:
        return
    for path in written:
        path.unlink(missing_ok=True)
    for folder in created:  # deepest first
        try:
            folder.rmdir()
        except OSError:  # not empty (someone else's file), or gone: leave it
            break


def write_html_report(store: Store, out: Path, *, since: datetime | None, until: datetime, now: datetime,
                      job: str | None = None, restart_overhead_hours: Mapping[str, float] | None = None,
                      db_label: str = "", progress: Progress | None = None) -> Path:
    """Write DIR/report.html (+ PNGs and CSVs) for [since, until); returns the page's path.

    `restart_overhead_hours` per job (from bidder.toml) prices the hours lost to restarts (10 min per
    restart for jobs not listed). Files an earlier report wrote into `out` that this one does not are
    removed once it is written. Raises ConfigError if `out` cannot be made or written; if the report
    fails, the folders it made are removed again (with its files, when nothing else is in them)."""
    created = _created_folders(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _undo(created, ())
        raise ConfigError(f"cannot create the report folder {out}: {exc.strerror or exc}", key="html") from None
    written: list[Path] = []
    try:
        page = _write_page(store, out, since=since, until=until, now=now, job=job,
                           restart_overhead_hours=restart_overhead_hours, db_label=db_label, progress=progress,
                           written=written)
    except BaseException:  # a crash, a full disk, Ctrl-C: no new empty folder left behind
        _undo(created, written)
        raise
    try:
        _remove_stale(out, written)
    except OSError as exc:
        raise ConfigError(f"wrote {page}, but cannot remove an earlier report's files from {out}: "
                          f"{exc.strerror or exc}", key="html") from None
    return page


def _write_page(store: Store, out: Path, *, since: datetime | None, until: datetime, now: datetime,
                job: str | None, restart_overhead_hours: Mapping[str, float] | None, db_label: str,
                progress: Progress | None, written: list[Path]) -> Path:
    steps = [0, 0]

    def tick(what: str) -> None:
        steps[0] += 1
        if progress is not None:
            progress(steps[0], steps[1], what)

    store = _ReadOnce(store)  # type: ignore[assignment]  # a Store in every way that matters here
    report = spend_report(store, since, until, job=job, now=now)
    # A launch's job row is nobody's to keep (no tick runs it): its state is its pods'.
    states = [{**s, "state": store.launch_state(s["name"]) or s.get("state")} if store.is_launch(s["name"], s) else s
              for s in store.jobs() if job is None or s["name"] == job]
    steps[1] = 3 + len({_market_key(p) for p in report.pods})
    tick("spend")
    page = _Page()
    period = f"from {to_iso(since)} to {to_iso(until)}" if since else f"up to {to_iso(until)}"
    page.add(f"<h1>bidder cost report</h1><p class=\"muted\">Spend {html.escape(period)}"
             f"{' for job ' + html.escape(job) if job else ''}; made {html.escape(to_iso(now))}"
             f"{' from ' + html.escape(db_label) if db_label else ''}. Money in USD; prices in USD per GPU-hour; "
             "times UTC.</p>")
    if report.is_empty:
        page.add('<h2 id="headline">Headline</h2><p class="empty">Nothing yet: no managed pod ran in this period. '
                 "Launch one with <code>bidder launch</code>, or add jobs to bidder.toml and run "
                 "<code>bidder tick</code> from cron; widen the period with <code>--since all</code>.</p>")
    else:
        _headline(page, report, restart_overhead_hours or {}, store, now)
        tick("jobs")
        _jobs(page, report, {s["name"]: s for s in states})
        _markets(page, store, report, until, now, tick)
    tick("current market")
    _current(page, store, states)
    text = ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>bidder cost report {html.escape(period)}</title><style>{_STYLE}</style></head><body>"
            + "\n".join(page.parts) + "</body></html>\n")
    try:
        return _write_files(out, text, page, written)
    except OSError as exc:
        raise ConfigError(f"cannot write the report into {out}: {exc.strerror or exc}", key="html") from None
