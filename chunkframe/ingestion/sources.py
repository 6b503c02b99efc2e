"""Ingest sources: turn a DataFrame, frames, or CSV/Parquet/Arrow files into fixed-size chunks."""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

import fsspec
import fsspec.compression
import fsspec.utils
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as paipc
import pyarrow.parquet as pq

from ..core.errors import Arg, Hint, SchemaMismatchError, SourceError
from ..storage.codec import encode, to_arrow

__all__ = ["Source", "open_source", "files_source", "format_of", "list_files", "check_columns",
           "conform", "check_kinds", "kind_of", "ITERATOR_FINGERPRINT"]

ITERATOR_FINGERPRINT = "frames:iterator:"

_FORMATS = {
    ".csv": "csv", ".tsv": "csv", ".csv.gz": "csv", ".parquet": "parquet", ".pq": "parquet",
    ".arrow": "arrow", ".feather": "arrow", ".ipc": "arrow", ".arrows": "arrow",
}
_CSV_BLOCK = 8 * 2**20


@dataclass
class Source:
    """A readable source: its fingerprint, a factory of record-batch streams, and its size.

    ``total`` is the amount of work in ``unit`` for a progress bar: rows for frames, Arrow
    and Parquet, bytes for CSV (None: unknown, e.g. an iterator of frames). ``done`` tells
    how much of it the batches read so far cover (bytes read from CSV files), or None when
    that is the rows cut.
    """

    description: str
    fingerprint: str
    batches: Any  # () -> Iterator[pa.RecordBatch | pa.Table]
    total: int | None = None
    unit: str = "rows"
    done: Callable[[], int] | None = dataclass_field(default=None, repr=False)
    fs: Any = dataclass_field(default=None, repr=False)  # files: their file system, paths,
    paths: list[str] = dataclass_field(default_factory=list)  # and the rows each one gave
    file_rows: dict[str, int] = dataclass_field(default_factory=dict)  # (counted as read)

    def chunks(self, chunk_rows: int) -> Iterator[pa.Table]:
        """Cut the source into tables of exactly ``chunk_rows`` rows (the last may be shorter).

        Boundaries depend only on the rows and ``chunk_rows``, never on how the reader
        batched them, so a resumed ingest cuts the same chunks.
        """
        pending: list[pa.Table] = []
        have = 0
        schema: pa.Schema | None = None
        for part in self.batches():
            table = part if isinstance(part, pa.Table) else pa.Table.from_batches([part])
            if schema is None:
                schema = table.schema
            if table.num_rows == 0:
                continue
            pending.append(table)
            have += table.num_rows
            while have >= chunk_rows:
                whole = _concat(pending)
                yield _single_batch(whole.slice(0, chunk_rows))
                rest = whole.slice(chunk_rows)
                pending, have = ([rest] if rest.num_rows else []), rest.num_rows
        if have:
            yield _single_batch(_concat(pending))
        elif schema is None:
            raise SourceError(f"source {self.description} is empty: it has no rows to ingest")


def _concat(tables: list[pa.Table]) -> pa.Table:
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)


def _single_batch(table: pa.Table) -> pa.Table:
    """One array per column, dictionaries unified: a chunk is stored as one record batch."""
    if any(c.num_chunks > 1 for c in table.columns):
        table = table.unify_dictionaries().combine_chunks()
    return table


def check_columns(columns: Iterable[Any], where: str) -> None:
    """Column names must be unique strings: they become Arrow field names and CLI arguments."""
    names = list(columns)
    bad = [c for c in names if not isinstance(c, str)]
    if bad:
        raise SourceError(
            f"{where} has non-string column names {bad[:5]!r}; rename them, e.g. "
            "df.columns = df.columns.map(str)"
        )
    dupes = sorted({c for c in names if names.count(c) > 1})
    if dupes:
        raise SourceError(f"{where} has duplicate column names {dupes!r}; make them unique first")


