"""Plots of a dataset's series over time: only the chunks a range needs, a min–max band and a mean."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..core.devices import device_key, device_text
from ..core.errors import InvalidArgumentError
from ..core.integers import as_integer
from ..core.times import date_range_bounds, times_ns
from ..core.units import plural

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..core.model import ChunkMeta
    from ..core.protocols import DatasetLike

__all__ = ["plot", "Bands", "band_downsample", "minmax_downsample", "chunks_overlapping",
           "device_span", "series_unit", "PlotPlan", "Series", "plan", "MAX_LINES"]

MAX_LINES = 12
"""Devices drawn as separate lines when no ``device`` is given; more must be chosen."""


def chunks_overlapping(chunks: Sequence[ChunkMeta], lo: int | None, hi: int | None,
                       device: str | None = None) -> list[int]:
    """Positions of the chunks whose time statistics may hold rows in ``[lo, hi]``.

    ``device`` (as text) keeps only the chunks holding that device. A chunk without
    statistics (no time column) may hold anything, so it is kept.

    Examples
    --------
    >>> from chunkframe.core.model import ChunkMeta
    >>> metas = [ChunkMeta(0, 0, 2, "k0", "c", 1, {"a": [0, 9]}),
    ...          ChunkMeta(1, 2, 2, "k1", "c", 1, {"a": [10, 19], "b": [12, 15]})]
    >>> chunks_overlapping(metas, 11, None), chunks_overlapping(metas, None, None, "b")
    ([1], [1])
    """
    keep = []
    for i, cm in enumerate(chunks):
        if not cm.stats:
            keep.append(i)
            continue
        spans = [cm.stats[device]] if device is not None and device in cm.stats else (
            [] if device is not None else list(cm.stats.values()))
        if any((lo is None or t_max >= lo) and (hi is None or t_min <= hi)
               for t_min, t_max in spans):
            keep.append(i)
    return keep


def device_span(chunks: Sequence[ChunkMeta], device: str) -> tuple[int | None, int | None]:
    """The first and last time of ``device`` (as text) over ``chunks``' statistics, in
    integer nanoseconds: every row of it with a time lies in it. ``(None, None)`` when a
    chunk has no statistics (it may hold the device at times none records) or none
    holds the device.

    Examples
    --------
    >>> from chunkframe.core.model import ChunkMeta
    >>> metas = [ChunkMeta(0, 0, 2, "k0", "c", 1, {"a": [0, 9]}),
    ...          ChunkMeta(1, 2, 2, "k1", "c", 1, {"a": [10, 19], "b": [12, 15]})]
    >>> device_span(metas, "a"), device_span(metas, "c")
    ((0, 19), (None, None))
    """
    spans = [cm.stats.get(device) for cm in chunks]
    if not all(cm.stats for cm in chunks):
        return None, None
    held = [s for s in spans if s is not None]
    if not held:
        return None, None
    return min(s[0] for s in held), max(s[1] for s in held)


def minmax_downsample(x: np.ndarray, y: np.ndarray, max_points: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` of the points ``(x, y)``: the minimum and the maximum of each of
    ``max_points // 2`` buckets of consecutive points, in their order, so spikes survive.

    NaN values are dropped first; fewer points than ``max_points`` come back unchanged.

    Examples
    --------
    >>> y = np.zeros(1_000); y[500] = 9.0
    >>> xs, ys = minmax_downsample(np.arange(1_000), y, 10)
    >>> len(xs) <= 10, ys.max()
    (True, 9.0)
    """
    if max_points < 2:
        raise InvalidArgumentError(f"max_points={max_points!r} is too small; give at least 2")
    keep = ~np.isnan(y)
    x, y = x[keep], y[keep]
    n = len(y)
    if n <= max_points:
        return x, y
    buckets = max_points // 2
    size = -(-n // buckets)
    padded = np.full(buckets * size, np.nan)
    padded[:n] = y
    grid = padded.reshape(buckets, size)
    base = np.arange(buckets) * size
    lows = base + np.argmin(np.where(np.isnan(grid), np.inf, grid), axis=1)
    highs = base + np.argmax(np.where(np.isnan(grid), -np.inf, grid), axis=1)
    picks = np.unique(np.concatenate([lows, highs]))  # sorted: the points keep their order
    picks = picks[picks < n]
    return x[picks], y[picks]


@dataclass(frozen=True)
class Bands:
    """A series reduced to buckets of equal time: each bucket's centre ``x``, its ``low``
    and ``high`` (so spikes survive) and its ``mean``; ``raw`` when the points are few
    enough to draw as they are (then the three are the points' values)."""

    x: np.ndarray
    low: np.ndarray
    high: np.ndarray
    mean: np.ndarray
    raw: bool


def band_downsample(x: np.ndarray, y: np.ndarray, buckets: int, lo: float | None = None,
                    hi: float | None = None) -> Bands:
    """The points ``(x, y)`` (``x`` sorted, numbers) in ``buckets`` buckets of equal width of
    ``[lo, hi]`` (default: the data's span): min, max and mean of each bucket holding
    points. At most ``2 * buckets`` points come back as they are. NaN values are dropped.

    Examples
    --------
    >>> y = np.sin(np.arange(10_000) / 500); y[5_000] = 9.0
    >>> b = band_downsample(np.arange(10_000), y, 100)
    >>> len(b.x), b.high.max(), b.raw, bool(abs(b.mean).max() < 1.1)
    (100, 9.0, False, True)
    """
    keep = ~np.isnan(y)
    x, y = x[keep], y[keep]
    if len(y) <= 2 * buckets:
        return Bands(x, y, y, y, True)
    x0 = float(x[0] if lo is None else lo)
    x1 = float(x[-1] if hi is None else hi)
    span = max(x1 - x0, 1e-300)
    idx = np.clip(((x - x0).astype("float64") * (buckets / span)).astype(np.int64), 0,
                  buckets - 1)
    counts = np.bincount(idx, minlength=buckets)
    full = np.flatnonzero(counts)
    starts = np.searchsorted(idx, full)  # x is sorted, so each bucket is one run
    low = np.minimum.reduceat(y, starts)
    high = np.maximum.reduceat(y, starts)
    mean = np.add.reduceat(y, starts) / counts[full]
    centre = x0 + (full + 0.5) * (span / buckets)
    return Bands(centre, low, high, mean, False)


@dataclass(frozen=True)
class Series:
    """One line of a plot: its points in order, and the rows they came from."""

    label: str
    x: np.ndarray  # int64 nanoseconds of a time column, else serial numbers; sorted
    y: np.ndarray
    rows: int


@dataclass(frozen=True)
class PlotPlan:
    """A checked plot request: what to read (``load``) and how to label it."""

    ds: DatasetLike
    column: str
    time_column: str | None
    device_column: str | None
    device: str | None  # the device wanted, as text
    lo: int | None  # the date range, as the time column's integers
    hi: int | None
    unit: str | None
    zone: str | None  # the time column's zone; "" naive; None: not timestamps
    max_points: int

    def load(self, lo: int | None = None, hi: int | None = None) -> tuple[list[Series], int]:
        """The series in ``[lo, hi]`` (default: the plan's range) and the number of chunks
        read. With a time column: one ``ds.to_arrow`` of the time and value columns,
        ``date_range`` and ``device`` skipping the chunks whose statistics rule them out
        (``cache_info()["skipped"]``); a device's rows are kept in Arrow as the chunks are
        fetched, in the fetch pool. Without a range, a device's is the span of its
        statistics (:func:`device_span`): only rows with a time are drawn, so the chunks
        not holding it are skipped too. Without one: the rows of every chunk holding
        the device, through the chunk cache."""
        lo = self.lo if lo is None else lo
        hi = self.hi if hi is None else hi
        ds, tcol, dcol = self.ds, self.time_column, self.device_column
        if tcol is None:
            metas = ds.chunk_metas
            keep = chunks_overlapping(metas, None, None, self.device)
            cols = [c for c in dict.fromkeys([dcol, self.column]) if c]
            frame = _read(ds, metas, keep, cols)
            return _series(ds, frame, self.column, None, dcol, None, None, self.device), len(keep)
        cols = [tcol, self.column] + ([dcol] if dcol is not None and self.device is None else [])
        device = self.device if dcol is not None else None
        if device is not None and lo is None and hi is None:
            lo, hi = device_span(ds.chunk_metas, device)
        chunks, before = ds.meta.chunks, ds.cache_info()["skipped"]
        table = ds.to_arrow(list(dict.fromkeys(cols)), date_range=(
            None if lo is None and hi is None else (lo, hi)), device=device)
        read = chunks - (ds.cache_info()["skipped"] - before)  # from the cache or the store
        return _arrow_series(ds, table, self.column, tcol,
                             dcol if self.device is None else None, self.device), read

    def check_device(self, series: list[Series]) -> None:
        """Raise ``KeyError`` when the device asked drew nothing because no chunk holds it
        (checked after the read: the chunks' statistics are not built for nothing)."""
        if self.device is None or any(s.rows for s in series):
            return
        metas = self.ds.chunk_metas
        if not any(self.device in cm.stats for cm in metas):
            known = sorted({d for cm in metas for d in cm.stats})
            raise KeyError(f"dataset {self.ds.id!r} has no device {self.device!r}; devices "
                           f"are {known[:20]!r}{' ...' if len(known) > 20 else ''}")

    @property
    def axis_label(self) -> str:
        """The x axis's label: the time column and its zone (``time (UTC)``), or ``sn``."""
        if self.time_column is None:
            return "sn"
        return self.time_column + (f" ({self.zone})" if self.zone else "")

    @property
    def value_label(self) -> str:
        return self.column + (f" [{self.unit}]" if self.unit else "")


def series_unit(ds: DatasetLike, column: str) -> str | None:
    """The unit of ``column`` from the dataset's ``units`` tag (a mapping of column to
    unit, e.g. ``ds.tag("units", {"temperature": "°C"}, type="DATA")``), or None."""
    try:
        units = ds.context.get("units")
    except Exception:  # noqa: BLE001 - no unit is no reason to fail a plot
        return None
    unit = units.get(column) if isinstance(units, dict) else None
    return str(unit) if unit not in (None, "") else None


def plan(ds: DatasetLike, column: str, *, device: Any = None, date_range: Any = None,
         max_points: int = 5_000) -> PlotPlan:
    """Check a plot request of ``ds`` (the errors :func:`plot` raises) and plan it."""
    if as_integer(max_points) is None or max_points < 2:
        raise InvalidArgumentError(
            f"max_points={max_points!r} for the plot of dataset {ds.id!r} is not an integer "
            ">= 2; give the number of points to draw, e.g. 5_000")
    meta, schema = ds.meta, ds.schema
    if column not in schema.names:
        raise KeyError(f"dataset {ds.id!r} has no column {column!r}; columns are "
                       f"{schema.names!r}")
    kind = schema.field(column).type
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
            or pa.types.is_decimal(kind)):
        raise InvalidArgumentError(
            f"column {column!r} of dataset {ds.id!r} is {kind}, not numbers, so it cannot be "
            "plotted; pick a numeric column")
    tcol, dcol = meta.time_column, meta.device_column
    if tcol is None and date_range is not None:
        raise InvalidArgumentError(
            f"dataset {ds.id!r} has no time column, so date_range cannot select its rows; "
            "plot it without date_range (against the serial number), or ingest it again "
            "with time_column=")
    if device is not None and dcol is None:
        raise InvalidArgumentError(
            f"dataset {ds.id!r} has no device column, so device={device!r} selects nothing; "
            "plot it without device=")
    lo, hi = (date_range_bounds(date_range, schema.field(tcol), ds.id) if tcol is not None
              else (None, None))
    wanted = None if device is None else device_key(device, schema.field(dcol).type)
    zone = None
    if tcol is not None and pa.types.is_timestamp(schema.field(tcol).type):
        zone = str(schema.field(tcol).type.tz or "")
    return PlotPlan(ds, column, tcol, dcol, wanted, lo, hi, series_unit(ds, column), zone,
                    int(max_points))


