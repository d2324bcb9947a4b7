"""From the database to a decision: the newest snapshot plus each market's history, through the optimizer.

    decision, info = advise(store, job, policy, now)               # `bidder recommend` and the executor
    decision, info = advise(store, job, policy, now, progress=JobProgress(...))   # a running job

`advise` reads `store.latest_quotes()` (the current prices), keeps the markets the job accepts
(`bidder.optimizer.select_quotes`), reads each one's floor series over the last `history_days`
(`store.floor_series`, numpy arrays) and computes its statistics in one vectorised pass
(`bidder.market.market_stats`), then calls `bidder.optimizer.decide`. A market with too little or
too stale history gets no statistics, so only its on-demand price is considered; `HistoryInfo.notes`
says which and why.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from bidder.errors import Infeasible, InsufficientHistory
from bidder.machine_hazard import MachineHazard, machine_hazard
from bidder.market import DEFAULT_MAX_STALENESS_HOURS, DEFAULT_MIN_SAMPLES, MarketStats, market_stats
from bidder.models import (
    DEFAULT_MARKET,
    MACHINE_HISTORY_DAYS,
    MARKET_NAMES,
    MAX_TOLERANCE,
    PRICE_HISTORY_DAYS,
    Decision,
    JobProgress,
    JobSpec,
    MarketKey,
    Policy,
    PriceQuote,
    market_of,
)
from bidder.optimizer import (
    _short as _short_gpu,
)
from bidder.optimizer import (
    cap_price_words,
    decide,
    disk_storage_per_hour,
    on_demand_compute,
    select_quotes,
    storage_per_gpu_hour,
    uses_plan,
)
from bidder.units import format_duration, to_iso

__all__ = ["DEFAULT_HISTORY_DAYS", "REFRESH_HINT", "RESCUE_MARGIN_HOURS", "HistoryInfo", "advise", "disk_storage",
           "gather_stats", "history_note", "machine_pauses", "on_demand_rescue", "spot_pauses", "with_storage"]

#: The end of the stale-snapshot message (`bidder recommend` drops it when its --refresh failed).
REFRESH_HINT = " (or pass --refresh)"

#: History read per market: with the default 72 h half-life, older samples weigh under 0.1%.
DEFAULT_HISTORY_DAYS = PRICE_HISTORY_DAYS

#: A job nothing can run now whose deadline only an on-demand run the policy refuses can still meet is
#: warned once its slack (the time left less that run) is under the run's own hours plus this: about as
#: long to act as the job needs, and a few hours more for a user who reads cron's mail late.
RESCUE_MARGIN_HOURS = 3.0


@dataclass(frozen=True)
class HistoryInfo:
    """The history a decision rests on: first and last sample time over the markets used, the number
    of samples, and notes on markets left to on-demand for lack of history."""

    from_ts: datetime | None
    to_ts: datetime | None
    samples: int
    markets: int = 0
    notes: tuple[str, ...] = field(default=())
    #: Why a market has no statistics, per (gpu_type_id, cloud, gpu_count), for the decision's reasons.
    missing: dict[tuple[str, str, int], str] = field(default_factory=dict)
    #: The time of the snapshot each market (runpod, vast) the job could use was decided on (`advise`).
    snapshots: dict[str, datetime] = field(default_factory=dict)


def history_note(exc: InsufficientHistory, min_samples: int) -> str:
    """The reason line of a decision made without a market's spot statistics."""
    if exc.not_offered:
        return str(exc)  # ("not offered in community: none of its 41 samples has a price")
    if exc.samples < min_samples:
        return f"not enough price history for spot yet: {exc.samples} of {min_samples} samples"
    return f"no spot statistics yet: {exc}"


