"""Time-range deletes: the tombstone a delete commits, the values it hides, the last values it drops."""

from __future__ import annotations

import time as mod_time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..core.devices import device_text
from ..core.errors import DatasetNotFoundError
from ..core.model import Tombstone
from ..core.ranges import tombstone_may_touch
from ..core.times import date_range_bounds
from ..core.units import plural
from ..read.reader import apply_tombstones
from .records import field_name
from .scripts import new_token
from .series import listlike, require_time

if TYPE_CHECKING:
    from ..read.reader import Reader, Snapshot
    from ..storage.backends import Backends
    from .scripts import Scripts
    from .series import SeriesNames

__all__ = ["DeleteResult", "Deleter", "DEFAULT_DELETE_WAIT"]

DEFAULT_DELETE_WAIT = 30.0
"""Seconds a delete waits for a running ingest to release the dataset."""


@dataclass(frozen=True, eq=False)
class DeleteResult:
    """What a time-range delete did: the values it hid, per series.

    Attributes
    ----------
    dataset : str
        The dataset's id.
    series : pandas.DataFrame
        Columns ``device, measurement, rows``: how many values of each series read as
        missing because of this delete (values already missing or already deleted are not
        counted); only series that lost values, in device then measurement order.
    last_values_dropped : int
        Cached last values the delete invalidated (the next ``last()`` recomputes them).
    version : int
        The dataset version the delete made (see ``ds.versions()``).
    """

    dataset: str
    series: pd.DataFrame
    last_values_dropped: int
    version: int

    @property
    def total(self) -> int:
        """Values hidden, over all series."""
        return int(self.series["rows"].sum())

    def __repr__(self) -> str:
        return (f"<DeleteResult {self.dataset!r}: {plural(self.total, 'value')} hidden in "
                f"{plural(len(self.series), 'series', 'series')}, version {self.version}; "
                f"{plural(self.last_values_dropped, 'cached last value')} dropped>")

    def _repr_html_(self) -> str:
        return (f"<div><b>DeleteResult</b> {self.dataset!r}: {plural(self.total, 'value')} hidden, "
                f"version {self.version}{self.series.to_html(index=False)}</div>")


