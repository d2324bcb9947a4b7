"""The emulator's wire behaviour: schema validation, auth, aliases, pods and their error texts.
Raw httpx against the running emulator (the client under test elsewhere must not be needed here)."""

from __future__ import annotations

import pytest
from sim_helpers import A6000, DEPLOY, RENT, gql, rent

from bidder.errors import ConfigError
from bidder.sim.world import (
    CANNOT_RESUME_SPOT,
    MACHINE_FULL,
    ON_DEMAND_NO_INSTANCES,
    SPOT_NO_INSTANCES,
    TERMINATE_NOT_FOUND,
)


def test_unknown_field_is_http_400_with_runpods_message(emulator):
    response = gql(emulator, "{ gpuTypes { id memoryInGbb } }")
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"].startswith(
        'Cannot query field "memoryInGbb" on type "GpuType".')


def test_unknown_input_field_is_http_400(emulator):
    response = gql(emulator, 'mutation { podResume(input: {podId: "x", bogus: 1}) { id } }')
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"] == 'Field "bogus" is not defined by type "PodResumeInput".'


def test_bid_resume_requires_gpu_count(emulator):
    query = "mutation($input: PodBidResumeInput) { podBidResume(input: $input) { id } }"
    response = gql(emulator, query, {"input": {"podId": "x", "bidPerGpu": 0.2}})
    assert response.status_code == 400
    assert '"gpuCount" of required type "Int!" was not provided' in response.json()["errors"][0]["message"]


def test_terminate_takes_no_selection_set(emulator):
    assert gql(emulator, 'mutation { podTerminate(input: {podId: "x"}) { id } }').status_code == 400
    response = gql(emulator, 'mutation { podTerminate(input: {podId: "x"}) }')
    assert response.status_code == 200
    assert response.json()["errors"][0]["message"] == TERMINATE_NOT_FOUND


def test_wrong_key_is_401_and_no_key_is_anonymous(emulator):
    assert gql(emulator, "{ myself { id } }", headers={"Authorization": "Bearer wrong"}).status_code == 401
    anonymous = gql(emulator, "{ myself { id } gpuTypes { id } }", headers=None)
    assert anonymous.status_code == 200
    body = anonymous.json()
    assert body["data"]["myself"] is None
    assert len(body["data"]["gpuTypes"]) >= 12
    refused = gql(emulator, RENT, {"input": {"gpuTypeId": A6000, "bidPerGpu": 5.0}}, headers=None)
    assert refused.status_code == 200
    assert refused.json()["data"]["podRentInterruptable"] is None
    assert refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert emulator.world.pods == {}
    assert gql(emulator, "{ myself { id } }").json()["data"]["myself"]["id"].startswith("user_")


def test_price_snapshot_with_aliases_in_one_request(emulator):
    query = """{ gpuTypes { id memoryInGb
        secure1: lowestPrice(input: {gpuCount: 1, secureCloud: true}) { minimumBidPrice uninterruptablePrice stockStatus }
        community1: lowestPrice(input: {gpuCount: 1, secureCloud: false}) { minimumBidPrice uninterruptablePrice
            stockStatus availableGpuCounts maxUnreservedGpuCount }
        community2: lowestPrice(input: {gpuCount: 2, secureCloud: false}) { minimumBidPrice uninterruptablePrice } } }"""
    response = gql(emulator, query, headers=None)
    assert response.status_code == 200
    types = {t["id"]: t for t in response.json()["data"]["gpuTypes"]}
    a6000 = types[A6000]
    assert a6000["memoryInGb"] == 48
    assert a6000["secure1"]["uninterruptablePrice"] == 0.49
    assert a6000["community1"]["uninterruptablePrice"] == 0.33
    floor = a6000["community1"]["minimumBidPrice"]
    assert floor == emulator.world.floor(A6000, "COMMUNITY")
    assert floor is not None and 0.0 < floor < 0.33  # seed 0: spot capacity at the start
    assert a6000["community2"]["minimumBidPrice"] == floor  # per GPU, whatever the count
    assert types["NVIDIA B200"]["secure1"]["minimumBidPrice"] is None  # no spot list price: no spot market
    assert a6000["community1"]["stockStatus"] in {"High", "Medium", "Low"}


def test_spot_pod_lifecycle_and_texts(emulator):
    floor = emulator.world.floor(A6000, "COMMUNITY")
    created = rent(emulator, round(floor + 0.05, 3), count=2, name="train-1").json()["data"]["podRentInterruptable"]
    assert created["name"] == "train-1"
    assert created["podType"] == "INTERRUPTABLE"
    assert created["desiredStatus"] == "RUNNING"
    assert created["costPerHr"] == pytest.approx(round(floor + 0.05, 3) * 2)
    assert created["lastStatusChange"].startswith("Rented by User: ")
    resume = gql(emulator, "mutation($i: PodResumeInput) { podResume(input: $i) { id } }",
                 {"i": {"podId": created["id"], "gpuCount": 2}})
    assert resume.json()["errors"][0]["message"] == CANNOT_RESUME_SPOT
    stop = gql(emulator, "mutation($i: PodStopInput) { podStop(input: $i) { desiredStatus runtime { uptimeInSeconds } "
               "lastStatusChange } }", {"i": {"podId": created["id"]}}).json()["data"]["podStop"]
    assert stop["desiredStatus"] == "EXITED"
    assert stop["runtime"] is None
    assert stop["lastStatusChange"].startswith("Exited by User: ")
    gql(emulator, "mutation($i: PodTerminateInput) { podTerminate(input: $i) }", {"i": {"podId": created["id"]}})
    assert gql(emulator, "query($i: PodFilter) { pod(input: $i) { id } }",
               {"i": {"podId": created["id"]}}).json()["data"]["pod"] is None
    again = gql(emulator, "mutation($i: PodTerminateInput) { podTerminate(input: $i) }", {"i": {"podId": created["id"]}})
    assert again.json()["errors"][0]["message"] == TERMINATE_NOT_FOUND


