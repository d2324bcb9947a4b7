"""`bidder report` and `bidder chart prices|spend` through click's CliRunner on a real SQLite file."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from bidder.cli import main
from bidder.models import PriceQuote
from bidder.store import Store

T0 = datetime(2026, 1, 1, tzinfo=UTC)
A6000, RTX4090 = "NVIDIA RTX A6000", "NVIDIA GeForce RTX 4090"
NOW = ["--now", "2026-01-01T12:00:00Z"]
PNG = b"\x89PNG\r\n\x1a\n"


def h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def fill(store: Store) -> None:
    """Hourly prices for 12 h; job train: a spot A6000 at 0.30 for 10 h, interrupted once at 4 h and
    resumed at 5 h (so 9 running hours: 2.70 USD against 9 x 0.79 = 7.11 on-demand)."""
    for k in range(13):
        store.record_collection(h(k), [
            PriceQuote(h(k), A6000, "COMMUNITY", 1, 0.25 if k != 4 else None, 0.79),
            PriceQuote(h(k), RTX4090, "COMMUNITY", 1, 0.20, 0.69)], duration_s=0.1,
            gpu_types=[{"id": A6000, "display_name": "RTX A6000", "memory_in_gb": 48},
                       {"id": RTX4090, "display_name": "RTX 4090", "memory_in_gb": 24}] if k == 0 else None)
    store.add_pod("pod-a", job="train", name="train-1", gpu_type_id=A6000, cloud="COMMUNITY", gpu_count=1,
                  kind="spot", bid_per_gpu=0.30, created=h(0))
    store.finish_action(store.begin_action(h(0), job="train", kind="rent_spot", gpu_type_id=A6000,
                                           cloud="COMMUNITY", gpu_count=1, bid_per_gpu=0.30), outcome="ok",
                        pod_id="pod-a")
    for k in range(5):
        store.record_observation(h(k), "pod-a", desired_status="RUNNING", cost_per_hr=0.30, uptime_seconds=k * 3600.0)
    store.record_observation(h(4.5), "pod-a", desired_status="EXITED", cost_per_hr=0.30, uptime_seconds=4.5 * 3600)
    store.finish_action(store.begin_action(h(5), job="train", kind="bid_resume", pod_id="pod-a", bid_per_gpu=0.30),
                        outcome="ok")
    for k in range(6):
        store.record_observation(h(5 + k * 0.9), "pod-a", desired_status="RUNNING", cost_per_hr=0.30,
                                 uptime_seconds=k * 0.9 * 3600)


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "bidder.db"
    with Store.open(path) as store:
        fill(store)
    return str(path)


@pytest.fixture
def empty_db(tmp_path):
    path = tmp_path / "empty.db"
    Store.open(path).close()
    return str(path)


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_report_table(db):
    result = run("report", "--db", db, "--since", "12h", *NOW)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == (f"Spend from 2026-01-01T00:00:00Z to 2026-01-01T12:00:00Z ({db}): 1 job, 1 pod. "
                        "Money in USD; pod-h = running hours.")
    assert lines[2].split() == ["job", "GPU", "type", "cloud", "kind", "pod-h", "GPU-h", "spent", "$", "$/GPU-h",
                                "interruptions", "on-demand", "$", "saved", "$", "saved", "%"]
    assert lines[4].split() == ["train", "NVIDIA", "RTX", "A6000", "COMMUNITY", "spot", "9.000", "9.000", "2.700",
                                "0.300", "1", "7.110", "4.410", "62"]
    assert lines[5].split() == ["TOTAL", "-", "-", "-", "9.000", "9.000", "2.700", "0.300", "1", "7.110", "4.410",
                                "62"]
    assert lines[9].split() == ["pod-a", "train", "NVIDIA", "RTX", "A6000", "COMMUNITY", "spot", "1", "0.300",
                                "9.000", "2.700", "0.300", "1", "7.110", "4.410", "62", "active"]
    assert lines[11] == "Markets over the period (USD per GPU-hour):"
    # 12 hourly snapshots in [0 h, 12 h), one without spot.
    assert lines[14].split() == ["NVIDIA", "RTX", "A6000", "COMMUNITY", "1", "12", "0.250", "0.250", "0.250",
                                 "0.790", "92"]


@pytest.mark.parametrize(("status", "shown"), [("RUNNING", "running"), ("EXITED", "paused")])
def test_a_managed_pod_shows_its_status_as_bidder_pods_does(db, status, shown):
    """A pod a tick stopped (max_price lowered under it) stays "active" in the ledger, to be resumed:
    the report showed "active" where `bidder pods` showed EXITED."""
    with Store.open(db) as store:
        store.set_pod_state("pod-a", desired_status=status)
    table = run("report", "--db", db, "--since", "12h", *NOW)
    assert table.exit_code == 0 and table.output.splitlines()[9].split()[-1] == shown
    data = json.loads(run("report", "--db", db, "--since", "12h", "--format", "json", *NOW).output)
    assert (data["pods"][0]["state"], data["pods"][0]["status"]) == ("active", status)  # the ledger's, as it is
    with Store.open(db) as store:
        store.set_pod_state("pod-a", state="stopped", ended=h(11))
    assert run("report", "--db", db, "--since", "12h", *NOW).output.splitlines()[9].split()[-1] == "stopped"


def test_report_json_shape(db):
    result = run("report", "--db", db, "--since", "all", "--format", "json", *NOW)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"db", "since", "until", "job", "jobs", "pods", "totals", "markets", "managed_pods", "notes"}
    assert (data["db"], data["since"], data["until"], data["job"]) == (db, None, "2026-01-01T12:00:00Z", None)
    [pod] = data["pods"]
    assert (pod["pod_id"], pod["spend"], pod["hours"], pod["on_demand_cost"], pod["interruptions"]) == (
        "pod-a", 2.7, 9.0, 7.11, 1)
    assert pod["interruption_times"] == ["2026-01-01T04:30:00Z"]
    assert data["jobs"][0]["pods"] == ["pod-a"] and data["jobs"][0]["gpu_types"] == [A6000]
    assert data["totals"]["job"] == "TOTAL" and data["totals"]["saving"] == 4.41
    assert round(data["totals"]["saving_pct"], 1) == 62.0
    assert [(m["gpu_type_id"], m["samples"]) for m in data["markets"]] == [(A6000, 12)]  # until is exclusive


def test_report_csv_has_pod_job_and_total_rows(db):
    result = run("report", "--db", db, "--since", "all", "--format", "csv", *NOW)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["level"], r["job"], r["pod_id"]) for r in rows] == [
        ("pod", "train", "pod-a"), ("job", "train", ""), ("total", "", "")]
    assert {r["spend"] for r in rows} == {"2.7"} and rows[0]["gpu_type_id"] == A6000
    # Which market and in which state each pod is (a mixed RunPod and Vast CSV could not tell).
    assert (rows[0]["market"], rows[1]["market"]) == ("runpod", "") and rows[0]["state"] != ""
    assert rows[2]["saving"] == "4.41" and rows[2]["interruptions"] == "1"


def test_report_for_one_job_and_unknown_job(db):
    result = run("report", "--db", db, "--since", "all", "--job", "train", "--format", "json", *NOW)
    assert result.exit_code == 0 and json.loads(result.stdout)["job"] == "train"
    result = run("report", "--db", db, "--job", "trian")
    assert result.exit_code == 2
    assert "Invalid value for --job: unknown job 'trian'; known jobs: train" in result.output
    assert "Traceback" not in result.output


def test_report_chart_is_a_png(db, tmp_path):
    out = tmp_path / "spend.png"
    result = run("report", "--db", db, "--since", "all", "--chart", str(out), *NOW)
    assert result.exit_code == 0, result.output
    assert result.output.endswith(f"Wrote {out}.\n")
    data = out.read_bytes()
    assert data[:8] == PNG and len(data) > 10_000
    assert list(tmp_path.glob(".spend.png.*")) == []  # no temporary file left behind


def test_chart_spend_and_prices_are_pngs(db, tmp_path):
    spend = tmp_path / "spend.png"
    result = run("chart", "spend", "--db", db, "--since", "all", *NOW, str(spend))
    assert result.exit_code == 0, result.output
    assert result.output == f"Wrote {spend}: 1 job(s), $2.70 spent up to 2026-01-01T12:00:00Z.\n"
    assert spend.read_bytes()[:8] == PNG
    prices = tmp_path / "prices.png"
    result = run("chart", "prices", "--db", db, "--gpu", "4090", "--pod", "pod-a", "--since", "12h", *NOW,
                 str(prices))
    assert result.exit_code == 0, result.output
    assert result.output == (f"Wrote {prices}: {RTX4090} community, {A6000} community, from 2026-01-01T00:00:00Z "
                             "to 2026-01-01T12:00:00Z; pod pod-a bid and 1 interruption(s) marked.\n")
    data = prices.read_bytes()
    assert data[:8] == PNG and len(data) > 10_000


def test_chart_prices_of_a_pod_draws_its_own_gpu_count(db, tmp_path):
    """A 2-GPU pod's bid was drawn over the 1-GPU floors (or, with none, no chart): --gpu-count
    defaults to the pod's."""
    h100 = "NVIDIA H100 80GB HBM3"
    with Store.open(db) as store:
        store.import_quotes([PriceQuote(h(k), h100, "COMMUNITY", 2, 2.0, 2.99) for k in range(12)])
        store.add_pod("pod-2", job="big", name="big-1", gpu_type_id=h100, cloud="COMMUNITY", gpu_count=2,
                      kind="spot", bid_per_gpu=2.2, created=h(1))
        for k in range(1, 6):
            store.record_observation(h(k), "pod-2", desired_status="RUNNING", cost_per_hr=4.4,
                                     uptime_seconds=(k - 1) * 3600.0)
    out = tmp_path / "p.png"
    result = run("chart", "prices", "--db", db, "--pod", "pod-2", "--since", "12h", *NOW, str(out))
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Wrote {out}: {h100} community,"), result.output
    assert out.read_bytes()[:8] == PNG
    # Asked for 1-GPU prices (as before, by default), there are none of it.
    one = run("chart", "prices", "--db", db, "--pod", "pod-2", "--gpu-count", "1", "--since", "12h", *NOW, str(out))
    assert one.exit_code == 2 and "no price of NVIDIA H100 80GB HBM3 was ever recorded for pods of 1 GPUs" in one.stderr


