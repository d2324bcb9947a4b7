"""A Vast backtest of a database `bidder collect` filled decides and is interrupted as `bidder tick`
lives it: bidder plans with the pauses each machine shows (as the tick does), and the engine pauses
spot runs by their machines at the rates the stored offers show (seeded, the same for every
strategy). An audit had the backtest at $5.39 and 1 interruption where the tick spent $11.61; at
tolerance high, 1-7 interruptions against 13-14 live. A trace holds no offers: one warning says
its Vast interruptions and cost are a lower bound."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from vast_helpers import seed_vast_history, vast_client

from bidder.backtest import BacktestJob, load_store, replay
from bidder.backtest.engine import strategy_factory
from bidder.backtest.machines import MachineOffers, with_machine_offers
from bidder.backtest.strategies import KEEP, Action
from bidder.cli import main
from bidder.collector import VastSource, collect_markets
from bidder.models import Policy
from bidder.sim import Emulator
from bidder.store import Store
from bidder.vast.summary import OfferFilters

START = "2026-01-02T01:00:00Z"  # a day after the offers begin: the day's plan models have their pauses
JOB = ["--market", "vast", "--gpu", "RTX 4090", "--hours", "3", "--deadline", "8h", "--start", START]
WARNING = "warning: Vast's machine pauses are not simulated"


@pytest.fixture(scope="module")
def collected(tmp_path_factory) -> tuple[Path, Path]:
    """A database of two days of the emulator's Vast floor (quotes) and then 36 hours of real
    collections over HTTP, 10 minutes apart (each storing every offer); and its export, a trace."""
    folder = tmp_path_factory.mktemp("vast_pauses")
    db, trace = folder / "bidder.db", folder / "vast.csv"
    with Emulator(seed=0) as emu, Store.open(db) as store:
        seed_vast_history(store, emu, days=2)
        emu.advance(600)
        with vast_client(emu) as client:
            while emu.now < datetime(2026, 1, 2, 12, tzinfo=UTC):
                collect_markets([VastSource(client, OfferFilters())], store, now=emu.now)
                emu.advance(600)
    exported = CliRunner().invoke(main, ["export", "--db", str(db), "--market", "vast"])
    assert exported.exit_code == 0, exported.output
    trace.write_text(exported.stdout)
    return db, trace


def backtest(*args: str) -> tuple[dict, str]:
    result = CliRunner().invoke(main, ["backtest", *args, *JOB, "--format", "json"])
    assert result.exit_code == 0, result.output + result.stderr
    return {s["name"]: s for s in json.loads(result.stdout)["strategies"]} | {"": json.loads(result.stdout)}, \
        result.stderr


def test_bidder_plans_with_the_machines_pauses_as_the_tick_does(collected):
    db, trace = collected
    # The tick's own decision then, from the same database: the machines' pauses make spot too risky at low.
    said = CliRunner().invoke(main, ["recommend", "--db", str(db), "--market", "vast", "--gpu", "RTX 4090", "--hours",
                                     "3", "--deadline", "8h", "--tolerance", "low", "--now", START, "--format", "json"])
    assert said.exit_code == 0, said.output
    assert json.loads(said.stdout)["decision"]["action"] == "on_demand"
    rows, stderr = backtest("--db", str(db), "--tolerance", "low", "--strategies", "bidder,on-demand")
    assert rows["bidder"]["cost"] == rows["on-demand"]["cost"] and rows["bidder"]["interruptions"] == 0
    assert WARNING not in stderr
    assert rows[""]["job"]["machine_pauses"] == {"simulated": True, "offers_from": "2026-01-01T00:10:00Z"}
    # The export has the floor alone: bidder bid spot there (it did so on the database too, before).
    rows, stderr = backtest("--trace", str(trace), "--tolerance", "low", "--strategies", "bidder,on-demand")
    assert rows["bidder"]["cost"] < 0.5 * rows["on-demand"]["cost"]
    assert rows[""]["job"]["machine_pauses"] == {"simulated": False, "offers_from": None}
    assert stderr.count("\n") == 1 and stderr.startswith(
        "warning: Vast's machine pauses are not simulated (a trace holds no offers): a Vast spot run here is "
        "interrupted only when the floor rises over its bid, not when its machine is rented on-demand or outbid, "
        "so its interruptions and cost are a lower bound; back-test a database `bidder collect` filled")


def test_spot_runs_are_paused_by_their_machines_seeded_alike_for_every_run(collected):
    db, trace = collected
    on_db = [backtest("--db", str(db), "--seed", seed, "--strategies", "floor,bid-on-demand")[0]
             for seed in ("0", "1", "1")]
    on_trace, _ = backtest("--trace", str(trace), "--seed", "1", "--strategies", "floor,bid-on-demand")
    # The floor never rises over the floor rule's bid in this window: every interruption is a machine's.
    assert on_trace["floor"]["interruptions"] == 0
    assert all(rows["floor"]["interruptions"] >= 2 for rows in on_db)
    assert on_db[1] == on_db[2]                                      # the seed decides, nothing else
    assert on_db[0]["floor"]["interruptions"] != on_db[1]["floor"]["interruptions"]
    assert all(rows["floor"]["cost"] > on_trace["floor"]["cost"] for rows in on_db)  # restarts lose work
    table = CliRunner().invoke(main, ["backtest", "--db", str(db), *JOB, "--strategies", "floor"])
    assert table.exit_code == 0, table.output
    assert ("Vast spot runs are also paused by their machines, at the rates the stored offers show (seed 0, the same "
            "pauses for every strategy); the optimum and hindsight do not foresee them") in table.stdout


class FixedBid:
    """Spot at one bid on market 0, again after each interruption."""

    def __init__(self, bid: float) -> None:
        self.name, self.bid = f"bid {bid}", bid

    def decide(self, view, state):
        return KEEP if state.pod else Action("spot", 0, self.bid)


def _history(db: Path, offers: bool = True):
    job = BacktestJob(gpu_types=("RTX 4090",), cloud="VERIFIED", work_hours=9, deadline_hours=10,
                      restart_overhead_hours=1 / 6)
    with Store.open(db, create=False) as store:
        history = load_store(store, market="vast").select(job)
        return (with_machine_offers(history, store) if offers else history), job


def test_every_strategy_meets_the_same_pauses_and_a_higher_bid_fewer(collected):
    history, job = _history(collected[0])
    start = int(np.searchsorted(history.ts, datetime(2026, 1, 2, 1, tzinfo=UTC).timestamp()))
    ceiling = float(np.nanmax(history.floor[0, start:]))  # both bids stay over the floor: no floor interruption

    def pauses(bid: float, seed: int = 1) -> list[float]:
        run = replay(history, job, Policy(), FixedBid(bid), start, seed=seed, record=True)
        assert run.machine_pauses == run.interruptions
        return run.interruption_hours

    low, high = pauses(ceiling), pauses(ceiling * 1.6)
    assert low == pauses(ceiling) and len(low) > len(high) > 0
    assert set(high) <= set(low)       # one draw of events: a higher bid meets a subset of them
    assert pauses(ceiling, seed=3) != low
    # A history without stored offers (a trace's): no pause at all.
    bare, _ = _history(collected[0], offers=False)
    assert replay(bare, job, Policy(), FixedBid(ceiling), start, record=True).interruptions == 0


def test_no_offer_stored_after_a_decision_changes_it(collected):
    """A service's decisions (the rates, fed the machines' pauses at each decision) read the offers
    stored up to the decision, none later: poisoned later offers change later decisions alone."""
    history, _ = _history(collected[0])
    job = BacktestJob(gpu_types=("RTX 4090",), cloud="VERIFIED", keep_running_hours=10, restart_overhead_hours=1 / 6)
    start = int(np.searchsorted(history.ts, datetime(2026, 1, 2, 1, tzinfo=UTC).timestamp()))
    spec = job.spec(datetime(2026, 1, 2, 1, tzinfo=UTC))

    def decisions(h):
        policy = Policy(tolerance=6.0)
        run = replay(h, job, policy, strategy_factory("bidder")(h.markets, spec, policy), start, record=True,
                     machine_pauses=False)
        return run.log

    clean = decisions(history)
    for cut in (datetime(2026, 1, 2, 2, 30, tzinfo=UTC).timestamp(), datetime(2026, 1, 2, 5, tzinfo=UTC).timestamp()):
        # After the cut, every machine gone at every other snapshot: read, a pause every 20 minutes.
        poisoned = {}
        for name, (ts, machine, min_bid) in history.machines.series.items():
            keep = (ts <= cut) | ((np.unique(ts, return_inverse=True)[1] + machine) % 2 == 1)
            poisoned[name] = (ts[keep], machine[keep], min_bid[keep])
        dirty = decisions(replace(history, machines=MachineOffers(poisoned)))
        before = [e for e in clean if e[0] < cut]
        assert before and before == [e for e in dirty if e[0] < cut]
        assert clean != dirty  # (once revealed, they are read)


def test_a_vast_plan_bids_over_every_floor_seen_to_buy_fewer_pauses(collected):
    """The plan's bid levels were the floor's quantiles: against Vast's machine pauses, which fall as the
    bid rises over the floor (0.88 an hour at the floor here), no plan could bid over the highest floor
    seen, and at tolerance high it bid that floor's top. Its levels now hold the bids at the pauses' own
    premiums (`bidder.planner.pause_levels`): it bids over every floor seen, expecting fewer pauses."""
    db, _ = collected
    said = CliRunner().invoke(main, ["recommend", "--db", str(db), "--market", "vast", "--gpu", "RTX 4090", "--hours",
                                     "3", "--deadline", "8h", "--tolerance", "high", "--now", START, "--format", "json"])
    assert said.exit_code == 0, said.output
    decision = json.loads(said.stdout)["decision"]
    with Store.open(db, create=False) as store:
        seen = store.floor_series("RTX 4090", "VERIFIED", 1, until=datetime(2026, 1, 2, 1, 0, 1, tzinfo=UTC),
                                  market="vast")
    assert decision["action"] == "spot" and "the plan's bid level" in decision["reasons"][0]
    assert float(np.nanmax(seen.floor)) < decision["bid_per_gpu"] < float(seen.on_demand[-1])
