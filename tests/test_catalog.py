"""The catalog's contract, run against both databases: a SQLite file and a PostgreSQL server."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

import chunkframe.storage.catalog as catalog_mod
from chunkframe.core.errors import BackendUnavailableError, LockLostError, StateCorruptionError
from chunkframe.core.model import ChunkMeta, DatasetMeta, Tombstone
from chunkframe.storage.catalog import Catalog, Migration


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request, tmp_path) -> str:
    """Where a fresh catalog lives: a SQLite file, or a new database on the session's server."""
    if request.param == "sqlite":
        return str(tmp_path / "catalog.db")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def catalog(location: str) -> Catalog:
    return Catalog(location)


def meta(dataset: str = "d", *, version: int = 1, generation: int = 1, rows: int = 10,
         at: float = 1_700_000_000.25, tombstones: tuple[Tombstone, ...] = ()) -> DatasetMeta:
    return DatasetMeta(
        id=dataset, generation=generation, rows=rows, chunks=2, nbytes=2**40 + 1,  # 64-bit
        schema='{"fields": []}', chunk_rows=5, fingerprint="f" * 16, time_column="t",
        device_column=None, version=version, created=at, updated=at + version,
        tombstones=tombstones, compression="zstd")


def chunks(rows: int = 10) -> list[ChunkMeta]:
    half = rows // 2
    return [ChunkMeta(0, 0, half, "d/g1/c0.arrow", "crc32c:00000001", 100,
                      {"t": [1, 2]}, {"x": [0.5, 1.5]}),
            ChunkMeta(1, half, rows - half, "d/g1/c1.arrow", "crc32c:00000002", 2**33,
                      {}, {})]


# -- the record ---------------------------------------------------------------------------------

def test_commit_then_read_back(catalog):
    assert catalog.get("d") is None and catalog.ids() == [] and catalog.fence("d") == 0
    catalog.claim("d", 7)
    catalog.commit(meta(), chunks(), 7)
    assert catalog.get("d") == meta()
    assert catalog.chunks("d", 1) == chunks()
    assert catalog.chunks("d", 2) == [] and catalog.generations("d") == {1}
    assert catalog.ids() == ["d"] and catalog.fence("d") == 7
    table = catalog.table()
    assert table.columns.tolist() == ["id", "state", "rows", "chunks", "bytes", "generation",
                                      "chunk_rows", "time_column", "device_column", "created",
                                      "updated"]
    row = table.iloc[0]
    assert (row["id"], row["state"], row["rows"], row["bytes"]) == ("d", "complete", 10, 2**40 + 1)
    assert row["created"] == pd.Timestamp(1_700_000_000.25, unit="s", tz="UTC")


def test_sources_repairs_and_restored_generations(catalog):
    catalog.claim("d", 7)
    catalog.commit(meta(), chunks(), 7, source='{"kind": "files"}')
    catalog.commit(meta(version=2, generation=2), chunks(), 7, "overwrite", source='{"v": 2}')
    assert catalog.sources("d", 1) == ['{"kind": "files"}'] and catalog.sources("d", 2) == ['{"v": 2}']
    fixed = ChunkMeta(1, 5, 5, "d/g1/c1-f8.arrow", "crc32c:0000000f", 99, {}, {})
    catalog.replace_chunk("d", 1, fixed, 7)
    assert catalog.chunks("d", 1)[1] == fixed
    with pytest.raises(StateCorruptionError, match=r"dataset 'd' is inconsistent: chunk 5 of "
                       r"generation 1 is in Redis's chunk table but not in the catalog.*recover"):
        catalog.replace_chunk("d", 1, dataclasses.replace(fixed, chunk=5), 7)
    with pytest.raises(LockLostError):
        catalog.replace_chunk("d", 1, fixed, 6)
    assert catalog.prune("d", [1], 7) == [1] and catalog.sources("d", 1) == []  # with its chunks
    assert catalog.claimed() == {"d"} and catalog.damage() is None


