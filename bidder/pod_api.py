"""The one seam between the executor and a market's API: the operations the executor needs.

    api = as_pod_api(RunPodClient(...))        # RunPod: its client, as it always was
    api = VastPodApi(VastClient(...))          # Vast: bidder.vast_pods, the same operations

`Executor` (and the tick) speak only `PodApi`: list and read pods (`bidder.runpod.Pod`, the
executor's neutral view of a pod), build a create input from a job's template (with the most the pod
may cost per hour in all, for a market that bills more than the price the executor checks: Vast's
storage), rent at a bid or
on-demand (sent once: a lost answer is found again by the pod's name), resume at a bid, resume,
stop, terminate, and the `build_*` twins a dry run prints. `market` names the market in the
ledger (`pods.market`). The safety rules stay in the executor, for every market alike.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from bidder.jobs import PodTemplate
from bidder.runpod import Pod, PodSpec, RunPodClient

__all__ = ["PodApi", "RunPodApi", "as_pod_api", "runpod_pod_spec"]


@runtime_checkable
class PodApi(Protocol):
    """What the executor sends to a market. `spec` is opaque to the executor: it is what this
    market's `rent_interruptable` / `deploy_on_demand` take."""

    market: str

    def spec(self, template: PodTemplate, name: str, gpu_type_id: str, gpu_count: int, cloud: str, *,
             max_price_per_gpu: float | None = None, max_cost_per_hr: float | None = None) -> Any: ...
    def pods(self) -> list[Pod]: ...
    def pod(self, pod_id: str) -> Pod: ...
    def rent_interruptable(self, spec: Any, bid_per_gpu: float) -> Pod: ...
    def deploy_on_demand(self, spec: Any) -> Pod: ...
    def bid_resume(self, pod_id: str, bid_per_gpu: float, gpu_count: int) -> Pod: ...
    def resume(self, pod_id: str, gpu_count: int) -> Pod: ...
    def stop(self, pod_id: str) -> Any: ...
    def terminate(self, pod_id: str) -> Any: ...
    def build_rent_interruptable(self, spec: Any, bid_per_gpu: float) -> Any: ...
    def build_deploy_on_demand(self, spec: Any) -> Any: ...
    def build_bid_resume(self, pod_id: str, bid_per_gpu: float, gpu_count: int) -> Any: ...
    def build_resume(self, pod_id: str, gpu_count: int) -> Any: ...
    def build_stop(self, pod_id: str) -> Any: ...
    def build_terminate(self, pod_id: str) -> Any: ...


def runpod_pod_spec(template: PodTemplate, name: str, gpu_type_id: str, gpu_count: int, cloud: str) -> PodSpec:
    """The create input for one attempt: the job's template on the chosen RunPod market."""
    has_volume = template.volume > 0 or template.network_volume is not None
    return PodSpec(name=name, image_name=template.image, gpu_type_id=gpu_type_id, gpu_count=gpu_count,
                   cloud_type=cloud, container_disk_in_gb=template.disk,
                   volume_in_gb=template.volume if template.volume > 0 else None,
                   volume_mount_path=template.mount if has_volume else None, ports=template.ports,
                   env=template.env, template_id=template.template_id, network_volume_id=template.network_volume,
                   data_center_id=template.data_center, docker_args=template.docker_args)


class RunPodApi:
    """RunPod's client as a `PodApi`: every call is the client's own (attributes pass through)."""

    market = "runpod"

    def __init__(self, client: RunPodClient) -> None:
        self.raw = client

    def spec(self, template: PodTemplate, name: str, gpu_type_id: str, gpu_count: int, cloud: str, *,
             max_price_per_gpu: float | None = None, max_cost_per_hr: float | None = None) -> PodSpec:
        # The limits are the executor's to check here: a RunPod pod costs the price it checked.
        return runpod_pod_spec(template, name, gpu_type_id, gpu_count, cloud)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)

    def __enter__(self) -> RunPodApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.raw.close()


def as_pod_api(client: Any) -> Any:
    """`client` as a PodApi: a RunPodClient is wrapped; an object with a `market` and `spec` is one."""
    if isinstance(client, RunPodClient):
        return RunPodApi(client)
    if hasattr(client, "market") and hasattr(client, "spec"):
        return client
    return RunPodApi(client)  # a RunPod-like client (tests' fakes of the transport still speak RunPod)
