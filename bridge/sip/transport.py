"""UDP and TCP transports (RFC 3261 §18) on one address and port.

Each message received is parsed; a request gets RFC 3581's received and rport on its top Via
(§18.2.1) and is handed up with the `Peer` its responses go to (§18.2.2, `response_peer`), whose
`source` is where the message came from: the datagram's or the connection's remote address,
which nothing in the message can change. What cannot be parsed is answered 400 back to its
source when it is a request with enough of an envelope to answer (validate.check decides), and
otherwise dropped with a debug log. Nothing a peer sends can stop a listener: a TCP stream that
can no longer be framed loses its connection, nothing else; nor can one that stalls
mid-message: it has `message_timeout` seconds from a message's first byte to its last.
Datagrams up to 65,535 bytes are read whole (asyncio reads up to 256 KiB).

The `admit` hook, when given, judges sources before there is a request to judge: a TCP
connection from a source it refuses is closed as soon as it is accepted, before anything is
read, and a message too malformed to parse from there gets no 400. Such a source learns that a
TCP port is open from the handshake, and nothing else.

TCP connections, ours and the peers', are kept by remote address and reused for every message
to that address, responses included; a CRLFCRLF ping is answered with a CRLF pong (RFC 5626).

What peers can hold is bounded. A connection accepted beyond `max_connections` in all or
`max_connections_per_source` from one address is closed at once. One accepted has
`message_timeout` seconds to send anything at all, as if a message began with the connection.
Any connection, ours included, that carries nothing either way for `idle_timeout` seconds is
closed: long enough that a live call's refreshes and a peer's keep-alives keep theirs open, and
a call that outlives it loses nothing, since RFC 3261 §18 has a peer open a new connection for
its next request, our responses go to the Via's sent-by when their connection is gone
(§18.2.2, `Peer.fallback`), and our requests to the remote target (`Dialog.next_hop`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Callable
from dataclasses import replace

from bridge.sip.framing import PONG, FramingError, Ping, StreamFramer, is_keepalive
from bridge.sip.message import MalformedMessage, Request, Response, parse
from bridge.sip.transaction import Address, Peer
from bridge.sip.validate import Reject, check, response_to

log = logging.getLogger(__name__)

DEFAULT_PORT = 5060
# 64*T1: by then the sender's client transaction has given up on the request (Timers B and F).
MESSAGE_TIMEOUT = 32.0
# Longer than the gaps a live peer leaves: RFC 5626 CRLF keep-alives come every 95-120 s over
# TCP, RFC 4028 refreshes every Session-Expires/2 (900 s at our 1800 s), OPTIONS pings every
# minute or so. Kamailio and OpenSIPS close after 120 s by default, but their sample configs
# raise it to 3605 s, above registration intervals, for UAs behind NAT; PJSIP (Asterisk) closes
# an incoming connection 600 s after the last transaction on it ended.
IDLE_TIMEOUT = 3600.0
# A bridge takes at most a few hundred calls (UserAgentConfig.max_calls: 200), mostly over a few
# trunk connections. 512 connections and the two RTP sockets of each of 200 calls still fit in
# the usual 1024-descriptor soft limit; a source gets a quarter of that, so one misbehaving
# peer cannot take every connection, and even a peer that opens one per call gets 128 calls.
MAX_CONNECTIONS = 512
MAX_CONNECTIONS_PER_SOURCE = 128

Receiver = Callable[[Request | Response, Peer], None]
Admit = Callable[[Address], bool]


def stamp_via(request: Request, source: Address) -> None:
    """§18.2.1 and RFC 3581 §4: received= when the source differs from the sent-by host (and
    always when rport is asked for), rport= the source port when asked for."""
    via = request.top_via
    host, port = source
    if via.wants_rport:
        via = via.with_param("received", host).with_param("rport", str(port))
    elif via.host.strip("[]").lower() != host.lower():
        via = via.with_param("received", host)
    else:
        return
    request.set_top_via(via)


def response_peer(request: Request, source: Address, transport: str) -> Peer:
    """Where the responses to a request that came from `source` go (§18.2.2, RFC 3581 §4), read
    from its top Via once `stamp_via` has run. A maddr that is a host name is ignored: it would
    need RFC 3263 lookups, and a socket's sendto does them synchronously, stalling the event
    loop for as long as the peer's DNS takes."""
    via = request.top_via
    host = via.received or via.host.strip("[]")
    sent_by_port = via.port or DEFAULT_PORT
    if transport != "UDP":
        return Peer(transport, source, (host, sent_by_port))
    maddr = None if via.maddr is None else via.maddr.strip("[]")
    if maddr is not None and _is_address(maddr):
        return Peer(transport, (maddr, sent_by_port))
    return Peer(transport, (host, via.rport or sent_by_port))


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class SipTransport:
    """Listens on UDP and TCP at `host`:`port` (0: any free port, the same for both) and hands
    each message to `receiver`; `send` writes to a peer."""

    message_timeout: float = MESSAGE_TIMEOUT
    """Seconds a TCP peer has to complete a message once it has sent part of it; then the
    connection is closed, since a message that never completes (a Content-Length beyond what
    follows, a header section without its empty line) would otherwise hold it forever. On a
    connection we accepted, the first message's time runs from the accept, so that one which
    never sends a byte is closed too."""
    idle_timeout: float = IDLE_TIMEOUT
    """Seconds a TCP connection may carry nothing either way before it is closed."""
    max_connections: int = MAX_CONNECTIONS
    """TCP connections accepted and still open, at most; a new one beyond is closed at once."""
    max_connections_per_source: int = MAX_CONNECTIONS_PER_SOURCE
    """The same, for the connections from one IP address."""

    def __init__(
        self,
        host: str,
        port: int,
        receiver: Receiver,
        on_unreachable: Callable[[Address], None] | None = None,
        admit: Admit | None = None,
    ) -> None:
        """`on_unreachable` hears of each TCP connection that could not be opened, with the
        messages queued for it dropped (TransactionTable.transport_failed). `admit`, asked
        about the source of each TCP connection accepted and of each message too malformed to
        parse, says whether it may be served at all; None: every source may."""
        self.host = host
        self.port = port
        self._receiver = receiver
        self._on_unreachable = on_unreachable
        self._admit_source = admit
        self._udp: asyncio.DatagramTransport | None = None
        self._server: asyncio.Server | None = None
        self._connections: dict[Address, _TcpConnection] = {}
        self._accepted_connections: set[_TcpConnection] = set()
        self._connecting: dict[Address, list[bytes]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._open = False

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        # With port 0 the UDP port is picked first and TCP must get the same one, which
        # another process may hold: try a few.
        for _ in range(10):
            udp, _ = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), local_addr=(self.host, self.port)
            )
            bound = udp.get_extra_info("sockname")[1]
            try:
                self._server = await loop.create_server(
                    lambda: _TcpConnection(self, accepted=True),
                    self.host,
                    bound,
                    reuse_address=True,
                )
            except OSError:
                udp.close()
                if self.port:
                    raise
                continue
            self._udp = udp
            self.port = bound
            self._open = True
            return
        raise OSError(f"no port free for both UDP and TCP on {self.host}")

    async def close(self) -> None:
        self._open = False
        if self._udp is not None:
            self._udp.close()
        for task in list(self._tasks):
            task.cancel()
        for connection in list(self._connections.values()):
            connection.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def send(self, data: bytes, peer: Peer) -> None:
        """Raises OSError unless started and not closed: transaction timers go on firing after
        `close`, and a transaction fails on this as on any transport error."""
        if not self._open:
            raise OSError("transport not open")
        if peer.transport == "UDP":
            assert self._udp is not None
            self._udp.sendto(data, peer.address)
        else:
            self._send_stream(data, peer)

    def _send_stream(self, data: bytes, peer: Peer) -> None:
        for address in (peer.address, peer.fallback):
            connection = None if address is None else self._connections.get(address)
            if connection is not None and not connection.closing:
                connection.write(data)
                return
        target = peer.fallback or peer.address
        queued = self._connecting.get(target)
        if queued is not None:
            queued.append(data)
            return
        self._connecting[target] = [data]
        task = asyncio.get_running_loop().create_task(self._connect(target))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, target: Address) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, connection = await loop.create_connection(
                lambda: _TcpConnection(self, accepted=False), target[0], target[1]
            )
        except OSError as exc:
            dropped = self._connecting.pop(target, [])
            log.debug(
                "TCP connect to %s failed, %d messages dropped: %s", target, len(dropped), exc
            )
            if self._on_unreachable is not None:
                self._on_unreachable(target)
            return
        for data in self._connecting.pop(target, []):
            connection.write(data)

    def _admit(self, connection: _TcpConnection) -> bool:
        """Whether a connection just accepted is from a source `admit` lets in and within the
        limits; it then counts against them until it closes."""
        source = connection.remote[0]
        if not self._admitted(connection.remote):
            log.debug("refused a TCP connection from %s: source not admitted", source)
            return False
        if len(self._accepted_connections) >= self.max_connections:
            log.debug(
                "refused a TCP connection from %s: %d open", source, len(self._accepted_connections)
            )
            return False
        if sum(other.remote[0] == source for other in self._accepted_connections) >= (
            self.max_connections_per_source
        ):
            log.debug("refused a TCP connection from %s: too many from there", source)
            return False
        self._accepted_connections.add(connection)
        return True

    def _admitted(self, source: Address) -> bool:
        return self._admit_source is None or self._admit_source(source)

    def _register(self, connection: _TcpConnection) -> None:
        self._connections[connection.remote] = connection

    def _unregister(self, connection: _TcpConnection) -> None:
        self._accepted_connections.discard(connection)
        if self._connections.get(connection.remote) is connection:
            del self._connections[connection.remote]

    def _datagram(self, data: bytes, source: Address) -> None:
        if is_keepalive(data):
            return
        self._message(data, source, "UDP")

    def _message(self, data: bytes, source: Address, transport: str) -> None:
        try:
            message = parse(data, datagram=transport == "UDP")
        except MalformedMessage as exc:
            self._malformed(exc, source, transport)
            return
        peer = Peer(transport, source)
        if isinstance(message, Request) and "Via" in message.headers:
            stamp_via(message, source)
            peer = response_peer(message, source, transport)
        try:
            self._receiver(message, replace(peer, source=source))
        except Exception:
            # A bug above must cost one message, not the listener.
            log.exception("failed to handle a message from %s over %s", source, transport)

    def _malformed(self, error: MalformedMessage, source: Address, transport: str) -> None:
        if not self._admitted(source):
            log.debug(
                "dropped a malformed message from %s over %s: source not admitted",
                source,
                transport,
            )
            return
        verdict = check(error)
        if not isinstance(verdict, Reject) or error.envelope is None:
            log.debug("dropped a message from %s over %s: %s", source, transport, error)
            return
        response = response_to(error.envelope, verdict.status, verdict.reason, verdict.headers)
        log.debug("answered %d to a message from %s: %s", verdict.status, source, error)
        # The Via may be what is malformed: answer where the message came from.
        self.send(response.to_bytes(), Peer(transport, source))


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, owner: SipTransport) -> None:
        self._owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self._owner._datagram(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        # ICMP errors for earlier datagrams (port unreachable): the transactions time out.
        log.debug("UDP error: %s", exc)


class _TcpConnection(asyncio.Protocol):
    def __init__(self, owner: SipTransport, *, accepted: bool) -> None:
        self._owner = owner
        self._accepted = accepted
        self._framer = StreamFramer()
        self._transport: asyncio.Transport | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._idle: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()
        self._last_traffic = self._loop.time()
        self.remote: Address = ("", 0)

    @property
    def closing(self) -> bool:
        return self._transport is None or self._transport.is_closing()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peername = transport.get_extra_info("peername")
        self.remote = (str(peername[0]), int(peername[1]))
        if self._accepted and not self._owner._admit(self):
            self.close()
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._owner._register(self)
        self._idle = self._loop.call_later(self._owner.idle_timeout, self._check_idle)
        if self._accepted:
            self._deadline = self._loop.call_later(self._owner.message_timeout, self._stalled)

    def data_received(self, data: bytes) -> None:
        self._last_traffic = self._loop.time()
        try:
            items = self._framer.feed(data)
        except FramingError as exc:
            log.debug("closing TCP connection from %s: %s", self.remote, exc)
            self.close()
            return
        for item in items:
            if isinstance(item, Ping):
                self.write(PONG)
            else:
                self._owner._message(item, self.remote, "TCP")
        # Each message gets the whole timeout from its own first byte (on an accepted connection,
        # the first one from the accept).
        if any(not isinstance(item, Ping) for item in items) or not self._framer.in_message:
            self._stop_deadline()
        if self._framer.in_message and self._deadline is None and not self.closing:
            self._deadline = self._loop.call_later(self._owner.message_timeout, self._stalled)

    def _stalled(self) -> None:
        self._deadline = None
        log.debug(
            "closing TCP connection from %s: %s after %g s",
            self.remote,
            f"{self._framer.pending} bytes of a message still unfinished"
            if self._framer.pending
            else "nothing received",
            self._owner.message_timeout,
        )
        self.close()

    def _check_idle(self) -> None:
        # One timer per connection, moved only when it fires: rescheduling it for every
        # message would cost a timer handle each.
        left = self._last_traffic + self._owner.idle_timeout - self._loop.time()
        if left > 0:
            self._idle = self._loop.call_later(left, self._check_idle)
            return
        self._idle = None
        log.debug(
            "closing TCP connection with %s: no traffic for %g s",
            self.remote,
            self._owner.idle_timeout,
        )
        self.close()

    def _stop_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_deadline()
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        self._owner._unregister(self)

    def write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._last_traffic = self._loop.time()
            self._transport.write(data)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
