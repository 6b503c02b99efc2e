"""JSON values of what datasets hold: missing → null, ints kept, times as ISO 8601.

One conversion for every front end that prints or sends JSON (the command line, the HTTP
service). numpy and pandas are imported only for a value of theirs, which means they are
loaded already: ``chunkframe --help`` does not pay for them.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import decimal
import math
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["jsonable", "iso_text"]


def jsonable(v: Any) -> Any:
    """A value ``json.dumps`` takes: NaN/NA/NaT/None → null, ints stay ints, timestamps →
    ISO 8601 (with their offset when they have a time zone), timedeltas → ISO 8601
    durations, numpy scalars → Python, bytes → base64, dataclasses → objects."""
    t = type(v)
    if t is str or t is int or t is bool or v is None:  # the common cases first
        return v
    if t is float:
        return None if math.isnan(v) or math.isinf(v) else v
    if t.__module__.startswith(("numpy", "pandas")):
        return _numpy_pandas(v)
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, set, frozenset)):
        return [jsonable(x) for x in v]
    if isinstance(v, float):
        return jsonable(float(v))
    if isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return v.isoformat()
    if isinstance(v, dt.timedelta):
        import pandas as pd

        return pd.Timedelta(v).isoformat()
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, bytes):
        return base64.b64encode(v).decode("ascii")
    if isinstance(v, PurePath):
        return str(v)
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return jsonable(dataclasses.asdict(v))
    return str(v)


def _numpy_pandas(v: Any) -> Any:
    """:func:`jsonable` of a numpy or pandas object (both are imported already then)."""
    import numpy as np
    import pandas as pd

    if v is pd.NaT or v is pd.NA:
        return None
    if isinstance(v, np.ndarray):
        return [jsonable(x) for x in v]
    if isinstance(v, np.datetime64):
        return jsonable(pd.Timestamp(v))
    if isinstance(v, np.timedelta64):
        return jsonable(pd.Timedelta(v))
    if isinstance(v, np.generic):
        return jsonable(v.item())
    if isinstance(v, (pd.Timestamp, pd.Timedelta)):
        return v.isoformat()
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    return str(v)


def iso_text(col: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """A timestamp, date or duration column as the strings :func:`jsonable` makes of its
    values, computed by Arrow for the whole column (nulls stay null; other types are
    returned as they are). What JSON exports write, so that they read as ``get --json``
    and the service do: ``2026-01-01T00:00:11+00:00``, its fraction only when it is not
    zero (6 digits, 9 for nanoseconds), the column's own UTC offset.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    t = col.type
    if pa.types.is_date(t):
        return col.cast(pa.string())
    if pa.types.is_duration(t):
        import pandas as pd

        return pa.array([None if v is None else pd.Timedelta(v).isoformat()
                         for v in col.to_pylist()], pa.string())
    if not pa.types.is_timestamp(t):
        return col
    per_second = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}[t.unit]
    whole = pc.floor_temporal(col, unit="second")  # floor, not toward zero: before 1970 too
    ns = pc.multiply(pc.subtract(col.cast(pa.int64()), whole.cast(pa.int64())),
                     10**9 // per_second)
    us = pc.divide(ns, 1000)  # integers: floor division of a value >= 0
    digits = pc.if_else(pc.equal(pc.multiply(us, 1000), ns),
                        pc.utf8_lpad(pc.cast(us, pa.string()), 6, "0"),
                        pc.utf8_lpad(pc.cast(ns, pa.string()), 9, "0"))
    fraction = pc.if_else(pc.equal(ns, 0), "", pc.binary_join_element_wise(".", digits, ""))
    seconds = whole.cast(pa.timestamp("s", t.tz))  # exact: whole seconds already
    parts = [pc.strftime(seconds, format="%Y-%m-%dT%H:%M:%S"), fraction]
    if t.tz is not None:  # the UTC offset, in seconds (+00:09:21 in 1900s Paris)
        offset = pc.divide(pc.subtract(pc.local_timestamp(col).cast(pa.int64()),
                                       col.cast(pa.int64())), per_second)
        size = pc.abs(offset)

        def two(v: Any) -> Any:
            return pc.utf8_lpad(pc.cast(v, pa.string()), 2, "0")

        secs = pc.subtract(size, pc.multiply(pc.divide(size, 60), 60))
        parts += [pc.if_else(pc.less(offset, 0), "-", "+"), two(pc.divide(size, 3600)), ":",
                  two(pc.divide(pc.subtract(size, pc.multiply(pc.divide(size, 3600), 3600)), 60)),
                  pc.if_else(pc.equal(secs, 0), "", pc.binary_join_element_wise(":", two(secs),
                                                                               ""))]
    return pc.binary_join_element_wise(*parts, "")
