from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from media.recording import Recorder


def _read(path: Path) -> tuple[np.ndarray, int, int]:
    with wave.open(str(path)) as clip:
        data = np.frombuffer(clip.readframes(clip.getnframes()), "<i2").reshape(-1, 2)
        return data, clip.getframerate(), clip.getnchannels()


def _frame(value: int) -> np.ndarray:
    return np.full(320, value, np.int16)


def test_sides_are_aligned_by_time_and_silent_where_nothing_was_said(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path / "calls" / "c.wav", flush_after_ms=100)
    for i in range(50):  # one second of caller audio, frame i has value i + 1
        recorder.caller(_frame(i + 1), i * 20)
        if i in (20, 21):  # the agent speaks 400-440 ms, as the session would send it
            recorder.agent(_frame(-7 - (i - 20)), i * 20)
    data, rate, channels = _read(recorder.close())
    assert (rate, channels) == (16000, 2)
    assert data.shape == (16000, 2)
    assert data[0, 0] == 1 and data[15999, 0] == 50
    assert data[400 * 16, 0] == 21
    assert not data[: 400 * 16, 1].any()
    assert (data[400 * 16 : 420 * 16, 1] == -7).all()
    assert (data[420 * 16 : 440 * 16, 1] == -8).all()
    assert not data[440 * 16 :, 1].any()


def test_memory_stays_bounded_and_late_audio_keeps_what_fits(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path / "long.wav", flush_after_ms=200)
    for i in range(500):  # ten seconds
        recorder.caller(_frame(1), i * 20)
        assert len(recorder._pending) <= 16 * 220
    recorder.agent(_frame(5), 0)  # far too late: already on disk, dropped
    recorder.agent(_frame(6), 9_790)  # 9790-9800 ms is on disk already; 9800-9810 is not
    data, _rate, _channels = _read(recorder.close())
    assert data.shape == (160_000, 2)
    assert not data[: 9_800 * 16, 1].any()
    assert (data[9_800 * 16 : 9_810 * 16, 1] == 6).all()


def test_close_is_idempotent_and_later_frames_are_ignored(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path / "c.wav")
    recorder.caller(_frame(3), 0)
    path = recorder.close()
    recorder.caller(_frame(4), 20)
    assert recorder.close() == path
    assert _read(path)[0].shape == (320, 2)
