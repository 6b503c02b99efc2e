"""Durable contexts and last values: a Redis that loses its keys (FLUSHALL, a restart
without persistence) loses no tag, find result or last value once `recover --apply` ran."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from frames import sensors

import chunkframe as cf
from chunkframe.contextcache import ContextCache
from chunkframe.frontends.cli import main
from chunkframe.session import Client
from chunkframe.storage.catalog import Catalog

KEYWORDS = ["team-a", "ana", "q3", "europe", "owner", "gate", "threshold", "legacy", "lisbon"]


@pytest.fixture
def client(tmp_path, own_redis, prefix):
    """A client on a Redis server of the test's own (FLUSHALL and restarts stay private)."""
    return cf.connect(store=tmp_path / "store", redis=own_redis.url,
                      catalog=tmp_path / "catalog.db", home=tmp_path, prefix=prefix)


@pytest.fixture
def world(client):
    """Datasets with last values and tags, and contexts changed every way there is."""
    return fill(client)


def fill(client: Client) -> Client:
    """Give ``client`` the datasets and contexts of :func:`world`; returns it."""
    data = sensors(6_000, devices=4)
    ds = client.ingest(data.iloc[:4_000], "sensors", chunk_rows=1_000, time_column="time",
                       device_column="dev", progress=False)
    ds.append(data.iloc[4_000:])
    ds.delete(device="d1", columns="x", date_range=(data["time"][5_500], None))
    ds.tag("owner", "ana, team-a", keywords=["q3"])
    ds.tag("rows", 6_000, type="VARIABLE")
    plain = client.ingest(pd.DataFrame({"x": range(10)}), "plain", progress=False)
    plain.tag("place", "Lisbon harbour")
    ctx = client.context("analysis-42")
    ctx.put("owner", "ana", keywords=["europe"])
    ctx.put_many({"gate": "B12 lisbon", "gone": "soon"}, type="DATA")
    ctx.put("threshold", 0.8, type="VARIABLE")
    ctx.put("owner", "ana and bob", keywords=["europe", "q3"])  # replaced
    ctx.remove("gone")
    ctx.put("scratch", 1, type="ENV")
    ctx.clear("ENV")
    empty = client.context("emptied")
    empty.put("a", 1)
    empty.clear()
    return client


def fresh(client: Client) -> Client:
    """Another client on the same settings: nothing of the first one's memory."""
    return Client(client.settings)


def state_of(client: Client) -> dict:
    """What users see of contexts, tags, find and last values, read by a fresh client."""
    c = fresh(client)
    return {
        "contexts": {cid: c.context(cid).to_frame().to_dict("records")
                     for cid in ("analysis-42", "sensors", "plain", "emptied")},
        "find": {w: c.find(w).to_dict("records") for w in KEYWORDS},
        "tags": c.open("sensors").tags().to_dict("records"),
        "last": c.open("sensors").last().to_dict("records"),
        "get": c.open("sensors").get(5_999).to_dict(),
    }


def redis_dump(client: Client) -> list:
    r = client.redis
    out = []
    for k in sorted(r.scan_iter(match=f"{client.settings.prefix}:*")):
        t = r.type(k)
        out.append((k, t, r.hgetall(k) if t == b"hash" else
                    sorted(r.smembers(k)) if t == b"set" else r.get(k)))
    return out


def dry_run(client: Client) -> pd.DataFrame:
    before = (redis_dump(client), Path(client.settings.catalog).read_bytes())
    report = client.recover()
    assert (redis_dump(client), Path(client.settings.catalog).read_bytes()) == before, "a dry run wrote"
    assert not report["applied"].any()
    return report


def apply_then_clean(client: Client) -> pd.DataFrame:
    report = client.recover(apply=True)
    assert report["applied"].all(), report.to_dict("records")
    again = client.recover()
    assert again.empty, again.to_dict("records")
    return report


def problems(report: pd.DataFrame) -> list[list[str]]:
    return report[["dataset", "problem"]].values.tolist()


