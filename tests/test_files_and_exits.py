"""Smaller rough edges of issue 13: files written through a temporary file get the usual umask
permissions; `collect --every` exits 130 on Ctrl-C and non-zero when every attempt failed; an
export under a missing folder is one error; a 0-byte file is not silently made a database."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from bidder.cli import main
from bidder.cli.signals import Terminated, sigterm_raises
from bidder.sim import TEST_API_KEY
from bidder.store import Store, discard_unused
from bidder.store.schema import SCHEMA_VERSION


@pytest.fixture
def db(snapshot_db):
    return snapshot_db


def test_an_export_file_gets_the_umask_permissions(db, tmp_path):
    old = os.umask(0o022)
    try:
        out = tmp_path / "all.csv"
        result = CliRunner().invoke(main, ["export", "--db", str(db), "-o", str(out)])
        assert result.exit_code == 0, result.output + result.stderr
        assert (out.stat().st_mode & 0o777) == 0o644
    finally:
        os.umask(old)


def test_an_export_under_a_missing_folder_is_one_error(db, tmp_path):
    result = CliRunner().invoke(main, ["export", "--db", str(db), "-o", str(tmp_path / "nope" / "all.csv")])
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "nope" in lines[0] and "does not exist" in lines[0]


def test_an_export_to_dash_writes_stdout_and_an_empty_name_is_refused(db, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # '-' was written as a file of that name here
    plain = CliRunner().invoke(main, ["export", "--db", str(db)])
    dash = CliRunner().invoke(main, ["export", "--db", str(db), "-o", "-"])
    assert dash.exit_code == 0 and dash.stdout == plain.stdout and dash.stdout.startswith("ts,gpu_type,")
    assert dash.stderr == plain.stderr and dash.stderr.startswith("Exported ") and " to " not in dash.stderr
    empty = CliRunner().invoke(main, ["export", "--db", str(db), "-o", ""])  # "cannot write : it is a folder"
    assert (empty.exit_code, empty.stdout) == (2, "")
    assert empty.stderr.startswith("Error: Invalid value for --output: is empty: give a file name, or - for stdout")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bidder.db"]


def test_an_export_that_selects_no_row_writes_nothing_and_says_what_the_database_holds(db, tmp_path):
    out = tmp_path / "old.csv"
    out.write_text("kept\n")
    runner = CliRunner()
    for args in (["--since", "2020-01-01T00:00:00Z", "--until", "2020-01-02T00:00:00Z", "-o", str(out)], ["--gpu-count", "7"],
                 ["--market", "vast"]):
        result = runner.invoke(main, ["export", "--db", str(db), *args])
        assert result.exit_code == 1, result.output
        assert result.stdout == ""  # not even the header: import-trace refuses a header-only file
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "nothing written" in lines[0], lines
    assert out.read_text() == "kept\n"
    said = runner.invoke(main, ["export", "--db", str(db), "--since", "2020-01-01", "--until", "2020-01-02"]).stderr
    assert "period: 2020-01-01T00:00:00Z to 2020-01-02T00:00:00Z" in said and f"{db} holds 2026-" in said
    assert "--gpu-count 7" in runner.invoke(main, ["export", "--db", str(db), "--gpu-count", "7"]).stderr
    assert "no price history of market vast" in runner.invoke(main, ["export", "--db", str(db), "--market",
                                                                     "vast"]).stderr


def _export(db, out) -> object:
    return CliRunner().invoke(main, ["export", "--db", str(db), "-o", str(out)])


def test_an_export_through_a_symlink_replaces_its_target_not_the_link(db, tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "all.csv"
    target.write_text("old\n")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    result = _export(db, link)
    assert result.exit_code == 0, result.output + result.stderr
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text().startswith("ts,gpu_type,") and not list(tmp_path.rglob("*.part"))


def test_an_export_into_a_fifo_writes_it_and_leaves_it_a_fifo(db, tmp_path):
    import stat
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    reader.start()
    result = _export(db, fifo)
    reader.join(10)
    assert result.exit_code == 0, result.output + result.stderr
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert got and got[0].startswith("ts,gpu_type,") and got[0].count("\n") > 10


def test_an_export_to_a_place_that_cannot_be_written_is_one_error(db, tmp_path):
    import socket

    sock_path = tmp_path / "s.sock"  # not a file, and open() refuses it
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        (tmp_path / "plain").write_text("")
        for out in (sock_path, tmp_path / "plain" / "x.csv", "/proc/bidder-export-test.csv"):
            result = _export(db, out)
            assert result.exit_code == 1, (out, result.output)
            assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith(f"Error: cannot write {out}: "), lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bidder.db", "plain", "s.sock"]


def test_a_sim_trace_that_cannot_be_written_whole_leaves_the_old_file(tmp_path):
    """`(ulimit -f 100; bidder sim trace t.csv)` over a trace: it was written in place, and the failed
    write left a truncated CSV, the old content gone."""
    out = tmp_path / "t.csv"
    out.write_text("old content\n")
    run = [sys.executable, "-c", "from bidder.cli import main; main()", "sim", "trace", str(out), "--days", "1"]
    proc = subprocess.run(["sh", "-c", 'ulimit -f 100; exec "$@"', "sh", *run], capture_output=True, text=True,
                          timeout=120)
    assert (proc.returncode, proc.stderr) == (1, f"Error: cannot write {out}: File too large\n"), proc.stderr
    assert out.read_text() == "old content\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]  # no temporary file left


@pytest.mark.skipif(not os.path.isdir("/sys"), reason="needs Linux's /sys: no file can be made there, root or not")
def test_a_database_in_a_folder_it_cannot_write_says_why_as_export_does(tmp_path):
    # SQLite says only "unable to open database file"; export said "Permission denied (in folder ...)".
    trace = tmp_path / "t.csv"
    trace.write_text("ts,gpu_type,minimum_bid_price,uninterruptable_price\n2026-01-01T00:00:00Z,G,0.1,0.5\n")
    result = CliRunner().invoke(main, ["import-trace", str(trace), "--db", "/sys/bidder-test.db"])
    assert (result.exit_code, result.stderr) == (1, "Error: cannot open /sys/bidder-test.db: Permission denied "
                                                    "(in folder /sys)\n")


def test_a_zero_byte_file_is_not_made_a_database(tmp_path):
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    result = CliRunner().invoke(main, ["prices", "--db", str(empty)])
    assert result.exit_code == 1, result.output
    assert "empty" in result.stderr and result.stderr.count("\n") == 1
    assert empty.stat().st_size == 0


@pytest.mark.parametrize("rows", ["2026-01-01T00:00:00Z,NVIDIA RTX A6000,abc,0.5\n", ""])
def test_a_failed_import_into_a_new_file_leaves_no_database(tmp_path, rows):
    trace = tmp_path / "t.csv"
    trace.write_text("ts,gpu_type,minimum_bid_price,uninterruptable_price\n" + rows)
    result = CliRunner().invoke(main, ["import-trace", str(trace), "--db", str(tmp_path / "new.db")])
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]  # no empty new.db (nor -wal, -shm)


_HEADER = "ts,gpu_type,minimum_bid_price,uninterruptable_price\n"
_MAIN = "from bidder.cli import main; main()"


def _importing(db, env=None) -> subprocess.Popen:
    """`import-trace -` into `db` from a subprocess, given one row: once it has made the file, waiting for
    more rows on its stdin."""
    importer = subprocess.Popen([sys.executable, "-c", _MAIN, "import-trace", "-", "--db", str(db)], env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    importer.stdin.write(_HEADER + "2026-01-01T00:00:00Z,NVIDIA RTX A6000,0.3,0.5\n")
    importer.stdin.flush()
    deadline = time.monotonic() + 30
    try:
        while not (db.exists() and db.stat().st_size > 0):  # the import made the file and waits for more rows
            assert time.monotonic() < deadline and importer.poll() is None
            time.sleep(0.05)
    except BaseException:
        importer.kill()
        importer.wait()
        raise
    return importer


def test_a_failed_import_keeps_a_new_database_a_collector_took_up(emulator, tmp_path):
    """The race of the tester: `import-trace` creates race.db, a `bidder collect` opens it and stores a
    snapshot, then the import fails. The database is the collector's now: it stays, with its prices
    (it was deleted under the collector, which had said "stored 76 quotes")."""
    db = tmp_path / "race.db"
    env = {**os.environ, "RUNPOD_API_KEY": TEST_API_KEY}
    importer = _importing(db, env)
    collector = subprocess.Popen([sys.executable, "-c", _MAIN, "-v", "collect", "--db", str(db), "--api-url",
                                  emulator.url], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # -v logs each HTTP request: once the first is answered, the collector has the database open.
    for line in collector.stderr:
        if "HTTP Request: POST" in line:
            break
    _, imported = importer.communicate("2026-01-01T00:05:00Z,NVIDIA RTX A6000,abc,0.5\n", timeout=60)
    collected, _ = collector.communicate(timeout=60)
    assert importer.returncode == 1 and "'abc' is not a number" in imported
    assert collector.returncode == 0 and " stored " in collected
    assert db.exists()
    with Store.open(db) as store:
        [row] = store.collections()
        assert row["error"] is None and len(store.price_history()) == row["quotes"] > 0


def test_an_import_stopped_by_sigterm_leaves_no_new_database(tmp_path):
    """SIGTERM (`timeout`, systemd's stop, `kill`) ended an import at once and left its new file, -wal
    and -shm behind with no price in them; it unwinds as a failure does: the file is removed, exit 143."""
    db = tmp_path / "new.db"
    importer = _importing(db)
    try:
        importer.send_signal(signal.SIGTERM)
        out, err = importer.communicate(timeout=60)
    finally:
        if importer.poll() is None:
            importer.kill()
            importer.wait()
    assert importer.returncode == 143, err
    assert err == "Terminated: nothing imported\n" and out == ""
    assert list(tmp_path.iterdir()) == []  # no new.db, -wal or -shm


def test_a_new_database_someone_wrote_into_is_not_discarded(tmp_path):
    db = tmp_path / "new.db"
    with Store.open(db) as store:
        store.settings_set("note", "another bidder's", ts=datetime(2026, 1, 1, tzinfo=UTC))
        assert discard_unused(db) == f"{db} was kept: another bidder has it open"
    assert discard_unused(db) == f"{db} was kept: another bidder wrote into it meanwhile (settings)"
    with Store.open(db) as store:
        assert store.settings_get("note") == "another bidder's"
    Store.open(tmp_path / "unused.db").close()
    assert discard_unused(tmp_path / "unused.db") is None and discard_unused(tmp_path / "never.db") is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.db"]


def test_a_new_database_that_cannot_be_removed_is_one_note_not_a_traceback(tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text(_HEADER + "2026-01-01T00:00:00Z,NVIDIA RTX A6000,0.3,0.5\n")
    (tmp_path / "new.db-shm").mkdir()  # the import fails on it, and its removal too (unlink refuses a folder)
    result = CliRunner().invoke(main, ["import-trace", str(trace), "--db", str(tmp_path / "new.db")])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception  # no traceback
    note, error = result.stderr.splitlines()
    assert note == f"note: could not remove {tmp_path / 'new.db-shm'}: Is a directory"
    assert error.startswith(f"Error: cannot write to {tmp_path / 'new.db'}: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.db-shm", "t.csv"]


def _read_only_folder_works() -> bool:
    probe = subprocess.run(["unshare", "-rm", "--propagation", "private", "sh", "-c",
                            "mount -t tmpfs -o ro tmpfs /tmp"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not shutil.which("unshare") or not _read_only_folder_works(),
                    reason="needs unshare and a mount namespace to make a read-only file system")
def test_an_import_into_a_read_only_folder_is_one_error_line(tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text(_HEADER + "2026-01-01T00:00:00Z,NVIDIA RTX A6000,0.3,0.5\n")
    rom = tmp_path / "rom"
    rom.mkdir()
    # A read-only file system in a mount namespace of the child's own: the test's machine is untouched.
    script = f'mount -t tmpfs -o ro tmpfs {rom} && exec "$0" -c "$1" import-trace {trace} --db {rom}/new.db'
    result = subprocess.run(["unshare", "-rm", "--propagation", "private", "sh", "-c", script, sys.executable,
                             _MAIN], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    # SQLite's "unable to open database file" named no cause.
    assert result.stderr == f"Error: cannot open {rom}/new.db: Read-only file system (in folder {rom})\n"


def _read_only(target, *command):
    """`bidder COMMAND` with `target` (a file or folder) bind-mounted read-only in a mount namespace of
    the child's own (the test's machine is untouched; root's write access does not pass a read-only mount)."""
    script = (f'mount --bind {target} {target} && mount -o remount,ro,bind {target} && exec "$0" -c "$@"')
    return subprocess.run(["unshare", "-rm", "--propagation", "private", "sh", "-c", script, sys.executable, _MAIN,
                           *command], capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(not shutil.which("unshare") or not _read_only_folder_works(),
                    reason="needs unshare and a mount namespace to make a read-only file system")
def test_an_older_database_that_cannot_be_written_says_it_needs_upgrading_once(tmp_path):
    db = tmp_path / "old.db"
    Store.open(db).close()
    with contextlib.closing(sqlite3.connect(db)) as conn:  # as version 5 left it: no offers_market index
        conn.execute("DROP INDEX offers_market")
        conn.execute("ALTER TABLE pods DROP COLUMN volume_in_gb")  # (nor version 7's column)
        conn.execute("PRAGMA user_version = 5")
        conn.commit()
    before = db.read_bytes()
    result = _read_only(db, "report", "--since", "all", "--db", str(db))
    assert result.returncode == 1, result.stderr
    # It said "cannot write to old.db: attempt to write a readonly database" to a command that only reads.
    assert result.stderr == (f"Error: {db} was written by an older bidder (schema version 5): this bidder upgrades it "
                             f"to version {SCHEMA_VERSION} the first time it opens it, which needs write access: "
                             "Read-only file system. Run any bidder command on it once as a user who can write the "
                             "file and its folder\n")
    assert db.read_bytes() == before
    # Once upgraded by someone who can write it, the read-only file reads.
    Store.open(db).close()
    result = _read_only(db, "report", "--since", "all", "--db", str(db))
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(not shutil.which("setpriv"), reason="needs setpriv to run a command without root's file access")
def test_a_database_in_a_folder_it_cannot_write_names_the_folder(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    Store.open(folder / "b.db").close()
    folder.chmod(0o555)  # SQLite cannot make the -wal and -shm files beside the database
    try:
        # Without the capabilities that let root write anywhere, the folder's mode holds (as for any user).
        result = subprocess.run(["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", sys.executable,
                                 "-c", _MAIN, "report", "--since", "all", "--db", str(folder / "b.db")],
                                capture_output=True, text=True, timeout=60)
    finally:
        folder.chmod(0o755)
    assert result.returncode == 1, result.stderr
    # It said "cannot use data/b.db as a bidder database: attempt to write a readonly database".
    assert result.stderr == f"Error: cannot open {folder / 'b.db'}: Permission denied (in folder {folder})\n"


def test_collect_every_fails_when_every_attempt_failed(tmp_path):
    result = CliRunner(env={"RUNPOD_API_KEY": TEST_API_KEY}).invoke(
        main, ["collect", "--every", "1s", "--cycles", "1", "--retries", "1", "--db", str(tmp_path / "b.db"),
               "--api-url", "http://127.0.0.1:9/graphql"])
    assert result.exit_code == 1, result.output + result.stderr
    assert "0 snapshots stored" in result.output


_NO_ONE = "http://127.0.0.1:9/graphql"  # the loopback's discard port: nothing listens, the connection is refused


def _collect(db, *args):
    return CliRunner(env={"RUNPOD_API_KEY": TEST_API_KEY}).invoke(
        main, ["collect", "--market", "runpod", "--retries", "1", "--db", str(db), "--api-url", _NO_ONE, *args])


@pytest.mark.parametrize("args", [[], ["--every", "1s", "--cycles", "1"]], ids=["once", "every"])
def test_a_failed_collect_into_a_new_file_leaves_no_database(tmp_path, args):
    """A loopback API is asked the emulator's time first; with no answer there is no time to stamp a
    failure with, so nothing is written, and a schema-only new.db stayed behind all the same."""
    result = _collect(tmp_path / "new.db", *args)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output + result.stderr
    assert result.stderr.splitlines()[-1].startswith("Error: ") and "Connection refused" in result.stderr
    assert sorted(tmp_path.iterdir()) == []  # no new.db (nor -wal, -shm)


def test_a_failed_collect_keeps_a_new_database_that_recorded_the_failure(tmp_path):
    """With --now the failure has a time and is recorded, as `collect --help` says: that row is the
    run's record for cron, so the new file stays."""
    db = tmp_path / "new.db"
    result = _collect(db, "--now", "2026-01-01T00:00:00Z")
    assert result.exit_code == 1 and "Connection refused" in result.stderr and "note:" not in result.stderr
    with Store.open(db) as store:
        [row] = store.collections()
        assert row["quotes"] == 0 and "Connection refused" in row["error"]


def test_a_failed_collect_leaves_a_database_that_was_there(tmp_path):
    db = tmp_path / "old.db"
    Store.open(db).close()  # schema only, as a failed collect left it before: still the user's file
    result = _collect(db)
    assert result.exit_code == 1 and "note:" not in result.stderr, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.db"]
    with Store.open(db) as store:
        assert store.collections() == []


def test_collect_every_exits_130_on_ctrl_c(emulator, tmp_path):
    env = {**os.environ, "RUNPOD_API_KEY": TEST_API_KEY}
    # Ctrl-C at a terminal reaches a foreground process whose SIGINT is the default. A test run started
    # in the background by a shell without job control (as CI may be) inherits SIGINT ignored, and
    # Python then keeps ignoring it: give the child the foreground's default, as a terminal would.
    proc = subprocess.Popen([sys.executable, "-c", "from bidder.cli import main; main()", "collect", "--every", "1s", "--db",
                             str(tmp_path / "b.db"), "--api-url", emulator.url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        line = ""
        while "stored" not in line and time.monotonic() < deadline:
            line = proc.stdout.readline()
        assert "stored" in line
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_naive_times_in_a_trace_are_read_as_utc_and_said_once(tmp_path):
    trace = tmp_path / "naive.csv"
    trace.write_text("ts,gpu_type,minimum_bid_price,uninterruptable_price\n"
                     "2026-01-01T00:00:00,X,0.2,0.5\n2026-01-01T00:05:00,X,0.2,0.5\n2026-01-01T00:10:00Z,X,0.2,0.5\n")
    result = CliRunner().invoke(main, ["import-trace", str(trace), "--db", str(tmp_path / "b.db")])
    assert result.exit_code == 0, result.output + result.stderr
    notes = [x for x in result.stderr.splitlines() if "read as UTC" in x]
    assert len(notes) == 1 and "line 2" in notes[0]
    assert "2026-01-01T00:00:00Z to 2026-01-01T00:10:00Z" in result.output


def test_a_naive_now_is_read_as_utc_and_said(db):
    result = CliRunner().invoke(main, ["pods", "--db", str(db), "--now", "2026-01-01T00:00:00"])
    assert result.exit_code == 0, result.output + result.stderr
    assert "--now 2026-01-01T00:00:00 has no timezone: read as UTC" in result.stderr
    quiet = CliRunner().invoke(main, ["pods", "--db", str(db), "--now", "2026-01-01T00:00:00Z"])
    assert quiet.exit_code == 0 and "UTC" not in quiet.stderr



@pytest.mark.parametrize("args", [["history", "A6000", "--since", "2026-01-01T00:00:00"],
                                  ["export", "--until", "2026-01-01T00:00:00"],
                                  ["report", "--since", "2026-01-01T00:00:00"],
                                  ["sim", "trace", "-", "--days", "0.01", "--start", "2026-01-01T00:00:00"],
                                  ["backtest", "--hours", "1", "--deadline", "1d", "--start", "2026-01-01T00:00:00"]])
def test_a_naive_since_until_or_start_is_read_as_utc_and_said_once(db, args):
    """--since, --until and sim trace's --start without a timezone were taken as UTC without a word, where
    --now says it."""
    option = args[-2]
    result = CliRunner().invoke(main, [*args, *(["--db", str(db)] if args[0] != "sim" else [])])
    notes = [x for x in result.stderr.splitlines() if "read as UTC" in x]
    assert notes == [f"note: {option} 2026-01-01T00:00:00 has no timezone: read as UTC"], result.stderr
    quiet = CliRunner().invoke(main, [*args[:-1], args[-1] + "Z", *(["--db", str(db)] if args[0] != "sim" else [])])
    assert "read as UTC" not in quiet.stderr


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (a device that is always full)")
@pytest.mark.parametrize("args", [["sim", "trace", "-", "--days", "1"], ["--help"]])
def test_output_that_cannot_be_written_is_one_line_and_a_closed_pipe_is_quiet(args):
    """stdout on a full disk: every command ended in a traceback (the tick's own Error line lost in it)."""
    run = [sys.executable, "-c", "from bidder.cli import main; main()", *args]
    with open("/dev/full", "w") as full:
        proc = subprocess.run(run, stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert (proc.returncode, proc.stderr) == (1, "Error: cannot write the output: No space left on device\n")
    # `| head`: the reader went away; the command ends without a word, as click ends it.
    piped = subprocess.Popen(run, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert piped.stdout is not None
    piped.stdout.readline()
    piped.stdout.close()
    _, err = piped.communicate(timeout=120)
    assert b"Traceback" not in err and b"Error" not in err


@pytest.mark.parametrize("args", [["export"], ["history", "RTX 4090", "--since", "all", "--format", "csv"],
                                  ["prices"]], ids=lambda a: a[0])
def test_a_closed_stdout_is_one_line_not_a_traceback(db, args):
    """`bidder export >&-`: Python leaves sys.stdout None, and csv.writer(None) ended in a TypeError
    traceback (click.echo dropped the lines of `prices` and exited 0)."""
    run = [sys.executable, "-c", "from bidder.cli import main; main()", *args, "--db", str(db)]
    proc = subprocess.run(["sh", "-c", 'exec "$@" >&-', "sh", *run], stderr=subprocess.PIPE, text=True, timeout=120)
    assert (proc.returncode, proc.stderr) == (1, "Error: cannot write the output: standard output is closed\n")


def test_a_database_path_from_cron_with_a_tilde_is_the_home_one(tmp_path, monkeypatch):
    """Cron does not expand `~` in `BIDDER_DB=~/bidder.db`: a folder named `~` was made in the current
    one, and `bidder report` run by hand read another database."""
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    runner = CliRunner(env={"HOME": str(home), "BIDDER_DB": "~/history.db"})
    result = runner.invoke(main, ["import-trace", "-"], input="ts,gpu_type,minimum_bid_price,uninterruptable_price\n"
                                                             "2026-01-01T00:00:00Z,A,0.1,0.3\n")
    assert result.exit_code == 0, result.output
    assert (home / "history.db").is_file() and list(cwd.iterdir()) == []
    empty = CliRunner().invoke(main, ["prices", "--db", ""])
    assert empty.exit_code == 2 and "--db: is empty: give the database file" in empty.stderr
    # `jobs stop NAME --db ~/...` (the subcommand's own --db) too: it made a new database under `./~`.
    (cwd / "bidder.toml").write_text('[jobs.y]\nimage = "x"\nmin_vram = 24\nhours = 1\n')
    stop = runner.invoke(main, ["jobs", "stop", "y", "--db", "~/history.db", "--dry-run"])
    assert not (cwd / "~").exists(), stop.output + stop.stderr
    assert runner.invoke(main, ["jobs", "stop", "y", "--db", ""]).exit_code == 2


def test_a_bad_option_leaves_an_older_database_as_it_was(tmp_path):
    """`history A6000 --since 1e3s` on a version-6 file exited 2 and had upgraded it to version 7 on the
    way (the options were read once the file was open): a usage error changes no file."""
    db = tmp_path / "v6.db"
    Store.open(db).close()
    with contextlib.closing(sqlite3.connect(db)) as conn:  # as version 6 left it
        conn.execute("ALTER TABLE pods DROP COLUMN volume_in_gb")
        conn.execute("PRAGMA user_version = 6")
        conn.commit()
    before = db.read_bytes()
    for args in (["history", "A6000", "--since", "1e3s"], ["history", "A6000", "--until", "nope"],
                 ["history", "A6000", "--market", "vast", "--cloud", "secure"],
                 ["export", "--since", "1e3s"], ["export", "--until", "x"],
                 ["export", "--market", "vast", "--cloud", "secure"]):
        result = CliRunner().invoke(main, [*args, "--db", str(db)])
        assert result.exit_code == 2, (args, result.output)
        assert "Invalid value for --" in result.stderr, (args, result.stderr)
        with contextlib.closing(sqlite3.connect(db)) as conn:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == 6, args
        assert db.read_bytes() == before, args


def test_a_sigterm_held_for_a_write_is_raised_when_the_block_ends():
    # An import's write, once begun, is finished whole: SIGTERM is raised after it, not in its commit.
    with pytest.raises(Terminated), sigterm_raises() as sigterm:
        sigterm.hold()
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.1)  # (the handler runs at once in the main thread; it only notes the signal)
        finished = True
    assert finished
    with pytest.raises(Terminated), sigterm_raises():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
