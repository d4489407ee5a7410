"""The transaction layer of RFC 3261 §17, with the INVITE changes of RFC 6026.

Four state machines, pure logic: they read messages handed to them, write bytes through a
`send(data, peer)` callback and schedule their timers on a `Clock`. Retransmission timers (A, E,
G) run over UDP only; the wait-for-stragglers timers (D, I, J, K) are zero over TCP.

- `InviteServerTransaction` answers 100 Trying at once (`trying()`; §17.2.1: our TU answers
  180 quickly, but not always within 200 ms, and a 100 stops the caller's retransmissions
  early), absorbs retransmitted INVITEs by resending the last response, retransmits a non-2xx
  final response (Timer G) until the ACK, which it absorbs. After a 2xx it waits in RFC 6026's
  Accepted state: the TU (the dialog) retransmits the 2xx through `send_response` until the
  ACK, which the transaction hands to the TU along with any ACK that matches no transaction
  (`AnswerRetransmission` is that TU schedule).
- `NonInviteServerTransaction`: resends its last response to retransmitted requests.
- `InviteClientTransaction`: Timer A doubling (without the T2 cap of Timer E, per §17.1.1.2),
  Timer B, the ACK for a non-2xx final response built and retransmitted here (§17.1.1.3), the
  Accepted state (Timer M) in which further 2xx responses still reach the TU to be ACKed.
- `NonInviteClientTransaction`: Timer E doubling to T2, Timer F, Timer K.

A client transaction reports a timeout (Timer B or F) or a transport error as the response
§8.1.3.1 says the TU should take it for: a local 408 or 503, with `failure` set.

`TransactionTable` matches incoming messages (§17.1.3, §17.2.3 with the RFC 2543 fallback for
branches without the magic cookie, §9.2 for CANCEL) and routes the rest to the TU.
"""

from __future__ import annotations

import logging
import secrets
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Protocol, TypeVar

from bridge.sip.fields import MAGIC_COOKIE, CSeq, Via
from bridge.sip.grammar import SipParseError
from bridge.sip.headers import Headers
from bridge.sip.message import Request, Response
from bridge.sip.timers import DEFAULT_TIMERS, Clock, TimerHandle, Timers
from bridge.sip.uri import uri_equal
from bridge.sip.validate import DEFAULT_POLICY, Drop, Reject, UasPolicy, check, response_to

log = logging.getLogger(__name__)

Address = tuple[str, int]
K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class Peer:
    """Where a message came from or goes to. For the response to a TCP request, `address` is
    the connection it came in on and `fallback` where §18.2.2 says to connect when that
    connection is gone (the received address and the sent-by port). On what the transport
    hands up, `source` is where the message came from: over UDP, unlike `address`, no Via can
    change it. It says nothing about where messages go, so two peers that differ only in it
    are equal."""

    transport: str
    address: Address
    fallback: Address | None = None
    source: Address | None = field(default=None, compare=False)

    @property
    def reliable(self) -> bool:
        return self.transport != "UDP"


Send = Callable[[bytes, Peer], None]
# §18.1.1: with the path MTU unknown, a request over 1300 bytes belongs on a congestion
# controlled transport.
MAX_UDP_REQUEST = 1300


class State(Enum):
    TRYING = "trying"
    CALLING = "calling"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    ACCEPTED = "accepted"
    TERMINATED = "terminated"


class Failure(Enum):
    TIMEOUT = "timeout"
    TRANSPORT = "transport"


def new_branch() -> str:
    return MAGIC_COOKIE + secrets.token_hex(10)


