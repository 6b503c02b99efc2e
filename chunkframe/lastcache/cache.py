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

Redis layout, per dataset (all keys in the dataset's hash tag, so one Lua script touches them
together and Redis Cluster keeps them in one slot):

``<prefix>:{<id>}:last`` (hash)
    ``<device>\\x1f<measurement>`` → record: a 20-digit time key (``time + 2**63`` zero-padded,
    so Lua compares int64 nanoseconds exactly, without doubles) followed by msgpack
    ``[time, type code, value]``; or ``~``: "this series has no value" (a negative entry that
    saves re-scanning all-null series; a write with a value always replaces it). Reserved
    fields without ``\\x1f``: ``gen``/``ver`` (the dataset generation and version the cache
    is known to describe), ``epoch`` (a token that changes on every change of an entry: local
    caches compare it) and ``wgen`` (changes whenever data changes: a query computed from
    older data fills only if ``wgen`` did not move meanwhile).
``<prefix>:{<id>}:flushed`` (hash)
    ``<device>`` → time key of the largest time committed for that device.

Every call of :meth:`LastValues.last` checks Redis once (one script, one round trip), so two
processes never disagree; the local LRU keeps the decoded entries and the full result frame
for the current epoch. Values are msgpack, never pickle.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import difflib
import heapq
import threading
import time as mod_time
import uuid
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import cachetools
import msgpack
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import redis

from ..core.devices import device_key, device_text, typed_device
from ..core.errors import Arg, ChunkFrameError, DatasetNotFoundError, Hint, SchemaMismatchError
from ..core.model import ChunkMeta, DatasetMeta, Tombstone
from ..core.times import date_range_bounds, times_ns
from ..read.reader import apply_tombstones

if TYPE_CHECKING:
    from ..read.reader import Reader, Snapshot
    from ..storage.backends import Backends

__all__ = [
    "LastValues", "DeleteResult", "last_of_series", "time_key", "encode_record", "decode_record",
    "SEP", "NO_VALUE",
]

SEP = "\x1f"
"""Separates device and measurement in a field of the last hash."""
NO_VALUE = b"~"
"""Record of a series known to have no non-null value."""
_OFFSET = 1 << 63
_KEY_LEN = 20
_RESERVED = (b"gen", b"ver", b"epoch", b"wgen")
DEFAULT_DELETE_WAIT = 30.0
"""Seconds :meth:`LastValues.delete` waits for a running ingest to release the dataset."""


# ---------------------------------------------------------------------------- records
def time_key(t: int) -> str:
    """``t`` (int64 ns, or the raw integer of an integer time column) as 20 sortable digits."""
    return f"{int(t) + _OFFSET:020d}"


def time_from_key(key: str | bytes) -> int:
    return int(key[:_KEY_LEN]) - _OFFSET


def _value_payload(col: pa.ChunkedArray | pa.Array, row: int) -> tuple[str, Any]:
    """(type code, msgpack-able payload) of one non-null value of an Arrow column."""
    s = col[row]
    t = col.type
    if pa.types.is_dictionary(t):
        s, t = s.value, t.value_type
    if pa.types.is_boolean(t):
        return "b", bool(s.as_py())
    if pa.types.is_integer(t):
        return "i", int(s.as_py())
    if pa.types.is_floating(t):
        return "f", float(s.as_py())
    if pa.types.is_string(t) or pa.types.is_large_string(t) or str(t) == "string_view":
        return "s", s.as_py()
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return "y", bytes(s.as_py())
    if pa.types.is_timestamp(t):
        return "T", [int(s.value), t.unit, t.tz]
    if pa.types.is_duration(t):
        return "D", [int(s.value), t.unit]
    if pa.types.is_date(t):
        return "d", s.as_py().isoformat()
    if pa.types.is_time(t):
        return "t", s.as_py().isoformat()
    if pa.types.is_decimal(t):
        return "M", str(s.as_py())
    value = s.as_py()
    try:
        msgpack.packb(value, use_bin_type=True)
    except (TypeError, ValueError, OverflowError):
        return "r", repr(value)
    return "x", value


def _value_from_payload(code: str, payload: Any) -> Any:
    if code == "T":
        value, unit, tz = payload
        return pd.Timestamp(value, unit=unit, tz=tz)
    if code == "D":
        return pd.Timedelta(payload[0], unit=payload[1])
    if code == "d":
        return _dt.date.fromisoformat(payload)
    if code == "t":
        return _dt.time.fromisoformat(payload)
    if code == "M":
        return decimal.Decimal(payload)
    return payload  # b, i, f, s, y, x, r: msgpack gives the Python value back


