"""The ingest lock (refusal, waiting, renewal, theft, expiry after kill -9), fencing, and
checkpoints that survive a Redis restart — against real redis-server processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis
from clock import fake_clock

import chunkframe as cf
from chunkframe.core.errors import BackendUnavailableError, DatasetLockedError, LockLostError
from chunkframe.core.keys import RedisKeys
from chunkframe.core.model import ChunkMeta
from chunkframe.storage import state as state_mod
from chunkframe.storage.state import DatasetLock

HERE = Path(__file__).parent


def frames(n: int, rows: int = 100, delay: float = 0.0, after: int | None = None,
           reached: threading.Event | None = None, start: int = 0) -> Iterator[pd.DataFrame]:
    """``n`` frames of ``rows`` rows, sleeping ``delay`` before each (a slow source); sets
    ``reached`` once ``after`` frames were handed out."""
    for i in range(n):
        if delay:
            time.sleep(delay)
        base = start + i * rows
        yield pd.DataFrame({"x": np.arange(base, base + rows), "y": np.arange(rows) * 0.5})
        if reached is not None and i + 1 == after:
            reached.set()


def _until_gone(redis_client, key: str) -> None:
    """Wait until Redis expires ``key`` (on its own clock, however busy this machine is)."""
    deadline = time.monotonic() + 60  # a bound against hangs, not a measurement
    while redis_client.exists(key):
        assert time.monotonic() < deadline, f"{key!r} never expired"
        time.sleep(0.01)


def expected(n: int, rows: int = 100) -> pd.DataFrame:
    return pd.concat(list(frames(n, rows)), ignore_index=True)


@pytest.fixture
def make_client(tmp_path, redis_server, prefix) -> Callable[..., cf.Client]:
    """More clients on the same store, catalog, Redis and prefix (other workers, in effect)."""

    def make(**options) -> cf.Client:
        options.setdefault("redis", redis_server.url)
        return cf.connect(store=tmp_path / "store", catalog=tmp_path / "catalog.db",
                          home=tmp_path, prefix=prefix, **options)

    return make


def dataset_keys(r: redis.Redis, prefix: str, dataset_id: str) -> list[str]:
    return sorted(k.decode() for k in r.scan_iter(match=f"{prefix}:{{{dataset_id}}}:*"))


# ---------------------------------------------------------------- refusal and waiting


def test_concurrent_ingest_refused_at_once_touching_nothing(make_client, redis_client, prefix,
                                                           monkeypatch):
    holder, other = make_client(), make_client()
    lock = holder.state.lock("busy").acquire()
    try:
        clock = fake_clock(monkeypatch, state_mod, name="mod_time")
        with pytest.raises(DatasetLockedError,
                           match=rf"'busy' is being ingested by process {os.getpid()} on "):
            other.ingest(expected(3), "busy", chunk_rows=50, progress=False)
        assert clock.slept == []  # refused at once: it never waited for the lock
        # the refused worker wrote nothing: only the holder's lock and fence counter exist
        keys = RedisKeys(prefix, "busy")
        assert dataset_keys(redis_client, prefix, "busy") == sorted([keys.lock, keys.fence])
        assert redis_client.get(keys.lock).decode() == lock.token
        assert list(other.store.list()) == []
        assert "busy" not in other.datasets()["id"].tolist()
    finally:
        lock.release()
    ds = other.ingest(expected(3), "busy", chunk_rows=50, progress=False)
    pd.testing.assert_frame_equal(ds.to_pandas(), expected(3))


_HOLD = """
import sys, time
import chunkframe as cf
client = cf.connect(store=sys.argv[1], redis=sys.argv[2], catalog=sys.argv[3], home=sys.argv[4],
                    prefix=sys.argv[5], lock_ttl=60)
