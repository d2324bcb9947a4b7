"""The executor's rough edges found by trying bidder as a new user would (issue 13), each against
the emulator over HTTP or the real CLI: the budget guard's look-ahead, GPU names in bidder.toml,
jobs without an end or without a GPU, and the listing confirmation of `bidder pods --refresh`."""

from __future__ import annotations

from datetime import timedelta, timezone

import pytest
from click.testing import CliRunner
from executor_helpers import A6000, named

from bidder.cli import main
from bidder.errors import ConfigError
from bidder.jobs import load_config
from bidder.sim import TEST_API_KEY
from bidder.store import Store
from bidder.units import to_iso


def cli(env, *args: str):
    return CliRunner(env={"RUNPOD_API_KEY": TEST_API_KEY}).invoke(main, [*args])


def tick(env, *extra: str):
    return cli(env, "tick", "--config", str(env.tmp / "bidder.toml"), "--db", str(env.tmp / "bidder.db"),
               "--api-url", env.emu.url, "--now", to_iso(env.emu.now), *extra)


# -- the budget guard looks ahead min(one hour, the work left) -------------------------------------

def test_a_job_that_fits_its_budget_is_not_stopped_by_the_look_ahead(env):
    rate = env.emu.world.on_demand(A6000, "COMMUNITY")
    hours = 3
    budget = round(rate * hours * 1.2, 2)  # 20% headroom, less than one more hour at the end
    assert budget - rate * hours < rate  # the old rule (spent + a whole hour) trips in the last hour
    (env.tmp / "bidder.toml").write_text(f"""
[jobs.fit]
gpu = ["{A6000}"]
cloud = "community"
hours = {hours}
budget = {budget}
tolerance = "none"
image = "runpod/pytorch:latest"
""")
    states = []
    for _ in range(int(hours * 60 / 10) + 3):
        result = tick(env)
        assert result.exit_code == 0, result.output + result.stderr
        states.append(result.output)
        if "fit: finished" in result.output:
            break
        env.emu.advance(600)
    assert "fit: finished: work done" in states[-1], states[-3:]
    assert not any("budget_stopped" in s for s in states)
    assert env.store.job_state("fit")["spent"] <= budget


# -- bidder.toml: GPU names as the command line resolves them; jobs need an end and a GPU -----------

def test_a_short_gpu_name_in_bidder_toml_resolves_like_the_command_line(env):
    (env.tmp / "bidder.toml").write_text("""
[jobs.short]
gpu = ["a6000"]
cloud = "community"
keep_running = true
tolerance = "none"
image = "runpod/pytorch:latest"
""")
    result = tick(env)
    assert result.exit_code == 0, result.output + result.stderr
    assert f"short: running: launched {named(env.store, 'bidder-short', 1)} on NVIDIA RTX A6000 (COMMUNITY)" \
        in result.output


def test_an_unknown_gpu_name_in_bidder_toml_is_one_error_with_close_matches(env):
    (env.tmp / "bidder.toml").write_text("""
[jobs.typo]
gpu = ["RTX A6001"]
keep_running = true
image = "runpod/pytorch:latest"
""")
    result = tick(env)
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "RTX A6001" in lines[0] and "close matches" in lines[0] and "typo" in lines[0]
    assert not env.live_pods()


@pytest.mark.parametrize(("key", "close"), [
    ("NVIDIA RTX A6001", f"close matches: {A6000}"),          # a typo
    ("A6000", f"close matches: {A6000}"),                     # part of a name: speed is looked up by id
    ("RTX A6000", f"close matches: {A6000}"),                 # RunPod's display name, not its id
])
def test_a_speed_for_an_unknown_gpu_is_one_error_naming_it_and_the_close_ids(env, key, close):
    # A speed whose GPU matches no pod's type id would leave that GPU at 1.0 without a word.
    (env.tmp / "bidder.toml").write_text(f"""
[jobs.fast]
gpu = ["{A6000}"]
speed = {{"{key}" = 2.0}}
keep_running = true
tolerance = "none"
image = "runpod/pytorch:latest"
""")
    result = tick(env)
    assert result.exit_code == 1, result.output
    # One line: the key, then the closest ids, best first.
    assert result.stderr.startswith(f"Error: {env.tmp / 'bidder.toml'}: [jobs.fast] speed: unknown GPU type "
                                    f"{key!r}; {close}"), result.stderr
    assert result.stderr.endswith(" (write the GPU type id in full)\n") and result.stderr.count("\n") == 1
    assert not env.live_pods() and not env.store.actions()
    # Written as the id, the same job runs.
    config = (env.tmp / "bidder.toml").read_text()
    (env.tmp / "bidder.toml").write_text(config.replace(f'speed = {{"{key}"', f'speed = {{"{A6000}"'))
    result = tick(env)
    assert result.exit_code == 0 and "fast: running: launched" in result.output, result.output + result.stderr


