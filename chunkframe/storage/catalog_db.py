"""The catalog's databases: a SQLite file (the default) or a PostgreSQL server (a URL).

PostgreSQL is reached through psycopg 3 directly, not SQLAlchemy Core: the catalog is a
dozen statements written once in SQL that both databases run (``?`` parameters, upserts with
``ON CONFLICT``), so a driver is all it needs; SQLAlchemy would add an engine, a pool and an
expression language over the same driver without removing a line of the catalog's SQL.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any, Protocol

from ..core.config import is_postgres_url, redact
from ..core.errors import (
    BackendUnavailableError,
    CatalogCorruptionError,
    CatalogDamageError,
    ChunkFrameError,
)
from ..core.permissions import OWNER_ONLY, Modes, create_file, make_dirs
from ..core.retry import retry_until

__all__ = ["CatalogDamageError", "Connection", "Database", "SQLiteDatabase", "PostgresDatabase",
           "open_database"]

_SCHEMA_LOCK = 0x6366_6361_7461  # any constant: the advisory lock that serialises migrations


class Cursor(Protocol):
    """What the catalog reads from a statement's result (sqlite3's and psycopg's cursors)."""

    @property
    def description(self) -> Any: ...

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """A connection as the catalog uses it: ``?`` parameters in either database."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, seq_of_parameters: Iterable[Sequence[Any]], /) -> Any: ...


class Database(Protocol):
    """One catalog database: connections, transactions and the few things SQL cannot say
    the same way in both (the schema's version, a column's existence, row locks)."""

    name: str
    """The dialect: ``"sqlite"`` or ``"postgresql"`` (a key of a per-dialect migration)."""
    location: str
    """The file or URL, passwords redacted: what messages show."""
    for_update: str
    """Appended to a ``SELECT`` that must lock the rows it reads until the transaction ends."""
    errors: tuple[type[Exception], ...]
    """The driver's errors: raised opening the catalog, they mean it cannot be used."""
    stale_reads: int
    """How many reads bypassed the latest commits (SQLite read without its WAL on a full
    disk); the recoverer applies no repair based on such a read."""

    def prepare(self) -> None: ...

    def is_current(self, versions: int) -> bool: ...

    def connect(self, mode: str = ...) -> AbstractContextManager[Connection]: ...

    def transaction(self) -> AbstractContextManager[Connection]: ...

    def schema_version(self, db: Connection) -> int: ...

    def set_schema_version(self, db: Connection, version: int) -> None: ...

    def has_column(self, db: Connection, table: str, column: str) -> bool: ...

    def unavailable(self, exc: BaseException) -> BackendUnavailableError: ...


_DAMAGE = ("malformed", "not a database", "no such table", "no such column", "encrypted",
           "decode")
"""Words of SQLite errors that mean the file is damaged (or was replaced or emptied)."""


def _is_io(exc: BaseException) -> bool:
    """Whether a SQLite error is the disk failing a write (full, or an I/O error)."""
    text = str(exc)
    return isinstance(exc, sqlite3.OperationalError) and ("disk I/O" in text or "full" in text)


@contextmanager
def _values_checked(mode: str, damaged: Callable[[str], Exception]) -> Iterator[None]:
    """In "read" mode, a value the catalog cannot decode (bad JSON, a wrong type) raises
    ``damaged(what)``: the database is damaged, not the caller wrong."""
    try:
        yield
    except (ValueError, TypeError, KeyError) as exc:
        if mode != "read":
            raise
        raise damaged(f"a value in it is unreadable: {exc!r}") from exc