def _frame_to_arrow(df: pd.DataFrame, where: str, schema: pa.Schema | None = None) -> pa.Table:
    """``df`` as Arrow (``schema``: the whole source's, so every block gets the same types)."""
    df = _with_named_index(df, where)
    try:
        table = to_arrow(df, schema)
        _check_object_columns(df, table, where)
        return table
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        for col in df.columns:
            try:
                to_arrow(df[[col]])
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as col_exc:
                raise SourceError(
                    f"column {col!r} of {where} cannot be stored as Arrow ({col_exc}); convert "
                    f"it first, e.g. df[{col!r}] = df[{col!r}].astype(str)"
                ) from exc
        raise SourceError(f"{where} cannot be stored as Arrow: {exc}") from exc


def _check_object_columns(df: pd.DataFrame, table: pa.Table, where: str) -> None:
    """Refuse what Arrow would coerce in an object column: strings mixed with bytes (one kind
    is encoded or decoded into the other) and times in several time zones (all made UTC)."""
    for name in df.columns:
        if df[name].dtype != object:
            continue
        kind = kind_of(table.schema.field(name).type)
        if kind in ("text", "bytes"):  # all of one kind, and the kind of the whole frame's
            found = pd.api.types.infer_dtype(df[name], skipna=True)
            if found not in ("string" if kind == "text" else "bytes", "empty"):
                raise SchemaMismatchError(
                    f"column {name!r} of {where} mixes strings and bytes (pandas infers "
                    f"{found!r}); stored together one would be converted into the other",
                    hint=Hint(f"make it one kind first, e.g. df[{name!r}] = df[{name!r}].map("
                              "lambda v: v.decode() if isinstance(v, bytes) else v)"))
        elif isinstance(kind, tuple) and kind[0] == "timestamp":
            zones = {str(v.tzinfo) if v.tzinfo is not None else None
                     for v in df[name].dropna() if hasattr(v, "tzinfo")}
            if len(zones) > 1:
                shown = sorted(zones, key=str)
                raise SchemaMismatchError(
                    f"column {name!r} of {where} mixes times of several time zones "
                    f"({', '.join('no zone' if z is None else repr(z) for z in shown)}); "
                    "stored together they would all be converted to one",
                    hint=Hint(f"give them one zone first, e.g. df[{name!r}] = pd.to_datetime("
                              f"df[{name!r}], utc=True) (times without a zone need "
                              ".dt.tz_localize(...) first)"))


def _with_named_index(df: pd.DataFrame, where: str) -> pd.DataFrame:
    check_columns(df.columns, where)
    if any(n is not None for n in df.index.names):
        df = df.reset_index()  # named index levels are data: keep them as columns
        check_columns(df.columns, where)
    return df


