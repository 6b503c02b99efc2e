"""chunkframe on a PostgreSQL catalog: end to end, fencing, outages and bad URLs."""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import sys
import threading
import warnings
import weakref
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import psycopg
import pytest
from crash_worker import source_frame
from servers import free_port
from test_crash import DATASET, ROWS, Harness, Round
from test_durable import CHANGES, apply_then_clean, fill, problems, state_of
from test_durable import (
    test_a_write_after_the_loss_puts_the_recorded_entries_back_first as change_after_loss_case,
)
from test_source_repair import CHUNK, csv_files, expected_csv, flip_byte, read_back, table_of
from test_state import test_catalog_refuses_writes_from_a_superseded_lock as superseded_lock_case

import chunkframe as cf
from chunkframe.core.errors import BackendUnavailableError
from chunkframe.storage.catalog import Catalog
from chunkframe.storage.catalog_db import CatalogDamageError


def frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "time": pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(np.arange(n) + seed * n,
                                                                       unit="s"),
        "dev": pd.Series(rng.choice(["a", "b", "c"], n), dtype="str"),
        "x": rng.normal(size=n),
        "k": pd.array(rng.integers(0, 9, n), dtype="Int64"),
    })


def test_ingest_append_delete_versions_read_back(pg_client, redis_server, tmp_path, prefix,
                                                 postgres_url):
    first, more = frame(250), frame(70, seed=1)
    ds = pg_client.ingest(first, "pg", chunk_rows=64, time_column="time", device_column="dev",
                          progress=False)
    ds.append(more, progress=False)
    both = pd.concat([first, more], ignore_index=True)
    pd.testing.assert_frame_equal(ds.to_pandas(), both)
    cut = pd.Timestamp("2026-01-01 00:01:00", tz="UTC")
    ds.delete(columns="x", date_range=(None, cut))
    deleted = both.copy()
    deleted.loc[deleted["time"] <= cut, "x"] = np.nan
    pd.testing.assert_frame_equal(ds.to_pandas(), deleted)
    assert ds.versions()[["version", "kind", "rows"]].values.tolist() == [
        [1, "ingest", 250], [2, "append", 320], [3, "delete", 320]]
    pd.testing.assert_series_equal(ds.get(260), deleted.iloc[260])
    pd.testing.assert_frame_equal(ds.get_many([300, 3]), deleted.iloc[[300, 3]],
                                  check_names=False)
    # another client, with nothing in common but the URLs, reads the same record
    other = cf.connect(store=tmp_path / "store", redis=redis_server.url, catalog=postgres_url,
                       home=tmp_path / "other", prefix=prefix)
    assert other.datasets()[["id", "rows", "chunks"]].values.tolist() == [["pg", 320, 6]]
    pd.testing.assert_frame_equal(other.open("pg", version=2).to_pandas(), both)
    pd.testing.assert_frame_equal(other.open("pg", version=1).to_pandas(), first)
    assert other.catalog.get("pg") == pg_client.catalog.get("pg")


def test_a_superseded_lock_cannot_commit(pg_client):
    superseded_lock_case(pg_client)


def test_down_server_is_named_with_the_fix(tmp_path, redis_server):
    url = f"postgresql://cf:hunter2@127.0.0.1:{free_port()}/cf"
    with pytest.raises(BackendUnavailableError) as err:
        cf.connect(store=tmp_path / "s", redis=redis_server.url, catalog=url, home=tmp_path)
    message = str(err.value)
    assert "postgresql://cf:***@127.0.0.1" in message and "hunter2" not in message
    assert "Start that server" in message and "CHUNKFRAME_CATALOG" in message


def test_missing_database_and_wrong_password(postgres_server):
    with pytest.raises(BackendUnavailableError, match=r'database "nosuchdb" does not exist.*createdb'):
        Catalog(postgres_server.url("nosuchdb"))
    good = postgres_server.database(owner=postgres_server.SECRET_USER)
    wrong = postgres_server.url(good, user=postgres_server.SECRET_USER, password="not-it")
    with pytest.raises(BackendUnavailableError, match="password authentication failed") as err:
        Catalog(wrong)
    assert "not-it" not in str(err.value) and f"{postgres_server.SECRET_USER}:***@" in str(err.value)
    right = postgres_server.url(good, user=postgres_server.SECRET_USER,
                                password=postgres_server.SECRET)
    catalog = Catalog(right)
    assert catalog.ids() == [] and postgres_server.SECRET not in repr(catalog)


def test_passwords_never_show(tmp_path, redis_server, postgres_server):
    url = postgres_server.url(postgres_server.database(owner=postgres_server.SECRET_USER),
                              user=postgres_server.SECRET_USER,
                              password=postgres_server.SECRET)
    client = cf.connect(store=tmp_path / "s", redis=redis_server.url, catalog=url, home=tmp_path)
    for shown in (repr(client), repr(client.settings), repr(client.catalog), client.catalog.location):
        assert postgres_server.SECRET not in shown and "***" in shown


