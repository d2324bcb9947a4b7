"""bidder's one SQLite file: price history (what the collector saw) and the ledger (what the
executor did). Nothing else in bidder writes SQL against these tables.

    from bidder.store import Store
    store = Store.open("data/bidder.db")          # creates parents + schema, upgrades older files
    store.record_collection(ts, quotes, duration_s=0.4)
    series = store.floor_series("NVIDIA RTX A6000", "COMMUNITY", 1)   # numpy arrays for statistics
    action_id = store.begin_action(now, job="train", kind="rent_spot", bid_per_gpu=0.31)
    store.finish_action(action_id, outcome="ok", pod_id="abc123")
    with store.exclusive_lock("tick"): ...        # LockHeld at once if another process holds it

Times are stored as ISO text 'YYYY-MM-DDTHH:MM:SSZ' (`bidder.units.to_iso`), so the file reads well
in `sqlite3` or Datasette and sorts as text; `data/README.md` documents every table and column.
Money is USD per GPU-hour unless a column name says otherwise.

Modules: `schema` (versioned migrations), `base` (opening, transactions, the lock), `history`
(prices, collections, catalogue, Vast offers), `aggregates` (time buckets and hour-of-week profiles
computed by SQLite, for reports), `ledger` (actions, pods, observations, jobs, settings).
Exports (`__all__`): `Store`, the schema's constants, `FloorSeries`, `GpuTypeInfo`, `PriceBuckets`,
`estimate_spend`, `discard_unused` (a new file a failed command leaves unused).
"""

from __future__ import annotations

from bidder.store.aggregates import AggregateStore, PriceBuckets
from bidder.store.base import BUSY_TIMEOUT_S, DEFAULT_DB_PATH, discard_unused, epoch_to_datetime
from bidder.store.history import FloorSeries, GpuTypeInfo, HistoryStore
from bidder.store.ledger import (
    LAUNCH_JOB,
    SPOT_UNSUPPORTED_SINCE,
    LedgerStore,
    estimate_spend,
    run_starts,
    spend_terms,
)
from bidder.store.schema import ACTION_KINDS, ACTION_OUTCOMES, SCHEMA_VERSION

__all__ = [
    "ACTION_KINDS",
    "ACTION_OUTCOMES",
    "BUSY_TIMEOUT_S",
    "DEFAULT_DB_PATH",
    "LAUNCH_JOB",
    "SCHEMA_VERSION",
    "SPOT_UNSUPPORTED_SINCE",
    "FloorSeries",
    "GpuTypeInfo",
    "PriceBuckets",
    "Store",
    "discard_unused",
    "epoch_to_datetime",
    "estimate_spend",
    "run_starts",
    "spend_terms",
]


class Store(HistoryStore, LedgerStore, AggregateStore):
    """bidder's SQLite file: price history and the ledger. One Store per thread (one connection).

    Use `Store.open(path)` (default `data/bidder.db`); close with `close()` or a `with` block.
    """
