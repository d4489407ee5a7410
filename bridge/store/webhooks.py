"""Webhook subscriptions. Their secrets stay in Redis: signing needs them in clear."""

from __future__ import annotations

import builtins
from typing import Any, cast

from redis.asyncio.client import Pipeline

from bridge import clock, ids
from bridge.models import Webhook
from bridge.store.base import Page, Part, begin_writes, parse_records, read_record
from bridge.store.errors import NotFound
from bridge.store.pagination import decode_cursor, lex_range


class Webhooks(Part):
    async def create(
        self, *, url: str, events: list[str], description: str | None, secret: str | None
    ) -> Webhook:
        ms = clock.now_ms()
        now = clock.iso(ms)
        webhook = Webhook(
            webhook_id=ids.new_id(ids.WEBHOOK, ms),
            url=url,
            events=events,
            description=description,
            secret=secret or ids.new_webhook_secret(),
            created_at=now,
            updated_at=now,
        )
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self.keys.webhook(webhook.webhook_id), webhook.model_dump_json())
            pipe.zadd(self.keys.webhooks, {webhook.webhook_id: 0})
            await pipe.execute()
        return webhook

    async def get(self, webhook_id: str) -> Webhook:
        key = self.keys.webhook(webhook_id)
        return await read_record(self.redis, key, Webhook, "webhook", webhook_id)

    async def load_many(self, webhook_ids: list[str]) -> list[Webhook | None]:
        if not webhook_ids:
            return []
        raws = await self.redis.mget([self.keys.webhook(w) for w in webhook_ids])
        return parse_records(raws, Webhook)

    async def list(self, *, limit: int, cursor: str | None = None) -> Page[Webhook]:
        after = decode_cursor(cursor, ids.WEBHOOK) if cursor else None
        bounds = lex_range(ids.WEBHOOK, after_cursor=after)
        return await self.scan_index(self.keys.webhooks, bounds, limit, self.load_many)

    async def all(self) -> builtins.list[Webhook]:
        webhook_ids = cast(builtins.list[str], await self.redis.zrange(self.keys.webhooks, 0, -1))
        return [w for w in await self.load_many(webhook_ids) if w is not None]

    async def update(self, webhook_id: str, changes: dict[str, Any]) -> Webhook:
        key = self.keys.webhook(webhook_id)

        async def body(pipe: Pipeline) -> Webhook:
            current = await read_record(pipe, key, Webhook, "webhook", webhook_id)
            updated = Webhook.model_validate(
                current.model_dump() | changes | {"updated_at": clock.iso(clock.now_ms())}
            )
            begin_writes(pipe)
            pipe.set(key, updated.model_dump_json())
            return updated

        return await self.transact([key], body)

    async def delete(self, webhook_id: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.keys.webhook(webhook_id))
            pipe.zrem(self.keys.webhooks, webhook_id)
            pipe.delete(self.keys.webhook_log(webhook_id))
            deleted, _, _ = await pipe.execute()
        if not deleted:
            raise NotFound("webhook", webhook_id)
