"""Reductions of price history done inside SQLite, for reports over long periods.

A year of 5-minute history is 105,120 rows per market; a report needs a few hundred points per chart
and 168 cells per heatmap, so the grouping runs in SQL and Python only sees the reduced rows.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

import numpy as np

from bidder.errors import StoreError
from bidder.models import DEFAULT_MARKET
from bidder.store.base import StoreBase, _iso
from bidder.store.history import _EPOCH

__all__ = ["AggregateStore", "PriceBuckets"]


class PriceBuckets:
    """One market's history in fixed time buckets (arrays of equal length, ascending `start`).

    `start`: bucket start, epoch seconds; `floor_max` / `floor_min`: highest / lowest spot floor in the
    bucket (NaN: no spot sample); `on_demand`: mean on-demand price (NaN: none); `spot_share`: share
    of the bucket's samples that had a spot floor. USD per GPU-hour.
    """

    def __init__(self, start: np.ndarray, floor_max: np.ndarray, floor_min: np.ndarray, on_demand: np.ndarray,
                 spot_share: np.ndarray, bucket_s: float) -> None:
        self.start, self.floor_max, self.floor_min = start, floor_max, floor_min
        self.on_demand, self.spot_share, self.bucket_s = on_demand, spot_share, bucket_s

    def __len__(self) -> int:
        return int(self.start.shape[0])


def _where(gpu_type_id: str, cloud: str, gpu_count: int, since: datetime | None, until: datetime | None,
           market: str) -> tuple[str, tuple[object, ...]]:
    return ("market = ? AND gpu_type_id = ? AND cloud = ? AND gpu_count = ? AND ts >= ? AND ts < ?",
            (market, gpu_type_id, cloud, int(gpu_count), _iso(since) if since else "", _iso(until) if until else "~"))


class AggregateStore(StoreBase):
    """Time buckets and hour-of-week profiles of one market, computed by SQLite."""

    def price_buckets(self, gpu_type_id: str, cloud: str, gpu_count: int = 1, *, since: datetime | None = None,
                      until: datetime | None = None, bucket_s: float = 3600.0,
                      market: str = DEFAULT_MARKET) -> PriceBuckets:
        """The market's floor (max and min) and on-demand (mean) per `bucket_s` seconds."""
        where, params = _where(gpu_type_id, cloud, gpu_count, since, until, market)
        size = max(1, int(bucket_s))
        sql = (f"SELECT ({_EPOCH} / {size}) * {size} AS b, coalesce(max(minimum_bid_price), -1.0), "
               "coalesce(min(minimum_bid_price), -1.0), coalesce(avg(uninterruptable_price), -1.0), "
               f"CAST(count(minimum_bid_price) AS REAL) / count(*) FROM prices WHERE {where} GROUP BY b ORDER BY b")
        data = self._array(sql, params, [("b", "f8"), ("hi", "f8"), ("lo", "f8"), ("od", "f8"), ("s", "f8")])
        cols = [data[k].copy() for k in ("hi", "lo", "od")]
        for col in cols:
            col[col < 0] = np.nan
        return PriceBuckets(data["b"].copy(), *cols, data["s"].copy(), float(size))

    def discount_by_hour_of_week(self, gpu_type_id: str, cloud: str, gpu_count: int = 1, *,
                                 since: datetime | None = None, until: datetime | None = None,
                                 market: str = DEFAULT_MARKET) -> tuple[np.ndarray, np.ndarray]:
        """Mean spot discount (1 - floor / on-demand) per (weekday Monday=0, hour UTC): a 7 x 24 array
        (NaN where no sample had both prices), and the number of samples per cell."""
        where, params = _where(gpu_type_id, cloud, gpu_count, since, until, market)
        # strftime('%w') counts from Sunday = 0; (w + 6) % 7 makes Monday 0
        sql = ("SELECT (CAST(strftime('%w', ts) AS INTEGER) + 6) % 7, CAST(strftime('%H', ts) AS INTEGER), "
               "avg(1.0 - minimum_bid_price / uninterruptable_price), count(*) FROM prices "
               f"WHERE {where} AND minimum_bid_price IS NOT NULL AND uninterruptable_price > 0 GROUP BY 1, 2")
        data = self._array(sql, params, [("d", "i8"), ("h", "i8"), ("v", "f8"), ("n", "i8")])
        mean = np.full((7, 24), np.nan)
        count = np.zeros((7, 24), dtype=np.int64)
        mean[data["d"], data["h"]] = data["v"]
        count[data["d"], data["h"]] = data["n"]
        return mean, count

    def _array(self, sql: str, params: tuple[object, ...], dtype: list[tuple[str, str]]) -> np.ndarray:
        cursor = self._conn.cursor()
        cursor.row_factory = None
        try:
            return np.fromiter(cursor.execute(sql, params), dtype=dtype)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read {self.path}: {exc}") from None
