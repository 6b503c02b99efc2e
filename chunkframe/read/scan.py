"""Filtered scans: the chunks a row filter may match, fetched ahead, checked, filtered and projected."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from ..core.ranges import SN_COLUMN, RowFilter
from .reader import READ_AHEAD, Snapshot

if TYPE_CHECKING:
    from .reader import Reader

__all__ = ["Piece", "scan"]


@dataclass(frozen=True)
class Piece:
    """What a scan keeps of one chunk: its rows that pass the filter, the columns asked,
    and (when asked for) their serial numbers."""

    chunk: int
    table: pa.Table
    sns: np.ndarray | None


def scan(reader: Reader, snap: Snapshot, flt: RowFilter, columns: Sequence[str] | None, *,
         plan: Sequence[tuple[int, int, int]] | None = None, sns: bool = False,
         ahead: int = READ_AHEAD, progress: Callable[[int], None] | None = None
         ) -> Iterator[Piece]:
    """The rows of ``snap`` that ``flt`` keeps, chunk by chunk, in serial-number order.

    ``plan``: (chunk index, first row, row count) of the rows to read (every row if None).
    Chunks whose statistics rule the filter out are not fetched (counted in
    ``reader.skipped``); the others stream through :meth:`Reader.stream`, ``ahead`` of the
    consumer, uncached, decoding only ``columns`` and the columns the filter reads (dropped
    after filtering). Deletes apply before the filter. ``progress(rows)`` is told of each
    chunk's planned rows once it is done with (skipped or yielded).
    """
    if plan is None:
        plan = [(i, 0, cm.rows) for i, cm in enumerate(snap.chunks)]
    wanted = []
    for step in plan:
        if flt.may_match(snap.chunks[step[0]]):
            wanted.append(step)
        else:
            reader.skipped += 1
            if progress is not None:
                progress(step[2])
    names = snap.schema.names
    cols = None if columns is None else list(columns)
    read = None if cols is None else sorted({names.index(c) for c in {*cols, *flt.columns}})
    chunks = reader.stream(snap, [i for i, _, _ in wanted], read, ahead=ahead)
    for (i, entry), (_, off, n) in zip(chunks, wanted, strict=True):
        table = entry.table
        del entry
        if off or n != table.num_rows:
            table = table.slice(off, n)
        first = snap.chunks[i].start + off
        numbers = np.arange(first, first + n, dtype=np.int64) if sns else None
        if flt.active:
            if numbers is not None:
                table = table.append_column(SN_COLUMN, pa.array(numbers))
            table = flt.apply(table)
            if numbers is not None:
                numbers = table.column(SN_COLUMN).to_numpy()
                table = table.drop_columns([SN_COLUMN])
        if cols is not None and table.schema.names != cols:
            table = table.select(cols)
        yield Piece(i, table, numbers)
        del table
        if progress is not None:
            progress(n)
