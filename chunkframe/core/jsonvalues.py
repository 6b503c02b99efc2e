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
from typing import Any

__all__ = ["jsonable"]


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
