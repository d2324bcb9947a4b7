"""The chaos run: bidder's cron path against a faulty emulator, invariants checked after every cycle.

    python3 analysis/benchmarks/chaos.py --cycles 1500 --seed 1

One cycle = 5 minutes of virtual time: sometimes a `collect`, then a `bidder tick` (in-process with a
fast-retrying client; or a real `bidder tick` process, to the end or SIGKILLed at a random moment; or
two ticks at once). The emulator answers 10% of requests with 429 (half of them an HTML page, with
Retry-After), 5% with 500, 5% late (`timeout`: executed, answered after the client gave up), 2% with
a dropped connection; creates lose their answer or land late; spot is switched off and back on
mid-run. Three managed jobs of different tolerances (bidder.toml) run throughout. Four scenarios
replay issue 14's situations inside the run, each tagged so a violation names the scenario it came
from: `late_create` (a create that lands after the client's timeout), `poisoned` (the first poll of a
new pod answering an uptime of 63 years), `own_stop` (bidder's budget stop executes, the tick is SIGKILLed before the
answer) and `stop_race` (`bidder stop --job` while a tick's podBidResume is in flight).

The invariants (`check_invariants`, shared with tests/test_chaos.py), after every cycle:
- no job with two running pods; no running pod that no ledger watches (pods that appeared during
  the last tick are judged at the next one: the tick could not have seen them);
- no spot bid above a job's max_price; no job's billed spend (the emulator's) above its budget;
- every successful collection fully stored, every failed one an error row only;
- the ledger's spend per pod within 1% (or half a cent) of the emulator's billing;
- every failed `bidder` process: exit 1 (2 for usage) and one line on stderr, never a traceback;
  an in-process tick raises only BidderError (what the CLI prints as one line);
- the API key in no output, log or database.
Prints cycles, faults by kind, retries, pods recovered, then `violations: N`; exits 1 when N > 0.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bidder.collector import collect_once  # noqa: E402
from bidder.errors import ApiError, BidderError, LockHeld  # noqa: E402
from bidder.jobs import Config, parse_config, pod_attempt  # noqa: E402
from bidder.runpod import RetryPolicy, RunPodClient  # noqa: E402
from bidder.sim import Emulator, generate_quotes  # noqa: E402
from bidder.sim.world import World  # noqa: E402
from bidder.store import Store, estimate_spend  # noqa: E402
from bidder.tick import run_tick  # noqa: E402
from bidder.units import to_iso  # noqa: E402

__all__ = ["BASE_FAULTS", "SCENARIOS", "ChaosResult", "Violation", "check_invariants", "config_text", "main", "run_chaos"]

A6000, RTX4090, A40 = "NVIDIA RTX A6000", "NVIDIA GeForce RTX 4090", "NVIDIA A40"
#: The key the run's emulator accepts: distinctive, so that finding it anywhere is certain.
CHAOS_KEY = "rpa_CHAOSKEY7f3a9c0d1e2b4a6c8e0f1a3b5c7d9e1f2a4b6c8d0e"
CLIENT_TIMEOUT = 0.4          # seconds: a `timeout` or late create held longer reaches the server after it
BASE_FAULTS = ("429=0.10,html=0.5,retry_after=0.02,500=0.05,timeout=0.05,delay=0.5,drop=0.02,"
               "lost_create=0.2,late_create=0.05,late_delay=0.9")
SCENARIOS = ("late_create", "poisoned", "own_stop", "stop_race")
HISTORY_DAYS = 2.0
#: The `poisoned` scenario's uptime (seconds): 63 years, far beyond the time since any create (issue 14
#: saw 10^12; GraphQL's Int, 32 bits, cannot carry that much: the emulator would answer an error).
POISON_UPTIME = 2e9
CYCLE_S = 300

CONFIG = """
max_spend_per_hour = 3.0
collect_interval = "10m"
spot_recheck = "2h"

