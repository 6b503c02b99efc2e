"""The embedded default: with no Redis URL, chunkframe starts one daemonized redis-server per
home on a unix socket, shared by later processes, persisting to an append-only file."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from crash_worker import source_frame

import chunkframe as cf
from chunkframe.core.errors import BackendUnavailableError
from chunkframe.core.keys import RedisKeys
from chunkframe.storage.embedded import ensure_server, server_status, stop_server

HERE = Path(__file__).parent


@pytest.fixture
def home(monkeypatch) -> Iterator[Path]:
    """A short home (unix socket paths are limited to ~104 bytes); its server is stopped after."""
    for var in ("CHUNKFRAME_REDIS_URL", "CHUNKFRAME_STORE", "CHUNKFRAME_CATALOG",
                "CHUNKFRAME_HOME", "CHUNKFRAME_PREFIX"):
        monkeypatch.delenv(var, raising=False)
    path = Path(tempfile.mkdtemp(prefix="cfh-"))
    try:
        yield path
    finally:
        stop_server(path)
        status = server_status(path)
        shutil.rmtree(path, ignore_errors=True)
        assert not status.running, "the embedded server outlived its test"


def worker(home: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(HERE / "crash_worker.py"), *args],
                            env=dict(os.environ, CF_HOME=str(home), **env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").exists() and " Z " not in Path(
        f"/proc/{pid}/stat").read_text()


def test_embedded_server_is_started_shared_and_stopped(home):
    assert not server_status(home).running
    client = cf.connect(home=home)
    assert client.settings.redis_url is None
    status = server_status(home)
    sock = home.resolve() / "redis" / "redis.sock"
    assert status.running and status.url == f"unix://{sock}" and sock.is_socket()
    assert status.pid and status.pid != os.getpid() and process_alive(status.pid)
    assert "redis-server" in Path(f"/proc/{status.pid}/cmdline").read_text()
    assert client.redis.config_get("appendonly") == {"appendonly": "yes"}
    # store and catalog default to the home as well
    df = source_frame(20_000)
    ds = client.ingest(df, "shared", chunk_rows=4096, progress=False)
    assert (home / "store" / "shared").is_dir() and (home / "catalog.db").is_file()
    assert server_status(home).keys >= 3

    # another connect, in this process and in another one, reuses the same server
    assert cf.connect(home=home).redis.info()["process_id"] == status.pid
    proc = worker(home, "server-info", "shared")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.split("\n")[:2] == [f"pid {status.pid}", "rows shared 20000"]
    assert ensure_server(home) == status.url

    # stop: the server goes away; a later connect starts a new one with the same data (AOF)
    assert stop_server(home) is True
    assert not server_status(home).running and not process_alive(status.pid)
    assert stop_server(home) is False
    with pytest.raises(BackendUnavailableError, match=r"redis\.sock"):
        client.ingest(df, "after-stop", progress=False)
    client = cf.connect(home=home)
    new = server_status(home)
    assert new.running and new.pid != status.pid
    assert client.redis.hget(RedisKeys("cf", "shared").meta, "rows") == b"20000"
    pd.testing.assert_frame_equal(client.open("shared").to_pandas(), df)
    pd.testing.assert_frame_equal(ds.to_pandas(), df)


def test_kill_9_of_a_client_loses_no_acknowledged_checkpoint(home):
    cf.connect(home=home)  # start the server from here, the worker reuses it
    server_pid = server_status(home).pid
    proc = worker(home, "ingest", "killed", CF_ROWS="100000", CF_CHUNK_ROWS="5000",
                  CF_LOCK_TTL="1", CF_WORKERS="2", CF_PAUSE="ckpt-done:6")
    acknowledged: list[int] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("ckpt-done"):
                acknowledged.append(int(line.split()[1]))
                if len(acknowledged) == 6:
                    break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    assert len(acknowledged) == 6, proc.stderr
    keys = RedisKeys("cf", "killed")

    def checkpoints() -> set[int]:
        r = cf.connect(home=home).redis
        gen = int(r.hget(keys.ingest, "generation"))
        return {int(n) for n in r.hkeys(keys.chunks(gen))}

    assert set(acknowledged) <= checkpoints()
    # even a kill -9 of the server itself keeps what it acknowledged: the AOF is written
    # before the reply; the next connect starts a new server on the same files
    os.kill(server_pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while process_alive(server_pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not server_status(home).running
    assert set(acknowledged) <= checkpoints()
    assert server_status(home).pid != server_pid

    client = cf.connect(home=home)
    written: list[str] = []
    write = client.store.write
    client.store.write = lambda key, fill: (written.append(key), write(key, fill))[1]
    ds = client.ingest(source_frame(100_000), "killed", chunk_rows=5000, mode="resume",
                       wait=10, progress=False)
    pd.testing.assert_frame_equal(ds.to_pandas(), source_frame(100_000))
    assert not {int(k.rsplit("/c", 1)[1][:8]) for k in written} & set(acknowledged)


def test_socket_path_too_long_is_a_clear_error(tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    with pytest.raises(BackendUnavailableError, match="too long.*CHUNKFRAME_HOME"):
        ensure_server(deep)
    assert not (deep / "redis").exists()
