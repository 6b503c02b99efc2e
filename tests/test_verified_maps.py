"""Verified maps: a local chunk checked once when mapped, then served from its map until its file changes."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pandas as pd
import pytest
from clock import fake_clock
from frames import sensors
from test_mapped_reads import _memory_twin
from test_reader import expected_rows

import chunkframe as cf
from chunkframe.core.errors import ChunkCorruptionError, InvalidArgumentError
from chunkframe.read import reader as reader_mod
from chunkframe.read.reader import STALENESS_SECONDS
from chunkframe.storage.store import LocalStore


@pytest.fixture
def df() -> pd.DataFrame:
    return sensors(8_000)


def _twin(client: cf.Client, **options) -> cf.Client:
    """A second client (its own reader: nothing mapped yet) over the same store."""
    return cf.connect(store=client.settings.store_url, redis=client.settings.redis_url,
                      catalog=client.settings.catalog, prefix=client.settings.prefix, **options)


def _counting_checksums(monkeypatch) -> list[str]:
    checks: list[str] = []
    real = reader_mod.checksum_matches

    def counting(buf, recorded):
        checks.append(recorded)
        return real(buf, recorded)

    monkeypatch.setattr(reader_mod, "checksum_matches", counting)
    return checks


def _open_maps(store: LocalStore) -> int:
    """Maps of the store's chunk files this process has open (from /proc/self/maps)."""
    with open("/proc/self/maps") as f:
        return len({line.split()[-1] for line in f if store.root + "/" in line})


def _replace(store: LocalStore, key: str, data: bytes) -> None:
    """Put ``data`` under ``key`` as a new file (a new inode), as the store's writes do."""
    tmp = store.path(key) + ".new"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, store.path(key))


