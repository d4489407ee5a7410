from __future__ import annotations

import numpy as np

from media.playout import Playout


def _frames(count: int, value: int = 1) -> list[np.ndarray]:
    return [np.full(320, value, np.int16) for _ in range(count)]


def test_plays_pieces_in_order_and_drains() -> None:
    playout = Playout()
    playout.begin()
    playout.add("Hello there.", _frames(2, 1))
    playout.add("How are you?", _frames(1, 2))
    assert not playout.started and not playout.drained
    values = [int(playout.pull()[0]) for _ in range(3)]  # type: ignore[index]
    assert values == [1, 1, 2]
    assert playout.pull() is None
    assert not playout.drained, "more pieces may still come"
    playout.finish()
    assert playout.drained and not playout.speaking
    assert playout.spoken_text() == "Hello there. How are you?"


def test_pause_holds_the_position_and_resume_continues() -> None:
    playout = Playout()
    playout.begin()
    playout.add("one two", [np.full(320, i, np.int16) for i in range(4)])
    playout.finish()
    assert int(playout.pull()[0]) == 0  # type: ignore[index]
    playout.pause()
    assert playout.pull() is None and playout.speaking
    playout.resume()
    assert [int(playout.pull()[0]) for _ in range(3)] == [1, 2, 3]  # type: ignore[index]


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
    assert int(playout.pull()[0]) == 9  # type: ignore[index]
    assert playout.frames_played == 1
