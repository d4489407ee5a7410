"""The records the store keeps, as pydantic models. The REST API returns these shapes."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializationInfo,
    WithJsonSchema,
)

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


# Names of custom responses and intents. Validators use fullmatch: a trailing "$" in Python's re
# also matches before a final newline.
NAME_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
MAX_RESPONSE_CHARS = 2000
_NAME = re.compile(NAME_PATTERN.strip("^$"))
MODEL_PATTERN = r"^[!-~]{1,200}$"
_MODEL = re.compile(MODEL_PATTERN.strip("^$"))

# Serialization context under which secrets are written in full: only the store uses it.
WITH_SECRETS: dict[str, Any] = {"with_secrets": True}
SECRET_SHOWN_FROM = 16
"""A secret this long or longer shows its last 4 characters in responses; a shorter one none."""


def _intent_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError("intent name must match [a-z][a-z0-9_]*, at most 64 characters")
    return value


def _model_name(value: str) -> str:
    if not _MODEL.fullmatch(value):
        raise ValueError("model must be printable ASCII without spaces")
    return value


def masked(secret: str) -> str:
    """How responses show a secret: enough to tell which one is set, not enough to use it."""
    return "…" + secret[-4:] if len(secret) >= SECRET_SHOWN_FROM else "…"


def _secret_out(value: str, info: SerializationInfo) -> str:
    if isinstance(info.context, dict) and info.context.get("with_secrets"):
        return value
    return masked(value)


# Serialized masked unless the context asks for secrets, so no response, log or event can leak
# one by accident.
Secret = Annotated[
    str,
    PlainSerializer(_secret_out),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^…",
            "maxLength": 5,
            "description": "Masked: … then the last 4 characters of a secret of 16 or more.",
        },
        mode="serialization",
    ),
]
Seconds = Annotated[float, Field(ge=0.5, le=60)]


class Intent(Record):
    name: Annotated[
        str, Field(json_schema_extra={"pattern": NAME_PATTERN}), AfterValidator(_intent_name)
    ] = Field(description="A label for the intent, [a-z][a-z0-9_]*.")
    phrases: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        min_length=1,
        max_length=50,
        description="What callers say to ask for it; a turn that contains a phrase, or most of "
        "its words, matches.",
    )
    response: str = Field(
        min_length=1,
        max_length=MAX_RESPONSE_CHARS,
        description='The answer, a template over initial_context: "Hi {customer_name}".',
    )


class BuiltinEngineConfig(Record):
    """The built-in engine: greeting, intents, custom responses, farewell and handoff."""

    type: Literal["builtin"]


class OpenAIEngineConfig(Record):
    """A chat-completions model behind an OpenAI-compatible API, streamed."""

    type: Literal["openai"]
    base_url: str = Field(
        description="The API's base URL; replies come from POST {base_url}/chat/completions.",
        examples=["https://api.openai.com/v1"],
    )
    model: Annotated[
        str, Field(json_schema_extra={"pattern": MODEL_PATTERN}), AfterValidator(_model_name)
    ] = Field(description="The model's name as the API knows it.", examples=["gpt-4o-mini"])
    api_key: Secret | None = Field(None, description="Sent as Authorization: Bearer <api_key>.")
    temperature: float = Field(0.4, ge=0, le=2)
    max_tokens: Annotated[int, Field(ge=1, le=4096), BeforeValidator(_integral)] = 300
    timeout: Seconds = Field(
        8.0,
        description="Seconds the model may take to start its reply, and the longest pause "
        "inside it; then the caller hears the error line.",
    )
    instructions: str | None = Field(
        None, max_length=10_000, description="Added to the system prompt: what the agent does."
    )


class WebhookEngineConfig(Record):
    """Your own service answers each turn: voicebridge POSTs the turn, you return the reply."""

    type: Literal["webhook"]
    url: str = Field(examples=["https://example.com/voice/turn"])
    secret: Secret | None = Field(
        None, description="Signs each request: X-Signature, as on event webhooks."
    )
    timeout: Seconds = Field(
        5.0, description="Seconds to answer; then the caller hears the error line."
    )


class ListenEngineConfig(Record):
    """A line that only listens: no greeting, no reply, ever. The call's audio is recorded when
    recording is on; with `transcribe`, what the caller says is stored as messages."""

    type: Literal["listen"]
    transcribe: bool = Field(
        False,
        description="Recognize the caller's speech into user messages (and transcript events). "
        "Off: no speech detection or recognition runs at all, the call is media only.",
    )


DialogEngineConfig = Annotated[
    BuiltinEngineConfig | OpenAIEngineConfig | WebhookEngineConfig | ListenEngineConfig,
    Field(discriminator="type"),
]


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
    record_phone_calls: bool | None = Field(
        None,
        description="Whether this agent's phone calls are recorded; null: the server's "
        "VOICEBRIDGE_RECORD_PHONE_CALLS.",
    )
    intents: list[Intent] = Field(default_factory=list)
    dialog_engine: DialogEngineConfig = Field(
        default_factory=lambda: BuiltinEngineConfig(type="builtin"),
        description="api_key and secret are shown masked.",
    )
    created_at: Timestamp
    updated_at: Timestamp

    def stored_json(self) -> str:
        """The record as the store keeps it: secrets in full."""
        return self.model_dump_json(context=WITH_SECRETS)


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


class CallDetails(Record):
    """What the telephone network said about a phone conversation's call."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_serialization_defaults_required=True,
        populate_by_name=True,
        serialize_by_alias=True,
    )
    from_: str = Field(
        alias="from",
        description="The From header's URI as the caller sent it (user_id is the caller as "
        "identified: a trusted P-Asserted-Identity wins over From).",
        examples=["sip:+15551234567@pbx.example.com"],
    )
    to: str = Field(description="The To header's URI.", examples=["sip:+15550100@bridge"])
    call_id: str = Field(description="The SIP Call-ID.")
    codec: str | None = Field(
        description="The audio codec of the call: PCMU, PCMA or G722.", examples=["G722"]
    )


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
    call: CallDetails | None = None


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


NodeState = Literal["loading", "ready", "draining"]


class NodeRecord(Record):
    """What a bridge process says of itself in Redis, every few seconds while it runs."""

    node_id: str
    state: NodeState
    sip: str = Field(description="host:port its SIP user agent listens on.")
    http_url: str = Field(description="Its own REST API (VOICEBRIDGE_HTTP_NODE_PORT if set).")
    calls: int = Field(ge=0, description="Live SIP calls.")
    max_calls: int = Field(ge=1, description="VOICEBRIDGE_SIP_MAX_CALLS.")
    sessions: int = Field(ge=0, description="Live voice sessions, phone and WebSocket.")
    started_at: Timestamp
    seen_at: Timestamp = Field(description="When it last refreshed this record.")
