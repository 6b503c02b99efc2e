"""One conformance suite for every dataset handle: the same calls on a local ``Dataset`` and on
a ``RemoteDataset`` (through a real ``chunkframe serve`` on loopback) give the same answers,
for every dtype, and fail with the same error classes (as zarr's ``StoreTests`` runs against
each store)."""

from __future__ import annotations

import time
import uuid

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from frames import all_dtypes, sensors

import chunkframe as cf
from chunkframe.core.protocols import ContextLike, DatasetLike

pytest.importorskip("urllib3")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from test_service import ServeProcess  # noqa: E402 - after the skips, as test_health does

from chunkframe.service.remote import RemoteClient  # noqa: E402 - after the skips

ROWS = 2_000
CHUNK_ROWS = 300


@pytest.fixture(scope="module")
def world(tmp_path_factory, redis_server):
    """Datasets of every dtype, with versions, served by one ``chunkframe serve``."""
    home = tmp_path_factory.mktemp("conf")
    prefix = f"k{uuid.uuid4().hex[:10]}"
    settings = ["--home", str(home), "--store", str(home / "store"), "--redis", redis_server.url,
                "--catalog", str(home / "catalog.db"), "--prefix", prefix]
    local = cf.connect(store=home / "store", redis=redis_server.url, catalog=home / "catalog.db",
                       home=home, prefix=prefix)
    every = all_dtypes(ROWS)
    local.ingest(every.iloc[:1_500], "every", chunk_rows=CHUNK_ROWS, progress=False)
    time.sleep(0.01)
    before = time.time()  # between version 1 and version 2
    time.sleep(0.01)
    local.open("every").append(every.iloc[1_500:], chunk_rows=CHUNK_ROWS)
    readings = sensors(3_000)
    local.ingest(readings, "sensors", chunk_rows=500, time_column="time", device_column="dev",
                 progress=False)
    local.open("every").tag("owner", "ana", keywords=["team-a"])
    local.open("every").tag("rows", ROWS, type="VARIABLE")
    local.ingest(pd.DataFrame({"x": np.arange(20_000), "s": np.arange(20_000).astype(str)}),
                 "long", chunk_rows=1_000, progress=False)  # 20 chunks, never read before
    fragile = local.ingest(pd.DataFrame({"x": np.arange(500)}), "fragile", chunk_rows=100,
                           progress=False)
    key = fragile.chunks["key"][2]  # a flipped byte in chunk 2 of 5
    data = local.store.get(key)
    local.store.put(key, data[:200] + bytes([data[200] ^ 0xFF]) + data[201:])
    server = ServeProcess(settings, home / "serve.log").start()
    yield {"local": local, "remote": RemoteClient(server.url), "every": every,
           "sensors": readings, "before": before}
    server.stop()


@pytest.fixture(params=["local", "remote"])
def client(request, world):
    """The local client, then the remote one: every test below runs on both."""
    return world[request.param]


def _same_value(a, b) -> None:
    """Equal and of the same type (a missing value: the same kind of missing)."""
    assert type(a) is type(b), (a, b)
    assert (a is b) or (pd.isna(a) and pd.isna(b)) or a == b, (a, b)


# -- the protocol -----------------------------------------------------------------------------

def test_both_handles_are_dataset_like(client):
    ds = client.open("every")
    assert isinstance(ds, DatasetLike) and isinstance(ds.context, ContextLike)
    assert ds.id == "every"


def test_metadata(client, world):
    ds, local = client.open("every"), world["local"].open("every")
    assert len(ds) == ROWS and ds.columns == list(world["every"].columns)
    assert ds.schema.equals(local.schema, check_metadata=True)
    assert ds.meta == local.meta and ds.version == 2 and ds.read_only is False
    assert ds.chunk_metas == local.chunk_metas and len(ds.chunk_metas) == ds.meta.chunks
    pd.testing.assert_frame_equal(ds.chunks, local.chunks)
    pd.testing.assert_frame_equal(ds.versions(), local.versions())
    assert ds.versions()["version"].tolist() == [1, 2]
    assert set(ds.cache_info()) >= {"hits", "misses", "chunks", "bytes", "max_bytes"}


# -- reads, every dtype -----------------------------------------------------------------------

