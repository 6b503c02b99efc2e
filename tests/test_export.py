"""export.py: formats, filters, atomic destinations (local and S3), streaming."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from frames import all_dtypes

import chunkframe.export.writer as export_mod
from chunkframe.core.jsonvalues import iso_text, jsonable
from chunkframe.export.writer import FORMATS, export_dataset, infer_format
from chunkframe.frontends.cli_output import records

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"


def rich_frame(n: int = 10_000) -> pd.DataFrame:
    """Many pandas dtypes, with nulls: what a Parquet/Arrow export must bring back exactly."""
    rng = np.random.default_rng(3)
    df = pd.DataFrame({
        "time": pd.date_range("2026-01-01", periods=n, freq="37s", tz="UTC"),
        "device": pd.Categorical(rng.choice(["a", "b", "c", "d"], n), categories=list("dcbaz")),
        "x": rng.normal(size=n),
        "count": pd.array(rng.integers(0, 100, n), dtype="Int64"),
        "flag": rng.random(n) < 0.5,
        "label": rng.choice(["ok", "warn", None], n),
        "naive": pd.date_range("2025-06-01", periods=n, freq="h"),
    })
    df.loc[rng.random(n) < 0.05, "x"] = np.nan
    df.loc[rng.random(n) < 0.05, "count"] = pd.NA
    return df


@pytest.fixture
def rich(client):
    return client.ingest(rich_frame(), "rich", chunk_rows=1_024, time_column="time",
                         device_column="device", progress=False)


@pytest.fixture
def sensors(client):
    return client.ingest(str(SAMPLES / "sensors.parquet"), "sensors", chunk_rows=4_096,
                         time_column="time", device_column="sensor", progress=False)


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.rglob("*") if p.name.endswith(".partial"))


# -- formats ----------------------------------------------------------------------------------

def test_infer_format():
    assert infer_format("a/b.parquet") == "parquet"
    assert infer_format("b.PQ") == "parquet"
    assert infer_format("s3://bucket/x.csv") == "csv"
    assert infer_format("x.feather") == "arrow"
    assert infer_format("x.ndjson") == "jsonl"
    assert infer_format("x.data", "CSV") == "csv"
    with pytest.raises(ValueError, match="parquet.*csv.*arrow.*jsonl"):
        infer_format("x.txt")
    with pytest.raises(ValueError, match="unknown export format 'xlsx'"):
        infer_format("x.parquet", "xlsx")
    assert set(FORMATS) == {"parquet", "csv", "arrow", "jsonl"}


def test_parquet_round_trip_keeps_pandas_dtypes(rich, tmp_path):
    dest = tmp_path / "out" / "rich.parquet"  # the parent is made
    assert rich.export(str(dest), parents=True) == str(dest)
    back = pd.read_parquet(dest)
    pd.testing.assert_frame_equal(back, rich.to_pandas().reset_index(drop=True))
    assert back["device"].cat.categories.tolist() == list("dcbaz")  # unused category kept
    assert pq.ParquetFile(dest).num_row_groups == rich.meta.chunks  # streamed: one per chunk
    assert leftovers(tmp_path) == []


def test_arrow_round_trip(rich, tmp_path):
    dest = rich.export(str(tmp_path / "rich.arrow"))
    back = pa.ipc.open_file(dest).read_all().to_pandas()
    pd.testing.assert_frame_equal(back, rich.to_pandas().reset_index(drop=True))


def test_arrow_unifies_dictionaries_that_differ_between_chunks(client, tmp_path):
    frames = [pd.DataFrame({"k": pd.Categorical(list("ab") * 5), "v": range(10)}),
              pd.DataFrame({"k": pd.Categorical(list("cb") * 5), "v": range(10, 20)}),
              pd.DataFrame({"k": pd.Categorical(list("ba") * 5), "v": range(20, 30)})]
    ds = client.ingest(frames, "dicts", chunk_rows=10, progress=False)
    dest = ds.export(str(tmp_path / "d.arrow"))
    back = pa.ipc.open_file(dest).read_all()
    assert back.column("k").to_pylist() == ds.to_pandas()["k"].astype(str).tolist()
    assert back.column("v").to_pylist() == list(range(30))


def test_csv_and_jsonl_hold_the_values(sensors, tmp_path):
    df = sensors.to_pandas().reset_index(drop=True)
    csv = pd.read_csv(sensors.export(str(tmp_path / "s.csv")), parse_dates=["time"])
    csv["time"] = csv["time"].dt.as_unit(df["time"].dt.unit)
    pd.testing.assert_frame_equal(csv, df, check_dtype=False)
    lines = Path(sensors.export(str(tmp_path / "s.jsonl"))).read_text().splitlines()
    assert len(lines) == len(df)
    first = json.loads(lines[0])
    assert first["sensor"] == df["sensor"][0] and first["battery"] == df["battery"][0]
    assert pd.Timestamp(first["time"]) == df["time"][0]
    nulls = df.index[df["temperature"].isna()][0]
    assert json.loads(lines[nulls])["temperature"] is None


def test_jsonl_writes_times_as_get_json_does(client, tmp_path):
    """One timestamp format: a JSON lines export and ``chunkframe get --json`` (records) write
    every time, date and duration the same, the column's own UTC offset kept."""
    df = all_dtypes(300).assign(d=lambda x: x["t"].dt.date)
    ds = client.ingest(df, "iso", chunk_rows=100, progress=False)
    lines = [json.loads(line) for line in
             Path(ds.export(str(tmp_path / "iso.jsonl"))).read_text().splitlines()]
    shown = records(ds.get_many(range(300)))
    for c in ("t", "tz", "td", "d"):
        assert [row[c] for row in lines] == [row[c] for row in shown], c
    assert lines[0]["tz"].endswith("+01:00") and not lines[0]["t"].endswith("Z")


