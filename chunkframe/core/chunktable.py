"""A generation's chunk table in columns: what a manifest stores and a snapshot searches."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, overload

import numpy as np
import pyarrow as pa

from .model import ChunkMeta

__all__ = ["ChunkTable", "CHUNK_TABLE_SCHEMA", "BlockChecks"]

CHUNK_TABLE_SCHEMA = pa.schema([
    ("start", pa.int64()), ("rows", pa.int64()), ("nbytes", pa.int64()),
    ("key", pa.string()), ("checksum", pa.string()),
    ("stats", pa.string()), ("ranges", pa.string()),  # JSON text: decoded per chunk, lazily
])
"""Columns of a chunk table: the position of a row is the chunk's number."""


class _Part:
    """A run of a table's entries: their first position and their starts, rows and sizes
    (views of a manifest block's buffers, or arrays of entries read since)."""

    __slots__ = ("offset", "starts", "rows", "sizes", "mapped")

    def __init__(self, offset: int, starts: np.ndarray, rows: np.ndarray, sizes: np.ndarray,
                 mapped: bool = False):
        self.offset, self.starts, self.rows, self.sizes = offset, starts, rows, sizes
        self.mapped = mapped  # a manifest's block: never copied to be merged

    def head(self, n: int) -> _Part:
        return _Part(self.offset, self.starts[:n], self.rows[:n], self.sizes[:n], self.mapped)


def _merged(parts: list[_Part]) -> _Part:
    return _Part(parts[0].offset, np.concatenate([p.starts for p in parts]),
                 np.concatenate([p.rows for p in parts]), np.concatenate([p.sizes for p in parts]))


def _ints(table: pa.Table, name: str) -> np.ndarray:
    col = table.column(name)
    if col.num_chunks == 1:
        return col.chunk(0).to_numpy()  # zero-copy (a mapped manifest stays mapped)
    if col.num_chunks == 0:
        return np.empty(0, dtype=np.int64)
    return np.concatenate([c.to_numpy() for c in col.chunks])


class BlockChecks:
    """Checks of the statistics of a manifest's blocks, each run once, when an entry of
    that block is first built (an open checks only what places rows and finds chunks).

    ``check(i)`` raises for a damaged block; with ``fallback(lo, hi)`` (the entries from
    another copy, the catalog's) a damaged block's entries are taken from there instead."""

    def __init__(self, check: Callable[[int], None], covers: int, block: int,
                 fallback: Callable[[int, int], list[ChunkMeta]] | None = None):
        self.check, self.covers, self.block, self.fallback = check, covers, block, fallback
        self._done: dict[int, list[ChunkMeta] | None] = {}

    def replaced(self, position: int) -> ChunkMeta | None:
        """None if the block holding entry ``position`` is sound (past the manifest: none
        to check), else that entry from the fallback."""
        found = self.block_of(position)
        return None if found is None else found[position % self.block]

    def block_of(self, position: int) -> list[ChunkMeta] | None:
        """None if the block holding entry ``position`` is sound, else its entries from the
        fallback."""
        if position >= self.covers:
            return None
        i = position // self.block
        if i not in self._done:
            try:
                self.check(i)
                self._done[i] = None
            except Exception:
                if self.fallback is None:
                    raise
                lo = i * self.block
                self._done[i] = self.fallback(lo, min(lo + self.block, self.covers))
        return self._done[i]

    def all(self) -> None:
        """Check every block (each damaged one replaced, or raising)."""
        for position in range(0, self.covers, self.block):
            self.block_of(position)


