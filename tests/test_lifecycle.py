"""Dataset lifecycle: cf.exists, cf.drop (crash-safe, other datasets untouched), named
snapshots (as_of, prune, Redis loss) and ds.head / ds.tail — real Redis, SQLite and files."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from crash_worker import kill_at, source_frame
from frames import sensors

import chunkframe as cf
from chunkframe.core.errors import (
    DatasetLockedError,
    DatasetNotFoundError,
    DatasetReferencedError,
    DropPendingError,
    InvalidArgumentError,
    InvalidDatasetIdError,
    SnapshotExistsError,
    SnapshotNotFoundError,
    VersionNotFoundError,
)
from chunkframe.frontends.cli import main
from chunkframe.ingestion.lifecycle import SNAPSHOT_COLUMNS

TABLES = {"datasets": "id", "chunks": "dataset", "versions": "dataset", "sources": "dataset",
          "manifests": "dataset", "drops": "dataset", "snapshot_versions": "dataset",
          "contexts": "id", "context_entries": "context"}
"""Every catalog table that records something of one dataset, and its dataset column."""


def _fresh(client) -> cf.Client:
    s = client.settings
    return cf.connect(store=s.store_url, redis=s.redis_url, catalog=s.catalog, home=s.home,
                      prefix=s.prefix)


def _ingest(client, name: str, n: int = 1_000, seed: int = 1, **kw):
    return client.ingest(sensors(n, devices=3, seed=seed), name, chunk_rows=300,
                         time_column="time", device_column="dev", progress=False, **kw)


def _rows_of(client, dataset_id: str) -> dict[str, int]:
    """How many rows each catalog table holds of the dataset."""
    out = {}
    with client.catalog._connect("read") as db:
        for table, col in TABLES.items():
            out[table] = int(db.execute(f"SELECT COUNT(*) FROM {table} WHERE {col}=?",
                                        (dataset_id,)).fetchone()[0])
    return out


def _redis_keys(client, dataset_id: str) -> list[bytes]:
    """The dataset's keys in Redis: its own, its context's, and keyword postings naming it."""
    p = client.settings.prefix
    ds = re.sub(r"([*?\[\]])", r"\\\1", dataset_id)  # glob characters, escaped
    own = list(client.redis.scan_iter(match=f"{p}:{{{ds}}}:*", count=1000))
    ctx = list(client.redis.scan_iter(match=f"{p}:ctx:{{{ds}}}:*", count=1000))
    postings = [k for k in client.redis.scan_iter(match=f"{p}:ctxkw:*", count=1000)
                if any(m.split(b"\x1f")[0] == dataset_id.encode()
                       for m in client.redis.smembers(k))]
    return own + ctx + postings


def _files(client, dataset_id: str) -> list[str]:
    return list(client.store.list(dataset_id))


def _worker_env(client, **more: str) -> dict[str, str]:
    s = client.settings
    return dict(os.environ, CF_REDIS=s.redis_url, CF_PREFIX=s.prefix, CF_STORE=str(s.store_url),
                CF_CATALOG=str(s.catalog), CF_HOME=str(s.home), CF_LOCK_TTL="30",
                CF_WORKERS="1", **more)


# -- exists and drop --------------------------------------------------------------------------

def test_drop_removes_everything_of_the_dataset_and_nothing_else(client):
    doomed = _ingest(client, "doomed")
    doomed.append(sensors(200, devices=3, seed=2).assign(
        time=pd.date_range("2026-02-01", periods=200, freq="s", tz="UTC")), progress=False)
    doomed.tag("owner", "ana, ops team", keywords=["facilities"])
    doomed.last()  # fills the last-value cache
    keep = _ingest(client, "doomedx", seed=3)  # a longer id: no prefix may reach it
    keep.tag("owner", "ana")
    before = keep.to_pandas()
    keep_keys, keep_files = _redis_keys(client, "doomedx"), _files(client, "doomedx")
    assert client.exists("doomed") and cf.exists("doomed")
    assert _redis_keys(client, "doomed") and _files(client, "doomed")

    done = cf.drop("doomed")

    assert (done.dataset, done.versions, done.resumed, done.snapshots) == (
        "doomed", 2, False, ())
    assert done.files == 5 and done.bytes > 0 and done.redis_keys >= 3
    assert done.context_entries == 1
    assert not client.exists("doomed") and not cf.exists("doomed")
    assert _rows_of(client, "doomed") == dict.fromkeys(TABLES, 0)
    assert _redis_keys(client, "doomed") == []
    assert _files(client, "doomed") == []
    assert not (Path(client.settings.store_url) / "doomed").exists()
    assert "doomed" not in set(client.datasets()["id"])
    with pytest.raises(DatasetNotFoundError, match="doomed"):
        client.open("doomed")
    with pytest.raises(DatasetNotFoundError):
        doomed.get(0)  # a handle made before the drop
    assert client.find("facilities").empty
    # the other dataset: the same keys, files, tags and rows
    assert sorted(_redis_keys(client, "doomedx")) == sorted(keep_keys)
    assert _files(client, "doomedx") == keep_files
    pd.testing.assert_frame_equal(_fresh(client).open("doomedx").to_pandas(), before)
    assert keep.tags()["value"].tolist() == ["ana"]
    assert client.recover(verify=True).empty


def test_drop_then_ingest_the_same_id_anew(client):
    old = _ingest(client, "again")
    old.tag("note", "old data")
    generation = old.meta.generation
    cf.drop("again")
    frame = sensors(500, devices=2, seed=9)
    new = client.ingest(frame, "again", chunk_rows=200, time_column="time",
                        device_column="dev", progress=False)
    pd.testing.assert_frame_equal(new.to_pandas(), frame)
    assert new.meta.generation > generation  # no chunk key of the old one is reused
    assert new.versions()["version"].tolist() == [1]
    assert new.tags().empty
    last = new.last(columns="x").set_index("device")["value"]
    expected = frame.groupby("dev", observed=True)["x"].last()
    assert last.to_dict() == pytest.approx(expected.to_dict())
    assert client.recover(verify=True).empty


def test_drop_keeps_the_files_a_compaction_shares_with_another_dataset(client):
    """Compaction shares files between generations of one dataset; a drop of another
    dataset (and pruning the compacted one) leaves them all readable."""
    frame = sensors(900, devices=3)
    ds = client.ingest(frame.iloc[:300], "squash", chunk_rows=300, time_column="time",
                       device_column="dev", progress=False)
    for i in range(300, 900, 100):
        ds.append(frame.iloc[i:i + 100], chunk_rows=300, progress=False)
    ds.compact(progress=False)
    assert ds.versions()["kind"].tolist()[-1] == "compact"
    _ingest(client, "squash2")
    cf.drop("squash2")
    pd.testing.assert_frame_equal(_fresh(client).open("squash").to_pandas(), frame)
    ds.prune_versions()
    pd.testing.assert_frame_equal(_fresh(client).open("squash").to_pandas(), frame)
    done = cf.drop("squash")
    assert _files(client, "squash") == [] and done.files > 0
    assert client.recover().empty


@pytest.mark.parametrize("odd", ["x*", "x?", "x[1]"])
def test_ids_with_glob_characters_drop_only_themselves(client, odd):
    _ingest(client, odd)
    others = {name: _ingest(client, name, n=400, seed=4) for name in ("x1", "xy", "x[1]x")
              if name != odd}
    keys = {name: sorted(_redis_keys(client, name)) for name in others}
    cf.drop(odd)
    assert _redis_keys(client, odd) == [] and _files(client, odd) == []
    for name in others:
        assert sorted(_redis_keys(client, name)) == keys[name]
        assert len(_fresh(client).open(name).to_pandas()) == 400


def test_drop_and_exists_failure_modes(client):
    _ingest(client, "real")
    with pytest.raises(DatasetNotFoundError, match="did you mean \\['real'\\]"):
        cf.drop("reall")
    with pytest.raises(InvalidDatasetIdError):
        cf.drop("../etc")
    with pytest.raises(InvalidDatasetIdError):
        cf.exists("a/b")
    with pytest.raises(InvalidDatasetIdError):
        cf.exists(3)
    with pytest.raises(InvalidArgumentError, match="force must be True or False"):
        cf.drop("real", force="yes")
    lock = client.lock("real")
    try:
        with pytest.raises(DatasetLockedError):
            cf.drop("real")
    finally:
        lock.release()
    assert cf.exists("real") and not cf.exists("nothing")
    assert client.recover().empty  # a refused drop leaves nothing behind


def test_drop_after_redis_lost_the_dataset(client):
    _ingest(client, "cold").tag("k", "v")
    for key in _redis_keys(client, "cold"):
        client.redis.delete(key)
    done = cf.drop("cold")
    assert done.versions == 1 and done.files > 0
    assert _rows_of(client, "cold") == dict.fromkeys(TABLES, 0)
    assert _redis_keys(client, "cold") == [] and _files(client, "cold") == []


def test_an_unfinished_drop_blocks_writers_and_recover_finishes_it(client):
    """The intent alone (what a crash right after it leaves): the dataset is gone for
    readers of the catalog, writers are refused, and the recoverer finishes the drop."""
    ds = _ingest(client, "half")
    ds.tag("owner", "ana")
    other = _ingest(client, "whole", seed=5)
    lock = client.lock("half")  # a dropper's, as cf.drop takes it...
    client.catalog.begin_drop("half", lock.fence)  # ...then killed after its first step
    lock.release()
    assert not cf.exists("half")
    with pytest.raises(DropPendingError, match="being dropped") as err:
        client.ingest(sensors(100), "half", mode="overwrite", progress=False)
    assert isinstance(err.value, DatasetLockedError)
    assert "cf.drop('half')" in str(err.value)
    report = client.recover()
    assert report[["dataset", "problem", "applied"]].values.tolist() == [
        ["half", "drop_interrupted", False]]
    assert "did not finish" in report["detail"][0] and "files" in report["detail"][0]
    assert _files(client, "half")  # a dry run changes nothing
    applied = client.recover(apply=True)
    assert applied["applied"].tolist() == [True]
    assert _rows_of(client, "half") == dict.fromkeys(TABLES, 0)
    assert _redis_keys(client, "half") == [] and _files(client, "half") == []
    assert client.recover(verify=True).empty
    pd.testing.assert_frame_equal(_fresh(client).open("whole").to_pandas(), other.to_pandas())
    client.ingest(sensors(100), "half", progress=False)  # the id is free again


def test_calling_drop_again_finishes_an_unfinished_drop(client):
    _ingest(client, "twice")
    lock = client.lock("twice")
    client.catalog.begin_drop("twice", lock.fence)
    lock.release()
    done = cf.drop("twice")
    assert done.resumed and done.versions == 1
    with pytest.raises(DatasetNotFoundError):
        cf.drop("twice")
    assert client.recover().empty


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["locked:1", "drop-begun:1", "drop-keys:1", "drop-prefix:1",
                                    "drop-files:1", "drop-context:1", "drop-tx:1",
                                    "drop-done:1"])
def test_kill_9_during_a_drop_then_recover_apply(client, moment):
    base = source_frame(1_000)
    ds = client.ingest(base, "victim", chunk_rows=100, time_column="time",
                       device_column="device", progress=False)
    more = source_frame(300, seed=7)
    more["id"] += 1_000
    more["time"] += pd.Timedelta(days=1)
    ds.append(more, chunk_rows=100, progress=False)
    ds.compact(min_rows=150, progress=False)
    client.ingest(base.iloc[:700], "victim", mode="overwrite", chunk_rows=100,
                  time_column="time", device_column="device", progress=False)  # 2 generations
    ds.tag("owner", "ana")
    client.snapshot("before", datasets=["victim"])
    bystander = client.ingest(more, "victim2", chunk_rows=100, progress=False)
    bystander.tag("owner", "bob")
    files, keys = _files(client, "victim2"), sorted(_redis_keys(client, "victim2"))
    kill_at(["drop", "victim"], _worker_env(client), moment)
    begun = moment != "locked:1"
    if begun:  # gone for readers at once; writers are refused until it is finished
        assert not _fresh(client).exists("victim")
        with pytest.raises(DatasetNotFoundError):
            _fresh(client).open("victim")
    if begun and moment != "drop-done:1":
        with pytest.raises(DropPendingError):
            _fresh(client).ingest(base.iloc[:10], "victim", mode="overwrite", progress=False)
    report = client.recover(apply=True)
    assert report["applied"].all(), report.to_dict("records")
    expected = {"locked:1": ["stale_lock"], "drop-done:1": []}.get(moment, ["drop_interrupted"])
    assert [p for p in report["problem"] if p != "stale_lock" or moment == "locked:1"] == expected
    assert client.recover(verify=True).empty
    fresh = _fresh(client)
    if begun:
        assert not fresh.exists("victim")
        assert _rows_of(client, "victim") == dict.fromkeys(TABLES, 0)
        assert _redis_keys(client, "victim") == [] and _files(client, "victim") == []
        assert fresh.snapshot_info("before").versions == {}
    else:  # killed before the intent: the dataset is whole, and can be dropped after all
        pd.testing.assert_frame_equal(fresh.open("victim").to_pandas(),
                                      base.iloc[:700].reset_index(drop=True))
        assert fresh.drop("victim", force=True).snapshots == ("before",)
    assert _files(client, "victim2") == files
    assert sorted(_redis_keys(client, "victim2")) == keys
    pd.testing.assert_frame_equal(fresh.open("victim2").to_pandas(),
                                  more.reset_index(drop=True))


# -- snapshots --------------------------------------------------------------------------------

def _three_versions(client, name: str = "hist", snapshot_first: str | None = None
                    ) -> tuple[cf.Dataset, dict[int, pd.DataFrame]]:
    """Version 1 (ingest) and 2 (append) in one generation, 3 (overwrite) in another;
    ``snapshot_first``: a snapshot of version 1 is recorded under that name."""
    v1 = sensors(600, devices=3)
    ds = client.ingest(v1, name, chunk_rows=200, time_column="time", device_column="dev",
                       progress=False)
    if snapshot_first:
        client.snapshot(snapshot_first, datasets=[name])
    extra = sensors(300, devices=3, seed=2).assign(
        time=pd.date_range("2026-02-01", periods=300, freq="s", tz="UTC"))
    ds.append(extra, chunk_rows=200, progress=False)
    v2 = pd.concat([v1, extra], ignore_index=True)
    v3 = sensors(400, devices=2, seed=8)
    client.ingest(v3, name, mode="overwrite", chunk_rows=200, time_column="time",
                  device_column="dev", progress=False)
    return ds, {1: v1, 2: v2, 3: v3}


def test_snapshots_name_versions_that_as_of_reads(client):
    v1 = sensors(600, devices=3)
    ds = client.ingest(v1, "hist", chunk_rows=200, time_column="time", device_column="dev",
                       progress=False)
    other = _ingest(client, "other", seed=4)
    first = cf.snapshot("first", metadata={"by": "ana", "run": 7})
    assert (first.name, dict(first.versions), first.metadata) == (
        "first", {"hist": 1, "other": 1}, {"by": "ana", "run": 7})
    assert first.created.tz is not None
    extra = sensors(300, devices=3, seed=2).assign(
        time=pd.date_range("2026-02-01", periods=300, freq="s", tz="UTC"))
    ds.append(extra, progress=False)
    ds.delete("d1", "x", date_range=("2026-01-01 00:00:10", "2026-01-01 00:02:00"))
    only = cf.snapshot("only-hist", datasets="hist")
    assert dict(only.versions) == {"hist": 3}
    client.ingest(sensors(100, seed=6), "hist", mode="overwrite", chunk_rows=200,
                  progress=False)
    old = cf.open("hist", as_of="first")
    assert old.read_only and old.version == 1
    pd.testing.assert_frame_equal(old.to_pandas(), v1)
    mid = cf.open("hist", as_of="only-hist")
    assert mid.version == 3 and len(mid) == 900 and mid.to_pandas()["x"].isna().sum() > 0
    assert cf.open("other", as_of="first").version == other.version
    with pytest.raises(VersionNotFoundError, match="no version in snapshot 'only-hist'"):
        cf.open("other", as_of="only-hist")
    table = cf.snapshots()
    assert table.columns.tolist() == SNAPSHOT_COLUMNS
    assert table["name"].tolist() == ["first", "only-hist"]
    assert table["datasets"].tolist() == [2, 1] and table["datasets"].dtype == "int64"
    assert table["versions"].tolist() == [{"hist": 1, "other": 1}, {"hist": 3}]
    assert str(table["created"].dtype).startswith("datetime64") and table["created"].dt.tz
    assert table["metadata"].tolist() == [{"by": "ana", "run": 7}, None]
    gone = cf.delete_snapshot("first")
    assert dict(gone.versions) == {"hist": 1, "other": 1}
    assert cf.snapshots()["name"].tolist() == ["only-hist"]
    with pytest.raises(SnapshotNotFoundError):
        cf.delete_snapshot("first")


def test_snapshot_failure_modes(client):
    with pytest.raises(InvalidArgumentError, match="no datasets to record"):
        cf.snapshot("empty")
    _ingest(client, "alpha")
    cf.snapshot("s1")
    with pytest.raises(SnapshotExistsError, match="'s1' exists already") as err:
        cf.snapshot("s1")
    assert isinstance(err.value, FileExistsError) and "cf.delete_snapshot('s1')" in str(err.value)
    with pytest.raises(DatasetNotFoundError, match="'nope'"):
        cf.snapshot("s2", datasets=["alpha", "nope"])
    with pytest.raises(InvalidArgumentError, match="JSON data"):
        cf.snapshot("s2", metadata={"when": pd.Timestamp("2026-01-01")})
    with pytest.raises(InvalidArgumentError, match="JSON data"):
        cf.snapshot("s2", metadata={"x": float("nan")})
    with pytest.raises(InvalidArgumentError, match="empty"):
        cf.snapshot("s2", datasets=[])
    with pytest.raises(InvalidArgumentError, match="list of dataset ids"):
        cf.snapshot("s2", datasets=5)
    with pytest.raises(InvalidDatasetIdError, match="snapshot name"):
        cf.snapshot("a/b")
    with pytest.raises(InvalidDatasetIdError):
        cf.snapshot("s2", datasets=["../x"])
    assert cf.snapshots()["name"].tolist() == ["s1"]  # nothing half-recorded
    with pytest.raises(SnapshotNotFoundError, match="did you mean \\['s1'\\]") as missing:
        cf.delete_snapshot("s11")
    assert isinstance(missing.value, KeyError) and "cf.snapshots()" in str(missing.value)
    cf.delete_snapshot("s1")
    with pytest.raises(SnapshotNotFoundError, match="there are no snapshots"):
        cf.delete_snapshot("s1")
    with pytest.raises(InvalidArgumentError, match="neither the name of a snapshot"):
        cf.open("alpha", as_of="no-such-thing")
    cf.snapshot("s3")
    with pytest.raises(DatasetNotFoundError):
        cf.open("nope", as_of="s3")


def test_empty_snapshots_table_has_its_columns(client):
    table = cf.snapshots()
    assert table.empty and table.columns.tolist() == SNAPSHOT_COLUMNS


def test_a_snapshot_name_that_is_also_a_time_means_the_snapshot(client):
    ds, frames = _three_versions(client)
    cf.snapshot("2020-01-01", datasets=["hist"])  # before every commit, as a time
    assert cf.open("hist", as_of="2020-01-01").version == 3
    cf.delete_snapshot("2020-01-01")
    with pytest.raises(VersionNotFoundError):
        cf.open("hist", as_of="2020-01-01")  # now a time, before the first version


def test_prune_keeps_the_versions_snapshots_name(client):
    ds, frames = _three_versions(client, snapshot_first="back-then")
    pruned = cf.open("hist").prune_versions()
    assert pruned["version"].tolist() == [2]  # 1 is kept for the snapshot, 3 is current
    assert cf.open("hist").versions()["version"].tolist() == [1, 3]
    pd.testing.assert_frame_equal(_fresh(client).open("hist", as_of="back-then").to_pandas(),
                                  frames[1])
    assert client.recover(verify=True).empty
    cf.delete_snapshot("back-then")
    assert cf.open("hist").prune_versions()["version"].tolist() == [1]
    assert {k.split("/")[1] for k in _files(client, "hist")} == {"g000002"}
    with pytest.raises(VersionNotFoundError):
        _fresh(client).open("hist", version=1)


def test_snapshots_survive_redis_losing_everything(client):
    ds, frames = _three_versions(client)
    cf.snapshot("kept", datasets=["hist"])
    ds.append(sensors(50, devices=2, seed=3).assign(
        time=pd.date_range("2026-03-01", periods=50, freq="s", tz="UTC")), progress=False)
    for key in client.redis.scan_iter(match=f"{client.settings.prefix}:*", count=1000):
        client.redis.delete(key)
    fresh = _fresh(client)
    assert fresh.snapshots()["versions"].tolist() == [{"hist": 3}]
    pd.testing.assert_frame_equal(fresh.open("hist", as_of="kept").to_pandas(), frames[3])
    assert len(fresh.open("hist")) == 450
    fresh.recover(apply=True)
    assert fresh.recover(verify=True).empty


def test_snapshots_survive_a_redis_flushall(tmp_path, own_redis, prefix):
    """FLUSHALL on a server of the test's own: the snapshots live in the catalog."""
    client = cf.connect(store=tmp_path / "store", redis=own_redis.url,
                        catalog=tmp_path / "catalog.db", home=tmp_path, prefix=prefix)
    ds, frames = _three_versions(client, snapshot_first="first")
    client.snapshot("kept", metadata={"why": "flushall"})
    own_redis.client().flushall()
    fresh = _fresh(client)
    table = fresh.snapshots()
    assert table["name"].tolist() == ["first", "kept"]
    assert table["versions"].tolist() == [{"hist": 1}, {"hist": 3}]
    assert fresh.snapshot_info("kept").metadata == {"why": "flushall"}
    for name, version in (("first", 1), ("kept", 3)):
        pd.testing.assert_frame_equal(fresh.open("hist", as_of=name).to_pandas(),
                                      frames[version])
    assert fresh.open("hist").prune_versions()["version"].tolist() == [2]  # 1 is "first"'s
    report = fresh.recover(apply=True)
    assert report["applied"].all(), report.to_dict("records")
    assert fresh.recover(verify=True).empty
    fresh.snapshot("after", datasets="hist")
    assert _fresh(client).snapshot_info("after").versions == {"hist": 3}


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["snap-start:1", "snap-row:1", "snap-tx:1",
                                    "snap-done:1"])