SNS = (0, 1, CHUNK_ROWS - 1, CHUNK_ROWS, 1_499, 1_500, ROWS - 1, -1, -ROWS)


def test_get_a_row_equals_iloc_on_every_dtype(client, world):
    ds, every, local = client.open("every"), world["every"], world["local"].open("every")
    for sn in SNS:
        got = ds.get(sn)
        pd.testing.assert_series_equal(got, every.iloc[sn].rename(sn % ROWS))
        for a, b in zip(got, local.get(sn), strict=True):  # iloc's own scalars vary by pandas
            _same_value(a, b)
    for c in every.columns:  # a missing value of each column that has one, whole row too
        missing = np.flatnonzero(every[c].isna().to_numpy())
        for sn in [int(s) for s in missing[:2]]:
            pd.testing.assert_series_equal(ds.get(sn), every.iloc[sn].rename(sn))


def test_get_one_value_has_the_exact_type(client, world):
    ds, every, local = client.open("every"), world["every"], world["local"].open("every")
    for c in every.columns:
        missing = [int(s) for s in np.flatnonzero(every[c].isna().to_numpy())[:1]]
        for sn in (*SNS[:4], *missing):
            _same_value(ds.get(np.int64(sn), c), local.get(sn, c))
            assert pd.isna(every[c].iloc[sn]) or ds.get(sn, c) == every[c].iloc[sn]


def test_row_as_a_dict_has_the_values_get_gives(client, world):
    ds, every, local = client.open("every"), world["every"], world["local"].open("every")
    missing = [int(np.flatnonzero(every[c].isna().to_numpy())[0]) for c in every.columns
               if every[c].isna().any()]
    for sn in (*SNS, *missing):
        got = ds.row(sn)
        assert list(got) == list(every.columns)
        for c in every.columns:
            _same_value(got[c], local.get(sn, c))
    assert ds.row(np.int32(3)) == ds.row(3)
    for bad in (ROWS, -ROWS - 1):
        with pytest.raises(IndexError, match="out of range"):
            ds.row(bad)
    with pytest.raises(TypeError, match="serial number must be an integer"):
        ds.row("3")  # type: ignore[arg-type]


def test_get_many_and_slice_equal_iloc(client, world):
    ds, every = client.open("every"), world["every"]
    rng = np.random.default_rng(7)
    sns = rng.integers(-ROWS, ROWS, 700)
    want = every.iloc[sns]
    want.index = pd.Index(sns % ROWS, name="sn")
    pd.testing.assert_frame_equal(ds.get_many(sns), want, check_index_type=False)
    local = world["local"].open("every")
    pd.testing.assert_frame_equal(ds.get_many([7, 7, 1], ["tz", "c", "tz"]),
                                  local.get_many([7, 7, 1], ["tz", "c", "tz"]))
    pd.testing.assert_frame_equal(ds.get_many([]), local.get_many([]))
    for a, b in ((None, None), (10, 700), (-50, None), (1_900, 10), (0, ROWS), (5, 5)):
        pd.testing.assert_frame_equal(ds.slice(a, b), every.iloc[a:b].rename_axis("sn"),
                                      check_index_type=False)
        pd.testing.assert_frame_equal(ds.slice(a, b), local.slice(a, b))
    pd.testing.assert_frame_equal(ds.slice(100, 200, ["s", "ni"]),
                                  every.iloc[100:200][["s", "ni"]].rename_axis("sn"),
                                  check_index_type=False)


def test_whole_reads_equal_the_frame(client, world):
    ds, every, local = client.open("every"), world["every"], world["local"].open("every")
    pd.testing.assert_frame_equal(ds.to_pandas(), every)
    pd.testing.assert_frame_equal(ds.to_pandas(["td", "nb"]), every[["td", "nb"]])
    table = ds.to_arrow()
    assert table.equals(local.to_arrow(), check_metadata=True)
    pd.testing.assert_frame_equal(table.to_pandas(), every)
    assert ds.to_arrow(["c", "tz"]).equals(local.to_arrow(["c", "tz"]), check_metadata=True)
    reader = ds.to_batches(["i", "s"])
    assert isinstance(reader, pa.RecordBatchReader)
    assert reader.schema.equals(local.to_batches(["i", "s"]).schema, check_metadata=True)
    batches = list(reader)
    assert len(batches) == local.meta.chunks and sum(b.num_rows for b in batches) == ROWS
    pd.testing.assert_frame_equal(pa.Table.from_batches(batches).to_pandas(), every[["i", "s"]])
    parts = list(ds.iter_chunks(["f", "c"]))
    want = list(local.iter_chunks(["f", "c"]))
    assert len(parts) == len(want) == local.meta.chunks
    for got, exp in zip(parts, want, strict=True):
        pd.testing.assert_frame_equal(got, exp, check_index_type=False)


