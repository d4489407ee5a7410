"""Cutting a reply into the pieces TTS speaks one after another (pure text logic).

The first piece is kept short — the first clause of the first sentence when that sentence is
long — because the caller hears nothing until it is synthesized; later pieces are whole
sentences, which sound more natural.
"""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"(?:(?<=[.!?…])|(?<=[.!?…][\"')\]]))\s+")
_CLAUSE_BREAK = re.compile(r"(?<=[,;:—])\s+")
FIRST_PIECE_MAX_WORDS = 6
MIN_CLAUSE_WORDS = 2


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def pieces(text: str) -> list[str]:
    parts = sentences(text)
    if not parts:
        return []
    first, rest = parts[0], parts[1:]
    if len(first.split()) > FIRST_PIECE_MAX_WORDS:
        clauses = _CLAUSE_BREAK.split(first, maxsplit=1)
        if len(clauses) == 2 and len(clauses[0].split()) >= MIN_CLAUSE_WORDS:
            return [clauses[0], clauses[1], *rest]
    return [first, *rest]


class SentenceBuffer:
    """Collects streamed text (LLM tokens) and releases each piece once it is complete."""

    def __init__(self) -> None:
        self._text = ""
        self._released_any = False

    def push(self, fragment: str) -> list[str]:
        self._text += fragment
        out: list[str] = []
        while True:
            match = _SENTENCE_END.search(self._text)
            if not self._released_any:
                clause = _CLAUSE_BREAK.search(self._text)
                if (
                    clause
                    and (match is None or clause.start() < match.start())
                    and len(self._text[: clause.start()].split()) >= MIN_CLAUSE_WORDS
                ):
                    match = clause
            if match is None:
                return out
            piece, self._text = self._text[: match.start()].strip(), self._text[match.end() :]
            if piece:
                out.append(piece)
                self._released_any = True

    def flush(self) -> list[str]:
        rest, self._text = self._text.strip(), ""
        return [rest] if rest else []
