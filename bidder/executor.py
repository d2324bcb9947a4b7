"""The executor: the part of bidder that spends the user's money. Decisions become pods, safely.

    ex = Executor(client, store, max_spend_per_hour=5.0)
    result = ex.launch(job_config, job_spec, policy, decision, now)   # with fallback on NoCapacity
    ex.observe(pod_row, polled_pod, now)                                # one poll into the ledger
    ex.resume(job_config, pod_row, decision, policy, now)               # podBidResume / podResume
    ex.stop_pod(pod_row, now, reason="budget", terminate=False)

Safety rules, each enforced here (not left to callers):
- Every mutation is written to the ledger before it is sent (`begin_action`, outcome "pending") and
  completed after (`finish_action`), so a crash in between stays visible. A dry run writes
  "dry_run" actions and builds the exact `GraphQLRequest` the client would send; nothing is sent (its
  polls of running pods are recorded, facts the preview's spend must read; no pod's state changes).
- Creates are idempotent by name: a job's pods are named PREFIX-ATTEMPT-LEDGERID (LEDGERID: a short
  random id the database keeps, `ledger_id`, so two databases on one account never name two pods
  alike) with the attempt counter saved (and the name remembered as `pending_name`) BEFORE the
  create. Before a create the pod list is read: a name some pod already has that this ledger did not
  make is skipped (warned), so a name found later is this ledger's create. After a TransportError (a
  timeout or a lost answer), the pod list is read and a pod with that name is adopted; nothing is
  created again until that check has been made, in this call or at the next tick. A create that may
  have executed and is not found yet keeps its name for CREATE_GRACE (it may land late): ticks look
  it up again and rent nothing else for the job; after that the name is remembered as lost
  (`lost_names`) and a pod carrying a lost name that the ledger does not know (`strays`) is watched
  from then on: retired, or the job's pod if it has none and no create pending. Every create gets a
  name of its own (a new attempt number), never a lost one: reused, a second lost create's lookup by
  name took the first's late pod for its own, and its own pod ran beside it until a tick retired it.
- Never anything by name that this ledger did not lose: a pod carrying one of a job's names that
  is neither known to the ledger (by id) nor the name of a create of its whose answer was lost is
  another database's (or the user's): it is left alone, with one `foreign_pod` warning per tick.
- A stop of bidder's own whose answer never came (pending or error in the ledger, newer than the
  pod's last start) explains an "Exited by User": `observe` says "stopped_by_bidder", not
  "stopped_outside", and completes the ledger's action.
- No bid above the policy's max price is ever sent; a launch or resume that would take the job's
  spend plus the next hour past its budget, or all managed pods past `max_spend_per_hour`, is refused.
- SpotUnsupported (RunPod retired spot) is remembered in the store settings
  (`spot_unsupported_since`); later launches offer no spot until a fresh price snapshot shows a
  spot floor again after `spot_recheck`.

Spend accounting (pay-as-bid, per second): every poll is an observation (status, cost per hour,
uptime). A pod that stopped between two polls also gets an *exit observation* at the moment it
stopped: for an interruption that moment is read from `lastStatusChange` ("Exited by Runpod: ... at
<date>"); for a stop bidder sent it is the time of the call. Its `uptime_seconds` is the length of
the run that ended then, so `bidder.store.estimate_spend` integrates each run exactly rather than
guessing half the interval. Without a readable time it falls back to that unbiased half.
"""

from __future__ import annotations

import logging
import math
import re
import secrets
import string
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from bidder.errors import (
    AboveCostLimit,
    ApiError,
    AuthError,
    BidderError,
    ConfigError,
    GraphQLError,
    Infeasible,
    InsufficientHistory,
    NoCapacity,
    PodNotFound,
    RateLimited,
    SpotUnsupported,
    TransportError,
    UnwantedInstance,
)
from bidder.jobs import JobConfig, PodTemplate, pod_attempt, pod_name
from bidder.models import MARKET_NAMES, Decision, JobProgress, JobSpec, Policy, PriceQuote
from bidder.pod_api import as_pod_api, runpod_pod_spec
from bidder.runpod import GraphQLRequest, Pod, PodSpec, RunPodClient
from bidder.runpod.errors_map import mask_known
from bidder.store import SPOT_UNSUPPORTED_SINCE, Store, estimate_spend
from bidder.units import format_duration, parse_timestamp, to_iso, usd

__all__ = [
    "COST_FACTOR",
    "CREATE_GRACE",
    "LEDGER_ID",
    "SPOT_FLAG",
    "SPOT_GONE_MESSAGE",
    "UPTIME_SLACK_S",
    "Attempt",
    "Executor",
    "LaunchResult",
    "exit_time",
    "maybe_executed",
    "pod_spec",
    "running_hours",
    "shown_request",
]

log = logging.getLogger(__name__)

#: How long a create whose answer was lost is looked up again by its name before another is sent.
CREATE_GRACE = timedelta(minutes=15)
#: Store setting holding the ledger's id, part of every pod name it gives (`Executor.ledger_id`).
LEDGER_ID = "ledger_id"
#: The error a create whose answer never came is closed with when its grace ends (`adopt_pending`);
#: ledgers written before `lost_names` was kept are read by it.
_GAVE_UP = "no pod named {name} appeared within {grace}"
_GAVE_UP_RE = re.compile(r"^no pod named (\S+) appeared within ")
_CREATE_KINDS = ("rent_spot", "deploy_on_demand")
#: Store setting holding when RunPod first refused spot (ISO time); absent = spot allowed.
SPOT_FLAG = SPOT_UNSUPPORTED_SINCE
SPOT_GONE_MESSAGE = "RunPod no longer offers spot (interruptable) pods for this account"
_START_KINDS = ("rent_spot", "deploy_on_demand", "bid_resume", "resume")
_JS_DATE = re.compile(r"(?:[A-Z][a-z]{2} )?([A-Z][a-z]{2}) (\d{1,2}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT([+-]\d{4})")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?")
_CAP_SLACK = 1e-9
#: A poll is impossible when its uptime passes the time since the create by more than this (clock
#: skew between RunPod and cron), or its cost per hour passes COST_FACTOR x the agreed rate.
UPTIME_SLACK_S = 600.0
COST_FACTOR = 2.0


def exit_time(last_status_change: str | None) -> datetime | None:
    """The moment in RunPod's `lastStatusChange` text ("Exited by Runpod: outbid at Thu Jan 01 2026
    00:05:00 GMT+0000 (...)" or an ISO time), or None when it carries none."""
    if not last_status_change:
        return None
    match = _JS_DATE.search(last_status_change)
    if match:
        month, day, year, hh, mm, ss, offset = match.groups()
        try:
            return datetime.strptime(f"{month} {day} {year} {hh}:{mm}:{ss} {offset}",
                                     "%b %d %Y %H:%M:%S %z").astimezone(UTC)
        except ValueError:
            return None
    match = _ISO_DATE.search(last_status_change)
    if match:
        try:
            return parse_timestamp(match.group(0))
        except ValueError:
            return None
    return None


def _created_by(pod: Pod, now: datetime) -> datetime:
    """When a pod adopted without its create's time came to be, at the latest: now less its uptime
    (RunPod's current run, or a Vast instance's total running time). Taken as now, a Vast instance
    that had run 20 minutes read as running longer than it had existed, and every poll was set aside."""
    up = pod.uptime_seconds if pod.uptime_seconds is not None else getattr(pod, "running_seconds", None)
    up = up if pod.invalid is None else None
    # (an uptime over a day is no create bidder could have lost track of: read as now)
    return now - timedelta(seconds=up) if up is not None and 0 < up < 86400 else now


def maybe_executed(error: ApiError) -> bool:
    """Whether the server may have done what a mutation asked, although `error` came back: a timeout
    or lost answer, a 5xx, a malformed answer (`MalformedAnswer`), RunPod's generic "Something went
    wrong" at HTTP 200. Not a 429, a 401, a validation error (HTTP 400) or a named business refusal."""
    if isinstance(error, TransportError):  # a malformed answer, a timeout, a 5xx: unless it never left
        return error.maybe_executed
    if isinstance(error, RateLimited | AuthError | NoCapacity | SpotUnsupported | PodNotFound):
        return False
    if isinstance(error, GraphQLError):  # a named refusal (spend limit, bad input) was not executed
        return error.status != 400 and ("INTERNAL_SERVER_ERROR" in error.codes or not error.messages
                                        or any("something went wrong" in m.lower() for m in error.messages))
    return True


def running_hours(observations: Sequence[dict[str, Any]]) -> float:
    """Hours a pod ran, from its observations (the spend integral at 1 USD per hour, no storage)."""
    return estimate_spend([{**o, "cost_per_hr": 1.0, **({"storage_per_hr": 0.0} if o.get("storage_per_hr") is not None
                                                        else {})} for o in observations])


def pod_spec(template: PodTemplate, name: str, gpu_type_id: str, gpu_count: int, cloud: str) -> PodSpec:
    """The create input for one attempt: the job's template on the chosen RunPod market."""
    return runpod_pod_spec(template, name, gpu_type_id, gpu_count, cloud)


@dataclass(frozen=True)
class Attempt:
    """One try of a launch or resume. `cost_per_hour` is the pod's rate (USD per hour, all GPUs).

    outcome: ok | adopted (created, answer lost, found by name) | no_capacity | spot_unsupported |
    refused (a guard said no: cap, budget, global spend) | error | dry_run.
    """

    kind: str
    gpu_type_id: str
    cloud: str
    gpu_count: int
    bid_per_gpu: float | None
    cost_per_hour: float | None
    name: str
    outcome: str
    message: str = ""
    pod_id: str | None = None


@dataclass(frozen=True)
class LaunchResult:
    """What a launch did: the decision, each attempt in order, the pod (if any), the requests a dry
    run would have sent, and notes for the user (spot retired, volume warnings...)."""

    decision: Decision | None
    attempts: tuple[Attempt, ...] = ()
    pod: Pod | None = None
    requests: tuple[GraphQLRequest, ...] = ()
    notes: tuple[str, ...] = ()
    attempt: Attempt | None = None

    @property
    def launched(self) -> bool:
        return self.pod is not None

    @property
    def waited(self) -> bool:
        return self.decision is not None and self.decision.action == "wait"


@dataclass(frozen=True)
class _Candidate:
    kind: str
    gpu_type_id: str
    cloud: str
    bid_per_gpu: float | None
    reason: str
    decision: Decision


class _StopLaunch(BidderError):
    """Internal: an error after which trying other alternatives is pointless (spend limit, API down)."""



def stop_intent(store: Any, job: str, pod_id: str | None = None) -> dict[str, Any]:
    """The job's stop intent (for `pod_id`, if given), or {} when there is none or it is stale: its pod
    was seen running after it was written, so the stop it stood for never took effect (a `bidder stop`
    that failed), and a later stop of that pod (a move whose answer was lost) is not that one: applied,
    it held a job that had gone on running."""
    intent = (store.job_state(job) or {}).get("stop_intent") or {}
    if not intent or (pod_id is not None and intent.get("pod_id") != pod_id):
        return {}
    at = intent.get("at")
    written = parse_timestamp(at) if isinstance(at, str) else None
    if written is not None and any(o.get("desired_status") == "RUNNING" and o["ts"] > written
                                   for o in store.observations(intent.get("pod_id") or "")):
        store.save_job_state(job, stop_intent=None)
        return {}
    return intent


