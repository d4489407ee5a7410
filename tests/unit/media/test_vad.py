"""The VAD on real human recordings (Debian's pocketsphinx-testdata) and on non-speech."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from media import g711
from media.frames import Pcm16
from media.resample import resample
from media.segmenter import Kind
from media.vad import SileroModel, Vad
from tests.unit.media.recordings import load_wav

RECORDINGS = Path("/usr/share/pocketsphinx/test/data")
UTTERANCES = [
    RECORDINGS / "librivox" / "sense_and_sensibility_01_austen_64kb-0880.wav",
    RECORDINGS / "librivox" / "sense_and_sensibility_01_austen_64kb-0890.wav",
    RECORDINGS / "cards" / "001.wav",
]
LEAD_MS, TAIL_MS = 500, 1500


@pytest.fixture(scope="module")
def model() -> SileroModel:
    return SileroModel()


def _events(model: SileroModel, samples: Pcm16, rate: int) -> list[tuple[Kind, int]]:
    vad = Vad(model, rate)
    step = vad.frame_samples
    events = []
    for start in range(0, samples.size - step + 1, step):
        events += [(e.kind, e.at_ms) for e in vad.push(samples[start : start + step])]
    return events


def _padded(samples: Pcm16, rate: int) -> Pcm16:
    lead = np.zeros(rate * LEAD_MS // 1000, np.int16)
    tail = np.zeros(rate * TAIL_MS // 1000, np.int16)
    return np.concatenate((lead, samples, tail))


@pytest.mark.parametrize("path", UTTERANCES, ids=lambda p: p.name)
def test_one_utterance_is_one_segment_at_16k_and_through_8k_ulaw(
    model: SileroModel, path: Path
) -> None:
    samples, rate = load_wav(path)
    wide = _padded(resample(samples, rate, 16000), 16000)
    narrow = _padded(g711.ulaw_decode(g711.ulaw_encode(resample(samples, rate, 8000))), 8000)
    clip_end_ms = LEAD_MS + samples.size * 1000 // rate
    starts = {}
    for name, audio, audio_rate in (("16k", wide, 16000), ("8k", narrow, 8000)):
        events = _events(model, audio, audio_rate)
        kinds = [kind for kind, _ in events]
        assert kinds.count(Kind.SPEECH_START) == 1, (name, events)
        assert kinds[-1] is Kind.SPEECH_END, (name, events)
        start = dict(events)[Kind.SPEECH_START]
        end = events[-1][1]
        assert LEAD_MS <= start < clip_end_ms, (name, events)
        assert start < end <= clip_end_ms + 100, (name, events)
        starts[name] = start
    assert abs(starts["16k"] - starts["8k"]) <= 200


def test_silence_noise_and_tones_are_not_speech(model: SileroModel) -> None:
    rng = np.random.default_rng(7)
    t = np.arange(16000 * 3) / 16000
    for audio in (
        np.zeros(16000 * 3, np.int16),
        (rng.normal(0, 300, t.size)).astype(np.int16),
        (np.sin(2 * np.pi * 1000 * t) * 6000).astype(np.int16),
        (np.sin(2 * np.pi * 50 * t) * 3000).astype(np.int16),
    ):
        assert _events(model, audio, 16000) == []


def test_silence_costs_no_model_runs(model: SileroModel) -> None:
    vad = Vad(model, 8000)
    for _ in range(200):
        vad.push(np.zeros(160, np.int16))
    assert vad.silero_runs == 0


def test_a_quiet_lines_hiss_costs_no_model_runs(model: SileroModel) -> None:
    # -55 dBFS noise through µ-law at 8 kHz: webrtcvad alone takes a frame of it for speech now
    # and then, and each time Silero would run for the gate's hold.
    rng = np.random.default_rng(0)
    hiss = (rng.standard_normal(8000 * 10) * 32768 * 10 ** (-55 / 20)).astype(np.int16)
    line = g711.ulaw_decode(g711.ulaw_encode(hiss))
    vad = Vad(model, 8000)
    for start in range(0, line.size, 160):
        assert vad.push(line[start : start + 160]) == []
    assert vad.silero_runs == 0


def test_wrong_frame_size_is_refused(model: SileroModel) -> None:
    with pytest.raises(ValueError, match="expected 320"):
        Vad(model, 16000).push(np.zeros(100, np.int16))
