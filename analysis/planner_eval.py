"""Prototype evaluation: planner cost / optimum lower bound per window, optimum cached on disk."""
import json, os, sys, time, hashlib
sys.path.insert(0, os.path.dirname(__file__))
import numpy as np
import planner_proto as pp
from bidder.backtest.engine import BacktestJob, load_trace, run_backtest, window_starts, optimum
from bidder.models import Policy

CACHE = "/tmp/optcache"
os.makedirs(CACHE, exist_ok=True)

def evaluate(trace, gpus, tolerance=6.0, every=84, extra=(), **params):
    h = load_trace(trace)
    sel = []
    for g in gpus:
        sel += [m.gpu_type_id for m in h.markets if g in m.gpu_type_id or g in (m.display_name or "")]
    sel = tuple(dict.fromkeys(sel)) or tuple(dict.fromkeys(m.gpu_type_id for m in h.markets))
    job = BacktestJob(gpu_types=sel, work_hours=100, deadline_hours=168, restart_overhead_hours=0.25)
    key = hashlib.md5(f"{trace}|{sel}|{every}".encode()).hexdigest()
    path = f"{CACHE}/{key}.json"
    fac = pp.PlannerFactory(work_h=100, deadline_h=168, restart_h=0.25, **params)
    names = ["planner", *extra]
    rep = run_backtest(h, job, Policy(tolerance=tolerance), names, every_hours=every, factories={"planner": fac},
                       record_window=None)
    if os.path.exists(path):
        lows = json.load(open(path))
    else:
        hs = h.select(job)
        lows = [optimum(hs, job, int(np.searchsorted(hs.ts, w.start)))[0].lower_bound for w in rep.windows]
        json.dump(lows, open(path, "w"))
    out = {}
    for name in names:
        r = [w.results[name] for w in rep.windows]
        x = np.array([x.cost / lo for x, lo in zip(r, lows)])
        out[name] = dict(mean=round(float(x.mean()), 3), worst=round(float(x.max()), 3),
                         met=float(np.mean([x.deadline_met for x in r])),
                         ipd=round(float(np.mean([x.interruptions for x in r])) / 7, 2))
    return out

if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("trace"); ap.add_argument("--gpu", action="append", default=[])
    ap.add_argument("--tolerance", type=float, default=6.0)
    ap.add_argument("--every", type=float, default=84)
    ap.add_argument("--extra", default="")
    ap.add_argument("--p", action="append", default=[], help="name=value")
    a = ap.parse_args()
    params = {k: float(v) for k, v in (s.split("=") for s in a.p)}
    t = time.time()
    res = evaluate(a.trace, a.gpu, a.tolerance, a.every, [x for x in a.extra.split(",") if x], **params)
    print(os.path.basename(a.trace), a.gpu, a.p, json.dumps(res), f"{time.time()-t:.0f}s")
