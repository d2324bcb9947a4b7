"""`bidder recommend` through click's CliRunner on real SQLite files filled through the Store API."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

from bidder.advisor import advise
from bidder.cli import main
from bidder.models import JobSpec, Policy, PriceQuote
from bidder.sim import Emulator
from bidder.store import GpuTypeInfo, Store
from bidder.units import to_iso

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
KEYS = {"action", "gpu_type", "cloud", "gpu_count", "bid_per_gpu", "expected_cost_per_hour",
        "expected_interruptions_per_day", "expected_total_cost", "expected_completion_hours", "reasons",
        "market", "expected_interruptions",  # market: added with Vast (issue 10); expected_interruptions: the count
        "act_below"}  # added: the floor a wait waits for
CATALOGUE = [GpuTypeInfo(id="NVIDIA RTX A6000", display_name="RTX A6000", memory_in_gb=48),
             GpuTypeInfo(id="NVIDIA GeForce RTX 4090", display_name="RTX 4090", memory_in_gb=24)]


def fill(path: Path, end: datetime = NOW, days: float = 3.0, seed: int = 0) -> int:
    """Two GPU types, 5-minute snapshots over `days` up to `end`: calm floors with a few spikes."""
    rng = np.random.default_rng(seed)
    n = int(days * 288)
    quotes = []
    for gpu, od, calm in (("NVIDIA RTX A6000", 0.49, 0.23), ("NVIDIA GeForce RTX 4090", 0.69, 0.35)):
        floor = calm * rng.uniform(0.9, 1.1, n)
        floor[rng.random(n) < 1 / 288] = od * 1.2
        for i in range(n):
            ts = end - timedelta(minutes=5 * (n - 1 - i))
            quotes.append(PriceQuote(ts=ts, gpu_type_id=gpu, cloud="COMMUNITY", gpu_count=1,
                                     minimum_bid_price=round(float(floor[i]), 4), uninterruptable_price=od))
    with Store.open(path) as store:
        store.import_quotes([q for q in quotes if q.ts != end])
        # The newest snapshot arrives as the collector writes it, with the catalogue.
        store.record_collection(end, [q for q in quotes if q.ts == end], duration_s=0.3, gpu_types=CATALOGUE)
    return n


def run(db: Path, *args: str, now: datetime | None = NOW) -> Result:
    extra = ["--now", to_iso(now)] if now is not None else []
    return CliRunner().invoke(main, ["recommend", "--db", str(db), *extra, *args])


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "bidder.db"
    fill(path)
    return path


def test_json_has_the_shape_scripts_rely_on(db: Path) -> None:
    result = run(db, "--gpu", "RTX A6000", "--hours", "40", "--deadline", "3d", "--tolerance", "medium",
                 "--restart-overhead", "10m", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"decision", "alternatives", "history"}
    assert set(data["decision"]) == KEYS
    assert all(set(a) == KEYS for a in data["alternatives"])
    decision = data["decision"]
    assert decision["action"] in {"spot", "on_demand", "wait"}
    assert decision["gpu_type"] == "NVIDIA RTX A6000" and decision["gpu_count"] == 1
    assert (decision["bid_per_gpu"] is None) == (decision["action"] != "spot")
    assert decision["reasons"] and all(isinstance(r, str) for r in decision["reasons"])
    assert data["history"] == {"from": "2026-02-26T12:05:00Z", "to": "2026-03-01T12:00:00Z", "samples": 864}
    # The same numbers as the library call.
    with Store.open(db) as store:
        d, info = advise(store, JobSpec(gpu_types=("NVIDIA RTX A6000",), work_hours=40,
                                        deadline=NOW + timedelta(days=3), restart_overhead_hours=1 / 6),
                         Policy(tolerance=2.0), NOW)
    assert decision["expected_cost_per_hour"] == d.expected_cost_per_hour
    assert info.samples == 864


def test_table_shows_decision_alternatives_reasons_and_history(db: Path) -> None:
    result = run(db, "--min-vram", "24", "--hours", "20", "--deadline", "2d")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.splitlines()[0].split()[0] in {"SPOT", "ON-DEMAND", "WAIT"}
    assert "why: " in out and "Alternatives weighed" in out
    assert "NVIDIA GeForce RTX 4090" in out and "NVIDIA RTX A6000" in out
    assert "History: 1728 samples over 2 market(s)" in out


def test_a_min_vram_no_gpu_type_has_is_said_so_not_to_collect_prices(db: Path) -> None:
    # It said "collect prices first (`bidder collect`) or widen ...": collecting would not help.
    with Store.open(db) as store:
        largest = max(q.memory_in_gb or 0 for q in store.latest_quotes())
    result = run(db, "--min-vram", "9999", "--hours", "5")
    assert result.exit_code == 1, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: no current quote for >= 9999 GB VRAM with 1 GPU(s)"), line
    assert line.endswith(f"no GPU type has that much memory (the most is {largest} GB a GPU): lower --min-vram, "
                         "or name GPU types with --gpu"), line
    assert "bidder collect" not in line


def test_history_too_short_for_statistics_is_said_so_not_over_0_markets(tmp_path: Path) -> None:
    path = tmp_path / "short.db"
    fill(path, days=30 / 1440)  # six 5-minute snapshots
    result = run(path, "--gpu", "RTX A6000", "--hours", "4")
    assert result.exit_code == 0, result.output
    [line] = [x for x in result.stdout.splitlines() if x.startswith("History: ")]
    assert line.startswith("History: 6 samples (no market has enough for statistics yet), "), line


def test_tolerance_none_recommends_on_demand_and_keep_running_has_no_completion(db: Path) -> None:
    none = json.loads(run(db, "--hours", "10", "--tolerance", "none", "--format", "json").stdout)
    assert none["decision"]["action"] == "on_demand"
    assert none["decision"]["gpu_type"] == "NVIDIA RTX A6000"  # the cheaper on-demand price
    assert none["decision"]["expected_interruptions_per_day"] == 0
    service = json.loads(run(db, "--keep-running", "--tolerance", "high", "--format", "json").stdout)
    assert service["decision"]["expected_completion_hours"] is None
    assert all(a["expected_completion_hours"] is None for a in service["alternatives"])


def test_infeasible_is_one_line_naming_the_constraint(db: Path) -> None:
    result = run(db, "--gpu", "RTX A6000", "--hours", "10", "--max-price", "0.05")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: no candidate meets the max price: ")
    assert "Traceback" not in result.output
    budget = run(db, "--hours", "100", "--budget", "2", "--tolerance", "none")
    assert budget.exit_code == 1 and "Error: no candidate meets the budget" in budget.stderr
    late = run(db, "--hours", "100", "--deadline", "1d")
    assert late.exit_code == 1 and "Error: no candidate meets the deadline" in late.stderr
    # A cap under a tenth of a cent is printed as given: "the max price $0.000" read as no price allowed.
    tiny = run(db, "--gpu", "RTX A6000", "--hours", "10", "--max-price", "0.0001")
    assert tiny.exit_code == 1 and "max price $0.0001" in tiny.stderr and "$0.000 " not in tiny.stderr, tiny.stderr
    assert "max price $0.050" in result.stderr  # (three decimals as before where they are enough)


def test_bad_input_exits_with_a_clear_line(db: Path, tmp_path: Path) -> None:
    assert run(db).exit_code == 2 and "give the work with --hours N" in run(db).stderr
    both = run(db, "--hours", "3", "--keep-running")
    assert both.exit_code == 2 and "exclude each other" in both.stderr
    unknown = run(db, "--gpu", "RTX 4900", "--hours", "3")
    assert unknown.exit_code == 1 and "unknown GPU type 'RTX 4900'" in unknown.stderr
    assert "RTX 4090" in unknown.stderr  # close matches
    bad_deadline = run(db, "--hours", "3", "--deadline", "soon")
    assert bad_deadline.exit_code == 2 and "is not a duration" in bad_deadline.stderr
    empty = run(tmp_path / "empty.db", "--hours", "3")
    assert empty.exit_code == 1 and "Error: no bidder database at" in empty.stderr
    with Store.open(tmp_path / "blank.db"):
        pass
    blank = run(tmp_path / "blank.db", "--hours", "3")
    assert blank.exit_code == 1 and "no prices in the database yet" in blank.stderr
    stale = run(db, "--hours", "3", now=NOW + timedelta(days=3))
    assert stale.exit_code == 1 and "the newest price snapshot is 3.0d old" in stale.stderr


def test_wall_clock_history_and_help_example(tmp_path: Path) -> None:
    path = tmp_path / "now.db"
    fill(path, end=datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1), days=1)
    result = run(path, "--hours", "5", "--format", "json", now=None)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["history"]["samples"] == 576
    help_text = CliRunner().invoke(main, ["recommend", "--help"]).output
    assert help_text.rstrip().splitlines()[-1].strip().startswith("bidder recommend ")


def test_refresh_takes_a_snapshot_from_the_emulator(tmp_path: Path, emulator: Emulator,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNPOD_API_KEY", emulator.api_key)
    path = tmp_path / "fresh.db"
    result = run(path, "--refresh", "--api-url", emulator.url, "--gpu", "RTX A6000", "--hours", "5",
                 "--format", "json", now=None)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    # One snapshot is too little history for spot statistics: on-demand, and a note says why.
    assert data["decision"]["action"] == "on_demand"
    assert data["history"]["samples"] in (1, 2)  # one snapshot of the A6000 in each cloud it is offered in
    assert "refreshed:" in result.stderr and "on-demand only" in result.stderr
    with Store.open(path) as store:
        assert store.last_collection_ts() is not None


def test_refresh_takes_vasts_snapshot_too_for_a_job_open_to_vast(tmp_path: Path, emulator: Emulator,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """--refresh refreshed RunPod alone, then decided a Vast job on Vast's stored prices. A Vast job
    asks Vast alone: RunPod (here unreachable) is neither asked nor said to have failed, and Vast's
    answer tells the emulator's time."""
    monkeypatch.setenv("RUNPOD_API_KEY", emulator.api_key)
    monkeypatch.setenv("VAST_API_KEY", emulator.api_key)
    path = tmp_path / "fresh.db"
    result = run(path, "--refresh", "--api-url", "http://127.0.0.1:9/graphql", "--vast-url", emulator.vast_url,
                 "--market", "vast", "--gpu", "RTX 4090", "--hours", "5", "--format", "json", now=None)
    assert result.exit_code == 0, result.output + result.stderr
    assert "refreshed Vast:" in result.stderr and "quotes at 2026-01-01T00:00:00Z" in result.stderr
    assert "--refresh failed" not in result.stderr, result.stderr
    assert json.loads(result.stdout)["decision"]["market"] == "vast"
    with Store.open(path) as store:
        assert {r["market"] for r in store.collections()} == {"vast"}
    # --market any with Vast's key alone: Vast alone too.
    monkeypatch.setenv("RUNPOD_API_KEY", "")
    alone = run(path, "--refresh", "--api-url", "http://127.0.0.1:9/graphql", "--vast-url", emulator.vast_url,
                "--gpu", "RTX 4090", "--hours", "5", "--format", "json", now=None)
    assert alone.exit_code == 0 and "--refresh failed" not in alone.stderr, alone.output + alone.stderr
    monkeypatch.setenv("RUNPOD_API_KEY", emulator.api_key)
    # Without a Vast key, a Vast job is told its prices were not refreshed.
    monkeypatch.delenv("VAST_API_KEY")
    again = run(path, "--refresh", "--api-url", emulator.url, "--market", "vast", "--gpu", "RTX 4090", "--hours", "5",
                "--format", "json", now=None)
    assert "Vast prices not refreshed: no Vast API key (VAST_API_KEY, or vast_api_key in ~/.config/bidder/config.toml)" in again.stderr, again.stderr


