"""Interop with pjproject: pjsua2 (pjproject's own SWIG binding, `pjsua2-python`) places
several calls into the bridge at once, each playing a different LibriVox recording and recording
what the bridge sends; the bridge's greeting is transcribed from those recordings with our ASR,
and each stored conversation must hold its own caller's words.

The pjsua2 peer runs in a subprocess (tests/e2e/pjsua_peer.py says why). Left to its own
priorities pjsua offers speex, iLBC and GSM first and then PCMU before PCMA and G722, so the
bridge, keeping the offer's order (RFC 3264 §6.1), answers PCMU; a second run makes pjsua
offer G722 first, the wideband codec with the odd 8000 Hz RTP clock (RFC 3551 §4.5.2) that
is a classic interop trap. Either way the bridge must store the codec pjsua reports.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bridge.sip.useragent import UserAgent
from media.asr import MoonshineModel
from media.resample import resample
from media.wer import word_error_rate
from tests.e2e.phone import (
    GREETING,
    NUMBER,
    Client,
    ended,
    make_agent,
    the_conversations,
    write_wav,
)
from tests.unit.media.recordings import librivox, load_wav

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("pjsua2") is None,
    reason="pjsua2 is not installed (pip package pjsua2-python, the test extra in pyproject.toml)",
)

ROOT = Path(__file__).resolve().parents[2]
LEAD_IN_S = 4.0
"""Silence before each caller speaks, so the greeting is heard out rather than barged in on."""
TAIL_S = 2.0
SETTLE_S = 3.0
"""Time after the recording ends for the last words to be transcribed before the hang-up."""


@dataclass(frozen=True)
class Caller:
    wav: Path
    reference: str
    """What the caller says."""
    speech_s: float
    seconds: float
    """The whole WAV, silences included."""

    @property
    def greeting_window_s(self) -> float:
        """The start of what this caller hears that can only hold the greeting: the bridge's
        answer cannot begin before the caller's words have ended."""
        return LEAD_IN_S + self.speech_s


def caller_wavs(directory: Path, count: int) -> list[Caller]:
    """Per call, a WAV of a different LibriVox utterance between silences."""
    out = []
    for index, (_name, path, reference) in enumerate(librivox()[:count]):
        human, rate = load_wav(path)
        human = resample(human, rate, 16_000)
        padded = np.concatenate(
            [
                np.zeros(int(LEAD_IN_S * 16_000), np.int16),
                human,
                np.zeros(int(TAIL_S * 16_000), np.int16),
            ]
        )
        wav = write_wav(directory / f"caller-{index}.wav", padded)
        out.append(Caller(wav, reference, human.size / 16_000, padded.size / 16_000))
    return out


async def run_peer(
    target: str,
    plays: list[Path],
    record_dir: Path,
    calls: int,
    hold_s: float,
    prefer: str | None,
) -> dict[str, Any]:
    args = [f"--play={p}" for p in plays]
    if prefer:
        args.append(f"--prefer={prefer}")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.e2e.pjsua_peer",
        f"--target={target}",
        *args,
        f"--record-dir={record_dir}",
        f"--calls={calls}",
        f"--hold-seconds={hold_s}",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), hold_s + 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    lines = out.decode().strip().splitlines()
    assert process.returncode == 0 and lines, (
        f"pjsua peer exited {process.returncode}\nstdout: {out.decode()[-2000:]}\n"
        f"stderr: {err.decode()[-2000:]}\nlog: {record_dir / 'pjsua.log'}"
    )
    summary: dict[str, Any] = json.loads(lines[-1])
    # Kept beside pjsua.log and the recordings for whoever reads a failure.
    (record_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def transcribe_start(asr: MoonshineModel, path: Path, seconds: float) -> str:
    samples, rate = load_wav(path)
    samples = resample(samples, rate, 16_000) if rate != 16_000 else samples
    head = samples[: int(seconds * 16_000)]
    return asr.transcribe(head.astype(np.float32) / 32768.0).text


@pytest.mark.parametrize(
    ("prefer", "expected_codec", "count"),
    # pjsua2-python allows at most 4 simultaneous calls; 3 and 4 keep each run near 25 s on
    # two cores that also run every call's models.
    [(None, None, 3), ("G722/16000", "G722", 4)],
    ids=["pjsua-order", "g722-first"],
)
async def test_pjsua2_calls_are_answered_greeted_and_understood(
    phone: tuple[Client, UserAgent],
    auth: dict[str, str],
    asr: MoonshineModel,
    tmp_path: Path,
    prefer: str | None,
    expected_codec: str | None,
    count: int,
) -> None:
    client, ua = phone
    await make_agent(client, auth)
    callers = caller_wavs(tmp_path, count)
    hold_s = max(c.seconds for c in callers) + SETTLE_S

    summary = await run_peer(
        f"sip:{NUMBER}@127.0.0.1:{ua.port}",
        [c.wav for c in callers],
        tmp_path / "pjsua",
        count,
        hold_s,
        prefer,
    )
    calls = summary["calls"]
    assert len(calls) == count
    assert summary["all_disconnected"], calls
    for call in calls:
        assert call["connected"], call
        assert call["hung_up_by"] == "peer", call
        assert call["duration"] >= hold_s - 1.0, call
        assert call["call_id"], call
        if expected_codec is not None:
            assert call["codec"] == expected_codec, call
        # The bridge sends a frame every 20 ms for the whole call, silence included, without
        # gaps in its sequence numbers: pjsua counted as many packets as it sent itself.
        rtp = call["rtp"]
        assert rtp["rx_loss"] == 0 and rtp["rx_dup"] == 0, call
        assert rtp["rx_packets"] >= 0.9 * rtp["tx_packets"], call
    assert len({c["call_id"] for c in calls}) == count

    conversations = await the_conversations(client, auth, count, ended)
    by_call_id = {c["call"]["call_id"]: c for c in conversations}
    assert set(by_call_id) == {c["call_id"] for c in calls}
    for call, caller in zip(calls, callers, strict=True):
        conversation = by_call_id[call["call_id"]]
        where = f"call {call['index']} ({call['call_id']})"
        assert conversation["channel"] == "phone", where
        assert conversation["end_reason"] == "caller_hangup", where
        assert conversation["status"] == "completed", where
        assert conversation["call"]["codec"] == call["codec"], (where, call)
        messages = conversation["messages"]
        assert messages[0]["type"] == "agent", (where, messages)
        assert word_error_rate(GREETING, messages[0]["content"]) == 0, (where, messages)
        # One caller per conversation: each holds its own recording's words, nobody else's.
        said = " ".join(m["content"] for m in messages if m["type"] == "user")
        assert word_error_rate(caller.reference, said) <= 0.25, (where, said)

        heard = transcribe_start(asr, Path(call["recorded"]), caller.greeting_window_s)
        assert word_error_rate(GREETING, heard) <= 0.2, (where, heard)
    assert ua.calls == []
