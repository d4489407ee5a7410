"""G.711 µ-law and A-law (ITU-T G.711) between PCM16 and 8-bit codes, by table lookup.

Decoding is a 256-entry table; encoding is a 65,536-entry table indexed by the PCM16 sample's
bits read as unsigned (0..32767, then -32768..-1), so a 20 ms frame costs one numpy take in each
direction and no conversion of the samples.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Pcm16 = npt.NDArray[np.int16]
Codes = npt.NDArray[np.uint8]

_BIAS = 0x84
_BIAS_14 = 0x21
_CLIP_14 = 8159
_ULAW_SEGMENT_ENDS = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)


def _ulaw_encode_scalar(sample: int) -> int:
    # The 14-bit reference algorithm (Sun g711.c), so codes match other G.711 implementations
    # bit for bit, including how negative samples round.
    value = sample >> 2
    mask = 0xFF
    if value < 0:
        value, mask = -value, 0x7F
    value = min(value, _CLIP_14) + _BIAS_14
    segment = next((i for i, end in enumerate(_ULAW_SEGMENT_ENDS) if value <= end), 8)
    if segment >= 8:
        return 0x7F ^ mask
    return ((segment << 4) | ((value >> (segment + 1)) & 0x0F)) ^ mask


def _ulaw_decode_scalar(code: int) -> int:
    code = ~code & 0xFF
    sign, exponent, mantissa = code & 0x80, (code >> 4) & 0x07, code & 0x0F
    magnitude = (((mantissa << 3) + _BIAS) << exponent) - _BIAS
    return -magnitude if sign else magnitude


def _alaw_encode_scalar(sample: int) -> int:
    sign = 0x80 if sample >= 0 else 0
    magnitude = min(abs(sample) if sample >= 0 else abs(sample) - 1, 32767) >> 3
    if magnitude < 32:
        code = magnitude >> 1
    else:
        exponent = magnitude.bit_length() - 5
        code = (exponent << 4) | ((magnitude >> exponent) & 0x0F)
    return (sign | code) ^ 0x55


def _alaw_decode_scalar(code: int) -> int:
    code ^= 0x55
    sign, exponent, mantissa = code & 0x80, (code >> 4) & 0x07, code & 0x0F
    if exponent == 0:
        magnitude = (mantissa << 4) + 8
    else:
        magnitude = ((mantissa << 4) + 0x108) << (exponent - 1)
    return magnitude if sign else -magnitude


_ALL_SAMPLES = [*range(32768), *range(-32768, 0)]
"""Every PCM16 value, in the order of its bits read as uint16."""
_ULAW_ENCODE = np.array([_ulaw_encode_scalar(s) for s in _ALL_SAMPLES], dtype=np.uint8)
_ULAW_DECODE = np.array([_ulaw_decode_scalar(c) for c in range(256)], dtype=np.int16)
_ALAW_ENCODE = np.array([_alaw_encode_scalar(s) for s in _ALL_SAMPLES], dtype=np.uint8)
_ALAW_DECODE = np.array([_alaw_decode_scalar(c) for c in range(256)], dtype=np.int16)


def _index(pcm: Pcm16) -> npt.NDArray[np.uint16]:
    return pcm.astype(np.int16, copy=False).view(np.uint16)


def ulaw_encode(pcm: Pcm16) -> bytes:
    return _ULAW_ENCODE.take(_index(pcm)).tobytes()


def ulaw_decode(codes: bytes) -> Pcm16:
    return _ULAW_DECODE.take(np.frombuffer(codes, dtype=np.uint8))


def alaw_encode(pcm: Pcm16) -> bytes:
    return _ALAW_ENCODE.take(_index(pcm)).tobytes()


def alaw_decode(codes: bytes) -> Pcm16:
    return _ALAW_DECODE.take(np.frombuffer(codes, dtype=np.uint8))
