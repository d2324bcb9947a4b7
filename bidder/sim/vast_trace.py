"""Writing the emulated Vast market as a trace CSV: the trace format of `bidder.traces` with its
`market` column (vast) and its `offers` column (how many offers are behind each row).

The tier goes in the `cloud` column (VERIFIED / UNVERIFIED).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import IO

from bidder.models import PriceQuote
from bidder.traces import MARKET_COLUMN, OFFERS_COLUMN, TRACE_COLUMNS, write_trace

__all__ = ["VAST_TRACE_COLUMNS", "write_vast_trace"]

VAST_TRACE_COLUMNS: tuple[str, ...] = (*TRACE_COLUMNS, MARKET_COLUMN, OFFERS_COLUMN)


def write_vast_trace(quotes: Iterable[PriceQuote], out: str | Path | IO[str]) -> int:
    """Write Vast quotes (from `generate_vast_quotes`, whose `stock_status` says "N offers") as a trace
    CSV; returns the row count."""
    return write_trace((replace(q, market="vast", offer_count=int((q.stock_status or "0").split()[0]))
                        for q in quotes), out, market=True)
