"""What follows an attempt: done, a retry after how long, the dead letters, or disabling the
webhook. Pure functions; randomness and the clock are passed in."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Literal

JITTER = 0.1
MAX_RETRY_AFTER = 24 * 3600.0
GONE = 410

Uniform = Callable[[float, float], float]
Next = Literal["succeeded", "retry", "dead", "disable"]


@dataclass(frozen=True)
class Decision:
    next: Next
    delay: float | None = None
    """Seconds until the next attempt, when `next` is retry."""


def succeeded(status: int | None) -> bool:
    return status is not None and 200 <= status < 300


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds a `Retry-After` header asks to wait (delay-seconds or an HTTP-date), None when
    absent or unreadable; a date in the past means now."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, moment.timestamp() - now)


def retry_delay(
    attempt: int,
    schedule: Sequence[float],
    retry_after: float | None = None,
    uniform: Uniform = random.uniform,
) -> float:
    """Delay after failed attempt number `attempt` (1-based): the schedule's entry with ±10 %
    jitter, so receivers that failed together are not retried together, but never sooner than
    the receiver's Retry-After (itself capped at 24 h so a hostile header cannot park a job)."""
    delay = schedule[attempt - 1] * uniform(1 - JITTER, 1 + JITTER)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return delay


def decide(
    *,
    status: int | None,
    retry_after: str | None,
    attempt: int,
    schedule: Sequence[float],
    now: float,
    uniform: Uniform = random.uniform,
) -> Decision:
    """`status` is None when no response came (timeout, connection error)."""
    if succeeded(status):
        return Decision("succeeded")
    if status == GONE:
        return Decision("disable")
    if attempt > len(schedule):
        return Decision("dead")
    wait = parse_retry_after(retry_after, now)
    return Decision("retry", retry_delay(attempt, schedule, wait, uniform))
