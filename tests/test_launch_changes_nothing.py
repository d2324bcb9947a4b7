"""A launch that launches nothing changes nothing: a refused one (an unknown GPU, a max price, budget or
deadline no plan meets, a wrong key, no answer) and a dry run leave the database as it was (its dump
byte-identical), and a dry run on a --db that is not there creates no file. A launch that goes ahead
still stores the snapshot it planned on. `bidder launch` over the emulator."""

from __future__ import annotations

import sqlite3

import pytest
from click.testing import CliRunner
from executor_helpers import A6000, make_env

from bidder.cli import main
from bidder.sim import TEST_API_KEY
from bidder.units import to_iso


@pytest.fixture
def env(emulator, client, tmp_path):
    emulator.world.reclaim_rate_per_hour = 0.0
    e = make_env(emulator, client, tmp_path)
    e.store.close()  # (the CLI is the only one to open it)
    yield e


def _launch(env, *args: str, db: str | None = None, key: str = TEST_API_KEY, input: str | None = None):
    runner = CliRunner(env={"RUNPOD_API_KEY": key})
    return runner.invoke(main, ["launch", "--db", db or str(env.tmp / "bidder.db"), "--api-url", env.emu.url,
                                "--now", to_iso(env.emu.now), "--market", "runpod", "--image", "img", *args],
                         input=input)


def _dump(env) -> str:
    with sqlite3.connect(env.tmp / "bidder.db") as conn:
        return "\n".join(conn.iterdump())


@pytest.mark.parametrize(("args", "fragment"), [
    (("--gpu", "4900", "--dry-run"), "unknown GPU type '4900'"),
    (("--gpu", "4900", "--yes"), "unknown GPU type '4900'"),
    (("--gpu", A6000, "--max-price", "0.01", "--yes"), "no candidate meets the max price"),
    (("--gpu", A6000, "--budget", "0.01", "--hours", "5", "--yes"), "no candidate meets the budget"),
    (("--gpu", A6000, "--hours", "50", "--deadline", "1h", "--dry-run"), "no candidate meets the deadline"),
    (("--gpu", A6000, "--gpus", "16", "--yes"), "no market offers 16 GPUs"),
    (("--gpu", A6000, "--tolerance", "none"), "nothing launched: not confirmed"),
])
def test_a_refused_launch_leaves_the_database_as_it_was(env, args, fragment):
    before = _dump(env)
    result = _launch(env, *args, input="")
    assert result.exit_code == 1, result.output
    assert fragment in result.stderr.strip().splitlines()[-1], result.stderr
    assert _dump(env) == before
    assert env.emu.world.pods == {}


def test_a_wrong_key_leaves_the_database_as_it_was(env):
    before = _dump(env)
    result = _launch(env, "--gpu", A6000, "--yes", key="rpa_wrongkey_abcdefghijklmnopqrstuv")
    assert result.exit_code == 1 and "refused the key (HTTP 401)" in result.stderr, result.output
    assert _dump(env) == before


def test_a_dry_run_leaves_the_database_as_it_was(env):
    before = _dump(env)
    result = _launch(env, "--gpu", A6000, "--tolerance", "none", "--dry-run")
    assert result.exit_code == 0, result.output + result.stderr
    assert "Dry run: nothing was sent" in result.output and "-> dry_run" in result.output
    assert _dump(env) == before
    assert not list(env.tmp.glob("*.lock"))  # (no lock taken either)


def test_a_dry_run_on_a_database_not_there_yet_plans_and_creates_no_file(env):
    db = env.tmp / "new" / "nope.db"
    result = _launch(env, "--gpu", A6000, "--tolerance", "none", "--dry-run", db=str(db))
    assert result.exit_code == 0, result.output + result.stderr
    assert result.output.startswith("Plan: NVIDIA RTX A6000") and "Dry run: nothing was sent" in result.output
    refused = _launch(env, "--gpu", "4900", "--yes", db=str(db))
    assert refused.exit_code == 1 and "unknown GPU type '4900'" in refused.stderr, refused.output
    assert not (env.tmp / "new").exists()


def test_a_launch_that_goes_ahead_keeps_the_snapshot_it_planned_on(env):
    db = env.tmp / "first.db"
    result = _launch(env, "--gpu", A6000, "--tolerance", "none", "--yes", db=str(db))
    assert result.exit_code == 0, result.output + result.stderr
    [pod] = env.emu.world.pods.values()
    with sqlite3.connect(db) as conn:
        collections = conn.execute("SELECT ts, quotes, error FROM collections").fetchall()
        actions = conn.execute("SELECT kind, outcome, pod_id FROM actions").fetchall()
    assert [(ts, error) for ts, _, error in collections] == [(to_iso(env.emu.now), None)]
    assert collections[0][1] > 0
    assert actions == [("deploy_on_demand", "ok", pod.id)]
