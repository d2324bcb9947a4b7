"""`bidder backtest`: replay price history through bidder and the usual rules, against hindsight.

The work happens in `bidder.backtest.engine` (pandas-free, but numpy-heavy and with matplotlib for
charts), imported inside the command so other commands start fast.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from bidder.cli import main
from bidder.cli.common import (
    CLOUD_CHOICE,
    DEFAULT_DB,
    DURATION,
    HOURS_HELP,
    MAX_DAYS,
    MAX_GPU_COUNT,
    MAX_HOURS,
    MAX_PRICE,
    MAX_RECLAIM_RATE,
    TOLERANCE,
    FiniteRange,
    check_market_cloud,
    checked_gpu_name,
    emit_rows,
    expand_db_path,
    market_option,
    say_naive,
)
from bidder.cli.progress import Progress
from bidder.errors import ConfigError
from bidder.units import YearTooEarly, format_duration, is_naive, parse_timestamp

__all__ = ["backtest"]

_STRATEGIES = ("bidder", "on-demand", "floor", "floor+0.10", "bid-on-demand", "optimum", "hindsight")
#: The replayed strategies that run spot: the ones Vast's machine pauses interrupt.
_SPOT_STRATEGIES = {"bidder", "floor", "floor+0.10", "bid-on-demand"}
_COLUMNS = ("name", "cost", "cost_vs_hindsight", "cost_vs_optimum", "cost_vs_on_demand", "work_hours",
            "deadline_met_share", "interruptions", "restart_hours_lost", "completion_hours", "peak_rate")
_HEADERS = ("strategy", "cost $", "x hindsight", "x optimum", "x on-demand", "work h", "deadline met",
            "interruptions", "restart h lost", "completion h", "peak $/h")

#: The largest `--gpu-speed` factor (work hours per running hour of a GPU, against the reference's 1.0).
_MAX_SPEED = 100.0
#: The latest time Python's datetime holds (9999-12-31T23:59:59Z): every window must end by then.
_LAST_EPOCH = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()


def _speed_factor(text: str) -> tuple[str, float]:
    """`--gpu-speed GPU=FACTOR` read: the GPU as typed and its factor (finite, over 0, at most `_MAX_SPEED`)."""
    name, sep, value = text.rpartition("=")
    if not sep or not name.strip():
        raise click.BadParameter(f"{text!r} is not GPU=FACTOR, e.g. --gpu-speed H100=3", param_hint="--gpu-speed")
    try:
        factor = float(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} in {text!r} is not a number, e.g. --gpu-speed H100=3",
                                 param_hint="--gpu-speed") from None
    if not (0 < factor <= _MAX_SPEED):  # (NaN fails too)
        raise click.BadParameter(f"{text!r}: the factor must be above 0 and at most {_MAX_SPEED:g}",
                                 param_hint="--gpu-speed")
    return name.strip(), factor


class _Timestamp(click.ParamType):
    name = "time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            when = parse_timestamp(str(value))
        except OverflowError:  # an offset that moves it out of years 1-9999 in UTC
            self.fail(f"{value!r} is out of range: in UTC it must fall in the years 1 to 9999", param, ctx)
        except YearTooEarly as exc:
            self.fail(str(exc), param, ctx)
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 time (e.g. 2026-01-01T00:00:00Z)", param, ctx)
        if is_naive(str(value)):
            say_naive(param.opts[0] if param is not None else "TIME", str(value))
        return when


def _strategies(text: str) -> tuple[str, ...]:
    if text.strip().lower() == "all":
        return _STRATEGIES
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    bad = [n for n in names if n not in _STRATEGIES]
    if bad or not names:
        raise click.BadParameter(f"{(bad or [text])[0]!r} is not a strategy; choose from "
                                 f"{', '.join(_STRATEGIES)} (comma-separated) or all", param_hint="--strategies")
    return names


def _db_path(value: str | None) -> str | None:
    """--db or BIDDER_DB as the other commands read it (`~` expanded, an empty name refused)."""
    return None if value is None else expand_db_path(click.get_current_context(), None, value)  # type: ignore[arg-type]


def _load(trace: str | None, db_path: str | None, market: str) -> tuple[Any, dict[str, str | None]]:
    from bidder.backtest.engine import load_store, load_trace
    from bidder.cli.collect import market_filter

    chosen = market_filter(market)

    if trace is not None:
        if not Path(trace).is_file():
            raise ConfigError(f"no trace file at {trace}: give the path of a CSV in the trace format "
                              "(`bidder sim trace FILE` writes the emulator's market as one; `bidder export` "
                              "your history)", key="trace")
        history = load_trace(trace, market=chosen)
    else:
        from bidder.store import Store

        with Store.open(db_path or DEFAULT_DB, create=False) as store:
            history = load_store(store, market=chosen)
    known: dict[str, str | None] = {}
    for m in history.markets:
        known.setdefault(m.gpu_type_id, m.display_name)
    return history, known


def _table(summary: dict[str, Any], key: str | None) -> list[dict[str, Any]]:
    rows = []
    for s in summary["strategies"]:
        values = s if key is None else {"name": s["name"], **s[key]}
        rows.append({c: values.get(c) for c in _COLUMNS})
    return rows


_EXAMPLE = """\b
Example:
  bidder sim trace a6000.csv --seed 1 --days 14 --gpu "NVIDIA RTX A6000"   # the emulator's market
  bidder backtest --trace a6000.csv --gpu A6000 --hours 100 --deadline 7d --every 1d
  bidder backtest --db data/bidder.db --keep-running --days 30 --tolerance low --format json