@pytest.mark.parametrize(("table", "keys"), [
    ('gpu = ["NVIDIA RTX A6000"]\nimage = "img"\n', ("hours", "keep_running")),
    ('hours = 3\nimage = "img"\n', ("gpu", "min_vram")),
])
def test_a_job_without_an_end_or_without_a_gpu_is_an_error(tmp_path, table, keys):
    path = tmp_path / "bidder.toml"
    path.write_text(f"[jobs.vague]\n{table}")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "[jobs.vague]" in message and all(k in message for k in keys)


def test_defaults_can_give_the_end_and_the_gpu(tmp_path):
    path = tmp_path / "bidder.toml"
    path.write_text('[defaults]\nmin_vram = 24\nkeep_running = true\nimage = "img"\n\n[jobs.ok]\n')
    assert load_config(path).job("ok").job.keep_running


# -- bidder pods --refresh: a listing is no proof either ---------------------------------------------

def test_pods_refresh_confirms_a_pod_missing_from_the_listing(env):
    (env.tmp / "bidder.toml").write_text(f"""
[jobs.train]
gpu = ["{A6000}"]
cloud = "community"
keep_running = true
tolerance = "none"
image = "runpod/pytorch:latest"
""")
    assert tick(env).exit_code == 0
    [pod] = env.live_pods()
    env.emu.malform("myself", lambda p: {"data": {"myself": {**p["data"]["myself"], "pods": []}}})
    result = cli(env, "pods", "--refresh", "--db", str(env.tmp / "bidder.db"), "--api-url", env.emu.url,
                 "--now", to_iso(env.emu.now))
    assert result.exit_code == 0, result.output + result.stderr
    assert env.store.pod(pod.id)["state"] == "active" and pod.id in result.output


# -- bidder jobs start after bidder stop --job: the job's own pod, with its volume ------------------

SERVICE = f"""
[jobs.train]
gpu = ["{A6000}"]
cloud = "community"
keep_running = true
tolerance = "none"
volume = 40
image = "runpod/pytorch:latest"
"""


def _stop_and_start(env):
    (env.tmp / "bidder.toml").write_text(SERVICE)
    assert tick(env).exit_code == 0
    [pod] = env.live_pods()
    env.emu.advance(3600)
    assert tick(env).exit_code == 0
    stopped = cli(env, "stop", "--job", "train", "--db", str(env.tmp / "bidder.db"), "--api-url", env.emu.url,
                  "--now", to_iso(env.emu.now))
    assert stopped.exit_code == 0 and "held" in stopped.output, stopped.output + stopped.stderr
    env.emu.advance(600)
    started = cli(env, "jobs", "--config", str(env.tmp / "bidder.toml"), "--db", str(env.tmp / "bidder.db"),
                  "start", "train")
    assert started.exit_code == 0, started.output + started.stderr
    return pod


def test_jobs_start_after_stop_resumes_the_jobs_own_pod(env):
    pod = _stop_and_start(env)
    result = tick(env)
    assert result.exit_code == 0, result.output + result.stderr
    assert f"train: running: resumed {pod.id}" in result.output and "podResume" in result.output
    assert [p.id for p in env.live_pods()] == [pod.id] and pod.desired_status == "RUNNING"
    assert len(env.emu.world.pods) == 1
    assert env.store.job_state("train")["work_done_hours"] >= 0.99  # the first hour still counts


def test_jobs_start_says_where_the_volume_is_when_its_pod_cannot_resume(env):
    pod = _stop_and_start(env)
    env.emu.world.set_capacity(A6000, "COMMUNITY", 0)
    result = tick(env)
    assert result.exit_code == 0, result.output + result.stderr
    line = next(x for x in result.output.splitlines() if x.startswith("train: "))
    assert "train: waiting" in line and f"the volume stays on pod {pod.id}" in line and "--terminate" in line
    # Said whatever the wait is for (it read "resumes that pod when its machine has room" beside a wait on the
    # max price): when the job runs again, if the machine has room.
    assert "when the job runs again, bidder resumes that pod if its machine has room" in line, line
    assert len(env.emu.world.pods) == 1  # nothing new rented behind the user's back


# -- an interruption is said on stdout; the wait line states the real rule ---------------------------

