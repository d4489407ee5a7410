"""Conversations spoken over a real WebSocket: the agent's audio is transcribed with our ASR and
the words checked; the store and the events stream are checked after."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import numpy as np
from aiohttp.test_utils import TestClient

from bridge.store import Store
from bridge.voice_runtime import Models, VoiceRuntime
from examples.ws_client import VoiceClient
from media.asr import MoonshineModel
from media.frames import Pcm16
from media.resample import resample
from media.wer import word_error_rate, words
from tests.e2e.conftest import Connect
from tests.unit.media.recordings import librivox, load_wav

Client = TestClient[Any, Any]

HOURS = "We are open from nine to five, Monday to Friday."
AGENT = {
    "custom_responses": {
        "greeting": "Hello {customer_name}! How can I help you today?",
        "opening_hours": HOURS,
    }
}


def transcribe(asr: MoonshineModel, samples: Pcm16, rate: int) -> str:
    audio = resample(samples, rate, 16_000) if rate != 16_000 else samples
    return asr.transcribe(audio.astype(np.float32) / 32768.0).text


def speech(models: Models, text: str, rate: int = 16_000, voice: str = "male") -> Pcm16:
    frames = models.speakers[voice].phrase(text)  # type: ignore[index]
    audio = np.concatenate(frames)
    return resample(audio, 16_000, rate) if rate != 16_000 else audio


async def reply_audio(
    client: VoiceClient, after: int = 0, timeout: float = 30
) -> tuple[Pcm16, int]:
    """The audio of the next complete agent reply after event index `after`, and the index of
    its agent.audio.end event."""
    start = await client.wait_for("agent.audio.start", after=after, timeout=timeout)
    end = await client.wait_for("agent.audio.end", after=client.index(start), timeout=timeout)
    return client.audio.pcm16(client.index(start), client.index(end)), client.index(end)


async def conversation_when(
    client: Client, auth: dict[str, str], cid: str, ready: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The conversation as the API shows it, once `ready` holds (within 5 s)."""
    for _ in range(50):
        detail: dict[str, Any] = await (
            await client.get(f"/v1/conversations/{cid}", headers=auth)
        ).json()
        if ready(detail):
            return detail
        await asyncio.sleep(0.1)
    raise AssertionError(f"conversation {cid} never got there: {detail}")


async def stream_events(store: Store, conversation_id: str) -> list[dict[str, Any]]:
    entries = await store.redis.xrange(store.keys.events)
    bodies = [json.loads(fields["body"]) for _id, fields in entries]
    return [b for b in bodies if b["data"].get("conversation_id") == conversation_id]


async def test_greets_answers_and_ends_when_the_api_ends_it(
    converse: Connect,
    models: Models,
    asr: MoonshineModel,
    voice_client: Client,
    auth: dict[str, str],
    store: Store,
    runtime: VoiceRuntime,
) -> None:
    client, created = await converse(AGENT, {"initial_context": {"customer_name": "Alice"}})
    cid = created["conversation_id"]
    greeting, done = await reply_audio(client)
    heard = transcribe(asr, greeting, 16_000)
    assert word_error_rate("Hello Alice! How can I help you today?", heard) <= 0.2, heard

    await client.speak(speech(models, "What are your opening hours?"))
    final = await client.wait_for("transcript.final", after=done)
    assert "opening hours" in " ".join(words(final.data["text"]))
    answer, done = await reply_audio(client, after=client.index(final))
    heard = transcribe(asr, answer, 16_000)
    assert word_error_rate(HOURS, heard) <= 0.2, heard

    # The session writes messages and metrics behind the audio, so they land a moment later.
    detail = await conversation_when(
        voice_client, auth, cid, lambda d: d["metrics"]["latency_ms"] is not None
    )
    kinds = [(m["type"], m["content"]) for m in detail["messages"]]
    assert kinds[0] == ("agent", "Hello Alice! How can I help you today?")
    assert kinds[1][0] == "user" and "opening hours" in kinds[1][1].lower()
    assert kinds[2] == ("agent", HOURS)
    assert detail["messages"][1]["meta"]["input"] == "speech"
    latency = detail["messages"][2]["meta"]["latency_ms"]
    assert 0 < latency < 5000
    assert detail["metrics"]["latency_ms"]["p50"] == latency
    registry = runtime.metrics.registry
    for histogram in ("voice_to_voice", "asr_final_wait", "tts_piece", "dialog_first_text"):
        count = registry.get_sample_value(f"voicebridge_{histogram}_seconds_count")
        assert count is not None and count >= 1, histogram

    ended = await voice_client.post(
        f"/v1/conversations/{cid}/end", json={"reason": "api_end"}, headers=auth
    )
    assert ended.status == 200
    event = await client.wait_for("conversation.ended", after=done)
    assert event.data == {"reason": "api_end", "status": "completed"}
    await client.closed.wait()
    assert client.close_code == 1000

    emitted = await stream_events(store, cid)
    types = [e["event"] for e in emitted]
    assert types[0] == "conversation.started" and types[-1] == "conversation.ended"
    assert types.count("message.received") == 3
    final_metrics = emitted[-1]["data"]["metrics"]
    assert final_metrics["resolution_status"] == "resolved"