def test_kill_9_during_a_snapshot_then_recover_apply(client, moment):
    ds, frames = _three_versions(client, snapshot_first="earlier")
    other = _ingest(client, "other", n=500, seed=4)
    kill_at(["snapshot", "taken"], _worker_env(client), moment)
    report = client.recover(apply=True)
    assert report["applied"].all(), report.to_dict("records")
    assert client.recover(verify=True).empty
    fresh = _fresh(client)
    table = fresh.snapshots()
    committed = moment == "snap-done:1"
    if committed:  # whole: every dataset at its version then, with its metadata
        assert table["name"].tolist() == ["earlier", "taken"]
        info = fresh.snapshot_info("taken")
        assert (info.versions, info.metadata) == ({"hist": 3, "other": 1}, {"by": "crash"})
        pd.testing.assert_frame_equal(fresh.open("hist", as_of="taken").to_pandas(), frames[3])
        pd.testing.assert_frame_equal(fresh.open("other", as_of="taken").to_pandas(),
                                      other.to_pandas())
    else:  # not at all: no row, no versions, and the name is free
        assert table["name"].tolist() == ["earlier"]
        with pytest.raises(InvalidArgumentError, match="neither the name of a snapshot"):
            fresh.open("hist", as_of="taken")
        with client.catalog._connect("read") as db:
            assert db.execute("SELECT COUNT(*) FROM snapshot_versions WHERE snapshot=?",
                              ("taken",)).fetchone()[0] == 0
    assert fresh.snapshot_info("earlier").versions == {"hist": 1}
    pd.testing.assert_frame_equal(fresh.open("hist", as_of="earlier").to_pandas(), frames[1])
    pd.testing.assert_frame_equal(fresh.open("hist").to_pandas(), frames[3])
    assert fresh.open("hist").versions()["version"].tolist() == [1, 2, 3]
    pd.testing.assert_frame_equal(fresh.open("other").to_pandas(), other.to_pandas())
    if not committed:  # nothing half-taken blocks the name
        assert fresh.snapshot("taken").versions == {"hist": 3, "other": 1}
    fresh.open("other").append(sensors(10, devices=3, seed=9).assign(
        time=pd.date_range("2027-01-01", periods=10, freq="s", tz="UTC")), progress=False)


