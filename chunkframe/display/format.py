"""One display style for values: pandas precision with separators, times to the second, pandas dtypes."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["format_value", "format_column", "format_time", "dtype_name", "MISSING"]

MISSING = "<NA>"
"""How a missing value shows (pandas' text for ``pd.NA``)."""


def format_time(value: Any) -> str:
    """A timestamp to the second, without its zone (the column's dtype names the zone).

    >>> format_time(pd.Timestamp("2026-01-05 13:20:07.123456", tz="UTC"))
    '2026-01-05 13:20:07'
    >>> format_time(pd.NaT)
    '<NA>'
    """
    if value is None or value is pd.NaT:
        return MISSING
    ts = pd.Timestamp(value)
    if pd.isna(ts):
        return MISSING
    return ts.strftime("%Y-%m-%d %H:%M:%S")


def format_value(value: Any, precision: int | None = None) -> str:
    """One value as chunkframe's reprs show it: floats at pandas' ``display.precision``
    (decimals) with thousands separators, integers with separators, timestamps to the
    second, missing values as ``<NA>``.

    >>> format_value(65.07802633094698), format_value(1234567), format_value(None)
    ('65.078026', '1,234,567', '<NA>')
    >>> format_value(12345.5, precision=1), format_value(True), format_value("a b")
    ('12,345.5', 'True', 'a b')
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return MISSING
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        v = float(value)
        if math.isnan(v):
            return MISSING
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        digits = pd.get_option("display.precision") if precision is None else precision
        if v != 0 and (abs(v) >= 1e15 or abs(v) < 10.0 ** -digits):
            return f"{v:.{digits}e}"
        return f"{v:,.{digits}f}"
    if isinstance(value, pd.Timestamp | np.datetime64):
        return format_time(value)
    if isinstance(value, pd.Timedelta | np.timedelta64):
        td = pd.Timedelta(value)
        return MISSING if pd.isna(td) else str(td.floor("s"))
    return str(value)


def format_column(values: pd.Series) -> list[str]:
    """Every value of ``values`` formatted with :func:`format_value` (times to the second)."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        ok = values.notna().to_numpy()
        text = values.dt.strftime("%Y-%m-%d %H:%M:%S").to_numpy(dtype=object, na_value=MISSING)
        return [str(t) if k else MISSING for t, k in zip(text, ok, strict=True)]
    return [format_value(v) for v in values.astype(object).tolist()]


def dtype_name(dtype: Any) -> str:
    """The pandas dtype as pandas prints it (``float64``, ``Int64``, ``str``,
    ``datetime64[us, UTC]``), never the Arrow type.

    >>> dtype_name(pd.Series([1.0]).dtype), dtype_name(pd.DatetimeTZDtype("us", "UTC"))
    ('float64', 'datetime64[us, UTC]')
    """
    return str(dtype)
