"""A job the user held (`bidder stop --job NAME`) and let run again (`bidder jobs start NAME`) was not
interrupted: `bidder report` says so as `bidder jobs`, `bidder pods` and the emulator do, on Vast and on
RunPod, through the real CLI against the emulator over HTTP. The report had counted the hold on Vast
(1 interruption of an on-demand instance, where the other three said 0): the tick right after the
stop polled the stopped instance on the stop's own second, and the report took that poll for one made
before the stop. An outbid after the resume is still an interruption in all four."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from executor_helpers import A6000, RTX4090, seed_history
from vast_helpers import seed_vast_history

from bidder.cli import main
from bidder.sim import TEST_API_KEY
from bidder.store import Store
from bidder.units import to_iso

VAST = """
[jobs.v]
gpu = ["RTX 4090"]
market = "vast"
cloud = "verified"
hours = 10
max_price = 0.6
{kind}
image = "pytorch/pytorch"
disk = 20
"""
VAST_KINDS = {"on_demand": "allow_spot = false", "spot": 'tolerance = "high"'}

RUNPOD = f"""
[jobs.r]
gpu = ["{A6000}"]
cloud = "community"
market = "runpod"
hours = 10
tolerance = "high"
image = "runpod/pytorch:latest"
"""


@pytest.fixture
def env(emulator, tmp_path):
    emulator.world.reclaim_rate_per_hour = 0.0  # (RunPod's random reclaims: the outbid below is the only one)
    with Store.open(tmp_path / "bidder.db") as store:
        seed_history(store, emulator, gpus=(A6000, RTX4090))
        seed_vast_history(store, emulator)
    return emulator, tmp_path


def cli(env, *args: str, apis: bool = True):
    emu, tmp = env
    urls = ["--api-url", emu.url, "--vast-url", emu.vast_url, "--now", to_iso(emu.now)] if apis else []
    result = CliRunner(env={"RUNPOD_API_KEY": TEST_API_KEY, "VAST_API_KEY": TEST_API_KEY}).invoke(
        main, [*args, "--db", str(tmp / "bidder.db"), *urls])
    assert result.exit_code == 0, result.output + result.stderr
    return result


def tick(env, job: str):
    _, tmp = env
    result = cli(env, "tick", "--config", str(tmp / "bidder.toml"))
    lines = [x for x in result.output.splitlines() if x.startswith(f"{job}: ")]
    assert len(lines) == 1, result.output
    return lines[0]


def hold_and_resume(env, job: str) -> str:
    """Tick the job until its pod runs, an hour on; `bidder stop --job`, and a tick on that same second (as
    cron may run one right after the user's stop); `bidder jobs start` a tick later, and ticks until it runs
    again. Returns its pod's id (the same pod throughout)."""
    emu, tmp = env
    for _ in range(24):
        if tick(env, job).startswith(f"{job}: running: "):
            break
        emu.advance(900)
    with Store.open(tmp / "bidder.db") as store:
        pod_id = store.job_state(job)["pod_id"]
    assert pod_id is not None
    for _ in range(4):
        emu.advance(900)
        assert tick(env, job).startswith(f"{job}: running: ")
    stopped = cli(env, "stop", "--job", job)
    assert f"stopped pod {pod_id} " in stopped.output and f"(job {job} is held)" in stopped.output, stopped.output
    assert tick(env, job).startswith(f"{job}: held: ")  # its poll: the stop's own second
    emu.advance(900)
    assert tick(env, job).startswith(f"{job}: held: ")
    assert f"it resumes pod {pod_id}" in cli(env, "jobs", "start", job, "--config", str(tmp / "bidder.toml"),
                                             apis=False).output
    for _ in range(8):
        if tick(env, job).startswith(f"{job}: running: "):
            break
        emu.advance(900)
    for _ in range(2):
        emu.advance(900)
        assert tick(env, job).startswith(f"{job}: running: ")
    with Store.open(tmp / "bidder.db") as store:
        assert store.job_state(job)["pod_id"] == pod_id
        assert [a["kind"] for a in store.actions(job) if a["kind"] in ("stop", "resume", "bid_resume")][:2] == \
            ["stop", "bid_resume" if store.pod(pod_id)["kind"] == "spot" else "resume"]
    return pod_id


def counts(env, job: str, pod_id: str) -> dict[str, int]:
    """The pod's interruptions as each command says them: `bidder jobs` (JSON), `bidder pods` (JSON),
    `bidder report` (JSON: the count and its times; the table's column)."""
    _, tmp = env
    [listed] = [j for j in json.loads(cli(env, "jobs", "--config", str(tmp / "bidder.toml"), "--format", "json",
                                          apis=False).output) if j["job"] == job]
    [pod] = [p for p in json.loads(cli(env, "pods", "--format", "json", apis=False).output) if p["pod"] == pod_id]
    now = ["--since", "all", "--now", to_iso(env[0].now)]
    report = json.loads(cli(env, "report", *now, "--format", "json", apis=False).output)
    [reported] = [p for p in report["pods"] if p["pod_id"] == pod_id]
    table = cli(env, "report", *now, apis=False).output.splitlines()
    [row] = [x for x in table if x.startswith(f"{pod_id} ")]
    at = next(x for x in table if x.startswith("pod ")).index(" interruptions ")  # (numbers align right)
    return {"jobs": listed["interruptions"], "pods": pod["interruptions"], "report": reported["interruptions"],
            "report times": len(reported["interruption_times"]), "report table": int(row[at:at + len(" interruptions ")])}


@pytest.mark.parametrize("kind", ["on_demand", "spot"])
def test_a_held_and_resumed_vast_instance_was_not_interrupted_in_the_report(env, kind):
    emu, tmp = env
    (tmp / "bidder.toml").write_text(VAST.format(kind=VAST_KINDS[kind]))
    pod_id = hold_and_resume(env, "v")
    inst = emu.vast.instances[int(pod_id)]
    with Store.open(tmp / "bidder.db") as store:
        assert store.pod(pod_id)["kind"] == kind
    assert inst.interruptions == 0
    assert counts(env, "v", pod_id) == dict.fromkeys(("jobs", "pods", "report", "report times", "report table"), 0)
    if kind == "on_demand":
        return
    # Outbid on its machine after the resume: an interruption, in the report as everywhere else.
    emu.vast.set_competitor(int(emu.vast.market.machine_id[inst.machine]), inst.price + 1.0)
    emu.advance(300)
    assert inst.interruptions == 1
    assert "v: interrupted (outbid" in cli(env, "tick", "--config", str(tmp / "bidder.toml")).output
    assert counts(env, "v", pod_id) == dict.fromkeys(("jobs", "pods", "report", "report times", "report table"), 1)


def test_a_held_and_resumed_runpod_pod_was_not_interrupted_in_the_report(env):
    emu, tmp = env
    (tmp / "bidder.toml").write_text(RUNPOD)
    pod_id = hold_and_resume(env, "r")
    pod = emu.world.pods[pod_id]
    assert pod.pod_type == "INTERRUPTABLE" and pod.interruptions == 0
    assert counts(env, "r", pod_id) == dict.fromkeys(("jobs", "pods", "report", "report times", "report table"), 0)
    # Outbid after the resume: an interruption, in the report as everywhere else.
    emu.world.set_floor(A6000, "COMMUNITY", round(pod.bid + 0.03, 3))
    emu.advance(300)
    emu.world.release_floor(A6000, "COMMUNITY")
    assert pod.desired_status == "EXITED" and pod.interruptions == 1
    assert "r: interrupted (outbid at " in cli(env, "tick", "--config", str(tmp / "bidder.toml")).output
    assert counts(env, "r", pod_id) == dict.fromkeys(("jobs", "pods", "report", "report times", "report table"), 1)
