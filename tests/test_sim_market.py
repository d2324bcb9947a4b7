"""The emulator's market and world: determinism, chunk independence, interruptions, billing."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime

import httpx
import numpy as np
import pytest
from sim_helpers import A6000, AUTH, gql, rent

from bidder.errors import ConfigError, TraceFormatError
from bidder.models import PriceQuote
from bidder.sim import Emulator, World, generate_quotes, generate_trace
from bidder.sim.world import SPOT_NO_INSTANCES, BusinessError
from bidder.traces import write_trace

COMMUNITY = "COMMUNITY"


def spec(name: str = "job", count: int = 1, cloud: str = COMMUNITY, gpu: str = A6000) -> dict:
    return {"gpuTypeId": gpu, "cloudType": cloud, "gpuCount": count, "name": name, "imageName": "img"}


def floors(world: World, hours: float, step_s: int = 300) -> list[float | None]:
    out = []
    for _ in range(int(hours * 3600 / step_s)):
        world.advance(step_s)
        out.append(world.floor(A6000, COMMUNITY))
    return out


def test_same_seed_same_market_other_seed_differs():
    assert floors(World(seed=3), 24) == floors(World(seed=3), 24)
    assert floors(World(seed=3), 24) != floors(World(seed=4), 24)


def test_advance_chunking_does_not_change_history():
    """One day in one step, or in ~500 random chunks: same prices, interruptions and bills."""
    rng = random.Random(7)
    worlds = [World(seed=5, reclaim_rate_per_hour=0.5), World(seed=5, reclaim_rate_per_hour=0.5)]
    for world in worlds:
        floor = world.floor(A6000, COMMUNITY)
        for i, bid in enumerate((floor * 1.1, floor * 1.4, floor * 2.5)):
            world.rent_interruptable(spec(f"p{i}"), round(bid, 3))
        world.deploy_on_demand(spec("od"))
    worlds[0].advance(86400)
    left = 86400.0
    while left > 0:
        step = min(left, rng.uniform(0, 400))
        worlds[1].advance(step)
        left -= step
    a, b = (sorted(w.pods.values(), key=lambda p: p.name) for w in worlds)
    assert [(p.name, p.desired_status, p.last_status_change) for p in a] == \
           [(p.name, p.desired_status, p.last_status_change) for p in b]
    assert [p.spend for p in a] == pytest.approx([p.spend for p in b], abs=1e-9)
    assert any(p.desired_status == "EXITED" for p in a)  # the day did interrupt someone
    assert worlds[0].floor(A6000, COMMUNITY) == worlds[1].floor(A6000, COMMUNITY)


def test_model_has_the_shape_of_a_bid_market():
    """Over 30 days: floors mostly 0.3-0.65 of on-demand, spikes above on-demand in some markets,
    no-spot periods, and a calm market that rarely spikes."""
    rows = generate_trace(0, 30, step_s=300)
    by_market: dict[tuple[str, str], list] = {}
    for row in rows:
        by_market.setdefault((row["gpu_type"], row["cloud"]), []).append(row)
    above_shares, none_shares, medians = [], [], []
    for series in by_market.values():
        od = series[0]["uninterruptable_price"]
        values = np.array([math.nan if r["minimum_bid_price"] is None else r["minimum_bid_price"] for r in series])
        if np.isnan(values).all():
            continue  # types without spot in this cloud
        medians.append(np.nanmedian(values) / od)
        above_shares.append(np.mean(values > od))
        none_shares.append(np.mean(np.isnan(values)))
    assert len(medians) >= 12
    assert min(medians) >= 0.3 and max(medians) <= 0.7
    assert max(above_shares) > 0.02           # volatile markets spend real time above on-demand
    assert min(above_shares) < 0.005          # calm ones almost never do
    assert 0 < np.mean(none_shares) < 0.05    # no-spot periods exist and are short


def test_interruption_at_the_first_grid_step_the_floor_exceeds_the_bid(emulator):
    world = emulator.world
    world.reclaim_rate_per_hour = 0
    bid = world.floor(A6000, COMMUNITY)
    pod_id = rent(emulator, bid).json()["data"]["podRentInterruptable"]["id"]
    t0 = world.now_s
    times, values = world.markets[(A6000, COMMUNITY)].floors_on_grid(t0, t0 + 7 * 86400)
    first = times[np.flatnonzero(values > bid + 1e-9)[0]]
    emulator.advance(7 * 86400)
    pod = world.pods[pod_id]
    assert pod.desired_status == "EXITED"
    assert pod.exit_reason == "outbid"
    assert world.true_spend(pod_id) == pytest.approx(bid * (first - t0) / 3600, abs=1e-9)
    body = gql(emulator, "query($i: PodFilter) { pod(input: $i) { desiredStatus runtime { uptimeInSeconds } "
               "lastStatusChange lowestBidPriceToResume } }", {"i": {"podId": pod_id}}).json()["data"]["pod"]
    assert body["desiredStatus"] == "EXITED"
    assert body["runtime"] is None
    assert body["lastStatusChange"].startswith("Exited by Runpod: outbid")
    assert body["lowestBidPriceToResume"] == world.floor(A6000, COMMUNITY)


def test_pinned_floor_interrupts_and_bid_resume_needs_the_floor(emulator):
    world = emulator.world
    world.set_floor(A6000, COMMUNITY, 0.25)
    pod_id = rent(emulator, 0.3, count=2).json()["data"]["podRentInterruptable"]["id"]
    world.set_floor(A6000, COMMUNITY, 0.3)          # equal to the bid: still running
    assert world.pods[pod_id].desired_status == "RUNNING"
    world.set_floor(A6000, COMMUNITY, 0.35)
    assert world.pods[pod_id].desired_status == "EXITED"
    resume = "mutation($i: PodBidResumeInput) { podBidResume(input: $i) { desiredStatus costPerHr gpuCount } }"
    low = gql(emulator, resume, {"i": {"podId": pod_id, "bidPerGpu": 0.34, "gpuCount": 2}})
    assert low.json()["errors"][0]["message"] == SPOT_NO_INSTANCES
    ok = gql(emulator, resume, {"i": {"podId": pod_id, "bidPerGpu": 0.4, "gpuCount": 2}}).json()
    assert ok["data"]["podBidResume"] == {"desiredStatus": "RUNNING", "costPerHr": 0.8, "gpuCount": 2}
    world.release_floor(A6000, COMMUNITY)
    assert world.floor(A6000, COMMUNITY) == world.markets[(A6000, COMMUNITY)].floor_at(world.now_s)


def test_no_spot_capacity_refuses_bids_but_keeps_running_pods(emulator):
    world = emulator.world
    world.set_floor(A6000, COMMUNITY, 0.2)
    pod_id = rent(emulator, 0.3).json()["data"]["podRentInterruptable"]["id"]
    world.set_floor(A6000, COMMUNITY, None)
    emulator.advance(600)
    assert world.pods[pod_id].desired_status == "RUNNING"
    assert rent(emulator, 5.0).json()["errors"][0]["message"] == SPOT_NO_INSTANCES


def test_reclaims_hit_even_high_bids_and_can_be_switched_off():
    world = World(seed=1, reclaim_rate_per_hour=2.0)
    world.set_floor(A6000, COMMUNITY, 0.1)
    pod = world.rent_interruptable(spec(), 10.0)
    world.advance(6 * 3600)
    assert pod.desired_status == "EXITED" and pod.exit_reason == "reclaimed"
    assert pod.last_status_change.startswith("Exited by Runpod: reclaimed")
    calm = World(seed=1, reclaim_rate_per_hour=0)
    calm.set_floor(A6000, COMMUNITY, 0.1)
    kept = calm.rent_interruptable(spec(), 10.0)
    calm.advance(14 * 86400)
    assert kept.desired_status == "RUNNING"


def test_pay_as_bid_billing_over_a_day_to_the_cent(emulator):
    world = emulator.world
    world.reclaim_rate_per_hour = 0
    world.set_floor(A6000, COMMUNITY, 0.2)
    spot = rent(emulator, 0.237, count=3).json()["data"]["podRentInterruptable"]
    od = gql(emulator, "mutation($i: PodFindAndDeployOnDemandInput) { podFindAndDeployOnDemand(input: $i) "
             "{ id costPerHr } }", {"i": spec("od", 2)}).json()["data"]["podFindAndDeployOnDemand"]
    assert spot["costPerHr"] == pytest.approx(0.711)       # bid per GPU x GPUs
    assert od["costPerHr"] == pytest.approx(0.66)          # 0.33 on-demand x 2
    with httpx.Client(base_url=emulator.base_url, timeout=10) as http:
        for _ in range(24 * 6):
            http.post("/sim/advance", json={"seconds": 600}).raise_for_status()
    assert round(world.true_spend(spot["id"]), 2) == round(0.237 * 3 * 24, 2) == 17.06
    assert round(world.true_spend(od["id"]), 2) == round(0.33 * 2 * 24, 2)
    me = gql(emulator, "{ myself { clientBalance currentSpendPerHr spendLimit } }").json()["data"]["myself"]
    assert me["currentSpendPerHr"] == pytest.approx(0.711 + 0.66)
    assert me["clientBalance"] == pytest.approx(1000 - 0.237 * 3 * 24 - 0.66 * 24, abs=1e-6)
    assert me["spendLimit"] == 80
    # Stopped pods cost nothing more.
    gql(emulator, "mutation($i: PodStopInput) { podStop(input: $i) { id } }", {"i": {"podId": spot["id"]}})
    emulator.advance(3600)
    assert round(world.true_spend(spot["id"]), 2) == 17.06


def test_spend_limit_is_enforced():
    world = World(seed=0, spend_limit=5.0)
    world.deploy_on_demand(spec("a", 1, "SECURE", "NVIDIA H100 80GB HBM3"))      # 2.99/h
    with pytest.raises(BusinessError, match="spend limit"):
        world.deploy_on_demand(spec("b", 1, "SECURE", "NVIDIA H100 80GB HBM3"))  # 5.98/h > 5


def test_sim_now_and_advance_endpoints(emulator):
    now = httpx.get(emulator.base_url + "/sim/now", timeout=10).json()["now"]
    assert now == "2026-01-01T00:00:00Z"
    moved = httpx.post(emulator.base_url + "/sim/advance", json={"seconds": 90}, timeout=10)
    assert moved.json() == {"now": "2026-01-01T00:01:30Z"}
    assert emulator.now == datetime(2026, 1, 1, 0, 1, 30, tzinfo=UTC)
    bad = httpx.post(emulator.base_url + "/sim/advance", json={"seconds": -5}, timeout=10)
    assert bad.status_code == 400
    # 1e30 seconds was taken, and the emulator then dropped every request (its clock past any date).
    for seconds in (1e30, 366 * 86400 + 1):
        huge = httpx.post(emulator.base_url + "/sim/advance", json={"seconds": seconds}, timeout=10)
        assert huge.status_code == 400 and "from 0 to 31622400 (366 days)" in huge.text
    assert httpx.get(emulator.base_url + "/sim/now", timeout=10).json()["now"] == "2026-01-01T00:01:30Z"
    with pytest.raises(ConfigError, match="366 days"):
        emulator.advance(float("inf"))


def test_the_clock_stops_at_the_last_date_it_can_hold():
    """An emulator started an hour before the year 10000 took an advance of two hours, dropped the
    request, and printed a traceback when stopped (no date holds the year 10000)."""
    with Emulator(seed=0, start=datetime(9999, 12, 31, 23, 0, tzinfo=UTC)) as emu:
        past = httpx.post(emu.base_url + "/sim/advance", json={"seconds": 7200}, timeout=10)
        assert past.status_code == 400 and "past 9999-12-31T23:59:59Z" in past.text, past.text
        assert httpx.get(emu.base_url + "/sim/now", timeout=10).json()["now"] == "9999-12-31T23:00:00Z"
        assert httpx.post(emu.base_url + "/sim/advance", json={"seconds": 1800}, timeout=10).json() == {
            "now": "9999-12-31T23:30:00Z"}


def test_pods_are_found_by_name_in_myself(emulator):
    emulator.world.set_floor(A6000, COMMUNITY, 0.2)
    rent(emulator, 0.3, name="bidder-job-7")
    pods = gql(emulator, "{ myself { pods { id name podType } } }").json()["data"]["myself"]["pods"]
    assert [(p["name"], p["podType"]) for p in pods] == [("bidder-job-7", "INTERRUPTABLE")]


def test_trace_replay_holds_values_between_rows(tmp_path):
    def quote(ts: str, floor: float | None) -> PriceQuote:
        return PriceQuote(ts=datetime.fromisoformat(ts), gpu_type_id="g2.2xlarge/us-east-1a", cloud=COMMUNITY,
                          gpu_count=1, minimum_bid_price=floor, uninterruptable_price=0.65)

    rows = [quote("2016-06-22T12:00:00+00:00", 0.12), quote("2016-06-22T12:30:00+00:00", None),
            quote("2016-06-22T12:10:00+00:00", 0.9)]
    path = tmp_path / "trace.csv"
    write_trace(rows, path)
    with Emulator(trace=path) as emu:
        assert emu.now == datetime(2016, 6, 22, 12, tzinfo=UTC)
        query = ('{ gpuTypes { id memoryInGb lowestPrice(input: {gpuCount: 1}) '
                 '{ minimumBidPrice uninterruptablePrice } } }')
        seen = []
        for _ in range(4):
            seen.append(gql(emu, query).json()["data"]["gpuTypes"][0]["lowestPrice"]["minimumBidPrice"])
            emu.advance(600)
        assert seen == [0.12, 0.9, 0.9, None]
        gpu = gql(emu, query).json()["data"]["gpuTypes"][0]
        assert gpu["id"] == "g2.2xlarge/us-east-1a" and gpu["memoryInGb"] is None


def test_a_start_within_the_trace_replays_it_at_its_own_times(tmp_path):
    """A start inside the trace's span plays the trace's prices of that time (as `bidder backtest --start`
    reads a trace); one outside it plays the first row at the start. The live AWS runs of
    spot-redecided.md imported the history up to a window's start while the emulator, given that start,
    played the trace's first row there: a market 48 hours (and for window 17, 60 days) off its history."""
    def quote(ts: str, floor: float) -> PriceQuote:
        return PriceQuote(ts=datetime.fromisoformat(ts), gpu_type_id="g2.2xlarge/us-east-1a", cloud=COMMUNITY,
                          gpu_count=1, minimum_bid_price=floor, uninterruptable_price=0.65)

    path = tmp_path / "trace.csv"
    write_trace([quote("2016-06-22T12:00:00+00:00", 0.12), quote("2016-06-22T12:10:00+00:00", 0.9),
                 quote("2016-06-22T12:20:00+00:00", 0.3)], path)
    query = "{ gpuTypes { lowestPrice(input: {gpuCount: 1}) { minimumBidPrice } } }"

    def floors(start: datetime) -> list[float]:
        with Emulator(trace=path, start=start) as emu:
            seen = []
            for _ in range(3):
                seen.append(gql(emu, query).json()["data"]["gpuTypes"][0]["lowestPrice"]["minimumBidPrice"])
                emu.advance(600)
            return seen

    assert floors(datetime(2016, 6, 22, 12, 10, tzinfo=UTC)) == [0.9, 0.3, 0.3]
    assert floors(datetime(2016, 6, 22, 12, 20, tzinfo=UTC)) == [0.3, 0.3, 0.3]  # its last row: still its own time
    assert floors(datetime(2026, 1, 1, tzinfo=UTC)) == [0.12, 0.9, 0.3]  # after it: shifted to the start
    assert floors(datetime(2016, 6, 22, 11, tzinfo=UTC)) == [0.12, 0.9, 0.3]  # before it: shifted too


