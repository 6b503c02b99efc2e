"""Costs that do not grow with history: manifests, commits of deltas, catch-up, migration, compaction."""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
from dataclasses import replace

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from crash_worker import kill_at, source_frame
from frames import all_dtypes, sensors
from test_versions import _concat

import chunkframe as cf
import chunkframe.storage.manifest as manifest_mod
from chunkframe.core.errors import (
    BackendUnavailableError,
    ChunkCorruptionError,
    DatasetNotFoundError,
    InvalidArgumentError,
    ReadOnlyVersionError,
)
from chunkframe.core.model import ChunkMeta
from chunkframe.storage.catalog import Catalog
from chunkframe.storage.state import State


@pytest.fixture
def small_checkpoints(monkeypatch):
    """Checkpoint every 4 chunks, so that a few appends cross several checkpoints."""
    monkeypatch.setattr(manifest_mod, "CHECKPOINT_CHUNKS", 4)
    return 4


def _growing(client, name: str, appends: int, rows: int = 50, chunk_rows: int = 100):
    """A dataset of one chunk grown by ``appends`` appends of ``rows`` rows (a chunk each)."""
    frame = sensors(rows * (appends + 1), devices=3)
    ds = client.ingest(frame.iloc[:rows], name, chunk_rows=chunk_rows, time_column="time",
                       device_column="dev", progress=False)
    for i in range(1, appends + 1):
        ds.append(frame.iloc[i * rows:(i + 1) * rows], chunk_rows=chunk_rows, progress=False)
    return ds, frame


def _redis_entries(client, ds) -> int:
    return client.redis.hlen(client.state.keys(ds.id).chunks(ds.meta.generation))


def _fresh(client) -> cf.Client:
    return cf.connect(store=client.settings.store_url, redis=client.settings.redis_url,
                      catalog=client.settings.catalog, home=client.settings.home,
                      prefix=client.settings.prefix)


def test_a_commit_writes_only_its_own_chunks_and_redis_keeps_only_recent_ones(
        client, small_checkpoints, monkeypatch):
    written: list[int] = []
    real = Catalog.commit

    def commit(self, meta, chunks, *a, **k):
        written.append(len(chunks))
        return real(self, meta, chunks, *a, **k)

    monkeypatch.setattr(Catalog, "commit", commit)
    ds, frame = _growing(client, "grows", appends=13)
    assert written == [1] * 14  # the first ingest's chunk, then one per append: never all
    assert ds.meta.chunks == 14
    ref = client.catalog.manifest("grows", ds.meta.generation)
    assert ref is not None and ref.chunks == 12  # checkpointed at 4, 8 and 12 chunks
    # only the entries after the checkpoint, and a window before it for handles a little behind
    assert _redis_entries(client, ds) == 2 + small_checkpoints
    assert [k for k in client.store.list("grows") if k.endswith(".manifest")] == [ref.key]
    pd.testing.assert_frame_equal(_fresh(client).open("grows").to_pandas(), frame)
    assert client.catalog.chunks("grows", ds.meta.generation) == list(ds.chunk_metas)


def test_a_fresh_open_reads_a_manifest_not_one_document_per_chunk(client, monkeypatch):
    frame = sensors(3_000, devices=4)
    client.ingest(frame, "wide", chunk_rows=10, progress=False)  # 300 chunks: checkpointed
    client.open("wide").append(frame.iloc[:30], progress=False)  # 3 entries after it
    decoded = []
    real = ChunkMeta.from_json.__func__

    monkeypatch.setattr(ChunkMeta, "from_json",
                        classmethod(lambda cls, text: decoded.append(1) or real(cls, text)))
    other = _fresh(client)
    ds = other.open("wide")
    pd.testing.assert_series_equal(ds.get(2_999), frame.iloc[2_999])
    assert len(ds) == 3_030 and len(decoded) == 3  # the three entries after the checkpoint


