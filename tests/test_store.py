"""Chunk stores: one conformance suite (:class:`StoreTests`, after zarr's testing/store.py)
that every store class passes (LocalStore; FsspecStore on memory:// and on s3:// at moto),
then what only the local store promises: atomic writes that a kill -9 cannot tear, and
reads through maps of the files."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pytest

from chunkframe.core.errors import BackendUnavailableError
from chunkframe.storage import codec
from chunkframe.storage.store import ChunkStore, FsspecStore, LocalStore, open_store

HERE = Path(__file__).parent


class StoreTests:
    """What every chunk store does the same way; the ingest and reader rely on nothing else.

    A subclass per store class sets ``store_cls`` and gives a ``store`` fixture (an empty
    store); every test here then runs against it.
    """

    store_cls: type[ChunkStore]

    @pytest.fixture
    def store(self) -> ChunkStore:
        raise NotImplementedError("a subclass gives its store")

    def test_open_store_gives_this_class_for_its_url(self, store):
        assert type(store) is self.store_cls and isinstance(store, ChunkStore)
        again = open_store(store.url, store.storage_options)
        assert type(again) is self.store_cls and again.root == store.root
        assert repr(store) == f"{self.store_cls.__name__}({store.url!r})"

    def test_url_of_a_key_opens_with_fsspec(self, store):
        import fsspec

        store.put("ds/g000001/c00000000.arrow", b"payload")
        with fsspec.open(store.url_of("ds/g000001/c00000000.arrow"), "rb",
                         **store.storage_options) as f:
            assert f.read() == b"payload"
        with pytest.raises(ValueError, match="invalid store key"):
            store.url_of("../x")

    def test_get_missing_is_none(self, store):
        assert store.get("nope/c00000000.arrow") is None
        assert store.get("nope") is None
        assert not store.exists("nope")

    def test_size_of_a_key_or_none(self, store):
        store.put("ds/g000001/c00000000.arrow", b"12345")
        store.put("ds/empty", b"")
        assert store.size("ds/g000001/c00000000.arrow") == 5 and store.size("ds/empty") == 0
        assert store.size("ds/g000001/c00000001.arrow") is None and store.size("nope") is None
        with pytest.raises(ValueError, match="invalid store key '../x'"):
            store.size("../x")

    def test_put_get(self, store):
        store.put("ds/g000001/c00000000.arrow", b"\x00\x01binary\xff")
        assert store.get("ds/g000001/c00000000.arrow") == b"\x00\x01binary\xff"
        assert store.exists("ds/g000001/c00000000.arrow")

    def test_put_empty_and_large(self, store):
        big = os.urandom(3 * 2**20)
        store.put("a/empty", b"")
        store.put("a/big", big)
        assert store.get("a/empty") == b""
        assert store.get("a/big") == big

    def test_write_streams_an_object_and_returns_what_landed(self, store):
        table = pa.table({"x": list(range(1000)), "s": [f"v{i}" for i in range(1000)]})
        digest, size = store.write("w/c.arrow", lambda f: codec.write(table, f))
        data = store.get("w/c.arrow")
        assert size == len(data) and digest == codec.checksum(data)
        assert codec.decode(data).equals(table)
        assert store.write("w/empty", lambda f: None) == ("crc32c:00000000", 0)

    def test_write_whose_fill_fails_leaves_nothing_and_passes_the_error_on(self, store):
        def fill(f):
            f.write(b"half an object")
            raise pa.ArrowInvalid("the table could not be encoded")

        with pytest.raises(pa.ArrowInvalid, match="could not be encoded"):
            store.write("w/bad.arrow", fill)
        assert store.get("w/bad.arrow") is None
        assert list(store.list()) == []

    def test_read_gives_the_bytes_as_an_arrow_buffer(self, store):
        small, big = b"tiny", os.urandom(1_000_003)
        store.put("r/small", small)
        store.put("r/big", big)
        for key, data in (("r/small", small), ("r/big", big)):
            buf = store.read(key)
            assert isinstance(buf, pa.Buffer) and buf.to_pybytes() == data
        assert store.read("r/missing") is None

    def test_overwrite_replaces_whole_value(self, store):
        store.put("k/v", b"long original value")
        store.put("k/v", b"short")
        assert store.get("k/v") == b"short"
        assert list(store.list("k")) == ["k/v"]

    def test_delete_and_delete_missing(self, store):
        store.put("d/x", b"1")
        store.put("d/y", b"2")
        store.delete("d/x")
        assert store.get("d/x") is None
        assert store.get("d/y") == b"2"
        store.delete("d/x")  # already gone: not an error
        store.delete("never/was/here")

    def test_list_with_prefix(self, store):
        for key in ("ds/g000001/c00000001.arrow", "ds/g000001/c00000000.arrow",
                    "ds/g000002/c00000000.arrow", "dsx/g000001/c00000000.arrow", "other"):
            store.put(key, key.encode())
        assert list(store.list("ds/g000001")) == ["ds/g000001/c00000000.arrow",
                                                  "ds/g000001/c00000001.arrow"]
        assert list(store.list("ds/g000001/")) == list(store.list("ds/g000001"))
        # a prefix is a directory: "ds" does not match "dsx"
        assert list(store.list("ds")) == ["ds/g000001/c00000000.arrow",
                                          "ds/g000001/c00000001.arrow",
                                          "ds/g000002/c00000000.arrow"]
        assert list(store.list("missing")) == []
        assert list(store.list()) == sorted(["ds/g000001/c00000000.arrow",
                                             "ds/g000001/c00000001.arrow",
                                             "ds/g000002/c00000000.arrow",
                                             "dsx/g000001/c00000000.arrow", "other"])

    def test_delete_prefix(self, store):
        for key in ("ds/g000001/c0", "ds/g000001/c1", "ds/g000002/c0", "dsx/g000001/c0"):
            store.put(key, b"v")
        store.delete_prefix("ds/g000001")
        assert list(store.list("ds")) == ["ds/g000002/c0"]
        assert store.get("ds/g000001/c0") is None
        assert store.get("dsx/g000001/c0") == b"v"  # a sibling with a longer name survives
        store.delete_prefix("ds/g000009")  # missing: not an error
        store.delete_prefix("ds/g000002")
        assert list(store.list("ds")) == []
        assert list(store.list()) == ["dsx/g000001/c0"]

    @pytest.mark.parametrize("key", ["../x", "a/../../x", "/etc/passwd", "", "a/../b"])
    def test_invalid_keys_rejected(self, store, key):
        calls = [lambda: store.put(key, b"x"), lambda: store.get(key), lambda: store.delete(key),
                 lambda: store.exists(key)]
        if key:  # an empty prefix means the whole store
            calls += [lambda: store.list(key), lambda: store.delete_prefix(key)]
        for call in calls:
            with pytest.raises(ValueError, match="invalid store key"):
                call()
        assert list(store.list()) == []

    def test_a_key_is_not_a_prefix_of_itself_but_lists_as_itself(self, store):
        store.put("p/key", b"v")
        assert not store.exists("p")  # a "directory" is no key
        assert list(store.list("p/key")) == ["p/key"]
        store.delete_prefix("p/key")  # a prefix naming one key removes that key
        assert store.get("p/key") is None and list(store.list()) == []

    def test_sweep_partials_of_a_clean_store_removes_nothing(self, store):
        store.put("s/k", b"v")
        assert store.sweep_partials() == 0 and store.sweep_partials("s") == 0
        assert store.get("s/k") == b"v"
        with pytest.raises(ValueError, match="invalid store key"):
            store.sweep_partials("../outside")

    def test_a_failing_fill_of_an_existing_key_keeps_the_old_value(self, store):
        store.put("f/k", b"old")

        def fill(f):
            f.write(b"new but unfinished")
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            store.write("f/k", fill)
        assert store.get("f/k") == b"old" and list(store.list()) == ["f/k"]


class TestLocalStore(StoreTests):
    store_cls = LocalStore

    @pytest.fixture
    def store(self, tmp_path) -> ChunkStore:
        return LocalStore(tmp_path / "store")


class TestMemoryStore(StoreTests):
    store_cls = FsspecStore

    @pytest.fixture
    def store(self) -> ChunkStore:
        return open_store(f"memory://cf-{uuid.uuid4().hex[:12]}")


class TestS3Store(StoreTests):
    store_cls = FsspecStore

    @pytest.fixture
    def store(self, s3_bucket, s3_options) -> ChunkStore:
        return open_store(f"s3://{s3_bucket}/chunks", s3_options)


def test_open_store_reads_the_url():
    assert isinstance(open_store("relative/dir/../store-x"), LocalStore)
    local = open_store("file:///tmp/cf-open-store-test")
    assert isinstance(local, LocalStore) and local.root == "/tmp/cf-open-store-test"
    assert isinstance(open_store("memory://x"), FsspecStore)
    with pytest.raises(TypeError, match="abstract"):
        ChunkStore()  # type: ignore[abstract]


def test_a_store_whose_package_is_missing_names_it():
    with pytest.raises(BackendUnavailableError, match="pip install gcsfs"):
        open_store("gs://bucket/chunks")


def test_unreachable_object_store_is_a_clear_error():
    store = open_store("s3://nowhere/chunks", {
        "endpoint_url": "http://127.0.0.1:1", "key": "k", "secret": "s",
        "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 1}})
    for call, doing in ((lambda: store.put("a/b", b"x"), "write"), (lambda: store.get("a/b"), "read"),
                        (lambda: list(store.list("a")), "list"),
                        (lambda: store.size("a/b"), "check")):
        with pytest.raises(BackendUnavailableError, match=f"could not {doing}.*s3://nowhere"):
            call()
    assert store.sweep_partials() == 0  # object stores have no temp files


def test_memory_stores_with_different_names_are_separate():
    a = open_store(f"memory://cf-{uuid.uuid4().hex[:12]}")
    b = open_store(f"memory://cf-{uuid.uuid4().hex[:12]}")
    a.put("k", b"a")
    assert b.get("k") is None
    assert list(b.list()) == []


# ---------------------------------------------------------------- local store: atomicity


def _all_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_local_put_leaves_no_partial_files(tmp_path):
    store = LocalStore(tmp_path / "s")
    for i in range(20):
        store.put(f"ds/g000001/c{i:08d}.arrow", os.urandom(1000 + i))
    store.put("ds/g000001/c00000000.arrow", b"rewritten")
    files = _all_files(tmp_path / "s")
    assert files == [f"ds/g000001/c{i:08d}.arrow" for i in range(20)]


def test_local_put_failure_cleans_its_temp_file(tmp_path):
    store = LocalStore(tmp_path / "s")
    (tmp_path / "s" / "k").mkdir(parents=True)  # the final name is a directory: replace fails
    with pytest.raises(BackendUnavailableError, match="could not write chunk 'k'"):
        store.put("k", b"data")
    assert _all_files(tmp_path / "s") == []


def test_local_read_failure_is_a_backend_error(tmp_path):
    store = LocalStore(tmp_path / "s")
    (tmp_path / "s" / "k").mkdir(parents=True)  # a directory where a chunk should be
    with pytest.raises(BackendUnavailableError, match="could not read chunk 'k'"):
        store.read("k")


def test_unwritable_local_store_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(BackendUnavailableError, match="file/store"):
        LocalStore(blocker / "store")


def test_local_write_killed_mid_write_is_absent_or_whole(tmp_path):
    """A process rewriting one big chunk in a loop is killed at random moments and, on
    alternate rounds, exactly between writing its temp file and renaming it: the key is
    always absent (before any put completed) or one of the two whole values, never torn;
    the temp files kills leave are invisible to list() and removed by sweep_partials()."""
    root = tmp_path / "s"
    key = "ds/g000001/c00000000.arrow"
    rng = random.Random(1234)
    size = 4 * 2**20
    expected = {bytes([n]) * size for n in (1, 2)}
    completed = False  # has any put ever completed?
    for round_ in range(8):
        pause_at = rng.randint(1, 3) if round_ % 2 else 0
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "crash_worker.py"), "store-loop", str(root), key,
             str(size), str(pause_at)],
            stdout=subprocess.PIPE, text=True,
        )
        assert proc.stdout is not None
        try:
            assert proc.stdout.readline().strip() == "ready"
            if pause_at:  # kill while the pause_at-th temp file is written but not renamed
                syncs = 0
                for line in proc.stdout:
                    completed |= line.startswith("put ")
                    syncs += line.strip() == "fsync"
                    if syncs == pause_at:
                        break
            else:  # kill at a random moment after a few complete puts
                for _ in range(rng.randint(0, 3)):
                    completed |= proc.stdout.readline().startswith("put ")
                time.sleep(rng.uniform(0, 0.03))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc.stdout.close()
        store = LocalStore(root)
        data = store.get(key)
        if completed:
            assert data in expected, f"round {round_}: torn chunk ({len(data or b'')} bytes)"
        else:
            assert data is None or data in expected
        completed |= data is not None
        if pause_at:
            assert any(f.endswith(".partial") for f in _all_files(root)), round_
        assert list(store.list()) in ([key], []) and list(store.list()) == (
            [key] if data is not None else [])
    store = LocalStore(root)
    assert store.sweep_partials("ds") >= 4
    assert _all_files(root) == [key]
    assert store.get(key) in expected
    assert store.sweep_partials() == 0


def test_local_reads_are_maps_of_the_file_that_outlive_its_replacement(tmp_path):
    store = LocalStore(tmp_path / "s")
    old, new = os.urandom(1_000_003), os.urandom(999_999)
    store.put("m/k", old)
    buf = store.read("m/k")
    view = pa.py_buffer(buf).slice(1_000, 5_000)  # a view derived from the read, kept
    assert not buf.is_mutable  # read-only: nothing can write through a chunk's map
    store.put("m/k", new)  # a key is only ever replaced whole (a new file renamed over it)
    assert buf.to_pybytes() == old and view.to_pybytes() == old[1_000:6_000]
    assert store.read("m/k").to_pybytes() == new
    store.delete("m/k")  # deleted while mapped: the map still reads the old bytes
    assert view.to_pybytes() == old[1_000:6_000]
    del buf
    assert view.to_pybytes() == old[1_000:6_000]  # the map lives as long as any view
    store.put("m/empty", b"")
    assert store.read("m/empty").size == 0  # an empty file cannot be mapped: no error


def _rss_kb(kind: str) -> int:
    """This process's resident ``RssAnon`` or ``RssFile`` in kB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(kind + ":"):
            return int(line.split()[1])
    pytest.skip("no /proc/self/status on this platform")


def test_a_mapped_read_uses_the_page_cache_not_anonymous_memory(tmp_path):
    store = LocalStore(tmp_path / "s")
    store.put("big", os.urandom(64 * 2**20))
    anon, files = _rss_kb("RssAnon"), _rss_kb("RssFile")
    buf = store.read("big")
    # the file's own pages (shared with every process mapping it), prefaulted; no copy
    assert _rss_kb("RssFile") - files > 60 * 1024
    assert _rss_kb("RssAnon") - anon < 8 * 1024
    del buf
    assert _rss_kb("RssFile") - files < 8 * 1024  # unmapped with its last view
