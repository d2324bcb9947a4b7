"""The `bid-on-demand` baseline through `bidder backtest` on small traces of several GPU types: it bids,
on the market the `on-demand` rule takes (the cheapest on-demand per unit of work among those whose
floor is under it), that market's own on-demand price. It took the cheapest floor and bid that
market's on-demand: $40 where on-demand cost $3."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner

from bidder.cli import main

START = datetime(2026, 1, 1, tzinfo=UTC)


def _trace(path: Path, markets: dict[str, tuple[object, float]], days: int = 4) -> Path:
    """Markets by name: (floor, on-demand); a floor is a number, or a function of the sample index
    (15-minute samples from START)."""
    lines = ["ts,gpu_type,minimum_bid_price,uninterruptable_price"]
    for k in range(days * 24 * 4):
        ts = (START + timedelta(minutes=15 * k)).isoformat().replace("+00:00", "Z")
        for name, (floor, on_demand) in markets.items():
            lines.append(f"{ts},{name},{floor(k) if callable(floor) else floor},{on_demand}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _rows(trace: Path, *args: str) -> dict[str, dict]:
    result = CliRunner().invoke(main, ["backtest", "--trace", str(trace), "--hours", "10", "--deadline", "1d",
                                       "--strategies", "on-demand,bid-on-demand", "--format", "json", *args])
    assert result.exit_code == 0, result.output
    return {s["name"]: s for s in json.loads(result.stdout)["strategies"]}


def test_it_bids_the_on_demand_price_of_the_market_on_demand_takes(tmp_path: Path) -> None:
    # The dearest type has the lowest floor: bidding its on-demand (4.0) cost $40 for a 10-hour job.
    trace = _trace(tmp_path / "three.csv", {"CHEAP": (0.25, 0.3), "MID": (0.2, 1.5), "DEAR": (0.1, 4.0)})
    rows = _rows(trace)
    assert rows["on-demand"]["cost"] == 3.0
    assert rows["bid-on-demand"]["cost"] == 3.0 and rows["bid-on-demand"]["peak_rate"] == 0.3
    assert rows["bid-on-demand"]["deadline_met_share"] == 1.0 and rows["bid-on-demand"]["interruptions"] == 0


def test_a_market_whose_floor_is_over_its_on_demand_is_passed_for_the_next_cheapest(tmp_path: Path) -> None:
    # CHEAP's floor (0.35) is over its on-demand (0.3): no bid of 0.3 starts there. The next cheapest
    # on-demand is MID's 1.5, not DEAR's 4.0 (the lowest floor).
    trace = _trace(tmp_path / "three.csv", {"CHEAP": (0.35, 0.3), "MID": (0.2, 1.5), "DEAR": (0.1, 4.0)})
    rows = _rows(trace)
    assert rows["bid-on-demand"]["cost"] == 15.0 and rows["bid-on-demand"]["peak_rate"] == 1.5
    assert rows["on-demand"]["cost"] == 3.0  # (on-demand at CHEAP: its floor does not matter there)


def test_equal_on_demand_prices_go_to_the_lowest_floor(tmp_path: Path) -> None:
    """Two zones at one on-demand price (AWS's): the lower floor, as before, so the shipped AWS numbers
    stand. Zone A's floor (0.2) spikes over the on-demand 3 hours into the window; zone B's (0.1) never
    does. (A, first of the two, is what the cheapest on-demand alone would take.)"""
    spiky = lambda k: 0.9 if 48 * 4 + 12 <= k < 48 * 4 + 16 else 0.2  # noqa: E731
    trace = _trace(tmp_path / "zones.csv", {"A": (spiky, 0.65), "B": (0.1, 0.65)})
    rows = _rows(trace)
    assert rows["bid-on-demand"]["cost"] == rows["on-demand"]["cost"] == 6.5
    assert rows["bid-on-demand"]["interruptions"] == 0