def test_chart_prices_defaults_to_the_types_pods_ran_on(db, tmp_path):
    out = tmp_path / "p.png"
    result = run("chart", "prices", "--db", db, "--since", "all", "--cloud", "community", *NOW, str(out))
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Wrote {out}: {A6000} community, up to")
    assert out.read_bytes()[:8] == PNG


def test_empty_database_is_an_empty_report_not_an_error(empty_db, tmp_path):
    result = run("report", "--db", empty_db)
    assert result.exit_code == 0
    assert result.output == (f"No managed pods in {empty_db} yet: nothing spent. To start, launch one with "
                             "`bidder launch --gpu NAME --image IMAGE`, or add jobs to bidder.toml and run "
                             "`bidder tick` from cron (see the README).\n")
    result = run("report", "--db", empty_db, "--format", "json", "--job", "train")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert (data["pods"], data["jobs"], data["totals"]["spend"]) == ([], [], 0)
    assert data["notes"][0].startswith(f"Job 'train' has no pods in {empty_db} yet")
    result = run("report", "--db", empty_db, "--format", "csv")
    assert result.exit_code == 0 and result.stdout == (
        "level,job,pod_id,market,gpu_type_id,cloud,kind,state,gpu_count,hours,gpu_hours,spend,avg_per_gpu_hour,"
        "interruptions,on_demand_cost,saving,saving_pct\n")
    assert result.stderr.startswith("No managed pods")
    out = tmp_path / "x.png"
    out.write_bytes(b"last week's chart")
    result = run("chart", "prices", str(out), "--db", empty_db)
    assert result.exit_code == 0 and f"wrote {out}, which says so" in result.output.lower(), result.output
    assert out.read_bytes().startswith(b"\x89PNG")  # not last week's chart, which looked current
    # The spend chart says nothing ran: a cron job forwarding it must not send last week's.
    for args in (["report", "--chart", str(out)], ["chart", "spend", str(out)]):
        out.write_bytes(b"last week's chart")
        result = run(*args, "--db", empty_db, *NOW)
        assert result.exit_code == 0, result.output
        assert f"Wrote {out}: nothing ran in the period, and the chart says so." in result.output + result.stderr
        assert out.read_bytes()[:8] == PNG
    assert "First collect prices with `bidder collect`" in run("chart", "prices", "--db", empty_db, str(out)).output


