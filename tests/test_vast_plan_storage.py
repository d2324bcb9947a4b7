"""A Vast spot plan prices the job's disk at the storage of the offer its bid rents, by the launch's own
rule (`bidder.vast.pick`): the plan line, its reasons, the launched line and the ledger say one figure,
and the optimizer's cost holds it. Real CLI, emulator over HTTP, SQLite.

An audit found the plan at the median offer's storage: `$0.1350/h + $0.008/h storage` planned, the
instance billed $0.011/h; with a 3,000 GB disk $0.521/h planned, $0.2875/h billed."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from itertools import pairwise

import numpy as np
import pytest
from click.testing import CliRunner
from vast_helpers import seed_vast_history

from bidder.cli import main
from bidder.planner import MarketNow, choose, fit_floor_model
from bidder.sim import TEST_API_KEY
from bidder.store import Store
from bidder.units import to_iso


@pytest.fixture
def db(emulator, tmp_path):
    path = tmp_path / "bidder.db"
    with Store.open(path) as store:
        seed_vast_history(store, emulator)
    return path


def launch(emulator, db, *args: str):
    return CliRunner(env={"RUNPOD_API_KEY": "", "VAST_API_KEY": TEST_API_KEY}).invoke(main, [
        "launch", "--gpu", "4090", "--market", "vast", "--max-price", "0.3", "--image", "img", "--yes", *args,
        "--db", str(db), "--api-url", emulator.url, "--vast-url", emulator.vast_url, "--now", to_iso(emulator.now)])


def rented(emulator):
    [inst] = [i for i in emulator.vast.instances.values() if not i.destroyed]
    return inst


@pytest.mark.parametrize("disk", ["20", "3000"])
def test_the_plan_says_the_storage_the_rented_instance_bills(emulator, db, disk):
    # The audit's job: `launch --gpu 4090 --hours 10 --deadline 2d --max-price 0.3` with a disk.
    result = launch(emulator, db, "--hours", "10", "--deadline", "2d", "--disk", disk)
    assert result.exit_code == 0, result.output + result.stderr
    inst = rented(emulator)
    plan = re.search(r"^Plan: RTX 4090 \(\w+, vast\) spot, bid \$([\d.]+)/GPU-h x 1 GPU = \$[\d.]+/h "
                     r"\+ \$([\d.]+)/h storage, ", result.stdout, re.M)
    launched = re.search(r"^Launched pod \S+ .* spot at \$([\d.]+)/GPU-h, \$[\d.]+/h \+ \$([\d.]+)/h storage = ",
                         result.stdout, re.M)
    assert plan and launched, result.stdout
    assert plan[1] == launched[1] and float(plan[1]) == pytest.approx(inst.compute_per_hr, abs=5e-5), result.stdout
    assert plan[2] == launched[2] == f"{inst.storage_per_hr:.3f}", result.stdout
    assert f"with Vast's storage of the {disk} GB disk: ${inst.storage_per_hr:.3f}/h while it runs" in result.stdout
    with Store.open(db) as store:
        assert store.last_observation(str(inst.id))["storage_per_hr"] == pytest.approx(inst.storage_per_hr)


def test_a_big_disks_spot_choice_is_costed_with_the_rented_offers_storage(emulator, db):
    # A service (no work size) with no restart overhead: its cost per useful hour is what a running
    # hour bills, the bid and the disk's storage. At 3000 GB the storage outweighs the bid, and the
    # offer a bid rents is the one whose disk bills least among those it wins: a higher bid wins
    # cheaper storage, and the choice is costed (and made) on that offer's storage, not the median's.
    result = launch(emulator, db, "--restart-overhead", "0", "--disk", "3000", "--format", "json")
    assert result.exit_code == 0, result.output + result.stderr
    decision = json.loads(result.stdout)["decision"]
    inst = rented(emulator)
    assert decision["action"] == "spot" and decision["bid_per_gpu"] == pytest.approx(inst.compute_per_hr)
    assert decision["expected_cost_per_hour"] == pytest.approx(inst.compute_per_hr + inst.storage_per_hr, abs=1e-6)


def test_at_every_bid_the_plan_prices_the_storage_of_the_offer_the_launch_rents(emulator, db):
    # One rule for both (`bidder.vast.pick`): the plan reads it over the snapshot's stored offers, the
    # launch over its own search; at the same moment they name the same offer, whatever the bid.
    from vast_helpers import vast_client

    from bidder.advisor import disk_storage
    from bidder.jobs import job_from_values
    from bidder.vast.summary import OfferFilters
    from bidder.vast_pods import VastPodApi

    runner = CliRunner(env={"RUNPOD_API_KEY": "", "VAST_API_KEY": TEST_API_KEY})
    collected = runner.invoke(main, ["collect", "--db", str(db), "--vast-url", emulator.vast_url])
    assert collected.exit_code == 0, collected.output + collected.stderr
    cfg = job_from_values("t", {"gpu": ["RTX 4090"], "image": "img", "market": "vast", "disk": 3000})
    api = VastPodApi(vast_client(emulator), OfferFilters())
    spec = api.spec(cfg.template, "probe", "RTX 4090", 1, "VERIFIED")
    offers = {o.id: o for o in api.offers(spec)}
    floors = sorted({o.spot_floor_per_gpu for o in offers.values() if o.spot_floor_per_gpu})
    bids = [*floors, *((a + b) / 2 for a, b in pairwise(floors))]
    seen = set()
    with Store.open(db) as store:
        for bid in bids:
            dry = api.build_rent_interruptable(spec, bid)
            offer = offers[int(dry.request.path.rstrip("/").rsplit("/", 1)[-1])]
            planned = disk_storage(store, cfg.job, "vast", "RTX 4090", "VERIFIED", 1, bid_per_gpu=bid)
            assert planned == pytest.approx(offer.storage_per_hr(3000)), (bid, offer)
            seen.add(offer.storage_cost)
    assert len(seen) >= 2, seen  # (the bids rent offers of different storage prices: the choice matters)
    api.close()


def test_a_spot_plan_counts_the_storage_of_the_offer_its_bid_rents() -> None:
    # The planner: a steady floor, spot all the way; the disk of the offer the plan's bid wins bills
    # $0.10 a running hour, that of the one at the floor alone $0.50: the plan's money holds the $0.10.
    now, n = datetime(2026, 3, 1, tzinfo=UTC).timestamp(), 6 * 288
    model = fit_floor_model(now - 300.0 * np.arange(n, 0, -1), np.full(n, 0.2), 1.0, now, phases=1)
    assert model is not None
    args = dict(work_h=4, window_h=48, work_left_h=4, time_left_h=48, restart_h=0.25, pod=None,
                interruptions_allowed=100)
    plain = choose([MarketNow(model, 0.2, 0.2)], **args)  # type: ignore[arg-type]
    assert plain is not None and plain.action == "spot" and plain.bid is not None
    by_bid = MarketNow(model, 0.2, 0.2, storage=0.5, spot_storage=lambda bid: 0.1 if bid >= plain.bid else 0.5)
    vast = choose([by_bid], **args)  # type: ignore[arg-type]
    assert vast is not None and (vast.action, vast.bid) == ("spot", plain.bid)
    assert vast.expected_cost == pytest.approx(plain.expected_cost + 0.1 * 4)
