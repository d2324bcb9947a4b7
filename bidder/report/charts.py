"""Cost-report charts (matplotlib, Agg). Each function takes `ax=None`, returns the figure and never
shows it; the caller saves and closes it.

    series = price_chart_data(store, ["NVIDIA RTX A6000"], since=..., until=...)
    fig = price_chart(series, track=pod_track(store, "abc123"))    # floor + on-demand, bid and interruptions
    fig = spend_chart(spend_report(store, since, until))            # cumulative spend per job vs on-demand
    fig = market_chart(store.price_buckets(...), [pod_track(...)])   # one market, bidder's bids on top
    fig = discount_heatmap(*store.discount_by_hour_of_week(...))    # when spot is cheapest
    fig = bid_tradeoff_chart(market_stats(series), last_bid=0.31)   # availability and interruptions vs bid
    fig.savefig("spend.png", dpi=120)

The charts of one market share one colour per meaning (`FLOOR`, `ON_DEMAND`, `BID`,
`INTERRUPTION`) and one line style per meaning (floor solid, on-demand dashed, bid thick black
steps, a paused Vast instance's standing bid black dots, interruptions x markers), and label what
they draw, so they read in grey print too.

(Backtest charts live in `bidder.backtest.charts`.)
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # before pyplot: charts are files, never windows

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from bidder.models import MARKET_NAMES

if TYPE_CHECKING:
    from bidder.market import MarketStats
    from bidder.report.data import PodTrack, SpendReport
    from bidder.store import FloorSeries, PriceBuckets

__all__ = ["BID", "FLOOR", "INTERRUPTION", "ON_DEMAND", "bid_tradeoff_chart", "discount_heatmap", "market_chart",
           "png_bytes", "price_chart", "spend_chart"]

#: One colour per meaning, the same in every chart of one market.
FLOOR = "#1f77b4"
ON_DEMAND = "#6b6b6b"
BID = "#000000"
INTERRUPTION = "#d62728"
_MAX_CURVE_POINTS = 2000
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

#: A paused Vast instance's standing bid: dense black dots (on-demand is grey dashes).
_PAUSED = (0, (1, 1))

_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")


def png_bytes(fig: Figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes; the figure is closed (its memory freed) either way."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return buffer.getvalue()


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


def _bid_spans(track: PodTrack, end: float) -> list[tuple[float, float, float, bool, bool]]:
    """The pod's bid in force over time: (start, stop, bid, paused, cut) per stretch, oldest first.

    Each bid holds from when it was placed until the next bid or `end`. On RunPod an interruption
    ends it (the pod exits; a resume is a new bid). On Vast an outbid instance is paused and its bid
    stands: the bid holds through the pause (`paused` from the interruption until the pod is seen
    running again) until bidder stops, destroys or re-bids it. `cut`: the stretch ends without a new
    bid taking over at once (a gap follows, or a paused stretch of the same bid)."""
    vast = track.market == "vast"
    spans: list[tuple[float, float, float, bool, bool]] = []
    for i, (t, bid) in enumerate(zip(track.bid_ts, track.bids, strict=True)):
        stop = track.bid_ts[i + 1] if i + 1 < len(track.bid_ts) else max(end, t)
        if not vast:
            cut = [x for x in track.interruptions if t <= x < stop]
            spans.append((t, cut[0] if cut else stop, bid, False, bool(cut)))
            continue
        ended = [x for x in track.stops if t <= x < stop]
        finish = ended[0] if ended else stop
        again = track.running_again or (None,) * len(track.interruptions)
        pauses: list[list[float]] = []  # [from, to] merged, inside [t, finish]
        for x, back in sorted(zip(track.interruptions, again, strict=True), key=lambda p: p[0]):
            if not t <= x < finish:
                continue
            to = finish if back is None else min(max(back, x), finish)
            if pauses and x <= pauses[-1][1]:
                pauses[-1][1] = max(pauses[-1][1], to)
            else:
                pauses.append([x, to])
        at, before = t, len(spans)
        for a, b in pauses:
            if a > at:
                spans.append((at, a, bid, False, True))
            spans.append((a, b, bid, True, True))
            at = b
        if at < finish or len(spans) == before:
            spans.append((at, finish, bid, False, bool(ended)))
    return spans


def _steps(spans: Sequence[tuple[float, float, float, bool, bool]], paused: bool) -> tuple[list[float], list[float]]:
    """x and y of the running (or the paused) stretches as one line: each bid level, NaN after a cut."""
    xs: list[float] = []
    ys: list[float] = []
    for start, stop, bid, is_paused, cut in spans:
        if is_paused == paused:
            xs += [start, stop, stop]
            ys += [bid, bid, float("nan") if cut else bid]
    return xs, ys


def _bid_line(track: PodTrack, end: float) -> tuple[list[float], list[float]]:
    """The bid while the pod could run: each bid held from when it was placed until the next bid or
    `end`, with a gap (NaN) from an interruption (RunPod) or a stop (Vast) to the next bid, and on
    Vast a gap over each pause (drawn by `_paused_line`)."""
    return _steps(_bid_spans(track, end), paused=False)


def _paused_line(track: PodTrack, end: float) -> tuple[list[float], list[float]]:
    """The standing bid of a paused Vast instance, from each outbid pause until it ran again."""
    return _steps(_bid_spans(track, end), paused=True)


def _bid_at_interruptions(track: PodTrack) -> np.ndarray:
    """The bid in force at each interruption: the last one placed at or before it."""
    idx = np.clip(np.searchsorted(track.bid_ts, track.interruptions, side="right") - 1, 0, None)
    return np.asarray(track.bids)[idx]


def _price_axes(fig: Figure, ax: Axes) -> Figure:
    """The shared finish of the charts in USD per GPU-hour over time: axis, grid, legend outside."""
    ax.set_ylabel("USD per GPU-hour")
    ax.set_ylim(bottom=0)
    _date_axis(ax)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    return fig


def price_chart(series: Sequence[FloorSeries], track: PodTrack | None = None,
                names: Mapping[str, str | None] | None = None, ax: Axes | None = None) -> Figure:
    """Spot floor (solid steps) and on-demand price (dashed) of each market over time, USD per
    GPU-hour; gaps in the floor are times without spot capacity. With `track`, a managed pod's bid
    (black steps) and its interruptions (red x on the bid). `names` maps GPU type ids to labels."""
    if not series and track is None:
        raise ValueError("price_chart needs at least one market series or a pod track")
    fig, ax = _axes(ax, (10, 5.5))
    clouds = {s.cloud for s in series}
    markets = {s.market for s in series}
    spans: list[float] = []
    for k, s in enumerate(series):
        color = _PALETTE[k % len(_PALETTE)]
        label = (_label(s.gpu_type_id, names) + (f" {MARKET_NAMES.get(s.market, s.market)}" if len(markets) > 1 else "")
                 + (f" {s.cloud.lower()}" if len(clouds) > 1 else ""))
        if s.gpu_count != 1:
            label += f" x{s.gpu_count}"
        x = _dates(s.ts)
        dot = "o" if len(x) == 1 else None  # one sample: a step line through one point draws nothing
        ax.plot(x, s.floor, drawstyle="steps-post", color=color, lw=1.3, marker=dot, ms=5, label=f"{label} floor")
        if not np.all(np.isnan(s.on_demand)):
            ax.plot(x, s.on_demand, drawstyle="steps-post", color=color, lw=1.0, ls="--", alpha=0.8, marker=dot,
                    mfc="none", ms=5, label=f"{label} on-demand")
        spans += [float(s.ts[0]), float(s.ts[-1])]
    if track is not None and track.bids:
        end = track.end if track.end is not None else (max(spans) if spans else track.bid_ts[-1])
        bid_x, bid_y = _bid_line(track, end)
        ax.plot(_dates(bid_x), bid_y, color="black", lw=1.6, label=f"pod {track.pod_id} bid")
        paused_x, paused_y = _paused_line(track, end)
        if paused_x:
            ax.plot(_dates(paused_x), paused_y, color="black", lw=1.4, ls=_PAUSED,
                    label=f"pod {track.pod_id} paused (outbid; its bid stands)")
        if track.interruptions:
            ax.plot(_dates(track.interruptions), _bid_at_interruptions(track), "x", color=INTERRUPTION, ms=8, mew=2,
                    label=f"interrupted ({len(track.interruptions)})")
        spans += [track.bid_ts[0], end]
    where = f"{MARKET_NAMES.get(next(iter(markets)), '')}: " if len(markets) == 1 and markets != {"runpod"} else ""
    ax.set_title(f"{where}Spot floor (solid) and on-demand (dashed), USD per GPU-hour\n{_span(spans)}",
                 fontsize=10)
    if spans and min(spans) == max(spans):  # one instant: an hour either side, not matplotlib's years
        ax.set_xlim(*_dates([spans[0] - 3600, spans[0] + 3600]))
    return _price_axes(fig, ax)


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
        if len(t) > _MAX_CURVE_POINTS:  # cumulative curves: every k-th point (and the last) keeps the shape
            keep = np.unique(np.r_[np.arange(0, len(t), len(t) // _MAX_CURVE_POINTS + 1), len(t) - 1])
            t_all, spent_all = t, spent
            t, spent, on_demand = t[keep], spent[keep], on_demand[keep]
        else:
            t_all, spent_all = t, spent
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
            ax.plot(_dates(when), np.interp(when, t_all, spent_all), "x", color=INTERRUPTION, ms=7, mew=1.8,
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


def market_chart(buckets: PriceBuckets, tracks: Sequence[PodTrack] = (), title: str = "",
                 ax: Axes | None = None) -> Figure:
    """One market over time, USD per GPU-hour: the spot floor (solid steps: the highest floor of each
    time bucket, the band down to the lowest shaded), on-demand (dashed), each pod's bid (thick black
    steps, labelled with the pod) and each interruption (red x on the bid in force, numbered in the
    legend), so a reader sees the floor cross the bid at each interruption."""
    if not len(buckets) and not any(t.bids for t in tracks):
        raise ValueError("market_chart needs price buckets or a pod with bids")
    fig, ax = _axes(ax, (10, 4.8))
    spans: list[float] = []
    if len(buckets):
        x = _dates(buckets.start)
        hours = buckets.bucket_s / 3600
        step = f"{hours:g} h" if hours >= 1 else f"{buckets.bucket_s / 60:g} min"
        ax.fill_between(x, buckets.floor_min, buckets.floor_max, step="post", color=FLOOR, alpha=0.18, lw=0,
                        label=f"spot floor range per {step}")
        ax.plot(x, buckets.floor_max, drawstyle="steps-post", color=FLOOR, lw=1.3, label="spot floor (highest)")
        if not np.all(np.isnan(buckets.on_demand)):
            ax.plot(x, buckets.on_demand, drawstyle="steps-post", color=ON_DEMAND, lw=1.3, ls="--",
                    label="on-demand price")
        spans += [float(buckets.start[0]), float(buckets.start[-1] + buckets.bucket_s)]
    markers = ("x", "+", "1", "2", "3", "4")
    for k, track in enumerate(t for t in tracks if t.bids):
        end = track.end if track.end is not None else (max(spans) if spans else track.bid_ts[-1])
        bid_x, bid_y = _bid_line(track, end)
        ax.plot(_dates(bid_x), bid_y, color=BID, lw=2.0, ls=("-", "-.", ":")[k % 3],
                label=f"bid of pod {track.pod_id}")
        paused_x, paused_y = _paused_line(track, end)
        if paused_x:
            ax.plot(_dates(paused_x), paused_y, color=BID, lw=1.6, ls=_PAUSED,
                    label=f"pod {track.pod_id} paused (outbid; its bid stands)")
        if track.interruptions:
            ax.plot(_dates(track.interruptions), _bid_at_interruptions(track), markers[k % len(markers)],
                    color=INTERRUPTION, ms=9, mew=2.2,
                    label=f"pod {track.pod_id} interrupted ({len(track.interruptions)}x)")
        spans += [track.bid_ts[0], end]
    ax.set_title(f"{title or 'Spot floor, on-demand price and bids'}\n{_span(spans)}", fontsize=10)
    return _price_axes(fig, ax)


def discount_heatmap(mean: np.ndarray, count: np.ndarray | None = None, title: str = "",
                     ax: Axes | None = None) -> Figure:
    """Spot discount against on-demand (1 - floor / on-demand, %) by weekday and hour of day (UTC): a
    7 x 24 grid, each cell printed with its value, blank where no sample had both prices."""
    if mean.shape != (7, 24):
        raise ValueError(f"discount_heatmap needs a 7 x 24 array, got {mean.shape}")
    fig, ax = _axes(ax, (11, 3.9))
    pct = 100 * mean
    image = ax.imshow(np.ma.masked_invalid(pct), cmap="Greens", aspect="auto", vmin=0,
                      vmax=max(10.0, float(np.nanmax(pct))) if np.isfinite(pct).any() else 100)
    for d in range(7):
        for h in range(24):
            if np.isfinite(pct[d, h]):
                dark = pct[d, h] > 0.6 * (image.norm.vmax or 1)
                ax.text(h, d, f"{pct[d, h]:.0f}", ha="center", va="center", fontsize=6.5,
                        color="white" if dark else "black")
    ax.set_xticks(range(24), [f"{h:02d}" for h in range(24)], fontsize=7)
    ax.set_yticks(range(7), _WEEKDAYS, fontsize=8)
    ax.set_xlabel("hour of day (UTC)")
    ax.set_ylabel("weekday")
    samples = f", {int(count.sum()):,} samples" if count is not None else ""
    ax.set_title(f"{title or 'Spot discount'}: % below on-demand by hour of week (higher = cheaper spot)"
                 f"{samples}", fontsize=10)
    bar = fig.colorbar(image, ax=ax, fraction=0.03, pad=0.01)
    bar.set_label("spot discount vs on-demand (%)", fontsize=8)
    fig.tight_layout()
    return fig


def bid_tradeoff_chart(stats: MarketStats, last_bid: float | None = None, title: str = "",
                       ax: Axes | None = None) -> Figure:
    """What a bid buys in this market (from `bidder.market`): availability (% of time the floor was
    at or under the bid, solid, left axis) and expected interruptions per day of running (dashed with
    dots, right axis) against the bid, the current floor (dotted line) and bidder's last bid (thick
    line) marked and labelled."""
    fig, ax = _axes(ax, (10, 4.5))
    bids = np.asarray(stats.bids, dtype=float)
    ax.plot(bids, 100 * np.asarray(stats.availability), color=FLOOR, lw=1.8, label="availability (% of time)")
    ax.set_xlabel("bid (USD per GPU-hour)")
    ax.set_ylabel("availability (% of time)")
    ax.set_ylim(0, 102)
    right = ax.twinx()
    right.plot(bids, stats.interruptions_per_day(), color=INTERRUPTION, lw=1.4, ls="--", marker=".", ms=3,
               label="interruptions per day of running")
    right.set_ylabel("interruptions per day of running")
    right.set_ylim(bottom=0)
    marks = []
    if stats.floor_now is not None:
        ax.axvline(stats.floor_now, color=FLOOR, ls=":", lw=1.5)
        marks.append(ax.text(stats.floor_now, 4, f" floor now {stats.floor_now:.3f}", rotation=90, fontsize=8,
                             va="bottom", color=FLOOR))
    if stats.on_demand_now is not None:
        ax.axvline(stats.on_demand_now, color=ON_DEMAND, ls="--", lw=1.2)
        marks.append(ax.text(stats.on_demand_now, 4, f" on-demand {stats.on_demand_now:.3f}", rotation=90,
                             fontsize=8, va="bottom", color=ON_DEMAND))
    if last_bid is not None:
        ax.axvline(last_bid, color=BID, lw=2.2)
        marks.append(ax.text(last_bid, 55, f" bidder's last bid {last_bid:.3f}", rotation=90, fontsize=8,
                             va="bottom", color=BID))
    # Zoom on the bids that matter: from where the floor is sometimes under the bid to on-demand and a bit beyond.
    avail = np.asarray(stats.availability)
    useful = bids[(avail > 0.005) & (avail < 0.9995)]
    points = [p for p in (stats.floor_now, stats.on_demand_now, last_bid) if p is not None] + list(useful[:1])
    points += list(useful[-1:])
    if points:
        lo, hi = min(points), max(points)
        pad = 0.08 * max(hi - lo, 0.05 * hi)
        ax.set_xlim(max(0.0, lo - pad), hi + pad)
        shown = (bids >= lo - pad) & (bids <= hi + pad)
        rates = stats.interruptions_per_day()[shown]
        top = float(np.nanmax(rates[np.isfinite(rates)])) if np.isfinite(rates).any() else 1.0
        right.set_ylim(0, min(max(top * 1.05, 1.0), 48.0))
    lines = ax.get_lines()[:1] + right.get_lines()[:1]
    ax.legend(lines, [str(line.get_label()) for line in lines], fontsize=8, loc="center right")
    ax.set_title(f"{title or 'What a bid buys'}: availability and interruption rate against the bid",
                 fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
