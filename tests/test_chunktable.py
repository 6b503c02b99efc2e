"""ChunkTable: a chunk table in columns, searched part by part, grown by the entries since."""

from __future__ import annotations

import numpy as np
import pytest

from chunkframe.core.chunktable import ChunkTable
from chunkframe.core.model import ChunkMeta


def _metas(sizes: list[int], first: int = 0, start: int = 0) -> list[ChunkMeta]:
    out = []
    for i, rows in enumerate(sizes, first):
        out.append(ChunkMeta(i, start, rows, f"d/g000001/c{i:08d}-f1.arrow", f"crc32c:{i:08x}",
                             100 + i, {"dev": [i, i + 1]}, {"x": [0.5, float(i)]}))
        start += rows
    return out


def test_a_table_grown_by_many_small_extends_locates_every_row_and_keeps_few_parts():
    metas = _metas([3, 1, 4, 1, 5, 9, 2, 6] * 40)
    table = ChunkTable.of(metas[:5])
    for i in range(5, len(metas), 3):
        table = table.extend(metas[i:i + 3])
    assert len(table) == len(metas) and list(table) == metas
    assert len(table._parts) <= 12  # merged as they come: logarithmically many
    starts = np.array([m.start for m in metas])
    for sn in range(0, int(starts[-1] + metas[-1].rows)):
        i = table.locate(sn)
        assert i == np.searchsorted(starts, sn, side="right") - 1
        assert table.start_of(i) == starts[i]
    assert table.gap(int(starts[-1] + metas[-1].rows)) is None
    assert (table.starts == starts).all() and table.nbytes == sum(m.nbytes for m in metas)


def test_a_prefix_is_an_earlier_version_of_the_same_table():
    metas = _metas([10] * 30)
    table = ChunkTable.of(metas[:10]).extend(metas[10:20]).extend(metas[20:])
    for n in (0, 1, 10, 15, 29):
        head = table.head(n)
        assert list(head) == metas[:n] and head.gap(10 * n) is None
    assert table.head(40) is table


@pytest.mark.parametrize(("sizes", "starts", "found"), [
    ([5, 5], [0, 6], "chunk 1 (position 1) starts at 6 with 5 rows; the chunks before it end at 5"),
    ([5, -1], [0, 5], "chunk 1 (position 1) starts at 5 with -1 rows"),
    ([5, 5], [1, 6], "chunk 0 (position 0) starts at 1"),
])
def test_a_table_that_does_not_tile_is_named_where_it_breaks(sizes, starts, found):
    metas = [ChunkMeta(i, s, r, "k", "c", 1) for i, (s, r) in enumerate(zip(starts, sizes, strict=True))]
    assert found in ChunkTable.of(metas).gap(10)
    assert "hold 10 rows, the dataset 11" in ChunkTable.of(_metas([5, 5])).gap(11)


def test_entries_must_number_on_from_the_table():
    with pytest.raises(ValueError, match="chunk 3 stands at position 1"):
        ChunkTable.of(_metas([1], first=3), first=1)
    with pytest.raises(IndexError):
        ChunkTable.of(_metas([1, 1]))[2]
    assert ChunkTable.of(_metas([1, 1]))[-1].chunk == 1


def test_a_chunk_entry_round_trips_through_json_with_every_field():
    import dataclasses
    import json

    meta = _metas([7])[0]
    assert set(json.loads(meta.to_json())) == {f.name for f in dataclasses.fields(ChunkMeta)}
    assert ChunkMeta.from_json(meta.to_json()) == meta