def test_drop_is_refused_while_a_snapshot_names_the_dataset_unless_forced(client):
    _ingest(client, "named")
    _ingest(client, "beside", seed=2)
    cf.snapshot("a", datasets=["named", "beside"])
    cf.snapshot("b", datasets=["named"])
    with pytest.raises(DatasetReferencedError, match="snapshots 'a', 'b' reference") as err:
        cf.drop("named")
    assert "cf.drop('named', force=True)" in str(err.value)
    assert cf.exists("named") and _files(client, "named")
    assert client.recover().empty
    done = cf.drop("named", force=True)
    assert done.snapshots == ("a", "b")
    assert cf.snapshots()["versions"].tolist() == [{"beside": 1}, {}]
    with pytest.raises(DatasetNotFoundError):
        cf.open("named", as_of="a")


def test_snapshots_and_drop_on_the_postgres_catalog(pg_client):
    ds = pg_client.ingest(sensors(600, devices=3), "pg", chunk_rows=200, time_column="time",
                          device_column="dev", progress=False)
    ds.tag("owner", "ana")
    pg_client.ingest(sensors(300, seed=2), "pg2", chunk_rows=200, progress=False)
    info = pg_client.snapshot("pgsnap", metadata={"n": 1})
    assert dict(info.versions) == {"pg": 1, "pg2": 1}
    with pytest.raises(SnapshotExistsError):
        pg_client.snapshot("pgsnap")
    pg_client.ingest(sensors(100, seed=3), "pg", mode="overwrite", progress=False)
    assert ds.prune_versions().empty  # version 1 is the snapshot's
    pd.testing.assert_frame_equal(pg_client.open("pg", as_of="pgsnap").to_pandas(),
                                  sensors(600, devices=3))
    with pytest.raises(DatasetReferencedError):
        pg_client.drop("pg")
    done = pg_client.drop("pg", force=True)
    assert (done.versions, done.snapshots, done.context_entries) == (2, ("pgsnap",), 1)
    assert not pg_client.exists("pg") and pg_client.exists("pg2")
    assert pg_client.snapshots()["versions"].tolist() == [{"pg2": 1}]
    assert pg_client.delete_snapshot("pgsnap").name == "pgsnap"
    lock = pg_client.lock("pg2")
    pg_client.catalog.begin_drop("pg2", lock.fence)
    lock.release()
    with pytest.raises(DropPendingError):
        pg_client.ingest(sensors(10), "pg2", mode="overwrite", progress=False)
    assert pg_client.recover(apply=True)["problem"].tolist() == ["drop_interrupted"]
    assert pg_client.recover(verify=True).empty
    assert pg_client.datasets().empty