[jobs.batch]
gpu = ["{A6000}", "{A40}"]
cloud = "community"
hours = {batch_hours:g}
tolerance = "high"
max_price = 0.45
budget = {batch_budget:g}
image = "runpod/pytorch:latest"
on_finish = "terminate"

[jobs.steady]
gpu = ["{RTX4090}", "{A6000}"]
keep_running = true
tolerance = "low"
max_price = 0.8
budget = {steady_budget:g}
image = "runpod/pytorch:latest"

[jobs.svc]
gpu = ["{A6000}"]
cloud = "community"
keep_running = true
tolerance = "none"
budget = {svc_budget:g}
image = "runpod/pytorch:latest"
"""
FRESH_JOB = f"""
[jobs.fresh]
gpu = ["{A6000}"]
cloud = "community"
hours = 1
tolerance = "none"
budget = 1.0
image = "runpod/pytorch:latest"
on_finish = "terminate"
"""
LATE_JOB = f"""
[jobs.late]
gpu = ["{A6000}"]
cloud = "community"
hours = 1
tolerance = "none"
budget = 1.0
image = "runpod/pytorch:latest"
on_finish = "terminate"
"""


def config_text(scale: float = 1.0) -> str:
    """bidder.toml of the run: three jobs (tolerance high, low, none), work and budgets x `scale`."""
    return CONFIG.format(A6000=A6000, RTX4090=RTX4090, A40=A40, batch_hours=6 * scale, batch_budget=2.5 * scale, steady_budget=6.0 * scale,
                         svc_budget=10.0 * scale)


@dataclass(frozen=True)
class Violation:
    cycle: int
    scenario: str        # the scenario active at that cycle, or "background"
    invariant: str
    detail: str

    def __str__(self) -> str:
        return f"violation cycle {self.cycle} [{self.scenario}] {self.invariant}: {self.detail}"


@dataclass
class ChaosResult:
    cycles: int
    seed: int
    seconds: float = 0.0
    ticks: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    failures: Counter[str] = field(default_factory=Counter)   # failed in-process ticks, by error class
    recovered: Counter[str] = field(default_factory=Counter)
    scenarios: dict[str, str] = field(default_factory=dict)   # name -> "ran at cycle N" or why skipped
    violations: list[Violation] = field(default_factory=list)

    def by_scenario(self) -> Counter[str]:
        return Counter(v.scenario for v in self.violations)

    def lines(self) -> list[str]:
        out = [str(v) for v in self.violations]
        out.append(f"cycles: {self.cycles} (seed {self.seed}, {self.seconds:.0f} s)")
        out.append("ticks: " + ", ".join(f"{k} {n}" for k, n in sorted(self.ticks.items())))
        out.append("faults: " + ", ".join(f"{k} {n}" for k, n in sorted(self.faults.items())))
        out.append(f"retries: {self.retries}")
        out.append("failed ticks (one line, exit 1 in the CLI): " + (", ".join(
            f"{k} {n}" for k, n in sorted(self.failures.items())) or "none"))
        out.append(f"pods recovered: {sum(self.recovered.values())} ("
                   + ", ".join(f"{k} {n}" for k, n in sorted(self.recovered.items())) + ")")
        per = self.by_scenario()
        out.append("scenarios: " + "; ".join(f"{name} {self.scenarios.get(name, 'not run')}: "
                                            f"{per.get(name, 0)} violations" for name in SCENARIOS))
        out.append(f"violations: {len(self.violations)}")
        return out


# -- invariants ----------------------------------------------------------------------------------------
def _job_of(pod_name_: str, config: Config) -> str | None:
    for name, jc in config.jobs.items():
        if pod_attempt(jc.template.name_prefix, pod_name_) is not None:
            return name
    return None


def check_invariants(world: World, store: Store, config: Config, *, seen: set[str] | None = None,
                     spend_pods: set[str] | None = None) -> list[tuple[str, str]]:
    """(invariant, detail) for each broken invariant of the money (see the module docstring).

    `seen`: the emulator's pod ids when the last completed tick began (pods made later are judged
    at the next check). `spend_pods`: the pods whose ledger spend is compared with the billing
    (those polled at the current time, or all ended ones); None = every pod of the ledger."""
    out: list[tuple[str, str]] = []
    with world.lock:
        pods = {p.id: replace(p) for p in world.pods.values()}
    ledger = {row["pod_id"]: row for row in store.managed_pods()}
    running: dict[str, list[str]] = defaultdict(list)
    for pod in pods.values():
        job = (ledger.get(pod.id) or {}).get("job") or _job_of(pod.name, config)
        if pod.desired_status == "RUNNING" and (seen is None or pod.id in seen):
            if job is not None:
                running[job].append(pod.id)
            row = ledger.get(pod.id)
            if row is None or row.get("state") != "active":
                out.append(("unwatched", f"pod {pod.id} ({pod.name}) runs and no ledger watches it "
                                         f"(ledger state {None if row is None else row.get('state')})"))
        jc = config.jobs.get(job or "")
        if jc is not None and pod.is_spot and jc.policy.max_price is not None and pod.bid_per_gpu is not None \
                and pod.bid_per_gpu > jc.policy.max_price + 1e-9:
            out.append(("bid_cap", f"pod {pod.id} of job {job} bids ${pod.bid_per_gpu:.4f}/GPU-h over the cap "
                                   f"${jc.policy.max_price:.4f}"))
    for job, ids in running.items():
        if len(ids) > 1:
            out.append(("two_pods", f"job {job} has {len(ids)} running pods: {', '.join(sorted(ids))}"))
    for name, jc in config.jobs.items():
        billed = sum(p.spend for p in pods.values() if ((ledger.get(p.id) or {}).get("job") or _job_of(p.name, config))
                     == name)
        if jc.policy.budget is not None and billed > jc.policy.budget + 1e-6:
            out.append(("budget", f"job {name} was billed ${billed:.4f}, over its budget ${jc.policy.budget:.2f}"))
    for pod_id in sorted(ledger if spend_pods is None else spend_pods & set(ledger)):
        if pod_id not in pods:
            continue
        mine, billed = estimate_spend(store.observations(pod_id)), pods[pod_id].spend
        if abs(mine - billed) > max(0.01 * billed, 0.005):
            out.append(("spend", f"pod {pod_id}: the ledger says ${mine:.4f}, the emulator billed ${billed:.4f}"))
    rows = store._rows("SELECT c.id, c.ts, c.quotes, c.error, (SELECT count(*) FROM prices p WHERE p.ts = c.ts) "
                       "AS stored, (SELECT count(*) FROM collections d WHERE d.ts = c.ts AND d.error IS NULL "
                       "AND d.id != c.id) AS others FROM collections c")
    for r in rows:
        if r["error"] is None and (r["quotes"] <= 0 or r["stored"] < r["quotes"]):
            out.append(("collection", f"collection {r['id']} at {r['ts']}: {r['quotes']} quotes, {r['stored']} stored"))
        if r["error"] is not None and (r["quotes"] != 0 or (r["stored"] and not r["others"])):
            out.append(("collection", f"failed collection {r['id']} at {r['ts']} left {r['stored']} price rows"))
    return out


def key_leaks(key: str, texts: dict[str, str], files: list[Path]) -> list[str]:
    """Where the API key shows up: in one of `texts` (name -> text) or one of `files` (bytes)."""
    found = [name for name, text in texts.items() if key in text]
    for path in files:
        if path.exists() and key.encode() in path.read_bytes():
            found.append(str(path))
    return found


def cli_failure(returncode: int, stderr: str) -> str | None:
    """Why a finished `bidder` process broke the failure rule (None: it did not)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    if "Traceback" in stderr:
        return f"exit {returncode} with a traceback: {lines[-1] if lines else ''}"
    if returncode not in (0, 1, 2):
        return f"exit {returncode}"
    if returncode != 0 and len(lines) != 1:
        return f"exit {returncode} with {len(lines)} lines on stderr"
    return None