def test_refresh_failure_warns_and_uses_the_stored_history(tmp_path: Path) -> None:
    path = tmp_path / "stored.db"
    fill(path, end=datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2), days=1)
    result = run(path, "--refresh", "--api-url", "http://127.0.0.1:9/graphql", "--hours", "5", "--format", "json",
                 now=None)
    assert result.exit_code == 0, result.output
    assert "could not refresh prices" in result.stderr
    assert json.loads(result.stdout)["history"]["samples"] == 576


def test_a_failed_refresh_says_why_and_does_not_suggest_refresh(tmp_path: Path) -> None:
    """The stored history is stale (measured on the wall clock, the API did not answer): the error
    names the failed refresh and its cause, not "(or pass --refresh)"."""
    path = tmp_path / "old.db"
    fill(path, days=1)
    result = run(path, "--refresh", "--api-url", "http://127.0.0.1:9/graphql", "--gpu", "RTX A6000",
                 "--hours", "2", now=None)
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("Error: --refresh failed: could not take a price snapshot from "
                               "http://127.0.0.1:9/graphql (") and "Connection refused" in lines[0], lines[0]
    assert "the newest price snapshot is" in lines[0] and "--refresh)" not in lines[0]


@pytest.mark.parametrize("market", ["runpod", "vast", "any"])
def test_a_failed_refresh_into_a_new_database_names_the_failure_and_leaves_no_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, market: str) -> None:
    """`recommend --db missing.db --refresh` against a URL that does not answer left missing.db behind
    and said "unknown GPU type '4090'; no GPU types are known yet", not that it could not connect."""
    monkeypatch.setenv("RUNPOD_API_KEY", "rpa_" + "K" * 40)
    monkeypatch.setenv("VAST_API_KEY", "V" * 40)
    result = run(tmp_path / "missing.db", "--refresh", "--api-url", "http://127.0.0.1:9/graphql", "--vast-url",
                 "http://127.0.0.1:9", "--market", market, "--gpu", "4090", "--hours", "5", now=None)
    assert result.exit_code == 1, result.output + result.stderr
    [line] = result.stderr.strip().splitlines()
    # (On this machine the address may be the emulator's: its time is read first, and is unknown.)
    runpod = ("--refresh failed: could not refresh prices from http://127.0.0.1:9/graphql (reading the server's "
              "time: cannot connect")
    vast = "Vast prices not refreshed (TransportError: reading the server's time: cannot connect"
    assert line.startswith("Error: " + (vast if market == "vast" else runpod)), line
    assert (vast in line) == (market != "runpod"), line
    assert line.endswith(f"and {tmp_path / 'missing.db'} was new: no stored prices to use instead"), line
    assert list(tmp_path.iterdir()) == []


