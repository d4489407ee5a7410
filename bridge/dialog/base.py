"""The interface every dialog engine implements."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from bridge.models import Intent

ActionKind = Literal["end", "handoff"]
Role = Literal["user", "agent"]


@dataclass(frozen=True)
class Say:
    """Text to speak; engines that stream send it in fragments as they come."""

    text: str


@dataclass(frozen=True)
class Act:
    """What to do once the text before it has been spoken."""

    kind: ActionKind
    reason: str = ""


ReplyPart = Say | Act


class EngineError(Exception):
    """An engine could not produce its reply; `code` is what error.occurred reports."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class DialogContext:
    agent_name: str
    personality: str | None
    custom_responses: dict[str, str]
    intents: list[Intent]
    initial_context: dict[str, Any]
    history: list[tuple[Role, str]] = field(default_factory=list)
    """The conversation so far, oldest first. The session appends the caller's turn before
    asking for the reply to it, so during respond() the last entry is usually that turn."""
    offered_person: bool = False
    """The last reply offered a person, so a plain "yes" now means a handoff."""
    conversation_id: str = ""
    agent_id: str = ""
    language: str = "en-US"


def earlier_turns(context: DialogContext, user_text: str) -> list[tuple[Role, str]]:
    """The history before the turn being answered, whether or not the caller appended it."""
    history = context.history
    if history and history[-1] == ("user", user_text):
        return history[:-1]
    return list(history)


class DialogEngine(Protocol):
    # Plain defs: an async generator function is called without await, and a protocol member
    # written `async def` without a yield would be typed as returning a coroutine.
    def greet(self, context: DialogContext) -> AsyncIterator[ReplyPart]:
        """The agent's opening."""
        ...

    def respond(
        self, context: DialogContext, user_text: str, *, dtmf: str | None = None
    ) -> AsyncIterator[ReplyPart]:
        """The reply to one caller turn (speech transcript, or a DTMF digit)."""
        ...
