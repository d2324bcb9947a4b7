"""Which Vast offer a spot create rents: the one rule the launch (`bidder.vast_pods`) rents by and the
plan (`bidder.advisor`) prices a bid's disk by, so a plan's storage is the rented instance's.

    offers = of_market(found, "RTX 4090", 1, "VERIFIED", OfferFilters())
    pauses = Pauses(hazard, restart_h=1 / 6)            # `bidder.advisor.spot_pauses`: the market's fit
    offer = spot_pick(offers, 0.135, 3000, pauses)                     # the launch
    steps = spot_storage_steps(offers, 3000, pauses)   # the plan: ((bid from, USD/GB-month), ...)

Pure: no I/O. Pay-as-bid: every offer a bid wins bills the bid plus its disk's storage, but the
offers differ in how often their machine pauses the instance: Vast pauses it when the machine is
outbid or rented on-demand, and the lower a machine's own floor (`min_bid` per GPU) under the bid,
the rarer that is (`bidder.machine_hazard`: pauses per running hour by the bid's premium over the
machine's own floor). Each pause loses the job's restart overhead of work, so of the offers whose
floor is at or under the bid the launch rents the one cheapest per useful hour:

    (bid + storage) / max(1 - rate(bid / own floor - 1) x restart_h, MIN_USEFUL)

(ties: the lowest floor, the most reliable, the lowest id). Renting by storage alone took, for
$0.001/h less storage, a machine whose floor was 0.4% under the bid (0.84 pauses/h) beside one 50%
under it (0.36/h): 18 pauses in 15 h, the job's tolerance spent, 11.7 h on-demand. Storage still wins
where it dominates: a 3,000 GB disk billed $0.298/h on the lowest floor beside $0.178/h on another.
Without a fitted hazard (no offers stored yet) the lowest floor, the bid's largest margin, is rented
unless another offer bills over NO_FIT_MARGIN less per hour.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from bidder.vast.offers import Offer
from bidder.vast.summary import OfferFilters, passes, tier_of

__all__ = ["MIN_USEFUL", "NO_FIT_MARGIN", "PauseRates", "Pauses", "of_market", "spot_pick", "spot_storage_steps", "takes_bid"]

_SLACK = 1e-9
#: The least share of a running hour counted useful: an offer pausing more than this allows is priced as
#: if it did this much work (still dearer per useful hour than one that does more, but finite).
MIN_USEFUL = 0.1
#: Without a fitted hazard, what another offer must save per hour (a share of its cost) over the lowest
#: floor's for the launch to give up the margin the lowest floor leaves the bid.
NO_FIT_MARGIN = 0.05


class PauseRates(Protocol):
    """Pauses per running hour by the bid's premium over a machine's own floor, measured at `premiums`
    (`bidder.machine_hazard.MachineHazard`, fitted by the market layer; a client takes it as given)."""

    premiums: np.ndarray

    def rate_at(self, premium: np.ndarray | float) -> np.ndarray: ...


@dataclass(frozen=True)
class Pauses:
    """What the pick counts a pause at: the market's pause rate by the bid's premium over a machine's own
    floor (`bidder.machine_hazard`; None: not fitted) and the work each pause loses, hours."""

    hazard: PauseRates | None = None
    restart_h: float = 0.0


NO_PAUSES = Pauses()


def of_market(offers: Iterable[Offer], gpu_name: str, num_gpus: int, tier: str, filters: OfferFilters) -> list[Offer]:
    """The offers a create on this GPU name, count and tier may take: those passing `filters` (a job that
    asked for the unverified tier takes unverified offers even when collection skips them)."""
    wanted = OfferFilters(verified_only=filters.verified_only and tier != "UNVERIFIED",
                          min_reliability=filters.min_reliability)
    return [o for o in offers if o.gpu_name == gpu_name and o.num_gpus == num_gpus and passes(o, wanted)
            and (tier in ("ALL", "ANY") or tier_of(o) == tier)]


def takes_bid(offer: Offer, bid_per_gpu: float) -> bool:
    """Whether a bid of `bid_per_gpu` wins the offer now (its floor at or under the bid)."""
    floor = offer.spot_floor_per_gpu
    return floor is not None and floor <= bid_per_gpu + _SLACK


class _Table:
    """The offers with a finite floor, in tie-break order (floor, reliability, id), as arrays."""

    def __init__(self, offers: Sequence[Offer], disk_gb: float, pauses: Pauses) -> None:
        self.offers = sorted((o for o in offers if o.spot_floor_per_gpu is not None
                              and math.isfinite(o.spot_floor_per_gpu)),
                             key=lambda o: (o.spot_floor_per_gpu, -_reliability(o), o.id))
        self.floor = np.array([o.spot_floor_per_gpu for o in self.offers], dtype=float)
        self.storage = np.array([o.storage_per_hr(disk_gb) for o in self.offers], dtype=float)
        self.gpus = np.array([o.num_gpus for o in self.offers], dtype=float)
        self.pauses = pauses

    def lines(self, bids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per bid (rows) and offer (columns): the useful share of a running hour and the cost per hour
        (inf where the bid does not win the offer)."""
        bids = np.asarray(bids, dtype=float)[:, None]
        won = self.floor[None, :] <= bids + _SLACK
        cost = np.where(won, bids * self.gpus + self.storage, np.inf)
        hazard, restart = self.pauses.hazard, max(float(self.pauses.restart_h), 0.0)
        if hazard is None:
            # The lowest floor a bid wins (the market's) keeps its margin unless another saves NO_FIT_MARGIN.
            lowest = self.floor[None, :] <= (self.floor[0] if len(self.floor) else 0.0) + _SLACK
            useful = np.where(lowest, 1.0, 1.0 / (1.0 + NO_FIT_MARGIN)) * np.ones_like(cost)
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                premium = np.where(self.floor[None, :] > 0, bids / self.floor[None, :] - 1.0, np.inf)
            rate = hazard.rate_at(np.where(np.isfinite(premium), premium, hazard.premiums[-1]))
            useful = np.maximum(1.0 - rate * restart, MIN_USEFUL)
        return useful, cost

    def best(self, bids: np.ndarray) -> np.ndarray:
        """The index of the offer each bid rents (-1: none won): the least cost per useful hour, the
        first in tie-break order among equals."""
        useful, cost = self.lines(bids)
        per_useful = cost / useful
        pick = np.argmin(per_useful, axis=1)
        return np.where(np.isfinite(per_useful[np.arange(len(pick)), pick]), pick, -1)


