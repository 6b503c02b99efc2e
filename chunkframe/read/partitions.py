"""Dask partitions of a dataset: one per chunk, read and checksum-verified on the workers."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..storage.backends import process_backends
from ..storage.tier import local_tier
from .executor import Executor
from .plan import plan_span
from .reader import Reader

if TYPE_CHECKING:
    from ..core.config import Settings
    from .reader import Snapshot

__all__ = ["process_reader", "read_partition", "to_dask"]

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
