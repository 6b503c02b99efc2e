"""A missing or damaged catalog: clear errors on every operation, reads on a full disk, and
the recoverer's catalog_unreadable restoring it from Redis or the chunk files."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import chunkframe as cf
from chunkframe.core.model import ChunkMeta
from chunkframe.frontends.cli import main
from chunkframe.recover.restore import RESTORED, fences_in
from chunkframe.storage.catalog import Catalog

FRAME = pd.DataFrame({"id": np.arange(12_000, dtype=np.int64),
                      "x": np.arange(12_000, dtype=np.float64) / 4})


@pytest.fixture
def two(client):
    """'a' (one ingest) and 'b' (ingest, append, overwrite: generation 2, version 3)."""
    client.ingest(FRAME, "a", chunk_rows=1_000, progress=False)
    client.ingest(FRAME, "b", chunk_rows=1_000, progress=False).append(FRAME)
    client.ingest(FRAME.iloc[:5_000], "b", chunk_rows=700, mode="overwrite", progress=False)
    return client


def damage_pages(path: Path) -> None:
    """Overwrite every page of the catalog but the first (its schema) with garbage."""
    data = bytearray(path.read_bytes())
    data[4096:] = (bytes(range(256)) * (len(data) // 256 + 1))[:len(data) - 4096]
    path.write_bytes(bytes(data))


def reconnect(client) -> cf.Client:
    s = client.settings
    return cf.connect(store=s.store_url, redis=s.redis_url, catalog=s.catalog,
                      home=s.home, prefix=s.prefix)


def equal(client) -> None:
    client.reader.clear()
    pd.testing.assert_frame_equal(client.open("a").to_pandas(), FRAME)
    pd.testing.assert_frame_equal(client.open("b").to_pandas(), FRAME.iloc[:5_000])


META: dict = {}
OPERATIONS = {
    "ids": lambda c: c.ids(),
    "get": lambda c: c.get("a"),
    "chunks": lambda c: c.chunks("a", 1),
    "table": lambda c: c.table(),
    "versions": lambda c: c.versions("a"),
    "version": lambda c: c.version("a", 1),
    "generations": lambda c: c.generations("a"),
    "fence": lambda c: c.fence("a"),
    "claimed": lambda c: c.claimed(),
    "claim": lambda c: c.claim("a", 99),
    "reserve_generation": lambda c: c.reserve_generation("a"),
    "commit": lambda c: c.commit(META["a"], [], 1),
    "set_tombstones": lambda c: c.set_tombstones("a", (), 2, 1),
    "prune": lambda c: c.prune("a", [1], 1),
}


@pytest.mark.parametrize("op", sorted(OPERATIONS))
@pytest.mark.parametrize("how", ["pages", "deleted", "not-a-database", "truncated", "emptied"])
def test_every_catalog_operation_on_a_damaged_file_raises_a_clear_error(two, tmp_path, op, how):
    META["a"] = two.catalog.get("a")
    path = tmp_path / "catalog.db"
    if how == "pages":
        damage_pages(path)
    elif how == "deleted":
        path.unlink()
    elif how == "not-a-database":
        path.write_bytes(b"this is not a database\n" * 500)
    else:
        path.write_bytes(path.read_bytes()[:4096 if how == "truncated" else 0])
    with pytest.raises(cf.CatalogCorruptionError) as info:
        OPERATIONS[op](two.catalog)
    message = str(info.value)
    assert str(path) in message and "chunkframe recover --apply" in message
    assert isinstance(info.value.__cause__, (sqlite3.Error, pd.errors.DatabaseError, type(None)))
    if how == "deleted":
        assert "missing" in message and not path.exists()  # never re-created empty


def test_a_client_opens_on_a_damaged_catalog_and_each_call_says_so(two, tmp_path):
    damage_pages(tmp_path / "catalog.db")
    client = reconnect(two)  # connecting works: the recoverer must be able to run
    for call in (lambda: client.open("a"), client.datasets,
                 lambda: client.ingest(FRAME, "c", progress=False)):
        with pytest.raises(cf.CatalogCorruptionError, match="recover --apply"):
            call()
    assert main(["--store", str(tmp_path / "store"), "--redis", two.settings.redis_url,
                 "--catalog", str(tmp_path / "catalog.db"), "--home", str(tmp_path),
                 "--prefix", two.settings.prefix, "--json", "ls"]) == 1


def test_an_unreadable_value_in_a_sound_file_is_corruption_too(two, tmp_path):
    with sqlite3.connect(tmp_path / "catalog.db") as db:
        db.execute("UPDATE chunks SET stats='{oops' WHERE dataset='a' AND chunk=3")
        db.execute("UPDATE datasets SET tombstones='[[' WHERE id='b'")
    with pytest.raises(cf.CatalogCorruptionError, match="unreadable"):
        two.catalog.chunks("a", 1)
    with pytest.raises(cf.CatalogCorruptionError, match="unreadable"):
        two.catalog.get("b")
    assert "unreadable" in two.catalog.damage()


def test_a_sound_catalog_has_no_damage_and_a_missing_one_says_so(two, tmp_path):
    assert two.catalog.damage() is None
    (tmp_path / "catalog.db").unlink()
    assert two.catalog.damage() == "the file is missing"


def test_move_aside_keeps_the_damaged_file_and_makes_a_new_one(tmp_path):
    catalog = Catalog(tmp_path / "catalog.db")
    damage_pages(tmp_path / "catalog.db")
    before = (tmp_path / "catalog.db").read_bytes()
    aside = catalog.move_aside()
    assert aside is not None and aside.name.startswith("catalog.db.damaged-")
    assert aside.read_bytes() == before
    assert catalog.damage() is None and catalog.ids() == [] and catalog.claimed() == set()
    assert catalog.move_aside() != aside  # a second one gets its own name


# -- the recoverer ----------------------------------------------------------------------------

def recover_twice(client) -> pd.DataFrame:
    """Dry run (reports catalog_unreadable, changes nothing), apply, then a clean run."""
    dry = client.recover()
    assert "catalog_unreadable" in dry["problem"].tolist() and not dry["applied"].any()
    report = client.recover(apply=True)
    assert report["applied"].all(), report.to_dict("records")
    again = reconnect(client).recover()
    assert again.empty, again.to_dict("records")
    return report


def test_a_deleted_catalog_is_restored_from_redis(two, tmp_path):
    fences = {ds: two.catalog.fence(ds) for ds in "ab"}
    (tmp_path / "catalog.db").unlink()
    client = reconnect(two)  # creates an empty catalog
    assert client.datasets().empty
    report = recover_twice(client)
    assert report[["dataset", "problem"]].values.tolist() == [
        ["a", "catalog_unreadable"], ["b", "catalog_unreadable"]]
    assert "from Redis" in report["action"][0] and "version 3" in report["detail"][1]
    equal(client)
    assert client.open("b").versions()["version"].tolist() == [1, 3]  # generation 1 kept too
    assert client.open("b", version=1).get(19_999)["id"] == 7_999  # 12,000 + 8,000 appended
    for ds in "ab":
        assert client.catalog.fence(ds) > fences[ds]
        assert int(client.redis.get(client.state.keys(ds).fence)) >= client.catalog.fence(ds)
    client.open("a").append(FRAME)  # writes are not refused
    assert len(client.open("a")) == 24_000


def test_damaged_pages_are_moved_aside_and_the_catalog_rebuilt(two, tmp_path):
    damage_pages(tmp_path / "catalog.db")
    damaged = (tmp_path / "catalog.db").read_bytes()
    client = reconnect(two)
    dry = client.recover()
    assert dry[["dataset", "problem"]].values.tolist() == [["", "catalog_unreadable"]]
    assert "malformed" in dry["detail"][0] and "'a' from Redis" in dry["detail"][0]
    assert (tmp_path / "catalog.db").read_bytes() == damaged  # the dry run changed nothing
    recover_twice(client)
    aside = list(tmp_path.glob("catalog.db.damaged-*"))
    assert [p.read_bytes() for p in aside if not p.name.endswith(("-wal", "-shm"))] == [damaged]
    equal(client)


@pytest.mark.parametrize("size", [0, 4096])
def test_a_truncated_catalog_is_restored(two, tmp_path, size):
    path = tmp_path / "catalog.db"
    path.write_bytes(path.read_bytes()[:size])
    client = reconnect(two)
    if size:
        with pytest.raises(cf.CatalogCorruptionError, match="recover --apply"):
            client.datasets()
    else:  # an empty file is an empty database: connecting made a new catalog in it
        assert client.datasets().empty
    recover_twice(client)
    equal(client)


def test_writes_after_redis_lost_its_keys_are_not_refused(client):
    """Issue 14, defect 3: the fencing counter restarted at 1 while the catalog
    remembered more, so the next writes failed with LockLostError, no recover run."""
    ds = client.ingest(FRAME, "a", chunk_rows=4_000, progress=False)
    ds.append(FRAME)
    ds.append(FRAME)
    assert client.catalog.fence("a") == 3
    for key in client.redis.scan_iter(match=f"{client.settings.prefix}:*"):
        client.redis.delete(key)  # as FLUSHALL would (other tests share this server)
    client.reader.clear()
    for n in (4, 5):
        client.open("a").append(FRAME)
        assert len(client.open("a")) == n * 12_000


def test_damaged_catalog_and_flushed_redis_restore_from_the_chunk_files(two, tmp_path):
    keys = [str(p.relative_to(tmp_path / "store")) for p in (tmp_path / "store").rglob("*.arrow")]
    damage_pages(tmp_path / "catalog.db")
    for key in two.redis.scan_iter(match=f"{two.settings.prefix}:*"):
        two.redis.delete(key)
    client = reconnect(two)
    report = recover_twice(client)
    assert "'b' from the chunk files" in report["detail"][0]
    assert set(report["problem"]) == {"catalog_unreadable", "redis_state_missing"}
    equal(client)
    meta = client.catalog.get("b")
    assert meta.fingerprint == RESTORED and meta.generation == 2
    assert client.catalog.fence("b") > fences_in(keys)[0]
    assert client.catalog.reserve_generation("b") == 3  # never hands out a used one again
    cm = client.catalog.chunks("a", 1)[4]
    assert isinstance(cm, ChunkMeta) and cm.ranges["id"] == [4_000, 4_999]
    assert client.open("a").verify().empty
    client.open("a").append(FRAME)
    assert client.open("a").get(23_999)["id"] == 11_999


def test_a_new_catalog_with_redis_flushed_keeps_the_files_as_data_not_orphans(two, tmp_path):
    (tmp_path / "catalog.db").unlink()
    for key in two.redis.scan_iter(match=f"{two.settings.prefix}:*"):
        two.redis.delete(key)
    client = reconnect(two)
    report = recover_twice(client)
    assert "orphan_files" not in report["problem"].tolist()
    equal(client)


def test_a_chunk_file_lost_with_the_catalog_is_reported_not_restored(two, tmp_path):
    damage_pages(tmp_path / "catalog.db")
    for key in two.redis.scan_iter(match=f"{two.settings.prefix}:*"):
        two.redis.delete(key)
    next((tmp_path / "store" / "a").rglob("c00000003-*")).unlink()
    dry = reconnect(two).recover()
    assert "not restorable: 'a' (no generation of its chunk files tiles its rows" in dry["detail"][0]


def test_an_interrupted_append_is_not_restored_as_committed(two, tmp_path):
    """Chunks past the committed ones (an append killed before its commit) stay out."""
    lock = two.backends.lock("a")
    two.state.begin_ingest(lock, {"op": "append", "generation": 1, "base_chunk": 12,
                                  "base_rows": 12_000, "chunk_rows": 1_000, "fingerprint": "x"})
    src = next((tmp_path / "store" / "a").rglob("c00000011-*"))
    (src.parent / f"c00000012-f{lock.fence}.arrow").write_bytes(src.read_bytes())
    lock.release()
    damage_pages(tmp_path / "catalog.db")
    two.redis.delete(two.state.keys("a").meta)
    client = reconnect(two)
    client.recover(apply=True)
    assert len(client.open("a")) == 12_000


def test_cli_recover_reports_and_restores_a_damaged_catalog(two, tmp_path, capsys):
    damage_pages(tmp_path / "catalog.db")
    args = ["--store", str(tmp_path / "store"), "--redis", two.settings.redis_url,
            "--catalog", str(tmp_path / "catalog.db"), "--home", str(tmp_path),
            "--prefix", two.settings.prefix, "recover", "--json"]
    assert main(args) == 4  # found, left as it was: a dry run
    found = json.loads(capsys.readouterr().out)
    assert [p["problem"] for p in found] == ["catalog_unreadable"]
    assert main([*args, "--apply"]) == 1
    capsys.readouterr()
    assert main(args) == 0
    equal(reconnect(two))


# -- a full disk under the catalog ------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs (we are root in CI); skipped, saying why, where mount is refused."""
    where = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill ({done.stderr.strip()}): needs root")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


