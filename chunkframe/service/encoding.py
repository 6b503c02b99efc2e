"""Wire formats of the service: JSON values, typed JSON for object columns, Arrow IPC streams."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import io
import json
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ..core.jsonvalues import jsonable

__all__ = [
    "JSON", "ARROW", "TYPED_JSON", "jsonable", "dumps", "row_json", "split_frame",
    "records", "tag", "untag", "frame_to_arrow", "frame_from_arrow", "arrow_stream",
    "frames_as_batches", "stream_error", "NO_FRAMES", "STREAM_ERROR",
]

JSON = "application/json"
ARROW = "application/vnd.apache.arrow.stream"
TYPED_JSON = "application/vnd.chunkframe+json"
"""JSON whose non-JSON values (timestamps, NA, NaN, ...) carry their type (see :func:`tag`)."""

_orjson: Any
try:
    import orjson as _orjson
except ImportError:  # optional: the standard library's json does the same, slower
    _orjson = None

_TAGGED = b"chunkframe.tagged"    # schema metadata: positions of columns sent as typed JSON
_COLUMNS = b"chunkframe.columns"  # schema metadata: the real column names, when repeated
STREAM_ERROR = b"chunkframe.error"
"""Custom metadata of the batch that ends a stream whose read failed: the JSON error body."""
NO_FRAMES = b"chunkframe.no_frames"
"""Schema metadata of a stream of frames that has none: its one empty batch only carries the
categories of the empty frame a read returns."""


# -- plain JSON (for people and other languages): core.jsonvalues.jsonable ----------------------

def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON; ``obj`` must already be :func:`jsonable` (no NaN is let through).

    orjson (in the service extra) when installed: 4x faster on a row; the same JSON.
    """
    if _orjson is not None:
        try:
            return bytes(_orjson.dumps(obj))
        except TypeError:  # e.g. an int over 64 bits: the standard library takes it
            pass
    return json.dumps(obj, allow_nan=False, ensure_ascii=False, separators=(",", ":")).encode()


def _same(v: Any) -> Any:
    return v


def _finite(v: Any) -> float | None:
    return float(v) if math.isfinite(v) else None


_JSON_OF: dict[type, Callable[[Any], Any]] = {
    str: _same, int: _same, bool: _same, type(None): _same, float: _finite,
    np.float64: _finite, np.float32: _finite, np.bool_: bool,
    pd.Timestamp: pd.Timestamp.isoformat, pd.Timedelta: pd.Timedelta.isoformat,
    type(pd.NaT): lambda v: None, type(pd.NA): lambda v: None,
    **{t: int for t in (np.int64, np.int32, np.int16, np.int8, np.uint64, np.uint32, np.uint16,
                        np.uint8)},
}
"""The JSON value of the scalars rows are mostly made of, by exact type (a dict lookup, not
:func:`jsonable`'s chain of checks: a third of a 19-column row's cost)."""


def row_json(values: dict[str, Any]) -> bytes:
    """``{column: value}`` (``ds.row(sn)``) as JSON text: ints stay ints, NaN/NA/NaT are
    null, times ISO 8601 with their offset (the values :func:`jsonable` makes).

    >>> row_json({"n": np.int64(3), "x": np.float64("nan"), "s": "a", "na": pd.NA})
    b'{"n":3,"x":null,"s":"a","na":null}'
    """
    out = {}
    for k, v in values.items():
        convert = _JSON_OF.get(type(v))
        out[k] = convert(v) if convert is not None else jsonable(v)
    return dumps(out)


def _column_values(s: pd.Series) -> list[Any]:
    """A column's values as JSON values, converted column-wise where that is exact."""
    kind = s.dtype.kind
    if kind in "iub" and not isinstance(s.dtype, pd.api.extensions.ExtensionDtype):
        return s.tolist()  # numpy ints/bools: Python ints/bools, no nulls possible
    return [jsonable(v) for v in s.tolist()]


def split_frame(df: pd.DataFrame) -> dict[str, Any]:
    """``df`` in pandas' ``orient="split"`` form: ``{"columns", "index", "data"}``, plus the
    index name (``"sn"``) as ``"index_name"``."""
    cols = [_column_values(df.iloc[:, j]) for j in range(df.shape[1])]
    return {
        "columns": [jsonable(c) for c in df.columns],
        "index": _column_values(df.index.to_series()),
        "index_name": jsonable(df.index.name),
        "data": [list(r) for r in zip(*cols, strict=True)] if cols else [[] for _ in df.index],
    }


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """``df`` as a list of ``{column: value}`` (the index left out)."""
    names = [str(c) for c in df.columns]
    cols = [_column_values(df.iloc[:, j]) for j in range(df.shape[1])]
    return [dict(zip(names, r, strict=True)) for r in zip(*cols, strict=True)]


