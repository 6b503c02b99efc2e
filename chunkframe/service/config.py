"""The service's own settings (limits, token); importable without the web framework."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.errors import InvalidArgumentError
from ..core.integers import integer_at_least
from .health import check_interval

__all__ = ["ServiceConfig"]


@dataclass(frozen=True)
class ServiceConfig:
    """The service's own settings; the data settings are the client's (``cf.connect()``).

    ``token``: bearer token every route but ``/v1/health`` requires (None: no auth; only
    allowed on loopback, see :mod:`chunkframe.service.run`). ``max_body_bytes``: largest
    request body. ``max_batch``: most serial numbers in one batch read. ``max_rows``: most
    rows in one slice. ``health_interval``: seconds between two background dry runs of
    the recoverer, whose last report ``/v1/health?detail=1`` returns (0: none).
    """

    token: str | None = field(default=None, repr=False)
    max_body_bytes: int = 4 * 2**20
    max_batch: int = 100_000
    max_rows: int = 250_000
    health_interval: float = 60.0

    def __post_init__(self) -> None:
        check_interval(self.health_interval)
        for name in ("max_body_bytes", "max_batch", "max_rows"):
            object.__setattr__(self, name, integer_at_least(getattr(self, name), name, 1))
        if self.token is not None and not self.token:
            raise InvalidArgumentError("the token must not be empty (leave it unset for no auth)")

    def limits(self) -> dict[str, int]:
        return {"max_body_bytes": self.max_body_bytes, "max_batch": self.max_batch,
                "max_rows": self.max_rows}