def test_a_handle_catches_up_by_reading_only_the_entries_committed_since(
        client, small_checkpoints, monkeypatch):
    ds, frame = _growing(client, "follow", appends=5)
    reader = client.reader
    reader.snapshot("follow", refresh=True)
    asked, manifests = [], []
    real_head = State.head
    monkeypatch.setattr(State, "head", lambda self, d, g=None, since=0: asked.append(since)
                        or real_head(self, d, g, since))
    real_manifest = reader.manifest
    monkeypatch.setattr(reader, "manifest", lambda *a: manifests.append(a) or real_manifest(*a))
    writer = _fresh(client).open("follow")
    more = sensors(150, devices=3, seed=9)
    for i in range(3):
        writer.append(more.iloc[i * 50:(i + 1) * 50], chunk_rows=100, progress=False)
    snap = reader.snapshot("follow", refresh=True)
    assert asked[-1] == 6  # the handle held 6 chunks: it asked only for those after them
    assert not manifests  # ...and read no checkpoint again, though one was written since
    assert len(snap.chunks) == 9
    pd.testing.assert_frame_equal(ds.to_pandas(), _concat(frame, more))


def test_a_writer_adopts_what_it_committed_without_reading_it_back(client, monkeypatch):
    ds, frame = _growing(client, "adopt", appends=2)
    asked: list[str] = []
    real_head, real_get = State.head, Catalog.get
    monkeypatch.setattr(State, "head", lambda self, d, *a: asked.append("head")
                        or real_head(self, d, *a))
    monkeypatch.setattr(Catalog, "get", lambda self, d: asked.append("get") or real_get(self, d))
    more = sensors(60, devices=3, seed=4)
    ds.append(more, chunk_rows=100, progress=False)
    assert asked == []  # neither Redis's head nor the record read back after the commit
    assert client.reader.holds(ds.meta) and ds.meta.rows == len(frame) + 60
    monkeypatch.undo()
    pd.testing.assert_frame_equal(ds.to_pandas(), _concat(frame, more))
    fresh = _fresh(client).open("adopt")
    assert list(fresh.chunk_metas) == list(ds.chunk_metas) and fresh.meta == ds.meta


def test_entries_that_do_not_tile_the_commit_are_not_adopted(client):
    ds, _ = _growing(client, "noadopt", appends=2)
    reader, meta = client.reader, ds.meta
    before = reader.snapshot("noadopt")
    chunks = list(before.chunks)
    newer = replace(meta, version=meta.version + 1, chunks=meta.chunks + 1, rows=meta.rows + 5)
    stray = replace(chunks[0], chunk=meta.chunks, rows=5)  # starts at 0, not where rows end
    reader.adopt(newer, "append", [stray])
    assert not reader.holds(newer) and reader.snapshot("noadopt") is before
    other_generation = replace(newer, generation=meta.generation + 1)
    reader.adopt(other_generation, "append", [replace(stray, start=meta.rows)])
    assert not reader.holds(other_generation)


def _make_old_format(client, ds) -> None:
    """Turn ``ds`` into what the release before manifests wrote: every chunk entry in Redis,
    no checkpoint pointer, no manifests table in the catalog (schema version 5)."""
    meta = client.catalog.get(ds.id)
    chunks = client.catalog.chunks(ds.id, meta.generation)
    keys = client.state.keys(ds.id)
    client.redis.hdel(keys.meta, "manifest", "manifest_chunks")
    client.redis.hset(keys.chunks(meta.generation), mapping={c.chunk: c.to_json() for c in chunks})
    for key in client.store.list(ds.id):
        if key.endswith(".manifest"):
            client.store.delete(key)
    db = sqlite3.connect(client.settings.catalog)
    db.execute("DROP TABLE manifests")
    db.execute("PRAGMA user_version=5")
    db.commit()
    db.close()


