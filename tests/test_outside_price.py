"""A pod whose price the user changed outside bidder (a Vast bid raised in Vast's console, a RunPod pod
bid-resumed by hand) is booked at what the API bills, with one warning, and a managed job's max price
sees it; a cost no other field of the poll backs is still set aside as impossible. Real emulator over
HTTP, real SQLite, the CLI through click's CliRunner."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from click.testing import CliRunner
from executor_helpers import RTX4090, seed_history
from test_malformed import pod_field
from two_markets import VAST4090, tick, vast_live
from vast_helpers import seed_vast_history

from bidder.cli import main
from bidder.executor import running_hours
from bidder.report.data import spend_report
from bidder.sim import TEST_API_KEY
from bidder.store import Store, estimate_spend
from bidder.units import to_iso


@pytest.fixture
def cli_env(emulator, tmp_path):
    emulator.world.reclaim_rate_per_hour = 0
    with Store.open(tmp_path / "bidder.db") as store:
        seed_history(store, emulator, gpus=(RTX4090,))
        seed_vast_history(store, emulator)
    (tmp_path / "bidder.toml").write_text("")
    return emulator, tmp_path


def cli(env, *args: str):
    emu, tmp = env
    keys = {"RUNPOD_API_KEY": TEST_API_KEY, "VAST_API_KEY": TEST_API_KEY}
    return CliRunner(env=keys).invoke(main, [*args, "--db", str(tmp / "bidder.db"), "--api-url", emu.url,
                                             "--vast-url", emu.vast_url, "--now", to_iso(emu.now)])


def test_a_vast_bid_raised_in_vasts_console_is_booked_at_what_vast_bills(cli_env):
    # Every poll was "ignored an impossible poll: cost $0.900/h is far above the $0.250/h bidder agreed to":
    # the ledger stood at its last good poll while Vast billed $0.90/h on.
    emu, tmp = cli_env
    result = cli(cli_env, "launch", "--market", "vast", "--gpu", VAST4090, "--gpus", "2", "--max-price", "0.6",
                 "--tolerance", "40", "--image", "img", "--yes", "--name", "l-v2")
    assert result.exit_code == 0, result.output
    [inst] = vast_live(emu)
    emu.vast.change_bid(inst.id, 0.9)  # the user's new bid, per instance: $0.45/GPU-h
    warnings = []
    for _ in range(6):
        emu.advance(600)
        result = cli(cli_env, "tick", "--config", str(tmp / "bidder.toml"))
        assert result.exit_code == 0, result.output
        warnings += [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, warnings  # said once, not at every tick
    assert "its price was changed outside bidder: it runs at $0.4500/GPU-h ($0.900/h)" in warnings[0]
    result = cli(cli_env, "pods", "--refresh", "--format", "json")
    assert result.exit_code == 0 and "warning" not in result.stderr, result.stderr
    with Store.open(tmp / "bidder.db") as store:
        row = store.pod(str(inst.id))
        booked = estimate_spend(store.observations(str(inst.id)))
    billed = emu.vast.true_spend(inst.id)
    assert row["bid_per_gpu"] == pytest.approx(0.45)
    # When in the first 10 minutes the bid changed nobody can tell: half of them at each rate.
    five_minutes = (0.9 - inst.storage_per_hr) * 5 / 60
    assert billed - five_minutes - 0.01 <= booked <= billed + 1e-6, (booked, billed)
    assert booked > 0.8


def _vast_job_running(env, api):
    """VAST_JOB's config, ticked for half an hour: (the config, its one live instance)."""
    config = env.config(VAST_JOB)
    for _ in range(3):
        tick(env, api, config)
        env.emu.advance(600)
    [inst] = vast_live(env.emu)
    return config, inst


