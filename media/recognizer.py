"""Streaming recognition on a whole-utterance model.

While the caller speaks, the growing utterance is re-decoded on a cadence for partial
transcripts (skipped when the inference pool is busy). At the first pause a *speculative final*
decode starts, so that when the end of turn is confirmed (the hangover later) the transcript is
usually already there. If the caller goes on speaking, the speculation is cancelled and
discarded. Only speech reaches the model: frames outside VAD segments are never decoded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from media.asr import Float32, Transcript
from media.frames import FRAME_MS, Pcm16
from media.inference import InferencePool, PoolBusy
from media.segmenter import Kind, SegmentEvent

log = logging.getLogger(__name__)


class Transcribe(Protocol):
    """See MoonshineModel.transcribe: `final` asks for the more careful decode a final gets."""

    def __call__(
        self, samples: Float32, cancelled: Callable[[], bool], draft: Sequence[int], *, final: bool
    ) -> Transcript: ...


@dataclass(frozen=True)
class Partial:
    text: str


@dataclass(frozen=True)
class Final:
    text: str
    speech_ms: int
    wait_ms: float
    """From the confirmed end of speech to the transcript being ready (0 when speculation won)."""
    speculative: bool
    compute_ms: float = 0.0
    """Model time of the decode that produced it."""


@dataclass(frozen=True)
class RecognizerConfig:
    pre_roll_ms: int = 200
    partial_every_ms: int = 600
    max_utterance_ms: int = 30_000


class _Decode:
    def __init__(
        self, future: asyncio.Future[Transcript], audio_frames: int, cancel_flag: threading.Event
    ) -> None:
        self.future = future
        self.audio_frames = audio_frames
        self.cancel_flag = cancel_flag

    def cancel(self) -> None:
        self.cancel_flag.set()


class Recognizer:
    """One session's recognizer: feed frames and VAD events; partials and finals come out."""

    def __init__(
        self,
        session: str,
        transcribe: Transcribe,
        pool: InferencePool,
        on_partial: Callable[[Partial], None],
        on_final: Callable[[Final], None],
        config: RecognizerConfig | None = None,
    ) -> None:
        self.session = session
        self.config = config or RecognizerConfig()
        self._transcribe = transcribe
        self._pool = pool
        self._on_partial = on_partial
        self._on_final = on_final
        self._pre_roll: deque[Pcm16] = deque(maxlen=self.config.pre_roll_ms // FRAME_MS)
        self._utterance: list[Pcm16] | None = None
        self._since_partial = 0
        self._partial: _Decode | None = None
        self._speculative: _Decode | None = None
        self._finishing: set[asyncio.Task[None]] = set()
        self._draft: tuple[int, ...] = ()
        """Tokens of the latest transcript of the utterance so far: each decode of the grown
        utterance starts from them (see MoonshineModel.transcribe)."""

    @property
    def listening(self) -> bool:
        return self._utterance is not None

    def push(self, frame: Pcm16, events: list[SegmentEvent]) -> None:
        """Feed one frame and the VAD events it produced. Never blocks."""
        for event in events:
            self._on_event(event)
        if self._utterance is None:
            self._pre_roll.append(frame)
            return
        self._utterance.append(frame)
        self._since_partial += FRAME_MS
        if len(self._utterance) * FRAME_MS >= self.config.max_utterance_ms:
            self._finish(time.perf_counter())
        elif self._since_partial >= self.config.partial_every_ms and self._speculative is None:
            self._start_partial()

    def _on_event(self, event: SegmentEvent) -> None:
        if event.kind is Kind.SPEECH_START and self._utterance is None:
            self._utterance = list(self._pre_roll)
            self._pre_roll.clear()
            self._since_partial = 0
            self._draft = ()
        elif self._utterance is None:
            return
        elif event.kind is Kind.PAUSE:
            self._start_speculative()
        elif event.kind is Kind.RESUME:
            if self._speculative is not None:
                self._speculative.cancel()
                self._speculative = None
        elif event.kind is Kind.SPEECH_END:
            self._finish(time.perf_counter())

    def _audio(self, frames: list[Pcm16]) -> Float32:
        return np.concatenate(frames).astype(np.float32) / 32768.0

    def _decode(self, frames: list[Pcm16], *, final: bool) -> _Decode:
        audio = self._audio(frames)
        cancel_flag = threading.Event()
        draft = self._draft

        def work() -> Transcript:
            return self._transcribe(audio, cancel_flag.is_set, draft, final=final)

        future = self._pool.submit(self.session, work, urgent=final)
        future.add_done_callback(self._learn)
        return _Decode(future, len(frames), cancel_flag)

    def _learn(self, future: asyncio.Future[Transcript]) -> None:
        """A finished decode of the current utterance is the draft for the next one."""
        if future.cancelled() or future.exception() is not None or self._utterance is None:
            return
        result = future.result()
        if not result.cancelled and result.ids:
            self._draft = result.ids

    def _start_partial(self) -> None:
        if self._partial is not None and not self._partial.future.done():
            return
        assert self._utterance is not None
        self._since_partial = 0
        decode = self._decode(self._utterance, final=False)
        self._partial = decode

        def deliver(future: asyncio.Future[Transcript]) -> None:
            if future.cancelled() or isinstance(future.exception(), PoolBusy):
                return
            if future.exception() is None and self._utterance is not None:
                result = future.result()
                if result.text and not result.cancelled:
                    self._on_partial(Partial(result.text))

        decode.future.add_done_callback(deliver)

    def _start_speculative(self) -> None:
        assert self._utterance is not None
        if self._partial is not None:
            self._partial.cancel()
        self._speculative = self._decode(self._utterance, final=True)

    def _finish(self, ended_at: float) -> None:
        assert self._utterance is not None
        frames, self._utterance = self._utterance, None
        speculative, self._speculative = self._speculative, None
        if self._partial is not None:
            self._partial.cancel()
            self._partial = None
        task = asyncio.get_running_loop().create_task(self._final(frames, speculative, ended_at))
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)

    async def _final(
        self, frames: list[Pcm16], speculative: _Decode | None, ended_at: float
    ) -> None:
        # The speculation covered the utterance up to the pause; what came after is the
        # hangover's silence, so its transcript is the final one.
        used = speculative is not None
        decode = speculative or self._decode(frames, final=True)
        try:
            result = await decode.future
        except (asyncio.CancelledError, PoolBusy):
            return
        except Exception:
            log.exception("session %s: recognizing an utterance failed", self.session)
            return
        if result.cancelled:
            return
        wait_ms = max(0.0, (time.perf_counter() - ended_at) * 1000)
        compute_ms = result.encode_ms + result.decode_ms
        self._on_final(
            Final(result.text, decode.audio_frames * FRAME_MS, wait_ms, used, compute_ms)
        )

    def reset(self) -> None:
        """Drop the utterance in progress (the session is ending or the line went away)."""
        for decode in (self._partial, self._speculative):
            if decode is not None:
                decode.cancel()
        self._utterance = None
        self._partial = self._speculative = None
        self._pool.drop(self.session)

    async def drain(self) -> None:
        """Wait for finals already under way."""
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._finishing)
