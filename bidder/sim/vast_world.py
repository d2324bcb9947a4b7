"""The emulator's Vast world: a seeded market of host machines, other renters, and our instances.

Market (`VastMarket`, a pure function of the seed and the instant):
- machines with 1, 2, 4 or 8 GPUs of several types, each with a host's per-GPU floor (the lowest
  bid it takes), an on-demand price, a reliability score, a verified flag and a storage price
  ($/GB/month). A machine is rented whole: one offer per machine.
- Time is cut in slots of SLOT_S seconds. In each slot, drawn from (seed, slot) only: an
  on-demand renter may hold the machine (it is then not listed and displaces any bidder), and a
  competing bidder may bid on it, which lifts the machine's `min_bid` above the host's floor.
- An offer's id is a hash of the machine and the slot its current listing began (after the last
  on-demand rental, or at the latest a whole day of slots): it changes when the machine is relisted,
  also after one of our rentals on it ends (`VastWorld` renews the id then).

Our instances (`VastWorld`): a bid instance runs while its owner wants it running, no on-demand
renter holds the machine, and its bid (per instance) is at least the host's floor and the competing
bid (a tie keeps the incumbent: ours). Otherwise it is PAUSED, not destroyed, and resumes by itself
in the first slot where that holds again (or at once when its owner raises the bid). An on-demand
instance keeps its machine. Billing, per second: pay-as-bid (our own bid, not min_bid) or the
on-demand compute price while running, plus storage (`disk_gb * storage_cost / 720` per hour) for
the instance's whole life, paused or stopped included, until it is destroyed.

Assumptions marked [?] in VAST_API.md are constants or attributes here, easy to change:
`PAUSED_INTENDED_STATUS` (what intended_status reads while outbid), `STORAGE_WHILE_RUNNING`,
`LOW_BID_STATUS` and the texts below.

Lock: the RunPod world's RLock (`World.lock`), shared, as is its virtual clock.
"""

from __future__ import annotations

import math
import random
import zlib
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from bidder.errors import ConfigError
from bidder.models import PriceQuote
from bidder.sim.clock import from_epoch, to_epoch
from bidder.sim.prices import DEFAULT_START
from bidder.units import to_iso
from bidder.vast.offers import per_gpu

__all__ = [
    "LOW_BID_STATUS",
    "PAUSED_INTENDED_STATUS",
    "SLOT_S",
    "STORAGE_WHILE_RUNNING",
    "VAST_GPUS",
    "VastError",
    "VastInstance",
    "VastMarket",
    "VastWorld",
    "generate_vast_quotes",
    "generate_vast_trace",
]

#: (Vast gpu_name, gpu_ram MB per GPU, typical on-demand USD per GPU-hour), after Vast's listings.
VAST_GPUS: tuple[tuple[str, int, float], ...] = (
    ("RTX 3090", 24576, 0.22), ("RTX 4090", 24564, 0.40), ("RTX A6000", 49140, 0.48),
    ("L40S", 46068, 0.80), ("A100 SXM4", 81920, 1.15), ("H100 SXM", 81559, 2.10),
)
_COUNTS = np.array([1, 2, 4, 8])
_COUNT_P = np.array([0.4, 0.25, 0.2, 0.15])
_GEO = ("Texas, US", "Ohio, US", "Quebec, CA", "Bavaria, DE", "Utrecht, NL", "Norway, NO", "Taiwan, TW",
        "Nevada, US")
#: Market slot: other renters and competing bids change only at slot boundaries.
SLOT_S = 1800
_RELIST_SLOTS = 48  # a listing is renewed (new offer id) at least once a day
#: [?] What intended_status reads while a bid instance is paused by a higher bid. dstack reads
#: "stopped" everywhere as outbid; bidder assumes the owner's intent stays "running".
PAUSED_INTENDED_STATUS = "running"
#: [?] Storage is billed while running too (Vast's dph_total includes it); stopped/paused [docs].
STORAGE_WHILE_RUNNING = True
#: [?] The HTTP status of the answer to a bid below min_bid, which still carries new_contract.
LOW_BID_STATUS = 400
PAUSED_MSG = "Instance paused: outbid by a higher bid or displaced by an on-demand rental."
STOPPED_MSG = "Instance stopped by its owner."
RUNNING_MSG = "success, running"