# -- the command line -------------------------------------------------------------------------

@pytest.fixture
def cli(tmp_path, redis_server, prefix, capsys):
    where = ["--store", str(tmp_path / "store"), "--redis", redis_server.url,
             "--catalog", str(tmp_path / "catalog.db"), "--home", str(tmp_path),
             "--prefix", prefix]

    def run(*args: str) -> tuple[int, str, str]:
        code = main([*args, *where])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def test_cli_drop_asks_for_yes(cli, client):
    _ingest(client, "cli-ds")
    code, out, err = cli("drop", "cli-ds")
    assert code == 2 and out == ""
    assert "drop deletes dataset 'cli-ds' (1,000 rows, 1 version" in err
    assert "run it again with --yes" in err
    assert client.exists("cli-ds")
    code, out, err = cli("drop", "cli-dss")
    assert code == 1 and "did you mean ['cli-ds']" in err
    code, out, err = cli("drop", "cli-ds", "--yes")
    assert code == 0, err
    assert out.startswith("dropped 'cli-ds': 1 version, 4 files (") and "Redis keys" in out
    assert not client.exists("cli-ds")
    code, out, err = cli("drop", "cli-ds", "--yes", "--json")
    assert code == 1 and json.loads(out or err)["error"] == "DatasetNotFoundError"


