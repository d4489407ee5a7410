"""Deciding whether the caller is talking over the agent (pure logic, numpy only).

Stopping the agent is two-staged so that it is both quick and forgiving:

1. PAUSE: as soon as the caller has spoken steadily for `pause_after_ms` while the agent
   talks, and the sound is not our own voice coming back (echo), playback pauses — within
   about 200 ms of the caller starting.
2. Then, when that utterance is transcribed: a backchannel ("mhm", "okay"), a cough or noise
   (no words) is not an interruption, so playback RESUMES where it paused; real words
   INTERRUPT it for good. An utterance still going after `commit_after_ms` interrupts without
   waiting for its transcript.

Echo: on a phone line the agent's voice can return attenuated and delayed. A candidate whose
audio correlates strongly with what we sent in the last `echo_window_ms` is taken for echo.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from enum import Enum

import numpy as np

from media.frames import FRAME_MS, Pcm16


class Decision(Enum):
    NONE = "none"
    PAUSE = "pause"
    RESUME = "resume"
    INTERRUPT = "interrupt"


BACKCHANNELS = frozenset(
    {
        "mhm", "mm", "hmm", "uh huh", "mm hmm", "uh", "um", "ah", "oh",
        "okay", "ok", "yeah", "yes", "yep", "right", "sure", "i see", "alright", "got it",
    }
)  # fmt: skip
_WORDS = re.compile(r"[a-z]+")


def is_backchannel(text: str) -> bool:
    words = " ".join(_WORDS.findall(text.lower().replace("-", " ")))
    return words == "" or words in BACKCHANNELS or all(w in BACKCHANNELS for w in words.split())


@dataclass(frozen=True)
class BargeInConfig:
    speech_probability: float = 0.6
    pause_after_ms: int = 140
    commit_after_ms: int = 900
    echo_window_ms: int = 600
    echo_correlation: float = 0.5
    min_level: float = 200.0
    """RMS below which caller audio is line noise, whatever the VAD thinks."""


class BargeIn:
    def __init__(self, config: BargeInConfig | None = None) -> None:
        self.config = config or BargeInConfig()
        frames = self.config.echo_window_ms // FRAME_MS
        self._sent: deque[Pcm16] = deque(maxlen=frames)
        self._heard: deque[Pcm16] = deque(maxlen=self.config.pause_after_ms // FRAME_MS)
        self._run_ms = 0
        self.paused = False
        self._committed = False

    def agent_frame(self, frame: Pcm16) -> None:
        """Record a frame the agent sent, as the echo reference."""
        self._sent.append(frame)

    def caller_frame(self, frame: Pcm16, probability: float, agent_speaking: bool) -> Decision:
        cfg = self.config
        if not agent_speaking and not self.paused:
            self._reset_run()
            return Decision.NONE
        rms = float(np.sqrt(np.mean(frame.astype(np.float64) ** 2)))
        voiced = probability >= cfg.speech_probability and rms >= cfg.min_level
        if not voiced:
            if not self.paused:
                self._reset_run()
            return Decision.NONE
        self._run_ms += FRAME_MS
        self._heard.append(frame)
        if not self.paused and self._run_ms >= cfg.pause_after_ms:
            if self._is_echo():
                self._reset_run()
                return Decision.NONE
            self.paused = True
            return Decision.PAUSE
        if self.paused and not self._committed and self._run_ms >= cfg.commit_after_ms:
            self._committed = True
            return Decision.INTERRUPT
        return Decision.NONE

    def transcript(self, text: str) -> Decision:
        """The caller's overlapping utterance was recognized: settle a pause."""
        if not self.paused:
            return Decision.NONE
        committed = self._committed
        self.paused = False
        self._reset_run()
        if committed:
            return Decision.NONE
        return Decision.RESUME if is_backchannel(text) else Decision.INTERRUPT

    def _reset_run(self) -> None:
        self._run_ms = 0
        self._heard.clear()
        self._committed = False

    def _is_echo(self) -> bool:
        if not self._sent:
            return False
        heard = np.concatenate(self._heard).astype(np.float64)
        sent = np.concatenate(self._sent).astype(np.float64)
        if sent.size < heard.size or not heard.any() or not sent.any():
            return False
        return max_normalized_correlation(heard, sent) >= self.config.echo_correlation


def max_normalized_correlation(needle: np.ndarray, haystack: np.ndarray) -> float:
    """Largest normalized cross-correlation of `needle` against every offset in `haystack`."""
    n = needle.size
    needle = needle - needle.mean()
    size = 1 << int(np.ceil(np.log2(haystack.size + n)))
    corr = np.fft.irfft(np.fft.rfft(haystack, size) * np.conj(np.fft.rfft(needle, size)), size)
    corr = corr[: haystack.size - n + 1]
    window_sum = np.convolve(haystack, np.ones(n), "valid")
    window_sq = np.convolve(haystack**2, np.ones(n), "valid")
    energy = np.maximum(window_sq - window_sum**2 / n, 1e-9)
    scores = corr / (np.sqrt(energy) * np.linalg.norm(needle) + 1e-9)
    return float(np.max(np.abs(scores)))
