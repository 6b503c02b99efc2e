"""Ingest: modes, every kind of source, deterministic chunks, bounded memory, and bad input
that fails clearly and leaves nothing behind — against real Redis, SQLite, files and moto S3."""

from __future__ import annotations

import gzip
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.feather
import pyarrow.ipc
import pytest
from clock import fake_clock

import chunkframe as cf
from chunkframe.core.devices import device_key
from chunkframe.core.errors import (
    BackendUnavailableError,
    ChunkFrameError,
    DatasetExistsError,
    DatasetNotFoundError,
    InvalidArgumentError,
    InvalidDatasetIdError,
    SchemaMismatchError,
    SourceError,
)
from chunkframe.core.keys import RedisKeys
from chunkframe.ingestion.pipeline import time_stats
from chunkframe.read import reader as reader_mod
from chunkframe.read.reader import STALENESS_SECONDS


def sample(n: int = 1000, start: int = 0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    idx = np.arange(start, start + n)
    return pd.DataFrame({
        "id": idx.astype(np.int64),
        "time": pd.Timestamp("2024-01-01") + pd.to_timedelta(idx, unit="s"),
        "device": pd.Categorical.from_codes(idx % 3, categories=["a", "b", "c"]),
        "value": rng.normal(size=n),
        "note": pd.array([None if i % 10 == 0 else f"n{i}" for i in idx], dtype="str"),
    })


@pytest.fixture
def make_client(tmp_path, redis_server, prefix) -> Callable[..., cf.Client]:
    """Another client on the same store, catalog, Redis and prefix (another process, in effect)."""

    def make(**options) -> cf.Client:
        return cf.connect(store=tmp_path / "store", redis=redis_server.url,
                          catalog=tmp_path / "catalog.db", home=tmp_path, prefix=prefix,
                          **options)

    return make


def files_under(client: cf.Client, dataset_id: str = "") -> list[str]:
    """Every file of the local store under a dataset, temp files included, with the lock's
    fencing token taken out of chunk names (``c00000003-f7.arrow`` → ``c00000003.arrow``)."""
    root = Path(client.store.root) / dataset_id
    return sorted(unfenced(str(p.relative_to(client.store.root)))
                  for p in root.rglob("*") if p.is_file())


def unfenced(key: str) -> str:
    return re.sub(r"-f\d+\.arrow$", ".arrow", key)


def redis_keys(client: cf.Client, pattern: str = "*") -> list[str]:
    return sorted(k.decode() for k in client.redis.scan_iter(
        match=f"{client.settings.prefix}:{pattern}"))


def assert_nothing_left(client: cf.Client, dataset_id: str | None = None) -> None:
    """No catalog row, no chunk file (nor temp file), no Redis key of the client's prefix."""
    assert client.datasets().empty
    if dataset_id is not None:
        assert client.catalog.get(dataset_id) is None
    assert files_under(client) == []
    assert redis_keys(client) == []


def chunk_contents(ds: cf.Dataset) -> list[tuple[int, int, pd.DataFrame]]:
    """Each chunk's first sn, row count and rows: what a chunk is, whatever its bytes."""
    return [(int(c.index[0]), len(c), c) for c in ds.iter_chunks()]


def assert_same_chunks(a: cf.Dataset, b: cf.Dataset) -> None:
    left, right = chunk_contents(a), chunk_contents(b)
    assert [x[:2] for x in left] == [x[:2] for x in right]
    for (_, _, x), (_, _, y) in zip(left, right, strict=True):
        pd.testing.assert_frame_equal(x, y)


# ================================================================ modes


def test_create_refuses_an_existing_dataset(client):
    ds = client.ingest(sample(300), "taken", chunk_rows=100, progress=False)
    version = ds.meta.version
    with pytest.raises(DatasetExistsError, match="'taken' already exists.*mode='overwrite'"):
        client.ingest(sample(50, seed=1), "taken", progress=False)
    ds = client.open("taken")
    assert ds.meta.version == version
    pd.testing.assert_frame_equal(ds.to_pandas(), sample(300))
    assert redis_keys(client, "{taken}:ingest") == []


def test_overwrite_replaces_only_once_the_new_generation_is_complete(client, make_client,
                                                                    monkeypatch):
    old_df, new_df = sample(1000), sample(1500, seed=9)
    ds = client.ingest(old_df, "ow", chunk_rows=100, progress=False)
    g1 = ds.meta.generation
    old_files = files_under(client, "ow")
    assert old_files == sorted(f"ow/g{g1:06d}/c{i:08d}.arrow" for i in range(10))
    reached, proceed = threading.Event(), threading.Event()

    def new_frames():
        for i in range(15):
            yield new_df.iloc[i * 100:(i + 1) * 100]
            if i == 7:
                reached.set()
                assert proceed.wait(30)

    result: dict[str, object] = {}

    def run():
        try:
            result["ds"] = make_client().ingest(new_frames(), "ow", chunk_rows=100,
                                                mode="overwrite", progress=False)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            result["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    try:
        assert reached.wait(30)
        # half-way: the new generation is being written next to the old one ...
        during = files_under(client, "ow")
        assert set(old_files) <= set(during)
        assert any(f"/g{g1:06d}/" not in f for f in during)
        # ... and readers, old handles and new ones, still see the old dataset
        client.reader.clear()
        pd.testing.assert_frame_equal(ds.to_pandas(), old_df)
        reader = make_client()
        pd.testing.assert_frame_equal(reader.open("ow").to_pandas(), old_df)
        assert reader.datasets().set_index("id").loc["ow", "rows"] == 1000
    finally:
        proceed.set()
        t.join()
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    new = make_client().open("ow")  # this client may serve its snapshot for 0.5 s
    g2 = new.meta.generation
    assert g2 > g1
    pd.testing.assert_frame_equal(new.to_pandas(), new_df)
    # open handles re-check the version once their staleness window is over
    fake_clock(monkeypatch, reader_mod).advance(STALENESS_SECONDS)
    assert ds.meta.generation == g2
    pd.testing.assert_frame_equal(ds.to_pandas(), new_df)
    new_files = sorted(f"ow/g{g2:06d}/c{i:08d}.arrow" for i in range(15))
    # the replaced generation stays readable (version 1) until its version is pruned
    assert files_under(client, "ow") == sorted(old_files + new_files)
    keys = RedisKeys(client.settings.prefix, "ow")
    assert not client.redis.exists(keys.chunks(g1)) and not client.redis.exists(keys.ingest)
    assert len(client.catalog.chunks("ow", g1)) == 10
    assert len(client.catalog.chunks("ow", g2)) == 15
    pd.testing.assert_frame_equal(client.open("ow", version=1).to_pandas(), old_df)
    assert new.prune_versions()["version"].tolist() == [1]
    assert files_under(client, "ow") == new_files
    assert [c.chunk for c in client.catalog.chunks("ow", g1)] == []


def test_overwrite_of_a_missing_dataset_creates_it(client):
    ds = client.ingest(sample(10), "new-ow", mode="overwrite", progress=False)
    pd.testing.assert_frame_equal(ds.to_pandas(), sample(10))


def test_append_continues_serial_numbers(client):
    ds = client.ingest(sample(250), "app", chunk_rows=100, time_column="time",
                       device_column="device", progress=False)
    extra = sample(120, start=250, seed=3)
    ds.append(extra, progress=False)
    ds = client.open("app")
    assert len(ds) == 370
    assert ds.chunks["start"].tolist() == [0, 100, 200, 250, 350]
    assert ds.chunks["rows"].tolist() == [100, 100, 50, 100, 20]
    assert ds.get(250, "id") == 250
    pd.testing.assert_series_equal(ds.get(300), extra.iloc[50].rename(300))
    both = pd.concat([sample(250), extra], ignore_index=True)
    pd.testing.assert_frame_equal(ds.to_pandas(), both)
    assert (ds.meta.time_column, ds.meta.device_column) == ("time", "device")
    # columns in another order and a lossless int -> float change are conformed
    more = sample(30, start=370).astype({"value": "float32"})[
        ["note", "value", "device", "time", "id"]]
    ds.append(more, progress=False)
    out = client.open("app").to_pandas()
    assert len(out) == 400 and out["id"].tolist() == list(range(400))
    assert out["value"].dtype == np.float64


def test_append_with_a_mismatched_schema_is_refused_and_changes_nothing(client):
    ds = client.ingest(sample(250), "app-bad", chunk_rows=100, progress=False)
    before_files, before_meta = files_under(client, "app-bad"), ds.meta
    bad = sample(10).assign(value=["x"] * 10)
    with pytest.raises(SchemaMismatchError, match="column 'value'"):
        ds.append(bad, progress=False)
    with pytest.raises(SchemaMismatchError, match=r"missing \['note'\]"):
        ds.append(sample(10).drop(columns="note"), progress=False)
    ds = client.open("app-bad")
    assert ds.meta == before_meta
    assert files_under(client, "app-bad") == before_files
    assert redis_keys(client, "{app-bad}:ingest") == []
    pd.testing.assert_frame_equal(ds.to_pandas(), sample(250))


def test_append_mismatch_in_a_later_chunk_removes_the_chunks_it_wrote(client):
    ds = client.ingest(sample(250), "app-late", chunk_rows=100, progress=False)
    before = files_under(client, "app-late")
    frames = [sample(300, start=250), sample(10).assign(id=np.arange(10) + 0.5)]
    with pytest.raises(SchemaMismatchError, match="column 'id'"):
        ds.append(frames, progress=False)
    assert files_under(client, "app-late") == before
    assert len(client.open("app-late")) == 250
    ds.append(sample(20, start=250), progress=False)
    assert client.open("app-late").to_pandas()["id"].tolist() == list(range(270))


def test_append_to_a_missing_dataset(client):
    with pytest.raises(DatasetNotFoundError, match="'ghost'.*does not exist"):
        client.ingest(sample(10), "ghost", mode="append", progress=False)
    assert_nothing_left(client, "ghost")


def _interrupt_after(client: cf.Client, puts: int) -> Callable[[], None]:
    """Make the client's store fail after ``puts`` writes; returns the undo."""
    real = client.store.write
    count = [0]

    def write(key: str, fill: Callable[[pa.NativeFile], object]) -> tuple[str, int]:
        count[0] += 1
        if count[0] > puts:
            raise BackendUnavailableError("the store went away (simulated)")
        return real(key, fill)

    client.store.write = write
    return lambda: setattr(client.store, "write", real)


def _interrupted_ingest(client: cf.Client, df: pd.DataFrame, dataset_id: str, after: int) -> int:
    """Ingest ``df`` in 100-row chunks with the store failing after ``after`` chunks; returns
    the interrupted ingest's generation."""
    undo = _interrupt_after(client, after)
    with pytest.raises(BackendUnavailableError, match="simulated"):
        client.ingest(df, dataset_id, chunk_rows=100, workers=1, progress=False)
    undo()
    return int(client.state.ingest_status(dataset_id)["generation"])


def _count_puts(client: cf.Client) -> list[str]:
    written: list[str] = []
    real = client.store.write
    client.store.write = lambda key, fill: (written.append(key), real(key, fill))[1]
    return written


def test_resume_continues_the_same_source_and_refuses_another(client):
    df = sample(2000)
    gen = _interrupted_ingest(client, df, "res", after=7)
    keys = RedisKeys(client.settings.prefix, "res")
    status = client.state.ingest_status("res")
    assert client.redis.hlen(keys.chunks(gen)) == 7
    assert client.catalog.get("res") is None
    with pytest.raises(DatasetNotFoundError):
        client.open("res")
    # another source: refused, and the interrupted ingest is kept for the right one
    with pytest.raises(SourceError, match="fingerprint differs"):
        client.ingest(sample(2000, seed=5), "res", chunk_rows=100, mode="resume",
                      progress=False)
    assert client.state.ingest_status("res") == status
    written = _count_puts(client)
    ds = client.ingest(df, "res", chunk_rows=100, mode="resume", progress=False)
    assert len(written) == 13  # the 7 checkpointed chunks were not written again
    pd.testing.assert_frame_equal(ds.to_pandas(), df)
    assert ds.chunks["start"].tolist() == list(range(0, 2000, 100))
    assert files_under(client, "res") == sorted(f"res/g{gen:06d}/c{i:08d}.arrow"
                                                for i in range(20))
    assert redis_keys(client, "{res}:ingest") == []


def test_resume_refuses_a_damaged_checkpointed_chunk_and_recuts_a_gone_one(client):
    df = sample(1000)
    gen = _interrupted_ingest(client, df, "dmg", after=3)
    first = client.state.chunk_metas("dmg", gen)[0]
    path = Path(client.store.path(first.key))
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # one flipped bit in the checkpointed chunk
    with pytest.raises(SourceError, match="chunk 0 .* differs .* damaged.*mode='overwrite'"):
        client.ingest(df, "dmg", chunk_rows=100, mode="resume", progress=False)
    path.unlink()  # gone: cut again from the source, like the chunks never written
    ds = client.ingest(df, "dmg", chunk_rows=100, mode="resume", progress=False)
    pd.testing.assert_frame_equal(ds.to_pandas(), df)
    assert ds.verify(progress=False).empty


def test_resume_with_nothing_interrupted_acts_as_create(client):
    df = sample(500)
    ds = client.ingest(df, "res-new", chunk_rows=100, mode="resume", progress=False)
    pd.testing.assert_frame_equal(ds.to_pandas(), df)
    # once more with the same source: it is complete already, nothing is rewritten
    written = _count_puts(client)
    again = client.ingest(df, "res-new", chunk_rows=100, mode="resume", progress=False)
    assert written == [] and again.meta == ds.meta
    with pytest.raises(DatasetExistsError):
        client.ingest(sample(500, seed=2), "res-new", mode="resume", progress=False)


def test_create_after_an_interrupted_ingest_starts_clean(client):
    undo = _interrupt_after(client, 3)
    with pytest.raises(BackendUnavailableError):
        client.ingest(sample(1000), "restart", chunk_rows=100, workers=1, progress=False)
    undo()
    stale_gen = int(client.state.ingest_status("restart")["generation"])
    assert len(files_under(client, "restart")) == 3
    ds = client.ingest(sample(400, seed=4), "restart", chunk_rows=100, progress=False)
    assert ds.meta.generation != stale_gen
    pd.testing.assert_frame_equal(ds.to_pandas(), sample(400, seed=4))
    gen = ds.meta.generation
    assert files_under(client, "restart") == [f"restart/g{gen:06d}/c{i:08d}.arrow"
                                              for i in range(4)]
    assert not client.redis.exists(RedisKeys(client.settings.prefix, "restart").chunks(stale_gen))


def test_failure_before_any_checkpoint_leaves_nothing(client):
    undo = _interrupt_after(client, 0)
    with pytest.raises(BackendUnavailableError):
        client.ingest(sample(300), "nothing", chunk_rows=100, progress=False)
    undo()
    assert_nothing_left(client, "nothing")


# ================================================================ sources


def test_list_and_generator_of_frames(client):
    parts = [sample(130), sample(70, start=130), sample(300, start=200)]
    whole = pd.concat(parts, ignore_index=True)
    ds = client.ingest(parts, "listed", chunk_rows=128, progress=False)
    pd.testing.assert_frame_equal(ds.to_pandas(), whole)
    ds = client.ingest((p for p in parts), "generated", chunk_rows=128, progress=False)
    pd.testing.assert_frame_equal(ds.to_pandas(), whole)
    assert ds.chunks["rows"].tolist() == [128, 128, 128, 116]


def test_arrow_table_source(client):
    table = pa.Table.from_pandas(sample(300), preserve_index=False)
    ds = client.ingest(table, "tbl", chunk_rows=128, progress=False)
    pd.testing.assert_frame_equal(ds.to_pandas(), sample(300))


def test_chunk_boundaries_do_not_depend_on_input_batching(client):
    df = sample(2000)
    reference = client.ingest(df, "one", chunk_rows=128, progress=False)
    assert len(reference.chunks) == 16 and reference.chunks["checksum"].nunique() == 16
    cuts_a = [0, 1, 129, 130, 700, 1999, 2000]
    cuts_b = [0, 1000, 1001, 1500, 2000]
    split_a = [df.iloc[a:b] for a, b in zip(cuts_a, cuts_a[1:], strict=False)]
    split_b = (df.iloc[a:b] for a, b in zip(cuts_b, cuts_b[1:], strict=False))
    assert_same_chunks(client.ingest(split_a, "a", chunk_rows=128, progress=False), reference)
    assert_same_chunks(client.ingest(split_b, "b", chunk_rows=128, progress=False), reference)
    # another chunk size cuts other chunks
    other = client.ingest(df, "c", chunk_rows=100, progress=False)
    assert other.chunks["rows"].tolist() != reference.chunks["rows"].tolist()


def test_csv_source(client, tmp_path):
    df = pd.DataFrame({
        "i": np.arange(1000, dtype=np.int64),
        "f": np.where(np.arange(1000) % 7 == 0, np.nan, np.arange(1000) / 4),
        "s": pd.array([None if i % 5 == 0 else f"s{i}" for i in range(1000)], dtype="str"),
    })
    path = tmp_path / "data.csv"
    df.to_csv(path, index=False)
    ds = client.ingest(path, "csv", chunk_rows=300, progress=False)
    pd.testing.assert_frame_equal(ds.to_pandas(), df)
    assert ds.chunks["rows"].tolist() == [300, 300, 300, 100]
    gz = tmp_path / "data.csv.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    pd.testing.assert_frame_equal(
        client.ingest(str(gz), "csvgz", chunk_rows=300, progress=False).to_pandas(), df)


def test_parquet_and_arrow_file_sources(client, tmp_path):
    df = sample(1000)
    df.to_parquet(tmp_path / "d.parquet", row_group_size=300)
    pyarrow.feather.write_feather(df, tmp_path / "d.arrow", chunksize=333)
    table = pa.Table.from_pandas(df, preserve_index=False)
    with pa.OSFile(str(tmp_path / "d.arrows"), "wb") as sink, \
            pyarrow.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=250)
    for name in ("d.parquet", "d.arrow", "d.arrows"):
        ds = client.ingest(tmp_path / name, name.replace(".", "-"), chunk_rows=128,
                           progress=False)
        pd.testing.assert_frame_equal(ds.to_pandas(), df, obj=name)


