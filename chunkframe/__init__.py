"""chunkframe: large tables in chunked, checksummed Arrow storage, read back from pandas."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._after_import import after_import as _after_import_of
from .core.errors import (
    BackendUnavailableError,
    CatalogCorruptionError,
    CatalogDamageError,
    ChunkCorruptionError,
    ChunkFrameError,
    ContextError,
    DatasetExistsError,
    DatasetLockedError,
    DatasetNotFoundError,
    DatasetReferencedError,
    DropPendingError,
    InvalidArgumentError,
    InvalidDatasetIdError,
    LockLostError,
    NoTimeColumnError,
    PathNotFoundError,
    ReadOnlyVersionError,
    SchemaMismatchError,
    SnapshotExistsError,
    SnapshotNotFoundError,
    SnapshotSupersededError,
    SourceError,
    StateCorruptionError,
    VersionNotFoundError,
)

if TYPE_CHECKING:
    from .api import (
        connect,
        context,
        contexts,
        datasets,
        delete_snapshot,
        drop,
        exists,
        find,
        ingest,
        open,
        recover,
        snapshot,
        snapshots,
    )
    from .contextcache import ContextType, keyword, register_value_type
    from .dataset import Dataset
    from .session import Client

__all__ = [
    "Client", "Dataset", "connect", "ingest", "open", "datasets", "context", "contexts",
    "find", "ContextType", "keyword", "register_value_type",
    "ChunkFrameError", "DatasetNotFoundError", "DatasetExistsError", "DatasetLockedError",
    "LockLostError", "ChunkCorruptionError", "SchemaMismatchError", "InvalidDatasetIdError",
    "SourceError", "BackendUnavailableError", "InvalidArgumentError", "ContextError",
    "SnapshotSupersededError", "PathNotFoundError", "NoTimeColumnError", "VersionNotFoundError",
    "ReadOnlyVersionError", "StateCorruptionError", "recover",
    "CatalogCorruptionError", "CatalogDamageError",
    "exists", "drop", "snapshot", "snapshots", "delete_snapshot",
    "DatasetReferencedError", "DropPendingError", "SnapshotExistsError", "SnapshotNotFoundError",
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
    "Client": "session", "default_client": "session",
    "connect": "api", "ingest": "api", "open": "api", "datasets": "api", "context": "api",
    "contexts": "api", "find": "api", "recover": "api", "exists": "api", "drop": "api",
    "snapshot": "api", "snapshots": "api", "delete_snapshot": "api",
    "Dataset": "dataset",
    "ContextType": "contextcache", "keyword": "contextcache",
    "register_value_type": "contextcache",
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
