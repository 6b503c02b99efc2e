"""The recoverer: each problem made for real, reported by a dry run that changes nothing,
repaired by apply, and a second run clean."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from crash_worker import kill_at, source_frame

import chunkframe as cf
from chunkframe.frontends.cli import main
from chunkframe.storage.state import Holder

HERE = Path(__file__).parent
ROWS, CHUNK = 40_000, 2_000


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({"id": np.arange(20_000, dtype=np.int64),
                         "x": np.arange(20_000, dtype=np.float64)})


@pytest.fixture
def ds(client, frame):
    return client.ingest(frame, "rec", chunk_rows=2_000, progress=False)


def everything(client, tmp_path) -> tuple:
    """Redis keys and values of the test's prefix, catalog bytes and store files: a dry
    run must leave all of it as it was."""
    r = client.redis
    keys = sorted(r.scan_iter(match=f"{client.settings.prefix}:*"))
    dump = []
    for k in keys:
        t = r.type(k)
        dump.append((k, t, r.hgetall(k) if t == b"hash" else r.get(k)))
    files = sorted((str(p), p.read_bytes()) for p in (tmp_path / "store").rglob("*")
                   if p.is_file())
    return dump, (tmp_path / "catalog.db").read_bytes(), files


def dry_run_reports(client, tmp_path, verify: bool = False) -> pd.DataFrame:
    before = everything(client, tmp_path)
    report = client.recover(verify=verify)
    assert everything(client, tmp_path) == before, "a dry run changed something"
    assert list(report.columns) == ["dataset", "problem", "action", "detail", "applied"]
    assert not report["applied"].any()
    return report


def apply_then_clean(client, verify: bool = False) -> pd.DataFrame:
    report = client.recover(apply=True, verify=verify)
    assert report["applied"].all(), report
    again = client.recover(verify=verify)
    assert again.empty, again.to_dict("records")
    return report


def test_a_consistent_installation_reports_nothing(client, ds, tmp_path):
    assert dry_run_reports(client, tmp_path, verify=True).empty
    assert client.recover(apply=True, verify=True).empty


def test_redis_state_missing_after_a_flush_is_rebuilt_with_the_fencing_counter(client, ds,
                                                                              tmp_path, frame):
    ds.append(frame.assign(id=frame.id + 20_000))  # the catalog's fence is now 2
    for key in client.redis.scan_iter(match=f"{client.settings.prefix}:*"):
        client.redis.delete(key)
    report = dry_run_reports(client, tmp_path)
    assert report[["dataset", "problem"]].values.tolist() == [["rec", "redis_state_missing"]]
    assert "version 2" in report["detail"][0]
    apply_then_clean(client)
    assert int(client.redis.get(client.state.keys("rec").fence)) >= client.catalog.fence("rec")
    client.reader.clear()
    d = client.open("rec")
    assert d.get(39_999)["id"] == 39_999
    d.append(frame.assign(id=frame.id + 40_000))  # the next write is not refused
    assert len(client.open("rec")) == 60_000


def test_redis_state_behind_missing_chunks_and_a_low_fence(client, ds, tmp_path):
    keys = client.state.keys("rec")
    client.redis.hdel(keys.chunks(1), 4)
    report = dry_run_reports(client, tmp_path)
    assert report["problem"].tolist() == ["redis_state_behind"]
    assert "lacks chunks 4" in report["detail"][0]
    apply_then_clean(client)
    client.redis.delete(keys.fence)
    report = dry_run_reports(client, tmp_path)
    assert report["problem"].tolist() == ["redis_state_behind"]
    assert "fencing counter is missing" in report["detail"][0]
    apply_then_clean(client)


@pytest.mark.parametrize("damage", ["garbage-entry", "shifted-start", "meta-rows", "meta-json",
                                    "extra-entry"])
def test_redis_state_corrupt_is_rebuilt_from_the_catalog(client, ds, tmp_path, damage):
    keys = client.state.keys("rec")
    if damage == "garbage-entry":
        client.redis.hset(keys.chunks(1), 3, "{oops")
    elif damage == "shifted-start":
        d = json.loads(client.redis.hget(keys.chunks(1), 5))
        client.redis.hset(keys.chunks(1), 5, json.dumps({**d, "start": d["start"] - 10}))
    elif damage == "meta-rows":
        client.redis.hset(keys.meta, "rows", "19999")
    elif damage == "meta-json":
        client.redis.hset(keys.meta, "schema", "[[")
    else:
        client.redis.hset(keys.chunks(1), 99, client.redis.hget(keys.chunks(1), 0))
    report = dry_run_reports(client, tmp_path)
    assert report["problem"].tolist() == ["redis_state_corrupt"]
    apply_then_clean(client)
    client.reader.clear()
    assert client.open("rec").get(10_005)["id"] == 10_005


def test_orphan_files_with_their_bytes_are_deleted_but_kept_versions_are_not(
        client, ds, tmp_path, frame, monkeypatch):
    client.ingest(frame, "rec", chunk_rows=5_000, mode="overwrite", progress=False)
    store = tmp_path / "store"
    (store / "rec" / "g000001" / "c00000077-f9.arrow").write_bytes(b"x" * 123)
    (store / "rec" / "g000042").mkdir()
    (store / "rec" / "g000042" / "c00000000-f1.arrow").write_bytes(b"y" * 1000)
    read: list[str] = []
    for name in ("get", "read"):  # the sizes come from the store's metadata: no content read
        method = getattr(client.backends.store, name)
        monkeypatch.setattr(client.backends.store, name,
                            lambda key, method=method: read.append(key) or method(key))
    report = dry_run_reports(client, tmp_path)
    assert report[["dataset", "problem"]].values.tolist() == [["rec", "orphan_files"]]
    assert "2 files (1123 bytes)" in report["detail"][0]
    assert not [key for key in read if "c00000077" in key or "g000042" in key]
    apply_then_clean(client)
    assert not (store / "rec" / "g000042" / "c00000000-f1.arrow").exists()
    assert client.open("rec", version=1).get(1_999)["id"] == 1_999  # generation 1 is kept


def test_files_of_a_dataset_the_catalog_never_claimed_are_kept_not_orphans(client, ds,
                                                                           tmp_path):
    """The catalog may have lost it: its files are reported (not restorable) and kept."""
    ghost = tmp_path / "store" / "ghost" / "g000001" / "c00000000-f1.arrow"
    ghost.parent.mkdir(parents=True)
    ghost.write_bytes(b"z" * 10)
    report = client.recover(apply=True)
    assert report[["dataset", "problem", "applied"]].values.tolist() == [
        ["ghost", "catalog_unreadable", False]]
    assert "the catalog never recorded it and they cannot be restored" in report["detail"][0]
    assert ghost.exists()


def _kill_mid_ingest(tmp_path, redis_url: str, prefix: str, pause: str) -> None:
    env = dict(os.environ, CF_REDIS=redis_url, CF_PREFIX=prefix,
               CF_STORE=str(tmp_path / "store"), CF_CATALOG=str(tmp_path / "catalog.db"),
               CF_HOME=str(tmp_path), CF_ROWS=str(ROWS), CF_CHUNK_ROWS=str(CHUNK),
               CF_LOCK_TTL="30", CF_WORKERS="1")
    kill_at(["ingest", "crashy"], env, pause)


def test_an_ingest_killed_mid_way_is_interrupted_and_abandoned(client, tmp_path, redis_server,
                                                               prefix):
    _kill_mid_ingest(tmp_path, redis_server.url, prefix, "ckpt-done:5")
    keys = client.state.keys("crashy")
    assert client.redis.get(keys.lock) is not None  # the lock's TTL is 30 s: still there
    report = dry_run_reports(client, tmp_path)
    assert report["problem"].tolist() == ["interrupted"]
    assert "is dead" in report["detail"][0] and "5 chunks" in report["detail"][0]
    apply_then_clean(client)
    assert not client.redis.exists(keys.ingest) and not client.redis.exists(keys.lock)
    assert not list((tmp_path / "store").rglob("*.arrow"))
    ds = client.ingest(source_frame(ROWS), "crashy", chunk_rows=CHUNK, progress=False)
    assert ds.get(ROWS - 1)["id"] == ROWS - 1  # a new ingest is not refused


def test_an_interrupted_ingest_whose_lock_expired(client, tmp_path, redis_server, prefix):
    _kill_mid_ingest(tmp_path, redis_server.url, prefix, "ckpt-done:3")
    client.redis.delete(client.state.keys("crashy").lock)  # as if its TTL had passed
    report = dry_run_reports(client, tmp_path)
    assert report["problem"].tolist() == ["interrupted"]
    assert "lock expired" in report["detail"][0]
    apply_then_clean(client)


def test_an_interrupted_append_keeps_the_committed_rows(client, ds, tmp_path, frame):
    keys = client.state.keys("rec")
    lock = client.backends.lock("rec")
    client.state.begin_ingest(lock, {"op": "append", "generation": 1, "base_chunk": 10,
                                     "base_rows": 20_000, "chunk_rows": 2_000,
                                     "fingerprint": "x"})
    dead = replace(Holder.me(), pid=2**22 + 1, started="1").token()  # no such process
    client.redis.set(keys.lock, dead)
    lock._stop.set()
    report = dry_run_reports(client, tmp_path)
    assert report["problem"].tolist() == ["interrupted"]
    apply_then_clean(client)
    client.reader.clear()
    assert len(client.open("rec")) == 20_000


def test_a_stale_lock_of_a_dead_process_is_released(client, ds, tmp_path):
    keys = client.state.keys("rec")
    client.redis.set(keys.lock, replace(Holder.me(), pid=2**22 + 1, started="1").token(), px=60_000)
    report = dry_run_reports(client, tmp_path)
    assert report["problem"].tolist() == ["stale_lock"]
    apply_then_clean(client)
    assert not client.redis.exists(keys.lock)


def test_a_live_lock_is_not_stale(client, ds, tmp_path):
    lock = client.lock("rec")
    try:
        assert dry_run_reports(client, tmp_path).empty
    finally:
        lock.release()


def test_verify_reports_a_corrupt_chunk_and_leaves_it(client, ds, tmp_path):
    cm = client.catalog.chunks("rec", 1)[2]
    path = tmp_path / "store" / cm.key
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    assert client.recover().empty  # bytes are checked only with verify
    report = dry_run_reports(client, tmp_path, verify=True)
    assert report["problem"].tolist() == ["corrupt_chunk"]
    assert "chunk 2" in report["detail"][0]
    again = client.recover(apply=True, verify=True)
    assert again["applied"].tolist() == [False]


def test_recover_refuses_non_bool_flags(client):
    with pytest.raises(cf.InvalidArgumentError, match="apply and verify must be True or False"):
        client.recover(apply="yes")


def cli(client, tmp_path, *args: str) -> list[str]:
    s = client.settings
    return ["--store", str(tmp_path / "store"), "--redis", s.redis_url,
            "--catalog", str(tmp_path / "catalog.db"), "--home", str(tmp_path),
            "--prefix", s.prefix, "recover", *args]


def test_cli_recover_json_exit_status_and_apply(client, ds, tmp_path, capsys):
    assert main(cli(client, tmp_path, "--json")) == 0
    assert json.loads(capsys.readouterr().out) == []
    client.redis.delete(client.state.keys("rec").meta)
    assert main(cli(client, tmp_path, "--json")) == 4  # found, left as it was: a dry run
    found = json.loads(capsys.readouterr().out)
    assert [(p["dataset"], p["problem"]) for p in found] == [("rec", "redis_state_missing")]
    assert {"dataset", "problem", "action", "detail"} <= set(found[0])
    assert main(cli(client, tmp_path)) == 4
    assert "dry run" in capsys.readouterr().out
    assert main(cli(client, tmp_path, "--apply", "--verify")) == 1  # found, all repaired
    assert "1 problem found; 1 repaired\n" in capsys.readouterr().out
    assert main(cli(client, tmp_path)) == 0
    assert "nothing to recover" in capsys.readouterr().out


def test_cli_recover_exit_status_tells_a_problem_left_unrepaired(client, ds, tmp_path, capsys):
    cm = client.catalog.chunks("rec", 1)[2]
    path = tmp_path / "store" / cm.key
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF  # a frame has no source to re-cut it from: nothing repairs it
    path.write_bytes(bytes(data))
    client.redis.delete(client.state.keys("rec").meta)  # and one that can be repaired
    assert main(cli(client, tmp_path, "--apply", "--verify")) == 4
    assert "2 problems found; 1 repaired, 1 left as they were" in capsys.readouterr().out
    assert main(cli(client, tmp_path, "--verify", "--json")) == 4  # it is still there


def test_cli_recover_that_fails_exits_8_not_1_which_says_repaired(client, tmp_path, capsys):
    args = cli(client, tmp_path, "--json")
    args[args.index("--redis") + 1] = "redis://127.0.0.1:1/0"  # nothing listens there
    assert main(args) == 8
    assert "error" in json.loads(capsys.readouterr().out)
    assert main([*args[:-1], "--help"]) == 0
    assert "4 problems left unrepaired" in " ".join(capsys.readouterr().out.split())


def test_an_unreadable_ingest_status_of_a_dead_writer_is_deleted(client, ds, tmp_path):
    keys = client.state.keys("rec")
    client.redis.hset(keys.ingest, mapping={"generation": "{x", "op": "append"})
    assert dry_run_reports(client, tmp_path)["problem"].tolist() == ["redis_state_corrupt"]
    apply_then_clean(client)
    assert not client.redis.exists(keys.ingest)
