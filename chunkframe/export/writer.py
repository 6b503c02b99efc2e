"""Batch export: stream a dataset chunk by chunk to Parquet, CSV, Arrow or JSON lines, atomically."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.ipc as paipc
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from ..core.errors import Arg, Hint, PathNotFoundError
from ..core.jsonvalues import iso_text
from ..core.progress import progress_bar
from ..read.executor import Executor
from ..read.plan import plan_scan
from ..storage.atomic import TEMP_SUFFIX, AtomicFile, sweep_stale

if TYPE_CHECKING:
    from ..read.reader import Reader

__all__ = ["export_dataset", "ExportResult", "FORMATS", "infer_format"]

FORMATS: dict[str, tuple[str, ...]] = {
    "parquet": (".parquet", ".pq"),
    "csv": (".csv",),
    "arrow": (".arrow", ".feather", ".ipc"),
    "jsonl": (".jsonl", ".ndjson"),
}
"""Export formats and the file extensions each is inferred from (the first is the default)."""

_S3_BLOCK = 8 * 2**20  # multipart part size for object stores: bounds the upload buffer


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote: where, in which format, how many rows, from how many chunks."""

    dest: str
    format: str
    rows: int
    chunks: int
    seconds: float


def _formats_text() -> str:
    return ", ".join(f"{name} ({'/'.join(exts)})" for name, exts in FORMATS.items())


def infer_format(dest: str, format: str | None = None) -> str:
    """The export format: ``format`` if given (checked), else from ``dest``'s extension.

    >>> infer_format("out/flights.parquet")
    'parquet'
    >>> infer_format("rows.ndjson")
    'jsonl'
    """
    if format is not None:
        fmt = str(format).lower().lstrip(".")
        if fmt not in FORMATS:
            raise ValueError(f"unknown export format {format!r}; use one of {_formats_text()}")
        return fmt
    lower = dest.lower()
    for fmt, exts in FORMATS.items():
        if lower.endswith(exts):
            return fmt
    raise ValueError(
        f"cannot tell the export format of {dest!r} from its extension; give the file one of "
        f"the extensions of {_formats_text()}, or give the format (format=..., --format)"
    )


# -- writers ----------------------------------------------------------------------------------

class _Writer(Protocol):
    def write(self, table: pa.Table) -> None: ...
    def close(self) -> None: ...


# The writers' buffers come from the system allocator: Arrow's default pool (mimalloc) keeps
# the pages an encoder freed for reuse, which more than doubled an
# export's peak RSS (22.8 MB against 8.8 MB in bench_export.py's set-up).
WRITER_POOL = pa.system_memory_pool()


class _ParquetWriter:
    """One row group per chunk (bounded memory). Dictionary encoding only for the columns it
    suits: categoricals, and columns with few distinct values in the first chunk written.
    On 65,536-row groups the default (try a dictionary for every column) spends its time
    building dictionaries of unique floats and writes a larger file."""

    def __init__(self, sink: pa.NativeFile, schema: pa.Schema):
        self._sink, self._schema = sink, schema
        self._w: pq.ParquetWriter | None = None

    def _open(self, sample: pa.Table | None) -> pq.ParquetWriter:
        if sample is None or sample.num_rows == 0:
            use: bool | list[str] = True
        else:
            use = [f.name for f in self._schema if pa.types.is_dictionary(f.type)
                   or _few_distinct(sample.column(f.name))]
        # the schema carries the pandas metadata, so pd.read_parquet restores the dtypes
        return pq.ParquetWriter(self._sink, self._schema, compression="snappy",
                                use_dictionary=use, memory_pool=WRITER_POOL)

    def write(self, table: pa.Table) -> None:
        if self._w is None:
            self._w = self._open(table)
        self._w.write_table(table)

    def close(self) -> None:
        if self._w is None:
            self._w = self._open(None)
        self._w.close()


