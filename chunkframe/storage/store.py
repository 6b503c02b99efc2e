"""Chunk stores: bytes by key under one root; a local directory or any fsspec URL (s3://, memory://)."""

from __future__ import annotations

import abc
import mmap
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pyarrow as pa

from ..core.errors import BackendUnavailableError, ChunkCorruptionError
from ..core.model import ChunkMeta
from ..core.permissions import OWNER_ONLY, Modes, make_dirs
from .atomic import AtomicFile, is_temp, sweep_temps, sync_dir
from .codec import checksum, checksum_matches

__all__ = ["ChunkStore", "LocalStore", "FsspecStore", "FileIdentity", "open_store",
           "read_checked"]

FileIdentity = tuple[int, int, int, int]
"""What tells one local file from the one that replaces it under the same name: device,
inode, size and modification time in nanoseconds (``os.stat``)."""

_INSTALL_HINTS = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs"}
_LOCAL_PROTOCOLS = ("file", "local")
_IN_HOST = (*_LOCAL_PROTOCOLS, "memory")  # no network between the chunks and a reader


def _protocol(url: str) -> str:
    return url.split("://", 1)[0] if "://" in url else "file"


def open_store(url: str | os.PathLike[str],
               storage_options: Mapping[str, Any] | None = None,
               modes: Modes = OWNER_ONLY) -> ChunkStore:
    """The chunk store for ``url``: a :class:`LocalStore` for a path or ``file://`` URL, an
    :class:`FsspecStore` for any other fsspec URL (``s3://bucket/prefix``, ``memory://name``).

    ``modes``: of the directories and files a local store creates (owner-only by default).
    ``storage_options`` go to fsspec (credentials, ``endpoint_url``...). A URL whose fsspec
    backend is not installed raises :class:`BackendUnavailableError` naming the package.

    >>> open_store("memory://docs")
    FsspecStore('memory://docs')
    """
    text = str(url)
    if _protocol(text) in _LOCAL_PROTOCOLS:
        return LocalStore(text.split("://", 1)[1] if "://" in text else text, modes)
    return FsspecStore(text, storage_options)


