"""The voice side of the API process: the sessions registry, the frame clock, the HTTP client
the dialog engines use, and which WebSocket currently carries each conversation.

Models load on the first conversation that needs them (`VoiceRuntime.ready`), so a process
that only serves REST never pays for them; `voicebridge serve` preloads them at start.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import aiohttp

from bridge.dialog.base import DialogContext, DialogEngine
from bridge.frame_clock import FrameClock
from bridge.models import Agent, Conversation
from bridge.recordings import partial_path
from bridge.session import SessionConfig
from bridge.sessions import Sessions
from bridge.settings import Settings
from bridge.store import Store
from bridge.voice_runtime import VoiceRuntime

log = logging.getLogger(__name__)


class Connection(Protocol):
    async def replaced(self) -> None:
        """Another connection took this conversation over: close this one."""
        ...


class VoiceService:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        runtime: VoiceRuntime,
        *,
        owns_runtime: bool,
        config: SessionConfig | None = None,
    ) -> None:
        self.settings = settings
        self._owns_runtime = owns_runtime
        self.runtime = runtime
        self.clock = FrameClock()
        self._http: aiohttp.ClientSession | None = None
        self.sessions = Sessions(
            store,
            runtime,
            settings.node_id,
            self._engine,
            recordings=self._recording,
            config=config,
        )
        self._connections: dict[str, Connection] = {}
        self._grace: dict[str, asyncio.TimerHandle] = {}
        self._ending: set[asyncio.Task[None]] = set()
        self._listener: asyncio.Task[None] | None = None

    def _engine(
        self, agent: Agent, conversation: Conversation, on_error: Callable[[str, str], None]
    ) -> tuple[DialogEngine, DialogContext]:
        from bridge.dialog.factory import context_for, engine_for

        if self._http is None:
            self._http = aiohttp.ClientSession()
        return engine_for(agent, self._http, on_error), context_for(agent, conversation)

    def _recording(self, conversation_id: str) -> Path:
        return partial_path(self.settings.data_dir, conversation_id)

    def start(self) -> None:
        self._listener = asyncio.get_running_loop().create_task(
            self.sessions.listen(), name="session commands"
        )

    async def connect(self, conversation_id: str, connection: Connection) -> None:
        """`connection` now carries the conversation; an older one is closed."""
        grace = self._grace.pop(conversation_id, None)
        if grace is not None:
            grace.cancel()
        previous = self._connections.get(conversation_id)
        self._connections[conversation_id] = connection
        if previous is not None and previous is not connection:
            await previous.replaced()

    def disconnect(self, conversation_id: str, connection: Connection) -> None:
        """The connection went away: the session waits `ws_reconnect_grace` for a new one,
        then ends with reason `disconnected`."""
        if self._connections.get(conversation_id) is not connection:
            return
        del self._connections[conversation_id]
        session = self.sessions.get(conversation_id)
        if session is None or session.ended.is_set():
            return
        loop = asyncio.get_running_loop()

        def expire() -> None:
            self._grace.pop(conversation_id, None)
            if conversation_id not in self._connections:
                ending = loop.create_task(
                    session.end("disconnected"), name=f"end {conversation_id}"
                )
                self._ending.add(ending)
                ending.add_done_callback(self._ending.discard)

        self._grace[conversation_id] = loop.call_later(self.settings.ws_reconnect_grace, expire)

    async def shutdown(self) -> None:
        """The process is stopping: end every conversation while the sockets are still up, so
        each client hears conversation.ended before its socket closes."""
        for timer in self._grace.values():
            timer.cancel()
        self._grace.clear()
        await self.sessions.close("shutdown")

    async def close(self) -> None:
        await self.shutdown()
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        await self.clock.stop()
        if self._http is not None:
            await self._http.close()
        if self._owns_runtime:
            self.runtime.close()