"""


@main.command(epilog=_EXAMPLE)
@click.option("--trace", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Replay a trace CSV (format: docs/traces.md; columns ts, gpu_type, minimum_bid_price, "
                   "uninterruptable_price, and optionally cloud, gpu_count, market), e.g. one `bidder sim trace` "
                   "wrote.")
@click.option("--db", "db_path", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              callback=lambda ctx, param, value: _db_path(value),
              help=f"Replay the history in this database instead (bidder's is {DEFAULT_DB}; without --trace "
                   "or --db, env BIDDER_DB).")
@click.option("--gpu", "gpus", multiple=True, metavar="NAME",
              help="Allowed GPU type (id, display name or a part of one); repeat for several. Default: every type.")
@click.option("--min-vram", type=click.IntRange(min=1), default=None, metavar="GB",
              help="Instead of --gpu: every type with at least this much VRAM.")
@click.option("--gpus", "gpu_count", type=click.IntRange(min=1, max=MAX_GPU_COUNT), default=1, show_default=True, metavar="N",
              help="GPUs per pod.")
@click.option("--cloud", type=CLOUD_CHOICE, default="any",
              show_default=True, help="Only this cloud (RunPod) or tier (Vast).")
@market_option("any", "Only this market (RunPod or Vast); any = every market in the history (a trace without "
               "a market column is RunPod's).")
@click.option("--hours", type=FiniteRange(min=0, min_open=True, max=MAX_HOURS), default=None, metavar="H",
              help=f"{HOURS_HELP} (default 100).")
@click.option("--keep-running", is_flag=True, help="A service kept running for --days instead of a batch job.")
@click.option("--days", type=FiniteRange(min=0, min_open=True, max=MAX_DAYS), default=None, metavar="D",
              help="How long a --keep-running service runs (default 30).")
@click.option("--deadline", type=DURATION, default="7d", show_default=True, metavar="DURATION",
              help="Time from each start to the batch job's deadline.")
@click.option("--restart-overhead", type=DURATION, default="10m", show_default=True, metavar="DURATION",
              help="Work lost at each restart, an interruption or a move (resume time plus work since the last checkpoint).")
@click.option("--tolerance", type=TOLERANCE, default="medium", show_default=True,
              help="Interruptions per day bidder accepts: none, low, medium, high or a number.")
@click.option("--max-price", type=FiniteRange(min=0, min_open=True, max=MAX_PRICE), default=None, metavar="USD",
              help="Most per GPU-hour any strategy may pay (bid or on-demand).")
@click.option("--strategies", "strategy_text", default="all", show_default=True, metavar="LIST",
              help=f"Comma-separated: {', '.join(_STRATEGIES)}; or all.")
@click.option("--start", type=_Timestamp(), default=None,
              help="First job start (ISO 8601); history before it is the strategies' warm-up. "
                   "Default: 2 days after the history begins.")
@click.option("--end", type=_Timestamp(), default=None, help="Ignore history from this time on (ISO 8601).")
@click.option("--every", type=DURATION, default=None, metavar="DURATION",
              help="Start the same job again every DURATION across the history (rolling windows) and "
                   "report the mean and the worst window.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the random reclaims (--reclaim-rate) and of Vast's machine pauses (--db).")
@click.option("--reclaim-rate", type=FiniteRange(min=0, max=MAX_RECLAIM_RATE), default=0.0, show_default=True, metavar="PER_HOUR",
              help="Random reclaims per running hour of a spot pod, that no bid avoids.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True,
              help="Output format.")
@click.option("--json", "as_json", is_flag=True, help="Same as --format json (with every window's metrics).")
@click.option("--chart", type=click.Path(dir_okay=False, writable=True), default=None, metavar="PNG",
              help="Draw cumulative cost of the first window per strategy, interruptions marked.")
@click.option("--gpu-speed", "speed_text", multiple=True, metavar="GPU=FACTOR",
              help="How fast a GPU type works against the reference (1.0), as bidder.toml's speed: "
                   "--gpu-speed H100=3 --gpu-speed A6000=1.2; work is counted in reference hours (repeatable; "
                   "types not named run at 1.0).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, metavar="N",
              help="Replay the --every windows in N processes (same results; each process holds its own "
                   "plans, up to about 1 GB for a 100-hour job on several GPU types).")
def backtest(trace: str | None, db_path: str | None, gpus: tuple[str, ...], min_vram: int | None, gpu_count: int,
             cloud: str, market: str, hours: float | None, keep_running: bool, days: float | None, deadline: timedelta,
             restart_overhead: timedelta, tolerance: float, max_price: float | None, strategy_text: str,
             start: datetime | None, end: datetime | None, every: timedelta | None, seed: int,
             reclaim_rate: float, fmt: str, as_json: bool, chart: str | None, speed_text: tuple[str, ...],
             workers: int) -> None:
    """Replay price history through bidder and the usual rules, against the hindsight bound.

    Prints one row per strategy: bidder (the production optimizer), on-demand, floor (bid the
    floor, rebid after each interruption), floor+0.10, bid-on-demand, optimum (the cheapest plan
    of runs and bids that finishes by the deadline, knowing the whole window; batch jobs) and
    hindsight (the cheapest hours with no restart cost: a bound no plan reaches). With --every,
    the job starts again at each offset and the mean and the worst window of each metric are shown.
    """
    if trace is None and db_path is None and os.environ.get("BIDDER_DB"):
        # the database every other command reads (a --trace replaces it: not "both given")
        db_path = _db_path(os.environ["BIDDER_DB"])
    if (trace is None) == (db_path is None):
        raise click.UsageError(f"give exactly one of --trace FILE or --db FILE (e.g. --db {DEFAULT_DB}, or set "
                               "BIDDER_DB)" if trace is None else "give exactly one of --trace FILE or --db FILE")
    if keep_running and hours is not None:
        raise click.UsageError("--hours is for batch jobs; a --keep-running service takes --days")
    if days is not None and not keep_running:
        raise click.UsageError("--days goes with --keep-running (a batch job takes --hours and --deadline)")
    if gpus and min_vram is not None:
        raise click.UsageError("give --gpu or --min-vram, not both")
    for name in gpus:
        checked_gpu_name(name)
    check_market_cloud(market, cloud)
    if start is not None and end is not None and end <= start:
        raise click.BadParameter("must be after --start", param_hint="--end")
    if every is not None and every.total_seconds() <= 0:  # 0 would quietly replay one window
        raise click.BadParameter("must be above 0, e.g. 3.5d", param_hint="--every")
    if chart is not None:  # (an empty name too: refused there, not ignored)
        from bidder.cli.report import check_chart_path

        check_chart_path(chart, param_hint="--chart")  # before the replay, not after it
    if not keep_running and deadline.total_seconds() <= 0:
        raise click.BadParameter("must be longer than 0, e.g. 7d", param_hint="--deadline")
    if not keep_running and restart_overhead >= deadline:
        ctx = click.get_current_context()
        given = lambda name: ctx.get_parameter_source(name) is not ParameterSource.DEFAULT  # noqa: E731
        if given("deadline") and not given("restart_overhead"):  # blame what the user typed, not the default
            overhead = format_duration(restart_overhead.total_seconds())
            raise click.BadParameter(f"must be longer than the restart overhead ({overhead}, the default "
                                     "--restart-overhead), e.g. 1d", param_hint="--deadline")
        raise click.BadParameter(f"must be shorter than the deadline ({format_duration(deadline.total_seconds())})",
                                 param_hint="--restart-overhead")
    factors = [_speed_factor(text) for text in speed_text]
    work_hours = None if keep_running else (hours if hours is not None else 100.0)
    deadline_hours = deadline.total_seconds() / 3600
    if work_hours is not None and work_hours / max([1.0, *(f for _, f in factors)]) > deadline_hours:
        raise click.UsageError(f"{work_hours:g} h of work cannot finish within a {deadline_hours:g} h deadline "
                               "(even on-demand, at the fastest GPU's speed): give a later --deadline or fewer --hours")
    names = _strategies(strategy_text)
    if keep_running and set(names) <= {"optimum", "hindsight"} and "optimum" in names:
        raise click.UsageError("the optimum is for a batch job (--hours by a --deadline), not a --keep-running "
                               "service; add other strategies, e.g. --strategies on-demand,floor,hindsight")
    if as_json and fmt != "json" and click.get_current_context().get_parameter_source("fmt") \
            == click.core.ParameterSource.COMMANDLINE:
        raise click.UsageError(f"--json is --format json: give one of --json and --format {fmt}")
    fmt = "json" if as_json else fmt

    from bidder.backtest.engine import BacktestJob, run_backtest  # lazily: numpy-heavy
    from bidder.cli.collect import resolve_gpu_types
    from bidder.models import Policy

    history, known = _load(trace, db_path, market)
    # (The history's types, not `bidder prices`'s: that lists the database, not a trace.)
    held = ", ".join(sorted(known)[:8]) + (" ..." if len(known) > 8 else "")
    whose = (f"the {'trace' if trace else 'history'} holds" if market.lower() == "any" else
             f"the {'trace' if trace else 'history'}'s {market.lower()} rows hold")
    gpu_types = tuple(resolve_gpu_types(gpus, known, listed=f"{whose} {held}")) if gpus else ()
    speeds: dict[str, float] = {}
    for name, factor in factors:
        ids = resolve_gpu_types([name], known, listed=f"{whose} {held}")
        if len(ids) > 1:
            raise click.BadParameter(f"{name!r} names {len(ids)} GPU types ({', '.join(ids[:4])}"
                                     f"{' ...' if len(ids) > 4 else ''}): give one by its full name", param_hint="--gpu-speed")
        if ids[0] in speeds and speeds[ids[0]] != factor:
            raise click.BadParameter(f"{ids[0]} is given two speeds ({speeds[ids[0]]:g} and {factor:g}): give one",
                                     param_hint="--gpu-speed")
        speeds[ids[0]] = factor
    job = BacktestJob(gpu_types=gpu_types, min_vram_gb=min_vram, gpu_count=gpu_count, cloud=cloud.upper(),
                      speed_factors=tuple(sorted(speeds.items())), work_hours=work_hours, deadline_hours=deadline_hours,
                      keep_running_hours=(days if days is not None else 30.0) * 24 if keep_running else None,
                      restart_overhead_hours=restart_overhead.total_seconds() / 3600)
    _check_representable(history, job, end)
    if min_vram is not None:
        _say_memory_unknown(history, job, "the trace" if trace else db_path)
    history = _machine_offers(history, job, db_path if trace is None else None, bool(set(names) & _SPOT_STRATEGIES))
    policy = Policy(max_price=max_price, tolerance=tolerance)
    progress = Progress("backtest")
    try:
        report = run_backtest(history, job, policy, names, start=start.timestamp() if start else None,
                              end=end.timestamp() if end else None,
                              every_hours=every.total_seconds() / 3600 if every else None, seed=seed,
                              reclaim_rate_per_hour=reclaim_rate, record_window=0 if chart else None,
                              progress=lambda done, total: progress(done, total, "replay steps"), workers=workers)
    finally:
        progress.close()
    summary = report.summary()
    if start is not None and report.windows:  # (after the replay: a run refused says its one line alone)
        _say_warmup(start.timestamp(), report.windows[0].start, float(history.ts[0]))
    gaps = report.params.get("starts_in_gaps")
    _say_offers_late(report, db_path)
    if gaps:  # (a window starts at a sample: one asked for in a gap starts where the gap ends)
        click.echo(f"note: {gaps['moved']} of {gaps['of']} window start(s) fell in gaps of the history, each "
                   f"moved to the next sample (by up to {gaps['most_hours']:g} h)"
                   + (f"; windows moved onto one sample run once: {gaps['windows']} window(s)"
                      if gaps["windows"] < gaps["of"] else ""), err=True)
    unpriced = report.params.get("windows_without_price")
    if unpriced:  # (none of them at all is refused: run_backtest raises)
        click.echo(f"note: {unpriced} of {len(report.windows)} windows hold no price for the job (no floor, no "
                   f"on-demand{' from their start on' if not keep_running else ''}): no strategy buys anything "
                   "there, and their $0 counts in the mean cost", err=True)
    infeasible = _optimum_infeasible(report, summary)
    summary["history"]["last_sample"] = _iso(float(report.history.ts[-1]))
    if chart is not None:
        _write_chart(report, chart)
    if fmt == "json":
        summary["per_window"] = [{"start": _iso(w.start), "strategies": {
            n: {k: None if v is None or (n == "optimum" and id(w) in infeasible) else round(v, 6)
                for k, v in w.metrics(n).items()} for n in report.strategies},
            **_bounds(w)} for w in report.windows]
        click.echo(json.dumps(summary, indent=2))
        return
    if fmt == "csv":
        rows = []
        for s in summary["strategies"]:
            rows.append({**{c: s.get(c) for c in _COLUMNS}, **{f"worst_{c}": s["worst"].get(c) for c in _COLUMNS[1:]}})
        emit_rows(rows, [*_COLUMNS, *(f"worst_{c}" for c in _COLUMNS[1:])], "csv")
        return
    _print_table(summary)


def _print_table(summary: dict[str, Any]) -> None:
    from bidder.backtest.types import work_words

    job, hist = summary["job"], summary["history"]
    what = (f"service kept running {job['keep_running_days']:g} day{'s' * (job['keep_running_days'] != 1)}"
            if job["keep_running"] else
            f"{work_words(job['work_hours'], job['gpu_count'])}, deadline {job['deadline_hours']:g} h")
    windows = summary["windows"]
    click.echo(f"{what}, restart overhead {job['restart_overhead_hours'] * 60:g} min, "
               f"tolerance {summary['policy']['tolerance']:g}/day; {len(hist['markets'])} market(s): "
               f"{', '.join(hist['markets'][:4])}{' ...' if len(hist['markets']) > 4 else ''}")
    every = job["every_hours"]
    click.echo(f"{windows} window(s) from {job['start']}" + ((f" every {every:g} h" if every >= 1 else
                                                              f" every {format_duration(every * 3600)}") if every
                                                             else "") + f"; history to {hist['last_sample']} (last sample)")
    if job.get("optimum_skipped"):
        click.echo(f"no optimum row: {job['optimum_skipped']}")
    if (job.get("machine_pauses") or {}).get("simulated"):
        click.echo(f"Vast spot runs are also paused by their machines, at the rates the stored offers show (seed "
                   f"{job['seed']}, the same pauses for every strategy); the optimum and hindsight do not foresee them")
    cap = summary["policy"]["max_price"]
    under = "" if cap is None else f" at or under --max-price {cap:g}"
    bad = summary.get("optimum_infeasible_windows")
    if bad:
        click.echo(f"optimum: infeasible (no plan does the work by the deadline with these prices{under}) in "
                   + ("every window: its row is blank" if bad == windows else
                      f"{bad} of {windows} windows: its row is over the other {windows - bad}"))
    met = next((s["deadline_met_share"] for s in summary["strategies"] if s["name"] == "hindsight"), None)
    if met is not None and met < 1:  # its cost is then of less work: say so, it is no bound there
        short = round((1 - met) * windows)
        click.echo(f"hindsight: too few hours with a price{under} to do the work by the deadline in "
                   + ("every window" if short == windows else f"{short} of {windows} windows")
                   + ": its row counts the work they hold")
    click.echo("")
    if windows > 1:
        click.echo("mean over windows:")
    emit_rows(_table(summary, None), _COLUMNS, "table", headers=_HEADERS)
    if windows > 1:
        click.echo("\nworst window:")
        emit_rows(_table(summary, "worst"), _COLUMNS, "table", headers=_HEADERS)
    late = [(s["name"], s["deadline_met_share"], s["work_hours"]) for s in summary["strategies"]
            if s["name"] not in ("optimum", "hindsight") and s["deadline_met_share"] is not None
            and s["deadline_met_share"] < 1]
    if late:
        click.echo("")
    for name, met, work in late:  # its cost is of less work: the mean alone read as a saving
        missed = round((1 - met) * windows)
        click.echo(f"{name}: missed " + (f"{missed} of {windows} deadlines" if windows > 1 else "the deadline")
                   + "; its cost is of the work it did, late or short of the job "
                   + f"({round(work, 2):g} of {job['work_hours']:g} h{' a window in the mean' if windows > 1 else ''}), "
                   + "and its x columns leave "
                   + f"{'that window' if missed == 1 else 'those windows'} out")
    bounds = summary.get("optimum_bounds")
    if bounds:
        click.echo(f"\noptimum: lower bound ${bounds['lower']:,.3f}, its plan ${bounds['upper']:,.3f} (mean over "
                   f"windows; gap at most {100 * bounds['worst_gap']:.2f}%); x optimum is cost / the lower bound")


def _machine_offers(history: Any, job: Any, db_path: str | None, spot: bool) -> Any:
    """The job's markets of `history` with the Vast offers the database stored (the replay then pauses
    Vast spot runs by their machines, and bidder plans with those pauses, as `bidder tick` does); without
    any (a trace, or none stored), one warning line when a Vast market is replayed by a strategy that
    runs spot (`spot`: on-demand is never paused, and the bounds foresee no pause)."""
    from bidder.backtest.machines import with_machine_offers

    chosen = history.select(job)
    if not any(m.market == "vast" for m in chosen.markets):
        return history
    if db_path is not None:
        from bidder.store import Store

        with Store.open(db_path, create=False) as store:
            chosen = with_machine_offers(chosen, store)
        if chosen.machines is not None:
            return chosen
    if not spot:
        return history
    where = "a trace holds no offers" if db_path is None else f"{db_path} holds no stored offers of these markets"
    click.echo(f"warning: Vast's machine pauses are not simulated ({where}): a Vast spot run here is interrupted "
               "only when the floor rises over its bid, not when its machine is rented on-demand or outbid, so its "
               "interruptions and cost are a lower bound; back-test a database `bidder collect` filled (it stores "
               "Vast's offers) to count them", err=True)
    return history


def _say_offers_late(report: Any, db_path: str | None) -> None:
    """Vast's offers are kept `vast_offers_days` (the prices longer): a window before them counts only the
    floor's interruptions on Vast."""
    machines = report.history.machines
    first = None if machines is None else machines.first
    if first is None or not report.windows or first <= report.windows[0].start:
        return
    click.echo(f"note: {db_path} holds Vast's offers from {_iso(first)} on (it keeps `vast_offers_days` of "
               "them): until enough of them are stored to measure, a window's Vast spot runs are interrupted only "
               "by the floor, and their interruptions and cost are a lower bound", err=True)


