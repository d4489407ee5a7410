"""What a refused start leaves, and what becomes of a process's conversations when it is killed:
the real `voicebridge serve`, its speech models, and a second process on the same Redis."""

from __future__ import annotations

import asyncio
import json
import signal

import aiohttp
from aiohttp import WSMsgType

from examples.ws_client import VoiceClient
from tests.integration.test_serve_sweeper import Api, Launch, ended_events, launch

__all__ = ["launch"]


async def _refused(http: aiohttp.ClientSession, url: str, token: str, start: object) -> int:
    """Opens the socket, sends `start`, and returns the code it is closed with."""
    async with http.ws_connect(f"{url}?token={token}") as ws:
        await ws.send_str(json.dumps(start))
        async for message in ws:
            if message.type is WSMsgType.CLOSE:
                break
        assert ws.close_code is not None
        return ws.close_code


async def test_a_bad_start_leaves_the_conversation_connectable(launch: Launch) -> None:
    serve = launch()
    await serve.start()
    assert serve.bootstrap_key is not None
    async with aiohttp.ClientSession() as http:
        api = Api(http, serve.base_url, serve.bootstrap_key)
        conversation_id, token = await api.new_conversation()
        url = api.socket_url(conversation_id)
        bad = {"type": "start", "encoding": "mp3"}
        assert await _refused(http, url, token, bad) == 4400
        detail = await api.call("GET", f"/v1/conversations/{conversation_id}")
        assert detail["status"] == "active"
        client = await VoiceClient.connect(http, url, token)
        await client.wait_for("ready", timeout=120)
        await client.end()
        ended = await client.wait_for("conversation.ended", timeout=30)
        assert ended.data["reason"] == "user_ended"


async def test_a_killed_process_s_conversation_ends_node_lost_through_another(
    launch: Launch, system_redis_url: str
) -> None:
    doomed = launch(VOICEBRIDGE_NODE_ID="node-doomed")
    await doomed.start()
    assert doomed.bootstrap_key is not None
    survivor = launch(VOICEBRIDGE_NODE_ID="node-survivor")
    await survivor.start()
    async with aiohttp.ClientSession() as http:
        api = Api(http, doomed.base_url, doomed.bootstrap_key)
        conversation_id, token = await api.new_conversation()
        client = await VoiceClient.connect(http, api.socket_url(conversation_id), token)
        await client.wait_for("ready", timeout=120)
        assert doomed.process is not None
        doomed.process.send_signal(signal.SIGKILL)
        await doomed.process.wait()
        other = Api(http, survivor.base_url, doomed.bootstrap_key)
        # The heartbeat lapses after 15 s, and must stay missing on scans 15 s apart.
        detail = await other.wait_ended(conversation_id, timeout=120)
        assert (detail["status"], detail["end_reason"]) == ("failed", "node_lost")
        await asyncio.sleep(6)
        prefix = survivor.env["VOICEBRIDGE_REDIS_PREFIX"]
        events = await ended_events(system_redis_url, prefix, conversation_id)
        assert [e["data"]["end_reason"] for e in events] == ["node_lost"]
