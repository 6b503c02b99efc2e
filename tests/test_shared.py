"""Shared chunks: writes that reproduce a kept version's chunk reference its file (issue 25, item 4)."""

from __future__ import annotations

import os

import pandas as pd
import pytest
from crash_worker import changed_frame, kill_at, source_frame
from test_history import _fresh, _worker_env

from chunkframe.storage.codec import choose_encodings, to_arrow
from chunkframe.storage.sharing import SharedChunks


def _stored(client, name: str) -> int:
    """Bytes of every file the store holds for dataset ``name``."""
    return sum(client.store.size(k) or 0 for k in client.store.list(name))


def _keys(ds) -> list[str]:
    return ds.chunks["key"].tolist()


def test_an_overwrite_with_identical_data_adds_under_one_percent(client):
    frame = source_frame(20_000)
    first = client.ingest(frame, "same", chunk_rows=2_000, progress=False).meta.generation
    before = _stored(client, "same")
    again = client.ingest(frame, "same", chunk_rows=2_000, mode="overwrite", progress=False)
    assert again.meta.version == 2 and again.meta.generation != first
    assert _keys(again) == _keys(client.open("same", version=1))  # every file shared
    assert _stored(client, "same") <= before * 1.01
    pd.testing.assert_frame_equal(again.to_pandas(), frame)
    assert client.recover(verify=True).empty


def test_only_unchanged_chunks_are_shared(client):
    frame = source_frame(1_000)
    client.ingest(frame, "part", chunk_rows=100, progress=False)
    old = _keys(client.open("part"))
    changed = changed_frame(1_000, 650)  # chunks 6.. differ
    ds = client.ingest(changed, "part", chunk_rows=100, mode="overwrite", progress=False)
    new = _keys(ds)
    assert new[:6] == old[:6] and not set(new[6:]) & set(old)
    pd.testing.assert_frame_equal(ds.to_pandas(), changed)
    pd.testing.assert_frame_equal(client.open("part", version=1).to_pandas(), frame)


def test_other_bytes_are_never_shared(client):
    """Another compression, other encodings or another schema write other bytes."""
    frame = source_frame(400)
    client.ingest(frame, "bytes", chunk_rows=100, progress=False)
    old = set(_keys(client.open("bytes")))
    zstd = client.ingest(frame, "bytes", chunk_rows=100, mode="overwrite",
                         compression="zstd", progress=False)
    assert not set(_keys(zstd)) & old
    plain = client.ingest(frame, "bytes", chunk_rows=100, mode="overwrite",
                          encodings={"id": "plain"}, progress=False)
    assert not set(_keys(plain)) & old
    renamed = client.ingest(frame.rename(columns={"value": "v"}), "bytes", chunk_rows=100,
                            mode="overwrite", progress=False)
    assert not set(_keys(renamed)) & old
    shifted = client.ingest(frame.iloc[50:], "bytes", chunk_rows=100, mode="overwrite",
                            progress=False)  # other boundaries: other starts
    assert not set(_keys(shifted)) & old


