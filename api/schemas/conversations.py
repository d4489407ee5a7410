"""Conversation requests and responses."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field, field_validator

from api.schemas.common import LanguageTag, ListQuery, Output, QueryDateTime, Strict
from bridge.models import (
    AgentId,
    CallDetails,
    Channel,
    ConversationId,
    ConversationSettings,
    ConversationStatus,
    Feedback,
    Message,
    Metrics,
    Timestamp,
)

# Stored records nest the context two levels deeper (conversation record, event body) and the
# JSON reader refuses documents deeper than 200; a bound far below that keeps them readable.
MAX_CONTEXT_DEPTH = 32


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


class ConversationCreate(Strict):
    # The published example, verbatim but for an agent id of the right shape.
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "agent_id": "agt_01jd4y3k8m2q9w7e5r1t6y0z3h",
                    "user_id": "user_12345",
                    "language": "en-US",
                    "initial_context": {"customer_name": "John Doe", "account_type": "premium"},
                    "settings": {
                        "voice_speed": 1.0,
                        "voice_pitch": "medium",
                        "recording_enabled": True,
                    },
                }
            ]
        }
    )

    agent_id: str = Field(max_length=64, examples=["agt_01jd4y3k8m2q9w7e5r1t6y0z3h"])
    user_id: str = Field(min_length=1, max_length=256, examples=["user_12345"])
    language: LanguageTag | None = Field(None, description="Defaults to the agent's language.")
    initial_context: dict[str, Any] = Field(
        default_factory=dict,
        description="Free-form facts for the agent, e.g. customer_name; nested at most "
        f"{MAX_CONTEXT_DEPTH} levels deep.",
    )
    settings: ConversationSettings = Field(default_factory=ConversationSettings)

    @field_validator("initial_context")
    @classmethod
    def _shallow(cls, value: dict[str, Any]) -> dict[str, Any]:
        if _depth(value) > MAX_CONTEXT_DEPTH:
            raise ValueError(f"nests deeper than {MAX_CONTEXT_DEPTH} levels")
        return value


class ConnectionDetails(Output):
    websocket_url: str = Field(
        json_schema_extra={"pattern": r"^wss?://.+/v1/ws/conv_[0-9a-hjkmnp-tv-z]{26}$"},
        examples=["wss://voice.example.com/v1/ws/conv_01jd4y3k8m2q9w7e5r1t6y0z3h"],
    )
    token: str = Field(
        json_schema_extra={"pattern": r"^cvt_[A-Za-z0-9_-]+$"},
        description="cvt_ token that opens only this conversation's WebSocket.",
    )
    expires_at: Timestamp


class ConversationCreated(Output):
    conversation_id: ConversationId
    status: ConversationStatus
    created_at: Timestamp
    connection_details: ConnectionDetails


class ConversationSummary(Output):
    conversation_id: ConversationId
    status: ConversationStatus
    channel: Channel
    agent_id: AgentId
    user_id: str
    language: str
    created_at: Timestamp
    started_at: Timestamp
    ended_at: Timestamp | None
    end_reason: str | None
    duration: float = Field(description="Seconds, up to now while the conversation is active.")


class ConversationDetail(ConversationSummary):
    messages: list[Message]
    metrics: Metrics
    feedback: Feedback | None
    initial_context: dict[str, Any]
    settings: ConversationSettings
    call: CallDetails | None = Field(None, description="SIP details of a phone conversation.")
    node: str | None = Field(
        None,
        description="The bridge node that holds (or held) the conversation's session; null until "
        "one does.",
    )


class ConversationEnd(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"reason": "user_ended", "feedback": {"rating": 5, "comments": "Very helpful!"}}
            ]
        }
    )

    reason: str = Field(
        "api_end",
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="Why it ended, e.g. user_ended or resolved; resolved, unresolved and "
        "abandoned also set metrics.resolution_status.",
    )
    feedback: Feedback | None = None


class ConversationListQuery(ListQuery):
    agent_id: str | None = Field(None, max_length=64)
    user_id: str | None = Field(None, max_length=256)
    status: ConversationStatus | None = None
    created_after: QueryDateTime | None = Field(None, description="RFC 3339; inclusive.")
    created_before: QueryDateTime | None = Field(None, description="RFC 3339; exclusive.")
