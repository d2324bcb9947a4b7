"""The RunPod client against the running emulator over real HTTP: every method, the one-request
price snapshot, pod life cycles, requests built from variables only, headers, dry-run builders."""

from __future__ import annotations

import json
import math
from datetime import datetime

import httpx
import pytest
from client_helpers import A6000, Recorder, make_client

from bidder.errors import AuthError, ConfigError, GraphQLError, NoCapacity, PodNotFound, SpotUnsupported
from bidder.models import CLOUDS
from bidder.runpod import USER_AGENT, GpuType, Pod, PodSpec, RunPodClient
from bidder.runpod.operations import GraphQLRequest

RTX3090 = "NVIDIA GeForce RTX 3090"


def spec(name: str = "job-1", *, count: int = 1, cloud: str = "COMMUNITY", gpu: str = A6000, **kw) -> PodSpec:
    return PodSpec(name=name, image_name="runpod/pytorch:2.4.0", gpu_type_id=gpu, gpu_count=count,
                   cloud_type=cloud, **kw)


@pytest.fixture
def recorder():
    rec = Recorder()
    yield rec
    rec.close()


# -- catalogue and prices --------------------------------------------------------------------------

def test_gpu_types_are_the_emulators_catalogue(client, emulator):
    types = client.gpu_types()
    assert all(isinstance(t, GpuType) for t in types)
    assert {t.id for t in types} == set(emulator.world.gpu_types)
    for t in types:
        info = emulator.world.gpu_types[t.id]
        assert (t.display_name, t.manufacturer, t.memory_in_gb, t.max_gpu_count) == (
            info.display_name, info.manufacturer, info.memory_in_gb, info.max_gpu_count)
        assert (t.secure_price, t.community_price) == (info.secure_price, info.community_price)
        assert (t.secure_spot_price, t.community_spot_price) == (info.secure_spot_price, info.community_spot_price)
        assert t.secure_cloud == (info.secure_price is not None)
        assert t.community_cloud == (info.community_price is not None)


def test_lowest_prices_is_one_request_for_every_type_cloud_and_count(emulator, recorder):
    client = make_client(emulator, recorder=recorder)
    counts = (1, 2, 4, 8)
    quotes = client.lowest_prices(counts, ts=emulator.now)
    assert len(recorder.requests) == 1
    world = emulator.world
    assert [(q.gpu_type_id, q.cloud, q.gpu_count) for q in quotes] == [
        (t, c, n) for t in world.gpu_types for c in CLOUDS for n in counts]
    assert {q.ts for q in quotes} == {emulator.now}
    spot_rows = 0
    for q in quotes:
        info = world.gpu_types[q.gpu_type_id]
        assert (q.memory_in_gb, q.display_name) == (info.memory_in_gb, info.display_name)
        assert q.minimum_bid_price != 0 and q.uninterruptable_price != 0
        offered = info.on_demand(q.cloud) is not None
        if not offered:  # a cloud the type is not offered in: a row without prices
            assert q.minimum_bid_price is q.uninterruptable_price is q.list_on_demand_price is None
            assert q.stock_status is None and q.available_gpu_counts == ()
            continue
        secure = q.cloud == "SECURE"
        assert q.list_on_demand_price == (info.secure_price if secure else info.community_price)
        assert q.list_spot_price == (info.secure_spot_price if secure else info.community_spot_price)
        if q.gpu_count == 1:
            assert q.uninterruptable_price == pytest.approx(world.on_demand(q.gpu_type_id, q.cloud))
            floor = world.floor(q.gpu_type_id, q.cloud)
            if floor is None or world.free_gpus(q.gpu_type_id, q.cloud) == 0:
                assert q.minimum_bid_price is None
            else:
                assert q.minimum_bid_price == pytest.approx(floor)
                spot_rows += 1
        if q.gpu_count > info.max_gpu_count:
            assert q.uninterruptable_price is None and q.minimum_bid_price is None
    assert spot_rows > 10  # the model has spot capacity in most markets
    # The document asks with aliases; the counts travel as variables.
    body = recorder.bodies[0]
    assert "secure1: lowestPrice(input: {gpuCount: $gc1, secureCloud: $secure})" in body["query"]
    assert "community8: lowestPrice(input: {gpuCount: $gc8, secureCloud: $community})" in body["query"]
    assert body["variables"] == {"secure": True, "community": False, "gc1": 1, "gc2": 2, "gc4": 4, "gc8": 8}


