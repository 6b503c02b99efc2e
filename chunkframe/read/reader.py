"""The query flow: metadata cache → binary search → byte-bounded chunk cache → checked fetch."""

from __future__ import annotations

import difflib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn, cast

import cachetools
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import redis

from ..core.chunktable import ChunkTable
from ..core.config import DEFAULT_MAX_MAPPED_CHUNKS
from ..core.errors import (
    BackendUnavailableError,
    Call,
    ChunkCorruptionError,
    ChunkFrameError,
    DatasetNotFoundError,
    Hint,
    Placeholder,
    SnapshotSupersededError,
    StateCorruptionError,
    StateRepairedError,
    VersionNotFoundError,
)
from ..core.keys import chunk_origin, validate_id
from ..core.model import ChunkMeta, DatasetMeta, ManifestRef, schema_dictionaries
from ..core.pools import ThreadPool
from ..core.ranges import row_mask, tombstone_may_touch
from ..storage.codec import checksum_matches, decode, encode, identity_of, unpack
from ..storage.manifest import read_manifest, recorded_table
from ..storage.store import FileIdentity
from ..storage.tier import LocalTier
from .planes import Planes, plane_for
from .rows import Getter, RowTemplate, Vector, column_getter, column_getters, column_vectors

if TYPE_CHECKING:
    from ..storage.catalog import Catalog
    from ..storage.state import Head, State
    from ..storage.store import ChunkStore

__all__ = ["Reader", "Snapshot", "STALENESS_SECONDS", "FETCH_THREADS", "READ_AHEAD",
           "conform_chunk"]

FETCH_THREADS = 4
"""Chunks a batch read or a scan fetches at once: reads of mapped files and of S3 objects
overlap, and Arrow decodes without the GIL."""

READ_AHEAD = 2
"""Chunks a scan fetches ahead of the one being consumed (memory: at most this many more)."""

STALENESS_SECONDS = 0.5
"""Open handles re-check a dataset's version at most this long after the last check, so a
change made elsewhere (append, overwrite, delete) is seen within 0.5 s."""


@dataclass
class Snapshot:
    """One generation and version of a dataset: its metadata and its chunk table in
    columns (searched with numpy, a chunk's entry built when asked for)."""

    meta: DatasetMeta
    chunks: ChunkTable
    schema: pa.Schema
    checked: float
    pinned: bool = False  # a version opened by number or time: it never moves
    template: RowTemplate | None = None
    uniform: bool | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def of(cls, meta: DatasetMeta, chunks: ChunkTable, checked: float,
           pinned: bool = False) -> Snapshot:
        return cls(meta, chunks, meta.arrow_schema, checked, pinned)

    @property
    def starts(self) -> np.ndarray:
        """The first serial number of each chunk."""
        return self.chunks.starts

    @property
    def stamp(self) -> tuple[int, int]:
        return (self.meta.generation, self.meta.version)

    def column_index(self, column: str) -> int:
        """Position of ``column``; a KeyError naming the columns there are if it is not one."""
        i = self.schema.get_field_index(column) if isinstance(column, str) else -1
        if i < 0:
            raise KeyError(f"dataset {self.meta.id!r} has no column {column!r}; columns are "
                           f"{self.schema.names!r}")
        return i

    def columns_of(self, columns: Sequence[str] | str | None) -> list[str] | None:
        """``columns`` (one name or several) checked against the schema; None for all."""
        if columns is None:
            return None
        cols = [columns] if isinstance(columns, str) else list(columns)
        for c in cols:
            self.column_index(c)
        return cols

    def locate(self, sn: int) -> int:
        """Index of the chunk holding ``sn`` (callers check the range first)."""
        return self.chunks.locate(sn)

    def locate_many(self, sns: np.ndarray) -> np.ndarray:
        """Chunk index of each serial number: a division when every chunk but the last is
        full (one ingest, no appends), else a binary search."""
        if self.uniform is None:
            rows = self.meta.chunk_rows
            self.uniform = bool((self.chunks.starts
                                 == np.arange(len(self.chunks), dtype=np.int64) * rows).all())
        if self.uniform:
            return sns // self.meta.chunk_rows
        return np.searchsorted(self.starts, sns, side="right") - 1


def _cache_key(snap: Snapshot, index: int) -> tuple[Any, ...]:
    return (snap.meta.id, snap.meta.generation, index, snap.meta.version)


def _planes_key(snap: Snapshot) -> tuple[Any, ...]:
    return (snap.meta.id, snap.meta.generation, snap.meta.version)


class _ChunkLRU(cachetools.LRUCache):  # type: ignore[type-arg]
    """The byte-bounded LRU of decoded chunks, telling ``evicted(key)`` of every removal."""

    def __init__(self, maxsize: int, evicted: Any):
        super().__init__(maxsize=maxsize, getsizeof=lambda c: c.nbytes)
        self._evicted = evicted

    def __delitem__(self, key: Any) -> None:
        super().__delitem__(key)
        self._evicted(key)

    def clear(self) -> None:
        for key in list(self):
            del self[key]


