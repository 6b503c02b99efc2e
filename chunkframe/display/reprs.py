"""Notebook reprs in one style: the Dataset and the plain DataFrames chunkframe returns (last, tags, ...)."""

from __future__ import annotations

import html
import sys
import weakref
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from ..core.formats import (
    NONE,
    PANEL_STYLE,
    STYLE,
    dtype_name,
    format_column,
    format_time,
    header_html,
    table_html,
)
from ..core.units import format_bytes, plural

if TYPE_CHECKING:
    from ..core.protocols import DatasetLike

__all__ = ["STYLE", "PANEL_STYLE", "MAX_TABLE_ROWS", "HEAD_ROWS", "frame_table", "mark", "repr_html",
           "describe",
           "register", "dataset_facts", "dataset_html", "dataset_text", "KINDS"]

# The frames given a repr, by id: (a weak reference to the frame, its kind, its dataset,
# what else its header needs).
#
# Why a registry of the returned objects and an IPython display formatter, rather than a
# DataFrame subclass or a marker in ``df.attrs``: the frames stay plain ``pd.DataFrame``
# (``pd.testing.assert_frame_equal(df, ds.last())`` and ``type(...) is pd.DataFrame``
# hold; a subclass failed the first, and was reverted), their text repr is pandas', and
# nothing travels with their data: pyarrow and ``to_parquet`` store ``attrs``, so a marker
# there would have come back on every read of a dataset ingested from ``ds.last()``. A
# frame derived from a marked one (``head()``, a mask, a copy) shows as pandas shows it.
_MARKED: dict[int, tuple[weakref.ref[pd.DataFrame], str, str | None, dict[str, Any]]] = {}

MAX_TABLE_ROWS = 20
"""Rows of a frame shown in a compact table at most (the rest is counted)."""

HEAD_ROWS = 3
"""First rows shown by the Dataset's repr."""


def _cells(df: pd.DataFrame) -> list[list[str]]:
    """Every value formatted (:mod:`chunkframe.core.formats`); byte counts humanized."""
    columns = []
    for c in df.columns:
        col = df[c]
        if str(c).endswith("bytes") and pd.api.types.is_numeric_dtype(col.dtype):
            columns.append([format_bytes(None if pd.isna(v) else float(v)) for v in col])
        else:
            columns.append(format_column(col))
    return [list(r) for r in zip(*columns, strict=True)] if columns else [[] for _ in range(len(df))]


def frame_table(df: pd.DataFrame, limit: int = MAX_TABLE_ROWS, *, dtypes: bool = False,
                index: bool = False, none: tuple[str, ...] = ()) -> str:
    """The first ``limit`` rows of ``df`` as a compact themed table (values formatted,
    every cell escaped), saying how many were left out; ``dtypes`` puts the pandas dtypes
    under the names, ``index`` shows the index, and the columns ``none`` show a missing
    value as "not set" (``—``)."""
    head = df.head(limit)
    cells = _cells(head)
    for j, c in enumerate(head.columns):
        if c in none:
            for k, v in enumerate(head[c]):
                if pd.isna(v):
                    cells[k][j] = NONE
    more = (f"<div class='cf-muted'>… {plural(len(df) - limit, 'more row')}</div>"
            if len(df) > limit else "")
    numeric = [pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t)
               for t in head.dtypes]
    names = [f"{i:,}" if isinstance(i, int) else str(i) for i in head.index]
    return table_html([str(c) for c in head.columns], cells,
                      [dtype_name(t) for t in head.dtypes] if dtypes else None, numeric,
                      names if index else None) + more


def mark(df: pd.DataFrame, kind: str, dataset: str | None = None, **extra: Any) -> pd.DataFrame:
    """Give ``df`` (this very object, returned) the repr of ``kind`` (one of :data:`KINDS`)
    in notebooks, and register the display formatter with IPython if it is running. The
    header is computed when the frame is shown, so one changed in place since describes
    what it holds; ``extra`` is what it cannot tell from the frame (a slice's ``total``)."""
    if kind not in KINDS:
        raise ValueError(f"no chunkframe repr of kind {kind!r}; use one of {sorted(KINDS)}")
    key = id(df)
    _MARKED[key] = (weakref.ref(df, lambda _: _MARKED.pop(key, None)), kind, dataset, extra)
    register()
    return df


def _header(df: pd.DataFrame) -> tuple[str, tuple[str, str | None, list[str]]] | None:
    """A :func:`mark`-ed frame's kind and header (title, id, facts); None for another frame."""
    ref, kind, dataset, extra = _MARKED.get(id(df), (None, "", None, {}))
    if ref is None or ref() is not df:
        return None
    return kind, KINDS[kind](df, dataset, extra)