def test_restore_writes_every_version_in_one_transaction_or_none(catalog):
    catalog.claim("d", 7)
    two = [(meta(), chunks(), "ingest"), (meta(version=2, generation=2, rows=20),
                                          chunks(20), "overwrite")]
    bad = [two[0], (two[1][0], [dataclasses.replace(chunks()[0], stats={"t": {1, 2}})],
                    "overwrite")]  # a set is not JSON: fails at the last version
    with pytest.raises(TypeError):
        catalog.restore("d", bad, 7, 5)
    assert catalog.get("d") is None and catalog.versions("d").empty  # nothing of it
    assert catalog.reserve_generation("d") == 1  # the counter was not raised either
    with pytest.raises(LockLostError):
        catalog.restore("d", two, 6, 5)  # fenced like commit
    assert catalog.restore("d", two, 7, 5)
    assert catalog.get("d") == two[1][0] and catalog.versions("d")["kind"].tolist() == [
        "ingest", "overwrite"]
    assert catalog.reserve_generation("d") == 6
    assert not catalog.restore("d", two[:1], 7, 5)  # older than the record: nothing written
    assert catalog.get("d") == two[1][0] and not catalog.restore("d", [], 7, 5)


def test_restore_keeps_the_chunks_the_catalog_records(catalog):
    catalog.claim("d", 7)
    catalog.commit(meta(), chunks(), 7)
    bare = [dataclasses.replace(c, stats={}, ranges={}) for c in chunks()]
    assert catalog.restore("d", [(meta(version=2, rows=10), bare, "delete")], 7, 1)
    assert catalog.chunks("d", 1) == chunks()  # statistics kept
    assert catalog.get("d").version == 2


def test_context_changes_commit_with_their_block_or_not_at_all(catalog):
    assert catalog.context_ids() == [] and catalog.context_entries("c") is None
    with catalog.context_change("c", put=[("METADATA", "a", "1"), ("DATA", "b", "2")],
                                adopt=lambda: [("ENV", "old", "0")]) as changes:
        assert changes == 1  # not recorded before
    assert catalog.context_entries("c") == {("ENV", "old"): "0", ("METADATA", "a"): "1",
                                            ("DATA", "b"): "2"}
    with pytest.raises(KeyError), catalog.context_change("c", remove=[("DATA", "b")], clear=True):
        raise KeyError("Redis refused")  # the block failed: nothing of the change is kept
    assert len(catalog.context_entries("c")) == 3
    with catalog.context_change("c", put=[("METADATA", "a", "3")], remove=[("DATA", "b")],
                                clear=True, clear_type="ENV", adopt=lambda: [("X", "y", "z")]
                                ) as changes:
        assert changes == 2  # recorded already (the failed change does not count): no adopt
    assert catalog.context_entries("c") == {("METADATA", "a"): "3"}
    with catalog.context_change("e", clear=True):
        pass
    assert catalog.context_ids() == ["c", "e"] and catalog.context_entries("e") == {}


def test_sqlite_writes_need_no_returning(tmp_path, monkeypatch):
    """SQLite before 3.35 (Debian 11, RHEL 9) has no RETURNING: no statement may use it."""
    from chunkframe.storage.catalog_db import SQLiteDatabase

    issued: list[str] = []
    opened = SQLiteDatabase._open

    def traced(self, mode):
        db = opened(self, mode)
        db.set_trace_callback(issued.append)
        return db

    monkeypatch.setattr(SQLiteDatabase, "_open", traced)
    catalog = Catalog(str(tmp_path / "catalog.db"))
    assert [catalog.reserve_generation("d") for _ in range(3)] == [1, 2, 3]
    catalog.claim("d", 5)
    catalog.claim("d", 5)  # the same token again is still the owner
    with pytest.raises(LockLostError, match=r"\(fencing token 4\) was superseded \(token 5\)"):
        catalog.claim("d", 4)
    for value in "ab":
        with catalog.context_change("c", put=[("METADATA", "k", value)],
                                    adopt=lambda: [("ENV", "old", "0")]):
            pass
    assert catalog.context_entries("c") == {("ENV", "old"): "0", ("METADATA", "k"): "b"}
    assert issued and not [sql for sql in issued if "RETURNING" in sql.upper()]


def test_a_commit_replaces_the_dataset_and_adds_a_version(catalog):
    catalog.claim("d", 1)
    catalog.commit(meta(), chunks(), 1)
    catalog.commit(meta(version=2, rows=12), chunks(12), 1, kind="append")
    versions = catalog.versions("d")
    assert versions.columns.tolist() == ["version", "kind", "rows", "generation", "committed_at"]
    assert versions[["version", "kind", "rows"]].values.tolist() == [[1, "ingest", 10],
                                                                     [2, "append", 12]]
    assert versions["committed_at"].iloc[1] == pd.Timestamp(1_700_000_002.25, unit="s", tz="UTC")
    assert catalog.get("d").rows == 12 and catalog.version("d", 1) == meta()
    as_of = pd.Timestamp(1_700_000_001.5, unit="s").value
    assert catalog.version("d", as_of=as_of) == meta()
    assert catalog.version("d", 3) is None and catalog.version("d", as_of=0) is None
    assert catalog.chunks("d", 1) == chunks(12)