class SQLiteDatabase:
    """A SQLite file in WAL mode; a connection per use; ``BEGIN IMMEDIATE`` serialises writers
    across processes, so rows need no locks of their own.

    Every SQLite error becomes a :class:`CatalogCorruptionError` (damage the recoverer
    repairs: it moves the file aside and rebuilds it) or a :class:`BackendUnavailableError`
    (a catalog that cannot be used now), naming the file.
    """

    name = "sqlite"
    for_update = ""
    stale_reads = 0
    errors: tuple[type[Exception], ...] = (sqlite3.Error, OSError)

    def __init__(self, path: str | os.PathLike[str], modes: Modes = OWNER_ONLY):
        """Create the file (and its directory) with ``modes`` if missing: owner-only by
        default. SQLite gives its -wal and -shm files the mode of the database file; an
        existing file keeps its mode."""
        self.path = Path(path).expanduser()
        self.location = str(self.path)
        try:
            make_dirs(self.path.parent, modes.dirs)
            create_file(self.path, modes.files)
        except OSError as exc:
            raise self.unavailable(exc) from exc

    def unavailable(self, exc: BaseException) -> BackendUnavailableError:
        return BackendUnavailableError(
            f"cannot open the catalog {self.location!r}: {exc}; check the path and its "
            "permissions, or set CHUNKFRAME_CATALOG")

    def prepare(self) -> None:
        """Switch the file to WAL mode unless it is already (writing nothing then)."""
        if not self._is_wal():
            with self.connect("rwc") as db:
                db.execute("PRAGMA journal_mode=WAL")

    def is_current(self, versions: int) -> bool:
        """Whether the schema has all ``versions`` changes (read only: a read-only client of
        an up-to-date catalog writes nothing)."""
        with self.connect("read") as db:
            return self.schema_version(db) >= versions

    def _is_wal(self) -> bool:
        """Whether the file is in WAL mode already (its header says so: asking SQLite would
        need the WAL index, which a full disk cannot hold)."""
        try:
            with open(self.path, "rb") as f:
                header = f.read(20)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise self.failure(exc) from exc
        return len(header) == 20 and header[18] == 2

    @contextmanager
    def connect(self, mode: str = "rw") -> Iterator[sqlite3.Connection]:
        """A connection; ``mode`` "rwc" creates a missing file, "rw" does not (a catalog
        deleted under a running client is reported, not silently re-created empty), "read"
        falls back to reading the file as it is when SQLite cannot open its WAL index (a
        full disk): read-only clients keep working, and a value it cannot decode is damage."""
        try:
            db = self._open("rwc" if mode == "rwc" else "rw")
            if mode == "read":
                try:
                    db.execute("PRAGMA schema_version").fetchone()  # opens the WAL index
                except sqlite3.OperationalError as exc:
                    if not _is_io(exc):
                        raise
                    db.close()
                    db = self._open("ro&immutable=1")  # without the WAL: maybe stale
                    self.stale_reads += 1
        except sqlite3.Error as exc:
            raise self.failure(exc) from exc
        try:
            db.execute("PRAGMA synchronous=FULL")
            with _values_checked(mode, lambda what: CatalogCorruptionError(self.location, what)):
                yield db
        except sqlite3.Error as exc:
            raise self.failure(exc) from exc
        finally:
            db.close()

    def _open(self, mode: str) -> sqlite3.Connection:
        uri = f"{self.path.resolve().as_uri()}?mode={mode}"
        return sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)

    def failure(self, exc: BaseException) -> ChunkFrameError:
        """The error to raise for a SQLite failure ``exc``: damage the recoverer repairs, or
        a catalog that cannot be reached now."""
        text = str(exc)
        where = self.location
        if not self.path.exists():
            return CatalogCorruptionError(where, "the file is missing")
        if any(sign in text for sign in _DAMAGE):
            return CatalogCorruptionError(where, text)
        if _is_io(exc):
            return BackendUnavailableError(
                f"cannot write the catalog {where!r}: {text} (is the disk under it full?); "
                "free space there and run again (reading datasets still works)")
        return BackendUnavailableError(
            f"cannot use the catalog {where!r}: {text}; check the path and its permissions, "
            "or set CHUNKFRAME_CATALOG; if the file is damaged, run `chunkframe recover --apply`")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:  # SQLite may have rolled back itself (a full disk)
                    db.execute("ROLLBACK")
                raise

    def schema_version(self, db: Connection) -> int:
        return int(db.execute("PRAGMA user_version").fetchone()[0])

    def set_schema_version(self, db: Connection, version: int) -> None:
        db.execute(f"PRAGMA user_version={int(version)}")

    def has_column(self, db: Connection, table: str, column: str) -> bool:
        return column in {row[1] for row in db.execute(f"PRAGMA table_info({table})")}




