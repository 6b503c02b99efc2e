"""Compaction: runs of small chunks merged into full ones, as a new version (Delta's OPTIMIZE)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from ..core.chunktable import ChunkTable
from ..core.cluster import dask_client
from ..core.errors import (
    InvalidArgumentError,
)
from ..core.keys import validate_id
from ..core.model import ChunkMeta, DatasetMeta
from ..core.progress import progress_bar
from ..ingestion.pipeline import CommitHook
from ..storage.backends import process_backends
from ..storage.manifest import recorded_table
from ..storage.sharing import SharedChunks
from .generation import begin_generation, commit_generation, read_chunk, record_of, write_chunk

if TYPE_CHECKING:
    from ..core.config import Settings
    from ..storage.backends import Backends
    from ..storage.state import DatasetLock

__all__ = ["compact", "merge_runs", "merge_run", "merge_on_worker", "Merge"]


@dataclass(frozen=True)
class Merge:
    """Chunks ``first`` to ``stop - 1`` of the old table become one chunk of the new one."""

    first: int
    stop: int


def merge_runs(rows: np.ndarray, small: int, full: int) -> list[Merge]:
    """The runs of two or more consecutive chunks under ``small`` rows, each cut so that it
    holds at most ``full`` rows: what a compaction merges (everything else is shared)."""
    out: list[Merge] = []
    i, n = 0, len(rows)
    while i < n:
        if rows[i] >= small:
            i += 1
            continue
        j, total = i, 0
        while j < n and rows[j] < small and total + rows[j] <= full:
            total += int(rows[j])
            j += 1
        j = max(j, i + 1)
        if j - i >= 2:
            out.append(Merge(i, j))
        i = j
    return out


def compact(backends: Backends, dataset_id: str, *, min_rows: int | None = None,
            progress: bool | None = None, wait: bool | float = False,
            hooks: Sequence[CommitHook] = (), dask: Settings | None = None) -> DatasetMeta:
    """Merge the dataset's runs of small chunks (under ``min_rows`` rows; by default half its
    ``chunk_rows``) into full chunks, as a new version; returns its metadata (the current
    one, unchanged, when nothing is small enough to merge).

    The new version is a new generation that shares the files of the chunks it leaves
    alone; serial numbers, values, deletes, last values and tags do not change, and older
    versions read as before until ``prune_versions``. Under the dataset's write lock; a
    kill at any point leaves the version before it current (``recover --apply`` deletes
    what the killed compaction wrote). ``dask``: the settings the workers of the active
    Dask cluster connect with; each run is then merged on a worker, under this process's
    lock, and this process commits.
    """
    validate_id(dataset_id)
    if min_rows is not None and (not isinstance(min_rows, int) or isinstance(min_rows, bool)
                                 or min_rows < 1):
        raise InvalidArgumentError(
            f"min_rows must be a positive integer (chunks with fewer rows are merged), got "
            f"{min_rows!r}")
    client = None if dask is None else dask_client(dataset_id, "compacting")
    lock = backends.lock(dataset_id, wait)
    try:
        existing = record_of(backends, dataset_id, "compact")
        table = recorded_table(backends.store, backends.catalog, existing)
        small = existing.chunk_rows // 2 if min_rows is None else min_rows
        runs = merge_runs(table.rows, max(small, 1), max(existing.chunk_rows, small))
        if not runs:
            return existing
        merger = _local(backends, lock) if dask is None else _on_dask(client, dask, lock)
        return _compact(backends, lock, existing, table, runs, merger, progress, hooks)
    finally:
        lock.release()


def _local(backends: Backends, lock: DatasetLock) -> Callable[..., Iterator[ChunkMeta]]:
    """Runs merged one after the other in this process."""
    def merge_all(meta: DatasetMeta, work: list[tuple[list[ChunkMeta], int]],
                  generation: int) -> Iterator[ChunkMeta]:
        shared = (SharedChunks(backends.store, backends.catalog, meta.id, work[0][0][0].start)
                  if work else None)  # kept versions' files a merged chunk may reproduce
        for entries, number in work:
            yield merge_run(backends, lock, meta, entries, generation, number, shared)
    return merge_all


def _on_dask(client: Any, settings: Settings, lock: DatasetLock
             ) -> Callable[..., Iterator[ChunkMeta]]:
    """Runs merged on the active Dask cluster's workers, each under this process's lock."""
    def merge_all(meta: DatasetMeta, work: list[tuple[list[ChunkMeta], int]],
                  generation: int) -> Iterator[ChunkMeta]:
        import distributed

        futures = [client.submit(merge_on_worker, settings, meta, entries, generation, number,
                                 lock.token, lock.fence, pure=False) for entries, number in work]
        try:
            for future in distributed.as_completed(futures):
                lock.check()
                yield future.result()
        finally:
            client.cancel(futures)  # a failure or a lost lock: nothing more is merged
    return merge_all


def merge_on_worker(settings: Settings, meta: DatasetMeta, entries: list[ChunkMeta],
                    generation: int, number: int, token: str, fence: int) -> ChunkMeta:
    """Run on a Dask worker: :func:`merge_run` through the worker's own connections, under
    the coordinator's lock (``token``, ``fence``); a superseded token writes nothing."""
    backends = process_backends(settings)
    return merge_run(backends, backends.state.borrow(meta.id, token, fence), meta, entries,
                     generation, number)


