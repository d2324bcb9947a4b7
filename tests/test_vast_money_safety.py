"""Money safety on Vast's paths of the tick and executor when Vast answers wrongly (empty, null, an impossible
number, another instance) or fails: never a bid above the cap, never two instances for one job, never a
budget passed, never the key in the ledger. Against the emulator over HTTP; each test failed before its fix."""

from __future__ import annotations

from dataclasses import replace

import pytest
from executor_helpers import RTX4090
from two_markets import VAST4090, tick, vast_live

from bidder.executor import Executor
from bidder.jobs import job_from_values
from bidder.models import Decision

JOB = """
[jobs.{name}]
gpu = [{gpus}]
market = "{market}"
hours = {hours}
tolerance = "high"
max_price = {max_price}
budget = {budget}
image = "pytorch/pytorch"
disk = 20
on_finish = "terminate"
"""


def job(name: str, market: str = "vast", *, gpus: str = f'"{VAST4090}"', hours: float = 20, max_price: float = 0.6,
        budget: float = 60) -> str:
    return JOB.format(name=name, market=market, gpus=gpus, hours=hours, max_price=max_price, budget=budget)


def vast_job(max_price: float = 5.0):
    """Job t: one RTX 4090 on Vast (the executor's tests launch it directly)."""
    return job_from_values("t", {"gpu": [VAST4090], "gpus": 1, "image": "pytorch/pytorch", "market": "vast",
                                 "disk": 20, "max_price": max_price})


def cheapest_floor(api) -> float:
    """The lowest spot floor per GPU of the verified RTX 4090 offers."""
    spec = api.spec(vast_job().template, "probe", VAST4090, 1, "VERIFIED")
    return min(o.spot_floor_per_gpu for o in api.offers(spec) if o.spot_floor_per_gpu)


def plan(action: str, bid: float | None, tier: str = "VERIFIED", alternatives: tuple = ()) -> Decision:
    return Decision(action=action, gpu_type_id=VAST4090, cloud=tier, gpu_count=1, bid_per_gpu=bid,
                    expected_cost_per_hour=bid or 0.45, expected_interruptions_per_day=1.0, expected_total_cost=None,
                    expected_completion_hours=None, reasons=("review",), market="vast", alternatives=alternatives)


def _running(env, api, name: str = "v"):
    """Job `name` after its first tick: (its config, the one Vast instance it runs on, its ledger row)."""
    config = env.config(job(name))
    assert tick(env, api, config).jobs[0].state == "running"
    [inst] = vast_live(env.emu)
    [row] = env.store.managed_pods(name)
    return config, inst, row


# -- a raised bid is priced on the GPU count checked against the cap, never on the count an answer states ----
def test_a_raised_bid_is_priced_on_the_checked_gpu_count_not_the_answers(both):
    env, api = both
    config, inst, row = _running(env, api)
    bid, tier = row["bid_per_gpu"], row["cloud"]
    machine = int(env.emu.vast.market.machine_id[inst.machine])
    assert int(env.emu.vast.market.num_gpus[inst.machine]) == 1
    env.emu.vast.set_competitor(machine, bid + 0.05)
    env.emu.advance(600)
    # One spoiled read of the instance says it has 4 GPUs.
    env.emu.malform("vast:show", lambda p: {"instances": {**p["instances"], "num_gpus": 4}}, times=1)
    tick(env, api, config, advise=lambda *a: plan("spot", round(bid + 0.1, 4), tier))
    # max_price 0.6 per GPU-hour on a 1-GPU instance: never a price above 0.6 per instance-hour.
    assert inst.price <= 0.6 + 1e-9, f"instance bid ${inst.price:.3f}/h on 1 GPU, cap $0.60"


# -- a key echoed in a create's new_contract never reaches the ledger or the events ------------------------
def test_a_key_echoed_in_new_contract_never_reaches_the_ledger(vx):
    emu, api, store = vx
    cfg = vast_job()
    bid = round(cheapest_floor(api) + 0.02, 4)
    emu.malform("vast:create", {"success": False, "error": "invalid_price", "msg": "bid too low",
                                "new_contract": f"token {emu.api_key}"}, status=400, execute=False, times=1)
    events: list = []
    Executor(api, store, events=events.append).launch(cfg, cfg.job, cfg.policy, plan("spot", bid), emu.now)
    texts = [str(a.get("error")) for a in store.actions("t")] + [repr(e) for e in events]
    assert not [t for t in texts if emu.api_key in t]