def test_a_consistent_world_is_clean_and_every_context_is_recorded(world):
    assert world.recover().empty
    assert world.catalog.context_ids() == ["analysis-42", "emptied", "plain", "sensors"]
    assert world.catalog.context_entries("emptied") == {}
    assert world.catalog.context_entries("never") is None
    recorded = world.catalog.context_entries("analysis-42")
    assert sorted(recorded) == [("DATA", "gate"), ("METADATA", "owner"), ("VARIABLE", "threshold")]
    assert json.loads(recorded[("METADATA", "owner")]) == {"v": "ana and bob",
                                                           "k": ["ana", "and", "bob", "europe", "q3"]}


def test_flushall_then_recover_apply_restores_everything(world, own_redis):
    before = state_of(world)
    assert before["find"]["europe"] and before["last"] and before["tags"]
    own_redis.client().flushall()
    report = dry_run(world)
    assert problems(report) == [
        ["plain", "redis_state_missing"], ["sensors", "redis_state_missing"],
        ["analysis-42", "context_missing"], ["plain", "context_missing"],
        ["sensors", "context_missing"], ["sensors", "last_values_missing"]]
    assert "none of its 3 entries" in report["detail"][2]
    assert "no last-value data" in report["detail"][5]
    apply_then_clean(world)
    assert state_of(world) == before
    assert sorted(world.contexts_cache.stored_ids()) == ["analysis-42", "plain", "sensors"]


def test_a_copy_loaded_before_the_loss_is_never_taken_for_the_restored_one(client, own_redis):
    client.context("v").put("a", 1)
    client.context("v").put("b", 2)  # version 2
    other = fresh(client)
    other.contexts_cache.staleness = 0
    assert other.context("v").get("b") == 2  # loaded at version 2
    client.context("v").put("c", 3)  # version 3, without `other`
    own_redis.client().flushall()  # the counter restarts: a restore counting on would say 2
    apply_then_clean(client)
    assert other.context("v").get("c") == 3


def test_loading_a_context_redis_lost_restores_it_before_recover_runs(world, own_redis):
    before = state_of(world)
    own_redis.client().flushall()
    assert fresh(world).context("analysis-42").to_frame().to_dict("records") == \
        before["contexts"]["analysis-42"]
    assert world.find("europe").to_dict("records") == before["find"]["europe"]
    assert fresh(world).context("never-written").to_frame().empty
    assert world.catalog.context_ids() == ["analysis-42", "emptied", "plain", "sensors"]
    report = dry_run(world)
    assert [p for p in problems(report) if p[1].startswith("context")] == [
        ["plain", "context_missing"], ["sensors", "context_missing"]]


def test_a_redis_restarted_without_persistence_loses_nothing(world, own_redis):
    before = state_of(world)
    own_redis.stop()
    for name in ("appendonlydir", "appendonly.aof", "dump.rdb"):  # no persistence: no files
        path = own_redis.dir / name
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    own_redis.start()
    assert own_redis.client().dbsize() == 0
    assert main(["--store", str(world.settings.store_url), "--redis", own_redis.url,
                 "--catalog", str(world.settings.catalog), "--prefix", world.settings.prefix,
                 "recover", "--apply"]) == 1  # problems were found (and repaired)
    assert world.recover().empty
    world.reader.clear()
    assert state_of(world) == before
    world.open("sensors").append(sensors(10, devices=4).assign(
        time=pd.date_range("2027-01-01", periods=10, freq="s", tz="UTC")))  # writes go on


@pytest.mark.parametrize("damage, problem, detail", [
    ("deleted", "context_missing", "none of its 3 entries"),
    ("entry-lost", "context_behind", "1 entries missing ('DATA/gate')"),
    ("entry-changed", "context_behind", "1 entries different from the catalog's"),
    ("entry-extra", "context_behind", "1 entries the catalog does not record ('ENV/x')"),
    ("unindexed", "context_behind", "the keyword index lacks 1 of its"),
])
def test_each_context_problem_is_reported_then_rebuilt(world, damage, problem, detail):
    before = state_of(world)
    r, head = world.redis, f"{world.settings.prefix}:ctx:{{analysis-42}}:entries"
    if damage == "deleted":
        r.delete(head)
    elif damage == "entry-lost":
        r.hdel(head, "DATA\x1fgate")
    elif damage == "entry-changed":
        r.hset(head, "DATA\x1fgate", json.dumps({"v": "C3", "k": []}))
    elif damage == "entry-extra":
        r.hset(head, "ENV\x1fx", json.dumps({"v": 1, "k": []}))
    else:
        assert r.srem(f"{world.settings.prefix}:ctxkw:{{lisbon}}", "analysis-42\x1fDATA\x1fgate")
    report = dry_run(world)
    assert problems(report) == [["analysis-42", problem]]
    assert detail in report["detail"][0], report["detail"][0]
    apply_then_clean(world)
    assert state_of(world) == before


