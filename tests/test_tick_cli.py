"""The cron side through the real CLI: `bidder tick` (lock, exit codes, --log, --dry-run), `bidder
jobs` / `jobs stop` / `jobs start`, `bidder pods` and `bidder stop`, against the emulator."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from click.testing import CliRunner
from executor_helpers import A6000, ON_DEMAND_SERVICE, make_env, named

from bidder.cli import main
from bidder.jobs import load_config
from bidder.sim import TEST_API_KEY
from bidder.tick import run_tick
from bidder.units import to_iso

CONFIG = ON_DEMAND_SERVICE


@pytest.fixture
def env(emulator, client, tmp_path):
    emulator.world.reclaim_rate_per_hour = 0.0
    e = make_env(emulator, client, tmp_path)
    (tmp_path / "bidder.toml").write_text(CONFIG)
    yield e
    e.store.close()


def cli(env, *args: str):
    runner = CliRunner(env={"RUNPOD_API_KEY": TEST_API_KEY})
    return runner.invoke(main, [*args])


def common(env) -> list[str]:
    return ["--db", str(env.tmp / "bidder.db"), "--api-url", env.emu.url, "--now", to_iso(env.emu.now)]


def tick(env, *extra: str):
    return cli(env, "tick", "--config", str(env.tmp / "bidder.toml"), *common(env), *extra)


def test_tick_runs_a_cycle_and_logs_one_json_line_per_action(env):
    log = env.tmp / "tick.jsonl"
    result = tick(env, "--log", str(log))
    assert result.exit_code == 0, result.output + result.stderr
    assert f"collected a price snapshot at {to_iso(env.emu.now)}" in result.output
    name = named(env.store, "bidder-train", 1)
    assert f"train: running: launched {name} on NVIDIA RTX A6000 (COMMUNITY) on-demand" in result.output
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["event"] for e in events] == ["collect", "deploy_on_demand"]
    create = events[1]
    assert create["outcome"] == "ok" and create["job"] == "train" and create["name"] == name
    assert create["pod_id"] == next(iter(env.emu.world.pods))
    assert create["expected_cost_per_hour"] == pytest.approx(0.33)
    assert TEST_API_KEY not in log.read_text()
    env.emu.advance(300)
    result = tick(env, "--log", str(log))
    assert result.exit_code == 0 and "train: running: running on NVIDIA RTX A6000" in result.output
    assert len(log.read_text().splitlines()) == 3  # appended: the second cycle collected, nothing else


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (a device that is always full)")
def test_a_log_it_cannot_write_does_not_stop_the_tick_from_acting(env):
    """`--log` on a full disk crashed every tick before it handled a job: a pod ran on to $1.32 against
    a $0.20 budget. The tick acts (here its budget stop), then says what the log missed, exit 1."""
    assert tick(env).exit_code == 0
    pod = next(iter(env.emu.world.pods.values()))
    env.emu.advance(3600)
    (env.tmp / "bidder.toml").write_text(CONFIG + "budget = 0.2\n")
    result = tick(env, "--log", "/dev/full")
    assert pod.desired_status == "EXITED"
    assert "train: budget_stopped: " in result.output
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "Error: could not write the --log file /dev/full: No space left on device (2 event(s) not written; the "
        "ledger in the database has every action: `bidder report`)"]


def test_two_config_files_on_one_database_never_fight_over_a_job(env):
    """Two bidder.toml files on one database, each with a job `train` on its own GPU: each tick moved the
    pod to its own GPU, four pods in four ticks, exit 0; with other names, each tick told the user to
    stop the other file's running pod. The first file to run a job keeps it; the other says so, exit 1."""
    (env.tmp / "a").mkdir()
    (env.tmp / "b").mkdir()
    first, second = env.tmp / "a" / "bidder.toml", env.tmp / "b" / "bidder.toml"
    first.write_text(CONFIG)
    second.write_text(CONFIG.replace("NVIDIA RTX A6000", "NVIDIA RTX A4000") + "budget = 5\n")
    assert cli(env, "tick", "--config", str(first), *common(env)).exit_code == 0
    [pod] = env.emu.world.pods.values()
    for _ in range(2):
        env.emu.advance(900)
        other = cli(env, "tick", "--config", str(second), *common(env))
        assert other.exit_code == 1 and list(env.emu.world.pods.values()) == [pod], other.output
        assert other.stderr.strip().splitlines()[-1].startswith(
            f"Error: job train cannot run: job train is also in {first}, whose ticks run it on this database"), other.stderr
        again = cli(env, "tick", "--config", str(first), *common(env))
        assert again.exit_code == 0 and "train: running: running on NVIDIA RTX A6000" in again.output, again.output
    assert pod.desired_status == "RUNNING" and len(env.emu.world.pods) == 1
    # `bidder jobs` from the second file listed the job with its own hours and budget: the first file's apply.
    listed = cli(env, "jobs", "--config", str(second), "--db", str(env.tmp / "bidder.db"))
    assert listed.exit_code == 0, listed.output
    assert listed.output.splitlines()[-1] == (f"train: run by {first}, whose settings apply (budget, hours and "
                                              f"deadline not shown); the [jobs.train] of {second} does not run")
    [row] = json.loads(cli(env, "jobs", "--config", str(second), "--db", str(env.tmp / "bidder.db"),
                           "--format", "json").output)
    assert row["hours"] is None and row["budget"] is None and row["note"].startswith(f"train: run by {first}")
    # `jobs stop`/`start` from the second file: it ended the first file's pod by its own on_finish.
    for sub in ("stop", "start"):
        refused = cli(env, "jobs", sub, "train", "--config", str(second), "--db", str(env.tmp / "bidder.db"),
                      *(["--api-url", env.emu.url] if sub == "stop" else []))
        assert refused.exit_code == 1 and pod.desired_status == "RUNNING", refused.output
        assert refused.stderr.strip() == (f"Error: job train is run by {first} on this database, not by {second}: "
                                          f"give --config {first} to act on it")
    # Another name in the second file: the first file's pod is not "unmanaged" there, nor its job.
    second.write_text(CONFIG.replace("[jobs.train]", "[jobs.eval]").replace("NVIDIA RTX A6000", "NVIDIA RTX A4000"))
    other = cli(env, "tick", "--config", str(second), *common(env))
    assert other.exit_code == 0 and "unmanaged" not in other.output, other.output
    assert env.store.job_state("train")["state"] != "unmanaged"
    # The first file gives the job up (it moved away): the second one takes it from there.
    first.unlink()
    second.write_text(CONFIG.replace("NVIDIA RTX A6000", "NVIDIA RTX A4000"))
    took = cli(env, "tick", "--config", str(second), *common(env))
    assert took.exit_code == 0 and "train: running: " in took.output, took.output + took.stderr


