"""`Dataset`: the handle users hold — reads by serial number, last values, tags, export."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa

from .compact import UpdateResult, compact
from .compact import update as upsert
from .core.errors import InvalidArgumentError, ReadOnlyVersionError
from .core.integers import integer_at_least
from .core.model import ChunkMeta, DatasetMeta
from .display.reprs import dataset_html, dataset_text, mark
from .ingestion.versions import list_versions, prune_versions
from .read.engine import BINDING_ATTR, ReadEngine
from .recover.repair import repair_chunks

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .contextcache import Context
    from .core.config import Settings
    from .display.zoom import ZoomPlot
    from .ingestion.pipeline import CommitHook
    from .lastcache import DeleteResult, LastValues
    from .read.reader import Reader, Snapshot
    from .storage.backends import Backends
    from .storage.catalog import Catalog
    from .storage.codec import CompressionChoice

__all__ = ["Dataset", "BINDING_ATTR", "Parts"]


class Parts(Protocol):
    """The parts of a client a Dataset reads and writes through (``session.Client`` is
    one): typed here so that this layer never names the session above it."""

    settings: Settings
    token: str
    backends: Backends
    catalog: Catalog
    reader: Reader
    last_values: LastValues
    commit_hooks: list[CommitHook]

    def context(self, context_id: str) -> Context: ...

    def ingest(self, source: Any, dataset_id: str, *, chunk_rows: int = ...,
               mode: str = ..., compression: CompressionChoice = ..., progress: bool | None = ...,
               wait: bool | float = ..., workers: int = ..., evolve: bool = ...,
               encodings: Mapping[str, str] | None = ...) -> Any: ...

F = TypeVar("F", bound=Callable[..., Any])

_READ_DOC = {
    "read_parameters": """columns : str or sequence of str, optional
            Columns to read, in this order (None: all).
        date_range : (start, end), optional
            Keep rows whose time lies in ``[start, end]``, inclusive (see :meth:`to_pandas`).
        where : pyarrow.compute.Expression, optional
            Keep rows where it is true, e.g. ``pc.field("temperature") > 25``.
        device : Any or list, optional
            Keep the rows of this device (or these devices), compared as text (see
            :meth:`to_pandas`).""",
    "read_raises": """KeyError
            An unknown column.
        InvalidArgumentError
            A bad ``date_range`` (or a dataset without a time column), or a ``where`` that
            is not a boolean expression over the dataset's columns.""",
}


def _read_doc(method: F) -> F:
    """Fill the read keywords' shared Parameters and Raises into ``method``'s docstring."""
    method.__doc__ = (method.__doc__ or "").format(**_READ_DOC)
    return method


