"""Typed, frozen views of RunPod's answers: `GpuType`, `Pod`, `Account`, and the create input `PodSpec`.

Parsing is strict about shape (a field of the wrong type, an unknown enum value or a number that
cannot be true -- negative, non-finite, a price above `MAX_PRICE`, an uptime above `MAX_UPTIME_S`
-- is a protocol error: `ValueError`, which the client turns into `MalformedAnswer`) and lenient
about absence (a field the server left out is None), because RunPod adds and drops fields over time. Prices are USD per GPU-hour, except
`Pod.cost_per_hr`, which is per pod (`bid_per_gpu * gpu_count` for a spot pod). A price of 0 or
less means "none" and reads as None, so no caller can mistake it for a free GPU.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from bidder.errors import ConfigError
from bidder.models import MAX_PRICE

__all__ = [
    "CLOUD_TYPES",
    "MAX_GPU_COUNT",
    "MAX_PRICE",
    "MAX_UPTIME_S",
    "POD_STATUSES",
    "POD_TYPES",
    "SPOT_POD_TYPES",
    "Account",
    "GpuType",
    "ImpossibleValue",
    "Pod",
    "PodPort",
    "PodSpec",
    "finite_number",
    "parse_account",
    "parse_gpu_type",
    "parse_pod",
    "price_or_none",
]

#: The values of RunPod's `CloudTypeEnum`.
CLOUD_TYPES: tuple[str, ...] = ("ALL", "SECURE", "COMMUNITY")
#: `podType` values of a bid (spot) pod. RunPod answers INTERRUPTABLE; BID is the older name.
SPOT_POD_TYPES = frozenset({"INTERRUPTABLE", "BID"})
#: RunPod's `PodStatus` and `PodType` enums: any other value is a malformed answer.
POD_STATUSES = frozenset({"CREATED", "RUNNING", "RESTARTING", "EXITED", "PAUSED", "DEAD", "TERMINATED"})
POD_TYPES = frozenset({"INTERRUPTABLE", "RESERVED", "BID", "BACKGROUND"})
#: Bounds no true answer passes (USD per hour of a pod or a GPU: `bidder.models.MAX_PRICE`, which trace
#: files share; seconds; GPUs of one pod; GB of a volume). They keep impossible numbers out of the ledger
#: and every later sum (no OverflowError on a 1e12 uptime).
MAX_UPTIME_S = 10 * 365 * 86400
MAX_GPU_COUNT = 1024
MAX_VOLUME_GB = 1_000_000


# -- field readers: absent/null -> None, wrong type -> ValueError ---------------------------------

def finite_number(value: Any) -> bool:
    """A JSON number bidder can compute with: not a bool, finite, and (an int) within float range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an int of 400 digits
        return False


def _kind(value: Any) -> str:
    # Names the JSON type only: a server value never enters an error message (it could be anything).
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not finite_number(value):
        return "a non-finite number"
    return f"a {type(value).__name__} value"


def _str(obj: Mapping[str, Any], name: str) -> str | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"field {name} should be a string, got {type(value).__name__}")
    return value


class ImpossibleValue(ValueError):
    """A number of the right JSON type that cannot be true: negative, non-finite or out of range."""


def _int(obj: Mapping[str, Any], name: str, hi: float | None = None) -> int | None:
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not finite_number(value):
        raise ImpossibleValue(f"field {name} should be a whole number, got {_kind(value)}")
    if not finite_number(value) or value != int(value):
        raise ValueError(f"field {name} should be a whole number, got {_kind(value)}")
    if hi is not None and not 0 <= value <= hi:
        raise ImpossibleValue(f"field {name} should be a whole number from 0 to {hi:g}, got one outside")
    return int(value)


def _float(obj: Mapping[str, Any], name: str, hi: float | None = None) -> float | None:
    value = obj.get(name)
    if value is None:
        return None
    if not finite_number(value):
        error = ImpossibleValue if isinstance(value, (int, float)) and not isinstance(value, bool) else ValueError
        raise error(f"field {name} should be a number, got {_kind(value)}")
    if hi is not None and not 0 <= value <= hi:
        raise ImpossibleValue(f"field {name} should be a number from 0 to {hi:g}, got one outside")
    return float(value)


def _enum(obj: Mapping[str, Any], name: str, allowed: frozenset[str]) -> str | None:
    value = _str(obj, name)
    if value is not None and value not in allowed:
        raise ValueError(f"field {name} has a value that is not one of {', '.join(sorted(allowed))}")
    return value


