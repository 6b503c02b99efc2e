"""Which chunks and rows a date range, devices or ``where=`` can match: one statistics test, one row mask."""

from __future__ import annotations

import operator
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .devices import device_key, device_mask
from .errors import Arg, Hint, InvalidArgumentError, NoTimeColumnError
from .model import ChunkMeta, DatasetMeta, Tombstone
from .times import date_range_bounds, times_ns

__all__ = ["RowFilter", "Comparison", "make_filter", "column_ranges", "time_may_match",
           "tombstone_may_touch", "row_mask", "SN_COLUMN"]

SN_COLUMN = "\x00sn"
"""A column a filtered read carries through ``Table.filter`` to learn the serial numbers kept."""

# comparisons a chunk's [min, max] can rule out, as (min, max, value) -> "some value may match";
# != is left out: NaN != v is true, and NaN is not in a float column's min/max
_MAY: dict[str, Callable[[Any, Any, Any], bool]] = {
    ">": lambda lo, hi, v: hi > v, ">=": lambda lo, hi, v: hi >= v,
    "<": lambda lo, hi, v: lo < v, "<=": lambda lo, hi, v: lo <= v,
    "==": lambda lo, hi, v: lo <= v <= hi,
}
_BUILD: dict[str, Callable[[Any, Any], Any]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq,
}
_FLIP = {">": "<", ">=": "<=", "<": ">", "<=": ">=", "==": "=="}
_KERNEL: dict[str, Callable[..., Any]] = {
    ">": pc.greater, ">=": pc.greater_equal, "<": pc.less, "<=": pc.less_equal, "==": pc.equal,
}
_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError)


class Comparison(NamedTuple):
    """One ``column op literal`` of a simple ``where``; ``value`` is the literal in the form
    :func:`column_ranges` records the column (None: the statistics cannot rule it out)."""

    column: str
    op: str
    literal: pa.Scalar
    value: Any

    def mask(self, table: pa.Table) -> Any:
        return _KERNEL[self.op](table.column(self.column), self.literal)


def column_ranges(table: pa.Table) -> dict[str, list[Any]]:
    """``[min, max]`` of every numeric and timestamp column of a chunk, over its non-null
    values (NaN aside; timestamps as int64 ns, instants in UTC), for skipping chunks a
    ``where=`` or a date range rules out. Columns without a value are left out."""
    out: dict[str, list[Any]] = {}
    for f in table.schema:
        typ, col = f.type, table.column(f.name)
        if pa.types.is_floating(typ):  # numpy: Arrow's min_max of floats costs 30x more
            values = col.to_numpy()  # nulls become NaN, which fmin/fmax pass over
            lo, hi = np.fmin.reduce(values), np.fmax.reduce(values)
            if values.size and lo == lo:  # not all NaN
                out[f.name] = [float(lo), float(hi)]
        elif pa.types.is_integer(typ) or pa.types.is_timestamp(typ):
            lo, hi = (_ns(v) if pa.types.is_timestamp(typ) else v.as_py()
                      for v in pc.min_max(col).values())
            if lo is not None:  # None: all null
                out[f.name] = [lo, hi]  # Python ints: uint64 and far times fit
    return out


_NS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
"""Nanoseconds in one unit of each timestamp resolution (times_ns's form of a bound)."""


def _ns(value: pa.Scalar) -> int | None:
    """A timestamp scalar as integer nanoseconds since the epoch (in UTC for an instant),
    a Python int: exact past 2262 too, where int64 nanoseconds end; None if null."""
    count = value.cast(pa.int64()).as_py()
    return None if count is None else count * _NS[value.type.unit]


def time_may_match(cm: ChunkMeta, lo: int | None, hi: int | None,
                   devices: Collection[str] | None, time_column: str | None) -> bool:
    """False when chunk ``cm``'s statistics prove that no row of ``devices`` (any row if
    None) has a time in ``[lo, hi]`` (inclusive, None: open); rows without a time never do.

    The time column's [min, max] (chunks ingested with column statistics) decides for all
    rows; else the per-device spans, which leave out rows without a device: they decide
    only for ``devices`` or a dataset without a device column.
    """
    if lo is None and hi is None:
        return True  # no time bound: statistics of times say nothing about devices
    if devices is None:
        whole = cm.ranges.get(time_column) if time_column is not None else None
        if whole is not None:
            spans: list[Any] = [whole]
        elif list(cm.stats) == [""]:  # no device column: the one span covers every row
            spans = [cm.stats[""]]
        else:
            return True
    else:
        if not cm.stats:
            return True
        spans = [cm.stats[d] for d in devices if d in cm.stats]
    return any((lo is None or s[1] >= lo) and (hi is None or s[0] <= hi) for s in spans)


