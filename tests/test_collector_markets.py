"""One collector cycle over RunPod (the real emulator over HTTP) and Vast (through its seam: a small
real object with `search_offers()` returning constructed offers): one request per market, one
transaction, a failed market recorded as an error row without blocking the other."""

from __future__ import annotations

import httpx
import pytest

from bidder.collector import RunPodSource, VastSource, as_source, collect_markets
from bidder.errors import AuthError, BidderError, StoreError, TransportError
from bidder.runpod import RetryPolicy, RunPodClient
from bidder.sim import TEST_API_KEY
from bidder.store import Store
from bidder.vast.offers import Offer
from bidder.vast.summary import OfferFilters


class ListedOffers:
    """Vast's side of the seam: answers each search with the offers it holds, or raises `fails`."""

    def __init__(self, offers: list[Offer], fails: Exception | None = None) -> None:
        self.offers, self.fails, self.searches = offers, fails, 0

    def search_offers(self) -> list[Offer]:
        self.searches += 1
        if self.fails is not None:
            raise self.fails
        return list(self.offers)


def offer(oid: int, gpu: str = "RTX 4090", n: int = 1, min_bid: float | None = 0.3, dph: float | None = 0.5,
          reliability: float = 0.99, verified: bool = True) -> Offer:
    return Offer(id=oid, machine_id=500 + oid, host_id=9, gpu_name=gpu, num_gpus=n, gpu_ram_mb=24564,
                 min_bid=min_bid, dph_total=dph, reliability=reliability, verified=verified, storage_cost=0.12,
                 geolocation="Poland, PL")


OFFERS = [offer(1, min_bid=0.30), offer(2, min_bid=0.24, dph=0.44), offer(3, n=4, min_bid=1.2, dph=2.0),
          offer(4, min_bid=0.10, verified=False), offer(5, min_bid=0.11, reliability=0.8),
          offer(6, gpu="RTX 3090", min_bid=None, dph=0.25)]


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "bidder.db") as s:
        yield s


def runpod(emulator, requests: list[str] | None = None, key: str = TEST_API_KEY) -> RunPodClient:
    hooks = {"request": [lambda r: requests.append(r.url.path)]} if requests is not None else {}
    return RunPodClient(api_key=key, url=emulator.url, retry=RetryPolicy(attempts=1),
                        http=httpx.Client(timeout=10.0, event_hooks=hooks))


def test_one_cycle_stores_both_markets_at_one_ts_with_one_request_each(emulator, store):
    requests: list[str] = []
    vast = ListedOffers(OFFERS)
    result = collect_markets([RunPodSource(runpod(emulator, requests)), VastSource(vast)], store,
                             now=emulator.now)
    assert vast.searches == 1 and len(requests) == 2  # lowestPrice + the daily catalogue
    ts = emulator.now.replace(microsecond=0)
    assert result.ts == ts and result.errors == {}
    assert [m.market for m in result.by_market] == ["runpod", "vast"]
    stored = store.price_history()
    assert {q.ts for q in stored} == {ts} and {q.market for q in stored} == {"runpod", "vast"}
    vast_quotes = store.latest_quotes("vast")
    assert [(q.gpu_type_id, q.gpu_count, q.cloud, q.minimum_bid_price, q.uninterruptable_price, q.offer_count)
            for q in vast_quotes] == [("RTX 3090", 1, "VERIFIED", None, 0.25, 1),
                                      ("RTX 4090", 1, "VERIFIED", 0.24, 0.44, 2),
                                      ("RTX 4090", 4, "VERIFIED", 0.3, 0.5, 1)]
    assert result.quotes == len(stored) and result.by_market[1].offers == len(OFFERS)
    assert [o["offer_id"] for o in store.offers_at(ts)] == [1, 2, 3, 4, 5, 6]  # every offer seen, filters aside
    rows = store.collections()
    assert sorted((r["market"], r["error"], r["quotes"]) for r in rows) == [
        ("runpod", None, len(stored) - 3), ("vast", None, 3)]
    assert store.markets("vast") == [("RTX 3090", "VERIFIED", 1, "vast"), ("RTX 4090", "VERIFIED", 1, "vast"),
                                     ("RTX 4090", "VERIFIED", 4, "vast")]
    # the RunPod part is what collect_once always stored
    assert {(q.gpu_type_id, q.cloud) for q in store.latest_quotes("runpod")} == {
        (t, c) for t in emulator.world.gpu_types for c in ("SECURE", "COMMUNITY")}


