"""Notebook browser of a dataset: step through rows and chunks, plot around a row, last values, tags."""

from __future__ import annotations

import contextlib
import html
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import numpy as np
import pandas as pd
import pyarrow as pa

from ..core.progress import in_kernel
from ..core.units import plural
from .plot import minmax_downsample
from .reprs import STYLE, frame_table

if TYPE_CHECKING:
    from ..dataset import Dataset

__all__ = ["Browser", "browse", "sparkline", "DROPDOWN_MAX_CHUNKS", "WINDOW", "ALL_DEVICES"]

DROPDOWN_MAX_CHUNKS = 500
"""Datasets with more chunks get a number box instead of a dropdown to jump to a chunk."""

WINDOW = 500
"""Rows plotted on each side of the current row."""

ALL_DEVICES = "(all devices)"
"""The device filter's choice that shows every device's last values."""

_MAX_ROW_COLUMNS = 40  # columns of the current row shown; the rest: ds.get(sn)
_SPARK_W, _SPARK_H, _SPARK_POINTS = 360, 110, 360



def browse(ds: Dataset, sn: int = 0) -> Browser:
    """A :class:`Browser` of ``ds`` starting at row ``sn`` (what ``ds.browse()`` returns)."""
    return Browser(ds, sn)


def _table(rows: Sequence[tuple[str, ...]]) -> str:
    """Name/value(/type) rows as a compact HTML table (escaped cells) styled by the theme,
    not pandas' heavy borders; a third cell is a muted type."""
    body = "".join(
        f"<tr><th>{html.escape(r[0])}</th><td>{html.escape(r[1])}</td>"
        + "".join(f"<td class='cf-type'>{html.escape(c)}</td>" for c in r[2:]) + "</tr>"
        for r in rows)
    return f"<table class='cf-table'>{body}</table>"


def _error(message: str) -> str:
    return f"<div class='cf-error'>{html.escape(message)}</div>"


def sparkline(x: np.ndarray, y: np.ndarray, mark: int | None = None, label: str = "",
              width: int = _SPARK_W, height: int = _SPARK_H) -> str:
    """A small SVG line of ``y`` over ``x`` (min/max downsampled to about one point a
    pixel), a vertical mark at ``x == mark``, and its range as text; themed by CSS classes.

    Examples
    --------
    >>> svg = sparkline(np.arange(5), np.array([1.0, 3, 2, 5, 4]), mark=2, label="x")
    >>> svg.startswith("<svg") and "cf-mark" in svg
    True
    """
    x, y = np.asarray(x), np.asarray(y, dtype="float64")
    first, last = (float(x[0]), float(x[-1])) if len(x) else (0.0, 0.0)
    x, y = minmax_downsample(x, y, _SPARK_POINTS)
    pad_l, pad_b, pad_t = 44, 14, 12
    inner_w, inner_h = width - pad_l - 4, height - pad_b - pad_t
    parts = [f"<svg width='{width}' height='{height}' viewBox='0 0 {width} {height}' "
             f"xmlns='http://www.w3.org/2000/svg' role='img' aria-label='{html.escape(label)}'>",
             f"<rect class='cf-frame' x='{pad_l}' y='{pad_t}' width='{inner_w}' "
             f"height='{inner_h}'/>"]
    if len(y):
        x0, x1 = first, last  # the window's ends, whatever the downsampling kept
        y0, y1 = float(np.min(y)), float(np.max(y))
        sx = inner_w / (x1 - x0) if x1 > x0 else 0.0
        sy = inner_h / (y1 - y0) if y1 > y0 else 0.0

        def px(v: float) -> float:
            return pad_l + (v - x0) * sx if sx else pad_l + inner_w / 2

        def py(v: float) -> float:
            return pad_t + inner_h - (v - y0) * sy if sy else pad_t + inner_h / 2

        points = " ".join(f"{px(float(a)):.1f},{py(float(b)):.1f}" for a, b in zip(x, y,
                                                                                   strict=True))
        parts.append(f"<polyline class='cf-line' stroke-width='1' points='{points}'/>")
        if mark is not None and x0 <= mark <= x1:
            parts.append(f"<line class='cf-mark' x1='{px(mark):.1f}' x2='{px(mark):.1f}' "
                         f"y1='{pad_t}' y2='{pad_t + inner_h}' stroke-width='1'/>")
        parts += [f"<text x='{pad_l - 3}' y='{pad_t + 8}' text-anchor='end'>{y1:.4g}</text>",
                  f"<text x='{pad_l - 3}' y='{pad_t + inner_h}' text-anchor='end'>{y0:.4g}</text>",
                  f"<text x='{pad_l}' y='{height - 2}'>sn {x0:,.0f}</text>",
                  f"<text x='{width - 4}' y='{height - 2}' text-anchor='end'>sn {x1:,.0f}</text>"]
    else:
        parts.append(f"<text x='{pad_l + 6}' y='{pad_t + inner_h / 2}'>no values</text>")
    parts.append(f"<text x='{pad_l}' y='{pad_t - 2}'>{html.escape(label)}</text></svg>")
    return "".join(parts)


