"""Errors of the HTTP service and its remote client, and their HTTP status codes."""

from __future__ import annotations

from ..core.errors import ChunkFrameError

__all__ = ["AuthenticationError", "RequestTooLargeError", "ReadOnlyError", "ServiceError",
           "NotFoundError", "MissingExtraError"]


class ServiceError(ChunkFrameError):
    """The server answered with an error the client has no more specific class for."""


class NotFoundError(ServiceError, KeyError):
    """HTTP 404 for something the client has no more specific class for (a context entry)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class AuthenticationError(ChunkFrameError, PermissionError):
    """A missing or wrong bearer token (HTTP 401)."""


class RequestTooLargeError(ChunkFrameError, ValueError):
    """A request body, batch or slice over the server's bounds (HTTP 413)."""


class ReadOnlyError(ChunkFrameError, NotImplementedError):
    """A write (ingest, append, delete) asked of a remote client: writes are local-only."""


class MissingExtraError(ChunkFrameError, ImportError):
    """An optional dependency of the service is not installed."""

    def __init__(self, what: str, module: str) -> None:
        super().__init__(
            f"{what} needs the optional dependency {module!r}, which is not installed; "
            "install the service extra: pip install 'chunkframe[service]'")