def test_a_damaged_or_look_alike_file_is_not_shared(client):
    frame = source_frame(300)
    ds = client.ingest(frame, "alike", chunk_rows=100, progress=False)
    cm = ds.chunk_metas[1]
    shared = SharedChunks(client.store, client.catalog, "alike")
    table = to_arrow(frame)
    enc = choose_encodings(table.slice(0, 100))
    assert shared.holds(cm, table.slice(100, 100), 100, None, enc)
    assert not shared.holds(cm, table.slice(101, 100), 100, None, enc)  # other rows
    assert not shared.holds(cm, table.slice(100, 100), 100, "lz4", enc)
    assert not shared.holds(cm, table.slice(100, 100), 100, None, {})
    path = client.store.path(cm.key)
    raw = bytearray(open(path, "rb").read())
    raw[len(raw) // 2] ^= 0xFF  # a value: the file reads, but fails its checksum
    os.chmod(path, 0o600)
    with open(path, "wb") as f:
        f.write(raw)
    damaged = bytes(raw)
    raw[len(raw) // 2] ^= 0xFF
    assert damaged != bytes(raw)
    assert not shared.holds(cm, table.slice(100, 100), 100, None, enc)


def test_shared_chunks_survive_pruning_the_version_that_wrote_them(client):
    frame = source_frame(1_000)
    client.ingest(frame, "keep", chunk_rows=100, progress=False)
    written = _keys(client.open("keep"))
    changed = changed_frame(1_000, 500)
    client.ingest(changed, "keep", chunk_rows=100, mode="overwrite", progress=False)
    pruned = client.open("keep").prune_versions(keep_last=1)
    assert pruned["version"].tolist() == [1]
    ds = _fresh(client).open("keep")
    assert _keys(ds)[:5] == written[:5]
    assert all(client.store.exists(k) for k in written[:5])
    assert not any(client.store.exists(k) for k in written[5:])  # only v1 read those
    pd.testing.assert_frame_equal(ds.to_pandas(), changed)
    assert ds.verify(progress=False).empty
    assert client.recover(verify=True).empty


def test_a_file_shared_down_a_chain_of_versions_goes_with_its_last_reader(client):
    frame = source_frame(500)
    client.ingest(frame, "chain", chunk_rows=100, progress=False)
    first = _keys(client.open("chain"))
    for _ in range(2):  # v2 and v3 share v1's files
        client.ingest(frame, "chain", chunk_rows=100, mode="overwrite", progress=False)
    client.open("chain").prune_versions(keep_last=1)  # v1, v2 go: their files stay (v3)
    assert all(client.store.exists(k) for k in first)
    pd.testing.assert_frame_equal(_fresh(client).open("chain").to_pandas(), frame)
    other = changed_frame(500, 0)
    client.ingest(other, "chain", chunk_rows=100, mode="overwrite", progress=False)
    client.open("chain").prune_versions(keep_last=1)  # v3 goes, and with it v1's files
    assert not any(client.store.exists(k) for k in first)
    pd.testing.assert_frame_equal(_fresh(client).open("chain").to_pandas(), other)
    assert client.recover().empty


def test_a_snapshot_keeps_the_files_it_reads(client):
    frame = source_frame(400)
    client.ingest(frame, "snap", chunk_rows=100, progress=False)
    client.snapshot("before-change", ["snap"])
    client.ingest(frame, "snap", chunk_rows=100, mode="overwrite", progress=False)  # shares
    other = changed_frame(400, 0)
    client.ingest(other, "snap", chunk_rows=100, mode="overwrite", progress=False)
    client.open("snap").prune_versions(keep_last=1)  # v2 goes; v1 is the snapshot's
    pd.testing.assert_frame_equal(_fresh(client).open("snap", version=1).to_pandas(), frame)
    assert client.recover(verify=True).empty
    client.delete_snapshot("before-change")
    client.open("snap").prune_versions(keep_last=1)
    assert client.store.list("snap") and client.recover().empty
    pd.testing.assert_frame_equal(_fresh(client).open("snap").to_pandas(), other)


def test_an_append_shares_the_chunks_of_a_kept_version(client):
    frame = source_frame(1_000)
    client.ingest(frame, "grow", chunk_rows=100, progress=False)
    v1 = _keys(client.open("grow"))
    ds = client.ingest(frame.iloc[:500], "grow", chunk_rows=100, mode="overwrite",
                       progress=False)
    ds.append(frame.iloc[500:], chunk_rows=100, progress=False)
    ds = _fresh(client).open("grow")
    assert _keys(ds) == v1  # the first half by the overwrite, the rest by the append
    pd.testing.assert_frame_equal(ds.to_pandas(), frame)
    ds.prune_versions(keep_last=1)
    pd.testing.assert_frame_equal(_fresh(client).open("grow").to_pandas(), frame)
    assert client.recover(verify=True).empty


def test_a_compaction_shares_a_merged_chunk_a_kept_version_stores(client):
    frame = source_frame(200)
    client.ingest(frame, "merge", chunk_rows=100, progress=False)  # v1: chunks 0-99, 100-199
    v1 = _keys(client.open("merge"))
    ds = client.ingest(frame.iloc[:100], "merge", chunk_rows=100, mode="overwrite",
                       progress=False)
    ds.append(frame.iloc[100:150], chunk_rows=100, progress=False)
    ds.append(frame.iloc[150:], chunk_rows=100, progress=False)
    assert _keys(ds)[0] == v1[0] and len(_keys(ds)) == 3
    ds.compact(min_rows=60, progress=False)  # 100-149 + 150-199: v1's second chunk again
    assert _keys(ds) == v1
    pd.testing.assert_frame_equal(ds.to_pandas(), frame)
    ds.prune_versions(keep_last=1)
    pd.testing.assert_frame_equal(_fresh(client).open("merge").to_pandas(), frame)
    assert client.recover(verify=True).empty


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["ckpt-done:3", "put-done:1", "commit-tx:1",
                                    "commit-done:1", "publish-done:1"])
def test_kill_9_during_an_overwrite_that_shares_chunks(client, moment):
    base = source_frame(1_000)
    client.ingest(base, "crash", chunk_rows=100, progress=False)  # v1
    v2 = changed_frame(1_000, 500)
    client.ingest(v2, "crash", chunk_rows=100, mode="overwrite", progress=False)  # shares 0-4
    v3 = changed_frame(1_000, 850)  # shares 0-7 (v1) and 9 (v2); writes 8
    kill_at(["overwrite", "crash", "850"], _worker_env(client, CF_ROWS="1000",
                                                        CF_CHUNK_ROWS="100"), moment)
    committed = moment in ("commit-done:1", "publish-done:1")
    assert client.catalog.get("crash").version == 2 + committed
    report = client.recover(apply=True)
    assert report["applied"].all(), report.to_dict("records")
    assert client.recover(verify=True).empty
    fresh = _fresh(client)
    expected = {1: base, 2: v2, **({3: v3} if committed else {})}
    for version, frame in expected.items():  # every kept version reads exactly
        pd.testing.assert_frame_equal(fresh.open("crash", version=version).to_pandas(), frame)
    pd.testing.assert_frame_equal(fresh.open("crash").to_pandas(), v3 if committed else v2)
    if committed:  # it shared what it could: 0-7 of v1, 9 of v2
        keys, v1_keys, v2_keys = (_keys(fresh.open("crash", version=v)) for v in (3, 1, 2))
        assert keys[:8] == v1_keys[:8] and keys[9] == v2_keys[9] and keys[8] not in v2_keys
    assert fresh.open("crash").verify(progress=False).empty
    fresh.open("crash").prune_versions(keep_last=1)
    pd.testing.assert_frame_equal(_fresh(client).open("crash").to_pandas(),
                                  v3 if committed else v2)
    assert client.recover(verify=True).empty

