"""Wire audio (PCM16 or G.711 at 8 or 16 kHz) to and from the pipeline's 16 kHz frames.

A transport (WebSocket, RTP) owns one `Decoder` for what comes in and one `Encoder` for what
goes out; both keep resampler state between calls, so a stream cut into arbitrary chunks
sounds the same as one sent whole.
"""

from __future__ import annotations

from typing import Literal

from media.frames import PIPELINE_RATE, Framer, Pcm16, pcm16
from media.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from media.resample import PolyphaseResampler

Encoding = Literal["pcm16", "mulaw", "alaw"]
ENCODINGS: tuple[Encoding, ...] = ("pcm16", "mulaw", "alaw")
RATES = (8_000, 16_000)


def bytes_per_sample(encoding: Encoding) -> int:
    return 2 if encoding == "pcm16" else 1


def _check(encoding: str, rate: int) -> None:
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}, not {encoding!r}")
    if rate not in RATES:
        raise ValueError(f"sample_rate must be 8000 or 16000, not {rate}")


class Decoder:
    """Wire bytes in, whole 16 kHz frames out."""

    def __init__(self, encoding: Encoding, rate: int) -> None:
        _check(encoding, rate)
        self.encoding = encoding
        self.rate = rate
        self._resampler = PolyphaseResampler(rate, PIPELINE_RATE)
        self._framer = Framer(PIPELINE_RATE)
        self._odd = b""

    def push(self, data: bytes) -> list[Pcm16]:
        if self.encoding == "pcm16":
            # A chunk may split a sample; keep the odd byte for the next one.
            data, self._odd = self._odd + data, b""
            if len(data) % 2:
                data, self._odd = data[:-1], data[-1:]
            samples = pcm16(data)
        elif self.encoding == "mulaw":
            samples = ulaw_decode(data)
        else:
            samples = alaw_decode(data)
        return self._framer.push(self._resampler.process(samples))


class Encoder:
    """16 kHz frames in, wire bytes out."""

    def __init__(self, encoding: Encoding, rate: int) -> None:
        _check(encoding, rate)
        self.encoding = encoding
        self.rate = rate
        self._resampler = PolyphaseResampler(PIPELINE_RATE, rate)

    def encode(self, frame: Pcm16) -> bytes:
        samples = self._resampler.process(frame)
        if self.encoding == "pcm16":
            return samples.astype("<i2").tobytes()
        if self.encoding == "mulaw":
            return ulaw_encode(samples)
        return alaw_encode(samples)