def test_the_user_filters_decide_which_offers_count(emulator, store):
    loose = OfferFilters(verified_only=False, min_reliability=0.5)
    collect_markets([VastSource(ListedOffers(OFFERS), loose)], store, now=emulator.now)
    tiers = {q.key: (q.minimum_bid_price, q.offer_count) for q in store.latest_quotes()}
    assert tiers[("RTX 4090", "UNVERIFIED", 1, "vast")] == (0.10, 1)
    assert tiers[("RTX 4090", "VERIFIED", 1, "vast")] == (0.11, 3)


def test_a_failed_vast_search_is_its_error_row_and_runpod_is_stored(emulator, store):
    vast = ListedOffers(OFFERS, fails=TransportError("Vast timed out", maybe_executed=False))
    result = collect_markets([runpod(emulator), vast], store, now=emulator.now)
    assert result.errors == {"vast": "TransportError: Vast timed out"}
    assert {q.market for q in store.price_history()} == {"runpod"} and store.offers_at() == []
    assert {(r["market"], r["error"]) for r in store.collections()} == {
        ("runpod", None), ("vast", "TransportError: Vast timed out")}


def test_a_failed_runpod_request_is_its_error_row_and_vast_is_stored(emulator, store):
    emulator.set_faults("500=1")
    result = collect_markets([runpod(emulator), ListedOffers(OFFERS)], store, now=emulator.now)
    assert set(result.errors) == {"runpod"} and result.errors["runpod"].startswith("TransportError")
    assert {q.market for q in store.price_history()} == {"vast"}
    assert {(r["market"], r["error"] is None) for r in store.collections()} == {("runpod", False), ("vast", True)}


def test_when_every_market_fails_the_first_error_is_raised_after_both_rows(emulator, store):
    with pytest.raises(AuthError):
        collect_markets([runpod(emulator, key="wrong-key"), ListedOffers([], fails=AuthError("bad Vast key"))],
                        store, now=emulator.now)
    assert sorted(r["market"] for r in store.collections()) == ["runpod", "vast"]
    assert store.price_history() == []


def test_every_failure_can_be_returned_rather_than_the_first_raised(emulator, store):
    vast_error = AuthError("bad Vast key")
    result = collect_markets([runpod(emulator, key="wrong-key"), ListedOffers([], fails=vast_error)], store,
                             now=emulator.now, raise_if_all_failed=False)
    assert [(p.market, type(p.exception)) for p in result.by_market] == [("runpod", AuthError), ("vast", AuthError)]
    assert result.by_market[1].exception is vast_error and result.quotes == 0
    assert set(result.errors) == {"runpod", "vast"} and store.price_history() == []


def test_a_market_that_cannot_be_stored_leaves_no_part_of_the_cycle(emulator, store):
    broken = Offer(id=9, machine_id=9, host_id=9, gpu_name=None, num_gpus=1, gpu_ram_mb=0,  # type: ignore[arg-type]
                   min_bid=0.2, dph_total=0.4, reliability=0.99, verified=True, storage_cost=0.1)
    with pytest.raises(StoreError):
        collect_markets([runpod(emulator), ListedOffers([broken])], store, now=emulator.now)
    assert store.price_history() == [] and store.collections() == [] and store.gpu_type_infos() == []


def test_sources_are_recognised_by_what_they_can_do(emulator):
    assert isinstance(as_source(runpod(emulator)), RunPodSource)
    assert isinstance(as_source(ListedOffers([])), VastSource)
    with pytest.raises(BidderError, match="not a market source"):
        as_source(object())


def test_an_answer_listing_one_market_or_offer_twice_differently_is_not_stored(emulator, store):
    """RunPod's answer listing the RTX A6000 twice, the second at $0.001 (stored, it replaced the first:
    SECURE's floor read $0.001, and the snapshot counted 78 quotes for 76 rows), or Vast's listing one
    offer id twice with another min_bid: a malformed answer, an error row. An exact repeat is dropped."""
    def twice(payload):
        types = payload["data"]["gpuTypes"]
        first = types[0]
        cheap = {**first, **{k: {**v, "minimumBidPrice": 0.001} for k, v in first.items() if isinstance(v, dict)
                             and "minimumBidPrice" in v}}
        return {"data": {"gpuTypes": [*types, cheap]}}

    emulator.malform("lowestPrices", twice)
    result = collect_markets([RunPodSource(runpod(emulator)), VastSource(ListedOffers([*OFFERS, offer(1, min_bid=0.0001)]))],
                             store, now=emulator.now, raise_if_all_failed=False)
    errors = {part.market: part.error for part in result.by_market}
    assert "twice, with different values" in errors["runpod"] and "twice, with different values" in errors["vast"]
    assert store.price_history() == []
    again = collect_markets([VastSource(ListedOffers([*OFFERS, OFFERS[0]]))], store, now=emulator.now)
    assert again.by_market[0].error is None and again.by_market[0].offers == len(OFFERS)
