"""One ContextID in memory: per-type entry maps, the keyword inverted index, size and metrics."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from typing import NamedTuple

from .types import ContextType

__all__ = ["FIELD_SEP", "Entry", "ContextIDValue", "field_of", "utf8_len", "entry_bytes",
           "with_own_keyword"]

FIELD_SEP = "\x1f"  # between the ContextType and the key in a Redis hash field


def field_of(ctype: ContextType, key: str) -> str:
    """The Redis hash field of an entry: ``"<TYPE>\\x1f<key>"``."""
    return f"{ctype.value}{FIELD_SEP}{key}"


class Entry(NamedTuple):
    """One entry as held in memory."""

    record: str  # the JSON record as stored in Redis: {"v": value, "k": [keywords]}
    keywords: tuple[str, ...]  # every keyword, the key's own included
    nbytes: int  # field + record + index postings, UTF-8 bytes


def utf8_len(text: str) -> int:
    """The UTF-8 length of ``text`` (fast for ASCII)."""
    return len(text) if text.isascii() else len(text.encode())


def entry_bytes(stored_bytes: int, key: str, keywords: tuple[str, ...]) -> int:
    """``stored_bytes`` (hash field + record) plus one keyword → key posting per keyword."""
    return stored_bytes + utf8_len("".join(keywords)) + len(keywords) * utf8_len(key)


def with_own_keyword(key: str, words: Iterable[str]) -> tuple[str, ...]:
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
        self.maps: dict[ContextType, dict[str, Entry]] = {t: {} for t in ContextType}
        # keyword -> key, or -> set of keys once a second key has it: most keywords (the
        # key's own, ids) belong to one entry, and a str costs nothing where a set is 216 B
        self.index: dict[ContextType, dict[str, str | set[str]]] = {t: {} for t in ContextType}
        self.entries = 0
        self.memory_bytes = base_bytes
        self.accesses = 0
        self.last_access: float | None = None
        self.version = version  # Redis version this copy reflects; -1: known stale
        self.checked_at = time.monotonic()

    def set(self, ctype: ContextType, key: str, entry: Entry) -> int:
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
        """Count one access, now."""
        self.accesses += 1
        self.last_access = time.time()

    def per_type(self) -> dict[ContextType, int]:
        """Entries per type, for the types holding any."""
        return {t: len(m) for t, m in self.maps.items() if m}
