"""The README's emulator section, run word for word (issue 9): `bidder sim serve` as a subprocess,
then every line of the story block as written (bidder commands through the CLI with the
environment the block exports, curl lines as the same HTTP requests, the `for` loops, the heredoc),
with NO --now anywhere. Then bidder's account of the job (work done, spend, interruptions; `jobs`,
`pods` and `report`) is checked against the emulator's own (`GET /sim/pods`).

Only the port is changed (to a free one), so that tests can run side by side.
"""

from __future__ import annotations

import json
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from bidder.cli import main
from bidder.store import Store

ROOT = Path(__file__).resolve().parent.parent
SERVE = [sys.executable, "-c", "from bidder.cli import main; main()"]
_LOOP = re.compile(r"^for i in \$\(seq (\d+)\); do (.+); done$")
_HEREDOC = re.compile(r"^cat > (\S+) <<'EOF'$")


def story_lines() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("**Try it: one simulated day, start to finish.**", 1)[1]
    return section.split("```bash\n", 1)[1].split("\n```", 1)[0].splitlines()


class Shell:
    """Runs the few shell forms the story uses; anything else fails the test (so the README cannot
    grow a line nobody runs)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.env: dict[str, str] = {}
        self.serve: subprocess.Popen[str] | None = None
        self.outputs: list[tuple[str, str]] = []   # (command, what it printed)

    def run_block(self, lines: list[str]) -> None:
        pending: tuple[str, list[str]] | None = None
        for raw in lines:
            line = raw.replace("8765", str(self.port))
            if pending is not None:
                if line == "EOF":
                    Path(pending[0]).write_text("\n".join(pending[1]) + "\n")
                    pending = None
                else:
                    pending[1].append(line)
                continue
            heredoc = _HEREDOC.match(line)
            if heredoc:
                pending = (heredoc.group(1), [])
                continue
            code = shlex.split(line, comments=True)
            if not code:
                continue
            loop = _LOOP.match(line.split("  #")[0].strip())
            if loop:
                for _ in range(int(loop.group(1))):
                    for command in loop.group(2).split("; "):
                        self.run(command)
            else:
                self.run(line)
        assert pending is None, "a heredoc in the README is never closed"

    def run(self, line: str) -> None:
        words = shlex.split(line, comments=True)
        if words[:3] == ["bidder", "sim", "serve"] and words[-1] == "&":
            self.serve = subprocess.Popen([*SERVE, *words[1:-1]], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True)
            assert self.serve.stdout is not None
            first = self.serve.stdout.readline().strip()
            assert first == f"http://127.0.0.1:{self.port}/graphql", first
            self.outputs.append((line, first))
        elif words[0] == "export":
            for assignment in words[1:]:
                name, _, value = assignment.partition("=")
                self.env[name] = value
        elif words[0] == "bidder":
            result = CliRunner(env=self.env).invoke(main, words[1:])
            assert result.exit_code == 0, f"{line}\n{result.output}"
            self.outputs.append((line, result.output))
        elif words[0] == "curl":
            self.outputs.append((line, self.curl(words[1:])))
        elif words == ["kill", "%1"]:
            self.stop()
        else:
            pytest.fail(f"the README's story has a line this test cannot run: {line!r}")

    @staticmethod
    def curl(args: list[str]) -> str:
        method, data, url = None, None, None
        rest = iter(args)
        for arg in rest:
            if arg == "-s":
                continue
            if arg == "-X":
                method = next(rest)
            elif arg == "-d":
                data = next(rest)
            elif arg == ">":
                assert next(rest) == "/dev/null"
            else:
                url = arg
        assert url is not None
        answer = httpx.request(method or ("POST" if data is not None else "GET"), url, content=data, timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.text

    def output_of(self, prefix: str) -> str:
        found = [out for command, out in self.outputs if command.startswith(prefix)]
        assert found, f"the story never ran {prefix!r}"
        return found[-1]

    def stop(self) -> None:
        if self.serve is not None and self.serve.poll() is None:
            self.serve.terminate()
            self.serve.communicate(timeout=15)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli_json(env: dict[str, str], *args: str) -> Any:
    result = CliRunner(env=env).invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_the_readme_emulator_story_tells_one_consistent_story(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    shell = Shell(_free_port())
    try:
        shell.run_block(story_lines())
    finally:
        shell.stop()
    env = shell.env

    # One clock: every snapshot was stamped by the emulator, 30 simulated minutes apart from its start.
    with Store.open(tmp_path / env["BIDDER_DB"]) as store:
        stamps = [(r["ts"], r["clock"]) for r in reversed(store.collections(limit=1000))]
    assert stamps and {clock for _, clock in stamps} == {"emulator"}
    assert stamps[0][0].isoformat() == "2026-01-01T00:00:00+00:00"
    assert json.loads(shell.output_of(f"curl -s http://127.0.0.1:{shell.port}/sim/now")) == {"now": "2026-01-02T00:00:00Z"}
    assert "days old" not in shell.output_of("bidder recommend")

    account = json.loads(shell.output_of(f"curl -s http://127.0.0.1:{shell.port}/sim/pods"))
    assert account["now"] == "2026-01-03T00:00:00Z"  # a day of prices, then a day of ticks
    pods = {p["id"]: p for p in account["pods"]}
    assert pods, "the job never launched a pod"

    jobs = {j["job"]: j for j in _cli_json(env, "jobs", "--format", "json")}
    train = jobs["train"]
    emulator_hours = sum(p["running_hours"] for p in pods.values())
    emulator_interruptions = sum(p["interruptions"] for p in pods.values())
    emulator_billed = sum(p["billed"] for p in pods.values())
    # A simulated day with interruptions, finished, and the same account on both sides.
    assert train["state"] == "finished" and train["work_h"] >= 12
    assert emulator_interruptions >= 1
    assert train["interruptions"] == emulator_interruptions
    # Each restart loses the work of the run it ended, up to the default restart_overhead (10 minutes);
    # the README's account says how many minutes the story's restarts lost in all.
    # A restart is each interruption and each stop of bidder's own that the job resumed from (a re-bid).
    with Store.open(tmp_path / env["BIDDER_DB"]) as store:
        own = sum(1 for a in store.actions("train") if a["kind"] == "stop" and a["outcome"] == "ok")
    restarts, restart_h = emulator_interruptions + own, 10 / 60
    assert emulator_hours - restarts * restart_h - 0.01 <= train["work_h"] <= emulator_hours
    told = re.search(r"\(([\d.]+)\s+running hours less (\d+) minutes lost to its (\d+)\s+restarts",
                     (ROOT / "README.md").read_text())
    assert told is not None and float(told.group(1)) == pytest.approx(emulator_hours, abs=0.005)
    assert int(told.group(3)) == restarts
    assert train["work_h"] == pytest.approx(emulator_hours - int(told.group(2)) / 60, abs=0.01)
    assert train["spent"] == pytest.approx(emulator_billed, rel=0.005)

    # What the README's comments say the commands print is what they print.
    lines = {line.split("  #")[0].strip(): line.split("  #", 1)[1] for line in story_lines() if "  #" in line}
    said = re.search(r"([\d.]+) h of work done, \$([\d.]+), (\d+) interruptions", lines["bidder jobs"])
    assert said is not None
    assert (f"{train['work_h']:.2f}", f"{train['spent']:.2f}", train["interruptions"]) == \
        (said.group(1), said.group(2), int(said.group(3)))
    floor = re.search(r"\$([\d.]+)", lines[next(k for k in lines if k.startswith("bidder recommend"))])
    assert floor is not None and f"${floor.group(1)}" in shell.output_of("bidder recommend")

    # `pods` and `report` agree with each other on every pod, and with what the emulator billed.
    listed = {p["pod"]: p for p in _cli_json(env, "pods", "--all", "--format", "json")}
    report = _cli_json(env, "report", "--since", "2d", "--format", "json")
    reported = {p["pod_id"]: p for p in report["pods"]}
    assert set(listed) == set(reported) == set(pods)
    # `jobs` and `report` give the job's spend to the same digits (jobs rounded to 4 places, then its
    # table to 3: $2.483 against the report's $2.484).
    assert train["spent"] == pytest.approx(sum(p["spend"] for p in report["pods"]), abs=5e-6)
    for pod_id, pod in pods.items():
        assert reported[pod_id]["spend"] == pytest.approx(listed[pod_id]["spent"], abs=1e-3)
        assert listed[pod_id]["spent"] == pytest.approx(pod["billed"], rel=0.005, abs=1e-3)
        assert reported[pod_id]["interruptions"] == pod["interruptions"] == listed[pod_id]["interruptions"]
