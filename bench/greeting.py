"""Call answer benchmark: how fast a caller is answered and greeted.

Starts `voicebridge serve` (free loopback ports, embedded Redis in a temporary directory, models
preloaded), makes an agent with a phone number, then places --calls calls one after another
from a minimal SIP caller written here (UDP, PCMU): INVITE, ACK on the 200, then it reads the
bridge's RTP until the greeting is audible, and hangs up with BYE.

Reported: INVITE to 180 and to 200, and ACK to the first RTP packet and to the first audible
greeting packet (a packet whose µ-law samples reach -30 dBFS; the bridge sends silence until
then). The first call synthesizes the greeting; later calls play it from the phrase cache, which
is what a caller normally gets: the aim is greeting audio within 300 ms of the ACK.

    .venv/bin/python bench/greeting.py               # 20 calls, about 1 min
    .venv/bin/python bench/greeting.py --calls 5     # smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.pipeline import percentile, serve
from bench.report import load_average, say
from media.g711 import ulaw_decode
from tests.ports import free_port

NUMBER = "+15550100"
GREETING = "Hello! Thanks for calling. How can I help you today?"
AUDIBLE = int(32768 * 10 ** (-30 / 20))


@dataclass
class Answered:
    ringing_ms: float
    answered_ms: float
    first_rtp_ms: float
    greeting_ms: float


class Datagrams(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.queue.put_nowait((time.monotonic(), data))


class Caller:
    """Just enough of a SIP UAC for one call at a time over UDP."""

    def __init__(self, sip: asyncio.DatagramTransport, inbox: Datagrams, bridge: int) -> None:
        self.sip, self.inbox, self.bridge = sip, inbox, bridge
        self.port: int = sip.get_extra_info("sockname")[1]

    def send(self, text: str) -> None:
        self.sip.sendto(text.replace("\n", "\r\n").encode(), ("127.0.0.1", self.bridge))

    async def response(self, timeout: float = 10) -> tuple[float, int, str]:
        async with asyncio.timeout(timeout):
            while True:
                at, data = await self.inbox.queue.get()
                text = data.decode(errors="replace")
                if text.startswith("SIP/2.0 "):
                    return at, int(text.split(" ", 2)[1]), text

    def headers(self, call_id: str, tag: str, to: str, cseq: str, branch: str) -> str:
        return (
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK{branch};rport\n"
            f"From: <sip:bench@127.0.0.1:{self.port}>;tag={tag}\n"
            f"To: {to}\nCall-ID: {call_id}\nCSeq: {cseq}\nMax-Forwards: 70\n"
            f"Contact: <sip:bench@127.0.0.1:{self.port}>\n"
        )

    async def call(self, rtp: Datagrams, rtp_port: int) -> Answered:
        call_id, tag, uri = secrets.token_hex(8), secrets.token_hex(4), f"sip:{NUMBER}@127.0.0.1"
        sdp = (
            f"v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\n"
            f"m=audio {rtp_port} RTP/AVP 0 101\na=rtpmap:0 PCMU/8000\n"
            "a=rtpmap:101 telephone-event/8000\na=ptime:20\na=sendrecv\n"
        )
        # send() ends every line with CRLF.
        length = len(sdp) + sdp.count("\n")
        branch = secrets.token_hex(8)
        sent = time.monotonic()
        self.send(
            f"INVITE {uri}:{self.bridge} SIP/2.0\n"
            + self.headers(call_id, tag, f"<{uri}>", "1 INVITE", branch)
            + f"Content-Type: application/sdp\nContent-Length: {length}\n\n{sdp}"
        )
        ringing = answered = 0.0
        to = ""
        while not answered:
            at, status, text = await self.response()
            if status == 180:
                ringing = at
            elif status == 200:
                answered = at
                to = next(line[4:] for line in text.split("\r\n") if line.startswith("To: "))
            elif status >= 300:
                raise SystemExit(f"the bridge refused the call: {text.splitlines()[0]}")
        self.send(
            f"ACK {uri}:{self.bridge} SIP/2.0\n"
            + self.headers(call_id, tag, to, "1 ACK", secrets.token_hex(8))
            + "Content-Length: 0\n\n"
        )
        acked = time.monotonic()
        first_rtp = greeting = 0.0
        async with asyncio.timeout(10):
            while not greeting:
                at, packet = await rtp.queue.get()
                if at < acked:
                    continue
                first_rtp = first_rtp or at
                payload = packet[12:]
                if packet[1] & 0x7F == 0 and np.abs(ulaw_decode(payload)).max() >= AUDIBLE:
                    greeting = at
        self.send(
            f"BYE {uri}:{self.bridge} SIP/2.0\n"
            + self.headers(call_id, tag, to, "2 BYE", secrets.token_hex(8))
            + "Content-Length: 0\n\n"
        )
        await self.response()
        while not rtp.queue.empty():
            rtp.queue.get_nowait()
        return Answered(
            (ringing - sent) * 1000 if ringing else float("nan"),
            (answered - sent) * 1000,
            (first_rtp - acked) * 1000,
            (greeting - acked) * 1000,
        )


async def main_async(args: argparse.Namespace) -> list[Answered]:
    sip_port = free_port()
    sip = {"VOICEBRIDGE_SIP_HOST": "127.0.0.1", "VOICEBRIDGE_SIP_PORT": str(sip_port)}
    loop = asyncio.get_running_loop()
    async with serve(args.startup_timeout, sip) as server, aiohttp.ClientSession() as http:
        made = await http.post(
            f"{server.url}/v1/agents",
            json={
                "name": "Bench",
                "phone_numbers": [NUMBER],
                "custom_responses": {"greeting": GREETING},
            },
            headers={"Authorization": f"Bearer {server.key}"},
        )
        if made.status != 201:
            raise SystemExit(f"creating the agent: {made.status} {await made.text()}")
        sip, inbox = await loop.create_datagram_endpoint(Datagrams, local_addr=("127.0.0.1", 0))
        rtp_port = free_port()
        rtp_transport, rtp = await loop.create_datagram_endpoint(
            Datagrams, local_addr=("127.0.0.1", rtp_port)
        )
        caller = Caller(sip, inbox, sip_port)
        results = []
        try:
            for n in range(args.calls):
                results.append(await caller.call(rtp, rtp_port))
                say(f"call {n + 1}: greeting after {results[-1].greeting_ms:.0f} ms")
                await asyncio.sleep(args.pause)
                server.check()
        finally:
            sip.close()
            rtp_transport.close()
        return results


def report(results: list[Answered], load_before: str) -> None:
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(f"load average before: {load_before}; after: {load_average()}")
    first, cached = results[0], results[1:]
    print(f"first call (greeting synthesized): ACK -> greeting {first.greeting_ms:.0f} ms")
    if not cached:
        return
    print(f"{len(cached)} calls with the greeting cached (ms):  p50    p95    max")
    for label, values in (
        ("INVITE -> 180 Ringing", [r.ringing_ms for r in cached]),
        ("INVITE -> 200 OK", [r.answered_ms for r in cached]),
        ("ACK -> first RTP", [r.first_rtp_ms for r in cached]),
        ("ACK -> greeting audible", [r.greeting_ms for r in cached]),
    ):
        print(
            f"  {label:<40}{percentile(values, 50):6.0f} {percentile(values, 95):6.0f}"
            f" {max(values):6.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--pause", type=float, default=1.0, help="seconds between calls")
    parser.add_argument("--startup-timeout", type=float, default=180)
    args = parser.parse_args()
    load_before = load_average()
    report(asyncio.run(main_async(args)), load_before)


if __name__ == "__main__":
    main()
