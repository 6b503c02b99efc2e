"""Single rows straight from Arrow chunks, as pandas would give them, without converting chunks.

``df.iloc[sn]`` on a mixed frame returns an object Series whose values are numpy scalars,
``Timestamp``s, ``str``s and missing markers that depend on each column's dtype. A
:class:`RowTemplate` learns those rules once per dataset schema from a one-row sample, and
:func:`column_getters` turns each decoded chunk's columns into ``i -> value`` functions
(zero-copy numpy views where Arrow allows) so a warm ``get(sn)`` costs microseconds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["RowTemplate", "TextCodes", "Vector", "column_getter", "column_getters",
           "column_vectors", "Getter", "is_text"]

Getter = Callable[[int], Any]


class RowTemplate:
    """The pandas view of one schema: column index, dtypes, and the dtype of a row."""

    def __init__(self, sample: pd.DataFrame):
        self.columns = sample.columns
        self.dtypes = list(sample.dtypes)
        self.row_dtype = sample.iloc[0].dtype if len(sample) else np.dtype(object)
        # each categorical's categories as a list, to compare chunks' dictionaries with
        self.categories = [list(d.categories) if isinstance(d, pd.CategoricalDtype) else None
                           for d in self.dtypes]
        # a row of one shared numpy dtype (all floats, ...) or of objects takes the fast path
        self.fast = self.row_dtype == np.dtype(object) or (
            isinstance(self.row_dtype, np.dtype) and self.row_dtype.kind in "fiub"
        )

    def series(self, values: list[Any], name: int) -> pd.Series:
        if self.row_dtype.kind in "iub" and any(v is np.nan or v is None for v in values):
            # a deleted value in an integer row: pandas would give floats (or objects)
            return pd.Series(values, index=self.columns, name=name)
        return pd.Series(values, index=self.columns, dtype=self.row_dtype, name=name)


def _missing_for(dtype: Any) -> Any:
    if isinstance(dtype, pd.CategoricalDtype):
        return np.nan
    if isinstance(dtype, pd.StringDtype):
        return dtype.na_value
    if isinstance(dtype, pd.api.extensions.ExtensionDtype) and not isinstance(
        dtype, pd.DatetimeTZDtype
    ):
        return pd.NA
    if isinstance(dtype, pd.DatetimeTZDtype) or (isinstance(dtype, np.dtype) and dtype.kind in "mM"):
        return pd.NaT
    if isinstance(dtype, np.dtype) and dtype.kind == "O":
        return None
    return np.nan


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECONDS = {"s": 1_000_000, "ms": 1_000, "us": 1}


def timestamp_of(unit: str, tz: str | None) -> Callable[[int], pd.Timestamp]:
    """``v -> pd.Timestamp(v, unit=unit, tz=tz)`` for integers ``v`` of a timestamp column.

    With a zone, pandas' constructor takes ~17 µs (a 19-column row's largest cost); through a
    ``datetime`` it takes ~4 µs for the same Timestamp (unit and pandas' own zone object).
    Nanoseconds a ``datetime`` cannot hold, and times beyond its years, take the constructor.

    >>> make = timestamp_of("us", "America/New_York")
    >>> make(1_356_998_400_123_456) == pd.Timestamp(1_356_998_400_123_456, unit="us",
    ...                                             tz="America/New_York")
    True
    """
    def exact(v: int) -> pd.Timestamp:
        return pd.Timestamp(int(v), unit=unit, tz=tz)

    if tz is None:  # naive: the constructor is fast already
        return exact
    sample = pd.Timestamp(0, unit=unit, tz=tz)
    zone, made = sample.tz, sample.unit  # pandas' object for the zone, the unit it gives
    per = _MICROSECONDS.get(unit)

    def fast(v: int) -> pd.Timestamp:
        n = int(v)
        if per is None and n % 1_000:  # nanoseconds below a microsecond
            return exact(n)
        try:
            when = _EPOCH + dt.timedelta(microseconds=n * per if per else n // 1_000)
        except OverflowError:
            return exact(n)
        ts = pd.Timestamp(when.astimezone(zone))
        return ts if made == "us" else ts.as_unit(made)

    return fast


def _getter(arr: pa.Array, dtype: Any) -> Getter:
    missing = _missing_for(dtype)
    has_nulls = arr.null_count > 0
    t = arr.type
    if pa.types.is_dictionary(t):
        cats = arr.dictionary.to_pylist()
        if not has_nulls:
            codes = arr.indices.to_numpy()
            return lambda i: cats[codes[i]]
        codes = arr.indices.fill_null(-1).to_numpy(zero_copy_only=False)
        return lambda i: cats[codes[i]] if codes[i] >= 0 else missing
    if pa.types.is_timestamp(t) or pa.types.is_duration(t):
        storage = arr.view(pa.int64())  # zero-copy: the values as integers of ``unit``
        ints = storage.to_numpy() if not has_nulls else storage.fill_null(0).to_numpy()
        valid = arr.is_valid().to_numpy(zero_copy_only=False) if has_nulls else None
        unit = t.unit
        if pa.types.is_duration(t):
            make: Callable[[int], Any] = lambda v: pd.Timedelta(int(v), unit=unit)  # noqa: E731
        else:
            make = timestamp_of(unit, t.tz)
        if valid is None:
            return lambda i: make(ints[i])
        return lambda i: make(ints[i]) if valid[i] else missing
    numeric = pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_boolean(t)
    if numeric and isinstance(dtype, np.dtype) and not has_nulls:
        values = arr.to_numpy(zero_copy_only=False)
        return values.__getitem__
    if pa.types.is_floating(t) and isinstance(dtype, np.dtype):
        values = arr.to_numpy(zero_copy_only=False)  # nulls become NaN, as pandas has them
        return values.__getitem__

    def scalar(i: int) -> Any:
        v = arr[i].as_py()
        return missing if v is None else v

    return scalar


def column_getters(table: pa.Table, template: RowTemplate) -> list[Getter]:
    """One ``i -> value`` function per column of a single-batch chunk table."""
    return [column_getter(table, template, j) for j in range(table.num_columns)]


def column_getter(table: pa.Table, template: RowTemplate, j: int) -> Getter:
    """The ``i -> value`` function of column ``j`` alone (a single value's read builds
    no other column's)."""
    col = table.column(j)
    arr = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
    return _getter(arr, template.dtypes[j])


class TextCodes(NamedTuple):
    """A low-cardinality text column, dictionary-encoded for batch reads: gathering int
    codes with numpy, then one Arrow take from the dictionary, beats a string take per chunk."""

    codes: np.ndarray  # int32 positions in ``dictionary``; a missing value is an entry too
    dictionary: pa.Array

    @property
    def nbytes(self) -> int:
        return int(self.codes.nbytes + self.dictionary.nbytes)


def is_text(dtype: Any, arrow_type: pa.DataType) -> bool:
    """Whether a column is pandas ``str`` text stored as an Arrow string: the columns batch
    reads dictionary-encode, and take as plain Arrow arrays when they cannot."""
    return isinstance(dtype, pd.StringDtype) and (pa.types.is_string(arrow_type)
                                                  or pa.types.is_large_string(arrow_type))


# encode a text column only when it has at most one distinct value per this many rows
TEXT_CODES_MIN_REPEAT = 8

Vector = np.ndarray | TextCodes | None


def column_vectors(table: pa.Table, template: RowTemplate, text_codes: bool = True,
                   columns: Sequence[int] | None = None) -> list[Vector]:
    """What a batch read gathers with numpy, per column (of ``columns`` only, positions, if
    given: one vector each, in that order); None where Arrow must take.

    Zero-copy views of numeric columns without nulls, datetimes and durations (as integers)
    and categoricals whose dictionary is the dataset's categories (as codes); booleans are
    unpacked (a copy). With ``text_codes``, low-cardinality text columns as
    :class:`TextCodes` (new memory, and a pass over the column: for the gather planes).
    """
    out: list[Vector] = []
    for j in range(table.num_columns) if columns is None else columns:
        col, dtype, categories = table.column(j), template.dtypes[j], template.categories[j]
        arr = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
        t = arr.type
        vec: Vector = None
        if is_text(dtype, t):
            if not text_codes:
                out.append(None)
                continue
            encoded = pc.dictionary_encode(arr, null_encoding="encode")
            if len(encoded.dictionary) * TEXT_CODES_MIN_REPEAT <= len(arr):
                vec = TextCodes(encoded.indices.to_numpy(), encoded.dictionary)
        elif arr.null_count:
            pass
        elif pa.types.is_dictionary(t) and isinstance(dtype, pd.CategoricalDtype):
            if arr.dictionary.to_pylist() == categories:
                vec = arr.indices.to_numpy()
        elif pa.types.is_timestamp(t) or pa.types.is_duration(t):
            unit = np.datetime_data(dtype)[0] if isinstance(dtype, np.dtype) else getattr(
                dtype, "unit", None)
            if unit == t.unit:
                vec = arr.view(pa.int64()).to_numpy()
        elif (pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_boolean(t)) \
                and isinstance(dtype, np.dtype):
            vec = arr.to_numpy(zero_copy_only=False)
        out.append(vec)
    return out


def wrap_vector(values: np.ndarray, dtype: Any) -> Any:
    """Turn gathered raw values (from :func:`column_vectors`) into a pandas array of ``dtype``."""
    if isinstance(dtype, pd.CategoricalDtype):
        return pd.Categorical.from_codes(values, dtype=dtype)
    if isinstance(dtype, pd.DatetimeTZDtype):
        return pd.DatetimeIndex(values.view(f"M8[{dtype.unit}]")).tz_localize("UTC").tz_convert(
            dtype.tz).array
    if isinstance(dtype, np.dtype) and dtype.kind in "mM":
        return values.view(dtype)
    return values
