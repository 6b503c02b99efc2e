"""Chunk store: put/get/delete bytes by key over fsspec (local directory, s3://, memory://)."""

from __future__ import annotations

import mmap
import os
import threading
import uuid
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa

from .codec import checksum
from .errors import BackendUnavailableError

__all__ = ["ChunkStore"]

_INSTALL_HINTS = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs"}


class ChunkStore:
    """Bytes by key under one root URL; ``get`` of a missing key returns ``None``.

    Local writes are atomic: a temp file in the same directory, fsync, then ``os.replace``,
    so a crash never leaves a torn chunk under its final key. Object stores (S3) replace
    whole objects on PUT, which is atomic by itself.
    """

    def __init__(self, url: str | os.PathLike[str], storage_options: dict[str, Any] | None = None):
        url = str(url)
        self.url = url
        self.protocol = url.split("://", 1)[0] if "://" in url else "file"
        try:
            self.fs, root = fsspec.url_to_fs(url, **(storage_options or {}))
        except ImportError as exc:
            pkg = _INSTALL_HINTS.get(self.protocol, self.protocol)
            raise BackendUnavailableError(
                f"store {url!r} needs the {pkg!r} package: pip install {pkg}"
            ) from exc
        self.root = root.rstrip("/")
        self.local = self.protocol in ("file", "local")
        if self.local:
            try:
                Path(self.root).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise BackendUnavailableError(
                    f"cannot use {url!r} as the chunk store: {exc}; give a writable directory "
                    "(or set CHUNKFRAME_STORE)"
                ) from exc

    def __repr__(self) -> str:
        return f"ChunkStore({self.url!r})"

    def path(self, key: str) -> str:
        """Full path of a key inside the store (what a plain Arrow reader would open)."""
        if not key or key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"invalid store key {key!r}")
        return f"{self.root}/{key}"

    def url_of(self, key: str) -> str:
        """A URL for ``key`` that fsspec (or, for local stores, any program) can open."""
        p = self.path(key)
        return p if self.local else f"{self.protocol}://{p}"

    def put(self, key: str, data: bytes) -> str:
        """Write ``data`` under ``key`` atomically, replacing any previous value; returns its
        checksum."""
        return self.write(key, lambda f: f.write(data))[0]

    def write(self, key: str, fill: Callable[[pa.NativeFile], object]) -> tuple[str, int]:
        """Stream an object into ``key`` with ``fill(file)``, atomically; returns the checksum
        and size of the bytes that landed.

        Local files are written in place (no copy of the object in memory) and checksummed
        through a memory map of the written file. Errors raised by ``fill`` itself pass
        through; failures of the store become :class:`BackendUnavailableError`.
        """
        path = self.path(key)
        if self.local:
            try:
                return self._write_local(path, fill)
            except OSError as exc:
                raise BackendUnavailableError(
                    f"could not write chunk {key!r} to store {self.url!r}: {exc}"
                ) from exc
        sink = pa.BufferOutputStream()
        fill(sink)
        data = sink.getvalue()
        try:
            self.fs.pipe_file(path, data.to_pybytes())  # one PUT: atomic on object stores
        except Exception as exc:  # botocore's and aiohttp's errors are not OSErrors
            raise BackendUnavailableError(
                f"could not write chunk {key!r} to store {self.url!r}: {exc}"
            ) from exc
        return checksum(data), data.size

    @staticmethod
    def _write_local(path: str, fill: Callable[[pa.NativeFile], object]) -> tuple[str, int]:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{uuid.uuid4().hex[:8]}.partial"
        try:
            with pa.OSFile(tmp, "wb") as f:
                fill(f)
            with open(tmp, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size:
                    with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as view:
                        digest = checksum(view)
                else:
                    digest = checksum(b"")
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        return digest, size

    def get(self, key: str) -> bytes | None:
        """The bytes under ``key``, or ``None`` if there is no such key."""
        path = self.path(key)
        try:
            if self.local:
                with open(path, "rb") as f:
                    return f.read()
            return bytes(self.fs.cat_file(path))
        except FileNotFoundError:
            return None
        except Exception as exc:  # OSError, or a backend's own (botocore's connection errors)
            raise BackendUnavailableError(
                f"could not read chunk {key!r} from store {self.url!r}: {exc}"
            ) from exc

    def read(self, key: str) -> pa.Buffer | None:
        """Like :meth:`get`, as an Arrow buffer. Large local objects are read into pages
        from a small pool (see :class:`PagePool`) instead of the heap."""
        if not self.local:
            data = self.get(key)
            return None if data is None else pa.py_buffer(data)
        path = self.path(key)
        try:
            with open(path, "rb", buffering=0) as f:
                size = os.fstat(f.fileno()).st_size
                if size < _OWN_PAGES_MIN:
                    return pa.py_buffer(f.read())
                return PAGES.read_into(f, size)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise BackendUnavailableError(
                f"could not read chunk {key!r} from store {self.url!r}: {exc}"
            ) from exc

    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self.path(key)))

    def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is not an error."""
        path = self.path(key)
        try:
            self.fs.rm_file(path)
        except FileNotFoundError:
            pass
        except Exception as exc:
            raise BackendUnavailableError(
                f"could not delete chunk {key!r} from store {self.url!r}: {exc}"
            ) from exc

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys under ``prefix`` (a directory-like prefix), sorted."""
        base = self.path(prefix.rstrip("/")) if prefix else self.root
        try:
            found = self.fs.find(base)
        except FileNotFoundError:
            return iter(())
        except Exception as exc:
            raise BackendUnavailableError(
                f"could not list {prefix!r} in store {self.url!r}: {exc}"
            ) from exc
        start = len(self.root) + 1
        return iter(sorted(p[start:] for p in found if not p.endswith(".partial")))

    def sweep_partials(self, prefix: str = "") -> int:
        """Remove temp files a killed local writer left under ``prefix``; returns how many.

        Only the holder of a dataset's ingest lock may call this for that dataset's keys:
        a ``.partial`` file of a live writer would be removed under it.
        """
        if not self.local:
            return 0  # object stores never expose a half-written object
        base = self.path(prefix.rstrip("/")) if prefix else self.root
        removed = 0
        for dirpath, _, names in os.walk(base):
            for name in names:
                if name.endswith(".partial"):
                    try:
                        os.unlink(os.path.join(dirpath, name))
                        removed += 1
                    except FileNotFoundError:
                        pass
        return removed

    def delete_prefix(self, prefix: str) -> None:
        """Remove every key under ``prefix`` (a whole generation of a dataset)."""
        base = self.path(prefix.rstrip("/"))
        try:
            self.fs.rm(base, recursive=True)
        except FileNotFoundError:
            pass
        except Exception as exc:
            raise BackendUnavailableError(
                f"could not delete {prefix!r} from store {self.url!r}: {exc}"
            ) from exc
        if self.local:
            parent = os.path.dirname(base)
            try:
                os.rmdir(parent)  # leave no empty dataset directory behind
            except OSError:
                pass