def test_cli_snapshots(cli, client):
    code, out, err = cli("snapshots")
    assert code == 0 and "no snapshots yet" in out
    _ingest(client, "c1")
    _ingest(client, "c2", seed=2)
    code, out, err = cli("snapshot", "s1", "--dataset", "c1", "--metadata", '{"by": "ana"}')
    assert code == 0 and out.strip() == "recorded snapshot 's1' of 1 dataset: c1 v1", err
    code, out, err = cli("snapshot", "s2", "--json")
    assert code == 0 and json.loads(out)["versions"] == {"c1": 1, "c2": 1}
    code, out, err = cli("snapshot", "s1")
    assert code == 1 and "'s1' exists already" in err
    assert "chunkframe delete-snapshot s1" in err  # the hint in command-line words
    code, out, err = cli("snapshot", "s3", "--metadata", "{nope")
    assert code == 2 and "--metadata is not JSON" in err
    code, out, err = cli("snapshots")
    assert code == 0 and "c1 v1, c2 v1" in out and '{"by": "ana"}' in out
    code, out, err = cli("snapshots", "--json")
    assert [s["name"] for s in json.loads(out)] == ["s1", "s2"]
    code, out, err = cli("drop", "c1", "--yes")
    assert code == 1 and "chunkframe drop c1 --force --yes" in err
    code, out, err = cli("delete-snapshot", "s1")
    assert code == 0 and "deleted snapshot 's1' (it named 1 dataset" in out
    code, out, err = cli("delete-snapshot", "s1")
    assert code == 1 and "no snapshot named 's1'" in err
    code, out, err = cli("drop", "c1", "--yes", "--force", "--json")
    assert code == 0 and json.loads(out)["snapshots"] == ["s2"]


