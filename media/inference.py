"""A bounded pool for model inference, fair between sessions.

Every session may have at most one job running; its further jobs wait in its own queue, and
sessions take turns (round robin), so one caller's long utterance cannot starve the others.
Urgent jobs (final transcripts, speech) go before background ones (partial transcripts) that
may be skipped entirely when the pool is busy.
"""

from __future__ import annotations

import asyncio
import os
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass
class _Job:
    work: Callable[[], Any]
    future: asyncio.Future[Any]
    urgent: bool


@dataclass
class _Lane:
    urgent: deque[_Job] = field(default_factory=deque)
    background: deque[_Job] = field(default_factory=deque)
    running: bool = False

    def pop(self) -> _Job | None:
        if self.urgent:
            return self.urgent.popleft()
        if self.background:
            return self.background.popleft()
        return None


class PoolBusy(Exception):
    """A background job was refused because every worker is taken."""


class InferencePool:
    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="inference")
        self._lanes: OrderedDict[str, _Lane] = OrderedDict()
        self._running = 0

    @property
    def busy(self) -> bool:
        return self._running >= self.workers

    def submit(
        self, session: str, work: Callable[[], T], *, urgent: bool = True
    ) -> asyncio.Future[T]:
        """Queue `work` for `session`. A background job is refused with PoolBusy when the pool
        is saturated, rather than queued behind urgent work."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if not urgent and self.busy:
            future.set_exception(PoolBusy())
            return future
        lane = self._lanes.setdefault(session, _Lane())
        (lane.urgent if urgent else lane.background).append(_Job(work, future, urgent))
        self._dispatch()
        return future

    def drop(self, session: str) -> None:
        """Forget a session's queued jobs (its running one finishes on its own)."""
        lane = self._lanes.get(session)
        if lane is None:
            return
        for job in (*lane.urgent, *lane.background):
            job.future.cancel()
        lane.urgent.clear()
        lane.background.clear()
        if not lane.running:
            del self._lanes[session]

    def _dispatch(self) -> None:
        for session in list(self._lanes):
            if self._running >= self.workers:
                return
            lane = self._lanes[session]
            if lane.running:
                continue
            job = lane.pop()
            while job is not None and job.future.cancelled():
                job = lane.pop()
            if job is None:
                del self._lanes[session]
                continue
            # Round robin: the session that just got a worker goes to the back.
            self._lanes.move_to_end(session)
            lane.running = True
            self._running += 1
            self._start(session, lane, job)

    def _start(self, session: str, lane: _Lane, job: _Job) -> None:
        loop = asyncio.get_running_loop()
        done = loop.run_in_executor(self._executor, job.work)

        def finished(result: asyncio.Future[Any]) -> None:
            lane.running = False
            self._running -= 1
            if job.future.done():
                pass
            elif result.cancelled():
                job.future.cancel()
            elif (error := result.exception()) is not None:
                job.future.set_exception(error)
            else:
                job.future.set_result(result.result())
            if not lane.urgent and not lane.background and self._lanes.get(session) is lane:
                del self._lanes[session]
            self._dispatch()

        done.add_done_callback(finished)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
