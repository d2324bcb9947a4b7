"""`bidder chart prices` on Vast: Vast's tiers drawn like RunPod's clouds (from a trace imported into a
real SQLite file), and a hint that never suggests an option the user already gave."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from two_markets import VAST4090

from bidder.cli import main
from bidder.report.charts import png_bytes, price_chart
from bidder.report.data import price_chart_data
from bidder.store import Store

PNG = b"\x89PNG\r\n\x1a\n"
TRACE_NOW = ["--now", "2026-01-03T00:00:00Z"]


def run(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def vast_db(tmp_path_factory):
    """Two days of Vast's RTX 4090 market every 30 minutes, written by `bidder sim trace --market
    vast` and loaded by `bidder import-trace`, as a user would."""
    tmp = tmp_path_factory.mktemp("vast")
    trace, db = tmp / "v.csv", tmp / "v.db"
    result = run("sim", "trace", str(trace), "--market", "vast", "--days", "2", "--step", "30m", "--gpu", "RTX 4090")
    assert result.exit_code == 0, result.output
    result = run("import-trace", "--db", str(db), str(trace))
    assert result.exit_code == 0, result.output
    return str(db)


def test_chart_prices_draws_vasts_tiers(vast_db, tmp_path):
    with Store.open(vast_db, create=False) as store:
        series = price_chart_data(store, [VAST4090])
        assert [(s.market, s.cloud, s.gpu_count) for s in series] == [("vast", "VERIFIED", 1), ("vast", "UNVERIFIED", 1)]
        assert all(len(s) == 97 for s in series)  # every 30 minutes for two days, both ends
        assert [s.cloud for s in price_chart_data(store, [VAST4090], ["VERIFIED"], 2)] == ["VERIFIED"]
        assert price_chart_data(store, [VAST4090], market="runpod") == []
        fig = price_chart(series, names=store.gpu_type_names())
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert labels[:2] == ["RTX 4090 verified floor", "RTX 4090 verified on-demand"]
    assert fig.axes[0].get_title().startswith("Vast: Spot floor")
    assert png_bytes(fig)[:8] == PNG

    for args, drawn in ((["--since", "all"], "RTX 4090 vast verified, RTX 4090 vast unverified"),
                        (["--gpu", "RTX 4090", "--cloud", "verified", "--since", "all"], "RTX 4090 vast verified"),
                        (["--market", "vast", "--gpu-count", "4", "--since", "2d"], "RTX 4090 vast verified, "
                                                                                     "RTX 4090 vast unverified")):
        out = tmp_path / "c.png"
        out.unlink(missing_ok=True)
        result = run("chart", "prices", "--db", vast_db, *args, *TRACE_NOW, str(out))
        assert result.exit_code == 0, result.output
        assert result.output.startswith(f"Wrote {out}: {drawn}, "), result.output
        assert out.read_bytes()[:8] == PNG


def test_no_prices_names_what_would_help_never_an_option_already_given(vast_db, tmp_path):
    out = tmp_path / "c.png"
    recorded = "recorded: vast verified (1, 2, 4, 8 GPUs); vast unverified (1, 2, 4, 8 GPUs)"
    for args, option, why in ((["--gpu-count", "3"], "--gpu-count", "for pods of 3 GPUs"),
                              (["--cloud", "secure"], "--cloud", "in cloud secure"),
                              (["--market", "runpod", "--gpu", "RTX 4090"], "--market", "in market runpod")):
        result = run("chart", "prices", "--db", vast_db, "--since", "all", *args, *TRACE_NOW, str(out))
        assert result.exit_code == 2, result.output
        assert f"Invalid value for {option}: no price of RTX 4090 was ever recorded {why}; {recorded}" in result.output
        assert "--since all" not in result.output and "Traceback" not in result.output
    result = run("chart", "prices", "--db", vast_db, "--market", "vast", "--cloud", "community", str(out))
    assert result.exit_code == 2 and "community is not a cloud of vast; its clouds are verified, unverified" in (
        result.output)
    # History outside the period: not an error; the hint names the option that reaches it.
    history = "their history runs from 2026-01-01T00:00:00Z to 2026-01-03T00:00:00Z"
    result = run("chart", "prices", "--db", vast_db, "--since", "1d", "--now", "2026-01-10T00:00:00Z", str(out))
    assert result.exit_code == 0, result.output
    assert f"{history}; start the period earlier, e.g. --since all. No chart written." in result.output
    result = run("chart", "prices", "--db", vast_db, "--since", "all", "--until", "2025-12-01T00:00:00Z",
                 *TRACE_NOW, str(out))
    assert result.exit_code == 0, result.output
    assert f"{history}; end the period after its start (--until, --now). No chart written." in result.output
    assert "try --since all" not in result.output
    assert not out.exists()
