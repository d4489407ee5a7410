"""The webhook engine's pure parts: what it sends, how it reads the answer."""

from __future__ import annotations

import pytest

from bridge.dialog.base import Act, DialogContext, EngineError, Say
from bridge.dialog.webhook_engine import Answer, parse_answer, payload, reply_parts


def _context() -> DialogContext:
    return DialogContext(
        agent_name="Support",
        personality=None,
        custom_responses={"greeting": "Welcome, {customer_name}."},
        intents=[],
        initial_context={"customer_name": "Ann"},
        history=[("agent", "Welcome, Ann."), ("user", "Cancel my order")],
        conversation_id="conv_01jd4y3k8m2q9w7e5r1t6y0z3h",
        agent_id="agt_01jd4y3k8m2q9w7e5r1t6y0z3h",
    )


def test_a_turn_carries_the_earlier_history_and_the_context() -> None:
    assert payload(_context(), "turn", "Cancel my order", None) == {
        "type": "turn",
        "conversation_id": "conv_01jd4y3k8m2q9w7e5r1t6y0z3h",
        "agent_id": "agt_01jd4y3k8m2q9w7e5r1t6y0z3h",
        "text": "Cancel my order",
        "dtmf": None,
        "history": [{"role": "agent", "content": "Welcome, Ann."}],
        "initial_context": {"customer_name": "Ann"},
    }
    greeting = payload(_context(), "greeting", None, None)
    assert (greeting["type"], greeting["text"], len(greeting["history"])) == ("greeting", None, 2)


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b"not json", "the body"),
        (b"[]", "the body"),
        (b'{"text": 5}', "text"),
        (b'{"text": "hi", "action": "dance"}', "action"),
    ],
)
def test_unusable_answers_are_bad_responses(body: bytes, where: str) -> None:
    with pytest.raises(EngineError) as caught:
        parse_answer(body)
    assert caught.value.code == "dialog_bad_response"
    assert where in caught.value.message


def test_unknown_fields_in_an_answer_are_ignored() -> None:
    assert parse_answer(b'{"text": "Hi", "trace_id": "x"}') == Answer(text="Hi")


def test_what_the_caller_hears() -> None:
    context = _context()
    assert reply_parts(Answer(text="Done."), context, greeting=False) == [Say("Done.")]
    assert reply_parts(Answer(text="Bye!", action="end"), context, greeting=False) == [
        Say("Bye!"),
        Act("end"),
    ]
    # An action without words says the agent's line for it first.
    assert reply_parts(Answer(action="handoff", reason="vip"), context, greeting=False) == [
        Say("Let me transfer you to a colleague. One moment, please."),
        Act("handoff", "vip"),
    ]
    # A greeting without text is the agent's own.
    assert reply_parts(Answer(text=" "), context, greeting=True) == [Say("Welcome, Ann.")]
    with pytest.raises(EngineError, match="neither text nor action"):
        reply_parts(Answer(text=""), context, greeting=False)
