"""A stopped Vast on-demand instance started again by a tick is priced at the rate it bills, not at its
market's quote: against the emulator over HTTP, real SQLite, the real tick. Its own offer is off the
listing while it is rented (stopped too), so the quote is another offer's; the resume was held to that
quote (max_spend_per_hour, the budget) and recorded at it in the ledger."""

from __future__ import annotations

import pytest
from executor_helpers import Env
from test_vast_on_demand_own_rate import quoted_compute
from two_markets import tick, vast_live

from bidder.executor import Executor
from bidder.tick import reopen_stopped_pod
from bidder.vast_pods import VastPodApi

JOB = """{top}
[jobs.v]
market = "vast"
gpu = ["RTX 4090"]
cloud = "verified"
hours = 40
tolerance = "none"
image = "img"
disk = 20
"""


def stopped_on_demand(env: Env, api: VastPodApi):
    """The job's on-demand instance, rented by a tick, seen at its own rate by a later collect (the
    quote then the next offer's), stopped by `bidder stop` and reopened by `bidder jobs start`."""
    config = env.config(JOB.format(top=""))
    first = tick(env, api, config).jobs[0]
    [od] = vast_live(env.emu)
    assert first.state == "running" and not od.is_bid, first.message
    env.emu.advance(600)
    assert tick(env, api, config).jobs[0].state == "running"  # (collects: its offer is off the listing)
    row = env.store.pod(str(od.id))
    Executor(api, env.store).stop_pod(row, env.emu.now, reason="stopped by `bidder stop`", state="stopped")
    env.store.save_job_state("v", state="held", note="held: its pod was stopped by `bidder stop`")
    assert od.intended == "stopped"
    env.emu.advance(600)
    env.store.save_job_state("v", state="new", note=None)  # what `bidder jobs start v` does, with:
    assert reopen_stopped_pod(env.store, "v") == str(od.id)
    return od


def test_a_resumed_vast_on_demand_instance_is_said_and_recorded_at_its_own_rate(vast_calm):
    env, api = vast_calm
    od = stopped_on_demand(env, api)
    line = tick(env, api, env.config(JOB.format(top=""))).jobs[0]
    quoted = quoted_compute(env.store)
    assert quoted > od.compute_per_hr + 0.005, (quoted, od.compute_per_hr)  # its offer is not the quote's
    assert line.state == "running" and line.pod_id == str(od.id), line.message
    assert od.intended == "running" and vast_live(env.emu) == [od]
    assert f"runs again: on-demand at ${od.compute_per_hr:.3f}/h" in line.message, line.message
    [resume] = [a for a in env.store.actions("v") if a["kind"] == "resume"]
    assert resume["outcome"] == "ok" and resume["expected_cost_per_hour"] == pytest.approx(od.compute_per_hr)


def test_a_vast_on_demand_resume_within_max_spend_per_hour_is_not_refused_for_the_quote(vast_calm):
    env, api = vast_calm
    od = stopped_on_demand(env, api)
    quoted = quoted_compute(env.store)
    # The user's spending cap, set while it was stopped: over the instance's own rate and its disk, under
    # the quote's (with the same disk).
    cap = od.compute_per_hr + od.storage_per_hr + (quoted - od.compute_per_hr) / 2
    line = tick(env, api, env.config(JOB.format(top=f"max_spend_per_hour = {cap:.4f}\n"))).jobs[0]
    assert quoted > od.compute_per_hr + 0.005, (quoted, od.compute_per_hr)
    assert line.state == "running" and line.pod_id == str(od.id), line.message
    assert od.intended == "running" and vast_live(env.emu) == [od]
    assert [a["kind"] + ":" + a["outcome"] for a in env.store.actions("v")] == [
        "deploy_on_demand:ok", "stop:ok", "resume:ok"]


def test_a_stopped_vast_on_demand_instance_under_the_max_price_is_resumed_though_the_quote_is_over_it(vast_calm):
    """The decision weighed the stopped instance at its market's quote (another offer's, over the cap) and
    the job waited, "no candidate meets the max price", while its own instance, under the cap, billed
    storage: it is weighed at its own rate, as a running one is."""
    env, api = vast_calm
    od = stopped_on_demand(env, api)
    quoted = quoted_compute(env.store)
    assert quoted > od.compute_per_hr + 0.005, (quoted, od.compute_per_hr)
    cap = (od.compute_per_hr + quoted) / 2
    job = JOB.format(top="").replace('image = "img"', f'image = "img"\nmax_price = {cap:.4f}')
    line = tick(env, api, env.config(job)).jobs[0]
    assert line.state == "running" and line.pod_id == str(od.id), line.message
    assert od.intended == "running" and vast_live(env.emu) == [od]
    assert [a["kind"] + ":" + a["outcome"] for a in env.store.actions("v")] == [
        "deploy_on_demand:ok", "stop:ok", "resume:ok"]
