"""`bidder demo`: the whole of bidder in half a minute, against its own emulator, no account needed.

    result = run_demo(seed=0, days=3.0, workdir=Path(tmp), say=print)

1. Starts the emulator in-process on a free port (real HTTP, virtual clock): RunPod's GraphQL API
   and Vast's REST API on the same server.
2. Collects `history_days` of price history of both markets through the real clients, 10 virtual
   minutes apart (one cycle, one request per market).
3. Shows the current prices of the demo job's GPU types and the optimizer's recommendation.
4. Runs a managed job open to both markets (`market = "any"`, a bidder.toml written in the work
   folder) with `bidder tick` cycles every 10 virtual minutes for `days`: launches, interruptions,
   podBidResume or Vast's pause and resume, waits, moves, on whichever market is cheaper.
5. Reports what it spent (the ledger, checked against the emulator's own billing of both markets)
   against running the same hours on-demand.
Everything goes through the same code as real use: collector, store, advisor, executor, tick.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from bidder.advisor import advise
from bidder.collector import RunPodSource, VastSource, collect_markets
from bidder.errors import ConfigError, Infeasible, InsufficientHistory
from bidder.executor import running_hours
from bidder.jobs import parse_config
from bidder.runpod import RetryPolicy, RunPodClient
from bidder.sim import Emulator
from bidder.store import Store
from bidder.tick import job_progress, run_tick
from bidder.units import to_iso
from bidder.vast import VastClient
from bidder.vast.summary import OfferFilters
from bidder.vast_pods import VastPodApi

__all__ = ["DEMO_GPUS", "DemoResult", "demo_config", "run_demo"]

DEMO_GPUS = ("NVIDIA RTX A6000", "NVIDIA GeForce RTX 4090", "NVIDIA A40")
#: The same cards on Vast (Vast's names): the demo job may run on either market.
DEMO_VAST_GPUS = ("RTX A6000", "RTX 4090")
_STEP = timedelta(minutes=10)


def demo_config(days: float) -> str:
    """The bidder.toml of the demo job: 24 GPU-hours of training, due by the end of the demo."""
    hours = round(min(24.0, days * 24 * 0.5), 1)
    gpus = ", ".join(f'"{g}"' for g in (*DEMO_GPUS, *DEMO_VAST_GPUS))
    return f"""# written by `bidder demo`
max_spend_per_hour = 2.0

[jobs.train]
gpu = [{gpus}]
market = "any"
hours = {hours:g}
deadline = "{days * 24:g}h"
tolerance = "high"
restart_overhead = "10m"
max_price = 0.6
budget = 20
image = "runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04"
on_finish = "terminate"
"""


@dataclass
class DemoResult:
    """What the demo did, for the CLI's last lines and for tests."""

    url: str
    history_snapshots: int
    ticks: int
    actions: dict[str, int] = field(default_factory=dict)
    interruptions: int = 0
    run_hours: float = 0.0
    work_hours: float = 0.0
    spent: float = 0.0
    billed: float = 0.0
    on_demand_cost: float = 0.0
    on_demand_price: float | None = None
    finished: bool = False
    pods: int = 0
    report: Path | None = None


def _validate(seed: int, days: float, history_days: float) -> None:
    if not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"--seed must be a whole number >= 0, got {seed!r}", key="seed")
    if not 0.25 <= days <= 14:
        raise ConfigError(f"--days must be between 0.25 and 14 (simulated days of ticks), got {days:g}", key="days")
    if not 0.5 <= history_days <= 14:
        raise ConfigError(f"--history-days must be between 0.5 and 14, got {history_days:g}", key="history_days")


def run_demo(*, seed: int = 0, days: float = 3.0, history_days: float = 2.0, workdir: Path,
             say: Callable[[str], None], report_dir: Path | None = None,
             progress: Callable[[int, int, str], None] | None = None, db_label: str | None = None) -> DemoResult:
    """Run the demo in `workdir` (its database and bidder.toml land there), narrating through `say`;
    with `report_dir`, end by writing the HTML cost report there (`DemoResult.report`), naming the
    database as `db_label` (default: its path)."""
    _validate(seed, days, history_days)
    with Emulator(seed=seed) as emu:
        retry = RetryPolicy(attempts=3, base=0.01, max_delay=0.05)
        with RunPodClient(api_key=emu.api_key, url=emu.url, retry=retry) as client, \
                VastClient(api_key=emu.api_key, url=emu.vast_url, retry=retry) as vast_client, \
                Store.open(workdir / "bidder.db") as store:
            vast = VastPodApi(vast_client, OfferFilters())
            store.clock = "emulator"  # every row below is stamped emu.now: `bidder report` in --keep DIR runs on it
            say(f"Emulator: RunPod's GraphQL API on {emu.url} (seed {seed}); virtual time {to_iso(emu.now)}")
            say(f"          Vast's REST API on {emu.vast_url} (same key, same clock)")
            snapshots = _collect_history(emu, client, vast, store, history_days)
            say(f"Collected {snapshots} price snapshots over {history_days:g} simulated days "
                f"({int(_STEP.total_seconds() // 60)} minutes apart) into {workdir / 'bidder.db'}")
            _show_prices(store, say)
            text = demo_config(days)
            (workdir / "bidder.toml").write_text(text)
            config = parse_config(tomllib.loads(text), str(workdir / "bidder.toml"))
            job = config.job("train")
            _show_recommendation(store, job.job_spec(emu.now), job.policy, emu, say)
            say(f"Managed job 'train' ({workdir / 'bidder.toml'}): {job.job.work_hours:g} GPU-hours within "
                f"{days * 24:g} h, tolerance high, max $0.60/GPU-h; `bidder tick` every "
                f"{int(_STEP.total_seconds() // 60)} minutes:")
            ticks = _run_ticks(emu, client, vast, store, config, days, say, progress)
            result = _report(emu, store, config, snapshots, ticks, say, emu.url)
            if report_dir is not None:
                # matplotlib loads only when a report is asked for
                from bidder.report.page import write_html_report

                page = write_html_report(store, report_dir, since=None, until=emu.now, now=emu.now,
                                         restart_overhead_hours={"train": job.job.restart_overhead_hours},
                                         db_label=db_label or str(workdir / "bidder.db"))
                result = replace(result, report=page)
            return result


