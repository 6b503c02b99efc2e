"""The parts of the last cache on their own: chunk scans, the delete's statistics test, and
the scripts' refusals (tests/test_lastvalues.py tests the cache as a whole)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from chunkframe.core.model import ChunkMeta, Tombstone
from chunkframe.core.ranges import tombstone_may_touch
from chunkframe.lastcache.records import NO_VALUE, decode_record, encode_record, time_key
from chunkframe.lastcache.scan import chunk_candidates, max_stats
from chunkframe.lastcache.scripts import Scripts, new_token
from chunkframe.lastcache.series import require_time


def test_chunk_candidates_skip_nulls_nans_null_devices_and_null_times():
    table = pa.table({
        "t": pa.array([1, 5, 5, 9, None, 7], pa.int64()),
        "d": pa.array(["a", "a", "a", "b", "b", None]),
        "x": pa.array([1.0, 2.0, 3.0, np.nan, 4.0, 5.0]),
        "y": pa.array([None, None, None, None, None, None], pa.int64()),
    })
    got = chunk_candidates(table, "t", "d", None, ["x", "y"])
    # a: time 5 twice, the later row (2) wins; b: its NaN at 9 and null time are no values
    assert got == {("a", "x"): (5, 2)}
    assert chunk_candidates(table, "t", "d", {"b"}, ["x"]) == {}
    assert chunk_candidates(table.slice(0, 0), "t", "d", None, ["x"]) == {}
    no_device = chunk_candidates(table, "t", None, None, ["x"])
    assert no_device == {("", "x"): (7, 5)}


def test_max_stats_takes_each_devices_largest_time():
    chunks = [ChunkMeta(0, 0, 2, "k0", "c", 1, {"a": [1, 5], "b": [2, 3]}),
              ChunkMeta(1, 2, 2, "k1", "c", 1, {"a": [0, 4], "c": [7, 8]}), ]
    assert max_stats(chunks) == {"a": 5, "b": 3, "c": 8}
    assert max_stats([]) == {}


@pytest.mark.parametrize("tomb, hides", [
    (Tombstone(None, None, None, None), True),
    (Tombstone("a", None, 6, None), False),        # after a's last time
    (Tombstone("a", None, None, 0), False),        # before a's first time
    (Tombstone("a", None, 5, 5), True),            # bounds are inclusive
    (Tombstone("z", None, None, None), False),     # no such device in the chunk
    (Tombstone(None, None, 7, 9), True),           # b's span
    (Tombstone(None, None, None, None, rows=10), False),  # the chunk came after the delete
])
def test_a_delete_may_hide_values_only_where_the_chunk_statistics_allow(tomb, hides):
    cm = ChunkMeta(0, 10, 5, "k", "c", 1, {"a": [1, 5], "b": [8, 9]})
    assert tombstone_may_touch(tomb, cm, "t") is hides
    assert tombstone_may_touch(tomb, ChunkMeta(0, 0, 5, "k", "c", 1, {}), "t") is True  # maybe


def test_records_of_null_and_no_value():
    assert decode_record(NO_VALUE) is None
    assert decode_record(encode_record(5)) is None  # a null value: the time key alone
    assert encode_record(-1) < encode_record(0) < encode_record(1)


def test_require_time_raises_the_one_error(client):
    from chunkframe import NoTimeColumnError

    ds = client.ingest(pd.DataFrame({"v": [1, 2]}), "untimed", progress=False)
    with pytest.raises(NoTimeColumnError, match="'untimed' has no time column, so it cannot x"):
        require_time(ds.meta, "it cannot x")


def test_scripts_refuse_a_cache_that_does_not_describe_the_version(client):
    ds = client.ingest(pd.DataFrame({"t": pd.date_range("2026-01-01", periods=4, freq="s"),
                                     "v": [1.0, 2.0, 3.0, 4.0]}), "s", time_column="t",
                       progress=False)
    scripts = Scripts(client.redis)
    keys = client.state.keys("s")
    meta = ds.meta
    assert scripts.begin_write(keys, token=new_token(), generation=meta.generation,
                               version=meta.version + 5, devices=[], fields=[]) is None
    assert scripts.invalidate(keys, [], None, None, token=new_token(),
                              generation=meta.generation, before=meta.version + 5,
                              after=meta.version + 6) == -1
    # reinit insists on the lock state the caller claims: nobody holds it here
    assert scripts.reinit(keys, meta, meta.version, {}, token=new_token(), lock_held=True) is False
    assert scripts.reinit(keys, meta, meta.version, {"": 7}, token=new_token(),
                          lock_held=False) is True
    assert client.redis.hget(keys.flushed, "") == time_key(7).encode()
    assert scripts.apply(keys, [], token=new_token(), high=False, expect_ver=meta.version + 1) == -1
    assert scripts.reset(keys, [], token=new_token()) == 0
