"""Would a regime in the chain's state forecast the floor better? The planner's chain against a chain
with a second state of memory, and against the naive forecast of the last day.

    python3 analysis/study_regime_chain.py                         # the AWS trace and the shipped one
    python3 analysis/study_regime_chain.py --traces T.csv --out analysis/results/regime-chain.txt

`study_chain_calibration.py` found the chain forgets a spell too soon on AWS: the share of the next 24
hours in the cheap states, forecast from each half-hour block, is closer to what came when read off the
24 hours before (the naive forecast) than off the chain. A chain remembers one block; a regime would
carry more. Here the state is (level, regime), the regime set by hysteresis on the level: "dear" once a
block reaches `--high` (a share of the levels; 1.0 = above every level, no capacity or over on-demand),
"calm" once one is at or under level `--low`, else as it was, so the pair is still a Markov chain the
plan's DP could solve (with twice the states: four times the arithmetic of a step). Its transitions are
counted per regime, with the planner's recency weights, and each row pulled towards the all-regime row
by `--pull` transitions. Fitted and scored as study_chain_calibration.py does: once a day from the third,
on the history so far (all-day chain), each block of the following day forecast by powers of the
matrix. The table: the mean absolute error of the forecast cheap share over every block, per market.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from study_inputs import add_forecast_options, emit, forecast_markets, run_script

from bidder.planner import HALF_LIFE_H, PRIOR, block_maxima, fit_floor_model

DAY = 86400.0
STEP_H = 0.5  # the planner's block


def regimes(states: np.ndarray, low: int, high: int, start: int = 0) -> np.ndarray:
    """The regime of each block (0 calm, 1 dear): dear from a block at `high` or above, calm from one at
    `low` or under, else the regime before it (`start` before the first)."""
    out, now = np.empty(len(states), dtype=int), start
    for i, state in enumerate(states):
        now = 0 if state <= low else 1 if state >= high else now
        out[i] = now
    return out


def regime_matrix(states: np.ndarray, weight: np.ndarray, levels: int, low: int, high: int, pull: float
                  ) -> tuple[np.ndarray, int]:
    """The (2(K+1))^2 transition matrix over (regime, level), rows pulled towards the planner's own
    smoothed row of their level, and the regime of the last block."""
    n = levels + 1
    regime = regimes(states, low, high)
    pooled, split = np.zeros((n, n)), np.zeros((2, n, n))
    np.add.at(pooled, (states[:-1], states[1:]), weight[1:])
    np.add.at(split, (regime[:-1], states[:-1], states[1:]), weight[1:])
    mix = np.bincount(states, weights=weight, minlength=n)
    mix = mix / mix.sum()
    base = (pooled + PRIOR * mix) / (pooled.sum(axis=1, keepdims=True) + PRIOR)
    rows = (split + pull * base[None]) / (split.sum(axis=2, keepdims=True) + pull)
    big = np.zeros((2 * n, 2 * n))
    for r in range(2):
        for k in range(n):
            after = 0 if k <= low else 1 if k >= high else r
            big[r * n:(r + 1) * n, after * n + k] = rows[r, :, k]
    return big, int(regime[-1])


def errors(ts: np.ndarray, floor: np.ndarray, on_demand: float, hours: float, cheap: int, low: int,
           high_share: float, pull: float) -> tuple[float, float, float, int]:
    """Mean absolute error of the cheap share forecast (chain, regime chain, last day) and the blocks."""
    steps = int(hours / STEP_H)
    chain, regime, naive = [], [], []
    first = math.ceil(float(ts[0]) / DAY) * DAY + 2 * DAY
    for epoch in np.arange(first, float(ts[-1]) - DAY - hours * 3600, DAY):
        n = int(np.searchsorted(ts, epoch, side="right"))
        model = fit_floor_model(ts[:n], floor[:n], on_demand, float(epoch), phases=1)
        if model is None or model.levels <= cheap or model.maxima is None:
            continue
        k = model.levels
        high = min(k, math.ceil(high_share * k))
        past = np.array([model.state_of(x) for x in model.maxima])
        weight = 0.5 ** (STEP_H * np.arange(len(past) - 1, -1, -1) / HALF_LIFE_H)
        big, last = regime_matrix(past, weight, k, low, high, pull)
        ahead = block_maxima(ts, floor, float(epoch) + (24 + hours) * 3600, STEP_H, steps + 48 + steps)
        states = np.array([model.state_of(x) for x in ahead])
        # (the days ahead's regimes, carried on from the fitted history's last)
        carried = regimes(states[steps:], low, high, start=last)
        power, big_power, shares, big_shares = np.eye(k + 1), np.eye(2 * (k + 1)), [], []
        for _ in range(steps):
            power, big_power = power @ model.trans, big_power @ big
            shares.append(power[:, :cheap].sum(axis=1))
            big_shares.append(big_power[:, :cheap].sum(axis=1) + big_power[:, k + 1:k + 1 + cheap].sum(axis=1))
        predicted, big_predicted = np.mean(shares, axis=0), np.mean(big_shares, axis=0)
        for i in range(steps, steps + 48):
            came = float(np.mean(states[i + 1:i + 1 + steps] < cheap))
            chain.append(abs(predicted[states[i]] - came))
            regime.append(abs(big_predicted[carried[i - steps] * (k + 1) + states[i]] - came))
            naive.append(abs(float(np.mean(states[i + 1 - steps:i + 1] < cheap)) - came))
    if not chain:
        return math.nan, math.nan, math.nan, 0
    return float(np.mean(chain)), float(np.mean(regime)), float(np.mean(naive)), len(chain)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_forecast_options(parser)
    parser.add_argument("--low", type=int, default=1, help="calm from a block at this level or under (default 1)")
    parser.add_argument("--high", type=float, default=1.0,
                        help="dear from a block at this share of the levels or above (default 1.0: above every level)")
    parser.add_argument("--pull", type=float, default=4.0,
                        help="transitions' weight pulling a regime's row to the all-regime row (default 4)")
    parser.add_argument("--out", type=Path, default=None, help="also write the table to this file")
    args = parser.parse_args(argv)
    lines = [f"Forecast of the share of the next {args.hours:g} h in the {args.cheap} cheapest states, mean absolute "
             f"error over every block: the planner's chain, the chain with a regime (calm at level {args.low} or "
             f"under, dear at {args.high:g} of the levels or above, pull {args.pull:g}), and the last "
             f"{args.hours:g} h read as the next", "",
             "| trace | market | blocks | chain | regime chain | the last hours |", "| --- | --- | ---: | ---: | ---: | ---: |"]
    for trace, label, ts, floor, on_demand in forecast_markets(args.traces):
        chain, regime, naive, blocks = errors(ts, floor, on_demand, args.hours, args.cheap, args.low, args.high, args.pull)
        if blocks:
            lines.append(f"| {trace} | {label} | {blocks:,} | {chain:.3f} | {regime:.3f} | {naive:.3f} |")
            print(lines[-1], file=sys.stderr, flush=True)
    return emit(lines, args.out)


if __name__ == "__main__":
    sys.exit(run_script("study_regime_chain", main))
