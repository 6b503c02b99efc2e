"""Gather planes: filled chunk by chunk, counted by the cache, released only when unread."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from frames import all_dtypes, sensors
from test_reader import expected_rows, open_with_small_cache
from threads import run_threads

from chunkframe.read.planes import MaskedPlane, Plane, Planes, TextPlane, plane_for
from chunkframe.read.rows import TextCodes

CHUNK = 1_000  # 8,000 bytes of floats: chunk edges fall inside pages


def float_planes(chunks: int = 6) -> tuple[Planes, np.ndarray]:
    values = np.arange(1, chunks * CHUNK + 1, dtype=np.float64)
    planes = Planes(list(range(0, chunks * CHUNK, CHUNK)), chunks * CHUNK,
                    [Plane(chunks * CHUNK, np.float64, np.dtype(np.float64))])
    return planes, values


def fill(planes: Planes, values: np.ndarray, chunk: int) -> None:
    part = values[chunk * CHUNK:(chunk + 1) * CHUNK]
    table = pa.table({"x": part})
    assert planes.fill(chunk, table, [part]) == [0]
    assert planes.mark(chunk, [0]) == CHUNK * 8


def test_a_dropped_chunk_keeps_its_values_until_the_last_reader_leaves():
    planes, values = float_planes()
    everything = np.arange(len(values))
    for k in range(6):
        fill(planes, values, k)
    assert planes.covering(np.arange(6)).all()
    planes.pin()
    planes.drop(2)
    assert not planes.covering(np.array([2]))[0] and not planes.tried[2]
    # a read that checked the planes before the drop still gathers the right values
    np.testing.assert_array_equal(planes.gather(0, everything), values)
    planes.unpin()
    got = planes.gather(0, everything)
    rows2 = slice(2 * CHUNK, 3 * CHUNK)
    assert (got[rows2] == 0).sum() > CHUNK // 2  # its whole pages went back to the OS
    keep = np.ones(len(values), dtype=bool)
    keep[rows2] = False
    np.testing.assert_array_equal(got[keep], values[keep])  # neighbours on shared pages too


def test_a_chunk_filled_again_before_release_is_not_released():
    planes, values = float_planes()
    fill(planes, values, 1)
    planes.pin()
    planes.drop(1)
    fill(planes, values, 1)  # another reader put it back meanwhile
    planes.unpin()
    np.testing.assert_array_equal(planes.gather(0, np.arange(CHUNK, 2 * CHUNK)),
                                  values[CHUNK:2 * CHUNK])


def test_shared_pages_go_once_no_chunk_on_them_is_filled():
    planes, values = float_planes()
    for k in (1, 2):
        fill(planes, values, k)
    planes.drop(1)  # its last page is shared with chunk 2: kept
    np.testing.assert_array_equal(planes.gather(0, np.arange(2 * CHUNK, 3 * CHUNK)),
                                  values[2 * CHUNK:3 * CHUNK])
    planes.drop(2)
    assert not planes.gather(0, np.arange(CHUNK, 3 * CHUNK)).any()
    assert planes.empty()


def test_a_masked_plane_releases_its_mask_too():
    n = 20_000  # rows a chunk: its edges fall inside pages of both arrays
    planes = Planes([0, n, 2 * n], 3 * n, [MaskedPlane(3 * n, np.int64, pd.Int64Dtype())])
    for k in range(3):
        column = pa.chunked_array([pa.array([7, None] * (n // 2), type=pa.int64())])
        assert planes.fill(k, pa.table({"n": column}), [None]) == [0]
        assert planes.mark(k, [0]) == n * 9
    planes.drop(1)
    plane = planes.planes[0]
    assert isinstance(plane, MaskedPlane)
    freed = slice(20_480, 36_864)  # the mask's whole pages within chunk 1
    assert not plane.mask[freed].any() and not plane.values[freed].any()
    got = plane.gather(np.r_[0:n, 2 * n:3 * n])
    pd.testing.assert_extension_array_equal(got, pd.array([7, None] * n, dtype="Int64"))


def test_vectors_of_another_kind_are_refused():
    plane = Plane(10, np.int64, np.dtype(np.int64))
    ints = pa.chunked_array([pa.array(range(10), type=pa.int64())])
    assert not plane.put(0, None, ints)  # integers with nulls: only Arrow knows them
    assert not plane.put(0, np.arange(10, dtype=np.int32), ints)
    floats = Plane(10, np.float64, np.dtype(np.float64))
    with_null = pa.chunked_array([pa.array([1.0, None] * 5)])
    assert floats.put(0, None, with_null)  # nulls of floats are NaN in pandas
    assert np.isnan(floats.values[1]) and floats.values[0] == 1.0
    text = TextPlane(10, pa.string(), pd.StringDtype(na_value=np.nan))
    assert not text.put(0, None, pa.chunked_array([pa.array(["a"] * 10)]))


def test_text_plane_grows_one_dictionary_across_chunks():
    dtype = pd.StringDtype(na_value=np.nan)
    plane = TextPlane(6, pa.string(), dtype)
    first = TextCodes(np.array([0, 1, 0], dtype=np.int32), pa.array(["a", None]))
    second = TextCodes(np.array([1, 0, 2], dtype=np.int32), pa.array(["b", "a", "c"]))
    assert plane.put(0, first, pa.chunked_array([pa.array(["a", None, "a"])]))
    assert plane.put(3, second, pa.chunked_array([pa.array(["a", "b", "c"])]))
    got = plane.gather(np.array([5, 0, 1, 3, 4]))
    pd.testing.assert_extension_array_equal(got, pd.array(["c", "a", None, "a", "b"], dtype=dtype))


def test_plane_for_knows_which_columns_numpy_can_gather():
    df = all_dtypes(10)
    df["tags"] = [["a"], []] * 5  # nested: only Arrow takes it
    df["arrow_ints"] = pd.array(range(10), dtype="int64[pyarrow]")  # not a masked array
    table = pa.Table.from_pandas(df, preserve_index=False)
    kinds = {name: plane_for(10, table.schema.field(name), df[name].dtype)
             for name in df.columns}
    assert {n for n, p in kinds.items() if p is None} == {"tags", "arrow_ints"}
    assert isinstance(kinds["s"], TextPlane)
    assert isinstance(kinds["ni"], MaskedPlane) and isinstance(kinds["nb"], MaskedPlane)
    assert kinds["c"].dtype == np.int8 and kinds["tz"].dtype == np.int64


def test_masked_plane_holds_values_and_their_mask():
    plane = MaskedPlane(6, np.int64, pd.Int64Dtype())
    assert plane.put(0, None, pa.chunked_array([pa.array([1, None, 3])]))
    assert plane.put(3, None, pa.chunked_array([pa.array([4, 5, 6])]))
    assert not plane.put(0, None, pa.chunked_array([pa.array([1.5, 2.5, 3.5])]))
    pd.testing.assert_extension_array_equal(plane.gather(np.array([5, 1, 0, 1])),
                                            pd.array([6, None, 1, None], dtype="Int64"))
    flags = MaskedPlane(3, np.bool_, pd.BooleanDtype())
    assert flags.put(0, None, pa.chunked_array([pa.array([True, None, False])]))
    pd.testing.assert_extension_array_equal(flags.gather(np.array([2, 1, 0])),
                                            pd.array([False, None, True], dtype="boolean"))
    assert plane.row_bytes == 9 and flags.row_bytes == 2


def test_batch_reads_count_plane_bytes_and_release_them_with_their_chunks(client):
    df = all_dtypes(5_000)
    ds = client.ingest(df, "planed", chunk_rows=1_000, progress=False)
    reader = client.reader
    ds.get(0)
    before = ds.cache_info()["bytes"]
    pd.testing.assert_frame_equal(ds.get_many([3, 2, 1]), expected_rows(df, [3, 2, 1]))
    assert ds.cache_info()["bytes"] == before and reader._planes == {}  # read once: no planes
    pd.testing.assert_frame_equal(ds.get_many([3, 2, 1]), expected_rows(df, [3, 2, 1]))
    # read again by a batch: the planes of i, f, t, tz, td: 8 bytes a row; ni: 8 + 1 (mask); s: 4 (codes);
    # nb: 1 + 1; b and c: 1
    assert ds.cache_info()["bytes"] >= before + 1_000 * (5 * 8 + 9 + 4 + 2 + 1 + 1)
    assert len(reader._planes) == 1
    reader.clear()
    assert reader._planes == {}
    sns = np.random.default_rng(3).integers(-5_000, 5_000, 4_000)
    pd.testing.assert_frame_equal(ds.get_many(sns), expected_rows(df, sns % 5_000))


@pytest.mark.parametrize("order", ["random", "sorted", "repeated", "negative", "columns"])
def test_batches_larger_than_the_cache_stream_through_it(client, order):
    df = all_dtypes(20_000)
    client.ingest(df, "squeezed", chunk_rows=1_000, progress=False)
    ds, limit = open_with_small_cache(client, "squeezed")
    rng = np.random.default_rng(4)
    sns = rng.integers(0, 20_000, 2_000)  # all 20 chunks: 5 times what the cache holds
    columns = None
    if order == "sorted":
        sns = np.sort(sns)
    elif order == "repeated":
        sns = np.concatenate([sns[:50]] * 40)
    elif order == "negative":
        sns = sns - 20_000
    elif order == "columns":
        columns = ["s", "tz", "ni"]
    reader = ds._client.reader
    for _ in range(3):
        expected = expected_rows(df, sns % 20_000)
        got = ds.get_many(sns, columns=columns)
        pd.testing.assert_frame_equal(got, expected if columns is None else expected[columns])
        info = ds.cache_info()
        assert info["total_bytes"] <= limit
        # fetched, gathered from and dropped: nothing is put in the cache to be evicted
        assert info["chunks"] <= 1 and reader._planes == {}


@pytest.mark.slow
# pandas' own assert_frame_equal, called from 8 threads at once, sometimes warns about a
# keyword it passes itself
@pytest.mark.filterwarnings("ignore:the 'check_datetimelike_compat' keyword")
def test_batch_reads_stay_right_while_other_threads_evict_their_chunks(client):
    df = sensors(20_000)
    client.ingest(df, "churn", chunk_rows=1_000, progress=False)
    ds, limit = open_with_small_cache(client, "churn", chunks=10)  # ~5 with their planes
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # threads switch often: evictions land between check and gather
    try:
        def work(seed: int) -> None:
            rng = np.random.default_rng(seed)
            for _ in range(25):
                start = int(rng.integers(0, 19_000))
                sns = rng.integers(start, start + 1_000, 2_000)  # 1 or 2 of 20 chunks
                pd.testing.assert_frame_equal(ds.get_many(sns), expected_rows(df, sns))

        errors = run_threads(work)
    finally:
        sys.setswitchinterval(interval)
    assert not errors, errors[0]
    assert ds.cache_info()["total_bytes"] <= limit


def test_without_address_space_for_planes_reads_gather_chunk_by_chunk(client, monkeypatch):
    df = all_dtypes(3_000)
    ds = client.ingest(df, "unmapped", chunk_rows=700, progress=False)

    def no_memory(*args, **kwargs):
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(Plane, "__init__", no_memory)  # as mmap fails: ENOMEM
    sns = np.random.default_rng(5).integers(0, 3_000, 1_000)
    for _ in range(3):  # the second call would fill the planes
        pd.testing.assert_frame_equal(ds.get_many(sns), expected_rows(df, sns))
    planes = next(iter(client.reader._planes.values()))
    assert all(p is None for p in planes.planes)


def test_batch_reads_see_deletes_and_appends_made_after_their_planes_filled(client):
    base = sensors(1_000)
    ds = client.ingest(base, "moving", chunk_rows=300, time_column="time", device_column="dev",
                       progress=False)
    sns = np.arange(0, 1_000, 3)[::-1]
    for _ in range(2):  # the second read fills the planes
        pd.testing.assert_frame_equal(ds.get_many(sns), expected_rows(base, sns))
    assert client.reader._planes
    ds.delete(device="d1", date_range=(base["time"].iloc[500], None))
    whole = ds.to_pandas()
    assert whole["x"].isna().sum() > 0 and whole["k"].dtype == np.float64  # ints with NaN now
    pd.testing.assert_frame_equal(ds.get_many(sns), expected_rows(whole, sns))
    later = sensors(200, seed=5)
    later["time"] = later["time"] + pd.Timedelta(days=1)
    ds.append(later, progress=False)
    whole = ds.to_pandas()
    sns = np.arange(1_200)[::-7]
    pd.testing.assert_frame_equal(ds.get_many(sns), expected_rows(whole, sns))
    client.reader.clear()
    assert client.reader._planes == {}