def runpod_spot_gone(store: Any) -> bool:
    """Whether RunPod's spot market is marked gone (`spot_unsupported_since`): spot mutations refused,
    its price fields gone, or no spot price anywhere. It says nothing of Vast."""
    return store.settings_get(SPOT_FLAG) is not None

class Executor:
    """Carries decisions out against one API and one ledger. See the module docstring.

    `events` hears one dict per thing done or decided (what `bidder tick --log` writes as JSON lines).
    `advise` is how the executor re-decides (e.g. on-demand only after SpotUnsupported); by default
    `bidder.advisor.advise` over this store.
    """

    def __init__(self, client: RunPodClient, store: Store, *, dry_run: bool = False,
                 events: Callable[[dict[str, Any]], None] | None = None, max_spend_per_hour: float | None = None,
                 spot_recheck: timedelta = timedelta(days=1),
                 advise: Callable[[JobSpec, Policy, datetime, JobProgress | None], Decision] | None = None,
                 markets: Sequence[str] | None = None) -> None:
        # `client` is a PodApi (bidder.pod_api): RunPod's client as it is, or bidder.vast_pods.VastPodApi.
        self.client = client
        self.api = as_pod_api(client)
        self.market: str = self.api.market
        #: The markets a decision may choose among (`any`): this one, unless the tick routes several.
        self.markets: tuple[str, ...] = tuple(markets) if markets else (self.market,)
        self.store = store
        self.dry_run = dry_run
        self.max_spend_per_hour = max_spend_per_hour
        self.spot_recheck = spot_recheck
        self._events = events
        self._advise = advise
        self.log: list[dict[str, Any]] = []
        self._warned: set[str] = set()  # pods said to be another ledger's (once per executor, i.e. per tick)

    # -- events ------------------------------------------------------------------------------------
    def emit(self, now: datetime, event: str, **fields: Any) -> dict[str, Any]:
        record: dict[str, Any] = {"ts": to_iso(now), "event": event}
        record.update({k: v for k, v in fields.items() if v is not None})
        if self.market != "runpod":  # RunPod's events read as they always did
            record.setdefault("market", self.market)
        if self.dry_run:
            record["dry_run"] = True
        self.log.append(record)
        if self._events is not None:
            self._events(record)
        return record

    # -- deciding ----------------------------------------------------------------------------------
    def decide(self, job: JobSpec, policy: Policy, now: datetime, progress: JobProgress | None = None) -> Decision:
        """The optimizer's decision through the advisor (latest quotes + history), with the spot
        memory applied to the policy (RunPod's spot memory says nothing about Vast: a job open to
        both keeps Vast's spot). A job open to any market is decided among `self.markets`; a job
        on a market that is not configured is refused before anything is sent."""
        market = (job.market or "any").lower()
        if market != "any" and market not in self.markets:
            raise ConfigError(f"market {job.market!r} is not configured here (markets: {', '.join(self.markets)}): "
                              + ("set VAST_API_KEY (or vast_api_key in the config file) for Vast" if market == "vast"
                                 else "set RUNPOD_API_KEY for RunPod"), key="market")
        if market == "any" and len(self.markets) == 1:
            job = replace(job, market=self.markets[0])
            market = self.markets[0]
        spot_off: frozenset[str] = frozenset()
        if market == "any" and "runpod" in self.markets and runpod_spot_gone(self.store):
            spot_off = frozenset({"runpod"})  # RunPod's spot is out; Vast's is not
        if market == "runpod":
            if policy.allow_spot and not policy.allow_on_demand and self.spot_blocked():
                # The optimizer would only see no candidate and ask for more history, which cannot help.
                # With the spot price fields gone no snapshot can show spot back: no recheck is promised.
                fields_gone = getattr(self.client, "spot_fields_supported", None) is False
                back = ("RunPod's answers carry no spot prices at all now" if fields_gone else
                        f"looked for once {format_duration(self.spot_recheck.total_seconds())} have passed since")
                raise Infeasible(f"{SPOT_GONE_MESSAGE} (since {self.store.settings_get(SPOT_FLAG)}) and the job has "
                                 f"allow_on_demand = false: nothing can run until spot is back ({back}) or "
                                 "on-demand is allowed", constraint="allow_on_demand")
            policy = self.effective_policy(policy)
        if self._advise is not None:
            return self._advise(job, policy, now, progress)
        from bidder.advisor import advise

        decision, _info = advise(self.store, job, policy, now, progress=progress, spot_off=spot_off)
        return decision

    # -- spot availability memory -----------------------------------------------------------------
    def spot_blocked(self) -> bool:
        """RunPod's spot is gone (its flag is set): the flag is RunPod's alone, never Vast's (a Vast
        executor took it for its own, and a job on Vast's live bid market rented on-demand only)."""
        return self.market == "runpod" and runpod_spot_gone(self.store)

    def effective_policy(self, policy: Policy) -> Policy:
        return replace(policy, allow_spot=False) if policy.allow_spot and self.spot_blocked() else policy

    def mark_spot_unsupported(self, now: datetime, exc: BaseException | None = None, *,
                              reason: str | None = None) -> None:
        """Remember that RunPod refused spot (or shows none anywhere): no spot until `recheck_spot`."""
        if not self.spot_blocked() and not self.dry_run:
            self.store.settings_set(SPOT_FLAG, to_iso(now), ts=now)
        message = SPOT_GONE_MESSAGE + (f" ({reason})" if reason else "") + ": on-demand only until a recheck"
        self.emit(now, "spot_unsupported", message=message, error=None if exc is None else str(exc))

    def recheck_spot(self, now: datetime, quotes: Sequence[PriceQuote] | None = None) -> bool:
        """After `spot_recheck` has passed since spot was refused, a snapshot with any spot floor
        (`quotes`, default the newest stored) clears the memory (the next spot mutation tells whether
        it is really back). True if cleared."""
        since = self.store.settings_get(SPOT_FLAG)
        if since is None:
            return False
        if now - parse_timestamp(since) < self.spot_recheck:
            return False
        if quotes is None:
            quotes = self.store.latest_quotes("runpod")  # a Vast floor says nothing about RunPod's spot
        if not any(q.minimum_bid_price is not None for q in quotes):
            return False
        if not self.dry_run:
            self.store.settings_set(SPOT_FLAG, None)
        self.emit(now, "spot_recheck", message="a fresh snapshot shows spot prices again: offering spot again")
        return True

    # -- money -------------------------------------------------------------------------------------
    def job_spend(self, job: str) -> float:
        """USD the job's pods cost so far (from their observations)."""
        return sum(self.store.spend_by_pod(job).values())

    def running_rate(self, exclude_pod: str | None = None) -> float:
        """USD per hour all managed pods bidder believes RUNNING cost together, with a pod to retire
        and a create whose answer was lost (it may have landed: counted until found or given up), plus
        the storage Vast bills for every instance it keeps, running, paused or stopped."""
        total = sum(float(a["expected_cost_per_hour"] or 0.0) for a in self.store.actions(outcome="pending")
                    if a["kind"] in ("rent_spot", "deploy_on_demand"))
        ended = set()
        if self.dry_run:
            # A dry run (on its scratch copy, `bidder.tick.dry_run_copy`) counts the starts it would make and
            # not the pods it would end, as the real tick's rate would have them: it previewed two jobs' pods
            # that max_spend_per_hour let the real tick start only one of.
            would = self.store.actions(outcome="dry_run")
            total += sum(float(a["expected_cost_per_hour"] or 0.0) for a in would if a["kind"] in _START_KINDS)
            ended = {a["pod_id"] for a in would if a["kind"] in ("stop", "terminate") and a.get("pod_id")}
        # A stopped pod is kept (to resume, or for its disk), and a stopped Vast instance bills storage.
        for row in self.store.managed_pods(states=["active", "retiring", "stopped"]):
            if row["pod_id"] == exclude_pod:
                continue
            last = self.store.last_observation(row["pod_id"])
            total += float((last or {}).get("storage_per_hr") or 0.0)
            if row.get("desired_status") != "RUNNING" or row["pod_id"] in ended:
                continue
            rate = last["cost_per_hr"] if last is not None and last.get("cost_per_hr") else None
            # A (re)start after the last poll sets the rate: its ledger row carries the pod's cost per hour.
            starts = [a for a in self.store.actions(pod_id=row["pod_id"], outcome="ok") if a["kind"] in _START_KINDS]
            if starts and (last is None or starts[-1]["ts"] >= last["ts"]) and starts[-1]["expected_cost_per_hour"]:
                rate = starts[-1]["expected_cost_per_hour"]
            if rate is None:
                rate = (row.get("bid_per_gpu") or 0.0) * (row.get("gpu_count") or 1)
            total += float(rate)
        return total

    def refusal(self, policy: Policy, *, kind: str, price_per_gpu: float | None, gpu_count: int,
                job_spent: float, exclude_pod: str | None = None, hours_ahead: float = 1.0,
                storage_per_hr: float = 0.0) -> str | None:
        """Why a pod at this price must not start now (None: it may). Checks the max price (never a bid
        above it), the job's budget (spend + `hours_ahead` at this rate: the next hour, or the work
        left when less) and the global spend per hour. `storage_per_hr`: what the pod bills on top of
        its price (a kept Vast instance's disk; a new one's is checked when its offer is chosen, see
        `cost_ceiling`)."""
        if price_per_gpu is None:
            return f"no known {kind.replace('_', '-')} price"
        if policy.max_price is not None and price_per_gpu > policy.max_price + _CAP_SLACK:
            return (f"${price_per_gpu:.3f}/GPU-h is above the max price ${policy.max_price:.3f}"
                    + (" (no bid above the cap is ever sent)" if kind == "spot" else ""))
        rate = price_per_gpu * gpu_count + storage_per_hr
        with_storage = f" with ${storage_per_hr:.3f}/h of storage" if storage_per_hr > 0 else ""
        if policy.budget is not None and job_spent + rate * hours_ahead > policy.budget + _CAP_SLACK:
            what = "another hour" if hours_ahead >= 1.0 else f"the {hours_ahead:.2f} h of work left"
            return (f"the budget {usd(policy.budget)} does not cover {what}: spent {usd(job_spent)} + "
                    f"{usd(rate)}/h{with_storage}")
        if self.max_spend_per_hour is not None:
            others = self.running_rate(exclude_pod)
            if others + rate > self.max_spend_per_hour + _CAP_SLACK:
                return (f"max_spend_per_hour {usd(self.max_spend_per_hour)}: running pods cost {usd(others)}/h, "
                        f"this one would add {usd(rate)}/h{with_storage}")
        return None

    def cost_ceiling(self, policy: Policy, *, job_spent: float, hours_ahead: float = 1.0) -> float | None:
        """The most a new pod may cost per hour in all (price and storage) within the job's budget over
        `hours_ahead` and `max_spend_per_hour` (None: neither limits it). `refusal` checks the price; a
        market that bills more (Vast's storage, known once an offer is chosen) rents only within this."""
        limits = []
        if policy.budget is not None and hours_ahead > 0:
            limits.append((policy.budget - job_spent) / hours_ahead)
        if self.max_spend_per_hour is not None:
            limits.append(self.max_spend_per_hour - self.running_rate())
        return min(limits) if limits else None

    def storage_of(self, pod_id: str) -> float:
        """USD per hour the pod bills for storage whatever it does (Vast; 0 for RunPod), as last seen."""
        return float((self.store.last_observation(pod_id) or {}).get("storage_per_hr") or 0.0)

    def _on_demand_price(self, gpu_type_id: str, cloud: str, gpu_count: int) -> float | None:
        """The on-demand price per GPU-hour that `max_price` caps: the compute, as the optimizer holds it
        (`on_demand_compute`: Vast's quote less the storage of the disk its search priced)."""
        from bidder.advisor import with_storage
        from bidder.optimizer import on_demand_compute

        best = None
        for q in self.store.latest_quotes(self.market):
            if (q.gpu_type_id, q.cloud, q.gpu_count) == (gpu_type_id, cloud, gpu_count):
                best = q
        return None if best is None else on_demand_compute(with_storage(self.store, [best])[0])

    def _resume_price(self, row: dict[str, Any], gpu_count: int) -> float | None:
        """The compute per GPU-hour a stopped on-demand pod bills once started again, as `max_price`, the
        budget and `max_spend_per_hour` hold it: its own rate where it keeps one (`own_resume_rate`), else
        the quote, as for a create."""
        own = self.own_resume_rate(row, gpu_count)
        return own if own is not None else self._on_demand_price(row["gpu_type_id"], row["cloud"], gpu_count)

    def own_resume_rate(self, row: dict[str, Any], gpu_count: int) -> float | None:
        """A stopped on-demand pod's own compute rate per GPU-hour, where it keeps one. Vast: the instance's
        own price (its offer is off the listing while it is rented, so the quote is another offer's: $0.382
        for one billing $0.351): its last poll's rate, else its ledger's latest start. RunPod: None (the
        quote): its API (RUNPOD_API.md) says nothing of what a podResume bills, and its on-demand price is
        one per GPU type and cloud, not the pod's own offer's."""
        if self.market != "vast":
            return None
        rate = (self.store.last_observation(row["pod_id"]) or {}).get("cost_per_hr")
        if rate is not None and 0 < rate < math.inf:
            return float(rate) / max(gpu_count, 1)
        return self.started_rate(row["pod_id"], gpu_count)

    def started_rate(self, pod_id: str, gpu_count: int) -> float | None:
        """The compute per GPU-hour an on-demand pod's latest start (create or resume) was recorded at in
        the ledger (a Vast one's at the rate its answer showed); None: no such start."""
        starts = [a for a in self.store.actions(pod_id=pod_id, outcome="ok")
                  if a["kind"] in ("deploy_on_demand", "resume") and a.get("expected_cost_per_hour")]
        rate = float(starts[-1]["expected_cost_per_hour"]) if starts else None
        return rate / max(gpu_count, 1) if rate is not None and 0 < rate < math.inf else None

    def _spot_pauses(self, job: JobSpec, gpu_type_id: str, cloud: str, gpu_count: int) -> Any:
        """What Vast's pick counts a pause at (`bidder.advisor.spot_pauses` on the market's newest
        snapshot, as the plan read it): the offer rented is the one whose storage the plan priced."""
        from bidder.advisor import spot_pauses
        from bidder.vast.pick import NO_PAUSES

        for q in self.store.latest_quotes(self.market):
            if (q.gpu_type_id, q.cloud, q.gpu_count) == (gpu_type_id, cloud, gpu_count):
                return spot_pauses(self.store, job, q)
        return NO_PAUSES

    # -- launching ---------------------------------------------------------------------------------
    def _candidates(self, decision: Decision, bound: int) -> list[_Candidate]:
        out: list[_Candidate] = []
        seen: set[tuple[str, str, str]] = set()
        for d in (decision, *decision.alternatives):
            if d.action == "wait" or d.gpu_type_id is None or d.cloud is None:
                continue
            if (d.market or "runpod") != self.market:  # another market's plan: its own executor acts on it
                continue
            key = (d.action, d.gpu_type_id, d.cloud)
            if key in seen:
                continue
            seen.add(key)
            out.append(_Candidate(d.action, d.gpu_type_id, d.cloud, d.bid_per_gpu,
                                  d.reasons[0] if d.reasons else "", d))
        return out[:bound]

    def launch(self, config: JobConfig, job: JobSpec, policy: Policy, decision: Decision, now: datetime, *,
               job_spent: float = 0.0, hours_ahead: float = 1.0, progress: JobProgress | None = None) -> LaunchResult:
        """Create the decided pod, moving to the next alternative on NoCapacity (up to
        `config.max_attempts`), falling back to on-demand when spot is gone and the policy allows it.
        Never raises for one refused alternative; raises ApiError when the API cannot be used at all.
        `progress` (a tick's: where the job stands): a spot decision's on-demand alternative is tried
        only if the decision with that pod running keeps it (`_keeps_on_demand`)."""
        policy = self.effective_policy(policy)
        attempts: list[Attempt] = []
        notes: list[str] = []
        requests: list[GraphQLRequest] = []
        if decision.action == "wait":
            return LaunchResult(decision)
        listing: list[Pod] = []
        taken: dict[str, Pod] = {}
        if not self.dry_run:
            # The account as it is now (ApiError when it cannot be read: nothing is created unchecked).
            # A name some pod already has that the ledger does not know is never given to another, so
            # a pod found by a create's name later is that create's.
            listing = self.client.pods()
            taken = {p.name: p for p in listing if p.name and self.store.pod(p.id) is None}
            # (A lost create of this job's that landed since the tick's listing is the next tick's to
            # take, as `bidder.tick` does; other databases' pods with the job's names are warned about.)
            self.strays(config, listing, now=now)
        if not self.dry_run and (self.store.job_state(config.name) or {}).get("pending_name"):
            # An earlier create of this job never got its answer: find that pod before creating another.
            found = self.adopt_pending(config, listing, now)
            if found is not None:
                row = self.store.pod(found.id) or {}
                attempt = Attempt("spot" if found.is_spot else "on_demand", row.get("gpu_type_id") or "",
                                  row.get("cloud") or "", config.job.gpu_count, row.get("bid_per_gpu"),
                                  found.cost_per_hr, found.name or "", "adopted",
                                  "created earlier; its answer was lost", found.id)
                return LaunchResult(decision, (attempt,), found, (), (f"adopted pod {found.id} ({found.name}) "
                                                                      "from an earlier create",), attempt)
            name = self.pending(config)
            if name is not None:
                return LaunchResult(decision, (), None, (), (f"the create of {name} may still land: nothing else "
                                                             "is rented for this job until it is found or its "
                                                             "grace ends",))
        queue = self._candidates(decision, config.max_attempts)
        tried_fallback = False
        while queue:
            cand = queue.pop(0)
            if cand.kind == "spot" and not policy.allow_spot:
                continue
            if cand.kind == "on_demand" and decision.action == "spot" and progress is not None and not tried_fallback:
                why = self._keeps_on_demand(job, policy, now, progress, cand)
                if why is not None:
                    notes.append(f"no on-demand fallback on {cand.gpu_type_id}/{cand.cloud}: {why}")
                    continue
            try:
                attempt, pod, request = self._create(config, cand, policy, now, job_spent, hours_ahead, taken)
            except SpotUnsupported as exc:
                self.mark_spot_unsupported(now, exc)
                policy = replace(policy, allow_spot=False)
                attempts.append(self._attempt(config, cand, "spot_unsupported", SPOT_GONE_MESSAGE))
                queue = [c for c in queue if c.kind != "spot"]
                if not policy.allow_on_demand:
                    notes.append(f"{SPOT_GONE_MESSAGE}, and this job does not allow on-demand pods "
                                 "(allow_on_demand = false): nothing launched")
                    break
                if not queue and not tried_fallback:
                    tried_fallback = True
                    fallback, why = self._on_demand_fallback(job, policy, now, job_spent)
                    if fallback is None:
                        notes.append(f"{SPOT_GONE_MESSAGE}, and on-demand is not within the policy: {why}")
                        break
                    queue = self._candidates(fallback, config.max_attempts)
                notes.append(f"{SPOT_GONE_MESSAGE}: continuing with on-demand")
                continue
            except _StopLaunch as exc:
                attempts.append(self._attempt(config, cand, "error", str(exc)))
                notes.append(str(exc))
                break
            attempts.append(attempt)
            if request is not None:
                requests.append(request)
                break  # a dry run shows the first request it would send; capacity is unknown
            if pod is not None:
                return LaunchResult(decision, tuple(attempts), pod, tuple(requests), tuple(notes), attempt)
        if not attempts and not notes:
            notes.append("no alternative could be tried (spot not allowed and no on-demand alternative)")
        return LaunchResult(decision, tuple(attempts), None, tuple(requests), tuple(notes))

    def _keeps_on_demand(self, job: JobSpec, policy: Policy, now: datetime, progress: JobProgress,
                         cand: _Candidate) -> str | None:
        """Why the decision, with `cand`'s on-demand pod running, would not keep it (None: it would).
        A tick decides on the running pod next time: an on-demand pod rented because spot had no capacity
        while the plan would rather wait was ended at the next tick (4 times in 48 h, $0.11)."""
        running = replace(progress, current_gpu_type_id=cand.gpu_type_id, current_cloud=cand.cloud,
                          current_action="on_demand", current_bid_per_gpu=None, current_market=self.market,
                          current_running=True)
        try:
            decision = self.decide(job, policy, now, running)
        except (Infeasible, InsufficientHistory):
            return None  # a decision that cannot be made keeps a running pod (as a tick does)
        if decision.action == "on_demand":
            return None
        return f"the next decision would end it ({decision.reasons[0] if decision.reasons else decision.action})"

    def _on_demand_fallback(self, job: JobSpec, policy: Policy, now: datetime,
                            job_spent: float) -> tuple[Decision | None, str]:
        try:
            decision = self.decide(job, replace(policy, allow_spot=False), now, JobProgress(spent=job_spent))
        except (Infeasible, InsufficientHistory) as exc:
            return None, str(exc)
        if decision.action != "on_demand":
            return None, decision.reasons[0] if decision.reasons else "the optimizer chose to wait"
        return decision, ""

    def _attempt(self, config: JobConfig, cand: _Candidate, outcome: str, message: str,
                 name: str = "", pod_id: str | None = None, cost: float | None = None) -> Attempt:
        return Attempt(cand.kind, cand.gpu_type_id, cand.cloud, config.job.gpu_count, cand.bid_per_gpu, cost,
                       name, outcome, message, pod_id)

    def ledger_id(self) -> str:
        """This database's id (letters and digits, made once, at its first create): part of every pod
        name it gives, so another bidder database on the account (a cron's and an interactive tick's,
        two project folders with a job of the same name) never gives the same name."""
        with self.store.transaction():
            lid = self.store.settings_get(LEDGER_ID)
            if lid is None:
                lid = secrets.choice(string.ascii_lowercase) + "".join(
                    secrets.choice(string.ascii_lowercase + string.digits) for _ in range(4))
                self.store.settings_set(LEDGER_ID, lid)
        return lid

    def next_name(self, config: JobConfig) -> tuple[int, str]:
        """(attempt number, name) of the next create: always a new number, never a lost create's name
        (a pod found by it must be that create's). A `reuse_name` older ledgers kept is not used: it is
        a lost name (`lost_names`), its late pod a stray."""
        state = self.store.job_state(config.name) or {}
        attempts = int(state.get("attempts") or 0)
        return attempts + 1, pod_name(config.template.name_prefix, attempts + 1, self.ledger_id())

    def lost_names(self, config: JobConfig) -> set[str]:
        """Names of this job's creates whose answers this ledger lost and gave up looking for (their
        grace ended): a pod carrying one is this ledger's, landed late. (The create still looked up,
        `pending_name`, is not among them.) Read from the job's state (with the `reuse_name` older
        ledgers kept for the next create), and from the closing errors of the ledger's create actions
        for a ledger written before that state was kept."""
        state = self.store.job_state(config.name) or {}
        names = {str(n) for n in [*(state.get("lost_names") or []), state.get("reuse_name")] if n}
        for action in self.store.actions(config.name, outcome="error"):
            match = _GAVE_UP_RE.match(action.get("error") or "") if action["kind"] in _CREATE_KINDS else None
            if match:
                names.add(match.group(1))
        return names

    def pending(self, config: JobConfig) -> str | None:
        """The name of a create of this job whose answer was lost and that is still looked up."""
        return (self.store.job_state(config.name) or {}).get("pending_name") or None

    def strays(self, config: JobConfig, listing: Sequence[Pod], *, include_pending: bool = False,
               now: datetime | None = None) -> list[Pod]:
        """Pods in `listing` that the ledger does not know carrying the name of a create of this job
        whose answer it lost (`lost_names`): creates that landed after bidder stopped looking for them.
        The pending name is adopt_pending's, unless `include_pending`. Any other unknown pod carrying
        one of the job's names (`pod_attempt`) is not this ledger's: with `now`, it is named in one
        `foreign_pod` warning (once per executor) and left alone."""
        state = self.store.job_state(config.name) or {}
        pending = state.get("pending_name") or ""
        names = self.lost_names(config)
        if include_pending and pending:
            names.add(pending)
        else:
            names.discard(pending)
        unknown = [p for p in listing if p.desired_status != "TERMINATED" and self.store.pod(p.id) is None]
        if now is not None:
            for pod in unknown:
                if pod.name not in names and pod.name != pending \
                        and pod_attempt(config.template.name_prefix, pod.name) is not None:
                    self.warn_foreign(config, pod, now)
        return [p for p in unknown if p.name in names]

    def warn_foreign(self, config: JobConfig, pod: Pod, now: datetime, *, skipped: str | None = None) -> None:
        """Say once (per executor: per tick) that `pod`, carrying one of the job's names, is not this
        ledger's: no create of it was lost here, so it is neither adopted nor retired. `skipped`: the
        create name this ledger passed over because the pod has it."""
        if pod.id in self._warned:
            return
        self._warned.add(pod.id)
        status = (pod.desired_status or "unknown status").lower()
        message = (f"a pod named {pod.name} (id {pod.id}, {status}) is on the {self.market} account but this ledger "
                   f"({self.store.path}) never created it: another bidder database? left alone"
                   + (f"; this ledger names its next pod otherwise than {skipped}" if skipped else ""))
        log.info("job %s: %s", config.name, message)
        self.emit(now, "foreign_pod", job=config.name, pod_id=pod.id, name=pod.name, message=message)

    def _create(self, config: JobConfig, cand: _Candidate, policy: Policy, now: datetime,
                job_spent: float, hours_ahead: float = 1.0, taken: dict[str, Pod] | None = None,
                ) -> tuple[Attempt, Pod | None, GraphQLRequest | None]:
        g = config.job.gpu_count
        price = cand.bid_per_gpu if cand.kind == "spot" else self._on_demand_price(cand.gpu_type_id, cand.cloud, g)
        if cand.kind == "on_demand" and price is None:
            price = cand.decision.expected_cost_per_hour  # optimizer's own figure when no quote is stored
        why_not = self.refusal(policy, kind=cand.kind, price_per_gpu=price, gpu_count=g, job_spent=job_spent,
                               hours_ahead=hours_ahead)
        cost = None if price is None else price * g
        if why_not is not None:
            self.emit(now, "refused", job=config.name, kind=cand.kind, gpu_type=cand.gpu_type_id, cloud=cand.cloud,
                      bid_per_gpu=cand.bid_per_gpu, message=why_not)
            return self._attempt(config, cand, "refused", why_not, cost=cost), None, None
        attempt_no, name = self.next_name(config)
        while taken and name in taken:
            # A pod not in the ledger has this new name: another database's, warned about (a lost create
            # of this ledger's only if the job's attempt count was reset: a stray then). Never two pods
            # of one name.
            if name not in self.lost_names(config):
                self.warn_foreign(config, taken[name], now, skipped=name)
            attempt_no += 1
            name = pod_name(config.template.name_prefix, attempt_no, self.ledger_id())
        spec = self.api.spec(config.template, name, cand.gpu_type_id, g, cand.cloud, max_price_per_gpu=policy.max_price,
                             max_cost_per_hr=self.cost_ceiling(policy, job_spent=job_spent, hours_ahead=hours_ahead))
        if cand.kind == "spot" and self.market == "vast":  # Vast picks the offer: by the plan's own pauses
            spec = replace(spec, pauses=self._spot_pauses(config.job, cand.gpu_type_id, cand.cloud, g))
        kind = "rent_spot" if cand.kind == "spot" else "deploy_on_demand"
        ledger: dict[str, Any] = {"job": config.name, "kind": kind, "gpu_type_id": cand.gpu_type_id,
                                  "cloud": cand.cloud, "gpu_count": g, "bid_per_gpu": cand.bid_per_gpu,
                                  "expected_cost_per_hour": cost, "reason": cand.reason}
        if self.dry_run:
            try:  # a market that picks an offer per create (Vast) may find none to show
                if cand.kind == "spot":
                    assert cand.bid_per_gpu is not None  # refusal() turned a spot candidate without a bid away
                    request = self.client.build_rent_interruptable(spec, cand.bid_per_gpu)
                else:
                    request = self.client.build_deploy_on_demand(spec)
            except NoCapacity as exc:
                outcome = _no_offer_outcome(exc)
                self.emit(now, kind, name=name, outcome=outcome, error=str(exc), **_event_fields(ledger))
                return self._attempt(config, cand, outcome, str(exc), name, cost=cost), None, None
            self.store.begin_action(now, dry_run=True, **ledger)
            self.emit(now, kind, name=name, outcome="dry_run", **_event_fields(ledger))
            return self._attempt(config, cand, "dry_run", "not sent (dry run)", name, cost=cost), None, request
        # The name is reserved before the call: a lost answer is found by it later, never re-created blindly.
        self.store.save_job_state(config.name, attempts=attempt_no, pending_name=name, pending_since=now,
                                  pending_market=self.market)
        action = self.store.begin_action(now, **ledger)
        try:
            if cand.kind == "spot":
                assert cand.bid_per_gpu is not None  # a spot decision always carries its bid
                pod = self.client.rent_interruptable(spec, cand.bid_per_gpu)
            else:
                pod = self.client.deploy_on_demand(spec)
        except SpotUnsupported as exc:
            self._finish(action, now, "error", error=str(exc))
            self.store.save_job_state(config.name, pending_name=None, pending_since=None)
            # (its own outcome, as a resume's: the launch falls back to on-demand; not a failed call)
            self.emit(now, kind, name=name, outcome="spot_unsupported", error=str(exc), **_event_fields(ledger))
            raise
        except UnwantedInstance as exc:
            # Vast made an instance bidder did not ask for (on-demand despite the bid, a losing bid's):
            # nothing else is rented this tick; one it could not destroy is destroyed before anything else.
            self._finish(action, now, "error", error=str(exc))
            self.store.save_job_state(config.name, pending_name=None, pending_since=None)
            self.emit(now, kind, name=name, outcome="error", error=str(exc), **_event_fields(ledger))
            if not exc.destroyed and exc.instance_id is not None:
                self.keep_retiring(config, str(exc.instance_id), name, cand, now, why=str(exc))
            raise _StopLaunch(str(exc)) from exc
        except NoCapacity as exc:
            self._finish(action, now, "error", error=str(exc))
            self.store.save_job_state(config.name, pending_name=None, pending_since=None)
            outcome = _no_offer_outcome(exc)
            self.emit(now, kind, name=name, outcome=outcome, error=str(exc), **_event_fields(ledger))
            return self._attempt(config, cand, outcome, str(exc), name, cost=cost), None, None
        except ApiError as exc:
            if maybe_executed(exc):
                # Timeout, lost or malformed answer, "Something went wrong": the pod may exist.
                # Look for it by name before anything else.
                found = self.find_by_name(name)  # raises ApiError if the list cannot be read: pending stays
                if found is None:
                    # It may still land (a create that reaches RunPod after the client gave up): the name
                    # stays reserved and the action pending; nothing else is rented for this job until the
                    # name has been looked up again for CREATE_GRACE.
                    until = now + CREATE_GRACE
                    self.emit(now, kind, name=name, outcome="unconfirmed", error=str(exc), **_event_fields(ledger))
                    raise _StopLaunch(f"the create's answer was lost ({exc}) and no pod named {name} exists yet; "
                                      f"it may still appear: bidder looks it up again before renting anything "
                                      f"else for this job (until {to_iso(until)})") from exc
                if cand.kind == "spot" and not found.is_spot:
                    # A bid that came back an on-demand rental: not the job's pod at the bid asked for.
                    why = f"pod {found.id} named {name} was created on-demand although a bid was sent"
                    self._finish(action, now, "error", pod_id=found.id, error=why)
                    self.store.save_job_state(config.name, pending_name=None, pending_since=None)
                    self.keep_retiring(config, found.id, name, cand, now, why=why)
                    raise _StopLaunch(why) from exc
                cost = ledger["expected_cost_per_hour"] = self._rented_cost(cand.kind, found, cost)
                with self.store.transaction():  # one write: the pod row never lags its finished create
                    self._finish(action, now, "ok", pod_id=found.id, cost=cost)
                    self.adopt(config, found, cand.kind, cand.gpu_type_id, cand.cloud, cand.bid_per_gpu, now,
                               name=name)
                self.emit(now, "adopted", job=config.name, pod_id=found.id, name=name,
                          message=f"the create's answer was lost ({exc}); found pod {found.id} by its name")
                return self._attempt(config, cand, "adopted", str(exc), name, found.id, cost), found, None
            # Spend limit, balance, a refused input, rate limited, auth, or a request that never left this
            # machine: nothing was created, and other alternatives would meet the same refusal.
            self._finish(action, now, "error", error=str(exc))
            self.store.save_job_state(config.name, pending_name=None, pending_since=None)
            self.emit(now, kind, name=name, outcome="error", error=str(exc), **_event_fields(ledger))
            raise _StopLaunch(str(exc)) from exc
        # One write: killed between the two, the next tick adopted the pod by its name without its bid,
        # type or cloud (a lowered max_price was never held against it).
        cost = ledger["expected_cost_per_hour"] = self._rented_cost(cand.kind, pod, cost)
        with self.store.transaction():
            self._finish(action, now, "ok", pod_id=pod.id, cost=cost)
            self.adopt(config, pod, cand.kind, cand.gpu_type_id, cand.cloud, cand.bid_per_gpu, now, name=name)
        self.emit(now, kind, pod_id=pod.id, name=name, outcome="ok", **_event_fields(ledger))
        return self._attempt(config, cand, "ok", "", name, pod.id, cost), pod, None

    def _finish(self, action_id: int, now: datetime, outcome: str, *, pod_id: str | None = None,
                error: str | None = None, cost: float | None = None) -> None:
        self.store.finish_action(action_id, outcome=outcome, pod_id=pod_id, error=error, ts=now,
                                 expected_cost_per_hour=cost)

    def _rented_cost(self, kind: str, pod: Pod, cost: float | None) -> float | None:
        """The rate a new pod bills per hour (all GPUs): a Vast on-demand instance's own compute price,
        from the offer the create rented (the quote's was $0.477/h, the instance billed $0.446/h); else
        `cost`, the price the create was sent at."""
        billed = pod.cost_per_hr
        if self.market != "vast" or kind != "on_demand" or pod.invalid is not None or billed is None \
                or not billed > 0:
            return cost
        return float(billed)

    def find_by_name(self, name: str) -> Pod | None:
        """The account's pod with this name (the newest if several) that the ledger does not know yet,
        read from the API: the create of that name this ledger just sent (no pod had the name before it,
        see `launch`)."""
        matches = [p for p in self.client.pods() if p.name == name and self.store.pod(p.id) is None]
        return matches[-1] if matches else None

    def adopt(self, config: JobConfig, pod: Pod, kind: str, gpu_type_id: str, cloud: str, bid: float | None,
              now: datetime, *, name: str, created: datetime | None = None) -> None:
        """Start managing `pod` as the job's pod. `created`: when its create was sent (default: now, less
        the uptime it reports): later polls are checked against it, so a pod found after a gap is not
        taken as younger than it is (every poll of it would be rejected, its cost never booked)."""
        # The volume its create asked for (0: none): RunPod bills it while the pod is stopped. A RunPod
        # template may bring a volume of its own: with one and no volume given, unknown.
        template = config.template
        sent = (template.volume if self.market == "runpod" and (template.volume or template.template_id is None)
                else None)
        self._adopt_as(config.name, config.job.gpu_count, pod, kind, gpu_type_id, cloud, bid, now, name=name,
                       created=created, volume=sent)

    def _adopt_as(self, job: str, gpu_count: int, pod: Pod, kind: str, gpu_type_id: str, cloud: str,
                  bid: float | None, now: datetime, *, name: str, created: datetime | None = None,
                  volume: int | None = None) -> None:
        if created is None:
            created = _created_by(pod, now)
        elif pod.uptime_seconds is not None and pod.invalid is None and 0 < pod.uptime_seconds < 86400:
            # A create that landed after it was sent (late, its answer lost): RunPod's uptime dates the run,
            # never before the send. Dated at the send, a pod adopted 15 min after and outbid before its
            # first poll was booked those 15 min (its exit's run counts from `run_start`).
            created = max(created, now - timedelta(seconds=pod.uptime_seconds))
        # RunPod's own answer first (`volumeInGb`), else what bidder sent; neither: unknown (NULL).
        volume = pod.volume_in_gb if pod.volume_in_gb is not None and pod.invalid is None else volume
        self.store.add_pod(pod.id, job=job, name=name, gpu_type_id=gpu_type_id, cloud=cloud,
                           gpu_count=pod.gpu_count or gpu_count, kind=kind,
                           bid_per_gpu=bid if kind == "spot" else None, created=min(created, now), market=self.market,
                           volume_in_gb=volume)
        self.store.set_pod_state(pod.id, desired_status=pod.desired_status or "RUNNING", last_seen=now)
        self._record_billing(pod.id, pod, now)  # Vast bills storage from the create on
        state = self.store.job_state(job) or {}
        self.store.save_job_state(job, pod_id=pod.id, state="running", started=state.get("started") or now,
                                  pending_name=None, pending_since=None, updated=now)

    @staticmethod
    def lost_launch_creates(store: Store, *, jobs: Collection[str] | None = None) -> dict[str, str]:
        """The pod names of `bidder launch` creates whose answers were lost (still looked up, or given
        up), each with its launch's name. Only a second `bidder launch --name` under that name looks for
        its pod; a launch that said "nothing launched" and was not run again is looked for here.
        `jobs` (a tick's bidder.toml jobs): also the lost creates of the ledger's jobs that are not
        among them (renamed or removed since), which no job's own lookup would find any more."""
        names: dict[str, str] = {}
        for state in store.jobs():
            orphan = jobs is not None and state["name"] not in jobs
            if not orphan and not store.is_launch(state["name"], state):
                continue
            for lost in [state.get("pending_name"), *(state.get("lost_names") or [])]:
                if lost:
                    names[str(lost)] = state["name"]
        return names

    def adopt_launched(self, listing: Sequence[Pod], now: datetime, *,
                       jobs: Collection[str] | None = None) -> list[Pod]:
        """Pods in `listing` the ledger does not know that carry the name of a lost launch create
        (`lost_launch_creates`): that launch's pods from now on, watched and billed in the ledger,
        listed by `bidder pods` and stopped by `bidder stop` (they are the user's: never stopped here).
        Such a pod landed after its launch said "nothing launched" and ran unseen until the same
        launch was run again."""
        names = self.lost_launch_creates(self.store, jobs=jobs)
        found = []
        for pod in listing:
            launch = names.get(pod.name or "")
            if launch is None or pod.desired_status == "TERMINATED" or self.store.pod(pod.id) is not None:
                continue
            creates = [a for a in self.store.actions(launch) if a["kind"] in _CREATE_KINDS and not a.get("pod_id")]
            last = creates[-1] if creates else {}
            if last.get("outcome") == "pending":
                self._finish(last["id"], now, "ok", pod_id=pod.id)
            ended = (self.store.job_state(launch) or {}).get("state") in ("finished", "budget_stopped")
            if ended and not self.store.is_launch(launch):
                # A job ended (`bidder jobs stop`, its budget) and then taken out of bidder.toml: its late pod
                # is retired as it is while the job is still in the file; adopted, it ran on unwatched.
                self.store.save_job_state(launch, pending_name=None, pending_since=None)
                self._retire_late(launch, pod, last, now, terminate=self.market == "vast",
                                  why=f"pod {pod.id} named {pod.name} landed after job {launch} had ended (its create's "
                                      "answer was lost; the job is no longer in bidder.toml): retired")
                found.append(pod)
                continue
            kind = "spot" if pod.is_spot else "on_demand"
            self._adopt_as(launch, int(last.get("gpu_count") or 1), pod, kind,
                           last.get("gpu_type_id") or pod.gpu_display_name or "unknown", last.get("cloud") or "ALL",
                           last.get("bid_per_gpu"), now, name=pod.name or "", created=last.get("ts"))
            whose = (f"landed after `bidder launch --name {launch}` said nothing was launched (its create's "
                     "answer was lost)" if self.store.is_launch(launch) else
                     f"is from a create of job {launch}, which is no longer in bidder.toml, whose answer was lost")
            self.emit(now, "adopted", job=launch, pod_id=pod.id, name=pod.name,
                      message=f"pod {pod.id} named {pod.name} {whose}: it runs and bills, and is watched as "
                              f"{launch}'s pod from now on (`bidder stop {pod.id}` stops it)")
            found.append(pod)
        return found

    def adopt_pending(self, config: JobConfig, listing: Sequence[Pod], now: datetime, *,
                      keep: bool = True) -> Pod | None:
        """At a tick: a create whose answer never came (a crash, a lost response) left `pending_name`;
        if a pod with that name exists, it is the job's pod (or, unless `keep`, for a job that was ended
        meanwhile, retired at once). Returns the job's pod (or None, clearing the name)."""
        state = self.store.job_state(config.name) or {}
        name = state.get("pending_name")
        if not name:
            return None
        matches = [p for p in listing if p.name == name and self.store.pod(p.id) is None]
        if not matches:
            since = state.get("pending_since")
            since_at = parse_timestamp(since) if isinstance(since, str) else since
            if since_at is not None and now - since_at < CREATE_GRACE:
                # A create sent after a lost answer may still land: keep the name, rent nothing else.
                self.emit(now, "pending_create", job=config.name, name=name,
                          message=f"no pod named {name} yet; its create may still land: looked up again until "
                                  f"{to_iso(since_at + CREATE_GRACE)} before anything else is rented")
                return None
            # The grace is over: the next create takes a new name (next_name), so a pod of this one that
            # lands later is never taken for that create's; it is found as a stray (`strays`).
            self.emit(now, "pending_expired", job=config.name, name=name,
                      message=f"no pod named {name} appeared within {format_duration(CREATE_GRACE.total_seconds())}: the next "
                              f"create takes a new name; a pod named {name} landing later is retired (or kept "
                              "as the job's pod while it has none)")
            for action in self.store.actions(config.name, outcome="pending"):
                if action["kind"] in _CREATE_KINDS:
                    self._finish(action["id"], now, "error",
                                 error=_GAVE_UP.format(name=name, grace=format_duration(CREATE_GRACE.total_seconds())))
            # Remembered as lost: a pod that lands with this name later is this ledger's (`strays`).
            lost = sorted({*(state.get("lost_names") or []), name})
            self.store.save_job_state(config.name, pending_since=None, pending_name=None, lost_names=lost)
            return None
        pod = matches[-1]
        since = state.get("pending_since")
        sent = parse_timestamp(since) if isinstance(since, str) else since
        pending = [a for a in self.store.actions(config.name, outcome="pending")
                   if a["kind"] in ("rent_spot", "deploy_on_demand")]
        last = pending[-1] if pending else None
        # A create already finished with this pod (by a process that died before it wrote the pod's row,
        # on a ledger from before that was one write) still knows the pod's type, cloud and bid.
        done = [a for a in self.store.actions(config.name) if a["kind"] in ("rent_spot", "deploy_on_demand")
                and a.get("pod_id") == pod.id]
        source = last or (done[-1] if done else {})
        kind = "spot" if pod.is_spot else "on_demand"
        gpu_type_id = source.get("gpu_type_id") or (pod.gpu_display_name or "unknown")
        cloud = source.get("cloud") or "ALL"
        bid = source.get("bid_per_gpu")
        if last is not None:
            self._finish(last["id"], now, "ok", pod_id=pod.id)
        if not keep:  # the job was ended (by the user, its budget) while its create was lost: no pod for it
            self.store.save_job_state(config.name, pending_name=None, pending_since=None)
            self.take_stray(config, pod, now, keep=False)
            return None
        self.adopt(config, pod, kind, gpu_type_id, cloud, bid, now, name=name, created=sent)
        self.emit(now, "adopted", job=config.name, pod_id=pod.id, name=name,
                  message=f"found pod {pod.id} named {name} from a create whose answer was lost")
        return pod

    def keep_retiring(self, config: JobConfig, pod_id: str, name: str, cand: _Candidate, now: datetime, *,
                      why: str) -> None:
        """A pod the job does not want that could not be ended: in the ledger as `retiring`, never the
        job's pod; each tick ends it before doing anything else for the job (`bidder.tick`)."""
        self.store.add_pod(pod_id, job=config.name, name=name, gpu_type_id=cand.gpu_type_id, cloud=cand.cloud,
                           gpu_count=config.job.gpu_count, kind=cand.kind, bid_per_gpu=cand.bid_per_gpu,
                           created=now, market=self.market)
        self.store.set_pod_state(pod_id, state="retiring", desired_status="RUNNING", note=why)
        self.emit(now, "retiring", job=config.name, pod_id=pod_id, name=name, message=why)

    def take_stray(self, config: JobConfig, pod: Pod, now: datetime, *, keep: bool) -> None:
        """Start watching a pod carrying the name of one of the job's lost creates that the ledger did
        not know (see `strays`): as the job's pod when `keep` (the job has none), else retired at once."""
        creates = [a for a in self.store.actions(config.name) if a["kind"] in ("rent_spot", "deploy_on_demand")
                   and not a.get("pod_id")]
        last = creates[-1] if creates else {}
        kind = "spot" if pod.is_spot else "on_demand"
        gpu_type_id = last.get("gpu_type_id") or pod.gpu_display_name or "unknown"
        cloud, bid = last.get("cloud") or "ALL", last.get("bid_per_gpu") if kind == "spot" else None
        name = pod.name or ""
        if keep:
            self.adopt(config, pod, kind, gpu_type_id, cloud, bid, now, name=name)
            self.emit(now, "adopted", job=config.name, pod_id=pod.id, name=name,
                      message=f"pod {pod.id} named {name} appeared late (its create's answer was lost): it is "
                              f"the job's pod")
            return
        terminate = config.on_finish == "terminate" or self.market == "vast"  # a Vast disk bills until destroyed
        self._retire_late(config.name, pod, {**last, "gpu_count": config.job.gpu_count}, now, terminate=terminate,
                          why=f"pod {pod.id} named {name} appeared late, after the job had moved on: retired")

    def _retire_late(self, job: str, pod: Pod, create: dict[str, Any], now: datetime, *, terminate: bool,
                     why: str) -> None:
        """Watch a pod of a lost create (`create`: its ledger action) that no job wants, and end it at once:
        stopped, or terminated when `terminate`; its cost so far is booked to `job`."""
        kind = "spot" if pod.is_spot else "on_demand"
        self.store.add_pod(pod.id, job=job, name=pod.name or "",
                           gpu_type_id=create.get("gpu_type_id") or pod.gpu_display_name or "unknown",
                           cloud=create.get("cloud") or "ALL", gpu_count=pod.gpu_count or int(create.get("gpu_count") or 1),
                           kind=kind, bid_per_gpu=create.get("bid_per_gpu") if kind == "spot" else None,
                           created=_created_by(pod, now), market=self.market)
        self.store.set_pod_state(pod.id, desired_status=pod.desired_status or "RUNNING", last_seen=now)
        self.observe(self.store.pod(pod.id) or {"pod_id": pod.id}, pod, now)
        self.emit(now, "stray", job=job, pod_id=pod.id, name=pod.name, message=why)
        row = self.store.pod(pod.id) or {"pod_id": pod.id, "job": job}
        if terminate or row.get("desired_status") == "RUNNING":
            self.stop_pod(row, now, reason=why, terminate=terminate, state="retired")
        else:
            self.store.set_pod_state(pod.id, state="retired", ended=now, note=why)

    # -- polling -----------------------------------------------------------------------------------
    def bill_kept(self, row: dict[str, Any], pod: Pod | None, now: datetime) -> None:
        """A poll of a pod that bills without being a job's pod (one to retire; a stopped Vast instance,
        whose disk bills storage): what it costs goes into the ledger. Nothing when `pod` is None (the
        caller asks for one a listing left out by id, `confirm`, and marks it gone when it is)."""
        if pod is None or self.dry_run or pod.invalid is not None:  # (its price is not one bidder agreed to)
            return
        if _billing(pod) is None and row.get("state") == "stopped" and "RUNNING" in (pod.desired_status,
                                                                                   row.get("desired_status")):
            # A RunPod pod kept stopped that runs again (restarted outside bidder), or that ran and stopped:
            # polled as any pod, so its run is booked from its restart and its end from lastStatusChange.
            self.observe(row, pod, now)
            return
        if _billing(pod) is not None:
            self._record_billing(row["pod_id"], pod, now)
        else:
            self.store.record_observation(now, row["pod_id"], desired_status=pod.desired_status or "UNKNOWN",
                                          cost_per_hr=pod.cost_per_hr, uptime_seconds=pod.uptime_seconds)
        self.store.set_pod_state(row["pod_id"], last_seen=now)

    def confirm(self, pod_id: str) -> Pod | None:
        """Ask for one pod (`pod(input: {podId})`) that a listing left out: the pod, or None when the
        API says it does not exist. Any other failure raises ApiError: the pod's state is unknown."""
        try:
            return self.client.pod(pod_id)
        except PodNotFound:
            return None

    def implausible(self, row: dict[str, Any], pod: Pod, now: datetime) -> str | None:
        """Why this poll of a managed pod cannot be true (None: it can): a number the client found
        impossible (negative, non-finite, huge: `Pod.invalid`), an uptime longer than the time since
        bidder created the pod, or a cost per hour far above any rate bidder agreed to for it that the
        pod's own fields do not back (`_unexplained_cost`: a bid changed outside bidder is billed, and
        booked). Such a poll is not stored; the job goes on from the last good observation."""
        if pod.invalid is not None:  # a number the client found impossible (negative, non-finite, huge)
            return f"pod {row['pod_id']}: {pod.invalid}"
        # A poll that does not say whether the pod runs, or a running pod that costs nothing, proves
        # nothing: read as they came, the first was an interruption (a resume sent to a running pod),
        # the second booked its hours at $0 and took the budget stop with it.
        if pod.desired_status is None:
            return f"pod {row['pod_id']}: no desiredStatus"
        if pod.desired_status == "RUNNING" and not pod.cost_per_hr:  # (`observe` prices it at the agreed rate)
            return f"pod {row['pod_id']}: running at no stated cost, and bidder agreed to no rate for it"
        created = row.get("created")
        # RunPod's uptime of the current run, or a Vast instance's total running time: neither can be
        # longer than the pod has existed.
        uptime = pod.uptime_seconds if pod.uptime_seconds is not None else getattr(pod, "running_seconds", None)
        if uptime is not None and isinstance(created, datetime):
            since = (now - created).total_seconds()
            if uptime > since + UPTIME_SLACK_S:
                return (f"pod {row['pod_id']}: uptime {uptime:.0f} s is longer than the "
                        f"{max(since, 0):.0f} s since it was created")
        agreed = self.agreed_rate(row)
        if pod.cost_per_hr is not None and agreed is not None and pod.cost_per_hr > agreed * COST_FACTOR + 0.01:
            # A bid raised outside bidder (Vast's console, a podBidResume) is billed as the API says; one
            # number alone, which the pod's other fields do not back, is a wrong answer (a garbage cost).
            unexplained = self._unexplained_cost(row, pod, now)
            if unexplained is not None:
                return (f"pod {row['pod_id']}: cost ${pod.cost_per_hr:.3f}/h is far above the ${agreed:.3f}/h "
                        f"bidder agreed to, and {unexplained}")
        return None

    def _unexplained_cost(self, row: dict[str, Any], pod: Pod, now: datetime) -> str | None:
        """Why the pod's own fields do not back its cost per hour (None: they do). Vast: compute plus
        storage (storage_cost x disk) must add up to the instance's `dph_total`. RunPod: `adjustedCostPerHr`
        must say the same, and the run must be new since the last poll that saw it running: RunPod sets a
        pod's price only when it starts (a podBidResume), never while it runs."""
        cost = float(pod.cost_per_hr or 0.0)
        billing = _billing(pod)
        if billing is not None:
            total = getattr(pod, "total_per_hr", None)
            if total is None or not math.isfinite(total):
                return "no dph_total confirms it"
            if abs(total - (cost + billing[0])) > 0.005 + 0.01 * total:
                return f"its dph_total ${total:.3f}/h does not add up to it"
            return None
        other = pod.adjusted_cost_per_hr
        if other is None or abs(other - cost) > 0.005 + 0.01 * cost:
            return "its adjustedCostPerHr does not say it too"
        last = self.store.last_observation(row["pod_id"])
        if (row.get("desired_status") == "RUNNING" and last is not None and last["desired_status"] == "RUNNING"
                and pod.uptime_seconds is not None and pod.uptime_seconds >= (now - last["ts"]).total_seconds()):
            return "the pod has run on since the last poll (RunPod prices a run when it starts)"
        return None

    def agreed_rate(self, row: dict[str, Any]) -> float | None:
        """The highest rate (USD per hour, whole pod) bidder ever agreed to for this pod: its bids and
        the expected cost of its starts. None when unknown."""
        rates = [float(a["expected_cost_per_hour"]) for a in self.store.actions(pod_id=row["pod_id"])
                 if a["kind"] in _START_KINDS and a.get("expected_cost_per_hour")]
        if row.get("kind") == "spot" and row.get("bid_per_gpu"):
            rates.append(float(row["bid_per_gpu"]) * int(row.get("gpu_count") or 1))
        return max(rates) if rates else None

    def run_start(self, pod_id: str, before: datetime) -> datetime | None:
        """When the pod's current (or last) run began, from the ledger: the later of its last successful
        start action (never before the pod's `created`) and (last RUNNING poll - its uptime)."""
        best: datetime | None = None
        for action in self.store.actions(pod_id=pod_id, outcome="ok"):
            if action["kind"] in _START_KINDS and action["ts"] <= before:
                best = action["ts"] if best is None else max(best, action["ts"])
        created = (self.store.pod(pod_id) or {}).get("created")
        if best is not None and isinstance(created, datetime) and created <= before:
            # No run began before the pod existed: a late create's action is dated when it was sent.
            best = max(best, created)
        for obs in reversed(self.store.observations(pod_id)):
            if obs["ts"] > before:
                continue
            if obs["desired_status"] == "RUNNING" and obs.get("uptime_seconds") is not None:
                started = obs["ts"] - timedelta(seconds=float(obs["uptime_seconds"]))
                best = started if best is None else max(best, started)
                break
            if obs["desired_status"] != "RUNNING":
                break
        return best

    def observe(self, row: dict[str, Any], pod: Pod | None, now: datetime) -> str:
        """Record one poll of a managed pod. Returns what happened since the last poll:
        "running", "exited" (still stopped), "interrupted" (stopped by RunPod, not by bidder: counted),
        "stopped_outside" (stopped by the user outside bidder), or "gone" (terminated/unknown)."""
        pod_id = row["pod_id"]
        if pod is None:
            own = self.own_stop(pod_id, terminate=True)
            if own is not None:  # bidder's own terminate, whose answer never came
                if not self.dry_run:
                    self._confirm_own_stop(row, own, now, state="terminated", desired_status="TERMINATED")
                return "stopped_by_bidder"
            if not self.dry_run:
                # Never polled: its launch is the evidence it started (at the create's time and price).
                last = self.store.last_observation(pod_id) or self.store.record_launch(pod_id)
                if last is not None and last.get("storage_per_hr") is not None and isinstance(last.get("ts"), datetime):
                    # Vast bills storage until the destroy and compute while it ran: its end is taken half-way
                    # since the last poll (unbiased for a uniform end, as RunPod's below), its running total
                    # grown to there only if it was running. (Stamped `now`, a kept instance destroyed in
                    # Vast's console booked storage for the whole gap, and compute for half of it although
                    # bidder had stopped it.)
                    end = last["ts"] + (now - last["ts"]) / 2
                    total = last.get("uptime_seconds")
                    if total is not None and row.get("desired_status") == "RUNNING":
                        total = float(total) + (end - last["ts"]).total_seconds()
                    self.store.record_observation(end, pod_id, desired_status="TERMINATED",
                                                  cost_per_hr=last.get("cost_per_hr"), uptime_seconds=total,
                                                  storage_per_hr=last.get("storage_per_hr"))
                elif last is not None and row.get("desired_status") == "RUNNING":
                    # It ended at an unknown moment since the last poll: half of that interval is booked
                    # (unbiased for a uniform end time), not none of it.
                    self.store.record_observation(now, pod_id, desired_status="TERMINATED",
                                                  cost_per_hr=last.get("cost_per_hr"), uptime_seconds=None,
                                                  storage_per_hr=last.get("storage_per_hr"))
                self.store.set_pod_state(pod_id, state="gone", ended=now, desired_status="TERMINATED", last_seen=now)
                self._ended_outside(row, "terminated", now)
            self.emit(now, "pod_gone", job=row.get("job"), pod_id=pod_id,
                      message="the API no longer shows this pod (terminated outside bidder?)")
            return "gone"
        if pod.desired_status == "RUNNING" and not pod.cost_per_hr and (agreed := self.agreed_rate(row)):
            # RunPod left the rate out (or said 0): it bills what bidder agreed to, not nothing (booked at
            # $0, the hours went free and the budget stop with them). The highest agreed rate: never less.
            pod = replace(pod, cost_per_hr=agreed)
        status = pod.desired_status or "UNKNOWN"
        was_running = row.get("desired_status") == "RUNNING"
        billing = _billing(pod)
        why = self.implausible(row, pod, now)
        if why is not None:
            log.info("ignored an impossible poll: %s", why)  # (the event is the user's line: tick, pods --refresh)
            self.emit(now, "rejected_observation", job=row.get("job"), pod_id=pod_id,
                      message=f"ignored an impossible poll: {why}; the job goes on from the last good one")
            return "running" if was_running else "exited"
        own = None
        by_user = (pod.last_status_change or "").lower().startswith("exited by user")
        if status == "RUNNING":
            outcome = "running"
            # Kept stopped, it runs: no start of bidder's (a resume makes its pod the job's, `active`, first).
            restarted = not was_running and row.get("state") == "stopped"
            repriced = self._note_price(row, pod, now, say=not restarted)
            if restarted:
                self.emit(now, "restarted_outside", job=row.get("job"), pod_id=pod_id,
                          message=f"pod {pod_id}, kept stopped, was restarted outside bidder: it runs at "
                                  f"${float(pod.cost_per_hr or 0):.3f}/h, booked from its restart; "
                                  f"`bidder stop {pod_id}` stops it")
            if repriced and billing is not None and not self.dry_run:
                self._record_repriced(pod_id, pod, now)
        elif not was_running:
            # Still stopped, as last seen; unless the user stopped it since (it ran in between: a resume
            # whose answer was lost went through), which is theirs to undo, not the tick's.
            stopped_at = exit_time(pod.last_status_change) if by_user else None
            seen = row.get("last_seen")
            outcome = ("stopped_outside" if stopped_at is not None and isinstance(seen, datetime)
                       and stopped_at > seen and self.own_stop(pod_id) is None else "exited")
        elif by_user:
            # A stop of bidder's own whose answer never came (the tick was killed, or the stop answered
            # errors after it had executed) explains this exit: it is not the user's.
            own = self.own_stop(pod_id)
            outcome = "stopped_outside" if own is None else "stopped_by_bidder"
        else:
            outcome = "interrupted"
        if self.dry_run:
            # A preview must read the spend and rate the real tick would (its budget stop, above all): a
            # running pod's poll is a fact, recorded as the real tick records it. Nothing else is: no
            # state change, so the real tick still sees every exit and interruption as new.
            if status == "RUNNING":
                self._record_poll(pod_id, pod, now, billing)
            return outcome
        if billing is not None or status == "RUNNING":
            self._record_poll(pod_id, pod, now, billing)
        else:
            exit_at = self._record_exit(pod_id, pod.cost_per_hr, now, exit_time(pod.last_status_change)) \
                if was_running else None
            if exit_at != now:  # an exit observation at the poll's own time already says EXITED
                self.store.record_observation(now, pod_id, desired_status=status, cost_per_hr=pod.cost_per_hr,
                                              uptime_seconds=None)
        fields: dict[str, Any] = {"desired_status": status, "last_seen": now}
        if outcome == "interrupted":
            fields["interruptions"] = int(row.get("interruptions") or 0) + 1
        self.store.set_pod_state(pod_id, **fields)
        if own is not None:
            self._confirm_own_stop(row, own, now, state="stopped", desired_status=status)
        if outcome == "stopped_outside":
            self._ended_outside(row, "stopped", now)
        return outcome

    def _note_price(self, row: dict[str, Any], pod: Pod, now: datetime, *, say: bool = True) -> bool:
        """A running pod billed at a price bidder never set (its bid changed outside bidder: Vast's console,
        a podBidResume): booked as the API says, said once (`price_changed`), and a spot pod's bid in the
        ledger becomes the one it runs at, so the job's max price and budget rules weigh that bid."""
        cost, pod_id = pod.cost_per_hr, row["pod_id"]
        if not cost:
            return False
        n = int(pod.gpu_count or row.get("gpu_count") or 1)
        if row.get("kind") == "spot":
            bid = cost / n
            own = [float(a["bid_per_gpu"]) for a in self.store.actions(pod_id=pod_id)
                   if a["kind"] in _START_KINDS and a.get("bid_per_gpu")]
            if row.get("bid_per_gpu"):
                own.append(float(row["bid_per_gpu"]))
            # Within 10% is a bid of bidder's: neither API promises a cost of exactly bid x GPUs, and a fee or a
            # rounding read as the user's change would move the ledger's bid (one near the cap re-bid at every
            # tick). None known: an adopted pod, nothing to compare. (The poll is booked at its cost either way.)
            if not own or any(abs(bid - b) <= max(0.001, 0.10 * b) for b in own):
                return False
            if not self.dry_run:
                self.store.set_pod_state(pod_id, bid_per_gpu=round(bid, 6))
            was = f"bidder's bid ${float(row.get('bid_per_gpu') or own[-1]):.4f}/GPU-h"
            now_at = f"${bid:.4f}/GPU-h (${cost:.3f}/h)"
        else:
            agreed = self.agreed_rate(row)
            last = self.store.last_observation(pod_id) or {}
            if agreed is None or cost <= agreed * COST_FACTOR + 0.01 or last.get("cost_per_hr") == cost:
                return False
            was, now_at = f"the ${agreed:.3f}/h bidder agreed to", f"${cost:.3f}/h"
        if not say:
            return True
        self.emit(now, "price_changed", job=row.get("job"), pod_id=pod_id,
                  message=f"pod {pod_id}: its price was changed outside bidder: it runs at {now_at}, not {was}; "
                          f"booked at what {MARKET_NAMES.get(self.market, self.market)} bills")
        return True

    def _record_repriced(self, pod_id: str, pod: Pod, now: datetime) -> None:
        """A Vast instance's new price took effect at an unknown moment since the last poll: from half-way
        (unbiased for a uniform moment, as an end between polls is booked), an observation at the new rate
        with the running total half-grown. Else the whole interval went at the old rate."""
        last = self.store.last_observation(pod_id)
        running = getattr(pod, "running_seconds", None)
        if last is None or last.get("storage_per_hr") is None or not isinstance(last.get("ts"), datetime) \
                or last["ts"] >= now:
            return
        total = last.get("uptime_seconds")
        if total is not None and running is not None and running >= float(total):
            total = float(total) + (running - float(total)) / 2
        self.store.record_observation((last["ts"] + (now - last["ts"]) / 2).replace(microsecond=0), pod_id,
                                      desired_status=last["desired_status"], cost_per_hr=pod.cost_per_hr,
                                      uptime_seconds=total, storage_per_hr=last.get("storage_per_hr"))

    def _ended_outside(self, row: dict[str, Any], what: str, now: datetime) -> None:
        """The user stopped or terminated the job's pod outside bidder: written with the poll that saw it,
        for the tick to hold the job (`outside_end`). Seen first by `pods --refresh`, or by a tick killed
        before it reached the job, the next poll reads the pod as merely stopped and the tick resumed it
        (or rented another) against the user's wish."""
        if row.get("job"):
            self.store.save_job_state(row["job"], outside_end={"pod_id": row["pod_id"], "what": what,
                                                               "at": to_iso(now)})

    def _record_poll(self, pod_id: str, pod: Pod, now: datetime,
                        billing: tuple[float, float | None, float | None] | None) -> None:
        """The observation of a poll that bills: Vast's billing totals (any status), or a running
        RunPod pod's rate and uptime."""
        if billing is not None:  # Vast: what it bills (total running time, compute rate, storage), exact
            storage, compute, running = billing
            self.store.record_observation(now, pod_id, desired_status=pod.desired_status or "UNKNOWN",
                                          cost_per_hr=compute, uptime_seconds=running, storage_per_hr=storage)
            return
        uptime: float | None = pod.uptime_seconds
        if uptime is None:  # container still starting: billed from the start of the run
            start = self.run_start(pod_id, now)
            uptime = max((now - start).total_seconds(), 0.0) if start is not None else None
        self.store.record_observation(now, pod_id, desired_status=pod.desired_status or "RUNNING",
                                      cost_per_hr=pod.cost_per_hr, uptime_seconds=uptime)

    def own_stop(self, pod_id: str, *, terminate: bool = False) -> dict[str, Any] | None:
        """bidder's last stop (or terminate) of this pod when it is newer than the pod's last start and
        was never confirmed (outcome pending or error); None otherwise."""
        kinds = ("terminate",) if terminate else ("stop", "terminate")
        last = None
        for action in self.store.actions(pod_id=pod_id):
            if action["kind"] in _START_KINDS and action["outcome"] in ("ok", "pending"):
                last = None
            elif action["kind"] in kinds and action["outcome"] in ("pending", "error"):
                last = action
        return last

    def _confirm_own_stop(self, row: dict[str, Any], action: dict[str, Any], now: datetime, *, state: str,
                          desired_status: str) -> None:
        """The pod stopped as bidder's unconfirmed stop asked: complete the ledger, end the pod's row."""
        if action["outcome"] == "pending":
            self._finish(action["id"], now, "ok", pod_id=row["pod_id"])
        intent = stop_intent(self.store, row.get("job") or "", row["pod_id"]) if row.get("job") else {}
        if intent.get("pod_state"):
            state = str(intent["pod_state"])
        self.store.set_pod_state(row["pod_id"], state=state, desired_status=desired_status, ended=now, last_seen=now,
                                 note=action.get("reason"))
        self.emit(now, "own_stop", job=row.get("job"), pod_id=row["pod_id"],
                  message=f"the {action['kind']} bidder sent at {to_iso(action['ts'])} ({action.get('reason')}) "
                          "was never confirmed; the pod is stopped as it asked")

    def _record_exit(self, pod_id: str, cost_per_hr: float | None, now: datetime,
                     when: datetime | None) -> datetime | None:
        """Write the exit observation: at `when` the run that began at `run_start` ended (see the
        module docstring). Call it before the poll at `now` is recorded. Returns the time written,
        or None when there is no usable time (estimate_spend then takes half the interval)."""
        last = self.store.last_observation(pod_id)
        if when is None or when > now + timedelta(seconds=5):
            return None
        when = min(when, now).replace(microsecond=0)
        if last is not None and when < last["ts"]:
            return None  # before the last poll that saw it running: the text is not about this run
        start = self.run_start(pod_id, when)
        if start is None:
            return None
        cost = cost_per_hr if cost_per_hr is not None else (last or {}).get("cost_per_hr")
        uptime = max((when - start).total_seconds(), 0.0)
        self.store.record_observation(when, pod_id, desired_status="EXITED", cost_per_hr=cost, uptime_seconds=uptime)
        return when

    def _record_billing(self, pod_id: str, pod: Pod | None, now: datetime) -> None:
        """A billing observation (Vast): see `bidder.store.estimate_spend`. Nothing for RunPod's pods."""
        billing = _billing(pod)
        if billing is None or self.dry_run or pod is None:
            return
        self._record_poll(pod_id, pod, now, billing)

    # -- resuming and stopping ---------------------------------------------------------------------
    def resume(self, config: JobConfig, row: dict[str, Any], decision: Decision, policy: Policy, now: datetime,
               *, job_spent: float, hours_ahead: float = 1.0) -> tuple[Attempt, GraphQLRequest | None]:
        """Restart the job's stopped pod on its machine: podBidResume at the decision's bid (spot) or
        podResume (on-demand). Raises SpotUnsupported (the caller moves the job)."""
        policy = self.effective_policy(policy)
        pod_id, g = row["pod_id"], int(row.get("gpu_count") or config.job.gpu_count)
        spot = row["kind"] == "spot"
        cand = _Candidate(row["kind"], row["gpu_type_id"], row["cloud"], decision.bid_per_gpu if spot else None,
                          decision.reasons[0] if decision.reasons else "", decision)
        price = cand.bid_per_gpu if spot else self._resume_price(row, g)
        if not spot and price is None:
            price = decision.expected_cost_per_hour
        cost = None if price is None else price * g
        why_not = self.refusal(policy, kind=row["kind"], price_per_gpu=price, gpu_count=g, job_spent=job_spent,
                               exclude_pod=pod_id, hours_ahead=hours_ahead, storage_per_hr=self.storage_of(pod_id))
        if why_not is not None:
            self.emit(now, "refused", job=config.name, pod_id=pod_id, kind=row["kind"], bid_per_gpu=cand.bid_per_gpu,
                      message=why_not)
            return self._attempt(config, cand, "refused", why_not, row.get("name") or "", pod_id, cost), None
        kind = "bid_resume" if spot else "resume"
        ledger: dict[str, Any] = {"job": config.name, "kind": kind, "pod_id": pod_id,
                                  "gpu_type_id": row["gpu_type_id"], "cloud": row["cloud"], "gpu_count": g,
                                  "bid_per_gpu": cand.bid_per_gpu, "expected_cost_per_hour": cost,
                                  "reason": cand.reason}
        if self.dry_run:
            if spot:
                assert cand.bid_per_gpu is not None  # refusal() turned a spot resume without a bid away
                request = self.client.build_bid_resume(pod_id, cand.bid_per_gpu, g)
            else:
                request = self.client.build_resume(pod_id, g)
            self.store.begin_action(now, dry_run=True, **ledger)
            self.emit(now, kind, outcome="dry_run", **_event_fields(ledger))
            return self._attempt(config, cand, "dry_run", "not sent (dry run)", row.get("name") or "", pod_id,
                                 cost), request
        action = self.store.begin_action(now, **ledger)
        try:
            if spot:
                assert cand.bid_per_gpu is not None  # a spot decision always carries its bid
                pod = self.client.bid_resume(pod_id, cand.bid_per_gpu, g)
            else:
                pod = self.client.resume(pod_id, g)
        except ApiError as exc:
            self._finish(action, now, "error", error=str(exc))
            outcome = ("spot_unsupported" if isinstance(exc, SpotUnsupported) else
                       "no_capacity" if isinstance(exc, NoCapacity) else "error")
            self.emit(now, kind, outcome=outcome, error=str(exc), **_event_fields(ledger))
            if isinstance(exc, SpotUnsupported):
                raise
            return self._attempt(config, cand, outcome, str(exc), row.get("name") or "", pod_id, cost), None
        cost = ledger["expected_cost_per_hour"] = self._rented_cost("spot" if spot else "on_demand", pod, cost)
        self._finish(action, now, "ok", pod_id=pod_id, cost=cost)
        self._record_billing(pod_id, pod, now)  # a new bid bills from now (Vast)
        fields: dict[str, Any] = {"desired_status": pod.desired_status or "RUNNING", "last_seen": now}
        if spot:
            fields["bid_per_gpu"] = cand.bid_per_gpu
        self.store.set_pod_state(pod_id, **fields)
        self.emit(now, kind, outcome="ok", **_event_fields(ledger))
        return self._attempt(config, cand, "ok", "", row.get("name") or "", pod_id, cost), None

    def stop_pod(self, row: dict[str, Any], now: datetime, *, reason: str, terminate: bool = False,
                 state: str | None = None) -> GraphQLRequest | None:
        """Stop (or terminate) a managed pod and mark it so the tick never counts it as interrupted.
        `state` is the ledger state it ends in (default "stopped" / "terminated")."""
        pod_id = row["pod_id"]
        if (row.get("market") or "runpod") != self.market:
            # Another market's API answers "not found" for this pod, which would be taken as gone while
            # it runs on: a caller's mistake, stopped here before anything is sent.
            raise ValueError(f"pod {pod_id} is on {row.get('market') or 'runpod'}, not {self.market}: "
                             "stop it with that market's executor")
        kind = "terminate" if terminate else "stop"
        ledger: dict[str, Any] = {"job": row.get("job"), "kind": kind, "pod_id": pod_id,
                                  "gpu_type_id": row.get("gpu_type_id"), "cloud": row.get("cloud"),
                                  "gpu_count": row.get("gpu_count"), "reason": reason}
        if self.dry_run:
            self.store.begin_action(now, dry_run=True, **ledger)
            self.emit(now, kind, outcome="dry_run", **_event_fields(ledger))
            return self.client.build_terminate(pod_id) if terminate else self.client.build_stop(pod_id)
        was_running = row.get("desired_status") == "RUNNING"
        action = self.store.begin_action(now, **ledger)
        try:
            if terminate:
                self.client.terminate(pod_id)
            else:
                self.client.stop(pod_id)
        except PodNotFound as exc:
            # Already gone: nothing runs, nothing bills. The ledger says so.
            self._finish(action, now, "error", error=str(exc))
            self.store.set_pod_state(pod_id, state="gone", ended=now, desired_status="TERMINATED", last_seen=now)
            self.emit(now, kind, outcome="gone", error=str(exc), **_event_fields(ledger))
            return None
        except ApiError as exc:
            self._finish(action, now, "error", error=str(exc))
            self.emit(now, kind, outcome="error", error=str(exc), **_event_fields(ledger))
            raise
        self._finish(action, now, "ok", pod_id=pod_id)
        if was_running and self.market == "runpod":  # a Vast pod's poll at `now` holds its running total
            # Never polled (its polls rejected, or none yet): its create is the evidence of its run and
            # price, else the exit carried no rate and the run was booked at $0.
            self.store.record_launch(pod_id)
            self._record_exit(pod_id, None, now, now)
        self.store.set_pod_state(pod_id, state=state or ("terminated" if terminate else "stopped"),
                                 desired_status="TERMINATED" if terminate else "EXITED", ended=now, last_seen=now,
                                 note=reason)
        self.emit(now, kind, outcome="ok", **_event_fields(ledger))
        return None


