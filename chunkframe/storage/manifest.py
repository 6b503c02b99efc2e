"""Manifests: a generation's chunk table checkpointed as one Arrow IPC file beside its chunks.

A snapshot is the latest checkpoint of its generation plus the few entries committed after
it (as Delta Lake's log is a checkpoint plus the commits after it): opening a dataset reads
one file that maps straight into numpy arrays, whatever the dataset's history.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

import pyarrow as pa

from ..core.chunktable import CHUNK_TABLE_SCHEMA, ChunkTable
from ..core.errors import StateCorruptionError
from ..core.keys import manifest_key
from ..core.model import ChunkMeta, DatasetMeta, ManifestRef
from .codec import checksum_matches, write

if TYPE_CHECKING:
    from .catalog import Catalog
    from .store import ChunkStore

__all__ = ["CHECKPOINT_CHUNKS", "MANIFEST", "write_manifest", "read_manifest", "is_manifest",
           "next_checkpoint", "recorded_table"]

CHECKPOINT_CHUNKS = 128
"""A commit checkpoints its generation's chunk table once this many entries follow the
last checkpoint: an open then reads one file and at most this many entries from Redis."""

MANIFEST = b"chunkframe.manifest"
"""Schema metadata key of a manifest file: the dataset, generation and entries it holds."""


def is_manifest(key: str) -> bool:
    """Whether a store key names a manifest (not a chunk file)."""
    return key.endswith(".manifest")


def write_manifest(store: ChunkStore, dataset_id: str, generation: int, table: ChunkTable,
                   fence: int) -> ManifestRef:
    """Write ``table`` (all of the generation's chunks so far) as a manifest under fencing
    token ``fence``; returns its reference (key, checksum, size)."""
    key = manifest_key(dataset_id, generation, len(table), fence)
    identity = {"dataset": dataset_id, "generation": generation, "chunks": len(table)}
    data = table.to_arrow().replace_schema_metadata(
        {MANIFEST: json.dumps(identity, separators=(",", ":")).encode()})
    digest, size = store.write(key, lambda f: write(data, f))
    return ManifestRef(len(table), key, digest, size)


def read_manifest(store: ChunkStore, dataset_id: str, generation: int,
                  ref: ManifestRef) -> ChunkTable | None:
    """The chunk table ``ref`` names, checked against its checksum and its own identity;
    None when the file is gone (a newer checkpoint replaced it: read the pointer again).
    A damaged manifest raises :class:`StateCorruptionError` (the catalog's chunk rows are
    a full copy to fall back on)."""
    data = store.read(ref.key)
    if data is None:
        return None
    ok, computed = checksum_matches(data, ref.checksum)
    if not ok:
        raise StateCorruptionError(dataset_id, f"manifest {ref.key!r} fails its checksum "
                                   f"({computed}, recorded {ref.checksum})")
    try:
        reader = pa.ipc.open_file(data)
        table = reader.read_all()
        found = json.loads((reader.schema.metadata or {}).get(MANIFEST, b"{}"))
    except (pa.ArrowInvalid, OSError, ValueError) as exc:
        raise StateCorruptionError(dataset_id, f"manifest {ref.key!r} is unreadable ({exc})") from exc
    expected = {"dataset": dataset_id, "generation": generation, "chunks": ref.chunks}
    if found != expected or not table.schema.equals(CHUNK_TABLE_SCHEMA) \
            or table.num_rows != ref.chunks:
        raise StateCorruptionError(
            dataset_id, f"manifest {ref.key!r} names {found}, not {expected}")
    return ChunkTable(table.replace_schema_metadata(None))


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
