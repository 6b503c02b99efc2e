"""Context: the mapping-like handle on one ContextID of a ContextCache."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..core.errors import ChunkFrameError, ContextError
from ..core.formats import STYLE, header_html, table_html
from ..core.units import format_bytes, plural
from .entries import ContextIDValue, Entry, entry_bytes, field_of, utf8_len, with_own_keyword
from .keywords import DEFAULT_RULE, KeywordRule, derive_keywords, explicit_keywords, normalise_keyword
from .types import ContextKeyError, ContextType, Unserialisable, encode_value, short, value_of

if TYPE_CHECKING:
    from .cache import ContextCache  # the cache makes handles: it imports this module

__all__ = ["Context"]


def _shown(value: Any) -> str:
    """A value as a repr shows it: a string as it is, anything else as Python writes it."""
    return value if isinstance(value, str) else repr(value)


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

    def __init__(self, cache: ContextCache, context_id: str, rule: KeywordRule | None = None):
        self.cache = cache
        self.context_id = context_id
        self.rule = rule or DEFAULT_RULE

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
        common = explicit_keywords(keywords, self.context_id)
        pairs: Iterable[Any] = items.items() if isinstance(items, Mapping) else items
        prepared: dict[str, tuple[str, str, Entry]] = {}
        for item in pairs:
            if not isinstance(item, tuple) or len(item) not in (2, 3):
                raise ContextError(
                    f"put_many() items must be (key, value) or (key, value, keywords) tuples "
                    f"or a mapping; got {item!r} for context {self.context_id!r}"
                )
            key, val = self._check_key(item[0]), item[1]
            own = explicit_keywords(item[2], self.context_id) if len(item) == 3 else ()
            prepared[key] = self._prepare(ctype, key, val, (*common, *own))
        if not prepared:
            return 0
        with self.cache.using(self.context_id, fresh=False) as value:
            self.cache.write(value, ctype, prepared)
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
        with self.cache.using(self.context_id, fresh=True) as value:
            self.cache.delete(value, self._resolve(value, key, type), key)

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
        with self.cache.using(self.context_id, fresh=False) as value:
            return self.cache.delete_all(value, ctype)

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
        with self.cache.using(self.context_id, fresh=True) as value:
            record = value.maps[self._resolve(value, key, ctype)][key].record
        return value_of(record)

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
        word = normalise_keyword(keyword)
        types = list(ContextType) if type is None else [ContextType.parse(type)]
        with self.cache.using(self.context_id, fresh=True) as value:
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
        return [(k, value_of(rec)) for _, k, rec in self._records(type, by_key=True)]

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
        with self.cache.using(self.context_id, fresh=True) as value:
            return sorted({k for t in types for k in value.maps[t]})

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        """The number of distinct keys (a key held under several types counts once)."""
        with self.cache.using(self.context_id, fresh=True) as value:
            held = [m for m in value.maps.values() if m]
            return len(held[0]) if len(held) == 1 else len(set().union(*held))

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str) or not key:
            return False
        with self.cache.using(self.context_id, fresh=True) as value:
            return any(key in m for m in value.maps.values())

    def _records(self, type: ContextType | str | None, by_key: bool
                 ) -> list[tuple[str, str, str]]:
        """(type, key, JSON record) of every entry (of ``type``), by type then key, or by
        key then type."""
        types = list(ContextType) if type is None else [ContextType.parse(type)]
        with self.cache.using(self.context_id, fresh=True) as value:
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
        with self.cache.using(self.context_id, fresh=True, touch=False) as value:
            out = {
                "context_id": self.context_id,
                "entries": value.entries,
                "per_type": {t.value: n for t, n in value.per_type().items()},
                "memory_bytes": value.memory_bytes,
                "accesses": value.accesses,
                "last_access": value.last_access,
            }
        out["in_memory"] = self.cache.is_loaded(self.context_id)
        return out

    def __repr__(self) -> str:
        try:
            info = self.info()
        except ChunkFrameError as exc:
            return f"<Context {self.context_id!r} (not loaded: {exc})>"
        types = ", ".join(f"{t} {n}" for t, n in info["per_type"].items())
        return (f"<Context {self.context_id!r}: {plural(info['entries'], 'entry', 'entries')}"
                f"{f' ({types})' if types else ''}, {format_bytes(info['memory_bytes'])}>")

    def _repr_html_(self) -> str:
        """The header form of every chunkframe repr, the entries per type and a few
        entries (values as ``ds.tags()`` shows them: strings unquoted)."""
        try:
            info = self.info()
            sample = self.cache.sample(self.context_id, 5)
        except ChunkFrameError as exc:
            return (f"{STYLE}<div class='cf-repr'>"
                    + header_html("Context", self.context_id, ["not loaded", str(exc)]) + "</div>")
        facts = [plural(info["entries"], "entry", "entries"), format_bytes(info["memory_bytes"])]
        facts += [f"{t} {n:,}" for t, n in info["per_type"].items()]
        shown = [[t, k, short(_shown(value_of(rec)))] for t, k, rec in sample]
        more = info["entries"] - len(sample)
        return (f"{STYLE}<div class='cf-repr'>"
                + header_html("Context", self.context_id, facts)
                + (table_html(["type", "key", "value"], shown) if shown else "")
                + (f"<div class='cf-muted'>… {plural(more, 'more entry', 'more entries')}: "
                   ".to_frame() or .search(keyword)</div>" if more > 0 else "")
                + "</div>")

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

    def _prepare(self, ctype: ContextType, key: str, value: Any,
                 explicit: tuple[str, ...]) -> tuple[str, str, Entry]:
        where = f"context {self.context_id!r}, type {ctype.value}"
        try:
            data = encode_value(value, "value")
        except Unserialisable as exc:
            raise ContextError(
                f"cannot store key {key!r} ({where}): {exc.where} has type "
                f"{exc.obj.__class__.__qualname__!r} ({short(repr(exc.obj))}); {exc.hint}. "
                "Values are JSON data (dict with str keys, list, str, int, float, bool, None) "
                "or dataclasses registered with register_value_type(); nothing is pickled"
            ) from None
        except RecursionError:
            raise ContextError(
                f"cannot store key {key!r} ({where}): the value is nested too deeply or "
                "contains itself; store a flatter copy"
            ) from None
        words = derive_keywords(value, self.rule, self.context_id)
        words.update(explicit)
        own = key.lower()
        stored = sorted(words - {own})
        record = json.dumps({"v": data, "k": stored}, ensure_ascii=False,
                            separators=(",", ":"))
        field = field_of(ctype, key)
        keywords = with_own_keyword(key, words)
        size = utf8_len(field) + utf8_len(record)
        nbytes = entry_bytes(size, key, keywords)
        if size > self.cache.max_value_bytes:
            raise ContextError(
                f"key {key!r} ({where}) serialises to {size} bytes with its keywords, over "
                f"the limit max_value_bytes={self.cache.max_value_bytes}; store large data "
                "as a dataset (cf.ingest) and put its id here, or raise max_value_bytes"
            )
        return field, record, Entry(record, keywords, nbytes)

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
             "value": pd.Series([value_of(r[2]) for r in rows], dtype=object)},
        )

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Context) and other.cache is self.cache
                and other.context_id == self.context_id)

    def __hash__(self) -> int:
        return hash((id(self.cache), self.context_id))

