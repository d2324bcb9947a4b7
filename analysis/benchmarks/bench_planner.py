"""How fast is the planner's DP (`bidder.planner.solve_plan`), and does it still give the same tables?

    python3 analysis/benchmarks/bench_planner.py                 # timing: 100 GPU-h job, 7-day deadline
    python3 analysis/benchmarks/bench_planner.py --check         # timing, then identity on 240 (model, job) pairs
    python3 analysis/benchmarks/bench_planner.py --check 40 --repeats 3   # a quick run

`reference_solve_plan` below is a verbatim copy of `solve_plan` as it was before it was optimised
(commit db35d42), with the accounting of an interrupted block's work (optimizer pass 8, the
`interrupted_work` switch) added to both: the benchmark times both in the same run (median of `--repeats` solves each) on the
issue's job (100 GPU-hours, 7-day deadline, 15-minute restart overhead, interruption price 0) with a
model fitted by `fit_floor_model` (12 levels, 0.5-hour blocks) on 30 days of the emulator's RTX 4090
COMMUNITY floor, and prints seconds per solve old and new and the ratio.

`--check N` then solves N (model, job) pairs both ways and counts those whose `action`, `value` and
`interruptions` arrays are bit-identical (np.array_equal, same dtypes): models fitted on varied
synthetic floors (random walks, spiky, calm, with NaN gaps = no capacity, few distinct prices so fewer
than 12 levels, none below on-demand so zero levels), jobs with varied work (1-100 h), deadlines (work
to 7 days), restart (0, 0.25, 1 h), speed (0.5, 1, 1.7), interruption price (0, 0.5 x on-demand,
2 x on-demand), cap (none, between two levels, below every level, under on-demand) and the
interrupted block's work counted or not. Exit status 1
if any pair differs.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np

from bidder.planner import (
    DEADLINE_PENALTY,
    ON_DEMAND,
    SPOT,
    WAIT_COST,
    FloorModel,
    Plan,
    fit_floor_model,
    solve_plan,
)

STEP_S = 300.0
NOW = 1_770_000_000.0


# ---- the reference: solve_plan as it was (verbatim copy, renamed) ----------------------------------

def reference_solve_plan(model: FloorModel, work_h: float, deadline_h: float, *, restart_h: float, speed: float = 1.0,
               interruption_cost: float = 0.0, cap: float = math.inf, interrupted_work: bool = False) -> Plan:
    """Backward induction of the job's plan on `model` (see the module docstring). Levels above `cap`
    are not bid; on-demand above it is not used (the deadline then rests on spot alone)."""
    dt = model.step_h
    k = int(np.searchsorted(model.edges, cap, side="right")) if math.isfinite(cap) else model.levels
    n_states, n_pods = model.levels + 1, model.levels + 2
    od = model.on_demand
    od_ok = od <= cap
    edges = model.edges[:k]
    P_T = np.ascontiguousarray(model.trans.T)
    work_blocks = math.ceil(work_h / dt - 1e-9)
    horizon = max(1, math.ceil(deadline_h / dt - 1e-9))
    loss = restart_h * speed / dt  # blocks of work a restart loses
    W = work_blocks + math.ceil(loss) + 2
    wi = np.arange(W + 1, dtype=float)

    def interp(arr: np.ndarray, x: np.ndarray, done: bool) -> np.ndarray:
        """arr at fractional rows x (linear; past the end the last slope continues; x <= 0 is the
        finished job when `done`)."""
        lo = np.floor(x).astype(int)
        frac = (x - lo).reshape((-1,) + (1,) * (arr.ndim - 1))
        lo_c, hi_c = np.clip(lo, 0, W), np.clip(lo + 1, 0, W)
        out = arr[lo_c] * (1 - frac) + arr[hi_c] * frac
        over = x > W
        if over.any():
            out[over] = arr[W] + (arr[W] - arr[W - 1]) * (x[over] - W).reshape((-1,) + (1,) * (arr.ndim - 1))
        if done:
            out[x <= 0] = 0.0
        return out

    after_run = wi - speed  # a block of running does `speed` blocks of reference work
    after_loss = wi + loss
    cut = speed / 2 - loss  # the work an interrupted block keeps, net of the restart
    share = np.minimum(wi / speed, 1.0)[:, None]  # the share of a block paid when the job ends inside it
    action = np.zeros((horizon + 1, W + 1, n_states, n_pods), dtype=np.int8)
    value = np.zeros((horizon + 1, W + 1, n_states, n_pods), dtype=np.float32)
    count = np.zeros((horizon + 1, W + 1, n_states, n_pods), dtype=np.float16)
    # τ = 0 with work left: the deadline is missed.
    # Missing it at all costs more than the whole job on-demand, so no saving is worth the risk.
    miss = od * dt * (DEADLINE_PENALTY * wi + W)
    miss[0] = 0.0
    V = np.broadcast_to(miss[:, None, None], (W + 1, n_states, n_pods)).copy()
    N = np.zeros_like(V)
    value[0], action[0] = V, ON_DEMAND
    below = (np.arange(n_states)[None, :] <= np.arange(k)[:, None])[:, None, :]  # (j, 1, k')
    can_start = below  # the floor must be at or under the level now to start there
    paid = (edges * dt)[:, None, None] * share[None]  # (j, W+1, 1)
    half = (edges * dt / 2)[:, None, None] + interruption_cost
    wait_cost = WAIT_COST * od * dt
    for tau in range(1, horizon + 1):
        idle_v, idle_n = V[:, :, 0], N[:, :, 0]
        opts_v = [wait_cost + idle_v @ P_T]
        opts_n = [idle_n @ P_T]
        od_v = od * dt * share + interp(V[:, :, 1], after_run, True) @ P_T if od_ok else np.full_like(idle_v, np.inf)
        od_n = interp(N[:, :, 1], after_run, True) @ P_T
        opts_v.append(od_v)
        opts_n.append(od_n)
        if k:
            run_v = interp(V[:, :, SPOT:SPOT + k], after_run, True).transpose(2, 0, 1)  # (j, W+1, k')
            run_n = interp(N[:, :, SPOT:SPOT + k], after_run, True).transpose(2, 0, 1)
            # Interrupted half-way: half a block of work done, the restart's lost (a start loses at most what it ran).
            lost_v, lost_n = (interp(a, wi - cut, cut > 0) if cut else a for a in (idle_v, idle_n)) if interrupted_work \
                else (interp(idle_v, after_loss, False), interp(idle_n, after_loss, False))
            cut_v, cut_n = (lost_v, lost_n) if cut > 0 and interrupted_work else (idle_v, idle_n)
            ok_v = paid + run_v
            start_v = np.where(below, ok_v, half + cut_v[None]) @ P_T
            start_n = np.where(below, run_n, 1.0 + cut_n[None]) @ P_T
            keep_v = np.where(below, ok_v, half + lost_v[None]) @ P_T
            keep_n = np.where(below, run_n, 1.0 + lost_n[None]) @ P_T
            start_v = np.where(can_start, start_v, np.inf)
            all_v = np.concatenate([np.stack(opts_v), start_v])
            all_n = np.concatenate([np.stack(opts_n), start_n])
        else:
            all_v, all_n = np.stack(opts_v), np.stack(opts_n)
        best = all_v.argmin(axis=0)
        fresh_v = np.take_along_axis(all_v, best[None], axis=0)[0]
        fresh_n = np.take_along_axis(all_n, best[None], axis=0)[0]
        # Ending a pod (to switch or wait) loses the restart's work, then the job acts as a fresh one.
        # Ending a pod by choice is priced as an interruption would be: to the job it is the same restart.
        end_v, end_n = interp(fresh_v, after_loss, False) + interruption_cost, interp(fresh_n, after_loss, False)
        newV, newN = np.empty_like(V), np.empty_like(N)
        newA = np.empty((W + 1, n_states, n_pods), dtype=np.int8)
        newV[:, :, 0], newN[:, :, 0], newA[:, :, 0] = fresh_v, fresh_n, best
        keep = od_v <= end_v
        newV[:, :, 1] = np.where(keep, od_v, end_v)
        newN[:, :, 1] = np.where(keep, od_n, end_n)
        newA[:, :, 1] = np.where(keep, ON_DEMAND, best)
        for j in range(model.levels):
            if j < k:
                keep = keep_v[j] <= end_v
                newV[:, :, SPOT + j] = np.where(keep, keep_v[j], end_v)
                newN[:, :, SPOT + j] = np.where(keep, keep_n[j], end_n)
                newA[:, :, SPOT + j] = np.where(keep, SPOT + j, best)
            else:  # a pod above the cap is ended
                newV[:, :, SPOT + j], newN[:, :, SPOT + j], newA[:, :, SPOT + j] = end_v, end_n, best
        newV[0], newN[0] = 0.0, 0.0
        V, N = newV, newN
        value[tau], count[tau], action[tau] = V, N, newA
    return Plan(model=model, action=action, value=value, interruptions=count, restart_h=restart_h, speed=speed,
                interruption_cost=interruption_cost)


# ---- models and jobs ----------------------------------------------------------------------------------


def emulator_model() -> FloorModel:
    """The benchmark's model: 30 days of the emulator's RTX 4090 COMMUNITY floor (seed 1)."""
    from bidder.sim import generate_quotes

    quotes = generate_quotes(seed=1, days=31, step_s=300, gpu_types=["NVIDIA GeForce RTX 4090"], clouds=("COMMUNITY",))
    ts = np.array([q.ts.timestamp() for q in quotes])
    floor = np.array([np.nan if q.minimum_bid_price is None else q.minimum_bid_price for q in quotes])
    model = fit_floor_model(ts, floor, quotes[-1].uninterruptable_price, float(ts[-1]))
    assert model is not None
    return model


def synthetic_floor(kind: str, rng: np.random.Generator, n: int) -> np.ndarray:
    """A 5-minute floor series of one of several shapes (on-demand is 1.0)."""
    if kind == "walk":
        floor = np.clip(0.4 + np.cumsum(rng.normal(0, 0.01, n)), 0.05, 1.3)
    elif kind == "spiky":
        floor = np.full(n, rng.uniform(0.2, 0.4))
        spikes = rng.random(n) < 0.02
        floor[spikes] = rng.uniform(0.6, 1.5, spikes.sum())
        for i in np.flatnonzero(spikes):  # a spike lasts up to an hour
            floor[i:i + rng.integers(1, 12)] = floor[i]
    elif kind == "calm":
        floor = 0.3 + rng.normal(0, 0.003, n)
    elif kind == "gaps":
        floor = np.clip(0.5 + np.cumsum(rng.normal(0, 0.008, n)), 0.1, 1.2)
        for _ in range(rng.integers(3, 15)):  # spells without capacity
            a = rng.integers(0, n)
            floor[a:a + rng.integers(3, 150)] = np.nan
    elif kind == "few":  # a handful of distinct prices: fewer than 12 levels
        prices = rng.choice([0.2, 0.35, 0.5, 0.8, 1.1], size=rng.integers(2, 5), replace=False)
        floor = np.repeat(rng.choice(prices, n // 24 + 1), 24)[:n]
    elif kind == "two":  # two prices under on-demand: two levels
        floor = np.repeat(rng.choice([0.3, 0.6], n // 12 + 1), 12)[:n]
    elif kind == "none":  # never under on-demand: no levels
        floor = 1.0 + rng.uniform(0.05, 0.5, n)
        floor[rng.random(n) < 0.1] = np.nan
    else:
        raise ValueError(kind)
    return floor


KINDS = ("walk", "spiky", "calm", "gaps", "few", "two", "none")


def synthetic_models(rng: np.random.Generator, count: int) -> list[FloorModel]:
    """`count` models on varied floors (and a few with other block lengths and level counts)."""
    models = []
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        days = rng.uniform(2, 30)
        n = int(days * 24 * 12)
        floor = synthetic_floor(kind, rng, n)
        ts = NOW - STEP_S * np.arange(n, 0, -1)
        options = {} if i % 3 else {"step_h": float(rng.choice([0.5, 1.0])), "levels": int(rng.integers(2, 13))}
        model = fit_floor_model(ts, floor, 1.0, NOW, **options)
        assert model is not None
        models.append(model)
    return models


def random_job(model: FloorModel, rng: np.random.Generator) -> dict:
    """A job on `model`: work, deadline, restart, speed, interruption price and cap drawn at random."""
    work = float(rng.uniform(1, 100)) if rng.random() < 0.7 else float(rng.uniform(1, 12))
    deadline = float(rng.uniform(work, 168.0))
    od = model.on_demand
    caps = [math.inf, od * 0.99]
    if model.levels:
        caps.append(float(model.edges[0]) * 0.5)  # below every level
    if model.levels >= 2:
        j = int(rng.integers(0, model.levels - 1))
        caps.append(float(model.edges[j] + model.edges[j + 1]) / 2)  # between two levels
        caps.append(float(model.edges[j]))  # exactly on one
    return {"work_h": work, "deadline_h": deadline, "restart_h": float(rng.choice([0.0, 0.25, 1.0])),
            "speed": float(rng.choice([0.5, 1.0, 1.7])), "interruption_cost": float(rng.choice([0.0, 0.5, 2.0])) * od,
            "cap": float(caps[rng.integers(0, len(caps))]), "interrupted_work": bool(rng.integers(0, 2))}


def identical(a: Plan, b: Plan) -> bool:
    return all(x.dtype == y.dtype and np.array_equal(x, y)
               for x, y in ((a.action, b.action), (a.value, b.value), (a.interruptions, b.interruptions)))


def check(pairs: int, seed: int) -> int:
    """Solve `pairs` (model, job) pairs both ways; print and return how many differ."""
    rng = np.random.default_rng(seed)
    models = synthetic_models(rng, max(pairs // 6, len(KINDS)))
    same, differ = 0, []
    t0 = time.perf_counter()
    for i in range(pairs):
        model = models[i % len(models)]
        job = random_job(model, rng)
        if identical(reference_solve_plan(model, **job), solve_plan(model, **job)):
            same += 1
        else:
            differ.append((i, model.levels, job))
    print(f"identity: {same} of {pairs} (model, job) pairs bit-identical (action, value, interruptions) "
          f"on {len(models)} models ({', '.join(KINDS)}; levels {sorted({m.levels for m in models})}), "
          f"{time.perf_counter() - t0:.0f} s")
    for i, levels, job in differ[:10]:
        print(f"  differs: pair {i}, {levels} levels, {job}")
    return len(differ)


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7, help="solves timed each way (median)")
    parser.add_argument("--check", type=int, nargs="?", const=240, default=0, help="(model, job) pairs compared")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    model = emulator_model()
    job = {"work_h": 100.0, "deadline_h": 168.0, "restart_h": 0.25, "speed": 1.0, "interruption_cost": 0.0}
    solve_plan(model, 10.0, 24.0, restart_h=0.25)  # warm-up
    old = median_seconds(lambda: reference_solve_plan(model, **job), args.repeats)
    new = median_seconds(lambda: solve_plan(model, **job), args.repeats)
    same = identical(reference_solve_plan(model, **job), solve_plan(model, **job))
    print(f"solve_plan, 100 GPU-h job, 7-day deadline, {model.levels} levels, {model.step_h} h blocks, "
          f"median of {args.repeats}: old {old:.4f} s, new {new:.4f} s per solve: {old / new:.1f}x faster"
          f" ({'identical' if same else 'DIFFERENT'} tables)")
    bad = 0 if same else 1
    if args.check:
        bad += check(args.check, args.seed)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