def test_unknown_kind_is_refused(catalog):
    catalog.claim("d", 1)
    with pytest.raises(ValueError, match="kind='rename' is not one of"):
        catalog.commit(meta(), chunks(), 1, kind="rename")
    assert catalog.get("d") is None


def test_generations_are_never_reused(catalog):
    assert [catalog.reserve_generation("a") for _ in range(3)] == [1, 2, 3]
    assert catalog.reserve_generation("b") == 1
    assert catalog.reserve_generation("a") == 4


def test_tombstones_make_a_delete_version(catalog):
    catalog.claim("d", 3)
    catalog.commit(meta(), chunks(), 3)
    gone = (Tombstone(device=None, columns=("x",), start=5, end=9, rows=10),)
    catalog.set_tombstones("d", gone, 2, 3)
    assert catalog.get("d").tombstones == gone and catalog.get("d").version == 2
    assert catalog.versions("d")["kind"].tolist() == ["ingest", "delete"]
    assert catalog.version("d", 2).tombstones == gone


def test_prune_forgets_versions_and_unread_generations(catalog):
    catalog.claim("d", 1)
    catalog.commit(meta(), chunks(), 1)
    catalog.commit(meta(version=2, generation=2), chunks(), 1, kind="overwrite")
    assert catalog.generations("d") == {1, 2}
    assert catalog.prune("d", [1, 2], 1) == [1]  # the current version stays
    assert catalog.versions("d")["version"].tolist() == [2]
    assert catalog.generations("d") == {2} and catalog.chunks("d", 1) == []


# -- fencing ------------------------------------------------------------------------------------

def test_a_superseded_token_cannot_write(catalog):
    catalog.claim("d", 5)
    catalog.commit(meta(), chunks(), 5)
    catalog.claim("d", 6)  # another worker took the lock
    with pytest.raises(LockLostError, match=r"dataset 'd'.*token 5\) was superseded \(token 6\)"):
        catalog.commit(meta(version=2, rows=99), chunks(), 5)
    with pytest.raises(LockLostError, match="superseded"):
        catalog.set_tombstones("d", (), 2, 5)
    with pytest.raises(LockLostError, match="superseded"):
        catalog.prune("d", [1], 5)
    with pytest.raises(LockLostError, match="superseded"):
        catalog.claim("d", 4)  # no claiming one's way back
    assert catalog.get("d") == meta() and catalog.fence("d") == 6
    catalog.claim("d", 6)  # the owner may claim again
    catalog.commit(meta(version=2), chunks(), 6)
    assert catalog.get("d").version == 2


def test_an_unclaimed_dataset_cannot_be_written(catalog):
    with pytest.raises(LockLostError, match=r"token None"):
        catalog.commit(meta(), chunks(), 1)
    assert catalog.get("d") is None and catalog.versions("d").empty


def test_the_ingest_begun_last_is_recorded_under_its_fence(catalog):
    assert catalog.ingest_record("d") is None
    catalog.claim("d", 3)
    catalog.record_ingest("d", {"op": "create", "generation": 1, "source": '{"kind": "files"}'}, 3)
    catalog.record_ingest("d", {"op": "overwrite", "generation": 2, "base_chunk": 0}, 3)
    assert catalog.ingest_record("d") == {"op": "overwrite", "generation": "2",
                                          "base_chunk": "0"}  # as Redis holds it: text
    catalog.claim("d", 4)
    with pytest.raises(LockLostError):  # a writer whose lock was taken over records nothing
        catalog.record_ingest("d", {"op": "append", "generation": 2}, 3)
    assert catalog.ingest_record("d")["op"] == "overwrite"
    catalog.commit(meta(), chunks(), 4)
    catalog.begin_drop("d", 4)
    catalog.end_drop("d", 4)  # a dropped dataset leaves no ingest behind
    assert catalog.ingest_record("d") is None


def test_a_catalog_from_before_ingests_were_recorded_gets_their_table(tmp_path):
    import sqlite3

    path = tmp_path / "old.db"
    Catalog(path).claim("d", 1)
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE ingests")
        db.execute(f"PRAGMA user_version={catalog_mod._MIGRATIONS.index(catalog_mod._INGESTS)}")
    again = Catalog(path)
    assert again.ingest_record("d") is None
    again.record_ingest("d", {"op": "create", "generation": 1}, 1)
    assert again.ingest_record("d") == {"op": "create", "generation": "1"}


