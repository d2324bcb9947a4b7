"""The price-state planner: block maxima, the floor's model, the job's DP, and decide() following it."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bidder.market import market_stats
from bidder.models import JobProgress, JobSpec, Policy, PriceQuote
from bidder.planner import (
    ON_DEMAND,
    SPOT,
    WAIT,
    MarketNow,
    PodNow,
    _cost_bound,
    block_maxima,
    choose,
    fit_floor_model,
    solve_plan,
)

NOW = datetime(2026, 3, 1, tzinfo=UTC)
STEP = 300.0

def test_block_maxima_match_a_brute_force_over_irregular_samples() -> None:
    rng = np.random.default_rng(7)
    ts = np.cumsum(rng.uniform(60, 1500, 400))
    floor = rng.uniform(0.1, 1.0, 400)
    floor[rng.integers(0, 400, 10)] = np.nan
    end = float(ts[-1]) + 77.0
    got = block_maxima(ts, floor, end, 0.5, 30)
    for i in range(30):
        a, b = end - 1800.0 * (30 - i), end - 1800.0 * (29 - i)
        inside = [j for j in range(400) if ts[j] < b and (j + 1 == 400 or ts[j + 1] > a)]
        want = max(math.inf if math.isnan(floor[j]) else floor[j] for j in inside)
        assert got[i] == pytest.approx(want), i

def _series(floor: np.ndarray, od: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    ts = NOW.timestamp() - STEP * np.arange(len(floor), 0, -1)
    return ts, floor

def test_the_model_learns_that_spikes_pass_and_calm_persists() -> None:
    # Calm at 0.2 for 5 hours, a one-hour spike to 0.8, again and again, for ten days.
    cycle = np.r_[np.full(60, 0.2), np.full(12, 0.8)]
    ts, floor = _series(np.tile(cycle, 40))
    model = fit_floor_model(ts, floor, 1.0, NOW.timestamp())
    assert model is not None
    assert np.all(np.diff(model.edges) > 0) and model.edges[-1] < 1.0
    assert np.allclose(model.trans.sum(axis=1), 1.0)
    calm, spike = model.state_of(0.2), model.state_of(0.8)
    assert model.trans[calm, calm] > 0.8          # calm half-hours are followed by calm
    assert model.trans[spike, calm] > 0.3         # a spike's half-hour is often followed by calm

def test_too_little_history_has_no_model() -> None:
    ts, floor = _series(np.full(100, 0.2))  # 8 hours
    assert fit_floor_model(ts, floor, 1.0, NOW.timestamp()) is None

def test_a_steady_floor_is_bought_at_its_level_and_a_tight_deadline_goes_on_demand() -> None:
    ts, floor = _series(np.full(2000, 0.2))
    model = fit_floor_model(ts, floor, 1.0, NOW.timestamp())
    assert model is not None
    plan = solve_plan(model, 10.0, 48.0, restart_h=0.25)
    state = model.state_of(0.2)
    code, cost, interruptions = plan.at(96, 20, state, 0)
    assert code == SPOT + model.level_of_bid(0.2)
    assert cost == pytest.approx(10 * 0.2, rel=0.01) and interruptions < 0.05
    # No slack at all: only on-demand finishes in time.
    code, cost, _ = plan.at(20, 20, model.levels, 0)  # the floor is above every level now
    assert code == ON_DEMAND and cost == pytest.approx(10 * 1.0, rel=0.01)

def test_a_spike_with_slack_waits_and_without_slack_runs_on_demand() -> None:
    cycle = np.r_[np.full(60, 0.2), np.full(12, 3.0)]  # the spike is above on-demand
    ts, floor = _series(np.tile(cycle, 40))
    model = fit_floor_model(ts, floor, 1.0, NOW.timestamp())
    assert model is not None
    plan = solve_plan(model, 10.0, 72.0, restart_h=0.25)
    above = model.levels
    assert plan.at(140, 20, above, 0)[0] == WAIT
    assert plan.at(20, 20, above, 0)[0] == ON_DEMAND  # no slack left

@settings(max_examples=25, deadline=None)
@given(cap=st.floats(0.05, 1.5), floor_level=st.floats(0.05, 0.9))
def test_choose_never_bids_above_the_cap(cap: float, floor_level: float) -> None:
    rng = np.random.default_rng(3)
    ts, floor = _series(np.clip(floor_level * rng.lognormal(0, 0.3, 3000), 0.01, 5.0))
    model = fit_floor_model(ts, floor, 1.0, NOW.timestamp())
    assert model is not None
    market = MarketNow(model, float(floor[-6:].max()), float(floor[-1]))
    choice = choose([market], work_h=20, window_h=60, work_left_h=20, time_left_h=60, restart_h=0.25, pod=None,
                    interruptions_allowed=50, cap=cap)
    assert choice is not None
    assert choice.bid is None or choice.bid <= cap + 1e-12
    assert choice.action != "on_demand" or cap >= 1.0

def _quotes_and_stats(floor: np.ndarray, od: float = 1.0):
    ts, floor = _series(floor)
    series = SimpleNamespace(ts=ts, floor=floor, on_demand=np.full(len(ts), od), gpu_type_id="NVIDIA RTX A6000",
                             cloud="COMMUNITY", gpu_count=1)
    stats = market_stats(series, NOW.timestamp())
    quote = PriceQuote(ts=NOW, gpu_type_id="NVIDIA RTX A6000", cloud="COMMUNITY", gpu_count=1,
                       minimum_bid_price=float(floor[-1]), uninterruptable_price=od, memory_in_gb=48)
    return [quote], {quote.key: stats}

def _job(hours: float = 20.0, deadline_h: float = 72.0) -> JobSpec:
    return JobSpec(gpu_types=("NVIDIA RTX A6000",), work_hours=hours,
                   deadline=NOW + timedelta(hours=deadline_h), restart_overhead_hours=0.25)

def test_decide_follows_the_plan_for_a_batch_job_with_a_deadline_and_says_so() -> None:
    from bidder.optimizer import decide

    # Ten calm hours at 0.2, ten dear ones at 0.6, for twelve days; the calm has just begun.
    floor = np.tile(np.r_[np.full(120, 0.6), np.full(120, 0.2)], 12)[:-108]
    quotes, stats = _quotes_and_stats(floor)
    d = decide(_job(), Policy(tolerance=6.0), quotes, stats, NOW)
    assert d.action == "spot" and d.bid_per_gpu is not None and d.bid_per_gpu >= quotes[0].minimum_bid_price
    assert any(r.startswith("plan over") for r in d.reasons)
    assert d.expected_total_cost is not None and d.expected_total_cost < 20 * 1.0
    assert d.alternatives  # the rates' view, for the user to compare
    # A running pod at the plan's bid is kept (no churn from one tick to the next).
    running = JobProgress(current_gpu_type_id="NVIDIA RTX A6000", current_cloud="COMMUNITY", current_action="spot",
                          current_bid_per_gpu=d.bid_per_gpu, started=NOW)
    again = decide(_job(), Policy(tolerance=6.0), quotes, stats, NOW, running)
    assert again.action == "spot" and again.bid_per_gpu == d.bid_per_gpu
    assert again.reasons[0].startswith("keep ")

def test_a_tolerance_the_plan_would_break_is_left_to_the_rates() -> None:
    from bidder.optimizer import decide

    cycle = np.r_[np.full(30, 0.2), np.full(6, 0.6)]  # frequent short spikes under on-demand
    quotes, stats = _quotes_and_stats(np.tile(cycle, 80))
    free = decide(_job(), Policy(tolerance=6.0), quotes, stats, NOW)
    strict = decide(_job(), Policy(tolerance=0.3), quotes, stats, NOW)
    assert any(r.startswith("plan over") for r in free.reasons)
    assert not any(r.startswith("plan over") for r in strict.reasons)
    assert strict.expected_interruptions_per_day <= 0.3 + 1e-9


def test_services_and_jobs_without_a_deadline_are_decided_by_the_rates() -> None:
    from bidder.optimizer import decide

    rng = np.random.default_rng(5)
    quotes, stats = _quotes_and_stats(np.clip(0.3 * rng.lognormal(0, 0.2, 3000), 0.05, 0.9))
    job = JobSpec(gpu_types=("NVIDIA RTX A6000",), keep_running=True)
    d = decide(job, Policy(tolerance=6.0), quotes, stats, NOW)
    assert not any(r.startswith("plan over") for r in d.reasons)

def test_the_backtest_replays_the_plan_and_meets_every_deadline() -> None:
    from bidder.backtest.engine import BacktestJob, load_trace, run_backtest

    history = load_trace("data/traces/sim-seed1-14d.csv")
    job = BacktestJob(gpu_types=("NVIDIA RTX A6000",), work_hours=40, deadline_hours=96, restart_overhead_hours=0.25)
    report = run_backtest(history, job, Policy(tolerance=6.0), ["bidder", "on-demand"], every_hours=96)
    for window in report.windows:
        bidder, on_demand = window.results["bidder"], window.results["on-demand"]
        assert bidder.deadline_met
        assert bidder.cost < on_demand.cost


def test_a_pod_is_not_moved_to_an_identical_market_for_free() -> None:
    # Two clouds with the same prices: a pod running on one is kept, not moved to the other (a move
    # loses the restart's work; it used to be rounded away and jobs hopped every 5 minutes).
    ts, floor = _series(np.tile(np.r_[np.full(120, 0.6), np.full(120, 0.2)], 12)[:-108])  # calm just began
    model = fit_floor_model(ts, floor, 1.0, NOW.timestamp())
    assert model is not None
    state = model.state_of(0.2)
    markets = [MarketNow(model, 0.2, 0.2), MarketNow(model, 0.2, 0.2)]
    first = choose(markets, work_h=40, window_h=120, work_left_h=40, time_left_h=120, restart_h=0.25, pod=None,
                   interruptions_allowed=100)
    assert first is not None and first.action == "spot" and first.bid is not None
    running = PodNow(1, "spot", first.bid)  # on the second market: the first one is weighed before it
    again = choose(markets, work_h=40, window_h=120, work_left_h=39.9, time_left_h=119.9, restart_h=0.25,
                   pod=running, interruptions_allowed=100)
    assert again is not None and again.action == "keep" and again.market == 1
    assert state <= model.level_of_bid(first.bid)


def test_work_between_table_rows_reads_the_costs_in_between() -> None:
    ts, floor = _series(np.full(2000, 0.2))
    model = fit_floor_model(ts, floor, 1.0, NOW.timestamp())
    assert model is not None
    plan = solve_plan(model, 10.0, 48.0, restart_h=0.25)
    state = model.state_of(0.2)
    _, low, _ = plan.at(96, 10, state, 0)
    _, high, _ = plan.at(96, 11, state, 0)
    _, mid, _ = plan.at(96, 10.5, state, 0)
    assert low < mid < high and mid == pytest.approx((low + high) / 2)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), speed=st.sampled_from([0.5, 1.0, 1.7]), cap=st.sampled_from([0.3, 0.8, 5.0]),
       price=st.sampled_from([0.0, 0.5]))
def test_no_plan_costs_less_than_its_bound(seed: int, speed: float, cap: float, price: float) -> None:
    # The bound that lets `choose` skip markets: all the work at the cheapest price under the cap.
    rng = np.random.default_rng(seed)
    level = rng.uniform(0.1, 0.7)
    ts, floor = _series(np.clip(level * rng.lognormal(0, 0.4, 3000), 0.01, 5.0))
    model = fit_floor_model(ts, floor, 1.0, NOW.timestamp())
    assert model is not None
    plan = solve_plan(model, 8.0, 30.0, restart_h=0.25, speed=speed, interruption_cost=price, cap=cap)
    rows = np.arange(plan.value.shape[1], dtype=float)
    bound = np.array([_cost_bound(MarketNow(model, 0.0, None, speed), w, cap) for w in rows])
    assert np.all(plan.value >= bound[None, :, None, None] * (1 - 1e-6))


def _market_at(scale: float, seed: int) -> MarketNow:
    rng = np.random.default_rng(seed)
    ts, floor = _series(np.clip(scale * 0.3 * rng.lognormal(0, 0.3, 3000), 0.01, 50.0))
    model = fit_floor_model(ts, floor, scale, NOW.timestamp())
    assert model is not None
    return MarketNow(model, float(floor[-6:].max()), float(floor[-1]))


def test_many_markets_choose_what_planning_each_alone_would() -> None:
    # Six markets from $0.4 to $3 on-demand: the dear ones are skipped by their bound, and the choice is
    # still the cheapest plan of all; a decision's one-row plan chooses as the whole table does.
    markets = [_market_at(scale, seed) for seed, scale in enumerate([3.0, 0.5, 2.0, 0.4, 1.0, 0.45])]
    args = dict(work_h=20, window_h=60, work_left_h=20, time_left_h=60, restart_h=0.25, pod=None,
                interruptions_allowed=100)
    alone = [choose([m], **args) for m in markets]  # type: ignore[arg-type]
    costs = [c.expected_cost if c is not None else math.inf for c in alone]
    together = choose(markets, **args)  # type: ignore[arg-type]
    assert together is not None and together.market == int(np.argmin(costs))
    assert together.expected_cost == pytest.approx(min(costs))
    one_row = choose(markets, whole_table=False, **args)  # type: ignore[arg-type]
    assert one_row == together
    solved = solve_plan(markets[0].model, 20, 60, restart_h=0.25, first_row=100)
    assert solved.value.shape[0] == 121 - 100 and solved.first_row == 100
