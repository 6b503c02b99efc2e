"""Plots of a dataset's series over time: only the chunks a range needs, min/max downsampled."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ..core.devices import device_key, device_text
from ..core.errors import InvalidArgumentError
from ..core.integers import as_integer
from ..core.times import date_range_bounds, times_ns
from ..core.units import plural

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..core.model import ChunkMeta
    from ..dataset import Dataset

__all__ = ["plot", "minmax_downsample", "chunks_overlapping", "MAX_LINES"]

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
class _Series:
    label: str
    x: np.ndarray
    y: np.ndarray
    rows: int


def plot(ds: Dataset, column: str, *, device: Any = None, date_range: Any = None,
         max_points: int = 5_000) -> Figure:
    """A matplotlib figure of ``column`` over time (what ``ds.plot`` returns).

    Only the chunks whose time statistics overlap ``date_range`` (and hold ``device``) are
    read, through the chunk cache (``ds.slice``); each line is downsampled to its minimum
    and maximum per bucket. Without a device, each device is its own line (up to
    :data:`MAX_LINES`). Without a time column, the x axis is the serial number.
    """
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
    metas = ds.chunk_metas
    keep = chunks_overlapping(metas, lo, hi, wanted)
    if wanted is not None and not any(wanted in cm.stats for cm in metas):
        known = sorted({d for cm in metas for d in cm.stats})
        raise KeyError(f"dataset {ds.id!r} has no device {device!r}; devices are "
                       f"{known[:20]!r}{' ...' if len(known) > 20 else ''}")
    frame = _read(ds, metas, keep, [c for c in dict.fromkeys([tcol, dcol, column]) if c])
    series = _series(ds, frame, column, tcol, dcol, lo, hi, wanted)
    return _draw(ds, column, series, tcol, date_range, max_points)


def _read(ds: Dataset, metas: Sequence[ChunkMeta], keep: list[int], columns: list[str]
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


def _series(ds: Dataset, frame: pd.DataFrame, column: str, tcol: str | None, dcol: str | None,
            lo: int | None, hi: int | None, device: str | None) -> list[_Series]:
    """The rows in range, one (x, y) per device, in time order."""
    y = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    if tcol is None:
        return [_Series(column, frame.index.to_numpy(), y, len(y))]
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
    x_of = _x_axis(frame[tcol])
    out = []
    for label in groups:
        sel = mask if labels is None or device is not None else mask & (labels == label)
        order = np.argsort(t[sel], kind="stable")
        out.append(_Series(str(label), x_of(t[sel][order]), y[sel][order], int(sel.sum())))
    return out


def _x_axis(times: pd.Series) -> Any:
    """Integer times → what matplotlib draws: datetimes (wall time of an aware column's zone)
    for timestamps, the integers themselves otherwise."""
    dtype = times.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        return lambda ns: (pd.DatetimeIndex(ns.astype("datetime64[ns]"), tz="UTC")
                           .tz_convert(dtype.tz).tz_localize(None).to_numpy())
    if pd.api.types.is_datetime64_dtype(dtype):
        return lambda ns: ns.astype("datetime64[ns]")
    return lambda ns: ns


def _draw(ds: Dataset, column: str, series: list[_Series], tcol: str | None, date_range: Any,
          max_points: int) -> Figure:
    from matplotlib import pyplot as plt  # the notebook's inline display hooks in with pyplot

    fig, ax = plt.subplots(figsize=(8, 2.8), layout="constrained")
    plt.close(fig)  # returned, not shown twice: the notebook displays the returned figure
    per_line = max(max_points // max(len(series), 1), 2)
    rows = drawn = 0
    for s in series:
        x, y = minmax_downsample(s.x, s.y, per_line)
        ax.plot(x, y, linewidth=0.9, label=s.label if len(series) > 1 else None)
        rows, drawn = rows + s.rows, drawn + len(x)
    if len(series) > 1:
        ax.legend(fontsize="small", ncols=min(len(series), 4), loc="upper left")
    ax.set_xlabel(tcol or "sn")
    ax.set_ylabel(column)
    ax.grid(True, alpha=0.3)
    where = "" if len(series) != 1 or series[0].label == column else f" · {series[0].label}"
    note = plural(rows, "row") + (f", {plural(drawn, 'point')} (min/max per bucket)"
                                  if drawn < rows else "")
    ax.set_title(f"{ds.id} · {column}{where}  ({note})", fontsize="medium", loc="left")
    if not rows:
        ax.text(0.5, 0.5, f"no rows of {column!r} in date_range={date_range!r}",
                transform=ax.transAxes, ha="center", va="center")
    return fig
