from __future__ import annotations

import asyncio
import threading
import time

import pytest

from media.inference import InferencePool, PoolBusy


def _job(log: list[str], name: str, seconds: float = 0.05) -> object:
    def work() -> str:
        log.append(f"start {name}")
        time.sleep(seconds)
        return name

    return work


async def test_sessions_take_turns() -> None:
    pool = InferencePool(1)
    log: list[str] = []
    greedy = [pool.submit("a", _job(log, f"a{i}")) for i in range(4)]  # type: ignore[arg-type]
    await asyncio.sleep(0.01)
    polite = pool.submit("b", _job(log, "b0"))  # type: ignore[arg-type]
    await asyncio.gather(*greedy, polite)
    assert log.index("start b0") < log.index("start a2")
    pool.shutdown()


async def test_a_session_runs_one_job_at_a_time() -> None:
    pool = InferencePool(4)
    running = 0
    peak = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.02)
        with lock:
            running -= 1

    await asyncio.gather(*[pool.submit("same", work) for _ in range(6)])
    assert peak == 1
    pool.shutdown()


async def test_background_work_is_refused_when_busy() -> None:
    pool = InferencePool(1)
    log: list[str] = []
    running = pool.submit("a", _job(log, "long", 0.1))  # type: ignore[arg-type]
    refused = pool.submit("b", _job(log, "partial"), urgent=False)  # type: ignore[arg-type]
    with pytest.raises(PoolBusy):
        await refused
    assert await running == "long"
    assert await pool.submit("b", _job(log, "later"), urgent=False) == "later"  # type: ignore[arg-type]
    pool.shutdown()


async def test_urgent_jobs_go_first_and_drop_cancels_queued() -> None:
    pool = InferencePool(1)
    log: list[str] = []
    first = pool.submit("a", _job(log, "first"))  # type: ignore[arg-type]
    queued = pool.submit("a", _job(log, "queued"))  # type: ignore[arg-type]
    pool.drop("a")
    assert await first == "first"
    assert queued.cancelled()
    assert "start queued" not in log
    pool.shutdown()


async def test_errors_reach_the_caller() -> None:
    pool = InferencePool(1)

    def broken() -> None:
        raise RuntimeError("model failed")

    with pytest.raises(RuntimeError, match="model failed"):
        await pool.submit("a", broken)
    assert await pool.submit("a", lambda: 5) == 5
    pool.shutdown()
