"""Vast under machine pauses: does bidder beat the floor rule once spot runs are paused by their machines?

    python3 analysis/study_vast_pauses.py --cache /tmp/vast-dbs                       # seeds 0,1,2
    python3 analysis/study_vast_pauses.py --cache /tmp/vast-dbs --seeds 3,4 --gpus "RTX 3090"

Last output: `analysis/results/vast-pauses.md`.

For each emulator seed, `--days` of the emulator's Vast market are collected over HTTP into a real
SQLite database, one `bidder collect` (every offer stored) each `--every-min` virtual minutes
(cached in `--cache` as vast-seed<N>-<days>d-<every>m.db: a second run reuses it). Each GPU type
(1 GPU, verified) is then back-tested as `bidder backtest --db DB --market vast` does it (stored offers
read, spot runs paused by their machines, seed 0), a `--hours` job due in `--deadline`, windows every
`--every` after `--warmup`, at each tolerance. Prints per run the mean cost of bidder, the floor rule,
floor+0.10, bid-on-demand, on-demand and the optimum, each with its mean interruptions a window (the
tolerance allows `tolerance x deadline days`), and the share of deadlines met. `--explain` adds, for
bidder and the floor rule, where the money and time went (spot and on-demand hours, bid over the
floor, pauses, work lost); `--rates` prints, a few days in, the pauses per running hour the offers
show by bid premium (`bidder.machine_hazard`: the upper bound the plan and the engine use, and the
median, at confidence 0.5) beside the emulator's own odds for those machines.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from bidder.backtest import load_store
from bidder.backtest.engine import replay, run_backtest, strategy_factory, window_starts
from bidder.backtest.machines import with_machine_offers
from bidder.backtest.types import BacktestJob
from bidder.collector import VastSource, collect_markets
from bidder.models import Policy, parse_tolerance
from bidder.runpod import RetryPolicy
from bidder.sim import Emulator
from bidder.store import Store
from bidder.vast import VastClient
from bidder.vast.summary import OfferFilters

STRATEGIES = ("bidder", "floor", "floor+0.10", "bid-on-demand", "on-demand", "optimum")
PORT = 20700  # + seed: the emulator's port (this helper's range)


def collect(cache: Path, seed: int, days: float, every_min: float) -> Path:
    """The seed's database: `days` of collects `every_min` apart from the emulator's start (cached)."""
    db = cache / f"vast-seed{seed}-{days:g}d-{every_min:g}m.db"
    if db.exists():
        return db
    part = db.with_suffix(".part")
    part.unlink(missing_ok=True)
    began = time.monotonic()
    with Emulator(seed=seed, port=PORT + seed % 100) as emu, Store.open(part) as store:
        end = emu.now + timedelta(days=days)
        retry = RetryPolicy(attempts=3, base=0.01, max_delay=0.05, max_total=10.0)
        with VastClient(api_key=emu.api_key, url=emu.vast_url, retry=retry, timeout=10.0,
                        rate_limit_base=0.01) as client:
            source = VastSource(client, OfferFilters(), offers_days=0)  # keep every offer
            while emu.now <= end:
                collect_markets([source], store, now=emu.now)
                emu.advance(every_min * 60)
    part.rename(db)
    print(f"# collected seed {seed}: {days:g} days every {every_min:g} min in {time.monotonic() - began:.0f} s",
          file=sys.stderr)
    return db


@dataclass
class Split:
    """Where one run's time and money went."""

    spot_h: float = 0.0
    od_h: float = 0.0
    spot_cost: float = 0.0
    od_cost: float = 0.0
    premium_h: float = 0.0  # sum over spot hours of (bid / floor - 1)
    starts: int = 0


