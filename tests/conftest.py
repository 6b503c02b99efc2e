"""Fixtures that start the real servers the suite talks to (no fakes, no mocks)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import redis

from servers import MotoProcess, RedisProcess

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisProcess]:
    """One redis-server for the session; tests isolate themselves by key prefix."""
    server = RedisProcess().start()
    yield server
    server.stop()


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
