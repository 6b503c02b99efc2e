"""Small HTML reprs for notebooks of the plain DataFrames ``ds.last()`` and ``cf.contexts()`` return."""

from __future__ import annotations

import html
import sys
import weakref
from typing import Any

import pandas as pd

from ..core.units import format_bytes, plural

__all__ = ["STYLE", "MAX_TABLE_ROWS", "frame_table", "mark", "repr_html", "register"]

# The frames given a repr, by id: (a weak reference to the frame, its kind, its dataset).
#
# Why a registry of the returned objects and an IPython display formatter, rather than a
# DataFrame subclass or a marker in ``df.attrs``: the frames stay plain ``pd.DataFrame``
# (``pd.testing.assert_frame_equal(df, ds.last())`` and ``type(...) is pd.DataFrame``
# hold; a subclass failed the first, and was reverted), their text repr is pandas', and
# nothing travels with their data: pyarrow and ``to_parquet`` store ``attrs``, so a marker
# there would have come back on every read of a dataset ingested from ``ds.last()``. A
# frame derived from a marked one (``head()``, a mask, a copy) shows as pandas shows it.
_MARKED: dict[int, tuple[weakref.ref[pd.DataFrame], str, str | None]] = {}

MAX_TABLE_ROWS = 20
"""Rows of a frame shown in a compact table at most (the rest is counted)."""

# Theme variables of JupyterLab (and Notebook 7), with fallbacks for other front ends: the
# panel reads well in the light and the dark themes.
STYLE = """<style>
.cf-browser {font-family: var(--jp-ui-font-family, sans-serif);
  font-size: var(--jp-ui-font-size1, 13px); color: var(--jp-ui-font-color1, #222);
  border: 1px solid var(--jp-border-color2, #ddd); border-radius: 4px; padding: 6px;
  background: var(--jp-layout-color1, transparent); max-width: 1100px; box-sizing: border-box}
.cf-browser .cf-title {font-size: var(--jp-ui-font-size2, 14px)}
.cf-browser .cf-muted {color: var(--jp-ui-font-color2, #777)}
.cf-browser .cf-error {color: var(--jp-error-color1, #b00)}
.cf-browser table.cf-table {border-collapse: collapse; border: none; font-size: inherit;
  color: inherit; margin: 0}
.cf-browser table.cf-table th, .cf-browser table.cf-table td {border: none; padding: 1px 8px;
  text-align: left; vertical-align: top; background: transparent; color: inherit}
.cf-browser table.cf-table th {font-weight: 600; color: var(--jp-ui-font-color2, #555)}
.cf-browser table.cf-table tr:nth-child(even) td,
.cf-browser table.cf-table tr:nth-child(even) th {background: var(--jp-layout-color2, #f6f6f6)}
.cf-browser table.cf-table td.cf-type {color: var(--jp-ui-font-color3, #999)}
.cf-browser .cf-row {max-height: 300px; overflow-y: auto}
.cf-browser code {font-family: var(--jp-code-font-family, monospace);
  font-size: var(--jp-code-font-size, 12px); background: transparent;
  color: var(--jp-content-font-color1, inherit)}
.cf-browser svg .cf-line {stroke: var(--jp-brand-color1, #1976d2); fill: none}
.cf-browser svg .cf-mark {stroke: var(--jp-warn-color0, #e65100)}
.cf-browser svg .cf-mark-dot {fill: var(--jp-warn-color0, #e65100)}
.cf-browser svg .cf-spike {fill: var(--jp-error-color1, #d32f2f)}
.cf-browser svg text {fill: var(--jp-ui-font-color2, #666); font-size: 10px}
.cf-browser svg .cf-frame {stroke: var(--jp-border-color2, #ddd); fill: none}
.cf-browser svg.cf-spark {width: 100%; height: auto; display: block}
.cf-browser .cf-body {display: flex; flex-wrap: wrap; gap: 8px 12px; align-items: flex-start}
.cf-browser .cf-rows {flex: 1 1 420px; min-width: 0; overflow-x: auto}
.cf-browser .cf-plot {flex: 1 1 280px; max-width: 480px; min-width: 0}
.cf-browser table.cf-table tr.cf-current td, .cf-browser table.cf-table tr.cf-current th {
  background: var(--jp-brand-color3, #bbdefb); color: var(--jp-ui-font-color0, #000)}
.cf-browser .widget-accordion, .cf-browser .lm-Widget {max-width: 100%}
</style>"""