def test_glob_and_directory_sources(client, tmp_path):
    d = tmp_path / "parts"
    d.mkdir()
    parts = [sample(200, start=i * 200, seed=i) for i in range(4)]
    for i, part in enumerate(parts):
        part.to_parquet(d / f"part-{i}.parquet")
    (d / "README.txt").write_text("not data")
    (d / "sub").mkdir()
    parts[0].iloc[:0].to_parquet(d / "sub" / "empty.parquet")  # an empty file adds no rows
    whole = pd.concat(parts, ignore_index=True)
    ds = client.ingest(str(d / "part-*.parquet"), "glob", chunk_rows=150, progress=False)
    pd.testing.assert_frame_equal(ds.to_pandas(), whole)
    ds = client.ingest(d, "dir", chunk_rows=150, progress=False)
    pd.testing.assert_frame_equal(ds.to_pandas(), whole)
    assert_same_chunks(ds, client.open("glob"))


def test_s3_sources_use_the_clients_storage_options(tmp_path, redis_server, prefix, s3_bucket,
                                                     s3_options):
    import s3fs

    fs = s3fs.S3FileSystem(**s3_options)
    parts = [sample(300, start=i * 300, seed=i) for i in range(3)]
    for i, part in enumerate(parts):
        with fs.open(f"{s3_bucket}/data/part-{i}.parquet", "wb") as f:
            part.to_parquet(f)
    with fs.open(f"{s3_bucket}/csv/one.csv", "wb") as f:
        f.write(parts[0][["id", "value"]].to_csv(index=False).encode())
    client = cf.connect(store=tmp_path / "store", redis=redis_server.url,
                        catalog=tmp_path / "catalog.db", home=tmp_path, prefix=prefix,
                        storage_options=s3_options)
    whole = pd.concat(parts, ignore_index=True)
    ds = client.ingest(f"s3://{s3_bucket}/data/*.parquet", "s3glob", chunk_rows=256,
                       progress=False)
    pd.testing.assert_frame_equal(ds.to_pandas(), whole)
    ds = client.ingest(f"s3://{s3_bucket}/data/", "s3dir", chunk_rows=256, progress=False)
    pd.testing.assert_frame_equal(ds.to_pandas(), whole)
    ds = client.ingest(f"s3://{s3_bucket}/csv/one.csv", "s3csv", chunk_rows=256, progress=False)
    pd.testing.assert_frame_equal(ds.to_pandas(), parts[0][["id", "value"]])
    with pytest.raises(SourceError, match="no files match"):
        client.ingest(f"s3://{s3_bucket}/nothing/*.parquet", "s3none", progress=False)


