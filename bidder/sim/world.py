"""The emulator's own world: catalogue, markets, machines and capacity, pods, billing, interruptions.

Not to be confused with `bidder/market.py` (bidder's statistics). Everything here runs on the
world's virtual clock and under one lock (`World.lock`); the HTTP layer holds it for a whole
GraphQL request, and `advance` holds it while it moves time.

Semantics (RunPod's, see RUNPOD_API.md):
- Capacity is a set of machines per GPU type and cloud, each with a number of GPUs, some taken
  by other users. A pod needs one machine with `gpuCount` free GPUs; a stop, terminate or
  interruption gives them back. Stock status and available GPU counts follow from that.
- A spot pod pays its bid per second (`costPerHr = bidPerGpu * gpuCount`); an on-demand pod pays
  the on-demand price of when it (re)started. Nothing is billed while a pod is EXITED.
- A spot pod is interrupted (EXITED, "Exited by Runpod: outbid") at the first 60 s grid step at
  which the floor is above its bid, and at a seeded random reclaim rate per running hour that no
  bid avoids ("Exited by Runpod: reclaimed"). A period with no spot capacity (null floor) does not
  stop running pods; it only refuses new bids.
- Only GPU time is billed (disk and volume storage are free here). The balance may go negative:
  pods are not stopped when it does. A create needs one hour of credit and must keep the total
  spend per hour within the spend limit (those two texts are the emulator's own wording).
"""

from __future__ import annotations

import math
import random
import string
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from bidder.errors import ConfigError
from bidder.sim.catalog import CLOUD_NAMES, GpuTypeInfo, load_catalog
from bidder.sim.clock import VirtualClock, check_advance, from_epoch, to_epoch
from bidder.sim.prices import (
    DEFAULT_START,
    ModelMarket,
    PriceSource,
    TraceMarket,
    load_trace_series,
    market_params,
)

__all__ = [
    "BAD_BID_RESUME",
    "CANNOT_RESUME_SPOT",
    "MACHINE_FULL",
    "ON_DEMAND_NO_INSTANCES",
    "SPOT_NO_INSTANCES",
    "BusinessError",
    "Machine",
    "SimPod",
    "World",
]

# RunPod's own texts (RUNPOD_API.md), answered as HTTP 200 with an `errors` entry.
ON_DEMAND_NO_INSTANCES = ("There are no longer any instances available with the requested specifications. "
                          "Please refresh and try again.")
SPOT_NO_INSTANCES = "There are no instances available with the request specifications. Please try again later."
MACHINE_FULL = "This machine does not have the resources to deploy your pod. Please try a different machine"
CANNOT_RESUME_SPOT = "Cannot resume a spot pod as an on demand pod."
TERMINATE_NOT_FOUND = "pod not found to terminate"
# Texts RunPod has not been seen to send; the emulator's own wording, kept in the same style.
BAD_BID_RESUME = "Cannot resume an on demand pod as a spot pod."
STOP_NOT_FOUND = "pod not found to stop"
RESUME_NOT_FOUND = "pod not found to resume"
SPEND_LIMIT = "You have reached your spend limit of ${limit:.2f}/hr. Stop a pod or raise the limit."
LOW_BALANCE = "Your balance is too low to deploy this pod: it needs at least one hour of credit."

_DATA_CENTERS = ("US-TX-3", "US-GA-2", "US-KS-2", "EU-RO-1", "EU-SE-1", "CA-MTL-1", "EUR-IS-1", "US-IL-1")
_ID_CHARS = string.ascii_lowercase + string.digits