def test_lowest_prices_for_one_cloud_and_repeated_counts(client, emulator):
    quotes = client.lowest_prices([2, 1, 2], ["community"], ts=emulator.now)
    assert {q.cloud for q in quotes} == {"COMMUNITY"}
    assert [q.gpu_count for q in quotes[:2]] == [2, 1]
    assert len(quotes) == 2 * len(emulator.world.gpu_types)


def test_no_spot_capacity_and_zero_floor_and_sold_out_read_none(client, emulator):
    world = emulator.world
    world.set_floor(A6000, "COMMUNITY", None)
    world.set_floor(RTX3090, "COMMUNITY", 0.0)  # RunPod's other way of saying "no spot capacity"
    world.set_capacity(A6000, "SECURE", 0)
    got = {(q.gpu_type_id, q.cloud): q for q in client.lowest_prices(ts=emulator.now)}
    assert got[A6000, "COMMUNITY"].minimum_bid_price is None
    assert got[A6000, "COMMUNITY"].uninterruptable_price == pytest.approx(world.on_demand(A6000, "COMMUNITY"))
    assert got[RTX3090, "COMMUNITY"].minimum_bid_price is None
    sold_out = got[A6000, "SECURE"]
    assert sold_out.minimum_bid_price is None and sold_out.uninterruptable_price is None
    assert sold_out.stock_status == "None" and sold_out.available_gpu_counts == ()
    assert sold_out.list_on_demand_price is not None  # the list price stays: it is the catalogue's


def test_prices_follow_the_virtual_clock(client, emulator):
    world = emulator.world
    before = client.lowest_prices(ts=emulator.now)
    emulator.advance(6 * 3600)
    after = client.lowest_prices(ts=emulator.now)
    changed = [(a.gpu_type_id, a.cloud) for a, b in zip(before, after, strict=True)
               if a.minimum_bid_price != b.minimum_bid_price]
    assert changed
    for q in after:
        if q.gpu_count == 1 and q.minimum_bid_price is not None:
            assert q.minimum_bid_price == pytest.approx(world.floor(q.gpu_type_id, q.cloud))


def test_bad_price_requests_are_config_errors_and_send_nothing(emulator, recorder):
    client = make_client(emulator, recorder=recorder)
    with pytest.raises(ConfigError, match="gpu_counts must be a whole number >= 1"):
        client.lowest_prices((0,), ts=emulator.now)
    with pytest.raises(ConfigError, match="cloud must be one of SECURE, COMMUNITY"):
        client.lowest_prices((1,), ("ALL",), ts=emulator.now)
    with pytest.raises(ConfigError, match="at least one GPU count"):
        client.lowest_prices((), ts=emulator.now)
    with pytest.raises(ConfigError, match="timezone-aware"):
        client.lowest_prices(ts=datetime(2026, 1, 1))  # naive: refused
    assert recorder.requests == []


def test_spot_switched_off(client, emulator):
    world = emulator.world
    world.set_floor(A6000, "COMMUNITY", 0.2)
    pod = client.rent_interruptable(spec(), 0.3)
    client.stop(pod.id)
    emulator.set_spot_enabled(False)
    quotes = client.lowest_prices(ts=emulator.now)  # still answers: every floor reads None
    assert quotes and all(q.minimum_bid_price is None for q in quotes)
    assert any(q.uninterruptable_price is not None for q in quotes)
    assert all(t.secure_spot_price is None and t.community_spot_price is None for t in client.gpu_types())
    with pytest.raises(SpotUnsupported) as rent:
        client.rent_interruptable(spec("job-2"), 0.3)
    assert rent.value.status == 400
    assert 'Cannot query field "podRentInterruptable" on type "Mutation".' in rent.value.messages
    with pytest.raises(SpotUnsupported):
        client.bid_resume(pod.id, 0.3, 1)
    assert [p.name for p in world.pods.values()] == ["job-1"]
    # On-demand still works.
    assert client.deploy_on_demand(spec("job-3")).pod_type == "RESERVED"


# -- account and pods ------------------------------------------------------------------------------

