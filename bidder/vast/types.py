"""Typed, frozen views of Vast's answers: `Instance` (and its neutral `InstanceState`), the create
input `InstanceSpec`, and the `Offer` parser.

Parsing is strict about shape (a field of the wrong JSON type is a protocol error: `ValueError`,
which the client turns into an `ApiError`) and lenient about absence (a field left out reads
None), as for RunPod. Prices stay as Vast states them, per instance; per-GPU figures come only
from `bidder.vast.offers.per_gpu`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bidder.errors import ConfigError
from bidder.models import MAX_GPU_COUNT, MAX_PRICE, MIN_PRICE
from bidder.vast.offers import Offer, per_gpu

__all__ = [
    "OUTBID_TEXTS",
    "ImplausibleOffer",
    "Instance",
    "InstanceSpec",
    "InstanceState",
    "instance_state",
    "parse_instance",
    "parse_offer",
]

#: Lower-case fragments of a status_msg that says the instance was paused by a higher bid or an
#: on-demand renter. [?] Vast's exact wording is not documented; the emulator uses "outbid".
OUTBID_TEXTS = ("outbid", "out bid", "higher bid", "preempted", "displaced")


class InstanceState(StrEnum):
    """What an executor needs to know of a Vast instance, whatever Vast's many status fields say."""

    LOADING = "loading"              # being created or started (actual_status null/loading/created)
    RUNNING = "running"
    PAUSED_OUTBID = "paused_outbid"  # a bid instance paused by a higher bid or an on-demand renter
    STOPPED = "stopped"              # stopped by its owner (intended_status stopped)
    GONE = "gone"                    # destroyed / unknown to the API (set by the caller, never parsed)
    UNKNOWN = "unknown"              # offline, exited, or a status bidder does not know: not "gone"


def _kind(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return "a non-finite number"
    return f"a {type(value).__name__} value"


def _str(obj: Mapping[str, Any], name: str) -> str | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"field {name} should be a string, got {type(value).__name__}")
    return value


def _int(obj: Mapping[str, Any], name: str) -> int | None:
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ValueError(f"field {name} should be a whole number, got {_kind(value)}")
    return int(value)


def _float(obj: Mapping[str, Any], name: str) -> float | None:
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"field {name} should be a number, got {_kind(value)}")
    return float(value)


def _bool(obj: Mapping[str, Any], name: str) -> bool | None:
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value in (0, 1):
        return bool(value)  # Vast's search sometimes answers flags as 0/1 [?]
    if not isinstance(value, bool):
        raise ValueError(f"field {name} should be true or false, got {_kind(value)}")
    return value


def _required_int(obj: Mapping[str, Any], name: str) -> int:
    value = _int(obj, name)
    if value is None:
        raise ValueError(f"field {name} is missing")
    return value


def _price(obj: Mapping[str, Any], name: str) -> float | None:
    value = _float(obj, name)
    return value if value is not None and value > 0 else None  # 0 or less: "no such price", never free


# -- offers ----------------------------------------------------------------------------------------

class ImplausibleOffer(ValueError):
    """A well-formed offer no renter could take as stated (no id or machine, no GPU or half of one, a
    price past the bound every price in bidder keeps to, a GPU name no trace could carry): one host's
    listing, set aside from the search, never a reason to doubt the whole answer (as a field of the
    wrong JSON type is: Vast's format changed, and every offer would be read wrong)."""


#: The largest whole number SQLite stores: an id past it failed the snapshot's write with a traceback.
_MAX_ID = 2**63 - 1


def _offer_int(raw: Mapping[str, Any], name: str, least: int, most: int) -> int:
    """A whole number an offer cannot do without (its id, machine, GPU count): of the wrong JSON type the
    answer is malformed (ValueError); absent, fractional or outside least..most this listing is
    (ImplausibleOffer)."""
    value = raw.get(name)
    if value is None:
        raise ImplausibleOffer(f"field {name} is missing")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            isinstance(value, float) and not math.isfinite(value)):
        raise ValueError(f"field {name} should be a whole number, got {_kind(value)}")
    if value != int(value) or not least <= value <= most:
        raise ImplausibleOffer(f"field {name} should be a whole number {least}..{most}, got {value!r}")
    return int(value)


