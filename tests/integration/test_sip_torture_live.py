"""The torture set of tests/data/sip-torture/ against a live UserAgent, over UDP and over TCP,
while a SIPp call is up: every message gets the outcome DECISIONS.md records (an answer with that
status, silence, or a closed connection), nothing is logged at WARNING or above, the call
survives and ends normally from both sides of its dialog, and a new call succeeds afterwards.

Over UDP each message is one datagram from a socket of its own; over TCP each message has a
connection of its own, and the messages that frame alone go again back to back on one
connection. Two things are rewritten, both in the top Via only, and only where needed:

- `;rport` over UDP. The torture messages' Vias name hosts that do not exist; the bridge answers
  a UDP request at the received address and the sent-by port, 5060 by default (RFC 3261
  §18.2.2), not at the port the test sends from, unless the Via asks for rport (RFC 3581 §4).
  Over TCP the answer goes back on the connection and nothing is rewritten.
- A suffix on a branch that an earlier message used with the same sent-by and method. RFC 4475
  reuses branches (z9hG4bKkdjuw in 22 messages) and the batch resends messages; by §17.2.3
  such a request is a retransmission of the earlier one, answered where that one came from.

`prepare` checks that neither rewrite changes what the parser and `validate.check` make of the
message, which tests/unit/sip/test_torture.py holds to DECISIONS.md.

The torture INVITEs that reach the handler are calls like any other: it accepts them all, and
each gets what its offer deserves (a 200 with our answer, our offer when it has none, 488 without
a codec in common, 400 for SDP that does not read). The test ACKs every final response and hangs
up every answered call with BYE. Where a TCP stream stalls after the INVITE, those go over a
connection of their own, since on the stalled one they would be read as the rest of the stalled
message.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, cast

import pytest

from bridge.sip.call import Call, CallState
from bridge.sip.call_interfaces import (
    AcceptCall,
    EndReason,
    RouteDecision,
    TransferOutcome,
)
from bridge.sip.fields import CSeq, Via
from bridge.sip.framing import FramingError, StreamFramer
from bridge.sip.grammar import SipParseError
from bridge.sip.headers import Headers
from bridge.sip.message import MalformedMessage, Request, Response, parse
from bridge.sip.offer_answer import LocalMedia, NegotiatedMedia, answer
from bridge.sip.sdp import parse as parse_sdp
from bridge.sip.sdp import serialize
from bridge.sip.transaction import make_ack, new_branch
from bridge.sip.transport import SipTransport
from bridge.sip.uri import NameAddr, SipUri
from bridge.sip.useragent import UserAgent, UserAgentConfig
from bridge.sip.validate import Drop, check
from tests.ports import free_port
from tests.sipp import SIPP, SippOptions, run_sipp, scenario_path, start_sipp
from tests.unit.sip.test_torture import DATA, DECISIONS, INDEX

pytestmark = pytest.mark.skipif(
    SIPP is None,
    reason="sipp is not installed (Debian package sip-tester, scripts/apt-packages.txt)",
)

HOST = "127.0.0.1"
SIPP_TRANSPORTS = {"UDP": "u1", "TCP": "t1"}
HELD, AFTER = "held", "after"
"""The Request-URI users of the SIPp calls."""
TORTURE = "torture"
"""The agent the handler gives every other call: the torture INVITEs."""
DECLINE = 603
"""SIPp's answer to the transfer of the held call."""
ANSWERED = (100, 180, 200)
"""A torture call answered: 100 at once, 180 once it is a call, 200 with SDP."""
NO_CODEC = (100, 180, 488)
"""A torture call whose offer has no codec of ours."""
BAD_SDP = (100, 180, 400)
"""A torture call whose offer does not read."""
CALLS = frozenset({ANSWERED, NO_CODEC, BAD_SDP})
ANSWER_WAIT = 2.0
"""Seconds each expected response may take."""
QUIET = 0.5
"""Seconds after the replay in which nothing more may arrive."""
MESSAGE_TIMEOUT = 1.0
"""SipTransport.message_timeout for the test, so that stalled messages end within it."""

