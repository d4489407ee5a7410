"""Phone calls are recorded when their agent (or, for agents that leave it null, the server)
says so: SIPp calls the bridge, then the recording is fetched through the API like a WebSocket
conversation's, a stereo WAV with the caller on the left and the agent on the right."""

from __future__ import annotations

import asyncio
import io
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from media.resample import resample
from tests.e2e.conftest import StartUserAgent
from tests.e2e.phone import NUMBER, Client, ended, make_agent, the_conversation, write_pcap
from tests.sipp import SIPP, SippOptions, run_sipp, scenario_path
from tests.unit.media.recordings import librivox, load_wav

pytestmark = pytest.mark.skipif(
    SIPP is None,
    reason="sipp is not installed (Debian package sip-tester, scripts/apt-packages.txt)",
)

RATE = 16_000
LEAD_IN_S = 4.0
"""The caller is silent this long, while the agent greets."""
GREETING_S = 1.5
"""Shorter than the greeting ("Hello! How can I help you today?") takes to say."""


async def _call(
    client: Client,
    auth: dict[str, str],
    port: int,
    tmp_path: Path,
    caller: np.ndarray[Any, np.dtype[np.int16]],
) -> dict[str, Any]:
    """The ended conversation of a SIPp call that plays `caller` (16 kHz) and hangs up."""
    result = await run_sipp(
        SippOptions(
            scenario_path("call_speech"),
            remote=f"127.0.0.1:{port}",
            service=NUMBER,
            keys={"pcap": str(write_pcap(tmp_path, caller))},
            extra_args=("-d", str(int((caller.size / RATE + 1.0) * 1000))),
        ),
        timeout=90,
        workdir=tmp_path / "sipp",
    )
    assert result.successful_calls == 1, (result.errors, result.screen)
    return await the_conversation(client, auth, ended)


async def _recording(client: Client, auth: dict[str, str], cid: str) -> tuple[int, bytes]:
    """The recording's status and body, once the ended session has finished writing it."""
    for _ in range(100):
        response = await client.get(f"/v1/conversations/{cid}/recording", headers=auth)
        body = await response.read()
        if response.status != 409:
            return response.status, body
        await asyncio.sleep(0.1)
    raise AssertionError("the recording stayed in progress")


def _channels(wav_bytes: bytes) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    with wave.open(io.BytesIO(wav_bytes)) as clip:
        assert (clip.getnchannels(), clip.getsampwidth(), clip.getframerate()) == (2, 2, RATE)
        samples = np.frombuffer(clip.readframes(clip.getnframes()), "<i2").reshape(-1, 2)
    return samples[:, 0].astype(np.float64), samples[:, 1].astype(np.float64)


def _rms(samples: np.ndarray[Any, Any], start_s: float, end_s: float) -> float:
    window = samples[int(start_s * RATE) : int(end_s * RATE)]
    assert window.size, (start_s, end_s, samples.size)
    return float(np.sqrt(np.mean(window**2)))


async def test_an_agent_that_records_its_calls_gets_a_stereo_recording(
    voice_client: Client, start_user_agent: StartUserAgent, auth: dict[str, str], tmp_path: Path
) -> None:
    ua = await start_user_agent()
    await make_agent(voice_client, auth, record_phone_calls=True)
    _name, path, _reference = librivox()[0]
    human, rate = load_wav(path)
    human = resample(human, rate, RATE)
    silence = np.zeros(int(LEAD_IN_S * RATE), np.int16)
    conversation = await _call(
        voice_client, auth, ua.port, tmp_path, np.concatenate([silence, human])
    )
    assert conversation["settings"]["recording_enabled"] is True

    status, body = await _recording(voice_client, auth, conversation["conversation_id"])
    assert status == 200
    left, right = _channels(body)
    speech_s = human.size / RATE
    assert left.size / RATE >= LEAD_IN_S + speech_s - 0.5
    # The greeting, while the caller is silent: on the right only.
    greeting_right, greeting_left = _rms(right, 0.2, GREETING_S), _rms(left, 0.2, GREETING_S)
    assert greeting_right > 300 and greeting_left < greeting_right / 20, (
        greeting_left,
        greeting_right,
    )
    # The caller's speech, while the agent listens: on the left only.
    caller_left = _rms(left, LEAD_IN_S + 0.5, LEAD_IN_S + speech_s - 0.5)
    caller_right = _rms(right, LEAD_IN_S + 0.5, LEAD_IN_S + speech_s - 0.5)
    assert caller_left > 300 and caller_right < caller_left / 5, (caller_left, caller_right)


@pytest.mark.parametrize(
    ("agent_says", "server_default", "recorded"),
    [(None, True, True), (False, True, False), (None, False, False), (True, False, True)],
)
async def test_the_agent_chooses_and_null_follows_the_server_default(
    voice_client: Client,
    start_user_agent: StartUserAgent,
    auth: dict[str, str],
    tmp_path: Path,
    agent_says: bool | None,
    server_default: bool,
    recorded: bool,
) -> None:
    ua = await start_user_agent(record_phone_calls=server_default)
    agent = await make_agent(voice_client, auth, record_phone_calls=agent_says)
    assert agent["record_phone_calls"] is agent_says
    conversation = await _call(voice_client, auth, ua.port, tmp_path, np.zeros(3 * RATE, np.int16))
    assert conversation["settings"]["recording_enabled"] is recorded

    status, body = await _recording(voice_client, auth, conversation["conversation_id"])
    if recorded:
        assert status == 200
        _left, right = _channels(body)
        assert _rms(right, 0.2, GREETING_S) > 300
    else:
        assert status == 404
        assert b'"recording_disabled"' in body


async def test_a_listen_line_records_the_caller_and_never_speaks(
    voice_client: Client, start_user_agent: StartUserAgent, auth: dict[str, str], tmp_path: Path
) -> None:
    ua = await start_user_agent()
    await make_agent(voice_client, auth, record_phone_calls=True, dialog_engine={"type": "listen"})
    _name, path, _reference = librivox()[0]
    human, rate = load_wav(path)
    human = resample(human, rate, RATE)
    conversation = await _call(voice_client, auth, ua.port, tmp_path, human)
    assert (conversation["status"], conversation["end_reason"]) == ("completed", "caller_hangup")
    assert conversation["messages"] == []

    status, body = await _recording(voice_client, auth, conversation["conversation_id"])
    assert status == 200
    left, right = _channels(body)
    speech_s = human.size / RATE
    assert _rms(left, 0.5, speech_s - 0.5) > 300
    assert float(np.abs(right).max()) == 0.0
