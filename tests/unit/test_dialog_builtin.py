from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bridge.dialog.base import Act, DialogContext, ReplyPart, Say
from bridge.dialog.builtin import (
    OPENERS,
    PERSONALITY_OPENERS,
    BuiltinEngine,
    best_match,
    is_done,
    opener_words,
    shape,
    wants_person,
)
from bridge.dialog.templates import fields, render
from bridge.models import Agent, Intent


def _context(**overrides: Any) -> DialogContext:
    values: dict[str, Any] = {
        "agent_name": "Support",
        "personality": None,
        "custom_responses": {
            "greeting": "Hello {customer_name}, thanks for calling Acme.",
            "farewell": "Goodbye {customer_name}!",
            "opening_hours": "We are open nine to five, Monday to Friday.",
        },
        "intents": [
            Intent(
                name="billing",
                phrases=["my bill", "invoice", "charged twice"],
                response="I can see your {account_type} account. Billing questions go by email.",
            ),
            Intent(name="reset", phrases=["reset my password"], response="Use the reset link."),
        ],
        "initial_context": {"customer_name": "John", "account_type": "premium"},
    }  # fmt: skip
    values.update(overrides)
    return DialogContext(**values)


async def _reply(
    context: DialogContext, text: str = "", *, dtmf: str | None = None, greet: bool = False
) -> list[ReplyPart]:
    engine = BuiltinEngine()
    stream = engine.greet(context) if greet else engine.respond(context, text, dtmf=dtmf)
    return [part async for part in stream]


def test_templates_fill_fields_and_tidy_missing_ones() -> None:
    assert render("Hi {customer_name}, welcome!", {"customer_name": "Ann"}) == "Hi Ann, welcome!"
    assert render("Hi {customer_name}, welcome!", {}) == "Hi, welcome!"
    assert render("Hello {name}.", {}) == "Hello."
    assert render("{0} {a.b} {x:>9}", {"x": 1}) == "{0} {a.b} {x:>9}"
    assert fields("{a} and {b_2}") == ["a", "b_2"]


async def test_greeting_uses_initial_context() -> None:
    assert await _reply(_context(), greet=True) == [Say("Hello John, thanks for calling Acme.")]
    plain = _context(custom_responses={}, initial_context={})
    assert await _reply(plain, greet=True) == [Say("Hello! How can I help you today?")]


@pytest.mark.parametrize(
    "text",
    ["Can I talk to a person?", "I want a human.", "Representative.", "put me through to an agent"],
)
async def test_asking_for_a_person_hands_off(text: str) -> None:
    assert wants_person(text)
    parts = await _reply(_context(), text)
    assert isinstance(parts[0], Say) and parts[-1] == Act("handoff", "caller asked for a person")


async def test_dtmf_zero_hands_off() -> None:
    assert (await _reply(_context(), "", dtmf="0"))[-1] == Act(
        "handoff", "caller asked for a person"
    )


@pytest.mark.parametrize("text", ["Bye.", "No thanks, that's all.", "Okay, goodbye!", "that's it"])
async def test_done_says_farewell_and_ends(text: str) -> None:
    assert is_done(text)
    assert await _reply(_context(), text) == [Say("Goodbye John!"), Act("end", "caller finished")]


@pytest.mark.parametrize("text", ["My agent said bye to me", "nothing works", "no, it's broken"])
def test_not_done(text: str) -> None:
    assert not is_done(text)


async def test_intents_and_named_responses_answer() -> None:
    context = _context()
    answer = await _reply(context, "Why was I charged twice this month?")
    assert answer == [Say("I can see your premium account. Billing questions go by email.")]
    assert await _reply(context, "What are your opening hours?") == [
        Say("We are open nine to five, Monday to Friday.")
    ]
    assert best_match(context, "how do I reset my password") is not None
    assert best_match(context, "the weather is nice") is None


async def test_personality_shapes_answers() -> None:
    friendly = _context(personality="friendly and helpful")
    assert (await _reply(friendly, "opening hours?"))[0] == Say(
        "Sure! We are open nine to five, Monday to Friday."
    )


async def test_a_friendly_answer_that_already_says_sure_is_not_shaped_again() -> None:
    order = Intent(name="order", phrases=["my order"], response="Sure, I can look up your order.")
    friendly = _context(personality="friendly", intents=[order])
    assert await _reply(friendly, "Where is my order?") == [Say("Sure, I can look up your order.")]


