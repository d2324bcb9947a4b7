"""Trace files: the CSV exchange format for price history (documented in docs/traces.md).

A header row, then one row per quote. Required columns: `ts` (ISO 8601, UTC), `gpu_type`,
`minimum_bid_price` (empty or 0 = no spot capacity), `uninterruptable_price` (empty or 0 = no
on-demand), both USD per GPU-hour. Optional: `cloud` (the tier: SECURE | COMMUNITY for RunPod,
default COMMUNITY; VERIFIED | UNVERIFIED for Vast, default VERIFIED), `gpu_count` (default 1),
`stock_status`, `market` (runpod | vast; empty or absent = runpod, so every older trace is RunPod's),
`offers` (Vast: how many offers the prices summarise; empty = not known). Other columns are ignored; rows may come in any order.

    quotes = read_trace("data/traces/sim-seed1-14d.csv")     # TraceFormatError names line + column
    write_trace(quotes, sys.stdout)

`bidder import-trace`, `bidder export`, the backtest and `bidder sim serve --trace` speak it.
Timestamps are kept to the second (as the store keeps them).
"""

from __future__ import annotations

import bisect
import contextlib
import csv
import io
import logging
import math
from array import array
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from bidder.clock import FUTURE_SLACK
from bidder.errors import TraceFormatError
from bidder.models import DEFAULT_MARKET, MARKET_CLOUDS, MARKETS, MAX_PRICE, PriceQuote
from bidder.units import YearTooEarly, is_naive, parse_timestamp, to_iso

#: The largest GPU count or offer count a trace row may state (past it, not a machine: a number that
#: would not even fit the database's integers).
MAX_TRACE_COUNT = 1_000_000


def _whole(text: str) -> bool:
    """Whether `text` is a whole number written in ASCII digits."""
    return text.isascii() and text.isdigit()

log = logging.getLogger(__name__)

__all__ = ["FUTURE_SLACK", "MARKET_COLUMN", "OFFERS_COLUMN", "OPTIONAL_COLUMNS", "REQUIRED_COLUMNS", "TRACE_COLUMNS", "iter_trace", "read_trace",
           "trace_text", "write_trace"]

REQUIRED_COLUMNS: tuple[str, ...] = ("ts", "gpu_type", "minimum_bid_price", "uninterruptable_price")
MARKET_COLUMN = "market"
#: Vast's: how many offers the row's prices summarise (bidder prices shows it).
OFFERS_COLUMN = "offers"
OPTIONAL_COLUMNS: tuple[str, ...] = ("cloud", "gpu_count", "stock_status", MARKET_COLUMN, OFFERS_COLUMN)
#: The columns `write_trace` writes, in order (`market` and `offers` last, and only when asked for or needed).
TRACE_COLUMNS: tuple[str, ...] = REQUIRED_COLUMNS + OPTIONAL_COLUMNS[:3]
#: A trace row's tier when its `cloud` is empty, per market.
_DEFAULT_CLOUD = {"runpod": "COMMUNITY", "vast": "VERIFIED"}


class _FirstLines:
    """The line of the first row for each (market, second) of a trace, to name it when a second row comes,
    in about 16 bytes a row (a tuple-keyed dict took 400: 2.4 GB for a year of 5.8 million rows).
    Per market, its times so far in increasing order with their lines (a trace is usually in time
    order, so a row after its market's last is new at once); rows that come out of order go to a dict."""

    def __init__(self) -> None:
        self._markets: dict[tuple[str, str, str, int], tuple[array, array, dict[int, int]]] = {}

    def first(self, market: tuple[str, str, str, int], second: int, line: int) -> int | None:
        """The line of an earlier row of `market` at `second`, else None (and this row is noted)."""
        seen = self._markets.get(market)
        if seen is None:
            seen = self._markets[market] = (array("q"), array("q"), {})
        times, lines, late = seen
        if not times or second > times[-1]:
            times.append(second)
            lines.append(line)
            return None
        i = bisect.bisect_left(times, second)
        if i < len(times) and times[i] == second:
            return lines[i]
        if second in late:
            return late[second]
        late[second] = line
        return None


class _Row:
    """Reads one CSV record's cells, raising TraceFormatError that names the line and column."""

    def __init__(self, name: str, line: int, cells: dict[str, str]) -> None:
        self.name, self.line, self.cells = name, line, cells

    def fail(self, column: str, problem: str) -> TraceFormatError:
        return TraceFormatError(f"{self.name} line {self.line}, column {column}: {problem}",
                                path=self.name, line=self.line, column=column)

    def text(self, column: str) -> str:
        return (self.cells.get(column) or "").strip()

    def price(self, column: str) -> float | None:
        text = self.text(column)
        if not text:
            return None
        try:
            value = float(text)
        except ValueError:
            raise self.fail(column, f"{text!r} is not a number (USD per GPU-hour, e.g. 0.35)") from None
        if not math.isfinite(value) or value < 0:
            raise self.fail(column, f"{text!r} is not a price >= 0 (USD per GPU-hour)")
        if value > MAX_PRICE:  # the bound the API clients hold the markets to
            raise self.fail(column, f"{text!r} is above {MAX_PRICE:g} USD per GPU-hour, more than any GPU costs: "
                                    "correct the price (USD per GPU-hour, e.g. 0.35)")
        return value if value > 0 else None  # RunPod's 0 means "none available", never free


