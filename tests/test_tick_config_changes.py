"""bidder.toml edited while a job's pod runs: the running-pod guard holds the pod to the config as it
stands at each tick. An on-demand pod priced above a lowered `max_price` is stopped (also one adopted
from a lost create at that tick); a pod whose GPU type, market or kind the config no longer allows is
replaced as any move is (the old pod ended first: never two); a change the pod still satisfies moves
nothing; and a paused Vast instance is destroyed when the job waits on a plan that does not take its
standing bid (it would resume by itself). Against the emulator over HTTP, real SQLite, the real tick."""

from __future__ import annotations

import pytest
from executor_helpers import A6000, RTX4090, make_env, named
from two_markets import VAST4090, runpod_live, tick, vast_live

from bidder.report.data import spend_report
from bidder.runpod import PodSpec

ON_DEMAND = f"""
[jobs.o]
gpu = ["{A6000}"]
cloud = "community"
market = "runpod"
keep_running = true
allow_spot = false
image = "runpod/pytorch:latest"
"""

SPOT = """
[jobs.s]
gpu = ["{gpu}"]
cloud = "community"
market = "runpod"
keep_running = true
tolerance = "{tolerance}"
max_price = {max_price}
image = "runpod/pytorch:latest"
{extra}
"""


def spot_job(gpu: str = A6000, tolerance: str = "high", max_price: float = 0.6, extra: str = "") -> str:
    return SPOT.format(gpu=gpu, tolerance=tolerance, max_price=max_price, extra=extra)


@pytest.fixture
def env(emulator, client, tmp_path):
    emulator.world.reclaim_rate_per_hour = 0.0  # only the interruptions a test makes
    e = make_env(emulator, client, tmp_path)
    yield e
    e.store.close()


def running_pods(env) -> list:
    return [p for p in env.emu.world.pods.values() if p.desired_status == "RUNNING"]


def until_running(env, config, job: str):
    for _ in range(100):
        if env.tick(config).jobs[0].state == "running":
            [pod] = running_pods(env)
            return pod
        env.emu.advance(300)
    raise AssertionError(f"job {job} never ran")


# -- an on-demand pod above a lowered max_price -------------------------------------------------
def test_an_on_demand_pod_above_a_lowered_max_price_is_stopped_and_the_job_waits(env):
    pod = until_running(env, env.config(ON_DEMAND + "max_price = 0.5\n"), "o")
    assert pod.pod_type == "RESERVED" and pod.cost_per_hr > 0.1
    lowered = env.config(ON_DEMAND + "max_price = 0.1\n")
    env.emu.advance(600)
    line = env.tick(lowered).jobs[0]
    assert line.state == "waiting", line.message
    assert line.message.startswith("the running pod no longer matches bidder.toml: its on-demand price "
                                   f"${pod.cost_per_hr:.3f}/GPU-h is above the max price $0.100; pod {pod.id} stopped")
    assert running_pods(env) == [] and pod.desired_status == "EXITED"
    assert env.kinds("o") == ["deploy_on_demand:ok", "stop:ok"]
    env.emu.advance(600)
    again = env.tick(lowered).jobs[0]  # waits on its stopped pod: nothing sent, nothing running
    assert again.state == "waiting" and running_pods(env) == [] and env.kinds("o")[2:] == [], again.message
    assert env.store.job_state("o")["interruptions"] == 0  # bidder's own stop
    # The cap raised again: the job's own pod is resumed (its volume), not a new one rented.
    env.emu.advance(600)
    back = env.tick(env.config(ON_DEMAND + "max_price = 0.5\n")).jobs[0]
    assert back.state == "running" and running_pods(env) == [pod], back.message


def test_an_on_demand_pod_adopted_from_a_lost_create_above_the_cap_is_stopped_at_that_tick(env):
    # A tick sent an on-demand create under a cap of 0.5 and died before recording it; the user lowered
    # max_price to 0.1 since. The next tick adopts the pod by its name: the job's pod, held to the cap.
    env.store.save_job_state("o", attempts=1, pending_name="bidder-o-1", pending_since=env.emu.now)
    env.store.begin_action(env.emu.now, job="o", kind="deploy_on_demand", gpu_type_id=A6000, cloud="COMMUNITY",
                           gpu_count=1)
    late = env.client.deploy_on_demand(PodSpec(name="bidder-o-1", image_name="runpod/pytorch:latest",
                                               gpu_type_id=A6000, cloud_type="COMMUNITY"))
    env.emu.advance(300)
    report = env.tick(env.config(ON_DEMAND + "max_price = 0.1\n"))
    line = report.jobs[0]
    assert any(e["event"] == "adopted" and e["pod_id"] == late.id for e in report.events)
    assert line.state == "waiting" and "is above the max price $0.100" in line.message, line.message
    assert running_pods(env) == [] and env.emu.world.pods[late.id].desired_status == "EXITED"
    assert [p["pod_id"] for p in env.store.managed_pods("o", states=["active"])] == [late.id]


