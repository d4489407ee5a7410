"""Cutting a stream of per-frame speech decisions into utterances (pure logic, no models).

The segmenter sees one `FrameDecision` per 20 ms frame and says when speech starts, when the
speaker pauses (the moment to start a speculative transcript), when they resume, and when the
turn ends. The end-of-turn hangover adapts to the speaker: people who pause mid-sentence get a
longer wait before we take the turn, brisk speakers a shorter one.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum

from media.frames import FRAME_MS


class Kind(Enum):
    SPEECH_START = "speech_start"
    PAUSE = "pause"
    RESUME = "resume"
    SPEECH_END = "speech_end"


@dataclass(frozen=True)
class SegmentEvent:
    kind: Kind
    at_ms: int
    """Stream time of the event: the first speech frame for a start, the first silent frame
    for a pause or an end."""


@dataclass(frozen=True)
class SegmenterConfig:
    start_threshold: float = 0.5
    end_threshold: float = 0.35
    min_speech_ms: int = 60
    pause_ms: int = 160
    hangover_ms: int = 400
    min_hangover_ms: int = 240
    max_hangover_ms: int = 1000
    pause_history: int = 8
    """How many recent mid-turn pauses the adaptive hangover looks at."""


class Segmenter:
    def __init__(self, config: SegmenterConfig | None = None) -> None:
        self.config = config or SegmenterConfig()
        self._now_ms = 0
        self._in_speech = False
        self._speech_run_ms = 0
        self._speech_run_start = 0
        self._silence_run_ms = 0
        self._silence_start = 0
        self._paused = False
        self._pauses: deque[int] = deque(maxlen=self.config.pause_history)

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    @property
    def hangover_ms(self) -> int:
        """1.5 times the longest recent mid-turn pause, within the configured bounds."""
        cfg = self.config
        if not self._pauses:
            return cfg.hangover_ms
        wanted = int(max(self._pauses) * 1.5)
        return max(cfg.min_hangover_ms, min(cfg.max_hangover_ms, max(wanted, cfg.min_hangover_ms)))

    def push(self, probability: float) -> list[SegmentEvent]:
        """Feed the speech probability of the next frame; returns what it caused."""
        cfg = self.config
        at = self._now_ms
        self._now_ms += FRAME_MS
        events: list[SegmentEvent] = []
        if not self._in_speech:
            if probability >= cfg.start_threshold:
                if self._speech_run_ms == 0:
                    self._speech_run_start = at
                self._speech_run_ms += FRAME_MS
                if self._speech_run_ms >= cfg.min_speech_ms:
                    self._in_speech = True
                    self._silence_run_ms = 0
                    self._paused = False
                    events.append(SegmentEvent(Kind.SPEECH_START, self._speech_run_start))
            else:
                self._speech_run_ms = 0
            return events
        # Between the two thresholds the previous state holds (hysteresis).
        if probability < cfg.end_threshold:
            if self._silence_run_ms == 0:
                self._silence_start = at
            self._silence_run_ms += FRAME_MS
            if not self._paused and self._silence_run_ms >= cfg.pause_ms:
                self._paused = True
                events.append(SegmentEvent(Kind.PAUSE, self._silence_start))
            if self._silence_run_ms >= self.hangover_ms:
                self._in_speech = False
                self._speech_run_ms = 0
                events.append(SegmentEvent(Kind.SPEECH_END, self._silence_start))
        elif probability >= cfg.start_threshold and self._silence_run_ms:
            if self._silence_run_ms >= FRAME_MS * 2:
                self._pauses.append(self._silence_run_ms)
            if self._paused:
                events.append(SegmentEvent(Kind.RESUME, at))
            self._paused = False
            self._silence_run_ms = 0
        return events
