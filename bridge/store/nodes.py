"""Bridge processes (nodes) on one Redis: who is alive, and the commands addressed to each."""

from __future__ import annotations

from typing import cast

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
