"""One job the tick cannot run (its market has no key here, or its name is a `bidder launch`'s) through
the real CLI against the emulator: every other job is handled as usual, the job's line says what is
wrong and how to fix it, nothing is rented or ended for it, and the tick exits 1 at the end with one
`Error:` line. A whole-file error (a bad setting) still stops the tick before anything is done."""

from __future__ import annotations

from click.testing import CliRunner
from executor_helpers import RTX4090
from two_markets import VAST4090, runpod_live, vast_live

from bidder.cli import main
from bidder.sim import TEST_API_KEY
from bidder.units import to_iso

RUNPOD_JOB = f"""
[jobs.r]
gpu = ["{RTX4090}"]
market = "runpod"
hours = 20
tolerance = "none"
image = "runpod/pytorch:latest"
"""
VAST_JOB = f"""
[jobs.v]
gpu = ["{VAST4090}"]
market = "vast"
hours = 20
tolerance = "none"
image = "pytorch/pytorch"
disk = 20
"""
BOTH_KEYS = {"RUNPOD_API_KEY": TEST_API_KEY, "VAST_API_KEY": TEST_API_KEY}
VAST_ONLY = {"RUNPOD_API_KEY": None, "VAST_API_KEY": TEST_API_KEY}
RUNPOD_ONLY = {"RUNPOD_API_KEY": TEST_API_KEY, "VAST_API_KEY": None}


def cli_tick(env, keys: dict, *extra: str):
    args = ["tick", "--config", str(env.tmp / "bidder.toml"), "--db", str(env.tmp / "bidder.db"),
            "--api-url", env.emu.url, "--vast-url", env.emu.vast_url, "--now", to_iso(env.emu.now), *extra]
    return CliRunner(env={"HOME": str(env.tmp), **keys}).invoke(main, args)


def lines(result, job: str) -> list[str]:
    return [x for x in result.output.splitlines() if x.startswith(f"{job}: ")]


def one_error(result) -> str:
    assert result.exit_code == 1, result.output
    err = result.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    return err[0]


def test_a_runpod_job_without_a_runpod_key_leaves_the_vast_job_handled(both):
    env, _ = both
    (env.tmp / "bidder.toml").write_text(RUNPOD_JOB + VAST_JOB)
    result = cli_tick(env, VAST_ONLY)
    [v] = lines(result, "v")
    assert v.startswith("v: running: launched ") and ", vast) on-demand" in v, result.output
    [r] = lines(result, "r")
    assert r.startswith("r: error: market = 'runpod', and this tick has no RunPod key: set RUNPOD_API_KEY"), r
    assert "or choose market = 'vast' or 'any'" in r, r
    error = one_error(result)
    assert error.startswith("Error: job r cannot run: market = 'runpod'"), error
    assert len(vast_live(env.emu)) == 1 and runpod_live(env.emu) == []
    assert env.store.managed_pods("r") == []


def test_a_vast_job_without_a_vast_key_leaves_the_runpod_job_handled(both):
    env, _ = both
    (env.tmp / "bidder.toml").write_text(VAST_JOB + RUNPOD_JOB)
    result = cli_tick(env, RUNPOD_ONLY)
    [r] = lines(result, "r")
    assert r.startswith("r: running: launched ") and "on-demand" in r, result.output
    [v] = lines(result, "v")
    assert v.startswith("v: error: market = 'vast', and this tick has no Vast key: set VAST_API_KEY"), v
    assert "or choose market = 'runpod' or 'any'" in v, v
    assert one_error(result).startswith("Error: job v cannot run: market = 'vast'")
    assert len(runpod_live(env.emu)) == 1 and vast_live(env.emu) == []


def test_a_job_whose_pod_is_on_a_market_now_unreachable_keeps_its_pod_and_gets_no_second(both):
    env, _ = both
    any_job = RUNPOD_JOB.replace('market = "runpod"', 'market = "any"').replace(
        f'gpu = ["{RTX4090}"]', f'gpu = ["{RTX4090}", "{VAST4090}"]')
    (env.tmp / "bidder.toml").write_text(any_job)
    first = cli_tick(env, RUNPOD_ONLY)
    assert first.exit_code == 0, first.output
    [pod] = runpod_live(env.emu)
    env.emu.advance(600)
    result = cli_tick(env, VAST_ONLY)  # the RunPod key is gone: the job is open to Vast, but has a pod
    [r] = lines(result, "r")
    assert r.startswith("r: unknown: its pod is on runpod, which this tick cannot reach: set RUNPOD_API_KEY"), r
    assert one_error(result).startswith("Error: job r cannot run: its pod is on runpod")
    assert [p.id for p in runpod_live(env.emu)] == [pod.id] and pod.desired_status == "RUNNING"
    assert vast_live(env.emu) == [] and env.store.pod(pod.id)["state"] == "active"


def test_a_bad_setting_still_stops_the_tick_before_anything_is_done(both):
    env, _ = both
    (env.tmp / "bidder.toml").write_text(RUNPOD_JOB + VAST_JOB + "colour = 'red'\n")
    result = cli_tick(env, BOTH_KEYS)
    assert one_error(result).startswith("Error: ")
    assert lines(result, "v") == [] and lines(result, "r") == []
    assert runpod_live(env.emu) == [] and vast_live(env.emu) == []
