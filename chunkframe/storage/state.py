"""Redis state: the self-renewing, fenced ingest lock, checkpoints, and hot dataset metadata."""

from __future__ import annotations

import itertools
import os
import socket
import threading
import time as mod_time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard
from urllib.parse import unquote, urlsplit

import redis
from redis.cluster import ClusterNode
from redis.exceptions import ClusterDownError, RedisClusterException, SlotNotCoveredError

from ..core.config import redact
from ..core.errors import (
    Arg,
    BackendUnavailableError,
    DatasetLockedError,
    Hint,
    LockLostError,
    StateCorruptionError,
)
from ..core.keys import RedisKeys
from ..core.model import ChunkMeta, DatasetMeta, ManifestRef
from ..core.permissions import OWNER_ONLY, Modes
from ..core.retry import retry_until

__all__ = ["connect_redis", "transient_redis_error", "connect_cluster", "is_cluster",
           "scan_keys", "pipelined", "CLUSTER_SCHEMES", "redis_url_of", "DatasetLock", "Holder",
           "State", "Head"]


def redis_url_of(client: redis.Redis) -> str:
    """The URL ``client`` talks to (no password), for error messages."""
    if is_cluster(client):
        nodes = ",".join(f"{n.host}:{n.port}" for n in client.get_primaries())
        return f"redis+cluster://{nodes}"
    kw = client.connection_pool.connection_kwargs
    if kw.get("path"):
        return f"unix://{kw['path']}"
    return f"redis://{kw.get('host', 'localhost')}:{kw.get('port', 6379)}/{kw.get('db', 0)}"


def connect_redis(url: str | None, home: Path, modes: Modes = OWNER_ONLY) -> redis.Redis:
    """A client for ``url``, or for the embedded server of ``home`` when ``url`` is None
    (its files created with ``modes``)."""
    if url is None:
        from .embedded import ensure_server

        url = ensure_server(home, modes=modes)
    if urlsplit(url).scheme in CLUSTER_SCHEMES:
        return connect_cluster(url)
    try:
        # a socket timeout: a hung server becomes an error, never a reader blocked forever
        client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=30,
                                      health_check_interval=30)
        client.ping()
    except (redis.ConnectionError, redis.TimeoutError, OSError, ValueError) as exc:
        raise BackendUnavailableError(
            f"cannot reach Redis at {redact(url)!r}: {exc}. Start that server, fix "
            "CHUNKFRAME_REDIS_URL, or unset it to use the embedded default"
        ) from exc
    return client


#: URL schemes of a Redis Cluster: the startup nodes are ``host:port`` pairs split by commas
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")


#: replies of a server that will answer again soon: loading its data, a failover under way
_TRANSIENT_REPLIES = ("LOADING", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "READONLY")


def transient_redis_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a fault Redis heals by itself (a refused or dropped connection, a
    timeout, a cluster failing over), worth retrying, rather than a misuse or a lost lock."""
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        return True
    return isinstance(exc, redis.ResponseError) and str(exc).startswith(_TRANSIENT_REPLIES)


def is_cluster(client: Any) -> TypeGuard[redis.RedisCluster]:
    """Whether ``client`` is a :class:`redis.RedisCluster` (whose scripts, transactions and
    pipelines must each stay within one hash slot)."""
    return isinstance(client, redis.RedisCluster)


def scan_keys(client: redis.Redis, match: str) -> Iterator[Any]:
    """Every key matching ``match`` (SCAN, 1,000 at a time); on a cluster, of every primary."""
    if is_cluster(client):
        return client.scan_iter(match=match, count=1000,
                                target_nodes=redis.RedisCluster.PRIMARIES)
    return client.scan_iter(match=match, count=1000)


def pipelined(client: redis.Redis, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
    """Answers to ``commands`` (each ``(name, key, *args)``, no two needing to be atomic),
    in order, sent in pipelines: one on a single server; on a cluster, a plain pipeline per
    node holding any of the keys (redis-py's ``ClusterPipeline`` routes each command
    itself, ~4x slower on thousands of them). A command answered with an error (MOVED or
    ASK while the cluster reshards) is run again through the cluster client, which follows
    the redirection or raises."""
    if not commands:
        return []
    if not is_cluster(client):
        pipe = client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        return pipe.execute()
    by_slot: dict[int, Any] = {}
    groups: dict[str, tuple[Any, list[int]]] = {}
    for i, command in enumerate(commands):
        slot = client.keyslot(command[1])
        node = by_slot.get(slot)
        if node is None:
            with _cluster_down():
                node = by_slot[slot] = client.nodes_manager.get_node_from_slot(slot)
        groups.setdefault(node.name, (node, []))[1].append(i)
    out: list[Any] = [None] * len(commands)
    for node, indices in groups.values():
        pipe = node.redis_connection.pipeline(transaction=False)
        for i in indices:
            pipe.execute_command(*commands[i])
        for i, answer in zip(indices, pipe.execute(raise_on_error=False), strict=True):
            out[i] = (client.execute_command(*commands[i])
                      if isinstance(answer, redis.ResponseError) else answer)
    return out


@contextmanager
def _cluster_down() -> Iterator[None]:
    """Raise a cluster's failure to be reached as :class:`redis.ConnectionError`."""
    try:
        yield
    except (SlotNotCoveredError, ClusterDownError) as exc:
        raise redis.ConnectionError(f"the Redis Cluster is not whole: {exc}") from exc
    except RedisClusterException as exc:
        if "cannot be connected" not in str(exc):
            raise  # a misuse (cross-slot keys...), not an outage
        raise redis.ConnectionError(str(exc)) from exc


