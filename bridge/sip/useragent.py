"""The user agent core: the `TransactionUser` above the transaction table, which turns new
INVITEs into `Call`s (within a call limit, refusing all while draining or not yet ready),
routes in-dialog requests and ACKs to their call, answers OPTIONS and CANCEL, and 481s requests
for dialogs it does not know.

Trunk security sits in front of the transaction layer (`access`): a request that belongs to a
live call (in-dialog for one of ours, or a CANCEL of a pending INVITE) always passes, since
only a party to the call knows its tags and branch; any other request from outside the
allow-list, from a scanner, from a banned source or over its source's rate is dropped without
an answer. The source is the address the request came from (`Peer.source`), whatever its Via
says. Before there is a request to judge, the transport asks about the source alone
(`_admit_source`: allow-list and bans): a TCP connection accepted from elsewhere is closed at
once, unread, and a message too malformed to parse from there gets no 400. So a live call's
requests pass from anywhere over UDP and on a connection already open, but not on a new
connection from outside the allow-list or from a banned source. Responses always pass: only
one to a client transaction of ours, whose branch is random, is acted on. With a password
configured, new INVITEs must carry digest credentials (`digest`) and get 401 otherwise;
failed attempts ban their source for a while.

`UserAgent.start` puts it on a `SipTransport`; unit tests call `receive` with parsed messages,
each with the `Peer.source` the transport would give it, and give a `send` that records what
goes out.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from bridge.sip import call_log
from bridge.sip.access import (
    LOOPBACK,
    AccessControl,
    AccessPolicy,
    DropLog,
    Verdict,
    request_source,
)
from bridge.sip.call import Call, CallContext
from bridge.sip.call_interfaces import CallHandler, EndReason, MediaEndpoint
from bridge.sip.call_rules import CallConfig, negotiate_session_timer
from bridge.sip.dialog import DialogId, dialog_id_of, new_tag
from bridge.sip.digest import DEFAULT_ALGORITHMS, DigestAuthenticator, Outcome
from bridge.sip.fields import Via
from bridge.sip.grammar import SipParseError
from bridge.sip.message import Request, Response
from bridge.sip.timers import AsyncioClock, Clock
from bridge.sip.transaction import (
    Address,
    Failure,
    InviteServerTransaction,
    NonInviteServerTransaction,
    Peer,
    ServerTransaction,
)
from bridge.sip.transaction_table import TransactionTable
from bridge.sip.transport import DEFAULT_PORT, SipTransport
from bridge.sip.uri import NameAddr, SipUri
from bridge.sip.validate import SDP, response_to

log = logging.getLogger(__name__)

MediaFactory = Callable[[], MediaEndpoint]


@dataclass(frozen=True, slots=True)
class UserAgentConfig:
    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    advertised_host: str | None = None
    """The address in our Via and Contact; None: `host`, or 127.0.0.1 when that is a wildcard."""
    max_calls: int = 200
    retry_after: int = 30
    """Retry-After (seconds) of our 503s when full or draining."""
    trusted_networks: tuple[str, ...] = LOOPBACK
    """Sources whose P-Asserted-Identity we believe; they are allowed too, and never banned."""
    allowed_networks: tuple[str, ...] = LOOPBACK
    """Sources whose new requests are taken at all (besides the trusted ones)."""
    rate_limit: float = 200.0
    """New requests a second per source (0: no limit): see `AccessPolicy`."""
    rate_burst: int = 400
    auth_realm: str = "voicebridge"
    auth_username: str | None = None
    auth_password: str | None = field(default=None, repr=False)
    """Set (with `auth_username`): new INVITEs need digest credentials."""
    auth_algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    call: CallConfig = field(default_factory=CallConfig)

    @property
    def access_policy(self) -> AccessPolicy:
        return AccessPolicy(
            allowed=(*self.allowed_networks, *self.trusted_networks),
            never_banned=self.trusted_networks,
            rate=self.rate_limit,
            burst=self.rate_burst,
        )


class UserAgent:
    def __init__(
        self,
        handler: CallHandler,
        media_factory: MediaFactory,
        config: UserAgentConfig | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.config = config or UserAgentConfig()
        self.handler = handler
        self.media_factory = media_factory
        self.clock = clock or AsyncioClock()
        self.draining = False
        # Why the node cannot take a call yet (its speech models still loading, or failed to
        # load), or None. A balancer's OPTIONS probe sees it as 503, as a caller's INVITE does.
        self.not_ready: str | None = None
        self.port = self.config.port
        self.table = TransactionTable(self._send, self, self.clock)
        self._sender: Callable[[bytes, Peer], None] | None = None
        self._transport: SipTransport | None = None
        self._calls: dict[DialogId, Call] = {}
        self._by_invite: dict[int, Call] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._context = CallContext(
            table=self.table,
            send=self._send,
            clock=self.clock,
            config=self.config.call,
            via=self._via,
            contact=self._contact,
            forget=self._forget,
            trusted=tuple(ipaddress.ip_network(net) for net in self.config.trusted_networks),
        )
        self.access = AccessControl(self.config.access_policy, self.clock)
        self._drop_log = DropLog(self.clock)
        self._digest: DigestAuthenticator | None = None
        if self.config.auth_password is not None:
            if self.config.auth_username is None:
                raise ValueError("a digest password needs a username")
            self._digest = DigestAuthenticator(
                self.config.auth_realm,
                self.config.auth_username,
                self.config.auth_password,
                self.clock,
                algorithms=self.config.auth_algorithms,
            )

    # --- wiring ---------------------------------------------------------------------------------

    async def start(self) -> None:
        transport = SipTransport(
            self.config.host,
            self.config.port,
            self.receive,
            self.table.transport_failed,
            admit=self._admit_source,
        )
        await transport.start()
        self._transport = transport
        self.port = transport.port
        self.attach(transport.send)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._transport is not None:
            await self._transport.close()
        # Nothing can go out any more: transaction timers would otherwise fire for up to 64*T1.
        self.table.close()

    def attach(self, sender: Callable[[bytes, Peer], None]) -> None:
        self._sender = sender

    def receive(self, message: Request | Response, peer: Peer) -> None:
        if isinstance(message, Request) and not self._admit(message, peer):
            return
        self.table.receive(message, peer)

    def _admit(self, request: Request, peer: Peer) -> bool:
        if self._live(request):
            return True
        source = request_source(peer)
        verdict = self.access.check(
            source, request.headers.get("User-Agent"), rated=request.method != "ACK"
        )
        return self._accepted(source, verdict, request.method)

    def _admit_source(self, source: Address) -> bool:
        """The transport's question about a TCP connection it accepts, or a message too
        malformed to parse, before there is any request to judge."""
        verdict = self.access.admit(source[0])
        return self._accepted(source[0], verdict, "a TCP connection or an unparsable message")

    def _accepted(self, source: str, verdict: Verdict, what: str) -> bool:
        if verdict is Verdict.ACCEPT:
            return True
        if self._drop_log.should_log(source):
            log.info(
                "dropping requests from %s: %s (%s); not logged again for a minute",
                source,
                verdict.value,
                what,
            )
        return False

    def _live(self, request: Request) -> bool:
        """Whether a request belongs to a call of ours: in-dialog for one, or a CANCEL of an
        INVITE still being answered. What cannot be read is not: the table refuses it."""
        try:
            if request.to_tag is not None:
                return dialog_id_of(request) in self._calls
            return request.method == "CANCEL" and self.table.find_invite(request) is not None
        except SipParseError:
            return False

    def _send(self, data: bytes, peer: Peer) -> None:
        if self._sender is None:
            raise OSError("user agent not started")
        self._sender(data, peer)

    @property
    def advertised_host(self) -> str:
        host = self.config.advertised_host or self.config.host
        return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host

    def _via(self, transport: str) -> Via:
        return Via(
            transport=transport,
            host=self.advertised_host,
            port=self.port,
            params=(("rport", None),),
        )

    def _contact(self, transport: str) -> NameAddr:
        params = () if transport == "UDP" else (("transport", transport.lower()),)
        uri = SipUri(user="voicebridge", host=self.advertised_host, port=self.port, params=params)
        return NameAddr(uri=uri)

    # --- calls ------------------------------------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        return list(self._calls.values())

    @property
    def full(self) -> bool:
        return len(self._calls) >= self.config.max_calls

    def refusal(self) -> str | None:
        """Why a new call would be refused with 503 now, or None when one would be taken."""
        if self.draining:
            return "draining"
        if self.not_ready is not None:
            return self.not_ready
        if self.full:
            return f"at capacity ({len(self._calls)} calls)"
        return None

    def drain(self) -> None:
        """Take no new call (503 to INVITE and OPTIONS); live calls go on."""
        self.draining = True

    async def drain_and_stop(self, timeout: float, reason: EndReason = EndReason.API_END) -> None:
        """Drain, let live calls end for up to `timeout` seconds, then hang up the rest."""
        self.drain()
        calls = self.calls
        if calls:
            waits = [asyncio.ensure_future(call.wait_ended()) for call in calls]
            _, pending = await asyncio.wait(waits, timeout=timeout)
            for call in self.calls:
                call.hangup(reason)
            if pending:
                await asyncio.wait(pending, timeout=self.table.timers.f)
            for task in pending:
                task.cancel()

    def _forget(self, call: Call) -> None:
        self._calls.pop(call.dialog.id, None)
        self._by_invite.pop(id(call.transaction), None)

    # --- TransactionUser --------------------------------------------------------------------------

    def on_request(self, transaction: ServerTransaction) -> None:
        request = transaction.request
        if request.to_tag is not None:
            call = self._calls.get(dialog_id_of(request))
            if call is None:
                self._reply(transaction, 481)
            else:
                call.on_request(transaction)
            return
        if request.method == "INVITE":
            assert isinstance(transaction, InviteServerTransaction)
            self._invite(transaction)
        elif request.method == "OPTIONS":
            self._options(transaction)
        else:
            self._reply(transaction, 481)

    def _invite(self, transaction: InviteServerTransaction) -> None:
        request = transaction.request
        if self._digest is not None and not self._authenticated(self._digest, transaction):
            return
        why = self.refusal()
        if why is not None:
            self._reply(transaction, 503, (("Retry-After", str(self.config.retry_after)),))
            call_log.refused(request.call_id, request.from_addr, request.to_addr, 503, why)
            return
        timer = negotiate_session_timer(request, self.config.call)
        if isinstance(timer, int):
            self._reply(transaction, 422, (("Min-SE", str(timer)),))
            why = f"session interval below our minimum of {timer} s"
            call_log.refused(request.call_id, request.from_addr, request.to_addr, 422, why)
            return
        call = Call(transaction, self._context, self.media_factory(), new_tag(), timer)
        self._calls[call.dialog.id] = call
        self._by_invite[id(transaction)] = call
        call.ring()
        task = asyncio.get_running_loop().create_task(call.run(self.handler))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _authenticated(
        self, digest: DigestAuthenticator, transaction: InviteServerTransaction
    ) -> bool:
        """Check the INVITE's credentials; when they do not do, answer 401 with a challenge."""
        request = transaction.request
        source = request_source(transaction.peer)
        outcome = digest.verify(request.method, request.headers.get_all("Authorization"), source)
        if outcome is Outcome.OK:
            self.access.auth_succeeded(source)
            return True
        if outcome is Outcome.FAILED and self.access.auth_failed(source):
            log.warning(
                "banned %s for %g s after %d failed digest attempts",
                source,
                self.access.policy.ban_seconds,
                self.access.policy.max_failures,
            )
        self.access.counters.auth_challenges += 1
        challenges = digest.challenge(source, stale=outcome is Outcome.STALE)
        self._reply(transaction, 401, tuple(("WWW-Authenticate", c) for c in challenges))
        return False

    def _options(self, transaction: ServerTransaction) -> None:
        if self.refusal() is not None:
            self._reply(transaction, 503, (("Retry-After", str(self.config.retry_after)),))
            return
        self._reply(
            transaction,
            200,
            (
                ("Allow", self.config.call.allow),
                ("Accept", SDP),
                ("Supported", self.config.call.supported),
            ),
        )

    def on_cancel(
        self, cancel: NonInviteServerTransaction, invite: InviteServerTransaction
    ) -> None:
        call = self._by_invite.get(id(invite))
        to_tag = call.dialog.local_tag if call is not None else invite.to_tag
        cancel.send_response(
            response_to(cancel.request, 200, to_tag=to_tag, extra_headers=self._server())
        )
        if call is not None:
            call.cancel()

    def on_ack(self, ack: Request, peer: Peer) -> None:
        call = self._calls.get(dialog_id_of(ack))
        if call is not None:
            call.on_ack(ack)

    def on_server_failure(self, transaction: ServerTransaction, failure: Failure) -> None:
        call = self._by_invite.get(id(transaction))
        log.debug("server transaction %s failed: %s", transaction.request.method, failure)
        if call is not None:
            call.server_failed()

    def _server(self) -> list[tuple[str, str]]:
        return [("Server", self.config.call.server)]

    def _reply(
        self, transaction: ServerTransaction, status: int, extra: tuple[tuple[str, str], ...] = ()
    ) -> None:
        transaction.send_response(
            response_to(transaction.request, status, extra_headers=[*extra, *self._server()])
        )
