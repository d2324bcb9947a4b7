"""What becomes of a pod that `bidder launch` made, through the real CLI against the emulator over HTTP:
`bidder stop` says what it did to the pod (no tick runs a launch, so no job is "held" for it to
continue), the pod really stops billing and nothing restarts it, and the launch's job state (the HTML
report's job states) follows its pods: ended once its pod is gone."""

from __future__ import annotations

import csv
import json
import re
import sqlite3

import pytest
from click.testing import CliRunner
from executor_helpers import A6000, RTX4090, seed_history
from vast_helpers import seed_vast_history

from bidder.cli import main
from bidder.sim import TEST_API_KEY
from bidder.store import Store
from bidder.units import to_iso


def cli(env, *args: str):
    return CliRunner(env={"RUNPOD_API_KEY": TEST_API_KEY}).invoke(main, [*args])


def common(env) -> list[str]:
    return ["--db", str(env.tmp / "bidder.db"), "--api-url", env.emu.url, "--now", to_iso(env.emu.now)]


def launched(env, *extra: str):
    """The emulator's pod of a `bidder launch` (on-demand: the optimizer never waits for it)."""
    before = set(env.emu.world.pods)
    result = cli(env, "launch", "--gpu", A6000, "--tolerance", "none", "--image", "img", "--yes", *common(env), *extra)
    assert result.exit_code == 0, result.output + result.stderr
    [pod_id] = set(env.emu.world.pods) - before
    return env.emu.world.pods[pod_id]


def job_states(env) -> dict[str, dict[str, str]]:
    """The HTML report's job states table (its CSV, written beside the page)."""
    out = env.tmp / "report"
    result = cli(env, "report", "--html", str(out), "--db", str(env.tmp / "bidder.db"), "--now", to_iso(env.emu.now))
    assert result.exit_code == 0, result.output + result.stderr
    csv_file = next(out.rglob("job-states.csv"))
    return {row["job"]: row for row in csv.DictReader(csv_file.open())}


def test_stop_says_what_it_did_to_a_launched_pod_and_the_pod_really_stops(env):
    pod = launched(env)
    env.emu.advance(3600)
    result = cli(env, "stop", pod.id, *common(env))
    assert result.exit_code == 0, result.output + result.stderr
    # Not "job bidder-launch is held": no tick runs a launch, and `bidder jobs start` knows no such job.
    # (Launched without --volume: RunPod bills nothing for it stopped; tests/test_pods_volume.py has one with.)
    assert result.output == (f"stopped pod {pod.id} (launched by `bidder launch`): it no longer runs and nothing "
                             f"restarts it; it has no volume, so it bills nothing while stopped "
                             f"(`bidder stop {pod.id} --terminate` deletes it)\n")
    assert pod.desired_status == "EXITED"
    billed = env.emu.world.true_spend(pod.id)
    assert billed == pytest.approx(env.emu.world.on_demand(A6000, pod.cloud), rel=0.01)  # one hour
    # Nothing restarts it: a tick leaves it stopped, and it bills nothing more.
    (env.tmp / "bidder.toml").write_text("")
    env.emu.advance(1800)
    tick = cli(env, "tick", "--config", str(env.tmp / "bidder.toml"), *common(env))
    assert tick.exit_code == 0, tick.output + tick.stderr
    env.emu.advance(1800)
    assert pod.desired_status == "EXITED" and env.emu.world.true_spend(pod.id) == billed
    assert job_states(env)["bidder-launch"]["state"] == "stopped"
    # `bidder pods --all` lists it without the GPU price it showed while it ran (it read $0.330/h EXITED).
    listed = cli(env, "pods", "--all", "--format", "json", *common(env)[:2])
    assert listed.exit_code == 0, listed.output + listed.stderr
    [row] = [r for r in json.loads(listed.output) if r["pod"] == pod.id]
    assert row["status"] == "EXITED" and row["cost_per_hr"] is None, row
    assert row["spent"] == pytest.approx(billed, abs=0.002)
    # Deleted on request, said as such.
    gone = cli(env, "stop", pod.id, "--terminate", *common(env))
    assert gone.exit_code == 0, gone.output + gone.stderr
    assert gone.output == f"terminated pod {pod.id} (launched by `bidder launch`): deleted, with its volume\n"
    assert pod.desired_status == "TERMINATED"
    assert job_states(env)["bidder-launch"]["state"] == "ended"


