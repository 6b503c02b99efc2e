"""Restoring a missing or damaged catalog from Redis's committed state and the chunk files."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import pyarrow as pa

from ..core.chunktable import ChunkTable
from ..core.errors import StateCorruptionError
from ..core.keys import CHUNK_KEY, chunk_origin
from ..core.model import ChunkMeta, DatasetMeta, ManifestRef, schema_to_text
from ..core.ranges import column_ranges
from ..storage.codec import IDENTITY, checksum, decode, identity_of
from ..storage.manifest import read_manifest

if TYPE_CHECKING:
    from ..storage.backends import Backends

__all__ = ["Restorable", "restorable", "from_redis", "from_files", "restore", "fences_in",
           "RESTORED"]

RESTORED = "restored-from-chunk-files"
"""The fingerprint of a dataset rebuilt from its chunk files alone (its source's is not in
them): ``resume`` of it is refused, ``append`` and ``overwrite`` work."""



@dataclass(frozen=True)
class Restorable:
    """What a catalog restore writes for one dataset: versions (each a generation's
    metadata and chunk table, the current one last), and the highest fencing token and
    generation that Redis or the store show (the restored catalog never goes below)."""

    dataset: str
    versions: tuple[tuple[DatasetMeta, tuple[ChunkMeta, ...]], ...]
    fence: int
    generation: int
    source: str  # "Redis" or "the chunk files"
    since: DatasetMeta | None = None  # the catalog's record these versions follow, if any
    manifest: ManifestRef | None = None  # the current generation's checkpoint, from Redis

    @property
    def current(self) -> DatasetMeta:
        return self.versions[-1][0]

    def kinds(self) -> list[tuple[DatasetMeta, list[ChunkMeta], str]]:
        """The versions with what made each (a new generation: an overwrite, or the first
        ingest; the same one: an append, or a delete when it holds no more rows)."""
        out: list[tuple[DatasetMeta, list[ChunkMeta], str]] = []
        before = self.since
        for meta, chunks in self.versions:
            kind = ("ingest" if before is None else "overwrite"
                    if meta.generation != before.generation
                    else "append" if meta.rows > before.rows else "delete")
            out.append((meta, list(chunks), kind))
            before = meta
        return out


def fences_in(keys: list[str]) -> tuple[int, int]:
    """The highest fencing token and generation named by chunk keys (0 when none)."""
    fence = generation = 0
    for key in keys:
        m = CHUNK_KEY.match(key)
        if m:
            fence, generation = max(fence, int(m["fence"])), max(generation, int(m["gen"]))
    return fence, generation


def _floors(backends: Backends, ds: str, keys: list[str]) -> tuple[int, int]:
    fence, generation = fences_in(keys)
    status = backends.state.ingest_status(ds)
    for value in (backends.state.fence(ds), status.get("fence")):
        try:
            fence = max(fence, int(value or 0))
        except ValueError:
            pass  # unreadable: the files' tokens stand
    try:
        generation = max(generation, int(status.get("generation") or 0))
    except ValueError:
        pass
    return fence, generation


def _identity(data: bytes) -> dict[str, object] | None:
    try:
        return identity_of(pa.ipc.open_file(pa.py_buffer(data)).schema)
    except (pa.ArrowInvalid, OSError):
        return {}  # not an Arrow file: names nothing


def _gap(chunks: list[ChunkMeta], meta: DatasetMeta) -> str | None:
    """Where ``chunks`` fail to number 0, 1, ... and tile ``meta``'s rows, or None."""
    try:
        return ChunkTable.of(chunks).gap(meta.rows)
    except ValueError as exc:  # an entry numbered otherwise than its place
        return str(exc)


def from_redis(backends: Backends, ds: str, keys: list[str]) -> tuple[Restorable | None, str]:
    """The dataset as Redis's committed state records it, if that state is complete and
    every chunk file it names exists and names itself alike; else None and why not."""
    state = backends.state
    try:
        head = state.head(ds)
        base = None if head is None or head.manifest is None else read_manifest(
            backends.store, ds, head.meta.generation, head.manifest)
    except StateCorruptionError as exc:
        return None, f"Redis's state of it is unreadable ({exc.disagreement})"
    if head is None:
        return None, "Redis has no committed metadata of it"
    meta, ref = head.meta, head.manifest
    if ref is not None and base is None:
        return None, f"its checkpoint {ref.key!r} is missing"
    chunks = [*(base.head(head.first) if base is not None else []),
              *(c for c in head.tail if c is not None)]
    gap = _gap(chunks, meta) if len(chunks) == meta.chunks else (
        f"Redis lacks {meta.chunks - len(chunks)} of its {meta.chunks} chunk entries")
    if gap is not None:
        return None, f"Redis's chunk table is inconsistent: {gap}"
    stored = set(keys)
    for c in chunks:
        data = backends.store.get(c.key) if c.key in stored else None
        if data is None:
            return None, f"the file of chunk {c.chunk} ({c.key!r}) is missing"
        named = _identity(data)
        gen, number = chunk_origin(c.key) or (meta.generation, c.chunk)
        expected = {"dataset": ds, "generation": gen, "chunk": number, "start": c.start,
                    "rows": c.rows}
        if named is not None and named != expected:
            return None, f"the file of chunk {c.chunk} ({c.key!r}) names {named}, not {expected}"
    fence, generation = _floors(backends, ds, keys)
    return Restorable(ds, ((meta, tuple(chunks)),), fence, max(generation, meta.generation),
                      "Redis", manifest=ref), ""