# -- the run -------------------------------------------------------------------------------------------
class _Retries(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "; retry " in record.getMessage():
            self.count += 1


class _Run:
    def __init__(self, cycles: int, seed: int, workdir: Path, *, progress: bool) -> None:
        self.cycles, self.seed, self.workdir, self.progress = cycles, seed, workdir, progress
        self.rng = random.Random(f"chaos|{seed}")
        self.result = ChaosResult(cycles, seed)
        self.db = workdir / "bidder.db"
        self.config_path = workdir / "bidder.toml"
        self.log_path = workdir / "tick.jsonl"
        self.outputs: dict[str, str] = {}
        # Longer runs get longer jobs and larger budgets: there is still work at the last cycle.
        scale = max(1.0, cycles / 150)
        self.config_text = config_text(scale)
        self.active: dict[int, str] = {}       # cycle -> scenario tag
        self.seen: set[str] = set()            # pods that a completed tick could have seen
        self.completed = False
        self.poisoned: set[str] = set()
        self.checks: list[Any] = []            # scenario checks: (until_cycle, name, fn)
        self.cycle = 0

    # -- plumbing ------------------------------------------------------------------------------------
    def client(self) -> RunPodClient:
        retry = RetryPolicy(attempts=4, base=0.01, max_delay=0.05, max_total=5.0,
                            rng=random.Random(self.rng.random()))
        return RunPodClient(api_key=CHAOS_KEY, url=self.emu.url, retry=retry, timeout=CLIENT_TIMEOUT)

    def set_faults(self, spec: str | None) -> None:
        """The emulator's faults from now on; what the previous injector did is added to the totals."""
        if self.emu.fault_injector is not None:
            self.result.faults.update(self.emu.fault_injector.counts)
        self.emu.set_faults(spec)

    def write_config(self) -> Config:
        self.config_path.write_text(self.config_text)
        self.config = parse_config(tomllib.loads(self.config_text), str(self.config_path))
        return self.config

    def event(self, record: dict[str, Any]) -> None:
        with self.log_path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, sort_keys=True, default=str) + "\n")

    def violation(self, invariant: str, detail: str, scenario: str | None = None) -> None:
        tag = scenario or self.active.get(self.cycle, "background")
        v = Violation(self.cycle, tag, invariant, detail)
        self.result.violations.append(v)
        if self.progress:
            print(v, file=sys.stderr, flush=True)

    def bidder(self, *args: str, kill_after: float | None = None, tag: str = "cli") -> subprocess.CompletedProcess[str] | None:
        """A real `bidder` process on this run's files; SIGKILLed after `kill_after` seconds if given."""
        cmd = [sys.executable, "-c", "from bidder.cli import main; main()", *args]
        env = {**os.environ, "RUNPOD_API_KEY": CHAOS_KEY, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        if kill_after is not None:
            try:
                proc.wait(timeout=kill_after)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.communicate(timeout=30)
                self.result.ticks["killed"] += 1
                return None
        out, err = proc.communicate(timeout=300)
        self.outputs[f"{tag} {self.cycle} stdout"] = out
        self.outputs[f"{tag} {self.cycle} stderr"] = err
        broken = cli_failure(proc.returncode, err)
        if broken is not None:
            self.violation("cli_failure", f"`bidder {' '.join(args[:2])}`: {broken}")
        return subprocess.CompletedProcess(cmd, proc.returncode, out, err)

    def tick_args(self) -> list[str]:
        return ["tick", "--config", str(self.config_path), "--db", str(self.db), "--api-url", self.emu.url,
                "--now", to_iso(self.emu.now), "--log", str(self.log_path)]

    def tick_in_process(self, kind: str = "in_process") -> None:
        with Store.open(self.db) as store, self.client() as client:
            # Stamped with the emulator's time, as the CLI labels it (a "wall" label beside the CLI
            # ticks' --now made the ledger take their polls for two clocks and book a run by halves).
            store.clock = "emulator"
            try:
                run_tick(client, store, self.config, self.emu.now, events=self.event)
                self.result.ticks[kind] += 1
                self.completed = True
            except LockHeld:
                self.result.ticks["lock_held"] += 1
            except BidderError as exc:
                self.result.ticks["failed"] += 1   # the CLI prints it as one line, exit 1
                self.result.failures[type(exc).__name__] += 1
                self.outputs[f"tick {self.cycle} error"] = str(exc)
            except Exception as exc:
                self.violation("traceback", f"tick raised {type(exc).__name__}: {exc}")

    def concurrent(self) -> None:
        threads = [threading.Thread(target=self.tick_in_process, args=("concurrent",)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def collect(self) -> None:
        with Store.open(self.db) as store, self.client() as client:
            store.clock = "emulator"
            try:
                collect_once(client, store, now=self.emu.now, gpu_counts=(1,))
                self.result.ticks["collect"] += 1
            except ApiError:
                self.result.ticks["collect_failed"] += 1
            except Exception as exc:
                self.violation("traceback", f"collect raised {type(exc).__name__}: {exc}")

    # -- setup ---------------------------------------------------------------------------------------
    def setup(self) -> None:
        self.emu = Emulator(seed=self.seed, api_key=CHAOS_KEY, reclaim_rate_per_hour=0.05)
        self.emu.start()
        by_ts: dict[Any, list[Any]] = defaultdict(list)
        for quote in generate_quotes(self.seed, HISTORY_DAYS, 300, (A6000, RTX4090, A40), start=self.emu.now):
            by_ts[quote.ts].append(quote)
        with Store.open(self.db) as store:
            for ts in sorted(by_ts):
                store.record_collection(ts, by_ts[ts], duration_s=0.0)
        self.emu.advance(HISTORY_DAYS * 86400)
        self.write_config()
        self.set_faults(BASE_FAULTS)

    # -- scenarios -----------------------------------------------------------------------------------
    def tag(self, name: str, cycles: int) -> None:
        for c in range(self.cycle, self.cycle + cycles):
            self.active[c] = name
        self.result.scenarios[name] = f"ran at cycle {self.cycle}"

    def with_faults(self, extra: str) -> None:
        self.set_faults(BASE_FAULTS + "," + extra if extra else BASE_FAULTS)

    def running_job_pod(self, jobs: tuple[str, ...]) -> tuple[str, dict[str, Any]] | None:
        with Store.open(self.db) as store:
            for job in jobs:
                rows = [r for r in store.managed_pods(job, states=["active"]) if r.get("desired_status") == "RUNNING"]
                if rows:
                    return job, rows[-1]
        return None

    def scenario_late_create(self) -> None:
        # A new job whose first create reaches the server after the client's timeout.
        self.tag("late_create", 6)
        self.config_text += LATE_JOB
        self.write_config()
        self.set_faults("late_create=1,late_delay=1.0")
        self.tick_in_process("scenario")
        self.set_faults(BASE_FAULTS)

    def scenario_poisoned(self) -> bool:
        # A new job; at the first poll of its pod, the emulator answers an impossible uptime (as a
        # pod's first observation, it would count all of it as spend and work).
        if "[jobs.fresh]" not in self.config_text:
            self.tag("poisoned", 12)
            self.config_text += FRESH_JOB
            self.write_config()
            self.tick_in_process("scenario")
            self.result.scenarios["poisoned"] = "waiting for its pod"
            return True
        with Store.open(self.db) as store:
            rows = [r for r in store.managed_pods("fresh", states=["active"])
                    if r.get("desired_status") == "RUNNING" and not store.observations(r["pod_id"])]
        if not rows:
            return False
        pod_id = rows[-1]["pod_id"]
        self.poisoned.add(pod_id)
        self.tag("poisoned", 4)

        def check(store: Store) -> None:
            state = store.job_state("fresh") or {}
            with self.emu.world.lock:
                ran = sum(p.spend / p.price_per_gpu / p.gpu_count for p in self.emu.world.pods.values()
                          if _job_of(p.name, self.config) == "fresh" and p.price_per_gpu)
            if state.get("state") == "finished" and ran < 0.95:
                self.violation("poisoned", f"job fresh declared finished ({state.get('note')}) after {ran:.2f} h "
                                           "of billed running", "poisoned")

        self.checks.append((self.cycle + 3, "poisoned", check))
        with self.emu.world.lock:
            pod = self.emu.world.pods[pod_id]
            started = pod.run_started_s
            if started is None:
                return False
            pod.run_started_s = self.emu.world.now_s - POISON_UPTIME
        try:
            self.tick_in_process("scenario")
        finally:
            with self.emu.world.lock:
                if pod.run_started_s == self.emu.world.now_s - POISON_UPTIME:
                    pod.run_started_s = started
        return True

    def scenario_own_stop(self) -> bool:
        found = self.running_job_pod(("svc", "steady"))
        if found is None:
            return False
        job, row = found
        self.tag("own_stop", 6)
        # A budget just above what the emulator billed so far, below that plus the next hour: the
        # tick decides a budget stop now (and no pod was billed past the new budget before it).
        with self.emu.world.lock:
            billed = sum(p.spend for p in self.emu.world.pods.values() if _job_of(p.name, self.config) == job)
        spent = billed + 0.03
        old = f"budget = {self.config.jobs[job].policy.budget}"
        section = self.config_text.index(f"[jobs.{job}]")
        at = self.config_text.index("budget = ", section)
        end = self.config_text.index("\n", at)
        self.config_text = self.config_text[:at] + f"budget = {spent:.4f}" + self.config_text[end:]
        self.write_config()
        self.set_faults("slow_stop=1,late_delay=30")   # the stop executes; its answer never comes in time
        pod = self.emu.world.pods[row["pod_id"]]
        cmd = [sys.executable, "-c", "from bidder.cli import main; main()", *self.tick_args()]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "RUNPOD_API_KEY": CHAOS_KEY, "PYTHONPATH": str(ROOT)})
        deadline = time.monotonic() + 30
        while proc.poll() is None and pod.desired_status == "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        self.result.ticks["killed"] += 1
        self.set_faults(BASE_FAULTS)

        def check(store: Store) -> None:
            state = store.job_state(job) or {}
            if state.get("state") == "held":
                self.violation("own_stop", f"job {job} is held after bidder's own (interrupted) stop", "own_stop")
            stuck = [a["id"] for a in store.actions(job, outcome="pending") if a["kind"] == "stop"
                     and a["pod_id"] == row["pod_id"]]
            if stuck and self.cycle > self.own_stop_at + 1:
                self.violation("own_stop", f"stop action(s) {stuck} of pod {row['pod_id']} still pending", "own_stop")

        self.own_stop_at = self.cycle
        self.checks.append((self.cycle + 4, "own_stop", check))
        self.restore_at = (self.cycle + 4, old, job)
        return True

    def scenario_stop_race(self) -> bool:
        found = self.running_job_pod(("batch", "steady", "svc"))
        if found is None:
            return False
        job, row = found
        self.tag("stop_race", 6)
        pod = self.emu.world.pods[row["pod_id"]]
        if pod.is_spot and pod.bid_per_gpu is not None:   # outbid now: the tick decides podBidResume (or waits)
            self.emu.world.set_floor(pod.gpu_type_id, pod.cloud, round(pod.bid_per_gpu + 0.03, 3))
            self.emu.world.release_floor(pod.gpu_type_id, pod.cloud)
        self.set_faults("late_resume=1,late_delay=1.5")
        cmd = [sys.executable, "-c", "from bidder.cli import main; main()", *self.tick_args()]
        env = {**os.environ, "RUNPOD_API_KEY": CHAOS_KEY, "PYTHONPATH": str(ROOT)}
        tick = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        time.sleep(0.3 + self.rng.random())
        stop = self.bidder("stop", "--job", job, "--wait", "60", "--db", str(self.db), "--api-url", self.emu.url,
                           "--now", to_iso(self.emu.now), tag="stop")
        out, err = tick.communicate(timeout=120)
        self.outputs[f"race tick {self.cycle}"] = out + err
        broken = cli_failure(tick.returncode, err)
        if broken is not None:
            self.violation("cli_failure", f"`bidder tick`: {broken}")
        self.set_faults(BASE_FAULTS)
        stopped = stop is not None and stop.returncode == 0

        def check(store: Store) -> None:
            state = store.job_state(job) or {}
            live = [p.id for p in self.emu.world.pods.values() if p.desired_status == "RUNNING"
                    and _job_of(p.name, self.config) == job]
            if stopped and (state.get("state") not in ("held", "finished") or live):
                self.violation("stop_race", f"`bidder stop --job {job}` was undone: job {state.get('state')}, "
                                            f"running pods {live}", "stop_race")

        self.checks.append((self.cycle + 3, "stop_race", check))
        self.start_at = (self.cycle + 4, job)
        return True

    # -- one cycle -----------------------------------------------------------------------------------
    def run_cycle(self) -> None:
        n = self.cycles
        c = self.cycle
        self.emu.advance(CYCLE_S)
        if c == int(n * 0.35):
            self.emu.set_spot_enabled(False)
        if c == int(n * 0.55):
            self.emu.set_spot_enabled(True)
        restore = getattr(self, "restore_at", None)
        if restore is not None and c == restore[0]:
            _, old, job = restore
            section = self.config_text.index(f"[jobs.{job}]")
            at = self.config_text.index("budget = ", section)
            end = self.config_text.index("\n", at)
            self.config_text = self.config_text[:at] + old + self.config_text[end:]
            self.write_config()
        start = getattr(self, "start_at", None)
        if start is not None and c == start[0]:
            self.bidder("jobs", "--config", str(self.config_path), "--db", str(self.db), "start", start[1],
                        tag="start")
        if self.rng.random() < 0.3:
            self.collect()
        with self.emu.world.lock:
            before = set(self.emu.world.pods)
        self.completed = False
        ran_scenario = False
        for frac, name in ((0.15, "late_create"), (0.3, "poisoned"), (0.45, "own_stop"), (0.7, "stop_race")):
            state = self.result.scenarios.get(name)
            if (state is None or not state.startswith(("ran", "skipped"))) and c >= int(n * frac):
                fn = getattr(self, f"scenario_{name}")
                done = fn()
                ran_scenario = done is not False
                if not ran_scenario and c > int(n * frac) + 10:
                    self.result.scenarios[name] = "skipped (no running pod)"
                if ran_scenario:
                    break
        if not ran_scenario:
            u = self.rng.random()
            if u < 0.05:
                self.bidder(*self.tick_args(), kill_after=self.rng.uniform(0.3, 1.5), tag="killed")
            elif u < 0.10:
                self.concurrent()
            elif u < 0.13:
                proc = self.bidder(*self.tick_args(), tag="tick")
                if proc is not None:
                    self.result.ticks["cli"] += 1
                    self.completed = proc.returncode == 0 and "another bidder tick" not in proc.stdout
            else:
                self.tick_in_process()
        # Pods are judged once a tick ran to its end after they appeared: one killed or failed tick
        # (or one that found the lock held) could not have taken them into the ledger.
        if self.completed:
            self.seen = before
        with Store.open(self.db) as store:
            for problem in check_invariants(self.emu.world, store, self.config, seen=self.seen,
                                            spend_pods=self.polled_now(store)):
                self.violation(*problem, scenario=self.scenario_of(problem))
            for until, _name, fn in list(self.checks):
                fn(store)
                if c >= until:
                    self.checks.remove((until, _name, fn))

    def polled_now(self, store: Store) -> set[str]:
        """Pods whose ledger is complete at this moment: polled RUNNING now, or ended (not active)."""
        out = set()
        now = self.emu.now
        for row in store.managed_pods():
            last = store.last_observation(row["pod_id"])
            if last is None:
                continue
            if (row.get("state") == "active" and last["ts"] == now and last["desired_status"] == "RUNNING") or \
                    (row.get("state") != "active" and row.get("desired_status") in ("EXITED", "TERMINATED")
                     and self.emu.world.pods[row["pod_id"]].desired_status != "RUNNING"):
                out.add(row["pod_id"])
        return out

    def scenario_of(self, problem: tuple[str, str]) -> str | None:
        """The scenario a violation comes from when it names that scenario's pod or job."""
        if any(pod_id in problem[1] for pod_id in self.poisoned) or "fresh" in problem[1]:
            return "poisoned"
        if "bidder-late-" in problem[1] or "job late " in problem[1]:
            return "late_create"
        return None

    def finish(self) -> None:
        """Faults off, two clean ticks, every pod's spend compared."""
        self.set_faults(None)
        self.cycle += 1
        for _ in range(2):
            self.emu.advance(CYCLE_S)
            self.tick_in_process("final")
        with Store.open(self.db) as store:
            ended = self.polled_now(store)
            for problem in check_invariants(self.emu.world, store, self.config, spend_pods=ended):
                self.violation(*problem, scenario=self.scenario_of(problem) or "final")
        files = [self.db, self.db.with_name(self.db.name + "-wal"), self.log_path]
        leaks = key_leaks(CHAOS_KEY, self.outputs, files)
        if leaks:
            self.violation("key", "the API key appears in: " + ", ".join(leaks), "final")
        if self.log_path.exists():
            for line in self.log_path.read_text().splitlines():
                event = json.loads(line).get("event")
                if event in ("adopted", "stray", "own_stop", "overruled"):
                    self.result.recovered[event] += 1

    def run(self) -> ChaosResult:
        started = time.monotonic()
        retries = _Retries()
        client_log = logging.getLogger("bidder.runpod.client")
        client_log.addHandler(retries)
        level = client_log.level
        client_log.setLevel(logging.INFO)
        client_log.propagate = False
        try:
            self.setup()
            for cycle in range(self.cycles):
                self.cycle = cycle
                self.run_cycle()
                if self.progress and self.cycle % 50 == 49:
                    print(f"cycle {self.cycle + 1}: {len(self.result.violations)} violations so far",
                          file=sys.stderr, flush=True)
            self.finish()
            for name in SCENARIOS:
                self.result.scenarios.setdefault(name, "not run (too few cycles)")
        finally:
            client_log.removeHandler(retries)
            client_log.setLevel(level)
            client_log.propagate = True
            if hasattr(self, "emu"):
                self.set_faults(None)
                self.emu.stop()
        self.result.retries = retries.count
        self.result.seconds = time.monotonic() - started
        return self.result


def run_chaos(cycles: int, seed: int, workdir: Path, *, progress: bool = False) -> ChaosResult:
    """The chaos run in `workdir` (its database, bidder.toml and tick log stay there)."""
    workdir.mkdir(parents=True, exist_ok=True)
    return _Run(cycles, seed, workdir, progress=progress).run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=300, help="cycles of 5 virtual minutes (default 300)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", default=None, help="keep the run's files here (default: a temporary folder)")
    args = parser.parse_args(argv)
    if args.cycles < 1:
        parser.error("--cycles must be at least 1")
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bidder-chaos-") as tmp:
        workdir = Path(args.workdir) if args.workdir else Path(tmp)
        result = run_chaos(args.cycles, args.seed, workdir, progress=True)
    for line in result.lines():
        print(line)
    return 1 if result.violations else 0


if __name__ == "__main__":
    sys.exit(main())
