from __future__ import annotations

import pytest

from bridge import clock, lifecycle
from bridge.models import Conversation, ConversationStatus


def _conversation(started_ms: int, ended_ms: int | None = None) -> Conversation:
    return Conversation(
        conversation_id="conv_x",
        agent_id="agt_x",
        user_id="u",
        created_at=clock.iso(started_ms),
        started_at=clock.iso(started_ms),
        ended_at=None if ended_ms is None else clock.iso(ended_ms),
        status="active" if ended_ms is None else "completed",
    )


@pytest.mark.parametrize("target", ["completed", "failed", "transferred"])
def test_active_ends_in_any_final_state(target: ConversationStatus) -> None:
    assert lifecycle.can_transition("active", target)


@pytest.mark.parametrize("current", ["completed", "failed", "transferred"])
@pytest.mark.parametrize("target", ["active", "completed", "failed", "transferred"])
def test_final_states_are_final(current: ConversationStatus, target: ConversationStatus) -> None:
    assert not lifecycle.can_transition(current, target)


def test_active_cannot_go_back_to_active() -> None:
    assert not lifecycle.can_transition("active", "active")


@pytest.mark.parametrize(
    ("reason", "status"),
    [
        ("user_ended", "completed"),
        ("api_end", "completed"),
        ("caller_hangup", "completed"),
        ("error", "failed"),
        ("media_timeout", "failed"),
        ("transferred", "transferred"),
    ],
)
def test_end_reason_implies_status(reason: str, status: str) -> None:
    assert lifecycle.status_for_end_reason(reason) == status


def test_duration_counts_to_end_or_now() -> None:
    assert lifecycle.duration_seconds(_conversation(1_000, 4_250)) == 3.25
    assert lifecycle.duration_seconds(_conversation(1_000), now_ms=2_500) == 1.5
    assert lifecycle.duration_seconds(_conversation(5_000), now_ms=1_000) == 0.0


def test_iso_timestamps_are_utc_with_z() -> None:
    text = clock.iso(1_700_000_000_123)
    assert text == "2023-11-14T22:13:20.123Z"
    assert clock.parse_iso(text) == 1_700_000_000_123
    assert clock.parse_iso("2023-11-14T22:13:20") == 1_700_000_000_000
