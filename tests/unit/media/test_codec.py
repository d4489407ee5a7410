from __future__ import annotations

import numpy as np
import pytest

from media.codec import Decoder, Encoder
from media.frames import PIPELINE_RATE


def _tone(rate: int, seconds: float, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (8000 * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def _dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.argmax(spectrum) * rate / samples.size)


@pytest.mark.parametrize("encoding", ["pcm16", "mulaw", "alaw"])
@pytest.mark.parametrize("rate", [8000, 16000])
def test_round_trip_keeps_the_sound(encoding: str, rate: int) -> None:
    tone = _tone(PIPELINE_RATE, 1.0)
    encoder = Encoder(encoding, rate)  # type: ignore[arg-type]
    decoder = Decoder(encoding, rate)  # type: ignore[arg-type]
    wire = b"".join(encoder.encode(tone[i : i + 320]) for i in range(0, tone.size, 320))
    # Chunks of any size, odd ones included, must decode like 20 ms frames.
    frames = []
    for start in range(0, len(wire), 111):
        frames += decoder.push(wire[start : start + 111])
    assert all(f.size == PIPELINE_RATE // 50 for f in frames)
    audio = np.concatenate(frames)
    # The streaming resamplers hold back a few ms of filter delay.
    assert abs(audio.size - PIPELINE_RATE) < PIPELINE_RATE // 10
    assert _dominant_hz(audio[2000:], PIPELINE_RATE) == pytest.approx(440, abs=3)


def test_bytes_per_sample_on_the_wire() -> None:
    frame = _tone(PIPELINE_RATE, 0.02)
    assert len(Encoder("pcm16", 16000).encode(frame)) == 640
    ulaw = Encoder("mulaw", 8000)
    total = sum(len(ulaw.encode(frame)) for _ in range(50))
    assert abs(total - 8000) < 800


@pytest.mark.parametrize(("encoding", "rate"), [("opus", 8000), ("pcm16", 44100)])
def test_refuses_what_it_cannot_carry(encoding: str, rate: int) -> None:
    with pytest.raises(ValueError, match=r"encoding|sample_rate"):
        Decoder(encoding, rate)  # type: ignore[arg-type]