# What the user agent answers to the requests `validate.check` lets through ("ok" in
# DECISIONS.md): OPTIONS 200; a To tag names a dialog, and none of these names ours (481, after
# the 100 every INVITE gets at once); a new INVITE is a call, routed to the handler, which
# accepts it. RFC 4475's offers are PCMU (and QCELP) audio with a video stream we refuse; 4.6's
# and 4.9's offer G.726 only. The responses match none of our transactions and get nothing.
UA_ANSWERS: dict[str, tuple[int, ...]] = {
    "rfc4475/3.1.1.1_wsinv.dat": (100, 481),
    "rfc4475/3.1.1.3_esc01.dat": ANSWERED,
    "rfc4475/3.1.1.6_lwsdisp.dat": (200,),
    "rfc4475/3.1.1.7_longreq.dat": ANSWERED,
    "rfc4475/3.1.1.9_semiuri.dat": (200,),
    "rfc4475/3.1.1.10_transports.dat": (200,),
    "rfc4475/3.1.1.12_unreason.dat": (),
    "rfc4475/3.1.1.13_noreason.dat": (),
    "rfc4475/3.1.2.9_lwsstart.dat": ANSWERED,
    "rfc4475/3.1.2.10_trws.dat": (200,),
    "rfc4475/3.1.2.12_baddate.dat": ANSWERED,
    "rfc4475/3.3.11_zeromf.dat": (200,),
    # A datagram's body runs to its end: an offer. A stream's INVITE has no body: we offer.
    "rfc4475/3.4.1_inv2543.dat": ANSWERED,
    "rfc5118/4.5_via-received-param-with-delim.dat": (481,),
    "rfc5118/4.5_via-received-param-no-delim.dat": (200,),
    "rfc5118/4.6_ipv6-in-sdp.dat": NO_CODEC,
    "rfc5118/4.7_mult-ip-in-header.dat": (481,),
    "rfc5118/4.8_mult-ip-in-sdp.dat": ANSWERED,
    "rfc5118/4.9_ipv4-mapped-ipv6.dat": NO_CODEC,
    "rfc5118/4.10_ipv6-correct-abnf-2-colons.dat": (200,),
}
# On a stream, what follows 3.1.1.8's REGISTER is framed too: a new INVITE, then the last octet
# of its body (its Content-Length is one short) with the file's final CRLFs, which is no message
# and is dropped. The INVITE's SDP has `m =video`, which is no SDP line.
LATER_FRAMES: dict[str, tuple[tuple[int, ...], ...]] = {"rfc4475/3.1.1.8_dblreq.dat": (BAD_SDP, ())}
# On a stream, these files hold bytes past their message (DECISIONS.md): the start of a next
# message that never completes, so the connection ends at the message timeout.
STALLED_TAILS = frozenset(
    {
        "rfc4475/3.4.1_inv2543.dat",
        "rfc5118/4.6_ipv6-in-sdp.dat",
        "rfc5118/4.8_mult-ip-in-sdp.dat",
        "rfc5118/4.9_ipv4-mapped-ipv6.dat",
    }
)


@dataclass(frozen=True)
class Expected:
    statuses: tuple[tuple[int, ...], ...]
    """The statuses of the responses to each request the bridge frames, in order."""
    closed: bool = False
    """TCP: the bridge ends the connection (at once when it cannot frame the stream, at the
    message timeout when a message never completes)."""


def expected(file: str, transport: str) -> Expected:
    decision = DECISIONS[file]
    outcome = decision.datagram if transport == "UDP" else decision.stream
    if outcome in ("framing", "incomplete"):
        return Expected(((),), closed=True)
    if decision.verdict == "ok":
        statuses = UA_ANSWERS[file]
    elif decision.verdict == "drop":
        statuses = ()
    else:
        statuses = (int(decision.verdict),)
    if transport == "UDP":
        return Expected((statuses,))
    return Expected((statuses, *LATER_FRAMES.get(file, ())), closed=file in STALLED_TAILS)


def test_every_request_validate_lets_through_has_an_answer() -> None:
    assert UA_ANSWERS.keys() == {f for f, d in DECISIONS.items() if d.verdict == "ok"}


