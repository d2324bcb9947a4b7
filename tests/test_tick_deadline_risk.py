"""A job nothing can run now, waiting on its max price or budget, through the real CLI against the emulator
over HTTP (a Vast key alone): its line names why spot was ruled out too, not only on-demand's price, and
once only an on-demand run the policy refuses can still meet its deadline, `bidder tick` exits 1 with the
price or budget that saves it (it waited with exit 0 until the deadline was out of reach even on-demand)."""

from __future__ import annotations

import re

from click.testing import CliRunner
from vast_helpers import seed_vast_history

from bidder.cli import main
from bidder.sim import TEST_API_KEY
from bidder.store import Store
from bidder.units import to_iso


def job(name: str, *, deadline: str, tolerance: str, max_price: float, budget: float) -> str:
    return f"""
[jobs.{name}]
gpu = ["RTX 4090"]
market = "vast"
hours = 10
deadline = "{deadline}"
tolerance = {tolerance}
max_price = {max_price}
budget = {budget}
image = "pytorch/pytorch"
disk = 40
"""


def test_a_waiting_job_names_spots_reason_and_exits_1_while_its_deadline_can_still_be_saved(emulator, tmp_path):
    with Store.open(tmp_path / "bidder.db") as store:
        seed_vast_history(store, emulator)
    (tmp_path / "bidder.toml").write_text(
        job("capped", deadline="10.5h", tolerance='"low"', max_price=0.2, budget=50)      # on-demand over the cap
        + job("poor", deadline="10.5h", tolerance='"low"', max_price=0.6, budget=1)       # on-demand over the budget
        + job("early", deadline="2d", tolerance="0.05", max_price=0.2, budget=50))        # time enough to change
    result = CliRunner(env={"RUNPOD_API_KEY": "", "VAST_API_KEY": TEST_API_KEY}).invoke(main, [
        "tick", "--config", str(tmp_path / "bidder.toml"), "--db", str(tmp_path / "bidder.db"),
        "--vast-url", emulator.vast_url, "--now", to_iso(emulator.now)])
    lines = {line.split(":", 1)[0]: line for line in result.stdout.splitlines()}
    capped, poor, early = lines["capped"], lines["poor"], lines["early"]
    # (a) Spot floors sit under the cap: why spot was ruled out is said, not only on-demand's price.
    price = re.search(r"no candidate meets the max price: RTX 4090 on-demand at \$(0\.\d{3}) is over the max price "
                      r"\$0\.200; no spot: the cheapest, RTX 4090 spot at \$0\.\d{3} expects [\d.]+ interruptions per "
                      r"day of the window, over the tolerance of 0\.5/day, and cannot finish before the deadline; "
                      r"acts when on-demand is at or below \$0\.200 or a spot bid fits", capped)
    assert price is not None, capped
    # (b) Loud while it can still be saved: exit 1, one Error line with what to change.
    deadline = to_iso(emulator.now.replace(hour=10, minute=30))
    assert result.exit_code == 1, result.output
    saves = {
        "capped": (f"only on-demand can still finish its 10.0 h of work by its deadline {deadline}, 10.5 h away, and "
                   f"RTX 4090 on-demand on Vast is ${price[1]}/GPU-h, over the max price $0.200: raise max_price to "
                   f"${price[1]} or move the deadline, or the job misses it"),
        "poor": re.search(r"only on-demand can still finish its 10\.0 h of work by its deadline \S+, 10\.5 h away, "
                          r"and RTX 4090 on-demand on Vast would cost \$([\d.]+) for the work, over the \$1\.00 left "
                          r"in the budget: raise budget to \$\1 or move the deadline, or the job misses it", poor),
    }
    assert saves["poor"] is not None, poor
    assert capped.endswith(f"; {saves['capped']} (spent $0.00, 0.00 h done)"), capped
    assert result.stderr == f"Error: job capped: {saves['capped']}; job poor: {saves['poor'][0]}\n", result.stderr
    # A job with a day and more of slack waits with its reason alone: nothing to alarm cron about yet.
    assert early.startswith("early: waiting: no candidate meets the tolerance") and "only on-demand" not in early
    assert [i for i in emulator.vast.instances.values() if not i.destroyed] == []  # nothing was rented
