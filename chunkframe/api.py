"""The module-level API (``cf.connect``, ``cf.ingest``, ``cf.open``...): the default client,
local or remote, and the functions that use it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .ingestion.options import IngestOptions
from .session import connect as connect_local
from .session import default_client, set_default

if TYPE_CHECKING:
    import pandas as pd

    from .dataset import Dataset
    from .ingestion.lifecycle import DropResult, SnapshotInfo
    from .storage.codec import CompressionChoice

__all__ = ["connect", "ingest", "open", "datasets", "context", "contexts", "find", "recover",
           "exists", "drop", "snapshot", "snapshots", "delete_snapshot"]


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
    URL anywhere, an embedded redis-server is started under the home directory; a
    ``redis+cluster://host:port[,host:port...]`` URL connects a Redis Cluster. Options:
    ``storage_options`` (fsspec, e.g. an S3 endpoint), ``chunk_cache_bytes``,
    ``max_mapped_chunks`` (verified maps of local chunk files kept open, 1024 by default;
    also ``CHUNKFRAME_MAX_MAPPED_CHUNKS``), ``local_cache_bytes`` (the local tier of an object
    store's chunks under ``<home>/tier``, 4 GiB by default, 0: off; also
    ``CHUNKFRAME_LOCAL_CACHE_BYTES``), ``lock_ttl``, ``retry_seconds`` (how long a write
    waits out a Redis blip before it fails, 30 by default, 0: not at all; also
    ``CHUNKFRAME_RETRY_SECONDS``), ``prefix``, ``permissions``
    (``"owner"``, the default: what is created is 0700/0600;
    ``"group"``: 0770/0660; also ``CHUNKFRAME_PERMISSIONS``). A server URL
    (``cf.connect("http://host:8765", token=...)``) gives a remote client over
    ``chunkframe serve`` instead (see :mod:`chunkframe.service.remote`).
    """
    if isinstance(store, str) and store.startswith(("http://", "https://")):
        from .service.remote import connect_remote  # reads through a server

        client = connect_remote(store, redis=redis, catalog=catalog, home=home, **options)
        set_default(client)
        return client
    return connect_local(store, redis, catalog, home, **options)


def ingest(source: Any, dataset_id: str, chunk_rows: int = 65_536,
           time_column: str | None = None, device_column: str | None = None,
           mode: str = "create", *, compression: CompressionChoice = "auto",
           progress: bool | None = None, wait: bool | float = False, workers: int = 4,
           max_pending: int | None = None, fingerprint: str | None = None,
           evolve: bool = False, engine: str | None = None,
           encodings: Mapping[str, str] | None = None) -> Dataset:
    """Ingest ``source`` as dataset ``dataset_id`` with the default client.

    Parameters
    ----------
    source : DataFrame, iterable of DataFrames, str, dask DataFrame
        A frame, frames, or a path/URL/glob of CSV, Parquet or Arrow files (local or
        ``s3://``); a dask DataFrame is ingested on the active Dask cluster.
    dataset_id : str
        The dataset's name (no path separators, ``..`` or control characters).
    chunk_rows : int
        Rows per chunk; boundaries are deterministic, so a resumed run cuts the same chunks.
    time_column, device_column : str, optional
        The time of each row and the series it belongs to (last values, time ranges).
    mode : {"create", "overwrite", "append", "resume"}
        ``create`` refuses an existing id; ``overwrite`` replaces it once the new one is
        complete (the old one stays readable as a version until pruned); ``append`` adds
        rows; ``resume`` continues an interrupted ingest of the same source.
    compression : {"auto", "zstd", "lz4", None}
        Buffer compression of the chunks. ``"auto"`` (the default): none on a local store
        (chunks map zero-copy), zstd on an object store such as S3 (network bytes dominate
        there); an append keeps the dataset's. The dataset records what was used
        (``ds.meta.compression``).
    progress : bool, optional
        A progress bar (None: only in notebooks and terminals).
    wait : bool or float
        Wait for another writer's lock (seconds, or True) instead of failing at once.
    workers, max_pending : int
        Chunks persisted in parallel, and at most how many wait for a persister.
    fingerprint : str, optional
        Names a source that cannot be recognised from its rows (a generator), so that
        ``mode="resume"`` accepts it.
    evolve : bool
        With ``mode="append"``: add new columns and widen compatible types, as
        ``pd.concat`` would, instead of raising :class:`SchemaMismatchError`.
    engine : {None, "dask"}
        ``"dask"`` ingests the files of ``source`` on the active Dask cluster.
    encodings : mapping of str to {"auto", "dictionary", "plain"}, optional
        How text columns are stored. By default (``"auto"``) a column whose first chunk has
        few distinct values (at most half its rows, and smaller encoded) is stored as an
        Arrow dictionary array; reads give back the column's own dtype (``str`` stays
        ``str``, ``category`` stays ``category``), ``to_arrow`` its plain Arrow type.

    Returns
    -------
    Dataset
        The committed dataset.

    Raises
    ------
    DatasetExistsError, DatasetLockedError, SchemaMismatchError, SourceError
        Each names the dataset and what to do next; nothing is left half-written.

    Examples
    --------
    >>> ds = cf.ingest("data/samples/sensors.parquet", "sensors",      # doctest: +SKIP
    ...                time_column="time", device_column="sensor", mode="overwrite")
    """
    return default_client().ingest(source, dataset_id, **IngestOptions.of(locals()).keywords())