def test_s3_chunk_store(s3_client):
    ds = s3_client.ingest(sample(1000), "on-s3", chunk_rows=300, progress=False)
    assert [unfenced(k) for k in ds.chunks["key"]] == [f"on-s3/g000001/c{i:08d}.arrow"
                                                       for i in range(4)]
    assert list(s3_client.store.list("on-s3")) == ds.chunks["key"].tolist()
    s3_client.reader.clear()
    pd.testing.assert_frame_equal(ds.to_pandas(), sample(1000))
    ds2 = s3_client.ingest(sample(200, seed=1), "on-s3", chunk_rows=300, mode="overwrite",
                           progress=False)
    pd.testing.assert_frame_equal(ds2.to_pandas(), sample(200, seed=1))
    # version 1 stays readable on S3 until it is pruned
    pd.testing.assert_frame_equal(s3_client.open("on-s3", version=1).to_pandas(), sample(1000))
    ds2.prune_versions()
    assert [unfenced(k) for k in s3_client.store.list("on-s3")] == ["on-s3/g000002/c00000000.arrow"]


def test_progress_on_and_off(client, capsys):
    client.ingest(sample(500), "quiet", chunk_rows=100, progress=False)
    assert capsys.readouterr().err == ""
    client.ingest(sample(500), "loud", chunk_rows=100, progress=True)
    err = capsys.readouterr().err
    assert "ingest loud" in err and "rows" in err


