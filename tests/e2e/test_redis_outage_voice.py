"""A conversation rides out a Redis restart: the caller keeps hearing the agent while Redis is
gone, and every message said meanwhile is in the store once it is back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from api.metrics import ApiMetrics
from bridge.embedded_redis import EmbeddedRedis
from bridge.redis_client import connect
from bridge.settings import Settings
from bridge.store import Store
from bridge.voice_runtime import VoiceRuntime
from examples.ws_client import VoiceClient


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "redis")
    await server.start()
    yield server
    await server.stop()


async def test_messages_said_while_redis_restarts_are_kept(
    own_redis: EmbeddedRedis, tmp_path: Path, runtime: VoiceRuntime
) -> None:
    redis = connect(own_redis.url)
    store = Store(redis, "outage")
    _record, key = await store.api_keys.create("k")
    auth = {"Authorization": f"Bearer {key}"}
    settings = Settings(redis_url=own_redis.url, data_dir=tmp_path)
    app = create_app(settings, store, ApiMetrics(), runtime=runtime)
    async with TestClient(TestServer(app)) as http:
        agent = await (await http.post("/v1/agents", json={"name": "A"}, headers=auth)).json()
        created = await (
            await http.post(
                "/v1/conversations",
                json={"agent_id": agent["agent_id"], "user_id": "u"},
                headers=auth,
            )
        ).json()
        cid = created["conversation_id"]
        client = await VoiceClient.connect(
            http.session,
            str(http.make_url(f"/v1/ws/{cid}")),
            created["connection_details"]["token"],
        )
        await client.wait_for("agent.audio.end")

        await own_redis.stop()
        for turn in ("what can you do", "tell me more", "and after that"):
            mark = len(client.events)
            await client.say(turn)
            await client.wait_for("agent.audio.end", after=mark, timeout=30)
        await asyncio.sleep(0.5)
        await own_redis.start()

        await client.end()
        ended = await client.wait_for("conversation.ended", timeout=60)
        assert ended.data["reason"] == "user_ended"
        detail = await (await http.get(f"/v1/conversations/{cid}", headers=auth)).json()
        said = [m["content"] for m in detail["messages"] if m["type"] == "user"]
        assert said == ["what can you do", "tell me more", "and after that"]
        assert [m["type"] for m in detail["messages"]] == ["agent", *["user", "agent"] * 3], [
            (m["type"], m["content"]) for m in detail["messages"]
        ]
        assert detail["status"] == "completed"
        await client.close()
    await redis.aclose()
