"""A generation's chunk table in columns: what a manifest stores and a snapshot searches."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, overload

import numpy as np
import pyarrow as pa

from .model import ChunkMeta

__all__ = ["ChunkTable", "CHUNK_TABLE_SCHEMA"]

CHUNK_TABLE_SCHEMA = pa.schema([
    ("start", pa.int64()), ("rows", pa.int64()), ("nbytes", pa.int64()),
    ("key", pa.string()), ("checksum", pa.string()),
    ("stats", pa.string()), ("ranges", pa.string()),  # JSON text: decoded per chunk, lazily
])
"""Columns of a chunk table: the position of a row is the chunk's number."""


def _ints(table: pa.Table, name: str) -> np.ndarray:
    col = table.column(name)
    if col.num_chunks == 1:
        return col.chunk(0).to_numpy()  # zero-copy (a mapped manifest stays mapped)
    return np.asarray(col.to_numpy(), dtype=np.int64)


class ChunkTable(Sequence[ChunkMeta]):
    """The chunks of one generation, numbered from 0, as Arrow columns and numpy arrays.

    Opening a dataset reads its chunk table as columns (from a manifest or a few recent
    entries), not as one JSON document per chunk: ``starts``, ``rows`` and ``sizes`` are
    numpy arrays for searching and summing, and a :class:`ChunkMeta` is built only for a
    chunk that is asked for (its statistics parsed then, once).
    """

    __slots__ = ("_table", "starts", "rows", "sizes", "_metas")

    def __init__(self, table: pa.Table | None = None):
        table = CHUNK_TABLE_SCHEMA.empty_table() if table is None else table
        if table.num_columns and table.column(0).num_chunks > 8:
            table = table.combine_chunks()  # element access walks the pieces: keep them few
        self._table = table
        self.starts = _ints(table, "start")
        self.rows = _ints(table, "rows")
        self.sizes = _ints(table, "nbytes")
        self._metas: dict[int, ChunkMeta] = {}

    @classmethod
    def of(cls, metas: Iterable[ChunkMeta], first: int = 0) -> ChunkTable:
        """A table of ``metas``, which must number ``first``, ``first + 1``, ..."""
        metas = list(metas)
        for i, c in enumerate(metas, first):
            if c.chunk != i:
                raise ValueError(f"chunk {c.chunk} stands at position {i} of the chunk table")
        cols = {"start": [c.start for c in metas], "rows": [c.rows for c in metas],
                "nbytes": [c.nbytes for c in metas], "key": [c.key for c in metas],
                "checksum": [c.checksum for c in metas],
                "stats": [json.dumps(c.stats, separators=(",", ":")) for c in metas],
                "ranges": [json.dumps(c.ranges, separators=(",", ":")) for c in metas]}
        out = cls(pa.table(cols, schema=CHUNK_TABLE_SCHEMA))
        if first == 0:
            out._metas.update(enumerate(metas))
        return out

    def to_arrow(self) -> pa.Table:
        return self._table

    @property
    def nbytes(self) -> int:
        """Bytes of the chunk files this table names."""
        return int(self.sizes.sum())

    def extend(self, metas: Sequence[ChunkMeta]) -> ChunkTable:
        """A new table: this one followed by ``metas`` (numbered on from its end)."""
        if not metas:
            return self
        more = ChunkTable.of(metas, len(self))
        out = ChunkTable(pa.concat_tables([self._table, more._table]))
        out._metas.update(self._metas)
        out._metas.update((len(self) + i, c) for i, c in enumerate(metas))
        return out

    def head(self, n: int) -> ChunkTable:
        """The first ``n`` chunks (an earlier version of the same generation)."""
        if n >= len(self):
            return self
        out = ChunkTable(self._table.slice(0, n))
        out._metas.update((i, c) for i, c in self._metas.items() if i < n)
        return out

    def gap(self, total_rows: int) -> str | None:
        """None if the chunks tile rows 0 to ``total_rows`` end to end, else the first place
        they do not (a damaged chunk table must never place a row)."""
        ends = np.cumsum(self.rows)
        expected = np.concatenate([[0], ends[:-1]]) if len(ends) else ends
        bad = np.flatnonzero((self.starts != expected) | (self.rows < 0))
        if len(bad):
            i = int(bad[0])
            return (f"chunk {i} (position {i}) starts at {int(self.starts[i])} with "
                    f"{int(self.rows[i])} rows; the chunks before it end at {int(expected[i])}")
        held = int(ends[-1]) if len(ends) else 0
        if held != total_rows:
            return f"the chunks hold {held} rows, the dataset {total_rows}"
        return None

    def __len__(self) -> int:
        return self._table.num_rows

    @overload
    def __getitem__(self, index: int) -> ChunkMeta: ...

    @overload
    def __getitem__(self, index: slice) -> list[ChunkMeta]: ...

    def __getitem__(self, index: int | slice) -> ChunkMeta | list[ChunkMeta]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        n = len(self)
        i = int(index) + n if index < 0 else int(index)
        if not 0 <= i < n:
            raise IndexError(f"chunk {index} of a table of {n}")
        meta = self._metas.get(i)
        if meta is None:
            row = self._table.slice(i, 1).to_pylist()[0]
            meta = self._metas[i] = _meta(i, row)
        return meta

    def __iter__(self) -> Iterator[ChunkMeta]:
        if len(self._metas) < len(self):
            for i, row in enumerate(self._table.to_pylist()):
                if i not in self._metas:
                    self._metas[i] = _meta(i, row)
        return (self._metas[i] for i in range(len(self)))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ChunkTable):
            return self._table.equals(other._table)
        if isinstance(other, Sequence):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<ChunkTable of {len(self)} chunks, {int(self.rows.sum())} rows>"


def _meta(i: int, row: dict[str, Any]) -> ChunkMeta:
    return ChunkMeta(i, row["start"], row["rows"], row["key"], row["checksum"], row["nbytes"],
                     json.loads(row["stats"]), json.loads(row["ranges"]))