def _bool(obj: Mapping[str, Any], name: str) -> bool | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise ValueError(f"field {name} should be true or false, got {_kind(value)}")
    return value


def _obj(obj: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(f"field {name} should be an object, got {type(value).__name__}")
    return value


def _list(obj: Mapping[str, Any], name: str) -> list[Any]:
    value = obj.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"field {name} should be a list, got {type(value).__name__}")
    return value


def price_or_none(value: float | None) -> float | None:
    """A price as bidder stores it: None for null, 0 or negative (RunPod's "no such price")."""
    return value if value is not None and value > 0 else None


def _price(obj: Mapping[str, Any], name: str) -> float | None:
    # A negative list price is RunPod's "none" (as 0 is); a huge one cannot be true.
    value = _float(obj, name)
    if value is not None and value > MAX_PRICE:
        raise ImpossibleValue(f"field {name} should be a price up to {MAX_PRICE:g} USD per hour, got one above")
    return price_or_none(value)


# -- GPU types -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GpuType:
    """One entry of RunPod's GPU catalogue (`gpuTypes`). `id` is the gpuTypeId used everywhere.

    `secure_cloud` / `community_cloud`: offered in that cloud. List prices are USD per GPU-hour;
    None = not listed (spot list prices read None once RunPod drops spot).
    """

    id: str
    display_name: str | None = None
    manufacturer: str | None = None
    memory_in_gb: int | None = None
    secure_cloud: bool | None = None
    community_cloud: bool | None = None
    secure_price: float | None = None
    community_price: float | None = None
    secure_spot_price: float | None = None
    community_spot_price: float | None = None
    max_gpu_count: int | None = None

    def offered_in(self, cloud: str) -> bool:
        """False only when RunPod says the type is not offered in `cloud` (unknown counts as offered)."""
        flag = self.secure_cloud if cloud == "SECURE" else self.community_cloud
        return flag is not False

    def list_on_demand_price(self, cloud: str) -> float | None:
        return self.secure_price if cloud == "SECURE" else self.community_price

    def list_spot_price(self, cloud: str) -> float | None:
        return self.secure_spot_price if cloud == "SECURE" else self.community_spot_price


def parse_gpu_type(obj: Any) -> GpuType:
    if not isinstance(obj, Mapping):
        raise ValueError(f"a GPU type should be an object, got {type(obj).__name__}")
    gpu_id = _str(obj, "id")
    if not gpu_id:
        raise ValueError("a GPU type came without an id")
    return GpuType(
        id=gpu_id, display_name=_str(obj, "displayName"), manufacturer=_str(obj, "manufacturer"),
        memory_in_gb=_int(obj, "memoryInGb", hi=1e6), secure_cloud=_bool(obj, "secureCloud"),
        community_cloud=_bool(obj, "communityCloud"), secure_price=_price(obj, "securePrice"),
        community_price=_price(obj, "communityPrice"), secure_spot_price=_price(obj, "secureSpotPrice"),
        community_spot_price=_price(obj, "communitySpotPrice"), max_gpu_count=_int(obj, "maxGpuCount", hi=MAX_GPU_COUNT),
    )


# -- pods ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PodPort:
    """A port of a running pod (`runtime.ports`): connect to `ip:public_port`."""

    ip: str | None
    is_ip_public: bool | None
    private_port: int | None
    public_port: int | None
    type: str | None


@dataclass(frozen=True)
class Pod:
    """A pod as RunPod shows it.

    `desired_status`: RUNNING, EXITED, TERMINATED... `pod_type`: INTERRUPTABLE (spot) or RESERVED
    (on-demand). `cost_per_hr` is USD per hour for the whole pod. `uptime_seconds` and `ports`
    come from `runtime`, which RunPod sends as null until the container is up and after a stop:
    then `uptime_seconds` is None and `ports` is empty. `last_status_change` is RunPod's free text
    ("Rented by User: ...", "Exited by Runpod: ..."). `volume_in_gb`: the volume disk RunPod bills
    while the pod is stopped (None: not said, or unreadable). `invalid` is set (and the impossible
    numbers read None) when a pod list carried a number for this pod that cannot be true: the poll must
    not be stored (see `parse_pod(lenient=True)`).
    """

    id: str
    name: str | None = None
    image_name: str | None = None
    desired_status: str | None = None
    pod_type: str | None = None
    cost_per_hr: float | None = None
    gpu_count: int | None = None
    last_status_change: str | None = None
    lowest_bid_price_to_resume: float | None = None
    machine_id: str | None = None
    gpu_display_name: str | None = None
    uptime_seconds: int | None = None
    ports: tuple[PodPort, ...] = ()
    adjusted_cost_per_hr: float | None = None
    location: str | None = None
    invalid: str | None = None
    volume_in_gb: int | None = None

    @property
    def is_spot(self) -> bool:
        return self.pod_type in SPOT_POD_TYPES

    @property
    def is_running(self) -> bool:
        return self.desired_status == "RUNNING"

    @property
    def exited_by_runpod(self) -> bool:
        """True when RunPod (not the user) stopped the pod: for a spot pod, an interruption."""
        return self.desired_status == "EXITED" and (self.last_status_change or "").lower().startswith(
            "exited by runpod")


