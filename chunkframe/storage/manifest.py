"""Manifests: a generation's chunk table checkpointed as one Arrow IPC file beside its chunks.

A snapshot is the latest checkpoint of its generation plus the few entries committed after
it (as Delta Lake's log is a checkpoint plus the commits after it): opening a dataset reads
one file that maps straight into numpy arrays, whatever the dataset's history.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

import crc32c
import pyarrow as pa

from ..core.chunktable import CHUNK_TABLE_SCHEMA, BlockChecks, ChunkTable
from ..core.errors import StateCorruptionError
from ..core.keys import manifest_key
from ..core.model import ChunkMeta, DatasetMeta, ManifestRef

if TYPE_CHECKING:
    from .catalog import Catalog
    from .store import ChunkStore

__all__ = ["CHECKPOINT_CHUNKS", "BLOCK_CHUNKS", "MANIFEST", "write_manifest", "read_manifest",
           "verify_manifest", "is_manifest", "next_checkpoint", "recorded_table"]

CHECKPOINT_CHUNKS = 128
"""A commit checkpoints its generation's chunk table once this many entries follow the
last checkpoint: an open then reads one file and at most this many entries from Redis."""

BLOCK_CHUNKS = 8_192
"""Entries per record batch of a manifest: the unit each checksum covers."""

HOT = ("start", "rows", "nbytes", "key", "checksum")
COLD = ("stats", "ranges")
"""The columns an open reads, and those read only when a chunk's entry is built."""

MANIFEST = b"chunkframe.manifest"
"""Schema metadata key of a manifest file: the dataset, generation and entries it holds."""


def is_manifest(key: str) -> bool:
    """Whether a store key names a manifest (not a chunk file)."""
    return key.endswith(".manifest")


def _crc(batch: pa.RecordBatch, names: tuple[str, ...]) -> str:
    """CRC32C of the buffers of ``names`` in ``batch``, chained, as 8 hex digits."""
    value = 0
    for name in names:
        for buf in batch.column(name).buffers():
            if buf is not None:
                value = crc32c.crc32c(buf, value)
    return f"{value:08x}"


def write_manifest(store: ChunkStore, dataset_id: str, generation: int, table: ChunkTable,
                   fence: int) -> ManifestRef:
    """Write ``table`` (all of the generation's chunks so far) as a manifest under fencing
    token ``fence``; returns its reference (key, checksum, size and the checksums of its
    blocks' columns, see :func:`read_manifest`)."""
    total = int(table.rows.sum())
    gap = table.gap(total)
    if gap is not None:  # never checkpoint a table that does not tile its rows
        raise StateCorruptionError(dataset_id, f"its chunk table does not tile: {gap}")
    key = manifest_key(dataset_id, generation, len(table), fence)
    identity = {"dataset": dataset_id, "generation": generation, "chunks": len(table)}
    data = table.to_arrow().combine_chunks().replace_schema_metadata(
        {MANIFEST: json.dumps(identity, separators=(",", ":")).encode()})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, data.schema) as writer:
        writer.write_table(data, max_chunksize=BLOCK_CHUNKS)
    body = sink.getvalue()
    written = pa.ipc.open_file(body)  # the blocks as a reader will find them
    blocks = tuple(f"{_crc(b, HOT)}{_crc(b, COLD)}" for b in
                   (written.get_batch(i) for i in range(written.num_record_batches)))
    digest, size = store.write(key, lambda f: f.write(body))
    return ManifestRef(len(table), key, digest, size, blocks)


