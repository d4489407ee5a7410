"""The WebSocket protocol's edges: who may connect, malformed input, drops and reconnects."""

from __future__ import annotations

import asyncio
import io
import wave
from typing import Any

import aiohttp
import numpy as np
from aiohttp.test_utils import TestClient

from examples.ws_client import VoiceClient
from tests.e2e.conftest import Connect

Client = TestClient[Any, Any]


async def _conversation(client: Client, auth: dict[str, str], **fields: Any) -> dict[str, Any]:
    agent = await (await client.post("/v1/agents", json={"name": "A"}, headers=auth)).json()
    created = await client.post(
        "/v1/conversations",
        json={"agent_id": agent["agent_id"], "user_id": "u", **fields},
        headers=auth,
    )
    body: dict[str, Any] = await created.json()
    return body


async def _closed_with(ws: aiohttp.ClientWebSocketResponse) -> tuple[int | None, list[Any]]:
    received = []
    async for message in ws:
        if message.type is aiohttp.WSMsgType.TEXT:
            received.append(message.json())
    return ws.close_code, received


async def test_tokens_that_do_not_open_the_conversation_get_4401(
    voice_client: Client, auth: dict[str, str]
) -> None:
    one = await _conversation(voice_client, auth)
    other = await _conversation(voice_client, auth)
    url = f"/v1/ws/{one['conversation_id']}"
    for token in (None, "cvt_nonsense", other["connection_details"]["token"], "vbk_x"):
        ws = await voice_client.ws_connect(url + (f"?token={token}" if token else ""))
        await ws.send_json({"type": "start"})
        code, received = await _closed_with(ws)
        assert code == 4401, token
        assert received[-1]["type"] == "error" and received[-1]["code"] == 4401


async def test_the_token_may_come_in_the_start_message(
    voice_client: Client, auth: dict[str, str]
) -> None:
    created = await _conversation(voice_client, auth)
    ws = await voice_client.ws_connect(f"/v1/ws/{created['conversation_id']}")
    token = created["connection_details"]["token"]
    await ws.send_json({"type": "start", "encoding": "mulaw", "sample_rate": 8000, "token": token})
    ready = await ws.receive_json(timeout=30)
    assert ready["type"] == "ready" and ready["encoding"] == "mulaw"
    await ws.close()


async def test_an_ended_conversation_gets_4404(voice_client: Client, auth: dict[str, str]) -> None:
    created = await _conversation(voice_client, auth)
    cid = created["conversation_id"]
    await voice_client.post(f"/v1/conversations/{cid}/end", json={}, headers=auth)
    ws = await voice_client.ws_connect(
        f"/v1/ws/{cid}?token={created['connection_details']['token']}"
    )
    await ws.send_json({"type": "start"})
    code, _received = await _closed_with(ws)
    assert code == 4404


async def test_a_bad_start_gets_4400_with_the_reason(
    voice_client: Client, auth: dict[str, str]
) -> None:
    created = await _conversation(voice_client, auth)
    url = f"/v1/ws/{created['conversation_id']}?token={created['connection_details']['token']}"
    cases: list[tuple[Any, str]] = [
        (b"\x00\x01", "first message"),
        ({"type": "start", "encoding": "opus"}, "encoding"),
        ({"type": "start", "sample_rate": 44100}, "sample_rate"),
        ({"type": "hello"}, "type"),
        ("not json", "start message"),
    ]
    for first, reason in cases:
        ws = await voice_client.ws_connect(url)
        if isinstance(first, bytes):
            await ws.send_bytes(first)
        elif isinstance(first, str):
            await ws.send_str(first)
        else:
            await ws.send_json(first)
        code, received = await _closed_with(ws)
        assert code == 4400, first
        assert reason in received[-1]["message"], received


async def test_plain_http_gets_a_json_error(voice_client: Client) -> None:
    response = await voice_client.get("/v1/ws/conv_01jd4y3k8m2q9w7e5r1t6y0z3h")
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "websocket_required"