class Transaction(ABC):
    """What the four machines share: the request, timers and termination."""

    def __init__(
        self, request: Request, peer: Peer, send: Send, clock: Clock, timers: Timers
    ) -> None:
        self.request = request
        self.peer = peer
        self.state = State.TRYING
        self._send = send
        self._clock = clock
        self._timers = timers
        self._handles: dict[str, TimerHandle] = {}
        self.on_terminated: Callable[[Transaction], None] | None = None

    def _start_timer(self, name: str, delay: float, callback: Callable[[], None]) -> None:
        self._cancel_timer(name)
        self._handles[name] = self._clock.call_later(delay, callback)

    def _cancel_timer(self, name: str) -> None:
        handle = self._handles.pop(name, None)
        if handle is not None:
            handle.cancel()

    def _transmit(self, data: bytes) -> bool:
        try:
            self._send(data, self.peer)
        except OSError as exc:
            log.debug("transport error sending to %s: %s", self.peer, exc)
            self._failed(Failure.TRANSPORT)
            return False
        return True

    def _wait_then_terminate(self, name: str, delay: float) -> None:
        """Linger for stragglers over UDP; over a reliable transport there are none."""
        if self.peer.reliable or delay <= 0:
            self._terminate()
        else:
            self._start_timer(name, delay, self._terminate)

    def _terminate(self) -> None:
        if self.state is State.TERMINATED:
            return
        self.stop()
        if self.on_terminated is not None:
            self.on_terminated(self)

    def stop(self) -> None:
        """Terminate without a word to anyone: no timer fires again and nothing more is sent."""
        self.state = State.TERMINATED
        for handle in self._handles.values():
            handle.cancel()
        self._handles.clear()

    def transport_failed(self) -> None:
        """The transport could not deliver to the peer after `send` returned (a TCP connect
        failed)."""
        if self.state is not State.TERMINATED:
            self._failed(Failure.TRANSPORT)

    @abstractmethod
    def _failed(self, failure: Failure) -> None: ...


# --- server transactions (§17.2) ---------------------------------------------------------------


class ServerTransaction(Transaction):
    """`send_response` returns False when the state no longer takes that response (a TU racing
    a timer or a CANCEL); the response is then not sent."""

    def __init__(
        self, request: Request, peer: Peer, send: Send, clock: Clock, timers: Timers
    ) -> None:
        super().__init__(request, peer, send, clock, timers)
        self.last_response: Response | None = None
        self._last_bytes: bytes | None = None
        self.on_failure: Callable[[ServerTransaction, Failure], None] | None = None

    @property
    def to_tag(self) -> str | None:
        """The To tag of the last response sent, which an RFC 2543 ACK has to carry."""
        return None if self.last_response is None else self.last_response.to_tag

    @abstractmethod
    def receive(self, request: Request) -> None:
        """A retransmission of the request, or the ACK of an INVITE."""

    @abstractmethod
    def send_response(self, response: Response) -> bool: ...

    def _respond(self, response: Response) -> bool:
        self.last_response = response
        self._last_bytes = response.to_bytes()
        return self._transmit(self._last_bytes)

    def _resend(self) -> None:
        if self._last_bytes is not None:
            self._transmit(self._last_bytes)

    def _failed(self, failure: Failure) -> None:
        self._terminate()
        if self.on_failure is not None:
            self.on_failure(self, failure)


class InviteServerTransaction(ServerTransaction):
    def __init__(
        self,
        request: Request,
        peer: Peer,
        send: Send,
        clock: Clock,
        timers: Timers = DEFAULT_TIMERS,
    ) -> None:
        super().__init__(request, peer, send, clock, timers)
        self.state = State.PROCEEDING
        self.on_ack: Callable[[Request], None] | None = None
        self._g_interval = timers.g

    def trying(self) -> None:
        """Answer 100 Trying, which the owner does as soon as it has wired the callbacks."""
        self.send_response(response_to(self.request, 100))

    def receive(self, request: Request) -> None:
        if request.method == "ACK":
            if self.state is State.COMPLETED:
                self.state = State.CONFIRMED
                self._cancel_timer("G")
                self._cancel_timer("H")
                self._wait_then_terminate("I", self._timers.i)
            elif self.state is State.ACCEPTED and self.on_ack is not None:
                self.on_ack(request)
        elif self.state in (State.PROCEEDING, State.COMPLETED):
            self._resend()

    def send_response(self, response: Response) -> bool:
        status = response.status
        if self.state is State.ACCEPTED:
            return 200 <= status < 300 and self._transmit(response.to_bytes())
        if self.state is not State.PROCEEDING:
            return False
        if not self._respond(response):
            return False
        if 200 <= status < 300:
            self.state = State.ACCEPTED
            self._start_timer("L", self._timers.l, self._terminate)
        elif status >= 300:
            self.state = State.COMPLETED
            if not self.peer.reliable:
                self._start_timer("G", self._g_interval, self._timer_g)
            self._start_timer("H", self._timers.h, self._timer_h)
        return True

    def _timer_g(self) -> None:
        if self.state is not State.COMPLETED:
            return
        self._resend()
        self._g_interval = min(2 * self._g_interval, self._timers.t2)
        if self.state is State.COMPLETED:
            self._start_timer("G", self._g_interval, self._timer_g)

    def _timer_h(self) -> None:
        if self.state is State.COMPLETED:
            self._failed(Failure.TIMEOUT)


