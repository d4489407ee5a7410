"""The user agent and call state machine on a manual clock, fed parsed messages, its output
captured: no sockets."""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass, field

import pytest

from bridge.sip import sdp
from bridge.sip.call import Call
from bridge.sip.call_interfaces import (
    AcceptCall,
    EndReason,
    RejectCall,
    RouteDecision,
    TransferOutcome,
    TransferResult,
)
from bridge.sip.call_rules import (
    DTMF_RELAY,
    CallConfig,
    caller_identity,
    parse_dtmf_info,
    sipfrag_status,
)
from bridge.sip.message import Request, Response, parse
from bridge.sip.offer_answer import NegotiatedMedia
from bridge.sip.timers import ManualClock
from bridge.sip.transaction import Peer
from bridge.sip.uri import NameAddr
from bridge.sip.useragent import UserAgent, UserAgentConfig

CALLER = Peer("UDP", ("127.0.0.1", 5070), source=("127.0.0.1", 5070))
OFFER = (
    "v=0\r\no=alice 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 7000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n{direction}"
)


def offer(direction: str = "a=sendrecv\r\n", version: int = 1) -> str:
    return OFFER.format(direction=direction).replace("1 1 IN", f"1 {version} IN")


class FakeMedia:
    local_address = "127.0.0.1"
    local_port = 40000

    def __init__(self) -> None:
        self.applied: list[NegotiatedMedia] = []
        self.closed = False

    async def open(self) -> None:
        return None

    def apply(self, media: NegotiatedMedia) -> None:
        self.applied.append(media)

    async def close(self) -> None:
        self.closed = True


@dataclass
class Handler:
    decision: RouteDecision | None = None
    hold: asyncio.Event | None = None
    established: list[Call] = field(default_factory=list)
    ended: list[EndReason] = field(default_factory=list)
    digits: list[tuple[str, int | None]] = field(default_factory=list)

    async def route(self, invite: Request, caller: NameAddr) -> RouteDecision:
        if self.hold is not None:
            await self.hold.wait()
        return self.decision or AcceptCall("bot", self)

    def call_established(self, call: Call) -> None:
        self.established.append(call)

    def dtmf(self, call: Call, digit: str, duration_ms: int | None) -> None:
        self.digits.append((digit, duration_ms))

    def call_ended(self, call: Call, reason: EndReason) -> None:
        self.ended.append(reason)