def from_files(backends: Backends, ds: str, keys: list[str]) -> tuple[Restorable | None, str]:
    """The dataset as its chunk files describe themselves: every generation whose files
    tile rows 0..n end to end becomes a version (the newest is current), with checksums
    recomputed from the files. Chunks of an ingest under way or interrupted are left out
    (the status in Redis says which), as are files that do not name themselves.

    The files do not record the source's fingerprint, the time and device columns or the
    deletes: the restored dataset has none of them (a warning in the recoverer's report)."""
    status = backends.state.ingest_status(ds)
    busy_gen, busy_from = None, 0
    if status:
        try:
            busy_gen = int(status.get("generation", ""))
            busy_from = int(status.get("base_chunk") or 0) if status.get("op") == "append" else 0
        except ValueError:
            busy_gen = None
    by_gen: dict[int, dict[int, tuple[int, str]]] = {}
    for key in keys:
        m = CHUNK_KEY.match(key)
        if m is None or m["ds"] != ds:
            continue
        gen, n, fence = int(m["gen"]), int(m["chunk"]), int(m["fence"])
        if gen == busy_gen and n >= busy_from:
            continue
        best = by_gen.setdefault(gen, {}).get(n)
        if best is None or fence > best[0]:  # a resumed ingest's copy is the same rows
            by_gen[gen][n] = (fence, key)
    versions: list[tuple[DatasetMeta, tuple[ChunkMeta, ...]]] = []
    for gen in sorted(by_gen):
        version = _generation(backends, ds, gen, by_gen[gen], len(versions) + 1)
        if version is not None:
            versions.append(version)
    if not versions:
        return None, "no generation of its chunk files tiles its rows from the first"
    fence, generation = _floors(backends, ds, keys)
    return Restorable(ds, tuple(versions), fence, generation, "the chunk files"), ""


def _generation(backends: Backends, ds: str, gen: int, files: dict[int, tuple[int, str]],
                version: int) -> tuple[DatasetMeta, tuple[ChunkMeta, ...]] | None:
    """Generation ``gen`` of ``ds`` from its files, or None when they do not tile rows
    0..n (a chunk missing, unreadable or naming something else)."""
    chunks: list[ChunkMeta] = []
    schema = None
    at = 0
    for n in range(len(files)):
        if n not in files:
            return None
        key = files[n][1]
        data = backends.store.get(key)
        if data is None:
            return None
        try:
            table = decode(data)
        except (pa.ArrowInvalid, OSError):
            return None
        named = identity_of(table.schema)
        if named != {"dataset": ds, "generation": gen, "chunk": n, "start": at,
                     "rows": table.num_rows}:
            return None
        chunks.append(ChunkMeta(n, at, table.num_rows, key, checksum(data), len(data), {},
                                column_ranges(table)))
        at += table.num_rows
        schema = table.schema
    if schema is None:
        return None
    meta_kv = {k: v for k, v in (schema.metadata or {}).items() if k != IDENTITY}
    now = time.time()
    meta = DatasetMeta(
        id=ds, generation=gen, rows=at, chunks=len(chunks), nbytes=sum(c.nbytes for c in chunks),
        schema=schema_to_text(schema.with_metadata(meta_kv)),
        chunk_rows=max(c.rows for c in chunks), fingerprint=RESTORED, version=version,
        created=now, updated=now)
    return meta, tuple(chunks)


def restorable(backends: Backends, ds: str, keys: list[str], files_too: bool,
               since: DatasetMeta | None = None) -> tuple[Restorable | None, str]:
    """What to restore of ``ds``: Redis's committed state where it is complete and
    consistent (with the older generations its files still tile as earlier versions, so
    their files are kept), else, when ``files_too``, the chunk files alone; or None and
    why not.

    ``since``: the catalog's record of ``ds`` (a catalog restored from an older backup);
    then only Redis's committed state newer than it is restorable, with the versions its
    files show in between (an append's chunks, an overwritten generation)."""
    found, why = from_redis(backends, ds, keys)
    if since is not None:
        if found is None:
            return None, why
        if (found.current.generation, found.current.version) <= (since.generation,
                                                                 since.version):
            return None, "Redis's committed state is not newer than the catalog's"
    files, why_not = from_files(backends, ds, keys) if files_too or found else (None, why)
    if found is None:
        return (files, why_not) if files_too else (None, why)
    at = found.current.updated  # older versions were committed before the current one
    older = [] if files is None else [
        (meta.evolve(created=min(meta.created, at), updated=min(meta.updated, at)), chunks)
        for meta, chunks in files.versions if meta.generation < found.current.generation
        and (since is None or (meta.generation, meta.rows) > (since.generation, since.rows))]
    first = 0 if since is None else since.version
    if since is not None:
        older = [(meta.evolve(version=first + i + 1), chunks)
                 for i, (meta, chunks) in enumerate(older)]
    if older and first + len(older) < found.current.version:
        found = Restorable(ds, (*older, *found.versions), found.fence, found.generation,
                           found.source, manifest=found.manifest)
    return replace(found, since=since), ""


def restore(backends: Backends, found: Restorable) -> None:
    """Record ``found`` in the catalog under the dataset's lock, whose fencing token is
    above every token Redis or the files show (so is the catalog's from now on), in one
    catalog transaction (all its versions or none); a dataset the catalog records as new
    or newer meanwhile is left as it is."""
    ds = found.dataset
    backends.state.raise_fence(ds, found.fence)
    lock = backends.lock(ds)  # claims its token in the catalog
    try:
        backends.catalog.restore(ds, found.kinds(), lock.fence, found.generation,
                                 found.manifest)
    finally:
        lock.release()