def fill(where: Path) -> None:
    try:  # unbuffered: a buffered file's close would raise ENOSPC again, outside the loop
        with open(where / "filler", "wb", buffering=0) as f:
            while True:
                f.write(b"\0" * 65536)
    except OSError:
        pass
    os.sync()


@pytest.fixture
def on_full_disk(client, tmp_path, small_disk):
    """A function connecting a client to a catalog holding 'a' on a disk now full."""
    s = client.settings

    def connect() -> cf.Client:
        return cf.connect(store=tmp_path / "store", redis=s.redis_url, home=tmp_path,
                          catalog=small_disk / "catalog.db", prefix=s.prefix)

    connect().ingest(FRAME, "a", chunk_rows=1_000, progress=False)
    fill(small_disk)
    return connect


def test_read_only_clients_work_on_a_full_disk_and_writes_say_why(client, on_full_disk):
    s = client.settings
    reader = on_full_disk()
    assert reader.datasets()["id"].tolist() == ["a"]
    for key in client.redis.scan_iter(match=f"{s.prefix}:*"):
        client.redis.delete(key)  # reads must come from the catalog
    pd.testing.assert_frame_equal(reader.open("a").to_pandas(), FRAME)
    assert reader.open("a").versions()["version"].tolist() == [1]
    with pytest.raises(cf.BackendUnavailableError, match="catalog.*full|catalog.*disk"):
        reader.ingest(FRAME, "b", chunk_rows=1_000, progress=False)