def test_bid_under_floor_gets_the_generic_no_instances_text(emulator):
    emulator.world.set_floor(A6000, "COMMUNITY", 0.2)
    response = rent(emulator, 0.19)
    assert response.status_code == 200
    assert response.json()["errors"][0]["message"] == SPOT_NO_INSTANCES
    assert rent(emulator, 0.2).json()["data"]["podRentInterruptable"]["desiredStatus"] == "RUNNING"


def test_capacity_runs_out(emulator):
    world = emulator.world
    world.set_floor(A6000, "COMMUNITY", 0.2)
    world.set_capacity(A6000, "COMMUNITY", 3)
    first = rent(emulator, 0.3, count=2).json()["data"]["podRentInterruptable"]
    assert world.free_gpus(A6000, "COMMUNITY") == 1
    assert rent(emulator, 0.3, count=2).json()["errors"][0]["message"] == SPOT_NO_INSTANCES
    spec = {"gpuTypeId": A6000, "cloudType": "COMMUNITY", "gpuCount": 2, "name": "od"}
    assert gql(emulator, DEPLOY, {"input": spec}).json()["errors"][0]["message"] == ON_DEMAND_NO_INSTANCES
    gql(emulator, "mutation($i: PodStopInput) { podStop(input: $i) { id } }", {"i": {"podId": first["id"]}})
    assert world.free_gpus(A6000, "COMMUNITY") == 3
    world.set_capacity(A6000, "COMMUNITY", 0)  # others take the machine while our pod is stopped
    resume = gql(emulator, "mutation($i: PodBidResumeInput) { podBidResume(input: $i) { id } }",
                 {"i": {"podId": first["id"], "bidPerGpu": 0.3, "gpuCount": 2}})
    assert resume.json()["errors"][0]["message"] == MACHINE_FULL
    lowest = gql(emulator, '{ gpuTypes(input: {id: "NVIDIA RTX A6000"}) { lowestPrice(input: {gpuCount: 1, '
                 'secureCloud: false}) { stockStatus availableGpuCounts minimumBidPrice } } }')
    assert lowest.json()["data"]["gpuTypes"][0]["lowestPrice"] == {
        "stockStatus": "None", "availableGpuCounts": [], "minimumBidPrice": None}


def test_create_honours_type_list_and_data_center(emulator):
    world = emulator.world
    listed = {"gpuTypeIdList": ["NVIDIA GTX 9999", A6000], "cloudType": "SECURE", "name": "from-list"}
    pod = gql(emulator, DEPLOY, {"input": listed}).json()["data"]["podFindAndDeployOnDemand"]
    assert pod["machine"]["gpuDisplayName"] == "RTX A6000"
    data_center = world.machines[pod["machineId"]].data_center_id
    pinned = {"gpuTypeId": A6000, "cloudType": "SECURE", "name": "dc", "dataCenterId": data_center}
    placed = gql(emulator, DEPLOY, {"input": pinned}).json()["data"]["podFindAndDeployOnDemand"]
    assert world.machines[placed["machineId"]].data_center_id == data_center
    nowhere = gql(emulator, DEPLOY, {"input": {**pinned, "dataCenterId": "XX-NONE-1"}}).json()
    assert nowhere["errors"][0]["message"] == ON_DEMAND_NO_INSTANCES


def test_spot_fields_removed_is_the_second_stage_of_the_switch(emulator):
    """spot_enabled=False keeps the spot price fields (reading null); fields=False removes them
    too, so asking for one is RunPod's HTTP 400, while on-demand prices keep answering."""
    prices = "{ gpuTypes { id securePrice secureSpotPrice lowestPrice(input: {gpuCount: 1}) { minimumBidPrice } } }"
    emulator.set_spot_enabled(False)
    kept = gql(emulator, prices)
    assert kept.status_code == 200
    assert all(t["secureSpotPrice"] is None and t["lowestPrice"]["minimumBidPrice"] is None
               for t in kept.json()["data"]["gpuTypes"])
    emulator.set_spot_enabled(False, fields=False)
    assert not emulator.spot_enabled and not emulator.spot_fields
    removed = gql(emulator, prices)
    assert removed.status_code == 400
    assert [e["message"].split(" Did you")[0] for e in removed.json()["errors"]] == [
        'Cannot query field "secureSpotPrice" on type "GpuType".',
        'Cannot query field "minimumBidPrice" on type "LowestPrice".']
    assert gql(emulator, "{ gpuTypes { communitySpotPrice } }").status_code == 400
    assert rent(emulator, 1.0).status_code == 400  # the mutations stay gone
    on_demand = gql(emulator, "{ gpuTypes { id securePrice lowestPrice(input: {gpuCount: 1}) "
                              "{ uninterruptablePrice stockStatus } } }")
    assert on_demand.status_code == 200
    assert any(t["lowestPrice"]["uninterruptablePrice"] for t in on_demand.json()["data"]["gpuTypes"])
    with pytest.raises(ConfigError, match="together with the spot mutations"):
        emulator.set_spot_enabled(True, fields=False)
    emulator.set_spot_enabled(True)  # back to stage 0: fields and floors return
    assert gql(emulator, prices).status_code == 200 and emulator.spot_fields
