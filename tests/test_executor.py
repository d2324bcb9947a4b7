"""Executor pieces against the emulator: polls into observations, exit observations dated from
lastStatusChange (spend exact to the second), stops, the incremental job progress, idempotent names."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from executor_helpers import A6000, make_env, recount

from bidder.executor import LEDGER_ID, Executor, exit_time, running_hours
from bidder.jobs import LEDGER_ID_PATTERN, job_from_values
from bidder.models import Decision
from bidder.report.page import write_html_report
from bidder.store import estimate_spend
from bidder.tick import job_progress
from bidder.units import to_iso

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def obs(minutes: float, status: str, cost: float, uptime: float | None) -> dict:
    return {"ts": T0 + timedelta(minutes=minutes), "desired_status": status, "cost_per_hr": cost,
            "uptime_seconds": uptime}


def test_an_exit_observation_integrates_a_stop_between_polls_exactly():
    # Polls at 0 and 5 min see it running; it stopped at 7.5 min (read from lastStatusChange);
    # the poll at 10 min sees it stopped; resumed at 10 min at a new price, polled at 15 min.
    polls = [obs(0, "RUNNING", 0.6, 120), obs(5, "RUNNING", 0.6, 420), obs(7.5, "EXITED", 0.6, 570),
             obs(10, "EXITED", 0.6, None), obs(15, "RUNNING", 0.9, 300)]
    assert estimate_spend(polls) == pytest.approx(0.6 * 570 / 3600 + 0.9 * 300 / 3600)
    # Without the exit observation the stop is guessed at half the interval.
    guessed = [p for p in polls if p["ts"] != T0 + timedelta(minutes=7.5)]
    assert estimate_spend(guessed) == pytest.approx(0.6 * (420 + 150) / 3600 + 0.9 * 300 / 3600)
    # A pod that ran and stopped before its first poll: the exit observation alone carries the run.
    assert estimate_spend([obs(3, "EXITED", 1.2, 180), obs(5, "EXITED", 1.2, None)]) == pytest.approx(1.2 * 180 / 3600)


@pytest.fixture
def env(emulator, client, tmp_path):
    emulator.world.reclaim_rate_per_hour = 0.0
    e = make_env(emulator, client, tmp_path, history=False)
    yield e
    e.store.close()


def spot_decision(bid: float) -> Decision:
    return Decision(action="spot", gpu_type_id=A6000, cloud="COMMUNITY", gpu_count=1, bid_per_gpu=bid,
                    expected_cost_per_hour=bid, expected_interruptions_per_day=1.0, expected_total_cost=None,
                    expected_completion_hours=None, reasons=("test",))


def test_polls_record_interruptions_once_with_their_exit_time(env):
    config = job_from_values("t", {"gpu": [A6000], "image": "img"})
    ex = Executor(env.client, env.store)
    env.emu.world.set_floor(A6000, "COMMUNITY", 0.2)
    result = ex.launch(config, config.job, config.policy, spot_decision(0.25), env.emu.now)
    pod = result.pod
    assert pod is not None and [a.name for a in result.attempts] == [f"bidder-t-1-{ex.ledger_id()}"]
    env.emu.advance(300)
    row = env.store.pod(pod.id)
    assert ex.observe(row, env.client.pod(pod.id), env.emu.now) == "running"
    env.emu.advance(130)
    env.emu.world.set_floor(A6000, "COMMUNITY", 0.3)  # outbid 430 s after the start
    stopped_at = env.emu.now
    env.emu.advance(170)
    polled = env.client.pod(pod.id)
    assert exit_time(polled.last_status_change) == stopped_at
    assert ex.observe(env.store.pod(pod.id), polled, env.emu.now) == "interrupted"
    rows = env.store.observations(pod.id)
    assert [(r["ts"], r["desired_status"], r["uptime_seconds"]) for r in rows] == [
        (stopped_at - timedelta(seconds=130), "RUNNING", 300), (stopped_at, "EXITED", 430),
        (env.emu.now, "EXITED", None)]
    assert estimate_spend(rows) == pytest.approx(env.emu.world.true_spend(pod.id), rel=1e-9)
    env.emu.advance(300)
    assert ex.observe(env.store.pod(pod.id), env.client.pod(pod.id), env.emu.now) == "exited"  # counted once
    assert env.store.pod(pod.id)["interruptions"] == 1


def test_a_stop_sent_by_bidder_is_dated_and_not_an_interruption(env):
    config = job_from_values("t", {"gpu": [A6000], "image": "img", "volume": 10})
    ex = Executor(env.client, env.store)
    env.emu.world.set_floor(A6000, "COMMUNITY", 0.2)
    pod = ex.launch(config, config.job, config.policy, spot_decision(0.31), env.emu.now).pod
    assert env.emu.world.pods[pod.id].volume_in_gb == 10
    env.emu.advance(600)
    ex.observe(env.store.pod(pod.id), env.client.pod(pod.id), env.emu.now)
    env.emu.advance(1000)
    ex.stop_pod(env.store.pod(pod.id), env.emu.now, reason="test")
    row = env.store.pod(pod.id)
    assert (row["state"], row["desired_status"], row["interruptions"]) == ("stopped", "EXITED", 0)
    env.emu.advance(600)
    assert env.emu.world.pods[pod.id].desired_status == "EXITED"
    spend = estimate_spend(env.store.observations(pod.id))
    assert spend == pytest.approx(0.31 * 1600 / 3600) and spend == pytest.approx(env.emu.world.true_spend(pod.id))


def test_incremental_progress_equals_a_full_recount(env):
    config = job_from_values("t", {"gpu": [A6000], "image": "img", "hours": 5, "restart_overhead": "6m"})
    ex = Executor(env.client, env.store)
    env.emu.world.set_floor(A6000, "COMMUNITY", 0.2)
    pod = ex.launch(config, config.job, config.policy, spot_decision(0.25), env.emu.now).pod
    for step in range(30):
        env.emu.advance(300)
        if step == 10:
            env.emu.world.set_floor(A6000, "COMMUNITY", 0.4)
        if step == 14:
            env.emu.world.set_floor(A6000, "COMMUNITY", 0.2)
            ex.resume(config, env.store.pod(pod.id), spot_decision(0.22), config.policy, env.emu.now, job_spent=0)
        ex.observe(env.store.pod(pod.id), env.client.pod(pod.id), env.emu.now)
        work, spent, interruptions = job_progress(env.store, config)  # uses and updates the cache
        fresh = recount(env.store, config)
        assert (work, spent, interruptions) == pytest.approx(fresh)
    assert interruptions == 1
    assert spent == pytest.approx(env.emu.world.true_spend(pod.id), rel=1e-9)
    # The cache holds the sums up to the second-newest observation: a tick reads two rows, not all.
    anchor = env.store.job_state("t")["progress_cache"][pod.id]
    assert anchor[0] == to_iso(env.store.observations(pod.id)[-2]["ts"])
    assert anchor[1] == pytest.approx(estimate_spend(env.store.observations(pod.id)[:-1]))
    # A cache entry of an older bidder (no run count: three fields) is recounted, not misread.
    env.store.save_job_state("t", progress_cache={pod.id: anchor[:3]})
    assert job_progress(env.store, config) == pytest.approx(fresh)
    assert len(env.store.job_state("t")["progress_cache"][pod.id]) == 7  # (with the cap, losses, last run)


def test_the_progress_cache_counts_a_run_once_when_an_exit_and_a_resume_share_a_second(env):
    # A Vast bid raise that resumes at once writes EXITED then RUNNING at the same time. The cache's
    # anchor was the RUNNING one; the next read started at that time, read the EXITED one again, and
    # counted the run twice: 3.50 h of work done where the ledger held 3.67.
    config = job_from_values("t", {"gpu": [A6000], "image": "img", "hours": 10, "restart_overhead": "10m"})
    env.store.add_pod("p1", job="t", name="bidder-t-1", gpu_type_id=A6000, cloud="COMMUNITY", gpu_count=1,
                      kind="spot", bid_per_gpu=0.2, created=env.emu.now)
    t0, hour = env.emu.now, timedelta(hours=1)
    polls = [(0, "RUNNING", 0.0), (1, "RUNNING", 3600.0), (2, "EXITED", None), (2, "RUNNING", 0.0),
             (3, "RUNNING", 3600.0), (4, "RUNNING", 7200.0)]
    for h, status, uptime in polls:
        env.store.record_observation(t0 + h * hour, "p1", desired_status=status, cost_per_hr=0.2,
                                     uptime_seconds=uptime)
        cached = job_progress(env.store, config)  # reads and updates the cache, as each tick does
        assert cached == pytest.approx(recount(env.store, config)), (h, status)
    assert cached[0] == pytest.approx(running_hours(env.store.observations("p1")) - 10 / 60)  # two runs: one restart


def restarting_job(env):
    """Job t (5 h of work, 6 minutes lost per restart) on the A6000 at a calm floor, its executor, a poller
    `run(pod_id, polls)` (one poll every 5 minutes), and `ran()`: the hours its pods ran, from the ledger."""
    config = job_from_values("t", {"gpu": [A6000], "image": "img", "hours": 5, "restart_overhead": "6m"})
    ex = Executor(env.client, env.store)
    env.emu.world.set_floor(A6000, "COMMUNITY", 0.2)

    def run(pod_id: str, polls: int) -> None:
        for _ in range(polls):
            env.emu.advance(300)
            ex.observe(env.store.pod(pod_id), env.client.pod(pod_id), env.emu.now)

    def ran() -> float:
        return sum(running_hours(env.store.observations(p["pod_id"])) for p in env.store.managed_pods("t"))

    return config, ex, run, ran


def test_every_restart_loses_the_restart_overhead_not_only_an_interruption(env):
    # The backtest and the optimizer lose `restart_overhead` of work at every run after the first: a
    # stop and resume of bidder's own, or a move to another pod, restarts the work as an outbid does.
    config, ex, run, ran = restarting_job(env)
    first = ex.launch(config, config.job, config.policy, spot_decision(0.25), env.emu.now).pod
    run(first.id, 12)
    ex.stop_pod(env.store.pod(first.id), env.emu.now, reason="a move of bidder's own", state="active")
    run(first.id, 2)  # stopped: nothing is lost until the work starts again
    work, _, interruptions = job_progress(env.store, config, save=False)
    assert interruptions == 0 and work == pytest.approx(ran()) and ran() > 0.9
    ex.resume(config, env.store.pod(first.id), spot_decision(0.25), config.policy, env.emu.now, job_spent=0)
    run(first.id, 12)
    assert job_progress(env.store, config)[0] == pytest.approx(ran() - 0.1)  # one restart
    ex.stop_pod(env.store.pod(first.id), env.emu.now, reason="moving", terminate=True)
    second = ex.launch(config, config.job, config.policy, spot_decision(0.25), env.emu.now).pod
    run(second.id, 6)
    work, _, interruptions = job_progress(env.store, config)
    fresh = job_progress(env.store, config, save=False)  # the cached sums agree with a full recount
    assert interruptions == 0 and work == pytest.approx(ran() - 0.2) and fresh[0] == pytest.approx(work)
    # The report's "hours lost to restarts" counts them the same way (it counted interruptions: 0.0 h).
    page = write_html_report(env.store, env.tmp / "report", since=None, until=env.emu.now, now=env.emu.now,
                             restart_overhead_hours={"t": 0.1}).read_text()
    assert "<span>Hours lost to restarts</span><b>0.2 h</b>" in page


def test_a_pod_outbid_before_its_first_poll_is_a_run_and_its_restart_is_counted(env):
    # The README's story: the first spot pod is outbid within minutes, before any poll saw it RUNNING.
    # Its run was counted in hours and spend but not as a run: three runs counted as two restarts'
    # worth one, and the job was finished 10 minutes of work early.
    config, ex, run, ran = restarting_job(env)
    first = ex.launch(config, config.job, config.policy, spot_decision(0.25), env.emu.now).pod
    env.emu.advance(240)
    env.emu.world.set_floor(A6000, "COMMUNITY", 0.3)  # outbid 4 minutes in, before the first poll
    env.emu.advance(60)
    env.emu.world.set_floor(A6000, "COMMUNITY", 0.2)
    ex.observe(env.store.pod(first.id), env.client.pod(first.id), env.emu.now)
    assert env.store.pod(first.id)["interruptions"] == 1 and ran() == pytest.approx(4 / 60, abs=1 / 60)
    ex.stop_pod(env.store.pod(first.id), env.emu.now, reason="moving", terminate=True)
    second = ex.launch(config, config.job, config.policy, spot_decision(0.25), env.emu.now).pod
    run(second.id, 6)
    ex.stop_pod(env.store.pod(second.id), env.emu.now, reason="a stop of bidder's own", state="active")
    ex.resume(config, env.store.pod(second.id), spot_decision(0.25), config.policy, env.emu.now, job_spent=0)
    run(second.id, 6)
    work, _, interruptions = job_progress(env.store, config)
    # Three runs: two restarts, the first losing its run's 4 minutes (under the 6-minute overhead).
    first_ran = running_hours(env.store.observations(first.id))
    assert interruptions == 1 and work == pytest.approx(ran() - first_ran - 0.1)
    assert job_progress(env.store, config, save=False)[0] == pytest.approx(work)  # the cache agrees


def test_names_are_deterministic_per_attempt_and_dry_runs_use_none(env):
    config = job_from_values("train", {"gpu": [A6000], "image": "img", "name": "exp"})
    ex = Executor(env.client, env.store)
    lid = ex.ledger_id()  # the database's own id, made once: part of every name it gives
    assert re.fullmatch(LEDGER_ID_PATTERN, lid) and env.store.settings_get(LEDGER_ID) == lid
    assert ex.next_name(config) == (1, f"exp-1-{lid}")
    env.emu.world.set_floor(A6000, "COMMUNITY", 0.2)
    dry = Executor(env.client, env.store, dry_run=True)
    result = dry.launch(config, config.job, config.policy, spot_decision(0.25), env.emu.now)
    assert result.requests and result.requests[0].variables["input"]["name"] == f"exp-1-{lid}"
    assert ex.next_name(config) == (1, f"exp-1-{lid}") and env.emu.world.pods == {}
    pod = ex.launch(config, config.job, config.policy, spot_decision(0.25), env.emu.now).pod
    assert pod.name == f"exp-1-{lid}" and ex.next_name(config) == (2, f"exp-2-{lid}")
    assert Executor(env.client, env.store).ledger_id() == lid


def test_a_launch_finds_a_pending_create_before_creating_again(env):
    from bidder.runpod import PodSpec

    config = job_from_values("train", {"gpu": [A6000], "image": "img"})
    ex = Executor(env.client, env.store)
    env.emu.world.set_floor(A6000, "COMMUNITY", 0.2)
    # An earlier run reserved bidder-train-1 and sent the create; the answer never came back.
    env.store.save_job_state("train", attempts=1, pending_name="bidder-train-1", pending_since=env.emu.now)
    env.store.begin_action(env.emu.now, job="train", kind="rent_spot", gpu_type_id=A6000, cloud="COMMUNITY",
                           gpu_count=1, bid_per_gpu=0.25)
    earlier = env.client.rent_interruptable(PodSpec(name="bidder-train-1", image_name="img", gpu_type_id=A6000,
                                                    cloud_type="COMMUNITY"), 0.25)
    result = ex.launch(config, config.job, config.policy, spot_decision(0.25), env.emu.now)
    assert result.pod is not None and result.pod.id == earlier.id
    assert [a.outcome for a in result.attempts] == ["adopted"]
    assert list(env.emu.world.pods) == [earlier.id]
    assert [(a["kind"], a["outcome"], a["pod_id"]) for a in env.store.actions("train")] == [
        ("rent_spot", "ok", earlier.id)]
    # With nothing pending any more, the next launch creates the next attempt.
    # (a name reserved before ledger ids, as this one, is still looked up as it was sent)
    assert ex.next_name(config) == (2, f"bidder-train-2-{ex.ledger_id()}")