def test_stop_of_an_id_no_one_knows_says_so_and_where_to_look(env):
    # (--dry-run too: it printed a podStop request and exited 0 for an id RunPod has not; it looks the pod up.)
    for extra in ((), ("--terminate",), ("--dry-run",)):
        result = cli(env, "stop", "nosuchpod", *extra, *common(env))
        assert result.exit_code == 1, result.output
        [error] = result.stderr.strip().splitlines()
        assert error.startswith("Error: no pod nosuchpod: not in bidder's ledger, and RunPod has none by that id ("), error
        assert error.endswith("); `bidder pods --all` lists the pods bidder knows, on every market"), error


def test_stop_of_an_unknown_id_without_a_runpod_key_sends_nothing_to_runpod(env):
    # With Vast's key alone no request goes to RunPod (here a port nothing listens on: it was asked, and
    # the error was "cannot connect"); an id the ledger does not know is not sent there.
    result = CliRunner(env={"RUNPOD_API_KEY": "", "VAST_API_KEY": TEST_API_KEY}).invoke(
        main, ["stop", "999999", "--db", str(env.tmp / "bidder.db"), "--api-url", "http://127.0.0.1:9/graphql",
               "--vast-url", env.emu.vast_url])
    assert result.exit_code == 1, result.output
    [error] = result.stderr.strip().splitlines()
    assert error.startswith("Error: no pod 999999 in bidder's ledger") and "no RunPod key is set" in error, error


@pytest.mark.parametrize("where", ["missing.db", "nodir/missing.db"])
def test_stop_with_a_db_that_does_not_exist_creates_nothing_and_stops_nothing(env, where):
    """`bidder stop ID --db missing.db` made the database (with its folder and lock file), found no pod
    in it and stopped a pod of the real ledger as one bidder does not manage."""
    pod = launched(env)
    db = env.tmp / "other"
    db.mkdir()
    for extra in (("--dry-run",), ()):
        result = cli(env, "stop", pod.id, *extra, "--db", str(db / where), "--api-url", env.emu.url)
        assert result.exit_code == 1, result.output + result.stderr
        [error] = result.stderr.strip().splitlines()
        assert error.startswith(f"Error: no bidder database at {db / where}: no pods yet; "), error
        assert error.endswith("(or point --db / BIDDER_DB at your database)"), error
    assert list(db.iterdir()) == []
    assert pod.desired_status == "RUNNING"


def test_a_managed_jobs_pod_is_still_held_by_stop(env):
    # The tick's job keeps its words: held until `bidder jobs start`.
    (env.tmp / "bidder.toml").write_text(f'[jobs.train]\ngpu = ["{A6000}"]\nkeep_running = true\n'
                                         'tolerance = "none"\nimage = "img"\n')
    assert cli(env, "tick", "--config", str(env.tmp / "bidder.toml"), *common(env)).exit_code == 0
    [pod] = env.live_pods()
    result = cli(env, "stop", pod.id, *common(env))
    assert result.output == f"stopped pod {pod.id} (job train is held)\n" and pod.desired_status == "EXITED"


def test_a_launchs_state_follows_its_pod_ended_outside_bidder(env):
    pod = launched(env, "--name", "nb")
    assert job_states(env)["nb"]["state"] == "running"
    env.client.terminate(pod.id)  # in the RunPod console, say
    env.emu.advance(600)
    assert cli(env, "pods", "--refresh", *common(env)).exit_code == 0  # bidder sees it gone
    row = job_states(env)["nb"]
    assert (row["state"], row["pod"]) == ("ended", pod.id)


@pytest.fixture
def vast_env(emulator, tmp_path):
    with Store.open(tmp_path / "bidder.db") as store:
        seed_history(store, emulator, gpus=(RTX4090,))
        seed_vast_history(store, emulator)
    return emulator, tmp_path


def launched_on_vast(vast_env, disk: str):
    """A `bidder launch` on Vast: (a CLI runner on the emulator's URLs, key and time, the instance)."""
    emu, tmp = vast_env
    runner = CliRunner(env={"RUNPOD_API_KEY": TEST_API_KEY, "VAST_API_KEY": TEST_API_KEY})

    def run(*args: str):
        return runner.invoke(main, [*args, "--db", str(tmp / "bidder.db"), "--api-url", emu.url, "--vast-url",
                                    emu.vast_url, "--now", to_iso(emu.now)])

    result = run("launch", "--market", "vast", "--gpu", "RTX 4090", "--tolerance", "none", "--max-price", "0.6",
                 "--image", "pytorch/pytorch", "--disk", disk, "--yes")
    assert result.exit_code == 0, result.output + result.stderr
    [inst] = [i for i in emu.vast.instances.values() if not i.destroyed]
    return run, inst


