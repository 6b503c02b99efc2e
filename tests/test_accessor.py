"""df.chunk and series.chunk: binding, reads through bound and derived frames, failure modes."""

from __future__ import annotations

import pickle
import sqlite3

import numpy as np
import pandas as pd
import pytest
from frames import sensors

import chunkframe as cf
from chunkframe.core.config import resolve
from chunkframe.core.errors import (
    ChunkFrameError,
    ContextError,
    DatasetExistsError,
    DatasetNotFoundError,
    InvalidDatasetIdError,
)
from chunkframe.dataset import BINDING_ATTR
from chunkframe.frontends.accessor import ChunkFrameAccessor, ChunkSeriesAccessor

N, CHUNK = 2_000, 250


@pytest.fixture
def frame() -> pd.DataFrame:
    df = sensors(N)
    df.loc[df.index[-7:], "x"] = np.nan  # the latest values are null: last() must skip them
    return df


@pytest.fixture
def ds(client, frame):
    return client.ingest(frame, "acc", chunk_rows=CHUNK, time_column="time",
                         device_column="dev", progress=False)


@pytest.fixture
def plain(client):
    """A dataset without a time or device column."""
    return client.ingest(pd.DataFrame({"a": np.arange(500), "b": np.arange(500) * 0.5}),
                         "plain", chunk_rows=100, progress=False)


def expected_last(times: pd.Series, values: pd.Series) -> tuple:
    keep = values.notna().to_numpy()
    t, v = times[keep].reset_index(drop=True), values[keep].reset_index(drop=True)
    i = int(np.flatnonzero((t == t.max()).to_numpy())[-1])
    return t[i], v[i]


# -- registration and ingest ------------------------------------------------------------------

def test_accessors_are_registered_and_stateless(frame):
    assert "chunk" in pd.DataFrame._accessors and "chunk" in pd.Series._accessors
    assert isinstance(frame.chunk, ChunkFrameAccessor)
    assert isinstance(frame["x"].chunk, ChunkSeriesAccessor)
    assert frame.chunk is not frame.chunk  # pandas builds one per access: nothing cached
    assert not frame.chunk.is_bound


def test_ingest_binds_the_frame_and_returns_the_dataset(client, frame):
    got = frame.chunk.ingest("bound", chunk_rows=CHUNK, time_column="time", progress=False)
    assert isinstance(got, cf.Dataset) and got.id == "bound" and len(got) == N
    assert frame.attrs[BINDING_ATTR] == {"dataset": "bound", "client": client.token}
    assert frame.chunk.is_bound and frame.chunk.dataset.id == "bound"
    pd.testing.assert_series_equal(frame.chunk.get(1_234), frame.iloc[1_234])


def test_ingest_uses_the_default_client_unless_given_one(client, tmp_path, redis_server, frame):
    frame.chunk.ingest("default-one", progress=False)
    assert frame.attrs[BINDING_ATTR]["client"] == cf.default_client().token == client.token
    other = cf.Client(resolve(store=tmp_path / "other", redis=redis_server.url,
                                        catalog=tmp_path / "other.db", home=tmp_path,
                                        prefix=client.settings.prefix + "o"))
    second = frame.copy()
    second.chunk.ingest("elsewhere", client=other, progress=False)
    assert second.attrs[BINDING_ATTR]["client"] == other.token
    assert second.chunk.get(3, "k") == frame["k"].iloc[3]
    with pytest.raises(DatasetNotFoundError):
        client.open("elsewhere")  # it went to the other client's store, not the default


def test_failed_ingest_binds_nothing(client, frame):
    with pytest.raises(InvalidDatasetIdError):
        frame.chunk.ingest("a/b", progress=False)
    assert BINDING_ATTR not in frame.attrs
    frame.head(10).chunk.ingest("taken", progress=False)
    with pytest.raises(DatasetExistsError):
        frame.chunk.ingest("taken", progress=False)
    assert not frame.chunk.is_bound


