"""A listen agent (dialog engine {"type": "listen"}): a line that never greets nor answers.
Without `transcribe` nothing runs on what the caller says (media only: no speech detection,
no recognition); with it, the caller's speech becomes user messages and transcript events,
still without a word from the agent."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient

from bridge.store import Store
from bridge.voice_runtime import VoiceRuntime
from media.resample import resample
from media.wer import word_error_rate
from tests.e2e.conftest import Connect
from tests.e2e.test_voice_conversation import conversation_when, stream_events
from tests.unit.media.recordings import librivox, load_wav

Client = TestClient[Any, Any]


def spoken() -> tuple[Any, str]:
    _name, path, reference = librivox()[0]
    human, rate = load_wav(path)
    return resample(human, rate, 16_000), reference


def recognitions(runtime: VoiceRuntime) -> float:
    """Final transcripts the server has decoded, from its own histogram."""
    value = runtime.metrics.registry.get_sample_value("voicebridge_asr_final_wait_seconds_count")
    return value or 0.0


async def test_a_listen_line_says_nothing_and_runs_nothing_on_what_it_hears(
    converse: Connect,
    voice_client: Client,
    auth: dict[str, str],
    store: Store,
    runtime: VoiceRuntime,
) -> None:
    client, created = await converse({"dialog_engine": {"type": "listen"}})
    cid = created["conversation_id"]
    finals_before = recognitions(runtime)
    audio, _reference = spoken()
    await client.speak(audio)
    # The line goes on with silence: a session that listened would have its final by now
    # (the transcribing test below gets one well within this).
    await asyncio.sleep(2)
    await client.dtmf("5")
    detail = await conversation_when(voice_client, auth, cid, lambda d: len(d["messages"]) == 1)
    assert [(m["type"], m["content"]) for m in detail["messages"]] == [("user", "5")]
    assert recognitions(runtime) == finals_before
    kinds = {event.type for event in client.events}
    assert not kinds & {
        "agent.audio.start",
        "agent.message",
        "transcript.partial",
        "transcript.final",
    }, kinds
    assert client.audio.pcm16(after_event=-1).size == 0
    await client.end()
    await client.closed.wait()
    emitted = [e["event"] for e in await stream_events(store, cid)]
    assert emitted[0] == "conversation.started" and emitted[-1] == "conversation.ended"


async def test_a_transcribing_listen_line_stores_what_the_caller_said_and_never_answers(
    converse: Connect, voice_client: Client, auth: dict[str, str]
) -> None:
    client, created = await converse({"dialog_engine": {"type": "listen", "transcribe": True}})
    cid = created["conversation_id"]
    audio, reference = spoken()
    await client.speak(audio)
    final = await client.wait_for("transcript.final", timeout=60)
    assert word_error_rate(reference, final.data["text"]) <= 0.15, final.data["text"]
    detail = await conversation_when(voice_client, auth, cid, lambda d: len(d["messages"]) == 1)
    (message,) = detail["messages"]
    assert (message["type"], message["content"]) == ("user", final.data["text"])
    assert message["meta"]["input"] == "speech"
    kinds = {event.type for event in client.events}
    assert not kinds & {"agent.audio.start", "agent.message"}, kinds
    assert client.audio.pcm16(after_event=-1).size == 0
    await client.end()
    await client.closed.wait()
