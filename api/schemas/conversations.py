"""Conversation requests and responses."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator

from api.schemas.common import ListQuery, Strict
from bridge import languages
from bridge.models import (
    Channel,
    ConversationSettings,
    ConversationStatus,
    Feedback,
    Message,
    Metrics,
)


class ConversationCreate(Strict):
    agent_id: str = Field(max_length=64, examples=["agt_01jd4y3k8m2q9w7e5r1t6y0u3i"])
    user_id: str = Field(min_length=1, max_length=256, examples=["user_12345"])
    language: str | None = Field(None, description="BCP-47; defaults to the agent's language.")
    initial_context: dict[str, Any] = Field(
        default_factory=dict, description="Free-form facts for the agent, e.g. customer_name."
    )
    settings: ConversationSettings = Field(default_factory=ConversationSettings)

    @field_validator("language")
    @classmethod
    def _language(cls, value: str | None) -> str | None:
        return None if value is None else languages.canonical(value)


class ConnectionDetails(BaseModel):
    websocket_url: str = Field(examples=["wss://voice.example.com/v1/ws/conv_01jd4y3k8m"])
    token: str = Field(description="cvt_ token that opens only this conversation's WebSocket.")
    expires_at: str


class ConversationCreated(BaseModel):
    conversation_id: str
    status: ConversationStatus
    created_at: str
    connection_details: ConnectionDetails


class ConversationSummary(BaseModel):
    conversation_id: str
    status: ConversationStatus
    channel: Channel
    agent_id: str
    user_id: str
    language: str
    created_at: str
    started_at: str
    ended_at: str | None
    end_reason: str | None
    duration: float = Field(description="Seconds, up to now while the conversation is active.")


class ConversationDetail(ConversationSummary):
    messages: list[Message]
    metrics: Metrics
    feedback: Feedback | None
    initial_context: dict[str, Any]
    settings: ConversationSettings
    call: dict[str, Any] | None = Field(None, description="SIP details of a phone conversation.")


class ConversationEnd(Strict):
    reason: str = Field(
        "api_end",
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="Why it ended, e.g. user_ended or resolved.",
    )
    feedback: Feedback | None = None


class ConversationListQuery(ListQuery):
    agent_id: str | None = Field(None, max_length=64)
    user_id: str | None = Field(None, max_length=256)
    status: ConversationStatus | None = None
    created_after: datetime | None = Field(None, description="ISO-8601; inclusive.")
    created_before: datetime | None = Field(None, description="ISO-8601; exclusive.")
