"""Errors of the HTTP service and its remote client, and their HTTP status codes."""

from __future__ import annotations

from typing import Any

from ..core.errors import PYTHON, Arg, Call, ChunkFrameError, HintStyle, Placeholder

__all__ = ["AuthenticationError", "RequestTooLargeError", "ReadOnlyError", "ServiceError",
           "NotFoundError", "MissingExtraError", "HTTP", "HINTS_HEADER"]

HINTS_HEADER = "chunkframe-hints"
"""A request header: ``python`` asks for error hints in the words of the Python API (the
remote client sends it, as its users call Python); without it, hints name HTTP routes."""


class _HttpStyle:
    """Hints in the words of the HTTP API: routes and query parameters where the server has
    them; what only a local client does (writes), said as that client's call.

    >>> from chunkframe.core.errors import Hint
    >>> Hint("list them with {}", Call.of("datasets")).render(HTTP)
    'list them with GET /v1/datasets'
    >>> Hint("ingest it with {}", Call.of("ingest", Placeholder("source"), "x")).render(HTTP)
    "ingest it with cf.ingest(source, 'x') on a local client (this server only reads)"
    >>> Hint("take rows with {} and {}", Arg("start"), Arg("stop")).render(HTTP)
    'take rows with ?start=... and ?stop=...'
    """

    QUERY = frozenset({"version", "as_of", "column", "columns", "start", "stop", "date_range",
                       "device", "keyword", "type", "index"})
    """Arguments that are query parameters of the routes of the same read."""

    ROUTES = {"datasets": "GET /v1/datasets", "find": "GET /v1/find?keyword=...",
              "open": "GET /v1/datasets/{}"}
    """Python API function -> the route doing the same."""

    def arg(self, arg: Arg) -> str:
        if arg.name in self.QUERY:
            value = "..." if arg.value is ... or isinstance(arg.value, Placeholder) else arg.value
            return f"?{arg.name}={value}"
        return PYTHON.arg(arg)  # an argument of a write: said as the Python call's

    def call(self, call: Call) -> str:
        route = self.ROUTES.get(call.func)
        if route is None:
            return f"{PYTHON.call(call)} on a local client (this server only reads)"
        words: list[Any] = ["..." if isinstance(a, Placeholder) else a for a in call.args]
        path = route.format(*words) if "{}" in route else route
        params = "&".join(self.arg(a)[1:] for a in call.kwargs if a.name in self.QUERY)
        return f"{path}?{params}" if params else path


HTTP: HintStyle = _HttpStyle()


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
