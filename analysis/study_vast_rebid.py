"""Vast: how much do bidder's spot runs pay over the bid a plan would choose for the floor now?

    python3 analysis/study_vast_rebid.py --cache /tmp/wt_V_cache --seeds 0,1

Reads the databases `analysis/study_vast_pauses.py` collects (`--cache`, vast-seed<N>-<days>d-<every>m.db)
and replays the `bidder` strategy as that study does. At each decision where the job holds a spot pod
at bid b, it asks the same plan what a job with no pod would do now; when that is spot on the same market
at b' < b, the run pays (b - b') x GPUs per hour over what a bid lowered in place would pay, until the
next decision. It also counts the spot pods bidder ends for a lower bid on the same market (a restart
each) and the work those restarts lose, priced at the new bid. Prints per run bidder's mean cost, its
spot runs' cost, the excess, its share of each, and the re-bids: on Vast a running bid can be lowered
in place (`PUT /instances/bid_price/{id}/`), so the excess and the re-bids' lost work bound what such a
re-bid could save (before the pauses a lower bid buys). Last output: `analysis/results/vast-pauses.md`,
section 7.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from bidder.backtest import load_store
from bidder.backtest.engine import replay, window_starts
from bidder.backtest.machines import with_machine_offers
from bidder.backtest.strategies import BidderFactory, BidderStrategy
from bidder.backtest.types import BacktestJob
from bidder.models import Policy, parse_tolerance
from bidder.store import Store


class Measured(BidderStrategy):
    """bidder, recording at each decision the bid it holds and the bid a fresh plan would take now."""

    def __init__(self, inner: BidderStrategy) -> None:
        self.__dict__.update(inner.__dict__)
        self.marks: list[tuple[float, float, float]] = []  # (now, held bid, fresh bid on its market)
        self.spot: list[tuple[float, float]] = []  # (now, the bid a spot pod runs at from now; nan: none)
        self.rebids = 0  # spot pods ended for a lower bid on the same market (a restart each)
        self.rebid_lost = 0.0  # USD: the work those restarts lost, redone at the new bid

    def decide(self, view, state):
        action = super().decide(view, state)
        pod = state.pod
        held = pod.bid if pod is not None and pod.kind == "spot" and action.kind == "keep" else \
            action.bid if action.kind == "spot" else float("nan")
        self.spot.append((view.now, held))
        if pod is not None and pod.kind == "spot" and action.kind == "spot" and action.market == pod.market \
                and action.bid < pod.bid:
            self.rebids += 1
            lost = min(self.job.restart_overhead_hours * self.job.speed_of(self.markets[pod.market].gpu_type_id),
                       pod.run_work_hours)
            self.rebid_lost += lost * action.bid * self.job.gpu_count
        if pod is not None and pod.kind == "spot" and (action.kind == "keep" or (
                action.kind == "spot" and action.market == pod.market and action.bid == pod.bid)):
            fresh = self._planned(view, replace(state, pod=None))
            lower = pod.bid
            if fresh is not None and fresh.kind == "spot" and fresh.market == pod.market and fresh.bid < pod.bid:
                lower = fresh.bid
            self.marks.append((view.now, pod.bid, lower))
        else:
            self.marks.append((view.now, float("nan"), float("nan")))
        return action


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cache", type=Path, required=True)
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--db-name", default="vast-seed{seed}-9d-15m.db")
    p.add_argument("--gpus", default="RTX A6000,RTX 4090")
    p.add_argument("--tolerances", default="high,medium,low")
    p.add_argument("--hours", type=float, default=24.0)
    p.add_argument("--deadline", type=float, default=72.0)
    p.add_argument("--restart-min", type=float, default=10.0)
    p.add_argument("--every", type=float, default=24.0)
    p.add_argument("--warmup", type=float, default=48.0)
    args = p.parse_args()
    print("| seed | GPU | tol | windows | bidder cost | of it spot | over the fresh plan's bid | share of cost "
          "| share of spot | lower re-bids by restart (their lost work, $) | both, share of cost |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    total_cost = total_over = total_spot = total_lost = 0.0
    for seed in (int(s) for s in args.seeds.split(",")):
        db = args.cache / args.db_name.format(seed=seed)
        for gpu in args.gpus.split(","):
            job = BacktestJob(gpu_types=(gpu,), cloud="VERIFIED", work_hours=args.hours,
                              deadline_hours=args.deadline, restart_overhead_hours=args.restart_min / 60)
            with Store.open(db, create=False) as store:
                history = with_machine_offers(load_store(store, market="vast").select(job), store)
            starts = window_starts(history, job, every_hours=args.every, warmup_hours=args.warmup)
            for tol in args.tolerances.split(","):
                policy = Policy(tolerance=parse_tolerance(tol))
                factory = BidderFactory()
                cost = over = spot = 0.0
                rebids, lost = 0, 0.0
                for s in starts:
                    spec = job.spec(datetime.fromtimestamp(float(history.ts[s]), UTC))
                    strategy = Measured(factory(history.markets, spec, policy))
                    run = replay(history, job, policy, strategy, s)
                    cost += run.cost
                    t0 = float(history.ts[s])
                    end = t0 + (run.completion_hours if run.completion_hours is not None else args.deadline) * 3600
                    marks = strategy.marks
                    for k, (now, held, lower) in enumerate(marks):
                        if held != held or lower >= held:
                            continue
                        until = min(marks[k + 1][0] if k + 1 < len(marks) else end, end)
                        over += (held - lower) * job.gpu_count * max(until - now, 0.0) / 3600
                    for k, (now, bid) in enumerate(strategy.spot):
                        if bid == bid:
                            until = min(strategy.spot[k + 1][0] if k + 1 < len(strategy.spot) else end, end)
                            spot += bid * job.gpu_count * max(until - now, 0.0) / 3600
                    rebids += strategy.rebids
                    lost += strategy.rebid_lost
                n = len(starts)
                total_cost += cost
                total_over += over
                total_spot += spot
                total_lost += lost
                print(f"| {seed} | {gpu} | {tol} | {n} | {cost / n:.2f} | {spot / n:.2f} | {over / n:.3f} | "
                      f"{over / cost * 100:.1f}% | {over / spot * 100 if spot else 0:.1f}% | {rebids / n:.1f} ({lost / n:.3f}) | "
                      f"{(over + lost) / cost * 100:.1f}% |",
                      flush=True)
    print(f"# all runs: {total_over / total_cost * 100:.2f}% of bidder's cost, {total_over / total_spot * 100:.2f}% "
          "of its spot runs' cost, paid over the fresh plan's bid; with the work lower re-bids' restarts "
          f"lost, {(total_over + total_lost) / total_cost * 100:.2f}% of the cost")


if __name__ == "__main__":
    main()
