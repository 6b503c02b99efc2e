"""Context cache: typed, keyword-indexed key/value context per ContextID, kept in Redis."""

from __future__ import annotations

import dataclasses
import html
import inspect
import json
import re
import sys
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from enum import StrEnum
from typing import Any, NamedTuple, TypeVar

import pandas as pd
import redis

from ..core.errors import BackendUnavailableError, ChunkFrameError, ContextError
from ..core.keys import validate_id
from ..core.units import format_bytes

__all__ = [
    "ContextType",
    "ContextCache",
    "Context",
    "ContextIDValue",
    "ContextKeyError",
    "keyword",
    "register_value_type",
]

T = TypeVar("T")

#: tag of a serialised registered dataclass: ``{"__cf_type__": "module:qualname", "fields": {...}}``
TYPE_TAG = "__cf_type__"
_FIELD_SEP = "\x1f"  # between the ContextType and the key in a Redis hash field
_DEFAULT_SPLIT = re.compile(r"[\s,]+")


class ContextType(StrEnum):
    """The kinds of context entry, as in Linkis' ContextService."""

    METADATA = "METADATA"
    DATA = "DATA"
    RESOURCE = "RESOURCE"
    OBJECT = "OBJECT"
    ENV = "ENV"
    COST = "COST"
    UDF = "UDF"
    VARIABLE = "VARIABLE"

    @classmethod
    def parse(cls, value: object) -> ContextType:
        """Return the ContextType named by ``value`` (a member or a name, any case).

        >>> ContextType.parse("udf")
        <ContextType.UDF: 'UDF'>
        """
        if isinstance(value, ContextType):
            return value
        if isinstance(value, str):
            try:
                return cls[value.strip().upper()]
            except KeyError:
                pass
        valid = ", ".join(t.value for t in cls)
        raise ContextError(
            f"unknown context type {value!r}; use one of {valid} (any case) "
            "or a chunkframe.contextcache.cache.ContextType member"
        )


