"""The HTML report of a user who launches and stops pods by hand (`bidder launch`, `bidder stop`,
`bidder pods --refresh`; no bidder.toml, no tick in cron), through the real CLI against the emulator
over HTTP: its restarts and its poll coverage must be true of those pods."""

from __future__ import annotations

import re
from datetime import timedelta

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


def test_a_runpod_and_a_vast_launch_unpolled_for_an_hour_show_the_same_gap_and_its_cause(user, emulator, tmp_path):
    # Launched together, first polled an hour later: the Vast instance's gap was listed and the RunPod
    # pod's not (its launch wrote no poll, so its life began at its first poll), and the gap was put
    # down to `bidder tick`, which this user never runs.
    start = emulator.now
    pods = [launch(user, "runpod"), launch(user, "vast")]
    emulator.advance(3600)
    user("pods", "--refresh")
    emulator.advance(900)
    user("pods", "--refresh")
    for pod in pods:
        user("stop", pod, "--terminate")
    html = page(user, tmp_path)
    note = re.search(r'<p class="note">(1|2) gap\(s\)[^<]*</p>', html).group(0)
    for pod in pods:
        assert f"pod {pod} from {to_iso(start)} to {to_iso(start + timedelta(hours=1))}" in note, note
    assert "pods of `bidder launch` (polled only when `bidder pods --refresh`" in note
    assert "did not run" not in note
    assert card(html, "Poll coverage") == ("20%", "of 2.5 pod-hours between polls")


def test_a_managed_jobs_gap_is_still_put_down_to_the_tick(user, emulator, tmp_path):
    (tmp_path / "bidder.toml").write_text(f'[jobs.train]\ngpu = ["{RTX4090}"]\nimage = "img"\nhours = 5\n'
                                          'tolerance = "none"\nmarket = "runpod"\n')
    tick = ("tick", "--config", str(tmp_path / "bidder.toml"))
    user(*tick)
    for step in (900, 3600, 900):
        emulator.advance(step)
        user(*tick)
    [pod] = [p for p in emulator.world.pods]
    html = page(user, tmp_path, "--config", str(tmp_path / "bidder.toml"))
    note = re.search(r'<p class="note">1 gap\(s\)[^<]*</p>', html).group(0)
    assert f"pods of managed jobs (bidder tick did not run, or could not reach the API): pod {pod} from" in note
    assert "bidder launch" not in note