class _Chunk:
    """A decoded chunk in the cache: the Arrow table, its row getters and numpy views, how
    often batch reads found it cached (planes fill for chunks seen twice: :meth:`Reader.planes`).

    ``nbytes`` is what it holds in private memory (what the byte bound counts); ``source``
    the verified map its table views, if any (file-backed: not counted)."""

    __slots__ = ("table", "nbytes", "getters", "getter", "vectors", "batches", "source")

    def __init__(self, table: pa.Table, nbytes: int, batches: int = 0,
                 source: _Map | None = None):
        self.table = table
        self.nbytes = nbytes
        self.getters: list[Getter] | None = None  # every column's, for whole rows
        self.getter: dict[int, Getter] = {}  # single columns', for single values
        self.vectors: dict[int, Vector] = {}  # the columns batch reads gathered, by position
        self.batches = batches
        self.source = source


class _Map:
    """A local chunk file mapped, whose bytes passed their checksum when it was mapped:
    reads decode from it without checking it again while the file under its key is the one
    mapped (same device, inode, size and mtime)."""

    __slots__ = ("key", "dataset", "checksum", "buffer", "identity", "nbytes", "checked", "users")

    def __init__(self, key: str, dataset: str, checksum: str, buffer: pa.Buffer,
                 identity: FileIdentity, checked: float):
        self.key, self.dataset, self.checksum = key, dataset, checksum
        self.buffer, self.identity, self.nbytes = buffer, identity, buffer.size
        self.checked = checked  # when the file was last seen to be the one mapped
        self.users: set[tuple[Any, ...]] = set()  # cache keys of decoded chunks viewing it


_TIER = cast("_Map", object())
""":meth:`Reader._verified`'s mark of bytes read from the local tier (checked there)."""


class _MapLRU(cachetools.LRUCache):  # type: ignore[type-arg]
    """The verified maps, bounded by count, telling ``unmapped(map)`` of every removal."""

    def __init__(self, maxsize: int, unmapped: Any):
        super().__init__(maxsize=maxsize)
        self._unmapped = unmapped

    def __delitem__(self, key: Any) -> None:
        found = cachetools.Cache.__getitem__(self, key)
        super().__delitem__(key)
        self._unmapped(found)

    def clear(self) -> None:
        for key in list(self):
            del self[key]