def test_a_dataset_of_the_old_format_reads_then_migrates_on_its_first_write(tmp_path, client):
    frame = sensors(2_000, devices=3)
    ds = client.ingest(frame.iloc[:1_900], "legacy", chunk_rows=10, progress=False)
    _make_old_format(client, ds)
    assert not client.redis.hexists(client.state.keys("legacy").meta, "manifest")

    old = _fresh(client)  # reads before any write: every entry from Redis, then the catalog
    pd.testing.assert_frame_equal(old.open("legacy").to_pandas(), frame.iloc[:1_900])
    client.redis.delete(client.state.keys("legacy").meta)  # Redis lost it: the catalog's rows
    old.reader.clear()
    pd.testing.assert_frame_equal(old.open("legacy").to_pandas(), frame.iloc[:1_900])
    assert old.catalog.manifest("legacy", ds.meta.generation) is None  # migrated schema

    old.open("legacy").append(frame.iloc[1_900:], chunk_rows=10, progress=False)  # first write
    ref = old.catalog.manifest("legacy", ds.meta.generation)
    assert ref is not None and ref.chunks == 200  # the whole table, checkpointed
    assert _redis_entries(old, ds) == manifest_mod.CHECKPOINT_CHUNKS
    pd.testing.assert_frame_equal(_fresh(client).open("legacy").to_pandas(), frame)
    assert old.recover().empty


def _append_forever(settings: dict, rows: int, rounds: int) -> None:
    client = cf.connect(**settings)
    ds = client.open("race")
    frame = sensors(rows * (rounds + 1), devices=3, seed=7)
    for i in range(1, rounds + 1):
        ds.append(frame.iloc[i * rows:(i + 1) * rows], chunk_rows=25, progress=False)


def test_a_reader_sees_the_old_version_or_the_new_never_a_mix(client, small_checkpoints):
    rows, rounds = 25, 24
    frame = sensors(rows * (rounds + 1), devices=3, seed=7)
    client.ingest(frame.iloc[:rows], "race", chunk_rows=25, progress=False)
    settings = dict(store=client.settings.store_url, redis=client.settings.redis_url,
                    catalog=client.settings.catalog, home=client.settings.home,
                    prefix=client.settings.prefix)
    writer = multiprocessing.get_context("spawn").Process(
        target=_append_forever, args=(settings, rows, rounds))
    writer.start()
    seen = set()
    try:
        while writer.is_alive() or len(seen) < 2:
            snap = client.reader.snapshot("race", refresh=True)
            n = snap.meta.rows
            seen.add(n)
            assert n % rows == 0 and len(snap.chunks) == n // rows
            out = client.open("race").to_pandas()
            assert len(out) % rows == 0  # whole appends only
            pd.testing.assert_frame_equal(out, frame.iloc[:len(out)].reset_index(drop=True))
            if not writer.is_alive() and len(out) == len(frame):
                break
    finally:
        writer.join(timeout=120)
    assert writer.exitcode == 0
    assert len(seen) >= 2  # it did read while the writer appended
    pd.testing.assert_frame_equal(client.open("race").to_pandas(), frame)