def _offer_count(raw: Mapping[str, Any], name: str) -> int:
    """A whole number an offer may leave out (its host, its GPU memory): 0 when absent; otherwise as
    `_offer_int`, from 0 (a host_id or gpu_ram past SQLite's integers failed the snapshot's write)."""
    return 0 if raw.get(name) is None else _offer_int(raw, name, 0, _MAX_ID)


def parse_offer(raw: Any) -> Offer:
    """One entry of a search answer's `offers` list (ValueError: the answer is malformed;
    ImplausibleOffer: this offer alone is set aside)."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"an offer should be an object, got {type(raw).__name__}")
    offer_id, machine_id = _offer_int(raw, "id", 0, _MAX_ID), _offer_int(raw, "machine_id", 0, _MAX_ID)
    num_gpus = _offer_int(raw, "num_gpus", 1, MAX_GPU_COUNT)  # (the most GPUs any market puts in one pod)
    gpu_name = _str(raw, "gpu_name") or ""
    # A name a trace cannot carry back (empty, a control character) would make `bidder export`
    # unreadable by `import-trace`; no true offer has one.
    if not gpu_name.strip() or not gpu_name.isprintable() or gpu_name != gpu_name.strip():
        raise ImplausibleOffer(f"field gpu_name should be a GPU name, got {gpu_name!r}")
    min_bid, dph_total = _price(raw, "min_bid"), _price(raw, "dph_total")
    for name, value in (("min_bid", min_bid), ("dph_total", dph_total)):
        # The bounds RunPod's client holds prices to, per GPU-hour (the trace reader the upper one).
        if value is not None and not MIN_PRICE <= (per_gpu(value, num_gpus) or 0.0) <= MAX_PRICE:
            raise ImplausibleOffer(f"field {name} should be a price from {MIN_PRICE:g} to {MAX_PRICE:g} USD per "
                                   f"GPU-hour, got {value:g} for {num_gpus} GPU(s)")
    return Offer(
        id=offer_id,
        machine_id=machine_id,
        host_id=_offer_count(raw, "host_id"),
        gpu_name=gpu_name,
        num_gpus=num_gpus,
        gpu_ram_mb=_offer_count(raw, "gpu_ram"),
        min_bid=min_bid,
        dph_total=dph_total,
        reliability=_float(raw, "reliability") or 0.0,
        verified=_verified(raw),
        storage_cost=_float(raw, "storage_cost") or 0.0,
        geolocation=_str(raw, "geolocation"),
    )


# -- instances -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class InstanceSpec:
    """What to run on a rented offer. `label` must be unique per job and deterministic: it is how a
    create whose answer was lost is found again (`VastClient.find_by_label`)."""

    label: str
    image: str
    disk_gb: float = 10.0
    env: tuple[tuple[str, str], ...] = ()
    onstart: str | None = None
    runtype: str = "ssh_direct"
    extra: tuple[tuple[str, Any], ...] = field(default=())  # any other create field, sent as given

    def __post_init__(self) -> None:
        if not isinstance(self.label, str) or not self.label.strip():
            raise ConfigError("a Vast instance needs a non-empty label (it finds a lost create again)",
                              key="label")
        if not isinstance(self.image, str) or not self.image.strip():
            raise ConfigError("a Vast instance needs an image, e.g. pytorch/pytorch", key="image")
        if isinstance(self.disk_gb, bool) or not isinstance(self.disk_gb, (int, float)) or not self.disk_gb > 0:
            raise ConfigError(f"disk_gb must be a positive number of GB, got {self.disk_gb!r}", key="disk_gb")

    def body(self) -> dict[str, Any]:
        """The create body without `price` (the client adds it for a bid)."""
        body: dict[str, Any] = {"client_id": "me", "image": self.image, "disk": self.disk_gb,
                                "runtype": self.runtype, "label": self.label, "env": dict(self.env)}
        if self.onstart is not None:
            body["onstart"] = self.onstart
        body.update(dict(self.extra))
        return body


@dataclass(frozen=True)
class Instance:
    """One Vast instance as `GET /api/v0/instances/{id}/` shows it. Prices per instance (USD/hour).

    `actual_status` is None while provisioning; `is_bid` tells an interruptible from an on-demand
    rental; `min_bid` is the machine's current minimum bid; `state` the neutral reading of it all.
    """

    id: int
    actual_status: str | None
    intended_status: str | None
    cur_state: str | None
    next_state: str | None
    is_bid: bool | None
    min_bid: float | None
    dph_total: float | None
    dph_base: float | None
    start_date: float | None
    uptime_mins: float | None
    status_msg: str | None
    label: str | None
    machine_id: int | None
    num_gpus: int | None
    gpu_name: str | None
    bid_price: float | None = None     # the instance's bid: `bid_price` if sent, else a bid instance's dph_base
    storage_cost: float | None = None
    disk_gb: float | None = None

    @property
    def state(self) -> InstanceState:
        return instance_state(self)

    @property
    def bid_per_gpu(self) -> float | None:
        return per_gpu(self.bid_price, self.num_gpus) if self.bid_price is not None and self.num_gpus else None


def instance_state(inst: Instance) -> InstanceState:
    """The neutral state. A bid instance that is not running although its owner wants it running
    (intended_status running), or whose status_msg says it was outbid, is PAUSED_OUTBID; one its
    owner stopped is STOPPED. [?] dstack reads actual == intended == next == "stopped" as outbid;
    then only the status_msg (or the caller's own ledger) tells it from a stop by its owner."""
    actual = (inst.actual_status or "").lower() or None
    intended = (inst.intended_status or "").lower() or None
    message = (inst.status_msg or "").lower()
    if actual == "running" and intended != "stopped":
        return InstanceState.RUNNING
    if actual in (None, "loading", "created", "scheduling") and intended != "stopped":
        return InstanceState.LOADING
    if actual in ("stopped", "exited", "running", "inactive"):
        if inst.is_bid and (intended == "running" or any(t in message for t in OUTBID_TEXTS)):
            return InstanceState.PAUSED_OUTBID
        if intended == "stopped":
            return InstanceState.STOPPED
    return InstanceState.UNKNOWN


def _verified(raw: Mapping[str, Any]) -> bool:
    """Whether an offer's machine is verified: Vast's answers say it as text, `verification`
    ("verified", "unverified", "deverified"; vast-cli's offer type); `verified` is a search filter's
    name, read only when an answer carries it as a flag."""
    text = raw.get("verification")
    if isinstance(text, str):
        return text.strip().lower() == "verified"
    return bool(_bool(raw, "verified"))


def _bid_price(raw: Mapping[str, Any]) -> float | None:
    """The instance's bid, USD per hour for the instance: `bid_price` when an answer has it (it is not
    among Vast's documented instance fields), else a bid instance's `dph_base`, its compute rate, which
    is its bid (pay-as-bid)."""
    bid = _price(raw, "bid_price")
    if bid is None and _bool(raw, "is_bid"):
        bid = _price(raw, "dph_base")
    return bid


def parse_instance(raw: Any) -> Instance:
    if not isinstance(raw, Mapping):
        raise ValueError(f"an instance should be an object, got {type(raw).__name__}")
    return Instance(
        id=_required_int(raw, "id"),
        actual_status=_str(raw, "actual_status"),
        intended_status=_str(raw, "intended_status"),
        cur_state=_str(raw, "cur_state"),
        next_state=_str(raw, "next_state"),
        is_bid=_bool(raw, "is_bid"),
        min_bid=_price(raw, "min_bid"),
        dph_total=_float(raw, "dph_total"),
        dph_base=_float(raw, "dph_base"),
        start_date=_float(raw, "start_date"),
        uptime_mins=_float(raw, "uptime_mins"),
        status_msg=_str(raw, "status_msg"),
        label=_str(raw, "label"),
        machine_id=_int(raw, "machine_id"),
        num_gpus=_int(raw, "num_gpus"),
        gpu_name=_str(raw, "gpu_name"),
        bid_price=_bid_price(raw),
        storage_cost=_float(raw, "storage_cost"),
        disk_gb=_float(raw, "disk_space"),
    )