def test_a_tick_lock_held_for_half_an_hour_is_an_error(env):
    """A tick that stopped moving held the lock while every later tick gave way with exit 0: cron's
    mail never said that no job had been looked after for hours."""
    with env.store.exclusive_lock("tick"):
        lock = env.store.lock_path("tick")
        taken = os.stat(lock).st_mtime
        os.utime(lock, (taken - 29 * 60, taken - 29 * 60))  # a slow tick: given way to, quietly
        assert tick(env).exit_code == 0
        os.utime(lock, (taken - 31 * 60, taken - 31 * 60))
        stuck = tick(env)
    assert stuck.exit_code == 1, stuck.output
    assert stuck.stderr == (f"Error: another bidder (pid {os.getpid()}) has held the tick lock with no progress for "
                            "31 min: it may be stuck; this tick did not act. Stop that process if it is not moving "
                            "(the next tick carries on from the ledger)\n")
    assert env.emu.world.pods == {}


def test_a_long_tick_that_is_still_moving_is_not_taken_for_stuck(env):
    """The alarm read the lock's age: a tick of many jobs behind a slow API, 31 minutes in and still
    acting, was reported stuck (exit 1, cron's mail). It marks each job done on the lock file, so
    a tick that started 31 minutes ago and just finished a job is given way to quietly."""
    (env.tmp / "bidder.toml").write_text(CONFIG + CONFIG.replace("[jobs.train]", "[jobs.eval]"))
    lock = env.store.lock_path("tick")
    seen: dict[str, object] = {}

    def during(event: dict[str, object]) -> None:
        if event.get("job") == "train" and "backdated" not in seen:
            # The first job took half an hour (a slow API): the lock was taken 31 minutes ago.
            then = time.time() - 31 * 60
            os.utime(lock, (then, then))
            seen["backdated"] = True
        elif event.get("job") == "eval" and "other" not in seen:
            seen["other"] = tick(env)  # a cron tick started while the long one works on its second job

    config = load_config(str(env.tmp / "bidder.toml"))
    report = run_tick(env.client, env.store, config, env.emu.now, events=during)
    assert [j.state for j in report.jobs] == ["running", "running"], report.jobs
    other = seen["other"]
    assert other.exit_code == 0, other.output + other.stderr
    assert other.output.strip() == "another bidder tick is running (its lock is held): this one exits without acting"