# -- an impossible (negative) rate in a listing is set aside: the spend and the budget hold ----------------
def test_a_negative_rate_in_a_listing_is_set_aside_and_the_budget_holds(both):
    env, api = both
    config = env.config(job("v"))
    assert tick(env, api, config).jobs[0].state == "running"
    [inst] = vast_live(env.emu)
    machine = int(env.emu.vast.market.machine_id[inst.machine])
    env.emu.vast.set_competitor(machine, None)  # a calm machine: the instance runs throughout
    env.emu.vast.set_on_demand_renter(machine, False)
    rate = inst.compute_per_hr + inst.storage_per_hr
    env.emu.advance(1800)
    env.emu.malform("vast:list", lambda p: {**p, "instances": [{**i, "dph_base": -100.0} for i in p["instances"]]},
                    times=1)
    tick(env, api, config)
    # The user lowers the budget to what is spent plus about 80 minutes of the instance.
    budget = round(env.emu.vast.total_spend() + rate * 1.3, 4)
    config = env.config(job("v", budget=budget))
    for _ in range(16):  # eight more hours, a tick every 30 minutes
        env.emu.advance(1800)
        tick(env, api, config)
    total = env.emu.vast.total_spend()
    assert total <= budget + rate * 0.5 + 1e-6, (
        f"spent ${total:.2f} against a budget of ${budget:.2f}; the ledger says ${env.store.job_state('v')['spent']:.2f}")




# -- a listing that cannot be true is set aside whole: no money lost or invented, no interruption, no move ---
@pytest.mark.parametrize("spoil", [
    {"uptime_mins": 20 * 365 * 24 * 60},  # twenty years: stored, it lost the interval's compute
    {"dph_base": None, "dph_total": None},  # no rate: booked as free (storage only), shown at $0.003/h
    {"dph_base": 1e9},  # set aside as a poll, but its rate moved the job ("above the max price")
    {"actual_status": "weird", "intended_status": "weird"},  # taken for an exit: a lost restart, an interruption
], ids=["uptime_20y", "no_rate", "rate_1e9", "unknown_status"])
def test_one_impossible_listing_is_set_aside_and_the_ledger_keeps_to_the_bill(both, spoil):
    env, api = both
    config = env.config(job("v", max_price=0.6, hours=30).replace('tolerance = "high"', 'tolerance = "none"'))
    for _ in range(4):
        tick(env, api, config)
        env.emu.advance(600)
    [inst] = vast_live(env.emu)
    env.emu.malform("vast:list", lambda p: {**p, "instances": [{**i, **spoil} for i in p["instances"]]}, times=1)
    report = tick(env, api, config)
    assert report.jobs[0].state == "running", report.jobs[0].message
    assert any(e["event"] == "rejected_observation" for e in env.events)
    for _ in range(3):
        env.emu.advance(600)
        tick(env, api, config)
    assert vast_live(env.emu) == [inst] and env.store.pod(str(inst.id))["interruptions"] == 0
    booked = env.store.job_state("v")["spent"]
    assert booked == pytest.approx(env.emu.vast.true_spend(inst.id), abs=0.002), (booked, spoil)


# -- one market's failed listing: the other market's jobs are still handled, its own are left alone -------
def test_a_failed_vast_listing_leaves_vast_jobs_alone_and_runpod_budgets_enforced(both):
    env, api = both
    config = env.config(job("r", "runpod", gpus=f'"{RTX4090}"') + job("v"))
    assert [j.state for j in tick(env, api, config).jobs] == ["running", "running"]
    [pod] = [p for p in env.emu.world.pods.values() if p.desired_status == "RUNNING"]
    [inst] = vast_live(env.emu)
    env.emu.advance(600)
    tick(env, api, config)
    lowered = env.config(job("r", "runpod", gpus=f'"{RTX4090}"', budget=0.01) + job("v"))
    env.emu.malform("vast:list", {"success": False, "error": "server_error", "msg": "Internal Server Error"},
                    status=500, execute=False, times=None)
    env.emu.advance(600)
    r, v = tick(env, api, lowered).jobs
    assert r.state == "budget_stopped" and pod.desired_status != "RUNNING"  # RunPod's budget still holds
    assert v.state == "unknown" and "pod list could not be read" in v.message, v.message
    assert vast_live(env.emu) == [inst] and env.store.pod(str(inst.id))["state"] == "active"  # nothing assumed
    env.emu.clear_malformed()
    env.emu.advance(600)
    assert [j.state for j in tick(env, api, lowered).jobs] == ["budget_stopped", "running"]