# -- gpu, market, allow_spot or tolerance changed while a pod runs ------------------------------
def test_a_running_spot_pod_moves_when_gpu_and_allow_spot_change(env):
    old = until_running(env, env.config(spot_job(A6000)), "s")
    assert old.pod_type == "INTERRUPTABLE"
    env.emu.advance(600)
    changed = env.config(spot_job(RTX4090, extra="allow_spot = false"))
    line = env.tick(changed).jobs[0]
    assert line.state == "running", line.message
    assert line.message.startswith(f"the running pod no longer matches bidder.toml: its GPU {A6000} is not in gpu "
                                   f"['{RTX4090}']; it is spot, and allow_spot = false; moved to {named(env.store, 'bidder-s', 2)} on "
                                   f"{RTX4090}"), line.message
    [new] = running_pods(env)  # one pod for the job, the one the config allows
    assert (new.gpu_type_id, new.pod_type) == (RTX4090, "RESERVED") and new.cost_per_hr <= 0.6 + 1e-9
    assert old.desired_status == "EXITED"
    assert env.kinds("s") == ["rent_spot:ok", "stop:ok", "deploy_on_demand:ok"]  # ended first, then rented
    env.emu.advance(600)
    assert env.tick(changed).jobs[0].state == "running" and running_pods(env) == [new]


def test_tolerance_none_moves_a_running_spot_pod_to_on_demand(env):
    old = until_running(env, env.config(spot_job(extra='on_finish = "terminate"')), "s")
    env.emu.advance(600)
    line = env.tick(env.config(spot_job(tolerance="none", extra='on_finish = "terminate"'))).jobs[0]
    assert line.state == "running" and 'it is spot, and tolerance = "none"' in line.message, line.message
    [new] = running_pods(env)
    assert new.pod_type == "RESERVED" and old.desired_status == "TERMINATED"
    assert [p.id for p in env.live_pods()] == [new.id]


def test_a_change_the_running_pod_still_satisfies_moves_nothing(env):
    pod = until_running(env, env.config(spot_job(max_price=0.6)), "s")
    for _ in range(3):
        env.emu.advance(600)
        line = env.tick(env.config(spot_job(max_price=0.9, extra='min_savings = 0.1\nrestart_overhead = "20m"'))).jobs[0]
        assert line.state == "running" and line.message.startswith("running on"), line.message
    assert running_pods(env) == [pod] and env.kinds("s") == ["rent_spot:ok"]


def test_a_running_pod_with_a_removed_gpu_and_nothing_else_fitting_is_stopped(env):
    # Moved to a GPU type whose prices are all above the cap: no new pod, and the old one does not run on.
    pod = until_running(env, env.config(spot_job(A6000)), "s")
    env.emu.advance(600)
    line = env.tick(env.config(spot_job(RTX4090, max_price=0.01))).jobs[0]
    assert line.state == "waiting" and f"its GPU {A6000} is not in gpu" in line.message, line.message
    assert f"pod {pod.id} stopped" in line.message
    assert running_pods(env) == [] and pod.desired_status == "EXITED"


def test_a_vast_job_moved_to_runpod_destroys_its_instance(both):
    env, api = both
    vast = env.config(f'[jobs.v]\ngpu = ["{VAST4090}"]\nmarket = "vast"\nkeep_running = true\ntolerance = "high"\n'
                      'max_price = 0.6\nimage = "pytorch/pytorch"\ndisk = 20\n')
    assert tick(env, api, vast).jobs[0].state == "running"
    [inst] = vast_live(env.emu)
    env.emu.advance(600)
    moved = env.config(f'[jobs.v]\ngpu = ["{RTX4090}"]\nmarket = "runpod"\nkeep_running = true\n'
                       'tolerance = "none"\nmax_price = 0.6\nimage = "pytorch/pytorch"\ndisk = 20\n')
    line = tick(env, api, moved).jobs[0]
    assert line.state == "running" and "it is on vast, and market = 'runpod'" in line.message, line.message
    assert inst.destroyed and vast_live(env.emu) == []
    [pod] = runpod_live(env.emu)
    assert pod.gpu_type_id == RTX4090 and pod.desired_status == "RUNNING" and pod.cost_per_hr <= 0.6 + 1e-9
    env.emu.advance(600)
    assert tick(env, api, moved).jobs[0].state == "running" and vast_live(env.emu) == []
    assert runpod_live(env.emu) == [pod]


