"""Aggregations next to the chunks equal pandas on the in-memory frame."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pytest

from chunkframe.core.errors import InvalidArgumentError, NoTimeColumnError

AGGS = ["sum", "mean", "min", "max", "count", "first", "last"]
_names = itertools.count()


def frame(n: int, seed: int, *, tz: str | None = None, categorical: bool = False,
          missing: float = 0.2, devices: int = 4, freq: str = "7min") -> pd.DataFrame:
    """Times in order with gaps, a device, a float with NaN, an int; some rows lack a time."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2026-03-27 21:13", tz=tz)  # across Europe's DST change
    steps = rng.integers(0, 3, n).cumsum() * pd.Timedelta(freq)
    times = pd.Series(start + pd.to_timedelta(steps))
    names = [f"d{k}" for k in range(devices)]
    dev = rng.choice(names, n)
    x = rng.normal(size=n)
    x[rng.random(n) < missing] = np.nan
    df = pd.DataFrame({
        "time": times,
        "device": (pd.Categorical(dev, categories=[*reversed(names), "unused"]) if categorical
                   else pd.Series(dev, dtype="str")),
        "x": x,
        "k": rng.integers(-50, 50, n),
    })
    if n > 3:
        df.loc[df.index[1], "time"] = pd.NaT
    return df


def ingest(client, df: pd.DataFrame, *, device: bool = True, chunk_rows: int = 97) -> object:
    name = f"agg{next(_names)}"
    client.ingest(df, name, chunk_rows=chunk_rows, time_column="time",
                  device_column="device" if device else None, progress=False)
    return client.open(name)


def expected_resample(df: pd.DataFrame, rule: str, agg, columns=("x", "k"), device=True):
    keys = ["device", pd.Grouper(key="time", freq=rule)] if device else \
        [pd.Grouper(key="time", freq=rule)]
    return df.groupby(keys)[list(columns)].agg(agg)


def check(got: pd.DataFrame, want: pd.DataFrame) -> None:
    # pandas sets an index's freq on some reductions and not others: not compared
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-9, atol=1e-12,
                                  check_index_type=True, check_freq=False)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("agg", [*AGGS, ["min", "max", "mean"]])
def test_resample_per_device_equals_pandas(client, seed, agg):
    df = frame(2_000, seed)
    ds = ingest(client, df)
    check(ds.resample("h", ["x", "k"], agg), expected_resample(df, "h", agg))


@pytest.mark.parametrize("rule", ["15min", "h", "5h", "D", "2D", "W", "ME"])
@pytest.mark.parametrize("tz", [None, "Europe/Paris", "Asia/Kolkata"])
def test_resample_rules_and_time_zones_equal_pandas(client, rule, tz):
    df = frame(3_000, 5, tz=tz, freq="17min")
    ds = ingest(client, df, chunk_rows=250)
    check(ds.resample(rule, agg="mean"), expected_resample(df, rule, "mean"))
    check(ds.resample(rule, ["x"], agg=["sum", "count", "last"]),
          expected_resample(df, rule, ["sum", "count", "last"], ["x"]))


@pytest.mark.parametrize("rule", ["h", "5h", "D", "W"])
@pytest.mark.parametrize("agg", AGGS)
def test_resample_without_devices_gives_every_bucket_as_pandas(client, rule, agg):
    df = frame(600, 3, tz="Europe/Paris", freq="31min").drop(columns="device")
    ds = ingest(client, df, device=False, chunk_rows=50)
    check(ds.resample(rule, ["x", "k"], agg), expected_resample(df, rule, agg, device=False))


def test_resample_categorical_devices_one_device_and_a_date_range(client):
    df = frame(3_000, 7, categorical=True, tz="UTC")
    ds = ingest(client, df, chunk_rows=200)
    check(ds.resample("h", ["x"], "max"), expected_resample(df, "h", "max", ["x"]))
    lo, hi = df.time.iloc[500], df.time.iloc[1_500]
    kept = df[(df.time >= lo) & (df.time <= hi)]
    check(ds.resample("h", ["x"], "mean", date_range=(lo, hi)),
          expected_resample(kept, "h", "mean", ["x"]))
    one = df[df.device == "d2"]
    check(ds.resample("D", ["x", "k"], ["min", "first"], device="d2"),
          expected_resample(one, "D", ["min", "first"]))


def test_device_and_date_range_skip_chunks_by_their_statistics(client):
    parts = [frame(500, s, devices=1).assign(device=f"only{s}") for s in range(4)]
    df = pd.concat(parts, ignore_index=True)
    df["time"] = pd.date_range("2026-01-01", periods=len(df), freq="min")
    ds = ingest(client, df, chunk_rows=500)
    before = client.reader.skipped
    check(ds.resample("h", ["x"], "mean", device="only2"),
          expected_resample(df[df.device == "only2"], "h", "mean", ["x"]))
    assert client.reader.skipped - before == 3
    before = client.reader.skipped
    lo, hi = df.time.iloc[10], df.time.iloc[400]
    got = ds.aggregate("device", {"x": "sum"}, date_range=(lo, hi))
    check(got, df[(df.time >= lo) & (df.time <= hi)].groupby("device")[["x"]].agg("sum"))
    assert client.reader.skipped - before == 3


