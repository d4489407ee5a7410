"""Conversation metrics from its messages, outcome and feedback (pure functions).

- sentiment_score: VADER compound score (−1..1) over the caller's messages, later ones
  weighing more (how the call ends matters more than how it began).
- user_satisfaction: the caller's rating when given (4–5 high, 3 medium, 1–2 low), else from
  sentiment (≥ 0.3 high, ≤ −0.2 low, medium between).
- resolution_status: handed_off when transferred; unresolved while active or when it failed;
  otherwise the end reason when it names an outcome (`resolved`, `unresolved`, `abandoned`:
  whoever ends a conversation through the API knows better than any guess from its messages),
  else resolved when the agent answered something the caller said, abandoned when the caller
  left unanswered (or without a word, hanging up), else unresolved.
- latency_ms: p50/p95 of the per-turn voice-to-voice latencies recorded by the session.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Literal

import numpy as np
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from bridge.models import ConversationStatus, Feedback, Message, Metrics

Satisfaction = Literal["high", "medium", "low"]
Resolution = Literal["resolved", "unresolved", "handed_off", "abandoned"]
CALLER_LEFT = frozenset({"caller_hangup", "disconnected", "user_ended"})
STATED: dict[str, Resolution] = {
    "resolved": "resolved",
    "unresolved": "unresolved",
    "abandoned": "abandoned",
}


@cache
def _analyzer() -> SentimentIntensityAnalyzer:
    return SentimentIntensityAnalyzer()


def sentiment(user_texts: Sequence[str]) -> float | None:
    if not user_texts:
        return None
    scores = np.array([_analyzer().polarity_scores(t)["compound"] for t in user_texts])
    weights = np.arange(1, len(scores) + 1, dtype=np.float64)
    return round(float(np.average(scores, weights=weights)), 3)


def satisfaction(score: float | None, feedback: Feedback | None) -> Satisfaction | None:
    if feedback is not None and feedback.rating is not None:
        return "high" if feedback.rating >= 4 else "medium" if feedback.rating == 3 else "low"
    if score is None:
        return None
    return "high" if score >= 0.3 else "low" if score <= -0.2 else "medium"


def resolution(
    status: ConversationStatus, end_reason: str | None, messages: Sequence[Message]
) -> Resolution:
    if status == "transferred":
        return "handed_off"
    if status in ("active", "failed"):
        return "unresolved"
    stated = STATED.get((end_reason or "").lower())
    if stated is not None:
        return stated
    first_user = next((i for i, m in enumerate(messages) if m.type == "user"), None)
    if first_user is not None:
        answered = any(m.type == "agent" for m in messages[first_user + 1 :])
        return "resolved" if answered else "abandoned"
    return "abandoned" if end_reason in CALLER_LEFT else "unresolved"


def percentiles(latencies_ms: Sequence[float]) -> dict[str, float] | None:
    if not latencies_ms:
        return None
    p50, p95 = np.percentile(np.asarray(latencies_ms, dtype=np.float64), [50, 95])
    return {"p50": round(float(p50), 1), "p95": round(float(p95), 1)}


def compute(
    status: ConversationStatus,
    end_reason: str | None,
    messages: Sequence[Message],
    feedback: Feedback | None,
    latencies_ms: Sequence[float] = (),
) -> Metrics:
    score = sentiment([m.content for m in messages if m.type == "user"])
    return Metrics(
        sentiment_score=score,
        user_satisfaction=satisfaction(score, feedback),
        resolution_status=resolution(status, end_reason, messages),
        latency_ms=percentiles(latencies_ms),
    )
