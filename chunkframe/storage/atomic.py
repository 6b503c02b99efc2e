"""Atomic local files: written under a temporary name beside their destination, synced, renamed whole."""

from __future__ import annotations

import glob
import mmap
import os
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import pyarrow as pa

from ..core.permissions import create_file

__all__ = ["AtomicFile", "TEMP_SUFFIX", "is_temp", "sweep_stale", "sweep_temps", "sync_dir"]

TEMP_SUFFIX = ".partial"
"""Ends the name of every temporary file: listings skip such names, sweeps remove them."""

T = TypeVar("T")


def is_temp(name: str) -> bool:
    """Whether ``name`` is the temporary of an :class:`AtomicFile` (never a committed file)."""
    return name.endswith(TEMP_SUFFIX)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class AtomicFile:
    """A local file that appears under its final name whole, or not at all.

    :meth:`open` creates ``<path>.<pid>-<hex>.partial`` in the destination's directory (the
    same filesystem, so the rename is atomic); :meth:`commit` closes it, syncs its bytes to
    disk and renames it over ``path`` (``os.replace``); :meth:`abort` removes it. A crash,
    even ``kill -9``, leaves either the old file or the new one under ``path``, plus at most
    a temporary that :func:`sweep_stale` or :func:`sweep_temps` removes later.

    Parameters
    ----------
    path : str
        The destination; its directory must exist.
    sync_dir : bool
        Also sync the directory after the rename, so the new name survives a power loss
        (exports: the user's file); chunk stores skip it, as their checkpoints are re-checked
        against the files on resume.
    mode : int, optional
        The file's mode, exactly, whatever the umask (chunk stores: owner-only by default,
        see :mod:`chunkframe.core.permissions`); None leaves it to the umask (exports).

    Examples
    --------
    >>> target = AtomicFile("/tmp/out.bin")          # doctest: +SKIP
    >>> target.open().write(b"payload")              # doctest: +SKIP
    >>> target.commit()                              # doctest: +SKIP
    (7, None)
    """

    def __init__(self, path: str, *, sync_dir: bool = False, mode: int | None = None) -> None:
        self.path = path
        self.sync_dir = sync_dir
        self.mode = mode
        self.tmp = f"{path}.{os.getpid()}-{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}"
        self.sink: pa.NativeFile | None = None

    def open(self) -> pa.NativeFile:
        """Create the temporary file and return it for writing (an Arrow ``OSFile``)."""
        if self.mode is not None:
            create_file(self.tmp, self.mode)  # before any byte, so none is ever wider open
        self.sink = pa.OSFile(self.tmp, "wb")
        return self.sink

    def commit(self, inspect: Callable[[Any], T] | None = None) -> tuple[int, T | None]:
        """Close, sync and rename the temporary into place; returns its size and what
        ``inspect`` (if given) returned for the bytes that landed, read through a read-only
        memory map of the temporary before the rename (no copy in memory). On failure the
        temporary is removed and the error passes on."""
        if self.sink is None:
            raise RuntimeError(f"commit() of {self.path!r} before open()")
        try:
            self.sink.close()
            with open(self.tmp, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                seen = None
                if inspect is not None:
                    if size:
                        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as view:
                            seen = inspect(view)
                    else:
                        seen = inspect(b"")  # an empty file cannot be mapped
                os.fsync(f.fileno())
            os.replace(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise
        if self.sync_dir:
            sync_dir(os.path.dirname(self.path) or ".")
        return size, seen

    def abort(self) -> None:
        """Close and remove the temporary; never raises (the error that led here matters)."""
        try:
            if self.sink is not None:
                self.sink.close()
        except Exception:  # noqa: BLE001
            pass
        try:
            os.unlink(self.tmp)
        except OSError:
            pass


def sync_dir(directory: str) -> None:
    """Sync a directory's entries (new names) to disk; a filesystem that cannot is skipped."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot fsync a directory
    finally:
        os.close(fd)


def sweep_stale(path: str) -> int:
    """Remove the temporaries of ``path`` whose writing process is gone (killed mid-write);
    a live writer's temporary is left alone. Returns how many were removed."""
    removed = 0
    for stale in glob.glob(f"{glob.escape(path)}.*-*{TEMP_SUFFIX}"):
        pid = stale[len(path) + 1:].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            try:
                os.unlink(stale)
                removed += 1
            except OSError:
                pass
    return removed


def sweep_temps(directory: str) -> int:
    """Remove every temporary under ``directory``, live writers' too: only for a caller that
    excludes every other writer there (a chunk store's dataset under its ingest lock).
    Returns how many were removed."""
    removed = 0
    for dirpath, _, names in os.walk(directory):
        for name in names:
            if is_temp(name):
                try:
                    os.unlink(os.path.join(dirpath, name))
                    removed += 1
                except FileNotFoundError:
                    pass
    return removed
