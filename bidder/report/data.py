"""Cost reports: what bidder's pods cost over a period, against what on-demand would have cost.

    from bidder.report.data import spend_report, price_chart_data
    with Store.open("data/bidder.db", create=False) as store:
        report = spend_report(store, since=now - timedelta(days=7), until=now)
    report.jobs / report.pods / report.totals / report.markets     # plain dataclasses
    report.to_dict()                                                # JSON-ready

Spend comes from the ledger's observation-based estimate (`bidder.store.estimate_spend`). That
estimate is a sum over the pod's polls (the uptime before the first poll, then one term per pair
of consecutive polls), so each term is recovered from the same function as
`estimate_spend([a, b]) - estimate_spend([a])` and placed on the stretch of time it covers. A
report period that cuts a stretch takes the share of it inside the period (linear in time); a
period that covers a pod's whole life gives exactly `estimate_spend` of all its polls. Running
hours are the same integral at 1 USD per hour (as `bidder.executor.running_hours`).

The on-demand comparison prices each stretch's running hours at the on-demand price of the pod's
GPU type and cloud (pods of its GPU count, else 1-GPU quotes) from the `prices` table: at every
moment the nearest earlier snapshot that had an on-demand price (before the first one, the first).
A pod in cloud "ALL" is compared with the cheaper cloud.

An interruption is a stop of a pod that bidder did not ask for: a poll (or exit observation) that
is not RUNNING right after one that was (or after a successful rent/resume action), with no
`stop`/`terminate` action of bidder's for that pod between the two. It is dated at that
observation. The ledger cannot tell a stop made by hand outside bidder from one made by RunPod, so
such a stop counts here (the executor, which reads RunPod's status text, does not count it).

A pod the ledger still has running (state active or retiring, not ended) that no poll has seen for
over MAX_POLL_GAP_HOURS by the period's end (or by `now`, if earlier) has spend the ledger cannot
book: polls vouch for spend, and none vouches for that silence. The report counts none of it, but
says so (`PodSpend.unpolled_since`, a note), and the poll coverage counts the silence as a gap.

Nothing here reads the clock: `since`/`until`/`now` are passed in (None = unbounded).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from bidder.models import DEFAULT_MARKET, MARKET_CLOUDS, MARKETS, MarketKey, market_key, market_of
from bidder.store import FloorSeries, Store, spend_terms
from bidder.units import to_iso

__all__ = [
    "Coverage",
    "JobSpend",
    "MarketSummary",
    "PodSpend",
    "PodTrack",
    "SpendReport",
    "chart_markets",
    "market_summary",
    "observation_coverage",
    "pod_track",
    "price_chart_data",
    "spend_report",
]

_STOP_KINDS = ("stop", "terminate")
_BID_KINDS = ("rent_spot", "bid_resume")
_START_KINDS = ("rent_spot", "bid_resume", "deploy_on_demand", "resume")
_RENT_KINDS = ("rent_spot", "deploy_on_demand")
_CLOUDS = ("SECURE", "COMMUNITY")
_RUNNING_STATES = ("active", "retiring")  # the ledger's states of a pod that may still bill
#: Polls further apart than this leave a gap (a cron that did not run): `bidder tick` polls every few minutes.
MAX_POLL_GAP_HOURS = 0.5


# -- result types ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class PodSpend:
    """One managed pod over the period. Money in USD; `avg_per_gpu_hour` USD per GPU-hour.

    `hours` are running hours of the pod in the period; `gpu_hours` = hours x gpu_count.
    `on_demand_cost` is what those hours would have cost on-demand, with the storage a Vast instance
    billed (paid either way; None: no on-demand price was ever recorded for its GPU type and cloud); for
    an on-demand pod, what it paid (it saved nothing); `saving` = on_demand_cost - spend, `saving_pct` its
    share of on_demand_cost (0-100). `unpolled_since`: for a pod still active, its last poll (else its
    launch) when that was over MAX_POLL_GAP_HOURS before the period's end: its spend since is not
    counted (no poll vouches for it).
    """

    pod_id: str
    job: str | None
    name: str | None
    gpu_type_id: str | None
    cloud: str | None
    gpu_count: int
    kind: str
    bid_per_gpu: float | None
    state: str | None
    created: datetime | None
    last_poll: datetime | None
    hours: float
    gpu_hours: float
    spend: float
    interruptions: int
    avg_per_gpu_hour: float | None
    on_demand_cost: float | None
    saving: float | None
    saving_pct: float | None
    interruption_times: tuple[datetime, ...] = field(default=(), repr=False)
    market: str = "runpod"
    unpolled_since: datetime | None = None
    status: str | None = None  # the pod's last known status on its market (RUNNING, EXITED, ...)
    #: Whether, exited while active, it comes back (`Store.comes_back`): shown paused, else stopped.
    comes_back: bool = field(default=True, repr=False, compare=False)
    # Cumulative curve inside the period, for charts: (epoch seconds, USD spent, USD on-demand).
    curve: tuple[tuple[float, float, float], ...] = field(default=(), repr=False, compare=False)

    @property
    def shown_state(self) -> str | None:
        """The state a table shows: the ledger's, except that a pod bidder still manages ("active")
        is shown as running or paused (outbid, or stopped to be resumed), as `bidder pods` shows its
        status: "active" beside a pod `bidder pods` lists as EXITED read as a contradiction. One that
        nothing bids for again (a `bidder launch`'s RunPod pod, outbid) is stopped, as its job is."""
        if self.state != "active" or not self.status:
            return self.state
        return {"RUNNING": "running", "EXITED": "paused" if self.comes_back else "stopped"}.get(
            self.status, self.status.lower())

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("curve")
        out.pop("comes_back")  # (in `shown_state`)
        out["interruption_times"] = [to_iso(t) for t in self.interruption_times]
        for key in ("created", "last_poll", "unpolled_since"):
            out[key] = to_iso(out[key]) if out[key] is not None else None
        return out


@dataclass(frozen=True)
class JobSpend:
    """A job's pods together over the period (or the totals of the report, with job "TOTAL").

    `gpu_types`, `clouds`, `kinds` list what its pods used; other fields as in PodSpend, summed.
    `curve` is the job's cumulative spend and on-demand cost over time (for the spend chart).
    """

    job: str
    pods: tuple[str, ...]
    gpu_types: tuple[str, ...]
    clouds: tuple[str, ...]
    kinds: tuple[str, ...]
    hours: float
    gpu_hours: float
    spend: float
    interruptions: int
    avg_per_gpu_hour: float | None
    on_demand_cost: float | None
    saving: float | None
    saving_pct: float | None
    interruption_times: tuple[datetime, ...] = field(default=(), repr=False)
    curve: tuple[tuple[float, float, float], ...] = field(default=(), repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("curve")
        out["interruption_times"] = [to_iso(t) for t in self.interruption_times]
        for key in ("pods", "gpu_types", "clouds", "kinds"):
            out[key] = list(out[key])
        return out


@dataclass(frozen=True)
class MarketSummary:
    """One market over the period: median spot floor and on-demand price (USD per GPU-hour; None =
    never seen), the floor's range, and the share of time spot capacity was offered (0-1)."""

    gpu_type_id: str
    cloud: str
    gpu_count: int
    samples: int
    first: datetime | None
    last: datetime | None
    median_floor: float | None
    min_floor: float | None
    max_floor: float | None
    median_on_demand: float | None
    spot_share: float | None
    market: str = DEFAULT_MARKET

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("first", "last"):
            out[key] = to_iso(out[key]) if out[key] is not None else None
        return out


@dataclass(frozen=True)
class SpendReport:
    """The report: pods, jobs, totals and markets over [since, until) (None = unbounded).

    `managed_pods` counts every pod in the ledger (of the chosen job), in the period or not, so
    an empty report can say whether nothing ran at all or nothing ran in this period. `notes` are
    caveats worth showing (unknown on-demand prices, actions left pending by a crash).
    """

    since: datetime | None
    until: datetime | None
    job: str | None
    pods: tuple[PodSpend, ...]
    jobs: tuple[JobSpend, ...]
    totals: JobSpend
    markets: tuple[MarketSummary, ...]
    managed_pods: int
    notes: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not self.pods

    def to_dict(self) -> dict[str, Any]:
        return {"since": to_iso(self.since) if self.since else None,
                "until": to_iso(self.until) if self.until else None,
                "job": self.job,
                "jobs": [j.to_dict() for j in self.jobs],
                "pods": [p.to_dict() for p in self.pods],
                "totals": self.totals.to_dict(),
                "markets": [m.to_dict() for m in self.markets],
                "managed_pods": self.managed_pods,
                "notes": list(self.notes)}


@dataclass(frozen=True)
class PodTrack:
    """A managed pod drawn on a price chart: its bid over time (a step function: `bid_ts` epoch
    seconds, `bids` USD per GPU-hour, the last one held to `end`) and its interruptions.

    `market` says what an interruption does to the bid: on RunPod it ends it (a resume is a new bid);
    on Vast the instance is paused and its bid stands until bidder stops, destroys or re-bids it
    (`stops`: bidder's stop/terminate times). `running_again` is, per interruption, when the pod
    was next seen running (a poll or a start; None: never), which ends a Vast pause."""

    pod_id: str
    gpu_type_id: str | None
    cloud: str | None
    kind: str
    bid_ts: tuple[float, ...]
    bids: tuple[float, ...]
    end: float | None
    interruptions: tuple[float, ...]
    market: str = DEFAULT_MARKET
    stops: tuple[float, ...] = ()
    running_again: tuple[float | None, ...] = ()


# -- time helpers ----------------------------------------------------------------------------------
def _epoch(value: datetime | None, default: float) -> float:
    return value.timestamp() if value is not None else default


def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


class _Step:
    """A price held from each snapshot to the next (nearest earlier snapshot), with its integral."""

    def __init__(self, ts: np.ndarray, values: np.ndarray) -> None:
        keep = ~np.isnan(values)
        self.ts, self.values = ts[keep], values[keep]
        widths = np.diff(self.ts)
        self.area = np.concatenate(([0.0], np.cumsum(self.values[:-1] * widths)))

    def __bool__(self) -> bool:
        return bool(self.ts.size)

    def integral(self, x: np.ndarray) -> np.ndarray:
        """Integral from the first snapshot to x (before it, the first price extends backwards)."""
        k = np.searchsorted(self.ts, x, side="right") - 1
        kc = np.clip(k, 0, None)
        return np.where(k < 0, self.values[0] * (x - self.ts[0]), self.area[kc] + self.values[kc] * (x - self.ts[kc]))

    def mean(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Mean price over each [a, b] (the price at a when b == a)."""
        width = b - a
        at_a = self.values[np.clip(np.searchsorted(self.ts, a, side="right") - 1, 0, None)]
        safe = np.where(width > 0, width, 1.0)
        return np.where(width > 0, (self.integral(b) - self.integral(a)) / safe, at_a)


# -- spend of one pod ------------------------------------------------------------------------------
def _segments(observations: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """(start, end, USD, running hours, of the USD storage) per stretch of time covered by
    estimate_spend's terms."""
    if not observations:
        return np.zeros((0, 5))
    terms = spend_terms(observations)
    first = observations[0]
    t0 = first["ts"].timestamp()
    rows: list[tuple[float, float, float, float, float]] = []
    if terms[0][1] > 0:
        rows.append((t0 - terms[0][1], t0, terms[0][0], terms[0][1] / 3600, terms[0][2]))
    ts = [o["ts"].timestamp() for o in observations]
    for i, (usd, run, stored) in enumerate(terms[1:], start=1):
        start = ts[i - 1]
        if observations[i - 1].get("desired_status") != "RUNNING" and observations[i].get("storage_per_hr") is None:
            # A RunPod run that no poll saw begin ended (or runs) at the stretch's end, its uptime long: its
            # dollars are there, not spread over the hours it was stopped (a restart outside bidder).
            start = max(start, ts[i] - run)
        rows.append((start, ts[i], usd, run / 3600, stored))
    return np.array(rows, dtype=float).reshape(-1, 5)


def _share_inside(seg: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Share of each stretch inside [lo, hi) (a zero-length stretch: 1 if its time is inside)."""
    start, end = seg[:, 0], seg[:, 1]
    length = end - start
    overlap = np.clip(np.minimum(end, hi) - np.maximum(start, lo), 0.0, None)
    point = ((start >= lo) & (start < hi)).astype(float)
    return np.where(length > 0, overlap / np.where(length > 0, length, 1.0), point)


def _still_running(row: Mapping[str, Any]) -> bool:
    """Whether the ledger still has the pod billing: running (bidder has not ended it, nor seen it
    end), or a Vast instance kept stopped, whose disk bills storage until it is destroyed (a report
    without a poll of it left it out without a word)."""
    if row.get("market") == "vast" and row.get("state") == "stopped" and row.get("desired_status") != "TERMINATED":
        return True
    return row.get("state") in _RUNNING_STATES and row.get("ended") is None


def _last_heard(row: Mapping[str, Any], observations: Sequence[Mapping[str, Any]]) -> datetime | None:
    """The pod's last poll, else its launch: from then on the ledger knows nothing of it."""
    return observations[-1]["ts"] if observations else row.get("created")


def _counted(row: Mapping[str, Any]) -> int | None:
    """The interruptions the pod's record holds (the executor's, from RunPod's status text)."""
    value = row.get("interruptions")
    return None if value is None else int(value)


def _end(hi: float, now: datetime | None) -> float:
    """Where a silence in the period stops: its end, or `now` if earlier (no poll is missing yet)."""
    return min(hi, now.timestamp()) if now is not None else hi


def _starts_of(market: str) -> tuple[str, ...]:
    """The actions after which a pod runs. On Vast a bid raised (or a start) on a paused instance is
    not one: it runs only once its bid is the highest, which a poll shows (counted as running again,
    the next poll's pause was a second interruption that `bidder pods` does not count)."""
    return _RENT_KINDS if market == "vast" else _START_KINDS


def _interruptions(observations: Sequence[Mapping[str, Any]], actions: Sequence[Mapping[str, Any]],
                   market: str = DEFAULT_MARKET, counted: int | None = None) -> list[datetime]:
    """Times the pod stopped without bidder asking (see the module docstring). A successful start
    (rent, resume) counts as running from its time, like a RUNNING poll: a pod resumed and outbid
    again before the next poll was interrupted too. At equal times a poll comes before an action
    (a tick polls first, then acts), and actions keep the ledger's order: a stop and a resume in one
    tick (a bid above a lowered cap, re-placed) leave the pod running, and its next exit is counted.

    A stop at the very time of an exit observation, on either market: every stop of bidder's follows a
    poll of the pod at its second (a tick polls, then acts; `bidder stop` and `jobs stop` poll, then
    stop). When a poll (or start) at that second saw the pod running, the stop caused the exit, and the
    exit observation came after it: the exit RunPod's stop writes, or any later poll on that second (on
    Vast, where a stop writes none: the tick cron runs right after the user's `bidder stop --job`).
    Not an interruption, as `bidder pods` does not count it. With no sign of running at that second, the
    exit was the poll's, seen before the stop was sent (outbid, then the pod ended to move the job): an
    interruption, as `counted` (the pod's own record: the interruptions the executor counted from the
    market's answers, which `bidder pods` and `bidder jobs` show; None: not known) allows beside the
    others found, so bidder's own stop is never counted."""
    stops = [(a["ts"], a.get("id") or 0) for a in actions
             if a["kind"] in _STOP_KINDS and a["outcome"] in ("ok", "pending")]
    starts = _starts_of(market)
    timeline: list[tuple[datetime, int, int, str | None]] = [(o["ts"], 0, 0, o.get("desired_status"))
                                                              for o in observations]
    timeline += [(a["ts"], 1, a.get("id") or 0, "RUNNING") for a in actions
                 if a["kind"] in starts and a["outcome"] == "ok"]
    timeline.sort(key=lambda item: (item[0], item[1], item[2]))
    out, same_second = [], []
    last_running: tuple[datetime, int] | None = None  # (time, ledger id of the start; 0 for a poll)
    for ts, _, action_id, status in timeline:
        if status == "RUNNING":
            last_running = (ts, action_id)
            continue
        if last_running is not None:
            after = [s for s, i in stops if last_running <= (s, i)]
            if any(s < ts for s in after):
                pass  # bidder stopped it before this exit
            elif ts in after:
                if last_running[0] < ts:
                    same_second.append(ts)  # seen stopped by the poll before bidder's stop of that second
            else:
                out.append(ts)
        last_running = None
    if counted is not None:
        same_second = same_second[:max(counted - len(out), 0)]
    return sorted(out + same_second)


class _OnDemand:
    """On-demand price lookups per market key (market, GPU type, cloud or tier, GPU count), read once
    per report."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.markets = set(store.markets())
        self._cache: dict[MarketKey, _Step] = {}

    def market_for(self, gpu_type_id: str, cloud: str, gpu_count: int,
                   market: str = DEFAULT_MARKET) -> MarketKey | None:
        """The market whose quotes price this pod: its own GPU count, else 1, else any count."""
        for count in (gpu_count, 1):
            key = market_key(gpu_type_id, cloud, count, market)
            if key in self.markets:
                return key
        counts = sorted(int(k[2]) for k in self.markets
                        if k[0] == gpu_type_id and k[1] == cloud and market_of(k) == market)
        return market_key(gpu_type_id, cloud, counts[0], market) if counts else None

    def step(self, key: MarketKey) -> _Step:
        if key not in self._cache:
            series = self.store.series_of(key)
            self._cache[key] = _Step(series.ts, series.on_demand)
        return self._cache[key]

    def mean(self, gpu_type_id: str | None, cloud: str | None, gpu_count: int, a: np.ndarray,
             b: np.ndarray, market: str = DEFAULT_MARKET) -> np.ndarray | None:
        """Mean on-demand price per GPU-hour over each [a, b]; None when never recorded."""
        if gpu_type_id is None:
            return None
        clouds = _clouds_of(cloud, market)
        found = []
        for c in clouds:
            key = self.market_for(gpu_type_id, c, gpu_count, market)
            step = self.step(key) if key else None
            if step:
                found.append(step.mean(a, b))
        if not found:
            return None
        return np.min(np.vstack(found), axis=0)  # cloud "ALL": the cheaper cloud


def _clouds_of(cloud: str | None, market: str) -> tuple[str, ...]:
    """A pod's cloud (RunPod) or tier (Vast); "ALL"/"ANY"/unknown: every one of its market."""
    if cloud not in (None, "ALL", "ANY"):
        return (str(cloud),)
    return MARKET_CLOUDS.get(market, _CLOUDS)


def _pct(saving: float | None, base: float | None) -> float | None:
    if saving is None or not base:
        return None
    return 100.0 * saving / base


def _pod_spend(store: Store, row: Mapping[str, Any], prices: _OnDemand, lo: float, hi: float,
               now: datetime | None = None) -> PodSpend | None:
    """The pod's numbers inside [lo, hi), or None when it did not exist or run in it (a pod still
    running exists to the period's end, polled or not)."""
    pod_id = row["pod_id"]
    observations = store.observations(pod_id)
    actions = store.actions(pod_id=pod_id)
    seg = _segments(observations)
    gpu_count = int(row.get("gpu_count") or 1)
    created = row.get("created")
    seen = [t for t in (created, row.get("last_seen"), row.get("ended")) if t is not None]
    seen += [o["ts"] for o in observations[-1:]]
    if seg.size:
        seen.append(_dt(float(seg[0, 0])))
    running = _still_running(row)
    if not seen or min(seen).timestamp() >= hi or (max(seen).timestamp() < lo and not running):
        return None
    heard = _last_heard(row, observations)
    end = _end(hi, now)  # an unbounded period with no `now` has no end to fall silent before
    unpolled = heard if running and heard is not None and math.isfinite(end) and \
        end - heard.timestamp() > MAX_POLL_GAP_HOURS * 3600 else None

    share = _share_inside(seg, lo, hi) if seg.size else np.zeros(0)
    usd = seg[:, 2] * share if seg.size else np.zeros(0)
    run = seg[:, 3] * share if seg.size else np.zeros(0)
    # A Vast instance's storage is paid whatever it runs on: the on-demand baseline pays it too.
    stored = seg[:, 4] * share if seg.size else np.zeros(0)
    spend, hours = float(usd.sum()), float(run.sum())
    on_demand_cost: float | None = 0.0
    od = np.zeros(0)
    if seg.size and row.get("kind") == "on_demand":
        # It ran on-demand: its baseline is what it paid. (The market's cheapest on-demand price while it
        # ran was not: on Vast, renting the cheapest offer takes it off the listing, so the price recorded
        # meanwhile is the next offer's, and an on-demand pod "saved" 14%.)
        od = usd
        on_demand_cost = spend
    elif seg.size:
        a = np.maximum(seg[:, 0], lo)
        b = np.maximum(np.minimum(seg[:, 1], hi), a)
        mean = prices.mean(row.get("gpu_type_id"), row.get("cloud"), gpu_count, a, b,
                           market=row.get("market") or DEFAULT_MARKET)
        if mean is None:
            on_demand_cost = None if hours > 0 else float(stored.sum())
            od = stored
        else:
            od = run * mean * gpu_count + stored
            on_demand_cost = float(od.sum())
    saving = None if on_demand_cost is None else on_demand_cost - spend
    gpu_hours = hours * gpu_count
    # An interruption is dated at the poll that saw it: one seen by the poll at the period's end, when
    # that end is now (the default), is in it, as `bidder pods` counts it (nothing later could hold it).
    ends_now = now is not None and now.timestamp() == hi
    cut = [t for t in _interruptions(observations, actions, row.get("market") or DEFAULT_MARKET, _counted(row))
           if lo <= t.timestamp() < hi or (ends_now and t.timestamp() == hi)]
    curve: tuple[tuple[float, float, float], ...] = ()
    if seg.size:
        inside = share > 0
        ends = np.minimum(seg[inside, 1], hi)
        order = np.argsort(ends, kind="stable")
        if ends.size:  # from 0 where the first stretch inside the period begins
            start = max(float(seg[inside, 0].min()), lo)
            curve = ((start, 0.0, 0.0), *zip(ends[order].tolist(), np.cumsum(usd[inside][order]).tolist(),
                                              np.cumsum(od[inside][order]).tolist(), strict=True))
    bid, state, status, polls = _as_of(row, observations, actions, hi)
    return PodSpend(
        pod_id=pod_id, job=row.get("job"), name=row.get("name"), gpu_type_id=row.get("gpu_type_id"),
        cloud=row.get("cloud"), gpu_count=gpu_count, kind=row.get("kind") or "spot",
        bid_per_gpu=bid, state=state, created=created,
        last_poll=polls[-1]["ts"] if polls else None, hours=hours, gpu_hours=gpu_hours,
        spend=spend, interruptions=len(cut), avg_per_gpu_hour=spend / gpu_hours if gpu_hours > 0 else None,
        on_demand_cost=on_demand_cost, saving=saving, saving_pct=_pct(saving, on_demand_cost),
        interruption_times=tuple(cut), curve=curve, market=row.get("market") or "runpod", unpolled_since=unpolled,
        status=status, comes_back=store.comes_back(row))


def _as_of(row: Mapping[str, Any], observations: Sequence[Mapping[str, Any]], actions: Sequence[Mapping[str, Any]],
           hi: float) -> tuple[float | None, str | None, str | None, Sequence[Mapping[str, Any]]]:
    """The pod's bid, ledger state, status and polls as they stood at the period's end `hi`: a report
    of a past period showed today's (a bid raised since, "stopped" for a pod that ran to hours later)."""
    # (as of `hi` itself: a report that ends now reads the poll a tick made now)
    polls = [o for o in observations if o["ts"].timestamp() <= hi] if math.isfinite(hi) else observations
    if len(polls) == len(observations) and (row.get("ended") is None or row["ended"].timestamp() <= hi):
        return row.get("bid_per_gpu"), row.get("state"), row.get("desired_status"), observations  # nothing since
    bids = [a for a in actions if a["kind"] in _BID_KINDS and a["outcome"] == "ok" and a.get("bid_per_gpu") is not None
            and a["ts"].timestamp() <= hi]
    bid = float(bids[-1]["bid_per_gpu"]) if bids else row.get("bid_per_gpu")
    ended = row.get("ended")
    state = row.get("state") if ended is not None and ended.timestamp() <= hi else "active"
    status = polls[-1].get("desired_status") if polls else row.get("desired_status")
    return bid, state, status, polls


def _merge_curves(curves: Iterable[tuple[tuple[float, float, float], ...]]) -> tuple[tuple[float, float, float], ...]:
    """Cumulative curves of several pods as one: increments merged in time order."""
    steps: list[tuple[float, float, float]] = []
    for curve in curves:
        prev_usd = prev_od = 0.0
        for t, usd, od in curve:
            steps.append((t, usd - prev_usd, od - prev_od))
            prev_usd, prev_od = usd, od
    steps.sort(key=lambda s: s[0])
    out, usd_total, od_total = [], 0.0, 0.0
    for t, d_usd, d_od in steps:
        usd_total += d_usd
        od_total += d_od
        out.append((t, usd_total, od_total))
    return tuple(out)


def _combine(name: str, pods: Sequence[PodSpend]) -> JobSpend:
    spend = sum(p.spend for p in pods)
    gpu_hours = sum(p.gpu_hours for p in pods)
    unknown = any(p.on_demand_cost is None for p in pods)
    on_demand_cost = None if unknown else sum(p.on_demand_cost or 0.0 for p in pods)
    saving = None if on_demand_cost is None else on_demand_cost - spend

    def distinct(values: Iterable[str | None]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(v for v in values if v))

    return JobSpend(
        job=name, pods=tuple(p.pod_id for p in pods), gpu_types=distinct(p.gpu_type_id for p in pods),
        clouds=distinct(p.cloud for p in pods), kinds=distinct(p.kind for p in pods),
        hours=sum(p.hours for p in pods), gpu_hours=gpu_hours, spend=spend,
        interruptions=sum(p.interruptions for p in pods),
        avg_per_gpu_hour=spend / gpu_hours if gpu_hours > 0 else None, on_demand_cost=on_demand_cost,
        saving=saving, saving_pct=_pct(saving, on_demand_cost),
        interruption_times=tuple(sorted(t for p in pods for t in p.interruption_times)),
        curve=_merge_curves(p.curve for p in pods))


# -- markets ---------------------------------------------------------------------------------------
def _summarise(series: FloorSeries) -> MarketSummary:
    ts, floor, on_demand = series.ts, series.floor, series.on_demand
    n = len(series)
    if n == 0:
        return MarketSummary(series.gpu_type_id, series.cloud, series.gpu_count, 0, None, None, None, None,
                             None, None, None)
    have = ~np.isnan(floor)
    # Time-weighted: each snapshot stands for the time to the next, capped at twice the usual step,
    # so a gap in collection counts neither as spot nor as its absence.
    step = float(np.median(np.diff(ts))) if n > 1 else 300.0
    weights = np.minimum(np.diff(ts, append=ts[-1] + step), 2 * step)
    total = float(weights.sum())
    share = float(weights[have].sum() / total) if total > 0 else float(have.mean())
    spot = floor[have]
    od = on_demand[~np.isnan(on_demand)]

    def stat(values: np.ndarray, fn: Any) -> float | None:
        return float(fn(values)) if values.size else None

    return MarketSummary(
        gpu_type_id=series.gpu_type_id, cloud=series.cloud, gpu_count=series.gpu_count, samples=n,
        first=_dt(float(ts[0])), last=_dt(float(ts[-1])), median_floor=stat(spot, np.median),
        min_floor=stat(spot, np.min), max_floor=stat(spot, np.max), median_on_demand=stat(od, np.median),
        spot_share=share, market=getattr(series, "market", DEFAULT_MARKET))


def market_summary(store: Store, since: datetime | None = None, until: datetime | None = None,
                   markets: Iterable[tuple[str, str, int]] | None = None) -> list[MarketSummary]:
    """Per market (GPU type, cloud, GPU count; default: every market with history) over
    [since, until): median floor and on-demand, floor range, share of time with spot. Markets
    without a sample in the period are left out."""
    chosen = list(dict.fromkeys(markets)) if markets is not None else store.markets()
    out = []
    for key in chosen:
        series = store.series_of(key, since=since, until=until)
        if len(series):
            out.append(_summarise(series))
    return out


# -- the report ------------------------------------------------------------------------------------
def spend_report(store: Store, since: datetime | None = None, until: datetime | None = None, *,
                 job: str | None = None, now: datetime | None = None) -> SpendReport:
    """Spend per pod and per job over [since, until) (None = unbounded), against on-demand, with
    totals and a summary of the markets the pods ran in. `job` keeps one job's pods. `now`, the
    command's time, caps a silence after a pod's last poll when `until` is later."""
    lo, hi = _epoch(since, -math.inf), _epoch(until, math.inf)
    rows = store.managed_pods(job)
    prices = _OnDemand(store)
    pods = [p for p in (_pod_spend(store, row, prices, lo, hi, now) for row in rows) if p is not None]
    by_job: dict[str, list[PodSpend]] = {}
    for p in pods:
        by_job.setdefault(p.job or "-", []).append(p)
    jobs = tuple(_combine(name, group) for name, group in sorted(by_job.items()))
    totals = _combine("TOTAL", pods)

    used: list[tuple[str, str, int]] = []
    for p in pods:
        if p.gpu_type_id is None:
            continue
        for cloud in _clouds_of(p.cloud, p.market):
            market = prices.market_for(p.gpu_type_id, cloud, p.gpu_count, p.market)
            if market is not None:
                used.append(market)
    markets = tuple(market_summary(store, since, until, used)) if used else ()

    notes = []
    unknown = sorted({f"{p.gpu_type_id} ({p.cloud})" for p in pods if p.on_demand_cost is None})
    if unknown:
        notes.append(f"no on-demand price recorded for {', '.join(unknown)}: saving unknown "
                     "(collect prices with `bidder collect`)")
    unpolled = _unpolled_note([p for p in pods if p.unpolled_since is not None], hi, now)
    if unpolled:
        notes.append(unpolled)
    pending = [a for a in store.actions(job, outcome="pending") if lo <= a["ts"].timestamp() < hi]
    if pending:
        notes.append(f"{len(pending)} action(s) still pending (sent but never completed: a crash between the "
                     f"call and its answer?): ids {', '.join(str(a['id']) for a in pending[:10])}")
    return SpendReport(since=since, until=until, job=job, pods=tuple(pods), jobs=jobs, totals=totals,
                       markets=markets, managed_pods=len(rows), notes=tuple(notes))


def _unpolled_note(pods: Sequence[PodSpend], hi: float, now: datetime | None) -> str | None:
    """What the report leaves out: the spend of pods still active since their last poll."""
    if not pods:
        return None
    end = _end(hi, now)
    where = "the period's end" if end == hi else "now"

    def heard(p: PodSpend) -> str:
        assert p.unpolled_since is not None
        ago = f"{(end - p.unpolled_since.timestamp()) / 3600:.1f} h before {where}"
        if p.last_poll is None:
            return f"never (pod {p.pod_id}, launched at {to_iso(p.unpolled_since)}, {ago})"
        return f"at {to_iso(p.unpolled_since)} ({ago}: pod {p.pod_id})"

    listed = "; ".join(heard(p) for p in pods[:10]) + (f"; and {len(pods) - 10} more" if len(pods) > 10 else "")
    kept = " (or kept stopped on Vast, billing storage)" if any(p.market == "vast" and p.state == "stopped"
                                                              for p in pods) else ""
    return (f"{len(pods)} pod(s) still active{kept} were last polled {listed}: their spend since is not counted "
            "(the ledger books only what polls saw; `bidder tick` or `bidder pods --refresh` polls them)")


# -- price chart data ------------------------------------------------------------------------------
def pod_track(store: Store, pod_id: str, until: datetime | None = None, since: datetime | None = None, *,
              ends_now: bool = False) -> PodTrack | None:
    """A managed pod's bids (from its rent_spot/bid_resume actions, else its recorded bid) and
    interruptions, for the price chart; None if bidder does not manage it. Within [since, until), as
    the report's tables count them (`ends_now`: an interruption seen at `until`, when that is now, is
    in it): a chart of a period drew bids and interruptions from outside it and counted them in its
    legend. The bid in force at `since` starts the track there."""
    row = store.pod(pod_id)
    if row is None:
        return None
    lo = -math.inf if since is None else since.timestamp()
    hi = math.inf if until is None else until.timestamp()
    actions = store.actions(pod_id=pod_id)
    bids = [(a["ts"].timestamp(), float(a["bid_per_gpu"])) for a in actions
            if a["kind"] in _BID_KINDS and a["outcome"] == "ok" and a["bid_per_gpu"] is not None]
    if not bids and row.get("bid_per_gpu") is not None and row.get("created") is not None:
        bids = [(row["created"].timestamp(), float(row["bid_per_gpu"]))]
    observations = store.observations(pod_id)
    ends = [t for t in (row.get("ended"), row.get("last_seen")) if t is not None]
    ends += [o["ts"] for o in observations[-1:]]
    end = max(ends).timestamp() if ends else None
    if until is not None and end is not None:
        end = min(end, until.timestamp())
    market = row.get("market") or DEFAULT_MARKET
    cut = _interruptions(observations, actions, market, _counted(row))
    again = _running_again(observations, actions, cut, market)
    before = [b for b in bids if b[0] < lo]
    # The bid in force at `since` is drawn from there only if the pod ran then: one interrupted, paused
    # or stopped before it was drawn as a solid running bid over time it did not run.
    carried = [(lo, before[-1][1])] if before and _running_at(lo, observations, actions, cut, market) else []
    bids = carried + [b for b in bids if lo <= b[0] <= hi]
    inside = [i for i, t in enumerate(cut) if lo <= t.timestamp() < hi or (ends_now and t.timestamp() == hi)]
    stops = [a["ts"].timestamp() for a in actions if a["kind"] in _STOP_KINDS and a["outcome"] in ("ok", "pending")
             and lo <= a["ts"].timestamp() <= hi]
    return PodTrack(pod_id=pod_id, gpu_type_id=row.get("gpu_type_id"), cloud=row.get("cloud"),
                    kind=row.get("kind") or "spot", bid_ts=tuple(t for t, _ in bids),
                    bids=tuple(b for _, b in bids), end=end, interruptions=tuple(cut[i].timestamp() for i in inside),
                    market=market, stops=tuple(stops), running_again=tuple(again[i] for i in inside))


def _running_at(t: float, observations: Sequence[Mapping[str, Any]], actions: Sequence[Mapping[str, Any]],
                cut: Sequence[datetime], market: str) -> bool:
    """Whether the pod was running at `t` by the ledger: its last sign of running before `t` (a RUNNING
    poll, a start) is later than its last interruption or stop before `t`."""
    starts = _starts_of(market)
    ran = [o["ts"].timestamp() for o in observations if o.get("desired_status") == "RUNNING"]
    ran += [a["ts"].timestamp() for a in actions if a["kind"] in starts and a["outcome"] == "ok"]
    ended = [c.timestamp() for c in cut]
    ended += [a["ts"].timestamp() for a in actions if a["kind"] in _STOP_KINDS and a["outcome"] in ("ok", "pending")]
    last_ran = max((x for x in ran if x < t), default=None)
    last_end = max((x for x in ended if x < t), default=-math.inf)
    return last_ran is not None and last_ran > last_end


def _running_again(observations: Sequence[Mapping[str, Any]], actions: Sequence[Mapping[str, Any]],
                   interruptions: Sequence[datetime], market: str = DEFAULT_MARKET) -> tuple[float | None, ...]:
    """Per interruption, the first time after it the pod was running again: a RUNNING poll or a
    successful start (rent, resume), whichever came first; None if neither did. A start in the same
    tick as the poll that saw the interruption (a bid raised at once) counts: the ledger orders it
    after that poll."""
    starts = _starts_of(market)
    running = sorted([o["ts"].timestamp() for o in observations if o.get("desired_status") == "RUNNING"]
                     + [a["ts"].timestamp() for a in actions if a["kind"] in starts and a["outcome"] == "ok"])
    out: list[float | None] = []
    for t in interruptions:
        k = int(np.searchsorted(running, t.timestamp(), side="left"))
        out.append(running[k] if k < len(running) else None)
    return tuple(out)


def chart_markets(store: Store, gpu_type_ids: Sequence[str], clouds: Sequence[str] | None = None,
                  gpu_count: int | None = 1, market: str | None = None) -> list[MarketKey]:
    """The keys (`Store.markets()`, as the HTML report reads them) of every market with history for
    these GPU types: RunPod's clouds and Vast's tiers alike, or only `market`'s, only `clouds`
    (names as stored: SECURE, COMMUNITY, VERIFIED, UNVERIFIED) and pods of `gpu_count` GPUs (None:
    any). Ordered by GPU type as given, then market (RunPod first) and cloud (SECURE, COMMUNITY)."""
    order = {g: k for k, g in reversed(list(enumerate(gpu_type_ids)))}
    wanted = None if clouds is None else {c.upper() for c in clouds}
    keys = [k for k in store.markets(market) if k[0] in order and (wanted is None or k[1] in wanted)
            and (gpu_count is None or int(k[2]) == gpu_count)]

    def rank(key: MarketKey) -> tuple[int, int, int, int]:
        name = market_of(key)
        tiers = MARKET_CLOUDS.get(name, ())
        return (order[key[0]], MARKETS.index(name) if name in MARKETS else len(MARKETS),
                tiers.index(key[1]) if key[1] in tiers else len(tiers), int(key[2]))

    return sorted(keys, key=rank)


def price_chart_data(store: Store, gpu_type_ids: Sequence[str], clouds: Sequence[str] | None = None,
                     gpu_count: int = 1, since: datetime | None = None, until: datetime | None = None, *,
                     market: str | None = None) -> list[FloorSeries]:
    """The floor and on-demand series of each GPU type in each market with history for it (RunPod's
    clouds, Vast's tiers; `clouds` and `market` narrow them, see `chart_markets`) over [since, until),
    for `bidder.report.charts.price_chart`; markets without samples in the period are left out."""
    out = []
    for key in chart_markets(store, gpu_type_ids, clouds, gpu_count, market):
        series = store.series_of(key, since=since, until=until)
        if len(series):
            out.append(series)
    return out


# -- observation coverage --------------------------------------------------------------------------
@dataclass(frozen=True)
class Coverage:
    """How much of the pods' lives in the period bidder's polls saw. `observed_hours` of
    `span_hours` (from each pod's launch, read as a poll, to its last poll, clipped to the period; for a pod still running,
    on to the period's end or `now`) lie between polls no further apart than `max_gap_hours`; `gaps`
    are the longer silences (pod id, start, end), `unpolled` the pods whose silence runs on to the
    end (after their last poll, or their launch when never polled: spend the report cannot count).
    A RunPod pod's time after a poll that saw it stopped is no part of it: it bills nothing bidder
    counts, and no tick polls it (a pod stopped at its budget read as a day-long gap in the polls)."""

    span_hours: float
    observed_hours: float
    max_gap_hours: float
    gaps: tuple[tuple[str, datetime, datetime], ...]
    unpolled: tuple[str, ...] = ()

    @property
    def share(self) -> float | None:
        return self.observed_hours / self.span_hours if self.span_hours > 0 else None


def observation_coverage(store: Store, pod_ids: Iterable[str], since: datetime | None = None,
                         until: datetime | None = None, *, now: datetime | None = None,
                         max_gap_hours: float = MAX_POLL_GAP_HOURS) -> Coverage:
    """The share of each pod's polled life in [since, until) that its polls cover (see Coverage)."""
    lo, hi = _epoch(since, -math.inf), _epoch(until, math.inf)
    end = _end(hi, now)
    span = observed = 0.0
    gaps: list[tuple[str, datetime, datetime]] = []
    unpolled: list[str] = []
    for pod_id in pod_ids:
        observations = store.observations(pod_id)
        ts = [o["ts"].timestamp() for o in observations]
        stopped = [o["desired_status"] != "RUNNING" for o in observations]
        row = store.pod(pod_id)
        created = row.get("created") if row is not None else None
        if isinstance(created, datetime) and (not ts or created.timestamp() < ts[0]):
            # Its life starts at its launch, a RunPod pod's too: a Vast launch writes a poll then and a
            # RunPod launch none, so a RunPod pod's silence from its launch to its first poll went unseen.
            ts, stopped = [created.timestamp(), *ts], [False, *stopped]
        heard = _last_heard(row, observations) if row is not None and _still_running(row) else None
        trailing = heard is not None and math.isfinite(end) and heard.timestamp() < end
        if trailing:  # the silence of a pod still running, to the end: a gap like any other
            ts = [*ts, end]
        if len(ts) < 2:
            continue
        t = np.array(ts, dtype=float)
        a, b = np.clip(t[:-1], lo, hi), np.clip(t[1:], lo, hi)
        length = b - a
        if row is not None and (row.get("market") or DEFAULT_MARKET) == "runpod":
            # From a poll that saw it stopped to the next: nothing ran (the trailing stretch, if any, is
            # a running pod's silence and stays).
            length = np.where(np.array(stopped[:len(length)], dtype=bool), 0.0, length)  # (interval i starts at poll i)
        span += float(length.sum()) / 3600
        long = (t[1:] - t[:-1]) > max_gap_hours * 3600
        observed += float(length[~long].sum()) / 3600
        gaps += [(pod_id, _dt(x), _dt(y)) for x, y, keep in zip(a, b, long & (length > 0), strict=True) if keep]
        if trailing and long[-1] and length[-1] > 0:
            unpolled.append(pod_id)
    gaps.sort(key=lambda g: g[1])
    return Coverage(span_hours=span, observed_hours=observed, max_gap_hours=max_gap_hours, gaps=tuple(gaps),
                    unpolled=tuple(unpolled))
