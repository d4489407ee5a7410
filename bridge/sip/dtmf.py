"""RFC 4733 telephone events for DTMF: assembling received packets into digits, and the packets
that send one.

Receiving tolerates what real senders do: no marker bit on an event's first packet (the RTP
timestamp alone tells events apart), the end packet sent three times and packets repeated (a
digit is reported once), every end packet lost (the digit is reported when the next event
starts, or when its packets stop coming), late packets of an event already reported (ignored).

Sending follows §2.5.1: the first packet carries the marker, one packet per 20 ms tick with the
duration so far, all with the timestamp of the event's start, then the end packet on three
successive ticks; audio is not sent meanwhile. aiortp sent a whole event within 0.3 ms, marked
the end packet rather than the first, and stamped every event with timestamp 0 by default, so
two digits in a row looked like one event to receivers (its own receiver dropped the second).
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

DIGITS = "0123456789*#ABCD"
EVENT = struct.Struct("!BBH")
MAX_DURATION = 0xFFFF
END_REPEATS = 3
DEFAULT_VOLUME = 10
"""-10 dBm0, what most senders use."""
MIN_DURATION_MS = 40


@dataclass(frozen=True)
class TelephoneEvent:
    event: int
    end: bool
    volume: int
    duration: int
    """RTP clock ticks since the event's start."""


def parse_event(payload: bytes) -> TelephoneEvent:
    if len(payload) < EVENT.size:
        raise ValueError(f"telephone-event payload of {len(payload)} bytes")
    event, flags, duration = EVENT.unpack_from(payload)
    return TelephoneEvent(event, bool(flags & 0x80), flags & 0x3F, duration)


def build_event(event: TelephoneEvent) -> bytes:
    return EVENT.pack(event.event, (0x80 if event.end else 0) | event.volume, event.duration)


@dataclass(frozen=True)
class Digit:
    digit: str
    duration_ms: int


class DtmfReceiver:
    """Telephone-event payloads with their unwrapped RTP timestamps in, digits out."""

    def __init__(self, clock_rate: int = 8_000, timeout_s: float = 0.5) -> None:
        self.clock_rate = clock_rate
        self.timeout_s = timeout_s
        self._timestamp: int | None = None
        self._digit = ""
        self._duration = 0
        self._done = True
        self._last_at = 0.0

    def packet(self, timestamp: int, payload: bytes, now: float) -> list[Digit]:
        event = parse_event(payload)
        if event.event >= len(DIGITS):
            return []
        if self._timestamp is not None and timestamp < self._timestamp:
            return []
        if timestamp == self._timestamp:
            if self._done:
                return []
            self._duration = max(self._duration, event.duration)
            self._last_at = now
            if event.end:
                return [self._finish()]
            return []
        digits = [] if self._done else [self._finish()]
        self._timestamp = timestamp
        self._digit = DIGITS[event.event]
        self._duration = event.duration
        self._done = False
        self._last_at = now
        if event.end:
            digits.append(self._finish())
        return digits

    def poll(self, now: float) -> list[Digit]:
        """The current digit, if its packets stopped coming without an end packet."""
        if not self._done and now - self._last_at > self.timeout_s:
            return [self._finish()]
        return []

    def _finish(self) -> Digit:
        self._done = True
        return Digit(self._digit, self._duration * 1000 // self.clock_rate)


@dataclass(frozen=True)
class EventPacket:
    payload: bytes
    timestamp: int
    marker: bool


@dataclass
class _Sending:
    event: int
    total: int
    timestamp: int
    elapsed: int = 0
    ends_sent: int = 0


class DtmfSender:
    """Digits queued; each 20 ms tick asks what to send instead of audio."""

    def __init__(self, clock_rate: int = 8_000, frame_ticks: int = 160) -> None:
        self.clock_rate = clock_rate
        self.frame_ticks = frame_ticks
        self._queue: deque[tuple[int, int]] = deque()
        self._current: _Sending | None = None

    @property
    def busy(self) -> bool:
        return self._current is not None or bool(self._queue)

    def queue(self, digit: str, duration_ms: int) -> None:
        event = DIGITS.find(digit.upper()) if len(digit) == 1 else -1
        if event < 0:
            raise ValueError(f"not a DTMF digit: {digit!r}")
        ticks = max(duration_ms, MIN_DURATION_MS) * self.clock_rate // 1000
        self._queue.append((event, min(ticks, MAX_DURATION)))

    def tick(self, timestamp: int) -> EventPacket | None:
        """The packet for the tick whose audio would start at `timestamp`, or None to send
        audio."""
        current = self._current
        if current is None:
            if not self._queue:
                return None
            event, total = self._queue.popleft()
            current = self._current = _Sending(event, total, timestamp)
        first = current.elapsed == 0
        current.elapsed = min(current.elapsed + self.frame_ticks, current.total)
        end = current.elapsed >= current.total
        if end:
            current.ends_sent += 1
            if current.ends_sent >= END_REPEATS:
                self._current = None
        payload = build_event(TelephoneEvent(current.event, end, DEFAULT_VOLUME, current.elapsed))
        return EventPacket(payload, current.timestamp, first)