lock = client.state.lock("held").acquire()
print("held", flush=True)
time.sleep(600)
"""


def test_a_lock_left_by_a_killed_process_is_taken_over_at_once(client, redis_client):
    s = client.settings
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(s.store_url), s.redis_url,
                             s.catalog, str(s.home), s.prefix],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with pytest.raises(DatasetLockedError, match=f"process {proc.pid} on"):
            client.state.lock("held").acquire()  # alive: refused, naming it
    finally:
        proc.kill()  # kill -9: no release
        proc.wait()
    keys = client.state.keys("held")
    assert redis_client.pttl(keys.lock) > 50_000  # its 60 s lock is still there...
    lock = client.state.lock("held").acquire()  # ...and known dead: taken over now
    assert lock.fence == 2  # (without waiting: acquire() waits for nothing, or raises)
    lock.release()


def test_a_lock_of_another_host_is_never_guessed_dead(client, redis_client):
    keys = client.state.keys("far")
    redis_client.set(keys.lock, "0" * 32 + "|another-host|1|1", px=30_000)
    with pytest.raises(DatasetLockedError, match="process 1 on another-host"):
        client.state.lock("far").acquire()
    # same host name, another process id namespace (a container): its pids are not ours
    here = socket.gethostname()
    redis_client.set(keys.lock, f"{'0' * 32}|{here}|999999|1|pid:[1]", px=30_000)
    with pytest.raises(DatasetLockedError, match=f"process 999999 on {here}"):
        client.state.lock("far").acquire()
    redis_client.set(keys.lock, "not a holder we know", px=30_000)  # an older writer's token
    with pytest.raises(DatasetLockedError, match="by another worker"):
        client.state.lock("far").acquire()


def test_a_writer_paused_past_its_ttl_writes_nothing_more(make_client):
    """Renewal cannot run while a process is stopped (SIGSTOP, a VM pause): on waking, the
    first check asks Redis before any further write, whatever the renewal thread knows."""
    a, b = make_client(), make_client()
    lock = DatasetLock(a.redis, a.state.keys("paused"), "paused", ttl=0.6).acquire()
    lock._stop.set()  # the renewal thread stops, as when the process is paused
    lock._thread.join()
    _until_gone(a.redis, lock.keys.lock)  # the lock expires in Redis...
    taker = b.state.lock("paused").acquire()  # ...and another worker takes it
    try:
        with pytest.raises(LockLostError, match="'paused'"):
            lock.check()
    finally:
        taker.release()


def test_lock_is_exclusive_and_release_only_frees_own_lock(client, redis_client):
    a = client.state.lock("ex").acquire()
    b = client.state.lock("ex")
    with pytest.raises(DatasetLockedError):
        b.acquire()
    b.release()  # not b's lock: must not free it
    assert redis_client.get(a.keys.lock).decode() == a.token
    a.release()
    assert redis_client.get(a.keys.lock) is None
    assert b.acquire().fence == a.fence + 1  # fencing tokens only grow
    b.release()


def test_wait_blocks_until_the_lock_is_released(make_client, monkeypatch):
    holder, waiter = make_client(), make_client()
    lock = holder.state.lock("queued").acquire()
    released, refused = threading.Event(), threading.Event()
    acquire = state_mod.DatasetLock.do_acquire

    def watched(self: state_mod.DatasetLock) -> int:
        fence = acquire(self)
        if not fence:
            refused.set()  # the waiter found the lock held: it is waiting now
        return fence

    monkeypatch.setattr(state_mod.DatasetLock, "do_acquire", watched)

    def release_later():
        assert refused.wait(60), "the waiter never tried the lock"  # a bound against hangs
        released.set()
        lock.release()

    threading.Thread(target=release_later, daemon=True).start()
    ds = waiter.ingest(expected(2), "queued", chunk_rows=64, wait=10, progress=False)
    assert released.is_set(), "ingest ran while another worker held the lock"
    pd.testing.assert_frame_equal(ds.to_pandas(), expected(2))


def test_wait_with_a_deadline_gives_up(make_client, monkeypatch):
    holder, waiter = make_client(), make_client()
    lock = holder.state.lock("stuck").acquire()
    try:
        clock = fake_clock(monkeypatch, state_mod, name="mod_time")  # its sleeps cost nothing
        with pytest.raises(DatasetLockedError, match="stuck"):
            waiter.ingest(expected(1), "stuck", wait=0.4, progress=False)
        assert clock.slept and max(clock.slept) <= 0.1  # it polled...
        assert 0.4 <= sum(clock.slept) <= 0.5 + 1e-9  # ...until the deadline, one poll more at most
    finally:
        lock.release()


# ---------------------------------------------------------------- renewal, theft, expiry


def test_ingest_longer_than_three_ttls_keeps_its_lock(make_client, redis_client, prefix,
                                                      monkeypatch):
    ttl = 1.0  # renewed every ttl / 3: a renewal may come 2/3 s late on a busy machine
    client = make_client(lock_ttl=ttl)
    renewals: list[float] = []
    extend = DatasetLock.do_extend

    def counted(self: DatasetLock) -> bool:
        ok = extend(self)
        if ok:
            renewals.append(time.monotonic())
        return ok

    monkeypatch.setattr(DatasetLock, "do_extend", counted)

    def slow_frames() -> Iterator[pd.DataFrame]:
        # frame i waits for the i-th renewal, at least ttl / 3 after the one before: the
        # ingest outlives three TTLs however fast or slow the machine
        for i, frame in enumerate(frames(12)):
            deadline = time.monotonic() + 60  # a bound against hangs
            while len(renewals) < i:
                assert time.monotonic() < deadline, f"the lock was renewed {len(renewals)} times"
                time.sleep(0.01)
            yield frame

    t0 = time.monotonic()
    ds = client.ingest(slow_frames(), "long", chunk_rows=100, progress=False)
    assert len(renewals) >= 11 and time.monotonic() - t0 > 3 * ttl
    pd.testing.assert_frame_equal(ds.to_pandas(), expected(12))
    keys = RedisKeys(prefix, "long")
    assert int(redis_client.get(keys.fence)) == 1  # taken once, never lost and retaken
    assert redis_client.get(keys.lock) is None  # released at the end


@pytest.mark.parametrize("theft", ["overwrite", "delete"])
def test_stolen_lock_stops_the_worker_and_its_writes(make_client, redis_client, prefix, theft):
    client = make_client(lock_ttl=0.6)
    keys = RedisKeys(prefix, "stolen")
    reached = threading.Event()
    at_theft: dict[str, int] = {}

    def thief():
        assert reached.wait(20)
        gen = int(redis_client.hget(keys.ingest, "generation"))
        deadline = time.monotonic() + 10  # let a few checkpoints land first
        while redis_client.hlen(keys.chunks(gen)) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        pipe = redis_client.pipeline(transaction=True)  # steal and count in one atomic step
        if theft == "overwrite":
            pipe.set(keys.lock, "thief", px=60_000)
        else:
            pipe.delete(keys.lock)
        pipe.hlen(keys.chunks(gen))
        pipe.hget(keys.ingest, "done")
        _, at_theft["chunks"], done = pipe.execute()
        at_theft["done"], at_theft["gen"] = int(done), gen

    t = threading.Thread(target=thief)
    t.start()
    with pytest.raises(LockLostError, match="lost the ingest lock of dataset 'stolen'"):
        client.ingest(frames(200, delay=0.02, after=5, reached=reached), "stolen",
                      chunk_rows=100, progress=False)
    t.join()
    assert at_theft["chunks"] >= 2
    # nothing was checkpointed after the theft, and the status was not touched
    assert redis_client.hlen(keys.chunks(at_theft["gen"])) == at_theft["chunks"]
    assert int(redis_client.hget(keys.ingest, "done")) == at_theft["done"]
    # the loser did not release (delete) a lock that is not its own
    if theft == "overwrite":
        assert redis_client.get(keys.lock) == b"thief"
    assert "stolen" not in client.datasets()["id"].tolist()


def test_renewal_loss_is_reported_by_check(client, redis_client):
    client.state.lock_ttl = 0.3
    lock = client.state.lock("renew").acquire()
    try:
        redis_client.set(lock.keys.lock, "someone-else")
        deadline = time.monotonic() + 5
        while not lock._lost.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(LockLostError):
            lock.check()
    finally:
        lock.release()
    assert redis_client.get(lock.keys.lock) == b"someone-else"


def test_lock_of_a_killed_worker_frees_itself_within_its_ttl(tmp_path, redis_server,
                                                              redis_client, prefix):
    ttl = 1.0
    env = dict(os.environ, CF_REDIS=redis_server.url, CF_PREFIX=prefix, CF_LOCK_TTL=str(ttl),
               CF_STORE=str(tmp_path / "store"), CF_CATALOG=str(tmp_path / "catalog.db"),
               CF_HOME=str(tmp_path))
    proc = subprocess.Popen([sys.executable, str(HERE / "crash_worker.py"), "hold-lock", "dead"],
                            stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline().startswith("locked ")
        client = cf.connect(store=tmp_path / "store", redis=redis_server.url,
                            catalog=tmp_path / "catalog.db", home=tmp_path, prefix=prefix)
        # alive, it renews: its TTL is seen to go up again (a renewal), and it stays held
        key = RedisKeys(prefix, "dead").lock
        first = redis_client.pttl(key)
        deadline = time.monotonic() + 60  # a bound against hangs, not a measurement
        while redis_client.pttl(key) <= first:
            assert time.monotonic() < deadline, "the holder never renewed its lock"
            time.sleep(0.01)
        with pytest.raises(DatasetLockedError):
            client.state.lock("dead").acquire()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    # nobody released it, and Redis lets it expire within its TTL whatever this machine's speed
    assert 0 < redis_client.pttl(RedisKeys(prefix, "dead").lock) <= ttl * 1000
    lock = client.state.lock("dead").acquire(wait=60)  # a bound against hangs
    lock.release()


# ---------------------------------------------------------------- fencing


def test_checkpoint_script_rejects_stale_token_and_stale_fence(client, redis_client):
    state = client.state
    keys = state.keys("fenced")
    meta = ChunkMeta(0, 0, 10, "fenced/g000001/c00000000.arrow", "crc32c:00000000", 10)

    old = state.lock("fenced").acquire()
    state.begin_ingest(old, {"generation": 1})
    state.checkpoint(old, 1, meta)
    assert redis_client.hget(keys.ingest, "fence") == str(old.fence).encode()
    old._stop.set()  # the old worker stalls (a GC pause): its lock expires
    redis_client.delete(keys.lock)

    new = state.lock("fenced").acquire()
    assert new.fence == old.fence + 1
    state.checkpoint(new, 1, ChunkMeta(1, 10, 10, "k1", "crc32c:00000001", 10))

    # the old worker wakes up: its token is rejected by the script itself
    with pytest.raises(LockLostError):
        state.checkpoint(old, 1, ChunkMeta(2, 20, 10, "k2", "crc32c:00000002", 10))
    # a writer holding the current token but a stale fencing token is rejected too
    with pytest.raises(redis.ResponseError, match="LOCKLOST"):
        state._checkpoint(keys=[keys.lock, keys.ingest, keys.chunks(1)],
                          args=[new.token, old.fence, 3, "{}"])
    assert sorted(int(k) for k in redis_client.hkeys(keys.chunks(1))) == [0, 1]
    assert redis_client.hget(keys.ingest, "fence") == str(new.fence).encode()
    with pytest.raises(LockLostError):  # the other fenced writes check the token too
        state.begin_ingest(old, {"generation": 2})
    assert redis_client.hget(keys.ingest, "generation") == b"1"
    new.release()
    old.release()


# ---------------------------------------------------------------- Redis stopped mid-ingest


def test_redis_stopped_mid_ingest_then_resumed(tmp_path, own_redis):
    def connect():
        return cf.connect(store=tmp_path / "store", redis=own_redis.url,
                          catalog=tmp_path / "catalog.db", home=tmp_path, prefix="own",
                          lock_ttl=2)

    client = connect()
    reached = threading.Event()

    def stop_redis():
        assert reached.wait(20)
        own_redis.stop()

    t = threading.Thread(target=stop_redis)
    t.start()
    with pytest.raises(BackendUnavailableError) as info:
        client.ingest(frames(60, delay=0.01, after=20, reached=reached), "outage",
                      chunk_rows=100, progress=False, fingerprint="frames-60")
    t.join()
    assert own_redis.url in str(info.value) and "mode='resume'" in str(info.value)
    assert isinstance(info.value.__cause__, redis.RedisError)

    own_redis.start()  # same directory: the AOF brings the checkpoints back
    keys = RedisKeys("own", "outage")
    r = own_redis.client()
    gen = int(r.hget(keys.ingest, "generation"))
    kept = r.hlen(keys.chunks(gen))
    assert kept >= 10
    client = connect()
    written: list[str] = []
    write = client.store.write
    client.store.write = lambda key, fill: (written.append(key), write(key, fill))[1]
    # the dead run's lock lingers until its TTL: wait for it
    ds = client.ingest(frames(60), "outage", chunk_rows=100, mode="resume", wait=10,
                       progress=False, fingerprint="frames-60")  # a generator: named
    pd.testing.assert_frame_equal(ds.to_pandas(), expected(60))
    assert len(written) == 60 - kept  # checkpointed chunks were not written again
    assert ds.chunks["start"].tolist() == list(range(0, 6000, 100))


def test_unreachable_redis_is_named(tmp_path):
    with pytest.raises(BackendUnavailableError, match=r"redis://127\.0\.0\.1:1"):
        cf.connect(store=tmp_path / "s", redis="redis://127.0.0.1:1",
                   catalog=tmp_path / "c.db", home=tmp_path)


def test_catalog_refuses_writes_from_a_superseded_lock(client):
    """A worker whose lock expired and was taken over cannot commit, however late it wakes."""
    ds = client.ingest(pd.DataFrame({"x": range(10)}), "late", chunk_rows=4, progress=False)
    meta = client.catalog.get("late")
    chunks = client.catalog.chunks("late", meta.generation)
    stale = client.lock("late")
    client.redis.delete(client.state.keys("late").lock)  # its lock expired...
    fresh = client.lock("late")  # ...and another worker took it
    with pytest.raises(LockLostError, match="superseded"):
        client.catalog.commit(meta.evolve(rows=999), chunks, stale.fence)
    with pytest.raises(LockLostError):
        client.catalog.set_tombstones("late", (), meta.version + 1, stale.fence)
    assert client.catalog.get("late").rows == 10
    client.catalog.commit(meta.evolve(version=meta.version + 1), chunks, fresh.fence)  # the owner can
    with pytest.raises(LockLostError):  # and the stale worker cannot claim its way back
        client.catalog.claim("late", stale.fence)
    fresh.release()
    stale.release()
    assert len(ds) == 10


def test_chunk_keys_carry_the_fencing_token(client):
    from chunkframe.core.keys import chunk_key

    assert chunk_key("d", 3, 7, 12) == "d/g000003/c00000007-f12.arrow"
    assert chunk_key("d", 3, 7, 12) != chunk_key("d", 3, 7, 13)  # a late writer writes elsewhere


def test_a_borrowed_lock_checks_without_extending(make_client) -> None:
    """A Dask task's view of the coordinator's lock asks Redis whether it is still held but
    never extends it: a dead coordinator's lock must expire on time."""
    client = make_client(lock_ttl=2.0)
    holder = client.lock("borrowed")
    borrowed = client.backends.state.borrow("borrowed", holder.token, holder.fence)
    assert borrowed.held()
    holder._stop.set()  # the coordinator stops renewing, as if it were killed
    holder._thread.join()
    assert holder.do_extend()  # a known full TTL from now
    while client.redis.pttl(holder.keys.lock) > 1_800:  # some of it gone, so an extension
        time.sleep(0.01)                                # would show
    ttl_before = client.redis.pttl(holder.keys.lock)
    borrowed.check()  # never asked before: asks Redis, which says it is still held
    assert 0 < client.redis.pttl(holder.keys.lock) <= ttl_before  # and it was not extended
    _until_gone(client.redis, holder.keys.lock)  # expired: the borrower's last answer is
    with pytest.raises(LockLostError, match="'borrowed'"):  # older than ttl / 2 by then
        borrowed.check()
    assert not borrowed.held()
