"""One cron cycle of managed jobs (`bidder tick`): collect, poll, then decide and act per job.

    with store.exclusive_lock("tick"):                # run_tick takes it: LockHeld if another runs
        report = run_tick(client, store, config, now)

The cycle, safe to run every minute:
1. Collect a price snapshot if the newest is older than `collect_interval`; after `spot_recheck`,
   a snapshot with spot prices lifts the memory that RunPod refused spot.
2. Poll every managed pod in ONE request (`myself.pods`) and record an observation of each; a
   create whose answer was lost is adopted here by its name before anything else is created.
3. Per job in bidder.toml:
   - finished (observed work reached `hours`, or `bidder jobs stop NAME`) → stop or terminate
     its pod per `on_finish`;
   - no pod → decide and launch (fallback through alternatives on NoCapacity);
   - RUNNING → stop it if spend + the next hour at its rate would pass the budget; a pod bidder.toml
     no longer allows (GPU type, count, cloud or market no longer the job's, spot where spot is not
     allowed, an on-demand price above `max_price`) is replaced as a move, or stopped while the job waits;
   - EXITED and bidder did not stop it → an interruption (counted once): decide again with the
     job's progress: `podBidResume` at the new bid when spot on that GPU type and cloud is still
     best (the volume is on that machine), wait (saying below which floor it acts), or move (a new
     pod elsewhere, e.g. on-demand; the old one is retired so the job never runs two pods);
   - stopped or terminated outside bidder → held until `bidder jobs start NAME`; a stop of bidder's
     own whose answer never came is not that: the job ends where the stop meant (`stop_intent`);
   - a create that may still land (`pending_name`) → nothing else is rented for the job meanwhile.
A job's state is re-read before the tick acts on it and, in one transaction, before it is saved: a
stop the user decided meanwhile stands, and a pod this tick restarted is stopped again.
Markets: with `vast` (a `bidder.vast_pods.VastPodApi`), Vast is collected in the same cycle, its
instances are listed once per tick, and each pod is acted on by its market's executor (one per
market, sharing the store and the event log); a job open to `any` market is decided over both. An
outbid Vast instance is paused, not stopped: the same plan at the same bid sends nothing (it resumes
by itself), a higher bid is sent as a change of bid, and a move destroys it, as does a wait unless the
plan waits to bid on that same offer type at or above its standing bid (else it would resume by itself
at a bid the plan does not take).
Nothing reads the clock here: `now` comes from the caller (wall clock, or the emulator's).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bidder.collector import RunPodSource, VastSource, collect_markets, describe
from bidder.errors import (
    ApiError,
    AuthError,
    ConfigError,
    Infeasible,
    InsufficientHistory,
    MalformedAnswer,
    SpotUnsupported,
    StoreError,
    TransportError,
)
from bidder.executor import (
    CREATE_GRACE,
    SPOT_GONE_MESSAGE,
    Attempt,
    Executor,
    exit_time,
    running_hours,
    shown_request,
    stop_intent,
)
from bidder.gpu_names import check_gpu_ids, resolve_gpu_types, several_named
from bidder.jobs import Config, JobConfig, config_job_names, runpod_only
from bidder.models import (
    MACHINE_HISTORY_DAYS,
    MARKET_NAMES,
    PRICE_HISTORY_DAYS,
    Decision,
    JobProgress,
    JobSpec,
    Policy,
)
from bidder.optimizer import VRAM_HINT
from bidder.runpod import Pod, RunPodClient
from bidder.store import Store, estimate_spend
from bidder.store.ledger import run_lengths
from bidder.units import format_duration, parse_timestamp, to_iso, usd_limit

__all__ = [
    "DECISION_FRESHNESS",
    "KEPT_NOTE_EVERY",
    "RESUME_FAILURES_BEFORE_MOVE",
    "JobReport",
    "TickReport",
    "dry_run_copy",
    "interruption_summary",
    "job_progress",
    "kept_billing",
    "kept_budget",
    "left_billing",
    "other_config",
    "reopen_stopped_pod",
    "run_tick",
    "window_start",
]

log = logging.getLogger(__name__)

#: Before a decision, prices older than this are collected again (whatever `collect_interval` says).
DECISION_FRESHNESS = timedelta(minutes=1)
#: A spot pod whose machine refuses `podBidResume` this many ticks in a row is replaced elsewhere.
RESUME_FAILURES_BEFORE_MOVE = 3
#: A finished job whose pod is kept stopped (billing its disk) says so on its line at most this often:
#: cron mails every tick's output, and a line that changes at every tick is noise, one that never does hides it.
KEPT_NOTE_EVERY = timedelta(days=1)


#: Job states a stop has already ended: a leftover stop intent never turns them into another.
_ENDED = ("finished", "held", "budget_stopped")


@dataclass(frozen=True)
class JobReport:
    """One job's line of the tick: its state after the cycle and what happened."""

    name: str
    state: str
    message: str
    pod_id: str | None = None
    spent: float = 0.0
    work_done_hours: float = 0.0
    #: The calls this tick sent for the job that failed (a create, resume, stop or terminate the API
    #: refused or left unanswered), one line each: `bidder tick` exits non-zero when any job has one.
    failed: tuple[str, ...] = ()
    #: Why the tick cannot run the job until the user changes something (its market has no key in this
    #: tick, its pod is on such a market, its name is a `bidder launch`'s): nothing else was done for it,
    #: and `bidder tick` exits non-zero after handling every other job.
    blocked: str | None = None
    #: Why the job's spend passed its budget while none of its pods runs (a kept Vast instance's storage
    #: bills on): `bidder tick` exits non-zero, so cron tells the user, who alone may delete the disk.
    over_budget: str | None = None
    #: Why one of the job's pods could not be known this tick (missing from its market's list, and the
    #: lookup by id failed): nothing was done for the job, whose budget and hours go unkept meanwhile, so
    #: `bidder tick` exits non-zero (cron mails it), as for a pod list that could not be read.
    unknown: str | None = None
    #: Why the job cannot finish by its deadline while its pod runs on: `bidder tick` exits non-zero.
    late: str | None = None
    #: Why the waiting job misses its deadline unless the user acts now (only on-demand over its max price
    #: or budget can still meet it: `bidder.advisor.on_demand_rescue`): `bidder tick` exits non-zero.
    at_risk: str | None = None


@dataclass
class TickReport:
    ts: datetime
    collected: bool = False
    jobs: list[JobReport] = field(default_factory=list)
    #: Markets whose prices this tick could not collect (a failed or wrong answer, an empty catalogue),
    #: each with one line for the user: what failed, and which snapshot the jobs are decided on instead.
    price_failures: dict[str, str] = field(default_factory=dict)
    #: The markets whose snapshot this tick stored (when `collected`).
    collected_markets: tuple[str, ...] = ()
    #: Markets whose API refused the key this tick (prices or pod list), each with what it said: the tick
    #: handles every job it can, then exits non-zero (a wrong key in cron's environment must be seen).
    refused_keys: dict[str, str] = field(default_factory=dict)
    #: Markets whose price API could not be reached this tick (no connection, a timeout, a 5xx) while the
    #: other's answered, and that a job of bidder.toml may run on, each with what failed: as a refused key,
    #: the tick handles every job it can on the last good snapshot, then exits non-zero (cron reported
    #: success while RunPod was down).
    unreachable: dict[str, str] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)


def job_progress(store: Store, config: JobConfig, *, save: bool = True) -> tuple[float, float, int]:
    """(work done in hours at speed 1.0, USD spent, interruptions) of a job, from the ledger: each
    pod's observed running hours times its GPU type's speed, less what each restart lost. A restart is
    every run but the job's first (a run starts where a pod's polls turn RUNNING), or every interruption
    while the job waits to run again, if more. A move or a stop and resume of bidder's own restarts the
    work as an interruption does (the backtest and the optimizer count it so; counted per interruption
    alone, a job moved three times was taken for finished 30 minutes of work early).

    As in the backtest and the plan, a restart loses the work of the run it ended, up to `restart_overhead`
    of its running time (time to resume and work since the last checkpoint): the run before each run but
    the first loses min(restart_overhead, its running hours) x speed, so a pod outbid or paused minutes
    after each start loses those minutes, not the whole overhead each time; on a GPU at speed 3, 10 minutes
    of overhead are 30 minutes of reference work (they were counted as 10: a job on a fast GPU was taken
    for done early). Of the interruptions beyond the runs, the first is the end of the job's newest run
    when no poll sees it RUNNING any more (it loses that run's work, up to the overhead); any other is a
    run no poll saw, whose work is not known, and loses the whole overhead.

    Spend, hours and runs are sums over consecutive observation pairs, so they are kept per pod up to
    the second-newest observation (job state `progress_cache`, with the restart losses of the pod's
    ended runs and the hours of its newest run) and only newer pairs are read at each tick: a tick stays
    as fast in a job's third month as in its first hour. `save=False` leaves the cache.
    """
    state = store.job_state(config.name) or {}
    cache: dict[str, list[Any]] = dict(state.get("progress_cache") or {})
    overhead = config.job.restart_overhead_hours
    spent = hours = lost = 0.0
    interruptions = runs = 0
    newest: tuple[_PodRuns, float] | None = None  # the pod of the job's newest run, and its speed
    for row in store.managed_pods(config.name):
        pod_id = row["pod_id"]
        speed = config.job.speed_of(row.get("gpu_type_id") or "")
        pod, anchor = _pod_totals(store, pod_id, cache.get(pod_id), overhead)
        if anchor is not None:
            cache[pod_id] = anchor
        spent += pod.spent
        hours += pod.hours * speed
        lost += pod.lost * speed
        if pod.runs:
            if newest is not None:  # (a job's pods run one after another: this run ended that pod's last)
                lost += min(overhead, newest[0].last) * newest[1]
            newest = (pod, speed)
        runs += pod.runs
        interruptions += int(row.get("interruptions") or 0)
    if save and cache != (state.get("progress_cache") or {}):
        store.save_job_state(config.name, progress_cache=cache)
    extra = max(runs - 1, interruptions) - max(runs - 1, 0)
    if extra > 0 and newest is not None and not newest[0].running:
        lost += min(overhead, newest[0].last) * newest[1]
        extra -= 1
    work = max(hours - lost - extra * overhead * (newest[1] if newest is not None else 1.0), 0.0)
    return work, spent, interruptions


@dataclass(frozen=True)
class _PodRuns:
    """One pod's sums: USD, running hours, runs started, the restart losses of its runs but the newest
    (running hours, each at most the cap), the running hours of its newest run, and whether its newest
    observation is RUNNING."""

    spent: float = 0.0
    hours: float = 0.0
    runs: int = 0
    lost: float = 0.0
    last: float = 0.0
    running: bool = False


def _pod_totals(store: Store, pod_id: str, cached: list[Any] | None, cap: float) -> tuple[_PodRuns, list[Any] | None]:
    """A pod's sums, each ended run losing at most `cap` running hours (restart_overhead), and
    the new cache entry [ts, USD, hours, runs, cap, lost, last] up to the second-newest observation (or
    the first one at its time). An entry of another cap (restart_overhead or speed changed) or of an
    older bidder (3 or 4 values) is not read: all observations are."""
    base = _PodRuns()
    observations = None
    if cached is not None and len(cached) == 7 and cached[4] == cap:
        since = parse_timestamp(cached[0])
        observations = store.observations(pod_id, since=since)
        if observations and observations[0]["ts"] == since:
            # The cached sums already hold the anchor's own first term: count only later pairs.
            base = _PodRuns(float(cached[1]) - estimate_spend(observations[:1]),
                            float(cached[2]) - running_hours(observations[:1]),
                            int(cached[3]), float(cached[5]), float(cached[6]))
        else:
            observations = None
    carried = observations is not None
    if observations is None:
        observations = store.observations(pod_id)
    pod = _fold_runs(base, observations, carried, cap)
    pod = replace(pod, running=bool(observations) and observations[-1].get("desired_status") == "RUNNING")
    if len(observations) < 2:
        return pod, None
    # The anchor is the first observation at its time: the next read starts at that time, so a poll at
    # the same second before the anchor (a Vast instance's exit, then its resume at once) would be read
    # again, its run start counted twice (work done 10 minutes short of the ledger's).
    a = len(observations) - 2
    while a > 0 and observations[a - 1]["ts"] == observations[a]["ts"]:
        a -= 1
    head = _fold_runs(base, observations[:a + 1], carried, cap)
    anchor = [to_iso(observations[a]["ts"]), head.spent, head.hours, head.runs, cap, head.lost, head.last]
    return pod, anchor


def _fold_runs(base: _PodRuns, observations: list[dict[str, Any]], carried: bool, cap: float) -> _PodRuns:
    """`base` (the cached sums, or nothing) with `observations` added; `carried`: they start at the
    cache's anchor, counted in `base` already."""
    before, lengths = run_lengths(observations, carried=carried)
    lost, last, runs = base.lost, base.last + before / 3600, base.runs
    for seconds in lengths:
        if runs:  # this run's start ended the one before: it lost its work, up to the cap
            lost += min(cap, last)
        last, runs = seconds / 3600, runs + 1
    return _PodRuns(base.spent + estimate_spend(observations), base.hours + running_hours(observations),
                    runs, lost, last)


def interruption_summary(last_status_change: str | None, seen: datetime | None = None) -> str:
    """"interrupted (outbid at 05:47)" from RunPod's "Exited by Runpod: outbid at <date>" (UTC); Vast's
    "Exited by Vast: outbid or displaced (<its status message>)" tells no time: "interrupted (outbid or
    displaced, seen at 05:50)", by the poll that saw it (`seen`), without the message (said twice, nested)."""
    text = last_status_change or ""
    why = text.split(":", 1)[1].split(" at ", 1)[0].split(" (", 1)[0].strip() if ":" in text else ""
    when = exit_time(text)
    at = f"at {when:%H:%M}" if when else f", seen at {seen:%H:%M}" if seen else ""
    inside = (why or "stopped by RunPod") + (f" {at}" if when else at)
    return f"interrupted ({inside})"


def window_start(state: Mapping[str, Any]) -> datetime | None:
    """When a job's relative deadline counts from: the first tick that saw it (`first_seen`), or for
    a job a tick ran before `first_seen` was kept, its first launch (`started`), which its deadline
    counted from then. None: no tick has seen it yet."""
    seen = state.get("first_seen")
    if isinstance(seen, str):
        return parse_timestamp(seen)
    return seen if seen is not None else state.get("started")


def other_config(state: Mapping[str, Any], config_path: str | None) -> str | None:
    """The other bidder.toml that runs a job on this database (its row's `config_file`), when that file
    is not `config_path`, is still there and still has the job (one that cannot be read counts as having
    it: a file half-written by an editor is no hand-over); else None."""
    owner = state.get("config_file")
    if not owner or (config_path is not None and owner == os.path.realpath(config_path)):
        return None
    if not os.path.exists(owner):
        return None
    try:
        return str(owner) if state.get("name") in config_job_names(owner) else None
    except ConfigError:
        return str(owner)


def reopen_stopped_pod(store: Store, name: str) -> str | None:
    """For `bidder jobs start`: the job's newest pod, if it was stopped (by `bidder stop`, outside
    bidder, or at the budget; not retired, not terminated), is the job's pod again, so the next tick
    resumes it where its volume and work are (podResume / podBidResume) instead of renting another.
    Returns its id, or None when there is none to resume."""
    pods = store.managed_pods(name)
    if not pods or pods[-1].get("state") != "stopped":
        return None
    store.set_pod_state(pods[-1]["pod_id"], state="active", ended=None)
    return str(pods[-1]["pod_id"])