def test_a_writer_finding_redis_down_gets_a_clear_error(tmp_path, own_redis, prefix):
    client = cf.connect(store=tmp_path / "store", redis=own_redis.url, prefix=prefix,
                        catalog=tmp_path / "catalog.db", home=tmp_path)
    ds = client.ingest(FRAME, "a", chunk_rows=4_000, progress=False)
    own_redis.stop()
    with pytest.raises(cf.BackendUnavailableError, match="fencing counter of 'a'.*Redis"):
        ds.append(FRAME)


def test_inconsistent_redis_state_is_not_trusted_the_files_are(two, tmp_path):
    """A shifted start in Redis's chunk table: the restore takes the files' own word."""
    keys = two.state.keys("a")
    entry = json.loads(two.redis.hget(keys.chunks(1), 5))
    two.redis.hset(keys.chunks(1), 5, json.dumps({**entry, "start": entry["start"] - 10}))
    (tmp_path / "catalog.db").unlink()
    client = reconnect(two)
    report = client.recover()
    row = report[report["dataset"] == "a"].iloc[0]
    assert row["problem"] == "catalog_unreadable" and "from the chunk files" in row["action"]
    recover_twice(client)
    equal(client)


# -- restores that must never lose the newest data (review findings) ---------------------------

def flush(client) -> None:
    """Delete this test's Redis keys, as FLUSHALL would (other tests share the server)."""
    for key in client.redis.scan_iter(match=f"{client.settings.prefix}:*"):
        client.redis.delete(key)


