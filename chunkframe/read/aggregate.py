"""Aggregations next to the chunks: each chunk reduced on its own, the partials combined exactly."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.tseries.frequencies import to_offset

from ..core.cluster import dask_client
from ..core.errors import Arg, Hint, InvalidArgumentError, NoTimeColumnError
from ..core.times import times_ns
from .partitions import reduce_on_dask
from .plan import ReadPlan, plan_scan

if TYPE_CHECKING:
    from ..core.config import Settings
    from .executor import Executor
    from .reader import Snapshot

__all__ = ["AGGREGATIONS", "aggregate", "resample"]

AGGREGATIONS = ("sum", "mean", "min", "max", "count", "first", "last")
"""The reductions ``aggregate`` and ``resample`` run next to the chunks (pandas' names)."""

# the partial states each reduction keeps per group and chunk; combined by the second entry
_STATES: dict[str, tuple[str, ...]] = {
    "sum": ("sum",), "mean": ("sum", "count"), "min": ("min",), "max": ("max",),
    "count": ("count",), "first": ("first",), "last": ("last",),
}
_COMBINE = {"sum": "sum", "count": "sum", "min": "min", "max": "max", "first": "first",
            "last": "last"}
_SUM = pc.ScalarAggregateOptions(min_count=0)  # pandas: the sum of no value is 0
_COUNT = pc.CountOptions("only_valid")
_BUCKET = "\x00bucket"
_DAY_NS = 86_400 * 10**9


@dataclasses.dataclass(frozen=True)
class _Spec:
    """What to compute: group keys (columns), and (column, reduction) pairs in output order."""

    keys: list[str]
    pairs: list[tuple[str, str]]
    nested: bool  # columns as (column, reduction) pairs, as pandas gives for lists

    @property
    def states(self) -> list[tuple[str, str]]:
        out: dict[tuple[str, str], None] = {}
        for col, how in self.pairs:
            for state in _STATES[how]:
                out[(col, state)] = None
        return list(out)

    @property
    def values(self) -> list[str]:
        return list(dict.fromkeys(c for c, _ in self.pairs))


def _spec(snap: Snapshot, keys: list[str], agg: Any, default: list[str]) -> _Spec:
    """Check ``agg`` (a reduction, a list of them, or ``{column: reduction(s)}``)."""
    names = snap.schema.names
    if isinstance(agg, Mapping):
        items = list(agg.items())
    else:
        items = [(c, agg) for c in default]
    pairs: list[tuple[str, str]] = []
    nested = False
    for col, hows in items:
        if col not in names:
            raise KeyError(f"dataset {snap.meta.id!r} has no column {col!r} to aggregate; its "
                           f"columns are {names!r}")
        if col in keys:
            raise InvalidArgumentError(f"column {col!r} is a group key; aggregate other "
                                       "columns, or leave it out of by=")
        if isinstance(hows, str):
            hows = [hows]
        else:
            nested = True
            hows = list(hows)
        for how in hows:
            if how not in _STATES:
                raise InvalidArgumentError(
                    f"unknown aggregation {how!r} for column {col!r}; use one of "
                    f"{', '.join(AGGREGATIONS)}")
            typ = snap.schema.field(col).type
            if how in ("sum", "mean") and not (pa.types.is_integer(typ) or
                                               pa.types.is_floating(typ) or
                                               pa.types.is_boolean(typ)):
                raise InvalidArgumentError(
                    f"cannot take the {how} of column {col!r} of type {typ}; {how} needs "
                    "numbers (min, max, count, first and last take any column)")
            pairs.append((col, how))
    if not pairs:
        raise InvalidArgumentError("nothing to aggregate: name the columns, e.g. "
                                   "agg={'temperature': 'mean'}")
    return _Spec(keys, pairs, nested)


def _reduce(table: pa.Table, spec: _Spec) -> pa.Table:
    """One chunk's partial states per group: ordered (no threads), so first/last are by
    serial number; groups with a missing key dropped, as pandas' ``dropna=True``."""
    dictionaries: dict[str, pa.Array] = {}
    for key in spec.keys:
        col = table.column(key)
        if pa.types.is_dictionary(col.type):  # grouped by code; the values put back after
            array = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
            dictionaries[key] = array.dictionary
            table = table.set_column(table.schema.get_field_index(key), key, array.indices)
        if col.null_count:
            table = table.filter(pc.is_valid(table.column(key)))
    aggs: list[Any] = []
    for col, state in spec.states:
        opts = _SUM if state == "sum" else _COUNT if state == "count" else None
        aggs.append((col, state, opts) if opts is not None else (col, state))
    out = table.group_by(spec.keys, use_threads=False).aggregate(aggs)
    out = out.select([*spec.keys, *(f"{c}_{s}" for c, s in spec.states)])
    for key, dictionary in dictionaries.items():  # chunks' dictionaries may differ: values
        k = out.schema.get_field_index(key)
        out = out.set_column(k, key, dictionary.take(out.column(key)))
    return out


def _combine(parts: list[pa.Table], spec: _Spec) -> pa.Table:
    """The partials of every chunk, in chunk order, combined into one row per group."""
    table = pa.concat_tables(parts, promote_options="permissive")
    aggs: list[Any] = []
    for col, state in spec.states:
        how = _COMBINE[state]
        name = f"{col}_{state}"
        aggs.append((name, how, _SUM) if how == "sum" else (name, how))
    out = table.group_by(spec.keys, use_threads=False).aggregate(aggs)
    names = [f"{c}_{s}" for c, s in spec.states]
    out = out.select([*spec.keys, *(f"{n}_{_COMBINE[s]}" for n, (_, s) in
                                    zip(names, spec.states, strict=True))])
    return out.rename_columns([*spec.keys, *names])


def _values(table: pa.Table, spec: _Spec, dtypes: pd.Series) -> dict[tuple[str, str], Any]:
    """Each (column, reduction) of the combined states, as pandas gives it."""
    out: dict[tuple[str, str], Any] = {}
    for col, how in spec.pairs:
        if how == "mean":
            total = table.column(f"{col}_sum").to_numpy().astype(np.float64)
            count = table.column(f"{col}_count").to_numpy()
            with np.errstate(invalid="ignore", divide="ignore"):
                out[(col, how)] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
            continue
        series = table.column(f"{col}_{how}").to_pandas()
        dtype = dtypes[col]
        if how == "count":
            series = series.astype(np.int64)
        elif how == "sum" and pd.api.types.is_bool_dtype(dtype):
            series = series.astype(np.int64)
        elif how in ("min", "max", "first", "last") and series.dtype != dtype:
            if isinstance(dtype, pd.api.extensions.ExtensionDtype) or not series.isna().any():
                try:
                    series = series.astype(dtype)
                except (TypeError, ValueError):
                    pass
        out[(col, how)] = series.to_numpy() if not isinstance(
            series.dtype, pd.api.extensions.ExtensionDtype) else series.array
    return out


def _frame(values: dict[tuple[str, str], Any], spec: _Spec, index: pd.Index) -> pd.DataFrame:
    if spec.nested:
        columns: pd.Index = pd.MultiIndex.from_tuples(list(values))
    else:
        columns = pd.Index([c for c, _ in values])
    df = pd.DataFrame(dict(enumerate(values.values())), index=index, copy=False)
    df.columns = columns
    return df


def _key_values(table: pa.Table, key: str, dtype: Any) -> Any:
    values = table.column(key).to_pandas()
    try:
        return values.astype(dtype)
    except (TypeError, ValueError):
        return values


def _on_dask(engine: Any, settings: Settings | None, dataset_id: str, doing: str
             ) -> Settings | None:
    """The settings Dask workers connect with for ``engine="dask"`` (None: this process);
    checks ``engine`` and that a ``distributed.Client`` is running before anything is read."""
    if engine is None:
        return None
    if engine != "dask" or settings is None:
        raise InvalidArgumentError(
            f"engine={engine!r} is not one of None (this process) or 'dask' (the active Dask "
            f"cluster) for {doing} dataset {dataset_id!r}")
    dask_client(dataset_id, doing)
    return settings


def _run(executor: Executor, plan: ReadPlan, work: Any, dask: Settings | None = None,
         scan: dict[str, Any] | None = None) -> list[Any]:
    """``work(table)`` of each chunk the plan keeps, in the executor's pool (on Dask's
    workers when ``dask`` is given: ``scan``, the plan's ``plan_scan`` arguments), in chunk
    order; of the plan's empty table when every chunk was ruled out (the shapes of no rows)."""
    if dask is not None:
        executor.reader.skipped += len(plan.skipped)
        parts = reduce_on_dask(dask, plan, scan or {}, work)
    else:
        parts = list(executor.reduce(plan, work))
    if not parts:
        parts = [work(executor.empty(plan.snap).select(plan.columns or plan.snap.schema.names))]
    return parts


# -- groupby ------------------------------------------------------------------------------
def aggregate(executor: Executor, snap: Snapshot, by: str | Sequence[str], agg: Any, *,
              date_range: Any = None, where: Any = None, engine: Any = None,
              settings: Settings | None = None) -> pd.DataFrame:
    """``df.groupby(by).agg(agg)`` of the rows ``date_range`` and ``where`` keep (see
    :meth:`chunkframe.dataset.Dataset.aggregate`); ``engine="dask"``: each chunk reduced on
    the active Dask cluster's workers, which connect with ``settings``."""
    dask = _on_dask(engine, settings, snap.meta.id, "aggregating")
    keys = [by] if isinstance(by, str) else list(by)
    if not keys:
        raise InvalidArgumentError("by= names no column; give one or more columns to group by")
    snap.columns_of(keys)  # KeyError naming the columns
    default = [c for c in snap.schema.names if c not in keys]
    spec = _spec(snap, keys, agg, default)
    scan = {"columns": [*keys, *spec.values], "date_range": date_range, "where": where}
    plan = plan_scan(snap, **scan)
    dtypes = executor.empty_frame(snap, [*keys, *spec.values]).dtypes
    dtypes = dtypes[~dtypes.index.duplicated()]
    if _dense_ok(snap, spec, dtypes) and len(keys) <= 2:  # more: the grid could overflow
        parts = _run(executor, plan, functools.partial(_dense_chunk, keys=keys, ordinals=None,
                                                       spec=spec), dask, scan)
        levels, codes, values = _dense_combine(parts, spec, [dtypes[k] for k in keys], False)
        if len(keys) == 1:
            index = pd.Index(levels[0].take(codes[0]), name=keys[0])  # type: ignore[union-attr]
        else:
            index = pd.MultiIndex(levels=levels, codes=codes, names=keys,
                                  verify_integrity=False)
        return _frame(values, spec, index)
    table = _combine(_run(executor, plan, functools.partial(_reduce, spec=spec), dask, scan),
                     spec)
    arrays = [_key_values(table, k, dtypes[k]) for k in keys]
    index = (pd.Index(arrays[0], name=keys[0]) if len(keys) == 1
             else pd.MultiIndex.from_arrays(arrays, names=keys))
    return _frame(_values(table, spec, dtypes), spec, index).sort_index()


# -- resample -----------------------------------------------------------------------------
_ORIGINS = ("epoch", "start", "start_day", "end", "end_day")
_END_TYPES = ("ME", "YE", "QE", "BME", "BYE", "BQE", "W")  # pandas' right-closed rules


@dataclasses.dataclass(frozen=True)
class _Rule:
    """A checked ``resample`` rule with pandas' ``closed``, ``label``, ``origin``, ``offset``.

    ``tick``: fixed-length buckets cut every ``step`` nanoseconds from an origin (pandas'
    ``Tick`` rules, and days on naive times); else calendar buckets, whose edges pandas
    lays with ``date_range`` from the first and last day.
    """

    offset: Any
    closed: str
    label: str
    origin: str | int  # one of _ORIGINS, or a time (ns since the epoch, UTC)
    shift: int  # offset=, ns
    tick: bool
    step: int  # tick only


def _rule(rule: Any, tz: str | None, *, closed: Any = None, label: Any = None,
          origin: Any = "start_day", offset: Any = None) -> _Rule:
    """Check the arguments as ``pandas.DataFrame.resample`` does, with errors naming the fix."""
    try:
        freq = to_offset(rule)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(
            f"rule={rule!r} is not a pandas frequency ({exc}); give one such as '15min', "
            "'h', 'D', 'W' or 'ME'") from None
    for name, value in (("closed", closed), ("label", label)):
        if value not in (None, "left", "right"):
            raise InvalidArgumentError(f"{name}={value!r} is not a side of a bucket; give "
                                       f"{name}='left' or {name}='right' (or leave it out "
                                       "for pandas' default)")
    tick = isinstance(freq, pd.offsets.Tick) or (isinstance(freq, pd.offsets.Day) and tz is None)
    at: str | int
    if isinstance(origin, str) and origin in _ORIGINS:
        at = origin
    else:
        try:
            stamp = pd.Timestamp(origin)
        except (TypeError, ValueError):
            stamp = pd.NaT
        if stamp is pd.NaT or not isinstance(stamp, pd.Timestamp):
            raise InvalidArgumentError(
                f"origin={origin!r} is neither one of {', '.join(map(repr, _ORIGINS))} nor a "
                "time; give one of those, or a time such as '2026-01-01 00:00'") from None
        if (stamp.tz is None) != (tz is None):
            zone = f"the time column's zone, e.g. pd.Timestamp(..., tz={tz!r})" if tz else \
                "a time without a zone, as the time column's"
            raise InvalidArgumentError(
                f"origin={origin!r} {'has no' if stamp.tz is None else 'has a'} time zone but "
                f"the time column's times {'are in ' + repr(tz) if tz else 'have none'}; give "
                f"{zone}")
        at = int(stamp.as_unit("ns")._value)
    try:
        shift = pd.Timedelta(offset) if offset is not None else None
    except (TypeError, ValueError):
        shift = None
        raise InvalidArgumentError(
            f"offset={offset!r} is not a duration; give one such as '15min' or "
            "pd.Timedelta(minutes=15)") from None
    if shift is pd.NaT:
        raise InvalidArgumentError(f"offset={offset!r} is not a duration; give one such as "
                                   "'15min' or pd.Timedelta(minutes=15)")
    if not tick and (shift is not None or at != "start_day"):
        raise InvalidArgumentError(
            f"origin= and offset= move fixed-length buckets (rules such as '15min', 'h', and "
            f"'D' on times without a zone); rule={rule!r} lays calendar buckets, which they "
            "do not move (pandas ignores them): leave them out, or use a fixed rule such as "
            "'24h'")
    code = freq.rule_code
    right = code in _END_TYPES or code.split("-")[0] in _END_TYPES or (
        at in ("end", "end_day"))
    side = "right" if right else "left"
    step = 0
    if tick:
        step = int(pd.Timedelta(hours=24 * freq.n).value if isinstance(freq, pd.offsets.Day)
                   else freq.nanos)
        if step <= 0:
            raise InvalidArgumentError(f"rule={rule!r} is not a positive duration; give one "
                                       "such as '15min' or 'h'")
    return _Rule(freq, closed or side, label or side, at,
                 int(shift.as_unit("ns")._value) if shift is not None else 0, tick, step)


def _stamp(ns: int, tz: str | None, unit: str) -> pd.Timestamp:
    stamp = pd.Timestamp(ns, unit="ns", tz="UTC" if tz else None)
    return (stamp.tz_convert(tz) if tz else stamp).as_unit(unit)


class _Buckets:
    """Which bucket a time falls in, exactly as pandas' ``resample`` bins the times from
    ``first`` to ``last`` (ns): fixed rules cut the time line every ``step`` from an origin
    (pandas' ``_adjust_dates_anchored``); calendar rules search edges laid as pandas lays
    them (``date_range`` from the first day to the last, month and week ends closed at the
    end of their day). Both depend on the first (and last) time: built from a guess (the
    statistics), checked against the times seen, and built again if it was wrong. Buckets
    are numbered in order; :meth:`key` gives their labels.
    """

    def __init__(self, rule: _Rule, tz: str | None, unit: str, first: int, last: int):
        self.rule, self.tz, self.first, self.last = rule, tz, first, last
        self.left = rule.closed == "left"
        self.tick = rule.tick
        if self.tick:
            self.step = rule.step
            self.origin = self._origin(first, last, unit) + rule.shift
            return
        lo, hi = _stamp(first, tz, unit).normalize(), _stamp(last, tz, unit).normalize()
        freq = rule.offset
        start = pd.Timestamp(freq.rollback(lo)) if self.left else pd.Timestamp(lo - freq)
        binner = pd.date_range(start=start, end=pd.Timestamp(hi + freq), freq=freq, tz=tz,
                               ambiguous=True, nonexistent="shift_forward", unit=unit)
        code = freq.rule_code
        if code in _END_TYPES or code.split("-")[0] in _END_TYPES:
            if not self.left:  # month (week...) ends close at the end of their day
                wall = binner.tz_localize(None)
                wall = wall + pd.Timedelta(days=1) - pd.Timedelta(1, unit=unit)
                edges = wall.tz_localize(tz).as_unit("ns").asi8
            else:
                edges = binner.as_unit("ns").asi8
            if len(edges) > 1 and edges[-2] > last:
                edges, binner = edges[:-1], binner[:-1]
        else:
            edges = binner.as_unit("ns").asi8
        labels = binner.as_unit("ns").asi8
        if rule.label == "right":
            labels = labels[1:]
        self.edges = np.asarray(edges, dtype=np.int64)
        self.labels = np.asarray(labels[:max(len(edges) - 1, 0)], dtype=np.int64)

    def _origin(self, first: int, last: int, unit: str) -> int:
        """pandas' origin of fixed buckets (before ``offset``), ns."""
        at, tz = self.rule.origin, self.tz
        if not isinstance(at, str):
            return at
        if at == "epoch":  # midnight of 1970-01-01 in the column's zone, as pandas
            return int(pd.Timestamp("1970-01-01", tz=tz).as_unit("ns")._value)
        if at == "start":
            return first
        if at == "start_day":
            return int(_stamp(first, tz, unit).normalize().as_unit("ns")._value)
        if at == "end":
            return last
        return int(_stamp(last, tz, unit).ceil("D").as_unit("ns")._value)  # end_day

    def _ordinal(self, ns: Any) -> Any:
        """The fixed bucket of ``ns``: [edge, edge + step) closed left, (edge, ...] right."""
        if self.left:
            return np.floor_divide(ns - self.origin, self.step)
        return -np.floor_divide(self.origin - ns, self.step) - 1

    def same_as(self, other: _Buckets) -> bool:
        """Whether ``other`` (built from the true first and last times) bins like this."""
        if self.tick:
            return (other.origin - self.origin) % self.step == 0
        edges, n = other.edges, len(other.edges)
        if n == 0:
            return True
        start = int(np.searchsorted(self.edges, edges[0]))
        if start + n > len(self.edges) or not (self.edges[start:start + n] == edges).all():
            return False
        return bool((self.labels[start:start + len(other.labels)] == other.labels).all())

    def ordinals(self, table: pa.Table, time: str) -> tuple[pa.Table, np.ndarray, np.ndarray]:
        """``table``'s rows with a time, each one's bucket as a consecutive integer, and its
        time (ns)."""
        t = table.column(time)
        if t.null_count:
            table = table.filter(pc.is_valid(t))
            t = table.column(time)
        raw = _ns(t)
        side = "left" if self.left else "right"
        if self.tick:
            if len(raw) > 1 and (raw[1:] >= raw[:-1]).all():  # in order: cut, don't divide
                first, last = int(self._ordinal(raw[0])), int(self._ordinal(raw[-1]))
                edges = self.origin + np.arange(first + 1, last + 1, dtype=np.int64) * self.step
                return table, _cut(raw, edges, side, first, last), raw
            return table, self._ordinal(raw), raw
        count = max(len(self.labels), 1)
        if len(raw) > 1 and (raw[1:] >= raw[:-1]).all():
            ordinals = _cut(raw, self.edges[1:-1], side, 0, len(self.edges) - 2)
        else:
            ordinals = np.searchsorted(self.edges, raw, side="right" if self.left else "left") - 1
        return table, np.clip(ordinals, 0, count - 1), raw

    def key(self, ordinals: np.ndarray) -> np.ndarray:
        """The buckets' labels as integer nanoseconds (in UTC for zoned times)."""
        if self.tick:
            return self.origin + (ordinals + (self.rule.label == "right")) * self.step
        return self.labels[ordinals]

    def every(self) -> np.ndarray:
        """Every bucket's key from the first time's to the last's, as pandas lists them."""
        if self.tick:
            first, last = int(self._ordinal(self.first)), int(self._ordinal(self.last))
            return self.key(np.arange(first, last + 1, dtype=np.int64))
        return self.labels


def _cut(raw: np.ndarray, edges: np.ndarray, side: str, first: int, last: int) -> np.ndarray:
    """The bucket of each of the ordered times ``raw``: ``first`` up to ``last``, a new one
    past each of ``edges`` (the times between buckets)."""
    cuts = np.searchsorted(raw, edges, side=side)  # type: ignore[call-overload]
    sizes = np.diff(np.concatenate([[0], cuts, [len(raw)]]))
    return np.repeat(np.arange(first, last + 1, dtype=np.int64), sizes)


def _ns(t: Any) -> np.ndarray:
    ns = times_ns(t)
    return (ns if isinstance(ns, pa.Array) else ns.combine_chunks()).to_numpy()


def _guess_span(plan: ReadPlan, time: str) -> tuple[int, int]:
    """The first and last time the plan likely keeps, from the chunks' statistics."""
    spans: list[Any] = []
    for i in plan.chunks:  # the time column's range, else the per-device spans
        cm = plan.snap.chunks[i]
        whole = cm.ranges.get(time)
        spans.extend([whole] if whole else cm.stats.values())
    lo = min((s[0] for s in spans), default=0)
    hi = max((s[1] for s in spans), default=lo)
    flt = plan.filter
    if flt.lo is not None:
        lo, hi = max(lo, flt.lo), max(hi, flt.lo)
    if flt.hi is not None:
        lo, hi = min(lo, flt.hi), min(hi, flt.hi)
    return lo, hi


def resample(executor: Executor, snap: Snapshot, rule: Any, columns: Any = None,
             agg: Any = "mean", *, device: Any = None, date_range: Any = None,
             closed: Any = None, label: Any = None, origin: Any = "start_day",
             offset: Any = None, engine: Any = None, settings: Settings | None = None
             ) -> pd.DataFrame:
    """One row per time bucket (and device): see :meth:`chunkframe.dataset.Dataset.resample`;
    ``engine="dask"``: each chunk reduced on the active Dask cluster's workers, which
    connect with ``settings``."""
    meta = snap.meta
    dask = _on_dask(engine, settings, meta.id, "resampling")
    time = meta.time_column
    if time is None:
        raise NoTimeColumnError(meta.id, "it cannot be resampled",
                                Hint("group by a column with {}", Arg("by")))
    ttype = snap.schema.field(time).type
    if not pa.types.is_timestamp(ttype):
        raise InvalidArgumentError(
            f"dataset {meta.id!r}'s time column {time!r} holds {ttype}, not datetimes, so it "
            "cannot be resampled; group by it with ds.aggregate(by=...) instead")
    tz = ttype.tz
    checked = _rule(rule, tz, closed=closed, label=label, origin=origin, offset=offset)
    dev = meta.device_column
    keys = [k for k in (dev, _BUCKET) if k is not None]
    if columns is None:
        cols = [f.name for f in snap.schema if f.name not in (time, dev) and (
            pa.types.is_integer(f.type) or pa.types.is_floating(f.type))]
    else:
        cols = snap.columns_of(columns) or []
    spec = _spec(snap, keys, agg, [] if isinstance(agg, Mapping) else cols)
    if time in spec.values:
        raise InvalidArgumentError(f"column {time!r} is the time column resample buckets by; "
                                   "aggregate other columns")
    scan = {"columns": [*([dev] if dev else []), time, *spec.values],
            "date_range": date_range, "device": device}
    plan = plan_scan(snap, **scan)
    if device is not None:
        plan = _skip_other_devices(plan)
    unit = ttype.unit

    dtypes = executor.empty_frame(snap, [*([dev] if dev else []), *spec.values]).dtypes
    dtypes = dtypes[~dtypes.index.duplicated()]
    span = _guess_span(plan, time)
    buckets_seen = (span[1] - span[0]) // (checked.step if checked.tick else _DAY_NS) + 2
    # numpy's grid of (device, bucket) codes must fit int64 with room to spare
    devices_seen = len({d for i in plan.chunks for d in plan.snap.chunks[i].stats})
    dense = _dense_ok(snap, spec, dtypes) and buckets_seen * max(devices_seen, 1) < 2**52

    def run(buckets: _Buckets) -> tuple[_Result, int | None, int | None]:
        def work(table: pa.Table) -> tuple[Any, int | None, int | None]:
            table, ordinals, raw = buckets.ordinals(table, time)
            bounds = (int(raw.min()), int(raw.max())) if len(raw) else (None, None)
            if dense:
                return (_dense_chunk(table, [dev] if dev else [], ordinals, spec), *bounds)
            table = table.drop_columns([time]).append_column(_BUCKET, pa.array(ordinals))
            return (_reduce(table, spec), *bounds)

        parts = _run(executor, plan, work, dask, scan)
        firsts = [p[1] for p in parts if p[1] is not None]
        lasts = [p[2] for p in parts if p[2] is not None]
        partials = [p[0] for p in parts]
        if dense:
            levels, codes, values = _dense_combine(partials, spec,
                                                   [dtypes[dev]] if dev else [], True)
            keys = buckets.key(codes[-1])
            result = _Result(levels[0], keys, values, True, (
                codes[0], codes[-1] - int(codes[-1].min()) if len(keys) else codes[-1],
                buckets.key(np.arange(int(codes[-1].min()), int(codes[-1].max()) + 1)
                            if len(keys) else _NO_KEY)) if dev else None)
        else:
            table = _combine(partials, spec)
            result = _Result(_key_values(table, dev, dtypes[dev]) if dev else None,
                             buckets.key(table.column(_BUCKET).to_numpy()),
                             _values(table, spec, dtypes), False)
        return result, min(firsts, default=None), max(lasts, default=None)

    buckets = _Buckets(checked, tz, unit, *span)
    result, first, last = run(buckets)
    every: np.ndarray | None = None
    if first is not None and last is not None:
        true = _Buckets(checked, tz, unit, first, last)
        if not buckets.same_as(true):  # the statistics misled the guess: bin again
            result, first, last = run(true)
        every = true.every()
    label_dtype = pd.DatetimeTZDtype(unit, tz) if tz is not None else np.dtype(f"M8[{unit}]")
    keys_ns = result.keys
    labels = _labels(keys_ns, tz, unit) if result.codes is None or dev is None else None
    if dev is not None and result.codes is not None:  # levels and codes: nothing to factorize
        device_codes, bucket_codes, level_keys = result.codes
        index: pd.Index = pd.MultiIndex(
            levels=[result.devices, _labels(level_keys, tz, unit)],
            codes=[device_codes, bucket_codes], names=[dev, time], verify_integrity=False)
    elif dev is not None:
        index = pd.MultiIndex.from_arrays([result.devices, labels], names=[dev, time])
    else:
        index = pd.DatetimeIndex(labels, name=time).astype(label_dtype)
    out = _frame(result.values, spec, index)
    if not result.sorted:
        out = out.sort_index()
    if dev is None and every is not None and len(every):
        out = _fill_empty(out, spec, pd.DatetimeIndex(_labels(every, tz, unit),
                                                      name=time).astype(label_dtype))
    elif dev is not None and not len(out):
        out.index = pd.MultiIndex.from_arrays(
            [pd.Index([], dtype=dtypes[dev]), pd.DatetimeIndex([], dtype=label_dtype)],
            names=[dev, time])
    return out


@dataclasses.dataclass(frozen=True)
class _Result:
    """Combined groups: their devices (None: no device column), bucket keys, values."""

    devices: Any  # per group; in the dense path, the level (codes in ``codes``)
    keys: np.ndarray
    values: dict[tuple[str, str], Any]
    sorted: bool
    codes: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # device, bucket, buckets


def _codes(column: Any) -> tuple[np.ndarray, Any]:
    """Each row's value as a code into the chunk's distinct values (-1: missing), and those."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(column)
    codes = column.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    return codes, tuple(column.dictionary.to_pylist())


def _dense_ok(snap: Snapshot, spec: _Spec, dtypes: pd.Series) -> bool:
    """Whether numpy reduces every (column, reduction): numpy ints and floats only (the
    others, and pandas' nullable dtypes, go through Arrow)."""
    return all(isinstance(dtypes[c], np.dtype) and dtypes[c].kind in "if"
               and (pa.types.is_integer(snap.schema.field(c).type)
                    or pa.types.is_floating(snap.schema.field(c).type))
               for c, _ in spec.pairs)


_NO_KEY = np.empty(0, dtype=np.int64)


def _dense_chunk(table: pa.Table, keys: list[str], ordinals: np.ndarray | None, spec: _Spec
                 ) -> tuple[list[Any], list[np.ndarray], dict[tuple[str, str], np.ndarray]]:
    """One chunk reduced in numpy: ``bincount`` for sums and counts, ``ufunc.at`` for
    minima and maxima, the first and last rows with a value by position. Groups are the
    key columns' dictionary codes (and the buckets' ordinals), counted straight into
    their grid when it is small. Returns each key's dictionary (None for the ordinals),
    each group's code per key, and the states (a count per column always)."""
    dictionaries: list[Any] = []
    codes: list[np.ndarray] = []
    for key in keys:
        c, d = _codes(table.column(key))
        codes.append(c)
        dictionaries.append(d)
    if ordinals is not None:
        codes.append(ordinals)
        dictionaries.append(None)
    n = table.num_rows
    keep = np.ones(n, dtype=bool)
    for c, d in zip(codes, dictionaries, strict=True):
        if d is not None:
            keep &= c >= 0
    if not keep.all():
        table = table.filter(pa.array(keep))
        codes = [c[keep] for c in codes]
        n = table.num_rows
    if n == 0:
        return dictionaries, [_NO_KEY for _ in codes], {
            (c, st): np.empty(0) for c in spec.values for st in _dense_states(spec, c)}
    lows = [0 if d is not None else int(c.min()) for c, d in zip(codes, dictionaries,
                                                                 strict=True)]
    widths = [max(len(d), 1) if d is not None else int(c.max()) - lo + 1
              for c, d, lo in zip(codes, dictionaries, lows, strict=True)]
    composite, space = _composite(codes, lows, widths)
    uniq, group, size = _grid(composite, space)
    states = _reduce_dense(table, spec, group, size, uniq if size == space else None)
    return dictionaries, _split(uniq, lows, widths, space), states


def _composite(codes: list[np.ndarray], lows: list[int], widths: list[int]
               ) -> tuple[np.ndarray, int]:
    """One integer per row from several keys (mixed radix, the first key most significant)."""
    composite = np.zeros(len(codes[0]), dtype=np.int64)
    space = 1
    for c, lo, width in zip(codes, lows, widths, strict=True):
        composite = composite * width + (c - lo)
        space *= width
    return composite, space


def _split(composite: np.ndarray, lows: list[int], widths: list[int], space: int
           ) -> list[np.ndarray]:
    """The keys :func:`_composite` made ``composite`` of (``space``: its number of values)."""
    out = []
    stride = space
    for lo, width in zip(lows, widths, strict=True):
        stride //= width
        out.append((composite // stride) % width + lo)
    return out


def _grid(composite: np.ndarray, space: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(distinct keys ascending, each row's group, the number of groups reduced into): the
    key itself when the grid is small, else its rank among the distinct keys."""
    if space <= 4 * len(composite) + 65_536:
        present = np.bincount(composite, minlength=space)
        return np.flatnonzero(present), composite, space
    uniq, group = np.unique(composite, return_inverse=True)
    return uniq, group, len(uniq)


def _dense_states(spec: _Spec, col: str) -> list[str]:
    hows = {how for c, how in spec.pairs if c == col}
    states = {"count"}
    for how in hows:
        states.update(_STATES[how])
    return sorted(states)


def _reduce_dense(table: pa.Table, spec: _Spec, group: np.ndarray, size: int,
                  uniq: np.ndarray | None) -> dict[tuple[str, str], np.ndarray]:
    """The states of each value column per group (``uniq``: the groups kept of a grid)."""
    def picked(values: np.ndarray) -> np.ndarray:
        return values if uniq is None else values[uniq]

    rows: np.ndarray | None = None
    states: dict[tuple[str, str], np.ndarray] = {}
    for col in spec.values:
        x = table.column(col).to_numpy()
        missing = np.isnan(x) if x.dtype.kind == "f" else np.zeros(len(x), dtype=bool)
        whole = not missing.any()
        g, v = (group, x) if whole else (group[~missing], x[~missing])
        for state in _dense_states(spec, col):
            out: np.ndarray
            if state == "count":
                if whole and rows is None:
                    rows = np.bincount(group, minlength=size)
                out = rows if whole and rows is not None else np.bincount(g, minlength=size)
            elif state == "sum":
                if v.dtype.kind == "f":  # (bincount of no row gives integers)
                    out = np.bincount(g, v, minlength=size).astype(np.float64, copy=False)
                else:  # exact, as pandas' int64 sums
                    out = np.zeros(size, dtype=np.int64)
                    np.add.at(out, g, v)
            elif state in ("min", "max"):
                out = _extreme(state, g, v, size)
            else:  # first, last: the value at the first (last) position with one
                where = np.flatnonzero(~missing) if not whole else np.arange(len(x))
                pos = _extreme("min" if state == "first" else "max", g, where, size)
                out = x[np.clip(pos, 0, max(len(x) - 1, 0))] if len(x) else pos
            states[(col, state)] = picked(out)
    return states


def _extreme(which: str, g: np.ndarray, v: np.ndarray, size: int) -> np.ndarray:
    """Minimum (maximum) of ``v`` per group; groups without a value hold the identity."""
    if v.dtype.kind == "f":
        fill = np.inf if which == "min" else -np.inf
        out = np.full(size, fill, dtype=np.float64)
    else:
        info = np.iinfo(np.int64)
        out = np.full(size, info.max if which == "min" else info.min, dtype=np.int64)
    (np.minimum if which == "min" else np.maximum).at(out, g, v)
    return out


def _levels(parts: list[Any], k: int, dtype: Any) -> tuple[pd.Index, list[np.ndarray]]:
    """Key ``k``'s values over every chunk, in pandas' order (categories, else sorted), and
    each chunk's codes mapped onto them."""
    seen = [p[0][k] for p in parts]
    if isinstance(dtype, pd.CategoricalDtype):
        level = pd.CategoricalIndex(pd.Categorical.from_codes(
            np.arange(len(dtype.categories)), dtype=dtype))
        values: pd.Index = pd.Index(dtype.categories)
    else:
        distinct = {v for d in set(seen) for v in d}
        values = pd.Index(sorted(distinct), dtype=dtype if distinct else object)
        level = values.astype(dtype) if dtype is not None else values
    found: dict[tuple[Any, ...], np.ndarray] = {}  # chunks mostly share a dictionary
    mapped = []
    for p, d in zip(parts, seen, strict=True):
        if d not in found:
            found[d] = values.get_indexer(list(d))
        mapped.append(found[d][p[1][k]] if len(p[1][k]) else _NO_KEY)
    return level, mapped


def _dense_combine(parts: list[Any], spec: _Spec, key_dtypes: list[Any],
                   ordinal: bool) -> tuple[list[pd.Index | None], list[np.ndarray],
                                           dict[tuple[str, str], Any]]:
    """The chunks' dense partials combined per group: each key's level (None for the
    ordinals) and each group's code in it, in pandas' order, and the values."""
    levels: list[pd.Index | None] = []
    codes: list[np.ndarray] = []
    for k, dtype in enumerate(key_dtypes):
        level, mapped = _levels(parts, k, dtype)
        levels.append(level)
        codes.append(np.concatenate([_NO_KEY, *mapped]))
    if ordinal:
        levels.append(None)
        codes.append(np.concatenate([_NO_KEY, *(p[1][-1] for p in parts)]))
    lows = [0 if lv is not None else (int(c.min()) if len(c) else 0)
            for c, lv in zip(codes, levels, strict=True)]
    widths = [max(len(lv), 1) if lv is not None else (int(c.max()) - lo + 1 if len(c) else 1)
              for c, lv, lo in zip(codes, levels, lows, strict=True)]
    composite, space = _composite(codes, lows, widths)
    uniq, group, size = _grid(composite, space)

    def picked(values: np.ndarray) -> np.ndarray:
        return values if size != space else values[uniq]

    def joined(col: str, state: str) -> np.ndarray:
        arrays = [p[2][(col, state)] for p in parts]
        return np.concatenate(arrays) if arrays else np.empty(0)

    values: dict[tuple[str, str], Any] = {}
    for col in spec.values:
        count = np.bincount(group, joined(col, "count"), minlength=size)
        has = picked(count) > 0
        for c, how in spec.pairs:
            if c != col:
                continue
            if how == "count":
                values[(c, how)] = picked(count).astype(np.int64)
            elif how in ("sum", "mean"):
                part = joined(col, "sum")
                if part.dtype.kind == "f":
                    total = np.bincount(group, part, minlength=size).astype(np.float64,
                                                                            copy=False)
                else:
                    total = np.zeros(size, dtype=np.int64)
                    np.add.at(total, group, part)
                total = picked(total)
                if how == "sum":
                    values[(c, how)] = total
                else:
                    with np.errstate(invalid="ignore", divide="ignore"):
                        values[(c, how)] = np.where(has, total / np.maximum(picked(count), 1),
                                                    np.nan)
            elif how in ("min", "max"):
                part = joined(col, how)
                valid = joined(col, "count") > 0
                out = picked(_extreme(how, group[valid], part[valid], size))
                values[(c, how)] = out if has.all() else np.where(has, out, np.nan)
            else:  # first, last: of the first (last) chunk's partial with a value
                part = joined(col, how)
                filled = np.flatnonzero(joined(col, "count") > 0)
                pos = picked(_extreme("min" if how == "first" else "max", group[filled],
                                      filled, size))
                out = part[np.clip(pos, 0, max(len(part) - 1, 0))] if len(part) else pos
                values[(c, how)] = out if has.all() else np.where(has, out, np.nan)
    return levels, _split(uniq, lows, widths, space), values


def _skip_other_devices(plan: ReadPlan) -> ReadPlan:
    """Also skip chunks whose statistics show no timed row of the devices asked (rows
    without a time never land in a bucket)."""
    devices = plan.filter.devices or ()
    steps: list[tuple[int, int, int]] = []
    skipped = list(plan.skipped)
    for step in plan.steps:
        stats = plan.snap.chunks[step[0]].stats
        (skipped if stats and not any(d in stats for d in devices) else steps).append(step)
    return dataclasses.replace(plan, steps=steps, skipped=skipped)


def _labels(ns: np.ndarray, tz: str | None, unit: str) -> pd.DatetimeIndex:
    index = pd.DatetimeIndex(np.asarray(ns, dtype=np.int64).view("M8[ns]"))
    if tz is not None:
        index = index.tz_localize("UTC").tz_convert(tz)
    return index.as_unit(unit)


def _fill_empty(out: pd.DataFrame, spec: _Spec, every: pd.DatetimeIndex) -> pd.DataFrame:
    """Every bucket from the first to the last, as pandas gives them: empty ones count 0,
    sum 0, and are missing for the other reductions."""
    filled = out if len(every) == len(out) else out.reindex(every)
    for k, (_, how) in enumerate(spec.pairs):
        if how in ("count", "sum") and filled is not out:
            filled.isetitem(k, filled.iloc[:, k].fillna(0).astype(out.iloc[:, k].dtype))
    return filled