# -- head and tail ----------------------------------------------------------------------------

def test_head_and_tail_equal_pandas(client):
    frame = sensors(1_000, devices=3)
    ds = client.ingest(frame, "ht", chunk_rows=300, time_column="time", device_column="dev",
                       progress=False)
    for n in (0, 1, 5, 299, 300, 301, 999, 1_000, 5_000, np.int64(7)):
        head, tail = ds.head(n), ds.tail(n)
        pd.testing.assert_frame_equal(head, frame.head(n).rename_axis("sn"))
        pd.testing.assert_frame_equal(tail, frame.tail(n).rename_axis("sn"), check_index_type=False)
        assert head.chunk.is_bound and tail.chunk.is_bound
    pd.testing.assert_frame_equal(ds.head(), frame.head().rename_axis("sn"))
    pd.testing.assert_frame_equal(ds.tail(columns=["x", "time"]),
                                  frame[["x", "time"]].tail().rename_axis("sn"))
    assert ds.tail(3).index.tolist() == [997, 998, 999]
    assert ds.tail(2).chunk.get(0)["x"] == frame["x"][0]  # bound to the whole dataset
    old = ds.version
    ds.append(frame.head(10).assign(time=frame["time"].iloc[-1] + pd.Timedelta(seconds=1)),
              chunk_rows=300, progress=False)
    assert ds.tail(1).index.tolist() == [1_009]
    assert cf.open("ht", version=old).tail(1).index.tolist() == [999]


