"""A call the API fails (HTTP 500) through the real CLI against the emulator: `bidder tick` handles
every job, then exits 1 with one `Error:` line naming each job, the call, its market and what the API
said; `bidder launch` does the same for its one pod. A failed create may still have made its pod: the
lookup by name decides, so there is never a second pod, and a create that made none leaves the job
without a pod in the ledger and in `bidder jobs`."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from executor_helpers import A6000, interrupted_spot_pod, named
from two_markets import VAST4090, tick, vast_live

from bidder.cli import main
from bidder.executor import CREATE_GRACE
from bidder.models import Decision
from bidder.sim import TEST_API_KEY
from bidder.units import to_iso

HTTP_500 = {"errors": [{"message": "Internal Server Error"}]}

SPOT = f"""
[jobs.train]
gpu = ["{A6000}"]
cloud = "community"
hours = 10
tolerance = "high"
max_price = 0.6
image = "runpod/pytorch:latest"
"""


def service(name: str) -> str:
    return f"""
[jobs.{name}]
gpu = ["{A6000}"]
cloud = "community"
keep_running = true
tolerance = "none"
image = "runpod/pytorch:latest"
"""


def cli(env, *args: str):
    return CliRunner(env={"RUNPOD_API_KEY": TEST_API_KEY}).invoke(main, list(args))


def run_tick(env):
    return cli(env, "tick", "--config", str(env.tmp / "bidder.toml"), "--db", str(env.tmp / "bidder.db"),
               "--api-url", env.emu.url)


def jobs(env) -> dict[str, dict]:
    listing = cli(env, "jobs", "--config", str(env.tmp / "bidder.toml"), "--db", str(env.tmp / "bidder.db"),
                  "--format", "json")
    assert listing.exit_code == 0, listing.output
    return {row["job"]: row for row in json.loads(listing.output)}


def one_error_line(result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output and TEST_API_KEY not in result.output
    return lines[0]


@pytest.mark.parametrize(("operation", "config", "call"), [
    ("podFindAndDeployOnDemand", service("first") + service("second"), "on-demand create"),
    ("podRentInterruptable", SPOT.replace("train", "first") + service("second"), "spot create"),
], ids=["on_demand", "spot"])
def test_a_create_refused_with_500_fails_the_tick_after_every_job_is_handled(env, operation, config, call):
    (env.tmp / "bidder.toml").write_text(config)
    env.emu.malform(operation, HTTP_500, status=500, execute=False)  # the first job's create, not executed
    result = run_tick(env)
    line = one_error_line(result)
    name = named(env.store, "bidder-first", 1)
    assert line == (f"Error: the tick could not finish acting for first ({call} of {name} ({A6000}/COMMUNITY) on "
                    f"runpod failed: {operation}: server error (HTTP 500): Internal Server Error; no pod named {name} "
                    "exists yet, so the job has no pod (bidder looks the name up again before renting anything "
                    "else)); the next tick tries again")
    # The other job was still handled: it got its pod. The first has none, in the ledger and in `jobs`.
    assert "second: running: launched" in result.output
    assert [p.name for p in env.live_pods()] == [named(env.store, "bidder-second", 1)]
    listed = jobs(env)
    assert (listed["first"]["state"], listed["first"]["pod"]) == ("waiting", None)
    assert listed["second"]["state"] == "running"
    assert env.store.managed_pods("first") == []
    # Within the create's grace nothing else is rented for it, and that is no new failure (exit 0).
    env.emu.advance(300)
    again = run_tick(env)
    assert again.exit_code == 0, again.output
    assert "may still land" in again.output and len(env.live_pods()) == 1
    # After the grace a create is sent again, under a new name (a pod of the lost one is a stray): one pod.
    env.emu.advance(CREATE_GRACE.total_seconds())
    later = run_tick(env)
    assert later.exit_code == 0, later.output
    assert sorted(p.name for p in env.live_pods()) == sorted([named(env.store, "bidder-first", 2),
                                                              named(env.store, "bidder-second", 1)])


def test_a_create_answered_500_that_made_its_pod_is_adopted_by_its_name_and_the_tick_succeeds(env):
    (env.tmp / "bidder.toml").write_text(service("train"))
    env.emu.malform("podFindAndDeployOnDemand", HTTP_500, status=500, execute=True, times=None)
    result = run_tick(env)
    assert result.exit_code == 0, result.output
    [pod] = env.live_pods()
    assert pod.name == named(env.store, "bidder-train", 1) and "adopted" in result.output
    assert "adopted: train: " in result.output  # (whose pod it is: a tick of several jobs said not)
    assert jobs(env)["train"]["pod"] == pod.id
    env.emu.advance(300)
    assert run_tick(env).exit_code == 0 and env.live_pods() == [pod]


def test_a_bid_resume_refused_with_500_fails_the_tick_and_the_pod_stays_stopped(env):
    config = env.config(SPOT)
    pod = interrupted_spot_pod(env, config)
    env.emu.malform("podBidResume", HTTP_500, status=500, execute=False)
    result = run_tick(env)
    line = one_error_line(result)
    assert line == (f"Error: the tick could not finish acting for train (bid resume of pod {pod.id} on runpod "
                    "failed: podBidResume: server error (HTTP 500): Internal Server Error); the next tick tries again")
    assert f"train: waiting: could not resume {pod.id}" in result.output
    assert pod.desired_status == "EXITED" and env.live_pods() == [pod]
    assert jobs(env)["train"]["state"] == "waiting"
    # The API answers again: the next tick resumes that same pod (its volume is there), exit 0.
    env.emu.advance(300)
    resumed = run_tick(env)
    assert resumed.exit_code == 0, resumed.output
    assert env.live_pods() == [pod] and pod.desired_status == "RUNNING"


def test_launch_names_a_create_refused_with_500_once_and_a_second_launch_makes_no_second_pod(env):
    args = ("launch", "--gpu", A6000, "--cloud", "community", "--tolerance", "none", "--image", "img", "--yes",
            "--db", str(env.tmp / "bidder.db"), "--api-url", env.emu.url)
    env.emu.malform("podFindAndDeployOnDemand", HTTP_500, status=500, execute=False)
    line = one_error_line(cli(env, *args))
    name = named(env.store, "bidder-launch", 1)
    assert line.startswith(f"Error: nothing launched for bidder-launch: on_demand {A6000}/COMMUNITY on runpod: "
                           "error (the create's answer was lost (podFindAndDeployOnDemand: server error (HTTP 500): "
                           f"Internal Server Error) and no pod named {name} exists yet")
    assert line.count("server error (HTTP 500)") == 1  # said once, not again as a note
    assert env.live_pods() == []
    # A second launch inside the grace looks the name up and creates nothing.
    env.emu.advance(60)
    second = cli(env, *args)
    assert "may still land" in one_error_line(second) and env.live_pods() == []


def test_launch_adopts_a_pod_its_500_answered_create_made(env):
    env.emu.malform("podFindAndDeployOnDemand", HTTP_500, status=500, execute=True)
    result = cli(env, "launch", "--gpu", A6000, "--cloud", "community", "--tolerance", "none", "--image", "img",
                 "--yes", "--db", str(env.tmp / "bidder.db"), "--api-url", env.emu.url)
    assert result.exit_code == 0, result.output
    [pod] = env.live_pods()
    assert f"Launched pod {pod.id}" in result.output and "-> adopted" in result.output


# -- Vast: a create and a change of bid answered with HTTP 500 ------------------------------------------

VAST_JOB = f"""
[jobs.v]
gpu = ["{VAST4090}"]
market = "vast"
hours = 20
tolerance = "high"
max_price = 0.6
image = "pytorch/pytorch"
disk = 20
"""
VAST_500 = {"success": False, "error": "server_error", "msg": "Internal Server Error"}


def test_a_vast_create_refused_with_500_fails_the_tick_through_the_cli(both):
    env, _ = both
    (env.tmp / "bidder.toml").write_text(VAST_JOB)
    env.emu.malform("vast:create", VAST_500, status=500, execute=False)
    keys = {"RUNPOD_API_KEY": TEST_API_KEY, "VAST_API_KEY": TEST_API_KEY}
    result = CliRunner(env=keys).invoke(main, [
        "tick", "--config", str(env.tmp / "bidder.toml"), "--db", str(env.tmp / "bidder.db"), "--api-url", env.emu.url,
        "--vast-url", env.emu.vast_url, "--now", to_iso(env.emu.now)])
    line = one_error_line(result)
    name = named(env.store, "bidder-v", 1)
    assert line.startswith(f"Error: the tick could not finish acting for v (spot create of {name} ({VAST4090}/")
    assert "on vast failed: create_interruptible: server error (HTTP 500): Internal Server Error" in line
    assert vast_live(env.emu) == [] and env.store.managed_pods("v") == []


def test_a_vast_change_of_bid_refused_with_500_is_a_failed_call(both):
    env, api = both
    config = env.config(VAST_JOB)
    assert tick(env, api, config).jobs[0].state == "running"
    [inst] = vast_live(env.emu)
    [row] = env.store.managed_pods("v")
    bid, tier = row["bid_per_gpu"], row["cloud"]
    env.emu.vast.set_competitor(int(env.emu.vast.market.machine_id[inst.machine]), bid + 0.05)
    env.emu.advance(600)

    def raise_bid(job, policy, now, progress):  # the plan: the same offer at a higher bid
        return Decision(action="spot", gpu_type_id=VAST4090, cloud=tier, gpu_count=1, bid_per_gpu=bid + 0.1,
                        expected_cost_per_hour=bid + 0.1, expected_interruptions_per_day=1.0, expected_total_cost=None,
                        expected_completion_hours=None, reasons=("raise",), market="vast")

    env.emu.malform("vast:bid_price", VAST_500, status=500, execute=False, times=None)  # (a change is retried)
    report = tick(env, api, config, advise=raise_bid)
    [failed] = report.jobs[0].failed
    assert failed == (f"bid resume of pod {inst.id} on vast failed: change_bid: server error (HTTP 500): "
                      "Internal Server Error")
    assert inst.price == pytest.approx(bid) and vast_live(env.emu) == [inst]  # the bid stands as it was