class NonInviteServerTransaction(ServerTransaction):
    def receive(self, request: Request) -> None:
        if self.state in (State.PROCEEDING, State.COMPLETED):
            self._resend()

    def send_response(self, response: Response) -> bool:
        if self.state not in (State.TRYING, State.PROCEEDING):
            return False
        if not self._respond(response):
            return False
        if response.status < 200:
            self.state = State.PROCEEDING
        else:
            self.state = State.COMPLETED
            self._wait_then_terminate("J", self._timers.j)
        return True


class AnswerRetransmission:
    """What RFC 6026 leaves to the TU (§13.3.1.4): the 2xx to an INVITE goes out again through
    its transaction, T1 doubling to T2, over every transport (the ACK comes end to end, maybe
    through a UDP hop), until the dialog sees the ACK and calls `stop`. With no ACK in 64*T1,
    `on_timeout` runs: the dialog then ends the call with BYE."""

    def __init__(
        self,
        transaction: InviteServerTransaction,
        response: Response,
        clock: Clock,
        on_timeout: Callable[[], None],
        timers: Timers = DEFAULT_TIMERS,
    ) -> None:
        self._transaction = transaction
        self._response = response
        self._clock = clock
        self._timers = timers
        self._on_timeout = on_timeout
        self._interval = timers.t1
        self._resend = clock.call_later(self._interval, self._fire)
        self._deadline = clock.call_later(64 * timers.t1, self._expire)

    def stop(self) -> None:
        self._resend.cancel()
        self._deadline.cancel()

    def _fire(self) -> None:
        self._transaction.send_response(self._response)
        self._interval = min(2 * self._interval, self._timers.t2)
        self._resend = self._clock.call_later(self._interval, self._fire)

    def _expire(self) -> None:
        self.stop()
        self._on_timeout()


# --- client transactions (§17.1) ---------------------------------------------------------------


class ClientTransaction(Transaction):
    """Responses (and the local 408/503 of a failure) go to `on_response`, 1xx included."""

    def __init__(
        self,
        request: Request,
        peer: Peer,
        send: Send,
        clock: Clock,
        on_response: Callable[[Response], None],
        timers: Timers = DEFAULT_TIMERS,
    ) -> None:
        super().__init__(request, peer, send, clock, timers)
        self.on_response = on_response
        self.failure: Failure | None = None
        self._request_bytes = request.to_bytes()

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def receive(self, response: Response) -> None: ...

    def _failed(self, failure: Failure) -> None:
        if self.state is State.TERMINATED:
            return
        self.failure = failure
        self._terminate()
        status = 408 if failure is Failure.TIMEOUT else 503
        self.on_response(response_to(self.request, status))


class InviteClientTransaction(ClientTransaction):
    def __init__(
        self,
        request: Request,
        peer: Peer,
        send: Send,
        clock: Clock,
        on_response: Callable[[Response], None],
        timers: Timers = DEFAULT_TIMERS,
    ) -> None:
        super().__init__(request, peer, send, clock, on_response, timers)
        self.state = State.CALLING
        self._a_interval = timers.a
        self._ack: bytes | None = None

    def start(self) -> None:
        if not self._transmit(self._request_bytes):
            return
        if not self.peer.reliable:
            self._start_timer("A", self._a_interval, self._timer_a)
        self._start_timer("B", self._timers.b, self._timer_b)

    def receive(self, response: Response) -> None:
        status = response.status
        if self.state in (State.CALLING, State.PROCEEDING):
            self._cancel_timer("A")
            self._cancel_timer("B")
            if status < 200:
                self.state = State.PROCEEDING
            elif status < 300:
                self.state = State.ACCEPTED
                self._start_timer("M", self._timers.m, self._terminate)
            else:
                self.state = State.COMPLETED
                self._ack = make_ack(self.request, response).to_bytes()
                if not self._transmit(self._ack):
                    return
            self.on_response(response)
            if self.state is State.COMPLETED:
                self._wait_then_terminate("D", self._timers.d)
        elif self.state is State.COMPLETED and status >= 300 and self._ack is not None:
            self._transmit(self._ack)
        elif self.state is State.ACCEPTED and 200 <= status < 300:
            self.on_response(response)

    def _timer_a(self) -> None:
        if self.state is not State.CALLING:
            return
        self._a_interval *= 2
        if self._transmit(self._request_bytes):
            self._start_timer("A", self._a_interval, self._timer_a)

    def _timer_b(self) -> None:
        if self.state is State.CALLING:
            self._failed(Failure.TIMEOUT)


