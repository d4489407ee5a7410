"""Word error rate, for tests and benchmarks of the recognizer."""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-z0-9']+")
# Spoken forms of written abbreviations, as scoring normalizers usually map them.
_SPOKEN = {"mr": "mister", "mrs": "missus", "dr": "doctor", "st": "saint", "ok": "okay"}


def words(text: str) -> list[str]:
    """Lower-case spoken words without punctuation; hyphens split words ("ill-disposed")."""
    return [_SPOKEN.get(w, w) for w in _WORD.findall(text.lower().replace("-", " "))]


def edit_distance(reference: list[str], hypothesis: list[str]) -> int:
    previous = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, 1):
        current = [i]
        for j, hyp_word in enumerate(hypothesis, 1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word))
            )
        previous = current
    return previous[-1]


def word_error_rate(reference: str, hypothesis: str) -> float:
    ref = words(reference)
    if not ref:
        return 0.0 if not words(hypothesis) else 1.0
    return edit_distance(ref, words(hypothesis)) / len(ref)
