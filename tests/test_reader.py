"""The read path: values by serial number, caches, integrity, fallbacks, concurrency."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from clock import fake_clock
from frames import all_dtypes, sensors
from threads import run_threads

import chunkframe as cf
from chunkframe.core.errors import ChunkCorruptionError, DatasetNotFoundError
from chunkframe.read import reader as reader_mod
from chunkframe.read.plan import group_by_chunk
from chunkframe.read.reader import STALENESS_SECONDS
from chunkframe.read.rows import TextCodes, column_vectors, timestamp_of


@pytest.fixture
def df() -> pd.DataFrame:
    return all_dtypes(5_000)


@pytest.fixture
def ds(client, df):
    return client.ingest(df, "mixed", chunk_rows=700, progress=False)


def expected_rows(df: pd.DataFrame, sns) -> pd.DataFrame:
    out = df.iloc[list(sns)]
    out.index = pd.Index(list(sns), name="sn")
    return out


def test_get_equals_iloc_for_random_sns_and_boundaries(ds, df):
    rng = np.random.default_rng(3)
    boundaries = [b + d for b in range(0, len(df), 700) for d in (-1, 0, 1) if 0 <= b + d < len(df)]
    for sn in list(rng.integers(0, len(df), 2_000)) + boundaries + [len(df) - 1]:
        pd.testing.assert_series_equal(ds.get(int(sn)), df.iloc[int(sn)])


def test_get_single_value_and_negative_sn(ds, df):
    for sn in (0, 699, 700, 4_999):
        for col in df.columns:
            got, want = ds.get(sn, col), df[col].iloc[sn]
            assert (pd.isna(got) and pd.isna(want)) or got == want, (sn, col, got, want)
    pd.testing.assert_series_equal(ds.get(-1), df.iloc[-1].rename(len(df) - 1))
    assert ds.get(np.int64(5), "i") == df["i"].iloc[5]


def test_get_all_float_frame_keeps_numeric_row_dtype(client):
    df = pd.DataFrame({"a": np.arange(10.0), "b": np.arange(10.0) * 2})
    ds = client.ingest(df, "floats", chunk_rows=3, progress=False)
    pd.testing.assert_series_equal(ds.get(4), df.iloc[4])


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("tz", [None, "UTC", "America/New_York", "Australia/Lord_Howe", "+05:30"])
def test_a_row_timestamp_is_the_one_pandas_constructs(unit, tz):
    """The fast path (through a datetime) gives pandas' own Timestamp: value, unit, zone
    object, fold, across daylight-saving changes, before 1970, at sub-microsecond precision
    and past a datetime's years (there the constructor)."""
    per_second = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}[unit]
    rng = np.random.default_rng(5)
    values = [int(v) * per_second for v in rng.integers(-3 * 10**9, 4 * 10**9, 500)]
    for change in ("2024-11-03 05:30", "2024-03-10 06:30", "2024-04-07 15:00"):  # DST
        at = pd.Timestamp(change, tz="UTC").value // (10**9 // per_second)
        values += [at + k * 60 * per_second for k in range(-70, 70)]
    if unit == "ns":
        values += [1_356_998_400_123_456_789, -1, 2**62, -(2**62)]
    make = timestamp_of(unit, tz)
    for v in values:
        got, want = make(v), pd.Timestamp(v, unit=unit, tz=tz)
        assert got == want and repr(got) == repr(want) and got.isoformat() == want.isoformat()
        assert (got.unit, got.fold, type(got.tz), str(got.tz)) == (
            want.unit, want.fold, type(want.tz), str(want.tz))
    with pytest.raises(ValueError, match="invalid literal"):
        make("2026-01-01")  # type: ignore[arg-type]  # integers of the column only


def test_get_errors_name_the_range_and_column(ds):
    with pytest.raises(IndexError, match=r"valid serial numbers are 0 to 4999"):
        ds.get(5_000)
    with pytest.raises(IndexError):
        ds.get(-5_001)
    with pytest.raises(TypeError, match="integer"):
        ds.get(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ds.get(True)  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="no column 'nope'"):
        ds.get(1, "nope")


