"""A pod that ends outside bidder before its first poll: the launch is the evidence that it started
(at the create's time and price), so it is booked for half the interval from the launch to the poll
that found it gone, as a pod seen before is from its last poll (README: "half of that interval")."""

from __future__ import annotations

import pytest
from executor_helpers import A6000
from two_markets import VAST4090, tick

from bidder.store import estimate_spend

ON_DEMAND = f"""
[jobs.ex]
image = "x"
gpu = ["{A6000}"]
market = "runpod"
keep_running = true
allow_spot = false
max_price = 0.6
"""

VAST_JOB = f"""
[jobs.v]
image = "pytorch/pytorch"
gpu = ["{VAST4090}"]
market = "vast"
keep_running = true
tolerance = "high"
max_price = 0.6
disk = 20
"""


def test_a_runpod_pod_terminated_outside_bidder_before_its_first_poll_is_booked_half_the_interval(both):
    env, api = both
    config = env.config(ON_DEMAND)
    report = tick(env, api, config)
    assert report.jobs[0].state == "running", report.jobs[0].message
    [row] = env.store.managed_pods("ex")
    env.emu.advance(1200)
    env.emu.world.terminate(row["pod_id"])
    env.emu.advance(1200)
    report = tick(env, api, config)
    assert report.jobs[0].state == "held", report.jobs[0].message
    truth = env.emu.world.pods[row["pod_id"]].spend
    assert truth > 0.03
    ledger = estimate_spend(env.store.observations(row["pod_id"]))
    # Half of the 2400 s since the launch: here exactly what the emulator billed (it ended half-way).
    assert ledger == pytest.approx(truth, rel=0.02)
    assert env.store.job_state("ex")["spent"] == pytest.approx(ledger, abs=1e-5)
    assert report.jobs[0].spent == pytest.approx(ledger, abs=1e-5)


def test_a_vast_instance_destroyed_outside_bidder_before_its_first_poll_is_booked_half_the_interval(both):
    env, api = both
    config = env.config(VAST_JOB)
    report = tick(env, api, config)
    assert report.jobs[0].state == "running", report.jobs[0].message
    [row] = env.store.managed_pods("v")
    env.emu.advance(1200)
    env.emu.vast.destroy(int(row["pod_id"]))
    env.emu.advance(1200)
    report = tick(env, api, config)
    assert report.jobs[0].state == "held", report.jobs[0].message
    truth = env.emu.vast.true_spend(int(row["pod_id"]))
    assert truth > 0.01
    ledger = estimate_spend(env.store.observations(row["pod_id"]))
    assert ledger == pytest.approx(truth, rel=0.1)
    assert env.store.job_state("v")["spent"] == pytest.approx(ledger, abs=1e-5)