def gather_stats(store: Any, keys: list[MarketKey], now: datetime, *,
                 history_days: float = DEFAULT_HISTORY_DAYS, **stats_params: Any
                 ) -> tuple[dict[MarketKey, MarketStats], HistoryInfo]:
    """Market statistics for each market key (`PriceQuote.key`) from the store's history up to `now`."""
    since = now - timedelta(days=history_days)
    until = now + timedelta(seconds=1)  # the snapshot taken at `now` belongs to the history
    stats: dict[MarketKey, MarketStats] = {}
    notes: list[str] = []
    missing: dict[tuple[str, str, int], str] = {}
    first: float | None = None
    last: float | None = None
    samples = 0
    paused = ""  # the one note on Vast's machine pauses, from the first market that has them
    for key in keys:
        series = store.floor_series(key[0], key[1], key[2], since=since, until=until, market=market_of(key))
        if len(series):
            first = float(series.ts[0]) if first is None else min(first, float(series.ts[0]))
            last = float(series.ts[-1]) if last is None else max(last, float(series.ts[-1]))
            samples += len(series)
        try:
            stats[key], unknown = _with_machine_pauses(store, key, market_stats(series, now.timestamp(),
                                                                                **stats_params), now)
            if unknown:
                notes.append(unknown)
            machine = stats[key].machine_rate
            if machine is not None and not paused:
                floor = stats[key].floor_now
                at_floor = float(machine[max(stats[key].index_of(floor), 0)] if floor else machine[0])
                paused = (f"on Vast, the interruptions expected count the pauses each machine shows ({key[0]} "
                          f"{key[1].lower()}: {at_floor:.2f} an hour bidding its floor), not only the floor's")
        except InsufficientHistory as exc:
            where = "" if market_of(key) == DEFAULT_MARKET else f", {market_of(key)}"
            more = ""
            if not exc.not_offered and market_of(key) == DEFAULT_MARKET and int(key[2]) != 1:
                # `bidder collect` quotes 1-GPU pods unless told: more of the same collects never help here
                more = f"; RunPod quotes {key[2]}-GPU pods only when asked: `bidder collect --gpu-counts 1,{key[2]}`"
            notes.append(f"{key[0]} ({key[1]}{where}): " + (f"not offered: none of its {exc.samples} samples has a "
                                                            "price" if exc.not_offered else f"on-demand only: {exc}{more}"))
            missing[key] = history_note(exc, stats_params.get("min_samples", DEFAULT_MIN_SAMPLES))
    if paused:
        notes.append(paused)
    info = HistoryInfo(from_ts=None if first is None else datetime.fromtimestamp(first, UTC),
                       to_ts=None if last is None else datetime.fromtimestamp(last, UTC),
                       samples=samples, markets=len(stats), notes=tuple(notes), missing=missing)
    return stats, info


def _with_machine_pauses(store: Any, key: MarketKey, stats: MarketStats, now: datetime
                         ) -> tuple[MarketStats, str | None]:
    """A Vast market's statistics with the pauses its machines show and its floor does not
    (`bidder.machine_hazard`): read from the offers the collector stored. Other markets are as they
    are; so is a Vast market without enough stored offers (a history loaded from a trace), with a
    note saying its interruptions may be more than expected."""
    if market_of(key) != "vast" or getattr(store, "machine_series", None) is None:
        return stats, None
    hazard = machine_pauses(store, key, now)
    if hazard is None:
        return stats, (f"{key[0]} ({key[1]}, vast): too few stored offers to see how often its machines are taken "
                       "or outbid (each `bidder collect` stores them, and two snapshots count when at most 1.5 h "
                       "apart; a trace has none): the interruptions expected there count only its floor's, and "
                       "may be too few")
    return stats.with_machine_pauses(hazard.premiums, hazard.rates), None


