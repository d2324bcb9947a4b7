"""Prototype: the price-state planner as a backtest strategy (single market or several, batch jobs)."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import numpy as np

from bidder.backtest.engine import BacktestJob, load_trace, run_backtest
from bidder.backtest.strategies import KEEP, WAIT, Action
from bidder.models import Policy
from bidder.planner import ON_DEMAND, SPOT, WAIT as P_WAIT, fit_floor_model, solve_plan


class PlannerFactory:
    def __init__(self, **params):
        self.params = params
        self.cache = {}

    def __call__(self, markets, job, policy):
        return PlannerStrategy(self, markets, job, policy)


class PlannerStrategy:
    name = "planner"

    def __init__(self, factory, markets, job, policy):
        self.f, self.markets, self.job, self.policy = factory, markets, job, policy
        p = factory.params
        self.step_h = p.get("step_h", 0.5)
        self.refit_h = p.get("refit_h", 24.0)
        self.restart_h = job.restart_overhead_hours if hasattr(job, "restart_overhead_hours") else 0.25

    def models(self, view, now):
        epoch = math.floor(now / (self.refit_h * 3600)) * self.refit_h * 3600
        out = []
        for i, m in enumerate(self.markets):
            key = (i, epoch)
            if key not in self.f.cache:
                n = int(np.searchsorted(view.ts, epoch, side="right"))
                ts, fl = view.ts[:n], view.floor(i)[:n]
                od = view.on_demand(i)[:n]
                od_now = float(od[~np.isnan(od)][-1]) if (~np.isnan(od)).any() else math.nan
                model = fit_floor_model(ts, fl, od_now, epoch, step_h=self.step_h,
                                        lookback_h=self.f.params.get("lookback_h", 14 * 24),
                                        half_life_h=self.f.params.get("half_life_h", 72),
                                        levels=int(self.f.params.get("levels", 12)),
                                        grid_ratio=self.f.params.get("grid_ratio", 0.0),
                                        context_h=self.f.params.get("context_h", 0.0),
                                        context_bw=self.f.params.get("context_bw", 0.5),
                                        context_floor=self.f.params.get("context_floor", 0.0))
                self.f.cache[key] = model
            out.append(self.f.cache[key])
        return out

    def decide(self, view, state):
        from bidder.planner import MarketNow, PodNow, choose
        now = view.now
        plans = self.models(view, now)
        dt = self.step_h
        ms = []
        for i, model in enumerate(plans):
            lo = int(np.searchsorted(view.ts, now - dt * 3600, side="right")) - 1
            fl = view.floor(i)[max(lo, 0):view.n]
            bm = float(np.max(np.where(np.isnan(fl), np.inf, fl)))
            f = float(view.floors_now()[i])
            ms.append(MarketNow(model, bm, None if math.isnan(f) else f, 1.0))
        pod = state.pod
        pn = None if pod is None else PodNow(pod.market, pod.kind, pod.bid)
        window = (state.deadline - state.start) / 3600
        days = window / 24
        allowed = self.policy.tolerance * days - state.interruptions
        ch = choose(ms, work_h=100, window_h=window, work_left_h=state.work_left_hours,
                    time_left_h=(state.deadline - now) / 3600, restart_h=0.25, pod=pn,
                    interruptions_allowed=max(allowed, 0.0))
        if ch is None or (state.deadline - now) / 3600 - state.work_left_hours < 0.5:
            if pod is not None and pod.kind == "on_demand":
                return KEEP
            return Action("on_demand", int(np.nanargmin(view.on_demand_now())))
        if ch.action == "keep":
            return KEEP
        if ch.action == "wait":
            return WAIT
        if ch.action == "on_demand":
            return Action("on_demand", ch.market)
        return Action("spot", ch.market, ch.bid)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("trace")
    ap.add_argument("--gpu", action="append", default=[])
    ap.add_argument("--tolerance", default="high")
    ap.add_argument("--every", type=float, default=84)
    ap.add_argument("--step", type=float, default=0.5)
    ap.add_argument("--icost", type=float, default=0.0)
    ap.add_argument("--levels", type=int, default=12)
    ap.add_argument("--half-life", type=float, default=72)
    ap.add_argument("--lookback", type=float, default=14 * 24)
    ap.add_argument("--margin", type=float, default=0.5)
    ap.add_argument("--strategies", default="bidder,floor,optimum")
    args = ap.parse_args()
    from bidder.models import parse_tolerance
    hist = load_trace(args.trace)
    gpus = []
    for g in args.gpu:
        gpus += [m.gpu_type_id for m in hist.markets if g in m.gpu_type_id or g in (m.display_name or "")]
    gpus = tuple(dict.fromkeys(gpus)) or tuple(dict.fromkeys(m.gpu_type_id for m in hist.markets))
    job = BacktestJob(gpu_types=gpus, work_hours=100, deadline_hours=168, restart_overhead_hours=0.25)
    pol = Policy(tolerance=parse_tolerance(args.tolerance))
    fac = PlannerFactory(work_h=100, deadline_h=168, restart_h=0.25, step_h=args.step, icost=args.icost,
                         levels=args.levels, half_life_h=args.half_life, lookback_h=args.lookback,
                         margin_h=args.margin)
    t0 = time.time()
    strategies = ["planner"] + [s for s in args.strategies.split(",") if s]
    rep = run_backtest(hist, job, pol, strategies, every_hours=args.every, factories={"planner": fac})
    s = rep.summary()
    out = {}
    for agg in s["strategies"]:
        out[agg["name"]] = [agg.get("cost_vs_optimum"), agg["worst"].get("cost_vs_optimum"),
                            agg.get("deadline_met_share"), agg.get("interruptions")]
    print(json.dumps(out, default=str))
    print(f"{time.time() - t0:.1f}s", file=sys.stderr)


if __name__ == "__main__":
    main()


def windows_table(rep):
    for w in rep.windows:
        o = w.results["optimum"]
        p = w.results["planner"]
        print(f"{w.start:.0f} opt {o.lower_bound:7.2f} planner {p.cost:7.2f} x{p.cost / o.lower_bound:5.2f} "
              f"int {p.interruptions:3d} lost {p.restart_hours_lost:5.2f} done {p.completion_hours:6.1f}")