def test_empty_gpu_and_unitless_durations_are_refused(db: Path) -> None:
    empty = run(db, "--gpu", "", "--hours", "3")
    assert empty.exit_code == 2 and "Invalid value for --gpu: must not be empty" in empty.stderr
    bare = run(db, "--gpu", "RTX A6000", "--hours", "3", "--deadline", "90")
    assert bare.exit_code == 2 and "'90' has no unit: give one, e.g. 90s, 90m, 90h or 90d" in bare.stderr
    assert len(bare.stderr.strip().splitlines()) == 1
    zero = run(db, "--gpu", "RTX A6000", "--hours", "3", "--deadline", "0")  # 0 needs no unit: it is in the past
    assert zero.exit_code == 2 and "the deadline must be in the future" in zero.stderr
    # A restart that loses more than the work, as launch and bidder.toml refuse it; the default 10m is not held to it.
    long = run(db, "--gpu", "RTX A6000", "--hours", "2", "--restart-overhead", "150m")
    assert long.exit_code == 2 and long.stderr.startswith(
        "Error: --restart-overhead 150m is longer than --hours 2, the work: a restart would lose more than the "
        "whole job; give the time a restart really loses"), long.stderr
    assert len(long.stderr.strip().splitlines()) == 1
    assert run(db, "--gpu", "RTX A6000", "--hours", "0.1").exit_code == 0


