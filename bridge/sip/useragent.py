"""The user agent core: the `TransactionUser` above the transaction table, which turns new
INVITEs into `Call`s (within a call limit, refusing all while draining), routes in-dialog
requests and ACKs to their call, answers OPTIONS and CANCEL, and 481s requests for dialogs it
does not know.

`UserAgent.start` puts it on a `SipTransport`; unit tests call `receive` with parsed messages
and give a `send` that records what goes out.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from bridge.sip.call import Call, CallContext
from bridge.sip.call_interfaces import CallHandler, EndReason, MediaEndpoint
from bridge.sip.call_rules import CallConfig, negotiate_session_timer
from bridge.sip.dialog import DialogId, dialog_id_of, new_tag
from bridge.sip.fields import Via
from bridge.sip.message import Request, Response
from bridge.sip.timers import AsyncioClock, Clock
from bridge.sip.transaction import (
    Failure,
    InviteServerTransaction,
    NonInviteServerTransaction,
    Peer,
    ServerTransaction,
    TransactionTable,
)
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
    trusted_networks: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    """Sources whose P-Asserted-Identity we believe."""
    call: CallConfig = field(default_factory=CallConfig)


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

    # --- wiring ---------------------------------------------------------------------------------

    async def start(self) -> None:
        transport = SipTransport(
            self.config.host, self.config.port, self.receive, self.table.transport_failed
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

    def attach(self, sender: Callable[[bytes, Peer], None]) -> None:
        self._sender = sender

    def receive(self, message: Request | Response, peer: Peer) -> None:
        self.table.receive(message, peer)

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
        if self.draining or self.full:
            self._reply(transaction, 503, (("Retry-After", str(self.config.retry_after)),))
            return
        timer = negotiate_session_timer(request, self.config.call)
        if isinstance(timer, int):
            self._reply(transaction, 422, (("Min-SE", str(timer)),))
            return
        call = Call(transaction, self._context, self.media_factory(), new_tag(), timer)
        self._calls[call.dialog.id] = call
        self._by_invite[id(transaction)] = call
        call.ring()
        task = asyncio.get_running_loop().create_task(call.run(self.handler))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _options(self, transaction: ServerTransaction) -> None:
        if self.draining or self.full:
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