def encode_record(t: int, code: str | None = None, payload: Any = None) -> bytes:
    """The stored form of ``(t, value)``: time key + msgpack ``[t, code, payload]``.

    ``code=None`` encodes a null value: only the time key, which the Lua rules ignore.

    >>> decode_record(encode_record(5, "f", 1.5))
    (5, 1.5)
    """
    head = time_key(t).encode("ascii")
    if code is None:
        return head
    return head + msgpack.packb([int(t), code, payload], use_bin_type=True)


def decode_record(raw: bytes) -> tuple[int, Any] | None:
    """``(time, value)`` of a stored record; None for the no-value marker."""
    if raw == NO_VALUE or len(raw) <= _KEY_LEN:
        return None
    t, code, payload = msgpack.unpackb(raw[_KEY_LEN:], raw=False)
    return int(t), _value_from_payload(code, payload)


def _field(device: str, measurement: str) -> str:
    return f"{device}{SEP}{measurement}"


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
        return (f"<DeleteResult {self.dataset!r}: {self.total:,} values hidden in "
                f"{len(self.series)} series, version {self.version}; "
                f"{self.last_values_dropped} cached last values dropped>")

    def _repr_html_(self) -> str:
        return (f"<div><b>DeleteResult</b> {self.dataset!r}: {self.total:,} values hidden, "
                f"version {self.version}{self.series.to_html(index=False)}</div>")


def _may_hide(tomb: Tombstone, cm: ChunkMeta) -> bool:
    """Whether the chunk's time statistics allow ``tomb`` to hide any of its values (the
    reader's test before it applies a tombstone)."""
    if tomb.rows is not None and cm.start >= tomb.rows:
        return False
    if not cm.stats:
        return True
    spans = [cm.stats.get(tomb.device)] if tomb.device is not None else list(cm.stats.values())
    return any(span is not None and (tomb.start is None or span[1] >= tomb.start)
               and (tomb.end is None or span[0] <= tomb.end) for span in spans)


# ---------------------------------------------------------------------------- Series helper
def last_of_series(series: pd.Series) -> tuple[Any, Any]:
    """``(time, value)`` of the latest non-null value of a Series indexed by time.

    Ties (equal latest times) go to the later row, as in the last cache. A series with no
    non-null value gives ``(None, None)``.

    >>> s = pd.Series([1.0, 2.0, None], index=pd.to_datetime(["2024-01-01", "2024-01-03",
    ...                                                      "2024-01-04"]))
    >>> last_of_series(s)
    (Timestamp('2024-01-03 00:00:00'), np.float64(2.0))
    """
    if not isinstance(series, pd.Series):
        raise TypeError(f"last_of_series() takes a pandas Series, got {type(series).__name__}")
    index = series.index
    if not isinstance(index, pd.DatetimeIndex):
        raise ValueError(
            f"last_of_series() needs a Series indexed by time (a DatetimeIndex); series "
            f"{series.name!r} has a {type(index).__name__} of dtype {index.dtype}. Put the times "
            f"in the index first, e.g. df.set_index('time')[{series.name!r}]"
        )
    keep = series.notna().to_numpy() & ~np.asarray(index.isna())
    pos = np.flatnonzero(keep)
    if not pos.size:
        return None, None
    times = index.asi8[pos]
    best = int(pos[np.flatnonzero(times == times.max())[-1]])
    return index[best], series.iloc[best]