def test_close_matches_rank_a_digit_transposition_first() -> None:
    from bidder.errors import ConfigError
    from bidder.gpu_names import resolve_gpu_types

    known = {f"NVIDIA GeForce RTX {n}": f"RTX {n}" for n in ("3070", "3080", "3090", "4070 Ti", "4090")}
    known["NVIDIA RTX 4000 Ada Generation"] = "RTX 4000 Ada"
    with pytest.raises(ConfigError) as info:
        resolve_gpu_types(["RTX 4900"], known)
    close = str(info.value).split("close matches: ")[1].split(", ")
    assert close[:2] == ["NVIDIA GeForce RTX 4090", "RTX 4090"], close


def test_a_partial_name_matches_whole_words_only() -> None:
    """"RTX A40" (meaning the A40) was read as part of "RTX A4000" and bought that GPU instead."""
    from bidder.errors import ConfigError
    from bidder.gpu_names import resolve_gpu_types

    known = {"NVIDIA A40": "A40", "NVIDIA RTX A4000": "RTX A4000", "NVIDIA RTX A4500": "RTX A4500",
             "NVIDIA RTX 4000 Ada Generation": "RTX 4000 Ada", "NVIDIA A100 80GB PCIe": "A100 80GB PCIe",
             "NVIDIA A100-SXM4-80GB": "A100 SXM", "NVIDIA GeForce RTX 4090": "RTX 4090"}
    with pytest.raises(ConfigError) as info:
        resolve_gpu_types(["RTX A40"], known)
    assert "A40" in str(info.value).split("close matches: ")[1].split(", "), info.value  # the one meant
    with pytest.raises(ConfigError):
        resolve_gpu_types(["A45"], known)  # part of "A4500": no GPU of that name
    # Where letters turn to digits (or back) a word's part still names it, as before: Vast's "A100 SXM4"
    # for RunPod's "A100 SXM", "RTX 4080S" for "4080", the A6000 for "6000" (a bidder.toml naming those
    # stopped every tick when they were refused).
    vast = {"A100 SXM4": "A100 SXM4", "RTX 4080S": "RTX 4080S", "RTX 6000Ada": "RTX 6000Ada", "RTX A6000": "RTX A6000",
            "L40S": "L40S"}
    assert resolve_gpu_types(["A100 SXM"], vast) == ["A100 SXM4"]
    assert resolve_gpu_types(["4080"], vast) == ["RTX 4080S"]
    assert resolve_gpu_types(["6000"], vast) == ["RTX 6000Ada", "RTX A6000"]
    with pytest.raises(ConfigError):
        resolve_gpu_types(["L4"], vast)  # the L4 is not the L40S: digits run on
    assert resolve_gpu_types(["A40"], known) == ["NVIDIA A40"]  # the display name, exactly
    assert resolve_gpu_types(["a100"], known) == ["NVIDIA A100 80GB PCIe", "NVIDIA A100-SXM4-80GB"]  # a family
    assert resolve_gpu_types(["4090"], known) == ["NVIDIA GeForce RTX 4090"]
    assert resolve_gpu_types(["rtx a4000"], known) == ["NVIDIA RTX A4000"]
    assert resolve_gpu_types(["4000 ada"], known) == ["NVIDIA RTX 4000 Ada Generation"]