# -- bound frames and what pandas does with the binding ---------------------------------------

def test_frames_read_from_a_dataset_come_bound(ds):
    binding = {"dataset": "acc", "client": ds._client.token}
    for df in (ds.slice(10, 20), ds.get_many([5, 1_999]), ds.to_pandas(),
               next(ds.iter_chunks())):
        assert df.attrs[BINDING_ATTR] == binding
        assert df.chunk.is_bound


DERIVED = {
    "filter": lambda df: df[df["k"] > 90],
    "copy": lambda df: df.copy(),
    "shallow copy": lambda df: df.copy(deep=False),
    "head": lambda df: df.head(3),
    "columns": lambda df: df[["x", "k"]],
    "loc": lambda df: df.loc[100:120],
    "iloc": lambda df: df.iloc[::50],
    "query": lambda df: df.query("k < 5"),
    "sort": lambda df: df.sort_values("x"),
    "assign": lambda df: df.assign(y=1),
    "reset_index": lambda df: df.reset_index(),
    "groupby": lambda df: df.groupby("dev", observed=True)[["x"]].mean(),
    "pickle": lambda df: pickle.loads(pickle.dumps(df)),
}


@pytest.mark.parametrize("op", list(DERIVED))
def test_derived_frames_still_reach_the_whole_dataset(ds, frame, op):
    sub = DERIVED[op](ds.slice(0, 400))
    assert sub.chunk.is_bound
    pd.testing.assert_series_equal(sub.chunk.get(1_999), frame.iloc[1_999])
    assert sub.chunk.get(1_500, "k") == frame["k"].iloc[1_500]


def test_a_column_of_a_bound_frame_is_bound(ds, frame):
    col = ds.slice(0, 100)["k"]
    assert col.chunk.is_bound and col.chunk.dataset.id == "acc"
    assert col.chunk.get(1_777) == frame["k"].iloc[1_777]
    assert col[col > 50].chunk.get(3) == frame["k"].iloc[3]


DROPPED = {
    "merge with an unbound frame": lambda df: df.merge(pd.DataFrame({"k": [1]}), on="k"),
    "concat with an unbound frame": lambda df: pd.concat([df, pd.DataFrame({"k": [1]})]),
    "DataFrame constructor": lambda df: pd.DataFrame(df),
    "rolling": lambda df: df[["x"]].rolling(3).mean(),
}


@pytest.mark.parametrize("op", list(DROPPED))
def test_operations_documented_to_drop_the_binding(ds, op):
    """The accessor module docstring lists these; this catches pandas changing its mind."""
    out = DROPPED[op](ds.slice(0, 50))
    assert not out.chunk.is_bound
    with pytest.raises(ChunkFrameError, match="not bound"):
        out.chunk.get(0)


def test_rebinding_by_attrs_update_restores_access(ds, frame):
    bound = ds.slice(0, 50)
    merged = bound.merge(pd.DataFrame({"k": [1, 2]}), on="k")
    merged.attrs.update(bound.attrs)
    assert merged.chunk.get(7, "k") == frame["k"].iloc[7]


def test_reads_tags_and_search_through_a_bound_frame(ds, frame):
    sub = ds.slice(0, 10)[lambda d: d["k"] >= 0]
    pd.testing.assert_frame_equal(sub.chunk.get_many([1_999, 3, 3]),
                                  ds.get_many([1_999, 3, 3]))
    picked = sub.chunk.get_many([8, 1_000], columns=["x"])
    assert list(picked.columns) == ["x"] and list(picked.index) == [8, 1_000]
    assert picked.chunk.is_bound
    sub.chunk.tag("owner", "ana, data team", keywords=["q3"])
    sub.chunk.tag("units", "celsius", type="DATA")
    tags = sub.chunk.tags()
    assert set(tags["key"]) == {"owner", "units"} and list(tags.columns) == ["type", "key", "value"]
    assert list(sub.chunk.tags(type="DATA")["key"]) == ["units"]
    assert list(sub.chunk.find("q3")["key"]) == ["owner"]
    assert list(ds.find("team")["key"]) == ["owner"]  # the dataset's own context
    assert sub.chunk.find("q3", type="DATA").empty


