from __future__ import annotations

import numpy as np
import pytest

from media.frames import Pcm16
from media.resample import PolyphaseResampler


def _tone(rate: int, hz: float, seconds: float = 0.5, amplitude: float = 0.9) -> Pcm16:
    t = np.arange(int(rate * seconds)) / rate
    return np.rint(amplitude * 32767 * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def _level(samples: Pcm16, rate: int, hz: float) -> float:
    """Amplitude at `hz`, through a Kaiser window whose sidelobes (~-200 dB) keep a loud tone
    from leaking into the measurement of a faint one elsewhere; the filter's start-up is cut."""
    x = samples[rate // 20 :].astype(np.float64)
    window = np.kaiser(x.size, 30.0)
    t = np.arange(x.size) / rate
    return float(2 * abs(np.sum(window * x * np.exp(-2j * np.pi * hz * t))) / window.sum())


def _db(ratio: float) -> float:
    return float(20 * np.log10(max(ratio, 1e-12)))


def _framed(resampler: PolyphaseResampler, samples: Pcm16) -> Pcm16:
    frame = resampler.in_rate // 50
    return np.concatenate(
        [resampler.process(samples[i : i + frame]) for i in range(0, samples.size, frame)]
    )


@pytest.mark.parametrize(("rate_in", "rate_out"), [(8000, 16000), (16000, 8000)])
@pytest.mark.parametrize("hz", [300.0, 1000.0, 3000.0, 3400.0])
def test_the_telephone_band_passes_flat(rate_in: int, rate_out: int, hz: float) -> None:
    tone = _tone(rate_in, hz)
    out = _framed(PolyphaseResampler(rate_in, rate_out), tone)
    gain = _db(_level(out, rate_out, hz) / _level(tone, rate_in, hz))
    assert abs(gain) < 0.01


@pytest.mark.parametrize("hz", [1000.0, 3000.0, 3400.0, 3800.0])
def test_doubling_the_rate_leaves_no_image(hz: float) -> None:
    tone = _tone(8000, hz)
    out = _framed(PolyphaseResampler(8000, 16000), tone)
    # Interleaving zeros mirrors the band around 4 kHz; the filter must remove the mirror.
    assert _db(_level(out, 16000, 8000 - hz) / _level(tone, 8000, hz)) < -80


@pytest.mark.parametrize("hz", [4000.0, 4400.0, 5000.0, 7000.0])
def test_halving_the_rate_lets_nothing_fold_back(hz: float) -> None:
    tone = _tone(16000, hz)
    out = _framed(PolyphaseResampler(16000, 8000), tone)
    assert _db(_level(out, 8000, 8000 - hz) / _level(tone, 16000, hz)) < -80


@pytest.mark.parametrize(("rate_in", "rate_out"), [(8000, 16000), (16000, 8000)])
def test_chunks_of_any_size_give_the_same_stream(rate_in: int, rate_out: int) -> None:
    rng = np.random.default_rng(3)
    noise = (rng.standard_normal(rate_in) * 6000).astype(np.int16)
    whole = PolyphaseResampler(rate_in, rate_out).process(noise)
    assert whole.size == noise.size * rate_out // rate_in
    chunked = PolyphaseResampler(rate_in, rate_out)
    pieces: list[Pcm16] = []
    start = 0
    sizes = [1, 159, 160, 3, 320, 77, 2, 641]
    while start < noise.size:
        size = sizes[len(pieces) % len(sizes)]
        pieces.append(chunked.process(noise[start : start + size]))
        start += size
    # Bit for bit: the history carries across chunks, so there is no seam at their edges.
    assert np.array_equal(np.concatenate(pieces), whole)


@pytest.mark.parametrize(("rate_in", "rate_out"), [(8000, 16000), (16000, 8000)])
def test_every_frame_comes_out_whole_at_once(rate_in: int, rate_out: int) -> None:
    resampler = PolyphaseResampler(rate_in, rate_out)
    tone = _tone(rate_in, 440.0, seconds=0.2)
    frame = rate_in // 50
    sizes = {resampler.process(tone[i : i + frame]).size for i in range(0, tone.size, frame)}
    assert sizes == {rate_out // 50}


@pytest.mark.parametrize(("rate_in", "rate_out"), [(8000, 16000), (16000, 8000)])
def test_the_reported_delay_is_the_delay(rate_in: int, rate_out: int) -> None:
    resampler = PolyphaseResampler(rate_in, rate_out)
    tone = _tone(rate_in, 1000.0, amplitude=0.3)
    out = _framed(resampler, tone)
    expected = _tone(rate_out, 1000.0, amplitude=0.3)
    delay = resampler.delay
    assert delay == (72 if rate_out == 16000 else 36)
    settled = slice(2 * delay, out.size)
    shifted = np.roll(expected, delay)[settled].astype(int)
    # One sample off would be ~3,000 LSB on this tone.
    assert np.max(np.abs(out[settled].astype(int) - shifted)) <= 3


@pytest.mark.parametrize(("rate_in", "rate_out"), [(8000, 16000), (16000, 8000)])
@pytest.mark.parametrize("value", [0, 1, -7, 32767, -32768])
def test_a_constant_stays_exactly_that_constant(rate_in: int, rate_out: int, value: int) -> None:
    resampler = PolyphaseResampler(rate_in, rate_out)
    frame = np.full(rate_in // 50, value, dtype=np.int16)
    for _ in range(3):
        out = resampler.process(frame)
    assert np.array_equal(out, np.full(rate_out // 50, value, dtype=np.int16))


def test_full_scale_is_clipped_not_wrapped() -> None:
    square = np.tile(np.repeat(np.array([32767, -32768], dtype=np.int16), 8), 50)
    out = PolyphaseResampler(8000, 16000).process(square)
    # The filter rings above full scale at the edges; wrapping would turn those samples into
    # full scale of the other sign, a jump no 500 Hz square limited to 3.4 kHz makes.
    assert out.max() == 32767 and out.min() == -32768
    assert int(np.max(np.abs(np.diff(out.astype(int))))) < 40000


def test_same_rate_passes_through_and_other_ratios_are_refused() -> None:
    tone = _tone(16000, 300.0, seconds=0.02)
    same = PolyphaseResampler(16000, 16000)
    assert same.process(tone) is tone and same.delay == 0
    for rate_in, rate_out in [(8000, 24000), (22050, 16000), (16000, 16001)]:
        with pytest.raises(ValueError, match="2:1"):
            PolyphaseResampler(rate_in, rate_out)