@pytest.mark.parametrize("tz", [None, "UTC", "Europe/Paris", "America/St_Johns"])
@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_iso_text_is_jsonable_for_a_whole_column(tz, unit):
    times = pd.Series(pd.to_datetime(
        ["2026-01-01 00:00:00.123", "2026-07-01 00:00:00.000001", "2026-01-01 00:00:00.000000001",
         "2026-01-01", "1969-12-31 23:59:59.5", "1900-03-01 12:34:56.789", None],
        format="mixed"))
    if tz is not None:
        times = times.dt.tz_localize("UTC").dt.tz_convert(tz)  # 1900 Paris: +00:09:21
    times = times.dt.as_unit(unit)
    assert iso_text(pa.array(times)).to_pylist() == [jsonable(v) for v in times]
    durations = pd.Series(pd.to_timedelta([1.5, None, -3_600.25], unit="s"))
    assert iso_text(pa.array(durations)).to_pylist() == [jsonable(v) for v in durations]


def test_format_argument_overrides_the_extension(sensors, tmp_path):
    dest = sensors.export(str(tmp_path / "s.data"), format="parquet", columns=["battery"])
    assert pd.read_parquet(dest)["battery"].tolist() == sensors.to_pandas()["battery"].tolist()


def test_unknown_extension_is_a_value_error_and_writes_nothing(sensors, tmp_path):
    with pytest.raises(ValueError, match="parquet"):
        sensors.export(str(tmp_path / "s.txt"))
    assert not (tmp_path / "s.txt").exists() and leftovers(tmp_path) == []


def test_csv_source_round_trips_to_parquet_and_csv(client, tmp_path):
    src = SAMPLES / "sensors.csv"
    ds = client.ingest(str(src), "from_csv", chunk_rows=5_000, progress=False)
    source = pacsv.read_csv(src)  # the source as Arrow reads it (same types as the ingest)
    as_parquet = pq.read_table(ds.export(str(tmp_path / "o.parquet")))
    # Parquet has no seconds unit: timestamp[s] comes back as [ms], values unchanged
    assert as_parquet.schema.field("time").type == pa.timestamp("ms", tz="UTC")
    assert as_parquet.cast(source.schema).equals(source)
    as_csv = pacsv.read_csv(ds.export(str(tmp_path / "o.csv")))
    assert as_csv.equals(source)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "o.csv"), pd.read_csv(src).assign(
        time=lambda d: d["time"].str.replace("T", " ")))


# -- selection and filters --------------------------------------------------------------------

def test_columns_and_serial_number_range(sensors, tmp_path):
    df = sensors.to_pandas()
    dest = sensors.export(str(tmp_path / "a.parquet"), columns=["status", "time"],
                          start=4_000, stop=9_000)
    pd.testing.assert_frame_equal(pd.read_parquet(dest),
                                  df[["status", "time"]].iloc[4_000:9_000].reset_index(drop=True))
    dest = sensors.export(str(tmp_path / "b.parquet"), start=-10)
    assert len(pd.read_parquet(dest)) == 10
    with pytest.raises(KeyError, match="no column 'nope'"):
        sensors.export(str(tmp_path / "c.parquet"), columns=["nope"])
    assert not (tmp_path / "c.parquet").exists()


