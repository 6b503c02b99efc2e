"""The browser's row window: an anywidget table of ~20 rows that scrolls a dataset of any size."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anywidget
import numpy as np
import pandas as pd
import traitlets

from ..core.formats import dtype_name, format_column

if TYPE_CHECKING:
    from ..core.protocols import DatasetLike

__all__ = ["RowWindow", "VIEW_ROWS", "MAX_COLUMNS"]

VIEW_ROWS = 20
"""Rows in view at once."""

MAX_COLUMNS = 24
"""Columns shown in the window at most (the others: ``ds.get(sn)``)."""

_HERE = Path(__file__).resolve().parent


class RowWindow(anywidget.AnyWidget):
    """``view`` rows of ``ds`` from row ``top``, with row ``sn`` highlighted.

    The front end scrolls (wheel, keys, the bar) and sets ``top`` and ``sn``; this side
    answers with ``buffer``: the rows ``[buffer_start, buffer_start + len(buffer))``, about
    one window on each side of the view, formatted (:mod:`.format`), read with one
    ``ds.slice`` of the columns shown through the chunk cache (a read that fails leaves
    the rows pending and says why in ``error``). A step inside the buffer
    is drawn by the front end at once; every step re-centres the buffer, so a step's cost
    does not depend on the dataset's size. ``read_seconds`` is the last refill's time.

    Examples
    --------
    >>> w = RowWindow(cf.open("sensors"))             # doctest: +SKIP
    >>> w.sn = 12_345                                  # the front end's move, from code  # doctest: +SKIP
    """

    _esm = _HERE / "table.js"
    _css = _HERE / "table.css"

    total = traitlets.Int(0).tag(sync=True)
    view = traitlets.Int(VIEW_ROWS).tag(sync=True)
    top = traitlets.Int(0).tag(sync=True)
    sn = traitlets.Int(0).tag(sync=True)
    columns = traitlets.List(traitlets.Dict()).tag(sync=True)
    buffer_start = traitlets.Int(0).tag(sync=True)
    buffer = traitlets.List(traitlets.List()).tag(sync=True)
    boundaries = traitlets.List(traitlets.Int()).tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)

    def __init__(self, ds: DatasetLike, sn: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ds = ds
        self.frame = pd.DataFrame()  # the rows of the buffer, unformatted
        self.read_seconds = 0.0
        self._starts = np.zeros(0, dtype=np.int64)
        self.reload()
        self.move(sn)
        self.fill()
        self.observe(self._on_top, names="top")
        self.observe(self._on_sn, names="sn")

    def __repr__(self) -> str:  # not ipywidgets' trait dump: the buffer is long
        return (f"<chunkframe RowWindow of {self.ds.id!r}: rows {self.top:,}–"
                f"{self.top + self.view - 1:,} of {self.total:,}, row {self.sn:,}>")

    def reload(self) -> None:
        """Read the dataset's length, chunks and dtypes again (after an append)."""
        ds = self.ds
        dtypes = ds.slice(0, 0).dtypes  # the pandas dtypes, from the schema: no chunk read
        self.shown = list(dtypes.index[:MAX_COLUMNS])
        self._starts = np.array([c.start for c in ds.chunk_metas], dtype=np.int64)
        with self.hold_sync():
            self.total = len(ds)
            self.columns = [{"name": str(c), "dtype": dtype_name(dtypes[c])} for c in self.shown]
            self.frame = pd.DataFrame()
            self.buffer, self.buffer_start = [], 0
        self.fill(force=True)

    def move(self, sn: int, top: int | None = None) -> None:
        """Make row ``sn`` current (clamped), the view keeping it in sight, as a key would."""
        n = self.total
        sn = min(max(int(sn), 0), max(n - 1, 0))
        view = min(self.view, max(n, 1))
        first = self.top if top is None else int(top)
        if sn < first or sn >= first + view:
            first = sn - view // 2
        first = min(max(first, 0), max(n - view, 0))
        with self.hold_sync():
            self.top = first
            self.sn = sn

    def page(self, pages: int) -> None:
        """Move the view and the current row by ``pages`` windows (negative: back)."""
        step = self.view * int(pages)
        self.move(self.sn + step, self.top + step)

    def _on_top(self, change: dict[str, Any]) -> None:
        self.fill()

    def _on_sn(self, change: dict[str, Any]) -> None:
        if not self.top <= change["new"] < self.top + self.view:
            self.move(change["new"])  # set from code, outside the view: bring it in
        self.fill()

    def fill(self, force: bool = False) -> None:
        """Re-centre the buffer on the view unless it still holds the view and half a
        window on each side."""
        n, view, top = self.total, self.view, self.top
        start, stop = self.buffer_start, self.buffer_start + len(self.buffer)
        margin = view // 2
        if not force and start <= max(top - margin, 0) and stop >= min(top + view + margin, n):
            return
        began = time.perf_counter()
        lo, hi = max(top - view, 0), min(top + 2 * view, n)
        try:
            frame = self.ds.slice(lo, hi, columns=self.shown) if hi > lo else pd.DataFrame()
        except Exception as exc:  # noqa: BLE001 - e.g. a corrupt chunk: shown, not raised
            self.frame = pd.DataFrame()
            with self.hold_sync():
                self.buffer, self.buffer_start = [], lo
                self.error = f"rows {lo:,}–{hi - 1:,}: {type(exc).__name__}: {exc}"
            return
        text = [format_column(frame[c]) for c in frame.columns] if len(frame) else []
        rows = [list(r) for r in zip(*text, strict=True)] if text else []
        i, j = np.searchsorted(self._starts, [lo, hi])
        self.frame = frame
        with self.hold_sync():
            self.buffer_start = lo
            self.buffer = rows
            self.boundaries = [int(s) for s in self._starts[i:j]]
            self.error = ""
        self.read_seconds = time.perf_counter() - began

    def rows_in_view(self) -> pd.DataFrame:
        """The rows in view, unformatted (from the buffer)."""
        return self.frame.loc[self.top:self.top + self.view - 1] if len(self.frame) else self.frame
