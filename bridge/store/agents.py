"""Agents: the bots that answer conversations, and the phone numbers that route to them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from bridge import clock, ids
from bridge.models import WITH_SECRETS, Agent, DialogEngineConfig
from bridge.store.base import Page, Part, begin_writes, parse_records, read_record
from bridge.store.errors import Conflict, NotFound
from bridge.store.keys import Keys
from bridge.store.pagination import decode_cursor, lex_range

R = TypeVar("R")

# Per engine type: its secret and the endpoint the secret is sent to.
_SECRETS = {"openai": ("api_key", "base_url"), "webhook": ("secret", "url")}


def keep_secret(current: DialogEngineConfig, new: dict[str, Any]) -> dict[str, Any]:
    """Responses show secrets masked, so a client that changes an engine's other settings sends
    it without its secret: the stored one stays, unless the endpoint changed (the secret is
    never sent to a new endpoint it was not given for). An explicit null removes it."""
    names = _SECRETS.get(new.get("type", ""))
    if names is None or names[0] in new:
        return new
    secret, endpoint = names
    old = current.model_dump(context=WITH_SECRETS)
    if old["type"] != new["type"] or old[endpoint] != new.get(endpoint):
        return new
    return new | {secret: old[secret]}


def _number_taken(number: str, owner: str) -> Conflict:
    return Conflict(
        "phone_number_taken",
        f"phone number {number!r} already routes to agent {owner}",
        param="phone_numbers",
    )


class Agents(Part):
    """Every change is announced on `keys.agents_changed` in its own transaction, and to this
    process's `watchers` once it is stored, so that copies kept of agents can be dropped."""

    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        super().__init__(redis, keys)
        self.watchers: list[Callable[[], None]] = []

    async def _change(self, watch: list[str], body: Callable[[Pipeline], Awaitable[R]]) -> R:
        """`transact`, then tell the watchers; `body` publishes on `agents_changed` itself,
        inside the transaction."""
        result = await self.transact(watch, body)
        for watcher in self.watchers:
            watcher()
        return result

    async def create(self, fields: dict[str, Any]) -> Agent:
        ms = clock.now_ms()
        now = clock.iso(ms)
        agent = Agent(agent_id=ids.new_id(ids.AGENT, ms), created_at=now, updated_at=now, **fields)

        async def body(pipe: Pipeline) -> Agent:
            await self._check_numbers(pipe, agent.phone_numbers, agent.agent_id)
            begin_writes(pipe)
            pipe.set(self.keys.agent(agent.agent_id), agent.stored_json())
            pipe.zadd(self.keys.agents, {agent.agent_id: 0})
            if agent.phone_numbers:
                pipe.hset(
                    self.keys.phone_numbers,
                    mapping=dict.fromkeys(agent.phone_numbers, agent.agent_id),
                )
            pipe.publish(self.keys.agents_changed, agent.agent_id)
            return agent

        return await self._change([self.keys.phone_numbers], body)

    async def _check_numbers(self, pipe: Pipeline, numbers: list[str], agent_id: str) -> None:
        if not numbers:
            return
        owners = await pipe.hmget(self.keys.phone_numbers, numbers)
        for number, owner in zip(numbers, owners, strict=True):
            if owner is not None and owner != agent_id:
                raise _number_taken(number, cast(str, owner))

    async def get(self, agent_id: str) -> Agent:
        return await read_record(self.redis, self.keys.agent(agent_id), Agent, "agent", agent_id)

    async def load_many(self, agent_ids: list[str]) -> list[Agent | None]:
        raws = await self.redis.mget([self.keys.agent(a) for a in agent_ids])
        return parse_records(raws, Agent)

    async def list(self, *, limit: int, cursor: str | None = None) -> Page[Agent]:
        after = decode_cursor(cursor, ids.AGENT) if cursor else None
        bounds = lex_range(ids.AGENT, after_cursor=after)
        return await self.scan_index(self.keys.agents, bounds, limit, self.load_many)

    async def update(self, agent_id: str, changes: dict[str, Any]) -> Agent:
        key = self.keys.agent(agent_id)

        async def body(pipe: Pipeline) -> Agent:
            current = await read_record(pipe, key, Agent, "agent", agent_id)
            merged = (
                current.model_dump(context=WITH_SECRETS)
                | changes
                | {"updated_at": clock.iso(clock.now_ms())}
            )
            if "dialog_engine" in changes:
                merged["dialog_engine"] = keep_secret(
                    current.dialog_engine, changes["dialog_engine"]
                )
            updated = Agent.model_validate(merged)
            await self._check_numbers(pipe, updated.phone_numbers, agent_id)
            released = set(current.phone_numbers) - set(updated.phone_numbers)
            begin_writes(pipe)
            pipe.set(key, updated.stored_json())
            if released:
                pipe.hdel(self.keys.phone_numbers, *released)
            if updated.phone_numbers:
                pipe.hset(
                    self.keys.phone_numbers,
                    mapping=dict.fromkeys(updated.phone_numbers, agent_id),
                )
            pipe.publish(self.keys.agents_changed, agent_id)
            return updated

        return await self._change([key, self.keys.phone_numbers], body)

    async def delete(self, agent_id: str) -> None:
        key = self.keys.agent(agent_id)

        async def body(pipe: Pipeline) -> None:
            agent = await read_record(pipe, key, Agent, "agent", agent_id)
            begin_writes(pipe)
            pipe.delete(key)
            pipe.zrem(self.keys.agents, agent_id)
            if agent.phone_numbers:
                pipe.hdel(self.keys.phone_numbers, *agent.phone_numbers)
            pipe.publish(self.keys.agents_changed, agent_id)

        await self._change([key, self.keys.phone_numbers], body)

    async def for_number(self, number: str) -> Agent | None:
        """The agent a dialed number routes to, if any."""
        agent_id = await self.redis.hget(self.keys.phone_numbers, number)
        if agent_id is None:
            return None
        try:
            return await self.get(cast(str, agent_id))
        except NotFound:
            return None
