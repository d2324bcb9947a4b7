"""A running on-demand pod whose decision is to wait is ended, as the move to spot ends it: against the
emulator over HTTP, on RunPod (through `bidder tick`) and on Vast, with the plan's decision and the
rates'. Kept, an on-demand fallback ran 14 hours ($4.73) while the plan said "wait, spot under $0.115"."""

from __future__ import annotations

import re
import tomllib

import pytest
from click.testing import CliRunner
from executor_helpers import A6000, RTX4090, Env, dump, seed_history
from two_markets import VAST4090, vast_live
from two_markets import tick as tick_both
from vast_helpers import seed_vast_history, vast_client

from bidder.cli import main
from bidder.sim import TEST_API_KEY
from bidder.sim.world import SPOT_NO_INSTANCES
from bidder.store import Store
from bidder.units import to_iso
from bidder.vast.summary import OfferFilters
from bidder.vast_pods import VastPodApi

#: The audit's job: 24 GPU-hours in 3 days, tolerance high. On the emulator (seed 0) at the end of the
#: standard history the plan waits for the A6000's floor to fall a little, then bids.
BATCH = f"""
[jobs.train]
gpu = ["{A6000}"]
cloud = "community"
hours = 24
deadline = "3d"
tolerance = "high"
image = "runpod/pytorch:latest"
"""

NO_SPOT = {"errors": [{"message": SPOT_NO_INSTANCES}]}


def cli_tick(env, *extra: str):
    runner = CliRunner(env={"RUNPOD_API_KEY": TEST_API_KEY})
    return runner.invoke(main, ["tick", "--config", str(env.tmp / "bidder.toml"), "--db", str(env.tmp / "bidder.db"),
                                "--api-url", env.emu.url, "--now", to_iso(env.emu.now), *extra])


def job_line(result, name: str = "train") -> str:
    return next(x for x in result.output.splitlines() if f"{name}: " in x and not x.startswith("collected"))


def on_demand_pods(env, text: str, *, cli: bool = True, jobs: int = 1) -> list:
    """Each job of bidder.toml `text` on an on-demand pod, as the audit's ticks had it: the ticks bid
    against spot answering "no instances available" until every job's decision bids, then a tick with
    allow_spot = false at that moment rents on-demand (a spot create refused no longer falls back to an
    on-demand pod the next decision would end: test_a_planned_spot_refused_for_capacity_waits_...). Then
    bidder.toml is `text` again and five minutes pass."""
    no_spot = text.replace('image = "runpod/pytorch:latest"\n', 'image = "runpod/pytorch:latest"\nallow_spot = false\n')
    assert no_spot.count("allow_spot = false") == jobs

    def tick(toml: str) -> None:
        if cli:
            (env.tmp / "bidder.toml").write_text(toml)
            assert cli_tick(env).exit_code == 0
        else:
            env.tick(env.config(toml))

    env.emu.malform("podRentInterruptable", NO_SPOT, execute=False, times=None)
    for _ in range(24):
        tick(text)
        if all("rent_spot:error" in env.kinds(name) for name in tomllib.loads(text)["jobs"]):
            break
        env.emu.advance(300)
    env.emu.clear_malformed()
    assert env.live_pods() == []
    tick(no_spot)
    (env.tmp / "bidder.toml").write_text(text)
    pods = env.live_pods()
    assert len(pods) == jobs and all(p.pod_type == "RESERVED" for p in pods), pods
    env.emu.advance(300)
    return pods