def test_get_many_in_order_with_duplicates(ds, df):
    rng = np.random.default_rng(4)
    sns = list(rng.integers(0, len(df), 3_000)) + [7, 7, 0, 4_999]
    pd.testing.assert_frame_equal(ds.get_many(sns), expected_rows(df, sns))
    got = ds.get_many([10, 3], columns=["f", "s"])
    pd.testing.assert_frame_equal(got, expected_rows(df, [10, 3])[["f", "s"]])
    got = ds.get_many(sns, columns=["s", "f", "s"])  # any order, a column twice
    pd.testing.assert_frame_equal(got, expected_rows(df, sns)[["s", "f", "s"]])
    assert len(ds.get_many([])) == 0 and list(ds.get_many([]).columns) == list(df.columns)
    pd.testing.assert_frame_equal(ds.get_many([-1, 0, -5_000]),  # negative: from the end
                                  expected_rows(df, [4_999, 0, 0]))


def test_get_many_errors(ds):
    with pytest.raises(IndexError, match="out of range"):
        ds.get_many([1, 5_000])
    with pytest.raises(IndexError):
        ds.get_many([-5_001])
    # never wrapped into range: uint64 and Python ints beyond int64 are out of range
    for huge in (np.array([2**64 - 1], dtype=np.uint64), [2**64 - 1], [2**63], [-(2**63) - 1]):
        with pytest.raises(IndexError, match="out of range"):
            ds.get_many(huge)
    with pytest.raises(IndexError, match="out of range"):
        ds.get(2**64 - 1)
    with pytest.raises(TypeError):
        ds.get_many([1.5, 2.0])
    with pytest.raises(KeyError):
        ds.get_many([1], columns=["i", "missing"])


def test_slice_like_iloc(ds, df):
    for start, stop in [(0, 10), (690, 1_410), (4_990, None), (None, 5), (-20, -3), (10, 5),
                        (0, 10_000)]:
        want = df.iloc[start:stop]
        got = ds.slice(start, stop)
        assert got.index.equals(pd.RangeIndex(*slice(start, stop).indices(len(df))[:2]))
        pd.testing.assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True))
    pd.testing.assert_frame_equal(ds.slice(0, 3, columns=["c"]).reset_index(drop=True),
                                  df.iloc[0:3][["c"]].reset_index(drop=True))


def test_iter_chunks_and_to_pandas(ds, df):
    parts = list(ds.iter_chunks())
    assert [len(p) for p in parts] == [700] * 7 + [100]
    pd.testing.assert_frame_equal(pd.concat(parts).reset_index(drop=True), df)
    assert parts[1].index[0] == 700
    pd.testing.assert_frame_equal(ds.to_pandas(), df)
    pd.testing.assert_frame_equal(ds.to_pandas(columns=["t", "tz"]), df[["t", "tz"]])


def test_scans_do_not_evict_hot_chunks(client):
    ds = client.ingest(sensors(4_000), "scan", chunk_rows=500, progress=False)
    ds.get(0)
    before = ds.cache_info()["chunks"]
    list(ds.iter_chunks())
    ds.to_pandas()
    assert ds.cache_info()["chunks"] == before == 1


def test_metadata_properties(ds, df):
    assert len(ds) == len(df)
    assert ds.columns == list(df.columns)
    assert isinstance(ds.schema, pa.Schema)
    chunks = ds.chunks
    assert list(chunks["start"]) == list(range(0, 5_000, 700))
    assert chunks["rows"].sum() == len(df)
    assert chunks["checksum"].str.match(r"^crc32c:[0-9a-f]{8}$").all()


def test_not_found_lists_similar_ids(client, ds):
    with pytest.raises(DatasetNotFoundError, match="did you mean.*mixed"):
        client.open("mixd")
    with pytest.raises(KeyError):  # DatasetNotFoundError is a KeyError too
        client.open("nothing-like-it")


