"""`bidder prices` and `bidder history` through click's CliRunner on a real SQLite file."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from click.testing import CliRunner

from bidder.cli import main
from bidder.models import PriceQuote
from bidder.store import Store

T0 = datetime(2026, 1, 1, tzinfo=UTC)
A6000, RTX4090, H100 = "NVIDIA RTX A6000", "NVIDIA GeForce RTX 4090", "NVIDIA H100 80GB HBM3"
CATALOGUE = [{"id": A6000, "display_name": "RTX A6000", "memory_in_gb": 48},
             {"id": RTX4090, "display_name": "RTX 4090", "memory_in_gb": 24},
             {"id": H100, "display_name": "H100 SXM", "memory_in_gb": 80}]


def q(ts, gpu, cloud, floor, od, stock="High", count=1):
    return PriceQuote(ts=ts, gpu_type_id=gpu, cloud=cloud, gpu_count=count, minimum_bid_price=floor,
                      uninterruptable_price=od, stock_status=stock)


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "bidder.db"
    with Store.open(path) as store:
        store.record_collection(T0 - timedelta(minutes=5), [q(T0, A6000, "COMMUNITY", 0.5, 0.6)], duration_s=0.1,
                                gpu_types=CATALOGUE)
        store.record_collection(T0, [
            q(T0, A6000, "COMMUNITY", 0.2, 0.33), q(T0, A6000, "SECURE", None, 0.49, "Low"),
            q(T0, RTX4090, "COMMUNITY", 0.18, 0.34), q(T0, H100, "SECURE", 1.5, 2.99, "Medium"),
            q(T0, H100, "SECURE", None, None, "None", count=2)], duration_s=0.1)
    return str(path)


def run(*args: str):
    return CliRunner().invoke(main, list(args))


AS_OF = ("--now", "2026-01-01T00:00:00Z")  # the fixture's newest snapshot: current prices, as of then


def test_prices_table_cheapest_first(db):
    result = run("prices", "--db", db, *AS_OF)
    assert result.exit_code == 0, result.output
    assert result.output == (
        f"Snapshot of 2026-01-01T00:00:00Z from {db}: 5 of 5 quotes.\n"
        "GPU type                 VRAM GB  cloud      GPUs  spot floor  on-demand  spot discount %  stock\n"
        "-----------------------  -------  ---------  ----  ----------  ---------  ---------------  ------\n"
        "NVIDIA GeForce RTX 4090       24  COMMUNITY     1       0.180      0.340               47  High\n"
        "NVIDIA RTX A6000              48  COMMUNITY     1       0.200      0.330               39  High\n"
        "NVIDIA RTX A6000              48  SECURE        1           -      0.490                -  Low\n"
        "NVIDIA H100 80GB HBM3         80  SECURE        1       1.500      2.990               50  Medium\n"
        "NVIDIA H100 80GB HBM3         80  SECURE        2           -          -                -  None\n")


def test_prices_filters_and_json(db):
    result = run("prices", "--db", db, "--min-vram", "40", "--cloud", "secure", "--gpu-count", "1",
                 "--format", "json", *AS_OF)
    rows = json.loads(result.output)
    assert [(r["gpu_type_id"], r["spot_floor"], r["spot_discount_pct"]) for r in rows] == [
        (A6000, None, None), (H100, 1.5, 50)]
    assert rows[0]["display_name"] == "RTX A6000" and rows[0]["memory_in_gb"] == 48
    csv_out = run("prices", "--db", db, "--gpu", "4090", "--format", "csv", *AS_OF).output.splitlines()
    assert csv_out[0].startswith("gpu_type_id,display_name,memory_in_gb,cloud,gpu_count,spot_floor,on_demand")
    assert csv_out[1].startswith(f"{RTX4090},RTX 4090,24,COMMUNITY,1,0.18,0.34,47,High")
    assert len(csv_out) == 2


def test_prices_errors_are_one_line(db, tmp_path):
    result = run("prices", "--db", db, "--gpu", "H200")
    assert result.exit_code == 1
    assert result.stderr == f"Error: unknown GPU type 'H200'; close matches: H100 SXM, {H100}\n"
    result = run("prices", "--db", db, "--min-vram", "200")
    assert (result.exit_code, result.stderr) == (
        1, "Error: no quote in the snapshot of 2026-01-01T00:00:00Z matches these filters\n")
    missing = str(tmp_path / "none.db")
    result = run("prices", "--db", missing)
    assert result.exit_code == 1
    assert result.stderr == (f"Error: no bidder database at {missing}: collect prices first with `bidder collect` "
                             f"(or point --db / BIDDER_DB at an existing file)\n")
    empty = str(tmp_path / "empty.db")
    Store.open(empty).close()
    result = run("prices", "--db", empty)
    assert result.exit_code == 1 and "no price snapshot in" in result.stderr
    assert "`bidder collect`" in result.stderr and "bidder import-trace FILE" in result.stderr


def test_prices_says_when_the_snapshot_shown_is_old(db):
    """A snapshot 336 days old read like the current market; past a silence of the market model (an
    hour without a snapshot: no collector ran) a note says how old it is."""
    result = run("prices", "--db", db, "--now", "2026-12-03T00:00:00Z", "--format", "json")
    assert result.exit_code == 0 and len(json.loads(result.stdout)) == 5, result.output
    assert result.stderr == ("Note: RunPod's prices are from 2026-01-01T00:00:00Z, 336.0d before now "
                             "(2026-12-03T00:00:00Z): nothing was collected since, so they may be out of date "
                             "(`bidder collect` takes a fresh snapshot).\n")
    assert run("prices", "--db", db, "--now", "2026-01-01T01:00:00Z").stderr == ""  # an hour: not yet


def test_prices_reads_bidder_db_from_the_environment(db):
    result = CliRunner(env={"BIDDER_DB": db}).invoke(main, ["prices", "--format", "json", *AS_OF])
    assert result.exit_code == 0 and len(json.loads(result.output)) == 5


def _stamp(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_prices_shows_the_newest_snapshot_at_or_before_now_not_one_dated_later(tmp_path):
    """An imported trace running hours ahead of the clock: `prices` showed its last row as the current
    price. It shows the newest snapshot at or before now, and says later ones exist."""
    now = datetime.now(UTC).replace(microsecond=0)
    past, ahead = now - timedelta(minutes=10), now + timedelta(hours=3)
    trace = tmp_path / "ahead.csv"
    trace.write_text("ts,gpu_type,minimum_bid_price,uninterruptable_price\n"
                     f"{_stamp(past)},{A6000},0.2,0.5\n{_stamp(ahead)},{A6000},0.9,0.5\n")
    db = str(tmp_path / "ahead.db")
    assert run("import-trace", str(trace), "--db", db).exit_code == 0
    result = run("prices", "--db", db, "--format", "json")
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)
    assert (row["ts"], row["spot_floor"]) == (_stamp(past), 0.2)
    [note] = result.stderr.splitlines()
    assert note.startswith(f"Note: {db} holds snapshots dated after now (") and "the wall clock), up to " in note
    assert note.endswith(f"; shown is the newest at or before now (--now {_stamp(ahead)} shows the latest).")
    later = run("prices", "--db", db, "--now", _stamp(ahead), "--format", "json")
    assert later.exit_code == 0 and later.stderr == "", later.output
    assert [r["spot_floor"] for r in json.loads(later.stdout)] == [0.9]
    early = run("prices", "--db", db, "--now", _stamp(past - timedelta(minutes=1)))
    assert early.exit_code == 1 and early.stderr == (
        f"Error: no price snapshot at or before {_stamp(past - timedelta(minutes=1))} (--now) in {db}: every one "
        f"is later, from {_stamp(past)} to {_stamp(ahead)}; give --now {_stamp(ahead)} (or any time from "
        f"{_stamp(past)} on) to see them\n")  # (it said "give --now TIME" to a --now already given)


def test_an_imported_trace_whose_markets_keep_their_own_times_shows_and_weighs_every_market(tmp_path):
    """The A6000 sampled at :00, the RTX 4090 at :02: `prices` showed the 4090 alone and `recommend`
    bought it at $0.30 where the A6000's floor was $0.20."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [f"{_stamp(start + timedelta(minutes=5 * i + m))},{gpu},{floor},{od}\n" for i in range(288)
            for m, gpu, floor, od in ((0, A6000, 0.2, 0.5), (2, "NVIDIA GeForce RTX 4090", 0.3, 0.7))]
    trace = tmp_path / "offset.csv"
    trace.write_text("ts,gpu_type,minimum_bid_price,uninterruptable_price\n" + "".join(rows))
    db = str(tmp_path / "offset.db")
    assert run("import-trace", str(trace), "--db", db).exit_code == 0
    now = ("--now", "2026-01-01T12:03:00Z")
    shown = run("prices", "--db", db, "--format", "json", *now)
    assert shown.exit_code == 0, shown.output
    assert {r["gpu_type_id"]: r["spot_floor"] for r in json.loads(shown.stdout)} == {
        A6000: 0.2, "NVIDIA GeForce RTX 4090": 0.3}
    advice = run("recommend", "--db", db, "--hours", "2", "--deadline", "6h", "--format", "json", *now)
    assert advice.exit_code == 0, advice.output
    chosen = json.loads(advice.stdout)
    assert (chosen["decision"]["gpu_type"], chosen["decision"]["bid_per_gpu"]) == (A6000, 0.2)
    assert {a["gpu_type"] for a in chosen["alternatives"]} == {A6000, "NVIDIA GeForce RTX 4090"}