def explain(history, job: BacktestJob, policy: Policy, name: str, start: int, seed: int) -> tuple[Split, object]:
    """One window's run of a strategy, replayed with its log, split into spot and on-demand."""
    spec = job.spec(datetime.fromtimestamp(float(history.ts[start]), UTC))
    strategy = strategy_factory(name)(history.markets, spec, policy)
    run = replay(history, job, policy, strategy, start, seed=seed, record=True)
    split = Split()
    # Walk the decision log: the pod held from each start until the next action that changes it.
    held: tuple[str, int, float] | None = None
    since = 0.0
    pauses = sorted(run.interruption_hours)
    log = [(t, a) for t, a in run.log]

    def close(until: float) -> None:
        if held is None or until <= since:
            return
        kind, m, bid = held
        hours = (until - since) / 3600
        if kind == "spot":
            i0 = int(np.searchsorted(history.ts, since, side="right")) - 1
            i1 = max(int(np.searchsorted(history.ts, until, side="left")), i0 + 1)
            floor = float(np.nanmean(history.floor[m, i0:i1]))
            split.spot_h += hours
            split.spot_cost += bid * hours * job.gpu_count
            split.premium_h += (bid / floor - 1.0) * hours
        else:
            od = float(np.nanmean(history.on_demand_held()[m, int(np.searchsorted(history.ts, since, "right")) - 1]))
            split.od_h += hours
            split.od_cost += od * hours * job.gpu_count

    t0 = float(history.ts[start])
    stops = [t0 + h * 3600 for h in pauses]
    done_at = None if run.completion_hours is None else t0 + run.completion_hours * 3600
    for t, action in log:
        if done_at is not None and t > done_at:
            break
        while stops and stops[0] <= t:  # a pause ended the pod before this decision
            close(stops.pop(0))
            held = None
        if action.kind == "keep":
            continue
        if held is not None and action.kind == held[0] and action.market == held[1] and (
                action.kind == "on_demand" or action.bid == held[2]):
            continue
        close(t)
        held = None
        since = t
        if action.kind in ("spot", "on_demand"):
            ok = action.kind == "on_demand" or history.floor[action.market,
                                                              int(np.searchsorted(history.ts, t, "right")) - 1] <= action.bid
            if ok:
                held = (action.kind, int(action.market), float(action.bid or 0.0))
                split.starts += 1
    end = done_at if done_at is not None else t0 + (job.deadline_hours or 0) * 3600
    close(end)
    return split, run


def true_rates(seed: int, gpu: str, premiums: np.ndarray) -> np.ndarray:
    """The emulator's pauses per running hour of a 1-GPU verified machine of `gpu` bid `premium` over its
    host's floor, averaged over those machines as the offers weigh them (by the time each is listed at
    or under the bid): per 30-minute slot an on-demand renter takes it with p_od, or a competitor bids
    floor x (1 + Exp(0.35)) with p_bid (`bidder.sim.vast_world`)."""
    from bidder.sim.vast_world import SLOT_S, VastMarket

    mk = VastMarket(seed)
    sel = np.array([mk.gpu_name(i) == gpu and mk.num_gpus[i] == 1 and bool(mk.verified[i]) for i in range(mk.n)])
    floor, od, p_od, p_bid = mk.floor_per_gpu[sel], mk.od_per_gpu[sel], mk.p_od[sel], mk.p_bid[sel]
    out = []
    for premium in premiums:
        over = np.exp(-premium / 0.35) * (floor * (1 + premium) < od * 1.05)  # a competitor outbids it
        listed = (1 - p_od) * (1 - p_bid * over)
        per_slot = p_od + (1 - p_od) * p_bid * over
        out.append(3600 / SLOT_S * float((listed * per_slot).sum() / listed.sum()))
    return np.array(out)


