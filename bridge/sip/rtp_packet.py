"""RTP packets (RFC 3550 §5.1) and the modular arithmetic of their sequence numbers and timestamps.

Sequence numbers wrap at 2^16 and timestamps at 2^32 (after 2.7 hours at 8 kHz, but a stream
starts at a random timestamp, so any call may cross it). Everything that orders or subtracts
received ones goes through an `Unwrapper` first, never plain `-` or `<` on wire values.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

VERSION = 2
HEADER = struct.Struct("!BBHII")
TS_MOD = 1 << 32


class MalformedPacket(ValueError):
    pass


class RtpPacket(NamedTuple):
    """A NamedTuple rather than a frozen dataclass: built for every packet received, and a
    frozen dataclass's `__init__` costs twice as much."""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False


def build_packet(
    payload_type: int, sequence: int, timestamp: int, ssrc: int, payload: bytes, marker: bool
) -> bytes:
    return (
        HEADER.pack(
            VERSION << 6,
            (0x80 if marker else 0) | payload_type,
            sequence,
            timestamp,
            ssrc,
        )
        + payload
    )


def parse_packet(data: bytes) -> RtpPacket:
    """The packet in `data`, skipping CSRCs and a header extension, without padding."""
    if len(data) < HEADER.size:
        raise MalformedPacket(f"{len(data)} bytes is shorter than an RTP header")
    first, second, sequence, timestamp, ssrc = HEADER.unpack_from(data)
    if first >> 6 != VERSION:
        raise MalformedPacket(f"RTP version {first >> 6}")
    start = HEADER.size + 4 * (first & 0x0F)
    if first & 0x10:
        if len(data) < start + 4:
            raise MalformedPacket("truncated header extension")
        (words,) = struct.unpack_from("!H", data, start + 2)
        start += 4 + 4 * words
    end = len(data)
    if first & 0x20:
        padding = data[-1] if data else 0
        if padding == 0:
            raise MalformedPacket("zero padding length")
        end -= padding
    if end < start:
        raise MalformedPacket("header, extension and padding exceed the packet")
    return RtpPacket(
        payload_type=second & 0x7F,
        sequence=sequence,
        timestamp=timestamp,
        ssrc=ssrc,
        payload=data[start:end],
        marker=bool(second & 0x80),
    )


def is_rtcp(data: bytes) -> bool:
    """RFC 5761 §4: packet types 192-223 in the second byte are RTCP, never RTP payload types."""
    return len(data) >= 2 and 192 <= data[1] <= 223


class Unwrapper:
    """Extends wrapping counters to unbounded integers that order correctly.

    Each value is placed nearest to the previous one, so the counter may jump back or ahead by
    up to half its range between two values (reordering, loss) and still land right.
    """

    def __init__(self, bits: int) -> None:
        self._modulus = 1 << bits
        self._half = self._modulus >> 1
        self._last: int | None = None

    def unwrap(self, value: int) -> int:
        if self._last is None:
            self._last = value
            return value
        delta = (value - self._last + self._half) % self._modulus - self._half
        extended = self._last + delta
        self._last = extended
        return extended

    def reset(self) -> None:
        self._last = None


class SendTimeline:
    """RTP timestamps for frames sent on a 20 ms clock.

    Each frame is one frame on from the last, so the sender's scheduling jitter never shows in
    the timestamps and they cannot drift from the frame count. Only when whole frames were not
    sent (a stalled event loop, a hold) does the timeline jump with the wall clock, so the
    receiver plays what follows at the right moment, and the jump is reported so the next
    packet can carry the marker bit.
    """

    def __init__(self, start: int, frame_ticks: int, frame_s: float) -> None:
        self.frame_ticks = frame_ticks
        self.frame_s = frame_s
        self._next = start
        self._due: float | None = None

    def next(self, now: float) -> tuple[int, bool]:
        """The timestamp of the frame sent at `now`, and whether frames were skipped before it."""
        due, skipped = self._due, 0
        if due is None or now - due < -1.0:
            # First frame, or a sender running far ahead of real time: start from now.
            due = now
        elif now - due >= 2 * self.frame_s:
            skipped = round((now - due) / self.frame_s)
            self._next = (self._next + skipped * self.frame_ticks) % TS_MOD
            due += skipped * self.frame_s
        timestamp = self._next
        self._next = (self._next + self.frame_ticks) % TS_MOD
        self._due = due + self.frame_s
        return timestamp, skipped > 0

    @property
    def due(self) -> float:
        """When the frame last stamped was due on this timeline (on the clock `next` was given)."""
        if self._due is None:
            raise RuntimeError("no frame stamped yet")
        return self._due - self.frame_s

    def upcoming(self) -> int:
        """The timestamp the next frame will carry if it is sent on time."""
        return self._next

    def at(self, now: float) -> int:
        """The timestamp of the instant `now` on this timeline (for RTCP sender reports)."""
        if self._due is None:
            return self._next
        ticks = round((self._due - now) / self.frame_s * self.frame_ticks)
        return (self._next - ticks) % TS_MOD