def test_device_and_time_filters_inclusive(sensors, tmp_path):
    df = sensors.to_pandas().reset_index(drop=True)
    since, until = df["time"][10_000], df["time"][20_000]  # bounds on actual row times
    want = df[df["sensor"].isin(["sensor-03", "sensor-07"])
              & (df["time"] >= since) & (df["time"] <= until)].reset_index(drop=True)
    result = export_dataset(sensors._client.reader, sensors.id, str(tmp_path / "f.parquet"),
                            device=["sensor-03", "sensor-07"], date_range=(since, until))
    pd.testing.assert_frame_equal(pd.read_parquet(result.dest), want)
    assert result.rows == len(want)
    assert result.chunks < sensors.meta.chunks  # chunk time statistics skipped the rest

    # bounds as text; a naive time is read in the column's time zone (UTC here)
    got = pd.read_parquet(sensors.export(str(tmp_path / "g.parquet"), device="sensor-03",
                                 date_range=("2026-01-05", "2026-01-05 23:59:59")))
    want = df[(df["sensor"] == "sensor-03") & (df["time"] >= "2026-01-05")
              & (df["time"] <= "2026-01-05 23:59:59Z")].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want)


def test_filtered_pieces_are_gathered_into_chunk_sized_row_groups(sensors, tmp_path):
    result = export_dataset(sensors._client.reader, sensors.id, str(tmp_path / "d.parquet"),
                            device="sensor-03")
    assert result.chunks == sensors.meta.chunks and result.rows < 4_096
    assert pq.ParquetFile(result.dest).num_row_groups == 1
    dest = sensors.export(str(tmp_path / "r.parquet"), start=100)
    sizes = [pq.ParquetFile(dest).metadata.row_group(i).num_rows
             for i in range(pq.ParquetFile(dest).num_row_groups)]
    assert max(sizes) <= 4_096 and sum(sizes) == len(sensors) - 100


def test_dictionary_encoding_only_where_it_pays(rich, tmp_path):
    meta = pq.ParquetFile(rich.export(str(tmp_path / "r.parquet"))).metadata.row_group(0)
    encodings = {meta.column(i).path_in_schema: meta.column(i).encodings
                 for i in range(meta.num_columns)}
    assert "RLE_DICTIONARY" in encodings["device"] and "RLE_DICTIONARY" in encodings["label"]
    assert "RLE_DICTIONARY" not in encodings["x"]  # unique floats: plain


def test_filter_matching_nothing_writes_an_empty_file(sensors, tmp_path):
    dest = sensors.export(str(tmp_path / "e.parquet"), device="no-such-sensor")
    back = pd.read_parquet(dest)
    assert len(back) == 0 and list(back.columns) == sensors.columns


def test_filters_need_their_columns(client, tmp_path):
    ds = client.ingest(pd.DataFrame({"v": range(10)}), "plain", progress=False)
    with pytest.raises(ValueError, match="no device column"):
        ds.export(str(tmp_path / "x.parquet"), device="a")
    with pytest.raises(ValueError, match="no time column"):
        ds.export(str(tmp_path / "x.parquet"), date_range=("2026-01-01", None))
    with pytest.raises(ValueError, match="not a time"):
        client.ingest(rich_frame(50), "r2", time_column="time", progress=False).export(
            str(tmp_path / "x.parquet"), date_range=("not a date", None))
    assert not (tmp_path / "x.parquet").exists()