class ContextKeyError(ChunkFrameError, KeyError):
    """A key that a context does not hold (under the type asked for)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


# --------------------------------------------------------------------------------------
# keyword rules and the @keyword decorator


class _KeywordRule:
    """How keywords are cut out of a string: split on a separator, or ``re.findall`` a regex."""

    __slots__ = ("separator", "regex")

    def __init__(self, separator: str | None = None, regex: str | re.Pattern[str] | None = None):
        if separator is not None and regex is not None:
            raise ContextError(
                f"give either separator={separator!r} or regex={regex!r} as the keyword rule, "
                "not both"
            )
        if separator is not None and (not isinstance(separator, str) or not separator):
            raise ContextError(
                f"separator must be a non-empty string, got {separator!r}; "
                "leave it None to split on whitespace and commas"
            )
        compiled: re.Pattern[str] | None = None
        if regex is not None:
            if not isinstance(regex, (str, re.Pattern)):
                raise ContextError(f"regex must be a string or re.Pattern, got {regex!r}")
            try:
                compiled = re.compile(regex)
            except re.error as exc:
                raise ContextError(
                    f"keyword regex {regex!r} does not compile ({exc}); fix the pattern"
                ) from None
        self.separator = separator
        self.regex = compiled

    def parse(self, text: str) -> list[str]:
        if self.regex is not None:
            out: list[str] = []
            for found in self.regex.findall(text):
                # with several groups findall gives tuples: each non-empty group is a keyword
                out.extend(found if isinstance(found, tuple) else (found,))
            return out
        if self.separator is not None:
            return text.split(self.separator)
        return _DEFAULT_SPLIT.split(text)

    def __repr__(self) -> str:
        if self.regex is not None:
            return f"regex={self.regex.pattern!r}"
        if self.separator is not None:
            return f"separator={self.separator!r}"
        return "whitespace and commas"


_DEFAULT_RULE = _KeywordRule()


class _KeywordSpec(NamedTuple):
    rule: _KeywordRule | None  # None: the context's rule


def keyword(
    func: Callable[[Any], Any] | None = None,
    *,
    separator: str | None = None,
    regex: str | re.Pattern[str] | None = None,
) -> Any:
    """Mark a no-argument method of a registered value type as a keyword source.

    When a value is put into a context, each marked method is called; ``str()`` of its
    result (of each item, if it returns a list, tuple or set; nothing if it returns None)
    is cut into keywords by the context's rule, or by this method's own ``separator`` /
    ``regex`` if given (as Linkis' ``@KeywordMethod(splitter=..., regex=...)``).

    >>> @register_value_type
    ... @dataclasses.dataclass
    ... class Run:
    ...     name: str
    ...     @keyword
    ...     def label(self):
    ...         return self.name
    """

    rule = None if separator is None and regex is None else _KeywordRule(separator, regex)

    def mark(f: Callable[[Any], Any]) -> Callable[[Any], Any]:
        if not callable(f):
            raise ContextError(f"@keyword decorates methods, got {f!r}")
        params = list(inspect.signature(f).parameters.values())
        required = [
            p for p in params[1:]
            if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        if not params or required:
            raise ContextError(
                f"@keyword method {getattr(f, '__qualname__', f)!r} must take no argument "
                "besides self"
            )
        f.__cf_keyword__ = _KeywordSpec(rule)  # type: ignore[attr-defined]
        return f

    return mark if func is None else mark(func)


# --------------------------------------------------------------------------------------
# value types: JSON data and registered dataclasses, never pickle

_REGISTRY: dict[str, type] = {}
_KEYWORD_METHODS: dict[type, list[tuple[str, _KeywordSpec]]] = {}
_registry_lock = threading.Lock()


def _tag(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def register_value_type(cls: type[T]) -> type[T]:
    """Allow instances of the dataclass ``cls`` as context values; usable as a decorator.

    Instances are stored as ``{"__cf_type__": "module:qualname", "fields": {...}}`` (the
    init fields, themselves JSON data or registered dataclasses) and rebuilt with
    ``cls(**fields)`` on load. Only registered classes are ever rebuilt: a stored tag that
    this process has not registered comes back as that plain tagged dict. Registering a
    class again under the same tag (a re-run notebook cell) replaces the old one.
    """
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise ContextError(
            f"register_value_type() takes a dataclass, got {cls!r}; decorate the class "
            "with @dataclasses.dataclass first"
        )
    methods = [
        (name, spec)
        for name in dir(cls)
        if isinstance(spec := getattr(getattr(cls, name, None), "__cf_keyword__", None),
                      _KeywordSpec)
    ]
    with _registry_lock:
        _REGISTRY[_tag(cls)] = cls
        _KEYWORD_METHODS[cls] = methods
    return cls


class _Unserialisable(Exception):
    def __init__(self, where: str, obj: object, hint: str) -> None:
        super().__init__(where, obj, hint)
        self.where, self.obj, self.hint = where, obj, hint


def _hint(obj: object) -> str:
    cls = obj.__class__
    if isinstance(obj, (set, frozenset)):
        return "convert it to a sorted list"
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return "decode it to str, or store large binary data as a dataset"
    if hasattr(obj, "isoformat"):
        return "store obj.isoformat() instead"
    if cls.__module__ == "numpy" and hasattr(obj, "tolist"):
        return "convert it with .tolist()"
    if cls.__module__.startswith("pandas"):
        return "convert it with .to_dict() / .tolist(), or ingest it as a dataset"
    if dataclasses.is_dataclass(obj):
        return (f"register its class first: chunkframe.contextcache.cache.register_value_type("
                f"{cls.__qualname__})")
    return "convert it to JSON data or to a dataclass registered with register_value_type()"


def _encode(obj: Any, where: str) -> Any:
    """Return ``obj`` as JSON-ready data, or raise _Unserialisable naming the part that is not."""
    if obj is None or isinstance(obj, (str, bool, int, float)):
        return obj
    if isinstance(obj, dict):
        if TYPE_TAG in obj:
            # the tagged form passes through (an unresolved value put back as it came)
            if set(obj) == {TYPE_TAG, "fields"} and isinstance(obj["fields"], dict):
                return {TYPE_TAG: str(obj[TYPE_TAG]),
                        "fields": _encode(obj["fields"], f"{where}['fields']")}
            raise _Unserialisable(where, obj, f"the dict key {TYPE_TAG!r} is reserved; rename it")
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise _Unserialisable(
                    f"{where}[{k!r}]", k,
                    "dict keys must be str (JSON would turn them into strings); convert them",
                )
            out[k] = _encode(v, f"{where}[{k!r}]")
        return out
    if isinstance(obj, (list, tuple)):  # tuples are stored, and come back, as lists
        return [_encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    cls: type = obj.__class__
    if dataclasses.is_dataclass(obj) and _REGISTRY.get(_tag(cls)) is cls:
        return {TYPE_TAG: _tag(cls), "fields": {
            f.name: _encode(getattr(obj, f.name), f"{where}.{f.name}")
            for f in dataclasses.fields(obj) if f.init
        }}
    if cls.__module__ == "numpy" and hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:
        return _encode(obj.item(), where)  # numpy scalars: lossless as Python numbers
    raise _Unserialisable(where, obj, _hint(obj))


def _decode(obj: Any) -> Any:
    if isinstance(obj, list):
        return [_decode(v) for v in obj]
    if isinstance(obj, dict):
        if len(obj) == 2 and TYPE_TAG in obj and isinstance(obj.get("fields"), dict):
            tag = obj[TYPE_TAG]
            fields = {k: _decode(v) for k, v in obj["fields"].items()}
            cls = _REGISTRY.get(tag)
            if cls is not None:
                try:
                    return cls(**fields)
                except (TypeError, ValueError) as exc:
                    warnings.warn(
                        f"stored value of type {tag!r} no longer fits the registered class "
                        f"({exc}); returning the stored fields as a dict", stacklevel=3,
                    )
            return {TYPE_TAG: tag, "fields": fields}
        return {k: _decode(v) for k, v in obj.items()}
    return obj


def _value_of(record: str) -> Any:
    value = json.loads(record)["v"]
    return _decode(value) if TYPE_TAG in record else value


def _normalise_keyword(word: object) -> str:
    return str(word).strip().lower()


# --------------------------------------------------------------------------------------
# the three layers: ContextCache -> ContextIDValue -> per-type maps and indexes


class _Entry(NamedTuple):
    record: str  # the JSON record as stored in Redis: {"v": value, "k": [keywords]}
    keywords: tuple[str, ...]  # every keyword, the key's own included
    nbytes: int  # field + record + index postings, UTF-8 bytes


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())


def _entry_bytes(stored_bytes: int, key: str, keywords: tuple[str, ...]) -> int:
    """``stored_bytes`` (hash field + record) plus one keyword → key posting per keyword."""
    return stored_bytes + _utf8_len("".join(keywords)) + len(keywords) * _utf8_len(key)


def _keywords(key: str, words: Iterable[str]) -> tuple[str, ...]:
    """Distinct keywords with the key's own; interned, as many entries share them."""
    low = key.lower()
    return tuple({sys.intern(w) for w in words} | {key if low == key else low})


class ContextIDValue:
    """Everything one process holds in memory for one ContextID.

    Per ContextType a key → entry map and a keyword → keys inverted index, plus metrics:
    ``entries``, ``memory_bytes`` (serialised UTF-8 size of the Redis key names, of every
    hash field and JSON record, and of every keyword → key posting of the index),
    ``accesses`` (operations served) and ``last_access`` (epoch seconds). Not thread-safe
    on its own: ContextCache guards it with its lock.
    """

    __slots__ = ("context_id", "maps", "index", "entries", "memory_bytes", "accesses",
                 "last_access", "version", "checked_at")

    def __init__(self, context_id: str, base_bytes: int, version: int) -> None:
        self.context_id = context_id
        self.maps: dict[ContextType, dict[str, _Entry]] = {t: {} for t in ContextType}
        # keyword -> key, or -> set of keys once a second key has it: most keywords (the
        # key's own, ids) belong to one entry, and a str costs nothing where a set is 216 B
        self.index: dict[ContextType, dict[str, str | set[str]]] = {t: {} for t in ContextType}
        self.entries = 0
        self.memory_bytes = base_bytes
        self.accesses = 0
        self.last_access: float | None = None
        self.version = version  # Redis version this copy reflects; -1: known stale
        self.checked_at = time.monotonic()

    def set(self, ctype: ContextType, key: str, entry: _Entry) -> int:
        """Insert or replace; return the change in memory_bytes."""
        old = self.maps[ctype].get(key)
        delta = entry.nbytes - (old.nbytes if old else 0)
        if old is not None:
            self._unindex(ctype, key, old.keywords)
        else:
            self.entries += 1
        self.maps[ctype][key] = entry
        index = self.index[ctype]
        for w in entry.keywords:
            keys = index.get(w)
            if keys is None:
                index[w] = key
            elif keys.__class__ is str:
                if keys != key:
                    index[w] = {keys, key}
            else:
                keys.add(key)  # type: ignore[union-attr]
        self.memory_bytes += delta
        return delta

    def delete(self, ctype: ContextType, key: str) -> int:
        """Remove if present; return the change in memory_bytes (<= 0)."""
        old = self.maps[ctype].pop(key, None)
        if old is None:
            return 0
        self._unindex(ctype, key, old.keywords)
        self.entries -= 1
        self.memory_bytes -= old.nbytes
        return -old.nbytes

    def _unindex(self, ctype: ContextType, key: str, keywords: Iterable[str]) -> None:
        index = self.index[ctype]
        for w in keywords:
            keys = index.get(w)
            if keys is None:
                continue
            if keys.__class__ is str:
                if keys == key:
                    del index[w]
            else:
                keys.discard(key)  # type: ignore[union-attr]
                if len(keys) == 1:
                    index[w] = next(iter(keys))

    def lookup(self, ctype: ContextType, word: str) -> list[str]:
        """Sorted keys of ``ctype`` having the keyword ``word``."""
        keys = self.index[ctype].get(word)
        if keys is None:
            return []
        return [keys] if keys.__class__ is str else sorted(keys)  # type: ignore[list-item]

    def touch(self) -> None:
        self.accesses += 1
        self.last_access = time.time()

    def per_type(self) -> dict[ContextType, int]:
        return {t: len(m) for t, m in self.maps.items() if m}


# Lua: delete the hash fields of one ContextType, bump the version, atomically.
# KEYS[1] entries hash, KEYS[2] version counter; ARGV[1] field prefix "<TYPE>\x1f"
# returns {fields deleted, new version}
_CLEAR_TYPE_LUA = """
local n = 0
local p = ARGV[1]
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(f, 1, #p) == p then
    redis.call('HDEL', KEYS[1], f)
    n = n + 1
  end
end
return {n, redis.call('INCR', KEYS[2])}
"""

_REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
_WRITE_BATCH = 10_000  # hash fields per HSET inside one MULTI/EXEC


def _s(x: bytes | str) -> str:
    return x.decode() if isinstance(x, bytes) else x


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
        both share a Redis Cluster slot.
    max_bytes : int
        Memory budget of the whole cache, measured as in ContextIDValue. Least recently
        used ContextIDs are evicted whole when over it (they stay in Redis and reload on
        use). A single context larger than the budget still works: it is loaded for each
        operation and dropped after it.
    max_value_bytes : int
        Largest serialised entry (key, value and keywords) that ``put`` accepts.
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
    ) -> None:
        self.prefix = validate_id(prefix, "key prefix")
        for name, n in (("max_bytes", max_bytes), ("max_value_bytes", max_value_bytes)):
            if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
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
        self.max_bytes = max_bytes
        self.max_value_bytes = max_value_bytes
        self.staleness = float(staleness)
        self._lock = threading.RLock()
        # Our own OrderedDict rather than cachetools.LRUCache: a context's size changes
        # while it sits in the cache (every put/remove), so we keep the running total
        # ourselves and evict after each operation instead of measuring at insert only.
        self._lru: OrderedDict[str, ContextIDValue] = OrderedDict()
        self._total = 0
        self._clear_type = redis_client.register_script(_CLEAR_TYPE_LUA)

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
        return Context(self, validate_id(context_id, "context id"), _KeywordRule(separator, regex))

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
            head, tail = f"{self.prefix}:ctx:{{", "}:entries"
            pattern = re.sub(r"([*?\[\]\\])", r"\\\1", head) + "*" + tail
            with self._redis_errors(f"list the stored contexts under prefix {self.prefix!r}"):
                ids = [
                    cid for key in self.redis.scan_iter(match=pattern, count=1000)
                    if (k := _s(key)).startswith(head) and k.endswith(tail)
                    and (cid := k[len(head):-len(tail)]) not in loaded
                ]
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
        df["last_access"] = pd.to_datetime(df["last_access"].astype("float64"), unit="s",
                                           utc=True)
        df["in_memory"] = df["in_memory"].astype(bool)
        return df.sort_values("context_id", ignore_index=True)

    def invalidate(self, context_id: str) -> bool:
        """Drop ``context_id`` from memory (Redis keeps it); return whether it was loaded."""
        cid = validate_id(context_id, "context id")
        with self._lock:
            value = self._lru.pop(cid, None)
            if value is not None:
                self._total -= value.memory_bytes
            return value is not None

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
        return (f"<ContextCache prefix={self.prefix!r}: {n} contexts in memory, "
                f"{format_bytes(total)} of {format_bytes(self.max_bytes)}>")

    # -- internals (callers hold self._lock unless said otherwise) --------------------

    def _keys(self, cid: str) -> tuple[str, str]:
        base = f"{self.prefix}:ctx:{{{cid}}}"
        return f"{base}:entries", f"{base}:version"

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

    def _load(self, cid: str) -> ContextIDValue:
        entries_key, version_key = self._keys(cid)
        with self._redis_errors(f"load context {cid!r}"):
            pipe = self.redis.pipeline(transaction=True)
            pipe.hgetall(entries_key)
            pipe.get(version_key)
            raw, version = pipe.execute()
        value = ContextIDValue(cid, len(entries_key.encode()) + len(version_key.encode()),
                               int(version or 0))
        for f, rec in raw.items():
            size = len(f) + len(rec)
            if isinstance(f, str):  # a client with decode_responses=True
                size = _utf8_len(f) + _utf8_len(rec)
            field, record = _s(f), _s(rec)
            tname, sep, key = field.partition(_FIELD_SEP)
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
            words = _keywords(key, map(str, stored))
            value.set(ctype, key, _Entry(record, words, _entry_bytes(size, key, words)))
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

    @contextmanager
    def _using(self, cid: str, fresh: bool, touch: bool = True) -> Iterator[ContextIDValue]:
        """Hold the cache lock with ``cid`` loaded; evict back under budget however it ends."""
        with self._lock:
            value = self._acquire(cid, fresh=fresh)
            try:
                if touch:
                    value.touch()
                yield value
            finally:
                self._evict()

    def _evict(self) -> None:
        while self._total > self.max_bytes and self._lru:
            _, value = self._lru.popitem(last=False)
            self._total -= value.memory_bytes


