"""One dataset's reads: plans each call (plan.py) and runs it (executor.py); what `Dataset` delegates to."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa

from ..core.errors import SnapshotSupersededError
from ..core.model import ChunkMeta
from ..core.progress import progress_bar
from . import aggregate as _aggregate
from .executor import Executor
from .partitions import to_dask
from .plan import plan_point, plan_rows, plan_scan, plan_span
from .storage import storage_frame
from .stream import arrow_c_stream

if TYPE_CHECKING:
    from ..core.config import Settings
    from .reader import Reader, Snapshot

__all__ = ["ReadEngine", "BINDING_ATTR"]

F = TypeVar("F", bound=Callable[..., Any])

BINDING_ATTR = "chunkframe"
"""Key in ``DataFrame.attrs`` that binds a frame to its dataset (read by ``df.chunk``)."""


def _retry_superseded(method: F) -> F:
    """Plan and run a read again, once, if an overwrite replaced the generation it started on
    (or Redis's chunk table was rebuilt from the catalog under it)."""

    @functools.wraps(method)
    def wrapper(self: ReadEngine, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except SnapshotSupersededError:
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


class ReadEngine:
    """Every read of one dataset (its current version, or the version it is pinned to):
    each call is planned once against the snapshot (:mod:`chunkframe.read.plan`) and run by
    the :class:`~chunkframe.read.executor.Executor`. Frames it returns are bound to the
    dataset (``df.attrs[BINDING_ATTR]``) for the ``df.chunk`` accessor.

    Parameters
    ----------
    reader : Reader
        The client's reader: snapshots, the chunk cache and verified maps.
    dataset_id : str
    version : int, optional
        Read this version, as committed (None: the current one, followed as it changes).
    binding : dict, optional
        What frames carry in ``attrs[BINDING_ATTR]`` (None: frames are not bound).
    """

    def __init__(self, reader: Reader, dataset_id: str, version: int | None = None,
                 binding: dict[str, Any] | None = None):
        self.reader = reader
        self.executor = Executor(reader)
        self.id = dataset_id
        self.version = version
        self._binding = binding

    def snapshot(self) -> Snapshot:
        """The snapshot reads plan against (re-checked at most every STALENESS_SECONDS)."""
        if self.version is not None:
            return self.reader.version_snapshot(self.id, self.version)
        return self.reader.snapshot(self.id)

    def bind(self, df: pd.DataFrame) -> pd.DataFrame:
        """``df`` itself, bound to the dataset."""
        if self._binding is not None:
            df.attrs[BINDING_ATTR] = dict(self._binding)
        return df

    # -- metadata -------------------------------------------------------------------------
    def chunk_frame(self) -> pd.DataFrame:
        """The chunk table: chunk, start, rows, key, checksum, bytes."""
        snap = self.snapshot()
        return pd.DataFrame(
            [(c.chunk, c.start, c.rows, c.key, c.checksum, c.nbytes) for c in snap.chunks],
            columns=["chunk", "start", "rows", "key", "checksum", "bytes"],
        )

    def chunk_metas(self) -> tuple[ChunkMeta, ...]:
        return tuple(self.snapshot().chunks)

    # -- reads ----------------------------------------------------------------------------
    @_retry_superseded
    def get(self, sn: Any, column: str | None = None) -> Any:
        return self.executor.point(plan_point(self.snapshot(), sn, column))

    @_retry_superseded
    def row(self, sn: Any) -> dict[str, Any]:
        return self.executor.values(plan_point(self.snapshot(), sn))

    @_retry_superseded
    def get_many(self, sns: Sequence[int] | np.ndarray,
                 columns: Sequence[str] | str | None = None) -> pd.DataFrame:
        return self.bind(self.executor.rows(plan_rows(self.snapshot(), sns, columns)))

    @_retry_superseded
    def slice(self, start: int | None = None, stop: int | None = None,
              columns: Sequence[str] | str | None = None) -> pd.DataFrame:
        return self.bind(self.executor.span(plan_span(self.snapshot(), start, stop, columns)))

    def iter_chunks(self, columns: Sequence[str] | str | None = None, *, date_range: Any = None,
                    where: Any = None, device: Any = None) -> Iterator[pd.DataFrame]:
        plan = plan_scan(self.snapshot(), columns, date_range=date_range, where=where,
                         device=device)
        return (self.bind(df) for df in self.executor.frames(plan))

    @_retry_superseded
    def to_pandas(self, columns: Sequence[str] | str | None = None, *, date_range: Any = None,
                  where: Any = None, device: Any = None) -> pd.DataFrame:
        plan = plan_scan(self.snapshot(), columns, date_range=date_range, where=where,
                         device=device)
        return self.bind(self.executor.frame(plan))

    @_retry_superseded
    def to_arrow(self, columns: Sequence[str] | str | None = None, *, date_range: Any = None,
                 where: Any = None, device: Any = None) -> pa.Table:
        plan = plan_scan(self.snapshot(), columns, date_range=date_range, where=where,
                         device=device)
        return self.executor.table(plan)

    def to_batches(self, columns: Sequence[str] | str | None = None, *, date_range: Any = None,
                   where: Any = None, device: Any = None) -> pa.RecordBatchReader:
        plan = plan_scan(self.snapshot(), columns, date_range=date_range, where=where,
                         device=device)
        return self.executor.batches(plan)

    @_retry_superseded
    def resample(self, rule: Any, columns: Sequence[str] | str | None = None, agg: Any = "mean",
                 *, device: Any = None, date_range: Any = None, closed: Any = None,
                 label: Any = None, origin: Any = "start_day", offset: Any = None,
                 engine: Any = None, settings: Settings | None = None) -> pd.DataFrame:
        return _aggregate.resample(self.executor, self.snapshot(), rule, columns, agg,
                                   device=device, date_range=date_range, closed=closed,
                                   label=label, origin=origin, offset=offset, engine=engine,
                                   settings=settings)

    @_retry_superseded
    def aggregate(self, by: str | Sequence[str], agg: Any, *, date_range: Any = None,
                  where: Any = None, engine: Any = None, settings: Settings | None = None
                  ) -> pd.DataFrame:
        return _aggregate.aggregate(self.executor, self.snapshot(), by, agg,
                                    date_range=date_range, where=where, engine=engine,
                                    settings=settings)

    @property
    def schema(self) -> pa.Schema:
        """The schema reads plan against (with the ingested frame's pandas metadata)."""
        return self.snapshot().schema

    def arrow_c_stream(self, requested_schema: Any = None) -> Any:
        """The Arrow PyCapsule stream of :meth:`to_batches` (see :mod:`.stream`)."""
        return arrow_c_stream(self, requested_schema)

    def to_dask(self, settings: Settings, columns: Sequence[str] | str | None = None) -> Any:
        snap = self.snapshot()
        meta = self.executor.empty_frame(snap, snap.columns_of(columns))
        return to_dask(settings, snap, meta)

    # -- integrity and bookkeeping ---------------------------------------------------------
    def verify(self, progress: bool | None = None) -> pd.DataFrame:
        """One row (chunk, key, problem) per bad chunk, every chunk read from the store again."""
        snap = self.snapshot()
        bar = progress_bar(len(snap.chunks), f"verify {self.id}", progress, unit="chunks")
        try:
            bad = self.executor.verify(snap, bar.update)
        finally:
            bar.close()
        return pd.DataFrame(bad, columns=["chunk", "key", "problem"])

    def storage(self, progress: bool | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
        """Bytes per column of the version read, and its totals (see
        :func:`~chunkframe.read.storage.storage_frame`): every chunk file is read."""
        snap = self.snapshot()
        bar = progress_bar(len(snap.chunks), f"storage {self.id}", progress, unit="chunks")
        try:
            return storage_frame(self.reader.store, self.reader.catalog, snap, bar.update)
        finally:
            bar.close()

    def cache_info(self) -> dict[str, Any]:
        return self.reader.cache_info(self.id)
