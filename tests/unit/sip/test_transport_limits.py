"""What TCP peers can hold of the transport: connections accepted beyond `max_connections`, or
beyond `max_connections_per_source` from one address, are closed at once; a connection that
carries nothing either way for `idle_timeout` is closed, ours as well as the peers'; one
accepted that never sends a byte is closed after `message_timeout`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from bridge.sip.message import Request, Response
from bridge.sip.transaction import Peer
from bridge.sip.transport import (
    IDLE_TIMEOUT,
    MAX_CONNECTIONS,
    MAX_CONNECTIONS_PER_SOURCE,
    MESSAGE_TIMEOUT,
    SipTransport,
)

HOST = "127.0.0.1"
OTHER_SOURCE = "127.0.0.2"
IDLE = 0.4
QUICK = 0.2
"""Seconds within which a refused connection is seen closed."""

OPTIONS = (
    b"OPTIONS sip:bot@127.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP client.example;branch=z9hG4bKlimits\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:alice@example.com>;tag=a1\r\n"
    b"To: <sip:bot@127.0.0.1>\r\n"
    b"Call-ID: limits@example.com\r\n"
    b"CSeq: 1 OPTIONS\r\n"
    b"Content-Length: 0\r\n\r\n"
)

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class Bridge:
    def __init__(self) -> None:
        self.received: list[Request | Response] = []
        self.transport = SipTransport(HOST, 0, lambda message, peer: self.received.append(message))
        self.writers: list[asyncio.StreamWriter] = []

    async def connect(self, source: str = HOST) -> Connection:
        """A connection that has sent a message, so that only the idle timeout applies."""
        reader, writer = await asyncio.open_connection(
            HOST, self.transport.port, local_addr=(source, 0)
        )
        self.writers.append(writer)
        writer.write(OPTIONS)
        await writer.drain()
        return reader, writer

    async def delivered(self, count: int) -> bool:
        """Whether the bridge has read `count` messages by now (waiting a little for them)."""
        for _ in range(50):
            if len(self.received) >= count:
                break
            await asyncio.sleep(0.01)
        return len(self.received) == count


@pytest.fixture
async def bridge() -> AsyncIterator[Bridge]:
    bridge = Bridge()
    bridge.transport.idle_timeout = IDLE
    await bridge.transport.start()
    yield bridge
    for writer in bridge.writers:
        writer.close()
    await bridge.transport.close()


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), seconds) == b""
    except ConnectionResetError:
        # Closed with our message unread in its buffer: the kernel resets the connection.
        return True
    except TimeoutError:
        return False


def test_the_defaults() -> None:
    assert SipTransport.idle_timeout == IDLE_TIMEOUT == 3600
    assert SipTransport.max_connections == MAX_CONNECTIONS == 512
    assert SipTransport.max_connections_per_source == MAX_CONNECTIONS_PER_SOURCE == 128
    assert SipTransport.message_timeout == MESSAGE_TIMEOUT == 32


# --- idle connections ------------------------------------------------------------------------


async def test_an_idle_connection_is_closed(bridge: Bridge) -> None:
    reader, _ = await bridge.connect()
    start = time.monotonic()
    assert await closed_within(reader, 3 * IDLE)
    assert IDLE * 0.9 <= time.monotonic() - start < 2 * IDLE
    assert await bridge.delivered(1)


async def test_keepalives_keep_a_connection_open(bridge: Bridge) -> None:
    reader, writer = await bridge.connect()
    for _ in range(6):
        await asyncio.sleep(IDLE / 3)
        writer.write(b"\r\n\r\n")
        assert await asyncio.wait_for(reader.readexactly(2), IDLE) == b"\r\n"
    assert await closed_within(reader, 3 * IDLE)


async def test_what_the_bridge_sends_keeps_a_connection_open(bridge: Bridge) -> None:
    """A call whose peer sends nothing, but to which the bridge sends (session refreshes, say)."""
    reader, writer = await bridge.connect()
    host, port = writer.get_extra_info("sockname")[:2]
    for _ in range(6):
        await asyncio.sleep(IDLE / 3)
        bridge.transport.send(b"\r\n\r\n", Peer("TCP", (host, port)))
        assert await asyncio.wait_for(reader.readexactly(4), IDLE) == b"\r\n\r\n"
    assert await closed_within(reader, 3 * IDLE)


async def test_a_connection_the_bridge_opened_is_closed_when_idle(bridge: Bridge) -> None:
    accepted: asyncio.Queue[asyncio.StreamReader] = asyncio.Queue()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        bridge.writers.append(writer)
        accepted.put_nowait(reader)

    server = await asyncio.start_server(serve, HOST, 0)
    try:
        port = server.sockets[0].getsockname()[1]
        bridge.transport.send(OPTIONS, Peer("TCP", (HOST, port)))
        reader = await asyncio.wait_for(accepted.get(), 1)
        assert await reader.readexactly(len(OPTIONS)) == OPTIONS
        start = time.monotonic()
        assert await closed_within(reader, 3 * IDLE)
        assert time.monotonic() - start >= IDLE * 0.9
    finally:
        server.close()


async def test_a_connection_that_never_sends_is_closed_after_the_message_timeout(
    bridge: Bridge,
) -> None:
    bridge.transport.message_timeout = IDLE / 4
    reader, writer = await asyncio.open_connection(HOST, bridge.transport.port)
    bridge.writers.append(writer)
    start = time.monotonic()
    assert await closed_within(reader, IDLE)
    assert IDLE / 4 * 0.9 <= time.monotonic() - start < IDLE / 2


# --- how many --------------------------------------------------------------------------------


async def test_connections_beyond_the_total_are_refused_at_once(bridge: Bridge) -> None:
    bridge.transport.max_connections = 3
    bridge.transport.idle_timeout = 60
    kept = [await bridge.connect(), await bridge.connect(), await bridge.connect(OTHER_SOURCE)]
    assert await bridge.delivered(3)
    for source in (HOST, OTHER_SOURCE):
        reader, _ = await bridge.connect(source)
        assert await closed_within(reader, QUICK)
    assert await bridge.delivered(3)
    # The slot of a connection that ends is free again.
    kept[0][1].close()
    await asyncio.sleep(QUICK)
    reader, _ = await bridge.connect()
    assert not await closed_within(reader, QUICK)
    assert await bridge.delivered(4)
    assert not any(r.at_eof() for r, _ in kept[1:])


async def test_connections_beyond_the_share_of_one_source_are_refused_at_once(
    bridge: Bridge,
) -> None:
    bridge.transport.max_connections_per_source = 2
    bridge.transport.idle_timeout = 60
    kept = [await bridge.connect(), await bridge.connect()]
    refused, _ = await bridge.connect()
    assert await closed_within(refused, QUICK)
    other, _ = await bridge.connect(OTHER_SOURCE)
    assert not await closed_within(other, QUICK)
    assert await bridge.delivered(3)
    assert not any(r.at_eof() for r, _ in kept)
