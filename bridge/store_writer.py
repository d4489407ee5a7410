"""A session's store writes, applied in order off the audio path.

The audio path never waits on Redis: it queues a write and goes on. The writer applies the
writes one after another, and when Redis is away (restarting, failing over) it keeps retrying
the same write with backoff, so nothing the caller said is lost or reordered. A write the store
refuses for good (the conversation was ended elsewhere) is reported and dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import RedisError

from bridge.store import StoreError

log = logging.getLogger(__name__)

Write = Callable[[], Awaitable[Any]]

FIRST_BACKOFF = 0.1
MAX_BACKOFF = 2.0


class StoreWriter:
    def __init__(self, name: str, on_refused: Callable[[StoreError], None]) -> None:
        self.name = name
        self._on_refused = on_refused
        self._queue: asyncio.Queue[Write] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.retries = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"writer {self.name}")

    def put(self, write: Write) -> None:
        self._queue.put_nowait(write)

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    async def _run(self) -> None:
        while True:
            write = await self._queue.get()
            backoff = FIRST_BACKOFF
            while True:
                try:
                    await write()
                    break
                except StoreError as exc:
                    self._on_refused(exc)
                    break
                except (RedisError, OSError) as exc:
                    self.retries += 1
                    log.warning("%s: store write failed (%s); retrying", self.name, exc)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF)
                except Exception:
                    log.exception("%s: store write failed for good", self.name)
                    break
            self._queue.task_done()

    async def close(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the queued writes, then stop. True when all landed."""
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
            flushed = True
        except TimeoutError:
            log.error("%s: %d store writes not applied", self.name, self._queue.qsize())
            flushed = False
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        return flushed