def test_pods_refresh_lists_how_to_reach_a_running_pod(env):
    # The launch's hint sent the user to `bidder pods --refresh` for the ports, and it showed none.
    pod = launched(env, "--ports", "8888/http,22/tcp")
    env.emu.advance(300)
    refreshed = cli(env, "pods", "--refresh", *common(env))
    assert refreshed.exit_code == 0, refreshed.output + refreshed.stderr
    [line] = [x for x in refreshed.output.splitlines() if x.startswith(f"{pod.id}: ")]
    assert f"https://{pod.id}-8888.proxy.runpod.net  (8888/http)" in line and "ssh root@" in line, line
    assert re.search(r"; ssh root@203\.0\.113\.\d+ -p \d+  \(22/tcp\)$", line), line  # (the emulator's public IPs)
    # Without --refresh nothing was read from the API: no access to show.
    listed = cli(env, "pods", "--format", "json", *common(env)[:2])
    assert [r["access"] for r in json.loads(listed.output)] == [None]


def test_a_vast_launch_says_where_to_connect(vast_env):
    emu, tmp = vast_env
    runner = CliRunner(env={"RUNPOD_API_KEY": TEST_API_KEY, "VAST_API_KEY": TEST_API_KEY})
    result = runner.invoke(main, ["launch", "--market", "vast", "--gpu", "RTX 4090", "--tolerance", "none",
                                  "--image", "pytorch/pytorch", "--yes", "--db", str(tmp / "bidder.db"), "--api-url",
                                  emu.url, "--vast-url", emu.vast_url, "--now", to_iso(emu.now)])
    assert result.exit_code == 0, result.output + result.stderr
    assert "  connect from Vast's console: cloud.vast.ai/instances, the instance's SSH button\n" in result.output
    assert "bidder pods --refresh" not in result.output


def test_stop_on_a_launched_vast_instance_says_its_storage_bills_on(vast_env):
    emu, tmp = vast_env
    run, inst = launched_on_vast(vast_env, "20")
    emu.advance(1800)
    stopped = run("stop", str(inst.id))
    assert stopped.exit_code == 0, stopped.output + stopped.stderr
    assert stopped.output == (f"stopped pod {inst.id} on vast (launched by `bidder launch`): it no longer runs and "
                              f"nothing restarts it; Vast bills its disk's storage until `bidder stop {inst.id} "
                              "--terminate`\n")
    assert inst.intended == "stopped" and not inst.destroyed
    # At once (no poll since the stop), `pods` shows it at its storage rate, not compute + storage.
    listed = CliRunner().invoke(main, ["pods", "--all", "--format", "json", "--db", str(tmp / "bidder.db")])
    [row] = json.loads(listed.output)
    assert row["cost_per_hr"] == pytest.approx(inst.storage_per_hr, abs=1e-4), row


def test_pods_refresh_books_the_storage_a_stopped_vast_instance_bills(vast_env):
    # A user of launch, stop and report alone (no tick in cron): `pods --refresh` is their poll, and a
    # stopped instance's disk bills on. It was left out (only running pods were polled): the books
    # showed the 30 minutes of compute and none of the 10 hours of storage after them.
    emu, _ = vast_env
    run, inst = launched_on_vast(vast_env, "200")
    emu.advance(1800)
    assert run("stop", str(inst.id)).exit_code == 0
    emu.advance(36000)
    refreshed = run("pods", "--refresh", "--all", "--format", "json")
    assert refreshed.exit_code == 0, refreshed.output + refreshed.stderr
    [row] = [r for r in json.loads(refreshed.output) if r["pod"] == str(inst.id)]
    billed = emu.vast.true_spend(inst.id)
    assert billed > 10 * inst.storage_per_hr  # the storage of the 10 stopped hours is most of the bill
    assert row["spent"] == pytest.approx(billed, abs=0.002)
    assert row["cost_per_hr"] == pytest.approx(inst.storage_per_hr, abs=1e-4)  # its disk alone, not compute too


