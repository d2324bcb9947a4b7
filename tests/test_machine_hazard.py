"""`bidder.machine_hazard`: a Vast instance's pauses on its own machine, read from stored offers, and
what they do to a plan (`bidder.planner`) and to the rates (`bidder.market`)."""

from __future__ import annotations

import numpy as np
import pytest

from bidder.machine_hazard import MACHINE_PREMIUMS, machine_hazard
from bidder.planner import fit_floor_model, solve_plan

STEP = 300.0  # 5-minute snapshots


def listing(hours: float, machines: int, *, gone: float, outbid: float, seed: int = 0):
    """Offers of `machines` machines (floor 0.10 each) snapshotted every 5 minutes: each snapshot a
    machine is gone (rented on-demand) with chance `gone`, or listed at a competitor's bid 50% over its
    floor with chance `outbid`, else at its floor."""
    rng = np.random.default_rng(seed)
    n = int(hours * 3600 / STEP)
    ts, machine, bid = [], [], []
    for step in range(n):
        draw = rng.random(machines)
        for m in range(machines):
            if draw[m] < gone:
                continue
            ts.append(step * STEP)
            machine.append(1000 + m)
            bid.append(0.15 if draw[m] < gone + outbid else 0.10)
    return np.array(ts), np.array(machine), np.array(bid), n * STEP


def test_the_rate_is_what_the_machines_show_and_a_higher_bid_pays_off():
    # Per 5-minute snapshot: gone 1%, outbid (to 0.15) 3%: at the floor 0.04 x 12 = 0.48 pauses an hour
    # (the pairs that start listed count), over the competitor's bid only the gone ones: 0.12.
    ts, machine, bid, end = listing(72, 20, gone=0.01, outbid=0.03)
    hazard = machine_hazard(ts, machine, bid, end, half_life_hours=None)
    assert hazard is not None and hazard.machines == 20
    at_floor, over = hazard.rate_at(0.0), hazard.rate_at(0.6)
    assert 0.40 < at_floor < 0.60, at_floor
    assert 0.09 < over < 0.18, over
    assert np.all(np.diff(hazard.rates) <= 0)  # never more pauses for a higher bid
    assert hazard.rate_at(-0.5) == at_floor and hazard.rate_at(9.0) == hazard.rates[-1]


def test_too_little_history_gives_no_rate_and_gaps_vouch_for_nothing():
    ts, machine, bid, end = listing(1, 5, gone=0.01, outbid=0.0)  # 5 machine-hours: under the minimum
    assert machine_hazard(ts, machine, bid, end) is None
    # Snapshots 2 hours apart: no pair close enough to say what happened between them.
    sparse = ts % 7200 == 0
    assert machine_hazard(ts[sparse], machine[sparse], bid[sparse], end) is None
    assert machine_hazard(np.zeros(0), np.zeros(0, dtype=int), np.zeros(0), 0.0) is None


