"""The catalog's databases: a SQLite file (the default) or a PostgreSQL server (a URL).

PostgreSQL is reached through psycopg 3 directly, not SQLAlchemy Core: the catalog is a
dozen statements written once in SQL that both databases run (``?`` parameters, upserts with
``ON CONFLICT``), so a driver is all it needs; SQLAlchemy would add an engine, a pool and an
expression language over the same driver without removing a line of the catalog's SQL.
"""

from __future__ import annotations

import functools
import os
import re
import sqlite3
import threading
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from typing import Any, Protocol

from ..core.config import is_postgres_url, redact
from ..core.errors import BackendUnavailableError

__all__ = ["Connection", "Database", "SQLiteDatabase", "PostgresDatabase", "open_database"]

_SCHEMA_LOCK = 0x6366_6361_7461  # any constant: the advisory lock that serialises migrations


class Cursor(Protocol):
    """What the catalog reads from a statement's result (sqlite3's and psycopg's cursors)."""

    @property
    def description(self) -> Any: ...

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

    def connect(self) -> AbstractContextManager[Connection]: ...

    def transaction(self) -> AbstractContextManager[Connection]: ...

    def schema_version(self, db: Connection) -> int: ...

    def set_schema_version(self, db: Connection, version: int) -> None: ...

    def has_column(self, db: Connection, table: str, column: str) -> bool: ...

    def unavailable(self, exc: BaseException) -> BackendUnavailableError: ...


class SQLiteDatabase:
    """A SQLite file in WAL mode; a connection per use; ``BEGIN IMMEDIATE`` serialises writers
    across processes, so rows need no locks of their own."""

    name = "sqlite"
    for_update = ""
    errors: tuple[type[Exception], ...] = (sqlite3.Error, OSError)

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path).expanduser()
        self.location = str(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.connect() as db:
                db.execute("PRAGMA journal_mode=WAL")
        except self.errors as exc:
            raise self.unavailable(exc) from exc

    def unavailable(self, exc: BaseException) -> BackendUnavailableError:
        return BackendUnavailableError(
            f"cannot open the catalog {self.location!r}: {exc}; check the path and its "
            "permissions, or set CHUNKFRAME_CATALOG")

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA synchronous=FULL")
            yield db
        finally:
            db.close()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self.connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def schema_version(self, db: Connection) -> int:
        return int(db.execute("PRAGMA user_version").fetchone()[0])

    def set_schema_version(self, db: Connection, version: int) -> None:
        db.execute(f"PRAGMA user_version={int(version)}")

    def has_column(self, db: Connection, table: str, column: str) -> bool:
        return column in {row[1] for row in db.execute(f"PRAGMA table_info({table})")}


def _hide_passwords(text: str) -> str:
    """``text`` with the passwords of any URLs in it replaced by ``***``."""
    text = re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", text)
    return re.sub(r"(?i)(password=)[^&\s\"]*", r"\1***", text)


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


def _disown_inherited() -> None:
    """In a forked child: point the inherited PostgreSQL sockets at /dev/null, so that
    closing the child's copies (when collected) cannot end the parent's sessions."""
    if not _OPEN:
        return
    null = os.open(os.devnull, os.O_RDWR)
    try:
        for conn in list(_OPEN):
            with suppress(Exception):
                os.dup2(null, conn.pgconn.socket)
    finally:
        os.close(null)
    _OPEN.clear()


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

    def __init__(self, url: str):
        try:
            import psycopg
        except ImportError as exc:
            raise BackendUnavailableError(
                f"the catalog {redact(url)!r} is a PostgreSQL database, which needs psycopg 3: "
                "pip install 'chunkframe[postgres]'") from exc
        self._psycopg = psycopg
        self.errors: tuple[type[Exception], ...] = (psycopg.Error,)
        self.url = url
        try:
            self.location = str(redact(url))
        except ValueError:  # not even a URL to urllib (an unclosed "[", say)
            self.location = _hide_passwords(url)
        try:
            self._password = psycopg.conninfo.conninfo_to_dict(url).get("password")
        except psycopg.Error as exc:
            raise BackendUnavailableError(
                f"the catalog {self.location!r} is not a URL PostgreSQL understands "
                f"({_hide_passwords(str(exc))}); write it as "
                "postgresql://user:password@host:port/database") from exc
        self._lock = threading.RLock()
        self._conn: Any = None
        self._pid = 0
        with self.connect():
            pass  # fail now, not at the first read, when the server cannot be reached

    def __repr__(self) -> str:
        return f"PostgresDatabase({self.location!r})"

    def unavailable(self, exc: BaseException) -> BackendUnavailableError:
        detail = _hide_passwords(" ".join(str(exc).split()).rstrip("."))
        if self._password:
            detail = detail.replace(str(self._password), "***")
        return BackendUnavailableError(
            f"cannot use the PostgreSQL catalog at {self.location!r}: {detail}. Start that "
            "server, check the URL's host, port, user, password and database (createdb makes "
            "a missing one, owned by that user so that it may create the catalog's tables), or "
            "set CHUNKFRAME_CATALOG to another catalog")

    def _connection(self) -> Any:
        """This process's connection, opened (again) when there is none or it broke."""
        conn = self._conn
        if conn is None or self._pid != os.getpid() or conn.closed or conn.broken:
            if conn is not None:
                conn.close()  # broken, or inherited (then _disown_inherited made that harmless)
            timeout: dict[str, Any] = (
                {} if "connect_timeout" in self.url else {"connect_timeout": 10})
            conn = self._psycopg.connect(self.url, autocommit=True, **timeout)
            _OPEN.add(conn)
            weakref.finalize(self, conn.close)
            self._conn, self._pid = conn, os.getpid()
        return conn

    @contextmanager
    def _using(self, transaction: bool) -> Iterator[Connection]:
        with self._lock:
            try:
                conn = self._connection()
                if transaction:
                    with conn.transaction():
                        yield _PostgresConnection(conn)
                else:
                    yield _PostgresConnection(conn)
            except self._psycopg.OperationalError as exc:
                if self._conn is None or self._conn.broken or self._conn.closed:
                    raise self.unavailable(exc) from exc
                raise

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with self._using(transaction=False) as db:
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


def open_database(location: str | os.PathLike[str]) -> SQLiteDatabase | PostgresDatabase:
    """The catalog database ``location`` names: a ``postgresql://`` URL or a SQLite file."""
    if is_postgres_url(location):
        return PostgresDatabase(str(location))
    return SQLiteDatabase(location)
