"""bidder.report.charts: figures drawn from real report data, on the Agg backend, never shown."""

from __future__ import annotations

import math

import matplotlib
import pytest
from test_report_cli import A6000, PNG, RTX4090, fill

from bidder.report.charts import _bid_line, price_chart, spend_chart
from bidder.report.data import PodTrack, pod_track, price_chart_data, spend_report
from bidder.store import Store

matplotlib.use("Agg")
import matplotlib.pyplot as plt


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "bidder.db") as s:
        fill(s)
        yield s


def test_charts_draw_on_a_given_axes_and_return_its_figure(store, tmp_path):
    fig, (top, bottom) = plt.subplots(2, 1)
    try:
        series = price_chart_data(store, [A6000, RTX4090])
        assert price_chart(series, pod_track(store, "pod-a"), ax=top) is fig
        assert spend_chart(spend_report(store), ax=bottom) is fig
        # Floor + on-demand per market, then the bid and the interruption marker.
        assert [line.get_label() for line in top.get_lines()] == [
            "RTX A6000 floor", "RTX A6000 on-demand", "GeForce RTX 4090 floor", "GeForce RTX 4090 on-demand",
            "pod pod-a bid", "interrupted (1)"]
        spent = bottom.get_lines()[0]
        assert spent.get_label() == "train: USD 2.70 (on-demand USD 7.11, saved 62%)"
        assert spent.get_ydata()[-1] == pytest.approx(2.70)
        assert bottom.get_lines()[1].get_ydata()[-1] == pytest.approx(7.11)
        path = tmp_path / "both.png"
        fig.savefig(path)
        assert path.read_bytes()[:8] == PNG
    finally:
        plt.close(fig)
    assert matplotlib.get_backend().lower() == "agg"


def test_names_label_the_markets(store):
    fig = price_chart(price_chart_data(store, [A6000]), names={A6000: "A6000 48 GB"})
    try:
        assert fig.axes[0].get_lines()[0].get_label() == "A6000 48 GB floor"
    finally:
        plt.close(fig)


def test_the_bid_line_breaks_from_an_interruption_to_the_next_bid():
    track = PodTrack("p", A6000, "COMMUNITY", "spot", bid_ts=(0.0, 100.0), bids=(0.3, 0.4), end=150.0,
                     interruptions=(60.0,))
    xs, ys = _bid_line(track, 150.0)
    assert xs == [0.0, 60.0, 60.0, 100.0, 150.0, 150.0]
    assert ys[:2] == [0.3, 0.3] and math.isnan(ys[2]) and ys[3:] == [0.4, 0.4, 0.4]


def test_nothing_to_draw_is_a_value_error(tmp_path):
    with Store.open(tmp_path / "empty.db") as empty, pytest.raises(ValueError, match="no pod ran in the"):
        spend_chart(spend_report(empty))
    with pytest.raises(ValueError, match="needs at least one market series"):
        price_chart([])


def test_a_market_of_one_sample_is_drawn_as_a_point_around_its_hour(store):
    [series] = price_chart_data(store, [A6000], None, 1, None, None)
    one = type(series)(**{**series.__dict__, "ts": series.ts[:1], "floor": series.floor[:1],
                          "on_demand": series.on_demand[:1]})
    fig = price_chart([one])
    ax = fig.axes[0]
    assert [line.get_marker() for line in ax.get_lines()] == ["o", "o"]  # a step line through one point draws nothing
    low, high = ax.get_xlim()
    assert high - low == pytest.approx(2 / 24)  # an hour either side (days on matplotlib's date axis), not years
    plt.close(fig)
