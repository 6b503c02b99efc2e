"""The read planner: what one read touches, decided once from a snapshot, before any fetch."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from ..core.integers import as_integer
from ..core.ranges import RowFilter, make_filter
from .reader import Snapshot

__all__ = ["ReadPlan", "ChunkGroups", "plan_point", "plan_rows", "plan_span", "plan_scan",
           "positions", "out_of_range", "group_by_chunk", "chunk_slices"]

Kind = Literal["point", "rows", "span", "scan"]

_NO_FILTER = RowFilter()
_INT64 = np.iinfo(np.int64)


@dataclass(frozen=True)
class ChunkGroups:
    """Serial numbers of a batch read grouped by chunk, so each chunk is gathered once."""

    chunks: list[int]  # the chunks touched, ascending
    spans: list[tuple[int, int]]  # each touched chunk's [lo, hi) in ``local``
    local: np.ndarray  # the rows asked, in chunk order, as rows of their chunk
    back: np.ndarray | None  # the position asked of each row in chunk order; None if sorted


@dataclass(frozen=True)
class ReadPlan:
    """One read, planned: the snapshot, the chunks to touch and the rows wanted in each,
    the columns asked and those to decode, and the row filter.

    The :class:`~chunkframe.read.executor.Executor` runs it (fetch, verify, decode, gather).
    A plan never fetches anything: building one checks the arguments (serial numbers,
    columns, filters) against the snapshot, so a bad read fails before any I/O.

    Attributes
    ----------
    kind : {"point", "rows", "span", "scan"}
        One row (``get``), rows by serial number (``get_many``), a range of rows
        (``slice``), or a filtered scan (``iter_chunks``, ``to_pandas``, export...).
    snap : Snapshot
        The version read.
    steps : list of (chunk, first row, row count)
        The chunks to touch, in serial-number order, and the rows wanted of each (a span or
        scan; a point read's one row). Chunks a filter rules out are in ``skipped`` instead.
    columns : list of str, optional
        The columns asked, in order (a column may come twice); None: all.
    decode : list of int, optional
        Positions of the columns to decode: those asked and those the filter reads.
    filter : RowFilter
        Inactive unless the read has ``date_range``, ``where`` or ``device``.
    sns : numpy.ndarray, optional
        A row read's serial numbers, validated (negative ones resolved).
    chunk_of : numpy.ndarray, optional
        The chunk of each of ``sns``.
    """

    kind: Kind
    snap: Snapshot
    steps: list[tuple[int, int, int]]
    columns: list[str] | None = None
    decode: list[int] | None = None
    filter: RowFilter = _NO_FILTER
    sns: np.ndarray | None = None
    chunk_of: np.ndarray | None = None
    skipped: list[tuple[int, int, int]] = field(default_factory=list)
    span: tuple[int, int] = (0, 0)

    @property
    def chunks(self) -> list[int]:
        """The chunks the read touches, in order."""
        return [i for i, _, _ in self.steps]

    @property
    def wanted(self) -> list[int]:
        """Positions of the columns asked, in the order asked (all if none were)."""
        names = self.snap.schema.names
        if self.columns is None:
            return list(range(len(names)))
        return [names.index(c) for c in self.columns]

    @property
    def schema(self) -> pa.Schema:
        """The schema of what the read returns, with the dataset's pandas metadata."""
        snap = self.snap
        if self.columns is None:
            return snap.schema
        return pa.schema([snap.schema.field(c) for c in self.columns],
                         metadata=snap.schema.metadata)

    def groups(self) -> ChunkGroups:
        """A row read's serial numbers grouped by chunk (:func:`group_by_chunk`)."""
        if self.sns is None:
            raise ValueError(f"a {self.kind} read has no serial numbers to group; only row "
                             "reads (plan_rows) do")
        return group_by_chunk(self.snap, self.sns, self.chunk_of)


def _decoded(snap: Snapshot, cols: list[str] | None, flt: RowFilter = _NO_FILTER
             ) -> list[int] | None:
    names = snap.schema.names
    if cols is None:
        return None
    return sorted({names.index(c) for c in {*cols, *flt.columns}})


def plan_point(snap: Snapshot, sn: Any, column: str | None = None) -> ReadPlan:
    """Row ``sn`` (negative counts from the end), or its value of ``column``.

    Raises ``TypeError`` for a serial number that is not an integer, ``IndexError`` (naming
    the valid range) for one out of range, ``KeyError`` for an unknown column.
    """
    number = as_integer(sn)
    if number is None:
        raise TypeError(f"serial number must be an integer, got {type(sn).__name__} {sn!r}")
    n = snap.meta.rows
    pos = number + n if number < 0 else number
    if not 0 <= pos < n:
        raise IndexError(out_of_range(snap, number))
    cols = None if column is None else [snap.schema.names[snap.column_index(column)]]
    i = snap.locate(pos)
    return ReadPlan("point", snap, [(i, pos - snap.chunks.start_of(i), 1)], cols,
                    _decoded(snap, cols), span=(pos, pos + 1))


def plan_rows(snap: Snapshot, sns: Sequence[int] | np.ndarray,
              columns: Sequence[str] | str | None = None) -> ReadPlan:
    """Rows ``sns`` (any order, duplicates allowed, negative ones from the end).

    Raises ``TypeError`` (not integers), ``ValueError`` (not flat), ``IndexError`` (out of
    range) and ``KeyError`` (an unknown column), before anything is read.
    """
    cols = snap.columns_of(columns)
    arr = positions(snap, sns)
    chunk_of = snap.locate_many(arr) if arr.size else np.empty(0, dtype=np.int64)
    touched = np.flatnonzero(np.bincount(chunk_of, minlength=len(snap.chunks))).tolist() \
        if arr.size else []
    return ReadPlan("rows", snap, [(i, 0, snap.chunks[i].rows) for i in touched], cols,
                    _decoded(snap, cols), sns=arr, chunk_of=chunk_of)


def plan_span(snap: Snapshot, start: int | None = None, stop: int | None = None,
              columns: Sequence[str] | str | None = None) -> ReadPlan:
    """Rows ``[start, stop)`` as ``iloc`` reads them (negative and open bounds)."""
    cols = snap.columns_of(columns)
    for what, bound in (("start", start), ("stop", stop)):
        if bound is not None and as_integer(bound) is None:
            raise TypeError(f"{what} must be an integer serial number or None, got {bound!r}")
    lo, hi, _ = slice(None if start is None else int(start),
                      None if stop is None else int(stop)).indices(snap.meta.rows)
    hi = max(hi, lo)
    return ReadPlan("span", snap, list(chunk_slices(snap, lo, hi)), cols, _decoded(snap, cols),
                    span=(lo, hi))


def plan_scan(snap: Snapshot, columns: Sequence[str] | str | None = None, *,
              date_range: Any = None, where: Any = None, device: Any = None,
              start: int | None = None, stop: int | None = None) -> ReadPlan:
    """The rows ``date_range``, ``where`` and ``device`` keep, of rows ``[start, stop)``.

    Chunks whose statistics rule the filter out go to ``skipped``: the executor never
    fetches them. Raises ``KeyError`` for an unknown column and ``InvalidArgumentError`` for
    a bad filter, before anything is read.
    """
    cols = snap.columns_of(columns)
    flt = make_filter(snap.meta, snap.schema, device=device, date_range=date_range, where=where)
    span = plan_span(snap, start, stop)
    steps: list[tuple[int, int, int]] = []
    skipped: list[tuple[int, int, int]] = []
    for step in span.steps:
        (steps if flt.may_match(snap.chunks[step[0]]) else skipped).append(step)
    return ReadPlan("scan", snap, steps, cols, _decoded(snap, cols, flt), flt, skipped=skipped,
                    span=span.span)


def out_of_range(snap: Snapshot, sn: int) -> str:
    """What to say of serial number ``sn`` outside ``snap`` (the message of the IndexError)."""
    n = snap.meta.rows
    return (f"serial number {sn} is out of range for dataset {snap.meta.id!r}: valid serial "
            f"numbers are 0 to {n - 1} (or -{n} to -1, counting from the end)")


def positions(snap: Snapshot, sns: Sequence[int] | np.ndarray) -> np.ndarray:
    """Validate serial numbers against ``snap`` and return them as an int64 array."""
    arr = np.asarray(sns)
    if arr.ndim > 1:
        raise ValueError(f"serial numbers must be a flat sequence, got an array of shape "
                         f"{arr.shape}")
    n = snap.meta.rows
    if arr.dtype == object and arr.size and all(as_integer(v) is not None for v in arr.ravel()):
        # Python ints beyond int64: out of range like any other, never wrapped
        bad = next((int(v) for v in arr.ravel() if not _INT64.min <= int(v) <= _INT64.max),
                   None)
        if bad is not None:
            raise IndexError(out_of_range(snap, bad))
        arr = arr.astype(np.int64)
    if arr.dtype == bool or (arr.size and arr.dtype.kind not in "iu"):
        raise TypeError(f"serial numbers must be integers, got an array of {arr.dtype}")
    if arr.dtype.kind == "u" and arr.size and int(arr.max()) > _INT64.max:
        raise IndexError(out_of_range(snap, int(arr.max())))  # uint64 would wrap negative
    arr = arr.astype(np.int64, copy=False).ravel()
    if arr.size and (arr.min() < -n or arr.max() >= n):
        raise IndexError(out_of_range(snap, int(arr[(arr < -n) | (arr >= n)][0])))
    if arr.size and arr.min() < 0:  # negative counts from the end, as with iloc
        arr = np.where(arr < 0, arr + n, arr)
    return arr


def group_by_chunk(snap: Snapshot, sns: np.ndarray, idx: np.ndarray | None = None
                   ) -> ChunkGroups:
    """Group validated serial numbers (:func:`positions`) by the chunk holding them
    (``idx``: their chunks, if known)."""
    if idx is None:
        idx = snap.locate_many(sns)
    # chunk numbers as small unsigned ints: numpy then radix-sorts in O(n), one pass per byte
    n = len(snap.chunks)
    order = np.argsort(idx.astype(np.uint8 if n <= 256 else np.uint16) if n <= 65_536 else idx,
                       kind="stable")
    counts = np.bincount(idx, minlength=n)
    touched = np.flatnonzero(counts)
    bounds = np.zeros(len(touched) + 1, dtype=np.int64)
    np.cumsum(counts[touched], out=bounds[1:])
    return ChunkGroups(
        chunks=touched.tolist(),
        spans=list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)),
        local=(sns - snap.starts[idx])[order],
        back=None if (order[1:] > order[:-1]).all() else order,
    )


def chunk_slices(snap: Snapshot, start: int, stop: int) -> Iterator[tuple[int, int, int]]:
    """(chunk index, first row in chunk, row count) covering rows [start, stop)."""
    if start >= stop:
        return
    i = snap.locate(start)
    while i < len(snap.chunks) and snap.chunks[i].start < stop:
        cm = snap.chunks[i]
        lo = max(start, cm.start) - cm.start
        hi = min(stop, cm.start + cm.rows) - cm.start
        yield i, lo, hi - lo
        i += 1
