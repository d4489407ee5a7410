"""Sample-rate conversion with soxr, streaming: state carries across chunks, so resampling a
call frame by frame sounds the same as resampling it whole (no clicks at frame edges)."""

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


def resample(samples: Pcm16, in_rate: int, out_rate: int) -> Pcm16:
    """Resample a whole clip at once."""
    if in_rate == out_rate:
        return samples
    out: Pcm16 = soxr.resample(samples, in_rate, out_rate, quality="HQ")
    return out
