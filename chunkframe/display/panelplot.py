"""The browser's small plot: the current row's device over time, scaled by percentiles, as SVG."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ..core.devices import device_text
from ..core.formats import format_value
from ..core.times import times_ns
from ..core.units import plural
from .plot import minmax_downsample

if TYPE_CHECKING:
    from ..core.protocols import DatasetLike

__all__ = ["DeviceWindow", "device_window", "describe", "robust_limits", "sparkline", "POINTS"]

POINTS = 400
"""Readings of the device wanted around the current row (the rows read scale with the
number of devices the row's chunk holds)."""

MAX_SIDE = 50_000
"""Rows read on each side of the current row at most."""

_W, _H = 420, 150


@dataclass(frozen=True)
class DeviceWindow:
    """One device's readings of a column around row ``sn``: rows ``[lo, hi)`` read."""

    column: str
    device: str | None
    sn: int
    lo: int
    hi: int
    x: np.ndarray  # int64 nanoseconds (a time column), else serial numbers
    y: np.ndarray  # float64
    mark_x: int
    mark_y: float
    zone: str | None  # the time column's zone ("UTC"), "" for naive times, None: no times

    def covers(self, sn: int, device: str | None, column: str, rows: int) -> bool:
        """Whether this window can stand for row ``sn`` of ``device`` (it lies in the
        middle half of the rows read)."""
        quarter = (self.hi - self.lo) // 4
        return (column == self.column and device == self.device
                and (self.lo == 0 or sn >= self.lo + quarter)
                and (self.hi == rows or sn < self.hi - quarter))


def robust_limits(y: np.ndarray) -> tuple[float, float]:
    """The y range of a plot: the 1st to 99th percentiles and a margin, or the data's own
    range when nothing lies far outside, so one spike does not flatten the rest.

    >>> y = np.r_[np.linspace(60, 70, 500), 140.0]
    >>> lo, hi = robust_limits(y); bool(hi < 140), round(lo, 1)
    (True, 60.0)
    """
    y = y[np.isfinite(y)]
    if not len(y):
        return 0.0, 1.0
    p1, p99 = np.percentile(y, [1, 99])
    pad = (p99 - p1) * 0.15 or max(abs(p99) * 0.05, 1.0)
    lo, hi = max(float(y.min()), p1 - pad), min(float(y.max()), p99 + pad)
    if hi <= lo:
        lo, hi = lo - 1.0, hi + 1.0
    return lo, hi


def device_window(ds: DatasetLike, sn: int, column: str, row: pd.Series | None = None
                  ) -> DeviceWindow:
    """The readings of row ``sn``'s device around it, read through the chunk cache.

    Rows interleave devices, so the rows read on each side grow with the devices the
    row's chunk holds (``POINTS`` of the device wanted, at most ``MAX_SIDE`` rows a side).
    """
    meta, metas = ds.meta, ds.chunk_metas
    tcol, dcol = meta.time_column, meta.device_column
    starts = np.fromiter((c.start for c in metas), dtype=np.int64, count=len(metas))
    i = max(int(np.searchsorted(starts, sn, side="right")) - 1, 0)
    devices = max(len(metas[i].stats), 1) if metas else 1
    side = min(max(POINTS // 2 * (devices if dcol else 1), 200), MAX_SIDE)
    lo, hi = max(sn - side, 0), min(sn + side + 1, meta.rows)
    cols = [c for c in dict.fromkeys([tcol, dcol, column]) if c]
    frame = ds.slice(lo, hi, columns=cols)
    y = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    keep = np.ones(len(frame), dtype=bool)
    device = None
    if dcol is not None:
        labels = device_text(pa.Array.from_pandas(frame[dcol])).to_numpy(zero_copy_only=False)
        device = str(labels[sn - lo]) if labels[sn - lo] is not None else None
        keep = labels == device
    zone: str | None = None
    if tcol is not None:
        ns = times_ns(pa.Array.from_pandas(frame[tcol]))
        keep &= ns.is_valid().to_numpy(zero_copy_only=False)
        x = ns.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        dtype = frame[tcol].dtype
        zone = str(dtype.tz) if isinstance(dtype, pd.DatetimeTZDtype) else (
            "" if pd.api.types.is_datetime64_dtype(dtype) else None)
    else:
        x = np.arange(lo, hi, dtype=np.int64)
    mark_x, mark_y = int(x[sn - lo]), float(y[sn - lo])
    xs, ys = x[keep], y[keep]
    order = np.argsort(xs, kind="stable")
    return DeviceWindow(column, device, sn, lo, hi, xs[order], ys[order], mark_x, mark_y, zone)


def _time_label(ns: int, zone: str | None, span_ns: int) -> str:
    if zone is None:
        return f"{ns:,}"
    ts = pd.Timestamp(ns, unit="ns", tz="UTC")
    if zone:
        ts = ts.tz_convert(zone)
    return ts.strftime("%H:%M:%S" if span_ns < 86_400 * 10**9 else "%m-%d %H:%M")


def sparkline(w: DeviceWindow, width: int = _W, height: int = _H) -> str:
    """``w`` as a small SVG: the device's line on a time axis, the y range by
    :func:`robust_limits` (values outside drawn clipped at the edge with a marker), the
    current row marked; it scales to the width it is given; themed by CSS classes."""
    pad_l, pad_r, pad_b, pad_t = 52, 8, 30, 18
    inner_w, inner_h = width - pad_l - pad_r, height - pad_b - pad_t
    what = w.column + (f" · {w.device}" if w.device is not None else "")
    label = f"{what} around sn {w.sn:,}"
    parts = [f"<svg class='cf-spark' viewBox='0 0 {width} {height}' "
             "preserveAspectRatio='xMidYMid meet' xmlns='http://www.w3.org/2000/svg' "
             f"role='img' aria-label='{html.escape(label)}'>",
             f"<rect class='cf-frame' x='{pad_l}' y='{pad_t}' width='{inner_w}' "
             f"height='{inner_h}'/>",
             f"<text x='{pad_l}' y='{pad_t - 5}'>{html.escape(label)}</text>"]
    finite = np.isfinite(w.y)
    if not finite.any():
        parts.append(f"<text x='{pad_l + 6}' y='{pad_t + inner_h / 2}'>no values</text></svg>")
        return "".join(parts)
    x0, x1 = int(w.x.min()), int(w.x.max())
    y0, y1 = robust_limits(w.y)
    xs, ys = minmax_downsample(w.x, w.y, inner_w // 2)  # a minimum and a maximum: 2 px

    def px(v: float) -> float:
        return pad_l + (v - x0) * inner_w / (x1 - x0) if x1 > x0 else pad_l + inner_w / 2

    def py(v: float) -> float:
        v = min(max(v, y0), y1)
        return pad_t + inner_h - (v - y0) * inner_h / (y1 - y0)

    points = " ".join(f"{px(float(a)):.0f},{py(float(b)):.0f}" for a, b in zip(xs, ys, strict=True))
    parts.append(f"<polyline class='cf-line' stroke-width='1' points='{points}'/>")
    out = finite.copy()
    out[finite] = (w.y[finite] > y1) | (w.y[finite] < y0)
    for a, b in list(zip(w.x[out], w.y[out], strict=True))[:50]:
        cx, top = px(float(a)), b > y1
        cy = pad_t if top else pad_t + inner_h
        tip = cy - 5 if top else cy + 5
        parts.append(f"<path class='cf-spike' d='M{cx - 4:.1f},{cy:.1f} L{cx + 4:.1f},{cy:.1f} "
                     f"L{cx:.1f},{tip:.1f} Z'><title>{html.escape(format_value(float(b)))} "
                     "(off the scale)</title></path>")
    if x0 <= w.mark_x <= x1:
        mx = px(w.mark_x)
        parts.append(f"<line class='cf-mark' x1='{mx:.1f}' x2='{mx:.1f}' y1='{pad_t}' "
                     f"y2='{pad_t + inner_h}' stroke-width='1'/>")
        if np.isfinite(w.mark_y):
            parts.append(f"<circle class='cf-mark-dot' cx='{mx:.1f}' cy='{py(w.mark_y):.1f}' "
                         f"r='3'><title>sn {w.sn:,}: {html.escape(format_value(w.mark_y))}"
                         "</title></circle>")
    span = x1 - x0
    axis = "sn" if w.zone is None else f"time ({w.zone or 'naive'})"
    parts += [f"<text x='{pad_l - 4}' y='{pad_t + 9}' text-anchor='end'>{y1:.4g}</text>",
              f"<text x='{pad_l - 4}' y='{pad_t + inner_h}' text-anchor='end'>{y0:.4g}</text>",
              f"<text x='{pad_l}' y='{pad_t + inner_h + 12}'>{_time_label(x0, w.zone, span)}</text>",
              f"<text x='{pad_l + inner_w}' y='{pad_t + inner_h + 12}' text-anchor='end'>"
              f"{_time_label(x1, w.zone, span)}</text>",
              f"<text x='{pad_l + inner_w / 2}' y='{height - 3}' text-anchor='middle'>{axis} · "
              f"{plural(int(finite.sum()), 'reading')}"
              + (f", {plural(int(out.sum()), 'value')} off the scale ▲▼" if out.any() else "")
              + "</text></svg>"]
    return "".join(parts)


def describe(w: DeviceWindow) -> dict[str, Any]:
    """What the plot shows, for tests and the text view."""
    finite = np.isfinite(w.y)
    lo, hi = robust_limits(w.y)
    return {"device": w.device, "readings": int(finite.sum()), "ylim": (lo, hi),
            "clipped": int(((w.y > hi) | (w.y < lo))[finite].sum())}
