"""`bidder demo` through the CLI: emulator, history, recommendation, managed job with ticks, spend
report (ledger equal to the emulator's billing), in well under 30 s."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest
from click.testing import CliRunner

from bidder.cli import main
from bidder.jobs import load_config
from bidder.store import Store


def test_demo_runs_the_whole_flow_and_reports_spend(tmp_path):
    result = CliRunner().invoke(main, ["demo", "--days", "1.5", "--history-days", "1", "--seed", "3",
                                       "--keep", str(tmp_path)])
    assert result.exit_code == 0, result.output + result.stderr
    out = result.output
    assert re.match(r"Emulator: RunPod's GraphQL API on http://127\.0\.0\.1:\d+/graphql \(seed 3\)", out)
    assert "Collected 144 price snapshots over 1 simulated days" in out
    assert re.search(r"\n +Vast's REST API on http://127\.0\.0\.1:\d+ \(same key, same clock\)", out)
    assert "Prices now (USD per GPU-hour):" in out and "NVIDIA RTX A6000           COMMUNITY" in out
    assert re.search(r"RTX 4090 +VERIFIED .* vast\n", out)  # both markets' prices
    assert "Recommendation (" in out
    # The job is open to both markets. Vast's machines in the emulator are taken or outbid every hour or
    # two (the offers the demo collects show it), so its plan keeps to RunPod's spot here.
    assert re.search(r"rented spot NVIDIA [^()]+ \((COMMUNITY|SECURE)\)", out)
    assert "interrupted (outbid)" in out and "podBidResume" in out
    assert re.search(r"\d+ pod\(s\) \(\d+ on runpod(, \d+ on vast)?\)", out)
    spent = re.search(r"spent \$(\d+\.\d\d) by the ledger; the emulator billed \$(\d+\.\d\d)", out)
    assert spent and spent.group(1) == spent.group(2) and float(spent.group(1)) > 0
    assert re.search(r"on-demand \(no interruptions\) at \$0\.330/h.*bidder saved \d+%", out)
    # The console also gives the cost report's own measure, and it is the page's figure.
    measure = re.search(r"the cost report's measure \(each pod's [\d.]+ running hours.*\): (\$[\d.]+); saved (\d+%)", out)
    page = (tmp_path / "report" / "report.html").read_text()
    assert measure and f"On-demand would have cost</span><b>{measure.group(1)}</b>" in page
    assert re.search(rf"Saved</span><b>\$[\d.]+ \({measure.group(2)}\)</b>", page)
    assert out.rstrip().splitlines()[-1].startswith("Done in ")
    # What it leaves behind is an ordinary bidder setup: a valid bidder.toml and a ledger.
    config = load_config(tmp_path / "bidder.toml")
    assert list(config.jobs) == ["train"] and config.job("train").job.work_hours == 18
    with Store.open(tmp_path / "bidder.db") as store:
        kinds = {a["kind"] for a in store.actions("train")}
        assert {"rent_spot", "bid_resume"} <= kinds
        assert len(store.latest_quotes()) > 0


def test_demo_rejects_bad_options_in_one_line():
    for option, value in (("--days", "40"), ("--days", "0.1"), ("--history-days", "0.2")):
        result = CliRunner().invoke(main, ["demo", option, value])
        assert result.exit_code == 2, (option, value, result.output)
        assert result.stderr.startswith(f"Error: Invalid value for '{option}': ") and "is not in the range" in result.stderr
        assert len(result.stderr.splitlines()) == 1
    result = CliRunner().invoke(main, ["demo", "--seed", "-1"])
    assert result.exit_code == 2 and "--seed" in result.stderr


def test_demo_refuses_a_keep_folder_that_is_not_empty_or_not_a_folder(tmp_path):
    # A second demo in the same folder would collect into the first one's database and mix both runs.
    (tmp_path / "bidder.db").write_bytes(b"an earlier run")
    result = CliRunner().invoke(main, ["demo", "--keep", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: Invalid value for '--keep': {tmp_path} is not empty")
    assert (tmp_path / "bidder.db").read_bytes() == b"an earlier run" and len(list(tmp_path.iterdir())) == 1
    (tmp_path / "afile").write_text("")
    result = CliRunner().invoke(main, ["demo", "--keep", str(tmp_path / "afile" / "sub")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.startswith(f"Error: Invalid value for '--keep': cannot use {tmp_path / 'afile' / 'sub'}")
    # An empty name (it said "Invalid value for '--keep':  is not empty" of the current folder).
    result = CliRunner().invoke(main, ["demo", "--keep", ""])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith(
        "Error: Invalid value for '--keep': give the folder to keep the demo's files in (an empty name is none)")


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_demo_ended_by_a_signal_removes_its_temporary_files(tmp_path, sig, code):
    # SIGTERM (`timeout`, a closed session) killed it at once and left a 30 MB database in /tmp.
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch), "HOME": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "bidder", "demo", "--days", "1", "--history-days", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        first = proc.stdout.readline()  # under way: its database is made
        assert first, proc.stderr.read()
        assert any(scratch.iterdir())
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == code
        assert "Traceback" not in proc.stderr.read()
        assert list(scratch.iterdir()) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
