"""`bidder sim serve` serves Vast on the same port and prints its URL; `bidder sim trace --market vast`."""

from __future__ import annotations

import csv
import subprocess
import sys

import httpx
from click.testing import CliRunner

from bidder.cli import main
from bidder.sim import TEST_API_KEY


def test_serve_prints_the_vast_url_after_the_existing_lines_and_answers_with_the_same_key():
    proc = subprocess.Popen([sys.executable, "-c", "from bidder.cli import main; main()", "sim", "serve"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().strip() for _ in range(6)]
        assert lines[4] == "Press Ctrl-C to stop."
        prefix = "Vast API (VAST_URL, same key): "
        assert lines[5].startswith(prefix)
        vast_url = lines[5].removeprefix(prefix)
        assert lines[0] == vast_url + "/graphql"
        offers = httpx.post(vast_url + "/api/v0/bundles/", json={"num_gpus": {"eq": 1}}, timeout=10).json()["offers"]
        assert offers and all(o["num_gpus"] == 1 for o in offers)
        listed = httpx.get(vast_url + "/api/v1/instances/", headers={"Authorization": f"Bearer {TEST_API_KEY}"},
                           timeout=10)
        assert listed.json() == {"instances": [], "next_token": None}
        assert httpx.get(vast_url + "/api/v1/instances/", headers={"Authorization": "Bearer nope"},
                         timeout=10).status_code == 401
    finally:
        proc.terminate()
        proc.communicate(timeout=15)
    assert proc.returncode == 0


def test_trace_market_vast_writes_tiers_and_a_market_column(tmp_path):
    out = tmp_path / "vast.csv"
    result = CliRunner().invoke(main, ["sim", "trace", str(out), "--market", "vast", "--days", "0.5", "--step", "1h",
                                       "--gpu-type", "RTX 4090", "--seed", "3"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 13 * 4 * 2  # instants x GPU counts x tiers
    assert {r["cloud"] for r in rows} == {"VERIFIED", "UNVERIFIED"} and {r["market"] for r in rows} == {"vast"}
    priced = [r for r in rows if r["minimum_bid_price"]]
    assert priced and all(float(r["minimum_bid_price"]) < float(r["uninterruptable_price"]) * 1.1 for r in priced)
    again = tmp_path / "again.csv"
    CliRunner().invoke(main, ["sim", "trace", str(again), "--market", "vast", "--days", "0.5", "--step", "1h",
                              "--gpu-type", "RTX 4090", "--seed", "3"])
    assert again.read_text() == out.read_text()  # seeded
    bad = CliRunner().invoke(main, ["sim", "trace", str(tmp_path / "x.csv"), "--market", "vast", "--gpu-type", "RTX 9999"])
    assert bad.exit_code == 2 and "RTX 9999" in bad.output and "Traceback" not in bad.output
