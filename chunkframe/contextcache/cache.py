"""ContextCache: contexts written through to Redis, an LRU of them bounded by memory, metrics."""

from __future__ import annotations

import json
import re
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

import pandas as pd
import redis
from redis.exceptions import RedisClusterException

from ..core.errors import BackendUnavailableError, ContextError
from ..core.integers import as_integer
from ..core.keys import validate_id
from ..core.times import utc_from_epoch
from ..core.units import format_bytes, plural
from ..storage.state import is_cluster, pipelined, scan_keys
from . import index
from .context import Context
from .entries import (
    FIELD_SEP,
    ContextIDValue,
    Entry,
    entry_bytes,
    field_of,
    utf8_len,
    with_own_keyword,
)
from .index import as_str
from .keywords import KeywordRule, normalise_keyword
from .types import ContextType

if TYPE_CHECKING:
    from ..storage.catalog import Catalog

__all__ = ["ContextCache"]

_REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


class ContextCache:
    """Per-process LRU cache of contexts, written through to Redis.

    Parameters
    ----------
    redis_client : redis.Redis
        Connection to the Redis holding the contexts (bytes or decoded responses).
    prefix : str
        Key prefix. A context lives at ``{prefix}:ctx:{<id>}:entries`` (hash, field
        ``"<TYPE>\\x1f<key>"`` → JSON ``{"v": value, "k": [keywords]}``) and
        ``{prefix}:ctx:{<id>}:version`` (INCR on every change); the id is a hash tag so
        both share a Redis Cluster slot. The keyword index of all contexts, read by
        :meth:`find`, is one set per keyword, ``{prefix}:ctxkw:{<keyword>}`` (see
        :mod:`chunkframe.contextcache.index`).
    max_bytes : int
        Memory budget of the whole cache, measured as in ContextIDValue. Least recently
        used ContextIDs are evicted whole when over it (they stay in Redis and reload on
        use). A single context larger than the budget still works: it is loaded for each
        operation and dropped after it.
    max_value_bytes : int
        Largest serialised entry (key, value and keywords) that ``put`` accepts.
    record : Catalog, optional
        The durable copy of the entries (the client passes its catalog). Every change is
        recorded there in the same step as in Redis (the catalog's transaction commits once
        Redis has the change, and is rolled back if Redis refuses it), so a Redis that loses
        its keys loses no entry: :meth:`restore` (``cf.recover(apply=True)``) puts them
        back. A context Redis lost is also put back, in a transaction of the record, by the
        first change of it (before the change) and by loading it (a read); other reads only
        ask whether it is recorded when Redis has no entries of it. None: Redis only.
    staleness : float
        Seconds a loaded context is trusted without asking Redis. Before a read, if its
        version was last checked longer ago than this, one GET of the version counter
        decides whether to reload it, so a change made by another process is seen at most
        ``staleness`` seconds later (0.5 s by default; 0 checks before every read).
        Writes never wait for this: they go to Redis first, and a version jump in the
        answer (another writer came in between) makes the next read reload.

    Notes
    -----
    One RLock guards all state, Redis round trips included, so operations of the threads
    of one process are serialised; values are decoded and DataFrames built outside it.
    Metrics (accesses, last access) live with the loaded copy and restart at 0 when a
    context is evicted. ``clear()`` empties this process' memory only; use
    ``Context.clear()`` to delete stored entries.
    """

    def __init__(
        self,
        redis_client: redis.Redis,
        prefix: str = "cf",
        max_bytes: int = 64 * 2**20,
        max_value_bytes: int = 1 * 2**20,
        staleness: float = 0.5,
        record: Catalog | None = None,
    ) -> None:
        self.prefix = validate_id(prefix, "key prefix")
        for name, n in (("max_bytes", max_bytes), ("max_value_bytes", max_value_bytes)):
            if as_integer(n) is None or n <= 0:
                raise ContextError(f"{name} must be a positive number of bytes, got {n!r}")
        if max_value_bytes > max_bytes:
            raise ContextError(
                f"max_value_bytes={max_value_bytes} is larger than max_bytes={max_bytes}; "
                "one entry must fit the cache budget"
            )
        if not isinstance(staleness, (int, float)) or isinstance(staleness, bool) \
                or not staleness >= 0:
            raise ContextError(f"staleness must be seconds >= 0, got {staleness!r}")
        self.redis = redis_client
        self.record = record
        self.max_bytes = max_bytes
        self.max_value_bytes = max_value_bytes
        self.staleness = float(staleness)
        self._lock = threading.RLock()
        # Our own OrderedDict rather than cachetools.LRUCache: a context's size changes
        # while it sits in the cache (every put/remove), so we keep the running total
        # ourselves and evict after each operation instead of measuring at insert only.
        self._lru: OrderedDict[str, ContextIDValue] = OrderedDict()
        self._total = 0
        self._put = redis_client.register_script(index.PUT_LUA)
        self._remove = redis_client.register_script(index.REMOVE_LUA)
        self._find = redis_client.register_script(index.FIND_LUA)
        # on a cluster the index is written beside the scripts, slot by slot (see .index)
        self._cluster = is_cluster(redis_client)

    # -- public ------------------------------------------------------------------------

    def context(
        self,
        context_id: str,
        separator: str | None = None,
        regex: str | re.Pattern[str] | None = None,
    ) -> Context:
        """Return a handle on ``context_id``; nothing is loaded until it is used.

        ``separator`` (split string values on it) or ``regex`` (``re.findall`` of it)
        choose how this handle cuts keywords from string values and @keyword results;
        by default on runs of whitespace and commas.
        """
        return Context(self, validate_id(context_id, "context id"), KeywordRule(separator, regex))

    def contexts(self, include_stored: bool = True) -> pd.DataFrame:
        """One row per context: ``context_id, entries, memory_bytes, accesses, last_access,
        in_memory``.

        Contexts loaded in this process come with their metrics. With ``include_stored``
        (default) the ids that only Redis holds (found by SCAN of this prefix's keys) are
        listed too, with their entry count (HLEN), ``memory_bytes`` NA, 0 accesses and no
        last access. A context with no entries is not stored, so it is listed only while
        loaded.
        """
        with self._lock:
            rows: list[tuple[Any, ...]] = [
                (cid, v.entries, v.memory_bytes, v.accesses, v.last_access, True)
                for cid, v in self._lru.items()
            ]
        if include_stored:
            loaded = {r[0] for r in rows}
            with self._redis_errors(f"list the stored contexts under prefix {self.prefix!r}"):
                ids = [cid for cid in self.stored_ids() if cid not in loaded]
                pipe = self.redis.pipeline(transaction=False)
                for cid in ids:
                    pipe.hlen(self._keys(cid)[0])
                counts = pipe.execute() if ids else []
            rows += [(cid, int(n), None, 0, None, False)
                     for cid, n in zip(ids, counts, strict=True)]
        df = pd.DataFrame(
            rows, columns=["context_id", "entries", "memory_bytes", "accesses",
                           "last_access", "in_memory"],
        )
        df["entries"] = df["entries"].astype("int64")
        df["memory_bytes"] = df["memory_bytes"].astype("Int64")
        df["accesses"] = df["accesses"].astype("int64")
        df["last_access"] = utc_from_epoch(df["last_access"])
        df["in_memory"] = df["in_memory"].astype(bool)
        return df.sort_values("context_id", ignore_index=True)

    def find(self, keyword: str, type: ContextType | str | None = None) -> pd.DataFrame:
        """Return the entries of every context having exactly ``keyword`` (any case).

        What :func:`chunkframe.find` returns (columns ``context, type, key, value``; its
        parameters and errors), read from the keyword index kept in Redis beside the
        entries (one set per keyword), not by loading contexts: the answer reflects every
        process' writes at once. Entries of other prefixes are not searched.

        Examples
        --------
        >>> cache.context("a").put("owner", "ana, data team")       # doctest: +SKIP
        >>> cache.find("DATA")                                      # doctest: +SKIP
          context      type    key           value
        0       a  METADATA  owner  ana, data team
        """
        if not isinstance(keyword, str) or not keyword.strip():
            raise ContextError(
                f"find() takes a non-empty keyword string, got {keyword!r}; "
                "e.g. cf.find('owner')"
            )
        ctype = None if type is None else ContextType.parse(type)
        with self._redis_errors(f"find keyword {keyword!r} in the contexts under prefix "
                                f"{self.prefix!r}"):
            if self._cluster:
                return index.find_cluster(self.redis, self.prefix, normalise_keyword(keyword),
                                          ctype)
            return index.find(self._find, self.prefix, normalise_keyword(keyword), ctype)

    def reindex(self) -> int:
        """Add every stored entry to the keyword index that :meth:`find` reads; return how
        many contexts were indexed.

        Entries written by a chunkframe without the index (before ``cf.find`` came) are
        found only after this; entries written since are indexed as they are written, so a
        second run changes nothing. Each context is indexed in one transaction, retried if
        it changes meanwhile.

        Returns
        -------
        int
            The number of stored contexts.

        Raises
        ------
        BackendUnavailableError
            Redis cannot be reached; contexts indexed before stay indexed, run it again.

        Examples
        --------
        >>> cache.reindex()                                         # doctest: +SKIP
        1000
        """
        n = 0
        with self._redis_errors(f"index the contexts under prefix {self.prefix!r}"):
            for cid in self.stored_ids():
                entries_key = self._keys(cid)[0]
                if self._cluster:  # adding members is idempotent; a stale one is ignored
                    self._index("SADD", index.postings(cid, self.redis.hgetall(entries_key),
                                                       None))
                    n += 1
                    continue

                def transaction(pipe: Any, cid: str = cid, entries_key: str = entries_key
                                ) -> None:
                    add = index.postings(cid, pipe.hgetall(entries_key), None)
                    pipe.multi()
                    for word, members in add.items():
                        pipe.sadd(index.index_key(self.prefix, word), *members)

                self.redis.transaction(transaction, entries_key)
                n += 1
        return n

    def invalidate(self, context_id: str) -> bool:
        """Drop ``context_id`` from memory (Redis keeps it); return whether it was loaded."""
        cid = validate_id(context_id, "context id")
        with self._lock:
            value = self._lru.pop(cid, None)
            if value is not None:
                self._total -= value.memory_bytes
            return value is not None

    def discard(self, context_id: str) -> int:
        """Delete ``context_id`` from Redis -- its entries, its version counter and its
        postings in the keyword index -- and from this process' memory; returns how many
        entries Redis held. The durable record is the caller's (a dataset's drop removes it
        first, :meth:`Catalog.forget_context`, so that no read puts the context back)."""
        cid = validate_id(context_id, "context id")
        entries_key, version_key = self._keys(cid)
        dropped: dict[str, list[str]] = {}
        held = 0

        def transaction(pipe: Any) -> None:
            nonlocal dropped, held
            raw = pipe.hgetall(entries_key)
            held, dropped = len(raw), index.postings(cid, raw, None)
            pipe.multi()
            pipe.delete(entries_key, version_key)
            for word, members in ({} if self._cluster else dropped).items():
                pipe.srem(index.index_key(self.prefix, word), *members)

        with self._lock, self._redis_errors(f"discard context {cid!r}"):
            self.redis.transaction(transaction, entries_key)
            if self._cluster:  # the context's slot only in the transaction, then the index
                self._index("SREM", dropped)
            self.invalidate(cid)
        return held

    def clear(self) -> None:
        """Drop every context from this process' memory; Redis keeps them all."""
        with self._lock:
            self._lru.clear()
            self._total = 0

    @property
    def memory_bytes(self) -> int:
        """Measured bytes of all contexts in memory (never above ``max_bytes`` between
        operations)."""
        with self._lock:
            return self._total

    def __repr__(self) -> str:
        with self._lock:
            n, total = len(self._lru), self._total
        return (f"<ContextCache prefix={self.prefix!r}: {plural(n, 'context')} in memory, "
                f"{format_bytes(total)} of {format_bytes(self.max_bytes)}>")

    # -- package API, for Context (callers hold the value from using()) ----------------

    @contextmanager
    def using(self, cid: str, fresh: bool, touch: bool = True) -> Iterator[ContextIDValue]:
        """Hold the cache lock with ``cid`` loaded; evict back under budget however it ends.

        ``fresh``: reload first if the copy is older than ``staleness`` and Redis' version
        counter moved. ``touch``: count one access.
        """
        with self._lock:
            value = self._acquire(cid, fresh=fresh)
            try:
                if touch:
                    value.touch()
                yield value
            finally:
                self._evict()

    def write(self, value: ContextIDValue, ctype: ContextType,
              entries: Mapping[str, tuple[str, str, Entry]]) -> None:
        """Store ``entries`` (key → (field, record, entry)) of ``ctype``: Redis first, with
        the keyword index and the version in one script (on a cluster: the index's new
        members before it, its old ones after), then ``value``."""
        cid = value.context_id
        words: list[list[str]] = []
        args: list[str] = []
        for key, (field, record, entry) in entries.items():
            own = key.lower()
            words.append([own, *(w for w in entry.keywords if w != own)])
            args += (field, record)
        head = "" if self._cluster else index.index_head(self.prefix)
        args[:0] = [head, f"{cid}{FIELD_SEP}", json.dumps(words)]
        put = [(ctype.value, key, record) for key, (_, record, _) in entries.items()]
        with self._recording(cid, put=put) as changes, \
                self._redis_errors(f"write to context {cid!r}"):
            self._revive(cid, changes)
            if not self._cluster:
                new_version = int(self._put(keys=list(self._keys(cid)), args=args))
            else:
                adds: dict[str, list[str]] = {}
                for key, kws in zip(entries, words, strict=True):
                    for w in kws:
                        adds.setdefault(w, []).append(index.member(cid, ctype, key))
                self._index("SADD", adds)
                version, removes = self._put(keys=list(self._keys(cid)), args=args)
                self._index("SREM", json.loads(removes))
                new_version = int(version)
        delta = sum(value.set(ctype, k, e) for k, (_, _, e) in entries.items())
        self._wrote(value, new_version, delta)

    def delete(self, value: ContextIDValue, ctype: ContextType, key: str) -> None:
        """Delete ``key`` of ``ctype``: from Redis with its index entries, then from ``value``."""
        cid = value.context_id
        head = "" if self._cluster else index.index_head(self.prefix)
        with self._recording(cid, remove=[(ctype.value, key)]) as changes, \
                self._redis_errors(f"remove {key!r} from context {cid!r}"):
            self._revive(cid, changes)
            done: Any = self._remove(keys=list(self._keys(cid)),
                                     args=[head, index.member(cid, ctype, key),
                                           field_of(ctype, key), key.lower()])
            if self._cluster:  # {version} or {version, the deleted record}
                done, old = (*done, None)[:2]
                if old is not None:
                    self._index("SREM", index.postings(cid, {field_of(ctype, key): old}, None))
            new_version = int(done)
        self._wrote(value, new_version, value.delete(ctype, key))

    def delete_all(self, value: ContextIDValue, ctype: ContextType | None) -> int:
        """Delete every entry (of ``ctype``, if given) from Redis with its index entries, in
        one transaction (retried if the context changes meanwhile), then from ``value``;
        return how many ``value`` held."""
        cid = value.context_id
        entries_key, version_key = self._keys(cid)
        dropped: dict[str, list[str]] = {}

        def transaction(pipe: Any) -> None:
            nonlocal dropped
            raw = pipe.hgetall(entries_key)
            drop = dropped = index.postings(cid, raw, ctype)
            fields = [f for f in raw if ctype is None
                      or as_str(f).startswith(f"{ctype.value}{FIELD_SEP}")]
            pipe.multi()
            if ctype is None:
                pipe.delete(entries_key)
            elif fields:
                pipe.hdel(entries_key, *fields)
            for word, members in ({} if self._cluster else drop).items():
                pipe.srem(index.index_key(self.prefix, word), *members)
            pipe.incr(version_key)

        with self._recording(cid, clear=True,
                             clear_type=None if ctype is None else ctype.value) as changes, \
                self._redis_errors(f"clear context {cid!r}"):
            self._revive(cid, changes)
            done: Any = self.redis.transaction(transaction, entries_key)
            if self._cluster:  # the context's slot only in the transaction, then the index
                self._index("SREM", dropped)
            new_version = int(done[-1])
        types = list(ContextType) if ctype is None else [ctype]
        n, delta = 0, 0
        for t in types:
            keys = list(value.maps[t])
            n += len(keys)
            delta += sum(value.delete(t, k) for k in keys)
        self._wrote(value, new_version, delta)
        return n

    def is_loaded(self, cid: str) -> bool:
        """Whether this process holds ``cid`` in memory."""
        with self._lock:
            return cid in self._lru

    def sample(self, cid: str, n: int) -> list[tuple[str, str, str]]:
        """Up to ``n`` (type, key, JSON record) of ``cid`` if it is in memory (no load)."""
        with self._lock:
            value = self._lru.get(cid)
            if value is None:
                return []
            return [(t.value, k, e.record) for t, m in value.maps.items()
                    for k, e in list(m.items())[:n]][:n]

    # -- the durable record, for the recoverer ------------------------------------------

    def recorded_ids(self) -> list[str]:
        """The contexts the durable record holds (none without one)."""
        return [] if self.record is None else self.record.context_ids()

    def check(self, context_id: str) -> tuple[str, str] | None:
        """How Redis's copy of a recorded context falls short of the record, as ``(problem,
        detail)``: ``"context_missing"`` (Redis has none of its entries) or
        ``"context_behind"`` (entries missing, different or extra, or keyword index postings
        missing); None when Redis has exactly the recorded entries, all indexed, or when
        the context is not recorded (see :meth:`record_stored`)."""
        cid = validate_id(context_id, "context id")
        recorded = self._recorded(cid)
        if recorded is None:
            return None
        with self._redis_errors(f"check context {cid!r}"):
            stored = {as_str(f): as_str(r)
                      for f, r in self.redis.hgetall(self._keys(cid)[0]).items()}
        if recorded and not stored:
            return "context_missing", (f"Redis has none of its "
                                       f"{plural(len(recorded), 'entry', 'entries')}; the "
                                       "catalog records them")
        missing = [f for f in recorded if f not in stored]
        differ = [f for f in recorded if f in stored and stored[f] != recorded[f]]
        extra = [f for f in stored if f not in recorded]
        wrong = [f"{len(fs)} {what} ({_few_fields(fs)})" for fs, what in (
            (missing, "entries missing"), (differ, "entries different from the catalog's"),
            (extra, "entries the catalog does not record")) if fs]
        if wrong:
            return "context_behind", "Redis has " + "; ".join(wrong)
        postings = [(w, m) for w, ms in index.postings(cid, recorded, None).items() for m in ms]
        with self._redis_errors(f"check the keyword index of context {cid!r}"):
            pipe = self.redis.pipeline(transaction=False)
            for w, m in postings:
                pipe.sismember(index.index_key(self.prefix, w), m)
            found = pipe.execute() if postings else []
        unindexed = sum(not f for f in found)
        if unindexed:
            return "context_behind", (f"the keyword index lacks {unindexed} of its "
                                      f"{len(postings)} keyword postings")
        return None

    def restore(self, context_id: str) -> int:
        """Make Redis's copy of a recorded context, keyword index included, exactly the
        record's; return the number of entries (0, and nothing done, for a context not
        recorded).

        What :meth:`check` finds is repaired: in one transaction on a standalone Redis; on
        a Redis Cluster the entries and version in one transaction on the context's slot
        and the keyword index around it (see :meth:`_put_back`). It runs in a transaction
        of the record, so writers of the context (which hold one while they write Redis)
        wait for it; this process' loaded copy is dropped (it reloads), and the version
        jumps to a number no copy can hold (microseconds since the epoch), so other
        processes reload theirs too. Loading a context that Redis lost (no entries, no
        version) while the record has entries restores it first, and so does changing a
        context that was recorded before and whose version Redis lost, so tags are back
        before ``cf.recover`` runs.
        """
        cid = validate_id(context_id, "context id")
        if self._recorded(cid) is None:
            return 0
        with self._lock, self._recording(cid):
            n = self._put_back(cid)
        self.invalidate(cid)
        return n

    def record_stored(self, context_id: str) -> int:
        """Record in the durable record every entry Redis holds of ``context_id`` (a context
        written before contexts were recorded); return how many."""
        cid = validate_id(context_id, "context id")
        if self.record is None:
            raise ContextError(f"context {cid!r} cannot be recorded: this cache has no "
                               "durable record; build it with record=<the catalog>")
        put = self._stored_rows(cid)
        with self.record.context_change(cid, put=put):
            pass
        return len(put)

    def _put_back(self, cid: str) -> int:
        """Make Redis's copy of ``cid``, keyword index included, the record's; return the
        number of entries. Callers hold the record's transaction of ``cid``; the loaded
        copy is left in memory (its version no longer matches, so it is reloaded).

        A transaction on the context's slot replaces the entries and sets the version; on a
        standalone Redis it updates the index too. On a cluster (no transaction spans the
        index's slots) the record's postings are added before it and the old ones removed
        after, as writes do: a crash in between leaves a stale member, never a missing one.
        """
        recorded = self._recorded(cid) or {}
        entries_key, version_key = self._keys(cid)
        adds = index.postings(cid, recorded, None)
        stale: dict[str, list[str]] = {}

        def transaction(pipe: Any) -> None:
            nonlocal stale
            drop = index.postings(cid, pipe.hgetall(entries_key), None)
            stale = {w: gone for w, ms in drop.items()
                     if (gone := sorted(set(ms).difference(adds.get(w, ()))))}
            # A version no process can hold a copy of: a Redis that lost its keys counts
            # from 0 again, so the next number could name an old copy; microseconds since
            # the epoch exceed every counted one.
            version = max(int(pipe.get(version_key) or 0) + 2, time.time_ns() // 1000)
            pipe.multi()
            pipe.delete(entries_key)
            if recorded:
                pipe.hset(entries_key, mapping=recorded)
            if not self._cluster:
                for word, members in stale.items():
                    pipe.srem(index.index_key(self.prefix, word), *members)
                for word, members in adds.items():
                    pipe.sadd(index.index_key(self.prefix, word), *members)
            pipe.set(version_key, version)

        with self._redis_errors(f"restore context {cid!r} from the catalog"):
            if self._cluster:
                self._index("SADD", adds)
            self.redis.transaction(transaction, entries_key, version_key)
            if self._cluster:
                self._index("SREM", stale)
        return len(recorded)

    def _revive(self, cid: str, changes: int | None) -> None:
        """Before a change of ``cid`` reaches Redis (inside its record's transaction, whose
        count of ``changes`` includes this one): if the context was recorded before and
        Redis has lost it (no version counter), put the record back first, so the change
        neither hides the recorded entries nor restarts the version at numbers that old
        copies in other processes hold."""
        if changes is not None and changes > 1 and not self.redis.exists(self._keys(cid)[1]):
            self._put_back(cid)

    def _stored_rows(self, cid: str) -> list[tuple[str, str, str]]:
        """``(type, key, record)`` of every context entry Redis holds of ``cid``."""
        with self._redis_errors(f"read context {cid!r}"):
            raw = self.redis.hgetall(self._keys(cid)[0])
        rows = []
        for f, r in raw.items():
            tname, sep, key = as_str(f).partition(FIELD_SEP)
            if sep and tname in ContextType.__members__:
                rows.append((tname, key, as_str(r)))
        return rows

    def _lost(self, cid: str) -> bool:
        """Whether the record has entries of ``cid`` (which Redis has none of). A record
        that cannot be read is warned about, not raised: reads are served from Redis."""
        try:
            return bool(self._recorded(cid))
        except Exception as exc:  # noqa: BLE001 - any backend's error; the read goes on
            warnings.warn(f"could not read the catalog's record of context {cid!r} ({exc}); "
                          "serving Redis's copy, which has no entries. Run cf.recover() to "
                          "see what is wrong", RuntimeWarning, stacklevel=5)
            return False

    def _recorded(self, cid: str) -> dict[str, str] | None:
        """The record's entries of ``cid`` as Redis holds them: hash field → JSON record;
        None if it is not recorded."""
        got = None if self.record is None else self.record.context_entries(cid)
        return None if got is None else {field_of(ContextType[t], k): r
                                         for (t, k), r in got.items()}

    # -- internals (callers hold self._lock unless said otherwise) --------------------

    def _recording(self, cid: str, **change: Any) -> AbstractContextManager[int | None]:
        """The durable record's transaction of a change (see ``Catalog.context_change``);
        the block gets the record's count of changes of ``cid`` (None: no record)."""
        if self.record is None:
            return nullcontext()
        return self.record.context_change(cid, adopt=lambda: self._stored_rows(cid), **change)

    def stored_ids(self) -> list[str]:
        """The ids of the contexts Redis holds entries of (SCAN of this prefix's keys)."""
        head, tail = f"{self.prefix}:ctx:{{", "}:entries"
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", head) + "*" + tail
        return [k[len(head):-len(tail)] for key in scan_keys(self.redis, pattern)
                if (k := as_str(key)).startswith(head) and k.endswith(tail)]

    def _index(self, command: str, by_word: Mapping[str, list[str]]) -> None:
        """SADD or SREM index members by keyword, outside any script or transaction: one
        pipeline (on a cluster, a round trip per node), 4,000 members a command."""
        pipelined(self.redis, [(command, index.index_key(self.prefix, word), *members[i:i + 4000])
                               for word, members in by_word.items()
                               for i in range(0, len(members), 4000)])

    def _keys(self, cid: str) -> tuple[str, str]:
        return index.context_keys(self.prefix, cid)

    @contextmanager
    def _redis_errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except _REDIS_DOWN as exc:
            raise BackendUnavailableError(
                f"could not {what}: Redis did not answer ({exc}). "
                "Nothing was changed in this process' copy; check that the Redis server "
                "is running and reachable, then retry"
            ) from exc
        except (redis.RedisError, RedisClusterException) as exc:
            raise BackendUnavailableError(
                f"could not {what}: Redis refused it ({str(exc).rstrip('.')}). Nothing was "
                "changed in this process' copy; see why in the Redis server's log (out of "
                "memory, a read-only replica, a key of another type?), fix that, then retry"
            ) from exc

    def _fetch(self, cid: str) -> tuple[dict[Any, Any], Any]:
        """Redis's entries (HGETALL) and version of ``cid``, in one transaction."""
        entries_key, version_key = self._keys(cid)
        with self._redis_errors(f"load context {cid!r}"):
            pipe = self.redis.pipeline(transaction=True)
            pipe.hgetall(entries_key)
            pipe.get(version_key)
            raw, version = pipe.execute()
        return raw, version

    def _load(self, cid: str) -> ContextIDValue:
        entries_key, version_key = self._keys(cid)
        raw, version = self._fetch(cid)
        if version is None and not raw and self._lost(cid):  # Redis lost it: put it back
            with self._recording(cid):  # (not restore(): its invalidate would drop the copy
                self._put_back(cid)     # _acquire accounts for while it reloads)
            raw, version = self._fetch(cid)
        value = ContextIDValue(cid, len(entries_key.encode()) + len(version_key.encode()),
                               int(version or 0))
        for f, rec in raw.items():
            size = len(f) + len(rec)
            if isinstance(f, str):  # a client with decode_responses=True
                size = utf8_len(f) + utf8_len(rec)
            field, record = as_str(f), as_str(rec)
            tname, sep, key = field.partition(FIELD_SEP)
            try:
                ctype = ContextType[tname]
                parsed = json.loads(record)
                stored = parsed["k"]
                if not sep or not isinstance(stored, list) or "v" not in parsed:
                    raise ValueError("bad field or keywords")
            except (KeyError, ValueError, TypeError) as exc:
                warnings.warn(
                    f"skipped hash field {field!r} of Redis key {entries_key!r} while loading "
                    f"context {cid!r}: it is not a chunkframe context record ({exc!r}). "
                    f"Delete it with HDEL or put the key again", stacklevel=4,
                )
                continue
            words = with_own_keyword(key, map(str, stored))
            value.set(ctype, key, Entry(record, words, entry_bytes(size, key, words)))
        return value

    def _acquire(self, cid: str, fresh: bool) -> ContextIDValue:
        """The loaded copy of ``cid`` (loading it on a miss), most recently used now.

        ``fresh``: reload first if the copy is older than ``staleness`` and Redis' version
        counter moved.
        """
        value = self._lru.get(cid)
        if value is None:
            value = self._load(cid)
            self._lru[cid] = value
            self._total += value.memory_bytes
        elif fresh and time.monotonic() - value.checked_at >= self.staleness:
            with self._redis_errors(f"check the version of context {cid!r}"):
                version = int(self.redis.get(self._keys(cid)[1]) or 0)
            if version != value.version:
                new = self._load(cid)
                new.accesses, new.last_access = value.accesses, value.last_access
                self._total += new.memory_bytes - value.memory_bytes
                self._lru[cid] = value = new
            else:
                value.checked_at = time.monotonic()
        self._lru.move_to_end(cid)
        return value

    def _wrote(self, value: ContextIDValue, new_version: int, delta: int) -> None:
        """Account a local change mirroring a Redis write that returned ``new_version``."""
        self._total += delta
        if value.version >= 0 and new_version == value.version + 1:
            value.version = new_version
            value.checked_at = time.monotonic()
        else:  # another writer came in between: our copy misses its change
            value.version = -1
            value.checked_at = float("-inf")

    def _evict(self) -> None:
        while self._total > self.max_bytes and self._lru:
            _, value = self._lru.popitem(last=False)
            self._total -= value.memory_bytes


def _few_fields(fields: list[str], limit: int = 5) -> str:
    """Up to ``limit`` hash fields as ``TYPE/key``, and how many more."""
    shown = ", ".join(repr(f.replace(FIELD_SEP, "/")) for f in fields[:limit])
    return shown + (f" and {len(fields) - limit} more" if len(fields) > limit else "")
