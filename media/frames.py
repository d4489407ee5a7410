"""The pipeline's unit of audio: 20 ms of mono PCM16, and cutting a stream into such frames."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Pcm16 = npt.NDArray[np.int16]

FRAME_MS = 20
PIPELINE_RATE = 16_000


def samples_per_frame(rate: int, frame_ms: int = FRAME_MS) -> int:
    if rate * frame_ms % 1000:
        raise ValueError(f"{frame_ms} ms at {rate} Hz is not a whole number of samples")
    return rate * frame_ms // 1000


def pcm16(data: bytes) -> Pcm16:
    """Little-endian PCM16 bytes as samples; an odd trailing byte is a caller's bug."""
    if len(data) % 2:
        raise ValueError("PCM16 data has an odd number of bytes")
    return np.frombuffer(data, dtype="<i2").astype(np.int16, copy=False)


class Framer:
    """Collects audio of any length and hands it back as whole frames, keeping the remainder."""

    def __init__(self, rate: int, frame_ms: int = FRAME_MS) -> None:
        self.frame_samples = samples_per_frame(rate, frame_ms)
        self._pending: Pcm16 = np.zeros(0, dtype=np.int16)

    def push(self, samples: Pcm16) -> list[Pcm16]:
        buffered = np.concatenate((self._pending, samples)) if self._pending.size else samples
        whole = buffered.size - buffered.size % self.frame_samples
        self._pending = buffered[whole:].copy()
        return [buffered[i : i + self.frame_samples] for i in range(0, whole, self.frame_samples)]

    def flush(self) -> Pcm16 | None:
        """The remainder padded with silence to a whole frame, or None when nothing is left."""
        if not self._pending.size:
            return None
        frame = np.zeros(self.frame_samples, dtype=np.int16)
        frame[: self._pending.size] = self._pending
        self._pending = np.zeros(0, dtype=np.int16)
        return frame

    @property
    def pending_samples(self) -> int:
        return int(self._pending.size)