class _Tick:
    def __init__(self, client: RunPodClient | None, store: Store, config: Config, now: datetime, ex: Executor,
                 others: dict[str, Executor] | None = None) -> None:
        self.client, self.store, self.config, self.now, self.ex = client, store, config, now, ex
        #: One executor per market (same store and event log): RunPod's is `ex`, Vast's when configured.
        self.exs: dict[str, Executor] = {ex.market: ex, **(others or {})}
        self.report = TickReport(now)
        self.listing: list[Pod] = []
        self.listings: dict[str, list[Pod]] = {}
        self.outcomes: dict[str, str] = {}
        self.seen: dict[str, dict[str, Any]] = {}   # each job's state as this tick first read it
        self.overruled: set[str] = set()             # jobs the user stopped while this tick acted
        # False when the listing left out a pod the ledger has active: its absences prove nothing.
        self.listing_trusted = True
        self.unknown: dict[str, str] = {}  # job -> why one of its pods is in an unknown state
        self.unreadable: dict[str, str] = {}  # market -> why its pod list could not be read this tick
        self.runpod_notes: dict[str, str] = {}  # job -> why it is planned on RunPod only (`keep_on_runpod`)
        self.runs_without: set[str] = set()  # jobs on Vast whose RunPod-only settings are left out
        self.current: str | None = None  # the job being handled
        self.hopeless: dict[str, str] = {}  # job -> why only a change of the job can make it feasible
        self.infeasible: set[str] = set()  # jobs whose last decision this tick found no candidate at all
        self.decided: set[str] = set()  # jobs the optimizer decided for this tick
        self.launches: dict[str, str] = {}  # job -> why its name is a `bidder launch`'s that still has a pod
        self.claimed: dict[str, str] = {}  # job -> why another bidder.toml on this database runs it
        self.unchecked: dict[str, str] = {}  # job -> why its GPU names cannot be checked yet (`resolve_gpus`)
        self.collect_errors: dict[str, str] = {}  # market -> why its prices were not collected this tick
        self.would_send: dict[str, list[str]] = {}  # (dry run) job -> the stops it would send, request and all
        self.dry_progress: dict[str, tuple[float, float]] = {}  # (dry run) job -> (work, spent) this tick read
        self.gpu_words: dict[str, tuple[str, ...]] = {}  # job -> its `gpu` names as bidder.toml writes them

    def ex_for(self, market: str | None) -> Executor:
        """The executor acting on `market` (a pod row's market, a decision's market); never another
        market's (`handle` leaves a job whose pod is on a market this tick cannot reach)."""
        ex = self.exs.get(market or "runpod")
        if ex is None:
            raise ConfigError(f"market {market or 'runpod'} is not configured for this tick", key="market")
        return ex

    # -- the cycle ---------------------------------------------------------------------------------
    def run(self) -> TickReport:
        self.collect(self.config.collect_interval)
        self.alive()
        self.resolve_gpus()
        self.keep_on_runpod()
        self.launch_names()
        self.other_configs()
        self.ex.recheck_spot(self.now)
        self.poll()
        self.alive()
        if self.needs_decision():  # decide on fresh prices: an outbid pod means the floor just moved
            self.collect(DECISION_FRESHNESS)
            self.alive()
        for job in self.config.jobs.values():
            start = len(self.ex.log)  # (every market's executor writes to this one log)
            unsent: tuple[str, ...] = ()
            self.current = job.name
            try:
                report = self.handle_job(job)
                report = self._say_runpod_only(job, report)
                report = self._say_several(job, report)
            except ApiError as exc:
                # One job's failed call (a stop the API refused) must not leave the others unattended.
                # What was sent is in the ledger; the next tick reads the pods afresh and goes on.
                message = f"this tick could not finish acting for the job ({exc}); the next tick looks again"
                self.ex.emit(self.now, "error", job=job.name, error=str(exc))
                report = self._report(job, "error", message)
                unsent = (str(exc),)  # (a read that failed before any call was sent: no call event says it)
            except ConfigError as exc:
                # A job this tick cannot run (its market has no key here): the other jobs still are.
                # (bidder.toml's own errors stopped the tick before any job: see load_config, resolve_gpus.)
                report = self._blocked(job, "error", self._market_missing(job) or str(exc))
            failed = _failed_calls(self.ex.log[start:]) or unsent
            self.report.jobs.append(replace(report, failed=failed))
            self._own(job)
            self.alive()
        known = set(self.config.jobs)
        if not self.ex.dry_run:
            for state in self.store.jobs():
                # A job taken out of bidder.toml is no longer run: its row said "running" for ever (the
                # report's job states) while its pod was reclaimed. Its figures stay as last counted.
                if (state["name"] not in known and state.get("state") not in (*_ENDED, "unmanaged")
                        and not self.store.is_launch(state["name"]) and not self._owned_elsewhere(state)):
                    self.store.save_job_state(state["name"], state="unmanaged",
                                              note=f"not in {self.config.path} since {to_iso(self.now)}")
        for row in self.store.managed_pods(states=["active"]):
            # A paused Vast instance counts too: it resumes by itself when its bid is the highest again,
            # and bills its disk meanwhile (a RunPod pod that exited waits for a new bid that never comes).
            what = left_billing(row)
            # (A `bidder launch` pod was never the tick's: the user started it by hand, to run until they stop it.)
            if row.get("job") not in known and what is not None and not self.store.is_launch(row.get("job") or "") \
                    and not self._owned_elsewhere(self.store.job_state(row.get("job") or "") or {}):
                running = row.get("desired_status") == "RUNNING"
                stop = f"bidder stop {row['pod_id']}" + ("" if running else " --terminate")
                self.ex.emit(self.now, "unmanaged", pod_id=row["pod_id"], job=row.get("job"),
                             message=f"pod {row['pod_id']} (job {row.get('job')}) {what}{'' if running else ','} but its job is not "
                                     f"in {self.config.path}: stop it with `{stop}`")
        self.report.events = list(self.ex.log)
        return self.report

    def alive(self) -> None:
        """Touch the tick lock's file: the next tick judges a held lock by its time (`bidder tick`'s
        STUCK_TICK_MINUTES), which then means no progress for that long, not a long tick: one of many
        jobs behind a slow API, moving all along, was reported stuck at 30 minutes."""
        with contextlib.suppress(OSError):  # (a courtesy to the next tick: never a reason to stop this one)
            os.utime(self.store.lock_path("tick"))

    def other_configs(self) -> None:
        """Two bidder.toml files on one database: each tick took the other's job of the same name for its
        own and moved its pod to its own GPU, a new pod every tick, and called the other's jobs
        unmanaged ("stop it"). Each job's row names the file that runs it (`config_file`, its real
        path); a job another file still holds (the file is there and has the job) is not run here, and
        says so. A file that moved, or dropped the job, hands it over to this one (`_own`)."""
        if self.config.path is None:
            return
        mine = os.path.realpath(self.config.path)
        for name in self.config.jobs:
            state = self.store.job_state(name) or {}
            owner = state.get("config_file")
            if owner and owner != mine and self._owned_elsewhere(state):
                self.claimed[name] = (f"job {name} is also in {owner}, whose ticks run it on this database: two "
                                      f"config files on one database would fight over its pod; give each its own "
                                      f"--db, or rename the job in one of them; nothing is done for it here")

    def _own(self, jc: JobConfig) -> None:
        """Write this bidder.toml's real path on the row of a job it ran (see `other_configs`)."""
        if self.config.path is None or self.ex.dry_run or jc.name in self.claimed:
            return
        mine = os.path.realpath(self.config.path)
        state = self.store.job_state(jc.name)
        if state is not None and state.get("config_file") != mine:
            self.store.save_job_state(jc.name, config_file=mine)

    def _owned_elsewhere(self, state: dict[str, Any]) -> bool:
        return other_config(state, self.config.path) is not None

    def resolve_gpus(self) -> None:
        """bidder.toml's GPU names resolved exactly as `--gpu` resolves them ("4090" -> the RunPod id);
        an unknown name is a ConfigError naming the job, with close matches. `speed` keys must be
        GPU type ids as written (a pod's type is looked up in it as it is): one that is not would
        leave its GPU at speed 1.0 without a word, so it is refused the same way."""
        known = self.store.gpu_type_names()
        # A job of one market resolves its names in that market's: RunPod's "NVIDIA RTX A6000" under market =
        # "vast" passed, and the job waited at every tick for a quote Vast never gives, exit 0.
        held = {m: {key[0] for key in self.store.markets(m)} for m in ("runpod", "vast")}
        jobs = {}
        where = f"{self.config.path}: " if self.config.path else ""
        for name, jc in self.config.jobs.items():
            try:
                check_gpu_ids([gpu for gpu, _ in jc.job.speed_factors], known)
            except ConfigError as exc:
                raise ConfigError(f"{where}[jobs.{name}] speed: {exc}", key="speed", path=self.config.path) from None
            market = (jc.job.market or "any").lower()
            names = known if market not in held else {i: n for i, n in known.items() if i in held[market]}
            if jc.job.gpu_types:
                self.gpu_words[name] = jc.job.gpu_types  # (as written: `_say_several` reads them)
                try:
                    ids = tuple(resolve_gpu_types(jc.job.gpu_types, names))
                except ConfigError as exc:
                    unchecked = self._unchecked(jc)
                    if unchecked is None:
                        raise ConfigError(f"{where}[jobs.{name}] gpu: {exc}", key="gpu",
                                          path=self.config.path) from None
                    self.unchecked[name] = unchecked  # the job waits for its market; the others run
                else:
                    jc = replace(jc, job=replace(jc.job, gpu_types=ids))
            jobs[name] = jc
        self.config = replace(self.config, jobs=jobs)

    def _unchecked(self, jc: JobConfig) -> str | None:
        """Why a job's GPU name that matches nothing stored may still be right (None: it is wrong): a
        market the job may run on has never been collected on this database, so its catalogue is not
        here. On a new database whose first ticks could not reach RunPod (no key, or it was down), a
        right name was refused as unknown, with Vast's name for the card as the "close match". (A job
        open to any market counts the markets this tick has keys for.)"""
        market = (jc.job.market or "any").lower()
        reachable = [m for m in ("runpod", "vast") if m in self.exs] if market == "any" else [market]
        markets = [m for m in reachable if self.store.last_collection_ts(market=m) is None]
        if not markets:
            return None
        missing = self._market_missing(jc)
        if missing is not None:
            return missing
        names = " or ".join(MARKET_NAMES.get(m, m) for m in markets)
        why = "; ".join(f"{MARKET_NAMES.get(m, m)}'s prices could not be collected now: {self.collect_errors[m]}"
                        for m in markets if m in self.collect_errors)
        return (f"its GPU names ({', '.join(repr(g) for g in jc.job.gpu_types)}) cannot be checked yet: this database "
                f"has no {names} GPU catalogue" + (f" ({why})" if why else "") +
                f"; the first tick that collects {names} prices checks them; nothing is rented for it")

    def keep_on_runpod(self) -> None:
        """A job open to any market that gives settings only RunPod honours (`bidder.jobs.RUNPOD_ONLY`; a
        Vast instance would run without them) is planned on RunPod alone, as `bidder launch` plans it. A
        tick that cannot reach RunPod leaves it on Vast, and its lines say what Vast does not get; so do
        those of a job of market vast that inherits such a setting from [defaults] (one given in its own
        table is refused when bidder.toml is read)."""
        jobs = {}
        for name, jc in self.config.jobs.items():
            given = runpod_only(jc.template)
            market = (jc.job.market or "any").lower()
            if given and market in ("any", "vast") and "vast" in self.exs:
                what = f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} RunPod's"
                without = f"a Vast instance runs without {'it' if len(given) == 1 else 'them'}"
                if market == "vast":
                    self.runpod_notes[name] = (f"{', '.join(given)}, from [defaults], {'is' if len(given) == 1 else 'are'}"
                                               f" RunPod's, and market = 'vast': {without}")
                    self.runs_without.add(name)
                elif "runpod" in self.exs:
                    self.runpod_notes[name] = f"{what}: planned on RunPod only"
                    jc = replace(jc, job=replace(jc.job, market="runpod"))
                else:
                    self.runpod_notes[name] = (f"{what}, and this tick cannot reach RunPod (no RUNPOD_API_KEY): "
                                               f"{without}")
                    self.runs_without.add(name)
            jobs[name] = jc
        self.config = replace(self.config, jobs=jobs)

    def launch_names(self) -> None:
        """A job whose name is a `bidder launch`'s (the ledger row is shared: `launch --name X` before
        [jobs.X] was written) never takes the launch's pod for its own: while the launch has a pod the
        ledger watches, the job is not run (`launches`). Once that pod is stopped or gone, the name is the
        job's: the launch's marks on the row (its `launched_by`, the hold `bidder stop` left, its pod and
        start) are cleared, so the job starts afresh with a pod of its own, never resuming the launch's,
        and the launch's pods move to a launch of their own, "NAME (launch)": their spend and hours were
        the launch's, not the job's budget and work (counted as the job's, a job could take the
        launch's hours for work it had done, and finish before doing it)."""
        where = self.config.path or "bidder.toml"
        for name, jc in self.config.jobs.items():
            prefix = jc.template.name_prefix
            if prefix != name and self.store.is_launch(prefix):
                # Pods named as a launch's (`launch --name bidder-x`, then [jobs.x]): each counts its own
                # attempts, so a create whose answer was lost could be found as the other's pod.
                self.launches[name] = (f"[jobs.{name}] names its pods {prefix}-ATTEMPT-LEDGERID, as `bidder launch "
                                       f"--name {prefix}` named its pods in this ledger: a create whose answer was "
                                       f"lost could be taken for the other's pod; give [jobs.{name}] a name = \"...\" "
                                       f"of its own in {where}; nothing is done for it")
        for name in self.config.jobs:
            state = self.store.job_state(name)
            if state is None or not self.store.is_launch(name, state):
                continue
            active = self.store.managed_pods(name, states=["active"])
            if active:
                ids = [row["pod_id"] for row in active]  # (launches under one name may have left several)
                stops = "; ".join(f"`bidder stop {pod_id}`" for pod_id in ids)
                self.launches[name] = (f"{name} is the name of a `bidder launch` whose "
                                       f"{'pod ' + ids[0] + ' is' if len(ids) == 1 else 'pods ' + ', '.join(ids) + ' are'}"
                                       f" still there: this job does not run until "
                                       f"{'that pod is' if len(ids) == 1 else 'they are'} stopped ({stops}) or the job "
                                       f"is renamed in {where}; nothing is done for it")
            elif not self.ex.dry_run:
                pods = self.store.managed_pods(name)
                # A create of the launch whose answer was lost goes with it: landing later, its pod is the
                # launch's (`Executor.adopt_launched`), never taken by the job for its own.
                lost = {k: state[k] for k in ("pending_name", "pending_since", "lost_names") if state.get(k)}
                if pods or lost:
                    own = f"{name} (launch)"
                    for row in pods:
                        self.store.set_pod_state(row["pod_id"], job=own)
                    self.store.mark_launch(own)
                    if lost:
                        self.store.save_job_state(own, **lost)
                self.store.save_job_state(name, launched_by=None, state=None, note=None, pod_id=None, started=None,
                                          first_seen=None,
                                          stop_intent=None, restop=None, progress_cache=None, pending_name=None,
                                          pending_since=None, lost_names=None, updated=self.now)

    def _say_runpod_only(self, jc: JobConfig, report: JobReport) -> JobReport:
        """A job kept on RunPod by `keep_on_runpod` says so whenever it was decided for: its line, and the
        note `bidder jobs` keeps. One left on Vast without RunPod's settings says it too while it has an
        instance there, whatever its line."""
        note = self.runpod_notes.get(jc.name)
        if note is None:
            return report
        on_vast = jc.name in self.runs_without and any(
            row.get("market") == "vast" for row in self.store.managed_pods(jc.name, states=["active"]))
        if jc.name not in self.decided and not on_vast:
            return report
        report = replace(report, message=f"{report.message} ({note})")
        self._save(jc, note=report.message)
        return report

    def _say_several(self, jc: JobConfig, report: JobReport) -> JobReport:
        """A `gpu` name that names several GPU types by part ("3090": the RTX 3090 and the 3090 Ti) is said
        on the job's line once, as `bidder launch` says it, not at every tick: the note is kept in the job's
        state (`gpu_note`) and said again only when it changes (a new type in the catalogue, a new name)."""
        words = self.gpu_words.get(jc.name)
        if not words or jc.name in self.claimed or jc.name in self.launches:  # (not this file's row to write)
            return report
        market = (jc.job.market or "any").lower()  # (RunPod alone for a job `keep_on_runpod` kept there)
        known = self.store.gpu_type_names()
        if market in ("runpod", "vast"):
            held = {key[0] for key in self.store.markets(market)}
            known = {i: n for i, n in known.items() if i in held}
        note = "; ".join(several_named(words, known)) or None
        if note == (self.store.job_state(jc.name) or {}).get("gpu_note"):
            return report
        self._save(jc, gpu_note=note)
        return report if note is None else replace(report, message=f"{report.message}; note: {note}")

    def needs_decision(self) -> bool:
        """True when some job will decide this cycle: a pod stopped without bidder, or no pod yet."""
        if any(o in ("interrupted", "exited") for o in self.outcomes.values()):
            return True
        for name in self.config.jobs:
            state = (self.store.job_state(name) or {}).get("state")
            if state not in ("finished", "held", "budget_stopped") and not self.store.managed_pods(name, states=["active"]):
                return True
        return False

    def collect(self, max_age: timedelta) -> None:
        lasts = [self.store.last_collection_ts(market=m) for m in self.exs]  # the markets this tick collects
        if all(last is not None and self.now - last < max_age for last in lasts):
            return
        counts = sorted({1} | {j.job.gpu_count for j in self.config.jobs.values()})
        sources: list[object] = [RunPodSource(self.client, counts)] if "runpod" in self.exs else []
        vast = self.exs.get("vast")
        if vast is not None:  # one cycle, one request per market, one transaction
            sources.append(VastSource(vast.client.client, vast.client.filters, self.config.vast_offers_days))
        try:
            result = collect_markets(sources, self.store, now=self.now, prices_days=self.config.prices_days)
        except (AuthError, MalformedAnswer, TransportError) as exc:
            if not isinstance(exc, MalformedAnswer):
                raise  # the API cannot be reached (or refuses the key): the tick cannot run (exit 1)
            result, failed = None, self._failed_collections(exc)
        except ApiError as exc:  # every market answered wrongly (their error rows are stored): the pods
            result, failed = None, self._failed_collections(exc)  # still need looking after: the tick goes on
        else:
            failed = {part.market: part.error for part in result.by_market if part.error is not None}
        for market in self.exs:
            if market in failed:
                self._price_failure(market, failed[market])
                if failed[market].startswith(f"{AuthError.__name__}:"):  # (`describe`'s line of the error)
                    self.report.refused_keys[market] = failed[market]
                elif failed[market].startswith(f"{TransportError.__name__}:") and any(
                        (j.job.market or "any").lower() in (market, "any") for j in self.config.jobs.values()):
                    self.report.unreachable[market] = failed[market]  # (a job may run there: it must be seen)
            elif result is not None:
                self.report.price_failures.pop(market, None)  # a retry in this tick got them
        if result is None:
            return
        self.report.collected = True
        self.report.collected_markets = tuple(m for m in self.exs if m not in failed)
        self.ex.emit(self.now, "collect", quotes=result.quotes)
        quotes = self.store.latest_quotes("runpod") if "runpod" in self.exs else []  # spot's end is RunPod's alone
        if (not self.ex.spot_blocked() and any(q.uninterruptable_price for q in quotes)
                and not any(q.minimum_bid_price for q in quotes)):
            # RunPod's other sign of the end of spot: on-demand prices, and no spot floor on any type.
            self.ex.mark_spot_unsupported(self.now, reason="the newest snapshot: no GPU type shows a spot price")

    def _failed_collections(self, exc: ApiError) -> dict[str, str]:
        """Each market's error row of this cycle (collect_markets raised the first market's error)."""
        ts = self.now.astimezone(UTC).replace(microsecond=0)
        rows = [r for r in self.store.collections(limit=2 * len(self.exs)) if r["ts"] == ts and r.get("error")]
        failed = {str(r["market"]): str(r["error"]) for r in reversed(rows)}  # the newest row of a market wins
        return {m: failed.get(m) or describe(exc) for m in self.exs}

    def _price_failure(self, market: str, error: str) -> None:
        """Say (in the report and the log) that `market`'s prices were not collected, and on what the jobs
        are decided instead: a failure in the `collections` table alone goes unseen."""
        last = self.store.last_collection_ts(market=market)
        fallback = f"deciding on the snapshot of {to_iso(last)}" if last is not None else "no earlier snapshot to decide on"
        message = f"{MARKET_NAMES.get(market, market)} prices not collected: {error}; {fallback}"
        self.collect_errors[market] = error
        self.report.price_failures[market] = message
        self.ex.emit(self.now, "collect_failed", market=market, error=error, message=message)

    def poll(self) -> None:
        """One listing per market with a managed pod or a create awaiting its answer."""
        active = self.store.managed_pods(states=["active"])
        # Pods that bill without being a job's pod: one to retire (`retiring`), and a stopped Vast
        # instance, whose disk bills storage until it is destroyed. Their cost goes into the ledger.
        kept = [r for r in self.store.managed_pods(states=["retiring", "stopped"])
                if r.get("state") == "retiring" or r.get("market") == "vast"]
        # Any job that ever created a pod: a create that lands late is found by its name in the listing.
        created = any((self.store.job_state(name) or {}).get("attempts") for name in self.config.jobs)
        # A launch's late create is looked for too, and one of a job renamed or removed from bidder.toml.
        created = created or bool(Executor.lost_launch_creates(self.store, jobs=self.config.jobs))
        if not active and not created and not kept:
            return
        for market, ex in self.exs.items():
            rows = [r for r in active if (r.get("market") or "runpod") == market]
            billed = [r for r in kept if (r.get("market") or "runpod") == market]
            if not rows and not created and not billed:
                continue
            try:
                listing = ex.client.pods()
            except ApiError as exc:
                # One market's failed listing leaves its jobs unknown this tick; the other market's jobs
                # (a budget to enforce, an interruption to answer) are still handled.
                if len(self.exs) == 1:
                    raise
                if isinstance(exc, AuthError):
                    self.report.refused_keys[market] = describe(exc)
                self.unreadable[market] = f"the {market} pod list could not be read ({exc})"
                ex.emit(self.now, "unknown", message=self.unreadable[market], error=str(exc))
                continue
            self.listings[market] = listing
            if market == self.ex.market:
                self.listing = listing
            if not self.ex.dry_run:  # a launch's create that landed after it said "nothing launched": watched
                ex.adopt_launched(listing, self.now, jobs=self.config.jobs)  # (adopting it polls it; so does the next tick's listing)
            by_id = {p.id: p for p in listing}
            # A RunPod pod kept stopped (a held or finished job's) may be restarted outside bidder: read in
            # this listing, polled only when it runs (or ran at the last poll), so it never bills unbooked.
            for row in self.store.managed_pods(states=["stopped"]):
                if (row.get("market") or "runpod") != market or market == "vast":
                    continue
                again = by_id.get(row["pod_id"])
                if again is None and row.get("desired_status") == "RUNNING":
                    billed.append(row)  # (left out while it ran: asked for by id below, as a kept pod is)
                elif again is not None and "RUNNING" in (again.desired_status, row.get("desired_status")):
                    ex.bill_kept(row, again, self.now)
            for row in billed:
                kept_pod = by_id.get(row["pod_id"])
                if kept_pod is None:
                    # Left out of the listing: no proof either way, so asked for by id. (A kept instance
                    # destroyed in Vast's console was taken for there, its storage billed on in `report`.)
                    try:
                        kept_pod = ex.confirm(row["pod_id"])
                    except ApiError:
                        continue  # unknown this tick: the next one asks again
                    if kept_pod is None:  # gone: booked and marked as any pod ended outside bidder
                        ex.observe(row, None, self.now)
                        continue
                ex.bill_kept(row, kept_pod, self.now)
            rows += self._reappeared(market, by_id)
            for row in rows:
                pod = by_id.get(row["pod_id"])
                if pod is None:
                    # A listing without a pod bidder did not end is no proof that it ended: ask for it.
                    self.listing_trusted = False
                    try:
                        pod = ex.confirm(row["pod_id"])
                    except ApiError as exc:
                        self.outcomes[row["pod_id"]] = "unknown"
                        self.unknown[row.get("job") or ""] = (f"pod {row['pod_id']} is missing from the pod list and "
                                                              f"could not be looked up ({exc}); nothing is done for "
                                                              "this job until its state is known")
                        ex.emit(self.now, "unknown", job=row.get("job"), pod_id=row["pod_id"], error=str(exc))
                        continue
                outcome = ex.observe(row, pod, self.now)
                self.outcomes[row["pod_id"]] = outcome
                if outcome == "stopped_by_bidder":
                    self._own_stop_done(row)
                if outcome == "running" and market == "vast" and row.get("desired_status") != "RUNNING":
                    ex.emit(self.now, "resumed", job=row.get("job"), pod_id=row["pod_id"],
                            message="resumed by itself: its bid is the highest again")
                if outcome == "interrupted" and pod is not None:
                    ex.emit(self.now, "interrupted", job=row.get("job"), pod_id=row["pod_id"],
                            message=pod.last_status_change, summary=interruption_summary(pod.last_status_change, self.now))

    def _reappeared(self, market: str, by_id: dict[str, Pod]) -> list[dict[str, Any]]:
        """Pods the ledger took for gone that this listing shows alive (a wrong answer is no proof that
        a pod ended): watched again, and a job held for their loss goes on with them."""
        back = []
        for row in self.store.managed_pods(states=["gone"]):
            pod = by_id.get(row["pod_id"])
            if (row.get("market") or "runpod") != market or pod is None or pod.desired_status == "TERMINATED" \
                    or self.ex.dry_run:
                continue
            self.store.set_pod_state(row["pod_id"], state="active", ended=None)
            message = f"pod {row['pod_id']} taken for gone is listed again ({pod.desired_status}): watched again"
            job = row.get("job")
            held = self.store.job_state(job) or {} if job else {}
            if held.get("state") == "held" and held.get("pod_id") == row["pod_id"]:
                self.store.save_job_state(job, state="running", note=message, updated=self.now)
            self.exs[market].emit(self.now, "reappeared", job=job, pod_id=row["pod_id"], message=message)
            back.append(self.store.pod(row["pod_id"]) or row)
        return back

    def _blind_spot(self, jc: JobConfig, state: dict[str, Any]) -> str | None:
        """Why this job cannot be acted on this tick (None: it can): a market whose pod list could not be
        read holds one of its pods, or a create of it awaiting its answer. (A create landing late there
        after its grace is found by its name at the next listing, as every tick looks for strays.)"""
        if not self.unreadable:
            return None
        markets = {r.get("market") or "runpod" for r in self.store.managed_pods(jc.name, states=["active"])}
        if state.get("pending_name"):
            markets.add(state.get("pending_market") or "runpod")
        blind = sorted(markets & set(self.unreadable))
        return self.unreadable[blind[0]] if blind else None

    def _own_stop_done(self, row: dict[str, Any]) -> None:
        """bidder's own stop of this pod went through unconfirmed: the job ends where that stop meant
        it to (its `stop_intent`, e.g. budget_stopped), never `held` as after a stop by the user."""
        name = row.get("job")
        if not name or self.ex.dry_run:
            return
        intent = stop_intent(self.store, name, row["pod_id"])
        if intent:
            self.store.save_job_state(name, **(intent.get("job") or {}), stop_intent=None, updated=self.now)

    # -- one job -----------------------------------------------------------------------------------
    def handle_job(self, jc: JobConfig) -> JobReport:
        """`handle`, then: if the user stopped the job meanwhile (another process, not under the tick's
        lock), their decision stands: nothing this tick saved undoes it, and a pod it started is stopped."""
        report = self.handle(jc)
        late = self._late(jc, report)
        if late is not None:  # its pod runs on, but the user must hear of it (cron mails a non-zero exit)
            report = replace(report, message=f"{report.message}; {late}", late=late)
        risk, note = self._at_risk(jc, report)
        if risk is not None:  # said while raising max_price or the budget can still save the deadline
            report = replace(report, message=f"{report.message}; {risk}", at_risk=risk)
        elif note is not None:  # spot can still save it: said on the line, no alarm
            report = replace(report, message=f"{report.message}; {note}")
        if self.ex.dry_run:
            would = self.would_send.get(jc.name)
            if not would:
                return report
            # What it would send is what the line says first: nothing was stopped.
            head = report.message if report.state == "dry_run" or report.message.startswith(f"{report.state}: ") \
                else f"{report.state}: {report.message}"
            return replace(report, state="dry_run", message=f"{'; '.join(would)}; then {head}")
        if jc.name not in self.overruled:
            return report
        current = self.store.job_state(jc.name) or {}
        for row in self.store.managed_pods(jc.name):
            if row.get("desired_status") == "RUNNING" and row.get("state") in ("active", "stopped"):
                self._restop(jc, row)
        current = self.store.job_state(jc.name) or {}
        message = current.get("note") or f"{current.get('state')}: stopped by the user during this tick"
        self.ex.emit(self.now, "overruled", job=jc.name, message="the user stopped the job while this tick acted; "
                     "their stop stands")
        return self._report(jc, str(current.get("state") or "held"), message)

    def _restop(self, jc: JobConfig, row: dict[str, Any]) -> None:
        """Stop a pod this tick (re)started after the user stopped its job. Until that stop is
        confirmed the pod stays watched (`active`) and named in `restop`, which the next tick retries."""
        self.store.set_pod_state(row["pod_id"], state="active")
        self.store.save_job_state(jc.name, restop=row["pod_id"])
        try:
            self.ex_for(row.get("market")).stop_pod(self.store.pod(row["pod_id"]) or row, self.now,
                                                    reason="the user stopped the job while a tick acted on it",
                                                    state="stopped")
        except ApiError as exc:
            log.warning("job %s: pod %s could not be stopped again (%s); the next tick tries again",
                        jc.name, row["pod_id"], exc)
            return
        self.store.save_job_state(jc.name, restop=None)

    def _intervened(self, jc: JobConfig, current: dict[str, Any]) -> bool:
        """True when the job's stored state says the user stopped it after this tick first read it."""
        seen = self.seen.get(jc.name) or {}
        if current.get("stop_requested") and not seen.get("stop_requested"):
            return True
        return current.get("state") in ("held", "finished") and current.get("state") != seen.get("state")

    def handle(self, jc: JobConfig) -> JobReport:
        intent = {} if self.ex.dry_run else stop_intent(self.store, jc.name)
        state = self.store.job_state(jc.name) or {}
        if intent:
            stopped = self.store.pod(intent.get("pod_id") or "")
            others = [r for r in self.store.managed_pods(jc.name, states=["active"]) if r["pod_id"] != intent.get("pod_id")]
            if others or stopped is None:
                # Stale: the job runs another pod now (a stop that failed, then a move), so nothing of
                # this intent can still be in flight; applied, it held a job whose new pod ran unchecked.
                self.store.save_job_state(jc.name, stop_intent=None)
            elif stopped.get("state") in ("stopped", "terminated") and state.get("state") not in _ENDED:
                # A stop that went through (its pod stopped, the job has no other) whose command died
                # before it wrote the job's state (`bidder stop` killed at its last write): the job ends
                # where the stop meant it to, never launched again (a Vast job rented a second instance).
                self.store.save_job_state(jc.name, **(intent.get("job") or {}), stop_intent=None, updated=self.now)
            state = self.store.job_state(jc.name) or {}
        self.seen[jc.name] = state
        if state.get("outside_end") and state.get("state") in _ENDED and not self.ex.dry_run:
            self.store.save_job_state(jc.name, outside_end=None)  # (already ended or held: nothing to hold)
            state = self.store.job_state(jc.name) or {}
        if jc.name in self.claimed:  # another bidder.toml's job of the same name: never its pod
            pods = self.store.managed_pods(jc.name, states=["active"])
            return self._blocked(jc, "error", self.claimed[jc.name], pods[-1]["pod_id"] if pods else None)
        if jc.name in self.launches:  # never the job's pod: a launch's, which the user runs by hand
            pods = self.store.managed_pods(jc.name, states=["active"])
            return self._blocked(jc, "error", self.launches[jc.name], pods[-1]["pod_id"] if pods else None)
        if jc.name in self.unchecked:  # its GPU names wait for its market's catalogue
            pods = self.store.managed_pods(jc.name, states=["active"])
            return self._blocked(jc, "error", self.unchecked[jc.name], pods[-1]["pod_id"] if pods else None)
        if state.get("state") == "held":
            restop = None if self.ex.dry_run else self.store.pod(state.get("restop") or "")
            if restop is not None and restop.get("state") == "active" and restop.get("desired_status") == "RUNNING":
                self._restop(jc, restop)  # a stop that the user asked for and a tick's resume undid
            elif restop is not None:
                self.store.save_job_state(jc.name, restop=None)
            if not self.ex.dry_run:  # even a held job's late creates are watched, and retired
                for market, ex in self.exs.items():
                    for stray in ex.strays(jc, self.listings.get(market, []), include_pending=True,
                                           now=self.now):
                        ex.take_stray(jc, stray, self.now, keep=False)
            self._progress(jc)  # what its pods cost up to their stop, read since: the job's line says it
            note = state.get("note") or "held: `bidder jobs start` to continue"
            for run in self.store.managed_pods(jc.name, states=["stopped"]):
                if run.get("desired_status") == "RUNNING":
                    # Held means the tick neither restarts nor stops it: the user's pod runs, watched and booked.
                    rate = (self.store.last_observation(run["pod_id"]) or {}).get("cost_per_hr") or 0.0
                    note += (f"; its pod {run['pod_id']} was restarted outside bidder and runs at ${rate:.3f}/h, "
                             f"not run by the tick: `bidder jobs start {jc.name}` hands it back (budget, hours), "
                             f"`bidder stop {run['pod_id']}` stops it")
            return self._report(jc, "held", note)
        if jc.name in self.unknown:  # never launch (or act) for a job while one of its pods is unknown
            return replace(self._report(jc, "unknown", self.unknown[jc.name]), unknown=self.unknown[jc.name])
        blind = self._blind_spot(jc, state)
        if blind is not None:  # its pod runs unwatched (no budget, no hours kept): exit non-zero, so cron mails
            # Unknown, not blocked: nothing the user must change, the next tick reads the list again.
            why = f"{blind}: nothing is done for this job until it can be"
            return replace(self._report(jc, "unknown", why), unknown=why)
        if not self.ex.dry_run:
            for unwanted in self.store.managed_pods(jc.name, states=["retiring"]):
                # A pod the job did not want whose destroy failed: ended before anything else is done.
                failed = self._retire(jc, unwanted, f"not wanted: {unwanted.get('note') or 'see the ledger'}",
                                      terminate=True)
                if failed is not None:
                    return self._report(jc, "unknown", failed, unwanted["pod_id"])
        if state.get("pending_name") and not self.listing_trusted:
            return self._report(jc, "unknown", f"the pod list contradicts the ledger; a pod named "
                                               f"{state['pending_name']} may exist: nothing is created this tick")
        # A job the user or its budget ended takes no pod from a create that lands late: it is retired.
        ended = state.get("state") in ("finished", "budget_stopped") or bool(state.get("stop_requested"))
        # (A dry run too, on its scratch copy: it previewed a second pod while the real tick waited for this one.)
        if state.get("pending_name"):
            # A create whose answer never came: before anything else, the pod is found by its name.
            market = state.get("pending_market") or "runpod"
            if market not in self.exs:  # never create again while a create on an unreachable market may land
                return self._blocked(jc, "unknown", f"a create on {market} named {state['pending_name']} awaits its "
                                                    f"answer, and this tick cannot reach {market}: set "
                                                    f"{_KEYS.get(market, 'its key')}; nothing is created")
            self.ex_for(market).adopt_pending(jc, self.listings.get(market, []), self.now, keep=not ended)
        for market, ex in self.exs.items():
            for stray in ex.strays(jc, self.listings.get(market, []), now=self.now):
                # A create that landed after bidder stopped looking: watched from now on, never left running.
                keep = (not ended and not self.store.managed_pods(jc.name, states=["active"])
                        and not ex.pending(jc))
                ex.take_stray(jc, stray, self.now, keep=keep)
        rows = self.store.managed_pods(jc.name, states=["active"])
        unreachable = sorted({r.get("market") or "runpod" for r in rows} - set(self.exs))
        if unreachable:  # a pod on a market this tick has no key for: nothing is known of it, nothing is done
            why = (f"its pod is on {unreachable[0]}, which this tick cannot reach: set "
                   f"{_KEYS.get(unreachable[0], 'its key')}; nothing is done for it (the pod is left as it is)")
            return self._blocked(jc, "unknown", why, rows[-1]["pod_id"])
        row = rows[-1] if rows else None
        for extra in rows[:-1]:  # never two pods for one job: keep the newest
            failed = self._retire(jc, extra, f"the job moved to pod {rows[-1]['pod_id']}",
                                  terminate=_ends_for_good(jc, extra))
            if failed is not None:
                return self._report(jc, str(state.get("state") or "unknown"), f"two pods: {failed}", extra["pod_id"])
        work, spent, interruptions = self._progress(jc)
        # A relative deadline counts from the first tick that saw the job, not from its first launch:
        # counted from a launch, a job whose plan waits had the whole window again at every tick.
        seen = window_start(state) or self.now
        if state.get("first_seen") is None and not self.ex.dry_run:
            self.store.save_job_state(jc.name, first_seen=seen)
        # The interruption budget's window too (tolerance x days from there to the deadline), as a backtest
        # counts it from the window's start: from the first launch, a job that waited a day before it
        # launched had a day less of budget, and none at all (the tolerance a day, unbudgeted) before.
        started = seen
        job = jc.job_spec(seen)
        if state.get("state") == "finished":
            if row is not None:
                self._finish(jc, row, "finished earlier")
            note = state.get("note") or "finished"
            if note.startswith("work done:") and job.work_hours is not None and work < job.work_hours - 1e-9:
                # `hours` raised after it finished: said, or the line kept the old figure beside `jobs`' new one.
                note += (f"; bidder.toml now asks {job.work_hours:g} h, but a finished job is not run again: give it "
                         "a new name to run more")
            elif note.startswith("work done:") and job.work_hours is None:
                note += ("; bidder.toml now keeps it running, but a finished job is not run again: give it a new "
                         "name to run it as a service")
            if jc.on_finish == "terminate":
                # on_finish set to "terminate" after it finished (its pod kept stopped, a Vast disk billing on):
                # an edit holds from the next tick on.
                for kept in self.store.managed_pods(jc.name, states=["stopped"]):
                    if kept.get("desired_status") != "TERMINATED":
                        self._stop(jc, kept, reason='on_finish = "terminate"', terminate=True)
                        note += (f"; pod {kept['pod_id']} {'would be ' if self.ex.dry_run else ''}deleted "
                                 '(on_finish = "terminate")')
            return self._finished(jc, note, spent)
        reason = None
        if state.get("stop_requested"):
            reason = "stopped by `bidder jobs stop`"
        elif job.work_hours is not None and work >= job.work_hours - 1e-9:
            reason = f"work done: {work:.2f} of {job.work_hours:g} h"
        if reason is not None:
            if row is not None:
                self._finish(jc, row, reason)
            self._save(jc, state="finished", finished=self.now, note=reason, stop_requested=None)
            return self._finished(jc, reason, spent)
        policy = jc.policy
        if state.get("state") == "budget_stopped" and (policy.budget or 0) <= float(state.get("budget_at_stop") or 0):
            # The note is the stop's; the spend is today's (a kept Vast instance bills storage on).
            over = spent > (policy.budget or 0) + 1e-9
            # Only a kept Vast instance bills on (its disk, by the hour): a RunPod pod's spend stopped with it,
            # and an overrun there is a budget lowered under what was already spent, not storage.
            kept = [r for r in self.store.managed_pods(jc.name, states=["active", "stopped", "retiring"])
                    if r.get("market") == "vast" and r.get("desired_status") != "TERMINATED"]
            why = " (over the budget: its kept instance bills storage)" if over and kept else \
                " (over the budget: it was set under what was already spent)" if over else ""
            report = self._report(jc, "budget_stopped", f"{state.get('note') or 'stopped at its budget'}; spent "
                                  f"${spent:.2f} so far{why}")
            if over and kept:  # (once deleted, nothing bills on: the overrun is history)
                report = replace(report, over_budget=(
                    f"job {jc.name} has spent ${spent:.2f}, over its budget of ${policy.budget or 0:.2f}, and its kept "
                    f"instance's storage bills on: `bidder stop --job {jc.name} --terminate` deletes it (and its disk)"))
            return report
        pending = self.ex.pending(jc)
        if pending is not None and (row is None or row.get("desired_status") != "RUNNING"):
            # Its create may still land: no launch, resume or move until it is found or its grace ends.
            return self._wait(jc, f"the create of {pending} got no answer and may still land: nothing else is "
                                  f"rented for this job until it is found (or {format_duration(CREATE_GRACE.total_seconds())} "
                                  "pass)", row["pod_id"] if row else None)
        if not self.ex.dry_run and self._intervened(jc, self.store.job_state(jc.name) or {}):
            self.overruled.add(jc.name)  # re-read before acting: the user's stop came in meanwhile
            return self._report(jc, "held", "stopped by the user during this tick")
        outside = state.get("outside_end")
        if outside:  # the user stopped or terminated its pod outside bidder, seen by any poll since
            return self._held_outside(jc, str(outside.get("pod_id")), str(outside.get("what")))
        if row is None and state.get("state") == "budget_stopped":
            # Its budget was raised: the job goes on on its own pod, where its volume and work are (as
            # `bidder jobs start` does), not on a new one with the stopped one left behind.
            row = self._reopened(jc)
        if row is None:
            # A pod found gone this tick (terminated outside bidder) is no longer active: held below,
            # never relaunched against the user's wish.
            gone = [pid for pid, what in self.outcomes.items() if what == "gone"
                    and (self.store.pod(pid) or {}).get("job") == jc.name]
            row = self.store.pod(gone[-1]) if gone else None
        if row is None:
            missing = self._market_missing(jc)
            if missing is not None:  # nothing to decide on: say what to set, and the other jobs go on
                return self._blocked(jc, "error", missing)
            return self._launch(jc, job, policy, JobProgress(work_done_hours=work, spent=spent,
                                                             interruptions=interruptions, started=started), spent)
        outcome = self.outcomes.get(row["pod_id"], "running" if row.get("desired_status") == "RUNNING" else "exited")
        if outcome in ("gone", "stopped_outside"):  # (a dry run's: the real poll writes `outside_end`)
            return self._held_outside(jc, row["pod_id"], "terminated" if outcome == "gone" else "stopped")
        if outcome == "running":
            return self._running(jc, job, row, policy, spent, work, interruptions, started)
        if row["kind"] == "spot" and (row.get("market") or "runpod") != "vast":
            # A stopped RunPod spot pod is decided as a fresh start, as the backtest decides after an
            # interruption: resumed at any bid it restarts (podBidResume on the same pod, its volume with it).
            # In the decision, its old bid read as a pod kept at no restart, and ticks bid it back in at the
            # bid just outbid: on the AWS trace 1.42x the optimum against 1.31x (spot-redecided.md).
            progress = JobProgress(work_done_hours=work, spent=spent, interruptions=interruptions, started=started)
        else:
            # A paused Vast instance resumes by itself at its standing bid (kept while the plan takes it);
            # a stopped on-demand pod resumes at its own rate (Vast) or the quote.
            progress = JobProgress(work_done_hours=work, spent=spent, interruptions=interruptions, started=started,
                                   current_gpu_type_id=row["gpu_type_id"], current_cloud=row["cloud"],
                                   current_action="spot" if row["kind"] == "spot" else "on_demand",
                                   current_bid_per_gpu=row.get("bid_per_gpu"),
                                   current_market=row.get("market") or "runpod",
                                   current_running=False, current_price_per_gpu=self._stopped_rate(row))
        return self._restart(jc, job, policy, row, progress, state)

    def _finished(self, jc: JobConfig, message: str, spent: float) -> JobReport:
        """A finished job's report: what its kept pods bill (`_say_kept`, with when their storage takes the
        spend over the budget); once it has, an error at every tick (exit 1), as a job stopped at its budget
        gets: it returned before that check, and its kept disk billed on past the budget, exit 0."""
        budget = None if self.would_send.get(jc.name) else kept_budget(self.store, jc.name, spent, jc.policy.budget)
        if budget is not None and budget[1] is not None:
            report = self._report(jc, "finished", f"{self._say_kept(jc, message)}; over its budget: its kept "
                                                  "instance bills storage")
            return replace(report, over_budget=budget[1])
        return self._report(jc, "finished", self._say_kept(jc, message, budget[0] if budget else None))

    def _say_kept(self, jc: JobConfig, message: str, then: str | None = None) -> str:
        """A finished job's line, with what its kept pods bill (`kept_billing`; `then`: when that passes
        the budget) when that is news: the first time, when the pods change, and once a day (job state
        `kept_said`), not at every tick."""
        kept = kept_billing(self.store, jc.name)
        if self.would_send.get(jc.name):  # (a dry run that would stop or delete them: not kept yet, or not for long)
            return message
        said = (self.store.job_state(jc.name) or {}).get("kept_said") or {}
        if kept is None:
            if said:
                self._save(jc, kept_said=None)
            return message
        pods, at = kept[0], said.get("at")
        if said.get("pods") == pods and at and self.now - parse_timestamp(at) < KEPT_NOTE_EVERY:
            return message
        self._save(jc, kept_said={"pods": pods, "at": to_iso(self.now)})
        return f"{message}; {kept[1]}" + (f"; {then}" if then else "")

    def _held_outside(self, jc: JobConfig, pod_id: str, what: str) -> JobReport:
        """Hold a job whose pod the user stopped or terminated outside bidder: never restarted against
        their wish (`bidder jobs start NAME` lets the tick run it again)."""
        why = f"its pod was {what} outside bidder"
        note = f"held: {why}; `bidder jobs start {jc.name}` to continue"
        row = self.store.pod(pod_id) or {}
        if what == "stopped" and row.get("state") == "active" and not self.ex.dry_run:
            self.store.set_pod_state(pod_id, state="stopped", ended=self.now, note=why)
        self._save(jc, state="held", note=note, outside_end=None)
        return self._report(jc, "held", note, pod_id)

    def _reopened(self, jc: JobConfig) -> dict[str, Any] | None:
        """The job's stopped pod made its pod again (`reopen_stopped_pod`; a dry run only reads it as
        reopened). None: it has none to resume (retired, terminated, or another pod came after it)."""
        pods = self.store.managed_pods(jc.name)
        if not pods or pods[-1].get("state") != "stopped":
            return None
        if self.ex.dry_run:
            return {**pods[-1], "state": "active", "ended": None}
        reopen_stopped_pod(self.store, jc.name)
        return self.store.pod(pods[-1]["pod_id"])

    def _progress(self, jc: JobConfig) -> tuple[float, float, int]:
        """The job's (work done, spent, interruptions) from the ledger, saved in its state."""
        work, spent, interruptions = job_progress(self.store, jc, save=not self.ex.dry_run)
        if self.ex.dry_run:
            self.dry_progress[jc.name] = (work, spent)  # nothing is saved: the job's line reads it here
        else:
            self.store.save_job_state(jc.name, work_done_hours=round(work, 6), spent=round(spent, 6),
                                      interruptions=interruptions, updated=self.now)
        return work, spent, interruptions

    def hours_ahead(self, jc: JobConfig, work: float, gpu_type_id: str | None) -> float:
        """How far the budget guard looks ahead: one hour, or the work left when less (at the speed
        of the job's GPU type), so a job that fits its budget is never stopped for an hour it won't run."""
        if jc.job.work_hours is None:
            return 1.0
        speed = jc.job.speed_of(gpu_type_id or "") or 1.0
        return max(min(1.0, (jc.job.work_hours - work) / speed), 0.0)

    def _running(self, jc: JobConfig, job: JobSpec, row: dict[str, Any], policy: Policy, spent: float, work: float,
                 interruptions: int, started: datetime | None = None) -> JobReport:
        last = self.store.last_observation(row["pod_id"])
        # Vast bills storage on top of the compute rate: the hours ahead cost both. A pod adopted at this
        # tick has no poll yet: its rate is the listing's (it read $0.000/h and the budget looked no hour ahead).
        compute = (last or {}).get("cost_per_hr")
        if compute is None:
            compute = self._listed_rate(row)
        rate = float(compute or 0.0) + float((last or {}).get("storage_per_hr") or 0.0)
        ahead = self.hours_ahead(jc, work, row.get("gpu_type_id"))
        if policy.budget is not None and spent + rate * ahead > policy.budget + 1e-9:
            span = "the next hour" if ahead >= 1.0 else f"the {ahead:.2f} h of work left"
            why = (f"budget: spent ${spent:.2f} + {span} at ${rate:.2f}/h would pass ${policy.budget:.2f}; "
                   f"pod {row['pod_id']} {'would be ' if self.ex.dry_run else ''}stopped")
            storage = float((last or {}).get("storage_per_hr") or 0.0)
            if row.get("market") == "vast" and storage > 0:
                # Stopped, the instance keeps its disk (the work on it), which Vast bills on: say so, and
                # how to end it. (The ticks keep booking that storage into the ledger.)
                why += (f" (its disk is kept: Vast bills ${storage:.3f}/h of storage until "
                        f"`bidder stop {row['pod_id']} --terminate`)")
            # What the stop is for is written before it is sent: if its answer never comes (the tick is
            # killed, the API errs after stopping), the next tick reads the exit as this stop, not the user's.
            done = {"state": "budget_stopped", "note": why, "budget_at_stop": policy.budget}
            self._save(jc, stop_intent={"pod_id": row["pod_id"], "job": done, "at": to_iso(self.now)})
            try:
                self._stop(jc, row, reason=why)
            except ApiError as exc:
                message = f"{why}? not confirmed: the stop failed ({exc}); the next tick looks again"
                return self._report(jc, "running", message, row["pod_id"])
            self._save(jc, **done, stop_intent=None)
            return self._report(jc, "budget_stopped", why, row["pod_id"])
        forbidden = self._not_allowed(jc, job, policy, row, last)
        if forbidden is not None:
            return self._replace_pod(jc, job, policy, row, forbidden, JobProgress(
                work_done_hours=work, spent=spent, interruptions=interruptions, started=started))
        bid = row.get("bid_per_gpu")
        if (row["kind"] == "spot" and bid is not None and policy.max_price is not None
                and float(bid) > policy.max_price + 1e-9):
            return self._above_cap(jc, job, policy, row, JobProgress(
                work_done_hours=work, spent=spent, interruptions=interruptions, started=started,
                current_gpu_type_id=row["gpu_type_id"], current_cloud=row["cloud"], current_action="spot",
                current_bid_per_gpu=float(bid), current_market=row.get("market") or "runpod"))
        if row["kind"] != "spot":
            # On-demand is not a one-way door: the optimizer's keep-or-switch rule (the running pod is
            # in the progress) says when a move to spot pays for its restart. The on-demand pod is
            # stopped before the spot one is launched, so the job never has two pods.
            gpu_type, cloud, known = self._as_quoted(row)
            # Weighed at its own rate: its market's quote no longer lists the offer it rented (a $0.3485
            # Vast instance read as the next offer's $0.3607 over a $0.35 cap, and was ended for spot).
            progress = JobProgress(work_done_hours=work, spent=spent, interruptions=interruptions, started=started,
                                   current_gpu_type_id=gpu_type, current_cloud=cloud,
                                   current_action="on_demand", current_market=row.get("market") or "runpod",
                                   current_price_per_gpu=self._own_rate(row, last))
            decision = self._decide(job, policy, progress)
            if not isinstance(decision, str) and decision.action == "spot":
                # Ended on its own market: asked of RunPod, a Vast instance was "not found", taken as
                # gone, and left running beside the new spot one.
                failed = self._retire(jc, row, f"moving to spot: {decision.reasons[0]}",
                                      terminate=_ends_for_good(jc, row))
                if failed is not None:
                    message = f"running on-demand; the move to spot waits: {failed}"
                    return self._report(jc, "running", message, row["pod_id"])
                return self._launch(jc, job, policy, JobProgress(work_done_hours=work, spent=spent,
                                                                 interruptions=interruptions, started=started), spent)
            if not isinstance(decision, str) and decision.action == "wait" and known:
                # A wait is a decision too: kept, the pod ran on-demand for hours where the plan expected a
                # third of its cost. (A decision that could not be made, a str, keeps it, as the backtest
                # does; so does a wait that could not weigh the pod, its GPU type unknown.)
                return self._on_demand_waits(jc, row, decision)
        if row["kind"] == "spot" and bid is not None:
            redecided = self._spot_decided_again(jc, job, policy, row, float(bid), JobProgress(
                work_done_hours=work, spent=spent, interruptions=interruptions, started=started))
            if redecided is not None:
                return redecided
        kind = f"spot @ ${row.get('bid_per_gpu') or 0:.3f}/GPU-h" if row["kind"] == "spot" else "on-demand"
        message = f"running on {row['gpu_type_id']} ({_where(row['cloud'], row.get('market'))}) {kind}: ${rate:.3f}/h"
        self._save(jc, state="running", pod_id=row["pod_id"], note=message, resume_failures=None)
        return self._report(jc, "running", message, row["pod_id"])

    def _as_quoted(self, row: dict[str, Any]) -> tuple[str, str | None, bool]:
        """The pod's GPU type and cloud as the quotes name them, so that its decision finds the pod among
        its markets and weighs keeping it, and whether that type is known at all. A pod adopted without
        its create's record has its GPU's display name and cloud "ALL" (None here: any cloud of its type):
        matched by no market, its decision would wait as if the job had no pod (a service's too)."""
        gpu_type, cloud = str(row.get("gpu_type_id") or ""), str(row.get("cloud") or "")
        names = self.store.gpu_type_names()
        if gpu_type not in names:
            ids = [i for i, name in names.items() if name and name.lower() == gpu_type.lower()]
            gpu_type = ids[0] if len(ids) == 1 else gpu_type
        return gpu_type, None if cloud.upper() in ("", "ALL", "ANY") else cloud, gpu_type in names

    def _on_demand_waits(self, jc: JobConfig, row: dict[str, Any], decision: Decision) -> JobReport:
        """The decision for a job on a running on-demand pod is to wait: the pod is ended as the move to
        spot ends it (never two pods), the job waits, and a later tick starts spot as usual. The pod was in
        the decision's progress: the plan and the rates wait off it only when that pays for its restart
        (a service never does). The rates cannot weigh it when its own on-demand is ruled out (over the
        budget for the rest, no price quoted): it is ended then too, as the backtest ends a pod on any
        wait. If the stop fails, the pod runs on and the line says so."""
        terminate = _ends_for_good(jc, row)
        why = decision.reasons[0] if decision.reasons else "wait"
        failed = self._retire(jc, row, f"on-demand ended to {why if why.startswith('wait') else f'wait: {why}'}",
                              terminate=terminate)
        if failed is not None:
            return self._report(jc, "running", f"running on-demand; the job would wait, but {failed}", row["pod_id"])
        vast = row.get("market") == "vast"
        ended = ("destroyed" if vast else "terminated") if terminate else "stopped"
        parts = [f"on-demand {'instance' if vast else 'pod'} {row['pod_id']} "
                 f"{'would be ' if self.ex.dry_run else ''}{ended} to wait"]
        parts += decision.reasons[1:2]  # (a plan's second reason: what it expects the rest to cost)
        if jc.template.volume > 0 and jc.template.network_volume is None and not vast:
            kept = "its volume is deleted with it" if terminate else "the volume stays on it (stopped, still billed)"
            parts.append(f"warning: {kept}; the next pod starts with an empty volume (use network_volume to carry data)")
        return self._wait(jc, decision, note="; ".join(parts))

    def _above_cap(self, jc: JobConfig, job: JobSpec, policy: Policy, row: dict[str, Any],
                   progress: JobProgress) -> JobReport:
        """A running spot pod whose bid is above the max price (the user lowered it since): its bid does
        not stand. It is decided again under the new cap, as a stopped pod is: a lower bid on its machine,
        a move, or a wait. A Vast instance takes the lower bid while it runs; RunPod cannot change a
        running pod's bid, so the pod is stopped first and bid-resumed (its volume stays with it)."""
        why = f"its bid ${float(row['bid_per_gpu']):.3f}/GPU-h is above the max price {usd_limit(policy.max_price)}"
        if (row.get("market") or "runpod") != "vast":
            failed = self._stop_keeping(jc, row, why)
            if failed is not None:
                return self._report(jc, "running", failed, row["pod_id"])
            if not self.ex.dry_run:
                row = self.store.pod(row["pod_id"]) or row
        self.ex.emit(self.now, "above_cap", job=jc.name, pod_id=row["pod_id"], message=f"{why}: decided again")
        report = self._restart(jc, job, policy, row, progress, self.store.job_state(jc.name) or {})
        stopped = ("" if (row.get("market") or "runpod") == "vast" else
                   f"; pod {row['pod_id']} {'would be ' if self.ex.dry_run else ''}stopped")
        return replace(report, message=f"{why}{stopped}: {report.message}")

    def _machine_min_bid(self, market: str, pod_id: str, gpu_count: int) -> float | None:
        """The minimum bid on the machine of a Vast instance this tick's listing holds, per GPU (None: not
        Vast, not in the listing, or not said): what its pauses are priced over (`JobProgress`)."""
        pod = next((p for p in self.listings.get(market) or () if p.id == pod_id), None) if market == "vast" else None
        min_bid = getattr(pod, "min_bid", None)
        if min_bid is None or not math.isfinite(min_bid) or min_bid <= 0 or gpu_count <= 0:
            return None
        return float(min_bid) / gpu_count

    def _spot_decided_again(self, jc: JobConfig, job: JobSpec, policy: Policy, row: dict[str, Any], bid: float,
                            progress: JobProgress) -> JobReport | None:
        """A running spot pod is decided again at every tick, as the backtest decides it at every step:
        None when the decision keeps it (or cannot be made), else the tick's line after carrying it out,
        as for a stopped pod (`_restart`): re-bid on its machine, moved, or stopped to wait. Kept until
        outbid, a pod bid at $0.44 in a spike paid that until the floor rose over it, where the plan
        re-bids near the floor: the AWS trace's 100-hour jobs cost 1.63x the optimum instead of 1.31x
        (analysis/results/spot-redecided.md). RunPod cannot change a running pod's bid: it is stopped
        (kept, with its volume) and bid-resumed, a restart as the plan prices it. A Vast instance takes a
        higher bid in place; a lower one is not sent (it would save under 0.5%, vast-pauses.md section 7)."""
        gpu_type, cloud, known = self._as_quoted(row)
        if not known:
            return None  # (a pod adopted without its create's record: no market to weigh it on)
        market = row.get("market") or "runpod"
        g = int(row.get("gpu_count") or job.gpu_count)
        progress = replace(progress, current_gpu_type_id=gpu_type, current_cloud=cloud, current_action="spot",
                           current_bid_per_gpu=bid, current_market=market,
                           current_machine_min_bid_per_gpu=self._machine_min_bid(market, row["pod_id"], g))
        floor = next((q.minimum_bid_price for q in reversed(self.store.latest_quotes(market, at=self.now))
                      if (q.gpu_type_id, q.gpu_count) == (gpu_type, g) and (cloud is None or q.cloud == cloud)), None)
        if floor is None or floor > bid + 1e-9:
            # Its market not quoted now (a Vast offer leaves the listing while rented), or a snapshot that
            # shows it outbid while it runs: the decision could not weigh keeping it (an instance was
            # moved to the next tier at $0.002 more). It runs on, and an interruption is decided as ever.
            return None
        decision = self._decide(job, policy, progress)
        if isinstance(decision, str):
            return None  # no decision now: the pod runs on, as the backtest keeps it
        same = (decision.gpu_type_id == gpu_type and (cloud is None or decision.cloud == cloud)
                and (decision.market or "runpod") == market)
        if same and decision.action == "spot" and decision.bid_per_gpu is not None and (
                abs(decision.bid_per_gpu - bid) <= 1e-9 or (market == "vast" and decision.bid_per_gpu < bid)):
            return None
        if market == "vast" and decision.action == "wait" and _resumes_unplanned(decision, row) is None:
            return None  # it waits to bid on this offer type at or above this bid: the running one is that
        why = f"its spot pod at ${bid:.3f}/GPU-h decided again ({decision.reasons[0] if decision.reasons else decision.action})"
        # A re-bid or a wait keeps the RunPod pod the job's, stopped (its volume with it); a move retires it
        # (`_move`: ended before anything new is rented).
        kept = market != "vast" and (decision.action == "wait" or (same and decision.action == "spot"))
        if kept:
            failed = self._stop_keeping(jc, row, why)
            if failed is not None:
                return self._report(jc, "running", failed, row["pod_id"])
            if not self.ex.dry_run:
                row = self.store.pod(row["pod_id"]) or row
        self.ex.emit(self.now, "decided_again", job=jc.name, pod_id=row["pod_id"], message=why)
        report = self._restart(jc, job, policy, row, progress, self.store.job_state(jc.name) or {})
        stopped = f"; pod {row['pod_id']} {'would be ' if self.ex.dry_run else ''}stopped" if kept else ""
        return replace(report, message=f"{why}{stopped}: {report.message}")

    def _stop_keeping(self, jc: JobConfig, row: dict[str, Any], why: str) -> str | None:
        """Stop a running RunPod pod and keep it the job's (`active`, stopped by bidder: the next tick
        resumes it where its volume is, or moves the job). None when stopped, else why not (the next
        tick tries again). The intent is written before the stop is sent: if it executes but its answer
        is lost, the next tick reads the exit as this stop and keeps the pod the job's (it had been
        ended, and a new pod rented beside the old one's volume)."""
        self._save(jc, stop_intent={"pod_id": row["pod_id"], "pod_state": "active", "at": to_iso(self.now)})
        try:
            self._stop(jc, row, reason=why, state="active")
        except ApiError as exc:
            return f"{why}; the stop failed ({exc}): the next tick tries again"
        self._save(jc, stop_intent=None)
        return None

    def _not_allowed(self, jc: JobConfig, job: JobSpec, policy: Policy, row: dict[str, Any],
                     last: dict[str, Any] | None) -> str | None:
        """Why the job's running pod is one its bidder.toml no longer allows (None: it still is): its GPU
        type, GPU count, cloud or market no longer among the job's, spot when spot is not allowed
        (`allow_spot = false`, `tolerance = "none"`), on-demand when on-demand is not, or an on-demand
        price above `max_price` ("the most per GPU-hour, bid or on-demand"). A spot bid above the cap is
        `_above_cap`'s (a lower bid on the same machine may do)."""
        market = row.get("market") or "runpod"
        gpu_type = str(row.get("gpu_type_id") or "")
        known = gpu_type not in ("", "unknown")  # a pod adopted without its create's record: type unknown
        # (such a pod's type is its display name, "RTX A6000": names and ids both identify it)
        names = {k.lower(): (v or "").lower() for k, v in self.store.gpu_type_names().items()}
        same = {gpu_type.lower(), names.get(gpu_type.lower(), "")} - {""}
        reasons = []
        if (job.market or "any").lower() not in ("any", market):
            kept = self.runpod_notes.get(jc.name) if jc.job.market == "runpod" else None
            reasons.append(f"it is on {market}, and " + (kept or f"market = {job.market!r}"))
        if known and job.gpu_types:
            wanted = {g.strip().lower() for g in job.gpu_types}
            if not (same & (wanted | {names.get(w, "") for w in wanted} - {""})):
                reasons.append(f"its GPU {gpu_type} is not in gpu {list(job.gpu_types)}")
        elif known and job.min_vram_gb is not None:
            quotes = self.store.latest_quotes(market)
            memory = [q.memory_in_gb for q in quotes if q.memory_in_gb is not None
                      and {q.gpu_type_id.lower(), (q.display_name or "").lower()} & same]
            if memory and max(memory) < job.min_vram_gb:
                reasons.append(f"its GPU {gpu_type} has {max(memory):g} GB, under min_vram {job.min_vram_gb}")
        count = row.get("gpu_count")
        if count is not None and int(count) != job.gpu_count:
            reasons.append(f"it has {int(count)} GPU(s), and gpus = {job.gpu_count}")
        cloud = str(row.get("cloud") or "").upper()
        if job.cloud.upper() not in ("ANY", "ALL") and cloud not in ("", "ANY", "ALL") and cloud != job.cloud.upper():
            reasons.append(f"it is in cloud {cloud}, and cloud = {job.cloud.lower()!r}")
        if row["kind"] == "spot" and policy.tolerance <= 0:
            reasons.append('it is spot, and tolerance = "none" (on-demand only)')
        elif row["kind"] == "spot" and not policy.allow_spot:
            reasons.append("it is spot, and allow_spot = false")
        if row["kind"] != "spot":
            if not policy.allow_on_demand:
                reasons.append("it is on-demand, and allow_on_demand = false")
            price = self._on_demand_price(row, last)
            if price is not None and policy.max_price is not None and price > policy.max_price + 1e-9:
                reasons.append(f"its on-demand price ${price:.3f}/GPU-h is above the max price {usd_limit(policy.max_price)}")
        return "; ".join(reasons) or None

    def _listed_rate(self, row: dict[str, Any]) -> float | None:
        """The pod's cost per hour (compute) in this tick's listing of its market, if it is there and
        could be true (a poll the executor sets aside is no price to act on: a $1e9 rate moved the job)."""
        pod = next((p for p in self.listings.get(row.get("market") or "runpod", []) if p.id == row["pod_id"]), None)
        if pod is None or self.ex_for(row.get("market")).implausible(row, pod, self.now) is not None:
            return None
        return pod.cost_per_hr

    def _on_demand_price(self, row: dict[str, Any], last: dict[str, Any] | None) -> float | None:
        """What a running on-demand pod costs per GPU-hour (compute; Vast's storage aside): this tick's
        listing (a pod adopted at this tick has no poll yet), else its last poll."""
        rate = self._listed_rate(row)
        if rate is None:
            rate = (last or {}).get("cost_per_hr")
        count = int(row.get("gpu_count") or 1)
        return float(rate) / max(count, 1) if rate is not None else None

    def _own_rate(self, row: dict[str, Any], last: dict[str, Any] | None) -> float | None:
        """What a running on-demand pod bills per GPU-hour (compute): this tick's listing or its last poll
        (`_on_demand_price`), else the rate its latest start was recorded at (the ledger's launch price)."""
        rate = self._on_demand_price(row, last)
        if rate is None:
            rate = self.ex.started_rate(row["pod_id"], int(row.get("gpu_count") or 1))
        return rate if rate is not None and 0 < rate < math.inf else None

    def _stopped_rate(self, row: dict[str, Any]) -> float | None:
        """What a stopped on-demand pod bills per GPU-hour once started again, when that is its own rate: a
        Vast instance keeps its offer's price (`Executor._resume_price`), which the quote, another offer's
        while it is rented, is not (a RunPod pod resumes at the quote: None)."""
        if row.get("kind") == "spot" or (row.get("market") or "runpod") != "vast" or "vast" not in self.exs:
            return None
        rate = self.ex_for("vast").own_resume_rate(row, int(row.get("gpu_count") or 1))
        return rate if rate is not None and 0 < rate < math.inf else None

    def _replace_pod(self, jc: JobConfig, job: JobSpec, policy: Policy, row: dict[str, Any], why: str,
                     progress: JobProgress) -> JobReport:
        """A running pod bidder.toml no longer allows (`_not_allowed`) is replaced: decided afresh (as for
        a job with no pod) and moved as any move is (the old pod ended first: never two pods); when the
        plan waits, it is stopped all the same (RunPod: kept the job's, stopped, where its volume is, as
        after an interruption; Vast: destroyed, since its disk cannot follow the job). Never left running."""
        head = f"the running pod no longer matches bidder.toml: {why}"
        self.ex.emit(self.now, "not_allowed", job=jc.name, pod_id=row["pod_id"], message=head)
        decision = self._decide(job, policy, progress)
        if not isinstance(decision, str) and decision.action != "wait":
            report = self._move(jc, job, policy, row, decision, progress.spent, progress=progress)
            return replace(report, message=f"{head}; {report.message}")
        would = "would be " if self.ex.dry_run else ""
        if (row.get("market") or "runpod") == "vast":
            failed = self._retire(jc, row, head, terminate=True)
            if failed is not None:
                return self._report(jc, "running", f"{head}; {failed}", row["pod_id"])
            report = self._wait(jc, decision, note=f"instance {row['pod_id']} {would}destroyed")
        else:
            failed = self._stop_keeping(jc, row, head)
            if failed is not None:
                return self._report(jc, "running", failed, row["pod_id"])
            report = self._wait(jc, decision, row["pod_id"], note=self._volume_note(jc, row))
            report = replace(report, message=f"pod {row['pod_id']} {would}stopped; {report.message}")
        return replace(report, message=f"{head}; {report.message}")

    def _decide(self, job: JobSpec, policy: Policy, progress: JobProgress) -> Decision | str:
        """The decision, or the reason it cannot be made now (a wait)."""
        if self.current is not None:
            self.decided.add(self.current)
            self.infeasible.discard(self.current)
        try:
            return self.ex.decide(job, policy, self.now, progress)
        except Infeasible as exc:
            if self.current is not None:
                self.infeasible.add(self.current)
            if exc.until_changed and self.current is not None:  # only the user can help: said as blocked
                self.hopeless[self.current] = str(exc)
            if exc.constraint == "max_price" and policy.max_price is not None:
                if "; no spot: " in str(exc):  # (spot floors under the cap were ruled out by other limits)
                    return f"{exc}; acts when on-demand is at or below {usd_limit(policy.max_price)} or a spot bid fits"
                return f"{exc}; acts when a price is at or below {usd_limit(policy.max_price)}"
            if exc.constraint == "gpu_type":
                return self._no_quote(job, str(exc))
            return str(exc)
        except InsufficientHistory as exc:
            return f"{exc}; collect more history"

    def _no_quote(self, job: JobSpec, message: str) -> str:
        """The optimizer's "no current quote" in bidder.toml's words: it told a tick's user to run `bidder
        collect` (the tick collects) and to widen --gpu/--min-vram/--cloud, options bidder.toml does not
        have; and a min_vram above every GPU type's memory waited as if prices were missing."""
        hint = "collect prices first (`bidder collect`) or widen --gpu/--min-vram/--cloud"
        if message.endswith(VRAM_HINT):  # no GPU type has that much memory
            return message.removesuffix(VRAM_HINT) + "lower min_vram in bidder.toml, or name GPU types with gpu"
        if not message.endswith(hint):  # (another cause, e.g. the GPU counts collected: its own fix)
            return message
        head = message[: -len(hint)].rstrip("; ")
        market = (job.market or "any").lower()
        memory = [q.memory_in_gb for q in self.store.latest_quotes(None if market == "any" else market, at=self.now)
                  if q.memory_in_gb is not None]
        if job.min_vram_gb is not None and not job.gpu_types and memory and max(memory) < job.min_vram_gb:
            where = "" if market == "any" else f" on market {market}"
            return (f"{head}: no GPU type{where} has that much memory (the most is {max(memory)} GB a GPU): lower "
                    "min_vram in bidder.toml, or name GPU types with gpu")
        return f"{head}: widen gpu, min_vram or cloud in bidder.toml"

    def _vast_stopped(self, row: dict[str, Any]) -> bool:
        """A Vast instance stopped by its owner (a budget stop, `bidder stop`), as this tick's listing
        shows it: unlike one paused by a higher bid, it never resumes by itself, so it is started."""
        if row.get("market") != "vast":
            return False
        pod = next((p for p in self.listings.get("vast", []) if p.id == row["pod_id"]), None)
        return pod is not None and getattr(pod, "state", None) == "stopped"

    def _volume_note(self, jc: JobConfig, row: dict[str, Any]) -> str | None:
        """What a user must know while a stopped pod waits: its volume (and the work on it) stays there.
        A paused Vast instance keeps its disk and resumes by itself: RunPod's resume-and-move rule is
        not its own."""
        if row.get("market") == "vast":
            how = ("is kept stopped with its disk (storage billed): bidder starts it when the plan bids on it again"
                   if self._vast_stopped(row) else "waits paused with its disk (storage billed) and resumes by itself "
                   "when its bid is the highest again")
            return (f"instance {row['pod_id']} {how}; to start afresh now: `bidder stop --job {jc.name} "
                    f"--terminate`, then `bidder jobs start {jc.name}`")
        if jc.template.volume <= 0 or jc.template.network_volume is not None:
            return None
        # (Said whatever the job waits for: "when its machine has room" read as the reason of a wait on the
        # max price.)
        return (f"the volume stays on pod {row['pod_id']} (stopped, still billed): when the job runs again, bidder "
                f"resumes that pod if its machine has room (after {RESUME_FAILURES_BEFORE_MOVE} refusals it moves the "
                f"job to a new pod with an empty volume); to start afresh now: `bidder stop --job {jc.name} "
                f"--terminate`, then `bidder jobs start {jc.name}`")

    def _wait(self, jc: JobConfig, decision: Decision | str, pod_id: str | None = None,
              note: str | None = None) -> JobReport:
        if isinstance(decision, str):
            message = decision
        else:
            # The optimizer's reason states the real rule (the bid, and how long the floor must stay
            # under it: the settling time), which a bare "until the floor is below" would hide.
            message = decision.reasons[0] if decision.reasons else "the optimizer waits"
        if note:
            message = f"{message}; {note}"
        self.ex.emit(self.now, "wait", job=jc.name, pod_id=pod_id, message=message,
                     act_below=None if isinstance(decision, str) else decision.act_below,
                     act_when=None if isinstance(decision, str) else decision.act_when)
        self._save(jc, state="waiting", note=message)
        if isinstance(decision, str) and decision == self.hopeless.get(jc.name):
            # A deadline passed or out of reach: waiting cannot help, so cron must hear of it (exit 1).
            return replace(self._report(jc, "waiting", message, pod_id), blocked=decision)
        return self._report(jc, "waiting", message, pod_id)

    def _launch(self, jc: JobConfig, job: JobSpec, policy: Policy, progress: JobProgress,
                spent: float) -> JobReport:
        decision = self._decide(job, policy, progress)
        if isinstance(decision, str) or decision.action == "wait":
            return self._wait(jc, decision)
        result = self.ex_for(decision.market).launch(jc, job, policy, decision, self.now, job_spent=spent,
                                                     hours_ahead=self.hours_ahead(jc, progress.work_done_hours, None),
                                                     progress=progress)
        tries = "; ".join(f"{a.kind} {a.gpu_type_id}/{a.cloud}: {a.outcome}" + (f" ({a.message})" if a.message
                                                                                 and a.outcome != "ok" else "")
                          for a in result.attempts)
        # (a stopped launch's reason is its last attempt's message too: said once)
        notes = " ".join(n for n in result.notes if not any(a.message == n for a in result.attempts))
        if result.pod is not None and result.attempt is not None:
            a = result.attempt
            what = _rate(a, self._storage(job, a, decision.market, result.pod))
            message = (f"launched {a.name} on {a.gpu_type_id} ({_where(a.cloud, decision.market)}) {what}"
                       + (f"; {notes}" if notes else ""))
            # (a new pod starts with no refused resumes: a failed move may have left its old pod's)
            self._save(jc, state="running", pod_id=result.pod.id, note=message, resume_failures=None)
            return self._report(jc, "running", message, result.pod.id)
        if self.ex.dry_run and result.requests:
            request = result.requests[-1]  # the dry run's attempt: the create it would send, request and all
            sent = f" ({request.operation}): {shown_request(request).to_json(indent=None)}"
            return self._report(jc, "dry_run", "would launch: " + "; ".join(
                _would(a, decision.market, sent if a.outcome == "dry_run" else "", self._storage(job, a, decision.market))
                for a in result.attempts))
        message = "not launched: " + "; ".join(x for x in (tries, notes) if x)
        self._save(jc, state="waiting", note=message)
        return self._report(jc, "waiting", message)

    def _restart(self, jc: JobConfig, job: JobSpec, policy: Policy, row: dict[str, Any], progress: JobProgress,
                 state: dict[str, Any]) -> JobReport:
        """The job's pod is stopped and bidder did not stop it: resume, wait, or move."""
        decision = self._decide(job, policy, progress)
        doomed = self._under_floor(row, decision)
        if doomed is not None:
            # RunPod refuses a bid resume under the floor (each refusal counted toward a move that leaves the
            # volume behind): the job is decided as a fresh start, whose spot bid is the plan's for the floor now.
            decision = self._decide(job, policy, replace(progress, current_gpu_type_id=None, current_cloud=None,
                                                         current_action=None, current_bid_per_gpu=None,
                                                         current_market=None))
        # A paused Vast instance resumes by itself at its standing bid: a bid the policy no longer allows
        # (a lowered cap, budget or max_spend_per_hour) must not stand while it waits.
        standing_refused = self._standing_bid_refused(jc, policy, row, progress)
        if isinstance(decision, str) or decision.action == "wait":
            if standing_refused is not None:
                failed = self._retire(jc, row, f"its standing bid is no longer allowed: {standing_refused}",
                                      terminate=True)
                note = failed or (f"instance {row['pod_id']} {'would be ' if self.ex.dry_run else ''}destroyed: its "
                                  f"standing bid is no longer allowed ({standing_refused})")
                return self._wait(jc, decision, None if failed is None else row["pod_id"], note=note)
            unwanted = None if self._vast_stopped(row) else _resumes_unplanned(decision, row)
            if unwanted is not None:
                # While the job waits, a paused instance must not resume by itself at a bid the plan does
                # not take (nothing fits the tolerance or budget, or the plan waits elsewhere or lower).
                failed = self._retire(jc, row, f"the job waits: {unwanted}", terminate=True)
                note = failed or f"instance {row['pod_id']} {'would be ' if self.ex.dry_run else ''}destroyed: {unwanted}"
                return self._wait(jc, decision, None if failed is None else row["pod_id"], note=note)
            return self._wait(jc, decision, row["pod_id"],
                              note="; ".join(x for x in (doomed and f"pod {row['pod_id']} not resumed: {doomed}",
                                                         self._volume_note(jc, row)) if x) or None)
        same = (decision.gpu_type_id == row["gpu_type_id"] and decision.cloud == row["cloud"]
                and decision.action == ("spot" if row["kind"] == "spot" else "on_demand")
                and (decision.market or "runpod") == (row.get("market") or "runpod"))
        failures = int(state.get("resume_failures") or 0)
        if (same and row.get("market") == "vast" and row["kind"] == "spot" and not _raises(decision, row)
                and standing_refused is None and not self._vast_stopped(row)):
            # Vast: an outbid instance resumes by itself when its bid is the highest again; a bid at or
            # below the standing one changes nothing, so nothing is sent.
            return self._vast_resumed(jc, row, row.get("bid_per_gpu"))
        if same and failures < RESUME_FAILURES_BEFORE_MOVE:
            try:
                attempt, request = self.ex_for(row.get("market")).resume(
                    jc, row, decision, policy, self.now, job_spent=progress.spent,
                    hours_ahead=self.hours_ahead(jc, progress.work_done_hours, row["gpu_type_id"]))
            except SpotUnsupported as exc:
                self.ex.mark_spot_unsupported(self.now, exc)
                # RunPod's spot is gone, not Vast's: a job open to both may still take Vast's spot.
                fallback = self._decide(job, policy if (job.market or "any").lower() == "any" and not self.ex.dry_run
                                        else replace(policy, allow_spot=False), progress)
                if isinstance(fallback, str) or fallback.action == "wait":
                    return self._wait(jc, f"{SPOT_GONE_MESSAGE}; on-demand is not possible within the policy: "
                                          f"{fallback if isinstance(fallback, str) else fallback.reasons[0]}",
                                      row["pod_id"])
                return self._move(jc, job, policy, row, fallback, progress.spent, note=SPOT_GONE_MESSAGE)
            if attempt.outcome == "ok" and row.get("market") == "vast":
                return self._vast_resumed(jc, row, attempt.bid_per_gpu, attempt)
            if attempt.outcome == "ok":
                what = f"podBidResume at ${attempt.bid_per_gpu:.3f}/GPU-h" if row["kind"] == "spot" else "podResume"
                message = (f"resumed {row['pod_id']} on {row['gpu_type_id']} ({row['cloud']}): {what}"
                           + (f", re-bid at the plan's price for the floor now: {doomed}" if doomed else ""))
                self._save(jc, state="running", note=message, resume_failures=None)
                return self._report(jc, "running", message, row["pod_id"])
            if attempt.outcome == "dry_run":
                bid = f" at ${attempt.bid_per_gpu:.4f}/GPU-h" if attempt.bid_per_gpu is not None else ""
                sent = f" ({request.operation}): {shown_request(request).to_json(indent=None)}" if request else ""
                return self._report(jc, "dry_run", f"would resume {row['pod_id']}{bid}{sent} (not sent: dry run)",
                                    row["pod_id"])
            if attempt.outcome == "no_capacity":
                self._save(jc, resume_failures=failures + 1)
            return self._wait(jc, f"could not resume {row['pod_id']}: {attempt.message}", row["pod_id"],
                              note=self._volume_note(jc, row))
        return self._move(jc, job, policy, row, decision, progress.spent, progress=progress,
                          note=doomed and f"pod {row['pod_id']} not resumed: {doomed}")

    def _under_floor(self, row: dict[str, Any], decision: Decision | str) -> str | None:
        """Why resuming the stopped RunPod spot pod at the decision's bid is bound to be refused: the plan
        "kept" its bid while the floor rose above it (None: not such a resume). The floor is the quote's
        this tick (the one the plan's reason names), else the pod's lowestBidPriceToResume."""
        if isinstance(decision, str) or decision.action != "spot" or row["kind"] != "spot" \
                or (row.get("market") or "runpod") != "runpod" or (decision.market or "runpod") != "runpod" \
                or (decision.gpu_type_id, decision.cloud) != (row["gpu_type_id"], row["cloud"]):
            return None
        bid, g = decision.bid_per_gpu, int(row.get("gpu_count") or decision.gpu_count)
        floor = next((q.minimum_bid_price for q in reversed(self.store.latest_quotes("runpod", at=self.now))
                      if (q.gpu_type_id, q.cloud, q.gpu_count) == (row["gpu_type_id"], row["cloud"], g)), None)
        if floor is None:
            pod = next((p for p in self.listings.get("runpod", []) if p.id == row["pod_id"]), None)
            floor = getattr(pod, "lowest_bid_price_to_resume", None)
        if bid is None or floor is None or bid >= floor - 1e-9:
            return None
        return f"its kept bid ${bid:.3f} is under the floor ${floor:.3f}, which RunPod refuses"

    def _standing_bid_refused(self, jc: JobConfig, policy: Policy, row: dict[str, Any],
                              progress: JobProgress) -> str | None:
        """Why a paused Vast instance's standing bid is no longer allowed (None: it is, or not such a pod)."""
        if row.get("market") != "vast" or row["kind"] != "spot" or row.get("bid_per_gpu") is None:
            return None
        ex = self.ex_for("vast")
        return ex.refusal(ex.effective_policy(policy), kind="spot", price_per_gpu=float(row["bid_per_gpu"]),
                          gpu_count=int(row.get("gpu_count") or jc.job.gpu_count), job_spent=progress.spent,
                          exclude_pod=row["pod_id"], storage_per_hr=ex.storage_of(row["pod_id"]),
                          hours_ahead=self.hours_ahead(jc, progress.work_done_hours, row["gpu_type_id"]))

    def _retire(self, jc: JobConfig, row: dict[str, Any], reason: str, *, terminate: bool) -> str | None:
        """End the job's pod before another is rented (None), or say why it could not be ended: then
        nothing new is rented, since a pod whose stop failed may run on (a paused Vast instance resumes
        by itself when its bid is the highest again)."""
        try:
            self._stop(jc, row, reason=reason, terminate=terminate, state="retired")
        except ApiError as exc:
            return (f"pod {row['pod_id']} could not be ended ({exc}); nothing new is rented for this job until it "
                    "is: the next tick tries again")
        return None

    def _move(self, jc: JobConfig, job: JobSpec, policy: Policy, row: dict[str, Any], decision: Decision,
              spent: float, note: str | None = None, progress: JobProgress | None = None) -> JobReport:
        """A new pod where the decision says. The old (stopped) one is retired first, so the job never has
        two pods: if it cannot be, nothing is rented; if the new one cannot be rented, the job waits.
        `progress`: the job's, for the launch's check of an on-demand fallback (`Executor.launch`)."""
        terminate = _ends_for_good(jc, row)
        failed = self._retire(jc, row, f"the job moves: {decision.reasons[0] if decision.reasons else decision.action}",
                              terminate=terminate)
        if failed is not None:
            return self._wait(jc, f"could not move the job: {failed}", row["pod_id"])
        result = self.ex_for(decision.market).launch(jc, job, policy, decision, self.now, job_spent=spent,
                                                     progress=progress)
        if result.pod is None or result.attempt is None:
            tries = "; ".join(f"{a.kind} {a.gpu_type_id}: {a.outcome}" for a in result.attempts)
            if self.ex.dry_run and result.requests:
                moves = "; ".join(_would(a, decision.market, storage=self._storage(job, a, decision.market))
                                  for a in result.attempts)
                return self._report(jc, "dry_run", f"would end {row['pod_id']} and move to {moves}", row["pod_id"])
            return self._wait(jc, f"pod {row['pod_id']} ended to move the job, but no new pod: "
                                  + "; ".join(x for x in (tries, *result.notes) if x))
        a = result.attempt
        what = _rate(a, self._storage(job, a, decision.market, result.pod))
        parts = [f"moved to {a.name} on {a.gpu_type_id} ({_where(a.cloud, decision.market)}) {what}"]
        if note:
            parts.insert(0, note)
        if jc.template.volume > 0 and jc.template.network_volume is None and row.get("market") != "vast":
            parts.append(f"warning: the volume stays with the old pod {row['pod_id']} "
                         + ("(terminated with it)" if terminate else "(stopped, still billed)")
                         + "; the new pod starts with an empty volume (use network_volume to carry data)")
        message = "; ".join(parts)
        self.ex.emit(self.now, "moved", job=jc.name, pod_id=result.pod.id, message=message)
        self._save(jc, state="running", pod_id=result.pod.id, note=message, resume_failures=None)
        return self._report(jc, "running", message, result.pod.id)

    def _storage(self, job: JobSpec, a: Attempt, market: str | None, pod: Pod | None = None) -> float:
        """What the attempt's instance bills per hour for the job's disk (Vast's storage; 0 elsewhere):
        the rented instance's own when its answer says it (`pod`), else the plan's: on spot, the storage
        of the offer the attempt's bid rents."""
        if market != "vast":
            return 0.0
        billed = getattr(pod, "storage_per_hr", None)
        if billed:
            return float(billed)
        from bidder.advisor import disk_storage

        return disk_storage(self.store, job, market, a.gpu_type_id, a.cloud, a.gpu_count,
                            on_demand=a.kind != "spot", bid_per_gpu=a.bid_per_gpu)

    def _late(self, jc: JobConfig, report: JobReport) -> str | None:
        """Why a job whose pod runs cannot finish by its deadline (it passed, or too little is left for
        the work even at the fastest speed), or None. Its pod runs on (stopping it would throw the work
        away), but it is said: without a pod the job waits with "no candidate meets the deadline",
        exit 1; with one the tick said "running" past the deadline, exit 0."""
        if report.state != "running":
            return None
        job = jc.job_spec(window_start(self.store.job_state(jc.name) or {}) or self.now)
        if job.deadline is None or job.work_hours is None or job.keep_running:
            return None
        left = max(job.work_hours - report.work_done_hours, 0.0)
        fastest = max((job.speed_of(g) for g in job.gpu_types), default=1.0)
        hours = (job.deadline - self.now).total_seconds() / 3600.0
        if left / fastest <= hours + 1e-9:
            return None
        when = "has passed" if hours <= 0 else f"is {hours:.1f} h away"
        return (f"its deadline {to_iso(job.deadline)} {when}: the {left:.1f} h of work left cannot finish by it; "
                f"its pod runs on to finish the work: set a later deadline, or `bidder jobs stop {jc.name}`")

    def _at_risk(self, jc: JobConfig, report: JobReport) -> tuple[str | None, str | None]:
        """Why a job that waits because nothing fits its policy misses its deadline unless the user acts
        (`on_demand_rescue`), or None; and the note said instead when spot under the cap can still finish
        beyond the tolerance. It waited with exit 0, saying only the max price, until even on-demand could
        not finish: then "cannot run", when raising the max price no longer helped."""
        if report.state != "waiting" or report.blocked or jc.name not in self.infeasible:
            return None, None
        from bidder.advisor import on_demand_rescue

        state = self.store.job_state(jc.name) or {}
        started = window_start(state) or self.now
        job = jc.job_spec(started)
        left = max((job.work_hours or 0.0) - report.work_done_hours, 0.0)
        return on_demand_rescue(self.store, job, jc.policy, self.now, work_left=left, spent=report.spent,
                                markets=tuple(self.exs), interruptions=int(state.get("interruptions") or 0),
                                started=started,
                                spot=lambda policy, progress: self.ex.decide(job, policy, self.now, progress))

    def _finish(self, jc: JobConfig, row: dict[str, Any], reason: str) -> None:
        terminate = jc.on_finish == "terminate"
        # A paused Vast instance resumes by itself: a finished job's instance is stopped even when paused.
        if terminate or row.get("desired_status") == "RUNNING" or row.get("market") == "vast":
            self._stop(jc, row, reason=reason, terminate=terminate)
        elif not self.ex.dry_run:
            self.store.set_pod_state(row["pod_id"], state="stopped", ended=self.now, note=reason)

    def _stop(self, jc: JobConfig, row: dict[str, Any], *, reason: str, terminate: bool = False,
              state: str | None = None) -> None:
        """Stop (or terminate) one of the job's pods on its market. A dry run sends nothing: the exact
        request it would send goes on the job's line (`handle_job`)."""
        request = self.ex_for(row.get("market")).stop_pod(row, self.now, reason=reason, terminate=terminate,
                                                          state=state)
        if self.ex.dry_run and request is not None:
            vast = row.get("market") == "vast"
            verb = ("destroy" if vast else "terminate") if terminate else "stop"
            self.would_send.setdefault(jc.name, []).append(
                f"would {verb} {'instance' if vast else 'pod'} {row['pod_id']} ({request.operation}): "
                f"{shown_request(request).to_json(indent=None)} (not sent: dry run)")

    def _vast_resumed(self, jc: JobConfig, row: dict[str, Any], bid: float | None,
                      attempt: Attempt | None = None) -> JobReport:
        """After a Vast bid_resume: the bid now stands; the instance runs if it is the highest, else it
        waits paused (billing storage) and resumes by itself when it is. `attempt`: the start just sent
        (an on-demand one says the instance's own rate, as a launch does)."""
        pod = self.store.pod(row["pod_id"]) or row
        old = row.get("bid_per_gpu")
        if bid is not None and old is not None and abs(bid - old) > 1e-9:
            what = f"bid {'raised' if bid > old else 'lowered'} from ${old:.3f} to ${bid:.3f}/GPU-h"
        elif row.get("kind") != "spot":  # (no bid: "bid $0.000/GPU-h kept" it said)
            what = "on-demand" if attempt is None else _rate(attempt, self.ex_for("vast").storage_of(row["pod_id"]))
        else:
            what = f"bid ${bid or 0:.3f}/GPU-h kept"
        if pod.get("desired_status") == "RUNNING":
            again = "" if row.get("desired_status") == "RUNNING" else " again"
            message = f"{row['pod_id']} on {row['gpu_type_id']} (vast) runs{again}: {what}"
            self._save(jc, state="running", note=message, resume_failures=None)
            return self._report(jc, "running", message, row["pod_id"])
        message = (f"{row['pod_id']} on {row['gpu_type_id']} (vast) is paused (outbid): {what}; it resumes by itself "
                   "when its bid is the highest again (storage billed meanwhile)")
        self.ex.emit(self.now, "wait", job=jc.name, pod_id=row["pod_id"], message=message)
        self._save(jc, state="waiting", note=message)
        return self._report(jc, "waiting", message, row["pod_id"])

    # -- bookkeeping -------------------------------------------------------------------------------
    def _save(self, jc: JobConfig, **fields: Any) -> None:
        if self.ex.dry_run:
            return
        with self.store.transaction():  # re-read and write with no other writer in between
            if "state" in fields and self._intervened(jc, self.store.job_state(jc.name) or {}):
                self.overruled.add(jc.name)  # the user's stop stands: handle_job stops what this tick started
                return
            self.store.save_job_state(jc.name, updated=self.now, **fields)

    def _blocked(self, jc: JobConfig, state: str, why: str, pod_id: str | None = None) -> JobReport:
        """The line of a job this tick cannot run until the user changes something: nothing else is done
        for it, and `bidder tick` exits non-zero once every other job is handled."""
        self.ex.emit(self.now, "blocked", job=jc.name, pod_id=pod_id, message=why)
        return replace(self._report(jc, state, why, pod_id), blocked=why)

    def _market_missing(self, jc: JobConfig) -> str | None:
        return _missing_key(jc, self.exs)

    def _report(self, jc: JobConfig, state: str, message: str, pod_id: str | None = None) -> JobReport:
        job_state = self.store.job_state(jc.name) or {}
        work, spent = self.dry_progress.get(jc.name) or (float(job_state.get("work_done_hours") or 0.0),
                                                         float(job_state.get("spent") or 0.0))
        return JobReport(jc.name, state, message, pod_id, spent, work)


