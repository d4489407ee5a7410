"""The built-in agent: no network, answers from the agent's own configuration.

Per caller turn, in order:
1. asks for a person (words like "human", "representative", or DTMF 0) -> the handoff line,
   then a handoff;
2. is done ("bye", "that's all") -> the farewell, then the call ends;
3. matches one of the agent's intents (phrases) or named custom responses -> that response;
4. otherwise a clarification line when the turn had no content words, else the fallback
   line, which offers a person: a "yes" right after it hands off.
Every line is a template over initial_context (see templates.py); `personality` shapes the
answers of step 3 (see `shape`).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

from bridge.dialog.base import Act, ActionKind, DialogContext, ReplyPart, Say
from bridge.dialog.templates import render

DEFAULTS = {
    "greeting": "Hello! How can I help you today?",
    "farewell": "Thank you for calling. Goodbye!",
    "handoff": "Let me transfer you to a colleague. One moment, please.",
    "fallback": "I'm sorry, I can't help with that. Would you like to talk to a person?",
    "clarification": "Sorry, I didn't catch that. Could you say it again?",
    "error": "Sorry, I'm having a little trouble. Could you say that again?",
}
"""The named lines, each replaced by the custom response of the same name. `error` is what
bridge/dialog/guarded.py says when another engine fails; this one cannot."""
ACTION_LINES: dict[ActionKind, str] = {"end": "farewell", "handoff": "handoff"}
"""The line said before an action when an engine acts without a word of its own."""
HANDOFF_DIGIT = "0"

_WORD = re.compile(r"[a-z0-9']+")
_HANDOFF = re.compile(
    r"\b(human|person|people|representative|operator|agent|somebody|someone|real|staff|"
    r"transfer|manager|supervisor)\b"
)
_HANDOFF_VERBS = re.compile(r"\b(talk|speak|connect|transfer|get|want|need|put)\b")
_CLOSING = (
    r"(bye|goodbye|good bye|bye bye|that's all|that is all|that's it|nothing else|i'm done|"
    r"we're done|no thanks|no thank you|no)"
)
_POLITE = r"(ok|okay|thanks|thank you|alright|great|perfect)"
# A turn made only of closing and polite words, with at least one closing phrase, ends the call
# ("no thanks, that's all"; "okay, goodbye"); a bare "thanks" or "no" alone does not.
_DONE = re.compile(rf"^({_POLITE} )*(?!no$){_CLOSING}( ({_CLOSING}|{_POLITE}))*$")
_YES = re.compile(r"^(yes|yeah|yep|sure|please|ok(ay)?|yes please)\b")
_STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "i",
        "i'm",
        "you",
        "your",
        "my",
        "me",
        "is",
        "are",
        "was",
        "do",
        "does",
        "can",
        "could",
        "would",
        "to",
        "of",
        "for",
        "and",
        "or",
        "in",
        "on",
        "at",
        "it",
        "this",
        "that",
        "what",
        "when",
        "where",
        "how",
        "please",
        "hi",
        "hello",
        "hey",
        "um",
        "uh",
    ]
)


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("-", " "))


def wants_person(text: str) -> bool:
    lowered = " ".join(words(text))
    return bool(_HANDOFF.search(lowered)) and (
        bool(_HANDOFF_VERBS.search(lowered)) or len(lowered.split()) <= 3
    )


def is_done(text: str) -> bool:
    return bool(_DONE.match(" ".join(words(text))))


def _content(tokens: list[str]) -> set[str]:
    return {t for t in tokens if t not in _STOP_WORDS}


@dataclass(frozen=True)
class Match:
    response: str
    score: float


def best_match(context: DialogContext, text: str) -> Match | None:
    """The intent or named response the turn asks for: a whole phrase inside the turn wins,
    else the largest share of a phrase's content words found in the turn (at least half)."""
    said = " ".join(words(text))
    said_content = _content(said.split())
    best: Match | None = None
    candidates = [(intent.phrases, intent.response) for intent in context.intents]
    candidates += [
        ([name.replace("_", " ")], response)
        for name, response in context.custom_responses.items()
        if name not in DEFAULTS
    ]
    for phrases, response in candidates:
        for phrase in phrases:
            phrase_words = words(phrase)
            if not phrase_words or not response:
                continue
            if f" {' '.join(phrase_words)} " in f" {said} ":
                score = 1.0 + len(phrase_words) / 100
            else:
                wanted = _content(phrase_words)
                score = len(wanted & said_content) / len(wanted) if wanted else 0.0
            if score >= 0.5 and (best is None or score > best.score):
                best = Match(response, score)
    return best


