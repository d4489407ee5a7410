"""The README's `voicebridge serve` as a real process: it preloads the speech models, a
conversation is talked to over its WebSocket, a second process on the same Redis ends it through
the API, and SIGTERM ends the conversations still live."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from examples.ws_client import VoiceClient
from tests.integration.procs import ServeProcess, environment, kill_redis_under
from tests.ports import free_port


@pytest.fixture
async def serve(tmp_path: Path, system_redis_url: str) -> AsyncIterator[ServeProcess]:
    env = environment(
        VOICEBRIDGE_REDIS_URL=system_redis_url,
        VOICEBRIDGE_REDIS_PREFIX="t" + secrets.token_hex(6),
        VOICEBRIDGE_DATA_DIR=str(tmp_path / "data"),
        VOICEBRIDGE_PRELOAD_MODELS="true",
        VOICEBRIDGE_NODE_ID="node-a",
    )
    process = ServeProcess(env, tmp_path, free_port())
    await process.start()
    yield process
    await process.kill()
    kill_redis_under(tmp_path)


async def _wait_for_line(process: ServeProcess, text: str, timeout: float = 120) -> None:
    assert process.process is not None and process.process.stdout is not None
    deadline = time.monotonic() + timeout
    while not any(text in line for line in process.stdout):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"serve never printed {text!r}: {''.join(process.stderr)}"
        raw = await asyncio.wait_for(process.process.stdout.readline(), remaining)
        assert raw, f"serve exited: {''.join(process.stderr)}"
        process.stdout.append(raw.decode())


async def _start_conversation(
    http: aiohttp.ClientSession, base: str, key: str
) -> tuple[str, VoiceClient]:
    headers = {"Authorization": f"Bearer {key}"}
    agent = await (await http.post(f"{base}/v1/agents", json={"name": "A"}, headers=headers)).json()
    made = await http.post(
        f"{base}/v1/conversations",
        json={"agent_id": agent["agent_id"], "user_id": "caller"},
        headers=headers,
    )
    body: dict[str, Any] = await made.json()
    # websocket_url is built from the public URL, which this process does not have: the
    # loopback address is the same server.
    url = f"{base.replace('http', 'ws', 1)}/v1/ws/{body['conversation_id']}"
    client = await VoiceClient.connect(http, url, body["connection_details"]["token"])
    return body["conversation_id"], client


async def test_serve_talks_and_hangs_up_on_api_end_and_on_sigterm(
    serve: ServeProcess, tmp_path: Path
) -> None:
    await _wait_for_line(serve, "speech models loaded")
    assert serve.bootstrap_key is not None
    key = serve.bootstrap_key
    other = ServeProcess(
        serve.env | {"VOICEBRIDGE_NODE_ID": "node-b", "VOICEBRIDGE_PRELOAD_MODELS": "false"},
        tmp_path,
        free_port(),
    )
    await other.start()
    try:
        async with aiohttp.ClientSession() as http:
            first_id, first = await _start_conversation(http, serve.base_url, key)
            await first.wait_for("agent.audio.end", timeout=30)
            mark = len(first.events)
            await first.say("goodbye")
            farewell = await first.wait_for("agent.message", after=mark)
            assert "goodbye" in farewell.data["text"].lower()
            ended = await first.wait_for("conversation.ended", after=mark)
            assert ended.data["reason"] == "agent_hangup"

            # Ended through the other process: the command reaches this one through Redis.
            second_id, second = await _start_conversation(http, serve.base_url, key)
            await second.wait_for("ready")
            response = await http.post(
                f"{other.base_url}/v1/conversations/{second_id}/end",
                json={"reason": "supervisor_ended"},
                headers={"Authorization": f"Bearer {key}"},
            )
            assert response.status == 200
            event = await second.wait_for("conversation.ended", timeout=10)
            assert event.data == {"reason": "supervisor_ended", "status": "completed"}
            await second.closed.wait()

            third_id, third = await _start_conversation(http, serve.base_url, key)
            await third.wait_for("ready")
            assert await serve.stop() == 0
            event = await third.wait_for("conversation.ended", timeout=10)
            assert event.data["reason"] == "shutdown"
            detail = await (
                await http.get(
                    f"{other.base_url}/v1/conversations/{third_id}",
                    headers={"Authorization": f"Bearer {key}"},
                )
            ).json()
            assert detail["status"] == "completed" and detail["end_reason"] == "shutdown"
            assert first_id != third_id
    finally:
        await other.kill()