def _port(obj: Any) -> PodPort:
    if not isinstance(obj, Mapping):
        raise ValueError("runtime.ports should hold objects")
    return PodPort(ip=_str(obj, "ip"), is_ip_public=_bool(obj, "isIpPublic"),
                   private_port=_int(obj, "privatePort"), public_port=_int(obj, "publicPort"),
                   type=_str(obj, "type"))


def parse_pod(obj: Any, *, lenient: bool = False) -> Pod:
    """A Pod from RunPod's JSON. Any problem raises ValueError; with `lenient`, a pod whose only
    problem is an impossible number (`ImpossibleValue`) comes back with those numbers None and
    `invalid` saying why, so that one bad pod in a listing does not hide the others."""
    try:
        return _parse_pod(obj, strict=True)
    except ImpossibleValue as exc:
        if not lenient:
            raise
        return replace(_parse_pod(obj, strict=False), invalid=str(exc))


def _parse_pod(obj: Any, *, strict: bool) -> Pod:
    if not isinstance(obj, Mapping):
        raise ValueError(f"a pod should be an object, got {type(obj).__name__}")
    pod_id = _str(obj, "id")
    if not pod_id:
        raise ValueError("a pod came without an id")
    machine = _obj(obj, "machine") or {}
    runtime = _obj(obj, "runtime")
    num, whole = (_float, _int) if strict else (_or_none(_float), _or_none(_int))
    return Pod(
        id=pod_id, name=_str(obj, "name"), image_name=_str(obj, "imageName"),
        desired_status=_enum(obj, "desiredStatus", POD_STATUSES), pod_type=_enum(obj, "podType", POD_TYPES),
        cost_per_hr=num(obj, "costPerHr", hi=MAX_PRICE), gpu_count=whole(obj, "gpuCount", hi=MAX_GPU_COUNT),
        last_status_change=_str(obj, "lastStatusChange"),
        lowest_bid_price_to_resume=_or_none(_price)(obj, "lowestBidPriceToResume") if not strict
        else _price(obj, "lowestBidPriceToResume"), machine_id=_str(obj, "machineId"),
        gpu_display_name=_str(machine, "gpuDisplayName"),
        uptime_seconds=None if runtime is None else whole(runtime, "uptimeInSeconds", hi=MAX_UPTIME_S),
        ports=() if runtime is None else tuple(_port(p) for p in _list(runtime, "ports") if p is not None),
        adjusted_cost_per_hr=num(obj, "adjustedCostPerHr", hi=MAX_PRICE), location=_str(machine, "location"),
        volume_in_gb=_volume(obj),
    )


def _volume(obj: Mapping[str, Any]) -> int | None:
    """`volumeInGb`, or None when it cannot be read: only `bidder pods` shows it, so a wrong one must
    not cost the poll of the pod (its status and price)."""
    try:
        return _int(obj, "volumeInGb", hi=MAX_VOLUME_GB)
    except ValueError:  # (ImpossibleValue too)
        return None


def _or_none(reader: Any) -> Any:
    """`reader`, reading an impossible number as None (the lenient pass of parse_pod)."""
    def read(obj: Mapping[str, Any], name: str, **kwargs: Any) -> Any:
        try:
            return reader(obj, name, **kwargs)
        except ImpossibleValue:
            return None
    return read


# -- account ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Account:
    """`myself`: the balance (USD), the spend now (USD per hour, all pods) and its limit, and the
    pods the account has (terminated ones are gone)."""

    id: str
    client_balance: float | None = None
    current_spend_per_hr: float | None = None
    spend_limit: float | None = None
    pods: tuple[Pod, ...] = ()


