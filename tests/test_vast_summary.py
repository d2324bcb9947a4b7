"""`summarize_offers`: Vast's offers reduced to one quote per (GPU name, GPU count, tier)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from bidder.vast.offers import Offer
from bidder.vast.summary import OfferFilters, summarize_offers

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def offer(oid: int, gpu: str = "RTX 4090", n: int = 1, min_bid: float | None = 0.3, dph: float | None = 0.5,
          reliability: float = 0.99, verified: bool = True, ram: int = 24564) -> Offer:
    return Offer(id=oid, machine_id=1000 + oid, host_id=7, gpu_name=gpu, num_gpus=n, gpu_ram_mb=ram,
                 min_bid=min_bid, dph_total=dph, reliability=reliability, verified=verified, storage_cost=0.1)


def test_the_cheapest_floor_and_on_demand_per_gpu_of_each_gpu_count_and_tier():
    offers = [offer(1, min_bid=0.30, dph=0.50), offer(2, min_bid=0.26, dph=0.55), offer(3, min_bid=None, dph=0.45),
              offer(4, n=2, min_bid=0.50, dph=1.20), offer(5, n=2, min_bid=0.70, dph=0.90),
              offer(6, gpu="H100 SXM", min_bid=1.1, dph=2.4, ram=81559)]
    quotes = summarize_offers(offers, T0)
    assert [(q.gpu_type_id, q.gpu_count, q.cloud, q.minimum_bid_price, q.uninterruptable_price, q.offer_count)
            for q in quotes] == [("H100 SXM", 1, "VERIFIED", 1.1, 2.4, 1),
                                 ("RTX 4090", 1, "VERIFIED", 0.26, 0.45, 3),
                                 ("RTX 4090", 2, "VERIFIED", 0.25, 0.45, 2)]
    assert {q.market for q in quotes} == {"vast"}
    assert [q.memory_in_gb for q in quotes] == [80, 24, 24]
    assert quotes[1].display_name == "RTX 4090" and quotes[1].ts == T0


def test_default_filters_keep_verified_offers_with_reliability_at_least_0_95():
    offers = [offer(1, min_bid=0.10, verified=False), offer(2, min_bid=0.12, reliability=0.9499),
              offer(3, min_bid=0.31, reliability=0.95), offer(4, min_bid=0.40)]
    [q] = summarize_offers(offers, T0)
    assert (q.minimum_bid_price, q.offer_count, q.cloud) == (0.31, 2, "VERIFIED")
    loose = summarize_offers(offers, T0, OfferFilters(verified_only=False, min_reliability=0.9))
    assert [(q.cloud, q.minimum_bid_price, q.offer_count) for q in loose] == [("UNVERIFIED", 0.10, 1),
                                                                              ("VERIFIED", 0.12, 3)]
    strict = summarize_offers(offers, T0, OfferFilters(min_reliability=0.999))
    assert strict == []


def test_offers_without_a_price_count_but_never_make_a_price_of_zero():
    quotes = summarize_offers([offer(1, min_bid=None, dph=None), offer(2, min_bid=0.0, dph=float("nan"))], T0)
    [q] = quotes
    assert (q.minimum_bid_price, q.uninterruptable_price, q.offer_count, q.has_spot) == (None, None, 2, False)
    assert summarize_offers([offer(1, n=0)], T0) == []  # a machine without GPUs is no offer
    assert summarize_offers([], T0) == []


def test_the_timestamp_is_utc_to_the_second():
    local = datetime(2026, 1, 1, 3, 0, 0, 700_000, tzinfo=timezone(timedelta(hours=3)))
    [q] = summarize_offers([offer(1)], local)
    assert q.ts == T0 and q.ts.tzinfo is UTC


def test_a_reliability_outside_0_to_1_is_refused():
    with pytest.raises(ValueError, match="from 0 to 1"):
        OfferFilters(min_reliability=95)


def test_agrees_with_a_brute_force_reduction_on_random_markets():
    rng = random.Random(7)
    names = ["RTX 4090", "RTX 3090", "A100 SXM4"]
    offers = [offer(i, gpu=rng.choice(names), n=rng.choice([1, 2, 4, 8]),
                    min_bid=rng.choice([None, round(rng.uniform(0.05, 3.0), 4)]),
                    dph=rng.choice([None, round(rng.uniform(0.2, 6.0), 4)]), reliability=rng.uniform(0.8, 1.0),
                    verified=rng.random() < 0.7) for i in range(2000)]
    filters = OfferFilters(verified_only=False, min_reliability=0.9)
    quotes = {(q.gpu_type_id, q.gpu_count, q.cloud): q for q in summarize_offers(offers, T0, filters)}
    kept = [o for o in offers if o.reliability >= 0.9]
    keys = {(o.gpu_name, o.num_gpus, "VERIFIED" if o.verified else "UNVERIFIED") for o in kept}
    assert set(quotes) == keys
    for key in keys:
        group = [o for o in kept if (o.gpu_name, o.num_gpus, "VERIFIED" if o.verified else "UNVERIFIED") == key]
        floors = [o.min_bid / o.num_gpus for o in group if o.min_bid]
        ods = [o.dph_total / o.num_gpus for o in group if o.dph_total]
        q = quotes[key]
        assert q.offer_count == len(group)
        assert q.minimum_bid_price == (min(floors) if floors else None)
        assert q.uninterruptable_price == (min(ods) if ods else None)
