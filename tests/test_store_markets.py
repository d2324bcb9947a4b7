"""The market in every price key (schema version 3): upgrading a version-2 file in place, RunPod and
Vast rows side by side, the offers table, one transaction over several markets."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from bidder.errors import StoreError
from bidder.models import PriceQuote
from bidder.store import SCHEMA_VERSION, Store
from bidder.store.schema import MIGRATIONS
from bidder.vast.offers import Offer

T0 = datetime(2026, 1, 1, tzinfo=UTC)
A6000 = "NVIDIA RTX A6000"


def quote(ts: datetime = T0, gpu: str = A6000, cloud: str = "COMMUNITY", floor: float | None = 0.25,
          od: float | None = 0.49, **extra: object) -> PriceQuote:
    return PriceQuote(ts=ts, gpu_type_id=gpu, cloud=cloud, gpu_count=1, minimum_bid_price=floor,
                      uninterruptable_price=od, **extra)  # type: ignore[arg-type]


def make_v2(path) -> None:
    """A file exactly as the version-2 bidder left it: its frozen migrations, then its rows."""
    conn = sqlite3.connect(path)
    for version in (1, 2):
        conn.executescript(MIGRATIONS[version])
    conn.executescript("""
INSERT INTO prices VALUES ('2026-01-01T00:00:00Z', 'NVIDIA RTX A6000', 'COMMUNITY', 1, 0.25, 0.49, 'High',
    '[1,2]', 4, 0.25, 0.33);
INSERT INTO prices VALUES ('2026-01-01T00:05:00Z', 'NVIDIA RTX A6000', 'COMMUNITY', 1, NULL, 0.49, 'Low',
    NULL, NULL, NULL, NULL);
INSERT INTO prices VALUES ('2026-01-01T00:05:00Z', 'NVIDIA RTX A6000', 'SECURE', 2, 0.31, 0.79, NULL,
    NULL, NULL, NULL, NULL);