def _say_warmup(start: float, window: float, first: float) -> None:
    """A --start that leaves the strategies less history to learn from than the default start does:
    the history's `first` sample to the first `window`'s start (a start in a gap moves to its end)."""
    from bidder.backtest.engine import DEFAULT_WARMUP_HOURS

    warmup = (window - first) / 3600
    if start < first:
        click.echo(f"note: --start {_iso(start)} is before the history begins: the first window starts "
                   f"at its first sample, {_iso(first)}, with no warm-up", err=True)
    elif warmup == 0:
        click.echo(f"note: --start {_iso(start)} is the history's first sample: the first window starts with no "
                   f"warm-up (the default start leaves {DEFAULT_WARMUP_HOURS:g} h)", err=True)
    elif warmup < DEFAULT_WARMUP_HOURS:
        hours = f"{round(warmup, 2):g} h"
        click.echo(f"note: --start {_iso(start)} leaves {hours} of warm-up: the first window starts at {_iso(window)}, "
                   f"{hours} after the history begins ({_iso(first)}); the default start leaves "
                   f"{DEFAULT_WARMUP_HOURS:g} h", err=True)


def _say_memory_unknown(history: Any, job: Any, source: str | None) -> None:
    """--min-vram keeps the types whose memory is known: a trace gives none for Vast's names (nor for
    labels RunPod's catalogue lacks), so the same backtest on an export would drop them without a word.
    Vast's names are not looked up: one name comes with several memory sizes (A100 SXM4: 40 or 80 GB)."""
    left_out = sorted({m.gpu_type_id for m in history.markets if m.memory_in_gb is None
                       and m.gpu_count == job.gpu_count and job.cloud in ("ANY", m.cloud)})
    if left_out:
        shown = ", ".join(left_out[:8]) + (f" and {len(left_out) - 8} more" if len(left_out) > 8 else "")
        click.echo(f"note: --min-vram leaves out {shown}: {source} does not give their memory; to include "
                   "them, name the GPU types wanted with --gpu instead", err=True)


