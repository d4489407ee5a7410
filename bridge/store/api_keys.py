"""API keys: kept as a sha256 digest under a short clear prefix used to find them."""

from __future__ import annotations

import hmac
from typing import cast

from bridge import clock, ids
from bridge.models import ApiKey
from bridge.store.base import Part


class ApiKeys(Part):
    async def create(self, name: str) -> tuple[ApiKey, str]:
        """Returns the record and the key itself, which is never stored and never shown again."""
        prefix, key = ids.new_api_key()
        ms = clock.now_ms()
        record = ApiKey(
            key_id=ids.new_id(ids.API_KEY, ms),
            name=name,
            prefix=prefix,
            hash=ids.digest(key),
            created_at=clock.iso(ms),
        )
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self.keys.api_key(prefix), record.model_dump_json())
            pipe.zadd(self.keys.api_keys, {prefix: ms})
            await pipe.execute()
        return record, key

    async def all(self) -> list[ApiKey]:
        prefixes = cast(list[str], await self.redis.zrange(self.keys.api_keys, 0, -1))
        if not prefixes:
            return []
        raws = await self.redis.mget([self.keys.api_key(p) for p in prefixes])
        return [ApiKey.model_validate_json(raw) for raw in raws if raw is not None]

    async def any_active(self) -> bool:
        return any(key.revoked_at is None for key in await self.all())

    async def revoke(self, key_id_or_prefix: str) -> ApiKey | None:
        for record in await self.all():
            if key_id_or_prefix in (record.key_id, record.prefix):
                if record.revoked_at is None:
                    record = record.model_copy(update={"revoked_at": clock.iso(clock.now_ms())})
                    await self.redis.set(self.keys.api_key(record.prefix), record.model_dump_json())
                return record
        return None

    async def verify(self, key: str) -> ApiKey | None:
        """The live key record `key` belongs to, else None."""
        prefix = ids.parse_api_key(key)
        if prefix is None:
            return None
        raw = await self.redis.get(self.keys.api_key(prefix))
        if raw is None:
            return None
        record = ApiKey.model_validate_json(raw)
        if not hmac.compare_digest(record.hash, ids.digest(key)) or record.revoked_at is not None:
            return None
        return record
