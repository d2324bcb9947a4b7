"""The ledger half of the store: actions written before the call, pods, observations, jobs, settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bidder.errors import StoreError
from bidder.store import ACTION_KINDS, Store, estimate_spend, run_starts

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "bidder.db") as s:
        yield s


def test_an_action_is_pending_until_finished(store, tmp_path):
    action = store.begin_action(T0, job="train", kind="rent_spot", gpu_type_id="NVIDIA RTX A6000",
                                cloud="COMMUNITY", gpu_count=2, bid_per_gpu=0.31, expected_cost_per_hour=0.33,
                                reason="spot beats on-demand by 37%")
    # A crash here leaves the intent visible, from any other connection.
    with Store.open(tmp_path / "bidder.db") as other:
        [row] = other.actions("train")
        assert (row["outcome"], row["pod_id"], row["bid_per_gpu"], row["ts"]) == ("pending", None, 0.31, T0)
    store.finish_action(action, outcome="ok", pod_id="pod-1", ts=T0 + timedelta(seconds=2))
    [row] = store.actions("train")
    assert (row["outcome"], row["pod_id"], row["error"], row["finished_ts"]) == (
        "ok", "pod-1", None, T0 + timedelta(seconds=2))
    assert row["reason"] == "spot beats on-demand by 37%" and row["gpu_count"] == 2


def test_error_and_dry_run_outcomes(store):
    failed = store.begin_action(T0, job="a", kind="deploy_on_demand")
    store.finish_action(failed, outcome="error", error="NoCapacity: There are no longer any instances available")
    store.begin_action(T0, job="b", kind="rent_spot", bid_per_gpu=0.2, dry_run=True)
    assert [r["outcome"] for r in store.actions()] == ["error", "dry_run"]
    assert store.actions(outcome="error")[0]["error"].startswith("NoCapacity")
    assert [r["job"] for r in store.actions(outcome="dry_run")] == ["b"]


def test_ledger_misuse_is_a_clear_store_error(store):
    with pytest.raises(StoreError, match="unknown action kind 'rent'; use one of rent_spot, bid_resume"):
        store.begin_action(T0, job="j", kind="rent")
    action = store.begin_action(T0, job="j", kind="stop", pod_id="p")
    with pytest.raises(StoreError, match="outcome must be 'ok' or 'error'"):
        store.finish_action(action, outcome="pending")
    store.finish_action(action, outcome="ok")
    with pytest.raises(StoreError, match="already complete"):
        store.finish_action(action, outcome="ok")
    with pytest.raises(StoreError, match="no action with id 999"):
        store.finish_action(999, outcome="ok")
    dry = store.begin_action(T0, job="j", kind="terminate", dry_run=True)
    with pytest.raises(StoreError, match="already complete \\(outcome 'dry_run'\\)"):
        store.finish_action(dry, outcome="ok")
    assert set(ACTION_KINDS) == {"rent_spot", "bid_resume", "deploy_on_demand", "resume", "stop", "terminate"}


def test_pods_are_added_listed_and_updated(store):
    store.add_pod("p1", job="train", name="bidder-train-1", gpu_type_id="NVIDIA RTX A6000", cloud="COMMUNITY",
                  gpu_count=1, kind="spot", bid_per_gpu=0.3, created=T0)
    store.add_pod("p2", job="serve", name="bidder-serve-1", gpu_type_id="NVIDIA L4", cloud="SECURE",
                  gpu_count=1, kind="on_demand", bid_per_gpu=None, created=T0 + timedelta(minutes=1))
    assert [p["pod_id"] for p in store.managed_pods()] == ["p1", "p2"]
    assert [p["pod_id"] for p in store.managed_pods("serve")] == ["p2"]
    store.set_pod_state("p1", state="ended", ended=T0 + timedelta(hours=3), interruptions=2)
    p1 = store.pod("p1")
    assert p1 is not None and (p1["state"], p1["ended"], p1["interruptions"]) == ("ended", T0 + timedelta(hours=3), 2)
    assert [p["pod_id"] for p in store.managed_pods(states=["active"])] == ["p2"]
    store.add_pod("p1", job="train", name="bidder-train-1", gpu_type_id="NVIDIA RTX A6000", cloud="COMMUNITY",
                  gpu_count=1, kind="spot", bid_per_gpu=0.35, created=T0)  # re-adding updates, keeps state
    p1 = store.pod("p1")
    assert p1 is not None and (p1["bid_per_gpu"], p1["state"]) == (0.35, "ended")
    with pytest.raises(StoreError, match="pods has no column\\(s\\) colour"):
        store.set_pod_state("p1", colour="red")
    with pytest.raises(StoreError, match="pod 'nope' is not managed"):
        store.set_pod_state("nope", state="ended")
    with pytest.raises(StoreError, match="kind must be 'spot' or 'on_demand'"):
        store.add_pod("p3", job="j", name="n", gpu_type_id="g", cloud="SECURE", gpu_count=1, kind="reserved",
                      bid_per_gpu=None, created=T0)


def obs(minutes: float, status: str, cost: float | None, uptime: float | None) -> dict:
    return {"ts": T0 + timedelta(minutes=minutes), "desired_status": status, "cost_per_hr": cost,
            "uptime_seconds": uptime}


def test_observations_and_spend_estimate(store):
    store.add_pod("p1", job="j", name="n", gpu_type_id="g", cloud="COMMUNITY", gpu_count=2, kind="spot",
                  bid_per_gpu=0.3, created=T0)
    for o in [obs(5, "RUNNING", 0.6, 300), obs(10, "RUNNING", 0.6, 600), obs(15, "EXITED", 0.6, None),
              obs(20, "RUNNING", 0.8, 120)]:
        store.record_observation(o["ts"], "p1", desired_status=o["desired_status"], cost_per_hr=o["cost_per_hr"],
                                 uptime_seconds=o["uptime_seconds"])
    rows = store.observations("p1")
    assert [r["desired_status"] for r in rows] == ["RUNNING", "RUNNING", "EXITED", "RUNNING"]
    last = store.last_observation("p1")
    assert last is not None and (last["ts"], last["uptime_seconds"]) == (T0 + timedelta(minutes=20), 120)
    # 300 s before the first poll + 300 s between polls + half of the 300 s in which it stopped,
    # all at 0.6/h; then 120 s since the resume at 0.8/h.
    expected = 0.6 * (300 + 300 + 150) / 3600 + 0.8 * 120 / 3600
    assert store.spend_by_pod() == {"p1": pytest.approx(expected)}
    assert store.spend_by_pod("other-job") == {}


def test_spend_estimate_counts_a_restart_between_polls():
    # Running at both polls, but the uptime fell: stopped and resumed in between.
    got = estimate_spend([obs(0, "RUNNING", 1.0, 300), obs(10, "RUNNING", 2.0, 240)])
    assert got == pytest.approx(1.0 * 300 / 3600 + 2.0 * 240 / 3600 + 1.0 * (600 - 240) / 2 / 3600)
    # Uptime that grew less than the interval but did not fall: the same run, billed by its growth
    # (a clock jump between the polls books nothing beyond uptime x rate; issue 9).
    jumped = estimate_spend([obs(0, "RUNNING", 1.0, 60), obs(60 * 24 * 30, "RUNNING", 1.0, 240)])
    assert jumped == pytest.approx(1.0 * 240 / 3600)
    assert estimate_spend([]) == 0.0
    assert estimate_spend([obs(0, "EXITED", 1.0, None), obs(10, "EXITED", 1.0, None)]) == 0.0


def test_job_state_columns_and_extra_fields_merge(store):
    assert store.job_state("train") is None
    store.save_job_state("train", state="running", pod_id="p1", started=T0, last_decision="spot@0.31")
    store.save_job_state("train", spent=1.25, work_done_hours=3.5, checkpoint_at=T0 + timedelta(hours=1))
    state = store.job_state("train")
    assert state == {"name": "train", "state": "running", "pod_id": "p1", "work_done_hours": 3.5, "spent": 1.25,
                     "interruptions": None, "started": T0, "finished": None, "updated": None,
                     "last_decision": "spot@0.31", "checkpoint_at": "2026-01-01T01:00:00Z"}
    store.save_job_state("train", pod_id=None, last_decision=None)  # None clears
    state = store.job_state("train")
    assert state is not None and state["pod_id"] is None and "last_decision" not in state
    assert [j["name"] for j in store.jobs()] == ["train"]


def test_settings_round_trip(store):
    assert store.settings_get("spot_unsupported_since") is None
    assert store.settings_get("spot_unsupported_since", "never") == "never"
    store.settings_set("spot_unsupported_since", "2026-09-11T00:00:00Z", ts=T0)
    assert store.settings_get("spot_unsupported_since") == "2026-09-11T00:00:00Z"
    store.settings_set("spot_unsupported_since", None)
    assert store.settings_get("spot_unsupported_since") is None


def test_run_starts_are_where_the_polls_turn_running_or_the_uptime_falls(tmp_path):
    # Stored and read back, as the tick and the report read them: a first run, a restart between two
    # RUNNING polls (RunPod's uptime fell), an exit, and a resume.
    with Store.open(tmp_path / "b.db") as store:
        for minutes, status, uptime in [(0, "RUNNING", 60), (5, "RUNNING", 360), (10, "RUNNING", 30),
                                        (15, "EXITED", None), (20, "EXITED", None), (25, "RUNNING", 20)]:
            store.record_observation(T0 + timedelta(minutes=minutes), "p1", desired_status=status,
                                     cost_per_hr=0.3, uptime_seconds=uptime)
        polls = store.observations("p1")
    assert run_starts(polls) == [T0, T0 + timedelta(minutes=10), T0 + timedelta(minutes=25)]
    assert run_starts(polls[3:5]) == [] and run_starts([]) == []


def test_a_run_no_poll_saw_running_is_a_run_start(tmp_path):
    # A spot pod outbid before its first poll: its only trace is the exit observation (not RUNNING, the
    # run's uptime). It was no run before, so a job counted one restart too few and finished early.
    with Store.open(tmp_path / "b.db") as store:
        for minutes, status, uptime in [(12, "EXITED", 720), (15, "EXITED", None), (30, "RUNNING", 300),
                                        (40, "EXITED", 900), (50, "EXITED", 240)]:
            store.record_observation(T0 + timedelta(minutes=minutes), "p1", desired_status=status,
                                     cost_per_hr=0.3, uptime_seconds=uptime)
        # Vast: the running total grew between two polls that were not RUNNING (paused, ran, paused).
        for minutes, status, total in [(0, "EXITED", 600), (10, "EXITED", 600), (20, "EXITED", 900),
                                       (30, "RUNNING", 960), (40, "EXITED", 1200)]:
            store.record_observation(T0 + timedelta(minutes=minutes), "v1", desired_status=status, cost_per_hr=0.3,
                                     uptime_seconds=total, storage_per_hr=0.01)
        runpod, vast = store.observations("p1"), store.observations("v1")
    # The exit at 40 ends the run seen at 30; the one at 50 is a run of its own, begun and ended unseen.
    assert run_starts(runpod) == [T0 + timedelta(minutes=m) for m in (12, 30, 50)]
    assert run_starts(vast) == [T0 + timedelta(minutes=m) for m in (0, 20, 30)]


def test_vast_storage_is_booked_between_the_emulators_clock_and_a_now():
    # The emulator's clock and a --now share one time line (the README's flows mix them): a stopped
    # instance polled on the one, then with a --now 10 h later, billed those 10 h of storage.
    def vast(minutes: float, clock: str) -> dict:
        return {"ts": T0 + timedelta(minutes=minutes), "desired_status": "EXITED", "cost_per_hr": 0.5,
                "uptime_seconds": 600, "storage_per_hr": 0.07, "clock": clock}

    stored = 0.5 * 600 / 3600
    assert estimate_spend([vast(0, "virtual"), vast(600, "given")]) == pytest.approx(stored + 0.7)
    assert estimate_spend([vast(0, "wall"), vast(600, "given")]) == pytest.approx(stored)  # two time bases
