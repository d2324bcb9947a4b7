"""Which Vast offer a spot create rents: the one rule the launch (`bidder.vast_pods`) rents by and the
plan (`bidder.advisor`) prices a bid's disk by, so a plan's storage is the rented instance's.

    offers = of_market(found, "RTX 4090", 1, "VERIFIED", OfferFilters())
    offer = min((o for o in offers if takes_bid(o, 0.135)), key=lambda o: spot_rank(o, 3000))  # the launch
    steps = spot_storage_steps(offers, disk_gb=3000)   # the plan: ((bid from, USD/GB-month), ...)

Pure: no I/O. Pay-as-bid: every offer a bid wins bills the bid, so what differs is the storage of
the job's disk; of the offers whose spot floor (`min_bid` per GPU) is at or under the bid, the launch
rents the one whose disk bills least (then the lowest floor, the most reliable, the lowest id).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from bidder.vast.offers import Offer
from bidder.vast.summary import OfferFilters, passes, tier_of

__all__ = ["of_market", "spot_rank", "spot_storage_steps", "takes_bid"]

_SLACK = 1e-9


def of_market(offers: Iterable[Offer], gpu_name: str, num_gpus: int, tier: str, filters: OfferFilters) -> list[Offer]:
    """The offers a create on this GPU name, count and tier may take: those passing `filters` (a job that
    asked for the unverified tier takes unverified offers even when collection skips them)."""
    wanted = OfferFilters(verified_only=filters.verified_only and tier != "UNVERIFIED",
                          min_reliability=filters.min_reliability)
    return [o for o in offers if o.gpu_name == gpu_name and o.num_gpus == num_gpus and passes(o, wanted)
            and (tier in ("ALL", "ANY") or tier_of(o) == tier)]


def takes_bid(offer: Offer, bid_per_gpu: float) -> bool:
    """Whether a bid of `bid_per_gpu` wins the offer now (its floor at or under the bid)."""
    floor = offer.spot_floor_per_gpu
    return floor is not None and floor <= bid_per_gpu + _SLACK


def spot_rank(offer: Offer, disk_gb: float) -> tuple[float, float, float, int]:
    """The launch's order among the offers a bid wins, best first: the disk's storage (by the lowest floor
    a bid once rented a disk billed $0.298/h beside another's $0.178/h), then the floor, reliability, id."""
    return (round(offer.storage_per_hr(disk_gb), 6), offer.spot_floor_per_gpu or 0.0, -offer.reliability, offer.id)


def spot_storage_steps(offers: Sequence[Offer], disk_gb: float) -> tuple[tuple[float, float], ...]:
    """The storage price (USD per GB-month) of the offer a bid rents (the best by `spot_rank` of those
    it wins), as a step function of the bid: ((bid from, price), ...), bids rising, prices falling (a
    higher bid wins more offers). Empty: no offer takes a bid."""
    steps: list[tuple[float, float]] = []
    best: Offer | None = None
    ranked = sorted((o for o in offers if o.spot_floor_per_gpu is not None and math.isfinite(o.spot_floor_per_gpu)),
                    key=lambda o: o.spot_floor_per_gpu or 0.0)
    for i, o in enumerate(ranked):
        if best is None or spot_rank(o, disk_gb) < spot_rank(best, disk_gb):
            best = o
        floor = o.spot_floor_per_gpu or 0.0
        last = i + 1 == len(ranked) or (ranked[i + 1].spot_floor_per_gpu or 0.0) > floor + _SLACK
        if last and (not steps or steps[-1][1] != best.storage_cost):
            steps.append((floor, float(best.storage_cost)))
    return tuple(steps)
