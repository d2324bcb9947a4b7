"""bidder: buys GPU time on RunPod as cheaply as the user's risk allows."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
