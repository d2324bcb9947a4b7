"""The Vast client against the emulator over real HTTP: every call, every error class, the
request shapes (Bearer only, per-instance price, dry-run twins)."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest
from vast_helpers import cheapest, fast_retry, spec, vast_client

from bidder.errors import (
    AuthError,
    ConfigError,
    GraphQLError,
    NoCapacity,
    NotInterruptible,
    PodNotFound,
    RateLimited,
    TransportError,
)
from bidder.sim import Emulator
from bidder.vast import InstanceState, VastClient, per_instance
from bidder.vast.operations import VastRequest


@pytest.fixture
def emu():
    with Emulator(seed=0) as e:
        yield e


@pytest.fixture
def vast(emu):
    with vast_client(emu) as c:
        yield c


def test_search_returns_every_offer_with_floor_and_on_demand_in_one_request(emu):
    sent: list[httpx.Request] = []
    with httpx.Client(event_hooks={"request": [sent.append]}) as http, vast_client(emu, http=http) as vast:
        offers = vast.search_offers()
        assert len(sent) == 1
        body = json.loads(sent[0].content)
        assert sent[0].method == "POST" and sent[0].url.path == "/api/v0/bundles/"
        assert body["type"] == "on-demand" and body["rentable"] == {"eq": True}
        assert sent[0].headers["Authorization"] == f"Bearer {emu.api_key}"
        assert "api_key" not in str(sent[0].url)
        assert len(offers) > 100
        assert {o.num_gpus for o in offers} == {1, 2, 4, 8}
        assert all(o.min_bid is not None and o.dph_total is not None for o in offers)
        assert sum(o.min_bid < o.dph_total for o in offers) > 0.8 * len(offers)  # bids rarely beat on-demand
        assert {o.verified for o in offers} == {True, False}
        # Filters go to the server and come back applied.
        some = vast.search_offers(["RTX 4090", "H100 SXM"], num_gpus=[1, 2], verified=True, min_reliability=0.95)
        assert some and all(o.gpu_name in ("RTX 4090", "H100 SXM") and o.num_gpus in (1, 2) and o.verified
                            and o.reliability >= 0.95 for o in some)
        assert json.loads(sent[-1].content)["gpu_name"] == {"in": ["RTX 4090", "H100 SXM"]}


def test_search_works_without_a_key(emu):
    with vast_client(emu, key=None) as anonymous:
        assert anonymous.search_offers(num_gpus=1)
        with pytest.raises(AuthError):
            anonymous.instances()


def test_create_interruptible_sends_the_per_instance_price_and_checks_is_bid(emu):
    sent: list[httpx.Request] = []
    with httpx.Client(event_hooks={"request": [sent.append]}) as http, vast_client(emu, http=http) as vast:
        offer = cheapest(vast.search_offers(num_gpus=4), 4)
        bid = offer.spot_floor_per_gpu + 0.05
        inst = vast.create_interruptible(offer.id, spec(), bid, num_gpus=4)
        create = next(r for r in sent if r.method == "PUT")
        assert create.url.path == f"/api/v0/asks/{offer.id}/"
        body = json.loads(create.content)
        assert body["price"] == pytest.approx(per_instance(bid, 4)) and body["label"] == "bidder-job-1"
        assert sent[-1].method == "GET"  # read back after the create
        assert inst.is_bid and inst.state is InstanceState.RUNNING and inst.num_gpus == 4
        assert inst.bid_per_gpu == pytest.approx(bid)
        assert inst.machine_id == offer.machine_id and inst.label == "bidder-job-1"


def test_a_server_that_rents_on_demand_despite_the_bid_fails_loudly_and_the_instance_is_destroyed(emu, vast):
    emu.vast.ignore_price = True
    offer = cheapest(vast.search_offers(num_gpus=1), 1)
    with pytest.raises(NotInterruptible) as caught:
        vast.create_interruptible(offer.id, spec(), 0.5, num_gpus=1)
    assert caught.value.destroyed and caught.value.instance_id is not None
    assert vast.instances() == []
    with pytest.raises(PodNotFound):
        vast.instance(caught.value.instance_id)


def test_a_losing_bid_is_destroyed_and_raises_no_capacity(emu, vast):
    offer = cheapest(vast.search_offers(num_gpus=1), 1)
    with pytest.raises(NoCapacity) as caught:
        vast.create_interruptible(offer.id, spec(), offer.spot_floor_per_gpu * 0.5, num_gpus=1)
    assert "destroyed" in str(caught.value)
    assert vast.instances() == []  # nothing left billing storage
    assert sum(i.destroyed for i in emu.vast.instances.values()) == 1


def test_create_on_demand_change_bid_stop_start_destroy(emu, vast):
    offers = vast.search_offers(num_gpus=1)
    od = vast.create_on_demand(offers[0].id, spec("od"))
    assert od.is_bid is False and od.state is InstanceState.RUNNING
    offer = cheapest([o for o in offers if o.id != offers[0].id], 1)
    inst = vast.create_interruptible(offer.id, spec("bid"), offer.spot_floor_per_gpu, num_gpus=1)
    emu.vast.set_competitor(offer.machine_id, offer.spot_floor_per_gpu * 2)
    assert vast.instance(inst.id).state is InstanceState.PAUSED_OUTBID
    vast.change_bid(inst.id, offer.spot_floor_per_gpu * 2.5, 1)
    back = vast.instance(inst.id)
    assert back.state is InstanceState.RUNNING and back.bid_price == pytest.approx(offer.spot_floor_per_gpu * 2.5)
    vast.stop(inst.id)
    assert vast.instance(inst.id).state is InstanceState.STOPPED
    vast.start(inst.id)
    assert vast.instance(inst.id).state is InstanceState.RUNNING
    vast.destroy(inst.id)
    vast.destroy(inst.id)  # already gone: done
    with pytest.raises(PodNotFound):
        vast.instance(inst.id)
    with pytest.raises(PodNotFound):
        vast.change_bid(inst.id, 1.0, 1)
    with pytest.raises(PodNotFound):
        vast.stop(inst.id)
    assert [i.id for i in vast.instances()] == [od.id]


def test_instances_pages_and_find_by_label(emu, vast):
    offers = vast.search_offers(num_gpus=1)
    made = [vast.create_on_demand(o.id, spec(f"job-{n}")).id for n, o in enumerate(offers[:30])]
    listed = vast.instances()
    assert sorted(i.id for i in listed) == sorted(made)  # 30 > one page of 25
    assert [i.id for i in vast.find_by_label("job-7")] == [made[7]]
    assert vast.find_by_label("nobody") == []


def test_a_lost_create_is_sent_once_and_found_by_its_label(emu, vast):
    offer = cheapest(vast.search_offers(num_gpus=2), 2)
    emu.set_faults("lost_create=1")
    with pytest.raises(TransportError) as caught:
        vast.create_interruptible(offer.id, spec("lost-1"), offer.spot_floor_per_gpu, num_gpus=2)
    assert caught.value.maybe_executed
    emu.set_faults(None)
    assert len(emu.vast.instances) == 1  # sent once, never retried
    found = vast.find_by_label("lost-1")
    assert len(found) == 1 and found[0].is_bid


def test_offer_errors_map_to_no_capacity(emu, vast):
    offers = vast.search_offers(num_gpus=1)
    with pytest.raises(NoCapacity) as unknown:
        vast.create_on_demand(1, spec())
    assert unknown.value.status == 404 and "no_such_ask" in str(unknown.value)
    taken = vast.create_on_demand(offers[0].id, spec("first"))
    with pytest.raises(NoCapacity) as gone:
        vast.create_on_demand(offers[0].id, spec("second"))
    assert gone.value.status == 410
    assert taken.id in {i.id for i in vast.instances()}


def test_auth_errors(emu):
    with vast_client(emu, key="wrong-key") as wrong, pytest.raises(AuthError) as caught:
        wrong.search_offers()
    # Both places a key comes from are named: one from the config file was told "check VAST_API_KEY".
    assert caught.value.status == 401 and "check VAST_API_KEY, or vast_api_key in ~/.config/bidder/config.toml" \
        in str(caught.value)
    with vast_client(emu, key=None) as anonymous, pytest.raises(AuthError):
        anonymous.create_on_demand(1, spec())


def test_429_is_retried_with_a_computed_backoff_and_reported(emu):
    sleeps: list[float] = []
    emu.set_faults("429=1")
    with vast_client(emu, attempts=3, sleeps=sleeps) as vast, pytest.raises(RateLimited) as caught:
        vast.search_offers()
    assert len(sleeps) == 2 and sleeps[1] >= sleeps[0] > 0
    assert caught.value.retry_after == pytest.approx(0.04)  # 0.01 * 2**2: what to wait next
    with vast_client(emu) as vast, pytest.raises(RateLimited) as create:
        vast.create_on_demand(1, spec())
    assert create.value.retry_after == pytest.approx(0.01) and emu.vast.instances == {}
    emu.set_faults("429=0.5")
    with vast_client(emu, attempts=6) as vast:
        assert vast.search_offers(num_gpus=1)


def test_server_errors_and_broken_connections_are_transport_errors(emu, vast):
    offer = cheapest(vast.search_offers(num_gpus=1), 1)
    for fault in ("500=1", "drop=1", "timeout=1,delay=0.5"):
        emu.set_faults(fault)
        with vast_client(emu, attempts=2, timeout=0.2) as flaky:
            with pytest.raises(TransportError):
                flaky.instances()
            with pytest.raises(TransportError) as create:
                flaky.create_on_demand(offer.id, spec(f"f-{fault[:3]}"))
            assert create.value.maybe_executed  # the client cannot tell: look it up by label
    emu.set_faults(None)
    time.sleep(0.8)  # the delayed answer executes after its delay
    assert [i.label for i in vast.instances()] == ["f-tim"]  # only the late answer had executed
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with VastClient(api_key="k", url=f"http://127.0.0.1:{port}", retry=fast_retry(1)) as nowhere:
        with pytest.raises(TransportError) as refused:
            nowhere.search_offers()
        assert refused.value.maybe_executed is False and refused.value.market == "vast"


def test_a_url_with_no_vast_api_behind_it_says_to_check_the_url_not_no_capacity(emu):
    # The emulator's unknown route (as a mistyped path on any server) answers 404 without Vast's fields.
    with VastClient(api_key=emu.api_key, url=f"{emu.vast_url}/apii", retry=fast_retry(1)) as wrong:
        for call in (wrong.search_offers, wrong.instances):
            with pytest.raises(TransportError) as info:
                call()
            assert "HTTP 404 at /apii/api/v" in str(info.value) and "is the Vast URL right?" in str(info.value)
            assert not isinstance(info.value, NoCapacity)


def test_invalid_arguments_are_api_refusals_and_bad_input_is_refused_locally(emu, vast):
    offer = cheapest(vast.search_offers(num_gpus=1), 1)
    inst = vast.create_interruptible(offer.id, spec(), offer.spot_floor_per_gpu, num_gpus=1)
    with pytest.raises(GraphQLError) as refused:
        vast.execute(VastRequest("change_bid", "PUT", f"/api/v0/instances/bid_price/{inst.id}/",
                                 {"client_id": "me", "price": 0.0001}))
    assert refused.value.status == 400 and "invalid_args" in str(refused.value)
    with pytest.raises(ConfigError):
        vast.change_bid(inst.id, 40.0, 1)  # above 32 per GPU
    with pytest.raises(ConfigError):
        vast.create_interruptible(offer.id, spec(), 0.0, num_gpus=1)
    for tail in ("?api_key=k", "?API_KEY=k", "?token=k", "#k"):
        with pytest.raises(ConfigError, match="must not carry the key, a query or a fragment"):
            VastClient(api_key="k", url=f"https://console.vast.ai/{tail}")


def test_dry_run_twins_show_the_exact_request_with_the_key_masked(emu, vast):
    req = vast.build_create_interruptible(123, spec(), 0.2, num_gpus=4)
    shown = json.loads(req.to_text(vast.url))
    assert shown["method"] == "PUT" and shown["url"] == f"{emu.vast_url}/api/v0/asks/123/"
    assert shown["body"]["price"] == pytest.approx(0.8) and shown["headers"]["Authorization"] == "Bearer ***"
    assert vast.build_change_bid(7, 0.25, 2).body == {"client_id": "me", "price": 0.5}
    assert vast.build_stop(7).body == {"state": "stopped"} and vast.build_start(7).body == {"state": "running"}
    assert vast.build_destroy(7).method == "DELETE"
    assert "price" not in (vast.build_create_on_demand(5, spec()).body or {})
    for r in (req, vast.build_destroy(7), vast.build_change_bid(7, 0.25, 2)):
        assert emu.api_key not in r.to_text(vast.url)
    assert emu.vast.instances == {}  # building sends nothing


def test_sim_pods_accounts_for_vast_instances_too(emu, vast):
    # GET /sim/pods is the emulator's own account of every pod: the Vast ledger is checked against it too.
    offer = cheapest(vast.search_offers(num_gpus=1), 1)
    inst = vast.create_interruptible(offer.id, spec("acct"), offer.spot_floor_per_gpu, num_gpus=1)
    emu.advance(3600)
    emu.vast.set_competitor(offer.machine_id, offer.spot_floor_per_gpu * 2)  # outbid: paused
    emu.advance(1800)
    body = httpx.get(emu.base_url + "/sim/pods", timeout=10).json()
    (row,) = body["vast_instances"]
    assert row["id"] == inst.id and row["label"] == "acct" and row["type"] == "bid" and not row["destroyed"]
    assert row["interruptions"] >= 1 and 0 < row["running_hours"] <= 1.0 + 1e-9  # paused for the last half hour
    assert row["running_hours"] == pytest.approx(emu.vast.instances[inst.id].running_s / 3600)
    assert row["billed"] == pytest.approx(emu.vast.true_spend(inst.id)) and row["billed"] > 0
    vast.destroy(inst.id)
    (row,) = httpx.get(emu.base_url + "/sim/pods", timeout=10).json()["vast_instances"]
    assert row["destroyed"] is True


def test_an_offers_verification_is_read_from_vasts_text_not_a_flag():
    # Vast's offers say `verification` ("verified", "unverified", "deverified"); `verified` is a search
    # filter's name. Read as a flag, every real offer was unverified and the default tier found none.
    from bidder.vast.types import parse_offer

    base = {"id": 1, "machine_id": 2, "gpu_name": "RTX 4090", "num_gpus": 1, "min_bid": 0.2, "dph_total": 0.4}
    assert parse_offer({**base, "verification": "verified"}).verified is True
    assert parse_offer({**base, "verification": "unverified"}).verified is False
    assert parse_offer({**base, "verification": "deverified"}).verified is False
    assert parse_offer({**base, "verified": True}).verified is True  # an answer that carries the flag
    assert parse_offer(base).verified is False