@functools.lru_cache(maxsize=256)
def _pyformat(sql: str) -> str:
    """``sql`` with psycopg's ``%s`` parameters for the catalog's ``?`` (and ``%`` escaped)."""
    return sql.replace("%", "%%").replace("?", "%s")


class _PostgresConnection:
    """A psycopg connection that takes the catalog's ``?`` parameters."""

    def __init__(self, conn: Any):
        self.conn = conn

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> Cursor:
        return self.conn.execute(_pyformat(sql), parameters)  # type: ignore[no-any-return]

    def executemany(self, sql: str, seq_of_parameters: Iterable[Sequence[Any]]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(_pyformat(sql), seq_of_parameters)


_OPEN: weakref.WeakSet[Any] = weakref.WeakSet()  # this process's PostgreSQL connections
_DATABASES: weakref.WeakSet[PostgresDatabase] = weakref.WeakSet()  # and catalogs using them


def _disown_inherited() -> None:
    """In a forked child: point the inherited PostgreSQL sockets at /dev/null, so that
    closing the child's copies (when collected) cannot end the parent's sessions, and give
    each catalog a new lock and no connection (a thread of the parent may have held the
    lock at the fork: it never releases the child's copy)."""
    if _OPEN:
        null = os.open(os.devnull, os.O_RDWR)
        try:
            for conn in list(_OPEN):
                with suppress(Exception):
                    os.dup2(null, conn.pgconn.socket)
        finally:
            os.close(null)
        _OPEN.clear()
    for database in list(_DATABASES):
        database._lock = threading.RLock()
        database._current.conn = None


class _Current:
    """The connection a catalog uses now, and its process; one finalizer per catalog closes
    whichever it is when the catalog is collected (not every connection it ever opened)."""

    def __init__(self) -> None:
        self.conn: Any = None
        self.pid = 0

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


os.register_at_fork(after_in_child=_disown_inherited)


class PostgresDatabase:
    """A PostgreSQL database by URL: one connection per catalog and process, used by one
    thread at a time, reconnected when broken.

    Transactions run at READ COMMITTED; what must not interleave is serialised by row locks
    (``SELECT ... FOR UPDATE`` on the dataset's fence row, atomic upserts) and migrations by
    an advisory lock, so processes committing at once lose no update.
    """

    name = "postgresql"
    for_update = " FOR UPDATE"
    stale_reads = 0  # every read sees the latest commits

    def __init__(self, url: str, retry_seconds: float = 0.0):
        """``retry_seconds``: how long a transaction waits for a server that went away (a
        restart, a failover) to answer again before it fails."""
        self.retry_seconds = retry_seconds
        try:
            import psycopg
        except ImportError as exc:
            raise BackendUnavailableError(
                f"the catalog {redact(url)!r} is a PostgreSQL database, which needs psycopg 3: "
                "pip install 'chunkframe[postgres]'") from exc
        self._psycopg = psycopg
        self.errors: tuple[type[Exception], ...] = (psycopg.Error,)
        self.url = url
        self.location = redact(url)
        try:
            self._password = psycopg.conninfo.conninfo_to_dict(url).get("password")
        except psycopg.Error as exc:
            raise BackendUnavailableError(
                f"the catalog {self.location!r} is not a URL PostgreSQL understands "
                f"({redact(str(exc))}); write it as "
                "postgresql://user:password@host:port/database") from exc
        self._lock = threading.RLock()
        self._current = _Current()
        weakref.finalize(self, self._current.close)
        _DATABASES.add(self)
        with self.connect():
            pass  # fail now, not at the first read, when the server cannot be reached

    def __repr__(self) -> str:
        return f"PostgresDatabase({self.location!r})"

    def _detail(self, exc: BaseException) -> str:
        detail = redact(" ".join(str(exc).split()).rstrip("."))
        return detail.replace(str(self._password), "***") if self._password else detail

    def unavailable(self, exc: BaseException) -> BackendUnavailableError:
        detail = self._detail(exc)
        return BackendUnavailableError(
            f"cannot use the PostgreSQL catalog at {self.location!r}: {detail}. Start that "
            "server, check the URL's host, port, user, password and database (createdb makes "
            "a missing one, owned by that user so that it may create the catalog's tables), or "
            "set CHUNKFRAME_CATALOG to another catalog")

    def _connection(self) -> Any:
        """This process's connection, opened (again) when there is none or it broke."""
        current = self._current
        conn = current.conn
        if conn is None or current.pid != os.getpid() or conn.closed or conn.broken:
            if conn is not None:
                conn.close()  # broken, or inherited (then _disown_inherited made that harmless)
            timeout: dict[str, Any] = (
                {} if "connect_timeout" in self.url else {"connect_timeout": 10})
            conn = self._psycopg.connect(self.url, autocommit=True, **timeout)
            _OPEN.add(conn)
            current.conn, current.pid = conn, os.getpid()
        return conn

    @contextmanager
    def _using(self, transaction: bool, mode: str = "rw") -> Iterator[Connection]:
        """The connection, in a transaction if asked; held by this thread until the block
        ends (a transaction open in one thread is never shared with another). A table or
        column missing, or in "read" mode a value that cannot be decoded, is damage
        (:class:`CatalogDamageError`); any other error of the server means it cannot be
        used now."""
        errors = self._psycopg.errors
        with self._lock:
            try:
                conn, begun = (retry_until(self._begin, seconds=self.retry_seconds,
                                           transient=self._transient,
                                           what=f"the PostgreSQL catalog at {self.location}")
                               if transaction else (self._connection(), ExitStack()))
                with begun, _values_checked(
                        mode, lambda what: CatalogDamageError(self.location, what)):
                    yield _PostgresConnection(conn)
            except (errors.UndefinedTable, errors.UndefinedColumn) as exc:
                raise CatalogDamageError(self.location, self._detail(exc)) from exc
            except self._psycopg.Error as exc:
                raise self.unavailable(exc) from exc

    def _begin(self) -> tuple[Any, ExitStack]:
        """The connection and a transaction begun on it (a broken connection is replaced on
        the next try)."""
        conn = self._connection()
        begun = ExitStack()
        begun.enter_context(conn.transaction())
        return conn, begun

    def _transient(self, exc: BaseException) -> bool:
        """Whether ``exc`` is the server being away (refused, dropped, shutting down,
        starting up), not a refusal (a password, a database closed to connections)."""
        state = getattr(exc, "sqlstate", None)
        return isinstance(exc, self._psycopg.OperationalError) and (
            state is None or state.startswith(("08", "57P")))

    def prepare(self) -> None:
        """Nothing to do (the server's settings are its administrator's)."""

    def is_current(self, versions: int) -> bool:
        """False: whether to migrate is decided under the migration's advisory lock."""
        return False

    @contextmanager
    def connect(self, mode: str = "rw") -> Iterator[Connection]:
        with self._using(transaction=False, mode=mode) as db:
            yield db

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self._using(transaction=True) as db:
            yield db

    def schema_version(self, db: Connection) -> int:
        db.execute("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))
        if db.execute("SELECT to_regclass('schema_version')").fetchone()[0] is None:
            db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")  # (once: a user
            # who may only read and write rows opens a migrated catalog too)
        row = db.execute("SELECT version FROM schema_version").fetchone()
        return 0 if row is None else int(row[0])

    def set_schema_version(self, db: Connection, version: int) -> None:
        db.execute("DELETE FROM schema_version")
        db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))

    def has_column(self, db: Connection, table: str, column: str) -> bool:
        return db.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_schema=current_schema() "
            "AND table_name=? AND column_name=?", (table, column)).fetchone() is not None


def open_database(location: str | os.PathLike[str], modes: Modes = OWNER_ONLY,
                  retry_seconds: float = 0.0) -> SQLiteDatabase | PostgresDatabase:
    """The catalog database ``location`` names: a ``postgresql://`` URL (whose transactions
    wait ``retry_seconds`` for a server that went away) or a SQLite file (created with
    ``modes``)."""
    if is_postgres_url(location):
        return PostgresDatabase(str(location), retry_seconds)
    return SQLiteDatabase(location, modes)
