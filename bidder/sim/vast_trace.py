"""Writing the emulated Vast market as a trace CSV: the trace format of `bidder.traces` plus a
`market` column (vast) and an `offers` column (how many offers are behind each row).

The tier goes in the `cloud` column (VERIFIED / UNVERIFIED). `bidder.traces.write_trace` does not
know a `market` column yet, so this one function writes it; readers that do not know the extra
columns ignore them (the trace format allows other columns).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from bidder.models import PriceQuote
from bidder.traces import TRACE_COLUMNS
from bidder.units import to_iso

__all__ = ["VAST_TRACE_COLUMNS", "write_vast_trace"]

VAST_TRACE_COLUMNS: tuple[str, ...] = (*TRACE_COLUMNS, "market", "offers")


def write_vast_trace(quotes: Iterable[PriceQuote], out: str | Path | IO[str]) -> int:
    """Write Vast quotes (from `generate_vast_quotes`) as a trace CSV; returns the row count."""
    if isinstance(out, (str, Path)):
        with open(out, "w", newline="", encoding="utf-8") as handle:
            return write_vast_trace(quotes, handle)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(VAST_TRACE_COLUMNS)
    count = 0
    for q in quotes:
        offers = (q.stock_status or "0").split()[0]
        writer.writerow([to_iso(q.ts), q.gpu_type_id, _number(q.minimum_bid_price), _number(q.uninterruptable_price),
                         q.cloud, q.gpu_count, q.stock_status or "", "vast", offers])
        count += 1
    return count


def _number(value: float | None) -> str:
    return "" if value is None else repr(float(value))