def test_tail_reads_only_the_last_chunks(client):
    frame = sensors(3_000, devices=2)
    ds = client.ingest(frame, "long", chunk_rows=250, progress=False)
    client.reader.clear()
    before = ds.cache_info()["fetches"]
    ds.tail(100)
    assert ds.cache_info()["fetches"] - before == 1
    ds.tail(300)
    assert ds.cache_info()["fetches"] - before == 2  # the last chunk was cached
    ds.head(10)
    assert ds.cache_info()["fetches"] - before == 3


@pytest.mark.parametrize("n", [-1, 2.5, 3.0, True, "3", None])
def test_head_and_tail_refuse_what_is_not_a_count(client, n):
    ds = client.ingest(sensors(100), "bad-n", chunk_rows=50, progress=False)
    with pytest.raises(InvalidArgumentError, match="n of head\\(\\) must be an integer >= 0"):
        ds.head(n)
    with pytest.raises(InvalidArgumentError, match="n of tail\\(\\) must be an integer >= 0"):
        ds.tail(n)
    if n == -1:
        with pytest.raises(InvalidArgumentError, match="ds.slice\\(None, -k\\)"):
            ds.head(n)
        with pytest.raises(InvalidArgumentError, match="ds.slice\\(k\\)"):
            ds.tail(n)
    with pytest.raises(KeyError):
        ds.head(2, columns=["nope"])


# -- upserts ----------------------------------------------------------------------------------

def _upsert_world(client, name: str = "up"):
    frame = sensors(1_000, devices=3)
    ds = client.ingest(frame, name, chunk_rows=250, time_column="time", device_column="dev",
                       progress=False)
    return ds, frame


def _expected_upsert(frame: pd.DataFrame, fix: pd.DataFrame, on: list[str]) -> pd.DataFrame:
    """What pandas makes of an upsert: matched rows replaced in place, the rest appended."""
    out = frame.copy()
    keys = pd.MultiIndex.from_frame(out[on].astype(object))
    pos = keys.get_indexer(pd.MultiIndex.from_frame(fix[on].astype(object)))
    hit = pos >= 0
    for c in frame.columns:
        col = out[c].copy()
        col.iloc[pos[hit]] = fix[c].to_numpy()[hit]
        out[c] = col
    done = pd.concat([out, fix[~hit]], ignore_index=True)
    return done.astype(frame.dtypes.to_dict())  # (concat widens categoricals to text)


def test_update_rewrites_only_the_chunks_it_changes(client):
    ds, frame = _upsert_world(client)
    before = {c.chunk: c.key for c in ds.chunk_metas}
    fix = frame.iloc[[10, 600, 601]].copy()
    fix["x"] = [100.0, 200.0, 300.0]
    fix["s"] = pd.Series(["fixed", None, "fixed"], dtype="str", index=fix.index)
    new = sensors(5, devices=3, seed=4).assign(
        time=pd.date_range("2026-05-01", periods=5, freq="s", tz="UTC"))
    done = ds.update(pd.concat([fix, new])[frame.columns], on=["time", "dev"])
    assert (done.matched, done.appended, done.rows_updated) == (3, 5, 3)
    assert (done.chunks_rewritten, done.chunks_appended, done.changed) == (2, 1, True)
    assert done.version == 2 and ds.versions()["kind"].tolist() == ["ingest", "update"]
    expected = _expected_upsert(frame, pd.concat([fix, new]), ["time", "dev"])
    pd.testing.assert_frame_equal(_fresh(client).open("up").to_pandas(), expected)
    after = {c.chunk: c.key for c in _fresh(client).open("up").chunk_metas}
    assert [n for n in before if after[n] == before[n]] == [1, 3]  # shared files
    pd.testing.assert_frame_equal(cf.open("up", version=1).to_pandas(), frame)
    last = ds.last(columns="x").set_index("device")["value"].to_dict()
    assert last == pytest.approx(expected.groupby("dev", observed=True)["x"].last().to_dict())
    assert client.recover(verify=True).empty
    ds.prune_versions()
    pd.testing.assert_frame_equal(_fresh(client).open("up").to_pandas(), expected)
    assert client.recover(verify=True).empty


