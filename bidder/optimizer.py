"""The optimizer: spot (at which bid), on-demand, or wait, for one job right now. Pure: no I/O, no clock.

Plans (batch jobs with a deadline)
----------------------------------
A batch job with a deadline follows a plan (`bidder.planner`): the floor's half-hour maxima form a
Markov chain over price levels (quantiles under on-demand; transitions recency-weighted over 30 days,
half-life a week; by quarter of the UTC day where the floor has a daily cycle that forecasts it better
out of sample), and a stochastic DP over (blocks to the deadline, work left, floor state, pod) gives
the cheapest expected way to finish: wait, on-demand, start spot at a level (pay-as-bid), keep the pod,
or end it (losing the restart's work). The plan knows what the current state predicts (a spike
that usually passes, a calm that usually lasts) and prices slack exactly, where the rates below average
over all time. The plan is followed while its expected interruptions, averaged over the floor's usual
states (at that hour, with a daily model), fit what is left of the window's budget, first as it is, then with each interruption priced
at half an hour of on-demand (`planner.INTERRUPTION_PRICES`; a pod ended by choice or moved pays the
same price). When neither fits (the tolerance binds), the price is the budget's: the smallest of a grid
about 1.2x apart, from 0.6 to 24 hours of on-demand, whose plan fits (`planner.BUDGET_PRICES`, found by
search per decision; a coarse ladder of 2 and 8 hours once tried kept plans far under the budget at a
higher cost than the rates; a grid that stopped at 4 hours left a budget nearly spent to the rates,
30% of AWS us-east-1a's decisions at tolerance low). When no price fits, the rates decide. A switch
away from the running pod is checked in the pod and work it leaves the job with (its restart
included), where the next decision will check it; so the plan and the rates do not hand a job back
and forth, a restart lost at each hand-over. Nor does the plan move a running spot pod to another
market or stop it to wait when the restart would leave less slack than the reserve `R` below (its
values are all deadline penalty there: two zones' plans once moved a pod between them every five
minutes until the deadline was missed); it keeps the pod or goes on-demand. A running on-demand pod is
ended to wait only when the wait fits the budget left with room (`planner.LEAVE_ON_DEMAND_MARGIN`: its
expected interruptions times 1.1, the rates' `KEEP_MARGIN`), while a wait already begun needs only to fit
(a Schmitt trigger; going on-demand from a wait is unchanged). The plan's own price of ending the pod
(the restart's work, and an interruption's price) already makes its saving pay for the restart; what
it lacked is room: a wait that fits by a hair stops fitting at the next decision (less of the window
left, no work done), the job rents on-demand again, and once that has done some work the wait fits
again. A 24-hour job due in 3 days on the shipped trace's RTX 4090 community (tolerance 1.75 a day, the
plan's decision every 10 minutes) ended on-demand to wait 5 times in 18 hours, 2 with the margin; live
on the emulator's Vast RTX 4090 at tolerance medium, on-demand instances 2 -> 1 ($7.32 -> $6.80, seed 0)
and 5 -> 1 ($7.33 -> $7.03, seed 1); its RTX A6000 unchanged. Backtested (check_decisions, tolerance 2),
on-demand held longer costs a little where no flip was: the emulator's trace +0.44% on one market
(switches 34 -> 33) and +0.57% on four, AWS unchanged; at tolerance low the study at 93c4592 (with the
whole-interruption rule since its last run) has AWS 2.12-2.41x -> 2.17-2.44x the optimum, no window over 3
of its 3.5 interruptions (4 before). Markets the job runs on at
the same speed (zones or clouds of one GPU, interchangeable types) are also planned as one pool
(`planner.pooled_model`): a chain over the floor of whichever market was calmest in the block before,
so the plan knows that when one market spikes the next start can go to another; the pool is one more
option beside each market alone, and its spot starts go to its calmest market under the bid. Replayed on the AWS 2016 trace (100 GPU-h, 7 days, 15-minute
restarts, tolerance high) this cut the mean cost from 1.53x to 1.39x the offline optimum on us-east-1a
and from 1.57x to 1.42x on us-east-1c, and on markets never tuned on it is cheaper than the rates too
(`analysis/results/optimizer-pass4.md`). Everything else (services, jobs without a deadline, a plan
over the budget, a job too long for one table, markets without a model) is decided by the rates:

Cost model (pay-as-bid)
-----------------------
A spot pod bidding `b` pays `b` per GPU per running hour, whatever the floor does below `b`. Let `λ`
be its interruption rate per running hour (outbids plus reclaims, from `bidder.market`) and `r` the
restart overhead (hours of work lost per interruption: the time to resume plus the work since the last
checkpoint). Over a long run of `H` running hours the pod suffers `λH` interruptions and loses `λHr`
hours of work, so it does `H(1 - λr)` hours of useful work for `bH` dollars:

    cost per useful hour   c(b) = b / (1 - λ(b)·r)          (no finite cost when λ(b)·r >= 1)

and with speed factor `s` (work per hour relative to the reference GPU) `c(b) / s` per unit of work.
On-demand has λ = 0: `c = price / s`. While the floor is above `b` the job waits (no spend, no
progress); the share of time a bid-`b` pod can run is the availability `A(b)`, so spot makes useful
progress at `ρ(b) = s·A(b)·(1 - λ(b)·r)` units of work per wall-clock hour.

Bursty markets: a spike often comes back several times within minutes, then calm lasts hours. The
market statistics give the hazard `λ(b | a)` of a run that has already been calm for `a`, and the share
of time `A(b, a)` that lies beyond such a settling age. A standing plan "bid `b`, (re)start once the
floor has stayed under `b` for `a`" has cost `c(b | a)` and progress `ρ(b, a)` from those. Every choice
is such a plan: a bid now is a plan whose condition already holds (the floor is under `b` and has been
for at least `a`), and the running pod is judged on the same numbers, so keeping and restarting a pod
never disagree.

Deadlines ("Can't Be Late", Wu et al., NSDI 2024)
------------------------------------------------
Slack = time left − work left at on-demand speed. A plan runs spot while slack lasts and falls back to
on-demand when slack reaches the reserve `R = 2r + 0.5 h` (one more interruption plus the restart on
on-demand, and half an hour for the decision interval): with progress `ρ` below on-demand speed `s_od`,
slack shrinks at `1 − ρ/s_od` per hour, so spot runs for `t_sw = (S − R) / (1 − ρ/s_od)` hours and does
`min(W, ρ·t_sw)` of the `W` units left; the rest is on-demand. The plan's expected cost per unit of work
blends the two; it is the figure every candidate is ranked by (`expected_cost_per_hour`). When slack is
at the reserve the job goes on-demand and, since on-demand keeps slack constant, stays there.
The interruptions the job may still take (`A`: the tolerance's budget left in the window, see
Constraints) are spent like slack: a spot option with hazard `λ` buys `s·(1 − λr)/λ` units of work per
interruption, so it does at most `A·s·(1 − λr)/λ` of them and on-demand the rest (sooner than the slack
alone would send it there); a bid the floor crosses often is then a short, cheap spell of spot before
on-demand, ranked by what it costs in all. A pod started now must also keep its plan's rate within
the tolerance as if the budget were no limit (see Constraints). Measured
(`analysis/results/optimizer-pass7.md`): at tolerance medium the emulator's RTX 4090 1.97x -> 1.90x
the optimum and L40S 1.63x -> 1.54x, synthetic seed 12 2.23x -> 2.17x, AWS us-east-1a 1.60x -> 1.57x
(at low 2.49x -> 2.42x, worst window 5.0x -> 4.4x); the emulator's H100 at medium 1.75x -> 1.81x.

A pod started now (or running) is not an average member of its plan: its first run faces the hazard
`λ₁ = λ(b | the calm the floor has shown so far)` and no wait. So a bid now is two phases: the first run
lasts `E[min(X, T)] = (1 − e^(−λ₁T))/λ₁` hours (`X ~ Exp(λ₁)`, `T` the hours the work needs), does that
much work and, with probability `1 − e^(−λ₁T)`, loses `r` of it; the standing plan takes the rest of the
work with the slack left after it. Its cost per unit of work is the money of both phases over the work.

Waiting (DrAFTS-like reading of the market, Wolski and Brevik): the best standing plan over every
market, bid and settling age has cost `κ`. If the best thing to do now costs more than `κ` (the floor is
above the plan's bid, or just came back under it and has not settled), the job waits with `act_below`
set to the plan's bid; as slack runs out the plans shift to higher bids and on-demand, so `κ` rises and
the job acts. Waiting first spends slack: the expected time until the floor has stayed under the plan's
bid for its settling age (`MarketStats.settle_wait_hours`: the rest of the current excursion above the
bid, from the completed waits that lasted as long, then a renewal over the completed runs and waits, as
a calm that ends too soon starts again after an excursion); the plan is priced with the slack left
after that. Without a deadline,
plans must finish within `NO_DEADLINE_PATIENCE` × the work, and since the time a wait takes is not priced
there, a wait for the floor to fall is taken only if it saves at least `policy.min_wait_savings` (5%) of
the best thing that can start now; the reasons say what waiting saves (share and dollars). So is a job
with a deadline but no on-demand under the policy (no fallback: slack prices nothing) waiting for the
floor to fall (not to settle: that buys fewer interruptions, which the tolerance counts), and with its
interruption budget spent such a job does not wait at all (spot goes on at the highest bid).

On-demand is not a one-way door: a job on on-demand is judged by the same keep-or-switch rule as a
spot pod, so it moves to spot when the saving pays for the restart (above the reserve). The job's
on-demand pod is priced at its own rate when the caller knows it (`JobProgress.current_price_per_gpu`;
the tick does for a running pod and a stopped Vast instance, which keeps its offer's price; a backtest's
pod pays the quote): held to `max_price` and costed at that rate, not at its
market's quote (a Vast instance takes its offer off the listing: a pod at $0.3485 read as the next
offer's $0.3607, over a $0.35 cap, and was ended for spot), and it is its market's on-demand option
(the plans' fallback too); a new pod is held to the quote. Where the plan would end it for a cap its own
rate is within (its market's on-demand over it), the rates decide. A market
without statistics gets on-demand candidates only, and the reasons say why (`history_notes`: "not
enough price history for spot yet: N of M samples").

A running pod is kept unless leaving it pays for its restart: the saving per unit of work times the work
during which it lasts (the new pod's expected run, at most the work left; when stopping to wait, the
current pod's) must exceed the restart's cost: `r` hours of work redone at the new price or, with a
deadline, the new plan's extra cost for that work and the slack the restart spends, if more. A
running pod is also kept while its expected interruptions stay within `KEEP_MARGIN` of the tolerance
(the estimates move with every sample); a running Vast instance's machine pauses are read at its bid's
premium over its own machine's minimum bid when the poll gives it, not over the floor now (the next
offer, once it rents the cheapest). And a move must stand: decided again just after it (the work
its restart loses taken off, the new pod running), the rates must keep the new pod, or the running pod
stays (if it is no candidate either, the job takes what it would choose once the restart is behind it).
Without that, a job due in 15 hours with no on-demand fallback re-bid its A40 pod $0.252 -> $0.244 ->
$0.252 -> $0.244 in 25 minutes, the cheaper bid passing only before its restart; on 20,000 random running
states 3 moves change, and none of `check_decisions.py`'s. So calling `decide` at every tick (a backtest
calls it every 5 minutes) does not thrash.
A stop must stand too (`_stop_must_stand`): a running spot pod is not stopped to wait when, decided again
just after the stop, the job would start the same pod at once.
Keep-running jobs (a service) minimise cost per hour the same way (a plan is pure spot; its cost is
its cost per useful hour). A running spot pod (a service's or a batch job's) that still meets the
constraints is never stopped just to wait: it runs until a cheaper pod replaces it (re-bid, keep-or-
switch rule) or the floor takes it. A wait's saving rests on the floor falling soon after the stop;
replayed on the AWS trace, stopping to wait lost more than it saved (mean cost / optimum 1.44x ->
1.42x on us-east-1a, 1.51x -> 1.49x on us-east-1c without those stops). A job on on-demand may still
stop to wait for the floor to fall under a bid, not for a floor already under it to settle: it runs on
until the spot pod is ready and worth its restart (stopped for each settling wait, on a floor spiking
over on-demand in one sample in twenty, a job went on-demand, idle, on-demand every few minutes as each
spike reset the calm, a restart lost each time: 1.3-1.4x on-demand).

Constraints: bid <= `policy.max_price` and <= the on-demand price; expected interruptions per day <=
the tolerance (0: on-demand only), counted per day of the job's window: 24·λ times the share of the time
to the deadline (without one, from the plan's start to its expected completion: a wait before it does not
dilute the rate) the plan keeps a spot pod running, and 24·λ
for a service (with a deadline and a known start, `progress.started`, the window has a budget of
`tolerance × window days` interruptions: those already suffered come out of it, and the rest of the
window may expect at most what is left per day left, no more than the tolerance a day unless quiet
days saved some: then the t interruptions whose count plus one standard deviation (Poisson: t + √t)
fits what is left (`SAVED_BUDGET_MARGIN`); so the realised count, not only the expected one, is held to the
tolerance; an interruption being whole, a budget of one or more with under one left allows no more spot
(the next would take the window over; a window whose whole budget is under one keeps it as an expected
count); without a deadline, a service with a
known start has `tolerance × (days lived + 1)` for its life so far and the day ahead: on the shipped
trace's RTX A6000 a service at tolerance low took 5.5 interruptions in 8 days where 4 were allowed,
its hazard estimates alone running low after each interruption); expected total <= the budget left
(spent, with no on-demand within the max price or allowed, spot goes on at the highest bid that passes
every other constraint, the least interrupted: waiting would leave the work undone past the deadline); the
deadline; spot only when its cost per useful hour saves at least `policy.min_savings` over the best
on-demand price per unit of work.

Gaps in the history (`MarketStats.longest_silence_hours`: no priced sample for an hour or more in the last
week, in any of the job's markets: neither the collector nor the tick ran, or no market had capacity at
any price; nothing could act) are kept in hand: a batch job's deadline is taken that much earlier
(`hold_for_silence`), for the plan and the rates alike, so a job waiting on its slack when the next gap
comes still finishes; with less slack than the gap, the rates run it on-demand.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial

import numpy as np

from bidder.errors import Infeasible
from bidder.market import MarketStats
from bidder.models import (
    DEFAULT_MARKET,
    MARKET_NAMES,
    Decision,
    JobProgress,
    JobSpec,
    MarketKey,
    Policy,
    PriceQuote,
)
from bidder.planner import Choice, MarketNow, PodNow, choose, pause_levels, pooled_model
from bidder.units import to_iso, usd_limit

__all__ = [
    "DEADLINE_MARGIN_HOURS",
    "KEEP_MARGIN",
    "MAX_ALTERNATIVES",
    "NO_DEADLINE_PATIENCE",
    "cap_price_words",
    "decide",
    "decide_by_rates",
    "hold_for_silence",
    "on_demand_compute",
    "plan_markets",
    "planned_choice",
    "reserve_hours",
    "select_quotes",
    "uses_plan",
]

#: Extra slack kept on top of two restarts before falling back to on-demand (a decision interval or two).
DEADLINE_MARGIN_HOURS = 0.5
#: Without a deadline, a plan must finish within this many times the work (at least a day).
NO_DEADLINE_PATIENCE = 3.0
#: A running pod is kept while its expected interruptions stay within this factor of the tolerance.
KEEP_MARGIN = 1.1
#: How many alternatives a Decision carries.
MAX_ALTERNATIVES = 12
#: Interruptions a quiet start left unused may be expected later in a job's window when that count plus
#: this many of its standard deviations (Poisson) fits what is left (None: never above the tolerance).
SAVED_BUDGET_MARGIN: float | None = 1.0



def reserve_hours(restart_overhead_hours: float) -> float:
    """Slack kept in reserve: below it the job goes on-demand and stays there."""
    return 2.0 * restart_overhead_hours + DEADLINE_MARGIN_HOURS


@dataclass
class _Candidate:
    """One thing the job could do now (or wait for), with the numbers it is ranked by."""

    action: str
    quote: PriceQuote
    bid: float | None
    cost: float  # plan cost per unit of work (USD per GPU-hour at reference speed)
    run_cost: float  # cost per unit of work while on this pod
    per_day: float  # interruptions per day of the job's life (running share of the time × 24 λ)
    rate: float  # interruptions per running hour (λ)
    total: float | None
    completion: float | None
    spot_share: float
    act_below: float | None = None
    current: bool = False
    progress_rate: float = 0.0  # work per wall-clock hour on this candidate's plan (rho; on-demand: speed)
    delay: float = 0.0  # wait: expected hours until the plan's condition holds (slack it spends first)
    waits_for_floor: bool = False  # wait: for the floor to fall under the bid (not only to settle under it)
    act_when: str | None = None  # wait: its condition in words (`Decision.act_when`)
    note: str = ""


@dataclass
class _Rejections:
    """Why candidates were ruled out. The error names the constraint that rules out the cheapest
    candidate that would otherwise have been chosen: a candidate ruled out by that constraint alone
    (`alone`) comes before any ruled out by several (lifting one of those would not make it
    choosable), the cheapest first. So a budget that rules out every bid the tolerance allows is
    named, not the tolerance that also rules out the cheaper bids."""

    _best: tuple[bool, float, str, str] | None = None  # (not alone, cost, constraint, message)
    _spot: tuple[float, str] | None = None
    #: Rejections not yet worked out (`defer`), in the order they came: most decisions never read them.
    _pending: list[Callable[[], None]] = field(default_factory=list)

    @property
    def best(self) -> tuple[bool, float, str, str] | None:
        """(not alone, cost, constraint, message) of the rejection an error names."""
        self._flush()
        return self._best

    @property
    def spot(self) -> tuple[float, str] | None:
        """The cheapest spot bid ruled out, by whatever (cost, message): named beside an on-demand `best`."""
        self._flush()
        return self._spot

    def defer(self, work: Callable[[], None]) -> None:
        """`work` adds rejections when they are first read (the same ones, in the same order)."""
        self._pending.append(work)

    def _flush(self) -> None:
        while self._pending:
            todo, self._pending = self._pending, []
            for work in todo:
                work()

    def add(self, cost: float, constraint: str, message: str, *, alone: bool = True, spot_note: str | None = None) -> None:
        """`spot_note`: what the spot slot says instead of `message` (a late plan's budget: its cost is inf)."""
        self._flush()  # (what was deferred before this came first)
        if self._best is None or (not alone, cost) < self._best[:2]:
            self._best = (not alone, cost, constraint, message)
        if _is_spot(message) and (self._spot is None or cost < self._spot[0]):
            self._spot = (cost, spot_note or message)


def _is_spot(message: str) -> bool:
    """Whether a rejection's message is a spot bid's (each names "<GPU> spot at $bid" or "<GPU> spot: ...")."""
    return " spot at $" in message or " spot: " in message


def select_quotes(job: JobSpec, quotes: Sequence[PriceQuote]) -> list[PriceQuote]:
    """The newest quote of every market the job accepts (market, GPU type by id/display name or min
    VRAM, GPU count, cloud), in a stable order (RunPod's first)."""
    wanted = {name.strip().lower() for name in job.gpu_types}
    cloud = job.cloud.upper()
    market = (job.market or "any").lower()
    newest: dict[MarketKey, PriceQuote] = {}
    for q in quotes:
        if q.gpu_count != job.gpu_count or (cloud not in ("ANY", "ALL") and q.cloud.upper() != cloud):
            continue
        if market != "any" and q.market != market:
            continue
        if wanted:
            if q.gpu_type_id.lower() not in wanted and (q.display_name or "").lower() not in wanted:
                continue
        elif job.min_vram_gb is not None and (q.memory_in_gb is None or q.memory_in_gb < job.min_vram_gb):
            continue
        key = q.key
        if key not in newest or q.ts > newest[key].ts:
            newest[key] = q
    return [newest[k] for k in sorted(newest, key=lambda k: (len(k) > 3, k))]


#: The markets without spot statistics a decision's reason names one by one (the rest are counted).
MAX_HISTORY_NOTES = 3


def _short(name: str) -> str:
    """'NVIDIA RTX A6000' -> 'RTX A6000' for reasons."""
    return name[7:] if name.startswith("NVIDIA ") else name


def _plan(c: np.ndarray, rho: np.ndarray, work: float | np.ndarray, slack: float | np.ndarray, reserve: float, od_cost: float | None,
          od_speed: float, horizon: float | np.ndarray, spot_cap: np.ndarray | None = None
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Expected cost per unit of work, spot share and completion hours of "spot (cost c, progress rho)
    while slack lasts, then on-demand" for arrays of spot options. `spot_cap`: the most work spot may
    do (the interruptions left, spent at the option's rate); the rest goes to on-demand sooner."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if od_cost is None:  # no on-demand fallback: spot must finish alone
            done = np.where(rho > 0, work / rho, np.inf)
            ok = done <= horizon - reserve
            return np.where(ok, c, np.inf), np.where(ok, 1.0, 0.0), done
        erosion = 1.0 - rho / od_speed
        t_switch = np.where(erosion > 0, (slack - reserve) / np.where(erosion > 0, erosion, 1.0), np.inf)
        t_switch = np.maximum(t_switch, 0.0)
        spot_work = np.minimum(work, rho * t_switch)
        spot_work = np.where(np.isfinite(spot_work), spot_work, work)
        if spot_cap is not None:
            capped = spot_cap < spot_work
            spot_work = np.where(capped, spot_cap, spot_work)
            t_switch = np.where(capped, np.where(rho > 0, spot_work / np.where(rho > 0, rho, 1.0), 0.0), t_switch)
        share = np.where(work > 0, spot_work / np.where(work > 0, work, 1.0), 1.0)
        cost = np.where(share > 0, share * c + (1.0 - share) * od_cost, od_cost)
        completion = np.where(share >= 1.0, np.where(rho > 0, work / rho, np.inf),
                              t_switch + (work - spot_work) / od_speed)
    return cost, share, completion


def decide(job: JobSpec, policy: Policy, quotes: Sequence[PriceQuote],
           stats: Mapping[MarketKey, MarketStats], now: datetime,
           progress: JobProgress | None = None, *, history_notes: Mapping[MarketKey, str] | None = None,
           alternatives: bool = True, reasons: bool = True) -> Decision:
    """The best action for `job` now, with ranked alternatives. Raises Infeasible naming the constraint.

    A batch job with a deadline whose markets all have a price-state model (`MarketStats.floor_model`)
    follows its plan (`bidder.planner`, see "Plans" above); every other job, or a plan that breaks the
    budget, is decided by the rates (`decide_by_rates`). `quotes` are the current quotes (the newest
    per market is used); `stats` the market statistics per market key (`PriceQuote.key`).
    `alternatives=False` leaves the ranked alternatives out (a backtest never reads them); `reasons=False`
    the rates' reasons too (a backtest's replay of a service: the same action, bid and figures).
    """
    progress = progress or JobProgress()
    asked = job
    silence, held, short = 0.0, 0.0, False
    if job.deadline is not None and job.work_hours is not None and not job.keep_running:
        markets = select_quotes(job, quotes)
        # The shortest of the markets' gaps: a market missing from some snapshots (a Vast GPU with no offer
        # then) does not silence the others; a collector or tick that did not run silences every one.
        silence = min((st.longest_silence_hours for q in markets if (st := stats.get(q.key)) is not None),
                      default=0.0)
        job, held, short = hold_for_silence(job, progress, now, silence, [
            job.speed_of(q.gpu_type_id) for q in markets if q.uninterruptable_price])
    factor = 1.0
    if held > 0 and job.deadline is not None:
        # Its rates are per day of the window held back; the job's own window is `held` hours longer.
        # (Per day of the shorter one, times the job's window, 2.3 interruptions read as 2.9.) The reasons
        # say the same rates as the figures (they said 5.5 a day beside a figure of 5.38).
        window = (job.deadline - now).total_seconds() / 3600.0
        factor = window / (window + held) if window > 0 else 1.0
    planned = None if short else _planned_decision(job, policy, quotes, stats, now, progress, alternatives,
                                                   history_notes, factor)
    decision = planned or decide_by_rates(job, policy, quotes, stats, now, progress, history_notes=history_notes,
                                          alternatives=alternatives, reasons=reasons, per_day_factor=factor)
    if held > 0 or short:
        decision = replace(decision, reasons=(*decision.reasons, _silence_note(silence, held, short)))
    if factor != 1.0:
        decision = _per_day_of(decision, factor)
    if decision.action == "wait" and progress.current_running and progress.current_action == "spot":
        decision = _stop_must_stand(asked, policy, quotes, stats, now, progress, decision, history_notes=history_notes,
                                    alternatives=alternatives, reasons=reasons)
    return decision


def _stop_must_stand(job: JobSpec, policy: Policy, quotes: Sequence[PriceQuote], stats: Mapping[MarketKey, MarketStats],
                     now: datetime, progress: JobProgress, decision: Decision, *,
                     history_notes: Mapping[MarketKey, str] | None, alternatives: bool, reasons: bool) -> Decision:
    """A running spot pod is stopped to wait only if, decided again just after the stop (its restart's
    work lost, no pod), the job would not start the same pod at once: else it is kept. With the pod the
    plan found no price within the tolerance and the rates waited; without it the plan bid the same, so
    a 10-hour job due in a day at tolerance low was stopped and bid again every five minutes, each time
    losing its restart, and finished on-demand at 1.04x the on-demand rule's cost (a backtest audit)."""
    lost = max(float(job.restart_overhead_hours), 0.0) * job.speed_of(progress.current_gpu_type_id or "")
    after = replace(progress, work_done_hours=max(progress.work_done_hours - lost, 0.0), current_gpu_type_id=None,
                    current_cloud=None, current_action=None, current_bid_per_gpu=None, current_market=None,
                    current_price_per_gpu=None, current_machine_min_bid_per_gpu=None)
    try:
        again = decide(job, policy, quotes, stats, now, after, history_notes=history_notes, alternatives=alternatives,
                       reasons=reasons)
    except Infeasible:
        return decision
    if not _decision_is_current(again, progress):
        return decision
    return replace(again, reasons=("keeps the running pod: stopped to wait, the job would bid the same at once",
                                   *again.reasons) if again.reasons else again.reasons)


def _gpu_count_advice(quotes: Sequence[PriceQuote], gpus: int) -> str:
    """What to do when no quote has `gpus` GPUs, by market: RunPod is quoted only for the GPU counts
    collected (collect that count too); Vast's collect stores every offer there is, so its counts are the
    machines it had (another count, or later: collecting RunPod's counts would not help there)."""
    parts = []
    for market in sorted({q.market for q in quotes}, key=lambda m: m != DEFAULT_MARKET):
        counts = sorted({q.gpu_count for q in quotes if q.market == market})
        listed = ", ".join(map(str, counts))
        if market == DEFAULT_MARKET:
            parts.append(f"the quotes collected are for pods of {listed} GPU(s); collect RunPod's for {gpus} too "
                         f"(`bidder collect --gpu-counts {','.join(map(str, sorted({*counts, gpus})))}`)")
        else:
            name = MARKET_NAMES.get(market, market)
            parts.append(f"{name}'s offers at the last collect had {listed} GPU(s) per machine, none {gpus} (its "
                         f"collect stores every offer there is): ask for one of those counts (--gpus), or try later")
    if len(parts) > 1:
        parts[0] = f"on RunPod {parts[0]}"
    return "; ".join(parts)


def _per_day_of(d: Decision, factor: float) -> Decision:
    """`d` (and its alternatives) with the interruptions per day scaled by `factor`: the same count over
    a longer window."""
    return replace(d, expected_interruptions_per_day=round(d.expected_interruptions_per_day * factor, 4),
                   alternatives=tuple(_per_day_of(a, factor) for a in d.alternatives))


def hold_for_silence(job: JobSpec, progress: JobProgress, now: datetime, silence_h: float,
                     on_demand_speeds: Sequence[float]) -> tuple[JobSpec, float, bool]:
    """The job as planned after a silence in its markets' history (`MarketStats.longest_silence_hours`:
    hours in which no market of the job had a price: neither the collector nor the tick ran, or none had
    capacity): its deadline `silence_h` earlier, so a job waiting on its slack when the next silence
    comes still finishes. Returns (job, hours held, short);
    `short`: less than the silence is left before on-demand must start (the deadline is then moved to
    where the fastest on-demand pod (`on_demand_speeds`) just finishes, and the rates decide: they run
    on-demand with no slack left). A job without a deadline, or no silence, is returned as it is.

    On a market with 8-hour holes in its samples, a 10-hour job with a 24-hour deadline waited on its
    slack into a hole and finished 4 hours late (`analysis/study_odd_markets.py`)."""
    if silence_h <= 0 or job.deadline is None or job.work_hours is None or job.keep_running or not on_demand_speeds:
        return job, 0.0, False
    work_left = max(float(job.work_hours) - progress.work_done_hours, 0.0)
    time_left = (job.deadline - now).total_seconds() / 3600.0
    room = time_left - work_left / max(on_demand_speeds)
    held = min(silence_h, room)
    if held <= 0:
        return job, 0.0, False  # no slack to hold: the deadline decides as it is
    return replace(job, deadline=job.deadline - timedelta(hours=held)), held, held < silence_h


def _silence_note(silence_h: float, held: float, short: bool) -> str:
    gap = (f"the price history has a gap of {silence_h:.1f} h in the last week (no price in any of the job's markets: "
           f"the collector did not run, or none had capacity; nothing could act), so the deadline is taken")
    if short:
        return f"{gap} {held:.1f} h early, all the slack left: on-demand until done"
    return f"{gap} {held:.1f} h early, in case the next gap comes while the job waits"


def plan_markets(job: JobSpec, markets: Sequence[PriceQuote], stats: Mapping[MarketKey, MarketStats]
                 ) -> list[MarketNow] | None:
    """The planner's view of each market (None unless every one has a price-state model)."""
    out = []
    for q in markets:
        st = stats.get(q.key)
        if st is None or st.floor_model is None:
            return None
        out.append(MarketNow(st.floor_model, st.recent_max, q.minimum_bid_price, job.speed_of(q.gpu_type_id),
                             storage=storage_per_gpu_hour(job, q), od_storage=storage_per_gpu_hour(job, q, on_demand=True),
                             spot_storage=partial(_spot_storage_at, job, q) if q.spot_storage else None))
    return out


def uses_plan(job: JobSpec, policy: Policy) -> bool:
    """Whether `decide` may follow a plan for this job (a batch job with a deadline, spot and on-demand
    both allowed): only then are the markets' price-state models needed."""
    return not job.keep_running and job.work_hours is not None and job.deadline is not None \
        and policy.allow_spot and policy.allow_on_demand


def planned_choice(job: JobSpec, policy: Policy, markets: Sequence[MarketNow], pod: PodNow | None,
                   now: datetime, progress: JobProgress, *, whole_job: bool = False) -> Choice | None:
    """The plan's action for a batch job with a deadline (None: the job is not one, spot is off, or no
    market has a model). `whole_job` solves the plan for the job's whole size and window (a backtest
    reuses it for every decision until the models are refitted); else for what is left of it."""
    if not uses_plan(job, policy):
        return None
    work_left = max(float(job.work_hours) - progress.work_done_hours, 0.0)
    time_left = (job.deadline - now).total_seconds() / 3600.0
    tolerance = _interruption_budget(float(policy.tolerance), job, progress, now, time_left)
    if tolerance <= 0 or work_left <= 0 or time_left <= 0:
        return None
    if work_left / max(m.speed for m in markets) > time_left:
        return None  # even on-demand is too late: the rates name the deadline
    if policy.max_price is not None and all(m.model is None or m.model.on_demand > policy.max_price
                                            for m in markets):
        return None  # no on-demand fallback under the cap: the rates decide (or name the max price)
    started = progress.started or now
    window = (job.deadline - started).total_seconds() / 3600.0 if whole_job else time_left
    cap = math.inf if policy.max_price is None else float(policy.max_price)
    return choose(markets, work_h=float(job.work_hours) if whole_job else work_left,
                  window_h=max(window, time_left), work_left_h=work_left, time_left_h=time_left,
                  restart_h=max(float(job.restart_overhead_hours), 0.0), pod=pod,
                  interruptions_allowed=tolerance * time_left / 24.0, cap=cap,
                  whole_table=whole_job, clock_h=_clock_hours(now),
                  reserve_h=reserve_hours(max(float(job.restart_overhead_hours), 0.0)))


def storage_per_gpu_hour(job: JobSpec, q: PriceQuote, *, on_demand: bool = False, bid: float | None = None) -> float:
    """What the job's disk adds per GPU-hour on this market (Vast bills storage on top of the bid;
    its on-demand price already holds the storage of `on_demand_storage_gb`): 0 where the market has no
    storage price or the job names no disk. Counted per running hour: the hours an instance is paused
    or stopped bill storage too, which this leaves out (a lower bound). `bid`: spot's, per GPU-hour,
    whose offer's storage it is (`PriceQuote.spot_storage`)."""
    if q.storage_per_gb_month is None or job.disk_gb is None:
        return 0.0
    if on_demand:
        return (disk_storage_per_hour(job, q, on_demand=True) - _storage_price(q, True) * q.on_demand_storage_gb
                / 720.0) / max(q.gpu_count, 1)
    return disk_storage_per_hour(job, q, bid=bid) / max(q.gpu_count, 1)


def _spot_storage_at(job: JobSpec, q: PriceQuote, bid: float) -> float:
    return storage_per_gpu_hour(job, q, bid=bid)


def _spot_storage_per_gpu_hour(job: JobSpec, q: PriceQuote, bids: np.ndarray) -> np.ndarray:
    """`storage_per_gpu_hour` of spot at each of `bids` (the optimizer's grid)."""
    if q.storage_per_gb_month is None or job.disk_gb is None:
        return np.zeros_like(bids, dtype=float)
    return _spot_storage_price(q, bids) * (float(job.disk_gb) / 720.0 / max(q.gpu_count, 1))


def _storage_price(q: PriceQuote, on_demand: bool, bid: float | None = None) -> float:
    """USD per GB-month of the disk of the offer rented: on-demand, the offer's behind the on-demand price;
    spot, the offer's the bid rents."""
    if on_demand and q.on_demand_storage_per_gb_month is not None:
        return q.on_demand_storage_per_gb_month
    if on_demand or bid is None:
        return q.storage_per_gb_month or 0.0
    return float(_spot_storage_price(q, np.asarray(bid, dtype=float)))


def _spot_storage_price(q: PriceQuote, bids: np.ndarray) -> np.ndarray:
    """USD per GB-month of the offer each bid rents (`PriceQuote.spot_storage`; a bid under every floor at
    the lowest floor's). Vast's plan said the median offer's: $0.733/h of storage for a 3000 GB disk,
    and the instance its bid rented billed $0.517/h."""
    if not q.spot_storage:
        return np.full_like(bids, q.storage_per_gb_month or 0.0, dtype=float)
    floors, prices = zip(*q.spot_storage, strict=True)
    return np.asarray(prices)[np.maximum(np.searchsorted(floors, bids + 1e-9, side="right") - 1, 0)]


def disk_storage_per_hour(job: JobSpec, q: PriceQuote, *, on_demand: bool = False, bid: float | None = None) -> float:
    """What the market bills per hour for the job's whole disk, per instance (Vast: GB x $/GB-month / 720 h),
    on spot at `bid` (see `storage_per_gpu_hour`)."""
    if q.storage_per_gb_month is None or job.disk_gb is None:
        return 0.0
    return _storage_price(q, on_demand, bid) * float(job.disk_gb) / 720.0


def on_demand_compute(q: PriceQuote) -> float | None:
    """What `max_price` caps of an on-demand quote, per GPU-hour: its compute alone, as of a bid. Vast's
    price holds the storage of the 10 GB disk its search priced (`on_demand_storage_gb`), left out here:
    it was held against the cap while the launch's offer and the plan's line took the compute alone (a
    $0.383 cap refused a plan it showed at $0.382). The job's own disk bills on both kinds alike, counted
    in the cost, the budget and `max_spend_per_hour`, never in the cap (a 2000 GB disk put every offer
    over it). RunPod's price is its compute."""
    if q.uninterruptable_price is None:
        return None
    return q.uninterruptable_price - _storage_price(q, True) * q.on_demand_storage_gb / 720.0 / max(q.gpu_count, 1)


def cap_price_words(q: PriceQuote, price: float, unit: str = "") -> str:
    """`price` (per GPU-hour; `unit` follows it), what `max_price` holds of `q`'s on-demand, said as its
    compute where the quote holds storage too (Vast's): "$0.344" read as a misquote of the $0.346 `prices`
    shows."""
    if not q.on_demand_storage_gb or q.uninterruptable_price is None or q.storage_per_gb_month is None:
        return f"${price:.3f}{unit}"
    return (f"${price:.3f}{unit} of compute ({MARKET_NAMES.get(q.market, q.market)}'s on-demand quote, "
            f"${q.uninterruptable_price:.3f}, holds a {q.on_demand_storage_gb:g} GB disk's storage too, which the max "
            f"price does not cap)")


def _own_rate(progress: JobProgress, q: PriceQuote) -> float | None:
    """The job's on-demand pod's own compute rate per GPU-hour when it is on `q`'s market
    (`JobProgress.current_price_per_gpu`: the caller gives it for a pod that keeps its rate, running or
    a stopped Vast instance); None: no such pod there, or its rate is not known."""
    own = progress.current_price_per_gpu
    if own is None or progress.current_action != "on_demand" \
            or not _same_market(progress, q) or not 0 < own < math.inf:
        return None
    return float(own)


def _own_price(q: PriceQuote, progress: JobProgress) -> float | None:
    """`q`'s on-demand price as the running pod on it bills: its own compute with the storage the quote's
    price holds (Vast's searched disk); None: no running on-demand pod there with a known rate."""
    own = _own_rate(progress, q)
    if own is None:
        return None
    compute = on_demand_compute(q)
    return own if compute is None or q.uninterruptable_price is None else q.uninterruptable_price - compute + own


def _on_demand_cap_price(q: PriceQuote, progress: JobProgress) -> float | None:
    """What `max_price` holds of on-demand on `q`'s market: the running pod's own rate there, else the
    quote's compute (`on_demand_compute`). A new pod is always held to the quote."""
    own = _own_rate(progress, q)
    return own if own is not None else on_demand_compute(q)


def on_demand_per_gpu_hour(job: JobSpec, q: PriceQuote) -> float | None:
    """The on-demand price per GPU-hour with the job's disk: what an on-demand instance bills (Vast's price
    holds the searched disk's storage; the rest of the job's disk is added)."""
    if q.uninterruptable_price is None:
        return None
    return q.uninterruptable_price + storage_per_gpu_hour(job, q, on_demand=True)


def _storage_notes(job: JobSpec, c: _Candidate) -> list[str]:
    """The reason that says a candidate's cost holds its disk's storage (none where nothing is billed)."""
    bid = c.bid if c.action == "spot" else c.act_below
    return [_storage_reason(job, c.quote, on_demand=c.action == "on_demand", bid=bid)] \
        if storage_per_gpu_hour(job, c.quote) > 0 else []


def _storage_reason(job: JobSpec, q: PriceQuote, *, on_demand: bool = False, bid: float | None = None) -> str:
    per_hour = disk_storage_per_hour(job, q, on_demand=on_demand, bid=bid)  # the whole disk, as the bill shows it
    return (f"with {MARKET_NAMES.get(q.market, q.market)}'s storage of the {float(job.disk_gb or 0):g} GB disk: "
            f"${per_hour:.3f}/h while it runs (and while it is paused or stopped), counted in the cost")


def _clock_hours(now: datetime) -> float:
    """The time of day of `now` in hours, UTC (the clock the floor models' daily phases are fitted on)."""
    return (now.timestamp() % 86400.0) / 3600.0


def _pod_now(progress: JobProgress, markets: Sequence[PriceQuote]) -> PodNow | None:
    if progress.current_action not in ("spot", "on_demand"):
        return None
    for i, q in enumerate(markets):
        if _same_market(progress, q):
            return PodNow(i, progress.current_action, progress.current_bid_per_gpu)
    return None


def _planned_decision(job: JobSpec, policy: Policy, quotes: Sequence[PriceQuote],
                      stats: Mapping[MarketKey, MarketStats], now: datetime, progress: JobProgress,
                      alternatives: bool, history_notes: Mapping[MarketKey, str] | None,
                      per_day_factor: float = 1.0) -> Decision | None:
    """The plan's decision as a Decision (None: the rates decide); `per_day_factor`: its alternatives'
    (see `decide_by_rates`)."""
    if not uses_plan(job, policy):
        return None
    markets = select_quotes(job, quotes)
    views = plan_markets(job, markets, stats) if markets else None
    if views is None:
        return None
    pod = _pod_now(progress, markets)
    own = None if pod is None else _own_rate(progress, markets[pod.market])
    if own is not None and policy.max_price is not None and own <= policy.max_price < views[pod.market].model.on_demand:
        # The plan prices on-demand at the market's quote, over the cap, and would end a pod whose own rate
        # is within it: the rates weigh that pod at its own rate.
        return None
    choice = planned_choice(job, policy, views, pod, now, progress)
    if choice is None or choice.market is None:
        return None
    g = job.gpu_count
    work_left = max(float(job.work_hours) - progress.work_done_hours, 0.0)
    q = markets[choice.market]
    per_gpu = choice.expected_cost  # (with the storage of a market that bills the disk too: MarketNow.storage)
    total = per_gpu * g
    if policy.budget is not None and total > policy.budget - progress.spent + 1e-9:
        return None  # the rates name the budget constraint (or find what fits it)
    # The model the plan followed: the market's own, or the pool's (remembered since `choose` fitted it).
    model = pooled_model([views[i].model for i in choice.pool]) if choice.pool else None
    model = pause_levels(model or views[choice.market].model)  # the levels the plan had (Vast's pause levels)
    time_left = (job.deadline - now).total_seconds() / 3600.0
    action, bid = choice.action, choice.bid
    if action == "keep":
        action = progress.current_action  # type: ignore[assignment]
        bid = progress.current_bid_per_gpu if action == "spot" else None
    where = _short(q.gpu_type_id)
    if len({m.market for m in markets}) > 1 or q.market != DEFAULT_MARKET:  # as the rates name markets
        where = f"{where} {q.cloud.lower()} on {MARKET_NAMES.get(q.market, q.market)}"
    act_when = None
    if action == "wait" and choice.start_below is not None:
        recent = min(views[i].recent_max for i in choice.pool) if choice.pool else views[choice.market].recent_max
        act_when = _plan_wait_words(choice, recent)
    if action == "wait":
        what = (f"wait: the plan starts spot on {where} when {act_when}"
                if act_when is not None else f"wait: the plan starts spot on {where} at no floor now (its model of the "
                f"floor's states, from the last {_fmt_hours(model.blocks * model.step_h)} of history, waits for it to "
                f"move, or for a cheaper time of day)")
    elif action == "on_demand":
        what = f"{where} on-demand at ${on_demand_per_gpu_hour(job, q):.3f}: the plan's cheapest way to the deadline now"
    else:
        floor = "none" if q.minimum_bid_price is None else f"${q.minimum_bid_price:.3f}"  # (spot gone: no floor)
        what = (f"{'keep ' if choice.action == 'keep' else ''}{where} spot at ${bid:.3f} (floor "
                f"{floor}): the plan's bid level for the floor's state now")
    reasons = [what,
               f"plan over {model.levels + 1} price states of the last {model.blocks * model.step_h:.0f} h"
               f"{' and the floor by time of day' if model.phase_trans is not None else ''}: "
               f"expected ${total:.2f} for the {work_left:.1f} h of work left, "
               f"{choice.expected_interruptions:.1f} interruptions in the {time_left:.0f} h to the deadline"]
    if choice.pool:
        reasons.append(f"planned over {len(choice.pool)} interchangeable markets as one pool: each start goes to the "
                       f"one whose floor was calmest over the last {model.step_h * 60:.0f} min")
    if storage_per_gpu_hour(job, q) > 0:
        reasons.append(_storage_reason(job, q, on_demand=action == "on_demand",
                                       bid=bid if action == "spot" else choice.start_below))
    if choice.interruption_price > 0:
        reasons.append(f"interruptions priced at {choice.interruption_price:g} h of on-demand each to stay "
                       f"within the tolerance")
    if action == "spot":
        budget = _interruption_budget(float(policy.tolerance), job, progress, now, time_left)
        saved = _saved_budget_note(float(policy.tolerance), budget, job, progress, time_left)
        if saved:
            reasons.append(saved)
    alts: tuple[Decision, ...] = ()
    if alternatives:
        try:
            by_rates = decide_by_rates(job, policy, quotes, stats, now, progress, history_notes=history_notes,
                                       per_day_factor=per_day_factor)
            alts = (by_rates, *by_rates.alternatives)[:MAX_ALTERNATIVES]
        except Infeasible:
            alts = ()
    return Decision(action=action, gpu_type_id=q.gpu_type_id, cloud=q.cloud, gpu_count=g,  # type: ignore[arg-type]
                    bid_per_gpu=bid if action == "spot" else None,
                    expected_cost_per_hour=round(per_gpu / work_left, 6) if work_left > 0 else 0.0,
                    expected_interruptions_per_day=round(choice.expected_interruptions / max(time_left / 24, 1e-9), 4),
                    expected_total_cost=round(total, 4), expected_completion_hours=None,
                    reasons=tuple(reasons), alternatives=alts,
                    act_below=choice.start_below if action == "wait" else None, market=q.market,
                    act_when=act_when)


def _plan_wait_words(choice: Choice, recent: float) -> str:
    """What a plan's wait waits for, in words. The plan reads the floor's state as the highest floor of
    its state window (`planner.recent_max`), so a floor already under the level does not start it until
    the window has no higher price left ("until the floor is under $0.133" read while it was $0.119,
    the window still holding $0.146)."""
    below = f"${choice.start_below:.4f}"
    if choice.start_after_h <= 0:  # the plan would bid now: the floor is above its bid
        return f"its spot floor is at or below {below}"
    window = _fmt_hours(choice.start_after_h)
    seen = (f"it had no capacity in the last {window}" if not math.isfinite(recent)
            else f"its highest in the last {window} was ${recent:.4f}")
    return f"its spot floor has stayed at or below {below} for {window} ({seen})"


def decide_by_rates(job: JobSpec, policy: Policy, quotes: Sequence[PriceQuote],
                    stats: Mapping[MarketKey, MarketStats], now: datetime,
                    progress: JobProgress | None = None, *, history_notes: Mapping[MarketKey, str] | None = None,
                    alternatives: bool = True, reasons: bool = True, per_day_factor: float = 1.0) -> Decision:
    """The best action for `job` now, with ranked alternatives. Raises Infeasible naming the constraint.

    `quotes` are the current quotes (the newest per market is used); `stats` the market statistics per
    market key (`PriceQuote.key`: (gpu_type_id, cloud, gpu_count) for RunPod, plus the market name for
    others); a market without statistics gets on-demand candidates only, and `history_notes` may say
    why (e.g. "not enough price history for spot yet: 3 of 12 samples"): a decision that lacks spot for
    that reason says so in its reasons. With quotes from more than one market, every reason names the
    market. `alternatives=False` leaves the ranked alternatives out (a backtest never reads them); the
    decision itself is the same. `reasons=False` leaves its reasons out (empty; nor are the rejected
    bids worked out unless an error must name one): the same action, bid and figures.
    `per_day_factor`: what the reasons' interruptions per day are multiplied by (`decide`'s, after a
    gap in the history: per day of the job's own window, as `decide` scales the figures).
    """
    progress = progress or JobProgress()
    kw = dict(history_notes=history_notes, alternatives=alternatives, reasons=reasons, per_day_factor=per_day_factor)
    decision = _decide_by_rates(job, policy, quotes, stats, now, progress, **kw)  # type: ignore[arg-type]
    after = _after_switch(job, progress, decision)
    if after is None:
        return decision
    try:
        then = _decide_by_rates(job, policy, quotes, stats, now, after, **kw)  # type: ignore[arg-type]
    except Infeasible:
        then = None
    if then is not None and _runs_on(then, decision.action, decision.gpu_type_id, decision.cloud, decision.market,
                                     decision.bid_per_gpu):
        return decision
    # The switch would not stand: the work its restart loses leaves the job deciding to leave the new
    # pod at once. The running pod is kept if it is still a candidate; if not, the job moves to what it
    # would choose once the restart is behind it.
    kept = _decide_by_rates(job, policy, quotes, stats, now, progress, keep_current=True, **kw)  # type: ignore[arg-type]
    if _decision_is_current(kept, progress):
        return kept
    try:
        return _decide_by_rates(job, policy, quotes, stats, now, replace(  # type: ignore[arg-type]
            after, current_gpu_type_id=None, current_cloud=None, current_action=None, current_bid_per_gpu=None,
            current_market=None), **kw)
    except Infeasible:
        return decision


def _after_switch(job: JobSpec, progress: JobProgress, decision: Decision) -> JobProgress | None:
    """The job's progress just after `decision` leaves its running pod for another (the restart's lost
    work: `restart_overhead` at the running GPU's speed; a move is not an interruption, the ledger and
    the backtest count those apart), or None when the decision keeps the running pod or starts no pod."""
    if not progress.current_running or progress.current_action not in ("spot", "on_demand") \
            or decision.action not in ("spot", "on_demand") or _decision_is_current(decision, progress):
        return None
    lost = max(float(job.restart_overhead_hours), 0.0) * job.speed_of(progress.current_gpu_type_id or "")
    return replace(progress, work_done_hours=max(progress.work_done_hours - lost, 0.0),
                   current_gpu_type_id=decision.gpu_type_id, current_cloud=decision.cloud, current_action=decision.action,
                   current_bid_per_gpu=decision.bid_per_gpu, current_market=decision.market,
                   current_price_per_gpu=None, current_running=True, current_machine_min_bid_per_gpu=None)


def _runs_on(d: Decision, action: str | None, gpu_type_id: str | None, cloud: str | None, market: str | None,
             bid: float | None) -> bool:
    """Whether `d` is that pod (a cloud of None: any)."""
    return (d.action == action and d.gpu_type_id == gpu_type_id and (cloud is None or d.cloud == cloud)
            and (d.market or DEFAULT_MARKET) == (market or DEFAULT_MARKET)
            and (action != "spot" or abs((d.bid_per_gpu or 0.0) - (bid or 0.0)) < 1e-9))


def _decision_is_current(d: Decision, progress: JobProgress) -> bool:
    return _runs_on(d, progress.current_action, progress.current_gpu_type_id, progress.current_cloud,
                    progress.current_market, progress.current_bid_per_gpu)


#: How to fix a --min-vram no GPU type has (`bidder tick` says it in bidder.toml's words).
VRAM_HINT = "lower --min-vram, or name GPU types with --gpu"


def _decide_by_rates(job: JobSpec, policy: Policy, quotes: Sequence[PriceQuote],
                     stats: Mapping[MarketKey, MarketStats], now: datetime, progress: JobProgress, *,
                     history_notes: Mapping[MarketKey, str] | None, alternatives: bool, reasons: bool,
                     per_day_factor: float, keep_current: bool = False) -> Decision:
    """`decide_by_rates` without the check that a switch stands; `keep_current`: the running pod, if it
    is still a candidate, is kept."""
    markets = select_quotes(job, quotes)
    if not markets:
        what = (", ".join(job.gpu_types) if job.gpu_types else
                f">= {job.min_vram_gb} GB VRAM" if job.min_vram_gb is not None else "any GPU")
        where = "" if (job.market or "any").lower() == "any" else f" on market {job.market}"
        asked = [q for q in quotes if where == "" or q.market == job.market.lower()]
        counts = sorted({q.gpu_count for q in asked})
        if asked and job.gpu_count not in counts:
            raise Infeasible(f"no current quote for {what} with {job.gpu_count} GPU(s) in cloud {job.cloud}{where}: "
                             + _gpu_count_advice(asked, job.gpu_count), constraint="gpu_type")
        memory = [q.memory_in_gb for q in asked if q.memory_in_gb is not None]
        if job.min_vram_gb is not None and not job.gpu_types and memory and max(memory) < job.min_vram_gb:
            # (collecting prices would not help: it said to)
            raise Infeasible(f"no current quote for {what} with {job.gpu_count} GPU(s) in cloud {job.cloud}{where}: "
                             f"no GPU type has that much memory (the most is {max(memory)} GB a GPU): "
                             + VRAM_HINT, constraint="gpu_type")
        raise Infeasible(f"no current quote for {what} with {job.gpu_count} GPU(s) in cloud {job.cloud}{where}; "
                         "collect prices first (`bidder collect`) or widen --gpu/--min-vram/--cloud",
                         constraint="gpu_type")
    multi = len({q.market for q in markets}) > 1
    r = max(float(job.restart_overhead_hours), 0.0)
    g = job.gpu_count
    keep_running = job.keep_running or job.work_hours is None
    work = 0.0 if keep_running else max(float(job.work_hours or 0.0) - progress.work_done_hours, 0.0)
    if not keep_running and work <= 0.0:
        return Decision(action="wait", gpu_type_id=None, cloud=None, gpu_count=g, bid_per_gpu=None,
                        expected_cost_per_hour=0.0, expected_interruptions_per_day=0.0,
                        expected_total_cost=0.0, expected_completion_hours=0.0,
                        reasons=("the work is done: nothing left to run",))
    budget_left = None if policy.budget is None else policy.budget - progress.spent
    cap = math.inf if policy.max_price is None else float(policy.max_price)
    tolerance = float(policy.tolerance)
    time_left = math.inf if job.deadline is None else (job.deadline - now).total_seconds() / 3600.0
    if time_left <= 0 and not keep_running:
        # Not "no candidate meets the deadline" (which reads as if a later tick might find one).
        raise Infeasible(f"the deadline {to_iso(job.deadline)} has passed with "  # type: ignore[union-attr]
                         f"{work:.2f} h of work left: set a later deadline to go on", constraint="deadline",
                         until_changed=True)
    tolerance = _interruption_budget(tolerance, job, progress, now, time_left)
    spent_note = None
    if tolerance <= 0 < policy.tolerance and policy.allow_spot and not (policy.allow_on_demand and any(
            (od := _on_demand_cap_price(q, progress)) is not None and od <= cap for q in markets)):
        # The window's budget is spent and on-demand is over the max price (or not allowed): without
        # spot the job would wait past its deadline with its work undone (a backtest with the max price
        # under on-demand met 5 of 9 deadlines that a bid at the max price met with no interruption).
        # Spot goes on at the highest bid within the price, the one the floor crosses least.
        tolerance = math.inf
        spent_note = (f"interruption budget spent ({progress.interruptions} so far) and "
                      + ("on-demand not allowed" if not policy.allow_on_demand else
                         f"on-demand over the max price {usd_limit(cap)}")
                      + ": spot goes on at the highest bid the policy allows (the max price, the min savings), "
                        "the least interrupted, rather than leave the work undone")
    spot_ok = policy.allow_spot and tolerance > 0
    reserve = reserve_hours(r)

    # On-demand reference: the cheapest on-demand price per unit of work of any market the job accepts
    # (the running on-demand pod's at its own rate too).
    od_ref = min(((price + storage_per_gpu_hour(job, q, on_demand=True)) / job.speed_of(q.gpu_type_id)
                  for q in markets for price in (q.uninterruptable_price, _own_price(q, progress)) if price),
                 default=None)
    rejected = _Rejections()
    ondemand: list[_Candidate] = []
    for q in markets:
        # The running on-demand pod is priced at its own rate (a new pod there would be that pod).
        price = _own_price(q, progress) or q.uninterruptable_price
        if price is None or not policy.allow_on_demand:
            continue
        s = job.speed_of(q.gpu_type_id)
        cost = (price + storage_per_gpu_hour(job, q, on_demand=True)) / s
        is_current = progress.current_action == "on_demand" and _same_market(progress, q)
        hours = None if keep_running else work / s
        total = cost * g * (24.0 if keep_running else work)
        od = _on_demand_cap_price(q, progress)  # what the cap holds, as it holds a bid: storage aside
        compute = price if od is None else od
        over_price = compute > cap
        over_budget = budget_left is not None and total > budget_left + 1e-9
        late = hours is not None and hours > time_left + 1e-9
        alone = over_price + over_budget + late == 1  # (for the error's choice of constraint only)
        if over_price:
            rejected.add(cost, "max_price", f"{_short(q.gpu_type_id)} on-demand at {cap_price_words(q, compute)} is "
                         f"over the max price {usd_limit(cap)}", alone=alone)
            continue
        if over_budget:
            assert budget_left is not None
            rejected.add(cost, "budget", _budget_message(q, "on-demand", total, budget_left, keep_running),
                         alone=alone)
            continue
        if late:
            rejected.add(cost, "deadline", f"{_short(q.gpu_type_id)} on-demand needs {hours:.1f} h of running "
                         f"but the deadline is {max(time_left, 0):.1f} h away", alone=alone)
            continue
        ondemand.append(_Candidate("on_demand", q, None, cost, cost, 0.0, 0.0, total, hours, 0.0,
                                   current=is_current, progress_rate=s))
    best_od = min(ondemand, key=lambda c: c.cost, default=None)
    od_cost = best_od.cost if best_od else None
    od_speed = job.speed_of(best_od.quote.gpu_type_id) if best_od else 1.0
    slack = math.inf if od_cost is None else time_left - work / od_speed
    horizon = time_left if job.deadline is not None else max(24.0, NO_DEADLINE_PATIENCE * work)
    if job.deadline is None and od_cost is not None:
        slack = horizon - work / od_speed
    must_run_on_demand = not keep_running and best_od is not None and slack <= reserve
    max_savings_cost = math.inf if od_ref is None else (1.0 - policy.min_savings) * od_ref

    spot_now: list[_Candidate] = []
    plans: list[_Candidate] = []
    if spot_ok and not must_run_on_demand:
        for q in markets:
            st = stats.get(q.key)
            if st is None:
                continue
            _spot_candidates(job, q, st, r, g, work, keep_running, cap, tolerance, max_savings_cost,
                             budget_left, slack, reserve, od_cost, od_speed, horizon, time_left, progress,
                             spot_now, plans, rejected, highest_only=spent_note is not None,
                             tolerance_given=float(policy.tolerance))

    missing = [] if not spot_ok else list(dict.fromkeys(  # (two clouds of one GPU often say the same)
        f"{_short(q.gpu_type_id)}: {(history_notes or {}).get((q.gpu_type_id, q.cloud, q.gpu_count))}"
        if len(markets) > 1 else str((history_notes or {}).get((q.gpu_type_id, q.cloud, q.gpu_count)))
        for q in markets if (q.gpu_type_id, q.cloud, q.gpu_count) not in stats
        and (q.gpu_type_id, q.cloud, q.gpu_count) in (history_notes or {})))
    if len(missing) > MAX_HISTORY_NOTES:  # (`--gpu nvidia` made one reason of 17 such notes, 2,000 characters)
        missing = [*missing[:MAX_HISTORY_NOTES], f"and {len(missing) - MAX_HISTORY_NOTES} more GPU types "
                   "without spot statistics (`bidder recommend`'s notes name each)"]
    if must_run_on_demand:
        assert best_od is not None
        best_od.note = (f"slack {max(slack, 0):.1f} h is at the {reserve:.1f} h reserve: on-demand until done "
                        "so the deadline is met")
        ranked = sorted(ondemand, key=lambda c: c.cost)
        return _decision(best_od, ranked if alternatives else [], g, od_ref, keep_running,
                         [*missing, *_storage_notes(job, best_od)], multi, job.deadline is not None, reasons,
                         per_day_factor)

    acting = ondemand + spot_now
    kappa = min(plans, key=lambda c: (c.cost, c.bid or 0.0), default=None)
    if not acting and kappa is None:
        fastest = max((job.speed_of(q.gpu_type_id) for q in markets), default=1.0)
        if not keep_running and work / fastest > time_left + 1e-9:  # nothing else could matter
            raise Infeasible(f"no candidate meets the deadline: {work:.1f} h of work cannot finish in the "
                             f"{time_left:.1f} h before the deadline, even on-demand at full speed: set a later "
                             "deadline", constraint="deadline", until_changed=True)
        if rejected.best is not None:
            _, _, constraint, message = rejected.best
            # Spot may be missing for lack of history, not for this constraint: say so, or the user
            # loosens the constraint named and still gets no spot.
            also = f" (and no spot: {'; '.join(missing)})" if missing else ""
            floors = [q for q in markets if q.minimum_bid_price is not None]
            if constraint == "max_price" and "on-demand" in message and not missing and spot_ok and floors and \
                    all(q.minimum_bid_price > cap for q in floors):  # type: ignore[operator]
                # Named for on-demand alone, the user could not tell whether spot was weighed at all.
                low = min(floors, key=lambda q: q.minimum_bid_price)  # type: ignore[arg-type,return-value]
                also = (f"; spot is over it too: the lowest spot floor now is {_short(low.gpu_type_id)}'s on "
                        f"{MARKET_NAMES.get(low.market, low.market)}, ${low.minimum_bid_price:.3f}")
            elif not _is_spot(message) and not missing and spot_ok and rejected.spot is not None:
                # Named for on-demand alone (spot was ruled out by several limits, on-demand by one), the line
                # said only the max price while spot floors sat under it: spot's own reason is said too.
                also = f"; no spot: the cheapest, {rejected.spot[1]}"
            priced = [(od, q) for q in markets if (od := _on_demand_cap_price(q, progress)) is not None]
            if constraint != "max_price" and policy.allow_on_demand and priced and \
                    all(od > cap for od, _ in priced):
                # Named for spot alone, the user loosened the tolerance and met the max price next.
                low_price, low = min(priced, key=lambda pair: pair[0])
                also += (f"; on-demand is over the max price {usd_limit(cap)}: the lowest is {_short(low.gpu_type_id)}'s "
                         f"on {MARKET_NAMES.get(low.market, low.market)}, {cap_price_words(low, low_price)}")
            what = ("can finish the work" if constraint == "deadline" and job.deadline is None
                    else f"meets the {constraint.replace('_', ' ')}")
            raise Infeasible(f"no candidate {what}: {message}{also}", constraint=constraint)
        if g > 1 and all(q.minimum_bid_price is None and q.uninterruptable_price is None for q in markets):
            # Every market answered for this many GPUs with no price at all: out of stock, or no machine
            # has that many (asked for 100, the user was sent to collect more history).
            raise Infeasible(f"no market offers {g} GPUs in one pod of the accepted GPU types now (no quote for "
                             f"{g} GPUs has a price): ask for fewer GPUs (--gpus), or try later", constraint="gpu_type")
        raise Infeasible("no candidate can run: no on-demand price and no spot history for the accepted GPU "
                         "types (collect more history with `bidder collect`)", constraint="history")

    def rank_key(c: _Candidate) -> tuple[float, float, str]:
        return (c.cost, c.bid or 0.0, c.quote.gpu_type_id)

    # The best fresh choice, as if the job had no pod: act now if that is no dearer than waiting, or
    # (no deadline: the time a wait takes is not priced) if waiting saves less than `min_wait_savings`.
    best_act = min((c for c in acting if not c.current), key=rank_key, default=None)
    current = next((c for c in acting if c.current), None)
    best_now = min((c for c in acting), key=rank_key, default=None)
    chosen: _Candidate | None
    # Without an on-demand fallback under the policy (over --max-price, or not allowed) no slack prices a
    # wait's time, and a wait that never comes leaves the work undone: such a job waits for the floor to
    # fall only when it saves `min_wait_savings`, as a job without a deadline does, and never once its
    # interruption budget is spent (spot goes on then, at the highest bid: waits for a cheaper floor to
    # settle, re-read every decision, ran a 10-hour job in a day under a $0.20 cap out of time at 3.7 h).
    no_fallback = od_cost is None and job.deadline is not None
    if spent_note is not None and best_now is not None:
        kappa = None
    if best_act is not None and (kappa is None or best_act.cost <= kappa.cost + 1e-12):
        chosen = best_act
    elif kappa is not None and best_now is not None and (
            (job.deadline is None and (kappa.waits_for_floor or not keep_running))
            or (no_fallback and kappa.waits_for_floor)) and (
            best_now.cost - kappa.cost < policy.min_wait_savings * best_now.cost):
        # (A batch job's wait for the floor to settle under the bid is held to the rule too: such waits
        # saved 0.4-0.8% for 5-14 hours, and on Vast, where the floor rarely stays calm, never ended.)
        chosen = best_now
        best_now.note = _join(best_now.note, f"waiting for {_short(kappa.quote.gpu_type_id)} spot under "
                              f"${kappa.act_below:.3f} would save only {_saving(best_now, kappa)}, under the "
                              f"{policy.min_wait_savings * 100:.0f}% worth a wait")
    else:
        chosen = kappa if kappa is not None else current  # only the running pod is left: keep it
        if kappa is not None and best_now is not None:
            kappa.note = _join(kappa.note, f"waiting saves {_saving(best_now, kappa)} against "
                               f"{_what(best_now)} now")
    assert chosen is not None  # acting or kappa is non-empty (checked above)
    # Hysteresis: a running pod that still meets every constraint is kept unless leaving it pays for the
    # work its restart loses, within the time the gain lasts.
    # A running spot pod (a service's, or a batch job's) is never stopped just to wait: it stays up until
    # a better pod replaces it or the floor takes it (a wait bets on the floor falling soon, and on the AWS
    # trace that bet lost: stopping a pod at $0.143 to wait for $0.13 waited 5 hours). Nor is on-demand
    # stopped to wait for a floor already under the bid to settle: it runs until the spot pod is ready.
    def restart_cost(new: _Candidate, redone: float) -> float:
        """What redoing `redone` units of work after a restart adds to the remaining work's expected cost
        under `new`'s plan: the work itself, and the slack the restart spends (with little slack left,
        that slack would have bought spot work that now runs on-demand)."""
        if new.action == "on_demand":
            return redone * new.run_cost
        totals = []
        for units, slack_then in ((work + redone, slack - redone / od_speed), (work, slack)):
            cost, _, _ = _plan(np.array([new.run_cost]), np.array([new.progress_rate]), units, slack_then,
                               reserve, od_cost, od_speed, horizon)
            totals.append(float(cost[0]) * units)
        return totals[0] - totals[1]

    if current is not None and not _same_pod(chosen, current) and (
            (chosen.action == "wait" and (keep_running or current.action == "spot" or not chosen.waits_for_floor))
            or not _worth_switching(current, chosen, r, work, job, keep_running, restart_cost)
            or keep_current):
        chosen = current
    others = sorted(acting + ([kappa] if kappa is not None else []), key=rank_key) if alternatives else []
    if not reasons:
        return _decision(chosen, others, g, od_ref, keep_running, reasons=False, per_day_factor=per_day_factor)
    saved = _saved_budget_note(float(policy.tolerance), tolerance, job, progress, time_left) \
        if chosen.action == "spot" and spent_note is None else None
    # On-demand chosen where a spot bid would have cost less, ruled out by a limit: said (a Vast service
    # went on-demand, its machines' pauses over the tolerance at every bid, with no word of spot).
    ruled_out = rejected.best
    no_spot = (f"no spot: the cheapest, {ruled_out[3]}" if chosen.action == "on_demand" and spot_ok and ruled_out is not None
               and " spot at $" in ruled_out[3] and ruled_out[1] < chosen.cost else None)
    return _decision(chosen, others, g, od_ref, keep_running,
                     [*(missing if chosen.action != "spot" else ()), *((no_spot,) if no_spot else ()),
                      *_storage_notes(job, chosen), *((saved,) if saved else ()),
                      *((spent_note,) if spent_note and chosen.action == "spot" else ()),
                      *((whole,) if (whole := _whole_budget_note(float(policy.tolerance), job, progress))
                        and chosen.action != "spot" and policy.allow_spot else ())],
                     multi, job.deadline is not None, per_day_factor=per_day_factor)


def _interruption_budget(tolerance: float, job: JobSpec, progress: JobProgress, now: datetime,
                         time_left: float) -> float:
    """The tolerance is per day of the job's window (start to deadline): `tolerance × window days`
    interruptions in all. What the job has already suffered comes out of that budget, so the rest of
    the window may expect at most what is left of it per day left, and no more than the tolerance a day
    unless what quiet days saved fits with a margin for the count's spread (`SAVED_BUDGET_MARGIN`), and
    nothing once under one interruption is left of a budget of one or more (an interruption is whole).
    Spent to the brim, a quiet start's saved budget took a backtest of the emulator's RTX 4090 at
    tolerance low to 4.0 interruptions a window where 3.5 were allowed (analysis/results/optimizer-pass9.md);
    with the margin, see optimizer-pass10.md.
    A job without a deadline (a service) has no window: its budget is `tolerance × days` over its life
    so far and the day ahead, so a spell of interruptions is paid back by a quieter day after it."""
    if progress.started is None:
        return tolerance
    if job.deadline is None:
        lived_days = max((now - progress.started).total_seconds() / 86400.0, 0.0)
        return min(tolerance, max(tolerance * (lived_days + 1.0) - progress.interruptions, 0.0))
    if not math.isfinite(time_left) or time_left <= 0:
        return tolerance
    window_days = (job.deadline - progress.started).total_seconds() / 86400.0
    total = tolerance * window_days
    left = max(total - progress.interruptions, 0.0)
    if total >= 1.0 and left < 1.0 - 1e-9:
        # An interruption is a whole event: with under one left, the next takes the window over its
        # budget, whatever its chance. Followed as an expected count, the fraction left bought a last
        # start that took 9 of 42 windows at tolerance low to 4 where 3.5 were allowed (the job's mean
        # over the tolerance on two emulator seeds); holding it costs 2.9% on the nine jobs where it
        # binds (analysis/results/optimizer-pass17.md). A window whose whole budget is under one (a day
        # at low) has no whole interruption to spend: its fraction stays an expected count.
        return 0.0
    days_left = time_left / 24.0
    capped = min(tolerance, left / days_left)
    if SAVED_BUDGET_MARGIN is None:
        return capped
    # Budget a quiet start saved may be spent later, if the count's spread fits too: the rest of the
    # window may expect t interruptions where t + m·√t <= left (Poisson: m standard deviations).
    m = SAVED_BUDGET_MARGIN
    saved = ((math.sqrt(m * m + 4.0 * left) - m) / 2.0) ** 2
    return max(capped, saved / days_left)


def _whole_budget_note(tolerance: float, job: JobSpec, progress: JobProgress) -> str | None:
    """The reason that says so when under one interruption is left of the window's budget of one or
    more (`_interruption_budget` then allows no more spot); None when it is not."""
    if job.deadline is None or progress.started is None:
        return None
    total = tolerance * (job.deadline - progress.started).total_seconds() / 86400.0
    left = total - progress.interruptions
    if not (total >= 1.0 and 0.0 < left < 1.0 - 1e-9):
        return None
    return (f"interruption budget: {progress.interruptions} of the window's {total:.1f} used; under one left, "
            "no more spot (the next interruption would take the window over its tolerance)")


def _saved_budget_note(tolerance: float, budget: float, job: JobSpec, progress: JobProgress,
                       time_left: float) -> str | None:
    """The reason that says so when what quiet days saved lets the rest of the window expect more than
    the tolerance a day (`budget`: `_interruption_budget`'s per day left); None when it does not."""
    if job.deadline is None or progress.started is None or not budget > tolerance * (1 + 1e-9):
        return None
    days_left = time_left / 24.0
    total = tolerance * (job.deadline - progress.started).total_seconds() / 86400.0
    left = max(total - progress.interruptions, 0.0)
    return (f"interruption budget: {progress.interruptions} of the window's {total:.1f} used, so the "
            f"{days_left:.1f} days left may expect {budget * days_left:.1f} ({budget:.2f} a day, above the "
            f"tolerance's {tolerance:g}: quiet days saved some; that count and {SAVED_BUDGET_MARGIN:g} standard "
            f"deviation(s) of it fit the {left:.1f} left)")


def _join(a: str, b: str) -> str:
    return f"{a}; {b}" if a else b


def _saving(now: _Candidate, later: _Candidate) -> str:
    share = (now.cost - later.cost) / now.cost if now.cost > 0 else 0.0
    dollars = "" if now.total is None or later.total is None else f", ${max(now.total - later.total, 0.0):.2f}"
    return f"{share * 100:.1f}%{dollars}"


def _what(c: _Candidate) -> str:
    name = _short(c.quote.gpu_type_id)
    return f"{name} on-demand" if c.action == "on_demand" else f"{name} spot at ${c.bid:.3f}"


def _same_market(progress: JobProgress, q: PriceQuote) -> bool:
    return progress.current_gpu_type_id == q.gpu_type_id and (
        progress.current_cloud is None or progress.current_cloud == q.cloud) and (
        (progress.current_market or DEFAULT_MARKET) == q.market)


def _budget_message(q: PriceQuote, kind: str, total: float, budget_left: float, keep_running: bool) -> str:
    span = "a day" if keep_running else "the remaining work"
    return (f"{_short(q.gpu_type_id)} {kind} would cost ${total:.2f} for {span}, over the "
            f"${max(budget_left, 0.0):.2f} left in the budget")


def _same_pod(a: _Candidate, b: _Candidate) -> bool:
    return (a.action == b.action and a.quote.gpu_type_id == b.quote.gpu_type_id and a.quote.cloud == b.quote.cloud
            and a.quote.market == b.quote.market and (a.action != "spot" or abs((a.bid or 0.0) - (b.bid or 0.0)) < 1e-9))


def _worth_switching(current: _Candidate, new: _Candidate, r: float, work: float, job: JobSpec,
                     keep_running: bool, restart_cost: Callable[[_Candidate, float], float]) -> bool:
    """Leave the running pod for `new` (another pod, or waiting) only if the saving per unit of work (in
    the plan costs every choice is ranked by), over the work during which it lasts (the new run's
    expected length; when waiting, the current run's), beats the restart: `r` hours of the current
    pod's work done again at the new price and, for a job with a deadline, the slack those hours take
    (priced by the new plan: less slack moves work from spot to on-demand)."""
    gain = current.cost - new.cost
    if gain <= 0:
        return False
    lasting = new if new.action != "wait" else current
    s = job.speed_of(lasting.quote.gpu_type_id)
    horizon = 24.0 * s if keep_running else work
    rate = lasting.rate
    if rate > 0:
        horizon = min(horizon, s / rate)
    redone = r * job.speed_of(current.quote.gpu_type_id)
    lost = redone * new.run_cost
    if not keep_running:
        lost = max(lost, restart_cost(new, redone))
    return gain * horizon > lost


def _spot_candidates(job: JobSpec, q: PriceQuote, st: MarketStats, r: float, g: int, work: float,
                     keep_running: bool, cap: float, tolerance: float, max_savings_cost: float,
                     budget_left: float | None, slack: float, reserve: float, od_cost: float | None,
                     od_speed: float, horizon: float, time_left: float, progress: JobProgress,
                     spot_now: list[_Candidate], plans: list[_Candidate], rejected: _Rejections, *,
                     highest_only: bool = False, tolerance_given: float | None = None) -> None:
    """Add this market's best spot-now candidate (and the running pod's, if it is here) and its best
    standing plan (what waiting buys). `highest_only`: of the bids that pass every other constraint, the
    highest (the least interrupted), not the cheapest."""
    s = job.speed_of(q.gpu_type_id)
    bids = st.bids
    top = min(cap, q.uninterruptable_price if q.uninterruptable_price else math.inf)
    in_range = bids <= top + 1e-12
    if not in_range.any():
        rejected.add(bids[0] / s, "max_price", f"{_short(q.gpu_type_id)} spot: no bid fits under the max price "
                     f"{usd_limit(cap)}")
        return
    floor = q.minimum_bid_price
    storage = storage_per_gpu_hour(job, q)

    def evaluate(price: np.ndarray, lam: np.ndarray, avail: np.ndarray, lam_now: np.ndarray | None = None,
                 delay: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Cost per useful hour, plan cost/share/completion, job interruptions per day, totals.

        `lam_now`: the hazard of a pod started (or running) now, whose run comes first (two phases);
        `delay`: hours before the plan can start (slack spent waiting)."""
        if storage:  # what a running hour bills: the bid and the disk's storage, of the offer that bid rents
            price = price + _spot_storage_per_gpu_hour(job, q, price)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            keep = np.maximum(1.0 - lam * r, 0.0)  # (np.clip is slower on small arrays)
            positive = keep > 0
            # (inf where nothing is kept: a `where=` divide costs less than np.where or masking after)
            run = np.divide(price, keep, out=np.full(keep.shape, np.inf), where=positive)
            run /= s
            rho = s * avail * keep
            if keep_running:  # pure spot, all the time: its cost is its cost per useful hour
                per_day = 24.0 * lam
                ok = (per_day <= tolerance + 1e-12) & (run <= max_savings_cost) & np.isfinite(run)
                total = run * g * 24.0
                if budget_left is not None:
                    ok &= total <= budget_left + 1e-9
                return {"run": run, "cost": run, "per_day": per_day, "total": total, "ok": ok, "rho": rho}
            # The interruptions left in the window are a budget to spend, not a rate to keep: spot at a
            # bid the floor crosses often may do the work those interruptions buy, and on-demand the
            # rest (a constant bid spent that way beat bidder at tolerance medium on the emulator's L40S
            # and H100: analysis/study_tolerance_bound.py; what this gained and lost: optimizer-pass7.md).
            per_interruption = None
            if od_cost is not None and math.isfinite(time_left):
                per_interruption = np.where(lam > 0, s * keep / np.where(lam > 0, lam, 1.0), np.inf)
            allowed = tolerance * max(time_left, 0.0) / 24.0
            rate_share = None
            if lam_now is not None:
                cost, share, done = _two_phase(price, run, rho, lam_now, s, r, work, slack, reserve, od_cost,
                                               od_speed, horizon, allowed, per_interruption)
                if per_interruption is not None:
                    # A pod started now is also held to the tolerance as a rate (its plan's share as if the
                    # budget were no limit): spending the budget is for plans, not for a start at a floor
                    # that just rose. Without it, on AWS us-east-1c at medium, bids placed at the floor
                    # just after an interruption were interrupted within minutes, the budget was gone
                    # by hour 96 and the rest ran on-demand (1.63x -> 1.73x the optimum, windows 17-19).
                    _, rate_share, _ = _two_phase(price, run, rho, lam_now, s, r, work, slack, reserve, od_cost,
                                                  od_speed, horizon)
            else:
                slack_then = slack if delay is None else slack - delay
                horizon_then = horizon if delay is None else horizon - delay
                cost, share, done = _plan(run, rho, work, slack_then, reserve, od_cost, od_speed, horizon_then,
                                          None if per_interruption is None else allowed * per_interruption)
            # Interruptions per day of the job's window: its running hours over the time to the
            # deadline (without one, from the pod's start to the expected completion: a job that chose
            # to wait first must not meet its tolerance by the idle days it spends waiting).
            running = share * work / (s * np.where(positive, keep, 1.0))
            window = np.full_like(done, time_left) if math.isfinite(time_left) else done
            if delay is not None:
                done = done + delay
            duty = np.where(np.isfinite(window) & (window > 0), np.minimum(np.maximum(running / window, 0.0), 1.0), 1.0)
            per_day = 24.0 * lam * duty
            total = cost * g * work
            ok = (per_day <= tolerance + 1e-12) & (run <= max_savings_cost) & np.isfinite(cost)
            if rate_share is not None:
                rate_running = rate_share * work / (s * np.where(positive, keep, 1.0))
                rate_duty = np.where(np.isfinite(window) & (window > 0),
                                     np.minimum(np.maximum(rate_running / window, 0.0), 1.0), 1.0)
                ok &= 24.0 * lam * rate_duty <= tolerance + 1e-12
            if budget_left is not None:
                ok &= total <= budget_left + 1e-9
        return {"run": run, "cost": cost, "share": share, "done": done, "per_day": per_day, "total": total,
                "ok": ok, "rho": rho}

    def candidate(action: str, e: dict[str, np.ndarray], index: tuple[int, ...], lam_row: np.ndarray,
                  bid: float | None, **extra: object) -> _Candidate:
        """The candidate at `index` of the evaluation `e`; `lam_row`: its bid's hazards by age."""
        return _Candidate(action, q, bid, float(e["cost"][index]), float(e["run"][index]),
                          float(e["per_day"][index]), float(lam_row[index[-1]]), float(e["total"][index]),
                          None if keep_running else float(e["done"][index]),
                          1.0 if keep_running else float(e["share"][index]),
                          progress_rate=float(e["rho"][index]), **extra)  # type: ignore[arg-type]

    actionable = in_range & (floor is not None) & (bids >= (floor if floor is not None else math.inf) - 1e-12)
    lam = st.hazard_by_age
    avail = st.exposure_by_age / st.observed_hours if st.observed_hours > 0 else np.zeros_like(lam)
    # A service's plan has neither a first run nor slack to spend waiting, so one evaluation over the
    # whole grid holds the numbers of its bids now, of its plans and of a running pod at a grid bid.
    # A batch job's differ (two phases, delays): each is evaluated on the rows that can use it.
    service = evaluate(bids[:, None], lam, avail) if keep_running else None
    # -- the running pod at its own bid: kept unless leaving it pays for the restart ------------------
    # It is judged like a ready plan (any settling age its calm already passed), so that keeping it and
    # starting it afresh rest on the same numbers.
    current_bid = progress.current_bid_per_gpu if (progress.current_action == "spot"
                                                   and _same_market(progress, q)) else None
    if current_bid is not None and floor is not None and floor - 1e-12 <= current_bid <= top + 1e-12:
        i = st.index_of(current_bid)
        if i >= 0:
            lam_i, avail_i = lam[i], avail[i]
            # A Vast instance's pauses by its bid's premium over its own machine's minimum bid, where the
            # grid reads them over the market's floor now (`JobProgress.current_machine_min_bid_per_gpu`).
            own = None if st.machine_rate is None or progress.current_machine_min_bid_per_gpu is None else \
                st.pause_rate_over(float(current_bid), float(progress.current_machine_min_bid_per_gpu))
            if own is not None:
                lam_i = lam_i - st.machine_rate[i] + own  # type: ignore[index]
            if service is not None and current_bid == bids[i] and own is None:
                cur = {k: v[i] for k, v in service.items()}
            else:
                lam_run = None if keep_running else np.full(lam_i.shape, float(lam_i[st.age_index(st.calm_hours[i])]))
                cur = evaluate(np.full(lam_i.shape, float(current_bid)), lam_i, avail_i, lam_now=lam_run)
            # Schmitt trigger: the estimate moves with every sample, so a running pod is kept while it
            # stays within KEEP_MARGIN of the tolerance (a new pod must meet it outright).
            keepable = ((st.age_edges_hours <= st.calm_hours[i] + 1e-9) & (avail_i > 0)
                        & (cur["per_day"] <= tolerance * KEEP_MARGIN)
                        & (cur["ok"] | (cur["per_day"] > tolerance)))
            if keepable.any():
                j = int(np.flatnonzero(keepable)[np.argmin(cur["cost"][keepable])])
                spot_now.append(candidate("spot", cur, (j,), lam_i, float(current_bid), current=True,
                                          note="keeps the running pod (a re-bid costs a restart)"
                                          if progress.current_running else "resumes its stopped pod at its bid"))
    # -- standing plans: "bid b once the floor has stayed under b for a" for every (b, a). A plan whose
    # condition already holds is a bid now (its first run is judged by the hazard at the calm it has
    # shown so far); the best of the others is what waiting buys.
    has_time = avail > 0
    settled = actionable[:, None] & (st.age_edges_hours[None, :] <= st.calm_hours[:, None] + 1e-9) & has_time
    best_ready = math.inf
    rows: np.ndarray | None = None  # the rows an evaluation holds (None: every row, in place)
    if service is not None:
        now_plan, now_settled = service, settled
    else:
        rows = np.flatnonzero(settled.any(axis=1))  # only bids that can start now have a first run
        lam_now = st.hazard_by_age[rows, st.age_index(st.calm_hours[rows])]
        now_plan = evaluate(np.broadcast_to(bids[rows, None], (len(rows), lam.shape[1])), lam[rows], avail[rows],
                            lam_now=np.broadcast_to(lam_now[:, None], (len(rows), lam.shape[1]))) if len(rows) else {}
        now_settled = settled[rows]
    ready = now_settled & now_plan["ok"] if now_plan else now_settled  # (no rows: none is settled)
    if highest_only:
        ready = _highest_row(ready)
    if ready.any():
        i, j = _cheapest_finite(now_plan["cost"], ready)
        row = i if rows is None else int(rows[i])
        spot_now.append(candidate("spot", now_plan, (i, j), lam[row], float(bids[row])))
        best_ready = float(now_plan["cost"][i, j])
    elif now_settled.any():  # something could run now: say which constraint stops the cheapest
        # (worked out only if an error or a reason reads it: a backtest's decisions rarely do)
        rejected.defer(partial(_reject_settled, q, st, now_plan, now_settled, rows, tolerance, max_savings_cost,
                               budget_left, keep_running, rejected,
                               None if math.isfinite(time_left) else horizon, od_cost is not None, tolerance_given))
    # Waiting first spends slack: the expected rest of the floor's current excursion above b, then the
    # settling age the plan still needs.
    # Only bids in range with some time under them can make a plan (the rest are never valid).
    delay = None
    if service is not None:
        plan, valid, rows = service, service["ok"] & has_time & ~settled & in_range[:, None], None
    else:
        rows = np.flatnonzero(in_range & has_time.any(axis=1) & ~settled.all(axis=1))
        if not len(rows):
            return
        delay = st.settle_wait_hours()[rows]
        plan = evaluate(np.broadcast_to(bids[rows, None], (len(rows), lam.shape[1])), lam[rows], avail[rows],
                        delay=delay)
        valid = plan["ok"] & has_time[rows] & ~settled[rows]
    if highest_only:
        valid = _highest_row(valid)
    if not valid.any():
        return
    i, j = _cheapest_finite(plan["cost"], valid)
    if float(plan["cost"][i, j]) >= best_ready:
        return  # this market's bid now is no dearer than anything waiting buys
    wait_delay = 0.0 if delay is None else float(delay[i, j])
    row = i if rows is None else int(rows[i])
    bid = float(bids[row])
    settle = float(st.age_edges_hours[j])
    note = ("bids once the floor " + (f"has stayed at or below ${bid:.3f} for {_fmt_hours(settle)}" if settle > 0
                                      else f"is at or below ${bid:.3f}")
            + f" (floor now {'none' if floor is None else f'${floor:.3f}'})")
    act_when = (f"its spot floor has stayed at or below ${bid:.4f} for {_fmt_hours(settle)}" if settle > 0
                else f"its spot floor is at or below ${bid:.4f}")
    plans.append(candidate("wait", plan, (i, j), lam[row], None, act_below=bid, note=note, delay=wait_delay,
                           act_when=act_when,
                           waits_for_floor=floor is None or floor > bid + 1e-12))


def _reject_settled(q: PriceQuote, st: MarketStats, now_plan: dict[str, np.ndarray], now_settled: np.ndarray,
                    rows: np.ndarray | None, tolerance: float, max_savings_cost: float, budget_left: float | None,
                    keep_running: bool, rejected: _Rejections, patience: float | None, fallback: bool,
                    tolerance_given: float | None) -> None:
    """Why no bid that could start now (`now_settled`, of the evaluation `now_plan` on `rows` of the
    grid, None: all) was ready: the cheapest bid, and for each constraint the cheapest bid it alone rules
    out (the error names the constraint that rules out the cheapest candidate otherwise choosable)."""
    with np.errstate(invalid="ignore"):
        fails = {"tolerance": now_plan["per_day"] > tolerance + 1e-12,
                 "min_savings": now_plan["run"] > max_savings_cost}
        if budget_left is not None:  # (without a budget it rules out nothing)
            fails["budget"] = now_plan["total"] > budget_left + 1e-9
        fails["deadline"] = ~np.isfinite(now_plan["cost"])
    count = np.zeros(now_settled.shape, dtype=np.int8)
    for f in fails.values():
        count += f
    single = now_settled & (count == 1)
    picks = [(_cheapest(now_plan["run"], now_settled), None)]
    for name, f in fails.items():
        alone_here = single & f
        if alone_here.any():
            picks.append((_cheapest(now_plan["run"], alone_here), name))
    for (i, j), only in picks:
        _reject_spot(q, st, i if rows is None else int(rows[i]), float(now_plan["per_day"][i, j]),
                     float(now_plan["run"][i, j]), tolerance, max_savings_cost, float(now_plan["total"][i, j]),
                     budget_left, keep_running, rejected, only=only, alone=bool(count[i, j] == 1),
                     patience=patience, fallback=fallback, tolerance_given=tolerance_given,
                     late=bool(fails["deadline"][i, j]) and only is None)


def _highest_row(mask: np.ndarray) -> np.ndarray:
    """`mask` kept on its last row with any entry set (rows are bids, in increasing order)."""
    if not mask.any():
        return mask
    top = int(np.flatnonzero(mask.any(axis=1))[-1])
    return mask & (np.arange(mask.shape[0]) == top)[:, None]


def _cheapest(values: np.ndarray, mask: np.ndarray) -> tuple[int, int]:
    """(row, column) of the smallest of `values` where `mask` holds (the first in row-major order on a tie)."""
    flat = np.flatnonzero(mask.ravel())
    k = int(flat[np.argmin(values.ravel()[flat])])
    return divmod(k, mask.shape[1])


def _cheapest_finite(values: np.ndarray, mask: np.ndarray) -> tuple[int, int]:
    """`_cheapest` where every value `mask` holds is finite (a plan that is "ok"): in two numpy calls."""
    k = int(np.where(mask, values, np.inf).argmin())
    return divmod(k, mask.shape[1])


def _two_phase(price: np.ndarray, run: np.ndarray, rho: np.ndarray, lam_now: np.ndarray, s: float, r: float,
               work: float, slack: float, reserve: float, od_cost: float | None, od_speed: float, horizon: float,
               allowed: float = math.inf, per_interruption: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cost per unit of work, spot share and completion of a pod started now: its first run lasts until
    the first interruption (hazard `lam_now`, that of the calm the floor has already shown) or the end
    of the work, with no waiting; the standing plan (`run`, `rho`) takes the rest of the work and the
    slack left after it, and of the `allowed` interruptions what the first run is expected to leave
    (each buying `per_interruption` work of the plan; None: no such limit)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        hours = work / s
        p_int = -np.expm1(-lam_now * hours)
        ran = np.where(lam_now > 0, p_int / np.where(lam_now > 0, lam_now, 1.0), hours)  # E[min(run, hours)]
        gross = s * ran
        net = np.maximum(gross - p_int * r * s, 0.0)
        rest = np.maximum(work - net, 0.0)
        slack_then = slack - ran + net / od_speed
        cap2 = None if per_interruption is None else np.maximum(allowed - p_int, 0.0) * per_interruption
        cost2, share2, done2 = _plan(run, rho, np.maximum(rest, 1e-9), slack_then, reserve, od_cost, od_speed,
                                     horizon - ran, cap2)
        money = price / s * gross + np.where(rest > 1e-9, cost2 * rest, 0.0)
        cost = money / work
        share = np.minimum(np.maximum((net + np.where(rest > 1e-9, share2 * rest, 0.0)) / work, 0.0), 1.0)
        done = ran + np.where(rest > 1e-9, done2, 0.0)
    return cost, share, done


def _reject_spot(q: PriceQuote, st: MarketStats, i: int, per_day: float, run_cost: float, tolerance: float,
                 max_savings_cost: float, total: float, budget_left: float | None, keep_running: bool,
                 rejected: _Rejections, *, only: str | None = None, alone: bool = True,
                 patience: float | None = None, fallback: bool = True, tolerance_given: float | None = None,
                 late: bool = False) -> None:
    """Record why spot at bid index `i` was ruled out: the first constraint it breaks, or `only`.
    `patience`: a job without a deadline, whose plans must finish within that many hours; `fallback`:
    whether on-demand may finish what spot does not; `tolerance_given`: the policy's, when `tolerance`
    is what the window's budget has left of it; `late`: its plan cannot finish by the deadline either
    (said after another constraint: loosened alone, that one would not make it choosable)."""
    name = f"{_short(q.gpu_type_id)} spot at ${st.bids[i]:.3f}"
    per = "day" if keep_running else "day of the window"
    tail = ", and cannot finish before the deadline" if late and patience is None else ""
    if only == "tolerance" or (only is None and per_day > tolerance):
        # (Under the policy's, `tolerance` is the budget left: "over the tolerance of 0.3/day" read as a
        # mistake to a job set to 6 a day.)
        left = tolerance_given is not None and tolerance < tolerance_given - 1e-9
        limit = (f"{round(tolerance, 2):g}/day the window's interruption budget has left (the tolerance is "
                 f"{round(tolerance_given, 2):g}/day)" if left else f"tolerance of {round(tolerance, 2):g}/day")  # type: ignore[arg-type]
        rejected.add(run_cost, "tolerance", f"{name} expects {per_day:.1f} interruptions per {per}, over the "
                     f"{limit}{tail}", alone=alone)
    elif only == "min_savings" or (only is None and run_cost > max_savings_cost):
        rejected.add(run_cost, "min_savings", f"{name} costs ${run_cost:.3f} per useful hour after restarts, "
                     f"not enough under on-demand{tail}", alone=alone)
    elif only == "budget" or (only is None and budget_left is not None and total > budget_left):
        assert budget_left is not None
        # (A plan that cannot finish by the deadline has no total: "would cost $inf" is not why to say.)
        rejected.add(run_cost, "budget", _budget_message(q, f"spot at ${st.bids[i]:.3f}", total, budget_left,
                                                         keep_running), alone=alone,
                     spot_note=f"{name} cannot finish before the deadline" if tail else None)
    elif patience is not None:  # no deadline: spot alone, with no on-demand to finish, is too slow
        rejected.add(run_cost, "deadline", f"{name} is not expected to finish the work within {patience:.0f} h "
                     f"({NO_DEADLINE_PATIENCE:g}x the work, how long a job without a deadline may take)"
                     + ("" if fallback else ", and no on-demand is allowed to finish it"), alone=alone)
    else:
        rejected.add(run_cost, "deadline", f"{name} cannot finish before the deadline", alone=alone)


def _fmt_hours(hours: float) -> str:
    return f"{hours * 60:.0f} min" if hours < 1.5 else f"{hours:.1f} h"


#: How reasons name a market.


def _reason(c: _Candidate, od_ref: float | None, keep_running: bool, multi: bool = False,
            deadline: bool = True, per_day_factor: float = 1.0) -> str:
    """The candidate's reason line; `deadline`: the job has one (else its on-demand rest finishes the
    work within the time a job without a deadline may take); `per_day_factor`: see `decide_by_rates`."""
    per_day = c.per_day * per_day_factor
    name = _short(c.quote.gpu_type_id)
    if multi or c.quote.market != DEFAULT_MARKET:  # RunPod-only reasons read as they always did
        name = f"{name} {c.quote.cloud.lower()} on {MARKET_NAMES.get(c.quote.market, c.quote.market)}"
    if c.action == "on_demand":
        # Its price with the disk's storage (Vast's), as its cost counts it: run cost x speed.
        head = f"{name} on-demand at ${c.run_cost * (c.progress_rate or 1.0):.3f}: no interruptions"
    elif c.action == "spot":
        head = f"{name} spot at ${c.bid:.3f}: {per_day:.1f} interruptions/day"
    else:
        head = f"wait for {name} spot under ${c.act_below:.3f}: {per_day:.1f} interruptions/day expected then"
    parts = [head]
    if not math.isfinite(c.cost) and c.action != "on_demand":
        # Spot alone is not expected to finish, and no on-demand within the policy can finish the rest
        # (its cost is infinite): "inf% over on-demand, ... the rest on-demand" it said, on-demand over the cap.
        parts.append(f"{c.spot_share * 100:.0f}% of the work expected done on spot by the deadline, and no "
                     "on-demand within the policy for the rest")
        if c.note:
            parts.append(c.note)
        return ", ".join(parts)
    if od_ref and c.action != "on_demand":
        saving = 1.0 - c.cost / od_ref
        parts.append(f"{saving * 100:.0f}% under on-demand" if saving >= 0 else
                     f"{-saving * 100:.0f}% over on-demand")
    if not keep_running and c.action != "on_demand" and c.spot_share < 0.999:
        parts.append(f"{c.spot_share * 100:.0f}% of the work on spot, the rest on-demand "
                     + ("before the deadline" if deadline else "to finish in time"))
    if c.note:
        parts.append(c.note)
    return ", ".join(parts)


def _decision(chosen: _Candidate, ranked: list[_Candidate], g: int, od_ref: float | None,
              keep_running: bool, notes: Sequence[str] = (), multi: bool = False, deadline: bool = True,
              reasons: bool = True, per_day_factor: float = 1.0) -> Decision:
    def build(c: _Candidate, alternatives: tuple[Decision, ...] = (), extra: Sequence[str] = ()) -> Decision:
        return Decision(
            action=c.action,  # type: ignore[arg-type]
            gpu_type_id=c.quote.gpu_type_id,
            cloud=c.quote.cloud,
            gpu_count=g,
            bid_per_gpu=c.bid if c.action == "spot" else None,
            expected_cost_per_hour=round(c.cost, 6),
            expected_interruptions_per_day=round(c.per_day, 4),
            expected_total_cost=None if c.total is None else round(c.total, 4),
            expected_completion_hours=None if keep_running or c.completion is None else round(c.completion, 3),
            reasons=(", ".join([_reason(c, od_ref, keep_running, multi, deadline, per_day_factor), *extra]),)
            if reasons else (),
            alternatives=alternatives,
            act_below=c.act_below,
            market=c.quote.market,
            act_when=c.act_when,
        )

    alts = tuple(build(c) for c in ranked[:MAX_ALTERNATIVES + 1] if c is not chosen)[:MAX_ALTERNATIVES]
    return build(chosen, alts, tuple(notes))