def _frame_schema(df: pd.DataFrame, where: str) -> pa.Schema:
    """The Arrow schema of a whole frame: types inferred from all rows, not the first block
    (an object column that is empty for a million rows is still a string column)."""
    df = _with_named_index(df, where)
    try:
        return pa.Schema.from_pandas(df, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return _frame_to_arrow(df, where).schema  # raises the error naming the column


def check_kinds(table: pa.Table, schema: pa.Schema, where: str) -> None:
    """Refuse a column of ``table`` whose values are of another kind than ``schema``'s
    (:func:`kind_of`: strings for numbers, bytes for strings, another time zone...), naming
    the column, both types and the conversion to make first."""
    for field in schema:
        if field.name not in table.column_names:
            continue
        got = table.schema.field(field.name).type
        if _fits(kind_of(got), kind_of(field.type)):
            continue
        raise SchemaMismatchError(
            f"column {field.name!r} of {where} is {got} but the dataset stores {field.type}; "
            f"chunkframe does not convert {_kind_name(got)} to {_kind_name(field.type)} "
            f"silently (pd.concat would not either): convert it first "
            f"({_conversion(field.name, field.type)})",
            hint=Hint("or use {} to replace the dataset with the new schema",
                      Arg("mode", "overwrite")))


def conform(table: pa.Table, schema: pa.Schema, where: str) -> pa.Table:
    """Cast ``table`` to ``schema`` where that is lossless; else name the column and the fix."""
    if table.schema.equals(schema):
        return table
    names = table.schema.names
    if names != schema.names:
        missing = [n for n in schema.names if n not in names]
        extra = [n for n in names if n not in schema.names]
        if sorted(names) == sorted(schema.names):
            table = table.select(schema.names)
        else:
            raise SchemaMismatchError(
                f"{where} has columns {names!r} but the dataset has {schema.names!r} "
                f"(missing {missing!r}, unexpected {extra!r}); select or rename the columns to match"
            )
    check_kinds(table, schema, where)
    arrays = []
    for field in schema:
        col = table.column(field.name)
        if col.type.equals(field.type):
            arrays.append(col)
            continue
        try:
            arrays.append(col.cast(field.type, safe=True))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise SchemaMismatchError(
                f"column {field.name!r} of {where} is {col.type} but the dataset stores "
                f"{field.type}, and it cannot be converted safely ({exc})",
                hint=Hint("convert the column first, or use {} to replace the dataset with the "
                          "new schema", Arg("mode", "overwrite")),
            ) from exc
    return pa.Table.from_arrays(arrays, schema=schema)


def kind_of(t: pa.DataType) -> Any:
    """What a value of Arrow type ``t`` is, apart from its width or encoding: numbers (any
    integer, float or decimal), text, bytes, timestamps *in one time zone* (or naive), dates,
    ... Data is cast between types of one kind only; across kinds a cast would be a silent
    coercion (``"7"`` stored as 7, ``"y"`` as ``b"y"``, Paris times as UTC)."""
    if pa.types.is_dictionary(t):
        return kind_of(t.value_type)
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "number"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "text"
    if (pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t)
            or pa.types.is_fixed_size_binary(t)):
        return "bytes"
    if pa.types.is_timestamp(t):
        return ("timestamp", t.tz)
    for name in ("date", "time", "duration"):
        if getattr(pa.types, f"is_{name}")(t):
            return name
    if pa.types.is_map(t):
        return ("map", kind_of(t.key_type), kind_of(t.item_type))
    if (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)
            or pa.types.is_list_view(t) or pa.types.is_large_list_view(t)):
        return ("list", kind_of(t.value_type))
    if pa.types.is_struct(t):
        return ("struct", tuple((f.name, kind_of(f.type)) for f in t))
    return str(t)


def _fits(got: Any, want: Any) -> bool:
    """Whether values of kind ``got`` may be cast to kind ``want``: the same kind, or nulls
    only (an all-missing column, lists that are all empty), at any depth."""
    if got == "null" or got == want:
        return True
    return (isinstance(got, tuple) and isinstance(want, tuple) and len(got) == len(want)
            and all(_fits(g, w) for g, w in zip(got, want, strict=True)))


def _kind_name(t: pa.DataType) -> str:
    kind = kind_of(t)
    if isinstance(kind, tuple) and kind[0] == "timestamp":
        return f"times in time zone {kind[1]!r}" if kind[1] else "times without a time zone"
    return {"number": "numbers", "text": "strings", "bytes": "bytes"}.get(
        kind if isinstance(kind, str) else "", f"{t} values")


def _conversion(name: str, target: pa.DataType) -> str:
    """The pandas statement that converts column ``name`` to the kind of ``target``."""
    col = f"df[{name!r}]"
    if pa.types.is_dictionary(target):
        target = target.value_type
    if pa.types.is_timestamp(target):
        return (f"{col} = {col}.dt.tz_convert({target.tz!r}), or .dt.tz_localize({target.tz!r}) "
                "for times without a zone" if target.tz else
                f"{col} = {col}.dt.tz_convert(None) (UTC) or .dt.tz_localize(None) (local times)")
    kind = kind_of(target)
    if kind == "number":
        return f"{col} = pd.to_numeric({col})"
    if kind == "text":
        return f"{col} = {col}.astype('string')"
    if kind == "bytes":
        return f"{col} = {col}.str.encode('utf-8')"
    return f"to {target}"


