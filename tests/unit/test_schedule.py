from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from api.delivery.schedule import (
    JITTER,
    MAX_RETRY_AFTER,
    decide,
    parse_retry_after,
    retry_delay,
)
from bridge.settings import DEFAULT_RETRY_SCHEDULE

NOW = 1_700_000_000.0


def lowest(low: float, _high: float) -> float:
    return low


def highest(_low: float, high: float) -> float:
    return high


def test_jitter_stays_within_ten_percent() -> None:
    rng = random.Random(7)
    delays = [retry_delay(2, (100.0, 100.0), None, rng.uniform) for _ in range(2000)]
    assert all(90.0 <= d <= 110.0 for d in delays)
    assert min(delays) < 92 and max(delays) > 108  # it really spreads
    assert retry_delay(1, (100.0,), None, lowest) == pytest.approx(100 * (1 - JITTER))
    assert retry_delay(1, (100.0,), None, highest) == pytest.approx(100 * (1 + JITTER))


def test_each_attempt_uses_its_own_schedule_entry() -> None:
    schedule = (1.0, 10.0, 100.0)
    assert [retry_delay(n, schedule, None, lambda a, b: 1.0) for n in (1, 2, 3)] == list(schedule)


def test_default_schedule_spans_more_than_a_day_even_with_all_jitter_down() -> None:
    total = sum(retry_delay(n, DEFAULT_RETRY_SCHEDULE, None, lowest) for n in range(1, 8))
    assert len(DEFAULT_RETRY_SCHEDULE) == 7
    assert total >= 24 * 3600


def test_retry_after_in_seconds() -> None:
    assert parse_retry_after("120", NOW) == 120.0
    assert parse_retry_after(" 0 ", NOW) == 0.0
    assert parse_retry_after(None, NOW) is None
    assert parse_retry_after("soon", NOW) is None
    assert parse_retry_after("-5", NOW) is None
    assert parse_retry_after("١٢", NOW) is None  # non-ASCII digits are not delay-seconds


def test_retry_after_as_http_date() -> None:
    later = datetime.fromtimestamp(NOW + 90, tz=UTC)
    assert parse_retry_after(format_datetime(later, usegmt=True), NOW) == pytest.approx(90.0)
    earlier = datetime.fromtimestamp(NOW - 90, tz=UTC)
    assert parse_retry_after(format_datetime(earlier, usegmt=True), NOW) == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", NOW) == 0.0


def test_retry_after_is_honoured_but_never_shortens_the_schedule() -> None:
    assert retry_delay(1, (10.0,), 600.0, lowest) == 600.0
    assert retry_delay(1, (10.0,), 1.0, lowest) == pytest.approx(9.0)


def test_retry_after_is_capped_at_a_day() -> None:
    assert retry_delay(1, (10.0,), 10 * 24 * 3600.0, lowest) == MAX_RETRY_AFTER


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_2xx_succeeds(status: int) -> None:
    decision = decide(status=status, retry_after="60", attempt=1, schedule=(1.0,), now=NOW)
    assert decision.next == "succeeded"


@pytest.mark.parametrize("status", [None, 199, 301, 400, 429, 500, 503])
def test_anything_else_is_retried(status: int | None) -> None:
    decision = decide(
        status=status, retry_after=None, attempt=1, schedule=(5.0,), now=NOW, uniform=lowest
    )
    assert decision.next == "retry"
    assert decision.delay == pytest.approx(4.5)


def test_decide_honours_retry_after_header() -> None:
    decision = decide(status=503, retry_after="30", attempt=1, schedule=(5.0,), now=NOW)
    assert decision.next == "retry" and decision.delay == 30.0


def test_410_disables() -> None:
    assert decide(status=410, retry_after=None, attempt=1, schedule=(5.0,), now=NOW).next == (
        "disable"
    )


def test_after_the_last_retry_the_delivery_is_dead() -> None:
    schedule = (1.0, 2.0)
    assert decide(status=500, retry_after=None, attempt=2, schedule=schedule, now=NOW).next == (
        "retry"
    )
    assert decide(status=500, retry_after=None, attempt=3, schedule=schedule, now=NOW).next == (
        "dead"
    )