def test_date_range_reads(client, world):
    ds, local = client.open("sensors"), world["local"].open("sensors")
    readings = world["sensors"]
    span = ("2026-01-01 00:10", pd.Timestamp("2026-01-01 00:20", tz="UTC"))
    mask = readings.time.between(pd.Timestamp(span[0], tz="UTC"), span[1])
    want = readings[mask]
    want.index = pd.Index(want.index.to_numpy())
    pd.testing.assert_frame_equal(ds.to_pandas(date_range=span), want)
    pd.testing.assert_frame_equal(ds.to_pandas(date_range=span), local.to_pandas(date_range=span))
    assert ds.to_arrow(["x"], date_range=span).equals(local.to_arrow(["x"], date_range=span))
    got = list(ds.iter_chunks(["x", "dev"], date_range=span))
    exp = list(local.iter_chunks(["x", "dev"], date_range=span))
    assert len(got) == len(exp) >= 1
    for a, b in zip(got, exp, strict=True):
        pd.testing.assert_frame_equal(a, b)
    nothing = (pd.Timestamp("2030-01-01", tz="UTC"), None)  # every chunk ruled out
    pd.testing.assert_frame_equal(ds.to_pandas(date_range=nothing),
                                  local.to_pandas(date_range=nothing))
    assert list(ds.iter_chunks(date_range=nothing)) == []
    assert ds.to_arrow(date_range=nothing).num_rows == 0


def test_last_tags_and_context(client, world):
    ds, local = client.open("sensors"), world["local"].open("sensors")
    pd.testing.assert_frame_equal(ds.last(), local.last())
    pd.testing.assert_frame_equal(ds.last("d2", "x"), local.last("d2", "x"))
    pd.testing.assert_frame_equal(ds.last(["d4", "d1"]), local.last(["d4", "d1"]))
    every, lev = client.open("every"), world["local"].open("every")
    pd.testing.assert_frame_equal(every.tags(), lev.tags())
    pd.testing.assert_frame_equal(every.tags("VARIABLE"), lev.tags("VARIABLE"))
    pd.testing.assert_frame_equal(every.find("team-a"), lev.find("team-a"))
    assert every.context["owner"] == "ana" and every.context.get("rows") == ROWS
    assert every.context.get("no-such-key") is None and every.context.get("nope", 0) == 0
    assert every.context.get("owner", type="DATA") is None
    assert every.context.value("rows", type="VARIABLE") == ROWS
    with pytest.raises(KeyError):
        every.context["no-such-key"]


# -- failure modes: the same classes ------------------------------------------------------------

