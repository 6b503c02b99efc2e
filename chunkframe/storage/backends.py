"""The three places a dataset lives (Redis state, chunk store, catalog) and the lock over them."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..core.config import Settings
from ..core.permissions import modes
from .catalog import Catalog
from .state import DatasetLock, State, connect_redis
from .store import ChunkStore, open_store

__all__ = ["Backends", "process_backends"]

_PROCESS: dict[str, Backends] = {}
_PROCESS_LOCK = threading.Lock()


@dataclass(frozen=True)
class Backends:
    """What writers are handed: hot state, chunk bytes, the record, and the options for
    reading sources and writing exports next to them (fsspec ``storage_options``)."""

    state: State
    store: ChunkStore
    catalog: Catalog
    storage_options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> Backends:
        """Connect to the Redis, chunk store and catalog that ``settings`` name."""
        made = modes(settings.permissions)
        return cls(State(connect_redis(settings.redis_url, settings.home, made), settings.prefix,
                         settings.lock_ttl, settings.retry_seconds),
                   open_store(settings.store_url, settings.storage_options, made),
                   Catalog(settings.catalog, made, settings.retry_seconds), settings.storage_options)

    def lock(self, dataset_id: str, wait: bool | float = False,
             floor: int | None = None, dropping: bool = False) -> DatasetLock:
        """Take a dataset's write lock: in Redis (renewed, fenced), then claimed in the
        catalog, so a writer whose lock expired can never commit there again.

        Redis's fencing counter is first raised to the catalog's latest token: after Redis
        lost its keys (a flush, a restart without persistence) the next token still
        exceeds every token the catalog saw, so the write is not refused as superseded.
        ``floor``: the catalog's latest token, if the caller just read it. ``dropping``: the
        caller drops the dataset (only a dropper may claim one whose drop is unfinished)."""
        self.state.raise_fence(dataset_id, self.catalog.fence(dataset_id) if floor is None
                               else floor)
        lock = self.state.lock(dataset_id).acquire(wait)
        try:
            self.catalog.claim(dataset_id, lock.fence, dropping)
        except BaseException:
            lock.release()
            raise
        return lock


def process_backends(settings: Settings) -> Backends:
    """This process's :class:`Backends` for ``settings``, connected on first use and then
    shared (what a Dask worker uses for every task it runs: its own connections, built
    from the settings it was sent, never a client pickled by another process)."""
    key = f"{settings!r} {sorted(settings.storage_options.items())!r}"
    with _PROCESS_LOCK:
        found = _PROCESS.get(key)
        if found is None:
            found = _PROCESS[key] = Backends.from_settings(settings)
        return found