# -- a paused Vast instance while the job waits --------------------------------------------------
VAST_SERVICE = f"""
[jobs.v]
gpu = ["{VAST4090}"]
market = "vast"
keep_running = true
tolerance = "high"
max_price = 0.6
budget = {{budget}}
image = "pytorch/pytorch"
disk = 20
"""


def _paused(env, api):
    """Job v's instance, outbid and paused at its standing bid (a competitor on its machine)."""
    config = env.config(VAST_SERVICE.format(budget=60))
    assert tick(env, api, config).jobs[0].state == "running"
    [inst] = vast_live(env.emu)
    machine = int(env.emu.vast.market.machine_id[inst.machine])
    env.emu.vast.set_competitor(machine, 0.59)
    env.emu.advance(600)
    return inst, machine


def test_a_paused_instance_is_destroyed_when_nothing_fits_the_budget_left(both):
    env, api = both
    inst, machine = _paused(env, api)
    # The user lowers the budget: the standing bid's next hour still fits it, but no plan for a day does.
    report = tick(env, api, env.config(VAST_SERVICE.format(budget=2)))
    line = report.jobs[0]
    assert any(e["event"] == "interrupted" for e in report.events)
    assert line.state == "waiting" and "no candidate meets the budget" in line.message, line.message
    assert (f"instance {inst.id} destroyed: paused, it would resume by itself at its standing bid" in line.message)
    assert inst.destroyed and vast_live(env.emu) == []
    env.emu.vast.set_competitor(machine, None)  # its bid would be the highest again
    env.emu.advance(1800)
    assert tick(env, api, env.config(VAST_SERVICE.format(budget=2))).jobs[0].state == "waiting"
    assert vast_live(env.emu) == []  # nothing resumed, nothing rented


def test_a_paused_instance_is_destroyed_when_nothing_meets_the_tolerance(both):
    env, api = both
    inst, machine = _paused(env, api)
    why = "no candidate meets the tolerance: RTX 4090 spot at $0.120 expects 13.6 interruptions/day"
    line = tick(env, api, env.config(VAST_SERVICE.format(budget=60)), advise=lambda *a: why).jobs[0]
    assert line.state == "waiting" and line.message.startswith(why) and inst.destroyed, line.message
    env.emu.vast.set_competitor(machine, None)
    env.emu.advance(1800)
    assert vast_live(env.emu) == []  # it cannot resume by itself and bill


def test_a_kept_instance_destroyed_outside_bidder_is_found_gone_and_stops_billing(both):
    # Stopped at its budget, its disk kept (Vast bills storage), then destroyed in Vast's console: every
    # later tick still took it for there, `pods --all` and `report` kept it billing storage.
    env, api = both
    assert tick(env, api, env.config(VAST_SERVICE.format(budget=60))).jobs[0].state == "running"
    [inst] = vast_live(env.emu)
    env.emu.advance(1800)
    low = env.config(VAST_SERVICE.format(budget=0.05))
    assert tick(env, api, low).jobs[0].state == "budget_stopped"
    assert not inst.destroyed and env.store.pod(str(inst.id))["state"] == "stopped"
    env.emu.advance(600)
    api.terminate(str(inst.id))  # the user, outside bidder
    env.emu.advance(3600)
    tick(env, api, low)
    row = env.store.pod(str(inst.id))
    assert row["state"] == "gone" and row["desired_status"] == "TERMINATED", row
    *_, polled, last = env.store.observations(str(inst.id))
    assert last["desired_status"] == "TERMINATED"
    gap = (env.emu.now - polled["ts"]).total_seconds()
    # Its end is unknown to bidder: taken half-way since the last poll; bidder had stopped it, so no compute.
    assert (last["ts"] - polled["ts"]).total_seconds() == pytest.approx(gap / 2)
    assert last["uptime_seconds"] == polled["uptime_seconds"]
    booked = spend_report(env.store).pods[0].spend
    billed = env.emu.vast.true_spend(inst.id)  # the emulator's own account, to the destroy
    assert booked == pytest.approx(billed, abs=float(polled["storage_per_hr"]) * gap / 2 / 3600 + 1e-6)
    env.emu.advance(3600)
    tick(env, api, low)  # nothing more is booked for it
    assert spend_report(env.store).pods[0].spend == pytest.approx(booked)


