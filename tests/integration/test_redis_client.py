"""`bridge.redis_client.connect` against both real Redis servers (TCP and the embedded one's
Unix socket): commands send without a task of their own, and a send that cannot complete still
fails as redis-py's timeout and drops its connection."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import TimeoutError as RedisTimeoutError

from bridge.redis_client import connect


async def test_a_command_makes_no_task(redis_url: str, prefix: str) -> None:
    client = connect(redis_url)
    try:
        await client.ping()  # connected, so what is counted is the command alone
        loop = asyncio.get_running_loop()
        made: list[str] = []

        def factory(
            loop: asyncio.AbstractEventLoop,
            coro: Coroutine[Any, Any, Any] | Generator[Any, None, Any],
            **kwargs: Any,
        ) -> asyncio.Task[Any]:
            made.append(getattr(coro, "__qualname__", repr(coro)))
            return asyncio.Task(coro, loop=loop, **kwargs)

        loop.set_task_factory(factory)
        try:
            await client.set(f"{prefix}x", "1")
            assert await client.get(f"{prefix}x") == "1"
        finally:
            loop.set_task_factory(None)
        assert made == []
        await client.delete(f"{prefix}x")
    finally:
        await client.aclose()


async def test_a_send_that_never_completes_times_out_and_drops_its_connection(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client: aioredis.Redis = connect(redis_url)
    try:
        await client.ping()
        connection = await client.connection_pool.get_connection()
        connection.socket_timeout = 0.2
        stuck = asyncio.Event()

        async def never(_command: object) -> None:
            await stuck.wait()

        monkeypatch.setattr(connection, "_send_packed_command", never)
        with pytest.raises(RedisTimeoutError):
            await connection.send_command("PING")
        assert not connection.is_connected
        assert connection.socket_timeout == 0.2
        await client.connection_pool.release(connection)
    finally:
        await client.aclose()
