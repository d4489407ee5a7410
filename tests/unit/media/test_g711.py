from __future__ import annotations

import numpy as np
import pytest

from media import g711

# Reference points of ITU-T G.711 (µ-law is the 14-bit Sun/CCITT algorithm).
ULAW_POINTS = [(0, 0xFF), (-1, 0x7E), (4, 0xFE), (-5, 0x7E), (32767, 0x80), (-32768, 0x00)]
ALAW_POINTS = [(0, 0xD5), (-1, 0x55), (8, 0xD5), (16, 0xD4), (32767, 0xAA), (-32768, 0x2A)]


@pytest.mark.parametrize(("sample", "code"), ULAW_POINTS)
def test_ulaw_reference_points(sample: int, code: int) -> None:
    assert g711.ulaw_encode(np.array([sample], dtype=np.int16)) == bytes([code])


@pytest.mark.parametrize(("sample", "code"), ALAW_POINTS)
def test_alaw_reference_points(sample: int, code: int) -> None:
    assert g711.alaw_encode(np.array([sample], dtype=np.int16)) == bytes([code])


@pytest.mark.parametrize(
    ("encode", "decode"),
    [(g711.ulaw_encode, g711.ulaw_decode), (g711.alaw_encode, g711.alaw_decode)],
)
def test_every_code_decodes_and_reencodes_to_itself(encode: object, decode: object) -> None:
    codes = bytes(range(256))
    samples = decode(codes)  # type: ignore[operator]
    again = encode(samples)  # type: ignore[operator]
    # µ-law has two codes for zero (0x7F and 0xFF); both decode to 0 and 0 encodes to 0xFF.
    differing = [i for i in range(256) if again[i] != codes[i]]
    assert differing in ([], [0x7F])


def _snr_db(reference: np.ndarray, decoded: np.ndarray) -> float:
    noise = reference.astype(np.float64) - decoded.astype(np.float64)
    return float(10 * np.log10(np.sum(reference.astype(np.float64) ** 2) / np.sum(noise**2)))


@pytest.mark.parametrize(
    ("encode", "decode"),
    [(g711.ulaw_encode, g711.ulaw_decode), (g711.alaw_encode, g711.alaw_decode)],
)
def test_speech_level_tone_survives_with_toll_quality(encode: object, decode: object) -> None:
    t = np.arange(8000) / 8000
    tone = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
    decoded = decode(encode(tone))  # type: ignore[operator]
    assert decoded.dtype == np.int16 and decoded.size == tone.size
    assert _snr_db(tone, decoded) > 30
