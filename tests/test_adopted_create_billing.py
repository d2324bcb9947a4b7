"""A pod adopted from a create whose answer was lost, that ends before its first poll, is booked from
when it landed (its uptime at adoption), not from when its create was sent: a create sent at 02:05 that
landed late, was adopted at 02:20 and outbid at 02:22 was booked 1020 s of running time (ledger $0.0450,
emulator $0.0053). By a tick (the `late_create` fault) and by `pods --refresh` (a launch's lost create).
Against the emulator over HTTP; the adopting and later ticks through the CLI."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from executor_helpers import A6000, ON_DEMAND_SERVICE, impatient_env, live, wait_for

from bidder.cli import main
from bidder.sim import TEST_API_KEY
from bidder.units import to_iso

SPOT = ON_DEMAND_SERVICE.replace('"none"', '"high"')

env = pytest.fixture(impatient_env, name="env")


def cli(env, *args: str):
    return CliRunner(env={"RUNPOD_API_KEY": TEST_API_KEY}).invoke(
        main, [*args, "--db", str(env.tmp / "bidder.db"), "--api-url", env.emu.url, "--now", to_iso(env.emu.now)])


def ledger(env, pod_id: str) -> float:
    return env.store.spend_by_pod()[pod_id]


def test_a_late_create_adopted_and_outbid_before_its_first_poll_is_booked_from_when_it_landed(env):
    config = env.config(SPOT)
    env.emu.set_faults("late_create=1,late_delay=4")  # held 4 s: the 1 s client gives up before it lands
    for _ in range(100):  # (the optimizer may wait for a calmer market first)
        report = env.tick(config)
        if env.store.job_state("train").get("pending_name"):
            break
        env.emu.advance(300)
    assert "may still" in report.jobs[0].message, report.jobs[0].message
    env.emu.advance(15 * 60)  # the create reaches the market 15 minutes after it was sent
    env.emu.set_faults(None)
    wait_for(lambda: len(env.emu.world.pods) == 1)
    [pod] = live(env)
    assert pod.pod_type == "INTERRUPTABLE"
    env.emu.advance(60)
    adopting = cli(env, "tick", "--config", str(env.tmp / "bidder.toml"))
    assert adopting.exit_code == 0 and "train: running" in adopting.output, adopting.output + adopting.stderr
    assert env.store.pod(pod.id) is not None
    env.emu.advance(120)
    env.emu.world.set_floor(A6000, "COMMUNITY", round(pod.bid + 0.03, 3))  # outbid before any poll
    env.emu.advance(300)
    env.emu.world.release_floor(A6000, "COMMUNITY")
    billed = env.emu.world.true_spend(pod.id)
    seen = cli(env, "tick", "--config", str(env.tmp / "bidder.toml"))
    assert seen.exit_code == 0, seen.output + seen.stderr
    assert env.store.pod(pod.id)["interruptions"] == 1
    assert ledger(env, pod.id) == pytest.approx(billed, abs=0.01), (ledger(env, pod.id), billed)


def test_a_launchs_lost_create_adopted_by_pods_refresh_is_booked_from_when_it_landed(env):
    # The create fails unexecuted (HTTP 500) and is remembered as lost; the pod lands 30 minutes later.
    env.emu.malform("podFindAndDeployOnDemand", {"errors": [{"message": "Internal Server Error"}]}, status=500,
                    execute=False)
    launch = cli(env, "launch", "--gpu", A6000, "--tolerance", "none", "--image", "img", "--yes", "--name", "late",
                 "--retries", "1")
    assert launch.exit_code == 1, launch.output + launch.stderr
    name = env.store.job_state("late")["pending_name"]
    env.emu.advance(30 * 60)
    landed = env.emu.world.deploy_on_demand({"gpuTypeId": A6000, "cloudType": "COMMUNITY", "gpuCount": 1,
                                             "name": name, "imageName": "img"})
    env.emu.advance(60)
    refreshed = cli(env, "pods", "--refresh")
    assert refreshed.exit_code == 0 and env.store.pod(landed.id)["job"] == "late", refreshed.output + refreshed.stderr
    env.emu.advance(120)
    env.emu.world.stop(landed.id)  # stopped in RunPod's console before any poll
    billed = env.emu.world.true_spend(landed.id)
    env.emu.advance(300)
    again = cli(env, "pods", "--refresh")
    assert again.exit_code in (0, 1), again.output + again.stderr
    assert env.store.pod(landed.id)["desired_status"] == "EXITED"
    assert ledger(env, landed.id) == pytest.approx(billed, abs=0.01), (ledger(env, landed.id), billed)
