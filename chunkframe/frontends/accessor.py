"""pandas accessors ``df.chunk`` and ``series.chunk``: a frame's way back to its dataset.

A frame read from a dataset (``ds.slice``, ``ds.get_many``, ``ds.iter_chunks``,
``ds.to_pandas``) or ingested with ``df.chunk.ingest(name)`` carries a *binding* in
``df.attrs["chunkframe"]``: ``{"dataset": <id>, "client": <client token>}``. The accessors
are stateless (pandas builds a new one on every ``df.chunk``): they read the binding and
delegate to the :class:`~chunkframe.dataset.Dataset`, whose state lives in the client's caches.

pandas copies ``attrs`` to the results of most operations, so a filtered, copied or
reshaped frame still reaches the *whole* dataset (``df[df.x > 0].chunk.get(any_sn)``).
Checked with pandas 3.1; the binding is kept by boolean filtering, ``loc``/``iloc``,
``head``/``sample``, column selection (frames and single Series), ``copy``, ``assign``,
``astype``, ``sort_values``, ``query``, ``reset_index``/``set_index``, ``groupby(...).agg``,
``resample``, ``pivot_table``, ``melt``, arithmetic, pickling and ``to_parquet``/``read_parquet``.
It is **dropped** by ``pd.DataFrame(df)``, ``merge``/``join``/``concat`` with an unbound
frame or a frame of another dataset, ``rolling``/``ewm``/``expanding``, ``value_counts``
and CSV round trips. Bind such a result again with
``result.attrs.update(bound.attrs)`` or ingest it as a new dataset.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..core.errors import ChunkFrameError, DatasetNotFoundError, Hint, NoTimeColumnError
from ..core.units import plural

if TYPE_CHECKING:
    from ..dataset import Dataset
    from ..session import Client

# The client and dataset modules (Redis, fsspec, the reader) are imported on first use: `import
# chunkframe` registers these accessors, and the command line's --help should not pay for them.

__all__ = ["ChunkFrameAccessor", "ChunkSeriesAccessor"]


def _read_binding(obj: pd.DataFrame | pd.Series) -> tuple[str, str | None] | None:
    """``(dataset id, client token)`` of a bound frame, None if unbound; AttributeError if
    ``attrs`` holds something under our key that is not a binding."""
    from ..dataset import BINDING_ATTR

    raw = obj.attrs.get(BINDING_ATTR)
    if raw is None:
        return None
    if (isinstance(raw, dict) and isinstance(raw.get("dataset"), str)
            and isinstance(raw.get("client"), (str, type(None)))):
        return raw["dataset"], raw.get("client")
    kind = type(obj).__name__
    raise AttributeError(
        f"this {kind}'s attrs[{BINDING_ATTR!r}] is {raw!r}, not a chunkframe binding "
        f"({{'dataset': <id>, 'client': <token>}}), so .chunk cannot use it. Remove it with "
        f"obj.attrs.pop({BINDING_ATTR!r}) and bind the {kind} again with .chunk.ingest('name')"
    )


class _Bound:
    """What both accessors share: the binding, the dataset, and the unbound error."""

    _kind = "df"

    def __init__(self, pandas_obj: pd.DataFrame | pd.Series) -> None:
        self._binding = _read_binding(pandas_obj)  # validation: AttributeError if malformed
        self._obj = pandas_obj

    @property
    def is_bound(self) -> bool:
        """Whether this object is bound to a dataset (then ``.dataset`` and reads work)."""
        return self._binding is not None

    @property
    def dataset(self) -> Dataset:
        """The bound :class:`~chunkframe.dataset.Dataset` (cheap: no chunk is read).

        Raises ChunkFrameError if unbound, DatasetNotFoundError if the dataset is gone.
        """
        from ..dataset import Dataset
        from ..session import client_for_token, default_client

        dataset_id, token = self._require("dataset")
        client: Client = client_for_token(token) if token else default_client()
        try:
            return Dataset(client, dataset_id)
        except DatasetNotFoundError as exc:
            if client.token == token:
                raise
            raise DatasetNotFoundError(
                f"{exc}. This object was bound by a client that no longer exists in this "
                f"process (it was unpickled or read from a file, or its client was dropped), "
                f"so the default client {client!r} was asked: call cf.connect(...) with the "
                f"store and Redis the dataset lives in first"
            ) from exc

    def _require(self, method: str) -> tuple[str, str | None]:
        if self._binding is None:
            kind = type(self._obj).__name__
            raise ChunkFrameError(
                f"this {kind} is not bound to a chunkframe dataset, so {self._kind}.chunk."
                f"{method} has no dataset to use. Bind a DataFrame by ingesting it with "
                f"df.chunk.ingest('name'), or read one from a dataset with "
                f"cf.open('name').to_pandas() (or .slice / .get_many); those frames stay bound "
                f"through filtering and copies (merge/concat with unbound frames and "
                f"pd.DataFrame(df) drop the binding)"
            )
        return self._binding


@pd.api.extensions.register_dataframe_accessor("chunk")
class ChunkFrameAccessor(_Bound):
    """``df.chunk``: ingest a frame as a dataset, or reach the dataset a frame came from.

    Examples
    --------
    >>> ds = df.chunk.ingest("sensors", time_column="time")      # doctest: +SKIP
    >>> hot = df[df.temperature > 30]                             # doctest: +SKIP
    >>> hot.chunk.get(49_999)             # any row of the whole dataset  # doctest: +SKIP
    >>> hot.chunk.find("calibrated")                              # doctest: +SKIP
    """

    def ingest(self, dataset_id: str, chunk_rows: int = 65_536, time_column: str | None = None,
               device_column: str | None = None, mode: str = "create", *,
               client: Client | None = None, **kwargs: Any) -> Dataset:
        """Ingest this frame as ``dataset_id`` and bind the frame to it.

        Uses the default client unless ``client`` is given; the other arguments are those of
        :func:`chunkframe.ingestion.pipeline`. On error nothing is bound.
        """
        from ..session import default_client

        client = client if client is not None else default_client()
        ds = client.ingest(self._obj, dataset_id, chunk_rows=chunk_rows, time_column=time_column,
                           device_column=device_column, mode=mode, **kwargs)
        ds._bind(self._obj)
        return ds

    def get(self, sn: int, column: str | None = None) -> Any:
        """Row ``sn`` of the bound dataset (a Series), or one value with ``column``."""
        self._require("get()")
        return self.dataset.get(sn, column)

    def get_many(self, sns: Sequence[int] | np.ndarray,
                 columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Rows ``sns`` of the bound dataset, indexed by sn (a bound frame itself)."""
        self._require("get_many()")
        return self.dataset.get_many(sns, columns)

    def last(self, device: Any = None, columns: Sequence[str] | str | None = None
             ) -> pd.DataFrame:
        """Latest non-null (time, value) of each series *among this frame's rows*.

        The frame's own values (a slice, a filtered or changed frame), at the dataset's times,
        as ``df[column].chunk.last()`` gives one column's; in the columns and order of
        ``ds.last()`` (``device, measurement, time, value``), which a frame of the whole
        dataset equals. ``device``: one device or a list (None: every device in the frame);
        ``columns``: measurements of the frame (None: all). The dataset's stored latest
        values, whatever rows the frame holds, are ``df.chunk.dataset.last()``.
        """
        self._require("last()")
        ds = self.dataset
        frame = self._obj
        meta = ds.meta
        tcol, dcol = meta.time_column, meta.device_column
        if tcol is None:
            raise NoTimeColumnError(ds.id, "the frame's values have no times",
                                    Hint("set the times as the index of a column and use "
                                         "series.chunk.last()"))
        measurements = [c for c in ds.columns if c not in (tcol, dcol)]
        if columns is None:
            names = [c for c in measurements if c in frame.columns]
        else:
            names = list(dict.fromkeys([columns] if isinstance(columns, str) else columns))
            for c in names:
                if c not in measurements or c not in frame.columns:
                    where = "this frame" if c in measurements else f"dataset {ds.id!r}"
                    raise KeyError(f"{where} has no measurement {c!r}; measurements of this "
                                   f"frame are {[m for m in measurements if m in frame.columns]!r}")
        sns = _serial_numbers(frame.index, ds, len(frame), "frame", tcol)
        rows = ds.get_many(sns, columns=[tcol] if dcol is None else [tcol, dcol])
        groups = _device_groups(rows, ds, dcol, device)
        found = []
        for dev, keep in groups:
            times = rows[tcol][keep]
            for name in names:
                t, v = _last_at(frame[name].to_numpy()[keep], times, name)
                if t is not None:
                    found.append((dev, name, t, v))
        return _last_frame(found, ds, rows[tcol].dtype)

    def tag(self, key: str, value: Any, type: str = "METADATA",
            keywords: Sequence[str] | None = None) -> None:
        """Tag the bound dataset: ``key → value`` in its context, searchable by keyword."""
        self._require("tag()")
        self.dataset.tag(key, value, type=type, keywords=keywords)

    def tags(self, type: str | None = None) -> pd.DataFrame:
        """The bound dataset's tags: DataFrame ``type, key, value``."""
        self._require("tags()")
        return self.dataset.tags(type)

    def find(self, keyword: str, type: str | None = None) -> pd.DataFrame:
        """The bound dataset's tags having ``keyword``: DataFrame ``type, key, value``."""
        self._require("find()")
        return self.dataset.find(keyword, type)