def _drop_connections(postgres_server) -> None:  # noqa: ANN001
    """What a restart or a failover of the server does to the client's open connection."""
    with psycopg.connect(postgres_server.url(user="postgres"), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE usename=%s AND pid<>pg_backend_pid()", (postgres_server.USER,))


def test_a_lost_connection_is_named_then_reopened(pg_client, postgres_server):
    ds = pg_client.ingest(frame(20), "kept", progress=False)
    catalog = pg_client.catalog
    _drop_connections(postgres_server)
    with pytest.raises(BackendUnavailableError, match="cannot use the PostgreSQL catalog"):
        catalog.ids()
    assert catalog.ids() == ["kept"]  # a new connection, once the server answers again
    assert len(ds) == 20


def test_a_commit_waits_out_a_dropped_connection(pg_client, postgres_server, monkeypatch):
    """The server dropped the client's connection just before an ingest's commit: the
    transaction is begun again on a new connection (retry_seconds); reads are not retried."""
    orig = Catalog.commit

    def commit(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        _drop_connections(postgres_server)
        return orig(self, *args, **kwargs)

    monkeypatch.setattr(Catalog, "commit", commit)
    ds = pg_client.ingest(frame(50), "through", progress=False)
    pd.testing.assert_frame_equal(ds.to_pandas(), frame(50))
    monkeypatch.undo()
    pg_client.catalog.db.retry_seconds = 0  # as without the deadline: the commit fails
    monkeypatch.setattr(Catalog, "commit", commit)
    with pytest.raises(BackendUnavailableError, match="cannot use the PostgreSQL catalog"):
        ds.append(frame(5, seed=1), progress=False)
    monkeypatch.undo()
    assert len(pg_client.open("through")) == 50


def _read_in_child(catalog: Catalog, queue: multiprocessing.Queue) -> None:
    queue.put(catalog.ids())


def test_a_forked_child_leaves_the_parents_connection_alone(pg_client):
    pg_client.ingest(frame(10), "f", progress=False)
    catalog = pg_client.catalog
    assert catalog.ids() == ["f"]  # the parent's connection is open
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_read_in_child, args=(catalog, queue))
    child.start()
    assert queue.get(timeout=60) == ["f"]
    child.join(60)
    assert child.exitcode == 0
    assert catalog.ids() == ["f"] and catalog.get("f") is not None


def test_a_child_forked_while_a_thread_holds_the_catalog_works(pg_client):
    pg_client.ingest(frame(10), "f", progress=False)
    catalog = pg_client.catalog
    held, release = threading.Event(), threading.Event()

    def hold() -> None:  # as a thread in the middle of a catalog call
        with catalog.db.connect():
            held.set()
            release.wait(60)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert held.wait(60)
        pid = os.fork()
        if pid == 0:  # the child: its copy of the lock is held by a thread it does not have
            signal.alarm(30)  # a deadlock ends the child with SIGALRM
            try:
                os._exit(0 if catalog.ids() == ["f"] else 1)
            except BaseException:
                os._exit(2)
        _, status = os.waitpid(pid, 0)
    finally:
        release.set()
        thread.join(60)
    assert os.waitstatus_to_exitcode(status) == 0
    assert catalog.ids() == ["f"]


def test_one_finalizer_closes_the_current_connection_only(postgres_url):
    catalog = Catalog(postgres_url)
    old = weakref.ref(catalog.db._current.conn)
    old().close()  # the next call reconnects
    assert catalog.ids() == []
    gc.collect()
    assert old() is None  # no finalizer keeps the connections it replaced alive
    current = catalog.db._current.conn
    del catalog
    gc.collect()
    assert current.closed


def test_missing_psycopg_says_which_extra(monkeypatch, postgres_url):
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(BackendUnavailableError, match=r"pip install 'chunkframe\[postgres\]'"):
        Catalog(postgres_url)


def test_a_user_who_may_only_use_rows_opens_a_migrated_catalog(postgres_server, postgres_url):
    Catalog(postgres_url).reserve_generation("d")  # made and migrated by its owner
    user, secret = postgres_server.SECRET_USER, postgres_server.SECRET
    with psycopg.connect(postgres_url, autocommit=True) as owner:
        owner.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {user}")
    database = postgres_url.rsplit("/", 1)[1]
    catalog = Catalog(postgres_server.url(database, user=user, password=secret))
    assert catalog.reserve_generation("d") == 2 and catalog.ids() == []


@pytest.mark.parametrize("url", ["postgresql://me:pw0rd@localhost/db?bogus=1",
                                 "postgresql://me:pw0rd@[::1/db"])
def test_a_url_postgres_cannot_parse_is_named(url):
    with pytest.raises(BackendUnavailableError, match=r"not a URL PostgreSQL understands") as err:
        Catalog(url)
    assert "pw0rd" not in str(err.value) and "postgresql://me:***@" in str(err.value)


@pytest.mark.slow
def test_kill_9_inside_the_commit_transaction_then_resume(tmp_path, redis_server, prefix,
                                                          postgres_url):
    """The server rolls back a killed writer's open transaction and frees its row locks."""
    h = Harness(tmp_path, redis_server.url, prefix)
    h.env["CF_CATALOG"] = postgres_url
    catalog = Catalog(postgres_url)
    killed = h.run(Round("commit-tx"))  # the statements ran, COMMIT did not
    assert killed.killed and catalog.get(DATASET) is None and catalog.ids() == []
    final = h.run(Round("none"))
    assert final.returncode == 0 and final.lines[-1] == f"done {ROWS}", final.lines[-5:]
    client = cf.connect(store=tmp_path / "store", redis=redis_server.url, catalog=postgres_url,
                        home=tmp_path, prefix=prefix)
    ds = client.open(DATASET)
    pd.testing.assert_frame_equal(ds.to_pandas(), source_frame(ROWS))
    assert catalog.versions(DATASET)["kind"].tolist() == ["ingest"]
    assert catalog.generations(DATASET) == {ds.meta.generation}


# -- durable contexts, repair from sources and a damaged catalog, on PostgreSQL ---------------
@pytest.fixture
def pg_world(tmp_path, own_redis, prefix, postgres_url):
    """test_durable's world (datasets, last values, contexts changed every way) on a
    PostgreSQL catalog and a Redis server of the test's own."""
    return fill(cf.connect(store=tmp_path / "store", redis=own_redis.url, catalog=postgres_url,
                           home=tmp_path, prefix=prefix))


def test_durable_contexts_flushall_then_recover_apply_restores_everything(pg_world, own_redis):
    before = state_of(pg_world)
    assert before["find"]["europe"] and before["last"] and before["tags"]
    assert pg_world.catalog.context_ids() == ["analysis-42", "emptied", "plain", "sensors"]
    own_redis.client().flushall()
    assert problems(pg_world.recover()) == [
        ["plain", "redis_state_missing"], ["sensors", "redis_state_missing"],
        ["analysis-42", "context_missing"], ["plain", "context_missing"],
        ["sensors", "context_missing"], ["sensors", "last_values_missing"]]
    apply_then_clean(pg_world)
    assert state_of(pg_world) == before


@pytest.mark.parametrize("change, keys", CHANGES)
def test_a_context_change_after_redis_lost_it_puts_the_record_back_first(
        tmp_path, own_redis, prefix, postgres_url, change, keys):
    """The block reads the record in its own transaction here (SQLite: the last commit)."""
    change_after_loss_case(cf.connect(store=tmp_path / "store", redis=own_redis.url,
                                      catalog=postgres_url, home=tmp_path, prefix=prefix),
                           own_redis, change, keys)


def test_context_changes_from_many_threads_are_separate_transactions(pg_client):
    """One connection per catalog and process: a thread's change holds it until its block
    ends, so no thread's statements land in another's transaction; a block that raises
    rolls back its own change only. The record is the last committed block's value."""
    catalog = pg_client.catalog
    committed: list[str] = []

    def change(i: int) -> None:
        for j in range(25):
            value = f"{i}-{j}"
            try:
                with catalog.context_change("shared", put=[("METADATA", "k", value)]):
                    if j % 3 == 0:
                        raise KeyError(value)  # as a Redis write failing inside the block
                    committed.append(value)
            except KeyError:
                pass

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(change, range(6)))
    assert len(committed) == 6 * 16
    assert catalog.context_entries("shared") == {("METADATA", "k"): committed[-1]}


