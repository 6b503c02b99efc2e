"""What a dataset handle reads, as a Protocol: the local ``Dataset`` and the remote one both are it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from .model import ChunkMeta, DatasetMeta

__all__ = ["DatasetLike", "ContextLike"]


@runtime_checkable
class ContextLike(Protocol):
    """The tags of an id, read and written as ``ds.context`` gives them (local or remote)."""

    def __getitem__(self, key: str) -> Any: ...

    def get(self, key: str, default: Any = None, *, type: Any = None) -> Any: ...

    def value(self, key: str, *, type: Any = None) -> Any: ...

    def put(self, key: str, value: Any, type: Any = "METADATA",
            keywords: Any = None) -> None: ...

    def remove(self, key: str, type: Any = None) -> None: ...

    def search(self, keyword: str, type: Any = None) -> pd.DataFrame: ...


@runtime_checkable
class DatasetLike(Protocol):
    """The read API of a dataset handle: :class:`chunkframe.Dataset` (local) and
    :class:`chunkframe.service.RemoteDataset` (through ``chunkframe serve``) both satisfy it.

    ``display/``, ``service/`` and the CLI's read commands take a ``DatasetLike``, never the
    local class, so that what they do works on either; tests/test_conformance.py runs the
    same calls on both and checks the same answers.

    Examples
    --------
    >>> from chunkframe.core.protocols import DatasetLike
    >>> def rows(ds: DatasetLike) -> int:
    ...     return len(ds)
    """

    id: str

    # -- metadata -------------------------------------------------------------------------
    @property
    def meta(self) -> DatasetMeta: ...

    @property
    def schema(self) -> pa.Schema: ...

    @property
    def columns(self) -> list[str]: ...

    @property
    def version(self) -> int: ...

    @property
    def read_only(self) -> bool: ...

    @property
    def chunk_metas(self) -> tuple[ChunkMeta, ...]: ...

    @property
    def chunks(self) -> pd.DataFrame: ...

    def __len__(self) -> int: ...

    def versions(self) -> pd.DataFrame: ...

    def cache_info(self) -> dict[str, Any]: ...

    # -- reads ----------------------------------------------------------------------------
    def get(self, sn: int, column: str | None = None) -> Any: ...

    def row(self, sn: int) -> dict[str, Any]: ...

    def get_many(self, sns: Sequence[int] | np.ndarray,
                 columns: Sequence[str] | None = None) -> pd.DataFrame: ...

    def slice(self, start: int | None = None, stop: int | None = None,
              columns: Sequence[str] | None = None) -> pd.DataFrame: ...

    def iter_chunks(self, columns: Sequence[str] | str | None = None, *,
                    date_range: Any = None, where: Any = None,
                  device: Any = None) -> Iterator[pd.DataFrame]: ...

    def to_pandas(self, columns: Sequence[str] | str | None = None, *,
                  date_range: Any = None, where: Any = None,
                  device: Any = None) -> pd.DataFrame: ...

    def to_arrow(self, columns: Sequence[str] | str | None = None, *,
                 date_range: Any = None, where: Any = None,
                  device: Any = None) -> pa.Table: ...

    def to_batches(self, columns: Sequence[str] | str | None = None, *,
                   date_range: Any = None, where: Any = None,
                  device: Any = None) -> pa.RecordBatchReader: ...

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object: ...

    def last(self, device: Any = None,
             columns: Sequence[str] | str | None = None) -> pd.DataFrame: ...

    # -- context --------------------------------------------------------------------------
    @property
    def context(self) -> ContextLike: ...

    def tag(self, key: str, value: Any, type: str = "METADATA",
            keywords: Sequence[str] | None = None) -> None: ...

    def tags(self, type: str | None = None) -> pd.DataFrame: ...

    def find(self, keyword: str, type: str | None = None) -> pd.DataFrame: ...