@pytest.mark.parametrize(
    ("answer", "personality", "shaped"),
    [
        ("Sure, I can look up your order.", "friendly", "Sure, I can look up your order."),
        ("SURE!! Here it is.", "cheerful", "SURE!! Here it is."),
        ("of course - one moment.", "warm", "of course - one moment."),
        ("Certainly. Your order shipped.", "friendly", "Certainly. Your order shipped."),
        ("Sure thing.", "formal", "Sure thing."),
        ("Okay, done.", "professional", "Okay, done."),
        ("We are open.", "friendly and helpful", "Sure! We are open."),
        ("We are open.", "formal", "Certainly. We are open."),
        ("We are open.", "calm", "We are open."),
        # What a template leaves when "{customer_name}, ..." has no name.
        (", your order shipped.", "friendly", "Sure! Your order shipped."),
        ("... one moment.", "polite", "Certainly. One moment."),
        ("!", "friendly", "!"),
    ],
)
def test_personality_openers_never_stutter_or_double_punctuation(
    answer: str, personality: str, shaped: str
) -> None:
    assert shape(answer, personality) == shaped


_PERSONALITIES = st.sampled_from(
    [None, "", "calm", "friendly", "Warm and cheerful", "formal", "professional", "ENTHUSIASTIC"]
)
_OPENER_SPELLINGS = st.builds(
    lambda words, upper, punctuation: (
        (" ".join(words).upper() if upper else " ".join(words).capitalize()) + punctuation
    ),
    st.sampled_from(sorted(OPENERS)),
    st.booleans(),
    st.sampled_from(["", ",", "!", ".", "!!", " -", "?", "…"]),
)
_ANSWERS = st.one_of(
    st.text(max_size=60),
    st.builds(lambda a, b: f"{a} {b}", _OPENER_SPELLINGS, st.text(max_size=40)),
    st.builds(lambda a, b: f"{a}{b}", st.sampled_from([",", ".", "!", " ", "... "]), st.text()),
)
_PUNCTUATION = ".,;:!?…"


def _opens_with_opener(words: tuple[str, ...]) -> tuple[str, ...] | None:
    return next((o for o in OPENERS if words[: len(o)] == o), None)


@given(_ANSWERS, _PERSONALITIES)
@example("Sure, I can look up your order.", "friendly")
@example("Of course! Here it is.", "friendly")
@example("certainly: here it is", "formal")
def test_no_shaped_line_repeats_an_opener(answer: str, personality: str | None) -> None:
    shaped = shape(answer, personality)
    assert shape(shaped, personality) == shaped  # shaping twice adds nothing
    if shaped == answer:
        return
    style = (personality or "").lower()
    opener = next(o for keys, o in PERSONALITY_OPENERS if any(k in style for k in keys))
    assert shaped.startswith(opener + " ")
    rest = shaped.removeprefix(opener + " ")
    # The opener's punctuation is the only punctuation where it meets the answer...
    assert rest[0] not in _PUNCTUATION and not rest[0].isspace()
    assert re.search(r"\w", rest)
    # ...and the answer did not open with an opener of its own, so none is said twice.
    assert _opens_with_opener(opener_words(answer.lstrip(_PUNCTUATION + " -–—"))) is None
    words = opener_words(shaped, 6)
    first = _opens_with_opener(words)
    assert first is not None
    assert _opens_with_opener(words[len(first) :]) is None


async def test_unclear_turn_gets_a_clarification_and_unknown_a_fallback_offering_a_person() -> None:
    context = _context()
    assert await _reply(context, "um") == [
        Say("Sorry, I didn't catch that. Could you say it again?")
    ]
    fallback = await _reply(context, "Tell me about quantum physics")
    assert "person" in fallback[0].text  # type: ignore[union-attr]
    assert (await _reply(context, "Yes please"))[-1] == Act("handoff", "caller asked for a person")
    # A plain yes means nothing special when no person was offered.
    assert Act("handoff", "caller asked for a person") not in await _reply(context, "yes")


async def test_named_lines_are_not_matched_as_intents() -> None:
    # "error" is what guarded engines say when they fail, not an answer to the word "error".
    context = _context(
        custom_responses={"error": "Oops, one moment.", "refunds": "Refunds: 5 days."}
    )
    assert await _reply(context, "I got an error about refunds") == [Say("Refunds: 5 days.")]
    assert best_match(context, "there was an error") is None


async def test_intents_come_from_the_agent_record() -> None:
    agent_intents = Agent.model_validate(
        {
            "agent_id": "agt_01jd4y3k8m2q9w7e5r1t6y0z3h",
            "name": "Support",
            "intents": [{"name": "hours", "phrases": ["open"], "response": "From nine."}],
            "created_at": "2024-11-05T14:48:00.000Z",
            "updated_at": "2024-11-05T14:48:00.000Z",
        }
    ).intents
    context = _context(intents=agent_intents)
    assert await _reply(context, "When are you open?") == [Say("From nine.")]
