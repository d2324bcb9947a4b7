"""Helpers shared by the executor, tick and launch tests: the emulator with days of stored price
history (the emulator's own model, so history and live prices agree), bidder.toml files, ticks on
the virtual clock."""

from __future__ import annotations

import atexit
import random
import shutil
import sqlite3
import tempfile
import time
import tomllib
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bidder.executor import LEDGER_ID
from bidder.jobs import Config, parse_config, pod_name
from bidder.runpod import RetryPolicy, RunPodClient
from bidder.sim import Emulator, generate_quotes
from bidder.sim.world import SimPod
from bidder.store import Store
from bidder.tick import TickReport, job_progress, run_tick

A6000 = "NVIDIA RTX A6000"
RTX4090 = "NVIDIA GeForce RTX 4090"
A40 = "NVIDIA A40"
GPUS = (A6000, RTX4090, A40)

#: bidder.toml of one kept-running on-demand job on the A6000 (tolerance none): the CLI and race tests' job.
ON_DEMAND_SERVICE = f"""
[jobs.train]
gpu = ["{A6000}"]
cloud = "community"
keep_running = true
tolerance = "none"
image = "runpod/pytorch:latest"
"""

#: The emulator (seed 0) is in a calm stretch of the A6000 market at this point: spot is bought at once.
HISTORY_DAYS = 3.5


def seed_history(store: Store, emu: Emulator, days: float = HISTORY_DAYS, gpus: tuple[str, ...] = GPUS,
                 gpu_counts: tuple[int, ...] = (1, 2)) -> None:
    """Store `days` of 5-minute snapshots of the emulator's market for `gpus` (the same prices the
    emulator quotes, per GPU for every count), then advance the emulator's clock to their end:
    history ends where now begins."""
    by_ts = defaultdict(list)
    for quote in generate_quotes(emu.seed, days, 300, gpus, start=emu.now):
        by_ts[quote.ts].extend(replace(quote, gpu_count=n) for n in gpu_counts)
    for ts in sorted(by_ts):
        store.record_collection(ts, by_ts[ts], duration_s=0.0)
    emu.advance(days * 86400)


@dataclass
class Env:
    """The emulator, a client on it and a fresh SQLite ledger with history."""

    emu: Emulator
    client: RunPodClient
    store: Store
    tmp: Path
    events: list[dict[str, Any]] = field(default_factory=list)

    def config(self, text: str, name: str = "bidder.toml") -> Config:
        path = self.tmp / name
        path.write_text(text)
        return parse_config(tomllib.loads(text), str(path))

    def tick(self, config: Config, **kwargs: Any) -> TickReport:
        return run_tick(self.client, self.store, config, self.emu.now, events=self.events.append, **kwargs)

    def run(self, config: Config, minutes: float, every: float = 5.0) -> list[TickReport]:
        """Tick every `every` minutes for `minutes` of virtual time (ticking first, then advancing)."""
        reports = []
        for _ in range(int(minutes / every)):
            reports.append(self.tick(config))
            self.emu.advance(every * 60)
        return reports

    def tick_until(self, config: Config, done: Callable[[TickReport], bool], *, hours: float = 24.0,
                   every: float = 5.0) -> TickReport:
        """Tick every `every` minutes until `done(report)` (the optimizer may wait for a calmer market
        first); fails the test after `hours` of virtual time."""
        report = None
        for _ in range(int(hours * 60 / every)):
            report = self.tick(config)
            if done(report):
                return report
            self.emu.advance(every * 60)
        raise AssertionError(f"not reached within {hours} h; last report: {report}")

    def live_pods(self) -> list[SimPod]:
        """Pods the emulator has that are not terminated."""
        return [p for p in self.emu.world.pods.values() if p.desired_status != "TERMINATED"]

    def running(self) -> list[SimPod]:
        return [p for p in self.emu.world.pods.values() if p.desired_status == "RUNNING"]

    def kinds(self, job: str | None = None) -> list[str]:
        """The ledger's actions as "kind:outcome", oldest first."""
        return [f"{a['kind']}:{a['outcome']}" for a in self.store.actions(job)]


_TEMPLATES: dict[tuple[Any, ...], Path] = {}


