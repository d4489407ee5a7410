"""One 20 ms clock per process that drives every session's outgoing audio.

A ticker per connection would mean a timer wake-up per call every 20 ms; one clock calls every
registered listener on each tick instead. Ticks are scheduled against absolute times, so the
clock does not drift however long a call lasts; when the loop falls behind (a stall), the
missed ticks are skipped rather than bunched, since late audio is worse than a short gap.

Listeners added with `first=True` run before all others in every tick: sending a frame is
quick and its timing is what the far end hears, so with hundreds of calls the sends go out
together at the top of the tick instead of each waiting behind earlier calls' receive work
(decoding, VAD).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from media.frames import FRAME_MS

log = logging.getLogger(__name__)

Tick = Callable[[], None]
PERIOD = FRAME_MS / 1000
MAX_LAG = 5 * PERIOD


class FrameClock:
    def __init__(self, period: float = PERIOD) -> None:
        self.period = period
        self._first: dict[int, Tick] = {}
        self._rest: dict[int, Tick] = {}
        self._next_key = 0
        self._task: asyncio.Task[None] | None = None
        self.skipped = 0

    def add(self, tick: Tick, *, first: bool = False) -> Callable[[], None]:
        """Call `tick` every period until the returned function is called; `first` ones run
        before the others."""
        key = self._next_key
        self._next_key += 1
        listeners = self._first if first else self._rest
        listeners[key] = tick
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="frame clock")

        def remove() -> None:
            listeners.pop(key, None)

        return remove

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while self._first or self._rest:
            for listeners in (self._first, self._rest):
                for key, tick in list(listeners.items()):
                    try:
                        tick()
                    except Exception:
                        log.exception("frame clock listener failed; removing it")
                        listeners.pop(key, None)
            due += self.period
            lag = loop.time() - due
            if lag > MAX_LAG:
                missed = int(lag / self.period)
                self.skipped += missed
                due += missed * self.period
            await asyncio.sleep(max(0.0, due - loop.time()))

    async def stop(self) -> None:
        self._first.clear()
        self._rest.clear()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
