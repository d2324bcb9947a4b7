"""Vast.ai behind the executor's `PodApi`: instances as pods, offers picked per create.

    api = VastPodApi(VastClient(api_key=key, url=url), filters=OfferFilters(min_reliability=0.95))
    ex = Executor(api, store)                      # the same executor, guarantees and ledger as RunPod

What the executor calls, and what it means on Vast:
- `spec(template, name, gpu, count, tier)`: a `VastCreate`; the pod name is the instance's `label`
  (deterministic per attempt, how a lost create is found again by `pods()`).
- `rent_interruptable(spec, bid)`: ONE search for offers of that GPU name, count and tier passing the
  filters; of those whose spot floor (`min_bid` per GPU) is at or below the bid, the one cheapest per
  useful hour: the bid and the disk's storage, less the work its machine's pauses lose at the bid's
  premium over that machine's floor (`bidder.vast.pick` with the spec's `pauses`, the rule the plan
  prices by), then ONE create with `price` = bid x
  GPUs (`bidder.vast.offers.per_instance`, the only conversion). The client reads it back and destroys
  it if Vast made it on-demand or the bid lost (NoCapacity).
- `deploy_on_demand(spec)`: the cheapest on-demand offer, never one above the spec's
  `max_price_per_gpu` (the job's cap) per GPU.
- Both take only offers whose instance costs at most the spec's `max_cost_per_hr` in all (compute and
  the storage Vast bills for the disk): what the job's budget and `max_spend_per_hour` leave. The
  executor checks the price before the create; the storage is known only once the offer is.
- `bid_resume(id, bid, n)`: Vast has no resume at a bid: an outbid instance is paused and resumes by
  itself when its bid is the highest again. So: change the bid when it differs (raise it), start
  it when its owner had stopped it. `resume` starts it. `stop` stops it (storage still billed);
  `terminate` destroys it.

A pod (`VastPod`, a `bidder.runpod.Pod`) reads RUNNING while the instance runs or loads, else
EXITED; `last_status_change` says "Exited by Vast: outbid ..." for a paused bid instance (the
executor counts an interruption) and "Exited by user ..." for one its owner stopped. It carries
what Vast bills: `cost_per_hr` the compute rate per instance (pay-as-bid), `storage_per_hr`, and
`running_seconds` (total running time): the executor writes them as billing observations
(`bidder.store.estimate_spend`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bidder.errors import AboveCostLimit, MalformedAnswer, NoCapacity, PodNotFound
from bidder.jobs import PodTemplate
from bidder.runpod import Pod
from bidder.runpod.types import MAX_UPTIME_S
from bidder.units import usd
from bidder.vast import Instance, InstanceSpec, InstanceState, Offer, VastClient, VastRequest
from bidder.vast.offers import per_gpu, per_instance, storage_per_hour
from bidder.vast.pick import NO_PAUSES, Pauses, of_market, spot_pick, takes_bid
from bidder.vast.summary import OfferFilters

__all__ = ["VastCreate", "VastDryRun", "VastPod", "VastPodApi", "to_pod"]

_SLACK = 1e-9


@dataclass(frozen=True)
class VastPod(Pod):
    """A Vast instance as the executor's pod view, with what it bills (USD per hour, per instance)."""

    storage_per_hr: float | None = None
    running_seconds: float | None = None
    bid_price: float | None = None
    state: str | None = None
    market: str = "vast"
    min_bid: float | None = None  # the machine's minimum bid now, per instance (its pauses: `JobProgress`)
    #: `dph_total` as stated, when the storage was read apart from it (storage_cost x disk): compute plus
    #: storage must add up to it, a check on `cost_per_hr` (`Executor.implausible`). None: nothing to check.
    total_per_hr: float | None = None


@dataclass(frozen=True)
class VastCreate:
    """A create on Vast: which offers fit (GPU name, count, tier) and the instance to make."""

    instance: InstanceSpec
    gpu_name: str
    num_gpus: int
    tier: str
    max_price_per_gpu: float | None = None
    max_cost_per_hr: float | None = None  # the instance in all, compute and storage (None: no limit)
    pauses: Pauses = NO_PAUSES  # what a spot create counts a pause at (`bidder.vast.pick`; the executor sets it)

    @property
    def name(self) -> str:
        return self.instance.label


