"""CallMedia over real UDP on loopback: against another CallMedia, and against a raw socket that
plays a misbehaving network or peer."""

from __future__ import annotations

import asyncio
import functools
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import pytest

from bridge.frame_clock import FrameClock
from bridge.sip import rtcp
from bridge.sip.dtmf import TelephoneEvent, build_event
from bridge.sip.offer_answer import G722, PCMA, PCMU, Codec, NegotiatedMedia
from bridge.sip.ports import RtpPorts, RtpPortsExhausted
from bridge.sip.rtp import CallMedia, MediaConfig
from bridge.sip.rtp_codec import make_encoder
from bridge.sip.rtp_packet import build_packet, parse_packet
from bridge.sip.sdp import Direction
from media.frames import Pcm16

HOST = "127.0.0.1"
SILENCE = np.zeros(320, dtype=np.int16)
EVENT_PT = 101


def negotiated(
    codec: Codec,
    port: int,
    direction: Direction = Direction.SENDRECV,
    ptime: int = 20,
) -> NegotiatedMedia:
    return NegotiatedMedia(
        codec, codec.payload_type, EVENT_PT, ptime, direction, (HOST, port), None
    )


def tone(hz: float) -> Callable[[int], Pcm16]:
    def frame(k: int) -> Pcm16:
        t = (k * 320 + np.arange(320)) / 16_000
        out: Pcm16 = (8000 * np.sin(2 * np.pi * hz * t)).astype(np.int16)
        return out

    return frame


def peak_hz(frames: list[Pcm16]) -> float:
    samples = np.concatenate(frames).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.argmax(spectrum) * 16_000 / samples.size)


@pytest.fixture(scope="module")
def ports() -> RtpPorts:
    return RtpPorts(42000, 42399)


@dataclass
class Peer(asyncio.DatagramProtocol):
    """A bare UDP socket: what it receives, and a way to send."""

    received: list[tuple[bytes, tuple[str, int]]] = field(default_factory=list)
    transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.append((data, addr))

    @property
    def port(self) -> int:
        assert self.transport is not None
        port: int = self.transport.get_extra_info("sockname")[1]
        return port

    def send(self, data: bytes, port: int) -> None:
        assert self.transport is not None
        self.transport.sendto(data, (HOST, port))

    def rtp(self) -> list[bytes]:
        return [d for d, _ in self.received if not 192 <= d[1] <= 223]


@pytest.fixture
async def peers() -> AsyncIterator[Callable[[], Awaitable[Peer]]]:
    made: list[Peer] = []

    async def make() -> Peer:
        loop = asyncio.get_running_loop()
        _, peer = await loop.create_datagram_endpoint(Peer, local_addr=(HOST, 0))
        made.append(peer)
        return peer

    yield make
    for peer in made:
        assert peer.transport is not None
        peer.transport.close()


@pytest.fixture
async def medias(ports: RtpPorts) -> AsyncIterator[Callable[..., Awaitable[CallMedia]]]:
    opened: list[CallMedia] = []

    async def make(config: MediaConfig | None = None) -> CallMedia:
        media = CallMedia(config)
        await media.open(HOST, ports)
        opened.append(media)
        return media

    yield make
    for media in opened:
        await media.close()


async def run_clock(seconds: float, tick: Callable[[int], None]) -> None:
    clock = FrameClock()
    count = 0

    def on_tick() -> None:
        nonlocal count
        tick(count)
        count += 1

    remove = clock.add(on_tick)
    await asyncio.sleep(seconds)
    remove()
    await clock.stop()


@pytest.mark.parametrize("codec", [PCMU, PCMA, G722], ids=lambda c: c.name)
async def test_audio_round_trip_keeps_the_tone(
    codec: Codec, medias: Callable[..., Awaitable[CallMedia]]
) -> None:
    a, b = await medias(), await medias()
    a.update(negotiated(codec, b.local_port))
    b.update(negotiated(codec, a.local_port))
    heard: dict[str, list[Pcm16 | None]] = {"a": [], "b": []}
    send_a, send_b = tone(1000), tone(440)

    def tick(k: int) -> None:
        a.send_frame(send_a(k))
        b.send_frame(send_b(k))
        heard["a"].append(a.pull_frame())
        heard["b"].append(b.pull_frame())

    await run_clock(1.2, tick)
    for side, expected in (("b", 1000), ("a", 440)):
        frames = heard[side]
        first = next(i for i, f in enumerate(frames) if f is not None)
        assert first <= 5
        played = frames[first:]
        assert all(f is not None for f in played), side
        assert peak_hz([f for f in played[10:] if f is not None]) == pytest.approx(expected, abs=25)
    stats = b.stats()
    assert stats.packets_received >= 50 and stats.packets_lost == 0
    assert a.stats().packets_sent == b.stats().packets_received


