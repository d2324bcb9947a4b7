"""A finished job whose pod is kept stopped (on_finish = "stop", the default) says what it bills: a Vast
instance its disk's storage, a RunPod pod its volume. Said on the tick's line when the job finishes and
once a day after (cron mails every tick's output), and by `bidder jobs`. Against the emulator over HTTP."""

from __future__ import annotations

import json

from click.testing import CliRunner
from executor_helpers import RTX4090, make_env
from two_markets import VAST4090, tick

from bidder.cli import main
from bidder.sim import TEST_API_KEY

VAST_JOB = f"""
[jobs.v]
market = "vast"
gpu = ["{VAST4090}"]
hours = 0.5
tolerance = "none"
max_price = 0.9
budget = 20
image = "pytorch/pytorch"
disk = 40
"""


def _until_finished(env, run):
    for _ in range(24):
        report = run()
        if report.jobs[0].state == "finished":
            return report
        env.emu.advance(600)
    raise AssertionError(f"not finished: {report.jobs[0].message}")


def test_a_finished_vast_jobs_kept_instance_is_said_to_bill_storage_once_a_day(both):
    env, api = both
    config = env.config(VAST_JOB)
    report = _until_finished(env, lambda: tick(env, api, config))
    [row] = env.store.managed_pods("v")
    pod_id = row["pod_id"]
    storage = env.store.last_observation(pod_id)["storage_per_hr"]
    assert storage > 0 and not env.emu.vast.instances[int(pod_id)].destroyed
    said = (f"instance {pod_id} is kept stopped with its disk, which bills ${storage:.3f}/h of storage (Vast) until "
            f"`bidder stop {pod_id} --terminate` deletes it")
    # (and when that storage passes the job's budget: see test_vast_cli.py)
    then = f"; at ${storage:.3f}/h of storage its spend passes its budget of $20.00 in about "
    line = report.jobs[0].message
    assert line.startswith("work done: ") and f"; {said}{then}" in line, line
    # Not at every tick: cron would mail it every few minutes for ever.
    for _ in range(3):
        env.emu.advance(3600)
        assert tick(env, api, config).jobs[0].message == line.split(f"; {said}")[0]
    env.emu.advance(21 * 3600)  # a day after it was said: said again, its disk still billing
    again = tick(env, api, config)
    assert again.jobs[0].state == "finished" and f"; {said}{then}" in again.jobs[0].message, again.jobs[0].message
    assert env.store.job_state("v")["spent"] > report.jobs[0].spent  # (what it says: the spend rises)
    # `bidder jobs` says it under the table, and in its JSON's note.
    db = ["--db", str(env.store.path), "--config", str(env.tmp / "bidder.toml")]
    table = CliRunner().invoke(main, ["jobs", *db])
    assert table.exit_code == 0, table.output
    assert table.output.splitlines()[-1].startswith(f"v: {said}{then}"), table.output
    rows = json.loads(CliRunner().invoke(main, ["jobs", "--format", "json", *db]).output)
    assert f"{said}{then}" in rows[0]["note"], rows[0]


RUNPOD_JOBS = "".join(f"""
[jobs.{name}]
gpu = ["{RTX4090}"]
hours = 0.5
tolerance = "none"
image = "img"
volume = {volume}
""" for name, volume in (("with", 20), ("without", 0)))


def test_a_finished_runpod_jobs_kept_pod_with_a_volume_is_said_to_bill_it(emulator, client, tmp_path):
    emulator.world.reclaim_rate_per_hour = 0.0
    env = make_env(emulator, client, tmp_path)
    config = env.config(RUNPOD_JOBS)
    for _ in range(24):
        report = env.tick(config)
        if all(j.state == "finished" for j in report.jobs):
            break
        env.emu.advance(600)
    lines = {j.name: j.message for j in report.jobs}
    [kept] = env.store.managed_pods("with")
    assert env.emu.world.pods[kept["pod_id"]].desired_status == "EXITED"
    said = (f"pod {kept['pod_id']} is kept stopped with its 20 GB volume, which RunPod bills while it is stopped, "
            f"until `bidder stop {kept['pod_id']} --terminate` deletes it")
    assert lines["with"].endswith(f"; {said}"), lines
    assert "kept stopped" not in lines["without"], lines  # (no volume: a stopped RunPod pod bills nothing)
    result = CliRunner(env={"RUNPOD_API_KEY": TEST_API_KEY}).invoke(
        main, ["jobs", "--db", str(env.store.path), "--config", str(tmp_path / "bidder.toml")])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == f"with: {said}", result.output
    assert result.output.count("kept stopped") == 1
    env.store.close()
