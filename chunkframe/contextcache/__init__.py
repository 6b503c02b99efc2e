"""Context entries and their keyword index, after Apache Linkis' context cache."""

from .cache import ContextCache
from .context import Context
from .entries import ContextIDValue
from .keywords import keyword
from .types import ContextKeyError, ContextType, register_value_type

__all__ = [
    "ContextType",
    "ContextCache",
    "Context",
    "ContextIDValue",
    "ContextKeyError",
    "keyword",
    "register_value_type",
]