class NonInviteClientTransaction(ClientTransaction):
    def __init__(
        self,
        request: Request,
        peer: Peer,
        send: Send,
        clock: Clock,
        on_response: Callable[[Response], None],
        timers: Timers = DEFAULT_TIMERS,
    ) -> None:
        super().__init__(request, peer, send, clock, on_response, timers)
        self._e_interval = timers.e

    def start(self) -> None:
        if not self._transmit(self._request_bytes):
            return
        if not self.peer.reliable:
            self._start_timer("E", self._e_interval, self._timer_e)
        self._start_timer("F", self._timers.f, self._timer_f)

    def receive(self, response: Response) -> None:
        if self.state not in (State.TRYING, State.PROCEEDING):
            return
        if response.status < 200:
            self.state = State.PROCEEDING
        else:
            self.state = State.COMPLETED
            self._cancel_timer("E")
            self._cancel_timer("F")
        self.on_response(response)
        if self.state is State.COMPLETED:
            self._wait_then_terminate("K", self._timers.k)

    def _timer_e(self) -> None:
        if self.state not in (State.TRYING, State.PROCEEDING):
            return
        # §17.1.2.2: doubling to T2 while Trying; every T2 once a provisional response came.
        if self.state is State.PROCEEDING:
            self._e_interval = self._timers.t2
        else:
            self._e_interval = min(2 * self._e_interval, self._timers.t2)
        if self._transmit(self._request_bytes):
            self._start_timer("E", self._e_interval, self._timer_e)

    def _timer_f(self) -> None:
        if self.state in (State.TRYING, State.PROCEEDING):
            self._failed(Failure.TIMEOUT)


# --- requests the transaction layer builds -----------------------------------------------------


def make_ack(invite: Request, response: Response) -> Request:
    """The ACK for a non-2xx final response (§17.1.1.3): the INVITE's Request-URI, top Via,
    From, Call-ID, CSeq number and Route set, the response's To."""
    headers = Headers()
    headers.add("Via", str(invite.top_via))
    headers.add("Max-Forwards", "70")
    for route in invite.headers.get_all("Route"):
        headers.add("Route", route)
    headers.add("From", invite.headers.get("From") or "")
    headers.add("To", response.headers.get("To") or "")
    headers.add("Call-ID", invite.call_id)
    headers.add("CSeq", str(CSeq(invite.cseq.number, "ACK")))
    return Request("ACK", invite.uri, headers)


def make_cancel(invite: Request) -> Request:
    """The CANCEL of a pending INVITE (§9.1): same Request-URI, top Via, From, To, Call-ID,
    CSeq number and Route set."""
    headers = Headers()
    headers.add("Via", str(invite.top_via))
    headers.add("Max-Forwards", "70")
    for route in invite.headers.get_all("Route"):
        headers.add("Route", route)
    for name in ("From", "To", "Call-ID"):
        headers.add(name, invite.headers.get(name) or "")
    headers.add("CSeq", str(CSeq(invite.cseq.number, "CANCEL")))
    return Request("CANCEL", invite.uri, headers)


# --- matching and routing ----------------------------------------------------------------------


class TransactionUser(Protocol):
    """The layer above (the UA core and its dialogs)."""

    def on_request(self, transaction: ServerTransaction) -> None:
        """A new request that passed `validate.check`; answer it through the transaction."""

    def on_cancel(
        self, cancel: NonInviteServerTransaction, invite: InviteServerTransaction
    ) -> None:
        """A CANCEL that matches `invite`: answer the CANCEL 200 with the To tag of the INVITE's
        responses (§9.2), then 487 the INVITE if it has no final response yet."""

    def on_ack(self, ack: Request, peer: Peer) -> None:
        """An ACK for a 2xx: one matching no transaction, or one in the Accepted state."""

    def on_server_failure(self, transaction: ServerTransaction, failure: Failure) -> None:
        """Timer H fired (no ACK for a non-2xx final response) or a response could not be
        sent."""


ServerKey = tuple[str, str, int | None, str]
ClientKey = tuple[str, str]
# RFC 2543 candidates are bucketed by what identifies a request within a call; the rest of
# the comparison (Request-URI equivalence) cannot be hashed.
LegacyKey = tuple[str, int, str | None]


def _method_key(method: str) -> str:
    return "INVITE" if method == "ACK" else method


def _server_key(via: Via, method: str) -> ServerKey:
    return (via.branch or "", via.host.lower(), via.port, _method_key(method))