def test_persister_keeps_at_most_max_pending_chunks_in_memory(client):
    """A fast source and a slow store: the splitter must wait for the persister."""
    workers, max_pending, n = 2, 3, 40
    lock = threading.Lock()
    counts = {"yielded": 0, "persisted": 0, "worst": 0}
    real = client.store.write

    def slow_write(key: str, fill: Callable[[pa.NativeFile], object]) -> tuple[str, int]:
        time.sleep(0.01)  # a slow object store
        out = real(key, fill)
        with lock:
            counts["persisted"] += 1
        return out

    client.store.write = slow_write

    def fast_source():
        for i in range(n):
            with lock:
                alive = counts["yielded"] - counts["persisted"]
                counts["worst"] = max(counts["worst"], alive)
                counts["yielded"] += 1
            yield sample(100, start=i * 100)

    ds = client.ingest(fast_source(), "bounded", chunk_rows=100, workers=workers,
                       max_pending=max_pending, progress=False)
    assert len(ds) == n * 100
    assert counts["worst"] <= max_pending + 1, counts
    assert counts["worst"] >= max_pending - 1, counts  # the bound was reached: back-pressure


# ================================================================ bad input


@pytest.mark.parametrize(("dataset_id", "message"), [
    ("../x", "'/'"), ("a/b", "'/'"), ("a\\b", "'\\\\\\\\'"), ("", "empty"), ("   ", "empty"),
    ("a\x00b", "control characters"), ("a\nb", "control characters"),
    ("a\x7fb", "control characters"), ("x" * 201, "201 bytes"),
    ("é" * 101, "202 bytes in UTF-8"), (".hidden", "starts with '.'"),
    ("..", "starts with '.'"), ("a{b}", "braces"), (" a", "spaces"), (42, "must be a string"),
])
def test_invalid_dataset_ids(client, dataset_id, message):
    with pytest.raises(InvalidDatasetIdError, match=message):
        client.ingest(sample(10), dataset_id, progress=False)
    assert_nothing_left(client)


def test_longest_valid_id_is_accepted(client):
    ds = client.ingest(sample(10), "x" * 200, progress=False)
    assert len(ds) == 10
    ds = client.ingest(sample(10), "é" * 100, progress=False)  # 200 bytes in UTF-8
    assert len(ds) == 10 and ds.get(3).equals(sample(10).iloc[3])


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"mode": "upsert"}, "mode='upsert' is not one of"),
    ({"mode": None}, "mode=None"),
    ({"chunk_rows": 0}, "chunk_rows must be an integer >= 1, got 0"),
    ({"chunk_rows": -5}, "got -5"),
    ({"chunk_rows": 1.5}, "got 1.5"),
    ({"chunk_rows": True}, "got True"),
    ({"chunk_rows": "100"}, "got '100'"),
    ({"workers": 0}, "workers"),
    ({"max_pending": 0}, "max_pending"),
])
def test_bad_arguments(client, kwargs, message):
    with pytest.raises(InvalidArgumentError, match=message) as info:
        client.ingest(sample(10), "args", progress=False, **kwargs)
    assert isinstance(info.value, ValueError)
    assert_nothing_left(client, "args")


def _object_frame() -> pd.DataFrame:
    return pd.DataFrame({"ok": np.arange(4), "bad": [1, "two", 3.0, None]})


class Opaque:
    pass


