"""The catalog: the durable record of datasets, chunks, versions and contexts (SQLite or PostgreSQL)."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..core.errors import (
    BackendUnavailableError,
    Call,
    CatalogCorruptionError,
    CatalogDamageError,
    DatasetNotFoundError,
    DatasetReferencedError,
    DropPendingError,
    Hint,
    LockLostError,
    SnapshotExistsError,
    SnapshotNotFoundError,
    StateCorruptionError,
)
from ..core.model import ChunkMeta, DatasetMeta, ManifestRef, Tombstone
from ..core.permissions import OWNER_ONLY, Modes
from ..core.times import utc_from_epoch
from .catalog_db import Connection, SQLiteDatabase, open_database

__all__ = ["Catalog", "Migration", "VERSION_KINDS"]

VERSION_KINDS = ("ingest", "overwrite", "append", "delete", "compact", "update")
"""What made a version: a first ingest, an overwrite (a new generation), an append, a delete,
a compaction (a new generation with the same rows), an upsert (a new generation sharing the
chunks it did not change)."""

# The schema is written once for both databases: BIGINT and DOUBLE PRECISION are 64-bit in
# PostgreSQL and have SQLite's INTEGER and REAL affinities (a catalog made with those names
# before reads the same).
_TABLES = """
CREATE TABLE IF NOT EXISTS datasets (
    id TEXT PRIMARY KEY,
    generation BIGINT NOT NULL,
    state TEXT NOT NULL,
    rows BIGINT NOT NULL,
    chunks BIGINT NOT NULL,
    nbytes BIGINT NOT NULL,
    schema TEXT NOT NULL,
    chunk_rows BIGINT NOT NULL,
    fingerprint TEXT NOT NULL,
    time_column TEXT,
    device_column TEXT,
    version BIGINT NOT NULL,
    created DOUBLE PRECISION NOT NULL,
    updated DOUBLE PRECISION NOT NULL,
    tombstones TEXT NOT NULL DEFAULT '[]',
    compression TEXT
);
CREATE TABLE IF NOT EXISTS chunks (
    dataset TEXT NOT NULL,
    generation BIGINT NOT NULL,
    chunk BIGINT NOT NULL,
    start BIGINT NOT NULL,
    rows BIGINT NOT NULL,
    key TEXT NOT NULL,
    checksum TEXT NOT NULL,
    nbytes BIGINT NOT NULL,
    stats TEXT NOT NULL,
    PRIMARY KEY (dataset, generation, chunk)
);
CREATE TABLE IF NOT EXISTS generations (
    dataset TEXT PRIMARY KEY,
    last BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS fences (
    dataset TEXT PRIMARY KEY,
    fence BIGINT NOT NULL
);
"""

_VERSIONS = """
CREATE TABLE IF NOT EXISTS versions (
    dataset TEXT NOT NULL,
    version BIGINT NOT NULL,
    kind TEXT NOT NULL,
    rows BIGINT NOT NULL,
    generation BIGINT NOT NULL,
    tombstones TEXT NOT NULL,
    committed_at BIGINT NOT NULL, -- ns since the epoch, whole microseconds
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
    changes BIGINT NOT NULL,
    updated DOUBLE PRECISION NOT NULL
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
    version BIGINT NOT NULL,
    generation BIGINT NOT NULL,
    record TEXT NOT NULL, -- ingestion.provenance.SourceRecord JSON
    PRIMARY KEY (dataset, version)
)
"""


_MANIFESTS = """
CREATE TABLE IF NOT EXISTS manifests (
    dataset TEXT NOT NULL,
    generation BIGINT NOT NULL,
    chunks BIGINT NOT NULL,
    key TEXT NOT NULL,
    checksum TEXT NOT NULL,
    nbytes BIGINT NOT NULL,
    blocks TEXT NOT NULL,
    PRIMARY KEY (dataset, generation)
)
"""
"""The latest checkpoint of each generation's chunk table (``storage.manifest``): its first
``chunks`` entries in one store file. Every version of the generation reads its prefix and
the chunk rows after it; the chunk rows stay a full copy to fall back on."""


_LIFECYCLE = """
CREATE TABLE IF NOT EXISTS drops (
    dataset TEXT PRIMARY KEY,
    requested DOUBLE PRECISION NOT NULL,
    fence BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshots (
    name TEXT PRIMARY KEY,
    created BIGINT NOT NULL, -- ns since the epoch
    metadata TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshot_versions (
    snapshot TEXT NOT NULL,
    dataset TEXT NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (snapshot, dataset)
);
CREATE INDEX IF NOT EXISTS snapshot_versions_dataset ON snapshot_versions (dataset, version)
"""
"""Dataset lifecycle: a drop under way (``drops``: its intent, recorded before anything is
deleted, so the recoverer finishes a drop a crash interrupted), and named snapshots (the
version of each dataset they name; ``prune`` keeps those versions)."""


_INGESTS = """
CREATE TABLE IF NOT EXISTS ingests (
    dataset TEXT PRIMARY KEY,
    generation BIGINT NOT NULL,
    status TEXT NOT NULL -- the status Redis holds while it runs (JSON), its source included
)
"""
"""The latest ingest begun on each dataset, recorded when it begins: after Redis lost its
keys, an ingest that never committed is still known (and resumable from its source) rather
than only its files. A row is not removed at the commit: the dataset's record says whether
its generation committed."""


_CHUNK_STARTS = """
CREATE INDEX IF NOT EXISTS chunks_start ON chunks (dataset, start)
"""
"""Chunk rows by first serial number: how a write finds a chunk of a kept version that it
can share (:meth:`Catalog.chunks_from`) without reading the dataset's history."""


@dataclass(frozen=True)
class Migration:
    """One schema change of :data:`_MIGRATIONS`, when a plain SQL string is not enough.

    ``sql`` is statements separated by ``;``, or a mapping from a dialect (``"sqlite"``,
    ``"postgresql"``) to its own statements where no portable SQL exists; ``then`` runs
    after them in the same transaction (to fill what the change added).
    """

    sql: str | Mapping[str, str]
    then: Callable[[Connection], None] | None = None


def _record_current_versions(db: Connection) -> None:
    """A version row (kind ``"ingest"``) for each dataset's current version."""
    for meta in Catalog._all(db):
        Catalog._record_version(db, meta, "ingest", meta.updated)


_MIGRATIONS: tuple[str | Migration, ...] = (
    _TABLES, Migration(_VERSIONS, then=_record_current_versions), _RANGES, _CONTEXTS, _SOURCES,
    _MANIFESTS, _LIFECYCLE, _INGESTS, _CHUNK_STARTS)
"""Every schema change, in order, for both databases: add one by appending it (portable SQL
preferred). SQLite counts those applied in ``PRAGMA user_version``, PostgreSQL in its
``schema_version`` table. A catalog written before versions were recorded gets the versions
table, with one row (kind ``"ingest"``) for each dataset's current version, the first time a
client opens it; one written before per-column statistics gets their column (chunks without
them are never skipped by a ``where``); one written before sources were recorded gets their
table (its versions have none: their chunks cannot be repaired from a source); one written
before manifests gets their table, empty (its datasets read their chunk rows until their
next commit checkpoints them); one written before drops and snapshots gets their tables,
empty; one written before ingests were recorded gets their table,
empty; one written before chunks were shared gets the index that finds them."""

_COLUMNS = ("id", "generation", "rows", "chunks", "nbytes", "schema", "chunk_rows", "fingerprint",
            "time_column", "device_column", "version", "created", "updated", "tombstones",
            "compression")


def _upsert(table: str, columns: tuple[str, ...], key: tuple[str, ...]) -> str:
    """An ``INSERT`` of one row of ``columns`` that replaces the row with the same ``key``
    (``ON CONFLICT ... DO UPDATE``: SQLite and PostgreSQL both run it)."""
    updates = ",".join(f"{c}=excluded.{c}" for c in columns if c not in key)
    return (f"INSERT INTO {table} ({','.join(columns)}) VALUES ({','.join('?' * len(columns))}) "
            f"ON CONFLICT ({','.join(key)}) DO UPDATE SET {updates}")


_PUT_CHUNK = _upsert("chunks", ("dataset", "generation", "chunk", "start", "rows", "key",
                                "checksum", "nbytes", "stats", "ranges"),
                     ("dataset", "generation", "chunk"))
_ADD_CHUNK = (_PUT_CHUNK.split(" ON CONFLICT")[0]
              + " ON CONFLICT (dataset, generation, chunk) DO NOTHING")  # keeps a recorded one
_PUT_DATASET = _upsert("datasets", ("id", "generation", "state", *_COLUMNS[2:]), ("id",))
_PUT_SOURCE = _upsert("sources", ("dataset", "version", "generation", "record"),
                      ("dataset", "version"))
_PUT_INGEST = _upsert("ingests", ("dataset", "generation", "status"), ("dataset",))
_PUT_MANIFEST = _upsert("manifests", ("dataset", "generation", "chunks", "key", "checksum",
                                      "nbytes", "blocks"), ("dataset", "generation"))
_PUT_VERSION = _upsert("versions", ("dataset", "version", "kind", "rows", "generation",
                                    "tombstones", "committed_at", "meta"), ("dataset", "version"))


def _added_column(statement: str) -> tuple[str, str] | None:
    """(table, column) if ``statement`` is an ``ALTER TABLE t ADD COLUMN c``."""
    m = re.match(r"\s*ALTER TABLE (\w+) ADD COLUMN (\w+)", statement, re.IGNORECASE)
    return None if m is None else (m.group(1), m.group(2))


class Catalog:
    """The record: a dataset is visible only once its chunk table is committed with it.

    ``location`` is a SQLite file (the default) or a ``postgresql://user@host:port/db`` URL
    (a catalog that many machines share); both hold the same schema and follow the same
    rules, fencing included.

    >>> Catalog("postgresql://me:secret@db.example:5432/cf")  # doctest: +SKIP
    <Catalog 'postgresql://me:***@db.example:5432/cf'>
    """

    def __init__(self, location: str | os.PathLike[str], modes: Modes = OWNER_ONLY,
                 retry_seconds: float = 0.0):
        """Open (creating a SQLite file, and its directory, with ``modes``: owner-only by
        default) and migrate the catalog at ``location``. A damaged SQLite file still opens:
        every operation then raises :class:`CatalogCorruptionError`, and the recoverer
        restores it. A PostgreSQL server that goes away is waited for ``retry_seconds`` by
        each write."""
        self.db = open_database(location, modes, retry_seconds)
        try:
            self._create()
        except CatalogDamageError:
            raise  # a shared PostgreSQL database: restored from a backup, not by chunkframe
        except CatalogCorruptionError:
            pass  # every operation says so, and `chunkframe recover --apply` restores it
        except self.db.errors as exc:
            raise self.db.unavailable(exc) from exc

    def _create(self) -> None:
        """Create the tables if missing and migrate, writing only what is needed."""
        self.db.prepare()
        if not self.db.is_current(len(_MIGRATIONS)):
            self._migrate()

    def __repr__(self) -> str:
        return f"<Catalog {self.db.location!r}>"

    @property
    def stale_reads(self) -> int:
        """How many reads so far may have missed the latest commits: SQLite read without
        its WAL because its disk is full (always 0 on PostgreSQL)."""
        return self.db.stale_reads

    @property
    def location(self) -> str:
        """The catalog's file or URL (passwords redacted)."""
        return self.db.location

    def _connect(self, mode: str = "rw") -> AbstractContextManager[Connection]:
        """A connection; "read" mode: what the catalog reads (see the database's connect)."""
        return self.db.connect(mode)

    def _transaction(self) -> AbstractContextManager[Connection]:
        return self.db.transaction()

    def _migrate(self) -> None:
        """Apply the schema changes this catalog has not seen, in one transaction."""
        with self._transaction() as db:
            done = self.db.schema_version(db)
            for migration in _MIGRATIONS[done:]:
                step = migration if isinstance(migration, Migration) else Migration(migration)
                sql = step.sql if isinstance(step.sql, str) else step.sql[self.db.name]
                for statement in sql.split(";"):
                    added = _added_column(statement)
                    if statement.strip() and not (added and self.db.has_column(db, *added)):
                        db.execute(statement)  # (a column a catalog got otherwise is kept)
                if step.then is not None:
                    step.then(db)
            if done < len(_MIGRATIONS):
                self.db.set_schema_version(db, len(_MIGRATIONS))

    def reserve_generation(self, dataset_id: str) -> int:
        """A generation number never used before for this dataset (survives deletes)."""
        with self._transaction() as db:  # the upsert locks the row until the end
            db.execute(
                "INSERT INTO generations (dataset, last) VALUES (?, 1) ON CONFLICT (dataset) "
                "DO UPDATE SET last=generations.last+1", (dataset_id,))
            return int(db.execute("SELECT last FROM generations WHERE dataset=?",
                                  (dataset_id,)).fetchone()[0])

    def claim(self, dataset_id: str, fence: int, dropping: bool = False) -> None:
        """Record that the holder of fencing token ``fence`` now owns the dataset's writes.

        Called right after taking the Redis lock; from then on a writer whose lock expired
        (an older token) can no longer commit, however late it wakes up. While a drop of the
        dataset is unfinished only a dropper (``dropping``) may claim it: any other writer
        gets :class:`DropPendingError`, and nothing is claimed.
        """
        with self._transaction() as db:
            if not dropping and db.execute("SELECT 1 FROM drops WHERE dataset=?",
                                           (dataset_id,)).fetchone() is not None:
                raise DropPendingError(dataset_id)
            db.execute(
                "INSERT INTO fences (dataset, fence) VALUES (?, ?) ON CONFLICT (dataset) "
                "DO UPDATE SET fence=excluded.fence WHERE fences.fence<=excluded.fence",
                (dataset_id, fence))
            current = self._fence(db, dataset_id)  # ours unless a newer token was claimed
            if current != fence:
                raise self._lost(dataset_id, fence, current)

    def fence(self, dataset_id: str) -> int:
        """The latest fencing token claimed for the dataset (0 if none was)."""
        with self._connect("read") as db:
            return self._fence(db, dataset_id) or 0

    def _fence(self, db: Connection, dataset_id: str) -> int | None:
        """The dataset's fence; in a transaction, its row stays locked until the end."""
        row = db.execute(f"SELECT fence FROM fences WHERE dataset=?{self.db.for_update}",
                         (dataset_id,)).fetchone()
        return None if row is None else int(row[0])

    def _check_fence(self, db: Connection, dataset_id: str, fence: int) -> None:
        """Refuse the transaction's writes unless ``fence`` is the latest claimed token; the
        fence row stays locked until it ends, so no claim can come in between."""
        current = self._fence(db, dataset_id)
        if current != fence:
            raise Catalog._lost(dataset_id, fence, current)

    @staticmethod
    def _lost(dataset_id: str, fence: int, current: int | None) -> LockLostError:
        return LockLostError(
            f"the catalog refused a write to dataset {dataset_id!r}: this worker's lock "
            f"(fencing token {fence}) was superseded (token {current}), so another worker owns "
            "the dataset now; nothing was written",
            hint=Hint("check {} before running again", Call.of("datasets")),
        )

    def commit(self, meta: DatasetMeta, chunks: list[ChunkMeta], fence: int,
               kind: str = "ingest", source: str | None = None,
               manifest: ManifestRef | None = None) -> None:
        """Write the dataset row, the chunks this version adds and the version ``kind``
        made, in one transaction: now complete. ``source``: what the version's ingest read
        (a ``SourceRecord`` as JSON), kept with the version; ``manifest``: a new checkpoint
        of the generation's chunk table, replacing the one before.

        A commit writes only what it changed, whatever the dataset's history. Chunks of
        earlier generations stay recorded (their versions can still be read) until
        :meth:`prune` removes them. Refused (:class:`LockLostError`) unless ``fence`` is the
        latest claimed token.
        """
        if kind not in VERSION_KINDS:
            raise ValueError(f"kind={kind!r} is not one of {VERSION_KINDS}")
        with self._transaction() as db:
            self._check_fence(db, meta.id, fence)
            self._write_version(db, meta, chunks, kind, source)
            if manifest is not None:
                self._put_manifest(db, meta.id, meta.generation, manifest)

    @staticmethod
    def _put_manifest(db: Connection, dataset_id: str, generation: int, ref: ManifestRef) -> None:
        db.execute(_PUT_MANIFEST, (dataset_id, generation, ref.chunks, ref.key, ref.checksum,
                                   ref.nbytes, json.dumps(list(ref.blocks))))

    def put_manifest(self, dataset_id: str, generation: int, ref: ManifestRef,
                     fence: int) -> None:
        """Record ``ref`` as the generation's checkpoint (a repair's, or a migration's),
        fenced like :meth:`commit`."""
        with self._transaction() as db:
            self._check_fence(db, dataset_id, fence)
            self._put_manifest(db, dataset_id, generation, ref)

    def manifest(self, dataset_id: str, generation: int) -> ManifestRef | None:
        """The latest checkpoint of the generation's chunk table, None if it has none."""
        with self._connect("read") as db:
            return self._manifest(db, dataset_id, generation)

    @staticmethod
    def _manifest(db: Connection, dataset_id: str, generation: int) -> ManifestRef | None:
        row = db.execute("SELECT chunks, key, checksum, nbytes, blocks FROM manifests WHERE "
                         "dataset=? AND generation=?", (dataset_id, generation)).fetchone()
        return None if row is None else ManifestRef(int(row[0]), row[1], row[2], int(row[3]),
                                                    tuple(json.loads(row[4])))

    def get_with_manifest(self, dataset_id: str) -> tuple[DatasetMeta | None, ManifestRef | None]:
        """:meth:`get` and the :meth:`manifest` of its generation, read together (a writer's
        view at the start of its commit: one connection, not two)."""
        with self._connect("read") as db:
            meta = self._get(db, dataset_id)
            return meta, None if meta is None else self._manifest(db, dataset_id, meta.generation)

    def referenced(self, dataset_id: str, prefix: str) -> set[str]:
        """The chunk keys under ``prefix`` that a recorded chunk of any generation names (a
        compacted generation shares the files of the chunks it did not merge)."""
        with self._connect("read") as db:
            return {r[0] for r in db.execute(
                "SELECT key FROM chunks WHERE dataset=? AND substr(key, 1, ?)=?",
                (dataset_id, len(prefix), prefix))}

    def manifest_keys(self, dataset_id: str) -> set[str]:
        """The store keys of every recorded checkpoint of the dataset (any generation)."""
        with self._connect("read") as db:
            return {r[0] for r in db.execute("SELECT key FROM manifests WHERE dataset=?",
                                             (dataset_id,))}

    @staticmethod
    def _write_version(db: Connection, meta: DatasetMeta, chunks: list[ChunkMeta], kind: str,
                       source: str | None, put_chunk: str = _PUT_CHUNK) -> None:
        """The writes of :meth:`commit` (``chunks``: those it adds), in the caller's
        transaction."""
        db.executemany(
            put_chunk,
            [(meta.id, meta.generation, c.chunk, c.start, c.rows, c.key, c.checksum, c.nbytes,
              json.dumps(c.stats), json.dumps(c.ranges)) for c in chunks],
        )
        db.execute(
            _PUT_DATASET,
            (meta.id, meta.generation, "complete", meta.rows, meta.chunks, meta.nbytes,
             meta.schema, meta.chunk_rows, meta.fingerprint, meta.time_column,
             meta.device_column, meta.version, meta.created, meta.updated,
             json.dumps([t.to_dict() for t in meta.tombstones]), meta.compression),
        )
        Catalog._record_version(db, meta, kind, meta.updated)
        if source is not None:
            db.execute(_PUT_SOURCE, (meta.id, meta.version, meta.generation, source))

    def sources(self, dataset_id: str, generation: int) -> list[str]:
        """The recorded sources (``SourceRecord`` JSON) of the versions that wrote chunks
        of ``generation``, newest first."""
        with self._connect("read") as db:
            return [r[0] for r in db.execute(
                "SELECT record FROM sources WHERE dataset=? AND generation=? "
                "ORDER BY version DESC", (dataset_id, generation))]

    def replace_chunk(self, dataset_id: str, generation: int, chunk: ChunkMeta,
                      fence: int) -> ManifestRef | None:
        """Point chunk ``chunk.chunk`` of ``generation`` at a rewritten file (its key,
        checksum and size), fenced like :meth:`commit`; every version reading it follows.
        A checkpoint holding the old entry is forgotten: returned, for the caller to write
        anew and delete."""
        stale = self.manifest(dataset_id, generation)
        with self._transaction() as db:
            self._check_fence(db, dataset_id, fence)
            done = db.execute(
                "UPDATE chunks SET key=?, checksum=?, nbytes=? WHERE dataset=? AND "
                "generation=? AND chunk=?", (chunk.key, chunk.checksum, chunk.nbytes, dataset_id,
                                             generation, chunk.chunk)).rowcount
            if done != 1:
                raise StateCorruptionError(
                    dataset_id, f"chunk {chunk.chunk} of generation {generation} is in Redis's "
                    "chunk table but not in the catalog, so it was not replaced")
            if stale is None or stale.chunks <= chunk.chunk:
                return None
            db.execute("DELETE FROM manifests WHERE dataset=? AND generation=?",
                       (dataset_id, generation))
        return stale

    @staticmethod
    def _record_version(db: Connection, meta: DatasetMeta, kind: str, at: float) -> None:
        db.execute(
            _PUT_VERSION,
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
    def _get(db: Connection, dataset_id: str) -> DatasetMeta | None:
        row = db.execute(
            f"SELECT {','.join(_COLUMNS)} FROM datasets WHERE id=? AND state='complete'",
            (dataset_id,),
        ).fetchone()
        return None if row is None else Catalog._meta_of(row)

    @staticmethod
    def _all(db: Connection) -> list[DatasetMeta]:
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
        df = self._frame("SELECT version, kind, rows, generation, committed_at FROM versions "
                         "WHERE dataset=? ORDER BY version", (dataset_id,))
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
        Fenced like :meth:`commit`; the current version, and versions a named snapshot
        references, are never pruned."""
        with self._transaction() as db:
            self._check_fence(db, dataset_id, fence)
            current = self._get(db, dataset_id)
            named = self._snapshotted(db, dataset_id)
            drop = [v for v in versions
                    if (current is None or v != current.version) and v not in named]
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
            db.executemany("DELETE FROM manifests WHERE dataset=? AND generation=?",
                           [(dataset_id, g) for g in gone])
        return gone

    # -- named snapshots ------------------------------------------------------------------
    def snapshot_versions(self, dataset_id: str) -> dict[int, list[str]]:
        """The versions of the dataset that named snapshots reference, each with the names
        of those snapshots (sorted)."""
        with self._connect("read") as db:
            out: dict[int, list[str]] = {}
            for version, name in db.execute(
                    "SELECT version, snapshot FROM snapshot_versions WHERE dataset=? "
                    "ORDER BY version, snapshot", (dataset_id,)):
                out.setdefault(int(version), []).append(name)
            return out

    @staticmethod
    def _snapshotted(db: Connection, dataset_id: str) -> set[int]:
        return {int(r[0]) for r in db.execute(
            "SELECT DISTINCT version FROM snapshot_versions WHERE dataset=?", (dataset_id,))}

    def add_snapshot(self, name: str, datasets: list[str] | None, metadata: str,
                     created: int) -> dict[str, int]:
        """Record snapshot ``name`` of the current version of each of ``datasets`` (None:
        every complete dataset), with ``metadata`` (JSON text) and ``created`` (ns since the
        epoch), in one transaction; returns dataset id -> version recorded.

        The datasets' rows are read locked (PostgreSQL: ``FOR UPDATE``; SQLite: the write
        transaction), so a drop beginning at the same time either comes first (and the
        dataset is not recorded, or a named one is not found) or sees the snapshot (and
        refuses). Raises :class:`SnapshotExistsError` for a name taken, and
        :class:`DatasetNotFoundError` naming the datasets asked that are not complete.
        """
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM snapshots WHERE name=?", (name,)).fetchone():
                raise SnapshotExistsError(name)
            found = {r[0]: int(r[1]) for r in db.execute(
                "SELECT id, version FROM datasets WHERE state='complete' ORDER BY id"
                + self.db.for_update)}
            if datasets is not None:
                missing = [d for d in datasets if d not in found]
                if missing:
                    raise DatasetNotFoundError(
                        f"cannot record snapshot {name!r}: no complete dataset "
                        f"{', '.join(repr(d) for d in missing)}; nothing was recorded",
                        hint=Hint("list the datasets with {}", Call.of("datasets")))
                found = {d: found[d] for d in datasets}
            db.execute("INSERT INTO snapshots (name, created, metadata) VALUES (?, ?, ?)",
                       (name, created, metadata))
            db.executemany(
                "INSERT INTO snapshot_versions (snapshot, dataset, version) VALUES (?, ?, ?)",
                [(name, d, v) for d, v in found.items()])
        return found

    def snapshot_of(self, name: str) -> tuple[int, str, dict[str, int]] | None:
        """``(created, metadata JSON, dataset -> version)`` of snapshot ``name``, or None."""
        with self._connect("read") as db:
            row = db.execute("SELECT created, metadata FROM snapshots WHERE name=?",
                             (name,)).fetchone()
            if row is None:
                return None
            versions = {d: int(v) for d, v in db.execute(
                "SELECT dataset, version FROM snapshot_versions WHERE snapshot=? "
                "ORDER BY dataset", (name,))}
            return int(row[0]), row[1], versions

    def snapshot_names(self) -> list[str]:
        with self._connect("read") as db:
            return [r[0] for r in db.execute("SELECT name FROM snapshots ORDER BY name")]

    def snapshot_table(self) -> list[tuple[str, int, str, dict[str, int]]]:
        """Every snapshot, oldest first: ``(name, created, metadata JSON, dataset ->
        version)``."""
        with self._connect("read") as db:
            heads = db.execute(
                "SELECT name, created, metadata FROM snapshots ORDER BY created, name").fetchall()
            versions: dict[str, dict[str, int]] = {}
            for snap, dataset, version in db.execute(
                    "SELECT snapshot, dataset, version FROM snapshot_versions "
                    "ORDER BY snapshot, dataset"):
                versions.setdefault(snap, {})[dataset] = int(version)
        return [(n, int(c), m, versions.get(n, {})) for n, c, m in heads]

    def delete_snapshot(self, name: str) -> dict[str, int]:
        """Forget snapshot ``name`` (the versions it named become prunable); returns what it
        named. :class:`SnapshotNotFoundError` if there is none."""
        with self._transaction() as db:
            versions = {d: int(v) for d, v in db.execute(
                "SELECT dataset, version FROM snapshot_versions WHERE snapshot=?", (name,))}
            if db.execute("DELETE FROM snapshots WHERE name=?", (name,)).rowcount != 1:
                names = [r[0] for r in db.execute("SELECT name FROM snapshots ORDER BY name")]
                raise SnapshotNotFoundError(name, names)
            db.execute("DELETE FROM snapshot_versions WHERE snapshot=?", (name,))
        return versions

    # -- dropping a dataset ---------------------------------------------------------------
    def begin_drop(self, dataset_id: str, fence: int, force: bool = False
                   ) -> tuple[DatasetMeta | None, list[str]]:
        """Record the intent to drop the dataset, before anything of it is deleted: the
        dataset leaves the complete ones (readers of the catalog no longer find it) and
        :meth:`claim` refuses every writer but a dropper until :meth:`end_drop`. Fenced
        like :meth:`commit`.

        A dataset that named snapshots reference is refused
        (:class:`DatasetReferencedError`) unless ``force``: then the snapshots forget it,
        in the same transaction. Returns the dataset's metadata (None when a drop of it was
        begun already: this one finishes it) and the snapshots that forgot it;
        :class:`DatasetNotFoundError` when there is neither a dataset nor a drop under way.
        """
        with self._transaction() as db:
            self._check_fence(db, dataset_id, fence)
            current = self._get(db, dataset_id)
            pending = db.execute("SELECT 1 FROM drops WHERE dataset=?",
                                 (dataset_id,)).fetchone() is not None
            if current is None and not pending:
                raise DatasetNotFoundError(
                    f"cannot drop dataset {dataset_id!r}: it does not exist",
                    hint=Hint("list the datasets with {}", Call.of("datasets")))
            # first the dataset's row (on PostgreSQL it waits for a snapshot being recorded
            # to commit), then the snapshots, so that none recorded meanwhile is missed
            db.execute("UPDATE datasets SET state='dropping' WHERE id=?", (dataset_id,))
            names = sorted({r[0] for r in db.execute(
                "SELECT snapshot FROM snapshot_versions WHERE dataset=?", (dataset_id,))})
            if names and not force:
                raise DatasetReferencedError(dataset_id, names)
            db.execute("DELETE FROM snapshot_versions WHERE dataset=?", (dataset_id,))
            if not pending:
                db.execute("INSERT INTO drops (dataset, requested, fence) VALUES (?, ?, ?)",
                           (dataset_id, time.time(), fence))
        return current, names

    def drops(self) -> dict[str, float]:
        """The datasets whose drop was begun and not finished, with when it was begun (epoch
        seconds)."""
        with self._connect("read") as db:
            return {r[0]: float(r[1]) for r in db.execute(
                "SELECT dataset, requested FROM drops ORDER BY dataset")}

    def forget_context(self, context_id: str) -> None:
        """Delete the durable record of a context (its entries, and that it was recorded)."""
        with self._transaction() as db:
            db.execute("DELETE FROM context_entries WHERE context=?", (context_id,))
            db.execute("DELETE FROM contexts WHERE id=?", (context_id,))

    def end_drop(self, dataset_id: str, fence: int) -> int:
        """Delete what the catalog records of a dataset being dropped (its row, versions,
        chunk tables, sources, checkpoints and last ingest begun) and the intent, in one
        transaction; returns how many versions it had. The fence and generation counters
        stay, so that a dataset made again under the same id never reuses a token or a chunk
        key. Fenced like :meth:`commit`."""
        with self._transaction() as db:
            self._check_fence(db, dataset_id, fence)
            versions = int(db.execute("SELECT COUNT(*) FROM versions WHERE dataset=?",
                                      (dataset_id,)).fetchone()[0])
            for table in ("chunks", "versions", "sources", "manifests", "ingests", "drops"):
                db.execute(f"DELETE FROM {table} WHERE dataset=?", (dataset_id,))
            db.execute("DELETE FROM datasets WHERE id=?", (dataset_id,))
        return versions

    def recorded_sizes(self, dataset_id: str) -> dict[str, int]:
        """The size of every chunk and checkpoint file the dataset's records name, by key."""
        with self._connect("read") as db:
            return {r[0]: int(r[1]) for r in db.execute(
                "SELECT key, nbytes FROM chunks WHERE dataset=? UNION "
                "SELECT key, nbytes FROM manifests WHERE dataset=?", (dataset_id, dataset_id))}

    def keys_elsewhere(self, dataset_id: str, prefix: str) -> set[str]:
        """Keys under ``prefix`` that chunks of datasets other than ``dataset_id`` name
        (none, as chunkframe writes them: a drop checks anyway before deleting a file)."""
        with self._connect("read") as db:
            return {r[0] for r in db.execute(
                "SELECT key FROM chunks WHERE dataset<>? AND substr(key, 1, ?)=?",
                (dataset_id, len(prefix), prefix))}

    def chunks(self, dataset_id: str, generation: int, start: int = 0,
               stop: int | None = None) -> list[ChunkMeta]:
        """The recorded chunks ``start <= chunk < stop`` of a generation (all by default)."""
        with self._connect("read") as db:
            rows = db.execute(
                "SELECT chunk,start,rows,key,checksum,nbytes,stats,ranges FROM chunks "
                "WHERE dataset=? AND generation=? AND chunk>=? AND chunk<? ORDER BY chunk",
                (dataset_id, generation, start, 2**62 if stop is None else stop),
            ).fetchall()
            return [ChunkMeta(c, s, r, k, cs, n, json.loads(st), json.loads(rg))
                    for c, s, r, k, cs, n, st, rg in rows]

    def chunks_from(self, dataset_id: str, start: int) -> list[tuple[int, ChunkMeta]]:
        """Every recorded chunk of the dataset (any generation a kept version reads) whose
        first serial number is ``start`` or later, with its generation: the files a new
        chunk may share (see :mod:`chunkframe.storage.sharing`)."""
        with self._connect("read") as db:
            rows = db.execute(
                "SELECT generation,chunk,start,rows,key,checksum,nbytes,stats,ranges FROM "
                "chunks WHERE dataset=? AND start>=? ORDER BY start, generation, chunk",
                (dataset_id, start)).fetchall()
            return [(int(g), ChunkMeta(c, s, r, k, cs, n, json.loads(st), json.loads(rg)))
                    for g, c, s, r, k, cs, n, st, rg in rows]

    def ids(self) -> list[str]:
        with self._connect("read") as db:
            return [r[0] for r in db.execute(
                "SELECT id FROM datasets WHERE state='complete' ORDER BY id")]

    def table(self) -> pd.DataFrame:
        """All complete datasets, one row each (what ``cf.datasets()`` shows)."""
        df = self._frame("SELECT id, state, rows, chunks, nbytes AS bytes, generation, chunk_rows, "
                         "time_column, device_column, created, updated FROM datasets "
                         "WHERE state='complete' ORDER BY id")
        for col in ("created", "updated"):
            df[col] = utc_from_epoch(df[col])
        return df

    @staticmethod
    def table_of(metas: Iterable[DatasetMeta]) -> pd.DataFrame:
        """:meth:`table`'s frame for ``metas`` (what Redis holds while the catalog is down)."""
        rows = [(m.id, "complete", m.rows, m.chunks, m.nbytes, m.generation, m.chunk_rows,
                 m.time_column, m.device_column, m.created, m.updated)
                for m in sorted(metas, key=lambda m: m.id)]
        df = pd.DataFrame.from_records(rows, columns=[
            "id", "state", "rows", "chunks", "bytes", "generation", "chunk_rows", "time_column",
            "device_column", "created", "updated"])
        for col in ("created", "updated"):
            df[col] = utc_from_epoch(df[col])
        return df

    def _frame(self, query: str, params: tuple[Any, ...] = ()) -> pd.DataFrame:
        """The rows of ``query`` as a DataFrame named by its columns (either database)."""
        with self._connect("read") as db:
            cursor = db.execute(query, params)
            rows = cursor.fetchall()
        return pd.DataFrame.from_records([tuple(r) for r in rows],
                                         columns=[d[0] for d in cursor.description])

    # -- restoring a damaged or missing catalog (the recoverer) ---------------------------
    def damage(self) -> str | None:
        """What is wrong with the catalog, or None when it is sound; reads everything it
        records and changes nothing.

        SQLite: its file missing, not a database, failing SQLite's ``quick_check``, tables
        missing, a value unreadable. PostgreSQL: a table or column missing, a value
        unreadable; a server that cannot be reached raises :class:`BackendUnavailableError`
        (nothing can be said of its tables then).
        """
        sqlite = self.db if isinstance(self.db, SQLiteDatabase) else None
        if sqlite is not None and not sqlite.path.exists():
            return "the file is missing"
        try:
            if sqlite is not None:
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
        except CatalogCorruptionError as exc:  # (CatalogDamageError too)
            return exc.damage
        return None

    def move_aside(self) -> Path | None:
        """Rename the damaged SQLite catalog file (and its WAL files) to
        ``<name>.damaged-<UTC time>`` -- kept for inspection, never deleted -- and create an
        empty catalog in its place. Returns the file's new name (None if it was missing).

        A PostgreSQL catalog is never moved aside or rebuilt by chunkframe (other clients
        share it, and its backups are its administrator's): this raises
        :class:`BackendUnavailableError` saying to restore the database from a backup.
        """
        if not isinstance(self.db, SQLiteDatabase):
            raise BackendUnavailableError(
                f"the PostgreSQL catalog at {self.location!r} cannot be moved aside and rebuilt "
                "by chunkframe (other clients share that database): restore it from a backup "
                "(pg_restore, or point-in-time recovery), then run `chunkframe recover --apply`")
        path = self.db.path
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside, n = path.with_name(f"{path.name}.damaged-{stamp}"), 1
        while aside.exists():
            aside, n = path.with_name(f"{path.name}.damaged-{stamp}-{n}"), n + 1
        moved = None
        try:
            for suffix in ("", "-wal", "-shm"):
                side = path.with_name(path.name + suffix)
                if side.exists():
                    os.replace(side, aside.with_name(aside.name + suffix))
                    moved = moved or (aside if suffix == "" else None)
        except OSError as exc:
            raise BackendUnavailableError(
                f"cannot move the damaged catalog {str(path)!r} aside to {str(aside)!r}: "
                f"{exc}; free space or fix permissions there, then run `chunkframe recover "
                "--apply` again") from exc
        self._create()
        return moved

    def record_ingest(self, dataset_id: str, status: Mapping[str, Any], fence: int) -> None:
        """Record the ingest of ``dataset_id`` that begins now (its ``status``, as Redis
        holds it), replacing the previous one's, if ``fence`` still owns the dataset."""
        text = json.dumps({k: str(v) for k, v in status.items()}, sort_keys=True)
        with self._transaction() as db:
            self._check_fence(db, dataset_id, fence)
            db.execute(_PUT_INGEST, (dataset_id, int(status["generation"]), text))

    def ingest_record(self, dataset_id: str) -> dict[str, str] | None:
        """The status of the latest ingest begun on ``dataset_id`` (committed or not: see
        :data:`_INGESTS`), or None if none was recorded."""
        with self._connect("read") as db:
            row = db.execute("SELECT status FROM ingests WHERE dataset=?",
                             (dataset_id,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def claimed(self) -> set[str]:
        """Every dataset a writer ever claimed (a fencing token is recorded): empty for a
        catalog created anew, even if the store holds chunks."""
        with self._connect("read") as db:
            return {r[0] for r in db.execute("SELECT dataset FROM fences")}

    @staticmethod
    def _raise_generation(db: Connection, dataset_id: str, generation: int) -> None:
        """Make sure :meth:`reserve_generation` never hands out ``generation`` (or one
        before it) again: a restored catalog learns the generations the store holds."""
        db.execute(
            "INSERT INTO generations (dataset, last) VALUES (?, ?) ON CONFLICT (dataset) "
            "DO UPDATE SET last=excluded.last WHERE generations.last<excluded.last",
            (dataset_id, generation))

    def restore(self, dataset_id: str,
                versions: Iterable[tuple[DatasetMeta, list[ChunkMeta], str]], fence: int,
                generation: int, manifest: ManifestRef | None = None) -> bool:
        """Record restored ``versions`` of a dataset (``(meta, chunks, kind)``, oldest
        first, the current one last) and raise its generation counter to ``generation``,
        all in one transaction: a restore that fails leaves the catalog as it was, never
        an older generation current. Fenced like :meth:`commit`. Returns False (writing
        nothing) when the catalog already records the last version's generation and
        version or newer ones (a writer committed meanwhile)."""
        versions = list(versions)
        if not versions:
            return False
        last = versions[-1][0]
        with self._transaction() as db:
            self._check_fence(db, dataset_id, fence)
            current = self._get(db, dataset_id)
            if current is not None and (
                    (current.generation, current.version) >= (last.generation, last.version)):
                return False
            self._raise_generation(db, dataset_id, generation)
            for meta, chunks, kind in versions:  # chunks recorded already keep their stats
                self._write_version(db, meta, chunks, kind, None, _ADD_CHUNK)
            if manifest is not None:  # the current generation's checkpoint (Redis's)
                self._put_manifest(db, dataset_id, last.generation, manifest)
        return True

    # -- contexts (the durable copy of the context cache's entries) -----------------------
    @contextmanager
    def context_change(self, context_id: str, *, put: Iterable[tuple[str, str, str]] = (),
                       remove: Iterable[tuple[str, str]] = (), clear: bool = False,
                       clear_type: str | None = None,
                       adopt: Callable[[], Iterable[tuple[str, str, str]]] | None = None,
                       ) -> Iterator[int]:
        """Record a change of one context's entries; it commits when the block ends and is
        rolled back if the block raises.

        The context cache writes Redis inside the block, so the catalog and Redis change
        together and concurrent writers reach both in the same order (SQLite: the block
        holds the file's write lock; PostgreSQL: it holds the context's row lock, and this
        process's connection is not lent to another thread until the block ends). ``put``:
        ``(type, key, record)`` to insert or replace; ``remove``: ``(type, key)``;
        ``clear``: drop every entry first (of ``clear_type`` only, if given). The context
        stays recorded (with no entries) after a clear, so its Redis copy is known to be
        empty. ``adopt``: called when the context was not recorded yet; the ``(type, key,
        record)`` it returns (entries Redis held before contexts were recorded) are
        recorded before the change, so recording starts from the whole context.

        The block gets the number of changes recorded of the context, this one included: 1
        means it was not recorded before.
        """
        block = False  # whether the error came from the block (Redis), not the catalog
        try:
            with self._transaction() as db:
                db.execute(  # first: on PostgreSQL it locks the context's row
                    "INSERT INTO contexts (id, changes, updated) VALUES (?, 1, ?) "
                    "ON CONFLICT (id) DO UPDATE SET changes = contexts.changes + 1, "
                    "updated = excluded.updated", (context_id, time.time()))
                changes = db.execute("SELECT changes FROM contexts WHERE id=?",
                                     (context_id,)).fetchone()[0]
                if adopt is not None and changes == 1:  # recorded just now
                    db.executemany(
                        "INSERT INTO context_entries (context, type, key, record) "
                        "VALUES (?,?,?,?)", [(context_id, t, k, r) for t, k, r in adopt()])
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
                yield int(changes)
                block = False
        except (BackendUnavailableError, CatalogCorruptionError) as exc:  # (all driver errors)
            if block:
                raise
            raise BackendUnavailableError(
                f"could not record the change of context {context_id!r} in the catalog "
                f"{self.location!r}: {exc}. Check the catalog's disk and permissions, then "
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
