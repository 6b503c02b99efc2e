"""Last values: the latest (time, value) of every series, cached in Redis after Apache IoTDB's last cache.

A *series* is (device, measurement): rows are grouped by the dataset's device column (one
implicit device when there is none) and every column other than the time and device columns
is a measurement. A vector device keeps one (time, value) per component, so each
measurement of a device is its own series.

The cache follows IoTDB's ``updateLastCache(path, (t, v), highPriorityUpdate,
latestFlushedTime)``. Writes (``append``) are the high-priority updates and queries the
low-priority ones, exactly as in IoTDB (``LastQueryExecutor`` fills with
``updateCachedLast(pair, false, Long.MIN_VALUE)``):

- a null value (``None``, NaN) never updates;
- an empty entry is filled by a query result, or by a write whose time is ``>=`` the
  device's latest flushed time (the largest time of the data committed before that write),
  so late, out-of-order data never creates a stale entry;
- an existing entry is replaced by a newer time, or by an equal time from a write.

Equal times inside the data: the value written last (the larger serial number) wins, both on
a write (an equal-time write replaces) and on a query (a miss picks the row with the largest
serial number among the rows of the latest time).

The parts: :mod:`.records` (what an entry stores), :mod:`.scripts` (the rules, as Lua, and
the Redis layout), :mod:`.scan` (values computed from chunks), :mod:`.series` (which series
a call names), :mod:`.deletes` (time-range deletes); this module holds the cache itself.
Every call of :meth:`LastValues.last` checks Redis once (one script, one round trip), so two
processes never disagree; the local LRU keeps the decoded entries and the full result frame
for the current epoch.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import cachetools
import numpy as np
import pandas as pd
import pyarrow as pa
import redis

from ..core.errors import ChunkFrameError
from ..core.model import ChunkMeta, DatasetMeta
from .deletes import DEFAULT_DELETE_WAIT, Deleter, DeleteResult
from .records import NO_VALUE, SEP, decode_record, field_name, time_from_key, time_key
from .scan import Found, latest, latest_in, max_stats
from .scripts import CacheState, Scripts, new_token
from .series import SeriesNames, require_time

if TYPE_CHECKING:
    from ..core.keys import RedisKeys
    from ..read.reader import Reader, Snapshot
    from ..storage.backends import Backends

__all__ = ["LastValues"]

_NO_LAST = "it has no last values (a last value is the value of the latest time)"


@dataclass
class _Local:
    """What this process holds of one dataset's last hash at one epoch."""

    epoch: bytes
    entries: dict[str, bytes]
    decoded: dict[str, tuple[int, Any] | None] = field(default_factory=dict)
    full: tuple[tuple[int, int], pd.DataFrame, dict[tuple[str, str], int]] | None = None

    def value(self, fld: str) -> tuple[int, Any] | None:
        if fld not in self.decoded:
            self.decoded[fld] = decode_record(self.entries[fld])
        return self.decoded[fld]


