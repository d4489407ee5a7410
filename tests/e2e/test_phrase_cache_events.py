"""A conversation's events and stored messages do not depend on the phrase cache: the first
conversation with a line synthesizes it, later ones play it from the cache at once, and the
client sees the same either way (for the greeting, the farewell and the handoff line)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from examples.ws_client import VoiceClient
from tests.e2e.conftest import Connect

Client = TestClient[Any, Any]

_lines = itertools.count(1)
AUDIO_EVENTS = ("agent.audio.start", "agent.message", "agent.audio.end")


def _unique(text: str) -> str:
    # A line no other test says, so the first conversation here really synthesizes it.
    return f"{text} This is test line {next(_lines)} of the phrase cache."


def _seen(client: VoiceClient) -> list[tuple[str, str | None]]:
    kept = ("ready", *AUDIO_EVENTS, "conversation.ended")
    return [(e.type, e.data.get("text")) for e in client.events if e.type in kept]


async def _talk(converse: Connect, agent: dict[str, Any], last_turn: str) -> VoiceClient:
    client, _created = await converse(agent)
    greeted = await client.wait_for("agent.audio.end", timeout=60)
    await client.say(last_turn)
    await client.wait_for("conversation.ended", after=client.index(greeted) + 1, timeout=60)
    await client.closed.wait()
    return client


@pytest.mark.parametrize(
    ("line_name", "last_turn", "reason"),
    [
        ("farewell", "no thanks, goodbye", "agent_hangup"),
        ("handoff", "a person, please", "transferred"),
    ],
)
async def test_cached_lines_send_the_same_events_as_fresh_ones(
    converse: Connect,
    voice_client: Client,
    auth: dict[str, str],
    line_name: str,
    last_turn: str,
    reason: str,
) -> None:
    greeting, last_line = _unique("Hello! Welcome."), _unique("Alright.")
    agent = {"custom_responses": {"greeting": greeting, line_name: last_line}}
    fresh = await _talk(converse, agent, last_turn)
    cached = await _talk(converse, agent, last_turn)

    expected = [
        (kind, text if kind == "agent.message" else None)
        for text in (greeting, last_line)
        for kind in AUDIO_EVENTS
    ]
    for client in (fresh, cached):
        seen = _seen(client)
        assert seen[0][0] == "ready" and seen[-1][0] == "conversation.ended", seen
        assert seen[1:-1] == expected
        ended = await client.wait_for("conversation.ended")
        assert ended.data["reason"] == reason
    stored = []
    for client in (fresh, cached):
        cid = client.events[0].data["conversation_id"]
        detail = await (await voice_client.get(f"/v1/conversations/{cid}", headers=auth)).json()
        stored.append([(m["type"], m["content"]) for m in detail["messages"]])
    assert stored[0] == stored[1]
    assert stored[0] == [("agent", greeting), ("user", last_turn), ("agent", last_line)]
