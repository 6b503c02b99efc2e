"""Recorded sources: what each ingest read, resuming an interrupted ingest from it (the
recoverer) and rewriting a damaged chunk from it (``ds.verify(repair=True)``)."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from crash_worker import kill_at
from frames import all_dtypes, sensors

import chunkframe as cf
from chunkframe.frontends.cli import main
from chunkframe.ingestion.provenance import (
    EDGE_BYTES,
    FULL_HASH_BYTES,
    SourceRecord,
    fingerprint_file,
    why_not_readable,
)
from chunkframe.storage.catalog import Catalog

CHUNK = 2_000


def csv_files(tmp_path: Path, parts: int = 2, rows: int = 10_000) -> tuple[str, pd.DataFrame]:
    """``parts`` CSV files of sensor readings under ``tmp_path/src``; their glob and the
    frame they hold together."""
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    frames = []
    for i in range(parts):
        df = sensors(rows, seed=i + 1)
        df.to_csv(src / f"part{i}.csv", index=False)
        frames.append(df)
    return str(src / "part*.csv"), pd.concat(frames, ignore_index=True)


def read_back(ds) -> pd.DataFrame:
    """The dataset as pandas, types made comparable with a ``pd.read_csv`` of its files."""
    got = ds.to_pandas()
    got["time"] = got["time"].astype("datetime64[ns, UTC]")
    return got.astype({c: "object" for c in got.columns if got[c].dtype.kind in "OUT"})


def expected_csv(glob: str) -> pd.DataFrame:
    files = sorted(Path(glob).parent.glob(Path(glob).name))
    df = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    df["time"] = pd.to_datetime(df["time"], utc=True).astype("datetime64[ns, UTC]")
    return df.astype({c: "object" for c in df.columns if df[c].dtype.kind in "OUT"})


def flip_byte(tmp_path: Path, client, dataset_id: str, chunk: int) -> tuple[str, bytes]:
    """Damage one byte of a chunk file; returns its key and its damaged bytes."""
    snap = client.reader.snapshot(dataset_id, refresh=True)
    key = snap.chunks[chunk].key
    path = tmp_path / "store" / key
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x5A
    path.write_bytes(bytes(data))
    return key, bytes(data)


def table_of(client, dataset_id: str) -> list[tuple]:
    """Chunk number, first sn, rows and checksum of every chunk (keys carry fences)."""
    meta = client.catalog.get(dataset_id)
    return [(c.chunk, c.start, c.rows, c.checksum)
            for c in client.catalog.chunks(dataset_id, meta.generation)]


# -- what is recorded --------------------------------------------------------------------
def test_an_ingest_of_files_records_them_their_rows_and_options(client, tmp_path):
    glob, df = csv_files(tmp_path)
    client.ingest(glob, "files", chunk_rows=CHUNK, time_column="time", progress=False)
    [text] = client.catalog.sources("files", 1)
    record = SourceRecord.from_json(text)
    assert record.kind == "files" and record.op == "create"
    assert [f.shown for f in record.files] == [str(tmp_path / "src" / f"part{i}.csv")
                                               for i in range(2)]
    assert [f.rows for f in record.files] == [(0, 10_000), (10_000, 20_000)]
    assert {f.method for f in record.files} == {"sha256"}  # small files: the whole content
    assert (record.base_chunk, record.chunks, record.conform_to) == (0, 10, None)
    assert record.options["chunk_rows"] == CHUNK and record.options["time_column"] == "time"
    assert record.options["columns"] == list(df.columns)
    assert why_not_readable(record, {}) is None


def test_an_append_records_its_own_file_and_rows(client, tmp_path):
    glob, _ = csv_files(tmp_path)
    client.ingest(str(tmp_path / "src" / "part0.csv"), "grow", chunk_rows=3_000, progress=False)
    client.ingest(str(tmp_path / "src" / "part1.csv"), "grow", mode="append", progress=False)
    newest, first = (SourceRecord.from_json(t) for t in client.catalog.sources("grow", 1))
    assert first.files[0].rows == (0, 10_000) and (first.base_chunk, first.chunks) == (0, 4)
    assert newest.op == "append" and newest.files[0].rows == (10_000, 20_000)
    assert (newest.base_chunk, newest.base_rows, newest.chunks) == (4, 10_000, 4)
    assert newest.conform_to is not None  # appended chunks are cast to the dataset's types


def test_a_dataframe_source_is_recorded_as_such(client):
    client.ingest(sensors(3_000), "frame", chunk_rows=1_000, progress=False)
    record = SourceRecord.from_json(client.catalog.sources("frame", 1)[0])
    assert record.kind == "DataFrame" and record.files == ()
    assert why_not_readable(record, {}) == "source was a DataFrame (not re-readable)"


def test_large_files_are_fingerprinted_by_size_time_and_their_ends(tmp_path):
    import fsspec

    path = tmp_path / "big.csv"
    body = b"x\n" + b"1\n" * ((FULL_HASH_BYTES + 3 * EDGE_BYTES) // 2)
    path.write_bytes(body)
    fs = fsspec.filesystem("file")
    before = fingerprint_file(fs, str(path))
    assert before.method == "sha256-ends" and before.size == len(body)
    record = SourceRecord("files", (before,))
    stat = path.stat()
    middle = bytearray(body)
    middle[len(body) // 2] = ord("2")  # same size, ends and time: not seen (documented)
    path.write_bytes(bytes(middle))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert why_not_readable(record, {}) is None
    tail = bytearray(middle)
    tail[-2] = ord("3")
    path.write_bytes(bytes(tail))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert "its content hash differs" in why_not_readable(record, {})
    path.write_bytes(bytes(tail) + b"4\n")
    assert f"(size {len(body)} → {len(body) + 2})" in why_not_readable(record, {})
    path.unlink()
    assert why_not_readable(record, {}) == f"source {path} is gone (no such file now)"


def test_a_check_hashes_each_file_once_and_no_file_whose_size_changed(tmp_path, monkeypatch):
    import fsspec
    from fsspec.implementations.local import LocalFileSystem

    path = tmp_path / "small.csv"
    path.write_bytes(b"x\n1\n2\n")
    record = SourceRecord("files", (fingerprint_file(fsspec.filesystem("file"), str(path)),))
    opened: list[str] = []
    real_open = LocalFileSystem._open
    monkeypatch.setattr(LocalFileSystem, "_open",
                        lambda self, p, *a, **k: opened.append(p) or real_open(self, p, *a, **k))
    seen: dict = {}
    assert why_not_readable(record, {}, seen=seen) is None
    assert why_not_readable(record, {}, seen=seen) is None and len(opened) == 1  # hashed once
    stat = path.stat()
    path.write_bytes(b"x\n1\n3\n")  # same size and time, other content
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert why_not_readable(record, {}, seen=seen) is None  # as hashed earlier in this check
    assert "its content hash differs" in why_not_readable(record, {})  # a new check reads it
    opened.clear()
    path.write_bytes(b"x\n1\n2\n3\n")
    assert "(size 6 → 8)" in why_not_readable(record, {}) and opened == []  # not read


def test_an_unreadable_record_is_a_source_error():
    with pytest.raises(cf.SourceError, match="the recorded source is unreadable"):
        SourceRecord.from_json("{not json")


def test_a_catalog_from_before_sources_gets_their_table(tmp_path):
    path = tmp_path / "old.db"
    Catalog(path)
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE sources")
        db.execute("PRAGMA user_version=3")
    assert Catalog(path).sources("x", 1) == []


# -- resume by the recoverer -------------------------------------------------------------
def _kill_mid_ingest(tmp_path: Path, redis_url: str, prefix: str, args: list[str],
                     pause: str = "ckpt-done:4") -> None:
    env = dict(os.environ, CF_REDIS=redis_url, CF_PREFIX=prefix,
               CF_STORE=str(tmp_path / "store"), CF_CATALOG=str(tmp_path / "catalog.db"),
               CF_HOME=str(tmp_path), CF_ROWS="20000", CF_CHUNK_ROWS=str(CHUNK),
               CF_LOCK_TTL="30", CF_WORKERS="1")
    kill_at(args, env, pause)


def _uninterrupted(tmp_path: Path, redis_url: str, prefix: str, source: str) -> list[tuple]:
    """The chunk table of the same ingest run once, untouched, on a store of its own."""
    other = cf.connect(store=tmp_path / "store2", redis=redis_url,
                       catalog=tmp_path / "catalog2.db", home=tmp_path, prefix=prefix + "u")
    other.ingest(source, "crashy", chunk_rows=CHUNK, progress=False)
    return table_of(other, "crashy")


@pytest.mark.slow
def test_a_killed_csv_ingest_is_resumed_from_its_files(client, tmp_path, redis_server, prefix):
    glob, _ = csv_files(tmp_path)
    _kill_mid_ingest(tmp_path, redis_server.url, prefix, ["ingest-files", "crashy", glob])
    status = client.state.ingest_status("crashy")
    assert SourceRecord.from_json(status["source"]).kind == "files"  # in the checkpoint
    report = client.recover()
    assert report["problem"].tolist() == ["interrupted"]
    assert report["action"][0].startswith("resume it from its recorded source ")
    assert "part0.csv" in report["action"][0]
    applied = client.recover(apply=True)
    assert applied["applied"].tolist() == [True], applied.to_dict("records")
    assert client.recover().empty
    ds = client.open("crashy")
    assert len(ds) == 20_000 and ds.verify(progress=False).empty
    assert [v for v in ds.versions()["kind"]] == ["ingest"]
    expected = _uninterrupted(tmp_path, redis_server.url, prefix, glob)
    assert table_of(client, "crashy") == expected  # same sns, chunks and checksums
    pd.testing.assert_frame_equal(read_back(ds), expected_csv(glob))
    assert not ds.last().empty  # the commit hooks ran (last values)


def test_the_catalog_records_an_ingest_of_files_as_it_begins_not_one_of_a_frame(client,
                                                                                tmp_path):
    glob, _ = csv_files(tmp_path)
    client.ingest(glob, "f", chunk_rows=CHUNK, progress=False)
    record = client.catalog.ingest_record("f")
    assert record is not None and record["op"] == "create" and record["generation"] == "1"
    assert "part0.csv" in record["source"] and record["chunk_rows"] == str(CHUNK)
    ds = client.ingest(pd.DataFrame({"a": [1, 2]}), "frame", progress=False)
    ds.append(pd.DataFrame({"a": [3]}))  # not re-readable: no catalog write for it
    assert client.catalog.ingest_record("frame") is None

def _lose_redis(client: cf.Client) -> None:
    """Every key of the client's prefix gone, as after a FLUSHALL of a Redis without
    persistence (the server is the suite's: only this test's keys go)."""
    keys = list(client.redis.scan_iter(match=f"{client.settings.prefix}:*"))
    if keys:
        client.redis.delete(*keys)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["create", "append"])
def test_a_killed_ingest_is_resumed_after_redis_lost_its_keys(client, tmp_path, redis_server,
                                                               prefix, mode):
    """Its checkpoint lived in Redis; the catalog records the ingest when it begins, so the
    recoverer still names it interrupted (not orphan files) and resumes it from its source."""
    glob, _ = csv_files(tmp_path)
    if mode == "append":  # the dataset's committed rows are the first part
        client.ingest(str(tmp_path / "src" / "part0.csv"), "crashy", chunk_rows=CHUNK,
                      progress=False)
        before = table_of(client, "crashy")
    args = (["ingest-files", "crashy", str(tmp_path / "src" / "part1.csv"), "append"]
            if mode == "append" else ["ingest-files", "crashy", glob])
    _kill_mid_ingest(tmp_path, redis_server.url, prefix, args)
    _lose_redis(client)
    report = client.recover()
    assert "orphan_files" not in report["problem"].tolist(), report.to_dict("records")
    interrupted = report[report["problem"] == "interrupted"]
    assert len(interrupted) == 1, report.to_dict("records")
    assert interrupted["action"].iloc[0].startswith("resume it from its recorded source ")
    assert "Redis lost its status" in interrupted["detail"].iloc[0]
    applied = client.recover(apply=True)
    assert applied["applied"].all(), applied.to_dict("records")
    assert client.recover().empty
    client.reader.clear()
    ds = client.open("crashy")
    pd.testing.assert_frame_equal(read_back(ds), expected_csv(glob))
    assert ds.verify(progress=False).empty
    if mode == "append":
        assert table_of(client, "crashy")[:len(before)] == before  # committed rows untouched
    else:
        assert table_of(client, "crashy") == _uninterrupted(tmp_path, redis_server.url,
                                                            prefix, glob)

@pytest.mark.slow
def test_a_killed_ingest_whose_file_changed_is_abandoned_saying_why(client, tmp_path,
                                                                    redis_server, prefix):
    glob, _ = csv_files(tmp_path)
    _kill_mid_ingest(tmp_path, redis_server.url, prefix, ["ingest-files", "crashy", glob])
    part1 = tmp_path / "src" / "part1.csv"
    size = part1.stat().st_size
    with part1.open("a") as f:
        f.write("2024-01-01 00:00:00,dev-x,1.0,1,x\n")
    report = client.recover()
    assert report["action"][0].startswith("abandon")
    assert (f"source {part1} changed since the ingest began (size {size} → "
            f"{part1.stat().st_size})") in report["detail"][0]
    applied = client.recover(apply=True)
    assert applied["applied"].tolist() == [True]
    assert client.recover().empty
    assert not list((tmp_path / "store").rglob("*.arrow"))
    assert not client.state.ingest_status("crashy")


@pytest.mark.slow
def test_a_killed_dataframe_ingest_is_abandoned_saying_why(client, tmp_path, redis_server,
                                                           prefix):
    _kill_mid_ingest(tmp_path, redis_server.url, prefix, ["ingest", "crashy"])
    report = client.recover()
    assert report["action"][0].startswith("abandon")
    assert "source was a DataFrame (not re-readable)" in report["detail"][0]
    assert client.recover(apply=True)["applied"].all()
    assert client.recover().empty


# -- repair ------------------------------------------------------------------------------
def test_repair_of_a_flipped_byte_in_a_chunk_from_csv(client, tmp_path):
    glob, _ = csv_files(tmp_path)
    ds = client.ingest(glob, "csv", chunk_rows=CHUNK, progress=False)
    before = table_of(client, "csv")
    old_key, _ = flip_byte(tmp_path, client, "csv", 3)
    assert ds.verify(progress=False)["chunk"].tolist() == [3]
    report = ds.verify(progress=False, repair=True)
    assert list(report.columns) == ["chunk", "problem", "action", "repaired", "detail"]
    assert report["chunk"].tolist() == [3] and report["repaired"].tolist() == [True]
    assert "checksum mismatch" in report["problem"][0]
    assert "checksum equals the recorded one" in report["detail"][0]
    assert table_of(client, "csv") == before  # the same chunk, rebuilt exactly
    new = client.catalog.chunks("csv", 1)[3]
    assert new.key != old_key and not (tmp_path / "store" / old_key).exists()
    assert client.state.chunk_metas("csv", 1)[3] == new  # Redis points at it too
    assert ds.verify(progress=False).empty
    pd.testing.assert_frame_equal(read_back(client.open("csv")), expected_csv(glob))
    assert ds.verify(progress=False, repair=True).empty  # nothing left to repair


def test_repair_of_a_chunk_from_parquet_with_every_dtype(client, tmp_path):
    df = all_dtypes(5_000)
    df.to_parquet(tmp_path / "all.parquet")
    ds = client.ingest(str(tmp_path / "all.parquet"), "pq", chunk_rows=700,
                       compression="zstd", progress=False)
    before = table_of(client, "pq")
    flip_byte(tmp_path, client, "pq", 5)
    report = ds.verify(progress=False, repair=True)
    assert report["repaired"].tolist() == [True], report.to_dict("records")
    assert table_of(client, "pq") == before
    pd.testing.assert_frame_equal(client.open("pq").to_pandas(), df)


def test_repair_refuses_a_changed_source_and_leaves_the_data(client, tmp_path):
    glob, _ = csv_files(tmp_path)
    ds = client.ingest(glob, "csv", chunk_rows=CHUNK, progress=False)
    key, damaged = flip_byte(tmp_path, client, "csv", 7)
    part1 = tmp_path / "src" / "part1.csv"
    size = part1.stat().st_size
    part1.write_text(part1.read_text().replace("\n", "\r\n", 1))
    before = table_of(client, "csv")
    report = ds.verify(progress=False, repair=True)
    assert report["repaired"].tolist() == [False] and report["action"][0] == "none"
    assert (f"source {part1} changed since it was ingested (size {size} → {size + 1})"
            in report["detail"][0])
    assert (tmp_path / "store" / key).read_bytes() == damaged  # untouched
    assert table_of(client, "csv") == before
    assert ds.verify(progress=False)["chunk"].tolist() == [7]


def edit_middle_value(path: Path, row: int) -> None:
    """Change the last digit of column ``x`` on data row ``row`` of CSV ``path``, keeping
    its size and modification time (as ``rsync -t`` or ``touch -r`` would)."""
    stat = path.stat()
    lines = path.read_text().split("\n")
    fields = lines[row + 1].split(",")
    fields[2] = fields[2][:-1] + ("1" if fields[2][-1] != "1" else "2")
    lines[row + 1] = ",".join(fields)
    path.write_text("\n".join(lines))
    assert path.stat().st_size == stat.st_size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_repair_refuses_a_differing_checksum_from_a_file_not_hashed_whole(client, tmp_path,
                                                                          monkeypatch):
    from chunkframe.ingestion import provenance

    monkeypatch.setattr(provenance, "FULL_HASH_BYTES", 1_000)  # part0.csv: size, time, ends
    glob, _ = csv_files(tmp_path)
    ds = client.ingest(glob, "csv", chunk_rows=CHUNK, progress=False)
    part0 = tmp_path / "src" / "part0.csv"
    record = SourceRecord.from_json(client.catalog.sources("csv", 1)[0])
    assert {f.method for f in record.files} == {"sha256-ends"}
    edit_middle_value(part0, 7_000)  # chunk 3: same min/max, a different value
    assert why_not_readable(record, {}) is None  # the fingerprint cannot see it
    before = table_of(client, "csv")
    key, damaged = flip_byte(tmp_path, client, "csv", 3)
    report = ds.verify(progress=False, repair=True)
    assert report["repaired"].tolist() == [False], report.to_dict("records")
    assert report["detail"][0].startswith("unrepairable: the source cannot be proven unchanged")
    assert f"{part0} (too large to hash whole)" in report["detail"][0]
    assert (tmp_path / "store" / key).read_bytes() == damaged  # untouched
    assert table_of(client, "csv") == before
    assert sorted(client.backends.store.list("csv")) == sorted(
        c.key for c in client.catalog.chunks("csv", 1))  # the re-cut file was removed


def test_repair_accepts_other_bytes_of_the_same_rows_from_files_hashed_whole(client, tmp_path):
    glob, _ = csv_files(tmp_path)
    ds = client.ingest(glob, "csv", chunk_rows=CHUNK, compression="zstd", progress=False)
    with sqlite3.connect(tmp_path / "catalog.db") as db:  # re-cut with lz4: other bytes
        (text,) = db.execute("SELECT record FROM sources WHERE dataset='csv'").fetchone()
        record = json.loads(text)
        assert {f["method"] for f in record["files"]} == {"sha256"}
        record["options"]["compression"] = "lz4"
        db.execute("UPDATE sources SET record=? WHERE dataset='csv'", (json.dumps(record),))
    old = table_of(client, "csv")[3]
    flip_byte(tmp_path, client, "csv", 3)
    report = ds.verify(progress=False, repair=True)
    assert report["repaired"].tolist() == [True], report.to_dict("records")
    assert f"its bytes differ from the recorded checksum {old[3]}" in report["detail"][0]
    assert table_of(client, "csv")[3][:3] == old[:3] and ds.verify(progress=False).empty
    pd.testing.assert_frame_equal(read_back(client.open("csv")), expected_csv(glob))


def test_repair_of_a_chunk_the_catalog_lacks_says_to_recover(client, tmp_path):
    glob, _ = csv_files(tmp_path)
    ds = client.ingest(glob, "csv", chunk_rows=CHUNK, progress=False)
    with sqlite3.connect(tmp_path / "catalog.db") as db:  # Redis knows chunk 3, the catalog not
        db.execute("DELETE FROM chunks WHERE dataset='csv' AND chunk=3")
    key, damaged = flip_byte(tmp_path, client, "csv", 3)
    with pytest.raises(cf.StateCorruptionError, match=r"dataset 'csv' is inconsistent: chunk 3 "
                       r"of generation 1 is in Redis's chunk table but not in the catalog.*"
                       r"recover\(apply=True\)"):
        ds.verify(progress=False, repair=True)
    assert (tmp_path / "store" / key).read_bytes() == damaged
    assert sorted(client.backends.store.list("csv")) == sorted(
        c.key for c in client.state.chunk_metas("csv", 1).values())  # the re-cut file removed


def test_appended_chunks_are_repaired_from_the_appended_file(client, tmp_path):
    csv_files(tmp_path)
    part0, part1 = (tmp_path / "src" / f"part{i}.csv" for i in range(2))
    client.ingest(str(part0), "grow", chunk_rows=3_000, progress=False)
    ds = client.ingest(str(part1), "grow", mode="append", progress=False)
    part0.write_text(part0.read_text() + part0.read_text().splitlines()[1] + "\n")  # changed
    flip_byte(tmp_path, client, "grow", 1)  # from part0
    flip_byte(tmp_path, client, "grow", 5)  # rows 13,000-16,000: from part1
    report = ds.verify(progress=False, repair=True)
    assert report["chunk"].tolist() == [1, 5]
    assert report["repaired"].tolist() == [False, True], report.to_dict("records")
    assert "part0.csv changed since it was ingested" in report["detail"][0]
    assert "part1.csv" in report["action"][1]
    assert ds.verify(progress=False)["chunk"].tolist() == [1]
    got = client.open("grow").slice(12_000, 20_000)
    want = pd.read_csv(part1).iloc[2_000:].reset_index(drop=True)
    assert got["x"].tolist() == want["x"].tolist()


def test_a_dataframe_source_cannot_repair_and_says_so(client, tmp_path):
    ds = client.ingest(sensors(5_000), "frame", chunk_rows=1_000, progress=False)
    flip_byte(tmp_path, client, "frame", 2)
    report = ds.verify(progress=False, repair=True)
    assert report["repaired"].tolist() == [False]
    assert report["detail"][0] == "source was a DataFrame (not re-readable)"


def test_repair_under_a_live_lock_is_refused_and_changes_nothing(client, tmp_path):
    glob, _ = csv_files(tmp_path)
    ds = client.ingest(glob, "csv", chunk_rows=CHUNK, progress=False)
    key, damaged = flip_byte(tmp_path, client, "csv", 2)
    lock = client.lock("csv")  # another writer, alive
    try:
        with pytest.raises(cf.DatasetLockedError, match="cannot repair dataset 'csv': another "
                           "writer holds its lock"):
            ds.verify(progress=False, repair=True)
    finally:
        lock.release()
    assert (tmp_path / "store" / key).read_bytes() == damaged
    assert ds.verify(progress=False, repair=True)["repaired"].tolist() == [True]


def test_another_client_reads_the_repaired_chunk(client, tmp_path, redis_server, prefix):
    glob, _ = csv_files(tmp_path)
    ds = client.ingest(glob, "csv", chunk_rows=CHUNK, progress=False)
    reader = cf.connect(store=tmp_path / "store", redis=redis_server.url,
                        catalog=tmp_path / "catalog.db", home=tmp_path, prefix=prefix)
    theirs = reader.open("csv")
    assert theirs.get(4_500)["x"] == ds.get(4_500)["x"]  # their snapshot is cached
    flip_byte(tmp_path, client, "csv", 3)
    assert ds.verify(progress=False, repair=True)["repaired"].all()
    # the old key is gone: their reader finds the catalog's new one and retries
    assert theirs.get(6_400)["x"] == pd.read_csv(tmp_path / "src" / "part0.csv")["x"][6_400]


def test_verify_repair_argument_checks(client, tmp_path):
    ds = client.ingest(sensors(2_000), "frame", chunk_rows=1_000, progress=False)
    with pytest.raises(cf.InvalidArgumentError, match="repair must be True or False"):
        ds.verify(repair="yes")
    client.ingest(sensors(2_000), "frame", mode="append", progress=False)
    with pytest.raises(cf.ReadOnlyVersionError):
        client.open("frame", version=1).verify(repair=True)
    assert ds.verify(progress=False, repair=True).empty


def test_cli_verify_repair(client, tmp_path, capsys):
    glob, _ = csv_files(tmp_path)
    client.ingest(glob, "csv", chunk_rows=CHUNK, progress=False)
    flip_byte(tmp_path, client, "csv", 4)
    s = client.settings
    base = ["--store", str(tmp_path / "store"), "--redis", s.redis_url,
            "--catalog", str(tmp_path / "catalog.db"), "--home", str(tmp_path),
            "--prefix", s.prefix, "verify", "csv", "--json"]
    assert main(base) == 1
    capsys.readouterr()
    assert main([*base, "--repair"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] and [r["repaired"] for r in doc["repair"]] == [True]
    assert main(base) == 0
    flip_byte(tmp_path, client, "csv", 1)
    (tmp_path / "src" / "part0.csv").unlink()
    capsys.readouterr()
    assert main([*base, "--repair"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert not doc["ok"] and "is gone" in doc["repair"][0]["detail"]
    assert np.array_equal([r["chunk"] for r in doc["repair"]], [1])


def _s3_csv_dataset(s3_client, s3_bucket: str, s3_options: dict, name: str, dataset_id: str):
    """6,000 sensor rows as a CSV on S3, ingested into the S3 store; (fs, url, df, ds)."""
    import s3fs

    fs = s3fs.S3FileSystem(**s3_options)
    df = sensors(6_000)
    url = f"s3://{s3_bucket}/raw/{name}"
    with fs.open(url, "wb") as f:
        f.write(df.to_csv(index=False).encode())
    return fs, url, df, s3_client.ingest(url, dataset_id, chunk_rows=CHUNK, progress=False)


def test_repair_from_a_csv_on_s3_into_an_s3_store(s3_client, s3_bucket, s3_options):
    fs, url, df, ds = _s3_csv_dataset(s3_client, s3_bucket, s3_options, "readings.csv", "remote")
    record = SourceRecord.from_json(s3_client.catalog.sources("remote", 1)[0])
    assert [f.url for f in record.files] == [url] and record.files[0].rows == (0, 6_000)
    before = table_of(s3_client, "remote")
    key = s3_client.catalog.chunks("remote", 1)[1].key
    obj = f"s3://{s3_bucket}/chunks/{key}"
    data = bytearray(fs.cat(obj))
    data[len(data) // 2] ^= 0x5A
    fs.pipe(obj, bytes(data))
    report = ds.verify(progress=False, repair=True)
    assert report["repaired"].tolist() == [True], report.to_dict("records")
    assert table_of(s3_client, "remote") == before and not fs.exists(obj)
    assert ds.verify(progress=False).empty
    fs.pipe(url, df.iloc[:10].to_csv(index=False).encode())  # the source replaced
    fs.invalidate_cache()
    key = s3_client.catalog.chunks("remote", 1)[2].key
    fs.pipe(f"s3://{s3_bucket}/chunks/{key}", b"garbage")
    report = ds.verify(progress=False, repair=True)
    assert report["repaired"].tolist() == [False]
    assert f"source {url} changed since it was ingested (size" in report["detail"][0]


def test_a_chunk_without_a_recorded_source_is_reported(client, tmp_path):
    glob, _ = csv_files(tmp_path)
    ds = client.ingest(glob, "csv", chunk_rows=CHUNK, progress=False)
    with sqlite3.connect(tmp_path / "catalog.db") as db:  # as before sources were recorded
        db.execute("DELETE FROM sources")
    flip_byte(tmp_path, client, "csv", 0)
    report = ds.verify(progress=False, repair=True)
    assert report["repaired"].tolist() == [False]
    assert report["detail"][0].startswith("no source is recorded for it")


# -- lost chunk files re-cut by the recoverer and by a resume ------------------------------
def _lose(tmp_path: Path, client, dataset_id: str, chunks: list[int]) -> None:
    """Delete the files of ``chunks`` of the current version, as a store losing objects."""
    gen = client.catalog.get(dataset_id).generation
    for cm in client.catalog.chunks(dataset_id, gen):
        if cm.chunk in chunks:
            (tmp_path / "store" / cm.key).unlink()


def test_recover_apply_recuts_lost_chunk_files_from_an_unchanged_source(client, tmp_path):
    glob, _ = csv_files(tmp_path)
    client.ingest(glob, "lost", chunk_rows=CHUNK, progress=False)
    before = table_of(client, "lost")
    _lose(tmp_path, client, "lost", [1, 7])
    report = client.recover()  # no --verify needed: the store's listing shows them gone
    assert report["problem"].tolist() == ["missing_chunk"]
    assert report["action"][0].startswith("re-cut from the source (")
    assert "part0.csv" in report["action"][0] and "unchanged" in report["action"][0]
    assert "chunk 1 (" in report["detail"][0] and "chunk 7 (" in report["detail"][0]
    applied = client.recover(apply=True)
    assert applied["applied"].tolist() == [True], applied.to_dict("records")
    assert client.recover(verify=True).empty
    assert table_of(client, "lost") == before  # the same chunks, checksums included
    pd.testing.assert_frame_equal(read_back(client.open("lost")), expected_csv(glob))


def test_recover_refuses_to_recut_from_a_changed_source_and_says_why(client, tmp_path, capsys):
    glob, _ = csv_files(tmp_path)
    client.ingest(glob, "lost", chunk_rows=CHUNK, progress=False)
    _lose(tmp_path, client, "lost", [2])
    part = tmp_path / "src" / "part0.csv"
    part.write_text(part.read_text().replace(",", ";", 1))  # same size, other content
    report = client.recover(apply=True)
    assert report["problem"].tolist() == ["missing_chunk"]
    assert report["applied"].tolist() == [False]
    assert report["action"][0].startswith("none automatically: restore the chunk files")
    assert "cannot re-cut from the source: source" in report["detail"][0]
    assert "part0.csv changed since it was ingested" in report["detail"][0]
    s = client.settings
    args = ["--store", s.store_url, "--redis", s.redis_url, "--catalog", s.catalog,
            "--home", str(s.home), "--prefix", s.prefix, "recover", "--apply"]
    assert main(args) == 4  # found and left unfixed
    assert "missing_chunk" in capsys.readouterr().out


def test_recover_verify_recuts_a_damaged_chunk(client, tmp_path):
    glob, _ = csv_files(tmp_path)
    client.ingest(glob, "bad", chunk_rows=CHUNK, progress=False)
    before = table_of(client, "bad")
    flip_byte(tmp_path, client, "bad", 4)
    assert client.recover().empty  # bytes are read only with verify
    report = client.recover(apply=True, verify=True)
    assert report["problem"].tolist() == ["corrupt_chunk"]
    assert report["action"][0].startswith("re-cut from the source (")
    assert report["applied"].tolist() == [True], report.to_dict("records")
    assert table_of(client, "bad") == before
    assert client.recover(verify=True).empty


def test_a_resume_recuts_lost_chunk_files_of_a_finished_ingest(client, tmp_path):
    glob, _ = csv_files(tmp_path)
    client.ingest(glob, "done", chunk_rows=CHUNK, progress=False)
    before = table_of(client, "done")
    _lose(tmp_path, client, "done", [0, 9])
    ds = client.ingest(glob, "done", chunk_rows=CHUNK, mode="resume", progress=False)
    assert table_of(client, "done") == before
    assert ds.verify(progress=False).empty
    assert ds.versions()["kind"].tolist() == ["ingest"]  # no new version: the same one mended
    pd.testing.assert_frame_equal(read_back(ds), expected_csv(glob))


def test_a_resume_that_cannot_recut_says_which_chunk_and_why(client, tmp_path):
    df = sensors(6_000)
    client.ingest(df, "frame", chunk_rows=CHUNK, progress=False)
    _lose(tmp_path, client, "frame", [1])
    with pytest.raises(cf.SourceError, match=r"chunk 1: source was a DataFrame \(not re-readable\)") as err:
        client.ingest(df, "frame", chunk_rows=CHUNK, mode="resume", progress=False)
    assert "mode='overwrite'" in str(err.value)


@pytest.mark.slow
def test_a_killed_ingest_whose_checkpointed_files_were_lost_is_resumed(client, tmp_path,
                                                                       redis_server, prefix):
    glob, _ = csv_files(tmp_path)
    _kill_mid_ingest(tmp_path, redis_server.url, prefix, ["ingest-files", "crashy", glob])
    made = client.state.chunk_metas("crashy", 1)
    assert len(made) >= 4
    for cm in list(made.values())[:2]:  # the first two checkpointed chunks' files go
        (tmp_path / "store" / cm.key).unlink()
    ds = client.ingest(glob, "crashy", chunk_rows=CHUNK, mode="resume", progress=False)
    assert table_of(client, "crashy") == _uninterrupted(tmp_path, redis_server.url, prefix, glob)
    assert ds.verify(progress=False).empty
    pd.testing.assert_frame_equal(read_back(ds), expected_csv(glob))


def test_recover_apply_recuts_objects_an_s3_store_lost(s3_client, s3_bucket, s3_options):
    fs, _, _, ds = _s3_csv_dataset(s3_client, s3_bucket, s3_options, "lost.csv", "s3lost")
    before = table_of(s3_client, "s3lost")
    ds.to_pandas()  # read once: the local tier holds every chunk now
    for cm in s3_client.catalog.chunks("s3lost", 1)[:2]:
        fs.rm(f"s3://{s3_bucket}/chunks/{cm.key}")
    report = s3_client.recover(apply=True)
    assert report["problem"].tolist() == ["missing_chunk"]
    assert report["applied"].tolist() == [True], report.to_dict("records")
    assert table_of(s3_client, "s3lost") == before
    assert all(fs.exists(f"s3://{s3_bucket}/chunks/{cm.key}")
               for cm in s3_client.catalog.chunks("s3lost", 1))
    assert s3_client.recover(verify=True).empty
