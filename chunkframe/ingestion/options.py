"""How to ingest: the keywords of ``cf.ingest`` as one value every entry point hands down."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..storage.codec import CompressionChoice

__all__ = ["IngestOptions"]


@dataclass(frozen=True)
class IngestOptions:
    """Every keyword of :func:`chunkframe.ingest` (which documents them) but the source and
    the dataset id, with the same defaults.

    ``cf.ingest`` and ``Client.ingest`` keep their keywords for their users and hand them
    down as one of these (:meth:`of`), so the ingest in this process
    (:func:`~chunkframe.ingestion.pipeline.ingest`), on Dask
    (:func:`~chunkframe.ingestion.distributed.ingest_dask`) and the recoverer's resume take
    one argument instead of repeating the keywords. Values are checked where they are used.

    >>> options = IngestOptions(chunk_rows=10_000, mode="append")
    >>> options.mode, options.workers
    ('append', 4)
    >>> options.given("chunk_rows", "workers")
    ['chunk_rows']
    """

    chunk_rows: int = 65_536
    time_column: str | None = None
    device_column: str | None = None
    mode: str = "create"
    compression: CompressionChoice = "auto"
    progress: bool | None = None
    wait: bool | float = False
    workers: int = 4
    max_pending: int | None = None
    fingerprint: str | None = None
    evolve: bool = False
    engine: str | None = None
    encodings: Mapping[str, str] | None = None

    @classmethod
    def of(cls, call: Mapping[str, Any]) -> IngestOptions:
        """The options among a call's arguments (its ``locals()``); the others (``self``,
        ``source``, ``dataset_id``) are left out.

        >>> IngestOptions.of({"source": "a.csv", "dataset_id": "a", "chunk_rows": 10}).chunk_rows
        10
        """
        return cls(**{f.name: call[f.name] for f in fields(cls) if f.name in call})

    def keywords(self) -> dict[str, Any]:
        """The options as keywords of ``Client.ingest``.

        >>> IngestOptions(mode="resume").keywords()["mode"]
        'resume'
        """
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def given(self, *names: str) -> list[str]:
        """Which of ``names`` differ from their default (were given, in effect)."""
        defaults = {f.name: f.default for f in fields(self)}
        return [n for n in names if getattr(self, n) != defaults[n]]