class Harness:
    def __init__(self, handler: Handler, **config: object) -> None:
        self.clock = ManualClock()
        self.handler = handler
        self.media: list[FakeMedia] = []
        self.ua = UserAgent(
            handler,
            self._media,
            UserAgentConfig(host="127.0.0.1", port=5060, **config),  # type: ignore[arg-type]
            clock=self.clock,
        )
        self.sent: list[tuple[Request | Response, Peer]] = []
        self.ua.attach(self._capture)
        self.cseq = 1
        self.to_tag: str | None = None

    def _media(self) -> FakeMedia:
        media = FakeMedia()
        self.media.append(media)
        return media

    def _capture(self, data: bytes, peer: Peer) -> None:
        self.sent.append((parse(data, datagram=True), peer))

    def take(self) -> list[Request | Response]:
        out = [message for message, _ in self.sent]
        self.sent.clear()
        return out

    def responses(self) -> list[Response]:
        return [m for m in self.take() if isinstance(m, Response)]

    def request(
        self,
        method: str,
        *extra: str,
        body: str = "",
        branch: str | None = None,
        cseq: int | None = None,
        in_dialog: bool = True,
        call_id: str = "call-1",
    ) -> Request:
        if cseq is None and method not in ("ACK", "CANCEL"):
            self.cseq += 1
        number = cseq if cseq is not None else self.cseq
        to = "<sip:bot@127.0.0.1>"
        if in_dialog and self.to_tag is not None:
            to += f";tag={self.to_tag}"
        lines = [
            f"{method} sip:bot@127.0.0.1 SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK{branch or method + str(number)}",
            '"Alice" <sip:alice@127.0.0.1>;tag=caller'.join(["From: ", ""]),
            f"To: {to}",
            f"Call-ID: {call_id}",
            f"CSeq: {number} {method}",
            "Max-Forwards: 70",
            "Contact: <sip:alice@127.0.0.1:5070>",
            *extra,
        ]
        if body:
            lines.append("Content-Type: application/sdp")
        text = "\r\n".join(lines) + "\r\n\r\n" + body
        message = parse(text.encode(), datagram=True)
        assert isinstance(message, Request)
        return message

    def send(self, request: Request) -> None:
        self.ua.receive(request, CALLER)

    async def invite(self, *extra: str, body: str | None = None) -> list[Response]:
        self.cseq = 1
        self.send(self.request("INVITE", *extra, body=offer() if body is None else body, cseq=1))
        await settle()
        responses = self.responses()
        final = [r for r in responses if r.status >= 200]
        if final and final[0].status < 300:
            self.to_tag = final[0].to_tag
        return responses

    async def establish(self, *extra: str) -> Call:
        responses = await self.invite(*extra)
        assert [r.status for r in responses] == [100, 180, 200]
        self.send(self.request("ACK", cseq=1, branch="ack1"))
        (call,) = self.ua.calls
        return call

    def answer_client(self, request: Request, status: int, *extra: str, body: str = "") -> None:
        lines = [
            f"SIP/2.0 {status} Whatever",
            *(f"Via: {v}" for v in request.headers.values("Via")),
            f"From: {request.headers.get('From')}",
            f"To: {request.headers.get('To')}",
            f"Call-ID: {request.call_id}",
            f"CSeq: {request.cseq}",
            *extra,
        ]
        text = "\r\n".join(lines) + "\r\n\r\n" + body
        response = parse(text.encode(), datagram=True)
        assert isinstance(response, Response)
        self.ua.receive(response, CALLER)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def only_requests(messages: list[Request | Response], method: str) -> list[Request]:
    """The requests of `method`, each once: UDP retransmissions left out."""
    seen: dict[str | None, Request] = {}
    for m in messages:
        if isinstance(m, Request) and m.method == method:
            seen.setdefault(m.top_via.branch, m)
    return list(seen.values())


async def test_answer_with_ringing_then_sdp_answer() -> None:
    handler = Handler()
    h = Harness(handler)
    responses = await h.invite()
    assert [r.status for r in responses] == [100, 180, 200]
    ringing, ok = responses[1], responses[2]
    assert ringing.to_tag == ok.to_tag is not None
    assert ok.headers.get("Server") == "voicebridge"
    assert str(ok.contacts[0].uri) == "sip:voicebridge@127.0.0.1:5060"
    assert ok.headers.get("Session-Expires") is None
    answer = sdp.parse(ok.body)
    assert answer.media[0].port == 40000
    assert answer.media[0].formats[0] == "0"
    # Retransmitted at T1, then T1 * 2, until the ACK.
    h.clock.advance(0.5)
    assert [r.status for r in h.responses()] == [200]
    h.clock.advance(1.0)
    assert [r.status for r in h.responses()] == [200]
    h.send(h.request("ACK", cseq=1, branch="ack1"))
    h.clock.advance(10)
    assert h.take() == []
    assert len(handler.established) == 1
    assert h.media[0].applied[0].codec.name == "PCMU"


async def test_no_ack_ends_the_call_with_bye() -> None:
    handler = Handler()
    h = Harness(handler)
    await h.invite()
    h.clock.advance(32)
    byes = only_requests(h.take(), "BYE")
    assert len(byes) == 1
    assert str(byes[0].uri) == "sip:alice@127.0.0.1:5070"
    h.answer_client(byes[0], 200)
    await settle()
    assert handler.ended == [EndReason.ERROR]
    assert h.ua.calls == []
    assert h.media[0].closed


async def test_no_common_codec_is_488_with_warning() -> None:
    h = Harness(Handler())
    body = offer().replace("RTP/AVP 0 8 101", "RTP/AVP 18").replace("a=rtpmap:0", "a=x:0")
    responses = await h.invite(body=body)
    assert [r.status for r in responses] == [100, 180, 488]
    assert (responses[2].headers.get("Warning") or "").startswith("30")
    assert h.ua.calls == []