# --- the bridge's side ---------------------------------------------------------------------------


class NoMedia:
    def __init__(self) -> None:
        self.local_address = HOST
        self.local_port = free_port()

    async def open(self) -> None:
        pass

    def apply(self, media: NegotiatedMedia) -> None:
        pass

    async def close(self) -> None:
        pass


@dataclass
class Handler:
    """Accepts every call; keeps the SIPp calls (by Request-URI user) apart from the others,
    the torture calls, which share Call-IDs."""

    established: list[Call] = field(default_factory=list)
    ended: dict[str, EndReason] = field(default_factory=dict)
    torture_routed: int = 0
    torture_established: int = 0
    torture_ended: list[EndReason] = field(default_factory=list)

    async def route(self, invite: Request, caller: NameAddr) -> RouteDecision:
        user = invite.uri.user if isinstance(invite.uri, SipUri) else None
        if user in (HELD, AFTER):
            return AcceptCall(agent=user, listener=self)
        self.torture_routed += 1
        return AcceptCall(agent=TORTURE, listener=self)

    def call_established(self, call: Call) -> None:
        if call.agent == TORTURE:
            self.torture_established += 1
        else:
            self.established.append(call)

    def dtmf(self, call: Call, digit: str, duration_ms: int | None) -> None:
        pass

    def call_ended(self, call: Call, reason: EndReason) -> None:
        if call.agent == TORTURE:
            self.torture_ended.append(reason)
        else:
            self.ended[call.call_id] = reason


@pytest.fixture
async def agent(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[UserAgent, Handler]]:
    monkeypatch.setattr(SipTransport, "message_timeout", MESSAGE_TIMEOUT)
    handler = Handler()
    ua = UserAgent(handler, NoMedia, UserAgentConfig(host=HOST, port=0))
    await ua.start()
    yield ua, handler
    await ua.close()


# --- rewriting -----------------------------------------------------------------------------------

VIA_ROW = re.compile(rb"^(?:via|v)[ \t]*:", re.IGNORECASE | re.MULTILINE)
BRANCH = re.compile(rb"(branch[ \t]*=[ \t]*[^ \t;,\r\n]+)", re.IGNORECASE)

TransactionKey = tuple[str, str, int | None, str]


def frames(data: bytes, transport: str) -> list[bytes]:
    """The messages the bridge reads from `data`: the datagram, or what a stream frames."""
    if transport == "UDP":
        return [data]
    try:
        return [item for item in StreamFramer().feed(data) if isinstance(item, bytes)]
    except FramingError:
        return []


def read(frame: bytes, transport: str) -> Request | Response | MalformedMessage:
    try:
        return parse(frame, datagram=transport == "UDP")
    except MalformedMessage as exc:
        return exc


def verdict(data: bytes, transport: str) -> str:
    found = frames(data, transport)
    if not found:
        return "incomplete"
    outcome = check(read(found[0], transport))
    if outcome is None:
        return "ok"
    return "drop" if isinstance(outcome, Drop) else str(outcome.status)


def top_via_value(data: bytes) -> tuple[int, int]:
    """Where the first value of the first Via row of the header section is, folds included."""
    head_end = data.find(b"\r\n\r\n")
    row = VIA_ROW.search(data, 0, head_end if head_end >= 0 else len(data))
    assert row is not None
    end = row.end()
    while True:
        end = data.index(b"\r\n", end)
        if data[end + 2 : end + 3] not in (b" ", b"\t"):
            break
        end += 2
    comma = data.find(b",", row.end(), end)
    return row.end(), (comma if comma >= 0 else end)


