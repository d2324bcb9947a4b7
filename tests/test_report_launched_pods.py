"""The HTML report of a user who launches and stops pods by hand (`bidder launch`, `bidder stop`,
`bidder pods --refresh`; no bidder.toml, no tick in cron), through the real CLI against the emulator
over HTTP: its restarts and its poll coverage must be true of those pods."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from executor_helpers import RTX4090, seed_history
from vast_helpers import seed_vast_history

from bidder.cli import main
from bidder.sim import TEST_API_KEY
from bidder.store import Store
from bidder.units import to_iso


@pytest.fixture
def user(emulator, tmp_path):
    """run(*args): the CLI on a ledger with RunPod's and Vast's history of the RTX 4090, on the
    emulator's URLs, key and clock."""
    emulator.world.reclaim_rate_per_hour = 0.0
    with Store.open(tmp_path / "bidder.db") as store:
        seed_history(store, emulator, gpus=(RTX4090,))
        seed_vast_history(store, emulator)
    runner = CliRunner(env={"RUNPOD_API_KEY": TEST_API_KEY, "VAST_API_KEY": TEST_API_KEY})

    def run(*args: str) -> str:
        urls = [] if args[0] == "report" else ["--api-url", emulator.url, "--vast-url", emulator.vast_url]
        result = runner.invoke(main, [*args, "--db", str(tmp_path / "bidder.db"), *urls, "--now", to_iso(emulator.now)])
        assert result.exit_code == 0, result.output + result.stderr
        return result.output

    return run


def launch(run, market: str) -> str:
    out = run("launch", "--market", market, "--gpu", "RTX 4090", "--tolerance", "none", "--image", "img", "--yes")
    return re.search(r"^Launched pod (\S+) ", out, re.M).group(1)


def page(run, tmp_path, *args: str) -> str:
    run("report", "--html", str(tmp_path / "report"), *args)
    return (tmp_path / "report" / "report.html").read_text()


def card(html: str, name: str) -> str:
    return re.search(rf"<span>{name}</span><b>([^<]*)</b><span>([^<]*)</span>", html).groups()


def test_launches_under_the_default_name_are_no_restarts_of_each_other(user, emulator, tmp_path):
    # Three launches, one after another, all "bidder-launch": counted as one job, they read as two
    # restarts (0.3 h lost) beside 0 interruptions.
    for _ in range(3):
        pod = launch(user, "runpod")
        for _ in range(4):
            emulator.advance(900)
            user("pods", "--refresh")
        user("stop", pod)
    html = page(user, tmp_path)
    assert card(html, "Interruptions")[0] == "0"
    assert card(html, "Hours lost to restarts")[0] == "0.0 h"
