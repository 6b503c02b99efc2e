"""Versions and time travel (ingest, append, delete, overwrite, prune, written by another
process), and schema evolution on append, against pd.concat — real Redis, SQLite and files."""

from __future__ import annotations

import datetime as dt
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.ipc
import pytest
from clock import fake_clock
from frames import all_dtypes, sensors

import chunkframe as cf
from chunkframe.core.errors import (
    ChunkCorruptionError,
    DatasetLockedError,
    DatasetNotFoundError,
    InvalidArgumentError,
    LockLostError,
    ReadOnlyVersionError,
    SchemaMismatchError,
    VersionNotFoundError,
)
from chunkframe.read import reader as reader_mod
from chunkframe.read.reader import STALENESS_SECONDS
from chunkframe.storage.catalog import _MIGRATIONS, Catalog

WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    import pandas as pd
    import chunkframe as cf
    from frames import sensors
    client = cf.connect(store={store!r}, redis={redis!r}, catalog={catalog!r}, home={home!r},
                        prefix={prefix!r})
    step = sys.argv[1]
    if step == "ingest":
        client.ingest(sensors(1_000), "hist", chunk_rows=300, time_column="time",
                      device_column="dev", progress=False)
    elif step == "append":
        client.open("hist").append(sensors(500, seed=2).assign(
            time=pd.date_range("2026-02-01", periods=500, freq="s", tz="UTC")), progress=False)
    elif step == "delete":
        print(client.open("hist").delete("d1", "x", date_range=({lo!r}, {hi!r})).version)
    elif step == "overwrite":
        client.ingest(sensors(700, seed=5), "hist", mode="overwrite", chunk_rows=300,
                      time_column="time", device_column="dev", progress=False)
    elif step.startswith("prune"):
        print(client.open("hist").prune_versions(keep_last=int(step[5:]))["version"].tolist())
