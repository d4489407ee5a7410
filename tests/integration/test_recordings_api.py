"""GET /v1/conversations/{id}/recording over loopback HTTP, with the recording written the way the
session writes it: a media.recording.Recorder on the partial path, then `finish`."""

from __future__ import annotations

import io
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from aiohttp.test_utils import TestClient

from bridge import clock, recordings
from bridge.settings import Settings
from media.recording import Recorder

Client = TestClient[Any, Any]

FRAME = 320  # 20 ms at 16 kHz
SECOND_MS = 1000


async def _conversation(client: Client, auth: dict[str, str], *, recorded: bool) -> str:
    response = await client.post(
        "/v1/agents", json={"name": "Support", "language": "en-US"}, headers=auth
    )
    agent_id = (await response.json())["agent_id"]
    response = await client.post(
        "/v1/conversations",
        json={
            "agent_id": agent_id,
            "user_id": "user_1",
            "settings": {"recording_enabled": recorded},
        },
        headers=auth,
    )
    assert response.status == 201, await response.text()
    cid: str = (await response.json())["conversation_id"]
    return cid


async def _end(client: Client, auth: dict[str, str], cid: str) -> None:
    response = await client.post(
        f"/v1/conversations/{cid}/end", json={"reason": "user_ended"}, headers=auth
    )
    assert response.status == 200, await response.text()


def _record(path: Path) -> tuple[Recorder, npt.NDArray[np.int16]]:
    """One second of audio on each side; returns the open recorder and the expected samples."""
    rng = np.random.default_rng(7)
    expected = rng.integers(-20000, 20000, size=(16000, 2), dtype=np.int16)
    recorder = Recorder(path)
    for i in range(16000 // FRAME):
        chunk = expected[i * FRAME : (i + 1) * FRAME]
        recorder.caller(chunk[:, 0].copy(), i * 20)
        recorder.agent(chunk[:, 1].copy(), i * 20)
    return recorder, expected


async def _error(client: Client, auth: dict[str, str], cid: str, status: int) -> str:
    response = await client.get(f"/v1/conversations/{cid}/recording", headers=auth)
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    code: str = (await response.json())["error"]["code"]
    return code


async def _finished_recording(
    client: Client, auth: dict[str, str], settings: Settings
) -> tuple[str, npt.NDArray[np.int16]]:
    cid = await _conversation(client, auth, recorded=True)
    recorder, expected = _record(recordings.recording_path(settings.data_dir, cid))
    recordings.finish(recorder.close())
    await _end(client, auth, cid)
    return cid, expected


async def test_an_ended_conversation_serves_its_stereo_wav(
    app_client: Client, auth: dict[str, str], settings: Settings
) -> None:
    cid = await _conversation(app_client, auth, recorded=True)
    recorder, expected = _record(recordings.recording_path(settings.data_dir, cid))
    # Active, and the session is still writing: not yet.
    assert await _error(app_client, auth, cid, 409) == "recording_in_progress"
    await _end(app_client, auth, cid)
    # Ended, but the session has not closed the file yet.
    assert await _error(app_client, auth, cid, 409) == "recording_in_progress"
    recordings.finish(recorder.close())

    response = await app_client.get(f"/v1/conversations/{cid}/recording", headers=auth)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"] == "audio/wav"
    assert response.headers["Content-Disposition"] == f'attachment; filename="{cid}.wav"'
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["X-Request-Id"]
    body = await response.read()
    assert body == recordings.finished_path(settings.data_dir, cid).read_bytes()
    with wave.open(io.BytesIO(body)) as clip:
        assert (clip.getnchannels(), clip.getsampwidth(), clip.getframerate()) == (2, 2, 16000)
        samples = np.frombuffer(clip.readframes(clip.getnframes()), "<i2").reshape(-1, 2)
    assert np.array_equal(samples, expected)


async def test_range_requests_get_partial_content(
    app_client: Client, auth: dict[str, str], settings: Settings
) -> None:
    cid, _expected = await _finished_recording(app_client, auth, settings)
    whole = recordings.finished_path(settings.data_dir, cid).read_bytes()
    url = f"/v1/conversations/{cid}/recording"
    response = await app_client.get(url, headers={**auth, "Range": "bytes=44-1043"})
    assert response.status == 206
    assert response.headers["Content-Range"] == f"bytes 44-1043/{len(whole)}"
    assert await response.read() == whole[44:1044]
    response = await app_client.get(url, headers={**auth, "Range": "bytes=-100"})
    assert response.status == 206
    assert await response.read() == whole[-100:]


async def test_a_conversation_started_without_recording_has_none(
    app_client: Client, auth: dict[str, str]
) -> None:
    cid = await _conversation(app_client, auth, recorded=False)
    assert await _error(app_client, auth, cid, 404) == "recording_disabled"
    await _end(app_client, auth, cid)
    assert await _error(app_client, auth, cid, 404) == "recording_disabled"


async def test_a_recording_the_session_never_wrote_is_not_found(
    app_client: Client, auth: dict[str, str]
) -> None:
    cid = await _conversation(app_client, auth, recorded=True)
    # Before the session has opened its recorder, the recording is still to come.
    assert await _error(app_client, auth, cid, 409) == "recording_in_progress"
    await _end(app_client, auth, cid)
    assert await _error(app_client, auth, cid, 404) == "recording_not_found"


async def test_a_recording_past_the_retention_is_swept_and_reported_expired(
    app_client: Client,
    auth: dict[str, str],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cid, _expected = await _finished_recording(app_client, auth, settings)
    retention = settings.recording_retention_days * recordings.DAY
    later = time.time() + retention + recordings.DAY
    directory = recordings.recordings_dir(settings.data_dir)
    assert recordings.sweep(directory, retention, time.time()) == 0
    assert recordings.sweep(directory, retention, later) == 1
    monkeypatch.setattr(clock, "now_ms", lambda: int(later * 1000))
    assert await _error(app_client, auth, cid, 404) == "recording_expired"


async def test_unknown_conversations_and_missing_keys_are_refused(
    app_client: Client, auth: dict[str, str]
) -> None:
    unknown = "conv_01jd4y3k8m2q9w7e5r1t6y0z3h"
    assert await _error(app_client, auth, unknown, 404) == "conversation_not_found"
    assert await _error(app_client, auth, "conv_..", 404) == "conversation_not_found"
    cid = await _conversation(app_client, auth, recorded=True)
    for headers in ({}, {"Authorization": "Bearer vbk_000000000000_nope"}):
        response = await app_client.get(f"/v1/conversations/{cid}/recording", headers=headers)
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "invalid_api_key"
