"""Study: the pay-as-bid trade-off on one market, with the optimizer's choice marked.

    python3 analysis/study_bid_tradeoff.py                      # the public AWS trace if present
    python3 analysis/study_bid_tradeoff.py --trace data/traces/sim-seed1-14d.csv --gpu "NVIDIA RTX A6000"
    python3 analysis/study_bid_tradeoff.py --at 2016-09-01T00:00:00Z --out analysis/results/study_bid_tradeoff.png

At one moment of a trace, from the history up to it (`bidder.market.market_stats`), it plots against
the bid b:
  1. availability A(b), and the share of time beyond a settling age (what a "wait for calm" plan gets);
  2. interruptions per running day: the outbid rate seen (point), its upper bound with the reclaim
     prior (what the optimizer uses), and the hazard once the floor has stayed under b for an hour;
  3. expected cost per useful hour c(b) = b / (1 - λ(b)·r) for the plain and the settled hazard,
     against the on-demand price,
and marks the current floor and what `bidder.optimizer.decide` chose for a 100 GPU-hour job with a
7-day deadline (the bid, or for `wait` the price it waits for). The figure shows why bidding the
floor loses (λ explodes just above it) and why the old advice to bid on-demand loses under
pay-as-bid (you pay every cent of the bid).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from study_inputs import StudyError, run_script

from bidder.market import MarketStats, market_stats
from bidder.models import Decision, JobSpec, Policy, PriceQuote
from bidder.optimizer import decide
from bidder.traces import read_trace
from bidder.units import parse_timestamp, to_iso

__all__ = ["plot_tradeoff", "study"]

AWS_TRACE = Path(__file__).resolve().parent.parent / "data" / "aws-g2-2016-us-east-1ac.csv"  # where the README says to save it
SHIPPED_TRACE = Path(__file__).resolve().parent.parent / "data" / "traces" / "sim-seed1-14d.csv"
OUT = Path(__file__).resolve().parent / "results" / "study_bid_tradeoff.png"


class _Series:
    """One market's arrays in the shape `market_stats` reads (a FloorSeries without the store)."""

    def __init__(self, quotes: list[PriceQuote]) -> None:
        quotes = sorted(quotes, key=lambda q: q.ts)
        self.ts = np.array([q.ts.timestamp() for q in quotes])
        self.floor = np.array([np.nan if q.minimum_bid_price is None else q.minimum_bid_price for q in quotes])
        self.on_demand = np.array([np.nan if q.uninterruptable_price is None else q.uninterruptable_price
                                   for q in quotes])
        self.gpu_type_id, self.cloud, self.gpu_count = quotes[0].gpu_type_id, quotes[0].cloud, quotes[0].gpu_count


def study(trace: Path, gpu: str | None, at: datetime | None, restart_overhead_hours: float = 0.25,
          tolerance: float = 2.0) -> tuple[dict[tuple[str, str, int], MarketStats], list[PriceQuote], Decision,
                                           datetime, JobSpec]:
    """Statistics of every market of `trace` (or of `gpu`) at `at`, and the optimizer's decision there."""
    quotes = read_trace(trace)
    markets: dict[tuple[str, str, int], list[PriceQuote]] = {}
    for q in quotes:
        if gpu is None or q.gpu_type_id == gpu:
            markets.setdefault((q.gpu_type_id, q.cloud, q.gpu_count), []).append(q)
    if not markets:
        raise SystemExit(f"no GPU type {gpu!r} in {trace}")
    end = max(q.ts for qs in markets.values() for q in qs)
    now = at or end
    stats, current = {}, []
    for key, qs in markets.items():
        past = [q for q in qs if q.ts <= now]
        stats[key] = market_stats(_Series(past), now.timestamp())
        current.append(max(past, key=lambda q: q.ts))
    job = JobSpec(gpu_types=tuple(k[0] for k in markets), work_hours=100.0, deadline=now + timedelta(days=7),
                  restart_overhead_hours=restart_overhead_hours)
    decision = decide(job, Policy(tolerance=tolerance), current, stats, now)
    return stats, current, decision, now, job


