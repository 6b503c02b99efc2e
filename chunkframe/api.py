"""The module-level API (``cf.connect``, ``cf.ingest``, ``cf.open``...): the default client,
local or remote, and the functions that use it."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .session import connect as connect_local
from .session import default_client, set_default

if TYPE_CHECKING:
    import pandas as pd

    from .dataset import Dataset

__all__ = ["connect", "ingest", "open", "datasets", "context", "contexts", "recover"]


def connect(
    store: str | os.PathLike[str] | None = None,
    redis: str | None = None,
    catalog: str | os.PathLike[str] | None = None,
    home: str | os.PathLike[str] | None = None,
    **options: Any,
) -> Any:
    """Configure chunkframe and make the result the default client.

    ``None`` arguments fall back to ``CHUNKFRAME_STORE``, ``CHUNKFRAME_REDIS_URL``,
    ``CHUNKFRAME_CATALOG`` and ``CHUNKFRAME_HOME`` (default ``~/.chunkframe``); with no Redis
    URL anywhere, an embedded redis-server is started under the home directory. Options:
    ``storage_options`` (fsspec, e.g. an S3 endpoint), ``chunk_cache_bytes``, ``lock_ttl``,
    ``prefix``. A server URL (``cf.connect("http://host:8765", token=...)``) gives a
    remote client over ``chunkframe serve`` instead (see :mod:`chunkframe.service.remote`).
    """
    if isinstance(store, str) and store.startswith(("http://", "https://")):
        from .service.remote import connect_remote  # reads through a server

        client = connect_remote(store, redis=redis, catalog=catalog, home=home, **options)
        set_default(client)
        return client
    return connect_local(store, redis, catalog, home, **options)


def ingest(source: Any, dataset_id: str, chunk_rows: int = 65_536, time_column: str | None = None,
           device_column: str | None = None, mode: str = "create", **kwargs: Any) -> Dataset:
    """Ingest ``source`` as dataset ``dataset_id`` with the default client.

    ``source``: a DataFrame, an iterable of DataFrames, or a path/URL/glob of CSV, Parquet or
    Arrow files (local or ``s3://``). ``mode``: ``"create"`` (error if it exists),
    ``"overwrite"`` (replace it once the new one is complete), ``"append"``, ``"resume"``
    (continue an interrupted ingest of the same source). Other keywords: ``compression``
    (``"zstd"``/``"lz4"``), ``progress`` (a bar; default: only in notebooks and terminals),
    ``wait`` (for the lock), ``workers``, ``fingerprint`` (names a source that cannot be
    recognised from its rows, such as a generator, so that ``mode="resume"`` accepts it),
    ``evolve`` (with ``mode="append"``: new columns are added and compatible types widened,
    as ``pd.concat`` would, instead of a :class:`SchemaMismatchError`).
    """
    return default_client().ingest(source, dataset_id, chunk_rows=chunk_rows,
                                   time_column=time_column, device_column=device_column,
                                   mode=mode, **kwargs)


def open(dataset_id: str, version: int | None = None,  # noqa: A001 - the design's name
         as_of: Any = None) -> Dataset:
    """Open a complete dataset with the default client; ``version=`` (from
    ``ds.versions()``) or ``as_of=`` (a time) opens that version, read-only."""
    client = default_client()
    if version is None and as_of is None:
        return client.open(dataset_id)  # a remote client opens current versions only
    return client.open(dataset_id, version=version, as_of=as_of)


def datasets() -> pd.DataFrame:
    """Complete datasets of the default client: id, state, rows, chunks, bytes, ..."""
    return default_client().datasets()


def context(context_id: str) -> Any:
    """The context (tags, keyword index) of any id, with the default client."""
    return default_client().context(context_id)


def contexts() -> pd.DataFrame:
    """Contexts in memory: id, entries, memory bytes, accesses, last access."""
    return default_client().contexts()


def recover(apply: bool = False, verify: bool = False) -> pd.DataFrame:
    """Find (and with ``apply=True`` repair) what crashes left inconsistent between Redis,
    the catalog and the chunk store, with the default client.

    Parameters
    ----------
    apply : bool, default False
        Repair what can be repaired safely: abandon interrupted ingests (their files and
        status), release stale locks, rebuild Redis's metadata, chunk tables and fencing
        counters from the catalog, delete orphan files. A dry run changes nothing.
    verify : bool, default False
        Also read every chunk of every dataset and report those that fail their checksum or
        whose file names another chunk (``corrupt_chunk``; never repaired automatically).

    Returns
    -------
    pandas.DataFrame
        One row per problem: ``dataset``, ``problem`` (``interrupted``, ``stale_lock``,
        ``redis_state_missing``, ``redis_state_behind``, ``redis_state_corrupt``,
        ``orphan_files``, ``corrupt_chunk``), ``action``, ``detail`` and ``applied``; empty
        when all is consistent.

    Raises
    ------
    InvalidArgumentError
        ``apply`` or ``verify`` is not a bool.

    Examples
    --------
    >>> cf.recover()  # doctest: +SKIP
    Empty DataFrame
    Columns: [dataset, problem, action, detail, applied]
    """
    return default_client().recover(apply=apply, verify=verify)
