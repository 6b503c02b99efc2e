"""Resolve settings from arguments, then environment variables, then defaults."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

from .errors import InvalidArgumentError
from .integers import integer_at_least
from .permissions import modes

__all__ = ["redact", "is_postgres_url", "Settings", "resolve", "storage_options_json",
           "STORAGE_OPTIONS_ENV"]

DEFAULT_CHUNK_CACHE_BYTES = 256 * 2**20
DEFAULT_MAX_MAPPED_CHUNKS = 1024
DEFAULT_LOCAL_CACHE_BYTES = 4 * 2**30  # the local tier of an object store's chunks
DEFAULT_LOCK_TTL = 15.0
DEFAULT_RETRY_SECONDS = 30.0  # how long a write waits out a backend's blip
DEFAULT_PREFIX = "cf"
STORAGE_OPTIONS_ENV = "CHUNKFRAME_STORAGE_OPTIONS"
"""fsspec options (JSON) for every entry point that is given none: an S3 endpoint, a profile."""
_STORAGE_OPTIONS_EXAMPLE = '\'{"endpoint_url": "http://localhost:9000"}\''


# a URL's authority (what comes between "scheme://" and the path, query or fragment)
_AUTHORITY = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/?#\s]*)")
# a secret given as a key=value pair, in a query string or a connection string
_SECRET_PARAM = re.compile(r"(?i)(password|passwd|secret|token)=[^&\s'\"]*")


def _hide_userinfo(match: re.Match[str]) -> str:
    scheme, authority = match.groups()
    if "@" not in authority:
        return match.group(0)
    userinfo, _, host = authority.rpartition("@")  # the host follows the last "@"
    user, sep, _ = userinfo.partition(":")
    return f"{scheme}{user}:***@{host}" if sep else f"{scheme}***@{host}"


@overload
def redact(text: str) -> str: ...
@overload
def redact(text: None) -> None: ...
def redact(text: str | None) -> str | None:
    """``text`` (a URL, or a message quoting URLs) with every password replaced by ``***``:
    a URL's ``user:password@`` (a lone ``secret@`` entirely) and any ``password=``,
    ``passwd=``, ``secret=`` or ``token=`` value. What reprs, errors and logs may show.

    >>> redact("redis://ana:s3cret@host:1/0?token=t0k&db=2")
    'redis://ana:***@host:1/0?token=***&db=2'
    """
    if not text:
        return text
    return _SECRET_PARAM.sub(r"\1=***", _AUTHORITY.sub(_hide_userinfo, text))


def is_postgres_url(location: str | os.PathLike[str]) -> bool:
    """Whether a catalog ``location`` is a PostgreSQL URL (``postgresql://...``), not a file."""
    return str(location).startswith(("postgresql://", "postgres://"))


@dataclass(frozen=True)
class Settings:
    """Where chunkframe keeps things. ``redis_url=None`` means the embedded server.

    Its repr redacts passwords and leaves out the storage options (they hold credentials).
    """

    home: Path
    store_url: str
    redis_url: str | None
    catalog: str
    """A SQLite file's path or a ``postgresql://`` URL."""
    prefix: str = DEFAULT_PREFIX
    storage_options: dict[str, Any] = field(default_factory=dict)
    chunk_cache_bytes: int = DEFAULT_CHUNK_CACHE_BYTES
    lock_ttl: float = DEFAULT_LOCK_TTL
    permissions: str = "owner"  # of what is created: core.permissions.PERMISSIONS
    auto_compact: int | None = None
    """Compact a dataset after an append once its last this many chunks are all small (under
    half its ``chunk_rows``); None: only ``ds.compact()`` compacts."""
    local_cache_bytes: int = DEFAULT_LOCAL_CACHE_BYTES
    """The local tier's bound: chunks of an object store kept decompressed under
    ``<home>/tier`` (LRU by bytes, shared by the host's processes); 0: none are kept."""
    retry_seconds: float = DEFAULT_RETRY_SECONDS
    """How long a write retries a backend's transient faults (a Redis restarting, a cluster
    failing over) before it fails cleanly; 0: not at all."""
    max_mapped_chunks: int = DEFAULT_MAX_MAPPED_CHUNKS
    """Verified maps of local chunk files a reader keeps open at most (file-backed, shared
    and reclaimable: not counted in ``chunk_cache_bytes``); 0: none are kept."""

    def __repr__(self) -> str:
        return (f"Settings(home={str(self.home)!r}, store_url={redact(self.store_url)!r}, "
                f"redis_url={redact(self.redis_url)!r}, catalog={redact(self.catalog)!r}, "
                f"prefix={self.prefix!r}, chunk_cache_bytes={self.chunk_cache_bytes}, "
                f"lock_ttl={self.lock_ttl}, retry_seconds={self.retry_seconds}, "
                f"permissions={self.permissions!r}, "
                f"auto_compact={self.auto_compact!r}, max_mapped_chunks={self.max_mapped_chunks}, "
                f"local_cache_bytes={self.local_cache_bytes})")


def _count(options: dict[str, Any], name: str, default: int, what: str) -> int:
    """Option ``name`` (popped from ``options``), else ``CHUNKFRAME_<NAME>``, else ``default``:
    an integer >= 0 (``what`` it is, for the error)."""
    value = options.pop(name, None)
    if value is None:
        env = f"CHUNKFRAME_{name.upper()}"
        text = os.environ.get(env)
        try:
            value = default if text is None else int(text)
        except ValueError:
            raise InvalidArgumentError(
                f"{env} must be an integer >= 0 ({what}), got {text!r}; fix or unset it"
            ) from None
    return integer_at_least(value, name, 0)


def _seconds(options: dict[str, Any], name: str, default: float) -> float:
    """Option ``name`` (popped from ``options``), else ``CHUNKFRAME_<NAME>``, else ``default``:
    a number of seconds >= 0."""
    value = options.pop(name, None)
    where = name
    if value is None:
        where = f"CHUNKFRAME_{name.upper()}"
        value = os.environ.get(where, default)
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1.0
    if not seconds >= 0:  # also NaN
        raise InvalidArgumentError(
            f"{where} must be a number of seconds >= 0, got {value!r}; fix or unset it")
    return seconds


def resolve(
    store: str | os.PathLike[str] | None = None,
    redis: str | None = None,
    catalog: str | os.PathLike[str] | None = None,
    home: str | os.PathLike[str] | None = None,
    **options: Any,
) -> Settings:
    """Arguments win, then ``CHUNKFRAME_*`` environment variables, then ``~/.chunkframe``.

    ``storage_options`` given (even ``{}``) replace ``CHUNKFRAME_STORAGE_OPTIONS`` whole.
    """
    home_path = Path(home or os.environ.get("CHUNKFRAME_HOME") or "~/.chunkframe").expanduser()
    store_url = str(store or os.environ.get("CHUNKFRAME_STORE") or home_path / "store")
    redis_url = redis or os.environ.get("CHUNKFRAME_REDIS_URL") or None
    catalog = str(catalog or os.environ.get("CHUNKFRAME_CATALOG") or home_path / "catalog.db")
    if not is_postgres_url(catalog):
        catalog = str(Path(catalog).expanduser())
    prefix = options.pop("prefix", None) or os.environ.get("CHUNKFRAME_PREFIX") or DEFAULT_PREFIX
    cache = _count(options, "chunk_cache_bytes", DEFAULT_CHUNK_CACHE_BYTES,
                   "the decoded chunk cache's bound in bytes")
    maps = _count(options, "max_mapped_chunks", DEFAULT_MAX_MAPPED_CHUNKS,
                  "the verified maps a reader keeps open")
    tier = _count(options, "local_cache_bytes", DEFAULT_LOCAL_CACHE_BYTES,
                  "the local tier's bound in bytes")
    lock_ttl = float(options.pop("lock_ttl", DEFAULT_LOCK_TTL))
    if lock_ttl <= 0:
        raise InvalidArgumentError(f"lock_ttl must be > 0 seconds, got {lock_ttl}")
    retry_seconds = _seconds(options, "retry_seconds", DEFAULT_RETRY_SECONDS)
    storage_options = options.pop("storage_options", None)
    if storage_options is None and os.environ.get(STORAGE_OPTIONS_ENV):
        storage_options = storage_options_json(os.environ[STORAGE_OPTIONS_ENV],
                                               STORAGE_OPTIONS_ENV)
    storage_options = storage_options or {}
    permissions = (options.pop("permissions", None) or os.environ.get("CHUNKFRAME_PERMISSIONS")
                   or "owner")
    modes(permissions)  # raises naming the choices
    auto_compact = options.pop("auto_compact", None)
    if auto_compact is not None and (not isinstance(auto_compact, int)
                                     or isinstance(auto_compact, bool) or auto_compact < 2):
        raise InvalidArgumentError(
            f"auto_compact must be None (off) or an integer >= 2 (how many small chunks in a "
            f"row an append may leave before it compacts them), got {auto_compact!r}")
    if options:
        raise TypeError(f"unknown connect() options: {sorted(options)}")
    return Settings(
        home=home_path,
        store_url=store_url,
        redis_url=redis_url,
        catalog=catalog,
        prefix=prefix,
        storage_options=dict(storage_options),
        chunk_cache_bytes=int(cache),
        lock_ttl=lock_ttl,
        retry_seconds=retry_seconds,
        permissions=permissions,
        auto_compact=auto_compact,
        local_cache_bytes=tier,
        max_mapped_chunks=int(maps),
    )


def storage_options_json(text: str, where: str) -> dict[str, Any]:
    """fsspec storage options from the JSON object ``text`` (``where`` names its origin:
    ``--storage-options``, ``CHUNKFRAME_STORAGE_OPTIONS``); an :class:`InvalidArgumentError`
    says what is wrong and shows an example. The text is never quoted: it holds secrets.

    >>> storage_options_json('{"endpoint_url": "http://localhost:9000"}', "--storage-options")
    {'endpoint_url': 'http://localhost:9000'}
    """
    try:
        options = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgumentError(
            f"{where} is not JSON ({exc}); give a JSON object such as "
            f"{_STORAGE_OPTIONS_EXAMPLE}") from None
    if not isinstance(options, dict):
        raise InvalidArgumentError(
            f"{where} must be a JSON object such as {_STORAGE_OPTIONS_EXAMPLE}, not a "
            f"{type(options).__name__}")
    return options
