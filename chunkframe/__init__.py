"""chunkframe: large tables in chunked, checksummed Arrow storage, read back from pandas."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._after_import import after_import as _after_import_of
from .core.errors import (
    BackendUnavailableError,
    ChunkCorruptionError,
    ChunkFrameError,
    ContextError,
    DatasetExistsError,
    DatasetLockedError,
    DatasetNotFoundError,
    InvalidArgumentError,
    InvalidDatasetIdError,
    LockLostError,
    PathNotFoundError,
    SchemaMismatchError,
    SnapshotSupersededError,
    SourceError,
)

if TYPE_CHECKING:
    import pandas as pd

    from .contextcache.cache import ContextType, keyword, register_value_type
    from .dataset import Dataset
    from .session import Client, connect

__all__ = [
    "Client", "Dataset", "connect", "ingest", "open", "datasets", "context", "contexts",
    "ContextType", "keyword", "register_value_type",
    "ChunkFrameError", "DatasetNotFoundError", "DatasetExistsError", "DatasetLockedError",
    "LockLostError", "ChunkCorruptionError", "SchemaMismatchError", "InvalidDatasetIdError",
    "SourceError", "BackendUnavailableError", "InvalidArgumentError", "ContextError",
    "SnapshotSupersededError", "PathNotFoundError",
]


def _read_version() -> str:
    """The installed distribution's version (pyproject.toml is the one place it is written);
    in a source tree without install metadata, pyproject.toml's own line."""
    from importlib import metadata

    try:
        return metadata.version("chunkframe")
    except metadata.PackageNotFoundError:
        import tomllib
        from pathlib import Path

        try:
            with (Path(__file__).resolve().parent.parent / "pyproject.toml").open("rb") as f:
                return str(tomllib.load(f)["project"]["version"])
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            return "0+unknown"


__version__ = _read_version()

# df.chunk and series.chunk are registered as soon as pandas is imported: now if it is already,
# else right after `import pandas` (before any frame can exist). So `import chunkframe`, and
# the command line with it, does not import pandas; a command that needs it does.
_after_import_of("pandas", lambda: importlib.import_module(".frontends.accessor", __name__))

# The heavy parts (Redis, fsspec, the reader...) are imported on first use (PEP 562).
_LAZY = {
    "Client": "session", "connect": "session", "default_client": "session",
    "Dataset": "dataset",
    "ContextType": "contextcache.cache", "keyword": "contextcache.cache",
    "register_value_type": "contextcache.cache",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))




def ingest(source: Any, dataset_id: str, chunk_rows: int = 65_536, time_column: str | None = None,
           device_column: str | None = None, mode: str = "create", **kwargs: Any) -> Dataset:
    """Ingest ``source`` as dataset ``dataset_id`` with the default client.

    ``source``: a DataFrame, an iterable of DataFrames, or a path/URL/glob of CSV, Parquet or
    Arrow files (local or ``s3://``). ``mode``: ``"create"`` (error if it exists),
    ``"overwrite"`` (replace it once the new one is complete), ``"append"``, ``"resume"``
    (continue an interrupted ingest of the same source). Other keywords: ``compression``
    (``"zstd"``/``"lz4"``), ``progress`` (a bar; default: only in notebooks and terminals),
    ``wait`` (for the lock), ``workers``, ``fingerprint`` (names a source that cannot be
    recognised from its rows, such as a generator, so that ``mode="resume"`` accepts it).
    """
    from .session import default_client

    return default_client().ingest(source, dataset_id, chunk_rows=chunk_rows,
                                   time_column=time_column, device_column=device_column,
                                   mode=mode, **kwargs)


def open(dataset_id: str) -> Dataset:  # noqa: A001 - the public name of the design
    """Open a complete dataset with the default client."""
    from .session import default_client

    return default_client().open(dataset_id)


def datasets() -> pd.DataFrame:
    """Complete datasets of the default client: id, state, rows, chunks, bytes, ..."""
    from .session import default_client

    return default_client().datasets()


def context(context_id: str) -> Any:
    """The context (tags, keyword index) of any id, with the default client."""
    from .session import default_client

    return default_client().context(context_id)


def contexts() -> pd.DataFrame:
    """Contexts in memory: id, entries, memory bytes, accesses, last access."""
    from .session import default_client

    return default_client().contexts()
