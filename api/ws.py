"""/v1/ws/{conversation_id}: a conversation's audio and events over a WebSocket.

The protocol is documented in docs/websocket.md. In short: the client opens the socket with the
conversation's `cvt_` token (`?token=`, `Authorization: Bearer`, or in the start message),
sends `{"type": "start", "encoding", "sample_rate"}`, then binary audio; it receives JSON
events and binary agent audio in the same encoding and rate. Close codes: 4400 bad start,
4401 bad token, 4404 conversation not active, 4408 no start message in time, 4409 the
conversation is carried by another connection, 1011 the voice models failed to load.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any, Literal

import numpy as np
from aiohttp import WSMsgType, web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.errors import ApiError
from api.state import AppState
from api.voice import VoiceService
from bridge.session import HandoffOutcome, Session
from bridge.sessions import HeldElsewhere, NotActive
from bridge.store import NotFound
from bridge.voice_runtime import VoiceUnavailable
from media.codec import Decoder, Encoder, Encoding
from media.frames import FRAME_MS, PIPELINE_RATE

log = logging.getLogger(__name__)

routes = web.RouteTableDef()

START_TIMEOUT_S = 10.0
MAX_MESSAGE_BYTES = 256 * 1024
MAX_AHEAD_S = 1.0
"""How far ahead of real time a client may stream audio before reading from it pauses."""
FILL_AFTER_S = 0.5
"""A client that has sent no audio for this long while behind real time (push-to-talk, text
only, a stalled network) is taken to be silent until it sends again, so the end of the caller's
turn is still detected and the caller's side of the recording keeps time. Audio that does
arrive is never interleaved with filled silence."""
MAX_QUEUED = 500
"""Outgoing messages (about 10 s of audio) a slow client may fall behind before audio is
dropped; events are never dropped."""

FRAME_S = FRAME_MS / 1000
SILENCE = np.zeros(PIPELINE_RATE * FRAME_MS // 1000, np.int16)

CLOSE_BAD_START = 4400
CLOSE_UNAUTHORIZED = 4401
CLOSE_NOT_ACTIVE = 4404
CLOSE_START_TIMEOUT = 4408
CLOSE_REPLACED = 4409
CLOSE_UNAVAILABLE = 1011


class Start(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    type: Literal["start"]
    encoding: Encoding = "pcm16"
    sample_rate: Literal[8000, 16000] = 16000
    token: str | None = None


class UserText(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    type: Literal["user.text"]
    text: str = Field(min_length=1, max_length=4000)


class Dtmf(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    type: Literal["dtmf"]
    digit: str = Field(pattern=r"^[0-9*#A-D]$")


class EndRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    type: Literal["end"]


CLIENT_MESSAGES: dict[str, type[BaseModel]] = {
    "user.text": UserText,
    "dtmf": Dtmf,
    "end": EndRequest,
}


def _token_from(request: web.Request) -> str | None:
    token = request.query.get("token")
    if token:
        return token
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _problem(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "message"
    return f"{where}: {first['msg']}"


class SocketConnection:
    """One WebSocket carrying one conversation; it is the session's transport."""

    def __init__(self, ws: web.WebSocketResponse, voice: VoiceService, conversation_id: str):
        self.ws = ws
        self.voice = voice
        self.conversation_id = conversation_id
        self._out: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        self._encoder: Encoder | None = None
        self._session: Session | None = None
        self._dropped = 0
        self._close_code: int | None = None
        self._audio_started: float | None = None
        self._streamed_s = 0.0
        self._last_audio = 0.0

    # Transport -------------------------------------------------------------------------

    def send_event(self, kind: str, data: dict[str, Any]) -> None:
        self._out.put_nowait(json.dumps({"type": kind, **data}))

    async def hand_off(self, target: str | None) -> HandoffOutcome:
        # A WebSocket client connects the person itself; the handoff is done once announced.
        return HandoffOutcome(True, target)

    async def replaced(self) -> None:
        self._close_code = CLOSE_REPLACED
        await self.ws.close(code=CLOSE_REPLACED, message=b"another connection took over")

    # Lifecycle -------------------------------------------------------------------------

    async def refuse(self, code: int, message: str) -> None:
        """Close before the conversation starts, saying why in an error event and the close
        frame (whose reason is limited to 123 bytes)."""
        self._close_code = code
        with contextlib.suppress(Exception):
            await self.ws.send_str(json.dumps({"type": "error", "code": code, "message": message}))
            await self.ws.close(code=code, message=message.encode()[:120])

    async def run(self, token: str | None, state: AppState) -> None:
        start = await self._receive_start()
        if start is None:
            return
        token = token or start.token
        owner = await state.store.conversations.resolve_token(token) if token else None
        if owner != self.conversation_id:
            await self.refuse(CLOSE_UNAUTHORIZED, "the token does not open this conversation")
            return
        try:
            session = await self.voice.sessions.open(self.conversation_id)
        except (NotActive, NotFound):
            await self.refuse(CLOSE_NOT_ACTIVE, "the conversation is not active")
            return
        except HeldElsewhere as exc:
            await self.refuse(CLOSE_REPLACED, str(exc))
            return
        except VoiceUnavailable as exc:
            await self.refuse(CLOSE_UNAVAILABLE, str(exc))
            return
        except Exception:
            log.exception(
                "conversation %s: the voice session could not start", self.conversation_id
            )
            await self.refuse(CLOSE_UNAVAILABLE, "the voice pipeline is not available")
            return
        self._session = session
        self._encoder = Encoder(start.encoding, start.sample_rate)
        await self.voice.connect(self.conversation_id, self)
        self.send_event(
            "ready",
            {
                "conversation_id": self.conversation_id,
                "encoding": start.encoding,
                "sample_rate": start.sample_rate,
                "frame_ms": 20,
            },
        )
        # After `ready`: attaching starts the greeting, whose events follow it.
        session.attach(self)
        # The caller's timeline runs in real time from now on, sent audio or not, so the turn
        # ends and the recording stays aligned with the agent's side.
        self._audio_started = self._last_audio = time.monotonic()
        await self._converse(session, Decoder(start.encoding, start.sample_rate))

    async def _receive_start(self) -> Start | None:
        try:
            message = await self.ws.receive(timeout=START_TIMEOUT_S)
        except TimeoutError:
            await self.refuse(CLOSE_START_TIMEOUT, "no start message within 10 s")
            return None
        if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
            return None
        if message.type is not WSMsgType.TEXT:
            await self.refuse(CLOSE_BAD_START, 'the first message must be {"type": "start", …}')
            return None
        try:
            return Start.model_validate_json(message.data)
        except ValidationError as exc:
            await self.refuse(CLOSE_BAD_START, f"bad start message: {_problem(exc)}")
            return None

    async def _converse(self, session: Session, decoder: Decoder) -> None:
        sender = asyncio.get_running_loop().create_task(self._send_loop())
        stop_ticking = self.voice.clock.add(self._tick)
        ended = asyncio.get_running_loop().create_task(session.ended.wait())
        receiver = asyncio.get_running_loop().create_task(self._receive_loop(session, decoder))
        try:
            await asyncio.wait({ended, receiver, sender}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop_ticking()
            session.detach(self)
            self.voice.disconnect(self.conversation_id, self)
            receiver.cancel()
            ended.cancel()
            if session.ended.is_set() and self._close_code is None:
                # The conversation.ended event is queued: let it out, then close normally.
                self._out.put_nowait(None)
                await asyncio.wait({sender}, timeout=5)
                with contextlib.suppress(Exception):
                    await self.ws.close(code=1000, message=b"conversation ended")
            sender.cancel()
            await asyncio.gather(receiver, ended, sender, return_exceptions=True)

    def _tick(self) -> None:
        session, encoder = self._session, self._encoder
        if session is None or encoder is None:
            return
        if self._audio_started is not None:
            now = time.monotonic()
            behind = now - self._audio_started - self._streamed_s
            if behind > FILL_AFTER_S and now - self._last_audio > FILL_AFTER_S:
                session.audio(SILENCE)
                self._streamed_s += FRAME_S
        frame = session.pull_audio()
        if frame is None:
            return
        if self._out.qsize() >= MAX_QUEUED:
            self._dropped += 1
            if self._dropped == 1:
                self.send_event(
                    "error",
                    {"code": "slow_consumer", "message": "agent audio dropped: read faster"},
                )
            return
        self._out.put_nowait(encoder.encode(frame))

    async def _send_loop(self) -> None:
        while True:
            item = await self._out.get()
            if item is None:
                return
            if isinstance(item, bytes):
                await self.ws.send_bytes(item)
            else:
                await self.ws.send_str(item)

    async def _receive_loop(self, session: Session, decoder: Decoder) -> None:
        started = self._audio_started or time.monotonic()
        async for message in self.ws:
            if message.type is WSMsgType.BINARY:
                self._last_audio = time.monotonic()
                frames = decoder.push(message.data)
                for frame in frames:
                    session.audio(frame)
                self._streamed_s += len(frames) * FRAME_S
                ahead = self._streamed_s - (time.monotonic() - started)
                if ahead > MAX_AHEAD_S:
                    # Faster than real time: stop reading for a while (TCP pushes back).
                    await asyncio.sleep(ahead - MAX_AHEAD_S)
            elif message.type is WSMsgType.TEXT:
                await self._on_text(session, message.data)
            elif message.type is WSMsgType.ERROR:
                log.info("conversation %s: socket error %s", self.conversation_id, message.data)
                return

    async def _on_text(self, session: Session, data: str) -> None:
        try:
            parsed = json.loads(data)
        except ValueError:
            self._error("bad_message", "messages must be JSON objects")
            return
        kind = parsed.get("type") if isinstance(parsed, dict) else None
        model = CLIENT_MESSAGES.get(kind) if isinstance(kind, str) else None
        if model is None:
            expected = ", ".join(CLIENT_MESSAGES)
            self._error("unknown_message", f"unknown message type {kind!r}; expected {expected}")
            return
        try:
            message = model.model_validate(parsed)
        except ValidationError as exc:
            self._error("bad_message", _problem(exc))
            return
        if isinstance(message, UserText):
            session.text(message.text)
        elif isinstance(message, Dtmf):
            session.dtmf(message.digit)
        else:
            await session.end("user_ended")

    def _error(self, code: str, message: str) -> None:
        self.send_event("error", {"code": code, "message": message})


@routes.get("/v1/ws/{conversation_id}")
async def conversation_socket(request: web.Request) -> web.StreamResponse:
    state = AppState.of(request.app)
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=MAX_MESSAGE_BYTES)
    if not ws.can_prepare(request).ok:
        raise ApiError(
            400, "websocket_required", "this endpoint speaks WebSocket: send an Upgrade request"
        )
    await ws.prepare(request)
    connection = SocketConnection(ws, state.voice, request.match_info["conversation_id"])
    await connection.run(_token_from(request), state)
    return ws
