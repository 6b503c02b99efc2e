"""What the command line prints: JSON values, text tables, and errors as a line or a JSON document.

Only the standard library is imported here: pandas and numpy are used when a value or a
frame of theirs is printed (they are loaded then anyway), so ``--help`` and ``server status``
do not pay for them.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..core.jsonvalues import jsonable

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PROG", "Out", "jsonable", "records", "table"]

PROG = "chunkframe"


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
