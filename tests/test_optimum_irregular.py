"""The optimum on traces whose times are not on a grid of whole work units (irregular times), or whose
exact count is too large to keep (1-minute samples): two phased counts bound it, a lower bound no plan
of the model beats and a plan that finishes when replayed, with the gap between them reported."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from backtest_helpers import make_history
from click.testing import CliRunner

import bidder.backtest.optimum as optimum_module
from bidder.backtest.engine import BacktestJob, hindsight, load_trace, optimum, replay, strategy_factory
from bidder.backtest.optimum import PlanStrategy, solve_optimum
from bidder.cli import main
from bidder.models import Policy

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def write_trace(path: Path, seconds: np.ndarray, floors: np.ndarray, on_demand: float = 1.0) -> Path:
    rows = [f"{(T0 + timedelta(seconds=float(t))).strftime('%Y-%m-%dT%H:%M:%SZ')},NVIDIA RTX A6000,{f},{on_demand}"
            for t, f in zip(seconds, floors, strict=True)]
    path.write_text("ts,gpu_type,minimum_bid_price,uninterruptable_price\n" + "\n".join(rows) + "\n")
    return path


def tiny_trace(tmp_path: Path) -> Path:
    """Samples at 0, 4001, 4999, 9007 and 12600 s (steps with no common divisor but 1 s): the floor is
    0.2, a spike to 5.0 at 4001 s, then 0.3."""
    return write_trace(tmp_path / "tiny.csv", np.array([0, 4001, 4999, 9007, 12600]),
                       np.array([0.2, 5.0, 0.3, 0.3, 0.3]))


def test_hand_checked_irregular_trace(tmp_path: Path) -> None:
    # 2 hours of work by hour 3, restart overhead 15 minutes. The cheapest plan: spot at 0.2 until the
    # spike at 4001 s (1.11139 h, 0.25 h lost: 0.86139 h kept, $0.22228), wait out the spike, spot at 0.3
    # from 4999 s for the other 1.13861 h ($0.34158), done at 9098 s: $0.563861. (Waiting for 0.3 alone
    # would finish at 12199 s, after the deadline; on-demand costs $2; hindsight, the cheapest 2 hours
    # with no restart, 1.11139 h at 0.2 and 0.88861 h at 0.3: $0.488861.) A 1-second unit makes the job
    # 7,200 units, more than the exact count keeps: the phased counts bound it, at 1-second units, and
    # the bounds meet at the optimum.
    history = load_trace(tiny_trace(tmp_path))
    job = BacktestJob(work_hours=2, deadline_hours=3, restart_overhead_hours=0.25)
    best = 0.2 * 4001 / 3600 + 0.3 * (2 - (4001 / 3600 - 0.25))
    result, plan = optimum(history, job)
    assert plan.feasible and plan.exact and plan.work_exact
    assert plan.lower == pytest.approx(best, rel=1e-12) and plan.upper == pytest.approx(best, rel=1e-12)
    assert [(s.kind, s.start, s.end, s.bid) for s in plan.segments] == [("spot", 0, 1, 0.2), ("spot", 2, 4, 0.3)]
    assert result.deadline_met and result.cost == pytest.approx(best, rel=1e-12)
    assert result.completion_hours == pytest.approx(9098 / 3600)
    assert hindsight(history, job).cost == pytest.approx(0.2 * 4001 / 3600 + 0.3 * (2 - 4001 / 3600))


def test_coarse_units_bracket_the_hand_checked_optimum(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Run arrays of 40 columns force a 450-second unit (it divides the overhead: 2 units). The times are
    # then 0, 8.891, 11.109 and 20.016 units. The lower count credits the first run 8 units plus its
    # phase, 8.891; the restart takes floor(2 - 0.891) = 1, so the idle state holds 7 units (>= the 6.891
    # done); the second run starts at 11.109 with its phase, 7.109 units, and needs 8.891 more: 4001 s
    # at 0.3. Lower: 0.2 x 4001 / 3600 + 0.3 x 4001 / 3600 = $0.555694, under the optimum. The upper
    # count gives up the phase at the second start and rounds the loss up, and still finds the plan.
    monkeypatch.setattr(optimum_module, "MAX_WIDTH", 40)
    history = load_trace(tiny_trace(tmp_path))
    job = BacktestJob(work_hours=2, deadline_hours=3, restart_overhead_hours=0.25)
    best = 0.2 * 4001 / 3600 + 0.3 * (2 - (4001 / 3600 - 0.25))
    result, plan = optimum(history, job)
    assert plan.feasible and not plan.exact and plan.work_units == 16
    assert plan.lower == pytest.approx(0.5 * 4001 / 3600, rel=1e-12)
    assert plan.lower < best and plan.upper == pytest.approx(best, rel=1e-12)
    assert plan.gap == pytest.approx(1 - plan.lower / best)
    assert result.deadline_met and result.cost == pytest.approx(plan.upper, rel=1e-12)


def irregular_trace(path: Path, days: float, seed: int = 5) -> Path:
    """Exponential gaps (mean 300 s, whole seconds) with two gaps of 2 and 5 hours; the floor a log-OU
    (4-hour reversion, 30% spread) around 0.4 of a $1 on-demand price."""
    rng = np.random.default_rng(seed)
    gaps = np.maximum(1, np.round(rng.exponential(300.0, int(days * 400))))
    gaps[[100, 700]] = [7200, 18000]
    t = np.concatenate([[0.0], np.cumsum(gaps)])
    t = t[t < days * 86400]
    a = np.exp(-np.diff(t) / (4 * 3600))
    noise = rng.standard_normal(t.size - 1) * 0.3 * np.sqrt(1 - a * a)
    x = np.zeros(t.size)
    for i in range(1, t.size):
        x[i] = a[i - 1] * x[i - 1] + noise[i - 1]
    return write_trace(path, t, np.round(0.4 * np.exp(x), 4))


def test_irregular_trace_through_the_cli(tmp_path: Path) -> None:
    """The audit's trace: times at exponential gaps. The optimum had been "infeasible" in every window
    (its plan, counted in rounded-up units, did not finish when replayed) and its lower bound 30% under
    its own plan. Now: a plan in every window where on-demand finishes, replayed to completion at its
    `upper`; a lower bound under every strategy's cost and at or over hindsight; the gap under 1%."""
    path = irregular_trace(tmp_path / "irregular.csv", days=5)
    history = load_trace(path)
    steps = np.diff(history.ts)
    assert np.gcd.reduce(steps.astype(np.int64)) == 1 and steps.max() == 18000  # (truly irregular)
    names = ["bidder", "on-demand", "floor", "floor+0.10", "bid-on-demand", "optimum", "hindsight"]
    out = CliRunner().invoke(main, ["backtest", "--trace", str(path), "--hours", "10", "--deadline", "1d",
                                    "--restart-overhead", "15m", "--every", "1d", "--tolerance", "high",
                                    "--strategies", ",".join(names), "--format", "json"])
    assert out.exit_code == 0, out.output
    summary = json.loads(out.output)
    assert summary["windows"] == 2 and not summary.get("optimum_infeasible_windows")
    assert summary["optimum_bounds"]["worst_gap"] < 0.01
    for window in summary["per_window"]:
        costs = window["strategies"]
        lower, upper = window["optimum_bounds"]["lower"], window["optimum_bounds"]["upper"]
        assert costs["on-demand"]["deadline_met_share"] == 1.0
        assert costs["optimum"]["deadline_met_share"] == 1.0 and costs["optimum"]["cost"] == pytest.approx(upper)
        assert costs["hindsight"]["cost"] <= lower + 1e-6 <= upper + 2e-6
        for name in names[:-2]:
            if costs[name]["deadline_met_share"] == 1.0:
                assert lower <= costs[name]["cost"] + 1e-6, name


