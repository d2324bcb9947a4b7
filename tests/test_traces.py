"""Trace files: exact round trips (file, and file -> store -> file through the CLI), and errors that
name the line and column."""

from __future__ import annotations

import io
import string
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bidder.cli import main
from bidder.errors import TraceFormatError
from bidder.models import CLOUDS, PriceQuote
from bidder.store import Store
from bidder.traces import iter_trace, read_trace, trace_text, write_trace
from bidder.units import to_iso

HEADER = "ts,gpu_type,minimum_bid_price,uninterruptable_price,cloud,gpu_count,stock_status\n"

prices = st.none() | st.floats(min_value=1e-6, max_value=500, allow_nan=False, allow_infinity=False)
quotes = st.builds(
    PriceQuote,
    ts=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1),
                    timezones=st.just(UTC)).map(lambda d: d.replace(microsecond=0)),
    # Commas and quotes in a name exercise CSV quoting.
    gpu_type_id=st.text(string.ascii_letters + string.digits + " -_,\"'", min_size=1, max_size=24)
    .map(str.strip).filter(bool),
    cloud=st.sampled_from(CLOUDS),
    gpu_count=st.integers(1, 16),
    minimum_bid_price=prices,
    uninterruptable_price=prices,
    stock_status=st.none() | st.sampled_from(["High", "Medium", "Low", "None"]),
)
traces = st.lists(quotes, min_size=1, max_size=40,
                  unique_by=lambda q: (to_iso(q.ts), q.gpu_type_id, q.cloud, q.gpu_count))


def key(q: PriceQuote) -> tuple:
    return (q.ts, q.gpu_type_id, q.cloud, q.gpu_count)


def core(q: PriceQuote) -> tuple:
    return (*key(q), q.minimum_bid_price, q.uninterruptable_price, q.stock_status)


@given(traces)
def test_write_then_read_is_exact(rows):
    assert read_trace(io.StringIO(trace_text(rows))) == rows


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(traces)
def test_import_then_export_through_the_cli_round_trips(rows):
    runner = CliRunner()
    with tempfile.TemporaryDirectory() as tmp:
        trace, db = Path(tmp) / "in.csv", Path(tmp) / "bidder.db"
        write_trace(rows, trace)
        # (--now: the rows run to 2030, and import-trace refuses a time more than a day after now)
        result = runner.invoke(main, ["import-trace", str(trace), "--db", str(db), "--now", "2030-01-01T00:00:00Z"])
        assert result.exit_code == 0, result.output
        assert f"Imported {len(rows)} rows" in result.output
        again = runner.invoke(main, ["import-trace", str(trace), "--db", str(db), "--now", "2030-01-01T00:00:00Z"])
        assert f"Imported {len(rows)} rows from {trace} into {db}: 0 new or changed" in again.output
        exported = runner.invoke(main, ["export", "--db", str(db)])
        assert exported.exit_code == 0, exported.output
        back = read_trace(io.StringIO(exported.stdout))
    assert sorted(map(core, back)) == sorted(map(core, rows))


def test_defaults_and_zero_floor():
    text = ("gpu_type,ts,minimum_bid_price,uninterruptable_price,notes\n"
            "RTX A6000,2026-01-01T00:05:00+01:00,0,0.49,ignored column\n")
    [q] = read_trace(io.StringIO(text))
    assert (q.ts, q.cloud, q.gpu_count, q.minimum_bid_price, q.uninterruptable_price, q.stock_status) == (
        datetime(2025, 12, 31, 23, 5, tzinfo=UTC), "COMMUNITY", 1, None, 0.49, None)


