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


def test_a_cumulative_cost_line_is_flat_where_nothing_was_paid() -> None:
    """Spot at 0.2 only in hours 2-4 and 20-22 (1.5 otherwise, over on-demand's 1.0): the hindsight
    bound and the floor rule pay only there. The hindsight line ran straight from (4 h, $0.40) to the
    end of its first slot after 20 h, and from (0, 0) to 2 h 5 min, as if paying through the idle hours;
    a replayed rule's line began to rise a sample before it started paying."""
    hours = np.arange(48 * 12) / 12  # 5-minute samples
    floor = np.where(((hours >= 2) & (hours < 4)) | ((hours >= 20) & (hours < 22)), 0.2, 1.5)
    report = run_backtest(make_history([floor], on_demand=1.0), BacktestJob(work_hours=4, deadline_hours=24),
                          Policy(), ["floor", "hindsight"], record_window=0, warmup_hours=0)
    fig = cumulative_cost(report)
    lines = {line.get_label().split(":")[0]: line for line in fig.axes[0].get_lines() if line.get_marker() != "x"}
    for name in ("hindsight", "floor"):
        x, y = lines[name].get_xdata(), lines[name].get_ydata()
        assert np.all(np.diff(x) >= 0) and y[-1] == pytest.approx(report.windows[0].results[name].cost)
        rising = [(a, b) for a, b, up in zip(x[:-1], x[1:], np.diff(y) > 1e-12, strict=True) if up]
        assert rising and all(2 - 1e-9 <= a < b <= 4 + 1e-9 or 20 - 1e-9 <= a < b <= 22 + 1e-9
                              for a, b in rising), (name, rising)
        assert np.interp([2.0, 4.0, 20.0], x, y) == pytest.approx([0.0, 0.4, 0.4]), name
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
