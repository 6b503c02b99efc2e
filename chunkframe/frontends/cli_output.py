"""What the command line prints: JSON values, text tables, and errors as a line or a JSON document.

Only the standard library is imported here: pandas and numpy are used when a value or a
frame of theirs is printed (they are loaded then anyway), so ``--help`` and ``server status``
do not pay for them.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PROG", "Out", "jsonable", "records", "table"]

PROG = "chunkframe"


# -- JSON values ------------------------------------------------------------------------------

def jsonable(v: Any) -> Any:
    """A value json.dumps accepts: NaN/NaT/NA → null, times → ISO 8601, numpy → Python."""
    if v is None:
        return None
    if type(v).__module__.startswith(("numpy", "pandas")):
        return _numpy_pandas(v)
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, set)):
        return [jsonable(x) for x in v]
    if isinstance(v, float):
        return None if math.isnan(v) or math.isinf(v) else v
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
        return v.decode("utf-8", "backslashreplace")
    if isinstance(v, Path):
        return str(v)
    return str(v)


def _numpy_pandas(v: Any) -> Any:
    """:func:`jsonable` of a numpy or pandas object (so both are imported already)."""
    import numpy as np
    import pandas as pd

    if v is pd.NaT or v is pd.NA:
        return None
    if isinstance(v, np.ndarray):
        return [jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return jsonable(v.item())
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    if isinstance(v, pd.Timedelta):
        return v.isoformat()
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    return str(v)


def records(df: pd.DataFrame, index: bool = False) -> list[dict[str, Any]]:
    """The rows of ``df`` as JSON-ready dicts (with the index as columns if ``index``)."""
    if index:
        df = df.reset_index()
    cols = [str(c) for c in df.columns]
    return [dict(zip(cols, map(jsonable, row), strict=True))
            for row in df.itertuples(index=False, name=None)]


# -- text tables ------------------------------------------------------------------------------

def table(df: pd.DataFrame, index: bool = False, limit: int = 64) -> str:
    """A compact text table; text columns are left-aligned, numbers right-aligned."""
    import pandas as pd

    width = shutil.get_terminal_size((120, 24)).columns
    df = df.copy()
    formatters = {}
    names = {}
    for col in df.columns:
        if df[col].dtype == object or pd.api.types.is_string_dtype(df[col].dtype):
            cells = [_cell(v, limit) for v in df[col]]
            w = max([len(str(col)), *map(len, cells)])
            names[col] = str(col).ljust(w)
            formatters[names[col]] = _left(w, limit)
    if names:
        df.columns = [names.get(c, c) for c in df.columns]
    with pd.option_context("display.width", width, "display.max_columns", None,
                           "display.max_colwidth", limit, "display.max_rows", None):
        return df.to_string(index=index, formatters=formatters or None)


def _left(width: int, limit: int) -> Callable[[Any], str]:
    return lambda v: f"{_cell(v, limit):<{width}}"


def _cell(v: Any, limit: int) -> str:
    text = "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
    return text if len(text) <= limit else text[:limit - 3] + "..."


# -- the output stream ------------------------------------------------------------------------

class Out:
    """Human text, or (with ``--json``) exactly one JSON document, on stdout.

    Errors go to stderr as one line ``chunkframe: error: ...``; with ``--json`` they are the
    JSON document instead: ``{"error": "<ErrorClassName>", "message": "..."}`` on stdout.
    """

    def __init__(self, as_json: bool, stream: Any = None):
        self.json = as_json
        self.stream = stream

    def _write(self, text: str) -> None:
        print(text, file=self.stream or sys.stdout)

    def line(self, text: str = "") -> None:
        if not self.json:
            self._write(text)

    def doc(self, data: Any) -> None:
        if self.json:
            self._write(json.dumps(jsonable(data), allow_nan=False, ensure_ascii=False))

    def error(self, name: str, message: str) -> None:
        """Report a failure: ``name`` is the error's class name, ``message`` one sentence or more."""
        text = " ".join(str(message).split()) or name
        if self.json:
            self._write(json.dumps({"error": name, "message": text}, ensure_ascii=False))
        else:
            print(f"{PROG}: error: {text}", file=sys.stderr)