def test_a_vast_cost_its_dph_total_does_not_back_is_still_impossible(both):
    env, api = both
    config, inst = _vast_job_running(env, api)
    before = env.store.observations(str(inst.id))
    env.emu.malform("vast:list", lambda p: {**p, "instances": [{**i, "dph_base": 25.0} for i in p["instances"]]},
                    times=1)
    report = tick(env, api, config)
    assert report.jobs[0].state == "running", report.jobs[0].message
    [event] = [e for e in env.events if e["event"] == "rejected_observation"]
    assert "far above" in event["message"] and "dph_total" in event["message"], event
    assert env.store.observations(str(inst.id)) == before
    assert env.store.pod(str(inst.id))["bid_per_gpu"] < 0.6


VAST_JOB = f"""
[jobs.v]
gpu = ["{VAST4090}"]
market = "vast"
hours = 30
tolerance = "high"
max_price = 0.6
image = "pytorch/pytorch"
disk = 20
"""


def test_a_managed_vast_bid_raised_over_the_max_price_outside_bidder_is_bid_again_under_it(both):
    env, api = both
    config, inst = _vast_job_running(env, api)
    env.emu.vast.change_bid(inst.id, 1.5)  # $1.50/GPU-h: past the job's $0.60 cap
    env.emu.advance(600)
    report = tick(env, api, config)
    message = report.jobs[0].message
    assert "above the max price $0.60" in message, message  # decided again, as after a lowered max_price
    assert [e for e in env.events if e["event"] == "price_changed"]
    live = vast_live(env.emu)
    assert live and all(i.compute_per_hr <= 0.6 + 1e-9 for i in live), [i.compute_per_hr for i in live]
    # Booked at what Vast billed, the $1.50 stretch too (half the interval it may have run at it).
    booked = sum(estimate_spend(env.store.observations(p["pod_id"])) for p in env.store.managed_pods("v"))
    billed = sum(env.emu.vast.true_spend(i) for i in env.emu.vast.instances)
    assert billed - 1.5 * 5 / 60 - 0.01 <= booked <= billed + 0.01, (booked, billed)


RUNPOD_JOB = f"""
[jobs.train]
gpu = ["{RTX4090}"]
cloud = "community"
hours = 30
tolerance = "high"
image = "runpod/pytorch:latest"
"""


def test_a_runpod_pod_that_runs_on_cannot_change_its_price(env):
    # Both price fields say $25/h, but the run has gone on since the last poll: RunPod prices a run when it
    # starts, so this is a wrong answer, not a new bid.
    config = env.config(RUNPOD_JOB)
    env.tick_until(config, lambda r: r.jobs[0].state == "running", every=10)
    [pod] = env.running()
    env.emu.advance(600)
    env.tick(config)
    before = env.store.observations(pod.id)
    env.emu.advance(600)
    spoil_cost, spoil_adjusted = pod_field("costPerHr", 25.0), pod_field("adjustedCostPerHr", 25.0)
    env.emu.malform("myself", lambda p: spoil_adjusted(spoil_cost(p)), times=1)
    env.tick(config)
    [event] = [e for e in env.events if e["event"] == "rejected_observation"]
    assert "has run on since the last poll" in event["message"], event
    assert env.store.observations(pod.id) == before


# -- a RunPod pod kept stopped that the user restarts outside bidder ---------------------------------------

def _held_then_restarted(env, config):
    """The job runs an hour, its pod is stopped outside bidder (the job is held), then bid-resumed by hand at
    30% over its old bid (within 10% reads as a bid of bidder's: `Executor._note_price`). Returns the pod."""
    env.tick_until(config, lambda r: r.jobs[0].state == "running", every=10)
    [pod] = env.running()
    for _ in range(6):
        env.emu.advance(600)
        env.tick(config)
    env.client.stop(pod.id)
    for _ in range(3):
        env.emu.advance(600)
        assert env.tick(config).jobs[0].state == "held"
    env.client.bid_resume(pod.id, round(pod.bid_per_gpu * 1.3, 4), pod.gpu_count)
    return pod


