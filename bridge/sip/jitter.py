"""The receive side's adaptive jitter buffer, pulled once per 20 ms tick of the process clock.

Packets are kept by (unwrapped) RTP timestamp and handed out in timestamp order, whatever
order they came in. How long they wait is adapted to the network. For each packet, its
*transit* is its arrival time minus its media time (timestamp / clock rate): unknown up to a
constant, but the spread is what matters. The buffer plays timestamp T at the pull whose *playout
offset* (pull time minus T / clock rate) is at least the transit of T's packet, or that packet
misses its pull and is concealed. So the buffer keeps the offset just above a high quantile of
recent transits, plus a margin for the lateness of the pull clock itself:

- below target (a late packet, a jitter burst): it grows at once, inserting one frame;
- more than a frame above target for a while: it shrinks by one frame, preferably while the
  audio is quiet.

This follows the packets' phase against our own clock, which aiortp's playout (judged on
inter-arrival jitter alone, with a one-frame floor) did not: with two independent 20 ms clocks
and 2-5 ms of jitter it concealed up to 18 % of frames at unlucky phases.

A transit that jumps by more than `resync_ms` is not jitter but a new timeline (the sender's
timestamps jumped, or it stopped and restarted): the buffer starts over.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass
from typing import NamedTuple

MAX_PACKETS = 100
"""Far beyond any delay the buffer keeps (300 ms at most): only a buffer nobody pulls fills."""

Segment = bytes | int
"""A payload to decode, or a number of RTP clock ticks of missing audio to conceal."""


@dataclass(frozen=True)
class JitterConfig:
    clock_rate: int = 8_000
    frame_ticks: int = 160
    """RTP clock ticks per pulled frame (20 ms)."""
    start_delay_ms: float = 40.0
    """Buffering before the first frame, while nothing is known of the network."""
    max_delay_ms: float = 300.0
    """Most buffering beyond the fastest recent packet."""
    margin_ms: float = 3.0
    """Allowance for the pull clock's own lateness."""
    quantile: float = 0.98
    window: int = 250
    """Packets the transit statistics look back over (5 s of 20 ms packets)."""
    shrink_after_s: float = 0.5
    """How long the buffer must be a frame too deep before it shrinks while audio plays."""
    force_shrink_after_s: float = 2.0
    """...and before it shrinks even through loud audio."""
    resync_ms: float = 1_000.0


class Pull(NamedTuple):
    """A NamedTuple, not a frozen dataclass: one is built per call per tick."""

    segments: list[Segment]
    frames: int
    """Frames the segments span: 1 normally, 2 when the buffer shrinks (play them as one), 0
    when it grows (play a concealment frame and consume nothing)."""


@dataclass
class JitterCounters:
    late: int = 0
    duplicates: int = 0
    grown: int = 0
    shrunk: int = 0
    caught_up: int = 0
    dropped: int = 0
    """Packets the playout had already passed when it caught up or when they overlapped."""
    resyncs: int = 0


