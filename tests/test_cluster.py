"""Redis Cluster: the same workflows on 3 real masters as on one redis-server, every key of a
dataset or context in one slot, and the errors of a cluster that is down or partly covered."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import redis
from crash_worker import source_frame
from redis.cluster import key_slot
from servers import RedisClusterProcess

import chunkframe as cf
from chunkframe.contextcache.index import index_head, index_key
from chunkframe.core.config import redact
from chunkframe.core.errors import BackendUnavailableError
from chunkframe.storage.state import connect_cluster, is_cluster, pipelined, redis_url_of

HERE = Path(__file__).parent


def frame(rows: int, start: int = 0) -> pd.DataFrame:
    """Rows of 4 devices with a nullable measurement, times one second apart."""
    sn = np.arange(start, start + rows)
    return pd.DataFrame({
        "time": pd.Timestamp("2026-01-01") + pd.to_timedelta(sn, unit="s"),
        "device": [f"d{i % 4}" for i in sn],
        "value": sn * 0.5,
        "count": pd.array([None if i % 7 == 0 else int(i) for i in sn], dtype="Int64"),
    })


def connect(tmp_path: Path, url: str, prefix: str) -> cf.Client:
    return cf.connect(store=tmp_path / "store", redis=url, catalog=tmp_path / "catalog.db",
                      home=tmp_path, prefix=prefix)


@pytest.fixture
def on_cluster(tmp_path: Path, redis_cluster: RedisClusterProcess, prefix: str) -> cf.Client:
    return connect(tmp_path / "cluster", redis_cluster.url, prefix)


@pytest.fixture
def on_single(tmp_path: Path, redis_server: Any, prefix: str) -> cf.Client:
    return connect(tmp_path / "single", redis_server.url, prefix)


def workflow(client: cf.Client) -> dict[str, Any]:
    """Ingest, reads, last values, contexts, delete, append and versions; what each gave."""
    out: dict[str, Any] = {}
    ds = client.ingest(frame(3_000), "flights", chunk_rows=256, time_column="time",
                       device_column="device")
    out["get"] = ds.get(1_234)
    out["get_value"] = ds.get(2_999, "count")
    out["get_many"] = ds.get_many([5, 2_500, 5, 0])
    out["slice"] = ds.slice(250, 520)
    out["last"] = ds.last()
    ds.tag("owner", "Ana Lee, data team", keywords=["Q3"])
    ds.tag("source", "radar feed", type="DATA")
    other = client.context("analysis-42")
    other.put("note", "team review of the radar feed")
    other.put_many({"a": "team a", "b": "team b"}, type="VARIABLE")
    other.put("a", "renamed", type="VARIABLE")            # replace: loses keyword "team"
    other.remove("b", type="VARIABLE")                     # remove: leaves the index
    out["tags"] = ds.tags()
    out["search"] = other.search("team")
    out["find_team"] = client.find("team")
    out["find_radar"] = client.find("RADAR")
    out["find_q3"] = client.find("q3")
    other.clear(type="VARIABLE")
    out["find_after_clear"] = client.find("renamed")
    done = ds.delete(device="d1", date_range=("2026-01-01 00:10:00", "2026-01-01 00:20:00"))
    out["deleted"] = done.total
    ds.append(frame(500, start=3_000))
    ds = client.open("flights")
    out["rows"] = len(ds)
    out["all"] = ds.to_pandas()
    out["last_after"] = ds.last()
    out["versions"] = ds.versions()[["version", "rows"]]
    out["v1"] = client.open("flights", version=1).slice(0, 300)
    out["contexts"] = client.contexts()[["context_id", "entries"]]
    out["datasets"] = client.datasets()[["id", "rows", "chunks"]]
    out["recover"] = client.recover()
    ds.reset_last(device="d2")
    out["last_reset"] = ds.last(device="d2")
    keys = client.state.keys("flights")
    client.redis.delete(keys.meta, keys.last)                      # Redis lost them
    out["recover_lost"] = client.recover(apply=True)[["dataset", "problem", "applied"]]
    out["after_repair"] = client.open("flights").get_many([0, 1_999, 3_499])
    return out


def same(a: Any, b: Any) -> None:
    if isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b)
    elif isinstance(a, pd.Series):
        pd.testing.assert_series_equal(a, b)
    else:
        assert a == b


def test_a_workflow_on_a_cluster_equals_one_on_a_single_server(on_cluster: cf.Client,
                                                               on_single: cf.Client) -> None:
    assert is_cluster(on_cluster.redis) and not is_cluster(on_single.redis)
    there, here = workflow(on_cluster), workflow(on_single)
    for name in here:
        same(there[name], here[name])
    assert there["rows"] == 3_500 and there["deleted"] > 0
    assert set(there["find_team"]["key"]) == {"owner", "note"}   # "a" replaced, "b" removed
    assert len(there["find_after_clear"]) == 0
    assert there["recover"].empty
    assert there["recover_lost"]["applied"].all() and len(there["recover_lost"]) > 0


def test_every_key_of_a_dataset_or_context_shares_one_slot(on_cluster: cf.Client,
                                                           prefix: str) -> None:
    workflow(on_cluster)
    on_cluster.open("flights").last()                 # refills the last values it dropped
    keys = [k.decode() for k in on_cluster.redis.scan_iter(
        match=f"{prefix}:*", target_nodes=redis.RedisCluster.PRIMARIES)]
    slots: dict[str, set[int]] = {}
    for key in keys:
        if key.startswith(index_head(prefix)):
            continue  # the keyword index: a key per keyword, each in its keyword's slot
        tag = key[key.index("{") + 1:key.index("}")]
        slots.setdefault(tag, set()).add(key_slot(key.encode()))
    assert set(slots) == {"flights", "analysis-42"}
    assert all(len(s) == 1 for s in slots.values()), slots
    flights = {k for k in keys if "{flights}" in k}
    assert {f"{prefix}:{{flights}}:meta", f"{prefix}:{{flights}}:last",
            f"{prefix}:{{flights}}:fence", f"{prefix}:ctx:{{flights}}:entries",
            f"{prefix}:ctx:{{flights}}:version"} <= flights
    # ...and they spread over the masters: the index keys of the workflow land on several
    assert len({key_slot(k.encode()) for k in keys}) > 2


def test_find_stays_right_through_replaces_and_removes(on_cluster: cf.Client,
                                                       prefix: str) -> None:
    ctx = on_cluster.context("runs")
    ctx.put("owner", "ana", keywords=["alpha", "beta"])
    ctx.put("owner", "ana", keywords=["beta", "gamma"])        # alpha gone, gamma new
    assert set(on_cluster.find("gamma")["key"]) == {"owner"}
    assert on_cluster.find("alpha").empty
    r = on_cluster.redis
    assert not r.sismember(index_key(prefix, "alpha"), "runs\x1fMETADATA\x1fowner")
    ctx.remove("owner")
    assert on_cluster.find("beta").empty and on_cluster.find("owner").empty
    assert r.scard(index_key(prefix, "beta")) == 0


def test_a_lost_index_member_comes_back_with_reindex_and_a_stale_one_is_never_found(
        on_cluster: cf.Client, prefix: str) -> None:
    ctx = on_cluster.context("runs")
    ctx.put("owner", "ana", keywords=["alpha"])
    r = on_cluster.redis
    member = "runs\x1fMETADATA\x1fowner"
    r.srem(index_key(prefix, "alpha"), member)          # what a crash could have left
    assert on_cluster.find("alpha").empty
    assert on_cluster.contexts_cache.reindex() == 1
    assert list(on_cluster.find("alpha")["key"]) == ["owner"]
    r.sadd(index_key(prefix, "zeta"), member, "gone\x1fMETADATA\x1fx")   # stale members
    assert on_cluster.find("zeta").empty
    r.hset(f"{prefix}:ctx:{{runs}}:entries", "METADATA\x1fbad", "not json")
    r.sadd(index_key(prefix, "alpha"), "runs\x1fMETADATA\x1fbad")   # a record that is no JSON
    assert list(on_cluster.find("alpha")["key"]) == ["owner"]


@pytest.mark.parametrize("where", ["cluster", "single"])
def test_pipelined_answers_in_order_and_raises_a_command_error(
        where: str, on_cluster: cf.Client, on_single: cf.Client, prefix: str) -> None:
    r = (on_cluster if where == "cluster" else on_single).redis
    keys = [f"{prefix}:{{k{i}}}" for i in range(200)]      # slots on every master
    assert pipelined(r, [("SET", k, str(i)) for i, k in enumerate(keys)]) == [True] * 200
    assert pipelined(r, [("GET", k) for k in reversed(keys)]) == [
        str(i).encode() for i in reversed(range(200))]
    assert pipelined(r, []) == []
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        pipelined(r, [("GET", keys[0]), ("HGET", keys[1], "f")])


def test_a_killed_ingest_resumes_on_a_cluster_to_the_uninterrupted_result(
        tmp_path: Path, redis_cluster: RedisClusterProcess, prefix: str) -> None:
    rows, chunk_rows = 20_000, 1_000
    env = dict(os.environ, CF_REDIS=redis_cluster.url, CF_PREFIX=prefix,
               CF_STORE=str(tmp_path / "store"), CF_CATALOG=str(tmp_path / "catalog.db"),
               CF_HOME=str(tmp_path), CF_ROWS=str(rows), CF_CHUNK_ROWS=str(chunk_rows),
               CF_LOCK_TTL="1", CF_WORKERS="2", CF_PAUSE="ckpt-done:5")
    proc = subprocess.Popen([sys.executable, str(HERE / "crash_worker.py"), "ingest", "crashy"],
                            env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    seen = 0
    for line in proc.stdout:
        seen += line.startswith("ckpt-done")
        if seen == 5:
            break  # the worker sleeps after its 5th checkpoint: kill it there
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    client = cf.connect(store=tmp_path / "store", redis=redis_cluster.url,
                        catalog=tmp_path / "catalog.db", home=tmp_path, prefix=prefix,
                        lock_ttl=1)
    report = client.recover()                                  # dry run: names the ingest
    assert list(report["dataset"]) == ["crashy"] and not report["applied"].any()
    status = client.state.ingest_status("crashy")
    done = client.redis.hlen(client.state.keys("crashy").chunks(int(status["generation"])))
    assert 0 < done < rows // chunk_rows
    ds = client.ingest(source_frame(rows), "crashy", chunk_rows=chunk_rows, mode="resume",
                       wait=5)
    pd.testing.assert_frame_equal(ds.to_pandas(), source_frame(rows), check_dtype=False)
    assert len(ds.chunks) == rows // chunk_rows
    assert client.recover().empty


def test_a_cluster_url_keeps_its_password_out_of_reprs_and_errors(
        redis_cluster: RedisClusterProcess) -> None:
    url = "redis+cluster://ana:s3cret@127.0.0.1:1,127.0.0.1:2"
    assert redact(url) == "redis+cluster://ana:***@127.0.0.1:1,127.0.0.1:2"
    with pytest.raises(BackendUnavailableError) as err:
        connect_cluster(url)
    assert "s3cret" not in str(err.value) and "127.0.0.1:1,127.0.0.1:2" in str(err.value)
    assert "cluster_state:ok" in str(err.value)                 # the fix
    client = connect_cluster(redis_cluster.url)
    assert redis_url_of(client).startswith("redis+cluster://127.0.0.1:")


@pytest.mark.parametrize("url, says", [
    ("redis+cluster://127.0.0.1:x", "host:port"),
    ("redis+cluster://", "host:port"),
    ("redis+cluster://127.0.0.1:7000/3", "database 0"),
    ("redis+cluster://127.0.0.1:7000?decode_responses=1", "query options"),
])
def test_a_malformed_cluster_url_is_named_with_its_form(url: str, says: str) -> None:
    with pytest.raises(BackendUnavailableError, match=says) as err:
        cf.connect(redis=url)
    assert "redis+cluster://[user:password@]host:port" in str(err.value)


def test_a_cluster_with_uncovered_slots_or_a_dead_master_is_unavailable() -> None:
    partial = RedisClusterProcess(masters=1, slots=range(8192)).start(ready=False)
    try:
        with pytest.raises(BackendUnavailableError, match="cover all 16384 slots") as err:
            connect_cluster(partial.url)
        assert partial.url in str(err.value)
    finally:
        partial.stop()
    whole = RedisClusterProcess(masters=1, password="pw").start()
    try:
        connect_cluster(whole.url).ping()
        whole.stop()
        with pytest.raises(BackendUnavailableError, match="cannot use the Redis Cluster") as err:
            connect_cluster(whole.url)
        assert "pw@" not in str(err.value) and ":***@127.0.0.1" in str(err.value)
    finally:
        whole.stop()


def test_a_cluster_that_goes_down_mid_session_is_a_backend_error(tmp_path: Path,
                                                                 prefix: str) -> None:
    cluster = RedisClusterProcess(masters=1).start()
    try:
        client = connect(tmp_path, cluster.url, prefix)
        ds = client.ingest(frame(1_000), "flights", chunk_rows=256)
        ds.tag("owner", "ana")
    finally:
        cluster.stop()
    for call in (lambda: client.context("x").put("k", "v"), lambda: client.find("ana"),
                 lambda: client.ingest(frame(10), "other")):
        with pytest.raises(BackendUnavailableError, match="Redis"):
            call()
    pd.testing.assert_series_equal(ds.get(999), frame(1_000).iloc[999])   # cached: still read


def flush_every_master(client: cf.Client) -> None:
    """What a cluster that lost its data (every master restarted empty) looks like."""
    client.redis.flushall(target_nodes=redis.RedisCluster.PRIMARIES)  # type: ignore[call-arg]
    assert not client.redis.dbsize(target_nodes=redis.RedisCluster.PRIMARIES)  # type: ignore[call-arg]


def test_contexts_a_flushed_cluster_lost_come_back_with_recover_apply(on_cluster: cf.Client,
                                                                      prefix: str) -> None:
    on_cluster.context("runs").put_many({"owner": "ana, alpha", "site": "lisbon"},
                                        keywords=["beta"])
    on_cluster.context("other").put("gate", "B12 alpha", type="DATA")
    found = on_cluster.find("alpha").to_dict("records")
    flush_every_master(on_cluster)
    assert on_cluster.find("alpha").empty
    report = on_cluster.recover(apply=True)
    assert sorted(report.loc[report["problem"] == "context_missing", "dataset"]) == [
        "other", "runs"]
    assert report["applied"].all()
    assert on_cluster.recover().empty
    again = cf.Client(on_cluster.settings)
    assert sorted(again.context("runs").to_frame()["key"]) == ["owner", "site"]
    assert again.find("alpha").to_dict("records") == found
    assert sorted(again.find("beta")["key"]) == ["owner", "site"]


def test_loading_or_writing_a_context_a_flushed_cluster_lost_restores_it(
        on_cluster: cf.Client, prefix: str) -> None:
    on_cluster.context("runs").put_many({"owner": "ana, alpha", "site": "lisbon"})
    on_cluster.context("other").put("gate", "B12 alpha")
    flush_every_master(on_cluster)
    again = cf.Client(on_cluster.settings)
    assert dict(again.context("runs").items()) == {"owner": "ana, alpha", "site": "lisbon"}
    on_cluster.context("other").put("more", "alpha")  # a write restores first, too
    assert sorted(again.find("alpha")[["context", "key"]].values.tolist()) == [
        ["other", "gate"], ["other", "more"], ["runs", "owner"]]
    assert on_cluster.recover().empty
