from __future__ import annotations

import base64

import pytest

from bridge import ids
from bridge.store.errors import InvalidCursor
from bridge.store.pagination import decode_cursor, encode_cursor, lex_range


def test_cursor_round_trips_and_is_opaque() -> None:
    last = ids.new_id(ids.AGENT)
    cursor = encode_cursor(last)
    assert last not in cursor
    assert decode_cursor(cursor, ids.AGENT) == last


@pytest.mark.parametrize(
    "cursor",
    [
        "not-base64-!!",
        base64.urlsafe_b64encode(b"c1:agt_nope").decode(),
        base64.urlsafe_b64encode(b"agt_01m84zwssjstbq0hmaebbk1prb").decode(),
        "",
        "\u00e9",
    ],
)
def test_foreign_cursors_are_refused(cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor, ids.AGENT)


def test_cursor_of_another_kind_is_refused() -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(encode_cursor(ids.new_id(ids.WEBHOOK)), ids.AGENT)


def test_range_is_open_without_bounds() -> None:
    bounds = lex_range(ids.CONVERSATION)
    assert (bounds.high, bounds.low) == ("+", "-")


def test_time_bounds_select_ids_by_their_time() -> None:
    bounds = lex_range(ids.CONVERSATION, since_ms=1000, until_ms=2000)
    inside = ids.new_id(ids.CONVERSATION, 1500)
    at_start = ids.new_id(ids.CONVERSATION, 1000)
    at_end = ids.new_id(ids.CONVERSATION, 2000)
    before = ids.new_id(ids.CONVERSATION, 999)
    low, high = bounds.low[1:], bounds.high[1:]
    assert bounds.low.startswith("[") and bounds.high.startswith("(")
    assert low <= inside < high
    assert low <= at_start < high
    assert not at_end < high
    assert not low <= before


def test_cursor_tightens_the_upper_bound_only() -> None:
    cursor_id = ids.new_id(ids.CONVERSATION, 1500)
    assert (
        lex_range(ids.CONVERSATION, after_cursor=cursor_id, until_ms=2000).high == "(" + cursor_id
    )
    later = ids.new_id(ids.CONVERSATION, 3000)
    bounded = lex_range(ids.CONVERSATION, after_cursor=later, until_ms=2000)
    assert bounded.high != "(" + later