def plot_tradeoff(stats: MarketStats, quote: PriceQuote, decision: Decision, r: float,
                  axes: Any = None) -> plt.Figure:
    """The three panels for one market; returns the figure (never shows it)."""
    if axes is None:
        fig, axes = plt.subplots(3, 1, figsize=(8.5, 10), sharex=True)
    else:
        fig = axes[0].figure
    od = quote.uninterruptable_price or float(stats.bids[-1])
    keep = stats.bids <= 1.5 * od
    b = stats.bids[keep]
    hour = int(np.searchsorted(stats.age_edges_hours, 1.0 - 1e-9))
    settled_share = stats.exposure_by_age[keep, hour] / max(stats.observed_hours, 1e-9)
    lam = stats.interruption_rate[keep]
    lam_settled = stats.hazard_by_age[keep, hour]
    ax1, ax2, ax3 = axes
    ax1.plot(b, stats.availability[keep], label="A(b): share of time floor <= b")
    ax1.plot(b, settled_share, "--", label=f"share of time after {stats.age_edges_hours[hour] * 60:.0f} min of calm")
    ax1.set_ylabel("availability")
    ax1.set_ylim(0, 1.02)
    ax2.plot(b, 24 * np.minimum(stats.outbid_rate[keep], 1e3), ":", label="outbids seen per running day (point)")
    ax2.plot(b, 24 * lam, label="λ(b): upper bound + reclaim prior (used)")
    ax2.plot(b, 24 * lam_settled, "--", label="λ(b | calm >= 80 min)")
    ax2.set_yscale("log")
    ax2.set_ylim(0.05, 500)
    ax2.set_ylabel("interruptions per running day")
    with np.errstate(divide="ignore", invalid="ignore"):
        cost = np.where(lam * r < 1, b / (1 - lam * r), np.nan)
        cost_settled = np.where(lam_settled * r < 1, b / (1 - lam_settled * r), np.nan)
    ax3.plot(b, cost, label="c(b) = b / (1 - λ(b)·r)")
    ax3.plot(b, cost_settled, "--", label="c(b) after the floor settles")
    ax3.axhline(od, color="grey", lw=1, label=f"on-demand ${od:.3f}")
    ax3.set_ylabel("USD per useful GPU-hour")
    ax3.set_xlabel("bid b (USD per GPU-hour)")
    ax3.set_ylim(0, 1.1 * od)
    ax3.set_xlim(0, 1.05 * od)  # above on-demand only spikes live; nobody should bid there
    for ax in axes:
        if quote.minimum_bid_price is not None:
            ax.axvline(quote.minimum_bid_price, color="tab:red", lw=1, ls=":", label="floor now")
        ax.grid(alpha=0.3)
    same_market = decision.gpu_type_id == quote.gpu_type_id and decision.cloud == quote.cloud
    if same_market and decision.action == "spot" and decision.bid_per_gpu is not None:
        mark, text = decision.bid_per_gpu, f"bidder: spot at ${decision.bid_per_gpu:.3f}"
    elif same_market and decision.action == "wait" and decision.act_below is not None:
        mark, text = decision.act_below, f"bidder: wait for the floor under ${decision.act_below:.3f}"
    else:
        mark, text = None, f"bidder: {decision.action} on {decision.gpu_type_id} ({decision.cloud})"
    if mark is not None:
        for ax in axes:
            ax.axvline(mark, color="tab:green", lw=2, alpha=0.7, label=text)
        ax3.plot([mark], [decision.expected_cost_per_hour], "o", color="tab:green")
    ax1.set_title(f"{quote.gpu_type_id} ({quote.cloud}) at {to_iso(quote.ts)}: {text}", fontsize=10)
    for ax in axes:
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", type=Path, default=AWS_TRACE if AWS_TRACE.exists() else SHIPPED_TRACE)
    parser.add_argument("--gpu", default=None, help="GPU type (default: every one in the trace, plot the chosen)")
    parser.add_argument("--at", default=None, help="ISO time of the decision (default: a calm moment, or the end)")
    parser.add_argument("--restart-overhead-min", type=float, default=15.0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    try:
        parsed = parse_timestamp(args.at) if args.at else None
    except ValueError as exc:
        raise StudyError(f"--at: {exc}") from None
    at = parsed if args.at else (
        datetime(2016, 9, 6, 12, tzinfo=UTC) if args.trace == AWS_TRACE else None)
    r = args.restart_overhead_min / 60
    stats, quotes, decision, now, _job = study(args.trace, args.gpu, at, r)
    key = (decision.gpu_type_id, decision.cloud, decision.gpu_count)
    if key not in stats:
        key = next(iter(stats))
    quote = next(q for q in quotes if (q.gpu_type_id, q.cloud, q.gpu_count) == key)
    fig = plot_tradeoff(stats[key], quote, decision, r)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    st = stats[key]
    print(f"{args.trace.name} at {to_iso(now)}: {decision.action} {decision.gpu_type_id} ({decision.cloud})"
          f" bid={decision.bid_per_gpu} act_below={decision.act_below}")
    print(f"  expected ${decision.expected_cost_per_hour:.4f}/useful h, "
          f"{decision.expected_interruptions_per_day:.2f} interruptions/day; {decision.reasons[0]}")
    for b in (quote.minimum_bid_price, decision.bid_per_gpu or decision.act_below, quote.uninterruptable_price):
        if b:
            s = st.summary(b)
            print(f"  at ${s['bid']:.3f}: A={s['availability']:.2f}, {s['interruptions_per_day']:.1f} "
                  f"interruptions/running day, mean run {s['mean_run_hours']:.1f} h, "
                  f"mean wait {s['mean_wait_hours']:.1f} h")
    print(f"  history: {st.samples} samples over {st.span_hours / 24:.1f} days; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_script("study_bid_tradeoff", main))
