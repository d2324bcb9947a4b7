"""bidder.report.data against a real SQLite store filled through its public API, with numbers that can
be checked by hand (a spot pod at 0.30 for 10 hours when on-demand was 0.79: spend 3.00, saving 62%)."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

import pytest

from bidder.models import PriceQuote
from bidder.report.data import market_summary, observation_coverage, pod_track, price_chart_data, spend_report
from bidder.store import Store, estimate_spend
from bidder.units import to_iso

T0 = datetime(2026, 1, 1, tzinfo=UTC)
A6000 = "NVIDIA RTX A6000"
RTX4090 = "NVIDIA GeForce RTX 4090"


def h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "bidder.db") as s:
        yield s


def prices(store: Store, hours, gpu=A6000, cloud="COMMUNITY", floor=0.25, on_demand=0.79, gpu_count=1) -> None:
    """One snapshot per hour in `hours`; floor/on_demand may be callables of the hour."""
    for hour in hours:
        f = floor(hour) if callable(floor) else floor
        o = on_demand(hour) if callable(on_demand) else on_demand
        store.record_collection(h(hour), [PriceQuote(h(hour), gpu, cloud, gpu_count, f, o)], duration_s=0.1)


def running_pod(store: Store, pod_id="p1", *, job="train", start=0.0, hours=10, bid=0.30, gpu=A6000,
                cloud="COMMUNITY", gpu_count=1, kind="spot") -> None:
    """A pod polled every hour from `start`, RUNNING throughout, at bid x gpu_count per hour."""
    store.add_pod(pod_id, job=job, name=f"{job}-1", gpu_type_id=gpu, cloud=cloud, gpu_count=gpu_count, kind=kind,
                  bid_per_gpu=bid if kind == "spot" else None, created=h(start))
    action = store.begin_action(h(start), job=job, kind="rent_spot" if kind == "spot" else "deploy_on_demand",
                                gpu_type_id=gpu, cloud=cloud, gpu_count=gpu_count,
                                bid_per_gpu=bid if kind == "spot" else None)
    store.finish_action(action, outcome="ok", pod_id=pod_id)
    for k in range(hours + 1):
        store.record_observation(h(start + k), pod_id, desired_status="RUNNING", cost_per_hr=bid * gpu_count,
                                 uptime_seconds=k * 3600.0)


def vast_on_demand_pod(store: Store, pod_id: str, gpu: str, *, hours: int, rate: float, storage: float,
                       on_demand, snapshots: int) -> None:
    """Hourly Vast snapshots of a 2-GPU VERIFIED market (`on_demand(hour)` per GPU), and an on-demand
    instance of job `lv` polled RUNNING at hours 0..hours-1, at `rate` per hour plus `storage`."""
    for hour in range(snapshots):
        store.record_collection(h(hour), [PriceQuote(h(hour), gpu, "VERIFIED", 2, 0.15, on_demand(hour), market="vast")],
                                duration_s=0.1)
    store.add_pod(pod_id, job="lv", name="lv-1", gpu_type_id=gpu, cloud="VERIFIED", gpu_count=2,
                  kind="on_demand", bid_per_gpu=None, created=h(0), market="vast")
    store.finish_action(store.begin_action(h(0), job="lv", kind="deploy_on_demand"), outcome="ok", pod_id=pod_id)
    for k in range(hours):
        store.record_observation(h(k), pod_id, desired_status="RUNNING", cost_per_hr=rate, uptime_seconds=k * 3600.0,
                                 storage_per_hr=storage)


def test_spot_pod_at_0_30_for_10_hours_against_0_79_on_demand(store):
    prices(store, range(13))
    running_pod(store)
    report = spend_report(store)
    [pod] = report.pods
    assert (pod.pod_id, pod.job, pod.gpu_type_id, pod.cloud, pod.kind, pod.gpu_count) == (
        "p1", "train", A6000, "COMMUNITY", "spot", 1)
    assert pod.hours == pytest.approx(10.0)
    assert pod.spend == pytest.approx(3.00)
    assert pod.avg_per_gpu_hour == pytest.approx(0.30)
    assert pod.on_demand_cost == pytest.approx(7.90)
    assert pod.saving == pytest.approx(4.90)
    assert round(pod.saving_pct) == 62
    assert pod.interruptions == 0 and pod.last_poll == h(10)
    [job] = report.jobs
    assert (job.job, job.pods, job.spend, job.saving) == ("train", ("p1",), pod.spend, pod.saving)
    assert report.totals.spend == pytest.approx(3.00) and report.totals.on_demand_cost == pytest.approx(7.90)
    assert report.managed_pods == 1 and not report.is_empty and report.notes == ()
    # The cumulative curve ends at the totals.
    assert job.curve[0][1:] == (0.0, 0.0)
    assert job.curve[-1] == pytest.approx((h(10).timestamp(), 3.0, 7.9))


def test_the_report_agrees_with_the_stores_spend_estimate(store):
    prices(store, range(13))
    running_pod(store)
    assert spend_report(store).pods[0].spend == pytest.approx(store.spend_by_pod()["p1"], abs=1e-12)


def test_a_period_takes_the_share_of_each_stretch_inside_it(store):
    prices(store, range(13))
    running_pod(store)
    report = spend_report(store, since=h(3), until=h(5.5))
    assert report.totals.hours == pytest.approx(2.5)
    assert report.totals.spend == pytest.approx(0.75)
    assert report.totals.on_demand_cost == pytest.approx(2.5 * 0.79)
    assert report.since == h(3) and report.until == h(5.5)
    # Adjacent periods add up to the whole.
    parts = [spend_report(store, since=a, until=b).totals.spend
             for a, b in [(None, h(2.2)), (h(2.2), h(7.9)), (h(7.9), None)]]
    assert sum(parts) == pytest.approx(3.0)


def test_pods_outside_the_period_are_left_out(store):
    prices(store, range(13))
    running_pod(store, "early", start=0, hours=2)
    running_pod(store, "late", job="other", start=6, hours=4)
    # Both ended at their last poll: a pod still active is in every period after its launch (see
    # test_the_silence_after_a_still_active_pods_last_poll_is_said_and_is_a_coverage_gap).
    store.set_pod_state("early", state="terminated", ended=h(2))
    store.set_pod_state("late", state="terminated", ended=h(10))
    report = spend_report(store, since=h(4), until=h(12))
    assert [p.pod_id for p in report.pods] == ["late"] and report.managed_pods == 2
    assert spend_report(store, since=h(20)).is_empty
    assert spend_report(store, until=h(-1)).is_empty


def test_uneven_polls_stops_and_restarts_add_up_to_estimate_spend(store):
    """Whatever the polls look like, the whole report equals estimate_spend and periods add up."""
    rng = random.Random(7)
    prices(store, range(0, 60))
    for n in range(8):
        pod_id = f"pod{n}"
        store.add_pod(pod_id, job="j", name=pod_id, gpu_type_id=A6000, cloud="COMMUNITY", gpu_count=1, kind="spot",
                      bid_per_gpu=0.3, created=h(0))
        t, uptime, running = 0.0, rng.uniform(0, 3600), True
        for _ in range(40):
            step = rng.uniform(120, 4000)
            t += step / 3600
            if running and rng.random() < 0.2:
                running = False
            elif not running and rng.random() < 0.5:
                running, uptime = True, rng.uniform(0, step)
            elif running:
                uptime += step - (rng.uniform(0, step) if rng.random() < 0.1 else 0)  # a stop+resume unseen
            store.record_observation(h(t), pod_id, desired_status="RUNNING" if running else "EXITED",
                                     cost_per_hr=rng.choice([0.3, 0.35, None]) if running else 0.3,
                                     uptime_seconds=uptime if running else None)
    whole = spend_report(store)
    for pod in whole.pods:
        assert pod.spend == pytest.approx(estimate_spend(store.observations(pod.pod_id)), abs=1e-9)
        assert pod.spend > 0
    cuts = [None, h(5), h(11.3), h(17), h(30), None]
    parts = [spend_report(store, since=a, until=b).totals for a, b in itertools.pairwise(cuts)]
    assert sum(p.spend for p in parts) == pytest.approx(whole.totals.spend)
    assert sum(p.hours for p in parts) == pytest.approx(whole.totals.hours)
    assert sum(p.on_demand_cost or 0 for p in parts) == pytest.approx(whole.totals.on_demand_cost)


def test_on_demand_price_is_the_nearest_earlier_snapshot(store):
    # 0.80 until hour 5, then 1.00; a snapshot without on-demand capacity at hour 7 keeps 1.00.
    store.record_collection(h(0), [PriceQuote(h(0), A6000, "COMMUNITY", 1, 0.3, 0.80)], duration_s=0)
    store.record_collection(h(5), [PriceQuote(h(5), A6000, "COMMUNITY", 1, 0.3, 1.00)], duration_s=0)
    store.record_collection(h(7), [PriceQuote(h(7), A6000, "COMMUNITY", 1, 0.3, None)], duration_s=0)
    running_pod(store, hours=10)
    [pod] = spend_report(store).pods
    assert pod.on_demand_cost == pytest.approx(5 * 0.80 + 5 * 1.00)
    # Before the first snapshot, the first one stands in.
    running_pod(store, "before", start=-2, hours=2)
    before = next(p for p in spend_report(store).pods if p.pod_id == "before")
    assert before.on_demand_cost == pytest.approx(2 * 0.80)


def test_multi_gpu_pod_pays_per_gpu_and_falls_back_to_one_gpu_quotes(store):
    prices(store, range(12))  # 1-GPU quotes only
    running_pod(store, gpu_count=2, bid=0.30)  # costPerHr 0.60 per pod
    [pod] = spend_report(store).pods
    assert (pod.spend, pod.gpu_hours) == (pytest.approx(6.0), pytest.approx(20.0))
    assert pod.avg_per_gpu_hour == pytest.approx(0.30)
    assert pod.on_demand_cost == pytest.approx(2 * 10 * 0.79)
    prices(store, range(12), on_demand=0.70, gpu_count=2)  # with quotes for 2-GPU pods, those count
    assert spend_report(store).pods[0].on_demand_cost == pytest.approx(2 * 10 * 0.70)


def test_interruption_resume_and_bidder_stop(store):
    """Runs 0-3.5 h at 0.30 (interrupted: exit observation at 3.5 h), resumes at 5 h with a 0.35 bid,
    bidder stops it at 8 h. Spend 3.5x0.30 + 3x0.35 = 2.10 over 6.5 h; one interruption."""
    prices(store, range(10))
    store.add_pod("p", job="train", name="train-1", gpu_type_id=A6000, cloud="COMMUNITY", gpu_count=1, kind="spot",
                  bid_per_gpu=0.30, created=h(0))
    store.finish_action(store.begin_action(h(0), job="train", kind="rent_spot", bid_per_gpu=0.30), outcome="ok",
                        pod_id="p")
    obs = store.record_observation
    for k in range(4):
        obs(h(k), "p", desired_status="RUNNING", cost_per_hr=0.30, uptime_seconds=k * 3600.0)
    obs(h(3.5), "p", desired_status="EXITED", cost_per_hr=0.30, uptime_seconds=3.5 * 3600)  # exit observation
    obs(h(4), "p", desired_status="EXITED", cost_per_hr=0.30, uptime_seconds=None)
    store.finish_action(store.begin_action(h(5), job="train", kind="bid_resume", pod_id="p", bid_per_gpu=0.35),
                        outcome="ok")
    store.set_pod_state("p", bid_per_gpu=0.35, interruptions=1)
    for k in range(3):
        obs(h(5 + k), "p", desired_status="RUNNING", cost_per_hr=0.35, uptime_seconds=k * 3600.0)
    store.finish_action(store.begin_action(h(8), job="train", kind="stop", pod_id="p"), outcome="ok")
    obs(h(8), "p", desired_status="EXITED", cost_per_hr=0.35, uptime_seconds=3 * 3600.0)
    obs(h(9), "p", desired_status="EXITED", cost_per_hr=0.35, uptime_seconds=None)

    [pod] = spend_report(store).pods
    assert pod.hours == pytest.approx(6.5)
    assert pod.spend == pytest.approx(3.5 * 0.30 + 3 * 0.35)
    assert pod.interruptions == 1 and pod.interruption_times == (h(3.5),)
    assert pod.on_demand_cost == pytest.approx(6.5 * 0.79)
    assert pod.saving_pct == pytest.approx(100 * (1 - 2.10 / (6.5 * 0.79)))
    assert spend_report(store, since=h(4)).pods[0].interruptions == 0
    track = pod_track(store, "p")
    assert track.bids == (0.30, 0.35) and track.bid_ts == (h(0).timestamp(), h(5).timestamp())
    assert track.interruptions == (h(3.5).timestamp(),) and track.end == h(9).timestamp()
    # A period's chart holds the period alone, as its tables count it: the bid in force at its start,
    # no interruption from before it (a chart of 4-9 h drew the one at 3.5 h and counted it).
    later = pod_track(store, "p", h(9), h(4))  # (exited at 3.5 h: no bid runs at 4 h; the resume's from 5 h)
    assert later.interruptions == () and later.bids == (0.35,) and later.bid_ts == (h(5).timestamp(),)
    assert pod_track(store, "p", h(3), h(0)).interruptions == () and pod_track(store, "p", h(3), h(0)).bids == (0.30,)
    running = pod_track(store, "p", h(8), h(6))  # running at 6 h: the bid in force is drawn from there
    assert running.bids == (0.35,) and running.bid_ts == (h(6).timestamp(),)
    assert pod_track(store, "p", h(3.5), h(0), ends_now=True).interruptions == (h(3.5).timestamp(),)
    assert pod_track(store, "nope") is None


def test_jobs_totals_and_job_filter(store):
    prices(store, range(12))
    prices(store, range(12), gpu=RTX4090, floor=0.20, on_demand=0.69)
    running_pod(store, "a", job="train", hours=10, bid=0.30)
    running_pod(store, "b", job="serve", hours=4, bid=0.25, gpu=RTX4090)
    running_pod(store, "c", job="serve", start=5, hours=2, gpu=RTX4090, kind="on_demand", bid=0.69)
    report = spend_report(store)
    assert [j.job for j in report.jobs] == ["serve", "train"]
    serve = report.jobs[0]
    assert serve.pods == ("b", "c") and serve.kinds == ("spot", "on_demand") and serve.gpu_types == (RTX4090,)
    assert serve.spend == pytest.approx(4 * 0.25 + 2 * 0.69)
    assert serve.on_demand_cost == pytest.approx(6 * 0.69)
    assert serve.saving == pytest.approx(4 * (0.69 - 0.25))
    assert report.totals.spend == pytest.approx(3.0 + 1.0 + 1.38)
    assert report.totals.gpu_types == (A6000, RTX4090)
    assert report.totals.on_demand_cost == pytest.approx(7.9 + 6 * 0.69)
    only = spend_report(store, job="train")
    assert [p.pod_id for p in only.pods] == ["a"] and only.managed_pods == 1 and only.job == "train"
    assert {(m.gpu_type_id, m.cloud) for m in report.markets} == {(A6000, "COMMUNITY"), (RTX4090, "COMMUNITY")}


def test_unknown_on_demand_price_and_pending_actions_are_noted(store):
    running_pod(store, gpu="NVIDIA H100 80GB HBM3")  # no price ever recorded for it
    store.begin_action(h(3), job="train", kind="bid_resume", pod_id="p1", bid_per_gpu=0.3)  # never finished
    report = spend_report(store)
    assert report.pods[0].on_demand_cost is None and report.pods[0].saving is None
    assert report.totals.on_demand_cost is None and report.totals.spend == pytest.approx(3.0)
    assert report.notes[0].startswith("no on-demand price recorded for NVIDIA H100 80GB HBM3 (COMMUNITY)")
    assert "1 action(s) still pending" in report.notes[1]


def test_cloud_all_compares_with_the_cheaper_cloud(store):
    prices(store, range(12), cloud="SECURE", on_demand=0.99)
    prices(store, range(12), cloud="COMMUNITY", on_demand=0.79)
    running_pod(store, cloud="ALL")
    report = spend_report(store)
    assert report.pods[0].on_demand_cost == pytest.approx(7.9)
    assert {m.cloud for m in report.markets} == {"SECURE", "COMMUNITY"}


def test_market_summary_weights_time(store):
    # Hourly snapshots, spot at 0.20/0.30/0.40 then none for one hour; one 10-hour gap is capped at 2 hours.
    floors = {0: 0.20, 1: 0.30, 2: 0.40, 3: None}
    prices(store, range(4), floor=lambda k: floors[k], on_demand=0.79)
    [m] = market_summary(store)
    assert (m.samples, m.median_floor, m.min_floor, m.max_floor, m.median_on_demand) == (4, 0.30, 0.20, 0.40, 0.79)
    assert m.spot_share == pytest.approx(3 / 4)
    assert (m.first, m.last) == (h(0), h(3))
    prices(store, [13], floor=0.5)  # after a 10 h gap: hour 3 counts 2 h without spot, hour 13 one with
    [m] = market_summary(store)
    assert m.spot_share == pytest.approx(4 / 6)  # (1 + 1 + 1 + 1) of (1 + 1 + 1 + 2 + 1) hours
    assert market_summary(store, since=h(20)) == []
    assert market_summary(store, markets=[(A6000, "COMMUNITY", 1)], until=h(2))[0].samples == 2


def test_price_chart_data_reads_the_chosen_markets(store):
    prices(store, range(5))
    prices(store, range(5), cloud="SECURE", floor=0.4, on_demand=0.99)
    both = price_chart_data(store, [A6000])
    assert [(s.gpu_type_id, s.cloud, len(s)) for s in both] == [(A6000, "SECURE", 5), (A6000, "COMMUNITY", 5)]
    assert [s.cloud for s in price_chart_data(store, [A6000], ["COMMUNITY"], since=h(2))] == ["COMMUNITY"]
    assert price_chart_data(store, [RTX4090]) == [] and price_chart_data(store, [A6000], gpu_count=2) == []


def test_report_to_dict_is_json_ready(store):
    import json

    prices(store, range(13))
    running_pod(store)
    data = json.loads(json.dumps(spend_report(store, since=h(0), until=h(12)).to_dict()))
    assert set(data) == {"since", "until", "job", "jobs", "pods", "totals", "markets", "managed_pods", "notes"}
    assert data["since"] == "2026-01-01T00:00:00Z" and data["until"] == "2026-01-01T12:00:00Z"
    assert data["pods"][0]["created"] == "2026-01-01T00:00:00Z" and "curve" not in data["pods"][0]
    assert data["markets"][0]["spot_share"] == 1.0


def test_a_pod_resumed_and_outbid_before_the_next_poll_was_interrupted(store):
    """Polls see EXITED at 2 h, bidder resumes at 2 h, the next poll (2.5 h) sees EXITED again: two
    interruptions, as the executor counts them, though no poll ever saw the second run."""
    prices(store, range(4))
    running_pod(store, hours=1)
    store.record_observation(h(2), "p1", desired_status="EXITED", cost_per_hr=0.3, uptime_seconds=None)
    store.finish_action(store.begin_action(h(2), job="train", kind="bid_resume", pod_id="p1", bid_per_gpu=0.4),
                        outcome="ok")
    store.record_observation(h(2.5), "p1", desired_status="EXITED", cost_per_hr=0.4, uptime_seconds=None)
    # A failed resume is no start: the next EXITED poll is not another interruption.
    store.finish_action(store.begin_action(h(2.5), job="train", kind="bid_resume", pod_id="p1", bid_per_gpu=0.5),
                        outcome="error", error="NoCapacity")
    store.record_observation(h(3), "p1", desired_status="EXITED", cost_per_hr=0.4, uptime_seconds=None)
    [pod] = spend_report(store).pods
    assert pod.interruption_times == (h(2), h(2.5))
    assert pod_track(store, "p1").bids == (0.30, 0.4)


def test_a_vast_pod_seen_outbid_then_ended_in_the_same_tick_was_interrupted(store):
    """The ledger of `bidder demo --days 2 --seed 7`: a Vast instance's poll sees it EXITED (outbid) at
    3 h and the same tick terminates it to move the job. The poll came first (the one before the stop did
    not see it running): one interruption, as the tick counted it in the pod's record and `bidder pods`
    shows it. (An EXITED at a stop's own time after a poll that saw the pod running is that stop's: see
    test_interruption_resume_and_bidder_stop and the next test.)"""
    prices(store, range(4), gpu="RTX 4090", cloud="VERIFIED")
    store.add_pod("v1", job="train", name="train-1", gpu_type_id="RTX 4090", cloud="VERIFIED", gpu_count=1,
                  kind="spot", bid_per_gpu=0.13, created=h(0), market="vast")
    store.finish_action(store.begin_action(h(0), job="train", kind="rent_spot", bid_per_gpu=0.13), outcome="ok",
                        pod_id="v1")
    for k in range(4):
        store.record_observation(h(k), "v1", desired_status="RUNNING", cost_per_hr=0.13, uptime_seconds=k * 3600.0,
                                 storage_per_hr=0.014)
    store.record_observation(h(3.5), "v1", desired_status="EXITED", cost_per_hr=0.13, uptime_seconds=3 * 3600.0,
                             storage_per_hr=0.014)
    store.set_pod_state("v1", desired_status="EXITED", interruptions=1)  # (the tick's poll counted it)
    store.finish_action(store.begin_action(h(3.5), job="train", kind="terminate", pod_id="v1"), outcome="ok")
    [pod] = spend_report(store).pods
    assert pod.interruption_times == (h(3.5),)
    assert pod_track(store, "v1").interruptions == (h(3.5).timestamp(),)


def test_a_vast_instance_stopped_by_bidder_then_polled_on_the_same_second_was_not_interrupted(store):
    """`bidder stop --job train` polls the instance RUNNING at 3 h and stops it; the tick cron runs on that
    same second polls it EXITED (on Vast a stop writes no exit of its own). That poll came after the stop
    it shares its second with, which caused the exit: no interruption, as the pod's record (0) and
    `bidder pods` say. The report counted one: on Vast it took every EXITED on a stop's second for a poll
    made before the stop."""
    prices(store, range(5), gpu="RTX 4090", cloud="VERIFIED")
    store.add_pod("v1", job="train", name="train-1", gpu_type_id="RTX 4090", cloud="VERIFIED", gpu_count=1,
                  kind="on_demand", bid_per_gpu=None, created=h(0), market="vast")
    store.finish_action(store.begin_action(h(0), job="train", kind="deploy_on_demand"), outcome="ok", pod_id="v1")
    for k in range(4):
        store.record_observation(h(k), "v1", desired_status="RUNNING", cost_per_hr=0.4, uptime_seconds=k * 3600.0,
                                 storage_per_hr=0.014)
    store.finish_action(store.begin_action(h(3), job="train", kind="stop", pod_id="v1"), outcome="ok")
    store.record_observation(h(3), "v1", desired_status="EXITED", cost_per_hr=0.4, uptime_seconds=3 * 3600.0,
                             storage_per_hr=0.014)
    store.record_observation(h(3.25), "v1", desired_status="EXITED", cost_per_hr=0.4, uptime_seconds=3 * 3600.0,
                             storage_per_hr=0.014)
    store.finish_action(store.begin_action(h(3.25), job="train", kind="resume", pod_id="v1"), outcome="ok")
    for t in (3.25, 4):
        store.record_observation(h(t), "v1", desired_status="RUNNING", cost_per_hr=0.4,
                                 uptime_seconds=(3 + t - 3.25) * 3600.0, storage_per_hr=0.014)
    [pod] = spend_report(store).pods
    assert store.pod("v1")["interruptions"] == 0
    assert (pod.interruptions, pod.interruption_times) == (0, ())
    assert pod_track(store, "v1").interruptions == ()


def test_a_vast_instances_storage_is_in_its_on_demand_baseline_too(store):
    """A Vast instance bills its disk whether it runs or not, on-demand or interruptible: the baseline
    (what its hours would have cost on-demand) pays that storage too. Left out, an on-demand instance
    with a 200 GB disk read -7% saved after its 2-hour run and -167% after a day kept stopped."""
    vast_on_demand_pod(store, "v1", "RTX 3090", hours=3, rate=0.4752, storage=0.0683,
                       on_demand=lambda hour: 0.2376, snapshots=30)
    store.finish_action(store.begin_action(h(2), job="lv", kind="stop", pod_id="v1"), outcome="ok")
    store.record_observation(h(26), "v1", desired_status="EXITED", cost_per_hr=0.4752, uptime_seconds=7200.0,
                             storage_per_hr=0.0683)
    [pod] = spend_report(store, since=h(0), until=h(26)).pods
    assert pod.spend == pytest.approx(2 * 0.4752 + 26 * 0.0683)
    assert pod.on_demand_cost == pytest.approx(pod.spend)
    assert pod.saving == pytest.approx(0.0, abs=1e-9)
    # A day of storage alone (the instance kept stopped): paid either way, nothing saved or lost.
    [later] = spend_report(store, since=h(3), until=h(26)).pods
    assert (later.hours, later.spend) == (0.0, pytest.approx(23 * 0.0683))
    assert later.on_demand_cost == pytest.approx(later.spend)


def test_an_on_demand_pod_saves_nothing_whatever_the_price_recorded_while_it_ran(store):
    # On Vast, renting the cheapest offer takes it off the listing: while it ran, the on-demand price
    # recorded was the next offer's (0.42 -> 0.50 here), and the report said it saved 14%.
    vast_on_demand_pod(store, "v2", "RTX A6000", hours=11, rate=0.84, storage=0.006,
                       on_demand=lambda hour: 0.50 if 1 <= hour <= 10 else 0.42, snapshots=12)
    [pod] = spend_report(store, since=h(0), until=h(10)).pods
    assert pod.spend == pytest.approx(10 * (0.84 + 0.006))
    assert pod.on_demand_cost == pytest.approx(pod.spend) and pod.saving == pytest.approx(0.0, abs=1e-9)
    assert pod.curve[-1][1] == pytest.approx(pod.curve[-1][2])  # the spend chart's two lines meet


def test_a_bid_raised_on_a_paused_vast_instance_is_no_restart(store):
    """Outbid at 1 h, the tick raises the paused instance's bid (a bid_resume on Vast: no start, it
    runs only once its bid is the highest) and it stays paused: one interruption, as `bidder pods`
    counts it (the report counted the raise as running again, then a second interruption)."""
    prices(store, range(4), gpu="RTX 4090", cloud="VERIFIED")
    store.add_pod("v1", job="svc", name="svc-1", gpu_type_id="RTX 4090", cloud="VERIFIED", gpu_count=1,
                  kind="spot", bid_per_gpu=0.149, created=h(0), market="vast")
    store.finish_action(store.begin_action(h(0), job="svc", kind="rent_spot", bid_per_gpu=0.149), outcome="ok",
                        pod_id="v1")
    store.record_observation(h(0), "v1", desired_status="RUNNING", cost_per_hr=0.149, uptime_seconds=0.0,
                             storage_per_hr=0.01)
    for k in (1, 2, 3):
        store.record_observation(h(k), "v1", desired_status="EXITED", cost_per_hr=0.149, uptime_seconds=3600.0,
                                 storage_per_hr=0.01)
        store.finish_action(store.begin_action(h(k), job="svc", kind="bid_resume", pod_id="v1",
                                               bid_per_gpu=0.15 + k / 1000), outcome="ok")
    [pod] = spend_report(store).pods
    assert pod.interruption_times == (h(1),)
    assert pod_track(store, "v1").interruptions == (h(1).timestamp(),)

def test_the_silence_after_a_still_active_pods_last_poll_is_said_and_is_a_coverage_gap(store):
    """Polled hourly to 2 h, then nothing while the ledger still has it active: no spend is invented
    for 2-5 h, the report says it, and the poll coverage counts those 3 hours as a gap."""
    prices(store, range(6))
    running_pod(store, hours=2)
    report = spend_report(store, since=h(0), until=h(5))
    [pod] = report.pods
    assert (pod.spend, pod.unpolled_since) == (pytest.approx(0.6), h(2))
    assert report.notes == ("1 pod(s) still active were last polled at 2026-01-01T02:00:00Z (3.0 h before the "
                            "period's end: pod p1): their spend since is not counted (the ledger books only what "
                            "polls saw; `bidder tick` or `bidder pods --refresh` polls them)",)
    coverage = observation_coverage(store, ["p1"], h(0), h(5), max_gap_hours=1.5)  # hourly polls: no gap
    assert (coverage.span_hours, coverage.observed_hours, coverage.unpolled) == (5.0, 2.0, ("p1",))
    assert coverage.gaps == (("p1", h(2), h(5)),)
    # A period after its last poll: the pod was still active in it, not "outside" it.
    assert [p.pod_id for p in spend_report(store, since=h(3), until=h(5)).pods] == ["p1"]
    # An `until` later than the command's time: the silence runs to now, not to the period's end.
    assert "(1.0 h before now: pod p1)" in spend_report(store, since=h(0), until=h(9), now=h(3)).notes[0]
    assert observation_coverage(store, ["p1"], h(0), h(9), now=h(3)).span_hours == 3.0
    # Within 30 minutes of the end, or once the pod ended, nothing is missing.
    assert spend_report(store, since=h(0), until=h(2.4)).notes == ()
    store.set_pod_state("p1", state="terminated", ended=h(2))
    assert spend_report(store, since=h(0), until=h(5)).notes == ()
    assert observation_coverage(store, ["p1"], h(0), h(5), max_gap_hours=1.5).gaps == ()


def test_a_runpod_pod_stopped_between_two_polls_is_no_gap_in_the_coverage(store):
    # Stopped at its budget at 2 h, resumed at 20 h: the HTML report called the 18 stopped hours a gap
    # in the polls ("bidder tick did not run") and counted them in the pod-hours covered.
    prices(store, range(24))
    running_pod(store, hours=2)
    store.record_observation(h(2.1), "p1", desired_status="EXITED", cost_per_hr=None, uptime_seconds=None)
    for k, at in enumerate((20, 21, 22)):
        store.record_observation(h(at), "p1", desired_status="RUNNING", cost_per_hr=0.3, uptime_seconds=k * 3600.0)
    coverage = observation_coverage(store, ["p1"], h(0), h(22), max_gap_hours=1.5)
    assert coverage.gaps == () and coverage.span_hours == pytest.approx(2.1 + 2.0)
    assert coverage.observed_hours == pytest.approx(coverage.span_hours)
    # A silence while it ran is still one.
    store.record_observation(h(23.9), "p1", desired_status="RUNNING", cost_per_hr=0.3, uptime_seconds=3.9 * 3600.0)
    assert observation_coverage(store, ["p1"], h(0), h(24), max_gap_hours=1.5).gaps == (("p1", h(22), h(23.9)),)


def test_jobs_whose_names_differ_in_case_keep_their_own_files_in_the_html_report(store, tmp_path):
    # They shared one pods CSV and one spend chart: one job's rows were lost.
    from bidder.report.page import write_html_report

    prices(store, range(6))
    running_pod(store, "p1", job="exp", hours=4)
    running_pod(store, "p2", job="EXP", hours=4)
    write_html_report(store, tmp_path / "r", since=h(0), until=h(5), now=h(5))
    tables = sorted((tmp_path / "r").glob("pods-*.csv"))
    assert len(tables) == 2 and sorted(t.read_text().count("\n") for t in tables) == [2, 2], tables
    assert len(list((tmp_path / "r").glob("spend-*.png"))) == 2


def test_the_current_market_gives_each_markets_own_snapshot_time(store, tmp_path):
    # One stamp, the cheapest row's, passed off a market's older prices as current.
    from bidder.report.page import write_html_report

    store.record_collection(h(1), [PriceQuote(h(1), "RTX 4090", "VERIFIED", 1, 0.12, 0.40, market="vast")],
                            duration_s=0.1, market="vast")
    prices(store, [0], floor=0.25)
    write_html_report(store, tmp_path / "r", since=h(0), until=h(2), now=h(2))
    page = (tmp_path / "r" / "report.html").read_text()
    assert f"(RunPod {to_iso(h(0))}; Vast {to_iso(h(1))})" in page
    rows = (tmp_path / "r" / "current-market.csv").read_text().splitlines()
    assert rows[0].startswith("GPU type,market,cloud") and rows[0].endswith(",snapshot")


def test_a_kept_stopped_vast_instance_unpolled_in_the_period_is_said(store):
    # Its disk bills storage until it is destroyed: a report of hours with no poll left it out silently.
    prices(store, range(6), gpu="RTX 4090", cloud="VERIFIED")
    store.add_pod("v1", job="train", name="train-1", gpu_type_id="RTX 4090", cloud="VERIFIED", gpu_count=1,
                  kind="spot", bid_per_gpu=0.13, created=h(0), market="vast")
    for k in range(3):
        store.record_observation(h(k), "v1", desired_status="RUNNING", cost_per_hr=0.13, uptime_seconds=k * 3600.0,
                                 storage_per_hr=0.014)
    store.record_observation(h(2.5), "v1", desired_status="EXITED", cost_per_hr=0.13, uptime_seconds=2 * 3600.0,
                             storage_per_hr=0.014)
    store.set_pod_state("v1", state="stopped", ended=h(2.5), desired_status="EXITED")
    report = spend_report(store, since=h(4), until=h(6))
    assert [p.pod_id for p in report.pods] == ["v1"] and report.pods[0].unpolled_since == h(2.5)
    assert report.notes[0].startswith("1 pod(s) still active (or kept stopped on Vast, billing storage) were last "
                                      "polled at 2026-01-01T02:30:00Z"), report.notes


def test_a_report_of_a_past_period_shows_the_pod_as_it_stood_then(store):
    # It showed today's bid (raised since) and "stopped" for a pod that ran on for hours after.
    prices(store, range(10))
    running_pod(store, hours=8, bid=0.30)
    store.finish_action(store.begin_action(h(5), job="train", kind="bid_resume", pod_id="p1", bid_per_gpu=0.40),
                        outcome="ok")
    store.set_pod_state("p1", bid_per_gpu=0.40)
    store.finish_action(store.begin_action(h(8), job="train", kind="stop", pod_id="p1"), outcome="ok")
    store.record_observation(h(8), "p1", desired_status="EXITED", cost_per_hr=0.40, uptime_seconds=8 * 3600.0)
    store.set_pod_state("p1", state="stopped", ended=h(8), desired_status="EXITED")
    [then] = spend_report(store, since=h(0), until=h(3), now=h(10)).pods
    assert (then.bid_per_gpu, then.state, then.status, then.last_poll) == (0.30, "active", "RUNNING", h(3))
    [now] = spend_report(store, since=h(0), until=h(10), now=h(10)).pods
    assert (now.bid_per_gpu, now.state, now.status, now.last_poll) == (0.40, "stopped", "EXITED", h(8))
