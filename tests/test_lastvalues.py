"""Tests of the last cache (IoTDB's rules) against a real redis-server: rules, reads, deletes,
random sequences against a pandas model, two clients, two processes, failure modes."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pandas as pd
import pytest

import chunkframe as cf
from chunkframe.core.errors import SchemaMismatchError
from chunkframe.lastcache import (
    NO_VALUE,
    SEP,
    DeleteResult,
    LastValues,
    decode_record,
    encode_record,
    last_of_series,
    time_from_key,
    time_key,
)

T0 = pd.Timestamp("2026-01-01", tz="UTC")
MEASUREMENTS = ["x", "k", "s"]


# ---------------------------------------------------------------------------- helpers
def series_rows(done) -> dict[tuple[str, str], int]:
    """A DeleteResult's values hidden, per (device, measurement)."""
    return {(d, m): n for d, m, n in done.series.itertuples(index=False)}


def frame(secs, devs, x=None, k=None, s=None) -> pd.DataFrame:
    """Rows at ``T0 + secs`` seconds; x float, k nullable int, s nullable str."""
    n = len(secs)
    return pd.DataFrame({
        "time": T0 + pd.to_timedelta(np.asarray(secs, dtype=np.int64), unit="s"),
        "dev": pd.Series(devs, dtype="str"),
        "x": pd.Series(np.arange(n, dtype=float) if x is None else x, dtype="float64"),
        "k": pd.array(np.arange(n) if k is None else k, dtype="Int64"),
        "s": pd.Series([f"v{i}" for i in range(n)] if s is None else s, dtype="str"),
    })


def ingest(client, df, name="x", chunk_rows=100, **kw):
    return client.ingest(df, name, time_column="time", device_column="dev",
                         chunk_rows=chunk_rows, progress=False, **kw)


def append(ds, df):
    ds.append(df, progress=False)


def ns(t) -> int:
    return int(pd.Timestamp(t).as_unit("ns")._value)


def as_dict(table: pd.DataFrame) -> dict:
    """{(device, measurement): (time ns, value)} of a last() frame."""
    out = {}
    for d, m, t, v in table.itertuples(index=False):
        out[(d, m)] = (ns(t) if isinstance(t, pd.Timestamp) else int(t), v)
    return out


def model_last(frames, tombs, measurements=MEASUREMENTS, tcol="time", dcol="dev") -> dict:
    """The pandas model: concat frames (sn = position), null out every tombstone's range
    (a tombstone hides the matching values that existed when it was made — rows below its
    row count — never rows appended later, as in IoTDB and the reader), then
    per (device, measurement) the non-null value of the latest time; equal times: largest sn."""
    df = pd.concat(frames, ignore_index=True)
    t = df[tcol].dt.as_unit("ns").array.asi8.copy()
    devs = df[dcol].astype(str).to_numpy()
    for dev, cols, lo, hi, rows in tombs:
        mask = np.arange(len(df)) < rows
        if dev is not None:
            mask &= devs == dev
        if lo is not None:
            mask &= t >= lo
        if hi is not None:
            mask &= t <= hi
        for c in cols or measurements:
            df.loc[mask, c] = None
    out = {}
    sn = np.arange(len(df))
    for m in measurements:
        valid = df[m].notna().to_numpy()
        sub = pd.DataFrame({"d": devs[valid], "t": t[valid], "sn": sn[valid],
                            "v": df[m].to_numpy(dtype=object)[valid]})
        for row in sub.sort_values(["t", "sn"]).groupby("d").tail(1).itertuples(index=False):
            out[(row.d, m)] = (int(row.t), row.v)
    return out


def fields(client, ds_id) -> dict:
    """The series entries of the Redis last hash: {(device, measurement): record}."""
    raw = client.redis.hgetall(client.state.keys(ds_id).last)
    return {tuple(k.decode().split(SEP, 1)): v for k, v in raw.items() if SEP.encode() in k}


def flushed(client, ds_id) -> dict:
    raw = client.redis.hgetall(client.state.keys(ds_id).flushed)
    return {k.decode(): time_from_key(v) for k, v in raw.items()}


def other_client(client):
    """A second client of the same stores: its own local caches, the same Redis."""
    return cf.Client(client.settings)


# ---------------------------------------------------------------------------- records
def test_time_keys_sort_like_int64():
    values = [-(2**63), -5, -1, 0, 1, 2**53 + 1, 2**53 + 2, 1_767_225_600_000_000_001, 2**63 - 1]
    keys = [time_key(v) for v in values]
    assert keys == sorted(keys) and all(len(k) == 20 for k in keys)
    assert [time_from_key(k) for k in keys] == values


def test_records_are_msgpack_typed_and_round_trip():
    for code, payload, expected in [
        ("f", 1.5, 1.5), ("i", -3, -3), ("b", True, True), ("s", "δ", "δ"), ("y", b"\x00", b"\x00"),
        ("T", [5, "s", "Europe/Paris"], pd.Timestamp(5, unit="s", tz="Europe/Paris")),
        ("D", [7, "ms"], pd.Timedelta(7, unit="ms")),
    ]:
        raw = encode_record(42, code, payload)
        assert raw[:20] == time_key(42).encode() and b"pickle" not in raw
        assert decode_record(raw) == (42, expected)
    assert decode_record(NO_VALUE) is None
    assert decode_record(encode_record(1)) is None  # a null: time key only


# ---------------------------------------------------------------------------- the Lua rules
@pytest.fixture
def lv(client) -> LastValues:
    return client.last_values


