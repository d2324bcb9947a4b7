"""The analysis scripts (not installed: run as a user runs them, in a subprocess) say bad input in one
`NAME: error: ...` line with exit 2, as argparse says a bad option: a traceback came out of several."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ANALYSIS = Path(__file__).resolve().parents[1] / "analysis"
TRACE = str(ANALYSIS.parent / "data" / "traces" / "sim-seed1-14d.csv")


@pytest.mark.parametrize(("script", "args", "said"), [
    ("study_tolerance_bound.py", ["/nonexistent.csv", "--gpu", "X"], "study_tolerance_bound: error: cannot read trace"),
    ("study_tolerance_bound.py", [TRACE, "--gpu", "NOPE"], "study_tolerance_bound: error: no market in the history "
                                                           "matches the job (NOPE"),
    ("study_bid_tradeoff.py", ["--trace", TRACE, "--at", "teatime"], "study_bid_tradeoff: error: --at: "),
    # (Written into the test's folder, quick, should the check ever let it run: never analysis/results.)
    ("run_backtests.py", ["--traces", "/nonexistent.csv", "--out", "."], "--traces: /nonexistent.csv is not a file"),
    ("run_backtests.py", ["--workers", "0", "--out", ".", "--markets", "shipped", "--no-bidder", "--no-charts"],
     "--workers 0: give at least 1 process"),
    ("make_markets.py", ["--out", "/proc/no-such-folder/markets", "--days", "1"], "make_markets: error: "),
])
def test_bad_input_to_an_analysis_script_is_one_line(tmp_path, script, args, said):
    result = subprocess.run([sys.executable, str(ANALYSIS / script), *args], capture_output=True, text=True,
                            cwd=tmp_path, timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(said), result.stderr


def test_the_screenshot_script_reads_its_options_before_it_runs(capsys, monkeypatch):
    # `--help` ran the 7-day demo and overwrote analysis/results/report_screenshot.png.
    monkeypatch.syspath_prepend(str(ANALYSIS))
    import screenshot_report

    with pytest.raises(SystemExit) as stop:
        screenshot_report.main(["--help"])
    assert stop.value.code == 0 and "usage:" in capsys.readouterr().out
