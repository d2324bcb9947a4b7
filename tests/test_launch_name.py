"""`bidder launch --name` never takes a managed job's name, through the real CLI against the emulator
over HTTP: the name is the job's row in the ledger, so a launch under it would be taken by the next
tick for the job's own pod (adopted, moved or stopped), or give a job that has a pod a second one."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from executor_helpers import A6000, ON_DEMAND_SERVICE, RTX4090, make_env

from bidder.cli import main
from bidder.jobs import load_config
from bidder.sim import TEST_API_KEY
from bidder.tick import job_progress
from bidder.units import to_iso


@pytest.fixture
def env(emulator, client, tmp_path, monkeypatch):
    emulator.world.reclaim_rate_per_hour = 0.0
    monkeypatch.chdir(tmp_path)  # the default bidder.toml is the one in the current folder
    e = make_env(emulator, client, tmp_path)
    yield e
    e.store.close()


def cli(env, *args: str):
    return CliRunner(env={"RUNPOD_API_KEY": TEST_API_KEY}).invoke(
        main, [*args, "--db", str(env.tmp / "bidder.db"), "--api-url", env.emu.url, "--now", to_iso(env.emu.now)])


def launch(env, *args: str):
    """An on-demand launch (the optimizer never waits for one)."""
    return cli(env, "launch", "--gpu", A6000, "--tolerance", "none", "--image", "img", "--yes", *args)


def refused(result, *fragments: str) -> str:
    """The one `Error:` line of a refused option (exit 2), holding every fragment."""
    assert result.exit_code == 2, result.output + result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("Error: Invalid value for --name: ") and all(f in line for f in fragments), line
    return line


def test_a_job_of_the_default_bidder_toml_is_refused_before_anything_is_sent(env):
    (env.tmp / "bidder.toml").write_text(ON_DEMAND_SERVICE)
    line = refused(launch(env, "--name", "train"), "'train' is a job of bidder.toml ([jobs.train])",
                   "give another --name")
    assert "the next `bidder tick` would take the launched pod for the job's own" in line
    # Nothing rented, nothing written for the job: its row is still the tick's to make.
    assert env.emu.world.pods == {} and env.store.job_state("train") is None and env.store.actions("train") == []
    # Another name launches beside it, and the tick then rents the job its own pod: one each.
    assert launch(env, "--name", "nb").exit_code == 0
    assert cli(env, "tick").exit_code == 0
    assert sorted(p.name.split("-")[0] for p in env.live_pods()) == ["bidder", "nb"]


def test_a_jobs_pod_name_prefix_is_refused_as_a_launchs_name(env):
    # The launch's pods would be named as the job's (bidder-train-1-LEDGERID each): a lost create of one
    # was adopted by the other.
    (env.tmp / "bidder.toml").write_text(ON_DEMAND_SERVICE + '\n[jobs.nb]\nname = "exp"\nimage = "i"\nmin_vram = 24\n'
                                                            "hours = 1\n")
    refused(launch(env, "--name", "bidder-train"), "'bidder-train' is the pod-name prefix of [jobs.train] in "
            "bidder.toml: the launch's pods would be named as that job's", "give another --name")
    refused(launch(env, "--name", "exp"), "'exp' is the pod-name prefix of [jobs.nb]")
    assert env.emu.world.pods == {} and env.store.actions("bidder-train") == []
    assert launch(env, "--name", "bidder-nb").exit_code == 0  # (nb's pods are exp-ATTEMPT-LEDGERID)


def test_a_job_with_a_pod_never_gets_a_second_one_from_launch(env):
    (env.tmp / "bidder.toml").write_text(ON_DEMAND_SERVICE)
    assert cli(env, "tick").exit_code == 0
    [pod] = env.live_pods()
    env.emu.advance(300)
    refused(launch(env, "--name", "train"), "'train' is a job of bidder.toml")
    # The file the tick runs from, wherever it is; a dry run's rows would be the job's too.
    config = env.tmp / "jobs.toml"
    config.write_text(ON_DEMAND_SERVICE)
    refused(launch(env, "--name", "train", "--config", str(config), "--dry-run"), f"'train' is a job of {config}")
    assert env.live_pods() == [pod] and pod.desired_status == "RUNNING"
    assert [a["kind"] for a in env.store.actions("train")] == ["deploy_on_demand"]  # no dry_run row either


def test_a_removed_jobs_name_is_refused_while_the_ledger_holds_it(env):
    (env.tmp / "bidder.toml").write_text(ON_DEMAND_SERVICE)
    assert cli(env, "tick").exit_code == 0
    [pod] = env.live_pods()
    (env.tmp / "bidder.toml").write_text("")  # [jobs.train] removed; its pod runs on
    env.emu.advance(300)
    db = env.tmp / "bidder.db"
    refused(launch(env, "--name", "train"),
            f"'train' is a managed job in the ledger {db} (no longer in bidder.toml) whose pod {pod.id} is still "
            "there: a launch under its name would share that job's ledger row and give it a second pod; give "
            "another --name (`bidder jobs stop train` stops its pod)")
    assert env.live_pods() == [pod] and pod.desired_status == "RUNNING"
    # Its pod stopped, the row is still the job's (its state, spend and pods): a launch's pod there would be
    # "job train is held" to `bidder stop`, and the job's again if [jobs.train] came back.
    assert cli(env, "jobs", "stop", "train").exit_code == 0
    refused(launch(env, "--name", "train"),
            f"'train' is a managed job in the ledger {db} (no longer in bidder.toml): a launch under its name "
            "would share that job's ledger row; give another --name")
    assert env.running() == [] and env.store.job_state("train")["state"] == "finished"


def test_a_launch_without_any_bidder_toml_and_a_launchs_own_name_again_still_work(env):
    assert not (env.tmp / "bidder.toml").exists()
    first = launch(env, "--name", "nb")
    assert first.exit_code == 0, first.output + first.stderr
    [pod] = env.live_pods()
    assert cli(env, "stop", pod.id).exit_code == 0
    again = launch(env, "--name", "nb")  # the ledger holds nb as a launch's: its name to use again
    assert again.exit_code == 0, again.output + again.stderr
    assert len(env.running()) == 1


def test_a_config_file_given_must_exist(env):
    result = launch(env, "--config", str(env.tmp / "nope.toml"))
    assert result.exit_code == 2 and env.emu.world.pods == {}
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"Error: Invalid value for --config: no jobs file at {env.tmp / 'nope.toml'}"), line


def test_a_launchs_pod_is_never_taken_by_a_job_added_under_its_name_later(env):
    # `launch --name train` first, [jobs.train] written afterwards: the ledger row is shared, but the
    # launch's pod is the user's, never the job's (adopted, moved, budget-stopped or finished by a tick).
    (env.tmp / "bidder.toml").write_text("")
    assert launch(env, "--name", "train").exit_code == 0
    [pod] = env.live_pods()
    (env.tmp / "bidder.toml").write_text(ON_DEMAND_SERVICE)
    env.emu.advance(300)
    result = cli(env, "tick")
    assert result.exit_code == 1, result.output
    why = (f"train is the name of a `bidder launch` whose pod {pod.id} is still there: this job does not run until "
           f"that pod is stopped (`bidder stop {pod.id}`) or the job is renamed in bidder.toml; nothing is done for it")
    [line] = [x for x in result.output.splitlines() if x.startswith("train: ")]
    assert line.startswith(f"train: error: {why} (spent $"), line
    assert result.stderr == f"Error: job train cannot run: {why}\n"
    assert env.live_pods() == [pod] and pod.desired_status == "RUNNING"
    assert [a["kind"] for a in env.store.actions("train")] == ["deploy_on_demand"]  # the launch's create alone
    assert env.store.is_launch("train") and env.store.job_state("train")["state"] == "running"
    # Stopped by the user, the launch's pod stays theirs; the name is the job's, which rents its own pod.
    stopped = cli(env, "stop", pod.id)
    assert stopped.exit_code == 0 and "launched by `bidder launch`" in stopped.output, stopped.output
    env.emu.advance(300)
    result = cli(env, "tick")
    assert result.exit_code == 0, result.output + result.stderr
    assert "train: running: launched bidder-train-2-" in result.output, result.output
    [own] = env.running()  # (the launch's pod is stopped, not deleted: the user's to delete)
    assert own.id != pod.id and pod.desired_status == "EXITED"
    assert not env.store.is_launch("train") and env.store.job_state("train")["pod_id"] == own.id
    # The launch's pod is its own launch's now: its ten minutes are not the job's work or spend.
    assert [r["pod_id"] for r in env.store.managed_pods("train")] == [own.id]
    assert [r["pod_id"] for r in env.store.managed_pods("train (launch)")] == [pod.id]
    assert env.store.is_launch("train (launch)")
    env.emu.advance(3600)  # the job's hour (the launch's pod ran five minutes before it)
    assert cli(env, "tick").exit_code == 0
    [jc] = load_config(env.tmp / "bidder.toml").jobs.values()
    work, spent, _ = job_progress(env.store, jc, save=False)
    assert work == pytest.approx(1.0, abs=0.02) and spent == pytest.approx(own.cost_per_hr, rel=0.02), (work, spent)


def test_every_launch_pod_in_a_jobs_way_is_named_at_once(env):
    # Two launches under one name left two pods; the tick named one, and after it was stopped the next.
    (env.tmp / "bidder.toml").write_text("")
    assert launch(env, "--name", "train").exit_code == 0
    assert launch(env, "--name", "train").exit_code == 0
    live = {p.id for p in env.live_pods()}
    assert len(live) == 2
    (env.tmp / "bidder.toml").write_text(ON_DEMAND_SERVICE)
    env.emu.advance(300)
    result = cli(env, "tick")
    assert result.exit_code == 1, result.output
    ids = [row["pod_id"] for row in env.store.managed_pods("train", states=["active"])]
    assert set(ids) == live
    assert (f"train is the name of a `bidder launch` whose pods {ids[0]}, {ids[1]} are still there: this job does "
            f"not run until they are stopped (`bidder stop {ids[0]}`; `bidder stop {ids[1]}`)") in result.stderr


def test_a_launchs_lost_create_stays_the_launchs_when_a_job_takes_its_name(env):
    # `launch --name train` got no answer to its create ("nothing launched"); [jobs.train] is written and
    # takes the name. The create landing later was the job's pending create in the ledger: the job took
    # the launch's pod for its own, beside the pod it had rented. It is the launch's.
    (env.tmp / "bidder.toml").write_text("")
    env.emu.malform("podFindAndDeployOnDemand", {"errors": [{"message": "Internal Server Error"}]}, status=500,
                    execute=False)
    assert launch(env, "--name", "train", "--retries", "1").exit_code == 1
    lost = env.store.job_state("train")["pending_name"]
    (env.tmp / "bidder.toml").write_text(ON_DEMAND_SERVICE)
    env.emu.advance(300)
    assert cli(env, "tick").exit_code == 0
    [own] = env.live_pods()  # the job's own pod
    landed = env.emu.world.deploy_on_demand({"gpuTypeId": A6000, "cloudType": "COMMUNITY", "gpuCount": 1,
                                             "name": lost, "imageName": "img"})  # the launch's create, landing late
    env.emu.advance(300)
    assert cli(env, "tick").exit_code == 0
    assert [row["pod_id"] for row in env.store.managed_pods("train", states=["active"])] == [own.id]
    assert env.store.pod(landed.id)["job"] == "train (launch)"
    assert own.desired_status == "RUNNING" and landed.desired_status == "RUNNING"  # the user's, as launched


def _lost_launch_create_landed(env):
    """A launch (on-demand A6000, image img) whose create got no answer, then its pod landing a minute
    later: the pod."""
    env.emu.malform("podFindAndDeployOnDemand", {"errors": [{"message": "Internal Server Error"}]}, status=500,
                    execute=False)
    assert launch(env, "--retries", "1").exit_code == 1
    lost = env.store.job_state("bidder-launch")["pending_name"]
    landed = env.emu.world.deploy_on_demand({"gpuTypeId": A6000, "cloudType": "COMMUNITY", "gpuCount": 1,
                                             "name": lost, "imageName": "img"})  # the create, landing late
    env.emu.advance(60)
    return landed


def test_a_launch_that_finds_an_earlier_launchs_pod_unlike_its_request_rents_nothing_and_says_so(env):
    # A launch's create got no answer; the next launch, for another GPU type and image, "launched"
    # the earlier on-demand A6000 at exit 0, its last line reading as the pod it asked for (found by an audit).
    landed = _lost_launch_create_landed(env)
    other = cli(env, "launch", "--gpu", RTX4090, "--tolerance", "none", "--max-price", "0.35", "--image", "other:img",
                "--yes")
    assert other.exit_code == 1, other.output + other.stderr
    [line] = other.stderr.strip().splitlines()
    assert line.startswith(f"Error: nothing new launched for bidder-launch: an earlier launch's create whose answer "
                           f"was lost landed, pod {landed.id}, now watched as bidder-launch's, and it is not what this "
                           f"launch asks for (a {A6000}, not {RTX4090}; image img, not other:img)"), line
    assert [p.id for p in env.live_pods()] == [landed.id]  # nothing else rented
    assert env.store.pod(landed.id)["job"] == "bidder-launch"
    again = launch(env)  # one that fits is found as before (it finds none now: the pod is adopted)
    assert again.exit_code == 0, again.output + again.stderr


def test_the_same_launch_again_finds_its_earlier_pod(env):
    landed = _lost_launch_create_landed(env)
    again = launch(env)
    assert again.exit_code == 0 and "-> adopted: created earlier; its answer was lost" in again.output, again.output
    assert f"Launched pod {landed.id}" in again.output and [p.id for p in env.live_pods()] == [landed.id]