def test_a_period_without_pods_says_how_to_widen_it(db):
    # Before its launch: a pod still active is in every period after it (unpolled: see test_report_e2e).
    result = run("report", "--db", db, "--since", "2025-12-30T00:00:00Z", "--until", "2025-12-31T00:00:00Z", *NOW)
    assert result.exit_code == 0
    assert result.output == ("No managed pod ran from 2025-12-30T00:00:00Z to 2025-12-31T00:00:00Z: all 1 pod(s) "
                             "ran outside this period; widen it, e.g. --since all.\n")
    # From the first record on already: "--since all" was given, and only --until can widen it.
    result = run("report", "--db", db, "--since", "all", "--until", "2025-12-31T00:00:00Z", *NOW)
    assert result.exit_code == 0
    assert result.output == ("No managed pod ran up to 2025-12-31T00:00:00Z: all 1 pod(s) ran outside this period; "
                             "widen it, with a later --until (or none).\n")


def test_bad_options_are_one_line_and_non_zero(db, tmp_path):
    missing = tmp_path / "nope.db"
    result = run("report", "--db", str(missing))
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: no bidder database at {missing}: nothing to report yet;")
    assert not missing.exists()
    result = run("chart", "prices", "--db", db, "--gpu", "A6001", str(tmp_path / "p.png"))
    assert (result.exit_code, result.output) == (1, "Error: unknown GPU type 'A6001'; close matches: "
                                                    f"{A6000}, RTX A6000\n")
    result = run("chart", "prices", "--db", db, "--pod", "pod-z", str(tmp_path / "p.png"))
    assert result.exit_code == 2 and "bidder manages no pod 'pod-z'; recent pods: pod-a" in result.output
    result = run("report", "--db", db, "--since", "last week")
    assert result.exit_code == 2 and "'last week' is neither a duration before now" in result.output
    result = run("report", "--db", db, "--since", "1h", "--until", "2h")
    assert result.exit_code == 2 and "the period is empty" in result.output
    result = run("report", "--db", db, "--now", "noon")
    assert result.exit_code == 2 and "'noon' is not an ISO 8601 time" in result.output
    result = run("chart", "spend", "--db", db, "--since", "all", *NOW, str(tmp_path / "spend.xyz"))
    assert result.exit_code == 2 and "cannot write a .xyz chart; use one of" in result.output
    result = run("chart", "spend", "--db", db, "--since", "all", *NOW, str(tmp_path / "no" / "spend.png"))
    assert result.exit_code == 1 and "folder" in result.output and "does not exist" in result.output
    out = tmp_path / "page"  # a mistyped --config would report the default restart overhead without a word
    result = run("report", "--db", db, "--since", "all", *NOW, "--html", str(out), "--config", str(tmp_path / "bidder.tml"))
    assert (result.exit_code, result.output) == (1, f"Error: no jobs file at {tmp_path / 'bidder.tml'}; give --config "
                                                    "the bidder.toml your jobs run from, or leave it out to use the "
                                                    "default restart overhead\n")
    assert not out.exists()
    for result in [run("report", "--db", db, "--job", "x"), run("chart", "prices", "--db", db, "--gpu", "zzz", "o.png")]:
        assert "Traceback" not in result.output


