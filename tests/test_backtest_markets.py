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


def _both_markets(tmp_path: Path) -> tuple[Path, Path]:
    """The same two days as a trace and as a database: RunPod's two GPU types and Vast's two."""
    quotes = _quotes(days=2) + as_vast(_quotes(days=2, seed=3))
    trace, db = tmp_path / "both.csv", tmp_path / "both.db"
    write_trace(quotes, trace)
    with Store.open(db) as store:
        store.import_quotes(quotes)
    return trace, db


def _markets_replayed(*args: str) -> list[str]:
    result = CliRunner().invoke(main, ["backtest", *args, "--hours", "5", "--deadline", "12h", "--start",
                                       "2026-01-01T12:00:00Z", "--strategies", "on-demand", "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["history"]["markets"]


def test_market_keeps_one_markets_history_in_a_trace_and_a_database_alike(tmp_path):
    trace, db = _both_markets(tmp_path)
    vast = ["RTX 4090 VERIFIED (vast)", "RTX A6000 VERIFIED (vast)"]
    runpod = ["NVIDIA GeForce RTX 4090 COMMUNITY", "NVIDIA RTX A6000 COMMUNITY"]
    for source in (("--trace", str(trace)), ("--db", str(db))):
        assert _markets_replayed(*source) == runpod + vast
        assert _markets_replayed(*source, "--market", "vast") == vast
        assert _markets_replayed(*source, "--market", "RunPod") == runpod
        # --gpu names a GPU type of the market chosen (Vast's RTX 4090, not RunPod's)
        assert _markets_replayed(*source, "--market", "vast", "--gpu", "4090") == vast[:1]


def test_market_on_a_trace_without_a_market_column_is_runpods(tmp_path):
    trace = tmp_path / "runpod.csv"
    write_trace(_quotes(days=2), trace)
    assert "market" not in trace.read_text().splitlines()[0]
    assert _markets_replayed("--trace", str(trace), "--market", "runpod") == _markets_replayed("--trace", str(trace))
    result = CliRunner().invoke(main, ["backtest", "--trace", str(trace), "--market", "vast", "--hours", "5",
                                       "--deadline", "12h"])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == (f"Error: {trace} holds no vast rows (its markets: runpod): give another --market, "
                             "or leave it out\n")


def test_market_and_cloud_must_agree(tmp_path):
    trace, _ = _both_markets(tmp_path)
    result = CliRunner().invoke(main, ["backtest", "--trace", str(trace), "--market", "vast", "--cloud", "community"])
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1
    assert "community is not a cloud of vast; its clouds are verified, unverified" in result.stderr


def test_min_vram_on_a_trace_names_the_types_whose_memory_it_does_not_give(tmp_path):
    """A trace carries no VRAM, and RunPod's catalogue knows none of Vast's names: --min-vram on an
    export left Vast's types out of a backtest that on the database kept them, without a word."""
    vram = {"NVIDIA RTX A6000": 48, "NVIDIA GeForce RTX 4090": 24, "RTX A6000": 48, "RTX 4090": 24}
    quotes = [replace(q, memory_in_gb=vram[q.gpu_type_id]) for q in _quotes(days=3) + as_vast(_quotes(days=3))]
    trace, db = tmp_path / "exported.csv", tmp_path / "collected.db"
    write_trace(quotes, trace)
    cycles: dict = {}
    for q in quotes:
        cycles.setdefault((q.ts, q.market), []).append(q)
    with Store.open(db) as store:  # collected: RunPod's catalogue and Vast's offers gave the memory
        for (ts, market), cycle in sorted(cycles.items()):
            store.record_collection(ts, cycle, duration_s=0.1, market=market)

    def run(*args: str):
        result = CliRunner().invoke(main, ["backtest", *args, "--hours", "5", "--deadline", "12h", "--strategies",
                                           "on-demand", "--format", "json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)["history"]["markets"], result.stderr

    on_db, said = run("--db", str(db), "--min-vram", "40")
    assert on_db == ["NVIDIA RTX A6000 COMMUNITY", "RTX A6000 VERIFIED (vast)"] and said == ""
    on_trace, said = run("--trace", str(trace), "--min-vram", "40")
    assert on_trace == ["NVIDIA RTX A6000 COMMUNITY"]
    assert said == ("note: --min-vram leaves out RTX 4090, RTX A6000: the trace does not give their memory; to "
                    "include them, name the GPU types wanted with --gpu instead\n")
    named, said = run("--trace", str(trace), "--gpu", "RTX A6000")
    assert named == on_db and said == ""
    # Only the types the job could use are named: RunPod's alone leaves out none.
    assert run("--trace", str(trace), "--min-vram", "40", "--market", "runpod")[1] == ""
