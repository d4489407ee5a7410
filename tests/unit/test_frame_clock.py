from __future__ import annotations

import asyncio
import itertools
import time

from bridge.frame_clock import FrameClock


async def test_ticks_every_period_without_drift() -> None:
    clock = FrameClock(period=0.01)
    ticks: list[float] = []
    remove = clock.add(lambda: ticks.append(time.monotonic()))
    await asyncio.sleep(0.5)
    remove()
    await clock.stop()
    # Absolute scheduling: about 50 ticks in 0.5 s, whatever each sleep overshoots.
    assert 40 <= len(ticks) <= 52
    span = ticks[-1] - ticks[0]
    assert abs(span - (len(ticks) - 1) * 0.01) < 0.03


async def test_a_failing_listener_is_dropped_and_others_go_on() -> None:
    clock = FrameClock(period=0.005)
    good: list[int] = []

    def bad() -> None:
        raise RuntimeError("boom")

    clock.add(bad)
    clock.add(lambda: good.append(1))
    await asyncio.sleep(0.1)
    await clock.stop()
    assert len(good) > 5


async def test_a_stall_skips_ticks_rather_than_bunching_them() -> None:
    clock = FrameClock(period=0.01)
    ticks: list[float] = []
    clock.add(lambda: ticks.append(time.monotonic()))
    await asyncio.sleep(0.05)
    time.sleep(0.2)  # noqa: ASYNC251 - the test stalls the loop on purpose
    await asyncio.sleep(0.05)
    await clock.stop()
    after_stall = [b - a for a, b in itertools.pairwise(ticks)]
    bunched = sum(1 for gap in after_stall if gap < 0.002)
    assert clock.skipped >= 10
    assert bunched <= 5


async def test_first_listeners_run_before_the_others_every_tick() -> None:
    clock = FrameClock(period=0.005)
    order: list[str] = []
    removers = [
        clock.add(lambda: order.append("receive 1")),
        clock.add(lambda: order.append("send 1"), first=True),
        clock.add(lambda: order.append("receive 2")),
        clock.add(lambda: order.append("send 2"), first=True),
    ]
    await asyncio.sleep(0.03)
    for remove in removers:
        remove()
    await clock.stop()
    assert len(order) >= 8
    ticks = [order[i : i + 4] for i in range(0, len(order) - len(order) % 4, 4)]
    assert all(tick == ["send 1", "send 2", "receive 1", "receive 2"] for tick in ticks), order