class PagePool:
    """Anonymous memory maps for large reads, reused once no view of a read is left.

    Reads through the heap leave it grown (glibc raises its mmap threshold after each large
    free and keeps later ones): an export of 2M rows ended holding ~10 chunks of RSS that
    way. Fresh maps instead cost ~1 ms of page faults per 3 MB chunk. So a read lands in a
    pooled map; the map comes back when the last Arrow view of the read is gone (a weakref
    on the numpy view Arrow holds), and at most ``keep_bytes`` of maps wait for reuse.
    Unlike a map of the file itself, these pages never change or fault under a reader if the
    file is rewritten or truncated in place.
    """

    def __init__(self, keep_bytes: int):
        self.keep_bytes = keep_bytes
        self._free: list[mmap.mmap] = []
        # re-entrant: a garbage collection inside the lock may return a map through _give
        self._lock = threading.RLock()

    def _take(self, size: int) -> mmap.mmap:
        # the most recently used map that fits without much to spare (its pages beyond
        # ``size`` stay resident, uncounted by the chunk cache): still in the CPU's caches
        with self._lock:
            for i in range(len(self._free) - 1, -1, -1):
                if size <= len(self._free[i]) <= size + size // 4 + _PAGE_ROUND:
                    return self._free.pop(i)
        return mmap.mmap(-1, -(-size // _PAGE_ROUND) * _PAGE_ROUND)

    def _give(self, pages: mmap.mmap) -> None:
        with self._lock:
            if sum(len(p) for p in self._free) + len(pages) <= self.keep_bytes:
                self._free.append(pages)
        # else dropped: unmapped as soon as the dying view lets go of it

    def free_bytes(self) -> int:
        with self._lock:
            return sum(len(p) for p in self._free)

    def read_into(self, f: Any, size: int) -> pa.Buffer:
        """``size`` bytes (fewer if the file shrank meanwhile) of binary file ``f``."""
        pages = self._take(size)
        try:
            got = f.readinto(pages)
            while got < size:  # a short read: go on until the end of the file
                with memoryview(pages) as target:
                    more = f.readinto(target[got:])
                if not more:  # shrank since it was measured: the checksum will say so
                    break
                got += more
        except BaseException:
            self._give(pages)
            raise
        view = np.frombuffer(pages, dtype=np.uint8, count=got)
        weakref.finalize(view, self._give, pages).atexit = False  # nothing to return at exit
        return pa.py_buffer(view)


# local objects at least this large are read through the page pool
_OWN_PAGES_MIN = 256 * 1024
_PAGE_ROUND = 64 * 1024
PAGES = PagePool(keep_bytes=32 * 2**20)
