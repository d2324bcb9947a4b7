"""bidder's Vast.ai client: interruptible (bid) and on-demand instances over Vast's REST API.

Modules: `offers` (Offer, and the per-instance <-> per-GPU conversion, in one place).
"""

from __future__ import annotations

from bidder.vast.offers import Offer, per_gpu, per_instance

__all__ = ["Offer", "per_gpu", "per_instance"]