@pytest.mark.parametrize("command", [["report"], ["chart"], ["chart", "prices"], ["chart", "spend"]])
def test_help_ends_with_an_example(command):
    result = run(*command, "--help")
    assert result.exit_code == 0
    tail = result.output.rstrip().splitlines()
    example = max(i for i, line in enumerate(tail) if line.strip() == "Example:")
    assert all(line.strip().startswith("bidder ") for line in tail[example + 1:])
    assert tail[-1].strip().startswith(f"bidder {command[0]}")


def test_loading_the_cli_does_not_import_the_report_analysis():
    """A cron `bidder tick` must not pay for analysis: the report modules (and matplotlib) are
    imported only inside the report commands."""
    code = ("import sys, bidder.cli; "
            "print(sorted(m for m in ('bidder.report.data', 'bidder.report.charts', 'matplotlib') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_an_on_demand_pod_saves_zero_not_minus_zero(tmp_path):
    path = tmp_path / "od.db"
    with Store.open(path) as store:
        store.record_collection(h(0), [PriceQuote(h(0), "NVIDIA A40", "SECURE", 1, 0.2, 0.69)], duration_s=0)
        store.add_pod("od", job="batch", name="batch-1", gpu_type_id="NVIDIA A40", cloud="SECURE", gpu_count=1,
                      kind="on_demand", bid_per_gpu=None, created=h(0))
        for k in range(13):  # 2.6 h at 0.69 polled every 13 minutes: the saving comes out as -2e-16
            store.record_observation(h(k * 13 / 60), "od", desired_status="RUNNING", cost_per_hr=0.69,
                                     uptime_seconds=k * 780.0)
    result = run("report", "--db", str(path), "--since", "all", *NOW)
    assert result.exit_code == 0, result.output
    row = result.output.splitlines()[4].split()
    assert row == ["batch", "NVIDIA", "A40", "SECURE", "on_demand", "2.600", "2.600", "1.794", "0.690", "0", "1.794",
                   "0.000", "0"]
    data = json.loads(run("report", "--db", str(path), "--since", "all", "--format", "json", *NOW).stdout)
    assert str(data["totals"]["saving"]) == "0.0"


def launched_once(path) -> str:
    """A database whose only pod was launched at 11 h and polled once: it ran 0 hours so far."""
    with Store.open(path) as store:
        store.record_collection(h(11), [PriceQuote(h(11), A6000, "COMMUNITY", 1, 0.25, 0.79)], duration_s=0)
        store.add_pod("new", job="train", name="train-1", gpu_type_id=A6000, cloud="COMMUNITY", gpu_count=1,
                      kind="spot", bid_per_gpu=0.30, created=h(11))
        store.record_observation(h(11), "new", desired_status="RUNNING", cost_per_hr=0.30, uptime_seconds=0.0)
    return str(path)


def test_the_page_of_a_pod_that_ran_0_hours_shows_no_saving_percentage(tmp_path):
    db = launched_once(tmp_path / "b.db")
    out = tmp_path / "page"
    result = run("report", "--db", db, "--since", "12h", *NOW, "--html", str(out))
    assert result.exit_code == 0, result.output
    page = (out / "report.html").read_text()
    assert "<span>Saved</span><b>$0.00</b>" in page  # no percentage of a zero on-demand cost


def test_the_page_puts_the_minus_before_the_dollar(tmp_path):
    """A spot pod that paid more than on-demand (bid 0.80 against 0.79): the page's saving is -$0.01."""
    path = tmp_path / "dear.db"
    with Store.open(path) as store:
        for k in range(2):
            store.record_collection(h(k), [PriceQuote(h(k), A6000, "COMMUNITY", 1, 0.25, 0.79)], duration_s=0)
        store.add_pod("dear", job="train", name="train-1", gpu_type_id=A6000, cloud="COMMUNITY", gpu_count=1,
                      kind="spot", bid_per_gpu=0.80, created=h(0))
        for k in range(2):
            store.record_observation(h(k), "dear", desired_status="RUNNING", cost_per_hr=0.80,
                                     uptime_seconds=k * 3600.0)
    out = tmp_path / "page"
    result = run("report", "--db", str(path), "--since", "all", *NOW, "--html", str(out))
    assert result.exit_code == 0, result.output
    page = (out / "report.html").read_text()
    assert "<span>Saved</span><b>-$0.01 (-1%)</b>" in page
    assert "$-" not in page


@pytest.mark.parametrize("given, error", [
    ("", "Error: Invalid value for --html: the folder's name is empty; give one, e.g. --html report"),
    ("my-report.html", "Error: Invalid value for --html: 'my-report.html' names a page, but --html takes a folder; "
                       "the page is DIR/report.html (e.g. --html my-report)"),
    ("out/Page.HTM/", "Error: Invalid value for --html: 'out/Page.HTM/' names a page, but --html takes a folder; "
                      "the page is DIR/report.html (e.g. --html out/Page)"),
])
def test_html_takes_the_name_of_a_folder(db, tmp_path, monkeypatch, given, error):
    monkeypatch.chdir(tmp_path)  # an empty name would write into the current folder
    result = run("report", "--db", db, "--since", "all", *NOW, "--html", given)
    assert result.exit_code == 2
    assert result.output.startswith(f"{error} (see `") and result.output.count("\n") == 1, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bidder.db"]  # no report.html, no my-report.html/


@pytest.mark.parametrize("other, error", [
    (["--format", "json"], "--format json prints the report and --html writes it as a page; give one of them"),
    (["--format", "table"], "--format table prints the report and --html writes it as a page; give one of them"),
    (["--chart", "spend.png"], "--chart draws the printed report's spend chart; --html draws it on the page"),
])
def test_html_is_not_given_with_a_printed_format_or_chart(db, tmp_path, other, error):
    out = tmp_path / "page"
    result = run("report", "--db", db, "--since", "all", *NOW, "--html", str(out), *other)
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert result.output.startswith(f"Error: {error}")
    assert not out.exists()


def test_a_second_report_into_the_folder_removes_the_files_of_the_first_it_did_not_write(db, tmp_path):
    out = tmp_path / "page"
    result = run("report", "--db", db, "--since", "all", *NOW, "--html", str(out))
    assert result.exit_code == 0, result.output
    first = {p.name for p in out.iterdir()}
    assert {"spend-train.png", "pods-train.csv", "market-nvidia-rtx-a6000-community-1.png"} <= first
    mine = ["notes.txt", "market-notes.txt", "pods.csv", "spend-2025.pdf"]  # the user's own files
    for name in mine:
        (out / name).write_text("mine")
    (out / "bids-old").mkdir()
    # a period in which no pod ran: a page without the job's and the market's charts and tables
    result = run("report", "--db", db, "--since", "2025-12-30T00:00:00Z", "--until", "2025-12-31T00:00:00Z",
                 *NOW, "--html", str(out))
    assert result.exit_code == 0, result.output
    assert "Nothing yet" in (out / "report.html").read_text()
    assert sorted(p.name for p in out.iterdir()) == sorted(["report.html", "current-market.csv", "bids-old", *mine])
    assert all((out / name).read_text() == "mine" for name in mine)


def _report_with_a_full_disk(db: str, out: Path) -> subprocess.CompletedProcess:
    """`bidder report --html out` in a process that may write no file over 120 kB: the charts (under
    60 kB each) and tables land, the page (over 200 kB, the charts embedded) does not, as on a full disk."""
    import resource

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (120_000, 120_000))  # Python ignores SIGXFSZ: EFBIG

    assert Path(db).stat().st_size < 120_000
    return subprocess.run([sys.executable, "-m", "bidder", "report", "--db", db, "--since", "all", *NOW, "--html",
                           str(out)], capture_output=True, text=True, preexec_fn=limit)


