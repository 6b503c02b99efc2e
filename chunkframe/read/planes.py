"""Gather planes: each column of a snapshot as one array, filled chunk by chunk.

A batch read by serial number then costs one numpy gather per column, as ``df.iloc[list]``
costs pandas, instead of a gather per chunk and a scatter back into the order asked. A
plane is anonymous memory mapped for every row of the snapshot: pages of chunks never read
are never touched, and the pages of a chunk the cache evicts go back to the OS.
"""

from __future__ import annotations

import functools
import mmap
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .rows import TextCodes, Vector, is_text, wrap_vector

__all__ = ["Plane", "MaskedPlane", "TextPlane", "Planes", "plane_for"]


def _mapped(rows: int, dtype: np.dtype) -> tuple[mmap.mmap, np.ndarray]:
    """``rows`` values of ``dtype`` in private anonymous memory: untouched pages cost
    nothing and released ones are freed. Not huge pages: gathers were 20% faster on them,
    but faulting one in stalled a fill 6-12 ms (the kernel compacting memory), where 4 KB
    pages cost ~0.5 ms a chunk."""
    pages = mmap.mmap(-1, max(rows * dtype.itemsize, 1), flags=mmap.MAP_PRIVATE)
    return pages, np.frombuffer(pages, dtype, count=rows)