@pytest.fixture
def history_db(tmp_path):
    """A6000 community: 100 samples 5 minutes apart, floor 0.01..1.00 with every 4th sample unavailable."""
    path = tmp_path / "history.db"
    floors = [None if i % 4 == 3 else round(0.01 * (i + 1), 2) for i in range(100)]
    with Store.open(path) as store:
        store.import_quotes([q(T0 + timedelta(minutes=5 * i), A6000, "COMMUNITY", f, 0.33)
                             for i, f in enumerate(floors)])
    return str(path), np.array([f for f in floors if f is not None])


def test_history_summary_matches_numpy(history_db):
    db, spot = history_db
    result = run("history", "RTX A6000", "--since", "all", "--db", db, "--format", "json")
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.output)
    assert row["samples"] == 100 and row["from"] == "2026-01-01T00:00:00Z" and row["to"] == "2026-01-01T08:15:00Z"
    assert row["min"] == pytest.approx(spot.min()) and row["max"] == pytest.approx(spot.max())
    assert row["median"] == pytest.approx(np.median(spot))
    assert row["p90"] == pytest.approx(np.percentile(spot, 90), abs=1e-4)
    assert row["spot_available_pct"] == 75.0 and row["on_demand"] == 0.33
    table = run("history", "a6000", "--since", "2026-01-01T04:00:00Z", "--db", db)
    assert table.output.splitlines()[0] == f"{A6000}: spot floor, USD per GPU-hour, since 2026-01-01T04:00:00Z."
    assert "COMMUNITY     1       52  2026-01-01T04:00:00Z" in table.output