def test_bad_serial_numbers_and_columns(client):
    ds = client.open("every")
    for bad in (ROWS, -ROWS - 1, 2**63):
        with pytest.raises(IndexError, match="out of range"):
            ds.get(bad)
    with pytest.raises(IndexError):
        ds.get_many([0, ROWS])
    for bad in ("1", 1.5, None, True):
        with pytest.raises(TypeError, match="serial number must be an integer"):
            ds.get(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ds.get_many(["a"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="flat"):
        ds.get_many([[1, 2]])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        ds.slice("a")  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="'zz'"):
        ds.get(1, "zz")
    with pytest.raises(KeyError, match="'zz'"):
        ds.get_many([1], ["zz"])
    with pytest.raises(KeyError, match="'zz'"):
        ds.to_pandas(["zz"], date_range=(None, None))
    with pytest.raises(cf.NoTimeColumnError):
        ds.to_pandas(date_range=("2026-01-01", None))
    with pytest.raises(cf.NoTimeColumnError):
        ds.last()
    with pytest.raises(cf.NoTimeColumnError):
        list(ds.iter_chunks(date_range=("2026-01-01", None)))


def test_where_is_a_local_filter(client, world):
    ds = client.open("sensors")
    if client is world["local"]:
        assert len(ds.to_pandas(where=pc.field("x") > 0)) > 0
        return
    for read in (ds.to_pandas, ds.to_arrow, ds.to_batches):
        with pytest.raises(cf.InvalidArgumentError, match=r"where=\.\.\.\) is not served"):
            read(where=pc.field("x") > 0)
    with pytest.raises(cf.InvalidArgumentError, match="is not served"):
        list(ds.iter_chunks(where=pc.field("x") > 0))


def test_bad_ids(client):
    for bad in ("a/b", "", "..", "a\x01b"):
        with pytest.raises(cf.InvalidDatasetIdError):
            client.open(bad)
    with pytest.raises(cf.DatasetNotFoundError, match="no complete dataset 'nope'"):
        client.open("nope")


def test_a_corrupt_chunk_stops_a_stream_with_the_same_error(client):
    ds = client.open("fragile")
    key = ds.chunks["key"][2]
    reader = ds.to_batches()
    assert reader.read_next_batch().num_rows == 100  # the chunks before it are served
    assert reader.read_next_batch().num_rows == 100
    with pytest.raises(cf.ChunkCorruptionError) as err:
        reader.read_next_batch()
    assert (err.value.dataset, err.value.chunk, err.value.key) == ("fragile", 2, key)
    for read in (ds.to_arrow, ds.to_pandas, lambda: list(ds.iter_chunks())):
        with pytest.raises(cf.ChunkCorruptionError, match="'fragile'"):
            read()
    with pytest.raises(cf.ChunkCorruptionError):
        ds.get(250)
    assert ds.get(450, "x") == 450


# -- versions ---------------------------------------------------------------------------------

def test_a_version_reads_as_it_was_committed(client, world):
    every = world["every"]
    old = client.open("every", version=1)
    local = world["local"].open("every", version=1)
    assert old.version == 1 and old.read_only is True and len(old) == 1_500
    assert old.meta == local.meta and old.chunk_metas == local.chunk_metas
    pd.testing.assert_frame_equal(old.to_pandas(), every.iloc[:1_500])
    pd.testing.assert_series_equal(old.get(-1), every.iloc[1_499].rename(1_499))
    pd.testing.assert_frame_equal(old.get_many([3, -1]), local.get_many([3, -1]))
    pd.testing.assert_frame_equal(old.slice(1_400, None), local.slice(1_400, None))
    assert old.to_arrow(["i"]).equals(local.to_arrow(["i"]))
    pd.testing.assert_frame_equal(old.versions(), local.versions())
    with pytest.raises(IndexError, match="out of range"):
        old.get(1_500)
    with pytest.raises(cf.InvalidArgumentError, match="current version only"):
        old.last()
    assert client.open("every", version=np.int64(2)).version == 2  # numpy integers too
    assert len(client.open("every")) == ROWS  # the current version is still served


def test_as_of_opens_the_version_current_then(client, world):
    then = pd.Timestamp(world["before"], unit="s", tz="UTC").floor("us")
    for as_of in (then, then.isoformat(), then.to_pydatetime()):
        ds = client.open("every", as_of=as_of)
        assert ds.version == 1 and ds.read_only and len(ds) == 1_500
    assert client.open("every", as_of=pd.Timestamp.now(tz="UTC")).version == 2


def test_bad_versions(client):
    for bad in (99, 0, -1, 2**63, np.int64(99)):
        with pytest.raises(cf.VersionNotFoundError, match="'every'"):
            client.open("every", version=bad)
    with pytest.raises(cf.VersionNotFoundError):
        client.open("every", as_of="2000-01-01")
    for bad in ("1", 1.5, True):
        with pytest.raises(cf.InvalidArgumentError, match="version must be an integer"):
            client.open("every", version=bad)
    with pytest.raises(cf.InvalidArgumentError, match="not both"):
        client.open("every", version=1, as_of="2026-01-01")
    with pytest.raises(cf.DatasetNotFoundError):
        client.open("nope", version=1)


# -- the Arrow PyCapsule stream: DuckDB, Polars and pyarrow read a handle directly --------------

def test_pyarrow_reads_the_stream_chunk_by_chunk(client, world):
    ds, local = client.open("every"), world["local"].open("every")
    assert pa.table(ds).equals(local.to_arrow(), check_metadata=True)
    reader = pa.RecordBatchReader.from_stream(ds)
    assert reader.schema.equals(local.schema, check_metadata=True)
    assert [b.num_rows for b in reader] == [c.rows for c in local.chunk_metas]
    pd.testing.assert_frame_equal(pa.table(ds).to_pandas(), world["every"])
    # what to_batches() returns is a stream too
    assert pa.table(ds.to_batches(["c", "tz"])).equals(local.to_arrow(["c", "tz"]))


def test_the_stream_reads_a_chunk_when_it_is_asked_for(world):
    ds = world["local"].open("long")
    before = ds.cache_info()["fetches"]
    reader = pa.RecordBatchReader.from_stream(ds)
    first = reader.read_next_batch()
    assert first.num_rows == 1_000 and first.column("x")[0].as_py() == 0
    fetched = ds.cache_info()["fetches"] - before
    assert 1 <= fetched <= 4, fetched  # the chunk read and a few ahead, not 20
    assert sum(b.num_rows for b in reader) == 19_000


def test_duckdb_reads_a_handle_by_name(client, world):
    duckdb = pytest.importorskip("duckdb")
    ds, every = client.open("every"), world["every"]  # noqa: F841 - duckdb finds it by name
    got = duckdb.sql("select c, count(*) as n, sum(i) as total from ds group by c").df()
    want = every.groupby("c", observed=True).agg(n=("i", "size"), total=("i", "sum"))
    assert {str(c): (int(n), int(t)) for c, n, t in zip(got.c, got.n, got.total, strict=True)} \
        == {str(c): (int(n), int(t)) for c, n, t in zip(want.index, want.n, want.total,
                                                          strict=True)}
    assert duckdb.sql("select count(*) from ds where s is null").fetchall() == [
        (every.s.isna().sum(),)]
    assert duckdb.sql("select max(tz) from ds").fetchall() == [(every.tz.max().to_pydatetime(),)]


def test_polars_reads_a_handle(client, world):
    pl = pytest.importorskip("polars")
    ds, local = client.open("every"), world["local"].open("every")
    want = pl.from_arrow(local.to_arrow())
    assert pl.DataFrame(ds).equals(want) and pl.from_arrow(ds.to_batches()).equals(want)
    assert pl.DataFrame(ds)["ni"].null_count() == world["every"]["ni"].isna().sum()
    # polars reads any other stream as a Series of structs: its rows
    assert pl.from_arrow(ds).struct.unnest().equals(want)


def test_a_requested_schema_projects_and_casts(client, world):
    ds, every = client.open("every"), world["every"]
    asked = pa.schema([("f", pa.float32()), ("i", pa.int32())])
    table = pa.RecordBatchReader.from_stream(ds, schema=asked).read_all()
    assert table.schema.remove_metadata().equals(asked)
    assert table.column("i").to_pylist() == every["i"].tolist()
    same = pa.RecordBatchReader.from_stream(ds, schema=ds.schema).read_all()
    assert same.equals(ds.to_arrow(), check_metadata=True)
    # to_batches()'s reader honours one too (pyarrow casts it)
    got = pa.RecordBatchReader.from_stream(ds.to_batches(["i"]),
                                           schema=pa.schema([("i", pa.float64())])).read_all()
    assert got.column("i").to_pylist() == [float(v) for v in every["i"]]


def test_a_requested_schema_it_cannot_give_is_a_clear_error(client):
    ds = client.open("every")
    for asked, match in (
        (pa.schema([("zz", pa.int64())]), r"names \['zz'\], which it has no column of"),
        (pa.schema([("i", pa.int64()), ("i", pa.int64())]), "names a column twice"),
        (pa.schema([("tz", pa.list_(pa.int8()))]), r"column 'tz' .* no cast .* list<item: int8>"),
    ):
        with pytest.raises(cf.InvalidArgumentError, match=match):
            pa.RecordBatchReader.from_stream(ds, schema=asked)
    with pytest.raises((pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError)):
        pa.RecordBatchReader.from_stream(ds.to_batches(["tz"]),
                                         schema=pa.schema([("tz", pa.list_(pa.int8()))]))
