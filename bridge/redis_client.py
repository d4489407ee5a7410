"""The one way code gets a Redis client: redis-py asyncio, retrying through short outages."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import BusyLoadingError, ConnectionError, TimeoutError


def connect(url: str) -> aioredis.Redis:
    # A restarting Redis refuses connections, then answers LOADING while it replays the AOF:
    # retry both for a few seconds before an operation fails.
    return aioredis.Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=2,
        socket_timeout=5,
        health_check_interval=15,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=8),
        retry_on_error=[ConnectionError, TimeoutError, BusyLoadingError],
    )
