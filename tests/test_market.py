"""Market statistics on constructed series with known answers, and tracker == batch."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import gamma

from bidder.advisor import history_note
from bidder.errors import InsufficientHistory
from bidder.market import (
    AGE_EDGES_HOURS,
    RELATIVE_GRID,
    SILENCE_LOOKBACK_HOURS,
    FloorTracker,
    MarketStats,
    bid_grid,
    market_stats,
    poisson_rate_upper,
)

STEP = 300.0  # 5-minute samples
T0 = 1_767_225_600.0  # 2026-01-01T00:00Z


def series(floor: np.ndarray, on_demand: float = 1.0, step: float = STEP, t0: float = T0) -> SimpleNamespace:
    floor = np.asarray(floor, dtype=float)
    return SimpleNamespace(ts=t0 + step * np.arange(len(floor)), floor=floor,
                           on_demand=np.full(len(floor), on_demand), gpu_type_id="GPU", cloud="COMMUNITY",
                           gpu_count=1)


def square_wave(cycles: int, low: float = 0.2, high: float = 0.5, half_samples: int = 12) -> np.ndarray:
    """`half_samples` samples at `low` then as many at `high`, `cycles` times (1 h each at 5 min)."""
    return np.tile(np.r_[np.full(half_samples, low), np.full(half_samples, high)], cycles)


def feed(tracker: FloorTracker, s: SimpleNamespace) -> FloorTracker:
    for t, f, o in zip(s.ts, s.floor, s.on_demand, strict=True):
        tracker.update(float(t), None if math.isnan(f) else float(f), float(o))
    return tracker


def test_grid_is_relative_to_on_demand_and_finer_in_the_band() -> None:
    grid = bid_grid(0.65)
    assert np.all(np.diff(grid) > 0)
    assert grid[0] == pytest.approx(0.05 * 0.65) and grid[-1] == pytest.approx(1.5 * 0.65)
    steps = np.diff(RELATIVE_GRID)
    assert steps[RELATIVE_GRID[:-1] < 0.8].max() <= 0.0100001  # 1% of on-demand where floors live
    with pytest.raises(ValueError):
        bid_grid(0.0)


def test_floor_never_above_030_leaves_only_the_reclaim_rate() -> None:
    rng = np.random.default_rng(1)
    floor = rng.uniform(0.10, 0.30, size=2000)  # about 7 days
    stats = market_stats(series(floor), half_life_hours=None, reclaim_rate_per_hour=0.02)
    above = stats.bids > 0.30
    assert above.any()
    assert np.all(stats.outbid_events[above] == 0)
    assert np.all(stats.outbid_rate[above] == 0)
    assert np.allclose(stats.availability[above], 1.0)
    # No outbid ever seen: the rate is the reclaim prior plus the small-sample bound on zero events,
    # which shrinks as the history grows.
    bound = poisson_rate_upper(0.0, stats.running_hours[above], stats.confidence)
    assert np.allclose(stats.interruption_rate[above], 0.02 + bound)
    assert np.all(bound < 0.02)
    longer = market_stats(series(np.tile(floor, 4)), half_life_hours=None, reclaim_rate_per_hour=0.02)
    assert np.all(longer.interruption_rate[above] < stats.interruption_rate[above])
    assert np.all(longer.interruption_rate[above] > 0.02)


def test_square_wave_gives_exact_upcrossings_availability_runs_and_waits() -> None:
    cycles = 200
    stats = market_stats(series(square_wave(cycles)), half_life_hours=None, reclaim_rate_per_hour=0.0)
    mid = (stats.bids >= 0.2) & (stats.bids < 0.5)
    low = stats.bids < 0.2
    high = stats.bids >= 0.5
    # Observed time: every interval but the last sample's; the last half-cycle is at `high`.
    total_h = (len(stats_ts := series(square_wave(cycles)).ts) - 1) * STEP / 3600
    assert stats.observed_hours == pytest.approx(total_h)
    assert np.allclose(stats.running_hours[mid], cycles * 1.0)
    assert np.allclose(stats.availability[mid], cycles / total_h)
    assert np.allclose(stats.outbid_events[mid], cycles)  # one upcrossing per cycle
    assert np.allclose(stats.outbid_rate[mid], 1.0)  # per running hour
    assert np.allclose(stats.mean_run_hours[mid], 1.0)
    # Waits: every excursion above lasts 1 h (the last one is still open at the end of the data).
    assert np.allclose(stats.mean_wait_hours[mid], (total_h - cycles) / cycles)
    assert np.all(stats.availability[low] == 0) and np.allclose(stats.availability[high], 1.0)
    assert np.all(stats.outbid_events[high] == 0)
    # Run lengths sit in the (40 min, 80 min] bin: the median run is at most 80 minutes.
    assert np.allclose(stats.run_quantile(0.5)[mid], 80 / 60)
    assert np.allclose(stats.wait_quantile(0.5)[mid], 80 / 60)
    # A run that has lasted 40 minutes ends within 20 more: rate 3/h (bounded above for the count).
    j = int(np.flatnonzero(np.isclose(AGE_EDGES_HOURS, 40 / 60))[0])
    i = int(np.flatnonzero(mid)[0])
    assert stats.events_by_age[i, j] == pytest.approx(cycles - 1 + 1)
    assert stats.exposure_by_age[i, j] == pytest.approx(cycles * 20 / 60)
    # The data are plentiful, so the prior toward the shorter age (1/h) barely moves the bound: a
    # regular cycle's rising hazard is seen as it is.
    assert 2.9 < stats.hazard_by_age[i, j] < 3.5
    assert stats.hazard_by_age[i, j] > 2.5 * stats.hazard_by_age[i, 0]
    del stats_ts


def test_excursion_and_residual_wait() -> None:
    s = series(square_wave(50))  # ends 55 minutes into a 1-hour excursion above 0.2..0.5
    stats = market_stats(s, half_life_hours=None)
    tracker = feed(FloorTracker("GPU", half_life_hours=None), s).stats()
    i = stats.index_of(0.3)
    assert stats.excursion_hours[i] == pytest.approx(55 / 60)
    assert np.allclose(stats.excursion_hours, tracker.excursion_hours)
    assert stats.residual_wait_hours()[i] == pytest.approx(5 / 60)  # every wait lasted one hour
    assert stats.residual_wait_hours()[stats.index_of(0.6)] == 0.0  # a bid above the floor: no wait
    assert stats.excursion_hours[stats.index_of(0.6)] == 0.0


def test_settle_wait_is_a_renewal_over_the_runs_and_waits() -> None:
    """Runs of 1 h and 3 h under 0.3 in turn, each followed by an hour above it. A calm of 2.67 h
    (the age edge the 3-h runs pass) is reached by half the runs: from a fresh run it takes
    E[min(X, a)] + (1 - p)·W over p = (1.833 + 0.5·1) / 0.5 = 4.67 h, not the 2.67 h still missing."""
    cycle = np.r_[np.full(12, 0.2), np.full(12, 0.5), np.full(36, 0.2), np.full(12, 0.5)]
    a = int(np.flatnonzero(np.isclose(AGE_EDGES_HOURS, 8 / 3))[0])
    fresh = 0.5 * (1 + 8 / 3) + 0.5 * 1.0
    fresh /= 0.5
    # 25 minutes into a run: it is a 3-h one with chance 1/2 (1.83 h more on the mean), else an hour's
    # wait and a fresh start.
    stats = market_stats(series(np.r_[np.tile(cycle, 25), np.full(6, 0.2)]), half_life_hours=None)
    i = stats.index_of(0.3)
    wait = stats.settle_wait_hours()[i]
    assert stats.calm_hours[i] == pytest.approx(25 / 60)
    assert wait[a] == pytest.approx((0.5 * 1 + 0.5 * 8 / 3 - 25 / 60) + 0.5 * (1.0 + fresh))
    assert wait[a - 2] == pytest.approx(40 / 60 - 25 / 60)  # every run outlasts 40 minutes: the rest of it
    assert wait[a + 1] == math.inf  # no run ever lasted 5.3 h
    assert np.all(wait[stats.age_edges_hours <= 25 / 60] == 0.0)  # already settled
    # Past 1.33 h the run is a 3-h one: only the calm still missing.
    stats = market_stats(series(np.r_[np.tile(cycle, 25), np.full(24, 0.2)]), half_life_hours=None)
    assert stats.settle_wait_hours()[i, a] == pytest.approx(8 / 3 - stats.calm_hours[i])
    # A bid the floor never crossed upward (no completed run): the calm still missing, as before.
    never = stats.index_of(0.6)
    assert stats.settle_wait_hours()[never, -1] == pytest.approx(
        max(stats.age_edges_hours[-1] - stats.calm_hours[never], 0.0))


def test_upper_bound_matches_the_gamma_quantile() -> None:
    k = np.array([0, 1, 2, 5, 10, 50, 500], dtype=float)
    exact = gamma.ppf(0.8, k + 1) / 100.0
    assert np.allclose(poisson_rate_upper(k, 100.0, 0.8), exact, rtol=0.01)
    assert np.all(poisson_rate_upper(k, 100.0, 0.95) > poisson_rate_upper(k, 100.0, 0.8))
    assert math.isinf(float(poisson_rate_upper(3.0, 0.0)))


def test_tracker_equals_batch_with_gaps_nans_and_decay() -> None:
    rng = np.random.default_rng(7)
    n = 3000
    floor = 0.3 + 0.1 * np.cumsum(rng.normal(0, 0.05, n))
    floor = np.clip(floor, 0.05, 2.0)
    floor[rng.random(n) < 0.03] = np.nan  # no spot capacity now and then
    spikes = rng.random(n) < 0.02
    floor[spikes] = 1.4
    ts = T0 + np.cumsum(rng.choice([STEP, STEP, STEP, 2 * STEP, 4 * 3600.0], size=n, p=[.5, .3, .15, .04, .01]))
    s = SimpleNamespace(ts=ts, floor=floor, on_demand=np.full(n, 0.8), gpu_type_id="X", cloud="SECURE", gpu_count=2)
    now = float(ts[-1]) + 120.0
    batch = market_stats(s, now, half_life_hours=24.0)
    tracker = feed(FloorTracker("X", "SECURE", 2, half_life_hours=24.0), s).stats(now)
    for name in ("availability", "interruption_rate", "outbid_events", "running_hours", "mean_wait_hours",
                 "calm_hours", "hazard_by_age", "events_by_age", "exposure_by_age", "run_counts", "wait_hours"):
        a, b = getattr(batch, name), getattr(tracker, name)
        assert np.allclose(a, b, rtol=1e-9, atol=1e-9, equal_nan=True), name
    assert batch.samples == tracker.samples == n
    assert batch.observed_hours == pytest.approx(tracker.observed_hours)
    assert batch.longest_silence_hours == tracker.longest_silence_hours == 4.0  # the 4-hour gaps of the last week
    assert (batch.gpu_type_id, batch.cloud, batch.gpu_count) == ("X", "SECURE", 2)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(st.floats(0.05, 2.0), st.just(float("nan"))), min_size=12, max_size=120),
       st.sampled_from([None, 6.0, 72.0]))
def test_tracker_equals_batch_on_any_series(values: list[float], half_life: float | None) -> None:
    s = series(np.array(values), on_demand=1.0)
    kwargs = {"half_life_hours": half_life, "min_span_hours": 0.5}
    batch = market_stats(s, **kwargs)
    tracker = feed(FloorTracker("GPU", **kwargs), s).stats()
    assert np.allclose(batch.hazard_by_age, tracker.hazard_by_age, equal_nan=True)
    assert np.allclose(batch.availability, tracker.availability)
    assert np.all((tracker.availability >= 0) & (tracker.availability <= 1 + 1e-12))
    assert np.all(np.diff(tracker.availability) >= -1e-12)  # a higher bid runs at least as often
    assert np.all(tracker.interruption_rate >= tracker.reclaim_rate)


def test_gaps_count_at_most_max_gap() -> None:
    s = series(np.full(20, 0.2))
    s.ts[10:] += 10 * 3600.0  # the collector was down for 10 hours
    stats = market_stats(s, half_life_hours=None, max_gap_hours=1.0, max_staleness_hours=None)
    assert stats.observed_hours == pytest.approx(18 * STEP / 3600 + 1.0 + STEP / 3600 * 0)


def test_the_longest_silence_of_the_last_week() -> None:
    s = series(np.full(12 * 24 * 10, 0.2))  # ten days of 5-minute samples
    s.ts[-12 * 24 * 3:] += 8 * 3600.0  # then nothing for 8 hours, three days before the end
    s.ts[-12 * 24 * 2:] += 1200.0  # a 25-minute gap is not a silence
    silence_end = float(s.ts[-12 * 24 * 3])
    tracker = feed(FloorTracker("GPU"), s)
    end = float(s.ts[-1])
    for now, hours in ((end, 8 + 5 / 60),  # the 8 hours and the sample interval
                       (end + 9.5 * 3600, 9.5)):  # the silence going on now is longer
        assert tracker.stats(now).longest_silence_hours == pytest.approx(hours)
        assert market_stats(s, now, max_staleness_hours=None).longest_silence_hours == pytest.approx(hours)
    before = series(s.floor[:12 * 24 * 7], t0=T0)  # the history before the silence has none
    assert market_stats(before).longest_silence_hours == 0.0
    # A week after it ended, the silence is forgotten.
    later = series(np.full(12 * 24 * 5, 0.2), t0=end + STEP)
    for t, f, o in zip(later.ts, later.floor, later.on_demand, strict=True):
        tracker.update(float(t), float(f), float(o))
    assert later.ts[-1] - silence_end > SILENCE_LOOKBACK_HOURS * 3600
    assert tracker.stats().longest_silence_hours == 0.0
    whole = SimpleNamespace(**{**vars(s), "ts": np.r_[s.ts, later.ts], "floor": np.r_[s.floor, later.floor],
                               "on_demand": np.r_[s.on_demand, later.on_demand]})
    assert market_stats(whole).longest_silence_hours == 0.0
    assert market_stats(whole, float(later.ts[0])).longest_silence_hours == pytest.approx(8 + 5 / 60)


def test_samples_with_no_price_at_all_are_a_silence_and_a_spot_outage_is_not() -> None:
    # Sampled every 5 minutes throughout, but for 8 hours three days before the end the market had no
    # capacity at any price (no floor, no on-demand): nothing could act then, as in a collector outage.
    floor = np.full(12 * 24 * 10, 0.2)
    dark = slice(-12 * 24 * 3, -12 * 24 * 3 + 12 * 8)
    floor[dark] = np.nan
    s = series(floor)
    s.on_demand[dark] = np.nan
    now = float(s.ts[-1])
    assert feed(FloorTracker("GPU"), s).stats(now).longest_silence_hours == pytest.approx(8 + 5 / 60)
    assert market_stats(s, now, max_staleness_hours=None).longest_silence_hours == pytest.approx(8 + 5 / 60)
    # Only spot gone (on-demand still sold): a job could run, so no silence.
    s.on_demand[dark] = 1.0
    assert feed(FloorTracker("GPU"), s).stats(now).longest_silence_hours == 0.0
    assert market_stats(s, now, max_staleness_hours=None).longest_silence_hours == 0.0
    # An outage going on now counts from the last priced sample.
    s = series(np.r_[np.full(12 * 24 * 3, 0.2), np.full(12 * 5, np.nan)])
    s.on_demand[-12 * 5:] = np.nan
    now = float(s.ts[-1])
    assert feed(FloorTracker("GPU"), s).stats(now).longest_silence_hours == pytest.approx(5.0)
    assert market_stats(s, now, max_staleness_hours=None).longest_silence_hours == pytest.approx(5.0)


def test_recent_history_weighs_more() -> None:
    floor = np.r_[np.full(12 * 24 * 10, 0.2), np.full(12 * 24, 0.6)]  # 10 calm days, then a day at 0.6
    slow = market_stats(series(floor), half_life_hours=None)
    fast = market_stats(series(floor), half_life_hours=6.0)
    i = slow.index_of(0.3)
    assert slow.availability[i] > 0.85
    assert fast.availability[i] < 0.1
    assert fast.calm_hours[slow.index_of(0.7)] == pytest.approx((len(floor) - 1) * STEP / 3600)
    assert fast.calm_hours[i] == 0.0


def test_calm_lowers_the_hazard_of_a_bursty_market() -> None:
    # Bursts: a spike comes back three times within 15 minutes, then 6 calm hours.
    burst = np.r_[[0.9, 0.2, 0.9, 0.2, 0.9], np.full(72, 0.2)]
    stats = market_stats(series(np.tile(burst, 60)), half_life_hours=None)
    i = stats.index_of(0.5)
    fresh = stats.hazard_by_age[i, 0]
    settled = stats.hazard_by_age[i, int(np.searchsorted(AGE_EDGES_HOURS, 1.0))]
    assert settled < fresh / 2  # 3 ends per 6.2 h fresh; 1 per 4.7 h once 80 minutes calm
    # Every calm ends at 6 h: a run already 5.3 h old is near its end, and the data say so.
    j_late = int(np.flatnonzero(AGE_EDGES_HOURS > 5)[0])
    assert stats.hazard_by_age[i, j_late] > fresh
    # No calm lasted 10.7 h: a plan waiting that long could never run.
    assert stats.exposure_by_age[i, j_late + 1] == 0.0


def test_a_market_quoted_without_any_price_is_not_offered_not_short_of_history() -> None:
    # "not enough price history for spot yet: 0 of 12 samples", over 41 samples of a GPU the cloud never
    # priced: the user was sent to collect more.
    never = series(np.full(41, np.nan), on_demand=np.nan)
    with pytest.raises(InsufficientHistory) as info:
        market_stats(never)
    assert info.value.not_offered and info.value.samples == 41
    assert str(info.value) == "not offered in community: none of its 41 samples has a price"
    assert history_note(info.value, 12) == "not offered in community: none of its 41 samples has a price"
    with pytest.raises(InsufficientHistory) as short:
        market_stats(series(np.full(5, 0.2)))
    assert not short.value.not_offered and history_note(short.value, 12) == (
        "not enough price history for spot yet: 5 of 12 samples")


def test_insufficient_history_names_the_market_and_count() -> None:
    with pytest.raises(InsufficientHistory, match="too little price history for GPU") as info:
        market_stats(series(np.full(5, 0.2)))
    assert info.value.samples == 5 and info.value.gpu_type_id == "GPU"
    tracker = FloorTracker("GPU")
    with pytest.raises(InsufficientHistory, match="no price history"):
        tracker.stats(T0)
    s = series(np.full(100, 0.2))
    feed(tracker, s)
    tracker.stats(float(s.ts[-1]))
    with pytest.raises(InsufficientHistory, match="stale"):
        tracker.stats(float(s.ts[-1]) + 3 * 86400)


def test_repeated_timestamps_are_ignored_and_samples_after_now_too() -> None:
    s = series(square_wave(20))
    tracker = feed(FloorTracker("GPU", half_life_hours=None), s)
    tracker.update(float(s.ts[-1]), 5.0, 1.0)  # a replay repeating the last time changes nothing
    assert tracker.stats().floor_now == 0.5
    cut = float(s.ts[200])
    early = market_stats(s, cut, half_life_hours=None)
    assert early.samples == 201 and early.now == cut


def test_summary_and_bad_parameters() -> None:
    stats = market_stats(series(square_wave(50)), half_life_hours=None)
    summary = stats.summary(0.3)
    assert summary["availability"] == pytest.approx(stats.availability[stats.index_of(0.3)])
    assert summary["samples"] == 1200
    with pytest.raises(ValueError, match="half_life_hours"):
        FloorTracker("GPU", half_life_hours=0)
    with pytest.raises(ValueError, match="confidence"):
        FloorTracker("GPU", confidence=1.5)


def test_stats_of_several_trackers_equals_each_trackers_stats_bit_for_bit() -> None:
    """`stats_of` stacks the markets' hazards into one computation: every number must be the tracker's own."""
    from bidder.backtest import load_trace
    from bidder.market import stats_of

    history = load_trace(Path(__file__).resolve().parents[1] / "data" / "traces" / "sim-seed1-14d.csv")
    markets = history.markets[:4]
    trackers = [FloorTracker(m.gpu_type_id, m.cloud, m.gpu_count, market=m.market) for m in markets]
    trackers.append(FloorTracker("NVIDIA RTX A6000", "SECURE", half_life_hours=24.0))  # other parameters
    trackers.append(FloorTracker("NVIDIA RTX A6000", "COMMUNITY", grid=[0.1, 0.2, 0.3]))  # another grid
    trackers.append(FloorTracker("late", "COMMUNITY"))  # never fed: no history
    feeds = [0, 1, 2, 3, 0, 1]
    fields = [f.name for f in dataclasses.fields(MarketStats)] + [
        "availability", "interruption_rate", "outbid_rate", "mean_wait_hours", "mean_run_hours"]
    checked = 0
    for n in range(0, len(history.ts), 97):
        for tracker, m in zip(trackers, feeds, strict=False):
            tracker.update(float(history.ts[n]), float(history.floor[m, n]), float(history.on_demand[m, n]))
        now = float(history.ts[n]) + 60.0
        together = stats_of(trackers, now)
        for tracker, stacked in zip(trackers, together, strict=True):
            try:
                alone = tracker.stats(now)
            except InsufficientHistory:
                assert stacked is None
                continue
            for name in fields:
                a, b = getattr(alone, name), getattr(stacked, name)
                if isinstance(a, np.ndarray):
                    assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), name
                else:
                    assert a == b or (a != a and b != b), name
            checked += 1
    assert checked > 100
