"""Property tests: the hindsight bound is never above any strategy, on random traces (hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from backtest_helpers import RandomStrategy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bidder.backtest.engine import (
    BacktestJob,
    Market,
    PriceHistory,
    hindsight,
    replay,
    strategy_factory,
)
from bidder.backtest.history import history_from_series
from bidder.backtest.strategies import BASELINE_NAMES
from bidder.models import Policy

T0 = 1_767_225_600.0


@st.composite
def traces(draw: st.DrawFn) -> PriceHistory:
    markets = draw(st.integers(1, 3))
    samples = draw(st.integers(12, 150))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    steps = rng.choice([60.0, 300.0, 900.0], size=samples)             # irregular sampling
    ts = T0 + np.concatenate([[0.0], np.cumsum(steps[:-1])])
    series = []
    for m in range(markets):
        base = rng.uniform(0.1, 1.0)
        floor = base * np.exp(0.3 * rng.standard_normal(samples).cumsum() / np.sqrt(samples))
        spikes = rng.random(samples) < draw(st.floats(0, 0.3))
        floor = np.where(spikes, floor * rng.uniform(1.5, 10, samples), floor)
        floor[rng.random(samples) < draw(st.floats(0, 0.2))] = np.nan
        if draw(st.booleans()):
            od = np.full(samples, base * rng.uniform(1.2, 3))
        else:
            od = base * rng.uniform(0.8, 3, samples)
            od[rng.random(samples) < 0.1] = np.nan
        keep = rng.random(samples) < 0.9                               # markets sampled at different times
        keep[0] = True
        series.append((Market(f"GPU{m}", "COMMUNITY"), ts[keep], floor[keep], od[keep]))
    return history_from_series(series)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=traces(), data=st.data())
def test_hindsight_is_never_above_any_strategy(history: PriceHistory, data: st.DataObject) -> None:
    span_h = (history.end - history.ts[0]) / 3600
    speeds = data.draw(st.lists(st.sampled_from([1.0, 1.0, 0.5, 2.0]), min_size=len(history.markets),
                                max_size=len(history.markets)))
    job = BacktestJob(
        work_hours=data.draw(st.floats(0.05, max(0.1, span_h))),
        deadline_hours=data.draw(st.one_of(st.none(), st.floats(0.1, span_h * 1.2))),
        restart_overhead_hours=data.draw(st.sampled_from([0.0, 0.1, 0.25, 1.0])),
        gpu_count=data.draw(st.integers(1, 2)),
        speed_factors=tuple((m.gpu_type_id, s) for m, s in zip(history.markets, speeds, strict=True)),
    )
    policy = Policy(max_price=data.draw(st.one_of(st.none(), st.floats(0.1, 3))),
                    tolerance=data.draw(st.sampled_from([0.0, 0.5, 2.0, 6.0])))
    reclaim = data.draw(st.sampled_from([0.0, 0.5]))
    start = data.draw(st.integers(0, len(history) - 1))
    bound = hindsight(history, job, start)
    spec = job.spec(datetime.fromtimestamp(float(history.ts[start]), UTC))
    runs = [replay(history, job, policy, strategy_factory(name)(history.markets, spec, policy), start,
                   reclaim_rate_per_hour=reclaim) for name in ("bidder", *BASELINE_NAMES)]
    runs.append(replay(history, job, policy, RandomStrategy(data.draw(st.integers(0, 99)), odds=(0.6, 0.7, 0.8), bids=(0.8, 2.0)), start,
                       reclaim_rate_per_hour=reclaim))
    for r in runs:
        assert r.cost >= 0 and r.work_hours <= job.work_hours + 1e-9  # type: ignore[operator]
        if r.deadline_met:
            # It did the job's work by the deadline: the bound for exactly that is below it.
            assert bound.deadline_met
            assert bound.cost <= r.cost * (1 + 1e-9) + 1e-12, (r.name, bound.cost, r.cost)
        # Whatever it did: the same work in the cheapest slots up to where it stopped costs no more.
        horizon = r.completion_hours if r.completion_hours is not None else None
        same = hindsight(history, job, start, work_hours=r.work_hours,
                         horizon_hours=horizon if horizon is not None else (history.end - history.ts[start]) / 3600)
        assert same.deadline_met, (r.name, r.work_hours, same.work_hours)
        assert same.cost <= r.cost * (1 + 1e-9) + 1e-12, (r.name, same.cost, r.cost)


@settings(max_examples=60, deadline=None)
@given(history=traces(), start_frac=st.floats(0, 0.9))
def test_keep_running_on_demand_or_spot_never_beats_the_bound_while_always_up(history: PriceHistory,
                                                                              start_frac: float) -> None:
    start = int(start_frac * (len(history) - 1))
    span_h = (history.end - history.ts[start]) / 3600
    job = BacktestJob(work_hours=None, keep_running_hours=span_h, restart_overhead_hours=0.0)
    bound = hindsight(history, job, start)
    spec = job.spec(datetime.fromtimestamp(float(history.ts[start]), UTC))
    for name in BASELINE_NAMES:
        r = replay(history, job, Policy(), strategy_factory(name)(history.markets, spec, Policy()), start)
        if abs(r.work_hours - span_h) < 1e-9:     # up the whole span: then it paid at least the bound
            assert bound.cost <= r.cost * (1 + 1e-9) + 1e-12
        assert r.work_hours <= span_h + 1e-9