def test_a_held_jobs_pod_restarted_outside_bidder_is_watched_and_booked_from_its_restart(env):
    # Never polled (only active pods were), its six hours went unbooked: `held ... (spent $0.49)` while the
    # emulator billed $1.03; its next exit was then booked without its time and not counted as an interruption.
    config = env.config(RUNPOD_JOB.replace(RTX4090, "NVIDIA RTX A6000"))
    pod = _held_then_restarted(env, config)
    for _ in range(36):  # six hours
        env.emu.advance(600)
        report = env.tick(config)
        assert report.jobs[0].state == "held"  # held: the tick neither runs it nor stops it
    assert f"its pod {pod.id} was restarted outside bidder and runs at $" in report.jobs[0].message
    [said] = [e for e in env.events if e["event"] == "restarted_outside"]  # once, when it was found running
    assert said["pod_id"] == pod.id
    assert not [e for e in env.events if e["event"] in ("price_changed", "rejected_observation")]
    row = env.store.pod(pod.id)
    assert row["desired_status"] == "RUNNING" and row["bid_per_gpu"] == pytest.approx(pod.bid_per_gpu)
    assert estimate_spend(env.store.observations(pod.id)) == pytest.approx(env.emu.world.true_spend(pod.id), abs=1e-6)
    assert report.jobs[0].spent == pytest.approx(env.emu.world.true_spend(pod.id), abs=1e-6)
    # RunPod outbids it 5 minutes after a poll: booked to that moment (lastStatusChange), one interruption.
    env.emu.advance(300)
    env.emu.world.set_floor(pod.gpu_type_id, pod.cloud, 5.0)
    env.emu.advance(300)
    report = env.tick(config)
    assert estimate_spend(env.store.observations(pod.id)) == pytest.approx(env.emu.world.true_spend(pod.id), abs=1e-6)
    assert env.store.pod(pod.id)["interruptions"] == pod.interruptions == 1
    assert running_hours(env.store.observations(pod.id)) == pytest.approx(1 + 6 + 5 / 60, abs=1e-3)
    assert "restarted outside bidder" not in report.jobs[0].message


def test_pods_refresh_shows_a_stopped_pod_restarted_outside_bidder_running(env):
    env.store.clock = "given"  # (the ticks' polls on the time line of the CLI's --now)
    config = env.config(RUNPOD_JOB.replace(RTX4090, "NVIDIA RTX A6000"))
    pod = _held_then_restarted(env, config)
    env.emu.advance(3600)
    keys = {"RUNPOD_API_KEY": TEST_API_KEY}
    result = CliRunner(env=keys).invoke(main, ["pods", "--refresh", "--format", "json", "--db", str(env.tmp / "bidder.db"),
                                               "--api-url", env.emu.url, "--now", to_iso(env.emu.now)])
    assert result.exit_code == 0, result.output
    assert f"warning: pod {pod.id}, kept stopped, was restarted outside bidder" in result.stderr
    [shown] = [p for p in json.loads(result.stdout) if p["pod"] == pod.id]
    assert shown["status"] == "RUNNING" and shown["cost_per_hr"] == pytest.approx(pod.cost_per_hr), shown
    assert shown["spent"] == pytest.approx(env.emu.world.true_spend(pod.id), abs=1e-3)
    # The report puts that hour's dollars in that hour, not spread over the stretch since the pod was seen
    # stopped: the half hour it stood stopped cost nothing (it showed a third of the run's dollars there).
    restarted = env.emu.now - timedelta(hours=1)
    stopped = spend_report(env.store, since=restarted - timedelta(minutes=30), until=restarted)
    assert stopped.totals.spend == pytest.approx(0.0, abs=1e-6)
    ran = spend_report(env.store, since=restarted, until=env.emu.now + timedelta(seconds=1))
    assert ran.totals.spend == pytest.approx(pod.cost_per_hr, abs=1e-3)
