"""Shapes every endpoint shares: the error envelope, list pages, list queries and health."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from bridge import languages
from bridge.models import Timestamp
from bridge.store.pagination import DEFAULT_LIMIT, MAX_LIMIT

T = TypeVar("T")

# RFC 3339 date-time, what OpenAPI's `format: date-time` means. Pydantic alone would also take
# unix seconds ("1"), dates without a time and times without an offset (read as local time).
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Output(BaseModel):
    """A response body: every field is always written, so the document marks them required."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)


def _whole_number(value: object) -> object:
    # Query values arrive as text; without this, pydantic would also read "1.0", " 1", "+1" and
    # "1_0" as integers, which the documented `type: integer` does not allow.
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise ValueError("must be a whole number written in digits")
    return value


def _rfc3339(value: object) -> object:
    if isinstance(value, str):
        if not _RFC3339.fullmatch(value):
            raise ValueError(
                "must be an RFC 3339 date-time with an offset, e.g. 2024-11-05T14:48:00Z"
            )
        if value[17:19] == "60":
            # A leap second is valid RFC 3339 that datetime cannot hold; it sorts as :59.
            value = value[:17] + "59" + value[19:]
    return value


QueryInt = Annotated[int, BeforeValidator(_whole_number)]
QueryDateTime = Annotated[datetime, BeforeValidator(_rfc3339)]


class ErrorBody(BaseModel):
    code: str = Field(examples=["validation_error"])
    message: str
    type: str = Field(examples=["invalid_request_error"])
    param: str | None = None
    details: list[dict[str, Any]] | None = None
    request_id: str | None = None
    retry_count: int | None = None
    next_retry: str | None = None


class ErrorEnvelope(BaseModel):
    error: ErrorBody


class ListPage(Output, Generic[T]):
    data: list[T]
    has_more: bool
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` to get the next page; null on the last page."
    )


class ListQuery(Strict):
    limit: QueryInt = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Page size.")
    cursor: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="`next_cursor` of the previous page; other values get a 400 invalid_cursor.",
    )


class Health(Output):
    status: Literal["ok"]


class Readiness(Output):
    status: Literal["ok", "unavailable"] = Field(
        description='"ok" only when this node can take a call now.'
    )
    redis: str = Field(description='"ok", or why the data store is not reachable.')
    models: Literal["ok", "loading", "not_loaded", "failed", "on_demand"] = Field(
        "ok",
        description="The speech models: on_demand when the server loads them on the first "
        "conversation (VOICEBRIDGE_PRELOAD_MODELS=false).",
    )
    voices: dict[str, str] = Field(
        default_factory=dict,
        description='Each voice type: "ok", "not_loaded" or "unavailable: <why>".',
    )
    draining: bool = Field(False, description="Shutting down: finishing calls, taking none.")
    reason: str | None = Field(None, description="Why the node is not ready.")


def _case_insensitive(tag: str) -> str:
    # Tags hold only letters, digits and "-", none of which needs escaping in a pattern.
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in tag)


# The validator (languages.canonical) decides; the pattern states the same set for the document:
# a supported tag in any letter case.
_LANGUAGE_PATTERN = "^(?:" + "|".join(_case_insensitive(t) for t in languages.SUPPORTED) + ")$"


def _language(value: str) -> str:
    return languages.canonical(value)


LanguageTag = Annotated[
    str,
    AfterValidator(_language),
    Field(
        json_schema_extra={"pattern": _LANGUAGE_PATTERN},
        description="BCP-47 tag of a supported language, any letter case: "
        + ", ".join(languages.SUPPORTED)
        + ".",
        examples=["en-US"],
    ),
]


class NodeInfo(Output):
    """A bridge node on this Redis, as it last recorded itself (every 5 s; gone 15 s after it
    stopped refreshing)."""

    node_id: str
    state: Literal["loading", "ready", "draining"]
    sip: str = Field(description="host:port of its SIP user agent.")
    http_url: str = Field(description="Its own REST API: its /metrics and /readyz.")
    calls: int = Field(description="Live SIP calls.")
    max_calls: int = Field(description="How many calls it takes (VOICEBRIDGE_SIP_MAX_CALLS).")
    sessions: int = Field(description="Live voice sessions, phone and WebSocket.")
    started_at: Timestamp
    seen_at: Timestamp
