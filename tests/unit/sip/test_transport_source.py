"""What the transport tells the layers above about where a message came from (`Peer.source`,
the packet's or the connection's remote address whatever the Via says), and its `admit` hook:
asked about each TCP connection accepted and each message too malformed to parse, before any
request can be judged."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import cast

import pytest

from bridge.sip.message import Request, Response
from bridge.sip.transaction import Address, Peer
from bridge.sip.transport import SipTransport
from tests.unit.sip.test_transport_limits import QUICK, closed_within

HOST = "127.0.0.1"
REFUSED = "127.0.0.2"


def options(via: str, *, cseq: str = "1", transport: str = "UDP") -> bytes:
    return (
        f"OPTIONS sip:bot@{HOST} SIP/2.0\r\nVia: SIP/2.0/{transport} {via}\r\n"
        f"From: <sip:a@example.com>;tag=1\r\nTo: <sip:bot@{HOST}>\r\nCall-ID: {via}\r\n"
        f"CSeq: {cseq} OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()


class Bridge:
    """A transport whose `admit` refuses `REFUSED` and records what it was asked."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[Request | Response, Peer]] = asyncio.Queue()
        self.asked: list[Address] = []
        self.transport = SipTransport(
            HOST,
            0,
            lambda message, peer: self.received.put_nowait((message, peer)),
            admit=self.admit,
        )

    def admit(self, source: Address) -> bool:
        self.asked.append(source)
        return source[0] != REFUSED

    async def next(self) -> tuple[Request | Response, Peer]:
        return await asyncio.wait_for(self.received.get(), 2)


@pytest.fixture
async def bridge() -> AsyncIterator[Bridge]:
    bridge = Bridge()
    await bridge.transport.start()
    yield bridge
    await bridge.transport.close()


class Datagrams(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.received.put_nowait(data)


async def udp_socket(host: str) -> tuple[asyncio.DatagramTransport, Datagrams, int]:
    endpoint, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
        Datagrams, local_addr=(host, 0)
    )
    # The selector loop's datagram transport does not subclass DatagramTransport.
    transport = cast(asyncio.DatagramTransport, endpoint)
    return transport, protocol, int(transport.get_extra_info("sockname")[1])


@pytest.mark.parametrize(
    "via",
    [
        "10.1.1.1:5070;branch=z9hG4bKnat",
        "198.51.100.7;branch=z9hG4bKmaddr;maddr=192.0.2.1",
        "203.0.113.9;branch=z9hG4bKclaim;received=198.51.100.7",
        "10.1.1.1;branch=z9hG4bKrport;rport",
    ],
)
async def test_over_udp_the_source_is_where_the_datagram_came_from(
    bridge: Bridge, via: str
) -> None:
    sender, _, port = await udp_socket(HOST)
    try:
        sender.sendto(options(via), (HOST, bridge.transport.port))
        message, peer = await bridge.next()
    finally:
        sender.close()
    assert isinstance(message, Request)
    assert peer.source == (HOST, port)
    assert bridge.asked == [], "a message that parses is for the layers above to judge"


async def test_the_source_is_not_where_responses_go(bridge: Bridge) -> None:
    sender, _, port = await udp_socket(HOST)
    try:
        sender.sendto(options("10.1.1.1:5070;branch=z9hG4bKnat"), (HOST, bridge.transport.port))
        _, peer = await bridge.next()
    finally:
        sender.close()
    assert peer.address == (HOST, 5070) and peer.source == (HOST, port)


async def test_over_tcp_the_source_is_the_connection(bridge: Bridge) -> None:
    _, writer = await asyncio.open_connection(HOST, bridge.transport.port)
    try:
        writer.write(options("client.example:5070;branch=z9hG4bKtcp", transport="TCP"))
        message, peer = await bridge.next()
        local = writer.get_extra_info("sockname")[:2]
    finally:
        writer.close()
    assert isinstance(message, Request)
    assert peer.source == (local[0], local[1]) == peer.address
    assert peer.fallback == (HOST, 5070)
    assert bridge.asked == [peer.source]


async def test_a_malformed_request_from_a_refused_source_gets_no_400(bridge: Bridge) -> None:
    refused, refused_socket, refused_port = await udp_socket(REFUSED)
    admitted, admitted_socket, admitted_port = await udp_socket(HOST)
    try:
        for sender, port in ((refused, refused_port), (admitted, admitted_port)):
            broken = options(f"{HOST}:{port};branch=z9hG4bKbad;rport", cseq="one")
            sender.sendto(broken, (HOST, bridge.transport.port))
        answer = await asyncio.wait_for(admitted_socket.received.get(), 2)
        assert answer.startswith(b"SIP/2.0 400 Malformed CSeq Header\r\n")
        # Loopback datagrams are read in order: the refused one was dealt with first.
        assert refused_socket.received.empty()
    finally:
        refused.close()
        admitted.close()
    assert bridge.asked == [(REFUSED, refused_port), (HOST, admitted_port)]
    assert bridge.received.empty()


async def test_a_tcp_connection_from_a_refused_source_is_closed_at_once(bridge: Bridge) -> None:
    bridge.transport.max_connections = 1
    reader, writer = await asyncio.open_connection(
        HOST, bridge.transport.port, local_addr=(REFUSED, 0)
    )
    try:
        writer.write(options("client.example;branch=z9hG4bKrefused", transport="TCP"))
        assert await closed_within(reader, QUICK)
    finally:
        writer.close()
    assert bridge.received.empty()
    # A refused connection took no slot: the only one is free for an admitted source.
    reader, writer = await asyncio.open_connection(HOST, bridge.transport.port)
    try:
        writer.write(options("client.example;branch=z9hG4bKadmitted", transport="TCP"))
        await bridge.next()
        assert not await closed_within(reader, QUICK)
    finally:
        writer.close()
    assert [source[0] for source in bridge.asked] == [REFUSED, HOST]
