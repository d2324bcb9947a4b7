"""Varied test markets for the backtest: regime-switching synthetic markets and emulator seeds.

    python3 analysis/make_markets.py --out /tmp/markets                 # the default set (below)
    python3 analysis/make_markets.py --out /tmp/markets --seeds 21 22 --days 56 --types 2
    python3 analysis/make_markets.py --out /tmp/markets --emulator-seeds 2 3 4

An optimizer tuned on one trace can learn its quirks. These markets are for judging it on
markets it was not tuned on. They are generated at run time (a few MB each; not committed) in the
trace format of `data/traces/README.md` (CSV: ts, gpu_type, minimum_bid_price,
uninterruptable_price, cloud, gpu_count, stock_status), so `bidder backtest --trace FILE` and
`analysis/run_backtests.py --markets synthetic,emulator` replay them.

Synthetic market (`synth-seed<S>-<D>d.csv`): `--types` GPU types SYN-A, SYN-B, ... in one cloud
(COMMUNITY), interchangeable (on-demand within 15% of each other, like zones of one instance type),
5-minute samples. Each type's spot floor is

    on-demand x level(regime) x daily cycle x weekly cycle x supply trend x exp(AR(1) noise)

- regime: a Markov chain over calm / normal / tight / surge (levels about 0.25 / 0.4 / 0.65 / 1.2 of
  on-demand, mean stays 2 days / 1 day / 8 hours / 2 hours; a surge is above on-demand), one
  chain per type, plus market-wide surges that hit every type at once;
- demand cycles: a daily one (busiest in the US afternoon, amplitude drawn per seed) and a weekly
  one (weekends cheaper);
- supply trend: capacity arriving or leaving over the span (floor x 0.75..1.3 from start to end);
- noise: log-space AR(1) (a few hours' memory), part shared by all types;
- the order book: a fast jitter from sample to sample (log-sd 0.1-0.3 per seed, 5-15 minutes'
  memory) and 2-8 short spikes a day (5-20 minutes at 1.5-4x the floor, some above on-demand);
- outages: periods of 30 minutes to 8 hours with no spot capacity (empty floor), per type and
  occasionally market-wide.

Emulator markets (`sim-seed<S>-<D>d.csv`): `bidder.sim.generate_quotes(seed, days)` for the six
GPU types of the shipped trace, both clouds: the model behind `data/traces/sim-seed1-14d.csv`
with other seeds (the shipped one is seed 1).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bidder.models import PriceQuote
from bidder.traces import write_trace

__all__ = ["DEFAULT_EMULATOR_SEEDS", "DEFAULT_SEEDS", "EMULATOR_TYPES", "emulator_quotes", "main", "synthetic_floors",
           "synthetic_quotes", "write_markets"]

START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
STEP_S = 300
DEFAULT_SEEDS = (11, 12, 13)
DEFAULT_EMULATOR_SEEDS = (2, 3)
EMULATOR_TYPES = ("NVIDIA RTX A6000", "NVIDIA GeForce RTX 4090", "NVIDIA GeForce RTX 3090", "NVIDIA A100 80GB PCIe",
                  "NVIDIA H100 80GB HBM3", "NVIDIA L40S")

# Regime: (level as a share of on-demand, log-sd of its noise, mean stay in hours)
_REGIMES = {"calm": (0.25, 0.05, 48.0), "normal": (0.40, 0.08, 24.0), "tight": (0.65, 0.12, 8.0),
            "surge": (1.2, 0.2, 2.0)}
# Where a regime goes when it ends (rows: from; columns: calm, normal, tight, surge).
_NEXT = np.array([[0.0, 0.8, 0.15, 0.05],
                  [0.45, 0.0, 0.45, 0.10],
                  [0.15, 0.55, 0.0, 0.30],
                  [0.10, 0.40, 0.50, 0.0]])


def _regime_path(rng: np.random.Generator, n: int) -> np.ndarray:
    """Regime index per step: a semi-Markov chain with exponential stays."""
    names = list(_REGIMES)
    out = np.empty(n, dtype=np.int64)
    state, i = int(rng.choice(4, p=[0.3, 0.45, 0.2, 0.05])), 0
    while i < n:
        stay = max(1, int(rng.exponential(_REGIMES[names[state]][2] * 3600 / STEP_S)))
        out[i:i + stay] = state
        i += stay
        state = int(rng.choice(4, p=_NEXT[state]))
    return out


def _ar1(rng: np.random.Generator, n: int, memory_steps: float) -> np.ndarray:
    """Unit-variance log-space AR(1) with the given memory (e-folding time in steps)."""
    phi = float(np.exp(-1.0 / memory_steps))
    shocks = rng.standard_normal(n) * np.sqrt(1 - phi * phi)
    out = np.empty(n)
    x = rng.standard_normal()
    for i in range(n):  # a plain loop: 8,064 steps per 28 days, well under a second
        x = phi * x + shocks[i]
        out[i] = x
    return out


def _outages(rng: np.random.Generator, n: int, per_day: float) -> np.ndarray:
    """True where spot has no capacity: Poisson starts, lasting 30 minutes to 8 hours (log-uniform)."""
    down = np.zeros(n, dtype=bool)
    starts = np.nonzero(rng.random(n) < per_day * STEP_S / 86400)[0]
    for s in starts:
        hours = float(np.exp(rng.uniform(np.log(0.5), np.log(8.0))))
        down[s:s + int(hours * 3600 / STEP_S)] = True
    return down


def synthetic_floors(seed: int, days: float, types: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(epoch seconds (N,), floors (types, N) with NaN = no capacity, on-demand (types,))."""
    rng = np.random.default_rng(seed)
    n = int(days * 86400 / STEP_S)
    t = START.timestamp() + STEP_S * np.arange(n)
    hours = (t - START.timestamp()) / 3600
    on_demand = np.round(0.65 * rng.uniform(0.9, 1.1, types), 2)
    daily_amp = rng.uniform(0.05, 0.25)
    jitter_sd = rng.uniform(0.1, 0.3)
    spikes_per_day = rng.uniform(2.0, 8.0)
    weekend_cut = rng.uniform(0.05, 0.25)
    hour_of_day = (hours % 24)
    daily = 1 + daily_amp * np.cos(2 * np.pi * (hour_of_day - 20) / 24)  # busiest 20:00 UTC (US afternoon)
    day_of_week = (hours // 24) % 7                                         # 0 = Monday
    weekly = np.where(day_of_week >= 5, 1 - weekend_cut, 1.0)
    weekly = np.convolve(weekly, np.ones(36) / 36, mode="same")              # 3-hour ramps in and out
    trend = np.exp(np.linspace(0, np.log(rng.uniform(0.75, 1.3)), n))
    shared_noise = _ar1(rng, n, memory_steps=rng.uniform(12, 48))
    wide_surge = _outages(rng, n, per_day=rng.uniform(0.05, 0.2))            # market-wide demand surges
    wide_down = _outages(rng, n, per_day=rng.uniform(0.02, 0.08))            # market-wide outages
    levels = np.array([v[0] for v in _REGIMES.values()])
    sds = np.array([v[1] for v in _REGIMES.values()])
    floors = np.empty((types, n))
    for k in range(types):
        regime = _regime_path(rng, n)
        regime = np.where(wide_surge, 3, regime)
        noise = 0.6 * _ar1(rng, n, memory_steps=rng.uniform(6, 36)) + 0.4 * shared_noise
        # The order book: bids come and go, so the floor jitters from one sample to the next, and
        # short spikes (5-20 minutes) jump it to 1.5-4x, some above on-demand.
        jitter = jitter_sd * _ar1(rng, n, memory_steps=rng.uniform(1.0, 3.0))
        spikes = np.zeros(n)
        for s in np.nonzero(rng.random(n) < spikes_per_day * STEP_S / 86400)[0]:
            spikes[s:s + int(rng.integers(1, 5))] = np.log(rng.uniform(1.5, 4.0))
        level = levels[regime] * rng.uniform(0.9, 1.1)
        # Smooth regime changes over ~30 minutes (prices move fast, not instantly).
        level = np.convolve(np.pad(level, (3, 3), mode="edge"), np.ones(7) / 7, mode="valid")
        floor = on_demand[k] * level * daily * weekly * trend * np.exp(sds[regime] * noise + jitter + spikes)
        floor = np.maximum(np.round(floor, 4), round(0.05 * on_demand[k], 4))
        floor[_outages(rng, n, per_day=rng.uniform(0.1, 0.4)) | wide_down] = np.nan
        floors[k] = floor
    return t, floors, on_demand


def synthetic_quotes(seed: int, days: float, types: int = 4) -> list[PriceQuote]:
    t, floors, on_demand = synthetic_floors(seed, days, types)
    names = [f"SYN-{chr(ord('A') + k)}" for k in range(types)]
    out = []
    for i, ts in enumerate(t.tolist()):
        when = datetime.fromtimestamp(ts, UTC)
        for k, name in enumerate(names):
            f = floors[k, i]
            out.append(PriceQuote(ts=when, gpu_type_id=name, cloud="COMMUNITY", gpu_count=1,
                                  minimum_bid_price=None if np.isnan(f) else float(f),
                                  uninterruptable_price=float(on_demand[k])))
    return out


def emulator_quotes(seed: int, days: float) -> list[PriceQuote]:
    from bidder.sim import generate_quotes

    quotes = generate_quotes(seed, days, STEP_S, list(EMULATOR_TYPES), start=datetime(2026, 1, 1, tzinfo=UTC))
    quotes.sort(key=lambda q: (q.ts, q.gpu_type_id, q.cloud, q.gpu_count))
    return quotes


def write_markets(out: Path, seeds: Sequence[int] = DEFAULT_SEEDS, days: float = 28.0, types: int = 4,
                  emulator_seeds: Sequence[int] = DEFAULT_EMULATOR_SEEDS, emulator_days: float = 14.0,
                  log: object = None) -> dict[str, list[Path]]:
    """Write the markets into `out`; returns {"synthetic": [...], "emulator": [...]} paths."""
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[Path]] = {"synthetic": [], "emulator": []}
    for seed in seeds:
        path = out / f"synth-seed{seed}-{days:g}d.csv"
        rows = write_trace(synthetic_quotes(seed, days, types), path)
        written["synthetic"].append(path)
        if log is not None:
            print(f"wrote {path}: {rows:,} rows", file=log)  # type: ignore[call-overload]
    for seed in emulator_seeds:
        path = out / f"sim-seed{seed}-{emulator_days:g}d.csv"
        rows = write_trace(emulator_quotes(seed, emulator_days), path)
        written["emulator"].append(path)
        if log is not None:
            print(f"wrote {path}: {rows:,} rows", file=log)  # type: ignore[call-overload]
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder to write the traces into")
    parser.add_argument("--seeds", type=int, nargs="*", default=list(DEFAULT_SEEDS), help="synthetic market seeds")
    parser.add_argument("--days", type=float, default=28.0, help="span of each synthetic market (default 28)")
    parser.add_argument("--types", type=int, default=4, help="GPU types per synthetic market (default 4)")
    parser.add_argument("--emulator-seeds", type=int, nargs="*", default=list(DEFAULT_EMULATOR_SEEDS),
                        help="emulator model seeds (default 2 3; the shipped trace is seed 1)")
    parser.add_argument("--emulator-days", type=float, default=14.0)
    args = parser.parse_args(argv)
    if args.days <= 0 or args.emulator_days <= 0 or not 1 <= args.types <= 26:
        print("--days and --emulator-days must be positive and --types between 1 and 26", file=sys.stderr)
        return 2
    write_markets(args.out, args.seeds, args.days, args.types, args.emulator_seeds, args.emulator_days, log=sys.stdout)
    return 0


if __name__ == "__main__":
    from study_inputs import run_script

    sys.exit(run_script("make_markets", main))