_NOTHING_RENTED = "; nothing is rented for it"


def _missing_key(jc: JobConfig, markets: Mapping[str, object] | tuple[str, ...]) -> str | None:
    """Why the job's market cannot be acted on by a tick on `markets` (None: it can): `market` names one
    whose key is not set here."""
    market = (jc.job.market or "any").lower()
    if market == "any" and not markets:  # (a tick with no key at all: neither market is asked)
        return ("market = 'any', and this tick has no key for either market: set RUNPOD_API_KEY or VAST_API_KEY "
                "(or api_key or vast_api_key in ~/.config/bidder/config.toml)" + _NOTHING_RENTED)
    if market == "any" or market in markets:
        return None
    if market == "vast":
        key = "no Vast key: set VAST_API_KEY (or vast_api_key in ~/.config/bidder/config.toml)"
    else:
        key = "no RunPod key: set RUNPOD_API_KEY (or api_key in ~/.config/bidder/config.toml)"
    # (Another market is a way out only when this tick has a key for one.)
    others = " or ".join(repr(m) for m in (*(m for m in ("runpod", "vast") if m != market), "any"))
    choose = f", or choose market = {others}" if markets else ""
    return f"market = {market!r}, and this tick has {key}{choose}{_NOTHING_RENTED}"


def _no_market(store: Store, config: Config, now: datetime, dry_run: bool,
               events: Callable[[dict[str, Any]], None] | None) -> TickReport:
    """A tick with no key at all: no market is asked (RunPod's prices need no key, but no job could be
    acted on there); each job's line says which key to set; nothing is sent."""
    whys = {name: _missing_key(jc, ()) for name, jc in config.jobs.items()}
    if not whys:
        raise ConfigError("no market to act on: set RUNPOD_API_KEY or VAST_API_KEY", key="api_key")
    report = TickReport(ts=now)
    pods: dict[str, str | None] = {}
    for name in whys:
        rows = store.managed_pods(name, states=["active"])
        pods[name] = rows[-1]["pod_id"] if rows else None
        if rows:  # "nothing is rented for it" read as all well while the job's pod ran on, unwatched
            market = rows[-1].get("market") or "runpod"
            whys[name] = (str(whys[name]).removesuffix(_NOTHING_RENTED) + f"; its pod {rows[-1]['pod_id']} on "
                          f"{market} is left as it is, unwatched, and goes on billing")
    for name, why in whys.items():
        record = {"ts": to_iso(now), "event": "blocked", "job": name, "message": why, **({"dry_run": True} if dry_run else {})}
        report.events.append(record)
        if events is not None:
            events(record)
        state = store.job_state(name) or {}
        report.jobs.append(JobReport(name, "error", str(why), pods[name], float(state.get("spent") or 0.0),
                                     float(state.get("work_done_hours") or 0.0), blocked=why))
    return report


