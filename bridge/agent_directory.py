"""Which agent answers a dialed number, from memory: every INVITE asked Redis (HGET, then GET
and a parse of the agent), ~9 % of the event loop at 250 setups/s (py-spy, issue 11).

The copies stay true through the store's announcements: a change made on this node drops them
as soon as it is stored, one made on any other node when its pub/sub message arrives (the
message is published in the change's own transaction). Copies are kept only while the
subscription is known to be live; while it is not (Redis restarting, a connection silently
gone), every lookup reads Redis, as it did before.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from bridge.models import Agent
from bridge.store import NotFound, Store

log = logging.getLogger(__name__)

KEPT = 10_000
"""Numbers (and agent ids) remembered at most: numbers nobody answers are remembered too, so
that a caller dialing at random cannot grow the table without bound."""


class AgentDirectory:
    def __init__(self, store: Store, *, retry_s: float = 1.0, heartbeat_s: float = 5.0) -> None:
        self._store = store
        self._retry_s = retry_s
        self._heartbeat_s = heartbeat_s
        self._by_number: dict[str, Agent | None] = {}
        self._by_id: dict[str, Agent | None] = {}
        # Bumped by every change, so that a read which began before a change does not keep
        # what it read after the change was announced.
        self._generation = 0
        self.listening = False
        store.agents.watchers.append(self.forget)

    def forget(self) -> None:
        self._generation += 1
        self._by_number.clear()
        self._by_id.clear()

    async def for_number(self, number: str) -> Agent | None:
        """The agent `number` routes to, if any."""
        if number in self._by_number:
            return self._by_number[number]
        generation = self._generation
        agent = await self._store.agents.for_number(number)
        self._keep(self._by_number, number, agent, generation)
        return agent

    async def get(self, agent_id: str) -> Agent | None:
        """The agent, or None when there is no such agent."""
        if agent_id in self._by_id:
            return self._by_id[agent_id]
        generation = self._generation
        try:
            agent: Agent | None = await self._store.agents.get(agent_id)
        except NotFound:
            agent = None
        self._keep(self._by_id, agent_id, agent, generation)
        return agent

    def _keep(
        self, table: dict[str, Agent | None], key: str, agent: Agent | None, generation: int
    ) -> None:
        if self.listening and generation == self._generation and len(table) < KEPT:
            table[key] = agent

    async def run(self) -> None:
        """Follows the announcements until cancelled, resubscribing after each failure."""
        while True:
            try:
                await self._follow()
            except (RedisError, OSError) as exc:
                log.warning(
                    "agent changes unheard (%s): agents are read from Redis until they are",
                    exc,
                )
            finally:
                self.listening = False
                self.forget()
            await asyncio.sleep(self._retry_s)

    async def _follow(self) -> None:
        pubsub = self._store.redis.pubsub()
        try:
            await pubsub.subscribe(self._store.keys.agents_changed)
            pinged = False
            while True:
                message: dict[str, Any] | None = await pubsub.get_message(timeout=self._heartbeat_s)
                if message is None:
                    # Quiet is normal; a connection that no longer answers is not.
                    if pinged:
                        raise RedisConnectionError("no answer to PING on the subscription")
                    await pubsub.ping()
                    pinged = True
                    continue
                pinged = False
                if message["type"] == "subscribe":
                    # Anything changed before this moment may have gone unannounced.
                    self.forget()
                    self.listening = True
                elif message["type"] == "message":
                    self.forget()
        finally:
            await pubsub.aclose()
