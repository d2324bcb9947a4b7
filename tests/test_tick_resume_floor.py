"""A stopped spot pod is decided as a fresh start (as the backtest decides after an interruption), so a
bid under the floor is never sent: against the emulator over HTTP, the tick waits on the pod (its volume
kept) and then re-bids it on its machine at the plan's price for the floor now. Before, the plan "kept"
the old bid while the floor stayed over it ("keep RTX A6000 spot at $0.136 (floor $0.144)"), RunPod
refused each resume, and after three refusals the job moved to a new pod, its volume left behind."""

from __future__ import annotations

import re

import pytest
from executor_helpers import A6000, live

#: 24 GPU-hours due in 40 hours, tolerance high: on the emulator (seed 0) at the end of the standard
#: history the plan bids $0.140 at once, and for a fresh start at a floor of $0.144 it first waits (a few
#: hours, for the floor to fall back), then bids above it.
BATCH = f"""
[jobs.train]
gpu = ["{A6000}"]
cloud = "community"
hours = 24
deadline = "40h"
tolerance = "high"
image = "runpod/pytorch:latest"
volume = 20
"""


def test_a_kept_bid_under_the_floor_waits_on_its_pod_then_re_bids_it_at_the_plans_price(env):
    config = env.config(BATCH)
    job = env.tick(config).jobs[0]
    [pod] = live(env)
    assert job.state == "running" and pod.pod_type == "INTERRUPTABLE" and pod.bid == pytest.approx(0.14), job.message
    env.emu.advance(3600)
    assert env.tick(config).jobs[0].state == "running"
    # The floor rises over its bid and stays there (ticked hourly): outbid; the plan, deciding afresh, waits.
    env.emu.world.set_floor(A6000, "COMMUNITY", 0.144)
    assert pod.desired_status == "EXITED"
    lines = []
    for _ in range(5):  # four hourly waits (two before the plan's cluster-top levels, 4aaaf15), then the re-bid
        env.emu.advance(3600)
        lines.append(env.tick(config).jobs[0])
    *waits, rebid = lines
    for line in waits:
        assert line.state == "waiting" and line.message.startswith("wait: the plan starts spot on RTX A6000 when "
                                                                   "its spot floor "), line.message
        assert re.search(r"when its spot floor (is|has stayed) at or below \$", line.message), line.message
        assert f"; the volume stays on pod {pod.id} (stopped, still billed)" in line.message, line.message
        assert "keep" not in line.message and "$0.140" not in line.message, line.message  # not its old bid
    assert rebid.state == "running" and rebid.message == (
        f"resumed {pod.id} on {A6000} (COMMUNITY): podBidResume at $0.146/GPU-h"), rebid.message
    # The same pod (its volume with it), at a bid over the floor; no resume was refused, nothing moved.
    assert live(env) == [pod] and pod.desired_status == "RUNNING" and pod.bid == pytest.approx(0.146)
    assert env.kinds("train") == ["rent_spot:ok", "bid_resume:ok"]
    assert env.store.job_state("train").get("resume_failures") is None


def test_a_launch_clears_the_resume_failures_a_failed_move_left(env):
    """A move whose new pod could not be rented leaves the job waiting with its old pod's resume failures
    counted; the pod it launches later starts with none, so its first interruption is resumed (on its own
    volume), not moved at once."""
    config = env.config(BATCH)
    env.store.save_job_state("train", state="waiting", resume_failures=3)  # as that failed move left it
    assert env.tick(config).jobs[0].state == "running"
    [pod] = live(env)
    assert env.store.job_state("train").get("resume_failures") is None
    env.emu.advance(3600)
    env.emu.world.set_floor(A6000, "COMMUNITY", 0.5)  # outbid
    assert pod.desired_status == "EXITED"
    env.emu.world.set_floor(A6000, "COMMUNITY", 0.12)  # and back under its bid
    env.emu.advance(600)
    line = env.tick(config).jobs[0]
    assert line.state == "running" and line.message.startswith(f"resumed {pod.id}"), line.message
    assert live(env) == [pod] and env.kinds("train") == ["rent_spot:ok", "bid_resume:ok"]