def _ends_for_good(jc: JobConfig, row: dict[str, Any]) -> bool:
    """Whether a pod the job leaves behind (it moves, or has two) is terminated rather than stopped:
    per `on_finish`, and always on Vast, whose disk cannot follow the job and bills until destroyed."""
    return jc.on_finish == "terminate" or row.get("market") == "vast"


def _resumes_unplanned(decision: Decision | str, row: dict[str, Any]) -> str | None:
    """Why a Vast spot instance must not stay paused while the job waits (None: it may): it resumes by
    itself at its standing bid when that bid is the highest again, so it is kept only when the plan
    waits to bid on that very offer type (GPU type, tier, Vast) at or above that bid."""
    if row.get("market") != "vast" or row["kind"] != "spot":
        return None
    bid = row.get("bid_per_gpu")
    where = "paused, it would resume by itself at its standing bid" + (f" ${float(bid):.3f}/GPU-h" if bid else "")
    if isinstance(decision, str):
        return f"{where}, and nothing fits the job's policy now"
    if (bid is not None and decision.act_below is not None and decision.gpu_type_id == row.get("gpu_type_id")
            and decision.cloud == row.get("cloud") and decision.market == "vast"
            and float(bid) <= decision.act_below + 1e-9):
        return None
    return f"{where}, which the plan does not take now"