def machine_pauses(store: Any, key: MarketKey, now: datetime) -> MachineHazard | None:
    """How often a Vast market's machines pause an instance, as of `now`: `bidder.machine_hazard` on the
    offers `store.machine_series` holds from the last MACHINE_HISTORY_DAYS up to `now` (a backtest
    passes its stored offers, read once: `bidder.backtest.machines`). None: too few, or not Vast."""
    read = getattr(store, "machine_series", None)
    if market_of(key) != "vast" or read is None:
        return None
    ts, machine, min_bid = read(key[0], int(key[2]), key[1] == "VERIFIED",
                                since=now - timedelta(days=MACHINE_HISTORY_DAYS), until=now + timedelta(seconds=1))
    return machine_hazard(ts, machine, min_bid, now.timestamp())


def advise(store: Any, job: JobSpec, policy: Policy, now: datetime, *, progress: JobProgress | None = None,
           history_days: float = DEFAULT_HISTORY_DAYS,
           max_snapshot_age_hours: float = DEFAULT_MAX_STALENESS_HOURS, spot_off: frozenset[str] = frozenset(),
           **stats_params: Any) -> tuple[Decision, HistoryInfo]:
    """The optimizer's decision for `job` from the store's newest snapshot and history, and the history
    it used. Raises InsufficientHistory when there is no usable snapshot, Infeasible as `decide` does.
    `spot_off`: markets whose spot is gone (RunPod's, when marked): their quotes offer on-demand only,
    the other markets' spot stays (a job open to RunPod and Vast keeps Vast's spot)."""
    quotes = _quotes_at(store, now, max_snapshot_age_hours)
    if not quotes:
        held = store.latest_quotes()
        if held:  # prices, but none in the hours before `now` (a --now before or far past the history)
            raise InsufficientHistory(f"no prices in the {format_duration(max_snapshot_age_hours * 3600)} before "
                                      f"{to_iso(now)} in the database (its newest snapshot is "
                                      f"{to_iso(max(q.ts for q in held))}): give a --now within its history")
        raise InsufficientHistory("no prices in the database yet: collect a snapshot with `bidder collect` "
                                  "(or load history with `bidder import-trace FILE`)")
    newest = max(q.ts for q in quotes)
    age_hours = (now - newest).total_seconds() / 3600.0
    if age_hours > max_snapshot_age_hours:
        raise InsufficientHistory(f"the newest price snapshot is {format_duration(age_hours * 3600)} old "
                                  f"({newest.isoformat()}): collect a fresh one with `bidder collect`"
                                  + REFRESH_HINT, samples=len(quotes))
    if job.disk_gb is not None:
        quotes = with_storage(store, quotes, job.disk_gb, job=job)
    if spot_off:
        quotes = [replace(q, minimum_bid_price=None) if q.market in spot_off else q for q in quotes]
    chosen = select_quotes(job, quotes)
    stats_params.setdefault("floor_model", uses_plan(job, policy))  # services and open-ended jobs need none
    stats, info = gather_stats(store, [q.key for q in chosen if q.market not in spot_off], now,
                               history_days=history_days, **stats_params)
    uncounted = _runpod_count_note(job, quotes, chosen)
    if uncounted is not None:
        info = replace(info, notes=(*info.notes, uncounted))
    try:
        decision = decide(job, policy, quotes, stats, now, progress, history_notes=info.missing)
    except Infeasible as exc:
        if uncounted is None:
            raise
        raise Infeasible(f"{exc}; {uncounted}", constraint=exc.constraint, until_changed=exc.until_changed) from None
    snapshots: dict[str, datetime] = {}
    for q in chosen:
        snapshots[q.market] = max(snapshots.get(q.market, q.ts), q.ts)
    return decision, replace(info, snapshots=snapshots)