def repr_html(df: pd.DataFrame) -> str | None:
    """The compact HTML of a :func:`mark`-ed frame (a header, then at most
    :data:`MAX_TABLE_ROWS` rows, every value escaped), or None for any other frame."""
    marked = _header(df)
    if marked is None:
        return None
    kind, (title, ident, facts) = marked
    table = frame_table(df, dtypes=kind == "slice", index=kind == "slice",
                        none=("time_column", "device_column") if kind == "datasets" else ())
    return (f"{STYLE}<div class='cf-repr'>{header_html(title, ident, facts)}"
            f"{table}</div>")


def describe(df: pd.DataFrame) -> str | None:
    """The header of a :func:`mark`-ed frame's repr as one line of text (what a terminal
    prints above the table), or None for any other frame."""
    marked = _header(df)
    if marked is None:
        return None
    _, (title, ident, facts) = marked
    return f"{title}{f' of {ident!r}' if ident else ''}: {', '.join(facts)}"


def _newest(col: pd.Series) -> str:
    if pd.api.types.is_datetime64_any_dtype(col):
        return format_time(col.max())
    return f"{col.max():,}" if pd.api.types.is_numeric_dtype(col) else str(col.max())


def _last_header(df: pd.DataFrame, dataset: str | None, extra: dict[str, Any]
                 ) -> tuple[str, str | None, list[str]]:
    facts = [plural(len(df), "series", "series")]
    if "device" in df.columns:
        facts.append(plural(df["device"].nunique(), "device"))
    if "time" in df.columns and len(df) and (pd.api.types.is_datetime64_any_dtype(df["time"])
                                             or pd.api.types.is_numeric_dtype(df["time"])):
        facts.append(f"newest {_newest(df['time'])}")
    return "last values", dataset, facts


def _contexts_header(df: pd.DataFrame, dataset: str | None, extra: dict[str, Any]
                     ) -> tuple[str, str | None, list[str]]:
    facts = [plural(len(df), "context")]
    if "entries" in df.columns:
        facts.append(plural(int(df["entries"].sum()), "entry", "entries"))
    if "memory_bytes" in df.columns and "in_memory" in df.columns:
        loaded = int(df["in_memory"].sum())
        facts.append(f"{loaded:,} loaded, {format_bytes(df['memory_bytes'].sum())} in memory")
    return "contexts", None, facts


def _tags_header(df: pd.DataFrame, dataset: str | None, extra: dict[str, Any]
                 ) -> tuple[str, str | None, list[str]]:
    facts = [plural(len(df), "tag")]
    if "type" in df.columns and len(df):
        facts.append(", ".join(f"{t} {n:,}" for t, n in df["type"].value_counts(sort=False)
                               .sort_index().items()))
    return "tags", dataset, facts


def _datasets_header(df: pd.DataFrame, dataset: str | None, extra: dict[str, Any]
                     ) -> tuple[str, str | None, list[str]]:
    facts = [plural(len(df), "dataset")]
    if "rows" in df.columns:
        facts.append(plural(int(df["rows"].sum()), "row"))
    if "bytes" in df.columns:
        facts.append(f"{format_bytes(float(df['bytes'].sum()))} stored")
    return "datasets", None, facts


def _versions_header(df: pd.DataFrame, dataset: str | None, extra: dict[str, Any]
                     ) -> tuple[str, str | None, list[str]]:
    facts = [plural(len(df), "version")]
    if "committed_at" in df.columns and len(df):
        facts.append(f"newest {format_time(df['committed_at'].max())} UTC")
    return "versions", dataset, facts


def _slice_header(df: pd.DataFrame, dataset: str | None, extra: dict[str, Any]
                  ) -> tuple[str, str | None, list[str]]:
    total = extra.get("total")
    of = f" of {total:,}" if isinstance(total, int) else ""
    if not len(df):
        caption = f"no rows{of}"
    elif isinstance(df.index, pd.RangeIndex) and df.index.step == 1:
        caption = f"rows {df.index[0]:,}–{df.index[-1]:,}{of}"
    else:
        caption = f"{plural(len(df), 'row')}{of}"
    return "rows", dataset, [caption, plural(len(df.columns), "column")]


def _snapshots_header(df: pd.DataFrame, dataset: str | None, extra: dict[str, Any]
                      ) -> tuple[str, str | None, list[str]]:
    facts = [plural(len(df), "snapshot")]
    if "created" in df.columns and len(df):
        facts.append(f"newest {format_time(df['created'].max())} UTC")
    return "snapshots", None, facts


