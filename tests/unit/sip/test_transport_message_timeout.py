"""A TCP peer that stops mid-message loses its connection after `SipTransport.message_timeout`;
keep-alive bytes and messages that complete in time do not count against it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from bridge.sip.message import Request, Response
from bridge.sip.transaction import Peer
from bridge.sip.transport import SipTransport

HOST = "127.0.0.1"
TIMEOUT = 0.3

OPTIONS = (
    b"OPTIONS sip:bot@127.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP client.example;branch=z9hG4bKstall\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:alice@example.com>;tag=a1\r\n"
    b"To: <sip:bot@127.0.0.1>\r\n"
    b"Call-ID: stall@example.com\r\n"
    b"CSeq: 1 OPTIONS\r\n"
    b"Content-Length: 0\r\n\r\n"
)


@pytest.fixture
async def transport() -> AsyncIterator[tuple[SipTransport, list[Request | Response]]]:
    received: list[Request | Response] = []

    def receive(message: Request | Response, peer: Peer) -> None:
        received.append(message)

    transport = SipTransport(HOST, 0, receive)
    transport.message_timeout = TIMEOUT
    await transport.start()
    yield transport, received
    await transport.close()


async def _closed_after(reader: asyncio.StreamReader) -> float:
    """Seconds until the bridge closes the connection (reading nothing but EOF)."""
    start = time.monotonic()
    assert await asyncio.wait_for(reader.read(), 5 * TIMEOUT) == b""
    return time.monotonic() - start


async def test_a_stalled_message_closes_the_connection(
    transport: tuple[SipTransport, list[Request | Response]],
) -> None:
    bridge, received = transport
    reader, writer = await asyncio.open_connection(HOST, bridge.port)
    writer.write(OPTIONS.replace(b"Content-Length: 0", b"Content-Length: 9999"))
    assert await _closed_after(reader) >= TIMEOUT * 0.9
    assert received == []
    writer.close()


async def test_trickled_bytes_do_not_extend_the_deadline(
    transport: tuple[SipTransport, list[Request | Response]],
) -> None:
    bridge, _ = transport
    reader, writer = await asyncio.open_connection(HOST, bridge.port)
    start = time.monotonic()
    closed = asyncio.ensure_future(reader.read())
    for byte in OPTIONS[:-4]:
        if closed.done():
            break
        writer.write(bytes([byte]))
        await asyncio.sleep(TIMEOUT / 10)
    assert await asyncio.wait_for(closed, TIMEOUT) == b""
    assert time.monotonic() - start < 2 * TIMEOUT
    writer.close()


async def test_keepalives_and_complete_messages_keep_the_connection(
    transport: tuple[SipTransport, list[Request | Response]],
) -> None:
    bridge, received = transport
    reader, writer = await asyncio.open_connection(HOST, bridge.port)
    writer.write(b"\r\n")  # a lone CRLF waits to see whether it is half a ping
    for _ in range(3):
        # Each message starts within the timeout but the whole sequence outlasts it.
        writer.write(OPTIONS[:20])
        await asyncio.sleep(TIMEOUT / 2)
        writer.write(OPTIONS[20:])
    await asyncio.sleep(TIMEOUT * 1.5)
    writer.write(b"\r\n\r\n")
    assert await asyncio.wait_for(reader.readexactly(2), TIMEOUT) == b"\r\n"
    assert len(received) == 3
    writer.close()