def test_a_name_that_names_several_types_by_part_says_which() -> None:
    """"3090" bought the RTX 3090 Ti, "6000" the RTX 6000 Ada (not the A6000), with no word of it."""
    from bidder.gpu_names import several_named

    known = {f"NVIDIA GeForce RTX {n}": f"RTX {n}" for n in ("3090", "3090 Ti", "4090")}
    known |= {"NVIDIA RTX A6000": "RTX A6000", "NVIDIA RTX 6000 Ada Generation": "RTX 6000 Ada"}
    assert several_named(["3090"], known) == [
        "'3090' names 2 GPU types: RTX 3090, RTX 3090 Ti; the job accepts each (give a full name to choose one)"]
    assert several_named(["RTX 3090", "4090", "nothing"], known) == []  # exact, one type, none
    assert several_named(["6000"], known) == [
        "'6000' names 2 GPU types: RTX 6000 Ada, RTX A6000; the job accepts each (give a full name to choose one)"]
    # One card on both markets (Vast names it as RunPod displays it) is one type, said once.
    both = known | {"RTX 4090": "RTX 4090", "RTX 3090": "RTX 3090"}
    assert several_named(["4090"], both) == []
    assert several_named(["3090"], both) == [
        "'3090' names 2 GPU types: RTX 3090, RTX 3090 Ti; the job accepts each (give a full name to choose one)"]
    # RunPod's "A100 SXM" (id NVIDIA A100-SXM4-80GB) is Vast's "A100 SXM4", and Vast's "A100 PCIE" RunPod's
    # "A100 PCIe": two cards, not four types; the V100 SXM2 of 16 GB and of 32 GB stay two, whatever the
    # other market calls one of them.
    a100 = {"NVIDIA A100-SXM4-80GB": "A100 SXM", "NVIDIA A100 80GB PCIe": "A100 PCIe", "A100 SXM4": "A100 SXM4",
            "A100 PCIE": "A100 PCIE"}
    assert several_named(["A100"], a100) == [
        "'A100' names 2 GPU types: A100 PCIE, A100 SXM4 / A100 SXM; the job accepts each (give a "
        "full name to choose one)"]
    v100 = {"Tesla V100-SXM2-16GB": "V100 SXM2", "Tesla V100-SXM2-32GB": "V100 SXM2 32GB", "V100 SXM2": "V100 SXM2"}
    assert several_named(["V100"], v100) == [
        "'V100' names 2 GPU types: V100 SXM2, V100 SXM2 32GB; the job accepts each (give a full name to choose one)"]
    many = {f"NVIDIA T{i}": f"T{i}" for i in range(8)}
    assert several_named(["nvidia"], many) == [
        "'nvidia' names 8 GPU types: T0, T1, T2, T3, T4 and 3 more; the job accepts each (give a full name to "
        "choose one)"]


