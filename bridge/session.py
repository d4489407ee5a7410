"""One conversation's voice session: caller audio and text in, agent audio and events out.

The session knows nothing of its transport (a WebSocket today, a phone call next): the
transport pushes 16 kHz frames (`audio`), typed text (`text`) and DTMF digits (`dtmf`), pulls
the agent's frames on its own 20 ms clock (`pull_audio`), and receives events through the
`Transport` it attached. Inside, per caller frame: VAD → barge-in check → recognizer; a final
transcript becomes a user turn, the dialog engine's reply is cut into pieces, synthesized
piece by piece in the shared inference pool and played out as soon as the first piece is ready.

Nothing on the audio path waits on Redis: messages, events and metrics go through a
`StoreWriter` that applies them in order in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bridge import conversation_metrics, events, lifecycle, recordings
from bridge.dialog.base import Act, DialogContext, DialogEngine, ReplyPart, Say
from bridge.models import (
    Agent,
    Conversation,
    ConversationStatus,
    ListenEngineConfig,
    Message,
    MessageType,
    Metrics,
)
from bridge.store import Conflict, NotFound, Store, StoreError
from bridge.store.conversations import new_message
from bridge.store_writer import StoreWriter
from bridge.voice_runtime import Models, VoiceRuntime
from media.barge_in import BargeIn, BargeInConfig, Decision
from media.frames import FRAME_MS, Pcm16
from media.playout import Playout
from media.recognizer import Final, Partial, Recognizer, RecognizerConfig
from media.recording import Recorder
from media.segmenter import Kind, SegmenterConfig
from media.speech_text import SentenceBuffer
from media.tts import Style
from media.vad import Vad

log = logging.getLogger(__name__)

HANDOFF_FAILED_LINE = "I'm sorry, I couldn't transfer you just now. Let's carry on together."


@dataclass(frozen=True)
class HandoffOutcome:
    succeeded: bool
    target: str | None
    reason: str = ""


class Transport(Protocol):
    def send_event(self, kind: str, data: dict[str, Any]) -> None:
        """Queue an event for the client; must not block."""
        ...

    async def hand_off(self, target: str | None) -> HandoffOutcome:
        """Transfer the caller to a person (SIP REFER on a phone call)."""
        ...


@dataclass(frozen=True)
class SessionConfig:
    barge_in: BargeInConfig = field(default_factory=BargeInConfig)
    recognizer: RecognizerConfig = field(default_factory=RecognizerConfig)
    segmenter: SegmenterConfig | None = None
    unsettled_pause_s: float = 3.0
    """A barge-in pause still without a transcript this long after the caller stopped resumes
    the agent (the utterance was noise the recognizer dropped)."""
    write_timeout_s: float = 30.0
    """How long an ending session waits for its queued store writes (Redis may be restarting)."""


@dataclass
class _Reply:
    task: asyncio.Task[None] | None = None
    text: list[str] = field(default_factory=list)
    turn_ended_at: float | None = None
    """perf_counter time the caller's speech ended, for the voice-to-voice latency."""
    turn_started_at: float = 0.0
    drained: asyncio.Event = field(default_factory=asyncio.Event)
    audible: asyncio.Event = field(default_factory=asyncio.Event)
    """Set at the reply's first audio frame, or once it is over without any."""
    spoken_latency_ms: float | None = None

    @property
    def full_text(self) -> str:
        return "".join(self.text).strip()