def test_a_failed_report_leaves_no_folder_it_made_behind(db, tmp_path):
    result = _report_with_a_full_disk(db, tmp_path / "new" / "page")
    assert (result.returncode, result.stderr) == (1, f"Error: cannot write the report into {tmp_path / 'new' / 'page'}: "
                                                     "File too large\n")
    assert not (tmp_path / "new").exists()  # page/ and new/ both made by the report, both gone again
    # a folder that was there before stays, and so does what is in it
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    result = _report_with_a_full_disk(db, tmp_path / "mine")
    assert result.returncode == 1
    assert (tmp_path / "mine" / "notes.txt").read_text() == "mine"
    (tmp_path / "empty").mkdir()
    assert _report_with_a_full_disk(db, tmp_path / "empty").returncode == 1
    assert (tmp_path / "empty").is_dir()


@pytest.fixture
def emulated_db(tmp_path):
    """The `db` ledger as `bidder sim serve` stamps it: its clock is the emulator's, 2026-01-01T12:00Z."""
    path = tmp_path / "emulated.db"
    with Store.open(path) as store:
        store.clock = "emulator"
        fill(store)
    return str(path)


def test_the_period_counts_back_from_the_emulators_clock(emulated_db, tmp_path):
    """Not the wall clock's: months after the emulator's time, `--until` alone left an empty period."""
    result = run("report", "--db", emulated_db, "--until", "2026-01-01T06:00:00Z", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["since"], data["until"]) == ("2025-12-25T12:00:00Z", "2026-01-01T06:00:00Z")
    out = tmp_path / "spend.png"
    result = run("chart", "spend", "--db", emulated_db, "--since", "7d", "--until", "6h", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Wrote {out}: 1 job(s), $1.65 spent from 2025-12-25T12:00:00Z to "
                                    "2026-01-01T06:00:00Z.")