# -- an instance missing from a listing and answered `"instances": null` is unknown, not gone -----------------
def test_an_instance_answered_null_is_unknown_and_never_joined_by_a_second(both):
    env, api = both
    config = env.config(job("v"))
    assert tick(env, api, config).jobs[0].state == "running"
    [inst] = vast_live(env.emu)
    env.emu.advance(600)
    env.emu.malform("vast:list", {"instances": [], "next_token": None}, times=1)
    env.emu.malform("vast:show", {"instances": None}, times=1)
    report = tick(env, api, config)
    assert report.jobs[0].state == "unknown" and "no proof" in report.jobs[0].message, report.jobs[0].message
    assert report.jobs[0].unknown == report.jobs[0].message  # `bidder tick` exits 1: cron mails it
    assert vast_live(env.emu) == [inst] and env.store.pod(str(inst.id))["state"] == "active"  # still watched
    env.emu.advance(600)
    assert tick(env, api, config).jobs[0].state == "running" and vast_live(env.emu) == [inst]


# -- a create whose read-back fails made an instance all the same: looked up by its label, never a second --
@pytest.mark.parametrize(("action", "answer", "status"), [
    ("spot", {"detail": "API requests too frequent endpoint threshold=5.5"}, 429),  # after the client's retries
    ("on_demand", {"success": False, "error": "no_such_instance", "msg": "Instance not found."}, 404),
])
def test_a_create_whose_read_back_fails_is_adopted_and_never_joined_by_a_second(both, action, answer, status):
    env, api = both
    config = env.config(job("v"))
    decision = plan(action, 0.55 if action == "spot" else None)
    env.emu.malform("vast:show", answer, status=status, execute=False, times=4)
    first = tick(env, api, config, advise=lambda *a: decision)
    [inst] = vast_live(env.emu)
    # It was "not launched", the name released: the next tick rented a second instance beside it.
    assert first.jobs[0].state == "running", first.jobs[0].message
    assert env.store.pod(str(inst.id))["state"] == "active"
    for _ in range(3):
        env.emu.advance(600)
        tick(env, api, config, advise=lambda *a: decision)
        assert vast_live(env.emu) == [inst]


# -- JSON nested too deep to read is an unreadable answer, never a RecursionError ---------------------------
def test_answers_nested_too_deep_are_unreadable_answers_not_a_traceback(both):
    env, api = both
    config = env.config(job("v"))
    env.emu.malform("vast:create", b'{"success": true, "new_contract": ' + b"[" * 100_000, times=1)
    first = tick(env, api, config)  # a RecursionError escaped the create before
    [inst] = vast_live(env.emu)  # it ran: found by its label
    assert first.jobs[0].state == "running" and env.store.pod(str(inst.id))["state"] == "active"
    env.emu.advance(600)
    env.emu.malform("vast:list", b'{"instances": [' * 50_000, times=1)
    tick(env, api, config)  # the listing: a traceback before
    env.emu.advance(600)
    assert tick(env, api, config).jobs[0].state == "running" and vast_live(env.emu) == [inst]


# -- a paused instance's standing bid is held to the policy as it stands now --------------------------------
def _paused_at_its_bid(env, api):
    config = env.config(job("v"))
    assert tick(env, api, config).jobs[0].state == "running"
    [inst] = vast_live(env.emu)
    [row] = env.store.managed_pods("v")
    machine = int(env.emu.vast.market.machine_id[inst.machine])
    env.emu.vast.set_competitor(machine, 0.59)
    env.emu.advance(600)
    tick(env, api, config, advise=lambda *a: plan("spot", row["bid_per_gpu"], row["cloud"]))  # waits at its bid
    assert not inst.was_running and not inst.destroyed
    return inst, row, machine


def test_a_paused_instance_waiting_for_its_plan_is_told_as_vast_pauses(both):
    # The wait line gave RunPod's rule ("bidder resumes that pod when its machine has room, after 3
    # refusals it moves the job"), which a Vast instance paused at its bid never follows.
    env, api = both
    inst, row, _ = _paused_at_its_bid(env, api)
    waits = Decision(action="wait", gpu_type_id=VAST4090, cloud=row["cloud"], gpu_count=1, bid_per_gpu=None,
                     expected_cost_per_hour=0.3, expected_interruptions_per_day=1.0, expected_total_cost=None,
                     expected_completion_hours=None, reasons=("wait for the floor",), market="vast",
                     act_below=row["bid_per_gpu"] + 0.01)
    line = tick(env, api, env.config(job("v")), advise=lambda *a: waits).jobs[0]
    assert line.state == "waiting" and not inst.destroyed, line.message
    assert (f"instance {row['pod_id']} waits paused with its disk (storage billed) and resumes by itself when its "
            "bid is the highest again") in line.message and "refusals" not in line.message, line.message