def _collect_history(emu: Emulator, client: RunPodClient, vast: VastPodApi, store: Store, days: float) -> int:
    count = 0
    end = emu.now + timedelta(days=days)
    while emu.now < end:
        collect_markets([RunPodSource(client), VastSource(vast.client, vast.filters)], store, now=emu.now)
        count += 1
        emu.advance(_STEP.total_seconds())
    return count


def _show_prices(store: Store, say: Callable[[str], None]) -> None:
    say("Prices now (USD per GPU-hour):")
    say(f"  {'GPU type':26s} {'cloud':10s} {'spot floor':>10s} {'on-demand':>9s}  saving  market")
    for q in sorted((q for q in store.latest_quotes() if q.gpu_type_id in (*DEMO_GPUS, *DEMO_VAST_GPUS)
                     and q.gpu_count == 1), key=lambda q: (q.market, q.gpu_type_id, q.cloud)):
        if q.uninterruptable_price is None and q.minimum_bid_price is None:
            continue
        floor = "-" if q.minimum_bid_price is None else f"{q.minimum_bid_price:.3f}"
        od = "-" if q.uninterruptable_price is None else f"{q.uninterruptable_price:.3f}"
        saving = "" if q.spot_discount is None else f"{q.spot_discount * 100:.0f}%"
        say(f"  {q.gpu_type_id:26s} {q.cloud:10s} {floor:>10s} {od:>9s}  {saving:>6s}  {q.market}")


def _show_recommendation(store: Store, job: Any, policy: Any, emu: Emulator, say: Callable[[str], None]) -> None:
    try:
        decision, info = advise(store, job, policy, emu.now)
    except (Infeasible, InsufficientHistory) as exc:
        say(f"Recommendation: none ({exc})")
        return
    where = f"{decision.cloud}, {decision.market or 'runpod'}"
    what = (f"spot on {decision.gpu_type_id} ({where}) at ${decision.bid_per_gpu:.3f}/GPU-h"
            if decision.action == "spot" else
            f"on-demand {decision.gpu_type_id} ({where})" if decision.action == "on_demand" else
            f"wait (acts when {decision.act_when})" if decision.act_when else
            f"wait (acts at a floor of ${decision.act_below:.3f} or less)" if decision.act_below is not None else "wait")
    say(f"Recommendation ({info.samples} samples of history): {what}")
    for reason in decision.reasons:
        say(f"  {reason}")


_SHOWN = {"rent_spot": "rented spot", "deploy_on_demand": "deployed on-demand", "bid_resume": "podBidResume",
          "resume": "podResume", "stop": "stopped", "terminate": "terminated"}
_SHOWN_VAST = {**_SHOWN, "bid_resume": "raised the bid (change bid)", "resume": "started",
               "terminate": "destroyed"}


