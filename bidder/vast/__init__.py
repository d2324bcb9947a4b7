"""bidder's Vast.ai client: interruptible (bid) and on-demand instances over Vast's REST API.

    from bidder.vast import VastClient, InstanceSpec, Instance, InstanceState, Offer, DEFAULT_URL

Modules: `offers` (Offer, and the per-instance <-> per-GPU conversion, in one place), `types`
(Instance, InstanceState, InstanceSpec, parsers), `operations` (VastRequest and one builder per
call; what --dry-run prints), `errors_map` (Vast's answers -> BidderError subclasses), `client`
(VastClient).
"""

from __future__ import annotations

from bidder.vast.client import DEFAULT_TIMEOUT, DEFAULT_URL, VastClient
from bidder.vast.offers import Offer, per_gpu, per_instance
from bidder.vast.operations import VastRequest
from bidder.vast.types import Instance, InstanceSpec, InstanceState, instance_state

__all__ = [
    "DEFAULT_TIMEOUT",
    "DEFAULT_URL",
    "Instance",
    "InstanceSpec",
    "InstanceState",
    "Offer",
    "VastClient",
    "VastRequest",
    "instance_state",
    "per_gpu",
    "per_instance",
]