def open(dataset_id: str, version: int | None = None,  # noqa: A001 - the design's name
         as_of: Any = None) -> Dataset:
    """Open a complete dataset with the default client; ``version=`` (from
    ``ds.versions()``) or ``as_of=`` (a time, or the name of a snapshot: see
    :func:`snapshot`) opens that version, read-only."""
    return default_client().open(dataset_id, version=version, as_of=as_of)


def datasets() -> pd.DataFrame:
    """Complete datasets of the default client: id, state, rows, chunks, bytes, ..."""
    return default_client().datasets()


def exists(dataset_id: str) -> bool:
    """Return whether a complete dataset of this id exists, with the default client.

    Asks the catalog (the record), not Redis: a dataset Redis lost still exists; one being
    ingested for the first time, or being dropped, does not.

    Parameters
    ----------
    dataset_id : str
        The dataset's id.

    Returns
    -------
    bool

    Raises
    ------
    InvalidDatasetIdError
        ``dataset_id`` is not a valid id (a path separator, ``..``, a control character...).

    Examples
    --------
    >>> cf.exists("sensors")                                     # doctest: +SKIP
    True
    """
    return bool(default_client().exists(dataset_id))


def drop(dataset_id: str, *, force: bool = False, wait: bool | float = False) -> DropResult:
    """Remove a dataset -- every version of it -- from the catalog, Redis and the store.

    Its metadata, chunk tables, versions, last values, context (tags) and chunk files all
    go; other datasets' keys and files are never touched. The drop is crash-safe: its
    intent is recorded in the catalog first, so one interrupted by a crash is reported by
    ``cf.recover()`` and finished by ``cf.recover(apply=True)`` (or by calling ``drop``
    again); until then no writer may use the id. Runs under the dataset's write lock.

    Parameters
    ----------
    dataset_id : str
        The dataset to drop.
    force : bool, default False
        Drop it even though named snapshots reference it; they then forget it (their other
        datasets stay). Without it such a drop is refused.
    wait : bool or float, default False
        Wait for the dataset's lock (True: forever; a float: that many seconds).

    Returns
    -------
    DropResult
        ``versions``, ``files``, ``bytes``, ``redis_keys`` and ``context_entries`` removed,
        the ``snapshots`` that forgot it, and ``resumed`` (it finished an interrupted drop).

    Raises
    ------
    DatasetNotFoundError
        No such dataset (nor an unfinished drop of one).
    DatasetReferencedError
        Named snapshots reference it and ``force`` is False; nothing is changed.
    DatasetLockedError
        A writer holds the dataset (pass ``wait=``).
    InvalidArgumentError
        ``force`` is not a bool.

    Examples
    --------
    >>> cf.drop("scratch")                                       # doctest: +SKIP
    DropResult(dataset='scratch', versions=3, files=12, bytes=1048576, ...)
    """
    return default_client().drop(dataset_id, force=force, wait=wait)


def snapshot(name: str, datasets: str | list[str] | None = None,
             metadata: Any = None) -> SnapshotInfo:
    """Record the current version of datasets under a name, in the catalog.

    A snapshot names one version of each dataset at once (as ArcticDB's do): read them
    later with ``cf.open(id, as_of=name)``, however the datasets change meanwhile. It lives
    in the catalog, so it survives Redis losing its keys; ``prune_versions`` keeps the
    versions it names; :func:`drop` refuses a dataset it names unless forced.

    Parameters
    ----------
    name : str
        A new name (no path separators, braces or control characters).
    datasets : str or list of str, optional
        The datasets to record (None: every complete dataset).
    metadata : Any, optional
        JSON data kept with the snapshot (a dict of notes, a run id...).

    Returns
    -------
    SnapshotInfo
        ``name``, ``created`` (UTC), ``versions`` (dataset id -> version) and ``metadata``.

    Raises
    ------
    SnapshotExistsError
        A snapshot of that name exists (snapshots are never replaced).
    DatasetNotFoundError
        A dataset asked for does not exist; nothing is recorded.
    InvalidArgumentError
        ``metadata`` is not JSON data, ``datasets`` is empty or not a list of ids, or there
        are no datasets at all.
    InvalidDatasetIdError
        ``name`` or a dataset id is not valid.

    Examples
    --------
    >>> cf.snapshot("q1-close", metadata={"by": "ana"})          # doctest: +SKIP
    SnapshotInfo(name='q1-close', created=Timestamp(...), versions={'sensors': 4}, ...)
    >>> cf.open("sensors", as_of="q1-close").version            # doctest: +SKIP
    4
    """
    return default_client().snapshot(name, datasets, metadata)


