"""Piper through our Speaker: intelligible through a phone line, speed and pitch work."""

from __future__ import annotations

import numpy as np
import pytest

from media import g711
from media.asr import MoonshineModel
from media.frames import Pcm16
from media.resample import resample
from media.tts import Pitch, Speaker, Style
from media.wer import word_error_rate

GREETING = "Hello John, thanks for calling Acme support. How can I help you today?"


def _through_phone(frames: list[Pcm16]) -> np.ndarray:
    audio = np.concatenate(frames)
    line = g711.ulaw_decode(g711.ulaw_encode(resample(audio, 16000, 8000)))
    return resample(line, 8000, 16000).astype(np.float32) / 32768.0


def _median_f0(audio: Pcm16, rate: int = 16000) -> float:
    """Median pitch of voiced 40 ms windows by autocorrelation (70-400 Hz)."""
    window = rate // 25
    lags = np.arange(rate // 400, rate // 70)
    pitches = []
    for start in range(0, audio.size - window, window):
        chunk = audio[start : start + window].astype(np.float64)
        if np.sqrt(np.mean(chunk**2)) < 500:
            continue
        corr = np.correlate(chunk, chunk, "full")[window - 1 :]
        best = lags[np.argmax(corr[lags])]
        if corr[best] > 0.4 * corr[0]:
            pitches.append(rate / best)
    return float(np.median(pitches))


def test_speech_is_understood_through_8k_ulaw(
    male_speaker: Speaker, asr_model: MoonshineModel
) -> None:
    frames = list(male_speaker.frames(GREETING))
    assert all(frame.size == 320 for frame in frames)
    heard = asr_model.transcribe(_through_phone(frames)).text
    # "Acme" is a made-up word the recognizer may spell differently, even as two words ("at me":
    # two errors of the 13); the rest must be right.
    assert word_error_rate(GREETING, heard) <= 2 / 13, heard


def test_speed_changes_duration(male_speaker: Speaker) -> None:
    normal = len(male_speaker.phrase(GREETING, Style(speed=1.0)))
    fast = len(male_speaker.phrase(GREETING, Style(speed=1.6)))
    slow = len(male_speaker.phrase(GREETING, Style(speed=0.6)))
    assert fast < normal * 0.8
    assert slow > normal * 1.3


def test_pitch_moves_the_voice_not_the_duration(male_speaker: Speaker) -> None:
    def said(pitch: Pitch) -> list[Pcm16]:
        # Piper draws noise on every synthesis: one take's pitch varies by several percent
        # (high over low measured 1.05-1.26 in single takes), three pooled by far less
        # (1.12-1.19 in ten trials).
        return [
            np.concatenate(list(male_speaker.frames(GREETING, Style(pitch=pitch))))
            for _ in range(3)
        ]

    low, high = said("low"), said("high")
    # The styles are 26% apart.
    assert _median_f0(np.concatenate(high)) > _median_f0(np.concatenate(low)) * 1.08
    assert 0.75 < sum(h.size for h in high) / sum(x.size for x in low) < 1.25


def test_phrases_are_cached_per_style(male_speaker: Speaker) -> None:
    assert male_speaker.cached("Goodbye for now.", Style()) is None
    first = male_speaker.phrase("Goodbye for now.", Style())
    assert male_speaker.phrase("Goodbye for now.", Style()) is first
    assert male_speaker.cached("Goodbye for now.", Style()) is first
    assert male_speaker.phrase("Goodbye for now.", Style(speed=1.2)) is not first
    assert male_speaker.cached("Goodbye for now.", Style(pitch="high")) is None


def test_style_bounds() -> None:
    with pytest.raises(ValueError):
        Style(speed=2.5)
