"""The local tier: an object store's chunks kept decompressed on local disk, shared, checked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
from frames import all_dtypes

import chunkframe as cf
from chunkframe.storage.tier import LocalTier

ROOT = Path(__file__).resolve().parent.parent


def _downloads(client, monkeypatch) -> list[str]:
    """Keys the client's store downloads from now on."""
    got: list[str] = []
    real = client.store.read_mapped

    def counting(key):
        got.append(key)
        return real(key)

    monkeypatch.setattr(client.store, "read_mapped", counting)
    return got


def _entries(home: Path) -> list[Path]:
    return sorted((home / "tier").rglob("*.arrow"))


def test_a_second_read_comes_from_the_tier(s3_client, tmp_path, monkeypatch):
    df = all_dtypes(3_000)
    ds = s3_client.ingest(df, "tiered", chunk_rows=1_000)
    assert ds.meta.compression == "zstd"
    pd.testing.assert_frame_equal(ds.to_pandas(), df)
    assert len(_entries(tmp_path)) == 3
    s3_client.reader.clear()
    downloads = _downloads(s3_client, monkeypatch)
    pd.testing.assert_frame_equal(ds.to_pandas(), df)
    assert downloads == [] and s3_client.reader.tier_hits >= 3
    # kept decompressed: an uncompressed Arrow IPC file, its encodings as stored
    with pa.ipc.open_file(str(_entries(tmp_path)[0])) as f:
        assert f.schema.metadata and b"chunkframe.chunk" in f.schema.metadata


def test_a_damaged_entry_is_fetched_again_never_served(s3_client, tmp_path, monkeypatch):
    df = all_dtypes(2_000)
    ds = s3_client.ingest(df, "damaged", chunk_rows=1_000)
    ds.to_pandas()
    for path in _entries(tmp_path):
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    s3_client.reader.clear()
    downloads = _downloads(s3_client, monkeypatch)
    pd.testing.assert_frame_equal(ds.to_pandas(), df)
    assert len(downloads) == 2 and s3_client.reader.tier.dropped == 2
    assert len(_entries(tmp_path)) == 2  # written again, whole


def test_a_stale_entry_is_never_served(tmp_path):
    tier = LocalTier(tmp_path, "s3://b/c", 10_000)
    tier.put("ds/g1/c0.arrow", "crc32c:00000001", b"old bytes")
    assert tier.get("ds/g1/c0.arrow", "crc32c:00000002") is None  # the record moved on
    assert tier.get("other", "crc32c:00000001") is None
    assert tier.get("ds/g1/c0.arrow", "crc32c:00000001").to_pybytes() == b"old bytes"
    assert LocalTier(tmp_path, "s3://b/other", 10_000).get("ds/g1/c0.arrow",
                                                           "crc32c:00000001") is None


def test_the_tier_is_bounded_lru_by_bytes(tmp_path):
    tier = LocalTier(tmp_path, "s3://b/c", 250)
    for i in range(2):
        tier.put(f"k{i}", "crc32c:0", bytes(100))
        os.utime(tier._find(f"k{i}", "crc32c:0"), (1_000 + i, 1_000 + i))  # k0 is older
    tier.put("k2", "crc32c:0", bytes(100))  # over the bound: the least recently used goes
    assert tier.nbytes() <= 250
    assert tier.get("k0", "crc32c:0") is None and tier.get("k2", "crc32c:0") is not None
    tier.put("huge", "crc32c:0", bytes(1_000))  # larger than the bound: not kept
    assert tier.get("huge", "crc32c:0") is None
    assert LocalTier(tmp_path, "s3://b/c", 0).get("k2", "crc32c:0") is None  # off


def test_two_processes_share_the_tier(s3_client, s3_options, tmp_path, monkeypatch):
    df = all_dtypes(2_000)
    s3_client.ingest(df, "shared", chunk_rows=1_000)
    s = s3_client.settings
    script = (
        "import json, sys, chunkframe as cf\n"
        "a = json.loads(sys.argv[1])\n"
        "c = cf.connect(store=a['store'], redis=a['redis'], catalog=a['catalog'], home=a['home'],"
        " prefix=a['prefix'], storage_options=a['options'])\n"
        "print(len(c.open('shared').to_pandas()))\n")
    args = {"store": s.store_url, "redis": s.redis_url, "catalog": s.catalog,
            "home": str(tmp_path), "prefix": s.prefix, "options": s3_options}
    assert not _entries(tmp_path)
    out = subprocess.run([sys.executable, "-c", script, json.dumps(args)], check=True,
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
                         timeout=120)
    assert out.stdout.strip() == "2000"
    assert len(_entries(tmp_path)) == 2  # the other process filled it
    downloads = _downloads(s3_client, monkeypatch)
    s3_client.reader.clear()
    pd.testing.assert_frame_equal(s3_client.open("shared").to_pandas(), df)
    assert downloads == []


def test_local_stores_have_no_tier(client):
    assert client.reader.tier is None
    assert cf.connect(store=client.settings.store_url, redis=client.settings.redis_url,
                      catalog=client.settings.catalog, home=client.settings.home,
                      prefix=client.settings.prefix).reader.tier is None
