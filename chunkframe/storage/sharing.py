"""Shared chunks: a new chunk identical to one a kept version stores names that file instead."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..core.model import ChunkMeta
from .codec import Compression, checksum_matches, identity_of, write

if TYPE_CHECKING:
    from .catalog import Catalog
    from .store import ChunkStore

__all__ = ["SharedChunks"]


def _plain(stats: Any) -> str:
    """Statistics as comparable text (as the catalog keeps them: JSON)."""
    return json.dumps(stats, sort_keys=True, default=str)


class SharedChunks:
    """The chunk files of a dataset's kept versions, from serial number ``first`` on, that a
    write (an overwrite, an append, a compaction or an upsert) may reference instead of
    writing a file of its own.

    A file is shared only when it holds *exactly* the bytes the writer would write: the new
    chunk is encoded with the identity the stored file names (dataset, generation, chunk,
    first sn, rows), the same compression and encodings, and compared byte for byte with
    the stored file, whose recorded CRC32C must also match. (Where the bytes differ only
    where no reader looks, the padding past a sliced buffer, both files are decoded and
    every value, type, encoding and metadata compared.) So the content, the row count, the
    first serial number, the schema (pandas metadata included) and the encodings are all
    the same; a 32-bit checksum alone is never trusted. Candidates are found by first serial
    number and row count (one indexed catalog query, on first use) and filtered by their
    recorded time and value statistics before any file is read.

    The catalog's chunk rows are the references: ``prune_versions`` deletes a file only when
    no recorded chunk row (of a kept version, or one a named snapshot keeps) and no
    checkpoint of an ingest under way names it. Sharing stays within one dataset. Thread-safe
    (the persister's workers share one).
    """

    def __init__(self, store: ChunkStore, catalog: Catalog, dataset_id: str, first: int = 0):
        self.store, self.catalog, self.dataset_id, self.first = store, catalog, dataset_id, first
        self._places: dict[tuple[int, int], dict[str, ChunkMeta]] | None = None
        self._mutex = threading.Lock()
        self.shared = 0
        """Chunks this writer shared so far."""
        self.saved = 0
        """Bytes it did not write (those of the files it shared)."""

    def _candidates(self, start: int, rows: int) -> list[ChunkMeta]:
        with self._mutex:
            if self._places is None:
                places: dict[tuple[int, int], dict[str, ChunkMeta]] = {}
                for _, cm in self.catalog.chunks_from(self.dataset_id, self.first):
                    places.setdefault((cm.start, cm.rows), {})[cm.key] = cm  # once per file
                self._places = places
            return list(self._places.get((start, rows), {}).values())

    def find(self, table: pa.Table, start: int, compression: Compression,
             encodings: Mapping[str, str] | None, stats: Mapping[str, Any],
             ranges: Mapping[str, Any]) -> ChunkMeta | None:
        """The recorded chunk whose file holds exactly what writing ``table`` (first row at
        ``start``, with ``compression`` and ``encodings``) would, or None; ``stats`` and
        ``ranges``: the new chunk's statistics (a candidate with others differs)."""
        mine = None  # the new chunk's statistics as text, made once if a candidate exists
        for cm in self._candidates(start, table.num_rows):
            mine = mine or (_plain(stats), _plain(ranges))
            if (_plain(cm.stats), _plain(cm.ranges)) != mine:
                continue
            if self.holds(cm, table, start, compression, encodings):
                with self._mutex:
                    self.shared += 1
                    self.saved += cm.nbytes
                return cm
        return None

    def holds(self, cm: ChunkMeta, table: pa.Table, start: int, compression: Compression,
              encodings: Mapping[str, str] | None) -> bool:
        """Whether the stored file of ``cm`` is, byte for byte, ``table`` written as the
        chunk that file names itself (or differs only in bytes no reader sees, see
        :func:`_same_content`), and intact (its recorded checksum matches)."""
        data = self.store.read(cm.key)
        if data is None:
            return False
        try:
            named = identity_of(pa.ipc.open_file(data).schema)
        except (pa.ArrowInvalid, OSError):
            return False
        if not named or named.get("dataset") != self.dataset_id \
                or named.get("start") != start or named.get("rows") != table.num_rows:
            return False
        sink = pa.BufferOutputStream()
        write(table, sink, compression, named, encodings)
        new = sink.getvalue()
        if not new.equals(data) and not _same_content(new, data, compression):
            return False
        return checksum_matches(data, cm.checksum)[0]


_MAGIC = {"zstd": b"\x28\xb5\x2f\xfd", "lz4": b"\x04\x22\x4d\x18"}
"""The frame magic of each codec, which a compressed buffer of an IPC file begins with
(after its length)."""


def _same_content(new: pa.Buffer, stored: pa.Buffer, compression: Compression) -> bool:
    """Whether ``stored`` holds what ``new`` does, where their bytes differ only in what no
    reader sees: the unused bytes past a slice's end (a categorical's indices cut from the
    end of a source are recorded with the allocation's padded length, from its middle with
    their own) and the unused bits of a validity bitmap's last byte. Every value, type,
    encoding and metadata (the pandas dtypes, the identity) must be equal, and the stored
    file compressed with the same codec (or not at all)."""
    try:
        ours, theirs = pa.ipc.open_file(new).read_all(), pa.ipc.open_file(stored).read_all()
    except (pa.ArrowInvalid, OSError):
        return False
    if not theirs.equals(ours, check_metadata=True) \
            or not all(theirs.schema.field(i).equals(ours.schema.field(i), check_metadata=True)
                       for i in range(len(ours.schema))):
        return False
    mapped = _mapped(theirs, stored)
    if compression is None:
        return mapped is not False
    return mapped is not True and _MAGIC[compression] in memoryview(stored).tobytes()


def _mapped(table: pa.Table, data: pa.Buffer) -> bool | None:
    """Whether the buffers of ``table`` (read from ``data``) are views of ``data`` (an
    uncompressed file) or not (decompressed copies); None for a table without buffers."""
    lo, hi = data.address, data.address + data.size
    for column in table.columns:
        for chunk in column.chunks:
            for buf in chunk.buffers():
                if buf is not None and buf.size:
                    return bool(lo <= buf.address < hi)
    return None