class Replay:
    """Sends torture messages to one bridge and keeps what is needed to tell whether they got
    their outcome; `problems` lists what did not."""

    def __init__(self, port: int) -> None:
        self.address = (HOST, port)
        self.problems: list[str] = []
        self.exchanges: list[Exchange] = []
        self._keys: set[TransactionKey] = set()
        self._suffixes = 0

    def prepare(self, file: str, transport: str) -> bytes:
        data = (DATA / file).read_bytes()
        found = frames(data, transport)
        request = read(found[0], transport) if found else None
        if not isinstance(request, Request):
            return data
        via = request.top_via
        method = "INVITE" if request.method == "ACK" else request.method
        key = (via.branch or "", via.host.lower(), via.port, method)
        repeated = via.rfc3261_branch and key in self._keys
        self._keys.add(key)
        start, end = top_via_value(data)
        value = data[start:end]
        if repeated:
            self._suffixes += 1
            value = BRANCH.sub(rb"\1-replay%d" % self._suffixes, value, count=1)
        if transport == "UDP" and not via.wants_rport:
            value = value.rstrip(b" \t") + b";rport"
        prepared = data[:start] + value + data[end:]
        assert verdict(prepared, transport) == verdict(data, transport), file
        return prepared

    async def send(self, files: list[str], transport: str) -> None:
        """Send `files` (more than one: back to back on one connection) and read the responses
        they should get; ACK those that need it."""
        data = b"".join(self.prepare(file, transport) for file in files)
        expect = [expected(file, transport) for file in files]
        per_frame = [statuses for one in expect for statuses in one.statuses]
        peer = await (udp_peer() if transport == "UDP" else tcp_peer(self.address))
        exchange = Exchange(" + ".join(files), transport, peer, any(one.closed for one in expect))
        self.exchanges.append(exchange)
        peer.send(data, self.address)
        responses = await peer.read(sum(len(statuses) for statuses in per_frame))
        exchange.responses = responses
        got = [status_of(response) for response in responses]
        wanted = [status for statuses in per_frame for status in statuses]
        if got != wanted:
            self.problems.append(f"{exchange.name} over {transport}: got {got}, want {wanted}")
        if got != wanted or not wanted:
            return
        requests = frames(data, transport)
        for request, answers in zip(requests, _split(responses, per_frame), strict=True):
            invite = read(request, transport)
            if not answers or status_of(answers[-1]) < 200:
                continue
            if not isinstance(invite, Request) or invite.method != "INVITE":
                continue
            if exchange.expect_closed:
                # Where the stream stalls, an ACK would be read as the rest of the stalled bytes.
                exchange.side = exchange.side or await tcp_peer(self.address)
            sender = exchange.side or peer
            final = answers[-1]
            ack = ack_for(invite, final, transport, sender)
            if ack is None:
                exchange.unacked.add(final)
                continue
            sender.send(ack, self.address)
            if status_of(final) < 300:
                await self.hang_up(exchange, invite, final, sender)

    async def hang_up(self, exchange: Exchange, invite: Request, ok: bytes, peer: Peer) -> None:
        """End an answered call with BYE, which must get a 200; the 2xx may come again meanwhile
        (until our ACK arrives)."""
        exchange.retransmitted.add(ok)
        response = parse(ok, datagram=exchange.transport == "UDP")
        assert isinstance(response, Response)
        peer.send(in_dialog(invite, response, "BYE", peer), self.address)
        got = [status_of(r) for r in await peer.read(1, ignore=exchange.retransmitted)]
        if got != [200]:
            self.problems.append(f"{exchange.name} over {exchange.transport}: BYE got {got}")

    async def settle(self) -> None:
        """After the replay: the connections that should end have ended, and nothing more came
        anywhere, but for the final responses we could not ACK, again over UDP (Timer G)."""
        for exchange in self.exchanges:
            if exchange.expect_closed:
                try:
                    await asyncio.wait_for(exchange.peer.closed.wait(), MESSAGE_TIMEOUT + QUIET)
                except TimeoutError:
                    self.problems.append(f"{exchange.name}: connection not closed")
        await asyncio.sleep(QUIET)
        for exchange in self.exchanges:
            if exchange.peer.closed.is_set() and not exchange.expect_closed:
                self.problems.append(f"{exchange.name} over {exchange.transport}: closed")
            if exchange.side is not None and exchange.side.closed.is_set():
                self.problems.append(f"{exchange.name}: the connection of its ACK closed")
            for peer in (exchange.peer, exchange.side):
                if peer is None:
                    continue
                while not peer.received.empty():
                    extra = peer.received.get_nowait()
                    if extra not in exchange.retransmitted and (
                        exchange.transport != "UDP" or extra not in exchange.unacked
                    ):
                        self.problems.append(
                            f"{exchange.name} over {exchange.transport}: also got {extra[:60]!r}"
                        )
                peer.close()


