"""Each bridge node records itself in Redis every few seconds (its addresses, live calls,
capacity and state), which `GET /v1/nodes` lists. A record not refreshed within its TTL lapses,
so a node that died drops out by itself; one that stops cleanly removes its own."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from redis.exceptions import RedisError

from bridge import clock
from bridge.models import NodeRecord
from bridge.store import Store

log = logging.getLogger(__name__)

RECORD_EVERY_S = 5.0
RECORD_TTL_S = 15


async def keep_recorded(
    store: Store, describe: Callable[[], NodeRecord], every_s: float = RECORD_EVERY_S
) -> None:
    """Refresh the node's record until cancelled; a Redis outage only skips refreshes."""
    try:
        while True:
            try:
                await store.nodes.record(
                    describe().model_copy(update={"seen_at": clock.iso(clock.now_ms())}),
                    RECORD_TTL_S,
                )
            except (RedisError, OSError) as exc:
                log.debug("node record not refreshed: %s", exc)
            await asyncio.sleep(every_s)
    finally:
        with contextlib.suppress(RedisError, OSError):
            await store.nodes.unrecord(describe().node_id)
