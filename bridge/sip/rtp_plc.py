"""Packet loss concealment for decoded call audio, after ITU-T G.711 Appendix I in spirit.

A lost 20 ms is filled by repeating the last pitch period of what was heard (voiced speech is
periodic, so this sounds like the sound going on rather than a click or a gap), fading out
from 10 ms into the loss to silence at 60 ms, when guessing would start to sound wrong. The
first real frame after a loss is cross-faded with the continuation of the guess, so the
splice does not click either.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import numpy.typing as npt

from media.frames import Pcm16

HOLD_MS = 10
FADE_END_MS = 60
CROSSFADE_MS = 4
MIN_PITCH_HZ = 66
MAX_PITCH_HZ = 400


class Concealer:
    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._history_len = 3 * rate // MIN_PITCH_HZ
        # Frames as they came: joined only when a loss needs them, which is rare.
        self._history: deque[Pcm16] = deque()
        self._history_size = 0
        self._period: npt.NDArray[np.float32] | None = None
        self._phase = 0
        self._concealed = 0
        """Samples concealed since the last real audio."""

    @property
    def concealing(self) -> bool:
        return self._concealed > 0

    @property
    def exhausted(self) -> bool:
        """The loss has lasted past the fade: the listener hears silence, not a guess."""
        return self._concealed >= self.rate * FADE_END_MS // 1000

    def good(self, frame: Pcm16) -> Pcm16:
        """Record real audio; the first frame after a loss comes back cross-faded."""
        out = frame
        if self._concealed and self._period is not None:
            fade = min(frame.size, self.rate * CROSSFADE_MS // 1000)
            guess = self._continue(fade) * self._gain_ramp(fade)
            ramp = np.linspace(0.0, 1.0, fade, endpoint=False, dtype=np.float32)
            mixed = frame[:fade] * ramp + guess * (1.0 - ramp)
            out = frame.copy()
            out[:fade] = _to_pcm16(mixed)
        self._concealed = 0
        self._period = None
        history = self._history
        history.append(out)
        self._history_size += out.size
        while self._history_size - history[0].size >= self._history_len:
            self._history_size -= history.popleft().size
        return out

    def conceal(self, samples: int) -> Pcm16:
        """`samples` of audio to stand in for what was lost."""
        if self._period is None:
            self._period = self._last_period()
            self._phase = 0
        if self._period is None or self.exhausted:
            self._concealed += samples
            return np.zeros(samples, dtype=np.int16)
        out = self._continue(samples) * self._gain_ramp(samples)
        self._concealed += samples
        return _to_pcm16(out)

    def reset(self) -> None:
        self._history.clear()
        self._history_size = 0
        self._period = None
        self._concealed = 0

    def _continue(self, samples: int) -> npt.NDArray[np.float32]:
        assert self._period is not None
        idx = (self._phase + np.arange(samples)) % self._period.size
        self._phase = int((self._phase + samples) % self._period.size)
        return self._period[idx]

    def _gain_ramp(self, samples: int) -> npt.NDArray[np.float32]:
        hold = self.rate * HOLD_MS // 1000
        end = self.rate * FADE_END_MS // 1000
        at = self._concealed + np.arange(samples, dtype=np.float32)
        gain: npt.NDArray[np.float32] = np.clip((end - at) / (end - hold), 0.0, 1.0).astype(
            np.float32
        )
        return gain

    def _last_period(self) -> npt.NDArray[np.float32] | None:
        shortest, longest = self.rate // MAX_PITCH_HZ, self.rate // MIN_PITCH_HZ
        if self._history_size < 2 * longest:
            return None
        history = np.concatenate(self._history).astype(np.float32)
        if not history.any():
            return None
        # Normalised cross-correlation of the last `longest` samples with the same span
        # `lag` samples earlier, for every candidate lag at once.
        segment = history[-2 * longest :]
        window = segment[longest:]
        earlier = np.lib.stride_tricks.sliding_window_view(segment, longest)[
            : longest - shortest + 1
        ]
        scores = (earlier @ window) / np.sqrt(
            (float(np.dot(window, window)) + 1e-9)
            * (np.einsum("ij,ij->i", earlier, earlier) + 1e-9)
        )
        best_lag = longest - int(np.argmax(scores))
        period: npt.NDArray[np.float32] = history[-best_lag:].copy()
        return period


def _to_pcm16(samples: npt.NDArray[np.float32]) -> Pcm16:
    out: Pcm16 = np.clip(np.rint(samples), -32768, 32767).astype(np.int16)
    return out