@pytest.mark.parametrize("damage", ["deleted", "older-version"])
def test_last_values_missing_or_behind_are_rebuilt_from_the_chunks(world, damage):
    before = state_of(world)
    keys = world.state.keys("sensors")
    if damage == "deleted":
        world.redis.delete(keys.last, keys.flushed)
    else:
        world.redis.hset(keys.last, "ver", 1)
    report = dry_run(world)
    assert problems(report) == [["sensors", "last_values_missing"]]
    assert ("no last-value data" if damage == "deleted" else "version 1, the catalog") \
        in report["detail"][0]
    reads = world.last_values.counters["chunk_reads"]
    apply_then_clean(world)
    assert world.last_values.counters["chunk_reads"] > reads  # computed from the chunk files
    assert state_of(world) == before


def test_contexts_written_before_durable_contexts_are_recorded_then_survive(client, own_redis):
    legacy = ContextCache(client.redis, prefix=client.settings.prefix)  # no durable record
    legacy.context("old").put("city", "lisbon", keywords=["legacy"])
    legacy.context("older").put("k", 1)
    report = dry_run(client)
    assert problems(report) == [["old", "context_unrecorded"], ["older", "context_unrecorded"]]
    assert "Redis only" in report["detail"][0]
    apply_then_clean(client)
    assert client.catalog.context_ids() == ["old", "older"]
    own_redis.client().flushall()
    apply_then_clean(client)
    assert client.find("legacy")[["context", "key", "value"]].values.tolist() == [
        ["old", "city", "lisbon"]]


def test_a_first_recorded_write_adopts_the_entries_redis_already_held(client, own_redis):
    ContextCache(client.redis, prefix=client.settings.prefix).context("old").put_many(
        {"a": 1, "b": 2, "c": 3})
    ctx = client.context("old")
    ctx.put("d", 4)
    ctx.remove("b")
    assert client.recover().empty  # recorded whole: nothing unrecorded, nothing extra
    own_redis.client().flushall()
    apply_then_clean(client)
    assert dict(fresh(client).context("old").items()) == {"a": 1, "c": 3, "d": 4}


def test_a_put_that_redis_refuses_is_not_recorded(client, own_redis):
    ctx = client.context("c")
    ctx.put("kept", 1)
    own_redis.stop()
    try:
        with pytest.raises(cf.BackendUnavailableError, match="write to context 'c'"):
            ctx.put("lost", 2)
        with pytest.raises(cf.BackendUnavailableError, match="remove 'kept' from context 'c'"):
            ctx.remove("kept")
    finally:
        own_redis.start()
    assert client.catalog.context_entries("c") == {("METADATA", "kept"): '{"v":1,"k":[]}'}
    assert client.recover().empty


def test_a_put_the_catalog_cannot_record_writes_nothing(client, tmp_path):
    ctx = client.context("c")
    ctx.put("kept", 1)
    catalog = Path(client.settings.catalog)
    catalog.rename(tmp_path / "moved.db")
    catalog.mkdir()  # the catalog cannot be opened now
    with pytest.raises(cf.BackendUnavailableError,
                       match=r"could not record the change of context 'c' in the catalog"):
        ctx.put("new", 2)
    assert client.redis.hkeys(f"{client.settings.prefix}:ctx:{{c}}:entries") == [
        b"METADATA\x1fkept"]
    with pytest.warns(RuntimeWarning, match="could not read the catalog's record of context"):
        assert client.context("empty").get("x") is None  # reads go on from Redis


def test_recording_failure_modes(client):
    plain = ContextCache(client.redis, prefix=client.settings.prefix)
    plain.context("x").put("a", 1)
    with pytest.raises(cf.ContextError, match="no durable record; build it with record="):
        plain.record_stored("x")
    assert plain.recorded_ids() == [] and plain.check("x") is None
    with pytest.raises(cf.InvalidDatasetIdError):
        client.contexts_cache.check("../x")
    assert client.contexts_cache.check("never-written") is None
    assert client.contexts_cache.restore("never-written") == 0
    ds = client.ingest(pd.DataFrame({"x": range(3)}), "timeless", progress=False)
    assert client.last_values.missing(client.catalog.get(ds.id)) is None
    with pytest.raises(cf.ChunkFrameError, match="no last values"):
        client.last_values.restore("timeless")


