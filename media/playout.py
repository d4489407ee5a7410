"""The agent's outgoing speech, pulled one 20 ms frame at a time by the transport's clock.

A reply arrives as pieces (a clause or sentence of text with its synthesized frames), usually
while earlier pieces are already playing. Playback can pause (the caller may be barging in),
resume where it stopped, or stop for good; then `spoken_text` says what the caller actually
heard: the pieces played whole plus the share of the current piece's words already played.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from media.frames import Pcm16

QUIET_PEAK = 184
"""-45 dBFS: below this a frame holds no speech, only the voice's lead-in."""


@dataclass
class _Piece:
    text: str
    frames: list[Pcm16]


class Playout:
    def __init__(self) -> None:
        self._queue: deque[_Piece] = deque()
        self._current: _Piece | None = None
        self._index = 0
        self._played: list[str] = []
        self._open = False
        self._first_piece = False
        self.paused = False
        self.frames_played = 0
        """Frames of the current reply played so far."""

    def begin(self) -> None:
        """A new reply starts; whatever was left of the previous one is dropped."""
        self.stop()
        self._open = True
        self._first_piece = True

    def add(self, text: str, frames: list[Pcm16]) -> None:
        if self._first_piece:
            # Voices open with up to a quarter second of silence (festival's HTS voices do),
            # which the caller would wait through before the reply starts; between the pieces of
            # a reply that silence is the natural pause, so it stays there.
            frames = frames[speech_start(frames) :]
        if frames:
            self._first_piece = False
            self._queue.append(_Piece(text, frames))

    def finish(self) -> None:
        """No more pieces will come for this reply."""
        self._open = False

    @property
    def started(self) -> bool:
        return self.frames_played > 0

    @property
    def drained(self) -> bool:
        """The reply is complete and every frame of it has been played."""
        return not self._open and self._current is None and not self._queue

    @property
    def speaking(self) -> bool:
        """The caller has been hearing this reply and it is not over."""
        return self.started and not self.drained

    def pull(self) -> Pcm16 | None:
        if self.paused:
            return None
        if self._current is None:
            if not self._queue:
                return None
            self._current, self._index = self._queue.popleft(), 0
        frame = self._current.frames[self._index]
        self._index += 1
        self.frames_played += 1
        if self._index == len(self._current.frames):
            self._played.append(self._current.text)
            self._current = None
        return frame

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def spoken_text(self) -> str:
        parts = list(self._played)
        if self._current is not None and self._index:
            words = self._current.text.split()
            heard = round(len(words) * self._index / len(self._current.frames))
            if heard:
                parts.append(" ".join(words[:heard]))
        return " ".join(parts)

    def stop(self) -> str:
        """Stop for good; returns what was heard of the reply."""
        spoken = self.spoken_text()
        self._queue.clear()
        self._current = None
        self._index = 0
        self._played = []
        self._open = False
        self.paused = False
        self.frames_played = 0
        return spoken


def speech_start(frames: list[Pcm16]) -> int:
    """The index of the frame before the first with speech in it (one frame of lead-in keeps the
    onset whole), or len(frames) when none has any."""
    for index, frame in enumerate(frames):
        if frame.size and int(np.abs(frame.astype(np.int32)).max()) >= QUIET_PEAK:
            return max(0, index - 1)
    return len(frames)