def test_jobs_stop_ends_a_launch_by_its_name(env):
    # Not a job of bidder.toml, but the user named it: its pod is stopped, not "no job 'nb'".
    pod = launched(env, "--name", "nb")
    (env.tmp / "bidder.toml").write_text("")
    result = cli(env, "jobs", "--config", str(env.tmp / "bidder.toml"), "stop", "nb", *common(env))
    assert result.exit_code == 0, result.output + result.stderr
    assert result.output == (f"nb: launched by `bidder launch`: finished; stop pod {pod.id}; it has no volume, so "
                             f"it bills nothing while stopped (`bidder stop {pod.id} --terminate` deletes it)\n")
    assert pod.desired_status == "EXITED" and job_states(env)["nb"]["state"] == "stopped"


def test_jobs_stop_ends_a_launch_without_any_bidder_toml(env):
    # A user of `bidder launch` alone has no bidder.toml: "config file bidder.toml not found".
    pod = launched(env, "--name", "nb")
    missing = env.tmp / "none" / "bidder.toml"
    result = cli(env, "jobs", "--config", str(missing), "stop", "nb", *common(env))
    assert result.exit_code == 0, result.output + result.stderr
    assert result.output.startswith("nb: launched by `bidder launch`: finished; stop pod ")
    assert pod.desired_status == "EXITED" and not missing.exists()
    # And a database that is not there is said before the missing config (`bidder jobs` reads both).
    listed = cli(env, "jobs", "--config", str(missing), "--db", str(env.tmp / "nope.db"))
    assert listed.exit_code == 1 and "no bidder database at" in listed.stderr, listed.stderr


def test_a_launchs_create_that_lands_after_it_said_nothing_launched_is_watched(env):
    """The create's answer is lost (a 500 after sending: it may have executed), the launch finds no pod
    by its name and says "nothing launched", exit 1; the create lands later. That pod billed unseen:
    `pods --refresh`, the report, `stop --job` and a tick knew nothing of it. Now the next listing (a
    tick's, or `pods --refresh`) finds it by its name and watches it as the launch's pod."""
    env.emu.malform("podFindAndDeployOnDemand", {"errors": [{"message": "Internal Server Error"}]}, status=500,
                    execute=False)
    result = cli(env, "launch", "--gpu", A6000, "--tolerance", "none", "--image", "img", "--yes", "--name", "late",
                 "--retries", "1", *common(env))
    assert result.exit_code == 1 and "nothing launched for late" in result.stderr, result.output + result.stderr
    name = env.store.job_state("late")["pending_name"]
    assert env.emu.world.pods == {}
    landed = env.emu.world.deploy_on_demand({"gpuTypeId": A6000, "cloudType": "COMMUNITY", "gpuCount": 1,
                                             "name": name, "imageName": "img"})  # the create, landing late
    env.emu.advance(600)
    # While a launch (or a tick) holds the tick's lock, its create may be in flight: not adopted. (A tick
    # or refresh that took an in-flight create for a lost one adopted its pod, and the launch then failed
    # while its pod ran.)
    with env.store.exclusive_lock("tick"):
        busy = cli(env, "pods", "--refresh", *common(env))
    assert busy.exit_code == 0 and "note:" not in busy.stderr and env.store.pod(landed.id) is None, busy.stderr
    refreshed = cli(env, "pods", "--refresh", *common(env))
    assert refreshed.exit_code == 0, refreshed.output + refreshed.stderr
    assert f"note: pod {landed.id} named {name}, from a launch that said nothing was launched, is running" \
        in refreshed.stderr
    assert landed.id in refreshed.stdout and "late" in refreshed.stdout
    row = env.store.pod(landed.id)
    assert (row["job"], row["state"], row["kind"]) == ("late", "active", "on_demand")
    assert env.store.job_state("late").get("pending_name") is None
    env.emu.advance(600)
    stopped = cli(env, "stop", "--job", "late", *common(env))
    assert stopped.exit_code == 0, stopped.output + stopped.stderr
    assert landed.desired_status == "EXITED"


def test_a_launch_creates_under_the_ticks_lock(env):
    # A tick acting meanwhile would take the launch's create in flight for a lost one.
    with env.store.exclusive_lock("tick"):
        result = cli(env, "launch", "--gpu", A6000, "--tolerance", "none", "--image", "img", "--yes", "--wait", "0",
                     *common(env))
    assert result.exit_code == 1 and env.emu.world.pods == {}, result.output + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: a bidder tick is running") \
        and "nothing was launched" in lines[0], lines
    assert launched(env).desired_status == "RUNNING"  # the lock free: it launches