def put(lv, field, t, value, *, high, dev="d", guard=None):
    rec = encode_record(t, None if value is None else "f", value)
    return lv._apply_records("rules", [(field, dev, rec)], high=high, guard=guard)


def cached(lv, field):
    raw = lv.redis.hget(lv.backends.state.keys("rules").last, field)
    return None if raw is None else raw if raw == NO_VALUE else decode_record(raw)


def set_flushed(lv, dev, t):
    lv.redis.hset(lv.backends.state.keys("rules").flushed, dev, time_key(t))


@pytest.mark.parametrize("high", [True, False])
def test_rule_null_never_updates(lv, high):
    assert put(lv, "d\x1fm", 5, None, high=high) == 0
    assert cached(lv, "d\x1fm") is None
    put(lv, "d\x1fm", 5, 1.0, high=True)
    assert put(lv, "d\x1fm", 9, None, high=high) == 0
    assert cached(lv, "d\x1fm") == (5, 1.0)


def test_rule_empty_entry_filled_by_a_query_whatever_the_flushed_time(lv):
    set_flushed(lv, "d", 100)
    assert put(lv, "d\x1fm", 3, 1.0, high=False) == 1
    assert cached(lv, "d\x1fm") == (3, 1.0)


def test_rule_empty_entry_filled_by_a_write_only_from_the_flushed_time_on(lv):
    set_flushed(lv, "d", 100)
    assert put(lv, "d\x1fa", 99, 1.0, high=True) == 0  # out of order: no stale entry
    assert cached(lv, "d\x1fa") is None
    assert put(lv, "d\x1fb", 100, 2.0, high=True) == 1  # equal to the flushed time
    assert put(lv, "d\x1fc", 101, 3.0, high=True) == 1
    assert cached(lv, "d\x1fb") == (100, 2.0) and cached(lv, "d\x1fc") == (101, 3.0)
    # a device with nothing flushed yet: any write fills
    assert put(lv, "e\x1fa", -5, 4.0, high=True, dev="e") == 1


@pytest.mark.parametrize("high", [True, False])
def test_rule_existing_entry_replaced_by_a_newer_time_never_by_an_older(lv, high):
    put(lv, "d\x1fm", 10, 1.0, high=False)
    assert put(lv, "d\x1fm", 9, 2.0, high=high) == 0
    assert put(lv, "d\x1fm", 11, 3.0, high=high) == 1
    assert cached(lv, "d\x1fm") == (11, 3.0)


def test_rule_equal_time_replaces_only_from_a_write(lv):
    put(lv, "d\x1fm", 10, 1.0, high=False)
    assert put(lv, "d\x1fm", 10, 2.0, high=False) == 0  # query: low priority
    assert cached(lv, "d\x1fm") == (10, 1.0)
    assert put(lv, "d\x1fm", 10, 3.0, high=True) == 1  # write: high priority
    assert cached(lv, "d\x1fm") == (10, 3.0)


def test_rule_times_compare_exactly_beyond_double_precision(lv):
    big = 2**62 + 1  # doubles cannot tell big from big + 1
    put(lv, "d\x1fm", big + 1, 1.0, high=False)
    assert put(lv, "d\x1fm", big, 2.0, high=True) == 0
    assert put(lv, "d\x1fm", big + 2, 3.0, high=False) == 1
    assert cached(lv, "d\x1fm") == (big + 2, 3.0)


def test_rule_no_value_marker(lv):
    f = "d\x1fm"
    assert lv._apply_records("rules", [(f, "d", NO_VALUE)], high=False, guard=None) == 1
    assert cached(lv, f) == NO_VALUE
    set_flushed(lv, "d", 100)
    # the series had no value: any write with a value is its latest, flushed time or not
    assert put(lv, f, 5, 1.0, high=True) == 1
    assert lv._apply_records("rules", [(f, "d", NO_VALUE)], high=False, guard=None) == 0
    assert cached(lv, f) == (5, 1.0)


def test_rule_flushed_times_only_advance(lv):
    keys = lv.backends.state.keys("rules")
    for t in (10, 5, 20):
        lv._apply_records("rules", [], high=True, guard=None, flushed=["d", time_key(t)])
    assert time_from_key(lv.redis.hget(keys.flushed, "d")) == 20


def test_rule_query_fill_is_fenced_by_writes(lv):
    keys = lv.backends.state.keys("rules")
    put(lv, "d\x1fa", 1, 1.0, high=True)
    wgen = lv.redis.hget(keys.last, "wgen")
    assert put(lv, "d\x1fb", 1, 1.0, high=False, guard=wgen) == 1
    put(lv, "d\x1fa", 2, 2.0, high=True)  # a write moves wgen
    assert put(lv, "d\x1fc", 1, 1.0, high=False, guard=wgen) == -1
    assert cached(lv, "d\x1fc") is None


def test_every_entry_change_moves_the_epoch(lv):
    keys = lv.backends.state.keys("rules")
    put(lv, "d\x1fa", 1, 1.0, high=False)
    e1 = lv.redis.hget(keys.last, "epoch")
    put(lv, "d\x1fa", 0, 1.0, high=False)  # no change: same epoch
    assert lv.redis.hget(keys.last, "epoch") == e1
    put(lv, "d\x1fa", 2, 1.0, high=False)
    assert lv.redis.hget(keys.last, "epoch") != e1


# ---------------------------------------------------------------------------- last()
@pytest.fixture
def sensors():
    secs = np.arange(1000)
    devs = [f"d{i % 5}" for i in secs]
    return frame(secs, devs, x=secs * 0.5, k=secs, s=[f"s{i}" for i in secs])


