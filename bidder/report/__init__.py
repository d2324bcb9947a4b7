"""Cost reports: what bidder spent, against what the same GPU hours cost on-demand.

`bidder report` and `bidder chart` run on this package; it is never imported on the cron path.

- `data`: the numbers, from the store's ledger and pod observations (`spend_report`, `pod_track`,
  `price_chart_data`, `market_summary`).
- `charts`: matplotlib figures of them (imported on its own: it loads matplotlib).

Exports (`__all__`): `spend_report` and its `SpendReport`/`JobSpend`/`PodSpend`, `market_summary`
(`MarketSummary`), `pod_track` (`PodTrack`) and `price_chart_data`.
"""

from __future__ import annotations

from bidder.report.data import (
    JobSpend,
    MarketSummary,
    PodSpend,
    PodTrack,
    SpendReport,
    market_summary,
    pod_track,
    price_chart_data,
    spend_report,
)

__all__ = [
    "JobSpend",
    "MarketSummary",
    "PodSpend",
    "PodTrack",
    "SpendReport",
    "market_summary",
    "pod_track",
    "price_chart_data",
    "spend_report",
]