def _raises(decision: Decision, row: dict[str, Any]) -> bool:
    """True when the decision bids above the pod's standing bid (or the pod has none)."""
    old = row.get("bid_per_gpu")
    return old is None or (decision.bid_per_gpu is not None and decision.bid_per_gpu > float(old) + 1e-9)


_KEYS = {"runpod": "RUNPOD_API_KEY", "vast": "VAST_API_KEY"}

#: The executor's events of calls that act on a pod, and what each is called for the user.
_CALLS = {"rent_spot": "spot create", "deploy_on_demand": "on-demand create", "bid_resume": "bid resume",
          "resume": "resume", "stop": "stop", "terminate": "terminate"}


def _failed_calls(events: list[dict[str, Any]]) -> tuple[str, ...]:
    """One line per call in `events` that failed: what was sent (which pod or name, on which market) and
    what the API said. A create left unanswered ("unconfirmed": looked up by its name, not found) counts:
    the job got no pod. A market's refusal for lack of capacity, a guard's refusal, a stop of a pod already
    gone and spot's end (handled by falling back) are outcomes of their own, not failures."""
    out = []
    for e in events:
        what = _CALLS.get(str(e.get("event")))
        if what is None or e.get("outcome") not in ("error", "unconfirmed") or e.get("dry_run"):
            continue
        market = e.get("market") or "runpod"
        if e["event"] in ("rent_spot", "deploy_on_demand"):
            target = f"of {e.get('name')} ({e.get('gpu_type')}/{e.get('cloud')})"
        else:
            target = f"of pod {e.get('pod_id')}"
        line = f"{what} {target} on {market} failed: {e.get('error')}"
        if e["outcome"] == "unconfirmed":
            line += (f"; no pod named {e.get('name')} exists yet, so the job has no pod (bidder looks the name up "
                     "again before renting anything else)")
        out.append(line)
    return tuple(out)


