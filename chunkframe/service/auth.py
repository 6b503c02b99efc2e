"""Bearer-token auth as a plain ASGI wrapper: constant-time comparison, token never shown."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable
from typing import Any

from .errors import AuthenticationError

__all__ = ["BearerAuth"]


class BearerAuth:
    """Let a request through only with ``Authorization: Bearer <token>`` (``public`` paths
    excepted); otherwise answer 401 through ``on_error``.

    A plain ASGI wrapper rather than a middleware class of the framework: it adds one header
    lookup and one ``hmac.compare_digest`` to a request, nothing else.
    """

    def __init__(self, app: Any, token: str, public: Iterable[str] = (),
                 on_error: Callable[[BaseException], Any] | None = None) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()
        self.public = frozenset(public)
        self.on_error = on_error

    def __repr__(self) -> str:  # never the token
        return f"<BearerAuth public={sorted(self.public)!r}>"

    def authorized(self, headers: Iterable[tuple[bytes, bytes]]) -> bool:
        got = b""
        for name, value in headers:
            if name == b"authorization":
                got = value
                break
        return hmac.compare_digest(got, self._expected)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if (scope["type"] == "http" and scope["path"] not in self.public
                and not self.authorized(scope["headers"])):
            missing = not any(name == b"authorization" for name, _ in scope["headers"])
            exc = AuthenticationError(
                "this server needs a bearer token: send 'Authorization: Bearer <token>' "
                "(cf.connect(url, token=...) or CHUNKFRAME_TOKEN)" if missing else
                "the bearer token is not this server's; check the token you connect with")
            if self.on_error is None:
                raise exc
            response = self.on_error(exc)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