def test_a_damaged_or_missing_manifest_falls_back_to_the_catalog(client, small_checkpoints):
    ds, frame = _growing(client, "scarred", appends=9)
    ref = client.catalog.manifest("scarred", ds.meta.generation)
    path = client.store.path(ref.key)
    data = bytearray(open(path, "rb").read())
    data[len(data) // 3] ^= 0xFF
    client.store.put(ref.key, bytes(data))
    pd.testing.assert_frame_equal(_fresh(client).open("scarred").to_pandas(), frame)
    client.store.delete(ref.key)
    pd.testing.assert_frame_equal(_fresh(client).open("scarred").to_pandas(), frame)
    more = sensors(50, devices=3, seed=3)
    ds.append(more, chunk_rows=100, progress=False)  # the next checkpoint reads the rows
    pd.testing.assert_frame_equal(_fresh(client).open("scarred").to_pandas(),
                                  _concat(frame, more))


def test_repairing_a_checkpointed_chunk_writes_the_checkpoint_again(
        client, small_checkpoints, tmp_path):
    frame = sensors(900, devices=3)
    src = tmp_path / "src.parquet"
    frame.to_parquet(src)
    ds = client.ingest(str(src), "mended", chunk_rows=100, progress=False)
    before = client.catalog.manifest("mended", ds.meta.generation)
    assert before is not None and before.chunks == 9
    victim = ds.chunk_metas[2]
    client.store.delete(victim.key)
    report = ds.verify(repair=True, progress=False)
    assert report["repaired"].all(), report
    after = client.catalog.manifest("mended", ds.meta.generation)
    assert after is not None and after.key != before.key
    assert not client.store.exists(before.key)
    assert _fresh(client).open("mended").chunk_metas[2].key != victim.key
    pd.testing.assert_frame_equal(_fresh(client).open("mended").to_pandas(), frame)
    assert client.recover().empty


# -- compaction -------------------------------------------------------------------------
def test_compaction_merges_small_chunks_and_keeps_every_read_the_same(client):
    ds, frame = _growing(client, "packed", appends=20, rows=30, chunk_rows=100)
    ds.tag("owner", "ops", keywords=["plant"])
    ds.delete(device="d1", date_range=(frame.time[100], frame.time[400]))
    before_version = ds.meta.version
    expected, last, tags = ds.to_pandas(), ds.last(), ds.tags()
    sns = np.random.default_rng(3).integers(0, len(frame), 200)
    rows = ds.get_many(sns)
    ds.compact(progress=False)
    assert ds.meta.chunks == 7 and ds.meta.version == before_version + 1
    assert ds.chunk_metas[0].rows == 90 and ds.versions()["kind"].iloc[-1] == "compact"
    pd.testing.assert_frame_equal(ds.to_pandas(), expected)
    pd.testing.assert_frame_equal(ds.get_many(sns), rows)
    pd.testing.assert_frame_equal(ds.last(), last)
    pd.testing.assert_frame_equal(ds.tags(), tags)
    old = client.open("packed", version=before_version)
    pd.testing.assert_frame_equal(old.to_pandas(), expected)
    assert len(old.chunk_metas) == 21
    as_of = client.open("packed", as_of=ds.versions()["committed_at"].iloc[-2])
    assert as_of.version == before_version
    assert ds.compact(progress=False).meta.version == before_version + 1  # nothing left to do
    ds.prune_versions()
    with pytest.raises(cf.VersionNotFoundError):
        _fresh(client).open("packed", version=before_version).to_pandas()
    client.reader.clear()
    pd.testing.assert_frame_equal(_fresh(client).open("packed").to_pandas(), expected)
    assert client.recover(verify=True).empty  # shared files are not orphans


def test_compaction_keeps_the_files_it_shares_and_an_evolved_schema(client):
    full = all_dtypes(700)
    first = full.drop(columns=["i", "ni", "b"]).iloc[:300]
    ds = client.ingest(first, "evolved", chunk_rows=100, progress=False)  # 3 full chunks
    for i in range(300, 700, 40):
        ds.append(full.iloc[i:i + 40], evolve=True, chunk_rows=100, progress=False)
    expected = ds.to_pandas()
    shared = {c.key for c in ds.chunk_metas[:3]}
    ds.compact(progress=False)
    assert {c.key for c in ds.chunk_metas[:3]} == shared  # full chunks are not rewritten
    assert [c.rows for c in ds.chunk_metas] == [100, 100, 100, 80, 80, 80, 80, 80]
    pd.testing.assert_frame_equal(ds.to_pandas(), expected)
    ds.prune_versions()
    assert all(client.store.exists(k) for k in shared)
    client.reader.clear()
    pd.testing.assert_frame_equal(client.open("evolved").to_pandas(), expected)
    assert ds.verify(progress=False).empty


def test_compaction_after_redis_lost_everything_then_recover(client):
    ds, frame = _growing(client, "flushed", appends=12, rows=20)
    ds.compact(progress=False)
    expected = ds.to_pandas()
    for key in client.redis.scan_iter(f"{client.settings.prefix}:*"):
        client.redis.delete(key)
    report = client.recover(apply=True)
    assert report["applied"].all(), report
    assert client.recover().empty
    client.reader.clear()
    pd.testing.assert_frame_equal(client.open("flushed").to_pandas(), expected)
    ds.append(sensors(20, devices=3, seed=11), chunk_rows=100, progress=False)
    assert len(client.open("flushed")) == len(frame) + 20


def test_compaction_refuses_bad_input_and_damaged_chunks(client):
    ds, _ = _growing(client, "strict", appends=4, rows=20)
    for bad in (0, -1, 2.5, "10", True):
        with pytest.raises(InvalidArgumentError, match="min_rows"):
            ds.compact(min_rows=bad)
    with pytest.raises(DatasetNotFoundError):
        cf.compact.compact(client.backends, "nosuch")
    with pytest.raises(ReadOnlyVersionError):
        client.open("strict", version=1).compact()
    version = ds.meta.version
    with pytest.raises(BackendUnavailableError, match=r"compacting dataset 'strict'.*Client\(\)"):
        ds.compact(engine="dask")  # no distributed.Client in this process: nothing is locked
    assert client.state.lock_value("strict") is None
    victim = ds.chunk_metas[2]
    data = bytearray(client.store.get(victim.key))
    data[len(data) // 2] ^= 1
    client.store.put(victim.key, bytes(data))
    with pytest.raises(ChunkCorruptionError):
        ds.compact(progress=False)
    assert client.open("strict").meta.version == version  # nothing committed
    report = client.recover(apply=True)
    assert set(report["problem"]) <= {"interrupted"}  # its merged files deleted
    assert not [k for k in client.store.list("strict")
                if not k.startswith(f"strict/g{ds.meta.generation:06d}")]


def test_auto_compact_after_appends_leave_a_run_of_small_chunks(tmp_path, redis_server, prefix):
    client = cf.connect(store=tmp_path / "store", redis=redis_server.url,
                        catalog=tmp_path / "catalog.db", home=tmp_path, prefix=prefix,
                        auto_compact=4)
    ds, frame = _growing(client, "auto", appends=2, rows=10)
    assert ds.meta.chunks == 3  # three small chunks in a row: not yet
    ds.append(sensors(10, devices=3, seed=5), chunk_rows=100, progress=False)
    assert ds.meta.chunks == 1 and ds.versions()["kind"].iloc[-1] == "compact"
    with pytest.raises(InvalidArgumentError, match="auto_compact"):
        cf.connect(store=tmp_path / "store", redis=redis_server.url, prefix=prefix,
                   catalog=tmp_path / "catalog.db", home=tmp_path, auto_compact=1)


def test_the_cli_compacts(client, capsys):
    from chunkframe.frontends.cli import main

    _growing(client, "cli", appends=5, rows=10)
    argv = ["--store", str(client.settings.store_url), "--redis", client.settings.redis_url,
            "--catalog", str(client.settings.catalog), "--prefix", client.settings.prefix]
    assert main([*argv, "--json", "compact", "cli", "--no-progress"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc == {"dataset": "cli", "compacted": True, "version": 7, "chunks_before": 6,
                   "chunks": 1}
    assert main([*argv, "compact", "cli", "--no-progress"]) == 0
    assert "nothing to compact" in capsys.readouterr().out
    assert main([*argv, "compact", "nosuch"]) == 1
    assert "no complete dataset 'nosuch'" in capsys.readouterr().err


@pytest.mark.slow
def test_ten_thousand_chunks_append_open_and_compact(client):
    frame = sensors(20_000, devices=5)
    ds = client.ingest(frame.iloc[:19_980], "big", chunk_rows=2, progress=False)
    assert ds.meta.chunks == 9_990
    for i in range(10):
        ds.append(frame.iloc[19_980 + 2 * i:19_982 + 2 * i], chunk_rows=2, progress=False)
    assert ds.meta.chunks == 10_000
    assert _redis_entries(client, ds) < 2 * manifest_mod.CHECKPOINT_CHUNKS
    other = _fresh(client).open("big")
    pd.testing.assert_series_equal(other.get(19_999), frame.iloc[19_999])
    pd.testing.assert_frame_equal(other.to_pandas(), frame)
    version = ds.meta.version
    ds.compact(min_rows=3, progress=False)  # no two 2-row chunks fit in one of chunk_rows 2
    assert ds.meta.version == version
    assert client.recover().empty


# -- kill -9 ------------------------------------------------------------------------------
def _worker_env(client, **more: str) -> dict[str, str]:
    s = client.settings
    return dict(os.environ, CF_REDIS=s.redis_url, CF_PREFIX=s.prefix, CF_STORE=str(s.store_url),
                CF_CATALOG=str(s.catalog), CF_HOME=str(s.home), CF_LOCK_TTL="30",
                CF_WORKERS="1", **more)


def _settle(client, name: str, expected: pd.DataFrame) -> None:
    """What a kill left reads exactly, and the recoverer puts everything back in step."""
    pd.testing.assert_frame_equal(_fresh(client).open(name).to_pandas(), expected)
    report = client.recover(apply=True)
    assert report["applied"].all(), report.to_dict("records")
    again = client.recover(verify=True)
    assert again.empty, (report.to_dict("records"), again.to_dict("records"))
    fresh = _fresh(client).open(name)
    pd.testing.assert_frame_equal(fresh.to_pandas(), expected)
    assert fresh.verify(progress=False).empty


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["put-done:1", "ckpt-done:2", "commit-tx:1", "commit-done:1",
                                    "publish-done:1"])
def test_kill_9_during_compaction_leaves_the_version_before_it(client, moment):
    frame = source_frame(300)
    ds = client.ingest(frame.iloc[:100], "squash", chunk_rows=100, progress=False)
    for i in range(100, 300, 20):
        ds.append(frame.iloc[i:i + 20], chunk_rows=100, progress=False)
    version = ds.meta.version
    kill_at(["compact", "squash"], _worker_env(client), moment)
    committed = moment in ("commit-done:1", "publish-done:1")
    assert client.catalog.get("squash").version == version + committed
    _settle(client, "squash", frame)
    after = _fresh(client).open("squash")
    after.compact(progress=False)  # a compaction after the kill completes
    assert after.meta.chunks == 3
    pd.testing.assert_frame_equal(_fresh(client).open("squash").to_pandas(), frame)
    assert client.recover().empty


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["put-done:2", "commit-tx:1", "commit-done:1",
                                    "publish-done:1"])
def test_kill_9_during_an_append_that_checkpoints(client, small_checkpoints, moment):
    base = source_frame(300)
    client.ingest(base, "ckpt", chunk_rows=100, progress=False)  # 3 chunks; the 4th checkpoints
    more = source_frame(100)
    more["id"] += 300
    kill_at(["append", "ckpt", "300"], _worker_env(
        client, CF_ROWS="100", CF_CHUNK_ROWS="100", CF_CHECKPOINT_CHUNKS="4"), moment)
    committed = moment in ("commit-done:1", "publish-done:1")
    grown = _concat(base, more)
    _settle(client, "ckpt", grown if committed else base)
    if not committed:
        _fresh(client).open("ckpt").append(more, chunk_rows=100, progress=False)
    ref = client.catalog.manifest("ckpt", client.catalog.get("ckpt").generation)
    assert ref is not None and ref.chunks == 4
    pd.testing.assert_frame_equal(_fresh(client).open("ckpt").to_pandas(), grown)
    assert client.recover(verify=True).empty


@pytest.mark.parametrize("column", ["stats", "key"])
def test_a_damaged_block_of_a_manifest_is_read_from_the_catalog_and_rewritten(
        client, small_checkpoints, column):
    ds, frame = _growing(client, "blocks", appends=9)
    last = ds.last()
    ref = client.catalog.manifest("blocks", ds.meta.generation)
    mapped = client.store.read(ref.key)
    buf = pa.ipc.open_file(mapped).get_batch(0).column(column).buffers()[-1]
    offset = buf.address - mapped.address + buf.size // 2
    raw = bytearray(client.store.get(ref.key))
    raw[offset] ^= 0xFF
    del mapped, buf
    client.store.put(ref.key, bytes(raw))
    other = _fresh(client)
    pd.testing.assert_frame_equal(other.open("blocks").to_pandas(), frame)
    opened = other.open("blocks")
    opened.reset_last()
    pd.testing.assert_frame_equal(opened.last(), last)
    report = client.recover(verify=True)
    assert report["problem"].tolist() == ["corrupt_manifest"], report
    assert client.recover(apply=True, verify=True)["applied"].all()
    assert client.recover(verify=True).empty
    assert client.catalog.manifest("blocks", ds.meta.generation).key != ref.key
    pd.testing.assert_frame_equal(_fresh(client).open("blocks").to_pandas(), frame)
