"""The ledger's spend against what the emulator billed, where they parted: a pod ended outside bidder
between two polls, a Vast instance kept stopped (its disk bills storage), one left behind by a move, one
to retire, and a held job's stored spend. Real emulator over HTTP, real SQLite."""

from __future__ import annotations

import pytest
from executor_helpers import A6000, make_env
from two_markets import VAST4090, tick

from bidder.report.data import spend_report
from bidder.store import estimate_spend
from bidder.tick import job_progress


@pytest.fixture
def env(emulator, client, tmp_path):
    emulator.world.reclaim_rate_per_hour = 0
    e = make_env(emulator, client, tmp_path)
    yield e
    e.store.close()


RUNPOD_JOB = f"""
[jobs.train]
gpu = ["{A6000}"]
cloud = "community"
hours = 50
tolerance = 24
min_savings = 0
image = "runpod/pytorch:latest"
"""


def test_a_runpod_pod_terminated_outside_bidder_between_polls_books_half_that_interval(env):
    config = env.config(RUNPOD_JOB)
    env.tick_until(config, lambda r: r.jobs[0].state == "running", every=10)
    [row] = env.store.managed_pods("train")
    pod_id = row["pod_id"]
    for _ in range(6):  # an hour of 10-minute ticks
        env.emu.advance(600)
        env.tick(config)
    rate = env.store.last_observation(pod_id)["cost_per_hr"]
    env.emu.advance(9 * 60)  # 9 minutes after the last poll, the user terminates it in RunPod's console
    env.client.terminate(pod_id)
    env.emu.advance(60)
    assert env.tick(config).jobs[0].state == "held"  # sees it gone
    billed = env.emu.world.true_spend(pod_id)
    ledger = estimate_spend(env.store.observations(pod_id))
    _, spent, _ = job_progress(env.store, config.job("train"), save=False)
    # When in those 10 minutes it ended, nobody can tell: half of them is booked (the unbiased guess),
    # so the ledger is within 5 minutes at its rate of the bill (it ran 9: 4 short), not 9 short.
    assert billed - rate * 5 / 60 <= ledger <= billed, (billed, ledger)
    assert spent == pytest.approx(ledger)


VAST_JOB = """
[jobs.v]
gpu = ["RTX 4090"]
market = "vast"
hours = {hours}
tolerance = "high"
max_price = 0.6
image = "pytorch/pytorch"
disk = 40
"""


def vast_billed(env) -> float:
    return sum(env.emu.vast.true_spend(i) for i in env.emu.vast.instances)


def vast_ledger(env, job="v") -> float:
    return sum(estimate_spend(env.store.observations(p["pod_id"])) for p in env.store.managed_pods(job))


def test_a_vast_instance_destroyed_outside_bidder_between_polls_books_half_that_interval(both):
    env, api = both
    config = env.config(VAST_JOB.format(hours=100))
    for _ in range(6):  # an hour of 10-minute ticks
        tick(env, api, config)
        env.emu.advance(600)
    tick(env, api, config)
    [row] = env.store.managed_pods("v", states=["active"])
    assert row["desired_status"] == "RUNNING"
    inst = env.emu.vast.instances[int(row["pod_id"])]
    five_minutes = (inst.compute_per_hr + inst.storage_per_hr) * 5 / 60
    env.emu.advance(9 * 60)  # 9 minutes after the last poll, the user destroys it in Vast's console
    api.client.destroy(int(row["pod_id"]))
    env.emu.advance(60)
    tick(env, api, config)  # sees it gone
    assert vast_billed(env) - five_minutes <= vast_ledger(env) <= vast_billed(env) + five_minutes


def test_a_finished_vast_jobs_stopped_instance_bills_its_storage_into_the_ledger(both):
    env, api = both
    config = env.config(VAST_JOB.format(hours=1))  # on_finish defaults to "stop": the disk is kept
    for _ in range(6 * 6):
        report = tick(env, api, config)
        if report.jobs[0].state == "finished":
            break
        env.emu.advance(600)
    assert report.jobs[0].state == "finished", report.jobs[0].message
    at_finish = vast_billed(env)
    env.emu.advance(7 * 86400)  # a week on, cron still ticking
    tick(env, api, config)
    assert vast_billed(env) > at_finish * 2  # the kept disk's storage
    assert spend_report(env.store).totals.spend == pytest.approx(vast_billed(env), rel=0.01)
    _, spent, _ = job_progress(env.store, config.job("v"), save=False)
    assert spent == pytest.approx(vast_billed(env), rel=0.01)