PERSONALITY_OPENERS = (
    (("friendly", "warm", "cheerful", "enthusiastic"), "Sure!"),
    (("formal", "professional", "polite"), "Certainly."),
)
"""What `personality` does to the built-in engine's answers: the first entry with a word the
personality contains puts its opener in front; any other personality changes nothing."""
OPENERS = frozenset(
    [
        ("sure",),
        ("certainly",),
        ("of", "course"),
        ("absolutely",),
        ("definitely",),
        ("gladly",),
        ("okay",),
        ("ok",),
        ("alright",),
        ("all", "right"),
        ("yes",),
        ("yeah",),
        ("no", "problem"),
        ("happy", "to", "help"),
        ("with", "pleasure"),
    ]
)
"""Answers that open with one of these already sound like the personality: they are left as
written, so no opener is ever said twice ("Sure! Sure, …")."""
_OPENER_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
_LEADING_PUNCTUATION = re.compile(r"^[\s.,;:!?…\-–—]+")


def opener_words(text: str, count: int = 3) -> tuple[str, ...]:
    """The first words of `text`, casefolded, without punctuation."""
    return tuple(match.group() for match in _OPENER_WORD.finditer(text.casefold()))[:count]


def opens_like(text: str) -> bool:
    """Whether `text` already starts with one of the OPENERS."""
    first = opener_words(text)
    return any(first[: len(opener)] == opener for opener in OPENERS)


def shape(line: str, personality: str | None) -> str:
    """A light touch of personality on intent answers (not on fixed lines like the farewell):
    friendly, warm, cheerful or enthusiastic agents open with "Sure!", formal, professional or
    polite ones with "Certainly.", unless the answer already opens with an acknowledgement."""
    style = (personality or "").lower()
    opener = next((o for keys, o in PERSONALITY_OPENERS if any(k in style for k in keys)), None)
    # Punctuation a template left at the start (a missing "{name}, …") would follow the
    # opener's own.
    rest = _LEADING_PUNCTUATION.sub("", line)
    if opener is None or not _OPENER_WORD.search(rest) or opens_like(rest):
        return line
    return f"{opener} {rest[0].upper()}{rest[1:]}"


def line(context: DialogContext, name: str) -> str:
    """One of the named lines of DEFAULTS, as this agent says it in this conversation."""
    template = context.custom_responses.get(name) or DEFAULTS[name]
    return render(template, context.initial_context)


class BuiltinEngine:
    """Stateless: what it remembers between turns lives in the DialogContext."""

    async def greet(self, context: DialogContext) -> AsyncIterator[ReplyPart]:
        yield Say(line(context, "greeting"))

    async def respond(
        self, context: DialogContext, user_text: str, *, dtmf: str | None = None
    ) -> AsyncIterator[ReplyPart]:
        offered_person, context.offered_person = context.offered_person, False
        if (
            dtmf == HANDOFF_DIGIT
            or wants_person(user_text)
            or (offered_person and _YES.match(" ".join(words(user_text))))
        ):
            yield Say(line(context, "handoff"))
            yield Act("handoff", "caller asked for a person")
            return
        if is_done(user_text):
            yield Say(line(context, "farewell"))
            yield Act("end", "caller finished")
            return
        match = best_match(context, user_text)
        if match is not None:
            yield Say(shape(render(match.response, context.initial_context), context.personality))
            return
        if len(_content(words(user_text))) == 0:
            yield Say(line(context, "clarification"))
            return
        context.offered_person = True
        yield Say(line(context, "fallback"))