def test_infeasible_names_the_constraint_that_binds(db: Path) -> None:
    """10 h of work in a 1 h deadline is the deadline's fault, whatever the tolerance; a budget that
    rules out every bid the tolerance allows (and on-demand) is the budget's, not the tolerance's."""
    short = run(db, "--gpu", "RTX A6000", "--hours", "10", "--deadline", "1h")
    assert short.exit_code == 1
    assert short.stderr.strip() == ("Error: no candidate meets the deadline: 10.0 h of work cannot finish in the "
                                    "1.0 h before the deadline, even on-demand at full speed: set a later deadline")
    free = json.loads(run(db, "--gpu", "RTX A6000", "--keep-running", "--format", "json").stdout)["decision"]
    assert free["action"] == "on_demand"  # without a budget: spot's bids are over the tolerance
    poor = run(db, "--gpu", "RTX A6000", "--keep-running", "--budget", "1")
    assert poor.exit_code == 1
    assert poor.stderr.startswith("Error: no candidate meets the budget: RTX A6000 on-demand would cost"), poor.stderr
    from bidder.errors import Infeasible
    with Store.open(db) as store, pytest.raises(Infeasible) as info:
        advise(store, JobSpec(gpu_types=("NVIDIA RTX A6000",), keep_running=True), Policy(tolerance=2.0, budget=1.0),
               NOW)
    assert info.value.constraint == "budget"


def test_interruptions_per_day_is_labelled_per_day_of_the_window_and_the_count_is_given(db: Path) -> None:
    """The rate is per day of the job's window (the tolerance's unit), so it falls as the deadline grows
    for the same work; the table says so and the JSON adds the count over the job."""
    for days in (1, 3, 10):
        data = json.loads(run(db, "--gpu", "RTX A6000", "--hours", "10", "--deadline", f"{days}d",
                              "--format", "json").stdout)
        for d in (data["decision"], *data["alternatives"]):
            assert d["expected_interruptions"] == pytest.approx(d["expected_interruptions_per_day"] * days, abs=1e-3)
    service = json.loads(run(db, "--keep-running", "--format", "json").stdout)["decision"]
    assert service["expected_interruptions"] is None
    table = run(db, "--gpu", "RTX A6000", "--hours", "10", "--deadline", "3d").stdout
    assert "interruptions expected (" in table.splitlines()[1] and "per day to the deadline)" in table.splitlines()[1]