class BusinessError(Exception):
    """A refusal RunPod answers with HTTP 200 and an `errors` entry (`extensions` optional)."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.extensions = {"code": code} if code else None


@dataclass
class Machine:
    id: str
    gpu_type_id: str
    cloud: str
    data_center_id: str
    total: int
    others: int                      # GPUs rented by other users
    ours: dict[str, int] = field(default_factory=dict)  # running pod id -> GPUs

    @property
    def free(self) -> int:
        return self.total - self.others - sum(self.ours.values())


@dataclass
class SimPod:
    """A pod as the world knows it (includes terminated pods, which the API no longer shows)."""

    id: str
    name: str
    image_name: str
    gpu_type_id: str
    cloud: str
    gpu_count: int
    pod_type: str                    # "INTERRUPTABLE" (spot) | "RESERVED" (on-demand)
    bid_per_gpu: float | None
    price_per_gpu: float             # what a GPU-hour costs now (the bid for spot)
    machine_id: str
    created_s: float
    desired_status: str = "RUNNING"
    last_status_change: str = ""
    run_started_s: float | None = None
    billed_until_s: float = 0.0
    spend: float = 0.0
    run_s: float = 0.0               # seconds billed as RUNNING, over all runs
    interruptions: int = 0
    exit_reason: str | None = None   # "user" | "outbid" | "reclaimed" while EXITED
    reclaim_exp: float = math.inf    # an Exp(1) draw per run: reclaimed after reclaim_exp / rate hours
    container_disk_in_gb: int | None = None
    volume_in_gb: int | None = None
    volume_mount_path: str | None = None
    ports: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    docker_args: str | None = None
    template_id: str | None = None

    @property
    def is_spot(self) -> bool:
        return self.pod_type == "INTERRUPTABLE"

    @property
    def status(self) -> str:
        """Alias of desired_status."""
        return self.desired_status

    @property
    def bid(self) -> float | None:
        """Alias of bid_per_gpu (None for on-demand pods)."""
        return self.bid_per_gpu

    @property
    def machine(self) -> str:
        """Alias of machine_id."""
        return self.machine_id

    @property
    def cost_per_hr(self) -> float:
        return self.price_per_gpu * self.gpu_count


def _js_date(t: float) -> str:
    # RunPod's lastStatusChange carries a JavaScript Date string.
    return from_epoch(t).strftime("%a %b %d %Y %H:%M:%S GMT+0000 (Coordinated Universal Time)")


class World:
    """Markets, machines and pods on a virtual clock. All public methods take `self.lock`."""

    def __init__(self, seed: int = 0, start: datetime | None = None, trace: str | Path | None = None,
                 reclaim_rate_per_hour: float = 0.01, client_balance: float = 1000.0,
                 spend_limit: float = 80.0) -> None:
        if not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"seed must be a whole number >= 0, got {seed!r}")
        self.lock = threading.RLock()
        self.seed = seed
        self.reclaim_rate_per_hour = reclaim_rate_per_hour
        self.initial_balance = client_balance
        self.spend_limit = spend_limit
        self.spot_enabled = True
        self.user_id = "user_" + "".join(random.Random(f"{seed}|user").choices(_ID_CHARS, k=16))
        self.gpu_types: dict[str, GpuTypeInfo] = {}
        self.markets: dict[tuple[str, str], PriceSource] = {}
        self.machines: dict[str, Machine] = {}
        self.market_machines: dict[tuple[str, str], list[Machine]] = {}
        self.pods: dict[str, SimPod] = {}
        self._pins: dict[tuple[str, str], float | None] = {}
        self.trace_offset_s = 0.0  # virtual time - trace time, when replaying a trace
        self.trace_other_rows = 0  # a replayed trace's rows of another market (Vast's), not replayed
        self._ids = random.Random(f"{seed}|ids")
        if trace is None:
            self._build_model(seed)
            self.clock = VirtualClock(start or DEFAULT_START)
        else:
            first = self._build_trace(trace, start)
            self.clock = VirtualClock(start or from_epoch(first))
        for key in self.markets:
            self._build_machines(key)

    # -- construction --------------------------------------------------------------------------
    def _build_model(self, seed: int) -> None:
        for info in load_catalog():
            self.gpu_types[info.id] = info
            for cloud in info.clouds():
                self.markets[(info.id, cloud)] = ModelMarket(seed, market_params(seed, info, cloud))

    def _build_trace(self, path: str | Path, start: datetime | None) -> float:
        series, self.trace_other_rows = load_trace_series(path)
        if not series:
            raise ConfigError(f"{path} holds no RunPod rows (its {self.trace_other_rows} rows are another market's, "
                              "Vast's): the emulator replays a trace on RunPod's API only, and Vast's API serves its "
                              "own offer model (--seed); give a trace of RunPod's market", key="trace")
        first = min(float(times[0]) for times, _, _ in series.values())
        last = max(float(times[-1]) for times, _, _ in series.values())
        # A start within the trace replays it from there at its own times (as `bidder backtest --start`
        # reads one); a start outside it plays the trace's first row at the start (an old trace as today).
        offset = 0.0 if start is None or first <= to_epoch(start) <= last else to_epoch(start) - first
        self.trace_offset_s = offset
        catalog = {info.id: info for info in load_catalog()}
        chosen: dict[tuple[str, str], int] = {}
        for gpu_type, cloud, count in series:  # one series per market: the smallest GPU count
            chosen[(gpu_type, cloud)] = min(count, chosen.get((gpu_type, cloud), count))
        prices: dict[str, dict[str, float | None]] = {}
        for (gpu_type, cloud), count in sorted(chosen.items()):
            times, floors, on_demand = series[(gpu_type, cloud, count)]
            self.markets[(gpu_type, cloud)] = TraceMarket(times, floors, on_demand, offset)
            od_known = on_demand[~np.isnan(on_demand)]
            fl_known = floors[~np.isnan(floors)]
            prices.setdefault(gpu_type, {})[cloud] = float(od_known[0]) if od_known.size else None
            prices[gpu_type][cloud + "_spot"] = float(np.median(fl_known)) if fl_known.size else None
        for gpu_type, p in prices.items():
            base = catalog.get(gpu_type)
            self.gpu_types[gpu_type] = GpuTypeInfo(
                id=gpu_type,
                display_name=base.display_name if base else gpu_type,
                manufacturer=base.manufacturer if base else "Unknown",
                memory_in_gb=base.memory_in_gb if base else None,
                max_gpu_count=base.max_gpu_count if base else 8,
                secure_price=p.get("SECURE"), community_price=p.get("COMMUNITY"),
                secure_spot_price=p.get("SECURE_spot"), community_spot_price=p.get("COMMUNITY_spot"),
            )
        return first

    def _new_id(self, length: int) -> str:
        return "".join(self._ids.choices(_ID_CHARS, k=length))

    def _build_machines(self, key: tuple[str, str]) -> None:
        rng = random.Random(f"{self.seed}|{key[0]}|{key[1]}|machines")
        per_machine = min(self.gpu_types[key[0]].max_gpu_count, 8)
        machines = []
        for _ in range(rng.randint(3, 8)):
            others = min(per_machine, int(rng.betavariate(2, 2) * (per_machine + 1)))
            machine = Machine(self._new_id(12), key[0], key[1], rng.choice(_DATA_CENTERS), per_machine, others)
            self.machines[machine.id] = machine
            machines.append(machine)
        self.market_machines[key] = machines

    # -- time ----------------------------------------------------------------------------------
    @property
    def now_s(self) -> float:
        return self.clock.now_s

    @property
    def now(self) -> datetime:
        return self.clock.now

    def advance(self, seconds: float) -> datetime:
        """Move virtual time: interrupt outbid and reclaimed spot pods at the grid step it
        happens, bill every running pod per second up to the new time."""
        with self.lock:
            check_advance(seconds, self.clock.now_s)
            t0, t1 = self.clock.now_s, self.clock.now_s + float(seconds)
            grids: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
            for pod in list(self.pods.values()):
                if pod.desired_status != "RUNNING" or not pod.is_spot:
                    continue
                key = (pod.gpu_type_id, pod.cloud)
                if key not in grids:
                    grids[key] = self._floors_on_grid(key, t0, t1)
                times, floors = grids[key]
                when, reason = math.inf, ""
                over = np.flatnonzero(floors > (pod.bid_per_gpu or 0.0) + 1e-9)
                if over.size:
                    when, reason = float(times[over[0]]), "outbid"
                reclaim_at = self._reclaim_at(pod)
                if reclaim_at <= t1 and reclaim_at < when:
                    when, reason = reclaim_at, "reclaimed"
                if when <= t1:
                    self._exit(pod, when, reason)
            self.clock.advance(t1 - t0)
            for pod in self.pods.values():
                self._bill(pod, t1)
            return self.clock.now

    def _floors_on_grid(self, key: tuple[str, str], t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
        times, floors = self.markets[key].floors_on_grid(t0, t1)
        if key in self._pins:
            pinned = self._pins[key]
            floors = np.full(times.shape, np.nan if pinned is None else pinned)
        return times, floors

    def _reclaim_at(self, pod: SimPod) -> float:
        if self.reclaim_rate_per_hour <= 0 or pod.run_started_s is None or math.isinf(pod.reclaim_exp):
            return math.inf
        return pod.run_started_s + pod.reclaim_exp / self.reclaim_rate_per_hour * 3600.0

    def _bill(self, pod: SimPod, until: float) -> None:
        if pod.desired_status == "RUNNING" and until > pod.billed_until_s:
            pod.spend += pod.cost_per_hr * (until - pod.billed_until_s) / 3600.0
            pod.run_s += until - pod.billed_until_s
        pod.billed_until_s = max(pod.billed_until_s, until)

    # -- prices and capacity -------------------------------------------------------------------
    def floor(self, gpu_type_id: str, cloud: str) -> float | None:
        """The spot floor now (None = no spot capacity, or spot switched off)."""
        with self.lock:
            key = (gpu_type_id, cloud)
            if not self.spot_enabled or key not in self.markets:
                return None
            if key in self._pins:
                return self._pins[key]
            return self.markets[key].floor_at(self.now_s)

    def warm(self) -> None:
        """Compute today's prices of every market now (and import scipy), so that the first
        request to a fresh emulator is as fast as the rest."""
        with self.lock:
            for key in self.markets:
                self.floor(*key)

    def on_demand(self, gpu_type_id: str, cloud: str) -> float | None:
        with self.lock:
            market = self.markets.get((gpu_type_id, cloud))
            return None if market is None else market.on_demand_at(self.now_s)

    def set_floor(self, gpu_type_id: str, cloud: str, value: float | None) -> None:
        """Pin a market's floor (None = no spot capacity) until `release_floor`. Running spot pods
        whose bid is now under the floor are interrupted at once."""
        with self.lock:
            key = self._market(gpu_type_id, cloud)
            self._pins[key] = None if value is None else float(value)
            if value is None:
                return
            for pod in self.pods.values():
                if (pod.is_spot and pod.desired_status == "RUNNING" and (pod.gpu_type_id, pod.cloud) == key
                        and float(value) > (pod.bid_per_gpu or 0.0) + 1e-9):
                    self._exit(pod, self.now_s, "outbid")

    def release_floor(self, gpu_type_id: str, cloud: str) -> None:
        with self.lock:
            self._pins.pop(self._market(gpu_type_id, cloud), None)

    def set_capacity(self, gpu_type_id: str, cloud: str, gpus: int) -> None:
        """Make exactly `gpus` GPUs free for new pods in this market (other users take or leave
        the rest), filling machines in order; adds machines when needed."""
        with self.lock:
            if gpus < 0:
                raise ConfigError(f"capacity must be >= 0 GPUs, got {gpus}")
            key = self._market(gpu_type_id, cloud)
            machines = self.market_machines[key]
            per_machine = min(self.gpu_types[gpu_type_id].max_gpu_count, 8)
            while sum(m.total - sum(m.ours.values()) for m in machines) < gpus:
                machine = Machine(self._new_id(12), gpu_type_id, cloud, _DATA_CENTERS[0], per_machine, per_machine)
                self.machines[machine.id] = machine
                machines.append(machine)
            remaining = gpus
            for m in machines:
                room = m.total - sum(m.ours.values())
                give = min(room, remaining)
                m.others = room - give
                remaining -= give

    def free_gpus(self, gpu_type_id: str, cloud: str) -> int:
        with self.lock:
            return sum(m.free for m in self.market_machines.get((gpu_type_id, cloud), ()))

    def _market(self, gpu_type_id: str, cloud: str) -> tuple[str, str]:
        key = (gpu_type_id, cloud)
        if key not in self.markets:
            known = ", ".join(f"{g}/{c}" for g, c in self.markets)
            raise ConfigError(f"no market {gpu_type_id}/{cloud}; known: {known}", key="market")
        return key

    def lowest_price(self, gpu_type_id: str, gpu_count: int, secure: bool | None) -> dict | None:
        """The `LowestPrice` answer: the cheapest matching cloud (both when `secure` is None)."""
        with self.lock:
            info = self.gpu_types[gpu_type_id]
            clouds = CLOUD_NAMES if secure is None else (("SECURE",) if secure else ("COMMUNITY",))
            keys = [(gpu_type_id, c) for c in clouds if (gpu_type_id, c) in self.markets]
            base: dict[str, Any] = {"gpuName": info.display_name, "gpuTypeId": gpu_type_id, "minimumBidPrice": None,
                    "uninterruptablePrice": None, "minMemory": None, "minVcpu": None, "stockStatus": None,
                    "maxUnreservedGpuCount": 0, "availableGpuCounts": [], "totalCount": 0, "rentedCount": 0,
                    "rentalPercentage": None}
            if not keys or gpu_count < 1 or gpu_count > info.max_gpu_count:
                return base
            machines = [m for key in keys for m in self.market_machines[key]]
            free = sum(m.free for m in machines)
            total = sum(m.total for m in machines)
            max_free = max((m.free for m in machines), default=0)
            fits = [k for k in keys if any(m.free >= gpu_count for m in self.market_machines[k])]
            floors = [f for f in (self.floor(*k) for k in fits) if f is not None]
            ods = [p for p in (self.on_demand(*k) for k in fits) if p is not None]
            base.update({
                "minimumBidPrice": min(floors) if floors else None,
                "uninterruptablePrice": min(ods) if ods else None,
                "stockStatus": "High" if free >= 16 else "Medium" if free >= 6 else "Low" if free >= 1 else "None",
                "maxUnreservedGpuCount": max_free,
                "availableGpuCounts": [n for n in range(1, info.max_gpu_count + 1) if n <= max_free],
                "totalCount": total, "rentedCount": total - free,
                "rentalPercentage": round((total - free) / total, 3) if total else None,
                "minMemory": 31 * gpu_count if fits else None, "minVcpu": 8 * gpu_count if fits else None,
            })
            return base

    # -- pods ----------------------------------------------------------------------------------
    def _place(self, key: tuple[str, str], gpu_count: int, data_center_id: str | None = None) -> Machine | None:
        return next((m for m in self.market_machines.get(key, ())
                     if m.free >= gpu_count and data_center_id in (None, m.data_center_id)), None)

    def _check_account(self, extra_per_hr: float) -> None:
        if self.current_spend_per_hr() + extra_per_hr > self.spend_limit + 1e-9:
            raise BusinessError(SPEND_LIMIT.format(limit=self.spend_limit))
        if self.client_balance() < extra_per_hr:
            raise BusinessError(LOW_BALANCE)

    def _clouds(self, spec: dict) -> list[tuple[str, str]]:
        """The markets a create may use: its GPU type(s) (gpuTypeId, else gpuTypeIdList) x cloud(s)."""
        cloud_type = spec.get("cloudType")
        clouds = CLOUD_NAMES if cloud_type in (None, "ALL") else (cloud_type,)
        types = [spec["gpuTypeId"]] if spec.get("gpuTypeId") else [t for t in spec.get("gpuTypeIdList") or [] if t]
        return [(t, c) for t in types for c in clouds if (t, c) in self.markets]

    def rent_interruptable(self, spec: dict, bid_per_gpu: float | None) -> SimPod:
        """podRentInterruptable: a spot pod at `bid_per_gpu` (per GPU) in the cheapest cloud whose
        floor the bid meets and which has a machine with room."""
        with self.lock:
            count = int(spec.get("gpuCount") or 1)
            keys = self._clouds(spec)
            keys.sort(key=lambda k: self.floor(*k) or math.inf)
            for key in keys:
                floor = self.floor(*key)
                if bid_per_gpu is None or floor is None or bid_per_gpu < floor - 1e-9 or count < 1:
                    continue
                machine = self._place(key, count, spec.get("dataCenterId"))
                if machine is None:
                    continue
                self._check_account(bid_per_gpu * count)
                return self._create(spec, key, machine, count, "INTERRUPTABLE", bid_per_gpu, bid_per_gpu)
            raise BusinessError(SPOT_NO_INSTANCES)

    def deploy_on_demand(self, spec: dict) -> SimPod:
        """podFindAndDeployOnDemand: an on-demand pod in the cheapest cloud with room."""
        with self.lock:
            count = int(spec.get("gpuCount") or 1)
            keys = self._clouds(spec)
            keys.sort(key=lambda k: self.on_demand(*k) or math.inf)
            for key in keys:
                price = self.on_demand(*key)
                machine = self._place(key, count, spec.get("dataCenterId")) if count >= 1 else None
                if price is None or machine is None:
                    continue
                self._check_account(price * count)
                return self._create(spec, key, machine, count, "RESERVED", None, price)
            raise BusinessError(ON_DEMAND_NO_INSTANCES)

    def _create(self, spec: dict, key: tuple[str, str], machine: Machine, count: int, pod_type: str,
                bid: float | None, price: float) -> SimPod:
        pod_id = self._new_id(14)
        env = tuple((str(e["key"]), str(e["value"])) for e in (spec.get("env") or []) if e)
        pod = SimPod(
            id=pod_id, name=spec.get("name") or f"pod-{pod_id[:6]}", image_name=spec.get("imageName") or "",
            gpu_type_id=key[0], cloud=key[1], gpu_count=count, pod_type=pod_type, bid_per_gpu=bid,
            price_per_gpu=price, machine_id=machine.id, created_s=self.now_s,
            container_disk_in_gb=spec.get("containerDiskInGb"), volume_in_gb=spec.get("volumeInGb"),
            volume_mount_path=spec.get("volumeMountPath"), ports=spec.get("ports"), env=env,
            docker_args=spec.get("dockerArgs"), template_id=spec.get("templateId"),
        )
        self.pods[pod_id] = pod
        self._start(pod, machine)
        return pod

    def _start(self, pod: SimPod, machine: Machine) -> None:
        machine.ours[pod.id] = pod.gpu_count
        pod.desired_status = "RUNNING"
        pod.exit_reason = None
        pod.run_started_s = self.now_s
        pod.billed_until_s = self.now_s
        pod.last_status_change = f"Rented by User: {_js_date(self.now_s)}"
        # One draw per run from the pod's own stream: reclaims do not depend on request order.
        rng = random.Random(f"{self.seed}|{pod.id}|{pod.interruptions}|{pod.run_started_s}")
        pod.reclaim_exp = rng.expovariate(1.0) if pod.is_spot else math.inf

    def _exit(self, pod: SimPod, when: float, reason: str) -> None:
        self._bill(pod, when)
        self.machines[pod.machine_id].ours.pop(pod.id, None)
        pod.desired_status = "EXITED"
        pod.exit_reason = reason
        pod.run_started_s = None
        if reason == "user":
            pod.last_status_change = f"Exited by User: {_js_date(when)}"
        else:
            pod.interruptions += 1
            pod.last_status_change = f"Exited by Runpod: {reason} at {_js_date(when)}"

    def get_pod(self, pod_id: str) -> SimPod | None:
        """A pod the API still shows (terminated pods are gone, as on RunPod)."""
        with self.lock:
            pod = self.pods.get(pod_id)
            return None if pod is None or pod.desired_status == "TERMINATED" else pod

    def resume(self, pod_id: str, gpu_count: int | None) -> SimPod:
        """podResume: on-demand pods only, on their own machine."""
        with self.lock:
            pod = self.get_pod(pod_id)
            if pod is None:
                raise BusinessError(RESUME_NOT_FOUND)
            if pod.is_spot:
                raise BusinessError(CANNOT_RESUME_SPOT)
            if pod.desired_status == "RUNNING":
                return pod
            count = gpu_count or pod.gpu_count
            machine = self.machines[pod.machine_id]
            price = self.on_demand(pod.gpu_type_id, pod.cloud)
            if machine.free < count or price is None:
                raise BusinessError(MACHINE_FULL)
            self._check_account(price * count)
            pod.gpu_count, pod.price_per_gpu = count, price
            self._start(pod, machine)
            return pod

    def bid_resume(self, pod_id: str, bid_per_gpu: float, gpu_count: int) -> SimPod:
        """podBidResume: restart a spot pod on its machine with a new bid (per GPU)."""
        with self.lock:
            pod = self.get_pod(pod_id)
            if pod is None:
                raise BusinessError(RESUME_NOT_FOUND)
            if not pod.is_spot:
                raise BusinessError(BAD_BID_RESUME)
            if pod.desired_status == "RUNNING":
                return pod
            floor = self.floor(pod.gpu_type_id, pod.cloud)
            if floor is None or bid_per_gpu < floor - 1e-9 or gpu_count < 1:
                raise BusinessError(SPOT_NO_INSTANCES)
            machine = self.machines[pod.machine_id]
            if machine.free < gpu_count:
                raise BusinessError(MACHINE_FULL)
            self._check_account(bid_per_gpu * gpu_count)
            pod.gpu_count, pod.bid_per_gpu, pod.price_per_gpu = gpu_count, bid_per_gpu, bid_per_gpu
            self._start(pod, machine)
            return pod

    def stop(self, pod_id: str) -> SimPod:
        with self.lock:
            pod = self.get_pod(pod_id)
            if pod is None:
                raise BusinessError(STOP_NOT_FOUND)
            if pod.desired_status == "RUNNING":
                self._exit(pod, self.now_s, "user")
            return pod

    def terminate(self, pod_id: str) -> None:
        with self.lock:
            pod = self.get_pod(pod_id)
            if pod is None:
                raise BusinessError(TERMINATE_NOT_FOUND)
            self._bill(pod, self.now_s)
            self.machines[pod.machine_id].ours.pop(pod.id, None)
            pod.desired_status = "TERMINATED"
            pod.run_started_s = None
            pod.last_status_change = f"Terminated by User: {_js_date(self.now_s)}"

    # -- account -------------------------------------------------------------------------------
    def true_spend(self, pod_id: str) -> float:
        """USD billed for this pod so far (per second while RUNNING, at its bid or on-demand price)."""
        with self.lock:
            return self.pods[pod_id].spend

    def account(self) -> list[dict[str, Any]]:
        """The emulator's own account of every pod it ever made (terminated ones too), billed up to
        now: what `GET /sim/pods` answers, to check a client's ledger against."""
        with self.lock:
            out = []
            for pod in self.pods.values():
                self._bill(pod, self.now_s)
                out.append({"id": pod.id, "name": pod.name, "gpu_type_id": pod.gpu_type_id, "cloud": pod.cloud,
                            "gpu_count": pod.gpu_count, "pod_type": pod.pod_type,
                            "desired_status": pod.desired_status, "bid_per_gpu": pod.bid_per_gpu,
                            "cost_per_hr": pod.cost_per_hr, "billed": pod.spend,
                            "running_hours": pod.run_s / 3600.0, "interruptions": pod.interruptions})
            return out

    def total_spend(self) -> float:
        with self.lock:
            return sum(p.spend for p in self.pods.values())

    def client_balance(self) -> float:
        return self.initial_balance - self.total_spend()

    def current_spend_per_hr(self) -> float:
        with self.lock:
            return sum(p.cost_per_hr for p in self.pods.values() if p.desired_status == "RUNNING")

    def lowest_bid_to_resume(self, pod: SimPod) -> float | None:
        return self.floor(pod.gpu_type_id, pod.cloud) if pod.is_spot else None
