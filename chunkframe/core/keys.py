"""Dataset id validation and the one place that turns ids into Redis keys and chunk keys."""

from __future__ import annotations

import re

from .errors import InvalidDatasetIdError

__all__ = ["validate_id", "RedisKeys", "chunk_key", "manifest_key", "generation_prefix",
           "chunk_origin", "CHUNK_KEY", "MAX_ID_LENGTH"]

MAX_ID_LENGTH = 200
_FORBIDDEN = re.compile(r"[/\\{}\x00-\x1f\x7f]")


def validate_id(dataset_id: object, what: str = "dataset id") -> str:
    """Return ``dataset_id`` if it is safe as a path segment and a Redis hash tag, else raise."""
    if not isinstance(dataset_id, str):
        raise InvalidDatasetIdError(
            f"{what} must be a string, got {type(dataset_id).__name__} {dataset_id!r}"
        )
    if not dataset_id or not dataset_id.strip():
        raise InvalidDatasetIdError(f"{what} is empty; give a name such as 'flights'")
    size = len(dataset_id.encode("utf-8", "surrogatepass"))
    if size > MAX_ID_LENGTH:  # bytes, as file systems count a name (255 at most on most)
        raise InvalidDatasetIdError(
            f"{what} {dataset_id[:40]!r}... is {size} bytes in UTF-8; the limit is "
            f"{MAX_ID_LENGTH} bytes (a non-ASCII character takes 2 to 4)"
        )
    bad = _FORBIDDEN.search(dataset_id)
    if bad:
        raise InvalidDatasetIdError(
            f"{what} {dataset_id!r} contains {bad.group()!r}; path separators, braces and "
            "control characters are not allowed (use letters, digits, '-', '_', '.')"
        )
    if dataset_id in (".", "..") or dataset_id.startswith("."):
        raise InvalidDatasetIdError(
            f"{what} {dataset_id!r} starts with '.'; that could name a hidden or parent "
            "directory, so start it with a letter or digit"
        )
    if dataset_id != dataset_id.strip():
        raise InvalidDatasetIdError(f"{what} {dataset_id!r} has leading or trailing spaces")
    return dataset_id


class RedisKeys:
    """Key names for one dataset; the id sits in a hash tag so all keys share a cluster slot."""

    def __init__(self, prefix: str, dataset_id: str) -> None:
        self.base = f"{prefix}:{{{validate_id(dataset_id)}}}"

    @property
    def lock(self) -> str:
        return f"{self.base}:lock"

    @property
    def fence(self) -> str:
        return f"{self.base}:fence"

    @property
    def ingest(self) -> str:
        """Hash: the status of the ingest under way (generation, fingerprint, ...)."""
        return f"{self.base}:ingest"

    @property
    def meta(self) -> str:
        """Hash: hot metadata of the complete dataset (generation, rows, schema, version)."""
        return f"{self.base}:meta"

    def chunks(self, generation: int) -> str:
        """Hash: chunk number -> chunk metadata JSON, for one generation."""
        return f"{self.base}:g{generation}:chunks"

    @property
    def tombstones(self) -> str:
        return f"{self.base}:tombstones"

    @property
    def last(self) -> str:
        return f"{self.base}:last"

    @property
    def flushed(self) -> str:
        return f"{self.base}:flushed"


def generation_prefix(dataset_id: str, generation: int) -> str:
    """Store prefix holding every chunk of one generation of a dataset."""
    return f"{validate_id(dataset_id)}/g{generation:06d}"


def chunk_key(dataset_id: str, generation: int, chunk_no: int, fence: int) -> str:
    """Store key of a chunk written under lock fencing token ``fence``.

    Deterministic for a lock holder; the fence in the name means a worker that lost its
    lock (paused, then woken) can never overwrite a chunk that a later owner committed.
    Files no checkpoint refers to are swept by the next ingest under the lock.
    """
    return f"{generation_prefix(dataset_id, generation)}/c{chunk_no:08d}-f{fence}.arrow"


def manifest_key(dataset_id: str, generation: int, chunks: int, fence: int) -> str:
    """Store key of the checkpoint of a generation's first ``chunks`` chunk entries, written
    under fencing token ``fence`` (it lives beside the chunks, and goes with them)."""
    return f"{generation_prefix(dataset_id, generation)}/m{chunks:010d}-f{fence}.manifest"


CHUNK_KEY = re.compile(r"^(?P<ds>[^/]+)/g(?P<gen>\d+)/c(?P<chunk>\d+)-f(?P<fence>\d+)\.arrow$")
"""A chunk file's key: its dataset, generation, chunk number and fencing token."""


def chunk_origin(key: str) -> tuple[int, int] | None:
    """The generation and chunk number a chunk file was written as (its key says so), or
    None for a key of another form. A compacted generation shares the files of the chunks
    it did not merge: they keep the name, and the identity, they were written with."""
    m = CHUNK_KEY.match(key)
    return None if m is None else (int(m["gen"]), int(m["chunk"]))
