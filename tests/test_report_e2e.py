"""End to end: bidder's ticks run a job on the emulator over real HTTP for two simulated days, then
`bidder report` on the same SQLite file must agree with what the emulator billed (within 1%)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from click.testing import CliRunner

pytest.importorskip("bidder.tick", reason="the executor (bidder.tick) is not in this checkout yet")

from executor_helpers import GPUS, make_env

from bidder.cli import main
from bidder.report.data import spend_report
from bidder.sim import TEST_API_KEY
from bidder.units import to_iso


@pytest.fixture
def env(emulator, client, tmp_path):
    emulator.world.reclaim_rate_per_hour = 0.1  # a few reclaims on top of outbids
    e = make_env(emulator, client, tmp_path)
    yield e
    e.store.close()


def test_report_agrees_with_the_emulators_bill(env, tmp_path):
    config = env.config(f"""collect_interval = "1h"

[jobs.svc]
gpu = {list(GPUS)!r}
keep_running = true
tolerance = 24
min_savings = 0
image = "runpod/pytorch:latest"
""".replace("'", '"'))
    start = env.emu.now
    env.run(config, minutes=2 * 24 * 60, every=10)
    env.tick(config)
    end = env.emu.now + timedelta(seconds=1)

    report = spend_report(env.store, since=start, until=end)
    billed = {p.pod_id: env.emu.world.true_spend(p.pod_id) for p in report.pods}
    assert report.pods and sum(billed.values()) > 1.0
    for pod in report.pods:
        assert pod.spend == pytest.approx(billed[pod.pod_id], rel=0.01, abs=0.005), pod.pod_id
    assert report.totals.spend == pytest.approx(sum(billed.values()), rel=0.01)
    # Interruptions as the report derives them from the ledger = the executor's own count.
    counted = sum(int(p["interruptions"] or 0) for p in env.store.managed_pods("svc"))
    assert report.totals.interruptions == counted >= 1, "the run must include interruptions to mean anything"
    # Spot at pay-as-bid costs less than on-demand did at the recorded prices.
    assert report.totals.on_demand_cost > report.totals.spend > 0
    assert 0 < report.totals.saving_pct < 100
    # Two halves of the period add up to the whole.
    mid = start + (end - start) / 2
    halves = [spend_report(env.store, since=start, until=mid), spend_report(env.store, since=mid, until=end)]
    assert sum(h.totals.spend for h in halves) == pytest.approx(report.totals.spend)

    db = str(env.store.path)
    result = CliRunner().invoke(main, ["report", "--db", db, "--since", to_iso(start), "--now", to_iso(end),
                                       "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["totals"]["spend"] == pytest.approx(sum(billed.values()), rel=0.01)
    assert data["totals"]["interruptions"] == counted
    busiest = max(report.pods, key=lambda p: p.interruptions)
    out = tmp_path / "prices.png"
    result = CliRunner().invoke(main, ["chart", "prices", "--db", db, "--pod", busiest.pod_id, "--since", "2d",
                                       "--now", to_iso(end), str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_pod_silent_since_its_launch_is_said_not_counted_as_spend(emulator, client, tmp_path):
    """`bidder launch`, then no poll for 3 hours while the pod runs and bills: the report books no spend
    that no poll vouches for, but says so in the text, the JSON and the page (whose poll coverage
    counts the silence as a gap); once a poll sees the pod, its spend is there."""
    emulator.world.reclaim_rate_per_hour = 0.0
    env = make_env(emulator, client, tmp_path)
    env.store.close()
    db, runner = str(tmp_path / "bidder.db"), CliRunner(env={"RUNPOD_API_KEY": TEST_API_KEY})

    def cli(*args: str):
        result = runner.invoke(main, [*args, "--db", db, "--now", to_iso(emulator.now)])
        assert result.exit_code == 0, result.output
        return result

    cli("launch", "--api-url", emulator.url, "--gpu", GPUS[0], "--tolerance", "none", "--hours", "6", "--image", "x",
        "--name", "od", "--yes")
    launched = to_iso(emulator.now)
    emulator.advance(3 * 3600)
    note = (f"1 pod(s) still active were last polled never (pod {{}}, launched at {launched}, 3.0 h before the "
            "period's end): their spend since is not counted")
    data = json.loads(cli("report", "--since", "2h", "--format", "json").stdout)
    [pod] = data["pods"]
    assert (pod["spend"], pod["unpolled_since"]) == (0, launched)
    assert data["notes"] == [f"{note.format(pod['pod_id'])} (the ledger books only what polls saw; `bidder tick` "
                             "or `bidder pods --refresh` polls them)"]
    text = cli("report", "--since", "2h").output
    assert "ran outside this period" not in text and f"Note: {note.format(pod['pod_id'])}" in text
    page = tmp_path / "page"
    cli("report", "--since", "3h", "--html", str(page))
    html = (page / "report.html").read_text()
    assert "<span>Poll coverage</span><b>0%</b>" in html and "No gap longer" not in html
    assert f"pod {pod['pod_id']} from {launched} to {to_iso(emulator.now)}" in html
    assert note.format(pod["pod_id"]).replace("'", "&#x27;") in html

    cli("pods", "--refresh", "--api-url", emulator.url)  # a poll: now the ledger books the 3 hours
    data = json.loads(cli("report", "--since", "3h", "--format", "json").stdout)
    assert data["pods"][0]["spend"] == pytest.approx(3 * emulator.world.on_demand(GPUS[0], data["pods"][0]["cloud"]),
                                                     rel=0.02)
    assert data["pods"][0]["unpolled_since"] is None and data["notes"] == []