def test_an_update_that_changes_nothing_writes_nothing(client):
    ds, frame = _upsert_world(client)
    files = _files(client, "up")
    done = ds.update(frame.iloc[300:320], on=["time", "dev"])
    assert (done.matched, done.appended, done.rows_updated, done.changed) == (20, 0, 20, False)
    assert done.version == 1 and done.chunks_rewritten == 0
    assert _files(client, "up") == files and ds.versions()["version"].tolist() == [1]
    done = ds.update(frame.iloc[:0], on="time")
    assert (done.matched, done.appended, done.changed) == (0, 0, False)
    same = frame.iloc[700:710].copy()  # the same values under other categories
    same["dev"] = same["dev"].cat.add_categories(["zz"]).cat.reorder_categories(
        ["zz", "d2", "d1", "d0"])
    assert not ds.update(same, on=["time", "dev"]).changed
    assert _files(client, "up") == files


def test_update_matches_every_row_of_a_repeated_key_and_keeps_deletes(client):
    ds, frame = _upsert_world(client)
    ds.delete("d1", "x", date_range=("2026-01-01 00:00:00", "2026-01-01 00:01:00"))
    fix = pd.DataFrame({"time": [frame["time"][500]], "dev": [frame["dev"][500]],
                        "x": [-1.0], "k": [7], "s": pd.Series(["new"], dtype="str")})
    fix["dev"] = fix["dev"].astype(frame["dev"].dtype)
    done = ds.update(fix, on="dev")  # every row of that device
    n = int((frame["dev"] == frame["dev"][500]).sum())
    assert (done.matched, done.rows_updated, done.appended) == (1, n, 0)
    got = _fresh(client).open("up").to_pandas()
    mask = frame["dev"] == frame["dev"][500]
    assert (got.loc[mask, "k"] == 7).all() and (got.loc[~mask, "k"] == frame.loc[~mask, "k"]).all()
    deleted = (frame["dev"] == "d1") & (frame["time"] <= pd.Timestamp("2026-01-01 00:01:00Z"))
    assert got.loc[deleted, "x"].isna().all()  # the delete still covers its rows


def test_update_failure_modes(client):
    ds, frame = _upsert_world(client)
    row = frame.iloc[[5]]
    with pytest.raises(InvalidArgumentError, match="share a key"):
        ds.update(pd.concat([row, row]), on=["time", "dev"])
    with pytest.raises(InvalidArgumentError, match="on must name the key columns"):
        ds.update(row, on=[])
    with pytest.raises(KeyError, match="no column 'nope'"):
        ds.update(row, on=["nope"])
    with pytest.raises(cf.SchemaMismatchError, match="missing \\['s'\\]"):
        ds.update(row.drop(columns="s"), on="time")
    with pytest.raises(cf.SchemaMismatchError, match="not in the dataset \\['extra'\\]"):
        ds.update(row.assign(extra=1), on="time")
    with pytest.raises(cf.SchemaMismatchError, match="convert"):
        ds.update(row.assign(k="text"), on="time")
    with pytest.raises(InvalidArgumentError, match="missing values"):
        ds.update(row.assign(time=pd.NaT), on="time")
    with pytest.raises(InvalidArgumentError, match="DataFrame"):
        ds.update({"time": 1}, on="time")
    with pytest.raises(cf.ReadOnlyVersionError):
        cf.open("up", version=1).update(row, on="time")
    lock = client.lock("up")
    try:
        with pytest.raises(DatasetLockedError):
            ds.update(row, on="time")
    finally:
        lock.release()
    assert ds.versions()["version"].tolist() == [1] and client.recover().empty


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["put-done:1", "ckpt-done:1", "commit-tx:1",
                                    "publish-done:1"])
def test_kill_9_during_an_update_then_recover_apply(client, moment):
    base = source_frame(1_000)
    client.ingest(base, "upd", chunk_rows=100, time_column="time", device_column="device",
                  progress=False)
    kill_at(["update", "upd"], _worker_env(client), moment)
    committed = moment == "publish-done:1"
    report = client.recover(apply=True)
    assert report["applied"].all(), report.to_dict("records")
    assert client.recover(verify=True).empty
    got = _fresh(client).open("upd").to_pandas()
    if committed:
        assert len(got) == 1_010 and (got["value"].iloc[[0, 500]] == 1e6).all()
    else:
        pd.testing.assert_frame_equal(got, base)
    _fresh(client).open("upd").append(base.iloc[:10], progress=False)  # writable again
