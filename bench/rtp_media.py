"""RTP media under load: N concurrent calls' media in one process, over loopback.

Each call is a pair on loopback: the bridge's side, a `CallMedia`, sends the agent's audio
(digital silence by default: the issue's "media-only, agent silent" case) and pulls what it
receives every tick; the caller's side sends speech-like audio. One `FrameClock` drives all of
them, as in the bridge. With `--caller callmedia` the caller is a `CallMedia` too (N pairs: the
media work of 2N calls in one process, twice what N real calls whose callers are elsewhere cost
the bridge); with `--caller raw` it is a bare socket sending pre-encoded packets and ignoring
what it gets, which leaves the process about the work of N calls' bridge sides.

Measured over --seconds after --warmup, per caller kind, N and tick order:

- send jitter: for every packet a `CallMedia` sent, the time `send_frame` returned minus its
  20 ms slot on the
  clock's absolute schedule (the clock's own lateness included, and every listener's work that
  ran before it in the same tick), p50/p99/max; "tick p99" is the clock's own lateness alone;
- CPU: process CPU time over wall time, in % of one core (the event loop is one thread);
- what the receivers made of it: frames concealed, late packets, jitter-buffer delay.

Tick orders: "per-call" registers one clock listener per endpoint doing send then pull (what
a call naturally does); "sends-first" has one listener send for every endpoint, then pull for
every endpoint, so no pull's decoding delays a send.

With --per-call it instead times one `CallMedia`'s work per 20 ms on a stepped clock, fed
packets directly (no socket in the receive path): sending a frame of voice, sending silence,
receiving a packet, pulling a frame; best of --rounds rounds.

    .venv/bin/python bench/rtp_media.py                       # N = 50, 100, 200; PCMU
    .venv/bin/python bench/rtp_media.py --pairs 100 --codec G722 --caller raw callmedia
    .venv/bin/python bench/rtp_media.py --per-call --codec PCMU G722
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import math
import os
import platform
import resource
import secrets
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import cpu_model, load_average
from bridge.frame_clock import PERIOD, FrameClock
from bridge.sip.offer_answer import CODECS, Codec, NegotiatedMedia
from bridge.sip.ports import RtpPorts
from bridge.sip.rtp import CallMedia
from bridge.sip.rtp_codec import make_encoder
from bridge.sip.rtp_packet import build_packet
from bridge.sip.sdp import Direction
from media.frames import Pcm16

HOST = "127.0.0.1"
ORDERS = ("per-call", "sends-first")
CALLERS = ("callmedia", "raw")


def speech_like(frames: int = 50) -> list[Pcm16]:
    """A voiced sound gliding in pitch and loudness: every frame differs, as speech does."""
    t = np.arange(frames * 320) / 16_000
    pitch = 120 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / 16_000
    wave = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 1.3 * t)
    signal = (5000 * wave * envelope).astype(np.int16)
    return [signal[i * 320 : (i + 1) * 320] for i in range(frames)]


@dataclass
class Result:
    codec: str
    caller: str
    pairs: int
    order: str
    packets: int
    send_p50_ms: float
    send_p99_ms: float
    send_max_ms: float
    tick_p99_ms: float
    cpu_percent: float
    skipped_ticks: int
    concealed: int
    late: int
    lost: int
    jitter_buffer_ms: float


class RawCaller(asyncio.DatagramProtocol):
    """A caller that costs the process next to nothing: pre-encoded packets out, nothing in."""

    def __init__(self, payloads: list[bytes], payload_type: int) -> None:
        self.payloads = payloads
        self.payload_type = payload_type
        self.transport: asyncio.DatagramTransport | None = None
        self.target: tuple[str, int] | None = None
        self.ssrc = secrets.randbits(32)
        self.k = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    @property
    def port(self) -> int:
        assert self.transport is not None
        port: int = self.transport.get_extra_info("sockname")[1]
        return port

    def send(self) -> None:
        assert self.transport is not None and self.target is not None
        k = self.k
        self.k += 1
        payload = self.payloads[k % len(self.payloads)]
        packet = build_packet(self.payload_type, k & 0xFFFF, k * 160, self.ssrc, payload, k == 0)
        self.transport.sendto(packet, self.target)


def negotiated(codec: Codec, port: int) -> NegotiatedMedia:
    return NegotiatedMedia(
        codec, codec.payload_type, 101, 20, Direction.SENDRECV, (HOST, port), None
    )


async def run(
    args: argparse.Namespace, codec: Codec, caller_kind: str, pairs: int, order: str
) -> Result:
    loop = asyncio.get_running_loop()
    ports = RtpPorts(args.port_min, args.port_min + 4 * pairs + 8)
    voice = speech_like()
    encoder = make_encoder(codec)
    encoded_voice = [encoder.encode(frame) for frame in voice]
    bridges = [CallMedia() for _ in range(pairs)]
    media_callers: list[CallMedia] = []
    raw_callers: list[RawCaller] = []
    for bridge in bridges:
        await bridge.open(HOST, ports)
        if caller_kind == "callmedia":
            caller = CallMedia()
            await caller.open(HOST, ports)
            caller.update(negotiated(codec, bridge.local_port))
            bridge.update(negotiated(codec, caller.local_port))
            media_callers.append(caller)
        else:
            _, raw = await loop.create_datagram_endpoint(
                lambda: RawCaller(encoded_voice, codec.payload_type), local_addr=(HOST, 0)
            )
            raw.target = (HOST, bridge.local_port)
            bridge.update(negotiated(codec, raw.port))
            raw_callers.append(raw)
    silence = np.zeros(320, dtype=np.int16)
    clock = FrameClock()
    deviations: list[float] = []
    tick_lateness: list[float] = []
    ticks = 0
    t0 = slot = 0.0
    recording = False

    def start_tick() -> None:
        nonlocal ticks, t0, slot
        now = loop.time()
        if ticks == 0:
            t0 = now
        slot = t0 + (ticks + clock.skipped) * PERIOD
        ticks += 1
        if recording:
            tick_lateness.append(now - slot)

    def sender(media: CallMedia, audio: Callable[[int], Pcm16]) -> Callable[[], None]:
        def send() -> None:
            media.send_frame(audio(ticks))
            if recording:
                deviations.append(loop.time() - slot)

        return send

    agent: Callable[[int], Pcm16] = (
        (lambda k: silence) if args.agent == "silent" else (lambda k: voice[(k + 17) % len(voice)])
    )
    sends = [sender(b, agent) for b in bridges]
    sends += [sender(c, lambda k: voice[k % len(voice)]) for c in media_callers]
    sends += [raw.send for raw in raw_callers]
    pullers = [*bridges, *media_callers]
    removers = [clock.add(start_tick)]
    if order == "per-call":
        for send, media in itertools.zip_longest(sends, pullers):

            def both(send: Callable[[], None] = send, media: CallMedia | None = media) -> None:
                send()
                if media is not None:
                    media.pull_frame()

            removers.append(clock.add(both))
    else:

        def all_sends_then_pulls() -> None:
            for send in sends:
                send()
            for media in pullers:
                media.pull_frame()

        removers.append(clock.add(all_sends_then_pulls))

    await asyncio.sleep(args.warmup)
    skipped_before = clock.skipped
    cpu_before, wall_before = time.process_time(), time.perf_counter()
    recording = True
    await asyncio.sleep(args.seconds)
    recording = False
    cpu = (time.process_time() - cpu_before) / (time.perf_counter() - wall_before) * 100
    skipped = clock.skipped - skipped_before
    for remove in removers:
        remove()
    await clock.stop()
    stats = [m.stats() for m in pullers]
    for media in pullers:
        await media.close()
    for raw in raw_callers:
        assert raw.transport is not None
        raw.transport.close()
    gc.collect()
    dev = np.array(deviations) * 1000
    return Result(
        codec=codec.name,
        caller=caller_kind,
        pairs=pairs,
        order=order,
        packets=dev.size,
        send_p50_ms=float(np.percentile(dev, 50)),
        send_p99_ms=float(np.percentile(dev, 99)),
        send_max_ms=float(dev.max()),
        tick_p99_ms=float(np.percentile(np.array(tick_lateness) * 1000, 99)),
        cpu_percent=cpu,
        skipped_ticks=skipped,
        concealed=sum(s.concealed_frames for s in stats),
        late=sum(s.late for s in stats),
        lost=sum(s.packets_lost for s in stats),
        jitter_buffer_ms=float(np.mean([s.jitter_buffer_ms for s in stats])),
    )


class SteppedMedia(CallMedia):
    """A `CallMedia` on a clock the benchmark moves, so its timeline and jitter buffer see
    packets and pulls exactly 20 ms apart however fast the loop below runs."""

    clock = 0.0

    def _now(self) -> float:
        return self.clock


async def per_call_costs(codec: Codec, frames: int, rounds: int) -> dict[str, float]:
    """µs per operation, best of `rounds` rounds of `frames` each."""
    voice = speech_like()
    silence = np.zeros(320, dtype=np.int16)
    encoder = make_encoder(codec)
    payloads = [encoder.encode(frame) for frame in voice]
    ports = RtpPorts(49_000, 49_099)
    best: dict[str, float] = {}
    for _ in range(rounds):
        media = SteppedMedia()
        await media.open(HOST, ports)
        media.update(negotiated(codec, media.local_port))
        packets = [
            build_packet(codec.payload_type, k & 0xFFFF, k * 160, 7, payloads[k % 50], k == 0)
            for k in range(frames)
        ]
        spent: dict[str, float] = {}
        # Separate loops: a silent agent sends silence tick after tick (which the codec
        # shortcuts), and a frame's pull finds its packet on time.
        for name, frame in (("send voice", None), ("send silence", silence)):
            start = time.perf_counter()
            for k in range(frames):
                media.clock += PERIOD
                media.send_frame(voice[k % len(voice)] if frame is None else frame)
            spent[name] = time.perf_counter() - start
        spent["receive packet"] = spent["pull frame"] = 0.0
        for k in range(frames):
            media.clock += PERIOD
            start = time.perf_counter()
            media._rtp_datagram(packets[k], (HOST, 5004))
            received = time.perf_counter()
            media.pull_frame()
            spent["receive packet"] += received - start
            spent["pull frame"] += time.perf_counter() - received
        await media.close()
        for name, seconds in spent.items():
            best[name] = min(best.get(name, math.inf), seconds / frames * 1e6)
    return best


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--codec", choices=[c.name for c in CODECS], nargs="+", default=["PCMU"])
    parser.add_argument("--order", choices=ORDERS, nargs="+", default=list(ORDERS))
    parser.add_argument("--caller", choices=CALLERS, nargs="+", default=["callmedia"])
    parser.add_argument("--agent", choices=["silent", "voice"], default="silent")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--port-min", type=int, default=40_000)
    parser.add_argument("--per-call", action="store_true", help="time one call's operations")
    parser.add_argument("--frames", type=int, default=5000, help="--per-call: frames per round")
    parser.add_argument("--rounds", type=int, default=5, help="--per-call: rounds")
    return parser.parse_args()


async def main() -> None:
    args = parse_args()
    print("command:", shlex.join([".venv/bin/python", *sys.argv]))
    print(
        f"machine: {os.cpu_count()} cores, {cpu_model()}, Python {platform.python_version()}; "
        f"load average {load_average()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    if args.per_call:
        print(f"one CallMedia, µs per operation (best of {args.rounds} x {args.frames} frames)")
        for codec_name in args.codec:
            codec = next(c for c in CODECS if c.name == codec_name)
            costs = await per_call_costs(codec, args.frames, args.rounds)
            print(f"{codec_name:5s}  " + "  ".join(f"{k} {v:5.1f}" for k, v in costs.items()))
        return
    print(f"agent {args.agent}, {args.seconds:g} s measured per run")
    header = (
        "codec  caller     pairs  order        packets  send p50  send p99  send max  "
        "tick p99  CPU %  skipped  concealed  late  lost  jb ms"
    )
    print(header)
    runs = itertools.product(args.codec, args.caller, args.pairs, args.order)
    for codec_name, caller, pairs, order in runs:
        codec = next(c for c in CODECS if c.name == codec_name)
        r = await run(args, codec, caller, pairs, order)
        print(
            f"{r.codec:5s}  {r.caller:9s}  {r.pairs:5d}  {r.order:11s}  {r.packets:7d}  "
            f"{r.send_p50_ms:8.2f}  {r.send_p99_ms:8.2f}  {r.send_max_ms:8.2f}  "
            f"{r.tick_p99_ms:8.2f}  {r.cpu_percent:5.1f}  {r.skipped_ticks:7d}  "
            f"{r.concealed:9d}  {r.late:4d}  {r.lost:4d}  {r.jitter_buffer_ms:5.1f}",
            flush=True,
        )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak_mb:.0f} MB; load average after {load_average()}")


if __name__ == "__main__":
    asyncio.run(main())
