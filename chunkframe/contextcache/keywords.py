"""Keywords of context entries: the @keyword decorator, separator/regex rules, derivation."""

from __future__ import annotations

import inspect
import re
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

from ..core.errors import ContextError
from .types import is_registered

__all__ = [
    "KeywordRule",
    "DEFAULT_RULE",
    "MAX_DERIVED_KEYWORD_CHARS",
    "keyword",
    "normalise_keyword",
    "explicit_keywords",
    "derive_keywords",
]

_DEFAULT_SPLIT = re.compile(r"[\s,]+")

#: derived keywords longer than this are not kept: a long word of a value (a 900 kB string
#: without spaces) is no search term, and keeping it would store the value twice
MAX_DERIVED_KEYWORD_CHARS = 256


class KeywordRule:
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


DEFAULT_RULE = KeywordRule()


class _KeywordSpec(NamedTuple):
    rule: KeywordRule | None  # None: the context's rule


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

    rule = None if separator is None and regex is None else KeywordRule(separator, regex)

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



_METHODS: dict[type, list[tuple[str, _KeywordSpec]]] = {}
_methods_lock = threading.Lock()


def _keyword_methods(cls: type) -> list[tuple[str, _KeywordSpec]]:
    """The @keyword methods of ``cls`` (found once per class), none if it is not registered."""
    if not is_registered(cls):
        return []
    with _methods_lock:
        methods = _METHODS.get(cls)
        if methods is None:
            methods = _METHODS[cls] = [
                (name, spec)
                for name in dir(cls)
                if isinstance(spec := getattr(getattr(cls, name, None), "__cf_keyword__", None),
                              _KeywordSpec)
            ]
    return methods


def normalise_keyword(word: object) -> str:
    """A keyword as it is indexed and searched: stripped and lower-cased."""
    return str(word).strip().lower()


def explicit_keywords(keywords: object, context_id: str) -> tuple[str, ...]:
    """Normalised explicit keywords (one string or an iterable of them) given to a put.

    Raises ContextError, naming ``context_id``, for a keyword that is not a non-empty string.
    """
    if keywords is None:
        return ()
    words: Any = [keywords] if isinstance(keywords, str) else keywords
    try:
        out = []
        for w in words:
            if not isinstance(w, str) or not w.strip():
                raise ContextError(
                    f"keywords must be non-empty strings; got {w!r} in {keywords!r} "
                    f"for context {context_id!r}"
                )
            out.append(normalise_keyword(w))
    except TypeError:
        raise ContextError(
            f"keywords must be a string or an iterable of strings, got {keywords!r}"
        ) from None
    return tuple(out)


def derive_keywords(value: Any, rule: KeywordRule, context_id: str) -> set[str]:
    """Normalised keywords cut from ``value``: a string, the strings of a list or tuple, or
    the results of a registered dataclass' @keyword methods; words longer than
    MAX_DERIVED_KEYWORD_CHARS are left out.

    Raises ContextError, naming ``context_id``, when a @keyword method raises.
    """
    if isinstance(value, str):
        words = rule.parse(value)
    elif isinstance(value, (list, tuple)):
        words = [w for v in value if isinstance(v, str) for w in rule.parse(v)]
    else:
        words = []
        for name, spec in _keyword_methods(value.__class__):
            try:
                result = getattr(value, name)()
            except Exception as exc:
                raise ContextError(
                    f"@keyword method {value.__class__.__qualname__}.{name}() raised "
                    f"{exc!r} while putting into context {context_id!r}; fix the method"
                ) from exc
            if result is None:
                continue
            parts = result if isinstance(result, (list, tuple, set, frozenset)) else (result,)
            for part in parts:
                words.extend((spec.rule or rule).parse(str(part)))
    return {w for w in map(normalise_keyword, words)
            if w and len(w) <= MAX_DERIVED_KEYWORD_CHARS}