def _would(a: Attempt, market: str | None, sent: str = "", storage: float = 0.0) -> str:
    """A dry run's attempt for the user: what would be rented, where, and at what bid or price (and the
    disk's `storage` per hour, Vast's, as `bidder launch`'s plan says it), then `sent` (the request it
    would send)."""
    if a.outcome != "dry_run":
        return f"{a.kind} {a.gpu_type_id}/{a.cloud}: {a.outcome}" + (f" ({a.message})" if a.message else "")
    where = f"{a.gpu_type_id} ({a.cloud}, {market or 'runpod'})"
    if a.kind == "spot" and a.bid_per_gpu is not None:
        price = f"bid ${a.bid_per_gpu:.4f}/GPU-h x {a.gpu_count} GPU{'s' if a.gpu_count != 1 else ''}"
        price += f" = ${a.cost_per_hour:.4f}/h" if a.cost_per_hour is not None else ""
    else:
        price = f"at ${a.cost_per_hour:.4f}/h" if a.cost_per_hour is not None else "at the on-demand price"
    price += f" + ${storage:.3f}/h storage" if storage > 0 else ""
    return f"{'spot' if a.kind == 'spot' else 'on-demand'} {where} {price}{sent} (not sent: dry run)"


def _rate(a: Attempt, storage: float) -> str:
    """A rented pod's bid or kind for its line, with its disk's storage per hour when it has one (Vast)."""
    if storage <= 0:
        return f"spot @ ${a.bid_per_gpu:.3f}/GPU-h" if a.kind == "spot" else "on-demand"
    if a.kind == "spot":
        return f"spot @ ${a.bid_per_gpu:.3f}/GPU-h + ${storage:.3f}/h storage"
    price = f" at ${a.cost_per_hour:.3f}/h" if a.cost_per_hour is not None else ""
    return f"on-demand{price} + ${storage:.3f}/h storage"


