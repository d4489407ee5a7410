"""One inbound call's signaling: the INVITE answered (180, then 200 with SDP once the
application routed it), the 2xx retransmitted until the ACK, in-dialog requests (BYE,
re-INVITE, UPDATE, INFO, NOTIFY), RFC 4028 session timers, hang-up and REFER transfers.

Messages arrive through synchronous callbacks from the transaction layer and timers run on its
`Clock`, so the state machine is pure logic; only routing (the application decides), opening
and closing the media endpoint and awaiting a transfer are coroutines.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from bridge.sip import call_log, sdp
from bridge.sip.body import find_body
from bridge.sip.call_interfaces import (
    CallHandler,
    CallListener,
    EndReason,
    MediaEndpoint,
    RejectCall,
    TransferOutcome,
    TransferResult,
)
from bridge.sip.call_rules import (
    DTMF,
    DTMF_RELAY,
    SIPFRAG,
    CallConfig,
    Network,
    SessionTimer,
    caller_identity,
    negotiate_session_timer,
    parse_dtmf_info,
    sipfrag_status,
)
from bridge.sip.dialog import Dialog, without_tag
from bridge.sip.fields import Via
from bridge.sip.grammar import SipParseError
from bridge.sip.headers import Headers
from bridge.sip.message import Request, Response
from bridge.sip.offer_answer import LocalMedia, NegotiatedMedia, NoCommonCodec, accept_answer
from bridge.sip.offer_answer import answer as answer_offer
from bridge.sip.offer_answer import offer as make_offer
from bridge.sip.timers import Clock, TimerHandle
from bridge.sip.transaction import (
    AnswerRetransmission,
    ClientTransaction,
    InviteServerTransaction,
    Peer,
    Send,
    ServerTransaction,
)
from bridge.sip.transaction_table import TransactionTable
from bridge.sip.uri import NameAddr
from bridge.sip.validate import SDP, response_to

log = logging.getLogger(__name__)


class CallState(Enum):
    RINGING = "ringing"
    ANSWERED = "answered"
    """200 sent, waiting for the ACK."""
    CONFIRMED = "confirmed"
    ENDING = "ending"
    ENDED = "ended"


@dataclass
class _PendingAnswer:
    """A 2xx to an INVITE of the caller's, retransmitted until its ACK."""

    cseq: int
    retransmission: AnswerRetransmission
    offer: sdp.SessionDescription | None
    """Our offer in that 2xx (late offer): the ACK carries the answer."""


@dataclass
class _Transfer:
    future: asyncio.Future[TransferResult]
    deadline: TimerHandle | None = None
    accepted: bool = False


@dataclass
class CallContext:
    """What a call needs from its user agent."""

    table: TransactionTable
    send: Send
    """The transport, for the ACKs of our 2xx responses."""
    clock: Clock
    config: CallConfig
    via: Callable[[str], Via]
    """Our Via (without branch) for requests over a transport."""
    contact: Callable[[str], NameAddr]
    """Our Contact for a transport."""
    forget: Callable[[Call], None]
    trusted: tuple[Network, ...] = field(default_factory=tuple)