def iter_trace(source: str | Path | IO[str], *, name: str | None = None,
               notes: list[str] | None = None, now: datetime | None = None,
               now_is: str = "", future_hint: str = "") -> Iterator[PriceQuote]:
    """Yield the quotes of a trace, validating as it goes (a file path or an open text stream).

    Times without a timezone are read as UTC, and said once: appended to `notes` when given, else
    logged as a warning. Given `now`, a row more than FUTURE_SLACK after it is refused (history
    that has not happened yet would hide every later snapshot); `now_is` says whose time it is
    (", the wall clock") and `future_hint` how else to fix it, both in that error. Without `now`
    (a backtest, the emulator's replay) any time is fine: a trace there may be a made-up future.

    Raises TraceFormatError naming the line (the header is line 1) and column of the first problem,
    including a second row for the same (ts, gpu_type, cloud, gpu_count).
    """
    label = name or str(source if isinstance(source, (str, Path)) else getattr(source, "name", "<trace>"))
    with contextlib.ExitStack() as stack:
        if isinstance(source, (str, Path)):
            try:
                handle: IO[str] = stack.enter_context(open(source, newline="", encoding="utf-8-sig"))
            except OSError as exc:
                raise TraceFormatError(f"cannot read trace {label}: {exc.strerror or exc}", path=label) from None
        else:
            handle = source
        reader = csv.reader(handle)
        try:
            yield from _parse(reader, label, notes, now, now_is, future_hint)
        except UnicodeDecodeError:
            line = reader.line_num + 1  # (a stream: the decoder reads ahead, so this is the earliest it can be)
            if isinstance(source, (str, Path)):
                line = _first_bad_line(Path(source)) or line
            raise TraceFormatError(f"{label} line {line}: not UTF-8 text (save the trace as UTF-8 CSV)",
                                   path=label, line=line) from None
        except csv.Error as exc:
            raise TraceFormatError(f"{label} line {reader.line_num}: malformed CSV: {exc}",
                                   path=label, line=reader.line_num) from None


def _first_bad_line(path: Path) -> int | None:
    """The line of a file's first byte that is not UTF-8 (the decoder reads a buffer ahead of the CSV
    reader, which named line 1 for a bad byte on line 3)."""
    try:
        data = path.read_bytes()
        data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return data[:exc.start].count(b"\n") + 1
    except OSError:
        return None
    return None


