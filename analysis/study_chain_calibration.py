"""Does the planner's chain forecast the floor's level hours ahead? Predicted against realised.

    python3 analysis/study_chain_calibration.py                          # the AWS trace and the shipped one
    python3 analysis/study_chain_calibration.py --traces T.csv --hours 72
    python3 analysis/study_chain_calibration.py --out analysis/results/chain-calibration.txt

For each market of each trace, once a day (from the third day), the floor's model is fitted on the
history so far as a backtest fits it (`bidder.planner.fit_floor_model`, all-day chain: the daily
phases left out, so that the chain's own memory is what is measured). Then, from each half-hour block
of the following day, it forecasts the share of the next `--hours` hours whose block maximum is in the
cheap states (the lowest `--cheap` levels: with 12 levels, the cheapest third of the blocks below
on-demand) by powers of the transition matrix, and that share is compared with what came. The blocks
are grouped by the state they start from (cheap, middle, dear, above every level); a calibrated chain
predicts what is realised in every group. A chain that predicts too little of the cheap share after
cheap blocks and too much after dear ones forgets a spell too soon: the market has more memory than
one half-hour step carries.

Beside the chain, the naive forecast a day of memory gives: the share of the `--hours` hours before the
block (the block included) that was cheap, read as the share ahead. Where it is closer to what came
than the chain, by start state and in the mean absolute error over every block (the last lines), the
market remembers more than the chain does.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from study_inputs import add_forecast_options, emit, forecast_markets, run_script

from bidder.planner import block_maxima, fit_floor_model

DAY = 86400.0


def calibration(ts: np.ndarray, floor: np.ndarray, on_demand: float, hours: float, cheap: int
                ) -> list[tuple[float, float, float, float]]:
    """(start state / levels, predicted cheap share, realised cheap share, the cheap share of the same
    span before it) for every block forecast."""
    rows = []
    steps = int(hours / 0.5)
    first = math.ceil(float(ts[0]) / DAY) * DAY + 2 * DAY
    for epoch in np.arange(first, float(ts[-1]) - DAY - hours * 3600, DAY):
        n = int(np.searchsorted(ts, epoch, side="right"))
        model = fit_floor_model(ts[:n], floor[:n], on_demand, float(epoch), phases=1)
        if model is None or model.levels <= cheap:
            continue
        # The day forecast from (48 blocks), the span ahead of its last block, and the span before its first.
        ahead = block_maxima(ts, floor, float(epoch) + (24 + hours) * 3600, 0.5, steps + 48 + steps)
        states = np.array([model.state_of(x) for x in ahead])
        power, shares = np.eye(model.levels + 1), []
        for _ in range(steps):
            power = power @ model.trans
            shares.append(power[:, :cheap].sum(axis=1))
        predicted = np.mean(shares, axis=0)  # by start state
        for i in range(steps, steps + 48):
            rows.append((states[i] / model.levels, float(predicted[states[i]]),
                         float(np.mean(states[i + 1:i + 1 + steps] < cheap)),
                         float(np.mean(states[i + 1 - steps:i + 1] < cheap))))
    return rows


BANDS = (("cheap", 0.0, 0.34), ("middle", 0.34, 0.67), ("dear", 0.67, 0.99), ("above every level", 0.99, 1.01))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_forecast_options(parser)
    parser.add_argument("--out", type=Path, default=None, help="also write the table to this file")
    args = parser.parse_args(argv)
    lines = [f"Chain calibration: the share of the next {args.hours:g} h in the {args.cheap} cheapest states, "
             "predicted by the chain fitted that day and realised, by the state a block starts from",
             "", f"| trace | market | start state | blocks | predicted | the last {args.hours:g} h | realised |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: |"]
    errors = []
    for trace, label, ts, floor, on_demand in forecast_markets(args.traces):
        rows = np.array(calibration(ts, floor, on_demand, args.hours, args.cheap))
        if not len(rows):
            continue
        for name, lo, hi in BANDS:
            sel = (rows[:, 0] >= lo) & (rows[:, 0] < hi)
            if sel.any():
                lines.append(f"| {trace} | {label} | {name} | {int(sel.sum()):,} | "
                             f"{rows[sel, 1].mean():.3f} | {rows[sel, 3].mean():.3f} | {rows[sel, 2].mean():.3f} |")
        print(lines[-1], file=sys.stderr, flush=True)
        errors.append((trace, label, np.mean(np.abs(rows[:, 1] - rows[:, 2])), np.mean(np.abs(rows[:, 3] - rows[:, 2]))))
    lines += ["", f"Mean absolute error of the cheap share over every block: the chain, the last {args.hours:g} h", "",
              "| trace | market | chain | the last hours |", "| --- | --- | ---: | ---: |"]
    lines += [f"| {t} | {m} | {a:.3f} | {b:.3f} |" for t, m, a, b in errors]
    return emit(lines, args.out)


if __name__ == "__main__":
    sys.exit(run_script("study_chain_calibration", main))