def _no_offer_outcome(exc: NoCapacity) -> str:
    """A create's attempt outcome when no pod could be made: `refused` when offers took the bid but none
    fitted the job's spending limits with its storage (Vast), else `no_capacity`."""
    return "refused" if isinstance(exc, AboveCostLimit) else "no_capacity"


def _billing(pod: Pod | None) -> tuple[float, float | None, float | None] | None:
    """(storage, compute rate, total running seconds) of a pod whose market bills storage (Vast), or None."""
    storage = getattr(pod, "storage_per_hr", None)
    if pod is None or storage is None:
        return None
    return float(storage), pod.cost_per_hr, getattr(pod, "running_seconds", None)


def _event_fields(ledger: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in ledger.items() if k != "kind"}
    out["gpu_type"] = out.pop("gpu_type_id", None)
    return out


# -- what a dry run prints ---------------------------------------------------------------------------
#: An env var whose name holds one of these is a secret (a key the pod needs is no less one): a dry
#: run prints its value as HIDDEN. (PASS covers PASSWORD.)
SECRET_ENV_NAME = re.compile(r"KEY|TOKEN|SECRET|PASS|CREDENTIAL|AUTH|PRIVATE|(^|_)PAT(_|$)", re.IGNORECASE)
HIDDEN = "****"
#: The password of a URL's user info (`postgres://user:PASSWORD@host`, `https://user:TOKEN@github.com`),
#: wherever a printed request holds one: an env var named DB_URL or a start command carries it too.
URL_PASSWORD = re.compile(r"\b([a-z][a-z0-9+.-]*://[^/\s:@]*:)([^@\s/]+)@", re.IGNORECASE)
#: Said beside a printed request that shows HIDDEN values (or masked keys).
HIDDEN_NOTE = ("secret values (API keys; env vars named like KEY, TOKEN, SECRET, PASSWORD, CREDENTIAL, AUTH, "
               f"PRIVATE, PAT; passwords in URLs) show as {HIDDEN} or ***: they are sent as given")


