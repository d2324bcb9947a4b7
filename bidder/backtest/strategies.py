"""What a backtest strategy is, and the ones bidder is compared with.

A strategy is a small object with one method, `decide(view, state) -> Action`, called by the
replay engine (`bidder.backtest.engine`) at each decision point and right after each interruption:

    view   what the market has shown so far (`bidder.backtest.engine.HistoryView`): samples up to now
           only; the future is not in memory the view can reach
    state  where the job stands (`RunState`): work done and left, money spent, the pod it has

    Action("spot", market, bid)    run a spot pod on market `market` (index into view.markets) at `bid`
    Action("on_demand", market)    run an on-demand pod there
    WAIT                           run nothing (stops the pod if there is one)
    KEEP                           leave things as they are

Returning the pod the job already has is the same as KEEP; anything else stops it (and loses the
restart overhead) before starting the new one.

The baselines are the rules people use today; they do not plan, so a deadline they miss is
reported missed, not rescued. Each picks, when it has no pod, the cheapest market by current
price per unit of work (the price it would pay: on-demand, the floor, or for bid-on-demand its bid,
the on-demand price), and stays there until interrupted. The spot rules never bid above the
market's on-demand price (nobody knowingly pays more for spot than for on-demand; the
yardstick for these rules, 2.3-5.1x of hindsight on the AWS trace, assumes the same): while every
floor is above it they wait. `FloorBid(..., above_on_demand=True)` is the uncapped variant.

    on-demand       always on-demand
    floor           bid the current floor; after an interruption, bid the new floor (what SkyPilot
                    and dstack do on RunPod)
    floor+0.10      the floor plus 10 cents (a common hand rule)
    bid-on-demand   bid the on-demand price (the old AWS advice), on the market the on-demand rule
                    takes (cheapest on-demand per unit of work, among those whose floor is under it)
    bidder          the production optimizer (`bidder.optimizer.decide`) fed by one incremental
                    `bidder.market.FloorTracker` per market

All of them respect `policy.max_price`, `allow_spot` and `allow_on_demand`.
"""

from __future__ import annotations

import copy
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import numpy as np

from bidder.backtest.types import HistoryView, Market
from bidder.errors import Infeasible
from bidder.market import SILENCE_LOOKBACK_HOURS, FloorTracker, MarketStats, longest_silence_hours, stats_of
from bidder.models import (
    DEFAULT_MARKET,
    Decision,
    JobProgress,
    JobSpec,
    MarketKey,
    Policy,
    PriceQuote,
    market_key,
)
from bidder.optimizer import decide, hold_for_silence, planned_choice
from bidder.planner import FloorModel, MarketNow, PodNow, fit_floor_model, recent_max

__all__ = [
    "BASELINE_NAMES",
    "KEEP",
    "STRATEGY_NAMES",
    "WAIT",
    "Action",
    "BidOnDemand",
    "BidderFactory",
    "BidderStrategy",
    "FloorBid",
    "OnDemand",
    "PodInfo",
    "RunState",
    "Strategy",
    "StrategyFactory",
    "WarmTrackers",
    "baseline_factory",
]

Kind = Literal["spot", "on_demand", "wait", "keep"]

#: Every strategy name the backtest knows, in report order ("optimum" and "hindsight" are computed
#: from the whole window, not replayed decision by decision).
STRATEGY_NAMES: tuple[str, ...] = ("bidder", "on-demand", "floor", "floor+0.10", "bid-on-demand", "optimum",
                                   "hindsight")
BASELINE_NAMES: tuple[str, ...] = ("on-demand", "floor", "floor+0.10", "bid-on-demand")


@dataclass(frozen=True, slots=True)
class Action:
    """What a strategy wants now. `market` indexes `view.markets`; `bid` is USD per GPU-hour (spot)."""

    kind: Kind
    market: int | None = None
    bid: float | None = None


