"""The three places a dataset lives (Redis state, chunk store, catalog) and the lock over them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .catalog import Catalog
from .state import DatasetLock, State
from .store import ChunkStore

__all__ = ["Backends"]


@dataclass(frozen=True)
class Backends:
    """What writers are handed: hot state, chunk bytes, the record, and the options for
    reading sources and writing exports next to them (fsspec ``storage_options``)."""

    state: State
    store: ChunkStore
    catalog: Catalog
    storage_options: Mapping[str, Any] = field(default_factory=dict)

    def lock(self, dataset_id: str, wait: bool | float = False) -> DatasetLock:
        """Take a dataset's write lock: in Redis (renewed, fenced), then claimed in the
        catalog, so a writer whose lock expired can never commit there again."""
        lock = self.state.lock(dataset_id).acquire(wait)
        try:
            self.catalog.claim(dataset_id, lock.fence)
        except BaseException:
            lock.release()
            raise
        return lock
