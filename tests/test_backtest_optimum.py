"""The backtest's `optimum`: hand-checked on tiny traces, and bounded on random ones (hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from backtest_helpers import RandomStrategy, every_plan, make_history
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bidder.backtest.engine import (
    BacktestJob,
    Market,
    PriceHistory,
    hindsight,
    optimum,
    replay,
    run_backtest,
    strategy_factory,
)
from bidder.backtest.history import history_from_series
from bidder.backtest.optimum import PlanStrategy, solve_optimum
from bidder.backtest.strategies import BASELINE_NAMES
from bidder.errors import ConfigError
from bidder.models import Policy

T0 = 1_767_225_600.0
HOUR = 3600.0


def two_markets() -> PriceHistory:
    """Hourly samples. A: cheap (0.1) for 3 hours, then a spike, then 0.4. B: 0.35 throughout.
    On-demand 1.0 on both."""
    return make_history([[0.1, 0.1, 0.1, 5.0, 0.4, 0.4, 0.4, 0.4],
                         [0.35] * 8], on_demand=1.0, names=["A", "B"], step=HOUR)


def test_hand_checked_switch_between_markets() -> None:
    # 3.5 hours of work by hour 7, restart overhead 1 hour. The cheapest plan: A at 0.1 for hours
    # 0-3 (3 hours of work, 1 lost when it stops: 2 kept, $0.30), then B at 0.35 for 1.5 hours
    # ($0.525): $0.825. (B alone: $1.225; A, then A again at 0.4 from hour 4: $0.90; the
    # cheapest 3.5 hours with no restart cost, hindsight: 3 x 0.1 + 0.5 x 0.35 = $0.475.)
    history = two_markets()
    job = BacktestJob(work_hours=3.5, deadline_hours=7, restart_overhead_hours=1.0)
    plan = solve_optimum(history, job)
    assert plan.feasible and plan.exact
    assert plan.lower == pytest.approx(0.825) and plan.upper == pytest.approx(0.825)
    assert [(s.kind, s.market, s.start, s.end, s.bid) for s in plan.segments] == [
        ("spot", 0, 0, 3, 0.1), ("spot", 1, 3, 5, 0.35)]
    result, _ = optimum(history, job)
    assert result.cost == pytest.approx(0.825) and result.lower_bound == pytest.approx(0.825)
    assert result.deadline_met and result.completion_hours == pytest.approx(4.5)
    # The spike at hour 3 ends the first run (an interruption the plan counted on), 1 hour lost.
    assert result.interruptions == 1 and result.switches == 0 and result.restart_hours_lost == pytest.approx(1.0)
    assert hindsight(history, job).cost == pytest.approx(0.475)
    split = plan.breakdown(history)
    assert split["on_demand_hours"] == 0 and split["spot_hours"] == pytest.approx(5.0) and split["restarts"] == 1
    assert split["bid_over_floor"] == pytest.approx(1.0)
    assert split["starts"] == {"A COMMUNITY": 1, "B COMMUNITY": 1}


def test_hand_checked_one_market_waits_out_the_spike() -> None:
    # Market A alone, 4 hours of work by hour 7: A at 0.1 for 3 hours (2 kept, $0.30), wait out
    # the spike, A at 0.4 for 2 hours ($0.80): $1.10. On-demand from hour 3 would cost $2.30 with
    # the same start; bidding through the spike costs $5 for that hour alone.
    history = two_markets().subset([0])
    job = BacktestJob(work_hours=4, deadline_hours=7, restart_overhead_hours=1.0)
    plan = solve_optimum(history, job)
    assert plan.lower == pytest.approx(1.1) and plan.upper == pytest.approx(1.1)
    assert [(s.start, s.end, s.bid) for s in plan.segments] == [(0, 3, 0.1), (4, 6, 0.4)]
    # With no spare time at all, only an uninterrupted run can finish: on-demand, 4 hours of 1.0
    # (spot through the spike would pay 5.0 for every hour).
    tight = BacktestJob(work_hours=4, deadline_hours=4, restart_overhead_hours=1.0)
    plan = solve_optimum(history, tight)
    assert plan.lower == pytest.approx(4.0) and [s.kind for s in plan.segments] == ["on_demand"]
    # And one hour more work than the window can hold: infeasible, reported as a missed deadline.
    result, plan = optimum(history, BacktestJob(work_hours=8, deadline_hours=7, restart_overhead_hours=1.0))
    assert not plan.feasible and result.deadline_met is False


def test_on_demand_only_once_quoted_and_spot_only_with_capacity() -> None:
    # No spot capacity at all; on-demand quoted from hour 2 on (at 1.0, then 0.8 from hour 4).
    # 2 hours of work by hour 6: on-demand from hour 4 ($1.60) beats hour 2 ($2.00).
    nan = float("nan")
    od = np.array([nan, nan, 1.0, 1.0, 0.8, 0.8, 0.8, 0.8])
    history = make_history([[nan] * 8], on_demand=od, step=HOUR)
    plan = solve_optimum(history, BacktestJob(work_hours=2, deadline_hours=6, restart_overhead_hours=0.5))
    assert plan.lower == pytest.approx(1.6) and [(s.kind, s.start, s.end) for s in plan.segments] == [
        ("on_demand", 4, 6)]
    plan = solve_optimum(history, BacktestJob(work_hours=3, deadline_hours=5, restart_overhead_hours=0.5))
    assert plan.lower == pytest.approx(2.8) and [(s.kind, s.start) for s in plan.segments] == [("on_demand", 2)]


def test_the_price_grid_brackets_the_exact_optimum() -> None:
    rng = np.random.default_rng(3)
    floors = 0.3 * np.exp(0.4 * rng.standard_normal((2, 12 * 24 * 3)).cumsum(axis=1) / 20)
    history = make_history(np.round(floors, 6), on_demand=1.0)
    job = BacktestJob(work_hours=30, deadline_hours=60, restart_overhead_hours=0.25)
    exact = solve_optimum(history, job, exact_levels=10**9)
    grid = solve_optimum(history, job, exact_levels=0)
    assert exact.exact and not grid.exact
    assert exact.lower == pytest.approx(exact.upper)
    assert grid.lower <= exact.lower * (1 + 1e-12) and exact.lower <= grid.upper * (1 + 1e-12)
    assert 0 <= grid.gap < 0.01


def test_run_backtest_reports_the_optimum_and_cost_vs_optimum() -> None:
    history = two_markets()
    job = BacktestJob(work_hours=3.5, deadline_hours=7, restart_overhead_hours=1.0)
    report = run_backtest(history, job, Policy(), ["floor", "on-demand", "optimum", "hindsight"], warmup_hours=0)
    by = {s["name"]: s for s in report.summary()["strategies"]}
    assert by["optimum"]["cost"] == pytest.approx(0.825) and by["optimum"]["cost_vs_optimum"] == pytest.approx(1.0)
    assert by["on-demand"]["cost_vs_optimum"] == pytest.approx(3.5 / 0.825)
    assert by["hindsight"]["cost_vs_optimum"] == pytest.approx(0.475 / 0.825)
    assert report.summary()["optimum_bounds"]["worst_gap"] == pytest.approx(0.0, abs=1e-9)
    # A kept-running service has no optimum: the name is dropped, nothing else changes.
    service = BacktestJob(work_hours=None, keep_running_hours=4)
    names = [s["name"] for s in run_backtest(history, service, Policy(), ["on-demand", "optimum", "hindsight"],
                                             warmup_hours=0).summary()["strategies"]]
    assert names == ["on-demand", "hindsight"]


# -- random traces -----------------------------------------------------------------------------------------
@st.composite
def traces(draw: st.DrawFn) -> PriceHistory:
    markets = draw(st.integers(1, 3))
    samples = draw(st.integers(12, 120))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    step = draw(st.sampled_from([300.0, 900.0]))
    spacing = draw(st.sampled_from(["regular", "multiples", "irregular"]))
    steps = (np.full(samples, step) if spacing == "regular" else rng.choice([300.0, 600.0, 900.0], size=samples)
             if spacing == "multiples" else np.round(rng.uniform(20, 1800, samples)))  # (whole seconds, no grid)
    ts = T0 + np.concatenate([[0.0], np.cumsum(steps[:-1])])
    decimals = draw(st.sampled_from([2, 3, 6]))
    series = []
    for m in range(markets):
        base = rng.uniform(0.1, 1.0)
        floor = base * np.exp(0.3 * rng.standard_normal(samples).cumsum() / np.sqrt(samples))
        spikes = rng.random(samples) < draw(st.floats(0, 0.3))
        floor = np.round(np.where(spikes, floor * rng.uniform(1.5, 10, samples), floor), decimals)
        floor[rng.random(samples) < draw(st.floats(0, 0.2))] = np.nan
        od = np.full(samples, base * rng.uniform(1.2, 3))
        if draw(st.booleans()):
            od[rng.random(samples) < 0.1] = np.nan
        series.append((Market(f"GPU{m}", "COMMUNITY"), ts, floor, od))
    return history_from_series(series, step_s=step)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=traces(), data=st.data())
def test_optimum_is_between_hindsight_and_every_strategy(history: PriceHistory, data: st.DataObject) -> None:
    span_h = (history.end - history.ts[0]) / 3600
    speeds = data.draw(st.lists(st.sampled_from([1.0, 1.0, 0.5, 2.0]), min_size=len(history.markets),
                                max_size=len(history.markets)))
    job = BacktestJob(work_hours=data.draw(st.floats(0.1, max(0.2, span_h * 0.8))),
                      deadline_hours=data.draw(st.floats(0.2, span_h)),
                      restart_overhead_hours=data.draw(st.sampled_from([0.0, 0.1, 0.25, 1.0])),
                      gpu_count=data.draw(st.integers(1, 2)),
                      speed_factors=tuple((m.gpu_type_id, s) for m, s in zip(history.markets, speeds, strict=True)))
    start = data.draw(st.integers(0, len(history) // 2))
    result, plan = optimum(history, job, start)
    bound = hindsight(history, job, start)
    if not plan.feasible:
        assert result.deadline_met is False
    else:
        assert bound.deadline_met
        assert bound.cost <= plan.lower * (1 + 1e-9) + 1e-12, (bound.cost, plan.lower)
        assert plan.lower <= plan.upper * (1 + 1e-9) + 1e-12
        # The plan is real: the engine replays it to its cost, by the deadline.
        assert result.deadline_met and result.cost == pytest.approx(plan.upper, rel=1e-9, abs=1e-12)
        if plan.work_exact:  # (else the gap is also what the phased counts' rounding costs: reported)
            assert plan.gap < 0.01
    policy = Policy(tolerance=2.0)
    spec = job.spec(datetime.fromtimestamp(float(history.ts[start]), UTC))
    runs = [replay(history, job, policy, strategy_factory(name)(history.markets, spec, policy), start)
            for name in ("bidder", *BASELINE_NAMES)]
    runs += [replay(history, job, policy, RandomStrategy(data.draw(st.integers(0, 99))), start) for _ in range(3)]
    for r in runs:
        if r.deadline_met:
            # It did the job's work by the deadline: the optimum's lower bound is at or under it.
            assert plan.feasible, r.name
            assert plan.lower <= r.cost * (1 + 1e-9) + 1e-12, (r.name, plan.lower, r.cost)


def test_a_single_run_is_exact_when_only_the_restart_loss_was_rounded() -> None:
    # Found by the property test above: a deadline 787.5 s into an irregular trace has no whole-second
    # grid, so the work unit is the step and the 6-minute restart rounds down to 0 units. The best
    # plan is one run, which never restarts: it is real, and the optimum (it had been flagged inexact).
    steps = [900.0, 600.0, 600.0, 300.0, 300.0, 300.0, 300.0, 300.0, 300.0, 900.0, 600.0]
    ts = T0 + np.concatenate([[0.0], np.cumsum(steps)])
    floor = np.array([0.7, 0.66, 0.59, 0.56, 0.56, 0.46, 0.45, 0.4, 0.38, 0.36, 0.35, 0.37])
    history = history_from_series([(Market("GPU0", "COMMUNITY"), ts, floor, np.full(12, 0.95))], step_s=300.0)
    job = BacktestJob(work_hours=0.125, deadline_hours=0.21875, restart_overhead_hours=0.1)
    result, plan = optimum(history, job, 0)
    assert plan.feasible and len(plan.segments) == 1
    assert plan.work_exact and plan.exact
    assert plan.lower == pytest.approx(plan.upper) == pytest.approx(0.7 * 0.125)
    assert result.deadline_met and result.cost == pytest.approx(plan.upper, rel=1e-9)


def test_a_window_too_large_to_solve_is_left_out_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    import bidder.backtest.optimum as optimum_module

    monkeypatch.setattr(optimum_module, "MAX_CELLS", 20)   # 7 samples x 4 work units = 28 cells
    history = two_markets()
    job = BacktestJob(work_hours=3.5, deadline_hours=7, restart_overhead_hours=1.0)
    with pytest.raises(ConfigError, match="shorter --deadline"):
        solve_optimum(history, job)
    report = run_backtest(history, job, Policy(), ["floor", "optimum", "hindsight"], warmup_hours=0)
    summary = report.summary()
    assert [s["name"] for s in summary["strategies"]] == ["floor", "hindsight"]
    assert "optimum" in summary["job"]["optimum_skipped"] and summary["strategies"][0]["cost_vs_optimum"] is None
    with pytest.raises(ConfigError):
        run_backtest(history, job, Policy(), ["optimum"], warmup_hours=0)
    # The same from worker processes (the limit is inherited; the error crosses back with its key).
    windows = dict(warmup_hours=0, every_hours=1.0, workers=2)
    many = run_backtest(history, job, Policy(), ["floor", "optimum", "hindsight"], **windows)  # type: ignore[arg-type]
    assert len(many.windows) == 2 and many.summary()["job"]["optimum_skipped"] == summary["job"]["optimum_skipped"]
    with pytest.raises(ConfigError) as raised:
        run_backtest(history, job, Policy(), ["optimum"], **windows)  # type: ignore[arg-type]
    assert raised.value.key == "strategies"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), markets=st.integers(1, 2), data=st.data())
def test_optimum_equals_the_cheapest_of_every_plan_on_tiny_traces(seed: int, markets: int,
                                                                  data: st.DataObject) -> None:
    # Brute force, independent of the DP: every plan of segments, each replayed by the engine.
    rng = np.random.default_rng(seed)
    k = data.draw(st.integers(3, 6 if markets == 1 else 4))
    floors = np.round(rng.uniform(0.1, 1.5, (markets, k)), 1)
    floors[rng.random((markets, k)) < 0.15] = np.nan
    od = np.round(rng.uniform(0.6, 1.2, (markets, 1)), 1) * np.ones((markets, k))
    od[rng.random((markets, k)) < 0.15] = np.nan
    history = make_history(floors, on_demand=od, step=HOUR)
    job = BacktestJob(work_hours=data.draw(st.sampled_from([0.5, 1.0, 1.5, 2.0, 2.5, 3.0])), deadline_hours=k,
                      restart_overhead_hours=data.draw(st.sampled_from([0.0, 0.5, 1.0])))
    plan = solve_optimum(history, job)
    best = np.inf
    for segments in every_plan(history.floor, history.on_demand, k):
        if segments:
            r = replay(history, job, Policy(), PlanStrategy(segments), 0)
            if r.deadline_met:
                best = min(best, r.cost)
    if not np.isfinite(best):
        assert not plan.feasible
    else:
        assert plan.feasible and plan.exact
        assert plan.lower == pytest.approx(best, rel=1e-9) and plan.upper == pytest.approx(best, rel=1e-9)


def test_samples_a_few_seconds_off_their_grid_are_put_on_it_and_the_optimum_is_exact(tmp_path) -> None:
    """A collector's 5-minute samples come 0-3 seconds late. With steps of 299-303 s the optimum had no
    whole work unit: it found no plan that finished ("infeasible" in every window, while on-demand
    finished) or a bound 30-50% too low. The history puts such samples on their grid, so the same
    prices a few seconds off give the same optimum as on the exact grid; a trace on its grid is
    unchanged to the bit, and samples too far off are left where they are."""
    from click.testing import CliRunner

    from bidder.backtest.history import on_grid
    from bidder.cli import main

    rng = np.random.default_rng(7)
    n = 4 * 288
    exact = T0 + 300.0 * np.arange(n)
    late = exact + rng.integers(0, 4, n)
    floor = np.round(0.4 * np.exp(np.cumsum(rng.normal(0, 0.02, n))), 4)
    assert on_grid(exact) is exact
    assert np.array_equal(on_grid(late), exact + np.median(late - exact))
    scattered = exact + rng.integers(0, 100, n)  # up to 100 s late: not a grid a few seconds off
    assert on_grid(scattered) is scattered
    results = {}
    for name, ts in (("exact", exact), ("late", late)):
        path = tmp_path / f"{name}.csv"
        rows = [f"{datetime.fromtimestamp(t, UTC).strftime('%Y-%m-%dT%H:%M:%SZ')},NVIDIA RTX A6000,{f},1.0"
                for t, f in zip(ts, floor, strict=True)]
        path.write_text("ts,gpu_type,minimum_bid_price,uninterruptable_price\n" + "\n".join(rows) + "\n")
        out = CliRunner().invoke(main, ["backtest", "--trace", str(path), "--hours", "10", "--deadline", "1d",
                                        "--restart-overhead", "15m", "--every", "1d", "--tolerance", "high",
                                        "--strategies", "on-demand,optimum", "--format", "json"])
        assert out.exit_code == 0, out.output
        import json

        summary = json.loads(out.output)
        results[name] = {s["name"]: s for s in summary["strategies"]}
        assert not summary.get("optimum_infeasible_windows"), summary.get("optimum_infeasible_windows")
    assert results["late"]["optimum"]["cost"] == pytest.approx(results["exact"]["optimum"]["cost"])
    assert results["late"]["on-demand"]["cost_vs_optimum"] == pytest.approx(
        results["exact"]["on-demand"]["cost_vs_optimum"])
