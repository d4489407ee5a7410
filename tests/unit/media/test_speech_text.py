from __future__ import annotations

from media.speech_text import SentenceBuffer, pieces, sentences


def test_sentences_split_on_end_punctuation() -> None:
    assert sentences("Hi there. How are you?  Fine!") == ["Hi there.", "How are you?", "Fine!"]
    assert sentences('He said "stop." Then left.') == ['He said "stop."', "Then left."]
    assert sentences("   ") == []


def test_a_long_first_sentence_speaks_its_first_clause_first() -> None:
    text = "Our opening hours are nine to five on weekdays, and ten to two on Saturdays. Bye."
    assert pieces(text) == [
        "Our opening hours are nine to five on weekdays,",
        "and ten to two on Saturdays.",
        "Bye.",
    ]


def test_short_first_sentences_stay_whole() -> None:
    assert pieces("Sure, no problem. Anything else?") == ["Sure, no problem.", "Anything else?"]


def test_streamed_tokens_release_pieces_as_they_complete() -> None:
    buffer = SentenceBuffer()
    released: list[str] = []
    for token in ["Of", " course", ",", " I", " can", " help", ".", " What", " is", " your"]:
        released += buffer.push(token)
    assert released == ["Of course,", "I can help."]
    released += buffer.push(" name?")
    assert released[-1] == "What is your name?" or buffer.flush() == ["What is your name?"]
    assert SentenceBuffer().flush() == []


def test_streamed_later_clauses_wait_for_the_sentence() -> None:
    buffer = SentenceBuffer()
    out = buffer.push("Yes. Then, after that, we ship it. ")
    assert out == ["Yes.", "Then, after that, we ship it."]
