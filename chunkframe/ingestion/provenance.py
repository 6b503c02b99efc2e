"""Where an ingest's rows came from: its files, their fingerprints and row ranges, how to re-read them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import fsspec
import pyarrow as pa

from ..core.errors import SourceError
from ..core.model import schema_from_text, schema_to_text
from .sources import ITERATOR_FINGERPRINT, Source, conform, files_source, format_of

__all__ = ["SourceFile", "SourceRecord", "FULL_HASH_BYTES", "EDGE_BYTES", "fingerprint_file",
           "record_of", "finished", "why_not_readable", "reopen", "rebuild"]

FULL_HASH_BYTES = 4 * 2**20
"""Files up to this size are fingerprinted by the SHA-256 of their whole content: reading
4 MiB costs milliseconds, and any change is seen."""

EDGE_BYTES = 2**16
"""Larger files: their size, modification time and the SHA-256 of their first and last
64 KiB. Reading a 10 GB file on S3 twice (at ingest and at every check) is not affordable;
an edit that keeps the size, both ends and the modification time is not detected (a
rewritten or appended file changes its size or time). Repair therefore accepts a re-cut
chunk whose checksum differs from the recorded one only when every file it came from was
hashed whole; from a larger file only a chunk with its recorded checksum replaces anything."""


@dataclass(frozen=True)
class SourceFile:
    """One file an ingest read: where, its fingerprint and the dataset rows it gave."""

    url: str  # protocol-qualified (file:///..., s3://...), re-opened with fsspec
    format: str  # csv | parquet | arrow
    size: int
    mtime: str
    method: str  # "sha256" (whole content) or "sha256-ends" (size, time, first/last 64 KiB)
    digest: str
    rows: tuple[int, int] | None = None  # serial numbers [first, stop) once read

    @property
    def shown(self) -> str:
        """The location as a user wrote it (a local path without ``file://``)."""
        return self.url.removeprefix("file://")


@dataclass(frozen=True)
class SourceRecord:
    """What an ingest (or append, overwrite) read and how, so its rows can be read again.

    ``kind`` is ``"files"`` (re-readable) or what else it was (``"dataframe"``,
    ``"frames"``, ``"arrow table"``, ``"iterator"``): recorded, never re-read. ``options``
    are the reading options that reproduce the rows: chunk_rows, time and device columns,
    compression, evolve, a caller's fingerprint, and the columns and types read.
    ``conform_to`` is the schema (text) an append cast its chunks to (None: as read).
    """

    kind: str
    files: tuple[SourceFile, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    op: str = ""
    generation: int = 0
    base_chunk: int = 0
    base_rows: int = 0
    chunks: int = 0
    conform_to: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> SourceRecord:
        """Parse :meth:`to_json`; :class:`SourceError` if ``text`` is not a record."""
        try:
            d = json.loads(text)
            files = tuple(SourceFile(**{**f, "rows": tuple(f["rows"]) if f.get("rows") else None})
                          for f in d.pop("files", ()))
            return cls(files=files, **d)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise SourceError(f"the recorded source is unreadable ({exc})") from exc

    def describe(self) -> str:
        """The files (the first few) or what the source was."""
        if self.kind != "files":
            return f"a {self.kind}"
        shown = ", ".join(f.shown for f in self.files[:3])
        return shown + (f" and {len(self.files) - 3} more" if len(self.files) > 3 else "")

    def covers(self, generation: int, chunk: int) -> bool:
        """Whether chunk ``chunk`` of ``generation`` was written by this ingest."""
        return (generation == self.generation
                and self.base_chunk <= chunk < self.base_chunk + self.chunks)


def _size_and_time(fs: Any, path: str) -> tuple[int, str]:
    """File ``path``'s size and modification time (an object's ETag when it has no time)."""
    info = fs.info(path)
    return (int(info.get("size") or 0),
            str(info.get("mtime") or info.get("LastModified") or info.get("ETag") or ""))


def fingerprint_file(fs: Any, path: str) -> SourceFile:
    """The fingerprint of file ``path`` of ``fs`` (see :data:`FULL_HASH_BYTES`)."""
    size, mtime = _size_and_time(fs, path)
    h = hashlib.sha256()
    with fs.open(path, "rb") as f:
        if size <= FULL_HASH_BYTES:
            method = "sha256"
            for block in iter(lambda: f.read(2**20), b""):
                h.update(block)
        else:
            method = "sha256-ends"
            h.update(f.read(EDGE_BYTES))
            f.seek(size - EDGE_BYTES)
            h.update(f.read(EDGE_BYTES))
    return SourceFile(fs.unstrip_protocol(path), format_of(path), size, mtime, method,
                      h.hexdigest())


def _kind(fingerprint: str) -> str:
    for prefix, kind in (("frame:", "DataFrame"), ("frames:", "list of DataFrames"),
                         ("arrow:", "Arrow table"), (ITERATOR_FINGERPRINT, "iterator of DataFrames")):
        if fingerprint.startswith(prefix):
            return kind
    return "source that cannot be read again"


def record_of(src: Source, schema: pa.Schema, options: Mapping[str, Any]) -> SourceRecord:
    """The record of ``src`` as an ingest begins reading it: its files' fingerprints (or
    what it is when it is not files), the ``schema`` it reads as and ``options``."""
    opts = {**options, "columns": schema.names, "dtypes": [str(t) for t in schema.types]}
    if src.fs is None:
        return SourceRecord(_kind(src.fingerprint), options=opts)
    return SourceRecord("files", tuple(fingerprint_file(src.fs, p) for p in src.paths), opts)


def finished(record: SourceRecord, src: Source, op: str, generation: int, base_chunk: int,
             base_rows: int, chunks: int, conform_to: pa.Schema | None) -> SourceRecord:
    """``record`` completed at commit: the chunks written and the rows each file gave."""
    files = []
    at = base_rows
    rows_by_url = {src.fs.unstrip_protocol(p): n for p, n in src.file_rows.items()} if src.fs else {}
    for f in record.files:
        n = rows_by_url.get(f.url, 0)
        files.append(replace(f, rows=(at, at + n)))
        at += n
    return replace(record, files=tuple(files), op=op, generation=generation,
                   base_chunk=base_chunk, base_rows=base_rows, chunks=chunks,
                   conform_to=None if conform_to is None else schema_to_text(conform_to))


def why_not_readable(record: SourceRecord, storage_options: Mapping[str, Any],
                     since: str = "since the ingest began",
                     seen: dict[tuple[str, int, str], SourceFile] | None = None) -> str | None:
    """None when every recorded file is still there with its fingerprint, else why not:
    e.g. ``"source /x.csv changed since the ingest began (size 10 → 12)"``.

    A file whose size or time changed is not read. ``seen``: fingerprints already taken,
    by (url, size, time), filled as files are hashed, so that one check of many records
    (the recoverer's dry run) reads each file once; a check before acting passes none.
    """
    if record.kind != "files":
        return f"source was a {record.kind} (not re-readable)"
    for f in record.files:
        try:
            fs, path = fsspec.url_to_fs(f.url, **storage_options)
            if not fs.isfile(path):
                return f"source {f.shown} is gone (no such file now)"
            size, mtime = _size_and_time(fs, path)
            for what, old, new in (("size", f.size, size), ("modified", f.mtime, mtime)):
                if old != new:
                    return f"source {f.shown} changed {since} ({what} {old} → {new})"
            now = None if seen is None else seen.get((f.url, size, mtime))
            if now is None:
                now = fingerprint_file(fs, path)
                if seen is not None:
                    seen[(f.url, now.size, now.mtime)] = now
        except (OSError, ValueError, ImportError) as exc:
            return f"source {f.shown} cannot be read now ({exc})"
        if (f.size, f.mtime, f.method, f.digest) != (now.size, now.mtime, now.method, now.digest):
            return f"source {f.shown} changed {since} (its content hash differs)"
    return None


def reopen(record: SourceRecord, storage_options: Mapping[str, Any]) -> Source:
    """The recorded files as a source again, in their order (check them first with
    :func:`why_not_readable`)."""
    if record.kind != "files" or not record.files:
        raise SourceError(f"the recorded source, {record.describe()}, cannot be read again")
    fs, _ = fsspec.url_to_fs(record.files[0].url, **storage_options)
    paths = [fsspec.url_to_fs(f.url, **storage_options)[1] for f in record.files]
    return files_source(fs, paths, record.describe())


def rebuild(record: SourceRecord, storage_options: Mapping[str, Any], wanted: set[int]
            ) -> Iterator[tuple[int, int, pa.Table]]:
    """Cut the recorded source again as its ingest did and yield (chunk number, first
    serial number, table) of the chunks in ``wanted`` (one pass over the files, stopping
    after the last one wanted)."""
    src = reopen(record, storage_options)
    rows = int(record.options["chunk_rows"])
    target = None if record.conform_to is None else schema_from_text(record.conform_to)
    last = max(wanted)
    for i, table in enumerate(src.chunks(rows)):
        n = record.base_chunk + i
        if n in wanted:
            if target is not None:
                table = conform(table, target, "the re-read source")
            yield n, record.base_rows + i * rows, table
        if n >= last:
            return