def _run_ticks(emu: Emulator, client: RunPodClient, vast: VastPodApi, store: Store, config: Any, days: float,
               say: Callable[[str], None], progress: Callable[[int, int, str], None] | None = None) -> int:
    start = emu.now
    ticks = 0
    last_state = None
    waiting = [False]  # say "waiting" once per wait, not at every tick of it

    def stamp() -> str:
        return f"  +{(emu.now - start).total_seconds() / 3600:5.1f} h"

    def hear(event: dict[str, Any]) -> None:
        kind = event["event"]
        on_vast = event.get("market") == "vast"
        if kind in _SHOWN and event.get("outcome") == "ok":
            bid = f" at ${event['bid_per_gpu']:.3f}/GPU-h" if event.get("bid_per_gpu") else ""
            where = f"{event.get('cloud')}, vast" if on_vast else f"{event.get('cloud')}"
            gpu = f" {event['gpu_type']} ({where})" if event.get("gpu_type") else ""
            shown = (_SHOWN_VAST if on_vast else _SHOWN)[kind]
            say(f"{stamp()}  {shown}{gpu}{bid}" + (f"  [{event['pod_id']}]" if event.get("pod_id") else ""))
        elif kind == "resumed":
            say(f"{stamp()}  resumed on Vast by itself (its bid is the highest again)")
        elif kind == "interrupted" and on_vast:
            say(f"{stamp()}  interrupted on Vast (outbid: paused, resumes by itself when its bid is the highest)")
        elif kind == "interrupted":
            text = event.get("message") or ""
            why = text.split(":", 1)[1].split(" at ", 1)[0].strip() if ":" in text else "stopped by RunPod"
            say(f"{stamp()}  interrupted ({why})")
        elif kind == "wait" and event.get("act_below") is not None and not waiting[0]:
            waiting[0] = True
            say(f"{stamp()}  waiting: acts when "
                + (event.get("act_when") or f"the spot floor is at or below ${event['act_below']:.3f}"))
        elif kind == "wait" and not waiting[0]:
            waiting[0] = True
            say(f"{stamp()}  waiting: {event.get('message')}")
        elif kind in ("moved", "spot_unsupported", "adopted"):
            say(f"{stamp()}  {event.get('message')}")
        if kind in _SHOWN:
            waiting[0] = False

    end = start + timedelta(days=days)
    while emu.now < end:
        report = run_tick(client, store, config, emu.now, events=hear, vast=vast)
        ticks += 1
        if progress is not None:
            progress(ticks, int(days * 86400 // _STEP.total_seconds()), "simulated ticks")
        job = report.jobs[0]
        if job.state != last_state and job.state in ("finished", "budget_stopped", "held"):
            say(f"{stamp()}  {job.state}: {job.message}")
        last_state = job.state
        if job.state == "finished":
            break
        emu.advance(_STEP.total_seconds())
    return ticks


def _report(emu: Emulator, store: Store, config: Any, snapshots: int, ticks: int, say: Callable[[str], None],
            url: str) -> DemoResult:
    job = config.job("train")
    work, spent, interruptions = job_progress(store, job, save=False)
    pods = store.managed_pods("train")
    observations = {p["pod_id"]: store.observations(p["pod_id"]) for p in pods}
    run_hours = sum(running_hours(o) for o in observations.values())
    billed = sum(emu.vast.true_spend(int(p["pod_id"])) if p.get("market") == "vast" else emu.world.true_spend(p["pod_id"])
                 for p in pods)
    od_prices = [q.uninterruptable_price for q in store.latest_quotes()
                 if q.gpu_type_id in (*DEMO_GPUS, *DEMO_VAST_GPUS) and q.gpu_count == 1 and q.uninterruptable_price]
    od_price = min(od_prices) if od_prices else None
    # On-demand does the same work without interruptions: the work done, at the cheapest on-demand price.
    od_cost = (od_price or 0.0) * work
    actions: dict[str, int] = {}
    for a in store.actions("train"):
        if a["outcome"] == "ok":
            actions[a["kind"]] = actions.get(a["kind"], 0) + 1
    state = (store.job_state("train") or {}).get("state")
    result = DemoResult(url=url, history_snapshots=snapshots, ticks=ticks, actions=actions,
                        interruptions=interruptions, run_hours=run_hours, work_hours=work, spent=spent, billed=billed,
                        on_demand_cost=od_cost, on_demand_price=od_price, finished=state == "finished",
                        pods=len(pods))
    say("Spend report:")
    by_market: dict[str, int] = {}
    for p in pods:
        by_market[p.get("market") or "runpod"] = by_market.get(p.get("market") or "runpod", 0) + 1
    say(f"  {ticks} ticks, {len(pods)} pod(s) ({', '.join(f'{n} on {m}' for m, n in sorted(by_market.items()))}), "
        f"{interruptions} interruption(s); actions: " + ", ".join(f"{k} {v}" for k, v in sorted(actions.items())))
    say(f"  ran {run_hours:.2f} h, useful work {work:.2f} of {job.job.work_hours:g} h"
        + (" (finished)" if result.finished else " (not finished)"))
    say(f"  spent ${spent:.2f} by the ledger; the emulator billed ${billed:.2f}")
    if od_price is not None and od_cost > 0:
        saving = 1 - spent / od_cost
        say(f"  the same {work:.2f} h of work on-demand (no interruptions) at ${od_price:.3f}/h, the cheapest "
            f"of these types: ${od_cost:.2f}; bidder {'saved' if saving >= 0 else 'paid'} {abs(saving) * 100:.0f}%"
            + (" more" if saving < 0 else ""))
    # The cost report measures differently; say its figure too, so the page and this line agree.
    from bidder.report.data import spend_report

    t = spend_report(store, None, emu.now, job="train").totals
    if t.on_demand_cost and t.saving is not None:
        say(f"  the cost report's measure (each pod's {t.hours:.2f} running hours, restarts included, at its own "
            f"market's on-demand price): ${t.on_demand_cost:.2f}; {'saved' if t.saving >= 0 else 'paid'} "
            f"{abs(t.saving_pct or 0.0):.0f}%" + (" more" if t.saving < 0 else ""))
    return result