class Session:
    def __init__(
        self,
        *,
        runtime: VoiceRuntime,
        models: Models,
        store: Store,
        agent: Agent,
        conversation: Conversation,
        engine: DialogEngine,
        context: DialogContext,
        config: SessionConfig | None = None,
        recording_path: Path | None = None,
        on_finished: Callable[[Session], None] | None = None,
    ) -> None:
        self.id = conversation.conversation_id
        self.conversation = conversation
        self.agent = agent
        self.config = config or SessionConfig()
        self._runtime = runtime
        self._metrics = runtime.metrics
        self._store = store
        self._engine = engine
        self._context = context
        self._speaker = models.speakers[agent.voice_type]
        self._style = Style(conversation.settings.voice_speed, conversation.settings.voice_pitch)
        self._vad = Vad(models.vad, 16_000, config=self.config.segmenter)
        self._recognizer = Recognizer(
            self.id,
            models.asr.transcribe,
            runtime.pool,
            self._on_partial,
            self._on_final,
            self.config.recognizer,
        )
        self._barge = BargeIn(self.config.barge_in)
        engine_config = agent.dialog_engine
        # A listen line that does not transcribe is media only: nothing runs on what it hears.
        self._hears = not isinstance(engine_config, ListenEngineConfig) or engine_config.transcribe
        self._playout = Playout()
        self._recorder = Recorder(recording_path) if recording_path is not None else None
        self._writer = StoreWriter(f"session {self.id}", self._on_refused)
        self._transport: Transport | None = None
        self._on_finished = on_finished
        self._reply: _Reply | None = None
        self._stream_ms = 0
        self._agent_ms = 0
        self._turn_ended_at: float | None = None
        self._unsettled_since: float | None = None
        self._messages: list[Message] = []
        self._latencies: list[float] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ending = False
        self._greeted = False
        self.ended = asyncio.Event()
        self.end_reason: str | None = None
        self.final_status: ConversationStatus | None = None

    # Transport side -------------------------------------------------------------------

    def attach(self, transport: Transport) -> None:
        """`transport` carries the session from now on; the first one hears the greeting."""
        self._transport = transport
        if not self._greeted and not self._ending:
            # Only now: a greeting whose audio is ready at once (the phrase cache) would
            # otherwise have sent its events to nobody.
            self._greeted = True
            self._speak(self._engine.greet(self._context), turn_ended_at=None)

    def detach(self, transport: Transport) -> None:
        if self._transport is transport:
            self._transport = None

    @property
    def attached(self) -> bool:
        return self._transport is not None

    def start(self) -> None:
        """Begin; the agent greets the caller once a transport is attached."""
        self._metrics.sessions.inc()
        self._writer.start()

    def audio(self, frame: Pcm16) -> None:
        """One 20 ms caller frame at 16 kHz. Never blocks."""
        if self._ending:
            return
        at_ms = self._stream_ms
        self._stream_ms += FRAME_MS
        if self._recorder is not None:
            self._recorder.caller(frame, at_ms)
        if not self._hears:
            return
        segment_events = self._vad.push(frame)
        now = time.perf_counter()
        for event in segment_events:
            if event.kind is Kind.SPEECH_END:
                # The turn ended at the first silent frame, a hangover ago.
                self._turn_ended_at = now - (self._stream_ms - event.at_ms) / 1000
                if self._barge.paused:
                    self._unsettled_since = now
            elif event.kind is Kind.SPEECH_START:
                self._unsettled_since = None
        speaking = self._playout.speaking and self._reply is not None
        decision = self._barge.caller_frame(frame, self._vad.probability, speaking)
        if decision is Decision.PAUSE:
            self._playout.pause()
        elif decision is Decision.INTERRUPT:
            self._interrupt()
        if (
            self._unsettled_since is not None
            and now - self._unsettled_since > self.config.unsettled_pause_s
        ):
            self._unsettled_since = None
            if self._barge.transcript("") is Decision.RESUME:
                self._resume()
        self._recognizer.push(frame, segment_events)

    def text(self, text: str) -> None:
        """A typed caller turn (text-only clients)."""
        text = text.strip()
        if self._ending or not text:
            return
        self._interrupt()
        self._user_turn(text, {"input": "text"}, turn_ended_at=None)

    def dtmf(self, digit: str) -> None:
        if self._ending:
            return
        self._interrupt()
        self._user_turn(digit, {"input": "dtmf"}, turn_ended_at=None, dtmf=digit)

    def pull_audio(self) -> Pcm16 | None:
        """The agent's next 20 ms frame, or None while it is silent; call every 20 ms."""
        reply = self._reply
        frame = self._playout.pull()
        if frame is None:
            if reply is not None and self._playout.drained:
                reply.drained.set()
                reply.audible.set()
            return None
        if reply is not None and self._playout.frames_played == 1:
            self._first_audio(reply)
        self._barge.agent_frame(frame)
        self._agent_ms = max(self._stream_ms, self._agent_ms + FRAME_MS)
        if self._recorder is not None:
            self._recorder.agent(frame, self._agent_ms - FRAME_MS)
        if reply is not None and self._playout.drained:
            reply.drained.set()
        return frame

    # Recognition -------------------------------------------------------------------------

    def _on_partial(self, partial: Partial) -> None:
        self._emit("transcript.partial", {"text": partial.text})

    def _on_final(self, final: Final) -> None:
        if self._ending:
            return
        self._metrics.asr_wait.observe(final.wait_ms / 1000)
        self._metrics.asr_compute.observe(final.compute_ms / 1000)
        text = final.text.strip()
        if self._barge.paused:
            self._unsettled_since = None
            decision = self._barge.transcript(text)
            if decision is Decision.RESUME:
                self._emit("transcript.final", {"text": text, "backchannel": True})
                self._resume()
                return
            if decision is Decision.INTERRUPT:
                self._interrupt()
        elif self._reply is not None and self._playout.speaking:
            # Heard while the agent spoke, yet barge-in never took it for the caller: our own
            # voice coming back, or too little to matter. Not a turn.
            log.debug("session %s: ignored overlapping audio %r", self.id, text)
            return
        if not text:
            return
        self._interrupt()
        meta = {"input": "speech", "speech_ms": final.speech_ms, "asr_wait_ms": final.wait_ms}
        self._emit("transcript.final", {"text": text})
        self._user_turn(text, meta, turn_ended_at=self._turn_ended_at)

    def _resume(self) -> None:
        self._metrics.barge_ins.labels("resumed").inc()
        self._playout.resume()

    # Turns and replies -------------------------------------------------------------------

    def _user_turn(
        self,
        text: str,
        meta: dict[str, Any],
        *,
        turn_ended_at: float | None,
        dtmf: str | None = None,
    ) -> None:
        self._context.history.append(("user", text))
        self._store_message("user", text, meta=meta)
        self._speak(self._engine.respond(self._context, text, dtmf=dtmf), turn_ended_at)

    def _speak(self, parts: AsyncIterator[ReplyPart], turn_ended_at: float | None) -> None:
        reply = _Reply(turn_ended_at=turn_ended_at, turn_started_at=time.perf_counter())
        self._reply = reply
        self._playout.begin()
        reply.task = self._spawn(self._run_reply(reply, parts), f"reply {self.id}")

    async def _run_reply(self, reply: _Reply, parts: AsyncIterator[ReplyPart]) -> None:
        buffer = SentenceBuffer()
        action: Act | None = None
        first_text = True
        try:
            async for part in parts:
                if isinstance(part, Act):
                    action = part
                    continue
                if first_text and part.text.strip():
                    first_text = False
                    elapsed = time.perf_counter() - reply.turn_started_at
                    self._metrics.dialog_first_text.observe(elapsed)
                reply.text.append(part.text)
                for piece in buffer.push(part.text):
                    await self._synthesize(piece)
            for piece in buffer.flush():
                await self._synthesize(piece)
        finally:
            with contextlib.suppress(Exception):
                await parts.aclose()  # type: ignore[attr-defined]
        self._playout.finish()
        text = reply.full_text
        if text:
            if not self._playout.drained:
                # The text is often complete before any audio plays (always so when the audio
                # came from the phrase cache), sometimes only after: waiting for the first frame
                # gives the event one place, after agent.audio.start, whatever the timing.
                await reply.audible.wait()
            self._emit("agent.message", {"text": text})
        if not self._playout.drained:
            await reply.drained.wait()
        if self._reply is reply:
            self._reply = None
        if text:
            self._emit("agent.audio.end", {})
            meta = (
                {} if reply.spoken_latency_ms is None else {"latency_ms": reply.spoken_latency_ms}
            )
            self._context.history.append(("agent", text))
            self._store_message("agent", text, meta=meta or None)
        if action is not None:
            await self._act(action)

    async def _synthesize(self, piece: str) -> None:
        started = time.perf_counter()
        # A cached phrase must not queue behind other sessions' recognition in the pool.
        frames = self._speaker.cached(piece, self._style)
        if frames is None:
            frames = await self._runtime.pool.submit(
                self.id, lambda: self._speaker.phrase(piece, self._style), urgent=True
            )
        self._metrics.tts.observe(time.perf_counter() - started)
        self._playout.add(piece, frames)

    def _first_audio(self, reply: _Reply) -> None:
        if reply.turn_ended_at is not None:
            latency = time.perf_counter() - reply.turn_ended_at
            reply.spoken_latency_ms = round(latency * 1000, 1)
            self._latencies.append(reply.spoken_latency_ms)
            self._metrics.voice_to_voice.observe(latency)
        self._emit("agent.audio.start", {})
        reply.audible.set()

    def _interrupt(self) -> None:
        """Stop the reply in progress; what the caller already heard is stored as interrupted."""
        reply, self._reply = self._reply, None
        if reply is None:
            return
        if reply.task is not None and reply.task is not asyncio.current_task():
            reply.task.cancel()
        heard = self._playout.speaking
        spoken = self._playout.stop()
        self._barge = BargeIn(self.config.barge_in)
        if not heard:
            return
        self._metrics.barge_ins.labels("interrupted").inc()
        self._emit("interrupted", {"spoken_text": spoken, "text": reply.full_text})
        if spoken:
            self._context.history.append(("agent", spoken))
            self._store_message(
                "agent", spoken, interrupted=True, meta={"full_text": reply.full_text}
            )

    async def _act(self, action: Act) -> None:
        if action.kind == "end":
            self._spawn(self.end("agent_hangup"), f"end {self.id}")
            return
        target = self.agent.handoff_target
        transport = self._transport
        if transport is None:
            outcome = HandoffOutcome(False, target, "the caller is not connected")
        else:
            try:
                outcome = await transport.hand_off(target)
            except Exception as exc:
                log.exception("session %s: handoff failed", self.id)
                outcome = HandoffOutcome(False, target, str(exc) or type(exc).__name__)
        status = "succeeded" if outcome.succeeded else "failed"
        self._emit("agent.handoff", {"target": outcome.target, "status": status})
        self._store_event(
            "agent.handoff",
            lambda conversation: events.HandoffData(
                **events.ref(conversation),
                target=outcome.target,
                status=status,
                reason=outcome.reason or action.reason or None,
            ),
        )
        if outcome.succeeded:
            self._spawn(self.end("transferred"), f"end {self.id}")
            return
        self.report_error("handoff_failed", outcome.reason or "the transfer did not succeed")
        line = self.agent.custom_responses.get("handoff_failed", HANDOFF_FAILED_LINE)
        self._speak(_lines(line), turn_ended_at=None)

    # Store -------------------------------------------------------------------------------

    def _store_message(
        self,
        kind: MessageType,
        content: str,
        *,
        interrupted: bool | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        message = new_message(kind, content, interrupted=interrupted, meta=meta)

        async def write() -> None:
            await self._store.conversations.append(self.id, message)
            self._messages.append(message)

        async def write_metrics() -> None:
            metrics = conversation_metrics.compute(
                "active", None, self._messages, None, self._latencies
            )
            await self._store.conversations.update_metrics(self.id, metrics)

        # Two writes, each retried alone: a retried append must not follow a metrics update
        # that failed after the message had landed.
        self._writer.put(write)
        if kind == "agent":
            self._writer.put(write_metrics)

    def _store_event(
        self, event_type: str, data: Callable[[Conversation], events.ConversationRef]
    ) -> None:
        async def write() -> None:
            await self._store.conversations.emit(self.id, event_type, data(self.conversation))

        self._writer.put(write)

    def report_error(self, code: str, message: str) -> None:
        """Something went wrong that the caller should not feel: an event, never a crash."""
        log.warning("session %s: %s: %s", self.id, code, message)
        self._emit("error", {"code": code, "message": message})
        self._store_event(
            "error.occurred",
            lambda conversation: events.ErrorOccurredData(
                **events.ref(conversation), error=events.ErrorDetail(code=code, message=message)
            ),
        )

    def _on_refused(self, error: StoreError) -> None:
        if isinstance(error, Conflict | NotFound) and not self._ending:
            # Ended elsewhere (REST, another node): follow, keeping the reason it was given.
            self._spawn(self.end("api_end", already_ended=True), f"end {self.id}")

    # Events and tasks --------------------------------------------------------------------

    def _emit(self, kind: str, data: dict[str, Any]) -> None:
        if self._transport is not None:
            self._transport.send_event(kind, data)

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        error = task.exception()
        log.error("session %s: %s failed", self.id, task.get_name(), exc_info=error)
        if not self._ending:
            self.report_error("internal_error", f"{task.get_name()}: {error}")
            self._spawn(self.end("error"), f"end {self.id}")

    # Ending ------------------------------------------------------------------------------

    async def end(self, reason: str, *, already_ended: bool = False) -> None:
        """End the conversation once, whatever asked first; later calls wait for the first."""
        if self._ending:
            await self.ended.wait()
            return
        self._ending = True
        try:
            await self._finish(reason, already_ended)
        finally:
            self._metrics.sessions.dec()
            self.ended.set()
            if self._on_finished is not None:
                self._on_finished(self)

    async def _finish(self, reason: str, already_ended: bool) -> None:
        self._interrupt()
        self._recognizer.reset()
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current and not task.get_name().startswith("end "):
                task.cancel()
        await self._writer.close(self.config.write_timeout_s)
        conversation = await self._end_in_store(reason, already_ended)
        if self._recorder is not None:
            recorder = self._recorder
            try:
                await asyncio.to_thread(lambda: recordings.finish(recorder.close()))
            except OSError as exc:
                log.error("session %s: the recording could not be saved: %s", self.id, exc)
        self.end_reason = conversation.end_reason if conversation else reason
        self.final_status = conversation.status if conversation else None
        self._emit(
            "conversation.ended",
            {"reason": self.end_reason, "status": self.final_status},
        )

    async def _end_in_store(self, reason: str, already_ended: bool) -> Conversation | None:
        def metrics_for(current: Conversation) -> Metrics:
            status = current.status
            if status == "active" and not already_ended:
                status = lifecycle.status_for_end_reason(reason)
                end_reason: str | None = reason
            else:
                end_reason = current.end_reason
            return conversation_metrics.compute(
                status, end_reason, self._messages, current.feedback, self._latencies
            )

        backoff = 0.1
        deadline = time.monotonic() + self.config.write_timeout_s
        while True:
            try:
                result = await self._store.conversations.end(
                    self.id, reason=reason, metrics=metrics_for
                )
                if not result.changed:
                    # Ended before (through the API): the metrics are this session's own.
                    metrics = metrics_for(result.conversation)
                    return await self._store.conversations.update_metrics(self.id, metrics)
                return result.conversation
            except NotFound:
                return None
            except Exception as exc:
                if time.monotonic() > deadline:
                    log.error("session %s: could not record the end: %s", self.id, exc)
                    return None
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)


async def _lines(*lines: str) -> AsyncIterator[ReplyPart]:
    for line in lines:
        yield Say(line)
