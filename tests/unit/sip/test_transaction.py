"""The four §17 state machines and the table that routes to them, on a manual clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.sip.message import Request, Response, parse
from bridge.sip.timers import ManualClock
from bridge.sip.transaction import (
    AnswerRetransmission,
    Failure,
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    Peer,
    ServerTransaction,
    State,
    Transaction,
    make_ack,
    make_cancel,
    new_branch,
)
from bridge.sip.transaction_table import TransactionTable
from bridge.sip.uri import parse_uri
from bridge.sip.validate import response_to

TORTURE = Path(__file__).parents[2] / "data" / "sip-torture" / "rfc4475"
UDP = Peer("UDP", ("192.0.2.1", 5060))
TCP = Peer("TCP", ("192.0.2.1", 40000), ("192.0.2.1", 5060))


def request(
    method: str = "INVITE",
    *,
    branch: str = "z9hG4bKone",
    cseq: int = 1,
    cseq_method: str | None = None,
    to_tag: str | None = None,
    transport: str = "UDP",
) -> Request:
    to = "<sip:bot@bridge.example.com>" + (f";tag={to_tag}" if to_tag else "")
    text = (
        f"{method} sip:bot@bridge.example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} 192.0.2.1:5060;branch={branch}\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@example.com>;tag=a1\r\n"
        f"To: {to}\r\n"
        "Call-ID: call-1@example.com\r\n"
        f"CSeq: {cseq} {cseq_method or method}\r\n"
        "Contact: <sip:alice@192.0.2.1>\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    message = parse(text.encode(), datagram=True)
    assert isinstance(message, Request)
    return message


def state(transaction: Transaction) -> State:
    """Read afresh: mypy would otherwise keep the state narrowed across calls that change it."""
    return transaction.state


def reply(to: Request, status: int, tag: str = "b2") -> Response:
    return response_to(to, status, to_tag=tag)


class Wire:
    def __init__(self) -> None:
        self.sent: list[tuple[float, bytes, Peer]] = []
        self.clock = ManualClock()
        self.broken = False

    def __call__(self, data: bytes, peer: Peer) -> None:
        if self.broken:
            raise ConnectionRefusedError("refused")
        self.sent.append((self.clock.now(), data, peer))

    def times(self) -> list[float]:
        return [when for when, _, _ in self.sent]

    def messages(self) -> list[Request | Response]:
        return [parse(data, datagram=True) for _, data, _ in self.sent]

    def statuses(self) -> list[int]:
        return [m.status for m in self.messages() if isinstance(m, Response)]


class Tu:
    """Records what reaches the TU; answers nothing unless a test does."""

    def __init__(self) -> None:
        self.requests: list[ServerTransaction] = []
        self.cancels: list[tuple[NonInviteServerTransaction, InviteServerTransaction]] = []
        self.acks: list[tuple[Request, Peer]] = []
        self.failures: list[tuple[ServerTransaction, Failure]] = []

    def on_request(self, transaction: ServerTransaction) -> None:
        self.requests.append(transaction)

    def on_cancel(
        self, cancel: NonInviteServerTransaction, invite: InviteServerTransaction
    ) -> None:
        self.cancels.append((cancel, invite))

    def on_ack(self, ack: Request, peer: Peer) -> None:
        self.acks.append((ack, peer))

    def on_server_failure(self, transaction: ServerTransaction, failure: Failure) -> None:
        self.failures.append((transaction, failure))


@pytest.fixture
def wire() -> Wire:
    return Wire()


@pytest.fixture
def tu() -> Tu:
    return Tu()


@pytest.fixture
def table(wire: Wire, tu: Tu) -> TransactionTable:
    return TransactionTable(wire, tu, wire.clock)


def client(
    table: TransactionTable, message: Request, peer: Peer = UDP
) -> tuple[InviteClientTransaction | NonInviteClientTransaction, list[Response]]:
    got: list[Response] = []
    transaction = table.start_client(message, peer, got.append)
    assert isinstance(transaction, InviteClientTransaction | NonInviteClientTransaction)
    return transaction, got


# --- INVITE client ------------------------------------------------------------------------------


def test_invite_client_timer_a_doubles_until_timer_b_gives_408(
    wire: Wire, table: TransactionTable
) -> None:
    transaction, got = client(table, request())
    wire.clock.advance(40)
    # §17.1.1.2: A doubles with no cap (unlike E): 7 transmissions before B at 64*T1.
    assert wire.times() == [0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert [r.status for r in got] == [408]
    assert transaction.failure is Failure.TIMEOUT
    assert state(transaction) is State.TERMINATED and len(table) == 0


def test_invite_client_over_tcp_never_retransmits(wire: Wire, table: TransactionTable) -> None:
    _, got = client(table, request(transport="TCP"), TCP)
    wire.clock.advance(31.9)
    assert wire.times() == [0] and got == []
    wire.clock.advance(0.1)
    assert [r.status for r in got] == [408]


def test_invite_client_acks_non_2xx_and_absorbs_its_retransmissions(
    wire: Wire, table: TransactionTable
) -> None:
    invite = request(branch=new_branch())
    transaction, got = client(table, invite)
    table.receive(reply(invite, 180), UDP)
    wire.clock.advance(10)
    assert wire.times() == [0] and state(transaction) is State.PROCEEDING
    busy = reply(invite, 486)
    table.receive(busy, UDP)
    table.receive(busy, UDP)
    assert [r.status for r in got] == [180, 486]
    acks = wire.messages()[1:]
    assert len(acks) == 2 and all(isinstance(a, Request) and a.method == "ACK" for a in acks)
    ack = acks[0]
    assert isinstance(ack, Request)
    assert ack.top_via == invite.top_via and ack.to_tag == "b2"
    assert str(ack.cseq) == "1 ACK" and ack.uri == invite.uri
    wire.clock.advance(31.9)
    assert state(transaction) is State.COMPLETED
    wire.clock.advance(0.1)
    assert state(transaction) is State.TERMINATED and len(table) == 0


def test_invite_client_accepted_state_passes_every_2xx_until_timer_m(
    wire: Wire, table: TransactionTable
) -> None:
    invite = request(branch=new_branch())
    transaction, got = client(table, invite)
    table.receive(reply(invite, 200), UDP)
    table.receive(reply(invite, 200), UDP)
    table.receive(reply(invite, 200, tag="fork"), UDP)
    assert [r.to_tag for r in got] == ["b2", "b2", "fork"]
    assert state(transaction) is State.ACCEPTED and len(wire.sent) == 1
    wire.clock.advance(32)
    assert state(transaction) is State.TERMINATED
    table.receive(reply(invite, 200), UDP)
    assert len(got) == 3


# --- non-INVITE client --------------------------------------------------------------------------


def test_non_invite_client_timer_e_doubles_to_t2_then_timer_f(
    wire: Wire, table: TransactionTable
) -> None:
    transaction, got = client(table, request("OPTIONS"))
    wire.clock.advance(40)
    expected = [0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert wire.times() == expected
    assert [r.status for r in got] == [408] and transaction.failure is Failure.TIMEOUT


def test_non_invite_client_retransmits_every_t2_once_proceeding(
    wire: Wire, table: TransactionTable
) -> None:
    bye = request("BYE", cseq=2)
    _, got = client(table, bye)
    wire.clock.advance(0.6)
    table.receive(reply(bye, 100), UDP)
    wire.clock.advance(10)
    # §17.1.2.2: the E already running fires as scheduled, then every T2.
    assert wire.times() == [0, 0.5, 1.5, 5.5, 9.5]
    table.receive(reply(bye, 200), UDP)
    table.receive(reply(bye, 200), UDP)
    assert [r.status for r in got] == [100, 200]
    wire.clock.advance(20)
    assert len(wire.sent) == 5


def test_non_invite_client_timer_k_over_udp_and_none_over_tcp(
    wire: Wire, table: TransactionTable
) -> None:
    over_udp, _ = client(table, request("OPTIONS", branch="z9hG4bKu"))
    over_tcp, _ = client(table, request("OPTIONS", branch="z9hG4bKt", transport="TCP"), TCP)
    table.receive(reply(over_udp.request, 200), UDP)
    table.receive(reply(over_tcp.request, 200), TCP)
    assert state(over_tcp) is State.TERMINATED and state(over_udp) is State.COMPLETED
    wire.clock.advance(5)
    assert state(over_udp) is State.TERMINATED and len(table) == 0


def test_a_send_error_is_a_503(wire: Wire, table: TransactionTable) -> None:
    wire.broken = True
    transaction, got = client(table, request("OPTIONS"))
    assert [r.status for r in got] == [503] and transaction.failure is Failure.TRANSPORT
    assert len(table) == 0


def test_responses_match_on_branch_and_cseq_method(wire: Wire, table: TransactionTable) -> None:
    invite = request(branch="z9hG4bKsame")
    _, invite_got = client(table, invite)
    _, cancel_got = client(table, make_cancel(invite))
    table.receive(reply(make_cancel(invite), 200), UDP)
    table.receive(reply(request(branch="z9hG4bKother"), 200), UDP)
    assert invite_got == [] and [r.status for r in cancel_got] == [200]
    with pytest.raises(ValueError):
        table.start_client(invite, UDP, lambda _: None)
    with pytest.raises(ValueError):
        table.start_client(request(branch="old2543"), UDP, lambda _: None)


def test_make_cancel_copies_what_section_9_1_names() -> None:
    invite = request(branch="z9hG4bKc")
    cancel = make_cancel(invite)
    assert cancel.method == "CANCEL" and cancel.uri == invite.uri
    assert cancel.top_via == invite.top_via and str(cancel.cseq) == "1 CANCEL"
    assert cancel.headers.get("To") == invite.headers.get("To")
    ack = make_ack(invite, reply(invite, 404))
    assert ack.call_id == invite.call_id and ack.from_tag == "a1"


# --- INVITE server ------------------------------------------------------------------------------


def test_invite_server_sends_100_at_once_and_resends_the_last_response(
    wire: Wire, tu: Tu, table: TransactionTable
) -> None:
    invite = request()
    table.receive(invite, UDP)
    (transaction,) = tu.requests
    assert isinstance(transaction, InviteServerTransaction)
    assert wire.statuses() == [100]
    table.receive(request(), UDP)
    assert wire.statuses() == [100, 100] and len(tu.requests) == 1
    assert transaction.send_response(reply(invite, 180))
    table.receive(request(), UDP)
    assert wire.statuses() == [100, 100, 180, 180]


def test_invite_server_timer_g_until_ack_then_timer_i(
    wire: Wire, tu: Tu, table: TransactionTable
) -> None:
    invite = request()
    table.receive(invite, UDP)
    (transaction,) = tu.requests
    transaction.send_response(reply(invite, 486))
    wire.clock.advance(7.6)
    # G: 0.5, 1, 2, 4 apart (capped at T2).
    assert wire.times()[1:] == [0, 0.5, 1.5, 3.5, 7.5]
    table.receive(request("ACK", to_tag="b2", cseq_method="ACK"), UDP)
    assert state(transaction) is State.CONFIRMED and tu.acks == []
    table.receive(request("ACK", to_tag="b2", cseq_method="ACK"), UDP)
    wire.clock.advance(4.9)
    assert len(wire.sent) == 6 and state(transaction) is State.CONFIRMED
    wire.clock.advance(0.1)
    assert state(transaction) is State.TERMINATED and len(table) == 0 and tu.failures == []


def test_invite_server_timer_h_reports_a_missing_ack(
    wire: Wire, tu: Tu, table: TransactionTable
) -> None:
    invite = request()
    table.receive(invite, UDP)
    (transaction,) = tu.requests
    transaction.send_response(reply(invite, 603))
    wire.clock.advance(32)
    assert wire.times()[1:] == [0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert tu.failures == [(transaction, Failure.TIMEOUT)] and len(table) == 0


def test_invite_server_over_tcp_sends_the_final_response_once(
    wire: Wire, tu: Tu, table: TransactionTable
) -> None:
    invite = request(transport="TCP")
    table.receive(invite, TCP)
    (transaction,) = tu.requests
    transaction.send_response(reply(invite, 486))
    wire.clock.advance(10)
    assert wire.statuses() == [100, 486] and all(peer == TCP for _, _, peer in wire.sent)
    table.receive(request("ACK", to_tag="b2", cseq_method="ACK", transport="TCP"), TCP)
    assert state(transaction) is State.TERMINATED


def test_invite_server_rfc_6026_accepted_state(wire: Wire, tu: Tu, table: TransactionTable) -> None:
    invite = request()
    table.receive(invite, UDP)
    (transaction,) = tu.requests
    ok = reply(invite, 200)
    assert transaction.send_response(ok)
    assert state(transaction) is State.ACCEPTED
    table.receive(request(), UDP)
    assert wire.statuses() == [100, 200]
    # The dialog, not the transaction, retransmits the 2xx.
    wire.clock.advance(0.5)
    assert transaction.send_response(ok)
    assert wire.statuses() == [100, 200, 200]
    assert not transaction.send_response(reply(invite, 500))
    ack = request("ACK", branch="z9hG4bKack", to_tag="b2", cseq_method="ACK")
    table.receive(ack, UDP)
    same_branch_ack = request("ACK", to_tag="b2", cseq_method="ACK")
    table.receive(same_branch_ack, UDP)
    assert [a for a, _ in tu.acks] == [ack, same_branch_ack]
    wire.clock.advance(31.5)
    assert state(transaction) is State.TERMINATED and len(table) == 0
    assert not transaction.send_response(ok)


# --- non-INVITE server --------------------------------------------------------------------------


def test_non_invite_server_absorbs_then_resends_then_timer_j(
    wire: Wire, tu: Tu, table: TransactionTable
) -> None:
    bye = request("BYE", cseq=2, to_tag="b2")
    table.receive(bye, UDP)
    (transaction,) = tu.requests
    assert isinstance(transaction, NonInviteServerTransaction)
    table.receive(request("BYE", cseq=2, to_tag="b2"), UDP)
    assert wire.sent == [] and state(transaction) is State.TRYING
    assert transaction.send_response(reply(bye, 200))
    assert not transaction.send_response(reply(bye, 500))
    table.receive(request("BYE", cseq=2, to_tag="b2"), UDP)
    assert wire.statuses() == [200, 200] and len(tu.requests) == 1
    wire.clock.advance(31.9)
    assert state(transaction) is State.COMPLETED
    wire.clock.advance(0.1)
    assert state(transaction) is State.TERMINATED and len(table) == 0


def test_non_invite_server_over_tcp_ends_with_its_final_response(
    wire: Wire, tu: Tu, table: TransactionTable
) -> None:
    options = request("OPTIONS", transport="TCP")
    table.receive(options, TCP)
    (transaction,) = tu.requests
    transaction.send_response(reply(options, 100))
    assert state(transaction) is State.PROCEEDING
    transaction.send_response(reply(options, 200))
    assert state(transaction) is State.TERMINATED and len(table) == 0


def test_rejections_from_check_go_through_a_transaction(
    wire: Wire, tu: Tu, table: TransactionTable
) -> None:
    table.receive(request("FROB"), UDP)
    table.receive(request("FROB"), UDP)
    assert wire.statuses() == [501, 501] and tu.requests == []
    invite = request("INVITE", branch="z9hG4bKmf")
    invite.headers.set("Max-Forwards", "0")
    table.receive(invite, UDP)
    assert wire.statuses()[-1:] == [483]


def test_stray_acks_go_to_the_tu_and_bad_ones_are_dropped(tu: Tu, table: TransactionTable) -> None:
    ack = request("ACK", branch="z9hG4bKstray", to_tag="b2")
    table.receive(ack, UDP)
    bad = request("ACK", branch="z9hG4bKbad", to_tag="b2", cseq_method="BYE")
    table.receive(bad, UDP)
    assert tu.acks == [(ack, UDP)]


# --- CANCEL -------------------------------------------------------------------------------------


def test_cancel_finds_its_invite_server_transaction(
    wire: Wire, tu: Tu, table: TransactionTable
) -> None:
    invite = request(branch="z9hG4bKinv")
    table.receive(invite, UDP)
    cancel = make_cancel(invite)
    table.receive(cancel, UDP)
    ((cancel_transaction, invite_transaction),) = tu.cancels
    assert invite_transaction is tu.requests[0] and cancel_transaction.request is cancel
    assert table.find_invite(cancel) is invite_transaction
    cancel_transaction.send_response(reply(cancel, 200))
    invite_transaction.send_response(reply(invite, 487))
    assert wire.statuses() == [100, 200, 487]


def test_cancel_of_nothing_gets_481(wire: Wire, tu: Tu, table: TransactionTable) -> None:
    table.receive(make_cancel(request(branch="z9hG4bKnone")), UDP)
    assert wire.statuses() == [481] and tu.cancels == []


# --- RFC 2543 matching --------------------------------------------------------------------------


def torture_invite() -> Request:
    message = parse((TORTURE / "3.4.1_inv2543.dat").read_bytes(), datagram=True)
    assert isinstance(message, Request)
    return message


def test_rfc_2543_invite_retransmission_ack_and_cancel_match(
    wire: Wire, tu: Tu, table: TransactionTable
) -> None:
    invite = torture_invite()
    assert not invite.top_via.rfc3261_branch
    table.receive(invite, UDP)
    (transaction,) = tu.requests
    table.receive(torture_invite(), UDP)
    assert len(tu.requests) == 1 and wire.statuses() == [100, 100]

    cancel = make_cancel(invite)
    table.receive(cancel, UDP)
    assert tu.cancels[0][1] is transaction

    transaction.send_response(reply(invite, 487, tag="t487"))
    ack = make_ack(invite, reply(invite, 487, tag="t487"))
    table.receive(parse(ack.to_bytes(), datagram=True), UDP)
    assert state(transaction) is State.CONFIRMED and tu.acks == []


def test_rfc_2543_matching_tells_requests_apart(
    wire: Wire, tu: Tu, table: TransactionTable
) -> None:
    table.receive(torture_invite(), UDP)
    other_cseq = torture_invite()
    other_cseq.headers.set("CSeq", "57 INVITE")
    other_uri = torture_invite()
    other_uri.uri = parse_uri("sip:UserC@example.com")
    other_via = torture_invite()
    other_via.headers.set("Via", "SIP/2.0/UDP iftgw2.example.com")
    for message in (other_cseq, other_uri, other_via):
        table.receive(message, UDP)
    assert len(tu.requests) == 4
    wrong_tag_ack = make_ack(torture_invite(), reply(torture_invite(), 486, tag="nope"))
    table.receive(wrong_tag_ack, UDP)
    assert len(tu.acks) == 1


def test_answer_retransmission_until_ack_or_timeout(
    wire: Wire, tu: Tu, table: TransactionTable
) -> None:
    invite = request(transport="TCP")
    table.receive(invite, TCP)
    (transaction,) = tu.requests
    assert isinstance(transaction, InviteServerTransaction)
    ok = reply(invite, 200)
    transaction.send_response(ok)
    timeouts: list[float] = []
    retransmission = AnswerRetransmission(
        transaction, ok, wire.clock, lambda: timeouts.append(wire.clock.now())
    )
    wire.clock.advance(40)
    # Over TCP too: the 2xx is retransmitted end to end (§13.3.1.4).
    assert wire.times()[2:] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert timeouts == [32.0]
    retransmission.stop()

    second = request(branch="z9hG4bKtwo", cseq=2)
    table.receive(second, UDP)
    transaction = tu.requests[-1]
    assert isinstance(transaction, InviteServerTransaction)
    transaction.send_response(reply(second, 200))
    sent = len(wire.sent)
    retransmission = AnswerRetransmission(
        transaction, reply(second, 200), wire.clock, tu.acks.clear
    )
    wire.clock.advance(1)
    retransmission.stop()
    wire.clock.advance(40)
    assert len(wire.sent) == sent + 1


def test_large_requests_move_to_tcp_when_the_peer_takes_it(
    wire: Wire, table: TransactionTable
) -> None:
    big = request("MESSAGE", branch="z9hG4bKbig")
    big.body = b"x" * 1300
    small = request("MESSAGE", branch="z9hG4bKsmall")
    stays = request("MESSAGE", branch="z9hG4bKstays")
    stays.body = b"x" * 1300
    table.start_client(big, UDP, lambda _: None, tcp_ok=True)
    table.start_client(small, UDP, lambda _: None, tcp_ok=True)
    table.start_client(stays, UDP, lambda _: None)
    (_, first, over), (_, _, small_over), (_, _, stays_over) = wire.sent
    assert over == Peer("TCP", UDP.address) and b"Via: SIP/2.0/TCP 192.0.2.1" in first
    assert small_over == UDP and stays_over == UDP
    wire.clock.advance(1)
    assert [peer.transport for _, _, peer in wire.sent].count("TCP") == 1


def test_transport_failed_fails_the_transactions_on_that_stream(
    wire: Wire, tu: Tu, table: TransactionTable
) -> None:
    _, got = client(table, request("OPTIONS", transport="TCP"), TCP)
    _, untouched = client(table, request("OPTIONS", branch="z9hG4bKudp"), UDP)
    table.receive(request("INVITE", branch="z9hG4bKin", transport="TCP"), TCP)
    table.transport_failed(TCP.address)
    assert [r.status for r in got] == [503] and untouched == []
    assert [failure for _, failure in tu.failures] == [Failure.TRANSPORT]
    assert len(table) == 1


def test_an_ack_check_refuses_still_ends_timer_g_but_never_reaches_the_tu(
    wire: Wire, tu: Tu, table: TransactionTable
) -> None:
    # RFC 4475 §3.1.2.11: headers in the Request-URI get the INVITE a 400, and its ACK, which
    # copies that Request-URI, is refused by check as well.
    escaped = parse_uri("sip:bot@bridge.example.com?Route=%3Csip:example.com%3E")
    invite = request()
    invite.uri = escaped
    table.receive(invite, UDP)
    assert wire.statuses() == [400] and tu.requests == []
    ack = request("ACK", to_tag="b2", cseq_method="ACK")
    ack.uri = escaped
    wrong_branch = request("ACK", branch="z9hG4bKother", to_tag="b2", cseq_method="ACK")
    wrong_branch.uri = escaped
    table.receive(wrong_branch, UDP)
    wire.clock.advance(0.5)
    assert wire.statuses() == [400, 400]
    table.receive(ack, UDP)
    wire.clock.advance(30)
    assert wire.statuses() == [400, 400] and tu.acks == [] and tu.failures == []
    assert len(table) == 0


def test_close_stops_every_timer_and_forgets_every_transaction(
    wire: Wire, tu: Tu, table: TransactionTable
) -> None:
    invite, _ = client(table, request("INVITE", branch="z9hG4bKout"))
    options, got = client(table, request("OPTIONS", branch="z9hG4bKopt"))
    table.receive(request("INVITE", branch="z9hG4bKin"), UDP)
    (incoming,) = tu.requests
    assert isinstance(incoming, InviteServerTransaction)
    incoming.send_response(reply(incoming.request, 486))
    legacy = request("INVITE", branch="rfc2543", cseq=2)
    table.receive(legacy, UDP)
    assert len(table) == 4 and wire.clock.pending > 0
    sent = len(wire.sent)

    table.close()

    assert len(table) == 0 and wire.clock.pending == 0
    assert {state(t) for t in (invite, options, incoming, *tu.requests)} == {State.TERMINATED}
    wire.clock.advance(64)
    assert len(wire.sent) == sent and got == [] and tu.failures == []
    # A retransmission now is a new request, as after any transaction ends.
    table.receive(request("INVITE", branch="z9hG4bKin"), UDP)
    assert len(table) == 1 and len(tu.requests) == 3