@pytest.mark.parametrize(("body", "line", "column", "message"), [
    ("2026-01-01T00:00:00Z,A,0.2,0.5,SECURE,1,\n2026-01-01T00:05:00Z,A,cheap,0.5,SECURE,1,\n", 3,
     "minimum_bid_price", "'cheap' is not a number"),
    ("2026-01-01T00:00:00Z,A,0.2,-0.5,SECURE,1,\n", 2, "uninterruptable_price", "not a price >= 0"),
    ("2026-01-01T00:00:00Z,A,0.2,inf,SECURE,1,\n", 2, "uninterruptable_price", "not a price >= 0"),
    ("yesterday,A,0.2,0.5,SECURE,1,\n", 2, "ts", "'yesterday' is not an ISO 8601 time"),
    # A typo in the year: stored, it was written back unpadded ("226-01-01T...") and every later read failed.
    ("2026-01-01T00:00:00Z,A,0.2,0.5,SECURE,1,\n0226-01-01T00:05:00Z,A,0.2,0.5,SECURE,1,\n", 3, "ts",
     "'0226-01-01T00:05:00Z' is in the year 226: give a time from 1970 on (check the year)"),
    ("2026-01-01T00:00:00Z,,0.2,0.5,SECURE,1,\n", 2, "gpu_type", "empty"),
    # (A quoted line break: the record ends on line 3, the line named.)
    ('2026-01-01T00:00:00Z,"G\nH",0.2,0.5,SECURE,1,\n', 3, "gpu_type", "'G\\nH' holds a control character"),
    ("2026-01-01T00:00:00Z,A,0.2,0.5,MOON,1,\n", 2, "cloud", "'MOON' is not SECURE or COMMUNITY"),
    ("2026-01-01T00:00:00Z,A,0.2,0.5,SECURE,0,\n", 2, "gpu_count", "'0' is not a whole number from 1 to 1,000,000"),
    # A digit that is not ASCII: "²" raised a traceback from int(), "١" was read as 1.
    ("2026-01-01T00:00:00Z,A,0.2,0.5,SECURE,\u00b2,\n", 2, "gpu_count", "'\u00b2' is not a whole number from 1"),
    ("2026-01-01T00:00:00Z,A,0.2,0.5,SECURE,\u0661,\n", 2, "gpu_count", "'\u0661' is not a whole number from 1"),
    # Past any machine, and past SQLite's integers (an OverflowError traceback from the import).
    ("2026-01-01T00:00:00Z,A,0.2,0.5,SECURE,99999999999999999999,\n", 2, "gpu_count", "from 1 to 1,000,000"),
    ("2026-01-01T00:00:00Z,A,0.2,0.5,SECURE,1,\n\n2026-01-01T00:00:00Z,A,0.3,0.5,secure,1,\n", 4, "ts",
     "a second row for A SECURE x1 at 2026-01-01T00:00:00Z (the first is line 2)"),
    # (the count as a number, not as written: "x01" read as a typo of the row's)
    ("2026-01-01T00:00:00Z,A,0.2,0.5,SECURE,1,\n2026-01-01T00:00:00Z,A,0.3,0.5,SECURE,01,\n", 3, "ts",
     "a second row for A SECURE x1 at 2026-01-01T00:00:00Z (the first is line 2)"),
    ("2026-01-01T00:00:00Z,A,0.2\n", 2, None, "3 fields, but the header has 7"),
])
def test_malformed_rows_name_line_and_column(body, line, column, message):
    with pytest.raises(TraceFormatError) as info:
        read_trace(io.StringIO(HEADER + body), name="t.csv")
    where = f"t.csv line {line}, column {column}: " if column else f"t.csv line {line}: "
    assert str(info.value).startswith(where) and message in str(info.value)
    assert (info.value.line, info.value.column) == (line, column)


@pytest.mark.parametrize(("times", "line", "first"), [
    (["00:00", "00:05", "00:05"], 4, 3),  # in order, the same time twice
    (["00:00", "00:05", "00:10", "00:05"], 5, 3),  # an earlier time again, found among those in order
    (["00:10", "00:00", "00:05", "00:00"], 5, 3),  # out of order twice: the first of them kept aside
    (["00:10", "00:00", "00:05", "00:10"], 5, 2),
])
def test_a_second_row_for_a_market_and_time_in_any_order(times, line, first):
    """The first row's line is named whatever order the rows come in; other markets at the same time
    (a B row at every time) and the same market at other times are no duplicates."""
    body = "".join(f"2026-01-01T{t}:00Z,A,0.2,0.5,SECURE,1,\n" for t in times)
    rows = body.splitlines(keepends=True)
    with pytest.raises(TraceFormatError) as info:
        read_trace(io.StringIO(HEADER + "".join(rows)), name="t.csv")
    assert (info.value.line, info.value.column) == (line, "ts")
    assert f"(the first is line {first})" in str(info.value)
    fine = rows[:-1] + [r.replace(",A,", ",B,") for r in rows[:-1]] + [rows[-1].replace(",1,", ",2,")]
    assert len(read_trace(io.StringIO(HEADER + "".join(fine)))) == 2 * len(rows) - 1