def parse_account(obj: Any) -> Account:
    if not isinstance(obj, Mapping):
        raise ValueError(f"myself should be an object, got {type(obj).__name__}")
    # A null pod list (or a null entry) is not "no pods": it proves nothing, so it is refused.
    pods = obj.get("pods")
    if not isinstance(pods, list) or any(p is None for p in pods):
        raise ValueError("myself.pods should be a list of pods")
    return Account(id=_str(obj, "id") or "", client_balance=_float(obj, "clientBalance"),
                   current_spend_per_hr=_float(obj, "currentSpendPerHr"), spend_limit=_float(obj, "spendLimit"),
                   pods=tuple(parse_pod(p, lenient=True) for p in pods))


# -- the create input ------------------------------------------------------------------------------

def _bad(message: str, key: str) -> ConfigError:
    return ConfigError(f"pod spec: {message}", key=key)


@dataclass(frozen=True)
class PodSpec:
    """What a create mutation asks for (RunPod's pod input fields, snake_case).

    `gpu_count` GPUs of `gpu_type_id` in `cloud_type` ("ALL" lets RunPod pick). `ports` is RunPod's
    one string ("8888/http,22/tcp"); `env` a tuple of (name, value) pairs. Fields left None are not
    sent, so RunPod's defaults apply. Invalid values raise ConfigError at construction.
    """

    name: str
    image_name: str | None = None
    gpu_type_id: str | None = None
    gpu_count: int = 1
    cloud_type: str = "ALL"
    container_disk_in_gb: int | None = None
    volume_in_gb: int | None = None
    volume_mount_path: str | None = None
    ports: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    template_id: str | None = None
    network_volume_id: str | None = None
    data_center_id: str | None = None
    country_code: str | None = None
    min_vcpu_count: int | None = None
    min_memory_in_gb: int | None = None
    docker_args: str | None = None
    support_public_ip: bool | None = None
    start_ssh: bool | None = None
    allowed_cuda_versions: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise _bad("name must be a non-empty string (bidder finds its pods by name)", "name")
        if not self.image_name and not self.template_id:
            raise _bad("give image_name (a Docker image, e.g. runpod/pytorch:latest) or template_id", "image_name")
        if not self.gpu_type_id:
            raise _bad("gpu_type_id is required (a RunPod GPU type id such as 'NVIDIA RTX A6000')", "gpu_type_id")
        if isinstance(self.gpu_count, bool) or not isinstance(self.gpu_count, int) or self.gpu_count < 1:
            raise _bad(f"gpu_count must be a whole number >= 1, got {self.gpu_count!r}", "gpu_count")
        if self.cloud_type not in CLOUD_TYPES:
            raise _bad(f"cloud_type must be one of {', '.join(CLOUD_TYPES)}, got {self.cloud_type!r}", "cloud_type")
        for name in ("container_disk_in_gb", "volume_in_gb", "min_vcpu_count", "min_memory_in_gb"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise _bad(f"{name} must be a whole number >= 0, got {value!r}", name)
        for pair in self.env:
            if not (isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(x, str) for x in pair)
                    and pair[0]):
                raise _bad(f"env must hold (name, value) string pairs with a non-empty name, got {pair!r}", "env")
        if isinstance(self.allowed_cuda_versions, str):
            raise _bad("allowed_cuda_versions must be a tuple of versions, e.g. ('12.4',)", "allowed_cuda_versions")

    def to_input(self) -> dict[str, Any]:
        """RunPod's input object (camelCase), without the fields left None."""
        fields: dict[str, Any] = {
            "name": self.name, "imageName": self.image_name, "gpuTypeId": self.gpu_type_id,
            "gpuCount": self.gpu_count, "cloudType": self.cloud_type,
            "containerDiskInGb": self.container_disk_in_gb, "volumeInGb": self.volume_in_gb,
            "volumeMountPath": self.volume_mount_path, "ports": self.ports,
            "env": [{"key": k, "value": v} for k, v in self.env] if self.env else None,
            "templateId": self.template_id, "networkVolumeId": self.network_volume_id,
            "dataCenterId": self.data_center_id, "countryCode": self.country_code,
            "minVcpuCount": self.min_vcpu_count, "minMemoryInGb": self.min_memory_in_gb,
            "dockerArgs": self.docker_args, "supportPublicIp": self.support_public_ip,
            "startSsh": self.start_ssh,
            "allowedCudaVersions": list(self.allowed_cuda_versions) if self.allowed_cuda_versions else None,
        }
        return {k: v for k, v in fields.items() if v is not None}