# -- typed JSON (for the remote client: values come back as the same Python objects) ------------

def tag(v: Any) -> Any:
    """``v`` as JSON that :func:`untag` turns back into an equal object of the same type.

    JSON numbers, strings, booleans and null stand for themselves; anything else is an
    object with one ``$``-key naming its type (``{"$ts": ..., "tz": ...}`` for a Timestamp).
    """
    t = type(v)
    if v is None or t is str or t is int or t is bool:
        return v
    if t is float:
        return v if math.isfinite(v) else {"$float": repr(v)}
    if v is pd.NA:
        return {"$na": 1}
    if v is pd.NaT:
        return {"$nat": 1}
    if isinstance(v, pd.Timestamp):
        return {"$ts": v.isoformat(), "unit": v.unit, "tz": None if v.tz is None else str(v.tz)}
    if isinstance(v, pd.Timedelta):
        return {"$td": v.value, "unit": v.unit}
    if isinstance(v, np.generic) and v.dtype.kind in "biuf":
        return {"$np": v.dtype.name, "v": tag(v.item())}
    if isinstance(v, dt.datetime):
        return {"$datetime": v.isoformat()}
    if isinstance(v, dt.date):
        return {"$date": v.isoformat()}
    if isinstance(v, dict):
        out = {str(k): tag(x) for k, x in v.items()}
        return {"$map": out} if any(k.startswith("$") for k in out) else out
    if isinstance(v, (list, tuple)):
        return [tag(x) for x in v]
    if isinstance(v, decimal.Decimal):
        return {"$decimal": str(v)}
    if isinstance(v, bytes):
        return {"$bytes": base64.b64encode(v).decode("ascii")}
    for base in (bool, int, float, str):  # subclasses such as enums: their plain value
        if isinstance(v, base):
            return tag(base(v))
    return jsonable(v)


def untag(v: Any) -> Any:
    """The inverse of :func:`tag`."""
    if isinstance(v, list):
        return [untag(x) for x in v]
    if not isinstance(v, dict):
        return v
    if "$ts" in v:
        ts = pd.Timestamp(v["$ts"])
        ts = ts.tz_convert(v["tz"]) if v.get("tz") else ts
        return ts.as_unit(v["unit"]) if v.get("unit") else ts
    if "$td" in v:
        td = pd.Timedelta(v["$td"], unit="ns")
        return td.as_unit(v["unit"]) if v.get("unit") else td
    if "$na" in v:
        return pd.NA
    if "$nat" in v:
        return pd.NaT
    if "$float" in v:
        return float(v["$float"])
    if "$np" in v:
        return np.dtype(v["$np"]).type(untag(v["v"]))
    if "$datetime" in v:
        return dt.datetime.fromisoformat(v["$datetime"])
    if "$date" in v:
        return dt.date.fromisoformat(v["$date"])
    if "$decimal" in v:
        return decimal.Decimal(v["$decimal"])
    if "$bytes" in v:
        return base64.b64decode(v["$bytes"])
    if "$map" in v:
        return {k: untag(x) for k, x in v["$map"].items()}
    return {k: untag(x) for k, x in v.items()}


# -- Arrow IPC streams (frames with their exact dtypes) -----------------------------------------

def _needs_tags(s: pd.Series) -> bool:
    """Whether an object column must travel as typed JSON: Arrow cannot type it (mixed
    values), or would bring it back as another dtype (text would come back as ``str``)."""
    if s.dtype != np.dtype(object):
        return False
    try:
        typ = pa.array(s, from_pandas=True).type
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return True
    return not (pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_struct(typ)
                or pa.types.is_map(typ) or pa.types.is_binary(typ))