async def test_reordered_lost_and_duplicated_packets(
    medias: Callable[..., Awaitable[CallMedia]],
    peers: Callable[[], Awaitable[Peer]],
) -> None:
    media, peer = await medias(), await peers()
    media.update(negotiated(PCMU, peer.port))
    encoder = make_encoder(PCMU)
    frame = tone(1000)
    payloads = [encoder.encode(frame(k)) for k in range(100)]
    lost, duplicated = {20, 50}, {40, 60, 70}
    # Each slot's packets, as a network that reorders, loses and duplicates would deliver them.
    schedule: list[list[int]] = [[k] for k in range(100)]
    for k in (10, 30, 80):
        schedule[k], schedule[k + 1] = [k + 1, k], []
    for k in lost:
        schedule[k] = []
    for k in duplicated:
        schedule[k] = [k, k]
    loop = asyncio.get_running_loop()
    start = loop.time()
    heard: list[Pcm16 | None] = []
    clock = FrameClock()
    remove = clock.add(lambda: heard.append(media.pull_frame()))
    for slot, seqs in enumerate(schedule):
        await asyncio.sleep(max(0.0, start + slot * 0.02 - loop.time()))
        for k in seqs:
            peer.send(
                build_packet(0, 1000 + k, 5000 + 160 * k, 77, payloads[k], k == 0), media.local_port
            )
    await asyncio.sleep(0.2)
    remove()
    await clock.stop()
    stats = media.stats()
    assert stats.packets_received == 98
    assert stats.packets_lost == 2
    assert stats.duplicates == 3
    assert stats.late == 0
    assert stats.concealed_frames >= 2
    first = next(i for i, f in enumerate(heard) if f is not None)
    played = heard[first : first + 95]
    # Every loss was a single packet: concealment covers it, nothing goes silent.
    assert all(f is not None for f in played)
    assert peak_hz([f for f in played if f is not None]) == pytest.approx(1000, abs=25)


async def test_sequence_and_timestamp_wraparound(
    medias: Callable[..., Awaitable[CallMedia]],
    peers: Callable[[], Awaitable[Peer]],
) -> None:
    media, peer = await medias(), await peers()
    media.update(negotiated(PCMA, peer.port))
    encoder = make_encoder(PCMA)
    frame = tone(700)
    heard: list[Pcm16 | None] = []
    clock = FrameClock()
    remove = clock.add(lambda: heard.append(media.pull_frame()))
    loop = asyncio.get_running_loop()
    start = loop.time()
    for k in range(80):
        await asyncio.sleep(max(0.0, start + k * 0.02 - loop.time()))
        seq = (65_500 + k) % 65_536
        timestamp = ((1 << 32) - 40 * 160 + k * 160) % (1 << 32)
        peer.send(
            build_packet(8, seq, timestamp, 5, encoder.encode(frame(k)), False), media.local_port
        )
    await asyncio.sleep(0.15)
    remove()
    await clock.stop()
    stats = media.stats()
    assert stats.packets_received == 80 and stats.packets_lost == 0
    assert stats.jitter_ms < 5
    # Concealment only after the stream's last packet, until it gives way to silence.
    assert stats.concealed_frames <= 3 and stats.late == 0
    first = next(i for i, f in enumerate(heard) if f is not None)
    played = heard[first : first + 75]
    assert all(f is not None for f in played)
    assert peak_hz([f for f in played if f is not None]) == pytest.approx(700, abs=25)


async def test_dtmf_both_ways(medias: Callable[..., Awaitable[CallMedia]]) -> None:
    a, b = await medias(), await medias()
    a.update(negotiated(PCMU, b.local_port))
    b.update(negotiated(PCMU, a.local_port))
    got_a: list[tuple[str, int]] = []
    got_b: list[tuple[str, int]] = []
    a.on_dtmf(lambda d, ms: got_a.append((d, ms)))
    b.on_dtmf(lambda d, ms: got_b.append((d, ms)))
    a.send_dtmf("1", 100)
    a.send_dtmf("1", 100)
    a.send_dtmf("#", 200)
    b.send_dtmf("9", 120)

    def tick(_: int) -> None:
        for media in (a, b):
            media.send_frame(SILENCE)
            media.pull_frame()

    await run_clock(0.8, tick)
    assert got_b == [("1", 100), ("1", 100), ("#", 200)]
    assert got_a == [("9", 120)]