def test_last_equals_pandas_groupby_last(client, sensors):
    ds = ingest(client, sensors)
    got = ds.last()
    assert list(got.columns) == ["device", "measurement", "time", "value"]
    assert list(got["device"]) == [f"d{i}" for i in range(5) for _ in MEASUREMENTS]
    assert list(got["measurement"]) == MEASUREMENTS * 5
    assert str(got["time"].dtype) == str(sensors["time"].dtype)  # unit and tz kept
    assert as_dict(got) == model_last([sensors], [])
    exp = sensors.sort_values("time").groupby("dev").last()
    for d, m, t, v in got.itertuples(index=False):
        assert v == exp.loc[d, m] and t == exp.loc[d, "time"]
    assert isinstance(got.loc[0, "time"], pd.Timestamp) and got.loc[0, "time"].tz is not None
    assert type(got.loc[0, "value"]) is float and type(got.loc[1, "value"]) is int
    assert type(got.loc[2, "value"]) is str


def test_last_selects_devices_and_columns_in_the_order_asked(client, sensors):
    ds = ingest(client, sensors)
    got = ds.last(device=["d3", "d1"], columns=["s", "x"])
    assert list(zip(got["device"], got["measurement"], strict=True)) == [
        ("d3", "s"), ("d3", "x"), ("d1", "s"), ("d1", "x")]
    one = ds.last("d2", "k")
    assert len(one) == 1 and one.loc[0, "value"] == 997
    assert ds.last(device=[]).empty


def test_cold_miss_reads_one_chunk_of_dense_data_then_none(client, sensors):
    ds = ingest(client, sensors)  # 10 chunks, every device in every chunk
    lv = client.last_values
    client.reader.clear()
    before = dict(lv.counters), client.reader.fetches
    ds.last()
    assert lv.counters["chunk_reads"] - before[0]["chunk_reads"] == 1
    assert client.reader.fetches - before[1] == 1
    ds.last()
    ds.last("d1")
    assert lv.counters["chunk_reads"] - before[0]["chunk_reads"] == 1  # served from the cache
    assert client.reader.fetches - before[1] == 1


def test_miss_after_a_delete_reads_only_the_chunks_it_must(client, sensors):
    ds = ingest(client, sensors)
    ds.last()
    lv = client.last_values
    # the last 150 s of d0 span chunk 9 and part of chunk 8: its answer is in chunk 8
    ds.delete("d0", date_range=(T0 + pd.Timedelta(seconds=850), None))
    reads = lv.counters["chunk_reads"]
    got = ds.last("d0")
    assert lv.counters["chunk_reads"] - reads == 2
    assert set(got["time"]) == {T0 + pd.Timedelta(seconds=845)}


def test_sparse_device_is_found_from_the_statistics(client):
    secs = np.arange(1000)
    devs = ["rare" if i == 5 else f"d{i % 3}" for i in secs]
    ds = ingest(client, frame(secs, devs))
    reads = client.last_values.counters["chunk_reads"]
    got = ds.last("rare")
    assert client.last_values.counters["chunk_reads"] - reads == 1  # only chunk 0 holds it
    assert set(got["time"]) == {T0 + pd.Timedelta(seconds=5)}


def test_equal_latest_times_in_the_data_the_later_row_wins(client):
    df = frame([1, 5, 5, 5, 2], ["a"] * 5, x=[1.0, 2.0, 3.0, np.nan, 9.0])
    ds = ingest(client, df, chunk_rows=2)  # the tie spans chunks 0 and 1
    got = as_dict(ds.last("a", "x"))
    assert got == {("a", "x"): (ns(T0) + 5 * 10**9, 3.0)} == {
        k: v for k, v in model_last([df], []).items() if k == ("a", "x")}
    ds.reset_last()
    assert as_dict(ds.last("a", "x")) == got  # computed again from the data: same answer


def test_equal_time_in_a_newer_chunk_with_a_smaller_max_is_still_read(client):
    # chunk 0 holds the device's max time (x null there) and x@5; chunk 1 holds x@5 again,
    # later: the stop rule must read chunk 1 although its max (5) is below chunk 0's (10)
    df = pd.DataFrame({"t": [10, 5, 5, 1], "dev": ["a"] * 4, "x": [np.nan, 1.0, 2.0, 3.0]})
    ds = client.ingest(df, "tie", time_column="t", device_column="dev", chunk_rows=2,
                       progress=False)
    assert as_dict(ds.last()) == {("a", "x"): (5, 2.0)}
    assert client.last_values.counters["chunk_reads"] == 2


def test_all_null_series_has_no_row_and_is_not_rescanned(client):
    df = frame(range(300), ["a", "b", "c"] * 100, x=[np.nan] * 300)
    ds = ingest(client, df)
    assert "x" not in set(ds.last()["measurement"])
    assert fields(client, "x")[("a", "x")] == NO_VALUE
    reads = client.last_values.counters["chunk_reads"]
    ds.last()
    assert client.last_values.counters["chunk_reads"] == reads
    append(ds, frame([400], ["a"], x=[1.5]))  # out of order for nothing: it had no value
    assert as_dict(ds.last("a", "x")) == {("a", "x"): (ns(T0) + 400 * 10**9, 1.5)}


