"""`Dataset`: the handle users hold — reads by serial number, last values, tags, export."""

from __future__ import annotations

import functools
import html
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np
import pandas as pd
import pyarrow as pa

from .core.errors import InvalidArgumentError, SnapshotSupersededError
from .core.model import DatasetMeta
from .core.progress import progress_bar
from .read.reader import READ_AHEAD, ChunkGroups, Snapshot, chunk_slices, group_by_chunk, positions
from .read.rows import RowTemplate, is_text, wrap_vector

if TYPE_CHECKING:
    from .contextcache import Context
    from .lastcache.cache import DeleteResult
    from .session import Client

__all__ = ["Dataset", "BINDING_ATTR", "format_bytes"]

F = TypeVar("F", bound=Callable[..., Any])

BINDING_ATTR = "chunkframe"
"""Key in ``DataFrame.attrs`` that binds a frame to its dataset (read by ``df.chunk``)."""


def _retry_superseded(method: F) -> F:
    """Run a read again, once, if an overwrite replaced the generation it started on."""

    @functools.wraps(method)
    def wrapper(self: Dataset, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except SnapshotSupersededError:
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _assemble(columns: pd.Index, values: list[Any], index: pd.Index) -> pd.DataFrame:
    """A DataFrame of gathered columns under the dataset's own column index (a column asked
    twice comes twice, as with ``df[[c, c]]``)."""
    df = pd.DataFrame(dict(enumerate(values)), index=index, copy=False)
    df.columns = columns
    return df


def _unsort(values: np.ndarray, order: np.ndarray | None) -> np.ndarray:
    """``values`` gathered in ``order`` (of the positions asked) put back in the order asked:
    one scatter, no inverse permutation to build."""
    if order is None:
        return values
    out = np.empty_like(values)
    out[order] = values
    return out


def _take(snap: Snapshot, template: RowTemplate, entries: Iterable[Any], wanted: list[int],
          groups: ChunkGroups) -> dict[int, Any]:
    """Columns ``wanted`` of the rows ``groups`` asks: one Arrow take per column of each chunk
    of ``entries`` (consumed one by one: only the rows asked are kept), joined and taken
    back into the order asked; pandas dtypes from the schema's pandas metadata.

    Column by column: ``Table.take`` cost 2.5x the sum of its columns' takes.
    """
    local = pa.array(groups.local)
    names = [snap.schema.names[j] for j in wanted]
    pieces: list[list[pa.Array]] = [[] for _ in wanted]
    for entry, (lo, hi) in zip(entries, groups.spans, strict=True):
        rows = local.slice(lo, hi - lo)
        for k, name in enumerate(names):
            column = entry.table.column(name)
            values = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
            pieces[k].append(values.take(rows))
    inverse = None if groups.back is None else pa.array(
        _unsort(np.arange(len(groups.back)), groups.back))
    arrays = []
    for parts in pieces:
        joined = parts[0] if len(parts) == 1 else pa.concat_arrays(parts)  # unifies dictionaries
        arrays.append(joined if inverse is None else joined.take(inverse))
    out: dict[int, Any] = {}
    others = []
    for j, values in zip(wanted, arrays, strict=True):
        if is_text(template.dtypes[j], values.type):  # pandas' str dtype is Arrow
            out[j] = pd.array(values, dtype=template.dtypes[j])
        else:
            others.append((j, values))
    if others:  # through pandas' metadata, which restores their dtypes
        fields = [snap.schema.field(j) for j, _ in others]
        table = pa.Table.from_arrays([v for _, v in others],
                                     schema=pa.schema(fields, metadata=snap.schema.metadata))
        for (j, _), (_, series) in zip(others, table.to_pandas().items(), strict=True):
            dtype = template.dtypes[j]
            if isinstance(dtype, pd.CategoricalDtype) and series.dtype != dtype:
                series = series.astype(dtype)  # dictionaries unified across chunks
            values = series.array
            out[j] = (values.to_numpy() if isinstance(values, pd.arrays.NumpyExtensionArray)
                      else values)
    return out


class Dataset:
    """A complete dataset. Cheap to create: state lives in the client's caches.

    Examples
    --------
    >>> ds = cf.open("sensors")                     # doctest: +SKIP
    >>> ds.get(12_345)                               # doctest: +SKIP
    """

    def __init__(self, client: Client, dataset_id: str):
        self._client = client
        self.id = dataset_id
        self._snap()  # fail now, with DatasetNotFoundError, if it does not exist

    # -- metadata -------------------------------------------------------------------------
    def _snap(self) -> Snapshot:
        return self._client.reader.snapshot(self.id)

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
        snap = self._snap()
        return pd.DataFrame(
            [(c.chunk, c.start, c.rows, c.key, c.checksum, c.nbytes) for c in snap.chunks],
            columns=["chunk", "start", "rows", "key", "checksum", "bytes"],
        )

    def _bind(self, df: pd.DataFrame) -> pd.DataFrame:
        df.attrs[BINDING_ATTR] = {"dataset": self.id, "client": self._client.token}
        return df

    # -- reads ----------------------------------------------------------------------------
    @_retry_superseded
    def get(self, sn: int, column: str | None = None) -> Any:
        """Row ``sn`` as a Series equal to ``df.iloc[sn]``, or one value with ``column``.

        Negative ``sn`` counts from the end, as with ``iloc``; out of range is an IndexError.
        """
        reader = self._client.reader
        snap = reader.snapshot(self.id)
        if not isinstance(sn, (int, np.integer)) or isinstance(sn, (bool, np.bool_)):
            raise TypeError(f"serial number must be an integer, got {type(sn).__name__} {sn!r}")
        n = snap.meta.rows
        pos = int(sn) + n if sn < 0 else int(sn)
        if not 0 <= pos < n:
            raise IndexError(
                f"serial number {sn} is out of range for dataset {self.id!r}: valid serial "
                f"numbers are 0 to {n - 1} (or -{n} to -1)"
            )
        i = snap.locate(pos)
        local = pos - snap.starts[i]
        if column is not None:
            j = snap.column_index(column)
            return reader.getters(snap, i)[1][j](local)
        entry, getters = reader.getters(snap, i)
        template = reader.template(snap, entry)
        if template.fast:
            return template.series([g(local) for g in getters], pos)
        row = entry.table.slice(local, 1).to_pandas().iloc[0]
        row.name = pos
        return row

    @_retry_superseded
    def get_many(self, sns: Sequence[int] | np.ndarray, columns: Sequence[str] | None = None
                 ) -> pd.DataFrame:
        """Rows ``sns`` (any order, duplicates allowed) as a DataFrame indexed by sn.

        Chunks the cache holds and batch reads come back to are gathered through their
        planes (one numpy gather per column, as ``iloc``); the others are fetched in
        parallel and gathered from as they arrive, kept in the cache only when all the
        chunks asked fit in it, so a batch larger than the cache streams instead of
        thrashing it.
        """
        reader = self._client.reader
        snap = reader.snapshot(self.id)
        cols = snap.columns_of(columns)
        arr = positions(snap, sns)
        if arr.size == 0:
            table = self._empty(snap)
            return self._bind(self._frame(table, cols, pd.Index([], dtype="int64", name="sn")))
        names = snap.schema.names
        wanted = [names.index(c) for c in cols] if cols is not None else list(range(len(names)))
        chunk_of = snap.locate_many(arr)
        touched = np.flatnonzero(np.bincount(chunk_of, minlength=len(snap.chunks)))
        template = reader.template(snap) if snap.template is not None else reader.template(
            snap, reader.chunk(snap, int(touched[0])))
        data: dict[int, Any] = {}
        planes = reader.planes(snap, touched)
        if planes is not None:
            try:
                covered = planes.covering(touched)
                for j in wanted:
                    if covered[j] and j not in data:
                        data[j] = planes.gather(j, arr)
            finally:
                planes.unpin()
        rest = [j for j in dict.fromkeys(wanted) if j not in data]
        if rest:
            data.update(self._gather_by_chunk(snap, template, arr, chunk_of, rest))
        columns = template.columns if cols is None else template.columns[wanted]
        values = [data[j] for j in wanted]  # a column asked twice comes twice
        return self._bind(_assemble(columns, values, pd.Index(arr, name="sn")))

    def _gather_by_chunk(self, snap: Snapshot, template: RowTemplate, arr: np.ndarray,
                         chunk_of: np.ndarray, wanted: list[int]) -> dict[int, Any]:
        """Columns ``wanted`` of rows ``arr``, chunk by chunk.

        When the cache can hold the chunks asked, they are cached and numpy gathers from
        views of them (Arrow takes what numpy cannot); otherwise each chunk is fetched in
        parallel, only its rows asked are taken as it arrives, and it is dropped.
        """
        reader = self._client.reader
        groups = group_by_chunk(snap, arr, chunk_of)
        if not reader.fits(snap, np.asarray(groups.chunks)):
            streamed = (entry for _, entry in reader.stream(snap, groups.chunks, wanted))
            return _take(snap, template, streamed, wanted, groups)
        entries = [entry for _, entry in reader.stream(snap, groups.chunks, cache=True)]
        vectors = [reader.vectors(snap, i, e) for i, e in zip(groups.chunks, entries, strict=True)]
        locs = [groups.local[lo:hi] for lo, hi in groups.spans]
        out: dict[int, Any] = {}
        for j in wanted:
            vecs = [v[j] for v in vectors]
            if all(isinstance(v, np.ndarray) for v in vecs):
                arrays = cast(list[np.ndarray], vecs)
                gathered = np.concatenate([v[loc] for v, loc in zip(arrays, locs, strict=True)])
                out[j] = wrap_vector(_unsort(gathered, groups.back), template.dtypes[j])
        rest = [j for j in wanted if j not in out]
        if rest:
            out.update(_take(snap, template, entries, rest, groups))
        return out

    @staticmethod
    def _frame(table: pa.Table, cols: list[str] | None, index: pd.Index) -> pd.DataFrame:
        if cols is not None:
            table = table.select(cols)
        df = table.to_pandas()
        df.index = index
        return df

    @_retry_superseded
    def slice(self, start: int | None = None, stop: int | None = None,
              columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Rows ``[start, stop)`` like ``df.iloc[start:stop]`` (negative and open bounds too)."""
        reader = self._client.reader
        snap = self._snap()
        cols = snap.columns_of(columns)
        lo, hi, _ = slice(start, stop).indices(snap.meta.rows)
        hi = max(hi, lo)
        plan = {i: (off, count) for i, off, count in chunk_slices(snap, lo, hi)}
        cache = reader.fits(snap, np.fromiter(plan, dtype=np.int64, count=len(plan)))
        parts = [entry.table.slice(*plan[i])
                 for i, entry in reader.stream(snap, list(plan), self._positions(snap, cols), cache)]
        table = pa.concat_tables(parts) if parts else self._empty(snap)
        return self._bind(self._frame(table, cols, pd.RangeIndex(lo, hi, name="sn")))

    @staticmethod
    def _positions(snap: Snapshot, cols: list[str] | None) -> list[int] | None:
        names = snap.schema.names
        return None if cols is None else sorted({names.index(c) for c in cols})

    def _empty(self, snap: Snapshot) -> pa.Table:
        """Zero rows with the dataset's exact pandas dtypes (categories come from a chunk)."""
        return self._client.reader.chunk(snap, 0).table.slice(0, 0)

    def iter_chunks(self, columns: Sequence[str] | None = None) -> Iterator[pd.DataFrame]:
        """Each chunk as a DataFrame indexed by sn, the next ones fetched while one is used.

        Chunks not cached are not added to the cache (a full scan does not evict hot
        chunks), and of them only ``columns`` are decoded.
        """
        snap = self._snap()
        cols = snap.columns_of(columns)
        reader = self._client.reader
        for i, entry in reader.stream(snap, range(len(snap.chunks)), self._positions(snap, cols),
                                      ahead=READ_AHEAD):
            cm = snap.chunks[i]
            yield self._bind(self._frame(entry.table, cols,
                                         pd.RangeIndex(cm.start, cm.start + cm.rows, name="sn")))

    @_retry_superseded
    def to_pandas(self, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The whole dataset in memory, equal to the ingested frame (chunks fetched in
        parallel, uncached, only ``columns`` decoded)."""
        snap = self._snap()
        cols = snap.columns_of(columns)
        reader = self._client.reader
        tables = [entry.table for _, entry in reader.stream(
            snap, range(len(snap.chunks)), self._positions(snap, cols))]
        table = pa.concat_tables(tables)
        df = self._frame(table, cols, pd.RangeIndex(snap.meta.rows))
        return self._bind(df)

    def verify(self, progress: bool | None = None) -> pd.DataFrame:
        """Check every chunk's checksum in the store; one row per bad chunk (empty if intact)."""
        snap = self._snap()
        bar = progress_bar(len(snap.chunks), f"verify {self.id}", progress, unit="chunks")
        bad = []
        try:
            for i, cm in enumerate(snap.chunks):
                problem = self._client.reader.verify_chunk(snap, i)
                if problem is not None:
                    bad.append((cm.chunk, cm.key, problem))
                bar.update(1)
        finally:
            bar.close()
        return pd.DataFrame(bad, columns=["chunk", "key", "problem"])

    def cache_info(self) -> dict[str, Any]:
        """Chunk-cache counters (hits, misses, bytes, chunks cached) for this client."""
        return self._client.reader.cache_info(self.id)

    # -- writes ---------------------------------------------------------------------------
    def append(self, df: pd.DataFrame, **kwargs: Any) -> Dataset:
        """Append the rows of ``df``; their serial numbers continue from ``len(self)``.

        Parameters
        ----------
        df : pandas.DataFrame
            The same columns, in the same order and of the same types, as the dataset.
        **kwargs
            Ingest options: ``chunk_rows``, ``progress``, ``wait`` (for the dataset's lock),
            ``compression``, ``workers``.

        Returns
        -------
        Dataset
            ``self``, now one version further. Last values are kept current.

        Raises
        ------
        SchemaMismatchError
            ``df``'s columns or types differ from the dataset's.
        DatasetLockedError
            Another ingest, append or delete holds the dataset (pass ``wait=``).

        Examples
        --------
        >>> ds.append(new_readings).meta.rows             # doctest: +SKIP
        50100
        """
        self._client.ingest(df, self.id, mode="append", **kwargs)
        return self

    # -- last values (lastvalues.py) -------------------------------------------------------
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
        SchemaMismatchError
            The dataset has no time column.
        KeyError
            An unknown device (the message lists near and known ones) or measurement.

        Examples
        --------
        >>> ds.last(device="sensor-03", columns="temperature")  # doctest: +SKIP
              device  measurement                      time  value
        0  sensor-03  temperature 2026-01-18 08:36:02+00:00   21.4
        """
        return self._client.last_values.last(self.id, device, columns)

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
        SchemaMismatchError
            The dataset has no time column.
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
        SchemaMismatchError
            The dataset has no time column.
        KeyError
            An unknown device or measurement.

        Examples
        --------
        >>> ds.reset_last(device="sensor-03")             # doctest: +SKIP
        """
        self._client.last_values.reset(self.id, device, columns)

    # -- context (context.py) --------------------------------------------------------------
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
        return self.context.to_frame(type)

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
               progress: bool | None = None, storage_options: dict[str, Any] | None = None,
               parents: bool = False) -> str:
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
            An unknown format, a bad range, or a filter the dataset has no column for.
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
            stop=stop, device=device, date_range=date_range, progress=progress,
            storage_options=storage_options, parents=parents,
            default_storage_options=self._client.settings.storage_options).dest

    def browse(self, sn: int = 0) -> Any:
        """Return an ipywidgets panel to step through rows, chunks, last values and tags.

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

    # -- display --------------------------------------------------------------------------
    def _summary(self) -> dict[str, Any]:
        snap = self._snap()
        info = self.cache_info()
        return {
            "rows": snap.meta.rows, "chunks": len(snap.chunks), "bytes": snap.meta.nbytes,
            "columns": snap.schema.names, "generation": snap.meta.generation,
            "time_column": snap.meta.time_column, "device_column": snap.meta.device_column,
            "hit_rate": info["hit_rate"], "cached_chunks": info["chunks"],
        }

    def __repr__(self) -> str:
        s = self._summary()
        cols = ", ".join(s["columns"][:8]) + (", ..." if len(s["columns"]) > 8 else "")
        return (f"<chunkframe.Dataset {self.id!r}: {s['rows']:,} rows in {s['chunks']} chunks, "
                f"{format_bytes(s['bytes'])}; columns: {cols}>")

    def _repr_html_(self) -> str:
        s = self._summary()
        rows = [("rows", f"{s['rows']:,}"), ("chunks", s["chunks"]), ("stored", format_bytes(s["bytes"])),
                ("columns", ", ".join(s["columns"][:20]) + (" …" if len(s["columns"]) > 20 else "")),
                ("time / device", f"{s['time_column']} / {s['device_column']}"),
                ("cache", f"{s['cached_chunks']} chunks, hit rate {s['hit_rate']:.0%}")]
        body = "".join(f"<tr><th style='text-align:left'>{k}</th><td style='text-align:left'>"
                       f"{html.escape(str(v))}</td></tr>" for k, v in rows)
        return (f"<div><b>chunkframe.Dataset</b> <code>{html.escape(self.id)}</code>"
                f"<table>{body}</table></div>")


def format_bytes(n: float | None) -> str:
    """``1.5 MB``-style sizes for reprs and the command line; ``-`` when unknown."""
    if n is None or n != n:  # None or NaN
        return "-"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"