@dataclass(frozen=True)
class VastDryRun:
    """A Vast request as a dry run shows it: method, URL and body, the key masked."""

    request: VastRequest
    base_url: str
    then: VastRequest | None = None  # a second request sent after the first (a stopped instance's start)

    @property
    def operation(self) -> str:
        return self.request.operation + (f", then {self.then.operation}" if self.then is not None else "")

    def payload(self) -> dict[str, Any]:
        return self.request.to_dict(self.base_url)

    def to_json(self, indent: int | None = 2) -> str:
        text = self.request.to_text(self.base_url, indent=indent)
        return text if self.then is None else f"{text} then {self.then.to_text(self.base_url, indent=indent)}"


#: Vast's `actual_status` values (VAST_API facts: null while provisioning, then these). Any other
#: proves nothing of the instance: such a poll is set aside, not read as an exit.
KNOWN_STATUSES = frozenset({"loading", "created", "scheduling", "running", "stopped", "exited", "inactive",
                            "offline"})


def to_pod(inst: Instance) -> VastPod:
    """The executor's view of an instance (see the module docstring)."""
    state = inst.state
    if state in (InstanceState.RUNNING, InstanceState.LOADING):
        status, change = "RUNNING", None
    elif state == InstanceState.PAUSED_OUTBID:
        status, change = "EXITED", f"Exited by Vast: outbid or displaced ({inst.status_msg or 'paused'})"
    elif state == InstanceState.STOPPED:
        status, change = "EXITED", f"Exited by user: stopped ({inst.status_msg or 'stopped'})"
    else:
        status, change = "EXITED", f"Exited by Vast: {inst.status_msg or inst.actual_status or 'unknown status'}"
    storage, total = None, None
    if inst.storage_cost is not None and inst.disk_gb is not None:
        storage, total = storage_per_hour(inst.storage_cost, inst.disk_gb), inst.dph_total
    elif inst.dph_total is not None and inst.dph_base is not None:
        storage = max(inst.dph_total - inst.dph_base, 0.0)
    compute = inst.dph_base if inst.dph_base is not None else inst.bid_price
    # A negative, non-finite or huge figure cannot be true: the poll is set aside (`invalid`), never booked.
    bad = [f"{name} {value!r}" for name, value in (("dph_base", compute), ("storage", storage),
                                                    ("uptime_mins", inst.uptime_mins))
           if value is not None and not (math.isfinite(value) and value >= 0)]
    if inst.uptime_mins is not None and math.isfinite(inst.uptime_mins) and inst.uptime_mins * 60.0 > MAX_UPTIME_S:
        bad.append(f"uptime_mins {inst.uptime_mins!r} (over ten years)")
    if compute is None:  # booked as free (storage only) and shown at $0.000/h
        bad.append("dph_base None (no compute rate)")
    actual = (inst.actual_status or "").lower()
    if actual and actual not in KNOWN_STATUSES:  # taken for an exit, it was booked as an interruption
        bad.append(f"actual_status {inst.actual_status!r} (not a status Vast documents)")
    return VastPod(id=str(inst.id), name=inst.label, desired_status=status,
                   pod_type="INTERRUPTABLE" if inst.is_bid else "RESERVED", cost_per_hr=compute,
                   gpu_count=inst.num_gpus, last_status_change=change, machine_id=None if inst.machine_id is None
                   else str(inst.machine_id), gpu_display_name=inst.gpu_name, uptime_seconds=None,
                   storage_per_hr=storage if storage is not None else 0.0,
                   running_seconds=None if inst.uptime_mins is None else inst.uptime_mins * 60.0,
                   bid_price=inst.bid_price, state=str(state), min_bid=inst.min_bid, total_per_hr=total,
                   invalid="impossible " + ", ".join(bad) if bad else None)


