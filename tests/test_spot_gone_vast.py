"""RunPod's spot market marked gone (`spot_unsupported_since`) says nothing of Vast's: against the
emulator over HTTP, a Vast job still bids, a job open to both markets may still take Vast's spot
(never RunPod's), and `recommend` follows the same flag as launch and tick."""

from __future__ import annotations

import json

from click.testing import CliRunner
from executor_helpers import RTX4090
from two_markets import VAST4090, runpod_live, tick, vast_live

from bidder.cli import main
from bidder.executor import SPOT_FLAG, Executor
from bidder.models import JobSpec, Policy
from bidder.units import to_iso

JOB = """
[jobs.{name}]
gpu = [{gpus}]
market = "{market}"
hours = 20
tolerance = "high"
max_price = 0.6
image = "pytorch/pytorch"
disk = 20
allow_on_demand = {on_demand}
"""


def gone(env) -> None:
    env.store.settings_set(SPOT_FLAG, to_iso(env.emu.now), ts=env.emu.now)


def test_a_vast_job_bids_on_vast_while_runpods_spot_is_marked_gone(both):
    # The Vast executor read RunPod's flag as its own: "no alternative could be tried" for ever (and a
    # launch on Vast rented on-demand at 3x the spot plan it showed).
    env, api = both
    gone(env)
    config = env.config(JOB.format(name="v", market="vast", gpus=f'"{VAST4090}"', on_demand="false"))
    line = tick(env, api, config).jobs[0]
    assert line.state == "running", line.message
    [inst] = vast_live(env.emu)
    assert inst.is_bid and runpod_live(env.emu) == []


def test_a_job_open_to_both_markets_keeps_vasts_spot_and_never_runpods(both):
    env, _ = both
    gone(env)
    ex = Executor(env.client, env.store, markets=("runpod", "vast"))
    job = JobSpec(gpu_types=(RTX4090, VAST4090), work_hours=20, market="any", disk_gb=20.0)
    decision = ex.decide(job, Policy(tolerance=6.0, max_price=0.6, allow_on_demand=False), env.emu.now)
    assert decision.action in ("spot", "wait") and decision.market == "vast", decision
    for policy in (Policy(tolerance=6.0, max_price=0.6), Policy(tolerance=6.0)):
        d = ex.decide(job, policy, env.emu.now)
        assert not (d.action == "spot" and d.market == "runpod"), d
        assert all(not (a.action == "spot" and a.market == "runpod") for a in d.alternatives), d.alternatives


def test_recommend_follows_runpods_spot_flag(both):
    env, _ = both
    gone(env)
    runner = CliRunner(env={"RUNPOD_API_KEY": "", "VAST_API_KEY": ""})

    def recommend(*args: str) -> dict:
        result = runner.invoke(main, ["recommend", "--gpu", RTX4090, "--hours", "10", "--tolerance", "high",
                                      "--format", "json", "--db", str(env.store.path), "--now", to_iso(env.emu.now),
                                      *args])
        assert result.exit_code == 0, result.output + result.stderr
        assert "RunPod no longer offers spot (interruptable) pods for this account (since " in result.stderr
        return json.loads(result.stdout)["decision"]

    assert recommend("--market", "runpod")["action"] == "on_demand"
    both_markets = recommend("--gpu", VAST4090)
    assert not (both_markets["action"] == "spot" and both_markets["market"] == "runpod"), both_markets


def test_the_plan_ranks_the_markets_with_vasts_storage(both):
    # A batch job with a deadline follows the plan, which ranked markets on the GPU price alone and
    # added the storage to the chosen plan afterwards: with a 4000 GB disk it waited for Vast at $11.10
    # with RunPod's spot at $2.46 to start now (the rates path, without a deadline, ranked it right).
    from datetime import timedelta

    from bidder.advisor import advise

    env, _ = both
    now = env.emu.now
    collected = CliRunner(env={"RUNPOD_API_KEY": env.emu.api_key, "VAST_API_KEY": env.emu.api_key}).invoke(main, [
        "collect", "--db", str(env.store.path), "--api-url", env.emu.url, "--vast-url", env.emu.vast_url,
        "--now", to_iso(now)])  # (Vast's offers, with their storage prices)
    assert collected.exit_code == 0, collected.output + collected.stderr
    policy = Policy(tolerance=6.0, max_price=0.6)
    for disk in (1000.0, 4000.0):
        for deadline in (None, now + timedelta(days=2)):
            job = JobSpec(gpu_types=(RTX4090, VAST4090), work_hours=10, deadline=deadline, market="any", disk_gb=disk)
            chosen, _ = advise(env.store, job, policy, now)
            alone, _ = advise(env.store, JobSpec(gpu_types=(RTX4090,), work_hours=10, deadline=deadline,
                                                 market="runpod", disk_gb=disk), policy, now)
            assert alone.action != "wait"
            assert not (chosen.market == "vast" and chosen.expected_total_cost > alone.expected_total_cost * 1.05), \
                (disk, deadline, chosen, alone)