# -- the schema and its migrations --------------------------------------------------------------

def test_opening_again_migrates_nothing(location, catalog):
    catalog.claim("d", 1)
    catalog.commit(meta(), chunks(), 1)
    again = Catalog(location)
    assert again.get("d") == meta()
    with again._transaction() as db:
        assert again.db.schema_version(db) == len(catalog_mod._MIGRATIONS)


def test_a_migration_is_appended_to_the_list(location, catalog, monkeypatch):
    """A later change (a table, a per-dialect statement, a data fill) is one more entry."""
    catalog.claim("d", 1)
    catalog.commit(meta(), chunks(), 1)
    filled: list[str] = []

    def fill(db) -> None:
        db.execute("INSERT INTO notes (dataset, note) SELECT id, 'seen' FROM datasets")
        filled.append("once")

    monkeypatch.setattr(catalog_mod, "_MIGRATIONS", (*catalog_mod._MIGRATIONS, Migration(
        "CREATE TABLE IF NOT EXISTS notes (dataset TEXT PRIMARY KEY, note TEXT NOT NULL)",
        then=fill), Migration({"sqlite": "CREATE INDEX IF NOT EXISTS by_note ON notes (note)",
                               "postgresql": "CREATE INDEX IF NOT EXISTS by_note ON notes "
                                             "USING hash (note)"})))
    migrated = Catalog(location)
    Catalog(location)  # migrated once
    assert filled == ["once"]
    with migrated._connect() as db:
        assert db.execute("SELECT dataset, note FROM notes").fetchall() == [("d", "seen")]
    with migrated._transaction() as db:
        assert migrated.db.schema_version(db) == len(catalog_mod._MIGRATIONS)


def test_a_failed_migration_changes_nothing(location, catalog, monkeypatch):
    old = catalog_mod._MIGRATIONS
    monkeypatch.setattr(catalog_mod, "_MIGRATIONS", (
        *old, "CREATE TABLE partial (a TEXT); CREATE TABLE broken (a NOSUCHSYNTAX("))
    with pytest.raises(BackendUnavailableError, match="cannot"):
        Catalog(location)
    monkeypatch.setattr(catalog_mod, "_MIGRATIONS", (*old, "CREATE TABLE partial (a TEXT)"))
    fixed = Catalog(location)  # the first statement was rolled back with the second
    with fixed._transaction() as db:
        assert fixed.db.schema_version(db) == len(old) + 1


# -- two processes at once ----------------------------------------------------------------------

WRITER = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {tests!r})
    from chunkframe.core.errors import LockLostError
    from chunkframe.storage.catalog import Catalog
    from test_catalog import chunks, meta

    catalog, me = Catalog({location!r}), int(sys.argv[1])
    print("ready", flush=True)
    sys.stdin.readline()  # both begin together
    generations, claimed = [], []
    for i in range({n}):
        generations += [catalog.reserve_generation("shared") for _ in range(5)]
        catalog.claim(f"own{{me}}", 1)
        catalog.commit(meta(f"own{{me}}", version=i + 1), chunks(), 1)
        token = 2 * i + me  # the two processes' tokens interleave
        try:
            catalog.claim("race", token)
            claimed.append(token)
        except LockLostError:
            pass
    print(json.dumps({{"generations": generations, "claimed": claimed}}))
""")


def test_two_processes_committing_at_once_lose_nothing(location, catalog, tmp_path):
    n = 40
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(tests=str(Path(__file__).parent), location=location, n=n))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    procs = [subprocess.Popen([sys.executable, str(script), str(me)], env=env, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for me in (0, 1)]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline() == "ready\n", p.stderr
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.close()
    results = []
    for p in procs:
        assert p.stdout is not None and p.stderr is not None
        out, err = p.stdout.read(), p.stderr.read()
        assert p.wait(timeout=120) == 0, err
        results.append(json.loads(out))
    generations = sorted(g for r in results for g in r["generations"])
    assert generations == list(range(1, 10 * n + 1))  # no number handed out twice
    for me in (0, 1):
        assert catalog.versions(f"own{me}")["version"].tolist() == list(range(1, n + 1))
        assert catalog.get(f"own{me}").version == n
    claimed = [t for r in results for t in r["claimed"]]
    assert catalog.fence("race") == max(claimed) == 2 * n - 1
