"""Every conversation reaches a final state: the real `voicebridge serve` ends one whose
WebSocket never connects, once, after the connect timeout."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridge.redis_client import connect
from tests.integration.procs import ServeProcess, environment, kill_redis_under
from tests.ports import free_port

Launch = Callable[..., ServeProcess]


@pytest.fixture
async def launch(tmp_path: Path, system_redis_url: str) -> AsyncIterator[Launch]:
    """Makes serve processes on one Redis and prefix; each is killed if a test leaves it."""
    made: list[ServeProcess] = []
    base = {
        "VOICEBRIDGE_REDIS_URL": system_redis_url,
        "VOICEBRIDGE_REDIS_PREFIX": "t" + secrets.token_hex(6),
        "VOICEBRIDGE_DATA_DIR": str(tmp_path / "data"),
    }

    def make(**settings: str) -> ServeProcess:
        process = ServeProcess(environment(**(base | settings)), tmp_path, free_port())
        made.append(process)
        return process

    yield make
    for process in made:
        await process.kill()
    kill_redis_under(tmp_path)


class Api:
    def __init__(self, http: aiohttp.ClientSession, base_url: str, key: str) -> None:
        self.http = http
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {key}"}

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        async with self.http.request(
            method, self.base_url + path, json=body, headers=self.headers
        ) as response:
            assert response.status < 300, await response.text()
            return await response.json()

    async def new_conversation(self) -> tuple[str, str]:
        """A new conversation's id and token."""
        agent = await self.call("POST", "/v1/agents", {"name": "A"})
        made = await self.call(
            "POST", "/v1/conversations", {"agent_id": agent["agent_id"], "user_id": "caller"}
        )
        return made["conversation_id"], made["connection_details"]["token"]

    def socket_url(self, conversation_id: str) -> str:
        return f"{self.base_url.replace('http', 'ws', 1)}/v1/ws/{conversation_id}"

    async def wait_ended(self, conversation_id: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            detail: dict[str, Any] = await self.call("GET", f"/v1/conversations/{conversation_id}")
            if detail["status"] != "active":
                return detail
            assert time.monotonic() < deadline, f"{conversation_id} still active: {detail}"
            await asyncio.sleep(0.5)


async def ended_events(redis_url: str, prefix: str, conversation_id: str) -> list[dict[str, Any]]:
    """The conversation.ended events about the conversation in the events stream."""
    redis = connect(redis_url)
    try:
        entries = await redis.xrange(f"{prefix}:events")
    finally:
        await redis.aclose()
    found = []
    for _id, fields in entries:
        body = json.loads(fields["body"])
        if fields["type"] == "conversation.ended" and conversation_id in fields["body"]:
            found.append(body)
    return found


async def test_a_conversation_never_connected_ends_not_connected_once(
    launch: Launch, system_redis_url: str
) -> None:
    serve = launch(VOICEBRIDGE_CONVERSATION_CONNECT_TIMEOUT="2")
    await serve.start()
    assert serve.bootstrap_key is not None
    async with aiohttp.ClientSession() as http:
        api = Api(http, serve.base_url, serve.bootstrap_key)
        conversation_id, _token = await api.new_conversation()
        detail = await api.wait_ended(conversation_id, timeout=60)
        assert (detail["status"], detail["end_reason"]) == ("failed", "not_connected")
        # Later sweeps find nothing more to end.
        await asyncio.sleep(12)
        prefix = serve.env["VOICEBRIDGE_REDIS_PREFIX"]
        events = await ended_events(system_redis_url, prefix, conversation_id)
        assert [e["data"]["end_reason"] for e in events] == ["not_connected"]