def _runpod_count_note(job: JobSpec, quotes: list[PriceQuote], chosen: list[PriceQuote]) -> str | None:
    """A job of several GPUs open to RunPod and another market, that RunPod has no quote of that count for
    though it has the job's GPU types at other counts: RunPod quotes only the counts collected, so it was
    left out in silence, and a dearer Vast offer recommended (None: nothing to say)."""
    if job.gpu_count == 1 or (job.market or "any") != "any" or not chosen or any(
            q.market == DEFAULT_MARKET for q in chosen):
        return None  # (no market at that count: the optimizer's own error says what each has)
    other = select_quotes(replace(job, gpu_count=1), [q for q in quotes if q.market == DEFAULT_MARKET])
    if not other:
        return None
    counts = sorted({q.gpu_count for q in quotes if q.market == DEFAULT_MARKET})
    return (f"RunPod is left out: its prices were collected for pods of {', '.join(map(str, counts))} GPU(s), none "
            f"{job.gpu_count}; `bidder collect --gpu-counts {','.join(map(str, sorted({*counts, job.gpu_count})))}` "
            "quotes those too")


def on_demand_rescue(store: Any, job: JobSpec, policy: Policy, now: datetime, *, work_left: float, spent: float,
                     markets: tuple[str, ...] | None = None,
                     spot: Callable[[Policy, JobProgress], Decision] | None = None, interruptions: int | None = None,
                     started: datetime | None = None) -> tuple[str | None, str | None]:
    """For a job nothing can run now (the optimizer found no candidate): why it misses its deadline unless
    the user acts, when the only run left that can meet it is on-demand the policy refuses (over
    `max_price` or the budget), and what to change; None when on-demand is allowed and within the policy,
    none could finish in time, or the slack is not yet under the run's hours + `RESCUE_MARGIN_HOURS`.
    Without it such a job waited with exit 0 until the deadline was out of reach even on-demand.
    `markets`: the markets the caller can rent on (a job open to any market, with one key set).
    `spot`: the optimizer's decision for a policy and progress (the tick's own `decide`): with it, a job
    whose spot under the cap can still finish in time beyond its tolerance is not said to miss its deadline
    (`interruptions` so far, of the window from `started`, are said then).
    Returns (the alarm, or None; the note said instead of it, or None)."""
    if job.deadline is None or job.keep_running or work_left <= 0 or not policy.allow_on_demand:
        return None, None
    time_left = (job.deadline - now).total_seconds() / 3600.0
    quotes = _quotes_at(store, now, DEFAULT_MAX_STALENESS_HOURS)
    if job.disk_gb is not None:
        quotes = with_storage(store, quotes, job.disk_gb)
    options = []  # (total, compute per GPU-hour as max_price holds it, hours, quote): runs that finish in time
    for q in select_quotes(job, quotes):
        if not q.uninterruptable_price or (markets is not None and q.market not in markets):
            continue
        hours = work_left / job.speed_of(q.gpu_type_id)
        if hours > time_left + 1e-9:
            continue
        compute = on_demand_compute(q)
        total = (q.uninterruptable_price + storage_per_gpu_hour(job, q, on_demand=True)) * job.gpu_count * hours
        options.append((total, q.uninterruptable_price if compute is None else compute, hours, q))
    if not options:
        return None, None
    left = None if policy.budget is None else policy.budget - spent
    if any((policy.max_price is None or compute <= policy.max_price + 1e-9) and (left is None or total <= left + 1e-9)
           for total, compute, _, _ in options):
        return None, None  # an on-demand run within the policy: the optimizer takes it when the slack runs out
    total, compute, hours, q = min(options, key=lambda o: o[0])
    if time_left - hours > hours + RESCUE_MARGIN_HOURS:
        return None, None
    what = f"{q.gpu_type_id} on-demand on {MARKET_NAMES.get(q.market, q.market)}"
    over, change = [], []
    if policy.max_price is not None and compute > policy.max_price + 1e-9:
        over.append(f"is {cap_price_words(q, compute, '/GPU-h')}, over the max price ${policy.max_price:.3f}")
        change.append(f"raise max_price to ${compute:.3f}")
    if left is not None and total > left + 1e-9:
        over.append(f"would cost ${total:.2f} for the work, over the ${max(left, 0.0):.2f} left in the budget")
        change.append(f"raise budget to ${spent + total:.2f}")
    run = "" if abs(hours - work_left) < 0.05 else f" ({hours:.1f} h on {q.gpu_type_id})"
    fits = None if spot is None else _spot_in_time(spot, job, policy, now, work_left=work_left, spent=spent,
                                                   time_left=time_left)
    if fits is not None:
        # Not "only on-demand": spot under the cap can still finish, beyond the tolerance, and the
        # optimizer takes it as what is left of the budget allows (an audit's job cried wolf for 17 h,
        # then resumed spot by itself and finished 16.7 h early). Should spot stop fitting, the alarm comes.
        where = f"{_short_gpu(fits.gpu_type_id or '')} spot at ${fits.bid_per_gpu or fits.act_below or 0:.3f}"
        used = "" if interruptions is None or started is None else (
            f" ({interruptions} of the window's {policy.tolerance * (job.deadline - started).total_seconds() / 86400:.3g} used)")
        return None, (f"not only on-demand: {where} can still finish its {work_left:.1f} h by the deadline, "
                      f"{time_left:.1f} h away, beyond the tolerance ({fits.expected_interruptions_per_day:.1f} "
                      f"interruptions/day); it waits for spot that fits its interruption budget{used}, and this "
                      f"becomes an error only if none does while spot can still finish; {what} "
                      f"{' and '.join(over)}: {' and '.join(change)} to finish within the tolerance")
    return (f"only on-demand can still finish its {work_left:.1f} h of work{run} by its deadline "
            f"{to_iso(job.deadline)}, {time_left:.1f} h away, and {what} {' and '.join(over)}: "
            f"{' and '.join(change)} or move the deadline, or the job misses it"), None