class JitterBuffer:
    def __init__(self, config: JitterConfig | None = None) -> None:
        self.config = config or JitterConfig()
        self.counters = JitterCounters()
        self._packets: dict[int, tuple[bytes, int]] = {}
        self._transits: deque[float] = deque(maxlen=self.config.window)
        self._floor: float | None = None
        """The fastest recent transit, as of the last target computation."""
        self._recent: deque[int] = deque(maxlen=64)
        self._recent_set: set[int] = set()
        self._head: int | None = None
        """Timestamp the next pulled frame starts at."""
        self._cursor = 0
        """Timestamp up to which audio has been handed out (ahead of the head after a packet
        longer than a frame)."""
        self._start_at = 0.0
        self._playing = False
        self._target = 0.0
        self._target_stale = True
        self._pulls = 0
        self._deep_since: float | None = None
        self.offset = 0.0
        """The last pull's playout offset (seconds)."""

    @property
    def deep(self) -> bool:
        """More than a frame deeper than needed: it will shrink, preferably on a quiet frame."""
        return self._deep_since is not None

    @property
    def delay_ms(self) -> float:
        """How long the fastest recent packets wait before they are played."""
        if not self._playing or self._floor is None:
            return 0.0
        return (self.offset - self._floor) * 1000

    def reset(self) -> None:
        """Forget the stream (a new source, a new timeline)."""
        self._packets.clear()
        self._transits.clear()
        self._floor = None
        self._recent.clear()
        self._recent_set.clear()
        self._head = None
        self._playing = False
        self._deep_since = None
        self._target_stale = True

    def put(self, timestamp: int, payload: bytes, ticks: int, arrival: float) -> None:
        """A packet: its unwrapped timestamp, the RTP clock ticks it spans, its arrival time
        (seconds, monotonic)."""
        config = self.config
        transit = arrival - timestamp / config.clock_rate
        jumped = self._floor is not None and abs(transit - self._floor) * 1000 > config.resync_ms
        # A full buffer means nobody has been pulling: what it holds is long stale.
        if jumped or len(self._packets) >= MAX_PACKETS:
            self.counters.resyncs += 1
            self.reset()
        if self._floor is None:
            self._floor = transit
        if self._head is None:
            self._head = self._cursor = timestamp
            self._start_at = arrival + config.start_delay_ms / 1000
        if timestamp < self._cursor or timestamp in self._packets:
            if timestamp in self._packets or timestamp in self._recent_set:
                self.counters.duplicates += 1
            else:
                self.counters.late += 1
                self._transits.append(transit)
                self._target_stale = True
            return
        self._packets[timestamp] = (payload, ticks)
        self._transits.append(transit)

    def pull(self, now: float, quiet: bool) -> Pull | None:
        """What to play in this tick, or None before the stream has started.

        `quiet`: the last frame played was quiet, so dropping one would not be heard.
        """
        if self._head is None:
            return None
        config = self.config
        if not self._playing:
            if now < self._start_at:
                return None
            self._playing = True
        self.offset = now - self._head / config.clock_rate
        frames = self._adapt(now, quiet)
        end = self._head + frames * config.frame_ticks
        segments = self._take(end)
        self._head = end
        return Pull(segments, frames)

    def _adapt(self, now: float, quiet: bool) -> int:
        config = self.config
        self._pulls += 1
        if self._target_stale or self._pulls % 10 == 0:
            self._target = self._target_offset()
            self._target_stale = False
        if self.offset < self._target:
            self._deep_since = None
            self.counters.grown += 1
            return 0
        frame_s = config.frame_ticks / config.clock_rate
        behind = self.offset - self._target
        if behind > config.max_delay_ms / 1000:
            # The pulls fell behind (a stalled loop, skipped clock ticks): what was due while
            # they did not come is dropped, not played late.
            assert self._head is not None
            self._head += int(behind / frame_s) * config.frame_ticks
            self._cursor = max(self._cursor, self._head)
            self.offset = now - self._head / config.clock_rate
            self._deep_since = None
            self.counters.caught_up += 1
            return 1
        if behind < frame_s * 1.25:
            self._deep_since = None
            return 1
        if self._deep_since is None:
            self._deep_since = now
        deep_for = now - self._deep_since
        if deep_for >= config.force_shrink_after_s or (deep_for >= config.shrink_after_s and quiet):
            self._deep_since = None
            self.counters.shrunk += 1
            return 2
        return 1

    def _target_offset(self) -> float:
        transits = self._transits
        if not transits:
            return self.offset
        config = self.config
        beyond = max(1, round(len(transits) * (1 - config.quantile)))
        high = heapq.nlargest(beyond, transits)[-1]
        self._floor = min(transits)
        return min(high + config.margin_ms / 1000, self._floor + config.max_delay_ms / 1000)

    def _take(self, end: int) -> list[Segment]:
        segments: list[Segment] = []
        packets = self._packets
        while self._cursor < end:
            packet = packets.pop(self._cursor, None)
            if packet is not None:
                self._remember(self._cursor)
                segments.append(packet[0])
                self._cursor += packet[1]
                continue
            following = [t for t in packets if t > self._cursor]
            gap_end = min(min(following), end) if following else end
            segments.append(gap_end - self._cursor)
            self._cursor = gap_end
        for stale in [t for t in packets if t < self._cursor]:
            # Skipped when catching up, or overlapping what was played (a sender changing its
            # packet size mid-stream).
            del packets[stale]
            self.counters.dropped += 1
        return segments

    def _remember(self, timestamp: int) -> None:
        if len(self._recent) == self._recent.maxlen:
            self._recent_set.discard(self._recent[0])
        self._recent.append(timestamp)
        self._recent_set.add(timestamp)
