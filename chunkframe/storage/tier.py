"""The local tier: chunks fetched from an object store, kept decompressed on local disk."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pyarrow as pa

from ..core.config import Settings
from ..core.permissions import OWNER_ONLY, Modes, make_dirs, modes
from .codec import checksum, checksum_matches

__all__ = ["LocalTier", "local_tier"]


class LocalTier:
    """A bounded disk cache of chunks (LRU by bytes), shared by every process of the host
    that uses the same directory.

    An entry is named by the store's URL, the chunk's key and the checksum its record
    holds, so a chunk rewritten under the same key (a repair) never finds the old entry; its
    file name also carries the checksum of its own bytes, checked over all of them on every
    read, so a damaged entry is deleted and the chunk fetched again, never served. Entries
    are written to a temporary name and renamed (a reader never sees half an entry); a hit
    touches the file's mtime, which eviction orders by.

    Parameters
    ----------
    root : path
        The tier's directory (``<home>/tier``).
    store_url : str
        The object store the chunks come from.
    max_bytes : int
        The bound; 0 disables the tier.
    file_modes : Modes
        Of the directories and files it creates (the chunks' data: owner-only by default).
    """

    def __init__(self, root: str | os.PathLike[str], store_url: str, max_bytes: int,
                 file_modes: Modes = OWNER_ONLY) -> None:
        self.max_bytes = max_bytes
        self.modes = file_modes
        self.dir = Path(root) / hashlib.sha256(store_url.encode()).hexdigest()[:16]
        self.hits = self.misses = self.dropped = 0
        self._lock = threading.Lock()

    def _stem(self, key: str, recorded: str) -> str:
        digest = hashlib.sha256(f"{key}\0{recorded}".encode()).hexdigest()[:32]
        return digest

    def _find(self, key: str, recorded: str) -> Path | None:
        stem = self._stem(key, recorded)
        try:
            names = [n for n in os.listdir(self.dir) if n.startswith(stem + ".")
                     and n.endswith(".arrow")]
        except FileNotFoundError:
            return None
        return self.dir / names[0] if names else None

    def get(self, key: str, recorded: str) -> pa.Buffer | None:
        """The entry of chunk ``key`` whose record says ``recorded``, mapped and checked
        against its own checksum; None (and a damaged entry deleted) otherwise."""
        if not self.max_bytes:
            return None
        path = self._find(key, recorded)
        if path is None:
            self.misses += 1
            return None
        own = "crc32c:" + path.name.split(".")[1]
        try:
            with pa.memory_map(str(path), "r") as f:
                data = f.read_buffer()
            ok, _ = checksum_matches(data, own)
        except (OSError, pa.ArrowException):
            ok = False
        if not ok:
            self.dropped += 1
            path.unlink(missing_ok=True)
            self.misses += 1
            return None
        try:
            os.utime(path)
        except OSError:
            pass  # evicted meanwhile: the map still holds the bytes
        self.hits += 1
        return data

    def put(self, key: str, recorded: str, data: bytes | pa.Buffer) -> None:
        """Keep ``data`` (the chunk, as it is to be served) for chunk ``key`` whose record says
        ``recorded``; then evict the least recently used entries over the bound."""
        if not self.max_bytes or len(data) > self.max_bytes:
            return
        make_dirs(self.dir, self.modes.dirs)
        own = checksum(data).partition(":")[2]
        path = self.dir / f"{self._stem(key, recorded)}.{own}.arrow"
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, self.modes.files)
        try:
            os.fchmod(fd, self.modes.files)
            with os.fdopen(fd, "wb") as f:
                f.write(memoryview(data))
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, path)
        self.evict()

    def evict(self) -> None:
        """Delete the least recently used entries until the tier holds at most its bound."""
        with self._lock:
            entries = []
            for entry in os.scandir(self.dir):
                if not entry.name.endswith(".arrow"):
                    continue
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue
                entries.append((st.st_mtime, st.st_size, entry.path))
            total = sum(size for _, size, _ in entries)
            for _, size, path in sorted(entries):
                if total <= self.max_bytes:
                    break
                Path(path).unlink(missing_ok=True)
                total -= size

    def nbytes(self) -> int:
        """Bytes the tier holds now."""
        try:
            return sum(e.stat().st_size for e in os.scandir(self.dir) if e.name.endswith(".arrow"))
        except FileNotFoundError:
            return 0


def local_tier(settings: Settings) -> LocalTier | None:
    """The local tier ``settings`` ask for: under ``<home>/tier``, for an object store only
    (a local store's chunks are mapped where they are)."""
    if not settings.local_cache_bytes or "://" not in settings.store_url:
        return None
    return LocalTier(settings.home / "tier", settings.store_url, settings.local_cache_bytes,
                     modes(settings.permissions))