def _spot_in_time(spot: Callable[[Policy, JobProgress], Decision], job: JobSpec, policy: Policy, now: datetime, *,
                  work_left: float, spent: float, time_left: float) -> Decision | None:
    """The optimizer's spot decision for the job with its tolerance lifted (as a spent budget lifts it)
    and no on-demand, when that spot run finishes by the deadline within the cap and budget; else None."""
    if not policy.allow_spot or job.work_hours is None:
        return None
    lifted = replace(policy, tolerance=MAX_TOLERANCE, allow_on_demand=False)
    try:
        d = spot(lifted, JobProgress(work_done_hours=max(job.work_hours - work_left, 0.0), spent=spent))
    except (Infeasible, InsufficientHistory):
        return None
    if d.action not in ("spot", "wait") or d.expected_completion_hours is None or d.gpu_type_id is None:
        return None
    cost = d.expected_total_cost
    if cost is None or not math.isfinite(cost) or d.expected_completion_hours > time_left + 1e-9:
        return None
    return d


def disk_storage(store: Any, job: JobSpec, market: str | None, gpu_type_id: str, cloud: str, gpu_count: int, *,
                 on_demand: bool = False, bid_per_gpu: float | None = None) -> float:
    """What `market` bills per hour for the job's whole disk on an instance of that offer type, from the
    newest snapshot (Vast's storage; 0 elsewhere, or when unknown): said beside a bid or price, as
    `bidder launch`'s plan says it ("$0.2112/h + $0.020/h storage"); the tick's lines said the bid alone.
    On spot, of the offer `bid_per_gpu` rents (see `with_storage`)."""
    if market != "vast" or job.disk_gb is None:
        return 0.0
    for q in with_storage(store, store.latest_quotes("vast"), job.disk_gb, job=job):
        if (q.gpu_type_id, q.cloud, q.gpu_count) == (gpu_type_id, cloud, gpu_count):
            return disk_storage_per_hour(job, q, on_demand=on_demand, bid=None if on_demand else bid_per_gpu)
    return 0.0