def test_a_paused_instance_gets_its_bid_lowered_to_a_lowered_cap(both):
    env, api = both
    inst, row, machine = _paused_at_its_bid(env, api)
    cap = round(row["bid_per_gpu"] - 0.05, 4)  # the user lowers max_price below the standing bid
    lowered = env.config(job("v", max_price=cap))
    report = tick(env, api, lowered, advise=lambda *a: plan("spot", cap, row["cloud"]))  # a plan within the cap
    assert inst.price <= cap + 1e-9 and not inst.destroyed, report.jobs[0].message
    env.emu.vast.set_competitor(machine, None)  # if it resumes by itself, it is at the new bid
    env.emu.advance(600)
    tick(env, api, lowered, advise=lambda *a: plan("spot", cap, row["cloud"]))
    assert inst.price <= cap + 1e-9 and vast_live(env.emu) == [inst]


def test_a_paused_instance_whose_bid_is_no_longer_allowed_is_destroyed_while_the_job_waits(both):
    env, api = both
    inst, row, machine = _paused_at_its_bid(env, api)
    lowered = env.config(job("v", max_price=round(row["bid_per_gpu"] - 0.05, 4)))
    # A dry run said "instance ... destroyed" and showed no request, while nothing was sent.
    dry = tick(env, api, lowered, dry_run=True, advise=lambda *a: "the floor is above the cap").jobs[0]
    assert dry.state == "dry_run" and not inst.destroyed, dry.message
    assert dry.message.startswith(f'would destroy instance {inst.id} (destroy): {{"method": "DELETE", "url": '), dry.message
    assert f"/instances/{inst.id}/" in dry.message and "(not sent: dry run); then waiting: " in dry.message
    assert f"instance {inst.id} would be destroyed: its standing bid is no longer allowed" in dry.message
    report = tick(env, api, lowered, advise=lambda *a: "the floor is above the cap")  # the plan waits
    line = report.jobs[0]
    assert line.state == "waiting" and "no longer allowed" in line.message and inst.destroyed, line.message
    env.emu.vast.set_competitor(machine, None)
    env.emu.advance(600)
    assert vast_live(env.emu) == []  # nothing resumed by itself above the cap


def _running_above(env, api):
    """The Vast job's instance running alone on its machine (no competing bid), and a cap between the
    machine's floor and its bid (the user lowers max_price)."""
    config = env.config(job("v"))
    assert tick(env, api, config).jobs[0].state == "running"
    [inst] = vast_live(env.emu)
    [row] = env.store.managed_pods("v")
    env.emu.vast.set_competitor(int(env.emu.vast.market.machine_id[inst.machine]), None)
    floor = float(env.emu.vast.market.floor_per_gpu[inst.machine])
    assert floor < row["bid_per_gpu"] - 0.01, (floor, row["bid_per_gpu"])
    env.emu.advance(600)
    return inst, row, round((floor + row["bid_per_gpu"]) / 2, 4)


def test_a_running_instance_gets_its_bid_lowered_to_a_lowered_cap(both):
    env, api = both
    inst, row, cap = _running_above(env, api)
    lowered = env.config(job("v", max_price=cap))
    report = tick(env, api, lowered, advise=lambda *a: plan("spot", cap, row["cloud"]))  # a plan within the cap
    line = report.jobs[0]
    assert line.state == "running" and "bid lowered" in line.message, line.message
    assert inst.price <= cap + 1e-9 and inst.was_running and vast_live(env.emu) == [inst]
    assert env.store.pod(row["pod_id"])["bid_per_gpu"] == cap


def test_a_running_instance_whose_bid_is_no_longer_allowed_is_destroyed_while_the_job_waits(both):
    env, api = both
    inst, _, cap = _running_above(env, api)
    lowered = env.config(job("v", max_price=cap))
    report = tick(env, api, lowered, advise=lambda *a: "the floor is above the cap")  # the plan waits
    line = report.jobs[0]
    assert line.state == "waiting" and "no longer allowed" in line.message and inst.destroyed, line.message
    assert vast_live(env.emu) == []


