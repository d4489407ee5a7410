from __future__ import annotations

from bridge.sip.dialog import Dialog, dialog_id_of
from bridge.sip.fields import Via
from bridge.sip.message import Request, parse
from bridge.sip.transaction import Peer
from bridge.sip.uri import NameAddr, SipUri, parse_name_addr

CONTACT = NameAddr(uri=SipUri(user="voicebridge", host="192.0.2.1", port=5060))
VIA = Via(transport="UDP", host="192.0.2.1", port=5060, params=(("rport", None),))
SOURCE = Peer("UDP", ("198.51.100.7", 5060))


def invite(*extra: str, uri: str = "sip:bot@192.0.2.1") -> Request:
    lines = [
        f"INVITE {uri} SIP/2.0",
        "Via: SIP/2.0/UDP 198.51.100.7;branch=z9hG4bK1",
        'From: "Alice" <sip:alice@example.com>;tag=abc',
        "To: <sip:bot@192.0.2.1>",
        "Call-ID: call-1",
        "CSeq: 10 INVITE",
        "Max-Forwards: 70",
        *extra,
    ]
    message = parse(("\r\n".join(lines) + "\r\n\r\n").encode(), datagram=True)
    assert isinstance(message, Request)
    return message


def in_dialog(method: str, cseq: int, *extra: str) -> Request:
    lines = [
        f"{method} sip:voicebridge@192.0.2.1 SIP/2.0",
        "Via: SIP/2.0/UDP 198.51.100.7;branch=z9hG4bK2",
        "From: <sip:alice@example.com>;tag=abc",
        "To: <sip:bot@192.0.2.1>;tag=ours",
        "Call-ID: call-1",
        f"CSeq: {cseq} {method}",
        *extra,
    ]
    message = parse(("\r\n".join(lines) + "\r\n\r\n").encode(), datagram=True)
    assert isinstance(message, Request)
    return message


def test_state_from_invite() -> None:
    dialog = Dialog.from_invite(
        invite(
            "Contact: <sip:alice@198.51.100.7:5070>",
            "Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>",
        ),
        "ours",
        CONTACT,
    )
    assert dialog.id == ("call-1", "ours", "abc")
    assert dialog.id == dialog_id_of(in_dialog("BYE", 11))
    assert str(dialog.remote_target) == "sip:alice@198.51.100.7:5070"
    assert [str(route.uri) for route in dialog.route_set] == [
        "sip:p1.example.com;lr",
        "sip:p2.example.com;lr",
    ]
    assert dialog.remote_cseq == 10
    assert not dialog.secure
    assert Dialog.from_invite(invite(uri="sips:bot@192.0.2.1"), "t", CONTACT).secure


def test_request_without_routes_targets_the_contact() -> None:
    dialog = Dialog.from_invite(invite("Contact: <sip:alice@198.51.100.7:5070>"), "ours", CONTACT)
    first = dialog.local_cseq
    bye = dialog.request("BYE", VIA)
    assert str(bye.uri) == "sip:alice@198.51.100.7:5070"
    assert bye.routes == []
    assert bye.from_tag == "ours" and bye.to_tag == "abc"
    assert bye.from_addr.display_name is None
    assert bye.to_addr.display_name == "Alice"
    assert bye.cseq.number == first + 1 and bye.cseq.method == "BYE"
    assert bye.top_via.rfc3261_branch
    assert bye.contacts == [CONTACT]
    again = dialog.request("INFO", VIA)
    assert again.cseq.number == first + 2
    assert again.top_via.branch != bye.top_via.branch
    ack = dialog.request("ACK", VIA, cseq=bye.cseq.number)
    assert ack.cseq.number == bye.cseq.number and dialog.local_cseq == first + 2
    assert dialog.next_hop(SOURCE) == Peer("UDP", ("198.51.100.7", 5070))


def test_loose_routing() -> None:
    dialog = Dialog.from_invite(
        invite(
            "Contact: <sip:alice@198.51.100.7:5070>",
            "Record-Route: <sip:203.0.113.5:5080;lr>, <sip:p2.example.com;lr>",
        ),
        "ours",
        CONTACT,
    )
    bye = dialog.request("BYE", VIA)
    assert str(bye.uri) == "sip:alice@198.51.100.7:5070"
    assert [str(route) for route in bye.routes] == [
        "<sip:203.0.113.5:5080;lr>",
        "<sip:p2.example.com;lr>",
    ]
    assert dialog.next_hop(SOURCE) == Peer("UDP", ("203.0.113.5", 5080))


def test_strict_routing() -> None:
    dialog = Dialog.from_invite(
        invite(
            "Contact: <sip:alice@198.51.100.7:5070>",
            "Record-Route: <sip:203.0.113.5;maddr=203.0.113.9>, <sip:p2.example.com;lr>",
        ),
        "ours",
        CONTACT,
    )
    bye = dialog.request("BYE", VIA)
    assert str(bye.uri) == "sip:203.0.113.5"
    assert [str(route) for route in bye.routes] == [
        "<sip:p2.example.com;lr>",
        "<sip:alice@198.51.100.7:5070>",
    ]


def test_host_names_go_back_to_the_source() -> None:
    dialog = Dialog.from_invite(invite("Contact: <sip:alice@pbx.example.com>"), "ours", CONTACT)
    assert dialog.next_hop(SOURCE) == SOURCE


def test_tcp_contact_reuses_the_connection() -> None:
    dialog = Dialog.from_invite(
        invite("Contact: <sip:alice@198.51.100.7:5070;transport=tcp>"), "ours", CONTACT
    )
    tcp = Peer("TCP", ("198.51.100.7", 40123), ("198.51.100.7", 5060))
    assert dialog.next_hop(tcp) == Peer("TCP", ("198.51.100.7", 40123), ("198.51.100.7", 5070))


def test_cseq_order() -> None:
    dialog = Dialog.from_invite(invite(), "ours", CONTACT)
    assert dialog.accept_cseq(in_dialog("INFO", 11))
    assert not dialog.accept_cseq(in_dialog("INFO", 9))
    assert dialog.remote_cseq == 11
    assert dialog.accept_cseq(in_dialog("BYE", 12))


def test_target_refresh() -> None:
    dialog = Dialog.from_invite(invite("Contact: <sip:alice@198.51.100.7>"), "ours", CONTACT)
    dialog.refresh_target(in_dialog("INVITE", 11, "Contact: <sip:alice@198.51.100.8:5062>"))
    assert str(dialog.remote_target) == "sip:alice@198.51.100.8:5062"
    dialog.refresh_target(in_dialog("UPDATE", 12))
    assert str(dialog.remote_target) == "sip:alice@198.51.100.8:5062"


def test_without_contact_the_from_uri_is_the_target() -> None:
    dialog = Dialog.from_invite(invite(), "ours", CONTACT)
    assert dialog.remote_target == parse_name_addr("<sip:alice@example.com>").uri
