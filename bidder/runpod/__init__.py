"""bidder's RunPod GraphQL client: typed calls, errors mapped to `bidder.errors`, key never leaked.

    from bidder.runpod import RunPodClient, PodSpec, Pod, GpuType, Account, RetryPolicy, DEFAULT_URL

Modules: `types` (GpuType, Pod, PodSpec, Account: frozen dataclasses parsed from RunPod's JSON),
`operations` (GraphQLRequest and one builder per query/mutation; what --dry-run prints),
`errors_map` (httpx exceptions and RunPod answers -> BidderError subclasses, in one place),
`client` (RunPodClient, RetryPolicy). Exports (`__all__`): the names imported above, plus
`GraphQLRequest`, `PodPort`, `DEFAULT_TIMEOUT` and `USER_AGENT`.
"""

from __future__ import annotations

from bidder.runpod.client import DEFAULT_TIMEOUT, DEFAULT_URL, USER_AGENT, RetryPolicy, RunPodClient
from bidder.runpod.operations import GraphQLRequest
from bidder.runpod.types import Account, GpuType, Pod, PodPort, PodSpec

__all__ = [
    "DEFAULT_TIMEOUT",
    "DEFAULT_URL",
    "USER_AGENT",
    "Account",
    "GpuType",
    "GraphQLRequest",
    "Pod",
    "PodPort",
    "PodSpec",
    "RetryPolicy",
    "RunPodClient",
]