class Reader:
    """Shared by every :class:`~chunkframe.dataset.Dataset` of a client: the caches live here."""

    def __init__(self, state: State, store: ChunkStore, catalog: Catalog,
                 chunk_cache_bytes: int, meta_cache_size: int = 1024,
                 fetch_threads: int = FETCH_THREADS, max_maps: int = DEFAULT_MAX_MAPPED_CHUNKS,
                 tier: LocalTier | None = None):
        self.state, self.store, self.catalog = state, store, catalog
        # chunks of an object store kept decompressed on local disk (none for local stores)
        self.tier = tier if tier is not None and store.remote and tier.max_bytes else None
        # the current snapshot of a dataset under its id, a version of it under (id, version)
        self._snapshots: cachetools.LRUCache[str | tuple[str, int], Snapshot] = (
            cachetools.LRUCache(meta_cache_size))
        self._manifests: cachetools.LRUCache[str, ChunkTable] = cachetools.LRUCache(16)
        self._chunks = _ChunkLRU(chunk_cache_bytes, self._evicted)
        # verified maps of local chunk files, by store key (none for stores that download)
        self._maps = _MapLRU(max_maps if store.mapped else 0, self._unmapped)
        self._viewers: dict[tuple[Any, ...], _Map] = {}  # cached chunk -> the map it views
        self._planes: dict[tuple[Any, ...], Planes] = {}
        self._lock = threading.RLock()
        self._inflight: dict[tuple[Any, ...], Future[_Chunk]] = {}
        self._fetch_threads = fetch_threads
        self._pool: ThreadPool | None = None
        self.hits = self.misses = self.fetches = 0
        self.skipped = 0  # chunks a filtered read left unfetched: their statistics ruled them out
        self.catalog_outages = 0  # snapshots served from Redis alone: the catalog was down
        self.map_hits = 0  # chunks decoded from a verified map: no read, no checksum
        self.tier_hits = 0  # chunks of an object store read from the local tier: no download

    # -- metadata -------------------------------------------------------------------------
    def snapshot(self, dataset_id: str, refresh: bool = False) -> Snapshot:
        """The current snapshot, re-validated against Redis at most every STALENESS_SECONDS.

        A handle that holds a snapshot catches up by reading only the chunk entries committed
        since (one Redis step); ``refresh``: check now. The catalog wins when Redis lags it.
        """
        snap = self._snapshots.get(dataset_id)
        now = time.monotonic()
        if snap is not None and not refresh and now - snap.checked < STALENESS_SECONDS:
            return snap
        validate_id(dataset_id)
        try:
            new = self._load(dataset_id, now, snap, refresh)
        except redis.RedisError:
            # Redis is the hot store, not the record: while it is down, keep serving what we
            # know, or read the catalog
            if snap is not None and not refresh:
                snap.checked = now
                return snap
            new = self._from_catalog(dataset_id, now, warm=False)
        if new is snap:
            snap.checked = now
            return snap
        with self._lock:
            self._snapshots[dataset_id] = new
        return new

    def adopt(self, meta: DatasetMeta, op: str, new: Sequence[ChunkMeta]) -> None:
        """A commit hook: the snapshot of the version this client just committed (``meta``,
        whose chunks are the held snapshot's then ``new``), taken without reading Redis or
        the catalog again. Nothing is adopted unless the entries tile ``meta`` exactly.
        ``op`` is the commit's kind (unused: the chunk entries say what changed)."""
        held = self._snapshots.get(meta.id)
        keep = meta.chunks - len(new)
        if keep == 0:
            base = ChunkTable()
        elif (held is not None and not held.pinned and held.meta.generation == meta.generation
              and held.meta.version < meta.version and len(held.chunks) >= keep):
            base = held.chunks.head(keep)
        else:
            return
        chunks = base.extend(list(new))
        if len(chunks) == meta.chunks and chunks.gap(meta.rows) is None:
            with self._lock:
                self._snapshots[meta.id] = Snapshot.of(meta, chunks, time.monotonic())

    def holds(self, meta: DatasetMeta) -> bool:
        """Whether the current snapshot of ``meta.id`` is ``meta`` (adopted at its commit)."""
        held = self._snapshots.get(meta.id)
        return held is not None and held.meta == meta

    def _load(self, dataset_id: str, now: float, held: Snapshot | None,
              refresh: bool = False) -> Snapshot:
        """The current snapshot from Redis (reusing ``held``'s chunk entries), else from the
        catalog, re-warming Redis from it; ``refresh``: check Redis against the catalog even
        when it says nothing changed."""
        same = held is not None and not held.pinned
        try:
            head = self.state.head(dataset_id, held.meta.generation if held and same else None,
                                   len(held.chunks) if held and same else 0)
        except StateCorruptionError:
            head = None  # unreadable: the catalog is the record
        unchanged = head is not None and same and held is not None and head.meta == held.meta
        if unchanged and held is not None and not refresh:
            return held
        if head is not None and held is not None and held.meta.generation != head.meta.generation:
            same = False
        try:
            record = self.catalog.get(dataset_id)
        except BackendUnavailableError:
            if head is None:
                raise
            # the record cannot be reached (a PostgreSQL outage): Redis is the hot store, and
            # holds what the last commit published; serve it, checked against the record
            # again once the catalog answers
            self.catalog_outages += 1
            record = head.meta
        if head is not None and (record is None or (record.generation, record.version)
                                 > (head.meta.generation, head.meta.version)):
            head = None  # Redis is behind the record (a crash between commit and publish)
        elif unchanged and held is not None:
            return held  # checked against the record: still current
        chunks = None if head is None else self._chunks_of(head, held if same else None)
        if head is None or chunks is None:
            # Redis lost the dataset (flush, failover), fell behind, or holds an unreadable
            # or inconsistent chunk table: the catalog is the record; re-warm Redis from it
            return self._from_catalog(dataset_id, now, record=record)
        return Snapshot.of(head.meta, chunks, now)

    def _chunks_of(self, head: Head, held: Snapshot | None) -> ChunkTable | None:
        """The chunk table ``head`` describes: ``held``'s entries (or the checkpoint's) then
        those read after them; None if any is missing or they do not tile the dataset."""
        meta = head.meta
        if any(c is None for c in head.tail):
            return None
        if held is not None and head.first <= len(held.chunks):
            base: ChunkTable | None = held.chunks
        elif head.manifest is not None and head.first <= head.manifest.chunks:
            base = self.manifest(meta.id, meta.generation, head.manifest)
        else:
            base = ChunkTable() if head.first == 0 else None
        if base is None:
            return None
        chunks = base.head(head.first).extend(head.tail)  # type: ignore[arg-type]
        if len(chunks) != meta.chunks or chunks.gap(meta.rows) is not None:
            return None  # rows that do not tile the dataset: never trusted
        return chunks

    def manifest(self, dataset_id: str, generation: int, ref: ManifestRef) -> ChunkTable | None:
        """The checkpoint ``ref`` (kept: manifests never change), None if it is gone or
        damaged (a newer one replaced it: the catalog's rows are read then)."""
        hit = self._manifests.get(ref.key)
        if hit is not None:
            return hit
        try:
            table = read_manifest(self.store, dataset_id, generation, ref,
                                  lambda lo, hi: self.catalog.chunks(dataset_id, generation, lo, hi))
        except StateCorruptionError:
            return None
        if table is not None:
            with self._lock:
                self._manifests[ref.key] = table
        return table

    def catalog_chunks(self, meta: DatasetMeta) -> ChunkTable:
        """``meta``'s chunk table from the catalog (see :func:`recorded_table`)."""
        return recorded_table(self.store, self.catalog, meta,
                              lambda ref: self.manifest(meta.id, meta.generation, ref))

    def _from_catalog(self, dataset_id: str, now: float, warm: bool = True,
                      record: DatasetMeta | None = None) -> Snapshot:
        meta = record or self.catalog.get(dataset_id)
        if meta is None:
            raise self._not_found(dataset_id)
        chunks = self.catalog_chunks(meta)
        if warm:
            ref = self.catalog.manifest(dataset_id, meta.generation)
            ref = ref if ref is not None and ref.chunks <= meta.chunks else None
            self.state.warm(meta, ref, list(chunks[0 if ref is None else ref.chunks:]))
        return Snapshot.of(meta, chunks, now)

    def version_snapshot(self, dataset_id: str, version: int) -> Snapshot:
        """Version ``version`` of the dataset as it was committed: its row count, schema and
        deletes over its generation's chunks. Cached apart from the current snapshot, and
        checked against the catalog at most every STALENESS_SECONDS (a pruned version then
        raises :class:`VersionNotFoundError`)."""
        key = (dataset_id, version)
        snap = self._snapshots.get(key)
        now = time.monotonic()
        if snap is not None and now - snap.checked < STALENESS_SECONDS:
            return snap
        validate_id(dataset_id)
        meta = self.catalog.version(dataset_id, version)
        if snap is not None and meta is not None:  # pruning a version forgets it first
            snap.checked = now
            return snap
        chunks = None if meta is None else self.catalog_chunks(meta)
        if meta is None or chunks is None or len(chunks) != meta.chunks:
            with self._lock:
                self._snapshots.pop(key, None)
            raise self.version_not_found(dataset_id, f"version {version}")
        new = Snapshot.of(meta, chunks, now, pinned=True)
        with self._lock:
            self._snapshots[key] = new
        return new

    def version_not_found(self, dataset_id: str, asked: str) -> VersionNotFoundError | DatasetNotFoundError:
        """:class:`VersionNotFoundError` naming the versions there are, or
        :class:`DatasetNotFoundError` when the dataset itself does not exist."""
        versions = self.catalog.versions(dataset_id)["version"].tolist()
        if not versions and self.catalog.get(dataset_id) is None:
            return self._not_found(dataset_id)
        return VersionNotFoundError(dataset_id, asked, versions)

    def _not_found(self, dataset_id: str) -> DatasetNotFoundError:
        ids = self.catalog.ids()
        close = difflib.get_close_matches(dataset_id, ids, n=3, cutoff=0.5)
        hint = f"; did you mean {close!r}" if close else (
            f"; known datasets: {ids[:10]!r}" if ids else "; no datasets exist yet")
        return DatasetNotFoundError(
            f"no complete dataset {dataset_id!r}{hint}",
            hint=Hint("ingest it with {} or list them with {}",
                      Call.of("ingest", Placeholder("source"), dataset_id), Call.of("datasets")),
        )

    @staticmethod
    def template(snap: Snapshot, entry: _Chunk | None = None) -> RowTemplate:
        """The pandas row rules of ``snap``'s schema, learnt from one row of a chunk in hand."""
        if snap.template is None:
            if entry is None:
                raise RuntimeError("template() needs a chunk the first time")
            with snap._lock:
                if snap.template is None:
                    snap.template = RowTemplate(entry.table.slice(0, 1).to_pandas())
        return snap.template

    # -- chunks ---------------------------------------------------------------------------
    def chunk(self, snap: Snapshot, index: int, cache: bool = True) -> _Chunk:
        """The decoded chunk ``index`` of ``snap``: from the cache, else fetched once, checked.

        ``cache=False`` (scans) serves a miss without inserting it, so scans keep hot chunks.
        """
        key = _cache_key(snap, index)
        with self._lock:  # an LRU hit reorders the cache: not safe beside another's eviction
            entry = self._chunks.get(key)
        if entry is not None and self._current(entry):
            self.hits += 1
            return entry
        if not cache:
            self.misses += 1
            return self._fetch(snap, index)
        with self._lock:
            entry = self._chunks.get(key)
            if entry is not None:
                self.hits += 1
                return entry
            fut = self._inflight.get(key)
            owner = fut is None
            if owner:
                fut = self._inflight[key] = Future()
                self.misses += 1
        assert fut is not None
        if not owner:
            return fut.result()  # single flight: another thread is fetching this chunk
        try:
            entry = self._fetch(snap, index)
            with self._lock:
                self._keep(key, entry)
            fut.set_result(entry)
            return entry
        except BaseException as exc:
            fut.set_exception(exc)
            raise
        finally:
            with self._lock:
                self._inflight.pop(key, None)

    def _keep(self, key: tuple[Any, ...], entry: _Chunk) -> None:
        """Cache ``entry`` (under the lock). One viewing a verified map is tied to it: it
        leaves the cache with the map; if the map left already, its bytes count as private."""
        if not self._chunks.maxsize:
            return  # a cache of no bytes keeps nothing, not even chunks that cost none
        src = entry.source
        if src is not None and self._maps.get(src.key) is not src:
            entry.nbytes += src.nbytes
            entry.source = src = None
        try:
            self._chunks[key] = entry
        except ValueError:
            return  # larger than the whole cache: served, not kept
        if src is not None:
            src.users.add(key)
            self._viewers[key] = src

    def _current(self, entry: _Chunk) -> bool:
        """Whether a cached chunk may be served: True unless it views a map whose file,
        looked at again after STALENESS_SECONDS, was replaced (then the map and every
        chunk viewing it leave the cache, and the next read maps and checks it again)."""
        src = entry.source
        if src is None:
            return True
        now = time.monotonic()
        if now - src.checked < STALENESS_SECONDS:
            return True
        if self.store.identity(src.key) == src.identity:
            src.checked = now
            return True
        self._unmap(src)
        return False

    def _unmap(self, mapped: _Map) -> None:
        """Forget ``mapped`` (if still registered) and the chunks viewing it."""
        with self._lock:
            if self._maps.get(mapped.key) is mapped:
                del self._maps[mapped.key]

    def _unmapped(self, mapped: _Map) -> None:
        """A map left the registry: the cached chunks viewing it go too (under the lock)."""
        for key in list(mapped.users):
            self._chunks.pop(key, None)
        mapped.users.clear()

    def _verified(self, snap: Snapshot, cm: ChunkMeta, fresh: bool = False
                  ) -> tuple[pa.Buffer, _Map | None]:
        """Chunk ``cm``'s bytes, checked: its verified map while the file under its key is
        the one mapped (no read, no checksum), else read from the store and checked over all
        its bytes (a local file's map then kept, verified). ``fresh``: read and check even
        when a verified map is kept (``verify``)."""
        ds = snap.meta.id
        mapped = None if fresh else self._maps_get(cm.key)
        if mapped is not None and mapped.checksum == cm.checksum:
            if self.store.identity(cm.key) == mapped.identity:
                mapped.checked = time.monotonic()
                self.map_hits += 1
                return mapped.buffer, mapped
            self._unmap(mapped)  # replaced under its map: map it and check it again
        if self.tier is not None and not fresh:
            kept = self.tier.get(cm.key, cm.checksum)  # checked against its own checksum
            if kept is not None:
                self.tier_hits += 1
                return kept, _TIER
        self.fetches += 1
        got = self.store.read_mapped(cm.key)
        data, identity = (None, None) if got is None else got
        if data is None and snap.pinned and self.catalog.version(ds, snap.meta.version) is None:
            with self._lock:  # pruned while it was open
                self._snapshots.pop((ds, snap.meta.version), None)
            raise self.version_not_found(ds, f"version {snap.meta.version}")
        if data is None and snap.pinned:
            raise ChunkCorruptionError(ds, cm.chunk, cm.key, reason="the chunk object is missing")
        if data is None:
            current = self._current_generation(ds)
            if current != snap.meta.generation:
                with self._lock:
                    self._snapshots.pop(ds, None)
                raise SnapshotSupersededError(ds, snap.meta.generation, current)
            # a repair elsewhere may have moved it to a new key: the catalog settles it
            self._suspect(snap, cm, ChunkCorruptionError(ds, cm.chunk, cm.key,
                                                         reason="the chunk object is missing"))
        ok, computed = checksum_matches(data, cm.checksum)
        if not ok:
            reason = ("truncated" if len(data) != cm.nbytes else "checksum mismatch")
            self._suspect(snap, cm, ChunkCorruptionError(ds, cm.chunk, cm.key, cm.checksum,
                                                         computed, reason))
        if identity is None or self._maps.maxsize == 0:
            return data, None
        mapped = _Map(cm.key, ds, cm.checksum, data, identity, time.monotonic())
        with self._lock:
            old = self._maps.get(cm.key)
            if old is not None and old.identity == identity and old.checksum == cm.checksum:
                old.checked = mapped.checked  # checked again: the same file, still mapped
                return old.buffer, old
            if old is not None:
                del self._maps[cm.key]
            self._maps[cm.key] = mapped
        return data, mapped

    def _maps_get(self, key: str) -> _Map | None:
        if not self._maps.maxsize:
            return None
        with self._lock:
            return self._maps.get(key)

    def _fetch(self, snap: Snapshot, index: int, columns: Sequence[int] | None = None,
               fresh: bool = False) -> _Chunk:
        """Chunk ``index``, its bytes verified (:meth:`_verified`); decoded whole, or only
        ``columns`` (positions: served, never cached). ``fresh``: read and check the file
        even if a verified map of it is kept."""
        cm = snap.chunks[index]
        ds = snap.meta.id
        data, mapped = self._verified(snap, cm, fresh)
        kept = mapped is _TIER  # from the local tier: uncompressed, a view of its file
        if kept:
            mapped = None
        names = snap.schema.names
        read = None if columns is None else _with_tombstone_columns(snap.meta, names, columns)
        raw = decode(data, None if read is None else [names[j] for j in read], plain=False)
        table, unpacked = unpack(raw)
        if table.num_rows != cm.rows:
            self._suspect(snap, cm, ChunkCorruptionError(ds, cm.chunk, cm.key, reason=(
                f"holds {table.num_rows} rows, its metadata says {cm.rows}")))
        found = identity_of(table.schema)
        if found is not None:  # chunks written before they named themselves have none
            gen, number = chunk_origin(cm.key) or (snap.meta.generation, cm.chunk)
            expected = {"dataset": ds, "generation": gen, "chunk": number, "start": cm.start,
                        "rows": cm.rows}
            wrong = [f"{k} {found.get(k)!r} in the file, {v!r} in the chunk table"
                     for k, v in expected.items() if found.get(k) != v]
            if wrong:
                if mapped is not None:
                    self._unmap(mapped)
                self._suspect(snap, cm, ChunkCorruptionError(ds, cm.chunk, cm.key, reason=(
                    "the file and the chunk table disagree: " + "; ".join(wrong))))
        if self.tier is not None and not kept and read is None:
            # kept decompressed (encodings and the file's identity as they are), for the
            # next read of this host; a projection decoded only part of it: not kept
            try:
                self.tier.put(cm.key, cm.checksum,
                              data if not snap.meta.compression else encode(raw))
            except OSError:  # a full or read-only disk: the read goes on without it
                pass
        schema = snap.schema if read is None else pa.schema(
            [snap.schema.field(j) for j in read], metadata=snap.schema.metadata)
        conformed = not table.schema.equals(schema)
        if conformed:  # a chunk written before the dataset's schema evolved (or after)
            table = conform_chunk(table, schema)
        elif table.schema.metadata != schema.metadata:  # same types, evolved pandas dtypes
            table = table.replace_schema_metadata(schema.metadata)
        if snap.meta.tombstones:
            table = apply_tombstones(table, snap.meta, cm)
        if columns is not None and read is not None and len(read) != len(set(columns)):
            table = table.select([names[j] for j in sorted(set(columns))])  # deletes' columns
        # uncompressed chunks decode to zero-copy views of ``data``: a verified map's pages
        # are file-backed, shared and reclaimable (not counted), downloaded bytes are private;
        # decompression, conforming and tombstones make new buffers, which the bound counts,
        # as it counts the text of dictionary-encoded columns (``unpacked``)
        plain = (not snap.meta.tombstones and (kept or not snap.meta.compression)
                 and not conformed)
        private = ((unpacked if plain else table.nbytes)
                   + (0 if mapped is not None or kept else len(data)))  # the tier's: mapped
        if snap.meta.compression:  # decompressed into new buffers: nothing views the map
            mapped = None
        return _Chunk(table, private, source=mapped)

    def _suspect(self, snap: Snapshot, cm: ChunkMeta, error: ChunkFrameError) -> NoReturn:
        """A chunk disagrees with the metadata used to find it: if that metadata came from
        Redis and the catalog records the chunk otherwise, rebuild Redis's chunk table from
        the catalog and raise :class:`StateRepairedError` (reads retry once); else ``error``."""
        ds, gen = snap.meta.id, snap.meta.generation
        if not snap.pinned:
            record = self.catalog.get(ds)
            if record is not None and record.generation == gen:
                recorded = self.catalog.chunks(ds, gen, cm.chunk, cm.chunk + 1)
                if recorded != [cm]:
                    self._from_catalog(ds, time.monotonic(), record=record)  # re-warms Redis
                    with self._lock:
                        self._snapshots.pop(ds, None)
                    raise StateRepairedError(ds, gen, f"chunk {cm.chunk}: {error}")
        raise error

    def _current_generation(self, dataset_id: str) -> int | None:
        record = self.catalog.get(dataset_id)  # the record, not Redis, which may lag it
        return record.generation if record is not None else None

    def getters(self, snap: Snapshot, index: int) -> tuple[_Chunk, list[Getter]]:
        entry = self.chunk(snap, index)
        getters = entry.getters
        if getters is None:
            getters = entry.getters = column_getters(entry.table, self.template(snap, entry))
        return entry, getters

    def value_getter(self, snap: Snapshot, index: int, column: int) -> Getter:
        """The ``row -> value`` function of column ``column`` (a position) of chunk
        ``index``: only that column's is built (and kept with the cached chunk)."""
        entry = self.chunk(snap, index)
        if entry.getters is not None:
            return entry.getters[column]
        getter = entry.getter.get(column)
        if getter is None:
            getter = entry.getter[column] = column_getter(entry.table, self.template(snap, entry),
                                                          column)
        return getter

    def vectors(self, snap: Snapshot, index: int, entry: _Chunk, columns: Sequence[int]
                ) -> dict[int, Vector]:
        """Cached chunk ``index``'s columns ``columns`` (positions) as numpy gathers them
        (views, no text codes), each made once, when first asked for; what they copy
        (unpacked booleans) counts in the byte bound."""
        todo = [j for j in dict.fromkeys(columns) if j not in entry.vectors]
        if todo:
            made = column_vectors(entry.table, self.template(snap, entry), text_codes=False,
                                  columns=todo)
            extra = sum(v.nbytes for v in made if isinstance(v, np.ndarray) and v.flags.owndata)
            key = _cache_key(snap, index)
            with self._lock:
                fresh = [j for j in todo if j not in entry.vectors]
                entry.vectors.update((j, v) for j, v in zip(todo, made, strict=True)
                                     if j in fresh)
                if extra and fresh == todo and self._chunks.get(key) is entry:
                    entry.nbytes += extra
                    self._reinsert(key, entry)
        return entry.vectors

    def _reinsert(self, key: tuple[Any, ...], entry: _Chunk) -> None:
        """Insert a grown entry again, so the byte bound sees its new size (under the lock)."""
        try:
            self._chunks[key] = entry
        except ValueError:
            self._chunks.pop(key, None)  # now larger than the whole cache

    # -- many chunks: batch reads and scans -----------------------------------------------
    def _executor(self) -> ThreadPool:
        pool = self._pool
        if pool is None or pool.closed:  # closed: a submit was interrupted (see ThreadPool)
            with self._lock:
                if self._pool is None or self._pool.closed:
                    self._pool = ThreadPool(self._fetch_threads, thread_name_prefix="cf-fetch")
                pool = self._pool
        return pool

    def stream(self, snap: Snapshot, indices: Sequence[int], columns: Sequence[int] | None = None,
               cache: bool = False, ahead: int = FETCH_THREADS,
               then: Callable[[int, _Chunk], Any] | None = None) -> Iterator[tuple[int, Any]]:
        """Chunks ``indices`` of ``snap`` in that order, each fetched (checked) in a small
        thread pool while earlier ones are consumed, at most ``ahead`` beyond the one
        yielded: memory stays bounded however many chunks a read needs.

        Cached chunks are served from the cache. ``cache=True`` keeps the fetched ones
        (for reads whose chunks the cache can hold); otherwise they are dropped once
        consumed, and every chunk yielded holds only ``columns`` (positions; fetched ones
        decode only those). ``then(i, chunk)``,
        if given, runs in the pool too and is yielded instead of the chunk (the rows a batch
        read takes from it: Arrow works without the GIL, so both cores take).
        """
        pending: deque[tuple[int, Future[Any]]] = deque()
        todo = iter(indices)

        def work(i: int, found: _Chunk | None) -> Any:
            entry = found if found is not None else (
                self._batch_chunk(snap, i) if cache else self._fetch(snap, i, columns))
            return entry if then is None else then(i, entry)

        def submit() -> None:
            i = next(todo, None)
            if i is None:
                return
            found = self.cached(snap, i)
            if found is None and not cache:
                self.misses += 1
            elif found is not None and columns is not None and not cache:
                # a cached chunk is whole: the same columns as the fetched ones, in order
                names = snap.schema.names
                found = _Chunk(found.table.select([names[j] for j in sorted(set(columns))]),
                               found.nbytes)
            if found is not None and then is None:
                fut: Future[Any] = Future()
                fut.set_result(found)
            else:
                fut = self._executor().submit(work, i, found)
            pending.append((i, fut))

        for _ in range(max(ahead, 0) + 1):
            submit()
        try:
            while pending:
                i, done = pending.popleft()
                entry = done.result()
                del done  # holds the entry too
                yield i, entry
                del entry
                submit()
        finally:
            for _, fut in pending:
                fut.cancel()

    def _batch_chunk(self, snap: Snapshot, index: int) -> _Chunk:
        """:meth:`chunk`, counted as read by a batch (see :meth:`planes`)."""
        entry = self.chunk(snap, index)
        entry.batches += 1
        return entry

    def cached(self, snap: Snapshot, index: int) -> _Chunk | None:
        """Chunk ``index`` if the cache holds it (counted as a hit), else None."""
        with self._lock:
            entry = self._chunks.get(_cache_key(snap, index))
        if entry is not None and not self._current(entry):
            entry = None
        if entry is not None:
            self.hits += 1
        return entry

    def fits(self, snap: Snapshot, indices: np.ndarray) -> bool:
        """Whether the cache can hold chunks ``indices`` of ``snap`` all at once, decoded.

        A plain chunk decodes to views of its bytes: of a verified map (local files: no
        private memory, but one open map each, of at most ``max_maps``) or of its download
        (its size); deletes add a masked copy (counted as :meth:`_fetch` counts it);
        compressed chunks decode to an unknown multiple of their files, so they never count
        as fitting (batches stream).
        """
        if snap.meta.compression:
            return False
        stored = sum(snap.chunks[i].nbytes for i in indices.tolist())
        if self._maps.maxsize:
            if len(indices) > self._maps.maxsize:
                return False
            return (stored if snap.meta.tombstones else 0) <= self._chunks.maxsize
        factor = 2 if snap.meta.tombstones else 1
        return factor * stored <= self._chunks.maxsize

    # -- gather planes (planes.py) --------------------------------------------------------
    def planes(self, snap: Snapshot, chunks: np.ndarray) -> Planes | None:
        """``snap``'s gather planes, pinned (the caller unpins them), if they hold every
        chunk of ``chunks`` once this call has filled what it may; else None.

        Planes are filled only for chunks the cache holds (their bytes count against its
        bound, and leave with them) and which an earlier batch read found cached too: a
        chunk read once by a batch is gathered from directly, which costs a few times
        ``iloc``, where filling its planes costs a copy of every row, worth it only for
        chunks read again. Nothing is filled when the chunks asked do not all fit.
        """
        key = _planes_key(snap)
        with self._lock:
            entries: list[_Chunk | None] = [self._chunks.get(_cache_key(snap, i))
                                            for i in chunks.tolist()]
            seen = [0 if e is None else e.batches for e in entries]
            for e in entries:
                if e is not None:
                    e.batches += 1
            if any(e is None for e in entries) or snap.template is None:
                return None
            planes = self._planes.get(key)
            if planes is not None and planes.tried[chunks].all():
                self.hits += len(entries)
                planes.pin()
                return planes
            if planes is None:
                if not all(seen):
                    return None
                planes = self._planes[key] = self._new_planes(snap)
            todo = [(i, e) for i, e, n in zip(chunks.tolist(), entries, seen, strict=True)
                    if e is not None and n and not planes.tried[i]]
            grow = sum(planes.chunk_bytes(i) for i, _ in todo)
            held = sum(e.nbytes for e in entries if e is not None)
            if not todo or held + grow > self._chunks.maxsize:
                if planes.empty():
                    del self._planes[key]
                return None
            planes.pin()
        try:
            template = self.template(snap)
            for i, entry in todo:
                columns = planes.fill(i, entry.table, column_vectors(entry.table, template))
                ckey = _cache_key(snap, i)
                with self._lock:
                    if (self._planes.get(key) is planes and self._chunks.get(ckey) is entry
                            and not planes.tried[i]):
                        entry.nbytes += planes.mark(i, columns)
                        self._reinsert(ckey, entry)
            with self._lock:
                covered = bool(planes.tried[chunks].all())
        except BaseException:
            planes.unpin()
            raise
        if not covered:
            planes.unpin()
            return None
        return planes

    def _new_planes(self, snap: Snapshot) -> Planes:
        template, rows = self.template(snap), snap.meta.rows
        return Planes(snap.starts, rows, [plane_for(rows, snap.schema.field(j), dtype)
                                          for j, dtype in enumerate(template.dtypes)])

    def _evicted(self, key: tuple[Any, ...]) -> None:
        """A chunk left the cache: its rows leave the planes, its map forgets it (called
        under the lock)."""
        src = self._viewers.pop(key, None)
        if src is not None:
            src.users.discard(key)
        pkey = (key[0], key[1], key[3])
        planes = self._planes.get(pkey)
        if planes is not None:
            planes.drop(key[2])
            if planes.empty():
                del self._planes[pkey]

    def verify_chunk(self, snap: Snapshot, index: int) -> str | None:
        """None if chunk ``index`` is intact in the store and names itself as its chunk table
        does, else what is wrong (no caching; the file is read and checked again even when a
        verified map of it is kept)."""
        try:
            self._fetch(snap, index, fresh=True)
        except (ChunkCorruptionError, StateRepairedError) as exc:
            return str(exc)
        except pa.ArrowInvalid as exc:
            return f"not a readable Arrow IPC file: {exc}"
        except ValueError as exc:  # a checksum of an algorithm this version does not know
            return str(exc)
        return None

    # -- bookkeeping ----------------------------------------------------------------------
    def cache_info(self, dataset_id: str | None = None) -> dict[str, Any]:
        """Counters and sizes; ``bytes``/``mapped_bytes`` of ``dataset_id`` (None: all).

        Private bytes (``bytes``, ``total_bytes``: what decoding made, bounded by
        ``max_bytes``) and mapped bytes (``mapped_bytes``, ``total_mapped_bytes``: verified
        local files, file-backed and shared, bounded by ``max_maps`` files) are apart.
        """
        with self._lock:
            keys = [k for k in self._chunks if dataset_id is None or k[0] == dataset_id]
            nbytes = sum(self._chunks[k].nbytes for k in keys) if keys else 0
            maps = list(self._maps.values())
        mine = [m for m in maps if dataset_id is None or m.dataset == dataset_id]
        total = self.hits + self.misses
        return {
            "hits": self.hits, "misses": self.misses, "fetches": self.fetches,
            "skipped": self.skipped, "map_hits": self.map_hits,
            "hit_rate": self.hits / total if total else 0.0,
            "chunks": len(keys), "bytes": nbytes,
            "max_bytes": int(self._chunks.maxsize), "total_bytes": int(self._chunks.currsize),
            "mapped_chunks": len(mine), "mapped_bytes": sum(m.nbytes for m in mine),
            "total_mapped_bytes": sum(m.nbytes for m in maps),
            "max_maps": int(self._maps.maxsize),
        }

    def forget(self, dataset_id: str) -> None:
        """Drop what this reader holds of one dataset (a dropped one): its snapshots, those
        of its versions, and its cached chunks."""
        with self._lock:
            for key in [k for k in self._snapshots
                        if k == dataset_id or (isinstance(k, tuple) and k[0] == dataset_id)]:
                self._snapshots.pop(key, None)
            for key in [k for k in self._chunks if k[0] == dataset_id]:
                del self._chunks[key]

    def clear(self, metadata: bool = True) -> None:
        """Empty the chunk cache and close the verified maps (and, unless
        ``metadata=False``, the metadata cache)."""
        with self._lock:
            self._chunks.clear()
            self._maps.clear()
            if metadata:
                self._snapshots.clear()
                self._manifests.clear()