def _where(cloud: str | None, market: str | None) -> str:
    return f"{cloud}, vast" if market == "vast" else f"{cloud}"


def left_billing(row: Mapping[str, Any]) -> str | None:
    """How an active pod of the ledger bills when no job runs it (its job left bidder.toml), or None
    when it does not: running; a Vast instance paused (outbid: it resumes by itself, its disk billing
    meanwhile); a RunPod pod outbid or reclaimed (its volume, billed while it is stopped, and no tick
    bids for it again: the warning stopped at the outbid, the volume billed on)."""
    status, market = row.get("desired_status"), row.get("market") or "runpod"
    if status == "RUNNING":
        return "is running"
    if status == "EXITED" and market == "vast":
        return "is paused (outbid), resumes by itself and bills its disk meanwhile"
    if status == "EXITED":
        volume = row.get("volume_in_gb")
        if volume == 0:  # (none, the default: it bills nothing stopped, and `pods` no longer lists it as billing)
            return None
        return ("is stopped (outbid or reclaimed) and keeps its " + ("volume" if volume is None else f"{volume} GB volume")
                + ", which RunPod bills while it is stopped")
    return None


def kept_billing(store: Store, name: str) -> tuple[list[str], str] | None:
    """(pod ids, a line for the user) of a job's pods kept stopped that bill on, or None: a Vast instance
    bills its disk's storage until it is destroyed, a RunPod pod the volume it has (one with none, the
    default, or one the ledger does not know, bills nothing that can be said). A finished job's pod is
    kept stopped by `on_finish = "stop"`: its spend rose while the tick said only "finished"."""
    ids, parts = [], []
    for row in store.managed_pods(name, states=["stopped"]):
        pod_id = row["pod_id"]
        if row.get("desired_status") == "TERMINATED":
            continue
        if row.get("market") == "vast":
            storage = float((store.last_observation(pod_id) or {}).get("storage_per_hr") or 0.0)
            rate = f"${storage:.3f}/h of storage" if storage > 0 else "storage"
            parts.append(f"instance {pod_id} is kept stopped with its disk, which bills {rate} (Vast) until "
                         f"`bidder stop {pod_id} --terminate` deletes it")
        elif row.get("volume_in_gb"):
            parts.append(f"pod {pod_id} is kept stopped with its {int(row['volume_in_gb'])} GB volume, which RunPod "
                         f"bills while it is stopped, until `bidder stop {pod_id} --terminate` deletes it")
        else:
            continue
        ids.append(pod_id)
    return (ids, "; ".join(parts)) if ids else None


