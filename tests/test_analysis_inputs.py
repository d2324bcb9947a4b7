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
    ("study_quantile_rule.py", ["--trace", TRACE, "--gpus", "NOPE"], "study_quantile_rule: error: --gpus must name"),
    ("study_quantile_rule.py", ["--trace", TRACE, "--gpus", "NVIDIA L40S", "--out", "/proc/no-such-folder/q.md"],
     "study_quantile_rule: error: --out /proc/no-such-folder/q.md: its folder does not exist"),
    ("study_quantile_rule.py", ["--trace", TRACE, "--gpus", "NVIDIA RTX A6000|NVIDIA L40S"],
     "study_quantile_rule: error: --gpus: give one GPU type"),
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


def test_the_quantile_rule_study_replays_every_rule_beside_bidder_and_the_optimum(tmp_path):
    out = tmp_path / "rule.md"
    result = subprocess.run([sys.executable, str(ANALYSIS / "study_quantile_rule.py"), "--trace", TRACE, "--gpus",
                             "NVIDIA RTX A6000", "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ") and not line.startswith(("| strategy", "| ---"))]
    names = [row.split(" | ")[0][2:] for row in rows]
    assert len(names) == 2 + 18 and {"bidder", "optimum", "q0.5 of 6 h", "q0.95 of 72 h"} <= set(names)
    assert all(row.endswith("| 100% |") for row in rows)  # on-demand takes over before a deadline is missed
    ratios = [float(row.split(" | ")[1].split()[0]) for row in rows]
    assert ratios == sorted(ratios) and ratios[0] >= 1.0  # cheapest first; none under the optimum's bound
    # On this calm market a rule that bids over the recent floor runs spot (on-demand alone is 2.67x the optimum)
    assert min(r for n, r in zip(names, ratios, strict=True) if n.startswith("q")) < 1.3
    assert out.read_text().rstrip().splitlines()[-1].startswith("best rule: q")
