"""One display style for every repr: values at pandas precision, times to the second, one header form."""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["format_value", "format_column", "format_time", "dtype_name", "header_html",
           "table_html", "STYLE", "PANEL_STYLE", "MISSING", "NONE"]

MISSING = "<NA>"
"""How a missing value shows (pandas' text for ``pd.NA``)."""

NONE = "—"
"""How a setting that is not set shows (no device column, say)."""


def format_time(value: Any) -> str:
    """A timestamp to the second, without its zone (the column's dtype names the zone).

    >>> format_time(pd.Timestamp("2026-01-05 13:20:07.123456", tz="UTC"))
    '2026-01-05 13:20:07'
    >>> format_time(pd.NaT)
    '<NA>'
    """
    if value is None or value is pd.NaT:
        return MISSING
    ts = pd.Timestamp(value)
    if pd.isna(ts):
        return MISSING
    return ts.strftime("%Y-%m-%d %H:%M:%S")


def format_value(value: Any, precision: int | None = None) -> str:
    """One value as chunkframe's reprs show it: floats at pandas' ``display.precision``
    (decimals) with thousands separators, integers with separators, timestamps to the
    second, missing values as ``<NA>``.

    >>> format_value(65.07802633094698), format_value(1234567), format_value(None)
    ('65.078026', '1,234,567', '<NA>')
    >>> format_value(12345.5, precision=1), format_value(True), format_value("a b")
    ('12,345.5', 'True', 'a b')
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return MISSING
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        v = float(value)
        if math.isnan(v):
            return MISSING
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        digits = pd.get_option("display.precision") if precision is None else precision
        if v != 0 and (abs(v) >= 1e15 or abs(v) < 10.0 ** -digits):
            return f"{v:.{digits}e}"
        return f"{v:,.{digits}f}"
    if isinstance(value, pd.Timestamp | np.datetime64):
        return format_time(value)
    if isinstance(value, pd.Timedelta | np.timedelta64):
        td = pd.Timedelta(value)
        return MISSING if pd.isna(td) else str(td.floor("s"))
    return str(value)


def format_column(values: pd.Series) -> list[str]:
    """Every value of ``values`` formatted with :func:`format_value` (times to the second)."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        ok = values.notna().to_numpy()
        text = values.dt.strftime("%Y-%m-%d %H:%M:%S").to_numpy(dtype=object, na_value=MISSING)
        return [str(t) if k else MISSING for t, k in zip(text, ok, strict=True)]
    return [format_value(v) for v in values.astype(object).tolist()]


def dtype_name(dtype: Any) -> str:
    """The pandas dtype as pandas prints it (``float64``, ``Int64``, ``str``,
    ``datetime64[us, UTC]``), never the Arrow type.

    >>> dtype_name(pd.Series([1.0]).dtype), dtype_name(pd.DatetimeTZDtype("us", "UTC"))
    ('float64', 'datetime64[us, UTC]')
    """
    return str(dtype)


# A repr's table is a plain HTML table, which JupyterLab (and nbviewer) style as they style
# pandas' (theme colours, zebra rows, numbers to the right); STYLE only adds the header
# line and the dtypes, in the theme's variables with fallbacks, scoped to ``.cf-repr``.
STYLE = ("<style>.cf-repr .cf-title{font-size:var(--jp-ui-font-size2,14px);margin:2px 0 4px}"
         ".cf-repr .cf-muted,.cf-repr .cf-dtype{color:var(--jp-ui-font-color2,#777);"
         "font-weight:normal}.cf-repr .cf-dtype{font-size:.85em}"
         ".cf-repr .cf-error{color:var(--jp-error-color1,#b00)}"
         ".cf-repr td,.cf-repr th{white-space:nowrap}.cf-repr{max-width:100%;overflow-x:auto}"
         "</style>")

# The browser panel's own look, in JupyterLab's theme variables (light and dark themes)
# with fallbacks for other front ends.
_PANEL_CSS = """<style>
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
  text-align: left; vertical-align: top; background: transparent; color: inherit;
  white-space: nowrap}
.cf-browser table.cf-table th {font-weight: 600; color: var(--jp-ui-font-color2, #555)}
.cf-browser table.cf-table tr:nth-child(even) td,
.cf-browser table.cf-table tr:nth-child(even) th {background: var(--jp-layout-color2, #f6f6f6)}
.cf-browser table.cf-table td.cf-num {text-align: right; font-variant-numeric: tabular-nums}
.cf-browser .cf-dtype {font-weight: normal; font-size: 0.85em; color: var(--jp-ui-font-color2, #777)}
.cf-browser .cf-frame-wrap {max-width: 100%; overflow-x: auto}
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
PANEL_STYLE = " ".join(line.strip() for line in _PANEL_CSS.splitlines())  # one line, smaller


_NUM = " class='cf-num'"


def header_html(title: str, ident: str | None, facts: list[str]) -> str:
    """The one header form of every repr: what it is, its id, its counts.

    >>> header_html("chunkframe.Dataset", "a<b", ["1 row", "1 chunk"]).split("</b> ")[1]
    "<code>a&lt;b</code> <span class='cf-muted'>1 row · 1 chunk</span></div>"
    """
    name = f" <code>{html.escape(ident)}</code>" if ident is not None else ""
    shown = html.escape(" · ".join(facts))
    return (f"<div class='cf-title'><b>{html.escape(title)}</b>{name} "
            f"<span class='cf-muted'>{shown}</span></div>")


def table_html(columns: list[str], cells: list[list[str]], dtypes: list[str] | None = None,
               numeric: list[bool] | None = None, index: list[str] | None = None) -> str:
    """Formatted cells as a compact themed table (every cell escaped): column names, their
    dtypes under them, numbers right-aligned, an optional index column."""
    def head(i: int, c: str) -> str:
        dtype = f"<div class='cf-dtype'>{html.escape(dtypes[i])}</div>" if dtypes else ""
        return f"<th>{html.escape(c)}{dtype}</th>"

    right = numeric or [False] * len(columns)
    top = ("<th></th>" if index is not None else "") + "".join(
        head(i, c) for i, c in enumerate(columns))
    rows = "".join(
        "<tr>" + (f"<th>{html.escape(index[k])}</th>" if index is not None else "")
        + "".join(f"<td{_NUM if right[j] else ''}>{html.escape(v)}</td>"
                  for j, v in enumerate(row)) + "</tr>"
        for k, row in enumerate(cells))
    return (f"<div class='cf-frame-wrap'><table class='cf-table'><tr>{top}</tr>{rows}"
            "</table></div>")