def kept_budget(store: Store, name: str, spent: float, budget: float | None) -> tuple[str, str | None] | None:
    """(note, error) of a job whose Vast instances kept stopped bill storage against its budget, or None
    (no budget, none kept). The note follows `kept_billing`'s line: when the storage takes the spend over
    the budget at its rate, or that it has; the error (None while under the budget) is one line on what
    bills and how to delete it. A RunPod pod's stopped volume is left out: the ledger
    books no rate for it (RunPod's answers do not price it), so its spend never moves. A finished job's
    instance kept by `on_finish = "stop"` billed its job from $0.31 past a $0.60 budget while every tick
    said "finished", exit 0."""
    if budget is None:
        return None
    rows = [r for r in store.managed_pods(name, states=["stopped"])
            if r.get("market") == "vast" and r.get("desired_status") != "TERMINATED"]
    if not rows:
        return None
    polls = [store.last_observation(r["pod_id"]) or {} for r in rows]
    rate = sum(float(p.get("storage_per_hr") or 0.0) for p in polls)
    ids = ", ".join(r["pod_id"] for r in rows)
    bills = f"${rate:.3f}/h of storage" if rate > 0 else "storage"
    delete = f"`bidder stop --job {name} --terminate` deletes it (and its disk)"
    if spent > budget + 1e-9:
        return (f"its spend, ${spent:.2f}, is over its budget of ${budget:.2f}: {delete}",
                f"job {name} has spent ${spent:.2f}, over its budget of ${budget:.2f}, and its kept instance {ids} "
                f"bills {bills} on: {delete}")
    seen = [p["ts"] for p in polls if isinstance(p.get("ts"), datetime)]
    if rate <= 0 or not seen:
        return None
    hours = (budget - spent) / rate
    return (f"at {bills} its spend passes its budget of ${budget:.2f} in about {format_duration(hours * 3600)} "
            f"(at {to_iso(max(seen) + timedelta(hours=hours))}) unless {delete}", None)


#: What a dry run's scratch copy keeps of the two tables that grow without end (`prices_days` = 0 keeps a
#: year's 3-4 GB): the days of prices and of Vast offers that decisions read (30 and 7), and one more.
DRY_RUN_PRICE_DAYS = PRICE_HISTORY_DAYS + 1
DRY_RUN_OFFER_DAYS = MACHINE_HISTORY_DAYS + 1


@contextlib.contextmanager
def dry_run_copy(store: Store, now: datetime | None = None) -> Iterator[Store]:
    """A scratch copy of `store`'s database (in the temp folder, deleted afterwards) for `bidder tick
    --dry-run` and `bidder launch --dry-run`: the dry run collects, polls and records its `dry_run` actions
    there as a real run would (so it decides on the prices and reads the spend the real one will), and the
    user's database, its ledger and its lock file are left as they were. With `now`, the copy holds only
    the prices and Vast offers a decision at `now` reads (`DRY_RUN_PRICE_DAYS`, `DRY_RUN_OFFER_DAYS`
    before it, and any later), and the rest whole: the dry run of a year-old database copied it all."""
    with tempfile.TemporaryDirectory(prefix="bidder-dry-run-") as folder:
        scratch = Path(folder) / "dry-run.db"
        try:
            _copy_database(Path(store.path).resolve(), scratch, now)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot copy {store.path} for a dry run: {exc}") from None
        copy = Store.open(scratch)
        copy.clock = store.clock  # (what the copy stores is marked as the real tick would mark it)
        with copy:
            yield copy


def _copy_database(source: Path, target: Path, now: datetime | None) -> None:
    """`source` into a new file `target`, in one read of it (a consistent snapshot, even while a real tick
    writes): every table, index and the schema version; with `now`, of `prices` and `offers` only the rows
    from their days before `now` on."""
    since = {} if now is None else {"prices": to_iso(now - timedelta(days=DRY_RUN_PRICE_DAYS)),
                                    "offers": to_iso(now - timedelta(days=DRY_RUN_OFFER_DAYS))}
    conn = sqlite3.connect(target.as_uri(), uri=True, isolation_level=None)  # (uri: the ATTACH below is one)
    try:
        conn.execute("ATTACH DATABASE ? AS src", (source.as_uri() + "?mode=ro",))
        conn.execute("BEGIN")
        version = conn.execute("PRAGMA src.user_version").fetchone()[0]
        objects = conn.execute("SELECT type, name, sql FROM src.sqlite_master WHERE sql IS NOT NULL "
                               "AND name NOT LIKE 'sqlite_%' ORDER BY type = 'table' DESC, rowid").fetchall()
        for kind, name, sql in objects:
            if kind != "table":
                continue
            conn.execute(sql)
            quoted = '"' + name.replace('"', '""') + '"'
            if name in since:
                conn.execute(f"INSERT INTO main.{quoted} SELECT * FROM src.{quoted} WHERE ts >= ?", (since[name],))
            elif name == "actions":  # the copy's dry-run actions are this dry run's (`Executor.running_rate`)
                conn.execute("INSERT INTO main.actions SELECT * FROM src.actions WHERE outcome != 'dry_run'")
            else:
                conn.execute(f"INSERT INTO main.{quoted} SELECT * FROM src.{quoted}")
        if conn.execute("SELECT 1 FROM src.sqlite_master WHERE name = 'sqlite_sequence'").fetchone():
            conn.execute("DELETE FROM main.sqlite_sequence")
            conn.execute("INSERT INTO main.sqlite_sequence SELECT * FROM src.sqlite_sequence")
        for kind, _name, sql in objects:
            if kind != "table":
                conn.execute(sql)  # indexes (and any view or trigger) once the rows are in
        conn.execute(f"PRAGMA main.user_version = {int(version)}")
        conn.execute("COMMIT")
        conn.execute("DETACH DATABASE src")
    finally:
        conn.close()


def run_tick(client: RunPodClient | None, store: Store, config: Config, now: datetime, *, dry_run: bool = False,
             events: Callable[[dict[str, Any]], None] | None = None,
             advise: Callable[[JobSpec, Policy, datetime, JobProgress | None], Decision] | None = None,
             vast: Any | None = None) -> TickReport:
    """One cycle under the exclusive tick lock (LockHeld at once if another tick holds it). `vast` (a
    `bidder.vast_pods.VastPodApi`) adds Vast: collected in the same cycle, its pods polled, and jobs
    with market `vast` or `any` decided and acted on there too. `client` None (no RunPod key): Vast alone;
    both None (no key at all): each job's line says which key to set, and nothing is sent."""
    if client is None and vast is None:
        return _no_market(store, config, now, dry_run, events)
    markets = tuple(m for m, api in (("runpod", client), ("vast", vast)) if api is not None)
    with store.exclusive_lock("tick"):
        first = client if client is not None else vast
        ex = Executor(first, store, dry_run=dry_run, events=events, max_spend_per_hour=config.max_spend_per_hour,
                      spot_recheck=config.spot_recheck, advise=advise, markets=markets)
        others: dict[str, Executor] = {}
        if vast is not None and client is not None:
            vex = Executor(vast, store, dry_run=dry_run, events=events, max_spend_per_hour=config.max_spend_per_hour,
                           spot_recheck=config.spot_recheck, advise=advise, markets=markets)
            vex.log = ex.log  # one event log for the report
            others["vast"] = vex
        return _Tick(client, store, config, now, ex, others).run()