def test_context_puts_from_many_threads_keep_catalog_and_redis_equal(pg_client):
    ctx = pg_client.context("tags")

    def put(i: int) -> None:
        for j in range(15):
            ctx.put(f"k{j}", i * 100 + j, keywords=[f"t{i}"])  # every thread writes every key

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(put, range(6)))
    assert len(pg_client.catalog.context_entries("tags")) == 15
    assert pg_client.recover().empty  # Redis holds exactly what the catalog recorded


def test_verify_repair_rewrites_a_damaged_chunk_from_its_recorded_source(pg_client, tmp_path):
    glob, _ = csv_files(tmp_path)
    ds = pg_client.ingest(glob, "csv", chunk_rows=CHUNK, progress=False)
    assert len(pg_client.catalog.sources("csv", 1)) == 1
    before = table_of(pg_client, "csv")
    old_key, _ = flip_byte(tmp_path, pg_client, "csv", 3)
    report = ds.verify(progress=False, repair=True)
    assert report["chunk"].tolist() == [3] and report["repaired"].tolist() == [True]
    assert table_of(pg_client, "csv") == before  # the same chunk, rebuilt exactly
    new = pg_client.catalog.chunks("csv", 1)[3]
    assert new.key != old_key and pg_client.state.chunk_metas("csv", 1)[3] == new
    assert ds.verify(progress=False).empty
    pd.testing.assert_frame_equal(read_back(pg_client.open("csv")), expected_csv(glob))