def _runpod_spot_at_60_cents(env) -> Decision:
    """A plan for a RunPod RTX 4090 spot pod bidding $0.60 on a cloud whose floor is under it."""
    floors = {c: env.emu.world.floor(RTX4090, c) for c in ("COMMUNITY", "SECURE")}
    cloud = next(c for c, f in floors.items() if f is not None and f < 0.6)
    return Decision(action="spot", gpu_type_id=RTX4090, cloud=cloud, gpu_count=1, bid_per_gpu=0.6,
                    expected_cost_per_hour=0.6, expected_interruptions_per_day=1.0, expected_total_cost=None,
                    expected_completion_hours=None, reasons=("review",))


def test_max_spend_per_hour_counts_the_storage_of_a_paused_instance(both):
    # A paused instance bills its storage: with it, the RunPod spot pod at $0.60/h passes the cap.
    env, api = both
    inst, row, _ = _paused_at_its_bid(env, api)
    storage = env.store.last_observation(row["pod_id"])["storage_per_hr"]
    assert storage and storage > 0
    runpod_spot = _runpod_spot_at_60_cents(env)

    def advise(job, *a):
        return runpod_spot if job.market == "runpod" else plan("spot", row["bid_per_gpu"], row["cloud"])

    capped = env.config(f"max_spend_per_hour = {0.6 + storage / 2}\n" + job("v")
                        + job("r", "runpod", gpus=f'"{RTX4090}"'))
    v, r = tick(env, api, capped, advise=advise).jobs
    assert r.state == "waiting" and "max_spend_per_hour" in r.message, r.message
    assert v.state == "waiting" and not inst.destroyed
    assert [p for p in env.emu.world.pods.values() if p.desired_status == "RUNNING"] == []


def test_max_spend_per_hour_counts_the_storage_of_an_instance_stopped_at_its_budget(both):
    # A job stopped at its budget keeps its instance (its disk, its work) to resume: Vast bills that
    # storage on, and max_spend_per_hour counted only running and paused instances (a launch passed it).
    env, api = both
    _, inst, row = _running(env, api)
    env.emu.advance(600)
    spent = env.store.job_state("v")["spent"] or 0.0
    stopped = env.config(job("v", budget=round(spent + 0.05, 4)))
    tick(env, api, stopped, advise=lambda *a: plan("spot", row["bid_per_gpu"], row["cloud"]))
    assert env.store.job_state("v")["state"] == "budget_stopped" and env.store.pod(row["pod_id"])["state"] == "stopped"
    assert not inst.was_running and not inst.destroyed
    storage = env.store.last_observation(row["pod_id"])["storage_per_hr"]
    assert storage and storage > 0
    runpod_spot = _runpod_spot_at_60_cents(env)
    capped = env.config(f"max_spend_per_hour = {0.6 + storage / 2}\n" + job("v", budget=round(spent + 0.05, 4))
                        + job("r", "runpod", gpus=f'"{RTX4090}"'))
    v, r = tick(env, api, capped, advise=lambda job, *a: runpod_spot).jobs
    assert v.state == "budget_stopped"
    assert r.state == "waiting" and "max_spend_per_hour" in r.message, r.message
    assert [p for p in env.emu.world.pods.values() if p.desired_status == "RUNNING"] == []


# -- a losing bid whose stopped instance could not be destroyed: nothing else is rented, it is retiring -----
def test_a_losing_bids_instance_that_cannot_be_destroyed_stops_the_launch_and_is_retiring(vx):
    emu, api, store = vx
    cfg = vast_job()
    bid = round(cheapest_floor(api) + 0.02, 4)
    # Vast answers the create as a losing bid (HTTP 400 naming new_contract: the instance exists),
    # and the destroy of that instance fails (500s).
    emu.malform("vast:create", lambda p: {"success": False, "error": "invalid_price",
                                          "msg": "Your bid is below the current minimum bid",
                                          "new_contract": p["new_contract"]}, status=400, times=1)
    emu.malform("vast:destroy", {"success": False, "error": "server_error", "msg": "Internal Server Error"},
                status=500, execute=False, times=None)
    decision = plan("spot", bid, alternatives=(plan("on_demand", None),))
    result = Executor(api, store).launch(cfg, cfg.job, cfg.policy, decision, emu.now)
    [left] = vast_live(emu)  # the losing bid's instance: no on-demand one was rented beside it
    assert result.pod is None and left.is_bid, [a.outcome for a in result.attempts]
    assert store.pod(str(left.id))["state"] == "retiring" and store.managed_pods("t", states=["active"]) == []


