"""Vast's many offers per GPU type reduced to bidder's quotes: the market summary the optimizer reads.

For each (GPU name, GPU count, tier) among the offers that pass the user's filters: the cheapest spot
floor (`min_bid` per GPU) and the cheapest on-demand price (`dph_total` per GPU), each over the offers
that have one, and how many offers passed. The tier is the offer's verification (`VERIFIED` /
`UNVERIFIED`), stored as the quote's `cloud`, so a job's `--cloud` picks it as it picks a RunPod cloud.
The GPU type id is Vast's own name ("RTX 4090"), with market "vast".

    quotes = summarize_offers(offers, ts, OfferFilters(verified_only=True, min_reliability=0.95))

Pure: no I/O, no clock. Prices become per GPU only through `bidder.vast.offers` (the one place).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from bidder.models import PriceQuote
from bidder.vast.offers import Offer

__all__ = ["DEFAULT_MIN_RELIABILITY", "MARKET", "TIERS", "OfferFilters", "offers_of", "passes", "summarize_offers",
           "tier_of"]

MARKET = "vast"
#: Tiers of Vast's quotes (their `cloud`), from the offer's `verified` flag.
TIERS: tuple[str, ...] = ("VERIFIED", "UNVERIFIED")
#: Below this reliability score an offer is left out by default (Vast's hosts range from 0.5 to 0.999).
DEFAULT_MIN_RELIABILITY = 0.95


@dataclass(frozen=True)
class OfferFilters:
    """Which offers count: verified machines only (default) and a minimum reliability (0-1)."""

    verified_only: bool = True
    min_reliability: float = DEFAULT_MIN_RELIABILITY

    def __post_init__(self) -> None:
        if not (isinstance(self.min_reliability, (int, float)) and 0.0 <= float(self.min_reliability) <= 1.0):
            raise ValueError(f"the minimum reliability is a score from 0 to 1, got {self.min_reliability!r}")


def tier_of(offer: Offer) -> str:
    return TIERS[0] if offer.verified else TIERS[1]


def passes(offer: Offer, filters: OfferFilters) -> bool:
    """True when the offer is one the user accepts (and describes a machine with GPUs)."""
    if offer.num_gpus < 1:
        return False
    if filters.verified_only and not offer.verified:
        return False
    reliability = float(offer.reliability)
    return not math.isnan(reliability) and reliability >= filters.min_reliability


def _positive(value: float | None) -> float | None:
    """A price, or None for missing, NaN or <= 0 (no price: never a free machine)."""
    if value is None or math.isnan(value) or value <= 0:
        return None
    return value


def summarize_offers(offers: Iterable[Offer], ts: datetime, filters: OfferFilters | None = None
                     ) -> list[PriceQuote]:
    """One quote per (GPU name, GPU count, tier) among the offers passing `filters`, at `ts`.

    `minimum_bid_price` is the cheapest `min_bid / num_gpus` (None: no offer takes a bid),
    `uninterruptable_price` the cheapest `dph_total / num_gpus` (None: none states one), both USD per
    GPU-hour; `offer_count` how many offers passed; `memory_in_gb` the VRAM per GPU. Ordered by key.
    """
    filters = filters or OfferFilters()
    stamp = ts.astimezone(UTC).replace(microsecond=0)
    floors: dict[tuple[str, int, str], float | None] = {}
    on_demand: dict[tuple[str, int, str], float | None] = {}
    counts: dict[tuple[str, int, str], int] = {}
    memory: dict[tuple[str, int, str], int | None] = {}
    for offer in offers:
        if not passes(offer, filters):
            continue
        key = (offer.gpu_name, int(offer.num_gpus), tier_of(offer))
        counts[key] = counts.get(key, 0) + 1
        floor = _positive(offer.spot_floor_per_gpu)
        od = _positive(offer.on_demand_per_gpu)
        best_floor, best_od = floors.get(key), on_demand.get(key)
        floors[key] = floor if best_floor is None or (floor is not None and floor < best_floor) else best_floor
        on_demand[key] = od if best_od is None or (od is not None and od < best_od) else best_od
        if memory.get(key) is None and offer.gpu_ram_mb:
            memory[key] = round(offer.gpu_ram_mb / 1024)
    return [PriceQuote(ts=stamp, gpu_type_id=name, cloud=tier, gpu_count=count, minimum_bid_price=floors[key],
                       uninterruptable_price=on_demand[key], memory_in_gb=memory.get(key), display_name=name,
                       market=MARKET, offer_count=counts[key])
            for key in sorted(counts) for name, count, tier in [key]]


def offers_of(quote: PriceQuote, offers: Iterable[Offer]) -> list[Offer]:
    """The offers `quote` summarises, among `offers` (its snapshot's: every offer is stored, filters
    aside): its GPU name, count and tier's that passed the collection's filters. Those filters are not
    stored, but a minimum reliability keeps a tier's most reliable offers: they are the quote's
    `offer_count` most reliable (without a count, those passing the default filters)."""
    tier = [o for o in offers if (o.gpu_name, int(o.num_gpus), tier_of(o)) == (quote.gpu_type_id, quote.gpu_count,
                                                                             quote.cloud)
            and passes(o, OfferFilters(verified_only=False, min_reliability=0.0))]
    if quote.offer_count is None:
        return [o for o in tier if passes(o, OfferFilters(verified_only=False))]  # (the default reliability)
    return sorted(tier, key=lambda o: -float(o.reliability))[:quote.offer_count]
