"""The voice sessions one bridge process holds, and how other processes reach them.

A session lives in the process its caller is connected to (the conversation's `node`). When a
conversation is ended elsewhere — `POST /v1/conversations/{id}/end` served by any process — the
store appends an `end` command to the owning node's command stream; this process's listener
reads it and ends the session, so the caller is hung up however many processes share a Redis.
A heartbeat key says the process is alive: a client reconnecting through another process may
take a conversation over only from a process that is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

from redis.exceptions import RedisError

from bridge.dialog.base import DialogContext, DialogEngine
from bridge.models import Agent, Conversation
from bridge.session import Session, SessionConfig
from bridge.store import Conflict, NotFound, Store
from bridge.voice_runtime import Models, VoiceRuntime, VoiceUnavailable

log = logging.getLogger(__name__)

HEARTBEAT_EVERY_S = 5.0
HEARTBEAT_TTL_S = 15
COMMAND_BLOCK_MS = 2000
ENDED_UNHELD_KEPT = 1000

EngineFactory = Callable[
    [Agent, Conversation, Callable[[str, str], None]], tuple[DialogEngine, DialogContext]
]
"""Builds an agent's dialog engine and the conversation's dialog context; engine failures are
reported through the callback (code, message)."""


class NotActive(Exception):
    """The conversation has ended (or never existed): there is nothing to connect to."""


class HeldElsewhere(Exception):
    """Another live bridge process holds the conversation's session."""


