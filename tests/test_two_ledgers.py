"""Two bidder databases on one account (a cron's and an interactive `bidder tick` without `--db`, or
two project folders with a job of the same name), against the emulator over HTTP: neither adopts,
retires nor names alike a pod of the other's, each warns about the other's once per tick, and a
ledger still takes the pods of its own lost creates (old names included)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from executor_helpers import ON_DEMAND_SERVICE, make_env, named
from two_markets import vast_live

from bidder.executor import CREATE_GRACE, LEDGER_ID
from bidder.runpod import PodSpec
from bidder.store import Store
from bidder.tick import TickReport, run_tick

A6000 = "NVIDIA RTX A6000"


def copy_db(store: Store, path: Path) -> Store:
    """A second database with the same price history (and nothing else yet), as `cp` would make one."""
    with sqlite3.connect(store.path) as src, sqlite3.connect(path) as dst:
        src.backup(dst)
    return Store.open(path)


@pytest.fixture
def two(emulator, client, tmp_path):
    """(env on bidder.db, a second Store other.db with the same history and an empty ledger)."""
    emulator.world.reclaim_rate_per_hour = 0.0
    env = make_env(emulator, client, tmp_path)
    other = copy_db(env.store, tmp_path / "other.db")
    yield env, other
    other.close()
    env.store.close()


def tick_other(env, other: Store, config, **kw) -> TickReport:
    return run_tick(env.client, other, config, env.emu.now, **kw)


def foreign(report: TickReport) -> list[dict]:
    return [e for e in report.events if e["event"] == "foreign_pod"]


def stopped_by_bidder(env) -> list[str]:
    return [p.id for p in env.emu.world.pods.values() if p.desired_status != "RUNNING"]


def test_two_ledgers_on_one_account_never_adopt_retire_or_share_names_and_warn_once_per_tick(two):
    env, other = two
    config = env.config(ON_DEMAND_SERVICE)
    first = env.tick(config)
    assert first.jobs[0].state == "running" and foreign(first) == []
    [mine] = env.running()
    env.emu.advance(600)
    second = tick_other(env, other, config)
    assert second.jobs[0].state == "running", second.jobs[0].message
    theirs = next(p for p in env.running() if p.id != mine.id)
    # Each ledger names its pods with its own id: never two pods of one name on the account.
    assert mine.name == named(env.store, "bidder-train", 1) and theirs.name == named(other, "bidder-train", 1)
    assert mine.name != theirs.name
    [warning] = foreign(second)
    assert warning["pod_id"] == mine.id and warning["job"] == "train"
    assert warning["message"] == (f"a pod named {mine.name} (id {mine.id}, running) is on the runpod account but "
                                  f"this ledger ({other.path}) never created it: another bidder database? left alone")
    for _ in range(3):  # each ledger ticks on; neither touches the other's pod, each warns once per tick
        env.emu.advance(300)
        mine_tick = env.tick(config)
        theirs_tick = tick_other(env, other, config)
        assert (mine_tick.jobs[0].pod_id, theirs_tick.jobs[0].pod_id) == (mine.id, theirs.id)
        assert [e["pod_id"] for e in foreign(mine_tick)] == [theirs.id]
        assert [e["pod_id"] for e in foreign(theirs_tick)] == [mine.id]
        assert not [e for e in mine_tick.events + theirs_tick.events if e["event"] in ("adopted", "stray", "stop",
                                                                                         "terminate")]
    # The account: both pods run, nothing was stopped or terminated; each ledger holds its own pod only.
    assert sorted(p.id for p in env.running()) == sorted([mine.id, theirs.id])
    assert stopped_by_bidder(env) == []
    assert [r["pod_id"] for r in env.store.managed_pods()] == [mine.id]
    assert [r["pod_id"] for r in other.managed_pods()] == [theirs.id]


def test_a_name_another_pod_already_has_is_skipped_not_given_twice(two):
    # Two databases that share an id (one copied from the other after its first create, its ledger
    # rows since lost): the second's next name is already on the account. It takes the next number.
    env, other = two
    config = env.config(ON_DEMAND_SERVICE)
    assert env.tick(config).jobs[0].state == "running"
    [mine] = env.running()
    other.settings_set(LEDGER_ID, env.store.settings_get(LEDGER_ID))
    report = tick_other(env, other, config)
    assert report.jobs[0].state == "running", report.jobs[0].message
    theirs = next(p for p in env.running() if p.id != mine.id)
    assert theirs.name == named(other, "bidder-train", 2) and mine.name == named(other, "bidder-train", 1)
    assert [e["pod_id"] for e in foreign(report)] == [mine.id]
    assert other.job_state("train")["attempts"] == 2
    env.emu.advance(300)
    assert env.tick(config).jobs[0].pod_id == mine.id  # and the first ledger leaves the second's alone
    assert sorted(p.id for p in env.running()) == sorted([mine.id, theirs.id]) and stopped_by_bidder(env) == []


def test_a_pod_with_an_old_style_name_this_ledger_never_lost_is_left_alone(two):
    # A ledger written before ledger ids (its pods named bidder-train-N) whose create of bidder-train-1
    # was answered: another old database's bidder-train-1 is not a late create of its own.
    env, _other = two
    config = env.config(ON_DEMAND_SERVICE)
    spec = PodSpec(name="bidder-train-1", image_name="runpod/pytorch:latest", gpu_type_id=A6000,
                   cloud_type="COMMUNITY")
    own = env.client.deploy_on_demand(spec)
    env.store.save_job_state("train", attempts=1, pod_id=own.id, state="running", started=env.emu.now)
    env.store.add_pod(own.id, job="train", name="bidder-train-1", gpu_type_id=A6000, cloud="COMMUNITY", gpu_count=1,
                      kind="on_demand", bid_per_gpu=None, created=env.emu.now)
    env.store.set_pod_state(own.id, desired_status="RUNNING", last_seen=env.emu.now)
    stranger = env.client.deploy_on_demand(spec)  # the other database's pod of the same (old) name
    env.emu.advance(300)
    report = env.tick(config)
    assert report.jobs[0].state == "running" and report.jobs[0].pod_id == own.id
    assert [e["pod_id"] for e in foreign(report)] == [stranger.id]
    assert env.store.pod(stranger.id) is None and stopped_by_bidder(env) == []
    assert sorted(p.id for p in env.running()) == sorted([own.id, stranger.id])


def test_an_old_ledgers_given_up_create_is_still_its_own_when_it_lands(two):
    # A create of bidder-train-1 (no id: an older bidder) whose answer was lost and whose grace ended
    # before ledgers kept their lost names: its closing error names it. When it lands it is its own.
    env, _other = two
    config = env.config(ON_DEMAND_SERVICE.replace("keep_running = true", "hours = 10"))
    start = env.emu.now
    action = env.store.begin_action(start, job="train", kind="deploy_on_demand", gpu_type_id=A6000,
                                    cloud="COMMUNITY", gpu_count=1, expected_cost_per_hour=0.33)
    env.store.finish_action(action, outcome="error", ts=start + CREATE_GRACE,
                            error="no pod named bidder-train-1 appeared within 15 min")
    env.store.save_job_state("train", attempts=1, reuse_name="bidder-train-1", state="held", note="held by the user")
    late = env.client.deploy_on_demand(PodSpec(name="bidder-train-1", image_name="runpod/pytorch:latest",
                                               gpu_type_id=A6000, cloud_type="COMMUNITY"))
    env.emu.advance(CREATE_GRACE.total_seconds() + 300)
    report = env.tick(config)  # the job is held: its own late create is retired, not run
    assert report.jobs[0].state == "held" and foreign(report) == []
    assert env.store.pod(late.id)["state"] == "retired"
    assert env.emu.world.pods[late.id].desired_status != "RUNNING" and len(env.running()) == 0


def test_two_ledgers_on_one_vast_account_leave_each_others_instances_alone(both, tmp_path):
    env, api = both
    other = copy_db(env.store, tmp_path / "other.db")
    try:
        config = env.config("""
