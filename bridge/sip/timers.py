"""The timers of RFC 3261 §17 (table 4) and RFC 6026, and the clock the transaction layer
schedules them on: asyncio's loop in the user agent, a `ManualClock` in tests, so a 32-second
schedule runs in microseconds and always in the same order.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Timers:
    """T1, T2, T4 and Timer D in seconds; every other timer derives from them as table 4 says.
    Tests shrink them; a deployment over slow links may raise T1 (§17.1.1.1)."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    # Timer D is "> 32 s" for UDP, not a multiple of T1: it outlives the peer's Timer G
    # schedule whatever that peer's T1 is.
    d: float = 32.0

    @property
    def a(self) -> float:
        return self.t1

    @property
    def b(self) -> float:
        return 64 * self.t1

    @property
    def e(self) -> float:
        return self.t1

    @property
    def f(self) -> float:
        return 64 * self.t1

    @property
    def g(self) -> float:
        return self.t1

    @property
    def h(self) -> float:
        return 64 * self.t1

    @property
    def i(self) -> float:
        return self.t4

    @property
    def j(self) -> float:
        return 64 * self.t1

    @property
    def k(self) -> float:
        return self.t4

    @property
    def l(self) -> float:  # noqa: E743 (RFC 6026 names it Timer L)
        return 64 * self.t1

    @property
    def m(self) -> float:
        return 64 * self.t1


DEFAULT_TIMERS = Timers()


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def now(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle: ...


class AsyncioClock:
    """The running event loop's monotonic clock. The loop is looked up on first use, so the
    clock can be built before the loop runs."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop

    def _running(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def now(self) -> float:
        return self._running().time()

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        return self._running().call_later(delay, callback)


class _ManualHandle:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A clock that moves only when told. `advance` fires every callback that falls due, in
    time order (ties in scheduling order), with `now()` reading each callback's own due time,
    including callbacks scheduled by callbacks within the advanced span."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._queue: list[tuple[float, int, _ManualHandle]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._now

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        handle = _ManualHandle(self._now + max(0.0, delay), callback)
        heapq.heappush(self._queue, (handle.when, next(self._order), handle))
        return handle

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not go back")
        target = self._now + seconds
        while self._queue and self._queue[0][0] <= target:
            when, _, handle = heapq.heappop(self._queue)
            if handle.cancelled:
                continue
            self._now = when
            handle.callback()
        self._now = target

    @property
    def pending(self) -> int:
        """Callbacks scheduled and neither fired nor cancelled."""
        return sum(1 for _, _, handle in self._queue if not handle.cancelled)
