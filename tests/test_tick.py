"""`bidder tick` scenarios against the emulator over HTTP, on its virtual clock: launch, interruption
and podBidResume, waiting out a spike, moving to on-demand, the budget stop, spot retired, lost
creates, finishing, and jobs touched outside bidder."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from click.testing import CliRunner
from executor_helpers import A6000, JOB, ON_DEMAND_SERVICE, RTX4090, interrupted_spot_pod, make_env, named

from bidder.cli import main
from bidder.executor import SPOT_FLAG
from bidder.models import Decision
from bidder.report.data import spend_report
from bidder.tick import run_tick
from bidder.units import to_iso

SERVICE_A6000 = f"""
[jobs.train]
gpu = ["{A6000}"]
cloud = "community"
keep_running = true
tolerance = "high"
image = "runpod/pytorch:latest"
"""


@pytest.fixture
def env(emulator, client, tmp_path):
    emulator.world.reclaim_rate_per_hour = 0.0  # only the interruptions a test makes
    e = make_env(emulator, client, tmp_path)
    yield e
    e.store.close()


def the_pod(env):
    pods = env.live_pods()
    assert len(pods) == 1, [(p.id, p.name, p.desired_status) for p in pods]
    return pods[0]


def running(report) -> bool:
    return report.jobs[0].state == "running"


def resumed(report) -> bool:
    return any(e["event"] == "bid_resume" and e.get("outcome") == "ok" for e in report.events)


def test_a_job_launches_spot_and_an_interruption_is_resumed_at_the_new_bid(env):
    config = env.config(SERVICE_A6000)
    report = env.tick_until(config, running)
    assert report.collected
    assert report.jobs[0].message.startswith(f"launched {named(env.store, 'bidder-train', 1)} on NVIDIA RTX A6000 "
                                             "(COMMUNITY) spot @ $")
    pod = the_pod(env)
    assert (pod.name, pod.gpu_type_id, pod.cloud, pod.pod_type) == (named(env.store, "bidder-train", 1), A6000, "COMMUNITY",
                                                                     "INTERRUPTABLE")
    first_bid = pod.bid
    assert first_bid >= env.emu.world.floor(A6000, "COMMUNITY") - 1e-9
    env.emu.advance(600)
    assert env.tick(config).jobs[0].state == "running"
    # A short spike over the bid: the emulator interrupts the pod between two ticks.
    env.emu.world.set_floor(A6000, "COMMUNITY", round(first_bid + 0.03, 3))
    env.emu.advance(300)
    env.emu.world.release_floor(A6000, "COMMUNITY")
    assert pod.desired_status == "EXITED"
    first = env.tick(config)
    assert [e["event"] for e in first.events if e["event"] == "interrupted"] == ["interrupted"]
    report = first if resumed(first) else env.tick_until(config, resumed)  # it may let the market settle
    assert report.jobs[0].state == "running" and "podBidResume" in report.jobs[0].message
    assert env.kinds("train") == ["rent_spot:ok", "bid_resume:ok"]
    resume = env.store.actions("train")[-1]
    event = next(e for e in report.events if e["event"] == "bid_resume")
    assert resume["pod_id"] == pod.id and resume["bid_per_gpu"] == pytest.approx(event["bid_per_gpu"])
    # The new bid is the optimizer's bid of that moment: at or over the floor, under on-demand.
    assert env.emu.world.floor(A6000, "COMMUNITY") - 1e-9 <= resume["bid_per_gpu"] <= 0.33
    # The same pod runs again on its machine at the new bid (pay-as-bid: cost = bid x GPUs).
    assert pod.desired_status == "RUNNING" and pod.bid == pytest.approx(resume["bid_per_gpu"])
    assert len(env.live_pods()) == 1
    row = env.store.pod(pod.id)
    assert row["interruptions"] == 1 and row["bid_per_gpu"] == pytest.approx(pod.bid)
    assert env.store.job_state("train")["interruptions"] == 1


def test_a_spike_above_the_max_price_waits_then_resumes(env):
    config = env.config(SERVICE_A6000 + "max_price = 0.2\n")
    env.tick_until(config, running)
    pod = the_pod(env)
    env.emu.advance(300)
    env.emu.world.set_floor(A6000, "COMMUNITY", 0.25)  # over the cap: no bid may follow it
    env.emu.advance(300)
    for _ in range(6):
        report = env.tick(config)
        job = report.jobs[0]
        assert job.state == "waiting", job.message
        waits = [e for e in report.events if e["event"] == "wait"]
        assert waits and waits[0]["pod_id"] == pod.id
        env.emu.advance(300)
    assert pod.desired_status == "EXITED"
    assert env.kinds("train") == ["rent_spot:ok"]  # nothing sent while the floor is over the cap
    env.emu.world.release_floor(A6000, "COMMUNITY")  # the spike is over
    env.emu.advance(300)
    report = env.tick_until(config, resumed)
    assert report.jobs[0].state == "running", report.jobs[0].message
    assert env.kinds("train") == ["rent_spot:ok", "bid_resume:ok"]
    bid = env.store.actions("train")[-1]["bid_per_gpu"]
    assert bid <= 0.2 and pod.desired_status == "RUNNING" and pod.bid == pytest.approx(bid)
    assert all((a["bid_per_gpu"] or 0) <= 0.2 for a in env.store.actions())


def _running_with_room_under_its_bid(env):
    """The A6000 service running spot, and a cap between the floor and its bid (the floor is set
    under the bid, so there is one)."""
    config = env.config(SERVICE_A6000)
    env.tick_until(config, running)
    pod = the_pod(env)
    env.emu.world.set_floor(A6000, "COMMUNITY", round(pod.bid - 0.06, 3))
    env.emu.advance(300)
    assert env.tick(config).jobs[0].state == "running" and pod.desired_status == "RUNNING"
    return pod, round(pod.bid - 0.03, 3)


def spot_at(bid: float):
    """An `advise` that plans spot on the A6000 at `bid` (what the optimizer would say under the new cap)."""
    return lambda *a: Decision(action="spot", gpu_type_id=A6000, cloud="COMMUNITY", gpu_count=1, bid_per_gpu=bid,
                               expected_cost_per_hour=bid, expected_interruptions_per_day=1.0,
                               expected_total_cost=None, expected_completion_hours=None, reasons=("review",))


def test_a_dry_run_resume_prints_its_bid_and_request(env):
    """It printed "would resume ID (podBidResume)": no price, no request, on a money-moving command."""
    config = env.config(SERVICE_A6000)
    pod = interrupted_spot_pod(env, config)
    bid = round(pod.bid + 0.01, 3)
    dry = env.tick(config, dry_run=True, advise=spot_at(bid)).jobs[0]
    assert dry.state == "dry_run" and pod.desired_status == "EXITED", dry.message
    assert dry.message.startswith(f"would resume {pod.id} at ${bid:.4f}/GPU-h (podBidResume): "), dry.message
    assert f'"podId": "{pod.id}"' in dry.message and f'"bidPerGpu": {bid}' in dry.message, dry.message
    assert dry.message.endswith("(not sent: dry run)")


def test_a_lowered_max_price_rebids_a_running_spot_pod_under_it(env):
    pod, cap = _running_with_room_under_its_bid(env)
    lowered = env.config(SERVICE_A6000 + f"max_price = {cap}\n")
    env.emu.advance(300)
    dry = env.tick(lowered, dry_run=True, advise=spot_at(cap))
    assert dry.jobs[0].state == "dry_run" and pod.desired_status == "RUNNING" and pod.bid > cap, dry.jobs[0]
    assert env.kinds("train") == ["rent_spot:ok", "stop:dry_run", "bid_resume:dry_run"]
    report = env.tick(lowered, advise=spot_at(cap))
    job = report.jobs[0]
    # RunPod cannot change a running pod's bid: stopped by bidder, bid-resumed on its machine under the cap.
    assert job.state == "running" and "podBidResume" in job.message, job.message
    assert env.kinds("train")[3:] == ["stop:ok", "bid_resume:ok"]
    assert pod.desired_status == "RUNNING" and pod.bid == pytest.approx(cap) and the_pod(env) is pod
    assert spend_report(env.store).pods[0].interruptions == 0  # bidder's own stop is not an interruption
    # Outbid before the next poll: an interruption, for the tick and the report alike (the report had
    # taken the stop sent in the same tick as the resume for bidder's own stop of this exit).
    env.emu.world.set_floor(A6000, "COMMUNITY", round(cap + 0.02, 3))
    env.emu.advance(300)
    env.tick(lowered, advise=lambda *a: "wait")
    assert env.kinds("train")[5:] == []  # nothing sent: it waits for the floor to come back under the cap
    assert env.store.job_state("train")["interruptions"] == 1
    assert spend_report(env.store).pods[0].interruptions == 1


def test_a_max_price_lowered_under_the_floor_stops_the_running_spot_pod(env):
    pod, _ = _running_with_room_under_its_bid(env)
    floor = env.emu.world.floor(A6000, "COMMUNITY")
    lowered = env.config(SERVICE_A6000 + f"max_price = {round(floor - 0.02, 3)}\n")
    env.emu.advance(300)
    report = env.tick(lowered)
    assert report.jobs[0].state == "waiting" and pod.desired_status == "EXITED", report.jobs[0].message
    assert env.kinds("train") == ["rent_spot:ok", "stop:ok"]
    env.emu.advance(300)
    again = env.tick(lowered)  # waits on its stopped pod: no interruption, nothing sent
    assert again.jobs[0].state == "waiting" and again.jobs[0].pod_id == pod.id, again.jobs[0]
    assert env.kinds("train") == ["rent_spot:ok", "stop:ok"] and env.store.job_state("train")["interruptions"] == 0


def test_a_cap_stop_whose_answer_is_lost_keeps_the_job_on_its_pod(env):
    pod, cap = _running_with_room_under_its_bid(env)
    lowered = env.config(SERVICE_A6000 + f"max_price = {cap}\n")
    env.emu.advance(300)
    # The stop executes; every answer to it (and its retries) is an error. Nothing is sent after an
    # unconfirmed stop.
    env.emu.malform("podStop", {"errors": [{"message": "Something went wrong. Please try again later."}]},
                    status=500, execute=True, times=None)
    first = env.tick(lowered, advise=spot_at(cap))
    assert pod.desired_status == "EXITED" and env.kinds("train") == ["rent_spot:ok", "stop:error"], first.jobs[0]
    env.emu.clear_malformed()
    env.emu.advance(300)
    # The next tick reads the exit as bidder's own stop and bid-resumes the same pod (its volume, its
    # work) under the cap: the job does not rent a new pod and leave the old one stopped.
    report = env.tick(lowered, advise=spot_at(cap))
    assert report.jobs[0].state == "running", report.jobs[0].message
    assert env.kinds("train") == ["rent_spot:ok", "stop:error", "bid_resume:ok"]
    assert the_pod(env) is pod and pod.desired_status == "RUNNING" and pod.bid == pytest.approx(cap)
    assert len(env.emu.world.pods) == 1 and env.store.job_state("train")["interruptions"] == 0


def test_an_interruption_moves_the_job_to_on_demand_when_the_policy_says_so(env):
    config = env.config(SERVICE_A6000 + "volume = 20\non_finish = \"terminate\"\n")
    env.tick_until(config, running)
    old = the_pod(env)
    env.emu.advance(300)
    env.emu.world.set_floor(A6000, "COMMUNITY", 0.5)  # outbid...
    env.emu.advance(300)
    # ...and the user, tired of interruptions, changes bidder.toml to on-demand only.
    config = env.config(SERVICE_A6000.replace('"high"', '"none"') + "volume = 20\non_finish = \"terminate\"\n")
    report = env.tick(config)
    job = report.jobs[0]
    assert job.state == "running" and f"moved to {named(env.store, 'bidder-train', 2)}" in job.message
    assert "on-demand" in job.message
    assert "the volume stays with the old pod" in job.message
    new = the_pod(env)  # the old one is terminated: one pod for one job
    assert new.id != old.id and new.pod_type == "RESERVED" and new.gpu_type_id == A6000
    assert old.desired_status == "TERMINATED"
    assert env.kinds("train") == ["rent_spot:ok", "terminate:ok", "deploy_on_demand:ok"]  # ended first
    assert env.store.pod(old.id)["state"] == "retired"
    assert [p["pod_id"] for p in env.store.managed_pods("train", states=["active"])] == [new.id]


def test_a_move_whose_old_pod_cannot_be_ended_rents_nothing_until_it_is(env):
    config = env.config(SERVICE_A6000 + "on_finish = \"terminate\"\n")
    env.tick_until(config, running)
    old = the_pod(env)
    env.emu.advance(300)
    env.emu.world.set_floor(A6000, "COMMUNITY", 0.5)  # outbid, and the user turns to on-demand
    env.emu.advance(300)
    config = env.config(SERVICE_A6000.replace('"high"', '"none"') + "on_finish = \"terminate\"\n")
    env.emu.malform("podTerminate", {"errors": [{"message": "Something went wrong. Please try again later."}]},
                    status=500, execute=False, times=None)
    job = env.tick(config).jobs[0]
    assert job.state == "waiting" and "could not be ended" in job.message, job.message
    # The stopped spot pod was not ended, so nothing new was rented beside it (it could be resumed).
    assert list(env.emu.world.pods) == [old.id] and old.desired_status == "EXITED"
    assert env.kinds("train") == ["rent_spot:ok", "terminate:error"]
    env.emu.clear_malformed()
    env.emu.advance(300)
    job = env.tick(config).jobs[0]
    assert job.state == "running" and f"moved to {named(env.store, 'bidder-train', 2)}" in job.message, job.message
    assert old.desired_status == "TERMINATED" and len(env.emu.world.pods) == 2
    assert env.kinds("train") == ["rent_spot:ok", "terminate:error", "terminate:ok", "deploy_on_demand:ok"]


def test_a_job_whose_stop_fails_leaves_the_other_jobs_handled(env):
    both = SERVICE_A6000.replace('"high"', '"none"') + SERVICE_A6000.replace("jobs.train", "jobs.other").replace(
        '"high"', '"none"')
    config = env.config(both)
    assert [j.state for j in env.tick(config).jobs] == ["running", "running"]
    env.emu.advance(600)
    env.store.save_job_state("train", stop_requested=True)  # what `bidder jobs stop train` writes
    [other] = [p for p in env.live_pods() if p.name == named(env.store, "bidder-other", 1)]
    other.desired_status = "EXITED"  # and RunPod stops the other job's pod meanwhile
    env.emu.malform("podStop", {"errors": [{"message": "Something went wrong. Please try again later."}]},
                    status=500, execute=False, times=None)
    report = env.tick(config)
    train, second = report.jobs
    assert train.state == "error" and "podStop" in train.message and "next tick" in train.message
    assert second.state in ("running", "waiting") and second.name == "other"  # handled all the same
    assert any(e["event"] == "error" and e["job"] == "train" for e in report.events)
    env.emu.clear_malformed()
    env.emu.advance(600)
    assert env.tick(config).jobs[0].state == "finished"  # the stop goes through at the next tick
    assert [p.name for p in env.running()] in ([], [named(env.store, "bidder-other", 1)],
                                               [named(env.store, "bidder-other", 2)])


def test_a_pod_terminated_outside_bidder_holds_the_job_instead_of_relaunching(env):
    config = env.config(SERVICE_A6000.replace('"high"', '"none"'))
    env.tick_until(config, running)
    pod = the_pod(env)
    env.client.terminate(pod.id)  # the user ends it in RunPod's console
    env.emu.advance(600)
    job = env.tick(config).jobs[0]
    assert job.state == "held" and "terminated outside bidder" in job.message, job.message
    assert env.live_pods() == [] and env.kinds("train") == ["deploy_on_demand:ok"]  # nothing rented again
    env.emu.advance(600)
    assert env.tick(config).jobs[0].state == "held" and env.live_pods() == []


def test_spot_gone_and_on_demand_not_allowed_says_so_not_collect_more_history(env):
    """It said "no on-demand price and no spot history (collect more history)": neither helps."""
    env.emu.set_spot_enabled(False)  # RunPod after spot: no minimumBidPrice anywhere
    config = env.config('spot_recheck = "2h"\n' + SERVICE_A6000 + "allow_on_demand = false\n")
    job = env.tick(config).jobs[0]
    assert job.state == "waiting" and env.emu.world.pods == {}, job.message
    since = env.store.settings_get(SPOT_FLAG)
    assert job.message == (f"RunPod no longer offers spot (interruptable) pods for this account (since {since}) and "
                           "the job has allow_on_demand = false: nothing can run until spot is back (looked for once "
                           "2.0h have passed since) or on-demand is allowed"), job.message
    # The spot price fields gone too: no snapshot can show spot back, so no recheck is promised.
    env.emu.set_spot_enabled(False, fields=False)
    env.emu.advance(600)
    job = env.tick(config).jobs[0]
    assert job.state == "waiting" and env.emu.world.pods == {}, job.message
    assert "(RunPod's answers carry no spot prices at all now) or on-demand is allowed" in job.message, job.message


def test_the_budget_stops_a_running_pod(env):
    # On-demand A6000 in community cloud costs 0.33/h; 10 h of work fits a 3.5 USD budget, which the
    # user cuts to 2.0 after 4 h: the pod must stop once spend + the next hour would pass it (~5.1 h).
    job = SERVICE_A6000.replace("keep_running = true", "hours = 10").replace('"high"', '"none"')
    reports = env.run(env.config(job + "budget = 3.5\n"), minutes=4 * 60, every=15)
    reports += env.run(env.config(job + "budget = 2.0\n"), minutes=3 * 60, every=15)
    pod = next(iter(env.emu.world.pods.values()))
    assert pod.pod_type == "RESERVED" and pod.desired_status == "EXITED"
    states = [r.jobs[0].state for r in reports]
    stop_at = states.index("budget_stopped")
    assert set(states[:stop_at]) == {"running"} and set(states[stop_at:]) == {"budget_stopped"}
    assert env.kinds("train") == ["deploy_on_demand:ok", "stop:ok"]
    spent = env.emu.world.true_spend(pod.id)
    assert spent <= 2.0 - 0.33 + 0.33 * 0.25 + 1e-6  # stopped within one tick of the threshold
    assert spent > 2.0 - 0.33 - 0.33 * 0.25 - 1e-6
    assert env.store.job_state("train")["spent"] == pytest.approx(spent, rel=1e-3)
    assert reports[-1].jobs[0].message.startswith("budget")
    # A budget raise resumes the job on its own pod (its volume, its work), never on a second one with
    # the stopped pod left behind (a new pod was rented, the old one abandoned, before).
    raised = env.tick(env.config(job + "budget = 5.0\n")).jobs[0]
    assert raised.state == "running" and raised.pod_id == pod.id, raised.message
    assert list(env.emu.world.pods) == [pod.id] and pod.desired_status == "RUNNING"
    assert env.kinds("train") == ["deploy_on_demand:ok", "stop:ok", "resume:ok"]


def test_a_runpod_budget_cut_under_the_spend_stops_the_pod_without_a_storage_alarm(env):
    # Its stopped pod bills nothing bidder counts: every later tick failed with "its kept instance's
    # storage bills on: delete it (and its disk)", which is Vast's (a RunPod pod's spend stops with it).
    job = SERVICE_A6000.replace("keep_running = true", "hours = 10").replace('"high"', '"none"')
    env.run(env.config(job + "budget = 5\n"), minutes=3 * 60, every=15)
    cut = env.config(job + "budget = 0.5\n")  # about $1 spent by now
    first = env.tick(cut).jobs[0]
    assert first.state == "budget_stopped", first.message
    for _ in range(2):
        env.emu.advance(900)
        later = env.tick(cut).jobs[0]
        assert later.state == "budget_stopped" and later.over_budget is None, later
        assert later.message.endswith("(over the budget: it was set under what was already spent)"), later.message


def test_spot_removed_falls_back_to_on_demand_and_is_remembered_until_a_recheck(env):
    config = env.config('spot_recheck = "2h"\n' + SERVICE_A6000)
    env.tick_until(config, running)
    old = the_pod(env)
    env.emu.advance(300)
    env.tick(config)  # a fresh snapshot that still shows spot prices
    # At this instant RunPod outbids the pod and drops the spot mutations from its API.
    env.emu.world.set_floor(A6000, "COMMUNITY", 5.0)
    env.emu.set_spot_enabled(False)
    report = env.tick(config)  # prices still show spot: it tries podBidResume, which the API no longer knows
    job = report.jobs[0]
    assert job.state == "running", job.message
    assert job.message.startswith("RunPod no longer offers spot (interruptable) pods for this account; moved to "
                                  + named(env.store, "bidder-train", 2)) and "on-demand" in job.message
    assert env.kinds("train") == ["rent_spot:ok", "bid_resume:error", "stop:ok", "deploy_on_demand:ok"]
    assert "podBidResume" in env.store.actions("train")[1]["error"]
    assert any(e["event"] == "spot_unsupported" for e in report.events)
    assert env.store.settings_get(SPOT_FLAG) == to_iso(env.emu.now)
    new = env.running()[0]
    assert new.pod_type == "RESERVED" and old.desired_status == "EXITED"
    # Later ticks offer no spot, even once RunPod shows spot prices again, until the recheck is due.
    env.emu.set_spot_enabled(True)
    env.emu.world.release_floor(A6000, "COMMUNITY")
    env.emu.advance(3600)
    report = env.tick(config)
    assert report.collected and env.store.settings_get(SPOT_FLAG) is not None
    env.emu.advance(3600)
    report = env.tick(config)
    assert any(e["event"] == "spot_recheck" for e in report.events)
    assert env.store.settings_get(SPOT_FLAG) is None


def test_a_snapshot_without_any_spot_price_means_spot_is_gone(env):
    env.emu.set_spot_enabled(False)  # RunPod after spot: no minimumBidPrice anywhere
    config = env.config(SERVICE_A6000)
    report = env.tick(config)
    assert any(e["event"] == "spot_unsupported" and "no GPU type shows a spot price" in e["message"]
               for e in report.events)
    assert env.store.settings_get(SPOT_FLAG) is not None
    assert report.jobs[0].state == "running" and the_pod(env).pod_type == "RESERVED"
    assert env.kinds("train") == ["deploy_on_demand:ok"]


def test_a_create_whose_answer_is_lost_leaves_exactly_one_pod(env):
    config = env.config(SERVICE_A6000)
    env.emu.set_faults("lost_create=1")  # every create runs, and its answer never arrives
    report = env.tick_until(config, running)
    assert report.jobs[0].state == "running", report.jobs[0].message
    pod = the_pod(env)
    assert pod.name == named(env.store, "bidder-train", 1)
    assert [e["event"] for e in report.events if e["event"] in ("rent_spot", "adopted")] == ["adopted"]
    action = env.store.actions("train")[-1]
    assert (action["kind"], action["outcome"], action["pod_id"]) == ("rent_spot", "ok", pod.id)
    for _ in range(3):  # later ticks see the adopted pod: nothing is created again
        env.emu.advance(300)
        assert env.tick(config).jobs[0].state == "running"
    assert len(env.emu.world.pods) == 1
    assert env.store.job_state("train")["attempts"] == 1


def lost_create(env, name: str = "bidder-train-1"):
    """What a tick that died after sending train's spot create leaves: the name reserved, the create's
    action pending, and the pod (it landed). Returns (that action's id, the pod)."""
    from bidder.runpod import PodSpec

    env.store.save_job_state("train", attempts=1, pending_name=name, pending_since=env.emu.now)
    action = env.store.begin_action(env.emu.now, job="train", kind="rent_spot", gpu_type_id=A6000, cloud="COMMUNITY",
                                    gpu_count=1, bid_per_gpu=0.2)
    pod = env.client.rent_interruptable(PodSpec(name=name, image_name="runpod/pytorch:latest", gpu_type_id=A6000,
                                                cloud_type="COMMUNITY"), 0.2)
    return action, pod


def test_a_create_left_pending_by_a_crash_is_adopted_at_the_next_tick(env):
    config = env.config(SERVICE_A6000)
    # A previous tick reserved the name and sent the create, then died before recording the pod.
    _, created = lost_create(env)
    env.emu.advance(300)
    report = env.tick(config)
    assert report.jobs[0].state == "running"
    assert [p.id for p in env.live_pods()] == [created.id]
    # Adopted, then decided again as any running spot pod: its $0.20 bid (the lost create's) is re-bid on
    # the same pod, never a second one.
    assert env.kinds("train") == ["rent_spot:ok", "stop:ok", "bid_resume:ok"]
    assert {a["pod_id"] for a in env.store.actions("train")} == {created.id}
    state = env.store.job_state("train")
    assert state["pod_id"] == created.id and "pending_name" not in state


def test_a_create_finished_but_not_adopted_keeps_its_bid_type_and_cloud(env):
    config = env.config(SERVICE_A6000)
    # A process died after it finished the create's action (with the pod's id) and before it wrote the
    # pod's row: adopted by its name, the pod lost its bid ("$0.000/GPU-h"), type and cloud ("ALL"),
    # and a lowered max_price was never held against it.
    action, created = lost_create(env)
    env.store.finish_action(action, outcome="ok", pod_id=created.id, ts=env.emu.now)
    env.emu.advance(300)
    line = env.tick(config).jobs[0]
    assert line.state == "running"
    # Adopted with the create's bid ($0.20, not $0.000), type and cloud; then decided again at that bid.
    assert line.message.startswith("its spot pod at $0.200/GPU-h decided again (RTX A6000 spot at $"), line.message
    row = env.store.pod(created.id)
    assert (row["gpu_type_id"], row["cloud"]) == (A6000, "COMMUNITY")
    assert row["bid_per_gpu"] == env.store.actions("train")[-1]["bid_per_gpu"] < 0.2
    assert [p.id for p in env.live_pods()] == [created.id]

def test_a_lost_create_of_a_job_renamed_since_is_found_and_watched(env):
    # train's create got no answer; then the user renamed the job to train2. Nothing looked for
    # bidder-train-1 any more: the pod billed unseen by pods, report and `bidder stop`.
    _, created = lost_create(env)
    env.emu.advance(300)
    report = env.tick(env.config(SERVICE_A6000.replace("[jobs.train]", "[jobs.train2]")))
    row = env.store.pod(created.id)
    assert row is not None and (row["job"], row["state"], row["bid_per_gpu"]) == ("train", "active", 0.2)
    adopted = [e for e in report.events if e["event"] == "adopted"]
    assert adopted and "job train, which is no longer in bidder.toml" in adopted[0]["message"], adopted
    assert any(e["event"] == "unmanaged" and e["pod_id"] == created.id for e in report.events)

def test_a_lost_create_during_a_move_is_adopted_and_the_old_pod_retired(env):
    from bidder.runpod import PodSpec

    config = env.config(SERVICE_A6000)
    env.tick_until(config, running)
    old = the_pod(env)
    env.emu.world.set_floor(A6000, "COMMUNITY", 5.0)  # interrupted; a tick then tried to move the job...
    env.store.save_job_state("train", attempts=2, pending_name="bidder-train-2", pending_since=env.emu.now)
    moved = env.client.deploy_on_demand(PodSpec(name="bidder-train-2", image_name="runpod/pytorch:latest",
                                                gpu_type_id=A6000, cloud_type="COMMUNITY"))
    # ...and died after the create reached RunPod, before it could record the new pod.
    env.emu.advance(300)
    report = env.tick(config)
    assert report.jobs[0].state == "running", report.jobs[0].message
    assert [p.id for p in env.running()] == [moved.id]
    assert [p.id for p in env.live_pods()] == [old.id, moved.id] and old.desired_status == "EXITED"
    assert env.store.pod(old.id)["state"] == "retired"
    assert [p["pod_id"] for p in env.store.managed_pods("train", states=["active"])] == [moved.id]
    assert [a for a in env.kinds("train") if a.startswith(("rent_spot", "deploy"))] == ["rent_spot:ok"]
    assert len(env.emu.world.pods) == 2  # nothing else was created


def test_finished_work_terminates_the_pod_per_on_finish(env):
    config = env.config(SERVICE_A6000.replace("keep_running = true", "hours = 1").replace('"high"', '"none"')
                        + 'on_finish = "terminate"\n')
    reports = env.run(config, minutes=90, every=10)
    states = [r.jobs[0].state for r in reports]
    assert states[0] == "running" and states[-1] == "finished"
    assert "work done" in reports[-1].jobs[0].message
    pod = next(iter(env.emu.world.pods.values()))
    assert pod.desired_status == "TERMINATED"
    assert env.kinds("train") == ["deploy_on_demand:ok", "terminate:ok"]
    # Work is counted from observed uptime: the pod ran one hour (to the tick), no more.
    assert env.emu.world.true_spend(pod.id) == pytest.approx(0.33 * 1.0, rel=0.01)
    assert env.store.job_state("train")["state"] == "finished"
    # `hours` raised afterwards: the line says the job stays finished (it repeated "of 1 h").
    more = env.config(SERVICE_A6000.replace("keep_running = true", "hours = 2").replace('"high"', '"none"')
                      + 'on_finish = "terminate"\n')
    line = env.tick(more).jobs[0]
    assert line.state == "finished" and line.message.endswith(
        "; bidder.toml now asks 2 h, but a finished job is not run again: give it a new name to run more"), line.message
    assert env.kinds("train") == ["deploy_on_demand:ok", "terminate:ok"]


def test_on_finish_set_to_terminate_after_the_job_finished_deletes_its_kept_pod(env):
    # The edit did nothing: the stopped pod (on Vast, its disk) billed on, the line said nothing.
    job = SERVICE_A6000.replace("keep_running = true", "hours = 1").replace('"high"', '"none"')
    env.run(env.config(job), minutes=90, every=10)
    [pod] = env.emu.world.pods.values()
    assert pod.desired_status == "EXITED" and env.store.job_state("train")["state"] == "finished"
    line = env.tick(env.config(job + 'on_finish = "terminate"\n')).jobs[0]
    assert line.state == "finished" and line.message.endswith(f'; pod {pod.id} deleted (on_finish = "terminate")')
    assert pod.desired_status == "TERMINATED" and env.kinds("train") == ["deploy_on_demand:ok", "stop:ok", "terminate:ok"]
    env.emu.advance(600)
    again = env.tick(env.config(job + 'on_finish = "terminate"\n')).jobs[0]
    assert "deleted" not in again.message and env.kinds("train")[-1] == "terminate:ok"  # once
    # Turned into a service afterwards: said, as for more hours.
    service = env.tick(env.config(SERVICE_A6000.replace('"high"', '"none"'))).jobs[0]
    assert service.state == "finished" and service.message.endswith(
        "; bidder.toml now keeps it running, but a finished job is not run again: give it a new name to run it as "
        "a service"), service.message


def test_a_pod_stopped_outside_bidder_holds_the_job(env):
    config = env.config(SERVICE_A6000)
    env.tick_until(config, running)
    pod = the_pod(env)
    env.client.stop(pod.id)  # the user, in RunPod's console
    env.emu.advance(300)
    report = env.tick(config)
    assert report.jobs[0].state == "held" and "stopped outside bidder" in report.jobs[0].message
    env.emu.advance(300)
    assert env.tick(config).jobs[0].state == "held"
    assert env.kinds("train") == ["rent_spot:ok"]  # never restarted against the user's wish


def test_max_spend_per_hour_caps_all_jobs_together(env):
    text = f"""max_spend_per_hour = 0.5

[defaults]
tolerance = "none"
keep_running = true
image = "img"

[jobs.a]
gpu = ["{A6000}"]
cloud = "community"

[jobs.b]
gpu = ["{RTX4090}"]
cloud = "community"
"""
    report = env.tick(env.config(text))
    states = {j.name: j.state for j in report.jobs}
    assert states == {"a": "running", "b": "waiting"}
    assert "max_spend_per_hour" in report.jobs[1].message
    assert len(env.running()) == 1
    refused = [e for e in report.events if e["event"] == "refused"]
    assert refused and refused[0]["job"] == "b"


def test_a_deadline_without_slack_goes_on_demand_from_the_start(env):
    # 10 h of work due in 10.2 h: no room for an interruption, so the policy says on-demand.
    config = env.config(JOB + 'hours = 10\ndeadline = "10.2h"\ntolerance = "high"\ncloud = "community"\n')
    report = env.tick(config)
    assert report.jobs[0].state == "running"
    pod = the_pod(env)
    assert pod.pod_type == "RESERVED" and pod.gpu_type_id == A6000  # the cheapest on-demand of the three


def test_a_relative_deadline_counts_from_the_first_tick_that_saw_the_job_not_from_a_launch(env):
    # A job whose plan waits (spot above its cap, no on-demand) loses its window as it waits: counted
    # from a launch that never came, every tick gave it the whole 7 h again and it waited for ever.
    env.emu.world.set_floor(A6000, "COMMUNITY", 0.6)
    config = env.config(f'[jobs.late]\ngpu = ["{A6000}"]\ncloud = "community"\nimage = "img"\nhours = 6\n'
                        'deadline = "7h"\nmax_price = 0.3\nallow_on_demand = false\n')
    first = env.emu.now
    reports = env.run(config, minutes=120, every=30)
    assert reports[0].jobs[0].state == "waiting" and not reports[0].jobs[0].blocked
    assert env.emu.world.pods == {}
    report = env.tick(config)  # 2 h after the first tick: 6 h of work no longer fit in the 5 h left
    assert report.jobs[0].blocked and "cannot finish in the 5.0 h before the deadline" in report.jobs[0].blocked
    listing = CliRunner().invoke(main, ["jobs", "--config", str(env.tmp / "bidder.toml"), "--db", str(env.store.path),
                                        "--format", "json"])
    assert listing.exit_code == 0, listing.output
    assert json.loads(listing.stdout)[0]["deadline"] == to_iso(first + timedelta(hours=7))  # the one the tick used
    table = CliRunner().invoke(main, ["jobs", "--config", str(env.tmp / "bidder.toml"), "--db", str(env.store.path)])
    assert to_iso(first + timedelta(hours=7)) in table.stdout


def test_a_job_a_tick_ran_before_first_seen_was_kept_counts_its_deadline_from_its_first_launch(env):
    # (a ledger of an earlier bidder: its deadline never moves later than it was)
    launched = env.emu.now - timedelta(hours=2)
    env.store.save_job_state("late", state="waiting", started=launched)
    config = env.config(f'[jobs.late]\ngpu = ["{A6000}"]\ncloud = "community"\nimage = "img"\nhours = 6\n'
                        'deadline = "7h"\n')
    report = env.tick(config)
    assert report.jobs[0].blocked and "cannot finish in the 5.0 h before the deadline" in report.jobs[0].blocked
    assert env.store.job_state("late")["first_seen"] == to_iso(launched)


def test_a_second_tick_while_one_holds_the_lock_raises_lock_held(env):
    from bidder.errors import LockHeld

    config = env.config(SERVICE_A6000)
    with env.store.exclusive_lock("tick"), pytest.raises(LockHeld):
        run_tick(env.client, env.store, config, env.emu.now)
    assert env.emu.world.pods == {}


def test_dry_run_tick_sends_nothing_and_records_dry_run_actions(env):
    config = env.config(SERVICE_A6000.replace('"high"', '"none"'))
    report = env.tick(config, dry_run=True)
    assert report.jobs[0].state == "dry_run" and "would launch" in report.jobs[0].message
    assert env.emu.world.pods == {}
    assert env.kinds("train") == ["deploy_on_demand:dry_run"]
    assert env.store.job_state("train") is None or "attempts" not in env.store.job_state("train")
    assert all(e.get("dry_run") for e in report.events)


def test_interruptions_are_counted_once_while_waiting(env):
    config = env.config(SERVICE_A6000 + "max_price = 0.2\n")
    env.tick_until(config, running)
    env.emu.world.set_floor(A6000, "COMMUNITY", 0.5)
    for _ in range(4):
        env.emu.advance(timedelta(minutes=5).total_seconds())
        env.tick(config)
    assert env.store.job_state("train")["interruptions"] == 1


def test_a_job_started_without_history_moves_from_on_demand_to_spot_once_spot_pays(emulator, client, tmp_path):
    # A new user: no price history at the first tick, so on-demand, and the reason says why. On-demand
    # is not a one-way door: once the collector has history, the keep-or-switch rule moves the job to
    # spot (the on-demand pod is stopped first: never two pods for one job).
    emulator.world.reclaim_rate_per_hour = 0.0
    env = make_env(emulator, client, tmp_path, history=False)
    try:
        config = env.config(f'[jobs.train]\ngpu = ["{A6000}"]\ncloud = "community"\nhours = 40\n'
                            'tolerance = "high"\nimage = "runpod/pytorch:latest"\n')
        first = env.tick(config)
        assert first.jobs[0].state == "running"
        pod = the_pod(env)
        assert pod.pod_type == "RESERVED"
        reason = next(e["reason"] for e in env.events if e["event"] == "deploy_on_demand")
        assert reason == ("RTX A6000 on-demand at $0.330: no interruptions, "
                          "not enough price history for spot yet: 1 of 12 samples")
        # Each tick after a dry run of it: the dry run before the move shows it (it said "running" and
        # sent nothing, as a preview should not).
        for _ in range(30 * 12):
            dry = env.tick(config, dry_run=True).jobs[0]
            moved = env.tick(config)
            if any(p.pod_type == "INTERRUPTABLE" for p in env.running()):
                break
            assert dry.state == "running", dry.message
            env.emu.advance(300)
        assert moved.jobs[0].state == "running"
        assert dry.state == "dry_run" and dry.message.startswith(f"would stop pod {pod.id} (podStop): "), dry.message
        assert "(not sent: dry run); then would launch: spot NVIDIA RTX A6000 (COMMUNITY, runpod) bid $" \
            in dry.message, dry.message
        running = env.running()
        assert len(running) == 1 and running[0].pod_type == "INTERRUPTABLE"
        assert pod.desired_status in ("EXITED", "TERMINATED")  # the on-demand pod was stopped
        sent = [k for k in env.kinds("train") if not k.endswith(":dry_run")]
        assert sent[:3] == ["deploy_on_demand:ok", "stop:ok", "rent_spot:ok"]
    finally:
        env.store.close()


def test_an_on_demand_pod_adopted_from_a_lost_create_shows_its_rate_at_once(env):
    """Adopted at this tick, the pod has no poll yet: its line said "$0.000/h" (and the budget guard
    looked no hour ahead) until the next tick; the rate is the listing's."""
    from bidder.runpod import PodSpec

    config = env.config(ON_DEMAND_SERVICE)
    name = "bidder-train-1"  # (as `lost_create`: the name a dead tick reserved)
    env.store.save_job_state("train", attempts=1, pending_name=name, pending_since=env.emu.now)
    env.store.begin_action(env.emu.now, job="train", kind="deploy_on_demand", gpu_type_id=A6000,
                           cloud="COMMUNITY", gpu_count=1)
    created = env.client.deploy_on_demand(PodSpec(name=name, image_name="runpod/pytorch:latest", gpu_type_id=A6000,
                                                  cloud_type="COMMUNITY"))
    env.emu.advance(300)
    report = env.tick(config)
    assert report.jobs[0].state == "running" and [p.id for p in env.live_pods()] == [created.id]
    assert created.cost_per_hr and created.cost_per_hr > 0
    assert f"on-demand: ${created.cost_per_hr:.3f}/h" in report.jobs[0].message, report.jobs[0].message


def test_the_interruption_budget_counts_from_the_first_tick_that_saw_the_job_as_a_backtest_counts_it(env):
    # 1.5 interruptions a day over a 2-day window is a budget of 3. The job waits a day (spot over its cap),
    # then runs and is interrupted once: 1 of 3 used, so spot goes on. Counted from its first launch, the
    # window was a day, its budget 1.5 ("under one left, no more spot"): on-demand for the rest.
    env.emu.world.set_floor(A6000, "COMMUNITY", 0.6)
    config = env.config(f'[jobs.w]\ngpu = ["{A6000}"]\ncloud = "community"\nimage = "img"\nhours = 4\n'
                        'deadline = "48h"\ntolerance = 1.5\nmax_price = 0.5\n')
    reports = env.run(config, minutes=24 * 60, every=60)  # (ticked hourly: a gap in the prices takes the deadline early)
    assert {r.jobs[0].state for r in reports} == {"waiting"}  # spot over the cap, on-demand not needed yet
    env.emu.world.release_floor(A6000, "COMMUNITY")
    env.tick_until(config, lambda r: r.jobs[0].state == "running", hours=2)
    pod = the_pod(env)
    assert pod.pod_type == "INTERRUPTABLE", env.store.actions("w")[-1]["reason"]
    env.emu.advance(600)
    env.emu.world.set_floor(A6000, "COMMUNITY", round(pod.bid + 0.03, 3))  # outbid once
    env.emu.advance(300)
    env.emu.world.release_floor(A6000, "COMMUNITY")
    env.tick_until(config, lambda r: r.jobs[0].state == "running", hours=2)
    assert env.store.job_state("w")["interruptions"] == 1
    assert env.kinds("w")[-1] in ("bid_resume:ok", "rent_spot:ok"), [a["reason"] for a in env.store.actions("w")]
