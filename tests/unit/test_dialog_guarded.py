"""The guard around network engines, with scripted engines: no network."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest

from bridge.dialog.base import Act, DialogContext, EngineError, ReplyPart, Say
from bridge.dialog.guarded import GuardedEngine, continuation, describe

ERROR_LINE = "Sorry, I'm having a little trouble. Could you say that again?"

Step = ReplyPart | float | BaseException
"""A part to yield, seconds to sleep, or an exception to raise."""


class Scripted:
    """Plays `steps` as its reply; remembers whether its generator was closed."""

    def __init__(self, *steps: Step) -> None:
        self.steps = steps
        self.closed = asyncio.Event()

    async def _play(self) -> AsyncIterator[ReplyPart]:
        try:
            for step in self.steps:
                if isinstance(step, float):
                    await asyncio.sleep(step)
                elif isinstance(step, BaseException):
                    raise step
                else:
                    yield step
        finally:
            self.closed.set()

    def greet(self, context: DialogContext) -> AsyncIterator[ReplyPart]:
        return self._play()

    def respond(
        self, context: DialogContext, user_text: str, *, dtmf: str | None = None
    ) -> AsyncIterator[ReplyPart]:
        return self._play()


def _context(**responses: str) -> DialogContext:
    return DialogContext(
        agent_name="Support",
        personality=None,
        custom_responses={"greeting": "Hi {customer_name}!", **responses},
        intents=[],
        initial_context={"customer_name": "Ann"},
    )


def _guard(
    engine: Scripted,
    errors: list[tuple[str, str]],
    *,
    idle: float = 1.0,
    reply: float = 5.0,
    on_error: Callable[[str, str], None] | None = None,
) -> GuardedEngine:
    return GuardedEngine(
        engine,
        name="test",
        idle_timeout=idle,
        reply_timeout=reply,
        on_error=on_error or (lambda code, message: errors.append((code, message))),
    )


async def _collect(parts: AsyncIterator[ReplyPart]) -> list[ReplyPart]:
    return [part async for part in parts]


async def test_a_good_reply_passes_through_unchanged() -> None:
    errors: list[tuple[str, str]] = []
    engine = Scripted(Say("Hello "), 0.01, Say("there."), Act("end", "done"))
    parts = await _collect(_guard(engine, errors).respond(_context(), "hi"))
    assert parts == [Say("Hello "), Say("there."), Act("end", "done")]
    assert errors == []
    assert engine.closed.is_set()


async def test_no_first_fragment_in_time_says_the_error_line() -> None:
    errors: list[tuple[str, str]] = []
    engine = Scripted(5.0, Say("too late"))
    started = asyncio.get_running_loop().time()
    parts = await _collect(_guard(engine, errors, idle=0.05).respond(_context(), "hi"))
    assert asyncio.get_running_loop().time() - started < 1.0
    assert parts == [Say(ERROR_LINE)]
    assert errors == [("dialog_timeout", "test dialog engine: no reply within 0.05 s")]
    assert engine.closed.is_set()


async def test_a_stall_mid_reply_ends_it_with_the_error_line() -> None:
    errors: list[tuple[str, str]] = []
    engine = Scripted(Say("The weather is"), 5.0, Say(" sunny."))
    parts = await _collect(_guard(engine, errors, idle=0.05).respond(_context(), "hi"))
    assert parts == [Say("The weather is"), Say("… " + ERROR_LINE)]
    assert errors == [
        ("dialog_timeout", "test dialog engine: the reply stalled for more than 0.05 s")
    ]


async def test_a_reply_that_never_ends_is_cut_at_the_reply_timeout() -> None:
    errors: list[tuple[str, str]] = []
    engine = Scripted(*[step for _ in range(100) for step in (Say("la "), 0.02)])
    parts = await _collect(_guard(engine, errors, idle=0.5, reply=0.2).respond(_context(), "hi"))
    assert parts[-1] == Say("… " + ERROR_LINE)
    assert 3 <= len(parts) <= 12
    assert errors == [("dialog_timeout", "test dialog engine: the reply took longer than 0.2 s")]


async def test_a_failure_after_a_whole_sentence_adds_the_custom_error_line() -> None:
    errors: list[tuple[str, str]] = []
    engine = Scripted(Say("Your order shipped."), EngineError("dialog_bad_response", "garbled"))
    context = _context(error="One moment, {customer_name}, let me check that again.")
    parts = await _collect(_guard(engine, errors).respond(context, "hi"))
    assert parts == [Say("Your order shipped."), Say(" One moment, Ann, let me check that again.")]
    assert errors == [("dialog_bad_response", "test dialog engine: garbled")]


async def test_a_failed_greeting_falls_back_to_the_agents_greeting() -> None:
    errors: list[tuple[str, str]] = []
    engine = Scripted(RuntimeError("boom"))
    parts = await _collect(_guard(engine, errors).greet(_context()))
    assert parts == [Say("Hi Ann!")]
    assert errors == [("dialog_failed", "test dialog engine: RuntimeError: boom")]


async def test_a_failing_error_callback_does_not_silence_the_call() -> None:
    def broken(code: str, message: str) -> None:
        raise RuntimeError("the event store is down")

    engine = Scripted(EngineError("dialog_http_error", "HTTP 500"))
    parts = await _collect(_guard(engine, [], on_error=broken).respond(_context(), "hi"))
    assert parts == [Say(ERROR_LINE)]


async def test_cancelling_the_reply_propagates_and_closes_the_engine() -> None:
    errors: list[tuple[str, str]] = []
    engine = Scripted(Say("Let me think"), 5.0, Say(" about it."))
    received: list[ReplyPart] = []

    async def consume() -> None:
        async for part in _guard(engine, errors, idle=10.0).respond(_context(), "hi"):
            received.append(part)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert received == [Say("Let me think")]
    assert engine.closed.is_set()
    assert errors == []


async def test_closing_the_reply_early_closes_the_engine() -> None:
    engine = Scripted(Say("one"), Say("two"))
    parts = _guard(engine, []).respond(_context(), "hi")
    assert await anext(parts) == Say("one")
    await parts.aclose()  # type: ignore[attr-defined]
    assert engine.closed.is_set()


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (aiohttp.ServerDisconnectedError(), "dialog_connection_error"),
        (TimeoutError(), "dialog_timeout"),
        (EngineError("dialog_http_error", "HTTP 401"), "dialog_http_error"),
        (KeyError("x"), "dialog_failed"),
    ],
)
def test_failures_are_described_by_kind(error: Exception, code: str) -> None:
    described = describe(error)
    assert described[0] == code and described[1]


@pytest.mark.parametrize(
    ("spoken", "joiner"),
    [
        ("", ""),
        ("  ", ""),
        ("Done.", " "),
        ("Really?  ", " "),
        ('He said "hi."', " "),
        ("So", "… "),
    ],
)
def test_continuation_lets_a_cut_sentence_trail_off(spoken: str, joiner: str) -> None:
    assert continuation(spoken) == joiner
