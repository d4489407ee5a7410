"""A call's RTP media: one port pair, audio and DTMF both ways, RTCP, and the media timeout.

The call drives it from the process's 20 ms `FrameClock`: each tick it calls `send_frame` with
the agent's next frame (silence when it is quiet) and `pull_frame` for the caller's. Nothing
here runs a timer per packet; two slow timers per call remain (RTCP every ~5 s, a 1 s check for
the media timeout and for a DTMF digit whose end never came).

Why not aiortp 0.8.0 (measured; bench/README.md "RTP media" has the figures): its per-packet
cost was fine (12 µs to send, 11 µs to receive), but its paced sending and adaptive playout
each run their own 20 ms timer per session instead of our clock, its adaptive playout
concealed up to 18 % of frames when the peer's clock phase was unlucky, one stray packet from
any address re-latched the media, DTMF out went out as a burst that receivers merge, RTCP
jitter broke at timestamp wraparound, G.722 timestamps ran at 16 kHz instead of RFC 3551's
8 kHz, and there was no media timeout. What it does well is small (packet layouts), so this
layer is ours and aiortp is not a dependency.

Symmetric RTP (RFC 4961): media goes to the address SDP gave until packets of the negotiated
payload types arrive; then it goes to where they come from, and packets from anywhere else are
dropped, so a stray or injected stream cannot take the call over. Only when the latched source
has been silent for `relatch_after_s` (a NAT rebinding) may another source take its place.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from bridge.sip import rtcp
from bridge.sip.dtmf import Digit, DtmfReceiver, DtmfSender
from bridge.sip.jitter import JitterBuffer, JitterConfig
from bridge.sip.offer_answer import Codec, NegotiatedMedia
from bridge.sip.ports import PortPair, RtpPorts
from bridge.sip.rtp_codec import Decoder, Encoder, make_decoder, make_encoder, payload_ticks
from bridge.sip.rtp_packet import (
    MalformedPacket,
    SendTimeline,
    Unwrapper,
    build_packet,
    is_rtcp,
    parse_packet,
)
from bridge.sip.rtp_plc import Concealer
from media.frames import FRAME_MS, PIPELINE_RATE, Pcm16, samples_per_frame

log = logging.getLogger(__name__)

Address = tuple[str, int]

FRAME_S = FRAME_MS / 1000
PIPELINE_SAMPLES = samples_per_frame(PIPELINE_RATE)
QUIET_PEAK = 300
"""A frame whose samples all stay below this (about -40 dBFS) is quiet enough to drop."""


class SendLateness(Collector):
    """How late each RTP packet left (`send_frame` done) against its call's 20 ms grid, as a
    Prometheus histogram of every call in the process.

    A call's grid is its send timeline's schedule, placed at the earliest any of its packets
    has left, so this is the spread a receiver sees from our side: the frame clock's wake-up
    lateness beyond its best, and the work of the tick that ran before the send. Counted in a
    plain list rather than a `prometheus_client.Histogram` (a lock and a bucket search in
    Python per observation): a few hundred calls send 10,000 packets a second from the one
    event-loop thread. Register it on a registry to expose it.
    """

    BOUNDS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.02, 0.05, 0.1)

    def __init__(self) -> None:
        self.counts = [0] * (len(self.BOUNDS) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.BOUNDS, seconds)] += 1
        self.total += seconds

    def collect(self) -> Iterator[Metric]:
        cumulative, buckets = 0, []
        for bound, count in zip((*map(str, self.BOUNDS), "+Inf"), self.counts, strict=True):
            cumulative += count
            buckets.append((bound, float(cumulative)))
        yield HistogramMetricFamily(
            "voicebridge_rtp_send_lateness_seconds",
            "How late RTP packets left against their call's 20 ms grid.",
            buckets=buckets,
            sum_value=self.total,
        )


SEND_LATENESS = SendLateness()


@dataclass(frozen=True)
class MediaConfig:
    inactivity_timeout_s: float = 30.0
    rtcp_interval_s: float = 5.0
    relatch_after_s: float = 2.0
    jitter_start_delay_ms: float = 40.0
    jitter_max_delay_ms: float = 300.0
    cname: str = field(default_factory=lambda: f"voicebridge@{socket.gethostname()}")


@dataclass(frozen=True)
class MediaStats:
    packets_sent: int
    octets_sent: int
    packets_received: int
    octets_received: int
    packets_lost: int
    """RFC 3550's cumulative count: expected minus received."""
    jitter_ms: float
    """Interarrival jitter of what we receive (RFC 3550 A.8)."""
    duplicates: int
    late: int
    """Packets that came after their audio had been played (or concealed)."""
    concealed_frames: int
    jitter_buffer_ms: float
    remote_fraction_lost: float | None
    """From the peer's last report about our stream: share lost since its previous report."""
    remote_packets_lost: int | None
    remote_jitter_ms: float | None
    round_trip_ms: float | None
    dropped_foreign: int
    """Packets from addresses other than the latched one, dropped."""


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes, Address], None]) -> None:
        self._on_datagram = on_datagram

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self._on_datagram(data, (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a peer not listening yet: RTP is lossy by nature.
        log.debug("RTP socket error: %s", exc)


class _Samples:
    """Decoded audio waiting to be played, at the codec's rate."""

    def __init__(self) -> None:
        self._chunks: list[Pcm16] = []

    def push(self, samples: Pcm16) -> None:
        if samples.size:
            self._chunks.append(samples)

    def take(self, count: int) -> Pcm16:
        """`count` samples, padded with silence if fewer are waiting."""
        chunks = self._chunks
        if len(chunks) == 1 and chunks[0].size == count:
            self._chunks = []
            return chunks[0]
        joined = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
        if joined.size < count:
            joined = np.concatenate((joined, np.zeros(count - joined.size, dtype=np.int16)))
        self._chunks = [joined[count:]] if joined.size > count else []
        return joined[:count]

    def clear(self) -> None:
        self._chunks = []


def _squeeze(two_frames: Pcm16, rate: int) -> Pcm16:
    """Two frames played as one, for a shrinking jitter buffer: the first half of the first
    and the second half of the second, cross-faded over 4 ms at the seam."""
    frame = two_frames.size // 2
    half, fade = frame // 2, rate * 4 // 1000
    first, second = two_frames[:frame], two_frames[frame:]
    out = np.concatenate((first[:half], second[half:]))
    ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
    seam = slice(half - fade // 2, half - fade // 2 + fade)
    mixed = first[seam] * (1 - ramp) + second[seam] * ramp
    out[seam] = np.rint(mixed).astype(np.int16)
    return out


class CallMedia:
    def __init__(self, config: MediaConfig | None = None) -> None:
        self.config = config or MediaConfig()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ports: RtpPorts | None = None
        self._pair: PortPair | None = None
        self._rtp: asyncio.DatagramTransport | None = None
        self._rtcp: asyncio.DatagramTransport | None = None
        self._media: NegotiatedMedia | None = None
        self._codec: Codec | None = None
        self._closed = False
        self._on_dtmf: Callable[[str, int], None] | None = None
        self._on_inactive: Callable[[], None] | None = None
        self._housekeeping_timer: asyncio.TimerHandle | None = None
        self._rtcp_timer: asyncio.TimerHandle | None = None

        # Sending
        self.ssrc = secrets.randbits(32)
        self._seq = secrets.randbits(16)
        self._timeline = SendTimeline(secrets.randbits(32), 160, FRAME_S)
        self._talkspurt = True
        self._encoder: Encoder | None = None
        self._dtmf_out = DtmfSender()
        self._pending = bytearray()
        """Encoded audio not yet sent: packets are `ptime` long, frames 20 ms."""
        self._pending_ts = 0
        self._packets_sent = 0
        self._octets_sent = 0
        self._sent_since_report = False
        self._earliest = float("inf")
        """The earliest any packet left against its slot on the timeline (seconds)."""

        # Receiving
        self._target: Address | None = None
        self._latched: Address | None = None
        self._rtcp_target: Address | None = None
        self._rtcp_latched = False
        self._remote_ssrc: int | None = None
        self._seqs = Unwrapper(16)
        self._stamps = Unwrapper(32)
        self._stats = rtcp.ReceptionStats(8_000)
        self._jitter = JitterBuffer()
        self._decoder: Decoder | None = None
        self._concealer = Concealer(8_000)
        self._samples = _Samples()
        self._dtmf_in = DtmfReceiver()
        self._last_rtp_at = 0.0
        self._inactive_fired = False
        self._quiet = True
        self._stalled = False
        self._concealed_frames = 0
        self._dropped_foreign = 0
        self._remote_block: rtcp.ReportBlock | None = None
        self._round_trip: float | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self, local_host: str, ports: RtpPorts) -> int:
        """Bind a port pair on `local_host`; the RTP port, for our SDP."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        pair = ports.bind(local_host)
        self._ports, self._pair = ports, pair
        try:
            self._rtp, _ = await loop.create_datagram_endpoint(
                lambda: _Endpoint(self._rtp_datagram), sock=pair.rtp
            )
            self._rtcp, _ = await loop.create_datagram_endpoint(
                lambda: _Endpoint(self._rtcp_datagram), sock=pair.rtcp
            )
        except BaseException:
            if self._rtp is not None:
                self._rtp.close()
            self._release()
            raise
        self._last_rtp_at = loop.time()
        self._housekeeping()
        self._schedule_rtcp()
        return pair.port

    @property
    def local_port(self) -> int:
        if self._pair is None:
            raise RuntimeError("media not open")
        return self._pair.port

    def update(self, media: NegotiatedMedia) -> None:
        """The negotiated media, first or changed by a re-INVITE/UPDATE."""
        old = self._media
        if old is None or (old.remote_rtp, old.remote_rtcp) != (
            media.remote_rtp,
            media.remote_rtcp,
        ):
            self._target = media.remote_rtp
            self._latched = None
            self._rtcp_latched = False
            self._rtcp_target = media.remote_rtcp or (
                None if media.remote_rtp is None else (media.remote_rtp[0], media.remote_rtp[1] + 1)
            )
        codec = media.codec
        if codec != self._codec:
            self._codec = codec
            self._encoder = make_encoder(codec)
            self._decoder = make_decoder(codec)
            self._concealer = Concealer(codec.sample_rate)
            self._stats = rtcp.ReceptionStats(codec.clock_rate)
            frame_ticks = codec.clock_rate * FRAME_MS // 1000
            self._jitter = JitterBuffer(
                JitterConfig(
                    clock_rate=codec.clock_rate,
                    frame_ticks=frame_ticks,
                    start_delay_ms=self.config.jitter_start_delay_ms,
                    max_delay_ms=self.config.jitter_max_delay_ms,
                )
            )
            # telephone-event runs on the audio's RTP clock (8 kHz for all our codecs).
            self._dtmf_out = DtmfSender(codec.clock_rate, frame_ticks)
            self._timeline = SendTimeline(self._timeline.upcoming(), frame_ticks, FRAME_S)
            self._earliest = float("inf")
            self._dtmf_in = DtmfReceiver(codec.clock_rate)
            self._samples.clear()
            self._pending.clear()
        if media.receive and (old is None or not old.receive) and self._loop is not None:
            # Coming off hold: the peer gets a whole timeout to resume sending.
            self._last_rtp_at = self._loop.time()
        self._media = media

    def on_dtmf(self, callback: Callable[[str, int], None]) -> None:
        """`callback(digit, duration_ms)` once per digit received (RFC 4733)."""
        self._on_dtmf = callback

    def on_inactive(self, callback: Callable[[], None]) -> None:
        """`callback()` once when no RTP has come for the inactivity timeout while we expect
        some (not while our direction is sendonly or inactive)."""
        self._on_inactive = callback

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for timer in (self._housekeeping_timer, self._rtcp_timer):
            if timer is not None:
                timer.cancel()
        if self._rtcp is not None and self._rtcp_target is not None:
            self._rtcp.sendto(self._report() + rtcp.build_bye(self.ssrc), self._rtcp_target)
        for transport in (self._rtp, self._rtcp):
            if transport is not None:
                transport.close()
        # Let the transports' connection_lost run before the ports go back to the pool.
        await asyncio.sleep(0)
        self._release()

    def _release(self) -> None:
        if self._pair is not None and self._ports is not None:
            for sock in (self._pair.rtp, self._pair.rtcp):
                sock.close()
            self._ports.release(self._pair.port)
            self._pair = None

    # -- sending ---------------------------------------------------------------------------

    def send_frame(self, frame: Pcm16) -> None:
        """Send one 20 ms frame of 16 kHz audio now (or a DTMF packet in its place)."""
        media, encoder = self._media, self._encoder
        if (
            self._closed
            or media is None
            or encoder is None
            or self._rtp is None
            or self._target is None
            or not media.send
        ):
            return
        if frame.size != PIPELINE_SAMPLES:
            raise ValueError(f"a frame is {PIPELINE_SAMPLES} samples, not {frame.size}")
        timestamp, skipped = self._timeline.next(self._now())
        if skipped:
            self._talkspurt = True
            self._pending.clear()
        if self._dtmf_out.busy and media.telephone_event_pt is not None:
            event = self._dtmf_out.tick(timestamp)
            assert event is not None
            self._pending.clear()
            self._talkspurt = True
            self._send(media.telephone_event_pt, event.timestamp, event.payload, event.marker)
            self._sent_at()
            return
        payload = encoder.encode(frame)
        if not self._pending:
            self._pending_ts = timestamp
        self._pending += payload
        # Every codec we speak codes a fixed number of bytes per RTP clock tick (G.711 and G.722
        # alike: 8 a millisecond), so a packet of any ptime is a slice of the encoded stream:
        # 10 ms packets go two a tick, 30 ms ones on alternate ticks, and so on.
        size = len(payload) * media.ptime // FRAME_MS
        ticks = media.codec.clock_rate * media.ptime // 1000
        while len(self._pending) >= size:
            packet = bytes(self._pending[:size])
            del self._pending[:size]
            self._send(media.payload_type, self._pending_ts, packet, self._talkspurt)
            self._pending_ts = (self._pending_ts + ticks) & 0xFFFFFFFF
            self._talkspurt = False
            self._sent_at()

    def send_dtmf(self, digit: str, duration_ms: int = 160) -> None:
        """Queue a digit; it goes out over the next `send_frame` ticks, in place of audio."""
        if self._media is None or self._media.telephone_event_pt is None:
            raise RuntimeError("the peer did not negotiate telephone-event")
        self._dtmf_out.queue(digit, duration_ms)

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _sent_at(self) -> None:
        late = self._now() - self._timeline.due
        if late < self._earliest:
            self._earliest = late
        SEND_LATENESS.observe(late - self._earliest)

    def _send(self, payload_type: int, timestamp: int, payload: bytes, marker: bool) -> None:
        assert self._rtp is not None and self._target is not None
        self._rtp.sendto(
            build_packet(payload_type, self._seq, timestamp, self.ssrc, payload, marker),
            self._target,
        )
        self._seq = (self._seq + 1) & 0xFFFF
        self._packets_sent += 1
        self._octets_sent += len(payload)
        self._sent_since_report = True

    # -- receiving -------------------------------------------------------------------------

    def pull_frame(self) -> Pcm16 | None:
        """The caller's next 20 ms at 16 kHz: audio, a concealment frame for a short loss,
        or None when there is nothing to play (no stream yet, a pause, hold)."""
        media, codec, decoder = self._media, self._codec, self._decoder
        if self._closed or media is None or codec is None or decoder is None:
            return None
        now = self._now()
        self._poll_dtmf(now)
        if not media.receive:
            return None
        pull = self._jitter.pull(now, self._quiet)
        if pull is None:
            return None
        frame_samples = samples_per_frame(codec.sample_rate)
        concealer = self._concealer
        heard = False
        for segment in pull.segments:
            if isinstance(segment, bytes):
                if self._stalled:
                    decoder.restart()
                    concealer.reset()
                    self._stalled = False
                self._samples.push(concealer.good(decoder.decode(segment)))
                heard = True
            else:
                ticks = segment * codec.sample_rate // codec.clock_rate
                self._samples.push(concealer.conceal(ticks))
        if pull.frames == 0:
            frame = concealer.conceal(frame_samples)
        elif pull.frames == 2:
            frame = _squeeze(self._samples.take(2 * frame_samples), codec.sample_rate)
        else:
            frame = self._samples.take(frame_samples)
        if not heard and concealer.exhausted:
            self._samples.clear()
            self._stalled = True
            self._quiet = True
            return None
        if concealer.concealing:
            self._concealed_frames += 1
        # Only a buffer that waits to shrink asks whether the audio is quiet.
        self._quiet = self._jitter.deep and int(np.abs(frame).max()) < QUIET_PEAK
        return decoder.to_pipeline(frame)

    def _rtp_datagram(self, data: bytes, addr: Address) -> None:
        if is_rtcp(data):
            # rtcp-mux (RFC 5761) peers send it here.
            self._rtcp_datagram(data, addr)
            return
        media = self._media
        if media is None or self._closed:
            return
        try:
            packet = parse_packet(data)
        except MalformedPacket:
            return
        pt = packet.payload_type
        if pt != media.payload_type and pt != media.telephone_event_pt:
            return
        now = self._now()
        if addr != self._latched:
            if self._latched is not None and now - self._last_rtp_at < self.config.relatch_after_s:
                self._dropped_foreign += 1
                return
            if self._latched is not None:
                log.info("RTP source moved from %s to %s", self._latched, addr)
            self._latched = self._target = addr
        if packet.ssrc != self._remote_ssrc:
            self._new_source(packet.ssrc)
        self._last_rtp_at = now
        seq = self._seqs.unwrap(packet.sequence)
        timestamp = self._stamps.unwrap(packet.timestamp)
        if pt == media.telephone_event_pt:
            self._stats.packet(seq, None, len(packet.payload), now)
            try:
                digits = self._dtmf_in.packet(timestamp, packet.payload, now)
            except ValueError:
                return
            self._deliver(digits)
            return
        self._stats.packet(seq, timestamp, len(packet.payload), now)
        if media.receive:
            self._jitter.put(timestamp, packet.payload, payload_ticks(packet.payload), now)

    def _new_source(self, ssrc: int) -> None:
        if self._remote_ssrc is not None:
            log.info("RTP source changed SSRC %08x -> %08x", self._remote_ssrc, ssrc)
        self._remote_ssrc = ssrc
        self._seqs.reset()
        self._stamps.reset()
        self._jitter.reset()
        self._stats = rtcp.ReceptionStats(self._stats.clock_rate)
        self._dtmf_in = DtmfReceiver(self._dtmf_in.clock_rate)
        self._samples.clear()
        self._stalled = True

    def _poll_dtmf(self, now: float) -> None:
        self._deliver(self._dtmf_in.poll(now))

    def _deliver(self, digits: list[Digit]) -> None:
        if self._on_dtmf is None:
            return
        for digit in digits:
            self._on_dtmf(digit.digit, digit.duration_ms)

    # -- RTCP and housekeeping -------------------------------------------------------------

    def _rtcp_datagram(self, data: bytes, addr: Address) -> None:
        if self._closed:
            return
        try:
            reports = rtcp.parse_compound(data)
        except rtcp.MalformedRtcp:
            return
        now = self._now()
        for report in reports:
            if isinstance(report, rtcp.Goodbye):
                continue
            if self._remote_ssrc is not None and report.ssrc != self._remote_ssrc:
                continue
            if not self._rtcp_latched:
                self._rtcp_target, self._rtcp_latched = addr, True
            if isinstance(report, rtcp.SenderReport):
                self._stats.sender_report(report.ntp, now)
            for block in report.blocks:
                if block.ssrc == self.ssrc:
                    self._remote_block = block
                    self._round_trip = rtcp.round_trip_s(block, rtcp.ntp_time(time.time()))

    def _report(self) -> bytes:
        """A compound RTCP packet: SR (when we sent since the last one) or RR, then SDES."""
        now = self._now()
        blocks: tuple[rtcp.ReportBlock, ...] = ()
        if self._remote_ssrc is not None and self._stats.received:
            blocks = (self._stats.block(self._remote_ssrc, now),)
        if self._sent_since_report:
            head = rtcp.build_sr(
                rtcp.SenderReport(
                    self.ssrc,
                    rtcp.ntp_time(time.time()),
                    self._timeline.at(now),
                    self._packets_sent,
                    self._octets_sent,
                    blocks,
                )
            )
        else:
            head = rtcp.build_rr(rtcp.ReceiverReport(self.ssrc, blocks))
        self._sent_since_report = False
        return head + rtcp.build_sdes(self.ssrc, self.config.cname)

    def _schedule_rtcp(self) -> None:
        assert self._loop is not None
        # RFC 3550 §6.3.1: a random 0.5-1.5 times the interval, so calls do not synchronise.
        interval = self.config.rtcp_interval_s * (0.5 + secrets.randbelow(1000) / 1000)
        self._rtcp_timer = self._loop.call_later(interval, self._send_rtcp)

    def _send_rtcp(self) -> None:
        if self._closed:
            return
        if self._rtcp is not None and self._rtcp_target is not None and self._media is not None:
            self._rtcp.sendto(self._report(), self._rtcp_target)
        self._schedule_rtcp()

    def _housekeeping(self) -> None:
        if self._closed:
            return
        assert self._loop is not None
        now = self._loop.time()
        self._poll_dtmf(now)
        media = self._media
        if (
            media is not None
            and media.receive
            and not self._inactive_fired
            and now - self._last_rtp_at >= self.config.inactivity_timeout_s
        ):
            self._inactive_fired = True
            if self._on_inactive is not None:
                self._on_inactive()
        interval = min(1.0, self.config.inactivity_timeout_s / 4)
        self._housekeeping_timer = self._loop.call_later(interval, self._housekeeping)

    # -- figures ---------------------------------------------------------------------------

    def stats(self) -> MediaStats:
        clock = self._codec.clock_rate if self._codec is not None else 8_000
        block = self._remote_block
        return MediaStats(
            packets_sent=self._packets_sent,
            octets_sent=self._octets_sent,
            packets_received=self._stats.received,
            octets_received=self._stats.octets,
            packets_lost=self._stats.lost,
            jitter_ms=self._stats.jitter * 1000 / clock,
            duplicates=self._stats.duplicates,
            late=self._jitter.counters.late,
            concealed_frames=self._concealed_frames,
            jitter_buffer_ms=self._jitter.delay_ms,
            remote_fraction_lost=None if block is None else block.fraction_lost / 256,
            remote_packets_lost=None if block is None else block.cumulative_lost,
            remote_jitter_ms=None if block is None else block.jitter * 1000 / clock,
            round_trip_ms=None if self._round_trip is None else self._round_trip * 1000,
            dropped_foreign=self._dropped_foreign,
        )
