"""Matches what the transports receive to the transactions of `bridge.sip.transaction`
(RFC 3261 §17.1.3, §17.2.3 with the RFC 2543 fallback for branches without the magic cookie,
§9.2 for CANCEL) and routes the rest to the TU."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol, TypeVar

from bridge.sip.fields import MAGIC_COOKIE, Via
from bridge.sip.grammar import SipParseError
from bridge.sip.message import Request, Response
from bridge.sip.timers import DEFAULT_TIMERS, Clock, Timers
from bridge.sip.transaction import (
    MAX_UDP_REQUEST,
    Address,
    ClientTransaction,
    Failure,
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    Peer,
    Send,
    ServerTransaction,
    State,
    Transaction,
)
from bridge.sip.uri import uri_equal
from bridge.sip.validate import DEFAULT_POLICY, Drop, Reject, UasPolicy, check, response_to

log = logging.getLogger(__name__)
K = TypeVar("K")
V = TypeVar("V")


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
