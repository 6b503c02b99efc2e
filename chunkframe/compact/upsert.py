"""Upserts: rows matched by key columns rewritten copy-on-write, the others appended, as a version."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ..core.errors import (
    InvalidArgumentError,
    SchemaMismatchError,
)
from ..core.keys import validate_id
from ..core.model import ChunkMeta, DatasetMeta
from ..core.ranges import column_ranges
from ..ingestion.pipeline import CommitHook
from ..storage.manifest import recorded_table
from ..storage.sharing import SharedChunks
from .generation import begin_generation, commit_generation, read_chunk, record_of, write_chunk

if TYPE_CHECKING:
    from ..storage.backends import Backends
    from ..storage.state import DatasetLock

__all__ = ["UpdateResult", "update"]


@dataclass(frozen=True)
class UpdateResult:
    """What :func:`update` did.

    ``matched``: rows of the frame that matched existing rows (their values replaced those
    rows', serial numbers kept); ``appended``: rows of the frame that matched none (added
    at the end); ``rows_updated``: existing rows given new values (more than ``matched``
    when a key repeats in the dataset); ``chunks_rewritten`` and ``chunks_appended``: files
    written (every other chunk is shared with the version before); ``version``: the new
    version, or the current one when nothing changed (``changed`` False: nothing written).
    """

    dataset: str
    matched: int
    appended: int
    rows_updated: int
    chunks_rewritten: int
    chunks_appended: int
    version: int
    changed: bool


def _on(on: Any, names: list[str], dataset_id: str) -> list[str]:
    keys = [on] if isinstance(on, str) else list(on) if isinstance(on, Sequence) else None
    if not keys or not all(isinstance(k, str) for k in keys):
        raise InvalidArgumentError(
            f"on must name the key columns that match rows (a column name or a list of them), "
            f"got {on!r} (update of dataset {dataset_id!r})")
    unknown = [k for k in keys if k not in names]
    if unknown:
        raise KeyError(f"update of dataset {dataset_id!r}: no column {unknown[0]!r} to match "
                       f"on; its columns are {names!r}")
    return list(dict.fromkeys(keys))


def _source(df: Any, meta: DatasetMeta, on: list[str]) -> pa.Table:
    """``df`` as an Arrow table of the dataset's schema, its keys checked (unique, present)."""
    ds = meta.id
    if not isinstance(df, pd.DataFrame):
        raise InvalidArgumentError(
            f"update of dataset {ds!r} takes a pandas DataFrame, got {type(df).__name__}")
    schema = meta.arrow_schema
    names = schema.names
    missing = [c for c in names if c not in df.columns]
    extra = [c for c in df.columns if c not in names]
    if missing or extra:
        raise SchemaMismatchError(
            f"update of dataset {ds!r} needs exactly its columns: "
            + "; ".join(x for x in (f"missing {missing!r}" if missing else "",
                                    f"not in the dataset {extra!r}" if extra else "") if x)
            + "; nothing was written")
    keys = df[on]
    if keys.isna().to_numpy().any():
        raise InvalidArgumentError(
            f"update of dataset {ds!r}: a key column ({', '.join(on)}) has missing values in "
            f"the frame, and a missing key matches nothing; fill or drop those rows")
    dup = keys.duplicated(keep=False)
    if dup.any():
        first = keys[dup].iloc[0].tolist()
        raise InvalidArgumentError(
            f"update of dataset {ds!r}: {int(dup.sum())} rows of the frame share a key "
            f"({dict(zip(on, first, strict=True))!r} comes more than once), so which values "
            "to keep is ambiguous; keep one row per key")
    try:
        table = pa.Table.from_pandas(df[names], schema=schema, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError,
            ValueError) as exc:
        raise SchemaMismatchError(
            f"update of dataset {ds!r}: the frame's columns do not convert to the dataset's "
            f"types ({exc}); give each column the dataset's dtype (ds.schema)") from exc
    return table.replace_schema_metadata(schema.metadata)


def _key_index(table: pa.Table, on: list[str]) -> pd.Index:
    """The key columns of ``table`` as a pandas index (dictionary columns by their values)."""
    cols = []
    for c in on:
        col = table.column(c)
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        cols.append(col.to_pandas())
    return pd.MultiIndex.from_arrays(cols, names=on) if len(cols) > 1 else pd.Index(cols[0])


def _may_hold(cm: ChunkMeta, wanted: dict[str, list[Any]]) -> bool:
    """Whether chunk ``cm`` may hold a key of the frame, by its recorded column ranges."""
    for col, (lo, hi) in wanted.items():
        have = cm.ranges.get(col)
        if have is not None and (have[1] < lo or have[0] > hi):
            return False
    return True


