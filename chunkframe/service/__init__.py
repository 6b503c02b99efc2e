"""The HTTP service (``chunkframe serve``) and its remote client (``cf.connect("http://...")``)."""

from __future__ import annotations

from typing import Any

from .config import ServiceConfig
from .errors import (
    AuthenticationError,
    MissingExtraError,
    ReadOnlyError,
    RequestTooLargeError,
    ServiceError,
)

__all__ = [
    "ServiceConfig", "create_app", "serve", "RemoteClient", "RemoteDataset", "RemoteContext",
    "AuthenticationError", "MissingExtraError", "ReadOnlyError", "RequestTooLargeError",
    "ServiceError",
]

_LAZY = {"create_app": "app", "serve": "run", "RemoteClient": "remote",
         "RemoteDataset": "remote", "RemoteContext": "remote"}


def __getattr__(name: str) -> Any:  # the web framework and HTTP client load on first use
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