class ChunkStore(abc.ABC):
    """What every chunk store does: bytes by key under one root URL.

    ``get``/``read`` of a missing key return ``None``; ``delete`` of one is not an error;
    writes replace a key atomically (a reader sees the old bytes or the new, never a mix);
    a failure of the store itself (unreachable, unwritable) raises
    :class:`BackendUnavailableError` naming the key and the store. Keys are relative
    ``/``-separated names: an empty key, an absolute one or one with a ``..`` part raises
    ``ValueError``. ``tests/test_store.py`` holds the conformance suite every store passes.

    Contract: a committed object is immutable. Nothing rewrites, appends to or truncates an
    object in place; a key is only ever replaced whole or deleted (local reads map files,
    and both of those leave a live map reading the old bytes). That holds on local file
    systems; on a network file system (NFS) a file replaced or deleted from another host can
    fault a live map, so there use an object store URL (``s3://``), which downloads.

    Subclasses implement the primitives; :meth:`put` is :meth:`write` of the bytes.
    """

    url: str
    """The store's root, as given."""
    root: str
    """The root path inside the filesystem (a directory for a local store)."""
    storage_options: Mapping[str, Any]
    """The fsspec options of the store's filesystem (credentials, endpoint...)."""

    remote: bool = False
    """Whether the store is an object store reached over a network (``compression="auto"``
    compresses there: network bytes dominate a read)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    def path(self, key: str) -> str:
        """Full path of a key inside the store (what a plain Arrow reader would open)."""
        if not key or key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"invalid store key {key!r}: keys are relative names without "
                             "'..' parts, such as 'dataset/g000001/c00000000.arrow'")
        return f"{self.root}/{key}"

    def _base(self, prefix: str) -> str:
        """The path a directory-like ``prefix`` stands for ('' is the whole store)."""
        return self.path(prefix.rstrip("/")) if prefix else self.root

    def _failed(self, doing: str, exc: BaseException) -> BackendUnavailableError:
        """The error of a store that failed while ``doing`` (e.g. ``"read chunk 'k'"``)."""
        return BackendUnavailableError(
            f"could not {doing} in store {self.url!r}: {exc}; check that the store is "
            "reachable and writable (CHUNKFRAME_STORE, or store= of cf.connect)")

    mapped: bool = False
    """Whether :meth:`read_mapped` maps files that stay valid as long as they are mapped
    (local stores): a reader then keeps a chunk's verified map instead of its bytes."""

    def identity(self, key: str) -> FileIdentity | None:
        """The identity of the file under ``key`` (None: missing, or a store that downloads)."""
        return None

    def read_mapped(self, key: str) -> tuple[pa.Buffer, FileIdentity | None] | None:
        """:meth:`read` of ``key`` with the identity of the very file read (None for a store
        that downloads); None if there is no such key."""
        data = self.read(key)
        return None if data is None else (data, None)

    def put(self, key: str, data: bytes) -> str:
        """Write ``data`` under ``key`` atomically, replacing any previous value; returns its
        checksum."""
        return self.write(key, lambda f: f.write(data))[0]

    @abc.abstractmethod
    def url_of(self, key: str) -> str:
        """A URL for ``key`` that fsspec (with the store's ``storage_options``) or any Arrow
        reader can open: a chunk is a plain Arrow IPC file (notebook 05 reads one so)."""

    @abc.abstractmethod
    def write(self, key: str, fill: Callable[[pa.NativeFile], object]) -> tuple[str, int]:
        """Stream an object into ``key`` with ``fill(file)``, atomically; returns the checksum
        and size of the bytes that landed. Errors raised by ``fill`` itself pass through
        (and nothing lands); failures of the store become :class:`BackendUnavailableError`."""

    @abc.abstractmethod
    def get(self, key: str) -> bytes | None:
        """The bytes under ``key``, or ``None`` if there is no such key."""

    @abc.abstractmethod
    def read(self, key: str, populate: bool = True) -> pa.Buffer | None:
        """Like :meth:`get`, as an Arrow buffer (zero-copy where the store can);
        ``populate=False``: a map's pages are touched only when read (a manifest's)."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool:
        """Whether ``key`` holds a committed object."""

    @abc.abstractmethod
    def size(self, key: str) -> int | None:
        """The size in bytes of ``key``, or ``None`` if there is no such key; reads no
        content (a file's metadata, an object's listing)."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is not an error."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys under ``prefix`` (a directory-like prefix: ``ds`` does not match ``dsx``),
        sorted; temporaries of unfinished writes are never listed."""

    @abc.abstractmethod
    def delete_prefix(self, prefix: str) -> None:
        """Remove every key under ``prefix`` (a whole generation of a dataset)."""

    def sync(self, key: str) -> None:
        """Make the names of the files written beside ``key`` durable (a local directory's
        entries; once per batch of chunks, not per chunk). Object stores have nothing to do."""
        return None

    @abc.abstractmethod
    def sweep_partials(self, prefix: str = "") -> int:
        """Remove what killed writers left under ``prefix``; returns how many objects.

        Only the holder of a dataset's ingest lock may call this for that dataset's keys:
        the temporary of a live writer would be removed under it.
        """


class LocalStore(ChunkStore):
    """Chunks as files under a local directory (created if missing).

    Writes are atomic (:class:`~chunkframe.storage.atomic.AtomicFile`: a temporary beside
    the file, fsync, ``os.replace``), so a crash never leaves a torn chunk under its final
    key, and stream straight into the file (checksummed through a map of what landed).
    Reads are read-only shared memory maps of the files (:meth:`read`), which is why the
    contract that a committed file is immutable matters here: replacing a file (a new one
    renamed over it) or deleting it leaves live maps reading the old bytes, where truncating
    a mapped file in place would fault its readers.

    Parameters
    ----------
    root : str or os.PathLike
        The directory.
    modes : Modes
        Of the directories and files it creates, exactly, whatever the umask: 0700/0600 by
        default (:mod:`chunkframe.core.permissions`; ``permissions="group"`` for a shared
        store). Directories and files that exist keep their modes.
    """

    storage_options: Mapping[str, Any] = {}

    def __init__(self, root: str | os.PathLike[str], modes: Modes = OWNER_ONLY) -> None:
        self.url = str(root)
        self.root = os.path.abspath(os.path.expanduser(self.url)).rstrip("/") or "/"
        self.modes = modes
        try:
            make_dirs(self.root, modes.dirs)
        except OSError as exc:
            raise BackendUnavailableError(
                f"cannot use {self.url!r} as the chunk store: {exc}; give a writable directory "
                "(or set CHUNKFRAME_STORE)"
            ) from exc

    def url_of(self, key: str) -> str:
        """The file's path: any program can open it."""
        return self.path(key)

    def write(self, key: str, fill: Callable[[pa.NativeFile], object]) -> tuple[str, int]:
        path = self.path(key)
        target = AtomicFile(path, mode=self.modes.files)
        try:
            make_dirs(os.path.dirname(path), self.modes.dirs)
            fill(target.open())
            size, digest = target.commit(checksum)
        except OSError as exc:
            target.abort()
            raise self._failed(f"write chunk {key!r}", exc) from exc
        except BaseException:
            target.abort()
            raise
        assert digest is not None
        return digest, size

    def get(self, key: str) -> bytes | None:
        try:
            with open(self.path(key), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._failed(f"read chunk {key!r}", exc) from exc

    mapped = True

    def read(self, key: str, populate: bool = True) -> pa.Buffer | None:
        """The file as a read-only shared memory map (pages prefaulted from the OS page cache
        in one call): no copy, no fresh anonymous pages, and every process reading the
        dataset shares the same cached pages. The map lives as long as any Arrow view of it
        (see the class docstring for why that is safe)."""
        got = self._map(key, populate)
        return None if got is None else got[0]

    def read_mapped(self, key: str) -> tuple[pa.Buffer, FileIdentity | None] | None:
        """:meth:`read` of ``key`` with the identity of the file mapped (from its open
        descriptor: the file read, even if another replaces it meanwhile)."""
        return self._map(key, True)

    def identity(self, key: str) -> FileIdentity | None:
        """The identity of the file under ``key`` now; None if there is none."""
        try:
            return _identity(os.stat(self.path(key)))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._failed(f"check chunk {key!r}", exc) from exc

    def _map(self, key: str, populate: bool) -> tuple[pa.Buffer, FileIdentity] | None:
        path = self.path(key)
        try:
            with open(path, "rb", buffering=0) as f:
                st = os.fstat(f.fileno())
                if st.st_size == 0:
                    return pa.py_buffer(b""), _identity(st)
                pages = mmap.mmap(f.fileno(), 0, flags=_MAP_FLAGS if populate else mmap.MAP_SHARED,
                                  prot=mmap.PROT_READ)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise self._failed(f"read chunk {key!r}", exc) from exc
        return pa.py_buffer(pages), _identity(st)  # unmapped when the last view of it goes

    def exists(self, key: str) -> bool:
        return os.path.isfile(self.path(key))

    def size(self, key: str) -> int | None:
        try:
            return os.stat(self.path(key)).st_size
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._failed(f"check chunk {key!r}", exc) from exc

    def delete(self, key: str) -> None:
        try:
            os.unlink(self.path(key))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise self._failed(f"delete chunk {key!r}", exc) from exc

    def list(self, prefix: str = "") -> Iterator[str]:
        base = self._base(prefix)
        start = len(self.root) + 1
        if os.path.isfile(base):  # a key is listed under its own name, as fsspec's find does
            return iter([] if is_temp(base) else [base[start:]])
        found = [os.path.join(d, n)[start:] for d, _, names in os.walk(base)
                 for n in names if not is_temp(n)]
        return iter(sorted(found))

    def delete_prefix(self, prefix: str) -> None:
        base = self._base(prefix)
        try:
            if os.path.isdir(base):
                shutil.rmtree(base)
            else:
                os.unlink(base)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise self._failed(f"delete {prefix!r}", exc) from exc
        try:
            os.rmdir(os.path.dirname(base))  # leave no empty dataset directory behind
        except OSError:
            pass

    def sweep_partials(self, prefix: str = "") -> int:
        return sweep_temps(self._base(prefix))

    def sync(self, key: str) -> None:
        sync_dir(os.path.dirname(self.path(key)))


class FsspecStore(ChunkStore):
    """Chunks as objects of an fsspec filesystem: ``s3://bucket/prefix`` (through s3fs),
    ``memory://name``, and any other protocol fsspec knows.

    A write is one PUT of the whole object (built in memory), which object stores make
    atomic; reads download into memory. Object stores never expose half-written objects,
    so there is nothing to sweep.

    Parameters
    ----------
    url : str
        The root URL.
    storage_options : Mapping, optional
        fsspec options (credentials, ``endpoint_url``, ...).
    """

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        self.url = url
        self.protocol = _protocol(url)
        self.storage_options = dict(storage_options or {})
        import fsspec  # here: a local store (and the command line) never needs it

        try:
            self.fs, root = fsspec.url_to_fs(url, **self.storage_options)
        except ImportError as exc:
            pkg = _INSTALL_HINTS.get(self.protocol, self.protocol)
            raise BackendUnavailableError(
                f"store {url!r} needs the {pkg!r} package: pip install {pkg}"
            ) from exc
        self.root = root.rstrip("/")
        self.remote = self.protocol not in _IN_HOST
        # s3fs asks an object's size (a HEAD) before each whole-object GET when it may split
        # large ones into parallel ranges; chunks are far below its block size, so that is
        # one more round trip per chunk for nothing: 31 of 62 requests of a first full read
        self._cat_options = ({"max_concurrency": 1}
                             if self.protocol in ("s3", "s3a") else {})

    def url_of(self, key: str) -> str:
        return f"{self.protocol}://{self.path(key)}"

    def write(self, key: str, fill: Callable[[pa.NativeFile], object]) -> tuple[str, int]:
        path = self.path(key)
        sink = pa.BufferOutputStream()
        fill(sink)
        data = sink.getvalue()
        try:
            self.fs.pipe_file(path, data.to_pybytes())  # one PUT: atomic on object stores
        except Exception as exc:  # botocore's and aiohttp's errors are not OSErrors
            raise self._failed(f"write chunk {key!r}", exc) from exc
        return checksum(data), data.size

    def get(self, key: str) -> bytes | None:
        path = self.path(key)
        try:
            return bytes(self.fs.cat_file(path, **self._cat_options))
        except FileNotFoundError:
            return None
        except Exception as exc:  # OSError, or a backend's own (botocore's connection errors)
            raise self._failed(f"read chunk {key!r}", exc) from exc

    def read(self, key: str, populate: bool = True) -> pa.Buffer | None:
        data = self.get(key)
        return None if data is None else pa.py_buffer(data)

    def exists(self, key: str) -> bool:
        path = self.path(key)
        try:
            return bool(self.fs.isfile(path))
        except Exception as exc:
            raise self._failed(f"check chunk {key!r}", exc) from exc

    def size(self, key: str) -> int | None:
        path = self.path(key)
        try:
            return int(self.fs.size(path))
        except FileNotFoundError:
            return None
        except Exception as exc:
            raise self._failed(f"check chunk {key!r}", exc) from exc

    def delete(self, key: str) -> None:
        path = self.path(key)
        try:
            self.fs.rm_file(path)
        except FileNotFoundError:
            pass
        except Exception as exc:
            raise self._failed(f"delete chunk {key!r}", exc) from exc

    def list(self, prefix: str = "") -> Iterator[str]:
        base = self._base(prefix)
        try:
            found = self.fs.find(base)
        except FileNotFoundError:
            return iter(())
        except Exception as exc:
            raise self._failed(f"list {prefix!r}", exc) from exc
        start = len(self.root) + 1
        return iter(sorted(p[start:] for p in found if not is_temp(p)))

    def delete_prefix(self, prefix: str) -> None:
        base = self._base(prefix)
        try:
            self.fs.rm(base, recursive=True)
        except FileNotFoundError:
            pass
        except Exception as exc:
            raise self._failed(f"delete {prefix!r}", exc) from exc

    def sweep_partials(self, prefix: str = "") -> int:
        self._base(prefix)  # the same key check as every other call
        return 0  # object stores never expose a half-written object


# shared, read-only, prefaulted from the page cache (MAP_POPULATE is Linux only)
_MAP_FLAGS = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)


def _identity(st: os.stat_result) -> FileIdentity:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def read_checked(store: ChunkStore, dataset_id: str, cm: ChunkMeta) -> pa.Buffer:
    """The bytes of chunk ``cm`` of ``dataset_id``, checked against its recorded checksum;
    :class:`ChunkCorruptionError` when the file is missing or they differ."""
    data = store.read(cm.key)
    ok, computed = (False, "") if data is None else checksum_matches(data, cm.checksum)
    if data is None or not ok:
        raise ChunkCorruptionError(
            dataset_id, cm.chunk, cm.key, cm.checksum, computed,
            "the chunk object is missing" if data is None else "checksum mismatch")
    return data