# -- a job taken out of bidder.toml ------------------------------------------------------------
def test_a_job_taken_out_of_the_config_is_unmanaged_and_runs_again_once_put_back(env):
    # Its row said "running" for ever (the report's job states) while the pod it left was reclaimed.
    config = env.config(spot_job())
    pod = until_running(env, config, "s")
    other = env.config(f'[jobs.other]\nimage = "img"\ngpu = ["{RTX4090}"]\nkeep_running = true\ntolerance = "none"\n')
    env.emu.advance(300)
    report = env.tick(other)
    assert any(e["event"] == "unmanaged" and e["pod_id"] == pod.id for e in report.events)
    state = env.store.job_state("s")
    assert state["state"] == "unmanaged" and state["note"].startswith("not in "), state
    env.emu.advance(300)
    assert env.tick(config).jobs[0].state == "running"  # put back: its pod is its own again
    assert env.store.job_state("s")["state"] == "running"
    assert [r["pod_id"] for r in env.store.managed_pods("s", states=["active"])] == [pod.id]


def test_a_removed_jobs_runpod_pod_once_outbid_is_still_named_and_not_shown_paused(env):
    """Outbid, a RunPod pod keeps its volume, which RunPod bills while it is stopped, and no tick bids for
    it again once its job is out of bidder.toml: the tick's warning stopped at the outbid, and `pods`
    showed it PAUSED, as if it would come back."""
    from click.testing import CliRunner

    from bidder.cli import main
    from bidder.sim import TEST_API_KEY

    config = env.config(spot_job(extra="volume = 20"))
    pod = until_running(env, config, "s")
    other = env.config(f'[jobs.other]\nimage = "img"\ngpu = ["{RTX4090}"]\nkeep_running = true\ntolerance = "none"\n')
    env.emu.advance(300)
    env.tick(other)
    env.emu.world.set_floor(A6000, "COMMUNITY", round((pod.bid or 0.0) + 0.03, 3))  # outbid
    env.emu.advance(300)
    env.tick(other)
    assert pod.desired_status == "EXITED"
    env.emu.advance(300)
    report = env.tick(other)
    [warning] = [e for e in report.events if e["event"] == "unmanaged" and e["pod_id"] == pod.id]
    assert "is stopped (outbid or reclaimed) and keeps its 20 GB volume, which RunPod bills while it is stopped" \
        in warning["message"] and f"`bidder stop {pod.id} --terminate`" in warning["message"]
    shown = CliRunner(env={"RUNPOD_API_KEY": TEST_API_KEY}).invoke(main, ["pods", "--db", str(env.store.path)])
    assert shown.exit_code == 0, shown.output
    [line] = [row for row in shown.output.splitlines() if row.startswith(f"{pod.id} ")]  # (its table row)
    assert "EXITED" in line and "PAUSED" not in line, shown.output
    assert f"{pod.id}: stopped by RunPod and not bid for again, it keeps its 20 GB volume" in shown.output


def test_a_removed_jobs_runpod_pod_outbid_with_no_volume_is_not_warned_of_as_billing(env):
    # With no volume (the default) it bills nothing stopped: the tick warned of "its volume, which RunPod
    # bills" at every tick, and `pods` listed it among the pods that bill.
    from click.testing import CliRunner

    from bidder.cli import main
    from bidder.sim import TEST_API_KEY

    config = env.config(spot_job())
    pod = until_running(env, config, "s")
    other = env.config(f'[jobs.other]\nimage = "img"\ngpu = ["{RTX4090}"]\nkeep_running = true\ntolerance = "none"\n')
    env.emu.advance(300)
    assert [e for e in env.tick(other).events if e["event"] == "unmanaged" and e["pod_id"] == pod.id]  # running
    env.emu.world.set_floor(A6000, "COMMUNITY", round((pod.bid or 0.0) + 0.03, 3))  # outbid
    env.emu.advance(300)
    env.tick(other)
    assert pod.desired_status == "EXITED" and env.store.pod(pod.id)["volume_in_gb"] == 0
    env.emu.advance(300)
    report = env.tick(other)
    assert not [e for e in report.events if e["event"] == "unmanaged" and e["pod_id"] == pod.id]
    shown = CliRunner(env={"RUNPOD_API_KEY": TEST_API_KEY}).invoke(main, ["pods", "--db", str(env.store.path)])
    assert shown.exit_code == 0 and pod.id not in shown.output, shown.output