def _frame_fingerprint(df: pd.DataFrame) -> str:
    h = hashlib.sha256()
    h.update(repr((df.shape, list(map(str, df.columns)), list(map(str, df.dtypes)))).encode())
    if len(df):
        step = max(1, len(df) // 4096)  # a sample of rows: cheap, and catches changed data
        sample = df.iloc[::step]
        for part in (sample, df.iloc[-1:]):
            try:
                h.update(pd.util.hash_pandas_object(part, index=False).to_numpy().tobytes())
            except TypeError:  # unhashable cells (lists, dicts): hash their Arrow form
                h.update(encode(to_arrow(part)))
    return "frame:" + h.hexdigest()[:32]


def _frames(frames: Iterable[pd.DataFrame]) -> Iterator[pa.Table]:
    schema: pa.Schema | None = None
    for i, df in enumerate(frames):
        if not isinstance(df, pd.DataFrame):
            raise SourceError(
                f"item {i} of the frame iterable is a {type(df).__name__}, not a DataFrame"
            )
        where = f"frame {i} of the source"
        table = _frame_to_arrow(df, where)
        if schema is None:
            schema = table.schema
        else:
            table = conform(table, schema, where)
        yield table


def format_of(path: str) -> str:
    """The format (csv, parquet, arrow) a file's name says, else :class:`SourceError`."""
    lower = path.lower()
    for ext in sorted(_FORMATS, key=len, reverse=True):
        if lower.endswith(ext):
            return _FORMATS[ext]
    raise SourceError(
        f"cannot tell the format of {path!r} from its name; use a .csv, .parquet or .arrow file"
    )


def _read_file(fs: Any, path: str, fmt: str, opened: Callable[[Any], None] | None = None
               ) -> Iterator[pa.Table | pa.RecordBatch]:
    """The batches of one file; ``opened`` receives the raw (still compressed) file object,
    whose position tells how many of the file's bytes have been read."""
    with fs.open(path, "rb") as raw:
        if opened is not None:
            opened(raw)
        codec = fsspec.utils.infer_compression(path) if fmt == "csv" else None
        f = fsspec.compression.compr[codec](raw, mode="rb") if codec else raw
        if fmt == "csv":
            delimiter = "\t" if path.lower().endswith(".tsv") else ","
            read = pacsv.ReadOptions(block_size=_CSV_BLOCK)
            # quoted values may hold newlines (pandas reads them): without this option a
            # block boundary inside one failed ("CSV parser got out of sync with chunker")
            parse = pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True)
            convert = pacsv.ConvertOptions(strings_can_be_null=True)
            counted = _QuoteCounter(f)
            try:
                reader = pacsv.open_csv(counted, read_options=read, parse_options=parse,
                                        convert_options=convert)
                yield from reader
            except pa.ArrowInvalid as exc:
                if "Empty CSV file" in str(exc):
                    raise SourceError(f"{path!r} is empty: it has no header and no rows") from exc
                if "Expected" in str(exc) and "columns, got" in str(exc):
                    raise SourceError(
                        f"cannot read {path!r} as CSV: {exc}. Every row must have as many "
                        "fields as the header (a stray delimiter, or a quote left open in an "
                        "earlier row); fix the file, or read it with pandas.read_csv("
                        "on_bad_lines=...) and ingest the DataFrame") from exc
                if "conversion error" not in str(exc):
                    raise SourceError(f"cannot read {path!r} as CSV: {exc}") from exc
                raise SchemaMismatchError(
                    f"cannot read {path!r} as CSV: {exc}. If a column's type changes part way "
                    "through the file (e.g. an integer column gains a decimal), convert the file "
                    "to Parquet with explicit types, or ingest it with pandas.read_csv(dtype=...)"
                ) from exc
            if counted.suspect():
                _check_quotes_closed(fs, path, codec, delimiter)
        elif fmt == "parquet":
            try:
                parquet = pq.ParquetFile(f)
            except (pa.ArrowInvalid, OSError) as exc:
                raise SourceError(f"cannot read {path!r} as Parquet: {exc}") from exc
            yield from parquet.iter_batches(batch_size=65_536)
        else:
            buf = pa.py_buffer(f.read())
            try:
                reader = paipc.open_file(buf)
                batches: Iterator[pa.RecordBatch] = (
                    reader.get_batch(i) for i in range(reader.num_record_batches))
            except pa.ArrowInvalid:
                try:
                    batches = paipc.open_stream(buf)
                except pa.ArrowInvalid as exc:
                    raise SourceError(
                        f"cannot read {path!r} as an Arrow IPC file or stream: {exc}"
                    ) from exc
            yield from batches