@pytest.mark.parametrize(("make_source", "error", "message"), [
    (lambda tmp: pd.DataFrame({"a": pd.Series([], dtype="int64")}), SourceError, "empty"),
    (lambda tmp: pd.DataFrame(), SourceError, "empty"),
    (lambda tmp: pd.DataFrame([[1, 2]], columns=["a", "a"]), SourceError,
     r"duplicate column names \['a'\]"),
    (lambda tmp: pd.DataFrame({0: [1], "b": [2]}), SourceError, r"non-string column names \[0\]"),
    (lambda tmp: _object_frame(), SourceError, "column 'bad'"),
    (lambda tmp: pd.DataFrame({"o": [Opaque(), Opaque()]}), SourceError, "column 'o'"),
    (lambda tmp: [sample(5), {"not": "a frame"}], SourceError, "item 1"),
    (lambda tmp: [sample(5), sample(5).rename(columns={"value": "v"})], SchemaMismatchError,
     "frame 1"),
    (lambda tmp: pd.Series([1, 2]), SourceError, "Series"),
    (lambda tmp: 42, SourceError, "cannot ingest a int"),
    (lambda tmp: tmp / "missing.csv", SourceError, "no files match"),
    (lambda tmp: str(tmp / "none-*.parquet"), SourceError, "no files match"),
    (lambda tmp: _write(tmp / "data.xlsx", b"x"), SourceError, "cannot tell the format"),
    (lambda tmp: _write(tmp / "empty.csv", b""), SourceError, r"empty\.csv' is empty"),
    (lambda tmp: _write(tmp / "header.csv", b"a,b\n"), SourceError, "no rows"),
    (lambda tmp: _write(tmp / "garbage.parquet", b"not parquet at all"), SourceError,
     r"garbage\.parquet' as Parquet"),
    (lambda tmp: _write(tmp / "garbage.arrow", b"not arrow at all"), SourceError,
     r"garbage\.arrow' as an Arrow IPC"),
    (lambda tmp: _write(tmp / "ragged.csv", b"a,b\n1,2\n3,4,5\n"), SourceError,
     r"ragged\.csv' as CSV.*Expected 2 columns.*as many fields as the header"),
    (lambda tmp: _write(tmp / "short.csv", b"a,b\n1,2\n3\n4,5\n"), SourceError,
     r"short\.csv' as CSV.*Expected 2 columns, got 1"),
    # issue 14: pyarrow read an unterminated quote as one last value running to the end
    (lambda tmp: _write(tmp / "open.csv", b'a,b\n1,"x\n2,y\n3,z\n'), SourceError,
     r"open\.csv' as CSV: a quoted field opened in row 1 \(the header is row 0\) is never "
     r"closed.*close the quote"),
    (lambda tmp: _write(tmp / "open-last.tsv", b'a\tb\n1\tx\n2\t5"\n3\t"7'), SourceError,
     r"open-last\.tsv' as CSV: a quoted field opened in row 3 "),
    (lambda tmp: _gzip(tmp / "open.csv.gz", b'a,b\n1,"x\ny"\n2,"z""\n'), SourceError,
     r"open\.csv\.gz' as CSV: a quoted field opened in row 2 "),
])
def test_bad_sources_fail_clearly_and_leave_nothing(client, tmp_path, make_source, error,
                                                    message):
    source = make_source(tmp_path)
    with pytest.raises(error, match=message):
        client.ingest(source, "bad", chunk_rows=2, progress=False)
    assert_nothing_left(client, "bad")
    # the lock was released and nothing stale is in the way
    assert len(client.ingest(sample(5), "bad", progress=False)) == 5


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _gzip(path: Path, data: bytes) -> Path:
    path.write_bytes(gzip.compress(data))
    return path


def test_csv_quotes_that_pandas_reads_are_accepted(client, tmp_path):
    """An odd number of quotes from literal quotes in unquoted fields (12") is no open quote;
    quoted fields with newlines, delimiters and doubled quotes read as pandas reads them."""
    path = _write(tmp_path / "inches.csv",
                  b'a,b\n1,12" pipe\n2,"x\ny, ""z"""\n3,"last"\n')
    ds = client.ingest(path, "inches", chunk_rows=2, progress=False)
    expected = pd.read_csv(path)
    assert ds.to_pandas()["b"].tolist() == expected["b"].tolist() == [
        '12" pipe', 'x\ny, "z"', "last"]


def test_object_column_message_names_the_column_and_the_fix(client):
    with pytest.raises(SourceError) as info:
        client.ingest(_object_frame(), "obj", progress=False)
    text = str(info.value)
    assert "column 'bad'" in text and "astype(str)" in text and "'ok'" not in text


@pytest.mark.parametrize(("column", "kwargs"), [
    ("time_column='nope'", {"time_column": "nope"}),
    ("device_column='nope'", {"device_column": "nope"}),
    ("time_column='note'", {"time_column": "note"}),  # strings are not times
    ("both 'time'", {"time_column": "time", "device_column": "time"}),
])
def test_bad_time_or_device_column(client, column, kwargs):
    with pytest.raises(SchemaMismatchError, match=column):
        client.ingest(sample(300), "cols", chunk_rows=100, progress=False, **kwargs)
    assert_nothing_left(client, "cols")


def test_time_column_is_detected_and_integer_time_allowed(client):
    assert client.ingest(sample(10), "auto", progress=False).meta.time_column == "time"
    ds = client.ingest(sample(10), "int-time", time_column="id", progress=False)
    assert ds.meta.time_column == "id"


def test_multi_file_drift_is_conformed_when_lossless(client, tmp_path):
    d = tmp_path / "drift"
    d.mkdir()
    pd.DataFrame({"x": [0.5, 1.5], "s": ["a", "b"]}).to_csv(d / "a.csv", index=False)
    pd.DataFrame({"x": [2, 3], "s": ["c", "d"]}).to_csv(d / "b.csv", index=False)  # int -> float
    pd.DataFrame({"s": ["e"], "x": [4.5]}).to_csv(d / "c.csv", index=False)  # column order
    ds = client.ingest(d, "drift", chunk_rows=2, progress=False)
    out = ds.to_pandas()
    assert out["x"].tolist() == [0.5, 1.5, 2.0, 3.0, 4.5]
    assert out["s"].tolist() == list("abcde")


@pytest.mark.parametrize(("second", "message"), [
    (pd.DataFrame({"x": [2.5, 3.5], "s": ["c", "d"]}), r"column 'x' of file .*b\.parquet"),
    (pd.DataFrame({"x": ["two", "three"], "s": ["c", "d"]}), r"column 'x' of file .*b\.parquet"),
    (pd.DataFrame({"x": [2, 3], "t": ["c", "d"]}), r"file .*b\.parquet.*unexpected \['t'\]"),
])
def test_multi_file_drift_that_would_lose_data_names_file_and_column(client, tmp_path, second,
                                                                      message):
    d = tmp_path / "drift"
    d.mkdir()
    pd.DataFrame({"x": np.arange(10), "s": list("abcdefghij")}).to_parquet(d / "a.parquet")
    second.to_parquet(d / "b.parquet")
    with pytest.raises(SchemaMismatchError, match=message):
        client.ingest(d, "drift", chunk_rows=2, workers=1, progress=False)
    assert_nothing_left(client, "drift")  # a.parquet's five chunks were removed again


