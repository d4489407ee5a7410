"""The agent directory against both real Redis servers: answers from memory while it follows
the store's announcements, drops what changed on this node or another one, and falls back to
reading Redis whenever its subscription is not known to be live."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis

from bridge.agent_directory import AgentDirectory
from bridge.embedded_redis import EmbeddedRedis
from bridge.models import Agent
from bridge.redis_client import connect
from bridge.store import Store

NUMBER = "+15550100"


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():  # noqa: ASYNC110  # the state is set by the directory's own task
            await asyncio.sleep(0.01)


async def answers(
    directory: AgentDirectory, number: str, check: Callable[[Agent | None], bool]
) -> None:
    """Wait until the directory's answer for `number` passes `check`."""
    async with asyncio.timeout(10):
        while not check(await directory.for_number(number)):  # noqa: ASYNC110  # see `until`
            await asyncio.sleep(0.01)


@pytest.fixture
async def other_node(redis_url: str, prefix: str) -> AsyncIterator[Store]:
    """The same data through another connection and Store: changes it makes reach the
    directory only as announcements."""
    client = connect(redis_url)
    yield Store(client, prefix)
    await client.aclose()


async def running(directory: AgentDirectory) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.get_running_loop().create_task(directory.run())
    try:
        await until(lambda: directory.listening)
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.fixture
async def directory(store: Store) -> AsyncIterator[AgentDirectory]:
    followed = AgentDirectory(store, retry_s=0.05, heartbeat_s=0.2)
    async for _task in running(followed):
        yield followed


async def test_a_number_is_read_once_while_the_directory_follows_changes(
    store: Store, directory: AgentDirectory
) -> None:
    agent = await store.agents.create({"name": "Ann", "phone_numbers": [NUMBER]})
    assert await directory.for_number(NUMBER) == agent
    assert await directory.get(agent.agent_id) == agent
    assert await directory.for_number("+15550199") is None
    # Behind the store's back (no announcement): what was read is what is answered.
    await store.redis.hdel(store.keys.phone_numbers, NUMBER)
    await store.redis.hset(store.keys.phone_numbers, "+15550199", agent.agent_id)
    assert await directory.for_number(NUMBER) == agent
    assert await directory.for_number("+15550199") is None


async def test_without_its_subscription_every_lookup_reads_redis(store: Store) -> None:
    idle = AgentDirectory(store)
    agent = await store.agents.create({"name": "Ann", "phone_numbers": [NUMBER]})
    assert await idle.for_number(NUMBER) == agent
    await store.redis.hdel(store.keys.phone_numbers, NUMBER)
    assert await idle.for_number(NUMBER) is None


async def test_changes_on_this_node_are_seen_at_once(
    store: Store, directory: AgentDirectory
) -> None:
    agent = await store.agents.create({"name": "Ann", "phone_numbers": [NUMBER]})
    assert await directory.for_number(NUMBER) == agent
    inactive = await store.agents.update(agent.agent_id, {"status": "inactive"})
    assert await directory.for_number(NUMBER) == inactive
    await store.agents.update(agent.agent_id, {"phone_numbers": []})
    assert await directory.for_number(NUMBER) is None
    await store.agents.delete(agent.agent_id)
    assert await directory.get(agent.agent_id) is None


async def test_changes_on_another_node_are_seen_when_announced(
    store: Store, directory: AgentDirectory, other_node: Store
) -> None:
    assert await directory.for_number(NUMBER) is None
    agent = await other_node.agents.create({"name": "Ann", "phone_numbers": [NUMBER]})
    await answers(directory, NUMBER, lambda found: found == agent)
    renamed = await other_node.agents.update(agent.agent_id, {"name": "Bea"})
    await answers(directory, NUMBER, lambda found: found == renamed)
    await other_node.agents.delete(agent.agent_id)
    await answers(directory, NUMBER, lambda found: found is None)


async def test_a_lost_subscription_forgets_what_it_held_when_it_resubscribes(
    embedded_redis: EmbeddedRedis, prefix: str
) -> None:
    # The embedded server, whose only subscriber is this test's: the kill below takes every one.
    client = connect(embedded_redis.url)
    try:
        store = Store(client, prefix)
        directory = AgentDirectory(store, retry_s=0.05, heartbeat_s=0.2)
        async for _task in running(directory):
            agent = await store.agents.create({"name": "Ann", "phone_numbers": [NUMBER]})
            assert await directory.for_number(NUMBER) == agent
            # Unannounced, as a change made while nobody listened would be.
            await client.hdel(store.keys.phone_numbers, NUMBER)
            assert await directory.for_number(NUMBER) == agent
            assert await client.client_kill_filter(_type="pubsub") == 1
            await answers(directory, NUMBER, lambda found: found is None)
            await until(lambda: directory.listening)
            await store.agents.delete(agent.agent_id)
    finally:
        await client.aclose()


async def test_a_subscription_that_stops_answering_is_given_up(
    embedded_redis: EmbeddedRedis, prefix: str
) -> None:
    client = connect(embedded_redis.url)
    pauser: aioredis.Redis = connect(embedded_redis.url)
    try:
        directory = AgentDirectory(Store(client, prefix), retry_s=0.05, heartbeat_s=0.2)
        async for _task in running(directory):
            await pauser.execute_command("CLIENT", "PAUSE", "1500", "ALL")
            await until(lambda: not directory.listening, timeout=1.4)
            await until(lambda: directory.listening)
    finally:
        await client.aclose()
        await pauser.aclose()
