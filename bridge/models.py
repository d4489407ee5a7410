"""The records the store keeps, as pydantic models. The REST API returns these shapes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

AgentStatus = Literal["active", "inactive"]
VoiceType = Literal["male", "female"]
ConversationStatus = Literal["active", "completed", "failed", "transferred"]
Channel = Literal["websocket", "phone"]
MessageType = Literal["user", "agent"]
VoicePitch = Literal["low", "medium", "high"]
WebhookStatus = Literal["active", "disabled"]

# Documentation-only constraints (json_schema_extra is not enforced when validating): they put
# what the store always writes into the OpenAPI document, so clients and response checks see it.
Timestamp = Annotated[
    str,
    Field(
        json_schema_extra={
            "format": "date-time",
            "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$",
        },
        examples=["2024-11-05T14:48:00.000Z"],
    ),
]


def id_pattern(prefix: str) -> str:
    """What `bridge.ids.new_id(prefix)` returns: the prefix, then 26 Crockford base32 digits."""
    return f"^{prefix}_[0-9a-hjkmnp-tv-z]{{26}}$"


def id_of(prefix: str) -> Any:
    """Documents a field as an id with `prefix`."""
    return Field(
        json_schema_extra={"pattern": id_pattern(prefix)},
        examples=[f"{prefix}_01jd4y3k8m2q9w7e5r1t6y0z3h"],
    )


def _integral(value: object) -> object:
    # The API validates JSON strictly (1 is not true, "5" is not 5), but JSON Schema counts 1.0
    # as an integer, so an integral float is taken as the integer it is.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# Constraints sit before the validator so the document shows them as minimum/maximum.
Rating = Annotated[int, Field(ge=1, le=5), BeforeValidator(_integral)]

AgentId = Annotated[str, id_of("agt")]
ConversationId = Annotated[str, id_of("conv")]
MessageId = Annotated[str, id_of("msg")]


class Record(BaseModel):
    # Serialization writes every field, so the documented response shape marks them required.
    model_config = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)


class Agent(Record):
    agent_id: AgentId
    name: str
    status: AgentStatus = "active"
    language: str = "en-US"
    voice_type: VoiceType = "female"
    personality: str | None = None
    custom_responses: dict[str, str] = Field(default_factory=dict)
    phone_numbers: list[str] = Field(default_factory=list)
    handoff_target: str | None = None
    created_at: Timestamp
    updated_at: Timestamp


class ConversationSettings(Record):
    voice_speed: float = Field(1.0, ge=0.5, le=2.0)
    voice_pitch: VoicePitch = "medium"
    recording_enabled: bool = False


class Feedback(Record):
    rating: Rating | None = None
    comments: str | None = Field(None, max_length=4000)


class Metrics(Record):
    sentiment_score: float | None = None
    user_satisfaction: Literal["high", "medium", "low"] | None = None
    resolution_status: Literal["resolved", "unresolved", "handed_off", "abandoned"] | None = None
    latency_ms: dict[str, float] | None = None


class Message(Record):
    id: MessageId
    type: MessageType
    content: str
    timestamp: Timestamp
    interrupted: bool | None = None
    meta: dict[str, Any] | None = None


class Conversation(Record):
    conversation_id: ConversationId
    agent_id: AgentId
    user_id: str
    status: ConversationStatus = "active"
    channel: Channel = "websocket"
    language: str = "en-US"
    initial_context: dict[str, Any] = Field(default_factory=dict)
    settings: ConversationSettings = Field(default_factory=ConversationSettings)
    created_at: Timestamp
    started_at: Timestamp
    ended_at: Timestamp | None = None
    end_reason: str | None = None
    feedback: Feedback | None = None
    metrics: Metrics = Field(default_factory=Metrics)
    node: str | None = None
    call: dict[str, Any] | None = None


class Webhook(Record):
    webhook_id: str
    url: str
    events: list[str]
    description: str | None = None
    status: WebhookStatus = "active"
    disabled_reason: str | None = None
    created_at: str
    updated_at: str
    secret: str


class ApiKey(Record):
    key_id: str
    name: str
    prefix: str
    hash: str
    created_at: str
    revoked_at: str | None = None