def _few_distinct(col: pa.ChunkedArray, sample: int = 4_096) -> bool:
    """Whether a dictionary would pay off: at most half of a strided sample is distinct.
    (A sample: counting distinct values of a whole chunk costs a large hash table.)"""
    if pa.types.is_nested(col.type) or pa.types.is_boolean(col.type) or len(col) == 0:
        return False
    step = max(1, len(col) // sample)
    try:
        picked = col.take(pa.array(range(0, len(col), step), pa.int64()))
        return pc.count_distinct(picked).as_py() <= len(picked) // 2
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        return False


class _CsvWriter:
    def __init__(self, sink: pa.NativeFile, schema: pa.Schema):
        self._w = pacsv.CSVWriter(sink, schema, memory_pool=WRITER_POOL)

    def write(self, table: pa.Table) -> None:
        self._w.write_table(table)

    def close(self) -> None:
        self._w.close()


class _ArrowWriter:
    """An Arrow IPC file. Chunks may carry different dictionaries for one categorical column;
    an IPC file allows one dictionary per field plus deltas, so each chunk's dictionary is
    remapped onto a growing one that only ever appends (written as a delta)."""

    def __init__(self, sink: pa.NativeFile, schema: pa.Schema):
        options = paipc.IpcWriteOptions(emit_dictionary_deltas=True)
        self._w = paipc.new_file(sink, schema, options=options)
        self._dicts: dict[int, pa.Array] = {}
        self._dict_fields = [i for i, f in enumerate(schema) if pa.types.is_dictionary(f.type)]

    def write(self, table: pa.Table) -> None:
        for i in self._dict_fields:
            col = table.column(i)
            chunks = [self._unify(i, table.schema.field(i), c) for c in col.chunks]
            table = table.set_column(i, table.schema.field(i),
                                     pa.chunked_array(chunks, type=col.type))
        self._w.write_table(table)

    def _unify(self, i: int, field: pa.Field, arr: pa.DictionaryArray) -> pa.DictionaryArray:
        known = self._dicts.get(i)
        dictionary = arr.dictionary
        if known is None or known.equals(dictionary):
            self._dicts[i] = dictionary
            return arr
        if len(dictionary) >= len(known) and dictionary.slice(0, len(known)).equals(known):
            self._dicts[i] = dictionary  # already an extension of what was written: a delta
            return arr
        new = pc.filter(dictionary, pc.invert(pc.is_in(dictionary, value_set=known)))
        merged = pa.concat_arrays([known, new.cast(known.type)]) if len(new) else known
        index_type = field.type.index_type
        if len(merged) - 1 > _max_index(index_type):
            raise ValueError(
                f"column {field.name!r} has more distinct values ({len(merged)}) than its "
                f"dictionary index type {index_type} can address in one Arrow file; export it "
                "as parquet, or select other columns"
            )
        remap = pc.index_in(dictionary, value_set=merged).cast(index_type)
        indices = pc.take(remap, arr.indices)
        self._dicts[i] = merged
        return pa.DictionaryArray.from_arrays(indices, merged, ordered=field.type.ordered)

    def close(self) -> None:
        self._w.close()


def _max_index(t: pa.DataType) -> int:
    return (1 << (t.bit_width - (0 if pa.types.is_unsigned_integer(t) else 1))) - 1


class _JsonLinesWriter:
    """One JSON object per line; times, dates and durations as ``get --json`` and the
    service write them (:func:`~chunkframe.core.jsonvalues.iso_text`)."""

    def __init__(self, sink: pa.NativeFile, schema: pa.Schema):
        self._sink = sink
        self._times = [i for i, f in enumerate(schema)
                       if pa.types.is_timestamp(f.type) or pa.types.is_date(f.type)
                       or pa.types.is_duration(f.type)]

    def write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        for i in self._times:
            table = table.set_column(i, table.field(i).with_type(pa.string()),
                                     iso_text(table.column(i)))
        text = table.to_pandas().to_json(orient="records", lines=True, force_ascii=False)
        if not text.endswith("\n"):
            text += "\n"
        self._sink.write(text.encode("utf-8"))

    def close(self) -> None:
        pass


_WRITERS: dict[str, type] = {
    "parquet": _ParquetWriter, "csv": _CsvWriter, "arrow": _ArrowWriter, "jsonl": _JsonLinesWriter,
}


def _check_writable(fmt: str, schema: pa.Schema, dataset_id: str) -> None:
    """Refuse, before anything is written, columns a format cannot hold."""
    if fmt not in ("csv",):
        return
    nested = [f.name for f in schema if pa.types.is_nested(f.type)
              or (pa.types.is_dictionary(f.type) and pa.types.is_nested(f.type.value_type))]
    if nested:
        raise ValueError(
            f"columns {nested!r} of dataset {dataset_id!r} hold nested values (lists, structs), "
            "which CSV cannot represent; export them as parquet, arrow or jsonl, or leave them "
            "out with columns=[...]"
        )


# -- atomic destination -----------------------------------------------------------------------

class _Target:
    """A destination written under a temporary name and moved into place only when complete.

    Local: an :class:`~chunkframe.storage.atomic.AtomicFile` (``<dest>.<pid>-<hex>.partial``
    in the same directory, fsync, ``os.replace``, then the directory synced). Object stores:
    a multipart upload (bounded buffer) to a ``.partial`` key, then a move. Any failure,
    including KeyboardInterrupt, removes the temporary. A temporary left by a killed process
    (kill -9) is removed by the next export to the same local destination.
    """

    def __init__(self, dest: str, storage_options: dict[str, Any], parents: bool = False):
        self.fs, path = fsspec.url_to_fs(dest, **storage_options)
        self.parents = parents
        self.local = isinstance(self.fs, LocalFileSystem)
        self.dest = dest
        self.path = os.path.abspath(os.path.expanduser(path)) if self.local else path
        self._file = AtomicFile(self.path, sync_dir=True) if self.local else None
        self.tmp = (self._file.tmp if self._file is not None else
                    f"{self.path}.{os.getpid()}-{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}")
        self._raw: Any = None
        self.sink: pa.NativeFile | None = None

    def open(self) -> pa.NativeFile:
        if self._file is not None:
            if os.path.isdir(self.path):
                raise IsADirectoryError(
                    f"export destination {self.path!r} is a directory; give a file name such "
                    f"as {os.path.join(self.path, 'data.parquet')!r}"
                )
            parent = os.path.dirname(self.path) or "."
            blocker = parent
            while blocker and not os.path.exists(blocker):
                blocker = os.path.dirname(blocker)
            if blocker and not os.path.isdir(blocker):
                raise NotADirectoryError(
                    f"cannot write {self.path!r}: {blocker!r} is a file, not a directory")
            if blocker != parent and not self.parents:
                raise PathNotFoundError(
                    f"the directory {parent!r} does not exist",
                    hint=Hint("create it first, or pass {}", Arg("parents", True)))
            os.makedirs(parent, exist_ok=True)
            sweep_stale(self.path)
            self.sink = self._file.open()
        else:
            if self.fs.isdir(self.path):
                raise IsADirectoryError(
                    f"export destination {self.dest!r} is a directory; give a file name"
                )
            kwargs = {"block_size": _S3_BLOCK} if "s3" in _protocols(self.fs) else {}
            self._raw = self.fs.open(self.tmp, "wb", **kwargs)
            self.sink = pa.PythonFile(self._raw, mode="w")
        return self.sink

    def commit(self) -> None:
        assert self.sink is not None
        if self._file is not None:
            self._file.commit()
            return
        self.sink.close()
        try:
            self.fs.mv(self.tmp, self.path)
        except BaseException:
            self._remove_tmp()
            raise

    def abort(self) -> None:
        """Throw the temporary away; never raises (the original error matters)."""
        if self._file is not None:
            self._file.abort()
            return
        if self._raw is not None:
            try:
                discard = getattr(self._raw, "discard", None)
                if discard is not None:
                    discard()  # abort the multipart upload: nothing is committed
                self._raw.closed = True
            except Exception:  # noqa: BLE001
                pass
        self._remove_tmp()

    def _remove_tmp(self) -> None:
        try:
            if self.fs.exists(self.tmp):
                self.fs.rm(self.tmp)
        except Exception:  # noqa: BLE001
            pass


def _protocols(fs: Any) -> tuple[str, ...]:
    p = fs.protocol
    return (p,) if isinstance(p, str) else tuple(p)


def _resolve_dest(dest: str | os.PathLike[str], fmt: str | None, dataset_id: str) -> str:
    """A directory (existing, or a trailing ``/``) becomes ``<dir>/<dataset id>.<ext>``."""
    text = os.fspath(dest)
    if not text:
        raise ValueError("export destination is empty; give a file path or URL")
    is_dir = text.endswith(("/", os.sep)) or ("://" not in text and os.path.isdir(text))
    if is_dir:
        ext = FORMATS[fmt or "parquet"][0]
        text = text.rstrip("/" + os.sep) + "/" + f"{dataset_id}{ext}"
    return text


# -- the export -------------------------------------------------------------------------------

def export_dataset(
    reader: Reader,
    dataset_id: str,
    dest: str | os.PathLike[str],
    format: str | None = None,
    *,
    columns: Sequence[str] | str | None = None,
    start: int | None = None,
    stop: int | None = None,
    device: Any = None,
    date_range: Any = None,
    where: Any = None,
    progress: bool | None = None,
    storage_options: Mapping[str, Any] | None = None,
    parents: bool = False,
    default_storage_options: Mapping[str, Any] | None = None,
    version: int | None = None,
) -> ExportResult:
    """Stream dataset ``dataset_id`` chunk by chunk to ``dest``; :meth:`Dataset.export
    <chunkframe.dataset.Dataset.export>` documents the options. ``default_storage_options``:
    fsspec options for a URL ``dest`` when ``storage_options`` is None (the client's).
    ``version``: export that version of the dataset rather than the current one.

    Returns an :class:`ExportResult` (destination, rows written, chunks read, time).
    """
    began = time.perf_counter()
    snap = (reader.snapshot(dataset_id) if version is None
            else reader.version_snapshot(dataset_id, version))
    snap.columns_of(columns)  # an unknown column before a bad destination
    dest_text = _resolve_dest(dest, format, dataset_id)
    fmt = infer_format(dest_text, format)
    plan = plan_scan(snap, columns, device=device, date_range=date_range, where=where,
                     start=start, stop=stop)
    lo, hi = plan.span
    schema = plan.schema
    _check_writable(fmt, schema, dataset_id)
    if storage_options is None:
        storage_options = {} if "://" not in dest_text or dest_text.startswith("file://") \
            else dict(default_storage_options or {})

    target = _Target(dest_text, dict(storage_options), parents)
    bar = progress_bar(hi - lo, f"export {dataset_id}", progress, unit="rows")
    rows = read = 0
    writer: _Writer | None = None
    try:
        sink = target.open()
        writer = _WRITERS[fmt](sink, schema)
        # filtered pieces are gathered up to a chunk's rows: no tiny row groups or batches
        target_rows = max(snap.meta.chunk_rows, 1)
        pending: list[pa.Table] = []
        pending_rows = 0
        for piece in Executor(reader).pieces(plan, ahead=1, progress=bar.update):
            read += 1
            table = piece.table
            if not table.schema.equals(schema, check_metadata=False):
                table = table.cast(schema)
            if not table.num_rows:
                continue
            if pending and pending_rows + table.num_rows > target_rows:
                writer.write(_concat(pending))
                pending, pending_rows = [], 0
            pending.append(table)
            pending_rows += table.num_rows
            rows += table.num_rows
            if pending_rows >= target_rows:
                writer.write(_concat(pending))
                pending, pending_rows = [], 0
        if pending:
            writer.write(_concat(pending))
        del pending
        done, writer = writer, None
        done.close()
        target.commit()
    except BaseException:
        if writer is not None:
            try:
                writer.close()  # or its finaliser would write to the closed temporary later
            except Exception:  # noqa: BLE001
                pass
        target.abort()
        raise
    finally:
        bar.close()
    written = target.path if target.local else dest_text
    return ExportResult(written, fmt, rows, read, time.perf_counter() - began)


def _concat(tables: list[pa.Table]) -> pa.Table:
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)
