"""Dask partitions of a dataset (one per chunk) and chunk reductions on the Dask workers."""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ..core.cluster import dask_client
from ..storage.backends import process_backends
from ..storage.tier import local_tier
from .executor import Executor
from .plan import ReadPlan, plan_scan, plan_span
from .reader import Reader

if TYPE_CHECKING:
    from ..core.config import Settings
    from .reader import Snapshot

__all__ = ["process_reader", "read_partition", "to_dask", "reduce_chunks", "reduce_on_dask"]

_READERS: dict[str, Reader] = {}
_READERS_LOCK = threading.Lock()


def process_reader(settings: Settings) -> Reader:
    """This process's :class:`Reader` for ``settings`` (a Dask worker's: its chunk cache,
    bounded by ``settings.chunk_cache_bytes``, serves every task the worker runs)."""
    key = f"{settings!r} {sorted(settings.storage_options.items())!r}"
    with _READERS_LOCK:
        reader = _READERS.get(key)
        if reader is None:
            backends = process_backends(settings)
            reader = _READERS[key] = Reader(backends.state, backends.store, backends.catalog,
                                            settings.chunk_cache_bytes,
                                            max_maps=settings.max_mapped_chunks,
                                            tier=local_tier(settings))
        return reader


def read_partition(index: int, settings: Settings, dataset_id: str, version: int,
                   selected: list[str] | None, columns: Sequence[str] | str | None = None
                   ) -> pd.DataFrame:
    """Chunk ``index`` of version ``version`` of the dataset, as a DataFrame indexed by
    ``sn``: fetched through this process's reader (cached, its checksum verified, deletes
    applied), of ``columns`` (those a computation uses: dask's optimizer passes them), else
    of ``selected`` (those of ``to_dask(columns)``; None: all)."""
    reader = process_reader(settings)
    snap = reader.version_snapshot(dataset_id, version)
    cm = snap.chunks[index]
    cols = selected if columns is None else [columns] if isinstance(columns, str) else list(columns)
    return Executor(reader).span(plan_span(snap, cm.start, cm.start + cm.rows, cols))


def to_dask(settings: Settings, snap: Snapshot, meta: pd.DataFrame) -> Any:
    """A dask DataFrame of ``snap``: one partition per chunk (:func:`read_partition`),
    divisions at the chunks' first serial numbers; ``meta``, an empty frame of the columns
    read and their dtypes, also sets the columns each partition reads."""
    import dask.dataframe as dd

    m = snap.meta
    last = snap.chunks[-1]
    divisions = (*snap.starts.tolist(), last.start + last.rows - 1)
    return dd.from_map(read_partition, range(len(snap.chunks)),
                       args=[settings, m.id, m.version, list(meta.columns)], meta=meta,
                       divisions=divisions, label=f"chunkframe-{m.id}", enforce_metadata=False)


def reduce_chunks(settings: Settings, dataset_id: str, version: int, scan: dict[str, Any],
                  chunks: list[int], fn: Callable[[pa.Table], Any]) -> list[Any]:
    """Run on a Dask worker: ``fn`` of the rows ``plan_scan(**scan)`` keeps of each of
    ``chunks`` of version ``version`` of the dataset, in chunk order, read through this
    process's reader (cached, checksums verified) as :meth:`Executor.reduce` reads them."""
    reader = process_reader(settings)
    snap = reader.version_snapshot(dataset_id, version)
    plan = plan_scan(snap, **scan)
    mine = set(chunks)
    plan = dataclasses.replace(plan, steps=[s for s in plan.steps if s[0] in mine], skipped=[])
    return list(Executor(reader).reduce(plan, fn))


def reduce_on_dask(settings: Settings, plan: ReadPlan, scan: dict[str, Any],
                   fn: Callable[[pa.Table], Any], doing: str = "aggregating") -> list[Any]:
    """``fn`` of each chunk ``plan`` keeps, run on the workers of the active Dask cluster
    (:func:`reduce_chunks`, a few runs of consecutive chunks per worker), in chunk order:
    what :meth:`Executor.reduce` gives in this process. ``scan``: the arguments of the
    :func:`plan_scan` that made ``plan``, which each worker plans again against the same
    version. ``BackendUnavailableError`` without a ``distributed.Client``."""
    meta = plan.snap.meta
    client = dask_client(meta.id, doing)
    chunks = plan.chunks
    if not chunks:
        return []
    workers = max(len(client.scheduler_info().get("workers", {})), 1)
    size = max(1, math.ceil(len(chunks) / (4 * workers)))
    futures = [client.submit(reduce_chunks, settings, meta.id, meta.version, scan,
                             chunks[i:i + size], fn, pure=False)
               for i in range(0, len(chunks), size)]
    try:
        parts = client.gather(futures)
    finally:
        client.cancel(futures)  # a failure: nothing more is read
    return [_realigned(out) for part in parts for out in part]


def _realigned(value: Any) -> Any:
    """``value`` with each Arrow table in it (or in a tuple of it) copied into buffers of
    its own: those Dask unpickled may sit at any byte, and Arrow's group-by (Acero) warns
    about, and is slow on, buffers not aligned to their values' width."""
    if isinstance(value, pa.Table):
        return value.take(pa.array(np.arange(value.num_rows, dtype=np.int64)))
    if isinstance(value, tuple):
        return tuple(_realigned(v) for v in value)
    return value

