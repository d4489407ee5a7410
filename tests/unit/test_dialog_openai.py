"""The OpenAI-compatible engine's pure parts: the prompt, the SSE stream, the tool calls."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bridge.dialog.base import Act, DialogContext, EngineError
from bridge.dialog.openai_compat import (
    MAX_HISTORY,
    TOOLS,
    SseDecoder,
    ToolCall,
    ToolCalls,
    messages,
    parse_chunk,
    request_body,
    system_prompt,
)
from bridge.models import OpenAIEngineConfig


def _context(**overrides: Any) -> DialogContext:
    values: dict[str, Any] = {
        "agent_name": "Ava",
        "personality": "warm and brief",
        "custom_responses": {},
        "intents": [],
        "initial_context": {"customer_name": "John Doe", "orders": [1, 2]},
        "language": "en-GB",
    }
    values.update(overrides)
    return DialogContext(**values)


def _chunk(delta: dict[str, Any], finish: str | None = None) -> str:
    return json.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


def test_the_system_prompt_names_the_agent_and_carries_instructions_and_facts() -> None:
    prompt = system_prompt(_context(), "Sell shoes. Never discuss politics.")
    assert "You are Ava" in prompt
    assert "warm and brief" in prompt
    assert "en-GB" in prompt
    assert "Sell shoes. Never discuss politics." in prompt
    assert "- customer_name: John Doe\n- orders: [1, 2]" in prompt
    assert "end_call" in prompt and "handoff" in prompt
    bare = system_prompt(_context(personality=None, initial_context={}), None)
    assert "personality" not in bare and "Facts" not in bare and "Instructions" not in bare


def test_messages_map_the_history_and_do_not_repeat_the_current_turn() -> None:
    context = _context(history=[("agent", "Hello!"), ("user", "Where is my order?")])
    chat = messages(context, "Where is my order?", None, None)
    assert [m["role"] for m in chat] == ["system", "assistant", "user"]
    assert chat[1:] == [
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Where is my order?"},
    ]
    # A caller that did not append the turn to the history gets the same messages.
    assert messages(_context(history=[("agent", "Hello!")]), "Where is my order?", None, None) == (
        chat
    )


def test_a_keypad_digit_is_described_to_the_model() -> None:
    chat = messages(_context(history=[("user", "5")]), "5", "5", None)
    assert chat[-1] == {"role": "user", "content": "(The caller pressed 5 on the keypad.)"}
    assert len(chat) == 2


def test_a_long_history_is_cut_to_the_latest_turns() -> None:
    history: list[tuple[Any, str]] = [("user" if i % 2 else "agent", f"t{i}") for i in range(100)]
    chat = messages(_context(history=history), "now", None, None)
    assert len(chat) == MAX_HISTORY + 2
    assert chat[1]["content"] == f"t{100 - MAX_HISTORY}"


def test_the_request_streams_with_the_two_tools() -> None:
    config = OpenAIEngineConfig(
        type="openai", base_url="http://x", model="m", temperature=0.2, max_tokens=50
    )
    body = request_body(config, [{"role": "user", "content": "hi"}])
    assert body["stream"] is True
    assert (body["model"], body["temperature"], body["max_tokens"]) == ("m", 0.2, 50)
    assert [t["function"]["name"] for t in body["tools"]] == ["end_call", "handoff"]
    assert body["tools"] is TOOLS


def test_sse_events_end_at_a_blank_line() -> None:
    decoder = SseDecoder()
    lines = [": keep-alive\n", "event: message\n", "data: one\r\n", "data:two\n", "\n", "\n"]
    assert [decoder.feed(line) for line in lines] == [None, None, None, None, "one\ntwo", None]
    assert decoder.feed("data: [DONE]\n") is None
    assert decoder.end() == "[DONE]"
    assert decoder.end() is None


def test_a_chunk_carries_text_tool_call_pieces_and_the_finish() -> None:
    assert parse_chunk(_chunk({"content": "Hel"})).text == "Hel"
    call = {"index": 0, "id": "c1", "type": "function", "function": {"name": "end_call"}}
    chunk = parse_chunk(_chunk({"tool_calls": [call]}, "tool_calls"))
    assert chunk.calls == {0: ToolCall("end_call", "")} and chunk.finished
    # A usage chunk, and a role-only first chunk, say nothing.
    assert parse_chunk(json.dumps({"choices": [], "usage": {"total_tokens": 9}})).text == ""
    assert parse_chunk(_chunk({"role": "assistant", "content": None})).text == ""


@pytest.mark.parametrize(
    "data",
    [
        "not json",
        "[1, 2]",
        json.dumps({"choices": "x"}),
        json.dumps({"choices": [{"delta": {"content": 5}}]}),
        json.dumps({"choices": [{"delta": {"tool_calls": [{"index": "0"}]}}]}),
        json.dumps({"error": {"message": "overloaded"}}),
    ],
)
def test_malformed_chunks_are_bad_responses(data: str) -> None:
    with pytest.raises(EngineError) as caught:
        parse_chunk(data)
    assert caught.value.code == "dialog_bad_response"


def test_tool_calls_are_assembled_from_their_pieces() -> None:
    calls = ToolCalls()
    calls.add({0: ToolCall("hand", "")})
    calls.add({0: ToolCall("off", '{"rea')})
    calls.add({0: ToolCall("", 'son": "wants a human"}')})
    assert calls.action() == Act("handoff", "wants a human")


def test_garbled_arguments_lose_only_the_reason() -> None:
    calls = ToolCalls()
    calls.add({0: ToolCall("end_call", '{"reason": ')})
    assert calls.action() == Act("end", "")
    assert ToolCalls().action() is None


def test_an_unknown_tool_is_a_bad_response() -> None:
    calls = ToolCalls()
    calls.add({0: ToolCall("delete_database", "{}")})
    with pytest.raises(EngineError, match="unknown tool"):
        calls.action()
