"""The conversation status machine: active, then exactly one of the final states."""

from __future__ import annotations

from bridge import clock
from bridge.models import Conversation, ConversationStatus

FINAL: frozenset[ConversationStatus] = frozenset({"completed", "failed", "transferred"})


def can_transition(current: ConversationStatus, target: ConversationStatus) -> bool:
    return current == "active" and target in FINAL


def status_for_end_reason(reason: str) -> ConversationStatus:
    """The final status an end reason implies when the caller of `end` does not say."""
    if reason in ("error", "failed", "media_timeout", "not_connected", "node_lost"):
        return "failed"
    if reason == "transferred":
        return "transferred"
    return "completed"


def duration_seconds(conversation: Conversation, now_ms: int | None = None) -> float:
    start = clock.parse_iso(conversation.started_at)
    if conversation.ended_at is not None:
        end = clock.parse_iso(conversation.ended_at)
    else:
        end = clock.now_ms() if now_ms is None else now_ms
    return round(max(end - start, 0) / 1000, 3)
