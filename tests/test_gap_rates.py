"""After a gap in the price history the job is planned to a deadline moved that much earlier; its
figures are then put back per day of its own window. Its reasons said the other rate: "5.38 per day to
the deadline" above "why: ... 5.5 interruptions/day", two rates for one bid."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import replace
from datetime import timedelta

from click.testing import CliRunner

from bidder.cli import main
from bidder.sim.vast_world import generate_vast_quotes
from bidder.store import Store
from bidder.units import to_iso

DAYS = 2.0


def _history_with_a_gap(store: Store, emu, gap_h: float) -> None:
    """`DAYS` of the emulator's Vast RTX 4090 quotes every 5 minutes, ending at its now, none in `gap_h`
    hours of the last day (neither the collector nor the tick ran)."""
    start = emu.now - timedelta(days=DAYS)
    hole = (emu.now - timedelta(hours=12), emu.now - timedelta(hours=12 - gap_h))
    by_ts = defaultdict(list)
    for q in generate_vast_quotes(emu.seed, DAYS + 300 / 86400, 300, ["RTX 4090"], start=start):
        if not hole[0] < q.ts < hole[1]:
            by_ts[q.ts].append(replace(q, market="vast"))
    for ts in sorted(by_ts):
        store.record_collection(ts, by_ts[ts], duration_s=0.0, market="vast")


def test_the_reasons_rate_is_the_figures_rate_after_a_gap(emulator, tmp_path):
    db = tmp_path / "bidder.db"
    with Store.open(db) as store:
        _history_with_a_gap(store, emulator, 8.0)
    result = CliRunner().invoke(main, ["recommend", "--db", str(db), "--now", to_iso(emulator.now), "--gpu", "4090",
                                       "--hours", "24", "--deadline", "3d", "--max-price", "0.2", "--tolerance", "high"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "gap of 8.0 h" in out and out.startswith("SPOT"), out
    figure = float(re.search(r"\(([\d.]+) per day to the deadline\)", out).group(1))
    said = [float(x) for x in re.findall(r"spot at \$[\d.]+: ([\d.]+) interruptions/day", out)]
    assert said and said[0] == round(figure, 1), out  # the why line's, and the alternatives' list
    table = {float(b): float(d) for b, d in re.findall(r"^vast\s+[*\d]\s+spot\s+RTX 4090\s+VERIFIED\s+([\d.]+)"
                                                      r"\s+[\d.]+\s+([\d.]+)", out, re.M)}
    listed = {float(b): float(d) for b, d in re.findall(r"spot at \$([\d.]+): ([\d.]+) interruptions/day", out)}
    assert table and all(round(table[b], 1) == d for b, d in listed.items() if b in table), out