@pd.api.extensions.register_series_accessor("chunk")
class ChunkSeriesAccessor(_Bound):
    """``series.chunk``: the latest value of a series; the dataset a column came from.

    Examples
    --------
    >>> s = df.set_index("time")["temperature"]                   # doctest: +SKIP
    >>> s.chunk.last()                                            # doctest: +SKIP
    (Timestamp('2026-01-18 08:36:36+0000', tz='UTC'), 21.43)
    >>> cf.open("sensors").to_pandas()["temperature"].chunk.last()  # doctest: +SKIP
    """

    _kind = "series"

    def get(self, sn: int) -> Any:
        """The value of this series' column at row ``sn`` of the bound dataset."""
        self._require("get()")
        ds = self.dataset
        return ds.get(sn, self._column(ds))

    def last(self, device: Any = None) -> tuple[Any, Any]:
        """``(time, value)`` of the latest non-null value; ``(None, None)`` if there is none.

        - A Series with a DatetimeIndex: its own latest value (ties: the later row).
        - A column of a frame bound to a dataset with a time column, still indexed by serial
          number (the whole ``to_pandas()`` column, or a part of it): its own values — changed
          or filtered as they may be — with the dataset's times. For the dataset's stored
          latest values use ``ds.last()``, which its last-value cache answers.
          ``device`` restricts it to one device of the dataset's device column; across
          devices the latest wins.
        """
        s = self._obj
        if isinstance(s.index, pd.DatetimeIndex):
            if device is not None:
                raise ValueError(
                    f"device={device!r} applies to a column read from a dataset with a "
                    f"device column; this series has its times in its index: filter it first"
                )
            return _last_of_series(s)
        if self._binding is None:
            raise ChunkFrameError(
                f"series.chunk.last() needs the time of each value, and series {s.name!r} has "
                f"a {type(s.index).__name__}, not a DatetimeIndex, and is not bound to a "
                f"dataset. Put the times in the index, e.g. "
                f"df.set_index('time')[{s.name!r}].chunk.last(), or take the column from a "
                f"dataset with a time column: cf.open('name').to_pandas()[{s.name!r}]"
            )
        ds = self.dataset
        meta = ds.meta
        tcol, dcol = meta.time_column, meta.device_column
        if tcol is None:
            raise NoTimeColumnError(ds.id, f"the values of {s.name!r} have no times",
                                    Hint("give the series a DatetimeIndex"))
        name = self._column(ds)
        if name in (tcol, dcol):
            raise ChunkFrameError(
                f"{name!r} is the {'time' if name == tcol else 'device'} column of dataset "
                f"{ds.id!r}, not a measurement; take a measurement column such as "
                f"{next((c for c in ds.columns if c not in (tcol, dcol)), '...')!r}"
            )
        if device is not None and dcol is None:
            raise ValueError(f"dataset {ds.id!r} has no device column; call last() "
                             f"without device=")
        _serial_numbers(s.index, ds, len(s), f"series {s.name!r}", tcol, s.name)
        values = s[s.notna()]
        if values.empty:
            return None, None
        cols = [tcol] if device is None or dcol is None else [tcol, dcol]
        rows = ds.get_many(values.index.to_numpy(), columns=cols)
        if device is not None and dcol is not None:
            keep = (rows[dcol] == device).to_numpy()
            values, rows = values[keep], rows[keep]
        return _last_at(values.to_numpy(), rows[tcol], s.name)

    def _column(self, ds: Dataset) -> str:
        name = self._obj.name
        if not isinstance(name, str) or name not in ds.columns:
            raise ChunkFrameError(
                f"this series is named {name!r}, which is not a column of its dataset "
                f"{ds.id!r} (columns: {ds.columns!r}); take it as df[column] from a bound frame"
            )
        return name


