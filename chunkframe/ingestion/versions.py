"""Versions of a dataset: when each was made, and pruning the old ones (files and record)."""

from __future__ import annotations

import datetime as dt
import time
import warnings
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from ..core.errors import (
    BackendUnavailableError,
    Call,
    DatasetNotFoundError,
    Hint,
    InvalidArgumentError,
    StateCorruptionError,
)
from ..core.integers import integer_at_least
from ..core.keys import generation_prefix, validate_id
from ..core.times import time_bound

if TYPE_CHECKING:
    from ..storage.backends import Backends

__all__ = ["COMMITTED_AT", "VERSION_COLUMNS", "commit_time", "list_versions", "prune_versions",
           "drop_generation", "in_flight"]

COMMITTED_AT = pa.field("committed_at", pa.timestamp("ns", "UTC"))
"""How times of versions are read: instants in UTC (a naive time is UTC)."""

VERSION_COLUMNS = ["version", "kind", "rows", "committed_at"]
"""The columns of ``ds.versions()``."""


def list_versions(backends: Backends, dataset_id: str) -> pd.DataFrame:
    """The dataset's recorded versions (:data:`VERSION_COLUMNS`), oldest first. While the
    catalog cannot be reached: the current version only, as Redis published it (its ``kind``
    unknown), with a warning saying so; an error if Redis has none either."""
    try:
        return backends.catalog.versions(dataset_id)[VERSION_COLUMNS]
    except BackendUnavailableError as exc:
        try:
            meta = backends.state.meta(dataset_id)
        except StateCorruptionError:
            meta = None
        if meta is None:
            raise
        warnings.warn(f"{exc}; listing only the current version of {dataset_id!r}, as Redis "
                      "holds it (earlier versions are known to the catalog alone)",
                      RuntimeWarning, stacklevel=3)
        return pd.DataFrame({
            "version": [meta.version], "kind": pd.array([None], dtype="str"),
            "rows": [meta.rows],
            "committed_at": pd.to_datetime([meta.updated], unit="s", utc=True).as_unit("ns")})


def commit_time(value: Any, what: str, dataset_id: str) -> int:
    """``value`` (a Timestamp, datetime, ISO string; naive means UTC) as nanoseconds since
    the epoch, as versions' commit times are kept; a ``timedelta`` counts back from now."""
    if isinstance(value, dt.timedelta | pd.Timedelta):
        return time.time_ns() - pd.Timedelta(value).value
    ns = time_bound(value, COMMITTED_AT, what, dataset_id)
    if ns is None:
        raise InvalidArgumentError(f"{what}=None is not a time; give a datetime or an ISO string")
    return ns


def prune_versions(backends: Backends, dataset_id: str, keep_last: int = 1,
                   older_than: Any = None, wait: bool | float = False) -> pd.DataFrame:
    """Forget the dataset's versions but the last ``keep_last`` (and, with ``older_than``,
    those committed since, and those a named snapshot references), and delete the chunk
    files of generations that no remaining version reads. Under the dataset's write lock;
    the catalog refuses a superseded writer.

    Returns the pruned versions (``version, kind, rows, committed_at``).
    """
    validate_id(dataset_id)
    keep_last = integer_at_least(keep_last, "keep_last", 1, "the current version is always kept")
    cutoff = None if older_than is None else commit_time(older_than, "older_than", dataset_id)
    lock = backends.lock(dataset_id, wait)
    try:
        if backends.catalog.get(dataset_id) is None:
            raise DatasetNotFoundError(
                f"cannot prune the versions of dataset {dataset_id!r}: it does not exist",
                hint=Hint("list the datasets with {}", Call.of("datasets")))
        table = backends.catalog.versions(dataset_id)
        old = table.iloc[:max(len(table) - keep_last, 0)]
        if cutoff is not None:
            old = old[old["committed_at"] < pd.Timestamp(cutoff, unit="ns", tz="UTC")]
        named = backends.catalog.snapshot_versions(dataset_id)  # kept while snapshots name them
        old = old[~old["version"].isin(list(named))]
        lock.check()
        everywhere = f"{dataset_id}/"
        before = backends.catalog.referenced(dataset_id, everywhere) if len(old) else set()
        gone = backends.catalog.prune(dataset_id, old["version"].tolist(), lock.fence)
        for generation in gone:  # after the commit: a crash here leaves orphans that
            drop_generation(backends, dataset_id, generation)  # the recoverer finds
        if gone:  # files of older generations that only the pruned ones still shared
            after = backends.catalog.referenced(dataset_id, everywhere)
            busy = in_flight(backends, dataset_id)
            for key in sorted(before - after - busy):
                backends.store.delete(key)
    finally:
        lock.release()
    return old[VERSION_COLUMNS].reset_index(drop=True)


def in_flight(backends: Backends, dataset_id: str) -> set[str]:
    """The files the checkpoints of an ingest under way or interrupted name (an overwrite
    or append resumed later commits them, shared files of kept versions included)."""
    status = backends.state.ingest_status(dataset_id)
    try:
        generation = int(status["generation"]) if status else None
    except (KeyError, ValueError):
        return set()
    if generation is None:
        return set()
    return {m.key for m in backends.state.chunk_metas(dataset_id, generation).values()}


def drop_generation(backends: Backends, dataset_id: str, generation: int) -> None:
    """Delete the files of a generation no version reads, but those a later generation
    still names (a compaction, an upsert or an overwrite shares the files of the chunks it
    did not change) and those an interrupted ingest's checkpoints name."""
    prefix = generation_prefix(dataset_id, generation)
    shared = backends.catalog.referenced(dataset_id, prefix + "/")
    busy = {k for k in in_flight(backends, dataset_id) if k.startswith(prefix + "/")}
    if not shared and not busy:
        backends.store.delete_prefix(prefix)
        return
    for key in backends.store.list(prefix):
        if key not in shared and key not in busy:
            backends.store.delete(key)
