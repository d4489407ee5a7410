"""Webhook requests and responses, the delivery log, and the event catalogue."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, field_validator
from pydantic.json_schema import SkipJsonSchema

from api.schemas.common import ErrorBody, Strict
from bridge.events import EVENT_TYPES, EventType
from bridge.models import WebhookStatus

# What the OpenAPI document promises is accepted: an https URL with a DNS-name host, an optional
# port 1-65535 and printable ASCII after it. The route's url policy (api/delivery/url_policy.py)
# decides scheme, credentials and loopback http (webhook_allow_insecure, for development).
URL_PATTERN = (
    r"^[Hh][Tt][Tt][Pp][Ss]://[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
    r"(?::(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}"
    r"|[1-9][0-9]{0,3}))?"
    r"(?:[/?#][!-~]*)?$"
)
# A host the policy's urlsplit would take but no receiver can have ("r-p*", "exa_mple", non-ASCII)
# is refused here; IPv6 literals stay allowed. Ports above 65535 the policy refuses itself.
_AUTHORITY = re.compile(
    r"(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(?::[1-9][0-9]{0,4})?"
)


def check_url_shape(url: str) -> str:
    if any(c.isspace() or not c.isprintable() for c in url):
        return url  # the url policy says why
    if not url.isascii():
        raise ValueError("url must be ASCII; percent-encode other characters")
    _scheme, sep, rest = url.partition("://")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    # No "://", no host or credentials (user@host): the url policy refuses those, saying why.
    if sep and authority and "@" not in authority and not _AUTHORITY.fullmatch(authority):
        raise ValueError("url host must be a DNS name or an IP address, with an optional port")
    return url


WebhookUrl = Annotated[
    str,
    Field(
        min_length=1,
        max_length=2000,
        json_schema_extra={"pattern": URL_PATTERN},
        description="https:// URL the events are POSTed to.",
        examples=["https://example.com/hooks/voice"],
    ),
    AfterValidator(check_url_shape),
]
EventList = Annotated[
    list[EventType],
    Field(min_length=1, max_length=len(EVENT_TYPES), json_schema_extra={"uniqueItems": True}),
]


STRONG_SECRET_LENGTH = 16


def check_events(value: list[str]) -> list[str]:
    if len(set(value)) != len(value):
        raise ValueError("events repeat")
    return value


class WebhookCreate(Strict):
    url: WebhookUrl
    events: EventList
    # The published example's secret is 15 characters: a short one is taken, with a warning in
    # the response, rather than refusing what the documentation prints.
    secret: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="Generated (whsec_…) when not given. Use 32 or more random characters: a "
        f"shorter one than {STRONG_SECRET_LENGTH} is accepted with a warning.",
    )
    description: str | None = Field(None, max_length=500)

    _events = field_validator("events")(check_events)


class WebhookUpdate(Strict):
    url: WebhookUrl | SkipJsonSchema[None] = None
    events: EventList | SkipJsonSchema[None] = None
    description: str | None = Field(None, max_length=500)
    status: WebhookStatus | SkipJsonSchema[None] = Field(
        None, description="Set active again after a 410 Gone from the receiver disabled it."
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
    warnings: list[str] = Field(
        default_factory=list, description="What is accepted but unwise, e.g. a short secret."
    )


def secret_warnings(secret: str) -> list[str]:
    if len(secret) >= STRONG_SECRET_LENGTH:
        return []
    return [
        f"the secret is {len(secret)} characters long; anyone who guesses it can sign events: "
        f"use {STRONG_SECRET_LENGTH} or more random characters, or leave it out to get a "
        "generated whsec_ secret"
    ]


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