def _serial_numbers(index: pd.Index, ds: Dataset, rows: int, what: str, tcol: str,
                    column: Any = "x") -> np.ndarray:
    """The serial numbers an index of a bound object stands for: an index named 'sn', or
    the whole RangeIndex of ``to_pandas()``; else a ChunkFrameError saying how to keep them."""
    n = len(ds)
    whole = isinstance(index, pd.RangeIndex) and index.equals(pd.RangeIndex(n))
    if not whole and (index.name != "sn" or index.dtype.kind not in "iu"):
        raise ChunkFrameError(
            f"{what} is bound to dataset {ds.id!r}, but its index ({index.name!r}, "
            f"{index.dtype}, {plural(rows, 'row')}) is not the dataset's serial numbers (an "
            f"index named 'sn', or the whole RangeIndex of to_pandas() for all "
            f"{plural(n, 'row')}), so its values "
            f"cannot be matched to the dataset's times. Take last() before resetting the "
            f"index, or set the times as the index: df.set_index({tcol!r})[{column!r}].chunk.last()"
        )
    return index.to_numpy()


def _device_groups(rows: pd.DataFrame, ds: Dataset, dcol: str | None, device: Any
                   ) -> list[tuple[Any, np.ndarray]]:
    """(device, row mask) of each device asked (None: every device of ``rows``, sorted as
    ``ds.last()`` sorts them), by device key; one group of every row without a device column."""
    from ..core.devices import device_key, typed_device

    if dcol is None:
        if device is not None:
            raise KeyError(f"dataset {ds.id!r} has no device column, so its series belong to "
                           f"no device; call without device= (got {device!r})")
        return [(None, np.ones(len(rows), dtype=bool))]
    typ = ds.schema.field(dcol).type
    keys = np.array([None if pd.isna(v) else device_key(v, typ) for v in rows[dcol]],
                    dtype=object)
    if device is None:
        present = {k for k in keys if k is not None}
        typed = {k: typed_device(k, typ) for k in present}
        try:
            asked = sorted(present, key=lambda k: typed[k])
        except TypeError:
            asked = sorted(present)
    else:
        items = list(device) if isinstance(device, (list, tuple, set, pd.Index, np.ndarray,
                                                     pd.Series)) else [device]
        asked = list(dict.fromkeys(device_key(d, typ) for d in items))
    return [(typed_device(k, typ), keys == k) for k in asked]