def test_every_time_operation_without_a_time_column_raises_one_error(client, tmp_path):
    """Last values, deletes, resets, time filters of exports and series.chunk.last() of a
    dataset without a time column all raise NoTimeColumnError, with the same message start
    and the same hint (re-ingest with time_column=...), plus each one's own alternative."""
    from chunkframe import NoTimeColumnError, SchemaMismatchError

    ds = client.ingest(pd.DataFrame({"v": range(10)}), "plain", progress=False)
    calls = {
        "last": ds.last, "reset_last": ds.reset_last,
        "delete": lambda: ds.delete(date_range=("2026-01-01", None)),
        "export": lambda: ds.export(str(tmp_path / "x.csv"), date_range=(None, 5)),
        "series.chunk.last": lambda: ds.slice(0, 5)["v"].chunk.last(),
    }
    for name, call in calls.items():
        with pytest.raises(NoTimeColumnError) as info:
            call()
        err = info.value
        assert isinstance(err, SchemaMismatchError) and isinstance(err, ValueError), name
        assert err.dataset == "plain", name
        assert str(err).startswith("dataset 'plain' has no time column, so "), name
        assert "re-ingest it with time_column='...' (mode='overwrite')" in str(err), name
    assert "start='...' and stop='...'" in str(pytest.raises(
        NoTimeColumnError, calls["export"]).value)  # export's other way: serial numbers
    assert not (tmp_path / "x.csv").exists()


def test_integer_time_column(client, tmp_path):
    df = pd.DataFrame({"t": np.arange(100) * 10, "dev": ["a", "b"] * 50, "v": np.arange(100.0)})
    ds = client.ingest(df, "ticks", chunk_rows=16, time_column="t", device_column="dev",
                       progress=False)
    got = pd.read_parquet(ds.export(str(tmp_path / "t.parquet"), date_range=(200, "400"),
                                    device="a"))
    assert got["t"].tolist() == list(range(200, 401, 20))


# -- streaming --------------------------------------------------------------------------------

def test_export_streams_without_filling_the_chunk_cache(sensors, tmp_path):
    sensors._client.reader.clear()
    before = sensors._client.reader.fetches
    sensors.export(str(tmp_path / "s.parquet"))
    info = sensors.cache_info()
    assert info["chunks"] == 0  # uncached fetches: a scan does not evict hot chunks
    assert sensors._client.reader.fetches - before == sensors.meta.chunks