def plot(ds: DatasetLike, column: str, *, device: Any = None, date_range: Any = None,
         max_points: int = 5_000) -> Figure:
    """A matplotlib figure of ``column`` over time (what ``ds.plot`` returns).

    Only the chunks whose time statistics overlap ``date_range`` (and hold ``device``) are
    read, through the chunk cache (``ds.slice``). A series with more points than its share
    of ``max_points`` is drawn as a band from the minimum to the maximum of each bucket of
    equal time (spikes survive) with the buckets' mean as a line. Without a device, each
    device is its own colour (up to :data:`MAX_LINES`), the legend outside the axes. The
    unit comes from the ``units`` tag, the time axis says its zone (UTC); the background
    is transparent and the text a neutral grey, so the figure reads on a light and a dark
    notebook; 960 px wide (10 in at 96 dpi), scaled down to a narrower output area.
    Without a time column, the x axis is the serial number.
    """
    p = plan(ds, column, device=device, date_range=date_range, max_points=max_points)
    series, _ = p.load()
    p.check_device(series)
    return _draw(p, series, date_range)


def _read(ds: DatasetLike, metas: Sequence[ChunkMeta], keep: list[int], columns: list[str]
          ) -> pd.DataFrame:
    """The rows of chunks ``keep``: one ``ds.slice`` per run of consecutive chunks."""
    runs: list[tuple[int, int]] = []
    for i in keep:
        start, stop = metas[i].start, metas[i].start + metas[i].rows
        if runs and runs[-1][1] == start:
            runs[-1] = (runs[-1][0], stop)
        else:
            runs.append((start, stop))
    parts = [ds.slice(start, stop, columns=columns) for start, stop in runs]
    if not parts:
        return ds.slice(0, 0, columns=columns)
    return parts[0] if len(parts) == 1 else pd.concat(parts)


