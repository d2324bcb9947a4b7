"""What `pip install .` gives a user: a wheel that holds the `bidder` package (with its data files)
and no other top-level package, installed (not editable) into a fresh venv, where `bidder
backtest`, `bidder report`, `bidder chart` and `bidder sim trace` run from a folder that is not the
repository.

Building needs a build backend (setuptools and wheel, from the machine or from the package index
pip is configured with). Where none can be had, the test is skipped saying so, never passed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TRACE = "data/traces/sim-seed1-14d.csv"
# pip's words when it cannot get a build backend (offline, no index): a reason to skip, not a failure.
_NO_BACKEND = ("No matching distribution found", "Could not find a version that satisfies",
               "invalid command 'bdist_wheel'", "Network is unreachable", "Failed to establish a new connection")


def _clean_env() -> dict[str, str]:
    """The environment without this checkout on the path (the installed package must stand alone)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["MPLBACKEND"] = "Agg"
    return env


def _source_copy(dest: Path) -> Path:
    """The repository's files (tracked or new, not ignored) copied to `dest`: a build never writes
    build/ or *.egg-info into the working tree, and no stray local file reaches the wheel."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def _build_wheel(src: Path, out: Path) -> Path:
    have_backend = all(importlib.util.find_spec(m) is not None for m in ("setuptools", "wheel"))
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)]
    if have_backend:
        command.insert(5, "--no-build-isolation")
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600, env=_clean_env(), cwd=src)
    if proc.returncode != 0:
        text = proc.stdout + proc.stderr
        if any(phrase in text for phrase in _NO_BACKEND):
            pytest.skip("no build backend available here (setuptools and wheel are neither installed nor "
                        f"reachable through pip's index): {text.strip().splitlines()[-1]}")
        pytest.fail(f"building the wheel failed:\n{text}")
    wheels = sorted(out.glob("bidder-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("packaging")
    src = _source_copy(base / "src")
    return _build_wheel(src, base / "dist")


def test_the_wheel_holds_only_the_bidder_package_and_its_data(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert top == {"bidder", wheel.name.split("-py3")[0] + ".dist-info"}, sorted(top)
    for data in ("bidder/sim/schema.graphql", "bidder/sim/data/catalog.csv"):
        assert data in names
    assert "bidder/backtest/engine.py" in names and "bidder/report/data.py" in names
    assert not any(n.startswith(("analysis/", "tests/")) for n in names)


def _ledger(python: Path, db: Path, cwd: Path) -> None:
    """A pod that ran 4 hours at 0.30 beside on-demand at 0.49, written by the installed package."""
    code = f"""
from datetime import UTC, datetime, timedelta
from bidder.models import PriceQuote
from bidder.store import Store
t0 = datetime(2026, 1, 1, tzinfo=UTC)
with Store.open({str(db)!r}) as store:
    store.record_collection(t0, [PriceQuote(t0, "NVIDIA RTX A6000", "COMMUNITY", 1, 0.2, 0.49)], duration_s=0)
    store.add_pod("p1", job="train", name="train-1", gpu_type_id="NVIDIA RTX A6000", cloud="COMMUNITY",
                  gpu_count=1, kind="spot", bid_per_gpu=0.3, created=t0)
    for k in range(9):
        store.record_observation(t0 + timedelta(minutes=30 * k), "p1", desired_status="RUNNING",
                                 cost_per_hr=0.3, uptime_seconds=k * 1800.0)
"""
    subprocess.run([str(python), "-c", code], check=True, env=_clean_env(), cwd=cwd, timeout=120)


def test_pip_install_then_backtest_report_chart_and_sim(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    # The venv sees the machine's numpy, pandas, ... (no download) but gets its own bidder from the wheel.
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                    "-q", str(wheel)], check=True, env=_clean_env(), timeout=300)
    work = tmp_path / "elsewhere"
    work.mkdir()
    bidder = [str(python), "-c", "from bidder.cli import main; main(prog_name='bidder')"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*bidder, *args], capture_output=True, text=True, env=_clean_env(), cwd=work,
                              timeout=300)
        assert proc.returncode == 0, f"bidder {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
        return proc

    where = subprocess.run([str(python), "-c", "import bidder, importlib.util as u; print(bidder.__file__); "
                            "print(u.find_spec('analysis'))"], capture_output=True, text=True, check=True,
                           env=_clean_env(), cwd=work).stdout.split()
    assert where[0].startswith(str(env_dir)), where   # the installed copy, not this checkout
    assert where[1] == "None"                           # no top-level `analysis` package came along

    backtest = json.loads(run("backtest", "--trace", str(ROOT / TRACE), "--gpu", "A6000", "--hours", "10",
                              "--deadline", "1d", "--strategies", "on-demand,floor,hindsight",
                              "--format", "json").stdout)
    assert [s["name"] for s in backtest["strategies"]] == ["on-demand", "floor", "hindsight"]

    db = work / "bidder.db"
    _ledger(python, db, work)
    report = json.loads(run("report", "--db", str(db), "--since", "all", "--now", "2026-01-01T06:00:00Z",
                            "--format", "json", "--chart", str(work / "spend.png")).stdout)
    assert report["totals"]["spend"] == pytest.approx(1.2)
    assert (work / "spend.png").read_bytes()[:4] == b"\x89PNG"
    run("chart", "prices", str(work / "prices.png"), "--db", str(db), "--since", "all",
        "--now", "2026-01-01T06:00:00Z")
    assert (work / "prices.png").is_file()
    run("sim", "trace", str(work / "t.csv"), "--days", "0.1", "--gpu", "NVIDIA RTX A6000")  # package data
    assert (work / "t.csv").read_text().startswith("ts,gpu_type,")