def test_myself_with_and_without_a_key(client, emulator):
    account = client.myself()
    assert account is not None and account.id == emulator.world.user_id
    assert account.client_balance == pytest.approx(1000.0) and account.spend_limit == 80
    assert account.current_spend_per_hr == 0 and account.pods == ()
    anonymous = make_client(emulator, key=None)
    assert anonymous.myself() is None
    assert anonymous.gpu_types()  # the catalogue needs no key
    with pytest.raises(AuthError, match="give an API key"):
        anonymous.pods()
    with pytest.raises(AuthError, match="must be authenticated"):
        anonymous.pod("anything")
    with pytest.raises(AuthError):
        anonymous.deploy_on_demand(spec())
    assert emulator.world.pods == {}


def test_a_wrong_key_is_an_auth_error(emulator):
    client = make_client(emulator, key="rpa_WRONG")
    with pytest.raises(AuthError) as info:
        client.gpu_types()
    assert info.value.status == 401 and info.value.operation == "gpuTypes"
    assert "check RUNPOD_API_KEY, or api_key in ~/.config/bidder/config.toml" in str(info.value)


def test_spot_pod_life_cycle(client, emulator):
    world = emulator.world
    world.reclaim_rate_per_hour = 0
    world.set_floor(A6000, "COMMUNITY", 0.2)
    pod = client.rent_interruptable(spec(count=2, env=(("MODE", "train"),), ports="8888/http,22/tcp",
                                         volume_in_gb=20, volume_mount_path="/workspace"), 0.25)
    assert isinstance(pod, Pod) and pod.is_spot and pod.is_running
    assert (pod.name, pod.pod_type, pod.gpu_count) == ("job-1", "INTERRUPTABLE", 2)
    assert pod.cost_per_hr == pytest.approx(0.5)  # bidPerGpu * gpuCount: the bid is per GPU
    sim = world.pods[pod.id]
    assert (sim.bid_per_gpu, sim.gpu_count, sim.cloud) == (0.25, 2, "COMMUNITY")
    assert sim.env == (("MODE", "train"),) and sim.volume_in_gb == 20 and sim.volume_mount_path == "/workspace"
    assert pod.uptime_seconds == 0 and pod.gpu_display_name == "RTX A6000"
    assert {(p.private_port, p.type) for p in pod.ports} == {(8888, "http"), (22, "tcp")}
    assert pod.lowest_bid_price_to_resume == pytest.approx(0.2)
    emulator.advance(1800)
    assert client.pod(pod.id).uptime_seconds == 1800
    assert [p.id for p in client.pods()] == [pod.id]
    assert client.myself().current_spend_per_hr == pytest.approx(0.5)
    # Outbid: RunPod stops the pod (EXITED, runtime null) and says so in lastStatusChange.
    world.set_floor(A6000, "COMMUNITY", 0.4)
    emulator.advance(60)
    out = client.pod(pod.id)
    assert out.desired_status == "EXITED" and out.uptime_seconds is None and out.ports == ()
    assert out.exited_by_runpod and not out.is_running
    with pytest.raises(NoCapacity):
        client.bid_resume(pod.id, 0.3, 2)  # under the floor
    back = client.bid_resume(pod.id, 0.45, 2)
    assert back.is_running and back.cost_per_hr == pytest.approx(0.9)
    assert world.pods[pod.id].bid_per_gpu == 0.45
    stopped = client.stop(pod.id)
    assert stopped.desired_status == "EXITED" and not stopped.exited_by_runpod
    assert client.stop(pod.id).desired_status == "EXITED"  # stopping twice is harmless
    assert client.terminate(pod.id) is None
    with pytest.raises(PodNotFound) as gone:
        client.pod(pod.id)
    assert gone.value.pod_id == pod.id
    assert client.pods() == []
    assert world.true_spend(pod.id) == pytest.approx(0.5 * 1800 / 3600)  # billed until outbid


def test_on_demand_pod_life_cycle(client, emulator):
    pod = client.deploy_on_demand(spec(cloud="SECURE"))
    price = emulator.world.on_demand(A6000, "SECURE")
    assert pod.pod_type == "RESERVED" and not pod.is_spot
    assert pod.cost_per_hr == pytest.approx(price)
    assert client.stop(pod.id).desired_status == "EXITED"
    resumed = client.resume(pod.id, 1)
    assert resumed.is_running and resumed.uptime_seconds == 0
    emulator.advance(3600)
    client.stop(pod.id)
    assert client.resume(pod.id).is_running  # gpu_count may be left out for podResume
    client.terminate(pod.id)
    assert emulator.world.get_pod(pod.id) is None