def _plan(action, bid=None):
    from bidder.models import Decision

    def advise(job, policy, now, progress):
        return Decision(action=action, gpu_type_id=VAST4090, cloud="VERIFIED", gpu_count=1, bid_per_gpu=bid,
                        expected_cost_per_hour=bid or 0.4, expected_interruptions_per_day=1.0,
                        expected_total_cost=None, expected_completion_hours=None, reasons=(f"plan {action}",),
                        market="vast")
    return advise


def test_a_vast_on_demand_instance_left_by_a_move_to_spot_is_destroyed(both):
    env, api = both
    config = env.config(VAST_JOB.format(hours=100))  # on_finish defaults to "stop"
    report = tick(env, api, config, advise=_plan("on_demand"))
    assert report.jobs[0].state == "running", report.jobs[0].message
    [first] = env.store.managed_pods("v")
    assert first["kind"] == "on_demand"
    for _ in range(3):
        env.emu.advance(600)
        tick(env, api, config, advise=_plan("on_demand"))
    env.emu.advance(600)
    tick(env, api, config, advise=_plan("spot", 0.55))  # the keep-or-switch rule says: spot
    rows = env.store.managed_pods("v")
    assert len(rows) == 2 and rows[-1]["kind"] == "spot", [(r["pod_id"], r["kind"], r["state"]) for r in rows]
    assert env.emu.vast.instances[int(first["pod_id"])].destroyed  # its disk cannot follow the job
    for _ in range(6 * 24):  # a day of ticks on the spot instance
        env.emu.advance(600)
        tick(env, api, config, advise=_plan("spot", 0.55))
    assert vast_ledger(env) == pytest.approx(vast_billed(env), rel=0.01)


def test_a_held_jobs_stored_spend_follows_its_pods_to_their_stop(env, tmp_path):
    """`bidder stop` between ticks books the run up to the stop; the held job's stored spend (the tick's
    line, the HTML report's job table) follows, as `bidder jobs` and the report do."""
    from click.testing import CliRunner

    from bidder.cli import main
    from bidder.sim import TEST_API_KEY
    from bidder.units import to_iso

    config = env.config(RUNPOD_JOB)
    (tmp_path / "bidder.toml").write_text(RUNPOD_JOB)
    env.tick_until(config, lambda r: r.jobs[0].state == "running", every=10)
    [row] = env.store.managed_pods("train")
    for _ in range(3):
        env.emu.advance(600)
        env.tick(config)
    env.emu.advance(55 * 60)  # cron missed a few runs; the user stops the pod by hand
    out = CliRunner(env={"RUNPOD_API_KEY": TEST_API_KEY}).invoke(
        main, ["stop", row["pod_id"], "--db", str(tmp_path / "bidder.db"), "--api-url", env.emu.url,
               "--now", to_iso(env.emu.now)])
    assert out.exit_code == 0, out.output
    for _ in range(3):
        env.emu.advance(600)
        report = env.tick(config)
    assert report.jobs[0].state == "held"
    billed = env.emu.world.true_spend(row["pod_id"])
    assert spend_report(env.store).totals.spend == pytest.approx(billed, rel=0.01)
    assert env.store.job_state("train")["spent"] == pytest.approx(billed, rel=0.01)
    assert report.jobs[0].spent == pytest.approx(billed, rel=0.01)


def test_a_vast_instance_to_retire_is_billed_into_the_ledger_until_destroyed(both):
    env, api = both
    config = env.config(VAST_JOB.format(hours=100))
    env.emu.vast.ignore_price = True  # Vast rents on-demand although a bid was sent...
    env.emu.malform("vast:destroy", {"success": False, "error": "server_error", "msg": "Internal Server Error"},
                    status=500, execute=False, times=None)  # ...and the destroy fails for a while
    tick(env, api, config)
    [left] = [i for i in env.emu.vast.instances.values() if not i.destroyed]
    env.emu.vast.ignore_price = False
    for _ in range(6):  # an hour of ticks while the destroy keeps failing
        env.emu.advance(600)
        tick(env, api, config)
    env.emu.clear_malformed()
    env.emu.advance(600)
    tick(env, api, config)  # destroyed first, then the job goes on
    assert left.destroyed and env.store.pod(str(left.id))["state"] == "retired"
    assert estimate_spend(env.store.observations(str(left.id))) == pytest.approx(
        env.emu.vast.true_spend(left.id), rel=0.01)
    assert spend_report(env.store).totals.spend == pytest.approx(vast_billed(env), rel=0.01)
    _, spent, _ = job_progress(env.store, config.job("v"), save=False)
    assert spent == pytest.approx(vast_billed(env), rel=0.01)
