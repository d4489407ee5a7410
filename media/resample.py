"""Sample-rate conversion, streaming: state carries across chunks, so resampling a call frame
by frame sounds the same as resampling it whole (no clicks at frame edges).

Two forms, because latency and cost matter differently:
- `Resampler` (soxr's own stream) for any ratio, e.g. a TTS voice's 22,050 Hz to 16 kHz. soxr
  works in blocks: fed 20 ms at a time at 8 <-> 16 kHz it returns nothing for five frames and
  then ~108 ms at once, which is harmless for synthesis but not for a live call.
- `PolyphaseResampler` for 2:1 and 1:2 (8 <-> 16 kHz telephone audio, the call path): a
  polyphase FIR low-pass that keeps its history across chunks, so every chunk comes out at
  once, a fixed 4.5 ms late, for ~12 µs a 20 ms frame (bench/README.md, "`resample.py`").
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt
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


LOW_PASS_TAPS = 145
"""Length of the 2:1 low-pass: 4L + 1, so that its delay (72 samples at 16 kHz, 4.5 ms) is a
whole number of samples at 8 kHz too."""
LOW_PASS_BETA = 8.5
"""Kaiser window shape, chosen with the length for: within 0.001 dB up to 3.4 kHz (the
telephone band) and at least 84 dB down from 4 kHz, so nothing aliases into the band when
halving the rate and no image above 4 kHz survives doubling it."""
LOW_PASS_CUTOFF = 3700 / 16000
"""Halfway across the transition band, as a fraction of the high rate."""


def low_pass() -> npt.NDArray[np.float64]:
    """The Kaiser-windowed sinc low-pass for 8 <-> 16 kHz, as taps at the high rate."""
    n = np.arange(LOW_PASS_TAPS) - LOW_PASS_TAPS // 2
    h: npt.NDArray[np.float64] = np.sinc(2 * LOW_PASS_CUTOFF * n) * np.kaiser(
        LOW_PASS_TAPS, LOW_PASS_BETA
    )
    return h


@functools.cache
def _phases(up: bool) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The low-pass's even and odd phases, each scaled to its share of unity gain at DC; made
    once per process, not once per call (the Kaiser window alone cost ~0.3 ms a call)."""
    h = low_pass()
    even, odd = h[0::2], h[1::2]
    scale = 1.0 if up else 0.5
    phases = (scale * even / even.sum(), scale * odd / odd.sum())
    for phase in phases:
        phase.flags.writeable = False
    return phases


class PolyphaseResampler:
    """2:1 or 1:2 conversion for live audio: any chunk size in, all of it out at once, from a
    FIR filter that keeps its history across chunks (so no look-ahead and no seam).

    Polyphase: doubling the rate computes the even and the odd output samples from the input
    with the filter's two phases, never multiplying the zeros that interleaving would insert;
    halving it computes only the outputs it keeps. Each phase is scaled to an exact share of
    unity gain at DC, so a constant stays exactly that constant (silence stays digital
    silence). The output lags the input by `delay` samples of the output rate; the history
    starts as silence.
    """

    def __init__(self, in_rate: int, out_rate: int) -> None:
        if in_rate not in (out_rate, 2 * out_rate) and out_rate != 2 * in_rate:
            raise ValueError(f"{in_rate} -> {out_rate} Hz is not 2:1, 1:2 or the same rate")
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._up = out_rate > in_rate
        half = LOW_PASS_TAPS // 2
        self._half = half
        self._even, self._odd = _phases(self._up)
        if in_rate == out_rate:
            self.delay = 0
        elif self._up:
            self.delay = half
        else:
            self.delay = half // 2
        history = half if self._up else 2 * half
        self._buffer: npt.NDArray[np.float64] = np.zeros(history)
        """The input the next output still needs, as floats."""

    def process(self, samples: Pcm16) -> Pcm16:
        if self.in_rate == self.out_rate:
            return samples
        if not samples.size:
            return np.zeros(0, dtype=np.int16)
        buffer: npt.NDArray[np.float64] = np.concatenate((self._buffer, samples), dtype=np.float64)
        half = self._half
        if self._up:
            count = buffer.size - half
            out = np.empty(2 * count)
            out[0::2] = np.convolve(buffer, self._even, "valid")
            out[1::2] = np.convolve(buffer[1:], self._odd, "valid")
            self._buffer = buffer[count:]
        else:
            count = (buffer.size - 2 * half + 1) // 2
            if count <= 0:
                self._buffer = buffer
                return np.zeros(0, dtype=np.int16)
            span = 2 * (count + half)
            out = np.convolve(buffer[0:span:2], self._even, "valid")
            out += np.convolve(buffer[1 : span - 2 : 2], self._odd, "valid")
            self._buffer = buffer[2 * count :]
        np.rint(out, out=out)
        # Not np.clip: its Python-level wrapper costs more than these two ufuncs.
        np.minimum(out, 32767, out=out)
        np.maximum(out, -32768, out=out)
        return out.astype(np.int16)


def resample(samples: Pcm16, in_rate: int, out_rate: int) -> Pcm16:
    """Resample a whole clip at once."""
    if in_rate == out_rate:
        return samples
    out: Pcm16 = soxr.resample(samples, in_rate, out_rate, quality="HQ")
    return out
