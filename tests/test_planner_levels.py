"""The plan's bid levels beyond the quantiles: over the highest floor seen where the floor trends up
(`bidder.planner.RECORD_MULTIPLES`), and between the modes of a floor with two (`CLUSTER_GAP`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from bidder.backtest.engine import run_backtest
from bidder.backtest.history import load_trace
from bidder.backtest.types import BacktestJob
from bidder.models import Policy
from bidder.planner import CLUSTER_GAP, RECORD_MULTIPLES, fit_floor_model

NOW = datetime(2026, 3, 1, tzinfo=UTC)
STEP = 300.0


def _noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Log-noise with a few hours' memory (AR(1) over 5-minute samples) and a little jitter."""
    noise, shock = np.zeros(n), rng.normal(0.0, 0.08 * np.sqrt(1 - 0.98**2), n)
    for i in range(1, n):
        noise[i] = 0.98 * noise[i - 1] + shock[i]
    return np.exp(noise + rng.normal(0.0, 0.03, n))


def _rising(days: int = 20, seed: int = 3, od: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """A floor rising a cent a day from $0.10 (so a new high every few hours); 5-minute samples ending
    at NOW."""
    n = days * 288
    floor = (0.10 + 0.01 * np.arange(n) / 288) * _noise(n, np.random.default_rng(seed))
    return NOW.timestamp() - STEP * np.arange(n, 0, -1), np.minimum(floor, od * 0.99)


def _weekly(days: int = 24, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """$0.30 on weekdays, $0.10 at weekends (Saturday and Sunday, UTC); on-demand $0.50."""
    n = days * 288
    ts = NOW.timestamp() - STEP * np.arange(n, 0, -1)
    weekend = np.array([datetime.fromtimestamp(t, UTC).weekday() >= 5 for t in ts])
    return ts, np.where(weekend, 0.10, 0.30) * _noise(n, np.random.default_rng(seed))


def test_a_floor_trending_up_gets_bid_levels_over_its_highest_block_and_moves_into_them() -> None:
    ts, floor = _rising()
    model = fit_floor_model(ts, floor, 0.5, NOW.timestamp())
    assert model is not None and model.record_levels >= 1
    top = model.levels - 1 - model.record_levels  # the highest quantile level: the highest block seen
    highest = float(np.max(model.maxima[np.isfinite(model.maxima)]))
    assert model.edges[top] == highest
    assert np.allclose(model.edges[top + 1:], [m * highest for m in RECORD_MULTIPLES[:model.record_levels]])
    assert model.edges[-1] < model.on_demand
    for trans in [model.trans, *([] if model.phase_trans is None else model.phase_trans)]:
        assert np.allclose(trans.sum(axis=1), 1.0) and (trans >= 0).all()
        assert trans[top, top + 1:].sum() > 0.01  # new highs come from the top: it is not a safe bid
        assert trans[top, top + 1] > trans[top, -1]  # small rises more often than large ones
    # A record level rises as the top does, one level up; its down moves go where the top's do.
    first = top + 1
    assert model.trans[first, first] == model.trans[top, top]
    assert np.array_equal(model.trans[first, :top], model.trans[top, :top])


def test_a_floor_that_sets_no_new_highs_keeps_its_highest_block_as_its_top_level() -> None:
    # Calm at 0.2 for 5 hours, an hour at 0.8, again and again: the same high every day.
    cycle = np.r_[np.full(60, 0.2), np.full(12, 0.8)]
    floor = np.tile(cycle, 40)
    ts = NOW.timestamp() - STEP * np.arange(len(floor), 0, -1)
    model = fit_floor_model(ts, floor, 1.0, NOW.timestamp())
    assert model is not None and model.record_levels == 0 and model.edges[-1] == 0.8


def test_no_record_level_within_a_tenth_of_on_demand() -> None:
    ts, floor = _rising()
    highest = float(floor.max())
    model = fit_floor_model(ts, floor, highest * 1.05, NOW.timestamp())  # on-demand is the bid over the top
    assert model is not None and model.record_levels == 0 and model.edges[-1] <= highest


def test_a_floor_with_two_modes_gets_a_level_over_the_cheap_one() -> None:
    # Twelve equal-weight quantiles put three levels in the weekend mode, the highest at its 87th
    # percentile, and the next among the weekdays' prices: no bid covered a weekend without a weekday's price.
    ts, floor = _weekly()
    model = fit_floor_model(ts, floor, 0.5, NOW.timestamp())
    assert model is not None
    cheap = model.maxima[model.maxima < 0.2]
    dear = model.maxima[model.maxima >= 0.2]
    between = model.edges[(model.edges >= cheap.max()) & (model.edges < dear.min())]
    assert len(between) == 1 and dear.min() / between[0] > CLUSTER_GAP
    assert model.state_of(float(cheap.max())) < model.state_of(float(dear.min()))
    # A floor of one mode keeps its quantiles.
    one = fit_floor_model(ts, 0.30 * floor / np.where(floor < 0.2, 0.10, 0.30), 0.5, NOW.timestamp())
    assert one is not None and one.levels - one.record_levels <= 12


def test_a_floor_that_dips_a_block_at_a_time_gets_no_level_for_the_dips() -> None:
    # $0.20 or $0.80 drawn for every 5-minute sample: a half-hour block's highest is $0.20 one time in 64,
    # and the next block is almost never another such. A level at $0.20 would be no bid to run on.
    n = 30 * 288
    ts = NOW.timestamp() - STEP * np.arange(n, 0, -1)
    model = fit_floor_model(ts, np.random.default_rng(2).choice([0.2, 0.8], n), 1.0, NOW.timestamp())
    assert model is not None and 0.2 not in model.edges and model.maxima is not None
    assert (model.maxima == 0.2).sum() >= 10  # the dips are there; they are not a mode


def _trace(path, ts: np.ndarray, floor: np.ndarray) -> object:
    start = datetime.fromtimestamp(ts[0], UTC)
    lines = ["ts,gpu_type,minimum_bid_price,uninterruptable_price,cloud,gpu_count,stock_status"]
    lines += [f"{(start + timedelta(minutes=5 * i)).strftime('%Y-%m-%dT%H:%M:%SZ')},X,{floor[i]:.4f},0.5,COMMUNITY,1,"
              for i in range(len(floor))]
    path.write_text("\n".join(lines) + "\n")
    return load_trace(path)


def _daily_jobs(history, *, tolerance: float, windows: int) -> tuple[float, float]:
    """10 hours due in a day, a window a day: bidder's and floor+0.10's mean cost a window, once every
    deadline is checked met and bidder's interruptions within the tolerance in the mean."""
    job = BacktestJob(gpu_types=("X",), work_hours=10, deadline_hours=24, restart_overhead_hours=0.25)
    report = run_backtest(history, job, Policy(tolerance=tolerance), ("bidder", "floor+0.10"), every_hours=24)
    assert len(report.windows) >= windows
    ours = [w.results["bidder"] for w in report.windows]
    assert all(r.deadline_met for r in ours)
    assert np.mean([r.interruptions for r in ours]) <= tolerance
    return (float(np.mean([r.cost for r in ours])),
            float(np.mean([w.results["floor+0.10"].cost for w in report.windows])))


def test_a_job_on_a_rising_floor_bids_over_its_highs_and_beats_a_fixed_premium(tmp_path) -> None:
    # With the highest block seen as its top level, the plan read a bid at it as never crossed; each new
    # high interrupted it, and with no level over it the job ended on on-demand: 10 hours due in a day,
    # tolerance high, $3.35 a window against bidding the floor + $0.10's $3.02.
    ours, premium = _daily_jobs(_trace(tmp_path / "rising.csv", *_rising()), tolerance=6.0, windows=15)
    assert ours < 0.95 * premium, (ours, premium)


def test_a_job_at_the_weekend_bids_over_the_weekend_floor_not_the_weekdays(tmp_path) -> None:
    # Without a level between the modes a weekend job at tolerance low bid a weekday price ($0.34) or
    # inside the weekend's noise, and went on-demand after one interruption: 10 hours due in a day,
    # $3.71 a window against bidding the floor + $0.10's $3.53 (now $3.40).
    ours, premium = _daily_jobs(_trace(tmp_path / "weekly.csv", *_weekly(days=28, seed=2)), tolerance=0.5, windows=20)
    assert ours < premium, (ours, premium)
