"""A dry run prints the request it would send with the secrets in it masked: every API key the process
holds wherever it appears, the values of env vars whose names look secret (KEY, TOKEN, SECRET,
PASSWORD, CREDENTIAL, AUTH, PRIVATE, PAT) and the passwords of URLs. `bidder launch` and `bidder tick` over the emulator; neither the database nor
the tick's --log holds them."""

from __future__ import annotations

import json
import sqlite3

from click.testing import CliRunner
from executor_helpers import A6000

from bidder.cli import main
from bidder.sim import TEST_API_KEY
from bidder.units import to_iso

HIDDEN = "****"  # what a dry run shows for a secret env value
#: Values a user passes to the pod that the dry run must not print (the key itself under another name too).
PASSWORD = "pw-0123456789-secret"
URL_SECRET = "url-pw-0123456789"  # a password in a URL, under a name that says nothing (DB_URL)
PAT = "ghp_0123456789abcdef"  # a GitHub personal access token
ENV = ("--env", f"RUNPOD_API_KEY={TEST_API_KEY}", "--env", f"OTHER={TEST_API_KEY}", "--env", "HF_Token=hf_abc",
       "--env", f"DB_PASSWORD={PASSWORD}", "--env", "PLAIN=hello", "--env", f"DB_URL=postgres://me:{URL_SECRET}@db:5432/x",
       "--env", f"GITHUB_PAT={PAT}", "--env", "PYTHONPATH=/app:/lib", "--env", "SITE=https://example.com:8443/a@b")
SHOWN = {"RUNPOD_API_KEY": HIDDEN, "OTHER": "***", "HF_Token": HIDDEN, "DB_PASSWORD": HIDDEN, "PLAIN": "hello",
         "DB_URL": f"postgres://me:{HIDDEN}@db:5432/x", "GITHUB_PAT": HIDDEN, "PYTHONPATH": "/app:/lib",
         "SITE": "https://example.com:8443/a@b"}


def _run(env, *args: str):
    runner = CliRunner(env={"RUNPOD_API_KEY": TEST_API_KEY, "VAST_API_KEY": TEST_API_KEY})
    return runner.invoke(main, [*args, "--db", str(env.tmp / "bidder.db"), "--api-url", env.emu.url,
                                "--vast-url", env.emu.vast_url, "--now", to_iso(env.emu.now)])


def _dump(env) -> str:
    with sqlite3.connect(env.tmp / "bidder.db") as conn:
        return "\n".join(conn.iterdump())


def _no_secret_in(*texts: str) -> None:
    for text in texts:
        for secret in (TEST_API_KEY, "hf_abc", PASSWORD, URL_SECRET, PAT):
            assert secret not in text, (secret, text)


def test_launchs_dry_run_masks_the_key_and_secret_env_values_it_would_send(env):
    result = _run(env, "launch", "--gpu", A6000, "--market", "runpod", "--tolerance", "none", "--image", "img",
                  *ENV, "--dry-run")
    assert result.exit_code == 0, result.output + result.stderr
    out = result.output
    _no_secret_in(out, result.stderr, _dump(env))
    header = next(line for line in out.splitlines() if line.startswith("Dry run: nothing was sent"))
    assert "they are sent as given" in header, header
    body = json.loads(out[out.index("# podFindAndDeployOnDemand") + len("# podFindAndDeployOnDemand"):])
    sent = {e["key"]: e["value"] for e in body["variables"]["input"]["env"]}
    assert sent == SHOWN


def test_launchs_json_dry_run_on_vast_masks_them_too(env):
    result = _run(env, "launch", "--gpu", "RTX 4090", "--market", "vast", "--tolerance", "none", "--image", "img",
                  *ENV, "--dry-run", "--format", "json")
    assert result.exit_code == 0, result.output + result.stderr
    _no_secret_in(result.output, result.stderr, _dump(env))
    out = json.loads(result.output)
    [request] = out["requests"]
    assert request["body"]["env"] == SHOWN
    assert any("they are sent as given" in note for note in out["notes"]), out["notes"]


def test_ticks_dry_run_line_and_its_log_hold_no_secret(env):
    toml = env.tmp / "bidder.toml"
    toml.write_text(f'[jobs.train]\ngpu = ["{A6000}"]\nimage = "img"\nhours = 5\ntolerance = "none"\n'
                    f'market = "runpod"\nenv = {{ API_KEY = "{TEST_API_KEY}", OTHER = "{TEST_API_KEY}", '
                    f'HF_TOKEN = "hf_abc", DB_PASSWORD = "{PASSWORD}", PLAIN = "hello" }}\n')
    log = env.tmp / "tick.jsonl"
    result = _run(env, "tick", "--config", str(toml), "--log", str(log), "--dry-run")
    assert result.exit_code == 0, result.output + result.stderr
    _no_secret_in(result.output, result.stderr, log.read_text(), _dump(env))
    line = next(line for line in result.output.splitlines() if "would launch" in line)
    assert ('[{"key": "API_KEY", "value": "****"}, {"key": "OTHER", "value": "***"}, {"key": "HF_TOKEN", '
            '"value": "****"}, {"key": "DB_PASSWORD", "value": "****"}, {"key": "PLAIN", "value": "hello"}]') in line