def tombstone_may_touch(tomb: Tombstone, cm: ChunkMeta, time_column: str | None) -> bool:
    """Whether time-range delete ``tomb`` may hide any value of chunk ``cm``."""
    if tomb.rows is not None and cm.start >= tomb.rows:
        return False  # appended after the delete
    if not cm.stats and not cm.ranges:
        return True
    if tomb.device is not None and tomb.start is None and tomb.end is None and cm.stats:
        return tomb.device in cm.stats  # a delete never hides a value without a time
    devices = None if tomb.device is None else (tomb.device,)
    return time_may_match(cm, tomb.start, tomb.end, devices, time_column)


def row_mask(table: pa.Table, time_column: str | None, lo: int | None, hi: int | None,
             device_column: str | None = None, devices: Sequence[str] | None = None
             ) -> pa.ChunkedArray | pa.Array | None:
    """True for the rows of ``table`` whose time lies in ``[lo, hi]`` and whose device (as
    text) is one of ``devices``; False elsewhere, nulls included. None: nothing restricts."""
    mask = None
    if devices is not None and device_column is not None:
        mask = device_mask(table.column(device_column), devices)
    if time_column is not None and (lo is not None or hi is not None):
        t = times_ns(table.column(time_column))
        for bound, op in ((lo, pc.greater_equal), (hi, pc.less_equal)):
            if bound is not None:
                m = op(t, pa.scalar(bound, pa.int64()))
                mask = m if mask is None else pc.and_(mask, m)
    return None if mask is None else pc.fill_null(mask, False)


@dataclass(frozen=True)
class RowFilter:
    """The rows a read keeps: devices (as text), an inclusive time range in the time
    column's integers, and a ``where`` expression; :func:`make_filter` builds one.

    ``simple`` holds ``where``'s comparisons of one column with a scalar when ``where`` is
    only those joined by ``&`` (else None): the chunks' min/max can rule those out, and
    when ``direct``, rows are kept by their compute kernels alone. Otherwise ``where`` goes
    through ``Table.filter`` (Acero, whose first use in a process costs 0.2-0.5 s here).
    """

    time_column: str | None = None
    lo: int | None = None
    hi: int | None = None
    device_column: str | None = None
    devices: tuple[str, ...] | None = None
    where: Any = None  # a pyarrow.compute.Expression
    where_columns: tuple[str, ...] = ()
    simple: tuple[Comparison, ...] | None = None
    direct: bool = False

    @property
    def active(self) -> bool:
        return (self.devices is not None or self.lo is not None or self.hi is not None
                or self.where is not None)

    @property
    def columns(self) -> set[str]:
        """The columns the filter reads (to decode with the columns asked)."""
        cols = set(self.where_columns)
        if self.lo is not None or self.hi is not None:
            cols.add(self.time_column)  # type: ignore[arg-type]
        if self.devices is not None:
            cols.add(self.device_column)  # type: ignore[arg-type]
        return cols

    def may_match(self, cm: ChunkMeta) -> bool:
        """False when chunk ``cm``'s statistics prove that it holds no row to keep."""
        if not time_may_match(cm, self.lo, self.hi, self.devices, self.time_column):
            return False
        for c in self.simple or ():
            span = cm.ranges.get(c.column)
            if span is not None and c.value is not None and not _MAY[c.op](span[0], span[1], c.value):
                return False
        return True

    def apply(self, table: pa.Table, chunk: ChunkMeta | None = None,
              columns: Sequence[str] | None = None) -> pa.Table:
        """The rows of ``table`` to keep (``where`` evaluated after the deletes applied).

        ``chunk``: the chunk ``table`` comes from; when its time statistics lie inside the
        range and the table has no missing time, every row is in range and no time mask is
        computed. ``columns``: the columns to return (only those are filtered, unless
        ``where`` must see the others); None: all.
        """
        if not self.active or table.num_rows == 0:
            return table if columns is None else table.select(columns)
        lo, hi = self.lo, self.hi
        if chunk is not None and self._inside(table, chunk):
            lo = hi = None
        mask = row_mask(table, self.time_column, lo, hi, self.device_column, self.devices)
        if self.where is None and columns is not None:
            table = table.select(columns)
        kept = table
        if mask is not None:
            kept = kept.filter(mask)
        if self.where is not None and kept.num_rows:
            kept = self._where(kept)
        # no row left: Arrow's filter also empties the dictionaries (pandas' categories)
        kept = kept if kept.num_rows else table.slice(0, 0)
        return kept if columns is None or self.where is None else kept.select(columns)

    def _inside(self, table: pa.Table, chunk: ChunkMeta) -> bool:
        """Whether every row of ``table`` (of ``chunk``) has a time inside ``[lo, hi]``."""
        if (self.lo is None and self.hi is None) or self.time_column is None:
            return False
        span = chunk.ranges.get(self.time_column)
        return (span is not None and table.column(self.time_column).null_count == 0
                and (self.lo is None or span[0] >= self.lo)
                and (self.hi is None or span[1] <= self.hi))

    def _where(self, table: pa.Table) -> pa.Table:
        if self.direct and self.simple:
            try:
                return table.filter(_all(c.mask(table) for c in self.simple))
            except _ARROW_ERRORS:
                pass  # a chunk of other types than the dataset's: as Arrow binds it
        return table.filter(self.where)


