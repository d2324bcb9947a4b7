"""The executor on Vast (bidder.vast_pods behind the same Executor), against the emulator over HTTP:
a ledger row before every mutation, no bid above the cap (per instance: cap x GPUs), a lost create
found by its label (exactly one instance), a losing bid's stopped instance destroyed, the raised bid
of an outbid instance, and spend from billing observations equal to the emulator's billing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from executor_helpers import named

from bidder.executor import Executor
from bidder.jobs import job_from_values
from bidder.models import Decision
from bidder.store import Store, estimate_spend
from bidder.vast_pods import VastPodApi

GPU = "RTX 4090"


def decision(action: str, bid: float | None, gpus: int = 1, tier: str = "VERIFIED") -> Decision:
    return Decision(action=action, gpu_type_id=GPU, cloud=tier, gpu_count=gpus, bid_per_gpu=bid,
                    expected_cost_per_hour=bid or 0.5, expected_interruptions_per_day=1.0, expected_total_cost=None,
                    expected_completion_hours=None, reasons=("test",), market="vast")


def config(gpus: int = 1, **values):
    return job_from_values("t", {"gpu": [GPU], "gpus": gpus, "image": "pytorch/pytorch", "market": "vast",
                                 "disk": 20, **values})


def floor_bid(api: VastPodApi, gpus: int = 1) -> float:
    spec = api.spec(config(gpus).template, "probe", GPU, gpus, "VERIFIED")
    return min(o.spot_floor_per_gpu for o in api.offers(spec) if o.spot_floor_per_gpu is not None)


def live(emu) -> list:
    return [i for i in emu.vast.instances.values() if not i.destroyed]


def test_a_spot_launch_on_vast_writes_the_ledger_first_and_bids_per_instance(vx):
    emu, api, store = vx
    cfg = config(gpus=2, max_price=2.0)
    bid = round(floor_bid(api, 2) + 0.02, 4)
    ex = Executor(api, store)
    result = ex.launch(cfg, cfg.job, cfg.policy, decision("spot", bid, gpus=2), emu.now)
    assert result.pod is not None and result.attempt.outcome == "ok"
    [inst] = live(emu)
    assert inst.label == named(store, "bidder-t", 1) and inst.is_bid and inst.price == pytest.approx(bid * 2)  # bid x GPUs
    [action] = store.actions("t")
    assert (action["kind"], action["outcome"], action["pod_id"]) == ("rent_spot", "ok", str(inst.id))
    row = store.pod(str(inst.id))
    assert (row["market"], row["kind"], row["bid_per_gpu"], row["cloud"]) == ("vast", "spot", bid, "VERIFIED")


def test_no_bid_above_the_cap_is_ever_sent_on_vast(vx):
    emu, api, store = vx
    cfg = config(max_price=0.05)
    result = Executor(api, store).launch(cfg, cfg.job, cfg.policy, decision("spot", 0.06), emu.now)
    assert result.pod is None and [a.outcome for a in result.attempts] == ["refused"]
    assert live(emu) == [] and store.actions("t") == []  # refused before a row or a request
    # On-demand: no offer above the cap per GPU is rented either (the cap is below every offer).
    result = Executor(api, store).launch(cfg, cfg.job, cfg.policy, decision("on_demand", None), emu.now)
    assert result.pod is None and live(emu) == []


def test_a_losing_bid_leaves_no_instance_behind(vx):
    emu, api, store = vx
    cfg = config(max_price=5.0)
    bid = round(floor_bid(api) + 0.01, 4)
    spec = api.spec(cfg.template, "probe", GPU, 1, "VERIFIED")
    target = min((o for o in api.offers(spec) if o.spot_floor_per_gpu is not None),
                 key=lambda o: o.spot_floor_per_gpu)
    # The race Vast has: between the search and the create another bidder outbids us on that machine.
    original_offers = api.offers

    def offers_then_outbid(s):  # the search sees the old floor; the create meets the new one
        found = original_offers(s)
        emu.vast.set_competitor(target.machine_id, bid + 0.5)
        return found

    api.offers = offers_then_outbid
    result = Executor(api, store).launch(cfg, cfg.job, cfg.policy, decision("spot", bid), emu.now)
    assert result.pod is None and result.attempts[0].outcome == "no_capacity"
    assert "destroyed" in result.attempts[0].message
    assert live(emu) == []  # the stopped instance the losing bid made was destroyed (it billed storage)
    assert [a["outcome"] for a in store.actions("t")] == ["error"]


def test_a_lost_create_on_vast_leaves_exactly_one_instance(vx):
    emu, api, store = vx
    cfg = config(max_price=5.0)
    bid = round(floor_bid(api) + 0.02, 4)
    emu.set_faults("lost_create=1")
    ex = Executor(api, store)
    result = ex.launch(cfg, cfg.job, cfg.policy, decision("spot", bid), emu.now)
    emu.set_faults(None)
    assert [a.outcome for a in result.attempts] == ["adopted"]
    [inst] = live(emu)
    assert result.pod.id == str(inst.id) and inst.label == named(store, "bidder-t", 1)
    # A second launch while that name is still looked up (a stale view) creates nothing else.
    store.save_job_state("t", pending_name=named(store, "bidder-t", 1), pending_since=emu.now)
    again = ex.launch(cfg, cfg.job, cfg.policy, decision("spot", bid), emu.now)
    assert again.pod is None and len(live(emu)) == 1
    assert [a["kind"] for a in store.actions("t")] == ["rent_spot"]


def test_an_instance_adopted_after_it_ran_a_while_is_polled_and_booked(vx, tmp_path):
    # Adopted without its create's time (a lost create found late), it was dated now: its running total
    # (20 minutes) read as longer than it had existed, and every poll was set aside as impossible.
    emu, api, store = vx
    cfg = config(max_price=5.0)
    with Store.open(tmp_path / "other.db") as other:  # (the create this ledger lost track of)
        made = Executor(api, other).launch(cfg, cfg.job, cfg.policy, decision("on_demand", None), emu.now).pod
    emu.advance(1200)
    ex = Executor(api, store)
    ex.take_stray(cfg, api.pod(made.id), emu.now, keep=True)
    for _ in range(3):
        emu.advance(600)
        assert ex.observe(store.pod(made.id), api.pod(made.id), emu.now) == "running"
    assert not [e for e in ex.log if e["event"] == "rejected_observation"], ex.log
    assert estimate_spend(store.observations(made.id)) == pytest.approx(emu.vast.true_spend(int(made.id)), abs=0.002)


def test_an_outbid_instance_is_paused_then_its_bid_raised_within_the_cap(vx):
    emu, api, store = vx
    cfg = config(max_price=5.0)
    bid = round(floor_bid(api) + 0.01, 4)
    ex = Executor(api, store)
    pod = ex.launch(cfg, cfg.job, cfg.policy, decision("spot", bid), emu.now).pod
    inst = emu.vast.instances[int(pod.id)]
    machine = int(emu.vast.market.machine_id[inst.machine])
    emu.advance(300)
    assert ex.observe(store.pod(pod.id), api.pod(pod.id), emu.now) == "running"
    emu.vast.set_competitor(machine, bid + 0.1)  # outbid: paused, not destroyed
    emu.advance(300)
    assert ex.observe(store.pod(pod.id), api.pod(pod.id), emu.now) == "interrupted"
    assert store.pod(pod.id)["interruptions"] == 1 and not inst.destroyed
    raised = round(bid + 0.15, 4)
    attempt, _ = ex.resume(cfg, store.pod(pod.id), decision("spot", raised), cfg.policy, emu.now,
                           job_spent=ex.job_spend("t"))
    assert attempt.outcome == "ok" and inst.price == pytest.approx(raised) and inst.was_running
    assert [a["kind"] for a in store.actions("t")] == ["rent_spot", "bid_resume"]
    # Above the cap: refused, the bid stays.
    capped = config(max_price=raised)
    attempt, _ = ex.resume(capped, store.pod(pod.id), decision("spot", raised + 0.01), capped.policy, emu.now,
                           job_spent=0.0)
    assert attempt.outcome == "refused" and inst.price == pytest.approx(raised)
    emu.advance(600)
    ex.observe(store.pod(pod.id), api.pod(pod.id), emu.now)
    assert ex.job_spend("t") == pytest.approx(emu.vast.true_spend(inst.id), rel=1e-6)


def test_ledger_spend_matches_vasts_billing_over_a_week_with_pauses(vx):
    emu, api, store = vx
    cfg = config(gpus=1, max_price=5.0)
    bid = round(floor_bid(api) * 1.25, 4)  # above the floor, below many competing bids: paused at times
    ex = Executor(api, store)
    pod = ex.launch(cfg, cfg.job, cfg.policy, decision("spot", bid), emu.now).pod
    end = emu.now + timedelta(days=7)
    outcomes = []
    while emu.now < end:
        emu.advance(600)
        outcomes.append(ex.observe(store.pod(pod.id), api.pod(pod.id), emu.now))
    inst_id = int(pod.id)
    truth = emu.vast.true_spend(inst_id)
    ledger = estimate_spend(store.observations(pod.id))
    assert emu.vast.interruptions(inst_id) >= 3 and outcomes.count("interrupted") >= 3  # it was paused
    assert ledger == pytest.approx(truth, rel=0.01)
    inst = emu.vast.instances[inst_id]
    assert truth > inst.running_s / 3600 * inst.price  # storage, billed while paused too, is in both
    ex.stop_pod(store.pod(pod.id), emu.now, reason="test done", terminate=True)
    assert live(emu) == [] and store.pod(pod.id)["state"] == "terminated"


def test_a_dry_run_on_vast_prints_the_exact_create_with_the_key_masked(vx):
    emu, api, store = vx
    cfg = config(gpus=2, max_price=2.0)
    bid = round(floor_bid(api, 2) + 0.02, 4)
    result = Executor(api, store, dry_run=True).launch(cfg, cfg.job, cfg.policy, decision("spot", bid, gpus=2), emu.now)
    [request] = result.requests
    text = request.to_json()
    assert emu.api_key not in text and "Bearer ***" in text
    payload = request.payload()
    assert payload["method"] == "PUT" and "/api/v0/asks/" in payload["url"]
    assert payload["body"]["price"] == pytest.approx(bid * 2) and payload["body"]["label"] == named(store, "bidder-t", 1)
    assert live(emu) == [] and [a["outcome"] for a in store.actions("t")] == ["dry_run"]
