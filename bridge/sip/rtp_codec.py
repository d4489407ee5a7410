"""The call's audio codecs: the pipeline's 16 kHz frames to RTP payloads and back.

PCMU and PCMA are narrowband (8 kHz), so frames go through the streaming `PolyphaseResampler`
(one 20 ms frame out per frame in, 4.5 ms of filter delay each way); G.722 is 16 kHz audio and
needs no resampling. For all three the RTP clock is 8 kHz (RFC 3551 §4.5.2 keeps G.722 at 8000 for
historical reasons) and one payload byte spans one clock tick.

Resampling is a good part of a call's media CPU, and much of a call is digital silence (a
silent agent, a muted phone): a constant frame that follows the same constant frame comes out
as that constant without running the filter, which is what the filter would produce (its
phases each sum to one) and what its history then holds.
"""

from __future__ import annotations

from typing import Protocol

import G722 as libg722  # type: ignore[import-not-found]
import numpy as np

from bridge.sip.offer_answer import CODECS, G722, PCMU, Codec
from media.frames import PIPELINE_RATE, Pcm16, samples_per_frame
from media.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from media.resample import PolyphaseResampler

G722_BITRATE = 64_000


def payload_ticks(payload: bytes) -> int:
    """RTP clock ticks a payload spans: one byte per tick for PCMU, PCMA and G.722 at 64 kbit/s."""
    return len(payload)


class _Resampler:
    """`PolyphaseResampler` that skips the filter for a repeated constant frame."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self._resampler = PolyphaseResampler(in_rate, out_rate)
        self._out_samples = samples_per_frame(out_rate)
        self._previous = b""
        self._constant: Pcm16 | None = None
        """The output for a repeat of the previous frame, when that frame was constant."""

    def process(self, frame: Pcm16) -> Pcm16:
        data = frame.tobytes()
        if data == self._previous:
            if self._constant is None and frame.size and not (frame != frame[0]).any():
                self._constant = np.full(self._out_samples, frame[0], dtype=np.int16)
            if self._constant is not None:
                # The filter holds only this constant: it would return it.
                return self._constant
        else:
            self._previous, self._constant = data, None
        return self._resampler.process(frame)

    @property
    def steady(self) -> bool:
        """The last frame repeated a constant one (so its output is that constant)."""
        return self._constant is not None


class Encoder(Protocol):
    def encode(self, frame: Pcm16) -> bytes:
        """One 20 ms frame at 16 kHz to one 20 ms payload."""
        ...


class Decoder(Protocol):
    def decode(self, payload: bytes) -> Pcm16:
        """A payload to samples at the codec's rate."""
        ...

    def to_pipeline(self, frame: Pcm16) -> Pcm16:
        """A 20 ms frame at the codec's rate to 20 ms at 16 kHz, in stream order."""
        ...

    def restart(self) -> None:
        """Forget the stream so far (after a gap in the incoming audio)."""
        ...


class G711Encoder:
    def __init__(self, codec: Codec) -> None:
        self._encode = ulaw_encode if codec == PCMU else alaw_encode
        self._resampler = _Resampler(PIPELINE_RATE, codec.sample_rate)
        self._steady_payload: bytes | None = None

    def encode(self, frame: Pcm16) -> bytes:
        samples = self._resampler.process(frame)
        if not self._resampler.steady:
            self._steady_payload = None
            return self._encode(samples)
        if self._steady_payload is None:
            self._steady_payload = self._encode(samples)
        return self._steady_payload


class G711Decoder:
    def __init__(self, codec: Codec) -> None:
        self._rate = codec.sample_rate
        self._decode = ulaw_decode if codec == PCMU else alaw_decode
        self._resampler = _Resampler(codec.sample_rate, PIPELINE_RATE)

    def decode(self, payload: bytes) -> Pcm16:
        return self._decode(payload)

    def to_pipeline(self, frame: Pcm16) -> Pcm16:
        return self._resampler.process(frame)

    def restart(self) -> None:
        self._resampler = _Resampler(self._rate, PIPELINE_RATE)


class G722Encoder:
    def __init__(self) -> None:
        self._codec = libg722.G722(G722.sample_rate, G722_BITRATE)

    def encode(self, frame: Pcm16) -> bytes:
        payload: bytes = self._codec.encode(frame)
        return payload


class G722Decoder:
    def __init__(self) -> None:
        self._codec = libg722.G722(G722.sample_rate, G722_BITRATE)

    def decode(self, payload: bytes) -> Pcm16:
        return np.frombuffer(self._codec.decode(payload), dtype=np.int16)

    def to_pipeline(self, frame: Pcm16) -> Pcm16:
        return frame

    def restart(self) -> None:
        # ADPCM state from before a gap only mistracks the new audio.
        self._codec = libg722.G722(G722.sample_rate, G722_BITRATE)


def _check(codec: Codec) -> None:
    if codec not in CODECS:
        raise ValueError(f"no RTP codec for {codec.name}/{codec.clock_rate}")


def make_encoder(codec: Codec) -> Encoder:
    _check(codec)
    return G722Encoder() if codec == G722 else G711Encoder(codec)


def make_decoder(codec: Codec) -> Decoder:
    _check(codec)
    return G722Decoder() if codec == G722 else G711Decoder(codec)