def test_value_types_follow_the_columns(client):
    from frames import all_dtypes

    df = all_dtypes(500)
    ds = client.ingest(df, "types", time_column="t", chunk_rows=64, progress=False)
    got = ds.last()
    assert got["device"].isna().all()  # one implicit device
    assert list(got["measurement"]) == [c for c in df.columns if c != "t"]
    for m, t, v in zip(got["measurement"], got["time"], got["value"], strict=True):
        s = df.set_index("t")[m]
        exp_t, exp_v = last_of_series(s)
        assert t == exp_t and v == exp_v, m
        assert type(v) is type(exp_v) or isinstance(exp_v, (np.generic, bool)), m
    by = dict(zip(got["measurement"], got["value"], strict=True))
    assert isinstance(by["tz"], pd.Timestamp) and str(by["tz"].tz) == "Europe/Paris"
    assert isinstance(by["td"], pd.Timedelta) and isinstance(by["c"], str)


def test_integer_time_column(client):
    df = pd.DataFrame({"step": [3, 1, 2, 7], "dev": [1, 2, 1, 2], "v": [0.1, 0.2, 0.3, 0.4]})
    ds = client.ingest(df, "steps", time_column="step", device_column="dev", chunk_rows=2,
                       progress=False)
    got = ds.last()
    assert got["time"].tolist() == [3, 7] and got["device"].tolist() == [1, 2]
    assert ds.last(device=2)["value"].tolist() == [0.4]
    done = ds.delete(device=2, date_range=(5, 7))
    assert done.last_values_dropped == 1 and done.total == 1
    assert done.series.to_dict("records") == [{"device": 2, "measurement": "v", "rows": 1}]
    assert ds.last(device=2)["time"].tolist() == [1]
    with pytest.raises(ValueError, match="integer"):
        ds.delete(date_range=(pd.Timestamp("2026-01-01"), None))


# ---------------------------------------------------------------------------- writes
def test_append_in_order_updates_reading_only_the_new_chunks(client, sensors):
    ds = ingest(client, sensors)
    ds.last()
    lv = client.last_values
    w, r = lv.counters["write_chunk_reads"], lv.counters["chunk_reads"]
    new = frame([2000, 2001], ["d0", "d1"], x=[7.0, 8.0], k=[None, 5], s=["n0", "n1"])
    append(ds, new)
    assert lv.counters["write_chunk_reads"] - w == 1
    got = as_dict(ds.last())
    assert lv.counters["chunk_reads"] == r  # all answered by the cache
    assert got == model_last([sensors, new], [])
    assert got[("d0", "k")] == (ns(T0) + 995 * 10**9, 995)  # a null never updates


def test_append_out_of_order_changes_nothing_and_reads_nothing(client, sensors):
    ds = ingest(client, sensors)
    ds.last()
    lv = client.last_values
    before = fields(client, "x")
    w = lv.counters["write_chunk_reads"]
    old = frame([10, 20, 30], ["d0", "d1", "d2"])
    append(ds, old)
    assert lv.counters["write_chunk_reads"] == w  # the statistics proved it
    assert fields(client, "x") == before
    assert as_dict(ds.last()) == model_last([sensors, old], [])


def test_out_of_order_write_does_not_fill_an_empty_entry(client, sensors):
    ds = ingest(client, sensors)
    assert flushed(client, "x")["d0"] == ns(T0) + 995 * 10**9
    ds.reset_last("d0", "x")
    append(ds, frame([7], ["d0"], x=[123.0]))
    assert ("d0", "x") not in fields(client, "x")
    assert ds.last("d0", "x")["value"].tolist() == [995 * 0.5]
    ds.reset_last("d0", "x")
    append(ds, frame([995], ["d0"], x=[5.0]))  # == flushed time: fills (and wins the tie)
    assert decode_record(fields(client, "x")[("d0", "x")]) == (ns(T0) + 995 * 10**9, 5.0)


def test_out_of_order_value_in_a_chunk_that_must_be_read_does_not_fill(client, sensors):
    ds = ingest(client, sensors)
    ds.last()
    ds.reset_last("d0", "x")
    # one chunk: d0.k moves on (so the chunk is read), d0.x only has an old value
    new = frame([7, 2000], ["d0", "d0"], x=[123.0, np.nan], k=[1, 2])
    w = client.last_values.counters["write_chunk_reads"]
    append(ds, new)
    assert client.last_values.counters["write_chunk_reads"] == w + 1
    assert ("d0", "x") not in fields(client, "x")  # the Lua rule refused it
    assert decode_record(fields(client, "x")[("d0", "k")]) == (ns(T0) + 2000 * 10**9, 2)
    assert as_dict(ds.last()) == model_last([sensors, new], [])


def test_equal_time_append_replaces_the_cached_value(client, sensors):
    ds = ingest(client, sensors)
    ds.last()
    new = frame([999], ["d4"], x=[-1.0])
    append(ds, new)
    assert ds.last("d4", "x")["value"].tolist() == [-1.0]
    assert as_dict(ds.last()) == model_last([sensors, new], [])


def test_create_and_overwrite_reset_the_cache_and_set_flushed_times(client, sensors):
    ds = ingest(client, sensors)
    ds.last()
    assert len(fields(client, "x")) == 15
    df2 = frame([5, 6], ["z", "y"])
    ds = ingest(client, df2, mode="overwrite")
    assert fields(client, "x") == {}
    assert flushed(client, "x") == {"z": ns(T0) + 5 * 10**9, "y": ns(T0) + 6 * 10**9}
    gen = client.redis.hget(client.state.keys("x").last, "gen")
    assert int(gen) == ds.meta.generation
    assert as_dict(ds.last()) == model_last([df2], [])


