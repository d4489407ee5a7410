"""Webhook requests and responses, the delivery log, and the event catalogue."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator
from pydantic.json_schema import SkipJsonSchema

from api.schemas.common import ErrorBody, Strict
from bridge.events import EVENT_TYPES, EventType
from bridge.models import WebhookStatus


def check_events(value: list[str]) -> list[str]:
    if len(set(value)) != len(value):
        raise ValueError("events repeat")
    return value


class WebhookCreate(Strict):
    url: str = Field(min_length=1, max_length=2000, examples=["https://example.com/hooks/voice"])
    events: list[EventType] = Field(min_length=1, max_length=len(EVENT_TYPES))
    secret: str | None = Field(
        None, min_length=16, max_length=200, description="Generated (whsec_…) when not given."
    )
    description: str | None = Field(None, max_length=500)

    _events = field_validator("events")(check_events)


class WebhookUpdate(Strict):
    url: Annotated[str, Field(min_length=1, max_length=2000)] | SkipJsonSchema[None] = None
    events: (
        Annotated[list[EventType], Field(min_length=1, max_length=len(EVENT_TYPES))]
        | SkipJsonSchema[None]
    ) = None
    description: str | None = Field(None, max_length=500)
    status: WebhookStatus | SkipJsonSchema[None] = Field(
        None, description="Set active again after a 410 or dead-letter disabled it."
    )
    rotate_secret: bool = Field(False, description="Generate a new secret; shown once.")

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else check_events(value)

    @field_validator("url", "events", "status")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("may not be null")
        return value


class WebhookOut(BaseModel):
    webhook_id: str
    url: str
    events: list[str]
    description: str | None
    status: WebhookStatus
    disabled_reason: str | None
    created_at: str
    updated_at: str


class WebhookWithSecret(WebhookOut):
    secret: str = Field(description="Shown only when created or rotated.")


class DeliveryAttempt(BaseModel):
    delivery_id: str
    event_id: str
    event: str
    attempt: int = Field(description="1 for the first try.")
    status: Literal["succeeded", "failed", "dead", "cancelled"]
    response_code: int | None
    duration_ms: float
    created_at: str
    error: ErrorBody | None = None


class EventTypeInfo(BaseModel):
    event: str
    description: str
