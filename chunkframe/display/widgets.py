"""Notebook browser of a dataset: a scrolling window of rows, the row's device plotted, chunk, tags."""

from __future__ import annotations

import contextlib
import dataclasses
import html
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import numpy as np
import pandas as pd
import pyarrow as pa

from ..core.errors import InvalidArgumentError
from ..core.formats import format_column, header_html
from ..core.progress import in_kernel
from ..core.times import time_bound, times_ns
from ..core.units import format_bytes, plural
from .grid import RowWindow
from .panelplot import DeviceWindow, device_window, sparkline
from .reprs import PANEL_STYLE, dataset_facts, frame_table

if TYPE_CHECKING:
    from ..core.protocols import DatasetLike

__all__ = ["Browser", "browse", "sn_at_time", "DROPDOWN_MAX_CHUNKS", "ALL_DEVICES"]

DROPDOWN_MAX_CHUNKS = 500
"""Datasets with more chunks get a number box instead of a dropdown to jump to a chunk."""

ALL_DEVICES = "(all devices)"
"""The device filter's choice that shows every device's last values."""

_CURRENT = " class='cf-current'"
_STATIC_ROWS = 7  # rows around the current one in the static HTML and text of a saved notebook


def browse(ds: DatasetLike, sn: int = 0) -> Browser:
    """A :class:`Browser` of ``ds`` starting at row ``sn`` (what ``ds.browse()`` returns)."""
    return Browser(ds, sn)


def _table(rows: list[tuple[str, str]]) -> str:
    """Name/value rows as a compact HTML table (escaped cells) styled by the theme."""
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                   for k, v in rows)
    return f"<table class='cf-table'>{body}</table>"


def _error(message: str) -> str:
    return f"<div class='cf-error'>{html.escape(message)}</div>"


def _numeric(field: pa.Field) -> bool:
    t = field.type
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def sn_at_time(ds: DatasetLike, when: Any) -> int:
    """The first row (by serial number) of the first chunk reaching ``when`` whose time is
    ``>= when``: where a time-ordered dataset reaches that time. Reads one chunk's time
    column (through the cache); the chunks' statistics choose it.

    Raises
    ------
    InvalidArgumentError
        The dataset has no time column, or ``when`` is not a time.
    """
    meta = ds.meta
    tcol = meta.time_column
    if tcol is None:
        raise InvalidArgumentError(
            f"dataset {ds.id!r} has no time column, so there is no time to jump to; jump to "
            "a serial number or a chunk instead")
    t = time_bound(when, ds.schema.field(tcol), "time", ds.id)
    if t is None or not meta.rows:
        return 0
    for cm in ds.chunk_metas:
        if cm.stats and max(hi for _, hi in cm.stats.values()) < t:
            continue
        ns = times_ns(pa.Array.from_pandas(ds.slice(cm.start, cm.start + cm.rows,
                                                    columns=[tcol])[tcol]))
        at = np.flatnonzero(ns.fill_null(np.iinfo(np.int64).min).to_numpy(
            zero_copy_only=False) >= t)
        if len(at):
            return cm.start + int(at[0])
    return meta.rows - 1


def _mark(w: DeviceWindow, row: pd.Series | None, sn: int, ds: DatasetLike) -> tuple[int, float]:
    """Where row ``sn`` (already read) falls on ``w``'s axes: its time (or sn) and value."""
    tcol = ds.meta.time_column
    if row is None:
        return sn, float("nan")
    x = sn
    if tcol is not None and pd.notna(row[tcol]):
        x = int(times_ns(pa.array([row[tcol]]))[0].as_py())
    value = pd.to_numeric(pd.Series([row.get(w.column)]), errors="coerce").iloc[0]
    return x, float(value) if pd.notna(value) else float("nan")


