"""Where a version's bytes go: per column stored bytes, encoding, compression ratio, bytes shared."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from ..core.model import ChunkMeta
from ..storage.codec import ENCODING, unpack
from ..storage.store import read_checked

if TYPE_CHECKING:
    from ..storage.catalog import Catalog
    from ..storage.store import ChunkStore
    from .reader import Snapshot

__all__ = ["STORAGE_COLUMNS", "storage_frame", "shared_keys"]

STORAGE_COLUMNS = ["column", "type", "encoding", "bytes", "plain_bytes", "ratio",
                   "shared_bytes"]
"""The columns of ``ds.storage()``."""

_PADDING = 8
_PREFIX = 8  # a compressed IPC buffer starts with its uncompressed length (int64)


def _padded(n: int) -> int:
    return -(-n // _PADDING) * _PADDING


def _buffers(array: pa.Array) -> list[pa.Buffer]:
    """Every buffer an IPC file stores for ``array``, a dictionary's values included."""
    out = [b for b in array.buffers() if b is not None]
    if pa.types.is_dictionary(array.type):
        out += _buffers(array.dictionary)
    return out


def _stored_size(buf: pa.Buffer, compression: str | None) -> int:
    """What ``buf`` takes in an IPC file written with ``compression``: compressed with that
    codec behind its length, or kept as it is where that is no larger (as Arrow does)."""
    if compression is None:
        return _padded(buf.size)
    packed = pa.compress(buf, codec=compression, asbytes=False).size if buf.size else 0
    return _padded(_PREFIX + min(packed, buf.size))


def _encoding(field: pa.Field) -> str:
    how = (field.metadata or {}).get(ENCODING)
    if how is None and pa.types.is_dictionary(field.type):  # a categorical: as pandas has it
        return f"categorical ({field.type.index_type} indices)"
    if how is None:
        return "plain"
    if how == b"dictionary":
        return f"dictionary ({field.type.index_type} indices)"
    return f"narrow ({field.type})" if how.startswith(b"narrow:") else how.decode()


def shared_keys(catalog: Catalog, dataset_id: str, version: int) -> set[str]:
    """The chunk files that the dataset's kept versions other than ``version`` read (those
    a named snapshot keeps included: ``prune_versions`` never removes them). Within a
    generation a later version reads at least the chunks an earlier one does, so one query
    per generation: its chunks up to the latest other version's count."""
    versions = catalog.versions(dataset_id)
    others = versions[versions["version"] != version]
    out: set[str] = set()
    for _, group in others.groupby("generation"):
        meta = catalog.version(dataset_id, int(group["version"].max()))
        if meta is not None:
            out |= {c.key for c in catalog.chunks(dataset_id, meta.generation, 0, meta.chunks)}
    return out


def storage_frame(store: ChunkStore, catalog: Catalog, snap: Snapshot,
                  progress: Callable[[int], Any] | None = None) -> tuple[pd.DataFrame,
                                                                           dict[str, Any]]:
    """One row per column of the version ``snap`` holds (see :data:`STORAGE_COLUMNS`), and
    its totals: ``files`` (bytes of its chunk files, schemas and footers included),
    ``shared`` (of those, in files other kept versions read too), ``chunks``,
    ``shared_chunks``, ``compression`` and ``version``.

    Every chunk file is read (and checked against its checksum: a damaged one raises
    :class:`ChunkCorruptionError`). ``bytes`` is what the column takes in the files: its
    buffers, mapped as stored (uncompressed), or each compressed with the dataset's codec as
    Arrow's IPC writer does (compressed); ``plain_bytes`` what it takes decoded to its
    plain type, as reads return it; ``ratio`` = ``plain_bytes / bytes``.
    """
    meta = snap.meta
    shared = shared_keys(catalog, meta.id, meta.version)
    compression = meta.compression
    names = snap.schema.names
    stored = dict.fromkeys(names, 0)
    plain = dict.fromkeys(names, 0)
    common = dict.fromkeys(names, 0)
    encodings: dict[str, set[str]] = {n: set() for n in names}
    files = shared_files = shared_chunks = 0
    cm: ChunkMeta
    for cm in snap.chunks:
        data = read_checked(store, meta.id, cm)
        table = pa.ipc.open_file(data).read_all()
        is_shared = cm.key in shared
        files += cm.nbytes
        if is_shared:
            shared_files += cm.nbytes
            shared_chunks += 1
        decoded, _ = unpack(table)
        for i, field in enumerate(table.schema):
            if field.name not in stored:  # a column a later schema dropped: not read
                continue
            size = sum(_stored_size(b, compression) for chunk in table.column(i).chunks
                       for b in _buffers(chunk))
            stored[field.name] += size
            plain[field.name] += decoded.column(i).nbytes
            encodings[field.name].add(_encoding(field))
            if is_shared:
                common[field.name] += size
        if progress is not None:
            progress(1)
    rows = [(n, str(snap.schema.field(n).type), ", ".join(sorted(encodings[n])) or "plain",
             stored[n], plain[n], plain[n] / stored[n] if stored[n] else float("nan"),
             common[n]) for n in names]
    df = pd.DataFrame(rows, columns=STORAGE_COLUMNS)
    totals = {"version": meta.version, "chunks": len(snap.chunks), "files": files,
              "shared": shared_files, "shared_chunks": shared_chunks,
              "compression": compression or "none"}
    return df, totals
