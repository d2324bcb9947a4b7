"""A running on-demand instance is weighed at the rate it bills, not at its market's quote: against the
emulator over HTTP. Live, a Vast job capped at $0.35 rented the cheapest on-demand offer ($0.3485); its
own instance took that offer off the listing, the next quote was the next offer ($0.3607), and the next
tick read "on-demand over the max price" and ended the job's own on-demand instance to go to spot (4 times
in 1.5 virtual hours)."""

from __future__ import annotations

import pytest
from two_markets import VAST4090, tick, vast_live

from bidder.advisor import advise, with_storage
from bidder.optimizer import on_demand_compute
from bidder.store import Store

#: Tolerance medium over a 10-hour window: a budget under one interruption, spent by the first.
JOB = """
[jobs.v]
market = "vast"
gpu = ["RTX 4090"]
cloud = "verified"
hours = 4
deadline = "10h"
tolerance = "medium"
max_price = {cap:.4f}
image = "img"
disk = 20
"""


def quoted_compute(store: Store) -> float:
    [q] = [q for q in with_storage(store, store.latest_quotes("vast"))
           if (q.gpu_type_id, q.cloud, q.gpu_count) == (VAST4090, "VERIFIED", 1)]
    return float(on_demand_compute(q))


def test_a_vast_on_demand_instance_under_the_cap_is_kept_when_the_next_quote_is_over_it(vast_calm):
    env, api = vast_calm
    emu = env.emu
    offers = sorted((o for o in emu.vast.offers() if (o["gpu_name"], o["num_gpus"], o["verification"])
                     == (VAST4090, 1, "verified") and o["reliability"] >= 0.9), key=lambda o: o["dph_base"])
    cheapest, second = offers[0], offers[1]
    cap = (cheapest["dph_base"] + second["dph_base"]) / 2  # between the cheapest on-demand offer and the next
    config = env.config(JOB.format(cap=cap))
    # The cheapest on-demand machine is bid over (its on-demand offer stays): spot goes elsewhere.
    emu.vast.set_competitor(cheapest["machine_id"], 5.0)
    assert tick(env, api, config).jobs[0].state == "running"
    [spot] = vast_live(emu)
    assert spot.is_bid
    spot_machine = int(emu.vast.market.machine_id[spot.machine])
    emu.advance(300)
    # The spot instance is paused once: the window's interruption budget is spent, and the job moves to
    # the cheapest on-demand offer, under the cap.
    emu.vast.set_competitor(spot_machine, 5.0)
    job = tick(env, api, config).jobs[0]
    emu.vast.release(spot_machine)
    [od] = vast_live(emu)
    assert not od.is_bid and od.compute_per_hr == pytest.approx(cheapest["dph_base"]), job.message
    assert env.kinds("v") == ["rent_spot:ok", "terminate:ok", "deploy_on_demand:ok"]
    assert sum(p["interruptions"] for p in env.store.managed_pods("v")) == 1
    emu.advance(300)

    decisions = []

    def recorded(job, policy, now, progress):  # the executor's own advice, its decisions kept to read
        decision, _ = advise(env.store, job, policy, now, progress=progress)
        decisions.append((progress, decision))
        return decision

    # The next tick collects: the quote is now the next offer, over the cap; the instance bills its own.
    report = tick(env, api, config, advise=recorded)
    assert quoted_compute(env.store) > cap > od.compute_per_hr
    line = report.jobs[0]
    assert line.state == "running" and line.message.startswith("running on RTX 4090 (VERIFIED, vast) on-demand"), \
        line.message
    assert vast_live(emu) == [od] and not od.destroyed and od.intended == "running"
    assert env.kinds("v") == ["rent_spot:ok", "terminate:ok", "deploy_on_demand:ok"]  # no stop, no destroy
    [(progress, decision)] = decisions
    assert progress.current_price_per_gpu == pytest.approx(od.compute_per_hr)
    assert decision.action == "on_demand" and decision.market == "vast", decision
    assert not any("over the max price" in r for r in decision.reasons), decision.reasons