def _legacy_key(request: Request) -> LegacyKey:
    return (request.call_id, request.cseq.number, request.from_tag)


def _legacy_match(transaction: ServerTransaction, request: Request, method: str) -> bool:
    """RFC 3261 §17.2.3's rules for requests from RFC 2543 senders (and §9.2 for CANCEL, which
    names the INVITE it cancels by the same fields, the method aside)."""
    original = transaction.request
    if original.method != method:
        return False
    to_tag = transaction.to_tag if request.method == "ACK" else original.to_tag
    return (
        request.to_tag == to_tag
        and uri_equal(request.uri, original.uri)
        and request.top_via == original.top_via
    )


class TransactionTable:
    """Routes what the transports receive: requests to their server transaction or, when new, to
    the TU (after `validate.check`, whose rejections this table sends through a transaction so
    their retransmissions are absorbed too); responses to their client transaction (strays are
    dropped). `peer` is where a request's responses go (see transport.response_peer), or
    where a response came from."""

    def __init__(
        self,
        send: Send,
        tu: TransactionUser,
        clock: Clock,
        *,
        timers: Timers = DEFAULT_TIMERS,
        policy: UasPolicy = DEFAULT_POLICY,
    ) -> None:
        self._send = send
        self._tu = tu
        self._clock = clock
        self.timers = timers
        self.policy = policy
        self._servers: dict[ServerKey, ServerTransaction] = {}
        self._legacy: dict[LegacyKey, list[ServerTransaction]] = {}
        self._clients: dict[ClientKey, ClientTransaction] = {}

    def __len__(self) -> int:
        legacy = sum(len(bucket) for bucket in self._legacy.values())
        return len(self._servers) + legacy + len(self._clients)

    def close(self) -> None:
        """Stop every transaction and forget it, telling neither the TU nor the peers: for a
        user agent shutting down, whose transport is gone, so that no timer fires for the up to
        64*T1 its transactions would otherwise live on. The table stays usable."""
        for transaction in self._transactions():
            transaction.stop()
        self._servers.clear()
        self._legacy.clear()
        self._clients.clear()

    def _transactions(self) -> list[Transaction]:
        transactions: list[Transaction] = [*self._clients.values(), *self._servers.values()]
        return transactions + [t for bucket in self._legacy.values() for t in bucket]

    def receive(self, message: Request | Response, peer: Peer) -> None:
        try:
            if isinstance(message, Response):
                self._response(message)
            else:
                self._request(message, peer)
        except SipParseError as exc:
            # validate.check runs before any header is read, so this is a header only the
            # matching rules read, malformed (an unreadable To tag on an ACK, say).
            log.debug("dropped %s from %s: %s", _describe(message), peer, exc)

    def start_client(
        self,
        request: Request,
        peer: Peer,
        on_response: Callable[[Response], None],
        *,
        tcp_ok: bool = False,
    ) -> ClientTransaction:
        """Send `request` in a new client transaction. Its top Via must carry a branch from
        `new_branch()`. With `tcp_ok` (the peer takes TCP at the same address), a request over
        UDP larger than MAX_UDP_REQUEST goes over TCP instead, its top Via saying so (§18.1.1)."""
        via = request.top_via
        branch = via.branch
        if branch is None or not branch.startswith(MAGIC_COOKIE):
            raise ValueError("the top Via needs an RFC 3261 branch")
        if tcp_ok and peer.transport == "UDP" and len(request.to_bytes()) > MAX_UDP_REQUEST:
            request.set_top_via(replace(via, transport="TCP"))
            peer = Peer("TCP", peer.address)
        key = (branch, request.method)
        if key in self._clients:
            raise ValueError(f"a client transaction {key} exists already")
        transaction: ClientTransaction
        if request.method == "INVITE":
            transaction = InviteClientTransaction(
                request, peer, self._send, self._clock, on_response, self.timers
            )
        else:
            transaction = NonInviteClientTransaction(
                request, peer, self._send, self._clock, on_response, self.timers
            )
        self._clients[key] = transaction
        transaction.on_terminated = lambda _: self._forget(self._clients, key)
        transaction.start()
        return transaction

    def transport_failed(self, address: Address) -> None:
        """A stream to `address` could not be opened: every transaction waiting on it fails
        now rather than at its timeout (§17.1.4, §17.2.4)."""
        for transaction in self._transactions():
            if transaction.peer.reliable and address in (
                transaction.peer.address,
                transaction.peer.fallback,
            ):
                transaction.transport_failed()

    def find_invite(self, cancel: Request) -> InviteServerTransaction | None:
        """The INVITE server transaction a CANCEL names (§9.2)."""
        via = cancel.top_via
        if via.rfc3261_branch:
            found = self._servers.get(_server_key(via, "INVITE"))
        else:
            found = self._find_legacy(cancel, "INVITE")
        return found if isinstance(found, InviteServerTransaction) else None

    def _response(self, response: Response) -> None:
        verdict = check(response)
        if verdict is not None:
            log.debug("dropped response: %s", verdict)
            return
        key = (response.top_via.branch or "", response.cseq.method)
        transaction = self._clients.get(key)
        if transaction is None:
            log.debug("dropped stray %d response for %s", response.status, key)
            return
        transaction.receive(response)

    def _request(self, request: Request, peer: Peer) -> None:
        verdict = check(request, self.policy)
        if isinstance(verdict, Drop):
            if request.method == "ACK" and self._absorb_ack(request):
                return
            log.debug("dropped %s: %s", _describe(request), verdict.why)
            return
        try:
            matched = self._match(request)
        except SipParseError:
            if isinstance(verdict, Reject):
                # Too broken to match a retransmission to: answered statelessly (§8.2.7).
                response = response_to(request, verdict.status, verdict.reason, verdict.headers)
                self._send(response.to_bytes(), peer)
                return
            raise
        if matched is not None:
            matched.receive(request)
            return
        if request.method == "ACK":
            self._tu.on_ack(request, peer)
            return
        transaction = self._new_server(request, peer)
        if verdict is None and isinstance(transaction, InviteServerTransaction):
            transaction.trying()
        if isinstance(verdict, Reject):
            transaction.send_response(
                response_to(request, verdict.status, verdict.reason, verdict.headers)
            )
        elif request.method == "CANCEL":
            assert isinstance(transaction, NonInviteServerTransaction)
            invite = self.find_invite(request)
            if invite is None:
                transaction.send_response(response_to(request, 481))
            else:
                self._tu.on_cancel(transaction, invite)
        else:
            self._tu.on_request(transaction)

    def _absorb_ack(self, request: Request) -> bool:
        """Whether a malformed ACK ended the retransmissions of a non-2xx final response. The
        ACK copies the INVITE's Request-URI and CSeq number (§17.1.1.3), so the INVITE that got
        a 400 for its Request-URI gets an ACK that `check` refuses too, and without this the
        response would go out again until Timer H. Nothing of it reaches the TU."""
        try:
            matched = self._match(request)
        except SipParseError:
            return False
        if not isinstance(matched, InviteServerTransaction) or matched.state is not State.COMPLETED:
            return False
        matched.receive(request)
        return True

    def _match(self, request: Request) -> ServerTransaction | None:
        via = request.top_via
        if via.rfc3261_branch:
            return self._servers.get(_server_key(via, request.method))
        return self._find_legacy(request, _method_key(request.method))

    def _find_legacy(self, request: Request, method: str) -> ServerTransaction | None:
        for transaction in self._legacy.get(_legacy_key(request), ()):
            if _legacy_match(transaction, request, method):
                return transaction
        return None

    def _new_server(self, request: Request, peer: Peer) -> ServerTransaction:
        transaction: ServerTransaction
        if request.method == "INVITE":
            invite = InviteServerTransaction(request, peer, self._send, self._clock, self.timers)
            invite.on_ack = lambda ack: self._tu.on_ack(ack, peer)
            transaction = invite
        else:
            transaction = NonInviteServerTransaction(
                request, peer, self._send, self._clock, self.timers
            )
        transaction.on_failure = self._tu.on_server_failure
        via = request.top_via
        if via.rfc3261_branch:
            key = _server_key(via, request.method)
            self._servers[key] = transaction
            transaction.on_terminated = lambda _: self._forget(self._servers, key)
        else:
            legacy = _legacy_key(request)
            self._legacy.setdefault(legacy, []).append(transaction)
            transaction.on_terminated = lambda done: self._forget_legacy(legacy, done)
        return transaction

    @staticmethod
    def _forget(table: dict[K, V], key: K) -> None:
        table.pop(key, None)

    def _forget_legacy(self, key: LegacyKey, transaction: Transaction) -> None:
        bucket = self._legacy.get(key, [])
        if transaction in bucket:
            bucket.remove(transaction)
        if not bucket:
            self._legacy.pop(key, None)


def _describe(message: Request | Response) -> str:
    if isinstance(message, Request):
        return f"{message.method} request"
    return f"{message.status} response"
