"""Repair of corrupt chunks: re-cut from their recorded source, rewritten under a new fenced key."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from ..core.chunktable import ChunkTable
from ..core.errors import Arg, DatasetLockedError, Hint, SourceError, StateCorruptionError
from ..core.keys import chunk_key, validate_id
from ..core.model import ChunkMeta
from ..core.ranges import column_ranges
from ..ingestion.pipeline import time_stats
from ..ingestion.provenance import (
    SourceFile,
    SourceRecord,
    rebuild,
    why_not_readable,
)
from ..storage.codec import write
from ..storage.manifest import write_manifest

if TYPE_CHECKING:
    from ..read.reader import Reader, Snapshot
    from ..storage.backends import Backends
    from ..storage.state import DatasetLock

__all__ = ["REPAIR_COLUMNS", "recut", "recut_lost", "repair_chunks", "sources_of"]

REPAIR_COLUMNS = ["chunk", "problem", "action", "repaired", "detail"]
"""The columns of ``ds.verify(repair=True)``'s report: one row per chunk found bad."""

_NO_SOURCE = ("no source is recorded for it (written before sources were recorded, or by "
              "a Dask ingest)")


def repair_chunks(backends: Backends, reader: Reader, dataset_id: str, chunks: Sequence[int]
                  ) -> pd.DataFrame:
    """Rewrite the bad chunks among ``chunks`` (numbers) of the dataset's current version
    from their recorded sources, under the dataset's lock; one report row per chunk still
    bad once the lock is held (see :data:`REPAIR_COLUMNS`).

    A chunk is rebuilt by cutting its ingest's files again exactly as the ingest did, only
    when they are still there with their recorded fingerprints; it is written under a new
    fenced key, then the catalog and Redis point at it and the damaged file is deleted.
    """
    try:
        lock = backends.lock(dataset_id)
    except DatasetLockedError as exc:
        raise DatasetLockedError(
            f"cannot repair dataset {dataset_id!r}: another writer holds its lock "
            f"({getattr(exc, 'what', exc)}); nothing was changed",
            hint=Hint("run {} again once that writer is done", Arg("repair", True)),
        ) from exc
    try:
        snap = reader.snapshot(dataset_id, refresh=True)  # as it is now, under the lock
        index = {cm.chunk: i for i, cm in enumerate(snap.chunks)}
        bad = {}
        for n in chunks:
            problem = reader.verify_chunk(snap, index[n]) if n in index else None
            if problem is not None:
                bad[n] = problem
        rows = _repair(backends, lock, snap, bad) if bad else []
    finally:
        lock.release()
    reader.clear()  # snapshots holding the replaced keys
    return pd.DataFrame(rows, columns=REPAIR_COLUMNS).astype({"repaired": bool})


def recut_lost(backends: Backends, reader: Reader, dataset_id: str) -> pd.DataFrame:
    """Re-cut the chunks of the dataset's current version whose files the store lost (see
    :func:`recut`); the report of what was found (empty: nothing was lost)."""
    snap = reader.snapshot(dataset_id, refresh=True)
    present = set(backends.store.list(validate_id(dataset_id)))
    return recut(backends, reader, dataset_id,
                 [cm.chunk for cm in snap.chunks if cm.key not in present])


def recut(backends: Backends, reader: Reader, dataset_id: str, chunks: Sequence[int]
          ) -> pd.DataFrame:
    """:func:`repair_chunks` of ``chunks``, raising :class:`SourceError` (saying which and
    why, after the others were repaired) when one of them cannot be re-cut."""
    if not chunks:
        return pd.DataFrame(columns=REPAIR_COLUMNS).astype({"repaired": bool})
    report = repair_chunks(backends, reader, dataset_id, chunks)
    failed = report[~report["repaired"]]
    if len(failed):
        raise SourceError(
            f"{len(failed)} of {len(chunks)} bad chunks of dataset {dataset_id!r} cannot be "
            f"re-cut from its source (chunk {failed['chunk'].iloc[0]}: "
            f"{failed['detail'].iloc[0]})",
            hint=Hint("restore those chunk files, or ingest again with {}",
                      Arg("mode", "overwrite")))
    return report


def sources_of(backends: Backends, dataset_id: str, generation: int, numbers: Iterable[int],
               seen: dict[tuple[str, int, str], SourceFile] | None = None
               ) -> list[tuple[list[int], SourceRecord | None, str | None]]:
    """The chunks ``numbers`` of ``generation`` grouped by the recorded source that gave
    them: ``(numbers, record, why)``, where ``why`` is None when the record's files are all
    still there with their fingerprints (the chunks can be re-cut from them), else why not
    (no record, an unreadable one, a file gone or changed). ``seen``: see
    :func:`~chunkframe.ingestion.provenance.why_not_readable`."""
    records: list[SourceRecord] = []
    unreadable = ""
    for text in backends.catalog.sources(dataset_id, generation):
        try:
            records.append(SourceRecord.from_json(text))
        except SourceError as exc:
            unreadable = str(exc)
    unsourced: list[int] = []
    groups: dict[int, list[int]] = {}
    for n in sorted(numbers):
        found = next((i for i, r in enumerate(records) if r.covers(generation, n)), None)
        if found is None:
            unsourced.append(n)
        else:
            groups.setdefault(found, []).append(n)
    out: list[tuple[list[int], SourceRecord | None, str | None]] = (
        [(unsourced, None, unreadable or _NO_SOURCE)] if unsourced else [])
    for i, group in groups.items():
        out.append((group, records[i], why_not_readable(
            records[i], backends.storage_options, since="since it was ingested", seen=seen)))
    return out


