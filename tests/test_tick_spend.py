"""The ledger's spend (from observations, pay-as-bid per second) against what the emulator billed,
over a simulated week of ticks with interruptions (outbids and random reclaims).

The ticks are 10 minutes apart (half the cron period the README suggests) to keep the test fast:
the accounting does not depend on the period, since each stop is dated from lastStatusChange."""

from __future__ import annotations

import pytest
from executor_helpers import A6000, make_env

from bidder.executor import exit_time


@pytest.fixture
def env(emulator, client, tmp_path):
    emulator.world.reclaim_rate_per_hour = 0.05  # about one reclaim a day on top of outbids
    e = make_env(emulator, client, tmp_path)
    yield e
    e.store.close()


def test_ledger_spend_matches_billed_spend_over_a_week(env):
    # 110 GPU-hours due in a week on one spot market: the job runs most of the week, through outbids
    # and reclaims, waits out some spikes, and finishes (its pod is stopped by bidder at the end).
    config = env.config(f"""collect_interval = "1h"

[jobs.svc]
gpu = ["{A6000}"]
cloud = "community"
hours = 110
deadline = "7d"
tolerance = 24
min_savings = 0
image = "runpod/pytorch:latest"
""")
    reports = env.run(config, minutes=7 * 24 * 60, every=10)
    env.tick(config)
    assert len(reports) == 1008
    pods = env.store.managed_pods("svc")
    interruptions = sum(p["interruptions"] for p in pods)
    assert interruptions >= 5, "the week must include interruptions for the test to mean anything"
    ledger = env.store.spend_by_pod("svc")
    billed = {p["pod_id"]: env.emu.world.true_spend(p["pod_id"]) for p in pods}
    assert sum(billed.values()) > 5.0
    for pod_id, usd in billed.items():
        assert ledger[pod_id] == pytest.approx(usd, rel=0.01, abs=0.005), pod_id
    assert sum(ledger.values()) == pytest.approx(sum(billed.values()), rel=0.01)
    # The issue asks for 1%. Dating each stop from lastStatusChange does far better; guessing stop
    # times (half the poll interval) was 0.47% off on this week, so this line tells the two apart.
    assert sum(ledger.values()) == pytest.approx(sum(billed.values()), rel=0.001)
    assert env.store.job_state("svc")["spent"] == pytest.approx(sum(billed.values()), rel=0.001)


def test_exit_time_reads_runpods_status_text():
    from datetime import UTC, datetime

    assert exit_time("Exited by Runpod: outbid at Thu Jan 01 2026 00:05:00 GMT+0000 (Coordinated Universal Time)") \
        == datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
    assert exit_time("Exited by User: Fri Jan 02 2026 13:00:07 GMT+0100 (Central European Standard Time)") \
        == datetime(2026, 1, 2, 12, 0, 7, tzinfo=UTC)
    assert exit_time("Exited by Runpod: 2026-01-03T04:05:06Z") == datetime(2026, 1, 3, 4, 5, 6, tzinfo=UTC)
    assert exit_time("Rented by User") is None
    assert exit_time(None) is None
    assert exit_time("Exited by Runpod: Thu Foo 99 2026 00:05:00 GMT+0000") is None