def _compact(backends: Backends, lock: DatasetLock, existing: DatasetMeta, table: ChunkTable,
             runs: list[Merge], merger: Callable[..., Iterator[ChunkMeta]],
             progress: bool | None, hooks: Sequence[CommitHook]) -> DatasetMeta:
    ds = existing.id
    generation = begin_generation(backends, lock, existing, "compact")
    starts = {r.first: r for r in runs}
    new: list[ChunkMeta | None] = []
    work: list[tuple[list[ChunkMeta], int]] = []
    i = 0
    while i < len(table):  # the new table's layout: shared entries renumbered, runs to merge
        run = starts.get(i)
        if run is None:  # shared: the file keeps the name and identity it was written with
            new.append(replace(table[i], chunk=len(new)))
            i += 1
        else:
            work.append(([table[j] for j in range(run.first, run.stop)], len(new)))
            new.append(None)
            i = run.stop
    done = [m for m in new if m is not None]
    merged_from = {number: len(entries) for entries, number in work}
    bar = progress_bar(len(table), f"compact {ds}", progress, unit="chunks")
    try:
        bar.update(len(done))
        for made in merger(existing, work, generation):
            new[made.chunk] = made
            done.append(made)
            bar.update(merged_from[made.chunk])
            if len(done) >= 256:
                backends.state.checkpoint(lock, generation, *done)
                done = []
        backends.state.checkpoint(lock, generation, *done)
    finally:
        bar.close()
    table_new = [m for m in new if m is not None]
    assert len(table_new) == len(new), "a run was not merged"
    meta = existing.evolve(generation=generation, chunks=len(table_new),
                           nbytes=sum(c.nbytes for c in table_new),
                           version=existing.version + 1, updated=time.time())
    return commit_generation(backends, lock, existing, meta, table_new, "compact", hooks, [])


def merge_run(backends: Backends, lock: DatasetLock, meta: DatasetMeta,
              entries: list[ChunkMeta], generation: int, number: int,
              shared: SharedChunks | None = None) -> ChunkMeta:
    """The chunks ``entries``, each checked against its checksum and read as the dataset's
    newest schema (deletes are not applied: they stay deletes), written as chunk ``number``
    of the new generation (or, with ``shared``, naming a kept version's identical file)."""
    merged = pa.concat_tables([read_chunk(backends, meta, cm) for cm in entries])
    return write_chunk(backends, lock, meta, merged.combine_chunks(), generation, number,
                       entries[0].start, shared)[0]
