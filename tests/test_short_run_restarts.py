"""A tick's work done loses, per restart, what the backtest loses (`bidder.backtest.engine`, `end_run`):
the work of the run that ended, up to `restart_overhead`. A pod outbid or paused minutes after each start
loses those minutes, not the whole overhead each time. Real SQLite ledgers; the engine replays the same
runs for the reference."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from executor_helpers import A6000, recount

from bidder.backtest.engine import replay
from bidder.backtest.history import PriceHistory
from bidder.backtest.strategies import KEEP, Action
from bidder.backtest.types import BacktestJob, Market
from bidder.executor import running_hours
from bidder.jobs import job_from_values
from bidder.models import Policy
from bidder.store import Store, estimate_spend, run_starts
from bidder.tick import job_progress
from bidder.units import to_iso

T0 = datetime(2026, 1, 1, tzinfo=UTC)
GAP = 2  # minutes between runs (outbid, then the floor back under the bid)
#: Runs in minutes: an hour, three outbid 3 minutes in (under the 10-minute overhead), one no poll saw
#: running (its exit observation alone: outbid 4 minutes in), 45 minutes, two more short ones, then 30.
RUNS = (60, 3, 3, 3, 4, 45, 3, 3, 30)
UNSEEN = 4  # RUNS' index of the run only an exit observation shows


def job(overhead: str = "10m", speed: float | None = None):
    values = {"gpu": [A6000], "image": "img", "hours": 100, "restart_overhead": overhead}
    return job_from_values("t", values | ({"speed": {A6000: speed}} if speed else {}))


def run_polls(runs, *, running_last: bool, start: int = 0) -> list[tuple[int, str, float | None]]:
    """RunPod polls of one pod, (minute, status, uptime seconds): each run polled every 5 minutes from
    its start, its end written as an exit observation (as the executor does) and a poll a minute later
    sees it stopped; the last run still RUNNING at the end when `running_last`."""
    polls: list[tuple[int, str, float | None]] = []
    s = start
    for i, length in enumerate(runs):
        last = i == len(runs) - 1
        if i != UNSEEN:
            polls += [(s + m, "RUNNING", m * 60.0) for m in range(0, length, 5)]
        if last and running_last:
            polls.append((s + length, "RUNNING", length * 60.0))
        else:
            polls += [(s + length, "EXITED", length * 60.0), (s + length + 1, "EXITED", None)]
        s += length + GAP
    return polls


def ledger(tmp_path, pods: dict[str, list[tuple[int, str, float | None]]], interruptions: dict[str, int] | None = None):
    store = Store.open(tmp_path / "bidder.db")
    for n, (pod_id, polls) in enumerate(pods.items()):
        store.add_pod(pod_id, job="t", name=f"bidder-t-{n + 1}", gpu_type_id=A6000, cloud="COMMUNITY", gpu_count=1,
                      kind="spot", bid_per_gpu=0.3, created=T0 + timedelta(minutes=polls[0][0]))
        record(store, pod_id, polls)
        if interruptions:
            store.set_pod_state(pod_id, interruptions=interruptions.get(pod_id, 0))
    return store


def record(store, pod_id, polls) -> None:
    for minute, status, uptime in polls:
        store.record_observation(T0 + timedelta(minutes=minute), pod_id, desired_status=status, cost_per_hr=0.3,
                                 uptime_seconds=uptime)


class FixedBid:
    """Bids $0.30 whenever the job has no pod: every stretch of floor under it is one run."""

    name = "fixed"

    def decide(self, view, state):
        return KEEP if state.pod is not None else Action("spot", 0, 0.3)


def engine_work(runs, *, tail: int, overhead_h: float, speed: float = 1.0) -> float:
    """The backtest's work done (the GPU at `speed`) after `runs` (minutes, GAP apart, the floor over the
    bid in between), one sample a minute, the history ending `tail` minutes after the last run's end."""
    floor: list[float] = []
    for i, length in enumerate(runs):
        floor += [0.2] * length + [0.5] * (GAP if i < len(runs) - 1 else tail)
    ts = T0.timestamp() + 60.0 * np.arange(len(floor))
    history = PriceHistory(ts=ts, floor=np.array([floor]), on_demand=np.full((1, len(floor)), 1.0),
                           markets=(Market(A6000, "COMMUNITY"),), step_s=60.0)
    result = replay(history, BacktestJob(gpu_types=(A6000,), work_hours=1000.0, deadline_hours=None,
                                         restart_overhead_hours=overhead_h, speed_factors=((A6000, speed),)),
                    Policy(), FixedBid())
    assert result.interruptions == len(runs) - (tail == 0)  # (the replay met the runs the ledger shows)
    return result.work_hours


def test_runs_shorter_than_the_overhead_lose_only_their_own_work_as_in_the_backtest(tmp_path):
    with ledger(tmp_path, {"p1": run_polls(RUNS, running_last=True)}, {"p1": len(RUNS) - 1}) as store:
        work, _, interruptions = job_progress(store, job(), save=False)
        ran = running_hours(store.observations("p1"))
    assert ran == pytest.approx(sum(RUNS) / 60)
    # Every run but the newest ended: the hour and the 45 minutes lose 10 minutes each, the others
    # what they ran (3+3+3+4+3+3 = 19 minutes): 39 minutes, where 8 restarts x 10 took 80.
    assert interruptions == len(RUNS) - 1
    assert work == pytest.approx(ran - 39 / 60)
    assert work == pytest.approx(engine_work(RUNS, tail=0, overhead_h=10 / 60))