# ---------------------------------------------------------------------------- arrow helpers
def _times(col: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray | None]:
    """Times as int64 (ns for timestamps) and a validity mask (None: all valid)."""
    ints = times_ns(col)
    valid = None
    if ints.null_count:
        valid = np.asarray(ints.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        ints = ints.fill_null(0)
    return np.asarray(ints.to_numpy(), dtype=np.int64), valid


def _valid(col: pa.ChunkedArray) -> np.ndarray | None:
    """Rows holding a value: not null and, for floats, not NaN (pandas' notion of missing)."""
    mask = None
    if col.null_count:
        mask = np.asarray(col.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    if pa.types.is_floating(col.type):
        nan = np.isnan(np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64))
        if nan.any():
            mask = ~nan if mask is None else (mask & ~nan)
    return mask


def _chunk_candidates(
    table: pa.Table, tcol: str, dcol: str | None, devices: set[str] | None,
    measurements: Sequence[str],
) -> dict[tuple[str, str], tuple[int, int]]:
    """Per (device, measurement) of one chunk: (time, row) of its latest non-null value.

    Equal times: the later row. Only ``devices`` (None: all) are looked at.
    """
    t_ns, t_valid = _times(table.column(tcol))
    n = len(t_ns)
    if dcol is None:
        codes = np.zeros(n, dtype=np.int64)
        keys: list[str | None] = [""]
    else:
        arr = table.column(dcol).combine_chunks()
        if not pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_encode()
        codes = np.asarray(arr.indices.fill_null(-1).to_numpy(zero_copy_only=False),
                           dtype=np.int64)
        keys = [None if v is None else str(v) for v in arr.dictionary.to_pylist()]
    wanted = np.array([k is not None and (devices is None or k in devices) for k in keys]
                      + [False])  # code -1 (null device) lands on the trailing False
    keep = wanted[codes]
    if t_valid is not None:
        keep &= t_valid
    rows = np.flatnonzero(keep)
    out: dict[tuple[str, str], tuple[int, int]] = {}
    if not rows.size:
        return out
    rows = rows[np.argsort(t_ns[rows], kind="stable")]  # by time, then by row
    for m in measurements:
        valid = _valid(table.column(m))
        sel = rows if valid is None else rows[valid[rows]]
        if not sel.size:
            continue
        rev = sel[::-1]
        uniq, first = np.unique(codes[rev], return_index=True)
        for code, row in zip(uniq.tolist(), rev[first].tolist(), strict=True):
            key = (keys[code], m)  # type: ignore[index]
            cand = (int(t_ns[row]), int(row))
            if key not in out or cand > out[key]:  # a dictionary may repeat a value
                out[key] = cand
    return out


def _max_stats(chunks: Iterable[ChunkMeta]) -> dict[str, int]:
    """Largest time per device over ``chunks`` (their stats)."""
    out: dict[str, int] = {}
    for cm in chunks:
        for dev, (_, hi) in cm.stats.items():
            if dev not in out or hi > out[dev]:
                out[dev] = hi
    return out


def _listlike(value: Any) -> bool:
    return isinstance(value, (list, tuple, set, frozenset, np.ndarray, pd.Index, pd.Series))


def _dedupe(items: Iterable[Any]) -> list[Any]:
    return list(dict.fromkeys(items))


# ---------------------------------------------------------------------------- local state
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


@dataclass
class _State:
    gen: int | None
    ver: int | None
    epoch: bytes | None
    wgen: bytes | None
    meta_stamp: tuple[int, int] | None
    locked: bool
    entries: list[bytes] | None

    @property
    def stamp(self) -> tuple[int, int] | None:
        return None if self.gen is None or self.ver is None else (self.gen, self.ver)


def _int(raw: bytes | str | None) -> int | None:
    return None if raw is None else int(raw)


# ---------------------------------------------------------------------------- the cache
_LUA_TCMP = """
local function tcmp(a, b)
  local x, y = tonumber(string.sub(a, 1, 10)), tonumber(string.sub(b, 1, 10))
  if x == y then
    x, y = tonumber(string.sub(a, 11, 20)), tonumber(string.sub(b, 11, 20))
  end
  if x < y then return -1 elseif x > y then return 1 end
  return 0
end
"""


class LastValues:
    """Last values of every dataset of one client; ``client.last_values``.

    Public methods take a dataset id (``Dataset.last``, ``Dataset.delete`` and
    ``Dataset.reset_last`` delegate here); :meth:`after_commit` keeps the cache current and is
    registered by the session as a commit hook of ingests. ``counters`` counts calls,
    local hits, chunks read to answer misses and chunks read back after appends.
    """

    # KEYS[1] last, KEYS[2] meta, KEYS[3] lock; ARGV[1] the epoch the caller holds ('' none)
    # returns {gen, ver, epoch, wgen, meta generation, meta version, lock exists,
    #          the whole last hash if its epoch differs from ARGV[1] else nil}
    LUA_STATE = """
    local s = redis.call('hmget', KEYS[1], 'gen', 'ver', 'epoch', 'wgen')
    local m = redis.call('hmget', KEYS[2], 'generation', 'version')
    local entries = false
    if s[3] and s[3] ~= ARGV[1] then entries = redis.call('hgetall', KEYS[1]) end
    return {s[1], s[2], s[3], s[4], m[1], m[2], redis.call('exists', KEYS[3]), entries}
    """
    # updateLastCache for a batch of series.
    # KEYS[1] last, KEYS[2] flushed
    # ARGV[1] new epoch token, ARGV[2] '1' high priority (write) | '0' low (query),
    # ARGV[3] wgen the caller read ('' = no check), ARGV[4] ver expected ('' = no check),
    # ARGV[5] ver to record ('' = keep), ARGV[6] n, then n x (field, device, record),
    # then (device, time key) pairs: latest flushed times to advance (after the updates)
    # returns the number of entries written, or -1 if wgen/ver did not match (nothing done)
    LUA_APPLY = _LUA_TCMP + """
    if ARGV[3] ~= '' and redis.call('hget', KEYS[1], 'wgen') ~= ARGV[3] then return -1 end
    if ARGV[4] ~= '' and redis.call('hget', KEYS[1], 'ver') ~= ARGV[4] then return -1 end
    local high = ARGV[2] == '1'
    local n = tonumber(ARGV[6])
    local changed = 0
    for i = 0, n - 1 do
      local f, dev, rec = ARGV[7 + 3 * i], ARGV[8 + 3 * i], ARGV[9 + 3 * i]
      local cur = redis.call('hget', KEYS[1], f)
      local put = false
      if rec == '~' then
        put = (not cur) and (not high)
      elseif #rec > 20 then
        if not cur then
          if high then
            local fl = redis.call('hget', KEYS[2], dev)
            put = (not fl) or tcmp(rec, fl) >= 0
          else
            put = true
          end
        elseif cur == '~' then
          put = true
        else
          local c = tcmp(rec, cur)
          put = c > 0 or (c == 0 and high)
        end
      end
      if put then
        redis.call('hset', KEYS[1], f, rec)
        changed = changed + 1
      end
    end
    for j = 7 + 3 * n, #ARGV, 2 do
      local fl = redis.call('hget', KEYS[2], ARGV[j])
      if (not fl) or tcmp(ARGV[j + 1], fl) > 0 then redis.call('hset', KEYS[2], ARGV[j], ARGV[j + 1]) end
    end
    if high then redis.call('hset', KEYS[1], 'wgen', ARGV[1]) end
    if ARGV[5] ~= '' then redis.call('hset', KEYS[1], 'ver', ARGV[5]) end
    if changed > 0 then redis.call('hset', KEYS[1], 'epoch', ARGV[1]) end
    return changed
    """
    # First step of a write (under the ingest lock): fence off queries computed from older
    # data, and return what decides which new chunks must be read.
    # KEYS[1] last, KEYS[2] flushed; ARGV[1] token, ARGV[2] gen, ARGV[3] ver before the write,
    # ARGV[4] n devices, then the devices, then fields
    # returns -1 if the cache does not describe (gen, ver), else {flushed time key per device,
    #         then per field: its time key, '~', or nil}
    LUA_BEGIN_WRITE = """
    if redis.call('hget', KEYS[1], 'gen') ~= ARGV[2] or redis.call('hget', KEYS[1], 'ver') ~= ARGV[3] then
      return -1
    end
    redis.call('hset', KEYS[1], 'wgen', ARGV[1])
    local out = {}
    local n = tonumber(ARGV[4])
    for i = 5, 4 + n do out[#out + 1] = redis.call('hget', KEYS[2], ARGV[i]) end
    for i = 5 + n, #ARGV do
      local v = redis.call('hget', KEYS[1], ARGV[i])
      if v and v ~= '~' then v = string.sub(v, 1, 20) end
      out[#out + 1] = v
    end
    return out
    """
    # Start the cache of a dataset afresh: no entries, the given flushed times.
    # KEYS[1] last, KEYS[2] flushed, KEYS[3] meta, KEYS[4] lock
    # ARGV[1] token, ARGV[2] meta generation expected, ARGV[3] meta version expected,
    # ARGV[4] gen to record, ARGV[5] ver to record, ARGV[6] '1' the lock must exist (the
    # caller holds it) | '0' it must not, then (device, time key) pairs
    # returns 1, or 0 if the metadata or the lock changed meanwhile (nothing done)
    LUA_REINIT = """
    local m = redis.call('hmget', KEYS[3], 'generation', 'version')
    if m[1] ~= ARGV[2] or m[2] ~= ARGV[3] then return 0 end
    if redis.call('exists', KEYS[4]) ~= tonumber(ARGV[6]) then return 0 end
    redis.call('del', KEYS[1], KEYS[2])
    for i = 7, #ARGV, 2 do redis.call('hset', KEYS[2], ARGV[i], ARGV[i + 1]) end
    redis.call('hset', KEYS[1], 'gen', ARGV[4], 'ver', ARGV[5], 'epoch', ARGV[1], 'wgen', ARGV[1])
    return 1
    """
    # deleteLastCacheByDevice(device, pattern, start, end): drop the entries of the given
    # series whose cached time lies in [start, end].
    # KEYS[1] last; ARGV[1] token, ARGV[2] gen, ARGV[3] ver before the delete, ARGV[4] ver
    # after, ARGV[5] start time key ('' = open), ARGV[6] end time key ('' = open), then fields
    # returns the number of entries dropped, or -1 if the cache does not describe (gen, ver)
    LUA_INVALIDATE = _LUA_TCMP + """
    if redis.call('hget', KEYS[1], 'gen') ~= ARGV[2] or redis.call('hget', KEYS[1], 'ver') ~= ARGV[3] then
      return -1
    end
    local dropped = 0
    for i = 7, #ARGV do
      local cur = redis.call('hget', KEYS[1], ARGV[i])
      if cur and cur ~= '~' and (ARGV[5] == '' or tcmp(cur, ARGV[5]) >= 0)
         and (ARGV[6] == '' or tcmp(cur, ARGV[6]) <= 0) then
        redis.call('hdel', KEYS[1], ARGV[i])
        dropped = dropped + 1
      end
    end
    redis.call('hset', KEYS[1], 'ver', ARGV[4], 'epoch', ARGV[1], 'wgen', ARGV[1])
    return dropped
    """
    # resetLastCache: KEYS[1] last; ARGV[1] token, ARGV[2..] fields (none: every series)
    # returns the number of entries dropped
    LUA_RESET = """
    local dropped = 0
    if #ARGV == 1 then
      for _, f in ipairs(redis.call('hkeys', KEYS[1])) do
        if string.find(f, '\\031', 1, true) then
          redis.call('hdel', KEYS[1], f)
          dropped = dropped + 1
        end
      end
    else
      for i = 2, #ARGV do dropped = dropped + redis.call('hdel', KEYS[1], ARGV[i]) end
    end
    redis.call('hset', KEYS[1], 'epoch', ARGV[1], 'wgen', ARGV[1])
    return dropped
    """

    def __init__(self, redis_client: redis.Redis, backends: Backends, reader: Reader,
                 local_datasets: int = 256):
        self.redis = redis_client
        self.backends = backends
        self.reader = reader
        self._state = self.redis.register_script(self.LUA_STATE)
        self._apply = self.redis.register_script(self.LUA_APPLY)
        self._begin = self.redis.register_script(self.LUA_BEGIN_WRITE)
        self._reinit = self.redis.register_script(self.LUA_REINIT)
        self._invalidate = self.redis.register_script(self.LUA_INVALIDATE)
        self._reset = self.redis.register_script(self.LUA_RESET)
        self._local: cachetools.LRUCache[str, _Local] = cachetools.LRUCache(local_datasets)
        self._devices: cachetools.LRUCache[str, tuple[tuple[int, int], dict[str, Any]]] = (
            cachetools.LRUCache(local_datasets))
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
        self._require_time(meta, "has no last values")
        measurements = self._select_measurements(snap, columns)
        devices = self._select_devices(snap, device)
        full = device is None and columns is None

        if st.stamp != snap.stamp:
            if not st.locked and self._do_reinit(snap, lock_held=False):
                st, snap = self._synced(dataset_id)
            if st.stamp != snap.stamp:
                # a write or delete is being applied right now: answer from the data alone
                self.counters["bypassed"] += 1
                wanted = {d: list(measurements) for d in devices}
                found = self._compute(snap, wanted)
                return self._frame(snap, [
                    (d, m, None if (hit := found.get((d, m))) is None else (hit[0], hit[3]))
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
                if _field(d, m) not in loc.entries:
                    missing.setdefault(d, []).append(m)
        computed: dict[tuple[str, str], tuple[int, int, bytes, Any] | None] = {}
        if missing:
            self.counters["computed"] += sum(len(ms) for ms in missing.values())
            found = self._compute(snap, missing)
            records: list[tuple[str, str, bytes]] = []
            for d, ms in missing.items():
                for m in ms:
                    hit = found.get((d, m))
                    computed[(d, m)] = hit
                    rec = NO_VALUE if hit is None else hit[2]
                    records.append((_field(d, m), d, rec))
            self._apply_records(dataset_id, records, high=False, guard=st.wgen)
        else:
            self.counters["local_hits"] += 1

        rows: list[tuple[str, str, tuple[int, Any] | None]] = []
        for d in devices:
            for m in measurements:
                key = (d, m)
                if key in computed:
                    got = computed[key]
                    rows.append((d, m, None if got is None else (got[0], got[3])))
                else:
                    rows.append((d, m, loc.value(_field(d, m))))
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
        in ``[start, end]`` are dropped (the next :meth:`last` recomputes them).

        Returns a :class:`DeleteResult`: the values hidden per series (counted from the
        chunks the time statistics say the delete can touch, before it is committed) and
        the number of cached last values dropped.
        """
        snap = self.reader.snapshot(dataset_id, refresh=True)
        meta = snap.meta
        tcol = self._require_time(meta, "cannot delete by time")
        if device is not None and _listlike(device):
            raise TypeError(f"delete() takes one device (or None for all), got {device!r}; call "
                            "it once per device")
        measurements = self._select_measurements(snap, columns)
        dkeys = self._select_devices(snap, device)
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
            hidden = self._hidden(snap, tomb, measurements)
            new = record.evolve(version=record.version + 1, updated=mod_time.time(),
                                tombstones=(*record.tombstones, tomb))
            lock.check()
            self.backends.catalog.set_tombstones(dataset_id, new.tombstones, new.version, lock.fence)
            self.backends.state.set_meta(new)
            devices = dkeys if device is not None else list(self._devices_of(snap))
            fields = [_field(d, m) for d in devices for m in measurements]
            keys = self.backends.state.keys(dataset_id)
            dropped = int(self._invalidate(
                keys=[keys.last],
                args=[self._token(), record.generation, record.version, new.version,
                      "" if lo is None else time_key(lo), "" if hi is None else time_key(hi),
                      *fields]))
            if dropped < 0:  # the cache was out of step already: start it afresh
                snap = self.reader.snapshot(dataset_id, refresh=True)
                self._do_reinit(snap, lock_held=True)
                dropped = 0
        finally:
            lock.release()
        self.reader.snapshot(dataset_id, refresh=True)
        return DeleteResult(dataset_id, hidden, dropped, new.version)

    def _hidden(self, snap: Snapshot, tomb: Tombstone, measurements: list[str]) -> pd.DataFrame:
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
            if not _may_hide(tomb, cm):
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
        known = self._devices_of(snap)
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

    def reset(self, dataset_id: str, device: Any = None,
              columns: Sequence[str] | str | None = None) -> int:
        """Drop cached last values: one series, a device's, or all (``resetLastCache``).

        Returns the number of cache entries dropped; the next :meth:`last` recomputes them.
        """
        snap = self.reader.snapshot(dataset_id)
        self._require_time(snap.meta, "has no last values")
        measurements = self._select_measurements(snap, columns)
        devices = self._select_devices(snap, device)
        fields = ([] if device is None and columns is None
                  else [_field(d, m) for d in devices for m in measurements])
        keys = self.backends.state.keys(dataset_id)
        return int(self._reset(keys=[keys.last], args=[self._token(), *fields]))

    # ------------------------------------------------------------------ the commit hook
    def after_commit(self, meta: DatasetMeta, op: str, new: list[ChunkMeta]) -> None:
        """Keep last values current after an ingest commit (called under the ingest lock)."""
        try:
            if op == "append":
                self._after_append(meta, new)
            else:  # create / overwrite: the old generation is gone, like a bulk load in IoTDB
                flushed = _max_stats(new)
                if not self._reinit_meta(meta, meta.version, flushed, lock_held=True):
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
        token = self._token()
        prev = meta.version - 1
        if meta.time_column is None:
            self._apply(keys=[keys.last, keys.flushed],
                        args=[token, "1", "", prev, meta.version, 0])
            return
        snap = self.reader.snapshot(meta.id, refresh=True)
        if snap.stamp != (meta.generation, meta.version):
            raise ChunkFrameError(f"dataset is at {snap.stamp}, the commit made "
                                  f"{(meta.generation, meta.version)}")
        measurements = self._measurements(snap)
        newmax = _max_stats(new)
        devices = sorted(newmax)
        fields = [_field(d, m) for d in devices for m in measurements]
        got = self._begin(keys=[keys.last, keys.flushed],
                          args=[token, meta.generation, prev, len(devices), *devices, *fields])
        if got == -1:  # not in step with the data before this append: rebuild, then apply
            first = min(c.chunk for c in new)
            prior = _max_stats(snap.chunks[:first])
            if not self._reinit_meta(meta, prev, prior, lock_held=True):
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
                raw = current.get(_field(d, m))
                if raw is None:  # empty: a write fills it only from the flushed time on
                    fl = flushed[d]
                    lows.append(-np.inf if fl is None else fl)
                elif raw == NO_VALUE:
                    lows.append(-np.inf)
                else:
                    lows.append(time_from_key(raw))
            floor[d] = min(lows) if lows else np.inf
        best: dict[tuple[str, str], tuple[int, int, int, int]] = {}
        tables: dict[int, pa.Table] = {}
        for cm in new:
            devs = {d for d, (_, hi) in cm.stats.items() if hi >= floor.get(d, np.inf)}
            if not devs:
                continue  # stats prove nothing in this chunk can change a last value
            table = self.reader.chunk(snap, cm.chunk).table
            self.counters["write_chunk_reads"] += 1
            tables[cm.chunk] = table
            for key, (t, row) in _chunk_candidates(table, meta.time_column, meta.device_column,
                                                   devs, measurements).items():
                cand = (t, cm.start + row, cm.chunk, row)
                if key not in best or cand[:2] > best[key][:2]:
                    best[key] = cand
        records = []
        for (d, m), (t, _sn, chunk, row) in best.items():
            code, payload = _value_payload(tables[chunk].column(m), row)
            records.append((_field(d, m), d, encode_record(t, code, payload)))
        flushed_args = [x for d in devices for x in (d, time_key(newmax[d]))]
        done = self._apply_records(meta.id, records, high=True, guard=None, token=token,
                                   expect_ver=prev, set_ver=meta.version, flushed=flushed_args)
        if done < 0:
            raise ChunkFrameError("the cache's version moved during the append")

    # ------------------------------------------------------------------ Redis steps
    @staticmethod
    def _token() -> str:
        return uuid.uuid4().hex

    def _read_state(self, ds_id: str, held: bytes | None = None) -> _State:
        keys = self.backends.state.keys(ds_id)
        if held is None:
            with self._mutex:
                loc = self._local.get(ds_id)
            held = loc.epoch if loc is not None else b""
        gen, ver, epoch, wgen, mgen, mver, locked, entries = self._state(
            keys=[keys.last, keys.meta, keys.lock], args=[held])
        stamp = None if mgen is None or mver is None else (int(mgen), int(mver))
        return _State(_int(gen), _int(ver), epoch, wgen, stamp, bool(locked), entries)

    def _synced(self, ds_id: str) -> tuple[_State, Snapshot]:
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

    def _local_for(self, ds_id: str, st: _State) -> _Local:
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
        keys = self.backends.state.keys(ds_id)
        args: list[Any] = [token or self._token(), "1" if high else "0",
                           b"" if guard is None else guard,
                           "" if expect_ver is None else expect_ver,
                           "" if set_ver is None else set_ver, len(records)]
        for rec in records:
            args.extend(rec)
        args.extend(flushed or [])
        return int(self._apply(keys=[keys.last, keys.flushed], args=args))

    def _reinit_meta(self, meta: DatasetMeta, set_ver: int, flushed: dict[str, int],
                     lock_held: bool) -> bool:
        keys = self.backends.state.keys(meta.id)
        args: list[Any] = [self._token(), meta.generation, meta.version, meta.generation, set_ver,
                           "1" if lock_held else "0"]
        for d, t in flushed.items():
            args += [d, time_key(t)]
        return bool(self._reinit(keys=[keys.last, keys.flushed, keys.meta, keys.lock], args=args))

    def _do_reinit(self, snap: Snapshot, lock_held: bool) -> bool:
        return self._reinit_meta(snap.meta, snap.meta.version, _max_stats(snap.chunks), lock_held)

    # ------------------------------------------------------------------ computing from data
    def _compute(self, snap: Snapshot, wanted: dict[str, list[str]]
                 ) -> dict[tuple[str, str], tuple[int, int, bytes, Any]]:
        """(time, sn, record, value) of the latest non-null value of each wanted series.

        Chunks are read newest first by their per-device max time, and a device stops as
        soon as no unread chunk can hold a time >= its answers (>=: an equal time in a later
        row wins).
        """
        meta = snap.meta
        tcol, dcol = meta.time_column, meta.device_column
        assert tcol is not None
        heap: list[tuple[int, int, str]] = []
        for i, cm in enumerate(snap.chunks):
            for d in wanted:
                span = cm.stats.get(d)
                if span is not None:
                    heap.append((-span[1], -i, d))
        heapq.heapify(heap)
        best: dict[tuple[str, str], tuple[int, int, int, int]] = {}
        done: set[str] = set()
        tables: dict[int, pa.Table] = {}
        measurements = _dedupe(m for ms in wanted.values() for m in ms)
        while heap:
            neg_hi, neg_i, d = heapq.heappop(heap)
            if d in done:
                continue
            hi, i = -neg_hi, -neg_i
            if all((d, m) in best and best[(d, m)][0] > hi for m in wanted[d]):
                done.add(d)  # chunks come by max time: no later one can beat these
                continue
            if i in tables:
                continue
            cm = snap.chunks[i]
            table = self.reader.chunk(snap, i).table
            self.counters["chunk_reads"] += 1
            tables[i] = table
            devs = {x for x in cm.stats if x in wanted and x not in done}
            for key, (t, row) in _chunk_candidates(table, tcol, dcol, devs, measurements).items():
                if key[1] not in wanted[key[0]]:
                    continue
                cand = (t, cm.start + row, i, row)
                if key not in best or cand[:2] > best[key][:2]:
                    best[key] = cand
        out: dict[tuple[str, str], tuple[int, int, bytes, Any]] = {}
        for (d, m), (t, sn, i, row) in best.items():
            code, payload = _value_payload(tables[i].column(m), row)
            out[(d, m)] = (t, sn, encode_record(t, code, payload),
                           _value_from_payload(code, payload))
        return out

    # ------------------------------------------------------------------ validation
    @staticmethod
    def _require_time(meta: DatasetMeta, what: str) -> str:
        if meta.time_column is None:
            raise SchemaMismatchError(
                f"dataset {meta.id!r} has no time column, so it {what}: a last value is the "
                "value of the latest time",
                hint=Hint("re-ingest it with {} ({}) naming a datetime or integer column",
                          Arg("time_column"), Arg("mode", "overwrite")),
            )
        return meta.time_column

    @staticmethod
    def _measurements(snap: Snapshot) -> list[str]:
        meta = snap.meta
        return [n for n in snap.schema.names if n not in (meta.time_column, meta.device_column)]

    def _select_measurements(self, snap: Snapshot, columns: Sequence[str] | str | None
                             ) -> list[str]:
        measurements = self._measurements(snap)
        if columns is None:
            return measurements
        cols = [columns] if isinstance(columns, str) or not _listlike(columns) else list(columns)
        meta = snap.meta
        for c in cols:
            if c in measurements:
                continue
            role = ("the time column" if c == meta.time_column else
                    "the device column" if c == meta.device_column and c is not None else None)
            why = f"{c!r} is {role}, not a measurement" if role else f"no measurement {c!r}"
            raise KeyError(f"dataset {meta.id!r} has {why}; measurements are {measurements!r}")
        return _dedupe(cols)

    def _devices_of(self, snap: Snapshot) -> dict[str, Any]:
        """Device key → typed device value, sorted by value, from the chunk statistics."""
        with self._mutex:
            hit = self._devices.get(snap.meta.id)
        if hit is not None and hit[0] == snap.stamp:
            return hit[1]
        dcol = snap.meta.device_column
        typ = snap.schema.field(dcol).type if dcol is not None else None
        keys = {k for cm in snap.chunks for k in cm.stats}
        typed = {k: typed_device(k, typ) for k in keys}
        try:
            order = sorted(keys, key=lambda k: typed[k])
        except TypeError:
            order = sorted(keys)
        devices = {k: typed[k] for k in order}
        with self._mutex:
            self._devices[snap.meta.id] = (snap.stamp, devices)
        return devices

    def _select_devices(self, snap: Snapshot, device: Any) -> list[str]:
        known = self._devices_of(snap)
        meta = snap.meta
        if meta.device_column is None:
            if device is not None:
                raise KeyError(
                    f"dataset {meta.id!r} has no device column, so its series belong to no "
                    f"device; call without device= (got {device!r})")
            return list(known)
        if device is None:
            return list(known)
        items = list(device) if _listlike(device) else [device]
        dtype = snap.schema.field(meta.device_column).type
        keys = [device_key(d, dtype) for d in items]
        unknown = [d for d, k in zip(items, keys, strict=True) if k not in known]
        if unknown:
            names = list(known)
            close = difflib.get_close_matches(device_key(unknown[0]), names, n=3, cutoff=0.5)
            hint = f"; did you mean {[known[k] for k in close]!r}" if close else ""
            shown = [known[k] for k in names[:10]]
            more = f" (and {len(names) - 10} more)" if len(names) > 10 else ""
            raise KeyError(
                f"dataset {meta.id!r} has no device {unknown[0]!r} in its device column "
                f"{meta.device_column!r}{hint}. Known devices: {shown!r}{more}")
        return _dedupe(keys)

    # ------------------------------------------------------------------ result frame
    def _frame(self, snap: Snapshot, rows: list[tuple[str, str, tuple[int, Any] | None]]
               ) -> pd.DataFrame:
        devices = self._devices_of(snap)
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
