"""A market that refuses the key while `recommend --refresh` or `launch` refreshes its prices is the
command's error: one `Error: MARKET: ...` line saying how to fix the key, exit 1, nothing stored, as
`bidder collect` says it (an API that cannot be reached still leaves the stored prices to decide on).
Over the emulator, whose answer to a wrong key is HTTP 401."""

from __future__ import annotations

import sqlite3

import pytest
from click.testing import CliRunner
from executor_helpers import A6000, make_env

from bidder.cli import main
from bidder.sim import TEST_API_KEY
from bidder.units import to_iso

WRONG = "rpa_wrongkey_abcdefghijklmnopqrstuv"  # (no 12-character piece in common with the right one)
RUNPOD_REFUSED = ("Error: runpod: lowestPrice: the API refused the key (HTTP 401): check RUNPOD_API_KEY, or api_key "
                  "in ~/.config/bidder/config.toml")
VAST_REFUSED = "Error: vast: search_offers: Vast refused the key (HTTP 401): "


@pytest.fixture
def env(emulator, client, tmp_path):
    e = make_env(emulator, client, tmp_path)
    e.store.close()  # (the CLI is the only one to open it)
    yield e


def _run(env, *args: str, runpod_key: str = TEST_API_KEY, vast_key: str = TEST_API_KEY):
    runner = CliRunner(env={"RUNPOD_API_KEY": runpod_key, "VAST_API_KEY": vast_key})
    return runner.invoke(main, [*args, "--db", str(env.tmp / "bidder.db"), "--api-url", env.emu.url,
                                "--vast-url", env.emu.vast_url, "--now", to_iso(env.emu.now)])


def _dump(env) -> str:
    with sqlite3.connect(env.tmp / "bidder.db") as conn:
        return "\n".join(conn.iterdump())


@pytest.mark.parametrize(("market", "keys", "said"), [
    ("runpod", {"runpod_key": WRONG}, RUNPOD_REFUSED),
    ("vast", {"vast_key": WRONG}, VAST_REFUSED),
    ("any", {"vast_key": WRONG}, VAST_REFUSED),
])
def test_recommend_refresh_with_a_wrong_key_is_an_error(env, market, keys, said):
    result = _run(env, "recommend", "--gpu", A6000 if market == "runpod" else "4090", "--hours", "5", "--refresh",
                  "--market", market, **keys)
    assert result.exit_code == 1, result.output
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(said), line
    assert WRONG not in result.output and "Traceback" not in result.output
    assert "Note:" not in result.stdout  # (it decided on the stored prices, and said so in a note)


def test_recommend_refresh_with_a_wrong_key_stores_nothing(env):
    before = _dump(env)
    result = _run(env, "recommend", "--gpu", A6000, "--hours", "5", "--refresh", "--market", "runpod",
                  runpod_key=WRONG)
    assert result.exit_code == 1 and result.stderr.startswith(RUNPOD_REFUSED), result.output
    assert _dump(env) == before  # (no error row either: the collector keeps those for `bidder collect`)


@pytest.mark.parametrize(("keys", "said"), [
    ({"runpod_key": WRONG}, RUNPOD_REFUSED),
    ({"vast_key": WRONG}, VAST_REFUSED),
])
def test_launch_with_one_markets_key_wrong_is_an_error_not_a_plan_on_the_other(env, keys, said):
    """With both markets open, the one whose key was refused was left out with a note, and the launch
    went on to plan on the other."""
    before = _dump(env)
    result = _run(env, "launch", "--gpu", "4090", "--tolerance", "none", "--image", "img", "--dry-run", **keys)
    assert result.exit_code == 1, result.output
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(said), line
    assert "Plan:" not in result.output
    assert _dump(env) == before
