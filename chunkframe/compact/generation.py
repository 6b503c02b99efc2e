"""What every copy-on-write version (compaction, upsert) does: a new generation begun, chunks
read checked and written named, the generation committed and published."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pyarrow as pa

from ..core.errors import Call, DatasetNotFoundError, Hint
from ..core.model import ChunkMeta, DatasetMeta
from ..ingestion.pipeline import CommitHook, Plan, write_or_share
from ..read.reader import conform_chunk
from ..storage.codec import decode
from ..storage.manifest import next_checkpoint
from ..storage.store import read_checked

if TYPE_CHECKING:
    from ..storage.backends import Backends
    from ..storage.sharing import SharedChunks
    from ..storage.state import DatasetLock

__all__ = ["record_of", "begin_generation", "read_chunk", "write_chunk", "commit_generation"]


def record_of(backends: Backends, dataset_id: str, doing: str) -> DatasetMeta:
    """The dataset's record (read under its lock), or :class:`DatasetNotFoundError` saying
    that ``doing`` it (e.g. "compact") needs one."""
    existing = backends.catalog.get(dataset_id)
    if existing is None:
        raise DatasetNotFoundError(
            f"cannot {doing} dataset {dataset_id!r}: it does not exist",
            hint=Hint("list the datasets with {}", Call.of("datasets")))
    return existing


def begin_generation(backends: Backends, lock: DatasetLock, existing: DatasetMeta,
                     kind: str) -> int:
    """Reserve the new version's generation and record it in Redis as an ingest of ``kind``:
    a kill from now on is reported as interrupted (never resumed; ``recover --apply`` deletes
    what it wrote)."""
    generation = backends.catalog.reserve_generation(existing.id)
    plan = Plan(kind, generation, 0, 0, existing.chunk_rows, existing.fingerprint,
                existing.time_column, existing.device_column, False, existing.generation,
                existing.compression)
    backends.state.begin_ingest(lock, plan.status())
    return generation


def read_chunk(backends: Backends, meta: DatasetMeta, cm: ChunkMeta,
               columns: list[str] | None = None) -> pa.Table:
    """Chunk ``cm``, checked against its checksum, read as the dataset's newest schema (of
    ``columns`` only, if given; deletes are not applied: they stay deletes)."""
    data = read_checked(backends.store, meta.id, cm)
    schema = meta.arrow_schema
    if columns is not None:
        schema = pa.schema([schema.field(c) for c in columns], metadata=schema.metadata)
    piece = decode(data, columns)
    if not piece.schema.equals(schema):
        piece = conform_chunk(piece, schema)
    return piece.replace_schema_metadata(schema.metadata)


def write_chunk(backends: Backends, lock: DatasetLock, meta: DatasetMeta, piece: pa.Table,
                generation: int, number: int, start: int,
                shared: SharedChunks | None = None) -> tuple[ChunkMeta, bool]:
    """``piece`` as chunk ``number`` of ``generation`` of ``meta``'s dataset, its first row
    at ``start``: written, or shared (see :func:`~chunkframe.ingestion.pipeline.
    write_or_share`); and whether a file was written."""
    return write_or_share(backends.store, lock, meta.id, generation, number, start, piece,
                          meta.compression,  # type: ignore[arg-type]
                          meta.time_column, meta.device_column, shared=shared)


def commit_generation(backends: Backends, lock: DatasetLock, previous: DatasetMeta,
                      meta: DatasetMeta, chunks: list[ChunkMeta], kind: str,
                      hooks: Sequence[CommitHook], new: list[ChunkMeta]) -> DatasetMeta:
    """Checkpoint the generation's chunk table (when due), commit ``meta`` with every entry
    of it as a version of ``kind``, publish it over ``previous``'s generation and call the
    commit hooks with ``new`` (the entries they should treat as new)."""
    checkpoint = next_checkpoint(backends.store, backends.catalog, meta.id, meta.generation,
                                 None, chunks, len(chunks), lock.fence)
    lock.check()
    backends.catalog.commit(meta, chunks, lock.fence, kind, manifest=checkpoint)
    backends.state.publish(lock, meta, previous.generation, checkpoint)
    for hook in hooks:
        hook(meta, kind, new)
    return meta
