"""Issue 14: lost answers and races, each against the emulator over HTTP: a create that lands after
the client's timeout, bidder's own stop interrupted, and `bidder stop` / `bidder jobs` racing a tick."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from executor_helpers import ON_DEMAND_SERVICE, impatient_env, interrupted_spot_pod, live, named, wait_for

from bidder.cli import main
from bidder.errors import LockHeld
from bidder.executor import CREATE_GRACE
from bidder.store import Store
from bidder.tick import run_tick
from bidder.units import to_iso

ON_DEMAND = ON_DEMAND_SERVICE


env = pytest.fixture(impatient_env, name="env")


# -- 1. a create executed after the client's timeout ------------------------------------------------
def test_a_create_that_lands_after_the_timeout_is_adopted_not_duplicated(env):
    config = env.config(ON_DEMAND)
    env.emu.set_faults("late_create=1,late_delay=4")
    report = env.tick(config)
    # The client gave up at 1 s; the name was looked up at once and nothing was there yet.
    assert report.jobs[0].state == "waiting", report.jobs[0].message
    assert "may still" in report.jobs[0].message
    assert env.store.job_state("train")["pending_name"] == named(env.store, "bidder-train", 1)
    env.emu.set_faults(None)
    wait_for(lambda: len(env.emu.world.pods) == 1)  # the create lands, 3 s after the client's timeout
    env.emu.advance(300)
    report = env.tick(config)
    assert report.jobs[0].state == "running", report.jobs[0].message
    assert [p.name for p in live(env)] == [named(env.store, "bidder-train", 1)]
    for _ in range(3):
        env.emu.advance(300)
        assert env.tick(config).jobs[0].state == "running"
    assert len(env.emu.world.pods) == 1
    assert env.store.job_state("train")["attempts"] == 1
    assert [f"{a['kind']}:{a['outcome']}" for a in env.store.actions("train")] == ["deploy_on_demand:ok"]


def test_within_the_grace_nothing_else_is_rented_and_after_it_a_new_name_is_taken(env):
    config = env.config(ON_DEMAND)
    env.emu.set_faults("late_create=1,late_delay=30")  # lands (much) later, if the emulator lives that long
    assert env.tick(config).jobs[0].state == "waiting"
    env.emu.set_faults(None)
    ticks = int(CREATE_GRACE.total_seconds() // 300)
    for _ in range(ticks - 1):
        env.emu.advance(300)
        report = env.tick(config)
        assert report.jobs[0].state == "waiting" and named(env.store, "bidder-train", 1) in report.jobs[0].message
    assert env.emu.world.pods == {}
    env.emu.advance(300)
    report = env.tick(config)
    assert report.jobs[0].state == "running", report.jobs[0].message
    # A name of its own: the lost one's pod, landing later, is never taken for this create's.
    assert [p.name for p in live(env)] == [named(env.store, "bidder-train", 2)]
    assert env.store.job_state("train")["attempts"] == 2
    assert env.store.job_state("train")["lost_names"] == [named(env.store, "bidder-train", 1)]


def test_a_create_landing_after_its_grace_is_found_by_name_and_retired(env):
    config = env.config(ON_DEMAND)
    env.emu.set_faults("late_create=1,late_delay=5")
    assert env.tick(config).jobs[0].state == "waiting"
    env.emu.set_faults(None)
    # The grace runs out on the virtual clock before the late create lands (5 s of real time).
    env.emu.advance(CREATE_GRACE.total_seconds() + 60)
    report = env.tick(config)
    assert report.jobs[0].state == "running"
    first = report.jobs[0].pod_id
    wait_for(lambda: len(env.emu.world.pods) == 2)
    env.emu.advance(300)
    report = env.tick(config)
    assert report.jobs[0].state == "running" and report.jobs[0].pod_id == first
    late = next(p for p in env.emu.world.pods.values() if p.id != first)
    assert late.name == named(env.store, "bidder-train", 1) and late.desired_status != "RUNNING"
    assert env.store.pod(late.id)["state"] == "retired"
    assert [p.id for p in env.emu.world.pods.values() if p.desired_status == "RUNNING"] == [first]


# -- 3. bidder's own stop, interrupted ----------------------------------------------------------------
# $0.33/h on-demand, 10 h of work: $3.50 covers it. Lowered to $0.90 after 2 h ($0.66 spent), the
# next hour would pass it: the tick stops the pod at its budget.
BUDGET = ON_DEMAND.replace("keep_running = true", "hours = 10") + "budget = 3.5\n"
LOWERED = BUDGET.replace("budget = 3.5", "budget = 0.9")


def cli_args(env, *args: str) -> list[str]:
    return [sys.executable, "-c", "from bidder.cli import main; main()", *args, "--db", str(env.tmp / "bidder.db"),
            "--api-url", env.emu.url, "--now", to_iso(env.emu.now)]


def test_a_budget_stop_whose_tick_is_killed_before_the_answer_ends_budget_stopped(env):
    config = env.config(BUDGET)
    assert env.tick(config).jobs[0].state == "running"
    pod = live(env)[0]
    env.emu.advance(2 * 3600)
    config = env.config(LOWERED)
    env.emu.set_faults("slow_stop=1,late_delay=60")  # the stop executes; its answer waits a minute
    proc = subprocess.Popen(cli_args(env, "tick", "--config", str(env.tmp / "bidder.toml")),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "RUNPOD_API_KEY": env.emu.api_key})
    try:
        wait_for(lambda: pod.desired_status == "EXITED", seconds=60)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    env.emu.set_faults(None)
    assert [a["outcome"] for a in env.store.actions("train") if a["kind"] == "stop"] == ["pending"]
    assert env.store.job_state("train")["state"] == "running"  # the killed tick never saved
    env.emu.advance(300)
    report = env.tick(config)
    assert report.jobs[0].state == "budget_stopped", report.jobs[0].message
    assert [a["outcome"] for a in env.store.actions("train") if a["kind"] == "stop"] == ["ok"]
    assert env.store.pod(pod.id)["state"] == "stopped"
    assert not any(e["event"] == "interrupted" for e in report.events)
    env.emu.advance(300)
    assert env.tick(config).jobs[0].state == "budget_stopped"
    assert len(env.emu.world.pods) == 1 and pod.desired_status == "EXITED"
    # A budget raise resumes it, as after any budget stop (a held job would wait for `jobs start`).
    raised = env.config(BUDGET)
    env.emu.advance(300)
    assert env.tick(raised).jobs[0].state == "running"


def test_a_budget_stop_that_executes_but_answers_errors_is_still_bidders_own(env, tmp_path):
    config = env.config(BUDGET)
    assert env.tick(config).jobs[0].state == "running"
    pod = live(env)[0]
    env.emu.advance(2 * 3600)
    config = env.config(LOWERED)
    env.emu.set_faults("slow_stop=1,late_delay=1.5")  # each send executes and times out (client: 1 s)
    report = env.tick(config)
    assert pod.desired_status == "EXITED"
    assert report.jobs[0].state == "running" and "not confirmed" in report.jobs[0].message
    assert [a["outcome"] for a in env.store.actions("train") if a["kind"] == "stop"] == ["error"]
    env.emu.set_faults(None)
    env.emu.advance(300)
    report = env.tick(config)
    assert report.jobs[0].state == "budget_stopped", report.jobs[0].message
    assert env.store.pod(pod.id)["state"] == "stopped"
    assert len(env.emu.world.pods) == 1


# -- 4. `bidder stop` and `bidder jobs` racing a tick ---------------------------------------------------
SPOT = ON_DEMAND.replace('"none"', '"high"')


def cli(env, *args: str):
    runner = CliRunner(env={"RUNPOD_API_KEY": env.emu.api_key})
    return runner.invoke(main, list(args))


def resume_in_flight(env, config):
    """Run `bidder tick` (a real process) until it has sent a podBidResume that the emulator holds for
    3 s; returns the process while the resume is in flight."""
    env.emu.set_faults("late_resume=1,late_delay=3")
    for _ in range(60):
        proc = subprocess.Popen(cli_args(env, "tick", "--config", str(env.tmp / "bidder.toml")),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "RUNPOD_API_KEY": env.emu.api_key})
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if any(a["kind"] == "bid_resume" and a["outcome"] == "pending" for a in env.store.actions("train")):
                return proc
            time.sleep(0.02)
        proc.communicate(timeout=60)
        env.emu.advance(300)  # the tick waited for the market to settle: try the next cycle
    raise AssertionError("no tick resumed the pod")


def test_bidder_stop_job_waits_for_the_tick_and_is_not_undone(env):
    config = env.config(SPOT)
    pod = interrupted_spot_pod(env, config)
    proc = resume_in_flight(env, config)
    try:
        stopped = cli(env, "stop", "--job", "train", "--wait", "30", "--db", str(env.tmp / "bidder.db"),
                      "--api-url", env.emu.url, "--now", to_iso(env.emu.now))
    finally:
        _out, err = proc.communicate(timeout=60)
    env.emu.set_faults(None)
    assert proc.returncode == 0, err
    assert stopped.exit_code == 0, stopped.output + stopped.stderr
    assert stopped.output.strip() == f"stopped pod {pod.id} (job train is held)"
    assert pod.desired_status == "EXITED"
    assert env.store.job_state("train")["state"] == "held"
    for _ in range(3):
        env.emu.advance(300)
        assert env.tick(config).jobs[0].state == "held"
    assert len(env.emu.world.pods) == 1 and pod.desired_status == "EXITED"


def test_a_stop_written_while_the_tick_resumes_stands_and_the_resumed_pod_is_stopped(env):
    # A writer that does not take the tick's lock (an older bidder, a script): the tick re-reads the
    # job's state before it saves, keeps the user's stop, and stops the pod its resume restarted.
    config = env.config(SPOT)
    pod = interrupted_spot_pod(env, config)
    proc = resume_in_flight(env, config)
    try:
        env.store.save_job_state("train", state="held", note="held: stopped by the user")
    finally:
        out, err = proc.communicate(timeout=60)
    env.emu.set_faults(None)
    assert proc.returncode == 0, err
    assert "train: held" in out, out
    assert env.store.job_state("train")["state"] == "held"
    assert pod.desired_status == "EXITED"
    env.emu.advance(300)
    assert env.tick(config).jobs[0].state == "held"
    assert len(env.emu.world.pods) == 1 and pod.desired_status == "EXITED"


def test_stop_and_jobs_start_give_up_after_wait_saying_a_tick_runs(env):
    config = env.config(ON_DEMAND)
    assert env.tick(config).jobs[0].state == "running"
    pod = live(env)[0]
    db = ["--db", str(env.tmp / "bidder.db")]
    with env.store.exclusive_lock("tick"):
        stopped = cli(env, "stop", "--job", "train", "--wait", "0.3", *db, "--api-url", env.emu.url)
        started = cli(env, "jobs", "--config", str(env.tmp / "bidder.toml"), *db, "start", "train", "--wait", "0.3")
        ended = cli(env, "jobs", "--config", str(env.tmp / "bidder.toml"), *db, "stop", "train", "--wait", "0.3",
                    "--api-url", env.emu.url)
    for result in (stopped, started, ended):
        assert result.exit_code == 1, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"Error: a bidder tick is running (pid {os.getpid()})")
        assert "after 0.3 s" in lines[0]
    assert "nothing was stopped" in stopped.stderr
    assert "the next tick stops the job's pod" in ended.stderr
    assert pod.desired_status == "RUNNING"


def test_a_tick_through_a_symlink_to_the_database_takes_the_same_lock(env, monkeypatch):
    # `--db link.db` (a symlink) and `--db bidder.db` are one database: one lock, never two ticks at once.
    config = env.config(ON_DEMAND)
    link = env.tmp / "link.db"
    link.symlink_to(env.tmp / "bidder.db")
    (env.tmp / "sub").mkdir()
    monkeypatch.chdir(env.tmp)
    with env.store.exclusive_lock("tick"):
        through_link = cli(env, "tick", "--config", str(env.tmp / "bidder.toml"), "--db", "link.db",
                           "--api-url", env.emu.url, "--now", to_iso(env.emu.now))
        with Store.open(Path("sub", "..", "link.db")) as other, pytest.raises(LockHeld):
            run_tick(env.client, other, config, env.emu.now)
        stop = cli(env, "stop", "--job", "train", "--wait", "0.2", "--db", str(link), "--api-url", env.emu.url)
    assert through_link.exit_code == 0, through_link.output + through_link.stderr
    assert "another bidder tick is running" in through_link.output
    assert stop.exit_code == 1 and "a bidder tick is running" in stop.stderr
    assert env.emu.world.pods == {}  # nothing was launched while the lock was held
    assert sorted(p.name for p in env.tmp.glob("*.lock")) == ["bidder.db.tick.lock"]
    with Store.open(link) as other:  # the lock is free again: a tick through the link runs
        assert run_tick(env.client, other, config, env.emu.now).jobs[0].state == "running"
    assert len(live(env)) == 1


def test_the_late_fault_kinds_parse_print_and_count():
    from bidder.sim.faults import FaultInjector, FaultSpec

    spec = FaultSpec.parse("late_create=1,late_resume=0.5,slow_stop=0.25,late_delay=3")
    assert (spec.late_create, spec.late_resume, spec.slow_stop, spec.late_delay) == (1.0, 0.5, 0.25, 3.0)
    assert spec.active and FaultSpec.parse(str(spec)) == spec
    injector = FaultInjector(FaultSpec.parse("late_create=1,slow_stop=1"), seed=0)
    assert injector.late({"podFindAndDeployOnDemand"}) == ("late_create", None)
    assert injector.late({"podStop"}) == (None, "slow_stop")
    assert injector.late({"podBidResume"}) == (None, None)  # late_resume is 0: nothing drawn
    assert injector.counts == {"late_create": 1, "slow_stop": 1}


def test_a_terminate_whose_tick_is_killed_before_the_answer_is_not_taken_for_the_users(env):
    config = env.config(ON_DEMAND.replace("keep_running = true", "hours = 1") + 'on_finish = "terminate"\n')
    assert env.tick(config).jobs[0].state == "running"
    pod = live(env)[0]
    env.emu.advance(3600 + 300)  # the work is done: the next tick terminates the pod
    env.emu.set_faults("slow_stop=1,late_delay=60")
    proc = subprocess.Popen(cli_args(env, "tick", "--config", str(env.tmp / "bidder.toml")),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "RUNPOD_API_KEY": env.emu.api_key})
    try:
        wait_for(lambda: pod.desired_status == "TERMINATED", seconds=60)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    env.emu.set_faults(None)
    assert [a["outcome"] for a in env.store.actions("train") if a["kind"] == "terminate"] == ["pending"]
    env.emu.advance(300)
    report = env.tick(config)
    assert report.jobs[0].state == "finished", report.jobs[0].message
    assert not any(e["event"] == "pod_gone" for e in report.events)
    assert [a["outcome"] for a in env.store.actions("train") if a["kind"] == "terminate"] == ["ok"]
    assert env.store.pod(pod.id)["state"] == "terminated"