def _reliability(o: Offer) -> float:
    return float(o.reliability) if math.isfinite(o.reliability) else 0.0


def spot_pick(offers: Sequence[Offer], bid_per_gpu: float, disk_gb: float, pauses: Pauses = NO_PAUSES
              ) -> Offer | None:
    """The offer a bid of `bid_per_gpu` rents for a disk of `disk_gb` (see the module docstring); None
    when it wins none."""
    table = _Table(offers, disk_gb, pauses)
    if not table.offers:
        return None
    i = int(table.best(np.array([bid_per_gpu]))[0])
    return None if i < 0 else table.offers[i]


def spot_storage_steps(offers: Sequence[Offer], disk_gb: float, pauses: Pauses = NO_PAUSES
                       ) -> tuple[tuple[float, float], ...]:
    """The storage price (USD per GB-month) of the offer a bid rents (`spot_pick`), as a step function
    of the bid: ((bid from, price), ...), bids rising. Empty: no offer takes a bid.

    Exact: between two bids where an offer is first won or a machine's premium reaches the next one
    the hazard is measured at, every offer's cost per useful hour is a line in the bid, and the rented
    one changes only where a flatter line (fewer pauses) crosses under it."""
    table = _Table(offers, disk_gb, pauses)
    if not table.offers:
        return ()
    edges = set(table.floor.tolist())
    if pauses.hazard is not None:
        edges.update((table.floor[:, None] * (1.0 + pauses.hazard.premiums[None, :])).ravel().tolist())
    bids = np.array(sorted(edges))
    for _ in range(len(table.offers)):  # each pass adds the next crossing of every interval
        pick = table.best(bids)
        useful, cost = table.lines(bids)
        j = np.maximum(pick, 0)[:, None]
        u_j = np.take_along_axis(useful, j, axis=1)
        slope, slope_j = table.gpus[None, :] / useful, table.gpus[j] / u_j
        with np.errstate(divide="ignore", invalid="ignore"):
            # (g_i b + s_i) / u_i = (g_j b + s_j) / u_j, for an offer i whose line is flatter than the best j's
            cross = (table.storage[j] / u_j - table.storage[None, :] / useful) / (slope - slope_j)
        upper = np.append(bids[1:], np.inf)[:, None]
        ok = (pick[:, None] >= 0) & np.isfinite(cost) & (slope < slope_j - 1e-12) & (cross > bids[:, None] + _SLACK) \
            & (cross < upper)
        nxt = np.where(ok, cross, np.inf).min(axis=1)
        new = nxt[np.isfinite(nxt)] * (1.0 + 1e-9)  # (just past the crossing: the flatter line is under)
        if not len(new):
            break
        bids = np.unique(np.concatenate([bids, new]))
    pick = table.best(bids)
    steps: list[tuple[float, float]] = []
    for bid, i in zip(bids.tolist(), pick.tolist(), strict=True):
        if i < 0:
            continue
        price = float(table.offers[i].storage_cost)
        if not steps or steps[-1][1] != price:
            steps.append((bid, price))
    return tuple(steps)