def _history_template(emu: Emulator) -> Path:
    """A database holding the standard history for this emulator's seed and start, built once per
    test process and copied for each test (building it takes longer than a test should)."""
    key = (emu.seed, emu.now.isoformat())
    if key not in _TEMPLATES:
        folder = Path(tempfile.mkdtemp(prefix="bidder-history-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        path = folder / "history.db"
        with Store.open(path) as store:
            by_ts = defaultdict(list)
            for quote in generate_quotes(emu.seed, HISTORY_DAYS, 300, GPUS, start=emu.now):
                by_ts[quote.ts].extend(replace(quote, gpu_count=n) for n in (1, 2))
            for ts in sorted(by_ts):
                store.record_collection(ts, by_ts[ts], duration_s=0.0)
        _TEMPLATES[key] = path
    return _TEMPLATES[key]


def make_env(emulator: Emulator, client: RunPodClient, tmp_path: Path, *, history: bool = True) -> Env:
    """A fresh ledger in tmp_path; with `history`, HISTORY_DAYS of the emulator's prices (as
    `seed_history` stores them) and the emulator's clock moved to their end."""
    path = tmp_path / "bidder.db"
    if history:
        shutil.copyfile(_history_template(emulator), path)
        emulator.advance(HISTORY_DAYS * 86400)
    return Env(emulator, client, Store.open(path), tmp_path)


JOB = f"""
[jobs.train]
gpu = ["{A6000}", "{RTX4090}", "{A40}"]
image = "runpod/pytorch:latest"
ports = "8888/http,22/tcp"
"""


def impatient_env(emulator: Emulator, tmp_path: Path) -> Iterator[Env]:
    """An Env whose client gives up after 1 s (no reclaims): a create or resume the emulator holds
    longer reaches the server after the client gave up. Use as `env = pytest.fixture(impatient_env,
    name="env")`."""
    emulator.world.reclaim_rate_per_hour = 0.0
    retry = RetryPolicy(attempts=3, base=0.01, max_delay=0.05, max_total=10.0, rng=random.Random(0))
    with RunPodClient(api_key=emulator.api_key, url=emulator.url, retry=retry, timeout=1.0) as client:
        e = make_env(emulator, client, tmp_path)
        yield e
        e.store.close()


def named(store: Store, prefix: str, attempt: int) -> str:
    """The name the ledger in `store` gives its `attempt`-th create of pods named `prefix`
    (PREFIX-ATTEMPT-LEDGERID, `bidder.jobs.pod_name`)."""
    lid = store.settings_get(LEDGER_ID)
    assert lid, "this ledger has made no create yet: it has no id"
    return pod_name(prefix, attempt, lid)


def live(env: Env) -> list[SimPod]:
    """The emulator's RunPod pods that are not terminated."""
    return [p for p in env.emu.world.pods.values() if p.desired_status != "TERMINATED"]


def wait_for(predicate: Callable[[], bool], seconds: float = 15.0) -> None:
    """Wait (real time) until `predicate()`; fails the test after `seconds`."""
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("not reached in time")
        time.sleep(0.05)


def interrupted_spot_pod(env: Env, config: Config) -> SimPod:
    """The spot pod of a job on the RTX A6000 in COMMUNITY (`config`), outbid a moment ago (the next tick
    decides podBidResume or waits)."""
    for _ in range(100):
        if env.tick(config).jobs[0].state == "running":
            break
        env.emu.advance(300)
    [pod] = live(env)
    assert pod.pod_type == "INTERRUPTABLE"
    env.emu.advance(600)
    env.tick(config)
    env.emu.world.set_floor(A6000, "COMMUNITY", round(pod.bid + 0.03, 3))
    env.emu.advance(300)
    env.emu.world.release_floor(A6000, "COMMUNITY")
    assert pod.desired_status == "EXITED"
    return pod


def recount(store: Store, config: Any) -> tuple[float, float, int]:
    """`job_progress` from every observation (its cache set aside, then put back): what the cache must equal."""
    cache = (store.job_state(config.name) or {}).get("progress_cache")
    store.save_job_state(config.name, progress_cache=None)
    try:
        return job_progress(store, config, save=False)
    finally:
        store.save_job_state(config.name, progress_cache=cache)


def dump(env: Env) -> str:
    """The env's whole database as SQL text: what a dry run must leave as it was."""
    conn = sqlite3.connect(env.tmp / "bidder.db")
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()