def test_csv_whose_type_changes_inside_the_file(client, tmp_path):
    path = tmp_path / "late.csv"  # > 8 MiB: types are inferred from the first block only
    pad = "p" * 120
    lines = ["x,pad"] + [f"{i},{pad}" for i in range(70_000)] + [f"1.5,{pad}"]
    path.write_text("\n".join(lines) + "\n")
    assert path.stat().st_size > 8 * 2**20
    with pytest.raises(SchemaMismatchError, match=r"late\.csv"):
        client.ingest(path, "late", chunk_rows=50_000, progress=False)
    assert_nothing_left(client, "late")


def test_unwritable_store(tmp_path, redis_server, prefix):
    blocker = tmp_path / "file"
    blocker.write_text("in the way")
    with pytest.raises(BackendUnavailableError, match="chunk store"):
        cf.connect(store=blocker / "store", redis=redis_server.url,
                   catalog=tmp_path / "catalog.db", home=tmp_path, prefix=prefix)


def test_unreachable_store(tmp_path, redis_server, prefix):
    client = cf.connect(store="s3://nowhere/chunks", redis=redis_server.url,
                        catalog=tmp_path / "catalog.db", home=tmp_path, prefix=prefix,
                        storage_options={"endpoint_url": "http://127.0.0.1:1", "key": "k",
                                         "secret": "s", "config_kwargs": {
                                             "retries": {"max_attempts": 1},
                                             "connect_timeout": 1}})
    with pytest.raises(BackendUnavailableError, match="s3://nowhere/chunks") as info:
        client.ingest(sample(10), "unstored", progress=False)
    assert isinstance(info.value, ChunkFrameError)
    assert client.datasets().empty
    assert redis_keys(client) == []



def _s3_goes_away_after(client: cf.Client, puts: int) -> Callable[[], None]:
    """Point the client's S3 store at a port nobody listens on after ``puts`` writes (the
    real store code fails as on an outage); returns the undo."""
    import s3fs

    store, live, real = client.store, client.store.fs, client.store.write
    dead = s3fs.S3FileSystem(endpoint_url="http://127.0.0.1:1", key="k", secret="s",
                             skip_instance_cache=True, config_kwargs={
                                 "retries": {"max_attempts": 1}, "connect_timeout": 1})
    count = [0]

    def write(key: str, fill: Callable[[pa.NativeFile], object]) -> tuple[str, int]:
        count[0] += 1
        if count[0] > puts:
            store.fs = dead
        return real(key, fill)

    store.write = write

    def undo() -> None:
        store.fs, store.write = live, real

    return undo


def test_an_s3_outage_mid_ingest_says_to_resume(s3_client, s3_bucket):
    df = sample(1000)
    undo = _s3_goes_away_after(s3_client, 4)
    with pytest.raises(BackendUnavailableError) as info:
        s3_client.ingest(df, "s3r", chunk_rows=100, workers=1, progress=False)
    undo()
    message = str(info.value)
    assert "could not write chunk 's3r/" in message and s3_bucket in message
    assert "run the same ingest again with mode='resume'" in message, message
    from chunkframe.frontends.cli import _CliStyle, build_parser

    said = info.value.message(_CliStyle(build_parser(), None))
    assert "--mode resume" in said, said  # the command line says it in its own words
    ds = s3_client.ingest(df, "s3r", chunk_rows=100, mode="resume", progress=False)
    pd.testing.assert_frame_equal(ds.to_pandas(), df)


def test_an_s3_outage_before_any_chunk_says_to_run_the_ingest_again(s3_client):
    df = sample(300)
    undo = _s3_goes_away_after(s3_client, 0)
    with pytest.raises(BackendUnavailableError, match="this one left nothing") as info:
        s3_client.ingest(df, "s3n", chunk_rows=100, workers=1, progress=False)
    undo()
    assert "resume" not in str(info.value)  # nothing to resume: a resume would start afresh
    ds = s3_client.ingest(df, "s3n", chunk_rows=100, progress=False)
    pd.testing.assert_frame_equal(ds.to_pandas(), df)

def test_unwritable_catalog(tmp_path, redis_server, prefix):
    blocker = tmp_path / "file"
    blocker.write_text("in the way")
    with pytest.raises(BackendUnavailableError, match="catalog"):
        cf.connect(store=tmp_path / "store", redis=redis_server.url,
                   catalog=blocker / "catalog.db", home=tmp_path, prefix=prefix)


def test_types_come_from_the_whole_frame_not_its_first_block(client):
    n = (1 << 20) + 10  # the first conversion block is all missing in "note"
    df = pd.DataFrame({"i": np.arange(n), "note": [None] * (n - 3) + ["a", "b", "c"]})
    ds = client.ingest(df, "late_type", chunk_rows=1 << 18, progress=False)
    assert ds.schema.field("note").type in (pa.string(), pa.large_string())
    assert ds.slice(n - 3, n)["note"].tolist() == ["a", "b", "c"]
    assert pd.isna(ds.get(0, "note"))


def test_resume_refuses_an_unnamed_iterator_and_accepts_a_named_one(client):
    def gen(seed):
        for i in range(3):
            yield sample(100, seed=seed + i)

    def broken(seed):
        yield from list(gen(seed))[:2]
        raise RuntimeError("the producer died")

    client.ingest(gen(0), "it", chunk_rows=50, progress=False)
    with pytest.raises(DatasetExistsError):  # complete, and nothing says it is the same source
        client.ingest(gen(0), "it", chunk_rows=50, mode="resume", progress=False)
    with pytest.raises(RuntimeError):
        client.ingest(broken(0), "cut", chunk_rows=50, workers=1, progress=False)
    with pytest.raises(SourceError, match="fingerprint="):  # another iterator: cannot tell
        client.ingest(gen(7), "cut", chunk_rows=50, mode="resume", progress=False)
    first = client.ingest(gen(0), "named", chunk_rows=50, progress=False, fingerprint="batch-1")
    again = client.ingest(gen(0), "named", chunk_rows=50, progress=False, fingerprint="batch-1",
                          mode="resume")  # completed: the same dataset comes back
    assert again.meta.version == first.meta.version
    with pytest.raises(InvalidArgumentError):
        client.ingest(gen(0), "bad-fp", fingerprint="")


def test_resume_keeps_the_interrupted_ingest_compression(client, monkeypatch):
    df = sample(1_000)
    calls = {"n": 0}
    write = client.store.write

    def failing_write(key, fill):
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError("disk full")
        return write(key, fill)

    monkeypatch.setattr(client.store, "write", failing_write)
    with pytest.raises(OSError, match="disk full"):
        client.ingest(df, "zres", chunk_rows=100, compression="zstd", workers=1, progress=False)
    monkeypatch.setattr(client.store, "write", write)
    ds = client.ingest(df, "zres", chunk_rows=100, mode="resume", progress=False)  # no zstd given
    pd.testing.assert_frame_equal(ds.to_pandas(), df)
    assert ds.meta.compression == "zstd"