class _QuoteCounter:
    """A binary file that counts the double quotes read through it. pyarrow's CSV reader
    takes a quote left open at the end of the file as a field running to the end (one
    silently swallowed row or more, where pandas refuses the file). Quoted fields hold an
    even number of quotes, so an odd count in the file, or in its last line (where a quote
    opened after a literal one, as in ``12"``, ends up), is the cheap sign that one may be
    open: :meth:`suspect`."""

    TAIL = 1 << 16

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.quotes = 0
        self.tail = b""  # the last bytes read, up to TAIL

    def read(self, size: int = -1) -> bytes:
        data = bytes(self.raw.read(size))
        self.quotes += data.count(b'"')
        self.tail = (self.tail + data[-self.TAIL:])[-self.TAIL:]
        return data

    def suspect(self) -> bool:
        """Whether the file read so far may end inside a quoted field (a last line longer
        than the tail kept counts as one when it holds a quote)."""
        text = self.tail.rstrip(b"\r\n")
        return bool(self.quotes % 2 or text.count(b'"', text.rfind(b"\n") + 1) % 2
                    or (b"\n" not in text and len(self.tail) == self.TAIL and b'"' in text))

    @property
    def closed(self) -> bool:
        return bool(self.raw.closed)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False


def _check_quotes_closed(fs: Any, path: str, codec: str | None, delimiter: str) -> None:
    """Refuse a CSV file ending inside a quoted field, as pandas does. Called only for a
    :meth:`_QuoteCounter.suspect` file, which literal quotes inside unquoted fields (``12"``)
    also make: pandas' parser, run over the file a second time, tells the two apart."""
    with fs.open(path, "rb") as raw:
        f = fsspec.compression.compr[codec](raw, mode="rb") if codec else raw
        try:
            for _ in pd.read_csv(f, sep=delimiter, dtype=str, chunksize=1 << 20):
                pass
        except pd.errors.ParserError as exc:
            row = re.search(r"EOF inside string starting at row (\d+)", str(exc))
            where = f"in row {row.group(1)} (the header is row 0) " if row else ""
            raise SourceError(
                f"cannot read {path!r} as CSV: a quoted field opened {where}is never closed, "
                f"so the rest of the file would be read as one value ({exc}); close the quote "
                "(a quote inside a quoted field is written twice: \"\")"
            ) from exc


def list_files(url: str, storage_options: dict[str, Any]) -> tuple[Any, list[str]]:
    """The file system of ``url`` and the files it names (a file, a directory's known
    files, or a glob's matches), sorted; a :class:`SourceError` when there are none."""
    fs, path = fsspec.url_to_fs(url, **storage_options)
    if any(ch in path for ch in "*?["):
        paths = sorted(fs.glob(path))
    elif fs.isdir(path):
        paths = sorted(p for p in fs.find(path) if _known(p))
    else:
        paths = [path] if fs.exists(path) else []
    paths = [p for p in paths if fs.isfile(p)]
    if not paths:
        raise SourceError(f"no files match {url!r}; check the path (and the glob pattern)")
    return fs, paths


def _known(path: str) -> bool:
    try:
        format_of(path)
        return True
    except SourceError:
        return False


def _file_source(url: str, storage_options: dict[str, Any]) -> Source:
    fs, paths = list_files(url, storage_options)
    return files_source(fs, paths, f"{url!r} ({len(paths)} file{'s' * (len(paths) != 1)})")


def files_source(fs: Any, paths: list[str], description: str) -> Source:
    """The files ``paths`` of ``fs``, read in this order as one source (what an ingest of a
    URL or glob reads, and what resume and repair re-read from a recorded list)."""
    h = hashlib.sha256()
    for p in paths:
        info = fs.info(p)
        h.update(repr((p, info.get("size"), info.get("mtime") or info.get("LastModified")
                       or info.get("ETag"))).encode())
    fmts = {p: format_of(p) for p in paths}
    sizes = {p: int(fs.info(p).get("size") or 0) for p in paths}
    reading: dict[str, Any] = {"before": 0, "raw": None}  # bytes of the files done; the open one
    file_rows: dict[str, int] = {}

    def done() -> int:
        raw = reading["raw"]
        return reading["before"] + (raw.tell() if raw is not None and not raw.closed else 0)

    def batches() -> Iterator[pa.Table | pa.RecordBatch]:
        schema: pa.Schema | None = None
        reading["before"] = 0
        file_rows.clear()
        for p in paths:
            where = f"file {p!r}"
            file_rows[p] = 0
            for part in _read_file(fs, p, fmts[p], lambda raw: reading.update(raw=raw)):
                table = part if isinstance(part, pa.Table) else pa.Table.from_batches([part])
                check_columns(table.schema.names, where)
                if schema is None:
                    schema = table.schema
                else:
                    table = conform(table, schema, where)
                file_rows[p] += table.num_rows
                yield table
            reading.update(before=reading["before"] + sizes[p], raw=None)

    fingerprint = "files:" + h.hexdigest()[:32]
    if "csv" in fmts.values():  # rows unknown before parsing: count bytes
        return Source(description, fingerprint, batches, sum(sizes.values()), "B", done, fs,
                      list(paths), file_rows)
    return Source(description, fingerprint, batches, _count_rows(fs, paths, fmts), fs=fs,
                  paths=list(paths), file_rows=file_rows)