class VastError(Exception):
    """An answer Vast gives as an error: HTTP status, error code, message (and fields to add)."""

    def __init__(self, status: int, code: str, message: str, extra: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.extra = dict(extra or {})

    def payload(self) -> dict[str, Any]:
        return {"success": False, "error": self.code, "msg": self.message, **self.extra}


def _crc(*parts: object) -> int:
    return zlib.crc32("|".join(map(str, parts)).encode())


class VastMarket:
    """Machines and other renters: a pure function of (seed, instant). See the module docstring."""

    def __init__(self, seed: int = 0, machines: int = 300, gpus: Sequence[tuple[str, int, float]] = VAST_GPUS,
                 cache_slots: int = 512) -> None:
        if isinstance(machines, bool) or not isinstance(machines, int) or machines < 1:
            raise ConfigError(f"the Vast market needs >= 1 machine, got {machines!r}", key="vast_machines")
        self.seed = seed
        self.gpus = tuple(gpus)
        rng = np.random.default_rng([seed, 0x5A57])
        n = machines
        self.n = n
        self.gpu_index = rng.integers(0, len(self.gpus), n)
        self.num_gpus = rng.choice(_COUNTS, n, p=_COUNT_P)
        base = np.array([g[2] for g in self.gpus])[self.gpu_index]
        self.floor_per_gpu = np.round(base * rng.uniform(0.28, 0.55, n), 4)
        self.od_per_gpu = np.round(base * rng.uniform(0.85, 1.35, n), 4)
        self.reliability = np.round(np.clip(1.0 - rng.exponential(0.03, n), 0.6, 0.9999), 4)
        self.verified = rng.random(n) < 0.7
        self.storage_cost = np.round(rng.uniform(0.05, 0.30, n), 3)
        self.p_od = rng.uniform(0.02, 0.2, n)        # chance an on-demand renter holds the machine per slot
        self.p_bid = rng.uniform(0.15, 0.6, n)       # chance a competing bidder bids on it per slot
        self.machine_id = 10_000 + np.arange(n) * 7 + rng.integers(0, 7, n)
        self.host_id = 100_000 + (np.arange(n) // 3) * 11 + rng.integers(0, 11, n)
        self.geo = [_GEO[i] for i in rng.integers(0, len(_GEO), n)]
        self.index_of_machine = {int(m): i for i, m in enumerate(self.machine_id)}
        self._cache: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._cache_slots = cache_slots
        self._ids: OrderedDict[int, np.ndarray] = OrderedDict()

    def gpu_name(self, i: int) -> str:
        return self.gpus[int(self.gpu_index[i])][0]

    def gpu_ram(self, i: int) -> int:
        return self.gpus[int(self.gpu_index[i])][1]

    # -- per-slot draws -----------------------------------------------------------------------
    @staticmethod
    def slot_of(t: float) -> int:
        return math.floor(t / SLOT_S)

    def slot(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(on-demand renter present, competing bid per GPU or NaN) for every machine in slot k."""
        hit = self._cache.get(k)
        if hit is not None:
            self._cache.move_to_end(k)
            return hit
        rng = np.random.default_rng([self.seed, 0xB1D, k & 0xFFFFFFFF, k >> 32 & 0xFFFFFFFF])
        od_busy = rng.random(self.n) < self.p_od
        has_bid = rng.random(self.n) < self.p_bid
        comp = self.floor_per_gpu * (1.0 + rng.exponential(0.35, self.n))
        comp = np.round(np.minimum(comp, self.od_per_gpu * 1.05), 4)
        value = (od_busy, np.where(has_bid, comp, np.nan))
        self._cache[k] = value
        if len(self._cache) > self._cache_slots:
            self._cache.popitem(last=False)
        return value

    def offer_ids(self, k: int) -> np.ndarray:
        """Every machine's offer id in slot k (a hash of the machine and its listing's first slot)."""
        hit = self._ids.get(k)
        if hit is not None:
            return hit
        start = np.full(self.n, (k // _RELIST_SLOTS) * _RELIST_SLOTS)
        found = np.zeros(self.n, dtype=bool)
        for j in range(k, start[0] - 1, -1):   # the last slot an on-demand renter held it ends a listing
            busy = self.slot(j)[0] & ~found
            start = np.where(busy, j + 1, start)
            found |= self.slot(j)[0]
        ids = np.array([10_000_000 + _crc(self.seed, int(m), int(s)) % 89_999_999
                        for m, s in zip(self.machine_id, start, strict=True)])
        self._ids[k] = ids
        if len(self._ids) > 64:
            self._ids.popitem(last=False)
        return ids

    def min_bid_per_gpu(self, k: int) -> np.ndarray:
        """The lowest per-GPU bid that would run on each machine in slot k (NaN: rented on-demand)."""
        od_busy, comp = self.slot(k)
        floor = np.fmax(self.floor_per_gpu, comp)
        return np.where(od_busy, np.nan, floor)

    def storage_per_hr(self, i: int, disk_gb: float) -> float:
        return float(self.storage_cost[i]) * disk_gb / 720.0


@dataclass
class VastInstance:
    id: int
    machine: int                       # index into the market's arrays
    label: str | None
    image: str
    disk_gb: float
    env: dict[str, Any]
    onstart: str | None
    is_bid: bool
    price: float | None                # bid per instance-hour (None: on-demand)
    od_price: float                    # on-demand compute per instance-hour (at create)
    storage_per_hr: float
    created_s: float
    intended: str = "running"
    billed_until_s: float = 0.0
    spend: float = 0.0
    running_s: float = 0.0
    interruptions: int = 0
    was_running: bool = False
    destroyed: bool = False
    loading_until_s: float = 0.0       # the view shows actual_status null/"loading" until then

    @property
    def compute_per_hr(self) -> float:
        return self.price if self.is_bid and self.price is not None else self.od_price


class VastWorld:
    """Vast's side of the emulator on the shared virtual clock and lock. See the module docstring."""

    def __init__(self, seed: int, now_s: Callable[[], float], lock: Any, machines: int = 300) -> None:
        self.market = VastMarket(seed, machines)
        self.seed = seed
        self._now = now_s
        self.lock = lock
        self.instances: dict[int, VastInstance] = {}
        self._ids = random.Random(f"{seed}|vast-ids")
        self._next_id = 4_000_000 + self._ids.randrange(1_000_000)
        self._pin_bid: dict[int, float | None] = {}     # machine index -> competing bid per GPU (None: none)
        self._pin_od: dict[int, bool] = {}              # machine index -> on-demand renter present
        self._relists: dict[int, int] = {}              # machine index -> our rentals ended on it
        self.paused_intended_status = PAUSED_INTENDED_STATUS
        #: Emulate the known overspend: a server that ignores `price` and rents on-demand (tests).
        self.ignore_price = False
        #: Seconds a created or started instance shows actual_status null (first half) then
        #: "loading" before "running" (0: running at once). [?] Billed as running meanwhile.
        self.loading_s = 0.0

    @property
    def now_s(self) -> float:
        return self._now()

    # -- other renters (pure, unless pinned by a test) -----------------------------------------
    def _slot_state(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        od, comp = self.market.slot(k)
        if self._pin_od or self._pin_bid:
            od, comp = od.copy(), comp.copy()
            for i, busy in self._pin_od.items():
                od[i] = busy
            for i, bid in self._pin_bid.items():
                comp[i] = np.nan if bid is None else bid
        return od, comp

    def _ours(self) -> dict[int, VastInstance]:
        return {inst.machine: inst for inst in self.instances.values() if not inst.destroyed}

    def _running(self, inst: VastInstance, od: np.ndarray, comp: np.ndarray) -> bool:
        if inst.destroyed or inst.intended != "running":
            return False
        if not inst.is_bid:
            return True
        i = inst.machine
        if od[i]:
            return False
        need = per_gpu_needed(float(self.market.floor_per_gpu[i]), float(comp[i]))
        return (inst.price or 0.0) >= need * int(self.market.num_gpus[i]) - 1e-9

    def _bill(self, inst: VastInstance, until: float) -> None:
        t = inst.billed_until_s
        while t < until - 1e-9:
            k = VastMarket.slot_of(t)
            end = min(until, (k + 1) * SLOT_S)
            running = self._running(inst, *self._slot_state(k))
            if inst.was_running and not running and inst.intended == "running":
                inst.interruptions += 1
            inst.was_running = running
            rate = (inst.compute_per_hr if running else 0.0)
            if running is False or STORAGE_WHILE_RUNNING:
                rate += inst.storage_per_hr
            inst.spend += rate * (end - t) / 3600.0
            if running:
                inst.running_s += end - t
            t = end
        inst.billed_until_s = max(inst.billed_until_s, until)

    def catch_up(self) -> None:
        """Bill every live instance up to now (called before every answer and every change)."""
        now = self.now_s
        for inst in self.instances.values():
            if not inst.destroyed:
                self._bill(inst, now)

    def _refresh(self, inst: VastInstance) -> None:
        # After a change at `now` (a new bid, a start): the running state of the current slot.
        k = VastMarket.slot_of(self.now_s)
        running = self._running(inst, *self._slot_state(k))
        if inst.was_running and not running and inst.intended == "running":
            inst.interruptions += 1
        inst.was_running = running

    # -- test controls -------------------------------------------------------------------------
    def machine_index(self, machine_id: int) -> int:
        try:
            return self.market.index_of_machine[int(machine_id)]
        except KeyError:
            raise ConfigError(f"no Vast machine {machine_id}", key="machine_id") from None

    def set_competitor(self, machine_id: int, bid_per_gpu: float | None) -> None:
        """Pin the competing bid per GPU on a machine (None: no competitor) until `release`."""
        with self.lock:
            self.catch_up()
            self._pin_bid[self.machine_index(machine_id)] = bid_per_gpu
            self._refresh_all()

    def set_on_demand_renter(self, machine_id: int, present: bool) -> None:
        """Pin whether another user's on-demand rental holds the machine until `release`."""
        with self.lock:
            self.catch_up()
            self._pin_od[self.machine_index(machine_id)] = bool(present)
            self._refresh_all()

    def release(self, machine_id: int | None = None) -> None:
        """Drop the pins of one machine (or of all): the seeded market rules again."""
        with self.lock:
            self.catch_up()
            if machine_id is None:
                self._pin_bid.clear()
                self._pin_od.clear()
            else:
                i = self.machine_index(machine_id)
                self._pin_bid.pop(i, None)
                self._pin_od.pop(i, None)
            self._refresh_all()

    def _refresh_all(self) -> None:
        for inst in self.instances.values():
            if not inst.destroyed:
                self._refresh(inst)

    def true_spend(self, instance_id: int) -> float:
        """USD billed to this instance so far (compute while running, storage throughout)."""
        with self.lock:
            inst = self.instances[int(instance_id)]
            if not inst.destroyed:
                self._bill(inst, self.now_s)
            return inst.spend

    def total_spend(self) -> float:
        with self.lock:
            return sum(self.true_spend(i) for i in self.instances)

    def account(self) -> list[dict[str, Any]]:
        """The emulator's own account of every instance it ever made (destroyed ones too), billed up
        to now: the Vast half of `GET /sim/pods`, to check a client's ledger against."""
        with self.lock:
            out = []
            for inst in sorted(self.instances.values(), key=lambda x: x.id):
                billed = self.true_spend(inst.id)
                out.append({"id": inst.id, "label": inst.label, "type": "bid" if inst.is_bid else "on-demand",
                            "intended_status": inst.intended, "destroyed": inst.destroyed,
                            "bid_per_hr": inst.price if inst.is_bid else None, "compute_per_hr": inst.compute_per_hr,
                            "storage_per_hr": inst.storage_per_hr, "billed": billed,
                            "running_hours": inst.running_s / 3600.0, "interruptions": inst.interruptions})
            return out

    # -- offers --------------------------------------------------------------------------------
    def offers(self, storage_gb: float = 10.0, kind: str = "on-demand") -> list[dict[str, Any]]:
        """Every listed offer now, as Vast's search answers them (before filters)."""
        with self.lock:
            return self._offers(storage_gb, kind)

    def _offers(self, storage_gb: float, kind: str) -> list[dict[str, Any]]:
        m = self.market
        k = VastMarket.slot_of(self.now_s)
        od, comp = self._slot_state(k)
        ids = self._offer_ids(k)
        ours = self._ours()
        floor = np.fmax(m.floor_per_gpu, comp)
        out = []
        for i in range(m.n):
            if od[i] or i in ours:
                continue
            n = int(m.num_gpus[i])
            min_bid = round(float(floor[i]) * n, 6)
            on_demand = round(float(m.od_per_gpu[i]) * n, 6)
            storage = round(m.storage_per_hr(i, storage_gb), 6)
            base = min_bid if kind == "bid" else on_demand
            out.append({
                "id": int(ids[i]), "ask_contract_id": int(ids[i]), "machine_id": int(m.machine_id[i]),
                "host_id": int(m.host_id[i]), "gpu_name": m.gpu_name(i), "num_gpus": n, "gpu_ram": m.gpu_ram(i),
                "reliability": float(m.reliability[i]), "reliability2": float(m.reliability[i]),
                "verification": _verification(m.verified[i]), "external": False, "rentable": True, "rented": False,
                "geolocation": m.geo[i], "storage_cost": float(m.storage_cost[i]), "min_bid": min_bid,
                "dph_base": base, "dph_total": round(base + storage, 6), "cpu_cores": 8 * n,
                "cpu_cores_effective": 8.0 * n, "cpu_ram": 32_000 * n, "disk_space": 500.0,
                "is_bid": kind == "bid",
            })
        return out

    def _offer_ids(self, k: int) -> np.ndarray:
        """The market's offer ids, renewed on machines where one of our rentals ended (relisted)."""
        ids = self.market.offer_ids(k)
        if self._relists:
            ids = ids.copy()
            for i, count in self._relists.items():
                ids[i] = 10_000_000 + _crc(self.seed, int(ids[i]), "relisted", count) % 89_999_999
        return ids

    def _machine_of_offer(self, offer_id: int) -> int:
        k = VastMarket.slot_of(self.now_s)
        hits = np.flatnonzero(self._offer_ids(k) == offer_id)
        if hits.size == 0:
            # As Vast's docs give it: 404 `invalid_args`, the ask's absence in the text (410 says no_such_ask).
            raise VastError(404, "invalid_args", f"no_such_ask Instance type by id {offer_id} is not available.")
        i = int(hits[0])
        od, _ = self._slot_state(k)
        if od[i] or i in self._ours():
            raise VastError(410, "no_such_ask", f"Instance type by id {offer_id} is no longer available.")
        return i

    # -- instances -----------------------------------------------------------------------------
    def create(self, offer_id: int, body: Mapping[str, Any]) -> int:
        """PUT /asks/{id}/: returns the new instance id, or raises VastError (which, for a losing
        bid, still carries new_contract: the instance exists, paused)."""
        with self.lock:
            self.catch_up()
            i = self._machine_of_offer(offer_id)
            price = None if self.ignore_price else body.get("price")
            if price is not None and (isinstance(price, bool) or not isinstance(price, (int, float))
                                      or not 0.001 <= price <= 128):
                raise VastError(400, "invalid_price", "price must be a number between 0.001 and 128.")
            disk = body.get("disk", 10.0)
            if isinstance(disk, bool) or not isinstance(disk, (int, float)) or not disk > 0:
                raise VastError(400, "invalid_args", "disk must be a positive number of GB.")
            image = body.get("image")
            if not isinstance(image, str) or not image:
                raise VastError(400, "invalid_args", "image is required.")
            m = self.market
            self._next_id += 1 + self._ids.randrange(40)
            env = body.get("env")
            inst = VastInstance(
                id=self._next_id, machine=i, label=body.get("label") if isinstance(body.get("label"), str) else None,
                image=image, disk_gb=float(disk), env=dict(env) if isinstance(env, Mapping) else {},
                onstart=body.get("onstart") if isinstance(body.get("onstart"), str) else None,
                is_bid=price is not None, price=float(price) if price is not None else None,
                od_price=round(float(m.od_per_gpu[i]) * int(m.num_gpus[i]), 6),
                storage_per_hr=m.storage_per_hr(i, float(disk)), created_s=self.now_s,
                billed_until_s=self.now_s, loading_until_s=self.now_s + self.loading_s)
            self.instances[inst.id] = inst
            self._refresh(inst)
            if inst.is_bid and not inst.was_running:
                need = self._min_bid_now(i)
                raise VastError(LOW_BID_STATUS, "invalid_price",
                                f"Your bid of ${price:.4f}/hr is below the current minimum bid "
                                f"${need:.4f}/hr; the instance was created stopped.",
                                {"new_contract": inst.id})
            return inst.id

    def _min_bid_now(self, i: int) -> float:
        k = VastMarket.slot_of(self.now_s)
        _, comp = self._slot_state(k)
        return per_gpu_needed(float(self.market.floor_per_gpu[i]), float(comp[i])) * int(self.market.num_gpus[i])

    def _live(self, instance_id: int) -> VastInstance:
        inst = self.instances.get(int(instance_id))
        if inst is None or inst.destroyed:
            raise VastError(404, "no_such_instance", f"Instance {instance_id} not found.")
        return inst

    def change_bid(self, instance_id: int, price: Any) -> None:
        with self.lock:
            self.catch_up()
            inst = self._live(instance_id)
            n = int(self.market.num_gpus[inst.machine])
            if isinstance(price, bool) or not isinstance(price, (int, float)) or not 0.001 <= price <= 32.0 * n:
                raise VastError(400, "invalid_args", f"price must be between 0.001 and {32.0 * n:g} for this instance.")
            if not inst.is_bid:
                raise VastError(400, "invalid_args", "Only interruptible (bid) instances have a bid price.")
            inst.price = float(price)
            self._refresh(inst)

    def set_state(self, instance_id: int, state: Any) -> None:
        with self.lock:
            self.catch_up()
            inst = self._live(instance_id)
            if state not in ("running", "stopped"):
                raise VastError(400, "invalid_args", "state must be 'running' or 'stopped'.")
            if state == "running" and inst.intended == "stopped":
                inst.loading_until_s = self.now_s + self.loading_s
            inst.intended = state
            self._refresh(inst)

    def destroy(self, instance_id: int) -> None:
        with self.lock:
            self.catch_up()
            inst = self._live(instance_id)
            inst.destroyed = True
            inst.was_running = False
            self._relists[inst.machine] = self._relists.get(inst.machine, 0) + 1

    def view(self, instance_id: int) -> dict[str, Any]:
        with self.lock:
            self.catch_up()
            return self._view(self._live(instance_id))

    def views(self) -> list[dict[str, Any]]:
        with self.lock:
            self.catch_up()
            return [self._view(i) for i in sorted(self.instances.values(), key=lambda x: x.id) if not i.destroyed]

    def _view(self, inst: VastInstance) -> dict[str, Any]:
        m, i = self.market, inst.machine
        running = inst.was_running
        if running and self.now_s < inst.loading_until_s:
            half = inst.loading_until_s - self.loading_s / 2
            actual, intended, msg = (None if self.now_s < half else "loading"), "running", "Loading image."
        elif running:
            actual, intended, msg = "running", "running", RUNNING_MSG
        elif inst.intended == "stopped":
            actual, intended, msg = "stopped", "stopped", STOPPED_MSG
        else:
            actual, intended, msg = "stopped", self.paused_intended_status, PAUSED_MSG
        n = int(m.num_gpus[i])
        return {
            "id": inst.id, "actual_status": actual, "intended_status": intended, "cur_state": actual,
            "next_state": intended, "is_bid": inst.is_bid, "min_bid": round(self._min_bid_now(i), 6),
            "dph_base": inst.compute_per_hr,  # (a bid instance's bid: Vast's instances carry no bid_price)
            "dph_total": round(inst.compute_per_hr + inst.storage_per_hr, 6),
            "start_date": inst.created_s, "uptime_mins": round(inst.running_s / 60.0, 3), "status_msg": msg,
            "label": inst.label, "machine_id": int(m.machine_id[i]), "host_id": int(m.host_id[i]),
            "num_gpus": n, "gpu_name": m.gpu_name(i), "gpu_ram": m.gpu_ram(i),
            "storage_cost": float(m.storage_cost[i]), "disk_space": inst.disk_gb, "image_uuid": inst.image,
            "reliability2": float(m.reliability[i]), "verification": _verification(m.verified[i]),
        }

    def interruptions(self, instance_id: int) -> int:
        with self.lock:
            inst = self.instances[int(instance_id)]
            if not inst.destroyed:
                self._bill(inst, self.now_s)
            return inst.interruptions


def per_gpu_needed(floor_per_gpu: float, competing_per_gpu: float) -> float:
    """The per-GPU bid that runs on a machine: the host's floor, or the competing bid if higher."""
    return floor_per_gpu if math.isnan(competing_per_gpu) else max(floor_per_gpu, competing_per_gpu)


# -- the market as a trace ----------------------------------------------------------------------------

def generate_vast_quotes(seed: int, days: float, step_s: int = 300, gpu_names: Sequence[str] | None = None, *,
                         start: datetime = DEFAULT_START, machines: int = 300, min_reliability: float = 0.95,
                         disk_gb: float = 10.0) -> list[PriceQuote]:
    """The Vast market of `bidder sim serve --seed SEED` as quotes: one per (instant, GPU name, GPU
    count, tier), the cheapest floor (`min_bid`) and on-demand price (`dph_total`, storage for
    `disk_gb` included) per GPU among the listed offers with reliability >= `min_reliability`;
    tier (the `cloud` field) VERIFIED or UNVERIFIED by the host's verified flag. A combination
    with no such offer has no prices, so every instant has the same rows. `stock_status` holds
    the number of offers behind the row, e.g. "7 offers"."""
    if not days > 0 or step_s < 1:
        raise ConfigError("days must be > 0 and the step at least 1 second", key="days")
    market = VastMarket(seed, machines)
    names = [g[0] for g in market.gpus]
    if gpu_names:
        unknown = sorted(set(gpu_names) - set(names))
        if unknown:
            raise ConfigError(f"unknown Vast GPU name {unknown[0]!r}; known: {', '.join(names)}", key="gpu_names")
        names = [n for n in names if n in set(gpu_names)]
    t0 = to_epoch(start)
    # The instants in [start, start + days), as RunPod's trace has them (this one ended on the last one too).
    steps = math.ceil(days * 86400 / step_s - 1e-9)
    storage = market.storage_cost * disk_gb / 720.0
    od_total = market.od_per_gpu * market.num_gpus + storage
    ok = market.reliability >= min_reliability
    all_names = [x[0] for x in market.gpus]
    combos = [(g, all_names.index(g), c, tier) for g in names for c in (1, 2, 4, 8)
              for tier in ("VERIFIED", "UNVERIFIED")]
    quotes: list[PriceQuote] = []
    for s in range(steps):
        t = t0 + s * step_s
        k = VastMarket.slot_of(t)
        od_busy, _ = market.slot(k)
        min_bid = market.min_bid_per_gpu(k) * market.num_gpus
        listed = ok & ~od_busy
        ts = from_epoch(t)
        for g, gi, c, tier in combos:
            sel = listed & (market.gpu_index == gi) & (market.num_gpus == c) & (market.verified == (tier == "VERIFIED"))
            idx = np.flatnonzero(sel)
            floor = min((per_gpu(float(min_bid[i]), c) for i in idx), default=None)
            on_demand = min((per_gpu(float(od_total[i]), c) for i in idx), default=None)
            quotes.append(PriceQuote(ts=ts, gpu_type_id=g, cloud=tier, gpu_count=c,
                                     minimum_bid_price=None if floor is None else round(floor, 6),
                                     uninterruptable_price=None if on_demand is None else round(on_demand, 6),
                                     stock_status=f"{idx.size} offers"))
    return quotes


def generate_vast_trace(seed: int, days: float, step_s: int = 300, gpu_names: Sequence[str] | None = None, *,
                        start: datetime = DEFAULT_START, machines: int = 300,
                        min_reliability: float = 0.95) -> list[dict[str, Any]]:
    """`generate_vast_quotes` as trace rows (dicts): ts (ISO text), gpu_type, minimum_bid_price,
    uninterruptable_price (USD per GPU-hour, None = no offer), cloud (the tier), gpu_count,
    market ("vast") and offers (how many offers are behind the row)."""
    return [{"ts": to_iso(q.ts), "gpu_type": q.gpu_type_id, "minimum_bid_price": q.minimum_bid_price,
             "uninterruptable_price": q.uninterruptable_price, "cloud": q.cloud, "gpu_count": q.gpu_count,
             "market": "vast", "offers": int((q.stock_status or "0").split()[0])}
            for q in generate_vast_quotes(seed, days, step_s, gpu_names, start=start, machines=machines,
                                          min_reliability=min_reliability)]


def _verification(verified: bool) -> str:
    """Vast's `verification` text of a machine (offers and instances say it so, not as a flag)."""
    return "verified" if verified else "unverified"