def test_a_damaged_postgres_catalog_is_named_and_not_rebuilt_in_place(pg_client, postgres_url):
    pg_client.ingest(frame(100), "a", progress=False)
    catalog = pg_client.catalog
    assert catalog.damage() is None
    with psycopg.connect(postgres_url, autocommit=True) as owner:
        owner.execute("UPDATE datasets SET tombstones='[[' WHERE id='a'")
    with pytest.raises(cf.CatalogCorruptionError, match="a value in it is unreadable") as err:
        catalog.get("a")  # one type to catch for damage of either database
    assert isinstance(err.value, cf.CatalogDamageError) and err.value.path == catalog.location
    assert cf.CatalogDamageError is CatalogDamageError  # (still importable from catalog_db)
    assert "unreadable" in catalog.damage()
    with psycopg.connect(postgres_url, autocommit=True) as owner:
        owner.execute("UPDATE datasets SET tombstones='[]'")  # that value sound again
        owner.execute("DROP TABLE chunks")
    with pytest.raises(BackendUnavailableError, match=r"is damaged \(relation \"chunks\" does not "
                       r"exist.*Restore that database from a backup") as err:
        catalog.chunks("a", 1)
    assert catalog.location in str(err.value)
    assert 'relation "chunks" does not exist' in catalog.damage()
    report = pg_client.recover(apply=True)
    assert report[["dataset", "problem", "applied"]].values.tolist() == [
        ["", "catalog_unreadable", False]]
    assert "restore the PostgreSQL database from a backup" in report["action"][0]
    assert "not applied" in report["detail"][0] and "cannot be moved aside" in report["detail"][0]
    with pytest.raises(BackendUnavailableError, match="restore it from a backup"):
        catalog.move_aside()


def test_damage_of_a_postgres_catalog_that_cannot_be_reached_raises(pg_client, postgres_server):
    catalog = pg_client.catalog
    assert catalog.ids() == []
    with psycopg.connect(postgres_server.url(user="postgres"), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE usename=%s AND pid<>pg_backend_pid()", (postgres_server.USER,))
    with pytest.raises(BackendUnavailableError, match="cannot use the PostgreSQL catalog") as err:
        catalog.damage()  # nothing can be said of its tables: not reported as damage
    assert not isinstance(err.value, CatalogDamageError)


def test_reads_go_on_through_a_catalog_outage(pg_client, postgres_server, postgres_url):
    """With the catalog unreachable, a client opens and reads what Redis published, and
    lists the datasets Redis holds (with a warning); what only the record knows fails clearly."""
    pg_client.ingest(frame(30), "a", progress=False)
    pg_client.ingest(frame(10, seed=1), "b", progress=False)
    s = pg_client.settings
    other = cf.connect(store=s.store_url, redis=s.redis_url, catalog=postgres_url, home=s.home,
                       prefix=s.prefix)  # connected before: a new connect names the outage
    database = postgres_url.rsplit("/", 1)[1].split("?")[0]
    with psycopg.connect(postgres_server.url(user="postgres"), autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname=%s",
                      (database,))
        try:
            ds = other.open("a")  # never opened by this client: Redis's head, not the record
            pd.testing.assert_frame_equal(ds.to_pandas(), frame(30))
            assert other.reader.catalog_outages >= 1
            with pytest.warns(RuntimeWarning, match="listing the 2 datasets Redis holds"):
                listed = other.datasets()
            assert listed["id"].tolist() == ["a", "b"] and listed["rows"].tolist() == [30, 10]
            with pytest.warns(RuntimeWarning, match="only the current version of 'a'"):
                listed = ds.versions()  # earlier versions live in the record only
            assert listed[["version", "rows"]].values.tolist() == [[1, 30]]
            assert listed["kind"].isna().all()
            assert str(listed["committed_at"].dtype) == "datetime64[ns, UTC]"
            with pytest.raises(BackendUnavailableError, match="PostgreSQL catalog"):
                ds.append(frame(3, seed=2), progress=False)  # a write needs the record
        finally:
            admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert other.datasets()["id"].tolist() == ["a", "b"]