def _last_frame(found: list[tuple[Any, str, Any, Any]], ds: Dataset, time_dtype: Any
                ) -> pd.DataFrame:
    """``(device, measurement, time, value)`` rows in the columns and dtypes of ``ds.last()``
    (``time_dtype``: the time column's, as the dataset's reads give it)."""
    times = pd.Series([t for _, _, t, _ in found], dtype=time_dtype).to_numpy() \
        if time_dtype.kind in "iu" else pd.DatetimeIndex(
            pd.Series([t for _, _, t, _ in found], dtype=time_dtype))
    values = np.empty(len(found), dtype=object)
    values[:] = [v.item() if isinstance(v, np.generic) else v for _, _, _, v in found]
    empty = np.empty(0, dtype=object)
    if ds.meta.device_column is None:
        devices: Any = np.full(len(found), None, dtype=object)
    else:
        devices = pd.array([d for d, _, _, _ in found]) if found else empty
    measurements = pd.array([m for _, m, _, _ in found]) if found else empty
    return pd.DataFrame({"device": devices, "measurement": measurements, "time": times,
                         "value": values}, copy=False)


def _last_of_series(series: pd.Series) -> tuple[Any, Any]:
    """Latest non-null value of a time-indexed series, by the last-value cache's rules."""
    from ..lastcache import last_of_series  # lazily: the accessor loads with the package

    return last_of_series(series)


def _last_at(values: np.ndarray, times: pd.Series, name: Any) -> tuple[Any, Any]:
    """:func:`_last_of_series` of ``values`` at ``times``: datetimes, or the integers of an
    integer time column (ordered through the exact int64 → ns datetime mapping)."""
    if times.dtype.kind in "iu":
        t, v = _last_of_series(pd.Series(values, index=pd.to_datetime(
            times.to_numpy(dtype=np.int64), unit="ns"), name=name))
        return (None if t is None else int(t.value)), v
    return _last_of_series(pd.Series(values, index=pd.DatetimeIndex(times), name=name))
