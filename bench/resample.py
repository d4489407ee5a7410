"""8 <-> 16 kHz conversion per 20 ms frame: `FrameResampler` (soxr HQ per frame, 10 ms
look-ahead) against `PolyphaseResampler` (a stateful polyphase FIR), for cost and quality.

- cost: µs per 20 ms frame, each direction, frames of speech-like noise fed one at a time;
  best and median of --rounds rounds of --frames frames each;
- quality against soxr HQ converting the whole clip at once (the reference; the streamed output
  is shifted back by the resampler's delay): SNR and largest difference in LSB, on the five
  LibriVox recordings of pocketsphinx-testdata (16 kHz; the 8 kHz input is soxr's conversion of
  them) and on a logarithmic sine sweep 50 Hz - 3.4 kHz at 0.5 of full scale;
- rejection: a tone at 0.9 of full scale and what comes out at its image (8 -> 16 kHz: a tone
  at f also appears at 8 kHz - f) or alias (16 -> 8 kHz: a tone at f above 4 kHz folds to
  8 kHz - f), in dB below the tone, for the streamed filters and for soxr HQ whole.

    .venv/bin/python bench/resample.py
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import time
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soxr

from media.frames import Pcm16
from media.resample import PolyphaseResampler

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
TELEPHONE_BAND = 3400.0
Floats = npt.NDArray[np.float64]
Stream = Callable[[Pcm16], Pcm16]


def speech_clips() -> list[Pcm16]:
    clips = []
    for path in sorted(LIBRIVOX.glob("*.wav")):
        with wave.open(str(path)) as clip:
            if clip.getframerate() != 16_000:
                raise ValueError(f"{path} is not 16 kHz")
            clips.append(np.frombuffer(clip.readframes(clip.getnframes()), "<i2").astype(np.int16))
    return clips


def sweep(rate: int, seconds: float = 4.0, low: float = 50.0, high: float = 3400.0) -> Pcm16:
    t = np.arange(int(rate * seconds)) / rate
    k = float(np.log(high / low)) / seconds
    phase = 2 * np.pi * low * (np.exp(k * t) - 1) / k
    return (0.5 * 32767 * np.sin(phase)).astype(np.int16)


def tone(rate: int, hz: float, seconds: float = 1.0) -> Pcm16:
    t = np.arange(int(rate * seconds)) / rate
    return np.rint(0.9 * 32767 * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def level(samples: Pcm16, rate: int, hz: float) -> float:
    """Amplitude of the component at `hz`, through a Kaiser window (~-200 dB sidelobes) so
    that the tone itself does not leak into the measurement of its image."""
    x = samples[rate // 10 : -rate // 10].astype(np.float64)
    window = np.kaiser(x.size, 30.0)
    t = np.arange(x.size) / rate
    return float(2 * abs(np.sum(window * x * np.exp(-2j * np.pi * hz * t))) / window.sum())


# The call path's converter before PolyphaseResampler, kept here as the baseline it replaced.
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


def make_old(in_rate: int, out_rate: int) -> Stream:
    """`FrameResampler` primed with its look-ahead, as the call path used it: 10 ms late."""
    resampler = FrameResampler(in_rate, out_rate)
    resampler.process(np.zeros(in_rate // 100, dtype=np.int16))
    return resampler.process


def make_new(in_rate: int, out_rate: int) -> Stream:
    return PolyphaseResampler(in_rate, out_rate).process


def delay_of(kind: str, in_rate: int, out_rate: int) -> int:
    if kind == "FrameResampler":
        return out_rate // 100
    return PolyphaseResampler(in_rate, out_rate).delay


MAKERS: dict[str, Callable[[int, int], Stream]] = {
    "FrameResampler": make_old,
    "PolyphaseResampler": make_new,
}


def streamed(kind: str, samples: Pcm16, in_rate: int, out_rate: int) -> Pcm16:
    """`samples` fed a 20 ms frame at a time, then shifted back by the delay."""
    process = MAKERS[kind](in_rate, out_rate)
    frame = in_rate // 50
    padded = np.concatenate((samples, np.zeros(2 * frame, dtype=np.int16)))
    whole = padded.size // frame * frame
    out = np.concatenate([process(padded[i : i + frame]) for i in range(0, whole, frame)])
    delay = delay_of(kind, in_rate, out_rate)
    return out[delay : delay + samples.size * out_rate // in_rate]


def compare(test: Pcm16, reference: Pcm16, rate: int) -> tuple[float, float, int]:
    """SNR in dB of `test` against `reference` over the whole band and within the telephone
    band (up to 3.4 kHz, where the filters are meant to agree; above it they differ by design),
    and their largest difference in LSB; the first and last 20 ms are left out (soxr's
    whole-clip edges)."""
    n = min(test.size, reference.size)
    edge = rate // 50
    a = test[edge : n - edge].astype(np.float64)
    b = reference[edge : n - edge].astype(np.float64)
    spectrum_a, spectrum_b = np.fft.rfft(a), np.fft.rfft(b)
    band = np.fft.rfftfreq(a.size, 1 / rate) <= TELEPHONE_BAND
    return (
        snr(spectrum_b, spectrum_a - spectrum_b),
        snr(spectrum_b[band], (spectrum_a - spectrum_b)[band]),
        int(np.max(np.abs(a - b))),
    )


def snr(signal: npt.NDArray[np.complex128], noise: npt.NDArray[np.complex128]) -> float:
    noise_power = float(np.sum(np.abs(noise) ** 2))
    if not noise_power:
        return float("inf")
    return float(10 * np.log10(float(np.sum(np.abs(signal) ** 2)) / noise_power))


def db(ratio: float) -> str:
    """A level ratio in dB; a level of zero means the output rounded to digital silence."""
    return f"{20 * np.log10(ratio):8.1f}" if ratio else "  silent"


def cost(kind: str, in_rate: int, out_rate: int, frames: int, rounds: int) -> tuple[float, float]:
    rng = np.random.default_rng(1)
    frame = in_rate // 50
    audio = [(rng.standard_normal(frame) * 3000).astype(np.int16) for _ in range(50)]
    per_round = []
    for _ in range(rounds):
        process = MAKERS[kind](in_rate, out_rate)
        start = time.perf_counter()
        for i in range(frames):
            process(audio[i % 50])
        per_round.append((time.perf_counter() - start) / frames * 1e6)
    return min(per_round), statistics.median(per_round)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print("command:", shlex.join([".venv/bin/python", *sys.argv]))
    print(
        f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, numpy "
        f"{np.__version__}, soxr {soxr.__version__}; load average "
        + " ".join(f"{x:.2f}" for x in os.getloadavg())
    )
    directions = ((8000, 16000), (16000, 8000))
    kinds = list(MAKERS)

    print("\ncost per 20 ms frame, µs (best / median of rounds)")
    for in_rate, out_rate in directions:
        for kind in kinds:
            best, median = cost(kind, in_rate, out_rate, args.frames, args.rounds)
            print(f"  {in_rate} -> {out_rate}  {kind:18s} {best:6.1f} / {median:6.1f}")

    print(
        "\nagainst soxr HQ on the whole clip (worst of the clips): SNR dB whole band / up to"
        " 3.4 kHz, max |difference| LSB"
    )
    wide = speech_clips()
    narrow = [soxr.resample(c, 16000, 8000, quality="HQ") for c in wide]
    for in_rate, out_rate in directions:
        clips = narrow if in_rate == 8000 else wide
        sweep_in = sweep(in_rate)
        for kind in kinds:
            speech = [
                compare(
                    streamed(kind, c, in_rate, out_rate),
                    soxr.resample(c, in_rate, out_rate, quality="HQ"),
                    out_rate,
                )
                for c in clips
            ]
            swept = compare(
                streamed(kind, sweep_in, in_rate, out_rate),
                soxr.resample(sweep_in, in_rate, out_rate, quality="HQ"),
                out_rate,
            )
            whole, band = min(s[0] for s in speech), min(s[1] for s in speech)
            print(
                f"  {in_rate} -> {out_rate}  {kind:18s} speech {whole:5.1f} / {band:5.1f} dB"
                f" {max(s[2] for s in speech):5d} LSB   sweep {swept[0]:5.1f} / {swept[1]:5.1f} dB"
                f" {swept[2]:5d} LSB"
            )

    print("\nimaging 8 -> 16 kHz: tone at f in, level at 8000 - f out, dB below the tone")
    print_rejection(8000, 16000, (300.0, 1000.0, 3000.0, 3400.0, 3500.0, 3600.0, 3800.0))
    print("\nanti-aliasing 16 -> 8 kHz: tone at f in, level at 8000 - f out, dB below the tone")
    print_rejection(16000, 8000, (4200.0, 4400.0, 4500.0, 4600.0, 5000.0, 6000.0, 7700.0))
    print("\npassband: gain at f, dB (8 -> 16 kHz)")
    print_gain((300.0, 1000.0, 3000.0, 3400.0, 3500.0, 3600.0, 3800.0))
    print("\nload average after: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))


def print_rejection(in_rate: int, out_rate: int, tones: tuple[float, ...]) -> None:
    print("  f Hz        " + "".join(f"{f:>8.0f}" for f in tones))
    rows: dict[str, list[float]] = {k: [] for k in [*MAKERS, "soxr HQ whole"]}
    for f in tones:
        x = tone(in_rate, f)
        outputs = {k: streamed(k, x, in_rate, out_rate) for k in MAKERS}
        outputs["soxr HQ whole"] = soxr.resample(x, in_rate, out_rate, quality="HQ")
        for kind, y in outputs.items():
            reference = level(x, in_rate, f)
            rows[kind].append(level(y, out_rate, 8000 - f) / reference)
    for kind, values in rows.items():
        print(f"  {kind:18s}" + "".join(db(v) for v in values))


def print_gain(tones: tuple[float, ...]) -> None:
    rows: dict[str, list[float]] = {k: [] for k in [*MAKERS, "soxr HQ whole"]}
    for f in tones:
        x = tone(8000, f)
        outputs = {k: streamed(k, x, 8000, 16000) for k in MAKERS}
        outputs["soxr HQ whole"] = soxr.resample(x, 8000, 16000, quality="HQ")
        for kind, y in outputs.items():
            rows[kind].append(20 * np.log10(level(y, 16000, f) / level(x, 8000, f)))
    print("  f Hz        " + "".join(f"{f:>8.0f}" for f in tones))
    for kind, values in rows.items():
        print(f"  {kind:18s}" + "".join(f"{v:8.3f}" for v in values))


if __name__ == "__main__":
    main()
