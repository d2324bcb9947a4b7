"""A stop's intent (written before the stop is sent) is applied only while it can still be the job's
last word: against the emulator over HTTP, a `bidder stop` whose stop failed leaves its intent behind,
the job later moves to another pod, and that intent must not hold the job while the new pod runs."""

from __future__ import annotations

from click.testing import CliRunner
from executor_helpers import A6000, make_env

from bidder.cli import main
from bidder.sim import TEST_API_KEY
from bidder.units import to_iso

CONFIG = f"""
[jobs.train]
gpu = ["{A6000}"]
cloud = "community"
hours = 3
tolerance = "none"
budget = 100
image = "runpod/pytorch:latest"
"""


def cli(env, *args):
    return CliRunner(env={"RUNPOD_API_KEY": TEST_API_KEY}).invoke(main, [*args])


def tick(env):
    result = cli(env, "tick", "--config", str(env.tmp / "bidder.toml"), "--db", str(env.tmp / "bidder.db"),
                 "--api-url", env.emu.url, "--now", to_iso(env.emu.now), "--retries", "1")
    assert result.exit_code == 0, result.output + result.stderr
    return result


def running_job(emulator, client, tmp_path):
    """The job after its first tick: (env, its running pod)."""
    emulator.world.reclaim_rate_per_hour = 0.0
    env = make_env(emulator, client, tmp_path)
    (tmp_path / "bidder.toml").write_text(CONFIG)
    tick(env)
    [pod] = env.running()
    env.emu.advance(300)
    return env, pod


def failed_user_stop(env, *, executed: bool) -> None:
    """`bidder stop --job train` whose podStop answers 500 every time (executed or not): exit 1."""
    env.emu.malform("podStop", {"errors": [{"message": "Internal Server Error"}]}, status=500, execute=executed,
                    times=None)
    stopped = cli(env, "stop", "--job", "train", "--db", str(env.tmp / "bidder.db"), "--api-url", env.emu.url,
                  "--now", to_iso(env.emu.now))
    assert stopped.exit_code == 1, stopped.output + stopped.stderr
    env.emu.clear_malformed()


def test_a_failed_stops_leftover_intent_never_holds_the_job_after_it_moved(emulator, client, tmp_path):
    env, first = running_job(emulator, client, tmp_path)
    failed_user_stop(env, executed=False)
    assert first.desired_status == "RUNNING"
    env.emu.advance(300)
    tick(env)
    # The user moves the job to the other cloud: the tick replaces the first pod by a second.
    (tmp_path / "bidder.toml").write_text(CONFIG.replace('cloud = "community"', 'cloud = "secure"'))
    for _ in range(3):
        env.emu.advance(300)
        tick(env)
    [second] = env.running()
    assert second.id != first.id and env.store.job_state("train")["state"] == "running"
    # It was held ("pod stopped by `bidder stop`") while the second pod ran unchecked, past its 3 hours.
    for _ in range(12):
        env.emu.advance(1800)
        tick(env)
    assert env.running() == [] and env.store.job_state("train")["state"] == "finished"


def test_a_stop_that_executed_though_its_answer_failed_still_holds_the_job(emulator, client, tmp_path):
    # Its intent stays (the stop may have executed), and the next tick reads the exit as that stop: held,
    # not relaunched.
    env, pod = running_job(emulator, client, tmp_path)
    failed_user_stop(env, executed=True)
    assert pod.desired_status == "EXITED"
    for _ in range(3):
        env.emu.advance(300)
        tick(env)
    assert env.running() == [] and env.store.job_state("train")["state"] == "held"


def test_a_failed_stops_intent_is_not_read_into_a_later_unconfirmed_stop_of_a_move(emulator, client, tmp_path):
    # The user's stop failed; the job later moved, and the stop of its old pod executed with its answer
    # lost. The next tick confirmed that stop with the user's old intent: held, "stopped by `bidder stop`".
    env, first = running_job(emulator, client, tmp_path)
    failed_user_stop(env, executed=False)
    assert first.desired_status == "RUNNING"
    env.emu.advance(300)
    tick(env)  # polls it running: the intent is stale from here on
    (tmp_path / "bidder.toml").write_text(CONFIG.replace('cloud = "community"', 'cloud = "secure"'))
    for op in ("podStop", "podTerminate"):
        env.emu.malform(op, {"errors": [{"message": "Internal Server Error"}]}, status=500, execute=True, times=None)
    env.emu.advance(300)
    cli(env, "tick", "--config", str(env.tmp / "bidder.toml"), "--db", str(env.tmp / "bidder.db"),
        "--api-url", env.emu.url, "--now", to_iso(env.emu.now), "--retries", "1")  # (exit 1: its stop failed)
    env.emu.clear_malformed()
    for _ in range(3):
        env.emu.advance(300)
        tick(env)
    state = env.store.job_state("train")
    assert state["state"] != "held", state.get("note")
