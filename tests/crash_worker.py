"""Subprocess the crash tests kill with SIGKILL; each mode prints progress lines to stdout.

Modes (first argument):

``store-loop ROOT KEY SIZE [PAUSE_AT]``
    Rewrite KEY of a LocalStore forever with two alternating payloads of SIZE bytes.
    Prints ``ready``, then ``fsync N`` as the N-th temp file is synced (sleeping there if N
    equals PAUSE_AT, so a kill lands between the write and the rename), ``put N`` after.
``ingest ID``
    Ingest the deterministic source frame (see :func:`source_frame`) with ``mode="resume"``.
    Configured by environment: CF_REDIS (URL; unset = embedded server), CF_HOME, CF_STORE,
    CF_CATALOG, CF_PREFIX, CF_ROWS, CF_CHUNK_ROWS, CF_WORKERS, CF_LOCK_TTL, CF_PAUSE,
    CF_CHECKPOINT_CHUNKS (checkpoint the chunk table that often). Prints ``start``,
    then a line per step (``locked FENCE``, ``put-start``, ``fsync`` (a file's), ``put-done``,
    ``dirsync`` (a batch's directory), ``ckpt-start``, ``ckpt-done N``, ``commit-start``,
    ``commit-tx``, ``commit-done``, ``publish-done``)
    and ``done ROWS`` at the end. CF_PAUSE=STEP:K sleeps after the K-th STEP line of this
    run, so the test's kill lands exactly there.
``ingest-files ID URL``
    As ``ingest``, from the CSV/Parquet/Arrow files of URL (a path or glob) instead.
``append ID OFFSET``
    Append the source frame of CF_ROWS rows, its ``id`` shifted by OFFSET, to dataset ID
    (env and hooks as for ``ingest``); prints ``done ROWS`` (the dataset's new size).
``overwrite ID CHANGED_FROM``
    Overwrite dataset ID with the source frame of CF_ROWS rows, its ``value`` 1e6 more from
    row CHANGED_FROM on (env and hooks as for ``ingest``: the chunks before that row are
    those a kept version may already hold, and share); prints ``done ROWS``.
``compact ID``
    Compact dataset ID (env and hooks as for ``ingest``); prints ``done CHUNKS``.
``update ID``
    Upsert into dataset ID (env as for ``ingest``) its rows 0 and 500 with ``value`` 1e6 and
    10 new rows; prints ``done VERSION``.
``drop ID``
    Drop dataset ID (env as for ``ingest``, ``force=True``). Besides ``locked FENCE``, prints
    ``drop-begun`` (the intent is committed), ``drop-keys`` (Redis keys deleted),
    ``drop-prefix`` (after each generation's files are deleted), ``drop-files``,
    ``drop-context``, ``drop-tx`` (the last transaction's statements done, COMMIT not yet
    run), ``drop-done``, then ``done VERSIONS``.
``snapshot NAME [ID...]``
    Record snapshot NAME of datasets ID... (none: every dataset) with metadata
    ``{"by": "crash"}`` (env as for ``ingest``). Prints ``snap-start`` (before its
    transaction), ``snap-row`` (the snapshot's row inserted, its versions not yet),
    ``snap-tx`` (the transaction's statements done, COMMIT not yet run), ``snap-done``,
    then ``done DATASETS``.
``hold-lock ID``
    Take the dataset's ingest lock (env as for ``ingest``), print ``locked FENCE``, sleep.
``server-info [ID...]``
    Connect (CF_HOME only: the embedded server), print ``pid PID`` of the Redis server and
    ``rows ID N`` for each dataset ID.

The hooks wrap chunkframe functions inside this process only; the library is unchanged.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import numpy as np
import pandas as pd

_print_lock = threading.Lock()


def say(line: str) -> None:
    with _print_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def source_frame(rows: int, seed: int = 20240601) -> pd.DataFrame:
    """The source of the crash tests: the same rows for the same (rows, seed), every time."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "id": np.arange(rows, dtype=np.int64),
        "time": pd.date_range("2024-01-01", periods=rows, freq="s", unit="ns"),
        "device": pd.Categorical.from_codes(rng.integers(0, 8, rows),
                                            categories=[f"dev{i}" for i in range(8)]),
        "value": rng.normal(size=rows),
        "count": pd.Series(rng.integers(0, 1000, rows), dtype="Int64").mask(
            rng.random(rows) < 0.1),
        "label": pd.array([f"r{i % 997}" for i in range(rows)], dtype="str"),
    })