def test_history_weighs_each_sample_by_the_time_it_held(tmp_path):
    """0.20 sampled hourly for six days, then 0.60 every five minutes for one: counted by rows (144
    against 288) the median was 0.60, though the floor was 0.20 six days in seven. Each price holds
    until the next sample (a gap counts an hour at most), and the longest gap is shown."""
    db = tmp_path / "irregular.db"
    hourly = [q(T0 + timedelta(hours=h), A6000, "COMMUNITY", 0.2, 0.33) for h in range(144)]
    fine = [q(T0 + timedelta(hours=144, minutes=5 * i), A6000, "COMMUNITY", 0.6, 0.33) for i in range(288)]
    gap = [q(T0 + timedelta(hours=174), A6000, "COMMUNITY", 0.6, 0.33)]  # 6 hours after the last sample
    with Store.open(db) as store:
        store.import_quotes([*hourly, *fine, *gap])
    result = run("history", "RTX A6000", "--since", "all", "--db", str(db), "--format", "json")
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.output)
    assert (row["samples"], row["min"], row["median"], row["max"]) == (433, 0.2, 0.2, 0.6)
    assert row["p90"] == pytest.approx(0.6) and row["spot_available_pct"] == 100.0
    assert row["longest_gap_h"] == pytest.approx(6.1, abs=0.05)
    table = run("history", "RTX A6000", "--since", "all", "--db", str(db))
    assert "longest gap h" in table.output.splitlines()[1]
    # The table shows these shares and hours as the JSON rounds them (it read 100.000 and 6.100).
    cells = table.output.splitlines()[3].split()
    assert cells[-3:] == [f"{row['spot_available_pct']:.1f}", "0.330", f"{row['longest_gap_h']:.1f}"] == \
        ["100.0", "0.330", "6.1"]


