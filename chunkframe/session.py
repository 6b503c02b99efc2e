"""`Client`: one configured set of parts (Redis, store, catalog, caches); the default one too."""

from __future__ import annotations

import os
import threading
import uuid
import weakref
from typing import TYPE_CHECKING, Any

import pandas as pd

from .core.config import Settings, resolve
from .core.keys import validate_id
from .dataset import Dataset
from .ingestion.pipeline import CommitHook, ingest
from .read.reader import Reader
from .storage.catalog import Catalog
from .storage.state import DatasetLock, State, connect_redis
from .storage.store import ChunkStore

if TYPE_CHECKING:
    from .contextcache.cache import Context, ContextCache
    from .lastcache.cache import LastValues

__all__ = ["Client", "connect", "default_client", "client_for_token"]

_CLIENTS: weakref.WeakValueDictionary[str, Client] = weakref.WeakValueDictionary()
_default: Client | None = None
_default_lock = threading.Lock()


class Client:
    """Everything chunkframe talks to, configured once; datasets and contexts hang off it."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.token = uuid.uuid4().hex
        self.redis = connect_redis(settings.redis_url, settings.home)
        self.state = State(self.redis, settings.prefix, settings.lock_ttl)
        self.store = ChunkStore(settings.store_url, settings.storage_options)
        self.catalog = Catalog(settings.catalog_path)
        self.reader = Reader(self.state, self.store, self.catalog, settings.chunk_cache_bytes)
        self.commit_hooks: list[CommitHook] = []
        self._last_values: LastValues | None = None
        self._contexts: ContextCache | None = None
        self._lazy = threading.Lock()
        _CLIENTS[self.token] = self

    def __repr__(self) -> str:
        s = self.settings
        return (f"<chunkframe.Client store={s.store_url!r} redis={s.redis_url or 'embedded'!r} "
                f"catalog={str(s.catalog_path)!r}>")

    # -- datasets -------------------------------------------------------------------------
    def ingest(self, source: Any, dataset_id: str, **kwargs: Any) -> Dataset:
        """Ingest ``source`` as ``dataset_id`` and return it; see :func:`chunkframe.ingestion.pipeline`."""
        self.last_values  # noqa: B018 - make sure its commit hook is registered
        ingest(self, source, dataset_id, **kwargs)
        self.reader.snapshot(dataset_id, refresh=True)
        return Dataset(self, dataset_id)

    def lock(self, dataset_id: str, wait: bool | float = False) -> DatasetLock:
        """Take a dataset's write lock: in Redis (renewed, fenced), then claimed in the
        catalog so a writer whose lock expired can never commit there again."""
        lock = self.state.lock(dataset_id).acquire(wait)
        try:
            self.catalog.claim(dataset_id, lock.fence)
        except BaseException:
            lock.release()
            raise
        return lock

    def open(self, dataset_id: str) -> Dataset:
        """A complete dataset; :class:`DatasetNotFoundError` names similar ids if there is none."""
        validate_id(dataset_id)
        self.reader.snapshot(dataset_id, refresh=True)  # re-warms Redis if it lags the catalog
        return Dataset(self, dataset_id)

    def datasets(self) -> pd.DataFrame:
        """One row per complete dataset: id, state, rows, chunks, bytes, ..."""
        return self.catalog.table()

    # -- parts built on first use ---------------------------------------------------------
    @property
    def last_values(self) -> LastValues:
        if self._last_values is None:
            with self._lazy:
                if self._last_values is None:
                    from .lastcache.cache import LastValues

                    self._last_values = LastValues(self)
        return self._last_values

    @property
    def contexts_cache(self) -> ContextCache:
        if self._contexts is None:
            with self._lazy:
                if self._contexts is None:
                    from .contextcache.cache import ContextCache

                    self._contexts = ContextCache(self.redis, prefix=self.settings.prefix)
        return self._contexts

    def context(self, context_id: str) -> Context:
        """The :class:`~chunkframe.contextcache.cache.Context` of any id (a dataset's or an analysis')."""
        return self.contexts_cache.context(context_id)

    def contexts(self) -> pd.DataFrame:
        return self.contexts_cache.contexts()


def connect(
    store: str | os.PathLike[str] | None = None,
    redis: str | None = None,
    catalog: str | os.PathLike[str] | None = None,
    home: str | os.PathLike[str] | None = None,
    **options: Any,
) -> Client:
    """Configure chunkframe and make the result the default client.

    ``None`` arguments fall back to ``CHUNKFRAME_STORE``, ``CHUNKFRAME_REDIS_URL``,
    ``CHUNKFRAME_CATALOG`` and ``CHUNKFRAME_HOME`` (default ``~/.chunkframe``); with no Redis
    URL anywhere, an embedded redis-server is started under the home directory. Options:
    ``storage_options`` (fsspec, e.g. an S3 endpoint), ``chunk_cache_bytes``, ``lock_ttl``,
    ``prefix``. A server URL (``cf.connect("http://host:8765", token=...)``) gives a
    remote client over ``chunkframe serve`` instead (see :mod:`chunkframe.service.remote`).
    """
    global _default
    client: Any
    if isinstance(store, str) and store.startswith(("http://", "https://")):
        from .service.remote import connect_remote  # reads through a server

        client = connect_remote(store, redis=redis, catalog=catalog, home=home, **options)
    else:
        client = Client(resolve(store, redis, catalog, home, **options))
    with _default_lock:
        _default = client
    return client


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
