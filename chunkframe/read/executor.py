"""The read executor: runs a :class:`~chunkframe.read.plan.ReadPlan` — fetch, verify, decode, gather."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd
import pyarrow as pa

from ..core.ranges import SN_COLUMN
from .plan import ChunkGroups, ReadPlan
from .reader import FETCH_THREADS, READ_AHEAD, Snapshot
from .rows import RowTemplate, is_text, wrap_vector

if TYPE_CHECKING:
    from .reader import Reader

__all__ = ["Executor", "Piece"]


@dataclass(frozen=True)
class Piece:
    """What a scan keeps of one chunk: its rows that pass the filter, the columns asked,
    and (when asked for) their serial numbers."""

    chunk: int
    table: pa.Table
    sns: np.ndarray | None


class Executor:
    """Runs read plans against one :class:`~chunkframe.read.reader.Reader` (its caches,
    verified maps and fetch pool). Holds no state of its own: one per reader is enough,
    and making one costs nothing.

    Examples
    --------
    >>> from chunkframe.read.plan import plan_rows            # doctest: +SKIP
    >>> Executor(client.reader).rows(plan_rows(snap, [5, 1]))  # doctest: +SKIP
    """

    def __init__(self, reader: Reader):
        self.reader = reader

    # -- by serial number -----------------------------------------------------------------
    def point(self, plan: ReadPlan) -> Any:
        """A point plan's row as a Series equal to ``df.iloc[sn]``, or its one value."""
        _check(plan, "point")
        reader, snap = self.reader, plan.snap
        (i, local, _), = plan.steps
        if plan.columns is not None:  # one column's getter, not the row's
            return reader.value_getter(snap, i, snap.column_index(plan.columns[0]))(local)
        entry, getters = reader.getters(snap, i)
        template = reader.template(snap, entry)
        pos = plan.span[0]
        if template.fast:
            return template.series([g(local) for g in getters], pos)
        row = entry.table.slice(local, 1).to_pandas().iloc[0]
        row.name = pos
        return row

    def values(self, plan: ReadPlan) -> dict[str, Any]:
        """A point plan's row as ``{column: value}``, each value as ``point`` gives it for
        that column alone: no Series is built (a server's JSON rows)."""
        _check(plan, "point")
        snap = plan.snap
        (i, local, _), = plan.steps
        getters = self.reader.getters(snap, i)[1]
        return {name: g(local) for name, g in zip(snap.schema.names, getters, strict=True)}

    def rows(self, plan: ReadPlan) -> pd.DataFrame:
        """A row plan's rows as a DataFrame indexed by ``sn``, in the order asked.

        Chunks the cache holds and batch reads come back to are gathered through their
        planes (one numpy gather per column); the others are fetched in parallel (or served
        from their verified maps) and gathered from as they arrive, kept only when the
        cache can hold them all, so a batch larger than the cache streams instead of
        thrashing it.
        """
        _check(plan, "rows")
        reader, snap = self.reader, plan.snap
        arr, chunk_of = plan.sns, plan.chunk_of
        assert arr is not None and chunk_of is not None
        wanted = plan.wanted
        if arr.size == 0:
            return self._frame(self.empty(snap), plan.columns,
                               pd.Index([], dtype="int64", name="sn"))
        touched = np.asarray(plan.chunks, dtype=np.int64)
        template = reader.template(snap) if snap.template is not None else reader.template(
            snap, reader.chunk(snap, int(touched[0])))
        data: dict[int, Any] = {}
        planes = reader.planes(snap, touched)
        if planes is not None:
            try:
                covered = planes.covering(touched)
                for j in wanted:
                    if covered[j] and j not in data:
                        data[j] = planes.gather(j, arr)
            finally:
                planes.unpin()
        rest = [j for j in dict.fromkeys(wanted) if j not in data]
        if rest:
            data.update(self._gather_by_chunk(plan, template, rest))
        columns = template.columns if plan.columns is None else template.columns[wanted]
        values = [data[j] for j in wanted]  # a column asked twice comes twice
        return _assemble(columns, values, pd.Index(arr, name="sn"))

    def _gather_by_chunk(self, plan: ReadPlan, template: RowTemplate, wanted: list[int]
                         ) -> dict[int, Any]:
        """Columns ``wanted`` of the plan's rows, chunk by chunk.

        When the cache can hold the chunks asked, they are cached and numpy gathers from
        views of them (Arrow takes what numpy cannot); otherwise each chunk is fetched in
        parallel, only its rows asked are taken as it arrives, and it is dropped.
        """
        reader, snap = self.reader, plan.snap
        groups = plan.groups()
        if not reader.fits(snap, np.asarray(groups.chunks)):  # taken as they arrive, in the pool
            taken = reader.stream(snap, groups.chunks, wanted,
                                  then=_rows_taker(snap, wanted, groups))
            return _take(snap, template, (rows for _, rows in taken), wanted, groups)
        entries = [entry for _, entry in reader.stream(snap, groups.chunks, cache=True)]
        vectors = [reader.vectors(snap, i, e, wanted)
                   for i, e in zip(groups.chunks, entries, strict=True)]
        locs = [groups.local[lo:hi] for lo, hi in groups.spans]
        out: dict[int, Any] = {}
        for j in wanted:
            vecs = [v[j] for v in vectors]
            if all(isinstance(v, np.ndarray) for v in vecs):
                arrays = cast(list[np.ndarray], vecs)
                gathered = np.concatenate([v[loc] for v, loc in zip(arrays, locs, strict=True)])
                out[j] = wrap_vector(_unsort(gathered, groups.back), template.dtypes[j])
        rest = [j for j in wanted if j not in out]
        if rest:
            take = _rows_taker(snap, rest, groups)
            pieces = (take(i, e) for i, e in zip(groups.chunks, entries, strict=True))
            out.update(_take(snap, template, pieces, rest, groups))
        return out

    def span(self, plan: ReadPlan) -> pd.DataFrame:
        """A span plan's rows ``[lo, hi)`` as a DataFrame indexed by ``sn``."""
        _check(plan, "span")
        reader, snap = self.reader, plan.snap
        steps = {i: (off, n) for i, off, n in plan.steps}
        cache = reader.fits(snap, np.fromiter(steps, dtype=np.int64, count=len(steps)))
        parts = [entry.table.slice(*steps[i])
                 for i, entry in reader.stream(snap, list(steps), plan.decode, cache)]
        table = pa.concat_tables(parts) if parts else self.empty(snap)
        return self._frame(table, plan.columns, pd.RangeIndex(*plan.span, name="sn"))

    # -- scans ----------------------------------------------------------------------------
    def pieces(self, plan: ReadPlan, *, sns: bool = False, ahead: int = READ_AHEAD,
               progress: Callable[[int], None] | None = None) -> Iterator[Piece]:
        """A scan plan's rows, chunk by chunk, in serial-number order.

        Chunks the plan skipped are counted in ``reader.skipped`` and not fetched; the
        others stream through :meth:`Reader.stream`, ``ahead`` of the consumer, uncached,
        decoding only the plan's columns (those asked and those the filter reads, dropped
        after filtering). Each chunk is filtered in the fetch pool as it arrives, only its
        columns asked. Deletes apply before the filter. ``sns``: give each piece its serial
        numbers. ``progress(rows)`` is told of each step's rows once it is done with.
        """
        _check(plan, "scan")
        reader, snap, flt = self.reader, plan.snap, plan.filter
        reader.skipped += len(plan.skipped)
        if progress is not None:
            for _, _, n in plan.skipped:
                progress(n)
        cols = plan.columns
        steps = {i: (off, n) for i, off, n in plan.steps}

        def piece(i: int, entry: Any) -> Piece:
            """Chunk ``i``'s piece, made in the fetch pool: Arrow's kernels release the GIL,
            so the filters of chunks fetched in parallel run in parallel too."""
            table = entry.table
            del entry
            off, n = steps[i]
            if off or n != table.num_rows:
                table = table.slice(off, n)
            first = snap.chunks[i].start + off
            numbers = np.arange(first, first + n, dtype=np.int64) if sns else None
            if flt.active:
                keep = None if cols is None else [*cols, *([SN_COLUMN] if sns else [])]
                if numbers is not None:
                    table = table.append_column(SN_COLUMN, pa.array(numbers))
                table = flt.apply(table, snap.chunks[i], keep)
                if numbers is not None:
                    numbers = table.column(SN_COLUMN).to_numpy()
                    table = table.drop_columns([SN_COLUMN])
            if cols is not None and table.schema.names != cols:
                table = table.select(cols)
            return Piece(i, table, numbers)

        for i, made in reader.stream(snap, plan.chunks, plan.decode, ahead=ahead, then=piece):
            yield made
            del made
            if progress is not None:
                progress(steps[i][1])

    def reduce(self, plan: ReadPlan, fn: Callable[[pa.Table], Any],
               ahead: int = FETCH_THREADS) -> Iterator[Any]:
        """``fn`` of the rows a scan plan keeps of each chunk (as :meth:`pieces` gives them,
        without serial numbers), run in the fetch pool as each chunk arrives (Arrow releases
        the GIL: both cores reduce), yielded in serial-number order. Skipped chunks are
        counted and not fetched, as in :meth:`pieces`."""
        _check(plan, "scan")
        reader, snap, flt, cols = self.reader, plan.snap, plan.filter, plan.columns
        reader.skipped += len(plan.skipped)
        steps = {i: (off, n) for i, off, n in plan.steps}

        def then(i: int, entry: Any) -> Any:
            table = entry.table
            off, n = steps[i]
            if off or n != table.num_rows:
                table = table.slice(off, n)
            if flt.active:
                table = flt.apply(table)
            if cols is not None and table.schema.names != cols:
                table = table.select(cols)
            return fn(table)

        for _, out in reader.stream(snap, plan.chunks, plan.decode, ahead=ahead, then=then):
            yield out

    def frames(self, plan: ReadPlan) -> Iterator[pd.DataFrame]:
        """A scan plan chunk by chunk, as DataFrames indexed by ``sn`` (``iter_chunks``)."""
        snap, flt = plan.snap, plan.filter
        for piece in self.pieces(plan, sns=True, ahead=READ_AHEAD):
            assert piece.sns is not None
            cm = snap.chunks[piece.chunk]
            index = (pd.RangeIndex(cm.start, cm.start + cm.rows, name="sn") if not flt.active
                     else pd.Index(piece.sns, name="sn"))
            yield self._frame(piece.table, None, index)

    def frame(self, plan: ReadPlan) -> pd.DataFrame:
        """A scan plan in one DataFrame (``to_pandas``): a RangeIndex when unfiltered."""
        filtered = plan.filter.active
        parts = list(self.pieces(plan, sns=filtered, ahead=FETCH_THREADS))
        if not filtered:
            table = (pa.concat_tables([p.table for p in parts]) if parts
                     else self._select(self.empty(plan.snap), plan.columns))
            return self._frame(table, None, pd.RangeIndex(*plan.span))
        if not parts:  # every chunk ruled out
            return self._frame(self.empty(plan.snap), plan.columns,
                               pd.Index([], dtype="int64"))
        table = pa.concat_tables([p.table for p in parts])
        sns = np.concatenate([p.sns for p in parts if p.sns is not None])
        return self._frame(table, None, pd.Index(sns))

    def table(self, plan: ReadPlan) -> pa.Table:
        """A scan plan in one Arrow table (``to_arrow``), with the pandas metadata."""
        schema = plan.schema
        tables = [p.table.replace_schema_metadata(schema.metadata)
                  for p in self.pieces(plan, ahead=FETCH_THREADS)]
        return pa.concat_tables(tables) if tables else schema.empty_table()

    def batches(self, plan: ReadPlan) -> pa.RecordBatchReader:
        """A scan plan as a stream of record batches, a chunk fetched ahead (``to_batches``)."""
        schema = plan.schema
        pieces = self.pieces(plan, ahead=READ_AHEAD)

        def batches() -> Iterator[pa.RecordBatch]:
            for piece in pieces:
                table = piece.table.replace_schema_metadata(schema.metadata)
                yield from table.combine_chunks().to_batches()

        return pa.RecordBatchReader.from_batches(schema, batches())

    # -- shapes ---------------------------------------------------------------------------
    def empty(self, snap: Snapshot) -> pa.Table:
        """Zero rows with the dataset's exact pandas dtypes (categories come from a chunk,
        fetched only when there are categorical columns)."""
        if not any(pa.types.is_dictionary(f.type) for f in snap.schema):
            return snap.schema.empty_table()
        return self.reader.chunk(snap, 0).table.slice(0, 0)

    def empty_frame(self, snap: Snapshot, columns: list[str] | None) -> pd.DataFrame:
        """An empty DataFrame of ``columns`` (None: all) with the dataset's dtypes."""
        return self._frame(self.empty(snap), columns, pd.RangeIndex(0, name="sn"))

    @staticmethod
    def _select(table: pa.Table, cols: list[str] | None) -> pa.Table:
        return table if cols is None else table.select(cols)

    @classmethod
    def _frame(cls, table: pa.Table, cols: list[str] | None, index: pd.Index) -> pd.DataFrame:
        df = cls._select(table, cols).to_pandas()
        df.index = index
        return df

    # -- integrity ------------------------------------------------------------------------
    def verify(self, snap: Snapshot, progress: Callable[[int], None] | None = None
               ) -> list[tuple[int, str, str]]:
        """(chunk, key, problem) of each chunk of ``snap`` whose bytes in the store fail
        their checksum or name another chunk; every chunk is read and checked again, even
        one served from a verified map."""
        bad = []
        for i, cm in enumerate(snap.chunks):
            problem = self.reader.verify_chunk(snap, i)
            if problem is not None:
                bad.append((cm.chunk, cm.key, problem))
            if progress is not None:
                progress(1)
        return bad


