"""The emulator's GPU catalogue: RunPod GPU types with their VRAM, size limits and list prices.

`data/catalog.csv` holds RunPod's catalogue of 2025-06-21 (as recorded from the public `gpuTypes`
query), one row per GPU type: on-demand prices (`securePrice`/`communityPrice`) and list spot
prices (`secureSpotPrice`/`communitySpotPrice`) in USD per GPU-hour; an empty price means the type
is not offered in that cloud (or has no spot there).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources

__all__ = ["CLOUD_NAMES", "GpuTypeInfo", "load_catalog"]

CLOUD_NAMES: tuple[str, ...] = ("SECURE", "COMMUNITY")


@dataclass(frozen=True)
class GpuTypeInfo:
    """One GPU type as the emulator offers it. Prices are USD per GPU-hour; None = not offered."""

    id: str
    display_name: str
    manufacturer: str
    memory_in_gb: int | None
    max_gpu_count: int
    secure_price: float | None = None
    community_price: float | None = None
    secure_spot_price: float | None = None
    community_spot_price: float | None = None

    def on_demand(self, cloud: str) -> float | None:
        return self.secure_price if cloud == "SECURE" else self.community_price

    def list_spot(self, cloud: str) -> float | None:
        return self.secure_spot_price if cloud == "SECURE" else self.community_spot_price

    def clouds(self) -> tuple[str, ...]:
        """The clouds this type is offered in (on-demand price known)."""
        return tuple(c for c in CLOUD_NAMES if self.on_demand(c) is not None)


def _price(text: str) -> float | None:
    text = text.strip()
    return float(text) if text else None


def load_catalog() -> list[GpuTypeInfo]:
    """The bundled catalogue, in file order."""
    text = resources.files("bidder.sim").joinpath("data/catalog.csv").read_text(encoding="utf-8")
    out = []
    for row in csv.DictReader(text.splitlines()):
        out.append(GpuTypeInfo(
            id=row["id"],
            display_name=row["display_name"],
            manufacturer=row["manufacturer"],
            memory_in_gb=int(row["memory_in_gb"]),
            max_gpu_count=int(row["max_gpu_count"]),
            secure_price=_price(row["secure_price"]),
            community_price=_price(row["community_price"]),
            secure_spot_price=_price(row["secure_spot_price"]),
            community_spot_price=_price(row["community_spot_price"]),
        ))
    return out