@dataclass
class Exchange:
    name: str
    transport: str
    peer: Peer
    expect_closed: bool
    responses: list[bytes] = field(default_factory=list)
    unacked: set[bytes] = field(default_factory=set)
    """Final responses to INVITEs too broken to build an ACK for (3.3.1 has no To to copy)."""
    retransmitted: set[bytes] = field(default_factory=set)
    """2xx responses, which the bridge sends again until the ACK arrives, over any transport."""
    side: Peer | None = None
    """TCP: the connection the ACKs and BYEs go over when `peer` stalls."""


def _split(responses: list[bytes], per_frame: list[tuple[int, ...]]) -> list[list[bytes]]:
    out = []
    for statuses in per_frame:
        out.append(responses[: len(statuses)])
        responses = responses[len(statuses) :]
    return out


def status_of(response: bytes) -> int:
    """The status of a response's status line; -1 for anything else."""
    match = re.match(rb"SIP/2\.0 (\d{3}) ", response)
    return int(match.group(1)) if match else -1


def ack_for(invite: Request, final: bytes, transport: str, sender: Peer) -> bytes | None:
    """The ACK of a final response, sent from `sender`: of a non-2xx one (§17.1.1.3), or of a
    2xx in the dialog it set up; None when the INVITE's headers are too broken to build one
    from (the bridge could not match such an ACK anyway)."""
    try:
        response = parse(final, datagram=transport == "UDP")
        assert isinstance(response, Response)
        if response.status < 300:
            return in_dialog(invite, response, "ACK", sender)
        return make_ack(invite, response).to_bytes()
    except SipParseError:
        return None


def in_dialog(invite: Request, ok: Response, method: str, sender: Peer) -> bytes:
    """The ACK of a 2xx or a BYE in the dialog it set up (§12.2.1.1; no Record-Route here),
    sent from `sender`. The ACK carries our answer when the 2xx carried the bridge's offer."""
    via = Via(transport=sender.kind, host=HOST, port=sender.local[1], params=(("rport", None),))
    headers = Headers()
    headers.add("Via", str(via.with_param("branch", new_branch())))
    headers.add("Max-Forwards", "70")
    headers.add("From", invite.headers.get("From") or "")
    headers.add("To", ok.headers.get("To") or "")
    headers.add("Call-ID", invite.call_id)
    headers.add("CSeq", str(CSeq(invite.cseq.number + (method == "BYE"), method)))
    body = b""
    if method == "ACK" and not invite.body:
        body = serialize(answer(parse_sdp(ok.body), LocalMedia(HOST, free_port())).sdp)
        headers.add("Content-Type", "application/sdp")
    return Request(method, ok.contacts[0].uri, headers, body).to_bytes()


# --- the test's sockets --------------------------------------------------------------------------


class Peer(Protocol):
    received: asyncio.Queue[bytes]
    closed: asyncio.Event
    kind: str
    """UDP or TCP."""

    @property
    def local(self) -> tuple[str, int]: ...

    def send(self, data: bytes, address: tuple[str, int]) -> None: ...

    async def read(self, count: int, ignore: set[bytes] | None = None) -> list[bytes]: ...

    def close(self) -> None: ...


class _Reader:
    received: asyncio.Queue[bytes]
    transport: asyncio.BaseTransport | None

    async def read(self, count: int, ignore: set[bytes] | None = None) -> list[bytes]:
        """Up to `count` messages but those in `ignore`, each within ANSWER_WAIT of the one
        before."""
        out: list[bytes] = []
        try:
            while len(out) < count:
                message = await asyncio.wait_for(self.received.get(), ANSWER_WAIT)
                if message not in (ignore or set()):
                    out.append(message)
        except TimeoutError:
            pass
        return out

    @property
    def local(self) -> tuple[str, int]:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return str(host), int(port)


