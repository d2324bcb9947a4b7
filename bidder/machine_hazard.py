"""How often a Vast instance is paused on its own machine, from the offers the collector stored.

Vast pauses an interruptible instance when someone outbids it on its machine or rents the machine
on-demand. The market's floor (the cheapest `min_bid` of many offers) shows neither: it stays calm
while one machine after another is taken, so a plan read from the floor alone expected a fraction
of the pauses that came (a job at tolerance low, told "0.00 interruptions expected", was paused
within the hour and spent its allowance on its first pause). Each stored snapshot lists every offer
with its machine and `min_bid`, so the machines themselves show it: between two snapshots (at most
MAX_PAIR_GAP_HOURS apart) a machine listed at or under a bid is either still listed at or under it,
or it is gone (rented on-demand, or offline) or listed above it (a higher bid), which would have
paused an instance there bidding that much.

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
#: Two snapshots further apart than this say nothing about what happened between them (an hourly cron's
#: snapshots, a second either side of the hour, still pair).
MAX_PAIR_GAP_HOURS = 1.5


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
    `ts` (epoch seconds of the snapshot), `machine` (machine id) and `min_bid` (per GPU; NaN: listed
    without a bid price, which says nothing either way), one entry per offer and snapshot. A premium
    with under MIN_EXPOSURE_HOURS of exposure takes the rate of the nearest one measured (a machine whose
    `min_bid` wobbles is seldom listed at its very lowest); None when no premium is measured."""
    ts = np.asarray(ts, dtype=float)
    machine = np.asarray(machine, dtype=np.int64)
    min_bid = np.asarray(min_bid, dtype=float)
    ok = np.isfinite(ts) & (ts <= now)
    ts, machine, min_bid = ts[ok], machine[ok], min_bid[ok]
    min_bid = np.where(min_bid > 0, min_bid, np.nan)
    snaps = np.unique(ts)
    if len(snaps) < 2:
        return None
    # Pairs of consecutive snapshots close enough to vouch for the time between them.
    gaps = np.diff(snaps)
    usable = gaps <= MAX_PAIR_GAP_HOURS * 3600.0
    if not usable.any():
        return None
    # Each machine's floor: its lowest min_bid in the window.
    ids, inverse = np.unique(machine, return_inverse=True)
    floor = np.full(len(ids), np.inf)
    np.fmin.at(floor, inverse, min_bid)
    # A (snapshot, machine) table of min_bid: NaN not listed, -1 listed without a price.
    s = np.searchsorted(snaps, ts)
    table = np.full((len(snaps), len(ids)), np.nan)
    table[s, inverse] = np.where(np.isnan(min_bid), -1.0, min_bid)
    a, b = table[:-1][usable], table[1:][usable]
    known = (a > 0) & ~(b == -1.0)  # a price at the start, and at the end either a price or gone
    hours = gaps[usable] / 3600.0
    weight = np.ones_like(hours) if half_life_hours is None else 0.5 ** ((now - snaps[:-1][usable]) / 3600.0
                                                                        / half_life_hours)
    premiums = np.asarray(premiums, dtype=float)
    exposure, events = np.zeros(len(premiums)), np.zeros(len(premiums))
    for i, premium in enumerate(premiums):  # one (pair, machine) matrix at a time: memory stays flat
        bid = floor * (1.0 + premium)
        listed_under = known & (a <= bid)
        paused = listed_under & ~(b <= bid)  # gone (NaN compares False), or listed above the bid
        exposure[i] = float((listed_under * (hours * weight)[:, None]).sum())
        events[i] = float((paused * weight[:, None]).sum())
    measured = exposure >= MIN_EXPOSURE_HOURS
    if not measured.any():
        return None
    rates = np.where(measured, poisson_rate_upper(events, np.where(measured, exposure, 1.0), confidence), np.nan)
    first = int(np.flatnonzero(measured)[0])
    rates[:first] = rates[first]
    for i in range(first + 1, len(rates)):  # a premium too little measured: the one under it
        if np.isnan(rates[i]):
            rates[i] = rates[i - 1]
    rates = np.minimum.accumulate(rates)  # a higher bid never pauses more
    return MachineHazard(premiums=premiums, rates=rates, exposure_hours=float(exposure[measured].max()),
                         machines=len(ids))