def print_rates(db: Path, seed: int, gpu: str, days: tuple[float, ...] = (3, 5, 8)) -> None:
    from bidder.machine_hazard import machine_hazard

    with Store.open(db, create=False) as store:
        ts0 = float(store.floor_series(gpu, "VERIFIED", 1, market="vast").ts[0])
        for day in days:
            now = datetime.fromtimestamp(ts0, UTC) + timedelta(days=day)
            ts, machine, min_bid = store.machine_series(gpu, 1, True, since=now - timedelta(days=7), until=now)
            upper = machine_hazard(ts, machine, min_bid, now.timestamp())
            median = machine_hazard(ts, machine, min_bid, now.timestamp(), confidence=0.5)
            if upper is None or median is None:
                continue
            truth = true_rates(seed, gpu, upper.premiums)
            print(f"# rates seed {seed} {gpu} day {day:g} ({upper.machines} machines, {upper.exposure_hours:.0f} "
                  "weighted machine-hours): premium upper/median/emulator " + ", ".join(
                      f"{p:g}: {u:.2f}/{m:.2f}/{t:.2f}" for p, u, m, t in
                      zip(upper.premiums, upper.rates, median.rates, truth, strict=True)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cache", type=Path, required=True, help="folder of the collected databases (kept)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--days", type=float, default=9.0)
    p.add_argument("--every-min", type=float, default=15.0, help="virtual minutes between collects")
    p.add_argument("--gpus", default="RTX A6000,RTX 4090")
    p.add_argument("--tolerances", default="high,medium,low")
    p.add_argument("--hours", type=float, default=24.0)
    p.add_argument("--deadline", type=float, default=72.0, help="hours")
    p.add_argument("--restart-min", type=float, default=10.0)
    p.add_argument("--every", type=float, default=24.0, help="hours between windows")
    p.add_argument("--warmup", type=float, default=48.0, help="hours of history before the first window")
    p.add_argument("--backtest-seed", type=int, default=0, help="the pauses' seed (as bidder backtest --seed)")
    p.add_argument("--explain", action="store_true", help="split each strategy's windows into spot/on-demand")
    p.add_argument("--rates", action="store_true", help="the pause rates the offers show against the emulator's")
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    strategies = list(STRATEGIES)
    print(f"# job {args.hours:g} GPU-h by {args.deadline:g} h, restart {args.restart_min:g} min; windows every "
          f"{args.every:g} h after {args.warmup:g} h; {args.days:g} days collected every {args.every_min:g} min; "
          f"pause seed {args.backtest_seed}")
    head = ("| seed | GPU | tol (allowed a window) | windows | " + " | ".join(strategies)
            + " | bidder/floor | met b/f |")
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for seed in (int(s) for s in args.seeds.split(",")):
        db = collect(args.cache, seed, args.days, args.every_min)
        for gpu in args.gpus.split(","):
            if args.rates:
                print_rates(db, seed, gpu)
            job = BacktestJob(gpu_types=(gpu,), cloud="VERIFIED", work_hours=args.hours,
                              deadline_hours=args.deadline, restart_overhead_hours=args.restart_min / 60)
            with Store.open(db, create=False) as store:
                history = with_machine_offers(load_store(store, market="vast").select(job), store)
            for tol in args.tolerances.split(","):
                policy = Policy(tolerance=parse_tolerance(tol))
                began = time.monotonic()
                report = run_backtest(history, job, policy, strategies, every_hours=args.every,
                                      warmup_hours=args.warmup, seed=args.backtest_seed, workers=args.workers)
                rows = {s["name"]: s for s in report.summary()["strategies"]}
                b, f = rows["bidder"], rows["floor"]
                # Each strategy's mean cost (mean interruptions a window; the optimum's plan meets no pause).
                cells = " | ".join(f"{rows[s]['cost']:.2f} ({rows[s]['interruptions']:.1f})" for s in strategies)
                allowed = policy.tolerance * args.deadline / 24
                print(f"| {seed} | {gpu} | {tol} ({allowed:g}) | {len(report.windows)} | {cells} | "
                      f"{b['cost'] / f['cost']:.2f} | {b['deadline_met_share']:.2f}/{f['deadline_met_share']:.2f} |",
                      flush=True)
                print(f"#   ({time.monotonic() - began:.0f} s)", file=sys.stderr)
                if args.explain:
                    starts = window_starts(history, job, every_hours=args.every, warmup_hours=args.warmup)
                    for name in ("bidder", "floor"):
                        tot = Split()
                        runs = []
                        for s in starts:
                            split, run = explain(history, job, policy, name, s, args.backtest_seed)
                            runs.append(run)
                            for k in vars(tot):
                                setattr(tot, k, getattr(tot, k) + getattr(split, k))
                        n = len(starts)
                        prem = tot.premium_h / tot.spot_h if tot.spot_h else float("nan")
                        print(f"#   {name:7s}: spot {tot.spot_h / n:5.1f} h ${tot.spot_cost / n:5.2f} (bid "
                              f"{prem * 100:+.0f}% over floor), on-demand {tot.od_h / n:5.1f} h ${tot.od_cost / n:5.2f}, "
                              f"starts {tot.starts / n:.1f}, pauses {np.mean([r.machine_pauses for r in runs]):.1f}, "
                              f"work lost {np.mean([r.restart_hours_lost for r in runs]):.2f} h, done at "
                              f"{np.mean([r.completion_hours or np.nan for r in runs]):.1f} h, "
                              f"cost {np.mean([r.cost for r in runs]):.2f}")


if __name__ == "__main__":
    main()