def _parse(reader: Any, label: str, notes: list[str] | None = None, now: datetime | None = None,
           now_is: str = "", future_hint: str = "") -> Iterator[PriceQuote]:
    header = next(reader, None)
    if header is None:
        raise TraceFormatError(f"{label} is empty: a trace needs a header row "
                               f"({','.join(REQUIRED_COLUMNS)}) and data rows", path=label, line=1)
    # Column names in any case: a spreadsheet's TS,GPU_TYPE,... was refused as lacking column ts.
    header = [h.strip().lstrip("\ufeff").lower() for h in header]
    for column in REQUIRED_COLUMNS:
        if column not in header:
            raise TraceFormatError(f"{label} line 1: the header lacks column {column}; a trace needs "
                                   f"{','.join(REQUIRED_COLUMNS)} (optional: {','.join(OPTIONAL_COLUMNS)})",
                                   path=label, line=1, column=column)
    doubled = sorted({h for h in header if h and header.count(h) > 1})
    if doubled:
        raise TraceFormatError(f"{label} line 1: column {doubled[0]} appears twice in the header",
                               path=label, line=1, column=doubled[0])
    seen = _FirstLines()
    told_naive = False
    ts_text = None  # the last row's time: rows of one snapshot share it, parsed once
    for record in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in record):
            continue  # blank line
        if len(record) != len(header):
            raise TraceFormatError(f"{label} line {line}: {len(record)} fields, but the header has "
                                   f"{len(header)}", path=label, line=line)
        row = _Row(label, line, dict(zip(header, record, strict=True)))
        if row.text("ts") != ts_text:
            try:
                ts = parse_timestamp(row.text("ts"))
            except OverflowError:  # its offset moves it out of the years 1-9999 in UTC
                raise row.fail("ts", f"{row.text('ts')!r} is out of range: in UTC it must fall in the years "
                                     "1 to 9999") from None
            except YearTooEarly as exc:
                raise row.fail("ts", str(exc)) from None
            except ValueError:
                raise row.fail("ts", f"{row.text('ts')!r} is not an ISO 8601 time "
                                     f"(e.g. 2026-01-01T00:05:00Z)") from None
            if now is not None and ts - now > FUTURE_SLACK:  # (now + a day may not fit in a datetime)
                raise row.fail("ts", f"{row.text('ts')!r} is more than a day after now ({to_iso(now)}{now_is}): a "
                                     f"trace holds prices already quoted; correct the time (a typo in the year?)"
                                     f"{future_hint}")
            if not told_naive and is_naive(row.text("ts")):
                told_naive = True  # once per trace: a trace is usually naive throughout
                note = (f"{label} line {line}: time {row.text('ts')!r} has no timezone: read as UTC (and so is every "
                        "such time in it); write 2026-01-01T00:05:00Z to say so")
                if notes is not None:
                    notes.append(note)
                else:
                    log.warning("%s", note)
            ts_text, ts = row.text("ts"), ts.replace(microsecond=0)
            second = int(ts.timestamp())
        gpu_type = row.text("gpu_type")
        if not gpu_type:
            raise row.fail("gpu_type", "empty: give a GPU type id such as NVIDIA RTX A6000")
        if not gpu_type.isprintable():  # a newline or a NUL in a name split the tables that print it
            raise row.fail("gpu_type", f"{gpu_type!r} holds a control character (a line break, a tab, a NUL)")
        market = row.text(MARKET_COLUMN).lower() or DEFAULT_MARKET
        if market not in MARKETS:
            raise row.fail(MARKET_COLUMN, f"{row.text(MARKET_COLUMN)!r} is not a market ({' or '.join(MARKETS)}; "
                                          "empty = runpod)")
        cloud = row.text("cloud").upper() or _DEFAULT_CLOUD[market]
        if cloud not in MARKET_CLOUDS[market]:
            raise row.fail("cloud", f"{row.text('cloud')!r} is not {' or '.join(MARKET_CLOUDS[market])}"
                                    + ("" if market == DEFAULT_MARKET else f" (the tiers of market {market})"))
        count_text = row.text("gpu_count") or "1"
        # ASCII digits only: str.isdigit() passes "²" (int() then raised a traceback) and reads "١" as 1.
        if not _whole(count_text) or not 1 <= int(count_text) <= MAX_TRACE_COUNT:
            raise row.fail("gpu_count", f"{count_text!r} is not a whole number from 1 to {MAX_TRACE_COUNT:,}")
        floor = row.price("minimum_bid_price")
        on_demand = row.price("uninterruptable_price")
        offers_text = row.text(OFFERS_COLUMN)
        if offers_text and not (_whole(offers_text) and int(offers_text) <= MAX_TRACE_COUNT):
            raise row.fail(OFFERS_COLUMN, f"{offers_text!r} is not a whole number of offers up to {MAX_TRACE_COUNT:,} "
                                          "(empty = not known)")
        first = seen.first((market, gpu_type, cloud, int(count_text)), second, line)
        if first is not None:
            where = "" if market == DEFAULT_MARKET else f" on {market}"
            raise row.fail("ts", f"a second row for {gpu_type} {cloud} x{int(count_text)}{where} at {to_iso(ts)} "
                                 f"(the first is line {first})")
        yield PriceQuote(ts=ts, gpu_type_id=gpu_type, cloud=cloud,
                         gpu_count=int(count_text), minimum_bid_price=floor, uninterruptable_price=on_demand,
                         stock_status=row.text("stock_status") or None, market=market,
                         offer_count=int(offers_text) if offers_text else None)


def read_trace(source: str | Path | IO[str], *, name: str | None = None) -> list[PriceQuote]:
    """All the quotes of a trace (see iter_trace); raises TraceFormatError if any row is bad."""
    quotes = list(iter_trace(source, name=name))
    if not quotes:
        label = name or str(source)
        raise TraceFormatError(f"{label} has a header but no data rows", path=label, line=2)
    return quotes


def write_trace(quotes: Iterable[PriceQuote], out: str | Path | IO[str], *, market: bool | None = None) -> int:
    """Write quotes as a trace CSV (header + rows, floats written exactly); returns the row count.

    The `market` column is written when `market` is True, or (None) when any quote is not RunPod's:
    a RunPod-only trace stays exactly what it always was. With None, `quotes` is read whole first
    unless it is a sequence; a streaming caller that knows its markets passes True or False.
    """
    if isinstance(out, (str, Path)):
        with open(out, "w", newline="", encoding="utf-8") as handle:
            return write_trace(quotes, handle, market=market)
    if market is None:
        quotes = quotes if isinstance(quotes, Sequence) else list(quotes)
        market = any(q.market != DEFAULT_MARKET for q in quotes)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(TRACE_COLUMNS + ((MARKET_COLUMN, OFFERS_COLUMN) if market else ()))
    count = 0
    for q in quotes:
        row: list[Any] = [to_iso(q.ts), q.gpu_type_id, _number(q.minimum_bid_price),
                          _number(q.uninterruptable_price), q.cloud, q.gpu_count, q.stock_status or ""]
        if market:
            row += [q.market, "" if q.offer_count is None else q.offer_count]
        elif q.market != DEFAULT_MARKET:
            raise ValueError(f"a {q.market} quote in a trace written without the market column")
        writer.writerow(row)
        count += 1
    return count


def _number(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def trace_text(quotes: Iterable[PriceQuote]) -> str:
    """The trace CSV as a string (small exports and tests)."""
    buffer = io.StringIO()
    write_trace(quotes, buffer)
    return buffer.getvalue()