async def test_dtmf_without_marker_with_repeated_end_packets(
    medias: Callable[..., Awaitable[CallMedia]],
    peers: Callable[[], Awaitable[Peer]],
) -> None:
    media, peer = await medias(), await peers()
    media.update(negotiated(PCMU, peer.port))
    got: list[tuple[str, int]] = []
    media.on_dtmf(lambda d, ms: got.append((d, ms)))

    def event(seq: int, ts: int, digit: int, duration: int, end: bool) -> None:
        payload = build_event(TelephoneEvent(digit, end, 10, duration))
        peer.send(build_packet(EVENT_PT, seq, ts, 9, payload, False), media.local_port)

    seq = 0
    for duration in (160, 320, 480, 480):
        event(seq, 8000, 4, duration, False)
        seq += 1
        await asyncio.sleep(0.02)
    for _ in range(3):
        event(seq, 8000, 4, 640, True)
        seq += 1
    event(seq - 1, 8000, 4, 640, True)
    # A second digit whose end packets are all lost, then a third event starts.
    event(seq, 12000, 7, 160, False)
    event(seq + 1, 12000, 7, 320, False)
    event(seq + 2, 16000, 0, 400, True)
    await asyncio.sleep(0.1)
    assert got == [("4", 80), ("7", 40), ("0", 50)]


async def test_symmetric_rtp_latches_to_where_packets_come_from(
    medias: Callable[..., Awaitable[CallMedia]],
    peers: Callable[[], Awaitable[Peer]],
) -> None:
    media = await medias()
    signaled, actual, stranger = await peers(), await peers(), await peers()
    media.update(negotiated(PCMU, signaled.port))
    media.send_frame(SILENCE)
    await asyncio.sleep(0.02)
    assert len(signaled.rtp()) == 1
    # The peer is behind a NAT: its packets come from another port than its SDP said.
    payload = b"\xff" * 160
    for k in range(3):
        actual.send(build_packet(0, k, k * 160, 1, payload, False), media.local_port)
    await asyncio.sleep(0.02)
    media.send_frame(SILENCE)
    await asyncio.sleep(0.02)
    # A stray or injected stream from elsewhere does not take the call over.
    stranger.send(build_packet(0, 500, 500, 2, payload, False), media.local_port)
    await asyncio.sleep(0.02)
    media.send_frame(SILENCE)
    await asyncio.sleep(0.02)
    assert len(signaled.rtp()) == 1
    assert len(actual.rtp()) == 2
    assert stranger.rtp() == []
    assert media.stats().dropped_foreign == 1
    assert media.stats().packets_received == 3


async def test_packets_of_other_payload_types_do_not_latch(
    medias: Callable[..., Awaitable[CallMedia]],
    peers: Callable[[], Awaitable[Peer]],
) -> None:
    media = await medias()
    signaled, noise = await peers(), await peers()
    media.update(negotiated(PCMU, signaled.port))
    noise.send(build_packet(96, 1, 1, 3, b"\x00" * 20, False), media.local_port)
    noise.send(b"not rtp", media.local_port)
    await asyncio.sleep(0.02)
    media.send_frame(SILENCE)
    await asyncio.sleep(0.02)
    assert len(signaled.rtp()) == 1 and noise.rtp() == []


@pytest.mark.parametrize("ptime", [10, 30, 40, 50])
async def test_packets_are_as_long_as_the_ptime_asked_for(
    medias: Callable[..., Awaitable[CallMedia]],
    peers: Callable[[], Awaitable[Peer]],
    ptime: int,
) -> None:
    media, peer = await medias(), await peers()
    media.update(negotiated(PCMA, peer.port, ptime=ptime))

    def tick(_: int) -> None:
        media.send_frame(SILENCE)

    await run_clock(0.3, tick)
    await asyncio.sleep(0.02)
    packets = [parse_packet(d) for d in peer.rtp()]
    # 8 kHz: 8 bytes and 8 timestamp ticks a millisecond, with no gap and no overlap.
    assert len(packets) >= 3
    assert {len(p.payload) for p in packets} == {8 * ptime}
    first = packets[0]
    assert [(p.timestamp - first.timestamp) % 2**32 for p in packets[:3]] == [
        0,
        8 * ptime,
        16 * ptime,
    ]
    assert [(p.sequence - first.sequence) % 2**16 for p in packets] == list(range(len(packets)))
    assert [p.marker for p in packets[:2]] == [True, False]


