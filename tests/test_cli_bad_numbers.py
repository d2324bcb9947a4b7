"""Numbers no user means: nan, inf, durations past any date, overheads longer than the deadline, disks
past any machine, chart files matplotlib cannot write, options that contradict each other (and launch's
options named as typed). Each is refused by the real CLI before any work, with an error naming the
option: never a traceback, a hang, a 300-digit dollar amount or a silent change of decision."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from bidder.cli import main
from bidder.store import Store

TRACE = str(Path(__file__).resolve().parents[1] / "data" / "traces" / "sim-seed1-14d.csv")
BATCH = ("backtest", "--trace", TRACE, "--hours", "5", "--deadline", "1d")


@pytest.mark.parametrize(("args", "said"), [
    (("recommend", "--gpu", "A6000", "--hours", "nan"), "'--hours': 'nan' is not a finite number"),
    (("recommend", "--gpu", "A6000", "--hours", "1e308"), "'--hours': 1e+308 is not in the range"),
    (("recommend", "--gpu", "A6000", "--hours", "10", "--max-price", "nan"), "'--max-price': 'nan' is not a finite"),
    (("recommend", "--gpu", "A6000", "--hours", "10", "--budget", "nan"), "'--budget': 'nan' is not a finite"),
    (("recommend", "--gpu", "A6000", "--hours", "10", "--min-savings", "nan"), "'--min-savings': 'nan'"),
    # bidder.toml refuses both (a spot price of nothing; a price no market charges): so do the options.
    (("recommend", "--gpu", "A6000", "--hours", "10", "--min-savings", "1"), "'--min-savings': 1.0 is not in the "
                                                                             "range 0<=x<1"),
    (("launch", "--gpu", "A6000", "--hours", "10", "--image", "x", "--max-price", "5000", "--dry-run"),
     "'--max-price': 5000.0 is not in the range 0<x<=1000.0"),
    (("recommend", "--gpu", "A6000", "--hours", "10", "--deadline", "99999999d"), "is over 100 years"),
    (("launch", "--gpu", "A6000", "--hours", "10", "--deadline", "99999999d", "--image", "x", "--dry-run"),
     "is over 100 years"),
    (("launch", "--gpu", "A6000", "--hours", "10", "--image", "x", "--disk", "99999999999999999999", "--dry-run"),
     "'--disk': 99999999999999999999 is not in the range 1<=x<=100000"),
    (("launch", "--gpu", "A6000", "--min-vram", "24", "--hours", "10", "--image", "x", "--dry-run"),
     "bidder launch sets both --gpu and --min-vram: give one of them"),
    (("launch", "--gpu", "A6000", "--hours", "10", "--dry-run"), "bidder launch needs --image (a Docker image"),
    (("history", "A6000", "--since", "99999999d"), "--since: duration '99999999d' is over 100 years"),
    (("report", "--since", "9999999999d"), "is over 100 years"),
    (("report", "--since", "20260103"), "--since: '20260103' has no unit: give a duration before now (e.g. 7d, 12h, "
                                        "30m), an ISO 8601 time (e.g. 2026-01-03T00:00:00Z), or 'all'"),
    (("report", "--until", "1767400000"), "--until: '1767400000' has no unit: give a duration before now (e.g. 7d, "
                                          "12h, 30m) or an ISO 8601 time (e.g. 2026-01-03T00:00:00Z)"),
    (("history", "A6000", "--since", "1.5"), "--since: '1.5' has no unit"),
    # A cloud of the other market: "no quote matches these filters", "collect prices first".
    (("prices", "--cloud", "verified", "--market", "runpod"),
     "--cloud: verified is not a cloud of runpod; its clouds are secure, community"),
    (("recommend", "--gpu", "A6000", "--hours", "1", "--cloud", "secure", "--market", "vast"),
     "--cloud: secure is not a cloud of vast; its clouds are verified, unverified"),
    (("history", "A6000", "--since", "2026-01-10T00:00:00Z", "--until", "2026-01-05T00:00:00Z"),
     "--until: the window is empty: 2026-01-05T00:00:00Z is not after --since 2026-01-10T00:00:00Z"),
    # A zero-length window (exit 0), and a --since after now blamed on --until, which was not given.
    (("history", "A6000", "--since", "0d"), "--since: the period is empty: --since 0d ("),
    (("history", "A6000", "--now", "2026-01-10T00:00:00Z", "--since", "2026-02-01T00:00:00Z"),
     "--since: the period is empty: --since 2026-02-01T00:00:00Z is not before now (2026-01-10T00:00:00Z)"),
    ((*BATCH[:3], "--hours", "inf"), "'--hours': inf is not in the range"),
    ((*BATCH, "--reclaim-rate", "inf"), "'--reclaim-rate': inf is not in the range"),
    ((*BATCH, "--max-price", "nan"), "'--max-price': 'nan' is not a finite number"),
    ((*BATCH, "--restart-overhead", "2d"), "--restart-overhead: must be shorter than the deadline (24.0h)"),
    # The deadline typed, the overhead the default: --restart-overhead, not given, was blamed.
    ((*BATCH[:-2], "--deadline", "10m"), "--deadline: must be longer than the restart overhead (10m, the default "
                                         "--restart-overhead), e.g. 1d"),
    ((*BATCH[:-2], "--deadline", "0s"), "--deadline: must be longer than 0, e.g. 7d"),
    ((*BATCH, "--chart", "out.txt"), "--chart: cannot write a .txt chart; use one of"),
    ((*BATCH, "--chart", ""), "--chart: the chart's file name is empty; give one, e.g. spend.png"),  # (ignored)
    ((*BATCH, "--format", "csv", "--json"), "--json is --format json: give one of --json and --format csv"),
    # inf turned the interruption budget off, unsaid; past one a minute a tolerance is a typo.
    (("recommend", "--gpu", "A6000", "--hours", "10", "--tolerance", "inf"),
     "'--tolerance': tolerance must be from 0 to 1440 interruptions per day (one a minute), got 'inf'"),
    (("recommend", "--gpu", "A6000", "--hours", "10", "--tolerance", "1e400"), "'--tolerance': tolerance must be"),
    (("launch", "--gpu", "A6000", "--hours", "10", "--image", "x", "--tolerance", "1e308", "--dry-run"),
     "'--tolerance': tolerance must be from 0 to 1440"),
    ((*BATCH, "--tolerance", "infinity"), "'--tolerance': tolerance must be from 0 to 1440"),
    (("sim", "trace", "out.csv", "--days", "1e9"), "'--days': 1000000000.0 is not in the range"),
    (("sim", "trace", "out.csv", "--days", "nan"), "'--days': 'nan' is not a finite number"),
    (("sim", "serve", "--speed", "inf"), "'--speed': inf is not in the range"),
    (("stop", "abc", "--wait", "nan"), "'--wait': 'nan' is not a finite number"),
    (("stop", " "), "Invalid value for POD_ID: must not be empty"),  # (exit 1, "a pod id must be a non-empty string")
    # A line break went to podStop with the id, and the error naming it split over two lines.
    (("stop", "abc\n"), "Invalid value for POD_ID: 'abc\\n' holds a line break at character 4: give the pod's id on "
                        "one line, without control characters"),
    (("stop", "--job", "train\n"), "--job: 'train\\n' holds a line break at character 6: give the job's name on one"),
    (("stop", "3pzo 5nuevq61rq"), "POD_ID: '3pzo 5nuevq61rq' cannot be a pod id: RunPod's are letters and digits"),
    (("launch", "--gpu", "A6000", "--hours", "1", "--image", "x", "--name", "", "--dry-run"),
     "--name: must not be empty"),
    # Control characters went into the create request; of a repeated --env every one was sent.
    (("launch", "--gpu", "A6000", "--hours", "1", "--image", "x/y\n", "--dry-run"),
     "--image 'x/y\\n': holds a line break at character 4: write it on one line, without control characters"),
    (("launch", "--gpu", "A6000", "--hours", "1", "--image", "x", "--env", "A=b\nc", "--dry-run"),
     "--env 'A=b\\nc': the value of A holds a line break at character 2"),
    (("launch", "--gpu", "A6000", "--hours", "1", "--image", "x", "--env", "A=1", "--env", "A=2", "--dry-run"),
     "--env A=1 A=2: A is given twice (A='1', A='2'): give it once"),
    # /dev/null read as a file of no jobs: the tick did nothing, exit 0, where launch refused it.
    (("tick", "--config", "/dev/null", "--dry-run"), "--config: /dev/null is not a regular file, not a jobs file: give the bidder.toml"),
    (("jobs", "--config", "/dev/null"), "--config: /dev/null is not a regular file, not a jobs file"),
    (("tick", "--config", "", "--dry-run"), "--config: is empty: give the bidder.toml your jobs run from"),  # (" : Is a
    (("launch", "--gpu", "A6000", "--hours", "1", "--image", "x", "--config", "", "--dry-run"),  # directory")
     "--config: is empty: give the bidder.toml"),
    # Empty paths and names said "cannot write .: Is a directory", "cannot append to : Is a directory", "job  has
    # no active pod"; a database path holding a line break split every message about it in two.
    (("sim", "trace", ""), "Invalid value for OUT: is empty: give a file name, or - for stdout"),
    # An offset that moves a time past the year 9999 in UTC: an OverflowError traceback.
    (("history", "A6000", "--since", "9999-12-31T23:00:00-05:00"),
     "--since: '9999-12-31T23:00:00-05:00' is out of range: in UTC it must fall in the years 1 to 9999"),
    (("report", "--now", "9999-12-31T23:00:00-05:00"), "--now: '9999-12-31T23:00:00-05:00' is out of range"),
    (("sim", "trace", "out.csv", "--start", "9999-12-31T23:00:00-05:00"),
     "'--start': '9999-12-31T23:00:00-05:00' is out of range"),
    # "" is part of every name: it listed the 38 known ones as if none matched.
    (("sim", "trace", "out.csv", "--gpu", ""), "--gpu: must not be empty: give a GPU type (RunPod's id, e.g. "
                                               "'NVIDIA RTX A6000'; Vast's name, e.g. 'RTX 4090')"),
    (("tick", "--log", "", "--dry-run"), "--log: is empty: give a file name, e.g. tick.jsonl"),
    (("stop", "--job", ""), "--job: must not be empty: give the job's name (`bidder jobs` lists them)"),
    (("prices", "--db", "base.db\n"), "--db: 'base.db\\n' holds a control character (a line break?): give the "
                                      "database file's name on one line"),
    (("sim", "serve", "--api-key", " "), "--api-key: must not be empty"),
    # A key no client can send (the client refuses it): the emulator started and printed it.
    (("sim", "serve", "--api-key", "a b"), "--api-key: holds a space or tab at character 2: no client can send"),
    (("sim", "serve", "--api-key", "k\nx"), "--api-key: holds a line break at character 2"),
    (("collect", "--vast-min-reliability", "nan"), "'--vast-min-reliability': 'nan' is not a finite number"),
    (("collect", "--gpu-counts", "1,,2"), "'--gpu-counts': '1,,2' has an empty item: give comma-separated whole"),
    # The last of the two flags silently won.
    (("collect", "--vast-verified-only", "--vast-unverified"),
     "--vast-verified-only and --vast-unverified contradict each other: give one of them"),
])
def test_a_number_no_user_means_is_refused_naming_the_option(tmp_path, monkeypatch, args, said):
    monkeypatch.chdir(tmp_path)
    reads = args[0] in ("recommend", "history", "report")
    if reads:  # an empty database: these read the window after opening it
        Store.open(tmp_path / "x.db").close()
    result = CliRunner().invoke(main, [*args, *(("--db", "x.db") if reads else ())], prog_name="bidder")
    assert result.exit_code in (1, 2) and "Traceback" not in result.output + result.stderr, result.output
    [error] = result.stderr.strip().splitlines()  # one line, usage errors too (no usage block above it)
    assert error.startswith("Error: ") and said in error, result.stderr
    if result.exit_code == 2:
        assert error.endswith(f"(see `bidder {' '.join(args[:2] if args[0] == 'sim' else args[:1])} --help`)")
    assert sorted(p.name for p in tmp_path.iterdir()) in ([], ["x.db"])  # nothing else written


def test_a_now_outside_the_history_says_where_the_history_is(tmp_path):
    db = str(tmp_path / "t.db")
    assert CliRunner().invoke(main, ["import-trace", TRACE, "--db", db]).exit_code == 0
    result = CliRunner().invoke(main, ["recommend", "--hours", "100", "--deadline", "7d", "--db", db,
                                       "--now", "2016-09-06T12:00:00Z"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.strip() == ("Error: no prices in the 24.0h before 2016-09-06T12:00:00Z in the database "
                                     "(its newest snapshot is 2026-01-14T23:55:00Z): give a --now within its "
                                     "history")  # the times as bidder writes them (the wall clock's had microseconds)


@pytest.mark.parametrize("command", [("export",), ("prices",), ("history", "A6000"),
                                     ("chart", "prices", "out.png", "--gpu", "A6000")])
def test_a_gpu_count_past_any_stored_row_is_a_usage_error(snapshot_db, command):
    """`export --gpu-count 99999999999999999999999` ended in a 35-line OverflowError traceback (the number
    went to SQLite); the readers of stored prices take a count any stored row may hold."""
    result = CliRunner().invoke(main, [*command, "--gpu-count", "99999999999999999999999", "--db", str(snapshot_db)],
                                prog_name="bidder")
    assert result.exit_code == 2 and "Traceback" not in result.output + result.stderr, result.output
    [error] = result.stderr.strip().splitlines()
    assert "'--gpu-count': 99999999999999999999999 is not in the range 1<=x<=1000000" in error, error
