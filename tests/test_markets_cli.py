"""RunPod and Vast history side by side in one database, through the real CLI (click's CliRunner):
`prices`, `history`, `export`/`import-trace`, `recommend --market`, the `market` job key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bidder.cli import main
from bidder.errors import ConfigError
from bidder.jobs import job_from_values
from bidder.models import PriceQuote
from bidder.store import GpuTypeInfo, Store
from bidder.units import to_iso

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RP4090, A6000 = "NVIDIA GeForce RTX 4090", "NVIDIA RTX A6000"
CATALOGUE = [GpuTypeInfo(id=A6000, display_name="RTX A6000", memory_in_gb=48),
             GpuTypeInfo(id=RP4090, display_name="RTX 4090", memory_in_gb=24)]
# (market, gpu, tier, on-demand, calm floor)
MARKETS = [("runpod", A6000, "COMMUNITY", 0.49, 0.23), ("runpod", RP4090, "COMMUNITY", 0.69, 0.35),
           ("vast", "RTX 4090", "VERIFIED", 0.40, 0.20)]


def fill(path: Path, markets=MARKETS, days: float = 3.0) -> None:
    """5-minute snapshots over `days` up to NOW; the newest one arrives as a collector cycle writes it."""
    rng = np.random.default_rng(0)
    n = int(days * 288)
    quotes = []
    for market, gpu, tier, od, calm in markets:
        floor = calm * rng.uniform(0.9, 1.1, n)
        floor[rng.random(n) < 1 / 288] = od * 1.2
        for i in range(n):
            quotes.append(PriceQuote(ts=NOW - timedelta(minutes=5 * (n - 1 - i)), gpu_type_id=gpu, cloud=tier,
                                     gpu_count=1, minimum_bid_price=round(float(floor[i]), 4),
                                     uninterruptable_price=od, market=market,
                                     memory_in_gb=24 if market == "vast" else None,
                                     display_name=gpu if market == "vast" else None,
                                     offer_count=12 if market == "vast" else None))
    with Store.open(path) as store:
        store.import_quotes([q for q in quotes if q.ts != NOW])
        with store.transaction():
            for market in sorted({m[0] for m in markets}):
                store.record_collection(NOW, [q for q in quotes if q.ts == NOW and q.market == market],
                                        duration_s=0.1, market=market,
                                        gpu_types=CATALOGUE if market == "runpod" else None)


@pytest.fixture(scope="module")
def dbs(tmp_path_factory) -> tuple[Path, Path]:
    """(both markets, RunPod alone) with the same RunPod rows."""
    both, alone = tmp_path_factory.mktemp("both") / "b.db", tmp_path_factory.mktemp("alone") / "a.db"
    fill(both)
    fill(alone, [m for m in MARKETS if m[0] == "runpod"])
    return both, alone


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_prices_says_what_vasts_on_demand_column_holds_that_max_price_does_not(dbs):
    # (The table's $0.372, max_price's error's $0.369 and recommend's $0.380 for one card, unexplained.)
    both, alone = dbs
    note = ("Note: Vast's on-demand is its offer's whole price, with the storage of the 10 GB disk its search "
            "prices; max_price caps it without that storage, and recommend, launch and tick add your job's own disk "
            "(--disk) at the offer's storage price.")
    mixed = run("prices", "--db", str(both), "--now", to_iso(NOW))
    assert mixed.exit_code == 0, mixed.output
    assert mixed.stderr.splitlines() == [note]
    runpod = run("prices", "--db", str(alone), "--now", to_iso(NOW))
    assert runpod.exit_code == 0 and runpod.stderr == "", runpod.stderr

def test_prices_shows_the_market_column_only_when_vast_is_in_it(dbs):
    both, alone = dbs
    mixed = run("prices", "--db", str(both), "--now", to_iso(NOW))  # (as of the history's end: current prices)
    assert mixed.exit_code == 0, mixed.output
    header = mixed.output.splitlines()[1].split()
    assert header[0] == "market" and header[-1] == "offers"
    cheapest = mixed.output.splitlines()[3].split()
    assert cheapest[:2] == ["vast", "RTX"] and cheapest[-1] == "12"
    # --market runpod prints exactly what a RunPod-only database prints
    only = run("prices", "--db", str(both), "--market", "runpod", "--now", to_iso(NOW)).output
    assert only == run("prices", "--db", str(alone), "--now", to_iso(NOW)).output.replace(str(alone), str(both))
    assert "market" not in only
    data = json.loads(run("prices", "--db", str(both), "--market", "vast", "--format", "json").stdout)
    assert [(r["market"], r["gpu_type_id"], r["cloud"], r["offers"]) for r in data] == [
        ("vast", "RTX 4090", "VERIFIED", 12)]
    assert run("prices", "--db", str(alone), "--market", "vast").exit_code == 1


def test_history_resolves_names_per_market(dbs):
    both, _ = dbs
    # A name both markets use for one GPU (RunPod's display name, Vast's id) covers both, as recommend's --gpu
    # does; one matching different GPUs is refused.
    mixed = run("history", "RTX 4090", "--db", str(both), "--since", "all", "--format", "json")
    assert mixed.exit_code == 0, mixed.output
    assert [(r["market"], r["gpu_type_id"]) for r in json.loads(mixed.output)] == [
        ("runpod", RP4090), ("vast", "RTX 4090")]
    ambiguous = run("history", "RTX", "--db", str(both), "--since", "all")
    assert ambiguous.exit_code == 1 and "choose a market with --market" in ambiguous.output
    vast = run("history", "RTX 4090", "--db", str(both), "--since", "all", "--market", "vast", "--format", "json")
    assert vast.exit_code == 0, vast.output
    [row] = json.loads(vast.output)
    assert (row["market"], row["cloud"], row["samples"]) == ("vast", "VERIFIED", 864)
    runpod = run("history", "RTX 4090", "--db", str(both), "--since", "all", "--market", "runpod", "--format", "json")
    [row] = json.loads(runpod.output)
    assert "market" not in row and row["cloud"] == "COMMUNITY"


def test_export_adds_the_market_column_only_for_vast_rows_and_round_trips(dbs, tmp_path):
    both, alone = dbs
    runpod_only = run("export", "--db", str(both), "--market", "runpod").stdout
    assert runpod_only == run("export", "--db", str(alone)).stdout  # byte-identical to a RunPod-only file
    assert runpod_only.splitlines()[0] == "ts,gpu_type,minimum_bid_price,uninterruptable_price,cloud,gpu_count,stock_status"
    assert run("export", "--db", str(both), "--gpu", "RTX A6000").stdout.splitlines()[0].endswith("stock_status")
    out = tmp_path / "all.csv"
    assert run("export", "--db", str(both), "-o", str(out)).exit_code == 0
    assert out.read_text().splitlines()[0].endswith(",market,offers")
    again = tmp_path / "again.db"
    imported = run("import-trace", str(out), "--db", str(again))
    assert imported.exit_code == 0 and "3 markets" in imported.output
    with Store.open(both) as a, Store.open(again) as b:
        assert b.markets() == a.markets()
        assert [(q.ts, q.market, q.gpu_type_id, q.minimum_bid_price) for q in b.price_history()] == [
            (q.ts, q.market, q.gpu_type_id, q.minimum_bid_price) for q in a.price_history()]


def test_recommend_ranks_across_markets_and_names_the_market(dbs):
    both, _ = dbs
    base = ["recommend", "--db", str(both), "--now", to_iso(NOW), "--min-vram", "24", "--hours", "40",
            "--deadline", "3d", "--format", "json"]
    anywhere = json.loads(run(*base).stdout)
    decision = anywhere["decision"]
    assert (decision["market"], decision["gpu_type"]) == ("vast", "RTX 4090")
    assert decision["action"] in ("spot", "wait")  # the plan may wait for this market's floor to fall
    assert "on Vast" in decision["reasons"][0]
    assert {a["market"] for a in anywhere["alternatives"]} >= {"runpod"}
    assert all(" on RunPod" in a["reasons"][0] for a in anywhere["alternatives"] if a["market"] == "runpod")
    runpod = json.loads(run(*base, "--market", "runpod").stdout)["decision"]
    assert runpod["market"] == "runpod" and "on RunPod" not in runpod["reasons"][0]  # RunPod alone reads as before
    assert json.loads(run(*base, "--market", "vast", "--cloud", "verified").stdout)["decision"]["market"] == "vast"
    none = run(*base[:-2], "--market", "vast", "--cloud", "secure")
    assert none.exit_code == 2 and "Invalid value for --cloud: secure is not a cloud of vast" in none.output


def test_the_market_job_key():
    job = job_from_values("j", {"market": "Vast", "cloud": "verified", "image": "img", "hours": 2}).job
    assert (job.market, job.cloud) == ("vast", "VERIFIED")
    assert job_from_values("j", {"image": "img"}).job.market == "any"
    with pytest.raises(ConfigError, match="market"):
        job_from_values("j", {"market": "lambda", "image": "img"})


def test_the_runpod_executor_decides_among_runpods_quotes_and_refuses_vast(dbs, emulator):
    from bidder.executor import Executor
    from bidder.models import JobSpec, Policy
    from bidder.runpod import RunPodClient
    from bidder.sim import TEST_API_KEY

    both, _ = dbs
    job = JobSpec(min_vram_gb=24, work_hours=40, deadline=NOW + timedelta(days=3))
    with Store.open(both) as store, RunPodClient(api_key=TEST_API_KEY, url=emulator.url) as client:
        ex = Executor(client, store, dry_run=True)
        assert ex.decide(job, Policy(), NOW).market == "runpod"  # Vast is cheaper here, but not actionable
        with pytest.raises(ConfigError, match="market 'vast' is not configured"):
            ex.decide(replace(job, market="vast"), Policy(), NOW)


def test_a_market_whose_snapshot_is_stale_is_left_out_of_decisions(tmp_path):
    path = tmp_path / "stale.db"
    fill(path)
    later = NOW + timedelta(days=2)
    with Store.open(path) as store:  # RunPod goes on being collected, Vast stopped two days ago
        store.record_collection(later, [PriceQuote(ts=later, gpu_type_id=RP4090, cloud="COMMUNITY", gpu_count=1,
                                                   minimum_bid_price=0.35, uninterruptable_price=0.69)],
                                duration_s=0.1)
    result = run("recommend", "--db", str(path), "--now", to_iso(later), "--min-vram", "24", "--hours", "4",
                 "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {d["market"] for d in [data["decision"], *data["alternatives"]]} == {"runpod"}


def test_recommend_says_how_old_a_markets_snapshot_is(tmp_path):
    """Vast last collected 20 hours ago, RunPod just now: Vast's prices still count (under a day old),
    and a note says their age (the decision gave none)."""
    path = tmp_path / "aged.db"
    fill(path)
    later = NOW + timedelta(hours=20)
    with Store.open(path) as store:
        store.record_collection(later, [PriceQuote(ts=later, gpu_type_id=RP4090, cloud="COMMUNITY", gpu_count=1,
                                                   minimum_bid_price=0.35, uninterruptable_price=0.69)],
                                duration_s=0.1)
    base = ["recommend", "--db", str(path), "--now", to_iso(later), "--min-vram", "24", "--hours", "4"]
    told = (f"Vast's prices are from {to_iso(NOW)}, 20.0h before now ({to_iso(later)}): nothing was collected "
            "since, so they may be out of date (`bidder collect` takes a fresh snapshot)")
    result = run(*base, "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert "vast" in {d["market"] for d in [data["decision"], *data["alternatives"]]}
    assert told in result.stderr.splitlines()
    assert f"Note: {told}" in run(*base).stdout.splitlines()
    fresh = run(*base, "--market", "runpod", "--format", "json")  # RunPod's snapshot is the one just taken
    assert fresh.exit_code == 0 and "before now" not in fresh.stderr


def test_collect_reads_the_vast_filters_from_bidder_toml(tmp_path):
    from bidder.jobs import collect_settings, load_config

    assert collect_settings(tmp_path / "none.toml") == {"vast_verified_only": True, "vast_min_reliability": 0.95,
                                                        "vast_offers_days": 8, "prices_days": 0}
    path = tmp_path / "bidder.toml"
    path.write_text("vast_verified_only = false\nvast_min_reliability = 0.9\nvast_offers_days = 30\n"
                    "[jobs.x]\nimage = 1\n")
    assert collect_settings(path) == {"vast_verified_only": False, "vast_min_reliability": 0.9,
                                      "vast_offers_days": 30, "prices_days": 0}  # job typo ignored
    path.write_text("vast_verified_only = false\nvast_min_reliability = 0.9\nprices_days = 45\n")
    config = load_config(path)
    assert (config.vast_verified_only, config.vast_min_reliability, config.prices_days) == (False, 0.9, 45)
    path.write_text("vast_min_reliability = 95\n")
    with pytest.raises(ConfigError, match="vast_min_reliability = 95: must be a reliability score from 0 to 1"):
        collect_settings(path)


def test_recommend_table_names_markets_only_when_vast_is_in_it(dbs):
    both, _ = dbs
    base = ["recommend", "--db", str(both), "--now", to_iso(NOW), "--min-vram", "24", "--hours", "40"]
    mixed = run(*base).output.splitlines()
    assert " on vast, bid $" in mixed[0]
    header = next(line for line in mixed if line.lstrip().startswith("market"))
    assert header.split()[:3] == ["market", "#", "action"]
    alone = run(*base, "--market", "runpod").output
    assert not any(line.lstrip().startswith("market") for line in alone.splitlines())
    assert " on " not in alone.splitlines()[0] and "on RunPod" not in alone


def _bidder(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """bidder in its own process: its logging and streams as a user sees them."""
    return subprocess.run([sys.executable, "-c", "from bidder.cli import main; main()", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **env})


def test_collect_says_each_failed_market_on_its_own_line(tmp_path):
    env = {"RUNPOD_API_KEY": "k", "VAST_API_KEY": "k"}
    result = _bidder("collect", "--db", str(tmp_path / "x.db"), "--api-url", "http://runpod-down.invalid/graphql",
                     "--vast-url", "http://vast-down.invalid", "--retries", "1", env=env)
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert [line.split(":")[:2] for line in lines] == [["Error", " runpod"], ["Error", " vast"]], lines
    assert "lowestPrice: cannot connect" in lines[0] and "search_offers: cannot connect" in lines[1]
    # As the help says it (it said "one line and exit 1 on failure").
    helped = " ".join(_bidder("collect", "--help", env={}).stdout.split())
    assert "on failure exit 1 with one `Error:` line per market that failed" in helped, helped
    # On this machine, where the emulator would listen, an address that never answers has no time: the
    # command stops there, before any market is asked (and writes no row on a clock it cannot know).
    local = _bidder("collect", "--db", str(tmp_path / "y.db"), "--api-url", "http://127.0.0.1:1/graphql",
                    "--vast-url", "http://127.0.0.1:1", "--retries", "1", env=env)
    assert local.returncode == 1 and local.stdout == ""
    assert local.stderr.startswith("Error: reading the server's time: cannot connect (http://127.0.0.1:1/sim/now)")
    assert local.stderr.count("\n") == 1


def test_collect_says_once_that_runpod_serves_no_spot_prices(emulator, tmp_path):
    emulator.set_spot_enabled(False, fields=False)
    env = {"RUNPOD_API_KEY": emulator.api_key, "VAST_API_KEY": emulator.api_key, "VAST_URL": emulator.vast_url}
    for run_no in range(2):  # the run that marks spot unsupported, and one after it
        result = _bidder("collect", "--db", str(tmp_path / "x.db"), "--api-url", emulator.url, env=env)
        assert result.returncode == 0, result.stderr
        assert (result.stdout + result.stderr).count("RunPod no longer reports spot prices") == 1, (run_no, result)


def test_collect_refuses_gpu_counts_no_pod_has(tmp_path):
    result = run("collect", "--gpu-counts", "1,100", "--db", str(tmp_path / "x.db"))
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: Invalid value for --gpu-counts: 100 GPUs is more than any pod offers "
                                    "(at most 16)")
    assert not (tmp_path / "x.db").exists()


def test_an_empty_gpu_name_is_refused_not_matched_to_every_gpu(dbs, tmp_path):
    _, runpod_only = dbs
    db = ("--db", str(runpod_only))
    trace = str(Path(__file__).resolve().parents[1] / "data" / "traces" / "sim-seed1-14d.csv")
    # backtest ran every GPU type, chart prices drew the three cheapest.
    for args in (("prices", "--gpu", "", *db), ("history", " ", *db), ("export", "--gpu", "", *db),
                 ("chart", "prices", str(tmp_path / "c.png"), "--gpu", "", *db),
                 ("backtest", "--trace", trace, "--hours", "5", "--deadline", "1d", "--gpu", "")):
        result = run(*args)
        assert result.exit_code == 2 and result.stdout == "", args
        assert "Invalid value for --gpu: a GPU name must not be empty" in result.stderr or args[0] == "history"
        assert "a GPU name must not be empty" in result.stderr and len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "c.png").exists()


def test_import_trace_from_stdin_says_standard_input(dbs, tmp_path):
    _, runpod_only = dbs
    trace = run("export", "--db", str(runpod_only), "--since", "all").stdout
    result = CliRunner().invoke(main, ["import-trace", "-", "--db", str(tmp_path / "in.db")], input=trace)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Imported ") and " rows from standard input into " in result.stdout


def test_a_database_built_by_import_trace_names_runpods_gpu_types_as_a_collected_one_does(tmp_path):
    # A trace carries no catalogue: imported, RunPod's "NVIDIA RTX A6000" had no display name nor VRAM,
    # so --min-vram 48 found nothing, `history "RTX A6000"` showed Vast's alone, and recommend --market
    # any dropped RunPod (Vast's id matched exactly, RunPod's only in part): Vast at $0.80, RunPod $0.23.
    markets = [("runpod", A6000, "COMMUNITY", 0.49, 0.23), ("vast", "RTX A6000", "VERIFIED", 0.9, 0.8)]
    collected, imported, trace = tmp_path / "collected.db", tmp_path / "imported.db", tmp_path / "t.csv"
    fill(collected, markets)
    assert run("export", "--db", str(collected), "--since", "all", "-o", str(trace)).exit_code == 0
    loaded = run("import-trace", str(trace), "--db", str(imported))
    assert loaded.exit_code == 0, loaded.output
    now = ("--now", to_iso(NOW))
    vram = run("prices", "--db", str(imported), "--min-vram", "48", *now)
    assert vram.exit_code == 0 and A6000 in vram.stdout, vram.output
    both = run("history", "RTX A6000", "--db", str(imported), "--since", "all", "--format", "json")
    assert both.exit_code == 0, both.output
    assert {r["market"] for r in json.loads(both.stdout)} == {"runpod", "vast"}
    assert both.stdout == run("history", "RTX A6000", "--db", str(collected), "--since", "all",
                              "--format", "json").stdout
    args = ("recommend", "--gpu", "RTX A6000", "--market", "any", "--keep-running", "--format", "json", *now)
    decided = json.loads(run(*args, "--db", str(imported)).stdout)
    assert (decided["decision"]["market"], decided["decision"]["gpu_type"]) == ("runpod", A6000)
    assert decided == json.loads(run(*args, "--db", str(collected)).stdout)
    with Store.open(imported) as store:  # RunPod's names from its catalogue as bidder ships it, marked not
        [row] = [t for t in store.gpu_type_infos() if t.id == A6000]  # refreshed: the next collect replaces it
        assert (row.display_name, row.memory_in_gb, row.updated) == ("RTX A6000", 48, None)
        assert store.gpu_types_updated() is None