def test_a_tick_also_finds_a_launchs_late_create(env):
    env.emu.malform("podFindAndDeployOnDemand", {"errors": [{"message": "Internal Server Error"}]}, status=500,
                    execute=False)
    assert cli(env, "launch", "--gpu", A6000, "--tolerance", "none", "--image", "img", "--yes", "--name", "late",
               "--retries", "1", *common(env)).exit_code == 1
    name = env.store.job_state("late")["pending_name"]
    landed = env.emu.world.deploy_on_demand({"gpuTypeId": A6000, "cloudType": "COMMUNITY", "gpuCount": 1,
                                             "name": name, "imageName": "img"})
    env.emu.advance(600)
    config = env.config(f'[jobs.other]\ngpu = ["{A6000}"]\nhours = 1\ntolerance = "none"\nimage = "img"\n')
    env.tick(config)
    assert env.store.pod(landed.id)["job"] == "late"
    assert [e for e in env.events if e.get("event") == "adopted" and e.get("pod_id") == landed.id]


def test_stop_job_reaches_a_finished_jobs_kept_pod_with_terminate_and_its_dry_run_says_nothing_was_sent(env):
    # A finished job keeps its pod stopped (on_finish = "stop"), its volume billed on. `stop --job NAME
    # --terminate` said "job t has no active pod" and left only the pod id to reach it by.
    config = env.config(f'[jobs.t]\ngpu = ["{A6000}"]\ncloud = "community"\nhours = 0.2\ntolerance = "none"\n'
                        'image = "img"\non_finish = "stop"\n')
    for _ in range(12):
        if env.tick(config).jobs[0].state == "finished":
            break
        env.emu.advance(600)
    [row] = env.store.managed_pods("t")
    pod = env.emu.world.pods[row["pod_id"]]
    assert row["state"] == "stopped" and pod.desired_status == "EXITED"
    plain = cli(env, "stop", "--job", "t", *common(env))
    assert plain.exit_code == 1 and plain.output == (
        f"Error: job t has no active pod in the ledger; its pod {pod.id} is kept stopped: add --terminate to "
        "delete it (see `bidder pods --all`)\n")
    dry = cli(env, "stop", "--job", "t", "--terminate", "--dry-run", *common(env))
    assert dry.exit_code == 0, dry.output
    head, operation, *request = dry.output.splitlines()
    assert head == "Dry run: nothing was sent. The request it would send (header Authorization: Bearer ****):"
    assert operation == "# podTerminate" and json.loads("\n".join(request))["variables"] == {"input": {"podId": pod.id}}
    assert pod.desired_status == "EXITED"
    done = cli(env, "stop", "--job", "t", "--terminate", *common(env))
    assert done.exit_code == 0 and done.output == f"terminated pod {pod.id} (job t stays finished)\n", done.output
    assert pod.desired_status == "TERMINATED" and env.store.job_state("t")["state"] == "finished"


def test_a_second_stop_of_a_terminated_pod_leaves_its_end_as_it_was(env):
    """Polled again, the deleted pod's "not found" was read as a pod gone outside bidder: the ledger's
    `terminated` became `gone` (and the report's job state with it) while `pods --all` said TERMINATED."""
    pod = launched(env)
    env.emu.advance(600)
    done = cli(env, "stop", pod.id, "--terminate", *common(env))
    assert done.exit_code == 0, done.output + done.stderr
    with Store.open(env.tmp / "bidder.db") as store:
        before = store.pod(pod.id)
    assert before["state"] == "terminated"
    env.emu.advance(600)
    again = cli(env, "stop", pod.id, *common(env))
    assert again.exit_code == 0, again.output + again.stderr
    assert again.output == f"pod {pod.id} is already terminated (ended {to_iso(before['ended'])}): nothing to stop\n"
    with Store.open(env.tmp / "bidder.db") as store:
        assert store.pod(pod.id) == before


def test_a_tick_does_not_tell_the_user_to_stop_a_running_launch_pod(env):
    """Each tick said "pod X (job bidder-launch) is running but its job is not in bidder.toml: stop it"
    of a notebook the user had launched by hand to keep."""
    pod = launched(env)
    (env.tmp / "bidder.toml").write_text("")
    env.emu.advance(600)
    tick = cli(env, "tick", "--config", str(env.tmp / "bidder.toml"), *common(env))
    assert tick.exit_code == 0, tick.output + tick.stderr
    assert "unmanaged" not in tick.output and "stop it" not in tick.output, tick.output
    assert pod.desired_status == "RUNNING"