def conform_chunk(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """A chunk read as ``schema``, the dataset's newest (``append(evolve=True)``): columns
    the chunk lacks are missing values, widened types are cast as pandas would cast them."""
    arrays = []
    categories = schema_dictionaries(schema)
    for f in schema:
        i = table.schema.get_field_index(f.name)
        if i < 0 and f.name in categories:  # missing values of the same categorical dtype
            arrays.append(pa.DictionaryArray.from_arrays(
                pa.nulls(table.num_rows, f.type.index_type),
                categories[f.name].cast(f.type.value_type), ordered=f.type.ordered))
        elif i < 0:
            arrays.append(pa.nulls(table.num_rows, f.type))
        else:
            col = table.column(i)
            arrays.append(col if col.type.equals(f.type) else col.cast(f.type, safe=False))
    return pa.Table.from_arrays(arrays, schema=schema)


def apply_tombstones(table: pa.Table, meta: DatasetMeta, cm: ChunkMeta) -> pa.Table:
    """Null out the values that time-range deletes removed (serial numbers stay stable)."""
    tcol, dcol = meta.time_column, meta.device_column
    if tcol is None:
        return table
    measurements = [n for n in table.schema.names if n not in (tcol, dcol)]
    for tomb in meta.tombstones:
        if not tombstone_may_touch(tomb, cm, tcol):
            continue
        mask = pc.is_valid(table.column(tcol))  # a value without a time lies in no range
        within = row_mask(table, tcol, tomb.start, tomb.end, dcol,
                          None if tomb.device is None else (tomb.device,))
        if within is not None:
            mask = pc.and_(mask, within)
        if tomb.rows is not None and cm.start + cm.rows > tomb.rows:  # rows appended later
            mask = pc.and_(mask, pa.array(np.arange(cm.start, cm.start + cm.rows) < tomb.rows))
        if not pc.any(mask).as_py():
            continue
        for name in tomb.columns if tomb.columns is not None else measurements:
            if name not in measurements:
                continue
            i = table.schema.get_field_index(name)
            col = table.column(i)
            nulled = pc.if_else(mask, pa.scalar(None, col.type), col)
            table = table.set_column(i, table.schema.field(i), nulled)
    return table.combine_chunks() if any(c.num_chunks > 1 for c in table.columns) else table


def _with_tombstone_columns(meta: DatasetMeta, names: list[str], columns: Sequence[int]
                            ) -> list[int]:
    """``columns`` plus the time and device columns deletes are applied by, if any."""
    read = set(columns)
    if meta.tombstones:
        read.update(names.index(c) for c in (meta.time_column, meta.device_column)
                    if c is not None)
    return sorted(read)
