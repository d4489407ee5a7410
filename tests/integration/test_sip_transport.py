"""The UDP and TCP transports on real loopback sockets, with the transaction table above them
and a TU that answers 200 to every request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import cast

import pytest

from bridge.sip.message import Request, Response, parse
from bridge.sip.timers import AsyncioClock
from bridge.sip.transaction import (
    Failure,
    InviteServerTransaction,
    NonInviteServerTransaction,
    Peer,
    ServerTransaction,
)
from bridge.sip.transaction_table import TransactionTable
from bridge.sip.transport import SipTransport, response_peer, stamp_via
from bridge.sip.validate import response_to

HOST = "127.0.0.1"
WAIT = 2.0


class AnswerAll:
    def __init__(self) -> None:
        self.requests: list[Request] = []

    def on_request(self, transaction: ServerTransaction) -> None:
        self.requests.append(transaction.request)
        transaction.send_response(response_to(transaction.request, 200, to_tag="uas"))

    def on_cancel(
        self, cancel: NonInviteServerTransaction, invite: InviteServerTransaction
    ) -> None:
        cancel.send_response(response_to(cancel.request, 200, to_tag="uas"))

    def on_ack(self, ack: Request, peer: Peer) -> None:
        self.requests.append(ack)

    def on_server_failure(self, transaction: ServerTransaction, failure: Failure) -> None:
        pass


class Bridge:
    def __init__(self) -> None:
        self.tu = AnswerAll()
        self.transport = SipTransport(HOST, 0, self._receive, self._unreachable)
        self.table = TransactionTable(self.transport.send, self.tu, AsyncioClock())

    def _receive(self, message: Request | Response, peer: Peer) -> None:
        self.table.receive(message, peer)

    def _unreachable(self, address: tuple[str, int]) -> None:
        self.table.transport_failed(address)

    @property
    def address(self) -> tuple[str, int]:
        return (HOST, self.transport.port)


@pytest.fixture
async def bridge() -> AsyncIterator[Bridge]:
    bridge = Bridge()
    await bridge.transport.start()
    yield bridge
    await bridge.transport.close()


class UdpPeer(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's datagram transport does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.received.put_nowait(data)

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def send(self, data: bytes, address: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(data, address)

    async def response(self) -> Response:
        message = parse(await asyncio.wait_for(self.received.get(), WAIT), datagram=True)
        assert isinstance(message, Response)
        return message


async def udp_peer() -> UdpPeer:
    _, peer = await asyncio.get_running_loop().create_datagram_endpoint(
        UdpPeer, local_addr=(HOST, 0)
    )
    return peer


def options(via: str, branch: str, *, body: bytes = b"", transport: str = "UDP") -> bytes:
    head = (
        "OPTIONS sip:bot@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {via};branch={branch}\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@example.com>;tag=a1\r\n"
        "To: <sip:bot@127.0.0.1>\r\n"
        f"Call-ID: {branch}@example.com\r\n"
        "CSeq: 1 OPTIONS\r\n"
        + ("Content-Type: text/plain\r\n" if body else "")
        + f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def test_udp_response_goes_to_the_source_port_with_rport(bridge: Bridge) -> None:
    peer = await udp_peer()
    peer.send(options("198.51.100.7:5999;rport", "z9hG4bKrport"), bridge.address)
    response = await peer.response()
    assert response.status == 200
    via = response.top_via
    assert via.received == HOST and via.rport == peer.port


async def test_udp_response_without_rport_goes_to_the_sent_by_port(bridge: Bridge) -> None:
    sender, listener = await udp_peer(), await udp_peer()
    sender.send(options(f"{HOST}:{listener.port}", "z9hG4bKsentby"), bridge.address)
    response = await listener.response()
    assert response.status == 200 and response.top_via.received is None
    assert sender.received.empty()


async def test_udp_accepts_a_large_datagram(bridge: Bridge) -> None:
    peer = await udp_peer()
    peer.send(options("h.example;rport", "z9hG4bKbig", body=b"x" * 60000), bridge.address)
    assert (await peer.response()).status == 200
    assert len(bridge.tu.requests[-1].body) == 60000


async def test_malformed_datagrams_get_400_or_silence_and_serving_goes_on(bridge: Bridge) -> None:
    peer = await udp_peer()
    broken = options("h.example;rport", "z9hG4bKbad").replace(b"CSeq: 1", b"CSeq: one")
    peer.send(broken, bridge.address)
    # The 400 copies the CSeq it could not read, so it is checked as bytes.
    answer = await asyncio.wait_for(peer.received.get(), WAIT)
    assert answer.startswith(b"SIP/2.0 400 Malformed CSeq Header\r\n")
    assert b"branch=z9hG4bKbad" in answer
    for garbage in (b"\x00\xff garbage", b"SIP/2.0 999 Nope\r\n\r\n", b"\r\n\r\n", b""):
        peer.send(garbage, bridge.address)
    peer.send(options("h.example;rport", "z9hG4bKafter"), bridge.address)
    assert (await peer.response()).status == 200
    assert peer.received.empty()


async def tcp_connect(bridge: Bridge) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(*bridge.address)


async def read_response(reader: asyncio.StreamReader) -> Response:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    message = parse(head, datagram=False)
    assert isinstance(message, Response) and message.content_length == 0
    return message


async def test_tcp_two_messages_in_one_segment(bridge: Bridge) -> None:
    reader, writer = await tcp_connect(bridge)
    one = options("client.example", "z9hG4bKt1", transport="TCP")
    two = options("client.example", "z9hG4bKt2", transport="TCP")
    writer.write(one + two)
    first, second = await read_response(reader), await read_response(reader)
    assert [first.top_via.branch, second.top_via.branch] == ["z9hG4bKt1", "z9hG4bKt2"]
    assert first.top_via.received == HOST
    writer.close()


async def test_tcp_message_split_across_segments_and_keepalive(bridge: Bridge) -> None:
    reader, writer = await tcp_connect(bridge)
    message = options("client.example", "z9hG4bKsplit", body=b"hello", transport="TCP")
    for start, end in ((0, 50), (50, len(message) - 2), (len(message) - 2, len(message))):
        writer.write(message[start:end])
        await writer.drain()
        await asyncio.sleep(0.02)
    assert (await read_response(reader)).status == 200
    assert bridge.tu.requests[-1].body == b"hello"
    writer.write(b"\r\n\r\n")
    assert await asyncio.wait_for(reader.readexactly(2), WAIT) == b"\r\n"
    writer.close()


async def test_tcp_bad_framing_closes_only_that_connection(bridge: Bridge) -> None:
    reader, writer = await tcp_connect(bridge)
    writer.write(b"OPTIONS sip:x SIP/2.0\r\nContent-Length: many\r\n\r\n")
    assert await asyncio.wait_for(reader.read(), WAIT) == b""
    reader, writer = await tcp_connect(bridge)
    writer.write(options("client.example", "z9hG4bKok", transport="TCP"))
    assert (await read_response(reader)).status == 200
    writer.close()


async def test_tcp_connections_are_reused_by_remote_address(bridge: Bridge) -> None:
    accepted: asyncio.Queue[asyncio.StreamReader] = asyncio.Queue()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.put_nowait(reader)

    server = await asyncio.start_server(on_connect, HOST, 0)
    port = server.sockets[0].getsockname()[1]
    peer = Peer("TCP", (HOST, port))
    first = options(f"{HOST}:{bridge.transport.port}", "z9hG4bKout1", transport="TCP")
    second = options(f"{HOST}:{bridge.transport.port}", "z9hG4bKout2", transport="TCP")
    bridge.transport.send(first, peer)
    bridge.transport.send(second, peer)
    reader = await asyncio.wait_for(accepted.get(), WAIT)
    data = await asyncio.wait_for(reader.readexactly(len(first) + len(second)), WAIT)
    assert data == first + second
    bridge.transport.send(first, peer)
    assert await asyncio.wait_for(reader.readexactly(len(first)), WAIT) == first
    assert accepted.empty()
    server.close()
    await server.wait_closed()


async def test_tcp_malformed_request_gets_400_on_its_connection(bridge: Bridge) -> None:
    reader, writer = await tcp_connect(bridge)
    broken = options("client.example", "z9hG4bKtcpbad", transport="TCP")
    writer.write(broken.replace(b"To: <sip:bot@127.0.0.1>", b"To: <sip:bot@127.0.0.1"))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    assert head.startswith(b"SIP/2.0 400 Malformed To Header\r\n")
    writer.write(options("client.example", "z9hG4bKtcpgood", transport="TCP"))
    assert (await read_response(reader)).status == 200
    writer.close()


async def test_a_port_in_use_fails_start(bridge: Bridge) -> None:
    fixed = SipTransport(HOST, bridge.transport.port, lambda message, peer: None)
    with pytest.raises(OSError):
        await fixed.start()


async def test_a_refused_tcp_connection_fails_the_transaction_at_once(bridge: Bridge) -> None:
    closed = await asyncio.start_server(lambda r, w: None, HOST, 0)
    port = closed.sockets[0].getsockname()[1]
    closed.close()
    await closed.wait_closed()
    got: asyncio.Queue[Response] = asyncio.Queue()
    request = parse(options(f"{HOST}:{bridge.transport.port}", "z9hG4bKgone"), datagram=True)
    assert isinstance(request, Request)
    transaction = bridge.table.start_client(request, Peer("TCP", (HOST, port)), got.put_nowait)
    assert (await asyncio.wait_for(got.get(), WAIT)).status == 503
    assert transaction.failure is Failure.TRANSPORT


def request_from(via: str) -> Request:
    message = parse(options(via, "z9hG4bKpure"), datagram=True)
    assert isinstance(message, Request)
    return message


def test_stamp_via_and_response_peer() -> None:
    same = request_from("192.0.2.1:5070")
    stamp_via(same, ("192.0.2.1", 40000))
    assert same.top_via.received is None
    assert response_peer(same, ("192.0.2.1", 40000), "UDP") == Peer("UDP", ("192.0.2.1", 5070))

    natted = request_from("10.0.0.5;rport")
    stamp_via(natted, ("203.0.113.9", 31000))
    assert str(natted.top_via).endswith(";rport=31000;branch=z9hG4bKpure;received=203.0.113.9")
    assert response_peer(natted, ("203.0.113.9", 31000), "UDP").address == ("203.0.113.9", 31000)

    over_tcp = request_from("client.example:5062")
    stamp_via(over_tcp, ("198.51.100.4", 50123))
    assert response_peer(over_tcp, ("198.51.100.4", 50123), "TCP") == Peer(
        "TCP", ("198.51.100.4", 50123), ("198.51.100.4", 5062)
    )
