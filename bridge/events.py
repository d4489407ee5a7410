"""Domain events: their types, descriptions and bodies.

An event body is `{id, event, created_at, data}`; it is serialized once, when the state change
is written, and those exact bytes are what every webhook receives and signs.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bridge import clock, ids
from bridge.models import Conversation, Feedback, Message, Metrics

EVENT_TYPES: dict[str, str] = {
    "conversation.started": "A conversation began: created through the API or a call was answered.",
    "conversation.ended": "A conversation ended; carries the end reason, duration and metrics.",
    "message.received": "A user or agent message was added to a conversation's transcript.",
    "agent.handoff": "The agent transferred, or tried to transfer, the caller to a human.",
    "error.occurred": "Something went wrong in a conversation (dialog engine, media, transfer).",
}
TEST_EVENT = "webhook.test"

EventType = Literal[
    "conversation.started",
    "conversation.ended",
    "message.received",
    "agent.handoff",
    "error.occurred",
]


class ConversationRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    conversation_id: str
    agent_id: str
    user_id: str
    channel: str
    initial_context: dict[str, Any] = Field(default_factory=dict)


class ConversationStartedData(ConversationRef):
    started_at: str


class ConversationEndedData(ConversationRef):
    status: str
    end_reason: str | None
    ended_at: str | None
    duration: float
    metrics: Metrics
    feedback: Feedback | None = None


class MessageReceivedData(ConversationRef):
    message: Message


class HandoffData(ConversationRef):
    target: str | None
    status: Literal["initiated", "succeeded", "failed"]
    reason: str | None = None


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorOccurredData(ConversationRef):
    error: ErrorDetail


class Event(BaseModel):
    id: str = Field(examples=["evt_01jd4y3k8m2q9w7e5r1t6y0u3i"])
    event: str
    created_at: str
    data: dict[str, Any]


def ref(conversation: Conversation) -> dict[str, Any]:
    return {
        "conversation_id": conversation.conversation_id,
        "agent_id": conversation.agent_id,
        "user_id": conversation.user_id,
        "channel": conversation.channel,
        "initial_context": conversation.initial_context,
    }


def build(event_type: str, data: BaseModel | dict[str, Any], now_ms: int | None = None) -> Event:
    ms = clock.now_ms() if now_ms is None else now_ms
    payload = data.model_dump(mode="json") if isinstance(data, BaseModel) else data
    return Event(
        id=ids.new_id(ids.EVENT, ms), event=event_type, created_at=clock.iso(ms), data=payload
    )


def serialize(event: Event) -> str:
    return event.model_dump_json()