# ---------------------------------------------------------------------------- delete, reset
@pytest.fixture
def small(client):
    """a: x at 10, y last non-null at 8; b: x and y at 9 (integer time column)."""
    df = pd.DataFrame({
        "t": [5, 8, 9, 10, 9],
        "dev": ["a", "a", "a", "a", "b"],
        "x": [1.0, 2.0, 3.0, 4.0, 5.0],
        "y": [1.0, 2.0, None, None, 6.0],
    })
    ds = client.ingest(df, "small", time_column="t", device_column="dev", chunk_rows=2,
                       progress=False)
    ds.last()
    return ds


def test_delete_invalidates_exactly_the_cached_times_in_range(client, small):
    version = small.meta.version
    done = small.delete("a", ["x", "y"], date_range=(9, 20))
    assert done.last_values_dropped == 1  # a.x@10 yes, a.y@8 no
    # a.x@9 and a.x@10 hidden; a.y has no value in range (nulls are not counted)
    assert series_rows(done) == {("a", "x"): 2} and done.total == 2
    assert done.version == version + 1 and done.dataset == "small"
    cached_now = fields(client, "small")
    assert ("a", "x") not in cached_now
    assert decode_record(cached_now[("a", "y")]) == (8, 2.0)
    assert {("b", "x"), ("b", "y")} <= set(cached_now)
    assert client.catalog.get("small").version == version + 1
    assert client.state.meta("small").version == version + 1
    assert small.meta.tombstones[-1].device == "a"
    assert np.isnan(small.get(3, "x"))  # the data reads back as missing
    assert as_dict(small.last("a")) == {("a", "x"): (8, 2.0), ("a", "y"): (8, 2.0)}


def test_delete_bounds_are_inclusive_and_may_be_open(client, small):
    done = small.delete("b", "x", date_range=(9, 9))
    assert (done.last_values_dropped, series_rows(done)) == (1, {("b", "x"): 1})
    done = small.delete("a", "x", date_range=(None, 10))
    assert (done.last_values_dropped, series_rows(done)) == (1, {("a", "x"): 4})
    done = small.delete(columns="y", date_range=(8, None))  # a.y@8 and b.y@9
    assert (done.last_values_dropped, series_rows(done)) == (2, {("a", "y"): 1, ("b", "y"): 1})
    assert as_dict(small.last()) == {("a", "y"): (5, 1.0)}


def test_delete_of_everything_of_a_device(client, small):
    done = small.delete("a")
    assert done.last_values_dropped == 2
    assert series_rows(done) == {("a", "x"): 4, ("a", "y"): 2} and done.total == 6
    assert list(done.series.columns) == ["device", "measurement", "rows"]
    again = small.delete("a")  # already hidden: nothing more to hide
    assert again.total == 0 and again.series.empty and again.last_values_dropped == 0
    assert "0 values hidden in 0 series" in repr(again)
    assert set(small.last()["device"]) == {"b"}
    assert fields(client, "small")[("a", "x")] == NO_VALUE  # recomputed: nothing left


def test_delete_outside_the_cached_times_keeps_the_entries(client, small):
    done = small.delete("a", date_range=(0, 6))
    assert done.last_values_dropped == 0
    assert series_rows(done) == {("a", "x"): 1, ("a", "y"): 1}  # the rows at t=5
    assert as_dict(small.last("a")) == {("a", "x"): (10, 4.0), ("a", "y"): (8, 2.0)}


def test_delete_waits_for_the_dataset_lock(client, small):
    lock = client.state.lock("small").acquire()
    try:
        with pytest.raises(cf.DatasetLockedError):
            client.last_values.delete(small.id, "a", wait=0.2)
    finally:
        lock.release()
    assert small.meta.tombstones == ()


def test_reset_one_series_a_device_or_everything(client, small):
    lv = client.last_values
    assert lv.reset(small.id, "a", "x") == 1
    assert set(fields(client, "small")) == {("a", "y"), ("b", "x"), ("b", "y")}
    assert lv.reset(small.id, "b") == 2
    assert set(fields(client, "small")) == {("a", "y")}
    small.last()
    assert len(fields(client, "small")) == 4
    assert lv.reset(small.id) == 4 and fields(client, "small") == {}
    assert as_dict(small.last()) == {("a", "x"): (10, 4.0), ("a", "y"): (8, 2.0),
                                     ("b", "x"): (9, 5.0), ("b", "y"): (9, 6.0)}


