"""Ends the active conversations nothing holds, so every conversation reaches a final state.

Every `voicebridge serve` process runs one. Each scan reads the active conversations and ends:
- those never connected (no session here, none ever) once older than the connect timeout:
  `failed`, reason `not_connected`;
- those whose holder process has stopped beating (SIGKILL, a crash, a lost machine): `failed`,
  reason `node_lost`; also those held under this process's own node name from before it
  started (it was restarted under the same name, as `serve --nodes N` does);
- those held here whose session ended while the store could not record it: the session's own
  reason.

A missing heartbeat is evidence only when it stays missing: a restarted Redis (or a failover)
loses every heartbeat at once while their processes run on. So a holder is lost only once it
has been seen missing on scans at least a heartbeat TTL apart, during which a live process
beats again; and a sweeper judges others only while its own heartbeat is there, which proves
the Redis it reads has seen this process's latest beat. `Conversations.end` ends a conversation
once, so several sweepers (and a session ending at the same moment) emit one
`conversation.ended`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from redis.exceptions import RedisError

from bridge import clock
from bridge.models import Conversation
from bridge.sessions import HEARTBEAT_TTL_S, Sessions
from bridge.settings import Settings
from bridge.store import NotFound, Store

log = logging.getLogger(__name__)

SWEEP_EVERY_S = 5.0
NOT_CONNECTED = "not_connected"
NODE_LOST = "node_lost"


@dataclass(frozen=True)
class Here:
    """What this process knows at the moment of a scan."""

    node: str
    heartbeat: bool
    """Whether this process's own heartbeat key is in Redis."""
    alive: frozenset[str]
    """The holders (other processes) whose heartbeat key is in Redis."""
    holding: frozenset[str]
    """Conversations with a session running or starting here."""
    finished: dict[str, str] = field(default_factory=dict)
    """Conversations whose session ended here, with its reason."""
    started_ms: int = 0
    """When this process started. A conversation held under this node's name but created
    before then was held by an earlier process of the same name (restarted after a crash), and
    no session of this one will take it."""


@dataclass(frozen=True)
class Ending:
    conversation_id: str
    reason: str


class Judge:
    """The sweeper's decisions; it remembers since when each holder has been seen missing."""

    def __init__(self, connect_timeout_s: float, heartbeat_ttl_s: float) -> None:
        self.connect_timeout_s = connect_timeout_s
        self.heartbeat_ttl_s = heartbeat_ttl_s
        self._missing_since: dict[str, float] = {}

    def forget_heartbeats(self) -> None:
        """What was seen of heartbeats is no evidence any more (Redis was unreachable)."""
        self._missing_since.clear()

    def decide(
        self, conversations: Iterable[Conversation], here: Here, now_ms: int, now_s: float
    ) -> list[Ending]:
        """The conversations to end now. `now_ms` is wall-clock (ages of records), `now_s`
        monotonic (how long a holder has been missing)."""
        if not here.heartbeat:
            self._missing_since.clear()
        endings: list[Ending] = []
        missing: set[str] = set()
        for conversation in conversations:
            cid, holder = conversation.conversation_id, conversation.node
            if holder is None or holder == here.node:
                if cid in here.holding:
                    continue
                if cid in here.finished:
                    endings.append(Ending(cid, here.finished[cid]))
                elif holder is not None and self._created_ms(conversation) < here.started_ms:
                    endings.append(Ending(cid, NODE_LOST))
                elif self._age_s(conversation, now_ms) >= self.connect_timeout_s:
                    endings.append(Ending(cid, NOT_CONNECTED))
                continue
            if not here.heartbeat or holder in here.alive:
                continue
            missing.add(holder)
            since = self._missing_since.setdefault(holder, now_s)
            if now_s - since >= self.heartbeat_ttl_s:
                endings.append(Ending(cid, NODE_LOST))
        for holder in set(self._missing_since) - missing:
            del self._missing_since[holder]
        return endings

    @staticmethod
    def _created_ms(conversation: Conversation) -> int:
        return clock.parse_iso(conversation.created_at)

    def _age_s(self, conversation: Conversation, now_ms: int) -> float:
        return (now_ms - self._created_ms(conversation)) / 1000


def connect_timeout(settings: Settings) -> float:
    """A conversation waits for its connection no longer than its token lets it connect."""
    return min(settings.conversation_connect_timeout, float(settings.conversation_token_ttl))


class Sweeper:
    """The Redis side of the sweep: reads the active conversations and ends what `Judge`
    says."""

    def __init__(
        self,
        store: Store,
        sessions: Sessions,
        judge: Judge,
        every_s: float = SWEEP_EVERY_S,
    ) -> None:
        self.store = store
        self.sessions = sessions
        self.judge = judge
        self.every_s = every_s
        self.started_ms = clock.now_ms()

    async def run(self) -> None:
        while True:
            try:
                await self.sweep()
            except RedisError as exc:
                self.judge.forget_heartbeats()
                log.warning("sweeper: Redis unavailable: %s", exc)
            await asyncio.sleep(self.every_s)

    async def sweep(self) -> list[Ending]:
        """One scan: ends what it must and returns what it ended."""
        node = self.sessions.node
        conversations = await self.store.conversations.active()
        finished = self.sessions.finished_here()
        self.sessions.forget(set(finished) - {c.conversation_id for c in conversations})
        holders = {c.node for c in conversations if c.node is not None and c.node != node}
        here = Here(
            node=node,
            heartbeat=await self.store.nodes.alive(node),
            alive=await self.store.nodes.alive_among(holders),
            holding=frozenset(
                c.conversation_id for c in conversations if self.sessions.holds(c.conversation_id)
            ),
            finished=finished,
            started_ms=self.started_ms,
        )
        loop = asyncio.get_running_loop()
        endings = self.judge.decide(conversations, here, clock.now_ms(), loop.time())
        ended = []
        for ending in endings:
            try:
                result = await self.store.conversations.end(
                    ending.conversation_id, reason=ending.reason
                )
            except NotFound:
                continue
            if result.changed:
                ended.append(ending)
        self.sessions.forget({e.conversation_id for e in endings})
        return ended


def start(settings: Settings, store: Store, sessions: Sessions) -> list[asyncio.Task[None]]:
    sweeper = Sweeper(store, sessions, Judge(connect_timeout(settings), HEARTBEAT_TTL_S))
    return [asyncio.create_task(sweeper.run(), name=f"conversation-sweeper-{settings.node_id}")]