def _release_rows(pages: mmap.mmap, values: np.ndarray, start: int, stop: int,
                  in_use: Callable[[int, int], bool]) -> None:
    """Give the pages of rows ``[start, stop)`` of ``values`` back to the OS (they read as
    zeros until filled again), with the pages shared with rows outside that no one uses."""
    size = values.itemsize
    per_page = max(mmap.PAGESIZE // size, 1)
    lo, hi = start - start % per_page, min(-(-stop // per_page) * per_page, len(values))
    lo, hi = (start if in_use(lo, start) else lo), (stop if in_use(stop, hi) else hi)
    first = -(-lo * size // mmap.PAGESIZE) * mmap.PAGESIZE
    last = hi * size // mmap.PAGESIZE * mmap.PAGESIZE
    if last > first:
        pages.madvise(mmap.MADV_DONTNEED, first, last - first)


class Plane:
    """One column over every row of a snapshot, as the raw values batch reads gather."""

    def __init__(self, rows: int, dtype: Any, pandas_dtype: Any):
        self.dtype = np.dtype(dtype)
        self.pandas_dtype = pandas_dtype
        self._map, self.values = _mapped(rows, self.dtype)

    @property
    def row_bytes(self) -> int:
        return self.dtype.itemsize

    def put(self, start: int, vec: Vector, column: pa.ChunkedArray) -> bool:
        """Copy one chunk's vector (or ``column`` itself) in at row ``start``; False if it
        is of neither this plane's kind nor floats (whose nulls pandas holds as NaN)."""
        if isinstance(vec, np.ndarray) and vec.dtype == self.dtype:
            self.values[start:start + len(vec)] = vec
        elif self.dtype.kind == "f" and column.type == pa.from_numpy_dtype(self.dtype):
            self.values[start:start + len(column)] = column.to_numpy()
        else:
            return False
        return True

    def gather(self, sns: np.ndarray) -> Any:
        """Rows ``sns`` as a pandas array of the column's dtype."""
        return wrap_vector(self.values[sns], self.pandas_dtype)

    def release(self, start: int, stop: int, in_use: Callable[[int, int], bool]) -> None:
        """Free rows ``[start, stop)``; ``in_use(lo, hi)`` says if rows there are filled."""
        _release_rows(self._map, self.values, start, stop, in_use)


class MaskedPlane(Plane):
    """A nullable integer, float or boolean column (``Int64``, ``boolean``, ...): its
    values and its mask of missing ones, the two arrays pandas holds."""

    def __init__(self, rows: int, dtype: Any, pandas_dtype: Any):
        super().__init__(rows, dtype, pandas_dtype)
        self._mask_map, self.mask = _mapped(rows, np.dtype(bool))

    @property
    def row_bytes(self) -> int:
        return self.dtype.itemsize + 1

    def put(self, start: int, vec: Vector, column: pa.ChunkedArray) -> bool:
        if column.type != pa.from_numpy_dtype(self.dtype):
            return False
        stop = start + len(column)
        if column.null_count:
            self.mask[start:stop] = column.is_null().to_numpy()
            column = column.fill_null(False if self.dtype.kind == "b" else 0)
        else:
            self.mask[start:stop] = False
        self.values[start:stop] = column.to_numpy()
        return True

    def gather(self, sns: np.ndarray) -> Any:
        return self.pandas_dtype.construct_array_type()(self.values[sns], self.mask[sns])

    def release(self, start: int, stop: int, in_use: Callable[[int, int], bool]) -> None:
        super().release(start, stop, in_use)
        _release_rows(self._mask_map, self.mask, start, stop, in_use)


class TextPlane(Plane):
    """Low-cardinality text as int32 codes into one dictionary, which grows as chunks bring
    values it has not seen (codes already written stay valid)."""

    def __init__(self, rows: int, arrow_type: pa.DataType, pandas_dtype: Any):
        super().__init__(rows, np.int32, pandas_dtype)
        self._type = arrow_type
        self._codes: dict[Any, int] = {}
        self._lock = threading.Lock()
        self._dictionary: pa.Array | None = None  # made again on the first gather after growth
        self.grown = 0  # dictionary bytes added since the last Planes.mark

    def take_grown(self) -> int:
        """Dictionary bytes added since the last call."""
        with self._lock:
            grown, self.grown = self.grown, 0
        return grown

    def put(self, start: int, vec: Vector, column: pa.ChunkedArray) -> bool:
        if not isinstance(vec, TextCodes):
            return False
        with self._lock:
            codes, values = self._codes, vec.dictionary.to_pylist()
            new = [v for v in values if v not in codes]
            if new:
                for v in new:
                    codes[v] = len(codes)
                # the dictionary's Python and Arrow copies: charged to the chunk that grew it
                self.grown += sum(_TEXT_ENTRY_BYTES + (len(v) if v else 0) for v in new)
                self._dictionary = None
            mapping = np.fromiter((codes[v] for v in values), np.int32, count=len(values))
        self.values[start:start + len(vec.codes)] = mapping[vec.codes]
        return True

    def gather(self, sns: np.ndarray) -> Any:
        dictionary = self._dictionary
        if dictionary is None:
            with self._lock:  # grown only by appending: codes gathered stay valid in it
                if self._dictionary is None:
                    self._dictionary = pa.array(list(self._codes), type=self._type)
                dictionary = self._dictionary
        return pd.array(pc.take(dictionary, pa.array(self.values[sns])), dtype=self.pandas_dtype)


def plane_for(rows: int, field: pa.Field, dtype: Any) -> Plane | None:
    """The plane that holds column ``field`` (pandas ``dtype``) as batch reads gather it
    (see :func:`chunkframe.read.rows.column_vectors`), or None for columns Arrow must take and
    where the address space for one cannot be had (reads then gather chunk by chunk)."""
    try:
        return _plane_for(rows, field, dtype)
    except OSError:  # ENOMEM: too many rows to map at once under this machine's limits
        return None


def _plane_for(rows: int, field: pa.Field, dtype: Any) -> Plane | None:
    t = field.type
    if is_text(dtype, t):
        return TextPlane(rows, t, dtype)
    if isinstance(dtype, pd.CategoricalDtype) and pa.types.is_dictionary(t):
        return Plane(rows, t.index_type.to_pandas_dtype(), dtype)
    if isinstance(dtype, pd.DatetimeTZDtype) or (isinstance(dtype, np.dtype)
                                                 and dtype.kind in "mM"):
        return Plane(rows, np.int64, dtype)
    if isinstance(dtype, np.dtype) and dtype.kind in "fiub":
        return Plane(rows, dtype, dtype)
    if isinstance(dtype, pd.api.extensions.ExtensionDtype) and issubclass(
            dtype.construct_array_type(), _MASKED_ARRAYS):
        return MaskedPlane(rows, dtype.numpy_dtype, dtype)  # type: ignore[attr-defined]
    return None


# a dictionary entry's cost beyond its text: the dict slot, the Python str, the Arrow offset
_TEXT_ENTRY_BYTES = 120

_MASKED_ARRAYS = (pd.arrays.IntegerArray, pd.arrays.FloatingArray, pd.arrays.BooleanArray)


class Planes:
    """The gather planes of one snapshot: which chunks each column holds, and who reads.

    A read pins the planes before it checks what they hold and unpins them after its
    gathers. The pages of a chunk dropped meanwhile (evicted from the cache) are released
    only when no read is pinned, so a gather never sees pages taken from under it; rows of
    a chunk are only ever rewritten with the same values.
    """

    def __init__(self, starts: Sequence[int] | np.ndarray, rows: int, planes: list[Plane | None]):
        self.starts = np.append(np.asarray(starts, dtype=np.int64), rows)
        self.planes = planes
        self.filled = np.zeros((len(planes), len(starts)), dtype=bool)  # never for None
        self.tried = np.zeros(len(starts), dtype=bool)  # filled as far as the chunk allows
        self._readers = 0
        self._dropped: set[int] = set()
        self._lock = threading.Lock()

    def pin(self) -> None:
        with self._lock:
            self._readers += 1

    def unpin(self) -> None:
        with self._lock:
            self._readers -= 1
            if self._readers == 0 and self._dropped:
                for k in self._dropped:
                    if not self.tried[k]:  # not filled again since it was dropped
                        self._release(k)
                self._dropped.clear()

    def covering(self, chunks: np.ndarray) -> np.ndarray:
        """For each column, whether it holds every chunk of ``chunks`` (and a read may
        gather from it)."""
        return np.asarray(self.filled[:, chunks].all(axis=1))

    def gather(self, column: int, sns: np.ndarray) -> Any:
        """Rows ``sns`` of ``column`` (:meth:`covering` their chunks; caller pinned)."""
        return self.planes[column].gather(sns)  # type: ignore[union-attr]

    def fill(self, chunk: int, table: pa.Table, vectors: list[Vector]) -> list[int]:
        """Copy chunk ``chunk`` in (the caller is pinned): its batch-read ``vectors`` where
        it has them, else its ``table``'s columns; the columns written."""
        start = int(self.starts[chunk])
        return [j for j, (plane, vec) in enumerate(zip(self.planes, vectors, strict=True))
                if plane is not None and plane.put(start, vec, table.column(j))]

    def mark(self, chunk: int, columns: list[int]) -> int:
        """Record that :meth:`fill` wrote ``columns`` of ``chunk``; the bytes they take
        (with what the text dictionaries grew by)."""
        with self._lock:
            self.filled[columns, chunk] = True
            self.tried[chunk] = True
        rows = int(self.starts[chunk + 1] - self.starts[chunk])
        planes = [p for p in (self.planes[j] for j in columns) if p is not None]
        return rows * sum(p.row_bytes for p in planes) + sum(
            p.take_grown() for p in planes if isinstance(p, TextPlane))

    def chunk_bytes(self, chunk: int) -> int:
        """The bytes filling every plane with ``chunk`` would take (dictionaries aside)."""
        rows = int(self.starts[chunk + 1] - self.starts[chunk])
        return rows * sum(p.row_bytes for p in self.planes if p is not None)

    def drop(self, chunk: int) -> None:
        """Chunk ``chunk`` left the cache: forget it, and free its pages once nobody reads."""
        with self._lock:
            self.filled[:, chunk] = False
            self.tried[chunk] = False
            if self._readers:
                self._dropped.add(chunk)
            else:
                self._release(chunk)

    def empty(self) -> bool:
        return not self.tried.any()

    def _release(self, chunk: int) -> None:
        start, stop = int(self.starts[chunk]), int(self.starts[chunk + 1])
        for j, plane in enumerate(self.planes):
            if plane is not None:  # pages shared with a neighbour go if it is not filled
                plane.release(start, stop, functools.partial(self._filled_rows, j))

    def _filled_rows(self, column: int, lo: int, hi: int) -> bool:
        """Whether any row in ``[lo, hi)`` belongs to a chunk filled in ``column``."""
        if hi <= lo:
            return False
        first = int(np.searchsorted(self.starts, lo, side="right")) - 1
        last = int(np.searchsorted(self.starts, hi - 1, side="right")) - 1
        return bool(self.filled[column, first:last + 1].any())
