from __future__ import annotations

import pytest

from bridge.sip.dtmf import (
    Digit,
    DtmfReceiver,
    DtmfSender,
    TelephoneEvent,
    build_event,
    parse_event,
)


def event(digit: int, duration: int, end: bool = False) -> bytes:
    return build_event(TelephoneEvent(digit, end, 10, duration))


def test_event_payload_round_trips() -> None:
    payload = build_event(TelephoneEvent(11, True, 10, 1280))
    assert payload == b"\x0b\x8a\x05\x00"
    assert parse_event(payload) == TelephoneEvent(11, True, 10, 1280)
    with pytest.raises(ValueError):
        parse_event(b"\x01\x02")


def test_three_end_packets_and_repeats_make_one_digit_without_a_marker() -> None:
    receiver = DtmfReceiver()
    out: list[Digit] = []
    # No marker bit anywhere: the receiver never looks at it.
    for at, duration in enumerate((160, 320, 320, 480)):
        out += receiver.packet(8000, event(5, duration), now=at * 0.02)
    for i in range(3):
        out += receiver.packet(8000, event(5, 640, end=True), now=0.1 + i * 0.02)
    assert out == [Digit("5", 80)]
    # A late straggler of the finished digit changes nothing.
    assert receiver.packet(8000, event(5, 480), now=0.2) == []


def test_two_digits_in_a_row_are_told_apart_by_their_timestamps() -> None:
    receiver = DtmfReceiver()
    out: list[Digit] = []
    for ts, digit in ((1000, 1), (3000, 1), (5000, 11)):
        out += receiver.packet(ts, event(digit, 160), now=0.0)
        out += receiver.packet(ts, event(digit, 800, end=True), now=0.0)
    assert out == [Digit("1", 100), Digit("1", 100), Digit("#", 100)]


def test_a_digit_whose_end_packets_were_all_lost() -> None:
    receiver = DtmfReceiver(timeout_s=0.5)
    assert receiver.packet(1000, event(7, 160), now=0.0) == []
    assert receiver.packet(1000, event(7, 480), now=0.04) == []
    # The next event starts: the previous one is over.
    assert receiver.packet(4000, event(8, 160), now=0.5) == [Digit("7", 60)]
    # Or its packets simply stop coming.
    assert receiver.poll(now=0.9) == []
    assert receiver.poll(now=1.1) == [Digit("8", 20)]
    assert receiver.poll(now=2.0) == []


def test_an_end_packet_alone_is_a_digit() -> None:
    receiver = DtmfReceiver()
    assert receiver.packet(1000, event(0, 800, end=True), now=0.0) == [Digit("0", 100)]


def test_events_that_are_not_digits_and_older_events_are_ignored() -> None:
    receiver = DtmfReceiver()
    assert receiver.packet(1000, event(16, 160, end=True), now=0.0) == []
    assert receiver.packet(5000, event(3, 160, end=True), now=0.0) == [Digit("3", 20)]
    assert receiver.packet(1000, event(4, 160, end=True), now=0.0) == []


def test_a_sent_digit_marks_its_first_packet_and_repeats_its_end_three_times() -> None:
    sender = DtmfSender(clock_rate=8000, frame_ticks=160)
    sender.queue("9", duration_ms=100)
    assert sender.busy
    packets = []
    timestamp = 50_000
    while (packet := sender.tick(timestamp)) is not None:
        packets.append(packet)
        timestamp += 160
    assert not sender.busy
    assert [p.marker for p in packets] == [True] + [False] * 6
    assert {p.timestamp for p in packets} == {50_000}
    events = [parse_event(p.payload) for p in packets]
    assert [e.duration for e in events] == [160, 320, 480, 640, 800, 800, 800]
    assert [e.end for e in events] == [False] * 4 + [True] * 3
    assert {e.event for e in events} == {9}


def test_queued_digits_follow_each_other_with_their_own_timestamps() -> None:
    sender = DtmfSender()
    sender.queue("1", 40)
    sender.queue("a", 40)
    receiver = DtmfReceiver()
    digits: list[Digit] = []
    timestamp = 0
    while (packet := sender.tick(timestamp)) is not None:
        digits += receiver.packet(packet.timestamp, packet.payload, now=0.0)
        timestamp += 160
    assert digits == [Digit("1", 40), Digit("A", 40)]


def test_sending_checks_digits_and_bounds_durations() -> None:
    sender = DtmfSender()
    for bad in ("x", "12", ""):
        with pytest.raises(ValueError):
            sender.queue(bad, 100)
    sender.queue("#", 5)
    sender.queue("*", 60_000)
    ends = {}
    timestamp = 0
    while (packet := sender.tick(timestamp)) is not None:
        parsed = parse_event(packet.payload)
        if parsed.end:
            ends[parsed.event] = parsed.duration
        timestamp += 160
    # At least 40 ms; at most what the 16-bit duration field holds.
    assert ends == {11: 320, 10: 0xFFFF}
