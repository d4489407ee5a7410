"""RTCP (RFC 3550 §6): sender and receiver reports, SDES CNAME and BYE, and the reception
statistics a receiver report carries (RFC 3550 appendix A.1, A.3 and A.8).

Sequence numbers and timestamps arrive here already unwrapped (see `rtp_packet.Unwrapper`), so
the statistics hold across wraparound; aiortp's interarrival jitter subtracted raw 32-bit
timestamps and read 268,435,456 at the first timestamp wrap, decaying for seconds.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

SR = 200
RR = 201
SDES = 202
BYE = 203
SDES_CNAME = 1
NTP_UNIX_OFFSET = 2_208_988_800
"""Seconds from 1900 (NTP's epoch) to 1970."""

_HEADER = struct.Struct("!BBH")
_SENDER_INFO = struct.Struct("!IIIII")
_BLOCK = struct.Struct("!IB3sIIII")
_MAX_LOST = (1 << 23) - 1
_MIN_LOST = -(1 << 23)
_MAX_DROPOUT = 3000
_MAX_MISORDER = 100


class MalformedRtcp(ValueError):
    pass


@dataclass(frozen=True)
class ReportBlock:
    ssrc: int
    fraction_lost: int
    """Lost since the previous report, in 1/256."""
    cumulative_lost: int
    highest_seq: int
    jitter: int
    """RTP clock ticks."""
    lsr: int
    dlsr: int
    """1/65536 s."""


@dataclass(frozen=True)
class SenderReport:
    ssrc: int
    ntp: int
    rtp_timestamp: int
    packets: int
    octets: int
    blocks: tuple[ReportBlock, ...]


@dataclass(frozen=True)
class ReceiverReport:
    ssrc: int
    blocks: tuple[ReportBlock, ...]


@dataclass(frozen=True)
class Goodbye:
    ssrcs: tuple[int, ...]


Report = SenderReport | ReceiverReport | Goodbye


def ntp_time(unix_time: float) -> int:
    """64-bit NTP timestamp (32.32 fixed point) of a Unix time."""
    return int((unix_time + NTP_UNIX_OFFSET) * (1 << 32)) & 0xFFFFFFFFFFFFFFFF


def ntp_middle(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp, the unit of LSR and round-trip arithmetic."""
    return (ntp >> 16) & 0xFFFFFFFF


def _packet(kind: int, count: int, body: bytes) -> bytes:
    return _HEADER.pack(0x80 | count, kind, len(body) // 4) + body


def _block(block: ReportBlock) -> bytes:
    lost = max(_MIN_LOST, min(_MAX_LOST, block.cumulative_lost)) & 0xFFFFFF
    return _BLOCK.pack(
        block.ssrc,
        block.fraction_lost,
        lost.to_bytes(3, "big"),
        block.highest_seq & 0xFFFFFFFF,
        block.jitter & 0xFFFFFFFF,
        block.lsr,
        block.dlsr,
    )


def build_sr(report: SenderReport) -> bytes:
    body = _SENDER_INFO.pack(
        report.ssrc,
        report.ntp >> 32,
        report.ntp & 0xFFFFFFFF,
        report.rtp_timestamp & 0xFFFFFFFF,
        report.packets & 0xFFFFFFFF,
    ) + struct.pack("!I", report.octets & 0xFFFFFFFF)
    return _packet(SR, len(report.blocks), body + b"".join(_block(b) for b in report.blocks))


def build_rr(report: ReceiverReport) -> bytes:
    body = struct.pack("!I", report.ssrc) + b"".join(_block(b) for b in report.blocks)
    return _packet(RR, len(report.blocks), body)


def build_sdes(ssrc: int, cname: str) -> bytes:
    text = cname.encode()[:255]
    chunk = struct.pack("!IBB", ssrc, SDES_CNAME, len(text)) + text
    # The item list ends with a null octet, then pads to a 32-bit boundary.
    chunk += b"\0" * (4 - len(chunk) % 4)
    return _packet(SDES, 1, chunk)


def build_bye(ssrc: int) -> bytes:
    return _packet(BYE, 1, struct.pack("!I", ssrc))


def _parse_block(data: bytes, at: int) -> ReportBlock:
    ssrc, fraction, lost, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(data, at)
    return ReportBlock(
        ssrc, fraction, int.from_bytes(lost, "big", signed=True), highest, jitter, lsr, dlsr
    )


def _parse_blocks(body: bytes, at: int, count: int) -> tuple[ReportBlock, ...]:
    if len(body) < at + count * _BLOCK.size:
        raise MalformedRtcp("report blocks exceed the packet")
    return tuple(_parse_block(body, at + i * _BLOCK.size) for i in range(count))


def parse_compound(data: bytes) -> list[Report]:
    """The reports and BYEs in a compound packet; other packet types (SDES, APP, feedback) are
    skipped."""
    reports: list[Report] = []
    at = 0
    while at < len(data):
        if len(data) < at + _HEADER.size:
            raise MalformedRtcp("truncated RTCP header")
        first, kind, words = _HEADER.unpack_from(data, at)
        if first >> 6 != 2:
            raise MalformedRtcp(f"RTCP version {first >> 6}")
        end = at + 4 + 4 * words
        if end > len(data):
            raise MalformedRtcp("RTCP length exceeds the datagram")
        body = data[at + 4 : end]
        if first & 0x20 and body:
            body = body[: len(body) - body[-1]]
        count = first & 0x1F
        if kind == SR:
            if len(body) < _SENDER_INFO.size + 4:
                raise MalformedRtcp("short sender report")
            ssrc, high, low, rtp_ts, packets = _SENDER_INFO.unpack_from(body)
            (octets,) = struct.unpack_from("!I", body, _SENDER_INFO.size)
            blocks = _parse_blocks(body, _SENDER_INFO.size + 4, count)
            reports.append(SenderReport(ssrc, (high << 32) | low, rtp_ts, packets, octets, blocks))
        elif kind == RR:
            if len(body) < 4:
                raise MalformedRtcp("short receiver report")
            (ssrc,) = struct.unpack_from("!I", body)
            reports.append(ReceiverReport(ssrc, _parse_blocks(body, 4, count)))
        elif kind == BYE:
            if len(body) < 4 * count:
                raise MalformedRtcp("short BYE")
            reports.append(Goodbye(struct.unpack_from(f"!{count}I", body)))
        at = end
    return reports


class ReceptionStats:
    """One remote source's packets as RFC 3550 counts them, for receiver report blocks."""

    def __init__(self, clock_rate: int) -> None:
        self.clock_rate = clock_rate
        self.received = 0
        self.octets = 0
        self.duplicates = 0
        self._base: int | None = None
        self._highest = 0
        self._bad_seq: int | None = None
        self._expected_prior = 0
        self._received_prior = 0
        self._transit: float | None = None
        self._jitter = 0.0
        self._seen: deque[int] = deque(maxlen=256)
        self._seen_set: set[int] = set()
        self._last_sr: int | None = None
        self._last_sr_at = 0.0

    def packet(self, seq: int, timestamp: int | None, payload_bytes: int, arrival: float) -> None:
        """A packet, with its unwrapped sequence number and timestamp, arrival in seconds.

        A telephone event passes no timestamp: its packets all carry the event's start, so
        they would read as jitter.
        """
        if seq in self._seen_set:
            self.duplicates += 1
            return
        if self._base is None:
            self._restart(seq)
        else:
            delta = seq - self._highest
            if 0 < delta <= _MAX_DROPOUT:
                self._highest = seq
            elif not -_MAX_MISORDER <= delta <= 0:
                # A big jump: the source restarted its sequence only if the next packet
                # follows on from this one (RFC 3550 A.1); until then it is a stray.
                if seq != self._bad_seq:
                    self._bad_seq = seq + 1
                    return
                self._restart(seq)
        self._remember(seq)
        self.received += 1
        self.octets += payload_bytes
        if timestamp is None:
            return
        transit = arrival * self.clock_rate - timestamp
        if self._transit is not None:
            self._jitter += (abs(transit - self._transit) - self._jitter) / 16
        self._transit = transit

    def _restart(self, seq: int) -> None:
        self._base = self._highest = seq
        self._bad_seq = None
        self._expected_prior = self._received_prior = self.received = 0
        self._transit = None

    def sender_report(self, ntp: int, arrival: float) -> None:
        self._last_sr = ntp_middle(ntp)
        self._last_sr_at = arrival

    @property
    def expected(self) -> int:
        return 0 if self._base is None else self._highest - self._base + 1

    @property
    def lost(self) -> int:
        return self.expected - self.received

    @property
    def jitter(self) -> float:
        """Interarrival jitter in RTP clock ticks."""
        return self._jitter

    def block(self, ssrc: int, now: float) -> ReportBlock:
        """A report block; `now` is on the clock the arrival times were given in."""
        expected = self.expected
        expected_interval = expected - self._expected_prior
        received_interval = self.received - self._received_prior
        self._expected_prior, self._received_prior = expected, self.received
        lost_interval = expected_interval - received_interval
        fraction = 0
        if expected_interval > 0 and lost_interval > 0:
            fraction = (lost_interval << 8) // expected_interval
        lsr = dlsr = 0
        if self._last_sr is not None:
            lsr = self._last_sr
            dlsr = int((now - self._last_sr_at) * 65536) & 0xFFFFFFFF
        return ReportBlock(ssrc, fraction, self.lost, self._highest, int(self._jitter), lsr, dlsr)

    def _remember(self, seq: int) -> None:
        if len(self._seen) == self._seen.maxlen:
            self._seen_set.discard(self._seen[0])
        self._seen.append(seq)
        self._seen_set.add(seq)


def round_trip_s(block: ReportBlock, now_ntp: int) -> float | None:
    """RFC 3550 §6.4.1: the round trip from a report block about our stream, or None when the
    peer has not received a sender report from us yet."""
    if block.lsr == 0:
        return None
    units = (ntp_middle(now_ntp) - block.lsr - block.dlsr) & 0xFFFFFFFF
    if units > 0x80000000:
        return None
    return units / 65536