KEEP = Action("keep")
WAIT = Action("wait")


@dataclass(frozen=True, slots=True)
class PodInfo:
    """The pod the job has: `kind` "spot" | "on_demand", its market index, bid (spot), run start."""

    kind: str
    market: int
    bid: float | None
    started: float          # epoch seconds the current run started
    run_work_hours: float   # work done in this run (lost, up to the restart overhead, if interrupted)


@dataclass(frozen=True, slots=True)
class RunState:
    """Where the job stands at a decision point (times are epoch seconds)."""

    now: float
    start: float
    deadline: float | None        # batch jobs; None = no deadline
    end: float | None             # keep-running jobs: when the service may stop
    work_done_hours: float
    work_left_hours: float | None  # None for keep-running
    spent: float
    interruptions: int
    pod: PodInfo | None
    just_interrupted: bool


class Strategy(Protocol):
    name: str

    def decide(self, view: HistoryView, state: RunState) -> Action: ...


#: Builds a fresh strategy for one run: (markets, job, policy) -> Strategy.
StrategyFactory = Callable[[Sequence["Market"], JobSpec, Policy], Strategy]


def _priced(floor: np.ndarray, on_demand: np.ndarray) -> np.ndarray:
    """Which samples quote a price at all (a floor or an on-demand price): the times something could act."""
    return np.isfinite(floor) & (floor > 0) | np.isfinite(on_demand) & (on_demand > 0)


def _cost_per_work(prices: np.ndarray, speeds: np.ndarray) -> np.ndarray:
    """Price per unit of work; NaN prices (no capacity) become +inf so argmin skips them."""
    with np.errstate(invalid="ignore"):
        per_work = prices / speeds
    return np.where(np.isnan(per_work), np.inf, per_work)


class _Baseline:
    """Shared parts: speeds per market and the user's cap."""

    name = "baseline"

    def __init__(self, markets: Sequence[Market], job: JobSpec, policy: Policy) -> None:
        self.speeds = np.array([job.speed_of(m.gpu_type_id) for m in markets], dtype=float)
        self.cap = math.inf if policy.max_price is None else float(policy.max_price)
        self.policy = policy

    def _cheapest(self, prices: np.ndarray) -> int | None:
        """Index of the cheapest market per unit of work among those at or under the cap."""
        allowed = np.where(prices <= self.cap, prices, np.nan)
        per_work = _cost_per_work(allowed, self.speeds)
        best = int(np.argmin(per_work))
        return None if math.isinf(per_work[best]) else best


class OnDemand(_Baseline):
    """Always on-demand, on the market with the cheapest on-demand price when it starts; a pod whose
    price rises over max_price is ended (as `bidder tick` ends one), and the next start is under it."""

    name = "on-demand"

    def decide(self, view: HistoryView, state: RunState) -> Action:
        if state.pod is not None:
            # (A NaN price, no quote now: the held one is paid, as the engine bills it.)
            return WAIT if float(view.on_demand_now()[state.pod.market]) > self.cap else KEEP
        if not self.policy.allow_on_demand:
            return KEEP
        best = self._cheapest(view.on_demand_now())
        return WAIT if best is None else Action("on_demand", best)


class FloorBid(_Baseline):
    """Bid the current floor plus `markup` on the cheapest market by floor; after an interruption,
    bid again at the new floor. The bid never exceeds max_price nor, unless `above_on_demand`, the
    market's on-demand price: while every floor is above that, it waits (a spot-only rule)."""

    def __init__(self, markets: Sequence[Market], job: JobSpec, policy: Policy, markup: float = 0.0,
                 above_on_demand: bool = False) -> None:
        super().__init__(markets, job, policy)
        self.markup = markup
        self.above_on_demand = above_on_demand
        self.name = "floor" if markup == 0 else f"floor+{markup:.2f}"

    def decide(self, view: HistoryView, state: RunState) -> Action:
        if state.pod is not None or not self.policy.allow_spot:
            return KEEP
        floors = view.floors_now()
        caps = np.full(floors.shape, self.cap)
        if not self.above_on_demand:
            caps = np.fmin(caps, view.on_demand_now())  # NaN on-demand: only the user's cap applies
        with np.errstate(invalid="ignore"):
            usable = np.where(floors <= caps, floors, np.nan)
        best = self._cheapest(usable)
        if best is None:
            return WAIT
        return Action("spot", best, min(float(floors[best]) + self.markup, float(caps[best])))