# -- a bid create rented on-demand whose destroy failed is never taken as the job's pod ------------------
def test_an_on_demand_rental_despite_a_bid_that_cannot_be_destroyed_is_never_the_jobs_pod(vx):
    emu, api, store = vx
    spec = api.spec(vast_job().template, "probe", VAST4090, 1, "VERIFIED")
    offers = [o for o in api.offers(spec) if o.spot_floor_per_gpu and o.on_demand_per_gpu]
    pick = min(offers, key=lambda o: (o.spot_floor_per_gpu, -o.reliability, o.id))
    cap = round(min(o.spot_floor_per_gpu for o in offers) + 0.01, 4)
    assert pick.on_demand_per_gpu > cap  # its on-demand price is above the job's cap
    cfg = vast_job(max_price=cap)
    emu.vast.ignore_price = True  # the known overspend: Vast rents on-demand although a bid was sent
    emu.malform("vast:destroy", {"success": False, "error": "server_error", "msg": "Internal Server Error"},
                status=500, execute=False, times=None)
    result = Executor(api, store).launch(cfg, cfg.job, cfg.policy, plan("spot", cap), emu.now)
    emu.clear_malformed()
    emu.vast.ignore_price = False
    rows = store.managed_pods("t", states=["active"])
    # An instance that runs above the cap may exist (the destroy failed), but bidder must not take it as
    # the job's pod and go on paying it: it is to be ended, not kept.
    kept = [r for r in rows if not emu.vast.instances[int(r["pod_id"])].is_bid]
    assert not kept, (
        [a.outcome for a in result.attempts], rows, [(i.id, i.is_bid, i.od_price) for i in vast_live(emu)])
    [left] = vast_live(emu)
    assert store.pod(str(left.id))["state"] == "retiring"


def test_the_tick_destroys_a_retiring_instance_before_renting_anything(both):
    env, api = both
    config = env.config(job("v"))
    env.emu.vast.ignore_price = True  # Vast rents on-demand although a bid was sent...
    env.emu.malform("vast:destroy", {"success": False, "error": "server_error", "msg": "Internal Server Error"},
                    status=500, execute=False, times=None)  # ...and the destroy fails
    report = tick(env, api, config)
    [left] = vast_live(env.emu)
    assert report.jobs[0].state == "waiting" and not left.is_bid, report.jobs[0].message
    env.emu.vast.ignore_price = False
    env.emu.advance(600)
    assert tick(env, api, config).jobs[0].state == "unknown" and vast_live(env.emu) == [left]  # still failing
    env.emu.clear_malformed()
    env.emu.advance(600)
    tick(env, api, config)  # destroyed first, then the job goes on
    assert left.destroyed and env.store.pod(str(left.id))["state"] == "retired"
    assert all(i.is_bid for i in vast_live(env.emu)) and len(vast_live(env.emu)) <= 1


# -- an empty 200 answer to a stop proves nothing: the instance stays watched ---------------------------------
def test_a_stop_answered_without_success_is_not_taken_as_done_and_the_budget_holds(both):
    env, api = both
    config = env.config(job("v"))
    assert tick(env, api, config).jobs[0].state == "running"
    [inst] = vast_live(env.emu)
    env.emu.advance(600)
    tick(env, api, config)
    spent = env.emu.vast.total_spend()
    lowered = env.config(job("v", budget=round(spent + 0.05, 4)))
    # Vast answers the stop with an empty object and does not execute it (no "success": true).
    env.emu.malform("vast:set_state", {}, execute=False, times=1)
    report = tick(env, api, lowered)
    line = report.jobs[0]
    assert line.state == "running" and "not confirmed" in line.message, line.message  # still watched
    assert env.store.pod(str(inst.id))["state"] == "active"
    budget = round(spent + 0.05, 4)
    rate = inst.compute_per_hr + inst.storage_per_hr
    for _ in range(12):  # six more hours of ticks, every 30 minutes
        env.emu.advance(1800)
        tick(env, api, lowered)
    # The rule: the budget is passed by at most one tick's spend (30 minutes here).
    total = env.emu.vast.total_spend()
    assert total <= budget + rate * 0.5 + 1e-6, (
        f"spent ${total:.3f} against a budget of ${budget:.3f}; instance intended={inst.intended}, ledger row "
        f"{env.store.pod(str(inst.id))['state']} (no longer polled)")
    assert not inst.was_running and (inst.intended == "stopped" or inst.destroyed)  # a later tick ended it