def _series(ds: DatasetLike, frame: pd.DataFrame, column: str, tcol: str | None, dcol: str | None,
            lo: int | None, hi: int | None, device: str | None) -> list[Series]:
    """The rows in range, one (x, y) per device, in time order."""
    y = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    if tcol is None:
        return [Series(column, frame.index.to_numpy(), y, len(y))]
    ns = times_ns(pa.Array.from_pandas(frame[tcol]))
    mask = ns.is_valid().to_numpy(zero_copy_only=False)
    t = ns.fill_null(0).to_numpy(zero_copy_only=False)
    if lo is not None:
        mask &= t >= lo
    if hi is not None:
        mask &= t <= hi
    labels = (device_text(pa.Array.from_pandas(frame[dcol])).to_numpy(zero_copy_only=False)
              if dcol is not None else None)
    if labels is not None:
        mask &= labels == device if device is not None else pd.notna(labels)
    groups = [device or column] if labels is None or device is not None else sorted(
        set(labels[mask]))
    if len(groups) > MAX_LINES:
        raise InvalidArgumentError(
            f"dataset {ds.id!r} has {len(groups)} devices in that range, too many lines for "
            f"one plot (at most {MAX_LINES}); pick one with device=, e.g. "
            f"device={groups[0]!r}")
    out = []
    for label in groups:
        sel = mask if labels is None or device is not None else mask & (labels == label)
        order = np.argsort(t[sel], kind="stable")
        out.append(Series(str(label), t[sel][order], y[sel][order], int(sel.sum())))
    return out