class BidOnDemand(_Baseline):
    """Bid a market's own on-demand price (capped at max_price) on the market the on-demand rule would
    take: the cheapest bid per unit of work among the markets whose floor is at or under it (ties: the
    lowest floor per unit of work); wait while every floor is above its market's bid. A pod pays its
    bid, so it starts at no more per unit of work than the on-demand rule pays, and loses restarts to
    interruptions on top.
    (It took the cheapest floor and bid that market's on-demand: on three types at on-demand 0.3, 1.5
    and 4.0, a 10-hour job bid 4.0 on the one with the lowest floor and cost $40 where on-demand cost $3.)
    A market with no on-demand quote now has nothing to bid."""

    name = "bid-on-demand"

    def decide(self, view: HistoryView, state: RunState) -> Action:
        if state.pod is not None or not self.policy.allow_spot:
            return KEEP
        floors = view.floors_now()
        bids = np.minimum(view.on_demand_now(), self.cap)  # NaN on-demand: no bid
        with np.errstate(invalid="ignore"):
            usable = floors <= bids
            per_work = _cost_per_work(np.where(usable, bids, np.nan), self.speeds)
        cheapest = float(per_work.min())
        if math.isinf(cheapest):
            return WAIT
        ties = np.where(usable & (per_work <= cheapest * (1 + 1e-12)), floors, np.nan)
        best = int(np.argmin(_cost_per_work(ties, self.speeds)))
        return Action("spot", best, float(bids[best]))


def baseline_factory(name: str) -> StrategyFactory:
    """The factory of a baseline by its report name."""
    if name == "on-demand":
        return OnDemand
    if name == "floor":
        return FloorBid
    if name == "floor+0.10":
        return lambda markets, job, policy: FloorBid(markets, job, policy, markup=0.10)
    if name == "bid-on-demand":
        return BidOnDemand
    raise ValueError(f"{name!r} is not a baseline; baselines: {', '.join(BASELINE_NAMES)}")


def _feed(trackers: Sequence[FloorTracker], view: HistoryView, lo: int, hi: int) -> None:
    """Give each market's tracker the samples lo..hi-1 the view has revealed, in time order."""
    if hi <= lo:
        return
    if hi == lo + 1 == view.n:  # a replay step's one new sample, every market's latest (fewer numpy calls)
        ts = float(view.ts[lo])
        for tracker, floor, on_demand in zip(trackers, view.floors_now().tolist(), view.on_demand_now().tolist(),
                                             strict=True):
            tracker.update(ts, floor, on_demand)
        return
    times = view.ts[lo:hi].tolist()
    for m, tracker in enumerate(trackers):
        update = tracker.update
        for t, floor, on_demand in zip(times, view.floor(m)[lo:hi].tolist(), view.on_demand(m)[lo:hi].tolist(),
                                       strict=True):
            update(t, floor, on_demand)  # NaN means none; the tracker turns it into None