class Dataset:
    """A complete dataset. Cheap to create: state lives in the client's caches.

    Opened at a ``version`` (``cf.open(id, version=v)`` or ``as_of=``), it is that version
    exactly as it was committed, and read-only.

    Examples
    --------
    >>> ds = cf.open("sensors")                     # doctest: +SKIP
    >>> ds.get(12_345)                               # doctest: +SKIP
    """

    def __init__(self, client: Parts, dataset_id: str, version: int | None = None):
        self._client = client
        self.id = dataset_id
        self._pinned = version
        self._reads = ReadEngine(client.reader, dataset_id, version,
                                 binding={"dataset": dataset_id, "client": client.token})
        self._snap()  # fail now, with DatasetNotFoundError, if it does not exist

    # -- metadata -------------------------------------------------------------------------
    def _snap(self) -> Snapshot:
        return self._reads.snapshot()

    def _bind(self, df: pd.DataFrame) -> pd.DataFrame:
        """``df`` bound to this dataset (``df.chunk`` reads it)."""
        return self._reads.bind(df)

    def _writable(self, what: str) -> None:
        """Refuse a write on a version of the past."""
        if self._pinned is not None:
            raise ReadOnlyVersionError(self.id, self._pinned, what)

    @property
    def version(self) -> int:
        """The version this handle reads: the current one, or the one it was opened at.

        Returns
        -------
        int

        Examples
        --------
        >>> cf.open("sensors", version=2).version        # doctest: +SKIP
        2
        """
        return self._snap().meta.version

    @property
    def read_only(self) -> bool:
        """Whether this handle was opened at a version (``version=`` or ``as_of=``).

        Returns
        -------
        bool

        Examples
        --------
        >>> cf.open("sensors", version=2).read_only      # doctest: +SKIP
        True
        """
        return self._pinned is not None

    def versions(self) -> pd.DataFrame:
        """Return every recorded version of the dataset, oldest first.

        Each ingest, overwrite, append, delete, compaction and update committed a version.
        A version that :meth:`prune_versions` removed is no longer listed (nor readable).
        While the catalog cannot be reached, only the current version is listed, as Redis
        holds it (``kind`` missing), with a ``RuntimeWarning``.

        Returns
        -------
        pandas.DataFrame
            Columns ``version``, ``kind`` (``ingest``, ``overwrite``, ``append``,
            ``delete``, ``compact`` or ``update``), ``rows`` and ``committed_at`` (UTC).

        Examples
        --------
        >>> ds.versions()                                 # doctest: +SKIP
           version    kind  rows                     committed_at
        0        1  ingest  5000 2026-12-01 22:20:01.123456+00:00
        1        2  append  5100 2026-12-01 22:21:13.654321+00:00
        """
        return mark(list_versions(self._client.backends, self.id), "versions", self.id)

    def prune_versions(self, keep_last: int = 1, older_than: Any = None,
                       wait: bool | float = False) -> pd.DataFrame:
        """Remove old versions, and the chunk files only they read.

        The last ``keep_last`` versions are kept (the current one always is); with
        ``older_than``, only versions committed before that time are removed. Chunk files
        of an overwritten generation are deleted once no remaining version reads them;
        appends and deletes share their generation's files, so pruning them frees only
        their records. Runs under the dataset's write lock.

        Parameters
        ----------
        keep_last : int, default 1
            How many of the latest versions to keep (>= 1).
        older_than : datetime, str, Timestamp or timedelta, optional
            Remove only versions committed before this time (naive times are UTC); a
            timedelta counts back from now.
        wait : bool or float, default False
            Wait for the dataset's lock (True: forever; a float: that many seconds).

        Returns
        -------
        pandas.DataFrame
            The versions removed: ``version, kind, rows, committed_at``.

        Raises
        ------
        InvalidArgumentError
            ``keep_last`` is not an integer >= 1, or ``older_than`` is not a time.
        ReadOnlyVersionError
            This handle was opened at a version of the past.
        DatasetLockedError
            An ingest, append or delete holds the dataset (pass ``wait=``).

        Examples
        --------
        >>> ds.prune_versions(keep_last=2, older_than=pd.Timedelta(days=7))  # doctest: +SKIP
           version       kind  rows                     committed_at
        0        1     ingest  5000 2026-11-20 09:00:00.000000+00:00
        """
        self._writable("prune the versions of")
        pruned = prune_versions(self._client.backends, self.id, keep_last, older_than, wait)
        self._client.reader.snapshot(self.id, refresh=True)
        return pruned

    @property
    def meta(self) -> DatasetMeta:
        """The committed metadata of the dataset's current version.

        Returns
        -------
        DatasetMeta
            Frozen: id, generation, version, rows, chunks, nbytes, schema, time and device
            columns, time-range deletes (``tombstones``), compression.

        Raises
        ------
        DatasetNotFoundError
            The dataset was removed since this handle was made.

        Examples
        --------
        >>> ds.meta.rows, ds.meta.version                 # doctest: +SKIP
        (50000, 1)
        """
        return self._snap().meta

    def __len__(self) -> int:
        return self._snap().meta.rows

    @property
    def columns(self) -> list[str]:
        """The column names, in the order of the ingested frame.

        Returns
        -------
        list of str

        Examples
        --------
        >>> ds.columns                                    # doctest: +SKIP
        ['time', 'sensor', 'temperature', 'humidity', 'pressure', 'battery', 'status']
        """
        return list(self._snap().schema.names)

    @property
    def schema(self) -> pa.Schema:
        """The Arrow schema every chunk has, with the pandas metadata of the ingested frame.

        Returns
        -------
        pyarrow.Schema

        Examples
        --------
        >>> ds.schema.field("temperature").type           # doctest: +SKIP
        DataType(double)
        """
        return self._snap().schema

    @property
    def chunks(self) -> pd.DataFrame:
        """Return the chunk table: one row per chunk of the current version.

        Returns
        -------
        pandas.DataFrame
            Columns ``chunk`` (number), ``start`` (serial number of its first row), ``rows``,
            ``key`` (in the chunk store), ``checksum`` (``crc32c:...``) and ``bytes``.

        Examples
        --------
        >>> ds.chunks.head(2)                             # doctest: +SKIP
           chunk  start   rows                  key          checksum    bytes
        0      0      0  65536  sensors/g1/c0-f1.arrow  crc32c:1a2b3c4d  2202344
        """
        return self._reads.chunk_frame()

    @property
    def chunk_metas(self) -> tuple[ChunkMeta, ...]:
        """The chunks of the current version as frozen metadata, with their time statistics.

        Returns
        -------
        tuple of ChunkMeta
            In order: ``chunk``, ``start``, ``rows``, ``key``, ``checksum``, ``nbytes`` and
            ``stats`` (per device, as text: ``[min_time, max_time]`` in integer nanoseconds;
            empty without a time column). What :attr:`chunks` tabulates, plus the statistics
            that tell which chunks a time range needs.

        Examples
        --------
        >>> ds.chunk_metas[0].stats["sensor-03"]          # doctest: +SKIP
        [1767225600000000000, 1767311940000000000]
        """
        return self._reads.chunk_metas()

    # -- reads ----------------------------------------------------------------------------
    def get(self, sn: int, column: str | None = None) -> Any:
        """Return row ``sn`` as a Series equal to ``df.iloc[sn]``, or one value with ``column``.

        Parameters
        ----------
        sn : int
            The serial number (any integral number, numpy integers too); negative counts
            from the end, as with ``iloc``.
        column : str, optional
            One column: its value alone, without building the row.

        Returns
        -------
        pandas.Series or scalar
            The row named ``sn``, with the dataset's dtypes; or the value of ``column``.

        Raises
        ------
        IndexError
            ``sn`` out of range (the message says the valid range).
        KeyError
            An unknown ``column``.

        Examples
        --------
        >>> ds.get(12_345)                                # doctest: +SKIP
        >>> ds.get(-1, "temperature")                     # doctest: +SKIP
        21.4
        """
        return self._reads.get(sn, column)

    def row(self, sn: int) -> dict[str, Any]:
        """Return row ``sn`` as ``{column: value}``, without building a pandas Series.

        Each value is the one ``get(sn, column)`` returns (a Python int, float, str or bool,
        a Timestamp with its zone, ``pd.NA``, NaN, ...): what a server answering rows in
        JSON needs, at the cost of one value per column.

        Parameters
        ----------
        sn : int
            The serial number (any integral number); negative counts from the end.

        Returns
        -------
        dict
            Column name → value, in the dataset's column order.

        Raises
        ------
        IndexError
            ``sn`` out of range (the message says the valid range).
        TypeError
            ``sn`` is not an integer.

        Examples
        --------
        >>> ds.row(0)["temperature"]                      # doctest: +SKIP
        21.4
        """
        return self._reads.row(sn)

    def get_many(self, sns: Sequence[int] | np.ndarray, columns: Sequence[str] | None = None
                 ) -> pd.DataFrame:
        """Return rows ``sns`` (any order, duplicates allowed) as a DataFrame indexed by sn.

        Chunks the cache holds and batch reads come back to are gathered through their
        planes (one numpy gather per column, as ``iloc``); the others are fetched in
        parallel and gathered from as they arrive, kept in the cache only when all the
        chunks asked fit in it, so a batch larger than the cache streams instead of
        thrashing it.

        Parameters
        ----------
        sns : sequence of int or numpy.ndarray
            Serial numbers, negative ones counting from the end.
        columns : sequence of str, optional
            The columns to read (None: all); only those are decoded.

        Returns
        -------
        pandas.DataFrame
            One row per serial number asked, in that order, indexed by ``sn`` and bound to
            the dataset (``df.chunk``).

        Examples
        --------
        >>> ds.get_many([5, 40_000, 5], columns=["temperature"])   # doctest: +SKIP
        """
        return self._reads.get_many(sns, columns)

    def slice(self, start: int | None = None, stop: int | None = None,
              columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Return rows ``[start, stop)`` like ``df.iloc[start:stop]``.

        Parameters
        ----------
        start, stop : int, optional
            Serial numbers, negative and open (None) bounds as in ``iloc``.
        columns : sequence of str, optional
            The columns to read (None: all).

        Returns
        -------
        pandas.DataFrame
            Indexed by ``sn`` and bound to the dataset (``df.chunk``).

        Examples
        --------
        >>> ds.slice(100, 110)                            # doctest: +SKIP
        >>> ds.slice(-5)                                  # the last five rows  # doctest: +SKIP
        """
        return mark(self._reads.slice(start, stop, columns), "slice", self.id, total=len(self))

    def head(self, n: int = 5, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Return the first ``n`` rows, like ``df.head(n)``, reading only the first chunks.

        Parameters
        ----------
        n : int, default 5
            How many rows (any integral number >= 0); fewer when the dataset is shorter.
        columns : sequence of str, optional
            The columns to read (None: all).

        Returns
        -------
        pandas.DataFrame
            Indexed by ``sn`` (a RangeIndex from 0) and bound to the dataset (``df.chunk``).

        Raises
        ------
        InvalidArgumentError
            ``n`` is negative or not an integer (pandas' ``head(-k)``, every row but the
            last k, would read the whole dataset: ask ``ds.slice(None, -k)`` for it).
        KeyError
            An unknown column.

        Examples
        --------
        >>> ds.head(3, columns=["time", "temperature"])           # doctest: +SKIP
        """
        count = integer_at_least(n, "n of head()", 0,
                                 "for every row but the last k, use ds.slice(None, -k)")
        return self.slice(0, count, columns)

    def tail(self, n: int = 5, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Return the last ``n`` rows, like ``df.tail(n)``, reading only the last chunks.

        Parameters
        ----------
        n : int, default 5
            How many rows (any integral number >= 0); fewer when the dataset is shorter.
        columns : sequence of str, optional
            The columns to read (None: all).

        Returns
        -------
        pandas.DataFrame
            Indexed by ``sn`` (the rows' serial numbers, up to ``len(ds) - 1``) and bound to
            the dataset (``df.chunk``).

        Raises
        ------
        InvalidArgumentError
            ``n`` is negative or not an integer (pandas' ``tail(-k)``, every row but the
            first k, would read the whole dataset: ask ``ds.slice(k)`` for it).
        KeyError
            An unknown column.

        Examples
        --------
        >>> ds.tail(2)                                             # doctest: +SKIP
        """
        count = integer_at_least(n, "n of tail()", 0,
                                 "for every row but the first k, use ds.slice(k)")
        return self.slice(-count if count else 0, None if count else 0, columns)

    def resample(self, rule: Any, columns: Sequence[str] | str | None = None, agg: Any = "mean",
                 *, device: Any = None, date_range: Any = None, closed: str | None = None,
                 label: str | None = None, origin: Any = "start_day", offset: Any = None,
                 engine: str | None = None) -> pd.DataFrame:
        """Aggregate the time series into buckets of ``rule``, one row per bucket (and per
        device), next to the chunks: equal to pandas'
        ``df.groupby([device, pd.Grouper(key=time, freq=rule)]).agg(agg)`` of the frame.

        Each chunk is reduced on its own in the fetch pool (Arrow group-by keeping sums,
        counts, minima, maxima, firsts and lasts), and the partials are combined exactly;
        chunks ``date_range`` or ``device`` rule out by their statistics are not fetched.
        Buckets are pandas' ``resample`` buckets, with its ``closed``, ``label``, ``origin``
        and ``offset`` and their defaults, in the time column's zone (days, weeks and months
        are local ones). Without a device column every bucket pandas gives is given, empty
        ones too (count 0, sum 0, the rest missing); with one, the (device, bucket) pairs
        holding rows, as pandas' groupby does. Rows without a time (or device) are left out.

        Parameters
        ----------
        rule : str or pandas.DateOffset
            A pandas frequency: ``"15min"``, ``"h"``, ``"D"``, ``"W"``, ``"ME"``...
        columns : str or sequence of str, optional
            The columns to aggregate (None: every numeric column but the time and device).
        agg : str, list of str or dict, default "mean"
            ``sum``, ``mean``, ``min``, ``max``, ``count``, ``first`` or ``last``; a list
            gives (column, reduction) columns; ``{column: reduction(s)}`` picks per column.
        device : str or list, optional
            Only these devices (chunks whose statistics hold none of them are skipped).
        date_range : (start, end), optional
            Only rows whose time lies in ``[start, end]``, inclusive (see :meth:`to_pandas`).
        closed : {"left", "right"}, optional
            Which end of a bucket holds its edge time (None: pandas' default, "right" for
            ``ME``, ``QE``, ``YE``, ``W`` and ``origin="end"``/``"end_day"``, else "left").
        label : {"left", "right"}, optional
            Which edge names the bucket (None: pandas' default, as for ``closed``).
        origin : str or timestamp, default "start_day"
            Where fixed-length buckets start: ``"epoch"``, ``"start"``, ``"start_day"``,
            ``"end"``, ``"end_day"`` or a time (zoned as the time column). Only for fixed
            rules (``"15min"``, ``"h"``, and ``"D"`` on times without a zone).
        offset : str or timedelta, optional
            Shifts ``origin`` by this much, e.g. ``"15min"``; fixed rules only.
        engine : {None, "dask"}
            ``"dask"``: reduce the chunks on the workers of the active ``distributed.Client``
            (each reads its chunks through its own verified reader); the partials come
            back and are combined here, exactly as in this process (None).

        Returns
        -------
        pandas.DataFrame
            Indexed by (device, time) when the dataset has a device column, else by time.

        Raises
        ------
        NoTimeColumnError
            The dataset has no time column.
        InvalidArgumentError
            A bad rule, ``closed``, ``label``, ``origin`` or ``offset`` (``origin`` and
            ``offset`` with a calendar rule, a zoned ``origin`` for times without a zone or
            the reverse), an unknown reduction, a sum or mean of a non-numeric column, a
            time column of integers, or an ``engine`` other than None and "dask".
        BackendUnavailableError
            ``engine="dask"`` without a running ``distributed.Client`` (it says how to
            start one).
        KeyError
            An unknown column.

        Examples
        --------
        >>> ds.resample("h", ["temperature"])                           # doctest: +SKIP
        >>> ds.resample("D", agg={"temperature": ["min", "max"]}, device="s-01")  # doctest: +SKIP
        >>> ds.resample("h", ["temperature"], closed="right", label="right")  # doctest: +SKIP
        >>> ds.resample("4h", ["temperature"], origin="epoch", offset="30min")  # doctest: +SKIP
        """
        return self._reads.resample(rule, columns, agg, device=device, date_range=date_range,
                                    closed=closed, label=label, origin=origin, offset=offset,
                                    engine=engine, settings=self._client.settings)

    def aggregate(self, by: str | Sequence[str], agg: Any, *, date_range: Any = None,
                  where: Any = None, engine: str | None = None) -> pd.DataFrame:
        """Group by ``by`` and reduce, next to the chunks: equal to pandas'
        ``df.groupby(by).agg(agg)`` of the rows ``date_range`` and ``where`` keep.

        Each chunk is reduced on its own in the fetch pool and the partials are combined
        exactly (a mean from sums and counts; first and last by serial number); chunks the
        filters rule out by their statistics are not fetched. Groups are sorted, those with a
        missing key left out and only groups holding rows given (pandas' ``dropna=True``,
        ``observed=True``).

        Parameters
        ----------
        by : str or sequence of str
            The columns to group by.
        agg : dict, str or list of str
            ``{column: reduction or [reductions]}`` with ``sum``, ``mean``, ``min``,
            ``max``, ``count``, ``first``, ``last``; a reduction (or list) alone applies to
            every other column.
        date_range : (start, end), optional
            Only rows whose time lies in ``[start, end]``, inclusive.
        where : pyarrow.compute.Expression, optional
            Only rows where it is true, e.g. ``pc.field("temperature") > 25``.
        engine : {None, "dask"}
            ``"dask"``: reduce the chunks on the workers of the active ``distributed.Client``;
            the partials are combined here, exactly as in this process (None).

        Returns
        -------
        pandas.DataFrame
            Indexed by the group keys; columns as pandas names them ((column, reduction)
            pairs when a list is given).

        Raises
        ------
        KeyError
            An unknown column.
        InvalidArgumentError
            An unknown reduction, a sum or mean of a non-numeric column, a bad filter, an
            ``engine`` other than None and "dask".
        BackendUnavailableError
            ``engine="dask"`` without a running ``distributed.Client``.

        Examples
        --------
        >>> ds.aggregate(by="device", agg={"temperature": ["min", "max"]})  # doctest: +SKIP
        """
        return self._reads.aggregate(by, agg, date_range=date_range, where=where, engine=engine,
                                     settings=self._client.settings)

    @_read_doc
    def iter_chunks(self, columns: Sequence[str] | str | None = None, *, date_range: Any = None,
                    where: Any = None, device: Any = None) -> Iterator[pd.DataFrame]:
        """Yield the dataset chunk by chunk, as DataFrames indexed by serial number.

        The next chunks are fetched (and their checksums verified) while one is used; chunks
        not cached are not added to the cache (a scan does not evict hot chunks), and of them
        only the columns asked and filtered on are decoded.

        Parameters
        ----------
        columns : str or sequence of str, optional
            Columns to read, in this order (None: all).
        date_range : (start, end), optional
            Keep rows whose time lies in ``[start, end]``, inclusive, either end None (open);
            read as :meth:`delete` reads it. Chunks whose time statistics rule it out are
            not fetched.
        where : pyarrow.compute.Expression, optional
            Keep rows where it is true, e.g. ``pc.field("temperature") > 25``; evaluated
            after deletes. Comparisons of a column with a scalar joined by ``&`` also skip
            chunks whose min/max rule them out.
        device : Any or list, optional
            Keep the rows of this device (or these devices), compared as text (see
            :meth:`to_pandas`).

        Yields
        ------
        pandas.DataFrame
            One per chunk fetched, indexed by ``sn``; with a filter, only its rows kept (a
            chunk left with none still yields an empty frame).

        Raises
        ------
        {read_raises}

        Examples
        --------
        >>> for part in ds.iter_chunks(["time", "temperature"],        # doctest: +SKIP
        ...                            date_range=("2026-01-05", "2026-01-06")):
        ...     print(part.temperature.mean())
        """
        return self._reads.iter_chunks(columns, date_range=date_range, where=where,
                                 device=device)

    @_read_doc
    def to_pandas(self, columns: Sequence[str] | str | None = None, *, date_range: Any = None,
                  where: Any = None, device: Any = None) -> pd.DataFrame:
        """Read the dataset (or the rows and columns asked) into one DataFrame.

        Chunks are fetched in parallel, checked, uncached, and only the columns asked and
        filtered on are decoded; chunks whose statistics rule the filter out are not fetched
        (``cache_info()["skipped"]`` counts them). Unfiltered, the frame equals the
        ingested one; filtered, it equals pandas' ``df[mask]`` of it.

        Parameters
        ----------
        columns : str or sequence of str, optional
            Columns to read, in this order (None: all).
        date_range : (start, end), optional
            Keep rows whose time lies in ``[start, end]``, inclusive, either end None
            (open). Each bound a Timestamp, datetime, ISO string or int; a naive time is
            read in the time column's zone, an aware one against a naive column is
            converted to UTC.
        where : pyarrow.compute.Expression, optional
            Keep rows where it is true, e.g. ``pc.field("temperature") > 25``; evaluated
            after deletes (a deleted value is missing, so it matches no comparison).
        device : Any or list, optional
            Keep the rows of this device (or these devices), compared as text; with a
            ``date_range``, chunks whose per-device statistics hold none of them in it
            are not fetched.

        Returns
        -------
        pandas.DataFrame
            Indexed by serial number (a RangeIndex when unfiltered).

        Raises
        ------
        {read_raises}

        Examples
        --------
        >>> import pyarrow.compute as pc
        >>> ds.to_pandas(["time", "temperature"],                     # doctest: +SKIP
        ...              date_range=("2026-01-05", "2026-01-05 23:59"),
        ...              where=pc.field("temperature") > 25)
        """
        return self._reads.to_pandas(columns, date_range=date_range, where=where,
                                 device=device)

    @_read_doc
    def to_arrow(self, columns: Sequence[str] | str | None = None, *, date_range: Any = None,
                 where: Any = None, device: Any = None) -> pa.Table:
        """Read the dataset (or the rows and columns asked) into one Arrow table.

        Read as :meth:`to_pandas` reads (checked, filtered, chunks ruled out not fetched),
        without the conversion to pandas: the table's schema keeps the pandas metadata, so
        ``ds.to_arrow().to_pandas()`` has the dataset's dtypes. Serial numbers are not a
        column.

        Parameters
        ----------
        {read_parameters}

        Returns
        -------
        pyarrow.Table
            One chunk of the table per chunk of the dataset read.

        Raises
        ------
        {read_raises}

        Examples
        --------
        >>> import polars as pl                                        # doctest: +SKIP
        >>> pl.from_arrow(ds.to_arrow(date_range=("2026-01-05", None)))  # doctest: +SKIP
        """
        return self._reads.to_arrow(columns, date_range=date_range, where=where,
                                 device=device)

    @_read_doc
    def to_batches(self, columns: Sequence[str] | str | None = None, *, date_range: Any = None,
                   where: Any = None, device: Any = None) -> pa.RecordBatchReader:
        """Stream the dataset (or the rows and columns asked) as Arrow record batches.

        Chunks are fetched ahead while a batch is consumed, each checksum-verified before
        its rows are handed out, so memory stays bounded by a few chunks whatever the size.
        DuckDB (``duckdb.sql("SELECT ... FROM reader")``) and Polars
        (``pl.from_arrow(reader)``) read the reader directly; it can be read once.

        Parameters
        ----------
        {read_parameters}

        Returns
        -------
        pyarrow.RecordBatchReader
            Batches of at most one chunk's rows, with the dataset's schema (pandas metadata
            included). A corrupt chunk raises :class:`ChunkCorruptionError` when reached.

        Raises
        ------
        {read_raises} Both raised at once, before anything is read.

        Examples
        --------
        >>> import duckdb                                              # doctest: +SKIP
        >>> batches = ds.to_batches(["sensor", "temperature"])         # doctest: +SKIP
        >>> duckdb.sql("SELECT sensor, avg(temperature) FROM batches GROUP BY sensor")  # doctest: +SKIP
        """
        return self._reads.to_batches(columns, date_range=date_range, where=where,
                                 device=device)

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        """The Arrow PyCapsule stream of the dataset, chunk by chunk (``duckdb.sql("select ...
        from ds")``, ``pl.DataFrame(ds)``, ``pa.table(ds)``); see
        :func:`chunkframe.read.stream.arrow_c_stream`."""
        return self._reads.arrow_c_stream(requested_schema)

    def to_dask(self, columns: Sequence[str] | str | None = None) -> Any:
        """The dataset as a dask DataFrame: one partition per chunk, indexed by ``sn``.

        Divisions are known (the chunks' first serial numbers), so ``.loc`` on serial
        numbers reads only the chunks that hold them. Each partition is read on a Dask worker
        by a reader of that worker's process, built from this client's settings (its chunk
        cache is the worker's): fetched from the store, checksum-verified, deletes applied.
        The partitions read this version, even if the dataset changes meanwhile.

        Parameters
        ----------
        columns : str or sequence of str, optional
            Columns to read, in this order (None: all).

        Returns
        -------
        dask.dataframe.DataFrame
            Computed with the active ``distributed.Client`` (or dask's default scheduler).

        Raises
        ------
        KeyError
            A column the dataset does not have (the message names those it has).
        ChunkCorruptionError
            When computed: a chunk's bytes do not match its checksum, or it is missing.

        Examples
        --------
        >>> ddf = ds.to_dask(["airport", "delay"])                 # doctest: +SKIP
        >>> ddf.groupby("airport").delay.mean().compute()          # doctest: +SKIP
        """
        return self._reads.to_dask(self._client.settings, columns)

    def verify(self, progress: bool | None = None, repair: bool = False) -> pd.DataFrame:
        """Check every chunk in the store; return one row per bad chunk (empty if intact).

        A chunk is checked by its checksum, and by the dataset, generation, chunk, first sn
        and row count its file names, which must be those its chunk table says. The report's
        columns are chunk, key, problem.

        Parameters
        ----------
        progress : bool, optional
            A bar over the chunks (None: only in notebooks and terminals).
        repair : bool, default False
            Rewrite each bad chunk from the source its ingest (or append, overwrite) read,
            when those files are still there with their recorded fingerprints: the chunk's
            rows are cut again as the ingest cut them, written under a new fenced key
            (atomically, under the dataset's lock), and the catalog and Redis point at it.
            The report then has the columns chunk, problem, action, repaired, detail, and
            says why a chunk could not be repaired (a DataFrame source, a changed file...).

        Raises
        ------
        DatasetLockedError
            ``repair`` while another writer holds the dataset's lock (nothing is changed).
        ReadOnlyVersionError
            ``repair`` on a handle opened at a version of the past.

        Examples
        --------
        >>> ds.verify(repair=True)[["chunk", "repaired", "detail"]]   # doctest: +SKIP
        """
        if not isinstance(repair, bool):
            raise InvalidArgumentError(
                f"repair must be True or False, got {repair!r} (verify of dataset {self.id!r})")
        if repair:
            self._writable("repair chunks")
        report = self._reads.verify(progress)
        if repair:
            client = self._client
            return repair_chunks(client.backends, client.reader, self.id,
                                 report["chunk"].tolist())
        return report

    def storage(self, progress: bool | None = None) -> pd.DataFrame:
        """Return where this version's bytes go: per column, as stored and as read.

        Every chunk file of the version is read (and checked against its checksum; a
        compressed dataset's buffers are compressed again, one by one, to measure each
        column's share, so this costs about what a full read and a compression do). A file
        that other kept versions also read (an overwrite, append or compaction that
        reproduced a chunk shares its file; appends share their generation's earlier
        chunks) counts in ``shared_bytes``. The notebook header adds the totals: the files'
        bytes (schemas and footers included), the compression, the bytes shared.

        Parameters
        ----------
        progress : bool, optional
            A bar over the chunks (None: only in notebooks and terminals).

        Returns
        -------
        pandas.DataFrame
            One row per column: ``column``, ``type`` (as read), ``encoding`` (``plain``,
            ``dictionary (int8 indices)``, ``narrow (int16)``...; several when chunks
            differ), ``bytes`` (stored: the column's buffers, compressed as the files are),
            ``plain_bytes`` (decoded to its type), ``ratio`` (``plain_bytes / bytes``) and
            ``shared_bytes`` (in files other kept versions read too).

        Raises
        ------
        DatasetNotFoundError
            The dataset was dropped since this handle was made.
        ChunkCorruptionError
            A chunk file is missing or fails its checksum (``ds.verify()`` lists them all).

        Examples
        --------
        >>> ds.storage()[["column", "encoding", "bytes", "ratio"]]   # doctest: +SKIP
          column                   encoding  bytes  ratio
        0    dev  dictionary (int8 indices)  24576   8.0
        """
        df, totals = self._reads.storage(progress)
        return mark(df, "storage", self.id, **totals)

    def cache_info(self) -> dict[str, Any]:
        """Return this client's chunk-cache counters for the dataset.

        Returns
        -------
        dict
            ``hits``, ``misses``, ``hit_rate``, ``fetches`` (chunks read from the store and
            checked), ``map_hits`` (decoded from a verified map: no read, no checksum),
            ``skipped`` (chunks a filtered read ruled out by their statistics; these counters
            are the client's); ``chunks`` and ``bytes`` of this dataset cached, in private
            memory (decoded copies, downloads, gather planes), and the whole cache's
            ``total_bytes`` and ``max_bytes`` (its bound); apart from those, the verified
            maps of local chunk files (file-backed, shared between processes, reclaimable):
            ``mapped_chunks`` and ``mapped_bytes`` of this dataset, ``total_mapped_bytes``
            and ``max_maps`` (the most kept open).

        Examples
        --------
        >>> ds.cache_info()["skipped"]                    # doctest: +SKIP
        """
        return self._reads.cache_info()

    # -- writes ---------------------------------------------------------------------------
    def append(self, df: pd.DataFrame, evolve: bool = False, *, chunk_rows: int = 65_536,
               progress: bool | None = None, wait: bool | float = False,
               compression: CompressionChoice = "auto", workers: int = 4,
               encodings: Mapping[str, str] | None = None) -> Dataset:
        """Append the rows of ``df``; their serial numbers continue from ``len(self)``.

        Parameters
        ----------
        df : pandas.DataFrame
            The same columns, of the same types, as the dataset (any order); with
            ``evolve``, columns may be added, left out or widened.
        evolve : bool, default False
            Evolve the schema as ``pd.concat`` would: new columns are added (earlier rows
            read them as missing: an int column as float64, a nullable one as missing
            values of its dtype), columns ``df`` lacks read as missing in its rows, and
            numeric types widen to their common type (int -> float, int32 -> int64,
            int64 -> Int64, ...). Chunks keep their own schemas; reads conform older ones.
        chunk_rows, progress, wait, compression, workers, encodings
            As :func:`chunkframe.ingest` takes them (``wait``: for the dataset's lock;
            ``compression="auto"`` keeps the dataset's).

        Returns
        -------
        Dataset
            ``self``, now one version further. Last values are kept current.

        Raises
        ------
        SchemaMismatchError
            ``df``'s columns or types differ from the dataset's (without ``evolve``), or
            differ in a way pandas would not widen (a number to text, a missing time or
            device column); it names every such column.
        ReadOnlyVersionError
            This handle was opened at a version of the past.
        DatasetLockedError
            Another ingest, append or delete holds the dataset (pass ``wait=``).

        Examples
        --------
        >>> ds.append(new_readings).meta.rows             # doctest: +SKIP
        50100
        >>> ds.append(readings_with_humidity, evolve=True).columns[-1]  # doctest: +SKIP
        'humidity'
        """
        self._writable("append to")
        self._client.ingest(df, self.id, mode="append", evolve=evolve, chunk_rows=chunk_rows,
                            progress=progress, wait=wait, compression=compression,
                            workers=workers, encodings=encodings)
        every = self._client.settings.auto_compact
        if every is not None:
            snap = self._snap()
            recent = snap.chunks.rows[-every:]
            if len(recent) == every and (recent < snap.meta.chunk_rows // 2).all():
                self.compact(progress=progress, wait=wait)
        return self

    def compact(self, min_rows: int | None = None, *, progress: bool | None = None,
                wait: bool | float = False, engine: str | None = None) -> Dataset:
        """Merge runs of small chunks into full ones, as a new version.

        Appends leave a partial chunk each; compaction rewrites each run of chunks under
        ``min_rows`` rows into chunks of up to ``chunk_rows`` rows, in a new generation that
        shares the files of every chunk it leaves alone. Serial numbers, values, deletes,
        last values and tags do not change; older versions read as before until
        :meth:`prune_versions`. ``cf.connect(auto_compact=N)`` runs it after an append that
        leaves N small chunks in a row.

        Parameters
        ----------
        min_rows : int, optional
            Chunks with fewer rows are merged (default: half the dataset's ``chunk_rows``).
        progress : bool, optional
            Show a bar over the chunks (None: in notebooks and terminals).
        wait : bool or float, default False
            Wait for the dataset's lock (True: forever; a float: that many seconds).
        engine : {None, "dask"}
            ``"dask"``: merge the runs on the workers of the active ``distributed.Client``
            (they reach the same Redis and store); this process holds the lock and commits.

        Returns
        -------
        Dataset
            ``self``: one version further, or unchanged when no run was small enough.

        Raises
        ------
        InvalidArgumentError
            ``min_rows`` is not a positive integer, or ``engine`` is not None or "dask".
        BackendUnavailableError
            ``engine="dask"`` without a running ``distributed.Client`` (it says how to
            start one).
        ReadOnlyVersionError
            This handle was opened at a version of the past.
        DatasetLockedError
            An ingest, append or delete holds the dataset (pass ``wait=``).
        ChunkCorruptionError
            A chunk to merge fails its checksum (nothing is committed).

        Examples
        --------
        >>> len(ds.compact().chunks)                         # doctest: +SKIP
        3
        """
        self._writable("compact")
        if engine not in (None, "dask"):
            raise InvalidArgumentError(
                f"engine={engine!r} is not one of None (this process) or 'dask' (the active "
                f"Dask cluster) for compacting dataset {self.id!r}")
        compact(self._client.backends, self.id, min_rows=min_rows, progress=progress,
                wait=wait, hooks=self._client.commit_hooks,
                dask=self._client.settings if engine == "dask" else None)
        self._client.reader.snapshot(self.id, refresh=True)
        return self

    def update(self, df: pd.DataFrame, on: str | Sequence[str], *,
               wait: bool | float = False) -> UpdateResult:
        """Upsert ``df``: rows matching existing rows on ``on`` replace them, others are appended.

        A matched row keeps its serial number. Only the chunks holding matched rows are
        rewritten (copy-on-write, in a new generation that shares every other chunk's file,
        as :meth:`compact` does), and the result is a new version; older versions read as
        before until :meth:`prune_versions`. A frame that changes no value and adds no row
        writes nothing. Last values are recomputed from the data by the next :meth:`last`.
        Values written into a time range deleted earlier (:meth:`delete`) keep reading as
        missing: the delete covers those rows.

        Parameters
        ----------
        df : pandas.DataFrame
            Exactly the dataset's columns (any order), of its types; one row per key.
        on : str or sequence of str
            The key columns, e.g. ``["time", "sensor"]``; a key of ``df`` matches every
            existing row that has it.
        wait : bool or float, default False
            Wait for the dataset's lock (True: forever; a float: that many seconds).

        Returns
        -------
        UpdateResult
            ``matched`` and ``appended`` rows of ``df``, ``rows_updated`` existing rows,
            ``chunks_rewritten``, ``chunks_appended``, the ``version`` and ``changed``.

        Raises
        ------
        SchemaMismatchError
            ``df`` lacks a column of the dataset, has another, or a type that does not
            convert; nothing is written.
        InvalidArgumentError
            ``on`` names no column, or ``df`` repeats a key or has a missing key.
        KeyError
            ``on`` names a column the dataset does not have.
        ReadOnlyVersionError
            This handle was opened at a version of the past.
        DatasetLockedError
            Another writer holds the dataset (pass ``wait=``).

        Examples
        --------
        >>> fix = ds.slice(100, 102).assign(temperature=[20.5, 20.7])     # doctest: +SKIP
        >>> ds.update(fix, on=["time", "sensor"]).matched                  # doctest: +SKIP
        2
        """
        self._writable("update")
        done = upsert(self._client.backends, self.id, df, on, wait=wait,
                      hooks=self._client.commit_hooks)
        self._client.reader.snapshot(self.id, refresh=True)
        return done

    # -- last values (lastcache/) ----------------------------------------------------------
    def last(self, device: Any = None, columns: Sequence[str] | str | None = None) -> pd.DataFrame:
        """Return the latest non-null (time, value) of each series.

        A series is (device, measurement); answers come from the last-value cache, and a
        miss reads as few chunks as their time statistics allow, then fills the cache.

        Parameters
        ----------
        device : Any, optional
            One device value or a list of them (None: every device). A dataset without a
            device column has one implicit device: leave it None.
        columns : str or sequence of str, optional
            Measurements (None: every column but the time and device columns).

        Returns
        -------
        pandas.DataFrame
            Columns ``device, measurement, time, value``; a series without any value is
            left out.

        Raises
        ------
        NoTimeColumnError
            The dataset has no time column (a ``SchemaMismatchError``).
        KeyError
            An unknown device (the message lists near and known ones) or measurement.

        Examples
        --------
        >>> ds.last(device="sensor-03", columns="temperature")  # doctest: +SKIP
              device  measurement                      time  value
        0  sensor-03  temperature 2026-01-18 08:36:02+00:00   21.4
        """
        if self._pinned is not None:
            raise InvalidArgumentError(
                f"last values of dataset {self.id!r} are kept for its current version only, "
                f"not for version {self._pinned}; open the current one with "
                f"cf.open({self.id!r}), or compute them from this version's to_pandas()")
        return mark(self._client.last_values.last(self.id, device, columns), "last", self.id)

    def delete(self, device: Any = None, columns: Sequence[str] | str | None = None, *,
               date_range: Any = None, start: Any = None, end: Any = None) -> DeleteResult:
        """Delete the values of the matching series whose time lies in ``date_range``.

        Deleted values read back as missing; serial numbers stay as they are, and rows
        appended later are never hidden. Cached last values in the range are dropped.

        Parameters
        ----------
        device : Any, optional
            One device (None: every device).
        columns : str or sequence of str, optional
            Measurements (None: every measurement).
        date_range : (start, end), optional
            Inclusive time bounds, each a Timestamp, datetime, ISO string or int (None: open);
            a naive time is read in the time column's time zone, an aware one against a naive
            column is converted to UTC, an int is the column's integer time (nanoseconds for
            datetimes). None: all times.
        start, end
            Deprecated spellings of ``date_range=(start, end)``.

        Returns
        -------
        DeleteResult
            ``series`` (DataFrame ``device, measurement, rows``: values hidden per series),
            ``total``, ``last_values_dropped`` and the new ``version``.

        Raises
        ------
        NoTimeColumnError
            The dataset has no time column (a ``SchemaMismatchError``).
        KeyError
            An unknown device or measurement; nothing is deleted.
        ValueError
            A bound that is not a time, or ``start`` after ``end``.
        TypeError
            A list of devices (call once per device).
        DatasetLockedError
            An ingest holds the dataset for longer than the delete waits.

        Examples
        --------
        >>> done = ds.delete(device="sensor-03",                   # doctest: +SKIP
        ...                  date_range=("2026-01-10", "2026-01-11"))
        >>> done.total, done.series                        # doctest: +SKIP
        (791,       device  measurement  rows
         0  sensor-03  temperature   160
         ...)
        """
        if start is not None or end is not None:
            if date_range is not None:
                raise InvalidArgumentError("give date_range=(start, end), not start/end too")
            warnings.warn("delete(start=, end=) is deprecated: use date_range=(start, end)",
                          DeprecationWarning, stacklevel=2)
            date_range = (start, end)
        self._writable("delete from")
        return self._client.last_values.delete(self.id, device, columns, date_range=date_range)

    def reset_last(self, device: Any = None, columns: Sequence[str] | str | None = None) -> None:
        """Drop cached last values; the next :meth:`last` recomputes them from the data.

        Parameters
        ----------
        device : Any, optional
            One device or a list (None: every device).
        columns : str or sequence of str, optional
            Measurements (None: every measurement).

        Raises
        ------
        NoTimeColumnError
            The dataset has no time column (a ``SchemaMismatchError``).
        KeyError
            An unknown device or measurement.

        Examples
        --------
        >>> ds.reset_last(device="sensor-03")             # doctest: +SKIP
        """
        self._writable("reset the last values of")
        self._client.last_values.reset(self.id, device, columns)

    # -- context (contextcache/) -----------------------------------------------------------
    @property
    def context(self) -> Context:
        """The dataset's context: a mapping of tags, shared through Redis.

        Returns
        -------
        Context
            ``ds.context[key]``, ``ds.context.get(key, default)``, ``put``, ``search``...;
            :meth:`tag`, :meth:`tags` and :meth:`find` are shortcuts to it.

        Examples
        --------
        >>> ds.context.get("owner", "nobody")             # doctest: +SKIP
        'ops team'
        """
        return self._client.context(self.id)

    def tag(self, key: str, value: Any, type: str = "METADATA",
            keywords: Sequence[str] | None = None) -> None:
        """Attach ``key → value`` to the dataset's context, searchable by keyword.

        Parameters
        ----------
        key : str
            The tag's name; replaces a tag of the same key and type.
        value : Any
            JSON data or a dataclass registered with ``cf.register_value_type``.
        type : str, default "METADATA"
            A ContextType name (any case).
        keywords : str or sequence of str, optional
            Keywords besides those cut from the key and from string values.

        Raises
        ------
        ContextError
            A bad key, type or keyword, or a value that cannot be stored.

        Examples
        --------
        >>> ds.tag("owner", "ops team", keywords=["facilities"])  # doctest: +SKIP
        """
        self.context.put(key, value, type=type, keywords=keywords)

    def tags(self, type: str | None = None) -> pd.DataFrame:
        """Return the dataset's tags as a table.

        Parameters
        ----------
        type : str, optional
            Only tags of this ContextType (None: all).

        Returns
        -------
        pandas.DataFrame
            Columns ``type, key, value``, ordered by type then key.

        Raises
        ------
        ContextError
            ``type`` is not a ContextType.

        Examples
        --------
        >>> ds.tags()                                     # doctest: +SKIP
               type    key     value
        0  METADATA  owner  ops team
        """
        return mark(self.context.to_frame(type), "tags", self.id)

    def find(self, keyword: str, type: str | None = None) -> pd.DataFrame:
        """Return the dataset's tags having ``keyword`` (any case).

        Parameters
        ----------
        keyword : str
            One keyword: a tag's key, a word of a string value, or an explicit keyword.
        type : str, optional
            Only tags of this ContextType (None: all).

        Returns
        -------
        pandas.DataFrame
            Columns ``type, key, value``; empty when nothing matches.

        Raises
        ------
        ContextError
            An empty keyword, or ``type`` is not a ContextType.

        Examples
        --------
        >>> ds.find("facilities")                         # doctest: +SKIP
               type    key     value
        0  METADATA  owner  ops team
        """
        return self.context.search(keyword, type)

    # -- export and browse ----------------------------------------------------------------
    def export(self, dest: str | os.PathLike[str], format: str | None = None, *,
               columns: Sequence[str] | str | None = None, start: int | None = None,
               stop: int | None = None, device: Any = None, date_range: Any = None,
               where: Any = None, progress: bool | None = None,
               storage_options: dict[str, Any] | None = None, parents: bool = False) -> str:
        """Stream the dataset chunk by chunk to a file, written atomically.

        Only a few chunks are in memory at a time, whatever the dataset's size: the next
        chunks are read while one is written, and only the columns written (and filtered on)
        are decoded. The file is written under a temporary name and moved into place when
        complete: a failed or interrupted export leaves no partial file. Parquet and Arrow
        keep the pandas metadata, so ``pd.read_parquet(dest)`` equals ``ds.to_pandas()``
        (index aside).

        Parameters
        ----------
        dest : str or PathLike
            A local path or a URL (``s3://bucket/key.parquet``); a directory (or a path
            ending in ``/``) receives ``<dataset id>.<ext>``.
        format : str, optional
            ``parquet``, ``csv``, ``arrow`` (IPC file) or ``jsonl``; None: from the extension.
        columns : str or sequence of str, optional
            Columns to write (all if None), in this order.
        start, stop : int, optional
            Serial-number range ``[start, stop)``, as ``iloc`` (negative counts from the end).
        device : Any or list, optional
            Keep the rows of this device (or these devices), compared as text.
        date_range : (start, end), optional
            Keep rows whose time lies in ``[start, end]`` (inclusive, either end None); read
            as :meth:`delete` reads it. Chunks whose time statistics rule it out are skipped.
        where : pyarrow.compute.Expression, optional
            Keep rows where it is true, e.g. ``pc.field("temperature") > 25`` (as
            :meth:`to_pandas`); chunks whose min/max rule out its comparisons are skipped.
        progress : bool, optional
            A progress bar (None: only on an interactive terminal or in a notebook).
        storage_options : dict, optional
            fsspec options for ``dest``; default: the client's storage options.
        parents : bool
            Create the missing parent directories of a local ``dest``; by default a missing
            directory is a :class:`~chunkframe.core.errors.PathNotFoundError` (a
            ``FileNotFoundError``), as ``open(dest, "w")`` would be.

        Returns
        -------
        str
            The file written (an absolute path, or the URL).

        Raises
        ------
        InvalidArgumentError
            An unknown format, a bad range, a filter the dataset has no column for, or a
            ``where`` that is not a boolean expression over the dataset's columns.
        NoTimeColumnError
            ``date_range`` on a dataset without a time column.
        PathNotFoundError
            The destination's directory does not exist (and ``parents`` is False).
        OSError
            The destination cannot be written; no partial file is left.

        Examples
        --------
        >>> ds.export("out/sensors.parquet", device="sensor-03",        # doctest: +SKIP
        ...           date_range=("2026-01-02", None))
        '/home/ana/out/sensors.parquet'
        """
        from .export.writer import export_dataset

        return export_dataset(
            self._client.reader, self.id, dest, format, columns=columns, start=start,
            stop=stop, device=device, date_range=date_range, where=where, progress=progress,
            storage_options=storage_options, parents=parents,
            default_storage_options=self._client.settings.storage_options,
            version=self._pinned).dest

    def browse(self, sn: int = 0) -> Any:
        """Return a notebook panel: a window of rows that scrolls the whole dataset.

        About 20 rows around row ``sn``, the current one highlighted, the columns' dtypes
        in the header; scroll (wheel, bar, keys ↑ ↓ j k PgUp PgDn Home End) or jump by
        serial number, time or chunk, each step reading only the rows in view through the
        chunk cache. Beside it, the current row's device plotted over time; collapsed
        sections hold the chunk's key and checksum, the last values and the tags. Follows
        the notebook's light or dark theme; text elsewhere.

        Parameters
        ----------
        sn : int, default 0
            The serial number of the row shown first.

        Returns
        -------
        chunkframe.display.widgets.Browser
            Displays itself in a notebook; as text elsewhere.

        Examples
        --------
        >>> ds.browse(12_345)                             # doctest: +SKIP
        """
        from .display.widgets import browse  # front end: imported only when asked for

        return browse(self, sn)

    def plot(self, column: str, device: Any = None, date_range: Any = None,
             max_points: int = 5_000, *, interactive: bool = False) -> Figure | ZoomPlot:
        """Plot ``column`` over time: a matplotlib figure, read from the chunks the range needs.

        Only the chunks whose time statistics overlap ``date_range`` (and hold ``device``)
        are read, through the chunk cache; each line is downsampled to the minimum and the
        maximum of each bucket of rows, so spikes survive and a dataset of any size draws
        at most ``max_points`` points.

        Parameters
        ----------
        column : str
            A numeric (or boolean) column.
        device : Any, optional
            One device's series; None: one line per device (at most 12), or the only series.
        date_range : (start, end), optional
            Inclusive, either end None; read as :meth:`delete` reads it.
        max_points : int, default 5_000
            Points drawn at most (shared between the lines).
        interactive : bool, default False
            Return a widget instead that zooms (wheel), pans (drag) and resets (double
            click), re-reading only the chunks in view and re-downsampling them.

        Returns
        -------
        matplotlib.figure.Figure or chunkframe.display.zoom.ZoomPlot
            The figure displays itself in a notebook; ``fig.savefig(path)`` elsewhere.
            Without a time column the x axis is the serial number.

        Raises
        ------
        KeyError
            An unknown column or device.
        InvalidArgumentError
            A column that is not numeric, a bad ``date_range`` or ``max_points``, a device or
            date range on a dataset without a device or time column, or more than 12 devices
            to draw without ``device=``.

        Examples
        --------
        >>> ds.plot("temperature", device="sensor-03",       # doctest: +SKIP
        ...         date_range=("2026-01-10", "2026-01-17"))
        <Figure size 960x307.2 with 1 Axes>
        """
        if interactive:
            from .display.zoom import zoom_plot  # front end: imported only when asked for

            return zoom_plot(self, column, device=device, date_range=date_range,
                             max_points=max_points)
        from .display.plot import plot  # front end: matplotlib imported only when asked for

        return plot(self, column, device=device, date_range=date_range, max_points=max_points)

    # -- display --------------------------------------------------------------------------
    def __repr__(self) -> str:
        return dataset_text(self)

    def _repr_html_(self) -> str:
        return dataset_html(self)