# -- an empty 200 answer to a destroy proves nothing: no second instance beside a paused one ------------------
def test_a_destroy_answered_without_success_is_not_taken_as_done_and_nothing_is_rented(both):
    env, api = both
    config = env.config(job("v"))
    assert tick(env, api, config).jobs[0].state == "running"
    [paused] = vast_live(env.emu)
    machine = int(env.emu.vast.market.machine_id[paused.machine])
    env.emu.vast.set_competitor(machine, 0.59)
    env.emu.advance(600)
    env.emu.malform("vast:destroy", {}, execute=False, times=1)
    report = tick(env, api, config, advise=lambda *a: plan("on_demand", None))
    env.emu.vast.set_competitor(machine, None)  # the paused one resumes by itself
    env.emu.advance(600)
    live = vast_live(env.emu)
    assert len(live) <= 1, (report.jobs[0].message, [(i.id, i.was_running) for i in live])


# -- the storage Vast bills on top of a bid is held to the budget and max_spend_per_hour ---------------------
def _offers_at(api, bid: float) -> list:
    """The verified RTX 4090 offers a bid per GPU takes now (1 GPU, the 20 GB disk of `vast_job`)."""
    spec = api.spec(vast_job().template, "probe", VAST4090, 1, "VERIFIED")
    return [o for o in api.offers(spec) if o.spot_floor_per_gpu is not None and o.spot_floor_per_gpu <= bid]


def test_a_new_instance_whose_storage_would_pass_max_spend_per_hour_is_not_rented(vx):
    emu, api, store = vx
    cfg = vast_job()
    bid = round(cheapest_floor(api) + 0.02, 4)
    storage = [o.storage_per_hr(20.0) for o in _offers_at(api, bid)]
    assert min(storage) > 0
    # The bid alone fits the cap; with any offer's storage, the instance would cost more than it.
    result = Executor(api, store, max_spend_per_hour=bid + min(storage) / 2).launch(
        cfg, cfg.job, cfg.policy, plan("spot", bid), emu.now)
    assert result.pod is None and vast_live(emu) == [], [a.message for a in result.attempts]
    [attempt] = result.attempts
    assert attempt.outcome == "refused" and "storage" in attempt.message, attempt.message
    # With room for the storage, the same bid rents, and what the instance bills fits the cap.
    cap = bid + max(storage) + 0.001
    result = Executor(api, store, max_spend_per_hour=cap).launch(cfg, cfg.job, cfg.policy, plan("spot", bid), emu.now)
    [inst] = vast_live(emu)
    assert result.pod is not None and inst.compute_per_hr + inst.storage_per_hr <= cap + 1e-9


def test_a_new_instance_whose_storage_would_pass_the_budget_is_not_rented(vx):
    emu, api, store = vx
    bid = round(cheapest_floor(api) + 0.02, 4)
    storage = min(o.storage_per_hr(20.0) for o in _offers_at(api, bid))
    cfg = job_from_values("t", {"gpu": [VAST4090], "gpus": 1, "image": "pytorch/pytorch", "market": "vast",
                                "disk": 20, "max_price": 5.0, "budget": round(bid + storage / 2, 6)})
    # Nothing spent yet: the budget covers the next hour of the bid, not of the bid and the disk.
    result = Executor(api, store).launch(cfg, cfg.job, cfg.policy, plan("spot", bid), emu.now)
    assert result.pod is None and vast_live(emu) == []
    assert "storage" in result.attempts[0].message, result.attempts[0].message


def test_an_on_demand_instance_is_held_to_max_spend_per_hour_with_its_storage(vx):
    emu, api, store = vx
    cfg = vast_job()
    spec = api.spec(cfg.template, "probe", VAST4090, 1, "VERIFIED")
    cheapest = min(o.dph_total for o in api.offers(spec) if o.dph_total is not None)
    # The price the executor checks (no quote stored: the plan's) fits; no offer's price with storage does.
    on_demand = Decision(action="on_demand", gpu_type_id=VAST4090, cloud="VERIFIED", gpu_count=1, bid_per_gpu=None,
                         expected_cost_per_hour=cheapest / 2, expected_interruptions_per_day=0.0,
                         expected_total_cost=None, expected_completion_hours=None, reasons=("review",), market="vast")
    result = Executor(api, store, max_spend_per_hour=cheapest - 0.001).launch(
        cfg, cfg.job, cfg.policy, on_demand, emu.now)
    assert result.pod is None and vast_live(emu) == [], [a.message for a in result.attempts]
    assert "with its storage" in result.attempts[0].message, result.attempts[0].message


