"""`bidder report --html`: one self-contained page over a simulated week with interruptions on the
emulator (real HTTP), its numbers against the emulator's bill, its files, and a real browser."""

from __future__ import annotations

import base64
import io
import json
import os
import random
import re
import shutil
import struct
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from executor_helpers import GPUS, make_env
from PIL import Image

from bidder.cli import main
from bidder.executor import running_hours
from bidder.report.data import spend_report
from bidder.runpod import RetryPolicy, RunPodClient
from bidder.sim import Emulator
from bidder.store import Store
from bidder.tick import job_progress
from bidder.units import to_iso

PNG = b"\x89PNG\r\n\x1a\n"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def week(tmp_path_factory):
    """A keep-running job ticked every 20 minutes for 7 simulated days, then the HTML report."""
    tmp = tmp_path_factory.mktemp("week")
    with Emulator(seed=0) as emu:
        emu.world.reclaim_rate_per_hour = 0.1  # reclaims on top of outbids: interruptions to report
        retry = RetryPolicy(attempts=3, base=0.01, max_delay=0.05, max_total=10.0, rng=random.Random(0))
        with RunPodClient(api_key=emu.api_key, url=emu.url, retry=retry, timeout=5.0) as client:
            env = make_env(emu, client, tmp)
            config = env.config(f"""collect_interval = "1h"

[jobs.svc]
gpu = {list(GPUS)!r}
keep_running = true
tolerance = 24
min_savings = 0
restart_overhead = "15m"
image = "runpod/pytorch:latest"
""".replace("'", '"'))
            start = env.emu.now
            env.run(config, minutes=7 * 24 * 60, every=20)
            env.tick(config)
            end = env.emu.now + timedelta(seconds=1)
            report = spend_report(env.store, since=start, until=end)
            billed = {p.pod_id: env.emu.world.true_spend(p.pod_id) for p in report.pods}
            # Runs bidder ended itself (a running spot pod decided again: re-bid or moved), each a restart too.
            own_ends = sum(1 for a in env.store.actions("svc") if a["kind"] in ("stop", "terminate") and a["outcome"] == "ok")
            # An interruption at the end of the week not yet followed by a run is no restart yet.
            waiting = not any(p.desired_status == "RUNNING" for p in env.emu.world.pods.values())
            work = job_progress(env.store, config.jobs["svc"], save=False)[0]
            ran = sum(running_hours(env.store.observations(p["pod_id"])) for p in env.store.managed_pods("svc"))
            db = str(env.store.path)
            env.store.close()
    out = tmp / "html"
    result = CliRunner().invoke(main, ["report", "--db", db, "--since", to_iso(start), "--now", to_iso(end),
                                       "--html", str(out), "--config", str(tmp / "bidder.toml")])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"Wrote {out / 'report.html'}"
    return {"out": out, "page": (out / "report.html").read_text(), "report": report, "billed": billed,
            "db": db, "start": start, "end": end, "own_ends": own_ends,
            "waiting": waiting, "tick_lost": ran - work}


def _money(text: str, label: str) -> float:
    match = re.search(rf"<span>{re.escape(label)}</span><b>\$([\d,]+\.\d\d)", text)
    assert match, f"no {label!r} card in the page"
    return float(match.group(1).replace(",", ""))


def test_the_headline_is_the_emulators_bill(week):
    page, report, billed = week["page"], week["report"], week["billed"]
    assert report.totals.interruptions >= 3, "a week with reclaims must interrupt the job to mean anything"
    assert _money(page, "Spent") == pytest.approx(sum(billed.values()), rel=0.01)
    assert _money(page, "On-demand would have cost") == pytest.approx(report.totals.on_demand_cost, abs=0.006)
    assert f"<span>Interruptions</span><b>{report.totals.interruptions}</b>" in page
    # What the tick takes off the job's work (speed 1.0: running hours less work done): each restart, an
    # interruption or a run bidder ended itself (re-bid), loses the run it ended, up to the 15 minutes
    # bidder.toml says. It was restarts x 15 minutes, more than the tick counts when a run was shorter.
    lost = re.search(r"<span>Hours lost to restarts</span><b>([\d.]+) h", page)
    restarts = report.totals.interruptions + week["own_ends"] - week["waiting"]
    assert week["own_ends"] >= 1, "a week of a service decided again at every tick re-bids at times"
    assert lost and float(lost.group(1)) == pytest.approx(week["tick_lost"], abs=0.06), (lost.group(1), week["tick_lost"])
    assert week["tick_lost"] <= restarts * 0.25 + 1e-9
    assert re.search(r"<span>Poll coverage</span><b>\d+%</b>", page)


def test_every_section_is_there_top_to_bottom(week):
    page = week["page"]
    positions = [page.index(f'id="{name}"') for name in ("headline", "jobs", "markets", "current", "states")]
    assert positions == sorted(positions)
    with Store.open(week["db"], create=False) as store:
        state = store.job_state("svc")["state"]
    assert f"<h3>Job svc</h3><p>State <b>{state}</b>" in page
    for pod in week["report"].pods:
        assert pod.pod_id in page