def _check_representable(history: Any, job: Any, end: datetime | None) -> None:
    """Refuse a history whose windows (with a deadline's or a span's margin) would run past the
    latest time a datetime holds: the replay would crash formatting or placing a time there."""
    span = (job.span_hours or 0.0) * 3600
    cut = history if end is None else history.between(None, end.timestamp())  # as run_backtest cuts it
    if cut.end + span > _LAST_EPOCH:
        latest = min(float(history.ts[-1]), _LAST_EPOCH - span)  # an --end at or before the last sample drops it
        raise click.ClickException(
            f"the history's last sample, {_iso(float(cut.ts[-1]))}, is too close to the year 10000 for a "
            f"backtest: its windows ({span / 3600:g} h each) would run past {_iso(_LAST_EPOCH)}, the latest time "
            f"bidder can represent; give --end {_iso(latest)} or earlier")


def _optimum_infeasible(report: Any, summary: dict[str, Any]) -> set[int]:
    """The windows (ids) where the optimum found no plan that does the work by the deadline. Such a
    window has no optimum cost (its run is empty, $0), so the optimum's row in `summary` is taken
    over the other windows only, and is all None when none is left; `optimum_infeasible_windows`
    counts them."""
    from bidder.backtest.engine import METRIC_KEYS

    if "optimum" not in report.strategies:
        return set()
    bad = {id(w) for w in report.windows if "optimum" in w.results and not w.results["optimum"].deadline_met}
    if not bad:
        return bad
    rest = [w for w in report.windows if id(w) not in bad]
    row = replace(report, windows=rest).aggregate("optimum") if rest else {
        "name": "optimum", **dict.fromkeys(METRIC_KEYS), "worst": dict.fromkeys(METRIC_KEYS)}
    summary["strategies"] = [row if s["name"] == "optimum" else s for s in summary["strategies"]]
    summary["optimum_infeasible_windows"] = len(bad)
    return bad


def _bounds(window: Any) -> dict[str, Any]:
    """The optimum's bounds in one window (JSON): lower <= the true optimum <= upper (its plan)."""
    best = window.results.get("optimum")
    if best is None or not best.deadline_met or best.lower_bound is None:
        return {}
    return {"optimum_bounds": {"lower": round(best.lower_bound, 6), "upper": round(best.cost, 6)}}


def _iso(epoch: float) -> str:
    from bidder.store import epoch_to_datetime
    from bidder.units import to_iso

    return to_iso(epoch_to_datetime(epoch))


def _write_chart(report: Any, path: str) -> None:
    from bidder.backtest.charts import cumulative_cost
    from bidder.cli.report import save_chart

    save_chart(cumulative_cost(report), path, param_hint="--chart")


