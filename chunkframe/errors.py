"""Exceptions raised by chunkframe; each message says what happened, to what, and what to do."""

from __future__ import annotations

__all__ = [
    "ChunkFrameError",
    "DatasetNotFoundError",
    "DatasetExistsError",
    "DatasetLockedError",
    "LockLostError",
    "ChunkCorruptionError",
    "SchemaMismatchError",
    "InvalidDatasetIdError",
    "SourceError",
    "BackendUnavailableError",
    "ContextError",
    "InvalidArgumentError",
]


class ChunkFrameError(Exception):
    """Base class of every error chunkframe raises on purpose."""


class DatasetNotFoundError(ChunkFrameError, KeyError):
    """No complete dataset has this id."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class DatasetExistsError(ChunkFrameError, FileExistsError):
    """`mode="create"` on a dataset id that is already taken."""


class DatasetLockedError(ChunkFrameError):
    """Another worker holds the dataset's ingest lock."""


class LockLostError(ChunkFrameError):
    """This worker's lock expired or was taken over; it stopped writing."""


class ChunkCorruptionError(ChunkFrameError):
    """A chunk's bytes are missing, truncated or fail their checksum."""

    def __init__(
        self,
        dataset: str,
        chunk: int,
        key: str,
        stored: str | None = None,
        computed: str | None = None,
        reason: str = "checksum mismatch",
    ) -> None:
        self.dataset, self.chunk, self.key = dataset, chunk, key
        self.stored, self.computed, self.reason = stored, computed, reason
        detail = f" (stored {stored}, computed {computed})" if stored or computed else ""
        super().__init__(
            f"chunk {chunk} of dataset {dataset!r} at key {key!r} is corrupt: {reason}{detail}. "
            f"No value from it was returned. Re-ingest the dataset "
            f"(cf.ingest(source, {dataset!r}, mode='overwrite')) or restore the chunk file."
        )


class SchemaMismatchError(ChunkFrameError, ValueError):
    """Data does not fit the dataset's schema (append, multi-file source)."""


class InvalidDatasetIdError(ChunkFrameError, ValueError):
    """A dataset id that could escape its directory or key space."""


class SourceError(ChunkFrameError, ValueError):
    """An ingest source that cannot be read or is empty."""


class BackendUnavailableError(ChunkFrameError, ConnectionError):
    """Redis, the chunk store or the catalog cannot be reached."""


class ContextError(ChunkFrameError, ValueError):
    """Bad input to the context cache (unknown type, empty key, unserialisable value)."""


class InvalidArgumentError(ChunkFrameError, ValueError):
    """An argument out of its range (``mode``, ``chunk_rows``, ...); nothing was touched."""


class SnapshotSupersededError(ChunkFrameError):
    """A read began on a generation that an overwrite replaced (and removed) meanwhile.

    Dataset methods retry once on the new generation; only a long-running iteration
    (``iter_chunks``, ``export``) can see it.
    """

    def __init__(self, dataset: str, old: int, new: int | None) -> None:
        self.dataset, self.old, self.new = dataset, old, new
        super().__init__(
            f"dataset {dataset!r} was replaced (generation {old} -> {new}) while this read was "
            "running, and the old chunks are gone; run the read again to see the new data"
        )