@pytest.mark.parametrize(("args", "error"), [
    (["--since", "0d"], "Invalid value for --since: the period is empty: --since 0d (2026-01-01T12:00:00Z) is not "
                        "before now (2026-01-01T12:00:00Z)"),
    (["--until", "3d", "--since", "2d"], "Invalid value for --since/--until: the period is empty: --since 2d "
                                         "(2025-12-30T12:00:00Z) is not before --until 3d (2025-12-29T12:00:00Z)"),
    (["--until", "2025-12-01T00:00:00Z"], "Invalid value for --until: the period is empty: the default --since 7d "
                                          "(2025-12-25T12:00:00Z) is not before --until 2025-12-01T00:00:00Z"),
])
def test_an_empty_period_names_the_options_given_on_the_databases_clock(emulated_db, tmp_path, args, error):
    for command in (["report"], ["chart", "spend", str(tmp_path / "x.png")]):
        result = run(*command, "--db", emulated_db, *args)
        assert result.exit_code == 2 and error in result.output, result.output
        assert "Traceback" not in result.output


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc and /sys: no file can be made there")
@pytest.mark.parametrize("out", ["/proc/x.png", "/sys/x.png"])
@pytest.mark.parametrize("command", [["report", "--chart"], ["chart", "spend"], ["chart", "prices"]])
def test_an_unwritable_chart_path_is_one_error_line(db, command, out):
    result = run(*command, out, "--db", db, "--since", "all", *NOW)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert result.output.startswith(f"Error: cannot write the chart to {out}: ")
    assert result.output.endswith("; choose a folder you can write to\n")


