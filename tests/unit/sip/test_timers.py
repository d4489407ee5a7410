from __future__ import annotations

import asyncio

import pytest

from bridge.sip.timers import DEFAULT_TIMERS, AsyncioClock, ManualClock, Timers


def test_default_values_are_rfc_3261_table_4() -> None:
    t = DEFAULT_TIMERS
    assert (t.t1, t.t2, t.t4) == (0.5, 4.0, 5.0)
    assert (t.a, t.e, t.g) == (0.5, 0.5, 0.5)
    assert (t.b, t.f, t.h, t.j, t.l, t.m) == (32.0,) * 6
    assert (t.d, t.i, t.k) == (32.0, 5.0, 5.0)


def test_shrunk_timers_scale_from_t1() -> None:
    t = Timers(t1=0.01, t2=0.08, t4=0.1)
    assert t.b == pytest.approx(0.64) and t.i == 0.1


def test_manual_clock_fires_due_callbacks_in_time_order() -> None:
    clock = ManualClock()
    fired: list[tuple[str, float]] = []
    clock.call_later(2.0, lambda: fired.append(("b", clock.now())))
    clock.call_later(1.0, lambda: fired.append(("a", clock.now())))
    clock.call_later(2.0, lambda: fired.append(("c", clock.now())))
    clock.advance(1.5)
    assert fired == [("a", 1.0)] and clock.now() == 1.5
    clock.advance(0.5)
    assert fired == [("a", 1.0), ("b", 2.0), ("c", 2.0)]
    assert clock.pending == 0


def test_manual_clock_runs_callbacks_scheduled_by_callbacks_and_skips_cancelled() -> None:
    clock = ManualClock()
    fired: list[float] = []

    def again() -> None:
        fired.append(clock.now())
        if len(fired) < 3:
            clock.call_later(1.0, again)

    clock.call_later(1.0, again)
    clock.call_later(0.5, lambda: fired.append(-1.0)).cancel()
    clock.advance(10)
    assert fired == [1.0, 2.0, 3.0]
    with pytest.raises(ValueError):
        clock.advance(-1)


async def test_asyncio_clock_uses_the_running_loop() -> None:
    clock = AsyncioClock()
    done = asyncio.get_running_loop().create_future()
    start = clock.now()
    clock.call_later(0.01, lambda: done.set_result(clock.now()))
    assert await asyncio.wait_for(done, 1) >= start + 0.005
