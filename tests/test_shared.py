"""Shared chunks: writes that reproduce a kept version's chunk reference its file (issue 25, item 4)."""

from __future__ import annotations

import os

import pandas as pd
import pytest
from crash_worker import changed_frame, kill_at, source_frame
from test_cli import cli, where  # noqa: F401 - the command line's fixtures
from test_history import _fresh, _worker_env

import chunkframe as cf
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


def test_an_update_that_restores_old_values_shares_their_file_and_counts_no_write(client):
    frame = source_frame(1_000)
    client.ingest(frame, "undo", chunk_rows=100, progress=False)
    first = _keys(client.open("undo"))
    fix = frame.iloc[[250]].copy()
    fix["value"] = 1e6
    done = client.open("undo").update(fix, on=["id"])
    assert (done.chunks_rewritten, done.chunks_appended) == (1, 0)
    undone = client.open("undo").update(frame.iloc[[250]], on=["id"])  # the old value back
    assert undone.changed and undone.version == 3
    assert (undone.chunks_rewritten, undone.chunks_appended) == (0, 0)  # version 1's file
    assert _keys(client.open("undo")) == first
    pd.testing.assert_frame_equal(client.open("undo").to_pandas(), frame)


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


# -- ds.storage() and `chunkframe info ID --storage` (issue 25, item 5) -------------------------

def test_storage_reports_bytes_encodings_and_ratios_per_column(client):
    frame = source_frame(20_000)
    ds = client.ingest(frame, "report", chunk_rows=5_000, progress=False)
    df = ds.storage(progress=False)
    assert type(df) is pd.DataFrame
    assert df.columns.tolist() == ["column", "type", "encoding", "bytes", "plain_bytes", "ratio",
                                   "shared_bytes"]
    assert df["column"].tolist() == frame.columns.tolist()
    by = df.set_index("column")
    assert by.loc["id", "encoding"] == "narrow (int16)"  # 0..19,999 in each chunk
    assert by.loc["device", "encoding"] == "categorical (int8 indices)"  # as pandas has it
    assert by.loc["label", "encoding"] == "dictionary (int16 indices)"  # 997 distinct
    assert by.loc["label", "ratio"] > 2
    assert by.loc["value", "encoding"] == "plain"
    assert 8 * 20_000 <= by.loc["id", "plain_bytes"] <= 8.2 * 20_000  # (+ a validity bitmap)
    assert by.loc["id", "bytes"] == 2 * 20_000 and by.loc["id", "ratio"] >= 4.0
    assert by.loc["value", "bytes"] == by.loc["value", "plain_bytes"] == 8 * 20_000
    assert df["bytes"].sum() <= ds.meta.nbytes <= df["bytes"].sum() * 1.1  # + schemas, footers
    assert (df["shared_bytes"] == 0).all()  # one version: nothing shared
    pd.testing.assert_frame_equal(ds.to_pandas(), frame)  # reading is unaffected


def test_storage_of_a_compressed_dataset_measures_the_compressed_buffers(client):
    frame = source_frame(20_000)
    ds = client.ingest(frame, "zipped", chunk_rows=5_000, compression="zstd", progress=False)
    df = ds.storage(progress=False)
    assert df["bytes"].sum() <= ds.meta.nbytes <= df["bytes"].sum() * 1.1
    assert (df["ratio"] > 1).all()  # zstd helps every column of this frame
    assert df.set_index("column").loc["id", "ratio"] > 4  # narrowed, then compressed


def test_storage_counts_the_bytes_other_versions_share(client):
    frame = source_frame(1_000)
    client.ingest(frame, "versions", chunk_rows=100, progress=False)
    ds = client.ingest(changed_frame(1_000, 600), "versions", chunk_rows=100, mode="overwrite",
                       progress=False)  # chunks 0-5 shared with v1
    df = ds.storage(progress=False)
    value = df.set_index("column").loc["value"]
    assert value["shared_bytes"] == 6 * 800 and value["bytes"] == 10 * 800
    v1 = client.open("versions", version=1).storage(progress=False)
    assert v1.set_index("column").loc["value", "shared_bytes"] == 6 * 800
    ds.append(frame.iloc[:100].assign(id=range(1_000, 1_100)), chunk_rows=100, progress=False)
    appended = ds.storage(progress=False).set_index("column").loc["value"]
    assert appended["shared_bytes"] == 10 * 800  # v2 reads all but the appended chunk
    ds.prune_versions(keep_last=1)
    assert (ds.storage(progress=False)["shared_bytes"] == 0).all()


def test_storage_repr_says_what_is_shared(client):
    from chunkframe.display.reprs import describe, repr_html

    frame = source_frame(400)
    client.ingest(frame, "shown", chunk_rows=100, progress=False)
    ds = client.ingest(frame, "shown", chunk_rows=100, mode="overwrite", progress=False)
    df = ds.storage(progress=False)
    html = repr_html(df)
    assert html is not None and "storage of version 2" in html and "shown" in html
    line = describe(df)
    assert line is not None and line.startswith("storage of version 2 of 'shown': 6 columns")
    assert "shared with other versions (100%)" in line
    assert describe(df.copy()) is None  # a derived frame shows as pandas shows it


def test_storage_failure_modes_say_what_happened(client):
    frame = source_frame(300)
    ds = client.ingest(frame, "gone", chunk_rows=100, progress=False)
    key = ds.chunk_metas[1].key
    os.remove(client.store.path(key))
    with pytest.raises(cf.ChunkCorruptionError, match="chunk 1 of dataset 'gone'.*missing"):
        _fresh(client).open("gone").storage(progress=False)
    client.drop("gone", force=True)
    with pytest.raises(cf.DatasetNotFoundError, match="gone"):
        ds.storage(progress=False)


def test_cli_info_storage_shows_the_same(client, cli):  # noqa: F811 - the fixture
    import json

    frame = source_frame(400)
    client.ingest(frame, "cli", chunk_rows=100, progress=False)
    client.ingest(frame, "cli", chunk_rows=100, mode="overwrite", progress=False)
    code, out, err = cli("info", "cli", "--storage")
    assert code == 0, err
    assert "storage of version 2 of 'cli': 6 columns" in out
    assert "shared with other versions (100%)" in out
    assert "narrow (int16)" in out and "shared_bytes" in out
    code, out, err = cli("--json", "info", "cli", "--storage")
    assert code == 0, err
    doc = json.loads(out)
    expected = client.open("cli").storage(progress=False)
    assert [r["column"] for r in doc["storage"]] == expected["column"].tolist()
    assert [r["bytes"] for r in doc["storage"]] == expected["bytes"].tolist()
    assert doc["storage_summary"].startswith("storage of version 2")
    code, out, err = cli("info", "nope", "--storage")
    assert code != 0 and "nope" in err and "Traceback" not in err
    code, out, err = cli("--json", "info", "nope", "--storage")
    assert code != 0 and json.loads(out)["error"] == "DatasetNotFoundError"