def _all(masks: Any) -> Any:
    out = None
    for m in masks:
        out = m if out is None else pc.and_kleene(out, m)
    return out


def make_filter(meta: DatasetMeta, schema: pa.Schema, *, device: Any = None,
                date_range: Any = None, where: Any = None) -> RowFilter:
    """A :class:`RowFilter` for dataset ``meta``, every argument checked: devices need a
    device column, ``date_range`` a time column (parsed by
    :func:`~chunkframe.core.times.date_range_bounds`), ``where`` must be a boolean
    ``pyarrow.compute`` expression over the dataset's columns."""
    dataset_id = meta.id
    devices: tuple[str, ...] | None = None
    if device is not None:
        if meta.device_column is None:
            raise InvalidArgumentError(
                f"dataset {dataset_id!r} has no device column, so it cannot be filtered by "
                "device; re-ingest it with device_column=... or drop the device filter")
        values = device if isinstance(device, (list, tuple, set, frozenset)) else [device]
        dtype = schema.field(meta.device_column).type
        devices = tuple(device_key(v, dtype) for v in values)
    lo = hi = None
    if date_range is not None:
        if meta.time_column is None:
            raise NoTimeColumnError(
                dataset_id, "it cannot be filtered by time (date_range)",
                Hint("filter on a column with {}, or take rows by serial number with {} and {}",
                     Arg("where"), Arg("start"), Arg("stop")))
        lo, hi = date_range_bounds(date_range, schema.field(meta.time_column), dataset_id)
    where_columns: tuple[str, ...] = ()
    simple, direct = None, False
    if where is not None:
        if not isinstance(where, pc.Expression):
            raise InvalidArgumentError(
                f"where={where!r} is not a pyarrow.compute expression; give one such as "
                "pc.field('temperature') > 25 (import pyarrow.compute as pc)")
        simple = _comparisons(where, schema)
        if simple is not None:
            try:
                _all(c.mask(_null_row(schema)) for c in simple)
                direct = True
                where_columns = tuple(dict.fromkeys(c.column for c in simple))
            except _ARROW_ERRORS:
                pass  # types the kernels do not take as they are: Arrow casts (and checks)
        if not direct:
            where_columns = _check_where(where, schema, dataset_id)
    return RowFilter(meta.time_column, lo, hi, meta.device_column, devices, where,
                     where_columns, simple, direct)


def _check_where(where: Any, schema: pa.Schema, dataset_id: str) -> tuple[str, ...]:
    """The columns ``where`` reads; an InvalidArgumentError if it is not a boolean
    expression over ``schema`` (tried on a row of nulls, so nothing is fetched for a bad
    one)."""
    try:
        _null_row(schema).filter(where)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        reason = str(exc).splitlines()[0]
        if reason.startswith("No match for FieldRef"):
            reason = reason.split(" in ")[0] + ": no such column"
        raise InvalidArgumentError(
            f"where={where} cannot filter dataset {dataset_id!r}: {reason}; its columns are "
            f"{schema.names!r} (their types: ds.schema)") from None
    text = str(where)
    named = [schema.field(n) for n in schema.names if n in text]  # a superset; checked next
    try:
        _null_row(pa.schema(named)).filter(where)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return tuple(schema.names)  # names printed otherwise: decode every column
    return tuple(f.name for f in named)


