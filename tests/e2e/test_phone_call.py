"""Phone calls as conversations: SIPp calls the bridge's user agent over loopback and plays a
real LibriVox recording as RTP; the real voice models answer; the store is checked after."""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from api.metrics import ApiMetrics
from api.state import AppState
from bridge.phone import user_agent
from bridge.settings import Settings
from bridge.sip.useragent import UserAgent
from bridge.store import Store
from bridge.voice_runtime import VoiceRuntime
from media.resample import resample
from media.wer import word_error_rate
from tests.sipp import (
    SIPP,
    SippOptions,
    dtmf_to_pcap,
    free_port,
    run_sipp,
    scenario_path,
    start_sipp,
    wav_to_pcap,
)
from tests.unit.media.recordings import librivox, load_wav

pytestmark = pytest.mark.skipif(
    SIPP is None,
    reason="sipp is not installed (Debian package sip-tester, scripts/apt-packages.txt)",
)

Client = TestClient[Any, Any]

NUMBER = "+15550100"
GREETING = "Hello! How can I help you today?"
LEAD_IN_S = 4.0
"""Silence before the caller speaks, so the greeting is heard out rather than barged in on."""
TAIL_S = 2.0


@pytest.fixture
async def phone(
    settings: Settings, store: Store, runtime: VoiceRuntime
) -> AsyncIterator[tuple[Client, UserAgent]]:
    sip = settings.model_copy(update={"sip_host": "127.0.0.1", "sip_port": free_port()})
    app = create_app(sip, store, ApiMetrics(), runtime=runtime)
    async with TestClient(TestServer(app)) as client:
        voice = AppState.of(app).voice
        ua = user_agent(sip, store, voice.sessions, voice.clock)
        await ua.start()
        try:
            yield client, ua
        finally:
            await ua.drain_and_stop(5.0)
            await ua.close()


async def make_agent(client: Client, auth: dict[str, str]) -> None:
    made = await client.post(
        "/v1/agents",
        json={
            "name": "Support line",
            "phone_numbers": [NUMBER],
            "custom_responses": {"greeting": GREETING},
        },
        headers=auth,
    )
    assert made.status == 201, await made.text()


def write_pcap(directory: Path, samples: np.ndarray[Any, np.dtype[np.int16]]) -> Path:
    wav_path, pcap = directory / "caller.wav", directory / "caller.pcap"
    with wave.open(str(wav_path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16_000)
        wav.writeframes(samples.astype("<i2").tobytes())
    wav_to_pcap(wav_path, pcap, "PCMU")
    return pcap


def speech_pcap(directory: Path) -> tuple[Path, str, float]:
    """The pcap of a LibriVox utterance between silences, its transcript and its length (s)."""
    _name, path, reference = librivox()[0]
    human, rate = load_wav(path)
    human = resample(human, rate, 16_000)
    silence = np.zeros(int(LEAD_IN_S * 16_000), np.int16)
    padded = np.concatenate([silence, human, np.zeros(int(TAIL_S * 16_000), np.int16)])
    return write_pcap(directory, padded), reference, padded.size / 16_000


async def the_conversation(
    client: Client, auth: dict[str, str], ready: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The one conversation, once `ready` says so."""
    for _ in range(300):
        listed = await (await client.get("/v1/conversations", headers=auth)).json()
        if listed["data"]:
            cid = listed["data"][0]["conversation_id"]
            detail: dict[str, Any] = await (
                await client.get(f"/v1/conversations/{cid}", headers=auth)
            ).json()
            if ready(detail):
                return detail
        await asyncio.sleep(0.1)
    raise AssertionError("the conversation did not get there in time")


def ended(conversation: dict[str, Any]) -> bool:
    return str(conversation["status"]) != "active"


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
    result = await run_sipp(
        SippOptions(
            scenario_path("dtmf_rfc4733"),
            remote=f"127.0.0.1:{ua.port}",
            service=NUMBER.removeprefix("+"),
            keys={"pcap": str(pcap)},
            extra_args=("-d", "6000"),
        ),
        timeout=60,
        workdir=tmp_path / "sipp",
    )
    assert result.successful_calls == 1, (result.errors, result.screen)
    conversation = await the_conversation(client, auth, ended)
    pressed = [
        m["content"]
        for m in conversation["messages"]
        if m["type"] == "user" and (m.get("meta") or {}).get("input") == "dtmf"
    ]
    assert pressed == ["5", "7"]
    assert conversation["end_reason"] == "caller_hangup"
