"""The emulator's Vast market over HTTP: bids won, lost and regained; paused (not destroyed) when
outbid or displaced, resumed by itself; pay-as-bid plus storage billing; relisted offer ids;
determinism per seed."""

from __future__ import annotations

import pytest
from vast_helpers import cheapest, spec, vast_client

from bidder.sim import Emulator
from bidder.sim.vast_world import SLOT_S
from bidder.vast import InstanceState


@pytest.fixture
def emu():
    with Emulator(seed=1) as e:
        yield e


def test_outbid_pauses_and_the_instance_resumes_by_itself_billing_bid_times_time_plus_storage(emu):
    with vast_client(emu) as vast:
        offer = cheapest(vast.search_offers(num_gpus=2), 2)
        machine = offer.machine_id
        emu.vast.set_competitor(machine, None)       # pin a quiet machine: the test decides
        emu.vast.set_on_demand_renter(machine, False)
        bid = offer.spot_floor_per_gpu + 0.02
        inst = vast.create_interruptible(offer.id, spec(), bid, num_gpus=2)
        storage_per_hr = inst.storage_cost * 20 / 720   # disk 20 GB, $/GB/month
        assert inst.state is InstanceState.RUNNING
        emu.advance(2 * 3600)
        emu.vast.set_competitor(machine, bid + 0.05)       # lost: a higher bid
        paused = vast.instance(inst.id)
        assert paused.state is InstanceState.PAUSED_OUTBID and paused.intended_status == "running"
        assert paused.min_bid == pytest.approx((bid + 0.05) * 2)
        emu.advance(3 * 3600)
        assert vast.instance(inst.id).state is InstanceState.PAUSED_OUTBID  # still there, not destroyed
        emu.vast.set_competitor(machine, None)             # regained: resumes by itself
        assert vast.instance(inst.id).state is InstanceState.RUNNING
        emu.advance(3600)
        emu.vast.set_on_demand_renter(machine, True)       # displaced by an on-demand renter
        assert vast.instance(inst.id).state is InstanceState.PAUSED_OUTBID
        emu.advance(3600)
        emu.vast.set_on_demand_renter(machine, False)
        assert vast.instance(inst.id).state is InstanceState.RUNNING
        emu.advance(3600)
        running_h, total_h = 2 + 1 + 1, 8
        expected = bid * 2 * running_h + storage_per_hr * total_h
        assert emu.vast.true_spend(inst.id) == pytest.approx(expected, rel=1e-9)
        assert emu.vast.interruptions(inst.id) == 2
        assert vast.instance(inst.id).uptime_mins == pytest.approx(running_h * 60)


def test_a_raised_bid_wins_back_at_once_and_a_stop_bills_storage_only(emu):
    with vast_client(emu) as vast:
        offer = cheapest(vast.search_offers(num_gpus=1), 1)
        emu.vast.set_competitor(offer.machine_id, None)
        emu.vast.set_on_demand_renter(offer.machine_id, False)
        inst = vast.create_interruptible(offer.id, spec(), offer.spot_floor_per_gpu, num_gpus=1)
        emu.vast.set_competitor(offer.machine_id, offer.spot_floor_per_gpu * 3)
        assert vast.instance(inst.id).state is InstanceState.PAUSED_OUTBID
        vast.change_bid(inst.id, offer.spot_floor_per_gpu * 3.5, 1)
        assert vast.instance(inst.id).state is InstanceState.RUNNING
        before = emu.vast.true_spend(inst.id)
        vast.stop(inst.id)
        emu.advance(10 * 3600)
        storage = inst.storage_cost * 20 / 720
        assert emu.vast.true_spend(inst.id) - before == pytest.approx(10 * storage, rel=1e-9)
        vast.destroy(inst.id)
        spent = emu.vast.true_spend(inst.id)
        emu.advance(3600)
        assert emu.vast.true_spend(inst.id) == spent  # nothing after destroy


def test_the_seeded_market_wins_loses_and_regains_a_floor_bid_over_a_week(emu):
    with vast_client(emu) as vast:
        offers = [o for o in vast.search_offers(num_gpus=1) if o.verified]
        offer = min(offers, key=lambda o: o.min_bid or 0)
        bid = offer.spot_floor_per_gpu * 1.3
        inst = vast.create_interruptible(offer.id, spec(), bid, num_gpus=1)
        states = set()
        for _ in range(7 * 24):
            emu.advance(3600)
            states.add(vast.instance(inst.id).state)
        assert states == {InstanceState.RUNNING, InstanceState.PAUSED_OUTBID}
        view = vast.instance(inst.id)
        running_h = view.uptime_mins / 60
        assert 0 < running_h < 7 * 24 and emu.vast.interruptions(inst.id) >= 2
        storage = view.storage_cost * 20 / 720
        assert emu.vast.true_spend(inst.id) == pytest.approx(bid * running_h + storage * 7 * 24, rel=1e-6)


