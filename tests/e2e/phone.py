"""What the phone-call tests share: the agent they call, pcaps of caller audio, and waiting
for the call's conversation to get somewhere."""

from __future__ import annotations

import asyncio
import re
import uuid
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp.test_utils import TestClient

from tests.sipp import wav_to_pcap

Client = TestClient[Any, Any]

NUMBER = "+15550100"
GREETING = "Hello! How can I help you today?"


async def make_agent(client: Client, auth: dict[str, str], **fields: Any) -> dict[str, Any]:
    """An agent answering `NUMBER` with `GREETING`; `fields` add to or replace its settings."""
    body: dict[str, Any] = {
        "name": "Support line",
        "phone_numbers": [NUMBER],
        "custom_responses": {"greeting": GREETING},
        **fields,
    }
    made = await client.post("/v1/agents", json=body, headers=auth)
    assert made.status == 201, await made.text()
    agent: dict[str, Any] = await made.json()
    return agent


def write_pcap(directory: Path, samples: np.ndarray[Any, np.dtype[np.int16]]) -> Path:
    """The PCMU pcap SIPp plays of 16 kHz `samples`."""
    pcap = directory / "caller.pcap"
    wav_to_pcap(write_wav(directory / "caller.wav", samples), pcap, "PCMU")
    return pcap


async def the_conversation(
    client: Client, auth: dict[str, str], ready: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The one conversation (the newest), once `ready` says so."""
    (conversation,) = await the_conversations(client, auth, 1, ready)
    return conversation


def ended(conversation: dict[str, Any]) -> bool:
    return str(conversation["status"]) != "active"


async def the_conversations(
    client: Client, auth: dict[str, str], count: int, ready: Callable[[dict[str, Any]], bool]
) -> list[dict[str, Any]]:
    """All `count` conversations of a test with several calls, once `ready` says so of each."""
    for _ in range(300):
        listed = await (
            await client.get("/v1/conversations", params={"limit": str(count)}, headers=auth)
        ).json()
        if len(listed["data"]) >= count:
            details = [
                await (
                    await client.get(f"/v1/conversations/{c['conversation_id']}", headers=auth)
                ).json()
                for c in listed["data"]
            ]
            if all(ready(d) for d in details):
                return details
        await asyncio.sleep(0.1)
    raise AssertionError(f"the {count} conversations did not get there in time")


def write_wav(path: Path, samples: np.ndarray[Any, np.dtype[np.int16]], rate: int = 16_000) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.astype("<i2").tobytes())
    return path


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.put_nowait(data)


async def refused_with(port: int, user: str, method: str = "INVITE", timeout: float = 10.0) -> int:
    """The final status of a request (an INVITE with an offer, or an OPTIONS) to `user` at the
    bridge on `port`, sent over UDP, which must refuse it."""
    status = await final_status(port, user, method, timeout)
    assert status >= 300, f"the {method} to {user} was answered {status}"
    return status


async def final_status(port: int, user: str, method: str = "OPTIONS", timeout: float = 10.0) -> int:
    """The final status of a request (an OPTIONS, or an INVITE with an offer) to `user` at the
    bridge on `port`, sent over UDP. A refused INVITE is ACKed, as a caller's transaction would
    (RFC 3261 §17.1.1.3); an answered one is not: send INVITEs through `refused_with`."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        _Datagrams, local_addr=("127.0.0.1", 0)
    )
    try:
        local_port = transport.get_extra_info("sockname")[1]
        branch = f"z9hG4bK{uuid.uuid4().hex}"
        common = (
            f"Via: SIP/2.0/UDP 127.0.0.1:{local_port};branch={branch};rport\r\n"
            f"From: <sip:caller@127.0.0.1:{local_port}>;tag=t{uuid.uuid4().hex[:8]}\r\n"
            f"Call-ID: {uuid.uuid4().hex}@127.0.0.1\r\n"
            "Max-Forwards: 70\r\n"
        )
        sdp = (
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
        )
        body = sdp if method == "INVITE" else ""
        request = (
            f"{method} sip:{user}@127.0.0.1:{port} SIP/2.0\r\n{common}"
            f"To: <sip:{user}@127.0.0.1:{port}>\r\nCSeq: 1 {method}\r\n"
            f"Contact: <sip:caller@127.0.0.1:{local_port}>\r\n"
            + ("Content-Type: application/sdp\r\n" if body else "")
            + f"Content-Length: {len(body)}\r\n\r\n{body}"
        )
        transport.sendto(request.encode(), ("127.0.0.1", port))
        async with asyncio.timeout(timeout):
            while True:
                response = (await protocol.received.get()).decode()
                status = int(response.split(" ", 2)[1])
                if status >= 200:
                    break
        if method != "INVITE" or status < 300:
            return status
        to = re.search(r"^To: (.*)$", response, re.MULTILINE | re.IGNORECASE)
        assert to is not None, response
        ack = (
            f"ACK sip:{user}@127.0.0.1:{port} SIP/2.0\r\n{common}"
            f"To: {to.group(1).strip()}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
        )
        transport.sendto(ack.encode(), ("127.0.0.1", port))
        return status
    finally:
        transport.close()
