"""Fixtures that start the real servers the suite talks to (no fakes, no mocks)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import redis
from servers import MotoProcess, PostgresProcess, RedisClusterProcess, RedisProcess, postgres_bin_dir

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")

# The modules that take longest (measured with --durations and the per-module sums of a
# --junitxml run), started first: pytest-xdist hands out whole modules (--dist loadfile,
# pyproject.toml) in this order, so none of them starts last and runs on alone.
LONGEST_FIRST = ["test_browser.py", "test_chaos.py", "test_cli.py", "test_dask.py",
                 "test_notebooks.py", "test_restore.py", "test_lint.py", "test_service.py",
                 "test_history.py", "test_lifecycle.py", "test_crash.py", "test_lastvalues.py",
                 "test_cluster.py", "test_ingest.py", "test_readme.py"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest as found


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisProcess]:
    """One redis-server for the session; tests isolate themselves by key prefix."""
    server = RedisProcess().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterProcess]:
    """A Redis Cluster of 3 masters for the session (tests/test_cluster.py); tests isolate
    themselves by key prefix."""
    cluster = RedisClusterProcess(masters=3).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def redis_client(redis_server: RedisProcess) -> redis.Redis:
    return redis_server.client()


@pytest.fixture
def prefix() -> str:
    """A fresh key prefix so tests sharing the session server never see each other's keys."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    """A redis-server of this test's own, for fault tests that stop and restart it."""
    server = RedisProcess().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoProcess]:
    server = MotoProcess().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresProcess]:
    """One PostgreSQL server for the session (Debian's binaries); tests take a database each."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL's server binaries were not found under /usr/lib/postgresql/*/bin "
                    "or on PATH: install Debian's postgresql package (.ci/run does)")
    server = PostgresProcess(bin_dir).start()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresProcess) -> str:
    """The URL of a fresh, empty database on the session's PostgreSQL server."""
    return postgres_server.url(postgres_server.database())


@pytest.fixture
def pg_client(tmp_path, redis_server: RedisProcess, prefix: str, postgres_url: str):
    """A chunkframe client like ``client``, whose catalog is a PostgreSQL database."""
    import chunkframe as cf

    return cf.connect(store=tmp_path / "store", redis=redis_server.url, catalog=postgres_url,
                      home=tmp_path, prefix=prefix)


@pytest.fixture
def client(tmp_path, redis_server: RedisProcess, prefix: str):
    """A chunkframe client on a temp local store and catalog, against the session Redis."""
    import chunkframe as cf

    return cf.connect(store=tmp_path / "store", redis=redis_server.url,
                      catalog=tmp_path / "catalog.db", home=tmp_path, prefix=prefix)


@pytest.fixture
def s3_options(s3_server: MotoProcess) -> dict:
    """fsspec storage options for the moto S3 endpoint (no region: see s3fs bucket creation)."""
    return {"endpoint_url": s3_server.endpoint, "key": "testing", "secret": "testing"}


@pytest.fixture
def s3_bucket(s3_options: dict) -> str:
    """A fresh bucket on the moto endpoint; returns its name."""
    import s3fs

    fs = s3fs.S3FileSystem(**s3_options)
    name = f"cf-{uuid.uuid4().hex[:12]}"
    fs.mkdir(name)
    fs.invalidate_cache()
    return name


@pytest.fixture
def s3_client(tmp_path, redis_server: RedisProcess, prefix: str, s3_bucket: str, s3_options: dict):
    """A chunkframe client whose chunk store is an S3 bucket, talked to over HTTP."""
    import chunkframe as cf

    return cf.connect(store=f"s3://{s3_bucket}/chunks", redis=redis_server.url,
                      catalog=tmp_path / "catalog.db", home=tmp_path, prefix=prefix,
                      storage_options=s3_options)