class Sessions:
    def __init__(
        self,
        store: Store,
        runtime: VoiceRuntime,
        node: str,
        engines: EngineFactory,
        *,
        recordings: Callable[[str], Path] | None = None,
        config: SessionConfig | None = None,
    ) -> None:
        self.store = store
        self.runtime = runtime
        self.node = node
        self._engines = engines
        self._recordings = recordings
        self._config = config or SessionConfig()
        self._live: dict[str, Session] = {}
        self._opening: dict[str, asyncio.Task[Session]] = {}
        self._unrecorded: dict[str, str] = {}
        self._ended_unheld: dict[str, None] = {}
        """Conversations an end command named while no session of theirs ran here, oldest
        first."""

    def holds(self, conversation_id: str) -> bool:
        """Whether a session for the conversation runs or is starting here."""
        live = self._live.get(conversation_id)
        return conversation_id in self._opening or (live is not None and not live.ended.is_set())

    def finished_here(self) -> dict[str, str]:
        """Conversations whose session ended here, with the reason it ended for; the store may
        not have recorded the end (Redis was down when the session ended)."""
        return dict(self._unrecorded)

    def forget(self, conversation_ids: set[str]) -> None:
        """The store has these conversations ended: their sessions need no more care."""
        for conversation_id in conversation_ids:
            self._unrecorded.pop(conversation_id, None)

    def __len__(self) -> int:
        return len(self._live)

    def get(self, conversation_id: str) -> Session | None:
        return self._live.get(conversation_id)

    async def open(self, conversation_id: str) -> Session:
        """The conversation's running session, starting it here when none runs."""
        live = self._live.get(conversation_id)
        if live is not None and not live.ended.is_set():
            return live
        opening = self._opening.get(conversation_id)
        if opening is None:
            opening = asyncio.get_running_loop().create_task(self._start(conversation_id))
            self._opening[conversation_id] = opening
            opening.add_done_callback(lambda _t: self._opening.pop(conversation_id, None))
        return await asyncio.shield(opening)

    async def _start(self, conversation_id: str) -> Session:
        try:
            return await self._start_session(conversation_id)
        except (NotActive, HeldElsewhere, NotFound, Conflict, RedisError, VoiceUnavailable):
            # Nothing was started (or the refusal ended it), or the store cannot say: the
            # conversation stays as it is.
            raise
        except Exception:
            # The voice pipeline failed (models, dialog engine): no retry would fare better,
            # so the conversation ends now rather than staying active with nothing holding it.
            with contextlib.suppress(Exception):
                await self.store.conversations.end(conversation_id, reason="error")
            raise

    async def _start_session(self, conversation_id: str) -> Session:
        conversation = await self.store.conversations.get(conversation_id)
        if conversation.status != "active":
            raise NotActive(f"conversation {conversation_id} is {conversation.status}")
        holder = conversation.node
        if holder is not None and holder != self.node and await self.store.nodes.alive(holder):
            raise HeldElsewhere(f"conversation {conversation_id} is held by {holder}")
        agent = await self.store.agents.get(conversation.agent_id)
        models = await self._models_for(conversation_id, agent)
        conversation = await self.store.conversations.claim(conversation_id, self.node)
        return self._begin(conversation, agent, models)

    async def open_created(self, conversation: Conversation, agent: Agent) -> Session:
        """A session for a conversation this node has just created as its own (`node` is this
        node), with its agent: nothing to read back or claim, so a phone call starts without
        the five Redis round trips `open` makes. When it fails, the caller ends the
        conversation."""
        if conversation.node != self.node or not self.runtime.loaded:
            return await self.open(conversation.conversation_id)
        conversation_id = conversation.conversation_id
        models = await self._models_for(conversation_id, agent)
        session = self._begin(conversation, agent, models)
        if conversation_id in self._ended_unheld:
            del self._ended_unheld[conversation_id]
            # Ended through the API between its creation and now: the command came first.
            self._carry_out({"command": "end", "conversation_id": conversation_id})
        return session

    async def _models_for(self, conversation_id: str, agent: Agent) -> Models:
        models = await self.runtime.ready()
        problem = self.runtime.voice_problem(agent.voice_type)
        if problem is not None:
            # Refused, not answered into silence: the conversation ends here and now.
            await self.store.conversations.end(
                conversation_id, reason="voice_unavailable", status="failed"
            )
            raise VoiceUnavailable(problem)
        return models

    def _begin(self, conversation: Conversation, agent: Agent, models: Models) -> Session:
        conversation_id = conversation.conversation_id
        session_box: list[Session] = []

        def on_error(code: str, message: str) -> None:
            if session_box:
                session_box[0].report_error(code, message)

        engine, context = self._engines(agent, conversation, on_error)
        recording = (
            self._recordings(conversation_id)
            if self._recordings is not None and conversation.settings.recording_enabled
            else None
        )
        session = Session(
            runtime=self.runtime,
            models=models,
            store=self.store,
            agent=agent,
            conversation=conversation,
            engine=engine,
            context=context,
            config=self._config,
            recording_path=recording,
            on_finished=self._finished,
        )
        session_box.append(session)
        self._live[conversation_id] = session
        try:
            session.start()
        except Exception:
            del self._live[conversation_id]
            raise
        return session

    def _finished(self, session: Session) -> None:
        if self._live.get(session.id) is session:
            del self._live[session.id]
        self._unrecorded[session.id] = session.end_reason or "error"

    async def listen(self) -> None:
        """Keep the heartbeat and carry out commands sent to this process, until cancelled."""
        after: str | None = None
        last_beat = 0.0
        task = asyncio.current_task()
        while task is None or not task.cancelling():
            try:
                if after is None:
                    after = await self.store.nodes.last_command_id(self.node)
                if time.monotonic() - last_beat >= HEARTBEAT_EVERY_S:
                    await self.store.nodes.heartbeat(self.node, HEARTBEAT_TTL_S)
                    last_beat = time.monotonic()
                commands = await self.store.nodes.read_commands(self.node, after, COMMAND_BLOCK_MS)
            except RedisError as exc:
                log.warning("node %s: command stream unavailable: %s", self.node, exc)
                await asyncio.sleep(1.0)
                continue
            for command_id, fields in commands:
                after = command_id
                self._carry_out(fields)

    def _carry_out(self, fields: dict[str, str]) -> None:
        if fields.get("command") != "end":
            return
        conversation_id = fields.get("conversation_id", "")
        session = self._live.get(conversation_id)
        if session is None:
            # Its session may be about to start (`open_created`), which looks here.
            self._ended_unheld[conversation_id] = None
            while len(self._ended_unheld) > ENDED_UNHELD_KEPT:
                del self._ended_unheld[next(iter(self._ended_unheld))]
            return
        asyncio.get_running_loop().create_task(
            session.end("api_end", already_ended=True), name=f"end {session.id}"
        )

    async def close(self, reason: str) -> None:
        """End every session (the process is stopping) and say this node is gone."""
        live = list(self._live.values())
        await asyncio.gather(*(s.end(reason) for s in live), return_exceptions=True)
        try:
            await self.store.nodes.gone(self.node)
        except RedisError as exc:
            log.warning("node %s: could not clear the heartbeat: %s", self.node, exc)
