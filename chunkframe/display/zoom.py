"""``ds.plot(interactive=True)``: a plot that zooms by re-reading only the chunks in view."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anywidget
import numpy as np
import traitlets

from ..core.units import plural
from .plot import PlotPlan, Series, band_downsample, plan

if TYPE_CHECKING:
    from ..core.protocols import DatasetLike

__all__ = ["ZoomPlot", "zoom_plot"]

_HERE = Path(__file__).resolve().parent
_MS = 1_000_000  # nanoseconds in a millisecond: the front end's time unit


def zoom_plot(ds: DatasetLike, column: str, *, device: Any = None, date_range: Any = None,
              max_points: int = 5_000) -> ZoomPlot:
    """A :class:`ZoomPlot` of ``column`` (what ``ds.plot(..., interactive=True)`` returns)."""
    return ZoomPlot(plan(ds, column, device=device, date_range=date_range,
                         max_points=max_points))


def _inside(bound: int | None, limit: int | None, pick: Any) -> int | None:
    """A view's bound kept inside the plan's ``date_range`` (``pick``: max for a start)."""
    if bound is None or limit is None:
        return limit if bound is None else bound
    return int(pick(bound, limit))


def _jsonable(values: np.ndarray) -> list[float | None]:
    return [None if not math.isfinite(v) else float(v) for v in values.tolist()]


class ZoomPlot(anywidget.AnyWidget):
    """A plot of one column that the wheel zooms, a drag pans and a double click resets.

    Drawn by the front end (SVG in the notebook's theme colours, as wide as the output
    area, the legend outside). Each zoom or pan sets ``view``; this side then reads only
    the chunks whose statistics overlap it (and hold the device), through the chunk
    cache, and sends each series again as a min–max band with its mean per pixel, or as
    its readings once few enough to draw one by one. ``reads`` records each read:
    ``(view, chunks read, rows, seconds)``.

    Examples
    --------
    >>> w = ds.plot("temperature", device="lathe", interactive=True)   # doctest: +SKIP
    >>> w.view = [w.full[0], w.full[0] + 3_600_000]    # one hour (ms), as the wheel does  # doctest: +SKIP
    """

    _esm = _HERE / "zoom.js"
    _css = _HERE / "zoom.css"

    title = traitlets.Unicode("").tag(sync=True)
    xlabel = traitlets.Unicode("").tag(sync=True)
    ylabel = traitlets.Unicode("").tag(sync=True)
    time_axis = traitlets.Bool(True).tag(sync=True)
    full = traitlets.List(traitlets.Float(), [0.0, 1.0]).tag(sync=True)
    view = traitlets.List(traitlets.Float(), [0.0, 1.0]).tag(sync=True)
    series = traitlets.List(traitlets.Dict()).tag(sync=True)
    status = traitlets.Unicode("").tag(sync=True)
    width = traitlets.Int(900).tag(sync=True)

    def __init__(self, p: PlotPlan, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = p
        self.reads: list[tuple[tuple[float, float], int, int, float]] = []
        self._home: tuple[list[dict[str, Any]], str] | None = None
        self.time_axis = p.zone is not None
        self.xlabel = (f"{p.time_column} (UTC)" if p.zone else p.axis_label)
        self.ylabel = p.value_label
        where = f" · {p.device}" if p.device is not None else ""
        self.title = f"{p.ds.id} · {p.column}{where}"
        self._show(None, None)
        self.observe(self._on_view, names="view")
        self.observe(self._on_view, names="width")

    def __repr__(self) -> str:  # not ipywidgets' trait dump: the series are long
        return f"<chunkframe ZoomPlot {self.title}: {self.status}>"

    def _scale(self) -> float:
        """Integers of the x axis per front-end unit (ns per ms for times)."""
        return float(_MS) if self.time_axis else 1.0

    def _on_view(self, change: dict[str, Any]) -> None:
        lo, hi = self.view
        if [lo, hi] == list(self.full) and self._home is not None:
            self.series, self.status = self._home
            return
        s = self._scale()
        self._show(int(math.floor(lo * s)), int(math.ceil(hi * s)))

    def _show(self, lo: int | None, hi: int | None) -> None:
        began = time.perf_counter()
        p = self.plan
        if p.time_column is None:  # serial numbers: the rows in view are a slice
            series, keep = self._rows(lo, hi)
        else:
            series, keep = p.load(_inside(lo, p.lo, max), _inside(hi, p.hi, min))
        if lo is None:
            p.check_device(series)
        buckets = max(self.width, 100)
        out, rows, points = [], 0, 0
        s = self._scale()
        for one in series:
            b = band_downsample(one.x, one.y, buckets,
                                None if lo is None else lo, None if hi is None else hi)
            out.append({"label": one.label, "raw": b.raw, "x": _jsonable(b.x / s),
                        "low": _jsonable(b.low), "high": _jsonable(b.high),
                        "mean": _jsonable(b.mean)})
            rows, points = rows + one.rows, points + len(b.x)
        took = time.perf_counter() - began
        total = p.ds.meta.chunks
        status = (f"{plural(rows, 'row')} · {keep:,} of {plural(total, 'chunk')} read · "
                  + (f"{plural(points, 'reading')}" if all(o["raw"] for o in out)
                     else f"{plural(points, 'bucket')}: min–max band and mean")
                  + f" · {took * 1e3:,.0f} ms")
        view = (float(lo / s) if lo is not None else None, float(hi / s) if hi is not None else None)
        if lo is None:
            xs = [float(v) / s for one in series if len(one.x) for v in (one.x[0], one.x[-1])]
            ends = [min(xs), max(xs)] if xs else [0.0, 1.0]
            if p.lo is not None:
                ends[0] = p.lo / s
            if p.hi is not None:
                ends[1] = p.hi / s
            if ends[1] <= ends[0]:
                ends[1] = ends[0] + 1.0
            self._home = (out, status)
            self.full = ends
            self.view = list(ends)
            view = (ends[0], ends[1])
        with self.hold_sync():
            self.series, self.status = out, status
        self.reads.append((view, keep, rows, took))  # type: ignore[arg-type]

    def _rows(self, lo: int | None, hi: int | None) -> tuple[list[Series], int]:
        """Without a time column the x axis is the serial number: read rows ``[lo, hi]``."""
        p, ds = self.plan, self.plan.ds
        n = len(ds)
        a, b = max(lo or 0, 0), min((hi if hi is not None else n - 1) + 1, n)
        frame = ds.slice(a, max(a, b), columns=[p.column])
        y = frame[p.column].to_numpy(dtype="float64", na_value=np.nan)
        starts = ds.chunks["start"].to_numpy(dtype=np.int64)
        first = int(np.searchsorted(starts, a, side="right")) - 1
        last = int(np.searchsorted(starts, max(b - 1, a), side="right")) - 1
        return [Series(p.column, frame.index.to_numpy(), y, len(y))], last - first + 1