async def test_bad_sdp_is_400() -> None:
    h = Harness(Handler())
    responses = await h.invite(body="this is not sdp\r\n")
    assert [r.status for r in responses] == [100, 180, 400]


async def test_rejected_route() -> None:
    h = Harness(Handler(decision=RejectCall(404)))
    responses = await h.invite()
    assert [r.status for r in responses] == [100, 180, 404]
    h2 = Harness(Handler(decision=RejectCall(503, retry_after=60)))
    responses = await h2.invite()
    assert responses[-1].status == 503 and responses[-1].headers.get("Retry-After") == "60"


async def test_cancel_while_routing() -> None:
    hold = asyncio.Event()
    handler = Handler(hold=hold)
    h = Harness(handler)
    responses = await h.invite()
    assert [r.status for r in responses] == [100, 180]
    h.send(h.request("CANCEL", cseq=1, branch="INVITE1"))
    responses = h.responses()
    assert [(r.status, r.cseq.method) for r in responses] == [(200, "CANCEL"), (487, "INVITE")]
    assert responses[0].to_tag == responses[1].to_tag
    hold.set()
    await settle()
    assert h.take() == []
    assert handler.ended == []
    assert h.ua.calls == []


async def test_bye_ends_the_call() -> None:
    handler = Handler()
    h = Harness(handler)
    await h.establish()
    h.send(h.request("BYE"))
    await settle()
    assert [r.status for r in h.responses()] == [200]
    assert handler.ended == [EndReason.CALLER_HANGUP]
    h.send(h.request("BYE"))
    assert [r.status for r in h.responses()] == [481]


async def test_out_of_order_cseq_is_500() -> None:
    h = Harness(Handler())
    await h.establish()
    h.send(h.request("INFO", cseq=5))
    assert [r.status for r in h.responses()] == [200]
    h.send(h.request("INFO", cseq=4))
    assert [r.status for r in h.responses()] == [500]


async def test_options_and_limits() -> None:
    h = Harness(Handler(), max_calls=1)
    h.send(h.request("OPTIONS", in_dialog=False))
    (ok,) = h.responses()
    assert ok.status == 200
    assert "INVITE" in (ok.headers.get("Allow") or "")
    assert ok.headers.get("Accept") == "application/sdp"
    assert ok.headers.get("Supported") == "timer"
    await h.establish()
    h.send(h.request("OPTIONS", in_dialog=False, branch="o2"))
    assert [(r.status, r.headers.get("Retry-After")) for r in h.responses()] == [(503, "30")]
    h.send(
        h.request("INVITE", body=offer(), cseq=1, branch="i2", call_id="call-2", in_dialog=False)
    )
    await settle()
    assert [r.status for r in h.responses()] == [100, 503]
    h2 = Harness(Handler())
    h2.ua.drain()
    h2.send(h2.request("OPTIONS", in_dialog=False))
    assert [r.status for r in h2.responses()] == [503]


async def test_a_node_not_ready_refuses_probes_and_calls_until_it_is() -> None:
    h = Harness(Handler())
    h.ua.not_ready = "speech models loading"
    h.send(h.request("OPTIONS", in_dialog=False))
    assert [(r.status, r.headers.get("Retry-After")) for r in h.responses()] == [(503, "30")]
    h.send(h.request("INVITE", body=offer(), cseq=1, branch="i1", in_dialog=False))
    await settle()
    assert [r.status for r in h.responses()] == [100, 503]
    assert h.ua.calls == []
    h.ua.not_ready = None
    h.send(h.request("OPTIONS", in_dialog=False, branch="o2"))
    assert [r.status for r in h.responses()] == [200]
    await h.establish()
    assert len(h.ua.calls) == 1