def _check(plan: ReadPlan, kind: str) -> None:
    if plan.kind != kind:
        raise ValueError(f"this executor step runs {kind} plans, not a {plan.kind} plan; "
                         f"build it with plan_{kind}()")


def _assemble(columns: pd.Index, values: list[Any], index: pd.Index) -> pd.DataFrame:
    """A DataFrame of gathered columns under the dataset's own column index (a column asked
    twice comes twice, as with ``df[[c, c]]``)."""
    df = pd.DataFrame(dict(enumerate(values)), index=index, copy=False)
    df.columns = columns
    return df


def _unsort(values: np.ndarray, order: np.ndarray | None) -> np.ndarray:
    """``values`` gathered in ``order`` (of the positions asked) put back in the order asked:
    one scatter, no inverse permutation to build."""
    if order is None:
        return values
    out = np.empty_like(values)
    out[order] = values
    return out


def _take(snap: Snapshot, template: RowTemplate, pieces: Iterable[list[pa.Array]],
          wanted: list[int], groups: ChunkGroups) -> dict[int, Any]:
    """Columns ``wanted`` of the rows ``groups`` asks, from the ``pieces`` taken from each
    chunk (:func:`_rows_taker`, consumed one by one), joined and taken back into the order
    asked; pandas dtypes from the schema's pandas metadata."""
    columns: list[list[pa.Array]] = [[] for _ in wanted]
    for taken in pieces:
        for k, piece in enumerate(taken):
            columns[k].append(piece)
    inverse = None if groups.back is None else pa.array(
        _unsort(np.arange(len(groups.back)), groups.back))
    arrays = []
    for parts in columns:
        joined = parts[0] if len(parts) == 1 else pa.concat_arrays(parts)  # unifies dictionaries
        arrays.append(joined if inverse is None else joined.take(inverse))
    out: dict[int, Any] = {}
    others = []
    for j, values in zip(wanted, arrays, strict=True):
        if is_text(template.dtypes[j], values.type):  # pandas' str dtype is Arrow
            out[j] = pd.array(values, dtype=template.dtypes[j])
        else:
            others.append((j, values))
    if others:  # through pandas' metadata, which restores their dtypes
        fields = [snap.schema.field(j) for j, _ in others]
        table = pa.Table.from_arrays([v for _, v in others],
                                     schema=pa.schema(fields, metadata=snap.schema.metadata))
        for (j, _), (_, series) in zip(others, table.to_pandas().items(), strict=True):
            dtype = template.dtypes[j]
            if isinstance(dtype, pd.CategoricalDtype) and series.dtype != dtype:
                series = series.astype(dtype)  # dictionaries unified across chunks
            values = series.array
            out[j] = (values.to_numpy() if isinstance(values, pd.arrays.NumpyExtensionArray)
                      else values)
    return out


def _rows_taker(snap: Snapshot, wanted: list[int], groups: ChunkGroups
                ) -> Callable[[int, Any], list[pa.Array]]:
    """``take(i, chunk)``: the rows ``groups`` asks of chunk ``i``, one array per column of
    ``wanted``. Column by column: ``Table.take`` cost 2.5x the sum of its columns' takes."""
    local = pa.array(groups.local)
    spans = dict(zip(groups.chunks, groups.spans, strict=True))
    names = [snap.schema.names[j] for j in wanted]

    def take(i: int, entry: Any) -> list[pa.Array]:
        lo, hi = spans[i]
        rows = local.slice(lo, hi - lo)
        out = []
        for name in names:
            column = entry.table.column(name)
            values = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
            out.append(values.take(rows))
        return out

    return take
