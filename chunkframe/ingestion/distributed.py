"""Parallel ingest on Dask distributed: workers cut and persist partitions, one coordinator commits."""

from __future__ import annotations

import hashlib
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from ..core.cluster import dask_client
from ..core.errors import BackendUnavailableError, SchemaMismatchError, SourceError
from ..core.model import DatasetMeta
from ..core.progress import progress_bar
from ..storage.backends import process_backends
from ..storage.codec import to_arrow
from .options import IngestOptions
from .pipeline import (
    CommitHook,
    Plan,
    begin,
    check_arguments,
    commit,
    conform_appended,
    how_to_continue,
    locked_ingest,
    persist_chunk,
)
from .sources import conform, list_files, open_source

if TYPE_CHECKING:
    from ..core.config import Settings
    from ..storage.backends import Backends
    from ..storage.state import DatasetLock

__all__ = ["is_dask_frame", "dask_client", "ingest_dask", "file_partitions", "FilePartitions",
           "read_file", "persist_partition"]

def is_dask_frame(source: Any) -> bool:
    """Whether ``source`` is a ``dask.dataframe.DataFrame`` (without importing dask)."""
    return any(c.__module__.startswith("dask.") and c.__name__ == "DataFrame"
               for c in type(source).__mro__)


def file_partitions(paths: str | Sequence[str], dataset_id: str,
                    storage_options: dict[str, Any]) -> FilePartitions:
    """CSV, Parquet or Arrow files (a glob, a path or a list, local or ``s3://``) to ingest
    on Dask, one partition per file in the order given (each glob's matches sorted)."""
    entries = [paths] if isinstance(paths, str) else [str(p) for p in paths]
    if not entries:
        raise SourceError(f"no files given to ingest as dataset {dataset_id!r}; pass a glob, "
                          "a path or a list of paths of CSV, Parquet or Arrow files")
    files: list[str] = []
    fs: Any = None
    for entry in entries:
        fs, found = list_files(entry, storage_options)
        files += [fs.unstrip_protocol(f) for f in found]
    digest = hashlib.sha256(repr([(f, fs.ukey(fs._strip_protocol(f))) for f in files]).encode())
    return FilePartitions(files, storage_options, "files:" + digest.hexdigest()[:32])


@dataclass(frozen=True)
class FilePartitions:
    """Files ingested one per partition: each is read on a worker by chunkframe's own
    reader, so columns get the types a single-process ingest gives them."""

    files: list[str]
    storage_options: dict[str, Any]
    fingerprint: str


def read_file(url: str, storage_options: dict[str, Any]) -> pa.Table:
    """Run on a Dask worker: one file, whole, as a single-process ingest reads it."""
    return pa.concat_tables(
        part if isinstance(part, pa.Table) else pa.Table.from_batches([part])
        for part in open_source(url, storage_options).batches())


def persist_partition(settings: Settings, dataset_id: str, token: str, fence: int, plan: Plan,
                      schema: pa.Schema, part: pd.DataFrame | pa.Table, index: int, first_chunk: int,
                      first_sn: int, skip: frozenset[int]) -> int:
    """Run on a Dask worker: cut partition ``index`` into chunks as a single-process ingest
    would (chunk ``first_chunk`` on, serial numbers from ``first_sn``), conform them to
    ``schema``, persist each and checkpoint it under the coordinator's lock (``token``,
    ``fence``), skipping the chunks in ``skip``. Returns the rows of the partition.

    The worker reaches Redis and the store through its own connections, built from
    ``settings``; a task holding a superseded fencing token writes nothing
    (:class:`LockLostError`).
    """
    backends = process_backends(settings)
    lock = backends.state.borrow(dataset_id, token, fence)
    if not len(part):
        return 0
    where = f"partition {index} of the dask DataFrame"
    src = open_source(part)
    for j, table in enumerate(src.chunks(plan.chunk_rows)):
        n = first_chunk + j
        if n in skip:
            continue
        if plan.op == "append":
            table = conform_appended(table, schema, dataset_id)
        else:
            try:
                table = conform(table, schema, where)
            except SchemaMismatchError as exc:
                raise SchemaMismatchError(
                    f"cannot ingest dataset {dataset_id!r}: {where} does not match the frame's "
                    f"meta ({getattr(exc, 'what', exc)}); make every partition's columns and "
                    "dtypes those of ddf._meta (ddf.astype(...)) or pass meta= where it was built"
                ) from exc
        persist_chunk(backends.state, backends.store, lock, dataset_id, plan, n,
                      first_sn + j * plan.chunk_rows, table)
    return len(part)