def test_a_catalog_from_before_durable_contexts_gets_their_tables(tmp_path):
    path = tmp_path / "old.db"
    Catalog(path)
    with sqlite3.connect(path) as db:  # as a catalog of the release before this one was
        db.execute("DROP TABLE contexts")
        db.execute("DROP TABLE context_entries")
        db.execute("PRAGMA user_version=3")
    catalog = Catalog(path)
    assert catalog.context_ids() == [] and catalog.context_entries("x") is None
    with catalog.context_change("x", put=[("METADATA", "a", '{"v":1,"k":[]}')]):
        pass
    assert catalog.context_entries("x") == {("METADATA", "a"): '{"v":1,"k":[]}'}


#: each way to change a context, and the keys it leaves of {a, b, DATA d} (test_postgres too)
CHANGES = [
    pytest.param(lambda ctx: ctx.put("c", 3), ["a", "b", "c", "d"], id="put"),
    pytest.param(lambda ctx: ctx.remove("a"), ["b", "d"], id="remove"),
    pytest.param(lambda ctx: ctx.clear("DATA"), ["a", "b"], id="clear-type"),
    pytest.param(lambda ctx: ctx.clear(), [], id="clear"),
]


@pytest.mark.parametrize("change, keys", CHANGES)
def test_a_write_after_the_loss_puts_the_recorded_entries_back_first(client, own_redis,
                                                                    change, keys):
    ctx = client.context("c")
    ctx.put("a", 1)
    other = fresh(client)
    other.contexts_cache.staleness = 0
    assert other.context("c").get("b") is None  # a copy at version 1: {a}
    ctx.put("b", 2)
    ctx.put("d", 4, type="DATA")
    own_redis.client().flushall()
    change(ctx)  # from the copy loaded before the loss: the counter would restart at 1
    assert sorted(fresh(client).context("c").to_frame()["key"]) == keys
    assert sorted(other.context("c").to_frame()["key"]) == keys  # not taken as version 1
    assert sorted(ctx.to_frame()["key"]) == keys
    assert client.recover().empty


def test_a_reload_that_restores_keeps_the_byte_total_of_the_cache(client, own_redis):
    cache = client.contexts_cache
    cache.staleness = 0
    client.context("other").put("x", "y" * 100)
    ctx = client.context("c")
    ctx.put_many({"a": 1, "b": "two words"})
    assert ctx.get("a") == 1
    own_redis.client().flushall()
    assert ctx.get("b") == "two words"  # the version moved: reloads, which restores
    loaded = cache.contexts(include_stored=False)
    assert sorted(loaded["context_id"]) == ["c", "other"]
    assert cache.memory_bytes == loaded["memory_bytes"].sum() > 100


def test_a_write_or_restore_that_redis_refuses_is_a_chunkframe_error(client, own_redis):
    ctx = client.context("c")
    ctx.put("kept", 1)
    r = own_redis.client()
    r.flushall()
    r.config_set("maxmemory-policy", "noeviction")
    r.config_set("maxmemory", 1)  # every write is refused: OOM
    try:
        with pytest.raises(cf.BackendUnavailableError,
                           match=r"could not restore context 'c' from the catalog: Redis "
                                 r"refused it \(.*used memory > 'maxmemory'\)"):
            ctx.put("new", 2)
        report = client.recover(apply=True)  # each repair's error is reported, not raised
        assert report[["dataset", "problem", "applied"]].values.tolist() == [
            ["c", "context_missing", False]]
        assert "not applied: could not restore context 'c'" in report["detail"][0]
        assert "Redis refused it" in report["detail"][0]
    finally:
        r.config_set("maxmemory", 0)
    assert client.catalog.context_entries("c") == {("METADATA", "kept"): '{"v":1,"k":[]}'}
    ctx.put("new", 2)
    assert dict(fresh(client).context("c").items()) == {"kept": 1, "new": 2}