def test_bad_headers_and_files(tmp_path):
    with pytest.raises(TraceFormatError, match="line 1: the header lacks column uninterruptable_price"):
        read_trace(io.StringIO("ts,gpu_type,minimum_bid_price\n"), name="t.csv")
    with pytest.raises(TraceFormatError, match="line 1: column ts appears twice"):
        read_trace(io.StringIO("ts,gpu_type,minimum_bid_price,uninterruptable_price,ts\n"), name="t.csv")
    with pytest.raises(TraceFormatError, match=r"t\.csv is empty"):
        read_trace(io.StringIO(""), name="t.csv")
    with pytest.raises(TraceFormatError, match="has a header but no data rows"):
        read_trace(io.StringIO(HEADER), name="t.csv")
    with pytest.raises(TraceFormatError, match=r"cannot read trace .*missing\.csv: No such file"):
        read_trace(tmp_path / "missing.csv")
    latin = tmp_path / "latin.csv"
    latin.write_bytes(HEADER.encode() + "2026-01-01T00:00:00Z,Caf\xe9,0.2,0.5,SECURE,1,\n".encode("latin-1"))
    with pytest.raises(TraceFormatError, match="not UTF-8 text"):
        read_trace(latin)
    # The line of the bad byte, not the first (the decoder reads ahead of the CSV reader).
    later = tmp_path / "later.csv"
    later.write_bytes(HEADER.encode() + b"2026-01-01T00:00:00Z,A,0.2,0.5,SECURE,1,\n"
                      + "2026-01-01T00:05:00Z,Caf\xe9,0.2,0.5,SECURE,1,\n".encode("latin-1"))
    with pytest.raises(TraceFormatError, match=r"later\.csv line 3: not UTF-8 text"):
        read_trace(later)
    bom = tmp_path / "bom.csv"
    bom.write_text(HEADER + "2026-01-01T00:00:00Z,A,0.2,0.5,SECURE,1,High\n", encoding="utf-8-sig")
    assert [q.stock_status for q in iter_trace(bom)] == ["High"]
    # A spreadsheet's upper-case header was refused as lacking column ts.
    upper = read_trace(io.StringIO(HEADER.upper() + "2026-01-01T00:00:00Z,A,0.2,0.5,SECURE,1,High\n"))
    assert [(q.gpu_type_id, q.minimum_bid_price, q.stock_status) for q in upper] == [("A", 0.2, "High")]
    with pytest.raises(TraceFormatError, match="line 1: column ts appears twice"):
        read_trace(io.StringIO("ts,gpu_type,minimum_bid_price,uninterruptable_price,TS\n"), name="t.csv")


def test_a_malformed_import_stores_nothing(tmp_path):
    trace = tmp_path / "bad.csv"
    trace.write_text(HEADER + "".join(f"2026-01-01T00:{m:02d}:00Z,A,0.2,0.5,SECURE,1,\n" for m in range(0, 20, 5))
                     + "2026-01-01T00:20:00Z,A,0.2,abc,SECURE,1,\n")
    db = tmp_path / "bidder.db"
    result = CliRunner().invoke(main, ["import-trace", str(trace), "--db", str(db)])
    assert result.exit_code == 1
    assert result.stderr == f"Error: {trace} line 6, column uninterruptable_price: 'abc' is not a number " \
                            f"(USD per GPU-hour, e.g. 0.35)\n"
    with Store.open(db) as store:
        assert store.price_history() == [] and store.markets() == []


def test_import_from_stdin_and_export_filters_to_a_file(tmp_path):
    db = str(tmp_path / "bidder.db")
    rows = [PriceQuote(ts=datetime(2026, 1, 1, h, tzinfo=UTC), gpu_type_id=g, cloud=c, gpu_count=1,
                       minimum_bid_price=0.1 * (h + 1), uninterruptable_price=0.5)
            for h in range(4) for g in ("NVIDIA RTX A6000", "NVIDIA GeForce RTX 4090") for c in CLOUDS]
    runner = CliRunner()
    result = runner.invoke(main, ["import-trace", "-", "--db", db], input=trace_text(rows))
    assert result.output == (f"Imported 16 rows from standard input into {db}: 16 new or changed; 4 markets (2 GPU types), "
                             f"2026-01-01T00:00:00Z to 2026-01-01T03:00:00Z.\n")
    out = tmp_path / "a6000.csv"
    result = runner.invoke(main, ["export", "--db", db, "--gpu", "a6000", "--cloud", "secure",
                                  "--since", "2026-01-01T02:00:00Z", "-o", str(out)])
    assert result.exit_code == 0 and result.stderr == f"Exported 2 rows to {out}.\n"
    assert out.read_text() == HEADER + ("2026-01-01T02:00:00Z,NVIDIA RTX A6000,0.30000000000000004,0.5,SECURE,1,\n"
                                        "2026-01-01T03:00:00Z,NVIDIA RTX A6000,0.4,0.5,SECURE,1,\n")
    result = runner.invoke(main, ["export", "--db", db, "--gpu", "A7000"])
    assert result.exit_code == 1
    # (its display name too: import-trace names RunPod's types from the shipped catalogue, as a collect does)
    assert result.stderr == "Error: unknown GPU type 'A7000'; close matches: NVIDIA RTX A6000, RTX A6000\n"
