"""The rates model (`decide_by_rates`) on constructed markets: choices, constraints, deadlines, hysteresis,
properties. `decide` follows a plan for batch jobs with a deadline: tests/test_planner.py."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import cache
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bidder.errors import Infeasible
from bidder.market import MarketStats, market_stats
from bidder.models import JobProgress, JobSpec, Policy, PriceQuote
from bidder.optimizer import _plan, decide, decide_by_rates, reserve_hours, select_quotes

NOW = datetime(2026, 1, 8, tzinfo=UTC)
STEP = 300.0


def floor_series(od: float, calm: float, spikes_per_day: float, days: float, seed: int) -> np.ndarray:
    """A calm band around `calm`·od with 15-minute spikes above on-demand, seeded."""
    rng = np.random.default_rng(seed)
    n = int(days * 288)
    floor = od * calm * rng.uniform(0.85, 1.15, n)
    starts = np.flatnonzero(rng.random(n) < spikes_per_day / 288)
    for s in starts:
        floor[s:s + 3] = 1.3 * od
    return floor


@cache
def market(name: str = "NVIDIA RTX A6000", od: float = 0.8, calm: float = 0.35, spikes: float = 0.5,
           seed: int = 1, days: float = 10.0, cloud: str = "COMMUNITY", vram: int = 48, gpu_count: int = 1,
           last: float | None = None) -> tuple[PriceQuote, MarketStats]:
    floor = floor_series(od, calm, spikes, days, seed)
    if last is not None:
        floor[-1] = last
    ts = NOW.timestamp() - STEP * np.arange(len(floor))[::-1]
    s = SimpleNamespace(ts=ts, floor=floor, on_demand=np.full(len(floor), od), gpu_type_id=name, cloud=cloud,
                        gpu_count=gpu_count)
    stats = market_stats(s, NOW.timestamp())
    quote = PriceQuote(ts=NOW, gpu_type_id=name, cloud=cloud, gpu_count=gpu_count,
                       minimum_bid_price=float(floor[-1]), uninterruptable_price=od, memory_in_gb=vram,
                       display_name=name.removeprefix("NVIDIA "))
    return quote, stats


def inputs(*markets: tuple[PriceQuote, MarketStats]) -> tuple[list[PriceQuote], dict]:
    return [q for q, _ in markets], {(q.gpu_type_id, q.cloud, q.gpu_count): s for q, s in markets}


def job(hours: float | None = 40.0, deadline_h: float | None = 96.0, **kw: object) -> JobSpec:
    return JobSpec(work_hours=hours, keep_running=hours is None,
                   deadline=None if deadline_h is None else NOW + timedelta(hours=deadline_h),
                   restart_overhead_hours=0.25, **kw)  # type: ignore[arg-type]


CALM = market()
SPIKY = market("NVIDIA RTX 4090", od=0.7, calm=0.4, spikes=6.0, seed=2, vram=24)
FAST = market("NVIDIA H100 80GB HBM3", od=2.5, calm=0.5, spikes=0.5, seed=3, vram=80)


def test_calm_market_with_slack_bids_spot_within_the_cap_and_explains() -> None:
    quotes, stats = inputs(CALM, SPIKY)
    d = decide_by_rates(job(), Policy(tolerance=2.0), quotes, stats, NOW)
    assert d.action == "spot"
    q = next(q for q in quotes if q.gpu_type_id == d.gpu_type_id)
    assert q.minimum_bid_price <= d.bid_per_gpu <= q.uninterruptable_price
    assert d.expected_interruptions_per_day <= 2.0
    assert d.expected_cost_per_hour < 0.85 * 0.7
    assert d.expected_total_cost == pytest.approx(d.expected_cost_per_hour * 40, rel=1e-4)
    assert d.reasons[0].startswith(f"RTX A6000 spot at ${d.bid_per_gpu:.3f}: ")
    assert "interruptions/day" in d.reasons[0] and "% under on-demand" in d.reasons[0]
    assert d.alternatives and all(a.reasons for a in d.alternatives)
    costs = [a.expected_cost_per_hour for a in d.alternatives]
    assert costs == sorted(costs)  # ranked best first
    assert {a.action for a in d.alternatives} >= {"on_demand"}


def test_tolerance_none_means_on_demand_only() -> None:
    quotes, stats = inputs(CALM, SPIKY)
    d = decide_by_rates(job(), Policy(tolerance=0.0), quotes, stats, NOW)
    assert d.action == "on_demand" and d.gpu_type_id == "NVIDIA RTX 4090"  # the cheaper on-demand
    assert all(a.action == "on_demand" for a in d.alternatives)
    assert d.expected_interruptions_per_day == 0.0 and d.bid_per_gpu is None


def test_max_price_caps_the_bid_and_infeasible_names_it() -> None:
    quotes, stats = inputs(CALM)
    d = decide_by_rates(job(), Policy(max_price=0.35), quotes, stats, NOW)
    assert d.action == "spot" and d.bid_per_gpu <= 0.35
    assert all(a.bid_per_gpu is None or a.bid_per_gpu <= 0.35 for a in d.alternatives)
    assert all(a.action != "on_demand" for a in d.alternatives)  # on-demand at 0.80 is over the cap
    # Under 0.32 only the noisy band is left, and on-demand is over the cap: the cheapest spot bid
    # left names what rules it out.
    with pytest.raises(Infeasible, match=r"RTX A6000 spot at \$0\.3[0-2]") as info:
        decide_by_rates(job(), Policy(max_price=0.32), quotes, stats, NOW)
    assert info.value.constraint in {"tolerance", "deadline"}
    with pytest.raises(Infeasible, match="no candidate meets the max price") as info:
        decide_by_rates(job(), Policy(max_price=0.05), quotes, stats, NOW)
    assert info.value.constraint == "max_price"
    # Named for on-demand alone, it left the user wondering whether spot was weighed at all.
    floor = quotes[0].minimum_bid_price
    assert str(info.value).endswith(f"; spot is over it too: the lowest spot floor now is RTX A6000's on RunPod, "
                                    f"${floor:.3f}"), str(info.value)


def test_the_tolerance_an_error_names_is_rounded() -> None:
    # A third of an interruption a day read "over the tolerance of 0.333333/day" (a job's budget left
    # per day, in a tick, "3.64583/day").
    quotes, stats = inputs(CALM)
    with pytest.raises(Infeasible) as info:
        decide_by_rates(job(), Policy(max_price=0.35, tolerance=1 / 3), quotes, stats, NOW)
    assert info.value.constraint == "tolerance" and "over the tolerance of 0.33/day;" in str(info.value), info.value
    # Named for spot's tolerance alone, the user loosened it and met the max price next: on-demand is said too.
    od = min(q.uninterruptable_price for q in quotes)
    assert str(info.value).endswith(f"; on-demand is over the max price $0.350: the lowest is RTX A6000's on RunPod, "
                                    f"${od:.3f}"), info.value
    with pytest.raises(Infeasible) as unpriced:  # no max price: nothing of on-demand to say
        decide_by_rates(job(), Policy(tolerance=1 / 3, allow_on_demand=False), quotes, stats, NOW)
    assert "on-demand is over" not in str(unpriced.value)


def test_budget_infeasible_and_gpu_type_infeasible() -> None:
    quotes, stats = inputs(CALM)
    with pytest.raises(Infeasible, match="budget") as info:
        decide_by_rates(job(hours=40), Policy(budget=1.0), quotes, stats, NOW)
    assert info.value.constraint == "budget"
    assert "$1.00 left in the budget" in str(info.value)
    with pytest.raises(Infeasible, match="no current quote for NVIDIA B200") as info:
        decide_by_rates(job(gpu_types=("NVIDIA B200",)), Policy(), quotes, stats, NOW)
    assert info.value.constraint == "gpu_type" and "collect prices first" in str(info.value)
    # Quotes for 1-GPU pods alone: collecting more of the same would not help; the GPU counts would.
    with pytest.raises(Infeasible) as info:
        decide_by_rates(job(gpu_count=2), Policy(), quotes, stats, NOW)
    assert str(info.value).endswith("the quotes collected are for pods of 1 GPU(s); collect RunPod's for 2 too "
                                    "(`bidder collect --gpu-counts 1,2`)"), info.value


def test_deadline_that_even_on_demand_cannot_meet() -> None:
    quotes, stats = inputs(CALM)
    with pytest.raises(Infeasible, match=r"no candidate meets the deadline: .* before the deadline") as info:
        decide_by_rates(job(hours=10, deadline_h=5), Policy(), quotes, stats, NOW)
    assert info.value.constraint == "deadline"
    # A deadline already past says so, not that no candidate meets it (as if a later tick might).
    with pytest.raises(Infeasible, match=r"^the deadline 2026-01-07T23:00:00Z has passed with 10\.00 h of work "
                       r"left: set a later deadline") as info:
        decide_by_rates(job(hours=10, deadline_h=-1), Policy(), quotes, stats, NOW)
    assert info.value.constraint == "deadline"


def test_slack_at_the_reserve_goes_on_demand() -> None:
    quotes, stats = inputs(CALM)
    reserve = reserve_hours(0.25)
    d = decide_by_rates(job(hours=40, deadline_h=40 + reserve - 0.01), Policy(), quotes, stats, NOW)
    assert d.action == "on_demand"
    assert "reserve" in d.reasons[0] and "deadline is met" in d.reasons[0]


def test_a_silence_in_the_history_is_kept_in_hand_before_the_deadline() -> None:
    # The same calm market with a spike now, once with no sample for 8 hours two days ago (the
    # collector, and the tick, did not run: a job waiting then lost those hours).
    floor = floor_series(0.8, 0.35, 0.5, 10.0, 1)
    floor[-1] = 1.1
    ts = NOW.timestamp() - STEP * np.arange(len(floor))[::-1]
    ts[:-576] -= 8 * 3600.0
    s = SimpleNamespace(ts=ts, floor=floor, on_demand=np.full(len(floor), 0.8), gpu_type_id="NVIDIA RTX A6000",
                        cloud="COMMUNITY", gpu_count=1)
    silent = (market(last=1.1)[0], market_stats(s, NOW.timestamp()))
    assert silent[1].longest_silence_hours == pytest.approx(8 + 5 / 60)
    for hours, deadline_h in ((40, 160), (40, 46)):
        plain = decide(job(hours=hours, deadline_h=deadline_h), Policy(), *inputs(market(last=1.1)), NOW)
        assert not any("gap" in r for r in plain.reasons)
        assert plain.action == "wait"  # the spike passes; slack enough to wait for it
    relaxed = decide(job(hours=40, deadline_h=160), Policy(), *inputs(silent), NOW)
    assert relaxed.action == "wait"
    assert "a gap of 8.1 h" in relaxed.reasons[-1] and "taken 8.1 h early" in relaxed.reasons[-1]
    # Its interruptions per day are of the job's own 160 hours: the count is the one decided over the 152
    # held back (per day of those, times the 160, 2.3 interruptions read as 2.9).
    said = re.search(r"([\d.]+) interruptions in the 152 h to the deadline", relaxed.reasons[1])
    assert said and float(said.group(1)) > 0, relaxed.reasons
    assert relaxed.expected_interruptions_per_day * 160 / 24 == pytest.approx(float(said.group(1)), abs=0.05)
    # 6 hours of slack: less than the silence, so none is left to wait with.
    tight = decide(job(hours=40, deadline_h=46), Policy(), *inputs(silent), NOW)
    assert tight.action == "on_demand"
    assert "taken 6.0 h early, all the slack left: on-demand until done" in tight.reasons[-1]
    # A market of the job sampled through the gap: the collector ran (the silent market had no quote then).
    assert not any("gap" in r for r in decide(job(hours=40, deadline_h=46), Policy(), *inputs(silent, SPIKY),
                                              NOW).reasons)
    # Without a deadline nothing is held.
    assert not any("gap" in r for r in decide(job(hours=40, deadline_h=None), Policy(), *inputs(silent), NOW).reasons)


def test_a_spike_with_slack_waits_and_as_slack_runs_out_it_acts() -> None:
    # The floor is above on-demand right now (a spike) in an otherwise calm market.
    spiking = market(last=1.1)
    quotes, stats = inputs(spiking)
    relaxed = decide_by_rates(job(hours=40, deadline_h=160), Policy(), quotes, stats, NOW)
    assert relaxed.action == "wait"
    assert relaxed.act_below is not None and relaxed.act_below < 0.8
    assert relaxed.gpu_type_id == "NVIDIA RTX A6000" and relaxed.bid_per_gpu is None
    assert "wait for RTX A6000 spot under" in relaxed.reasons[0]
    tight = decide_by_rates(job(hours=40, deadline_h=40 + reserve_hours(0.25) / 2), Policy(), quotes, stats, NOW)
    assert tight.action == "on_demand"
    # Expected cost rises as the slack shrinks: less time to wait for cheap hours.
    costs = [decide_by_rates(job(hours=40, deadline_h=h), Policy(), quotes, stats, NOW).expected_cost_per_hour
             for h in (160, 80, 50, 42)]
    assert costs == sorted(costs)


def test_running_pod_is_kept_unless_leaving_pays_for_the_restart() -> None:
    quotes, stats = inputs(CALM)
    fresh = decide_by_rates(job(), Policy(), quotes, stats, NOW)
    assert fresh.action == "spot"
    grid = stats[("NVIDIA RTX A6000", "COMMUNITY", 1)].bids
    near = float(grid[np.searchsorted(grid, fresh.bid_per_gpu) + 1])  # one grid step dearer
    # With 2 hours of work left, a cent an hour does not pay for 15 minutes of lost work.
    running = JobProgress(work_done_hours=38, current_gpu_type_id="NVIDIA RTX A6000", current_cloud="COMMUNITY",
                          current_action="spot", current_bid_per_gpu=near)
    kept = decide_by_rates(job(), Policy(), quotes, stats, NOW, running)
    assert kept.action == "spot" and kept.bid_per_gpu == near
    assert "keeps the running pod" in kept.reasons[0]
    # With 35 hours left it does: the saving lasts as long as the new run is expected to.
    early = decide_by_rates(job(), Policy(), quotes, stats, NOW, JobProgress(
        work_done_hours=5, current_gpu_type_id="NVIDIA RTX A6000", current_cloud="COMMUNITY",
        current_action="spot", current_bid_per_gpu=near))
    assert early.bid_per_gpu == fresh.bid_per_gpu
    dear = JobProgress(work_done_hours=5, current_gpu_type_id="NVIDIA RTX A6000", current_cloud="COMMUNITY",
                       current_action="spot", current_bid_per_gpu=0.79)
    moved = decide_by_rates(job(), Policy(), quotes, stats, NOW, dear)
    assert moved.bid_per_gpu is not None and moved.bid_per_gpu < 0.6


def test_speed_factors_let_a_faster_gpu_win_at_a_higher_price() -> None:
    quotes, stats = inputs(CALM, FAST)
    plain = decide_by_rates(job(), Policy(tolerance=0.0), quotes, stats, NOW)
    assert plain.gpu_type_id == "NVIDIA RTX A6000"
    fast = job(speed_factors=(("NVIDIA H100 80GB HBM3", 4.0),))
    d = decide_by_rates(fast, Policy(tolerance=0.0), quotes, stats, NOW)
    assert d.gpu_type_id == "NVIDIA H100 80GB HBM3"
    assert d.expected_cost_per_hour == pytest.approx(2.5 / 4.0)
    assert d.expected_completion_hours == pytest.approx(10.0)


def test_selection_by_name_vram_cloud_and_gpu_count() -> None:
    secure = market(cloud="SECURE")
    pair = market(gpu_count=2)
    quotes, _ = inputs(CALM, SPIKY, FAST, secure, pair)
    assert {q.gpu_type_id for q in select_quotes(job(min_vram_gb=48), quotes)} == {
        "NVIDIA RTX A6000", "NVIDIA H100 80GB HBM3"}
    assert [q.cloud for q in select_quotes(job(gpu_types=("rtx a6000",), cloud="SECURE"), quotes)] == ["SECURE"]
    assert [q.gpu_count for q in select_quotes(job(gpu_types=("NVIDIA RTX A6000",), gpu_count=2), quotes)] == [2]
    assert len(select_quotes(job(gpu_types=("RTX A6000",)), quotes)) == 2  # by display name, both clouds


def test_keep_running_service_minimises_cost_per_hour() -> None:
    quotes, stats = inputs(CALM, SPIKY)
    d = decide_by_rates(job(hours=None, deadline_h=None), Policy(tolerance=2.0), quotes, stats, NOW)
    assert d.action == "spot" and d.gpu_type_id == "NVIDIA RTX A6000"
    assert d.expected_completion_hours is None
    assert d.expected_total_cost == pytest.approx(d.expected_cost_per_hour * 24, rel=1e-4)
    assert d.expected_interruptions_per_day <= 2.0


def test_market_without_statistics_gets_on_demand_only_and_done_work_waits() -> None:
    quotes, stats = inputs(CALM, SPIKY)
    del stats[("NVIDIA RTX A6000", "COMMUNITY", 1)]
    d = decide_by_rates(job(), Policy(), quotes, stats, NOW)
    assert all(a.gpu_type_id != "NVIDIA RTX A6000" or a.action == "on_demand" for a in (d, *d.alternatives))
    done = decide_by_rates(job(hours=10), Policy(), quotes, stats, NOW, JobProgress(work_done_hours=10))
    assert done.action == "wait" and done.expected_total_cost == 0.0 and "done" in done.reasons[0]


# -- properties --------------------------------------------------------------------------------------
MARKETS = [CALM, SPIKY, FAST, market("NVIDIA L40S", od=0.9, calm=0.3, spikes=2.0, seed=4, last=1.2)]


def _policy_job(data: st.DataObject) -> tuple[list[PriceQuote], dict, JobSpec, Policy]:
    chosen = data.draw(st.lists(st.sampled_from(range(len(MARKETS))), min_size=1, max_size=3, unique=True))
    quotes, stats = inputs(*(MARKETS[i] for i in chosen))
    hours = data.draw(st.one_of(st.none(), st.floats(1, 200)))
    deadline = None if hours is None else data.draw(st.one_of(st.none(), st.floats(hours * 1.02, hours * 4)))
    policy = Policy(max_price=data.draw(st.one_of(st.none(), st.floats(0.1, 3.0))),
                    budget=data.draw(st.one_of(st.none(), st.floats(1, 500))),
                    tolerance=data.draw(st.sampled_from([0.0, 0.5, 2.0, 6.0, 50.0])))
    return quotes, stats, job(hours=hours, deadline_h=deadline), policy


def _cost(jobspec: JobSpec, policy: Policy, quotes: list[PriceQuote], stats: dict) -> float | None:
    try:
        return decide_by_rates(jobspec, policy, quotes, stats, NOW).expected_cost_per_hour
    except Infeasible:
        return None


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_chosen_bid_never_exceeds_cap_or_on_demand_and_none_is_never_spot(data: st.DataObject) -> None:
    quotes, stats, jobspec, policy = _policy_job(data)
    try:
        d = decide_by_rates(jobspec, policy, quotes, stats, NOW)
    except Infeasible as exc:
        assert exc.constraint in {"max_price", "budget", "deadline", "tolerance", "min_savings", "history"}
        return
    for option in (d, *d.alternatives):
        if option.action == "spot":
            q = next(q for q in quotes if q.gpu_type_id == option.gpu_type_id)
            assert option.bid_per_gpu <= q.uninterruptable_price + 1e-9
            assert policy.max_price is None or option.bid_per_gpu <= policy.max_price + 1e-9
            assert option.bid_per_gpu >= q.minimum_bid_price - 1e-9
    if policy.tolerance == 0:
        assert d.action == "on_demand"
    if policy.budget is not None and d.expected_total_cost is not None:
        assert d.expected_total_cost <= policy.budget + 1e-6


@settings(max_examples=50, deadline=None)
@given(st.data(), st.sampled_from([0.0, 0.5, 2.0, 6.0]), st.floats(1.5, 10))
def test_looser_tolerance_never_raises_the_expected_cost(data: st.DataObject, tolerance: float,
                                                         factor: float) -> None:
    quotes, stats, jobspec, policy = _policy_job(data)
    tight = _cost(jobspec, Policy(policy.max_price, policy.budget, tolerance), quotes, stats)
    loose = _cost(jobspec, Policy(policy.max_price, policy.budget, tolerance * factor + 0.1), quotes, stats)
    assume(tight is not None or loose is not None)
    assert loose is not None  # whatever was feasible stays feasible
    if tight is not None:
        assert loose <= tight * _wait_slack(jobspec) + 1e-9


@settings(max_examples=50, deadline=None)
@given(st.data(), st.floats(1, 200), st.floats(1.1, 10))
def test_raising_the_budget_never_raises_the_expected_cost(data: st.DataObject, budget: float,
                                                           factor: float) -> None:
    quotes, stats, jobspec, policy = _policy_job(data)
    low = _cost(jobspec, Policy(policy.max_price, budget, policy.tolerance), quotes, stats)
    high = _cost(jobspec, Policy(policy.max_price, budget * factor, policy.tolerance), quotes, stats)
    if low is not None:
        assert high is not None and high <= low * _wait_slack(jobspec) + 1e-9


def _wait_slack(jobspec: JobSpec) -> float:
    """Without a deadline a wait must save min_wait_savings (5%): a looser constraint that makes
    something startable now may replace a wait that saved less, at up to 1/(1 - 5%) of its cost."""
    return 1.0 / (1.0 - Policy().min_wait_savings) if jobspec.deadline is None else 1.0


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_identical_inputs_give_identical_decisions(data: st.DataObject) -> None:
    quotes, stats, jobspec, policy = _policy_job(data)
    try:
        first = decide_by_rates(jobspec, policy, quotes, stats, NOW)
    except Infeasible as exc:
        with pytest.raises(Infeasible) as again:
            decide_by_rates(jobspec, policy, quotes, stats, NOW)
        assert str(again.value) == str(exc)
        return
    second = decide_by_rates(jobspec, policy, list(quotes), dict(stats), NOW)
    assert first == second
    assert first.reasons == second.reasons
    assert [(a.action, a.gpu_type_id, a.bid_per_gpu, a.expected_cost_per_hour) for a in first.alternatives] == \
        [(a.action, a.gpu_type_id, a.bid_per_gpu, a.expected_cost_per_hour) for a in second.alternatives]


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_a_decision_without_reasons_is_the_same_decision_and_the_same_error(data: st.DataObject) -> None:
    """`reasons=False` (a backtest's replay) leaves the reasons out and works out rejected bids only for
    an error: the action, bid and figures are those of the full decision, and an error is the same."""
    quotes, stats, jobspec, policy = _policy_job(data)
    progress = JobProgress(current_gpu_type_id=quotes[0].gpu_type_id, current_cloud=quotes[0].cloud,
                           current_action=data.draw(st.sampled_from(["spot", "on_demand", None])),
                           current_bid_per_gpu=quotes[0].uninterruptable_price * 0.5)
    try:
        full = decide_by_rates(jobspec, policy, quotes, stats, NOW, progress, alternatives=False)
    except Infeasible as exc:
        with pytest.raises(Infeasible) as lean:
            decide_by_rates(jobspec, policy, quotes, stats, NOW, progress, alternatives=False, reasons=False)
        assert (str(lean.value), lean.value.constraint) == (str(exc), exc.constraint)
        return
    lean = decide_by_rates(jobspec, policy, quotes, stats, NOW, progress, alternatives=False, reasons=False)
    assert lean.reasons == () and full.reasons
    assert replace(lean, reasons=full.reasons) == full


def test_a_running_spot_pod_of_a_batch_job_is_not_stopped_just_to_wait() -> None:
    # The floor is up (0.5 of an on-demand 0.8) in a market that is usually at 0.35: a fresh job waits.
    quotes, stats = inputs(market(last=0.5))
    work = job(hours=40, deadline_h=160)
    assert decide_by_rates(work, Policy(), quotes, stats, NOW).action == "wait"

    def running(bid: float) -> JobProgress:
        return JobProgress(work_done_hours=5, current_gpu_type_id="NVIDIA RTX A6000", current_cloud="COMMUNITY",
                           current_action="spot", current_bid_per_gpu=bid, started=NOW - timedelta(hours=10))

    # A pod already running at 0.55 keeps running: stopping it bets on the floor falling soon.
    kept = decide_by_rates(work, Policy(), quotes, stats, NOW, running(0.55))
    assert kept.action == "spot" and kept.bid_per_gpu == 0.55
    assert "keeps the running pod" in kept.reasons[0]
    # A pod that no longer meets the constraints (0.79 is not 15% under on-demand) may still stop to wait.
    assert decide_by_rates(work, Policy(), quotes, stats, NOW, running(0.79)).action == "wait"


def test_a_wait_must_save_min_wait_savings_of_what_can_start_now() -> None:
    spiking = market(last=1.1)  # a spike: spot cannot start now, on-demand can
    quotes, stats = inputs(spiking)
    work = job(hours=10, deadline_h=None)
    waits = decide_by_rates(work, Policy(min_wait_savings=0.0), quotes, stats, NOW)
    assert waits.action == "wait"
    od = next(a for a in waits.alternatives if a.action == "on_demand")
    saving = 1 - waits.expected_cost_per_hour / od.expected_cost_per_hour
    assert f"waiting saves {saving * 100:.1f}%" in waits.reasons[0]
    assert "against RTX A6000 on-demand now" in waits.reasons[0]
    # The same wait under a threshold above what it saves is not worth it: on-demand starts now.
    starts = decide_by_rates(work, Policy(min_wait_savings=saving + 0.01), quotes, stats, NOW)
    assert starts.action == "on_demand"
    assert f"would save only {saving * 100:.1f}%" in starts.reasons[0]
    assert decide_by_rates(work, Policy(min_wait_savings=saving - 0.01), quotes, stats, NOW).action == "wait"


def test_without_an_on_demand_fallback_a_deadline_job_waits_only_when_it_pays_and_never_on_a_spent_budget() -> None:
    """On-demand over the max price: no slack prices a wait's time, and on a history of 20-minute samples a
    10-hour job due in a day waited for a floor to settle 2-5% cheaper, again at every decision, until
    even spot could not finish (5 of 7 deadlines met, then 7 of 7 with this rule)."""
    quotes, stats = inputs(market(last=0.5))  # the floor is up, at 0.5; usually 0.35; on-demand 0.8
    work = job(hours=10, deadline_h=40)
    fresh = JobProgress(work_done_hours=0, started=NOW)
    waits = decide_by_rates(work, Policy(max_price=0.6, min_wait_savings=0.0), quotes, stats, NOW, fresh)
    assert waits.action == "wait", waits.reasons
    spot = next(a for a in waits.alternatives if a.action == "spot")
    saving = 1 - waits.expected_cost_per_hour / spot.expected_cost_per_hour
    acts = decide_by_rates(work, Policy(max_price=0.6, min_wait_savings=saving + 0.01), quotes, stats, NOW, fresh)
    assert acts.action == "spot" and f"would save only {saving * 100:.1f}%" in acts.reasons[0], acts.reasons
    assert decide_by_rates(work, Policy(max_price=0.6, min_wait_savings=saving - 0.01), quotes, stats, NOW,
                           fresh).action == "wait"
    # With on-demand under the cap the slack prices the wait, as before: the job waits.
    assert decide_by_rates(work, Policy(min_wait_savings=saving + 0.01), quotes, stats, NOW, fresh).action == "wait"
    # The window's budget spent (7 of 2 a day over 60 h): spot goes on now at the highest bid, not a wait for
    # the other cloud's floor to settle under $0.32 (expecting 1.5 interruptions a day more).
    quotes, stats = inputs(market(last=0.55), market(cloud="SECURE", last=0.3, seed=4))
    spent = JobProgress(work_done_hours=2, interruptions=7, started=NOW - timedelta(hours=20))
    went = decide_by_rates(job(hours=10, deadline_h=40), Policy(tolerance=2.0, max_price=0.6, min_wait_savings=0.0),
                           quotes, stats, NOW, spent)
    assert went.action == "spot" and went.bid_per_gpu == 0.6, went.reasons
    assert any("interruption budget spent (7 so far)" in r for r in went.reasons), went.reasons


@settings(max_examples=40, deadline=None)
@given(st.data(), st.floats(0.0, 1.0))
def test_a_wait_taken_always_saves_at_least_min_wait_savings(data: st.DataObject, threshold: float) -> None:
    quotes, stats, jobspec, policy = _policy_job(data)
    policy = Policy(max_price=policy.max_price, budget=policy.budget, tolerance=policy.tolerance,
                    min_wait_savings=threshold)
    try:
        d = decide_by_rates(jobspec, policy, quotes, stats, NOW)
        now = decide_by_rates(jobspec, Policy(max_price=policy.max_price, budget=policy.budget,
                                     tolerance=policy.tolerance, min_wait_savings=1.0), quotes, stats, NOW)
    except Infeasible:
        return
    if d.action == "wait" and now.action != "wait" and jobspec.deadline is None:
        assert d.expected_cost_per_hour <= (1 - threshold) * now.expected_cost_per_hour + 1e-6


def test_a_job_on_on_demand_moves_to_spot_when_the_move_pays_for_its_restart() -> None:
    # On-demand is not a one-way door: the pod the job has on on-demand is judged by the same
    # keep-or-switch rule as a spot pod.
    quotes, stats = inputs(CALM)
    on_od = JobProgress(work_done_hours=5, current_gpu_type_id="NVIDIA RTX A6000", current_cloud="COMMUNITY",
                        current_action="on_demand")
    moved = decide_by_rates(job(hours=40, deadline_h=96), Policy(), quotes, stats, NOW, on_od)
    assert moved.action == "spot" and moved.bid_per_gpu is not None and moved.bid_per_gpu < 0.8
    # With a few minutes of work left the saving does not pay for a restart: it stays on on-demand.
    nearly = JobProgress(work_done_hours=39.9, current_gpu_type_id="NVIDIA RTX A6000", current_cloud="COMMUNITY",
                         current_action="on_demand")
    kept = decide_by_rates(job(hours=40, deadline_h=96), Policy(), quotes, stats, NOW, nearly)
    assert kept.action == "on_demand"
    # At the slack reserve it stays on on-demand so the deadline is met.
    reserve = reserve_hours(0.25)
    tight = decide_by_rates(job(hours=40, deadline_h=35 + reserve - 0.01), Policy(), quotes, stats, NOW, on_od)
    assert tight.action == "on_demand"


def test_a_decision_made_for_lack_of_history_says_so() -> None:
    quote, _ = CALM
    notes = {("NVIDIA RTX A6000", "COMMUNITY", 1): "not enough price history for spot yet: 3 of 12 samples"}
    d = decide_by_rates(job(), Policy(), [quote], {}, NOW, history_notes=notes)
    assert d.action == "on_demand"
    assert d.reasons[0] == ("RTX A6000 on-demand at $0.800: no interruptions, "
                            "not enough price history for spot yet: 3 of 12 samples")
    # With statistics, the note does not apply.
    _, stats = inputs(CALM)
    assert "history" not in decide_by_rates(job(), Policy(), [quote], stats, NOW, history_notes=notes).reasons[0]


def test_when_a_limit_rules_out_on_demand_the_error_also_says_spot_lacks_history() -> None:
    """It named the max price alone, so the user lowered it... while spot was out for want of history
    (and two clouds of one GPU said the same note twice in the reasons)."""
    quote, _ = CALM
    other = PriceQuote(**{**quote.__dict__, "cloud": "SECURE"})
    note = "not enough price history for spot yet: 3 of 12 samples"
    notes = {("NVIDIA RTX A6000", cloud, 1): note for cloud in ("COMMUNITY", "SECURE")}
    d = decide_by_rates(job(), Policy(), [quote, other], {}, NOW, history_notes=notes)
    assert d.reasons[0].count(note) == 1, d.reasons[0]
    with pytest.raises(Infeasible) as info:
        decide_by_rates(job(), Policy(max_price=0.5), [quote, other], {}, NOW, history_notes=notes)
    assert str(info.value) == ("no candidate meets the max price: RTX A6000 on-demand at $0.800 is over the max price "
                               f"$0.500 (and no spot: RTX A6000: {note})")


def test_a_decision_names_a_few_markets_without_history_and_counts_the_rest() -> None:
    """`--gpu nvidia` made one reason of 17 such notes, about 2,000 characters on one line."""
    quote, _ = CALM
    quotes = [PriceQuote(**{**quote.__dict__, "gpu_type_id": f"NVIDIA T{i}"}) for i in range(6)]
    notes = {(q.gpu_type_id, q.cloud, 1): f"not enough price history for spot yet: {i} of 12 samples"
             for i, q in enumerate(quotes)}
    reason = decide_by_rates(job(), Policy(), quotes, {}, NOW, history_notes=notes).reasons[0]
    assert reason.count("not enough price history") == 3, reason
    assert reason.endswith(", and 3 more GPU types without spot statistics (`bidder recommend`'s notes name each)")


def test_on_demand_chosen_over_a_cheaper_spot_a_limit_ruled_out_says_why() -> None:
    """A Vast service went on-demand (its machines' pauses over the tolerance at every bid) with no word
    of spot: on-demand's reason alone read as if spot had not been weighed."""
    quotes, stats = inputs(SPIKY)  # spikes: every bid expects more than a few interruptions a day
    d = decide_by_rates(job(hours=None, deadline_h=None), Policy(tolerance=2.0), quotes, stats, NOW)
    assert d.action == "on_demand"
    assert re.search(r"no interruptions, no spot: the cheapest, RTX 4090 spot at \$0\.\d{3} expects \d+\.\d interruptions per "
                     r"day, over the tolerance of 2/day$", d.reasons[0]), d.reasons[0]
    # Tolerance none asks for on-demand: nothing to explain.
    assert "no spot" not in decide_by_rates(job(hours=None, deadline_h=None), Policy(tolerance=0.0), quotes, stats,
                                            NOW).reasons[0]


def test_interruptions_already_suffered_come_out_of_the_windows_budget() -> None:
    # Tolerance 2/day over a 4-day window is 8 interruptions in all. A job 2 days in that has had 3
    # may still expect up to 2/day; one that has had 8 has used the budget: on-demand for the rest.
    quotes, stats = inputs(CALM)
    spec = job(hours=40, deadline_h=48)
    started = NOW - timedelta(hours=48)
    fresh = decide_by_rates(spec, Policy(tolerance=2.0), quotes, stats, NOW,
                   JobProgress(work_done_hours=10, interruptions=3, started=started))
    assert fresh.action == "spot" and fresh.expected_interruptions_per_day <= 2.0
    spent = decide_by_rates(spec, Policy(tolerance=2.0), quotes, stats, NOW,
                   JobProgress(work_done_hours=10, interruptions=8, started=started))
    assert spent.action == "on_demand"
    # Half the budget left over the days left: the plan's expected rate stays within what is left.
    half = decide_by_rates(spec, Policy(tolerance=2.0), quotes, stats, NOW,
                  JobProgress(work_done_hours=10, interruptions=6, started=started))
    assert half.action == "on_demand" or half.expected_interruptions_per_day <= 1.0 + 1e-9
    # Without a start time (or a deadline) the tolerance applies as it is.
    assert decide_by_rates(spec, Policy(tolerance=2.0), quotes, stats, NOW,
                  JobProgress(work_done_hours=10, interruptions=8)).action == "spot"


def test_a_spent_budget_with_no_on_demand_within_the_policy_goes_on_at_the_highest_bid() -> None:
    # The budget is spent (8 of 8) and on-demand ($0.80) is over the max price: waiting would leave the
    # work undone past the deadline, so spot goes on, at the highest bid under the cap (the least
    # interrupted), and says why. With on-demand under the cap, the budget holds: on-demand.
    quotes, stats = inputs(CALM)
    spec = job(hours=40, deadline_h=48)
    spent = JobProgress(work_done_hours=10, interruptions=8, started=NOW - timedelta(hours=48))
    fresh = decide_by_rates(spec, Policy(tolerance=2.0, max_price=0.6), quotes, stats, NOW,
                            JobProgress(work_done_hours=10, interruptions=3, started=NOW - timedelta(hours=48)))
    d = decide_by_rates(spec, Policy(tolerance=2.0, max_price=0.6), quotes, stats, NOW, spent)
    assert d.action == "spot" and d.bid_per_gpu is not None and fresh.bid_per_gpu is not None
    [bids] = [st.bids for st in stats.values()]
    assert d.bid_per_gpu == float(bids[bids <= 0.6].max()) > fresh.bid_per_gpu
    assert any("interruption budget spent (8 so far) and on-demand over the max price $0.600: spot goes on at "
               "the highest bid the policy allows" in r for r in d.reasons), d.reasons
    assert decide_by_rates(spec, Policy(tolerance=2.0, max_price=0.9), quotes, stats, NOW, spent).action == "on_demand"
    # Without on-demand and a max price, the highest bid the min savings allow (15% under on-demand's $0.80).
    no_od = decide_by_rates(spec, Policy(tolerance=2.0, allow_on_demand=False), quotes, stats, NOW, spent)
    assert no_od.action == "spot" and fresh.bid_per_gpu < no_od.bid_per_gpu <= 0.8 * 0.85
    assert any("and on-demand not allowed: spot goes on" in r for r in no_od.reasons), no_od.reasons
    # Tolerance none is on-demand only, never this: over the cap, nothing can run.
    with pytest.raises(Infeasible):
        decide_by_rates(spec, Policy(tolerance=0.0, max_price=0.6), quotes, stats, NOW, spent)


def test_a_tolerance_error_says_when_it_is_the_budget_left_not_the_tolerance() -> None:
    # 7 of the window's 8 used, 2 days left: 0.5 a day left of a tolerance of 2. It read "over the
    # tolerance of 0.5/day" to a job set to 2 (a tick's job at "high" read "0.3/day").
    quotes, stats = inputs(market(spikes=3.0))
    spec = job(hours=12, deadline_h=48)
    used = JobProgress(work_done_hours=2, interruptions=7, started=NOW - timedelta(hours=48))
    with pytest.raises(Infeasible) as info:
        decide_by_rates(spec, Policy(tolerance=2.0, max_price=0.5), quotes, stats, NOW, used)
    assert "over the 0.5/day the window's interruption budget has left (the tolerance is 2/day)" in str(info.value)


def test_a_quiet_start_saves_budget_that_is_spent_later_only_with_a_margin_for_the_counts_spread() -> None:
    from bidder.optimizer import _interruption_budget

    # 2/day over a 4-day window is 8 in all. Two quiet days leave 8 for the last two: the rest may expect
    # t where t + sqrt(t) <= 8 (t = 5.63: 2.81 a day), not all 8 (spent to the brim, the saved budget
    # took a backtest over its total), and never less than the tolerance a day.
    spec = job(hours=40, deadline_h=48)
    started = NOW - timedelta(hours=48)
    quiet = _interruption_budget(2.0, spec, JobProgress(started=started), NOW, 48.0)
    t = quiet * 2.0
    assert t + math.sqrt(t) == pytest.approx(8.0)
    assert 2.0 < quiet < 4.0
    # 6 suffered leave 2: the margin allows less than the cap would, so the cap (2 over 2 days) holds.
    assert _interruption_budget(2.0, spec, JobProgress(started=started, interruptions=6), NOW, 48.0) == \
        pytest.approx(1.0)
    assert _interruption_budget(2.0, spec, JobProgress(started=started, interruptions=9), NOW, 48.0) == 0.0
    assert _interruption_budget(2.0, spec, JobProgress(), NOW, 48.0) == 2.0  # no start: the tolerance as it is
    # At the window's start nothing is saved: the tolerance a day, as capped.
    fresh = _interruption_budget(2.0, spec, JobProgress(started=NOW), NOW, 48.0)
    assert fresh == pytest.approx(2.0)


def test_under_one_interruption_left_of_the_windows_budget_buys_no_more_spot() -> None:
    # Tolerance low (0.5/day) over a 7-day window is 3.5 interruptions. With 3 suffered, 0.5 is left:
    # followed as an expected count it admitted a last start expecting up to 0.5, whose interruption took
    # the window to 4 (9 of 42 windows, analysis/results/optimizer-pass17.md). An interruption is whole:
    # with under one left, on-demand for the rest. With 2 suffered (1.5 left) spot goes on.
    quotes, stats = inputs(CALM)
    spec = job(hours=40, deadline_h=48)
    started = NOW - timedelta(days=7) + timedelta(hours=48)
    two = decide(spec, Policy(tolerance=0.5), quotes, stats, NOW,
                 JobProgress(work_done_hours=30, interruptions=2, started=started))
    assert two.action == "spot"
    three = decide(spec, Policy(tolerance=0.5), quotes, stats, NOW,
                   JobProgress(work_done_hours=30, interruptions=3, started=started))
    assert three.action == "on_demand", three.reasons
    assert any("3 of the window's 3.5 used; under one left, no more spot" in r for r in three.reasons), three.reasons
    # A window whose whole budget is under one (a day at low: 0.5) keeps it as an expected count.
    from bidder.optimizer import _interruption_budget

    day = job(hours=10, deadline_h=12)
    assert _interruption_budget(0.5, day, JobProgress(started=NOW - timedelta(hours=12)), NOW, 12.0) > 0.0


@settings(max_examples=200, deadline=None)
@given(st.floats(0.1, 20.0), st.floats(0.05, 1.0), st.integers(0, 40), st.floats(1.0, 400.0))
def test_the_budget_left_is_never_expected_beyond_its_total_or_its_spread(
        tolerance: float, share_left: float, suffered: int, window_h: float) -> None:
    from bidder.optimizer import _interruption_budget

    spec = job(hours=window_h / 2, deadline_h=window_h * share_left)
    time_left = window_h * share_left
    progress = JobProgress(started=NOW - timedelta(hours=window_h - time_left), interruptions=suffered)
    rate = _interruption_budget(tolerance, spec, progress, NOW, time_left)
    expected, days_left = rate * time_left / 24.0, time_left / 24.0
    left = max(tolerance * window_h / 24.0 - suffered, 0.0)
    assert expected <= left + 1e-9
    # Above the tolerance a day only with one standard deviation of the count to spare.
    if rate > tolerance + 1e-9:
        assert expected + math.sqrt(expected) <= left + 1e-9
    elif tolerance * window_h / 24.0 >= 1.0 and left < 1.0 - 1e-9:
        assert rate == 0.0  # under one whole interruption left of a budget of one or more: none
    else:
        assert rate == pytest.approx(min(tolerance, left / days_left))


def test_a_service_holds_its_interruptions_to_the_tolerance_over_its_life() -> None:
    # No deadline, no window: a service's budget is the tolerance times the days it has lived and
    # the day ahead, so a spell of interruptions is paid back by a quieter day after it.
    quotes, stats = inputs(CALM, SPIKY)
    service, policy = job(hours=None, deadline_h=None), Policy(tolerance=2.0)

    def lived(interruptions: int) -> JobProgress:
        return JobProgress(started=NOW - timedelta(days=3), interruptions=interruptions)

    assert decide_by_rates(service, policy, quotes, stats, NOW, lived(0)).action == "spot"
    # 8 in three days and the day ahead (2 a day): none left, so no spot at all.
    assert decide_by_rates(service, policy, quotes, stats, NOW, lived(8)).action == "on_demand"
    some = decide_by_rates(service, policy, quotes, stats, NOW, lived(7))  # one left for the day ahead
    assert some.action == "on_demand" or some.expected_interruptions_per_day <= 1.0 + 1e-9
    # Without a start the tolerance alone holds, as before.
    assert decide_by_rates(service, policy, quotes, stats, NOW, JobProgress(interruptions=50)).action == "spot"


@settings(max_examples=40, deadline=None)
@given(st.data(), st.integers(0, 30), st.floats(0.1, 0.9))
def test_a_decision_never_expects_more_than_the_windows_interruption_budget_left(
        data: st.DataObject, suffered: int, elapsed_share: float) -> None:
    chosen = data.draw(st.lists(st.sampled_from(range(len(MARKETS))), min_size=1, max_size=3, unique=True))
    quotes, stats = inputs(*(MARKETS[i] for i in chosen))
    hours = data.draw(st.floats(1, 200))
    jobspec = job(hours=hours, deadline_h=data.draw(st.floats(hours * 1.02, hours * 4)))
    policy = Policy(tolerance=data.draw(st.sampled_from([0.5, 2.0, 6.0, 50.0])))
    window_h = (jobspec.deadline - NOW).total_seconds() / 3600 / (1 - elapsed_share)
    started = jobspec.deadline - timedelta(hours=window_h)
    progress = JobProgress(interruptions=suffered, started=started)
    try:
        d = decide_by_rates(jobspec, policy, quotes, stats, NOW, progress)
    except Infeasible:
        return
    left_days = (jobspec.deadline - NOW).total_seconds() / 86400
    left = max(policy.tolerance * window_h / 24 - suffered, 0.0)
    allowed = left / left_days
    # Above the tolerance a day only with what quiet days saved, one standard deviation spare: t + sqrt(t) <= left.
    saved = ((math.sqrt(1 + 4 * left) - 1) / 2) ** 2 / left_days
    if d.action == "spot":
        # (the decision shows the rate to 4 decimals: a plan that spends the budget exactly may read 5e-5 over)
        assert d.expected_interruptions_per_day <= max(min(allowed, policy.tolerance), saved) + 5e-5
        assert d.expected_interruptions_per_day <= allowed + 5e-5
    if allowed <= 0:
        assert d.action != "spot"



def test_the_tolerance_is_a_budget_a_plan_spends_before_on_demand() -> None:
    # `_plan` with `spot_cap` (the work the interruptions left buy at the option's hazard): spot does
    # at most that much and on-demand the rest, sooner than the slack alone would send it there.
    c, rho = np.array([0.30, 0.30]), np.array([0.9, 0.9])
    work, slack, reserve, od, od_speed, horizon = 40.0, 56.0, 1.0, 0.80, 1.0, 96.0
    free_cost, free_share, free_done = _plan(c, rho, work, slack, reserve, od, od_speed, horizon)
    assert np.all(free_share == 1.0)  # 56 h of slack: the whole work on spot
    cap = np.array([10.0, 80.0])  # the budget buys 10 units of work on the first, more than all on the second
    cost, share, done = _plan(c, rho, work, slack, reserve, od, od_speed, horizon, cap)
    assert share[0] == pytest.approx(10.0 / 40.0)
    assert cost[0] == pytest.approx(0.25 * 0.30 + 0.75 * 0.80)
    assert done[0] == pytest.approx(10.0 / 0.9 + 30.0 / 1.0)  # spot until the budget is spent, then on-demand
    assert (cost[1], share[1], done[1]) == (free_cost[1], free_share[1], free_done[1])  # a cap above: no change
    # Without an on-demand fallback there is nothing to hand the rest to: the cap does not apply.
    alone = _plan(c, rho, work, slack, reserve, None, od_speed, horizon, cap)
    assert np.all(alone[1] == 1.0)


def test_a_spot_decision_says_when_quiet_days_saved_budget_lets_it_expect_more_than_the_tolerance() -> None:
    # 2/day over a 4-day window, two quiet days gone: the last two may expect 5.6 (2.81 a day), and the
    # reason says so; at the window's start nothing is saved and no such reason appears.
    quotes, stats = inputs(CALM)
    spec, policy = job(hours=20, deadline_h=48), Policy(tolerance=2.0)
    quiet = decide_by_rates(spec, policy, quotes, stats, NOW, JobProgress(started=NOW - timedelta(hours=48)))
    assert quiet.action == "spot"
    assert "interruption budget: 0 of the window's 8.0 used, so the 2.0 days left may expect 5.6 (2.81 a day" \
        in quiet.reasons[0]
    fresh = decide_by_rates(spec, policy, quotes, stats, NOW, JobProgress(started=NOW))
    assert fresh.action == "spot" and "interruption budget" not in " ".join(fresh.reasons)
    planned = decide(spec, policy, quotes, stats, NOW, JobProgress(started=NOW - timedelta(hours=48)))
    assert planned.action == "spot" and planned.reasons[0].startswith("RTX A6000 spot")  # the plan's decision
    assert any(r.startswith("interruption budget: 0 of the window's 8.0 used") for r in planned.reasons)


A40 = market("NVIDIA A40", od=0.4, calm=0.6, spikes=3.0, seed=5, vram=48)


def _running(q: PriceQuote, bid: float | None, **kw: object) -> JobProgress:
    return JobProgress(current_gpu_type_id=q.gpu_type_id, current_cloud=q.cloud, current_market=q.market,
                       current_action="spot" if bid is not None else "on_demand", current_bid_per_gpu=bid,
                       **kw)  # type: ignore[arg-type]


def _same_pod(d: object, q_id: str | None, cloud: str | None, action: str | None, bid: float | None) -> bool:
    return (d.action, d.gpu_type_id, d.cloud) == (action, q_id, cloud) and (  # type: ignore[attr-defined]
        action != "spot" or abs(d.bid_per_gpu - bid) < 1e-9)  # type: ignore[attr-defined,operator]


def test_a_move_the_new_pod_would_not_survive_its_own_restart_is_not_taken() -> None:
    """A move's restart loses work, and with it the new pod's plan may no longer pass: a job due in 15
    hours without an on-demand fallback re-bid its A40 pod $0.252 -> $0.244 -> $0.252 -> $0.244 in a cron
    run, the cheaper bid passing only before its own restart. A move is taken only if the job, once the
    restart is behind it, keeps the new pod."""
    quotes, stats = inputs(SPIKY)
    spec, policy = job(hours=9.3, deadline_h=23.1), Policy(tolerance=0.5, allow_on_demand=False)
    running = _running(SPIKY[0], 0.686, work_done_hours=7.9, started=NOW - timedelta(hours=16.7))
    fresh = decide_by_rates(spec, policy, quotes, stats, NOW, replace(running, current_action=None,
                                                                      current_bid_per_gpu=None))
    assert fresh.action == "spot" and fresh.bid_per_gpu == pytest.approx(0.322)  # no pod: it bids $0.322
    # Moved there, the restart loses 15 minutes of work: 1.65 hours left expect more interruptions in
    # the window than 1.4 did, over the tolerance, and nothing can run (not even the pod it moved to).
    moved = replace(running, work_done_hours=7.9 - 0.25, current_bid_per_gpu=0.322)
    with pytest.raises(Infeasible, match=r"over the tolerance of 0\.5/day"):
        decide_by_rates(spec, policy, quotes, stats, NOW, moved)
    kept = decide_by_rates(spec, policy, quotes, stats, NOW, running)
    assert kept.action == "spot" and kept.bid_per_gpu == pytest.approx(0.686), kept.reasons
    assert "keeps the running pod" in kept.reasons[0]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_pod_the_rates_move_a_job_to_is_the_pod_they_keep_once_the_move_is_behind_it(data: st.DataObject) -> None:
    chosen = data.draw(st.lists(st.sampled_from(range(4)), min_size=1, max_size=2, unique=True))
    quotes, stats = inputs(*([CALM, SPIKY, FAST, A40][i] for i in chosen))
    hours = data.draw(st.floats(2, 100))
    spec = job(hours=hours, deadline_h=data.draw(st.floats(hours * 1.02, hours * 3)))
    policy = Policy(max_price=data.draw(st.one_of(st.none(), st.floats(0.2, 3.0))), allow_on_demand=data.draw(
        st.booleans()), tolerance=data.draw(st.sampled_from([0.5, 2.0, 6.0])))
    q = data.draw(st.sampled_from(quotes))
    grid = stats[q.key].bids
    bid = data.draw(st.one_of(st.none(), st.sampled_from([float(b) for b in grid[grid >= q.minimum_bid_price]])))
    running = _running(q, bid, work_done_hours=data.draw(st.floats(0, hours * 0.9)),
                       interruptions=data.draw(st.integers(0, 5)),
                       started=NOW - timedelta(hours=data.draw(st.floats(0, 24))))
    try:
        d = decide_by_rates(spec, policy, quotes, stats, NOW, running)
    except Infeasible:
        return
    if d.action == "wait" or _same_pod(d, q.gpu_type_id, q.cloud, running.current_action, bid):
        return
    # What the ledger shows at the next decision: the restart's work lost (a move is no interruption).
    moved = replace(running, work_done_hours=max(running.work_done_hours - 0.25 * spec.speed_of(q.gpu_type_id), 0.0),
                    current_gpu_type_id=d.gpu_type_id,
                    current_cloud=d.cloud, current_action=d.action, current_bid_per_gpu=d.bid_per_gpu)
    try:
        then = decide_by_rates(spec, policy, quotes, stats, NOW, moved)
    except Infeasible:
        # Only when nothing survives the restart: the running pod was no candidate, nor is any pod after it.
        with pytest.raises(Infeasible):
            decide_by_rates(spec, policy, quotes, stats, NOW, replace(moved, current_action=None))
        return
    assert _same_pod(then, d.gpu_type_id, d.cloud, d.action, d.bid_per_gpu), (d.reasons, then.reasons)


def test_a_vast_instance_is_judged_by_its_own_machines_minimum_bid_not_the_next_offer() -> None:
    """A Vast instance's pauses were measured by its bid's premium over its machine's own floor. Renting
    the cheapest offer takes it off the listing, so the market's floor becomes the next offer's: a
    $0.1645 instance read 1.4% over a $0.162 floor (19.3 pauses a day at tolerance high) was ended for
    on-demand, and rented again at the same bid once the machine it left was listed again. Read over
    its own machine's minimum bid (the poll's), it is kept."""
    from bidder.machine_hazard import MACHINE_PREMIUMS

    floor = np.full(3 * 288, 0.10) * np.random.default_rng(5).uniform(0.97, 1.03, 3 * 288)
    floor[-1] = 0.158  # our instance rents the $0.10 machine: the next offer is the floor now
    ts = NOW.timestamp() - STEP * np.arange(len(floor))[::-1]
    series = SimpleNamespace(ts=ts, floor=floor, on_demand=np.full(len(floor), 0.40), gpu_type_id="RTX 4090",
                             cloud="VERIFIED", gpu_count=1, market="vast")
    rates = np.array([0.8, 0.6, 0.5, 0.4, 0.3, 0.2, 0.15, 0.1, 0.1, 0.1])  # pauses an hour by premium
    stats = market_stats(series, NOW.timestamp()).with_machine_pauses(MACHINE_PREMIUMS, rates)
    quote = PriceQuote(ts=NOW, gpu_type_id="RTX 4090", cloud="VERIFIED", gpu_count=1, minimum_bid_price=0.158,
                       uninterruptable_price=0.40, memory_in_gb=24, display_name="RTX 4090", market="vast")
    quotes, by_key = [quote], {quote.key: stats}
    spec, policy = job(hours=10.0, deadline_h=None, market="vast"), Policy(tolerance=6.0)
    running = JobProgress(work_done_hours=1.75, current_gpu_type_id="RTX 4090", current_cloud="VERIFIED",
                          current_market="vast", current_action="spot", current_bid_per_gpu=0.16,
                          started=NOW - timedelta(hours=2))
    assert stats.pause_rate_over(0.16, 0.158) == 0.8 and stats.pause_rate_over(0.16, 0.10) == 0.2
    over_the_next_offer = decide(spec, policy, quotes, by_key, NOW, running)
    assert not (over_the_next_offer.action == "spot" and over_the_next_offer.bid_per_gpu == pytest.approx(0.16))
    own = decide(spec, policy, quotes, by_key, NOW, replace(running, current_machine_min_bid_per_gpu=0.10))
    assert own.action == "spot" and own.bid_per_gpu == pytest.approx(0.16), own.reasons
    assert "keeps the running pod" in own.reasons[0]
    assert own.expected_interruptions_per_day <= 6.0
    # A machine whose minimum bid has risen to just under the bid (a competitor) is as close to a pause.
    close = decide(spec, policy, quotes, by_key, NOW, replace(running, current_machine_min_bid_per_gpu=0.158))
    assert not (close.action == "spot" and close.bid_per_gpu == pytest.approx(0.16))


def test_a_running_spot_pod_is_kept_where_stopping_it_the_job_would_bid_the_same_at_once() -> None:
    """A stop must stand, as the tick decides: on a restless floor a 10-hour job due in 22 hours at
    tolerance low had no plan within the tolerance while its pod ran (so the rates waited, stopping
    it), and from no pod the plan bid the same: it is kept, and says why."""
    rng = np.random.default_rng(0)
    n = 6 * 288
    a = math.exp(-300 / (3 * 3600))
    x = np.zeros(n)
    eps = rng.normal(0, 0.3 * math.sqrt(1 - a * a), n)
    for i in range(1, n):
        x[i] = a * x[i - 1] + eps[i]
    floor = 0.5 * np.exp(x) * (1 + 0.3 * np.sin(2 * np.pi * ((np.arange(n) * 300 / 3600) % 24 - 8) / 24))
    i = 606
    t0 = 1_767_225_600.0
    ts = t0 + STEP * np.arange(i + 1)
    now = datetime.fromtimestamp(ts[-1], UTC)
    series = SimpleNamespace(ts=ts, floor=floor[:i + 1], on_demand=np.full(i + 1, 1.0), gpu_type_id="G",
                             cloud="COMMUNITY", gpu_count=1)
    stats = market_stats(series, ts[-1], floor_model=True)
    quote = PriceQuote(ts=now, gpu_type_id="G", cloud="COMMUNITY", gpu_count=1, minimum_bid_price=float(floor[i]),
                       uninterruptable_price=1.0, memory_in_gb=48, display_name="G")
    spec, policy = JobSpec(work_hours=10.0, deadline=now + timedelta(hours=22), restart_overhead_hours=0.25), \
        Policy(tolerance=0.5)
    fresh = decide(spec, policy, [quote], {quote.key: stats}, now,
                   JobProgress(work_done_hours=1.0, started=now - timedelta(hours=2)))
    assert fresh.action == "spot", fresh.reasons
    running = JobProgress(work_done_hours=1.25, started=now - timedelta(hours=2), current_gpu_type_id="G",
                          current_cloud="COMMUNITY", current_action="spot", current_bid_per_gpu=fresh.bid_per_gpu)
    kept = decide(spec, policy, [quote], {quote.key: stats}, now, running)
    assert kept.action == "spot" and kept.bid_per_gpu == fresh.bid_per_gpu, kept.reasons
    assert kept.reasons[0].startswith("keeps the running pod: stopped to wait")