class Browser(widgets.VBox):
    """A panel over one dataset in a notebook; outside a kernel it shows itself as text.

    ``table`` (a :class:`~chunkframe.display.grid.RowWindow`) is a window of
    ``VIEW_ROWS`` rows with the current one highlighted and the columns' pandas dtypes in
    its header; it scrolls the whole dataset (wheel, the bar on its right, the keys ↑ ↓
    j k PgUp PgDn Home End once clicked) reading only the rows around the view through
    the chunk cache. Above it: ◀ ▶ (``prev_button``, ``next_button``), jumps by serial
    number (``sn_box``), by time (``time_box``: the first row at or after a time, then
    Enter) and by chunk (``chunk``: a Dropdown, or a BoundedIntText beyond
    ``DROPDOWN_MAX_CHUNKS`` chunks), the column plotted (``column``) and
    ``refresh_button``. Beside the window (below it when the output is narrow), ``plot``
    draws the current row's device over time around it (SVG; the y range by percentiles,
    values off the scale clipped and marked, the row marked). Collapsed sections
    (``sections``) hold the chunk's internals (``chunk_info``: key, checksum, bytes), the
    last values (``last``, filtered by ``last_device``) and the tags (``search``,
    ``results``; ``tag_key``, ``tag_value``, ``tag_button``, ``tag_status``).

    Everything reacts through ``.observe``, so setting ``table.sn`` or a widget's
    ``value`` from code moves the panel as a key or a click would. ``update_seconds`` is
    how long the last row change took in the kernel. Styles use the notebook's theme
    variables (light and dark themes).

    Examples
    --------
    >>> b = cf.open("sensors").browse()          # doctest: +SKIP
    >>> b.table.sn = 12_345                       # doctest: +SKIP
    >>> b.jump_time("2026-01-05 13:00")           # doctest: +SKIP
    >>> print(b)                                  # doctest: +SKIP
    """

    def __init__(self, ds: DatasetLike, sn: int = 0) -> None:
        super().__init__(layout=widgets.Layout(width="100%", max_width="1100px"))
        self.add_class("cf-browser")
        self.ds = ds
        self.update_seconds = 0.0
        self._syncing = False
        self._current: pd.Series | str = ""
        self._window: DeviceWindow | None = None
        self._last_table = pd.DataFrame()
        self._last_text = ""
        self._results_text = ""
        self._starts = np.zeros(0, dtype=np.int64)
        self._chunk_table = pd.DataFrame()
        small = widgets.Layout(width="2.6em", padding="0")

        self.title = widgets.HTML()
        self.table = RowWindow(ds, sn, layout=widgets.Layout(flex="1 1 420px", min_width="0"))
        self.prev_button = widgets.Button(description="◀", tooltip="previous row (↑, k)",
                                          layout=small)
        self.next_button = widgets.Button(description="▶", tooltip="next row (↓, j)",
                                          layout=small)
        self.sn_box = widgets.BoundedIntText(description="sn", tooltip="serial number",
                                             layout=widgets.Layout(width="11em"),
                                             style={"description_width": "1.6em"})
        self.time_box = widgets.Text(description="time", placeholder="2026-01-05 13:00, Enter",
                                     continuous_update=False,
                                     layout=widgets.Layout(width="16em"),
                                     style={"description_width": "2.4em"})
        self.chunk: widgets.Dropdown | widgets.BoundedIntText = widgets.Dropdown()
        self.column = widgets.Dropdown(description="plot", layout=widgets.Layout(width="12em"),
                                       style={"description_width": "2.4em"})
        self.refresh_button = widgets.Button(description="↻", layout=small,
                                             tooltip="re-read the dataset and its last values")
        self.status = widgets.HTML()
        self.plot = widgets.HTML(layout=widgets.Layout(flex="1 1 280px", max_width="480px",
                                                       min_width="0"))
        self.plot.add_class("cf-plot")
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
                          widgets.HBox([self.tag_key, self.tag_value, self.tag_button],
                                       layout=widgets.Layout(flex_flow="row wrap")),
                          self.tag_status]),
        ], titles=("chunk", "last values", "tags"), selected_index=None)

        self._read_layout()
        self.table.observe(self._on_sn, names="sn")
        self.sn_box.observe(self._on_sn_box, names="value")
        self.time_box.observe(lambda change: self.jump_time(change["new"]), names="value")
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
        """Rows and chunks of the dataset now; (re)build the jump boxes and the choosers."""
        ds = self.ds
        meta = ds.meta
        self._chunk_table = ds.chunks
        self._starts = self._chunk_table["start"].to_numpy(dtype=np.int64)
        top = max(self.table.total - 1, 0)
        self.sn_box.max = top
        self.sn_box.disabled = self.table.total == 0
        self.time_box.disabled = meta.time_column is None
        self.title.value = self._title()
        schema = ds.schema
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
                description="chunk", style={"description_width": "3.2em"},
                options=[(f"{int(r.chunk)} · sn {int(r.start):,}–{int(r.start + r.rows - 1):,}", i)
                         for i, r in enumerate(self._chunk_table.itertuples())],
                layout=widgets.Layout(width="17em"))
        else:
            self.chunk = widgets.BoundedIntText(description="chunk", min=0,
                                                max=len(self._starts) - 1,
                                                layout=widgets.Layout(width="10em"),
                                                style={"description_width": "3.2em"})
        self.chunk.observe(self._on_chunk, names="value")

    def _title(self) -> str:
        """The panel's header: the Dataset repr's (no chunk read)."""
        facts, span = dataset_facts(self.ds)
        return header_html("chunkframe.Dataset", self.ds.id, facts + ([span] if span else []))

    def _arrange(self) -> None:
        nav = widgets.HBox([self.prev_button, self.next_button, self.sn_box, self.time_box,
                            self.chunk, self.column, self.refresh_button],
                           layout=widgets.Layout(flex_flow="row wrap", align_items="center"))
        body = widgets.HBox([self.table, self.plot],
                            layout=widgets.Layout(flex_flow="row wrap", align_items="flex-start",
                                                  width="100%"))
        self.children = [widgets.HTML(PANEL_STYLE), self.title, nav, self.status, body, self.sections]

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

    def _on_sn_box(self, change: dict[str, Any]) -> None:
        if not self._syncing:
            self.table.move(int(change["new"]))

    def _on_chunk(self, change: dict[str, Any]) -> None:
        if self._syncing or change["new"] is None:
            return
        self.jump(int(change["new"]))

    @property
    def sn(self) -> int:
        """The current row's serial number."""
        return int(self.table.sn)

    def step(self, delta: int) -> None:
        """Move ``delta`` rows (clamped to the dataset)."""
        self.table.move(self.table.sn + int(delta))

    def jump(self, chunk: int) -> None:
        """Go to the first row of chunk ``chunk`` (its position in ``ds.chunks``)."""
        if 0 <= chunk < len(self._starts):
            self.table.move(int(self._starts[chunk]))

    def jump_time(self, when: Any) -> None:
        """Go to the first row at or after time ``when`` (see :func:`sn_at_time`); a time
        that cannot be read is said in ``status``."""
        if self._syncing or when is None or (isinstance(when, str) and not when.strip()):
            return
        try:
            sn = sn_at_time(self.ds, when.strip() if isinstance(when, str) else when)
        except Exception as exc:  # noqa: BLE001 - the panel says why, it does not die
            self.status.value = _error(f"cannot jump to time {when!r}: {exc}")
            return
        self.status.value = ""
        self.table.move(sn)

    def update(self) -> None:
        """Show row ``table.sn``: the jump boxes, its chunk's internals and the plot."""
        began = time.perf_counter()
        sn = int(self.table.sn)
        if self.table.total == 0:
            self._current = f"dataset {self.ds.id!r} has no rows"
            self.chunk_info.value = self.plot.value = ""
            return
        i = int(np.searchsorted(self._starts, sn, side="right") - 1)
        with self._quiet():
            self.chunk.value = i
            self.sn_box.value = sn
        frame = self.table.frame
        self._current = (frame.loc[sn] if sn in frame.index
                         else self.table.error or f"row {sn:,} is not read yet")
        info = self._chunk_table.iloc[i]
        self.chunk_info.value = _table([
            ("chunk", f"{int(info['chunk'])} of {len(self._starts):,}"),
            ("rows", f"sn {int(info['start']):,}–{int(info['start'] + info['rows'] - 1):,} "
                     f"({plural(int(info['rows']), 'row')})"),
            ("key", str(info["key"])), ("checksum", str(info["checksum"])),
            ("stored", format_bytes(int(info["bytes"])))])
        self.sections.set_title(0, f"chunk {int(info['chunk']):,} internals")
        self.draw()
        self.update_seconds = time.perf_counter() - began

    def draw(self) -> None:
        """Plot the current row's device around it (the chosen column)."""
        if self._syncing or self.table.total == 0:
            return
        if self.column.disabled:
            self.plot.value = "<div class='cf-muted'>no numeric column to plot</div>"
            return
        sn, name = int(self.table.sn), str(self.column.value)
        row = self._current if isinstance(self._current, pd.Series) else None
        dcol = self.ds.meta.device_column
        device = (str(row[dcol]) if row is not None and dcol in row.index
                  and pd.notna(row[dcol]) else None)
        w = self._window
        try:
            if (w is None or device is None or not w.covers(sn, device, name, self.table.total)):
                w = device_window(self.ds, sn, name)
            else:
                mark_x, mark_y = _mark(w, row, sn, self.ds)
                w = dataclasses.replace(w, sn=sn, mark_x=mark_x, mark_y=mark_y)
        except Exception as exc:  # noqa: BLE001 - e.g. a corrupt chunk near the row
            self.plot.value = _error(f"plot of {name!r} around sn {sn:,}: "
                                     f"{type(exc).__name__}: {exc}")
            return
        self._window = w
        self.plot.value = sparkline(w)

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
        self.table.reload()
        self._read_layout()
        if self.chunk is not chunk_before:
            self._arrange()
        self._window = None
        self.table.move(self.table.sn)
        self.update()
        self.show_last()
        if self.search.value:
            self.find(self.search.value)

    # -- display --------------------------------------------------------------------------
    def _around(self, rows: int | None) -> pd.DataFrame:
        """The rows in view, or the ``rows`` around the current one (from the buffer)."""
        if rows is None or not len(self.table.frame):
            return self.table.rows_in_view()
        sn = self.table.sn
        return self.table.frame.loc[max(sn - rows // 2, 0):sn + rows // 2]

    def _rows_text(self, rows: int | None = None) -> pd.DataFrame:
        """The rows in view (or ``rows`` around the current one), formatted, the current
        one marked ``▶``."""
        frame = self._around(rows)
        shown = pd.DataFrame({str(c): format_column(frame[c]) for c in frame.columns},
                             index=pd.Index([f"{i:,}" for i in frame.index], name="sn"))
        shown.insert(0, "", ["▶" if i == self.table.sn else "" for i in frame.index])
        return shown

    def text(self, rows: int | None = None) -> str:
        """The current state as plain text (what ``print(browser)`` shows): the header, the
        rows in view (or the ``rows`` around the current one) with the current one
        marked, its chunk."""
        sn, n = int(self.table.sn), self.table.total
        head = (f"chunkframe browser of dataset {self.ds.id!r}: row {sn:,} of {n:,}")
        if len(self._starts) and n:
            i = int(np.searchsorted(self._starts, sn, side="right") - 1)
            info = self._chunk_table.iloc[i]
            head += (f", chunk {int(info['chunk']):,} (sn {int(info['start']):,}–"
                     f"{int(info['start'] + info['rows'] - 1):,})")
        body = (self._rows_text(rows).to_string() if n and len(self.table.frame)
                else str(self._current))
        tail = [f"last values: {self._last_text}"] if self._last_text else []
        if self._results_text:
            tail.append(f"search: {self._results_text}")
        return "\n".join([head, body, *tail])

    def html(self) -> str:
        """The rows around the current one and the plot as static HTML (viewers without
        widgets; a few rows, so that a saved notebook stays small)."""
        frame = self._around(_STATIC_ROWS)
        dtypes = {c["name"]: c["dtype"] for c in self.table.columns}
        head = "".join(f"<th>{html.escape(str(c))}<div class='cf-dtype'>"
                       f"{html.escape(dtypes.get(str(c), ''))}</div></th>" for c in frame.columns)
        text = [format_column(frame[c]) for c in frame.columns]
        body = "".join(
            f"<tr{_CURRENT if sn == self.table.sn else ''}><th>{sn:,}</th>"
            + "".join(f"<td>{html.escape(col[k])}</td>" for col in text) + "</tr>"
            for k, sn in enumerate(frame.index))
        return (f"{PANEL_STYLE}<div class='cf-browser'>{self.title.value}<div class='cf-body'>"
                f"<div class='cf-rows'><table class='cf-table'><tr><th>sn</th>{head}</tr>{body}"
                f"</table></div><div class='cf-plot'>{self.plot.value}</div></div></div>")

    def __repr__(self) -> str:
        return self.text()

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        data: dict[str, Any] = {"text/plain": self.text(_STATIC_ROWS), "text/html": self.html()}
        if in_kernel():
            view = super()._repr_mimebundle_(**kwargs) or {}
            data.update({k: v for k, v in view.items() if k != "text/plain"})
        return data
