"""The DeliveryAttempt records of a webhook's delivery log."""

from __future__ import annotations

from typing import Literal

from api.delivery.attempt import AttemptResult, Failure
from api.schemas.common import ErrorBody
from api.schemas.webhooks import DeliveryAttempt
from bridge import clock

ERROR_TYPE = "webhook_error"
CANCELLED = Failure("webhook_disabled", "the webhook is disabled or deleted; delivery cancelled")

AttemptStatus = Literal["succeeded", "failed", "dead", "cancelled"]


def attempt_record(
    *,
    delivery_id: str,
    event_id: str,
    event: str,
    attempt: int,
    status: AttemptStatus,
    at_ms: int,
    result: AttemptResult | None = None,
    failure: Failure | None = None,
    next_retry_ms: int | None = None,
) -> DeliveryAttempt:
    """`failure` overrides the result's own (to say what followed, e.g. disabling); the error's
    retry_count is how many retries preceded this attempt."""
    why = failure or (result.failure if result is not None else None)
    error = None
    if why is not None:
        error = ErrorBody(
            code=why.code,
            message=why.message,
            type=ERROR_TYPE,
            retry_count=attempt - 1,
            next_retry=None if next_retry_ms is None else clock.iso(next_retry_ms),
        )
    return DeliveryAttempt(
        delivery_id=delivery_id,
        event_id=event_id,
        event=event,
        attempt=attempt,
        status=status,
        response_code=None if result is None else result.status,
        duration_ms=0.0 if result is None else result.duration_ms,
        created_at=clock.iso(at_ms),
        error=error,
    )