def test_frame_last_is_the_frames_own_as_series_last_is(client, ds, frame):
    whole = ds.to_pandas()
    pd.testing.assert_frame_equal(whole.chunk.last(), ds.last())  # all rows: the dataset's
    pd.testing.assert_frame_equal(whole.chunk.last(device=["d3", "d1"], columns=["s", "x"]),
                                  ds.last(device=["d3", "d1"], columns=["s", "x"]))
    sub = ds.slice(100, 900)
    own = client.ingest(frame.iloc[100:900], "own", chunk_rows=CHUNK, time_column="time",
                        device_column="dev", progress=False)
    pd.testing.assert_frame_equal(sub.chunk.last(), own.last())  # a slice: its own rows
    assert not sub.chunk.last().equals(ds.last())
    pd.testing.assert_frame_equal(sub.chunk.dataset.last(), ds.last())  # the stored ones
    hot = sub[sub["x"] > 0]  # filtered: its own rows again, and series.chunk.last() agrees
    got = hot.chunk.last(device="d1", columns="x")
    assert (got["time"].iloc[0], got["value"].iloc[0]) == hot["x"].chunk.last(device="d1")
    assert hot.chunk.last(device="no-such-device").empty
    doubled = sub.assign(x=sub["x"] * 2).chunk.last(columns="x")  # changed values: as given
    pd.testing.assert_series_equal(doubled["value"].astype(float),
                                   own.last(columns="x")["value"].astype(float) * 2,
                                   check_names=False)


# -- failure modes ------------------------------------------------------------------------------

UNBOUND_FRAME_CALLS = {
    "dataset": lambda a: a.dataset,
    "get": lambda a: a.get(0),
    "get_many": lambda a: a.get_many([0]),
    "last": lambda a: a.last(),
    "tag": lambda a: a.tag("k", "v"),
    "tags": lambda a: a.tags(),
    "find": lambda a: a.find("v"),
}


@pytest.mark.parametrize("method", list(UNBOUND_FRAME_CALLS))
def test_unbound_frame_says_how_to_bind(client, method):
    df = pd.DataFrame({"a": [1, 2]})
    with pytest.raises(ChunkFrameError) as info:
        UNBOUND_FRAME_CALLS[method](df.chunk)
    text = str(info.value)
    assert "not bound" in text and "df.chunk.ingest('name')" in text
    assert "cf.open('name').to_pandas()" in text
    if method != "dataset":
        assert f"df.chunk.{method}()" in text


@pytest.mark.parametrize("method", ["dataset", "get"])
def test_unbound_series_says_how_to_bind(client, method):
    s = pd.Series([1.0, 2.0], name="a")
    with pytest.raises(ChunkFrameError, match="not bound"):
        s.chunk.dataset if method == "dataset" else s.chunk.get(0)


@pytest.mark.parametrize("bad", ["acc", ["acc"], {"dataset": 3}, {"client": "x"},
                                 {"dataset": "acc", "client": 5}])
def test_malformed_binding_is_an_attribute_error_at_access(bad):
    df = pd.DataFrame({"a": [1]})
    df.attrs[BINDING_ATTR] = bad
    with pytest.raises(AttributeError, match="not a chunkframe binding"):
        df.chunk  # noqa: B018
    assert not hasattr(df, "chunk")
    df.attrs.pop(BINDING_ATTR)
    assert not df.chunk.is_bound


