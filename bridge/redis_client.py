"""The one way code gets a Redis client: redis-py asyncio, retrying through short outages."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import BusyLoadingError, ConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

SOCKET_TIMEOUT_S = 5.0


def connect(url: str) -> aioredis.Redis:
    # A restarting Redis refuses connections, then answers LOADING while it replays the AOF:
    # retry both for a few seconds before an operation fails.
    client = aioredis.Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=2,
        socket_timeout=SOCKET_TIMEOUT_S,
        health_check_interval=15,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=8),
        retry_on_error=[ConnectionError, RedisTimeoutError, BusyLoadingError],
    )
    # The URL picks the class (TCP, TLS or a Unix socket); each gets the same send.
    pool = client.connection_pool
    pool.connection_class = _sending_in_place(pool.connection_class)
    return client


class _SendInPlace(AbstractConnection):
    """Sends under `asyncio.timeout` rather than redis-py's `asyncio.wait_for`, which on Python
    3.11 wraps every command's send in a task of its own: at a few hundred calls a second that
    task was an eighth of the event loop (py-spy, issue 11). Same timeout, same errors."""

    async def send_packed_command(
        self, command: bytes | str | Iterable[bytes], check_health: bool = True
    ) -> None:
        timeout, self.socket_timeout = self.socket_timeout, None
        try:
            # The health check's PING, if one is due, is bounded by the same timeout.
            async with asyncio.timeout(timeout):
                await super().send_packed_command(command, check_health)
        except TimeoutError as exc:
            # super() disconnected when it was cancelled.
            raise RedisTimeoutError("Timeout writing to socket") from exc
        finally:
            self.socket_timeout = timeout


_SENDING_IN_PLACE: dict[type[AbstractConnection], type[AbstractConnection]] = {}


def _sending_in_place(base: type[AbstractConnection]) -> type[AbstractConnection]:
    made = _SENDING_IN_PLACE.get(base)
    if made is None:
        made = type(f"{base.__name__}SendingInPlace", (_SendInPlace, base), {})
        _SENDING_IN_PLACE[base] = made
    return made