def _read_only_mounts() -> bool:
    probe = subprocess.run(["unshare", "-rm", "--propagation", "private", "sh", "-c", "mount -t tmpfs -o ro tmpfs /tmp"],
                           capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not shutil.which("unshare") or not _read_only_mounts(),
                    reason="needs unshare and a mount namespace to make a read-only file system")
@pytest.mark.parametrize("which", ["db", "empty_db"])
def test_a_chart_into_a_read_only_folder_is_refused_before_the_report(request, tmp_path, which):
    """`report --chart rodir/x.png` printed the whole report, then failed to write the chart."""
    db = request.getfixturevalue(which)
    rom = tmp_path / "rom"
    rom.mkdir()
    # A read-only file system in a mount namespace of the child's own: the test's machine is untouched.
    script = f'mount -t tmpfs -o ro tmpfs {rom} && exec "$0" -m bidder "$@"'
    result = subprocess.run(["unshare", "-rm", "--propagation", "private", "sh", "-c", script, sys.executable,
                             "report", "--db", db, "--since", "all", *NOW, "--chart", f"{rom}/x.png"],
                            capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout) == (1, ""), result.stdout + result.stderr
    assert result.stderr == (f"Error: cannot write the chart to {rom}/x.png: Read-only file system; choose a folder "
                             "you can write to\n")


def test_a_chart_path_that_is_no_file_name_or_whose_folder_is_a_file_is_refused(db, tmp_path):
    result = run("report", "--db", db, *NOW, "--chart", "")
    assert result.exit_code == 2 and "Invalid value for --chart: the chart's file name is empty" in result.output
    result = run("report", "--db", db, *NOW, "--chart", f"{db}/x.png")
    assert (result.exit_code, result.output) == (1, f"Error: cannot write the chart to {db}/x.png: {db} is a file, "
                                                    "not a folder; choose a file in a folder\n")


