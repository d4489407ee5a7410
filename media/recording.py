"""A conversation's recording: a stereo WAV, caller on the left, agent on the right.

Both sides are placed by stream time (milliseconds since the conversation started), so they
stay aligned however irregularly frames arrive; a side with nothing at some moment is silent
there. Audio older than `flush_after_ms` behind the newest frame is written out, so memory
stays bounded on long calls; the WAV header is completed on close.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from media.frames import PIPELINE_RATE, Pcm16

CALLER, AGENT = 0, 1


class Recorder:
    def __init__(self, path: Path, rate: int = PIPELINE_RATE, flush_after_ms: int = 2000) -> None:
        self.path = path
        self.rate = rate
        self._flush_after = rate * flush_after_ms // 1000
        path.parent.mkdir(parents=True, exist_ok=True)
        self._wav = wave.open(str(path), "wb")  # noqa: SIM115 - closed by close()
        self._wav.setnchannels(2)
        self._wav.setsampwidth(2)
        self._wav.setframerate(rate)
        self._written = 0
        """Samples per channel already in the file."""
        self._pending = np.zeros((0, 2), dtype=np.int16)
        self._closed = False

    def caller(self, frame: Pcm16, at_ms: int) -> None:
        self._place(CALLER, frame, at_ms)

    def agent(self, frame: Pcm16, at_ms: int) -> None:
        self._place(AGENT, frame, at_ms)

    def _place(self, channel: int, frame: Pcm16, at_ms: int) -> None:
        if self._closed:
            return
        start = at_ms * self.rate // 1000 - self._written
        if start < 0:
            # Late audio for a stretch already on disk: keep what still fits.
            frame, start = frame[-start:], 0
            if not frame.size:
                return
        end = start + frame.size
        if end > len(self._pending):
            grown = np.zeros((end, 2), dtype=np.int16)
            grown[: len(self._pending)] = self._pending
            self._pending = grown
        self._pending[start:end, channel] = frame
        self._flush(keep=self._flush_after)

    def _flush(self, keep: int) -> None:
        ready = len(self._pending) - keep
        if ready <= 0:
            return
        self._wav.writeframes(self._pending[:ready].astype("<i2").tobytes())
        self._written += ready
        self._pending = self._pending[ready:].copy()

    def close(self) -> Path:
        if not self._closed:
            self._flush(keep=0)
            self._wav.close()
            self._closed = True
        return self.path
