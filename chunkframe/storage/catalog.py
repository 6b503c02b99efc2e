"""The catalog: the durable record (SQLite) of complete datasets, their chunks, versions and contexts."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from ..core.errors import (
    BackendUnavailableError,
    Call,
    CatalogCorruptionError,
    ChunkFrameError,
    Hint,
    LockLostError,
)
from ..core.model import ChunkMeta, DatasetMeta, Tombstone
from ..core.permissions import OWNER_ONLY, Modes, create_file, make_dirs

__all__ = ["Catalog", "VERSION_KINDS"]

VERSION_KINDS = ("ingest", "overwrite", "append", "delete")
"""What made a version: a first ingest, an overwrite (a new generation), an append, a delete."""

_TABLES = """
CREATE TABLE IF NOT EXISTS datasets (
    id TEXT PRIMARY KEY,
    generation INTEGER NOT NULL,
    state TEXT NOT NULL,
    rows INTEGER NOT NULL,
    chunks INTEGER NOT NULL,
    nbytes INTEGER NOT NULL,
    schema TEXT NOT NULL,
    chunk_rows INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    time_column TEXT,
    device_column TEXT,
    version INTEGER NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    tombstones TEXT NOT NULL DEFAULT '[]',
    compression TEXT
);
CREATE TABLE IF NOT EXISTS chunks (
    dataset TEXT NOT NULL,
    generation INTEGER NOT NULL,
    chunk INTEGER NOT NULL,
    start INTEGER NOT NULL,
    rows INTEGER NOT NULL,
    key TEXT NOT NULL,
    checksum TEXT NOT NULL,
    nbytes INTEGER NOT NULL,
    stats TEXT NOT NULL,
    PRIMARY KEY (dataset, generation, chunk)
);
CREATE TABLE IF NOT EXISTS generations (
    dataset TEXT PRIMARY KEY,
    last INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS fences (
    dataset TEXT PRIMARY KEY,
    fence INTEGER NOT NULL
);
"""

_VERSIONS = """
CREATE TABLE IF NOT EXISTS versions (
    dataset TEXT NOT NULL,
    version INTEGER NOT NULL,
    kind TEXT NOT NULL,
    rows INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    tombstones TEXT NOT NULL,
    committed_at INTEGER NOT NULL, -- ns since the epoch, whole microseconds
    meta TEXT NOT NULL,
    PRIMARY KEY (dataset, version)
);
"""

_RANGES = """
ALTER TABLE chunks ADD COLUMN ranges TEXT NOT NULL DEFAULT '{}'
"""

_CONTEXTS = """
CREATE TABLE IF NOT EXISTS contexts (
    id TEXT PRIMARY KEY,
    changes INTEGER NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS context_entries (
    context TEXT NOT NULL,
    type TEXT NOT NULL,
    key TEXT NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (context, type, key)
)
"""
"""The durable copy of every context's entries (Redis holds the hot copy): a context that
has a ``contexts`` row is recorded (its entries here are the truth, even none); ``record``
is the JSON record Redis holds, keywords included."""

_SOURCES = """
CREATE TABLE IF NOT EXISTS sources (
    dataset TEXT NOT NULL,
    version INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    record TEXT NOT NULL, -- ingestion.provenance.SourceRecord JSON
    PRIMARY KEY (dataset, version)
)
"""

_MIGRATIONS: tuple[str, ...] = (_TABLES, _VERSIONS, _RANGES, _CONTEXTS, _SOURCES)
"""Every schema change, in order; ``PRAGMA user_version`` counts those applied. A catalog
written before versions were recorded gets the versions table, with one row (kind
``"ingest"``) for each dataset's current version, the first time a client opens it; one
written before per-column statistics gets their column (chunks without them are never
skipped by a ``where``); one written before sources were recorded gets their table (its
versions have none: their chunks cannot be repaired from a source)."""

_COLUMNS = ("id", "generation", "rows", "chunks", "nbytes", "schema", "chunk_rows", "fingerprint",
            "time_column", "device_column", "version", "created", "updated", "tombstones",
            "compression")


_DAMAGE = ("malformed", "not a database", "no such table", "no such column", "encrypted",
           "decode")
"""Words of SQLite errors that mean the file is damaged (or was replaced or emptied)."""


def _is_io(exc: BaseException) -> bool:
    """Whether a SQLite error is the disk failing a write (full, or an I/O error)."""
    text = str(exc)
    return isinstance(exc, sqlite3.OperationalError) and ("disk I/O" in text or "full" in text)


def _has_column_added_by(db: sqlite3.Connection, statement: str) -> bool:
    """Whether ``statement`` is an ``ALTER TABLE t ADD COLUMN c`` whose column exists (a
    catalog that got it otherwise): applying it again would fail."""
    m = re.match(r"\s*ALTER TABLE (\w+) ADD COLUMN (\w+)", statement, re.IGNORECASE)
    return m is not None and m.group(2) in {
        row[1] for row in db.execute(f"PRAGMA table_info({m.group(1)})")}


class Catalog:
    """SQLite catalog; a dataset is visible only once its chunk table is committed with it."""

    def __init__(self, path: str | Path, modes: Modes = OWNER_ONLY):
        """Open (creating it, and its directory, with ``modes``: owner-only by default) and
        migrate the catalog at ``path``. SQLite gives its -wal and -shm files the mode of the
        database file; an existing file keeps its mode."""
        self.path = Path(path)
        try:
            make_dirs(self.path.parent, modes.dirs)
            create_file(self.path, modes.files)
        except OSError as exc:
            raise BackendUnavailableError(
                f"cannot open the catalog {str(self.path)!r}: {exc}; check the path and its "
                "permissions, or set CHUNKFRAME_CATALOG"
            ) from exc
        try:
            self._create()
        except CatalogCorruptionError:
            pass  # every operation says so, and `chunkframe recover --apply` restores it

    def _create(self) -> None:
        """Create the file and its tables if missing, switch to WAL and migrate, writing
        only what is needed: a read-only client of an up-to-date catalog writes nothing."""
        if not self._is_wal():
            with self._connect("rwc") as db:
                db.execute("PRAGMA journal_mode=WAL")
        with self._connect("read") as db:
            current = db.execute("PRAGMA user_version").fetchone()[0]
        if current < len(_MIGRATIONS):
            self._migrate()

    def _is_wal(self) -> bool:
        """Whether the file is in WAL mode already (its header says so: asking SQLite would
        need the WAL index, which a full disk cannot hold)."""
        try:
            with open(self.path, "rb") as f:
                header = f.read(20)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise self._unusable(exc) from exc
        return len(header) == 20 and header[18] == 2

    @contextmanager
    def _connect(self, mode: str = "rw") -> Iterator[sqlite3.Connection]:
        """A connection; ``mode`` "rwc" creates a missing file, "rw" does not (a catalog
        deleted under a running client is reported, not silently re-created empty), "read"
        falls back to reading the file as it is when SQLite cannot open its WAL index (a
        full disk): read-only clients keep working. Every SQLite error becomes a
        :class:`CatalogCorruptionError` or :class:`BackendUnavailableError` naming the file."""
        try:
            db = self._open("rwc" if mode == "rwc" else "rw")
            if mode == "read":
                try:
                    db.execute("PRAGMA schema_version").fetchone()  # opens the WAL index
                except sqlite3.OperationalError as exc:
                    if not _is_io(exc):
                        raise
                    db.close()
                    db = self._open("ro&immutable=1")
        except sqlite3.Error as exc:
            raise self._unusable(exc) from exc
        try:
            db.execute("PRAGMA synchronous=FULL")
            yield db
        except (sqlite3.Error, pd.errors.DatabaseError) as exc:
            raise self._unusable(exc) from exc
        except (ValueError, TypeError, KeyError) as exc:
            if mode != "read":
                raise
            raise CatalogCorruptionError(str(self.path), f"a value in it is unreadable: {exc!r}"
                                         ) from exc
        finally:
            db.close()

    def _open(self, mode: str) -> sqlite3.Connection:
        uri = f"{self.path.resolve().as_uri()}?mode={mode}"
        return sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)

    def _unusable(self, exc: BaseException) -> ChunkFrameError:
        """The error to raise for a SQLite failure ``exc``: damage the recoverer repairs, or
        a catalog that cannot be reached now."""
        if isinstance(exc, pd.errors.DatabaseError) and exc.__cause__ is not None:
            exc = exc.__cause__  # pandas wraps the sqlite3 error
        text = str(exc)
        where = str(self.path)
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

    def _migrate(self) -> None:
        """Apply the schema changes this catalog has not seen, each in one transaction."""
        with self._transaction() as db:
            done = db.execute("PRAGMA user_version").fetchone()[0]
            for step in range(done, len(_MIGRATIONS)):
                for statement in _MIGRATIONS[step].split(";"):
                    if statement.strip() and not _has_column_added_by(db, statement):
                        db.execute(statement)
                if _MIGRATIONS[step] is _VERSIONS:
                    for meta in self._all(db):
                        self._record_version(db, meta, "ingest", meta.updated)
            db.execute(f"PRAGMA user_version={len(_MIGRATIONS)}")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:  # SQLite may have rolled back itself (a full disk)
                    db.execute("ROLLBACK")
                raise

    def reserve_generation(self, dataset_id: str) -> int:
        """A generation number never used before for this dataset (survives deletes)."""
        with self._transaction() as db:
            row = db.execute("SELECT last FROM generations WHERE dataset=?", (dataset_id,)).fetchone()
            gen = (row[0] if row else 0) + 1
            db.execute("INSERT OR REPLACE INTO generations VALUES (?, ?)", (dataset_id, gen))
        return gen

    def claim(self, dataset_id: str, fence: int) -> None:
        """Record that the holder of fencing token ``fence`` now owns the dataset's writes.

        Called right after taking the Redis lock; from then on a writer whose lock expired
        (an older token) can no longer commit, however late it wakes up.
        """
        with self._transaction() as db:
            row = db.execute("SELECT fence FROM fences WHERE dataset=?", (dataset_id,)).fetchone()
            if row is not None and row[0] > fence:
                raise self._lost(dataset_id, fence, row[0])
            db.execute("INSERT OR REPLACE INTO fences VALUES (?, ?)", (dataset_id, fence))

    def fence(self, dataset_id: str) -> int:
        """The latest fencing token claimed for the dataset (0 if none was)."""
        with self._connect("read") as db:
            row = db.execute("SELECT fence FROM fences WHERE dataset=?", (dataset_id,)).fetchone()
        return int(row[0]) if row else 0

    @staticmethod
    def _check_fence(db: sqlite3.Connection, dataset_id: str, fence: int) -> None:
        row = db.execute("SELECT fence FROM fences WHERE dataset=?", (dataset_id,)).fetchone()
        if row is None or row[0] != fence:
            raise Catalog._lost(dataset_id, fence, row[0] if row else None)

    @staticmethod
    def _lost(dataset_id: str, fence: int, current: int | None) -> LockLostError:
        return LockLostError(
            f"the catalog refused a write to dataset {dataset_id!r}: this worker's lock "
            f"(fencing token {fence}) was superseded (token {current}), so another worker owns "
            "the dataset now; nothing was written",
            hint=Hint("check {} before running again", Call.of("datasets")),
        )

    def commit(self, meta: DatasetMeta, chunks: list[ChunkMeta], fence: int,
               kind: str = "ingest", source: str | None = None) -> None:
        """Write the dataset row, its whole chunk table and the version ``kind`` made, in one
        transaction: now complete. ``source``: what the version's ingest read (a
        ``SourceRecord`` as JSON), kept with the version.

        Chunks of earlier generations stay recorded (their versions can still be read) until
        :meth:`prune` removes them. Refused (:class:`LockLostError`) unless ``fence`` is the
        latest claimed token.
        """
        if kind not in VERSION_KINDS:
            raise ValueError(f"kind={kind!r} is not one of {VERSION_KINDS}")
        with self._transaction() as db:
            self._check_fence(db, meta.id, fence)
            db.executemany(
                "INSERT OR REPLACE INTO chunks (dataset,generation,chunk,start,rows,key,checksum,"
                "nbytes,stats,ranges) VALUES (?,?,?,?,?,?,?,?,?,?)",
                [(meta.id, meta.generation, c.chunk, c.start, c.rows, c.key, c.checksum, c.nbytes,
                  json.dumps(c.stats), json.dumps(c.ranges)) for c in chunks],
            )
            db.execute(
                "INSERT OR REPLACE INTO datasets VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (meta.id, meta.generation, "complete", meta.rows, meta.chunks, meta.nbytes,
                 meta.schema, meta.chunk_rows, meta.fingerprint, meta.time_column,
                 meta.device_column, meta.version, meta.created, meta.updated,
                 json.dumps([t.to_dict() for t in meta.tombstones]), meta.compression),
            )
            self._record_version(db, meta, kind, meta.updated)
            if source is not None:
                db.execute("INSERT OR REPLACE INTO sources VALUES (?,?,?,?)",
                           (meta.id, meta.version, meta.generation, source))

    def sources(self, dataset_id: str, generation: int) -> list[str]:
        """The recorded sources (``SourceRecord`` JSON) of the versions that wrote chunks
        of ``generation``, newest first."""
        with self._connect("read") as db:
            return [r[0] for r in db.execute(
                "SELECT record FROM sources WHERE dataset=? AND generation=? "
                "ORDER BY version DESC", (dataset_id, generation))]

    def replace_chunk(self, dataset_id: str, generation: int, chunk: ChunkMeta,
                      fence: int) -> None:
        """Point chunk ``chunk.chunk`` of ``generation`` at a rewritten file (its key,
        checksum and size), fenced like :meth:`commit`; every version reading it follows."""
        with self._transaction() as db:
            self._check_fence(db, dataset_id, fence)
            done = db.execute(
                "UPDATE chunks SET key=?, checksum=?, nbytes=? WHERE dataset=? AND "
                "generation=? AND chunk=?", (chunk.key, chunk.checksum, chunk.nbytes, dataset_id,
                                             generation, chunk.chunk)).rowcount
            if done != 1:
                raise ValueError(f"chunk {chunk.chunk} of generation {generation} of dataset "
                                 f"{dataset_id!r} is not in the catalog")

    @staticmethod
    def _record_version(db: sqlite3.Connection, meta: DatasetMeta, kind: str, at: float) -> None:
        db.execute(
            "INSERT OR REPLACE INTO versions VALUES (?,?,?,?,?,?,?,?)",
            (meta.id, meta.version, kind, meta.rows, meta.generation,
             json.dumps([t.to_dict() for t in meta.tombstones]), round(at * 1e6) * 1000,
             json.dumps(meta.to_mapping())),
        )

    def set_tombstones(self, dataset_id: str, tombstones: tuple[Tombstone, ...], version: int,
                       fence: int, updated: float | None = None) -> None:
        """Record the dataset's deletes, a version of kind ``"delete"`` (fenced like
        :meth:`commit`), made at ``updated`` (epoch seconds; None: now) — the time Redis's
        metadata records too, so the recoverer finds them equal."""
        now = time.time() if updated is None else updated
        with self._transaction() as db:
            self._check_fence(db, dataset_id, fence)
            db.execute(
                "UPDATE datasets SET tombstones=?, version=?, updated=? WHERE id=?",
                (json.dumps([t.to_dict() for t in tombstones]), version, now, dataset_id),
            )
            meta = self._get(db, dataset_id)
            if meta is not None:
                self._record_version(db, meta, "delete", now)

    def get(self, dataset_id: str) -> DatasetMeta | None:
        with self._connect("read") as db:
            return self._get(db, dataset_id)

    @staticmethod
    def _get(db: sqlite3.Connection, dataset_id: str) -> DatasetMeta | None:
        row = db.execute(
            f"SELECT {','.join(_COLUMNS)} FROM datasets WHERE id=? AND state='complete'",
            (dataset_id,),
        ).fetchone()
        return None if row is None else Catalog._meta_of(row)

    @staticmethod
    def _all(db: sqlite3.Connection) -> list[DatasetMeta]:
        rows = db.execute(f"SELECT {','.join(_COLUMNS)} FROM datasets WHERE state='complete'")
        return [Catalog._meta_of(row) for row in rows.fetchall()]

    @staticmethod
    def _meta_of(row: tuple[Any, ...]) -> DatasetMeta:
        d = dict(zip(_COLUMNS, row, strict=True))
        d["tombstones"] = tuple(Tombstone.from_dict(t) for t in json.loads(d["tombstones"]))
        return DatasetMeta(**d)

    # -- versions -------------------------------------------------------------------------
    def versions(self, dataset_id: str) -> pd.DataFrame:
        """The recorded versions of a dataset, oldest first: version, kind, rows, generation,
        committed_at (UTC)."""
        with self._connect("read") as db:
            df = pd.read_sql_query(
                "SELECT version, kind, rows, generation, committed_at FROM versions "
                "WHERE dataset=? ORDER BY version", db, params=(dataset_id,))
        df["committed_at"] = pd.to_datetime(df["committed_at"], unit="ns", utc=True)
        return df

    def version(self, dataset_id: str, version: int | None = None, as_of: int | None = None
                ) -> DatasetMeta | None:
        """The metadata of ``version``, or of the last version committed at or before
        ``as_of`` (ns since the epoch); None if no such version is recorded."""
        with self._connect("read") as db:
            if version is not None:
                row = db.execute("SELECT meta FROM versions WHERE dataset=? AND version=?",
                                 (dataset_id, version)).fetchone()
            else:
                row = db.execute(
                    "SELECT meta FROM versions WHERE dataset=? AND committed_at<=? "
                    "ORDER BY version DESC LIMIT 1", (dataset_id, as_of)).fetchone()
            return None if row is None else DatasetMeta.from_mapping(json.loads(row[0]))

    def generations(self, dataset_id: str) -> set[int]:
        """The generations whose chunks the catalog still records (current and kept ones)."""
        with self._connect("read") as db:
            return {r[0] for r in db.execute(
                "SELECT DISTINCT generation FROM chunks WHERE dataset=?", (dataset_id,))}

    def prune(self, dataset_id: str, versions: list[int], fence: int) -> list[int]:
        """Forget ``versions`` and the chunk tables of generations no remaining version
        reads; returns those generations (their files are the caller's to delete).
        Fenced like :meth:`commit`; the current version is never pruned."""
        with self._transaction() as db:
            self._check_fence(db, dataset_id, fence)
            current = self._get(db, dataset_id)
            drop = [v for v in versions if current is None or v != current.version]
            db.executemany("DELETE FROM versions WHERE dataset=? AND version=?",
                           [(dataset_id, v) for v in drop])
            kept = {r[0] for r in db.execute(
                "SELECT DISTINCT generation FROM versions WHERE dataset=?", (dataset_id,))}
            if current is not None:
                kept.add(current.generation)
            gone = sorted({r[0] for r in db.execute(
                "SELECT DISTINCT generation FROM chunks WHERE dataset=?", (dataset_id,))} - kept)
            db.executemany("DELETE FROM chunks WHERE dataset=? AND generation=?",
                           [(dataset_id, g) for g in gone])
            db.executemany("DELETE FROM sources WHERE dataset=? AND generation=?",
                           [(dataset_id, g) for g in gone])  # kept with their chunks
        return gone

    def chunks(self, dataset_id: str, generation: int) -> list[ChunkMeta]:
        with self._connect("read") as db:
            rows = db.execute(
                "SELECT chunk,start,rows,key,checksum,nbytes,stats,ranges FROM chunks "
                "WHERE dataset=? AND generation=? ORDER BY chunk",
                (dataset_id, generation),
            ).fetchall()
            return [ChunkMeta(c, s, r, k, cs, n, json.loads(st), json.loads(rg))
                    for c, s, r, k, cs, n, st, rg in rows]

    def ids(self) -> list[str]:
        with self._connect("read") as db:
            return [r[0] for r in db.execute(
                "SELECT id FROM datasets WHERE state='complete' ORDER BY id")]

    def table(self) -> pd.DataFrame:
        """All complete datasets, one row each (what ``cf.datasets()`` shows)."""
        with self._connect("read") as db:
            df = pd.read_sql_query(
                "SELECT id, state, rows, chunks, nbytes AS bytes, generation, chunk_rows, "
                "time_column, device_column, created, updated FROM datasets ORDER BY id", db)
        for col in ("created", "updated"):
            df[col] = pd.to_datetime(df[col], unit="s", utc=True)
        return df

    # -- restoring a damaged or missing catalog (the recoverer) ---------------------------
    def damage(self) -> str | None:
        """What is wrong with the catalog (its file missing, not a database, failing SQLite's
        ``quick_check``, tables missing, a value unreadable), or None when it is sound.
        Reads everything it records; changes nothing."""
        if not self.path.exists():
            return "the file is missing"
        try:
            with self._connect("read") as db:
                found = [str(r[0]) for r in db.execute("PRAGMA quick_check").fetchall()]
            if found != ["ok"]:
                return f"SQLite's quick_check found: {'; '.join(found[:3])}"
            for dataset_id in self.ids():
                record = self.get(dataset_id)
                self.versions(dataset_id)
                for generation in self.generations(dataset_id):
                    self.chunks(dataset_id, generation)
                if record is not None:
                    self.fence(dataset_id)
            self.table()
        except CatalogCorruptionError as exc:
            return exc.damage
        return None

    def move_aside(self) -> Path | None:
        """Rename the damaged catalog file (and its WAL files) to
        ``<name>.damaged-<UTC time>`` -- kept for inspection, never deleted -- and create an
        empty catalog in its place. Returns the file's new name (None if it was missing)."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside, n = self.path.with_name(f"{self.path.name}.damaged-{stamp}"), 1
        while aside.exists():
            aside, n = self.path.with_name(f"{self.path.name}.damaged-{stamp}-{n}"), n + 1
        moved = None
        try:
            for suffix in ("", "-wal", "-shm"):
                side = self.path.with_name(self.path.name + suffix)
                if side.exists():
                    os.replace(side, aside.with_name(aside.name + suffix))
                    moved = moved or (aside if suffix == "" else None)
        except OSError as exc:
            raise BackendUnavailableError(
                f"cannot move the damaged catalog {str(self.path)!r} aside to {str(aside)!r}: "
                f"{exc}; free space or fix permissions there, then run `chunkframe recover "
                "--apply` again") from exc
        self._create()
        return moved

    def claimed(self) -> set[str]:
        """Every dataset a writer ever claimed (a fencing token is recorded): empty for a
        catalog created anew, even if the store holds chunks."""
        with self._connect("read") as db:
            return {r[0] for r in db.execute("SELECT dataset FROM fences")}

    def raise_generation(self, dataset_id: str, generation: int) -> None:
        """Make sure :meth:`reserve_generation` never hands out ``generation`` (or one
        before it) again: a restored catalog learns the generations the store holds."""
        with self._transaction() as db:
            row = db.execute("SELECT last FROM generations WHERE dataset=?", (dataset_id,)).fetchone()
            if row is None or row[0] < generation:
                db.execute("INSERT OR REPLACE INTO generations VALUES (?, ?)",
                           (dataset_id, generation))

    # -- contexts (the durable copy of the context cache's entries) -----------------------
    @contextmanager
    def context_change(self, context_id: str, *, put: Iterable[tuple[str, str, str]] = (),
                       remove: Iterable[tuple[str, str]] = (), clear: bool = False,
                       clear_type: str | None = None,
                       adopt: Callable[[], Iterable[tuple[str, str, str]]] | None = None,
                       ) -> Iterator[None]:
        """Record a change of one context's entries; it commits when the block ends and is
        rolled back if the block raises.

        The context cache writes Redis inside the block, so the catalog and Redis change
        together and concurrent writers reach both in the same order. ``put``: ``(type,
        key, record)`` to insert or replace; ``remove``: ``(type, key)``; ``clear``: drop
        every entry first (of ``clear_type`` only, if given). The context stays recorded
        (with no entries) after a clear, so its Redis copy is known to be empty. ``adopt``:
        called, first, when the context is not recorded yet; the ``(type, key, record)`` it
        returns (entries Redis held before contexts were recorded) are recorded before the
        change, so recording starts from the whole context.
        """
        block = False  # whether the error came from the block (Redis), not the catalog
        try:
            with self._transaction() as db:
                if adopt is not None and db.execute("SELECT 1 FROM contexts WHERE id=?",
                                                    (context_id,)).fetchone() is None:
                    db.executemany(
                        "INSERT INTO context_entries (context, type, key, record) "
                        "VALUES (?,?,?,?)", [(context_id, t, k, r) for t, k, r in adopt()])
                db.execute(
                    "INSERT INTO contexts (id, changes, updated) VALUES (?, 1, ?) "
                    "ON CONFLICT (id) DO UPDATE SET changes = contexts.changes + 1, "
                    "updated = excluded.updated", (context_id, time.time()))
                if clear and clear_type is None:
                    db.execute("DELETE FROM context_entries WHERE context=?", (context_id,))
                elif clear:
                    db.execute("DELETE FROM context_entries WHERE context=? AND type=?",
                               (context_id, clear_type))
                db.executemany("DELETE FROM context_entries WHERE context=? AND type=? AND key=?",
                               [(context_id, t, k) for t, k in remove])
                db.executemany(
                    "INSERT INTO context_entries (context, type, key, record) VALUES (?,?,?,?) "
                    "ON CONFLICT (context, type, key) DO UPDATE SET record = excluded.record",
                    [(context_id, t, k, r) for t, k, r in put])
                block = True
                yield
                block = False
        except (sqlite3.Error, BackendUnavailableError, CatalogCorruptionError) as exc:
            if block:
                raise
            raise BackendUnavailableError(
                f"could not record the change of context {context_id!r} in the catalog "
                f"{str(self.path)!r}: {exc}. Check the catalog's disk and permissions, then "
                "retry; cf.recover(apply=True) puts Redis back in step with the catalog"
            ) from exc

    def context_ids(self) -> list[str]:
        """The recorded contexts, sorted (those cleared to no entries too)."""
        with self._connect("read") as db:
            return [r[0] for r in db.execute("SELECT id FROM contexts ORDER BY id")]

    def context_entries(self, context_id: str) -> dict[tuple[str, str], str] | None:
        """The recorded entries of one context: ``(type, key)`` → JSON record; None if the
        context is not recorded at all."""
        with self._connect("read") as db:
            if db.execute("SELECT 1 FROM contexts WHERE id=?", (context_id,)).fetchone() is None:
                return None
            return {(t, k): r for t, k, r in db.execute(
                "SELECT type, key, record FROM context_entries WHERE context=?",
                (context_id,))}
