"""The cron path starts lean: `import bidder.cli` loads no command, and `bidder tick`, `collect` and
`launch` (each run for real, in a fresh process, against the emulator) never load pandas,
matplotlib, graphql-core, the emulator, the demo, the backtest or the report code."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from executor_helpers import A6000, ON_DEMAND_SERVICE, make_env

from bidder.cli import COMMAND_MODULES, main
from bidder.sim import TEST_API_KEY
from bidder.units import to_iso

#: Never loaded on the cron path (prefixes of module names).
HEAVY = ("pandas", "matplotlib", "graphql", "scipy", "bidder.sim", "bidder.demo", "bidder.backtest",
         "bidder.report", "bidder.cli.demo", "bidder.cli.sim", "bidder.cli.backtest", "bidder.cli.report")

# Runs the CLI in this interpreter and, at exit, prints which heavy modules it loaded.
_PROBE = ("import atexit, sys\n"
          "HEAVY = {heavy!r}\n"
          "atexit.register(lambda: print('LOADED', sorted(m for m in sys.modules "
          "if any(m == h or m.startswith(h + '.') for h in HEAVY))))\n"
          "from bidder.cli import main\n"
          "main(prog_name='bidder')\n")

CONFIG = ON_DEMAND_SERVICE


def _loaded(args: list[str]) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    proc = subprocess.run([sys.executable, "-c", _PROBE.format(heavy=HEAVY), *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "RUNPOD_API_KEY": TEST_API_KEY})
    line = [x for x in proc.stdout.splitlines() if x.startswith("LOADED ")][-1]
    return proc, eval(line.removeprefix("LOADED "))


def test_importing_the_cli_loads_no_command_module():
    code = "import sys, bidder.cli; print(sorted(m for m in sys.modules if m.startswith('bidder.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = eval(out)
    assert "bidder.cli" in loaded
    # No command module, and none of what commands use (the store, the clients, numpy-backed code).
    assert [m for m in loaded if m.startswith(("bidder.cli.", "bidder.store", "bidder.runpod", "bidder.vast",
                                               "bidder.executor", "bidder.sim", "bidder.demo"))] == []


@pytest.fixture
def env(emulator, client, tmp_path):
    emulator.world.reclaim_rate_per_hour = 0.0
    e = make_env(emulator, client, tmp_path)
    (tmp_path / "bidder.toml").write_text(CONFIG)
    yield e
    e.store.close()


@pytest.mark.parametrize("command", ["tick", "collect", "launch"])
def test_the_cron_path_loads_nothing_heavy(env, command):
    common = ["--db", str(env.tmp / "bidder.db"), "--api-url", env.emu.url]
    now = ["--now", to_iso(env.emu.now)]
    args = {"tick": ["tick", "--config", str(env.tmp / "bidder.toml"), *common, *now],
            "collect": ["collect", *common],
            "launch": ["launch", "--gpu", A6000, "--tolerance", "none", "--image", "runpod/pytorch:latest",
                       "--yes", *common, *now]}[command]
    proc, loaded = _loaded(args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert loaded == [], f"bidder {command} loaded {loaded}"
    if command in ("tick", "launch"):
        assert len(env.emu.world.pods) == 1  # it really ran: a pod was rented


def test_help_loads_only_the_command_asked_for():
    proc, loaded = _loaded(["tick", "--help"])
    assert proc.returncode == 0 and "Usage: bidder tick" in proc.stdout
    assert loaded == []


def test_every_command_is_in_the_lazy_map_with_its_module():
    """COMMAND_MODULES names the module that registers each command (else running it imports all)."""
    registered = {name: cmd.callback.__module__.rpartition(".")[2] for name, cmd in main.commands.items()}
    assert registered == COMMAND_MODULES