def _corrupt_cases(store, key: str, how: str) -> None:
    data = store.get(key)
    if how == "flip":
        pos = len(data) // 2
        store.put(key, data[:pos] + bytes([data[pos] ^ 0xFF]) + data[pos + 1:])
    elif how == "truncate":
        store.put(key, data[: len(data) // 3])
    else:
        store.delete(key)


@pytest.mark.parametrize("how", ["flip", "truncate", "delete"])
@pytest.mark.parametrize("backend", ["local", "s3"])
def test_corruption_is_detected_never_returned(request, backend, how, df):
    client = request.getfixturevalue("client" if backend == "local" else "s3_client")
    ds = client.ingest(df, "bad", chunk_rows=1_000, progress=False)
    key = ds.chunks["key"][2]
    _corrupt_cases(client.store, key, how)
    with pytest.raises(ChunkCorruptionError) as err:
        ds.get(2_500)
    e = err.value
    assert (e.dataset, e.chunk, e.key) == ("bad", 2, key)
    assert "'bad'" in str(e) and key in str(e)
    if how == "flip":
        assert e.stored and e.computed and e.stored != e.computed
    with pytest.raises(ChunkCorruptionError):
        ds.get_many([1, 2_001])
    pd.testing.assert_series_equal(ds.get(10), df.iloc[10])  # other chunks still read
    report = ds.verify(progress=False)
    assert list(report["chunk"]) == [2] and list(report["key"]) == [key]


def test_checksum_checked_on_every_fetch_not_on_hits(client, df):
    small = cf.connect(store=client.settings.store_url, redis=client.settings.redis_url,
                       catalog=client.settings.catalog, prefix=client.settings.prefix,
                       chunk_cache_bytes=0)  # nothing fits: every read is a fetch
    client.ingest(df, "nocache", chunk_rows=1_000, progress=False)
    ds = small.open("nocache")
    ds.get(5)
    _corrupt_cases(small.store, ds.chunks["key"][0], "flip")
    with pytest.raises(ChunkCorruptionError):
        ds.get(5)


def test_reads_survive_redis_losing_the_dataset(client, ds, df, redis_client, prefix):
    for key in redis_client.scan_iter(f"{prefix}:*"):
        redis_client.delete(key)
    client.reader.clear()
    fresh = client.open("mixed")
    pd.testing.assert_series_equal(fresh.get(1_234), df.iloc[1_234])
    assert redis_client.exists(client.state.keys("mixed").meta)  # re-warmed from the catalog


def test_open_handles_see_appends_and_overwrites_within_staleness(client, monkeypatch):
    clock = fake_clock(monkeypatch, reader_mod)  # the test moves it: no machine is too slow
    base = sensors(1_000)
    ds = client.ingest(base, "live", chunk_rows=300, progress=False)
    assert len(ds) == 1_000
    other = cf.connect(store=client.settings.store_url, redis=client.settings.redis_url,
                       catalog=client.settings.catalog, prefix=client.settings.prefix)
    other.open("live").append(sensors(200, seed=9))
    clock.advance(STALENESS_SECONDS * 0.75)
    assert len(ds) == 1_000  # within the window the handle trusts what it holds
    clock.advance(STALENESS_SECONDS * 0.25)
    assert len(ds) == 1_200  # and re-checks once it is over
    replaced = sensors(50, seed=11)
    other.ingest(replaced, "live", mode="overwrite", chunk_rows=300, progress=False)
    clock.advance(STALENESS_SECONDS)
    pd.testing.assert_frame_equal(ds.to_pandas(), replaced)


def test_concurrent_readers_single_flight(client):
    df = sensors(20_000)
    ds = client.ingest(df, "hammer", chunk_rows=2_000, progress=False)
    client.reader.clear()
    fetches0 = client.reader.fetches

    def work(seed: int) -> None:
        rng = np.random.default_rng(seed)
        for sn in rng.integers(0, len(df), 400):
            pd.testing.assert_series_equal(ds.get(int(sn)), df.iloc[int(sn)])

    errors = run_threads(work)
    assert not errors, errors[0]
    assert client.reader.fetches - fetches0 == 10  # each chunk fetched once


def open_with_small_cache(client: cf.Client, dataset_id: str, chunks: float = 3.5
                          ) -> tuple[cf.Dataset, int]:
    """The dataset through a second client whose caches hold ``chunks`` stored chunks: its
    byte bound that many chunks' bytes, and (verified maps of local files not counting in
    it) its open maps that many files."""
    one = client.store.get(client.open(dataset_id).chunks["key"][0])
    limit = int(len(one) * chunks)
    small = cf.connect(store=client.settings.store_url, redis=client.settings.redis_url,
                       catalog=client.settings.catalog, prefix=client.settings.prefix,
                       chunk_cache_bytes=limit, max_mapped_chunks=int(chunks))
    return small.open(dataset_id), limit


def test_chunk_cache_stays_within_its_byte_bound(client):
    df = sensors(20_000)
    client.ingest(df, "bounded", chunk_rows=1_000, progress=False)
    ds, limit = open_with_small_cache(client, "bounded")
    for sn in range(0, 20_000, 500):
        ds.get(sn)
        info = ds.cache_info()
        assert info["total_bytes"] <= limit
    assert 1 <= info["chunks"] <= 3
    pd.testing.assert_series_equal(ds.get(19_999), df.iloc[19_999])


def test_repr_is_cheap_and_small(client):
    ds = client.ingest(sensors(5_000), "shown", chunk_rows=500, progress=False)
    client.reader.clear()
    before = client.reader.fetches
    text = repr(ds)
    assert client.reader.fetches == before  # the text: metadata only
    page = ds._repr_html_()
    assert client.reader.fetches == before + 1  # the HTML's first rows: the first chunk
    assert "5,000 rows" in text and "10 chunks" in text
    assert len(page) < 6_000 and "<table class='cf-table'>" in page


def test_reads_continue_while_redis_is_down(tmp_path, own_redis, df, monkeypatch):
    clock = fake_clock(monkeypatch, reader_mod)
    client = cf.connect(store=tmp_path / "store", redis=own_redis.url,
                        catalog=tmp_path / "catalog.db", home=tmp_path)
    ds = client.ingest(df, "resilient", chunk_rows=1_000, progress=False)
    ds.get(1)
    own_redis.stop()
    clock.advance(STALENESS_SECONDS)  # the handle's snapshot is due for a check with Redis
    pd.testing.assert_series_equal(ds.get(3_333), df.iloc[3_333])  # handle already open
    client.reader.clear()
    pd.testing.assert_frame_equal(ds.slice(10, 20).reset_index(drop=True),
                                  df.iloc[10:20].reset_index(drop=True))  # from the catalog
    own_redis.start()


def test_deletes_mask_old_values_but_never_rows_appended_later(client):
    base = sensors(1_000)
    ds = client.ingest(base, "tomb", chunk_rows=300, time_column="time", device_column="dev",
                       progress=False)
    ds.delete(device="d1", columns=["x"], date_range=(base["time"].iloc[500], None))
    got = ds.to_pandas()
    hit = (base["dev"] == "d1") & (base.index >= 500)
    assert hit.sum() > 0
    assert got.loc[hit, "x"].isna().all()
    pd.testing.assert_series_equal(got.loc[~hit, "x"], base.loc[~hit, "x"])
    assert got["k"].equals(base["k"])  # other measurements untouched
    later = sensors(200, seed=5)
    later["time"] = later["time"] + pd.Timedelta(days=1)
    later["dev"] = pd.Categorical(["d1"] * 200, categories=base["dev"].cat.categories)
    ds.append(later, progress=False)
    tail = ds.slice(1_000, 1_200)
    assert tail["x"].notna().all()
    pd.testing.assert_series_equal(tail["x"].reset_index(drop=True), later["x"])
    assert ds.get(1_100, "x") == later["x"].iloc[100]


def test_a_read_racing_an_overwrite_retries_on_the_new_generation(client, monkeypatch):
    fake_clock(monkeypatch, reader_mod)  # the clock stands still: the window never ends
    old = sensors(3_000)
    ds = client.ingest(old, "race", chunk_rows=500, progress=False)
    ds.get(0)  # snapshot of generation 1, chunk 0 cached
    other = cf.connect(store=client.settings.store_url, redis=client.settings.redis_url,
                       catalog=client.settings.catalog, prefix=client.settings.prefix)
    new = sensors(3_000, seed=8)
    other.ingest(new, "race", mode="overwrite", chunk_rows=500, progress=False)
    other.open("race").prune_versions()
    # within the staleness window the handle still holds generation 1, whose files are gone
    pd.testing.assert_series_equal(ds.get(2_222), new.iloc[2_222])
    pd.testing.assert_frame_equal(ds.slice(0, 10).reset_index(drop=True), new.iloc[:10])


def test_overwrite_sweeps_generations_orphaned_by_a_crash(client):
    ds = client.ingest(sensors(1_000), "orphans", chunk_rows=400, progress=False)
    gen = ds.meta.generation
    orphan = f"orphans/g{gen + 50:06d}/c00000000.arrow"
    client.store.put(orphan, b"left by an overwrite killed before its clean-up")
    client.ingest(sensors(500, seed=3), "orphans", mode="overwrite", chunk_rows=400,
                  progress=False)
    keys = list(client.store.list("orphans"))
    assert orphan not in keys  # the generation overwritten stays, for its version
    assert {k.split("/")[1] for k in keys} == {
        f"g{gen:06d}", f"g{client.open('orphans').meta.generation:06d}"}


def test_get_of_a_deleted_value_in_an_integer_row(client):
    df = pd.DataFrame({"t": np.arange(20), "v": np.arange(20) * 10})
    ds = client.ingest(df, "ints", chunk_rows=5, time_column="t", progress=False)
    ds.delete(date_range=(12, 13))
    assert ds.get(0).tolist() == [0, 0]
    row = ds.get(12)
    assert row["t"] == 12 and np.isnan(row["v"])
    assert np.isnan(ds.get(13, "v"))
    pd.testing.assert_series_equal(ds.get(12), ds.slice(12, 13).iloc[0])


def test_byte_bound_counts_decompressed_chunks(client):
    df = sensors(20_000)
    ds = client.ingest(df, "zipped", chunk_rows=5_000, compression="zstd", progress=False)
    decoded = client.reader.chunk(client.reader.snapshot("zipped"), 0).table.nbytes
    small = cf.connect(store=client.settings.store_url, redis=client.settings.redis_url,
                       catalog=client.settings.catalog, prefix=client.settings.prefix,
                       chunk_cache_bytes=int(decoded * 1.5))
    zds = small.open("zipped")
    for sn in range(0, 20_000, 5_000):
        pd.testing.assert_series_equal(zds.get(sn), df.iloc[sn])
        held = sum(entry.table.nbytes for entry in small.reader._chunks.values())
        assert held <= small.reader._chunks.maxsize
    assert ds.meta.compression == "zstd"


def test_redis_lagging_the_catalog_after_a_crash_is_caught_up(client, monkeypatch):
    """A worker died between the catalog commit and the Redis publish of an overwrite."""
    old, new = sensors(2_000), sensors(2_000, seed=4)
    ds = client.ingest(old, "lag", chunk_rows=500, progress=False)
    ds.get(0)
    monkeypatch.setattr(type(client.state), "publish",
                        lambda *a, **k: (_ for _ in ()).throw(SystemExit("killed")))
    with pytest.raises(SystemExit):
        client.ingest(new, "lag", mode="overwrite", chunk_rows=500, progress=False)
    monkeypatch.undo()
    assert client.state.meta("lag").generation == ds.meta.generation  # Redis still lags
    pd.testing.assert_frame_equal(client.open("lag").to_pandas(), new)  # the record wins
    # the next ingest sweeps the unreachable old generation; an old handle still reads
    client.ingest(sensors(10), "other", progress=False)
    client.ingest(new, "lag", mode="resume", chunk_rows=500, progress=False)
    pd.testing.assert_series_equal(ds.get(1_999), new.iloc[1_999])


def test_get_many_text_columns_low_and_high_cardinality(client):
    """Low-cardinality text is gathered as dictionary codes, unique text by Arrow takes, a
    column that is one in some chunks and the other elsewhere by Arrow takes: same values."""
    n = 4_000
    rng = np.random.default_rng(9)
    labels = np.array(["ok", "warn", "fail", "idle"], dtype=object)[rng.integers(0, 4, n)]
    labels[rng.random(n) < 0.05] = None
    unique = np.array([f"id-{i}" for i in range(n)], dtype=object)
    unique[::17] = None
    mixed = np.where(np.arange(n) < n // 2, labels, unique)
    df = pd.DataFrame({
        "lo": pd.array(labels, dtype="str"),
        "lo_na": pd.array(labels, dtype="string"),  # missing as pd.NA
        "hi": pd.array(unique, dtype="str"),
        "mixed": pd.array(mixed, dtype="str"),
        "x": np.arange(n, dtype=np.int64),
    })
    ds = client.ingest(df, "texts", chunk_rows=500, progress=False)
    sns = list(rng.integers(0, n, 3_000)) + [0, n - 1, 0]
    pd.testing.assert_frame_equal(ds.get_many(sns), expected_rows(df, sns))
    pd.testing.assert_frame_equal(ds.get_many(sorted(sns)), expected_rows(df, sorted(sns)))
    pd.testing.assert_frame_equal(ds.get_many(sns), expected_rows(df, sns))  # through planes
    snap = client.reader.snapshot("texts")
    template = client.reader.template(snap)
    first = column_vectors(client.reader.chunk(snap, 0).table, template)
    last = column_vectors(client.reader.chunk(snap, len(snap.chunks) - 1).table, template)
    assert isinstance(first[0], TextCodes) and isinstance(first[1], TextCodes)
    assert first[2] is None and last[3] is None and isinstance(first[3], TextCodes)


def test_planes_and_text_dictionaries_count_against_the_chunk_cache_bound(client):
    df = sensors(20_000)
    df["status"] = pd.array(np.array(["ok", "warn"], dtype=object)[np.arange(20_000) % 2],
                            dtype="str")
    client.ingest(df, "coded", chunk_rows=1_000, progress=False)
    ds, limit = open_with_small_cache(client, "coded")
    ds.get(0)
    plain = ds.cache_info()["total_bytes"]
    ds.get_many([0, 1, 2])  # a chunk's first batch read gathers from it: nothing kept
    assert ds.cache_info()["total_bytes"] == plain
    ds.get_many([0, 1, 2])  # read again by a batch: its planes fill, and are counted
    assert ds.cache_info()["total_bytes"] >= plain + 1_000 * (4 + 8)
    for start in range(0, 20_000, 700):
        got = ds.get_many(range(start, min(start + 1_500, 20_000), 7))
        assert ds.cache_info()["total_bytes"] <= limit
    pd.testing.assert_frame_equal(got, expected_rows(df, range(start, 20_000, 7)))


def test_group_by_chunk_on_chunks_of_unequal_size(client):
    df = sensors(1_000)
    client.ingest(df.iloc[:250], "uneven", chunk_rows=100, progress=False)   # 100, 100, 50
    client.ingest(df.iloc[250:], "uneven", chunk_rows=100, mode="append", progress=False)
    snap = client.reader.snapshot("uneven")
    assert [c.rows for c in snap.chunks][:4] == [100, 100, 50, 100]
    sns = np.array([260, 5, 249, 199, 5, 250])
    groups = group_by_chunk(snap, sns)
    assert groups.chunks == [0, 1, 2, 3]
    assert groups.spans == [(0, 2), (2, 3), (3, 4), (4, 6)]
    assert groups.local.tolist() == [5, 5, 99, 49, 10, 0]
    assert sns[groups.back].tolist() == [5, 5, 199, 249, 260, 250]
    assert group_by_chunk(snap, np.array([1, 2, 300])).back is None  # asked in order
    pd.testing.assert_frame_equal(client.open("uneven").get_many(sns), expected_rows(df, sns))
