from __future__ import annotations

import pytest

from bridge import conversation_metrics as cm
from bridge.models import Feedback, Message


def _messages(*pairs: tuple[str, str]) -> list[Message]:
    return [
        Message(id=f"msg_{i}", type=kind, content=text, timestamp="2026-01-01T00:00:00.000Z")  # type: ignore[arg-type]
        for i, (kind, text) in enumerate(pairs)
    ]


def test_sentiment_follows_the_caller_and_weighs_the_end() -> None:
    assert cm.sentiment([]) is None
    happy = cm.sentiment(["This is terrible.", "Oh great, thank you so much, that's perfect!"])
    sad = cm.sentiment(["Thanks, great.", "This is useless and I am very angry."])
    assert happy is not None and sad is not None
    assert happy > 0.2 > -0.2 > sad


@pytest.mark.parametrize(
    ("rating", "score", "expected"),
    [(5, -0.9, "high"), (3, 0.9, "medium"), (1, 0.9, "low"), (None, 0.5, "high"),
     (None, 0.0, "medium"), (None, -0.5, "low")],
)  # fmt: skip
def test_satisfaction_prefers_the_rating(rating: int | None, score: float, expected: str) -> None:
    assert cm.satisfaction(score, Feedback(rating=rating)) == expected


def test_no_signal_no_satisfaction() -> None:
    assert cm.satisfaction(None, None) is None


def test_resolution() -> None:
    answered = _messages(("agent", "Hi"), ("user", "hours?"), ("agent", "Nine to five."))
    unanswered = _messages(("agent", "Hi"), ("user", "hours?"))
    greeted = _messages(("agent", "Hi"))
    assert cm.resolution("transferred", "transferred", answered) == "handed_off"
    assert cm.resolution("active", None, answered) == "unresolved"
    assert cm.resolution("failed", "error", answered) == "unresolved"
    assert cm.resolution("completed", "caller_hangup", answered) == "resolved"
    assert cm.resolution("completed", "caller_hangup", unanswered) == "abandoned"
    assert cm.resolution("completed", "caller_hangup", greeted) == "abandoned"
    assert cm.resolution("completed", "api_end", greeted) == "unresolved"


def test_compute_puts_it_together() -> None:
    messages = _messages(("agent", "Hi"), ("user", "Thanks, that's great!"), ("agent", "Bye"))
    metrics = cm.compute("completed", "agent_hangup", messages, None, [400, 500, 900])
    assert metrics.user_satisfaction == "high"
    assert metrics.resolution_status == "resolved"
    assert metrics.latency_ms == {"p50": 500.0, "p95": 860.0}


def test_a_stated_outcome_is_believed() -> None:
    unanswered = _messages(("agent", "Hi"), ("user", "hours?"))
    answered = _messages(("agent", "Hi"), ("user", "hours?"), ("agent", "Nine to five."))
    assert cm.resolution("completed", "resolved", []) == "resolved"
    assert cm.resolution("completed", "Resolved", unanswered) == "resolved"
    assert cm.resolution("completed", "unresolved", answered) == "unresolved"
    assert cm.resolution("completed", "abandoned", answered) == "abandoned"
    # What the conversation ended as outranks what its ender says of it.
    assert cm.resolution("failed", "resolved", answered) == "unresolved"
    assert cm.resolution("transferred", "resolved", answered) == "handed_off"
