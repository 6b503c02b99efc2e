"""Reads beyond memory: mapped local chunks, checked fetches, streamed batches, read-ahead."""

from __future__ import annotations

import os
import weakref

import numpy as np
import pandas as pd
import pytest
from clock import fake_clock
from frames import all_dtypes, sensors
from test_reader import expected_rows, open_with_small_cache

import chunkframe as cf
from chunkframe.core.errors import ChunkCorruptionError
from chunkframe.read import reader as reader_mod
from chunkframe.storage.store import LocalStore


@pytest.fixture
def df() -> pd.DataFrame:
    return all_dtypes(6_000)


def _memory_twin(client: cf.Client, name: str) -> cf.Client:
    """A client over the same Redis whose chunk store is fsspec's in-memory filesystem."""
    return cf.connect(store=f"memory://cf-{client.settings.prefix}-{name}",
                      redis=client.settings.redis_url,
                      catalog=client.settings.home / f"{name}-catalog.db",
                      home=client.settings.home, prefix=client.settings.prefix + "m")


def test_reads_through_maps_equal_reads_through_memory_for_every_dtype(client, df):
    local = client.ingest(df, "mapped", chunk_rows=700, progress=False)
    memory = _memory_twin(client, "twin").ingest(df, "mapped", chunk_rows=700, progress=False)
    assert not isinstance(memory._client.store, LocalStore) and isinstance(local._client.store, LocalStore)
    sns = np.random.default_rng(2).integers(-6_000, 6_000, 2_000)
    for ds in (local, memory):
        for sn in (0, 699, 700, 5_999, -1):
            pd.testing.assert_series_equal(ds.get(sn), df.iloc[sn])
        for _ in range(3):  # read once, then again (planes filled), then from the planes
            pd.testing.assert_frame_equal(ds.get_many(sns), expected_rows(df, sns % 6_000))
        pd.testing.assert_frame_equal(ds.slice(650, 2_150), expected_rows(df, range(650, 2_150)))
        whole = ds.to_pandas()
        pd.testing.assert_frame_equal(whole, df, check_index_type=False)
    pd.testing.assert_frame_equal(local.get_many(sns, columns=["s", "tz"]),
                                  memory.get_many(sns, columns=["s", "tz"]))