def test_an_interruption_seen_by_the_newest_poll_is_in_a_report_that_ends_now(db):
    """pod-a's pause is seen by the poll at 4.5 h. A report as of then (the emulator's clock is its
    newest poll) ended its period there, exclusive, and left out the interruption `bidder pods` counted."""
    at = ["--now", "2026-01-01T04:30:00Z"]
    data = json.loads(run("report", "--db", db, "--since", "all", "--format", "json", *at).output)
    assert data["pods"][0]["interruptions"] == 1 and data["totals"]["interruptions"] == 1
    # A period that ends before that poll leaves it out.
    assert json.loads(run("report", "--db", db, "--since", "all", "--until", "2026-01-01T04:00:00Z", "--format",
                          "json", *NOW).output)["pods"][0]["interruptions"] == 0


def test_the_text_report_rounds_once():
    # Rounded to 4 places and then shown to 3, a bid of 0.152542 read 0.152 (the page and JSON: 0.153).
    from bidder.cli.common import _cell
    from bidder.cli.report import _pod_row
    from bidder.report.data import PodSpend

    pod = PodSpend(pod_id="p", job="j", name="n", gpu_type_id=A6000, cloud="COMMUNITY", gpu_count=1, kind="spot",
                   bid_per_gpu=0.152542, state="active", created=None, last_poll=None, hours=1.0, gpu_hours=1.0,
                   spend=0.152542, interruptions=0, avg_per_gpu_hour=0.152542, on_demand_cost=None, saving=None,
                   saving_pct=None)
    assert _cell(_pod_row(pod)["bid_per_gpu"]) == "0.153"


def test_a_chart_of_prices_up_to_now_holds_the_snapshot_taken_now(tmp_path):
    # One snapshot, charted as of its time: "No prices ... end the period after it begins", no chart (the
    # period [since, now) left out the sample at now, which `bidder history` counts); two drew no line.
    path = tmp_path / "one.db"
    with Store.open(path) as store:
        store.record_collection(T0, [PriceQuote(T0, A6000, "COMMUNITY", 1, 0.25, 0.79)], duration_s=0.1,
                                gpu_types=[{"id": A6000, "display_name": "RTX A6000", "memory_in_gb": 48}])
    out = tmp_path / "one.png"
    result = run("chart", "prices", str(out), "--db", str(path), "--gpu", A6000, "--since", "all",
                 "--now", "2026-01-01T00:00:00Z")
    assert result.exit_code == 0 and result.output.startswith(f"Wrote {out}: {A6000} "), result.output
    assert out.read_bytes().startswith(PNG)
    # --until stays exclusive: the same instant as its end is outside the period.
    result = run("chart", "prices", str(out), "--db", str(path), "--gpu", A6000, "--since", "all",
                 "--until", "2026-01-01T00:00:00Z", "--now", "2026-01-01T00:00:00Z")
    assert result.exit_code == 0 and f"Wrote {out}, which says so." in result.output, result.output


@pytest.mark.parametrize("command", [["report", "--chart"], ["chart", "spend"], ["chart", "prices"]])
def test_a_chart_goes_through_a_symlink_and_into_a_fifo_without_replacing_them(db, tmp_path, command):
    # The chart was written beside the path and renamed over it: a published `latest.png -> week.png`
    # became a file of its own (week.png went on showing the old chart), a FIFO's reader got nothing, and,
    # as root, a chart to /dev/stdout made /dev/stdout a regular file for every program on the machine.
    shared = tmp_path / "share"
    shared.mkdir()
    (shared / "week.png").write_text("old")
    link = tmp_path / "latest.png"
    link.symlink_to(shared / "week.png")
    result = run(*command, str(link), "--db", db, "--since", "all", *NOW)
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and (shared / "week.png").read_bytes().startswith(PNG)
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)  # (none may hang the run)
    reader.start()
    result = run(*command, str(fifo), "--db", db, "--since", "all", *NOW)
    reader.join(timeout=60)
    assert result.exit_code == 0, result.output
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and got and got[0].startswith(PNG)
