"""Fault injection and the spot switch of the emulator, seen over raw HTTP."""

from __future__ import annotations

import time

import httpx
import pytest
from sim_helpers import A6000, AUTH, DEPLOY, RENT, gql, rent

from bidder.errors import ConfigError
from bidder.sim import Emulator, FaultSpec
from bidder.sim.server import INTERNAL_ERROR_TEXT

PRICES = '{ gpuTypes(input: {id: "NVIDIA RTX A6000"}) { lowestPrice(input: {gpuCount: 1}) { minimumBidPrice } } }'
CLIENT_TIMEOUT = 0.5


def post(emu: Emulator, query: str, variables: dict | None = None) -> httpx.Response:
    return httpx.post(emu.url, json={"query": query, "variables": variables or {}}, headers=AUTH,
                      timeout=CLIENT_TIMEOUT)


def test_faults_are_off_by_default(emulator):
    assert emulator.faults is None
    assert all(post(emulator, PRICES).status_code == 200 for _ in range(20))


def test_429_carries_retry_after_and_sometimes_html(emulator):
    emulator.set_faults("429=1,retry_after=3,html=1")
    html = post(emulator, PRICES)
    assert html.status_code == 429
    assert html.headers["Retry-After"] == "3"
    assert html.headers["Content-Type"].startswith("text/html")
    assert "<html>" in html.text
    emulator.set_faults(FaultSpec(rate_429=1.0, html_share=0.0))
    plain = post(emulator, PRICES)
    assert plain.status_code == 429 and plain.headers["Retry-After"] == "1"
    assert plain.json()["errors"][0]["message"] == "Too Many Requests"


def test_500_and_internal_error_do_not_execute(emulator):
    emulator.world.set_floor(A6000, "COMMUNITY", 0.2)
    emulator.set_faults("500=1")
    response = rent(emulator, 0.3)
    assert response.status_code == 500
    emulator.set_faults("internal=1")
    response = rent(emulator, 0.3)
    assert response.status_code == 200
    error = response.json()["errors"][0]
    assert error == {"message": INTERNAL_ERROR_TEXT, "extensions": {"code": "INTERNAL_SERVER_ERROR"}}
    assert emulator.world.pods == {}
    emulator.set_faults(None)
    assert rent(emulator, 0.3).json()["data"]["podRentInterruptable"]["desiredStatus"] == "RUNNING"


def test_timeout_is_late_but_executed(emulator):
    emulator.world.set_floor(A6000, "COMMUNITY", 0.2)
    emulator.set_faults("timeout=1,delay=1.0")
    spec = {"gpuTypeId": A6000, "cloudType": "COMMUNITY", "bidPerGpu": 0.3, "name": "slow-create"}
    with pytest.raises(httpx.ReadTimeout):
        post(emulator, RENT, {"input": spec})
    emulator.set_faults(None)
    # The server finishes the request after the client gave up: the pod exists, found by name.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with emulator.world.lock:
            found = [p for p in emulator.world.pods.values() if p.name == "slow-create"]
        if found:
            break
        time.sleep(0.02)  # waiting for the server thread (wall clock), not for market time
    assert len(found) == 1


def test_dropped_connection_executes_nothing(emulator):
    emulator.set_faults("drop=1")
    with pytest.raises(httpx.TransportError):
        post(emulator, DEPLOY, {"input": {"gpuTypeId": A6000, "cloudType": "COMMUNITY", "name": "d"}})
    assert emulator.world.pods == {}


def test_lost_create_creates_the_pod_but_loses_the_answer(emulator):
    emulator.set_faults("lost_create=1")
    with pytest.raises(httpx.TransportError):
        post(emulator, DEPLOY, {"input": {"gpuTypeId": A6000, "cloudType": "COMMUNITY", "name": "lost-1"}})
    assert post(emulator, PRICES).status_code == 200  # reads are not affected
    names = gql(emulator, "{ myself { pods { name desiredStatus } } }").json()["data"]["myself"]["pods"]
    assert names == [{"name": "lost-1", "desiredStatus": "RUNNING"}]


def test_fault_draws_are_seeded():
    def statuses(seed: int) -> list[int]:
        with Emulator(seed=seed, faults="429=0.3,500=0.2") as emu, httpx.Client(timeout=5) as http:
            return [http.post(emu.url, json={"query": PRICES}).status_code for _ in range(30)]

    first = statuses(11)
    assert first == statuses(11)
    assert {200, 429, 500} <= set(first)
    assert first != statuses(12)


def test_bad_fault_specs_are_refused_clearly():
    with pytest.raises(ConfigError, match="bad fault item 'boom=1'"):
        FaultSpec.parse("boom=1")
    with pytest.raises(ConfigError, match=r"add up to 1\.5"):
        FaultSpec.parse("429=0.8,500=0.7")
    with pytest.raises(ConfigError, match="not a number"):
        FaultSpec.parse("429=lots")
    spec = FaultSpec.parse("429=0.2,drop=0.05,delay=0.7")
    assert FaultSpec.parse(str(spec)) == spec


def test_spot_switch_removes_the_spot_mutations(emulator):
    emulator.set_spot_enabled(False)
    response = rent(emulator, 0.5)
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"].startswith('Unknown type "PodRentInterruptableInput".')
    inline = post(emulator, 'mutation { podRentInterruptable(input: {gpuTypeId: "x", bidPerGpu: 0.1}) { id } }')
    assert inline.status_code == 400
    assert inline.json()["errors"][0]["message"].startswith(
        'Cannot query field "podRentInterruptable" on type "Mutation".')
    bid_resume = post(emulator, 'mutation { podBidResume(input: {podId: "x", bidPerGpu: 0.1, gpuCount: 1}) { id } }')
    assert bid_resume.status_code == 400
    assert post(emulator, PRICES).json()["data"]["gpuTypes"][0]["lowestPrice"]["minimumBidPrice"] is None
    on_demand = post(emulator, DEPLOY, {"input": {"gpuTypeId": A6000, "cloudType": "COMMUNITY", "name": "od"}})
    assert on_demand.json()["data"]["podFindAndDeployOnDemand"]["podType"] == "RESERVED"
    emulator.set_spot_enabled(True)
    assert post(emulator, PRICES).json()["data"]["gpuTypes"][0]["lowestPrice"]["minimumBidPrice"] is not None


def test_spot_disabled_at_construction():
    with Emulator(spot_enabled=False) as emu:
        assert post(emu, 'mutation { podRentInterruptable(input: {bidPerGpu: 0.1}) { id } }').status_code == 400