def test_a_second_tick_while_another_runs_exits_0_saying_so(env):
    # This process holds the tick lock; a real second process (the installed CLI) must give way.
    with env.store.exclusive_lock("tick"):
        proc = subprocess.run(
            [sys.executable, "-c", "from bidder.cli import main; main()", "tick", "--config",
             str(env.tmp / "bidder.toml"), *common(env)],
            capture_output=True, text=True, timeout=60,
            env={**os.environ, "RUNPOD_API_KEY": TEST_API_KEY})
        in_process = tick(env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "another bidder tick is running (its lock is held): this one exits without acting"
    assert in_process.exit_code == 0 and "another bidder tick is running" in in_process.output
    assert env.emu.world.pods == {}
    # Once the lock is free, a tick runs.
    assert tick(env).exit_code == 0 and len(env.emu.world.pods) == 1


def test_a_bad_config_exits_1_with_one_line_naming_key_and_file(env):
    path = env.tmp / "bidder.toml"
    path.write_text(CONFIG + "max_price = -2\n")
    result = tick(env)
    assert result.exit_code == 1
    assert result.stderr == f"Error: {path}: [jobs.train] max_price = -2: must be greater than 0\n"
    assert env.emu.world.pods == {}


def test_the_api_down_exits_1_with_one_line(env):
    result = cli(env, "tick", "--config", str(env.tmp / "bidder.toml"), "--db", str(env.tmp / "bidder.db"),
                 "--api-url", "http://127.0.0.1:9/graphql", "--now", to_iso(env.emu.now), "--retries", "1")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ") and len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_dry_run_tick_sends_no_mutation(env):
    result = tick(env, "--dry-run")
    assert result.exit_code == 0, result.stderr
    # The market, the GPU, the cloud and the price (on-demand here) are on the line, not only in --log.
    assert ("[dry run] train: dry_run: would launch: on-demand NVIDIA RTX A6000 (COMMUNITY, runpod) at $0.3300/h "
            "(podFindAndDeployOnDemand): {") in result.output, result.output
    # The exact mutation and variables it would send, as `launch --dry-run` prints them.
    sent = result.output.split("(podFindAndDeployOnDemand): ", 1)[1].rsplit(" (not sent: dry run)", 1)[0]
    request = json.loads(sent)
    assert "podFindAndDeployOnDemand" in request["query"]
    assert request["variables"]["input"]["gpuTypeId"] == "NVIDIA RTX A6000", request
    assert env.emu.world.pods == {}
    assert env.store.actions() == []  # (a dry run changes nothing in the database)


def test_a_dry_run_tick_creates_no_database(env):
    missing = env.tmp / "none.db"
    result = cli(env, "tick", "--config", str(env.tmp / "bidder.toml"), "--db", str(missing), "--api-url", env.emu.url,
                 "--dry-run")
    assert result.exit_code == 1 and not missing.exists() and env.emu.world.pods == {}
    assert result.stderr.startswith(f"Error: no bidder database at {missing}: collect prices first"), result.stderr


def _dump(env) -> str:
    """The database as SQL text, read by a connection of its own."""
    conn = sqlite3.connect(env.tmp / "bidder.db")
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


def test_a_dry_run_tick_reads_its_own_poll_and_shows_the_budget_stop_it_would_send(env):
    """It read the spend of the last real tick, so it said "running: $0.000/h (spent $0.00)" where the
    real tick stopped the pod at its budget; and a stop it would send was neither shown nor called one.
    It reads its poll, and decides on fresh prices, in a scratch copy: it wrote its poll, its price
    snapshot and its dry_run actions into the user's ledger: a preview must change nothing."""
    assert tick(env).exit_code == 0
    pod = next(iter(env.emu.world.pods.values()))
    env.emu.advance(1800)
    (env.tmp / "bidder.toml").write_text(CONFIG + "budget = 0.4\n")
    before, lock = _dump(env), env.store.lock_path("tick")
    locked = os.stat(lock).st_mtime_ns
    dry = tick(env, "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    assert dry.output.startswith(f"[dry run] collected a price snapshot at {to_iso(env.emu.now)}"), dry.output
    assert _dump(env) == before  # no poll, no prices, no action, no job state: byte for byte
    assert os.stat(lock).st_mtime_ns == locked  # nor its lock
    spent = env.emu.world.true_spend(pod.id)
    assert spent == pytest.approx(0.165, abs=0.002)
    line = next(x for x in dry.output.splitlines() if x.startswith("[dry run] train: "))
    assert line.startswith(f"[dry run] train: dry_run: would stop pod {pod.id} (podStop): "), line
    assert f'"podId": "{pod.id}"' in line and "(not sent: dry run); then budget_stopped: budget: spent $0.17 + " \
        "the next hour at $0.33/h would pass $0.40; pod " + f"{pod.id} would be stopped" in line, line
    assert line.endswith("(spent $0.17, 0.50 h done)"), line
    assert pod.desired_status == "RUNNING"
    real = tick(env)
    assert real.exit_code == 0, real.stderr
    assert (f"train: budget_stopped: budget: spent $0.17 + the next hour at $0.33/h would pass $0.40; "
            f"pod {pod.id} stopped") in real.output
    assert pod.desired_status == "EXITED"


def test_ctrl_c_while_a_create_is_out_says_so_and_exits_130(env):
    # It said only "Aborted!" and exited 1, where `bidder launch` names the create that may have made a pod.
    env.emu.set_faults("late_create=1,late_delay=20")  # the create's answer is 20 s away
    # (The child gets the foreground's SIGINT: a test run started in the background without job control
    # inherits it ignored, and the tick then ran on to exit 0. See test_collect_every_exits_130_on_ctrl_c.)
    proc = subprocess.Popen([sys.executable, "-c", "from bidder.cli import main; main()", "tick", "--config",
                             str(env.tmp / "bidder.toml"), *common(env)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "RUNPOD_API_KEY": TEST_API_KEY},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 30
        while not (env.store.job_state("train") or {}).get("pending_name"):  # written before the create is sent
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        name = env.store.job_state("train")["pending_name"]
        time.sleep(0.5)  # (the create is on the wire)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        env.emu.set_faults(None)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == (f"Interrupted: the create of {name} was sent and may have made a pod: "
                                            "the next tick finds it by its name and watches it")
    assert "Traceback" not in err


def test_jobs_lists_stops_and_starts(env):
    assert tick(env).exit_code == 0
    pod = next(iter(env.emu.world.pods.values()))
    env.emu.advance(3600)
    assert tick(env).exit_code == 0
    listing = cli(env, "jobs", "--config", str(env.tmp / "bidder.toml"), "--db", str(env.tmp / "bidder.db"),
                  "--format", "json")
    assert listing.exit_code == 0, listing.stderr
    row = json.loads(listing.output)[0]
    assert (row["job"], row["state"], row["pod"], row["kind"]) == ("train", "running", pod.id, "on_demand")
    assert row["spent"] == pytest.approx(env.emu.world.true_spend(pod.id), rel=1e-3)
    assert row["work_h"] == pytest.approx(1.0, abs=0.01)
    table = cli(env, "jobs", "--config", str(env.tmp / "bidder.toml"), "--db", str(env.tmp / "bidder.db"))
    assert table.output.splitlines()[0].split()[:4] == ["job", "state", "pod", "gpu"]
    stopped = cli(env, "jobs", "--config", str(env.tmp / "bidder.toml"), "--db", str(env.tmp / "bidder.db"), "stop",
                  "train", "--api-url", env.emu.url, "--now", to_iso(env.emu.now))
    assert stopped.exit_code == 0, stopped.stderr
    assert stopped.output.strip() == (f"train: finished; stop pod {pod.id}; it has no volume, so it bills nothing "
                                      f"while stopped (`bidder stop {pod.id} --terminate` deletes it)")
    assert pod.desired_status == "EXITED"
    env.emu.advance(300)
    result = tick(env)
    assert "train: finished: stopped by `bidder jobs stop`" in result.output
    assert pod.desired_status == "EXITED" and len(env.emu.world.pods) == 1
    again = cli(env, "jobs", "--config", str(env.tmp / "bidder.toml"), "--db", str(env.tmp / "bidder.db"), "start",
                "train")
    assert again.exit_code == 1 and "is finished" in again.stderr
    # Its pod is kept stopped: the line says so, and how to pause a job rather than end it.
    assert (f"(its pod {pod.id} is kept stopped, its volume billed: `bidder stop {pod.id} --terminate` ends it); to "
            "pause a job and resume it on its own pod later, stop the pod instead (`bidder stop POD`, then "
            "`bidder jobs start train`)") in again.stderr, again.stderr
    missing = cli(env, "jobs", "--config", str(env.tmp / "bidder.toml"), "--db", str(env.tmp / "bidder.db"), "stop",
                  "nope")
    assert missing.exit_code == 1 and "no job 'nope'" in missing.stderr


def test_jobs_stop_of_a_job_removed_from_bidder_toml_stops_its_pod(env):
    # The tick no longer runs it, but its pod runs (and bills) on: the user wants it gone.
    assert tick(env).exit_code == 0
    [pod] = env.live_pods()
    path = env.tmp / "bidder.toml"
    path.write_text(CONFIG.replace("[jobs.train]", "[jobs.other]"))
    env.emu.advance(600)

    def jobs_stop(name: str, *extra: str):
        return cli(env, "jobs", "--config", str(path), "stop", name, *common(env), *extra)

    # `bidder jobs` lists it with the pod that still bills (it showed the file's jobs alone).
    listed = cli(env, "jobs", "--config", str(path), "--db", str(env.tmp / "bidder.db"))
    assert listed.exit_code == 0, listed.output
    assert f"train: not in {path}, but its pod {pod.id} is running: stop it with `bidder jobs stop train`" \
        in listed.output, listed.output
    rows = json.loads(cli(env, "jobs", "--config", str(path), "--db", str(env.tmp / "bidder.db"), "--format",
                          "json").output)
    assert [(r["job"], r["state"], r["pod"]) for r in rows if r["job"] == "train"] == [("train", "unmanaged", pod.id)]
    dry = jobs_stop("train", "--dry-run")
    assert dry.exit_code == 0 and dry.output.startswith(f"train: no longer in {path}: [dry run] would stop pod {pod.id}")
    assert pod.desired_status == "RUNNING"
    result = jobs_stop("train")
    assert result.exit_code == 0, result.output + result.stderr
    assert result.output == (f"train: no longer in {path}: finished; stop pod {pod.id}; it has no volume, so it "
                             f"bills nothing while stopped (`bidder stop {pod.id} --terminate` deletes it)\n")
    assert pod.desired_status == "EXITED"  # stopped, not deleted: its on_finish went with its table
    assert "train" not in cli(env, "jobs", "--config", str(path), "--db", str(env.tmp / "bidder.db")).output
    billed = env.emu.world.true_spend(pod.id)
    env.emu.advance(3600)
    assert env.emu.world.true_spend(pod.id) == billed
    # Again: nothing left to stop, said in one line; a name no one knows, likewise.
    again = jobs_stop("train")
    assert again.exit_code == 1 and again.stderr == (
        f"Error: job 'train' is no longer in {path} (jobs: other) and has no pod running in the ledger: nothing to "
        "stop (`bidder pods --all` shows its pods; `bidder stop ID --terminate` deletes one)\n")
    nope = jobs_stop("nope")
    assert nope.exit_code == 1 and nope.stderr == (
        f"Error: no job 'nope' in {path} (jobs: other) nor in the ledger {env.tmp / 'bidder.db'}: `bidder jobs` "
        "lists the jobs, `bidder pods --all` the pods\n")
    missing = cli(env, "jobs", "--config", str(path), "stop", "nope", "--db", str(env.tmp / "typo.db"))
    assert missing.exit_code == 1 and "no job 'nope'" in missing.stderr and not (env.tmp / "typo.db").exists()
    assert len(env.emu.world.pods) == 1 and "Traceback" not in again.stderr + nope.stderr + missing.stderr


def test_a_removed_jobs_billing_pod_is_a_warning_on_stderr_when_news_and_once_a_day(env):
    # Renamed in bidder.toml, the job's pod billed on with no budget watched, said on stdout alone (the
    # log), every tick: cron, which mails stderr, never said it.
    assert tick(env).exit_code == 0
    [pod] = env.live_pods()
    path = env.tmp / "bidder.toml"
    path.write_text(CONFIG.replace("[jobs.train]", "[jobs.renamed]"))
    said = (f"unmanaged: pod {pod.id} (job train) is running but its job is not in {path}: stop it with "
            f"`bidder stop {pod.id}`")
    dry = tick(env, "--dry-run")  # says it too, and keeps nothing: the tick below says it again
    assert dry.exit_code == 0 and f"[dry run] warning: {said}" in dry.stderr, dry.stderr
    log = env.tmp / "tick.jsonl"
    ticks = []
    for step in (300, 300, 300, 86400 - 600, 300):
        env.emu.advance(step)
        result = tick(env, "--log", str(log))
        assert result.exit_code == 0, result.output + result.stderr
        ticks.append((f"warning: {said}" in result.stderr.splitlines(), said in result.stdout.splitlines()))
    # News at the first tick, then in the log alone, then again a day after it was said.
    assert ticks == [(True, False), (False, True), (False, True), (True, False), (False, True)]
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert sum(e["event"] == "unmanaged" and e["pod_id"] == pod.id for e in events) == 5  # (the log has each)
    # Back in bidder.toml the job runs its pod again; taken out once more, that is news at once.
    path.write_text(CONFIG)
    env.emu.advance(300)
    assert said not in tick(env).output
    path.write_text(CONFIG.replace("[jobs.train]", "[jobs.renamed]"))
    env.emu.advance(300)
    assert f"warning: {said}" in tick(env).stderr


def test_jobs_stop_with_a_broken_bidder_toml_stops_the_jobs_pod_from_the_ledger(env):
    # A syntax error mid-edit stops every tick; `jobs stop` said only "not valid TOML", exit 1, while the
    # job's pod billed on (the user had to find its ID for `bidder stop ID`).
    assert tick(env).exit_code == 0
    [pod] = env.live_pods()
    path = env.tmp / "bidder.toml"
    path.write_text("[jobs.train\n")
    env.emu.advance(600)

    def jobs_stop(name: str, *extra: str):
        return cli(env, "jobs", "--config", str(path), "stop", name, *common(env), *extra)

    warning = (f"warning: {path}: not valid TOML: Expected ']' at the end of a table declaration (at line 1, column "
               "12); acting on train from the ledger: its pod is stopped, not terminated (its on_finish cannot be "
               "read)\n")
    dry = jobs_stop("train", "--dry-run")
    assert dry.exit_code == 0 and dry.stderr == warning, dry.stderr
    assert dry.stdout.startswith(f"train: from the ledger ({path} could not be read): [dry run] would stop pod {pod.id}")
    assert pod.desired_status == "RUNNING"
    result = jobs_stop("train")
    assert result.exit_code == 0 and result.stderr == warning, result.stderr
    assert result.stdout == (f"train: from the ledger ({path} could not be read): finished; stop pod {pod.id}; it "
                             f"has no volume, so it bills nothing while stopped (`bidder stop {pod.id} --terminate` "
                             "deletes it)\n")
    assert pod.desired_status == "EXITED"
    # Nothing left to stop, or a name the ledger does not know: one line, with why the file was not read.
    again = jobs_stop("train")
    assert again.exit_code == 1 and again.stderr == (
        f"Error: {path}: not valid TOML: Expected ']' at the end of a table declaration (at line 1, column 12); job "
        "'train' has no pod running in the ledger, so nothing was stopped: fix the file, then `bidder jobs stop "
        "train` ends the job\n")
    nope = jobs_stop("nope")
    assert nope.exit_code == 1 and nope.stderr.startswith(f"Error: {path}: not valid TOML: ") and nope.stderr.endswith(
        f"; no job 'nope' in the ledger {env.tmp / 'bidder.db'} either: fix the file, or `bidder pods --all` lists "
        "the pods (`bidder stop ID` stops one)\n") and len(nope.stderr.splitlines()) == 1
    # The file fixed, the job stays finished: no pod is rented for it again.
    path.write_text(CONFIG)
    env.emu.advance(300)
    fixed = tick(env)
    assert fixed.exit_code == 0 and "train: finished" in fixed.output, fixed.output
    assert [p.desired_status for p in env.emu.world.pods.values()] == ["EXITED"]


def test_pods_and_stop_by_id_hold_the_job_until_started(env):
    assert tick(env).exit_code == 0
    pod = next(iter(env.emu.world.pods.values()))
    env.emu.advance(1800)
    assert tick(env).exit_code == 0
    listing = cli(env, "pods", "--db", str(env.tmp / "bidder.db"), "--format", "json")
    rows = json.loads(listing.output)
    assert [(r["pod"], r["job"], r["status"], r["kind"]) for r in rows] == [(pod.id, "train", "RUNNING", "on_demand")]
    assert rows[0]["spent"] == pytest.approx(env.emu.world.true_spend(pod.id), rel=1e-3)
    # Numbers for scripts: the uptime in hours, money to 1/100 of a cent (the table says "30m").
    assert rows[0]["uptime_h"] == 0.5 and "uptime" not in rows[0]
    assert rows[0]["cost_per_hr"] == 0.33 and rows[0]["spent"] == round(rows[0]["spent"], 4)
    assert " 30m " in cli(env, "pods", "--db", str(env.tmp / "bidder.db")).output
    result = cli(env, "stop", pod.id, *common(env))
    assert result.exit_code == 0, result.stderr
    assert result.output.strip() == f"stopped pod {pod.id} (job train is held)"
    assert pod.desired_status == "EXITED"
    env.emu.advance(300)
    held = tick(env).output
    assert "train: held: pod stopped by `bidder stop`" in held and "held: held" not in held  # said once
    assert len(env.emu.world.pods) == 1
    # Held, its pod is kept stopped; the job has no volume, so it bills nothing: --all alone lists it.
    assert cli(env, "pods", "--db", str(env.tmp / "bidder.db")).output == "no managed pods billing\n"
    kept = cli(env, "pods", "--all", "--db", str(env.tmp / "bidder.db")).output
    assert pod.id in kept and "EXITED" in kept and "bills while" not in kept, kept
    started = cli(env, "jobs", "--config", str(env.tmp / "bidder.toml"), "--db", str(env.tmp / "bidder.db"),
                  "start", "train")
    assert started.exit_code == 0
    assert started.output.strip() == f"train: the next tick runs it (it resumes pod {pod.id}, where its volume is)"
    env.emu.advance(300)
    assert f"train: running: resumed {pod.id}" in tick(env).output  # its own pod, not a second one
    assert len(env.running()) == 1 and len(env.emu.world.pods) == 1


def test_stop_needs_a_pod_or_a_job(env):
    result = cli(env, "stop", *common(env))
    assert result.exit_code == 2 and "give a POD id or --job NAME" in result.stderr
    result = cli(env, "stop", "--job", "ghost", *common(env))
    assert result.exit_code == 1 and result.stderr.startswith("Error: job ghost has no active pod")


def test_jobs_and_pods_refuse_a_missing_database_and_create_nothing(env):
    # A mistyped --db: one line, exit 1, as `bidder report` says; no file and no folder made.
    missing = env.tmp / "nonexistent" / "dir" / "x.db"
    for args in (["jobs", "--config", str(env.tmp / "bidder.toml")], ["jobs", "--format", "json", "--config", str(env.tmp / "bidder.toml")], ["pods"],
                 ["pods", "--all", "--format", "json"], ["pods", "--refresh", "--api-url", env.emu.url],
                 ["report"]):
        result = cli(env, *args, "--db", str(missing))
        assert result.exit_code == 1, (args, result.output)
        assert result.output.startswith(f"Error: no bidder database at {missing}: "), (args, result.output)
        assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
        assert not (env.tmp / "nonexistent").exists(), args
    typo = env.tmp / "typo.db"
    result = cli(env, "pods", "--db", str(typo))
    assert result.exit_code == 1 and "no bidder database at" in result.output and not typo.exists()
    # The real database still reads as before.
    assert tick(env).exit_code == 0
    result = cli(env, "jobs", "--config", str(env.tmp / "bidder.toml"), "--db", str(env.tmp / "bidder.db"))
    assert result.exit_code == 0 and "train" in result.output and "running" in result.output


@pytest.mark.parametrize(("change", "said"), [
    (("gpu = [\"RTX 9999\"]", None), "[jobs.train] gpu: unknown GPU type 'RTX 9999'; close matches: "),
    ((None, "speed = { \"A6000\" = 2.0 }"), "[jobs.train] speed: unknown GPU type 'A6000'; close matches: "
                                                "NVIDIA RTX A6000 (write the GPU type id in full)"),
])
def test_jobs_says_a_job_whose_gpu_names_the_tick_refuses_cannot_run(env, change, said):
    """`bidder jobs` listed a job whose `gpu` matches no GPU type (or whose `speed` key is no GPU type id)
    as new, exit 0, with no word, while every `bidder tick` of the file exited 1 on it."""
    assert tick(env).exit_code == 0  # (the catalogue collected)
    gpu, speed = change
    config = CONFIG.replace(f'gpu = ["{A6000}"]', gpu) if gpu else CONFIG + speed + "\n"
    (env.tmp / "bidder.toml").write_text(config)
    refused = tick(env)
    assert refused.exit_code == 1 and said in refused.stderr, refused.stderr
    args = ["jobs", "--config", str(env.tmp / "bidder.toml"), "--db", str(env.tmp / "bidder.db")]
    listed = cli(env, *args)
    assert listed.exit_code == 0, listed.output + listed.stderr
    line = listed.output.strip().splitlines()[-1]
    assert line.startswith(f"train: cannot run: {said}") and line.endswith(
        f"`bidder tick` refuses {env.tmp / 'bidder.toml'} until it is fixed (no job of it runs)"), line
    as_json = cli(env, *args, "--format", "json")
    assert json.loads(as_json.stdout)[0]["note"] == line
    assert as_json.stderr == f"warning: {line}\n"
    # The file as it was lists without the line.
    (env.tmp / "bidder.toml").write_text(CONFIG)
    assert "cannot run" not in cli(env, *args).output

def test_a_min_vram_no_gpu_type_has_is_said_in_bidder_tomls_words(env):
    """A tick's job with min_vram = 10000 waited with "collect prices first (`bidder collect`) or widen
    --gpu/--min-vram/--cloud": the tick collects its own prices, and bidder.toml has keys, not options."""
    (env.tmp / "bidder.toml").write_text(CONFIG.replace(f'gpu = ["{A6000}"]', "min_vram = 10000"))
    result = tick(env)
    assert result.exit_code == 0, result.output + result.stderr
    [line] = [x for x in result.output.splitlines() if x.startswith("train: ")]
    largest = max(q.memory_in_gb or 0 for q in env.store.latest_quotes())
    assert line.startswith("train: waiting: no current quote for >= 10000 GB VRAM with 1 GPU(s) in cloud COMMUNITY "
                           f"on market runpod: no GPU type has that much memory (the most is {largest} GB a GPU): "
                           "lower min_vram in bidder.toml, or name GPU types with gpu (spent $0.00"), line
    assert not env.emu.world.pods


def test_jobs_stop_and_start_refuse_a_missing_database_and_leave_the_pod_running(env):
    """`jobs stop train --db typo.db` made typo.db and its lock file, said "train: finished; it had no
    pod", exit 0, while the job's real pod ran on (and `jobs start` made the file too)."""
    assert tick(env).exit_code == 0
    [pod] = env.emu.world.pods.values()
    typo = env.tmp / "bidder.dbb"
    config = ["--config", str(env.tmp / "bidder.toml")]
    for args in (["jobs", "stop", "train", *config, "--db", str(typo), "--api-url", env.emu.url],
                 ["jobs", "stop", "train", "--dry-run", *config, "--db", str(typo), "--api-url", env.emu.url],
                 ["jobs", *config, "--db", str(typo), "stop", "train", "--api-url", env.emu.url],
                 ["jobs", "start", "train", *config, "--db", str(typo)]):
        result = cli(env, *args)
        assert result.exit_code == 1, (args, result.output)
        [error] = result.stderr.strip().splitlines()
        assert error.startswith(f"Error: no bidder database at {typo}: "), (args, error)
        assert sorted(p.name for p in env.tmp.iterdir() if p.name.startswith("bidder.dbb")) == [], args
    assert pod.desired_status == "RUNNING"


def test_a_lost_create_is_said_once_on_the_job_line(env):
    # The create's answer is lost and it never ran: the job waits; the reason is one text, not two
    # (the tick exits 1 for the failed call: tests/test_call_failures.py).
    env.emu.malform("podFindAndDeployOnDemand", {"errors": [{"message": "Internal"}]}, status=500, execute=False)
    result = tick(env)
    assert result.exit_code == 1, result.output
    [line] = [x for x in result.output.splitlines() if x.startswith("train: ")]
    assert line.startswith("train: waiting: not launched: on_demand NVIDIA RTX A6000/COMMUNITY: error (the create's "
                           "answer was lost"), line
    assert line.count("the create's answer was lost") == 1 and f"no pod named {named(env.store, 'bidder-train', 1)} exists yet" in line
    assert env.emu.world.pods == {}


@pytest.mark.parametrize("what", ["stopped", "terminated"])
def test_a_stop_outside_bidder_seen_first_by_pods_refresh_still_holds_the_job(env, what):
    # `pods --refresh` saw the user's stop (or terminate) first; the next tick read the pod as merely
    # stopped and resumed it (or rented another), against the user's wish. A tick killed after its polls
    # and before the job did the same.
    assert tick(env).exit_code == 0
    [pod] = env.live_pods()
    env.emu.advance(600)
    assert tick(env).exit_code == 0
    (env.client.stop if what == "stopped" else env.client.terminate)(pod.id)  # in RunPod's console
    env.emu.advance(300)
    assert cli(env, "pods", "--refresh", *common(env)).exit_code == 0
    env.emu.advance(300)
    for _ in range(2):
        result = tick(env)
        assert result.exit_code == 0 and f"train: held: its pod was {what} outside bidder" in result.output, result.output
        assert env.live_pods() == [] or env.live_pods()[0].desired_status != "RUNNING"
        assert len(env.emu.world.pods) == 1
        env.emu.advance(300)
    started = cli(env, "jobs", "--config", str(env.tmp / "bidder.toml"), "--db", str(env.tmp / "bidder.db"),
                  "start", "train")
    assert started.exit_code == 0, started.output
    assert "train: running" in tick(env).output  # the user's own start: the job runs again


def test_a_tick_that_cannot_write_after_its_create_says_a_pod_may_run(env):
    # The disk filled while the create was out: the tick said only "cannot write to ...", and cron mailed
    # that line alone while the pod ran and billed (`bidder launch` says it, as on Ctrl-C).
    db = str(env.tmp / "bidder.db")

    def disk_full(payload):  # the create runs; then no pod row can be written
        with sqlite3.connect(db) as conn:
            conn.execute("CREATE TRIGGER full BEFORE INSERT ON pods BEGIN SELECT RAISE(ABORT, 'database or disk "
                         "is full'); END")
        return payload

    env.emu.malform("podFindAndDeployOnDemand", disk_full)
    result = tick(env)
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    [pod] = env.live_pods()
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"Error: cannot write to {db}: database or disk is full; the create of {pod.name} was sent "
                           "and may have made a pod that runs and bills: the next tick finds it by its name"), line
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TRIGGER full")  # space again
    env.emu.advance(300)
    assert tick(env).exit_code == 0 and [p.id for p in env.live_pods()] == [pod.id]
    assert env.store.pod(pod.id)["state"] == "active"


def test_a_pod_stopped_before_any_good_poll_is_booked_at_its_launch_price_not_0(env):
    """A tick whose poll of the pod was set aside (its time 2 h behind the API's: the uptime read as longer
    than the pod's life) moved the job and booked the pod's run at $0: the exit had no rate."""
    assert tick(env).exit_code == 0
    [pod_id] = env.emu.world.pods
    launched = env.emu.now
    env.emu.advance(7200)
    (env.tmp / "bidder.toml").write_text(CONFIG.replace('cloud = "community"', 'cloud = "secure"'))
    result = cli(env, "tick", "--config", str(env.tmp / "bidder.toml"), "--db", str(env.tmp / "bidder.db"),
                 "--api-url", env.emu.url, "--now", to_iso(launched + timedelta(minutes=1)))
    assert "ignored an impossible poll" in result.stderr, result.output + result.stderr
    assert env.emu.world.pods[pod_id].desired_status != "RUNNING", result.output  # moved: the old pod stopped
    [old] = [p for p in json.loads(cli(env, "pods", "--all", "--format", "json", "--db",
                                       str(env.tmp / "bidder.db")).output) if p["pod"] == pod_id]
    assert old["spent"] == pytest.approx(0.33 / 60, abs=1e-4), old  # the minute the tick knew of, at $0.33/h


def test_a_running_job_that_can_no_longer_meet_its_deadline_says_so_and_exits_1(env):
    # Its deadline cut under the work left (or passed): the pod ran on, "running", exit 0, past it.
    job = CONFIG.replace("keep_running = true", "hours = 3")
    (env.tmp / "bidder.toml").write_text(job + 'deadline = "1d"\n')
    assert tick(env).exit_code == 0
    env.emu.advance(1800)
    (env.tmp / "bidder.toml").write_text(job + 'deadline = "1h"\n')  # 2.5 h of work left, 0.5 h to go
    result = tick(env)
    assert result.exit_code == 1, result.output
    assert "train: running: running on NVIDIA RTX A6000" in result.stdout  # the pod runs on: its work is kept
    assert "is 0.5 h away: the 2.5 h of work left cannot finish by it; its pod runs on to finish the work: set a " \
           "later deadline, or `bidder jobs stop train`" in result.stdout, result.stdout
    [error] = result.stderr.strip().splitlines()
    assert error.startswith("Error: job train: its deadline ") and "`bidder jobs stop train`" in error, error
    env.emu.advance(3600)
    assert "has passed: the 1.5 h of work left cannot finish by it" in tick(env).stdout
    (env.tmp / "bidder.toml").write_text(job + 'deadline = "2d"\n')  # a later deadline: all is well again
    assert tick(env).exit_code == 0