def test_a_deadline_as_long_as_the_work_shows_what_on_demand_costs(db: Path) -> None:
    """The plan stops half an hour before the deadline: 10 h of work in 10 h read as a missed
    deadline inside it, and its expected cost carried the miss penalty ($10.23 for 10 h at $0.33 in
    the emulator; a --budget then sent the job to the rates). Such a job is decided by the rates."""
    for deadline in ("10h", "615m"):
        result = run(db, "--gpu", "RTX A6000", "--hours", "10", "--deadline", deadline, "--tolerance", "high",
                     "--format", "json")
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)["decision"]
        assert data["action"] == "on_demand", data
        assert data["expected_total_cost"] == pytest.approx(10 * 0.49), data


def test_a_market_with_no_history_is_named_when_another_market_has_some(db: Path) -> None:
    """The database holds RunPod's prices only: asking for Vast's says so and how to collect them,
    rather than "no GPU types are known yet" of a database that knows two."""
    result = run(db, "--gpu", "RTX A6000", "--hours", "5", "--market", "vast")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: unknown GPU type 'RTX A6000'; no Vast GPU types are known yet (the database holds RunPod's "
        "prices only); collect Vast's with `bidder collect` (VAST_API_KEY set), or use --market any"]
    empty = db.parent / "empty.db"
    with Store.open(empty):
        pass
    result = run(empty, "--gpu", "RTX A6000", "--hours", "5", "--market", "vast")
    assert result.exit_code == 1 and "no GPU types are known yet; collect a snapshot" in result.output


def test_spot_too_slow_without_a_deadline_is_not_called_a_missed_deadline(db: Path) -> None:
    """No deadline, on-demand over the cap, and a bid the floor crosses too often to finish in the
    patience a job without a deadline has: it said "cannot finish before the deadline" (there is none)."""
    result = run(db, "--gpu", "RTX A6000", "--hours", "12", "--max-price", "0.25")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: no candidate can finish the work: RTX A6000 spot at $0.250 is not expected to finish the work "
        "within 36 h (3x the work, how long a job without a deadline may take), and no on-demand is allowed to "
        "finish it; on-demand is over the max price $0.250: the lowest is RTX A6000's on RunPod, $0.490"]
    late = run(db, "--gpu", "RTX A6000", "--hours", "12", "--max-price", "0.25", "--deadline", "30h")
    assert late.exit_code == 1 and "no candidate can finish the work" not in late.output


