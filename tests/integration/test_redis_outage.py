"""The API rides out a Redis restart and answers 503, not 500, while Redis is gone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from bridge.embedded_redis import EmbeddedRedis
from bridge.redis_client import connect
from bridge.settings import Settings
from bridge.store import Store


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "redis")
    await server.start()
    yield server
    await server.stop()


async def test_requests_survive_a_redis_restart(own_redis: EmbeddedRedis, tmp_path: Path) -> None:
    redis = connect(own_redis.url)
    store = Store(redis, "outage")
    _record, key = await store.api_keys.create("k")
    auth = {"Authorization": f"Bearer {key}"}
    app = create_app(Settings(redis_url=own_redis.url, data_dir=tmp_path), store)
    async with TestClient(TestServer(app)) as client:
        created = await client.post("/v1/agents", json={"name": "before"}, headers=auth)
        agent_id = (await created.json())["agent_id"]
        await own_redis.stop()
        pending = asyncio.create_task(client.get(f"/v1/agents/{agent_id}", headers=auth))
        await asyncio.sleep(0.3)
        await own_redis.start()
        response = await pending
        assert response.status == 200, await response.text()
        assert (await response.json())["name"] == "before"
    await redis.aclose()


async def test_unreachable_redis_gives_503_envelopes(tmp_path: Path) -> None:
    url = "redis://127.0.0.1:1/0"
    redis = connect(url)
    app = create_app(Settings(redis_url=url, data_dir=tmp_path), Store(redis, "gone"))
    async with TestClient(TestServer(app)) as client:
        ready = await client.get("/readyz")
        assert ready.status == 503
        assert (await client.get("/healthz")).status == 200
        response: Any = await client.get(
            "/v1/agents", headers={"Authorization": "Bearer vbk_000000000000_x"}
        )
        assert response.status == 503
        error = (await response.json())["error"]
        assert error["code"] == "storage_unavailable"
        assert response.headers["Retry-After"] == "1"
    await redis.aclose()
