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

`bridge.sip.transaction_table` matches incoming messages to them.
"""

from __future__ import annotations

import logging
import secrets
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from bridge.sip.fields import MAGIC_COOKIE, CSeq
from bridge.sip.headers import Headers
from bridge.sip.message import Request, Response
from bridge.sip.timers import DEFAULT_TIMERS, Clock, TimerHandle, Timers
from bridge.sip.validate import response_to

log = logging.getLogger(__name__)

Address = tuple[str, int]


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
