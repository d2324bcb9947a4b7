"""The traces shipped in data/traces/: valid, as long as promised, reproducible, and an exact
import/export fixed point."""

from __future__ import annotations

import importlib.util
import itertools
import sys
from datetime import timedelta
from pathlib import Path

from click.testing import CliRunner

from bidder.cli import main
from bidder.traces import read_trace

ROOT = Path(__file__).resolve().parent.parent
TRACE = ROOT / "data" / "traces" / "sim-seed1-14d.csv"


def test_shipped_trace_covers_14_days_of_several_types_at_5_minutes():
    quotes = read_trace(TRACE)
    times = sorted({q.ts for q in quotes})
    assert times[-1] - times[0] >= timedelta(days=14) - timedelta(minutes=5)
    assert {b - a for a, b in itertools.pairwise(times)} == {timedelta(minutes=5)}
    markets = {(q.gpu_type_id, q.cloud) for q in quotes}
    assert len({g for g, _ in markets}) >= 5 and len(markets) == len(quotes) // len(times)
    assert (ROOT / "data" / "traces" / "README.md").read_text().count(TRACE.name) >= 2


def test_shipped_trace_is_what_make_traces_builds():
    spec_ = importlib.util.spec_from_file_location("make_traces", ROOT / "analysis" / "make_traces.py")
    make_traces = importlib.util.module_from_spec(spec_)
    sys.modules["make_traces"] = make_traces  # dataclasses look their module up there
    try:
        spec_.loader.exec_module(make_traces)
    finally:
        del sys.modules["make_traces"]
    TRACES, build = make_traces.TRACES, make_traces.build
    [spec] = [s for s in TRACES if s.name == TRACE.name]
    assert build(spec) == TRACE.read_text(encoding="utf-8")


def test_import_then_export_gives_the_same_bytes(tmp_path):
    db = str(tmp_path / "bidder.db")
    runner = CliRunner()
    assert runner.invoke(main, ["import-trace", str(TRACE), "--db", db]).exit_code == 0
    out = tmp_path / "again.csv"
    assert runner.invoke(main, ["export", "--db", db, "-o", str(out)]).exit_code == 0
    assert out.read_bytes() == TRACE.read_bytes()
