"""The store: the only code that reads and writes Redis keys (see keys.py for the layout)."""

from __future__ import annotations

import redis.asyncio as aioredis

from bridge.store.agents import Agents
from bridge.store.api_keys import ApiKeys
from bridge.store.base import Page
from bridge.store.conversations import ConversationFilter, Conversations, EndResult
from bridge.store.deliveries import Deliveries
from bridge.store.errors import Conflict, InvalidCursor, NotFound, StoreError
from bridge.store.keys import Keys
from bridge.store.nodes import Nodes
from bridge.store.webhooks import Webhooks

__all__ = [
    "Conflict",
    "ConversationFilter",
    "EndResult",
    "InvalidCursor",
    "Keys",
    "NotFound",
    "Page",
    "Store",
    "StoreError",
]


class Store:
    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self.redis = redis
        self.keys = Keys(prefix)
        self.agents = Agents(redis, self.keys)
        self.conversations = Conversations(redis, self.keys)
        self.webhooks = Webhooks(redis, self.keys)
        self.api_keys = ApiKeys(redis, self.keys)
        self.deliveries = Deliveries(redis, self.keys)
        self.nodes = Nodes(redis, self.keys)

    async def ping(self) -> bool:
        return bool(await self.redis.ping())