def read_manifest(store: ChunkStore, dataset_id: str, generation: int, ref: ManifestRef,
                  fallback: Callable[[int, int], list[ChunkMeta]] | None = None
                  ) -> ChunkTable | None:
    """The chunk table ``ref`` names; None when the file is gone (a newer checkpoint
    replaced it: read the pointer again).

    It is checked in blocks of :data:`BLOCK_CHUNKS` entries, so an open costs what it reads:
    the columns that place rows and find chunks (starts, rows, sizes, keys, checksums) are
    checked here, against the CRC32C the writer recorded for each block; the statistics of
    a block when an entry of it is first built (a damaged block's entries are then taken
    from ``fallback(lo, hi)``, the catalog's rows, if given). A damaged manifest raises
    :class:`StateCorruptionError` (the catalog's chunk rows are a full copy to fall back on,
    and ``recover --verify`` writes it again)."""
    data = store.read(ref.key, populate=False)  # only the pages read are touched
    if data is None:
        return None
    try:
        reader = pa.ipc.open_file(data)
        found = json.loads((reader.schema.metadata or {}).get(MANIFEST, b"{}"))
        batches = [reader.get_batch(i) for i in range(reader.num_record_batches)]
    except (pa.ArrowInvalid, OSError, ValueError) as exc:
        raise StateCorruptionError(dataset_id, f"manifest {ref.key!r} is unreadable ({exc})") from exc
    expected = {"dataset": dataset_id, "generation": generation, "chunks": ref.chunks}
    sizes = [min(BLOCK_CHUNKS, ref.chunks - i) for i in range(0, ref.chunks, BLOCK_CHUNKS)]
    if found != expected or not reader.schema.equals(CHUNK_TABLE_SCHEMA) \
            or [b.num_rows for b in batches] != sizes or len(ref.blocks) != len(sizes):
        raise StateCorruptionError(
            dataset_id, f"manifest {ref.key!r} names {found} in blocks of "
            f"{[b.num_rows for b in batches]}, not {expected}")
    for i, batch in enumerate(batches):
        if _crc(batch, HOT) != ref.blocks[i][:8] or any(batch.column(n).null_count for n in HOT):
            raise StateCorruptionError(
                dataset_id, f"block {i} of manifest {ref.key!r} fails its checksum")

    def check_block(i: int) -> None:
        if _crc(batches[i], COLD) != ref.blocks[i][8:]:
            raise StateCorruptionError(
                dataset_id, f"the statistics of block {i} of manifest {ref.key!r} fail their "
                "checksum")

    out = ChunkTable.mapped(pa.Table.from_batches(batches).replace_schema_metadata(None))
    out.tiled = len(out)  # checked before it was written; its checksums say it is unchanged
    out.checks = BlockChecks(check_block, ref.chunks, BLOCK_CHUNKS, fallback)
    return out


def verify_manifest(store: ChunkStore, dataset_id: str, generation: int,
                    ref: ManifestRef) -> str | None:
    """What is wrong with the manifest ``ref`` names (every block checked whole), or None."""
    try:
        table = read_manifest(store, dataset_id, generation, ref)
        if table is None:
            return f"manifest {ref.key!r} is missing"
        if table.checks is not None:
            table.checks.all()
    except StateCorruptionError as exc:
        return exc.disagreement
    return None


def next_checkpoint(store: ChunkStore, catalog: Catalog, dataset_id: str, generation: int,
                    current: ManifestRef | None, added: list[ChunkMeta], total: int,
                    fence: int) -> ManifestRef | None:
    """A new checkpoint of the generation's first ``total`` chunk entries (the last of them
    ``added`` by the commit under way), written when :data:`CHECKPOINT_CHUNKS` or more follow
    ``current``; else None. Its cost is the generation's size, once every so many chunks."""
    if total - (0 if current is None else current.chunks) < CHECKPOINT_CHUNKS:
        return None
    first = total - len(added)
    try:
        base = None if current is None else read_manifest(store, dataset_id, generation, current)
    except StateCorruptionError:
        base = None  # damaged: the catalog's rows are the whole table
    base = (base or ChunkTable()).head(first)
    middle = catalog.chunks(dataset_id, generation, len(base), first)
    return write_manifest(store, dataset_id, generation, base.extend(middle).extend(added), fence)


def recorded_table(store: ChunkStore, catalog: Catalog, meta: DatasetMeta,
                   read: Callable[[ManifestRef], ChunkTable | None] | None = None) -> ChunkTable:
    """The chunk table of version ``meta`` as the catalog records it: its generation's
    checkpoint (read with ``read``, e.g. through a cache), then the chunk rows after it; all
    the rows when the checkpoint is missing or damaged."""
    ref = catalog.manifest(meta.id, meta.generation)
    base = None
    if ref is not None:
        try:
            base = (read or (lambda r: read_manifest(store, meta.id, meta.generation, r)))(ref)
        except StateCorruptionError:
            base = None
    first = 0 if base is None else min(len(base), meta.chunks)
    rows = catalog.chunks(meta.id, meta.generation, first, meta.chunks)
    return (ChunkTable() if base is None else base.head(first)).extend(rows)
