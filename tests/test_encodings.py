"""Storage encodings and compression by medium: dictionary text columns, ``compression="auto"``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from frames import all_dtypes, sensors

import chunkframe as cf
from chunkframe.core.errors import ChunkCorruptionError, InvalidArgumentError
from chunkframe.storage import codec


def _with_object_text(df: pd.DataFrame) -> pd.DataFrame:
    """``all_dtypes`` plus an object column of text with None and NaN missing."""
    obj = df["s"].astype(object)
    obj[::7] = np.nan
    return df.assign(o=obj)


def _encoded_columns(client, dataset_id: str) -> set[str]:
    """The columns the dataset's chunk files store encoded (in any chunk)."""
    store = client.backends.store
    snap = client.reader.snapshot(dataset_id, refresh=True)
    found: set[str] = set()
    for i in range(len(snap.chunks)):
        data = store.get(snap.chunks[i].key)
        schema = pa.ipc.open_file(pa.py_buffer(data)).schema
        found |= {f.name for f in schema if f.metadata and codec.ENCODING in f.metadata}
    return found


def _check_reads(ds, df: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(ds.to_pandas(), df)
    pd.testing.assert_frame_equal(ds.slice(100, 400).reset_index(drop=True),
                                  df.iloc[100:400].reset_index(drop=True))
    rows = [3, 999, 17, len(df) - 1]
    pd.testing.assert_frame_equal(ds.get_many(rows).reset_index(drop=True),
                                  df.iloc[rows].reset_index(drop=True))
    got = ds.get(17)
    for col in ("s", "c"):
        want = df[col].iloc[17]
        assert (pd.isna(got[col]) and pd.isna(want)) or got[col] == want
    arrow = ds.to_arrow()
    assert not any(pa.types.is_dictionary(arrow.schema.field(c).type) for c in ("s",))
    assert pa.types.is_dictionary(arrow.schema.field("c").type)  # a category stays one


@pytest.mark.parametrize("encoding", ["dictionary", "plain"])
def test_every_dtype_round_trips_under_both_encodings(client, encoding):
    df = _with_object_text(all_dtypes(3_000))
    ds = client.ingest(df, "enc", chunk_rows=1_000, encodings={"s": encoding, "o": encoding})
    assert {"s", "o"} & _encoded_columns(client, "enc") == (
        {"s", "o"} if encoding == "dictionary" else set())
    assert ds.to_pandas()["s"].dtype == df["s"].dtype  # str stays str, not category
    # object text reads back as Arrow gives it to pandas (str, missing as NaN), as it did
    # before encodings: the same under both
    ref = pa.Table.from_pandas(df, preserve_index=False).to_pandas()
    assert ref["o"].dtype == ds.to_pandas()["o"].dtype
    _check_reads(ds, df.assign(o=ref["o"]))


def test_low_cardinality_text_is_encoded_automatically(client):
    n = 4_000
    rng = np.random.default_rng(2)
    df = pd.DataFrame({"carrier": pd.Series(rng.choice(["AA", "UA", "DL"], n), dtype="str"),
                       "tail": pd.Series([f"N{i:05d}" for i in range(n)], dtype="str"),
                       "x": rng.normal(size=n)})
    client.ingest(df, "auto", chunk_rows=1_000)
    assert _encoded_columns(client, "auto") == {"carrier"}  # "tail" is all distinct
    plain = client.ingest(df, "plain", chunk_rows=1_000, encodings={"carrier": "plain"})
    assert _encoded_columns(client, "plain") == set()
    client.ingest(df.assign(n=np.arange(n)), "ints", chunk_rows=1_000,
                  encodings={"carrier": "dictionary", "n": "plain"})
    assert _encoded_columns(client, "ints") == {"carrier"}
    assert client.open("auto").meta.nbytes < plain.meta.nbytes
    pd.testing.assert_frame_equal(client.open("auto").to_pandas(), df)


def test_appends_bring_new_strings_and_categories(client):
    df = all_dtypes(2_000)
    ds = client.ingest(df, "app", chunk_rows=700, encodings={"s": "dictionary"})
    more = all_dtypes(1_500, seed=5)
    more["s"] = more["s"].str.upper()  # values no earlier chunk's dictionary holds
    more["c"] = pd.Categorical(np.where(np.arange(1_500) % 2, "x", "lo"),
                               categories=df["c"].cat.categories, ordered=True)
    ds.append(more, chunk_rows=700)
    ds.append(more.iloc[:10], chunk_rows=700, encodings={"s": "plain"})
    want = pd.concat([df, more, more.iloc[:10]], ignore_index=True)
    _check_reads(ds, want)
    assert "s" in _encoded_columns(client, "app")


def test_overrides_are_validated(client):
    df = all_dtypes(100)
    with pytest.raises(InvalidArgumentError, match="'nope'"):
        client.ingest(df, "bad", encodings={"nope": "dictionary"})
    with pytest.raises(InvalidArgumentError, match="'rle'"):
        client.ingest(df, "bad", encodings={"s": "rle"})
    with pytest.raises(InvalidArgumentError, match="only text columns"):
        client.ingest(df, "bad", encodings={"i": "dictionary"})
    with pytest.raises(InvalidArgumentError, match="mapping"):
        client.ingest(df, "bad", encodings=["s"])
    with pytest.raises(InvalidArgumentError, match="compression"):
        client.ingest(df, "bad", compression="gzip")
    assert not client.backends.store.exists("bad")


def test_a_flipped_byte_in_an_encoded_chunk_is_caught(client, tmp_path):
    df = all_dtypes(2_000)
    client.ingest(df, "flip", chunk_rows=1_000, encodings={"s": "dictionary"})
    snap = client.reader.snapshot("flip", refresh=True)
    key = snap.chunks[1].key
    path = client.backends.store.path(key)
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF
    with open(path, "wb") as f:
        f.write(data)
    fresh = cf.connect(store=tmp_path / "store", redis=client.settings.redis_url,
                       catalog=tmp_path / "catalog.db", home=tmp_path,
                       prefix=client.settings.prefix)
    with pytest.raises(ChunkCorruptionError):
        fresh.open("flip").to_pandas()


def test_codec_round_trip_keeps_types():
    t = pa.table({"s": pa.array(["a", None, "b", "a"], pa.large_string()),
                  "n": pa.array([1, 2, 3, 4])})
    data = codec.encode(t, encodings={"s": "dictionary"})
    raw = codec.decode(data, plain=False)
    assert pa.types.is_dictionary(raw.schema.field("s").type)
    assert raw.schema.field("s").type.index_type == pa.int8()
    assert codec.decode(data).equals(t)
    assert codec.decode(data, ["s"]).column("s").equals(t.column("s"))


def test_compression_auto_is_none_on_a_local_store(client):
    ds = client.ingest(all_dtypes(500), "loc")
    assert ds.meta.compression is None
    assert client.ingest(all_dtypes(500), "z", compression="zstd").meta.compression == "zstd"
    assert client.ingest(all_dtypes(500), "l", compression="lz4").meta.compression == "lz4"
    assert client.ingest(all_dtypes(500), "n", compression=None).meta.compression is None


def test_compression_auto_is_zstd_on_s3(s3_client):
    df = all_dtypes(1_500)
    ds = s3_client.ingest(df, "s3auto", chunk_rows=500)
    assert ds.meta.compression == "zstd"
    assert s3_client.ingest(df, "s3none", compression=None).meta.compression is None
    ds.append(df.iloc[:100])  # "auto" keeps the dataset's
    assert s3_client.open("s3auto").meta.compression == "zstd"
    pd.testing.assert_frame_equal(s3_client.open("s3auto").to_pandas(),
                                  pd.concat([df, df.iloc[:100]], ignore_index=True))


def test_ints_are_stored_narrower_and_read_back_exactly(client):
    n = 3_000
    df = pd.DataFrame({"small": np.arange(n) % 24, "big": np.arange(n) * 2**40,
                       "mixed": np.where(np.arange(n) < 2_000, 1, 2**33),  # chunk 3 is wide
                       "i32": (np.arange(n) % 100).astype("int32"),
                       "ni": pd.array([None if i % 5 == 0 else i for i in range(n)], "Int64")})
    ds = client.ingest(df, "ints", chunk_rows=1_000)
    assert {"small", "mixed", "i32", "ni"} <= _encoded_columns(client, "ints")
    assert "big" not in _encoded_columns(client, "ints")
    pd.testing.assert_frame_equal(ds.to_pandas(), df)
    assert ds.get(2_999)["mixed"] == 2**33 and ds.get(0)["small"] == 0
    assert ds.to_arrow().schema.field("small").type == pa.int64()
    plain = client.ingest(df, "ints-plain", chunk_rows=1_000,
                          encodings=dict.fromkeys(df.columns, "plain"))
    assert ds.meta.nbytes < plain.meta.nbytes
    with pytest.raises(InvalidArgumentError, match="only int64 and int32"):
        client.ingest(df.assign(f=1.5), "bad", encodings={"f": "narrow"})


def test_last_values_and_export_agree_under_encodings(client, tmp_path):
    df = sensors(6_000)
    df["site"] = pd.Series(np.where(np.arange(6_000) % 3, "north", "south"), dtype="str")
    enc = client.ingest(df, "sens", chunk_rows=1_000, time_column="time", device_column="dev")
    plain = client.ingest(df, "sens-plain", chunk_rows=1_000, time_column="time",
                          device_column="dev", encodings=dict.fromkeys(df.columns, "plain"))
    assert {"s", "site", "k"} <= _encoded_columns(client, "sens")
    pd.testing.assert_frame_equal(enc.last(), plain.last())
    a = pd.read_parquet(enc.export(str(tmp_path / "a.parquet")))
    b = pd.read_parquet(plain.export(str(tmp_path / "b.parquet")))
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(enc.to_pandas(), df)


def test_decoded_columns_count_in_the_cache_bound(client):
    n = 4_000
    df = pd.DataFrame({"s": pd.Series(np.where(np.arange(n) % 2, "on", "off"), dtype="str"),
                       "x": np.arange(n, dtype="float64")})
    plain = client.ingest(df, "c-plain", chunk_rows=1_000, encodings={"s": "plain"})
    enc = client.ingest(df, "c-enc", chunk_rows=1_000)
    client.reader.clear()
    plain.get(0)
    assert client.reader.cache_info()["bytes"] == 0  # views of the verified map
    enc.get(0)
    assert client.reader.cache_info()["bytes"] > 0  # the decoded text is private memory
