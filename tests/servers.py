"""Real servers for the test suite: redis-server (one or a cluster), moto's S3 server and PostgreSQL."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

import redis

from chunkframe.storage.embedded import redis_server_binary


class RedisProcess:
    """A private redis-server on a unix socket; stop() and start() keep its data (AOF)."""

    def __init__(self, directory: Path | None = None, password: str | None = None) -> None:
        # unix socket paths are limited to ~107 bytes: keep the directory short
        self.dir = Path(directory or tempfile.mkdtemp(prefix="cfr-"))
        self.sock = self.dir / "r.sock"
        self.password = password
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.sock}" + (f"?password={self.password}" if self.password else "")

    def client(self) -> redis.Redis:
        return redis.Redis(unix_socket_path=str(self.sock), password=self.password)

    def start(self) -> RedisProcess:
        cmd = [
            redis_server_binary(), "--port", "0", "--unixsocket", str(self.sock),
            "--dir", str(self.dir), "--appendonly", "yes", "--appendfsync", "always",
            "--save", "", "--logfile", str(self.dir / "redis.log"),
            *(["--requirepass", self.password] if self.password else []),
        ]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.client().ping():
                    return self
            except (redis.ConnectionError, OSError):
                time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start; see {self.dir / 'redis.log'}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MotoProcess:
    """moto's S3 server mode as a separate process, over HTTP on loopback."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoProcess:
        env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("moto server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def postgres_bin_dir() -> Path | None:
    """Debian's PostgreSQL binaries (the newest installed), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PostgresProcess:
    """A private PostgreSQL server: its own data directory and port on 127.0.0.1, trust
    authentication for the ``cf`` user, password authentication for ``cf_secret``.

    Run as the ``postgres`` user (through runuser) when the suite runs as root, since the
    server refuses to run as root. ``database()`` makes a fresh database for one test.
    """

    USER, SECRET_USER, SECRET = "cf", "cf_secret", "s3cret-pw"

    def __init__(self, bin_dir: Path, durable: bool = False) -> None:
        """``durable=False`` runs with ``fsync=off`` (the tests); benchmarks pass True."""
        self.bin = bin_dir
        self.durable = durable
        self.dir = Path(tempfile.mkdtemp(prefix="cfpg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log: IO[bytes] | None = None
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self._databases = 0

    def url(self, database: str = "postgres", user: str = USER, password: str | None = None) -> str:
        auth = f"{user}:{password}" if password else user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def _run(self, *cmd: str) -> None:
        subprocess.run([*self.as_user, *cmd], check=True, capture_output=True, timeout=120)

    def start(self) -> PostgresProcess:
        if self.as_user:
            shutil.chown(self.dir, "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                  "--no-sync", "-E", "UTF8")
        hba = self.data / "pg_hba.conf"  # the secret user needs its password, others are trusted
        hba.write_text(f"host all {self.SECRET_USER} 127.0.0.1/32 scram-sha-256\n"
                       "host all all 127.0.0.1/32 trust\nlocal all all trust\n")
        self.proc = subprocess.Popen(
            [*self.as_user, str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
             "-k", str(self.dir), "-c", "listen_addresses=127.0.0.1",
             "-c", f"fsync={'on' if self.durable else 'off'}", "-c", "max_connections=200"],
            stdout=subprocess.DEVNULL, stderr=self._open_log())
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(self.url(user="postgres"), autocommit=True) as db:
                    db.execute(f"CREATE ROLE {self.USER} LOGIN CREATEDB")
                    db.execute(f"CREATE ROLE {self.SECRET_USER} LOGIN PASSWORD '{self.SECRET}'")
                    return self
            except psycopg.OperationalError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(
                        f"postgres did not start; see {self.dir / 'postgres.log'}") from None
                time.sleep(0.1)

    def _open_log(self) -> IO[bytes]:
        self.log = open(self.dir / "postgres.log", "wb")  # noqa: SIM115 (closed by stop)
        return self.log

    def database(self, owner: str = USER) -> str:
        """A new, empty database owned by ``owner`` (who may create tables in it); its name."""
        import psycopg

        self._databases += 1
        name = f"t{os.getpid()}_{self._databases}"
        with psycopg.connect(self.url(user="postgres"), autocommit=True) as db:
            db.execute(f"CREATE DATABASE {name} OWNER {owner}")
        return name

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()  # the runuser process passes it on: a fast shutdown
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        if self.log is not None:
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def free_cluster_port() -> int:
    """A loopback port free together with its cluster bus port (port + 10000: Redis 6's
    fixed offset; ``--cluster-port`` came in 7.0)."""
    for _ in range(100):
        port = free_port()
        if port >= 55536:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free pair of ports (port, port + 10000) on 127.0.0.1")


class RedisClusterProcess:
    """A Redis Cluster of ``masters`` redis-server processes on loopback, private ports and
    directories: slots assigned with CLUSTER ADDSLOTS, nodes joined with CLUSTER MEET
    through redis-py (no redis-cli), ready once every node says ``cluster_state:ok``.
    ``slots``: assign only these (split among the masters), for a cluster not fully covered.
    """

    def __init__(self, masters: int = 3, password: str | None = None,
                 slots: range = range(16384), aof: bool = False) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="cfc-"))
        self.ports = [free_cluster_port() for _ in range(masters)]
        self.password = password
        self.slots = slots
        self.aof = aof  # keep each master's data across kill_node/start_node
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis+cluster://{auth}" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, password=self.password)

    def client(self) -> redis.RedisCluster:
        return redis.RedisCluster(host="127.0.0.1", port=self.ports[0], password=self.password)

    def _spawn(self, port: int) -> subprocess.Popen[bytes]:
        d = self.dir / str(port)
        d.mkdir(exist_ok=True)
        return subprocess.Popen(
            [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1",
             "--cluster-enabled", "yes", "--cluster-config-file", str(d / "nodes.conf"),
             "--cluster-node-timeout", "2000", "--dir", str(d), "--save", "",
             *(["--appendonly", "yes", "--appendfsync", "always"] if self.aof
               else ["--appendonly", "no"]),
             "--logfile", str(d / "redis.log"),
             *(["--requirepass", self.password, "--masterauth", self.password]
               if self.password else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def kill_node(self, i: int) -> None:
        """SIGKILL master ``i`` (its slots go unserved until :meth:`start_node`)."""
        self.procs[i].kill()
        self.procs[i].wait()

    def start_node(self, i: int) -> None:
        """Start master ``i`` again on its port, nodes.conf and data; wait for cluster_state:ok."""
        self.procs[i] = self._spawn(self.ports[i])
        nodes = [self.node(p) for p in self.ports]
        self._wait(lambda: all(n.execute_command("CLUSTER INFO")["cluster_state"] == "ok"
                               for n in nodes), "cluster_state:ok after a restart")

    def start(self, ready: bool = True) -> RedisClusterProcess:
        """Start the masters, assign the slots, join them; ``ready``: wait for
        ``cluster_state:ok`` (a partly covered cluster never gets there)."""
        self.procs = [self._spawn(port) for port in self.ports]
        nodes = [self.node(p) for p in self.ports]
        self._wait(lambda: all(n.ping() for n in nodes), "the nodes to answer PING")
        for i, n in enumerate(nodes):  # Redis 6: ADDSLOTS of each slot (ADDSLOTSRANGE is 7.0's)
            n.execute_command("CLUSTER ADDSLOTS", *self.slots[i::len(nodes)])
        for n in nodes[1:]:
            n.execute_command("CLUSTER MEET", "127.0.0.1", self.ports[0])

        def joined() -> bool:
            infos = [n.execute_command("CLUSTER INFO") for n in nodes]  # parsed: a dict
            return all(i["cluster_state"] == "ok"
                       and int(i["cluster_known_nodes"]) == len(nodes) for i in infos)

        if ready:
            self._wait(joined, "cluster_state:ok on every node")
        return self

    def _wait(self, done, what: str, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                if done():
                    return
            except (redis.ConnectionError, OSError):
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"Redis Cluster: timed out waiting for {what}; see {self.dir}")

    def stop(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()
        self.procs = []