class WarmTrackers:
    """Trackers fed with the history before a window's start, shared by the windows of one backtest.

    Windows start in time order, so each new window feeds only the samples since the previous one
    (from its own view: nothing unrevealed) and takes a deep copy, instead of replaying all the
    history before it. A copy fed the same samples in the same order is the same state.
    """

    def __init__(self, markets: Sequence[Market], tracker_params: Mapping[str, Any] | None = None) -> None:
        self.markets = tuple(markets)
        self.params = dict(tracker_params or {})
        self.trackers: list[FloorTracker] = []
        self.seen = 0
        self.first_ts = math.nan

    def fresh(self) -> list[FloorTracker]:
        return [FloorTracker(m.gpu_type_id, m.cloud, m.gpu_count, market=m.market, **self.params)
                for m in self.markets]

    def fork(self, view: HistoryView) -> list[FloorTracker]:
        """Trackers fed with every sample the view has revealed (a private copy)."""
        n = view.n
        if not self.trackers or n < self.seen or view.ts[0] != self.first_ts:
            self.trackers, self.seen, self.first_ts = self.fresh(), 0, float(view.ts[0])
        _feed(self.trackers, view, self.seen, n)
        self.seen = n
        return copy.deepcopy(self.trackers)


class BidderFactory:
    """Makes the `bidder` strategy for each window of one backtest, sharing one WarmTrackers."""

    def __init__(self, tracker_params: Mapping[str, Any] | None = None) -> None:
        self.tracker_params = tracker_params
        self.warm: WarmTrackers | None = None
        self.models: FloorModels | None = None

    def __call__(self, markets: Sequence[Market], job: JobSpec, policy: Policy) -> BidderStrategy:
        if self.warm is None or self.warm.markets != tuple(markets):
            self.warm = WarmTrackers(markets, self.tracker_params)
            self.models = FloorModels(markets)
        return BidderStrategy(markets, job, policy, tracker_params=self.tracker_params, warm=self.warm,
                              models=self.models)


#: A backtest refits each market's price-state model once per this many hours of the trace (at whole
#: multiples of it, so every window of a backtest shares the fits); `bidder tick` refits at every tick.
REFIT_HOURS = 24.0


class FloorModels:
    """Each market's price-state model (`bidder.planner`), fitted on what the view has revealed up to
    the last refit time (with a Vast market's machine pauses as of then, where the history holds the
    collector's stored offers, as the tick's plans have them), and shared by the windows of one backtest."""

    def __init__(self, markets: Sequence[Market]) -> None:
        self.markets = tuple(markets)
        self.fits: dict[tuple[int, float], FloorModel | None] = {}

    def at(self, view: HistoryView, now: float) -> list[FloorModel | None]:
        epoch = math.floor(now / (REFIT_HOURS * 3600.0)) * REFIT_HOURS * 3600.0
        out = []
        for i in range(len(self.markets)):
            key = (i, epoch)
            if key not in self.fits:
                n = int(np.searchsorted(view.ts, epoch, side="right"))
                od = view.on_demand(i)[:n]
                known = od[~np.isnan(od)]
                model = None if not len(known) else fit_floor_model(
                    view.ts[:n], view.floor(i)[:n], float(known[-1]), epoch)
                hazard = None if model is None else view.machine_hazard(i, epoch)
                if hazard is not None:  # Vast's machines pause a pod the floor does not show (as the tick plans)
                    model = replace(model, machine_premiums=hazard.premiums, machine_rates=hazard.rates)
                self.fits[key] = model
            out.append(self.fits[key])
        return out