""")

LO, HI = "2026-01-01 00:01:00+00:00", "2026-01-01 00:05:00+00:00"


def _writer(client):
    """Run one write step in another process, as another user of the same backends would."""
    s = client.settings
    script = WRITER.format(tests=str(Path(__file__).resolve().parent), store=str(s.store_url),
                           redis=s.redis_url, catalog=s.catalog, home=str(s.home),
                           prefix=s.prefix, lo=LO, hi=HI)

    def run(step: str) -> str:
        done = subprocess.run([sys.executable, "-c", script, step], capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    return run


def _expected() -> dict[int, pd.DataFrame]:
    """Each version of "hist" as pandas computes it."""
    v1 = sensors(1_000)
    v2 = pd.concat([v1, sensors(500, seed=2).assign(
        time=pd.date_range("2026-02-01", periods=500, freq="s", tz="UTC"))], ignore_index=True)
    v3 = v2.copy()
    hit = (v3["dev"] == "d1") & (v3["time"] >= pd.Timestamp(LO)) & (v3["time"] <= pd.Timestamp(HI))
    assert hit.sum() > 0
    v3.loc[hit, "x"] = np.nan
    return {1: v1, 2: v2, 3: v3, 4: sensors(700, seed=5)}


def test_versions_written_by_another_process(client, monkeypatch):
    write = _writer(client)
    expected = _expected()
    write("ingest")
    ds = client.open("hist")
    write("append")
    assert write("delete") == "3"
    write("overwrite")
    versions = ds.versions()
    assert versions.columns.tolist() == ["version", "kind", "rows", "committed_at"]
    assert versions["version"].tolist() == [1, 2, 3, 4]
    assert versions["kind"].tolist() == ["ingest", "append", "delete", "overwrite"]
    assert versions["rows"].tolist() == [1_000, 1_500, 1_500, 700]
    assert versions["committed_at"].is_monotonic_increasing
    assert str(versions["committed_at"].dt.tz) == "UTC"
    for v, frame in expected.items():
        old = client.open("hist", version=v)
        assert old.read_only and old.version == v and len(old) == len(frame)
        pd.testing.assert_frame_equal(old.to_pandas(), frame)
        pd.testing.assert_frame_equal(old.slice(250, 320).reset_index(drop=True),
                                      frame.iloc[250:320].reset_index(drop=True))
        sns = [len(frame) - 1, 0, 299, 300, 7]
        got = old.get_many(sns)
        pd.testing.assert_frame_equal(got.reset_index(drop=True),
                                      frame.iloc[sns].reset_index(drop=True))
        pd.testing.assert_series_equal(old.get(301), frame.iloc[301], check_names=False)
    # the current handle sees version 4 once its staleness window is over
    fake_clock(monkeypatch, reader_mod).advance(STALENESS_SECONDS)
    assert ds.version == 4
    pd.testing.assert_frame_equal(ds.to_pandas(), expected[4])

    at_3 = client.open("hist", version=3)
    at_3.get(0)  # cached before the prune
    gen1 = f"hist/g{at_3.meta.generation:06d}/"
    assert any(k.startswith(gen1) for k in client.store.list("hist"))
    assert write("prune2") == "[1, 2]"  # version 3 still reads generation 1: its files stay
    assert ds.versions()["version"].tolist() == [3, 4]
    assert any(k.startswith(gen1) for k in client.store.list("hist"))
    pd.testing.assert_frame_equal(client.open("hist", version=3).to_pandas(), expected[3])
    with pytest.raises(VersionNotFoundError, match=r"no version 2: the versions it has are 3-4"):
        client.open("hist", version=2).to_pandas()
    assert write("prune1") == "[3]"
    assert not any(k.startswith(gen1) for k in client.store.list("hist"))
    with pytest.raises(VersionNotFoundError, match=r"no version 3: the versions it has are 4"):
        at_3.to_pandas()  # a handle opened before the prune: its files are gone
    with pytest.raises(VersionNotFoundError) as err:
        client.open("hist", version=3)
    assert isinstance(err.value, KeyError) and err.value.versions == [4]
    assert "cf.open('hist', version=v)" in str(err.value)
    pd.testing.assert_frame_equal(client.open("hist", version=4).to_pandas(), expected[4])


def test_as_of_at_and_between_commit_times(client):
    ds = client.ingest(sensors(100), "asof", chunk_rows=40, progress=False)
    time.sleep(0.01)
    ds.append(sensors(30, seed=1), progress=False)
    time.sleep(0.01)
    client.ingest(sensors(10, seed=2), "asof", mode="overwrite", progress=False)
    at = ds.versions()["committed_at"].tolist()
    for v, t in enumerate(at, start=1):
        assert client.open("asof", as_of=t).version == v  # exactly at a commit
        assert cf.open("asof", as_of=t + pd.Timedelta(microseconds=5)).version == v  # between
    assert len(client.open("asof", as_of=at[1] - pd.Timedelta(microseconds=1))) == 100
    naive = at[1].tz_localize(None).to_pydatetime()  # naive times are UTC
    assert client.open("asof", as_of=naive).version == 2
    assert client.open("asof", as_of=at[2].isoformat()).version == 3
    assert client.open("asof", as_of=at[0].tz_convert("Asia/Tokyo")).version == 1
    with pytest.raises(VersionNotFoundError, match=r"no version as of .*versions it has are 1-3"):
        client.open("asof", as_of=at[0] - pd.Timedelta(seconds=1))
    with pytest.raises(InvalidArgumentError, match="not a time"):
        client.open("asof", as_of="yesterday-ish")
    with pytest.raises(InvalidArgumentError, match="not both"):
        client.open("asof", version=1, as_of=at[0])
    with pytest.raises(InvalidArgumentError, match="must be an integer"):
        client.open("asof", version="1")
    with pytest.raises(VersionNotFoundError, match="no version 9: the versions it has are 1-3"):
        client.open("asof", version=9)
    with pytest.raises(DatasetNotFoundError, match="no complete dataset 'asoff'.*'asof'"):
        client.open("asoff", version=1)


def test_writes_are_refused_on_a_version_of_the_past(client, tmp_path):
    ds = client.ingest(sensors(200), "ro", chunk_rows=50, time_column="time",
                       device_column="dev", progress=False)
    ds.append(sensors(20, seed=1).assign(
        time=pd.date_range("2026-03-01", periods=20, freq="s", tz="UTC")), progress=False)
    old = client.open("ro", version=1)
    for call in (lambda: old.append(sensors(5)), lambda: old.delete("d1"),
                 lambda: old.reset_last(), lambda: old.prune_versions()):
        with pytest.raises(ReadOnlyVersionError, match="opened at version 1: a version of the "
                                                       r"past is read-only.*cf.open\('ro'\)"):
            call()
    with pytest.raises(InvalidArgumentError, match="current version only"):
        old.last()
    assert ds.versions()["version"].tolist() == [1, 2] and len(ds) == 220
    out = old.export(tmp_path / "ro1.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(out), sensors(200))
    assert "at version 1" in repr(old) and not ds.read_only


def test_prune_versions_failures_and_older_than(client):
    ds = client.ingest(sensors(100), "pr", chunk_rows=40, progress=False)
    ds.append(sensors(10, seed=1), progress=False)
    ds.append(sensors(10, seed=2), progress=False)
    for bad in (0, -1, True, 1.5, "2"):
        with pytest.raises(InvalidArgumentError, match="keep_last must be an integer >= 1"):
            ds.prune_versions(keep_last=bad)
    with pytest.raises(InvalidArgumentError, match="not a time"):
        ds.prune_versions(older_than="soon")
    assert ds.prune_versions(older_than=dt.timedelta(days=1)).empty  # all younger than that
    assert ds.versions()["version"].tolist() == [1, 2, 3]
    cutoff = ds.versions()["committed_at"].iloc[1]
    assert ds.prune_versions(older_than=cutoff)["version"].tolist() == [1]
    assert ds.prune_versions(keep_last=5).empty
    lock = client.lock("pr")
    try:
        with pytest.raises(DatasetLockedError):
            ds.prune_versions()
    finally:
        lock.release()
    pruned = ds.prune_versions()
    assert pruned.columns.tolist() == ["version", "kind", "rows", "committed_at"]
    assert pruned["version"].tolist() == [2]
    assert ds.versions()["version"].tolist() == [3]
    expected = pd.concat([sensors(100), sensors(10, seed=1), sensors(10, seed=2)],
                         ignore_index=True)
    pd.testing.assert_frame_equal(ds.to_pandas().astype({"dev": "str"}), expected)


def test_catalogs_without_versions_are_migrated_in_place(client, tmp_path):
    client.ingest(sensors(50), "old", progress=False).delete(columns="x")
    path = client.settings.catalog
    with sqlite3.connect(path) as db:  # as a catalog written before versions were recorded
        db.execute("DROP TABLE versions")
        db.execute("PRAGMA user_version=0")
    catalog = Catalog(path)
    table = catalog.versions("old")
    assert table[["version", "kind", "rows"]].values.tolist() == [[2, "ingest", 50]]
    assert Catalog(path).versions("old").equals(table)  # migrated once
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(_MIGRATIONS)
    migrated = cf.connect(store=client.settings.store_url, redis=client.settings.redis_url,
                          catalog=path, home=client.settings.home, prefix=client.settings.prefix)
    assert migrated.open("old", version=2).to_pandas()["x"].isna().all()


# -- schema evolution ---------------------------------------------------------------------------

def _concat(*frames: pd.DataFrame) -> pd.DataFrame:
    """pd.concat, with missing booleans as None: pandas' own Arrow conversion gives None for
    a null in an object column of booleans, concat gives NaN (both are ``isna``)."""
    out = pd.concat(frames, ignore_index=True)
    for name, col in out.items():
        if col.dtype == object and {type(v) for v in col.dropna()} <= {bool, np.bool_}:
            out[name] = col.astype(object).where(col.notna(), None)
    return out


def _reads_equal(ds: cf.Dataset, expected: pd.DataFrame) -> None:
    """Every read path of ``ds`` agrees with ``expected``."""
    pd.testing.assert_frame_equal(ds.to_pandas(), expected)
    n = len(expected)
    pd.testing.assert_frame_equal(ds.slice(n // 3, n - 5).reset_index(drop=True),
                                  expected.iloc[n // 3:n - 5].reset_index(drop=True))
    sns = np.random.default_rng(0).integers(0, n, 300)
    for _ in range(3):  # the third batch gathers from planes
        pd.testing.assert_frame_equal(ds.get_many(sns).reset_index(drop=True),
                                      expected.iloc[sns].reset_index(drop=True))
    for sn in (0, n - 1, n // 2):
        pd.testing.assert_series_equal(ds.get(sn), expected.iloc[sn], check_names=False)
    scanned = pd.concat(list(ds.iter_chunks())).reset_index(drop=True)
    pd.testing.assert_frame_equal(scanned, expected, check_dtype=False)


def test_evolve_adds_columns_of_every_dtype(client):
    full = all_dtypes(700)
    first = full.drop(columns=["i", "ni", "b", "c", "td"]).iloc[:400]
    ds = client.ingest(first, "grow", chunk_rows=128, progress=False)
    ds.append(full.iloc[400:], evolve=True, chunk_rows=128, progress=False)
    expected = _concat(first, full.iloc[400:])
    assert expected["i"].dtype == np.float64 and expected["ni"].dtype == "Int64"
    assert ds.columns == list(expected.columns)
    _reads_equal(ds, expected)
    assert client.state.meta("grow").arrow_schema.names == list(expected.columns)  # newest
    assert client.catalog.get("grow").arrow_schema.names == list(expected.columns)
    pd.testing.assert_frame_equal(client.open("grow", version=1).to_pandas(), first)
    client.reader.clear()  # a fresh reader conforms the chunks again
    _reads_equal(client.open("grow"), expected)


def test_evolve_with_columns_missing_from_the_appended_rows(client):
    full = all_dtypes(600, seed=3)
    ds = client.ingest(full.iloc[:300], "shrink", chunk_rows=100, progress=False)
    later = full.iloc[300:].drop(columns=["i", "s", "c", "tz"])
    ds.append(later, evolve=True, progress=False)
    _reads_equal(ds, _concat(full.iloc[:300], later))


@pytest.mark.parametrize(("old", "new"), [
    ("int64", "float64"), ("float64", "int64"), ("int32", "int64"), ("int64", "Int64"),
    ("Int64", "float64"), ("int64", "Float64"), ("float32", "float64"), ("uint8", "int8"),
    ("Int32", "Int64"),
])
def test_evolve_widens_as_pandas_would(client, old, new):
    a = pd.DataFrame({"k": np.arange(250), "v": pd.array(np.arange(250) % 7, dtype=old)})
    b = pd.DataFrame({"k": np.arange(250, 400), "v": pd.array(np.arange(150) % 5, dtype=new)})
    ds = client.ingest(a, "widen", chunk_rows=100, progress=False)
    cf.ingest(b, "widen", mode="append", evolve=True, chunk_rows=100, progress=False)
    expected = pd.concat([a, b], ignore_index=True)
    assert ds.to_pandas()["v"].dtype == expected["v"].dtype
    _reads_equal(ds, expected)
    assert [c.split(" ")[0] for c in ds.versions()["kind"]] == ["ingest", "append"]


@pytest.mark.parametrize("unit", ["ns", "ms", "s"])
def test_evolve_takes_a_lossless_time_unit_change_as_a_plain_append_does(client, unit):
    times = pd.date_range("2026-01-01", periods=300, freq="s")
    base = pd.DataFrame({"t": times.as_unit("us"), "d": pd.to_timedelta(np.arange(300), "s"),
                         "x": np.arange(300.0)})
    base["d"] = base["d"].astype("timedelta64[us]")
    later = pd.DataFrame({"t": (times[:50] + pd.Timedelta(days=1)).as_unit(unit),
                          "d": pd.to_timedelta(np.arange(50), "s").as_unit(unit),
                          "x": np.arange(50.0)})
    plain = client.ingest(base, "plain", chunk_rows=100, time_column="t", progress=False)
    plain.append(later, progress=False)
    ds = client.ingest(base, "units", chunk_rows=100, time_column="t", progress=False)
    ds.append(later, evolve=True, progress=False)  # a unit is not an evolution
    assert ds.schema == plain.schema and str(ds.schema.field("t").type) == "timestamp[us]"
    pd.testing.assert_frame_equal(ds.to_pandas(), plain.to_pandas())
    ds.append(later.assign(y=1.5), evolve=True, progress=False)  # with a new column too
    assert ds.columns == ["t", "d", "x", "y"] and str(ds.schema.field("d").type) == "duration[us]"
    assert ds.last(columns="y")["time"].iloc[0] == later["t"].iloc[-1]
    lossy = later.assign(t=later["t"].dt.as_unit("ns") + pd.Timedelta(1, "ns"))
    for evolve in (False, True):  # refused alike: nanoseconds a us column cannot hold
        with pytest.raises(SchemaMismatchError, match=r"'t'.*timestamp\[ns\].*timestamp\[us\]"):
            ds.append(lossy.assign(y=0.0), evolve=evolve, progress=False)


def test_evolve_refuses_what_pandas_would_not_widen(client):
    df = sensors(300)
    ds = client.ingest(df, "strict", chunk_rows=100, time_column="time", device_column="dev",
                       progress=False)
    bad = sensors(10, seed=1).assign(k=lambda d: d["k"].astype(str), x=lambda d: d["x"] > 0)
    with pytest.raises(SchemaMismatchError) as err:
        ds.append(bad, evolve=True)
    text = str(err.value)
    assert "cannot evolve the schema of dataset 'strict'" in text
    assert "'k' is int64 in the dataset but str in the appended data" in text
    assert "'x' is float64 in the dataset but bool in the appended data" in text
    assert "mode='overwrite'" in text
    with pytest.raises(SchemaMismatchError, match=r"'time' \(the dataset's time column\) is missing"):
        ds.append(sensors(10).drop(columns="time"), evolve=True)
    with pytest.raises(SchemaMismatchError, match=r"'dev' \(the dataset's device column\)"):
        ds.append(sensors(10).drop(columns="dev"), evolve=True)
    with pytest.raises(SchemaMismatchError, match=r"cannot append to dataset 'strict'.*"
                                                  r"unexpected \['extra'\].*evolve=True"):
        ds.append(sensors(10).assign(extra=1))  # without evolve: still a mismatch
    with pytest.raises(InvalidArgumentError, match="evolve must be True or False"):
        ds.append(sensors(10), evolve="yes")
    assert ds.versions()["version"].tolist() == [1]  # nothing was committed
    pd.testing.assert_frame_equal(ds.to_pandas(), df)


def test_evolved_dataset_keeps_last_values_and_deletes(client):
    df = sensors(400)
    ds = client.ingest(df, "lv", chunk_rows=150, time_column="time", device_column="dev",
                       progress=False)
    more = sensors(100, seed=4).assign(
        time=pd.date_range("2026-04-01", periods=100, freq="s", tz="UTC"),
        humidity=np.linspace(0, 1, 100), k=lambda d: d["k"].astype("float64"))
    ds.append(more, evolve=True, progress=False)
    last = ds.last(columns="humidity").set_index("device")
    expected = more.groupby("dev", observed=True).last()["humidity"]
    assert last["value"].to_dict() == expected.to_dict()
    ds.delete("d0", "humidity")
    read = ds.to_pandas()
    assert read.loc[read["dev"] == "d0", "humidity"].isna().all()
    assert read.loc[:399, "humidity"].isna().all() and read["k"].dtype == np.float64
    assert ds.versions()["kind"].tolist() == ["ingest", "append", "delete"]


def test_catalog_refuses_unknown_kinds_and_superseded_pruners(client):
    client.ingest(sensors(50), "fence", progress=False)
    meta = client.catalog.get("fence")
    chunks = client.catalog.chunks("fence", meta.generation)
    stale = client.lock("fence")
    stale.release()
    fresh = client.lock("fence")
    try:
        with pytest.raises(ValueError, match="kind='rewrite' is not one of"):
            client.catalog.commit(meta, chunks, fresh.fence, "rewrite")
        with pytest.raises(LockLostError, match="superseded"):
            client.catalog.prune("fence", [1], stale.fence)
        assert client.catalog.prune("fence", [1], fresh.fence) == []  # the current one stays
    finally:
        fresh.release()
    assert client.open("fence").versions()["version"].tolist() == [1]


def test_a_missing_file_of_a_kept_version_is_corruption(client):
    client.ingest(sensors(300), "gone", chunk_rows=100, progress=False)
    client.ingest(sensors(50, seed=1), "gone", mode="overwrite", progress=False)
    old = client.open("gone", version=1)
    client.store.delete(old.chunks["key"][1])
    with pytest.raises(ChunkCorruptionError, match="chunk 1 of dataset 'gone'.*missing"):
        old.to_pandas()
    pd.testing.assert_frame_equal(client.open("gone").to_pandas(), sensors(50, seed=1))


def test_evolved_dataset_exports_as_concat(client, tmp_path):
    full = all_dtypes(400, seed=7)
    first = full.drop(columns=["i", "c"]).iloc[:250]
    ds = client.ingest(first, "evx", chunk_rows=100, progress=False)
    ds.append(full.iloc[250:], evolve=True, progress=False)
    expected = _concat(first, full.iloc[250:])
    pd.testing.assert_frame_equal(pd.read_parquet(ds.export(tmp_path / "evx.parquet")), expected)
    out = ds.export(tmp_path / "evx.arrow", columns=["c", "i"])
    got = pa.ipc.open_file(out).read_all().to_pandas()
    pd.testing.assert_frame_equal(got, expected[["c", "i"]])


def test_evolve_from_a_damaged_first_chunk_fails_clearly(client):
    ds = client.ingest(sensors(300), "dmg", chunk_rows=100, progress=False)
    path = client.store.path(ds.chunks["key"][0])
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF
    with open(path, "wb") as f:
        f.write(data)
    with pytest.raises(ChunkCorruptionError, match="chunk 0 of dataset 'dmg'.*evolving"):
        ds.append(sensors(10, seed=1).drop(columns="dev"), evolve=True)  # needs dev's categories
    assert ds.versions()["version"].tolist() == [1]
