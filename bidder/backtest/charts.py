"""Backtest charts (matplotlib, Agg). Each function takes `ax=None`, returns the figure, never shows it.

    fig = cumulative_cost(report)                 # one window: USD spent over time, interruptions marked
    fig.savefig("backtest.png", dpi=120)
    fig = ratio_bars([("A6000 batch", report.summary()), ...])   # mean and worst cost / hindsight
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: charts are files, never windows

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from bidder.backtest.types import work_words

if TYPE_CHECKING:
    from bidder.backtest.engine import BacktestReport

__all__ = ["COLORS", "color_of", "cumulative_cost", "ratio_bars"]

#: One colour per strategy, the same in every chart.
COLORS: dict[str, str] = {"bidder": "#1f77b4", "on-demand": "#7f7f7f", "floor": "#d62728",
                          "floor+0.10": "#ff7f0e", "bid-on-demand": "#9467bd", "hindsight": "#2ca02c",
                          "floor (uncapped)": "#8c564b", "optimum": "#17becf"}
_SPARE = ("#e377c2", "#bcbd22", "#17becf", "#393b79", "#637939")


def color_of(name: str) -> str:
    """The strategy's colour; names outside COLORS get a spare one, stable per name."""
    return COLORS.get(name) or _SPARE[sum(map(ord, name)) % len(_SPARE)]


def _axes(ax: Axes | None, size: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax  # type: ignore[return-value]
    fig, new_ax = plt.subplots(figsize=size)
    return fig, new_ax


def cumulative_cost(report: BacktestReport, window: int = 0, ax: Axes | None = None) -> Figure:
    """USD spent since the job started, per strategy, in one recorded window (the first by default;
    `run_backtest(record_window=...)` chooses which is recorded). Interruptions are marked x."""
    fig, ax = _axes(ax, (9, 5))
    win = report.windows[window]
    if not any(r.curve for r in win.results.values()):
        raise ValueError(f"window {window} was not recorded: run_backtest(record_window={window})")
    for name in report.strategies:
        r = win.results.get(name)
        if r is None or not r.curve:
            continue
        hours, spent = np.array([(0.0, 0.0), *r.curve]).T
        color = color_of(name)
        style = "--" if name == "hindsight" else "-"
        ax.plot(hours, spent, style, color=color, lw=1.6,
                label=f"{name}: ${r.cost:,.2f}" + (f", {r.interruptions} interruption{'s' * (r.interruptions != 1)}" if r.interruptions else ""))
        if r.interruption_hours:
            at = np.interp(r.interruption_hours, hours, spent)
            ax.plot(r.interruption_hours, at, "x", color=color, ms=5, mew=1.2)
    job = report.job
    if job.deadline_hours is not None and not job.keep_running:
        ax.axvline(job.deadline_hours, color="black", lw=0.8, ls=":")
        ax.annotate("deadline", (job.deadline_hours, ax.get_ylim()[1]), ha="right", va="top", fontsize=8)
    start = datetime.fromtimestamp(win.start, UTC).strftime("%Y-%m-%d %H:%M UTC")
    days = job.keep_running_hours / 24 if job.keep_running_hours is not None else 0.0
    what = (f"service kept running {days:g} day{'s' * (days != 1)}" if job.keep_running_hours is not None
            else work_words(job.work_hours or 0.0, job.gpu_count))
    markets = ", ".join(m.label for m in report.history.markets[:3]) + (
        f" (+{len(report.history.markets) - 3})" if len(report.history.markets) > 3 else "")
    ax.set_title(f"{what} from {start}\n{markets}", fontsize=10)
    ax.set_xlabel("hours since the job started")
    ax.set_ylabel("USD spent")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def ratio_bars(summaries: Sequence[tuple[str, dict[str, Any]]], metric: str = "cost_vs_hindsight",
               ax: Axes | None = None) -> Figure:
    """Grouped bars of a metric's mean per strategy for each labelled summary (`BacktestReport.summary()`),
    with the worst window as a tick above each bar."""
    fig, ax = _axes(ax, (max(6.0, 1.6 * len(summaries) + 2), 4.5))
    names = list(dict.fromkeys(s["name"] for _, summary in summaries for s in summary["strategies"]))
    width = 0.8 / max(1, len(names))
    x = np.arange(len(summaries))
    values: list[float] = []
    for k, name in enumerate(names):
        means, worsts = [], []
        for _, summary in summaries:
            row = next((s for s in summary["strategies"] if s["name"] == name), None)
            means.append(np.nan if row is None or row[metric] is None else row[metric])
            worsts.append(np.nan if row is None or row["worst"][metric] is None else row["worst"][metric])
        pos = x - 0.4 + width * (k + 0.5)
        ax.bar(pos, means, width, color=color_of(name), label=name)
        ax.plot(pos, worsts, "_", color="black", ms=8)
        values.extend(v for v in (*means, *worsts) if np.isfinite(v) and v > 0)
    if values and max(values) / min(values) > 8:
        ax.set_yscale("log")  # one runaway strategy must not flatten the others
        ticks = [t for t in (0.5, 1, 2, 3, 5, 10, 20, 50, 100) if min(values) / 1.5 <= t <= max(values) * 1.5]
        ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
    ax.set_xticks(x, [label for label, _ in summaries], fontsize=8, rotation=15, ha="right")
    ax.set_ylabel(metric.replace("_", " ") + " (bar: mean, tick: worst window)")
    if metric == "cost_vs_hindsight":
        ax.axhline(1.0, color="black", lw=0.8)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=3)
    fig.tight_layout()
    return fig
