"""Cost-report charts (matplotlib, Agg). Each function takes `ax=None`, returns the figure and never
shows it; the caller saves and closes it.

    series = price_chart_data(store, ["NVIDIA RTX A6000"], since=..., until=...)
    fig = price_chart(series, track=pod_track(store, "abc123"))    # floor + on-demand, bid and interruptions
    fig = spend_chart(spend_report(store, since, until))            # cumulative spend per job vs on-demand
    fig.savefig("spend.png", dpi=120)

(Backtest charts live in `bidder.backtest.charts`.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # before pyplot: charts are files, never windows

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from bidder.report.data import PodTrack, SpendReport
    from bidder.store import FloorSeries

__all__ = ["price_chart", "spend_chart"]

_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
_INTERRUPTION = "#d62728"


def _axes(ax: Axes | None, size: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax  # type: ignore[return-value]
    fig, new_ax = plt.subplots(figsize=size)
    return fig, new_ax


def _dates(epoch: np.ndarray | Sequence[float]) -> np.ndarray:
    """Epoch seconds as datetime64 (what matplotlib's date axis reads)."""
    return np.round(np.asarray(epoch, dtype=float)).astype("int64").astype("datetime64[s]")


def _date_axis(ax: Axes) -> None:
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlabel("time (UTC)")


def _label(gpu_type_id: str, names: Mapping[str, str | None] | None) -> str:
    name = (names or {}).get(gpu_type_id) or gpu_type_id
    return name.removeprefix("NVIDIA ")


def _span(epochs: Sequence[float]) -> str:
    if not epochs:
        return ""
    first, last = _dates([min(epochs), max(epochs)])
    return f"{str(first)[:16].replace('T', ' ')} to {str(last)[:16].replace('T', ' ')} UTC"


def _bid_line(track: PodTrack, end: float) -> tuple[list[float], list[float]]:
    """Each bid held from when it was placed until the next bid, an interruption, or `end`; a gap
    (NaN) from an interruption to the next bid, when the pod was not bidding."""
    xs: list[float] = []
    ys: list[float] = []
    for i, (t, bid) in enumerate(zip(track.bid_ts, track.bids, strict=True)):
        stop = track.bid_ts[i + 1] if i + 1 < len(track.bid_ts) else max(end, t)
        cut = [x for x in track.interruptions if t <= x < stop]
        finish = cut[0] if cut else stop
        xs += [t, finish, finish]
        ys += [bid, bid, float("nan") if cut else bid]
    return xs, ys


def price_chart(series: Sequence[FloorSeries], track: PodTrack | None = None,
                names: Mapping[str, str | None] | None = None, ax: Axes | None = None) -> Figure:
    """Spot floor (solid steps) and on-demand price (dashed) of each market over time, USD per
    GPU-hour; gaps in the floor are times without spot capacity. With `track`, a managed pod's bid
    (black steps) and its interruptions (red x on the bid). `names` maps GPU type ids to labels."""
    if not series and track is None:
        raise ValueError("price_chart needs at least one market series or a pod track")
    fig, ax = _axes(ax, (10, 5.5))
    clouds = {s.cloud for s in series}
    spans: list[float] = []
    for k, s in enumerate(series):
        color = _PALETTE[k % len(_PALETTE)]
        label = _label(s.gpu_type_id, names) + (f" {s.cloud.lower()}" if len(clouds) > 1 else "")
        if s.gpu_count != 1:
            label += f" x{s.gpu_count}"
        x = _dates(s.ts)
        ax.plot(x, s.floor, drawstyle="steps-post", color=color, lw=1.3, label=f"{label} floor")
        if not np.all(np.isnan(s.on_demand)):
            ax.plot(x, s.on_demand, drawstyle="steps-post", color=color, lw=1.0, ls="--", alpha=0.8,
                    label=f"{label} on-demand")
        spans += [float(s.ts[0]), float(s.ts[-1])]
    if track is not None and track.bids:
        end = track.end if track.end is not None else (max(spans) if spans else track.bid_ts[-1])
        bid_x, bid_y = _bid_line(track, end)
        ax.plot(_dates(bid_x), bid_y, color="black", lw=1.6, label=f"pod {track.pod_id} bid")
        if track.interruptions:
            # the bid in force then: the last one at or before each interruption
            idx = np.clip(np.searchsorted(track.bid_ts, track.interruptions, side="right") - 1, 0, None)
            at = np.asarray(track.bids)[idx]
            ax.plot(_dates(track.interruptions), at, "x", color=_INTERRUPTION, ms=8, mew=2,
                    label=f"interrupted ({len(track.interruptions)})")
        spans += [track.bid_ts[0], end]
    ax.set_title(f"Spot floor (solid) and on-demand (dashed), USD per GPU-hour\n{_span(spans)}", fontsize=10)
    ax.set_ylabel("USD per GPU-hour")
    ax.set_ylim(bottom=0)
    _date_axis(ax)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    return fig


def spend_chart(report: SpendReport, ax: Axes | None = None) -> Figure:
    """USD spent over the report's period, cumulative, per job (solid) against what the same
    running hours would have cost on-demand (dashed); interruptions marked x on the spend line."""
    jobs = [j for j in report.jobs if j.curve]
    if not jobs:
        raise ValueError("spend_chart: no pod ran in the report's period")
    fig, ax = _axes(ax, (10, 5.5))
    spans: list[float] = []
    for k, job in enumerate(jobs):
        color = _PALETTE[k % len(_PALETTE)]
        t, spent, on_demand = (np.array(col) for col in zip(*job.curve, strict=True))
        x = _dates(t)
        # "USD", not "$": matplotlib reads $...$ as mathematics
        label = f"{job.job}: USD {job.spend:,.2f}"
        if job.on_demand_cost is not None and job.saving_pct is not None:
            label += f" (on-demand USD {job.on_demand_cost:,.2f}, saved {round(job.saving_pct) + 0}%)"
        ax.plot(x, spent, color=color, lw=1.8, label=label)
        if job.on_demand_cost is not None:
            ax.plot(x, on_demand, color=color, lw=1.2, ls="--", alpha=0.8, label=f"{job.job} at on-demand prices")
        if job.interruption_times:
            when = np.array([w.timestamp() for w in job.interruption_times])
            ax.plot(_dates(when), np.interp(when, t, spent), "x", color=_INTERRUPTION, ms=7, mew=1.8,
                    label=f"{job.job} interrupted ({len(when)})")
        spans += [float(t[0]), float(t[-1])]
    ax.set_title(f"Cumulative spend per job (solid) vs on-demand (dashed)\n{_span(spans)}", fontsize=10)
    ax.set_ylabel("USD")
    ax.set_ylim(bottom=0)
    _date_axis(ax)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig
