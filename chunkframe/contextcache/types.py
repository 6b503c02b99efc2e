"""Context entry types (ContextType) and value types: JSON data and registered dataclasses."""

from __future__ import annotations

import dataclasses
import json
import threading
import warnings
from enum import StrEnum
from typing import Any, TypeVar

from ..core.errors import ChunkFrameError, ContextError

__all__ = [
    "ContextType",
    "ContextKeyError",
    "TYPE_TAG",
    "Unserialisable",
    "register_value_type",
    "is_registered",
    "encode_value",
    "decode_value",
    "value_of",
    "short",
]

T = TypeVar("T")

#: tag of a serialised registered dataclass: ``{"__cf_type__": "module:qualname", "fields": {...}}``
TYPE_TAG = "__cf_type__"


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
            "or a chunkframe.ContextType member"
        )


class ContextKeyError(ChunkFrameError, KeyError):
    """A key that a context does not hold (under the type asked for)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""



_REGISTRY: dict[str, type] = {}
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
    with _registry_lock:
        _REGISTRY[_tag(cls)] = cls
    return cls


def is_registered(cls: type) -> bool:
    """Whether ``cls`` itself (not an older class of the same name) is a registered value type."""
    return _REGISTRY.get(_tag(cls)) is cls


class Unserialisable(Exception):
    """A value (or a part of it, at ``where``) that cannot be stored, with a ``hint``."""

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
        return (f"register its class first: chunkframe.register_value_type("
                f"{cls.__qualname__})")
    return "convert it to JSON data or to a dataclass registered with register_value_type()"


def encode_value(obj: Any, where: str = "value") -> Any:
    """Return ``obj`` as JSON-ready data, or raise Unserialisable naming the part that is not."""
    if obj is None or isinstance(obj, (str, bool, int, float)):
        return obj
    if isinstance(obj, dict):
        if TYPE_TAG in obj:
            # the tagged form passes through (an unresolved value put back as it came)
            if set(obj) == {TYPE_TAG, "fields"} and isinstance(obj["fields"], dict):
                return {TYPE_TAG: str(obj[TYPE_TAG]),
                        "fields": encode_value(obj["fields"], f"{where}['fields']")}
            raise Unserialisable(where, obj, f"the dict key {TYPE_TAG!r} is reserved; rename it")
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise Unserialisable(
                    f"{where}[{k!r}]", k,
                    "dict keys must be str (JSON would turn them into strings); convert them",
                )
            out[k] = encode_value(v, f"{where}[{k!r}]")
        return out
    if isinstance(obj, (list, tuple)):  # tuples are stored, and come back, as lists
        return [encode_value(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    cls: type = obj.__class__
    if dataclasses.is_dataclass(obj) and is_registered(cls):
        return {TYPE_TAG: _tag(cls), "fields": {
            f.name: encode_value(getattr(obj, f.name), f"{where}.{f.name}")
            for f in dataclasses.fields(obj) if f.init
        }}
    if cls.__module__ == "numpy" and hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:
        return encode_value(obj.item(), where)  # numpy scalars: lossless as Python numbers
    raise Unserialisable(where, obj, _hint(obj))


def decode_value(obj: Any) -> Any:
    """Stored JSON data back as a value: tagged dicts of registered classes rebuilt."""
    if isinstance(obj, list):
        return [decode_value(v) for v in obj]
    if isinstance(obj, dict):
        if len(obj) == 2 and TYPE_TAG in obj and isinstance(obj.get("fields"), dict):
            tag = obj[TYPE_TAG]
            fields = {k: decode_value(v) for k, v in obj["fields"].items()}
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
        return {k: decode_value(v) for k, v in obj.items()}
    return obj


def value_of(record: str) -> Any:
    """The value of a stored JSON record ``{"v": value, "k": [keywords]}``, decoded."""
    value = json.loads(record)["v"]
    return decode_value(value) if TYPE_TAG in record else value


def short(text: str, limit: int = 60) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis if cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