def test_irregular_windows_bound_every_strategy_and_replay(tmp_path: Path) -> None:
    # The same through solve_optimum, with a restart the plan must survive: each window's plan is replayed
    # by the engine to its upper bound, by the deadline.
    history = load_trace(irregular_trace(tmp_path / "irregular.csv", days=3, seed=8))
    job = BacktestJob(work_hours=20, deadline_hours=40, restart_overhead_hours=0.25)
    for start in (0, len(history) // 4):
        plan = solve_optimum(history, job, start)
        assert plan.feasible and not plan.work_exact and 0 <= plan.gap < 0.01
        run = replay(history, job, Policy(), PlanStrategy(plan.segments), start)
        assert run.deadline_met and run.cost == pytest.approx(plan.upper, rel=1e-9)
        assert hindsight(history, job, start).cost <= plan.lower * (1 + 1e-12)
        for name in ("on-demand", "floor", "floor+0.10", "bid-on-demand"):
            spec = job.spec(datetime.fromtimestamp(float(history.ts[start]), UTC))
            r = replay(history, job, Policy(), strategy_factory(name)(history.markets, spec, Policy()), start)
            if r.deadline_met:
                assert plan.lower <= r.cost * (1 + 1e-12), name


def test_an_exact_job_too_large_to_keep_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 1-minute trace's 100-hour, 7-day job is 10,080 samples x 6,000 units, over the backtrack's
    MAX_CELLS: it had no optimum row. Its lower count keeps no backtrack and runs at the exact unit (the
    same lower bound as the exact DP), the upper count at a coarser one: here, 5-minute samples and a
    MAX_CELLS under the job's cells."""
    rng = np.random.default_rng(2)
    floors = np.round(0.4 * np.exp(np.cumsum(rng.normal(0, 0.05, 288 * 2))), 2)  # few distinct: exact levels
    history = make_history([floors], on_demand=1.0)
    job = BacktestJob(work_hours=20, deadline_hours=36, restart_overhead_hours=0.25)
    exact = solve_optimum(history, job)
    assert exact.work_exact and exact.work_units == 240
    monkeypatch.setattr(optimum_module, "MAX_CELLS", 432 * 240 - 1)
    bounded = solve_optimum(history, job)
    assert bounded.feasible and bounded.work_units == 240 and not bounded.work_exact
    assert bounded.lower == pytest.approx(exact.lower, rel=1e-12)
    assert bounded.upper >= exact.lower * (1 - 1e-12) and bounded.gap < 0.01
    run = replay(history, job, Policy(), PlanStrategy(bounded.segments), 0)
    assert run.deadline_met and run.cost == pytest.approx(bounded.upper, rel=1e-9)


def test_a_unit_coarser_than_a_step_and_the_overhead_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from bidder.errors import ConfigError

    monkeypatch.setattr(optimum_module, "MAX_CELLS", 100)
    history = make_history([np.full(288, 0.3)], on_demand=1.0)
    with pytest.raises(ConfigError, match="longer than a step and the restart overhead") as raised:
        solve_optimum(history, BacktestJob(work_hours=10, deadline_hours=24, restart_overhead_hours=0.25))
    assert raised.value.key == "strategies"