async def test_inactivity_timeout_is_hold_aware(
    medias: Callable[..., Awaitable[CallMedia]],
    peers: Callable[[], Awaitable[Peer]],
) -> None:
    config = MediaConfig(inactivity_timeout_s=0.3)
    silent, held, fed = await medias(config), await medias(config), await medias(config)
    peer = await peers()
    fired: list[str] = []
    for name, media in (("silent", silent), ("held", held), ("fed", fed)):
        media.on_inactive(functools.partial(fired.append, name))
    silent.update(negotiated(PCMU, peer.port))
    held.update(negotiated(PCMU, peer.port, Direction.SENDONLY))
    fed.update(negotiated(PCMU, peer.port))
    loop = asyncio.get_running_loop()
    start = loop.time()
    for k in range(40):
        peer.send(build_packet(0, k, k * 160, 4, b"\xff" * 160, False), fed.local_port)
        await asyncio.sleep(max(0.0, start + (k + 1) * 0.02 - loop.time()))
    assert fired == ["silent"]
    # Off hold: the peer gets a whole timeout from now, then it fires (and so does the one
    # whose packets stopped).
    held.update(negotiated(PCMU, peer.port))
    await asyncio.sleep(0.15)
    assert fired == ["silent"]
    await asyncio.sleep(0.45)
    assert sorted(fired) == ["fed", "held", "silent"]


async def test_rtcp_reports_are_exchanged(
    medias: Callable[..., Awaitable[CallMedia]],
    peers: Callable[[], Awaitable[Peer]],
) -> None:
    config = MediaConfig(rtcp_interval_s=0.2)
    a, b = await medias(config), await medias(config)
    a.update(negotiated(G722, b.local_port))
    b.update(negotiated(G722, a.local_port))
    send = tone(300)

    def tick(k: int) -> None:
        a.send_frame(send(k))
        b.send_frame(send(k))
        a.pull_frame()
        b.pull_frame()

    await run_clock(1.0, tick)
    for media in (a, b):
        stats = media.stats()
        assert stats.remote_fraction_lost == 0
        assert stats.remote_packets_lost == 0
        assert stats.remote_jitter_ms is not None and stats.remote_jitter_ms < 10
        assert stats.round_trip_ms is not None and 0 <= stats.round_trip_ms < 50


async def test_rtcp_to_a_plain_peer_then_bye_on_close(
    ports: RtpPorts, peers: Callable[[], Awaitable[Peer]]
) -> None:
    media = CallMedia(MediaConfig(rtcp_interval_s=0.1))
    await media.open(HOST, ports)
    peer, peer_rtcp = await peers(), await peers()
    media.update(
        NegotiatedMedia(
            PCMU, 0, EVENT_PT, 20, Direction.SENDRECV, (HOST, peer.port), (HOST, peer_rtcp.port)
        )
    )
    for k in range(5):
        peer.send(build_packet(0, k, k * 160, 0x5151, b"\xff" * 160, False), media.local_port)
        media.send_frame(SILENCE)
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)
    await media.close()
    await asyncio.sleep(0.02)
    reports = [r for data, _ in peer_rtcp.received for r in rtcp.parse_compound(data)]
    senders = [r for r in reports if isinstance(r, rtcp.SenderReport)]
    assert senders and senders[0].ssrc == media.ssrc and senders[0].packets >= 1
    assert senders[0].blocks and senders[0].blocks[0].ssrc == 0x5151
    assert isinstance(reports[-1], rtcp.Goodbye) and reports[-1].ssrcs == (media.ssrc,)


async def test_port_pairs_run_out_and_come_back() -> None:
    ports = RtpPorts(43000, 43005)
    squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    squatter.bind((HOST, 43003))
    try:
        first, second = CallMedia(), CallMedia()
        assert await first.open(HOST, ports) == 43000
        # 43002/43003 is held by another process: skipped.
        assert await second.open(HOST, ports) == 43004
        with pytest.raises(RtpPortsExhausted, match="1 held by other processes"):
            await CallMedia().open(HOST, ports)
        await first.close()
        third = CallMedia()
        assert await third.open(HOST, ports) == 43000
        await second.close()
        await third.close()
        assert ports.in_use == 0
    finally:
        squatter.close()