async def test_reinvite_hold_resume_and_pending_offer() -> None:
    h = Harness(Handler())
    await h.establish()
    h.send(h.request("INVITE", body=offer("a=sendonly\r\n", version=2)))
    _, ok = h.responses()
    assert ok.status == 200
    assert sdp.parse(ok.body).media[0].direction() is sdp.Direction.RECVONLY
    assert h.media[0].applied[-1].on_hold
    # Another offer before the ACK of that 200.
    h.send(h.request("UPDATE", body=offer(version=3)))
    (busy,) = h.responses()
    assert busy.status == 500 and busy.headers.get("Retry-After") is not None
    h.send(h.request("ACK", cseq=ok.cseq.number, branch="ack2"))
    h.send(h.request("INVITE", body=offer(version=4)))
    _, ok = h.responses()
    assert ok.status == 200
    assert not h.media[0].applied[-1].on_hold


async def test_late_offer() -> None:
    handler = Handler()
    h = Harness(handler)
    responses = await h.invite(body="")
    ok = responses[-1]
    assert ok.status == 200
    ours = sdp.parse(ok.body)
    assert ours.media[0].port == 40000
    assert h.media[0].applied == []
    answer = (
        offer().replace("RTP/AVP 0 8 101", "RTP/AVP 8 101").replace("a=rtpmap:0 PCMU/8000\r\n", "")
    )
    h.send(h.request("ACK", cseq=1, branch="ack1", body=answer))
    assert [m.codec.name for m in h.media[0].applied] == ["PCMA"]
    assert len(handler.established) == 1


async def test_late_offer_without_answer_hangs_up() -> None:
    handler = Handler()
    h = Harness(handler)
    await h.invite(body="")
    h.send(h.request("ACK", cseq=1, branch="ack1"))
    assert len(only_requests(h.take(), "BYE")) == 1
    assert handler.established == []


async def test_session_interval_too_small() -> None:
    h = Harness(Handler())
    responses = await h.invite("Supported: timer", "Session-Expires: 60")
    assert [(r.status, r.headers.get("Min-SE")) for r in responses] == [(100, None), (422, "90")]


async def test_session_expires_without_refresh() -> None:
    handler = Handler()
    h = Harness(handler)
    responses = await h.invite("Supported: timer", "Session-Expires: 90;refresher=uac")
    ok = responses[-1]
    assert ok.headers.get("Session-Expires") == "90;refresher=uac"
    assert ok.headers.get("Require") == "timer"
    h.send(h.request("ACK", cseq=1, branch="ack1"))
    h.clock.advance(50)
    h.send(h.request("UPDATE", "Supported: timer", "Session-Expires: 90;refresher=uac"))
    (refreshed,) = h.responses()
    assert refreshed.status == 200 and refreshed.body == b""
    assert refreshed.headers.get("Session-Expires") == "90;refresher=uac"
    h.clock.advance(59)
    assert h.take() == []
    h.clock.advance(2)
    assert len(only_requests(h.take(), "BYE")) == 1


async def test_we_refresh_by_update_when_allowed() -> None:
    h = Harness(Handler())
    await h.establish("Allow: INVITE, ACK, BYE, UPDATE", "Session-Expires: 120;refresher=uas")
    h.clock.advance(60)
    (update,) = only_requests(h.take(), "UPDATE")
    assert update.headers.get("Session-Expires") == "120;refresher=uas"
    assert update.body == b""
    h.answer_client(update, 200)
    h.clock.advance(59)
    assert only_requests(h.take(), "UPDATE") == []
    h.clock.advance(2)
    assert len(only_requests(h.take(), "UPDATE")) == 1


async def test_glare_with_our_refresh_reinvite() -> None:
    h = Harness(Handler())
    await h.establish("Session-Expires: 120;refresher=uas")
    h.clock.advance(60)
    (reinvite,) = only_requests(h.take(), "INVITE")
    assert reinvite.body
    h.send(h.request("INVITE", body=offer(version=2)))
    assert [r.status for r in h.responses()] == [100, 491]
    h.answer_client(reinvite, 200, "Contact: <sip:alice@127.0.0.1:5070>", body=offer())
    acks = only_requests(h.take(), "ACK")
    assert len(acks) == 1 and acks[0].cseq.number == reinvite.cseq.number


async def test_info_dtmf() -> None:
    handler = Handler()
    h = Harness(handler)
    await h.establish()
    request = h.request("INFO", f"Content-Type: {DTMF_RELAY}", body="Signal=5\r\nDuration=160\r\n")
    request.headers.remove("Content-Type")
    request.headers.add("Content-Type", DTMF_RELAY)
    h.send(request)
    assert [r.status for r in h.responses()] == [200]
    assert handler.digits == [("5", 160)]