def _arrow_series(ds: DatasetLike, table: pa.Table, column: str, tcol: str,
                  dcol: str | None, device: str | None) -> list[Series]:
    """The rows of ``table`` (already in range), one (x, y) per device of ``dcol`` (None:
    one series), in time order; devices are told apart by dictionary codes, in Arrow."""
    ns = times_ns(table[tcol])
    ok = ns.is_valid().to_numpy(zero_copy_only=False)
    t = ns.fill_null(0).to_numpy(zero_copy_only=False)
    y = table[column].cast(pa.float64()).to_numpy()
    y = np.asarray(y, dtype="float64")
    if dcol is None:
        groups: list[tuple[str, np.ndarray]] = [(device or column, ok)]
    else:
        codes = pc.dictionary_encode(table[dcol]).combine_chunks()
        names = device_text(codes.dictionary).to_numpy(zero_copy_only=False)
        index = codes.indices.fill_null(-1).to_numpy(zero_copy_only=False)
        present = [int(i) for i in np.unique(index[ok]) if i >= 0]
        order = sorted(present, key=lambda i: str(names[i]))
        if len(order) > MAX_LINES:
            raise InvalidArgumentError(
                f"dataset {ds.id!r} has {len(order)} devices in that range, too many lines "
                f"for one plot (at most {MAX_LINES}); pick one with device=, e.g. "
                f"device={str(names[order[0]])!r}")
        groups = [(str(names[i]), ok & (index == i)) for i in order]
    out = []
    for label, sel in groups:
        ts, ys = t[sel], y[sel]
        if len(ts) > 1 and np.any(ts[1:] < ts[:-1]):
            order_ = np.argsort(ts, kind="stable")
            ts, ys = ts[order_], ys[order_]
        out.append(Series(label, ts, ys, len(ts)))
    return out


