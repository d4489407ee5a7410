"""The records the store keeps, as pydantic models. The REST API returns these shapes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

AgentStatus = Literal["active", "inactive"]
VoiceType = Literal["male", "female"]
ConversationStatus = Literal["active", "completed", "failed", "transferred"]
Channel = Literal["websocket", "phone"]
MessageType = Literal["user", "agent"]
VoicePitch = Literal["low", "medium", "high"]
WebhookStatus = Literal["active", "disabled"]


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Agent(Record):
    agent_id: str = Field(examples=["agt_01jd4y3k8m2q9w7e5r1t6y0u3i"])
    name: str
    status: AgentStatus = "active"
    language: str = "en-US"
    voice_type: VoiceType = "female"
    personality: str | None = None
    custom_responses: dict[str, str] = Field(default_factory=dict)
    phone_numbers: list[str] = Field(default_factory=list)
    handoff_target: str | None = None
    created_at: str
    updated_at: str


class ConversationSettings(Record):
    voice_speed: float = Field(1.0, ge=0.5, le=2.0)
    voice_pitch: VoicePitch = "medium"
    recording_enabled: bool = False


class Feedback(Record):
    rating: int | None = Field(None, ge=1, le=5)
    comments: str | None = Field(None, max_length=4000)


class Metrics(Record):
    sentiment_score: float | None = None
    user_satisfaction: Literal["high", "medium", "low"] | None = None
    resolution_status: Literal["resolved", "unresolved", "handed_off", "abandoned"] | None = None
    latency_ms: dict[str, float] | None = None


class Message(Record):
    id: str = Field(examples=["msg_01jd4y3k8m2q9w7e5r1t6y0u3i"])
    type: MessageType
    content: str
    timestamp: str
    interrupted: bool | None = None
    meta: dict[str, Any] | None = None


class Conversation(Record):
    conversation_id: str
    agent_id: str
    user_id: str
    status: ConversationStatus = "active"
    channel: Channel = "websocket"
    language: str = "en-US"
    initial_context: dict[str, Any] = Field(default_factory=dict)
    settings: ConversationSettings = Field(default_factory=ConversationSettings)
    created_at: str
    started_at: str
    ended_at: str | None = None
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
