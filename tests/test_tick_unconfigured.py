"""One job the tick cannot run (its market has no key here, its name is a `bidder launch`'s, or its GPU
names cannot be checked on a new database whose market was not reached) through
the real CLI against the emulator: every other job is handled as usual, the job's line says what is
wrong and how to fix it, nothing is rented or ended for it, and the tick exits 1 at the end with one
`Error:` line. A whole-file error (a bad setting) still stops the tick before anything is done."""

from __future__ import annotations

import socket

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


def fresh_tick(emu, tmp, keys: dict, *extra: str, api_url: str | None = None):
    """A tick on a database that holds nothing yet (no catalogue, no history)."""
    args = ["tick", "--config", str(tmp / "bidder.toml"), "--db", str(tmp / "fresh.db"),
            "--api-url", api_url or emu.url, "--vast-url", emu.vast_url, "--now", to_iso(emu.now), *extra]
    return CliRunner(env={"HOME": str(tmp), **keys}).invoke(main, args)


def test_a_runpod_job_on_a_new_database_without_a_runpod_key_is_told_about_the_key_not_its_gpu_name(
        emulator, tmp_path):
    # Its GPU name is RunPod's, and no RunPod catalogue was ever stored here: it was refused as an unknown
    # GPU type, "close matches: RTX 4090" (Vast's name for the card), the whole tick stopped.
    (tmp_path / "bidder.toml").write_text(RUNPOD_JOB + VAST_JOB)
    result = fresh_tick(emulator, tmp_path, VAST_ONLY)
    [r] = lines(result, "r")
    assert r.startswith("r: error: market = 'runpod', and this tick has no RunPod key: set RUNPOD_API_KEY"), r
    assert "unknown GPU type" not in result.output + result.stderr
    [v] = lines(result, "v")
    assert v.startswith("v: running: launched "), result.output
    assert one_error(result).startswith("Error: job r cannot run: market = 'runpod'")
    assert len(vast_live(emulator)) == 1 and runpod_live(emulator) == []


def test_a_job_on_a_new_database_whose_runpod_is_down_waits_for_its_catalogue_then_runs(emulator, tmp_path):
    with socket.socket() as s:  # a port nothing listens on: RunPod unreachable
        s.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{s.getsockname()[1]}/graphql"
    (tmp_path / "bidder.toml").write_text(RUNPOD_JOB.replace('market = "runpod"', 'market = "any"') + VAST_JOB)
    result = fresh_tick(emulator, tmp_path, BOTH_KEYS, api_url=down)
    [r] = lines(result, "r")
    assert r.startswith(f"r: error: its GPU names ('{RTX4090}') cannot be checked yet: this database has no RunPod "
                        f"GPU catalogue (RunPod's prices could not be collected now: "), r
    assert "cannot connect" in r and "the first tick that collects RunPod prices checks them" in r, r
    [v] = lines(result, "v")
    assert v.startswith("v: running: launched "), result.output
    assert result.exit_code == 1 and "Traceback" not in result.output
    warning, error = result.stderr.strip().splitlines()  # the failed collection's warning, then the job's error
    assert warning.startswith("warning: RunPod prices not collected: TransportError: "), warning
    assert error.startswith("Error: job r cannot run: its GPU names"), error
    assert runpod_live(emulator) == [] and len(vast_live(emulator)) == 1
    emulator.advance(300)
    again = fresh_tick(emulator, tmp_path, BOTH_KEYS)  # RunPod answers: the name is RunPod's, and it runs
    assert again.exit_code == 0, again.output + again.stderr
    [r] = lines(again, "r")
    assert r.startswith("r: running: launched "), again.output


def test_a_wrong_gpu_name_is_still_refused_once_its_market_was_collected(emulator, tmp_path):
    (tmp_path / "bidder.toml").write_text(RUNPOD_JOB)
    assert fresh_tick(emulator, tmp_path, BOTH_KEYS).exit_code == 0
    (tmp_path / "bidder.toml").write_text(RUNPOD_JOB.replace(RTX4090, "NVIDIA GeForce RTX 4900"))
    emulator.advance(300)
    error = one_error(fresh_tick(emulator, tmp_path, BOTH_KEYS))
    assert "[jobs.r] gpu: unknown GPU type 'NVIDIA GeForce RTX 4900'; close matches: " in error, error


def test_a_wrong_name_of_a_job_open_to_any_market_is_refused_where_only_runpod_has_a_key(emulator, tmp_path):
    # Vast was never collected here, but this tick has no Vast key: its catalogue is not what is missing.
    (tmp_path / "bidder.toml").write_text(RUNPOD_JOB.replace('market = "runpod"', 'market = "any"')
                                          .replace(RTX4090, "NVIDIA GeForce RTX 4900"))
    error = one_error(fresh_tick(emulator, tmp_path, RUNPOD_ONLY))
    assert "[jobs.r] gpu: unknown GPU type 'NVIDIA GeForce RTX 4900'; close matches: " in error, error


def test_a_gpu_name_of_the_other_market_is_refused_for_a_job_of_one_market(both):
    # RunPod's id under market = "vast" passed, and the job waited at every tick ("no current quote ...
    # collect prices first"), exit 0: cron never told anyone.
    env, _ = both
    (env.tmp / "bidder.toml").write_text(VAST_JOB.replace(f'gpu = ["{VAST4090}"]', f'gpu = ["{RTX4090}"]'))
    error = one_error(cli_tick(env, BOTH_KEYS))
    assert f"[jobs.v] gpu: unknown GPU type '{RTX4090}'; close matches: " in error and VAST4090 in error, error
    assert vast_live(env.emu) == [] and runpod_live(env.emu) == []


def test_a_tick_whose_runpod_cannot_be_reached_handles_every_job_then_exits_1(both):
    # RunPod down, Vast answering: a RunPod job waiting under its max price was decided on RunPod's last
    # snapshot and the tick exited 0, so cron reported success for as long as RunPod was down (the
    # README: a price API that cannot be reached stops the tick with exit 1). Now every job is handled
    # first, then one `Error:` line says so. (A job with a pod there is `unknown`: exit 1 already.)
    env, _ = both
    (env.tmp / "bidder.toml").write_text(RUNPOD_JOB + "max_price = 0.01\n" + VAST_JOB)
    assert cli_tick(env, BOTH_KEYS).exit_code == 0
    env.emu.advance(3600)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{s.getsockname()[1]}/graphql"
    args = ["tick", "--config", str(env.tmp / "bidder.toml"), "--db", str(env.tmp / "bidder.db"),
            "--api-url", down, "--vast-url", env.emu.vast_url, "--now", to_iso(env.emu.now)]
    result = CliRunner(env={"HOME": str(env.tmp), **BOTH_KEYS}).invoke(main, args)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output + result.stderr
    assert "collected a price snapshot" in result.output and "(vast only)" in result.output, result.output
    [r] = lines(result, "r")
    assert r.startswith("r: waiting: "), r
    [v] = lines(result, "v")
    assert v.startswith("v: running: "), result.output
    warning, error = result.stderr.strip().splitlines()
    assert warning.startswith("warning: RunPod prices not collected: TransportError: "), warning
    assert error.startswith("Error: RunPod's API could not be reached (TransportError: ") and error.endswith(
        "its jobs were decided on its last snapshot; the next tick tries again"), error
    # With RunPod back, the tick exits 0 again.
    env.emu.advance(300)
    assert cli_tick(env, BOTH_KEYS).exit_code == 0