def test_offer_ids_change_when_machines_are_relisted_and_the_market_is_seeded(emu):
    with vast_client(emu) as vast:
        first = {o.machine_id: o.id for o in vast.search_offers()}
        emu.advance(12 * 3600)
        later = {o.machine_id: o.id for o in vast.search_offers()}
    both = first.keys() & later.keys()
    changed = sum(first[m] != later[m] for m in both)
    assert 0 < changed < len(both)
    with Emulator(seed=1) as twin, vast_client(twin) as twin_client:
        twin.advance(12 * 3600)
        assert {o.machine_id: o.id for o in twin_client.search_offers()} == later
        assert [o.min_bid for o in twin_client.search_offers()] == [o.min_bid for o in vast_client(emu).search_offers()]
    with Emulator(seed=2) as other, vast_client(other) as other_client:
        assert {o.machine_id for o in other_client.search_offers()} != set(first)


def test_min_bid_moves_with_competing_bidders(emu):
    with vast_client(emu) as vast:
        floors: dict[int, set[float]] = {}
        for _ in range(12):
            for o in vast.search_offers(num_gpus=1):
                floors.setdefault(o.machine_id, set()).add(o.min_bid)
            emu.advance(SLOT_S)
    assert sum(len(v) > 1 for v in floors.values()) > len(floors) // 4


def test_the_state_mapping_also_reads_dstacks_view_of_an_outbid_instance(emu):
    emu.vast.paused_intended_status = "stopped"  # [?] actual == intended == next == "stopped" when outbid
    with vast_client(emu) as vast:
        offers = vast.search_offers(num_gpus=1)
        outbid_offer, stopped_offer = sorted(offers, key=lambda o: o.min_bid or 0)[:2]
        outbid = vast.create_interruptible(outbid_offer.id, spec("a"), outbid_offer.spot_floor_per_gpu, num_gpus=1)
        stopped = vast.create_interruptible(stopped_offer.id, spec("b"), stopped_offer.spot_floor_per_gpu,
                                            num_gpus=1)
        emu.vast.set_competitor(outbid_offer.machine_id, outbid_offer.spot_floor_per_gpu * 2)
        vast.stop(stopped.id)
        a, b = vast.instance(outbid.id), vast.instance(stopped.id)
        assert (a.actual_status, a.intended_status, a.next_state) == ("stopped", "stopped", "stopped")
        assert (b.actual_status, b.intended_status, b.next_state) == ("stopped", "stopped", "stopped")
        assert a.state is InstanceState.PAUSED_OUTBID and b.state is InstanceState.STOPPED


@pytest.mark.parametrize(("fields", "state"), [
    ({"actual_status": None, "intended_status": "running"}, InstanceState.LOADING),
    ({"actual_status": "loading", "intended_status": "running"}, InstanceState.LOADING),
    ({"actual_status": "running", "intended_status": "running"}, InstanceState.RUNNING),
    ({"actual_status": "stopped", "intended_status": "running", "is_bid": True}, InstanceState.PAUSED_OUTBID),
    ({"actual_status": "stopped", "intended_status": "stopped", "is_bid": True}, InstanceState.STOPPED),
    ({"actual_status": "exited", "intended_status": "stopped", "is_bid": False}, InstanceState.STOPPED),
    ({"actual_status": "offline", "intended_status": "running", "is_bid": True}, InstanceState.UNKNOWN),
    ({"actual_status": "stopped", "intended_status": "running", "is_bid": False}, InstanceState.UNKNOWN),
])
def test_instance_state_mapping(fields, state):
    from bidder.vast.types import parse_instance

    assert parse_instance({"id": 1, **fields}).state is state


def test_a_loading_period_reads_as_loading_then_running(emu):
    emu.vast.loading_s = 120
    with vast_client(emu) as vast:
        offer = cheapest(vast.search_offers(num_gpus=1), 1)
        emu.vast.set_competitor(offer.machine_id, None)
        emu.vast.set_on_demand_renter(offer.machine_id, False)
        inst = vast.create_interruptible(offer.id, spec(), offer.spot_floor_per_gpu, num_gpus=1)
        assert inst.actual_status is None and inst.is_bid and inst.state is InstanceState.LOADING
        emu.advance(90)
        assert vast.instance(inst.id).actual_status == "loading"
        emu.advance(60)
        assert vast.instance(inst.id).state is InstanceState.RUNNING
        vast.stop(inst.id)
        vast.start(inst.id)
        assert vast.instance(inst.id).state is InstanceState.LOADING


def test_a_machine_is_relisted_under_a_new_offer_id_after_our_rental_ends(emu):
    with vast_client(emu) as vast:
        offer = cheapest(vast.search_offers(num_gpus=1), 1)
        inst = vast.create_on_demand(offer.id, spec())
        assert offer.machine_id not in {o.machine_id for o in vast.search_offers()}  # rented: unlisted
        vast.destroy(inst.id)
        again = next(o for o in vast.search_offers() if o.machine_id == offer.machine_id)
        assert again.id != offer.id
        vast.create_on_demand(again.id, spec("again"))  # the new id rents