def _dump(path) -> list[str]:
    import sqlite3
    with sqlite3.connect(path) as conn:
        return list(conn.iterdump())


def test_dry_runs_of_stop_and_jobs_stop_leave_the_ledger_as_it_was(env):
    # A dry run of `bidder stop` polled the pod and recorded its stop in the user's ledger (a "stop ...
    # stopped by `bidder stop`" action that never happened, and the poll of a preview), where `launch
    # --dry-run` and `tick --dry-run` change nothing in the database.
    pod = launched(env)
    env.emu.advance(3600)
    db = env.tmp / "bidder.db"
    before = _dump(db)
    for args in (["stop", pod.id, "--dry-run"], ["stop", pod.id, "--terminate", "--dry-run"],
                 ["jobs", "stop", "bidder-launch", "--dry-run"]):
        extra = ["--config", str(env.tmp / "none.toml")] if args[0] == "jobs" else []
        result = cli(env, *args, *common(env), *extra)
        assert result.exit_code == 0, (args, result.output, result.stderr)
        assert "mutation podStop" in result.output or "mutation podTerminate" in result.output, (args, result.output)
        assert _dump(db) == before, args
    assert pod.desired_status == "RUNNING"
    # The real stop still records its action and the pod's poll.
    assert cli(env, "stop", pod.id, *common(env)).exit_code == 0
    assert _dump(db) != before and pod.desired_status == "EXITED"


def test_a_vast_instance_the_user_stopped_outside_bidder_is_stopped_not_paused(vast_env):
    # Shown PAUSED, it read as an instance that resumes by itself when its bid is over the floor again;
    # one its owner stopped never does (found by an audit).
    run, inst = launched_on_vast(vast_env, "20")
    emu, _ = vast_env
    emu.vast.set_state(inst.id, "stopped")  # in Vast's console, say
    emu.advance(600)
    table = run("pods", "--refresh")
    assert table.exit_code == 0, table.output + table.stderr
    [line] = [x for x in table.output.splitlines() if str(inst.id) in x and "EXITED" in x]
    assert "PAUSED" not in line
    report = CliRunner().invoke(main, ["report", "--since", "all", "--db", str(vast_env[1] / "bidder.db"),
                                       "--now", to_iso(emu.now)])
    assert report.exit_code == 0, report.output
    [row] = [x for x in report.output.splitlines() if str(inst.id) in x]
    assert row.endswith(" stopped") and "paused" not in row, report.output


def test_a_job_whose_pods_would_be_named_as_a_launchs_is_not_run(env):
    # `bidder launch --name bidder-x`, then [jobs.x]: both named their pods bidder-x-ATTEMPT-LEDGERID, each
    # counting its own attempts, so a create whose answer was lost could adopt the other's pod. (A launch
    # under a bidder.toml job's prefix is refused; this is the other order.)
    pod = launched(env, "--name", "bidder-x")
    (env.tmp / "bidder.toml").write_text(f'[jobs.x]\ngpu = ["{A6000}"]\nkeep_running = true\n'
                                         'tolerance = "none"\nimage = "img"\n')
    ticked = cli(env, "tick", "--config", str(env.tmp / "bidder.toml"), *common(env))
    assert ticked.exit_code == 1, ticked.output + ticked.stderr
    assert ("x: error: [jobs.x] names its pods bidder-x-ATTEMPT-LEDGERID, as `bidder launch --name bidder-x` named "
            "its pods in this ledger") in ticked.output, ticked.output
    assert [p.id for p in env.emu.world.pods.values()] == [pod.id]  # nothing rented for it
    (env.tmp / "bidder.toml").write_text(f'[jobs.x]\nname = "job-x"\ngpu = ["{A6000}"]\nkeep_running = true\n'
                                         'tolerance = "none"\nimage = "img"\n')
    ticked = cli(env, "tick", "--config", str(env.tmp / "bidder.toml"), *common(env))
    assert ticked.exit_code == 0 and "x: running: launched job-x-1-" in ticked.output, ticked.output