def frame_table(df: pd.DataFrame, limit: int = MAX_TABLE_ROWS) -> str:
    """The first ``limit`` rows of ``df`` as a compact table, saying how many were left out."""
    rows = [tuple(str(v) for v in r) for r in df.head(limit).itertuples(index=False)]
    more = (f"<div class='cf-muted'>… {len(df) - limit:,} more</div>" if len(df) > limit
            else "")
    head = tuple(str(c) for c in df.columns)
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                    for r in rows)
    return (f"<table class='cf-table'><tr>{''.join(f'<th>{html.escape(h)}</th>' for h in head)}"
            f"</tr>{cells}</table>{more}")



def mark(df: pd.DataFrame, kind: str, dataset: str | None = None) -> pd.DataFrame:
    """Give ``df`` (this very object, returned) the repr of ``kind`` (``"last"`` or
    ``"contexts"``) in notebooks, and register the display formatter with IPython if it
    is running. The header is computed when the frame is shown, so one changed in place
    since describes what it holds."""
    if kind not in _HEADERS:
        raise ValueError(f"no chunkframe repr of kind {kind!r}; use one of {sorted(_HEADERS)}")
    key = id(df)
    _MARKED[key] = (weakref.ref(df, lambda _: _MARKED.pop(key, None)), kind, dataset)
    register()
    return df


def repr_html(df: pd.DataFrame) -> str | None:
    """The compact HTML of a :func:`mark`-ed frame (a header, then at most
    :data:`MAX_TABLE_ROWS` rows, every value escaped), or None for any other frame."""
    ref, kind, dataset = _MARKED.get(id(df), (None, "", None))
    if ref is None or ref() is not df:
        return None
    title, facts = _HEADERS[kind](df, dataset)
    shown = " · ".join(html.escape(f) for f in facts)
    return (f"{STYLE}<div class='cf-browser cf-repr'><div class='cf-title'>{title} "
            f"<span class='cf-muted'>{shown}</span></div>{frame_table(df)}</div>")


def _last_header(df: pd.DataFrame, dataset: str | None) -> tuple[str, list[str]]:
    title = "last values" + (f" of <code>{html.escape(dataset)}</code>" if dataset else "")
    facts = [plural(len(df), "series", "series")]
    if "device" in df.columns:
        facts.append(plural(df["device"].nunique(), "device"))
    if "time" in df.columns and len(df) and (pd.api.types.is_datetime64_any_dtype(df["time"])
                                             or pd.api.types.is_numeric_dtype(df["time"])):
        facts.append(f"newest {df['time'].max()}")
    return title, facts


def _contexts_header(df: pd.DataFrame, dataset: str | None) -> tuple[str, list[str]]:
    facts = [plural(len(df), "context")]
    if "entries" in df.columns:
        facts.append(plural(int(df["entries"].sum()), "entry", "entries"))
    if "memory_bytes" in df.columns and "in_memory" in df.columns:
        loaded = int(df["in_memory"].sum())
        facts.append(f"{loaded:,} loaded, {format_bytes(df['memory_bytes'].sum())} in memory")
    return "contexts", facts


_HEADERS = {"last": _last_header, "contexts": _contexts_header}


def register() -> None:
    """Show :func:`mark`-ed frames with :func:`repr_html` in the running IPython (once per
    shell); every other DataFrame keeps the HTML it had (pandas', or the formatter that
    was registered before)."""
    ipython = sys.modules.get("IPython")  # never imported here: only a running shell counts
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return
    formatter = shell.display_formatter.formatters["text/html"]
    if getattr(formatter.type_printers.get(pd.DataFrame), "chunkframe", False):
        return
    previous = formatter.type_printers.get(pd.DataFrame)

    def show(df: Any) -> str | None:
        own = repr_html(df)
        if own is not None:
            return own
        return previous(df) if previous is not None else df._repr_html_()

    show.chunkframe = True  # type: ignore[attr-defined]
    formatter.for_type(pd.DataFrame, show)