def test_resume_refuses_a_spot_pod_with_runpods_words(client, emulator):
    emulator.world.set_floor(A6000, "COMMUNITY", 0.2)
    pod = client.rent_interruptable(spec(), 0.3)
    client.stop(pod.id)
    with pytest.raises(GraphQLError) as info:
        client.resume(pod.id, 1)
    assert type(info.value) is GraphQLError
    assert info.value.messages == ("Cannot resume a spot pod as an on demand pod.",)
    assert info.value.status == 200 and info.value.operation == "podResume"


def test_no_capacity(client, emulator):
    world = emulator.world
    world.set_floor(A6000, "COMMUNITY", 0.3)
    with pytest.raises(NoCapacity) as low:
        client.rent_interruptable(spec(), 0.2)  # a bid under the floor: RunPod's generic text
    assert low.value.messages == ("There are no instances available with the request specifications. "
                                  "Please try again later.",)
    world.set_capacity(A6000, "SECURE", 0)
    with pytest.raises(NoCapacity, match="no longer any instances"):
        client.deploy_on_demand(spec(cloud="SECURE"))
    # A stopped pod whose machine filled up cannot resume: "does not have the resources".
    world.set_capacity(A6000, "COMMUNITY", 1)
    pod = client.deploy_on_demand(spec(cloud="COMMUNITY"))
    client.stop(pod.id)
    world.set_capacity(A6000, "COMMUNITY", 0)
    with pytest.raises(NoCapacity, match="does not have the resources"):
        client.resume(pod.id, 1)
    assert len(world.pods) == 1


def test_unknown_pods_are_pod_not_found(client):
    for call in (lambda: client.pod("nope"), lambda: client.stop("nope"), lambda: client.terminate("nope"),
                 lambda: client.resume("nope", 1), lambda: client.bid_resume("nope", 0.5, 1)):
        with pytest.raises(PodNotFound) as info:
            call()
        assert info.value.pod_id == "nope"


# -- what goes over the wire -----------------------------------------------------------------------

def test_every_mutation_sends_exactly_its_builders_request(emulator, recorder):
    client = make_client(emulator, recorder=recorder)
    emulator.world.set_floor(A6000, "COMMUNITY", 0.2)
    s = spec(count=2)
    calls = [
        ("build_rent_interruptable", (s, 0.3), "rent_interruptable"),
        ("build_stop", ("POD",), "stop"),
        ("build_bid_resume", ("POD", 0.35, 2), "bid_resume"),
        ("build_terminate", ("POD",), "terminate"),
        ("build_deploy_on_demand", (spec("od"),), "deploy_on_demand"),
        ("build_stop", ("OD",), "stop"),
        ("build_resume", ("OD", 1), "resume"),
        ("build_pod", ("OD",), "pod"),
    ]
    ids: dict[str, str] = {}
    for builder, args, method in calls:
        args = tuple(ids.get(a, a) if isinstance(a, str) else a for a in args)
        request = getattr(client, builder)(*args)
        assert isinstance(request, GraphQLRequest)
        before = len(recorder.requests)
        result = getattr(client, method)(*args)
        assert len(recorder.requests) == before + 1
        assert recorder.bodies[-1] == request.payload()
        assert json.loads(request.to_json()) == request.payload()
        if method == "rent_interruptable":
            ids["POD"] = result.id
        if method == "deploy_on_demand":
            ids["OD"] = result.id
    assert recorder.operations == ["podRentInterruptable", "podStop", "podBidResume", "podTerminate",
                                   "podFindAndDeployOnDemand", "podStop", "podResume", "pod"]
    rent = recorder.bodies[0]
    assert rent["variables"]["input"]["bidPerGpu"] == 0.3 and rent["variables"]["input"]["gpuCount"] == 2


def test_values_travel_only_as_variables(client, emulator):
    hostile = 'x" } } mutation { podTerminate(input: {podId: "all"}) } #'
    emulator.world.set_floor(A6000, "COMMUNITY", 0.2)
    request = client.build_rent_interruptable(spec(hostile, docker_args=hostile), 0.3)
    assert hostile not in request.query and "0.3" not in request.query
    pod = client.rent_interruptable(spec(hostile, docker_args=hostile), 0.3)
    assert pod.name == hostile and emulator.world.pods[pod.id].docker_args == hostile
    for build in (client.build_stop, client.build_terminate, client.build_pod):
        assert hostile not in build(hostile).query
    with pytest.raises(PodNotFound):
        client.stop(hostile)


