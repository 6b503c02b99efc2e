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


# -- pandas' closed=, label=, origin=, offset= ---------------------------------------------
TICKS = ["15min", "h", "7h", "D", "2D"]
CALENDAR = ["D", "2D", "W", "W-WED", "ME", "MS", "QE"]
ORIGINS = ["start_day", "epoch", "start", "end", "end_day", "stamp"]


def random_case(seed: int) -> dict:
    """A random frame (missing values, a zone or none, sometimes one row) and pandas'
    resample arguments valid for it (drawn again where pandas itself cannot bin the frame,
    e.g. weeks closed on the left across a DST change: 'Values falls before first bin')."""
    rng = np.random.default_rng(seed)
    while True:
        case = _draw(rng, seed)
        keys = [pd.Grouper(key="time", freq=case["rule"], **case["kw"])]
        try:
            case["want"] = case["df"].groupby(["device", *keys] if case["device"] else keys)[
                ["x", "k"]].agg(case["agg"])
        except ValueError:
            continue
        return case


def _draw(rng: np.random.Generator, seed: int) -> dict:
    tz = [None, "Europe/Paris", "America/Havana", "Asia/Kolkata"][seed % 4]
    n = int(rng.choice([1, 2, 40, 700]))
    df = frame(n, seed, tz=tz, missing=float(rng.choice([0.0, 0.3, 1.0])),
               freq=str(rng.choice(["13min", "71min", "5h"])))
    fixed = tz is None or bool(rng.integers(2))
    rule = str(rng.choice(TICKS[:3] if tz is not None and fixed else
                          TICKS if fixed else CALENDAR))
    kw: dict = {"closed": rng.choice([None, "left", "right"]),
                "label": rng.choice([None, "left", "right"])}
    if rule in TICKS and (tz is None or rule not in ("D", "2D")):
        origin = str(rng.choice(ORIGINS))
        kw["origin"] = pd.Timestamp("2026-03-01 00:07", tz=tz) if origin == "stamp" else origin
        if not origin.startswith("end"):  # pandas' bins miss the rows with an end and offset
            kw["offset"] = rng.choice([None, "11min", "-2h"])
    return {"df": df, "rule": rule, "kw": kw, "device": bool(rng.integers(2)),
            "agg": str(rng.choice(AGGS)), "chunk_rows": int(rng.choice([7, 97]))}


@pytest.mark.parametrize("seed", range(40))
def test_closed_label_origin_and_offset_equal_pandas_on_random_frames(client, seed):
    case = random_case(seed)
    df, rule, kw, agg = case["df"], case["rule"], case["kw"], case["agg"]
    if not case["device"]:
        df = df.drop(columns="device")
    ds = ingest(client, df, device=case["device"], chunk_rows=case["chunk_rows"])
    check(ds.resample(rule, ["x", "k"], agg, **kw), case["want"])


@pytest.mark.parametrize("tz", [None, "Europe/Paris"])
@pytest.mark.parametrize("rule", ["h", "D", "W", "ME"])
@pytest.mark.parametrize(("closed", "label"), [("left", "left"), ("left", "right"),
                                               ("right", "left"), ("right", "right")])
def test_every_side_and_label_on_edges_equal_pandas(client, tz, rule, closed, label):
    # rows on the edges themselves (midnights, month ends) are the ones closed= moves
    times = pd.date_range("2026-01-30", "2026-04-02", freq="6h", tz=tz)
    df = pd.DataFrame({"time": times, "x": np.arange(len(times), dtype=float)})
    df.loc[::5, "x"] = np.nan
    ds = ingest(client, df, device=False, chunk_rows=40)
    for agg in ["sum", "count", "mean", "last"]:
        check(ds.resample(rule, ["x"], agg, closed=closed, label=label),
              df.resample(rule, on="time", closed=closed, label=label)[["x"]].agg(agg))


@pytest.mark.parametrize("origin", ["epoch", "start", "end", "end_day"])
def test_origin_and_offset_with_a_date_range_and_a_wrong_guess(client, monkeypatch, origin):
    from chunkframe.read import aggregate

    df = frame(900, 11, tz="Europe/Paris", freq="19min")
    ds = ingest(client, df, chunk_rows=120)
    monkeypatch.setattr(aggregate, "_guess_span", lambda plan, time: (0, 0))
    lo, hi = df.time.iloc[100], df.time.iloc[600]
    kept = df[(df.time >= lo) & (df.time <= hi)]
    kw = {"origin": origin, "offset": None if origin.startswith("end") else "10min"}
    check(ds.resample("5h", ["x", "k"], ["mean", "first"], date_range=(lo, hi), **kw),
          kept.groupby(["device", pd.Grouper(key="time", freq="5h", **kw)])[["x", "k"]]
          .agg(["mean", "first"]))
    far = ("2030-01-01", "2030-02-01")
    got = ds.resample("5h", ["x"], "mean", date_range=far, **kw)
    assert got.empty and list(got.index.names) == ["device", "time"]


def test_bad_closed_label_origin_and_offset_say_how_to_fix_them(client):
    ds = ingest(client, frame(200, 12, tz="Europe/Paris"))
    naive = ingest(client, frame(200, 12))
    with pytest.raises(InvalidArgumentError, match="closed='middle'.*closed='left' or "
                                                   "closed='right'"):
        ds.resample("h", closed="middle")
    with pytest.raises(InvalidArgumentError, match="label='top'.*label='left'"):
        ds.resample("h", label="top")
    with pytest.raises(InvalidArgumentError, match="origin='yesterday'.*'epoch'.*a time such"):
        ds.resample("h", origin="yesterday")
    with pytest.raises(InvalidArgumentError, match="offset='soon' is not a duration.*'15min'"):
        ds.resample("h", offset="soon")
    with pytest.raises(InvalidArgumentError, match="calendar.*leave them out.*'24h'"):
        ds.resample("ME", origin="epoch")
    with pytest.raises(InvalidArgumentError, match="calendar"):
        ds.resample("D", offset="1h")  # days in a zone are calendar days, as in pandas
    with pytest.raises(InvalidArgumentError, match="no time zone.*'Europe/Paris'.*tz="):
        ds.resample("h", origin=pd.Timestamp("2026-01-01"))
    with pytest.raises(InvalidArgumentError, match="has a time zone.*without a zone"):
        naive.resample("h", origin=pd.Timestamp("2026-01-01", tz="UTC"))
    check(naive.resample("D", ["x"], "sum", offset="6h"),  # days without a zone are fixed
          frame(200, 12).groupby(["device", pd.Grouper(key="time", freq="D", offset="6h")])[
              ["x"]].sum())
