"""How long does `bidder` take to start, against a bare Python start?

    python3 analysis/benchmarks/bench_startup.py [--runs 15]

Runs each command in a fresh interpreter --runs times, interleaved (so a busy moment of a shared
machine hits all of them alike), and prints the median wall time of each, its ratio to
`python -c pass` and what `bidder` adds to it. The commands: `python -c pass` (the baseline),
`python -c "import bidder.cli"`, `bidder tick --help` (what the cron path imports: the store,
the client, the executor, never the emulator, pandas or matplotlib), `bidder --help` (every
command module, but none of their heavy parts), and `bidder tick --help` with everything imported
up front as before lazy loading ("eager": every command module, the emulator and the demo).
Run from the repository root.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIDDER = "from bidder.cli import main; main(prog_name='bidder')"
# What every start paid before commands were loaded lazily: all command modules, the emulator
# (graphql-core) and the demo imported up front.
EAGER = ("import bidder.cli.sim, bidder.cli.collect, bidder.cli.backtest, bidder.cli.report, bidder.cli.execute, "
         "bidder.cli.recommend, bidder.cli.demo, bidder.sim, bidder.demo; " + BIDDER)

COMMANDS: dict[str, list[str]] = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "import bidder.cli": [sys.executable, "-c", "import bidder.cli"],
    "bidder tick --help": [sys.executable, "-c", BIDDER, "tick", "--help"],
    "bidder --help": [sys.executable, "-c", BIDDER, "--help"],
    "tick --help, eager": [sys.executable, "-c", EAGER, "tick", "--help"],
}


def _time(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=env, cwd=ROOT)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="Starts per command (default 15).")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    for argv in COMMANDS.values():  # warm the file cache and the .pyc files
        _time(argv, env)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.runs):
        for name, argv in COMMANDS.items():
            times[name].append(_time(argv, env))
    base = statistics.median(times["python -c pass"])
    print(f"Start-up, median of {args.runs} runs each (Python {sys.version.split()[0]}, {os.cpu_count()} cores):")
    print(f"{'command':<22} {'median ms':>10} {'min ms':>8} {'x python':>9} {'+ ms':>7}")
    for name, samples in times.items():
        med = statistics.median(samples)
        print(f"{name:<22} {med * 1000:>10.1f} {min(samples) * 1000:>8.1f} {med / base:>9.2f} "
              f"{(med - base) * 1000:>7.1f}")


if __name__ == "__main__":
    main()
