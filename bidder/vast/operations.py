"""The REST requests bidder sends to Vast, one builder per call.

Every builder returns a `VastRequest`: method, path (under the base URL), query parameters, JSON
body, and whether sending it twice is harmless (`idempotent`: what lets the client retry it).
`VastClient` sends exactly what these builders return; `--dry-run` prints the same object
(`to_text`), with the Authorization header shown masked, so a dry run shows the real request. A
request never holds the API key.

    req = build_create(offer_id=123, spec=spec, price=0.9)
    req.method, req.path       # "PUT", "/api/v0/asks/123/"
    req.body                   # {"client_id": "me", ..., "price": 0.9}

Paths and body shapes follow VAST_API.md ([docs] unless said otherwise).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from bidder.errors import ConfigError
from bidder.vast.offers import SEARCH_DISK_GB
from bidder.vast.types import InstanceSpec

__all__ = [
    "DEFAULT_SEARCH_LIMIT",
    "INSTANCES_PAGE",
    "MAX_BID_PER_GPU",
    "MAX_PRICE",
    "MAX_SEARCH_PAGES",
    "MIN_PRICE",
    "SEARCH_TYPE",
    "VastRequest",
    "build_change_bid",
    "build_create",
    "build_destroy",
    "build_instance",
    "build_instances",
    "build_search",
    "build_set_state",
    "check_price",
]

#: `price` bounds of a create, USD per instance-hour [docs].
MIN_PRICE = 0.001
MAX_PRICE = 128.0
#: change-bid caps the per-instance price at this times the GPU count [docs].
MAX_BID_PER_GPU = 32.0
#: Offers asked for in one search. [?] Vast's own cap on `limit` is not documented; gpuhunt asks 3000.
DEFAULT_SEARCH_LIMIT = 5000
#: Searches one `search_offers` may send: an answer that fills its limit is followed by the next page,
#: asked with `dph_total gte` the last price seen (Vast's search has no offset or page token).
MAX_SEARCH_PAGES = 6
#: Page size of GET /api/v1/instances/ [docs: at most 25].
INSTANCES_PAGE = 25
#: The search `type` that returns each offer's on-demand `dph_total` AND its `min_bid`, in ONE
#: request (gpuhunt reads both from one on-demand search [3rd]; with type "bid", dph_total would be
#: computed from the minimum bid instead [docs]).
SEARCH_TYPE = "on-demand"


@dataclass(frozen=True)
class VastRequest:
    """One REST request. `operation` names it in errors and logs (e.g. "create_interruptible")."""

    operation: str
    method: str
    path: str
    body: dict[str, Any] | None = None
    params: tuple[tuple[str, str], ...] = ()
    idempotent: bool = False

    def url(self, base: str) -> str:
        query = f"?{urlencode(self.params)}" if self.params else ""
        return base.rstrip("/") + self.path + query

    def to_dict(self, base: str) -> dict[str, Any]:
        """What is sent, with the key masked: for --dry-run and logs."""
        out: dict[str, Any] = {"method": self.method, "url": self.url(base),
                               "headers": {"Authorization": "Bearer ***"}}
        if self.body is not None:
            out["body"] = self.body
        return out

    def to_text(self, base: str, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(base), indent=indent)

    def __hash__(self) -> int:
        return hash((self.operation, self.method, self.path, json.dumps(self.body, sort_keys=True), self.params))


def check_price(price: float, *, what: str = "price") -> float:
    """A per-instance price Vast accepts (0.001..128 USD/hour), else ConfigError."""
    if isinstance(price, bool) or not isinstance(price, (int, float)) or not math.isfinite(price):
        raise ConfigError(f"{what} must be a number of USD per hour, got {price!r}", key="bid")
    if not MIN_PRICE <= price <= MAX_PRICE:
        raise ConfigError(f"{what} {price:g} USD/hour per instance is outside Vast's range "
                          f"{MIN_PRICE:g}..{MAX_PRICE:g}", key="bid")
    return round(float(price), 6)


def _id(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{what} must be a whole number >= 0, got {value!r}", key=what.replace(" ", "_"))
    return value


def build_search(gpu_names: Sequence[str] | None = None, num_gpus: Sequence[int] | int | None = None, *,
                 verified: bool | None = None, min_reliability: float | None = None,
                 disk_gb: float = SEARCH_DISK_GB, limit: int = DEFAULT_SEARCH_LIMIT,
                 extra: Mapping[str, Mapping[str, Any]] | None = None) -> VastRequest:
    """POST /api/v0/bundles/: every rentable offer (of these GPU names and counts) in ONE request.

    Without `verified`/`min_reliability` the search returns unverified and unreliable offers too:
    the collector filters locally (its filters are the user's), so one answer serves every tier.
    """
    query: dict[str, Any] = {"rentable": {"eq": True}, "rented": {"eq": False}, "external": {"eq": False}}
    if gpu_names:
        names = [str(n) for n in gpu_names]
        if not all(n.strip() for n in names):
            raise ConfigError("a GPU name is empty: give names as Vast spells them, e.g. 'RTX 4090'", key="gpu_names")
        query["gpu_name"] = {"in": names}
    if num_gpus is not None:
        counts = [num_gpus] if isinstance(num_gpus, int) else list(num_gpus)
        if not counts or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in counts):
            raise ConfigError(f"num_gpus must be whole numbers >= 1, got {num_gpus!r}", key="num_gpus")
        query["num_gpus"] = {"in": counts} if len(counts) > 1 else {"eq": counts[0]}
    if verified is not None:
        query["verified"] = {"eq": bool(verified)}
    if min_reliability is not None:
        query["reliability"] = {"gte": float(min_reliability)}
    for name, condition in (extra or {}).items():
        query[str(name)] = dict(condition)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigError(f"limit must be a whole number >= 1, got {limit!r}", key="limit")
    query.update({"type": SEARCH_TYPE, "order": [["dph_total", "asc"]], "limit": limit,
                  "allocated_storage": float(disk_gb)})
    return VastRequest("search_offers", "POST", "/api/v0/bundles/", query, idempotent=True)


def build_create(offer_id: int, spec: InstanceSpec, price: float | None) -> VastRequest:
    """PUT /api/v0/asks/{offer_id}/: an interruptible instance at `price` (per instance), or
    on-demand when `price` is None. Never idempotent: a create is sent once."""
    body = spec.body()
    operation = "create_on_demand"
    if price is not None:
        body["price"] = check_price(price, what="bid")
        operation = "create_interruptible"
    return VastRequest(operation, "PUT", f"/api/v0/asks/{_id(offer_id, 'offer id')}/", body)


def build_change_bid(instance_id: int, price: float) -> VastRequest:
    """PUT /api/v0/instances/bid_price/{id}/. Setting an absolute price twice is harmless: retried."""
    return VastRequest("change_bid", "PUT", f"/api/v0/instances/bid_price/{_id(instance_id, 'instance id')}/",
                       {"client_id": "me", "price": check_price(price, what="bid")}, idempotent=True)


def build_instance(instance_id: int) -> VastRequest:
    return VastRequest("instance", "GET", f"/api/v0/instances/{_id(instance_id, 'instance id')}/",
                       idempotent=True)


def build_instances(after_token: str | None = None, limit: int = INSTANCES_PAGE) -> VastRequest:
    params: list[tuple[str, str]] = [("limit", str(int(limit)))]
    if after_token:
        params.append(("after_token", str(after_token)))
    return VastRequest("instances", "GET", "/api/v1/instances/", params=tuple(params), idempotent=True)


def build_set_state(instance_id: int, state: str) -> VastRequest:
    """PUT /api/v0/instances/{id}/ {"state": "stopped"|"running"}: stop or start. Retried."""
    if state not in ("stopped", "running"):
        raise ConfigError(f"state must be 'stopped' or 'running', got {state!r}", key="state")
    operation = "stop" if state == "stopped" else "start"
    return VastRequest(operation, "PUT", f"/api/v0/instances/{_id(instance_id, 'instance id')}/",
                       {"state": state}, idempotent=True)


def build_destroy(instance_id: int) -> VastRequest:
    return VastRequest("destroy", "DELETE", f"/api/v0/instances/{_id(instance_id, 'instance id')}/",
                       idempotent=True)

