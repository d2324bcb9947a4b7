"""`bidder sim serve` serves Vast on the same port and prints its URL; `bidder sim trace --market vast`."""

from __future__ import annotations

import csv
import subprocess
import sys

import httpx
import pytest
from click.testing import CliRunner

from bidder.cli import main
from bidder.sim import TEST_API_KEY


def test_serve_prints_the_vast_url_after_the_existing_lines_and_answers_with_the_same_key():
    proc = subprocess.Popen([sys.executable, "-c", "from bidder.cli import main; main()", "sim", "serve"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().strip() for _ in range(7)]
        assert lines[5] == "Press Ctrl-C to stop."
        prefix = "Vast API (VAST_URL, same key): "
        assert lines[6].startswith(prefix)
        vast_url = lines[6].removeprefix(prefix)
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
    assert len(rows) == 12 * 4 * 2  # instants (the end excluded, as in RunPod's trace) x GPU counts x tiers
    assert max(r["ts"] for r in rows) == "2026-01-01T11:00:00Z"
    assert {r["cloud"] for r in rows} == {"VERIFIED", "UNVERIFIED"} and {r["market"] for r in rows} == {"vast"}
    priced = [r for r in rows if r["minimum_bid_price"]]
    assert priced and all(float(r["minimum_bid_price"]) < float(r["uninterruptable_price"]) * 1.1 for r in priced)
    again = tmp_path / "again.csv"
    CliRunner().invoke(main, ["sim", "trace", str(again), "--market", "vast", "--days", "0.5", "--step", "1h",
                              "--gpu-type", "RTX 4090", "--seed", "3"])
    assert again.read_text() == out.read_text()  # seeded
    bad = CliRunner().invoke(main, ["sim", "trace", str(tmp_path / "x.csv"), "--market", "vast", "--gpu-type", "RTX 9999"])
    assert bad.exit_code == 2 and "RTX 9999" in bad.output and "Traceback" not in bad.output


def test_the_vast_trace_quotes_what_the_emulator_serves_at_the_same_instants():
    from datetime import timedelta

    from vast_helpers import vast_client

    from bidder.sim import Emulator, generate_vast_quotes, generate_vast_trace
    from bidder.sim.prices import DEFAULT_START

    quotes = generate_vast_quotes(4, 1.0, 6 * 3600)
    assert generate_vast_trace(4, 1.0, 6 * 3600)[5]["minimum_bid_price"] == quotes[5].minimum_bid_price
    with Emulator(seed=4) as emu, vast_client(emu) as vast:
        for hours in (0, 6, 12):
            emu.advance(hours * 3600 - (emu.now - DEFAULT_START).total_seconds())
            offers = [o for o in vast.search_offers() if o.reliability >= 0.95]
            at = [q for q in quotes if q.ts == DEFAULT_START + timedelta(hours=hours)]
            assert len(at) == 6 * 4 * 2
            for q in at:
                mine = [o for o in offers if o.gpu_name == q.gpu_type_id and o.num_gpus == q.gpu_count
                        and o.verified == (q.cloud == "VERIFIED")]
                assert q.stock_status == f"{len(mine)} offers"
                if not mine:
                    assert q.minimum_bid_price is None and q.uninterruptable_price is None
                    continue
                assert q.minimum_bid_price == pytest.approx(min(o.spot_floor_per_gpu for o in mine), abs=1e-6)
                assert q.uninterruptable_price == pytest.approx(min(o.on_demand_per_gpu for o in mine), abs=1e-6)