def generations(client, ds: str) -> list[str]:
    return sorted({k.split("/")[1] for k in client.backends.store.list(ds)})


def test_a_restore_that_fails_partway_changes_nothing_and_a_later_run_finishes(client, tmp_path):
    client.ingest(pd.DataFrame({"x": range(100)}), "a", chunk_rows=10, progress=False)
    client.ingest(pd.DataFrame({"x": range(500, 700)}), "a", chunk_rows=10, mode="overwrite",
                  progress=False)
    (tmp_path / "catalog.db").unlink()
    restored = reconnect(client)  # an empty catalog: 'a' is restorable from Redis and its files
    with sqlite3.connect(tmp_path / "catalog.db") as db:  # the last version's write fails
        db.execute("CREATE TRIGGER full BEFORE INSERT ON versions WHEN NEW.generation = 2 "
                   "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
    report = restored.recover(apply=True)
    row = report[report["problem"] == "catalog_unreadable"].iloc[0]
    assert not row["applied"] and "not applied" in row["detail"]
    assert not report["applied"].any(), report.to_dict("records")  # no repair on a half restore
    assert generations(restored, "a") == ["g000001", "g000002"]
    assert restored.catalog.get("a") is None  # all versions or none
    with sqlite3.connect(tmp_path / "catalog.db") as db:
        db.execute("DROP TRIGGER full")
    restored.recover(apply=True)
    after = reconnect(client)
    pd.testing.assert_frame_equal(after.open("a").to_pandas(),
                                  pd.DataFrame({"x": range(500, 700)}))
    assert after.catalog.versions("a")["generation"].tolist() == [1, 2]
    assert after.recover().empty


def test_a_dataset_only_its_files_hold_is_offered_not_deleted_after_a_new_ingest(client, tmp_path):
    client.ingest(pd.DataFrame({"x": range(100)}), "a", chunk_rows=10, progress=False)
    (tmp_path / "catalog.db").unlink()
    flush(client)
    fresh = reconnect(client)
    fresh.ingest(pd.DataFrame({"y": range(10)}), "c", progress=False)  # the catalog has an entry
    dry = fresh.recover()
    row = dry[dry["dataset"] == "a"]
    assert row["problem"].tolist() == ["catalog_unreadable"], dry.to_dict("records")
    assert "from the chunk files" in row["action"].iloc[0]
    fresh.recover(apply=True)
    assert len(list(fresh.backends.store.list("a"))) == 10
    pd.testing.assert_frame_equal(reconnect(client).open("a").to_pandas(),
                                  pd.DataFrame({"x": range(100)}))


def test_files_the_catalog_never_claimed_that_cannot_be_restored_are_kept(client, tmp_path):
    client.ingest(pd.DataFrame({"x": range(100)}), "a", chunk_rows=10, progress=False)
    (tmp_path / "catalog.db").unlink()
    flush(client)
    next((tmp_path / "store" / "a").rglob("c00000003-*")).unlink()  # no longer tiles its rows
    fresh = reconnect(client)
    fresh.ingest(pd.DataFrame({"y": range(10)}), "c", progress=False)
    report = fresh.recover(apply=True)
    row = report[report["dataset"] == "a"]
    assert row["problem"].tolist() == ["catalog_unreadable"], report.to_dict("records")
    assert "cannot be restored: no generation" in row["detail"].iloc[0]
    assert not row["applied"].iloc[0] and len(list(fresh.backends.store.list("a"))) == 9


def test_a_catalog_restored_from_an_older_backup_learns_redis_newer_versions(client, tmp_path):
    client.ingest(pd.DataFrame({"x": range(100)}), "a", chunk_rows=10, progress=False)
    backup = (tmp_path / "catalog.db").read_bytes()  # the nightly backup
    client.open("a").append(pd.DataFrame({"x": range(100, 150)}))
    client.ingest(pd.DataFrame({"x": range(500, 700)}), "a", chunk_rows=10, mode="overwrite",
                  progress=False)
    for side in ("-wal", "-shm"):
        (tmp_path / f"catalog.db{side}").unlink(missing_ok=True)
    (tmp_path / "catalog.db").write_bytes(backup)  # restored from the backup
    c = reconnect(client)
    dry = c.recover()
    assert dry["problem"].tolist() == ["catalog_unreadable"], dry.to_dict("records")
    assert "Redis holds committed generation 2 version 3 (200 rows" in dry["detail"][0]
    report = c.recover(apply=True)
    assert report["applied"].all(), report.to_dict("records")
    after = reconnect(client)
    pd.testing.assert_frame_equal(after.open("a").to_pandas(),
                                  pd.DataFrame({"x": range(500, 700)}))
    assert after.open("a").versions()["rows"].tolist() == [100, 150, 200]
    assert len(after.open("a", version=2)) == 150
    assert generations(after, "a") == ["g000001", "g000002"]
    assert after.recover().empty
    assert after.catalog.reserve_generation("a") == 3


def test_an_ingest_into_a_recreated_catalog_is_refused_and_keeps_the_old_data(client, tmp_path):
    client.ingest(pd.DataFrame({"x": range(100)}), "d", chunk_rows=10, progress=False)
    (tmp_path / "catalog.db").unlink()
    c = reconnect(client)
    with pytest.raises(cf.ChunkFrameError, match=r"no record of dataset 'd'.*committed state "
                       r"in Redis.*nothing was written.*recover"):
        c.ingest(pd.DataFrame({"x": range(1000, 1050)}), "d", chunk_rows=10, progress=False)
    assert len(list(c.backends.store.list("d"))) == 10
    flush(client)  # the store alone holds it: refused too
    with pytest.raises(cf.ChunkFrameError, match=r"10 chunk files in the store"):
        c.ingest(pd.DataFrame({"x": range(1000, 1050)}), "d", mode="overwrite", progress=False)
    c.recover(apply=True)
    c.ingest(pd.DataFrame({"x": range(1000, 1050)}), "d", chunk_rows=10, mode="append",
             progress=False)
    assert len(reconnect(client).open("d")) == 150


def test_a_new_generation_ignores_stale_checkpoints_left_under_its_number(client):
    client.ingest(pd.DataFrame({"x": range(100)}), "a", chunk_rows=10, progress=False)
    keys = client.state.keys("a")
    stale = json.loads(client.redis.hget(keys.chunks(1), 0))
    client.redis.hset(keys.chunks(2), 0, json.dumps({**stale, "checksum": "crc32c:00000000"}))
    client.ingest(pd.DataFrame({"x": range(500, 600)}), "a", chunk_rows=10, mode="overwrite",
                  progress=False)
    assert client.catalog.get("a").generation == 2
    pd.testing.assert_frame_equal(reconnect(client).open("a").to_pandas(),
                                  pd.DataFrame({"x": range(500, 600)}))


def test_recover_applies_nothing_from_a_catalog_read_without_its_wal(client, on_full_disk):
    flush(client)  # redis_state_missing: a repair there would be
    reader = on_full_disk()
    dry = reader.recover()
    assert "catalog_stale" in dry["problem"].tolist()
    assert "may be stale" in dry[dry["problem"] == "catalog_stale"]["detail"].iloc[0]
    report = reader.recover(apply=True)
    assert not report["applied"].any(), report.to_dict("records")
    missing = report[report["problem"] == "redis_state_missing"]["detail"].iloc[0]
    assert "not applied: the catalog was read without its WAL because its disk is full" in missing
    assert reader.state.meta("a") is None  # Redis untouched


def test_redis_newer_than_the_catalog_but_broken_is_reported_and_nothing_deleted(client,
                                                                                  tmp_path):
    client.ingest(pd.DataFrame({"x": range(100)}), "a", chunk_rows=10, progress=False)
    backup = (tmp_path / "catalog.db").read_bytes()
    client.ingest(pd.DataFrame({"x": range(500, 700)}), "a", chunk_rows=10, mode="overwrite",
                  progress=False)
    for side in ("-wal", "-shm"):
        (tmp_path / f"catalog.db{side}").unlink(missing_ok=True)
    (tmp_path / "catalog.db").write_bytes(backup)
    next((tmp_path / "store" / "a" / "g000002").glob("c00000003-*")).unlink()
    c = reconnect(client)
    keys = sorted(c.backends.store.list("a"))
    report = c.recover(apply=True)
    assert report[["problem", "applied"]].values.tolist() == [["redis_state_corrupt", False]]
    assert "cannot be restored into the catalog: the file of chunk 3" in report["detail"][0]
    assert sorted(c.backends.store.list("a")) == keys and c.state.meta("a").generation == 2
