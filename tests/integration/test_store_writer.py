"""The session's ordered store writer against a real Redis, including one that goes away."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from bridge.store import Conflict, StoreError
from bridge.store_writer import StoreWriter


async def test_writes_land_in_order(redis: aioredis.Redis, prefix: str) -> None:
    writer = StoreWriter("test", lambda _e: None)
    writer.start()
    for n in range(50):

        async def write(n: int = n) -> None:
            await redis.rpush(f"{prefix}:order", n)

        writer.put(write)
    assert await writer.close(5)
    assert [int(v) for v in await redis.lrange(f"{prefix}:order", 0, -1)] == list(range(50))


async def test_a_failing_write_is_retried_until_it_lands(
    redis: aioredis.Redis, prefix: str
) -> None:
    writer = StoreWriter("test", lambda _e: None)
    writer.start()
    failures = 3

    async def flaky() -> None:
        nonlocal failures
        if failures:
            failures -= 1
            raise ConnectionError("redis is restarting")
        await redis.set(f"{prefix}:flaky", "done")

    async def after() -> None:
        await redis.rpush(f"{prefix}:after", "x")

    writer.put(flaky)
    writer.put(after)
    assert await writer.close(10)
    assert await redis.get(f"{prefix}:flaky") == "done"
    assert await redis.lrange(f"{prefix}:after", 0, -1) == ["x"]
    assert writer.retries == 3


async def test_a_refused_write_is_reported_and_skipped(redis: aioredis.Redis, prefix: str) -> None:
    refused: list[StoreError] = []
    writer = StoreWriter("test", refused.append)
    writer.start()

    async def refuse() -> None:
        raise Conflict("conversation_not_active", "ended elsewhere")

    async def later() -> None:
        await redis.set(f"{prefix}:later", "1")

    writer.put(refuse)
    writer.put(later)
    assert await writer.close(5)
    assert [e.code for e in refused] == ["conversation_not_active"]
    assert await redis.get(f"{prefix}:later") == "1"


async def test_close_gives_up_after_its_timeout() -> None:
    writer = StoreWriter("test", lambda _e: None)
    writer.start()

    async def never() -> None:
        await asyncio.sleep(3600)

    writer.put(never)
    assert not await writer.close(0.2)