# ---------------------------------------------------------------------------- random sequences
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_sequences_match_the_pandas_model(client, seed):
    rng = random.Random(seed)
    clients = [client, other_client(client)]
    devices = ["d0", "d1", "d2", "d3"]

    def batch(lo, hi, n):
        secs = [rng.randint(lo, hi) for _ in range(n)]
        devs = [rng.choice(devices) for _ in range(n)]
        x = [np.nan if rng.random() < 0.2 else rng.random() for _ in range(n)]
        k = [None if rng.random() < 0.2 else rng.randint(0, 99) for _ in range(n)]
        s = [None if rng.random() < 0.2 else rng.choice("abc") for _ in range(n)]
        return frame(secs, devs, x=x, k=k, s=s)

    first = batch(0, 50, 40)
    frames, tombs = [first], []
    ds = [ingest(clients[0], first, "rnd", chunk_rows=16), None]
    ds[1] = clients[1].open("rnd")
    hi_t = 50
    for step in range(50):
        who = rng.randrange(2)
        h = ds[who]
        op = rng.random()
        if op < 0.35:  # in order (ties with the current latest included)
            n = rng.randint(1, 30)
            if rng.random() < 0.15:
                devices.append(f"n{step}")
            df = batch(hi_t, hi_t + rng.randint(0, 20), n)
            hi_t = max(hi_t, int((df["time"] - T0).dt.total_seconds().max()))
            append(h, df)
            frames.append(df)
        elif op < 0.55:  # out of order
            df = batch(0, hi_t, rng.randint(1, 20))
            append(h, df)
            frames.append(df)
        elif op < 0.72:
            dev = rng.choice([None, *devices[:4]])
            cols = rng.choice([None, ["x"], ["k", "s"]])
            lo = rng.choice([None, rng.randint(0, hi_t)])
            hi = rng.choice([None, rng.randint(lo or 0, hi_t + 5)])
            h.delete(dev, cols, date_range=(None if lo is None else T0 + pd.Timedelta(seconds=lo),
                                            None if hi is None else T0 + pd.Timedelta(seconds=hi)))
            tombs.append((dev, cols, None if lo is None else ns(T0) + lo * 10**9,
                          None if hi is None else ns(T0) + hi * 10**9,
                          sum(len(f) for f in frames)))
        elif op < 0.8:
            known = sorted({d for f in frames for d in f["dev"]})
            h.reset_last(rng.choice([None, rng.choice(known)]), rng.choice([None, "x"]))
        expected = model_last(frames, tombs)
        viewer = ds[rng.randrange(2)]
        assert as_dict(viewer.last()) == expected, f"seed {seed} step {step}"
        if rng.random() < 0.3:
            known = sorted({d for f in frames for d in f["dev"]})
            pick = rng.sample(known, min(2, len(known)))
            got = as_dict(viewer.last(pick, ["s", "x"]))
            assert got == {k: v for k, v in expected.items() if k[0] in pick and k[1] in "sx"}


# ---------------------------------------------------------------------------- clients, processes
def test_two_clients_agree_without_waiting(client, sensors):
    a = ingest(client, sensors)
    other = other_client(client)
    b = other.open("x")
    a.last(), b.last()
    new = frame([5000], ["d2"], x=[42.0])
    append(b, new)
    assert a.last("d2", "x")["value"].tolist() == [42.0]  # checked against Redis every call
    b.delete("d2", "x", date_range=(T0 + pd.Timedelta(seconds=4000), None))
    assert a.last("d2", "x")["value"].tolist() == [997 * 0.5]


def test_queries_racing_appends_leave_no_stale_entry(client, sensors):
    """Reads that recompute (after resets) while another client appends in and out of
    order: a fill computed from older data must never survive a newer write."""
    import threading

    ds = ingest(client, sensors)
    writer = other_client(client).open("x")
    rng = random.Random(5)
    frames = [sensors]
    batches = []
    for i in range(12):
        lo = 1000 + 20 * i if i % 3 else 0  # every third batch is late data
        secs = [rng.randint(lo, lo + 30) for _ in range(20)]
        devs = [rng.choice(["d0", "d1", "d2"]) for _ in range(20)]
        x = [np.nan if rng.random() < 0.3 else float(j) for j in range(20)]
        batches.append(frame(secs, devs, x=x))
    errors = []

    def write():
        try:
            for b in batches:
                append(writer, b)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=write)
    thread.start()
    while thread.is_alive():
        ds.reset_last(rng.choice(["d0", "d1", "d2"]))
        ds.last()
    thread.join()
    assert not errors
    frames += batches
    assert as_dict(ds.last()) == model_last(frames, [])
    assert as_dict(writer.last()) == model_last(frames, [])


def test_a_fill_computed_before_a_write_is_refused(client, monkeypatch):
    # d0.x's last value is at 500 while d0 has rows up to 995 (x missing there)
    secs = np.arange(1000)
    x = np.where(secs > 500, np.nan, secs * 1.0)
    ds = ingest(client, frame(secs, ["d0", "d1"] * 500, x=x))
    writer = other_client(client).open("x")
    lv = client.last_values
    compute = lv._compute

    def compute_then_someone_writes(snap, wanted):
        found = compute(snap, wanted)  # from the data before the append
        # late for d0 (700 < 999 flushed) so the write cannot fill the empty entry itself
        append(writer, frame([700], ["d0"], x=[-7.0]))
        return found

    monkeypatch.setattr(lv, "_compute", compute_then_someone_writes)
    assert ds.last("d0", "x")["value"].tolist() == [500.0]  # right for the data it read
    monkeypatch.undo()
    assert ("d0", "x") not in fields(client, "x")  # its fill was refused: wgen moved
    assert as_dict(ds.last("d0", "x")) == {("d0", "x"): (ns(T0) + 700 * 10**9, -7.0)}


