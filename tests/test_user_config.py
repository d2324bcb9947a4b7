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
    # Unquoted: "Invalid value (at line 1, column 11)" said nothing of quotes (and the key is not quoted back).
    (b"api_key = CFGSECRET\n", 'cannot read {path}: Invalid value (at line 1, column 11) (strings need quotes: '
                               'api_key = "...")'),
])
def test_a_config_file_bidder_cannot_use_is_one_line(emulator, tmp_path, config, line):
    result = collect(emulator, tmp_path, config)
    path = tmp_path / "cfg" / "bidder" / "config.toml"
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    [error] = result.stderr.strip().splitlines()
    assert error.startswith("Error: ") and line.format(path=path) in error, error
    assert "CFGSECRET" not in result.stdout + result.stderr
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


def _env(tmp_path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RUNPOD_API_KEY", "VAST_API_KEY", "XDG_CONFIG_HOME")}
    env.update(BIDDER_DB=str(tmp_path / "b.db"), **extra)
    return env


def test_a_key_file_others_can_read_is_said_and_still_used(emulator, tmp_path):
    """A key in a file of mode 0644 is a key other users of the server can spend with (ssh refuses such
    a file): said on stderr, once, so that cron mails it."""
    result = collect(emulator, tmp_path, f'api_key = "{TEST_API_KEY}"\n'.encode())
    path = tmp_path / "cfg" / "bidder" / "config.toml"
    path.chmod(0o644)
    result = collect(emulator, tmp_path, f'api_key = "{TEST_API_KEY}"\n'.encode())
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [f"warning: {path} holds an API key and other users can read it (mode 644): "
                                          f"chmod 600 {path}"]
    path.chmod(0o600)
    assert collect(emulator, tmp_path, f'api_key = "{TEST_API_KEY}"\n'.encode()).stderr == ""


def test_an_empty_xdg_config_home_reads_no_key_from_the_current_folder(emulator, tmp_path):
    """XDG_CONFIG_HOME="" made bidder read ./bidder/config.toml of whatever folder it ran in."""
    (tmp_path / "bidder").mkdir()
    (tmp_path / "bidder" / "config.toml").write_text('api_kee = "x"\n')
    home = tmp_path / "home"
    home.mkdir()
    # (-P: the folder `bidder` in the current one would otherwise be the package imported)
    result = subprocess.run([sys.executable, "-P", "-c", MAIN, "collect", "--market", "runpod", "--api-url", emulator.url],
                            env=_env(tmp_path, XDG_CONFIG_HOME="", HOME=str(home)), cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert "api_kee" not in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_no_home_at_all_still_runs_on_the_environments_key(emulator, tmp_path):
    """No HOME and no passwd entry (cron as a bare uid): every command died in a traceback at import
    ("Could not determine home directory"), even with the key in the environment."""
    code = ("import os, pwd; pwd.getpwuid = lambda uid: (_ for _ in ()).throw(KeyError(uid)); "
            "from bidder.cli import main; main()")
    env = _env(tmp_path, RUNPOD_API_KEY=TEST_API_KEY)
    env.pop("HOME", None)
    result = subprocess.run([sys.executable, "-c", code, "collect", "--market", "runpod", "--api-url", emulator.url],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stderr == "", result.stderr