def test_binding_to_a_missing_dataset(client):
    df = pd.DataFrame({"a": [1]})
    df.attrs[BINDING_ATTR] = {"dataset": "gone", "client": client.token}
    assert df.chunk.is_bound
    with pytest.raises(DatasetNotFoundError, match="gone"):
        df.chunk.get(0)


def test_binding_with_an_unsafe_id_is_refused(client):
    df = pd.DataFrame({"a": [1]})
    df.attrs[BINDING_ATTR] = {"dataset": "../etc", "client": client.token}
    with pytest.raises(InvalidDatasetIdError):
        df.chunk.get(0)


def test_binding_from_a_dead_client_falls_back_to_the_default(ds, frame):
    """A frame read back from parquet or pickle in another session: its client is gone."""
    df = ds.slice(0, 5)
    df.attrs[BINDING_ATTR] = {"dataset": "acc", "client": "0" * 32}
    assert df.chunk.get(42, "k") == frame["k"].iloc[42]
    df.attrs[BINDING_ATTR] = {"dataset": "nowhere", "client": "0" * 32}
    with pytest.raises(DatasetNotFoundError, match=r"cf\.connect"):
        df.chunk.get(0)


def test_bound_read_errors_are_the_datasets(ds):
    sub = ds.slice(0, 5)
    with pytest.raises(IndexError, match="out of range"):
        sub.chunk.get(N)
    with pytest.raises(TypeError, match="integer"):
        sub.chunk.get("3")
    with pytest.raises(KeyError, match="no column"):
        sub.chunk.get(0, "nope")
    with pytest.raises(IndexError):
        sub.chunk.get_many([0, N + 5])
    with pytest.raises(KeyError):
        sub.chunk.get_many([0], columns=["nope"])
    with pytest.raises(ContextError):
        sub.chunk.find("")
    with pytest.raises(ContextError):
        sub.chunk.tag("k", "v", type="NOPE")
    with pytest.raises(ContextError):
        sub.chunk.tags(type="NOPE")
    with pytest.raises(ContextError):
        sub.chunk.tag("", "v")


def test_bound_last_errors_are_the_datasets(ds, plain):
    with pytest.raises(KeyError, match="dataset 'acc' has no measurement 'nope'"):
        ds.slice(0, 5).chunk.last(columns=["nope"])
    with pytest.raises(KeyError, match="this frame has no measurement 'k'"):
        ds.slice(0, 5)[["x"]].chunk.last(columns="k")
    with pytest.raises(ChunkFrameError, match="not the dataset's serial numbers"):
        ds.slice(0, 5).reset_index(drop=True).chunk.last()
    with pytest.raises(cf.NoTimeColumnError):
        plain.slice(0, 5).chunk.last()


def test_the_dataset_deleted_under_a_bound_frame(client, ds):
    sub = ds.slice(0, 5)
    with sqlite3.connect(client.settings.catalog) as db:  # gone from the record, as if never made
        db.execute("DELETE FROM chunks WHERE dataset='acc'")
        db.execute("DELETE FROM datasets WHERE id='acc'")
    client.redis.delete(*client.redis.keys(f"{client.settings.prefix}:{{acc}}:*"))
    client.reader.clear()
    with pytest.raises(DatasetNotFoundError, match="acc"):
        sub.chunk.get(0)


# -- series.chunk.last -------------------------------------------------------------------------

def test_series_last_with_a_datetime_index(frame):
    s = frame.set_index("time")["x"]
    assert s.chunk.last() == expected_last(frame["time"], frame["x"])
    assert s.chunk.last()[0] == frame["time"].iloc[-8]  # the last 7 are null


def test_series_last_uses_time_not_position():
    idx = pd.DatetimeIndex(["2026-01-03", "2026-01-01", "2026-01-02"], tz="UTC")
    s = pd.Series([3.0, 1.0, 2.0], index=idx)
    assert s.chunk.last() == (pd.Timestamp("2026-01-03", tz="UTC"), 3.0)