def test_wobbling_prices_missing_prices_and_hourly_snapshots_are_read_as_they_are():
    rng = np.random.default_rng(3)
    ts, machine, bid, end = listing(72, 30, gone=0.004, outbid=0.0)  # gone 0.4% a snapshot: 0.048/h
    # A min_bid that wobbles up to 3%: seldom listed at its very lowest, so premium 0 is thin; the rate
    # is read where it is measured (it gave no rate at all, and the plan fell back to the floor).
    wobbly = machine_hazard(ts, machine, bid * (1 + 0.03 * rng.random(len(bid))), end, half_life_hours=None)
    assert wobbly is not None and 0.02 < wobbly.rate_at(0.0) < 0.10, wobbly
    # A listing without a price (min_bid NULL) is no pause: it read 0.62/h on machines that never went.
    calm_ts, calm_machine, calm_bid, calm_end = listing(72, 30, gone=0.0, outbid=0.0)
    holes = calm_bid.copy()
    holes[rng.random(len(holes)) < 0.05] = np.nan
    assert machine_hazard(calm_ts, calm_machine, holes, calm_end, half_life_hours=None).rate_at(0.0) < 0.01
    # Hourly snapshots, a second either side of the hour, still pair (half of them did not).
    hourly = (ts % 3600 == 0)
    jitter = np.where((ts // 3600) % 2 == 0, 1.0, -1.0)
    assert machine_hazard(ts[hourly] + jitter[hourly], machine[hourly], bid[hourly], end) is not None


def calm_model():
    # A calm floor at 0.10 (two days of 5-minute samples): the chain alone never expects an outbid.
    ts = np.arange(0, 48 * 3600, STEP)
    floor = 0.10 + 0.002 * (np.arange(len(ts)) % 3)
    return fit_floor_model(ts, floor, 0.40, float(ts[-1] + STEP))


def test_a_plan_counts_the_machines_pauses_and_without_them_is_unchanged():
    model = calm_model()
    plain = solve_plan(model, 10.0, 24.0, restart_h=0.25)
    again = solve_plan(model, 10.0, 24.0, restart_h=0.25)
    assert np.array_equal(plain.value, again.value)
    paused = model.__class__(**{**model.__dict__, "machine_premiums": MACHINE_PREMIUMS,
                                "machine_rates": np.full(len(MACHINE_PREMIUMS), 0.5)})
    plan = solve_plan(paused, 10.0, 24.0, restart_h=0.25)
    tau = plan.last_row
    state = model.levels - 1  # the calm floor's state (under the top level)
    _, cost_plain, n_plain = plain.at(tau, 10.0 / model.step_h, state, 0)
    _, cost, n = plan.at(tau, 10.0 / model.step_h, state, 0)
    # Half an hour's pause rate over ten hours of spot: several pauses expected, and they cost.
    assert n_plain < 0.5 and n > 2.0 and cost > cost_plain


def test_the_rates_and_the_plans_add_the_machines_pauses_at_each_bids_premium():
    """The rates add them at the bid's premium over the floor now (a first try made a job without a
    deadline wait for ever for a calm long enough to fit its tolerance: see
    tests/test_report_vast_charts.py and `MarketStats.settle_wait_hours`); the plans at every state's."""
    from bidder.market import market_stats
    from bidder.store import FloorSeries

    ts = np.arange(0, 48 * 3600, STEP)
    series = FloorSeries(ts=ts, floor=np.full(len(ts), 0.10), on_demand=np.full(len(ts), 0.40),
                         gpu_type_id="RTX 4090", cloud="VERIFIED", gpu_count=1, market="vast")
    stats = market_stats(series, float(ts[-1] + 1), floor_model=True)
    rates = np.array([0.8, 0.6, 0.5, 0.4, 0.3, 0.2, 0.15, 0.1, 0.1, 0.1])
    more = stats.with_machine_pauses(MACHINE_PREMIUMS, rates)
    i = stats.index_of(0.15)  # about 50% over the floor: the grid's premium at or under its own
    premium = stats.bids[i] / 0.10 - 1.0
    expected = rates[np.searchsorted(MACHINE_PREMIUMS, premium + 1e-12, side="right") - 1]
    assert 0.3 < premium <= 0.5 and expected in (0.2, 0.3)
    assert more.interruption_rate[i] == pytest.approx(stats.interruption_rate[i] + expected)
    assert more.interruption_rate[0] == pytest.approx(stats.interruption_rate[0] + 0.8)  # under the floor
    assert np.allclose(more.hazard_by_age, stats.hazard_by_age + more.machine_rate[:, None])
    assert more.floor_model is not None and more.floor_model.machine_rates is rates
    assert stats.floor_model is not None and stats.floor_model.machine_rates is None
    assert stats.machine_rate is None


def test_collected_offers_give_the_pauses_the_emulators_machines_have(emulator, tmp_path):
    """Against the emulator over HTTP: three days of Vast's floor (quotes) and four hours of real
    collections (offers). The floor is calm: a 12-hour job due in 2 days, planned on it alone, waited
    for spot expecting 0.8 interruptions at tolerance low and 1.9 at medium. Each machine there is
    taken by an on-demand renter or outbid every hour or two (the emulator's own odds), which the
    collected offers show: at low and medium the plan now runs on-demand, and at high it expects
    several times the interruptions it did."""
    import json
    import sys
    from pathlib import Path

    from click.testing import CliRunner

    from bidder.advisor import gather_stats
    from bidder.cli import main
    from bidder.sim import TEST_API_KEY
    from bidder.store import Store

    sys.path.insert(0, str(Path(__file__).parent))
    from vast_helpers import seed_vast_history

    db = tmp_path / "bidder.db"
    with Store.open(db) as store:
        seed_vast_history(store, emulator, days=3)
    emulator.advance(300)
    runner = CliRunner(env={"VAST_API_KEY": TEST_API_KEY})
    for _ in range(49):
        result = runner.invoke(main, ["collect", "--market", "vast", "--db", str(db), "--vast-url", emulator.vast_url])
        assert result.exit_code == 0, result.output + result.stderr
        emulator.advance(300)
    key = ("RTX 4090", "VERIFIED", 1, "vast")
    with Store.open(db) as store:
        ts, machine, min_bid = store.machine_series("RTX 4090", 1, True)
        stats, _ = gather_stats(store, [key], emulator.now, floor_model=True)
    hazard = machine_hazard(ts, machine, min_bid, emulator.now.timestamp())
    assert hazard is not None and stats[key].floor_model.machine_rates is not None
    assert np.array_equal(stats[key].floor_model.machine_rates, hazard.rates)
    # The emulator's own odds at the floor: per 30-minute slot, an on-demand renter or a competing bid.
    market = emulator.vast.market
    gi = [g[0] for g in market.gpus].index("RTX 4090")
    sel = (market.gpu_index == gi) & (market.num_gpus == 1) & market.verified
    truth = 2 * float(np.mean(market.p_od[sel] + (1 - market.p_od[sel]) * market.p_bid[sel]))
    assert 0.6 * truth < float(hazard.rate_at(0.0)) < 2.0 * truth, (hazard.rate_at(0.0), truth)

    def recommend(tolerance: str) -> dict:
        out = runner.invoke(main, ["recommend", "--gpu", "RTX 4090", "--market", "vast", "--hours", "12",
                                   "--deadline", "2d", "--tolerance", tolerance, "--db", str(db),
                                   "--vast-url", emulator.vast_url, "--format", "json"])
        assert out.exit_code == 0, out.output + out.stderr
        # Said, with the rate at the floor, so the figures are not read as the floor's alone.
        assert "on Vast, the interruptions expected count the pauses each machine shows (RTX 4090 verified:" in out.stderr
        return json.loads(out.stdout)["decision"]

    # From the floor alone the plan expected 0.8 interruptions at low and 1.9 at medium, waiting for spot.
    assert recommend("low")["action"] == "on_demand"
    assert recommend("medium")["action"] == "on_demand"
    high = recommend("high")
    assert high["action"] in ("spot", "wait") and high["expected_interruptions"] > 4.0  # (1.9 from the floor)