def test_an_on_demand_pod_is_stopped_when_the_plan_waits_and_spot_starts_later(env):
    [pod] = on_demand_pods(env, BATCH + "volume = 20\n")
    assert env.kinds("train")[-1] == "deploy_on_demand:ok"
    # The dry run says what it would send and changes nothing.
    before = dump(env)
    dry = cli_tick(env, "--dry-run")
    assert dry.exit_code == 0, dry.output
    line = job_line(dry)
    assert line.startswith(f"[dry run] train: dry_run: would stop pod {pod.id} (podStop): "), line
    assert ("(not sent: dry run); then waiting: wait: the plan starts spot on RTX A6000 when its spot floor "
            in line and "at or below $" in line), line
    assert f"; on-demand pod {pod.id} would be stopped to wait; plan over " in line, line
    assert pod.desired_status == "RUNNING" and dump(env) == before
    # The tick follows the decision: the on-demand pod is stopped, the job waits and says why.
    result = cli_tick(env)
    assert result.exit_code == 0, result.output
    line = job_line(result)
    assert line.startswith("train: waiting: wait: the plan starts spot on RTX A6000 when its spot floor "), line
    assert re.search(r"when its spot floor (is|has stayed) at or below \$", line), line
    assert f"; on-demand pod {pod.id} stopped to wait; plan over " in line and "expected $" in line, line
    assert ("warning: the volume stays on it (stopped, still billed); the next pod starts with an empty volume "
            "(use network_volume to carry data)") in line, line
    assert pod.desired_status == "EXITED" and env.live_pods() == [pod]  # stopped (on_finish = "stop"), not two
    stop = env.store.actions("train")[-1]
    assert (stop["kind"], stop["outcome"], stop["pod_id"]) == ("stop", "ok", pod.id)
    assert stop["reason"].startswith("on-demand ended to wait: the plan starts spot on RTX A6000"), stop["reason"]
    state = env.store.job_state("train")
    # Started a tick ago and stopped at once: its five minutes are booked, no interruption.
    assert state["state"] == "waiting" and state["interruptions"] == 0
    assert state["spent"] == pytest.approx(0.33 * 5 / 60, abs=0.002)
    assert env.store.pod(pod.id)["state"] == "retired"
    # Later ticks start spot as usual, on a pod of its own: never two running.
    config = env.config(BATCH + "volume = 20\n")
    for _ in range(12 * 12):
        env.emu.advance(300)
        report = env.tick(config)
        assert len(env.running()) <= 1
        if env.running():
            break
    [spot] = env.running()
    assert spot.pod_type == "INTERRUPTABLE" and report.jobs[0].state == "running", report.jobs[0].message
    assert [k for k in env.kinds("train") if not k.endswith(":dry_run")][-3:] == [
        "deploy_on_demand:ok", "stop:ok", "rent_spot:ok"]


def test_an_on_demand_pod_whose_stop_fails_runs_on_and_the_line_says_so(env):
    [pod] = on_demand_pods(env, BATCH)
    env.emu.malform("podStop", {"errors": [{"message": "Something went wrong. Please try again later."}]},
                    status=500, execute=False, times=None)
    result = cli_tick(env)
    line = job_line(result)
    assert line.startswith(f"train: running: running on-demand; the job would wait, but pod {pod.id} could not be "
                           "ended ("), line
    assert "nothing new is rented for this job until it is: the next tick tries again" in line, line
    assert pod.desired_status == "RUNNING" and env.live_pods() == [pod]
    assert env.kinds("train")[-1] == "stop:error"
    env.emu.clear_malformed()
    env.emu.advance(300)
    line = job_line(cli_tick(env))
    assert line.startswith("train: waiting: wait: "), line
    assert pod.desired_status == "EXITED" and env.kinds("train")[-1] == "stop:ok"


def test_the_rates_wait_stops_a_batch_jobs_on_demand_pod_and_a_service_keeps_its_own(env):
    # Without a deadline the rates decide; they weigh the running on-demand pod (its restart) when they
    # wait for the floor to fall. A service never waits off a running pod: it keeps on-demand.
    text = f"""
[jobs.batch]
gpu = ["{A6000}"]
cloud = "community"
hours = 24
tolerance = "high"
image = "runpod/pytorch:latest"

[jobs.svc]
gpu = ["{A6000}"]
cloud = "community"
keep_running = true
tolerance = "high"
image = "runpod/pytorch:latest"
"""
    pods = on_demand_pods(env, text, cli=False, jobs=2)
    config = env.config(text)
    env.emu.world.set_floor(A6000, "COMMUNITY", 0.3)  # spot over its usual level, under on-demand's $0.33
    report = env.tick(config)
    batch, svc = sorted(report.jobs, key=lambda j: j.name)
    ids = {env.store.pod(p.id)["job"]: p for p in pods}
    assert batch.state == "waiting" and batch.message.startswith("wait for RTX A6000 spot under $"), batch.message
    assert "waiting saves " in batch.message and f"; on-demand pod {ids['batch'].id} stopped to wait" in batch.message
    assert ids["batch"].desired_status == "EXITED"
    assert svc.state == "running" and "on-demand: $0.330/h" in svc.message, svc.message
    assert ids["svc"].desired_status == "RUNNING"


