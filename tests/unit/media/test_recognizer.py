"""Streaming recognition on real recordings: partials, speculative finals, cancellation."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from media.asr import MoonshineModel
from media.frames import Pcm16
from media.inference import InferencePool
from media.recognizer import Final, Partial, Recognizer
from media.resample import resample
from media.vad import SileroModel, Vad
from media.wer import word_error_rate
from tests.unit.media.recordings import librivox, load_wav


@pytest.fixture(scope="module")
def silero() -> SileroModel:
    return SileroModel()


def _frames(samples: Pcm16, lead_ms: int = 400, tail_ms: int = 1500) -> list[Pcm16]:
    audio = np.concatenate(
        (np.zeros(16 * lead_ms, np.int16), samples, np.zeros(16 * tail_ms, np.int16))
    )
    return [audio[i : i + 320] for i in range(0, audio.size - 319, 320)]


def _trim(samples: Pcm16, floor: float = 300.0) -> Pcm16:
    """Cut the recording's own leading and trailing quiet (20 ms windows under `floor` RMS)."""
    windows = samples[: samples.size // 320 * 320].reshape(-1, 320).astype(np.float64)
    loud = np.flatnonzero(np.sqrt(np.mean(windows**2, axis=1)) >= floor)
    return samples[loud[0] * 320 : (loud[-1] + 1) * 320]


async def _recognize(
    frames: list[Pcm16], asr: MoonshineModel, silero: SileroModel, pace_s: float = 0.0
) -> tuple[list[Partial], list[Final]]:
    pool = InferencePool(2)
    partials: list[Partial] = []
    finals: list[Final] = []
    recognizer = Recognizer("s1", asr.transcribe, pool, partials.append, finals.append)
    vad = Vad(silero, 16000)
    for frame in frames:
        recognizer.push(frame, vad.push(frame))
        await asyncio.sleep(pace_s)
    await recognizer.drain()
    pool.shutdown()
    return partials, finals


async def test_final_transcript_of_a_real_utterance(
    asr_model: MoonshineModel, silero: SileroModel
) -> None:
    _name, path, reference = librivox()[2]
    samples, rate = load_wav(path)
    # Real time pacing lets the speculative decode run while the hangover elapses.
    partials, finals = await _recognize(
        _frames(resample(samples, rate, 16000)), asr_model, silero, pace_s=0.02
    )
    assert len(finals) == 1
    final = finals[0]
    assert word_error_rate(reference, final.text) <= 0.1, final.text
    assert final.speculative
    assert partials, "a 5 s utterance gets partial transcripts"
    assert all(p.text for p in partials)


async def test_pause_then_more_speech_discards_the_speculation(
    asr_model: MoonshineModel, silero: SileroModel
) -> None:
    (_a, first_path, first_ref), (_b, second_path, second_ref) = librivox()[1], librivox()[4]
    first, rate = load_wav(first_path)
    second, _ = load_wav(second_path)
    # A 200 ms gap: longer than the pause (speculation starts), shorter than the hangover.
    gap = np.zeros(16 * 200, np.int16)
    joined = np.concatenate(
        (_trim(resample(first, rate, 16000)), gap, _trim(resample(second, rate, 16000)))
    )
    _partials, finals = await _recognize(_frames(joined), asr_model, silero, pace_s=0.005)
    assert len(finals) == 1
    assert word_error_rate(f"{first_ref} {second_ref}", finals[0].text) <= 0.15, finals[0].text


async def test_silence_never_reaches_the_model(silero: SileroModel) -> None:
    calls = 0

    def transcribe(_audio: np.ndarray, _cancelled: object, _draft: object, **_: bool) -> object:
        nonlocal calls
        calls += 1
        raise AssertionError("silence was sent to the recognizer")

    pool = InferencePool(1)
    recognizer = Recognizer("s", transcribe, pool, print, print)  # type: ignore[arg-type]
    vad = Vad(silero, 16000)
    for frame in _frames(np.zeros(16000 * 3, np.int16)):
        recognizer.push(frame, vad.push(frame))
    await recognizer.drain()
    pool.shutdown()
    assert calls == 0 and not recognizer.listening
