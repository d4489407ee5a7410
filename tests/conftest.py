"""Shared fixtures: real Redis servers (the system one and an embedded one), a store with a key
prefix of its own per test, and the real HTTP app on a loopback port."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from api.metrics import ApiMetrics
from bridge.embedded_redis import EmbeddedRedis
from bridge.redis_client import connect
from bridge.settings import Settings
from bridge.store import Store

SYSTEM_REDIS_URL = os.environ.get("VOICEBRIDGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
async def embedded_redis(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("embedded-redis"))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="session")
async def system_redis_url() -> str:
    client = connect(SYSTEM_REDIS_URL)
    try:
        await client.ping()
    except Exception as exc:
        pytest.fail(f"the system Redis at {SYSTEM_REDIS_URL} does not answer: {exc}")
    finally:
        await client.aclose()
    return SYSTEM_REDIS_URL


@pytest.fixture(scope="session", params=["system", "embedded"])
async def redis_url(
    request: pytest.FixtureRequest, system_redis_url: str, embedded_redis: EmbeddedRedis
) -> str:
    """Each test that uses it runs once against the system Redis and once against the embedded
    one."""
    return system_redis_url if request.param == "system" else embedded_redis.url


@pytest.fixture
def prefix() -> str:
    return "t" + secrets.token_hex(6)


@pytest.fixture
async def redis(redis_url: str, prefix: str) -> AsyncIterator[aioredis.Redis]:
    client = connect(redis_url)
    yield client
    keys = [key async for key in client.scan_iter(f"{prefix}:*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
def store(redis: aioredis.Redis, prefix: str) -> Store:
    return Store(redis, prefix)


@pytest.fixture
def settings(redis_url: str, prefix: str, tmp_path: Path) -> Settings:
    return Settings(
        redis_url=redis_url,
        redis_prefix=prefix,
        data_dir=tmp_path,
        webhook_allow_insecure=True,
        public_url="https://voice.example.com",
    )


@pytest.fixture
async def app_client(settings: Settings, store: Store) -> AsyncIterator[TestClient[Any, Any]]:
    """The real app served over loopback HTTP, without credentials."""
    app = create_app(settings, store, ApiMetrics())
    async with TestClient(TestServer(app)) as client:
        yield client


@pytest.fixture
async def api_key(store: Store) -> str:
    _record, key = await store.api_keys.create("tests")
    return key


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}
