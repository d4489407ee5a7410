"""The engine of a line that only listens: it never says anything. The session, seeing a
listen agent, also skips speech detection and recognition unless the agent transcribes."""

from __future__ import annotations

from collections.abc import AsyncIterator

from bridge.dialog.base import DialogContext, ReplyPart


class ListenEngine:
    async def greet(self, context: DialogContext) -> AsyncIterator[ReplyPart]:
        return
        yield

    async def respond(
        self, context: DialogContext, user_text: str, *, dtmf: str | None = None
    ) -> AsyncIterator[ReplyPart]:
        return
        yield
