from __future__ import annotations

import random
import struct

import pytest

from bridge.sip.rtp_packet import (
    MalformedPacket,
    SendTimeline,
    Unwrapper,
    build_packet,
    is_rtcp,
    parse_packet,
)


def test_build_then_parse_round_trips() -> None:
    data = build_packet(8, 65535, 0xFFFFFFFF, 0xDEADBEEF, b"\xd5" * 160, marker=True)
    assert len(data) == 12 + 160
    packet = parse_packet(data)
    assert (packet.payload_type, packet.sequence, packet.timestamp, packet.ssrc) == (
        8,
        65535,
        0xFFFFFFFF,
        0xDEADBEEF,
    )
    assert packet.marker and packet.payload == b"\xd5" * 160


def test_parse_skips_csrcs_extension_and_padding() -> None:
    header = struct.pack("!BBHII", 0x80 | 0x20 | 0x10 | 2, 0, 7, 1000, 42)
    csrcs = struct.pack("!II", 1, 2)
    extension = struct.pack("!HH", 0xBEDE, 1) + b"\x10\xff\x00\x00"
    payload = b"\x01\x02\x03"
    padding = b"\x00\x00\x03"
    packet = parse_packet(header + csrcs + extension + payload + padding)
    assert packet.payload == payload
    assert packet.sequence == 7 and packet.ssrc == 42 and not packet.marker


@pytest.mark.parametrize(
    "data",
    [
        b"\x80\x00\x00",
        b"\x40" + bytes(11),
        struct.pack("!BBHII", 0x90, 0, 1, 1, 1) + b"\xbe\xde",
        struct.pack("!BBHII", 0x8F, 0, 1, 1, 1) + bytes(8),
        struct.pack("!BBHII", 0xA0, 0, 1, 1, 1) + b"\x01\x00",
        struct.pack("!BBHII", 0xA0, 0, 1, 1, 1) + b"\x01\x09",
    ],
    ids=["short", "version 1", "truncated extension", "csrcs beyond end", "zero pad", "big pad"],
)
def test_malformed_packets_are_rejected(data: bytes) -> None:
    with pytest.raises(MalformedPacket):
        parse_packet(data)


def test_rtcp_is_told_from_rtp_by_its_packet_type() -> None:
    assert is_rtcp(bytes([0x80, 200]) + bytes(6))
    assert is_rtcp(bytes([0x81, 201]) + bytes(30))
    assert not is_rtcp(build_packet(0, 1, 1, 1, b"", marker=True))
    assert not is_rtcp(build_packet(101, 1, 1, 1, b"", marker=False))


def test_unwrapper_orders_values_across_wraparound_with_reordering() -> None:
    seqs = Unwrapper(16)
    wire = [65533, 65535, 65534, 0, 2, 1, 3]
    assert [seqs.unwrap(s) for s in wire] == [65533, 65535, 65534, 65536, 65538, 65537, 65539]
    stamps = Unwrapper(32)
    assert stamps.unwrap(0xFFFFFF60) == 0xFFFFFF60
    assert stamps.unwrap(0x00000040) == 0x1_0000_0040
    assert stamps.unwrap(0xFFFFFFA0) == 0xFFFFFFA0
    stamps.reset()
    assert stamps.unwrap(5) == 5


def test_unwrapper_goes_backwards_below_the_first_value() -> None:
    seqs = Unwrapper(16)
    assert seqs.unwrap(1) == 1
    assert seqs.unwrap(65535) == -1


def test_send_timeline_does_not_drift_over_a_ten_minute_call() -> None:
    rnd = random.Random(4)
    timeline = SendTimeline(start=0xFFFF0000, frame_ticks=160, frame_s=0.02)
    frames = 10 * 60 * 50
    skipped_any = False
    for k in range(frames):
        # The clock wakes up to 8 ms late, now and then; ticks are absolute so it never drifts.
        now = 1000.0 + k * 0.02 + rnd.choice((0.0, 0.0005, 0.002, 0.008))
        timestamp, skipped = timeline.next(now)
        skipped_any |= skipped
        assert timestamp == (0xFFFF0000 + k * 160) % (1 << 32)
    assert not skipped_any
    assert timeline.upcoming() == (0xFFFF0000 + frames * 160) % (1 << 32)


def test_send_timeline_jumps_over_frames_that_were_not_sent() -> None:
    timeline = SendTimeline(start=1000, frame_ticks=160, frame_s=0.02)
    assert timeline.next(10.00) == (1000, False)
    assert timeline.next(10.02) == (1160, False)
    # A 100 ms stall: four frame slots went by unsent.
    assert timeline.next(10.14) == (1000 + 7 * 160, True)
    assert timeline.next(10.16) == (1000 + 8 * 160, False)


def test_send_timeline_restarts_when_the_sender_ran_ahead_of_real_time() -> None:
    timeline = SendTimeline(start=0, frame_ticks=160, frame_s=0.02)
    for _ in range(200):
        timeline.next(5.0)
    timestamp, skipped = timeline.next(5.1)
    assert timestamp == 200 * 160 and not skipped
    assert timeline.next(5.12) == (201 * 160, False)


def test_send_timeline_places_an_instant_between_frames() -> None:
    timeline = SendTimeline(start=0, frame_ticks=160, frame_s=0.02)
    timeline.next(1.0)
    assert timeline.at(1.01) == 80
    assert timeline.at(1.02) == 160
