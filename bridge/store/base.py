"""Shared plumbing of the store's parts: optimistic transactions and paged index reads."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

import redis.asyncio as aioredis
from pydantic import BaseModel
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from bridge.store.errors import NotFound
from bridge.store.keys import Keys
from bridge.store.pagination import LexRange, encode_cursor

T = TypeVar("T")
R = TypeVar("R")
M = TypeVar("M", bound=BaseModel)

MAX_TX_ATTEMPTS = 50


@dataclass
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None

    @property
    def has_more(self) -> bool:
        return self.next_cursor is not None


async def read_record(
    reader: aioredis.Redis | Pipeline, key: str, model: type[M], kind: str, record_id: str
) -> M:
    """The record stored at `key`, or NotFound naming it. `reader` may be a watching pipeline,
    whose reads run at once."""
    raw = await reader.get(key)
    if raw is None:
        raise NotFound(kind, record_id)
    return model.model_validate_json(raw)


def parse_records(raws: list[Any], model: type[M]) -> list[M | None]:
    """Records from an MGET, None where a key was missing."""
    return [None if raw is None else model.model_validate_json(raw) for raw in raws]


def begin_writes(pipe: Pipeline) -> None:
    """Switch a watching pipeline from reads to queued writes."""
    pipe.multi()  # type: ignore[no-untyped-call]  # redis-py leaves multi() unannotated


class Part:
    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def transact(self, watch: list[str], body: Callable[[Pipeline], Awaitable[R]]) -> R:
        """Run `body` with `watch` watched; it reads through the pipeline, then calls
        `pipe.multi()` and queues its writes. Retried when a watched key changed meanwhile."""
        for _ in range(MAX_TX_ATTEMPTS):
            async with self.redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(*watch)
                    result = await body(pipe)
                    await pipe.execute()
                    return result
                except WatchError:
                    continue
        raise RuntimeError(f"transaction on {watch} kept conflicting")

    async def scan_index(
        self,
        index: str,
        bounds: LexRange,
        limit: int,
        load: Callable[[list[str]], Awaitable[list[T | None]]],
        keep: Callable[[T], bool] = lambda _item: True,
    ) -> Page[T]:
        """Newest-first page of up to `limit` items from a lex index, loading ids in batches
        and keeping those `keep` accepts (filters the index cannot express)."""
        items: list[T] = []
        last_id = ""
        high = bounds.high
        batch = max(limit + 1, 50)
        while True:
            members = cast(
                list[str],
                await self.redis.zrange(
                    index, high, bounds.low, desc=True, bylex=True, offset=0, num=batch
                ),
            )
            if not members:
                return Page(items, None)
            for member, item in zip(members, await load(members), strict=True):
                if item is not None and keep(item):
                    if len(items) == limit:
                        return Page(items, encode_cursor(last_id))
                    items.append(item)
                    last_id = member
            if len(members) < batch:
                return Page(items, None)
            high = "(" + members[-1]