def test_on_a_faster_gpu_a_restart_loses_its_running_time_times_the_speed_as_in_the_backtest(tmp_path):
    """restart_overhead is running time (resume, work since the checkpoint): at speed 2 the 10 minutes
    are 20 minutes of reference work, as the backtest and the plan count them. The tick took 10 (the
    overhead in reference work): 58 minutes lost where the backtest loses 78, a job counted done early."""
    with ledger(tmp_path, {"p1": run_polls(RUNS, running_last=True)}, {"p1": len(RUNS) - 1}) as store:
        work, _, _ = job_progress(store, job(speed=2.0), save=False)
        ran = running_hours(store.observations("p1"))
    assert work == pytest.approx(2 * ran - 2 * 39 / 60)
    assert work == pytest.approx(engine_work(RUNS, tail=0, overhead_h=10 / 60, speed=2.0))
    runs = (60, 3, 45, 3)  # waiting after its last run, and one run no poll saw: the whole overhead x speed
    (tmp_path / "w").mkdir()
    with ledger(tmp_path / "w", {"p1": run_polls(runs, running_last=False)}, {"p1": len(runs) + 1}) as store:
        work, _, _ = job_progress(store, job(speed=2.0), save=False)
    assert work == pytest.approx(2 * (111 - 26 - 10) / 60)


def test_a_job_waiting_after_a_short_run_loses_that_run_as_in_the_backtest(tmp_path):
    # Outbid after each of its runs and waiting now: its interruptions outnumber its restarts, and the
    # last one ended a 3-minute run, which loses those 3 minutes (the whole overhead was taken off).
    runs = (60, 3, 45, 3)
    with ledger(tmp_path, {"p1": run_polls(runs, running_last=False)}, {"p1": len(runs)}) as store:
        work, _, _ = job_progress(store, job(), save=False)
    assert work == pytest.approx((111 - 26) / 60)
    assert work == pytest.approx(engine_work(runs, tail=5, overhead_h=10 / 60))


def test_a_move_loses_the_old_pods_last_run_up_to_the_overhead(tmp_path):
    # Pod p1 runs 3 minutes (outbid), then 40 (moved by bidder); p2 runs 3 (outbid), then 20, on.
    p1 = run_polls((3, 40), running_last=False)
    p2 = run_polls((3, 20), running_last=True, start=p1[-1][0] + 2)
    with ledger(tmp_path, {"p1": p1, "p2": p2}, {"p1": 1, "p2": 1}) as store:
        work, _, _ = job_progress(store, job(), save=False)
    assert work == pytest.approx((66 - 3 - 10 - 3) / 60)  # three restarts: 3, 10 (of 40) and 3 minutes lost


def test_the_cached_progress_equals_a_full_read_and_reads_only_new_observations(tmp_path):
    polls = run_polls(RUNS, running_last=True)
    configs = [job(), job("5m"), job("5m", speed=2.0), job()]  # restart_overhead and speed changed between ticks
    with ledger(tmp_path, {"p1": polls[:1]}) as store:
        for i, poll in enumerate(polls[1:]):
            record(store, "p1", [poll])
            config = configs[i * len(configs) // (len(polls) - 1)]
            cached = job_progress(store, config)  # reads and updates the cache, as each tick does
            assert cached == pytest.approx(recount(store, config)), poll
        entry = store.job_state("t")["progress_cache"]["p1"]
        assert len(entry) == 7 and entry[0] == to_iso(T0 + timedelta(minutes=polls[-2][0]))
        ran = running_hours(store.observations("p1"))
        assert cached[0] == pytest.approx(ran - 39 / 60)
        # The next tick reads from the anchor on: without the older rows it counts the same.
        with sqlite3.connect(tmp_path / "bidder.db") as db:
            db.execute("DELETE FROM pod_observations WHERE ts < ?", (entry[0],))
        record(store, "p1", [(polls[-1][0] + 5, "RUNNING", (RUNS[-1] + 5) * 60.0)])
        assert job_progress(store, job())[0] == pytest.approx(ran + 5 / 60 - 39 / 60)


def test_a_cache_entry_of_an_older_bidder_is_read_again_from_every_observation(tmp_path):
    polls = run_polls(RUNS, running_last=True)
    with ledger(tmp_path, {"p1": polls}) as store:
        rows = store.observations("p1")
        # Main's entry: [ts, USD, hours, runs] up to the second-newest observation.
        head = rows[:-1]
        old = [to_iso(head[-1]["ts"]), estimate_spend(head), running_hours(head), len(run_starts(head))]
        store.save_job_state("t", progress_cache={"p1": old})
        work = job_progress(store, job())[0]
        assert work == pytest.approx(running_hours(rows) - 39 / 60)
        assert work == pytest.approx(recount(store, job())[0])
        assert len(store.job_state("t")["progress_cache"]["p1"]) == 7  # rewritten in the new shape