class BidderStrategy:
    """bidder itself: the production `bidder.optimizer.decide`, fed like `bidder tick` would be.

    One `FloorTracker` per market takes each sample once, as the view reveals it (incremental,
    never recomputed); at each decision the trackers' statistics, the latest quote of every market
    and the job's progress (the running pod, so the optimizer's hysteresis applies) go to `decide`.
    On a Vast market of a history with stored offers, the statistics count its machines' pauses, from
    the offers up to the decision (`HistoryView.machine_hazard`), as `bidder tick` counts them.
    A market whose tracker still lacks history gets no statistics (on-demand only there, as in
    production). When `decide` raises Infeasible, the strategy runs on-demand if the deadline is
    the constraint (finish as soon as possible), else keeps what it has; `notes` counts such calls.
    """

    name = "bidder"

    def __init__(self, markets: Sequence[Market], job: JobSpec, policy: Policy,
                 tracker_params: Mapping[str, Any] | None = None, warm: WarmTrackers | None = None,
                 models: FloorModels | None = None) -> None:
        self.markets = tuple(markets)
        self.models = models or FloorModels(self.markets)
        self.planned = (not job.keep_running and job.work_hours is not None and job.deadline is not None
                        and policy.budget is None)
        self.job, self.policy = job, policy
        self.warm = warm or WarmTrackers(self.markets, tracker_params)
        self.trackers: list[FloorTracker] = []
        self.index = {m.key: i for i, m in enumerate(self.markets)}
        self.seen = 0
        self.notes: Counter[str] = Counter()
        self.fallback = OnDemand(self.markets, job, policy)
        self._start: tuple[float, datetime] | None = None

    def _catch_up(self, view: HistoryView) -> None:
        if not self.trackers:
            self.trackers = self.warm.fork(view)
        else:
            _feed(self.trackers, view, self.seen, view.n)
        self.seen = view.n

    def decide(self, view: HistoryView, state: RunState) -> Action:
        action = self._decide(view, state)
        pod = state.pod
        if action.kind == "wait" and pod is not None and pod.kind == "spot":
            # A stop must stand (`optimizer.decide` holds the tick to it): decided again just after the
            # stop, its restart's work lost, the job must not start the same pod at once. Here the plan,
            # which the rates' `decide` does not see in a replay, is asked too.
            lost = max(float(self.job.restart_overhead_hours), 0.0) * self.job.speed_of(self.markets[pod.market].gpu_type_id)
            again = self._decide(view, replace(state, pod=None, work_done_hours=max(state.work_done_hours - lost, 0.0),
                                               work_left_hours=None if state.work_left_hours is None
                                               else state.work_left_hours + lost))
            if again.kind == "spot" and again.market == pod.market and again.bid == pod.bid:
                return KEEP
        return action

    def _decide(self, view: HistoryView, state: RunState) -> Action:
        pod = state.pod
        if pod is not None and pod.kind == "on_demand" and self.policy.max_price is not None \
                and float(view.on_demand_now()[pod.market]) > self.policy.max_price:
            # Its price rose over the cap: the pod is ended and the job decided again, as `bidder tick`
            # does (it kept paying 2.42 under a 1.51 cap). Never the same pod again: that would be a keep.
            action = self._decide(view, replace(state, pod=None))
            same = action.kind == "keep" or (action.kind == "on_demand" and action.market == pod.market)
            return WAIT if same else action
        if self.planned:
            action = self._planned(view, state)
            if action is not None:
                return action
        self._catch_up(view)
        now = view.now
        stats: dict[MarketKey, MarketStats] = {}
        for i, (market, st) in enumerate(zip(self.markets, stats_of(self.trackers, now), strict=True)):
            if st is None:
                self.notes["insufficient history"] += 1
                continue
            hazard = view.machine_hazard(i)
            # Vast's machine pauses, from the offers stored up to now, as the tick counts them.
            stats[market.key] = st if hazard is None else st.with_machine_pauses(hazard.premiums, hazard.rates)
        last = float(view.ts[-1])
        at = datetime.fromtimestamp(now, UTC)
        sampled = at if last == now else datetime.fromtimestamp(last, UTC)
        floors, on_demand = view.floors_now(), view.on_demand_now()
        quotes = [PriceQuote(ts=sampled, gpu_type_id=m.gpu_type_id, cloud=m.cloud, gpu_count=m.gpu_count,
                             minimum_bid_price=None if math.isnan(floors[i]) else float(floors[i]),
                             uninterruptable_price=None if math.isnan(on_demand[i]) else float(on_demand[i]),
                             memory_in_gb=m.memory_in_gb, display_name=m.display_name, market=m.market)
                  for i, m in enumerate(self.markets)]
        pod = state.pod
        current = self.markets[pod.market] if pod else None
        progress = JobProgress(work_done_hours=state.work_done_hours, spent=state.spent,
                               interruptions=state.interruptions,
                               current_gpu_type_id=current.gpu_type_id if current else None,
                               current_cloud=current.cloud if current else None,
                               current_action=pod.kind if pod else None,  # type: ignore[arg-type]
                               current_bid_per_gpu=pod.bid if pod else None,
                               current_market=current.market if current else None,
                               started=self._started(state.start))
        try:
            decision = decide(self.job, self.policy, quotes, stats, at, progress, alternatives=False, reasons=False)
        except Infeasible as exc:
            self.notes[f"infeasible: {exc.constraint}"] += 1
            if exc.constraint == "deadline" and (pod is None or pod.kind != "on_demand"):
                return self.fallback.decide(view, replace(state, pod=None))
            return KEEP
        return self._action(decision)

    def _started(self, start: float) -> datetime:
        """The run's start as a datetime (the same every step: made once)."""
        if self._start is None or self._start[0] != start:
            self._start = (start, datetime.fromtimestamp(start, UTC))
        return self._start[1]

    def _planned(self, view: HistoryView, state: RunState) -> Action | None:
        """The plan's action (the production `planned_choice`), or None when a market has no model yet."""
        now = view.now
        models = self.models.at(view, now)
        if any(m is None for m in models):
            return None
        ts = view.ts
        floors = view.floors_now()
        markets = []
        for i, model in enumerate(models):
            floor = float(floors[i])
            markets.append(MarketNow(model, recent_max(ts, view.floor(i), now, model.step_h),  # type: ignore[union-attr]
                                     None if math.isnan(floor) else floor, self.job.speed_of(self.markets[i].gpu_type_id)))
        pod = state.pod
        progress = JobProgress(work_done_hours=state.work_done_hours, spent=state.spent,
                               interruptions=state.interruptions,
                               started=self._started(state.start))
        at = datetime.fromtimestamp(now, UTC)
        job = self.job
        # The silences `decide` reads from the trackers, read here from the view: per market, its priced
        # times (a floor or an on-demand price), and the shortest of the markets', as `decide` takes it.
        first = max(int(np.searchsorted(ts, now - SILENCE_LOOKBACK_HOURS * 3600.0)) - 1, 0)
        recent = ts[first:]
        silence = min(longest_silence_hours(recent[_priced(view.floor(i)[first:], view.on_demand(i)[first:])], now)
                      for i in range(len(models)))
        if silence > 0:
            od = view.on_demand_now()
            job, _, short = hold_for_silence(job, progress, at, silence, [
                job.speed_of(m.gpu_type_id) for i, m in enumerate(self.markets) if not math.isnan(od[i])])
            if short:
                return None  # no slack beside the silence: the rates run on-demand
        choice = planned_choice(job, self.policy, markets,
                                None if pod is None else PodNow(pod.market, pod.kind, pod.bid),
                                at, progress, whole_job=True)
        if choice is None or choice.market is None:
            return None
        if choice.action == "keep":
            return KEEP
        if choice.action == "wait":
            return WAIT
        if choice.action == "on_demand":
            return Action("on_demand", choice.market)
        return Action("spot", choice.market, choice.bid)

    def _action(self, decision: Decision) -> Action:
        if decision.action == "wait" or decision.gpu_type_id is None:
            return WAIT
        market = self.index.get(market_key(decision.gpu_type_id, decision.cloud or "", decision.gpu_count,
                                           decision.market or DEFAULT_MARKET))
        if market is None:
            raise ValueError(f"the optimizer chose {decision.gpu_type_id} {decision.cloud}, not a market of the run")
        if decision.action == "on_demand":
            return Action("on_demand", market)
        return Action("spot", market, decision.bid_per_gpu)
