"""Phone calls as conversations: SIPp calls the bridge's user agent over loopback and plays a
real LibriVox recording as RTP; the real voice models answer; the store is checked after."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from api.state import AppState
from bridge.models import ConversationSettings
from bridge.sip.useragent import UserAgent
from bridge.store import Store
from bridge.voice_runtime import VoiceRuntime
from media.resample import resample
from media.wer import word_error_rate
from tests.e2e.conftest import StartUserAgent
from tests.e2e.phone import (
    GREETING,
    NUMBER,
    Client,
    ended,
    make_agent,
    the_conversation,
    write_pcap,
)
from tests.sipp import SIPP, SippOptions, dtmf_to_pcap, run_sipp, scenario_path, start_sipp
from tests.unit.media.recordings import librivox, load_wav

pytestmark = pytest.mark.skipif(
    SIPP is None,
    reason="sipp is not installed (Debian package sip-tester, scripts/apt-packages.txt)",
)

LEAD_IN_S = 4.0
"""Silence before the caller speaks, so the greeting is heard out rather than barged in on."""
TAIL_S = 2.0


def speech_pcap(directory: Path) -> tuple[Path, str, float]:
    """The pcap of a LibriVox utterance between silences, its transcript and its length (s)."""
    _name, path, reference = librivox()[0]
    human, rate = load_wav(path)
    human = resample(human, rate, 16_000)
    silence = np.zeros(int(LEAD_IN_S * 16_000), np.int16)
    padded = np.concatenate([silence, human, np.zeros(int(TAIL_S * 16_000), np.int16)])
    return write_pcap(directory, padded), reference, padded.size / 16_000


async def keys_pressed(
    client: Client,
    auth: dict[str, str],
    tmp_path: Path,
    scenario: Path,
    port: int,
    duration_ms: str,
    pcap: Path | None = None,
) -> dict[str, Any]:
    """The conversation of a SIPp call in which the caller presses keys."""
    result = await run_sipp(
        SippOptions(
            scenario,
            remote=f"127.0.0.1:{port}",
            # Dialed without the +: carriers deliver both spellings.
            service=NUMBER.removeprefix("+"),
            keys={} if pcap is None else {"pcap": str(pcap)},
            extra_args=("-d", duration_ms),
        ),
        timeout=60,
        workdir=tmp_path / "sipp",
    )
    assert result.successful_calls == 1, (result.errors, result.screen)
    return await the_conversation(client, auth, ended)


def pressed(conversation: dict[str, Any]) -> list[str]:
    return [
        m["content"]
        for m in conversation["messages"]
        if m["type"] == "user" and (m.get("meta") or {}).get("input") == "dtmf"
    ]


async def test_a_caller_is_answered_understood_and_hangs_up(
    phone: tuple[Client, UserAgent], auth: dict[str, str], tmp_path: Path
) -> None:
    client, ua = phone
    await make_agent(client, auth)
    pcap, reference, seconds = speech_pcap(tmp_path)

    result = await run_sipp(
        SippOptions(
            scenario_path("call_speech"),
            remote=f"127.0.0.1:{ua.port}",
            # Dialed without the +: carriers deliver both spellings.
            service=NUMBER.removeprefix("+"),
            keys={"pcap": str(pcap)},
            extra_args=("-d", str(int((seconds + 4.0) * 1000))),
        ),
        timeout=90,
        workdir=tmp_path / "sipp",
    )
    assert result.successful_calls == 1, (result.errors, result.screen)

    conversation = await the_conversation(client, auth, ended)
    assert conversation["channel"] == "phone"
    assert conversation["user_id"] == "sipp"
    assert conversation["call"]["to"].startswith(f"sip:{NUMBER.removeprefix('+')}@")
    assert conversation["call"]["codec"] == "PCMU"
    assert conversation["call"]["call_id"]
    assert conversation["end_reason"] == "caller_hangup"
    assert conversation["status"] == "completed"
    messages = conversation["messages"]
    assert messages[0]["type"] == "agent"
    assert word_error_rate(GREETING, messages[0]["content"]) == 0
    said = [m["content"] for m in messages if m["type"] == "user"]
    assert said, messages
    assert word_error_rate(reference, said[0]) <= 0.2, said[0]
    assert ua.calls == []


async def test_ending_the_conversation_through_the_api_hangs_up_the_call(
    phone: tuple[Client, UserAgent], auth: dict[str, str], tmp_path: Path
) -> None:
    client, ua = phone
    await make_agent(client, auth)
    pcap = write_pcap(tmp_path, np.zeros(2 * 16_000, np.int16))
    sipp = await start_sipp(
        SippOptions(
            scenario_path("call_wait_agent_bye"),
            remote=f"127.0.0.1:{ua.port}",
            service=NUMBER,
            keys={"pcap": str(pcap)},
            recv_timeout_ms=30_000,
        ),
        tmp_path / "sipp",
    )
    try:
        greeted = await the_conversation(
            client, auth, lambda c: any(m["type"] == "agent" for m in c["messages"])
        )
        cid = greeted["conversation_id"]
        assert greeted["status"] == "active"
        ending = await client.post(f"/v1/conversations/{cid}/end", headers=auth)
        assert ending.status == 200, await ending.text()
        result = await sipp.wait(30)
    finally:
        await sipp.kill()
    assert result.successful_calls == 1, (result.errors, result.screen)
    conversation = await the_conversation(client, auth, ended)
    assert conversation["end_reason"] == "api_end"
    assert conversation["status"] == "completed"
    assert ua.calls == []


@pytest.mark.parametrize("marker", [True, False], ids=["marker", "no-marker"])
async def test_keypad_digits_reach_the_agent(
    phone: tuple[Client, UserAgent], auth: dict[str, str], tmp_path: Path, marker: bool
) -> None:
    client, ua = phone
    await make_agent(client, auth)
    pcap = tmp_path / "dtmf.pcap"
    # "5" and then "7": digits the built-in agent has no answer for, so each is a turn of its
    # own and the call goes on (a "0" would ask for a person).
    dtmf_to_pcap("57", pcap, duration_ms=120, gap_ms=1500, marker=marker)
    conversation = await keys_pressed(
        client, auth, tmp_path, scenario_path("dtmf_rfc4733"), ua.port, "6000", pcap
    )
    assert pressed(conversation) == ["5", "7"]
    assert conversation["end_reason"] == "caller_hangup"


async def test_keys_relayed_as_sip_info_reach_the_agent(
    phone: tuple[Client, UserAgent], auth: dict[str, str], tmp_path: Path
) -> None:
    client, ua = phone
    await make_agent(client, auth)
    conversation = await keys_pressed(
        client, auth, tmp_path, scenario_path("dtmf_sip_info"), ua.port, "2000"
    )
    assert pressed(conversation) == ["5", "7"]


async def test_a_caller_whose_audio_stops_is_hung_up_for_media_timeout(
    voice_client: Client, start_user_agent: StartUserAgent, auth: dict[str, str], tmp_path: Path
) -> None:
    ua = await start_user_agent(rtp_inactivity_timeout=2.0)
    await make_agent(voice_client, auth)
    # Half a second of audio, then nothing: a caller whose network went away.
    pcap = write_pcap(tmp_path, np.zeros(8_000, np.int16))
    result = await run_sipp(
        SippOptions(
            scenario_path("call_wait_agent_bye"),
            remote=f"127.0.0.1:{ua.port}",
            service=NUMBER,
            keys={"pcap": str(pcap)},
            recv_timeout_ms=30_000,
        ),
        timeout=60,
        workdir=tmp_path / "sipp",
    )
    assert result.successful_calls == 1, (result.errors, result.screen)
    conversation = await the_conversation(voice_client, auth, ended)
    assert conversation["end_reason"] == "media_timeout"
    # A call lost to the network did not complete (bridge/lifecycle.py).
    assert conversation["status"] == "failed"
    assert ua.calls == []


async def test_a_call_ended_through_the_api_before_its_session_started_still_ends(
    voice_client: Client, store: Store, runtime: VoiceRuntime, auth: dict[str, str]
) -> None:
    """A call's session starts from the conversation the node just created, without reading it
    back; an end command that the node read before that start must still end the session."""
    await runtime.ready()
    sessions = AppState.of(voice_client.app).voice.sessions
    agent = await store.agents.get((await make_agent(voice_client, auth))["agent_id"])
    conversation, _token = await store.conversations.create(
        agent_id=agent.agent_id,
        user_id="+15550100",
        language=agent.language,
        initial_context={},
        settings=ConversationSettings(),
        channel="phone",
        node=sessions.node,
    )
    cid = conversation.conversation_id
    ending = await voice_client.post(f"/v1/conversations/{cid}/end", headers=auth)
    assert ending.status == 200, await ending.text()
    for _ in range(100):
        if cid in sessions._ended_unheld:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the node never read the end command")
    session = await sessions.open_created(conversation, agent)
    await asyncio.wait_for(session.ended.wait(), 10)
    assert session.end_reason == "api_end"
    assert not sessions.holds(cid)
