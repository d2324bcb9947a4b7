"""The GraphQL documents bidder sends, one builder per operation.

Every builder returns a `GraphQLRequest`: the document (a constant text, apart from the aliases of
`lowestPrice`, whose names come from validated integers), the variables that carry EVERY value the
caller gave (pod names, images, bids, ids never enter the document text, so no value can change
its meaning), and whether the operation is safe to repeat. `RunPodClient` sends exactly what these
builders return; `--dry-run` prints the same object, so a dry run shows the real request. A
request never holds the API key: that travels only in the Authorization header.

    req = build_rent_interruptable(spec, bid_per_gpu=0.25)
    req.operation   # "podRentInterruptable"
    req.payload()   # {"query": ..., "variables": {"input": {...}}}
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bidder.errors import ConfigError
from bidder.models import CLOUDS
from bidder.runpod.types import PodSpec

__all__ = [
    "GPU_TYPE_FIELDS",
    "LOWEST_PRICE_FIELDS",
    "POD_FIELDS",
    "SPOT_PRICE_FIELDS",
    "GraphQLRequest",
    "build_bid_resume",
    "build_deploy_on_demand",
    "build_gpu_types",
    "build_lowest_prices",
    "build_myself",
    "build_pod",
    "build_rent_interruptable",
    "build_resume",
    "build_stop",
    "build_terminate",
    "lowest_price_fields",
    "price_alias",
    "price_markets",
]


@dataclass(frozen=True)
class GraphQLRequest:
    """One GraphQL request. `operation` is the top-level field (e.g. "podRentInterruptable");
    `idempotent` says whether sending it twice is harmless (reads, stop, terminate), which is what
    allows the client to retry it."""

    operation: str
    query: str
    variables: dict[str, Any] = field(default_factory=dict)
    idempotent: bool = False

    def payload(self) -> dict[str, Any]:
        """The JSON body of the POST."""
        return {"query": self.query, "variables": self.variables}

    def to_json(self, indent: int | None = 2) -> str:
        """The body as text, for `--dry-run` output."""
        return json.dumps(self.payload(), indent=indent, sort_keys=False)

    def __hash__(self) -> int:  # variables is a dict: hash the canonical JSON instead
        return hash((self.operation, self.query, json.dumps(self.variables, sort_keys=True), self.idempotent))


# -- selections -----------------------------------------------------------------------------------

GPU_TYPE_FIELDS = ("id displayName manufacturer memoryInGb secureCloud communityCloud securePrice "
                   "communityPrice secureSpotPrice communitySpotPrice maxGpuCount")
LOWEST_PRICE_FIELDS = "minimumBidPrice uninterruptablePrice stockStatus availableGpuCounts maxUnreservedGpuCount"
#: The spot price fields of GpuType and LowestPrice: left out of the documents with `spot=False`,
#: once RunPod has dropped them (asking for an unknown field fails the whole request).
SPOT_PRICE_FIELDS = frozenset({"minimumBidPrice", "secureSpotPrice", "communitySpotPrice"})
POD_FIELDS = ("id name imageName desiredStatus podType costPerHr adjustedCostPerHr gpuCount lastStatusChange "
              "lowestBidPriceToResume machineId volumeInGb machine { podHostId gpuDisplayName location } "
              "runtime { uptimeInSeconds ports { ip isIpPublic privatePort publicPort type } }")




def _fields(selection: str, spot: bool) -> str:
    return selection if spot else " ".join(f for f in selection.split() if f not in SPOT_PRICE_FIELDS)


def lowest_price_fields(spot: bool = True) -> tuple[str, ...]:
    """The fields each `lowestPrice` selection asks for (every one is in a true answer)."""
    return tuple(_fields(LOWEST_PRICE_FIELDS, spot).split())


# -- argument checks (library code: ConfigError, never assert) -----------------------------------

def _pod_id(pod_id: object) -> str:
    if not isinstance(pod_id, str) or not pod_id.strip():
        raise ConfigError(f"a pod id must be a non-empty string, got {pod_id!r}", key="pod_id")
    return pod_id


def _gpu_count(value: object, what: str = "gpu_count") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{what} must be a whole number >= 1, got {value!r}", key=what)
    return value


def _bid(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"bid_per_gpu must be a positive number of USD per GPU-hour, got {value!r}",
                          key="bid_per_gpu")
    return float(value)


def _spec(spec: object) -> PodSpec:
    if not isinstance(spec, PodSpec):
        raise ConfigError(f"a create needs a PodSpec, got {type(spec).__name__}", key="spec")
    return spec


# -- queries --------------------------------------------------------------------------------------

def build_gpu_types(spot: bool = True) -> GraphQLRequest:
    """The catalogue; `spot=False` leaves out the spot list prices."""
    return GraphQLRequest("gpuTypes", f"query gpuTypes {{ gpuTypes {{ {_fields(GPU_TYPE_FIELDS, spot)} }} }}", {},
                          idempotent=True)


def price_alias(cloud: str, gpu_count: int) -> str:
    """The alias of one `lowestPrice` selection, e.g. "secure1", "community8"."""
    return f"{cloud.lower()}{gpu_count}"


def price_markets(gpu_counts: Sequence[int], clouds: Sequence[str]) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """The validated, de-duplicated GPU counts and clouds (upper case) of a price request."""
    if isinstance(gpu_counts, (str, bytes)) or isinstance(clouds, (str, bytes)):
        raise ConfigError("gpu_counts and clouds must be sequences, e.g. (1, 2) and ('SECURE',)", key="gpu_counts")
    counts = tuple(dict.fromkeys(_gpu_count(n, "gpu_counts") for n in gpu_counts))
    wanted = []
    for cloud in clouds:
        name = cloud.upper() if isinstance(cloud, str) else cloud
        if name not in CLOUDS:
            raise ConfigError(f"cloud must be one of {', '.join(CLOUDS)}, got {cloud!r}", key="clouds")
        wanted.append(name)
    if not counts or not wanted:
        raise ConfigError("give at least one GPU count and one cloud", key="gpu_counts" if not counts else "clouds")
    return counts, tuple(dict.fromkeys(wanted))


def build_lowest_prices(gpu_counts: Sequence[int] = (1,), clouds: Sequence[str] = CLOUDS,
                        spot: bool = True) -> GraphQLRequest:
    """ONE document for every GPU type x cloud x count: a `lowestPrice` alias per (cloud, count).
    `spot=False` leaves out the spot price fields (`SPOT_PRICE_FIELDS`)."""
    counts, wanted = price_markets(gpu_counts, clouds)
    params = [*(f"${c.lower()}: Boolean!" for c in wanted), *(f"$gc{n}: Int!" for n in counts)]
    selections = [f"{price_alias(c, n)}: lowestPrice(input: {{gpuCount: $gc{n}, secureCloud: ${c.lower()}}}) "
                  f"{{ {_fields(LOWEST_PRICE_FIELDS, spot)} }}" for c in wanted for n in counts]
    query = (f"query lowestPrices({', '.join(params)}) {{ gpuTypes {{ {_fields(GPU_TYPE_FIELDS, spot)} "
             f"{' '.join(selections)} }} }}")
    variables: dict[str, Any] = {**{c.lower(): c == "SECURE" for c in wanted}, **{f"gc{n}": n for n in counts}}
    return GraphQLRequest("lowestPrice", query, variables, idempotent=True)


def build_myself() -> GraphQLRequest:
    query = (f"query myself {{ myself {{ id clientBalance currentSpendPerHr spendLimit "
             f"pods {{ {POD_FIELDS} }} }} }}")
    return GraphQLRequest("myself", query, {}, idempotent=True)


def build_pod(pod_id: str) -> GraphQLRequest:
    query = f"query pod($input: PodFilter!) {{ pod(input: $input) {{ {POD_FIELDS} }} }}"
    return GraphQLRequest("pod", query, {"input": {"podId": _pod_id(pod_id)}}, idempotent=True)


# -- mutations ------------------------------------------------------------------------------------

def _pod_mutation(operation: str, input_type: str, variables: dict[str, Any], idempotent: bool) -> GraphQLRequest:
    query = (f"mutation {operation}($input: {input_type}!) {{ {operation}(input: $input) "
             f"{{ {POD_FIELDS} }} }}")
    return GraphQLRequest(operation, query, {"input": variables}, idempotent=idempotent)


def build_rent_interruptable(spec: PodSpec, bid_per_gpu: float) -> GraphQLRequest:
    """A spot pod. `bid_per_gpu` is USD per GPU-hour: the pod costs bid_per_gpu * gpu_count per hour."""
    fields = {**_spec(spec).to_input(), "bidPerGpu": _bid(bid_per_gpu)}
    return _pod_mutation("podRentInterruptable", "PodRentInterruptableInput", fields, idempotent=False)


def build_deploy_on_demand(spec: PodSpec) -> GraphQLRequest:
    return _pod_mutation("podFindAndDeployOnDemand", "PodFindAndDeployOnDemandInput", _spec(spec).to_input(),
                         idempotent=False)


def build_bid_resume(pod_id: str, bid_per_gpu: float, gpu_count: int) -> GraphQLRequest:
    """Restart a stopped spot pod with a new bid per GPU. RunPod requires all three fields."""
    fields = {"podId": _pod_id(pod_id), "bidPerGpu": _bid(bid_per_gpu), "gpuCount": _gpu_count(gpu_count)}
    return _pod_mutation("podBidResume", "PodBidResumeInput", fields, idempotent=False)


def build_resume(pod_id: str, gpu_count: int | None = None) -> GraphQLRequest:
    """Restart a stopped on-demand pod (RunPod refuses spot pods here)."""
    fields: dict[str, Any] = {"podId": _pod_id(pod_id)}
    if gpu_count is not None:
        fields["gpuCount"] = _gpu_count(gpu_count)
    return _pod_mutation("podResume", "PodResumeInput", fields, idempotent=False)


def build_stop(pod_id: str) -> GraphQLRequest:
    return _pod_mutation("podStop", "PodStopInput", {"podId": _pod_id(pod_id)}, idempotent=True)


def build_terminate(pod_id: str) -> GraphQLRequest:
    query = "mutation podTerminate($input: PodTerminateInput!) { podTerminate(input: $input) }"
    return GraphQLRequest("podTerminate", query, {"input": {"podId": _pod_id(pod_id)}}, idempotent=True)