[jobs.v]
gpu = ["RTX 4090"]
market = "vast"
hours = 30
tolerance = "none"
max_price = 0.6
image = "pytorch/pytorch"
disk = 20
on_finish = "terminate"
""")

        def tick(store: Store) -> TickReport:
            return run_tick(None, store, config, env.emu.now, vast=api)

        assert tick(env.store).jobs[0].state == "running"
        [mine] = vast_live(env.emu)
        env.emu.advance(600)
        second = tick(other)
        assert second.jobs[0].state == "running", second.jobs[0].message
        theirs = next(i for i in vast_live(env.emu) if i.id != mine.id)
        assert mine.label == named(env.store, "bidder-v", 1) and theirs.label == named(other, "bidder-v", 1)
        assert [e["pod_id"] for e in foreign(second)] == [str(mine.id)]
        for _ in range(2):
            env.emu.advance(300)
            mine_tick, theirs_tick = tick(env.store), tick(other)
            assert [e["pod_id"] for e in foreign(mine_tick)] == [str(theirs.id)]
            assert [e["pod_id"] for e in foreign(theirs_tick)] == [str(mine.id)]
        assert sorted(i.id for i in vast_live(env.emu)) == sorted([mine.id, theirs.id])
        assert [r["pod_id"] for r in env.store.managed_pods()] == [str(mine.id)]
        assert [r["pod_id"] for r in other.managed_pods()] == [str(theirs.id)]
    finally:
        other.close()
