"""Integer arguments: numpy integers (what ds.versions() and arrays hand out) wherever a version,
a serial number or a count is taken; bools, floats and strings nowhere."""

from __future__ import annotations

import fractions

import numpy as np
import pandas as pd
import pytest
from frames import sensors

import chunkframe as cf
from chunkframe.contextcache import ContextCache
from chunkframe.core.errors import ContextError, InvalidArgumentError, VersionNotFoundError
from chunkframe.core.integers import as_integer, integer_at_least
from chunkframe.service.config import ServiceConfig

NUMPY_INTEGERS = [np.int8(3), np.int16(3), np.int32(3), np.int64(3), np.uint8(3), np.uint64(3)]


@pytest.mark.parametrize("value", [3, *NUMPY_INTEGERS], ids=lambda v: type(v).__name__)
def test_every_integral_number_is_an_integer(value):
    assert as_integer(value) == 3 and type(as_integer(value)) is int
    assert integer_at_least(value, "n", 1) == 3


@pytest.mark.parametrize("value", [True, np.bool_(True), 3.0, np.float64(3), "3", None,
                                   fractions.Fraction(3, 1), [3]], ids=repr)
def test_bools_floats_and_strings_are_not(value):
    assert as_integer(value) is None
    with pytest.raises(InvalidArgumentError, match=r"^n must be an integer >= 1 \(why\), got "):
        integer_at_least(value, "n", 1, "why")
    with pytest.raises(InvalidArgumentError, match=r"got np.int64\(0\)"):
        integer_at_least(np.int64(0), "n", 1)


def test_versions_from_versions_open_as_they_are_handed_out(client):
    ds = client.ingest(sensors(100), "v", chunk_rows=40, progress=False)
    ds.append(sensors(10, seed=1), progress=False)
    first = ds.versions()["version"].iloc[0]
    assert isinstance(first, np.integer)
    old = client.open("v", version=first)
    assert old.version == 1 and type(old.version) is int and len(old) == 100
    assert cf.open("v", version=np.uint8(2)).version == 2
    for impossible in (2**63, 2**64 + 1, np.uint64(2**63), -(2**63) - 1, 0, -1):
        with pytest.raises(VersionNotFoundError, match=r"has no version -?\d+: the versions it "
                                                       r"has are 1-2"):
            client.open("v", version=impossible)
    with pytest.raises(InvalidArgumentError, match="version must be an integer"):
        client.open("v", version=np.float64(1))


def test_counts_and_serial_numbers_take_numpy_integers(client, redis_client, prefix):
    frame = sensors(500)
    ds = client.ingest(frame, "n", chunk_rows=np.int64(100), workers=np.int32(2),
                       max_pending=np.int64(3), progress=False)
    assert ds.chunks["rows"].tolist() == [100] * 5 and ds.meta.chunk_rows == 100
    ds.append(sensors(50, seed=2), chunk_rows=np.uint16(100), progress=False)
    assert len(ds) == 550
    pd.testing.assert_series_equal(ds.get(np.uint64(7)), frame.iloc[7])
    pd.testing.assert_frame_equal(ds.slice(np.int64(10), np.int32(20)).reset_index(drop=True),
                                  frame.iloc[10:20].reset_index(drop=True))
    pruned = ds.prune_versions(keep_last=np.int64(1))
    assert pruned["version"].tolist() == [1]
    with pytest.raises(InvalidArgumentError, match="keep_last must be an integer >= 1"):
        ds.prune_versions(keep_last=np.float64(1))
    cache = ContextCache(redis_client, prefix=prefix, max_bytes=np.int64(2**20),
                         max_value_bytes=np.int32(2**10))
    assert cache.max_bytes == 2**20
    with pytest.raises(ContextError, match="max_bytes must be a positive number of bytes"):
        ContextCache(redis_client, prefix=prefix, max_bytes=np.float64(2**20))
    assert ServiceConfig(max_rows=np.int64(10)).max_rows == 10
    with pytest.raises(InvalidArgumentError, match="max_rows must be an integer >= 1, got 0"):
        ServiceConfig(max_rows=0)
    small = cf.connect(store=client.settings.store_url, redis=client.settings.redis_url,
                       catalog=client.settings.catalog, prefix=client.settings.prefix,
                       chunk_cache_bytes=np.int64(10_000))
    assert small.settings.chunk_cache_bytes == 10_000
    with pytest.raises(InvalidArgumentError, match="chunk_cache_bytes must be an integer >= 0"):
        cf.connect(store=client.settings.store_url, redis=client.settings.redis_url,
                   catalog=client.settings.catalog, chunk_cache_bytes="lots")
