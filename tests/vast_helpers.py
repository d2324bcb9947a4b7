"""Helpers for the Vast client's tests: a client on an emulator with fast, seeded retries."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx

from bidder.runpod import RetryPolicy
from bidder.sim import Emulator
from bidder.vast import InstanceSpec, Offer, VastClient


def fast_retry(attempts: int = 3, sleeps: list[float] | None = None) -> RetryPolicy:
    sleep = sleeps.append if sleeps is not None else (lambda s: None)
    return RetryPolicy(attempts=attempts, base=0.01, max_delay=0.05, max_total=10.0, rng=random.Random(0),
                       sleep=sleep)


def vast_client(emu: Emulator, *, key: str | None = "default", attempts: int = 3, timeout: float = 5.0,
                http: httpx.Client | None = None, sleeps: list[float] | None = None) -> VastClient:
    return VastClient(api_key=emu.api_key if key == "default" else key, url=emu.vast_url, http=http,
                      retry=fast_retry(attempts, sleeps), timeout=timeout, rate_limit_base=0.01)


def spec(label: str = "bidder-job-1") -> InstanceSpec:
    return InstanceSpec(label=label, image="pytorch/pytorch", disk_gb=20, env=(("JOB", "1"),))


def cheapest(offers: list[Offer], num_gpus: int | None = None) -> Offer:
    fits = [o for o in offers if o.min_bid is not None and (num_gpus is None or o.num_gpus == num_gpus)]
    return min(fits, key=lambda o: o.min_bid or 0)


def seed_vast_history(store: Any, emu: Emulator, days: float = 3.5, gpu_names: tuple[str, ...] = ("RTX 4090",)) -> None:
    """`days` of the emulator's Vast market (5-minute quotes, as `bidder sim trace --market vast`
    writes them) stored as Vast's history, ending at the emulator's now."""
    from bidder.sim.vast_world import generate_vast_quotes

    by_ts: dict[Any, list[Any]] = defaultdict(list)
    # (A trace's instants end before start + days: one step more ends on now.)
    for q in generate_vast_quotes(emu.seed, days + 300 / 86400, 300, list(gpu_names),
                                  start=emu.now - timedelta(days=days)):
        by_ts[q.ts].append(replace(q, market="vast"))
    for ts in sorted(by_ts):
        store.record_collection(ts, by_ts[ts], duration_s=0.0, market="vast")
