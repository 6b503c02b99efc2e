"""Chunk bytes: pandas/Arrow tables as Arrow IPC files, and their CRC32C checksums."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import crc32c
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..core.errors import InvalidArgumentError

__all__ = [
    "CHECKSUM_ALGORITHM",
    "checksum",
    "checksum_matches",
    "IDENTITY",
    "identity_of",
    "encode",
    "write",
    "decode",
    "to_arrow",
    "Compression",
    "CompressionChoice",
    "COMPRESSIONS",
    "resolve_compression",
    "ENCODING",
    "ENCODINGS",
    "DICTIONARY_MAX_RATIO",
    "check_encodings",
    "choose_encodings",
    "encode_columns",
    "unpack",
]

CHECKSUM_ALGORITHM = "crc32c"
Compression = Literal["zstd", "lz4"] | None
CompressionChoice = Literal["auto", "zstd", "lz4"] | None
"""What callers pass: ``"auto"`` (by the store's medium, see :func:`resolve_compression`),
a codec, or None (uncompressed)."""
COMPRESSIONS = ("auto", "zstd", "lz4", None)

ENCODING = b"chunkframe.encoding"
"""Field metadata key of a column a chunk stores encoded (``b"dictionary"``): readers
(:func:`decode`) turn it back into the dataset's plain type, so encodings never show."""
ENCODINGS = ("auto", "dictionary", "narrow", "plain")
DICTIONARY_MAX_RATIO = 0.5
"""A text column is dictionary-encoded when its distinct values are at most this share of
its rows (and the dictionary plus its indices are smaller than the plain column)."""


def resolve_compression(choice: object, remote: bool) -> Compression:
    """The codec ``choice`` means for a store: ``"auto"`` is zstd on an object store
    (``remote``: network bytes dominate a read) and none on a local one (chunks map
    zero-copy); anything else must be one of :data:`COMPRESSIONS`.

    >>> resolve_compression("auto", remote=True), resolve_compression("auto", remote=False)
    ('zstd', None)
    """
    if choice not in COMPRESSIONS:
        raise InvalidArgumentError(
            f"compression must be one of 'auto', 'zstd', 'lz4' or None, got {choice!r}")
    if choice == "auto":
        return "zstd" if remote else None
    return choice  # type: ignore[return-value]


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _is_wide_int(t: pa.DataType) -> bool:
    return t in (pa.int64(), pa.int32())


_NARROWER = (pa.int8(), pa.int16(), pa.int32())


def check_encodings(encodings: object, schema: pa.Schema, where: str) -> dict[str, str]:
    """Validate a per-column override: ``{column: "auto" | "dictionary" | "narrow" |
    "plain"}``, every column one of ``schema``'s, ``"dictionary"`` only for text columns and
    ``"narrow"`` only for int64 and int32 ones."""
    if encodings is None:
        return {}
    if not isinstance(encodings, Mapping):
        raise InvalidArgumentError(
            f"encodings must be a mapping of column to 'auto', 'dictionary' or 'plain', "
            f"got {encodings!r}")
    out: dict[str, str] = {}
    for col, enc in encodings.items():
        if col not in schema.names:
            raise InvalidArgumentError(
                f"encodings names column {col!r}, which {where} does not have; its columns "
                f"are {schema.names!r}")
        if enc not in ENCODINGS:
            raise InvalidArgumentError(
                f"encoding {enc!r} for column {col!r} is unknown; use 'auto', 'dictionary', "
                "'narrow' or 'plain'")
        if enc == "dictionary" and not _is_text(schema.field(col).type):
            raise InvalidArgumentError(
                f"column {col!r} is {schema.field(col).type}: only text columns are "
                "dictionary-encoded (categoricals already are)")
        if enc == "narrow" and not _is_wide_int(schema.field(col).type):
            raise InvalidArgumentError(
                f"column {col!r} is {schema.field(col).type}: only int64 and int32 columns "
                "are stored narrower")
        out[str(col)] = str(enc)
    return out


def choose_encodings(table: pa.Table, overrides: Mapping[str, str] | None = None
                     ) -> dict[str, str]:
    """Each column's encoding for ``table`` and chunks like it: ``overrides`` first, then
    ``"dictionary"`` for text columns where it measures smaller (see
    :data:`DICTIONARY_MAX_RATIO`), ``"narrow"`` for every int64 and int32 column (each chunk
    stores them in the narrowest signed type that holds its values). Returns only the
    columns to encode.

    >>> t = pa.table({"a": pa.array(["x", "y"] * 50, pa.large_string()), "b": range(100)})
    >>> choose_encodings(t), choose_encodings(t, {"a": "plain", "b": "plain"})
    ({'a': 'dictionary', 'b': 'narrow'}, {})
    """
    overrides = overrides or {}
    out: dict[str, str] = {}
    rows = table.num_rows
    for field in table.schema:
        wanted = overrides.get(field.name, "auto")
        if wanted == "plain":
            continue
        if _is_wide_int(field.type):
            out[field.name] = "narrow"
            continue
        if not _is_text(field.type):
            continue
        if wanted == "dictionary":
            out[field.name] = "dictionary"
            continue
        if not rows:
            continue
        col = table.column(field.name)
        distinct = pc.count_distinct(col, mode="all").as_py()
        if distinct > DICTIONARY_MAX_RATIO * rows:
            continue
        encoded = _dictionary(col)
        if encoded.nbytes < col.nbytes:
            out[field.name] = "dictionary"
    return out


def _dictionary(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    """``col`` as one dictionary array, with the narrowest indices that hold it."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    encoded = pc.dictionary_encode(arr)
    n = len(encoded.dictionary)
    index = pa.int8() if n < 2**7 else pa.int16() if n < 2**15 else pa.int32()
    return encoded.cast(pa.dictionary(index, arr.type))


def _narrowed(col: pa.ChunkedArray) -> pa.ChunkedArray | None:
    """``col`` (ints) in the narrowest signed type that holds its values, None if none is
    narrower than its own."""
    bounds = pc.min_max(col).as_py()
    lo, hi = bounds["min"], bounds["max"]
    if lo is None:  # no values: the narrowest
        lo = hi = 0
    for t in _NARROWER:
        if t.bit_width >= col.type.bit_width:
            return None
        if -(2 ** (t.bit_width - 1)) <= lo and hi < 2 ** (t.bit_width - 1):
            return col.cast(t)
    return None


def encode_columns(table: pa.Table, encodings: Mapping[str, str] | None) -> pa.Table:
    """``table`` with the columns ``encodings`` names as ``"dictionary"`` stored as Arrow
    dictionary arrays and those it names ``"narrow"`` as the narrowest ints that hold this
    chunk's values, marked (:data:`ENCODING`) so :func:`decode` restores their type."""
    for name, enc in (encodings or {}).items():
        if enc not in ("dictionary", "narrow") or name not in table.schema.names:
            continue
        i = table.schema.get_field_index(name)
        field = table.schema.field(i)
        meta = dict(field.metadata or {})
        if enc == "dictionary" and _is_text(field.type):
            encoded: pa.Array | pa.ChunkedArray = _dictionary(table.column(i))
            meta[ENCODING] = b"dictionary"
        elif enc == "narrow" and _is_wide_int(field.type):
            narrowed = _narrowed(table.column(i))
            if narrowed is None:
                continue
            encoded = narrowed
            meta[ENCODING] = b"narrow:" + str(field.type).encode()
        else:
            continue
        table = table.set_column(i, field.with_type(encoded.type).with_metadata(meta), encoded)
    return table


def unpack(table: pa.Table) -> tuple[pa.Table, int]:
    """``table`` with its encoded columns (see :func:`encode_columns`) in their plain
    types again, and the bytes that made (new buffers: not views of the chunk)."""
    made = 0
    for i, field in enumerate(table.schema):
        how = (field.metadata or {}).get(ENCODING)
        if how is None:
            continue
        col = table.column(i)
        if how == b"dictionary":
            value_type = field.type.value_type
            plain = pa.chunked_array([c.dictionary_decode() for c in col.chunks], value_type)
        elif how.startswith(b"narrow:"):
            value_type = pa.type_for_alias(how[7:].decode())
            plain = col.cast(value_type)
        else:
            raise ValueError(f"column {field.name!r} is stored with encoding {how!r}, which "
                             "this version of chunkframe does not know; upgrade it")
        made += plain.nbytes
        meta = {k: v for k, v in field.metadata.items() if k != ENCODING}
        table = table.set_column(i, pa.field(field.name, value_type, field.nullable,
                                             meta or None), plain)
    return table, made

IDENTITY = b"chunkframe.chunk"
"""Schema metadata key of a chunk file naming itself: JSON of its dataset id, generation,
chunk number, first sn and row count, so the file can be checked against (and the record
rebuilt from) Redis and the catalog."""


def checksum(data: bytes | memoryview | pa.Buffer) -> str:
    """CRC32C of ``data`` tagged with its algorithm: ``crc32c:1a2b3c4d``.

    The ``crc32c`` package: hardware instructions (~10 GB/s here, 4x google-crc32c), and it
    releases the GIL, so chunks fetched in parallel are checked in parallel.
    """
    return f"{CHECKSUM_ALGORITHM}:{crc32c.crc32c(data):08x}"


def checksum_matches(data: bytes | memoryview | pa.Buffer, recorded: str) -> tuple[bool, str]:
    """Compare ``data`` against a recorded checksum; returns (ok, computed)."""
    algorithm, _, _ = recorded.partition(":")
    if algorithm != CHECKSUM_ALGORITHM:
        raise ValueError(
            f"checksum {recorded!r} uses algorithm {algorithm!r}; this version of chunkframe "
            f"reads {CHECKSUM_ALGORITHM!r} only"
        )
    computed = checksum(data)
    return computed == recorded, computed


def to_arrow(df: pd.DataFrame, schema: pa.Schema | None = None) -> pa.Table:
    """pandas → Arrow, keeping pandas dtypes in the schema metadata for an exact round trip.

    The index is dropped: a row's identity is its serial number. ``schema`` fixes the types
    (those of the whole source when ``df`` is one block of it).
    """
    return pa.Table.from_pandas(df, schema=schema, preserve_index=False)


def write(table: pa.Table, sink: pa.NativeFile, compression: Compression = None,
          identity: Mapping[str, Any] | None = None,
          encodings: Mapping[str, str] | None = None) -> None:
    """Write ``table`` to ``sink`` as one Arrow IPC *file* of one record batch: any Arrow
    reader can open it alone. Sliced tables are written without copying them first.

    ``identity`` (dataset, generation, chunk, start, rows) goes into the schema metadata
    under :data:`IDENTITY`; :func:`identity_of` reads it back. ``encodings``: the columns
    to store encoded (see :func:`encode_columns`).
    """
    if encodings:
        table = encode_columns(table, encodings)
    if identity is not None:
        meta = dict(table.schema.metadata or {})
        meta[IDENTITY] = json.dumps(dict(identity), separators=(",", ":")).encode()
        table = table.replace_schema_metadata(meta)
    options = pa.ipc.IpcWriteOptions(compression=compression)
    with pa.ipc.new_file(sink, table.schema, options=options) as writer:
        writer.write_table(table, max_chunksize=max(table.num_rows, 1))


def encode(table: pa.Table, compression: Compression = None,
           encodings: Mapping[str, str] | None = None) -> bytes:
    """The bytes :func:`write` would store for ``table``."""
    sink = pa.BufferOutputStream()
    write(table, sink, compression, encodings=encodings)
    return sink.getvalue().to_pybytes()


def identity_of(schema: pa.Schema) -> dict[str, Any] | None:
    """What a chunk file says it is (see :func:`write`), or None for a chunk written before
    chunks named themselves, or whose record is unreadable (then ``{}``: names nothing)."""
    raw = (schema.metadata or {}).get(IDENTITY)
    if raw is None:
        return None
    try:
        found = json.loads(raw)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def decode(data: bytes | memoryview | pa.Buffer, columns: Sequence[str] | None = None,
           plain: bool = True) -> pa.Table:
    """Inverse of :func:`encode`; zero-copy over ``data`` for uncompressed chunks (but for
    dictionary-encoded text columns, which ``plain`` turns back into their own type: see
    :func:`unpack`, which ``plain=False`` leaves to the caller).

    ``columns``: names of the only fields to read (their buffers alone are decoded, and
    decompressed, in Arrow's threads); the table then holds those the chunk has, in the
    chunk's schema order.
    """
    buf = data if isinstance(data, pa.Buffer) else pa.py_buffer(data)
    if columns is None:
        table = pa.ipc.open_file(buf).read_all()
    else:
        names = pa.ipc.open_file(buf).schema.names  # the chunk's own (see schema evolution)
        wanted = set(columns)
        options = pa.ipc.IpcReadOptions(
            included_fields=[i for i, n in enumerate(names) if n in wanted])
        table = pa.ipc.open_file(buf, options=options).read_all()
    return unpack(table)[0] if plain else table