def test_the_on_demand_rest_of_a_plan_without_a_deadline_is_not_said_to_be_before_one(db: Path) -> None:
    """A job without a deadline whose plan leaves some work to on-demand said "the rest on-demand before
    the deadline"."""
    result = run(db, "--gpu", "RTX A6000", "--hours", "2", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    said = " ".join(r for d in (data["decision"], *data["alternatives"]) for r in d["reasons"])
    assert "the rest on-demand to finish in time" in said and "before the deadline" not in said, said


def test_a_batch_jobs_wait_for_the_floor_to_settle_must_save_min_wait_savings(tmp_path):
    """The emulator's seed 1 a week in: a 12-hour job without a deadline waited 5.3 hours for the Vast
    floor, already under its bid, to settle ("waiting saves 0.8%, $0.01"), done in 26.3 h instead of
    12.3 h. Held to `min_wait_savings` (5%) as a wait for a lower floor is, it bids now. (At tolerance
    medium that wait is no longer weighed at all since its time is a renewal over the floor's runs; at
    high one for 80 minutes of calm still is, saving 1.7%.)"""
    runner = CliRunner()
    db = tmp_path / "b.db"
    for name, extra in (("rp.csv", ["--gpu", "NVIDIA GeForce RTX 4090"]), ("v.csv", ["--market", "vast", "--gpu", "RTX 4090"])):
        made = runner.invoke(main, ["sim", "trace", str(tmp_path / name), "--seed", "1", "--days", "7", "--step", "15m",
                                    *extra])
        assert made.exit_code == 0, made.output
        loaded = runner.invoke(main, ["import-trace", str(tmp_path / name), "--db", str(db),
                                      "--now", "2026-01-08T00:00:00Z"])
        assert loaded.exit_code == 0, loaded.stderr
    args = ["recommend", "--db", str(db), "--now", "2026-01-08T00:00:00Z", "--gpu", "4090", "--hours", "12",
            "--tolerance", "high"]
    result = runner.invoke(main, [*args, "--format", "json"])
    assert result.exit_code == 0, result.stderr
    decision = json.loads(result.stdout)["decision"]
    assert decision["action"] == "spot", decision
    assert any("would save only" in r and "under the 5% worth a wait" in r for r in decision["reasons"])
    # With the rule off, the settle wait comes back: it is the rule, not the market, that bids now.
    loose = json.loads(runner.invoke(main, [*args, "--min-wait-savings", "0", "--format", "json"]).stdout)
    assert loose["decision"]["action"] == "wait"
    assert loose["decision"]["act_below"] > 0.133  # the floor now: a wait for it to settle, not to fall


def test_json_of_a_wait_says_the_floor_it_waits_for(tmp_path: Path) -> None:
    # The table's "until its spot floor ... $X" was in no JSON key: bid_per_gpu is a spot's alone.
    db = tmp_path / "bidder.db"
    fill(db, end=NOW - timedelta(minutes=5))
    with Store.open(db) as store:  # a spike now: the floor above on-demand
        store.record_collection(NOW, [PriceQuote(ts=NOW, gpu_type_id="NVIDIA RTX A6000", cloud="COMMUNITY",
                                                 gpu_count=1, minimum_bid_price=0.6, uninterruptable_price=0.49)],
                                duration_s=0.1)
    args = ("--gpu", "RTX A6000", "--keep-running", "--tolerance", "high")
    table = run(db, *args)
    result = run(db, *args, "--format", "json")
    assert table.exit_code == result.exit_code == 0, table.output + result.output
    decision = json.loads(result.stdout)["decision"]
    assert decision["action"] == "wait" and decision["bid_per_gpu"] is None
    assert re.search(rf"until its spot floor (is|has stayed) at or below \${decision['act_below']:.4f}\b", table.stdout)
    assert 0 < decision["act_below"] < 0.6
    assert all(a["act_below"] is None for a in json.loads(result.stdout)["alternatives"] if a["action"] != "wait")


def test_a_plans_alternatives_are_said_to_be_the_rates_figures_not_the_plans(db: Path) -> None:
    # (A plan's on-demand listed above a rates' spot row with a lower total, no word why, read as a mistake.)
    planned = run(db, "--gpu", "RTX A6000", "--hours", "40", "--deadline", "3d")
    assert planned.exit_code == 0, planned.output
    assert "why: plan over " in planned.stdout
    assert ("Alternatives weighed (best first; * is the plan's choice, the others the rates' (a simpler model: a "
            "lower total among them is not one the plan found cheaper); bid = ") in planned.stdout
    service = run(db, "--min-vram", "24", "--keep-running", "--tolerance", "high")  # the rates decide: one model, nothing to say
    assert service.exit_code == 0, service.output
    assert "Alternatives weighed (best first; bid = " in service.stdout


def test_a_name_typed_without_its_space_or_with_a_dash_is_that_gpu(db: Path) -> None:
    # ("rtx4090" was refused with "close matches: RTX 4090, ...": the very name, to be typed again.)
    for typed in ("rtx4090", "RTX-4090"):
        result = run(db, "--gpu", typed, "--hours", "2", "--format", "json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["decision"]["gpu_type"] == "NVIDIA GeForce RTX 4090"
    history = CliRunner().invoke(main, ["history", "rtx4090", "--db", str(db), "--now", to_iso(NOW)])
    assert history.exit_code == 0 and history.stdout.startswith("NVIDIA GeForce RTX 4090: "), history.output
    for wrong in ("rtx409", "-"):  # (still a name in full, and never an empty one)
        refused = run(db, "--gpu", wrong, "--hours", "2")
        assert refused.exit_code != 0 and "Traceback" not in refused.output, refused.output
