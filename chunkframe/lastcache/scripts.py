"""The last cache's Lua scripts (IoTDB's update, delete and reset rules) and their calls.

Each script is a constant with a ``KEYS``/``ARGV``/returns header, registered once per Redis
connection by :class:`Scripts`, whose methods pass typed arguments and read typed answers
(as redis-py's ``Lock`` does with its ``do_*`` methods). All keys of a call are one
dataset's (they share its hash tag), so every script runs on one Redis Cluster slot.

Redis layout, per dataset:

``<prefix>:{<id>}:last`` (hash)
    ``<device>\\x1f<measurement>`` → a record (:mod:`.records`) or ``~`` (no value).
    Reserved fields without ``\\x1f``: ``gen``/``ver`` (the dataset generation and version
    the cache is known to describe), ``epoch`` (a token that changes on every change of an
    entry: local caches compare it) and ``wgen`` (changes whenever data changes: a query
    computed from older data fills only if ``wgen`` did not move meanwhile).
``<prefix>:{<id>}:flushed`` (hash)
    ``<device>`` → time key of the largest time committed for that device.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis

from ..core.keys import RedisKeys
from ..core.model import DatasetMeta
from .records import time_key
from .scan import max_stats

if TYPE_CHECKING:
    from ..read.reader import Snapshot

__all__ = [
    "TCMP", "STATE", "APPLY", "BEGIN_WRITE", "REINIT", "INVALIDATE", "RESET", "Scripts",
    "CacheState", "new_token",
]

TCMP = """
local function tcmp(a, b)
  local x, y = tonumber(string.sub(a, 1, 10)), tonumber(string.sub(b, 1, 10))
  if x == y then
    x, y = tonumber(string.sub(a, 11, 20)), tonumber(string.sub(b, 11, 20))
  end
  if x < y then return -1 elseif x > y then return 1 end
  return 0
end
"""
"""Lua ``tcmp(a, b)``: -1, 0 or 1 comparing the time keys at the start of two records
(in two 10-digit halves: Lua numbers are doubles)."""

# KEYS[1] last, KEYS[2] meta, KEYS[3] lock
# ARGV[1] the epoch the caller holds ('' none)
# returns {gen, ver, epoch, wgen, meta generation, meta version, lock exists,
#          the whole last hash if its epoch differs from ARGV[1] else nil}
STATE = """
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
APPLY = TCMP + """
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
# KEYS[1] last, KEYS[2] flushed
# ARGV[1] token, ARGV[2] gen, ARGV[3] ver before the write, ARGV[4] n devices, then the
# devices, then fields
# returns -1 if the cache does not describe (gen, ver), else {flushed time key per device,
#         then per field: its time key, '~', or nil}
BEGIN_WRITE = """
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
REINIT = """
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
# KEYS[1] last
# ARGV[1] token, ARGV[2] gen, ARGV[3] ver before the delete, ARGV[4] ver after,
# ARGV[5] start time key ('' = open), ARGV[6] end time key ('' = open), then fields
# returns the number of entries dropped, or -1 if the cache does not describe (gen, ver)
INVALIDATE = TCMP + """
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

# resetLastCache.
# KEYS[1] last
# ARGV[1] token, ARGV[2..] fields (none: every series)
# returns the number of entries dropped
RESET = """
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


# A compaction: the same values, now of a new generation and version.
# KEYS[1] last
# ARGV[1] token, ARGV[2] ver before, ARGV[3] gen after, ARGV[4] ver after
# returns 1, or -1 if the cache does not describe version ARGV[2] (nothing done)
MOVE = """
if redis.call('hget', KEYS[1], 'ver') ~= ARGV[2] then
  return -1
end
redis.call('hset', KEYS[1], 'gen', ARGV[3], 'ver', ARGV[4], 'epoch', ARGV[1], 'wgen', ARGV[1])
return 1
"""


def new_token() -> str:
    """A fresh epoch/write token (every change of the cache records a new one)."""
    return uuid.uuid4().hex


def _int(raw: bytes | str | None) -> int | None:
    return None if raw is None else int(raw)


@dataclass
class CacheState:
    """What :data:`STATE` read: the cache's stamp, tokens, the dataset's metadata stamp,
    whether its lock is held, and the whole last hash when the caller's epoch is stale."""

    gen: int | None
    ver: int | None
    epoch: bytes | None
    wgen: bytes | None
    meta_stamp: tuple[int, int] | None
    locked: bool
    entries: list[bytes] | None

    @property
    def stamp(self) -> tuple[int, int] | None:
        """``(generation, version)`` the cache describes, or None if it describes none."""
        return None if self.gen is None or self.ver is None else (self.gen, self.ver)


