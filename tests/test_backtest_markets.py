"""Backtests over Vast history: a trace with the market column runs through `bidder backtest`
unchanged, market by market; the market label alone changes no number."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from test_backtest_cli import _quotes

from bidder.backtest.history import history_from_quotes, load_store
from bidder.cli import main
from bidder.store import Store
from bidder.traces import write_trace


def as_vast(quotes):
    return [replace(q, market="vast", cloud="VERIFIED", gpu_type_id=q.gpu_type_id.removeprefix("NVIDIA ")
                    .removeprefix("GeForce ")) for q in quotes]


def backtest(trace: Path, *extra: str) -> dict:
    result = CliRunner().invoke(main, ["backtest", "--trace", str(trace), "--hours", "20", "--deadline", "2d",
                                       "--every", "1d", "--format", "json", *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_a_vast_trace_backtests_exactly_like_the_same_prices_on_runpod(tmp_path):
    runpod, vast = tmp_path / "runpod.csv", tmp_path / "vast.csv"
    write_trace(_quotes(), runpod)
    write_trace(as_vast(_quotes()), vast)
    assert vast.read_text().splitlines()[0].endswith(",market,offers")
    a, b = backtest(runpod), backtest(vast)
    assert a["windows"] == b["windows"] == 3
    assert [s["cost"] for s in a["strategies"]] == [s["cost"] for s in b["strategies"]]
    assert [s["interruptions"] for s in a["strategies"]] == [s["interruptions"] for s in b["strategies"]]


def test_history_keeps_each_markets_series_apart(tmp_path):
    quotes = _quotes(days=1) + as_vast(_quotes(days=1, seed=3))
    history = history_from_quotes(quotes)
    assert [m.key for m in history.markets] == [
        ("NVIDIA GeForce RTX 4090", "COMMUNITY", 1), ("NVIDIA RTX A6000", "COMMUNITY", 1),
        ("RTX 4090", "VERIFIED", 1, "vast"), ("RTX A6000", "VERIFIED", 1, "vast")]
    assert history.markets[2].label == "RTX 4090 VERIFIED (vast)"
    with Store.open(tmp_path / "b.db") as store:
        store.import_quotes(quotes)
        loaded = load_store(store)
    assert [m.key for m in loaded.markets] == [m.key for m in history.markets]
    np.testing.assert_array_equal(loaded.floor, history.floor)  # NaN where a market has no sample yet


def test_the_cloud_option_picks_a_vast_tier(tmp_path):
    vast = tmp_path / "vast.csv"
    write_trace(as_vast(_quotes()), vast)
    assert backtest(vast, "--cloud", "verified")["windows"] == 3
    result = CliRunner().invoke(main, ["backtest", "--trace", str(vast), "--hours", "20", "--cloud", "secure"])
    assert result.exit_code != 0 and "RTX 4090 VERIFIED (vast)" in result.output