async def test_malformed_messages_get_error_events_and_the_call_goes_on(
    converse: Connect,
) -> None:
    client, _created = await converse()
    await client.ws.send_str("{not json")
    await client.ws.send_json({"type": "user.text"})
    await client.ws.send_json({"type": "dtmf", "digit": "12"})
    await client.ws.send_json({"type": "shout", "text": "hi"})
    await client.ws.send_json(["start"])
    await client.ws.send_bytes(b"\x01")  # half a PCM16 sample: kept for the next chunk
    errors = []
    for _ in range(5):
        errors.append(
            await client.wait_for("error", after=client.index(errors[-1]) + 1 if errors else 0)
        )
    codes = [e.data["code"] for e in errors]
    assert codes == [
        "bad_message",
        "bad_message",
        "bad_message",
        "unknown_message",
        "unknown_message",
    ]
    assert "text" in errors[1].data["message"]
    mark = len(client.events)
    await client.say("hello")
    await client.wait_for("agent.message", after=mark)


async def test_a_dropped_socket_may_reconnect_within_the_grace_period(
    converse: Connect, voice_client: Client, auth: dict[str, str]
) -> None:
    client, created = await converse()
    cid = created["conversation_id"]
    await client.wait_for("agent.audio.end")
    await client.close()
    again = await VoiceClient.connect(
        voice_client.session,
        str(voice_client.make_url(f"/v1/ws/{cid}")),
        created["connection_details"]["token"],
    )
    await asyncio.sleep(1.5)  # longer than the 1 s grace the fixtures configure
    assert not [e for e in again.events if e.type == "agent.audio.start"], "greeted twice"
    mark = len(again.events)
    await again.say("hello")
    await again.wait_for("agent.message", after=mark)
    await again.close()
    # Dropped for good: the conversation ends once the grace period has passed.
    for _ in range(50):
        detail = await (await voice_client.get(f"/v1/conversations/{cid}", headers=auth)).json()
        if detail["status"] != "active":
            break
        await asyncio.sleep(0.1)
    assert detail["status"] == "completed"
    assert detail["end_reason"] == "disconnected"


async def test_a_second_connection_takes_the_conversation_over(
    converse: Connect, voice_client: Client
) -> None:
    client, created = await converse()
    second = await VoiceClient.connect(
        voice_client.session,
        str(voice_client.make_url(f"/v1/ws/{created['conversation_id']}")),
        created["connection_details"]["token"],
    )
    await client.closed.wait()
    assert client.close_code == 4409
    mark = len(second.events)
    await second.say("hello")
    await second.wait_for("agent.message", after=mark)
    await second.close()


async def test_the_recording_holds_both_sides(
    converse: Connect, voice_client: Client, auth: dict[str, str]
) -> None:
    client, created = await converse(conversation={"settings": {"recording_enabled": True}})
    cid = created["conversation_id"]
    await client.wait_for("agent.audio.end")
    busy = await voice_client.get(f"/v1/conversations/{cid}/recording", headers=auth)
    assert busy.status == 409
    tone = (3000 * np.sin(2 * np.pi * 300 * np.arange(8000) / 16_000)).astype(np.int16)
    await client.speak(tone)
    await client.end()
    await client.wait_for("conversation.ended")
    response = await voice_client.get(f"/v1/conversations/{cid}/recording", headers=auth)
    assert response.status == 200, await response.text()
    with wave.open(io.BytesIO(await response.read())) as recording:
        assert recording.getnchannels() == 2 and recording.getframerate() == 16_000
        samples = np.frombuffer(recording.readframes(recording.getnframes()), "<i2")
    caller, agent = samples[0::2], samples[1::2]
    assert np.abs(agent).max() > 1000, "the greeting is on the agent's side"
    assert 2000 < np.abs(caller).max() < 4000, "the caller's tone is on the caller's side"
    # The tone came after the greeting had been played, and the recording keeps that order.
    assert np.argmax(np.abs(caller) > 2000) > np.argmax(np.abs(agent) > 1000)


async def test_a_cached_greeting_sends_the_same_events(converse: Connect) -> None:
    """The second conversation's greeting comes from the phrase cache, synthesized by the first:
    it must still be announced, after `ready`. (The order of agent.message and
    agent.audio.start is the pipeline's timing: text is announced once complete, audio when it
    starts playing.)"""
    agent = {"custom_responses": {"greeting": "Welcome to the cached line, how can I help?"}}
    seen = []
    for _ in range(2):
        client, _body = await converse(agent)
        await client.wait_for("agent.audio.end")
        seen.append([(e.type, e.data.get("text")) for e in client.events])
    first, second = seen
    assert sorted(first, key=str) == sorted(second, key=str), "the cache changed the events"
    assert first[0][0] == "ready"
    assert ("agent.message", agent["custom_responses"]["greeting"]) in first
    assert [kind for kind, _text in first].count("agent.audio.start") == 1