class Call:
    def __init__(
        self,
        transaction: InviteServerTransaction,
        context: CallContext,
        media: MediaEndpoint,
        local_tag: str,
        session_timer: SessionTimer | None,
    ) -> None:
        """`session_timer` is what `negotiate_session_timer` made of the INVITE (the user agent
        answered 422 already when it asked for too short an interval)."""
        self.invite = transaction.request
        self.transaction = transaction
        self.peer = transaction.peer
        self.context = context
        self.media = media
        self.state = CallState.RINGING
        self.dialog = Dialog.from_invite(
            invite=self.invite, local_tag=local_tag, contact=context.contact(self.peer.transport)
        )
        # Trust is judged by where the INVITE came from: where responses go is the Via's to say,
        # and a sender could name a trusted address there (maddr) to have its identity believed.
        source = "" if self.peer.source is None else self.peer.source[0]
        self.caller = caller_identity(self.invite, source, context.trusted)
        self.callee = without_tag(self.invite.to_addr)
        self.agent: str | None = None
        self.listener: CallListener | None = None
        self.negotiated: NegotiatedMedia | None = None
        self.session_timer = session_timer
        self.end_reason: EndReason | None = None
        self._ended = asyncio.Event()
        self._confirmed_at: float | None = None
        self._refused = False
        self._local_sdp: sdp.SessionDescription | None = None
        self._pending: _PendingAnswer | None = None
        self._our_invite: ClientTransaction | None = None
        self._hangup_after_ack: EndReason | None = None
        self._refresh: TimerHandle | None = None
        self._update_refused = False
        self._expiry: TimerHandle | None = None
        self._transfer: _Transfer | None = None
        self._transfer_transaction: ClientTransaction | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def call_id(self) -> str:
        return self.dialog.call_id

    async def wait_ended(self) -> EndReason:
        await self._ended.wait()
        assert self.end_reason is not None
        return self.end_reason

    # --- the initial INVITE ------------------------------------------------------------------

    def ring(self) -> None:
        self._respond(self.transaction, 180, contact=True)

    async def run(self, handler: CallHandler) -> None:
        """Route the INVITE and answer it. A CANCEL meanwhile cancels this task."""
        try:
            decision = await handler.route(self.invite, self.caller)
        except Exception:
            log.exception("routing call %s failed", self.call_id)
            decision = RejectCall(500, why="routing failed")
        if self.state is not CallState.RINGING:
            return
        if isinstance(decision, RejectCall):
            extra = (
                [] if decision.retry_after is None else [("Retry-After", str(decision.retry_after))]
            )
            self._respond(self.transaction, decision.status, decision.reason, extra)
            self._refuse(decision.status, decision.why or decision.reason or "refused by routing")
            return
        self.agent, self.listener = decision.agent, decision.listener
        try:
            await self.media.open()
        except OSError as exc:
            self._respond(self.transaction, 503, extra=[("Retry-After", "5")])
            self._refuse(503, f"no media ports: {exc}")
            return
        if self.state is CallState.RINGING:
            self._answer_initial()
        else:
            # Cancelled while the ports were being opened, after _finish closed them.
            await self.media.close()

    def _local_media(self) -> LocalMedia:
        return LocalMedia(self.media.local_address, self.media.local_port)

    def _answer_initial(self) -> None:
        body = self._offer_body(self.invite)
        if body is None:
            # A late offer: ours goes in the 200, the answer comes in the ACK.
            self._local_sdp = make_offer(self._local_media())
            self._send_2xx(self.transaction, self._local_sdp, offer=True)
            return
        outcome = self._answer(body)
        if isinstance(outcome, Response):
            self.transaction.send_response(outcome)
            warning = outcome.headers.get("Warning")
            why = f"{outcome.reason}: {warning}" if warning else outcome.reason
            self._refuse(outcome.status, why)
            return
        self._send_2xx(self.transaction, outcome, offer=False)

    def _offer_body(self, request: Request) -> bytes | None:
        try:
            return find_body(request, SDP)
        except SipParseError:
            return None

    def _answer(
        self, body: bytes, request: Request | None = None
    ) -> sdp.SessionDescription | Response:
        """Our answer to an offer, applied to the media; or the error response to send."""
        request = request or self.invite
        try:
            offered = sdp.parse(body)
            result = answer_offer(offered, self._local_media(), self._local_sdp)
        except NoCommonCodec as exc:
            warning = exc.warning(self.context.config.server)
            extra = [] if warning is None else [("Warning", warning)]
            return self._response(request, 488, extra=extra)
        except sdp.SdpError as exc:
            warning = exc.warning(self.context.config.server)
            extra = [] if warning is None else [("Warning", warning)]
            return self._response(
                request, exc.status, "Bad SDP" if exc.status == 400 else None, extra
            )
        self._apply(result.media)
        self._local_sdp = result.sdp
        return result.sdp

    def _apply(self, media: NegotiatedMedia) -> None:
        self.negotiated = media
        self.media.apply(media)

    def _send_2xx(
        self,
        transaction: InviteServerTransaction,
        description: sdp.SessionDescription,
        *,
        offer: bool,
    ) -> None:
        extra: list[tuple[str, str]] = [("Allow", self.context.config.allow)]
        extra.append(("Supported", self.context.config.supported))
        extra += self._session_timer_headers(transaction.request)
        response = self._response(
            transaction.request,
            200,
            extra=extra,
            body=sdp.serialize(description),
            contact=True,
            content_type=SDP,
        )
        if not transaction.send_response(response):
            return
        if transaction is self.transaction:
            self.state = CallState.ANSWERED
        if self._pending is not None:
            self._pending.retransmission.stop()
        retransmission = AnswerRetransmission(
            transaction,
            response,
            self.context.clock,
            lambda: self._ack_timeout(transaction.request.cseq.number),
            self.context.table.timers,
        )
        self._pending = _PendingAnswer(
            transaction.request.cseq.number, retransmission, description if offer else None
        )

    def _session_timer_headers(self, request: Request) -> list[tuple[str, str]]:
        timer = self.session_timer
        if timer is None:
            return []
        extra = [("Session-Expires", f"{timer.seconds};refresher={timer.refresher}")]
        if any(tag.lower() == "timer" for tag in request.supported):
            extra.append(("Require", "timer"))
        return extra

    def on_ack(self, ack: Request) -> None:
        pending = self._pending
        if pending is None or ack.cseq.number != pending.cseq:
            return
        pending.retransmission.stop()
        self._pending = None
        if pending.offer is not None and not self._take_answer(ack, pending.offer):
            self._hangup_after_ack = self._hangup_after_ack or EndReason.ERROR
        if self.state is CallState.ANSWERED:
            self.state = CallState.CONFIRMED
            self._confirmed_at = self.context.clock.now()
            codec = None if self.negotiated is None else self.negotiated.codec.name
            call_log.answered(self.call_id, self.caller, self.callee, self.agent, codec)
            self._start_session_timer()
            if self._hangup_after_ack is None and self.listener is not None:
                self.listener.call_established(self)
        if self._hangup_after_ack is not None and self.state is CallState.CONFIRMED:
            self._send_bye(self._hangup_after_ack)

    def _take_answer(self, ack: Request, our_offer: sdp.SessionDescription) -> bool:
        body = self._offer_body(ack)
        if body is None:
            log.info("call %s: the ACK carries no answer to our offer", self.call_id)
            return False
        try:
            self._apply(accept_answer(our_offer, sdp.parse(body)))
        except sdp.SdpError as exc:
            log.info("call %s: unusable answer in the ACK: %s", self.call_id, exc)
            return False
        return True

    def _ack_timeout(self, cseq: int) -> None:
        if self._pending is None or self._pending.cseq != cseq:
            return
        self._pending = None
        log.info("call %s: no ACK for our 2xx", self.call_id)
        self.state = CallState.CONFIRMED
        self._send_bye(self._hangup_after_ack or EndReason.ERROR)

    def cancel(self) -> None:
        """A CANCEL matched our INVITE before its final response (the UA answered the CANCEL)."""
        if self.state is not CallState.RINGING:
            return
        self._respond(self.transaction, 487)
        self._finish(EndReason.CALLER_HANGUP)

    def server_failed(self) -> None:
        if self.state is CallState.RINGING:
            self._finish(EndReason.ERROR)

    # --- in-dialog requests ------------------------------------------------------------------

    def on_request(self, transaction: ServerTransaction) -> None:
        request = transaction.request
        if self.state in (CallState.ENDED, CallState.RINGING):
            self._respond(transaction, 481)
            return
        if not self.dialog.accept_cseq(request):
            self._respond(transaction, 500, "CSeq Out of Order")
            return
        method = request.method
        if method == "BYE":
            self._respond(transaction, 200)
            self._finish(EndReason.CALLER_HANGUP)
        elif method in ("INVITE", "UPDATE"):
            self._modify(transaction)
        elif method == "INFO":
            self._info(transaction)
        elif method == "NOTIFY":
            self._notify(transaction)
        elif method == "OPTIONS":
            self._respond(
                transaction,
                200,
                extra=[
                    ("Allow", self.context.config.allow),
                    ("Accept", SDP),
                    ("Supported", self.context.config.supported),
                ],
            )
        else:
            self._respond(transaction, 405, extra=[("Allow", self.context.config.allow)])

    def _modify(self, transaction: ServerTransaction) -> None:
        """re-INVITE or UPDATE: maybe a new offer, maybe only a session refresh."""
        request = transaction.request
        body = self._offer_body(request)
        has_offer = body is not None or request.method == "INVITE"
        if has_offer and self._our_invite is not None:
            self._respond(transaction, 491)
            return
        if has_offer and self._pending is not None:
            # §14.2 / RFC 3311 §5.2: an offer while one of the caller's is still open.
            retry = str(random.randint(0, 10))
            self._respond(transaction, 500, extra=[("Retry-After", retry)])
            return
        timer = negotiate_session_timer(request, self.context.config)
        if isinstance(timer, int):
            self._respond(transaction, 422, extra=[("Min-SE", str(timer))])
            return
        self.dialog.refresh_target(request)
        description: sdp.SessionDescription | None = None
        offer = False
        if body is not None:
            outcome = self._answer(body, request)
            if isinstance(outcome, Response):
                transaction.send_response(outcome)
                return
            description = outcome
        elif request.method == "INVITE":
            description = make_offer(self._local_media(), self._local_sdp)
            self._local_sdp = description
            offer = True
        if timer is not None:
            self.session_timer = timer
        if isinstance(transaction, InviteServerTransaction):
            assert description is not None
            self._send_2xx(transaction, description, offer=offer)
        else:
            extra = [("Supported", self.context.config.supported)]
            extra += self._session_timer_headers(request)
            self._respond(
                transaction,
                200,
                extra=extra,
                contact=True,
                body=b"" if description is None else sdp.serialize(description),
                content_type=None if description is None else SDP,
            )
        self._start_session_timer()

    def _info(self, transaction: ServerTransaction) -> None:
        request = transaction.request
        content_type = request.content_type
        mime = content_type.mime if content_type is not None else None
        if mime in (DTMF_RELAY, DTMF) and request.body:
            key = parse_dtmf_info(mime, request.body)
            if key is None:
                self._respond(transaction, 400, "Bad DTMF Body")
                return
            self._respond(transaction, 200)
            if self.listener is not None:
                self.listener.dtmf(self, key[0], key[1])
            return
        if request.body:
            self._respond(transaction, 415, extra=[("Accept", f"{DTMF_RELAY}, {DTMF}")])
            return
        self._respond(transaction, 200)

    def _notify(self, transaction: ServerTransaction) -> None:
        request = transaction.request
        try:
            event = request.event
        except SipParseError:
            event = None
        transfer = self._transfer
        if event is None or event.package.lower() != "refer" or transfer is None:
            self._respond(transaction, 481, "Subscription Does Not Exist")
            return
        self._respond(transaction, 200)
        status = sipfrag_status(find_body(request, SIPFRAG) or b"")
        terminated = (request.headers.get("Subscription-State") or "").strip().lower()
        if status is not None and status >= 200:
            if status < 300:
                self._end_transfer(TransferResult(TransferOutcome.SUCCEEDED, status))
            else:
                self._end_transfer(TransferResult(TransferOutcome.TARGET_FAILED, status))
        elif terminated.startswith("terminated"):
            self._end_transfer(
                TransferResult(TransferOutcome.TARGET_FAILED, status, "subscription terminated")
            )

    # --- session timers (RFC 4028) -----------------------------------------------------------

    def _start_session_timer(self) -> None:
        for handle in (self._refresh, self._expiry):
            if handle is not None:
                handle.cancel()
        self._refresh = self._expiry = None
        timer = self.session_timer
        if timer is None or self.state is not CallState.CONFIRMED:
            return
        clock = self.context.clock
        if timer.refresher == "uas":
            self._refresh = clock.call_later(timer.seconds / 2, self._send_refresh)
        # §10: the session is over if no refresh came by then.
        grace = min(32.0, timer.seconds / 3)
        self._expiry = clock.call_later(timer.seconds - grace, self._session_expired)

    def _session_expired(self) -> None:
        log.info("call %s: session expired without a refresh", self.call_id)
        self._send_bye(EndReason.ERROR)

    def _send_refresh(self) -> None:
        if self.state is not CallState.CONFIRMED or self.session_timer is None:
            return
        headers = Headers()
        headers.add("Session-Expires", f"{self.session_timer.seconds};refresher=uas")
        headers.add("Supported", self.context.config.supported)
        allow = self.invite.allow
        if (
            allow is not None
            and "UPDATE" in (method.upper() for method in allow)
            and not self._update_refused
        ):
            self._send_in_dialog("UPDATE", headers, self._refresh_response)
            return
        if self._pending is not None or self._our_invite is not None or self._local_sdp is None:
            self._refresh = self.context.clock.call_later(2.0, self._send_refresh)
            return
        body = sdp.serialize(self._local_sdp)
        self._our_invite = self._send_in_dialog(
            "INVITE", headers, self._refresh_response, body=body, content_type=SDP
        )

    def _refresh_response(self, response: Response) -> None:
        if response.status < 200:
            return
        if response.cseq.method == "INVITE":
            self._our_invite = None
            if response.status < 300:
                self._ack_2xx(response)
        if response.status < 300:
            self._start_session_timer()
        elif response.status in (408, 481):
            self._send_bye(EndReason.ERROR)
        elif response.status == 491:
            # §14.1: glare with the caller's own request; we do not own the Call-ID, so retry
            # after 0 to 2 s.
            self._retry_refresh(random.uniform(0.0, 2.0))
        elif response.status == 422 and self.session_timer is not None:
            # RFC 4028 §7.4/§10: the peer's floor is above our interval; ask again at it.
            floor = response.min_se
            if floor is not None and floor > self.session_timer.seconds:
                self.session_timer = SessionTimer(floor, self.session_timer.refresher)
                self._retry_refresh(0.0)
        elif response.status in (405, 501) and response.cseq.method == "UPDATE":
            # Allow listed UPDATE but the peer refuses it: refresh with re-INVITE from now on.
            self._update_refused = True
            self._retry_refresh(0.0)

    def _retry_refresh(self, delay: float) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
        self._refresh = self.context.clock.call_later(delay, self._send_refresh)

    def _ack_2xx(self, response: Response) -> None:
        """§13.2.2.4: the ACK of a 2xx is the TU's, sent outside any transaction."""
        hop = self._hop()
        ack = self.dialog.request("ACK", self.context.via(hop.transport), cseq=response.cseq.number)
        try:
            self.context.send(ack.to_bytes(), hop)
        except OSError:
            log.debug("call %s: could not send the ACK", self.call_id)

    # --- hangup and transfer ------------------------------------------------------------------

    def hangup(self, reason: EndReason = EndReason.AGENT_HANGUP) -> None:
        """End the call: BYE once established (after the ACK if it has not come yet), a final
        480 while it still rings. `wait_ended` tells when it is over."""
        if self.state is CallState.RINGING:
            self._respond(self.transaction, 480)
            self._refuse(480, f"hung up before answering ({reason.value})", reason)
        elif self.state is CallState.ANSWERED:
            self._hangup_after_ack = reason
        elif self.state is CallState.CONFIRMED:
            self._send_bye(reason)

    def _send_bye(self, reason: EndReason) -> None:
        if self.state is not CallState.CONFIRMED:
            return
        self.state = CallState.ENDING
        self._cancel_timers()
        self._send_in_dialog("BYE", Headers(), lambda response: self._bye_done(response, reason))

    def _bye_done(self, response: Response, reason: EndReason) -> None:
        if response.status >= 200:
            self._finish(reason)

    async def transfer(self, target: str, *, notify_timeout: float | None = None) -> TransferResult:
        """REFER the caller to `target` (a sip:, sips: or tel: URI) and follow its NOTIFYs
        (RFC 3515). The call stays up whatever the outcome: on success the application says
        goodbye and calls `hangup(EndReason.TRANSFERRED)`."""
        if self.state is not CallState.CONFIRMED:
            return TransferResult(TransferOutcome.CALL_ENDED)
        if self._transfer is not None:
            raise RuntimeError("a transfer is already in progress")
        loop = asyncio.get_running_loop()
        transfer = _Transfer(loop.create_future())
        self._transfer = transfer
        timeout = (
            self.context.config.transfer_notify_timeout
            if notify_timeout is None
            else notify_timeout
        )
        headers = Headers()
        headers.add("Refer-To", f"<{target}>")
        headers.add("Referred-By", str(self.dialog.local))

        def on_response(response: Response) -> None:
            if response.status < 200 or transfer.future.done():
                return
            if response.status < 300:
                transfer.accepted = True
                transfer.deadline = self.context.clock.call_later(
                    timeout,
                    lambda: self._end_transfer(TransferResult(TransferOutcome.NO_NOTIFY)),
                )
                return
            sent = self._transfer_transaction
            if sent is not None and sent.failure is not None and response.status == 408:
                outcome = TransferOutcome.TIMEOUT
            else:
                outcome = TransferOutcome.REJECTED
            self._end_transfer(TransferResult(outcome, response.status, response.reason))

        self._transfer_transaction = self._send_in_dialog("REFER", headers, on_response)
        try:
            return await transfer.future
        finally:
            if transfer.deadline is not None:
                transfer.deadline.cancel()
            self._transfer = None

    def _end_transfer(self, result: TransferResult) -> None:
        transfer = self._transfer
        if transfer is not None and not transfer.future.done():
            transfer.future.set_result(result)

    # --- plumbing ------------------------------------------------------------------------------

    def _hop(self) -> Peer:
        return self.dialog.next_hop(self.peer)

    def _send_in_dialog(
        self,
        method: str,
        headers: Headers,
        on_response: Callable[[Response], None],
        *,
        body: bytes = b"",
        content_type: str | None = None,
    ) -> ClientTransaction:
        hop = self._hop()
        request = self.dialog.request(
            method,
            self.context.via(hop.transport),
            headers=headers,
            body=body,
            content_type=content_type,
        )
        return self.context.table.start_client(request, hop, on_response)

    def _response(
        self,
        request: Request,
        status: int,
        reason: str | None = None,
        extra: list[tuple[str, str]] | None = None,
        *,
        contact: bool = False,
        body: bytes = b"",
        content_type: str | None = None,
    ) -> Response:
        headers = list(extra or [])
        if contact and status < 300:
            headers.append(("Contact", str(self.dialog.contact)))
        headers.append(("Server", self.context.config.server))
        if content_type is not None:
            headers.append(("Content-Type", content_type))
        return response_to(
            request, status, reason, headers, to_tag=self.dialog.local_tag, body=body
        )

    def _respond(
        self,
        transaction: ServerTransaction,
        status: int,
        reason: str | None = None,
        extra: list[tuple[str, str]] | None = None,
        *,
        contact: bool = False,
        body: bytes = b"",
        content_type: str | None = None,
    ) -> None:
        transaction.send_response(
            self._response(
                transaction.request,
                status,
                reason,
                extra,
                contact=contact,
                body=body,
                content_type=content_type,
            )
        )

    def _cancel_timers(self) -> None:
        for handle in (self._refresh, self._expiry):
            if handle is not None:
                handle.cancel()
        self._refresh = self._expiry = None
        if self._pending is not None:
            self._pending.retransmission.stop()
            self._pending = None

    def _refuse(self, status: int, why: str, reason: EndReason = EndReason.ERROR) -> None:
        """The initial INVITE got a final error response: the call's one line says so."""
        if self.state is CallState.ENDED:
            return
        self._refused = True
        call_log.refused(self.call_id, self.caller, self.callee, status, why)
        self._finish(reason)

    def _finish(self, reason: EndReason) -> None:
        if self.state is CallState.ENDED:
            return
        self.state = CallState.ENDED
        self.end_reason = reason
        if not self._refused:
            up = self._confirmed_at
            lasted = None if up is None else self.context.clock.now() - up
            call_log.ended(self.call_id, reason, lasted)
        self._cancel_timers()
        self._end_transfer(TransferResult(TransferOutcome.CALL_ENDED))
        self._spawn(self.media.close())
        self.context.forget(self)
        if self.listener is not None:
            self.listener.call_ended(self, reason)
        self._ended.set()

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