def test_a_vast_on_demand_instance_is_destroyed_when_the_plan_waits(emulator, client, tmp_path):
    # No Vast history at the first tick: on-demand. With history, the plan (the instance in its
    # progress) waits: the instance is destroyed on Vast (its disk cannot follow the job).
    emulator.world.reclaim_rate_per_hour = 0.0
    store = Store.open(tmp_path / "bidder.db")
    seed_history(store, emulator, gpus=(RTX4090,))
    vclient = vast_client(emulator)
    api = VastPodApi(vclient, OfferFilters(verified_only=True, min_reliability=0.95))
    env = Env(emulator, client, store, tmp_path)
    try:
        config = env.config(f'[jobs.v]\ngpu = ["{VAST4090}"]\nmarket = "vast"\nhours = 24\ndeadline = "3d"\n'
                            'tolerance = "high"\nimage = "pytorch/pytorch"\ndisk = 20\n')
        assert tick_both(env, api, config).jobs[0].state == "running"
        [first] = vast_live(emulator)
        assert not first.is_bid
        seed_vast_history(store, emulator)
        emulator.advance(300)
        job = tick_both(env, api, config).jobs[0]
        assert job.state == "waiting" and job.message.startswith("wait: the plan starts spot on RTX 4090 verified on "
                                                                 "Vast when its spot floor "), job.message
        assert re.search(r"when its spot floor (is|has stayed) at or below \$", job.message), job.message
        assert f"; on-demand instance {first.id} destroyed to wait; plan over " in job.message, job.message
        assert first.destroyed and vast_live(emulator) == []
        assert env.kinds("v") == ["deploy_on_demand:ok", "terminate:ok"]
        emulator.advance(300)
        assert tick_both(env, api, config).jobs[0].state == "waiting" and vast_live(emulator) == []
    finally:
        store.close()
        vclient.close()


def test_a_planned_spot_refused_for_capacity_waits_instead_of_renting_on_demand(env):
    # Spot answers "no instances available" for the job's whole window, ticked hourly. The plan's spot
    # create is refused; the decision's on-demand alternative is not rented while the decision with that
    # pod running would end it (before: a new on-demand pod at almost every tick, each ended at the next,
    # its restart lost). On-demand comes once, when the deadline wants it, and runs to the end.
    config = env.config(BATCH)
    env.emu.malform("podRentInterruptable", NO_SPOT, execute=False, times=None)
    refused = None
    for _ in range(72):
        report = env.tick(config)
        job = report.jobs[0]
        assert len(env.running()) <= 1
        if refused is None and job.message.startswith("not launched: spot NVIDIA RTX A6000/COMMUNITY: no_capacity"):
            refused = job
        if job.state == "finished":
            break
        env.emu.advance(3600)
    assert refused is not None and refused.state == "waiting" and env.store.job_state("train")
    assert ("; no on-demand fallback on NVIDIA RTX A6000/COMMUNITY: the next decision would end it (RTX A6000 spot "
            "at $") in refused.message, refused.message
    assert job.state == "finished" and job.message == "work done: 24.00 of 24 h", job.message
    kinds = env.kinds("train")
    assert kinds.count("deploy_on_demand:ok") == 1 and kinds[-2:] == ["deploy_on_demand:ok", "stop:ok"], kinds
    assert set(kinds[:-2]) == {"rent_spot:error"}
    # Its 24 h on-demand at $0.33, nothing else (before: $9.57, 29 on-demand pods for 24.33 h of work).
    assert env.store.job_state("train")["spent"] == pytest.approx(24 * 0.33, abs=0.01)
