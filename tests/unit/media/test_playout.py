from __future__ import annotations

import numpy as np

from media.playout import QUIET_PEAK, Playout, speech_start

LOUD = 1000
"""Frames carry a marker value times LOUD, so that each is speech, not lead-in silence."""


def _frames(count: int, value: int = 1) -> list[np.ndarray]:
    return [np.full(320, value * LOUD, np.int16) for _ in range(count)]


def _marker(playout: Playout) -> int:
    frame = playout.pull()
    assert frame is not None
    return int(frame[0]) // LOUD


def test_plays_pieces_in_order_and_drains() -> None:
    playout = Playout()
    playout.begin()
    playout.add("Hello there.", _frames(2, 1))
    playout.add("How are you?", _frames(1, 2))
    assert not playout.started and not playout.drained
    values = [_marker(playout) for _ in range(3)]
    assert values == [1, 1, 2]
    assert playout.pull() is None
    assert not playout.drained, "more pieces may still come"
    playout.finish()
    assert playout.drained and not playout.speaking
    assert playout.spoken_text() == "Hello there. How are you?"


def test_pause_holds_the_position_and_resume_continues() -> None:
    playout = Playout()
    playout.begin()
    playout.add("one two", [np.full(320, i * LOUD, np.int16) for i in range(1, 5)])
    playout.finish()
    assert _marker(playout) == 1
    playout.pause()
    assert playout.pull() is None and playout.speaking
    playout.resume()
    assert [_marker(playout) for _ in range(3)] == [2, 3, 4]


def test_stop_reports_the_words_heard() -> None:
    playout = Playout()
    playout.begin()
    playout.add("Your order shipped.", _frames(2))
    playout.add("It arrives on Monday morning.", _frames(10))
    playout.finish()
    for _ in range(2 + 4):
        playout.pull()
    # Four of ten frames of a five-word piece: two words heard.
    assert playout.stop() == "Your order shipped. It arrives"
    assert playout.drained and not playout.started
    assert playout.pull() is None


def test_begin_drops_what_was_left_of_the_previous_reply() -> None:
    playout = Playout()
    playout.begin()
    playout.add("old reply", _frames(5, 7))
    playout.pull()
    playout.begin()
    playout.add("new", _frames(1, 9))
    assert _marker(playout) == 9
    assert playout.frames_played == 1


def test_a_replys_lead_in_silence_is_cut_but_pauses_between_pieces_stay() -> None:
    quiet = np.full(320, QUIET_PEAK - 1, np.int16)
    playout = Playout()
    playout.begin()
    playout.add("Hello.", [quiet] * 12 + _frames(3, 5))
    playout.add("Bye.", [quiet] * 4 + _frames(1, 6))
    playout.finish()
    played = []
    while (frame := playout.pull()) is not None:
        played.append(int(frame[0]) // LOUD)
    # One frame of lead-in before the speech, then the pause before the second piece, whole.
    assert played == [0, 5, 5, 5, 0, 0, 0, 0, 6]
    assert playout.spoken_text() == "Hello. Bye."


def test_a_silent_first_piece_is_skipped_and_the_next_one_trimmed() -> None:
    silence = [np.zeros(320, np.int16)] * 5
    playout = Playout()
    playout.begin()
    playout.add("...", silence)
    playout.add("Yes.", silence + _frames(2, 3))
    playout.finish()
    assert [_marker(playout) for _ in range(3)] == [0, 3, 3]


def test_speech_start() -> None:
    quiet, loud = np.zeros(320, np.int16), np.full(320, -QUIET_PEAK, np.int16)
    assert speech_start([loud]) == 0
    assert speech_start([quiet, loud]) == 0
    assert speech_start([quiet, quiet, quiet, loud]) == 2
    assert speech_start([quiet, quiet]) == 2
    assert speech_start([]) == 0