def test_a_dry_run_builder_sends_nothing(emulator, recorder):
    client = make_client(emulator, recorder=recorder)
    request = client.build_rent_interruptable(spec(), 0.3)
    assert request.operation == "podRentInterruptable" and not request.idempotent
    assert client.build_deploy_on_demand(spec()).idempotent is False
    assert client.build_stop("p").idempotent and client.build_terminate("p").idempotent
    assert client.build_lowest_prices().idempotent
    assert recorder.requests == [] and emulator.world.pods == {}


def test_headers_and_no_key_in_the_url(emulator, recorder):
    client = make_client(emulator, recorder=recorder)
    client.gpu_types()
    sent = recorder.requests[0]
    assert sent.headers["Authorization"] == f"Bearer {emulator.api_key}"
    assert sent.headers["User-Agent"] == USER_AGENT == "bidder/0.1.0"
    assert sent.url == httpx.URL(emulator.url) and "api_key" not in str(sent.url)
    assert sent.extensions["timeout"] == {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 5.0}
    make_client(emulator, key=None, recorder=recorder).gpu_types()
    assert "Authorization" not in recorder.requests[-1].headers


def test_bad_arguments_are_config_errors(client):
    for bid in (0, -1, math.nan, math.inf, True, "0.3"):
        with pytest.raises(ConfigError, match="bid_per_gpu"):
            client.build_rent_interruptable(spec(), bid)
    with pytest.raises(ConfigError, match="gpu_count"):
        client.build_bid_resume("p", 0.3, 0)
    with pytest.raises(ConfigError, match="pod id"):
        client.stop("")
    with pytest.raises(ConfigError, match="PodSpec"):
        client.deploy_on_demand({"name": "x"})
    cases = [({"name": ""}, "name"), ({"image_name": None}, "image_name"), ({"gpu_type_id": None}, "gpu_type_id"),
             ({"gpu_count": 0}, "gpu_count"), ({"cloud_type": "secure"}, "cloud_type"),
             ({"volume_in_gb": -1}, "volume_in_gb"), ({"env": (("", "v"),)}, "env"),
             ({"allowed_cuda_versions": "12.4"}, "allowed_cuda_versions")]
    for change, key in cases:
        fields = {"name": "n", "image_name": "img", "gpu_type_id": A6000, **change}
        with pytest.raises(ConfigError) as info:
            PodSpec(**fields)
        assert info.value.key == key
    assert PodSpec(name="t", template_id="tpl", gpu_type_id=A6000).to_input() == {
        "name": "t", "templateId": "tpl", "gpuTypeId": A6000, "gpuCount": 1, "cloudType": "ALL"}


def test_construction_checks_and_lifecycle(emulator):
    with pytest.raises(ConfigError, match="must not carry the key"):
        RunPodClient(api_key="k", url=f"{emulator.url}?api_key=k")
    # Any query or fragment: `?API_KEY=` was sent, and a note printed the URL, key and all.
    for tail in ("?API_KEY=rpa_SECRET", "?token=rpa_SECRET", "?x=1", "#rpa_SECRET"):
        with pytest.raises(ConfigError, match="must not carry the key, a query or a fragment") as info:
            RunPodClient(api_key="k", url=f"{emulator.url}{tail}")
        assert "rpa_SECRET" not in str(info.value)
    with pytest.raises(ConfigError, match="http"):
        RunPodClient(url="ftp://example.com/graphql")
    with pytest.raises(ConfigError, match="empty"):
        RunPodClient(api_key="  ")
    with pytest.raises(ConfigError, match="timeout"):
        RunPodClient(timeout=0)
    own = RunPodClient(api_key=emulator.api_key, url=emulator.url)
    with own:
        assert own.gpu_types()
    with pytest.raises(RuntimeError, match="closed"):
        own.gpu_types()  # the client closed the httpx client it made
    injected = httpx.Client()
    with RunPodClient(api_key=emulator.api_key, url=emulator.url, http=injected) as c:
        c.gpu_types()
    assert not injected.is_closed  # ... but not one it was given
    injected.close()
    assert repr(RunPodClient(api_key="rpa_SECRET", url=emulator.url)) == (
        f"RunPodClient(url={emulator.url!r}, key=set)")