def ingest_dask(
    backends: Backends,
    settings: Settings,
    source: Any,
    dataset_id: str,
    options: IngestOptions,
    *,
    hooks: Sequence[CommitHook] = (),
) -> DatasetMeta:
    """Ingest ``source`` — a dask DataFrame, or :class:`FilePartitions` — as ``dataset_id``
    on the active Dask cluster.

    This process (the coordinator) takes the dataset's lock and keeps it renewed. Workers
    load the partitions, at most two per worker ahead of the one being numbered; the
    coordinator learns each one's length in partition order and hands it its first chunk
    number and serial number. Chunks are cut per partition: each partition gives
    ``chunk_rows``-row chunks and ends with a shorter one (unless its length is a multiple
    of ``chunk_rows``), so the chunk boundaries are those of the partitions, not those of a
    single-process ingest of the concatenated rows; the rows and their serial numbers are
    the same, and the cut is deterministic, so a resumed ingest cuts the same chunks.
    The worker holding a partition persists and checkpoints its chunks under the
    coordinator's fencing token, so each partition is read once and never travels. A killed
    worker's task is retried by the scheduler (its chunks are rewritten whole, under the
    same keys); a killed coordinator's ingest continues with ``mode="resume"``, which skips
    the chunks checkpointed. The coordinator commits the catalog once every partition is
    done. See ``chunkframe.ingest`` for the options; those that name a unit of work
    (``workers``, ``max_pending``, ``fingerprint``, ``evolve``) are the caller's to refuse.
    """
    mode, progress = options.mode, options.progress
    chunk_rows = check_arguments(dataset_id, mode, options.chunk_rows)
    client = dask_client(dataset_id)
    from dask import delayed

    schema: pa.Schema | None
    if isinstance(source, FilePartitions):
        parts = [delayed(read_file, pure=False)(f, source.storage_options)
                 for f in source.files]
        fingerprint, schema = source.fingerprint, None  # the first file's schema
    else:
        from dask.base import tokenize

        parts = list(source.to_delayed())
        fingerprint = f"dask:{tokenize(source)}"
        schema = to_arrow(source._meta).schema
    window = 2 * max(1, len(client.scheduler_info().get("workers", {})))

    def body(lock: DatasetLock, plan: Plan, existing: DatasetMeta | None) -> DatasetMeta:
        target = existing.arrow_schema if plan.op == "append" and existing else schema
        done: dict[int, Any] = {}
        pending = iter(parts)
        loading: deque[Any] = deque()  # partitions loading on workers, in partition order
        persisting: set[Any] = set()
        index, n, sn, began = 0, plan.base_chunk, plan.base_rows, False
        bar = progress_bar(None, f"ingest {dataset_id}", progress, unit="rows")
        try:
            while True:
                while len(loading) + len(persisting) < window:  # load ahead, bounded
                    part = next(pending, None)
                    if part is None:
                        break
                    loading.append(client.compute(part))
                if not loading:
                    break
                loaded = loading.popleft()
                rows = client.submit(len, loaded).result()
                if target is None:  # files: the first one's columns are the dataset's
                    target = client.submit(_schema, loaded).result()
                if not began:
                    plan, done = begin(backends, lock, dataset_id, plan, target)
                    began = True
                count = math.ceil(rows / plan.chunk_rows)
                skip = frozenset(c for c in range(n, n + count) if c in done)
                if len(skip) < count:
                    persisting.add(client.submit(
                        persist_partition, settings, dataset_id, lock.token, lock.fence, plan,
                        target, loaded, index, n, sn, skip, pure=False))
                else:
                    bar.update(rows)
                index, n, sn = index + 1, n + count, sn + rows
                _settle(persisting, bar, lock, window - len(loading) - 1)
            _settle(persisting, bar, lock, 0)
        except BaseException:
            client.cancel(list(loading) + list(persisting))
            raise
        finally:
            bar.close()
        if not began or target is None:  # no partitions at all
            raise SourceError(f"the dask DataFrame given as dataset {dataset_id!r} has no "
                              "partitions: it has no rows to ingest")
        return commit(backends, lock, dataset_id, plan, n - plan.base_chunk, target, existing,
                      hooks)

    try:
        return locked_ingest(backends, dataset_id, mode, options.wait, fingerprint, chunk_rows,
                             options.time_column, options.device_column, options.compression,
                             body)
    except BackendUnavailableError as exc:  # a worker's store, or the catalog
        raise how_to_continue(backends, dataset_id, exc) from exc


def _schema(table: pa.Table) -> pa.Schema:
    return table.schema


def _settle(persisting: set[Any], bar: Any, lock: DatasetLock, limit: int) -> None:
    """Wait until at most ``limit`` persist tasks are unfinished (raising the first
    failure), counting the rows of those done and checking the lock meanwhile."""
    import distributed

    while len(persisting) > max(limit, 0):
        finished, _ = distributed.wait(list(persisting), return_when="FIRST_COMPLETED")
        for future in finished:
            persisting.discard(future)
            bar.update(future.result())
        lock.check()