def test_a_process_appends_and_the_parent_sees_it(client, sensors, tmp_path):
    ds = ingest(client, sensors)
    before = ds.last()
    s = client.settings
    script = textwrap.dedent(f"""
        import numpy as np, pandas as pd, chunkframe as cf
        c = cf.connect(store={s.store_url!r}, redis={s.redis_url!r},
                       catalog={s.catalog!r}, home={str(s.home)!r}, prefix={s.prefix!r})
        ds = c.open("x")
        t = pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta([3000, 3001], unit="s")
        df = pd.DataFrame({{"time": t, "dev": pd.Series(["d0", "d9"], dtype="str"),
                           "x": [1.25, 2.5], "k": pd.array([1, 2], dtype="Int64"),
                           "s": pd.Series(["p", "q"], dtype="str")}})
        ds.append(df, progress=False)
        print(ds.last("d9").to_json())
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["value"] == {"0": 2.5, "1": 2, "2": "q"}
    after = as_dict(ds.last())
    assert after[("d0", "x")] == (ns(T0) + 3000 * 10**9, 1.25)
    assert after[("d9", "s")] == (ns(T0) + 3001 * 10**9, "q")
    assert len(after) == len(before) + 3


# ---------------------------------------------------------------------------- self-healing
def test_lost_cache_keys_are_rebuilt_without_stale_entries(client, sensors):
    ds = ingest(client, sensors)
    ds.last()
    keys = client.state.keys("x")
    client.redis.delete(keys.last, keys.flushed)  # e.g. an eviction or a flush
    old = frame([3], ["d0"], x=[-9.0])
    append(ds, old)  # out of order: must not fill the (now empty) entry
    assert ("d0", "x") not in fields(client, "x")
    assert flushed(client, "x")["d0"] == ns(T0) + 995 * 10**9
    assert as_dict(ds.last()) == model_last([sensors, old], [])


def test_a_change_made_without_the_hook_is_noticed(client, sensors):
    ds = ingest(client, sensors)
    ds.last()
    client.commit_hooks.remove(client.last_values.after_commit)
    try:
        new = frame([4000], ["d1"], x=[3.0])
        append(ds, new)
    finally:
        client.commit_hooks.append(client.last_values.after_commit)
    assert as_dict(ds.last()) == model_last([sensors, new], [])


def test_a_failing_hook_warns_and_leaves_the_cache_correct(client, sensors, monkeypatch):
    ds = ingest(client, sensors)
    ds.last()
    lv = client.last_values

    def boom(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr(lv.scripts, "begin_write", boom)  # the hook's first Redis step
    new = frame([4000], ["d1"], x=[3.0])
    with pytest.warns(RuntimeWarning, match="recomputed from the data"):
        append(ds, new)
    monkeypatch.undo()
    assert as_dict(ds.last()) == model_last([sensors, new], [])


def test_while_a_writer_holds_the_lock_answers_come_from_the_data(client, sensors):
    ds = ingest(client, sensors)
    ds.last()
    keys = client.state.keys("x")
    client.redis.hset(keys.last, "ver", 0)  # the cache is behind the data ...
    lock = client.state.lock("x").acquire()  # ... and a writer is at work
    try:
        before = client.last_values.counters["bypassed"]
        assert as_dict(ds.last()) == model_last([sensors], [])
        assert client.last_values.counters["bypassed"] == before + 1
    finally:
        lock.release()
    ds.last()  # lock free: rebuilt
    assert int(client.redis.hget(keys.last, "ver")) == ds.meta.version


# ---------------------------------------------------------------------------- failure modes
@pytest.fixture
def no_time(client):
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    return client.ingest(df, "notime", chunk_rows=10, progress=False)


def test_no_time_column_is_a_clear_error_everywhere(no_time):
    for call in (no_time.last, no_time.delete, no_time.reset_last):
        with pytest.raises(SchemaMismatchError, match="has no time column.*time_column="):
            call()


def test_unknown_device_lists_known_ones(client, sensors):
    ds = ingest(client, sensors)
    with pytest.raises(KeyError, match=r"no device 'd7'.*did you mean.*Known devices: \['d0'"):
        ds.last("d7")
    with pytest.raises(KeyError, match="no device 'zz'"):
        ds.last(["d1", "zz"])
    for call in (lambda: ds.delete("zz"), lambda: ds.reset_last("zz")):
        with pytest.raises(KeyError, match="Known devices"):
            call()
    with pytest.raises(TypeError, match="one device"):
        ds.delete(["d1", "d2"])


def test_device_given_to_a_dataset_without_a_device_column(client):
    df = pd.DataFrame({"time": pd.date_range("2026-01-01", periods=3, freq="s"), "v": [1, 2, 3]})
    ds = client.ingest(df, "nodev", chunk_rows=10, progress=False)
    assert ds.last()["value"].tolist() == [3]
    with pytest.raises(KeyError, match="has no device column"):
        ds.last("a")


def test_unknown_or_non_measurement_columns(client, sensors):
    ds = ingest(client, sensors)
    with pytest.raises(KeyError, match=r"no measurement 'q'; measurements are \['x', 'k', 's'\]"):
        ds.last(columns="q")
    with pytest.raises(KeyError, match="'time' is the time column"):
        ds.last(columns=["x", "time"])
    with pytest.raises(KeyError, match="'dev' is the device column"):
        ds.delete(columns="dev")
    with pytest.raises(KeyError, match="no measurement"):
        ds.reset_last(columns="q")


def test_bad_bounds(client, sensors):
    ds = ingest(client, sensors)
    with pytest.raises(ValueError, match="starts after it ends"):
        ds.delete(date_range=("2026-01-02", "2026-01-01"))
    with pytest.raises(ValueError, match="date_range start='yesterday-ish' is not a time"):
        ds.delete(date_range=("yesterday-ish", None))
    with pytest.raises(ValueError, match="date_range end=<object.*is not a time"):
        ds.delete(date_range=(None, object()))
    with pytest.raises(ValueError, match="NaT"):
        ds.delete(date_range=(None, pd.NaT))
    with pytest.raises(ValueError, match="is not a pair"):
        ds.delete(date_range="2026-01-01")
    with pytest.raises(ValueError, match="not start/end too"):
        ds.delete(date_range=(None, None), start="2026-01-01")
    assert ds.meta.tombstones == ()  # nothing was recorded
    with pytest.warns(DeprecationWarning, match="date_range"):
        ds.delete("d2", start="2026-01-01 00:00:00", end="2026-01-01 00:00:00")
    # naive bounds are read in the column's time zone; strings, datetimes and ints work
    import datetime as dt
    ds.delete("d0", date_range=(dt.datetime(2026, 1, 1, 0, 16, 0), "2026-01-01 00:16:40"))
    ds.delete("d1", date_range=(ns(T0), ns(T0) + 10))
    tomb = ds.meta.tombstones[1]
    assert (tomb.start, tomb.end) == (ns(T0) + 960 * 10**9, ns(T0) + 1000 * 10**9)


def test_tz_aware_bound_on_a_naive_time_column(client):
    df = pd.DataFrame({"time": pd.date_range("2026-01-01", periods=3, freq="s"), "v": [1, 2, 3]})
    ds = client.ingest(df, "naive", chunk_rows=10, progress=False)
    # an aware bound on a naive column is converted to UTC, the zone naive columns hold
    done = ds.delete(date_range=(pd.Timestamp("2026-01-01 09:00:02", tz="Asia/Tokyo"), None))
    assert done.last_values_dropped == 0  # nothing was cached yet
    assert done.series.to_dict("records") == [{"device": None, "measurement": "v", "rows": 1}]
    assert ds.last()["value"].tolist() == [2]
    done = ds.delete(date_range=("2026-01-01 00:00:01", None))
    assert done.last_values_dropped == 1
    assert done.total == 1  # the value at 00:00:02 was hidden already: counted once


def test_delete_counts_what_reads_as_missing_afterwards(client, sensors):
    sensors.loc[::7, "x"] = np.nan  # values missing before the delete are not counted
    ds = ingest(client, sensors)  # 10 chunks of 100 rows, devices d0..d4
    ds.delete("d1", "x", date_range=(None, T0 + pd.Timedelta(seconds=100)))
    before = ds.to_pandas()
    done = ds.delete("d1", date_range=(T0 + pd.Timedelta(seconds=50), T0 + pd.Timedelta(seconds=640)))
    after = ds.to_pandas()
    assert isinstance(done, DeleteResult)
    expected = {("d1", m): int(before[m].notna().sum() - after[m].notna().sum())
                for m in MEASUREMENTS}
    assert series_rows(done) == {k: n for k, n in expected.items() if n}
    assert done.total == sum(expected.values()) > 0
    assert expected[("d1", "x")] < expected[("d1", "k")]  # x lost fewer: some were missing
    everything = ds.delete()
    assert everything.total == int(after[MEASUREMENTS].notna().sum().sum())
    assert list(everything.series["device"]) == sorted(everything.series["device"])
    assert ds.to_pandas()[MEASUREMENTS].isna().all().all()


def test_delete_of_an_unknown_device_or_column_hides_nothing(client, small):
    version = small.meta.version
    with pytest.raises(KeyError, match="no device 'zz'"):
        small.delete("zz")
    with pytest.raises(KeyError, match="no measurement 'q'"):
        small.delete("a", "q")
    assert small.meta.version == version and small.meta.tombstones == ()


def test_last_of_series():
    idx = pd.to_datetime(["2026-01-01 00:00:03", "2026-01-01 00:00:01", "2026-01-01 00:00:03",
                          "2026-01-01 00:00:09"]).tz_localize("Asia/Tokyo")
    s = pd.Series([1.0, 2.0, 3.0, np.nan], index=idx, name="v")
    t, v = last_of_series(s)
    assert t == idx[2] and str(t.tz) == "Asia/Tokyo" and v == 3.0  # tie: the later row
    assert last_of_series(pd.Series([np.nan], index=idx[:1])) == (None, None)
    assert last_of_series(pd.Series([], index=pd.DatetimeIndex([]), dtype=float)) == (None, None)
    with pytest.raises(ValueError, match="DatetimeIndex.*set_index"):
        last_of_series(pd.Series([1, 2]))
    with pytest.raises(TypeError, match="takes a pandas Series"):
        last_of_series([1, 2])  # type: ignore[arg-type]


def test_no_warning_on_a_plain_append(client, sensors):
    ds = ingest(client, sensors)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        append(ds, frame([3000], ["d0"]))


@pytest.mark.parametrize("devices", [[1.0, 2.0], [True, False],
                                     list(pd.to_datetime(["2020-01-01", "2020-06-01"]))])
def test_delete_and_export_by_device_work_for_float_bool_and_datetime_devices(client, tmp_path,
                                                                             devices):
    df = pd.DataFrame({"t": pd.date_range("2024-01-01", periods=4, freq="h"),
                       "dev": devices * 2, "v": [1.0, 2.0, 3.0, 4.0]})
    ds = client.ingest(df, "typed_dev", time_column="t", device_column="dev", chunk_rows=2,
                       progress=False)
    out = ds.export(str(tmp_path / "one.csv"), device=devices[0], progress=False)
    assert len(pd.read_csv(out)) == 2
    ds.delete(device=devices[0])
    assert ds.to_pandas()["v"].tolist()[1::2] == [2.0, 4.0]
    assert ds.to_pandas()["v"].isna().tolist() == [True, False, True, False]
    assert as_dict(ds.last(device=devices[0])) == {}


def test_a_number_names_a_device_in_the_device_columns_type(client):
    df = pd.DataFrame({"t": pd.date_range("2024-01-01", periods=4, freq="h"),
                       "dev": [1.0, 2.0] * 2, "v": [1.0, 2.0, 3.0, 4.0]})
    ds = client.ingest(df, "float_dev", time_column="t", device_column="dev", progress=False)
    assert as_dict(ds.last(device=1)) == as_dict(ds.last(device=1.0))
    assert as_dict(ds.last(device=np.int64(2)))[(2.0, "v")][1] == 4.0
    with pytest.raises(KeyError, match=r"no device 3 .*\. Known devices"):
        ds.last(device=3)
