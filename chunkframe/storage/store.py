"""Chunk store: put/get/delete bytes by key over fsspec (local directory, s3://, memory://)."""

from __future__ import annotations

import mmap
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fsspec
import pyarrow as pa

from ..core.errors import BackendUnavailableError
from .codec import checksum

__all__ = ["ChunkStore"]

_INSTALL_HINTS = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs"}


class ChunkStore:
    """Bytes by key under one root URL; ``get`` of a missing key returns ``None``.

    Local writes are atomic: a temp file in the same directory, fsync, then ``os.replace``,
    so a crash never leaves a torn chunk under its final key. Object stores (S3) replace
    whole objects on PUT, which is atomic by itself.

    Contract: a committed object is immutable. Nothing rewrites, appends to or truncates a
    file in place; a key is only ever replaced whole (a new file renamed over it) or
    deleted. Local reads map files (:meth:`read`), and both of those leave a live map
    reading the old bytes, where truncating a mapped file in place would fault its readers.
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
        """Like :meth:`get`, as an Arrow buffer: zero-copy for local files.

        A local chunk is a read-only shared memory map of the file itself (pages prefaulted
        from the OS page cache in one call): no copy, no fresh anonymous pages, and every
        process reading the dataset shares the same cached pages. This relies on the store's
        contract that a committed file is never changed in place (see the class docstring):
        the map lives as long as any Arrow view of it. Object stores download into memory.
        """
        if not self.local:
            data = self.get(key)
            return None if data is None else pa.py_buffer(data)
        path = self.path(key)
        try:
            with open(path, "rb", buffering=0) as f:
                if os.fstat(f.fileno()).st_size == 0:
                    return pa.py_buffer(b"")
                pages = mmap.mmap(f.fileno(), 0, flags=_MAP_FLAGS, prot=mmap.PROT_READ)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise BackendUnavailableError(
                f"could not read chunk {key!r} from store {self.url!r}: {exc}"
            ) from exc
        return pa.py_buffer(pages)  # the map is unmapped when the last view of it goes

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


# shared, read-only, prefaulted from the page cache (MAP_POPULATE is Linux only)
_MAP_FLAGS = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