def test_series_last_of_only_nulls_is_none():
    s = pd.Series([np.nan, np.nan], index=pd.date_range("2026-01-01", periods=2))
    assert s.chunk.last() == (None, None)


def test_series_last_with_a_datetime_index_refuses_device(frame):
    with pytest.raises(ValueError, match="device"):
        frame.set_index("time")["x"].chunk.last(device="d1")


def test_series_last_of_a_filtered_bound_column(ds, frame):
    part = ds.slice(0, 1_500)
    s = part[part["k"] > 10]["x"]
    want = expected_last(frame["time"][s.index], frame["x"][s.index])
    assert s.chunk.last() == want


def test_series_last_of_a_bound_column_skips_nulls_and_picks_a_device(ds, frame):
    s = ds.slice(1_000, N)["x"]
    tail = frame.iloc[1_000:]
    assert s.chunk.last() == expected_last(tail["time"], tail["x"])
    d3 = tail[tail["dev"] == "d3"]
    assert s.chunk.last(device="d3") == expected_last(d3["time"], d3["x"])
    assert s.chunk.last(device="no-such-device") == (None, None)


def test_series_last_of_a_whole_column(ds, frame):
    s = ds.to_pandas()["x"]
    assert s.chunk.last() == expected_last(frame["time"], frame["x"])
    d3 = frame[frame["dev"] == "d3"]
    assert s.chunk.last(device="d3") == expected_last(d3["time"], d3["x"])


def test_series_last_answers_from_the_series_not_the_stored_data(ds, frame):
    s = ds.to_pandas()["x"]
    assert (s * 10).chunk.last() == expected_last(frame["time"], frame["x"] * 10)
    only = s.where(frame["dev"] == "d3")  # same length and index, other values
    d3 = frame[frame["dev"] == "d3"]
    assert only.chunk.last() == expected_last(d3["time"], d3["x"])


def test_series_last_of_an_unbound_series_without_times():
    with pytest.raises(ChunkFrameError, match="DatetimeIndex"):
        pd.Series([1.0, 2.0], name="x").chunk.last()


def test_series_last_failure_modes_of_bound_columns(ds, plain):
    with pytest.raises(ChunkFrameError, match="no time column"):
        plain.slice(0, 10)["a"].chunk.last()
    with pytest.raises(ChunkFrameError, match="serial numbers"):
        ds.slice(0, 10).reset_index(drop=True).iloc[2:]["x"].chunk.last()
    with pytest.raises(ChunkFrameError, match="time column"):
        ds.slice(0, 10)["time"].chunk.last()
    with pytest.raises(ChunkFrameError, match="device column"):
        ds.slice(0, 10)["dev"].chunk.last()
    with pytest.raises(ChunkFrameError, match="not a column"):
        ds.slice(0, 10)["x"].rename("renamed").chunk.last()
    with pytest.raises(ChunkFrameError, match="not a column"):
        ds.slice(0, 10)["x"].rename("renamed").chunk.get(0)


def test_series_last_device_on_a_dataset_without_devices(client, frame):
    ds = client.ingest(frame.drop(columns="dev"), "nodev", chunk_rows=CHUNK,
                       time_column="time", progress=False)
    with pytest.raises(ValueError, match="no device column"):
        ds.slice(0, 10)["x"].chunk.last(device="d1")


def test_series_last_of_a_bound_column_with_integer_times(client):
    df = pd.DataFrame({"t": np.array([5, 30, 30, 10, 20], dtype=np.int64),
                       "v": [1.0, 2.0, 3.0, np.nan, 4.0]})
    ds = client.ingest(df, "inttime", chunk_rows=2, time_column="t", progress=False)
    assert ds.slice(0, 5)["v"].chunk.last() == (30, 3.0)  # equal times: the later row
    assert ds.slice(3, 5)["v"].chunk.last() == (20, 4.0)
    assert ds.to_pandas()["v"].chunk.last() == (30, 3.0)