class _Cluster(redis.RedisCluster):
    """A :class:`redis.RedisCluster` whose outages are :class:`redis.ConnectionError`, as a
    single server's are. redis-py raises ``RedisClusterException`` (not a ``RedisError``)
    when no node answers and ``ClusterDownError`` (a ``ResponseError``) when slots are not
    served; chunkframe's handlers of a Redis that went away (the lock's renewal, the
    reader's fallback to the catalog, the service's 503) catch connection errors."""

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        with _cluster_down():
            return super().execute_command(*args, **kwargs)

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> Any:
        pipe = super().pipeline(transaction, shard_hint)
        run = pipe.execute

        def execute(raise_on_error: bool = True) -> list[Any]:
            with _cluster_down():
                return run(raise_on_error)

        pipe.execute = execute  # type: ignore[method-assign]
        return pipe


def connect_cluster(url: str) -> redis.Redis:
    """A :class:`redis.RedisCluster` client for ``redis+cluster://[user:password@]host:port
    [,host:port...]`` (``rediss+cluster://`` for TLS), checked to cover every slot.

    The hosts are startup nodes: any of them may be down as long as one answers and the
    cluster it describes is whole. An unreachable or partly covered cluster raises
    :class:`BackendUnavailableError` naming the URL (password redacted).
    """
    parts = urlsplit(url)
    shown = redact(url)
    fix = ("Check that the cluster's masters run and cover all 16384 slots "
           "(CLUSTER INFO says cluster_state:ok), fix CHUNKFRAME_REDIS_URL / redis=, or unset "
           "it to use the embedded default")
    hosts = parts.netloc.rpartition("@")[2]
    try:
        nodes = [ClusterNode(h, int(p)) for h, _, p in
                 (n.strip().rpartition(":") for n in hosts.split(",")) if h]
        if not nodes or len(nodes) != len(hosts.split(",")):
            raise ValueError("give every startup node as host:port")
        if parts.path.strip("/") not in ("", "0") or parts.query:
            raise ValueError("a cluster has only database 0 and takes no query options")
    except ValueError as exc:
        raise BackendUnavailableError(
            f"cannot read the Redis Cluster URL {shown!r}: {exc}; write it as "
            "redis+cluster://[user:password@]host:port[,host:port...]") from exc
    try:
        client = _Cluster(
            startup_nodes=nodes, username=unquote(parts.username or "") or None,
            password=unquote(parts.password) if parts.password else None,
            ssl=parts.scheme == "rediss+cluster", socket_connect_timeout=5, socket_timeout=30,
            health_check_interval=30)
        info = client.cluster_info()
        if info.get("cluster_state") != "ok":
            client.close()
            raise redis.ConnectionError(
                f"cluster_state is {info.get('cluster_state')!r} with "
                f"{info.get('cluster_slots_ok')} of 16384 slots ok")
        client.ping(target_nodes=redis.RedisCluster.PRIMARIES)
    except (redis.RedisError, RedisClusterException, OSError) as exc:
        raise BackendUnavailableError(
            f"cannot use the Redis Cluster at {shown!r}: {str(exc).rstrip('.')}. {fix}") from exc
    return client  # type: ignore[return-value]  # the commands chunkframe uses, slot by slot


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: host, process id namespace, process id and the process's start
    time, written into the lock's value, so a lock left by a process killed on this host
    is known dead at once."""

    host: str
    pid: int
    started: str  # the kernel's start time of the process ("" where unknown)
    pidns: str = ""  # the process id namespace ("" where unknown: never judged dead)

    @classmethod
    def me(cls) -> Holder:
        return cls(socket.gethostname(), os.getpid(), _process_start(os.getpid()), _pid_ns())

    def token(self) -> str:
        return f"{uuid.uuid4().hex}|{self.host}|{self.pid}|{self.started}|{self.pidns}"

    @classmethod
    def parse(cls, value: bytes | str | None) -> Holder | None:
        """The holder a lock value names, or None (a value without one, or unreadable)."""
        if value is None:
            return None
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        parts = text.split("|")
        if len(parts) not in (4, 5) or not parts[2].isdigit():
            return None
        return cls(parts[1], int(parts[2]), parts[3], parts[4] if len(parts) == 5 else "")

    def is_dead(self) -> bool:
        """True only when provably dead: on this host and in this process id namespace
        (containers sharing a host name need not share process ids), and no process of
        that id (or one started at another time: the id was reused) exists. Elsewhere, or
        when the namespace is unknown: never guessed."""
        if self.host != socket.gethostname() or not self.pidns or self.pidns != _pid_ns():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass  # alive, another user's
        now = _process_start(self.pid)
        return bool(self.started and now and now != self.started)


def _pid_ns() -> str:
    """This process's process id namespace (Linux: ``pid:[4026531836]``), else ""."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _process_start(pid: int) -> str:
    """Process ``pid``'s start time in clock ticks since boot (Linux), else ""."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except OSError:
        return ""
    fields = stat[stat.rfind(")") + 2:].split()  # after the command name, which may hold spaces
    return fields[19] if len(fields) > 19 else ""


#: tokens of locks this process let go of while Redis could not be told (an outage):
#: provably free, so this process's next acquire takes them over at once
_UNRELEASED: set[bytes] = set()


class DatasetLock:
    """A dataset's ingest lock: SET NX PX with a random token, renewed in the background.

    Taking it also takes a fencing token from a counter that only grows; every checkpoint
    script checks both, so a worker whose lock expired can never write again. Shaped after
    redis-py's ``Lock``: Lua scripts as class constants, ``do_*`` methods talk to Redis.
    """

    # KEYS[1] lock, KEYS[2] fence counter; ARGV[1] token, ARGV[2] ttl ms
    # returns the new fencing token, or 0 if the lock is held by someone else
    LUA_ACQUIRE = """
    if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
        return redis.call('incr', KEYS[2])
    end
    return 0
    """
    # KEYS[1] lock; ARGV[1] token, ARGV[2] ttl ms; returns 1 if extended, 0 if not ours
    LUA_EXTEND = """
    if redis.call('get', KEYS[1]) == ARGV[1] then
        return redis.call('pexpire', KEYS[1], ARGV[2])
    end
    return 0
    """
    # KEYS[1] lock; ARGV[1] token; returns 1 if released, 0 if not ours (also: breaking the
    # lock of a holder found dead, by the value it was seen to hold)
    LUA_RELEASE = """
    if redis.call('get', KEYS[1]) == ARGV[1] then
        return redis.call('del', KEYS[1])
    end
    return 0
    """

    def __init__(self, client: redis.Redis, keys: RedisKeys, dataset_id: str, ttl: float):
        self.client, self.keys, self.dataset_id, self.ttl = client, keys, dataset_id, ttl
        self.token = Holder.me().token()  # random, and says who holds the lock
        self.fence = 0
        self._renewed = 0.0  # monotonic time the lock was last taken or extended
        self._borrowed = False  # another process holds it and renews it (a Dask task's view)
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._acquire = client.register_script(self.LUA_ACQUIRE)
        self._extend = client.register_script(self.LUA_EXTEND)
        self._release = client.register_script(self.LUA_RELEASE)

    @classmethod
    def borrowed(cls, client: redis.Redis, keys: RedisKeys, dataset_id: str, ttl: float,
                 token: str, fence: int) -> DatasetLock:
        """The lock another process (an ingest's coordinator) holds, as a Dask task writing
        under it sees it: the same owner and fencing tokens, so every checkpoint is fenced as
        the holder's own. Not renewed nor released here; :meth:`check` asks Redis once the
        last answer is ``ttl / 2`` old."""
        lock = cls(client, keys, dataset_id, ttl)
        lock.token, lock.fence, lock._borrowed = token, fence, True
        return lock

    # -- public API: local state first, then Redis -------------------------------------
    def acquire(self, wait: bool | float = False) -> DatasetLock:
        """Take the lock or raise :class:`DatasetLockedError`; ``wait`` (seconds or True) polls."""
        deadline = None if wait is True else mod_time.monotonic() + float(wait or 0)
        while True:
            fence = self.do_acquire()
            if fence:
                self.fence = fence
                self._renewed = mod_time.monotonic()
                self._lost.clear()
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._renew_loop, name=f"cf-lock-{self.dataset_id}", daemon=True
                )
                self._thread.start()
                return self
            seen = self.client.get(self.keys.lock)
            holder = Holder.parse(seen)
            if seen is not None and (seen in _UNRELEASED
                                     or (holder is not None and holder.is_dead())):
                # killed without releasing it, or let go by this process while Redis was
                # away: take it over now rather than after its TTL (fencing keeps this safe
                # even if the guess were wrong)
                self._release(keys=[self.keys.lock], args=[seen])
                _UNRELEASED.discard(seen)
                continue
            if deadline is not None and mod_time.monotonic() >= deadline:
                pttl = self.client.pttl(self.keys.lock)
                who = f"process {holder.pid} on {holder.host}" if holder else "another worker"
                raise DatasetLockedError(
                    f"dataset {self.dataset_id!r} is being ingested by {who} "
                    f"(its lock expires in {max(pttl, 0) / 1000:.1f}s unless renewed)",
                    hint=Hint("wait for it to finish, pass {}, or run {} after it stops",
                              Arg("wait", True), Arg("mode", "resume")),
                )
            mod_time.sleep(min(0.1, self.ttl / 10))

    def provable(self) -> bool:
        """Whether the lock may still be ours (:meth:`check` would not raise)."""
        try:
            self.check()
        except LockLostError:
            return False
        return True

    def check(self) -> None:
        """Raise :class:`LockLostError` if the lock is gone or stolen: as renewal found it,
        or, when renewal is overdue (this process was paused or starved), as Redis says
        now, so a writer that slept past its TTL writes nothing more."""
        if not self._lost.is_set() and mod_time.monotonic() - self._renewed > self.ttl / 2:
            try:
                if self.do_extend() if not self._borrowed else self.held():
                    self._renewed = mod_time.monotonic()
                else:
                    self._lost.set()
            except redis.RedisError:
                if mod_time.monotonic() - self._renewed >= self.ttl:
                    self._lost.set()  # cannot prove we still hold it: assume not
        if self._lost.is_set():
            raise LockLostError(
                f"lost the ingest lock of dataset {self.dataset_id!r} (it expired or another "
                "worker took it); this worker stopped writing",
                hint=Hint("run the ingest again with {} to continue from the last checkpoint",
                          Arg("mode", "resume")),
            )

    def release(self) -> None:
        """Stop renewing and delete the lock if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.ttl)
            self._thread = None
        try:
            self._release(keys=[self.keys.lock], args=[self.token])
        except redis.RedisError:  # it frees itself within its TTL; this process's next
            _UNRELEASED.add(self.token.encode())  # acquire need not wait for that

    def __enter__(self) -> DatasetLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()

    # -- Redis ----------------------------------------------------------------------------
    def do_acquire(self) -> int:
        try:
            return int(self._acquire(
                keys=[self.keys.lock, self.keys.fence], args=[self.token, int(self.ttl * 1000)]
            ))
        except redis.RedisError as exc:
            raise BackendUnavailableError(
                f"cannot take the lock of {self.dataset_id!r} in Redis at "
                f"{redis_url_of(self.client)!r}: {exc}"
            ) from exc

    def held(self) -> bool:
        """Whether Redis says the lock is held with this token now (nothing is extended:
        a borrower must not keep a dead holder's lock alive)."""
        return self.client.get(self.keys.lock) == self.token.encode()

    def do_extend(self) -> bool:
        return bool(self._extend(keys=[self.keys.lock], args=[self.token, int(self.ttl * 1000)]))

    def _renew_loop(self) -> None:
        interval = self.ttl / 3
        last_ok = mod_time.monotonic()
        while not self._stop.wait(interval):
            try:
                if not self.do_extend():
                    self._lost.set()
                    return
                last_ok = self._renewed = mod_time.monotonic()
            except redis.RedisError:
                if mod_time.monotonic() - last_ok >= self.ttl:
                    self._lost.set()  # cannot prove we still hold it: assume not
                    return


