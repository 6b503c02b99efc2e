"""Codec: pandas → Arrow IPC chunks → pandas is exact, chunk files stand alone, CRC32C checksums."""

from __future__ import annotations

import re

import google_crc32c
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.ipc
import pytest

from chunkframe.storage import codec

N = 23  # rows; with chunk_rows 1, 4 and 23 chunks are single rows, uneven, and the whole frame


def typed_frame(n: int = N) -> pd.DataFrame:
    """One column per pandas dtype a user meets, each with missing values where it can."""
    rng = np.random.default_rng(7)
    idx = np.arange(n)
    cats = pd.Categorical.from_codes(idx % 3, categories=["zebra", "apple", "mango", "unused"],
                                     ordered=True)
    return pd.DataFrame({
        "int": rng.integers(-(2**62), 2**62, n),
        "int32": idx.astype(np.int32),
        "Int64": pd.array([None if i % 4 == 1 else i * 10**12 for i in idx], dtype="Int64"),
        "boolean": pd.array([None if i % 3 == 2 else bool(i % 2) for i in idx], dtype="boolean"),
        "float": np.where(idx % 5 == 0, np.nan, rng.normal(size=n)),
        "bool": idx % 2 == 0,
        "str": pd.array([None if i % 6 == 3 else f"s{i}é" for i in idx], dtype="str"),
        "cat": cats,
        "naive": pd.date_range("2024-03-30", periods=n, freq="37min").where(idx % 7 != 4),
        "naive_ns": pd.date_range("2024-01-01", periods=n, freq="1ns", unit="ns"),
        "aware": pd.date_range("2024-03-30 23:00", periods=n, freq="h", tz="Europe/Paris"),
        "delta": pd.to_timedelta(idx * 1.5, unit="s").where(idx % 8 != 5),
    })


def test_fixture_frame_has_the_dtypes_under_test():
    dtypes = {k: str(v) for k, v in typed_frame().dtypes.items()}
    assert dtypes["Int64"] == "Int64" and dtypes["boolean"] == "boolean"
    assert dtypes["str"] == "str" and dtypes["cat"] == "category"
    assert dtypes["aware"].endswith("Europe/Paris]") and dtypes["delta"].startswith("timedelta64")
    df = typed_frame()
    for col in ("Int64", "boolean", "float", "str", "naive", "delta"):
        assert df[col].isna().any(), col


@pytest.mark.parametrize("compression", [None, "zstd", "lz4"])
@pytest.mark.parametrize("chunk_rows", [1, 4, N])
def test_round_trip_exact(client, compression, chunk_rows):
    df = typed_frame()
    ds = client.ingest(df, f"rt-{compression}-{chunk_rows}", chunk_rows=chunk_rows,
                       compression=compression, progress=False)
    assert len(ds.chunks) == -(-N // chunk_rows)
    out = ds.to_pandas()
    pd.testing.assert_frame_equal(out, df)
    # categories and their order survive chunks that hold only some of them
    assert list(out["cat"].cat.categories) == ["zebra", "apple", "mango", "unused"]
    assert out["cat"].cat.ordered
    # ... and so does each chunk read on its own
    for part in ds.iter_chunks():
        assert list(part["cat"].cat.categories) == ["zebra", "apple", "mango", "unused"]


def test_compression_is_applied(client):
    df = pd.DataFrame({"x": np.zeros(50_000), "s": ["same text"] * 50_000})
    plain = client.ingest(df, "plain", chunk_rows=50_000, progress=False).chunks
    zstd = client.ingest(df, "zstd", chunk_rows=50_000, compression="zstd", progress=False).chunks
    assert zstd["bytes"].iloc[0] * 10 < plain["bytes"].iloc[0]
    with pyarrow.ipc.open_file(client.store.path(zstd["key"].iloc[0])) as reader:
        assert reader.read_all().num_rows == 50_000


@pytest.mark.parametrize("compression", [None, "zstd"])
@pytest.mark.parametrize("encoded", [False, True])
def test_chunk_files_are_plain_arrow_ipc_files(client, compression, encoded):
    """Any Arrow reader opens a chunk from its path alone; with encodings it sees the stored
    types (dictionaries, narrow ints: marked in the field metadata), which
    ``codec.unpack`` turns back into the dataset's."""
    df = typed_frame()
    encodings = None if encoded else dict.fromkeys(df.columns, "plain")
    ds = client.ingest(df, "plain-arrow", chunk_rows=5, compression=compression, progress=False,
                       encodings=encodings)
    parts = []
    for key in ds.chunks["key"]:
        path = client.store.path(key)
        assert path.endswith(".arrow")
        with pyarrow.ipc.open_file(path) as reader:  # nothing but pyarrow, from the path alone
            assert reader.num_record_batches == 1
            part = reader.read_all()
        assert any(codec.ENCODING in (f.metadata or {}) for f in part.schema) == encoded
        parts.append(codec.unpack(part)[0])
    whole = pa.concat_tables(parts).to_pandas()  # the pandas metadata travels in each file
    pd.testing.assert_frame_equal(whole, df)


def test_checksums_are_crc32c_of_the_file_bytes(client):
    ds = client.ingest(typed_frame(), "sums", chunk_rows=4, progress=False)
    chunks = ds.chunks
    assert len(chunks) == 6
    for key, recorded, nbytes in zip(chunks["key"], chunks["checksum"], chunks["bytes"],
                                     strict=True):
        assert re.fullmatch(r"crc32c:[0-9a-f]{8}", recorded), recorded
        with open(client.store.path(key), "rb") as f:
            data = f.read()
        assert len(data) == nbytes
        assert recorded == f"crc32c:{google_crc32c.value(data):08x}"
    assert chunks["checksum"].nunique() == len(chunks)


def test_checksum_helpers():
    data = b"chunkframe" * 1000
    expected = f"crc32c:{google_crc32c.value(data):08x}"
    assert codec.checksum(data) == expected
    assert codec.checksum(memoryview(data)) == expected
    assert codec.checksum(b"") == "crc32c:00000000"
    assert codec.checksum_matches(data, expected) == (True, expected)
    ok, computed = codec.checksum_matches(data[:-1], expected)
    assert not ok and computed != expected and computed.startswith("crc32c:")
    with pytest.raises(ValueError, match="md5"):
        codec.checksum_matches(data, "md5:0123")


@pytest.mark.parametrize("compression", [None, "zstd", "lz4"])
def test_encode_decode_are_deterministic_inverses(compression):
    table = codec.to_arrow(typed_frame())
    data = codec.encode(table, compression)
    assert data == codec.encode(table, compression)  # same table, same bytes: idempotent rewrites
    assert data[:6] == b"ARROW1" and data[-6:] == b"ARROW1"
    back = codec.decode(data)
    assert back.equals(table)
    pd.testing.assert_frame_equal(back.to_pandas(), typed_frame())
    assert codec.decode(memoryview(data)).equals(table)
    assert codec.decode(pa.py_buffer(data)).equals(table)


def test_encode_empty_table_is_readable():
    table = codec.to_arrow(typed_frame().iloc[:0])
    back = codec.decode(codec.encode(table))
    assert back.num_rows == 0 and back.schema.equals(table.schema)
