"""Do bidder's backtest decisions stay the same? The guard of every speed change.

    python3 analysis/benchmarks/check_decisions.py --save /tmp/before.json   # on the commit before
    python3 analysis/benchmarks/check_decisions.py --check /tmp/before.json  # after: exit 1 on any change
    python3 analysis/benchmarks/check_decisions.py --check analysis/results/decisions.json

Replays the `bidder` strategy through `run_backtest` on fixed cases and records, per window, every
action it returned (time, kind, market, bid: the bid's exact float) and the window's metrics (cost,
work, interruptions, ... as exact floats). The cases:

    sim-1     data/traces/sim-seed1-14d.csv, RTX 4090 COMMUNITY, 30 h batch job, 3-day deadline, every 12 h
    sim-4     the same trace, RTX 4090 + A100 80GB PCIe, both clouds (4 markets), same job
    sim-keep  the same trace, RTX 4090 COMMUNITY, kept running 4 days, every 2 days
    aws-1a    data/aws-g2-2016-us-east-1ac.csv (or --aws FILE; the README's "Results" says how to make it), the first 40 days of
              us-east-1a: 100 h batch job, 7-day deadline, every 3.5 days
    aws-2     the same slice, us-east-1a and us-east-1c, same job

A missing AWS trace skips its cases (said so). `--check` compares case by case, bit for bit (the
logs' SHA-256 and the metrics), prints the first differing action, and exits 1 on any difference.
`analysis/results/decisions.json` (saved with --no-logs: hashes and metrics only) holds the record of
the optimizer with plans (issue 11: the decisions of 3d88c31, whose rates spend the tolerance as a
budget, whose floor models learn a daily cycle where there is one and whose jobs on several markets
also plan them as one pool; saved again for pass 9, whose plans price an interruption by the tolerance's
budget where it binds, for pass 10, whose budget keeps what quiet days saved, spent with a margin, and for
pass 11, whose budget's price grid runs on to 24 hours of on-demand, and for the plan's margin before it
ends a running on-demand pod to wait, 7a7a966: sim-1 +0.44%, sim-4 +0.57%, the rest the same); every
speed commit after it checks against it, and a change of the model saves a new one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bidder.backtest import BacktestJob, load_trace, run_backtest
from bidder.backtest.engine import strategy_factory
from bidder.backtest.strategies import Action, RunState
from bidder.backtest.types import HistoryView, Market
from bidder.models import JobSpec, Policy

ROOT = Path(__file__).resolve().parents[2]
SIM = ROOT / "data" / "traces" / "sim-seed1-14d.csv"
AWS = ROOT / "data" / "aws-g2-2016-us-east-1ac.csv"  # where the README says to save it (not shipped)
DAY = 86400.0


class _Logged:
    """Wraps a strategy; appends (now, kind, market, bid) of each action to `log`."""

    def __init__(self, inner: Any, log: list[list[Any]]) -> None:
        self.inner, self.log, self.name = inner, log, inner.name

    def decide(self, view: HistoryView, state: RunState) -> Action:
        action = self.inner.decide(view, state)
        self.log.append([view.now, action.kind, action.market, None if action.bid is None else action.bid.hex()])
        return action


def _case(trace: Path, gpus: Sequence[str], job: BacktestJob, every_hours: float, days: float | None = None,
          ) -> dict[str, Any]:
    history = load_trace(trace)
    if days is not None:
        history = history.between(None, float(history.ts[0]) + days * DAY)
    markets = [m for m in history.markets if any(g in m.gpu_type_id for g in gpus)]
    job = BacktestJob(**{**job.__dict__, "gpu_types": tuple(sorted({m.gpu_type_id for m in markets}))})
    logs: list[list[list[Any]]] = []
    inner = strategy_factory("bidder")

    def factory(ms: Sequence[Market], spec: JobSpec, policy: Policy) -> _Logged:
        logs.append([])
        return _Logged(inner(ms, spec, policy), logs[-1])

    report = run_backtest(history, job, Policy(tolerance=2.0), ["bidder"], every_hours=every_hours,
                          factories={"bidder": factory}, record_window=None)
    windows = []
    for w, log in zip(report.windows, logs, strict=True):
        r = w.results["bidder"]
        metrics = {k: (v.hex() if isinstance(v, float) else v) for k, v in
                   (("cost", r.cost), ("work_hours", r.work_hours), ("deadline_met", r.deadline_met),
                    ("interruptions", r.interruptions), ("restart_hours_lost", r.restart_hours_lost),
                    ("completion_hours", r.completion_hours), ("peak_rate", r.peak_rate),
                    ("failed_starts", r.failed_starts), ("decisions", r.decisions), ("switches", r.switches))}
        digest = hashlib.sha256(json.dumps(log).encode()).hexdigest()
        windows.append({"start": w.start, "cost": r.cost, "metrics": metrics, "log_sha256": digest,
                        "log": log})
    return {"markets": len(report.history.markets), "windows": windows}


def cases(aws: Path) -> dict[str, dict[str, Any]]:
    batch = BacktestJob(work_hours=30, deadline_hours=72, restart_overhead_hours=0.25)
    out = {
        "sim-1": _case(SIM, ["RTX 4090"], BacktestJob(**{**batch.__dict__, "cloud": "COMMUNITY"}), 12),
        "sim-4": _case(SIM, ["RTX 4090", "A100 80GB PCIe"], batch, 12),
        "sim-keep": _case(SIM, ["RTX 4090"], BacktestJob(work_hours=None, deadline_hours=None,
                                                         keep_running_hours=96, cloud="COMMUNITY"), 48),
    }
    if aws.exists():
        aws_job = BacktestJob(work_hours=100, deadline_hours=168, restart_overhead_hours=0.25)
        out["aws-1a"] = _case(aws, ["us-east-1a"], aws_job, 84, days=40)
        out["aws-2"] = _case(aws, ["us-east-1a", "us-east-1c"], aws_job, 84, days=40)
    else:
        print(f"{aws} not found: the AWS cases are skipped", file=sys.stderr)
    return out


def compare(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    problems = []
    for name, case in before.items():
        if name not in after:
            problems.append(f"{name}: not run now")
            continue
        now = after[name]
        if len(case["windows"]) != len(now["windows"]):
            problems.append(f"{name}: {len(case['windows'])} windows before, {len(now['windows'])} now")
            continue
        for w, (a, b) in enumerate(zip(case["windows"], now["windows"], strict=True)):
            if a["metrics"] != b["metrics"]:
                problems.append(f"{name} window {w}: metrics {a['metrics']} before, {b['metrics']} now")
            if a["log_sha256"] != b["log_sha256"] and "log" not in a:
                problems.append(f"{name} window {w}: the action log differs (record saved without logs)")
            elif a["log_sha256"] != b["log_sha256"]:
                first = next((k for k, (x, y) in enumerate(zip(a["log"], b["log"], strict=False)) if x != y),
                             min(len(a["log"]), len(b["log"])))
                x = a["log"][first] if first < len(a["log"]) else None
                y = b["log"][first] if first < len(b["log"]) else None
                problems.append(f"{name} window {w}: action {first} was {x}, now {y}")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--save", type=Path, help="write the record here")
    parser.add_argument("--check", type=Path, help="compare with this record; exit 1 on any difference")
    parser.add_argument("--aws", type=Path, default=AWS, help="the AWS 2016 trace")
    parser.add_argument("--no-logs", action="store_true",
                        help="save only the logs' SHA-256 and the metrics (a small record; a difference is "
                             "then reported by window, without the first differing action)")
    args = parser.parse_args()
    record = cases(args.aws)
    for name, case in record.items():
        decisions = sum(len(w["log"]) for w in case["windows"])
        cost = sum(w["cost"] for w in case["windows"])
        print(f"{name:<9} {case['markets']} market(s), {len(case['windows'])} windows, {decisions:,} decisions, "
              f"total cost {cost:.6f}")
    if args.save:
        saved = record if not args.no_logs else {
            name: {**case, "windows": [{k: v for k, v in w.items() if k != "log"} for w in case["windows"]]}
            for name, case in record.items()}
        args.save.write_text(json.dumps(saved, indent=None if not args.no_logs else 1))
        print(f"saved to {args.save}")
    if args.check:
        problems = compare(json.loads(args.check.read_text()), record)
        for line in problems[:20]:
            print(line)
        if problems:
            print(f"DIFFERENT: {len(problems)} difference(s) from {args.check}")
            sys.exit(1)
        print(f"identical to {args.check}: every action and metric, bit for bit")


if __name__ == "__main__":
    main()
