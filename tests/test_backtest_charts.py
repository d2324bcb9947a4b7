"""Backtest charts: drawn on the Agg backend into a given or new figure, never shown."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from backtest_helpers import make_history, square_wave

from bidder.backtest.charts import color_of, cumulative_cost, ratio_bars
from bidder.backtest.engine import BacktestJob, run_backtest
from bidder.models import Policy


def _report(record_window: int | None = 0):
    history = make_history([square_wave(24 * 5, 0.2, 1.5, period_h=6)], on_demand=1.0)
    job = BacktestJob(work_hours=10, deadline_hours=24)
    return run_backtest(history, job, Policy(), ["on-demand", "floor", "hindsight"], every_hours=24,
                        record_window=record_window)


def test_cumulative_cost_draws_every_strategy_and_marks_interruptions() -> None:
    report = _report()
    fig, ax = plt.subplots()
    assert cumulative_cost(report, ax=ax) is fig
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert [label.split(":")[0] for label in labels] == ["on-demand", "floor", "hindsight"]
    floor = report.windows[0].results["floor"]
    assert floor.interruptions > 0 and f"{floor.interruptions} interruptions" in labels[1]
    markers = [line for line in ax.get_lines() if line.get_marker() == "x"]
    assert len(markers) == 1 and len(markers[0].get_xdata()) == floor.interruptions
    # The hindsight curve ends at the bound's cost.
    bound = next(line for line in ax.get_lines() if line.get_label().startswith("hindsight"))
    assert bound.get_ydata()[-1] == pytest.approx(report.windows[0].results["hindsight"].cost)
    plt.close(fig)


def test_the_legend_lists_strategies_in_the_order_given() -> None:
    history = make_history([square_wave(24 * 3, 0.2, 1.5, period_h=6)], on_demand=1.0)
    report = run_backtest(history, BacktestJob(work_hours=10, deadline_hours=24), Policy(),
                          ["hindsight", "floor", "optimum", "on-demand"], record_window=0)
    fig = cumulative_cost(report)
    labels = [t.get_text().split(":")[0] for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["hindsight", "floor", "optimum", "on-demand"]
    plt.close(fig)


def test_unrecorded_window_is_refused() -> None:
    with pytest.raises(ValueError, match="not recorded"):
        cumulative_cost(_report(record_window=None))


def test_ratio_bars() -> None:
    summary = _report().summary()
    fig = ratio_bars([("a", summary), ("b", summary)])
    ax = fig.axes[0]
    assert len(ax.patches) == 2 * 3
    heights = sorted({round(p.get_height(), 9) for p in ax.patches})
    assert heights[0] == 1.0                          # hindsight against itself
    assert color_of("floor") != color_of("bidder") and color_of("anything") == color_of("anything")
    plt.close(fig)
    assert np.isfinite(summary["strategies"][1]["cost_vs_hindsight"])
