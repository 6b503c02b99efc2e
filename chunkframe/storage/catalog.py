"""The catalog: the durable record (SQLite) of complete datasets and their chunk tables."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from ..core.errors import BackendUnavailableError, Call, Hint, LockLostError
from ..core.model import ChunkMeta, DatasetMeta, Tombstone

__all__ = ["Catalog"]

_SCHEMA = """
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
    ranges TEXT NOT NULL DEFAULT '{}',
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

_COLUMNS = ("id", "generation", "rows", "chunks", "nbytes", "schema", "chunk_rows", "fingerprint",
            "time_column", "device_column", "version", "created", "updated", "tombstones",
            "compression")


def _migrate(db: sqlite3.Connection) -> None:
    """Bring a catalog made by an earlier version up to :data:`_SCHEMA` (columns added since)."""
    have = {row[1] for row in db.execute("PRAGMA table_info(chunks)")}
    if "ranges" not in have:  # per-column [min, max]: ChunkMeta.ranges
        db.execute("ALTER TABLE chunks ADD COLUMN ranges TEXT NOT NULL DEFAULT '{}'")


class Catalog:
    """SQLite catalog; a dataset is visible only once its chunk table is committed with it."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(_SCHEMA)
                _migrate(db)
        except (sqlite3.Error, OSError) as exc:
            raise BackendUnavailableError(
                f"cannot open the catalog {str(self.path)!r}: {exc}; check the path and its "
                "permissions, or set CHUNKFRAME_CATALOG"
            ) from exc

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA synchronous=FULL")
            yield db
        finally:
            db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
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

    def commit(self, meta: DatasetMeta, chunks: list[ChunkMeta], fence: int) -> None:
        """Write the dataset row and its whole chunk table in one transaction: now complete.

        Chunks of other generations are dropped from the record in the same transaction.
        Refused (:class:`LockLostError`) unless ``fence`` is the latest claimed token.
        """
        with self._transaction() as db:
            self._check_fence(db, meta.id, fence)
            db.execute("DELETE FROM chunks WHERE dataset=? AND generation<>?", (meta.id, meta.generation))
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

    def set_tombstones(self, dataset_id: str, tombstones: tuple[Tombstone, ...], version: int,
                       fence: int) -> None:
        """Record the dataset's deletes (fenced like :meth:`commit`)."""
        with self._transaction() as db:
            self._check_fence(db, dataset_id, fence)
            db.execute(
                "UPDATE datasets SET tombstones=?, version=?, updated=? WHERE id=?",
                (json.dumps([t.to_dict() for t in tombstones]), version, time.time(), dataset_id),
            )

    def get(self, dataset_id: str) -> DatasetMeta | None:
        with self._connect() as db:
            row = db.execute(
                f"SELECT {','.join(_COLUMNS)} FROM datasets WHERE id=? AND state='complete'",
                (dataset_id,),
            ).fetchone()
        if row is None:
            return None
        d = dict(zip(_COLUMNS, row, strict=True))
        d["tombstones"] = tuple(Tombstone.from_dict(t) for t in json.loads(d["tombstones"]))
        return DatasetMeta(**d)

    def chunks(self, dataset_id: str, generation: int) -> list[ChunkMeta]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT chunk,start,rows,key,checksum,nbytes,stats,ranges FROM chunks "
                "WHERE dataset=? AND generation=? ORDER BY chunk",
                (dataset_id, generation),
            ).fetchall()
        return [ChunkMeta(c, s, r, k, cs, n, json.loads(st), json.loads(rg))
                for c, s, r, k, cs, n, st, rg in rows]

    def ids(self) -> list[str]:
        with self._connect() as db:
            return [r[0] for r in db.execute(
                "SELECT id FROM datasets WHERE state='complete' ORDER BY id")]

    def table(self) -> pd.DataFrame:
        """All complete datasets, one row each (what ``cf.datasets()`` shows)."""
        with self._connect() as db:
            df = pd.read_sql_query(
                "SELECT id, state, rows, chunks, nbytes AS bytes, generation, chunk_rows, "
                "time_column, device_column, created, updated FROM datasets ORDER BY id", db)
        for col in ("created", "updated"):
            df[col] = pd.to_datetime(df[col], unit="s", utc=True)
        return df
