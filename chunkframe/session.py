"""`Client`: one configured set of parts (Redis, store, catalog, caches); the default one too."""

from __future__ import annotations

import os
import threading
import uuid
import warnings
import weakref
from collections.abc import Mapping
from typing import Any

import pandas as pd

from .contextcache import Context, ContextCache
from .core.config import Settings, redact, resolve
from .core.errors import (
    BackendUnavailableError,
    InvalidArgumentError,
    InvalidDatasetIdError,
    StateCorruptionError,
)
from .core.integers import as_integer
from .core.keys import validate_id
from .core.model import DatasetMeta
from .core.units import plural
from .dataset import Dataset
from .display.reprs import mark
from .ingestion.distributed import file_partitions, ingest_dask, is_dask_frame
from .ingestion.lifecycle import (
    DropResult,
    SnapshotInfo,
    delete_snapshot,
    drop_dataset,
    exists,
    snapshot_info,
    snapshot_table,
    take_snapshot,
)
from .ingestion.options import IngestOptions
from .ingestion.pipeline import CommitHook, ingest
from .ingestion.versions import commit_time
from .lastcache import LastValues
from .read.reader import Reader
from .recover import Recoverer, recut_lost
from .storage.backends import Backends
from .storage.codec import CompressionChoice
from .storage.state import DatasetLock
from .storage.tier import local_tier

__all__ = ["Client", "connect", "set_default", "default_client", "client_for_token"]

_CLIENTS: weakref.WeakValueDictionary[str, Client] = weakref.WeakValueDictionary()
_default: Client | None = None
_default_lock = threading.Lock()