@pytest.mark.parametrize("seed", [0, 1])
def test_aggregate_equals_pandas_groupby(client, seed):
    df = frame(2_500, seed, categorical=bool(seed), tz="America/New_York")
    df["g"] = np.random.default_rng(seed).integers(0, 5, len(df))
    ds = ingest(client, df, chunk_rows=300)
    spec = {"x": AGGS, "k": ["sum", "min", "last"], "time": ["min", "max", "first", "count"]}
    for by in ["device", "g", ["device", "g"]]:
        check(ds.aggregate(by, spec), df.groupby(by).agg(spec))
        check(ds.aggregate(by, {"x": "mean", "k": "max"}),
              df.groupby(by).agg({"x": "mean", "k": "max"}))
    three = ["device", "g", "k"]  # past two keys: through Arrow
    check(ds.aggregate(three, {"x": ["mean", "max"]}), df.groupby(three).agg({"x": ["mean", "max"]}))
    where = pc.field("k") > 10
    check(ds.aggregate("g", {"x": ["mean", "count"]}, where=where),
          df[df.k > 10].groupby("g").agg({"x": ["mean", "count"]}))


def test_missing_values_empty_groups_single_row_and_empty_ranges(client):
    df = frame(400, 4)
    df.loc[df.device == "d1", "x"] = np.nan  # a device without any value
    ds = ingest(client, df, chunk_rows=60)
    for agg in AGGS:
        check(ds.aggregate("device", {"x": agg}), df.groupby("device").agg({"x": agg}))
        check(ds.resample("h", ["x"], agg), expected_resample(df, "h", agg, ["x"]))
    one = ingest(client, frame(1, 9))
    check(one.resample("h", ["x", "k"], ["mean", "count"]),
          expected_resample(frame(1, 9), "h", ["mean", "count"]))
    check(one.aggregate("device", {"x": "sum"}), frame(1, 9).groupby("device").agg({"x": "sum"}))
    far = ("2030-01-01", "2030-02-01")
    got = ds.resample("h", ["x"], "mean", date_range=far)
    want = expected_resample(df.iloc[:0], "h", "mean", ["x"])
    assert got.empty and list(got.columns) == list(want.columns)
    assert list(got.index.names) == list(want.index.names)
    got = ds.aggregate("device", {"x": ["sum", "count"]}, where=pc.field("k") > 1_000)
    want = df.iloc[:0].groupby("device").agg({"x": ["sum", "count"]})
    assert got.empty and list(got.columns) == list(want.columns)


def test_bad_arguments_say_how_to_fix_them(client):
    df = frame(300, 2)
    ds = ingest(client, df)
    with pytest.raises(KeyError, match="nope"):
        ds.aggregate("device", {"nope": "sum"})
    with pytest.raises(KeyError, match="nope"):
        ds.aggregate("nope", {"x": "sum"})
    with pytest.raises(KeyError, match="nope"):
        ds.resample("h", ["nope"])
    with pytest.raises(InvalidArgumentError, match="unknown aggregation 'median'.*use one of"):
        ds.aggregate("device", {"x": "median"})
    with pytest.raises(InvalidArgumentError, match="unknown aggregation"):
        ds.resample("h", agg="std")
    with pytest.raises(InvalidArgumentError, match="not a pandas frequency.*'15min'"):
        ds.resample("fortnightly")
    with pytest.raises(InvalidArgumentError, match="group key"):
        ds.aggregate("device", {"device": "count"})
    with pytest.raises(InvalidArgumentError, match="needs numbers"):
        ds.aggregate("k", {"device": "sum"})
    name = f"agg{next(_names)}"
    client.ingest(df.drop(columns="time"), name, chunk_rows=100, progress=False)
    with pytest.raises(NoTimeColumnError, match="cannot be resampled.*by"):
        client.open(name).resample("h")


@pytest.mark.parametrize("rule", ["5h", "W"])
def test_a_wrong_guess_of_the_first_bucket_is_binned_again(client, monkeypatch, rule):
    from chunkframe.read import aggregate

    df = frame(1_500, 8, tz="Asia/Kolkata", freq="23min")
    ds = ingest(client, df, chunk_rows=200)
    monkeypatch.setattr(aggregate, "_guess_span", lambda plan, time: (0, 0))
    check(ds.resample(rule, ["x"], ["mean", "first"]),
          expected_resample(df, rule, ["mean", "first"], ["x"]))
    lo = df.time.iloc[700]
    check(ds.resample(rule, ["x"], "sum", date_range=(lo, None)),
          expected_resample(df[df.time >= lo], rule, "sum", ["x"]))


def test_first_and_last_follow_serial_numbers_when_times_are_not_in_order(client):
    df = frame(2_000, 6, missing=0.5).sample(frac=1, random_state=3).reset_index(drop=True)
    ds = ingest(client, df, chunk_rows=150)
    for agg in ["first", "last"]:
        check(ds.resample("D", ["x", "k"], agg), expected_resample(df, "D", agg))
        check(ds.aggregate("device", {"x": agg, "time": agg}),
              df.groupby("device").agg({"x": agg, "time": agg}))  # through Arrow
        check(ds.aggregate(["device", "k"], {"x": agg}),
              df.groupby(["device", "k"]).agg({"x": agg}))  # through numpy
