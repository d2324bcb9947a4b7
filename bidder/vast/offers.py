"""Vast.ai offers (asks) as bidder sees them, and the one place per-instance prices become per GPU.

Vast prices an offer per instance (all its GPUs); bidder thinks in USD per GPU-hour. Every
conversion between the two goes through `per_gpu` / `per_instance` here, nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["SEARCH_DISK_GB", "Offer", "OfferList", "per_gpu", "per_instance", "storage_per_hour"]

#: The disk a search prices (its `dph_total` includes this much storage): the collector's on-demand quotes.
SEARCH_DISK_GB = 10.0


def per_gpu(instance_price: float | None, num_gpus: int) -> float | None:
    """USD per instance-hour -> USD per GPU-hour (None stays None)."""
    if instance_price is None:
        return None
    if num_gpus < 1:
        raise ValueError(f"an offer has at least one GPU, got {num_gpus}")
    return instance_price / num_gpus


def per_instance(gpu_price: float, num_gpus: int) -> float:
    """USD per GPU-hour -> USD per instance-hour (what Vast's `price` field takes)."""
    if num_gpus < 1:
        raise ValueError(f"an offer has at least one GPU, got {num_gpus}")
    return gpu_price * num_gpus


def storage_per_hour(storage_cost: float, disk_gb: float) -> float:
    """USD per hour Vast bills for `disk_gb` of an instance's disk at `storage_cost` USD per GB-month
    (a month of 720 hours), whether the instance runs, is paused or is stopped."""
    return storage_cost * disk_gb / 720.0


@dataclass(frozen=True)
class Offer:
    """One Vast offer from a search, prices as Vast states them (per instance, USD per hour).

    `id` is the ask id used to rent; it changes when the machine is relisted, so time series key on
    `(machine_id, num_gpus)`. `min_bid` is the lowest bid that runs it as interruptible now (None:
    no bid possible); `dph_total` its on-demand price including storage for the searched disk size.
    """

    id: int
    machine_id: int
    host_id: int
    gpu_name: str
    num_gpus: int
    gpu_ram_mb: int
    min_bid: float | None
    dph_total: float | None
    reliability: float
    verified: bool
    storage_cost: float
    geolocation: str | None = None

    @property
    def spot_floor_per_gpu(self) -> float | None:
        return per_gpu(self.min_bid, self.num_gpus)

    @property
    def on_demand_per_gpu(self) -> float | None:
        return per_gpu(self.dph_total, self.num_gpus)

    def storage_per_hr(self, disk_gb: float) -> float:
        """What an instance of this offer with `disk_gb` of disk bills for storage, USD per hour."""
        return storage_per_hour(self.storage_cost, disk_gb)


class OfferList(list[Offer]):
    """A search's offers (a list), and whether they are all the search matched: `complete` is False
    when the answers still filled the search's limit after the last request bidder allows itself
    (the dearest offers are missing); `requests` is how many searches were sent."""

    def __init__(self, offers: Iterable[Offer] = (), *, complete: bool = True, requests: int = 1) -> None:
        super().__init__(offers)
        self.complete, self.requests = complete, requests
