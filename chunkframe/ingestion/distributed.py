"""Parallel ingest on Dask distributed: workers cut and persist partitions, one coordinator commits."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from ..core.errors import BackendUnavailableError, SchemaMismatchError, SourceError
from ..core.model import DatasetMeta
from ..core.progress import progress_bar
from ..storage.backends import process_backends
from ..storage.codec import Compression, to_arrow
from .pipeline import (
    CommitHook,
    Plan,
    begin,
    check_arguments,
    commit,
    conform_appended,
    locked_ingest,
    persist_chunk,
)
from .sources import conform, open_source

if TYPE_CHECKING:
    import distributed

    from ..core.config import Settings
    from ..storage.backends import Backends
    from ..storage.state import DatasetLock

__all__ = ["is_dask_frame", "dask_client", "ingest_dask", "read_files", "persist_partition"]

INSTALL = "pip install 'chunkframe[dask]'"


def is_dask_frame(source: Any) -> bool:
    """Whether ``source`` is a ``dask.dataframe.DataFrame`` (without importing dask)."""
    return any(c.__module__.startswith("dask.") and c.__name__ == "DataFrame"
               for c in type(source).__mro__)


def dask_client(dataset_id: str) -> distributed.Client:
    """The active ``distributed.Client``, or a :class:`BackendUnavailableError` saying how
    to start one (or to install the extra)."""
    try:
        import distributed
    except ImportError as exc:
        raise BackendUnavailableError(
            f"ingesting dataset {dataset_id!r} on Dask needs dask and distributed: {INSTALL}"
        ) from exc
    try:
        return distributed.default_client()
    except ValueError:
        raise BackendUnavailableError(
            f"ingesting dataset {dataset_id!r} on Dask needs a running distributed.Client, and "
            "this process has none. Start one first: `from distributed import Client; "
            "client = Client()` (a LocalCluster on this machine) or "
            "`Client('tcp://scheduler:8786')` (a cluster that reaches the same Redis and store)"
        ) from None


def read_files(paths: str | Sequence[str], dataset_id: str, storage_options: dict[str, Any]
               ) -> Any:
    """A dask DataFrame over CSV or Parquet files (a glob or a list, local or ``s3://``),
    one partition per file so that partition order is file order."""
    import dask.dataframe as dd

    files = [paths] if isinstance(paths, str) else [str(p) for p in paths]
    if not files:
        raise SourceError(f"no files given to ingest as dataset {dataset_id!r}; pass a glob, "
                          "a path or a list of paths of CSV or Parquet files")
    if all(f.endswith((".parquet", ".pq")) for f in files):
        return dd.read_parquet(files, storage_options=storage_options or None)
    return dd.read_csv(files, blocksize=None, storage_options=storage_options or None)


def persist_partition(settings: Settings, dataset_id: str, token: str, fence: int, plan: Plan,
                      schema: pa.Schema, part: pd.DataFrame, index: int, first_chunk: int,
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
    frame: Any,
    dataset_id: str,
    *,
    chunk_rows: int = 65_536,
    time_column: str | None = None,
    device_column: str | None = None,
    mode: str = "create",
    compression: Compression = None,
    progress: bool | None = None,
    wait: bool | float = False,
    hooks: Sequence[CommitHook] = (),
) -> DatasetMeta:
    """Ingest the dask DataFrame ``frame`` as ``dataset_id`` on the active Dask cluster.

    This process (the coordinator) takes the dataset's lock and keeps it renewed, computes
    the partitions' lengths, and gives each partition its first chunk number and serial
    number, so chunks are cut, numbered and keyed exactly as a single-process ingest of the
    concatenated partitions would cut them per partition. Workers persist and checkpoint
    the chunks under the coordinator's fencing token; a killed worker's task is retried by
    the scheduler (its chunks are rewritten whole, under the same keys); a killed
    coordinator's ingest continues with ``mode="resume"``, which skips the chunks
    checkpointed. The coordinator commits the catalog once every partition is done.
    See ``chunkframe.ingest`` for the arguments.
    """
    check_arguments(dataset_id, mode, chunk_rows)
    client = dask_client(dataset_id)
    from dask.base import tokenize

    schema = to_arrow(frame._meta).schema
    fingerprint = f"dask:{tokenize(frame)}"
    lengths = [int(n) for n in client.compute(frame.map_partitions(len)).result()]

    def body(lock: DatasetLock, plan: Plan, existing: DatasetMeta | None) -> DatasetMeta:
        target = existing.arrow_schema if plan.op == "append" and existing else schema
        plan, done = begin(backends, lock, dataset_id, plan, target)
        from dask import delayed

        tasks, n, sn, skipped = [], plan.base_chunk, plan.base_rows, 0
        persist = delayed(persist_partition, pure=False)
        for i, (part, rows) in enumerate(zip(frame.to_delayed(), lengths, strict=True)):
            count = math.ceil(rows / plan.chunk_rows)
            skip = frozenset(c for c in range(n, n + count) if c in done)
            if len(skip) < count:
                tasks.append(persist(settings, dataset_id, lock.token, lock.fence, plan, target,
                                     part, i, n, sn, skip))
            else:
                skipped += rows
            n, sn = n + count, sn + rows
        futures = client.compute(tasks)
        bar = progress_bar(sum(lengths), f"ingest {dataset_id}", progress, unit="rows")
        bar.update(skipped)
        try:
            for future in _as_completed(futures):
                bar.update(future.result())
                lock.check()
        except BaseException:
            client.cancel(futures)
            raise
        finally:
            bar.close()
        return commit(backends, lock, dataset_id, plan, n - plan.base_chunk, target, existing,
                      hooks)

    return locked_ingest(backends, dataset_id, mode, wait, fingerprint, chunk_rows, time_column,
                         device_column, compression, body)


def _as_completed(futures: list[Any]) -> Any:
    import distributed

    return distributed.as_completed(futures)
