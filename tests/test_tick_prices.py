"""The tick's price collection when a market answers wrongly: the tick says which market's prices
failed and which snapshot it decides on (one line), records the failure, and goes on with its pods;
an empty catalogue or an empty offer list is a failed collection, never a 0-quote snapshot."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from executor_helpers import ON_DEMAND_SERVICE, make_env
from two_markets import VAST4090, tick

from bidder.cli import main
from bidder.sim import TEST_API_KEY
from bidder.units import to_iso

WRONG_PRICES = {
    "gpuTypes null": {"data": {"gpuTypes": None}},
    "data empty": {"data": {}},
    "no GPU types": {"data": {"gpuTypes": []}},
}


@pytest.fixture
def env(emulator, client, tmp_path):
    emulator.world.reclaim_rate_per_hour = 0.0
    e = make_env(emulator, client, tmp_path)
    (tmp_path / "bidder.toml").write_text(ON_DEMAND_SERVICE)
    yield e
    e.store.close()


def cli_tick(env):
    runner = CliRunner(env={"RUNPOD_API_KEY": TEST_API_KEY, "VAST_API_KEY": None})
    return runner.invoke(main, ["tick", "--config", str(env.tmp / "bidder.toml"), "--db", str(env.tmp / "bidder.db"),
                                "--api-url", env.emu.url, "--now", to_iso(env.emu.now)])


@pytest.mark.parametrize("body", WRONG_PRICES.values(), ids=WRONG_PRICES.keys())
def test_a_wrong_runpod_price_answer_is_one_warning_line_and_the_tick_goes_on(env, body):
    assert cli_tick(env).exit_code == 0  # a launch: the job has a pod to look after
    before = env.store.last_collection_ts(market="runpod")
    env.emu.advance(3600)  # the snapshot is older than collect_interval: this tick collects
    env.emu.malform("lowestPrices", body, times=None)
    result = cli_tick(env)
    assert result.exit_code == 0, result.output
    assert "collected a price snapshot" not in result.output
    [line] = [x for x in result.stderr.splitlines() if "prices not collected" in x]
    assert line.startswith("warning: RunPod prices not collected: MalformedAnswer: ")
    assert line.endswith(f"; deciding on the snapshot of {to_iso(before)}")
    assert "train: running: running on NVIDIA RTX A6000" in result.output  # its pod is still looked after
    newest = env.store.collections(limit=1)[0]
    assert newest["market"] == "runpod" and newest["quotes"] == 0 and newest["error"].startswith("MalformedAnswer")
    assert env.store.last_collection_ts(market="runpod") == before  # no 0-quote snapshot counts as one
    if body == {"data": {"gpuTypes": []}}:
        assert "no GPU types" in newest["error"]


def test_the_api_down_still_stops_the_tick_with_one_line(env):
    runner = CliRunner(env={"RUNPOD_API_KEY": TEST_API_KEY, "VAST_API_KEY": None})
    result = runner.invoke(main, ["tick", "--config", str(env.tmp / "bidder.toml"), "--db", str(env.tmp / "bidder.db"),
                                  "--api-url", "http://127.0.0.1:9/graphql", "--now", to_iso(env.emu.now),
                                  "--retries", "1"])
    assert result.exit_code == 1 and result.stderr.startswith("Error: ") and len(result.stderr.splitlines()) == 1


JOB = f"""
[jobs.v]
gpu = ["{VAST4090}"]
market = "vast"
keep_running = true
tolerance = "high"
max_price = 0.6
image = "pytorch/pytorch"
disk = 20
"""


@pytest.mark.parametrize("operation, body", [
    ("vast:search", {"offers": []}),
    ("lowestPrices", {"data": {"gpuTypes": None}}),
    ("lowestPrices", {"data": {"gpuTypes": []}}),
])
def test_one_market_failing_is_reported_while_the_other_is_collected(both, operation, body):
    env, api = both
    config = env.config(JOB)
    assert tick(env, api, config).jobs[0].state == "running"
    failing = "vast" if operation.startswith("vast") else "runpod"
    before = env.store.last_collection_ts(market=failing)
    env.emu.advance(3600)
    env.emu.malform(operation, body, times=None)
    report = tick(env, api, config)
    assert report.collected and report.collected_markets == tuple(m for m in ("runpod", "vast") if m != failing)
    name = {"vast": "Vast", "runpod": "RunPod"}[failing]
    assert list(report.price_failures) == [failing]
    message = report.price_failures[failing]
    assert message.startswith(f"{name} prices not collected: MalformedAnswer: ")
    assert message.endswith(f"deciding on the snapshot of {to_iso(before)}")
    assert report.jobs[0].state in ("running", "waiting"), report.jobs[0].message  # (paused by an outbid)
    # (failed again when the tick re-collects before deciding: still one line in the report)
    assert {e["market"] for e in report.events if e["event"] == "collect_failed"} == {failing}
    assert env.store.last_collection_ts(market=failing) == before
    rows = [r for r in env.store.collections(limit=4) if r["ts"] == report.ts.replace(microsecond=0)]
    assert {r["market"]: bool(r["error"]) for r in rows} == {failing: True,
                                                             ("runpod" if failing == "vast" else "vast"): False}


def test_a_failure_the_tick_mends_before_deciding_is_not_reported(env):
    # A new job: the tick collects again before deciding (its snapshot is not fresh after a failure),
    # and that second answer is good: the launch is decided on it, and nothing is left to report.
    env.emu.malform("lowestPrices", {"data": {"gpuTypes": None}}, times=1)
    result = cli_tick(env)
    assert result.exit_code == 0, result.output
    assert "prices not collected" not in result.stderr
    assert f"collected a price snapshot at {to_iso(env.emu.now)}\n" in result.output
    assert "train: running: launched" in result.output
    assert [bool(r["error"]) for r in env.store.collections(limit=2)] == [False, True]
