"""Shared fixtures. Each area adds its own fixtures here in small, separate blocks."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from executor_helpers import RTX4090, Env, make_env, seed_history
from vast_helpers import seed_vast_history, vast_client

from bidder.collector import collect_once
from bidder.runpod import RetryPolicy, RunPodClient
from bidder.sim import Emulator
from bidder.store import Store
from bidder.vast.summary import OfferFilters
from bidder.vast_pods import VastPodApi


# -- emulator (owner: emulator area) ---------------------------------------------------------------
@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """A fresh RunPod emulator on 127.0.0.1 (seed 0, virtual clock at 2026-01-01T00:00Z, faults
    off, spot on, reclaim rate 0.01/hour: set `emulator.world.reclaim_rate_per_hour = 0` to rule
    reclaims out). Stopped, with every thread joined, after the test."""
    with Emulator(seed=0) as emu:
        yield emu


# -- client (owner: client area) -------------------------------------------------------------------
@pytest.fixture
def client(emulator: Emulator) -> Iterator[RunPodClient]:
    """A RunPodClient on the `emulator` with its key, a 5 s timeout and fast, seeded retries
    (3 sends, 10-50 ms apart: reads and stop/terminate only)."""
    retry = RetryPolicy(attempts=3, base=0.01, max_delay=0.05, max_total=10.0, rng=random.Random(0))
    with RunPodClient(api_key=emulator.api_key, url=emulator.url, retry=retry, timeout=5.0) as c:
        yield c


# -- a database with one RunPod snapshot (owner: CLI area) ------------------------------------------
@pytest.fixture
def snapshot_db(emulator, client, tmp_path):
    """tmp_path / "bidder.db" holding one snapshot of the `emulator`'s RunPod prices (GPU count 1)."""
    path = tmp_path / "bidder.db"
    with Store.open(path) as store:
        collect_once(client, store, now=emulator.now, gpu_counts=(1,))
    return path


# -- a ledger over the emulator with no random reclaims (owner: executor area) ----------------------
@pytest.fixture
def env(emulator, client, tmp_path):
    """`executor_helpers.Env` with price history, the emulator reclaiming nothing at random (a test
    file's own `env` fixture replaces it)."""
    emulator.world.reclaim_rate_per_hour = 0.0
    e = make_env(emulator, client, tmp_path)
    yield e
    e.store.close()


# -- Vast, and both markets at once (owner: executor area) ------------------------------------------
@pytest.fixture
def both(emulator, client, tmp_path):
    """(Env, VastPodApi): the tick's RunPod client and a store with RunPod's and Vast's history
    (`executor_helpers.Env`), and Vast's pod API on the same emulator (helpers: tests/two_markets.py)."""
    store = Store.open(tmp_path / "bidder.db")
    seed_history(store, emulator, gpus=(RTX4090,))
    seed_vast_history(store, emulator)
    vclient = vast_client(emulator)
    api = VastPodApi(vclient, OfferFilters(verified_only=True, min_reliability=0.95))
    env = Env(emulator, client, store, tmp_path)
    yield env, api
    store.close()
    vclient.close()


@pytest.fixture
def vast_calm(emulator, client, tmp_path):
    """As `both`, with no RunPod reclaims and offers of reliability >= 0.9 (the on-demand rate tests)."""
    emulator.world.reclaim_rate_per_hour = 0.0
    store = Store.open(tmp_path / "bidder.db")
    seed_history(store, emulator, gpus=(RTX4090,))
    seed_vast_history(store, emulator)
    vclient = vast_client(emulator)
    api = VastPodApi(vclient, OfferFilters(verified_only=True, min_reliability=0.9))
    yield Env(emulator, client, store, tmp_path), api
    store.close()
    vclient.close()


@pytest.fixture
def vx(emulator, tmp_path):
    """(emulator, a VastPodApi on it, an empty ledger) for the executor on Vast."""
    client = vast_client(emulator)
    api = VastPodApi(client, OfferFilters(verified_only=True, min_reliability=0.9))
    store = Store.open(tmp_path / "ledger.db")
    yield emulator, api, store
    store.close()
    client.close()