def _null_row(schema: pa.Schema) -> pa.Table:
    """One row of nulls: ``where`` tried on it finds missing columns and type mismatches
    (on no rows, Arrow does not look at the types of every comparison)."""
    return pa.table([pa.nulls(1, f.type) for f in schema], schema=schema)


def _comparisons(where: pc.Expression, schema: pa.Schema) -> tuple[Comparison, ...] | None:
    """``where`` as ``(column, op, value)`` comparisons if it is only comparisons of one
    column with a scalar joined by ``&``; else None.

    Read from the expression's text and its literals (as pickling serialises them), then
    proven: the comparisons rebuilt must equal ``where``, so a misreading only loses the
    skipping, never rows. Values are in the form :func:`column_ranges` records (None:
    not comparable with it).
    """
    try:
        literals = _literals(where)
        leaves = _split_and(str(where))
    except Exception:  # noqa: BLE001 - an unexpected form: no skipping, still correct
        return None
    if leaves is None or len(leaves) != len(literals):
        return None
    names = sorted(schema.names, key=len, reverse=True)
    found: list[tuple[str, str, pa.Scalar]] = []
    rebuilt = None
    for leaf, lit in zip(leaves, literals, strict=True):
        parsed = _leaf(leaf, names)
        if parsed is None:
            return None
        name, op, flipped = parsed
        found.append((name, op, lit))
        part = (_BUILD[_FLIP[op]](pc.scalar(lit), pc.field(name)) if flipped
                else _BUILD[op](pc.field(name), pc.scalar(lit)))
        rebuilt = part if rebuilt is None else rebuilt & part
    if rebuilt is None or not rebuilt.equals(where):
        return None
    return tuple(Comparison(name, op, lit, _comparable(lit, schema.field(name).type))
                 for name, op, lit in found)


def _literals(where: pc.Expression) -> list[pa.Scalar]:
    """The scalars of ``where`` in the order they are written (one column each of the
    Arrow IPC file that pickling the expression produces)."""
    buf = where.__reduce__()[1][0]
    batch = pa.ipc.open_file(pa.py_buffer(buf)).read_all()
    return [batch.column(i)[0] for i in range(batch.num_columns)]


def _split_and(text: str) -> list[str] | None:
    """``((a and b) and c)`` → ``[a, b, c]`` (each leaf without its parentheses)."""
    if not (text.startswith("(") and text.endswith(")")):
        return None
    inner = text[1:-1]
    depth, quoted = 0, False
    for k, ch in enumerate(inner):
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in "()":
            depth += 1 if ch == "(" else -1
        elif not quoted and depth == 0 and inner.startswith(" and ", k):
            left, right = _split_and(inner[:k]), _split_and(inner[k + 5:])
            return None if left is None or right is None else left + right
    return [inner]


def _leaf(leaf: str, names: list[str]) -> tuple[str, str, bool] | None:
    """``temp > 25`` → ``("temp", ">", False)``; ``25 < temp`` → ``("temp", ">", True)``
    (True: the literal was written first)."""
    for name in names:
        if leaf.startswith(name + " "):
            op = leaf[len(name) + 1:].split(" ", 1)[0]
            if op in _MAY:
                return name, op, False
        if leaf.endswith(" " + name):
            op = leaf[:-len(name) - 1].rsplit(" ", 1)[-1]
            if op in _MAY:
                return name, _FLIP[op], True
    return None


def _comparable(lit: pa.Scalar, typ: pa.DataType) -> Any:
    """``lit`` as :func:`column_ranges` records a column of type ``typ``, or None."""
    if not lit.is_valid:
        return None
    if pa.types.is_timestamp(typ) and pa.types.is_timestamp(lit.type):
        if (typ.tz is None) != (lit.type.tz is None):
            return None  # Arrow refuses the comparison anyway
        return _ns(lit)  # as column_ranges records the column: far times are compared too
    numeric = (pa.types.is_integer, pa.types.is_floating)
    if any(f(typ) for f in numeric) and any(f(lit.type) for f in numeric):
        value = lit.as_py()
        return None if isinstance(value, float) and np.isnan(value) else value
    return None