class UdpPeer(_Reader, asyncio.DatagramProtocol):
    kind = "UDP"

    def __init__(self) -> None:
        self.received = asyncio.Queue()
        self.closed = asyncio.Event()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's datagram transport does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.received.put_nowait(data)

    def send(self, data: bytes, address: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(data, address)

    def close(self) -> None:
        assert self.transport is not None
        self.transport.close()


class TcpPeer(_Reader, asyncio.Protocol):
    kind = "TCP"

    def __init__(self) -> None:
        self.received = asyncio.Queue()
        self.closed = asyncio.Event()
        self.transport: asyncio.Transport | None = None
        self._framer = StreamFramer()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        for item in self._framer.feed(data):
            if isinstance(item, bytes):
                self.received.put_nowait(item)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()

    def send(self, data: bytes, address: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def close(self) -> None:
        assert self.transport is not None
        self.transport.close()


async def udp_peer() -> Peer:
    _, peer = await asyncio.get_running_loop().create_datagram_endpoint(
        UdpPeer, local_addr=(HOST, 0)
    )
    return peer


async def tcp_peer(address: tuple[str, int]) -> Peer:
    _, peer = await asyncio.get_running_loop().create_connection(TcpPeer, *address)
    return peer


# --- the test ------------------------------------------------------------------------------------


def batched(file: str) -> bool:
    """Whether a file can go back to back with others on one connection: it frames as one
    message, with nothing left over, answered at once (a call's answer waits for its handler)."""
    decision = DECISIONS[file]
    return (
        decision.stream in ("parse", "reject")
        and file not in LATER_FRAMES
        and file not in STALLED_TAILS
        and UA_ANSWERS.get(file) not in CALLS
    )


async def until(condition: Callable[[], object], timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


def sipp_options(ua: UserAgent, scenario: str, user: str, transport: str) -> SippOptions:
    return SippOptions(
        scenario_path(scenario),
        remote=f"{HOST}:{ua.port}",
        service=user,
        transport=SIPP_TRANSPORTS[transport],
        recv_timeout_ms=30000,
        # call_caller_hangup's pause before its BYE; call_hold_during_torture has none.
        extra_args=("-d", "200"),
    )


@pytest.mark.parametrize("transport", ["UDP", "TCP"])
async def test_torture_set_with_a_call_up(
    agent: tuple[UserAgent, Handler],
    transport: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ua, handler = agent
    held = await start_sipp(
        sipp_options(ua, "call_hold_during_torture", HELD, transport), tmp_path / HELD
    )
    try:
        await until(lambda: handler.established)
        (call,) = handler.established

        replay = Replay(ua.port)
        for file in INDEX:
            await replay.send([file], transport)
        if transport == "TCP":
            await replay.send([file for file in INDEX if batched(file)], transport)
        await replay.settle()
        assert not replay.problems, "\n".join(replay.problems)
        statuses = [s for file in INDEX for s in expected(file, transport).statuses]
        answered = statuses.count(ANSWERED)
        refused = sum(statuses.count(call) for call in CALLS) - answered
        assert handler.torture_routed == answered + refused
        assert handler.torture_established == answered
        assert Counter(handler.torture_ended) == Counter(
            {EndReason.CALLER_HANGUP: answered, EndReason.ERROR: refused}
        )

        assert ua.calls == [call] and call.state is CallState.CONFIRMED
        assert handler.ended == {}
        transfer = await asyncio.wait_for(call.transfer("sip:human@127.0.0.1:5099"), 10)
        assert (transfer.outcome, transfer.status) == (TransferOutcome.REJECTED, DECLINE)
        result = await held.wait(10)
    finally:
        await held.kill()
    assert result.successful_calls == 1 and result.failed_calls == 0, result.describe()
    await until(lambda: call.call_id in handler.ended)
    assert handler.ended[call.call_id] is EndReason.CALLER_HANGUP

    after = await run_sipp(
        sipp_options(ua, "call_caller_hangup", AFTER, transport),
        timeout=20,
        workdir=tmp_path / AFTER,
    )
    assert after.successful_calls == 1 and after.failed_calls == 0, after.describe()
    await until(lambda: len(handler.ended) == 2)
    assert ua.calls == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
