"""Replies from a chat-completions model behind any OpenAI-compatible API (OpenAI, vLLM,
llama.cpp's server, Ollama, …), streamed: text is yielded as the tokens arrive, so the first
sentence is spoken while the model is still writing the rest.

The model gets two tools: `end_call` and `handoff`, which become Act("end") and Act("handoff").
The greeting is the agent's own (custom_responses.greeting), so a call starts without waiting
for a model. Failures raise; bridge/dialog/guarded.py turns them into the error line.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bridge.dialog.base import (
    Act,
    ActionKind,
    DialogContext,
    EngineError,
    ReplyPart,
    Say,
    earlier_turns,
)
from bridge.dialog.builtin import ACTION_LINES, BuiltinEngine, line
from bridge.dialog.http import MAX_ERROR_BODY, check_status
from bridge.models import OpenAIEngineConfig

MAX_HISTORY = 40
"""Earlier turns sent with each request: enough for a phone call, bounded for a long one."""

TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": {"reason": {"type": "string", "description": "Why, in a few words."}},
            },
        },
    }
    for name, description in (
        (
            "end_call",
            "Hang up. Use it once the caller has nothing more to ask, after saying goodbye.",
        ),
        (
            "handoff",
            "Transfer the caller to a human colleague. Use it when the caller asks for a "
            "person, or when you cannot help.",
        ),
    )
]
ACTIONS: dict[str, ActionKind] = {"end_call": "end", "handoff": "handoff"}


# -- the prompt ------------------------------------------------------------------------------


def _fact(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def system_prompt(context: DialogContext, instructions: str | None) -> str:
    parts = [
        f"You are {context.agent_name}, a voice agent answering a phone call.",
        "Everything you write is spoken aloud by a text-to-speech voice: reply in one to "
        "three short, natural sentences of plain words, without markdown, lists, emoji or "
        "links.",
        f"Speak the language of the BCP-47 tag {context.language}.",
        "When the caller has nothing more to ask, say goodbye and call end_call. When they "
        "ask for a person, or you cannot help them, call handoff. Never invent facts about "
        "the caller or the business: say when you do not know.",
    ]
    if context.personality:
        parts.append(f"Your personality: {context.personality}.")
    if instructions:
        parts.append(f"Instructions:\n{instructions}")
    if context.initial_context:
        facts = "\n".join(f"- {k}: {_fact(v)}" for k, v in context.initial_context.items())
        parts.append(f"Facts about this call:\n{facts}")
    return "\n\n".join(parts)


def caller_turn(user_text: str, dtmf: str | None) -> str:
    return f"(The caller pressed {dtmf} on the keypad.)" if dtmf else user_text


def messages(
    context: DialogContext, user_text: str, dtmf: str | None, instructions: str | None
) -> list[dict[str, str]]:
    history = [
        {"role": "user" if role == "user" else "assistant", "content": text}
        for role, text in earlier_turns(context, user_text)[-MAX_HISTORY:]
    ]
    return [
        {"role": "system", "content": system_prompt(context, instructions)},
        *history,
        {"role": "user", "content": caller_turn(user_text, dtmf)},
    ]


def request_body(config: OpenAIEngineConfig, chat: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "model": config.model,
        "messages": chat,
        "stream": True,
        "temperature": config.temperature,
        "max_tokens": config.max_tokens,
        "tools": TOOLS,
        "tool_choice": "auto",
    }


# -- the stream ------------------------------------------------------------------------------


class SseDecoder:
    """Server-sent events, line by line: returns an event's data once its blank line comes."""

    def __init__(self) -> None:
        self._data: list[str] = []

    def feed(self, text: str) -> str | None:
        text = text.rstrip("\r\n")
        if not text:
            return self.end()
        name, _, value = text.partition(":")
        if name == "data":
            self._data.append(value.removeprefix(" "))
        return None

    def end(self) -> str | None:
        """The event still open, for a stream that ends without its final blank line."""
        if not self._data:
            return None
        data, self._data = "\n".join(self._data), []
        return data


@dataclass
class ToolCall:
    name: str = ""
    arguments: str = ""


@dataclass
class Chunk:
    text: str = ""
    calls: dict[int, ToolCall] = field(default_factory=dict)
    finished: bool = False


def _bad(message: str) -> EngineError:
    return EngineError("dialog_bad_response", message)