@dataclass(frozen=True)
class Head:
    """A dataset's committed state as Redis holds it, read in one step: its metadata, the
    checkpoint of its chunk table, and the chunk entries asked for after it (by number;
    None where Redis lacks one)."""

    meta: DatasetMeta
    manifest: ManifestRef | None
    first: int  # the number of the first entry in ``tail``
    tail: list[ChunkMeta | None]


def _manifest_fields(ref: ManifestRef | None, tail_from: int | None = None) -> list[Any]:
    """The meta hash's fields pointing at a generation's checkpoint (``null``: none), and
    the first chunk whose entry Redis holds (by default, the checkpoint's end)."""
    chunks = 0 if ref is None else ref.chunks
    return ["manifest", "null" if ref is None else ref.to_json(), "manifest_chunks", chunks,
            "tail_from", chunks if tail_from is None else tail_from]


class State:
    """Checkpoints and hot metadata of datasets in Redis; every ingest write is fenced.

    Per dataset: the meta hash (the committed version, and a pointer to the latest
    checkpoint of its chunk table, ``storage.manifest``) and, per generation, a hash of the
    chunk entries after that checkpoint (and of an ingest under way): Redis holds the hot
    pointer and the recent entries, never the whole history.
    """

    # KEYS[1] lock, KEYS[2] ingest status, KEYS[3] chunks of the generation
    # ARGV[1] token, ARGV[2] fence, ARGV[3..] chunk number, chunk metadata JSON, ...
    # returns 1, or an error reply 'LOCKLOST' if the caller no longer owns the lock
    LUA_CHECKPOINT = """
    if redis.call('get', KEYS[1]) ~= ARGV[1] then
        return redis.error_reply('LOCKLOST')
    end
    local fence = tonumber(redis.call('hget', KEYS[2], 'fence') or '0')
    if fence > tonumber(ARGV[2]) then
        return redis.error_reply('LOCKLOST')
    end
    redis.call('hset', KEYS[3], unpack(ARGV, 3))
    redis.call('hset', KEYS[2], 'fence', ARGV[2], 'done', redis.call('hlen', KEYS[3]))
    return 1
    """
    # KEYS[1] lock, KEYS[2] a hash to replace whole; ARGV[1] token, ARGV[2..] field, value...
    LUA_FENCED_HSET = """
    if redis.call('get', KEYS[1]) ~= ARGV[1] then
        return redis.error_reply('LOCKLOST')
    end
    redis.call('del', KEYS[2])
    if #ARGV > 1 then
        redis.call('hset', KEYS[2], unpack(ARGV, 2))
    end
    return 1
    """
    # KEYS[1] lock, KEYS[2] ingest status, KEYS[3] meta, KEYS[4] old chunks (or the same as 5)
    # KEYS[5] new chunks; ARGV[1] token, ARGV[2] entries below this number are checkpointed
    # (dropped from KEYS[5]), ARGV[3..] meta field, value...
    LUA_PUBLISH = """
    if redis.call('get', KEYS[1]) ~= ARGV[1] then
        return redis.error_reply('LOCKLOST')
    end
    redis.call('del', KEYS[3])
    redis.call('hset', KEYS[3], unpack(ARGV, 3))
    redis.call('del', KEYS[2])
    if KEYS[4] ~= KEYS[5] then redis.call('del', KEYS[4]) end
    local below = tonumber(ARGV[2])
    if below > 0 then
        for _, n in ipairs(redis.call('hkeys', KEYS[5])) do
            if tonumber(n) < below then redis.call('hdel', KEYS[5], n) end
        end
    end
    return 1
    """

    # KEYS[1] meta, KEYS[2] chunk entries of generation ARGV[1]; ARGV[2] the first entry
    # wanted. Returns {meta as field, value, ..., {n, entry, n, entry, ...}}: the entries
    # from ARGV[2] if Redis still holds it (else from the checkpoint's end) to the dataset's
    # end (false where missing), read in the same step as the metadata; none when the
    # generation is not ARGV[1]
    LUA_HEAD = """
    local meta = redis.call('hgetall', KEYS[1])
    local tail = {}
    if #meta == 0 or redis.call('hget', KEYS[1], 'generation') ~= ARGV[1] then
        return {meta, tail}
    end
    local last = tonumber(redis.call('hget', KEYS[1], 'chunks')) or 0
    local since = tonumber(ARGV[2])
    local checkpointed = tonumber(redis.call('hget', KEYS[1], 'manifest_chunks') or '0') or 0
    local held = tonumber(redis.call('hget', KEYS[1], 'tail_from') or '0') or 0
    local from = math.max(since, checkpointed)
    if since >= held then from = since end
    for n = from, last - 1 do
        tail[#tail + 1] = n
        tail[#tail + 1] = redis.call('hget', KEYS[2], n) or false
    end
    return {meta, tail}
    """

    # KEYS[1] lock, KEYS[2] ingest status, KEYS[3] chunks of the generation, KEYS[4] fence
    # counter, KEYS[5] meta; ARGV[1] token, ARGV[2] first chunk number to drop (-1: none)
    # Drops what a failed ingest checkpointed (chunks >= ARGV[2] and the ingest status), and
    # the fence counter once no state of the dataset is left for it to guard.
    LUA_ABANDON = """
    if redis.call('get', KEYS[1]) ~= ARGV[1] then
        return redis.error_reply('LOCKLOST')
    end
    local first = tonumber(ARGV[2])
    if first >= 0 then
        for _, n in ipairs(redis.call('hkeys', KEYS[3])) do
            if tonumber(n) >= first then redis.call('hdel', KEYS[3], n) end
        end
        redis.call('del', KEYS[2])
    end
    if redis.call('exists', KEYS[2]) == 0 and redis.call('exists', KEYS[5]) == 0 then
        redis.call('del', KEYS[4])
    end
    return 1
    """

    def __init__(self, client: redis.Redis, prefix: str, lock_ttl: float,
                 retry_seconds: float = 0.0):
        self.client, self.prefix, self.lock_ttl = client, prefix, lock_ttl
        self.retry_seconds = retry_seconds  # how long a fenced write waits out a blip
        self.url = redis_url_of(client)
        self._abandon = client.register_script(self.LUA_ABANDON)
        self._checkpoint = client.register_script(self.LUA_CHECKPOINT)
        self._fenced_hset = client.register_script(self.LUA_FENCED_HSET)
        self._publish = client.register_script(self.LUA_PUBLISH)
        self._head = client.register_script(self.LUA_HEAD)
        self._raise_fence = client.register_script(self.LUA_RAISE_FENCE)

    def keys(self, dataset_id: str) -> RedisKeys:
        return RedisKeys(self.prefix, dataset_id)

    def lock(self, dataset_id: str) -> DatasetLock:
        return DatasetLock(self.client, self.keys(dataset_id), dataset_id, self.lock_ttl)

    def borrow(self, dataset_id: str, token: str, fence: int) -> DatasetLock:
        """A handle on the lock that ``token`` and ``fence`` were taken with, held by another
        process (see :meth:`DatasetLock.borrowed`)."""
        return DatasetLock.borrowed(self.client, self.keys(dataset_id), dataset_id,
                                    self.lock_ttl, token, fence)

    def _fenced(self, lock: DatasetLock, call: Any) -> None:
        """Run the fenced script ``call`` under ``lock``: retried through a blip for up to
        ``retry_seconds`` (each script is idempotent, so one that ran before the connection
        dropped may run again), but not once the lock can no longer be proven ours (its
        TTL passed unrenewed: the outage's error is raised then)."""
        lock.check()
        try:
            retry_until(call, seconds=self.retry_seconds, transient=transient_redis_error,
                        what=f"Redis at {self.url}", worth_it=lock.provable)
        except redis.ResponseError as exc:
            if "LOCKLOST" in str(exc):
                lock._lost.set()
                lock.check()
            raise

    # -- ingest status --------------------------------------------------------------------
    def ingest_status(self, dataset_id: str) -> dict[str, str]:
        raw: dict[bytes, bytes] = self.client.hgetall(self.keys(dataset_id).ingest)  # type: ignore[assignment]
        return {k.decode(): v.decode() for k, v in raw.items()}

    def begin_ingest(self, lock: DatasetLock, status: dict[str, Any]) -> None:
        """Record a new ingest (replacing any stale one) under the lock."""
        keys = lock.keys
        args: list[Any] = [lock.token]
        for k, v in status.items():
            args += [k, str(v)]
        self._fenced(lock, lambda: self._fenced_hset(keys=[keys.lock, keys.ingest], args=args))

    def checkpoint(self, lock: DatasetLock, generation: int, *metas: ChunkMeta) -> None:
        """Atomically record persisted chunks (one step for many: a group commit), if this
        worker still owns the lock."""
        if not metas:
            return
        keys = lock.keys
        pairs = [x for m in metas for x in (m.chunk, m.to_json())]
        self._fenced(lock, lambda: self._checkpoint(
            keys=[keys.lock, keys.ingest, keys.chunks(generation)],
            args=[lock.token, lock.fence, *pairs],
        ))

    def abandon(self, lock: DatasetLock, generation: int | None, first_chunk: int = 0) -> None:
        """Forget a failed ingest: its checkpoints from ``first_chunk`` on and its status
        (``generation=None``: none were written), and the fence counter if nothing is left."""
        keys = lock.keys
        self._fenced(lock, lambda: self._abandon(
            keys=[keys.lock, keys.ingest, keys.chunks(generation or 0), keys.fence, keys.meta],
            args=[lock.token, -1 if generation is None else first_chunk],
        ))

    def chunk_metas(self, dataset_id: str, generation: int) -> dict[int, ChunkMeta]:
        """The chunk entries Redis holds for ``generation`` by number (those after its
        checkpoint, and an ingest's under way); an unreadable entry raises
        :class:`StateCorruptionError` naming it (never a raw decode error)."""
        key = self.keys(dataset_id).chunks(generation)
        raw: dict[bytes, bytes] = self.client.hgetall(key)  # type: ignore[assignment]
        return {int(k): _chunk_meta(dataset_id, key, k, v) for k, v in raw.items()}

    def chunk_range(self, dataset_id: str, generation: int, start: int,
                    stop: int) -> dict[int, ChunkMeta]:
        """The entries ``start <= n < stop`` of ``generation`` that Redis holds, by number."""
        if stop <= start:
            return {}
        key = self.keys(dataset_id).chunks(generation)
        numbers = list(range(start, stop))
        raw = self.client.hmget(key, numbers)
        return {n: _chunk_meta(dataset_id, key, n, v)  # type: ignore[arg-type]
                for n, v in zip(numbers, raw, strict=True) if v is not None}

    def head(self, dataset_id: str, generation: int | None = None, since: int = 0) -> Head | None:
        """The committed metadata, checkpoint pointer and chunk entries from ``since`` (or
        the checkpoint's end, if later) in one step; None when Redis has no metadata. With
        ``generation`` unknown or not the current one, a second step reads the entries."""
        keys = self.keys(dataset_id)
        for attempt in range(2):
            gen = -1 if generation is None else generation
            flat, tail = self._head(keys=[keys.meta, keys.chunks(gen)], args=[gen, since])
            if not flat:
                return None
            raw = dict(zip(flat[::2], flat[1::2], strict=True))
            meta = self._parse_meta(dataset_id, keys.meta, raw)
            if meta.generation == gen or attempt:
                break
            generation, since = meta.generation, 0
        try:
            text = raw.get(b"manifest", b"null")
            ref = None if text == b"null" else ManifestRef.from_json(text)
        except (ValueError, TypeError) as exc:
            raise StateCorruptionError(
                dataset_id, f"the checkpoint pointer in {keys.meta!r} is unreadable ({exc})") from exc
        if meta.generation != gen:  # the generation moved again in between: a later read
            return Head(meta, ref, meta.chunks, [])  # finds the tail missing and reloads
        first = int(tail[0]) if tail else meta.chunks
        entries = [None if v is None else _chunk_meta(dataset_id, keys.chunks(gen), n, v)
                   for n, v in zip(tail[::2], tail[1::2], strict=True)]
        return Head(meta, ref, first, entries)

    def forget_chunks(self, dataset_id: str, generation: int, chunks: list[int]) -> None:
        """Drop the checkpoints of ``chunks`` of ``generation`` (a new ingest supersedes them)."""
        self.client.hdel(self.keys(dataset_id).chunks(generation), *chunks)

    def discard_chunks(self, dataset_id: str, generation: int) -> None:
        self.client.delete(self.keys(dataset_id).chunks(generation))

    def publish(self, lock: DatasetLock, meta: DatasetMeta, old_generation: int | None,
                manifest: ManifestRef | None, window: int = 0) -> None:
        """Make ``meta`` the hot metadata, ``manifest`` its generation's checkpoint, and drop
        the ingest status (and an old generation). Entries the checkpoint holds leave Redis
        but the last ``window`` of them, so that handles a little behind catch up from Redis."""
        keys = lock.keys
        keep = max(0, (0 if manifest is None else manifest.chunks) - window)
        args: list[Any] = [lock.token, keep, *_manifest_fields(manifest, keep)]
        for k, v in meta.to_mapping().items():
            args += [k, v]
        old = keys.chunks(old_generation if old_generation is not None else meta.generation)
        self._fenced(lock, lambda: self._publish(
            keys=[keys.lock, keys.ingest, keys.meta, old, keys.chunks(meta.generation)], args=args
        ))

    # -- readers --------------------------------------------------------------------------
    def meta(self, dataset_id: str) -> DatasetMeta | None:
        """The hot metadata, None if Redis has none; an unreadable value raises
        :class:`StateCorruptionError` naming the key (never a raw decode error)."""
        key = self.keys(dataset_id).meta
        raw = self.client.hgetall(key)
        if not raw:
            return None
        return self._parse_meta(dataset_id, key, raw)  # type: ignore[arg-type]

    @staticmethod
    def _parse_meta(dataset_id: str, key: str, raw: dict[Any, Any]) -> DatasetMeta:
        try:
            return DatasetMeta.from_mapping(raw)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise StateCorruptionError(
                dataset_id, f"Redis hash {key!r} is not dataset metadata ({exc!r})") from exc

    def warm(self, meta: DatasetMeta, manifest: ManifestRef | None,
             tail: list[ChunkMeta]) -> None:
        """Re-create a dataset's hot keys from the catalog after Redis lost them: the
        metadata, the checkpoint pointer and the entries after it."""
        keys = self.keys(meta.id)
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(keys.meta)  # the chunk hash is merged, not replaced: an append under way
        if tail:                 # keeps its checkpoints of chunks past the committed ones
            pipe.hset(keys.chunks(meta.generation), mapping={c.chunk: c.to_json() for c in tail})
        fields: dict[str, Any] = dict(meta.to_mapping())
        fields.update(zip(*[iter(_manifest_fields(manifest))] * 2, strict=True))
        pipe.hset(keys.meta, mapping=fields)  # type: ignore[arg-type]
        pipe.execute()

    def rebuild(self, lock: DatasetLock, meta: DatasetMeta, manifest: ManifestRef | None,
                tail: list[ChunkMeta]) -> None:
        """Replace a dataset's hot metadata, checkpoint pointer and recent entries with the
        catalog's (the recoverer and repairs, under the dataset's lock)."""
        keys = lock.keys
        args: list[Any] = [lock.token]
        for c in tail:
            args += [c.chunk, c.to_json()]
        self._fenced(lock, lambda: self._fenced_hset(keys=[keys.lock, keys.chunks(meta.generation)],
                                                     args=args))
        self._fenced(lock, lambda: self._fenced_hset(
            keys=[keys.lock, keys.meta], args=[lock.token, *_manifest_fields(manifest),
                                               *itertools.chain.from_iterable(
                                                   meta.to_mapping().items())]))

    # KEYS[1] fence counter; ARGV[1] floor; returns the counter, raised to the floor if below
    LUA_RAISE_FENCE = """
    local now = tonumber(redis.call('get', KEYS[1]) or '0') or 0
    if now < tonumber(ARGV[1]) then
        redis.call('set', KEYS[1], ARGV[1])
        return tonumber(ARGV[1])
    end
    return now
    """

    def raise_fence(self, dataset_id: str, floor: int) -> int:
        """Raise the fencing counter to ``floor`` (the catalog's latest token) if it is below
        (or unreadable): after Redis lost it, the next lock must not be refused."""
        try:
            return int(self._raise_fence(keys=[self.keys(dataset_id).fence], args=[floor]))
        except redis.RedisError as exc:
            raise BackendUnavailableError(
                f"cannot update the fencing counter of {dataset_id!r} in Redis at {self.url!r}: "
                f"{exc}; start that server (or fix CHUNKFRAME_REDIS_URL) and run again"
            ) from exc

    def fence(self, dataset_id: str) -> int | None:
        """The fencing counter (None when absent, -1 when unreadable)."""
        raw = self.client.get(self.keys(dataset_id).fence)
        if raw is None:
            return None
        try:
            return int(raw)  # type: ignore[arg-type]
        except ValueError:
            return -1

    def lock_value(self, dataset_id: str) -> bytes | None:
        """The raw value of a dataset's lock (it names its :class:`Holder`), None if free."""
        return self.client.get(self.keys(dataset_id).lock)  # type: ignore[return-value]

    def break_lock(self, dataset_id: str, seen: bytes) -> bool:
        """Delete the lock if it still holds ``seen`` (a holder found dead)."""
        lock = self.lock(dataset_id)
        return bool(lock._release(keys=[lock.keys.lock], args=[seen]))

    def dataset_ids(self) -> set[str]:
        """Ids of the datasets that have any key in Redis (under this prefix)."""
        start = len(self.prefix) + 2
        ids = set()
        for key in scan_keys(self.client, f"{self.prefix}:{{*}}:*"):
            text = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
            end = text.find("}", start)
            if end > start:
                ids.add(text[start:end])
        return ids

    # KEYS[1] lock, KEYS[2] chunks of the generation; ARGV[1] token, ARGV[2] chunk number,
    # ARGV[3] chunk metadata JSON; returns 1, or 'LOCKLOST' if the caller no longer owns
    # the lock (the ingest status is left alone: a repair is not an ingest)
    LUA_REPLACE_CHUNK = """
    if redis.call('get', KEYS[1]) ~= ARGV[1] then
        return redis.error_reply('LOCKLOST')
    end
    redis.call('hset', KEYS[2], ARGV[2], ARGV[3])
    return 1
    """

    def replace_chunk(self, lock: DatasetLock, generation: int, meta: ChunkMeta) -> None:
        """Point one committed chunk at its rewritten file (a repair), under the lock."""
        keys = lock.keys
        self._fenced(lock, lambda: self.client.eval(
            self.LUA_REPLACE_CHUNK, 2, keys.lock, keys.chunks(generation), lock.token,
            meta.chunk, meta.to_json()))

    def set_meta(self, meta: DatasetMeta) -> None:
        """Replace the hot metadata, keeping its checkpoint pointer (not fenced: used for
        tombstones under the catalog's lock)."""
        self.client.hset(self.keys(meta.id).meta, mapping=meta.to_mapping())  # type: ignore[arg-type]


def _chunk_meta(dataset_id: str, key: str, number: Any, raw: bytes) -> ChunkMeta:
    """One Redis chunk entry; an unreadable one is a :class:`StateCorruptionError`."""
    try:
        return ChunkMeta.from_json(raw)
    except (ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError
        shown = number.decode("utf-8", "replace") if isinstance(number, bytes) else str(number)
        raise StateCorruptionError(
            dataset_id, f"Redis entry {shown!r} of {key!r} is not chunk metadata ({exc})") from exc
