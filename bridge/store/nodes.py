"""Bridge processes (nodes) on one Redis: who is alive, and the commands addressed to each."""

from __future__ import annotations

from typing import cast

from bridge.models import NodeRecord
from bridge.store.base import Part


class Nodes(Part):
    async def heartbeat(self, node: str, ttl_seconds: int) -> None:
        await self.redis.set(self.keys.node_alive(node), "1", ex=ttl_seconds)

    async def alive(self, node: str) -> bool:
        return bool(await self.redis.exists(self.keys.node_alive(node)))

    async def alive_among(self, nodes: set[str]) -> frozenset[str]:
        """Which of `nodes` have their heartbeat key, read in one round trip."""
        ordered = sorted(nodes)
        async with self.redis.pipeline(transaction=False) as pipe:
            for node in ordered:
                pipe.exists(self.keys.node_alive(node))
            found = await pipe.execute()
        return frozenset(node for node, present in zip(ordered, found, strict=True) if present)

    async def gone(self, node: str) -> None:
        await self.redis.delete(self.keys.node_alive(node))

    async def record(self, record: NodeRecord, ttl_seconds: int) -> None:
        """Say what this node is now; it drops out of `records` once not refreshed in time."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(self.keys.node_info(record.node_id), record.model_dump_json(), ex=ttl_seconds)
            pipe.sadd(self.keys.nodes, record.node_id)
            await pipe.execute()

    async def unrecord(self, node: str) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.delete(self.keys.node_info(node))
            pipe.srem(self.keys.nodes, node)
            await pipe.execute()

    async def records(self) -> list[NodeRecord]:
        """Every node whose record is current, by name; the names of lapsed ones are pruned."""
        names = sorted(cast(set[str], await self.redis.smembers(self.keys.nodes)))
        if not names:
            return []
        keys = [self.keys.node_info(name) for name in names]
        values = cast(list[str | None], await self.redis.mget(keys))
        lapsed = [name for name, value in zip(names, values, strict=True) if value is None]
        if lapsed:
            await self.redis.srem(self.keys.nodes, *lapsed)
        return [NodeRecord.model_validate_json(value) for value in values if value is not None]

    async def last_command_id(self, node: str) -> str:
        """Where a listener starting now begins: after the newest command already there."""
        newest = await self.redis.xrevrange(self.keys.node_commands(node), count=1)
        return cast(str, newest[0][0]) if newest else "0-0"

    async def read_commands(
        self, node: str, after: str, block_ms: int
    ) -> list[tuple[str, dict[str, str]]]:
        """Commands for `node` newer than `after`, waiting up to `block_ms` for one."""
        found = cast(
            list[tuple[str, list[tuple[str, dict[str, str]]]]],
            await self.redis.xread({self.keys.node_commands(node): after}, block=block_ms),
        )
        return found[0][1] if found else []
