"""Range and filtered reads (date_range=, where=), to_arrow/to_batches, and the chunk statistics that skip."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from frames import all_dtypes, sensors

from chunkframe.core.errors import ChunkCorruptionError, InvalidArgumentError, NoTimeColumnError
from chunkframe.core.model import ChunkMeta
from chunkframe.core.ranges import (
    Comparison,
    RowFilter,
    column_ranges,
    make_filter,
    time_may_match,
)
from chunkframe.core.times import utc_from_epoch
from chunkframe.storage.catalog import Catalog

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data" / "samples"))
from make_samples import flights  # noqa: E402

ROWS = 256  # chunk rows: all_dtypes(5_000) makes 20 chunks


@pytest.fixture
def typed(client):
    """Every dtype, time column ``t`` (naive, one row a minute), 20 chunks."""
    df = all_dtypes(5_000)
    return client.ingest(df, "typed", chunk_rows=ROWS, time_column="t", progress=False), df


@pytest.fixture
def zoned(client):
    """Every dtype, time column ``tz`` (Europe/Paris, one row an hour)."""
    df = all_dtypes(2_000, seed=3)
    return client.ingest(df, "zoned", chunk_rows=ROWS, time_column="tz", progress=False), df


def fetches(ds, read):
    """(result of ``read()``, chunks it fetched, chunks it skipped), chunk cache cold."""
    reader = ds._client.reader
    reader.clear(metadata=False)
    f, s = reader.fetches, reader.skipped
    out = read()
    return out, reader.fetches - f, reader.skipped - s


# -- date_range --------------------------------------------------------------------------------

def test_date_range_equals_pandas_mask_for_every_dtype(typed):
    ds, df = typed
    a, b = pd.Timestamp("2025-01-02 03:04"), pd.Timestamp("2025-01-02 09:00")
    got, fetched, skipped = fetches(ds, lambda: ds.to_pandas(date_range=(a, b)))
    pd.testing.assert_frame_equal(got, df[(df.t >= a) & (df.t <= b)])
    assert fetched == 2 and skipped == 18  # rows 1624..1980: chunks 6 and 7
    assert ds.cache_info()["skipped"] >= 18
    # open ends, strings, columns
    got = ds.to_pandas(["f", "s", "t"], date_range=(None, "2025-01-01 00:10"))
    pd.testing.assert_frame_equal(got, df.loc[df.t <= "2025-01-01 00:10", ["f", "s", "t"]])
    got = ds.to_pandas("c", date_range=("2025-01-04 11:00", None))
    pd.testing.assert_frame_equal(got, df.loc[df.t >= "2025-01-04 11:00", ["c"]])


def test_date_range_at_chunk_boundaries(typed):
    ds, df = typed
    last_of_2, first_of_3 = df.t[3 * ROWS - 1], df.t[3 * ROWS]
    for (a, b), chunks in (((first_of_3, first_of_3), 1), ((last_of_2, last_of_2), 1),
                           ((last_of_2, first_of_3), 2), ((df.t[2 * ROWS], last_of_2), 1)):
        got, fetched, _ = fetches(ds, lambda a=a, b=b: ds.to_pandas(date_range=(a, b)))
        pd.testing.assert_frame_equal(got, df[(df.t >= a) & (df.t <= b)])
        assert fetched == chunks, (a, b)


def test_empty_ranges(typed):
    ds, df = typed
    for rng in (("2024-01-01", "2024-12-31"), ("2030-01-01", None),
                ("2025-01-01 00:00:30", "2025-01-01 00:00:50")):  # between two rows
        got, fetched, _ = fetches(ds, lambda rng=rng: ds.to_pandas(date_range=rng))
        want = df.iloc[:0]
        pd.testing.assert_frame_equal(got, want, check_index_type=False)
        assert got.dtypes.equals(df.dtypes)
        assert fetched <= 1  # only a chunk for its categories, if every chunk is ruled out
        assert ds.to_arrow(date_range=rng).num_rows == 0
        assert list(ds.iter_chunks(date_range=rng)) == [] or all(
            len(p) == 0 for p in ds.iter_chunks(date_range=rng))


def test_aware_bound_on_a_naive_column_is_converted_to_utc(typed):
    ds, df = typed
    a = pd.Timestamp("2025-01-02 10:00", tz="Europe/Paris")  # 09:00 UTC
    b = pd.Timestamp("2025-01-02 08:30", tz="America/New_York")  # 13:30 UTC
    got = ds.to_pandas(date_range=(a, b))
    want = df[(df.t >= "2025-01-02 09:00") & (df.t <= "2025-01-02 13:30")]
    pd.testing.assert_frame_equal(got, want)
    assert len(got) == 271


def test_naive_bound_on_an_aware_column_is_read_in_the_columns_zone(zoned):
    ds, df = zoned
    got = ds.to_pandas(date_range=("2025-01-20 00:00", "2025-01-20 23:59"))
    want = df[(df.tz >= pd.Timestamp("2025-01-20", tz="Europe/Paris"))
              & (df.tz <= pd.Timestamp("2025-01-20 23:59", tz="Europe/Paris"))]
    pd.testing.assert_frame_equal(got, want)
    assert len(got) == 24 and got.tz.iloc[0].hour == 0
    aware = ds.to_pandas(date_range=(pd.Timestamp("2025-01-19 23:00", tz="UTC"), None))
    pd.testing.assert_frame_equal(aware, df[df.tz >= pd.Timestamp("2025-01-20", tz="Europe/Paris")])


def test_integer_time_column(client):
    df = pd.DataFrame({"tick": np.arange(1_000) * 3, "v": np.arange(1_000.0)})
    ds = client.ingest(df, "ticks", chunk_rows=100, time_column="tick", progress=False)
    got, fetched, _ = fetches(ds, lambda: ds.to_pandas(date_range=(300, "599")))
    pd.testing.assert_frame_equal(got, df[(df.tick >= 300) & (df.tick <= 599)])
    assert fetched == 1


def test_narrow_range_fetches_one_chunk_of_many(client):
    df = sensors(40_000)
    ds = client.ingest(df, "narrow", chunk_rows=1_000, time_column="time", device_column="dev",
                       progress=False)
    a, b = df.time[12_100], df.time[12_200]
    got, fetched, skipped = fetches(ds, lambda: ds.to_pandas(date_range=(a, b)))
    pd.testing.assert_frame_equal(got, df[(df.time >= a) & (df.time <= b)])
    assert (fetched, skipped) == (1, 39)


def test_rows_without_a_device_are_not_skipped(client):
    """Per-device time spans leave out rows without a device; the time column's own
    [min, max] covers them, so a range holding only such rows still finds them."""
    df = pd.DataFrame({"time": pd.date_range("2026-01-01", periods=40, freq="h"),
                       "dev": ["a"] * 30 + [None] * 10, "v": np.arange(40.0)})
    ds = client.ingest(df, "nulldev", chunk_rows=10, time_column="time", device_column="dev",
                       progress=False)
    got = ds.to_pandas(date_range=(df.time[32], df.time[35]))
    pd.testing.assert_frame_equal(got, df.iloc[32:36])
    ds.delete(date_range=(df.time[32], df.time[33]))  # every device, the device-less rows too
    assert ds.to_pandas()["v"].isna().sum() == 2


# -- where -------------------------------------------------------------------------------------

def test_where_with_skipping(typed):
    ds, df = typed
    # i is random 0..999 in every chunk: no chunk can be ruled out by it, but t can
    expr = (pc.field("i") > 900) & (pc.field("t") < pd.Timestamp("2025-01-01 05:00"))
    got, fetched, skipped = fetches(ds, lambda: ds.to_pandas(where=expr))
    pd.testing.assert_frame_equal(got, df[(df.i > 900) & (df.t < "2025-01-01 05:00")])
    assert fetched == 2 and skipped == 18
    # a literal on the left, a float column, ==
    for expr, want in ((pc.scalar(998) < pc.field("i"), df.i > 998),
                       (pc.field("f") >= 2.5, df.f >= 2.5),
                       (pc.field("i") == 7, df.i == 7),
                       (pc.field("ni") <= -5, df.ni <= -5)):
        pd.testing.assert_frame_equal(ds.to_pandas(where=expr), df[want.fillna(False)])


def test_where_skips_by_min_max_of_a_sorted_column(client):
    df = pd.DataFrame({"k": np.arange(10_000), "x": np.linspace(0, 1, 10_000)})
    ds = client.ingest(df, "sorted", chunk_rows=1_000, progress=False)  # no time column
    expr = (pc.field("k") >= 2_500) & (pc.field("k") < 3_100) & (pc.field("x") > 0.2)
    got, fetched, skipped = fetches(ds, lambda: ds.to_pandas(where=expr))
    pd.testing.assert_frame_equal(got, df[(df.k >= 2_500) & (df.k < 3_100) & (df.x > 0.2)])
    assert (fetched, skipped) == (2, 8)
    got, fetched, _ = fetches(ds, lambda: ds.to_pandas(where=pc.field("k") > 10**6))
    assert len(got) == 0 and fetched == 0


def test_where_on_times_past_2262_skips_as_their_statistics_say(client):
    """Statistics and where= literals take one conversion to nanoseconds (Python ints): a
    literal past the int64 nanosecond range skips chunks as any other does."""
    times = pd.date_range("2300-01-01", periods=4_000, freq="h").as_unit("us")
    df = pd.DataFrame({"t": times, "x": np.arange(4_000)})
    ds = client.ingest(df, "far-times", chunk_rows=1_000, progress=False)
    assert ds.chunk_metas[0].ranges["t"][0] == int(times[0].asm8.view("i8")) * 1_000  # us -> ns, exact
    cut = pd.Timestamp("2300-05-01")
    got, fetched, skipped = fetches(ds, lambda: ds.to_pandas(where=pc.field("t") >= cut))
    pd.testing.assert_frame_equal(got, df[df.t >= cut])
    assert (fetched, skipped) == (2, 2)


def test_utc_from_epoch_is_the_one_conversion_of_recorded_seconds():
    assert utc_from_epoch(1767225600.5) == pd.Timestamp("2026-01-01 00:00:00.5", tz="UTC")
    got = utc_from_epoch(pd.Series([None, 0.0, 1767225600], dtype=object))
    assert got.isna().tolist() == [True, False, False] and str(got.dt.tz) == "UTC"
    assert got.iloc[2] == pd.Timestamp("2026-01-01", tz="UTC")


def test_where_without_skipping_is_still_right(typed):
    ds, df = typed
    for expr, want in (
        ((pc.field("i") > 990) | (pc.field("t") < pd.Timestamp("2025-01-01 01:00")),
         (df.i > 990) | (df.t < "2025-01-01 01:00")),
        (pc.field("s").isin(["alpha", "δέλτα"]), df.s.isin(["alpha", "δέλτα"])),
        (~(pc.field("b")), ~df.b),
        (pc.field("c") == "hi", df.c == "hi"),
        (pc.field("i") != 5, df.i != 5),
        (pc.field("ni").is_null(), df.ni.isna()),
    ):
        got, fetched, _ = fetches(ds, lambda expr=expr: ds.to_pandas(where=expr))
        pd.testing.assert_frame_equal(got, df[want])
        assert fetched == ds.meta.chunks


def test_where_on_a_timestamp_column_of_another_zone(zoned):
    ds, df = zoned
    cut = pd.Timestamp("2025-02-10 12:00", tz="Asia/Tokyo")
    got, fetched, skipped = fetches(ds, lambda: ds.to_pandas(where=pc.field("tz") >= cut))
    pd.testing.assert_frame_equal(got, df[df.tz >= cut])
    assert skipped > 0 and fetched + skipped == ds.meta.chunks


def test_where_after_deletes(client):
    df = sensors(5_000)
    ds = client.ingest(df, "deleted", chunk_rows=500, time_column="time", device_column="dev",
                       progress=False)
    ds.delete(device="d3", columns="x", date_range=(df.time[1_000], df.time[2_000]))
    hidden = (df.dev == "d3") & (df.time >= df.time[1_000]) & (df.time <= df.time[2_000])
    want = df[(df.x > 0) & ~hidden]  # a deleted value is missing: it matches no comparison
    pd.testing.assert_frame_equal(ds.to_pandas(where=pc.field("x") > 0), want)
    both = ds.to_pandas(["dev", "x"], date_range=(df.time[900], df.time[2_100]),
                        where=pc.field("x").is_null())
    assert (both.dev == "d3").all() and len(both) == hidden.sum()


def test_flights_against_pandas(client):
    df = flights(30_000)
    ds = client.ingest(df, "flights", chunk_rows=2_048, time_column="time_hour", progress=False)
    a, b = "2013-03-01", "2013-03-07 23:59"
    expr = (pc.field("dep_delay") > 60) & (pc.field("distance") < 1_000)
    got, fetched, skipped = fetches(ds, lambda: ds.to_pandas(
        ["carrier", "dep_delay", "distance", "time_hour"], date_range=(a, b), where=expr))
    zone = "America/New_York"
    mask = ((df.time_hour >= pd.Timestamp(a, tz=zone)) & (df.time_hour <= pd.Timestamp(b, tz=zone))
            & (df.dep_delay > 60) & (df.distance < 1_000))
    pd.testing.assert_frame_equal(got, df.loc[mask, ["carrier", "dep_delay", "distance", "time_hour"]])
    assert fetched <= 2 and fetched + skipped == ds.meta.chunks
    text = ds.to_pandas(where=pc.field("tailnum").is_null() & (pc.field("origin") == "JFK"))
    pd.testing.assert_frame_equal(text, df[df.tailnum.isna() & (df.origin == "JFK")])


# -- failure modes -----------------------------------------------------------------------------

def test_where_on_a_missing_column(typed):
    ds, _ = typed
    with pytest.raises(InvalidArgumentError, match=r"cannot filter dataset 'typed': No match for "
                                                   r"FieldRef.Name\(nope\): no such column; its "
                                                   r"columns are \['i'"):
        ds.to_pandas(where=pc.field("nope") > 1)
    with pytest.raises(InvalidArgumentError, match="nope"):
        ds.to_batches(where=pc.field("nope") > 1)  # at once, not when read


def test_where_that_is_not_a_boolean_expression(typed):
    ds, df = typed
    for bad in ("i > 3", df.i > 3, lambda t: t, True):
        with pytest.raises(InvalidArgumentError, match="is not a pyarrow.compute expression; "
                                                       r"give one such as pc.field"):
            ds.to_pandas(where=bad)
    with pytest.raises(InvalidArgumentError, match="must evaluate to bool"):
        ds.to_arrow(where=pc.field("i") + 1)
    with pytest.raises(InvalidArgumentError, match="cannot filter dataset 'typed'"):
        list(ds.iter_chunks(where=pc.field("s") > 3))  # text against a number
    with pytest.raises(InvalidArgumentError, match="cannot filter"):  # naive against aware
        ds.to_pandas(where=pc.field("t") > pd.Timestamp("2025-01-02", tz="UTC"))


def test_date_range_without_a_time_column(client):
    ds = client.ingest(pd.DataFrame({"v": range(10)}), "plain", progress=False)
    for read in (ds.to_pandas, ds.to_arrow, ds.to_batches, lambda **k: list(ds.iter_chunks(**k))):
        with pytest.raises(NoTimeColumnError, match="dataset 'plain' has no time column, so "
                                                    r"it cannot be filtered by time \(date_range\)"
                                                    r".*where="):
            read(date_range=("2026-01-01", None))


def test_bad_date_ranges_and_columns(typed):
    ds, _ = typed
    with pytest.raises(InvalidArgumentError, match="is not a pair"):
        ds.to_pandas(date_range="2025-01-01")
    with pytest.raises(InvalidArgumentError, match="starts after it ends"):
        ds.to_arrow(date_range=("2025-01-03", "2025-01-02"))
    with pytest.raises(InvalidArgumentError, match="not a time"):
        ds.to_pandas(date_range=("soon", None))
    with pytest.raises(KeyError, match="no column 'zz'"):
        ds.to_batches(["zz"], where=pc.field("i") > 1)
    with pytest.raises(TypeError):
        ds.to_pandas(None, ("2025-01-01", None))  # date_range and where are keyword-only


# -- iter_chunks, to_arrow, to_batches ---------------------------------------------------------

def test_iter_chunks_with_filters(typed):
    ds, df = typed
    a, b = "2025-01-02", "2025-01-02 12:00"
    parts = list(ds.iter_chunks(["i", "t"], date_range=(a, b), where=pc.field("i") < 500))
    assert all(p.index.name == "sn" for p in parts) and len(parts) == 4  # chunks 5 to 8
    whole = pd.concat(parts)
    want = df.loc[(df.t >= a) & (df.t <= b) & (df.i < 500), ["i", "t"]].rename_axis("sn")
    pd.testing.assert_frame_equal(whole, want)
    assert whole.attrs["chunkframe"]["dataset"] == "typed"


def test_to_arrow_keeps_the_pandas_dtypes(typed):
    ds, df = typed
    table = ds.to_arrow()
    assert isinstance(table, pa.Table) and table.num_rows == len(df)
    pd.testing.assert_frame_equal(table.to_pandas(), df)
    part = ds.to_arrow(["tz", "ni"], date_range=("2025-01-03", "2025-01-03 06:00"))
    assert part.schema.names == ["tz", "ni"]
    want = df.loc[(df.t >= "2025-01-03") & (df.t <= "2025-01-03 06:00"), ["tz", "ni"]]
    pd.testing.assert_frame_equal(part.to_pandas(), want.reset_index(drop=True))


def test_to_batches_streams_checked_chunks(typed):
    ds, df = typed
    reader = ds.to_batches()
    assert isinstance(reader, pa.RecordBatchReader)
    batches = list(reader)
    assert len(batches) == ds.meta.chunks and all(b.num_rows == ROWS for b in batches[:-1])
    pd.testing.assert_frame_equal(pa.Table.from_batches(batches).to_pandas(), df)
    assert ds.cache_info()["chunks"] == 0  # streamed, not cached


def test_to_batches_raises_on_a_corrupt_chunk(client):
    df = sensors(2_000)
    ds = client.ingest(df, "bad", chunk_rows=500, time_column="time", progress=False)
    path = Path(client.settings.store_url) / ds.chunks.key[2]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    reader = ds.to_batches()
    assert reader.read_next_batch().num_rows == 500  # chunks before it are served
    with pytest.raises(ChunkCorruptionError, match="chunk 2 of dataset 'bad' .* is corrupt"):
        reader.read_all()
    clean = ds.to_pandas(date_range=(df.time[0], df.time[900]))  # the corrupt one is skipped
    pd.testing.assert_frame_equal(clean, df.iloc[:901])


def test_duckdb_reads_to_batches(typed):
    import duckdb
    ds, df = typed
    batches = ds.to_batches(["c", "f", "i"], where=pc.field("i") >= 500)  # noqa: F841
    got = duckdb.sql("SELECT c, count(*) AS n, sum(i) AS total FROM batches "
                     "GROUP BY c ORDER BY c").df()
    sub = df[df.i >= 500]
    want = sub.groupby("c", observed=True).agg(n=("i", "size"), total=("i", "sum"))
    assert dict(zip(got.c, got.n, strict=True)) == want["n"].to_dict()
    assert dict(zip(got.c, got.total, strict=True)) == want["total"].to_dict()
    one_day = ds.to_batches(date_range=("2025-01-02", "2025-01-02 23:59:59"))  # noqa: F841
    assert duckdb.sql("SELECT count(*) FROM one_day").fetchall() == [(1_440,)]


def test_polars_reads_to_batches_and_to_arrow(typed):
    import polars as pl
    ds, df = typed
    frame = pl.from_arrow(ds.to_batches(["i", "f", "s", "t", "tz"]))
    assert frame.shape == (len(df), 5)
    assert frame["i"].sum() == df.i.sum()
    assert frame["s"].null_count() == df.s.isna().sum()
    assert frame["tz"].dtype.time_zone == "Europe/Paris"
    small = pl.from_arrow(ds.to_arrow(where=pc.field("i") < 10))
    assert small.height == (df.i < 10).sum()


# -- statistics --------------------------------------------------------------------------------

def test_ranges_recorded_at_ingest_in_redis_and_the_catalog(typed, client):
    ds, df = typed
    meta = ds.meta
    hot = client.reader.state.chunk_metas("typed", meta.generation)
    record = client.reader.catalog.chunks("typed", meta.generation)
    assert [hot[c.chunk] for c in record] == record
    first = record[0].ranges
    head = df.iloc[:ROWS]
    assert set(first) == {"i", "ni", "f", "t", "tz"}  # numbers and timestamps only
    assert first["i"] == [int(head.i.min()), int(head.i.max())]
    assert first["f"] == [head.f.min(), head.f.max()]  # NaN aside
    assert first["t"] == [head.t.min().as_unit("ns").value, head.t.max().as_unit("ns").value]


def test_column_ranges_leave_out_empty_and_nan_columns():
    table = pa.table({"a": pa.array([None, None], pa.int64()), "b": [float("nan")] * 2,
                      "c": [1.5, float("nan")], "d": ["x", "y"], "e": [True, False]})
    assert column_ranges(table) == {"c": [1.5, 1.5]}


def test_old_chunks_without_ranges_are_never_skipped_by_them():
    old = ChunkMeta(0, 0, 10, "k", "crc32c:00000000", 10, {"": [0, 100]})
    flt = RowFilter(where=pc.field("v") > 5, simple=(Comparison("v", ">", pa.scalar(5), 5),))
    assert flt.may_match(old)
    assert not flt.may_match(ChunkMeta(0, 0, 10, "k", "c", 10, {}, {"v": [0, 5]}))
    # devices' spans decide without a device column, and for the devices asked
    assert not time_may_match(old, 200, None, None, "t")
    devs = ChunkMeta(0, 0, 10, "k", "c", 10, {"a": [0, 100]})
    assert time_may_match(devs, 200, None, None, "t")  # rows without a device may be later
    assert not time_may_match(devs, 200, None, ("a",), "t")


def test_simple_comparisons_are_recognised_exactly():
    schema = pa.schema([("temp", pa.float64()), ("a b", pa.int64()), ("t", pa.timestamp("ns"))])
    meta = type("M", (), {"id": "x", "device_column": None, "time_column": None})()

    def simple(expr):
        found = make_filter(meta, schema, where=expr).simple
        return None if found is None else tuple((c.column, c.op, c.value) for c in found)

    assert simple((pc.field("temp") > 25) & (pc.field("a b") <= 3)) == (
        ("temp", ">", 25), ("a b", "<=", 3))
    assert simple(pc.scalar(3) > pc.field("a b")) == (("a b", "<", 3),)
    ts = simple(pc.field("t") >= pd.Timestamp("2025-01-01"))
    assert ts == (("t", ">=", pd.Timestamp("2025-01-01").value),)
    assert make_filter(meta, schema, where=pc.field("temp") > 1).direct
    assert not make_filter(meta, schema, where=pc.field("temp").is_valid()).direct  # Acero's
    for other in ((pc.field("temp") > 1) | (pc.field("temp") < 0), pc.field("temp") != 1,
                  pc.field("temp").is_valid(), pc.field("temp") > pc.field("a b")):
        assert simple(other) is None


def test_old_catalog_is_migrated(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE chunks (dataset TEXT NOT NULL, generation INTEGER NOT NULL, "
                   "chunk INTEGER NOT NULL, start INTEGER NOT NULL, rows INTEGER NOT NULL, "
                   "key TEXT NOT NULL, checksum TEXT NOT NULL, nbytes INTEGER NOT NULL, "
                   "stats TEXT NOT NULL, PRIMARY KEY (dataset, generation, chunk))")
        db.execute("INSERT INTO chunks VALUES ('d', 1, 0, 0, 5, 'k', 'crc32c:0', 9, '{}')")
    catalog = Catalog(path)
    assert catalog.chunks("d", 1) == [ChunkMeta(0, 0, 5, "k", "crc32c:0", 9, {}, {})]
    Catalog(path)  # a second open finds it migrated


def test_export_where(typed, tmp_path):
    ds, df = typed
    dest = ds.export(tmp_path / "w.parquet", columns=["i", "t"], where=pc.field("i") > 950,
                     date_range=("2025-01-02", None))
    want = df.loc[(df.i > 950) & (df.t >= "2025-01-02"), ["i", "t"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(pd.read_parquet(dest), want)
    with pytest.raises(InvalidArgumentError, match="nope"):
        ds.export(tmp_path / "x.parquet", where=pc.field("nope") > 1)
    assert not (tmp_path / "x.parquet").exists()
