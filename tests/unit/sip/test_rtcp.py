from __future__ import annotations

import struct

import pytest

from bridge.sip import rtcp
from bridge.sip.rtp_packet import Unwrapper

BLOCK = rtcp.ReportBlock(
    ssrc=0xCAFEBABE,
    fraction_lost=64,
    cumulative_lost=-3,
    highest_seq=0x1_0005,
    jitter=37,
    lsr=0x12345678,
    dlsr=0x00020000,
)


def test_compound_sender_report_sdes_and_bye_round_trip() -> None:
    sr = rtcp.SenderReport(0x11111111, 0xE000_0000_8000_0000, 123456, 500, 80_000, (BLOCK,))
    data = rtcp.build_sr(sr) + rtcp.build_sdes(0x11111111, "bot@host") + rtcp.build_bye(7)
    assert len(data) % 4 == 0
    assert rtcp.parse_compound(data) == [sr, rtcp.Goodbye((7,))]


def test_receiver_report_round_trips_with_and_without_blocks() -> None:
    for blocks in ((), (BLOCK, BLOCK)):
        rr = rtcp.ReceiverReport(0x22222222, blocks)
        assert rtcp.parse_compound(rtcp.build_rr(rr)) == [rr]


def test_cumulative_loss_is_a_signed_24_bit_field() -> None:
    huge = rtcp.ReportBlock(1, 0, 10**9, 0, 0, 0, 0)
    rr = rtcp.build_rr(rtcp.ReceiverReport(2, (huge,)))
    (parsed,) = rtcp.parse_compound(rr)
    assert isinstance(parsed, rtcp.ReceiverReport)
    assert parsed.blocks[0].cumulative_lost == (1 << 23) - 1
    negative = rtcp.build_rr(rtcp.ReceiverReport(2, (BLOCK,)))
    assert negative[8 + 5 : 8 + 8] == b"\xff\xff\xfd"


def test_sdes_items_are_padded_to_a_word() -> None:
    for name in ("a", "ab", "abc", "abcd", "voicebridge@example"):
        packet = rtcp.build_sdes(5, name)
        assert len(packet) % 4 == 0
        assert packet[8] == rtcp.SDES_CNAME and packet[10 : 10 + len(name)] == name.encode()
        assert packet[10 + len(name)] == 0


def test_unknown_packet_types_and_padding_are_skipped() -> None:
    app = struct.pack("!BBHI", 0x80, 204, 2, 9) + b"name"
    padded_rr = struct.pack("!BBHI", 0xA0, rtcp.RR, 2, 3) + b"\x00\x00\x00\x04"
    assert rtcp.parse_compound(app + padded_rr) == [rtcp.ReceiverReport(3, ())]


@pytest.mark.parametrize(
    "data",
    [
        b"\x80\xc8",
        struct.pack("!BBH", 0x40, rtcp.RR, 1) + bytes(4),
        struct.pack("!BBH", 0x80, rtcp.RR, 9) + bytes(4),
        struct.pack("!BBH", 0x81, rtcp.RR, 1) + bytes(4),
        struct.pack("!BBH", 0x80, rtcp.SR, 1) + bytes(4),
        struct.pack("!BBH", 0x82, rtcp.BYE, 1) + bytes(4),
    ],
    ids=["short", "version 1", "length past end", "block missing", "short SR", "short BYE"],
)
def test_malformed_rtcp_is_rejected(data: bytes) -> None:
    with pytest.raises(rtcp.MalformedRtcp):
        rtcp.parse_compound(data)


def test_ntp_time_and_round_trip() -> None:
    assert rtcp.ntp_time(0.0) >> 32 == rtcp.NTP_UNIX_OFFSET
    assert rtcp.ntp_time(0.5) & 0xFFFFFFFF == 1 << 31
    sent = rtcp.ntp_time(1000.0)
    # The peer held our SR for 0.25 s and we read its RR 0.4 s after sending the SR.
    block = rtcp.ReportBlock(1, 0, 0, 0, 0, rtcp.ntp_middle(sent), int(0.25 * 65536))
    rtt = rtcp.round_trip_s(block, rtcp.ntp_time(1000.4))
    assert rtt == pytest.approx(0.15, abs=1e-4)
    assert rtcp.round_trip_s(rtcp.ReportBlock(1, 0, 0, 0, 0, 0, 0), sent) is None


def feed(
    stats: rtcp.ReceptionStats,
    wire: list[tuple[int, int, float]],
) -> None:
    seqs, stamps = Unwrapper(16), Unwrapper(32)
    for seq, ts, at in wire:
        stats.packet(seqs.unwrap(seq), stamps.unwrap(ts), 160, at)


def test_loss_fraction_and_duplicates() -> None:
    stats = rtcp.ReceptionStats(8000)
    wire = [(s % 65536, s * 160, s * 0.02) for s in range(65530, 65540) if s != 65535]
    wire.append(wire[3])
    feed(stats, wire)
    assert stats.expected == 10
    assert stats.received == 9 and stats.duplicates == 1
    assert stats.lost == 1
    block = stats.block(0xABC, now=1.0)
    assert block.fraction_lost == 256 // 10
    assert block.cumulative_lost == 1
    assert block.highest_seq == 65539
    assert stats.block(0xABC, now=2.0).fraction_lost == 0


def test_jitter_stays_zero_across_timestamp_wraparound() -> None:
    stats = rtcp.ReceptionStats(8000)
    start = (1 << 32) - 5 * 160
    feed(stats, [(n, (start + n * 160) % (1 << 32), n * 0.02) for n in range(20)])
    # aiortp's statistics read 268,435,456 here.
    assert stats.jitter < 1


def test_jitter_measures_arrival_variation() -> None:
    stats = rtcp.ReceptionStats(8000)
    # Every other packet 4 ms late: |D| is 32 ticks each time, so jitter tends to 32.
    feed(stats, [(n, n * 160, n * 0.02 + (0.004 if n % 2 else 0.0)) for n in range(400)])
    assert stats.jitter == pytest.approx(32, abs=0.5)


def test_events_count_but_do_not_make_jitter() -> None:
    stats = rtcp.ReceptionStats(8000)
    for n in range(10):
        stats.packet(n, None, 4, n * 0.02)
    assert stats.received == 10 and stats.jitter == 0


def test_a_restarted_sequence_is_taken_after_two_packets_in_a_row() -> None:
    stats = rtcp.ReceptionStats(8000)
    for n in range(10):
        stats.packet(n, n * 160, 160, n * 0.02)
    stats.packet(40_000, 0, 160, 0.3)
    assert stats.received == 10 and stats.expected == 10
    stats.packet(40_001, 160, 160, 0.32)
    assert stats.received == 1 and stats.expected == 1
    stats.packet(40_002, 320, 160, 0.34)
    assert stats.received == 2 and stats.lost == 0


def test_report_block_carries_the_last_sender_report() -> None:
    stats = rtcp.ReceptionStats(8000)
    stats.packet(1, 0, 160, 0.0)
    stats.sender_report(0x0000_1234_5678_0000, arrival=10.0)
    block = stats.block(9, now=10.5)
    assert block.lsr == 0x1234_5678
    assert block.dlsr == 32768