async def test_a_real_caller_over_8khz_mulaw_is_understood_and_handed_off(
    converse: Connect, asr: MoonshineModel, voice_client: Client, auth: dict[str, str], store: Store
) -> None:
    client, created = await converse(
        {"handoff_target": "sip:desk@pbx.example.com"}, encoding="mulaw", sample_rate=8000
    )
    cid = created["conversation_id"]
    _greeting, done = await reply_audio(client)
    _name, path, reference = librivox()[0]
    human, rate = load_wav(path)
    await client.speak(resample(human, rate, 8000))
    final = await client.wait_for("transcript.final", after=done, timeout=60)
    assert word_error_rate(reference, final.data["text"]) <= 0.15, final.data["text"]

    # Words the built-in agent has no answer for: the fallback line, which offers a person.
    fallback, done = await reply_audio(client, after=client.index(final), timeout=60)
    heard = transcribe(asr, fallback, 8000)
    expected = "I'm sorry, I can't help with that. Would you like to talk to a person?"
    assert word_error_rate(expected, heard) <= 0.25, heard

    await client.say("yes please")
    handoff = await client.wait_for("agent.handoff", after=done)
    assert handoff.data == {"target": "sip:desk@pbx.example.com", "status": "succeeded"}
    event = await client.wait_for("conversation.ended", after=done)
    assert event.data == {"reason": "transferred", "status": "transferred"}
    await client.closed.wait()

    detail = await (await voice_client.get(f"/v1/conversations/{cid}", headers=auth)).json()
    assert detail["status"] == "transferred"
    assert detail["metrics"]["resolution_status"] == "handed_off"
    types = [e["event"] for e in await stream_events(store, cid)]
    assert "agent.handoff" in types
    assert types[-1] == "conversation.ended"


async def test_dtmf_zero_asks_for_a_person(converse: Connect) -> None:
    client, _created = await converse()
    _greeting, done = await reply_audio(client)
    await client.dtmf("0")
    line = await client.wait_for("agent.message", after=done)
    assert "transfer" in line.data["text"].lower()
    event = await client.wait_for("conversation.ended", after=done)
    assert event.data["reason"] == "transferred"


async def test_the_farewell_ends_the_conversation(
    converse: Connect, voice_client: Client, auth: dict[str, str]
) -> None:
    client, created = await converse(
        {"custom_responses": {"farewell": "Thanks for calling. Goodbye!"}}
    )
    _greeting, done = await reply_audio(client)
    await client.say("no thanks, that's all, goodbye")
    farewell = await client.wait_for("agent.message", after=done)
    assert farewell.data["text"] == "Thanks for calling. Goodbye!"
    event = await client.wait_for("conversation.ended", after=done)
    assert event.data == {"reason": "agent_hangup", "status": "completed"}
    # The farewell was spoken in full before the line closed.
    assert client.index(await client.wait_for("agent.audio.end", after=done + 1)) < client.index(
        event
    )
    await client.closed.wait()
    detail = await (
        await voice_client.get(f"/v1/conversations/{created['conversation_id']}", headers=auth)
    ).json()
    assert detail["messages"][-1]["content"] == "Thanks for calling. Goodbye!"
    assert detail["duration"] > 0
