"""Opening bidder's SQLite file: schema upgrades, WAL, busy timeout, write transactions, the
exclusive lock, and the conversions shared by the history and ledger halves of `Store`.

The store speaks to SQLite through the standard `sqlite3` module: sqlite-utils imports pandas at
import time when it is installed, which would cost every cron `bidder tick` a third of a second."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import math
import os
import sqlite3
import stat
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from bidder.errors import LockHeld, SchemaTooNew, StoreBusy, StoreError
from bidder.store.schema import MIGRATIONS, SCHEMA_VERSION
from bidder.units import parse_timestamp, to_iso

__all__ = ["BUSY_TIMEOUT_S", "DEFAULT_DB_PATH", "StoreBase", "discard_unused", "epoch_to_datetime"]

log = logging.getLogger("bidder.store")

DEFAULT_DB_PATH = "data/bidder.db"
BUSY_TIMEOUT_S = 30.0

# Columns holding timestamps, returned to callers as datetimes.
_TIME_COLUMNS = frozenset({"ts", "finished_ts", "created", "last_seen", "ended", "started", "finished",
                           "updated", "first_ts", "last_ts"})


#: Tables every bidder database has had since schema version 1 (bidder.store.schema).
_CORE_TABLES = frozenset({"gpu_types", "prices", "markets", "collections"})


def _iso(value: datetime | str | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return to_iso(parse_timestamp(value))
    if value.tzinfo is None:
        raise StoreError(f"naive datetime {value!r}: bidder stores only timezone-aware UTC times")
    return to_iso(value)


def _price(value: float | None) -> float | None:
    """NULL for missing, NaN or 0 (RunPod's 0 floor means no capacity, never a price of 0)."""
    if value is None:
        return None
    number = float(value)
    if math.isnan(number) or number <= 0:
        return None
    return number


def _flag(value: Any) -> int | None:
    return None if value is None else int(bool(value))


def _db_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso(value)
    return value


def _from_row(row: Mapping[str, Any] | sqlite3.Row) -> dict[str, Any]:
    """A ledger row as a dict, with time columns as aware datetimes."""
    out = dict(row)
    for key, value in out.items():
        if key in _TIME_COLUMNS and isinstance(value, str):
            out[key] = parse_timestamp(value)
    return out



def _why_not_open(file: Path) -> str | None:
    """Why SQLite could not open `file` ("unable to open database file" says nothing), as `export` says
    it: the folder, where SQLite makes its -wal and -shm files beside the database, and the file
    itself are tried the same way. None when both open."""
    import tempfile

    folder = file.parent
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{file.name}.", suffix=".probe")
    except OSError as exc:
        return f"{exc.strerror or exc} (in folder {folder})"
    os.close(fd)
    os.unlink(tmp)
    if file.exists():
        try:
            os.close(os.open(file, os.O_RDWR))
        except OSError as exc:
            return str(exc.strerror or exc)
    return None


def _identity(file: Path) -> tuple[int, int] | None:
    """(device, inode) of the file at `file`, None when there is none."""
    try:
        st = os.stat(file)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _stays_empty(file: Path, wait_s: float) -> bool:
    """True when `file` exists with 0 bytes and stays so for a moment (up to 2 s): another bidder
    that is creating the database right now writes its first page within milliseconds."""
    deadline = time.monotonic() + min(wait_s, 2.0)
    while True:
        try:
            if not file.is_file() or file.stat().st_size > 0:
                return False
        except OSError:
            return False
        if time.monotonic() >= deadline:
            return True
        time.sleep(0.05)


def discard_unused(path: str | Path) -> str | None:
    """Remove the database at `path` (with its -wal, -shm and -journal) that a command created and then
    wrote nothing into (a failed import; a refresh that could not connect records only its failed
    collection, which is no data), unless another bidder has it open or wrote into it meanwhile:
    a collector that opened the new file must not go on writing into a deleted one. Both are checked
    under an exclusive lock, held while the files go: SQLite refuses it at once while any other
    connection has the file open (each one holds a shared lock). Returns None when the files are gone
    (or were never made: the open failed), else one line saying why they stay."""
    file = Path(path)
    if not file.exists():
        return None
    try:
        conn = sqlite3.connect(str(file), timeout=0, isolation_level=None)
    except sqlite3.Error as exc:
        return f"{file} was kept: {exc}"
    try:
        try:
            conn.execute("PRAGMA locking_mode = EXCLUSIVE")  # the lock below then waits for no one and stays
            conn.execute("BEGIN EXCLUSIVE")
            tables = [row[0] for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
            written = [t for t in tables if conn.execute(
                f'SELECT EXISTS (SELECT 1 FROM "{t}"{" WHERE error IS NULL" if t == "collections" else ""})'
            ).fetchone()[0]]
        except sqlite3.Error as exc:
            if (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                return f"{file} was kept: another bidder has it open"
            return f"{file} was kept: {exc}"
        if written:
            return f"{file} was kept: another bidder wrote into it meanwhile ({', '.join(written)})"
        for suffix in ("", "-wal", "-shm", "-journal"):
            try:
                Path(f"{file}{suffix}").unlink(missing_ok=True)
            except OSError as exc:
                return f"could not remove {file}{suffix}: {exc.strerror or exc}"
        return None
    finally:
        conn.close()


class StoreBase:
    """One connection to bidder's SQLite file. One per thread; `Store.open(path)` makes one."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn
        #: Which clock stamps the snapshots and polls this connection writes (bidder.clock.CLOCK_SOURCES):
        #: the CLI sets it once it knows its time ("emulator" against bidder's emulator).
        self.clock = "wall"
        self.busy_timeout_s = BUSY_TIMEOUT_S
        self._identity: tuple[int, int] | None = None  # (device, inode) of the file opened

    # -- opening, schema, transactions ------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path = DEFAULT_DB_PATH, *, create: bool = True,
             busy_timeout_s: float = BUSY_TIMEOUT_S) -> Self:
        """Open (and create, unless `create=False`) the database, upgrading an older schema.

        WAL journal (readers never block the writer) and a busy timeout (a second process waits
        for a write lock instead of failing). Raises SchemaTooNew for a file from a newer bidder,
        StoreError when the file is missing (create=False), not SQLite, or not writable.
        """
        file = Path(path)
        if _stays_empty(file, busy_timeout_s):
            # SQLite would quietly make any empty file a database: an empty file is more likely a mistake.
            raise StoreError(f"{file} is an empty file, not a bidder database: remove it (bidder then creates "
                             "the database) or point --db / BIDDER_DB at another file")
        if not file.exists():
            if not create:
                raise StoreError(f"no bidder database at {file}: collect prices first with `bidder collect` "
                                 f"(or point --db / BIDDER_DB at an existing file)")
            try:
                file.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the folder for {file}: {exc.strerror or exc}") from None
        try:
            # isolation_level=None: bidder opens every transaction itself (BEGIN IMMEDIATE for writes).
            conn = sqlite3.connect(str(file), timeout=busy_timeout_s, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {file}: {_why_not_open(file) or exc}") from None
        conn.row_factory = sqlite3.Row
        store = cls(file, conn)
        try:
            store._setup(busy_timeout_s)
        except StoreError as exc:
            conn.close()
            # SQLite names no cause for these; a folder it cannot make the -wal and -shm files in is one
            why = any(text in str(exc) for text in ("unable to open database file", "readonly database")) \
                and _why_not_open(file)
            if why:
                raise StoreError(f"cannot open {file}: {why}") from None
            raise
        except BaseException:
            conn.close()
            raise
        store._identity = _identity(file)
        return store

    def moved_away(self) -> bool:
        """Whether the path no longer names the file this connection has open: removed, or replaced by
        another (a backup restored over it). A long-running writer reopens the path then: writing on,
        `collect --every` stored its snapshots in a deleted file, or laid its write-ahead log over the
        new one's pages."""
        return _identity(self.path) != self._identity

    def close_moved(self) -> None:
        """Close a connection whose file was moved away (`moved_away`), its write-ahead log emptied into
        that file first: the `-wal` beside the path is still this connection's, and SQLite would read its
        pages into whatever database opens the path next (a restored backup showed the loop's rows, not
        its own), and leaves it there on a plain close."""
        with contextlib.suppress(sqlite3.Error):
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._conn.close()

    def _setup(self, busy_timeout_s: float) -> None:
        self.busy_timeout_s = busy_timeout_s
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            self._refuse_foreign()  # before WAL: switching the journal mode rewrites the file's header
            mode = self._wal(busy_timeout_s)
            if mode != "wal":
                log.warning("%s: journal mode %s, not WAL (readers may block the writer)", self.path, mode)
            # WAL + NORMAL: a commit survives a process crash; only a power cut may lose the last one.
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute("PRAGMA foreign_keys = ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot use {self.path} as a bidder database: {exc}") from None

    def _wal(self, busy_timeout_s: float) -> str:
        """Switch to WAL (persistent in the file). SQLite answers "database is locked" at once,
        without the busy handler, when two connections convert a fresh file together: retry."""
        deadline = time.monotonic() + busy_timeout_s
        delay = 0.005
        while True:
            try:
                mode = str(self._conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()
                if mode == "wal":
                    return mode
                return str(self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(delay)  # lock contention, not market time
                delay = min(delay * 2, 0.2)

    def _refuse_foreign(self) -> None:
        """Refuse, before anything is written to it, an SQLite file that is not bidder's: tables but
        no bidder schema version, a version without bidder's tables, or a negative version (bidder's
        count up from 0; another program set it). Only reads, so another
        program's database is left byte for byte as it was; in one statement, so one snapshot (a bidder
        creating the file meanwhile is seen before its schema or after it, never half-way)."""
        version, names = self._conn.execute(
            "SELECT (SELECT user_version FROM pragma_user_version), "
            "(SELECT group_concat(name, char(10)) FROM sqlite_master WHERE type = 'table')").fetchone()
        tables = set(names.split("\n")) if names else set()
        if version < 0 or (version == 0 and tables) or (version > 0 and not tables >= _CORE_TABLES):
            raise StoreError(f"{self.path} is an SQLite file but not a bidder database (it has "
                             + ("tables and no bidder schema version" if version == 0 else
                                f"schema version {version}, which no bidder writes" if version < 0 else
                                f"schema version {version} but not bidder's tables")
                             + "); point --db / BIDDER_DB at another file")

    def _migrate(self) -> None:
        version = self.schema_version()
        if version == SCHEMA_VERSION:
            return
        self._check_version(version)
        try:
            self._upgrade()
        except StoreError as exc:
            if "readonly database" not in str(exc) or version == 0:
                raise
            raise StoreError(
                f"{self.path} was written by an older bidder (schema version {version}): this bidder upgrades it "
                f"to version {SCHEMA_VERSION} the first time it opens it, which needs write access: "
                f"{_why_not_open(self.path) or 'the file is read-only'}. Run any bidder command on it once "
                "as a user who can write the file and its folder") from None

    def _upgrade(self) -> None:
        with self._write():
            version = self.schema_version()  # re-read under the write lock: another process may have won
            self._check_version(version)
            if version == 0 and self._conn.execute(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]:
                raise StoreError(f"{self.path} is an SQLite file but not a bidder database (it has tables "
                                 f"and no bidder schema version); point --db / BIDDER_DB at another file")
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[target].split(";"):
                    if statement.strip():
                        self._conn.execute(statement)
                self._conn.execute(f"PRAGMA user_version = {target}")
                log.info("%s: schema upgraded to version %d", self.path, target)

    def _check_version(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"{self.path} was written by a newer bidder (schema version {version}; this bidder reads "
                f"versions up to {SCHEMA_VERSION}): upgrade bidder, or point --db / BIDDER_DB at another file",
                found=version, supported=SCHEMA_VERSION)

    def schema_version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction. BEGIN IMMEDIATE takes the write lock up front (waiting up to the
        busy timeout), so a read-then-write never fails on a snapshot upgrade under concurrency."""
        if self._conn.in_transaction:
            yield self._conn  # nested: part of the enclosing transaction
            return
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise self._write_error(exc) from None
        try:
            yield self._conn
        except sqlite3.Error as exc:
            self._rollback()
            raise self._write_error(exc) from None
        except BaseException:
            self._rollback()
            raise
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
            raise self._write_error(exc) from None

    def _write_error(self, exc: sqlite3.Error) -> StoreError:
        """A failed write as one StoreError; StoreBusy when another connection kept the lock past the busy
        timeout (SQLITE_BUSY or SQLITE_LOCKED, extended codes too): that one is worth trying again later."""
        if (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            return StoreBusy(f"cannot write to {self.path}: {exc} (another process held its write lock for over "
                             f"{self.busy_timeout_s:g} s)")
        return StoreError(f"cannot write to {self.path}: {exc}")

    def transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE) for a read-then-write that must see no other
        writer in between; the store's own writes inside it join it."""
        return self._write()

    def _rollback(self) -> None:
        if self._conn.in_transaction:  # an error may already have ended it
            self._conn.execute("ROLLBACK")

    def _rows(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[sqlite3.Row]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read {self.path}: {exc}") from None

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    # -- the exclusive lock ---------------------------------------------------------------------------
    def lock_path(self, name: str = "tick") -> Path:
        """The file `exclusive_lock(name)` locks: `<db>.<name>.lock` beside the database's real file,
        symlinks resolved, so every path to one database names one lock."""
        real = Path(os.path.realpath(self.path))
        return real.with_name(f"{real.name}.{name}.lock")

    @contextlib.contextmanager
    def exclusive_lock(self, name: str = "tick", *, wait: float = 0.0) -> Iterator[None]:
        """Hold an OS lock (fcntl.flock on `<db>.<name>.lock`) for the block; LockHeld if another
        holder has it (at once, or after waiting up to `wait` seconds for it). Not a database lock,
        so the holder's own writes never wait on it, and the OS drops it when a crashed process exits.

        The lock file sits beside the database's real file (`lock_path`): a symlink to the database,
        a relative or a `..` path all name the same lock, so two ticks on one database never run at once."""
        lock_path = self.lock_path(name)
        handle = _open_lock_file(lock_path)
        try:
            deadline = time.monotonic() + max(wait, 0.0)
            while True:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() < deadline:
                        time.sleep(0.05)  # waiting for another process, not market time
                        continue
                    handle.seek(0)
                    holder = handle.read().strip() or "another process"
                    waited = f" (waited {wait:g} s)" if wait > 0 else ""
                    raise LockHeld(f"another bidder ({holder}) holds the {name!r} lock on {self.path}{waited}; "
                                   f"it releases it when it finishes", holder=holder) from None
            _note_holder(handle, f"pid {os.getpid()}")
            try:
                yield
            finally:
                _note_holder(handle, "")
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        finally:
            with contextlib.suppress(OSError):  # (a note that could not be written fails again here)
                handle.close()


def _open_lock_file(path: Path) -> Any:
    """The lock file, opened to read and write, never through a symbolic link nor as anything but a
    regular file: its holder note truncates it, and a link planted in a shared folder would have had
    bidder empty the file it points at."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StoreError(f"lock file {path} is a symbolic link: bidder does not follow one there; remove "
                             "it (bidder makes its own)") from None
        raise StoreError(f"cannot create lock file {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise StoreError(f"lock file {path} is not a regular file: remove it (bidder makes its own)")
    return os.fdopen(fd, "r+")


def _note_holder(handle: Any, text: str) -> None:
    """Write who holds a lock into its file: a courtesy for the next waiter's message. The flock is the
    lock; a disk too full to take the note must not stop a command (it was a traceback)."""
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(text)
        handle.flush()
    except OSError:
        pass



def epoch_to_datetime(seconds: float) -> datetime:
    """Epoch seconds (as in FloorSeries.ts) back to an aware UTC datetime."""
    return datetime.fromtimestamp(seconds, tz=UTC)