def snapshots() -> pd.DataFrame:
    """Return every named snapshot, oldest first, with the default client.

    Returns
    -------
    pandas.DataFrame
        Columns ``name``, ``created`` (UTC), ``datasets`` (how many it names), ``versions``
        (dataset id -> version) and ``metadata``; empty, with those columns, when there are
        none.

    Examples
    --------
    >>> cf.snapshots()                                           # doctest: +SKIP
           name                          created  datasets        versions metadata
    0  q1-close 2026-04-01 00:00:03.123456+00:00         1  {'sensors': 4}  {'by': 'ana'}
    """
    return default_client().snapshots()


def delete_snapshot(name: str) -> SnapshotInfo:
    """Forget a named snapshot; the versions it named can be pruned again.

    Nothing else is deleted now: ``ds.prune_versions()`` removes those versions later.

    Parameters
    ----------
    name : str
        The snapshot's name.

    Returns
    -------
    SnapshotInfo
        What the snapshot was.

    Raises
    ------
    SnapshotNotFoundError
        No snapshot has that name (the message names close ones).

    Examples
    --------
    >>> cf.delete_snapshot("q1-close").versions                  # doctest: +SKIP
    {'sensors': 4}
    """
    return default_client().delete_snapshot(name)


def context(context_id: str) -> Any:
    """The context (tags, keyword index) of any id, with the default client."""
    return default_client().context(context_id)


def contexts() -> pd.DataFrame:
    """Contexts in memory: id, entries, memory bytes, accesses, last access."""
    return default_client().contexts()


def find(keyword: str, type: str | None = None) -> pd.DataFrame:
    """Return the entries of every context (datasets' and others) having ``keyword``.

    Read from a keyword index kept in Redis beside the entries, not by loading every
    context: one set per keyword, written with the entries.

    Parameters
    ----------
    keyword : str
        One keyword, any case: a key, a word cut from a value, or an explicit keyword.
    type : str, optional
        Only entries of this ContextType (a name, any case). None: every type.

    Returns
    -------
    pandas.DataFrame
        Columns ``context, type, key, value``, ordered by context, type, key; empty, with
        those columns, when no entry has ``keyword``.

    Raises
    ------
    ContextError
        ``keyword`` is not a non-empty string, or ``type`` is not a ContextType.
    BackendUnavailableError
        Redis cannot be reached.

    Examples
    --------
    >>> cf.context("analysis-42").put("owner", "ana, data team")  # doctest: +SKIP
    >>> cf.find("ana")                                            # doctest: +SKIP
           context      type    key           value
    0  analysis-42  METADATA  owner  ana, data team
    """
    return default_client().find(keyword, type)


def recover(apply: bool = False, verify: bool = False, progress: bool | None = None
            ) -> pd.DataFrame:
    """Find (and with ``apply=True`` repair) what crashes left inconsistent between Redis,
    the catalog and the chunk store, with the default client.

    Parameters
    ----------
    apply : bool, default False
        Repair what can be repaired safely: resume an interrupted ingest from its recorded
        source files when they are unchanged (it ends as an uninterrupted ingest would),
        else abandon it (its files and status; the report says why), release stale
        locks, rebuild Redis's metadata, chunk tables and fencing counters from the
        catalog, delete orphan files, rebuild contexts (and their keywords in the ``find``
        index) from the catalog's durable copy, record contexts only Redis holds, rebuild
        last values from the chunk files, restore a missing or damaged catalog (the damaged
        file is kept as ``<name>.damaged-<time>``) from Redis's committed state, else from
        the chunk files' own metadata, re-cut chunks whose files are gone (or, with
        ``verify``, damaged) from the dataset's recorded source files when those are
        unchanged (the proofs of ``ds.verify(repair=True)``). A dry run changes nothing.
    verify : bool, default False
        Also read every chunk of every dataset and report those that fail their checksum or
        whose file names another chunk (``corrupt_chunk``). Chunk files that are gone are
        found without it (``missing_chunk``), from the store's listing.
    progress : bool, optional
        A bar over the datasets checked, with their total (None: only in notebooks and
        terminals).

    Returns
    -------
    pandas.DataFrame
        One row per problem: ``dataset``, ``problem`` (``drop_interrupted``: a drop begun
        and not finished, which ``apply`` finishes; ``interrupted``, ``stale_lock``,
        ``redis_state_missing``, ``redis_state_behind``, ``redis_state_corrupt``,
        ``orphan_files``, ``corrupt_manifest``, ``missing_chunk``, ``corrupt_chunk`` (each
        with the action "re-cut from the source", or the reason it cannot be),
        ``context_unrecorded``, ``context_missing``,
        ``context_behind``, ``last_values_missing``, ``catalog_unreadable``,
        ``catalog_stale``: the catalog was read without its WAL on a full disk, so nothing
        is applied; for a context problem ``dataset`` is the context id, and ``""`` when the
        whole catalog file is damaged or stale), ``action``, ``detail`` and ``applied``;
        empty when all is consistent.

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
    return default_client().recover(apply=apply, verify=verify, progress=progress)