@pytest.mark.parametrize("devices", [
    pd.Categorical(["a", "b", None, "a", "c", "b"] * 50, categories=["c", "b", "a", "unused"]),
    pd.array(["x", None, "y", "x", "y", "z"] * 50, dtype="str"),
    pd.array([3, 1, None, 2, 1, 3] * 50, dtype="Int64"),
    np.array([0.5, -0.0, 0.0, 2.0, 0.5, 2.0] * 50),
])
def test_time_stats_match_a_pandas_groupby(devices):
    """Per-device [min, max] time in ns, nulls in either column ignored, as the chunk
    statistics that deletes and last values rely on."""
    rng = np.random.default_rng(3)
    times = pd.Series(pd.to_datetime(rng.integers(0, 10**12, 300), unit="ms", utc=True))
    times[rng.random(300) < 0.1] = pd.NaT
    df = pd.DataFrame({"t": times, "d": devices})
    table = pa.Table.from_pandas(df, preserve_index=False)
    ns = df["t"].dt.tz_localize(None).dt.as_unit("ns").astype("int64")
    valid = df["t"].notna() & pd.Series(devices).notna()
    keys = [device_key(v) for v in table.column("d").to_pylist()]
    expected = (pd.DataFrame({"k": keys, "ns": ns})[valid.to_numpy()]
                .groupby("k")["ns"].agg(["min", "max"]))
    got = time_stats(table, "t", "d")
    assert got == {k: [int(r["min"]), int(r["max"])] for k, r in expected.iterrows()}
    assert time_stats(table, "t", None) == {"": [int(ns[df["t"].notna()].min()),
                                                 int(ns[df["t"].notna()].max())]}
    assert time_stats(table, None, "d") == {}
    assert time_stats(table.slice(0, 0), "t", "d") == {} and time_stats(table.slice(0, 0), "t", None) == {}


def test_time_stats_merge_a_dictionary_that_repeats_a_value():
    devices = pa.DictionaryArray.from_arrays(pa.array([0, 1, 2, 2, None], pa.int8()),
                                             pa.array(["a", "b", "a"]))
    table = pa.table({"t": pa.array([5, 1, 9, 2, 0], pa.int64()), "d": devices})
    assert time_stats(table, "t", "d") == {"a": [2, 9], "b": [1, 1]}


def test_csv_values_with_newlines_across_blocks(client, tmp_path, monkeypatch):
    """Quoted values holding newlines read as pandas reads them, wherever the reader's blocks
    end (they failed "CSV parser got out of sync with chunker" across a block boundary)."""
    from chunkframe.ingestion import sources

    monkeypatch.setattr(sources, "_CSV_BLOCK", 256)
    path = _write(tmp_path / "lines.csv", b"a,b\n" + b"".join(
        b'%d,"line one\nline, two %d"\n' % (i, i) for i in range(400)))
    ds = client.ingest(path, "lines", chunk_rows=64, progress=False)
    pd.testing.assert_frame_equal(ds.to_pandas(), pd.read_csv(path), check_dtype=False)


@pytest.mark.parametrize(("data", "suspect"), [
    (b'a,b\n1,"x"\n', False), (b'a,b\n1,"x,y"\n2,"y"', False), (b'a,b\n1,"x\n2,y\n', True),
    (b'a,b\n1,12"\n2,"y\r\n\r\n', True), (b'a,b\n1,12"\n2,"y', True), (b'a\n""\n', False),
    (b'a,b\n1,"x\ny"\n', True),  # a last row over two lines: suspect, pandas then reads it
    (b'a\n' + b'x' * 70_000 + b'"', True), (b'a\n' + b'x' * 70_000, False),
])
@pytest.mark.parametrize("size", [1, 2, 3, 7, -1])
def test_quote_counter_whatever_the_read_sizes(data, suspect, size):
    import io

    from chunkframe.ingestion.sources import _QuoteCounter

    counted = _QuoteCounter(io.BytesIO(data))
    read = b"".join(iter(lambda: counted.read(size), b""))
    assert read == data and counted.suspect() is suspect


def _times(tz: str | None, n: int = 3) -> pd.DataFrame:
    return pd.DataFrame({"t": pd.date_range("2026-01-01", periods=n, freq="h", tz=tz),
                         "v": np.arange(n, dtype=np.float64)})


@pytest.mark.parametrize(("base", "appended", "message"), [
    # issue 14: "7" was stored as 7, b"z" and "z" as each other, Paris times as UTC ones
    (pd.DataFrame({"a": [1, 2]}), pd.DataFrame({"a": ["7"]}),
     r"column 'a' of the data appended to dataset 'co' is large_string but the dataset stores "
     r"int64; chunkframe does not convert strings to numbers silently.*pd\.to_numeric\(df\['a'\]\)"
     r".*mode='overwrite'"),
    (pd.DataFrame({"a": ["x", "y"]}), pd.DataFrame({"a": [3]}),
     r"'a'.*int64 but the dataset stores large_string.*numbers to strings.*astype\('string'\)"),
    (pd.DataFrame({"a": [b"x", b"y"]}), pd.DataFrame({"a": ["z"]}),
     r"'a'.*strings to bytes.*str\.encode\('utf-8'\)"),
    (pd.DataFrame({"a": ["x", "y"]}), pd.DataFrame({"a": [b"z"]}), r"'a'.*bytes to strings"),
    (pd.DataFrame({"a": [1, 2]}), pd.DataFrame({"a": [True]}), r"'a'.*bool values to numbers"),
    (_times("UTC"), _times("Europe/Paris"),
     r"column 't'.*times in time zone 'Europe/Paris' to times in time zone 'UTC'.*"
     r"tz_convert\('UTC'\)"),
    (_times(None), _times("UTC"), r"'t'.*'UTC' to times without a time zone.*tz_convert\(None\)"),
    (_times("UTC"), _times(None), r"'t'.*without a time zone to times in time zone 'UTC'.*"
     r"tz_localize\('UTC'\)"),
])
@pytest.mark.parametrize("evolve", [False, True])
def test_append_refuses_silent_coercion(client, base, appended, message, evolve):
    ds = client.ingest(base, "co", progress=False)
    if evolve:  # evolving widens numbers only, and names every other change too
        message = r"cannot evolve the schema of dataset 'co': '(a|t)' is"
    with pytest.raises(SchemaMismatchError, match=message):
        ds.append(appended, evolve=evolve, progress=False)
    assert len(client.open("co")) == len(base) and client.open("co").versions().shape[0] == 1
    pd.testing.assert_frame_equal(client.open("co").to_pandas(), base, check_dtype=False)