def test_the_page_is_self_contained(week):
    page = week["page"]
    # nothing fetched: no script, no external reference of any kind
    assert "<script" not in page.lower() and "<link" not in page.lower()
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:)""", page), "every src/href must be a data: URI"
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/|@import|url\(", page, re.I)
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) >= 4  # spend, and for each market: prices, heatmap, bids
    for data in images:
        assert base64.b64decode(data)[:8] == PNG


def test_each_chart_and_table_is_a_file_beside_it(week):
    out = week["out"]
    pngs = sorted(out.glob("*.png"))
    assert {p.name.split("-")[0] for p in pngs} >= {"spend", "market", "discount", "bids"}
    for png in pngs:
        data = png.read_bytes()
        assert data[:8] == PNG
        width, height = struct.unpack(">II", data[16:24])
        assert 600 <= width <= 2000 and 250 <= height <= 1200, (png.name, width, height)
        assert 10_000 < len(data) < 1_000_000, (png.name, len(data))
    pods = (out / "pods-svc.csv").read_text().splitlines()
    assert pods[0].startswith("pod,GPU type,cloud") and len(pods) == 1 + len(week["report"].pods)
    numbers = [cell for line in pods[1:] for cell in line.split(",") if "." in cell and cell.replace(".", "").isdigit()]
    assert numbers and all(len(n.split(".")[1]) <= 6 for n in numbers), numbers  # not 0.44999999999999996
    assert (out / "current-market.csv").read_text().count("\n") > 5
    mask = os.umask(0)
    os.umask(mask)
    assert (out / "report.html").stat().st_mode & 0o777 == 0o666 & ~mask


def test_an_empty_database_gives_a_page_that_says_so(tmp_path):
    db = tmp_path / "bidder.db"
    Store.open(db).close()
    result = CliRunner().invoke(main, ["report", "--db", str(db), "--html", str(tmp_path / "r"),
                                       "--now", "2026-01-01T00:00:00Z"])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "r" / "report.html").read_text()
    assert "Nothing yet: no managed pod ran in this period" in page
    assert "No prices collected yet" in page and "No managed job has run yet" in page


def test_an_empty_period_says_so_too(week, tmp_path):
    result = CliRunner().invoke(main, ["report", "--db", week["db"], "--html", str(tmp_path / "r"),
                                       "--since", "2020-01-01T00:00:00Z", "--until", "2020-01-02T00:00:00Z",
                                       "--now", to_iso(week["end"])])
    assert result.exit_code == 0, result.output
    assert "Nothing yet" in (tmp_path / "r" / "report.html").read_text()


def test_a_folder_that_cannot_be_made_is_one_error_line(week, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = CliRunner().invoke(main, ["report", "--db", week["db"], "--html", str(blocker / "sub"),
                                       "--now", to_iso(week["end"])])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: cannot create the report folder") and result.stderr.count("\n") == 1


def _open_in_chromium(page: Path, tmp: Path) -> tuple[bytes, list[str]]:
    """Screenshot of `page` in headless Chromium, and the URLs the page itself asked for (from
    Chromium's net log: requests with an initiator; Chromium's own background requests have none)."""
    shot, netlog = tmp / "shot.png", tmp / "net.json"
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={tmp / 'profile'}", "--hide-scrollbars", "--window-size=1100,9000",
               "--proxy-server=127.0.0.1:9", f"--log-net-log={netlog}", f"--screenshot={shot}", page.as_uri()]
    subprocess.run(command, capture_output=True, timeout=120, check=False)
    assert shot.exists(), "Chromium wrote no screenshot"
    log = json.loads(netlog.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    asked = [e["params"]["url"] for e in log["events"] if e["type"] == start_job
             and e.get("params", {}).get("initiator", "not an origin") != "not an origin"]
    return shot.read_bytes(), asked


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian package `chromium`; .ci/run "
                                               "installs it): the page was not checked in a browser")
def test_the_page_renders_in_a_real_browser_without_any_network(week, tmp_path):
    """Headless Chromium opens the page from disk; the screenshot must not be blank and the page must
    ask the network for nothing. A control page with one external image proves the check can fail."""
    control = tmp_path / "control" / "control.html"
    control.parent.mkdir()
    control.write_text('<html><body><img src="https://example.com/x.png"><p>x</p></body></html>')
    _, asked = _open_in_chromium(control, control.parent)
    assert "https://example.com/x.png" in asked

    data, asked = _open_in_chromium(week["out"] / "report.html", tmp_path)
    assert asked == [], f"the report asked the network for {asked[:5]}"
    assert data[:8] == PNG
    image = Image.open(io.BytesIO(data)).convert("L")
    assert image.size == (1100, 9000)
    ink = image.point(lambda v: 255 if v < 250 else 0)  # anything not white
    bottom = (ink.getbbox() or (0, 0, 0, 0))[3]
    # every section drawn, down to the last table, and the page ends inside the window (nothing cut)
    assert 3000 < bottom < 9000 - 20, bottom
    assert sum(ink.histogram()[255:]) > 0.04 * 1100 * bottom, "the page is almost blank"


def test_the_demo_ends_with_the_report(tmp_path):
    result = CliRunner().invoke(main, ["demo", "--days", "0.5", "--history-days", "0.5", "--keep",
                                       str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    page = tmp_path / "run" / "report" / "report.html"
    assert f"Cost report: {page}" in result.output
    assert "bidder cost report" in page.read_text()
    assert Path(page.parent / "spend-train.png").read_bytes()[:8] == PNG
