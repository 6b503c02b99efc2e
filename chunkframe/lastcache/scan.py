"""Last values computed from data: chunks chosen by their time statistics, Arrow scans, a Series.

Equal times inside the data: the value written last (the larger serial number) wins.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa

from ..core.model import ChunkMeta
from ..core.times import times_ns
from .records import encode_record, value_from_payload, value_payload

if TYPE_CHECKING:
    from ..read.reader import Reader, Snapshot

__all__ = ["Found", "last_of_series", "chunk_candidates", "max_stats", "latest", "latest_in"]

Series = tuple[str, str]
"""A series: (device key, measurement)."""


class Found(NamedTuple):
    """The latest non-null value of a series in the data, and its stored record."""

    time: int
    sn: int
    record: bytes
    value: Any


def last_of_series(series: pd.Series) -> tuple[Any, Any]:
    """``(time, value)`` of the latest non-null value of a Series indexed by time.

    Ties (equal latest times) go to the later row, as in the last cache. A series with no
    non-null value gives ``(None, None)``.

    >>> s = pd.Series([1.0, 2.0, None], index=pd.to_datetime(["2024-01-01", "2024-01-03",
    ...                                                      "2024-01-04"]))
    >>> last_of_series(s)
    (Timestamp('2024-01-03 00:00:00'), np.float64(2.0))
    """
    if not isinstance(series, pd.Series):
        raise TypeError(f"last_of_series() takes a pandas Series, got {type(series).__name__}")
    index = series.index
    if not isinstance(index, pd.DatetimeIndex):
        raise ValueError(
            f"last_of_series() needs a Series indexed by time (a DatetimeIndex); series "
            f"{series.name!r} has a {type(index).__name__} of dtype {index.dtype}. Put the times "
            f"in the index first, e.g. df.set_index('time')[{series.name!r}]"
        )
    keep = series.notna().to_numpy() & ~np.asarray(index.isna())
    pos = np.flatnonzero(keep)
    if not pos.size:
        return None, None
    times = index.asi8[pos]
    best = int(pos[np.flatnonzero(times == times.max())[-1]])
    return index[best], series.iloc[best]


# ---------------------------------------------------------------------------- arrow helpers
def _times(col: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray | None]:
    """Times as int64 (ns for timestamps) and a validity mask (None: all valid)."""
    ints = times_ns(col)
    valid = None
    if ints.null_count:
        valid = np.asarray(ints.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        ints = ints.fill_null(0)
    return np.asarray(ints.to_numpy(), dtype=np.int64), valid


def _valid(col: pa.ChunkedArray) -> np.ndarray | None:
    """Rows holding a value: not null and, for floats, not NaN (pandas' notion of missing)."""
    mask = None
    if col.null_count:
        mask = np.asarray(col.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    if pa.types.is_floating(col.type):
        nan = np.isnan(np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64))
        if nan.any():
            mask = ~nan if mask is None else (mask & ~nan)
    return mask


def chunk_candidates(
    table: pa.Table, tcol: str, dcol: str | None, devices: set[str] | None,
    measurements: Sequence[str],
) -> dict[Series, tuple[int, int]]:
    """Per (device, measurement) of one chunk: (time, row) of its latest non-null value.

    Equal times: the later row. Only ``devices`` (None: all) are looked at.
    """
    t_ns, t_valid = _times(table.column(tcol))
    n = len(t_ns)
    if dcol is None:
        codes = np.zeros(n, dtype=np.int64)
        keys: list[str | None] = [""]
    else:
        arr = table.column(dcol).combine_chunks()
        if not pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_encode()
        codes = np.asarray(arr.indices.fill_null(-1).to_numpy(zero_copy_only=False),
                           dtype=np.int64)
        keys = [None if v is None else str(v) for v in arr.dictionary.to_pylist()]
    wanted = np.array([k is not None and (devices is None or k in devices) for k in keys]
                      + [False])  # code -1 (null device) lands on the trailing False
    keep = wanted[codes]
    if t_valid is not None:
        keep &= t_valid
    rows = np.flatnonzero(keep)
    out: dict[Series, tuple[int, int]] = {}
    if not rows.size:
        return out
    rows = rows[np.argsort(t_ns[rows], kind="stable")]  # by time, then by row
    for m in measurements:
        valid = _valid(table.column(m))
        sel = rows if valid is None else rows[valid[rows]]
        if not sel.size:
            continue
        rev = sel[::-1]
        uniq, first = np.unique(codes[rev], return_index=True)
        for code, row in zip(uniq.tolist(), rev[first].tolist(), strict=True):
            key = (keys[code], m)  # type: ignore[index]
            cand = (int(t_ns[row]), int(row))
            if key not in out or cand > out[key]:  # a dictionary may repeat a value
                out[key] = cand
    return out


def max_stats(chunks: Iterable[ChunkMeta]) -> dict[str, int]:
    """Largest time per device over ``chunks`` (their stats)."""
    out: dict[str, int] = {}
    for cm in chunks:
        for dev, (_, hi) in cm.stats.items():
            if dev not in out or hi > out[dev]:
                out[dev] = hi
    return out


# ---------------------------------------------------------------------------- chunk scans
_Best = dict[Series, tuple[int, int, int, int]]  # (time, sn, chunk, row in the chunk)


def _offer(best: _Best, table: pa.Table, pos: int, cm: ChunkMeta, tcol: str, dcol: str | None,
           devices: set[str], measurements: Sequence[str],
           wanted: Mapping[str, Sequence[str]] | None = None) -> None:
    """Let the candidates of chunk ``cm`` (``table``, read as ``pos``) replace the best so
    far: a later time, then a later serial number."""
    for key, (t, row) in chunk_candidates(table, tcol, dcol, devices, measurements).items():
        if wanted is not None and key[1] not in wanted[key[0]]:
            continue
        cand = (t, cm.start + row, pos, row)
        if key not in best or cand[:2] > best[key][:2]:
            best[key] = cand


def _found(best: _Best, tables: Mapping[int, pa.Table]) -> dict[Series, Found]:
    out: dict[Series, Found] = {}
    for (d, m), (t, sn, chunk, row) in best.items():
        code, payload = value_payload(tables[chunk].column(m), row)
        out[(d, m)] = Found(t, sn, encode_record(t, code, payload),
                            value_from_payload(code, payload))
    return out


def latest(reader: Reader, snap: Snapshot, wanted: Mapping[str, Sequence[str]]
           ) -> tuple[dict[Series, Found], int]:
    """The latest non-null value of each wanted series (device → measurements), and the
    number of chunks read to find them.

    Chunks are read newest first by their per-device max time, and a device stops as soon
    as no unread chunk can hold a time >= its answers (>=: an equal time in a later row wins).
    """
    meta = snap.meta
    tcol, dcol = meta.time_column, meta.device_column
    assert tcol is not None
    heap: list[tuple[int, int, str]] = []
    for i, cm in enumerate(snap.chunks):
        for d in wanted:
            span = cm.stats.get(d)
            if span is not None:
                heap.append((-span[1], -i, d))
    heapq.heapify(heap)
    best: _Best = {}
    done: set[str] = set()
    tables: dict[int, pa.Table] = {}
    measurements = list(dict.fromkeys(m for ms in wanted.values() for m in ms))
    while heap:
        neg_hi, neg_i, d = heapq.heappop(heap)
        if d in done:
            continue
        hi, i = -neg_hi, -neg_i
        if all((d, m) in best and best[(d, m)][0] > hi for m in wanted[d]):
            done.add(d)  # chunks come by max time: no later one can beat these
            continue
        if i in tables:
            continue
        cm = snap.chunks[i]
        tables[i] = reader.chunk(snap, i).table
        devs = {x for x in cm.stats if x in wanted and x not in done}
        _offer(best, tables[i], i, cm, tcol, dcol, devs, measurements, wanted)
    return _found(best, tables), len(tables)


def latest_in(reader: Reader, snap: Snapshot, chunks: Iterable[ChunkMeta],
              floor: Mapping[str, float], measurements: Sequence[str]
              ) -> tuple[dict[Series, Found], int]:
    """The latest value of each series in ``chunks`` (those an append added), reading only
    the chunks whose statistics hold a device time ``>= floor[device]`` (the smallest time
    that can still change a series of the device); and the number of chunks read."""
    meta = snap.meta
    tcol, dcol = meta.time_column, meta.device_column
    assert tcol is not None
    best: _Best = {}
    tables: dict[int, pa.Table] = {}
    for cm in chunks:
        devs = {d for d, (_, hi) in cm.stats.items() if hi >= floor.get(d, np.inf)}
        if not devs:
            continue  # stats prove nothing in this chunk can change a last value
        tables[cm.chunk] = reader.chunk(snap, cm.chunk).table
        _offer(best, tables[cm.chunk], cm.chunk, cm, tcol, dcol, devs, measurements)
    return _found(best, tables), len(tables)