def changed_frame(rows: int, changed_from: int) -> pd.DataFrame:
    """:func:`source_frame`, its ``value`` 1e6 more from row ``changed_from`` on."""
    df = source_frame(rows)
    df.loc[changed_from:, "value"] += 1e6
    return df


def kill_at(args: list[str], env: dict[str, str], pause: str) -> None:
    """Run this worker with ``args`` and ``env`` (CF_PAUSE=``pause``) and SIGKILL it once it
    prints the step ``pause`` names (``"ckpt-done:5"``: the 5th checkpoint), within 60 s."""
    proc = subprocess.Popen([sys.executable, __file__, *args], env={**env, "CF_PAUSE": pause},
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    watchdog = threading.Timer(60, proc.kill)
    watchdog.start()
    try:
        assert proc.stdout is not None
        step, k = pause.split(":")
        seen = 0
        for line in proc.stdout:
            if line.split()[:1] == [step]:  # (a step without detail ends in its newline)
                seen += 1
                if seen == int(k):
                    break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    finally:
        watchdog.cancel()
    assert proc.returncode == -signal.SIGKILL
    assert seen == int(k), f"the worker never reached {pause} (killed by the watchdog)"


class Steps:
    """Counts step lines; pauses (so the parent can kill us there) at the chosen one."""

    def __init__(self, spec: str) -> None:
        step, _, k = spec.partition(":")
        self.pause_step, self.pause_k = step, int(k or 0)
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()

    def __call__(self, step: str, detail: str = "") -> None:
        with self.lock:
            n = self.counts[step] = self.counts.get(step, 0) + 1
            say(f"{step} {detail}".rstrip())
            pause = step == self.pause_step and n == self.pause_k
        if pause:
            time.sleep(120)  # the parent kills us here


def install_hooks(step: Steps) -> None:
    import chunkframe.ingestion.lifecycle as lifecycle_mod
    import chunkframe.storage.catalog as catalog_mod
    import chunkframe.storage.state as state_mod
    import chunkframe.storage.store as store_mod

    orig_write, orig_fsync = store_mod.LocalStore.write, os.fsync  # the crash tests' stores are local

    def write(self, key, fill):
        step("put-start", key)
        out = orig_write(self, key, fill)
        step("put-done", key)
        return out

    def fsync(fd):
        orig_fsync(fd)
        # a chunk's temp file, synced before its rename; a directory is synced once per
        # batch of checkpoints (its own step, so "fsync" still lands before a rename)
        step("fsync" if stat.S_ISREG(os.fstat(fd).st_mode) else "dirsync")

    orig_ckpt = state_mod.State.checkpoint

    def checkpoint(self, lock, generation, *metas):
        for meta in metas:
            step("ckpt-start", str(meta.chunk))
        orig_ckpt(self, lock, generation, *metas)
        for meta in metas:
            step("ckpt-done", str(meta.chunk))

    orig_tx, orig_commit = catalog_mod.Catalog._transaction, catalog_mod.Catalog.commit
    in_commit = threading.local()

    class SnapshotRows:
        """The transaction's connection, with a step once the snapshot's row is inserted."""

        def __init__(self, db):
            self._db = db

        def __getattr__(self, name):
            return getattr(self._db, name)

        def execute(self, sql, *args):
            out = self._db.execute(sql, *args)
            if sql.startswith("INSERT INTO snapshots "):
                step("snap-row")
            return out

    @contextmanager
    def transaction(self):
        with orig_tx(self) as db:
            yield SnapshotRows(db) if getattr(in_commit, "on", "") == "snap-tx" else db
            if getattr(in_commit, "on", ""):
                step(in_commit.on)  # statements done, COMMIT not yet run

    def commit(self, meta, chunks, fence, kind="ingest", **more):
        step("commit-start")
        in_commit.on = "commit-tx"
        try:
            orig_commit(self, meta, chunks, fence, kind, **more)
        finally:
            in_commit.on = ""
        step("commit-done")

    orig_end_drop = catalog_mod.Catalog.end_drop

    def end_drop(self, dataset_id, fence):
        in_commit.on = "drop-tx"
        try:
            out = orig_end_drop(self, dataset_id, fence)
        finally:
            in_commit.on = ""
        step("drop-done")
        return out

    def after(owner, name, line):
        orig = getattr(owner, name)

        def wrapped(*args, **kwargs):
            out = orig(*args, **kwargs)
            step(line)
            return out

        setattr(owner, name, wrapped)

    after(catalog_mod.Catalog, "begin_drop", "drop-begun")
    after(catalog_mod.Catalog, "forget_context", "drop-context")
    after(lifecycle_mod, "_delete_redis_keys", "drop-keys")
    after(lifecycle_mod, "_delete_files", "drop-files")
    after(store_mod.LocalStore, "delete_prefix", "drop-prefix")
    catalog_mod.Catalog.end_drop = end_drop

    orig_add_snapshot = catalog_mod.Catalog.add_snapshot

    def add_snapshot(self, *args, **kwargs):
        step("snap-start")
        in_commit.on = "snap-tx"
        try:
            out = orig_add_snapshot(self, *args, **kwargs)
        finally:
            in_commit.on = ""
        step("snap-done")
        return out

    catalog_mod.Catalog.add_snapshot = add_snapshot

    orig_publish = state_mod.State.publish

    def publish(self, lock, meta, *more, **kw):
        orig_publish(self, lock, meta, *more, **kw)
        step("publish-done")

    orig_acquire = state_mod.DatasetLock.acquire

    def acquire(self, wait=False):
        got = orig_acquire(self, wait)
        step("locked", str(self.fence))
        return got

    state_mod.DatasetLock.acquire = acquire
    store_mod.LocalStore.write = write
    os.fsync = fsync
    state_mod.State.checkpoint = checkpoint
    catalog_mod.Catalog._transaction = transaction
    catalog_mod.Catalog.commit = commit
    state_mod.State.publish = publish


def connect():
    import chunkframe as cf
    import chunkframe.storage.manifest as manifest_mod

    env = os.environ
    if env.get("CF_CHECKPOINT_CHUNKS"):  # checkpoint often, so a kill can land around one
        manifest_mod.CHECKPOINT_CHUNKS = int(env["CF_CHECKPOINT_CHUNKS"])
    return cf.connect(store=env.get("CF_STORE"), redis=env.get("CF_REDIS") or None,
                      catalog=env.get("CF_CATALOG"), home=env.get("CF_HOME"),
                      prefix=env.get("CF_PREFIX"), lock_ttl=float(env.get("CF_LOCK_TTL", "15")))


def main(argv: list[str]) -> int:
    mode = argv[1]
    if mode == "store-loop":
        from chunkframe.storage.store import LocalStore

        root, key, size = argv[2], argv[3], int(argv[4])
        step = Steps(f"fsync:{argv[5]}" if len(argv) > 5 else "")
        orig_fsync = os.fsync

        def fsync(fd):
            orig_fsync(fd)
            step("fsync")

        os.fsync = fsync
        store = LocalStore(root)
        payloads = [bytes([1]) * size, bytes([2]) * size]
        say("ready")
        n = 0
        while True:
            store.put(key, payloads[n % 2])
            n += 1
            say(f"put {n}")
    if mode == "ingest":
        dataset_id = argv[2]
        df = source_frame(int(os.environ.get("CF_ROWS", "200000")))
        client = connect()
        install_hooks(Steps(os.environ.get("CF_PAUSE", "")))
        say("start")
        ds = client.ingest(df, dataset_id, chunk_rows=int(os.environ.get("CF_CHUNK_ROWS", "5000")),
                           mode="resume", wait=True, progress=False,
                           workers=int(os.environ.get("CF_WORKERS", "2")))
        say(f"done {len(ds)}")
        return 0
    if mode == "ingest-files":
        client = connect()
        install_hooks(Steps(os.environ.get("CF_PAUSE", "")))
        say("start")
        ds = client.ingest(argv[3], argv[2], chunk_rows=int(os.environ.get("CF_CHUNK_ROWS", "5000")),
                           mode=argv[4] if len(argv) > 4 else "resume", wait=True, progress=False,
                           workers=int(os.environ.get("CF_WORKERS", "2")))
        say(f"done {len(ds)}")
        return 0
    if mode == "append":
        df = source_frame(int(os.environ.get("CF_ROWS", "200000")))
        df["id"] += int(argv[3])
        client = connect()
        install_hooks(Steps(os.environ.get("CF_PAUSE", "")))
        say("start")
        ds = client.open(argv[2]).append(
            df, chunk_rows=int(os.environ.get("CF_CHUNK_ROWS", "5000")), progress=False,
            wait=True, workers=int(os.environ.get("CF_WORKERS", "2")))
        say(f"done {len(ds)}")
        return 0
    if mode == "overwrite":
        df = changed_frame(int(os.environ.get("CF_ROWS", "200000")), int(argv[3]))
        client = connect()
        install_hooks(Steps(os.environ.get("CF_PAUSE", "")))
        say("start")
        ds = client.ingest(df, argv[2], chunk_rows=int(os.environ.get("CF_CHUNK_ROWS", "5000")),
                           mode="overwrite", wait=True, progress=False,
                           workers=int(os.environ.get("CF_WORKERS", "2")))
        say(f"done {len(ds)}")
        return 0
    if mode == "compact":
        client = connect()
        install_hooks(Steps(os.environ.get("CF_PAUSE", "")))
        say("start")
        ds = client.open(argv[2]).compact(progress=False, wait=True)
        say(f"done {ds.meta.chunks}")
        return 0
    if mode == "update":  # rows 0 and 500 get value 1e6; 10 new rows are appended
        client = connect()
        ds = client.open(argv[2])
        fix = ds.get_many([0, 500])
        fix["value"] = 1e6
        new = ds.slice(0, 10).assign(time=lambda f: f["time"] + pd.Timedelta(days=400))
        install_hooks(Steps(os.environ.get("CF_PAUSE", "")))
        say("start")
        done = ds.update(pd.concat([fix, new]).reset_index(drop=True), on=["time", "device"])
        say(f"done {done.version}")
        return 0
    if mode == "drop":
        client = connect()
        install_hooks(Steps(os.environ.get("CF_PAUSE", "")))
        say("start")
        done = client.drop(argv[2], force=True, wait=True)
        say(f"done {done.versions}")
        return 0
    if mode == "snapshot":
        client = connect()
        install_hooks(Steps(os.environ.get("CF_PAUSE", "")))
        say("start")
        info = client.snapshot(argv[2], datasets=argv[3:] or None, metadata={"by": "crash"})
        say(f"done {len(info.versions)}")
        return 0
    if mode == "hold-lock":
        client = connect()
        lock = client.state.lock(argv[2]).acquire()
        say(f"locked {lock.fence}")
        time.sleep(600)
        return 0
    if mode == "server-info":
        client = connect()
        say(f"pid {client.redis.info()['process_id']}")
        for dataset_id in argv[2:]:
            say(f"rows {dataset_id} {len(client.open(dataset_id))}")
        return 0
    raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