def _storage_header(df: pd.DataFrame, dataset: str | None, extra: dict[str, Any]
                    ) -> tuple[str, str | None, list[str]]:
    facts = [plural(len(df), "column")]
    files = extra.get("files")
    if isinstance(files, int):
        chunks = extra.get("chunks")
        facts.append(f"{format_bytes(float(files))} in "
                     f"{plural(chunks, 'chunk') if isinstance(chunks, int) else 'its files'}"
                     f" ({extra.get('compression', 'none')})")
    if "bytes" in df.columns and "plain_bytes" in df.columns and df["bytes"].sum():
        facts.append(f"{df['plain_bytes'].sum() / df['bytes'].sum():.1f}× as read")
    shared = extra.get("shared")
    if isinstance(shared, int) and isinstance(files, int):
        share = f" ({shared / files:.0%})" if files else ""
        facts.append(f"{format_bytes(float(shared))} shared with other versions{share}")
    version = extra.get("version")
    return (f"storage of version {version}" if isinstance(version, int) else "storage",
            dataset, facts)


KINDS = {"last": _last_header, "contexts": _contexts_header, "tags": _tags_header,
         "datasets": _datasets_header, "versions": _versions_header, "slice": _slice_header,
         "snapshots": _snapshots_header, "storage": _storage_header}
"""The kinds of frame :func:`mark` knows, each with the header of its repr."""


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


# -- the Dataset ------------------------------------------------------------------------------

def dataset_facts(ds: DatasetLike) -> tuple[list[str], str | None]:
    """The Dataset's counts and its time span, from its metadata and its chunks' statistics
    (no chunk is read)."""
    meta = ds.meta
    metas = ds.chunk_metas
    facts = [plural(meta.rows, "row"), plural(len(metas), "chunk")]
    if meta.device_column is not None:
        facts.append(plural(len({d for cm in metas for d in cm.stats}), "device"))
    facts.append(format_bytes(meta.nbytes))
    span = None
    spans = [v for cm in metas for v in cm.stats.values()]
    if spans and meta.time_column is not None:
        typ = ds.schema.field(meta.time_column).type
        lo, hi = min(s[0] for s in spans), max(s[1] for s in spans)
        if pa.types.is_timestamp(typ):
            zone = typ.tz
            first = pd.Timestamp(lo, unit="ns", tz="UTC")
            last = pd.Timestamp(hi, unit="ns", tz="UTC")
            if zone:
                first, last = first.tz_convert(zone), last.tz_convert(zone)
            span = f"{format_time(first)} – {format_time(last)}" + (f" {zone}" if zone else "")
        else:
            span = f"{lo:,} – {hi:,}"
    return facts, span


def _title(ds: DatasetLike) -> str:
    return "chunkframe.Dataset" + (f" at version {ds.version}" if ds.read_only else "")


def dataset_text(ds: DatasetLike) -> str:
    """The Dataset's text repr: its header and time span, from metadata only."""
    facts, span = dataset_facts(ds)
    cols = ", ".join(ds.columns[:8]) + (", ..." if len(ds.columns) > 8 else "")
    return (f"<{_title(ds)} {ds.id!r}: {facts[0]} in {', '.join(facts[1:])}"
            + (f"; {ds.meta.time_column} {span}" if span else "") + f"; columns: {cols}>")


def dataset_html(ds: DatasetLike) -> str:
    """The Dataset's HTML repr: the header, time span, time and device columns, and its
    first :data:`HEAD_ROWS` rows with their pandas dtypes (one chunk read, through the
    cache; nothing is scanned)."""
    facts, span = dataset_facts(ds)
    meta = ds.meta
    about = []
    if meta.time_column is not None:
        about.append(f"time <code>{html.escape(meta.time_column)}</code>"
                     + (f" {html.escape(span)}" if span else ""))
    if meta.device_column is not None:
        about.append(f"device <code>{html.escape(meta.device_column)}</code>")
    try:
        first = ds.slice(0, min(HEAD_ROWS, meta.rows))
        table = frame_table(first, dtypes=True, index=True)
    except Exception as exc:  # noqa: BLE001 - a repr shows the problem, it does not raise
        table = f"<div class='cf-error'>first rows: {html.escape(type(exc).__name__)}: " \
                f"{html.escape(str(exc))}</div>"
    more = (f"<div class='cf-muted'>… {plural(meta.rows - HEAD_ROWS, 'more row')}: "
            "ds.browse(), ds.slice(start, stop)</div>" if meta.rows > HEAD_ROWS else "")
    return (f"{STYLE}<div class='cf-repr'>{header_html(_title(ds), ds.id, facts)}"
            + (f"<div class='cf-muted'>{' · '.join(about)}</div>" if about else "")
            + f"{table}{more}</div>")
