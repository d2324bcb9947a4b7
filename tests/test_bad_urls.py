"""An API URL holding a space or a control character (an environment variable ending in a newline,
a tab pasted in), through the real CLI against the emulator: one line naming the character and
its position, and no database left behind (`collect --api-url $'...graphql\\n'` ended in httpx's
`InvalidURL` traceback and left an empty database; a leading space was quoted without it)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from bidder.cli import main
from bidder.errors import ConfigError
from bidder.runpod.client import checked_url
from bidder.sim import TEST_API_KEY


@pytest.mark.parametrize(("url", "told"), [
    ("http://127.0.0.1:1/graphql\n", "a line break at character 27"),
    (" http://127.0.0.1:1/graphql", "a space at character 1"),
    ("http://127.0.0.1:1/gra\tphql", "a tab at character 23"),
    ("http://127.0.0.1:1/graphql\x07", "a non-printable character (U+0007) at character 27"),
    ("http://127.0.0.1:1/\u200bgraphql", "a non-printable character (U+200B) at character 20"),
])
def test_checked_url_names_the_character_and_its_position(url, told):
    with pytest.raises(ConfigError) as info:
        checked_url(url, what="API URL", example="https://api.runpod.io/graphql", env="RUNPOD_API_KEY", key="api_url")
    assert str(info.value) == f"the API URL holds {told}: give the URL without it, such as https://api.runpod.io/graphql"


def run(tmp_path, args, env):
    result = CliRunner(env={"RUNPOD_API_KEY": TEST_API_KEY, "VAST_API_KEY": TEST_API_KEY, "HOME": str(tmp_path),
                            **env}).invoke(main, args)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output + result.stderr
    [line] = result.stderr.strip().splitlines()
    assert list(tmp_path.iterdir()) == [], list(tmp_path.iterdir())  # no database, no lock, no folder
    return line


@pytest.mark.parametrize("command", [
    ["collect", "--market", "runpod"],
    ["pods", "--refresh"],
    ["recommend", "--refresh", "--gpu", "RTX 4090", "--hours", "5", "--market", "runpod"],
    ["launch", "--gpu", "RTX 4090", "--image", "x", "--dry-run"],
    ["stop", "abc", "--dry-run"],
])
def test_a_line_break_in_the_api_url_is_one_line_and_no_file(emulator, tmp_path, command):
    db = str(tmp_path / "sub" / "u3.db")
    line = run(tmp_path, [*command, "--db", db, "--api-url", emulator.url + "\n"], {})
    assert line.startswith("Error: the API URL (--api-url or RUNPOD_API_URL) holds a line "
                           f"break at character {len(emulator.url) + 1}: give the URL without it, such as "
                           "https://api.runpod.io/graphql"), line
    in_env = run(tmp_path, [*command, "--db", db], {"RUNPOD_API_URL": emulator.url.replace("graphql", "gra\tphql")})
    assert "the API URL (--api-url or RUNPOD_API_URL) holds a tab at character" in in_env, in_env


def test_a_leading_space_is_said_not_quoted_away(emulator, tmp_path):
    line = run(tmp_path, ["collect", "--market", "runpod", "--db", str(tmp_path / "u.db"), "--api-url",
                          " " + emulator.url], {})
    assert "the API URL (--api-url or RUNPOD_API_URL) holds a space at character 1" in line, line


def test_a_line_break_in_vast_url_is_one_line_and_no_file(emulator, tmp_path):
    for command in (["collect", "--market", "vast"], ["pods", "--refresh"]):
        line = run(tmp_path, [*command, "--db", str(tmp_path / "v.db")], {"VAST_URL": emulator.vast_url + "\n"})
        assert line.startswith("Error: the Vast URL (--vast-url or VAST_URL) holds a line break "
                               f"at character {len(emulator.vast_url) + 1}"), line


@pytest.mark.parametrize(("tail", "whose"), [("/api/v0", "an API path bidder adds itself"),
                                             ("/api/v0/", "an API path bidder adds itself"),
                                             ("/graphql", "RunPod's API path")])
def test_a_vast_url_ending_in_an_api_path_is_one_line_naming_it_and_no_file(emulator, tmp_path, tail, whose):
    # (Vast's docs write https://console.vast.ai/api/v0/...: a VAST_URL copied from them asked
    # /api/v0/api/v0/bundles/, and the emulator's answer read "not_found; no route", not a wrong URL.)
    for command in (["collect", "--market", "vast"], ["pods", "--refresh"]):
        line = run(tmp_path, [*command, "--db", str(tmp_path / "v.db")], {"VAST_URL": emulator.vast_url + tail})
        assert line == (f"Error: the Vast URL (--vast-url or VAST_URL) ends in {tail.rstrip('/')}, {whose}: give the "
                        "server's address alone, such as https://console.vast.ai (or http://127.0.0.1:PORT for "
                        "`bidder sim serve`)"), line
    assert emulator.vast.instances == {}