def test_trace_errors_name_line_and_column(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("ts,gpu_type,minimum_bid_price,uninterruptable_price\n2026-01-01T00:00:00Z,x,cheap,1\n")
    with pytest.raises(TraceFormatError, match=r"bad\.csv line 2, column minimum_bid_price") as info:
        World(trace=path)
    assert info.value.line == 2


def test_generate_quotes_are_the_trace_rows():
    rows = generate_trace(9, 0.25, step_s=900, gpu_types=["NVIDIA L4"])
    quotes = generate_quotes(9, 0.25, step_s=900, gpu_types=["NVIDIA L4"])
    assert [(r["ts"], r["minimum_bid_price"]) for r in rows] == \
           [(q.ts.strftime("%Y-%m-%dT%H:%M:%SZ"), q.minimum_bid_price) for q in quotes]
    assert {(q.cloud, q.memory_in_gb, q.uninterruptable_price) for q in quotes} == {("SECURE", 24, 0.43)}


def test_generate_trace_matches_the_emulator():
    rows = generate_trace(2, 0.5, step_s=600, gpu_types=[A6000])
    world = World(seed=2)
    mine = [r for r in rows if r["cloud"] == COMMUNITY]
    for row in mine:
        assert row["minimum_bid_price"] == world.floor(A6000, COMMUNITY)
        world.advance(600)
    assert len(mine) == 72 and {r["uninterruptable_price"] for r in mine} == {0.33}


def test_http_requests_see_the_same_prices_as_the_world(emulator):
    q = '{ gpuTypes(input: {ids: ["NVIDIA RTX A6000"]}) { lowestPrice(input: {gpuCount: 1, secureCloud: false}) ' \
        '{ minimumBidPrice } } }'
    for _ in range(5):
        emulator.advance(1800)
        got = gql(emulator, q, headers=AUTH).json()["data"]["gpuTypes"][0]["lowestPrice"]["minimumBidPrice"]
        assert got == emulator.world.floor(A6000, COMMUNITY)
