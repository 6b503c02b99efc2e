"""Issue 14: what chunkframe creates is owner-only (0700/0600) whatever the umask, or shared
with the group on request; what exists keeps its mode."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import chunkframe as cf
from chunkframe.core.errors import InvalidArgumentError
from chunkframe.core.permissions import create_file, make_dirs, modes
from chunkframe.storage.atomic import AtomicFile
from chunkframe.storage.embedded import ensure_server, stop_server


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def tree_modes(root: Path) -> dict[str, int]:
    """The mode of ``root`` and of everything under it, by path relative to ``root``."""
    found = {".": mode_of(root)}
    for d, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(d) / name
            found[str(path.relative_to(root))] = mode_of(path)
    return found


@pytest.fixture(params=[0o022, 0o000], ids=["umask022", "umask000"])
def umask(request) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def connect(home: Path, redis_url: str, prefix: str, **options) -> cf.Client:
    return cf.connect(store=home / "store", redis=redis_url, catalog=home / "db" / "catalog.db",
                      home=home, prefix=prefix, **options)


def ingest_and_hold_catalog(client: cf.Client, catalog: Path) -> sqlite3.Connection:
    """Ingest, then keep a catalog connection open so SQLite's -wal and -shm files exist."""
    client.ingest(pd.DataFrame({"a": range(10)}), "perm", chunk_rows=4, progress=False)
    db = sqlite3.connect(catalog)
    db.execute("SELECT count(*) FROM datasets").fetchone()
    return db


@pytest.mark.parametrize(("permissions", "dirs", "files"),
                         [(None, 0o700, 0o600), ("owner", 0o700, 0o600), ("group", 0o770, 0o660)])
def test_home_store_and_catalog_modes_whatever_the_umask(tmp_path, redis_server, prefix, umask,
                                                         permissions, dirs, files):
    home = tmp_path / "new" / "home"
    options = {} if permissions is None else {"permissions": permissions}
    db = ingest_and_hold_catalog(connect(home, redis_server.url, prefix, **options),
                                 home / "db" / "catalog.db")
    try:
        found = tree_modes(tmp_path / "new")
    finally:
        db.close()
    assert {"home/db/catalog.db-wal", "home/db/catalog.db-shm",
            "home/store/perm"} <= set(found)
    assert len([p for p in found if p.endswith(".arrow")]) == 3
    for path, mode in found.items():
        is_dir = (tmp_path / "new" / path).is_dir()
        assert mode == (dirs if is_dir else files), (path, oct(mode))


def test_shared_permissions_from_the_environment(tmp_path, redis_server, prefix, monkeypatch):
    monkeypatch.setenv("CHUNKFRAME_PERMISSIONS", "group")
    client = connect(tmp_path / "h", redis_server.url, prefix)
    assert client.settings.permissions == "group" and "permissions='group'" in repr(
        client.settings)
    client.ingest(pd.DataFrame({"a": [1]}), "shared", progress=False)
    assert {mode_of(tmp_path / "h" / "store"), mode_of(tmp_path / "h" / "db")} == {0o770}
    assert mode_of(tmp_path / "h" / "db" / "catalog.db") == 0o660
    # an argument wins over the environment
    assert connect(tmp_path / "h", redis_server.url, prefix,
                   permissions="owner").settings.permissions == "owner"


@pytest.mark.parametrize("bad", ["world", "", 0o777])
def test_unknown_permissions_are_refused(tmp_path, redis_server, prefix, bad, monkeypatch):
    if bad == "":  # an empty variable means the default, as the other CHUNKFRAME_* do
        monkeypatch.setenv("CHUNKFRAME_PERMISSIONS", bad)
        assert connect(tmp_path, redis_server.url, prefix).settings.permissions == "owner"
        return
    with pytest.raises(InvalidArgumentError,
                       match=r"permissions must be one of \('owner', 'group'\), got "
                             + repr(bad) + ".*CHUNKFRAME_PERMISSIONS"):
        connect(tmp_path, redis_server.url, prefix, permissions=bad)
    assert not (tmp_path / "store").exists()


def test_existing_directories_and_files_keep_their_modes(tmp_path, redis_server, prefix, umask):
    """Nothing is chmod-ed behind the user's back: a store or catalog they opened to others
    stays so (new files inside are owner-only all the same)."""
    home = tmp_path / "h"
    (home / "store").mkdir(parents=True)
    (home / "db").mkdir()
    os.chmod(home / "store", 0o755)
    os.chmod(home / "db", 0o751)
    (home / "db" / "catalog.db").touch()
    os.chmod(home / "db" / "catalog.db", 0o644)
    connect(home, redis_server.url, prefix).ingest(pd.DataFrame({"a": [1]}), "kept",
                                                   progress=False)
    assert mode_of(home / "store") == 0o755 and mode_of(home / "db") == 0o751
    assert mode_of(home / "db" / "catalog.db") == 0o644
    assert mode_of(home / "store" / "kept") == 0o700


def test_embedded_redis_directory_socket_and_files(umask):
    home = Path(tempfile.mkdtemp(prefix="cfp-")) / "home"  # short: unix socket paths
    try:
        url = ensure_server(home, modes=modes("owner"))
        assert url.endswith("redis.sock")
        found = tree_modes(home)
        assert found["."] == 0o700 and found["redis"] == 0o700
        assert found["redis/redis.sock"] == 0o700  # --unixsocketperm: the owner only
        files = {p: m for p, m in found.items() if (home / p).is_file()}
        assert {"redis/start.lock", "redis/redis.pid"} <= set(files)
        assert set(files.values()) == {0o600}, files
    finally:
        stop_server(home)
        shutil.rmtree(home.parent)


def test_make_dirs_and_create_file(tmp_path, umask):
    make_dirs(tmp_path / "a" / "b", 0o750)
    assert mode_of(tmp_path / "a") == mode_of(tmp_path / "a" / "b") == 0o750
    make_dirs(tmp_path / "a" / "b", 0o700)  # exists: unchanged, no error
    assert mode_of(tmp_path / "a" / "b") == 0o750
    assert create_file(tmp_path / "f", 0o640) is True and mode_of(tmp_path / "f") == 0o640
    assert create_file(tmp_path / "f", 0o600) is False and mode_of(tmp_path / "f") == 0o640
    with pytest.raises(FileNotFoundError):
        create_file(tmp_path / "missing" / "f", 0o600)
    with pytest.raises(NotADirectoryError):
        make_dirs(tmp_path / "f" / "sub", 0o700)


def test_atomic_file_mode(tmp_path, umask):
    """Chunk stores give a mode; exports (the user's own files) leave it to the umask."""
    for name, mode, expected in [("chunk", 0o600, 0o600), ("export", None, 0o666 & ~umask)]:
        target = AtomicFile(str(tmp_path / name), mode=mode)
        target.open().write(b"x")
        target.commit()
        assert mode_of(tmp_path / name) == expected
