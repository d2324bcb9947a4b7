"""A tick on both markets against one emulator (the `both` fixture of conftest.py: its RunPod client and
store, with RunPod's and Vast's price history, and a Vast `VastPodApi` on the same server and clock)."""

from __future__ import annotations

from executor_helpers import Env

from bidder.tick import TickReport, run_tick
from bidder.vast_pods import VastPodApi

VAST4090 = "RTX 4090"


def tick(env: Env, api: VastPodApi, config, **kw) -> TickReport:
    return run_tick(env.client, env.store, config, env.emu.now, events=env.events.append, vast=api, **kw)


def vast_live(emu) -> list:
    return [i for i in emu.vast.instances.values() if not i.destroyed]


def runpod_live(emu) -> list:
    return [p for p in emu.world.pods.values() if p.desired_status != "TERMINATED"]
