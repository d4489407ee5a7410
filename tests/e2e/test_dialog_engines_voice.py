"""Network dialog engines inside a spoken conversation: an OpenAI-compatible server whose reply
is spoken sentence by sentence as it streams, and one that fails, which the caller hears as the
agent's error line while error.occurred is recorded."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bridge.store import Store
from media.asr import MoonshineModel
from media.wer import word_error_rate
from tests.e2e.conftest import Connect
from tests.e2e.test_voice_conversation import reply_audio, stream_events, transcribe

Client = TestClient[Any, Any]


def _chunk(content: str | None = None, finish: str | None = None) -> bytes:
    delta = {} if content is None else {"content": content}
    body = {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


@pytest.fixture
async def model_server() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """/good streams a reply about the caller's words; /bad answers 500."""
    seen: list[dict[str, Any]] = []

    async def good(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        seen.append(body)
        said = body["messages"][-1]["content"]
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for word in f"You asked about {said}. I will check that for you right away.".split(" "):
            await response.write(_chunk(word + " "))
            await asyncio.sleep(0.02)
        await response.write(_chunk(finish="stop"))
        await response.write(b"data: [DONE]\n\n")
        return response

    async def bad(request: web.Request) -> web.Response:
        seen.append(await request.json())
        return web.json_response({"error": {"message": "overloaded"}}, status=500)

    app = web.Application()
    app.router.add_post("/good/chat/completions", good)
    app.router.add_post("/bad/chat/completions", bad)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("")).rstrip("/"), seen
    await server.close()


async def test_a_streamed_model_reply_is_spoken(
    converse: Connect, model_server: tuple[str, list[dict[str, Any]]], asr: MoonshineModel
) -> None:
    base, seen = model_server
    engine = {"type": "openai", "base_url": f"{base}/good", "model": "local"}
    client, _created = await converse({"dialog_engine": engine, "personality": "cheerful"})
    _greeting, done = await reply_audio(client)
    await client.say("my parcel")
    answer, _end = await reply_audio(client, after=done)
    expected = "You asked about my parcel. I will check that for you right away."
    assert word_error_rate(expected, transcribe(asr, answer, 16_000)) <= 0.2
    message = await client.wait_for("agent.message", after=done)
    assert message.data["text"] == expected
    system = seen[-1]["messages"][0]
    assert system["role"] == "system" and "cheerful" in system["content"]


async def test_a_failing_model_gives_the_error_line_and_an_event(
    converse: Connect,
    model_server: tuple[str, list[dict[str, Any]]],
    store: Store,
    voice_client: Client,
    auth: dict[str, str],
) -> None:
    base, _seen = model_server
    engine = {"type": "openai", "base_url": f"{base}/bad", "model": "local"}
    lines = {"error": "Sorry, one moment please. Could you repeat that?"}
    client, created = await converse({"dialog_engine": engine, "custom_responses": lines})
    _greeting, done = await reply_audio(client)
    await client.say("where is my parcel")
    error = await client.wait_for("error", after=done)
    assert error.data["code"] == "dialog_http_error"
    message = await client.wait_for("agent.message", after=done)
    assert message.data["text"] == lines["error"]
    await client.wait_for("agent.audio.end", after=client.index(message))
    await client.end()
    await client.wait_for("conversation.ended")
    events = await stream_events(store, created["conversation_id"])
    occurred = [e for e in events if e["event"] == "error.occurred"]
    assert occurred and occurred[0]["data"]["error"]["code"] == "dialog_http_error"