class Scripts:
    """The scripts registered on one Redis connection, one method per script.

    Parameters
    ----------
    redis_client : redis.Redis
        The connection the scripts run on (bytes responses).
    """

    def __init__(self, redis_client: redis.Redis) -> None:
        self._state = redis_client.register_script(STATE)
        self._apply = redis_client.register_script(APPLY)
        self._begin = redis_client.register_script(BEGIN_WRITE)
        self._reinit = redis_client.register_script(REINIT)
        self._invalidate = redis_client.register_script(INVALIDATE)
        self._reset = redis_client.register_script(RESET)
        self._move = redis_client.register_script(MOVE)

    def state(self, keys: RedisKeys, held: bytes) -> CacheState:
        """The cache's state, with its entries unless ``held`` is its current epoch."""
        gen, ver, epoch, wgen, mgen, mver, locked, entries = self._state(
            keys=[keys.last, keys.meta, keys.lock], args=[held])
        stamp = None if mgen is None or mver is None else (int(mgen), int(mver))
        return CacheState(_int(gen), _int(ver), epoch, wgen, stamp, bool(locked), entries)

    def apply(self, keys: RedisKeys, records: Sequence[tuple[str, str, bytes]], *, token: str,
              high: bool, guard: bytes | None = None, expect_ver: int | None = None,
              set_ver: int | None = None, flushed: Sequence[str] = ()) -> int:
        """Apply ``(field, device, record)`` updates by IoTDB's rules; see :data:`APPLY`.

        Returns the number of entries written, or -1 if ``guard`` (the ``wgen`` read) or
        ``expect_ver`` no longer matched (nothing was done).
        """
        args: list[Any] = [token, "1" if high else "0", b"" if guard is None else guard,
                           "" if expect_ver is None else expect_ver,
                           "" if set_ver is None else set_ver, len(records)]
        for rec in records:
            args.extend(rec)
        args.extend(flushed)
        return int(self._apply(keys=[keys.last, keys.flushed], args=args))

    def begin_write(self, keys: RedisKeys, *, token: str, generation: int, version: int,
                    devices: Sequence[str], fields: Sequence[str]) -> list[bytes | None] | None:
        """Fence off older queries; the flushed time key of each device, then each field's
        time key (or ``~``, or None), or None if the cache does not describe the version."""
        got = self._begin(keys=[keys.last, keys.flushed],
                          args=[token, generation, version, len(devices), *devices, *fields])
        return None if got == -1 else list(got)

    def reinit(self, keys: RedisKeys, meta: DatasetMeta, set_ver: int,
               flushed: Mapping[str, int], *, token: str, lock_held: bool) -> bool:
        """Start the cache of ``meta``'s dataset afresh at version ``set_ver`` with the given
        flushed times; False if the metadata or the lock moved meanwhile (nothing done)."""
        args: list[Any] = [token, meta.generation, meta.version, meta.generation, set_ver,
                           "1" if lock_held else "0"]
        for d, t in flushed.items():
            args += [d, time_key(t)]
        return bool(self._reinit(keys=[keys.last, keys.flushed, keys.meta, keys.lock],
                                 args=args))

    def rebuild(self, keys: RedisKeys, snap: Snapshot, *, token: str, lock_held: bool) -> bool:
        """:meth:`reinit` at the snapshot's version, with the flushed times of its chunks."""
        return self.reinit(keys, snap.meta, snap.meta.version, max_stats(snap.chunks),
                           token=token, lock_held=lock_held)

    def invalidate(self, keys: RedisKeys, fields: Sequence[str], lo: int | None, hi: int | None,
                   *, token: str, generation: int, before: int, after: int) -> int:
        """Drop the entries of ``fields`` whose time lies in ``[lo, hi]`` and record version
        ``after``; the number dropped, or -1 if the cache did not describe ``before``."""
        return int(self._invalidate(
            keys=[keys.last],
            args=[token, generation, before, after, "" if lo is None else time_key(lo),
                  "" if hi is None else time_key(hi), *fields]))

    def move(self, keys: RedisKeys, meta: DatasetMeta, *, token: str) -> bool:
        """Carry the entries of ``meta``'s previous version over to ``meta`` (a compaction,
        which changes no value); False if the cache did not describe that version."""
        return int(self._move(keys=[keys.last], args=[token, meta.version - 1, meta.generation,
                                                      meta.version])) == 1

    def reset(self, keys: RedisKeys, fields: Sequence[str], *, token: str) -> int:
        """Drop the entries of ``fields`` (none: every series); the number dropped."""
        return int(self._reset(keys=[keys.last], args=[token, *fields]))
