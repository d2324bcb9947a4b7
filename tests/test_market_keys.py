"""One market's key missing, through the real CLI against the emulator: what needs no key is done
without one (Vast's offer search), what needs the missing key is refused in one line naming it
before any request, and nothing is sent to RunPod without RunPod's key when Vast's is set. RunPod's
URL is a canned server on 127.0.0.1 that records every request it gets (it must get none)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from client_helpers import CannedServer, canned_server
from vast_helpers import seed_vast_history

from bidder.cli import main
from bidder.sim import TEST_API_KEY
from bidder.store import Store

NO_KEYS = {"RUNPOD_API_KEY": None, "VAST_API_KEY": None}
VAST_ONLY = {"RUNPOD_API_KEY": None, "VAST_API_KEY": TEST_API_KEY}


@pytest.fixture
def runpod_trap() -> Iterator[CannedServer]:
    with canned_server() as server:
        server.set(502, "Bad Gateway")
        yield server


def run(emu, tmp, keys: dict, *args: str, api_url: str | None = None):
    urls = ["--api-url", api_url or emu.url, "--vast-url", emu.vast_url]
    env = {"HOME": str(tmp), "XDG_CONFIG_HOME": None, "RUNPOD_API_URL": None, "VAST_URL": None, **keys}
    return CliRunner(env=env).invoke(main, [*args, "--db", str(tmp / "bidder.db"), *urls])


# -- collect ------------------------------------------------------------------------------------------
def test_collect_market_vast_without_a_key_collects_vasts_public_offers(emulator, tmp_path, runpod_trap):
    result = run(emulator, tmp_path, NO_KEYS, "collect", "--market", "vast", api_url=runpod_trap.url)
    assert result.exit_code == 0, result.output + result.stderr
    assert "vast: stored " in result.output and result.stderr == ""
    with Store.open(tmp_path / "bidder.db") as store:
        assert store.last_collection_ts(market="vast") == emulator.now
        assert store.market_names() == ["vast"]
    assert runpod_trap.seen == []


def test_collect_without_a_vast_key_on_a_database_of_vast_collections_warns(emulator, tmp_path):
    with Store.open(tmp_path / "bidder.db") as store:
        seed_vast_history(store, emulator, days=0.1)
    emulator.advance(300)
    result = run(emulator, tmp_path, NO_KEYS, "collect")
    assert result.exit_code == 0, result.output + result.stderr
    assert "stored " in result.output  # RunPod's prices, as before
    [warning] = result.stderr.splitlines()
    assert warning.startswith("warning: ") and "VAST_API_KEY" in warning and "--market vast" in warning
    with_key = run(emulator, tmp_path, VAST_ONLY, "collect")  # the key back: both said nothing
    assert with_key.exit_code == 0 and with_key.stderr == "", with_key.stderr
    assert "vast: stored " in with_key.output
