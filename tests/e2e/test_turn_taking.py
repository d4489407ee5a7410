"""Barge-in over a real WebSocket: real words over the agent stop it, a backchannel does not."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from aiohttp.test_utils import TestClient

from bridge.voice_runtime import Models
from examples.ws_client import Event, VoiceClient
from media.resample import resample
from tests.e2e.conftest import Connect
from tests.e2e.test_voice_conversation import conversation_when, speech
from tests.unit.media.recordings import librivox, load_wav

Client = TestClient[Any, Any]

POLICY = (
    "Our return policy is simple. You can return any item within thirty days of delivery. "
    "The item must be unused and in its original packaging. Refunds go back to the card you "
    "paid with, usually within five working days. Shipping costs are refunded too."
)
AGENT = {"custom_responses": {"return_policy": POLICY}}


async def policy_playing(client: VoiceClient) -> Event:
    """Greeted, the caller asks for the return policy; returns once the long answer plays."""
    done = client.index(await client.wait_for("agent.audio.end"))
    await client.say("what is your return policy?")
    return await client.wait_for("agent.audio.start", after=done)


async def test_real_words_over_the_agent_interrupt_it(
    converse: Connect, voice_client: Client, auth: dict[str, str]
) -> None:
    client, created = await converse(AGENT)
    start = await policy_playing(client)
    await asyncio.sleep(2.0)
    _name, path, _reference = librivox()[1]
    human, rate = load_wav(path)
    await client.speak(resample(human, rate, 16_000))
    interrupted = await client.wait_for("interrupted", after=client.index(start), timeout=20)
    spoken = interrupted.data["spoken_text"]
    assert spoken and POLICY.startswith(spoken.rsplit(" ", 1)[0])
    assert len(spoken) < len(POLICY)
    # The caller's words are the next turn.
    await client.wait_for("transcript.final", after=client.index(interrupted), timeout=30)

    detail = await conversation_when(
        voice_client,
        auth,
        created["conversation_id"],
        lambda d: any(m.get("interrupted") for m in d["messages"]),
    )
    cut = [m for m in detail["messages"] if m.get("interrupted")]
    assert len(cut) == 1
    assert cut[0]["content"] == spoken and cut[0]["meta"]["full_text"] == POLICY


async def test_a_backchannel_does_not_stop_the_agent(
    converse: Connect, models: Models, voice_client: Client, auth: dict[str, str]
) -> None:
    client, created = await converse(AGENT)
    start = await policy_playing(client)
    await asyncio.sleep(2.0)
    await client.speak(speech(models, "Okay.", voice="female"))
    end = await client.wait_for("agent.audio.end", after=client.index(start), timeout=40)
    between = client.events[client.index(start) : client.index(end)]
    assert not [e for e in between if e.type == "interrupted"]
    backchannel = [e for e in between if e.type == "transcript.final"]
    assert backchannel and all(e.data.get("backchannel") for e in backchannel)

    detail = await conversation_when(
        voice_client, auth, created["conversation_id"], lambda d: len(d["messages"]) >= 3
    )
    last = detail["messages"][-1]
    assert last["content"] == POLICY and not last.get("interrupted")
    assert [m["type"] for m in detail["messages"]] == ["agent", "user", "agent"]


async def test_the_agents_own_voice_echoed_back_does_not_stop_it(converse: Connect) -> None:
    client, _created = await converse(AGENT)
    start = await policy_playing(client)
    client.open_line()
    # A phone line's echo: what the agent sends comes back 120 ms later, 12 dB down.
    first = echoed = sum(1 for seen, _chunk in client.audio.chunks if seen <= client.index(start))
    while echoed - first < 150:
        await asyncio.sleep(0.02)
        chunks = client.audio.chunks
        while len(chunks) > echoed + 6:
            audio = np.frombuffer(chunks[echoed][1], "<i2").astype(np.float64) / 4
            client.queue(audio.astype(np.int16))
            echoed += 1
    end = await client.wait_for("agent.audio.end", after=client.index(start), timeout=40)
    between = client.events[client.index(start) : client.index(end)]
    assert not [e for e in between if e.type in ("interrupted", "transcript.final")]
