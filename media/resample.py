"""Sample-rate conversion with soxr, streaming: state carries across chunks, so resampling a
call frame by frame sounds the same as resampling it whole (no clicks at frame edges).

Two streaming forms, because latency matters differently:
- `Resampler` (soxr's own stream) for any ratio, e.g. a TTS voice's 22,050 Hz to 16 kHz. soxr
  works in blocks: fed 20 ms at a time at 8 <-> 16 kHz it returns nothing for five frames and
  then ~108 ms at once, which is harmless for synthesis but not for a live call.
- `FrameResampler` for integer ratios (8 <-> 16 kHz telephone audio): each chunk is converted
  with a short look-ahead of input (10 ms) and the same soxr HQ filter, so every chunk comes
  out at once, 10 ms late, and matches converting the whole stream.
"""

from __future__ import annotations

import numpy as np
import soxr

from media.frames import Pcm16


class Resampler:
    def __init__(self, in_rate: int, out_rate: int) -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._stream = (
            None
            if in_rate == out_rate
            else soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality="HQ")
        )

    def process(self, samples: Pcm16) -> Pcm16:
        if self._stream is None:
            return samples
        out: Pcm16 = self._stream.resample_chunk(samples)
        return out

    def flush(self) -> Pcm16:
        """What the filter still holds at the end of the stream."""
        if self._stream is None:
            return np.zeros(0, dtype=np.int16)
        out: Pcm16 = self._stream.resample_chunk(np.zeros(0, dtype=np.int16), last=True)
        return out


class FrameResampler:
    def __init__(self, in_rate: int, out_rate: int, lookahead_ms: int = 10) -> None:
        high, low = max(in_rate, out_rate), min(in_rate, out_rate)
        if high % low:
            raise ValueError(f"{in_rate} -> {out_rate} Hz is not an integer ratio")
        self.in_rate = in_rate
        self.out_rate = out_rate
        # Converted pieces start and end on whole output samples when their length is a
        # multiple of this many input samples.
        self._step = max(1, in_rate // out_rate)
        self._context = in_rate * lookahead_ms // 1000 // self._step * self._step
        self._buffer: Pcm16 = np.zeros(0, dtype=np.int16)
        self._done = 0
        """Samples at the start of the buffer already converted (kept as left context)."""

    def process(self, samples: Pcm16) -> Pcm16:
        if self.in_rate == self.out_rate:
            return samples
        self._buffer = np.concatenate((self._buffer, samples))
        ready = (self._buffer.size - self._context) // self._step * self._step
        return self._convert(ready)

    def flush(self) -> Pcm16:
        if self.in_rate == self.out_rate:
            return np.zeros(0, dtype=np.int16)
        return self._convert(self._buffer.size // self._step * self._step)

    def _convert(self, ready: int) -> Pcm16:
        if ready <= self._done:
            return np.zeros(0, dtype=np.int16)
        converted = soxr.resample(self._buffer, self.in_rate, self.out_rate, quality="HQ")
        scale = self.out_rate / self.in_rate
        out: Pcm16 = converted[round(self._done * scale) : round(ready * scale)]
        keep_from = max(0, ready - self._context)
        self._buffer = self._buffer[keep_from:]
        self._done = ready - keep_from
        return out


def resample(samples: Pcm16, in_rate: int, out_rate: int) -> Pcm16:
    """Resample a whole clip at once."""
    if in_rate == out_rate:
        return samples
    out: Pcm16 = soxr.resample(samples, in_rate, out_rate, quality="HQ")
    return out
