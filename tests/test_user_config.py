"""~/.config/bidder/config.toml (or $XDG_CONFIG_HOME/bidder/config.toml), where the API keys may live:
read by the real CLI in a subprocess (the path is fixed when bidder is imported), against the emulator."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bidder.sim import TEST_API_KEY
from bidder.store import Store

MAIN = "from bidder.cli import main; main()"


def collect(emulator, tmp_path, config: bytes) -> subprocess.CompletedProcess:
    folder = tmp_path / "cfg" / "bidder"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.toml").write_bytes(config)
    env = {k: v for k, v in os.environ.items() if k not in ("RUNPOD_API_KEY", "VAST_API_KEY")}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "cfg"), BIDDER_DB=str(tmp_path / "b.db"))
    return subprocess.run([sys.executable, "-c", MAIN, "collect", "--market", "runpod", "--api-url", emulator.url],
                          env=env, capture_output=True, text=True, timeout=120)


def test_the_key_from_the_config_file_is_used(emulator, tmp_path):
    result = collect(emulator, tmp_path, f'api_key = "{TEST_API_KEY}"\n'.encode())
    assert result.returncode == 0, result.stderr
    with Store.open(tmp_path / "b.db") as store:
        assert [r["error"] for r in store.collections()] == [None]


@pytest.mark.parametrize(("config", "line"), [
    # A misspelt name, or a number, left the key unset without a word: the catalogue is public, so the
    # collection ran without a key, and a market that needed one was skipped.
    (b'apikey = "x"\n', "unknown key 'apikey'; it holds api_key (RunPod) and vast_api_key (Vast) only"),
    (b"api_key = 12345\n", 'api_key must be text in quotes, e.g. api_key = "..."'),
    # Not UTF-8: a traceback before.
    (b'api_key = "\xff\xfe"\n', 'cannot read {path}: it is not UTF-8 text; write it again as plain text'),
])
def test_a_config_file_bidder_cannot_use_is_one_line(emulator, tmp_path, config, line):
    result = collect(emulator, tmp_path, config)
    path = tmp_path / "cfg" / "bidder" / "config.toml"
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    [error] = result.stderr.strip().splitlines()
    assert error.startswith("Error: ") and line.format(path=path) in error, error
    if (tmp_path / "b.db").exists():
        with Store.open(tmp_path / "b.db") as store:
            assert store.collections() == []  # nothing collected without the key the file meant


def test_a_config_path_that_is_a_folder_is_one_line(emulator, tmp_path):
    """A folder where the file should be was skipped without a word: the key in it never read."""
    (tmp_path / "cfg" / "bidder" / "config.toml").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k not in ("RUNPOD_API_KEY", "VAST_API_KEY")}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "cfg"), BIDDER_DB=str(tmp_path / "b.db"))
    result = subprocess.run([sys.executable, "-c", MAIN, "collect", "--market", "runpod", "--api-url", emulator.url],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    [error] = result.stderr.strip().splitlines()
    assert error == (f"Error: {tmp_path / 'cfg' / 'bidder' / 'config.toml'} is not a file; put api_key = \"...\" "
                     "(and vast_api_key) in a file of that name, or set RUNPOD_API_KEY / VAST_API_KEY"), error