class ChunkTable(Sequence[ChunkMeta]):
    """The chunks of one generation, numbered from 0, as Arrow columns and numpy arrays.

    Opening a dataset reads its chunk table as columns (from a manifest or a few recent
    entries), not as one JSON document per chunk: ``starts``, ``rows`` and ``sizes`` are
    numpy arrays for searching and summing, and a :class:`ChunkMeta` is built only for a
    chunk that is asked for (its statistics parsed then, once).
    """

    __slots__ = ("_table", "_parts", "_flat", "_metas", "tiled", "checks")

    def __init__(self, table: pa.Table | None = None, parts: list[_Part] | None = None):
        table = CHUNK_TABLE_SCHEMA.empty_table() if table is None else table
        if table.num_columns and table.column(0).num_chunks > 64:
            table = table.combine_chunks()  # element access walks the pieces: keep them few
        self._table = table
        self._parts = parts if parts is not None else [_Part(
            0, _ints(table, "start"), _ints(table, "rows"), _ints(table, "nbytes"))]
        self._flat: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._metas: dict[int, ChunkMeta] = {}
        self.tiled = 0  # how many leading chunks are known to tile rows from 0 (see gap)
        self.checks: BlockChecks | None = None  # the manifest's statistics, checked lazily

    @classmethod
    def mapped(cls, table: pa.Table) -> ChunkTable:
        """A table over ``table``, a manifest's blocks, without copying their columns."""
        parts, at = [], 0
        for batch in table.to_batches():
            parts.append(_Part(at, batch.column("start").to_numpy(),
                               batch.column("rows").to_numpy(),
                               batch.column("nbytes").to_numpy(), mapped=True))
            at += batch.num_rows
        return cls(table, parts or None)

    # -- the integer columns: searched part by part, joined only when a batch read asks --
    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._flat is None:
            whole = self._parts[0] if len(self._parts) == 1 else _merged(self._parts)
            self._flat = (whole.starts, whole.rows, whole.sizes)
        return self._flat

    @property
    def starts(self) -> np.ndarray:
        """The first serial number of each chunk."""
        return self._arrays()[0]

    @property
    def rows(self) -> np.ndarray:
        return self._arrays()[1]

    @property
    def sizes(self) -> np.ndarray:
        return self._arrays()[2]

    def locate(self, sn: int) -> int:
        """The position of the chunk holding row ``sn`` (which the caller checked is in
        range): a search of the part holding it, no copy of the whole table."""
        for part in reversed(self._parts):
            if len(part.starts) and sn >= part.starts[0]:
                return part.offset + int(np.searchsorted(part.starts, sn, side="right")) - 1
        return -1

    def start_of(self, i: int) -> int:
        """The first serial number of chunk ``i``."""
        for part in reversed(self._parts):
            if i >= part.offset:
                return int(part.starts[i - part.offset])
        raise IndexError(f"chunk {i} of a table of {len(self)}")

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
        return int(sum(int(p.sizes.sum()) for p in self._parts))

    def extend(self, metas: Sequence[ChunkMeta]) -> ChunkTable:
        """A new table: this one followed by ``metas`` (numbered on from its end). The new
        entries join the parts read since the manifest, merged while no larger than the
        part before them, so a handle catching up costs about the entries it adds."""
        if not metas:
            return self
        more = ChunkTable.of(metas, len(self))
        new = _Part(len(self), more.starts, more.rows, more.sizes)
        parts = list(self._parts)
        while parts and not parts[-1].mapped and len(parts[-1].starts) <= len(new.starts):
            new = _merged([parts.pop(), new])
        out = ChunkTable(pa.concat_tables([self._table, more._table]), [*parts, new])
        out.tiled, out.checks = self.tiled, self.checks
        out._metas.update(self._metas)
        out._metas.update((len(self) + i, c) for i, c in enumerate(metas))
        return out

    def head(self, n: int) -> ChunkTable:
        """The first ``n`` chunks (an earlier version of the same generation)."""
        if n >= len(self):
            return self
        parts = [p if p.offset + len(p.starts) <= n else p.head(n - p.offset)
                 for p in self._parts if p.offset < n or (n == 0 and p.offset == 0)]
        out = ChunkTable(self._table.slice(0, n), parts)
        out.tiled, out.checks = min(self.tiled, n), self.checks
        out._metas.update((i, c) for i, c in self._metas.items() if i < n)
        return out

    def gap(self, total_rows: int) -> str | None:
        """None if the chunks tile rows 0 to ``total_rows`` end to end, else the first place
        they do not (a damaged chunk table must never place a row). Only the chunks after
        the first ``tiled`` (a checked manifest's) are checked: the cost of what changed."""
        end = 0  # where the rows before the part being checked end
        for part in self._parts:
            n = len(part.starts)
            if part.offset + n <= self.tiled:
                if n:
                    end = int(part.starts[-1] + part.rows[-1])
                continue
            ends = np.cumsum(part.rows) + end
            expected = np.concatenate([[end], ends[:-1]])
            bad = np.flatnonzero((part.starts != expected) | (part.rows < 0))
            if len(bad):
                i = int(bad[0])
                return (f"chunk {part.offset + i} (position {part.offset + i}) starts at "
                        f"{int(part.starts[i])} with {int(part.rows[i])} rows; the chunks "
                        f"before it end at {int(expected[i])}")
            if n:
                end = int(ends[-1])
        if end != total_rows:
            return f"the chunks hold {end} rows, the dataset {total_rows}"
        self.tiled = len(self)
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
            meta = None if self.checks is None else self.checks.replaced(i)
            if meta is None:
                meta = _meta(i, self._table.slice(i, 1).to_pylist()[0])
            self._metas[i] = meta
        return meta

    def __iter__(self) -> Iterator[ChunkMeta]:
        if len(self._metas) < len(self):
            step = self.checks.block if self.checks is not None else max(len(self), 1)
            for lo in range(0, len(self), step):  # block by block: a damaged one is replaced
                n = min(step, len(self) - lo)
                other = None if self.checks is None else self.checks.block_of(lo)
                metas = other if other is not None else [
                    _meta(i, row) for i, row in enumerate(self._table.slice(lo, n).to_pylist(), lo)]
                for i, meta in enumerate(metas, lo):
                    self._metas.setdefault(i, meta)
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
