"""`voicebridge serve` tells the truth about itself: /readyz is 503 until the speech models are
loaded (and from SIGTERM on: see test_serve_phone.py), and a server without festival says so at
start, keeps the male voice working, and refuses female agents at creation and at call time
rather than answering them into silence."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridge.redis_client import connect
from bridge.store import Store
from examples.ws_client import VoiceClient
from tests.e2e.phone import NUMBER, final_status, refused_with
from tests.integration.procs import ServeProcess, environment, kill_redis_under
from tests.ports import free_port
from tests.sipp import SIPP

Launch = Callable[..., Awaitable[ServeProcess]]


@pytest.fixture
async def launch(tmp_path: Path, system_redis_url: str) -> AsyncIterator[Launch]:
    made: list[ServeProcess] = []
    prefix = "t" + secrets.token_hex(6)

    async def start(**settings: str) -> ServeProcess:
        env = environment(
            VOICEBRIDGE_REDIS_URL=system_redis_url,
            VOICEBRIDGE_REDIS_PREFIX=prefix,
            VOICEBRIDGE_DATA_DIR=str(tmp_path / "data"),
            **settings,
        )
        process = ServeProcess(env, tmp_path, free_port())
        made.append(process)
        await process.start(timeout=60)
        return process

    yield start
    for process in made:
        await process.kill()
    kill_redis_under(tmp_path)
    client = connect(system_redis_url)
    keys = [k async for k in client.scan_iter(f"{prefix}:*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def readiness(http: aiohttp.ClientSession, serve: ServeProcess) -> tuple[int, Any]:
    async with http.get(f"{serve.base_url}/readyz") as response:
        return response.status, await response.json()


async def test_not_ready_until_the_models_are_loaded(launch: Launch) -> None:
    """SIP follows /readyz: while the models load, OPTIONS (a balancer's probe) and INVITE are
    answered 503, so Kamailio skips the node and a caller is not answered into silence."""
    serve = await launch(VOICEBRIDGE_PRELOAD_MODELS="true")
    sip_port = int(serve.env["VOICEBRIDGE_SIP_PORT"])
    seen = []
    async with aiohttp.ClientSession() as http:
        invite = await refused_with(sip_port, NUMBER)
        deadline = time.monotonic() + 180
        while True:
            # Asked before /readyz: a 503 there means the models were not loaded at the probe.
            probe = await final_status(sip_port, NUMBER, "OPTIONS")
            status, body = await readiness(http, serve)
            seen.append((status, body["models"], probe))
            if status == 200:
                break
            assert time.monotonic() < deadline, seen
            await asyncio.sleep(0.1)
        assert await final_status(sip_port, NUMBER, "OPTIONS") == 200
    assert seen[0][0] == 503 and seen[0][1] in ("not_loaded", "loading"), seen
    assert invite == 503
    assert all(probe == 503 for status, _models, probe in seen if status == 503), seen
    assert body["models"] == "ok"
    assert body["voices"] == {"male": "ok", "female": "ok"}
    await asyncio.sleep(0.5)
    log = "".join(serve.stderr)
    assert "loading speech models" in log
    assert "ready: taking calls" in log


async def test_without_festival_the_male_voice_works_and_female_agents_are_refused(
    launch: Launch, system_redis_url: str, tmp_path: Path
) -> None:
    # A PATH without festival on it: the server's view of a box where it is not installed.
    empty = tmp_path / "empty-path"
    empty.mkdir()
    serve = await launch(VOICEBRIDGE_PRELOAD_MODELS="true", PATH=str(empty))
    assert serve.bootstrap_key is not None
    headers = {"Authorization": f"Bearer {serve.bootstrap_key}"}
    async with aiohttp.ClientSession() as http:
        deadline = time.monotonic() + 180
        while (await readiness(http, serve))[0] != 200:
            assert time.monotonic() < deadline, "never ready with the male voice alone"
            await asyncio.sleep(0.2)
        _status, ready = await readiness(http, serve)
        assert ready["voices"]["male"] == "ok"
        assert ready["voices"]["female"].startswith("unavailable: festival is not installed")
        [line] = [row for row in serve.stderr if "voice female unavailable" in row]
        assert "apt-get install festival festvox-us-slt-hts" in line

        async with http.post(
            f"{serve.base_url}/v1/agents", json={"name": "F"}, headers=headers
        ) as refused:
            assert refused.status == 422
            error = (await refused.json())["error"]
        assert error["code"] == "voice_unavailable" and "festival" in error["message"]

        male = await (
            await http.post(
                f"{serve.base_url}/v1/agents",
                json={"name": "M", "voice_type": "male"},
                headers=headers,
            )
        ).json()
        talked = await converse(http, serve, headers, male["agent_id"])
        await talked.wait_for("agent.message", timeout=60)
        await talked.close()

        # An agent made before festival went missing (or by a node that has it).
        store = Store(connect(system_redis_url), serve.env["VOICEBRIDGE_REDIS_PREFIX"])
        female = await store.agents.create(
            {"name": "F", "voice_type": "female", "phone_numbers": [NUMBER]}
        )
        await store.redis.aclose()
        created = await (
            await http.post(
                f"{serve.base_url}/v1/conversations",
                json={"agent_id": female.agent_id, "user_id": "u"},
                headers=headers,
            )
        ).json()
        token = created["connection_details"]["token"]
        ws = await http.ws_connect(f"{serve.base_url}/v1/ws/{created['conversation_id']}")
        await ws.send_json({"type": "start", "token": token})
        said = [m.json() async for m in ws if m.type is aiohttp.WSMsgType.TEXT]
        assert ws.close_code == 1011
        assert "voice female is not available on this server: festival" in said[-1]["message"]
        listed = await (
            await http.get(
                f"{serve.base_url}/v1/conversations",
                params={"agent_id": female.agent_id},
                headers=headers,
            )
        ).json()
        (conversation,) = listed["data"]
        assert (conversation["status"], conversation["end_reason"]) == (
            "failed",
            "voice_unavailable",
        )
        if SIPP is not None:
            assert await refused_with(int(serve.env["VOICEBRIDGE_SIP_PORT"]), NUMBER) == 503


async def converse(
    http: aiohttp.ClientSession, serve: ServeProcess, headers: dict[str, str], agent_id: str
) -> VoiceClient:
    created = await (
        await http.post(
            f"{serve.base_url}/v1/conversations",
            json={"agent_id": agent_id, "user_id": "u"},
            headers=headers,
        )
    ).json()
    url = f"{serve.base_url}/v1/ws/{created['conversation_id']}"
    return await VoiceClient.connect(http, url, created["connection_details"]["token"])