def test_an_interruption_is_one_line_on_stdout(env):
    text = f"""
[jobs.train]
gpu = ["{A6000}"]
cloud = "community"
keep_running = true
tolerance = "high"
image = "runpod/pytorch:latest"
"""
    (env.tmp / "bidder.toml").write_text(text)
    config = env.config(text)
    env.tick_until(config, lambda r: r.jobs[0].state == "running")
    [pod] = env.live_pods()
    env.emu.advance(300)
    env.emu.world.set_floor(A6000, "COMMUNITY", round(pod.bid + 0.05, 3))
    env.emu.advance(300)
    assert pod.desired_status == "EXITED"
    result = tick(env)
    assert result.exit_code == 0, result.output + result.stderr
    lines = [x for x in result.output.splitlines() if x.startswith("train: ")]
    assert lines[0].startswith("train: interrupted (outbid at "), lines
    assert len(lines) == 2
    wait = lines[1]
    # The floor is over the bid now: the line says what it waits for (the bid and the settling
    # time), not a condition like "until the floor is at or below" that may already hold.
    assert wait.startswith("train: waiting: wait for RTX A6000 spot under $"), wait
    assert "bids once the floor" in wait and "until the" not in wait


# -- import-trace of rows already collected changes nothing ------------------------------------------

def test_importing_collected_rows_changes_nothing(emulator, client, tmp_path):
    from bidder.collector import collect_once

    db = tmp_path / "bidder.db"
    with Store.open(db) as store:
        collect_once(client, store, now=emulator.now, gpu_counts=(1,))
        before = store._rows("SELECT * FROM prices ORDER BY gpu_type_id, cloud, gpu_count", ())
        before = [tuple(r) for r in before]
    assert any(r[7] is not None for r in before) and any(r[10] is not None for r in before)  # counts, list prices
    trace = tmp_path / "trace.csv"
    runner = CliRunner()
    exported = runner.invoke(main, ["export", "--db", str(db), "-o", str(trace)])
    assert exported.exit_code == 0, exported.output + exported.stderr
    imported = runner.invoke(main, ["import-trace", str(trace), "--db", str(db)])
    assert imported.exit_code == 0, imported.output + imported.stderr
    assert ": 0 new or changed" in imported.output
    with Store.open(db) as store:
        after = [tuple(r) for r in store._rows("SELECT * FROM prices ORDER BY gpu_type_id, cloud, gpu_count", ())]
    assert after == before


# -- a deadline passed, or too near for the work even on-demand: the tick says so as an error ------

def test_a_passed_toml_datetime_deadline_with_an_offset_is_said_in_utc(env):
    """An unquoted TOML time with an offset was said as its local clock with a Z (5 hours off in New
    York), while `bidder jobs` gave the UTC time: one job, two deadlines."""
    due = (env.emu.now - timedelta(hours=1)).astimezone(timezone(timedelta(hours=-5)))
    (env.tmp / "bidder.toml").write_text(f"""
[jobs.late]
gpu = ["{A6000}"]
hours = 4
deadline = {due.isoformat()}
image = "runpod/pytorch:latest"
""")
    result = tick(env)
    assert result.exit_code == 1, result.output
    assert f"the deadline {to_iso(due)} has passed with 4.00 h of work left" in result.stderr, result.stderr


def test_a_deadline_out_of_reach_is_an_error_for_cron_not_a_wait(env):
    """Such a job waited with exit 0 on every tick: cron never heard that only a later deadline helps."""
    (env.tmp / "bidder.toml").write_text(f"""
[jobs.late]
gpu = ["{A6000}"]
hours = 4
deadline = "{to_iso(env.emu.now + timedelta(hours=2))}"
image = "runpod/pytorch:latest"
""")
    result = tick(env)
    assert result.exit_code == 1, result.output
    why = "4.0 h of work cannot finish in the 2.0 h before the deadline, even on-demand at full speed"
    assert f"late: waiting: no candidate meets the deadline: {why}" in result.output
    assert result.stderr.startswith(f"Error: job late cannot run: no candidate meets the deadline: {why}")
    assert env.emu.world.pods == {}
    env.emu.advance(3 * 3600)  # past it
    result = tick(env)
    assert result.exit_code == 1 and "has passed with 4.00 h of work left: set a later deadline" in result.stderr
    # A deadline in reach is a plain job again.
    (env.tmp / "bidder.toml").write_text((env.tmp / "bidder.toml").read_text().replace(
        to_iso(env.emu.now - timedelta(hours=1)), to_iso(env.emu.now + timedelta(hours=8))))
    assert tick(env).exit_code == 0
