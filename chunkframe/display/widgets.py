"""Notebook browser of a dataset: step through rows and chunks, see last values, search tags."""

from __future__ import annotations

import contextlib
import html
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from ..dataset import Dataset

__all__ = ["Browser", "browse", "DROPDOWN_MAX_CHUNKS"]

DROPDOWN_MAX_CHUNKS = 500
"""Datasets with more chunks get a number box instead of a dropdown to jump to a chunk."""

_MAX_TABLE_ROWS = 20  # last values and search results shown at most; the rest: call the API


def browse(ds: Dataset, sn: int = 0) -> Browser:
    """A :class:`Browser` of ``ds`` starting at row ``sn`` (what ``ds.browse()`` returns)."""
    return Browser(ds, sn)


class Browser(widgets.VBox):
    """An ipywidgets panel over one dataset; outside a kernel it shows itself as text.

    The panel holds a row slider and number box (``sn``, ``sn_box``, linked), previous/next
    buttons, a chunk selector (``chunk``: a Dropdown, or a BoundedIntText beyond
    ``DROPDOWN_MAX_CHUNKS`` chunks; choosing a chunk moves to its first row), the current
    row and its chunk's metadata (``row``, ``chunk_info``), the dataset's last values
    (``last``, computed when built and on ``refresh()``) and a tag search box (``search``,
    results in ``results``). Everything reacts through ``.observe``, so setting a widget's
    ``value`` from code (or a test) updates the panel as a click would.

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
        self.ds = ds
        self._syncing = False
        self._current: pd.Series | str = ""
        self._last_text = ""
        self._results_text = ""
        self._starts = np.zeros(0, dtype=np.int64)
        self._chunk_table = pd.DataFrame()

        self.title = widgets.HTML()
        self.sn = widgets.IntSlider(description="row (sn)", continuous_update=False,
                                    layout=widgets.Layout(width="60%"))
        self.sn_box = widgets.BoundedIntText(layout=widgets.Layout(width="10em"))
        self._link = widgets.link((self.sn, "value"), (self.sn_box, "value"))
        self.prev_button = widgets.Button(description="◀", tooltip="previous row",
                                          layout=widgets.Layout(width="3em"))
        self.next_button = widgets.Button(description="▶", tooltip="next row",
                                          layout=widgets.Layout(width="3em"))
        self.chunk: widgets.Dropdown | widgets.BoundedIntText = widgets.Dropdown()
        self.row = widgets.HTML()
        self.chunk_info = widgets.HTML()
        self.last = widgets.HTML()
        self.refresh_button = widgets.Button(description="refresh",
                                             tooltip="re-read the dataset and its last values")
        self.search = widgets.Text(description="find tag", placeholder="keyword, then Enter",
                                   continuous_update=False)
        self.results = widgets.HTML()

        self._read_layout()
        self.sn.value = min(max(int(sn), 0), self.sn.max)
        self.sn.observe(self._on_sn, names="value")
        self.search.observe(self._on_search, names="value")
        self.prev_button.on_click(lambda _: self.step(-1))
        self.next_button.on_click(lambda _: self.step(1))
        self.refresh_button.on_click(lambda _: self.refresh())
        self.update()
        self.show_last()
        self._arrange()

    # -- building -------------------------------------------------------------------------
    def _read_layout(self) -> None:
        """Rows and chunks of the dataset now; (re)build the slider range and chunk chooser."""
        n = len(self.ds)
        self._rows = n
        self._chunk_table = self.ds.chunks
        self._starts = self._chunk_table["start"].to_numpy(dtype=np.int64)
        top = max(n - 1, 0)
        self.sn.max = self.sn_box.max = top
        self.sn.disabled = self.sn_box.disabled = n == 0
        self.title.value = (f"<b>chunkframe.Dataset</b> <code>{html.escape(self.ds.id)}</code>: "
                            f"{n:,} rows in {len(self._starts)} chunks")
        with contextlib.suppress(ValueError):
            self.chunk.unobserve(self._on_chunk, names="value")
        if len(self._starts) <= DROPDOWN_MAX_CHUNKS:
            self.chunk = widgets.Dropdown(
                description="chunk",
                options=[(f"{int(r.chunk)} · sn {int(r.start):,}–{int(r.start + r.rows - 1):,}", i)
                         for i, r in enumerate(self._chunk_table.itertuples())],
                layout=widgets.Layout(width="22em"))
        else:
            self.chunk = widgets.BoundedIntText(description="chunk", min=0,
                                                max=len(self._starts) - 1)
        self.chunk.observe(self._on_chunk, names="value")

    def _arrange(self) -> None:
        self.children = [
            self.title,
            widgets.HBox([self.prev_button, self.sn, self.next_button, self.sn_box]),
            widgets.HBox([self.chunk, self.refresh_button]),
            widgets.HBox([self.row, self.chunk_info]),
            widgets.HTML("<b>last values</b>"), self.last,
            self.search, self.results,
        ]

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

    def _on_search(self, change: dict[str, Any]) -> None:
        self.find(change["new"])

    def step(self, delta: int) -> None:
        """Move ``delta`` rows (clamped to the dataset)."""
        self.sn.value = min(max(self.sn.value + delta, 0), self.sn.max)

    def jump(self, chunk: int) -> None:
        """Go to the first row of chunk ``chunk`` (its position in ``ds.chunks``)."""
        if 0 <= chunk < len(self._starts):
            self.sn.value = int(self._starts[chunk])

    def update(self) -> None:
        """Show row ``sn.value``, select its chunk and show that chunk's metadata."""
        sn = int(self.sn.value)
        if self._rows == 0:
            self._current = f"dataset {self.ds.id!r} has no rows"
            self.row.value = f"<p>{html.escape(self._current)}</p>"
            self.chunk_info.value = ""
            return
        i = int(np.searchsorted(self._starts, sn, side="right") - 1)
        with self._quiet():
            self.chunk.value = i
        try:
            row = self.ds.get(sn)
        except Exception as exc:  # noqa: BLE001 - a panel shows the problem, it does not die
            self._current = f"row {sn}: {type(exc).__name__}: {exc}"
            self.row.value = f"<p style='color:#b00'>{html.escape(self._current)}</p>"
        else:
            self._current = row
            self.row.value = row.to_frame(f"sn {sn:,}").to_html(max_rows=40)
        info = self._chunk_table.iloc[i]
        self.chunk_info.value = info.to_frame(f"chunk {int(info['chunk'])}").to_html()

    def show_last(self) -> None:
        """Compute and show the dataset's last values (or why there are none)."""
        try:
            table = self.ds.last()
        except Exception as exc:  # noqa: BLE001 - e.g. a dataset without a time column
            self._last_text = f"no last values: {type(exc).__name__}: {exc}"
            self.last.value = f"<p>{html.escape(self._last_text)}</p>"
            return
        self._last_text = f"{len(table)} series"
        self.last.value = table.to_html(max_rows=_MAX_TABLE_ROWS, index=False)

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
            self.results.value = f"<p style='color:#b00'>{html.escape(self._results_text)}</p>"
            return
        if found.empty:
            self._results_text = f"no tag of {self.ds.id!r} has the keyword {keyword!r}"
            self.results.value = f"<p>{html.escape(self._results_text)}</p>"
        else:
            self._results_text = f"{len(found)} tags with {keyword!r}"
            self.results.value = found.to_html(max_rows=_MAX_TABLE_ROWS, index=False)

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
        """The current row and chunk as static HTML (for viewers without widgets)."""
        return (f"<div>{self.title.value}<div style='display:flex;gap:2em'>{self.row.value}"
                f"{self.chunk_info.value}</div></div>")

    def __repr__(self) -> str:
        return self.text()

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        data: dict[str, Any] = {"text/plain": self.text(), "text/html": self.html()}
        if _in_kernel():
            view = super()._repr_mimebundle_(**kwargs) or {}
            data.update({k: v for k, v in view.items() if k != "text/plain"})
        return data


def _in_kernel() -> bool:
    """Whether we run in a Jupyter kernel (where a widget view can be displayed)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None