def test_history_errors(history_db, tmp_path):
    db, _ = history_db
    result = run("history", "A6000", "--db", db, "--since", "7d")  # the wall clock is long past 2026-01-01
    assert result.exit_code == 1
    assert "no samples of NVIDIA RTX A6000 since" in result.stderr
    assert "its history runs from 2026-01-01T00:00:00Z to 2026-01-01T08:15:00Z (try --since all)" in result.stderr
    result = run("history", "A6000", "--db", db, "--since", "last tuesday")
    assert result.exit_code == 2 and "is neither a duration before now (e.g. 7d, 12h) nor an ISO 8601 time" in result.stderr
    result = run("history", "RTX 4090", "--db", db, "--since", "all")
    assert result.exit_code == 1 and result.stderr.startswith("Error: unknown GPU type 'RTX 4090'")
    empty = str(tmp_path / "empty.db")
    Store.open(empty).close()
    result = run("history", "A6000", "--db", empty)
    assert result.exit_code == 1 and "no price history in" in result.stderr and "bidder collect" in result.stderr


def test_filters_that_match_none_of_the_history_say_what_it_holds(history_db):
    """It said "no price history ... collect a snapshot" though the history was there, and "try --since
    all" to a window given --since all."""
    db, _ = history_db
    result = run("history", "A6000", "--db", db, "--since", "all", "--cloud", "secure", "--gpu-count", "2")
    assert result.exit_code == 1
    assert result.stderr == (f"Error: no price history of NVIDIA RTX A6000 for --cloud secure --gpu-count 2 in {db}; "
                             "it has community x1 (cloud x GPUs): choose one of those\n")
    result = run("history", "A6000", "--db", db, "--since", "all", "--until", "2025-01-01T00:00:00Z")
    assert result.exit_code == 1 and "(give a later --until, or leave it out)" in result.stderr, result.stderr


def test_a_window_counted_back_from_the_wall_clock_ends_at_it(tmp_path):
    """Imported rows dated after the wall clock were in `--since 1d` (the last day), with no upper end."""
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    trace = tmp_path / "later.csv"
    trace.write_text("ts,gpu_type,minimum_bid_price,uninterruptable_price\n" + "".join(
        f"{(later + timedelta(minutes=30 * i)).strftime('%Y-%m-%dT%H:%M:%SZ')},NVIDIA RTX A6000,0.2,0.5\n"
        for i in range(4)))
    db = str(tmp_path / "later.db")
    # (without --now, import-trace refuses rows more than a day after the wall clock)
    assert run("import-trace", str(trace), "--db", db, "--now", later.strftime("%Y-%m-%dT%H:%M:%SZ")).exit_code == 0
    result = run("history", "A6000", "--db", db, "--since", "1d")
    assert result.exit_code == 1 and "no samples of NVIDIA RTX A6000 since" in result.stderr, result.output
    assert run("history", "A6000", "--db", db, "--since", "all", "--format", "json").exit_code == 0


def test_history_as_of_now_ends_the_window_at_now(history_db):
    """--now is an as-of time: the window ends at it (its own sample included), as --until would."""
    db, _ = history_db
    result = run("history", "A6000", "--db", db, "--now", "2026-01-01T03:00:00Z", "--since", "3h", "--format", "json")
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)
    assert (row["from"], row["to"], row["samples"]) == ("2026-01-01T00:00:00Z", "2026-01-01T03:00:00Z", 37)
    table = run("history", "A6000", "--db", db, "--now", "2026-01-01T03:00:00Z", "--since", "all")
    assert table.output.splitlines()[0] == f"{A6000}: spot floor, USD per GPU-hour, all history as of 2026-01-01T03:00:00Z."
    # A relative --until counts back from --now; an explicit --until still wins over it.
    before = run("history", "A6000", "--db", db, "--now", "2026-01-01T03:00:00Z", "--since", "all", "--until", "1h",
                 "--format", "json")
    assert json.loads(before.stdout)[0]["to"] == "2026-01-01T01:55:00Z"
    # A --now before the newest data is an as-of time, not refused; the help says --allow-past is not for it.
    assert "Not needed with --now" in " ".join(run("history", "--help").output.split())


@pytest.mark.parametrize("command", ["collect", "prices", "history", "import-trace", "export"])
def test_help_ends_with_an_example(command):
    result = run(command, "--help")
    assert result.exit_code == 0
    assert result.output.rstrip().splitlines()[-1].strip().startswith(f"bidder {command}")
