from __future__ import annotations

import numpy as np
import pytest

from media.frames import Framer, pcm16, samples_per_frame
from media.resample import Resampler, resample


def test_frame_sizes() -> None:
    assert samples_per_frame(16000) == 320
    assert samples_per_frame(8000) == 160
    with pytest.raises(ValueError):
        samples_per_frame(22050, 1)


def test_framer_cuts_whole_frames_and_keeps_the_rest() -> None:
    framer = Framer(8000)
    stream = np.arange(1000, dtype=np.int16)
    frames = framer.push(stream[:250]) + framer.push(stream[250:])
    assert [f.size for f in frames] == [160] * 6
    assert np.array_equal(np.concatenate(frames), stream[:960])
    assert framer.pending_samples == 40
    tail = framer.flush()
    assert tail is not None and tail.size == 160
    assert np.array_equal(tail[:40], stream[960:]) and not tail[40:].any()
    assert framer.flush() is None


def test_pcm16_refuses_odd_bytes() -> None:
    assert pcm16(b"\x01\x00\xff\xff").tolist() == [1, -1]
    with pytest.raises(ValueError):
        pcm16(b"\x00")


def _tone(rate: int, seconds: float, hz: float) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * hz * t) * 10000).astype(np.int16)


def _dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.fft.rfftfreq(samples.size, 1 / rate)[np.argmax(spectrum)])


def test_streaming_resample_matches_whole_clip() -> None:
    tone = _tone(8000, 1.0, 440)
    stream = Resampler(8000, 16000)
    pieces = [stream.process(tone[i : i + 160]) for i in range(0, tone.size, 160)]
    streamed = np.concatenate([*pieces, stream.flush()])
    whole = resample(tone, 8000, 16000)
    assert abs(streamed.size - 16000) <= 1 and abs(whole.size - 16000) <= 1
    assert abs(_dominant_hz(streamed, 16000) - 440) < 2
    n = min(streamed.size, whole.size)
    assert np.max(np.abs(streamed[:n].astype(int) - whole[:n].astype(int))) < 200


def test_downsampling_removes_what_8khz_cannot_carry() -> None:
    tone = _tone(16000, 0.5, 5000)
    down = resample(tone, 16000, 8000)
    assert np.sqrt(np.mean(down.astype(np.float64) ** 2)) < 100


def test_same_rate_is_a_passthrough() -> None:
    tone = _tone(16000, 0.1, 300)
    assert Resampler(16000, 16000).process(tone) is tone