def wall_times(ns: np.ndarray, zone: str | None) -> np.ndarray:
    """Integer times → what matplotlib draws: datetimes (wall time of the column's zone)
    for timestamps, the integers themselves otherwise."""
    if zone is None:
        return ns
    times = np.asarray(ns).astype("int64").astype("datetime64[ns]")
    if not zone or zone == "UTC":
        return times
    return pd.DatetimeIndex(times, tz="UTC").tz_convert(zone).tz_localize(None).to_numpy()


_AXIS_PIXELS = 900  # buckets per line at most: about the axes' width in pixels

# Neutral greys on a transparent figure: readable on JupyterLab's light and dark themes.
_NEUTRAL: dict[str, Any] = {"figure.facecolor": "none", "axes.facecolor": "none", "savefig.facecolor": "none",
            "text.color": "#8a8a8a", "axes.labelcolor": "#8a8a8a", "axes.edgecolor": "#8a8a8a",
            "xtick.color": "#8a8a8a", "ytick.color": "#8a8a8a", "grid.color": "#8a8a8a",
            "legend.facecolor": "none", "legend.edgecolor": "#8a8a8a",
            "legend.labelcolor": "#8a8a8a"}


def _draw(p: PlotPlan, series: list[Series], date_range: Any) -> Figure:
    import matplotlib as mpl
    from matplotlib import dates as mdates
    from matplotlib import pyplot as plt  # the notebook's inline display hooks in with pyplot

    with mpl.rc_context(_NEUTRAL):  # type: ignore[arg-type]
        fig, ax = plt.subplots(figsize=(10, 3.2), dpi=96, layout="constrained")
        plt.close(fig)  # returned, not shown twice: the notebook displays the returned figure
        per_line = max(p.max_points // max(len(series), 1), 2)
        rows = 0
        banded = False
        colours = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])
        for k, s in enumerate(series):
            colour = colours[k % len(colours)]
            b = band_downsample(s.x, s.y, min(max(per_line // 2, 1), _AXIS_PIXELS))
            x = wall_times(b.x, p.zone)
            label = s.label if len(series) > 1 else "mean" if not b.raw else p.column
            if not b.raw:
                banded = True
                ax.fill_between(x, b.low, b.high, color=colour, alpha=0.25, linewidth=0,
                                label=None if len(series) > 1 else "min–max")
                for edge in (b.low, b.high):  # a spike one bucket wide still shows
                    ax.plot(x, edge, linewidth=0.5, alpha=0.55, color=colour)
            ax.plot(x, b.mean, linewidth=0.9, color=colour, label=label)
            rows += s.rows
        if len(series) > 1 or banded:
            fig.legend(loc="outside right upper", fontsize="small", frameon=False)
        if p.zone is not None:
            locator = mdates.AutoDateLocator()
            ax.xaxis.set_major_locator(locator)
            ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        ax.set_xlabel(p.axis_label)
        ax.set_ylabel(p.value_label)
        ax.grid(True, alpha=0.3)
        one = len(series) == 1 and series[0].label != p.column
        where = f" · {series[0].label}" if one else ""
        note = plural(rows, "row") + (", min–max band and mean per bucket" if banded else "")
        ax.set_title(f"{p.ds.id} · {p.column}{where}  ({note})", fontsize="medium", loc="left")
        if not rows:
            ax.text(0.5, 0.5, f"no rows of {p.column!r} in date_range={date_range!r}",
                    transform=ax.transAxes, ha="center", va="center")
    return fig