def test_a_launch_looks_up_an_earlier_create_lost_on_the_other_market_first(vast_env):
    # A Vast create's answer was lost; a RunPod launch looked only at RunPod for it and rented a second pod
    # while the Vast instance ran, the ledger knowing only the RunPod one (found by an audit).
    emu, tmp = vast_env
    runner = CliRunner(env={"RUNPOD_API_KEY": TEST_API_KEY, "VAST_API_KEY": TEST_API_KEY})

    def run(*args: str):
        return runner.invoke(main, [*args, "--db", str(tmp / "bidder.db"), "--api-url", emu.url, "--vast-url",
                                    emu.vast_url, "--now", to_iso(emu.now)])

    emu.malform("vast:create", {"success": False, "error": "server_error", "msg": "Internal error"}, status=500)
    emu.malform("vast:list", {"instances": []}, times=20)  # not listed yet when the launch looks it up
    first = run("launch", "--market", "vast", "--gpu", "RTX 4090", "--tolerance", "none", "--max-price", "0.6",
                "--image", "img", "--yes", "--retries", "1")
    assert first.exit_code == 1, first.output + first.stderr
    [inst] = [i for i in emu.vast.instances.values() if not i.destroyed]  # it was made all the same
    emu.clear_malformed()
    emu.advance(60)
    runpod = ("launch", "--gpu", RTX4090, "--tolerance", "none", "--max-price", "0.6", "--image", "img", "--yes")
    refused = run(*runpod, "--market", "runpod")  # it does not look at Vast: within the grace, nothing rented
    assert refused.exit_code == 1 and "may still make a pod there, which this launch does not look at" in refused.stderr
    assert emu.world.pods == {}, "a second pod, on RunPod"
    either = run(*runpod, "--market", "any")  # the plan is RunPod's: it looks on Vast, finds the instance,
    assert either.exit_code == 1, either.output + either.stderr  # and, another GPU name than asked, rents nothing
    assert "adopted: created earlier on vast; its answer was lost" in either.output
    assert "Launched pod" not in either.output and emu.world.pods == {}, either.output
    assert (f"nothing new launched for bidder-launch: an earlier launch's create whose answer was lost landed, pod "
            f"{inst.id}, now watched as bidder-launch's, and it is not what this launch asks for (a RTX 4090, not "
            f"{RTX4090})") in either.stderr
    with Store.open(tmp / "bidder.db") as store:
        assert store.pod(str(inst.id))["job"] == "bidder-launch"


def test_jobs_stop_says_the_volume_a_stopped_pod_bills_on(env):
    # `bidder stop` said it; `jobs stop` said only "stop pod ID", and the volume billed on unsaid (found by an
    # audit following the README's bidder.toml, whose [defaults] give every job a 40 GB volume).
    pod = launched(env, "--name", "nb", "--volume", "20")
    (env.tmp / "bidder.toml").write_text("")
    result = cli(env, "jobs", "--config", str(env.tmp / "bidder.toml"), "stop", "nb", *common(env))
    assert result.exit_code == 0, result.output + result.stderr
    assert result.output == (f"nb: launched by `bidder launch`: finished; stop pod {pod.id}; RunPod bills its 20 GB "
                             f"volume while it is stopped: `bidder stop {pod.id} --terminate` deletes it with its "
                             "volume\n")


def test_recommend_says_runpod_is_left_out_of_a_several_gpu_job_for_lack_of_its_quotes(vast_env):
    # `--gpus 2` open to both markets, on prices collected for 1-GPU pods: RunPod was dropped in silence and
    # a dearer Vast offer recommended, or "no candidate" said with no word of RunPod (found by an audit).
    emu, tmp = vast_env
    conn = sqlite3.connect(tmp / "bidder.db")  # RunPod's 2-GPU quotes gone: collected for 1-GPU pods alone
    with conn:
        conn.execute("DELETE FROM prices WHERE gpu_count = 2 AND market = 'runpod'")
    conn.close()
    runner = CliRunner(env={"RUNPOD_API_KEY": TEST_API_KEY, "VAST_API_KEY": TEST_API_KEY})
    note = ("RunPod is left out: its prices were collected for pods of 1 GPU(s), none 2; `bidder collect --gpu-counts "
            "1,2` quotes those too")
    for cap in ("0.6", "0.05"):
        result = runner.invoke(main, ["recommend", "--gpu", "RTX 4090", "--gpus", "2", "--keep-running", "--tolerance",
                                      "none", "--max-price", cap, "--db", str(tmp / "bidder.db"), "--now",
                                      to_iso(emu.now)])
        assert note in result.output + result.stderr, (cap, result.output + result.stderr)