def _repair(backends: Backends, lock: DatasetLock, snap: Snapshot, bad: dict[int, str]
            ) -> list[tuple[Any, ...]]:
    by_chunk = {cm.chunk: cm for cm in snap.chunks}
    rows: list[tuple[Any, ...]] = []
    for numbers, record, why in sources_of(backends, snap.meta.id, snap.meta.generation, bad):
        if record is None or why is not None:
            rows += [(n, bad[n], "none", False, why) for n in numbers]
            continue
        done: dict[int, tuple[Any, ...]] = {}
        failure = (f"{record.describe()} now holds fewer rows than it gave when ingested")
        try:
            for n, start, table in rebuild(record, backends.storage_options, set(numbers)):
                done[n] = (n, bad[n], f"re-read from {record.describe()}", *_rewrite(
                    backends, lock, snap, record, by_chunk[n], start, table))
        except (SourceError, OSError, pa.ArrowException) as exc:
            failure = f"re-reading {record.describe()} failed: {exc}"
        rows += [done.get(n) or (n, bad[n], "none", False, failure) for n in numbers]
    return sorted(rows, key=lambda r: int(r[0]))


def _rewrite(backends: Backends, lock: DatasetLock, snap: Snapshot, record: SourceRecord,
             cm: ChunkMeta, start: int, table: pa.Table) -> tuple[bool, str]:
    """Write ``table`` as chunk ``cm`` under a new fenced key and commit the key; returns
    (repaired, detail)."""
    ds, gen = snap.meta.id, snap.meta.generation
    span = f"rows [{cm.start}, {cm.start + cm.rows})"
    if (start, table.num_rows) != (cm.start, cm.rows):
        return False, (f"the source gives rows [{start}, {start + table.num_rows}) for it, "
                       f"the chunk holds {span}")
    key = chunk_key(ds, gen, cm.chunk, lock.fence)
    identity = {"dataset": ds, "generation": gen, "chunk": cm.chunk, "start": cm.start,
                "rows": cm.rows}
    compression = record.options.get("compression") or None
    encodings = record.options.get("encodings") or {}  # as the ingest chose them
    digest, size = backends.store.write(key, lambda f: write(table, f, compression, identity,
                                                             encodings))
    note = "its checksum equals the recorded one"
    if digest != cm.checksum:
        partial = [f.shown for f in _covering(record, cm) if f.method != "sha256"]
        if partial:
            backends.store.delete(key)
            return False, (
                f"unrepairable: the source cannot be proven unchanged: the re-cut bytes differ "
                f"from the recorded checksum {cm.checksum}, and {', '.join(partial)} (too "
                f"large to hash whole) was fingerprinted by size, time and its ends only; "
                f"restore the chunk from a backup, or ingest the dataset again")
        stats = time_stats(table, snap.meta.time_column, snap.meta.device_column)
        if (_plain(stats) != _plain(cm.stats) or _plain(column_ranges(table)) != _plain(cm.ranges)):
            backends.store.delete(key)
            return False, ("the re-read rows differ from those ingested (their statistics "
                           "differ): the source changed without changing its fingerprint")
        note = (f"its bytes differ from the recorded checksum {cm.checksum} (another Arrow "
                f"version?) with the same rows, so {digest} is recorded")
    new = replace(cm, key=key, checksum=digest, nbytes=size)
    try:
        stale = backends.catalog.replace_chunk(ds, gen, new, lock.fence)
    except StateCorruptionError:
        backends.store.delete(key)  # nothing points at it
        raise
    backends.state.replace_chunk(lock, gen, new)
    if stale is not None:  # the checkpoint held the old entry: write it again
        checkpoint_again(backends, lock, ds)
        backends.store.delete(stale.key)
    backends.store.delete(cm.key)
    return True, f"{span} rewritten as {key}; {note}"


def checkpoint_again(backends: Backends, lock: DatasetLock, dataset_id: str) -> None:
    """Checkpoint the current version's chunk table from the catalog's rows and point Redis
    at it (after a repair replaced an entry the old checkpoint held, or the checkpoint was
    found damaged), under ``lock``."""
    meta = backends.catalog.get(dataset_id)
    if meta is None:
        return
    rows = backends.catalog.chunks(dataset_id, meta.generation, 0, meta.chunks)
    ref = None
    if rows:
        ref = write_manifest(backends.store, dataset_id, meta.generation, ChunkTable.of(rows),
                             lock.fence)
        backends.catalog.put_manifest(dataset_id, meta.generation, ref, lock.fence)
    backends.state.rebuild(lock, meta, ref, rows[0 if ref is None else ref.chunks:])


def _covering(record: SourceRecord, cm: ChunkMeta) -> list[SourceFile]:
    """The recorded files that gave rows of chunk ``cm`` (all of them when rows are unknown)."""
    stop = cm.start + cm.rows
    return [f for f in record.files
            if f.rows is None or (f.rows[0] < stop and cm.start < f.rows[1])]


def _plain(value: Any) -> Any:
    """``value`` as JSON gives it back (lists, not tuples), to compare statistics."""
    return json.loads(json.dumps(value))