def test_a_corrupted_byte_is_caught_when_its_file_is_first_mapped(client, df, monkeypatch):
    ds = client.ingest(df, "first-map", chunk_rows=1_000, progress=False)
    key = ds.chunks["key"][3]
    data = bytearray(client.store.get(key))
    data[len(data) // 3] ^= 0x10
    _replace(client.store, key, bytes(data))
    reader = _twin(client)
    rds = reader.open("first-map")
    checks = _counting_checksums(monkeypatch)
    with pytest.raises(ChunkCorruptionError) as err:
        rds.get(3_333)
    assert err.value.chunk == 3 and err.value.stored != err.value.computed
    assert rds.cache_info()["mapped_chunks"] == 0  # a map that failed is never kept
    with pytest.raises(ChunkCorruptionError):
        rds.to_pandas(columns=["x"])  # a projection checks the whole file first too
    assert checks.count(ds.chunks["checksum"][3]) == 2  # checked again: it was never kept
    pd.testing.assert_series_equal(rds.get(10), df.iloc[10])


def test_a_verified_map_serves_every_read_and_projection_without_a_second_check(
        client, df, monkeypatch):
    client.ingest(df, "served", chunk_rows=1_000, progress=False)
    reader = _twin(client, chunk_cache_bytes=0)  # nothing decoded is kept: maps only
    ds = reader.open("served")
    checks = _counting_checksums(monkeypatch)
    whole = ds.to_pandas()
    assert len(checks) == 8 and ds.cache_info()["mapped_chunks"] == 8
    fetches = ds.cache_info()["fetches"]
    for columns in (["x"], ["k", "time"], None):
        pd.testing.assert_frame_equal(ds.to_pandas(columns=columns),
                                      whole if columns is None else whole[columns])
    sns = np.random.default_rng(5).integers(0, 8_000, 500)
    pd.testing.assert_frame_equal(ds.get_many(sns, columns=["x", "k"]),
                                  expected_rows(df, sns)[["x", "k"]])
    pd.testing.assert_series_equal(ds.get(7_777), df.iloc[7_777])
    info = ds.cache_info()
    assert len(checks) == 8 and info["fetches"] == fetches and info["map_hits"] > 0
    assert info["bytes"] == 0 and info["mapped_bytes"] == int(ds.chunks["bytes"].sum())


def test_a_file_replaced_under_a_live_map_is_checked_again(client, df, monkeypatch):
    clock = fake_clock(monkeypatch, reader_mod)
    ds = client.ingest(df, "replaced", chunk_rows=1_000, progress=False)
    key = ds.chunks["key"][1]
    reader = _twin(client)
    rds = reader.open("replaced")
    pd.testing.assert_series_equal(rds.get(1_500), df.iloc[1_500])  # mapped, verified
    checks = _counting_checksums(monkeypatch)
    good = client.store.get(key)
    _replace(client.store, key, good)  # the same bytes in a new file: a new identity
    pd.testing.assert_series_equal(rds.get(1_501), df.iloc[1_501])  # the old map, still valid
    assert checks == []
    clock.advance(STALENESS_SECONDS)
    pd.testing.assert_series_equal(rds.get(1_502), df.iloc[1_502])  # looked at again: re-mapped
    assert checks == [ds.chunks["checksum"][1]]
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0x01
    _replace(client.store, key, bytes(bad))
    clock.advance(STALENESS_SECONDS)
    with pytest.raises(ChunkCorruptionError):
        rds.get(1_503)  # the map of the good file is dropped, never served again
    assert key not in {m.key for m in reader.reader._maps.values()}


def test_a_new_generation_replaces_the_files_under_live_maps(client, df, monkeypatch):
    client.ingest(df, "regen", chunk_rows=1_000, progress=False)
    reader = _twin(client)
    rds = reader.open("regen")
    sns = np.arange(0, 8_000, 13)
    pd.testing.assert_frame_equal(rds.get_many(sns), expected_rows(df, sns))
    old_keys = list(rds.chunks["key"])
    pinned = reader.open("regen", version=1)
    new = sensors(8_000, seed=21)
    client.ingest(new, "regen", chunk_rows=1_000, mode="overwrite", progress=False)
    fresh = _twin(client).open("regen")
    pd.testing.assert_frame_equal(fresh.get_many(sns), expected_rows(new, sns))
    pd.testing.assert_frame_equal(reader.open("regen").to_pandas(), new)  # the handle moves on
    pd.testing.assert_frame_equal(pinned.get_many(sns), expected_rows(df, sns))  # version 1
    maps = {m.key for m in reader.reader._maps.values()}
    assert set(old_keys) <= maps and set(fresh.chunks["key"]) <= maps  # both generations'
    client.open("regen").prune_versions()
    assert not os.path.exists(client.store.path(old_keys[0]))
    with pytest.raises(cf.VersionNotFoundError):
        _twin(client).open("regen", version=1)


def test_memory_stays_bounded_with_a_small_cache_and_few_maps(client):
    frame = sensors(40_000)
    client.ingest(frame, "bounded-maps", chunk_rows=1_000, progress=False)
    one = client.store.size(client.open("bounded-maps").chunks["key"][0])
    reader = _twin(client, chunk_cache_bytes=2 * one, max_mapped_chunks=4)
    ds = reader.open("bounded-maps")
    rng = np.random.default_rng(2)
    for _ in range(5):
        sns = rng.integers(0, 40_000, 3_000)  # all 40 chunks, 10 times the maps kept
        pd.testing.assert_frame_equal(ds.get_many(sns), expected_rows(frame, sns))
        for sn in rng.integers(0, 40_000, 50).tolist():
            ds.get(sn)
        info = ds.cache_info()
        assert info["total_bytes"] <= 2 * one and info["mapped_chunks"] <= 4
        assert _open_maps(reader.store) <= 4
    for _ in ds.iter_chunks(columns=["x"]):
        assert _open_maps(reader.store) <= 4 + reader_mod.READ_AHEAD + 1
    assert ds.cache_info()["mapped_chunks"] <= 4


def test_object_stores_download_into_memory_and_count_it(client, df):
    memory = _memory_twin(client, "maps").ingest(df, "downloaded", chunk_rows=1_000,
                                                  progress=False)
    memory.get(5)
    info = memory.cache_info()
    assert info["max_maps"] == 0 and info["mapped_chunks"] == 0 and info["mapped_bytes"] == 0
    assert info["bytes"] >= int(memory.chunks["bytes"][0])  # its download is private memory
    assert memory._client.store.identity(memory.chunks["key"][0]) is None


def test_max_mapped_chunks_is_checked_and_zero_keeps_no_map(client, df, monkeypatch):
    with pytest.raises(InvalidArgumentError, match="max_mapped_chunks must be an integer >= 0"):
        _twin(client, max_mapped_chunks=-1)
    with pytest.raises(InvalidArgumentError, match="max_mapped_chunks"):
        _twin(client, max_mapped_chunks="many")
    monkeypatch.setenv("CHUNKFRAME_MAX_MAPPED_CHUNKS", "7")
    assert _twin(client).settings.max_mapped_chunks == 7
    monkeypatch.setenv("CHUNKFRAME_MAX_MAPPED_CHUNKS", "lots")
    with pytest.raises(InvalidArgumentError, match="CHUNKFRAME_MAX_MAPPED_CHUNKS must be"):
        _twin(client)
    monkeypatch.delenv("CHUNKFRAME_MAX_MAPPED_CHUNKS")
    client.ingest(df, "unmapped", chunk_rows=1_000, progress=False)
    ds = _twin(client, max_mapped_chunks=0, chunk_cache_bytes=0).open("unmapped")
    checks = _counting_checksums(monkeypatch)
    ds.get(1)
    ds.get(2)
    assert len(checks) == 2 and ds.cache_info()["mapped_chunks"] == 0  # checked every time


def test_store_identity_and_mapped_reads(tmp_path):
    store = LocalStore(tmp_path / "s")
    assert store.identity("a/b.arrow") is None and store.read_mapped("a/b.arrow") is None
    store.put("a/b.arrow", b"0123456789")
    buf, ident = store.read_mapped("a/b.arrow")
    assert buf.to_pybytes() == b"0123456789" and ident == store.identity("a/b.arrow")
    shutil.copy(store.path("a/b.arrow"), tmp_path / "copy")
    os.replace(tmp_path / "copy", store.path("a/b.arrow"))
    assert store.identity("a/b.arrow") != ident and buf.to_pybytes() == b"0123456789"
    with pytest.raises(ValueError, match="invalid store key"):
        store.identity("../escape")


def test_projection_decodes_only_the_columns_asked(client, df, monkeypatch):
    """Compressed chunks (where decoding costs) decode only the columns a read asks for and
    those its filter reads, on every read path; a single value builds one column's getter."""
    ds = client.ingest(df, "projected", chunk_rows=1_000, compression="zstd",
                       time_column="time", progress=False)
    asked: list[frozenset[str] | None] = []
    real = reader_mod.decode

    def recording(data, columns=None, **kw):
        asked.append(None if columns is None else frozenset(columns))
        return real(data, columns, **kw)

    monkeypatch.setattr(reader_mod, "decode", recording)
    client.reader.clear(metadata=False)
    ds.get(0)  # the row template: learnt once from one whole chunk
    asked.clear()
    sns = np.random.default_rng(3).integers(0, 8_000, 400)
    pd.testing.assert_frame_equal(ds.get_many(sns, columns=["x"]), expected_rows(df, sns)[["x"]])
    assert set(asked) == {frozenset({"x"})}
    asked.clear()
    want = df.iloc[1_500:4_500][["k", "x"]]
    want.index = pd.RangeIndex(1_500, 4_500, name="sn")
    pd.testing.assert_frame_equal(ds.slice(1_500, 4_500, columns=["k", "x"]), want)
    assert set(asked) == {frozenset({"k", "x"})}
    asked.clear()
    got = ds.to_pandas(columns=["x"], date_range=(df["time"].iloc[10], df["time"].iloc[5_000]))
    assert got.columns.tolist() == ["x"] and set(asked) == {frozenset({"time", "x"})}
    asked.clear()
    assert ds.to_arrow(columns=["k"]).column_names == ["k"] and set(asked) == {frozenset({"k"})}


def test_a_single_value_builds_only_its_columns_getter(client, df):
    ds = client.ingest(df, "one-value", chunk_rows=1_000, progress=False)
    client.reader.clear(metadata=False)
    assert ds.get(1_234, "x") == df["x"].iloc[1_234]
    entry = client.reader.chunk(client.reader.snapshot("one-value"), 1)
    assert entry.getters is None and list(entry.getter) == [df.columns.get_loc("x")]
    pd.testing.assert_series_equal(ds.get(1_235), df.iloc[1_235])  # the whole row's, then
    assert ds.get(1_236, "k") == df["k"].iloc[1_236] and len(entry.getter) == 1
    with pytest.raises(KeyError, match="has no column 'nope'"):
        ds.get(1_234, "nope")