def test_a_corrupted_byte_is_caught_once_per_fetch_and_never_cached(client, df, monkeypatch):
    ds = client.ingest(df, "flipped", chunk_rows=1_000, progress=False)
    key = ds.chunks["key"][3]
    data = bytearray(client.store.get(key))
    data[len(data) // 2] ^= 0x01
    client.store.put(key, bytes(data))  # replaced whole, as the store's contract says
    checks = []
    real = reader_mod.checksum_matches

    def counting(buf, recorded):
        checks.append(recorded)
        return real(buf, recorded)

    monkeypatch.setattr(reader_mod, "checksum_matches", counting)
    client.reader.clear()
    for _ in range(2):  # a bad chunk is never cached: each read fetches and checks again
        with pytest.raises(ChunkCorruptionError) as err:
            ds.get(3_500)
        assert err.value.chunk == 3 and err.value.key == key
    assert checks == [ds.chunks["checksum"][3]] * 2  # one checksum pass per fetch
    with pytest.raises(ChunkCorruptionError):
        ds.get_many(np.arange(0, 6_000, 10))  # batches stream the chunk: caught there too
    with pytest.raises(ChunkCorruptionError):
        list(ds.iter_chunks())
    pd.testing.assert_series_equal(ds.get(10), df.iloc[10])  # other chunks still read
    checks.clear()
    ds.get(11)
    assert checks == []  # a hit is not fetched again


def test_an_overwrite_while_chunks_are_mapped_serves_the_old_snapshot_then_the_new(
        client, df, monkeypatch):
    fake_clock(monkeypatch, reader_mod)  # the clock stands still: the handle never re-checks
    ds = client.ingest(df, "moving", chunk_rows=1_000, progress=False)
    old_file = client.store.path(ds.chunks["key"][0])
    sns = np.arange(0, 6_000, 7)
    old = ds.get_many(sns)
    ds.get_many(sns)  # chunks cached and mapped, planes filled
    other = cf.connect(store=client.settings.store_url, redis=client.settings.redis_url,
                       catalog=client.settings.catalog, prefix=client.settings.prefix)
    new_df = all_dtypes(6_000, seed=5)
    other.ingest(new_df, "moving", chunk_rows=1_000, mode="overwrite", progress=False)
    assert os.path.exists(old_file)  # kept for version 1 ...
    other.open("moving").prune_versions()
    assert not os.path.exists(old_file)  # ... until it is pruned
    snap = client.reader._snapshots["moving"]  # the old snapshot, as a handle within
    assert snap.meta.generation != other.reader.snapshot("moving").meta.generation  # staleness
    pd.testing.assert_frame_equal(ds.get_many(sns), old)  # its files are gone: maps still read
    client.reader.clear(metadata=False)  # not cached any more: the fetch finds no file
    client.reader._snapshots["moving"] = snap
    pd.testing.assert_frame_equal(ds.get_many(sns), expected_rows(new_df, sns))  # retried
    pd.testing.assert_series_equal(ds.get(5), new_df.iloc[5])


def test_batches_fetch_in_parallel_and_hold_a_bounded_number_of_chunks(client, monkeypatch):
    frame = sensors(30_000)
    client.ingest(frame, "wide", chunk_rows=1_000, progress=False)
    ds, limit = open_with_small_cache(client, "wide")
    reader = ds._client.reader
    live, peak = [0], [0]
    real = type(reader)._fetch

    def fetch(self, snap, i, columns=None):
        entry = real(self, snap, i, columns)
        live[0] += 1
        peak[0] = max(peak[0], live[0])
        weakref.finalize(entry.table, lambda: live.__setitem__(0, live[0] - 1))
        return entry

    monkeypatch.setattr(type(reader), "_fetch", fetch)
    sns = np.random.default_rng(8).integers(0, 30_000, 5_000)  # all 30 chunks
    pd.testing.assert_frame_equal(ds.get_many(sns), expected_rows(frame, sns))
    # streamed, not all 30: the chunk cached for the dataset's row rules, the one being
    # gathered from, and at most FETCH_THREADS + 1 fetched ahead (the next one is asked
    # for before the consumer lets go of the last)
    assert peak[0] <= reader_mod.FETCH_THREADS + 3
    assert ds.cache_info()["total_bytes"] <= limit


def test_scans_read_ahead_within_a_bound_and_decode_only_the_columns_asked(client, monkeypatch):
    frame = sensors(20_000)
    ds = client.ingest(frame, "scanned", chunk_rows=1_000, progress=False)
    reader = client.reader
    reader.clear()
    fetched, consumed, ahead, widths = [0], [0], [0], set()
    real = type(reader)._fetch

    def fetch(self, snap, i, columns=None):
        fetched[0] += 1
        ahead[0] = max(ahead[0], fetched[0] - consumed[0])
        entry = real(self, snap, i, columns)
        widths.add(entry.table.num_columns)
        return entry

    monkeypatch.setattr(type(reader), "_fetch", fetch)
    parts = []
    for part in ds.iter_chunks(columns=["x", "k"]):
        consumed[0] += 1
        parts.append(part)
    assert ahead[0] <= reader_mod.READ_AHEAD + 1  # the one in hand and those read ahead
    assert widths == {2}  # only x and k were decoded
    got = pd.concat(parts)
    pd.testing.assert_frame_equal(got, frame[["x", "k"]].rename_axis("sn"),
                                  check_index_type=False)
    assert ds.cache_info()["chunks"] == 0  # scans keep nothing
    pd.testing.assert_frame_equal(ds.to_pandas(columns=["s"]), frame[["s"]],
                                  check_index_type=False)


def test_projected_reads_of_a_dataset_with_deletes_still_apply_them(client):
    frame = sensors(3_000)
    ds = client.ingest(frame, "holes", chunk_rows=500, time_column="time", device_column="dev",
                       progress=False)
    ds.delete(device="d1", date_range=(frame["time"].iloc[1_000], frame["time"].iloc[2_000]))
    whole = ds.to_pandas()
    assert whole["x"].isna().any()
    client.reader.clear()
    pd.testing.assert_frame_equal(ds.to_pandas(columns=["x"]), whole[["x"]])
    sns = np.arange(0, 3_000, 3)
    small, _ = open_with_small_cache(client, "holes", chunks=1.5)
    pd.testing.assert_frame_equal(small.get_many(sns, columns=["x"]),
                                  expected_rows(whole, sns)[["x"]])


def test_a_slice_of_some_columns_mixes_cached_and_fetched_chunks(client):
    frame = sensors(3_000)
    client.ingest(frame, "mixed-slice", chunk_rows=100, progress=False)
    ds, _ = open_with_small_cache(client, "mixed-slice", chunks=3)
    ds.get(1_550)  # one chunk in the range is cached whole; the others are fetched projected
    got = ds.slice(500, 2_600, columns=["x", "k"])
    pd.testing.assert_frame_equal(got, frame[["x", "k"]].iloc[500:2_600].rename_axis("sn"),
                                  check_index_type=False)


def test_batches_of_compressed_or_deleted_chunks_never_count_as_fitting_by_file_size(client):
    frame = sensors(5_000)
    client.ingest(frame, "zipped-batch", chunk_rows=500, compression="zstd", progress=False)
    small = cf.connect(store=client.settings.store_url, redis=client.settings.redis_url,
                       catalog=client.settings.catalog, prefix=client.settings.prefix,
                       chunk_cache_bytes=200_000)  # > the files, < what they decode to
    ds = small.open("zipped-batch")
    assert sum(ds.chunks["bytes"]) < 200_000
    snap = small.reader.snapshot("zipped-batch")
    assert not small.reader.fits(snap, np.arange(len(snap.chunks)))  # decoded: far larger
    sns = np.arange(0, 5_000, 7)
    pd.testing.assert_frame_equal(ds.get_many(sns), expected_rows(frame, sns))
    assert ds.cache_info()["total_bytes"] <= 200_000  # streamed, not all decoded and kept


def test_object_arrays_of_serial_numbers_in_range(client):
    frame = sensors(1_000)
    ds = client.ingest(frame, "objects", chunk_rows=100, progress=False)
    for sns in (np.array([1, 5], dtype=object), pd.Series([3, 4], dtype=object),
                pd.Index([7, 8], dtype=object)):
        pd.testing.assert_frame_equal(ds.get_many(sns), expected_rows(frame, list(sns)))


def test_ingest_of_uint64_beyond_int64_and_of_times_after_2262(client):
    df = pd.DataFrame({
        "u": np.array([2**63 + 5, 1], dtype=np.uint64),
        "t": pd.array(pd.to_datetime(["2300-01-01", "2301-06-01"]).as_unit("us")),
    })
    ds = client.ingest(df, "far", time_column="t", progress=False)
    pd.testing.assert_frame_equal(ds.to_pandas(), df)
    assert ds.get(0)["u"] == 2**63 + 5
