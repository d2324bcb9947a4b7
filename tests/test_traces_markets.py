"""The trace format's optional `market` column: absent = RunPod's (every older trace), written only
when a non-RunPod row is present, tiers checked per market, round trips through the store."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest

from bidder.errors import TraceFormatError
from bidder.models import PriceQuote
from bidder.store import Store
from bidder.traces import TRACE_COLUMNS, read_trace, trace_text, write_trace

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def q(ts: datetime, gpu: str, cloud: str, floor: float | None, od: float | None, market: str = "runpod",
      count: int = 1) -> PriceQuote:
    return PriceQuote(ts=ts, gpu_type_id=gpu, cloud=cloud, gpu_count=count, minimum_bid_price=floor,
                      uninterruptable_price=od, market=market)


def test_a_trace_without_the_column_is_runpods_and_writes_back_without_it():
    text = "ts,gpu_type,minimum_bid_price,uninterruptable_price,cloud\n2026-01-01T00:00:00Z,NVIDIA RTX A6000,0.2,0.5,SECURE\n"
    [quote] = read_trace(io.StringIO(text))
    assert quote.market == "runpod"
    out = trace_text([quote])
    assert out.splitlines()[0] == ",".join(TRACE_COLUMNS) and "market" not in out


def test_both_markets_in_one_trace_round_trip_exactly():
    quotes = [q(T0, "NVIDIA GeForce RTX 4090", "COMMUNITY", 0.31, 0.69),
              q(T0, "RTX 4090", "VERIFIED", 0.22, 0.41, "vast"),
              q(T0, "RTX 4090", "UNVERIFIED", None, 0.35, "vast", count=2)]
    text = trace_text(quotes)
    assert text.splitlines()[0].endswith(",market,offers")
    back = read_trace(io.StringIO(text))
    assert [(b.market, b.gpu_type_id, b.cloud, b.gpu_count, b.minimum_bid_price, b.uninterruptable_price)
            for b in back] == [(a.market, a.gpu_type_id, a.cloud, a.gpu_count, a.minimum_bid_price,
                                a.uninterruptable_price) for a in quotes]


def test_an_empty_market_cell_is_runpod_and_a_vast_row_defaults_to_verified():
    text = ("ts,gpu_type,minimum_bid_price,uninterruptable_price,cloud,market\n"
            "2026-01-01T00:00:00Z,NVIDIA RTX A6000,0.2,0.5,,\n"
            "2026-01-01T00:00:00Z,RTX A6000,0.18,0.4,,VAST\n")
    a, b = read_trace(io.StringIO(text))
    assert (a.market, a.cloud) == ("runpod", "COMMUNITY") and (b.market, b.cloud) == ("vast", "VERIFIED")


@pytest.mark.parametrize(("row", "message"), [
    ("RTX 4090,0.2,0.5,SECURE,vast", r"line 2, column cloud: 'SECURE' is not VERIFIED or UNVERIFIED"),
    ("RTX 4090,0.2,0.5,VERIFIED,runpod", r"line 2, column cloud: 'VERIFIED' is not SECURE or COMMUNITY"),
    ("RTX 4090,0.2,0.5,VERIFIED,lambda", r"line 2, column market: 'lambda' is not a market \(runpod or vast"),
])
def test_bad_market_or_tier_names_the_line_and_column(row, message):
    text = f"ts,gpu_type,minimum_bid_price,uninterruptable_price,cloud,market\n2026-01-01T00:00:00Z,{row}\n"
    with pytest.raises(TraceFormatError, match=message):
        read_trace(io.StringIO(text), name="t.csv")


def test_the_same_key_on_two_markets_is_not_a_duplicate_but_twice_on_one_is():
    head = "ts,gpu_type,minimum_bid_price,uninterruptable_price,cloud,market\n"
    two = head + "2026-01-01T00:00:00Z,X,0.2,0.5,VERIFIED,vast\n2026-01-01T00:00:00Z,X,0.2,0.5,COMMUNITY,runpod\n"
    assert len(read_trace(io.StringIO(two))) == 2
    dup = head + "2026-01-01T00:00:00Z,X,0.2,0.5,VERIFIED,vast\n2026-01-01T00:00:00Z,X,0.3,0.5,VERIFIED,vast\n"
    with pytest.raises(TraceFormatError, match=r"line 3, column ts: a second row for X VERIFIED x1 on vast"):
        read_trace(io.StringIO(dup))


def test_a_streaming_writer_without_the_column_refuses_a_vast_row():
    with pytest.raises(ValueError, match="vast quote"):
        write_trace(iter([q(T0, "RTX 4090", "VERIFIED", 0.2, 0.4, "vast")]), io.StringIO(), market=False)


def test_import_keeps_each_markets_history_apart(tmp_path):
    quotes = [q(T0 + timedelta(minutes=5 * i), "RTX 4090", "VERIFIED", 0.2 + i / 100, 0.4, "vast") for i in range(3)]
    quotes += [q(T0, "RTX 4090", "VERIFIED", 9.0, 9.5)]  # a RunPod row in a Vast tier: refused
    with pytest.raises(TraceFormatError):
        read_trace(io.StringIO(trace_text(quotes)))
    quotes[-1] = q(T0, "RTX 4090", "COMMUNITY", 9.0, 9.5)
    with Store.open(tmp_path / "b.db") as store:
        total, changed = store.import_quotes(read_trace(io.StringIO(trace_text(quotes))))
        assert (total, changed) == (4, 4)
        assert store.markets() == [("RTX 4090", "COMMUNITY", 1), ("RTX 4090", "VERIFIED", 1, "vast")]
        assert len(store.floor_series("RTX 4090", "VERIFIED", 1, market="vast")) == 3
        assert store.import_quotes(read_trace(io.StringIO(trace_text(quotes))))[1] == 0


def test_vasts_offer_count_survives_export_and_import(tmp_path):
    """The `offers` column (how many Vast offers a row summarises, shown by `bidder prices`) was
    dropped on import: a collected database exported and imported again showed `offers -`."""
    from click.testing import CliRunner

    from bidder.cli import main

    quotes = [q(T0, "NVIDIA GeForce RTX 4090", "COMMUNITY", 0.31, 0.69),  # (in the export's order)
              PriceQuote(ts=T0, gpu_type_id="RTX 4090", cloud="VERIFIED", gpu_count=1, minimum_bid_price=0.22,
                         uninterruptable_price=0.41, market="vast", offer_count=8)]
    [runpod, vast] = read_trace(io.StringIO(trace_text(quotes)))
    assert (vast.offer_count, runpod.offer_count) == (8, None)
    trace = tmp_path / "t.csv"
    trace.write_text(trace_text(quotes))
    db = str(tmp_path / "t.db")
    runner = CliRunner()
    assert runner.invoke(main, ["import-trace", str(trace), "--db", db]).exit_code == 0
    exported = runner.invoke(main, ["export", "--db", db, "--since", "all"])
    assert exported.exit_code == 0, exported.output
    assert exported.stdout == trace.read_text()  # the same bytes back, offers included
    with pytest.raises(TraceFormatError, match=r"line 2, column offers: 'many' is not a whole number of offers"):
        read_trace(io.StringIO("ts,gpu_type,minimum_bid_price,uninterruptable_price,cloud,market,offers\n"
                               "2026-01-01T00:00:00Z,RTX 4090,0.2,0.5,VERIFIED,vast,many\n"))
    for count in ("\u00b3", "99999999999999999999"):  # a traceback each (int() of "³"; SQLite's integers)
        with pytest.raises(TraceFormatError, match=rf"line 2, column offers: '{count}' is not a whole number of offers"):
            read_trace(io.StringIO("ts,gpu_type,minimum_bid_price,uninterruptable_price,cloud,market,offers\n"
                                   f"2026-01-01T00:00:00Z,RTX 4090,0.2,0.5,VERIFIED,vast,{count}\n"))
