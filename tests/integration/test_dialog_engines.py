"""The network dialog engines against real HTTP servers on loopback: a fake OpenAI-compatible
API that streams chat completions, and a fake customer webhook. Engines are built the way the
session builds them (bridge.dialog.factory), so the guard is part of every test."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bridge.dialog.base import Act, DialogContext, ReplyPart, Say
from bridge.dialog.factory import context_for, engine_for
from bridge.models import Agent, Conversation
from bridge.signing import hex_signature
from tests.ports import free_port

ERROR_LINE = "Sorry, I'm having a little trouble. Could you say that again?"
HANDOFF_LINE = "Let me transfer you to a colleague. One moment, please."
SECRET = "0123456789abcdef-secret"
NOW = "2024-11-05T14:48:00.000Z"


class Stall:
    """A step that holds the response until the test ends (or 10 s)."""


Step = bytes | float | Stall


@dataclass
class Fake:
    """What the fake server answers, and what it was sent."""

    status: int = 200
    steps: list[Step] = field(default_factory=list)
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    released: asyncio.Event = field(default_factory=asyncio.Event)

    async def play(self, request: web.Request, content_type: str) -> web.StreamResponse:
        self.requests.append((dict(request.headers), await request.read()))
        response = web.StreamResponse(status=self.status, headers={"Content-Type": content_type})
        await response.prepare(request)
        try:
            for step in self.steps:
                if isinstance(step, Stall):
                    await asyncio.wait_for(self.released.wait(), 10)
                elif isinstance(step, float):
                    await asyncio.sleep(step)
                else:
                    await response.write(step)
            await response.write_eof()
        except ConnectionResetError:
            pass  # the engine gave up and hung up, which is what some tests want
        return response

    @property
    def body(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.requests[-1][1])
        return parsed


@pytest.fixture
async def fake() -> AsyncIterator[tuple[Fake, str]]:
    state = Fake()

    async def completions(request: web.Request) -> web.StreamResponse:
        return await state.play(request, "text/event-stream")

    async def turn(request: web.Request) -> web.StreamResponse:
        return await state.play(request, "application/json")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    app.router.add_post("/hooks/turn", turn)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield state, str(server.make_url("")).rstrip("/")
    finally:
        state.released.set()
        await server.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def sse(payload: Any) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def delta(content: str | None = None, finish: str | None = None, **extra: Any) -> bytes:
    body: dict[str, Any] = {"content": content, **extra}
    return sse({"object": "chat.completion.chunk", "choices": [
        {"index": 0, "delta": body, "finish_reason": finish}]})  # fmt: skip


def tool(index: int, name: str = "", arguments: str = "") -> dict[str, Any]:
    function = {"arguments": arguments} | ({"name": name} if name else {})
    return {"index": index, "type": "function", "function": function}


DONE = b"data: [DONE]\n\n"


def _agent(engine: dict[str, Any], **fields: Any) -> Agent:
    return Agent.model_validate(
        {
            "agent_id": "agt_01jd4y3k8m2q9w7e5r1t6y0z3h",
            "name": "Ava",
            "personality": "warm",
            "custom_responses": {"greeting": "Hi {customer_name}, Ava here."},
            "dialog_engine": engine,
            "created_at": NOW,
            "updated_at": NOW,
            **fields,
        }
    )


def _context(agent: Agent) -> DialogContext:
    conversation = Conversation(
        conversation_id="conv_01jd4y3k8m2q9w7e5r1t6y0z3h",
        agent_id=agent.agent_id,
        user_id="user_1",
        initial_context={"customer_name": "John"},
        created_at=NOW,
        started_at=NOW,
    )
    return context_for(agent, conversation)


def openai_agent(base: str, **settings: Any) -> Agent:
    engine = {"type": "openai", "base_url": f"{base}/v1", "model": "tiny", "api_key": "sk-test"}
    return _agent(engine | settings)


def webhook_agent(base: str, **settings: Any) -> Agent:
    return _agent({"type": "webhook", "url": f"{base}/hooks/turn", "secret": SECRET} | settings)


@dataclass
class Run:
    parts: list[ReplyPart]
    errors: list[tuple[str, str]]
    first_part_after: float

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, Say))


async def run(
    agent: Agent, http: aiohttp.ClientSession, text: str | None = "Hello", dtmf: str | None = None
) -> Run:
    """One reply (the greeting when `text` is None), as the session consumes it."""
    errors: list[tuple[str, str]] = []
    engine = engine_for(agent, http, lambda code, message: errors.append((code, message)))
    context = _context(agent)
    if text is not None:
        context.history.append(("user", text))
    parts = engine.greet(context) if text is None else engine.respond(context, text, dtmf=dtmf)
    loop = asyncio.get_running_loop()
    started = loop.time()
    received: list[ReplyPart] = []
    first = 0.0
    async for part in parts:
        if not received:
            first = loop.time() - started
        received.append(part)
    return Run(received, errors, first)


# -- OpenAI-compatible ---------------------------------------------------------------------------


async def test_openai_streams_text_as_it_arrives(
    fake: tuple[Fake, str], http: aiohttp.ClientSession
) -> None:
    server, base = fake
    server.steps = [
        delta(None, role="assistant"),
        delta("Hello John"),
        0.4,
        delta(". How can"),
        delta(" I help?"),
        delta(None, "stop"),
        DONE,
    ]
    result = await run(openai_agent(base, temperature=0.1, max_tokens=64), http)
    assert result.parts == [Say("Hello John"), Say(". How can"), Say(" I help?")]
    assert result.first_part_after < 0.3, "the first fragment must not wait for the rest"
    assert result.errors == []
    headers, _ = server.requests[-1]
    assert headers["Authorization"] == "Bearer sk-test"
    body = server.body
    assert (body["model"], body["stream"], body["temperature"], body["max_tokens"]) == (
        "tiny",
        True,
        0.1,
        64,
    )
    assert body["messages"][0]["role"] == "system"
    assert "Ava" in body["messages"][0]["content"]
    assert "customer_name: John" in body["messages"][0]["content"]
    assert body["messages"][1:] == [{"role": "user", "content": "Hello"}]
    assert {t["function"]["name"] for t in body["tools"]} == {"end_call", "handoff"}


async def test_openai_end_call_tool_ends_after_the_goodbye(
    fake: tuple[Fake, str], http: aiohttp.ClientSession
) -> None:
    server, base = fake
    server.steps = [
        delta("Goodbye, John!"),
        delta(None, tool_calls=[tool(0, "end_call", "")]),
        delta(None, tool_calls=[tool(0, arguments='{"reason": "caller')]),
        delta(None, tool_calls=[tool(0, arguments=' is done"}')]),
        delta(None, "tool_calls"),
        DONE,
    ]
    result = await run(openai_agent(base), http, "That's all, bye")
    assert result.parts == [Say("Goodbye, John!"), Act("end", "caller is done")]
    assert result.errors == []


async def test_openai_handoff_without_words_says_the_handoff_line(
    fake: tuple[Fake, str], http: aiohttp.ClientSession
) -> None:
    server, base = fake
    server.steps = [
        delta(None, tool_calls=[tool(0, "handoff", '{"reason": "asked for a human"}')]),
        delta(None, "tool_calls"),
        DONE,
    ]
    result = await run(openai_agent(base), http, "A human please")
    assert result.parts == [Say(HANDOFF_LINE), Act("handoff", "asked for a human")]


async def test_openai_greeting_needs_no_request(
    fake: tuple[Fake, str], http: aiohttp.ClientSession
) -> None:
    server, base = fake
    result = await run(openai_agent(base), http, None)
    assert result.parts == [Say("Hi John, Ava here.")]
    assert server.requests == []


async def test_openai_slow_first_token_says_the_error_line(
    fake: tuple[Fake, str], http: aiohttp.ClientSession
) -> None:
    server, base = fake
    server.steps = [Stall(), delta("Too late."), DONE]
    result = await run(openai_agent(base, timeout=0.5), http)
    assert result.parts == [Say(ERROR_LINE)]
    assert result.first_part_after < 1.5
    assert result.errors == [("dialog_timeout", "openai dialog engine: no reply within 0.5 s")]


async def test_openai_stall_mid_stream_ends_the_reply_with_the_error_line(
    fake: tuple[Fake, str], http: aiohttp.ClientSession
) -> None:
    server, base = fake
    server.steps = [delta("Your balance is"), Stall(), delta(" $5."), DONE]
    result = await run(openai_agent(base, timeout=0.5), http)
    assert result.parts == [Say("Your balance is"), Say("… " + ERROR_LINE)]
    assert [code for code, _ in result.errors] == ["dialog_timeout"]
    assert "stalled" in result.errors[0][1]


@pytest.mark.parametrize("status", [500, 401])
async def test_openai_http_errors_say_the_error_line(
    fake: tuple[Fake, str], http: aiohttp.ClientSession, status: int
) -> None:
    server, base = fake
    server.status = status
    server.steps = [b'{"error": {"message": "Incorrect API key provided"}}']
    agent = openai_agent(base).model_copy(update={"custom_responses": {"error": "One moment."}})
    result = await run(agent, http)
    assert result.parts == [Say("One moment.")]
    ((code, message),) = result.errors
    assert code == "dialog_http_error"
    assert f"HTTP {status} from {base}/v1/chat/completions" in message
    assert "Incorrect API key" in message


async def test_openai_connection_refused(http: aiohttp.ClientSession) -> None:
    result = await run(openai_agent(f"http://127.0.0.1:{free_port()}"), http)
    assert result.parts == [Say(ERROR_LINE)]
    assert [code for code, _ in result.errors] == ["dialog_unreachable"]


@pytest.mark.parametrize(
    ("steps", "said"),
    [
        ([b"data: {not json\n\n"], ""),
        ([sse({"choices": "none"})], ""),
        ([delta("Half a sent")], "Half a sent"),  # cut off: no finish, no [DONE]
        ([b"<html>Bad gateway</html>\n"], ""),
        ([delta(None, "stop"), DONE], ""),  # an empty reply
        ([delta(None, tool_calls=[tool(0, "format_disk", "{}")]), delta(None, "tool_calls")], ""),
    ],
)
async def test_openai_malformed_streams_say_the_error_line(
    fake: tuple[Fake, str], http: aiohttp.ClientSession, steps: list[Step], said: str
) -> None:
    server, base = fake
    server.steps = steps
    result = await run(openai_agent(base), http)
    assert result.text == (said + "… " if said else "") + ERROR_LINE
    assert [code for code, _ in result.errors] == ["dialog_bad_response"]


# -- webhook -------------------------------------------------------------------------------------


def answer(body: Any) -> list[Step]:
    return [json.dumps(body).encode()]


async def test_webhook_turn_is_signed_and_answered(
    fake: tuple[Fake, str], http: aiohttp.ClientSession
) -> None:
    server, base = fake
    server.steps = answer({"text": "Your order ships today.", "action": None})
    result = await run(webhook_agent(base), http, "Where is my order?")
    assert result.parts == [Say("Your order ships today.")]
    headers, raw = server.requests[-1]
    assert headers["X-Signature"] == hex_signature(raw, SECRET)
    assert headers["Content-Type"] == "application/json"
    assert server.body == {
        "type": "turn",
        "conversation_id": "conv_01jd4y3k8m2q9w7e5r1t6y0z3h",
        "agent_id": "agt_01jd4y3k8m2q9w7e5r1t6y0z3h",
        "text": "Where is my order?",
        "dtmf": None,
        "history": [],
        "initial_context": {"customer_name": "John"},
    }


async def test_webhook_without_secret_sends_no_signature(
    fake: tuple[Fake, str], http: aiohttp.ClientSession
) -> None:
    server, base = fake
    server.steps = answer({"text": "Pressed one."})
    result = await run(webhook_agent(base, secret=None), http, "1", dtmf="1")
    assert result.parts == [Say("Pressed one.")]
    assert "X-Signature" not in server.requests[-1][0]
    assert (server.body["text"], server.body["dtmf"]) == ("1", "1")


@pytest.mark.parametrize(
    ("body", "parts"),
    [
        ({"text": "Bye now!", "action": "end"}, [Say("Bye now!"), Act("end")]),
        ({"text": None, "action": "handoff", "reason": "billing"},
         [Say(HANDOFF_LINE), Act("handoff", "billing")]),
    ],
)  # fmt: skip
async def test_webhook_actions(
    fake: tuple[Fake, str], http: aiohttp.ClientSession, body: Any, parts: list[ReplyPart]
) -> None:
    server, base = fake
    server.steps = answer(body)
    assert (await run(webhook_agent(base), http)).parts == parts


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ({"text": None}, "Hi John, Ava here."),
        ({"text": "Welcome back, John!"}, "Welcome back, John!"),
    ],
)
async def test_webhook_greeting(
    fake: tuple[Fake, str], http: aiohttp.ClientSession, body: Any, said: str
) -> None:
    server, base = fake
    server.steps = answer(body)
    result = await run(webhook_agent(base), http, None)
    assert result.parts == [Say(said)]
    assert (server.body["type"], server.body["text"]) == ("greeting", None)


async def test_webhook_greeting_that_fails_is_the_agents_greeting(
    fake: tuple[Fake, str], http: aiohttp.ClientSession
) -> None:
    server, base = fake
    server.status = 503
    result = await run(webhook_agent(base), http, None)
    assert result.parts == [Say("Hi John, Ava here.")]
    assert [code for code, _ in result.errors] == ["dialog_http_error"]


async def test_webhook_too_slow(fake: tuple[Fake, str], http: aiohttp.ClientSession) -> None:
    server, base = fake
    server.steps = [Stall(), *answer({"text": "late"})]
    result = await run(webhook_agent(base, timeout=0.5), http)
    assert result.parts == [Say(ERROR_LINE)]
    assert result.errors == [("dialog_timeout", "webhook dialog engine: no reply within 0.5 s")]


@pytest.mark.parametrize(
    ("status", "steps", "code"),
    [
        (500, [b"Internal Server Error"], "dialog_http_error"),
        (200, [b"{not json"], "dialog_bad_response"),
        (200, answer(["a list"]), "dialog_bad_response"),
        (200, answer({"text": 42}), "dialog_bad_response"),
        (200, answer({"text": "", "action": None}), "dialog_bad_response"),
        (200, answer({"text": "x" * 70_000}), "dialog_bad_response"),
    ],
)
async def test_webhook_failures_say_the_error_line(
    fake: tuple[Fake, str],
    http: aiohttp.ClientSession,
    status: int,
    steps: list[Step],
    code: str,
) -> None:
    server, base = fake
    server.status = status
    server.steps = steps
    result = await run(webhook_agent(base), http)
    assert result.parts == [Say(ERROR_LINE)]
    assert [c for c, _ in result.errors] == [code]


async def test_webhook_connection_refused(http: aiohttp.ClientSession) -> None:
    result = await run(webhook_agent(f"http://127.0.0.1:{free_port()}"), http)
    assert result.parts == [Say(ERROR_LINE)]
    assert [code for code, _ in result.errors] == ["dialog_unreachable"]


# -- the factory ---------------------------------------------------------------------------------


def test_context_for_carries_what_engines_need() -> None:
    agent = _agent(
        {"type": "builtin"},
        intents=[{"name": "hours", "phrases": ["open"], "response": "From nine."}],
        language="en-GB",
    )
    context = _context(agent)
    assert (context.agent_name, context.personality, context.agent_id) == (
        "Ava",
        "warm",
        "agt_01jd4y3k8m2q9w7e5r1t6y0z3h",
    )
    assert context.conversation_id == "conv_01jd4y3k8m2q9w7e5r1t6y0z3h"
    assert context.initial_context == {"customer_name": "John"}
    assert [i.name for i in context.intents] == ["hours"]
    # The context is the session's to change; the agent record stays as it was.
    context.custom_responses["greeting"] = "changed"
    assert agent.custom_responses["greeting"] == "Hi {customer_name}, Ava here."


async def test_the_builtin_engine_is_not_wrapped(http: aiohttp.ClientSession) -> None:
    result = await run(_agent({"type": "builtin"}), http, None)
    assert result.parts == [Say("Hi John, Ava here.")]