def test_a_dry_run_that_finds_no_vast_offer_says_so_without_raising(vx):
    emu, api, store = vx
    cfg = vast_job()
    bid = round(cheapest_floor(api) - 0.01, 4)  # below every offer's floor
    result = Executor(api, store, dry_run=True).launch(cfg, cfg.job, cfg.policy, plan("spot", bid), emu.now)
    assert result.requests == () and [a.outcome for a in result.attempts] == ["no_capacity"]
    assert "takes a bid" in result.attempts[0].message and store.actions("t") == []


def test_a_paused_instance_whose_bid_and_storage_pass_max_spend_per_hour_is_not_kept_bidding(both):
    env, api = both
    inst, row, machine = _paused_at_its_bid(env, api)
    storage = env.store.last_observation(row["pod_id"])["storage_per_hr"]
    assert storage and storage > 0
    # Alone, the instance would resume at its bid and bill its disk on top: more than the cap.
    capped = env.config(f"max_spend_per_hour = {row['bid_per_gpu'] + storage / 2}\n" + job("v"))
    line = tick(env, api, capped, advise=lambda *a: "the floor is above the cap").jobs[0]  # the plan waits
    assert line.state == "waiting" and "no longer allowed" in line.message and inst.destroyed, line.message
    env.emu.vast.set_competitor(machine, None)
    env.emu.advance(600)
    assert vast_live(env.emu) == []  # nothing resumed by itself above the cap


def test_a_tick_whose_budget_leaves_no_room_for_the_storage_rents_nothing_and_says_so(both):
    env, api = both
    # What the tick would rent with room to spare: the plan's bid and the storage of the offer it took.
    _, inst, row = _running(env, api, "probe")
    bid, storage = row["bid_per_gpu"], inst.storage_per_hr
    inst_count = len(env.emu.vast.instances)
    # A second job at the same bid with 0.9 hours of work, whose budget covers those hours at the bid
    # and only a quarter hour of the storage on top.
    tight = env.config(job("probe", budget=9999) + job("v", hours=0.9, budget=round(bid * 0.9 + storage / 4, 6)))
    line = tick(env, api, tight, advise=lambda j, *a: plan("spot", bid, row["cloud"])).jobs[1]
    assert len(env.emu.vast.instances) == inst_count, line.message  # nothing created for job v
    assert line.state != "running" and "storage" in line.message, (line.state, line.message)


def _asked_offer(dry) -> int:
    """The offer id a create's dry run would rent (its URL: /api/v0/asks/{id}/)."""
    return int(dry.request.path.rstrip("/").rsplit("/", 1)[-1])


def test_a_bid_takes_the_offer_whose_storage_is_cheapest_among_those_it_wins(vx):
    # Pay-as-bid: every offer under the bid costs the bid; the lowest floor took one whose 500 GB disk
    # billed $0.168/h beside another's $0.048/h.
    _, api, _ = vx
    spec = api.spec(replace(vast_job().template, disk=500), "probe", VAST4090, 1, "VERIFIED")
    offers = [o for o in api.offers(spec) if o.spot_floor_per_gpu]
    bid = max(o.spot_floor_per_gpu for o in offers)  # every offer takes it
    cheapest = min(offers, key=lambda o: (round(o.storage_per_hr(500), 6), o.spot_floor_per_gpu))
    assert len({round(o.storage_per_hr(500), 6) for o in offers}) > 1  # (they differ: the choice matters)
    assert _asked_offer(api.build_rent_interruptable(spec, bid)) == cheapest.id


def test_an_on_demand_offer_is_held_to_max_price_without_its_disks_storage(vx):
    # max_price is per GPU-hour of compute, as the optimizer reads it: with a 2000 GB disk the search's
    # prices (storage included) were all "over the max price", and the job waited for ever.
    _, api, _ = vx
    spec = api.spec(replace(vast_job().template, disk=2000), "probe", VAST4090, 1, "VERIFIED")
    offers = [o for o in api.offers(spec) if o.dph_total is not None]
    compute = min(o.dph_total - o.storage_per_hr(2000) for o in offers)
    assert all(o.dph_total > compute + 0.05 for o in offers)  # (storage alone lifts every price past the cap)
    capped = replace(spec, max_price_per_gpu=compute + 0.01)
    assert _asked_offer(api.build_deploy_on_demand(capped)) in {o.id for o in offers}