def _count_rows(fs: Any, paths: list[str], fmts: dict[str, str]) -> int | None:
    """Rows of Parquet and Arrow IPC files from their footers (None if one has none)."""
    total = 0
    for p in paths:
        try:
            with fs.open(p, "rb") as f:
                if fmts[p] == "parquet":
                    total += pq.ParquetFile(f).metadata.num_rows
                else:
                    total += paipc.open_file(f).count_rows()
        except (pa.ArrowInvalid, OSError):  # an IPC stream has no footer; errors come later
            return None
    return total


def open_source(source: Any, storage_options: dict[str, Any] | None = None) -> Source:
    """Wrap any supported source; raises :class:`SourceError` naming what is wrong."""
    if isinstance(source, Source):
        return source  # already opened (a recorded source re-read by resume or repair)
    if isinstance(source, pd.DataFrame):
        df = source
        check_columns(df.columns, "the DataFrame")
        if len(df) == 0:
            raise SourceError("the DataFrame is empty: it has no rows to ingest")

        def frame_batches() -> Iterator[pa.Table]:
            # Large blocks: from_pandas costs ~1 ms per call per column whatever the size,
            # and numeric columns convert zero-copy, so blocks cost little extra memory.
            step = 1 << 20
            schema = _frame_schema(df, "the DataFrame")
            for start in range(0, len(df), step):
                yield _frame_to_arrow(df.iloc[start:start + step], "the DataFrame", schema)

        return Source("a DataFrame", _frame_fingerprint(df), frame_batches, len(df))
    if isinstance(source, (str, os.PathLike)):
        return _file_source(os.fspath(source), storage_options or {})
    if isinstance(source, pd.Series):
        raise SourceError("a Series is not a table; ingest series.to_frame() instead")
    if isinstance(source, (pa.Table, pa.RecordBatch)):
        table = source if isinstance(source, pa.Table) else pa.Table.from_batches([source])
        check_columns(table.schema.names, "the Arrow table")
        digest = hashlib.sha256(repr((table.schema.to_string(), table.num_rows,
                                      table.slice(0, 1).to_pylist(),
                                      table.slice(table.num_rows - 1).to_pylist())).encode())
        return Source("an Arrow table", "arrow:" + digest.hexdigest()[:32], lambda: iter([table]),
                      table.num_rows)
    if isinstance(source, Iterable) and not isinstance(source, (bytes, dict)):
        items = source
        if iter(items) is items:  # a one-shot iterator: it can be read once only

            def once() -> Iterator[pa.Table]:
                return _frames(items)

            # nothing identifies an iterator's rows before reading them: unique, so that
            # resume refuses it unless the caller names the source (ingest(fingerprint=...))
            return Source("an iterator of DataFrames", f"{ITERATOR_FINGERPRINT}{uuid.uuid4().hex}",
                          once)
        frames = list(items)
        h = hashlib.sha256()
        for df in frames:
            if isinstance(df, pd.DataFrame):
                h.update(_frame_fingerprint(df).encode())
        rows = sum(len(df) for df in frames if isinstance(df, pd.DataFrame))
        return Source(f"{len(frames)} DataFrames", "frames:" + h.hexdigest()[:32],
                      lambda: _frames(frames), rows)
    raise SourceError(
        f"cannot ingest a {type(source).__name__}; give a DataFrame, an iterable of "
        "DataFrames, or a path/URL/glob of CSV, Parquet or Arrow files"
    )