class Deleter:
    """Writes time-range deletes: a tombstone in the catalog and Redis under the dataset's
    lock, then IoTDB's ``deleteLastCacheByDevice`` on the last cache.

    Parameters
    ----------
    backends : Backends
        The lock, the catalog (the tombstones' record) and the Redis state.
    reader : Reader
        Snapshots and chunks, to count what a delete hides.
    scripts : Scripts
        The last cache's scripts (invalidation, rebuild).
    series : SeriesNames
        Checks the devices and measurements a delete names.
    """

    def __init__(self, backends: Backends, reader: Reader, scripts: Scripts,
                 series: SeriesNames) -> None:
        self.backends = backends
        self.reader = reader
        self.scripts = scripts
        self.series = series

    def delete(self, dataset_id: str, device: Any = None,
               columns: Sequence[str] | str | None = None, *, date_range: Any = None,
               wait: float = DEFAULT_DELETE_WAIT) -> DeleteResult:
        """Hide the values of the matching series with time in ``date_range`` (inclusive);
        :meth:`LastValues.delete <chunkframe.lastcache.LastValues.delete>` documents it."""
        snap = self.reader.snapshot(dataset_id, refresh=True)
        tcol = require_time(snap.meta, "its values cannot be deleted by time")
        if device is not None and listlike(device):
            raise TypeError(f"delete() takes one device (or None for all), got {device!r}; call "
                            "it once per device")
        measurements = self.series.select_measurements(snap, columns)
        dkeys = self.series.select_devices(snap, device)
        lo, hi = date_range_bounds(date_range, snap.schema.field(tcol), dataset_id)
        tomb = Tombstone(None if device is None else dkeys[0],
                         None if columns is None else tuple(measurements), lo, hi)

        lock = self.backends.lock(dataset_id, wait=wait)
        try:
            record = self.backends.catalog.get(dataset_id)
            if record is None:
                raise DatasetNotFoundError(f"dataset {dataset_id!r} was removed while deleting from it")
            snap = self.reader.snapshot(dataset_id, refresh=True)
            tomb = replace(tomb, rows=record.rows)  # never hides later appends
            hidden = self.hidden(snap, tomb, measurements)
            new = record.evolve(version=record.version + 1, updated=mod_time.time(),
                                tombstones=(*record.tombstones, tomb))
            lock.check()
            self.backends.catalog.set_tombstones(dataset_id, new.tombstones, new.version,
                                                 lock.fence, updated=new.updated)
            self.backends.state.set_meta(new)
            devices = dkeys if device is not None else list(self.series.devices(snap))
            fields = [field_name(d, m) for d in devices for m in measurements]
            keys = self.backends.state.keys(dataset_id)
            dropped = self.scripts.invalidate(keys, fields, lo, hi, token=new_token(),
                                              generation=record.generation,
                                              before=record.version, after=new.version)
            if dropped < 0:  # the cache was out of step already: start it afresh
                snap = self.reader.snapshot(dataset_id, refresh=True)
                self.scripts.rebuild(keys, snap, token=new_token(), lock_held=True)
                dropped = 0
        finally:
            lock.release()
        self.reader.snapshot(dataset_id, refresh=True)
        return DeleteResult(dataset_id, hidden, dropped, new.version)

    def hidden(self, snap: Snapshot, tomb: Tombstone, measurements: list[str]) -> pd.DataFrame:
        """Per series, the values ``tomb`` hides that read as present in ``snap``."""
        meta = snap.meta
        tcol, dcol = meta.time_column, meta.device_column
        assert tcol is not None
        # the rows tomb hides, found by the reader's own apply_tombstones on a probe table:
        # the time and device columns and one all-true measurement
        probe_meta = replace(meta, tombstones=(replace(tomb, columns=None),))
        keep = [tcol] if dcol is None else [tcol, dcol]
        counts: dict[tuple[str, str], int] = {}
        for i, cm in enumerate(snap.chunks):
            if not tombstone_may_touch(tomb, cm, tcol):
                continue
            table = self.reader.chunk(snap, i, cache=False).table  # earlier deletes applied
            probe = table.select(keep).append_column("\x00probe", pa.repeat(True, table.num_rows))
            rows = pc.is_null(apply_tombstones(probe, probe_meta, cm).column("\x00probe"))
            if not pc.any(rows).as_py():
                continue
            devices = None if dcol is None or tomb.device is not None else device_text(
                table.column(dcol))
            for m in measurements:
                gone = pc.and_(pc.is_valid(table.column(m)), rows)
                if devices is None:
                    key = ("" if dcol is None else tomb.device or "", m)
                    counts[key] = counts.get(key, 0) + int(pc.sum(gone).as_py() or 0)
                    continue
                for vc in pc.value_counts(pc.filter(devices, gone)).to_pylist():
                    key = (vc["values"], m)
                    counts[key] = counts.get(key, 0) + int(vc["counts"])
        counts = {k: n for k, n in counts.items() if n}
        known = self.series.devices(snap)
        order = {d: i for i, d in enumerate(known)}
        rank = {m: i for i, m in enumerate(measurements)}
        keys = sorted(counts, key=lambda k: (order.get(k[0], len(order)), rank[k[1]]))
        device: Any = pd.Series([None] * len(keys), dtype=object)  # no device column, as last()
        if dcol is not None and keys:
            device = pd.array([known.get(d, d) for d, _ in keys])
        return pd.DataFrame({
            "device": device,
            "measurement": pd.array([m for _, m in keys], dtype="str"),
            "rows": np.array([counts[k] for k in keys], dtype=np.int64)})