def _typed(value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    if not isinstance(value, kind):
        raise _bad(f"{what} has the wrong type in a streamed chunk")
    return value


def parse_chunk(data: str) -> Chunk:
    """One streamed chat.completion.chunk; only the first choice counts."""
    try:
        body = json.loads(data)
    except ValueError:
        raise _bad(f"a streamed event is not JSON: {data[:100]!r}") from None
    _typed(body, dict, "the chunk")
    if body.get("error"):
        raise _bad(f"the stream reported an error: {json.dumps(body['error'])[:MAX_ERROR_BODY]}")
    choices = _typed(body.get("choices", []), list, "choices")
    if not choices:
        return Chunk()
    choice = _typed(choices[0], dict, "a choice")
    delta = _typed(choice.get("delta") or {}, dict, "delta")
    chunk = Chunk(
        text=_typed(delta.get("content") or "", str, "content"),
        finished=_typed(choice.get("finish_reason"), (str, type(None)), "finish_reason")
        is not None,
    )
    for raw in _typed(delta.get("tool_calls") or [], list, "tool_calls"):
        call = _typed(raw, dict, "a tool call")
        function = _typed(call.get("function") or {}, dict, "function")
        chunk.calls[_typed(call.get("index", 0), int, "index")] = ToolCall(
            name=_typed(function.get("name") or "", str, "name"),
            arguments=_typed(function.get("arguments") or "", str, "arguments"),
        )
    return chunk


class ToolCalls:
    """Tool calls arrive in pieces: the name first, the JSON arguments a few characters at a
    time, each piece tagged with its call's index."""

    def __init__(self) -> None:
        self._calls: dict[int, ToolCall] = {}

    def add(self, pieces: dict[int, ToolCall]) -> None:
        for index, piece in pieces.items():
            call = self._calls.setdefault(index, ToolCall())
            call.name += piece.name
            call.arguments += piece.arguments

    def action(self) -> Act | None:
        """The action of the model's first tool call, if it made one."""
        for _, call in sorted(self._calls.items()):
            kind = ACTIONS.get(call.name)
            if kind is None:
                raise _bad(f"the model called an unknown tool {call.name[:100]!r}")
            return Act(kind, _reason(call.arguments))
        return None


def _reason(arguments: str) -> str:
    # The action is clear from the tool's name; arguments a model garbled only lose the reason.
    try:
        parsed = json.loads(arguments or "{}")
    except ValueError:
        return ""
    reason = parsed.get("reason") if isinstance(parsed, dict) else None
    return reason if isinstance(reason, str) else ""


async def _events(response: aiohttp.ClientResponse) -> AsyncGenerator[str, None]:
    """The data of each server-sent event, `[DONE]` included."""
    decoder = SseDecoder()
    async for raw in response.content:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _bad("the stream is not UTF-8") from None
        data = decoder.feed(text)
        if data is not None:
            yield data
    data = decoder.end()
    if data is not None:
        yield data


class OpenAIEngine:
    def __init__(self, config: OpenAIEngineConfig, http: aiohttp.ClientSession) -> None:
        self._config = config
        self._http = http
        self._url = config.base_url.rstrip("/") + "/chat/completions"
        self._headers = {"Accept": "text/event-stream"}
        if config.api_key:
            self._headers["Authorization"] = f"Bearer {config.api_key}"

    def greet(self, context: DialogContext) -> AsyncIterator[ReplyPart]:
        return BuiltinEngine().greet(context)

    async def respond(
        self, context: DialogContext, user_text: str, *, dtmf: str | None = None
    ) -> AsyncIterator[ReplyPart]:
        chat = messages(context, user_text, dtmf, self._config.instructions)
        body = request_body(self._config, chat)
        calls = ToolCalls()
        spoke = False
        complete = False
        async with self._http.post(self._url, json=body, headers=self._headers) as response:
            await check_status(response)
            async with contextlib.aclosing(_events(response)) as events:
                async for data in events:
                    if data == "[DONE]":
                        complete = True
                        break
                    chunk = parse_chunk(data)
                    calls.add(chunk.calls)
                    complete = complete or chunk.finished
                    if chunk.text:
                        spoke = spoke or bool(chunk.text.strip())
                        yield Say(chunk.text)
        if not complete:
            raise _bad(f"the stream from {self._url} ended before the reply was complete")
        act = calls.action()
        if act is None:
            if not spoke:
                raise _bad("the model's reply was empty")
            return
        if not spoke:
            yield Say(line(context, ACTION_LINES[act.kind]))
        yield act