class VastPodApi:
    """Vast's client as the executor's `PodApi` (see the module docstring)."""

    market = "vast"

    def __init__(self, client: VastClient, filters: OfferFilters | None = None) -> None:
        self.client = client
        self.filters = filters if filters is not None else OfferFilters()

    @property
    def url(self) -> str:
        return self.client.url

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> VastPodApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- creating ------------------------------------------------------------------------------
    def spec(self, template: PodTemplate, name: str, gpu_type_id: str, gpu_count: int, cloud: str, *,
             max_price_per_gpu: float | None = None, max_cost_per_hr: float | None = None) -> VastCreate:
        instance = InstanceSpec(label=name, image=template.image or "", disk_gb=float(template.disk + template.volume),
                                env=template.env, onstart=template.docker_args)
        return VastCreate(instance, gpu_type_id, gpu_count, cloud.upper(), max_price_per_gpu, max_cost_per_hr)

    def offers(self, spec: VastCreate) -> list[Offer]:
        """The offers this create may take (one search), cheapest spot floor first."""
        found = self.client.search_offers([spec.gpu_name], [spec.num_gpus], disk_gb=spec.instance.disk_gb,
                                          verified=True if spec.tier == "VERIFIED" else None,
                                          min_reliability=self.filters.min_reliability)
        return of_market(found, spec.gpu_name, spec.num_gpus, spec.tier, self.filters)

    def _spot_offer(self, spec: VastCreate, bid_per_gpu: float) -> Offer:
        fits = [o for o in self.offers(spec) if takes_bid(o, bid_per_gpu)]
        what = f"{spec.num_gpus} x {spec.gpu_name} ({spec.tier.lower()})"
        if not fits:
            raise NoCapacity(f"no Vast offer of {what} takes a bid of ${bid_per_gpu:.3f}/GPU-h now",
                             operation="create_interruptible")
        compute = per_instance(bid_per_gpu, spec.num_gpus)
        affordable = [o for o in fits if _within(compute + o.storage_per_hr(spec.instance.disk_gb), spec)]
        if not affordable:
            storage = min(o.storage_per_hr(spec.instance.disk_gb) for o in fits)
            raise AboveCostLimit(f"no Vast offer of {what} at a bid of ${bid_per_gpu:.3f}/GPU-h fits the "
                                 f"{usd(spec.max_cost_per_hr)}/h the job's budget or max_spend_per_hour leaves: the "
                                 f"bid costs {usd(compute)}/h and the {spec.instance.disk_gb:g} GB disk at least "
                                 f"{usd(storage)}/h of storage", operation="create_interruptible")
        # The plan priced the disk at this offer's storage (`bidder.vast.pick`, one rule for both): of the
        # offers within the cost limit, the cheapest per useful hour, pauses counted.
        offer = spot_pick(affordable, bid_per_gpu, spec.instance.disk_gb, spec.pauses)
        assert offer is not None  # (every affordable offer takes the bid)
        return offer

    def _on_demand_offer(self, spec: VastCreate) -> Offer:
        # max_price is per GPU-hour of compute, as the optimizer reads it: the search's price holds the
        # job's disk too (a 2000 GB disk put every offer "over the max price", and the job waited for ever).
        disk = spec.instance.disk_gb
        fits = [o for o in self.offers(spec) if o.on_demand_per_gpu is not None and (
            spec.max_price_per_gpu is None
            or per_gpu(max((o.dph_total or 0.0) - o.storage_per_hr(disk), 0.0), o.num_gpus)
            <= spec.max_price_per_gpu + _SLACK)]
        what = f"{spec.num_gpus} x {spec.gpu_name} ({spec.tier.lower()})"
        if not fits:
            cap = "" if spec.max_price_per_gpu is None else f" at or below ${spec.max_price_per_gpu:.3f}/GPU-h"
            raise NoCapacity(f"no Vast on-demand offer of {what}{cap} now", operation="create_on_demand")
        # `dph_total` is the instance's on-demand price with the storage of the searched disk.
        affordable = [o for o in fits if o.dph_total is not None and _within(o.dph_total, spec)]
        if not affordable:
            cheapest = min(o.dph_total or 0.0 for o in fits)
            raise AboveCostLimit(f"no Vast on-demand offer of {what} fits the {usd(spec.max_cost_per_hr)}/h the "
                                 f"job's budget or max_spend_per_hour leaves: the cheapest costs {usd(cheapest)}/h "
                                 "with its storage", operation="create_on_demand")
        return min(affordable, key=lambda o: (o.dph_total or 0.0, -o.reliability, o.id))  # (with its storage)

    def rent_interruptable(self, spec: VastCreate, bid_per_gpu: float) -> VastPod:
        offer = self._spot_offer(spec, bid_per_gpu)
        return to_pod(self.client.create_interruptible(offer.id, spec.instance, bid_per_gpu, num_gpus=offer.num_gpus))

    def deploy_on_demand(self, spec: VastCreate) -> VastPod:
        offer = self._on_demand_offer(spec)
        return to_pod(self.client.create_on_demand(offer.id, spec.instance))

    def build_rent_interruptable(self, spec: VastCreate, bid_per_gpu: float) -> VastDryRun:
        offer = self._spot_offer(spec, bid_per_gpu)
        return self._dry(self.client.build_create_interruptible(offer.id, spec.instance, bid_per_gpu,
                                                                 num_gpus=offer.num_gpus))

    def build_deploy_on_demand(self, spec: VastCreate) -> VastDryRun:
        return self._dry(self.client.build_create_on_demand(self._on_demand_offer(spec).id, spec.instance))

    # -- reading ---------------------------------------------------------------------------------
    def pods(self) -> list[VastPod]:
        return [to_pod(i) for i in self.client.iter_instances()]

    def pod(self, pod_id: str) -> VastPod:
        return to_pod(self.client.instance(_id(pod_id)))

    # -- bids, resume, stop ----------------------------------------------------------------------
    def bid_resume(self, pod_id: str, bid_per_gpu: float, gpu_count: int) -> VastPod:
        wanted = _id(pod_id)
        inst = self.client.instance(wanted)
        # The bid is priced on the GPU count the executor checked against the cap, never on a count
        # read from the answer; an answer about another instance, or another count, sends nothing.
        if inst.id != wanted or (inst.num_gpus is not None and inst.num_gpus != gpu_count):
            raise MalformedAnswer(f"instance {wanted}: Vast answered for instance {inst.id} with {inst.num_gpus} "
                                  f"GPU(s), expected {gpu_count}: no bid sent", operation="instance")
        current = per_gpu(inst.bid_price, gpu_count)
        if current is None or abs(current - bid_per_gpu) > _SLACK:
            self.client.change_bid(wanted, bid_per_gpu, gpu_count)
        if inst.state == InstanceState.STOPPED:
            self.client.start(wanted)
        return to_pod(self.client.instance(wanted))

    def resume(self, pod_id: str, gpu_count: int) -> VastPod:
        self.client.start(_id(pod_id))
        return self.pod(pod_id)

    def stop(self, pod_id: str) -> None:
        self.client.stop(_id(pod_id))

    def terminate(self, pod_id: str) -> None:
        self.client.destroy(_id(pod_id))

    def build_bid_resume(self, pod_id: str, bid_per_gpu: float, gpu_count: int) -> VastDryRun:
        """What `bid_resume` would send: the bid change, and the start of an instance its owner stopped
        (read from Vast, as `bid_resume` reads it; only the start when the bid stands as it is)."""
        wanted = _id(pod_id)
        inst = self.client.instance(wanted)
        change = self.client.build_change_bid(wanted, bid_per_gpu, gpu_count)
        current = per_gpu(inst.bid_price, gpu_count)
        if inst.state != InstanceState.STOPPED:
            return self._dry(change)
        start = self.client.build_start(wanted)
        if current is not None and abs(current - bid_per_gpu) <= _SLACK:
            return self._dry(start)
        return VastDryRun(change, self.client.url, then=start)

    def build_resume(self, pod_id: str, gpu_count: int) -> VastDryRun:
        return self._dry(self.client.build_start(_id(pod_id)))

    def build_stop(self, pod_id: str) -> VastDryRun:
        return self._dry(self.client.build_stop(_id(pod_id)))

    def build_terminate(self, pod_id: str) -> VastDryRun:
        return self._dry(self.client.build_destroy(_id(pod_id)))

    def _dry(self, request: VastRequest) -> VastDryRun:
        return VastDryRun(request, self.client.url)


def _within(cost_per_hr: float, spec: VastCreate) -> bool:
    """Whether an instance costing `cost_per_hr` in all fits the spec's `max_cost_per_hr`."""
    return spec.max_cost_per_hr is None or cost_per_hr <= spec.max_cost_per_hr + _SLACK


def _id(pod_id: str) -> int:
    try:
        return int(pod_id)
    except (TypeError, ValueError):
        raise PodNotFound(f"{pod_id!r} is not a Vast instance id (a whole number)", pod_id=str(pod_id)) from None