class LastValues:
    """Last values of every dataset of one client; ``client.last_values``.

    Public methods take a dataset id (``Dataset.last``, ``Dataset.delete`` and
    ``Dataset.reset_last`` delegate here); :meth:`after_commit` keeps the cache current and is
    registered by the session as a commit hook of ingests. ``counters`` counts calls,
    local hits, chunks read to answer misses and chunks read back after appends.

    Parameters
    ----------
    redis_client : redis.Redis
        The Redis holding the cache (bytes responses).
    backends : Backends
        The Redis state (keys, metadata), the lock and the catalog (deletes write there).
    reader : Reader
        Snapshots and chunks of the datasets.
    local_datasets : int
        How many datasets this process keeps decoded entries of.
    """

    def __init__(self, redis_client: redis.Redis, backends: Backends, reader: Reader,
                 local_datasets: int = 256):
        self.redis = redis_client
        self.backends = backends
        self.reader = reader
        self.scripts = Scripts(redis_client)
        self.series = SeriesNames(local_datasets)
        self.deletes = Deleter(backends, reader, self.scripts, self.series)
        self._local: cachetools.LRUCache[str, _Local] = cachetools.LRUCache(local_datasets)
        self._mutex = threading.Lock()
        self.counters = {"calls": 0, "local_hits": 0, "computed": 0, "chunk_reads": 0,
                         "write_chunk_reads": 0, "bypassed": 0}

    # ------------------------------------------------------------------ public API
    def last(self, dataset_id: str, device: Any = None,
             columns: Sequence[str] | str | None = None) -> pd.DataFrame:
        """Latest non-null (time, value) per series: DataFrame ``device, measurement, time, value``.

        Like IoTDB's ``select last *``: a series with no non-null value has no row. ``device``
        is one device or a list of them (None: all), ``columns`` one measurement or a list
        (None: all). Rows come by device (as asked, else sorted), then measurement (as asked,
        else in schema order). ``time`` is a datetime column in the time column's unit and
        time zone (integers for an integer time column); ``value`` is an object column of
        Python/pandas scalars (``float``, ``int``, ``str``, ``Timestamp``, ...).
        """
        self.counters["calls"] += 1
        st, snap = self._synced(dataset_id)
        meta = snap.meta
        require_time(meta, _NO_LAST)
        measurements = self.series.select_measurements(snap, columns)
        devices = self.series.select_devices(snap, device)
        full = device is None and columns is None

        if st.stamp != snap.stamp:
            if not st.locked and self.scripts.rebuild(self._keys(dataset_id), snap,
                                                      token=new_token(), lock_held=False):
                st, snap = self._synced(dataset_id)
            if st.stamp != snap.stamp:
                # a write or delete is being applied right now: answer from the data alone
                self.counters["bypassed"] += 1
                wanted = {d: list(measurements) for d in devices}
                found = self._compute(snap, wanted)
                return self._frame(snap, [
                    (d, m, None if (hit := found.get((d, m))) is None else (hit.time, hit.value))
                    for d in devices for m in measurements])
        loc = self._local_for(dataset_id, st)
        cached_full = loc.full
        if cached_full is not None and cached_full[0] == snap.stamp:
            self.counters["local_hits"] += 1
            if full:
                return cached_full[1].copy()
            where = cached_full[2]
            take = [where[(d, m)] for d in devices for m in measurements if (d, m) in where]
            return cached_full[1].take(take).reset_index(drop=True)

        missing: dict[str, list[str]] = {}
        for d in devices:
            for m in measurements:
                if field_name(d, m) not in loc.entries:
                    missing.setdefault(d, []).append(m)
        computed: dict[tuple[str, str], Found | None] = {}
        if missing:
            self.counters["computed"] += sum(len(ms) for ms in missing.values())
            found = self._compute(snap, missing)
            records: list[tuple[str, str, bytes]] = []
            for d, ms in missing.items():
                for m in ms:
                    hit = found.get((d, m))
                    computed[(d, m)] = hit
                    rec = NO_VALUE if hit is None else hit.record
                    records.append((field_name(d, m), d, rec))
            self._apply_records(dataset_id, records, high=False, guard=st.wgen)
        else:
            self.counters["local_hits"] += 1

        rows: list[tuple[str, str, tuple[int, Any] | None]] = []
        for d in devices:
            for m in measurements:
                key = (d, m)
                if key in computed:
                    got = computed[key]
                    rows.append((d, m, None if got is None else (got.time, got.value)))
                else:
                    rows.append((d, m, loc.value(field_name(d, m))))
        frame = self._frame(snap, rows)
        if full and not missing:
            kept = [(d, m) for d, m, tv in rows if tv is not None]
            with self._mutex:
                loc.full = (snap.stamp, frame, {key: i for i, key in enumerate(kept)})
            return frame.copy()
        return frame


    def delete(self, dataset_id: str, device: Any = None,
               columns: Sequence[str] | str | None = None, *, date_range: Any = None,
               wait: float = DEFAULT_DELETE_WAIT) -> DeleteResult:
        """Delete the values of the matching series with time in ``date_range`` (inclusive).

        ``device`` one device (None: all), ``columns`` one measurement or a list (None: all),
        ``date_range=(start, end)`` as :func:`chunkframe.core.times.date_range_bounds` reads it
        (None, or a None end: open). The data reads back as missing from then on
        (serial numbers are unchanged). Like IoTDB's ``deleteLastCacheByDevice(device,
        pattern, start, end)``, the cached last values of the matching series whose time lies
        in ``[start, end]`` are dropped (the next :meth:`last` recomputes them). ``wait``:
        seconds to wait for a running ingest to release the dataset.

        Returns a :class:`~chunkframe.lastcache.deletes.DeleteResult`: the values hidden per
        series (counted from the chunks the time statistics say the delete can touch, before
        it is committed) and the number of cached last values dropped.
        """
        return self.deletes.delete(dataset_id, device, columns, date_range=date_range, wait=wait)

    def reset(self, dataset_id: str, device: Any = None,
              columns: Sequence[str] | str | None = None) -> int:
        """Drop cached last values: one series, a device's, or all (``resetLastCache``).

        Returns the number of cache entries dropped; the next :meth:`last` recomputes them.
        """
        snap = self.reader.snapshot(dataset_id)
        require_time(snap.meta, _NO_LAST)
        measurements = self.series.select_measurements(snap, columns)
        devices = self.series.select_devices(snap, device)
        fields = ([] if device is None and columns is None
                  else [field_name(d, m) for d in devices for m in measurements])
        return self.scripts.reset(self._keys(dataset_id), fields, token=new_token())

    # ------------------------------------------------------------------ recovery
    def missing(self, meta: DatasetMeta) -> str | None:
        """What Redis lacks of the last values of ``meta``'s dataset version, in words, or
        None when its last-value data describes that version (entries are then filled by
        writes and queries as usual), or while a writer holds the dataset's lock (it updates
        them). A dataset without a time column has none to lack."""
        if meta.time_column is None:
            return None
        st = self.scripts.state(self._keys(meta.id), b"")
        if st.locked:
            return None
        want = (meta.generation, meta.version)
        if st.stamp is None:
            return (f"Redis has no last-value data of it; the catalog records generation "
                    f"{want[0]} version {want[1]}")
        if st.stamp != want:
            return (f"Redis's last values describe generation {st.stamp[0]} version "
                    f"{st.stamp[1]}, the catalog generation {want[0]} version {want[1]}")
        return None

    def restore(self, dataset_id: str) -> int:
        """Rebuild a dataset's last values in Redis from its chunk files: started afresh at
        the current version (flushed times from the chunk statistics), then every series
        computed from the chunks, read through the reader (checksums checked); return the
        number of series that have a value. What ``cf.recover(apply=True)`` runs."""
        keys = self._keys(dataset_id)
        snap = self.reader.snapshot(dataset_id, refresh=True)
        require_time(snap.meta, _NO_LAST)
        self.scripts.rebuild(keys, snap, token=new_token(), lock_held=False)
        return len(self.last(dataset_id))

    # ------------------------------------------------------------------ the commit hook
    def after_commit(self, meta: DatasetMeta, op: str, new: list[ChunkMeta]) -> None:
        """Keep last values current after an ingest commit (called under the ingest lock)."""
        try:
            if op == "append":
                self._after_append(meta, new)
            elif op == "compact":  # the same values: carried over, or computed when asked
                if not self.scripts.move(self._keys(meta.id), meta, token=new_token()):
                    self.redis.hdel(self._keys(meta.id).last, "ver")
            else:  # create / overwrite: the old generation is gone, like a bulk load in IoTDB
                if not self.scripts.reinit(self._keys(meta.id), meta, meta.version, max_stats(new),
                                           token=new_token(), lock_held=True):
                    raise ChunkFrameError("the dataset changed while its commit hook ran")
        except Exception as exc:  # the data is committed; never fail the ingest for the cache
            try:
                self.redis.hdel(self.backends.state.keys(meta.id).last, "ver")  # forces a rebuild
            except redis.RedisError:
                pass
            warnings.warn(
                f"last values of dataset {meta.id!r} could not be updated after the {op} "
                f"({exc!r}); they will be recomputed from the data by the next last()",
                RuntimeWarning, stacklevel=2)

    def _after_append(self, meta: DatasetMeta, new: list[ChunkMeta]) -> None:
        keys = self.backends.state.keys(meta.id)
        token = new_token()
        prev = meta.version - 1
        if meta.time_column is None:
            self.scripts.apply(keys, [], token=token, high=True, expect_ver=prev,
                               set_ver=meta.version)
            return
        snap = self.reader.snapshot(meta.id, refresh=not self.reader.holds(meta))
        if snap.stamp != (meta.generation, meta.version):
            raise ChunkFrameError(f"dataset is at {snap.stamp}, the commit made "
                                  f"{(meta.generation, meta.version)}")
        measurements = self.series.measurements(snap)
        newmax = max_stats(new)
        devices = sorted(newmax)
        fields = [field_name(d, m) for d in devices for m in measurements]
        got = self.scripts.begin_write(keys, token=token, generation=meta.generation,
                                       version=prev, devices=devices, fields=fields)
        if got is None:  # not in step with the data before this append: rebuild, then apply
            first = min(c.chunk for c in new)
            prior = max_stats(snap.chunks[:first])
            if not self.scripts.reinit(keys, meta, prev, prior, token=new_token(), lock_held=True):
                raise ChunkFrameError("the dataset changed while its commit hook ran")
            flushed = {d: prior.get(d) for d in devices}
            current: dict[str, bytes | None] = {}
        else:
            flushed = {d: None if raw is None else time_from_key(raw)
                       for d, raw in zip(devices, got[:len(devices)], strict=True)}
            current = dict(zip(fields, got[len(devices):], strict=True))
        # the smallest time of a new value that can still change a series of the device
        floor: dict[str, float] = {}
        for d in devices:
            lows: list[float] = []
            for m in measurements:
                raw = current.get(field_name(d, m))
                if raw is None:  # empty: a write fills it only from the flushed time on
                    fl = flushed[d]
                    lows.append(-np.inf if fl is None else fl)
                elif raw == NO_VALUE:
                    lows.append(-np.inf)
                else:
                    lows.append(time_from_key(raw))
            floor[d] = min(lows) if lows else np.inf
        found, reads = latest_in(self.reader, snap, new, floor, measurements)
        self.counters["write_chunk_reads"] += reads
        records = [(field_name(d, m), d, hit.record) for (d, m), hit in found.items()]
        flushed_args = [x for d in devices for x in (d, time_key(newmax[d]))]
        done = self._apply_records(meta.id, records, high=True, guard=None, token=token,
                                   expect_ver=prev, set_ver=meta.version, flushed=flushed_args)
        if done < 0:
            raise ChunkFrameError("the cache's version moved during the append")

    # ------------------------------------------------------------------ Redis steps
    def _keys(self, ds_id: str) -> RedisKeys:
        return self.backends.state.keys(ds_id)

    def _read_state(self, ds_id: str, held: bytes | None = None) -> CacheState:
        if held is None:
            with self._mutex:
                loc = self._local.get(ds_id)
            held = loc.epoch if loc is not None else b""
        return self.scripts.state(self._keys(ds_id), held)

    def _synced(self, ds_id: str) -> tuple[CacheState, Snapshot]:
        """Redis state and a snapshot of the same dataset version (refreshed if need be)."""
        reader = self.reader
        for _ in range(5):
            st = self._read_state(ds_id)
            snap = reader.snapshot(ds_id)
            if st.meta_stamp == snap.stamp:
                return st, snap
            snap = reader.snapshot(ds_id, refresh=True)
            if st.meta_stamp == snap.stamp:
                return st, snap
        return st, snap  # still moving: callers see st.stamp != snap.stamp and bypass

    def _local_for(self, ds_id: str, st: CacheState) -> _Local:
        with self._mutex:
            loc = self._local.get(ds_id)
            if loc is not None and st.epoch is not None and loc.epoch == st.epoch:
                return loc
        if st.entries is None and st.epoch is not None:
            # another thread swapped the local copy after we read the state: fetch it all
            st = self._read_state(ds_id, held=b"")
        entries: dict[str, bytes] = {}
        raw = st.entries or []
        for k, v in zip(raw[::2], raw[1::2], strict=True):
            if SEP.encode() in k:
                entries[k.decode()] = v
        loc = _Local(st.epoch or b"", entries)
        with self._mutex:
            self._local[ds_id] = loc
        return loc

    def _apply_records(self, ds_id: str, records: list[tuple[str, str, bytes]], *, high: bool,
                       guard: bytes | None, token: str | None = None, expect_ver: int | None = None,
                       set_ver: int | None = None, flushed: list[str] | None = None) -> int:
        return self.scripts.apply(self._keys(ds_id), records, token=token or new_token(),
                                  high=high, guard=guard, expect_ver=expect_ver, set_ver=set_ver,
                                  flushed=flushed or ())

    # ------------------------------------------------------------------ computing from data
    def _compute(self, snap: Snapshot, wanted: dict[str, list[str]]) -> dict[tuple[str, str], Found]:
        """The latest non-null value of each wanted series, computed from the chunks."""
        found, reads = latest(self.reader, snap, wanted)
        self.counters["chunk_reads"] += reads
        return found

    # ------------------------------------------------------------------ result frame
    def _frame(self, snap: Snapshot, rows: list[tuple[str, str, tuple[int, Any] | None]]
               ) -> pd.DataFrame:
        devices = self.series.devices(snap)
        ttype = snap.schema.field(snap.meta.time_column).type  # type: ignore[arg-type]
        kept = [(d, m, tv) for d, m, tv in rows if tv is not None]
        times = np.fromiter((tv[0] for _, _, tv in kept), dtype=np.int64, count=len(kept))
        tcol: Any = times
        if pa.types.is_timestamp(ttype):
            tcol = pd.DatetimeIndex(times.view("datetime64[ns]"))
            if ttype.tz is not None:
                tcol = tcol.tz_localize("UTC").tz_convert(ttype.tz)
            if ttype.unit != "ns":
                tcol = tcol.as_unit(ttype.unit)
        values = np.empty(len(kept), dtype=object)
        values[:] = [tv[1] for _, _, tv in kept]
        if snap.meta.device_column is None:
            dev: Any = np.full(len(kept), None, dtype=object)
        else:
            dev = pd.array([devices.get(d, d) for d, _, _ in kept]) if kept else \
                np.empty(0, dtype=object)
        measurement: Any = (pd.array([m for _, m, _ in kept]) if kept
                            else np.empty(0, dtype=object))
        return pd.DataFrame({"device": dev, "measurement": measurement, "time": tcol,
                             "value": values}, copy=False)

