"""How often a Vast instance is paused on its own machine, from the offers the collector stored.

Vast pauses an interruptible instance when someone outbids it on its machine or rents the machine
on-demand. The market's floor (the cheapest `min_bid` of many offers) shows neither: it stays calm
while one machine after another is taken, so a plan read from the floor alone expected a fraction
of the pauses that came (a job at tolerance low, told "0.00 interruptions expected", was paused
within the hour and spent its allowance on its first pause). Each stored snapshot lists every offer
with its machine and `min_bid`, so the machines themselves show it: between two snapshots a machine
listed at or under a bid is either still listed at or under it, or it is gone (rented on-demand,
or offline) or listed above it (a higher bid), which would have paused an instance there bidding
that much.

`machine_hazard(ts, machine, min_bid, premiums, now)` turns those pairs into a rate per running
hour for each bid premium over the machine's own floor (its lowest `min_bid` in the window):
recency-weighted events over weighted exposure, as an upper confidence bound (`bidder.market`'s),
so a thin history errs towards pauses. Bidding above the floor buys fewer outbids; no bid stops an
on-demand renter, so the rate never falls to zero.

Our own instances' machines drop out of the listing while we hold them (one "gone" each): among
the tens of machines of a GPU type that is a small over-count, left in as caution.

Pure: numpy in, numpy out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bidder.market import DEFAULT_CONFIDENCE, poisson_rate_upper

__all__ = ["MACHINE_PREMIUMS", "MIN_EXPOSURE_HOURS", "MachineHazard", "machine_hazard"]

#: Bid premiums over a machine's floor the rate is measured at (0.5 = a bid 50% over the floor).
MACHINE_PREMIUMS = np.array([0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0])
#: Below this much weighted exposure (machine-hours listed under the bid) no rate is given.
MIN_EXPOSURE_HOURS = 24.0
#: Two snapshots further apart than this say nothing about what happened between them.
MAX_PAIR_GAP_HOURS = 1.0


@dataclass(frozen=True)
class MachineHazard:
    """Pauses per running hour of an instance bidding `1 + premiums[i]` times its machine's floor:
    `rates[i]` (an upper confidence bound, non-increasing in the premium), from `exposure_hours`
    (weighted machine-hours at the lowest premium) and `machines` seen."""

    premiums: np.ndarray
    rates: np.ndarray
    exposure_hours: float
    machines: int

    def rate_at(self, premium: np.ndarray | float) -> np.ndarray:
        """The rate at each premium (the grid's at the largest premium at or under it; under the
        grid: the lowest premium's)."""
        i = np.searchsorted(self.premiums, np.asarray(premium, dtype=float) + 1e-12, side="right") - 1
        return self.rates[np.clip(i, 0, len(self.premiums) - 1)]


def machine_hazard(ts: np.ndarray, machine: np.ndarray, min_bid: np.ndarray, now: float, *,
                   half_life_hours: float | None = 72.0, confidence: float = DEFAULT_CONFIDENCE,
                   premiums: np.ndarray = MACHINE_PREMIUMS) -> MachineHazard | None:
    """The pause rate by premium from stored offers of one market (one GPU name, count and tier):
    `ts` (epoch seconds of the snapshot), `machine` (machine id) and `min_bid` (per GPU), one entry per
    offer and snapshot. None when the history holds too little (under MIN_EXPOSURE_HOURS)."""
    ts = np.asarray(ts, dtype=float)
    machine = np.asarray(machine, dtype=np.int64)
    min_bid = np.asarray(min_bid, dtype=float)
    ok = np.isfinite(ts) & np.isfinite(min_bid) & (min_bid > 0) & (ts <= now)
    ts, machine, min_bid = ts[ok], machine[ok], min_bid[ok]
    snaps = np.unique(ts)
    if len(snaps) < 2:
        return None
    # Pairs of consecutive snapshots close enough to vouch for the time between them.
    gaps = np.diff(snaps)
    usable = gaps <= MAX_PAIR_GAP_HOURS * 3600.0
    # Each machine's floor: its lowest min_bid in the window.
    ids, inverse = np.unique(machine, return_inverse=True)
    floor = np.full(len(ids), np.inf)
    np.minimum.at(floor, inverse, min_bid)
    # A (snapshot, machine) table of min_bid (NaN: not listed).
    s = np.searchsorted(snaps, ts)
    table = np.full((len(snaps), len(ids)), np.nan)
    table[s, inverse] = min_bid
    a, b = table[:-1][usable], table[1:][usable]
    hours = (gaps[usable] / 3600.0)[:, None]
    weight = np.ones_like(hours) if half_life_hours is None else \
        0.5 ** ((now - snaps[:-1][usable]) / 3600.0 / half_life_hours)[:, None]
    bids = floor[None, :, None] * (1.0 + np.asarray(premiums, dtype=float))[None, None, :]  # (1, machine, premium)
    listed_under = (a[:, :, None] <= bids)  # NaN compares False: not listed, not exposed
    paused = listed_under & ~(b[:, :, None] <= bids)  # gone, or listed above the bid
    exposure = (listed_under * (hours * weight)[:, :, None]).sum(axis=(0, 1))
    events = (paused * weight[:, :, None]).sum(axis=(0, 1))
    if exposure[0] < MIN_EXPOSURE_HOURS:
        return None
    rates = poisson_rate_upper(events, exposure, confidence)
    rates = np.minimum.accumulate(np.where(np.isfinite(rates), rates, np.inf))  # a higher bid never pauses more
    return MachineHazard(premiums=np.asarray(premiums, dtype=float), rates=rates, exposure_hours=float(exposure[0]),
                         machines=len(ids))