def with_storage(store: Any, quotes: list[Any], disk_gb: float | None = None, *, job: JobSpec | None = None
                 ) -> list[Any]:
    """Vast's quotes with their storage prices, from the offers stored with them: an instance's disk
    bills on top of its bid, and a plan or budget that leaves it out understates the job (a 500 GB
    disk billed $0.10/h beside a $0.12 bid). Each is the price of the offer the launch rents, over the
    offers the quote summarises: on spot, of the offer each bid rents (`PriceQuote.spot_storage`, by
    the launch's own rule, `bidder.vast.pick`, for a disk of `disk_gb` and, for the markets `job`
    accepts, its pauses: `spot_pauses`; `storage_per_gb_month` is the lowest floor's), on-demand of the
    offer behind the on-demand price."""
    from bidder.vast.offers import SEARCH_DISK_GB
    from bidder.vast.pick import NO_PAUSES, spot_storage_steps
    from bidder.vast.summary import offers_of

    disk = SEARCH_DISK_GB if disk_gb is None else float(disk_gb)
    wanted = set() if job is None else {q.key for q in select_quotes(job, quotes)}
    offers: dict[Any, list[Any]] = {}
    out = []
    for q in quotes:
        if q.market == "vast" and q.storage_per_gb_month is None:
            if q.ts not in offers:
                offers[q.ts] = _stored_offers(store, q.ts)
            mine = offers_of(q, offers[q.ts])
            pauses = spot_pauses(store, job, q) if job is not None and q.key in wanted else NO_PAUSES
            steps = spot_storage_steps(mine, disk, pauses)
            # On-demand rents the offer behind the on-demand price, whose disk bills at its own price (the
            # plan said $0.349/h for an instance billed $0.351/h).
            od = None if q.uninterruptable_price is None else min(
                (o.storage_cost for o in mine if o.on_demand_per_gpu is not None
                 and abs(o.on_demand_per_gpu - q.uninterruptable_price) <= 1e-6), default=None)
            cost = steps[0][1] if steps else od
            if cost is not None:
                q = replace(q, storage_per_gb_month=cost, on_demand_storage_gb=SEARCH_DISK_GB,
                            on_demand_storage_per_gb_month=od, spot_storage=steps)
        out.append(q)
    return out


def spot_pauses(store: Any, job: JobSpec, quote: Any) -> Any:
    """What a spot create on `quote`'s Vast market counts a pause at (`bidder.vast.pick.Pauses`): the
    market's machine hazard as of the quote's snapshot and the job's restart overhead. The plan's
    storage (`with_storage`) and the launch (the executor) read it alike, so they name one offer."""
    from bidder.vast.pick import Pauses

    return Pauses(machine_pauses(store, quote.key, quote.ts), max(float(job.restart_overhead_hours), 0.0))


def _stored_offers(store: Any, ts: datetime) -> list[Any]:
    """The Vast offers stored at `ts` that state a storage price, as the search answered them."""
    from bidder.vast.offers import Offer

    return [Offer(id=int(r["offer_id"]), machine_id=int(r["machine_id"]), host_id=r["host_id"], gpu_name=r["gpu_name"],
                  num_gpus=int(r["num_gpus"]), gpu_ram_mb=r["gpu_ram_mb"] or 0, min_bid=r["min_bid"],
                  dph_total=r["dph_total"], reliability=float("nan") if r["reliability"] is None else r["reliability"],
                  verified=bool(r["verified"]), storage_cost=float(r["storage_cost"]), geolocation=r["geolocation"])
            for r in store.offers_at(ts) if r["storage_cost"] is not None]


def _quotes_at(store: Any, now: datetime, max_age_hours: float) -> list[Any]:
    """The newest snapshot of each market at or before `now` (the store's newest, unless it holds later
    prices, as a replayed trace does). A market whose snapshot is over `max_age_hours` older than the
    newest market's is left out (its prices are no longer current)."""
    quotes = store.latest_quotes()
    if quotes and max(q.ts for q in quotes) > now:
        quotes = store.latest_quotes(at=now)
    if not quotes:
        return []
    last = max(q.ts for q in quotes)
    return [q for q in quotes if (last - q.ts).total_seconds() <= max_age_hours * 3600.0]
