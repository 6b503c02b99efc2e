"""Times as the integers chunks compare them in: one bound parser and one conversion for all.

A time column is either timestamps (compared as int64 nanoseconds since the epoch, the form
chunk statistics record) or plain integers (compared as they are). Every time range a user
gives (deletes, exports, the command line) goes through :func:`time_bound` /
:func:`date_range_bounds`, and every column through :func:`times_ns`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from .errors import InvalidArgumentError

__all__ = ["times_ns", "time_bound", "date_range_bounds", "utc_from_epoch"]


def times_ns(col: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """A time column as int64: nanoseconds for timestamps (any unit, any zone: instants
    compare in UTC), the values themselves for integers; nulls stay null."""
    if pa.types.is_timestamp(col.type):
        col = col.cast(pa.timestamp("ns", col.type.tz))
    return col.cast(pa.int64())


def utc_from_epoch(seconds: Any) -> Any:
    """Seconds since the epoch (how the catalog and caches record when things happened) as
    UTC time: a number gives a ``Timestamp``, a Series of them datetimes; a missing value
    (None, NaN) stays missing (``NaT``).

    >>> utc_from_epoch(1767225600.5)
    Timestamp('2026-01-01 00:00:00.500000+0000', tz='UTC')
    """
    if isinstance(seconds, pd.Series) and seconds.dtype == object:
        seconds = seconds.astype("float64")  # None -> NaN -> NaT
    return pd.to_datetime(seconds, unit="s", utc=True)


def time_bound(value: Any, field: pa.Field, what: str, dataset_id: str) -> int | None:
    """``value`` as the integer time column ``field`` compares in; None stays None (open).

    Accepts a Timestamp, datetime, ISO string or integer nanoseconds for a timestamp column
    (a naive time is read in the column's zone; an aware one against a naive column is
    converted to UTC, the zone naive columns are stored in), and integers (or their digits)
    for an integer column. Anything else is an :class:`InvalidArgumentError` naming the
    bound, the column and what would do.
    """
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        raise InvalidArgumentError(f"{what}={value!r} is not a time")
    if pa.types.is_integer(field.type):
        if isinstance(value, (int, np.integer)) or (
                isinstance(value, str) and value.strip().lstrip("-").isdigit()):
            return int(value)  # 1.5 would be cut to 1: refuse it rather than guess
        raise InvalidArgumentError(
            f"{what}={value!r} is not an integer, but the time column {field.name!r} of "
            f"dataset {dataset_id!r} holds integers ({field.type})")
    if not pa.types.is_timestamp(field.type):
        raise InvalidArgumentError(
            f"the time column {field.name!r} of dataset {dataset_id!r} is {field.type}, "
            "neither timestamps nor integers, so it cannot bound a time range")
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidArgumentError(
            f"{what}={value!r} is not a time ({exc}); give a Timestamp, a datetime, an ISO "
            "string such as '2026-01-31' or '2026-01-31T12:00:00Z', or integer nanoseconds"
        ) from None
    if ts is pd.NaT:
        raise InvalidArgumentError(f"{what} is NaT; give a time, or None for an open bound")
    tz = field.type.tz
    if tz is not None and ts.tzinfo is None:
        ts = ts.tz_localize(tz)
    elif tz is None and ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return int(ts.as_unit("ns").value)


def date_range_bounds(date_range: Any, field: pa.Field, dataset_id: str
                      ) -> tuple[int | None, int | None]:
    """``date_range=(start, end)``, inclusive, either end None (open), as two bounds of
    :func:`time_bound`; refuses anything but a pair, and a start after the end."""
    if date_range is None:
        return None, None
    if isinstance(date_range, (str, bytes)) or not hasattr(date_range, "__len__") \
            or len(date_range) != 2:
        raise InvalidArgumentError(
            f"date_range={date_range!r} is not a pair; give date_range=(start, end), "
            "inclusive, with None for an open end")
    start, end = date_range
    lo = time_bound(start, field, "date_range start", dataset_id)
    hi = time_bound(end, field, "date_range end", dataset_id)
    if lo is not None and hi is not None and lo > hi:
        raise InvalidArgumentError(
            f"date_range={date_range!r} starts after it ends; give (start, end) with "
            "start <= end")
    return lo, hi