def test_append_still_converts_within_a_kind(client):
    """Numbers stay numbers (an int into a float column; int -> float with evolve=True),
    strings of either width are strings, times keep their zone whatever their unit."""
    ds = client.ingest(pd.DataFrame({"f": [0.5], "i": [1], "s": ["x"]}), "kinds", progress=False)
    ds.append(pd.DataFrame({"f": np.array([2], dtype=np.int32), "i": np.array([3], dtype=np.int8),
                            "s": pd.Series(["y"], dtype=object)}), progress=False)
    ds.append(pd.DataFrame({"f": [1], "i": [1.5], "s": ["z"]}), evolve=True, progress=False)
    out = client.open("kinds").to_pandas()
    assert out["f"].tolist() == [0.5, 2.0, 1.0] and out["i"].tolist() == [1.0, 3.0, 1.5]
    assert out["s"].tolist() == ["x", "y", "z"]
    nested = client.ingest(pd.DataFrame({"l": [[1, 2]], "n": [1.5]}), "nested", progress=False)
    nested.append(pd.DataFrame({"l": [[]], "n": [None]}), progress=False)  # nulls fit any kind
    assert client.open("nested").to_pandas()["l"].map(list).tolist() == [[1, 2], []]
    with pytest.raises(SchemaMismatchError,
                       match=r"column 'l' .* is list<item: string> but the dataset stores "
                             r"list<item: int64>"):
        nested.append(pd.DataFrame({"l": [["7"]], "n": [1.0]}), progress=False)
    times = client.ingest(_times("Europe/Paris"), "zoned", progress=False)
    later = _times("Europe/Paris")
    later["t"] = later["t"].astype("datetime64[ms, Europe/Paris]")
    times.append(later, progress=False)
    assert str(client.open("zoned").to_pandas()["t"].dt.tz) == "Europe/Paris"


@pytest.mark.parametrize(("frame", "message"), [
    (pd.DataFrame({"a": [b"x", "y"]}), r"column 'a' of the DataFrame mixes strings and bytes "
     r"\(pandas infers 'mixed'\).*v\.decode\(\)"),
    (pd.DataFrame({"a": ["y", None, b"x"]}), r"column 'a' of the DataFrame mixes strings and bytes"),
    (pd.DataFrame({"t": [pd.Timestamp("2026-01-01", tz="UTC"),
                         pd.Timestamp("2026-01-01", tz="Europe/Paris")]}),
     r"column 't' of the DataFrame mixes times of several time zones \('Europe/Paris', 'UTC'\)"
     r".*utc=True"),
    (pd.DataFrame({"t": [pd.Timestamp("2026-01-01", tz="UTC"), pd.Timestamp("2026-01-01")]}),
     r"column 't'.*several time zones \(no zone, 'UTC'\)"),
])
def test_object_columns_mixing_kinds_are_refused(client, frame, message):
    with pytest.raises(SchemaMismatchError, match=message):
        client.ingest(frame, "mixed", progress=False)
    assert_nothing_left(client, "mixed")
    with pytest.raises(SchemaMismatchError, match=message.replace("the DataFrame",
                                                                   "frame 1 of the source")):
        client.ingest([frame.iloc[:0], frame], "mixed", progress=False)
    # one kind per column is fine, and so is one zone in an object column
    same = pd.DataFrame({"a": pd.Series([b"x", None, b"y"], dtype=object),
                         "t": pd.Series([pd.Timestamp("2026-01-01", tz="Asia/Tokyo")] * 3,
                                        dtype=object)})
    out = client.ingest(same, "one-kind", progress=False).to_pandas()
    assert out["a"].tolist() == [b"x", None, b"y"] and str(out["t"].dt.tz) == "Asia/Tokyo"


def test_multi_file_csv_of_another_kind_is_refused(client, tmp_path):
    d = tmp_path / "kinds"
    d.mkdir()
    pd.DataFrame({"x": ["a", "b"]}).to_csv(d / "a.csv", index=False)
    pd.DataFrame({"x": [1, 2]}).to_csv(d / "b.csv", index=False)  # was stored as "1", "2"
    with pytest.raises(SchemaMismatchError, match=r"column 'x' of file .*b\.csv' is int64 but "
                       r"the dataset stores string"):
        client.ingest(d, "kinds", progress=False)
    assert_nothing_left(client, "kinds")


def test_a_block_of_strings_in_a_frame_of_bytes_is_refused():
    """A DataFrame is converted in blocks of a million rows, all to the whole frame's schema:
    a block holding only strings where the frame's column is bytes would be encoded."""
    from chunkframe.ingestion.sources import _frame_to_arrow

    whole = pa.schema([("a", pa.binary())])
    block = pd.DataFrame({"a": pd.Series(["x", None], dtype=object)})
    with pytest.raises(SchemaMismatchError, match=r"column 'a' of block 2 mixes strings and "
                                                  r"bytes \(pandas infers 'string'\)"):
        _frame_to_arrow(block, "block 2", whole)
    ok = pd.DataFrame({"a": pd.Series([b"x", None], dtype=object)})
    assert _frame_to_arrow(ok, "block 2", whole).column("a").to_pylist() == [b"x", None]


# -- one set of ingest options ------------------------------------------------------------------

def test_cf_ingest_and_client_ingest_take_the_ingest_options():
    """The public signatures and IngestOptions name the same keywords with the same defaults."""
    import dataclasses
    import inspect

    from chunkframe.ingestion.options import IngestOptions

    options = {f.name: f.default for f in dataclasses.fields(IngestOptions)}
    for function in (cf.ingest, cf.Client.ingest):
        params = inspect.signature(function).parameters
        assert {name: p.default for name, p in params.items()
                if name not in ("self", "source", "dataset_id")} == options, function


def test_cf_ingest_hands_every_option_to_the_client(monkeypatch):
    from chunkframe import api

    seen: list[tuple] = []

    class Recording:
        def ingest(self, source, dataset_id, **keywords):
            seen.append((source, dataset_id, keywords))

    monkeypatch.setattr(api, "default_client", Recording)
    given = dict(compression="zstd", progress=False, wait=2.5, workers=3, max_pending=5,
                 fingerprint="f", evolve=True, engine="dask", encodings={"d": "plain"})
    api.ingest("src.csv", "x", 10, "t", "d", "append", **given)  # the first four by position
    assert seen == [("src.csv", "x", dict(chunk_rows=10, time_column="t", device_column="d",
                                          mode="append", **given))]