def frame_to_arrow(df: pd.DataFrame) -> bytes:
    """``df`` as an Arrow IPC stream whose pandas metadata restores its dtypes and index.

    Object columns of scalars (``ds.last()``'s mixed ``value`` column, context values) travel
    as typed JSON text (:func:`tag`); repeated column names travel in the metadata.
    """
    df = df.copy(deep=False)
    df.attrs = {}
    extra: dict[bytes, bytes] = {}
    names = list(df.columns)
    if len(set(names)) != len(names) or not all(isinstance(c, str) for c in names):
        extra[_COLUMNS] = json.dumps(names).encode()
        df.columns = [f"c{j}" for j in range(len(names))]
    tagged = [j for j in range(df.shape[1]) if _needs_tags(df.iloc[:, j])]
    for j in tagged:
        df.isetitem(j, pd.Series([json.dumps(tag(v), allow_nan=False) for v in df.iloc[:, j]],
                                 index=df.index, dtype=object))
    if tagged:
        extra[_TAGGED] = json.dumps(tagged).encode()
    # nthreads=1: for a small frame, the thread pool pyarrow would start costs 8x the work
    table = pa.Table.from_pandas(df, preserve_index=None, nthreads=1)
    if extra:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **extra})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        if table.num_rows:
            writer.write_table(table)
        else:  # one empty batch: it carries the dictionaries (the categories of a categorical)
            writer.write_batch(pa.RecordBatch.from_arrays(
                [c.chunk(0) if c.num_chunks else pa.array([], c.type) for c in table.columns],
                schema=table.schema))
    return sink.getvalue().to_pybytes()


def frame_from_arrow(data: bytes) -> pd.DataFrame:
    """The DataFrame :func:`frame_to_arrow` sent."""
    table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    meta = table.schema.metadata or {}
    df = table.to_pandas()
    for j in json.loads(meta.get(_TAGGED, b"[]")):
        df.isetitem(j, pd.Series([untag(json.loads(v)) for v in df.iloc[:, j]],
                                 index=df.index, dtype=object))
    if _COLUMNS in meta:
        df.columns = json.loads(meta[_COLUMNS])
    return df


def arrow_stream(schema: pa.Schema, batches: Iterable[pa.RecordBatch],
                 on_error: Callable[[Exception], dict[str, Any]]) -> Iterator[bytes]:
    """An Arrow IPC stream of ``batches``, yielded as bytes batch by batch (a response body
    that never holds more than one batch).

    A read that fails once the answer has begun (a chunk failing its checksum) cannot change
    the status any more: the stream then ends with an empty batch whose custom metadata
    :data:`STREAM_ERROR` holds ``on_error(exc)``, the JSON error body, which the remote client
    raises as the same exception (see :func:`stream_error`).
    """
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, schema) as writer:
        try:
            for batch in batches:
                writer.write_batch(batch)
                yield sink.getvalue()
                sink.seek(0)
                sink.truncate()
        except Exception as exc:  # noqa: BLE001 - sent to the client, which raises it
            empty = pa.RecordBatch.from_arrays([pa.array([], f.type) for f in schema],
                                               schema=schema)
            writer.write_batch(empty, custom_metadata={STREAM_ERROR: json.dumps(on_error(exc))})
    yield sink.getvalue()  # the error batch, if any, and the end-of-stream marker


def stream_error(metadata: pa.KeyValueMetadata | None) -> dict[str, Any] | None:
    """The JSON error body a batch's custom metadata carries (:func:`arrow_stream`), or None."""
    if metadata is None or STREAM_ERROR not in metadata:
        return None
    return dict(json.loads(metadata[STREAM_ERROR]))


def frames_as_batches(frames: Iterator[pd.DataFrame], empty: Callable[[], pd.DataFrame]
                      ) -> tuple[pa.RecordBatch, pa.Schema, Iterator[pa.RecordBatch]]:
    """Frames indexed by serial number (``ds.iter_chunks()``) as record batches whose ``sn``
    column holds the index: the first batch (read now, so that bad arguments raise before a
    response starts; with no frame, an empty batch of ``empty()`` marked :data:`NO_FRAMES`),
    the schema, and the rest, one per frame."""
    first = next(frames, None)
    if first is None:  # one empty batch carries the categories; the schema says it is no frame
        frame = empty()
        frame.index = pd.Index([], dtype="int64", name="sn")
        carrier = pa.RecordBatch.from_pandas(frame, preserve_index=True)
        carrier = carrier.replace_schema_metadata(
            {**(carrier.schema.metadata or {}), NO_FRAMES: b"1"})
        return carrier, carrier.schema, iter(())
    head = pa.RecordBatch.from_pandas(first, preserve_index=True)
    schema = head.schema

    def rest() -> Iterator[pa.RecordBatch]:
        for frame in frames:
            yield pa.RecordBatch.from_pandas(frame, schema=schema, preserve_index=True)

    return head, schema, rest()
