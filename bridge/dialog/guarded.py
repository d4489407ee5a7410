"""Any engine made safe for a live call: it may not stay silent too long, and nothing it does
wrong reaches the session as an exception.

An engine that fails (a timeout, a refused connection, an HTTP error, a malformed or misshapen
answer, a bug) is reported through `on_error(code, message)` and the caller hears the agent's
`error` line instead (for the greeting: the agent's own greeting). Text already spoken stays;
the error line ends the reply. Cancellation (a barge-in ends the reply) passes through.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable

import aiohttp

from bridge.dialog.base import DialogContext, DialogEngine, EngineError, ReplyPart, Say
from bridge.dialog.builtin import line

log = logging.getLogger(__name__)

OnError = Callable[[str, str], None]
"""Called with an error code and message when an engine fails; must not block."""

_SENTENCE_END = ".!?…\"')]"


def describe(exc: Exception) -> tuple[str, str]:
    """The error code and message for an engine's failure."""
    if isinstance(exc, EngineError):
        return exc.code, exc.message
    if isinstance(exc, TimeoutError):
        return "dialog_timeout", str(exc) or "timed out"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "dialog_unreachable", str(exc)
    if isinstance(exc, aiohttp.ClientError):
        return "dialog_connection_error", str(exc) or type(exc).__name__
    return "dialog_failed", f"{type(exc).__name__}: {exc}"


def continuation(spoken: str) -> str:
    """What joins the text already said to the error line: a cut sentence trails off."""
    tail = spoken.rstrip()
    if not tail:
        return ""
    return " " if tail[-1] in _SENTENCE_END else "… "


async def _close(parts: AsyncIterator[ReplyPart]) -> None:
    if isinstance(parts, AsyncGenerator):
        try:
            await parts.aclose()
        except Exception:
            log.exception("closing a dialog engine's reply failed")


class GuardedEngine:
    def __init__(
        self,
        engine: DialogEngine,
        *,
        name: str,
        idle_timeout: float,
        reply_timeout: float,
        on_error: OnError,
    ) -> None:
        """`idle_timeout`: seconds the engine may stay silent, before its first fragment and
        between two; `reply_timeout`: seconds for a whole reply."""
        self._engine = engine
        self._name = name
        self._idle_timeout = idle_timeout
        self._reply_timeout = reply_timeout
        self._on_error = on_error

    def greet(self, context: DialogContext) -> AsyncIterator[ReplyPart]:
        return self._guarded(self._engine.greet(context), line(context, "greeting"))

    def respond(
        self, context: DialogContext, user_text: str, *, dtmf: str | None = None
    ) -> AsyncIterator[ReplyPart]:
        reply = self._engine.respond(context, user_text, dtmf=dtmf)
        return self._guarded(reply, line(context, "error"))

    async def _guarded(
        self, parts: AsyncIterator[ReplyPart], fallback: str
    ) -> AsyncIterator[ReplyPart]:
        loop = asyncio.get_running_loop()
        reply_deadline = loop.time() + self._reply_timeout
        spoken = ""
        started = False
        try:
            while True:
                idle_deadline = loop.time() + self._idle_timeout
                try:
                    async with asyncio.timeout_at(min(idle_deadline, reply_deadline)) as deadline:
                        part = await anext(parts)
                except StopAsyncIteration:
                    return
                except Exception as exc:
                    if deadline.expired():
                        code, message = (
                            "dialog_timeout",
                            self._timeout_message(started, idle_deadline >= reply_deadline),
                        )
                    else:
                        code, message = describe(exc)
                    break
                started = True
                if isinstance(part, Say):
                    spoken += part.text
                yield part
        finally:
            await _close(parts)
        self._report(code, f"{self._name} dialog engine: {message}")
        yield Say(continuation(spoken) + fallback)

    def _timeout_message(self, started: bool, whole_reply: bool) -> str:
        if whole_reply:
            return f"the reply took longer than {self._reply_timeout:g} s"
        if started:
            return f"the reply stalled for more than {self._idle_timeout:g} s"
        return f"no reply within {self._idle_timeout:g} s"

    def _report(self, code: str, message: str) -> None:
        log.warning("%s (%s)", message, code)
        try:
            self._on_error(code, message)
        except Exception:
            log.exception("reporting a dialog engine failure failed")