async def test_hangup_sends_bye() -> None:
    handler = Handler()
    h = Harness(handler)
    call = await h.establish()
    call.hangup(EndReason.API_END)
    (bye,) = only_requests(h.take(), "BYE")
    h.answer_client(bye, 200)
    assert await call.wait_ended() is EndReason.API_END
    assert handler.ended == [EndReason.API_END]


async def test_hangup_bye_timeout_still_ends() -> None:
    h = Harness(Handler())
    call = await h.establish()
    call.hangup()
    h.clock.advance(32)
    assert await call.wait_ended() is EndReason.AGENT_HANGUP


async def _transfer(h: Harness, call: Call) -> tuple[asyncio.Task[TransferResult], Request]:
    task = asyncio.ensure_future(call.transfer("sip:human@192.0.2.9"))
    await settle()
    (refer,) = only_requests(h.take(), "REFER")
    assert refer.headers.get("Refer-To") == "<sip:human@192.0.2.9>"
    assert refer.headers.get("Referred-By") == "<sip:bot@127.0.0.1>"
    return task, refer


def notify(h: Harness, fragment: str, state: str) -> Request:
    request = h.request("NOTIFY", "Event: refer", f"Subscription-State: {state}", body=fragment)
    request.headers.remove("Content-Type")
    request.headers.add("Content-Type", "message/sipfrag;version=2.0")
    return request


async def test_transfer_succeeds() -> None:
    h = Harness(Handler())
    call = await h.establish()
    task, refer = await _transfer(h, call)
    h.answer_client(refer, 202)
    h.send(notify(h, "SIP/2.0 100 Trying\r\n", "active"))
    h.send(notify(h, "SIP/2.0 200 OK\r\n", "terminated;reason=noresource"))
    assert [r.status for r in h.responses()] == [200, 200]
    assert await task == TransferResult(TransferOutcome.SUCCEEDED, 200)


async def test_transfer_target_fails() -> None:
    h = Harness(Handler())
    call = await h.establish()
    task, refer = await _transfer(h, call)
    h.answer_client(refer, 202)
    h.send(notify(h, "SIP/2.0 486 Busy Here\r\n", "terminated"))
    assert await task == TransferResult(TransferOutcome.TARGET_FAILED, 486)


async def test_transfer_rejected() -> None:
    h = Harness(Handler())
    call = await h.establish()
    task, refer = await _transfer(h, call)
    h.answer_client(refer, 603)
    result = await task
    assert (result.outcome, result.status) == (TransferOutcome.REJECTED, 603)


async def test_transfer_timeout_and_no_notify() -> None:
    h = Harness(Handler())
    call = await h.establish()
    task, _ = await _transfer(h, call)
    h.clock.advance(32)
    assert (await task).outcome is TransferOutcome.TIMEOUT
    h.take()
    task, refer = await _transfer(h, call)
    h.answer_client(refer, 202)
    h.clock.advance(CallConfig().transfer_notify_timeout)
    assert (await task).outcome is TransferOutcome.NO_NOTIFY
    assert h.ua.calls == [call]


async def test_notify_without_transfer_is_481() -> None:
    h = Harness(Handler())
    await h.establish()
    h.send(notify(h, "SIP/2.0 200 OK\r\n", "terminated"))
    assert [r.status for r in h.responses()] == [481]


def test_caller_identity() -> None:
    h = Harness(Handler())
    request = h.request("INVITE", "P-Asserted-Identity: <sip:+15551234@trunk>", in_dialog=False)
    trusted = (ipaddress.ip_network("10.0.0.0/8"),)
    assert str(caller_identity(request, "10.1.2.3", trusted).uri) == "sip:+15551234@trunk"
    assert str(caller_identity(request, "192.0.2.1", trusted).uri) == "sip:alice@127.0.0.1"