class Client:
    """Everything chunkframe talks to, configured once; datasets and contexts hang off it.

    It builds the parts and wires them: each feature is handed the parts it uses (the
    backends, the reader, Redis), never the client, and the last-value cache's commit hook
    is registered here, once.
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        self.token = uuid.uuid4().hex
        self.backends = Backends.from_settings(settings)
        self.redis = self.backends.state.client
        self.state, self.store, self.catalog = (self.backends.state, self.backends.store,
                                                self.backends.catalog)
        self.reader = Reader(self.state, self.store, self.catalog, settings.chunk_cache_bytes,
                             max_maps=settings.max_mapped_chunks, tier=local_tier(settings))
        self.last_values = LastValues(self.redis, self.backends, self.reader)
        # the reader adopts what this client commits first: the last-value hook and the
        # handle then read it without asking Redis and the catalog again
        self.commit_hooks: list[CommitHook] = [self.reader.adopt, self.last_values.after_commit]
        self._contexts: ContextCache | None = None
        self._lazy = threading.Lock()
        _CLIENTS[self.token] = self

    def __repr__(self) -> str:
        s = self.settings
        return (f"<chunkframe.Client store={redact(s.store_url)!r} "
                f"redis={redact(s.redis_url) or 'embedded'!r} "
                f"catalog={redact(s.catalog)!r}>")

    # -- datasets -------------------------------------------------------------------------
    def ingest(self, source: Any, dataset_id: str, *, chunk_rows: int = 65_536,
               time_column: str | None = None, device_column: str | None = None,
               mode: str = "create", compression: CompressionChoice = "auto",
               progress: bool | None = None, wait: bool | float = False, workers: int = 4,
               max_pending: int | None = None, fingerprint: str | None = None,
               evolve: bool = False, engine: str | None = None,
               encodings: Mapping[str, str] | None = None) -> Dataset:
        """Ingest ``source`` as ``dataset_id`` and return it; :func:`chunkframe.ingest`
        documents the parameters.

        A dask DataFrame, or files with ``engine="dask"``, are ingested on the active Dask
        cluster (:func:`~chunkframe.ingestion.distributed.ingest_dask`).
        """
        options = IngestOptions.of(locals())  # first: locals() holds only the arguments
        if engine not in (None, "dask"):
            raise InvalidArgumentError(
                f"engine={engine!r} is not one of None (this process) or 'dask' (the active "
                f"Dask cluster) for dataset {dataset_id!r}")
        if engine == "dask" and not is_dask_frame(source):
            source = file_partitions(source, dataset_id, self.settings.storage_options)
        if engine == "dask" or is_dask_frame(source):
            unsupported = options.given("workers", "max_pending", "fingerprint", "evolve",
                                        "encodings")
            if unsupported:
                raise InvalidArgumentError(
                    f"{', '.join(unsupported)} cannot be used with a Dask ingest of dataset "
                    f"{dataset_id!r}: partitions are the unit of work there")
            ingest_dask(self.backends, self.settings, source, dataset_id, options,
                        hooks=self.commit_hooks)
        else:
            meta = ingest(self.backends, source, dataset_id, options, hooks=self.commit_hooks)
            if mode == "resume":  # also: chunk files the store lost since, cut again
                recut_lost(self.backends, self.reader, dataset_id)
            elif self.reader.holds(meta):
                return Dataset(self, dataset_id)
        self.reader.snapshot(dataset_id, refresh=True)
        return Dataset(self, dataset_id)

    def lock(self, dataset_id: str, wait: bool | float = False) -> DatasetLock:
        """Take a dataset's write lock (see :meth:`Backends.lock`)."""
        return self.backends.lock(dataset_id, wait)

    def open(self, dataset_id: str, version: int | None = None, as_of: Any = None) -> Dataset:
        """A complete dataset; :class:`DatasetNotFoundError` names similar ids if there is none.

        ``version`` (a number from ``ds.versions()``) or ``as_of`` (a time: the version
        current then; or the name of a snapshot: the version it recorded) opens a read-only
        view of that version; a version that was pruned or never existed, or a snapshot
        that does not name the dataset, is a :class:`VersionNotFoundError` naming those
        there are. A string is a snapshot's name if such a snapshot exists, else a time.
        """
        validate_id(dataset_id)
        if version is not None and as_of is not None:
            raise InvalidArgumentError(
                f"open dataset {dataset_id!r} at version={version!r} or as_of={as_of!r}, not both")
        if as_of is not None:
            version = self._version_as_of(dataset_id, as_of)
        if version is not None:
            number = as_integer(version)
            if number is None:
                raise InvalidArgumentError(
                    f"version must be an integer from ds.versions(), got {version!r}")
            if not 0 < number < 2**63:  # versions are positive BIGINTs: no catalog holds it
                raise self.reader.version_not_found(dataset_id, f"version {number}")
            return Dataset(self, dataset_id, number)
        self.reader.snapshot(dataset_id, refresh=True)  # re-warms Redis if it lags the catalog
        return Dataset(self, dataset_id)

    def _version_as_of(self, dataset_id: str, as_of: Any) -> int:
        """The version ``as_of`` names: a snapshot's (by its name), or the one current at a
        time."""
        named = None
        if isinstance(as_of, str):
            try:
                named = self.catalog.snapshot_of(validate_id(as_of, "snapshot name"))
            except InvalidDatasetIdError:
                named = None  # not a name a snapshot can have: a time, or nothing
        if named is not None:
            versions = named[2]
            if dataset_id not in versions:  # (DatasetNotFoundError if there is no such dataset)
                shown = ", ".join(repr(d) for d in list(versions)[:10]) or "no dataset"
                raise self.reader.version_not_found(
                    dataset_id, f"version in snapshot {as_of!r} (it names {shown})")
            return versions[dataset_id]
        try:
            at = commit_time(as_of, "as_of", dataset_id)
        except (InvalidArgumentError, ValueError, TypeError) as exc:
            if not isinstance(as_of, str):
                raise
            names = self.catalog.snapshot_names()
            have = f"the snapshots are {names[:10]!r}" if names else "there are no snapshots"
            raise InvalidArgumentError(
                f"as_of={as_of!r} is neither the name of a snapshot ({have}) nor a time "
                f"({exc}); opening dataset {dataset_id!r}") from exc
        meta = self.catalog.version(dataset_id, as_of=at)
        if meta is None:
            raise self.reader.version_not_found(dataset_id, f"version as of {as_of!s}")
        return meta.version

    def datasets(self) -> pd.DataFrame:
        """One row per complete dataset: id, state, rows, chunks, bytes, ...; while the
        catalog cannot be reached, those Redis holds, with a warning saying so."""
        try:
            table = self.catalog.table()
        except BackendUnavailableError as exc:
            metas = [m for m in map(self._published, sorted(self.state.dataset_ids()))
                     if m is not None]
            warnings.warn(f"{exc}; listing the {plural(len(metas), 'dataset')} Redis holds "
                          "instead (datasets being dropped or never published may differ)",
                          RuntimeWarning, stacklevel=2)
            table = self.catalog.table_of(metas)
        return mark(table, "datasets")

    def _published(self, dataset_id: str) -> DatasetMeta | None:
        """What Redis holds as the dataset's current version (None: nothing readable)."""
        try:
            return self.state.meta(dataset_id)
        except StateCorruptionError:
            return None

    def exists(self, dataset_id: str) -> bool:
        """Whether ``dataset_id`` is a complete dataset: see :func:`chunkframe.exists`."""
        return exists(self.catalog, dataset_id)

    def drop(self, dataset_id: str, *, force: bool = False,
             wait: bool | float = False) -> DropResult:
        """Remove a dataset from the catalog, Redis and the store: see :func:`chunkframe.drop`."""
        result = drop_dataset(self.backends, dataset_id, force=force, wait=wait,
                              forget=(self.contexts_cache.discard, self.reader.forget))
        self.reader.forget(dataset_id)
        return result

    # -- snapshots ------------------------------------------------------------------------
    def snapshot(self, name: str, datasets: Any = None, metadata: Any = None) -> SnapshotInfo:
        """Record the current version of datasets under ``name``: see
        :func:`chunkframe.snapshot`."""
        return take_snapshot(self.catalog, name, datasets, metadata)

    def snapshots(self) -> pd.DataFrame:
        """Every snapshot: name, created, datasets, versions, metadata."""
        return mark(snapshot_table(self.catalog), "snapshots")

    def snapshot_info(self, name: str) -> SnapshotInfo:
        """One snapshot: what it names, when it was recorded, its metadata."""
        return snapshot_info(self.catalog, name)

    def delete_snapshot(self, name: str) -> SnapshotInfo:
        """Forget snapshot ``name``: see :func:`chunkframe.delete_snapshot`."""
        return delete_snapshot(self.catalog, name)

    def recover(self, apply: bool = False, verify: bool = False,
                progress: bool | None = None) -> pd.DataFrame:
        """The recoverer's report (see :func:`chunkframe.recover`); ``apply`` repairs."""
        if not isinstance(apply, bool) or not isinstance(verify, bool):
            raise InvalidArgumentError(
                f"apply and verify must be True or False, got apply={apply!r}, verify={verify!r}")
        report = Recoverer(self.backends, self.reader, self.last_values, self.contexts_cache,
                           self.commit_hooks).run(apply=apply, verify=verify, progress=progress)
        if apply and report["applied"].any():
            self.reader.clear()  # snapshots of the state before the repairs
        return report

    # -- contexts -------------------------------------------------------------------------
    @property
    def contexts_cache(self) -> ContextCache:
        """The context cache of this client's Redis (built on first use)."""
        if self._contexts is None:
            with self._lazy:
                if self._contexts is None:
                    self._contexts = ContextCache(self.redis, prefix=self.settings.prefix,
                                                  record=self.catalog)
        return self._contexts

    def context(self, context_id: str) -> Context:
        """The :class:`~chunkframe.contextcache.Context` of any id (a dataset's or an
        analysis')."""
        return self.contexts_cache.context(context_id)

    def contexts(self) -> pd.DataFrame:
        """Contexts in memory: id, entries, memory bytes, accesses, last access."""
        return mark(self.contexts_cache.contexts(), "contexts")

    def find(self, keyword: str, type: str | None = None) -> pd.DataFrame:
        """Entries of every context (dataset or not) having ``keyword``: see :func:`chunkframe.find`."""
        return self.contexts_cache.find(keyword, type)


def connect(
    store: str | os.PathLike[str] | None = None,
    redis: str | None = None,
    catalog: str | os.PathLike[str] | None = None,
    home: str | os.PathLike[str] | None = None,
    **options: Any,
) -> Client:
    """Configure a local client and make it the default one (see :func:`chunkframe.connect`,
    which also takes a server URL)."""
    client = Client(resolve(store, redis, catalog, home, **options))
    set_default(client)
    return client


def set_default(client: Any) -> None:
    """Make ``client`` (local, or remote over ``chunkframe serve``) the default client."""
    global _default
    with _default_lock:
        _default = client


def default_client() -> Client:
    """The client of the last :func:`connect`, or one configured from the environment."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Client(resolve())
        return _default


def client_for_token(token: str) -> Client:
    """The live client a bound DataFrame came from, else the default client."""
    return _CLIENTS.get(token) or default_client()