def _numeric(field: pa.Field) -> bool:
    t = field.type
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


class Browser(widgets.VBox):
    """A compact ipywidgets panel over one dataset; outside a kernel it shows itself as text.

    The top row steps through the dataset: previous/next buttons, a row slider and number
    box (``sn``, ``sn_box``, linked), a chunk selector (``chunk``: a Dropdown, or a
    BoundedIntText beyond ``DROPDOWN_MAX_CHUNKS`` chunks; choosing a chunk moves to its first
    row), the column plotted (``column``) and ``refresh_button``. Below, the current row
    (``row``) beside a small plot of ``column`` over the :data:`WINDOW` rows on each side of
    it (``plot``: SVG, read through the chunk cache). Collapsible sections (``sections``)
    hold the chunk's metadata with its key and checksum (``chunk_info``), the last values
    (``last``, filtered by ``last_device``; computed when built and on ``refresh()``), and
    the tags: search (``search``, results in ``results``) and add (``tag_key``,
    ``tag_value``, ``tag_button``, outcome in ``tag_status``).

    Everything reacts through ``.observe``, so setting a widget's ``value`` from code (or a
    test) updates the panel as a click would. ``update_seconds`` is how long the last row
    change took. Styles use the notebook's theme variables (light and dark themes).

    In JupyterLab/Notebook the panel is displayed as widgets. ``print(browser)``, a terminal
    IPython and notebook viewers without a widget manager get the current row as text
    (``text()``) or HTML (``html()``).

    Examples
    --------
    >>> b = cf.open("sensors").browse()          # doctest: +SKIP
    >>> b.sn.value = 12_345                       # doctest: +SKIP
    >>> print(b)                                  # doctest: +SKIP
    """

    def __init__(self, ds: Dataset, sn: int = 0) -> None:
        super().__init__()
        self.add_class("cf-browser")
        self.ds = ds
        self.update_seconds = 0.0
        self._syncing = False
        self._current: pd.Series | str = ""
        self._last_table = pd.DataFrame()
        self._last_text = ""
        self._results_text = ""
        self._starts = np.zeros(0, dtype=np.int64)
        self._chunk_table = pd.DataFrame()
        small = widgets.Layout(width="2.6em", padding="0")

        self.title = widgets.HTML()
        self.prev_button = widgets.Button(description="◀", tooltip="previous row", layout=small)
        self.next_button = widgets.Button(description="▶", tooltip="next row", layout=small)
        self.sn = widgets.IntSlider(continuous_update=False, readout=False,
                                    layout=widgets.Layout(width="16em"))
        self.sn_box = widgets.BoundedIntText(description="sn", tooltip="serial number",
                                             layout=widgets.Layout(width="11em"),
                                             style={"description_width": "1.6em"})
        self._link = widgets.link((self.sn, "value"), (self.sn_box, "value"))
        self.chunk: widgets.Dropdown | widgets.BoundedIntText = widgets.Dropdown()
        self.column = widgets.Dropdown(description="plot", layout=widgets.Layout(width="13em"),
                                       style={"description_width": "2.4em"})
        self.refresh_button = widgets.Button(description="↻", layout=small,
                                             tooltip="re-read the dataset and its last values")
        self.row = widgets.HTML(layout=widgets.Layout(flex="1 1 auto", min_width="16em"))
        self.row.add_class("cf-row")
        self.plot = widgets.HTML(layout=widgets.Layout(flex="0 0 auto", margin="0 0 0 12px"))
        self.chunk_info = widgets.HTML()
        self.last_device = widgets.Dropdown(description="device", options=[ALL_DEVICES],
                                            layout=widgets.Layout(width="16em"),
                                            style={"description_width": "3.5em"})
        self.last = widgets.HTML()
        self.search = widgets.Text(description="find", placeholder="keyword, then Enter",
                                   continuous_update=False, layout=widgets.Layout(width="18em"),
                                   style={"description_width": "2.4em"})
        self.results = widgets.HTML()
        self.tag_key = widgets.Text(placeholder="key", layout=widgets.Layout(width="9em"))
        self.tag_value = widgets.Text(placeholder="value", layout=widgets.Layout(width="14em"))
        self.tag_button = widgets.Button(description="add tag", layout=widgets.Layout(width="6em"))
        self.tag_status = widgets.HTML()
        self.sections = widgets.Accordion(children=[
            self.chunk_info,
            widgets.VBox([self.last_device, self.last]),
            widgets.VBox([self.search, self.results,
                          widgets.HBox([self.tag_key, self.tag_value, self.tag_button]),
                          self.tag_status]),
        ], titles=("chunk", "last values", "tags"), selected_index=0)

        self._read_layout()
        self.sn.value = min(max(int(sn), 0), self.sn.max)
        self.sn.observe(self._on_sn, names="value")
        self.column.observe(lambda _: self.draw(), names="value")
        self.last_device.observe(lambda _: self._show_last_table(), names="value")
        self.search.observe(lambda change: self.find(change["new"]), names="value")
        self.prev_button.on_click(lambda _: self.step(-1))
        self.next_button.on_click(lambda _: self.step(1))
        self.refresh_button.on_click(lambda _: self.refresh())
        self.tag_button.on_click(lambda _: self.add_tag(self.tag_key.value, self.tag_value.value))
        self.update()
        self.show_last()
        self._arrange()

    # -- building -------------------------------------------------------------------------
    def _read_layout(self) -> None:
        """Rows and chunks of the dataset now; (re)build the slider range and the choosers."""
        n = len(self.ds)
        self._rows = n
        self._chunk_table = self.ds.chunks
        self._starts = self._chunk_table["start"].to_numpy(dtype=np.int64)
        top = max(n - 1, 0)
        self.sn.max = self.sn_box.max = top
        self.sn.disabled = self.sn_box.disabled = n == 0
        self.title.value = (f"<span class='cf-title'><b>chunkframe.Dataset</b> "
                            f"<code>{html.escape(self.ds.id)}</code></span> "
                            f"<span class='cf-muted'>{plural(n, 'row')} in "
                            f"{plural(len(self._starts), 'chunk')}"
                            "</span>")
        schema = self.ds.schema
        numeric = [f.name for f in schema if _numeric(f)]
        keep = self.column.value if self.column.value in numeric else None
        with self._quiet():
            self.column.options = numeric or ["(no numeric column)"]
            self.column.value = keep or self.column.options[0]
            self.column.disabled = not numeric
        with contextlib.suppress(ValueError):
            self.chunk.unobserve(self._on_chunk, names="value")
        if len(self._starts) <= DROPDOWN_MAX_CHUNKS:
            self.chunk = widgets.Dropdown(
                description="chunk", style={"description_width": "3.6em"},
                options=[(f"{int(r.chunk)} · sn {int(r.start):,}–{int(r.start + r.rows - 1):,}", i)
                         for i, r in enumerate(self._chunk_table.itertuples())],
                layout=widgets.Layout(width="18em"))
        else:
            self.chunk = widgets.BoundedIntText(description="chunk", min=0,
                                                max=len(self._starts) - 1,
                                                layout=widgets.Layout(width="10em"),
                                                style={"description_width": "3.6em"})
        self.chunk.observe(self._on_chunk, names="value")

    def _arrange(self) -> None:
        nav = widgets.HBox([self.prev_button, self.sn, self.next_button, self.sn_box, self.chunk,
                            self.column, self.refresh_button],
                           layout=widgets.Layout(flex_flow="row wrap", align_items="center"))
        body = widgets.HBox([self.row, self.plot],
                            layout=widgets.Layout(align_items="flex-start"))
        self.children = [widgets.HTML(STYLE), self.title, nav, body, self.sections]

    # -- reacting -------------------------------------------------------------------------
    @contextlib.contextmanager
    def _quiet(self) -> Iterator[None]:
        """Set widgets from code without their observers jumping somewhere else."""
        self._syncing, before = True, self._syncing
        try:
            yield
        finally:
            self._syncing = before

    def _on_sn(self, change: dict[str, Any]) -> None:
        self.update()

    def _on_chunk(self, change: dict[str, Any]) -> None:
        if self._syncing or change["new"] is None:
            return
        self.jump(int(change["new"]))

    def step(self, delta: int) -> None:
        """Move ``delta`` rows (clamped to the dataset)."""
        self.sn.value = min(max(self.sn.value + delta, 0), self.sn.max)

    def jump(self, chunk: int) -> None:
        """Go to the first row of chunk ``chunk`` (its position in ``ds.chunks``)."""
        if 0 <= chunk < len(self._starts):
            self.sn.value = int(self._starts[chunk])

    def update(self) -> None:
        """Show row ``sn.value``, its chunk's metadata and the plot around it."""
        began = time.perf_counter()
        sn = int(self.sn.value)
        if self._rows == 0:
            self._current = f"dataset {self.ds.id!r} has no rows"
            self.row.value = f"<div class='cf-muted'>{html.escape(self._current)}</div>"
            self.chunk_info.value = self.plot.value = ""
            return
        i = int(np.searchsorted(self._starts, sn, side="right") - 1)
        with self._quiet():
            self.chunk.value = i
        try:
            row = self.ds.get(sn)
        except Exception as exc:  # noqa: BLE001 - a panel shows the problem, it does not die
            self._current = f"row {sn}: {type(exc).__name__}: {exc}"
            self.row.value = _error(self._current)
        else:
            self._current = row
            shown = row.iloc[:_MAX_ROW_COLUMNS]
            dtypes = self.ds.schema
            cells = [(str(k), str(v), str(dtypes.field(str(k)).type)
                      if str(k) in dtypes.names else "") for k, v in shown.items()]
            more = (f"<div class='cf-muted'>… {len(row) - _MAX_ROW_COLUMNS} more columns: "
                    f"ds.get({sn})</div>" if len(row) > _MAX_ROW_COLUMNS else "")
            self.row.value = f"<b>sn {sn:,}</b>{_table(cells)}{more}"
        info = self._chunk_table.iloc[i]
        self.chunk_info.value = _table([
            ("chunk", f"{int(info['chunk'])} of {len(self._starts)}"),
            ("rows", f"sn {int(info['start']):,}–{int(info['start'] + info['rows'] - 1):,} "
                     f"({plural(int(info['rows']), 'row')})"),
            ("key", str(info["key"])), ("checksum", str(info["checksum"])),
            ("stored", f"{int(info['bytes']):,} bytes")])
        self.sections.set_title(0, f"chunk {int(info['chunk'])} · {info['checksum']}")
        self.draw()
        self.update_seconds = time.perf_counter() - began

    def draw(self) -> None:
        """Plot the selected column over the :data:`WINDOW` rows on each side of the row."""
        if self._syncing or self.column.disabled or self._rows == 0:
            self.plot.value = "" if self._rows == 0 else (
                "<div class='cf-muted'>no numeric column to plot</div>")
            return
        sn, name = int(self.sn.value), str(self.column.value)
        lo, hi = max(sn - WINDOW, 0), min(sn + WINDOW + 1, self._rows)
        try:
            window = self.ds.slice(lo, hi, columns=[name])[name]
        except Exception as exc:  # noqa: BLE001 - e.g. a corrupt chunk near the row
            self.plot.value = _error(f"plot of {name!r} around sn {sn:,}: "
                                     f"{type(exc).__name__}: {exc}")
            return
        y = pd.to_numeric(window, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        self.plot.value = sparkline(np.arange(lo, hi), y, mark=sn,
                                    label=f"{name}, sn {lo:,}–{hi - 1:,}")

    def show_last(self) -> None:
        """Compute and show the dataset's last values (or why there are none)."""
        try:
            table = self.ds.last()
        except Exception as exc:  # noqa: BLE001 - e.g. a dataset without a time column
            self._last_table = pd.DataFrame()
            self._last_text = f"no last values: {type(exc).__name__}: {exc}"
            self.last.value = f"<div class='cf-muted'>{html.escape(self._last_text)}</div>"
            self.last_device.options, self.last_device.disabled = [ALL_DEVICES], True
            return
        self._last_table = table
        devices = sorted({str(d) for d in table["device"]}) if "device" in table else []
        keep = self.last_device.value if self.last_device.value in devices else ALL_DEVICES
        with self._quiet():
            self.last_device.options = [ALL_DEVICES, *devices]
            self.last_device.value = keep
        self.last_device.disabled = len(devices) < 2
        self._show_last_table()

    def _show_last_table(self) -> None:
        table, device = self._last_table, self.last_device.value
        if self._syncing or not table.columns.size:
            return
        if device != ALL_DEVICES:
            table = table[table["device"].astype(str) == device]
        self._last_text = plural(len(table), "series", "series") + ("" if device == ALL_DEVICES
                                                    else f" of device {device!r}")
        self.last.value = (f"<div class='cf-muted'>{html.escape(self._last_text)}</div>"
                           + frame_table(table))
        self.sections.set_title(1, f"last values · {self._last_text}")

    def find(self, keyword: str) -> None:
        """Show the dataset's tags having ``keyword`` (nothing for an empty keyword)."""
        keyword = (keyword or "").strip()
        if not keyword:
            self._results_text = ""
            self.results.value = ""
            return
        try:
            found = self.ds.find(keyword)
        except Exception as exc:  # noqa: BLE001
            self._results_text = f"search {keyword!r}: {type(exc).__name__}: {exc}"
            self.results.value = _error(self._results_text)
            return
        if found.empty:
            self._results_text = f"no tag of {self.ds.id!r} has the keyword {keyword!r}"
            self.results.value = f"<div class='cf-muted'>{html.escape(self._results_text)}</div>"
        else:
            self._results_text = f"{plural(len(found), 'tag')} with {keyword!r}"
            self.results.value = frame_table(found)

    def add_tag(self, key: str, value: str) -> None:
        """Tag the dataset with ``key → value`` (the tag boxes' button), then show the
        tags matching the search box again."""
        key = (key or "").strip()
        if not key:
            self.tag_status.value = _error("give the tag a key (the first box), then a value")
            return
        try:
            self.ds.tag(key, value)
        except Exception as exc:  # noqa: BLE001 - e.g. a key the context refuses
            self.tag_status.value = _error(f"cannot tag {self.ds.id!r} with {key!r}: "
                                           f"{type(exc).__name__}: {exc}")
            return
        self.tag_status.value = (f"<div>tagged <code>{html.escape(key)}</code> = "
                                 f"<code>{html.escape(value)}</code></div>")
        with self._quiet():
            self.tag_key.value = self.tag_value.value = ""
        if self.search.value:
            self.find(self.search.value)

    def refresh(self) -> None:
        """Re-read the dataset (rows appended, re-ingested) and its last values."""
        chunk_before = self.chunk
        self._read_layout()
        if self.chunk is not chunk_before:
            self._arrange()
        self.sn.value = min(self.sn.value, self.sn.max)
        self.update()
        self.show_last()
        if self.search.value:
            self.find(self.search.value)

    # -- display --------------------------------------------------------------------------
    def text(self) -> str:
        """The current state as plain text (what ``print(browser)`` shows)."""
        sn, n = int(self.sn.value), self._rows
        head = f"chunkframe browser of dataset {self.ds.id!r}: row {sn:,} of {n:,}"
        if len(self._starts) and n:
            i = int(np.searchsorted(self._starts, sn, side="right") - 1)
            info = self._chunk_table.iloc[i]
            head += (f", chunk {int(info['chunk'])} (sn {int(info['start']):,}–"
                     f"{int(info['start'] + info['rows'] - 1):,})")
        body = (self._current.to_string(max_rows=40) if isinstance(self._current, pd.Series)
                else str(self._current))
        tail = [f"last values: {self._last_text}"] if self._last_text else []
        if self._results_text:
            tail.append(f"search: {self._results_text}")
        return "\n".join([head, body, *tail])

    def html(self) -> str:
        """The current row, its plot and its chunk as static HTML (viewers without widgets)."""
        return (f"{STYLE}<div class='cf-browser'>{self.title.value}<div style='display:flex;"
                f"gap:12px;align-items:flex-start'><div class='cf-row'>{self.row.value}</div>"
                f"{self.plot.value}</div>{self.chunk_info.value}</div>")

    def __repr__(self) -> str:
        return self.text()

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        data: dict[str, Any] = {"text/plain": self.text(), "text/html": self.html()}
        if in_kernel():
            view = super()._repr_mimebundle_(**kwargs) or {}
            data.update({k: v for k, v in view.items() if k != "text/plain"})
        return data