class Context(Mapping[str, Any]):
    """Handle on one ContextID of a ContextCache; cheap to make, holds no data itself.

    A read-only mapping of key → value, as ``dict`` and cachetools' caches are: ``ctx[key]``
    raises ``KeyError`` (a :class:`ContextKeyError`) for a missing key, ``ctx.get(key,
    default)`` returns ``default``, ``key in ctx``, ``len(ctx)`` and iteration count and
    list the distinct keys, sorted. Writes go through :meth:`put`, :meth:`put_many`,
    :meth:`remove` and :meth:`clear`. Tables: :meth:`to_frame` and :meth:`search`.

    Deviations from ``collections.abc.Mapping``, because one key may exist under several
    ContextTypes (Linkis keys are per type):

    - ``ctx[key]`` and ``ctx.get(key)`` raise :class:`~chunkframe.core.errors.ContextError`
      (not a ``KeyError``) when several types hold ``key`` and no ``type=`` says which;
    - ``keys()``, ``values()`` and ``items()`` take a ``type=`` filter and return lists;
      ``items()`` and ``values()`` have one element per entry, so a key held under two
      types comes twice there (once in ``keys()``, ``len()`` and iteration);
    - ``==`` compares which context two handles name (cache and id), not their contents.

    Every method but ``__repr__``, ``_repr_html_`` and ``info`` counts one access.

    Examples
    --------
    >>> ctx = cache.context("analysis-42")                           # doctest: +SKIP
    >>> ctx.put("owner", "ana, data team", keywords=["q3"])          # doctest: +SKIP
    >>> ctx["owner"], ctx.get("missing", "n/a"), "owner" in ctx      # doctest: +SKIP
    ('ana, data team', 'n/a', True)
    >>> ctx.search("data")                                          # doctest: +SKIP
           type    key           value
    0  METADATA  owner  ana, data team
    """

    __slots__ = ("cache", "context_id", "rule")

    def __init__(self, cache: ContextCache, context_id: str, rule: _KeywordRule | None = None):
        self.cache = cache
        self.context_id = context_id
        self.rule = rule or _DEFAULT_RULE

    # -- writing -----------------------------------------------------------------------

    def put(self, key: str, value: Any, type: ContextType | str = "METADATA",
            keywords: str | Iterable[str] | None = None) -> None:
        """Store ``value`` under ``key`` and ``type``, replacing any value there.

        Keywords: the key itself, words cut from a string value (or from the strings of a
        top-level list) and from @keyword method results by this handle's rule, and
        ``keywords`` (one string, or an iterable of them, taken whole). All lower-cased.
        Redis is written first (atomically with the version bump), then this process' copy.

        Parameters
        ----------
        key : str
            A non-empty string.
        value : Any
            JSON data (dict with str keys, list, str, int, float, bool, None) or a dataclass
            registered with :func:`register_value_type`; nothing is pickled.
        type : ContextType or str, default "METADATA"
            The entry's type (a member or its name, any case).
        keywords : str or iterable of str, optional
            Extra keywords, each taken whole.

        Raises
        ------
        ContextError
            A bad key, type or keyword, a value that cannot be stored, or one larger than
            the cache's ``max_value_bytes``; nothing is written.
        BackendUnavailableError
            Redis cannot be reached.

        Examples
        --------
        >>> ctx.put("owner", "ana, data team", keywords=["q3"])   # doctest: +SKIP
        >>> ctx.put("threshold", 0.8, type="variable")           # doctest: +SKIP
        """
        self.put_many([(key, value)], type=type, keywords=keywords)

    def put_many(self, items: Mapping[str, Any] | Iterable[tuple[Any, ...]],
                 type: ContextType | str = "METADATA",
                 keywords: str | Iterable[str] | None = None) -> int:
        """Store many entries of one type in one atomic Redis transaction; return how many.

        Every entry is checked before anything is written: one bad entry writes none.

        Parameters
        ----------
        items : mapping or iterable of tuples
            key → value, or ``(key, value)`` / ``(key, value, keywords)`` tuples.
        type : ContextType or str, default "METADATA"
            The type of every entry.
        keywords : str or iterable of str, optional
            Keywords added to every entry.

        Returns
        -------
        int
            The number of distinct keys written.

        Raises
        ------
        ContextError
            A malformed item, or any reason :meth:`put` gives; nothing is written.
        BackendUnavailableError
            Redis cannot be reached.

        Examples
        --------
        >>> ctx.put_many({"a": 1, "b": 2}, type="VARIABLE")     # doctest: +SKIP
        2
        """
        ctype = ContextType.parse(type)
        common = self._explicit(keywords)
        pairs: Iterable[Any] = items.items() if isinstance(items, Mapping) else items
        prepared: dict[str, tuple[str, str, _Entry]] = {}
        for item in pairs:
            if not isinstance(item, tuple) or len(item) not in (2, 3):
                raise ContextError(
                    f"put_many() items must be (key, value) or (key, value, keywords) tuples "
                    f"or a mapping; got {item!r} for context {self.context_id!r}"
                )
            key, val = self._check_key(item[0]), item[1]
            own = self._explicit(item[2]) if len(item) == 3 else ()
            prepared[key] = self._prepare(ctype, key, val, (*common, *own))
        if not prepared:
            return 0
        cache = self.cache
        entries_key, version_key = cache._keys(self.context_id)
        with cache._using(self.context_id, fresh=False) as value:
            with cache._redis_errors(f"write to context {self.context_id!r}"):
                pipe = cache.redis.pipeline(transaction=True)
                fields = [(f, rec) for f, rec, _ in prepared.values()]
                for i in range(0, len(fields), _WRITE_BATCH):
                    pipe.hset(entries_key, mapping=dict(fields[i:i + _WRITE_BATCH]))
                pipe.incr(version_key)
                new_version = pipe.execute()[-1]
            delta = sum(value.set(ctype, k, e) for k, (_, _, e) in prepared.items())
            cache._wrote(value, new_version, delta)
        return len(prepared)

    def remove(self, key: str, type: ContextType | str | None = None) -> None:
        """Delete ``key`` (of ``type``; of the only type holding it if None).

        Parameters
        ----------
        key : str
            The entry's key.
        type : ContextType or str, optional
            The entry's type; needed when several types hold ``key``.

        Raises
        ------
        ContextKeyError
            The key is not there (under ``type``); a KeyError, as ``del d[key]`` raises.
        ContextError
            ``type`` is None and several types hold ``key``, or ``type`` is not a type.

        Examples
        --------
        >>> ctx.remove("threshold")                              # doctest: +SKIP
        """
        key = self._check_key(key)
        cache = self.cache
        entries_key, version_key = cache._keys(self.context_id)
        with cache._using(self.context_id, fresh=True) as value:
            ctype = self._resolve(value, key, type)
            with cache._redis_errors(f"remove {key!r} from context {self.context_id!r}"):
                pipe = cache.redis.pipeline(transaction=True)
                pipe.hdel(entries_key, f"{ctype.value}{_FIELD_SEP}{key}")
                pipe.incr(version_key)
                _, new_version = pipe.execute()
            delta = value.delete(ctype, key)
            cache._wrote(value, new_version, delta)

    def clear(self, type: ContextType | str | None = None) -> int:
        """Delete every entry (of ``type``, if given) from Redis and from memory.

        Parameters
        ----------
        type : ContextType or str, optional
            Only entries of this type (None: all).

        Returns
        -------
        int
            How many entries this process knew of.

        Raises
        ------
        ContextError
            ``type`` is not a ContextType.
        BackendUnavailableError
            Redis cannot be reached.

        Examples
        --------
        >>> ctx.clear(type="VARIABLE")                           # doctest: +SKIP
        1
        """
        ctype = None if type is None else ContextType.parse(type)
        cache = self.cache
        entries_key, version_key = cache._keys(self.context_id)
        with cache._using(self.context_id, fresh=False) as value:
            with cache._redis_errors(f"clear context {self.context_id!r}"):
                if ctype is None:
                    pipe = cache.redis.pipeline(transaction=True)
                    pipe.delete(entries_key)
                    pipe.incr(version_key)
                    _, new_version = pipe.execute()
                else:
                    _, new_version = cache._clear_type(
                        keys=[entries_key, version_key], args=[f"{ctype.value}{_FIELD_SEP}"])
            types = list(ContextType) if ctype is None else [ctype]
            n, delta = 0, 0
            for t in types:
                keys = list(value.maps[t])
                n += len(keys)
                delta += sum(value.delete(t, k) for k in keys)
            cache._wrote(value, int(new_version), delta)
        return n

    # -- reading -----------------------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        """The value of ``key``, held under one type; see :meth:`get` for ``type=``.

        Raises ContextKeyError (a KeyError) if missing, ContextError if several types
        hold ``key``.
        """
        return self.value(key)

    def get(self, key: str, default: Any = None, *,  # type: ignore[override]
            type: ContextType | str | None = None) -> Any:
        """Return the value of ``key``, or ``default`` if the context does not hold it.

        Parameters
        ----------
        key : str
            The entry's key.
        default : Any, optional
            Returned when ``key`` is missing (under ``type``, if given). None by default.
        type : ContextType or str, optional
            Look under this type only (a member or its name, any case). None: under the
            only type holding ``key``.

        Returns
        -------
        Any
            A new object each call, decoded from the stored JSON (or a registered
            dataclass): change it, then :meth:`put` it back.

        Raises
        ------
        ContextError
            ``type`` is not a ContextType, ``key`` is not a non-empty string, or
            ``type`` is None and several types hold ``key`` (pass ``type=``).

        Examples
        --------
        >>> ctx = cf.context("analysis-42")                          # doctest: +SKIP
        >>> ctx.put("threshold", 0.8, type="VARIABLE")              # doctest: +SKIP
        >>> ctx.get("threshold"), ctx.get("nope"), ctx.get("nope", 0)  # doctest: +SKIP
        (0.8, None, 0)
        >>> ctx.get("threshold", type="DATA") is None               # doctest: +SKIP
        True
        """
        try:
            return self.value(key, type=type)
        except ContextKeyError:
            return default

    def value(self, key: str, *, type: ContextType | str | None = None) -> Any:
        """``ctx[key]`` under one ``type``: the value, or ContextKeyError (a KeyError) naming
        the types that do hold ``key`` if it is missing.

        Examples
        --------
        >>> ctx.value("threshold", type="VARIABLE")                  # doctest: +SKIP
        0.8
        """
        key = self._check_key(key)
        ctype = None if type is None else ContextType.parse(type)
        with self.cache._using(self.context_id, fresh=True) as value:
            record = value.maps[self._resolve(value, key, ctype)][key].record
        return _value_of(record)

    def search(self, keyword: str, type: ContextType | str | None = None) -> pd.DataFrame:
        """Return the entries having exactly ``keyword`` (any case), from the inverted index.

        Parameters
        ----------
        keyword : str
            One keyword: a key, a word cut from a value, or an explicit keyword.
        type : ContextType or str, optional
            Search this type only. None: every type.

        Returns
        -------
        pandas.DataFrame
            Columns ``type, key, value``, ordered by type then key; empty if none match.

        Raises
        ------
        ContextError
            ``keyword`` is not a non-empty string, or ``type`` is not a ContextType.

        Examples
        --------
        >>> ctx.put("owner", "ana, data team")                      # doctest: +SKIP
        >>> ctx.search("DATA")                                      # doctest: +SKIP
               type    key           value
        0  METADATA  owner  ana, data team
        """
        if not isinstance(keyword, str) or not keyword.strip():
            raise ContextError(
                f"search() takes a non-empty keyword string, got {keyword!r} "
                f"(context {self.context_id!r})"
            )
        word = _normalise_keyword(keyword)
        types = list(ContextType) if type is None else [ContextType.parse(type)]
        with self.cache._using(self.context_id, fresh=True) as value:
            rows = [(t.value, k, value.maps[t][k].record)
                    for t in types for k in value.lookup(t, word)]
        return self._frame(rows)

    def to_frame(self, type: ContextType | str | None = None) -> pd.DataFrame:
        """Return every entry (of ``type``, if given) as a table.

        Parameters
        ----------
        type : ContextType or str, optional
            Only entries of this type. None: every type.

        Returns
        -------
        pandas.DataFrame
            Columns ``type, key, value``, ordered by type then key.

        Raises
        ------
        ContextError
            ``type`` is not a ContextType.

        Examples
        --------
        >>> cf.context("analysis-42").to_frame()                    # doctest: +SKIP
               type       key                                 value
        0  METADATA  question  does humidity drive sensor failures?
        """
        return self._frame(self._records(type, by_key=False))

    def items(self, *, type: ContextType | str | None = None  # type: ignore[override]
              ) -> list[tuple[str, Any]]:
        """Return ``(key, value)`` pairs, one per entry, ordered by key (then type).

        Parameters
        ----------
        type : ContextType or str, optional
            Only entries of this type. None: every type, so a key held under two types
            gives two pairs (use :meth:`to_frame` to see their types).

        Returns
        -------
        list of (str, Any)
            A snapshot: later writes do not change it.

        Raises
        ------
        ContextError
            ``type`` is not a ContextType.

        Examples
        --------
        >>> dict(cf.context("analysis-42").items(type="VARIABLE"))  # doctest: +SKIP
        {'threshold': 0.8}
        """
        return [(k, _value_of(rec)) for _, k, rec in self._records(type, by_key=True)]

    def values(self, *, type: ContextType | str | None = None  # type: ignore[override]
               ) -> list[Any]:
        """Return the values, one per entry, in the order of :meth:`items`.

        Parameters
        ----------
        type : ContextType or str, optional
            Only entries of this type. None: every type.

        Returns
        -------
        list
            Decoded values (new objects each call).

        Raises
        ------
        ContextError
            ``type`` is not a ContextType.

        Examples
        --------
        >>> cf.context("analysis-42").values(type="VARIABLE")    # doctest: +SKIP
        [0.8]
        """
        return [v for _, v in self.items(type=type)]

    def keys(self, type: ContextType | str | None = None) -> list[str]:  # type: ignore[override]
        """Return the sorted distinct keys (of ``type``, if given).

        Parameters
        ----------
        type : ContextType or str, optional
            Only keys held under this type. None: every type.

        Returns
        -------
        list of str
            Sorted; a key held under several types comes once.

        Raises
        ------
        ContextError
            ``type`` is not a ContextType.

        Examples
        --------
        >>> cf.context("analysis-42").keys()                        # doctest: +SKIP
        ['inputs', 'question', 'threshold']
        """
        types = list(ContextType) if type is None else [ContextType.parse(type)]
        with self.cache._using(self.context_id, fresh=True) as value:
            return sorted({k for t in types for k in value.maps[t]})

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        """The number of distinct keys (a key held under several types counts once)."""
        with self.cache._using(self.context_id, fresh=True) as value:
            held = [m for m in value.maps.values() if m]
            return len(held[0]) if len(held) == 1 else len(set().union(*held))

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str) or not key:
            return False
        with self.cache._using(self.context_id, fresh=True) as value:
            return any(key in m for m in value.maps.values())

    def _records(self, type: ContextType | str | None, by_key: bool
                 ) -> list[tuple[str, str, str]]:
        """(type, key, JSON record) of every entry (of ``type``), by type then key, or by
        key then type."""
        types = list(ContextType) if type is None else [ContextType.parse(type)]
        with self.cache._using(self.context_id, fresh=True) as value:
            rows = [(t.value, k, e.record) for t in types for k, e in value.maps[t].items()]
        order = {t.value: i for i, t in enumerate(ContextType)}
        rows.sort(key=(lambda r: (r[1], order[r[0]])) if by_key else (lambda r: (order[r[0]], r[1])))
        return rows

    def info(self) -> dict[str, Any]:
        """Return the metrics of this context (loading it if needed; not an access).

        Returns
        -------
        dict
            ``context_id``, ``entries`` (one per key and type), ``per_type``,
            ``memory_bytes``, ``accesses``, ``last_access`` (epoch seconds or None) and
            ``in_memory``.

        Raises
        ------
        BackendUnavailableError
            Redis cannot be reached to load it.

        Examples
        --------
        >>> ctx.info()["entries"]                                # doctest: +SKIP
        3
        """
        with self.cache._using(self.context_id, fresh=True, touch=False) as value:
            out = {
                "context_id": self.context_id,
                "entries": value.entries,
                "per_type": {t.value: n for t, n in value.per_type().items()},
                "memory_bytes": value.memory_bytes,
                "accesses": value.accesses,
                "last_access": value.last_access,
            }
        with self.cache._lock:
            out["in_memory"] = self.context_id in self.cache._lru
        return out

    def __repr__(self) -> str:
        try:
            info = self.info()
        except ChunkFrameError as exc:
            return f"<Context {self.context_id!r} (not loaded: {exc})>"
        types = ", ".join(f"{t} {n}" for t, n in info["per_type"].items())
        return (f"<Context {self.context_id!r}: {info['entries']} entries"
                f"{f' ({types})' if types else ''}, {format_bytes(info['memory_bytes'])}>")

    def _repr_html_(self) -> str:
        esc = html.escape
        try:
            info = self.info()
            with self.cache._lock:
                value = self.cache._lru.get(self.context_id)
                sample = [] if value is None else [
                    (t.value, k, e.record) for t, m in value.maps.items()
                    for k, e in list(m.items())[:5]][:5]
        except ChunkFrameError as exc:
            return f"<p>Context <b>{esc(self.context_id)}</b>: not loaded ({esc(str(exc))})</p>"
        rows = "".join(f"<tr><td>{esc(t)}</td><td>{n}</td></tr>"
                       for t, n in info["per_type"].items())
        shown = "".join(
            f"<tr><td>{esc(t)}</td><td>{esc(k)}</td><td>{esc(_short(repr(_value_of(rec))))}</td></tr>"
            for t, k, rec in sample)
        more = info["entries"] - len(sample)
        return (
            f"<div><b>Context {esc(self.context_id)}</b>: {info['entries']} entries, "
            f"{esc(format_bytes(info['memory_bytes']))}"
            f"<table><tr><th>type</th><th>entries</th></tr>{rows}</table>"
            + (f"<table><tr><th>type</th><th>key</th><th>value</th></tr>{shown}</table>"
               if shown else "")
            + (f"<p>… {more} more: use .to_frame() or .search(keyword)</p>" if more > 0 else "")
            + "</div>"
        )

    # -- helpers -----------------------------------------------------------------------

    def _check_key(self, key: object) -> str:
        if not isinstance(key, str):
            raise ContextError(
                f"context keys are strings; got {key.__class__.__name__} {key!r} "
                f"for context {self.context_id!r}"
            )
        if not key:
            raise ContextError(
                f"empty key for context {self.context_id!r}; give a name such as 'owner'"
            )
        return key

    def _explicit(self, keywords: object) -> tuple[str, ...]:
        if keywords is None:
            return ()
        words: Any = [keywords] if isinstance(keywords, str) else keywords
        try:
            out = []
            for w in words:
                if not isinstance(w, str) or not w.strip():
                    raise ContextError(
                        f"keywords must be non-empty strings; got {w!r} in {keywords!r} "
                        f"for context {self.context_id!r}"
                    )
                out.append(_normalise_keyword(w))
        except TypeError:
            raise ContextError(
                f"keywords must be a string or an iterable of strings, got {keywords!r}"
            ) from None
        return tuple(out)

    def _derived(self, value: Any) -> list[str]:
        rule = self.rule
        if isinstance(value, str):
            return rule.parse(value)
        if isinstance(value, (list, tuple)):
            return [w for v in value if isinstance(v, str) for w in rule.parse(v)]
        methods = _KEYWORD_METHODS.get(value.__class__)
        if not methods:
            return []
        out: list[str] = []
        for name, spec in methods:
            try:
                result = getattr(value, name)()
            except Exception as exc:
                raise ContextError(
                    f"@keyword method {value.__class__.__qualname__}.{name}() raised "
                    f"{exc!r} while putting into context {self.context_id!r}; fix the method"
                ) from exc
            if result is None:
                continue
            parts = result if isinstance(result, (list, tuple, set, frozenset)) else (result,)
            for part in parts:
                out.extend((spec.rule or rule).parse(str(part)))
        return out

    def _prepare(self, ctype: ContextType, key: str, value: Any,
                 explicit: tuple[str, ...]) -> tuple[str, str, _Entry]:
        where = f"context {self.context_id!r}, type {ctype.value}"
        try:
            data = _encode(value, "value")
        except _Unserialisable as exc:
            raise ContextError(
                f"cannot store key {key!r} ({where}): {exc.where} has type "
                f"{exc.obj.__class__.__qualname__!r} ({_short(repr(exc.obj))}); {exc.hint}. "
                "Values are JSON data (dict with str keys, list, str, int, float, bool, None) "
                "or dataclasses registered with register_value_type(); nothing is pickled"
            ) from None
        except RecursionError:
            raise ContextError(
                f"cannot store key {key!r} ({where}): the value is nested too deeply or "
                "contains itself; store a flatter copy"
            ) from None
        words = {w for w in map(_normalise_keyword, self._derived(value)) if w}
        words.update(explicit)
        own = key.lower()
        stored = sorted(words - {own})
        record = json.dumps({"v": data, "k": stored}, ensure_ascii=False,
                            separators=(",", ":"))
        field = f"{ctype.value}{_FIELD_SEP}{key}"
        keywords = _keywords(key, words)
        size = _utf8_len(field) + _utf8_len(record)
        nbytes = _entry_bytes(size, key, keywords)
        if size > self.cache.max_value_bytes:
            raise ContextError(
                f"key {key!r} ({where}) serialises to {size} bytes with its keywords, over "
                f"the limit max_value_bytes={self.cache.max_value_bytes}; store large data "
                "as a dataset (cf.ingest) and put its id here, or raise max_value_bytes"
            )
        return field, record, _Entry(record, keywords, nbytes)

    def _resolve(self, value: ContextIDValue, key: str,
                 type: ContextType | str | None) -> ContextType:
        if type is not None:
            ctype = ContextType.parse(type)
            if key not in value.maps[ctype]:
                raise ContextKeyError(
                    f"context {self.context_id!r} has no key {key!r} of type {ctype.value}"
                    + self._elsewhere(value, key)
                )
            return ctype
        found = [t for t, m in value.maps.items() if key in m]
        if not found:
            raise ContextKeyError(
                f"context {self.context_id!r} has no key {key!r}; "
                "see ctx.keys() or ctx.search(keyword)"
            )
        if len(found) > 1:
            names = ", ".join(t.value for t in found)
            raise ContextError(
                f"key {key!r} of context {self.context_id!r} exists under types {names}; "
                f"pass type=, e.g. type={found[0].value!r}"
            )
        return found[0]

    def _elsewhere(self, value: ContextIDValue, key: str) -> str:
        other = [t.value for t, m in value.maps.items() if key in m]
        return f" (it exists under {', '.join(other)}; pass that type)" if other else ""

    @staticmethod
    def _frame(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
        return pd.DataFrame(
            {"type": [r[0] for r in rows], "key": [r[1] for r in rows],
             "value": pd.Series([_value_of(r[2]) for r in rows], dtype=object)},
        )

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Context) and other.cache is self.cache
                and other.context_id == self.context_id)

    def __hash__(self) -> int:
        return hash((id(self.cache), self.context_id))


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