def _same_values(a: pa.Table, b: pa.Table) -> bool:
    """Whether two tables of one schema hold the same values (categorical columns compared by
    their values: the same categories may come in another dictionary)."""
    for x, y in zip(a.columns, b.columns, strict=True):
        if pa.types.is_dictionary(x.type):
            x, y = x.cast(x.type.value_type), y.cast(y.type.value_type)
        if not x.equals(y):
            return False
    return True


def update(backends: Backends, dataset_id: str, df: Any, on: Any, *,
           wait: bool | float = False, hooks: Sequence[CommitHook] = ()) -> UpdateResult:
    """Upsert ``df`` into the dataset: rows whose ``on`` columns match an existing row's
    replace that row's values (its serial number kept); the others are appended.

    Only the chunks holding matched rows are read whole and written again, into a new
    generation that shares every other chunk's file (as a compaction does); a frame that
    changes no value and appends nothing writes nothing. Under the dataset's write lock; a
    kill at any point leaves the version before it current (``recover --apply`` deletes
    what the killed update wrote).
    """
    validate_id(dataset_id)
    lock = backends.lock(dataset_id, wait)
    try:
        existing = record_of(backends, dataset_id, "update")
        keys = _on(on, existing.arrow_schema.names, dataset_id)
        src = _source(df, existing, keys)
        return _update(backends, lock, existing, src, keys, hooks)
    finally:
        lock.release()


def _update(backends: Backends, lock: DatasetLock, existing: DatasetMeta, src: pa.Table,
            on: list[str], hooks: Sequence[CommitHook]) -> UpdateResult:
    ds = existing.id
    table = recorded_table(backends.store, backends.catalog, existing)
    wanted = {c: r for c, r in column_ranges(src.select(on)).items()}
    src_keys = _key_index(src, on)
    hit = np.zeros(src.num_rows, dtype=bool)
    rewritten: dict[int, pa.Table] = {}
    rows_updated = 0
    for i in range(len(table)):
        cm = table[i]
        if src.num_rows == 0 or not _may_hold(cm, wanted):
            continue
        found = src_keys.get_indexer(_key_index(read_chunk(backends, existing, cm, on), on))
        rows = np.flatnonzero(found >= 0)
        if not len(rows):
            continue
        hit[found[rows]] = True
        rows_updated += len(rows)
        old = read_chunk(backends, existing, cm)
        combined = pa.concat_tables([old, src.take(pa.array(found[rows]))]).unify_dictionaries()
        order = np.arange(old.num_rows)
        order[rows] = old.num_rows + np.arange(len(rows))
        new = combined.take(pa.array(order)).combine_chunks()
        if not _same_values(new, old):
            rewritten[i] = new
    unmatched = np.flatnonzero(~hit)
    matched = int(hit.sum())
    if not rewritten and not len(unmatched):
        return UpdateResult(ds, matched, 0, rows_updated, 0, 0, existing.version, False)
    generation = begin_generation(backends, lock, existing, "update")
    new_chunks: list[ChunkMeta] = []
    batch: list[ChunkMeta] = []

    written = [0, 0]  # files written: of rewritten chunks, of appended ones

    def add(made: ChunkMeta, wrote: bool = False, appended: bool = False) -> None:
        nonlocal batch
        written[appended] += wrote
        new_chunks.append(made)
        batch.append(made)
        if len(batch) >= 256:
            backends.state.checkpoint(lock, generation, *batch)
            batch = []

    shared = SharedChunks(backends.store, backends.catalog, ds,  # kept versions' identical
                          min([table[i].start for i in rewritten], default=existing.rows))
    for i in range(len(table)):
        cm = table[i]
        piece = rewritten.get(i)
        if piece is None:
            add(replace(cm, chunk=i))  # unchanged: its file keeps its name
        else:
            add(*write_chunk(backends, lock, existing, piece, generation, i, cm.start, shared))
    appended = src.take(pa.array(unmatched))
    start, step = existing.rows, existing.chunk_rows
    for lo in range(0, appended.num_rows, step):
        piece = appended.slice(lo, step)
        add(*write_chunk(backends, lock, existing, piece, generation, len(new_chunks), start + lo,
                         shared), appended=True)
    backends.state.checkpoint(lock, generation, *batch)
    meta = existing.evolve(generation=generation, chunks=len(new_chunks),
                           rows=existing.rows + appended.num_rows,
                           nbytes=sum(c.nbytes for c in new_chunks),
                           version=existing.version + 1, updated=time.time())
    commit_generation(backends, lock, existing, meta, new_chunks, "update", hooks, new_chunks)
    return UpdateResult(ds, matched, appended.num_rows, rows_updated, written[0], written[1],
                        meta.version, True)