def test_export_holds_at_most_two_chunks(sensors, tmp_path, monkeypatch):
    """The writer sees chunk k while chunk k+1 is fetched; nothing else is held."""
    fetched, written, peak = [0], [0], [0]
    real_write = export_mod._ParquetWriter.write

    def write(self, table):
        real_write(self, table)
        written[0] += table.num_rows

    monkeypatch.setattr(export_mod._ParquetWriter, "write", write)
    reader = sensors._client.reader
    reader.clear()
    real_fetch = type(reader)._fetch
    rows = sensors.meta.chunk_rows

    def fetch(self, snap, i, columns=None):
        fetched[0] += 1
        # chunks fetched and not yet written: the one being written and the next
        peak[0] = max(peak[0], fetched[0] - written[0] // rows)
        return real_fetch(self, snap, i, columns)

    monkeypatch.setattr(type(reader), "_fetch", fetch)
    sensors.export(str(tmp_path / "s.parquet"))
    assert fetched[0] == sensors.meta.chunks
    assert peak[0] <= 2


# -- atomic destination -----------------------------------------------------------------------

def test_failed_export_leaves_nothing_and_keeps_the_old_file(sensors, tmp_path, monkeypatch):
    dest = tmp_path / "s.parquet"
    dest.write_bytes(b"previous export")
    calls = [0]
    real = export_mod._ParquetWriter.write

    def failing(self, table):
        calls[0] += 1
        if calls[0] == 3:
            raise pa.ArrowInvalid("disk on fire")
        real(self, table)

    monkeypatch.setattr(export_mod._ParquetWriter, "write", failing)
    with pytest.raises(pa.ArrowInvalid, match="disk on fire"):
        sensors.export(str(dest))
    assert dest.read_bytes() == b"previous export"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_interrupted_export_leaves_no_file(sensors, tmp_path, monkeypatch, fmt):
    real = export_mod._WRITERS[fmt].write
    calls = [0]

    def interrupted(self, table):
        calls[0] += 1
        if calls[0] == 2:
            raise KeyboardInterrupt
        real(self, table)

    monkeypatch.setattr(export_mod._WRITERS[fmt], "write", interrupted)
    dest = tmp_path / f"s{FORMATS[fmt][0]}"
    with pytest.raises(KeyboardInterrupt):
        sensors.export(str(dest))
    assert not dest.exists()
    assert leftovers(tmp_path) == []


def test_stale_partial_of_a_dead_process_is_swept(sensors, tmp_path):
    dest = tmp_path / "s.parquet"
    dead = f"{dest}.999999999-deadbeef.partial"  # no such pid
    alive = f"{dest}.{os.getppid()}-cafebabe.partial"  # a live process: left alone
    for p in (dead, alive):
        Path(p).write_bytes(b"torn")
    sensors.export(str(dest))
    assert not Path(dead).exists() and Path(alive).exists()
    assert len(pd.read_parquet(dest)) == len(sensors)


def test_directory_destination_gets_the_dataset_id(sensors, tmp_path):
    folder = tmp_path / "exports"
    folder.mkdir()
    assert sensors.export(str(folder)) == str(folder / "sensors.parquet")
    assert sensors.export(str(tmp_path / "new") + "/", format="csv", parents=True) == \
        str(tmp_path / "new" / "sensors.csv")


def test_missing_directory_is_refused_unless_parents(sensors, tmp_path):
    import chunkframe as cf

    dest = tmp_path / "no" / "such" / "s.parquet"
    for where in (dest, f"{tmp_path / 'no'}/"):  # a file in it, or the folder itself
        with pytest.raises(cf.PathNotFoundError) as info:
            sensors.export(str(where))
        assert isinstance(info.value, FileNotFoundError)
        assert "does not exist" in str(info.value) and "parents=True" in str(info.value)
    assert not (tmp_path / "no").exists()
    assert sensors.export(str(dest), parents=True) == str(dest)
    assert len(pd.read_parquet(dest)) == len(sensors)


def test_unwritable_destination(sensors, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(OSError):
        sensors.export(str(blocker / "sub" / "s.parquet"))
    assert blocker.read_text() == "not a directory"


def test_csv_refuses_nested_columns_before_writing(client, tmp_path):
    # an Arrow table: a DataFrame with list values cannot be fingerprinted by ingest (yet)
    ds = client.ingest(pa.table({"v": [[1, 2], [3]]}), "nested", progress=False)
    with pytest.raises(ValueError, match="nested values"):
        ds.export(str(tmp_path / "n.csv"))
    assert list(tmp_path.glob("n.csv*")) == []
    assert pd.read_parquet(ds.export(str(tmp_path / "n.parquet")))["v"].map(list).tolist() == \
        [[1, 2], [3]]


# -- S3 ---------------------------------------------------------------------------------------

def test_s3_export_against_moto(s3_client, s3_bucket, s3_options, monkeypatch):
    import s3fs

    df = rich_frame(5_000)
    ds = s3_client.ingest(df, "rich", chunk_rows=1_000, time_column="time",
                          device_column="device", progress=False)
    url = f"s3://{s3_bucket}/exports/rich.parquet"
    assert ds.export(url) == url  # storage options default to the client's
    fs = s3fs.S3FileSystem(**s3_options)
    with fs.open(url, "rb") as f:
        back = pd.read_parquet(f)
    pd.testing.assert_frame_equal(back, ds.to_pandas().reset_index(drop=True))

    csv_url = f"s3://{s3_bucket}/exports/a.csv"
    ds.export(csv_url, device="a", columns=["time", "x"], storage_options=s3_options)
    with fs.open(csv_url, "rb") as f:
        assert len(pd.read_csv(f)) == int((df["device"] == "a").sum())

    # a failing export leaves neither the object nor a temporary
    real = export_mod._ParquetWriter.write
    calls = [0]

    def failing(self, table):
        calls[0] += 1
        if calls[0] == 3:
            raise RuntimeError("network gone")
        real(self, table)

    monkeypatch.setattr(export_mod._ParquetWriter, "write", failing)
    with pytest.raises(RuntimeError, match="network gone"):
        ds.export(f"s3://{s3_bucket}/exports/failed.parquet")
    fs.invalidate_cache()
    names = sorted(p.rsplit("/", 1)[-1] for p in fs.find(f"{s3_bucket}/exports"))
    assert names == ["a.csv", "rich.parquet"]


def test_fractional_bounds_on_an_integer_time_column_are_refused(client, tmp_path):
    ds = client.ingest(pd.DataFrame({"t": [1, 2, 3], "v": [10, 20, 30]}), "int_time",
                       time_column="t", progress=False)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(ValueError, match="not an integer"):
        ds.export(str(out_dir / "e.csv"), date_range=(1.5, None))
    assert not list(out_dir.iterdir())
    out = ds.export(str(out_dir / "e.csv"), date_range=(2, None))
    assert pd.read_csv(out)["t"].tolist() == [2, 3]