@pytest.mark.parametrize(
    ("mime", "body", "expected"),
    [
        (DTMF_RELAY, b"Signal=5\r\nDuration=160\r\n", ("5", 160)),
        (DTMF_RELAY, b"Signal= #\nDuration=100", ("#", 100)),
        (DTMF_RELAY, b"Signal=a", ("A", None)),
        (DTMF_RELAY, b"Duration=160", None),
        ("application/dtmf", b"7", ("7", None)),
        ("application/dtmf", b"77", None),
    ],
)
def test_parse_dtmf_info(mime: str, body: bytes, expected: tuple[str, int | None] | None) -> None:
    assert parse_dtmf_info(mime, body) == expected


def test_sipfrag_status() -> None:
    assert sipfrag_status(b"SIP/2.0 200 OK\r\n") == 200
    assert sipfrag_status(b"SIP/2.0 603 Declined") == 603
    assert sipfrag_status(b"garbage") is None


async def test_drain_hangs_up_what_is_left() -> None:
    handler = Handler()
    h = Harness(handler)
    await h.establish()
    task = asyncio.ensure_future(h.ua.drain_and_stop(timeout=0.01))
    await asyncio.sleep(0.05)
    (bye,) = only_requests(h.take(), "BYE")
    h.send(h.request("OPTIONS", in_dialog=False, branch="o9"))
    assert [r.status for r in h.responses()] == [503]
    h.answer_client(bye, 200)
    await asyncio.wait_for(task, 1)
    assert handler.ended == [EndReason.API_END]


def _credentials(messages: list[Request | Response]) -> list[str]:
    return [
        name
        for message in messages
        for name in ("Authorization", "Proxy-Authorization")
        if name in message.headers
    ]


@pytest.mark.parametrize("status", [401, 407])
async def test_a_challenged_refer_is_rejected_without_credentials(status: int) -> None:
    """We keep no credentials, so a challenge to our request is a plain failure: no retry,
    never an Authorization for whatever realm the peer names."""
    h = Harness(Handler())
    call = await h.establish()
    task, refer = await _transfer(h, call)
    challenge = 'Digest realm="evil.example", nonce="abc", qop="auth"'
    name = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
    h.answer_client(refer, status, f"{name}: {challenge}")
    result = await task
    assert (result.outcome, result.status) == (TransferOutcome.REJECTED, status)
    h.clock.advance(64)
    after = h.take()
    assert only_requests(after, "REFER") == []
    assert _credentials(after) == []
    assert h.ua.calls == [call]


@pytest.mark.parametrize("status", [401, 407])
async def test_a_challenged_bye_ends_the_call_without_credentials(status: int) -> None:
    handler = Handler()
    h = Harness(handler)
    call = await h.establish()
    call.hangup(EndReason.API_END)
    (bye,) = only_requests(h.take(), "BYE")
    name = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
    h.answer_client(bye, status, f'{name}: Digest realm="evil.example", nonce="abc"')
    assert await call.wait_ended() is EndReason.API_END
    h.clock.advance(64)
    after = h.take()
    assert only_requests(after, "BYE") == []
    assert _credentials(after) == []
    assert handler.ended == [EndReason.API_END]


async def test_the_asserted_identity_is_believed_by_where_the_invite_came_from() -> None:
    h = Harness(Handler(), trusted_networks=("127.0.0.0/8",), allowed_networks=("0.0.0.0/0",))
    asserted = "P-Asserted-Identity: <sip:+15551234@trunk>"
    sent = h.request("INVITE", asserted, body=offer(), cseq=1).to_bytes()
    # From an untrusted address, but its Via names a trusted one (maddr) for the responses.
    spoofed = parse(sent.replace(b";branch=", b";maddr=127.0.0.1;branch=", 1), datagram=True)
    h.ua.receive(spoofed, Peer("UDP", ("127.0.0.1", 5070), source=("192.0.2.7", 5070)))
    await settle()
    (call,) = h.ua.calls
    assert str(call.caller.uri) == "sip:alice@127.0.0.1"
    h.send(h.request("INVITE", asserted, body=offer(), cseq=1, call_id="call-2", branch="two"))
    await settle()
    trusted = next(c for c in h.ua.calls if c.call_id == "call-2")
    assert str(trusted.caller.uri) == "sip:+15551234@trunk"