def shown_request(request: Any) -> Any:
    """`request` (a GraphQLRequest, or a Vast dry run or request) as a dry run prints it: the values of
    env vars whose names look secret as HIDDEN, and every API key this process holds masked wherever
    it appears (a --env OTHER=$RUNPOD_API_KEY too). Equal to `request` when nothing was hidden."""
    if isinstance(request, GraphQLRequest):
        return replace(request, variables=_hidden(request.variables))
    names = {f.name for f in fields(request)}
    if "then" in names:  # Vast's dry run: its request, and the one sent after it (a stopped instance's start)
        return replace(request, request=shown_request(request.request),
                       then=None if request.then is None else shown_request(request.then))
    return replace(request, body=_hidden(request.body))


def _hidden(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _hidden_env(v) if k == "env" else _hidden(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_hidden(v) for v in value]
    return URL_PASSWORD.sub(rf"\g<1>{HIDDEN}@", mask_known(value)) if isinstance(value, str) else value


def _hidden_env(env: Any) -> Any:
    """RunPod's env ([{"key": NAME, "value": V}]) or Vast's ({NAME: V}) with secret values hidden."""
    if isinstance(env, dict):
        return {k: HIDDEN if SECRET_ENV_NAME.search(str(k)) else _hidden(v) for k, v in env.items()}
    if isinstance(env, list):
        return [{**e, "value": HIDDEN} if isinstance(e, dict) and SECRET_ENV_NAME.search(str(e.get("key")))
                else _hidden(e) for e in env]
    return _hidden(env)
