"""The client when RunPod has dropped the spot price fields (the emulator's second stage of the
spot switch): the validation error maps to SpotUnsupported, `lowest_prices` and `gpu_types` ask
once more without the fields, and the client asks without them from then on. Real HTTP, the
requests counted at the transport seam."""

from __future__ import annotations

import logging

import pytest
from client_helpers import Recorder, fast_retry, make_client

from bidder.errors import GraphQLError, SpotUnsupported
from bidder.runpod import GraphQLRequest
from bidder.runpod.operations import SPOT_PRICE_FIELDS, build_gpu_types, build_lowest_prices

FIELD_ERRORS = {
    "minimumBidPrice": 'Cannot query field "minimumBidPrice" on type "LowestPrice".',
    "secureSpotPrice": 'Cannot query field "secureSpotPrice" on type "GpuType".',
    "communitySpotPrice": 'Cannot query field "communitySpotPrice" on type "GpuType".',
}


def _asks_spot(body: dict) -> bool:
    return any(name in body["query"] for name in SPOT_PRICE_FIELDS)


@pytest.fixture
def recorder():
    rec = Recorder()
    yield rec
    rec.close()


@pytest.mark.parametrize("field", sorted(FIELD_ERRORS))
def test_each_missing_spot_field_is_spot_unsupported(emulator, recorder, field):
    emulator.set_spot_enabled(False, fields=False)
    client = make_client(emulator, recorder=recorder)
    query = f"query {{ gpuTypes {{ id lowestPrice(input: {{gpuCount: 1}}) {{ {field} }} }} }}"
    if field != "minimumBidPrice":
        query = f"query {{ gpuTypes {{ id {field} }} }}"
    with pytest.raises(SpotUnsupported) as info:
        client.execute(GraphQLRequest("gpuTypes", query, idempotent=True))
    assert info.value.status == 400
    assert info.value.messages[0].startswith(FIELD_ERRORS[field])
    assert "RunPod no longer offers spot pods" in str(info.value)
    assert len(recorder.requests) == 1  # a validation error is not retried, not even by execute


def test_an_unknown_non_spot_field_stays_a_graphql_error(emulator, recorder):
    emulator.set_spot_enabled(False, fields=False)
    client = make_client(emulator, recorder=recorder)
    with pytest.raises(GraphQLError) as info:
        client.execute(GraphQLRequest("gpuTypes", "query { gpuTypes { id stockLevel } }", idempotent=True))
    assert type(info.value) is GraphQLError


def test_the_reduced_documents_come_from_the_same_builders():
    full, reduced = build_lowest_prices((1, 2)), build_lowest_prices((1, 2), spot=False)
    assert reduced.variables == full.variables and reduced.operation == full.operation
    assert not _asks_spot(reduced.payload()) and _asks_spot(full.payload())
    # Only the spot fields differ: put them back and the two documents match word for word.
    assert [w for w in full.query.split() if w not in SPOT_PRICE_FIELDS] == reduced.query.split()
    assert not _asks_spot(build_gpu_types(spot=False).payload())


def test_lowest_prices_falls_back_once_and_remembers(emulator, recorder):
    emulator.set_spot_enabled(False, fields=False)
    client = make_client(emulator, recorder=recorder, retry=fast_retry())
    assert client.spot_fields_supported is None
    quotes = client.lowest_prices((1, 2), ts=emulator.now)
    # One refused request with the spot fields, one without: exactly one extra request.
    assert [_asks_spot(b) for b in recorder.bodies] == [True, False]
    assert client.spot_fields_supported is False
    assert len(quotes) == len(emulator.world.gpu_types) * 2 * 2
    assert all(q.minimum_bid_price is None and q.list_spot_price is None for q in quotes)
    assert sum(q.uninterruptable_price is not None for q in quotes) > len(quotes) // 2
    expected = emulator.world.lowest_price("NVIDIA RTX A6000", 1, False)["uninterruptablePrice"]
    [a6000] = [q for q in quotes if q.gpu_type_id == "NVIDIA RTX A6000" and q.cloud == "COMMUNITY"
               and q.gpu_count == 1]
    assert a6000.uninterruptable_price == pytest.approx(expected)
    # Later calls send the reduced documents straight away: one request each.
    client.lowest_prices((1, 2), ts=emulator.now)
    types = client.gpu_types()
    assert [_asks_spot(b) for b in recorder.bodies] == [True, False, False, False]
    assert types and all(t.secure_spot_price is None and t.community_spot_price is None for t in types)
    assert not _asks_spot(client.build_lowest_prices().payload())  # what a dry run would show


def test_gpu_types_falls_back_too_and_teaches_lowest_prices(emulator, recorder):
    emulator.set_spot_enabled(False, fields=False)
    client = make_client(emulator, recorder=recorder)
    types = client.gpu_types()
    assert len(types) == len(emulator.world.gpu_types)
    assert all(t.secure_spot_price is None for t in types) and any(t.secure_price for t in types)
    client.lowest_prices(ts=emulator.now)
    assert [_asks_spot(b) for b in recorder.bodies] == [True, False, False]


def test_while_the_fields_exist_nothing_changes(emulator, recorder):
    """Spot on, and spot mutations gone but the fields still there (reading null): one request."""
    client = make_client(emulator, recorder=recorder)
    quotes = client.lowest_prices(ts=emulator.now)
    assert client.spot_fields_supported is True and any(q.minimum_bid_price for q in quotes)
    emulator.set_spot_enabled(False)
    quotes = client.lowest_prices(ts=emulator.now)
    assert client.spot_fields_supported is True and not any(q.minimum_bid_price for q in quotes)
    assert [_asks_spot(b) for b in recorder.bodies] == [True, True]


def test_the_memory_lasts_the_clients_life_only(emulator, recorder):
    emulator.set_spot_enabled(False, fields=False)
    old = make_client(emulator, recorder=recorder)
    old.lowest_prices(ts=emulator.now)
    emulator.set_spot_enabled(True)  # the fields come back
    assert not any(q.minimum_bid_price for q in old.lowest_prices(ts=emulator.now))
    fresh = make_client(emulator)
    assert any(q.minimum_bid_price for q in fresh.lowest_prices(ts=emulator.now))
    assert fresh.spot_fields_supported is True


def test_the_key_never_appears_in_what_the_fallback_says(emulator, recorder, caplog):
    emulator.set_spot_enabled(False, fields=False)
    client = make_client(emulator, recorder=recorder)
    with caplog.at_level(logging.DEBUG, logger="bidder"):
        client.lowest_prices(ts=emulator.now)
        client.gpu_types()
    assert "asking again without the spot price fields" in caplog.text
    assert emulator.api_key not in caplog.text
    with pytest.raises(SpotUnsupported) as info:
        client.execute(build_lowest_prices())
    assert emulator.api_key not in f"{info.value} {info.value!r} {info.value.messages}"
    assert emulator.api_key not in repr(client)
