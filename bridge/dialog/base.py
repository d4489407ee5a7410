"""The interface every dialog engine implements."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

ActionKind = Literal["end", "handoff"]


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


@dataclass
class DialogContext:
    agent_name: str
    personality: str | None
    custom_responses: dict[str, str]
    intents: list[dict[str, Any]]
    initial_context: dict[str, Any]
    history: list[tuple[Literal["user", "agent"], str]] = field(default_factory=list)
    offered_person: bool = False
    """The last reply offered a person, so a plain "yes" now means a handoff."""


class DialogEngine(Protocol):
    async def greet(self, context: DialogContext) -> AsyncIterator[ReplyPart]:
        """The agent's opening."""
        ...

    async def respond(
        self, context: DialogContext, user_text: str, *, dtmf: str | None = None
    ) -> AsyncIterator[ReplyPart]:
        """The reply to one caller turn (speech transcript, or a DTMF digit)."""
        ...