INSERT INTO markets VALUES ('NVIDIA RTX A6000', 'COMMUNITY', 1, '2026-01-01T00:00:00Z', '2026-01-01T00:05:00Z');
INSERT INTO markets VALUES ('NVIDIA RTX A6000', 'SECURE', 2, '2026-01-01T00:05:00Z', '2026-01-01T00:05:00Z');
INSERT INTO collections VALUES (1, '2026-01-01T00:00:00Z', 0.5, 1, NULL, NULL);
INSERT INTO collections VALUES (2, '2026-01-01T00:05:00Z', 0.4, 0, NULL, 'TransportError: boom');
INSERT INTO actions (ts, job, kind, outcome) VALUES ('2026-01-01T00:06:00Z', 'train', 'stop', 'ok');
INSERT INTO settings VALUES ('spot_unsupported_since', '2026-01-01T00:00:00Z', NULL);
PRAGMA user_version = 2;
""")
    conn.close()


def test_a_version_2_file_is_upgraded_in_place_and_every_row_is_runpods(tmp_path):
    path = tmp_path / "v2.db"
    make_v2(path)
    before = sqlite3.connect(path)
    old_prices = before.execute("SELECT * FROM prices ORDER BY 1, 2, 3, 4").fetchall()
    before.close()
    with Store.open(path) as store:
        assert store.schema_version() == SCHEMA_VERSION >= 3
        history = store.price_history()
        assert len(history) == len(old_prices) == 3
        assert {q.market for q in history} == {"runpod"}
        assert [(q.cloud, q.gpu_count, q.minimum_bid_price, q.uninterruptable_price, q.stock_status)
                for q in history] == [("COMMUNITY", 1, 0.25, 0.49, "High"), ("COMMUNITY", 1, None, 0.49, "Low"),
                                      ("SECURE", 2, 0.31, 0.79, None)]
        assert history[0].available_gpu_counts == (1, 2) and history[0].list_on_demand_price == 0.33
        assert store.markets() == [(A6000, "COMMUNITY", 1), (A6000, "SECURE", 2)]  # RunPod keys keep their shape
        spans = store.market_spans()
        assert [s["market"] for s in spans] == ["runpod", "runpod"]
        assert spans[0]["first_ts"] == T0 and spans[0]["last_ts"] == T0 + timedelta(minutes=5)
        assert [(c["market"], c["error"]) for c in store.collections()] == [("runpod", "TransportError: boom"),
                                                                           ("runpod", None)]
        assert store.actions("train")[0]["kind"] == "stop"
        assert store.settings_get("spot_unsupported_since") == "2026-01-01T00:00:00Z"
        series = store.floor_series(A6000, "COMMUNITY", 1)
        assert len(series) == 2 and series.market == "runpod"
        # the rebuilt primary key still refuses nothing it accepted and replaces what it replaced
        store.record_collection(T0, [quote(floor=0.2)], duration_s=0.1)
        assert store.price_history(cloud="COMMUNITY")[0].minimum_bid_price == 0.2
    conn = sqlite3.connect(path)
    index = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'prices_market_ts'").fetchone()[0]
    assert "market, gpu_type_id, cloud, gpu_count, ts" in index
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name LIKE '%_v2'").fetchone()[0] == 0
    conn.close()


def offer(oid: int, machine: int, gpu: str = "RTX 4090", n: int = 1, min_bid: float | None = 0.3,
          dph: float | None = 0.5, reliability: float = 0.99, verified: bool = True) -> Offer:
    return Offer(id=oid, machine_id=machine, host_id=7, gpu_name=gpu, num_gpus=n, gpu_ram_mb=24564,
                 min_bid=min_bid, dph_total=dph, reliability=reliability, verified=verified, storage_cost=0.15,
                 geolocation="Sweden, SE")


def test_runpod_and_vast_rows_of_one_ts_live_side_by_side(tmp_path):
    with Store.open(tmp_path / "b.db") as store:
        with store.transaction():
            store.record_collection(T0, [quote()], duration_s=0.1)
            store.record_collection(T0, [quote(gpu="RTX 4090", cloud="VERIFIED", floor=0.2, od=0.4, market="vast",
                                               offer_count=3)],
                                    duration_s=0.2, market="vast", offers=[offer(1, 10), offer(2, 11, n=2)])
        assert store.markets() == [(A6000, "COMMUNITY", 1), ("RTX 4090", "VERIFIED", 1, "vast")]
        assert store.market_names() == ["runpod", "vast"]
        assert [q.market for q in store.latest_quotes()] == ["runpod", "vast"]
        [vast] = store.latest_quotes("vast")
        assert (vast.offer_count, vast.minimum_bid_price) == (3, 0.2)
        assert [q.gpu_type_id for q in store.price_history(market="runpod")] == [A6000]
        assert len(store.series_of(("RTX 4090", "VERIFIED", 1, "vast"))) == 1
        assert len(store.floor_series("RTX 4090", "VERIFIED", 1)) == 0  # RunPod's, by default
        offers = store.offers_at()
        assert [(o["offer_id"], o["num_gpus"], o["min_bid"], o["verified"], o["geolocation"]) for o in offers] == [
            (1, 1, 0.3, True, "Sweden, SE"), (2, 2, 0.3, True, "Sweden, SE")]
        assert [c["market"] for c in store.collections()] == ["vast", "runpod"]
        assert store.last_collection_ts(market="vast") == T0
        assert store.last_collection_ts(market="nope") is None


def test_a_failed_write_in_a_transaction_keeps_no_market(tmp_path):
    with Store.open(tmp_path / "b.db") as store:
        with pytest.raises(StoreError), store.transaction():
            store.record_collection(T0, [quote()], duration_s=0.1)
            store.record_collection(T0, [quote(gpu=None)], duration_s=0.1, market="vast")  # type: ignore[arg-type]
        assert store.price_history() == [] and store.collections() == []
